//! The query parameters the read routes share: consistency modes, blocking (`index`, `wait`), and the
//! catalog and health selections (`tag`, `node-meta`, `passing`, `filter`, `near`).

use super::duration::parse_duration_ms;
use super::filter::Filter;
use super::query::Query;
use super::{ApiRequest, ApiResponse, Plan, ReadPlan, ReadQuery};
use crate::fsm::{Node, Service};
use serde::Serialize;
use std::collections::BTreeMap;

/// `wait` when a blocking query gives none (Consul's `default_query_time`).
pub const WAIT_MS_DEFAULT: u64 = 300_000;
/// The longest `wait` (Consul's `max_query_time`); longer ones are cut to it.
pub const WAIT_MS_MAX: u64 = 600_000;

/// A read's consistency mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// The leader answers from its state while its lease holds.
    Default,
    /// Any server answers from its own state (`?stale`).
    Stale,
    /// The leader confirms its leadership with a quorum first (`?consistent`).
    Consistent,
}

impl Consistency {
    /// The `X-Consul-Effective-Consistency` value.
    pub fn header_value(self) -> &'static str {
        match self {
            Consistency::Default => "leader",
            Consistency::Stale => "stale",
            Consistency::Consistent => "consistent",
        }
    }
}

/// A blocking query's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Answer once the result's index is above this one.
    pub index: u64,
    /// How long to wait at most (before jitter), capped at [`WAIT_MS_MAX`].
    pub wait_ms: u64,
}

/// Parses `?stale`, `?consistent`, `?leader` and `?cached`.
pub fn consistency(query: &Query) -> Result<Consistency, ApiResponse> {
    let (stale, consistent) = (query.has("stale"), query.has("consistent"));
    if stale && consistent {
        return Err(ApiResponse::text(
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ));
    }
    if consistent && query.has("cached") {
        return Err(ApiResponse::text(
            400,
            "Cannot specify ?cached with ?consistent, conflicting semantics.",
        ));
    }
    Ok(match (stale, consistent) {
        (true, _) => Consistency::Stale,
        (_, true) => Consistency::Consistent,
        _ => Consistency::Default,
    })
}

/// Parses `?index=` and `?wait=`: `None` unless `index` is above 0.
pub fn blocking(query: &Query) -> Result<Option<Blocking>, ApiResponse> {
    let wait_ms = match query.get("wait") {
        None | Some("") => WAIT_MS_DEFAULT,
        Some(text) => match parse_duration_ms(text) {
            Ok(0) => WAIT_MS_DEFAULT,
            Ok(ms) => ms.min(WAIT_MS_MAX),
            Err(_) => return Err(ApiResponse::text(400, "Invalid wait time")),
        },
    };
    let index = match query.get("index") {
        None | Some("") => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiResponse::text(400, "Invalid index"))?,
    };
    Ok((index > 0).then_some(Blocking { index, wait_ms }))
}

/// The jitter Consul adds to a blocking wait: up to `wait_ms / 16`, from a random `sample`.
pub fn jitter_ms(wait_ms: u64, sample: u64) -> u64 {
    match wait_ms / 16 {
        0 => 0,
        span => sample % span,
    }
}

/// Plans a read of `query` with the request's consistency mode and blocking parameters.
pub fn read(req: &ApiRequest, query: ReadQuery) -> Plan {
    let consistency = match consistency(&req.query) {
        Ok(c) => c,
        Err(response) => return Plan::Respond(response),
    };
    match blocking(&req.query) {
        Ok(blocking) => Plan::Read(ReadPlan {
            consistency,
            blocking,
            query,
            pretty: req.query.has("pretty"),
        }),
        Err(response) => Plan::Respond(response),
    }
}

/// What the catalog and health reads keep of their results: `?tag=` (repeatable, every tag must be on the
/// instance), `?node-meta=k:v` (repeatable, every pair must be on the node), `?passing` (every check of the
/// entry passes) and `?filter=`. `?near=` is accepted and ignored: cairn has no network coordinates yet, so
/// results keep their natural order (node, then service ID).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Tags an instance must all have.
    pub tags: Vec<String>,
    /// Node metadata pairs a node must all have.
    pub node_meta: BTreeMap<String, String>,
    /// Only entries whose checks all pass.
    pub passing: bool,
    /// A filter expression over each result element's JSON.
    pub filter: Option<Filter>,
}

impl Selection {
    /// Parses the selection parameters, with Consul's 400s for a bad `passing` value or filter.
    pub fn parse(query: &Query) -> Result<Selection, ApiResponse> {
        let node_meta = query
            .all("node-meta")
            .map(|pair| {
                let (k, v) = pair.split_once(':').unwrap_or((pair, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let filter = match query.get("filter").filter(|f| !f.trim().is_empty()) {
            None => None,
            Some(text) => Some(Filter::parse(text).map_err(|e| {
                ApiResponse::text(
                    400,
                    format!("Failed to create boolean expression evaluator: {e}"),
                )
            })?),
        };
        Ok(Selection {
            tags: query.all("tag").map(str::to_string).collect(),
            node_meta,
            passing: passing(query)?,
            filter,
        })
    }

    /// Whether `node`'s metadata has every `node-meta` pair.
    pub fn node_fits(&self, node: &Node) -> bool {
        self.node_meta
            .iter()
            .all(|(k, v)| node.meta.get(k) == Some(v))
    }

    /// Whether `service` has every `tag`.
    pub fn tags_fit(&self, service: &Service) -> bool {
        self.tags.iter().all(|t| service.tags.contains(t))
    }

    /// Whether `view` (a result element) passes the filter.
    pub fn filter_fits<T: Serialize>(&self, view: &T) -> bool {
        fits(&self.filter, view)
    }
}

/// Whether `view` (a result element) passes `filter` (no filter: everything does).
pub fn fits<T: Serialize>(filter: &Option<Filter>, view: &T) -> bool {
    filter
        .as_ref()
        .is_none_or(|f| serde_json::to_value(view).is_ok_and(|value| f.matches(&value)))
}

/// `?passing`: bare or empty is true; otherwise Go's `strconv.ParseBool` words.
fn passing(query: &Query) -> Result<bool, ApiResponse> {
    match query.get("passing") {
        None => Ok(false),
        Some("" | "1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(_) => Err(ApiResponse::text(400, "Invalid value for ?passing")),
    }
}
