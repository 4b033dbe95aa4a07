//! `/v1/health/*`: the instances of a service with their nodes and checks, the checks of a service or of a
//! node, and the checks in a state.

use super::params::{self, Selection};
use super::router::{method_not_allowed, not_found};
use super::views::{CheckJson, HealthEntryJson};
use super::{json, Answer, ApiRequest, ApiResponse, Method, Plan, ReadQuery, WatchSpec};
use crate::fsm::{table, CheckStatus, HealthCheck, State};

/// What a health read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthRead {
    /// `GET /v1/health/service/:name`.
    Service(String),
    /// `GET /v1/health/checks/:service`.
    Checks(String),
    /// `GET /v1/health/node/:node`.
    Node(String),
    /// `GET /v1/health/state/:state`.
    State(String),
}

/// Plans `/v1/health/<rest>`.
pub fn plan(req: &ApiRequest, rest: &str) -> Plan {
    let (verb, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let read = match (verb, arg) {
        ("service" | "checks", "") => return missing("Missing service name"),
        ("node", "") => return missing("Missing node name"),
        ("state", "") => return missing("Missing check state"),
        ("service", name) => HealthRead::Service(name.to_string()),
        ("checks", name) => HealthRead::Checks(name.to_string()),
        ("node", name) => HealthRead::Node(name.to_string()),
        ("state", state) => HealthRead::State(state.to_string()),
        _ => return Plan::Respond(not_found()),
    };
    if !matches!(req.method, Method::Get | Method::Head) {
        return Plan::Respond(method_not_allowed(req.method));
    }
    match Selection::parse(&req.query) {
        Ok(selection) => params::read(req, ReadQuery::Health(read, selection)),
        Err(response) => Plan::Respond(response),
    }
}

fn missing(text: &str) -> Plan {
    Plan::Respond(ApiResponse::text(400, text))
}

/// What a blocking query on `read` waits for.
pub fn watch(read: &HealthRead) -> WatchSpec {
    match read {
        HealthRead::Service(name) | HealthRead::Checks(name) => WatchSpec::Service(name.clone()),
        HealthRead::Node(_) | HealthRead::State(_) => {
            WatchSpec::Tables(table::CHECKS | table::NODES)
        }
    }
}

/// Answers a health read from `state`.
pub fn answer(state: &State, read: &HealthRead, sel: &Selection, pretty: bool) -> Answer {
    let (index, body) = match read {
        HealthRead::Service(name) => (
            state.health_service_index(name),
            json::to_body(&entries(state, name, sel), pretty),
        ),
        HealthRead::Checks(name) => {
            let checks = state.service_checks(name);
            (
                state.checks_index(),
                checks_body(state, checks, sel, pretty),
            )
        }
        HealthRead::Node(node) => {
            let checks = state.node_checks(node);
            (
                state.checks_index(),
                checks_body(state, checks, sel, pretty),
            )
        }
        // Consul looks the word up in its status index: a word that is no status finds no check (`[]`),
        // it is not an error.
        HealthRead::State(word) => {
            let checks = state.checks_in_state(word).unwrap_or_default();
            (
                state.checks_index(),
                checks_body(state, checks, sel, pretty),
            )
        }
    };
    Answer {
        index,
        response: ApiResponse::json(200, body),
    }
}

/// The instances of `name` that fit the selection. Every instance is listed, critical ones included,
/// unless `passing` asks for those whose every check (node-level and their own) passes.
fn entries<'a>(state: &'a State, name: &str, sel: &Selection) -> Vec<HealthEntryJson<'a>> {
    state
        .health_service(name)
        .into_iter()
        .filter(|(node, service, _)| sel.node_fits(node) && sel.tags_fit(service))
        .filter(|(_, _, checks)| !sel.passing || all_pass(checks))
        .map(|(node, service, checks)| HealthEntryJson::new(node, service, &checks))
        .filter(|view| sel.filter_fits(view))
        .collect()
}

fn all_pass(checks: &[&HealthCheck]) -> bool {
    checks.iter().all(|c| c.status == CheckStatus::Passing)
}

/// Checks whose node fits `node-meta` and whose JSON passes the filter.
fn checks_body(state: &State, checks: Vec<&HealthCheck>, sel: &Selection, pretty: bool) -> Vec<u8> {
    let list: Vec<CheckJson> = checks
        .into_iter()
        .filter(|c| {
            sel.node_meta.is_empty() || state.node(&c.node).is_some_and(|n| sel.node_fits(n))
        })
        .map(CheckJson::new)
        .filter(|view| sel.filter_fits(view))
        .collect();
    json::to_body(&list, pretty)
}
