//! `/v1/kv/:key`: get (recurse, keys, separator, raw), put (flags, cas, acquire, release), delete (recurse, cas).

use super::json::{self, KvJson};
use super::params;
use super::{
    Answer, ApiRequest, ApiResponse, Context, Method, Plan, ReadPlan, ReadQuery, Render, WritePlan,
};
use crate::fsm::{Command, KvOp, KvVerb, State};

/// Plans a request to `/v1/kv/<key>` (`key` already taken from the path).
pub fn plan(req: &ApiRequest, key: &str, ctx: &Context) -> Plan {
    match req.method {
        Method::Get | Method::Head => plan_get(req, key),
        Method::Put => plan_put(req, key, ctx).unwrap_or_else(Plan::Respond),
        Method::Delete => plan_delete(req, key, ctx).unwrap_or_else(Plan::Respond),
        _ => Plan::Respond(super::router::method_not_allowed(req.method)),
    }
}

fn plan_get(req: &ApiRequest, key: &str) -> Plan {
    let q = &req.query;
    let consistency = match params::consistency(q) {
        Ok(c) => c,
        Err(response) => return Plan::Respond(response),
    };
    let blocking = match params::blocking(q) {
        Ok(b) => b,
        Err(response) => return Plan::Respond(response),
    };
    let keys = q.has("keys");
    Plan::Read(ReadPlan {
        consistency,
        blocking,
        query: ReadQuery::Kv {
            key: key.to_string(),
            recurse: q.has("recurse"),
            keys,
            separator: q
                .get("separator")
                .filter(|s| keys && !s.is_empty())
                .map(String::from),
            raw: q.has("raw"),
        },
        pretty: q.has("pretty"),
    })
}

fn missing_key() -> ApiResponse {
    ApiResponse::text(400, "Missing key name")
}

fn u64_param(req: &ApiRequest, name: &str) -> Result<Option<u64>, ApiResponse> {
    match req.query.get(name) {
        None => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            ApiResponse::text(
                400,
                format!("Invalid {name} value: {text:?} is not an unsigned integer"),
            )
        }),
    }
}

fn plan_put(req: &ApiRequest, key: &str, ctx: &Context) -> Result<Plan, ApiResponse> {
    if key.is_empty() {
        return Err(missing_key());
    }
    if req.body.len() as u64 > ctx.kv_max_value_bytes {
        return Err(too_large(
            req.body.len() as u64,
            ctx.kv_max_value_bytes,
            "kv_max_value_size",
        ));
    }
    let mut op = KvOp::new(KvVerb::Set, key);
    op.value = req.body.to_vec();
    op.flags = u64_param(req, "flags")?.unwrap_or(0);
    if let Some(index) = u64_param(req, "cas")? {
        op.verb = KvVerb::Cas;
        op.index = index;
    }
    match (req.query.get("acquire"), req.query.get("release")) {
        (Some(_), Some(_)) => {
            return Err(ApiResponse::text(
                400,
                "Conflicting flags: acquire and release",
            ))
        }
        (Some(session), None) => {
            op.verb = KvVerb::Lock;
            op.session = session.to_string();
        }
        (None, Some(session)) => {
            op.verb = KvVerb::Unlock;
            op.session = session.to_string();
        }
        (None, None) => {}
    }
    Ok(write(
        req,
        Command::Kv {
            now_ms: ctx.now_ms,
            op,
        },
    ))
}

fn plan_delete(req: &ApiRequest, key: &str, ctx: &Context) -> Result<Plan, ApiResponse> {
    let recurse = req.query.has("recurse");
    if key.is_empty() && !recurse {
        return Err(missing_key());
    }
    let mut op = KvOp::new(KvVerb::Delete, key);
    if recurse {
        op.verb = KvVerb::DeleteTree;
    } else if let Some(index) = u64_param(req, "cas")? {
        op.verb = KvVerb::DeleteCas;
        op.index = index;
    }
    Ok(write(
        req,
        Command::Kv {
            now_ms: ctx.now_ms,
            op,
        },
    ))
}

fn write(req: &ApiRequest, command: Command) -> Plan {
    Plan::Write(WritePlan {
        command,
        render: Render::Bool,
        pretty: req.query.has("pretty"),
    })
}

/// Consul's `413` for a body over a configured limit.
pub fn too_large(bytes: u64, max_bytes: u64, setting: &str) -> ApiResponse {
    ApiResponse::text(
        413,
        format!(
            "Request body({bytes} bytes) too large, max size: {max_bytes} bytes. See \
             https://developer.hashicorp.com/consul/docs/agent/config/config-files#{setting}."
        ),
    )
}

/// Answers `GET /v1/kv/<key>` from `state`.
pub fn answer_get(
    state: &State,
    key: &str,
    recurse: bool,
    keys: bool,
    separator: Option<&str>,
    raw: bool,
    pretty: bool,
) -> Answer {
    if keys {
        let index = state.kv_prefix_index(key);
        let list = state.kv_keys(key, separator);
        let response = if list.is_empty() {
            ApiResponse::not_found()
        } else {
            json::ok(&list, pretty)
        };
        return Answer { index, response };
    }
    if recurse {
        let index = state.kv_prefix_index(key);
        let entries: Vec<KvJson> = state.kv_list(key).map(KvJson::new).collect();
        let response = if entries.is_empty() {
            ApiResponse::not_found()
        } else {
            json::ok(&entries, pretty)
        };
        return Answer { index, response };
    }
    let index = state.kv_key_index(key);
    let response = match state.kv_get(key) {
        None => ApiResponse::not_found(),
        Some(entry) if raw => ApiResponse {
            status: 200,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body: entry.value.to_vec(),
        },
        Some(entry) => json::ok(&[KvJson::new(entry)], pretty),
    };
    Answer { index, response }
}
