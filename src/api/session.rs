//! `/v1/session/*`: create, destroy, renew, info, node, list.

use super::duration::{format_go_duration_ms, parse_go_duration};
use super::json::{self, field, string_field, strings_field};
use super::params;
use super::{Answer, ApiRequest, ApiResponse, Context, Method, Plan, ReadQuery, Render, WritePlan};
use crate::fsm::{self, Behavior, Command, ServiceCheck, Session, SessionSpec, State};
use serde::Serialize;
use serde_json::Value;

/// The longest session TTL (Consul's `SessionTTLMax`).
pub const SESSION_TTL_MS_MAX: u64 = 24 * 3_600_000;
/// The check every session is bound to unless told otherwise.
pub const SERF_HEALTH_CHECK: &str = "serfHealth";

/// Plans `/v1/session/<rest>`.
pub fn plan(req: &ApiRequest, rest: &str, ctx: &Context) -> Plan {
    let (verb, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let pretty = req.query.has("pretty");
    let write = |command: Command, render: Render| {
        Plan::Write(WritePlan {
            command,
            render,
            pretty,
        })
    };
    let needs = |method: Method| {
        req.method == method || (method == Method::Get && req.method == Method::Head)
    };
    match verb {
        "create" if needs(Method::Put) => match spec_from_body(req.body, ctx) {
            Ok(spec) => write(
                Command::SessionCreate {
                    now_ms: ctx.now_ms,
                    spec,
                },
                Render::SessionCreated,
            ),
            Err(response) => Plan::Respond(response),
        },
        "destroy" | "renew" if needs(Method::Put) && arg.is_empty() => {
            Plan::Respond(ApiResponse::text(400, "Missing session"))
        }
        "destroy" if needs(Method::Put) => write(
            Command::SessionDestroy {
                now_ms: ctx.now_ms,
                id: arg.to_string(),
            },
            Render::Bool,
        ),
        "renew" if needs(Method::Put) => write(
            Command::SessionRenew {
                now_ms: ctx.now_ms,
                id: arg.to_string(),
            },
            Render::SessionRenewed(arg.to_string()),
        ),
        "info" | "node" if needs(Method::Get) && arg.is_empty() => {
            Plan::Respond(ApiResponse::text(
                400,
                if verb == "info" {
                    "Missing session"
                } else {
                    "Missing node name"
                },
            ))
        }
        "info" if needs(Method::Get) => read(req, ReadQuery::SessionInfo(arg.to_string())),
        "node" if needs(Method::Get) => read(req, ReadQuery::SessionNode(arg.to_string())),
        "list" if needs(Method::Get) && arg.is_empty() => read(req, ReadQuery::SessionList),
        "create" | "destroy" | "renew" | "info" | "node" | "list" => {
            Plan::Respond(super::router::method_not_allowed(req.method))
        }
        _ => Plan::Respond(super::router::not_found()),
    }
}

fn read(req: &ApiRequest, query: ReadQuery) -> Plan {
    params::read(req, query)
}

/// The session a create request asks for, validated as Consul does.
fn spec_from_body(body: &[u8], ctx: &Context) -> Result<SessionSpec, ApiResponse> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        json::parse_body(body)?
    };
    let Value::Object(object) = value else {
        return Err(ApiResponse::text(
            400,
            "Request decode failed: json: cannot unmarshal non-object into Go value of type structs.Session",
        ));
    };
    let lock_delay_ms = match field(&object, "LockDelay") {
        None | Some(Value::Null) => fsm::LOCK_DELAY_MS_DEFAULT,
        Some(Value::String(text)) => match parse_go_duration(text) {
            Ok(ns) if ns >= 0 => (ns / 1_000_000) as u64,
            _ => {
                return Err(ApiResponse::text(
                    400,
                    format!("Request decode failed: invalid LockDelay {text:?}"),
                ))
            }
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) if secs < 1000 => secs * 1000,
            Some(ns) => ns / 1_000_000,
            None => {
                return Err(json::decode_error(
                    "LockDelay",
                    "time.Duration",
                    &Value::Number(n.clone()),
                ))
            }
        },
        Some(other) => return Err(json::decode_error("LockDelay", "time.Duration", other)),
    };
    if lock_delay_ms > fsm::LOCK_DELAY_MS_MAX {
        return Err(ApiResponse::text(
            400,
            format!(
                "Lock delay must be at most {}",
                format_go_duration_ms(fsm::LOCK_DELAY_MS_MAX)
            ),
        ));
    }
    let behavior_text = string_field(&object, "Behavior")?.unwrap_or_default();
    let behavior = match behavior_text.as_str() {
        "" => Behavior::Release,
        text => Behavior::parse(text)
            .ok_or_else(|| ApiResponse::text(500, format!("Invalid Behavior setting '{text}'")))?,
    };
    let ttl = string_field(&object, "TTL")?.unwrap_or_default();
    let ttl_ms = ttl_ms(&ttl, ctx.session_ttl_min_ms)?;
    let checks = strings_field(&object, "Checks")?;
    let node_checks = strings_field(&object, "NodeChecks")?;
    let service_checks = service_checks(&object)?;
    let node_checks = match (node_checks, checks) {
        (Some(list), _) | (None, Some(list)) => list,
        (None, None) if service_checks.is_empty() => vec![SERF_HEALTH_CHECK.to_string()],
        (None, None) => Vec::new(),
    };
    Ok(SessionSpec {
        id: ctx.new_id.clone(),
        name: string_field(&object, "Name")?.unwrap_or_default(),
        node: string_field(&object, "Node")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.clone()),
        node_checks,
        service_checks,
        lock_delay_ms,
        behavior,
        ttl_ms,
        ttl,
    })
}

/// The TTL in ms (0 = none), within `[min, 24h]` as Consul requires.
fn ttl_ms(ttl: &str, min_ms: u64) -> Result<u64, ApiResponse> {
    if ttl.is_empty() {
        return Ok(0);
    }
    let ns = parse_go_duration(ttl)
        .map_err(|e| ApiResponse::text(500, format!("Invalid Session TTL '{ttl}': {e}")))?;
    if ns == 0 {
        return Ok(0);
    }
    let ms = (ns.max(0) / 1_000_000) as u64;
    if ns < 0 || ms < min_ms || ms > SESSION_TTL_MS_MAX {
        return Err(ApiResponse::text(
            500,
            format!(
                "Invalid Session TTL '{ns}', must be between [{}={}]",
                format_go_duration_ms(min_ms),
                format_go_duration_ms(SESSION_TTL_MS_MAX)
            ),
        ));
    }
    Ok(ms)
}

fn service_checks(
    object: &serde_json::Map<String, Value>,
) -> Result<Vec<ServiceCheck>, ApiResponse> {
    match field(object, "ServiceChecks") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(check) => Ok(ServiceCheck {
                    id: string_field(check, "ID")?.unwrap_or_default(),
                    namespace: string_field(check, "Namespace")?.unwrap_or_default(),
                }),
                other => Err(json::decode_error(
                    "ServiceChecks",
                    "structs.ServiceCheck",
                    other,
                )),
            })
            .collect(),
        Some(other) => Err(json::decode_error(
            "ServiceChecks",
            "[]structs.ServiceCheck",
            other,
        )),
    }
}

/// A session as Consul renders it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    node: &'a str,
    lock_delay: u64,
    behavior: &'static str,
    #[serde(rename = "TTL")]
    ttl: &'a str,
    node_checks: Option<&'a [String]>,
    service_checks: Option<Vec<ServiceCheckJson<'a>>>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceCheckJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    namespace: &'a str,
}

impl<'a> SessionJson<'a> {
    /// The JSON view of `session`.
    pub fn new(session: &'a Session) -> SessionJson<'a> {
        let spec = &session.spec;
        SessionJson {
            id: &spec.id,
            name: &spec.name,
            node: &spec.node,
            lock_delay: spec.lock_delay_ms * 1_000_000,
            behavior: spec.behavior.as_str(),
            ttl: &spec.ttl,
            node_checks: (!spec.node_checks.is_empty()).then_some(spec.node_checks.as_slice()),
            service_checks: (!spec.service_checks.is_empty()).then(|| {
                spec.service_checks
                    .iter()
                    .map(|c| ServiceCheckJson {
                        id: &c.id,
                        namespace: &c.namespace,
                    })
                    .collect()
            }),
            create_index: session.create_index,
            modify_index: session.modify_index,
        }
    }
}

fn sessions_answer<'a>(
    state: &State,
    sessions: impl Iterator<Item = &'a Session>,
    pretty: bool,
) -> Answer {
    let list: Vec<SessionJson> = sessions.map(SessionJson::new).collect();
    Answer {
        index: state.table_indexes().sessions,
        response: json::ok(&list, pretty),
    }
}

/// `GET /v1/session/info/:id`: `[Session]` or `[]`.
pub fn answer_info(state: &State, id: &str, pretty: bool) -> Answer {
    sessions_answer(state, state.session_get(id).into_iter(), pretty)
}

/// `GET /v1/session/node/:node`.
pub fn answer_node(state: &State, node: &str, pretty: bool) -> Answer {
    sessions_answer(state, state.sessions_for_node(node).into_iter(), pretty)
}

/// `GET /v1/session/list`.
pub fn answer_list(state: &State, pretty: bool) -> Answer {
    sessions_answer(state, state.sessions(), pretty)
}
