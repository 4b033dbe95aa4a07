//! The route table: path and method to a [`Plan`], and write outcomes to responses.

use super::cluster::ClusterView;
use super::json;
use super::session::SessionJson;
use super::{
    agent, agent_read, catalog, gossip, health, kv, session, snapshot, status, txn, ApiRequest,
    ApiResponse, Context, Method, Plan, Render,
};
use crate::fsm::Outcome;

/// Plans one request.
pub fn plan(req: &ApiRequest, ctx: &Context, cluster: &ClusterView) -> Plan {
    let path = req.path;
    if path == "/" {
        return match req.method {
            Method::Get | Method::Head => Plan::Respond(ApiResponse::text(200, "Cairn Agent\n")),
            other => Plan::Respond(method_not_allowed(other)),
        };
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Plan::Respond(not_found());
    };
    if let Some(plan) = gossip::plan(req, rest) {
        return plan;
    }
    if let Some(response) = gossip::wrong_method(req, rest) {
        return Plan::Respond(response);
    }
    if let Some(key) = rest.strip_prefix("kv/") {
        return kv::plan(req, key, ctx);
    }
    if let Some(rest) = rest.strip_prefix("session/") {
        return session::plan(req, rest, ctx);
    }
    if let Some(rest) = rest.strip_prefix("catalog/") {
        return catalog::plan(req, rest, ctx);
    }
    if let Some(rest) = rest.strip_prefix("health/") {
        return health::plan(req, rest);
    }
    if let Some(plan) = rest
        .strip_prefix("agent/")
        .and_then(|r| agent::plan(req, r).or_else(|| agent_read::plan(req, r)))
    {
        return plan;
    }
    if let Some(rest) = rest.strip_prefix("status/") {
        return status::plan_status(req, rest, cluster);
    }
    if let Some(rest) = rest.strip_prefix("operator/raft/") {
        return status::plan_operator(req, rest, cluster);
    }
    if let Some(rest) = rest.strip_prefix("operator/autopilot/") {
        return super::autopilot::plan(req, rest);
    }
    match rest {
        "txn" => txn::plan(req, ctx),
        "snapshot" => snapshot::plan(req),
        "agent/leave" => match req.method {
            Method::Put => Plan::Leave,
            other => Plan::Respond(method_not_allowed(other)),
        },
        "agent/metrics" => match req.method {
            Method::Get | Method::Head => Plan::Metrics {
                prometheus: req.query.get("format") == Some("prometheus"),
                pretty: req.query.has("pretty"),
            },
            other => Plan::Respond(method_not_allowed(other)),
        },
        "agent/reload" => match req.method {
            Method::Put => Plan::Reload,
            other => Plan::Respond(method_not_allowed(other)),
        },
        _ => Plan::Respond(not_found()),
    }
}

/// Go's `404 page not found`, for a path no route serves.
pub fn not_found() -> ApiResponse {
    ApiResponse::text(404, "404 page not found\n")
}

/// Consul's `405` for a route that exists under another method.
pub fn method_not_allowed(method: Method) -> ApiResponse {
    ApiResponse::text(405, format!("method {} not allowed", method.as_str()))
}

/// The response for a write's outcome.
pub fn render_outcome(render: &Render, outcome: Outcome, pretty: bool) -> ApiResponse {
    match (render, outcome) {
        (_, Outcome::Error(message)) => ApiResponse::text(500, message),
        (Render::Bool, Outcome::Bool(done)) => json::ok(&done, pretty),
        (Render::Empty, Outcome::Done) => ApiResponse::empty(),
        (Render::Txn, Outcome::Txn(result)) => txn::render_txn(&result, pretty),
        (Render::SessionCreated, Outcome::SessionCreated(id)) => {
            let mut body = serde_json::Map::new();
            body.insert("ID".to_string(), serde_json::Value::String(id));
            json::ok(&body, pretty)
        }
        (Render::SessionRenewed(_), Outcome::SessionRenewed(Some(session))) => {
            json::ok(&[SessionJson::new(&session)], pretty)
        }
        (Render::SessionRenewed(id), Outcome::SessionRenewed(None)) => {
            ApiResponse::text(404, format!("Session id '{id}' not found"))
        }
        (render, outcome) => ApiResponse::text(
            500,
            format!("internal error: outcome {outcome:?} does not fit {render:?}"),
        ),
    }
}
