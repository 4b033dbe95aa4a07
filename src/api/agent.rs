//! `/v1/agent/service/*` and `/v1/agent/check/*`: this agent's own services and checks.
//!
//! A server agent keeps no separate local state to sync by anti-entropy: each write becomes catalog commands
//! for this agent's node, applied through Raft before the empty `200` answers, so the registration is visible
//! in `/v1/health/service` as soon as the request returns. The planner says what was asked ([`AgentOp`]);
//! [`AgentOp::effects`] turns it into commands against the published state (unknown IDs are refused there)
//! and says which TTL checks the agent's timer table must arm or forget.
//!
//! Check types other than TTL are accepted and stored with their definition and initial status (critical by
//! default); the agent's check runner (`crate::agent::checks`) runs the HTTP, TCP and script ones. A script
//! check is refused unless `enable_script_checks` is on ([`SCRIPTS_DISABLED_REMOTE`]).

use super::duration::parse_go_duration;
use super::json::{self, strings_field};
use super::register::{
    body_object, bool_field, definition_body, port, service_addresses, string_map, string_or_empty,
    weights,
};
use super::router::{method_not_allowed, not_found};
use super::{ApiRequest, ApiResponse, Context, Method, Plan};
use crate::fsm::{
    CheckDefinition, CheckStatus, Command, HealthCheck, RegisterRequest, Service, State,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

type Object = Map<String, Value>;

/// Bytes of check output kept (Consul's default `check_output_max_size`).
pub const CHECK_OUTPUT_BYTES_MAX: usize = 4096;
/// The largest `OutputMaxSize` a check may ask for; larger ones are cut to it.
pub const CHECK_OUTPUT_BYTES_CAP: usize = 64 * 1024;

/// Bytes of output kept for a check: its `OutputMaxSize` (at most [`CHECK_OUTPUT_BYTES_CAP`]) or
/// [`CHECK_OUTPUT_BYTES_MAX`].
pub fn output_limit_bytes(d: &CheckDefinition) -> usize {
    match d.output_max_size {
        0 => CHECK_OUTPUT_BYTES_MAX,
        n => (n as usize).min(CHECK_OUTPUT_BYTES_CAP),
    }
}
/// Checks one service registration may carry.
pub const SERVICE_CHECKS_MAX: usize = 64;

/// What this agent is, for its own catalog entries and `/v1/agent/self`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The node ID (may be empty).
    pub node_id: String,
    /// The node address registered in the catalog.
    pub address: String,
    /// The node's tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// The node's metadata.
    pub node_meta: BTreeMap<String, String>,
    /// Whether this agent is a server.
    pub server: bool,
    /// The version string (`1.2.3`).
    pub version: String,
    /// The Serf LAN port (`Member.Port`).
    pub serf_lan_port: u16,
    /// `enable_script_checks`: script checks may be registered through the HTTP API.
    pub remote_script_checks: bool,
}

/// Consul's refusal of a script check registered through the API while `enable_script_checks` is off.
pub const SCRIPTS_DISABLED_REMOTE: &str =
    "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";

/// An agent write, as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentOp {
    /// `PUT /v1/agent/service/register`.
    RegisterService {
        /// The instance.
        service: Box<Service>,
        /// Its checks (IDs, names and `service_id` filled in).
        checks: Vec<HealthCheck>,
        /// `?replace-existing-checks`: remove the instance's other checks.
        replace_checks: bool,
    },
    /// `PUT /v1/agent/service/deregister/:id`.
    DeregisterService(String),
    /// `PUT /v1/agent/check/register`.
    RegisterCheck(Box<HealthCheck>),
    /// `PUT /v1/agent/check/deregister/:id`.
    DeregisterCheck(String),
    /// `PUT /v1/agent/check/{pass,warn,fail,update}/:id`.
    UpdateTtl {
        /// The check ID.
        id: String,
        /// The new status.
        status: CheckStatus,
        /// The new output.
        output: String,
    },
}

/// What an [`AgentOp`] does: commands applied in order, then changes to the TTL timer table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEffects {
    /// The catalog commands.
    pub commands: Vec<Command>,
    /// Per check ID: `Some(ttl_ms)` to (re)arm its TTL timer, `None` to forget it.
    pub ttls: Vec<(String, Option<u64>)>,
}

/// Plans `/v1/agent/<rest>` for the service and check writes; `None` for other agent routes.
pub fn plan(req: &ApiRequest, rest: &str) -> Option<Plan> {
    let (group, tail) = rest.split_once('/')?;
    let (verb, id) = tail.split_once('/').unwrap_or((tail, ""));
    let with_id = match (group, verb) {
        ("service" | "check", "register") if id.is_empty() => false,
        ("service", "deregister")
        | ("check", "deregister" | "pass" | "warn" | "fail" | "update") => true,
        _ => return None,
    };
    if req.method != Method::Put {
        return Some(Plan::Respond(method_not_allowed(req.method)));
    }
    if with_id && id.is_empty() {
        return Some(Plan::Respond(not_found()));
    }
    let parsed = match (group, verb) {
        ("service", "register") => service_register(req),
        ("service", _) => Ok(AgentOp::DeregisterService(id.to_string())),
        (_, "register") => check_register(req.body).map(|c| AgentOp::RegisterCheck(Box::new(c))),
        (_, "deregister") => Ok(AgentOp::DeregisterCheck(id.to_string())),
        (_, "update") => ttl_update(req.body, id),
        _ => Ok(ttl_note(req, verb, id)),
    };
    Some(match parsed {
        Ok(op) => Plan::Agent(op),
        Err(response) => Plan::Respond(response),
    })
}

fn service_register(req: &ApiRequest) -> Result<AgentOp, ApiResponse> {
    let (service, checks) = service_body(req.body)?;
    Ok(AgentOp::RegisterService {
        service: Box::new(service),
        checks,
        replace_checks: req.query.has("replace-existing-checks"),
    })
}

fn ttl_note(req: &ApiRequest, verb: &str, id: &str) -> AgentOp {
    let status = match verb {
        "pass" => CheckStatus::Passing,
        "warn" => CheckStatus::Warning,
        _ => CheckStatus::Critical,
    };
    AgentOp::UpdateTtl {
        id: id.to_string(),
        status,
        output: req.query.get("note").unwrap_or("").to_string(),
    }
}

fn ttl_update(body: &[u8], id: &str) -> Result<AgentOp, ApiResponse> {
    let object = body_object(body, "agent.checkUpdate")?;
    let status_text = string_or_empty(&object, "Status")?;
    let status = match CheckStatus::parse(&status_text) {
        Some(s) if s != CheckStatus::Maintenance => s,
        _ => {
            let text = format!("Invalid check status: '{status_text}'");
            return Err(ApiResponse::text(400, text));
        }
    };
    Ok(AgentOp::UpdateTtl {
        id: id.to_string(),
        status,
        output: string_or_empty(&object, "Output")?,
    })
}

/// Parses a service definition (Consul's `ServiceDefinition`): the instance and its checks.
pub fn service_body(body: &[u8]) -> Result<(Service, Vec<HealthCheck>), ApiResponse> {
    let object = body_object(body, "structs.ServiceDefinition")?;
    let name = string_or_empty(&object, "Name")?;
    if name.is_empty() {
        return Err(ApiResponse::text(400, "Missing service name"));
    }
    let address = string_or_empty(&object, "Address")?;
    if matches!(address.as_str(), "0.0.0.0" | "::" | "[::]") {
        return Err(ApiResponse::text(400, "Invalid service address"));
    }
    let id = string_or_empty(&object, "ID")?;
    let service = Service {
        id: if id.is_empty() { name.clone() } else { id },
        service: name,
        tags: strings_field(&object, "Tags")?.unwrap_or_default(),
        address,
        tagged_addresses: service_addresses(&object)?,
        meta: string_map(&object, "Meta")?,
        port: port(&object, "Port")?,
        weights: weights(&object)?,
        enable_tag_override: bool_field(&object, "EnableTagOverride")?,
        kind: string_or_empty(&object, "Kind")?,
        ..Service::default()
    };
    let definitions = service_check_objects(&object)?;
    let count = definitions.len();
    let mut checks = Vec::with_capacity(count);
    for (at, definition) in definitions.into_iter().enumerate() {
        let mut check = check_body(definition)?;
        check.service_id = service.id.clone();
        if check.check_id.is_empty() {
            check.check_id = match count {
                1 => format!("service:{}", service.id),
                _ => format!("service:{}:{}", service.id, at + 1),
            };
        }
        if check.name.is_empty() {
            check.name = format!("Service '{}' check", service.service);
        }
        checks.push(check);
    }
    Ok((service, checks))
}

/// `Check` and the items of `Checks`, in that order.
fn service_check_objects(object: &Object) -> Result<Vec<&Object>, ApiResponse> {
    let mut out = Vec::new();
    match json::field(object, "Check") {
        None | Some(Value::Null) => {}
        Some(Value::Object(check)) => out.push(check),
        Some(other) => return Err(json::decode_error("Check", "structs.CheckType", other)),
    }
    match json::field(object, "Checks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(check) = item else {
                    return Err(json::decode_error("Checks", "structs.CheckType", item));
                };
                out.push(check);
            }
        }
        Some(other) => return Err(json::decode_error("Checks", "structs.CheckTypes", other)),
    }
    if out.len() > SERVICE_CHECKS_MAX {
        let text = format!("Invalid check: at most {SERVICE_CHECKS_MAX} checks per service");
        return Err(ApiResponse::text(400, text));
    }
    Ok(out)
}

/// Parses `PUT /v1/agent/check/register`'s body (Consul's `CheckDefinition`).
pub fn check_register(body: &[u8]) -> Result<HealthCheck, ApiResponse> {
    let object = body_object(body, "structs.CheckDefinition")?;
    let mut check = check_body(&object)?;
    if check.name.is_empty() {
        return Err(ApiResponse::text(400, "Missing check name"));
    }
    if check.check_id.is_empty() {
        check.check_id = check.name.clone();
    }
    check.service_id = string_or_empty(&object, "ServiceID")?;
    Ok(check)
}

/// One check definition: its ID (`CheckID` or `ID`), name, notes, initial status and how it runs.
fn check_body(object: &Object) -> Result<HealthCheck, ApiResponse> {
    let status = match string_or_empty(object, "Status")?.as_str() {
        "" => CheckStatus::Critical,
        text => CheckStatus::parse(text)
            .filter(|s| *s != CheckStatus::Maintenance)
            .ok_or_else(|| ApiResponse::text(400, "Bad check status"))?,
    };
    let mut definition = definition_body(object)?;
    if definition.script_args.is_empty() {
        definition.script_args = strings_field(object, "Args")?.unwrap_or_default();
    }
    validate(&definition).map_err(|e| ApiResponse::text(400, format!("Invalid check: {e}")))?;
    let mut check_id = string_or_empty(object, "CheckID")?;
    if check_id.is_empty() {
        check_id = string_or_empty(object, "ID")?;
    }
    Ok(HealthCheck {
        check_id,
        name: string_or_empty(object, "Name")?,
        status,
        notes: string_or_empty(object, "Notes")?,
        check_type: check_type(&definition).to_string(),
        definition,
        ..HealthCheck::default()
    })
}

/// Consul's check type name for a definition.
fn check_type(d: &CheckDefinition) -> &'static str {
    let kinds = [
        (!d.ttl.is_empty(), "ttl"),
        (
            !d.script_args.is_empty() && d.docker_container_id.is_empty(),
            "script",
        ),
        (!d.docker_container_id.is_empty(), "docker"),
        (!d.http.is_empty(), "http"),
        (!d.tcp.is_empty(), "tcp"),
        (!d.udp.is_empty(), "udp"),
        (!d.grpc.is_empty(), "grpc"),
        (!d.h2ping.is_empty(), "h2ping"),
        (!d.os_service.is_empty(), "os_service"),
        (
            !d.alias_service.is_empty() || !d.alias_node.is_empty(),
            "alias",
        ),
    ];
    kinds
        .iter()
        .find(|(yes, _)| *yes)
        .map_or("", |(_, name)| name)
}

/// Consul's `CheckType.Validate` rules (interval, TTL, alias, thresholds), in its order.
fn validate(d: &CheckDefinition) -> Result<(), &'static str> {
    let interval_check = [&d.http, &d.tcp, &d.udp, &d.grpc, &d.h2ping, &d.os_service]
        .iter()
        .any(|field| !field.is_empty())
        || !d.script_args.is_empty();
    let alias = !d.alias_node.is_empty() || !d.alias_service.is_empty();
    let (ttl, interval) = (!d.ttl.is_empty(), !d.interval.is_empty());
    if ttl && interval {
        return Err("Interval and TTL cannot both be specified");
    }
    if interval_check && !interval {
        return Err("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks");
    }
    if interval_check && alias {
        return Err("Interval cannot be set for Alias checks");
    }
    if alias && ttl {
        return Err("TTL must be not be set for Alias checks");
    }
    if !interval_check && !alias && !ttl {
        return Err("TTL must be > 0 for TTL checks");
    }
    if d.failures_before_warning > d.failures_before_critical {
        return Err("FailuresBeforeWarning can't be higher than FailuresBeforeCritical");
    }
    Ok(())
}

/// A TTL as milliseconds (`None`: not a TTL check).
pub fn ttl_ms(check: &HealthCheck) -> Option<u64> {
    let ns = parse_go_duration(&check.definition.ttl).ok()?;
    (ns > 0).then(|| (ns as u64).div_ceil(1_000_000))
}

impl AgentOp {
    /// The commands and TTL changes that carry out this op against `state` for the agent in `ctx`, or
    /// Consul's refusal (unknown service or check).
    pub fn effects(&self, state: &State, ctx: &Context) -> Result<AgentEffects, ApiResponse> {
        self.allowed(ctx)?;
        match self {
            AgentOp::RegisterService {
                service,
                checks,
                replace_checks,
            } => Ok(register_service(
                state,
                ctx,
                service,
                checks,
                *replace_checks,
            )),
            AgentOp::DeregisterService(id) => deregister_service(state, ctx, id),
            AgentOp::RegisterCheck(check) => register_check(state, ctx, check),
            AgentOp::DeregisterCheck(id) => deregister_check(state, ctx, id),
            AgentOp::UpdateTtl { id, status, output } => {
                update_ttl(state, ctx, id, *status, output)
            }
        }
    }
}

impl AgentOp {
    /// Refuses (`500`, Consul's text) a script check registered while remote script checks are off.
    fn allowed(&self, ctx: &Context) -> Result<(), ApiResponse> {
        let checks: &[HealthCheck] = match self {
            AgentOp::RegisterService { checks, .. } => checks,
            AgentOp::RegisterCheck(check) => std::slice::from_ref(check.as_ref()),
            _ => &[],
        };
        let script = checks.iter().any(|c| c.check_type == "script");
        if script && !ctx.agent.remote_script_checks {
            return Err(ApiResponse::text(500, SCRIPTS_DISABLED_REMOTE));
        }
        Ok(())
    }
}

/// A registration of this agent's node carrying `service` and `checks`.
pub fn node_request(
    ctx: &Context,
    service: Option<Service>,
    checks: Vec<HealthCheck>,
) -> RegisterRequest {
    let me = &ctx.agent;
    RegisterRequest {
        id: me.node_id.clone(),
        node: ctx.node_name.clone(),
        address: me.address.clone(),
        datacenter: ctx.datacenter.clone(),
        tagged_addresses: me.tagged_addresses.clone(),
        node_meta: me.node_meta.clone(),
        service,
        checks: checks
            .into_iter()
            .map(|c| HealthCheck {
                node: ctx.node_name.clone(),
                ..c
            })
            .collect(),
        skip_node_update: false,
    }
}

fn register_command(ctx: &Context, request: RegisterRequest) -> Command {
    Command::CatalogRegister {
        now_ms: ctx.now_ms,
        request: Box::new(request),
    }
}

fn deregister_command(ctx: &Context, service_id: Option<&str>, check_id: Option<&str>) -> Command {
    Command::CatalogDeregister {
        now_ms: ctx.now_ms,
        node: ctx.node_name.clone(),
        service_id: service_id.map(str::to_string),
        check_id: check_id.map(str::to_string),
    }
}

fn find_check<'a>(state: &'a State, ctx: &Context, id: &str) -> Option<&'a HealthCheck> {
    state
        .node_checks(&ctx.node_name)
        .into_iter()
        .find(|c| c.check_id == id)
}

fn has_service(state: &State, ctx: &Context, id: &str) -> bool {
    state
        .node_services(&ctx.node_name)
        .is_some_and(|(_, services)| services.iter().any(|s| s.id == id))
}

fn register_service(
    state: &State,
    ctx: &Context,
    service: &Service,
    checks: &[HealthCheck],
    replace_checks: bool,
) -> AgentEffects {
    let mut commands = Vec::new();
    let mut ttls: Vec<(String, Option<u64>)> = Vec::new();
    if replace_checks {
        for old in state.node_checks(&ctx.node_name) {
            let kept = checks.iter().any(|c| c.check_id == old.check_id);
            if old.service_id == service.id && !kept {
                commands.push(deregister_command(ctx, None, Some(&old.check_id)));
                ttls.push((old.check_id.clone(), None));
            }
        }
    }
    ttls.extend(checks.iter().map(|c| (c.check_id.clone(), ttl_ms(c))));
    let request = node_request(ctx, Some(service.clone()), checks.to_vec());
    commands.insert(0, register_command(ctx, request));
    AgentEffects { commands, ttls }
}

fn deregister_service(state: &State, ctx: &Context, id: &str) -> Result<AgentEffects, ApiResponse> {
    if !has_service(state, ctx, id) {
        let text = format!(
            "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
        );
        return Err(ApiResponse::text(404, text));
    }
    let ttls = state
        .node_checks(&ctx.node_name)
        .into_iter()
        .filter(|c| c.service_id == id)
        .map(|c| (c.check_id.clone(), None))
        .collect();
    Ok(AgentEffects {
        commands: vec![deregister_command(ctx, Some(id), None)],
        ttls,
    })
}

fn register_check(
    state: &State,
    ctx: &Context,
    check: &HealthCheck,
) -> Result<AgentEffects, ApiResponse> {
    if !check.service_id.is_empty() && !has_service(state, ctx, &check.service_id) {
        let text = format!("ServiceID {:?} does not exist", check.service_id);
        return Err(ApiResponse::text(404, text));
    }
    let request = node_request(ctx, None, vec![check.clone()]);
    Ok(AgentEffects {
        commands: vec![register_command(ctx, request)],
        ttls: vec![(check.check_id.clone(), ttl_ms(check))],
    })
}

fn deregister_check(state: &State, ctx: &Context, id: &str) -> Result<AgentEffects, ApiResponse> {
    if find_check(state, ctx, id).is_none() {
        let text = format!(
            "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
        );
        return Err(ApiResponse::text(404, text));
    }
    Ok(AgentEffects {
        commands: vec![deregister_command(ctx, None, Some(id))],
        ttls: vec![(id.to_string(), None)],
    })
}

fn update_ttl(
    state: &State,
    ctx: &Context,
    id: &str,
    status: CheckStatus,
    output: &str,
) -> Result<AgentEffects, ApiResponse> {
    let found = find_check(state, ctx, id).and_then(|c| Some((c, ttl_ms(c)?)));
    let Some((check, ttl)) = found else {
        let text = format!("CheckID {id:?} does not have associated TTL");
        return Err(ApiResponse::text(500, text));
    };
    let updated = HealthCheck {
        status,
        output: truncate(output, CHECK_OUTPUT_BYTES_MAX).to_string(),
        ..check.clone()
    };
    Ok(AgentEffects {
        commands: vec![register_command(
            ctx,
            node_request(ctx, None, vec![updated]),
        )],
        ttls: vec![(id.to_string(), Some(ttl))],
    })
}

/// The output a TTL check gets when it expires (Consul's wording, keeping the last output).
pub fn expired_output(last: &str) -> String {
    if last.is_empty() {
        "TTL expired".to_string()
    } else {
        format!("TTL expired (last output before timeout follows): {last}")
    }
}

/// The command that turns an expired TTL check critical; `None` when the check is gone or already says so.
pub fn expire_command(state: &State, ctx: &Context, id: &str) -> Option<Command> {
    let check = find_check(state, ctx, id)?;
    ttl_ms(check)?;
    if check.status == CheckStatus::Critical && check.output.starts_with("TTL expired") {
        return None;
    }
    let updated = HealthCheck {
        status: CheckStatus::Critical,
        output: truncate(&expired_output(&check.output), CHECK_OUTPUT_BYTES_MAX).to_string(),
        ..check.clone()
    };
    Some(register_command(
        ctx,
        node_request(ctx, None, vec![updated]),
    ))
}

/// The command that records a run of check `id` (status and output, the output cut to the check's
/// [`output_limit_bytes`], or [`CHECK_OUTPUT_BYTES_CAP`] when it names none); `None` when the check is gone or already says exactly that.
pub fn check_result_command(
    state: &State,
    ctx: &Context,
    id: &str,
    status: CheckStatus,
    output: &str,
) -> Option<Command> {
    let check = find_check(state, ctx, id)?;
    // The runner cuts output to the agent's `check_output_max_size` when the check names no limit.
    let limit = match check.definition.output_max_size {
        0 => CHECK_OUTPUT_BYTES_CAP,
        _ => output_limit_bytes(&check.definition),
    };
    let output = truncate(output, limit);
    if check.status == status && check.output == output {
        return None;
    }
    let updated = HealthCheck {
        status,
        output: output.to_string(),
        ..check.clone()
    };
    Some(register_command(
        ctx,
        node_request(ctx, None, vec![updated]),
    ))
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{body_text, ctx, plan_of, respond};
    use super::*;

    fn op(target: &str, body: &str) -> AgentOp {
        match plan_of(Method::Put, target, body.as_bytes()) {
            Plan::Agent(op) => op,
            other => panic!("{target}: expected an agent op, got {other:?}"),
        }
    }

    fn refused(method: Method, target: &str, body: &str) -> (u16, String) {
        let response = respond(plan_of(method, target, body.as_bytes()));
        (response.status, body_text(&response))
    }

    #[test]
    fn a_service_body_takes_any_key_case_and_names_its_checks() {
        let body = r#"{"name":"web","Tags":["a"],"port":80,"enable_tag_override":true,
            "Weights":{"Passing":3,"Warning":1},"meta":{"k":"v"},
            "checks":[{"ttl":"10s"},{"HTTP":"http://x","Interval":"5s","Name":"h"}]}"#;
        let AgentOp::RegisterService {
            service,
            checks,
            replace_checks,
        } = op("/v1/agent/service/register?replace-existing-checks", body)
        else {
            panic!("not a service registration");
        };
        assert!(replace_checks);
        assert_eq!((service.id.as_str(), service.port), ("web", 80));
        assert!(service.enable_tag_override);
        assert_eq!(service.weights.passing, 3);
        let ids: Vec<&str> = checks.iter().map(|c| c.check_id.as_str()).collect();
        assert_eq!(ids, ["service:web:1", "service:web:2"]);
        assert_eq!(checks[0].name, "Service 'web' check");
        assert_eq!(
            (checks[0].check_type.as_str(), checks[1].check_type.as_str()),
            ("ttl", "http")
        );
        assert_eq!(checks[0].status, CheckStatus::Critical);
        assert_eq!(ttl_ms(&checks[0]), Some(10_000));
    }

    #[test]
    fn bad_agent_input_gets_consuls_errors() {
        let register = "/v1/agent/service/register";
        assert_eq!(
            refused(Method::Put, register, "{}"),
            (400, "Missing service name".into())
        );
        assert_eq!(refused(Method::Put, register, "").0, 400);
        assert_eq!(refused(Method::Get, register, "").0, 405);
        let bad_status = r#"{"Name":"c","TTL":"1s","Status":"nope"}"#;
        assert_eq!(
            refused(Method::Put, "/v1/agent/check/register", bad_status),
            (400, "Bad check status".into())
        );
        let no_ttl = r#"{"Name":"c"}"#;
        assert_eq!(
            refused(Method::Put, "/v1/agent/check/register", no_ttl),
            (400, "Invalid check: TTL must be > 0 for TTL checks".into())
        );
        assert_eq!(refused(Method::Put, "/v1/agent/check/pass/", "").0, 404);
    }

    #[test]
    fn script_checks_are_refused_unless_enabled() {
        let state = State::default();
        let mut c = ctx();
        let script = op(
            "/v1/agent/check/register",
            r#"{"Name":"s","Args":["/bin/true"],"Interval":"1s"}"#,
        );
        let refusal = script.effects(&state, &c).expect_err("scripts off");
        assert_eq!(
            (refusal.status, body_text(&refusal)),
            (500, SCRIPTS_DISABLED_REMOTE.to_string())
        );
        std::sync::Arc::make_mut(&mut c.agent).remote_script_checks = true;
        assert!(script.effects(&state, &c).is_ok());
    }

    #[test]
    fn a_check_result_is_proposed_only_when_it_changes() {
        let c = ctx();
        let register = op(
            "/v1/agent/check/register",
            r#"{"Name":"h","HTTP":"http://127.0.0.1:1/","Interval":"1s"}"#,
        );
        let effects = register.effects(&State::default(), &c).expect("register");
        let mut fsm = crate::fsm::Fsm::new();
        for command in &effects.commands {
            fsm.apply(1, command);
        }
        let state = fsm.state();
        let same = check_result_command(&state, &c, "h", CheckStatus::Critical, "");
        assert!(same.is_none());
        // Without an `OutputMaxSize` the runner has already cut the output (to the agent's limit); the
        // command only bounds it.
        let long = "x".repeat(CHECK_OUTPUT_BYTES_CAP + 10);
        let Some(Command::CatalogRegister { request, .. }) =
            check_result_command(&state, &c, "h", CheckStatus::Passing, &long)
        else {
            panic!("no command");
        };
        assert_eq!(request.checks[0].status, CheckStatus::Passing);
        assert_eq!(request.checks[0].output.len(), CHECK_OUTPUT_BYTES_CAP);
        // With one, the check's own limit holds.
        let limited = op(
            "/v1/agent/check/register",
            r#"{"Name":"l","HTTP":"http://127.0.0.1:1/","Interval":"1s","OutputMaxSize":10}"#,
        );
        for command in &limited.effects(&state, &c).expect("register").commands {
            fsm.apply(2, command);
        }
        let state = fsm.state();
        let Some(Command::CatalogRegister { request, .. }) =
            check_result_command(&state, &c, "l", CheckStatus::Passing, &long)
        else {
            panic!("no command");
        };
        assert_eq!(request.checks[0].output, "x".repeat(10));
        assert!(check_result_command(&state, &c, "gone", CheckStatus::Passing, "").is_none());
    }

    #[test]
    fn unknown_ids_are_refused_against_the_state() {
        let state = State::default();
        let c = ctx();
        let pass = op("/v1/agent/check/pass/x?note=hi", "");
        let refusal = pass.effects(&state, &c).expect_err("unknown check");
        assert_eq!(refusal.status, 500);
        let dereg = op("/v1/agent/service/deregister/web", "");
        assert_eq!(dereg.effects(&state, &c).expect_err("unknown").status, 404);
        let register = op(
            "/v1/agent/service/register",
            r#"{"Name":"web","Check":{"TTL":"2s"}}"#,
        );
        let effects = register.effects(&state, &c).expect("register");
        assert_eq!(effects.ttls, vec![("service:web".to_string(), Some(2_000))]);
        let Command::CatalogRegister { request, .. } = &effects.commands[0] else {
            panic!("not a register");
        };
        assert_eq!(
            (request.node.as_str(), request.address.as_str()),
            ("node1", "127.0.0.1")
        );
        assert_eq!(request.checks[0].node, "node1");
    }
}
