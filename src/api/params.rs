//! The query parameters every read route shares: consistency modes and blocking (`index`, `wait`).

use super::duration::parse_duration_ms;
use super::query::Query;
use super::ApiResponse;

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
