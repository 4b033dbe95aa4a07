//! `/v1/agent/service/*` and `/v1/agent/check/*`: this agent's own services and checks.
//!
//! The planner says what was asked ([`AgentOp`]); [`AgentOp::apply`] carries it out on the agent's local state
//! ([`super::local::LocalState`], the truth for this node: unknown IDs are refused there) and says which TTL
//! checks the agent's timer table must arm or forget. The front end then syncs the change to the catalog
//! (anti-entropy) before the empty `200` answers, so the registration is visible in `/v1/health/service` as
//! soon as the request returns.
//!
//! Every check type is accepted and stored with its definition and initial status (critical by default);
//! the agent's check runner (`crate::agent::checks`) runs them. A script check is refused unless
//! `enable_script_checks` is on ([`SCRIPTS_DISABLED_REMOTE`]).

use super::duration::parse_go_duration;
use super::json::{self, strings_field};
use super::local::LocalState;
use super::register::{
    body_object, bool_field, definition_body, port, service_addresses, string_map, string_or_empty,
    weights,
};
use super::router::{method_not_allowed, not_found};
use super::{ApiRequest, ApiResponse, Context, Method, Plan};
use crate::fsm::{CheckDefinition, CheckStatus, HealthCheck, RegisterRequest, Service};
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
    /// `check_update_interval`: how long a check's change of output alone waits before it is synced.
    pub check_update_interval_ms: u64,
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
    /// `PUT /v1/agent/service/maintenance/:id`: `Some(reason)` enables, `None` disables.
    ServiceMaintenance {
        /// The service ID.
        id: String,
        /// The reason given (empty: Consul's default note).
        reason: Option<String>,
    },
    /// `PUT /v1/agent/maintenance`: `Some(reason)` enables, `None` disables.
    NodeMaintenance(Option<String>),
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

/// The TTL timer changes of an agent write: per check ID, `Some(ttl_ms)` to (re)arm its timer, `None` to
/// forget it.
pub type TtlChanges = Vec<(String, Option<u64>)>;

/// Plans `/v1/agent/<rest>` for the service and check writes; `None` for other agent routes.
pub fn plan(req: &ApiRequest, rest: &str) -> Option<Plan> {
    if rest == "maintenance" {
        return Some(maintenance_plan(req, None));
    }
    if let Some(id) = rest.strip_prefix("service/maintenance/") {
        if id.is_empty() || id.contains('/') {
            return Some(Plan::Respond(not_found()));
        }
        return Some(maintenance_plan(req, Some(id)));
    }
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

/// The check ID of service `id`'s maintenance check.
pub fn service_maintenance_check_id(id: &str) -> String {
    format!("_service_maintenance:{id}")
}

/// The check ID of the node's maintenance check.
pub const NODE_MAINTENANCE_CHECK_ID: &str = "_node_maintenance";

fn maintenance_plan(req: &ApiRequest, service: Option<&str>) -> Plan {
    if req.method != Method::Put {
        return Plan::Respond(method_not_allowed(req.method));
    }
    let enable = match req.query.get("enable") {
        None | Some("") => {
            return Plan::Respond(ApiResponse::text(400, "Missing value for enable"))
        }
        Some(v) => match parse_go_bool(v) {
            Some(enable) => enable,
            None => {
                let text = format!("Invalid value for enable: {v:?}");
                return Plan::Respond(ApiResponse::text(400, text));
            }
        },
    };
    let reason = enable.then(|| req.query.get("reason").unwrap_or("").to_string());
    Plan::Agent(match service {
        Some(id) => AgentOp::ServiceMaintenance {
            id: id.to_string(),
            reason,
        },
        None => AgentOp::NodeMaintenance(reason),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The critical check that puts service `service` (or with `None` the node) in maintenance.
fn maintenance_check(service: Option<&Service>, reason: &str) -> HealthCheck {
    let (check_id, name, what) = match service {
        Some(s) => (
            service_maintenance_check_id(&s.id),
            "Service Maintenance Mode",
            "service",
        ),
        None => (
            NODE_MAINTENANCE_CHECK_ID.to_string(),
            "Node Maintenance Mode",
            "node",
        ),
    };
    let notes = if reason.is_empty() {
        format!(
            "Maintenance mode is enabled for this {what}, but no reason was provided. This is a default message."
        )
    } else {
        reason.to_string()
    };
    HealthCheck {
        check_id,
        name: name.to_string(),
        status: CheckStatus::Critical,
        notes,
        service_id: service.map(|s| s.id.clone()).unwrap_or_default(),
        service_name: service.map(|s| s.service.clone()).unwrap_or_default(),
        check_type: "maintenance".to_string(),
        ..HealthCheck::default()
    }
}

fn set_maintenance(
    local: &mut LocalState,
    ctx: &Context,
    service_id: Option<&str>,
    reason: Option<&str>,
) -> Result<TtlChanges, ApiResponse> {
    let service = match service_id {
        Some(id) => match local.service(id) {
            Some(s) => Some(s.clone()),
            None => {
                let text = format!("No service registered with ID {id:?}");
                return Err(ApiResponse::text(404, text));
            }
        },
        None => None,
    };
    let check_id = service_id.map_or_else(
        || NODE_MAINTENANCE_CHECK_ID.to_string(),
        service_maintenance_check_id,
    );
    let present = local.check(&check_id).is_some();
    match reason {
        Some(reason) if !present => {
            let check = maintenance_check(service.as_ref(), reason);
            local.add_check(on_node(&check, ctx), true)?;
        }
        None if present => local.remove_check(&check_id)?,
        _ => {}
    }
    Ok(Vec::new())
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
    /// Carries out this op on the agent's local state (anti-entropy then syncs it to the catalog) and says
    /// which TTL timers change, or gives Consul's refusal (unknown service or check, script checks off).
    /// With `persist` (a write through the API, not from the configuration files) what it adds is kept
    /// across restarts.
    pub fn apply(
        &self,
        local: &mut LocalState,
        ctx: &Context,
        persist: bool,
    ) -> Result<TtlChanges, ApiResponse> {
        self.allowed(ctx)?;
        match self {
            AgentOp::RegisterService {
                service,
                checks,
                replace_checks,
            } => local.add_service(
                (**service).clone(),
                checks.iter().map(|c| on_node(c, ctx)).collect(),
                *replace_checks,
                persist,
            ),
            AgentOp::DeregisterService(id) => local.remove_service(id),
            AgentOp::RegisterCheck(check) => {
                let ttl = local.add_check(on_node(check, ctx), persist)?;
                Ok(vec![(check.check_id.clone(), ttl)])
            }
            AgentOp::DeregisterCheck(id) => {
                local.remove_check(id)?;
                Ok(vec![(id.clone(), None)])
            }
            AgentOp::UpdateTtl { id, status, output } => {
                update_ttl(local, ctx, id, *status, output)
            }
            AgentOp::ServiceMaintenance { id, reason } => {
                set_maintenance(local, ctx, Some(id), reason.as_deref())
            }
            AgentOp::NodeMaintenance(reason) => {
                set_maintenance(local, ctx, None, reason.as_deref())
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

/// `check` on this agent's node (as `/v1/agent/checks` shows it).
fn on_node(check: &HealthCheck, ctx: &Context) -> HealthCheck {
    HealthCheck {
        node: ctx.node_name.clone(),
        ..check.clone()
    }
}

fn update_ttl(
    local: &mut LocalState,
    ctx: &Context,
    id: &str,
    status: CheckStatus,
    output: &str,
) -> Result<TtlChanges, ApiResponse> {
    let Some(ttl) = local.check(id).and_then(ttl_ms) else {
        let text = format!("CheckID {id:?} does not have associated TTL");
        return Err(ApiResponse::text(500, text));
    };
    let defer_ms = ctx.agent.check_update_interval_ms;
    local.update_check_deferring(id, status, output, ctx.now_ms, defer_ms);
    Ok(vec![(id.to_string(), Some(ttl))])
}

/// The output a TTL check gets when it expires (Consul's wording, keeping the last output).
pub fn expired_output(last: &str) -> String {
    if last.is_empty() {
        "TTL expired".to_string()
    } else {
        format!("TTL expired (last output before timeout follows): {last}")
    }
}

/// Turns an expired TTL check critical in the local state; `false` when the check is gone, is not a TTL
/// check, or already says it expired.
pub fn expire_ttl(local: &mut LocalState, id: &str) -> bool {
    let Some(check) = local.check(id).filter(|c| ttl_ms(c).is_some()) else {
        return false;
    };
    if check.status == CheckStatus::Critical && check.output.starts_with("TTL expired") {
        return false;
    }
    let output = expired_output(&check.output);
    local.update_check(id, CheckStatus::Critical, &output)
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
        let mut local = LocalState::new();
        let mut c = ctx();
        let script = op(
            "/v1/agent/check/register",
            r#"{"Name":"s","Args":["/bin/true"],"Interval":"1s"}"#,
        );
        let refusal = script.apply(&mut local, &c, true).expect_err("scripts off");
        assert_eq!(
            (refusal.status, body_text(&refusal)),
            (500, SCRIPTS_DISABLED_REMOTE.to_string())
        );
        std::sync::Arc::make_mut(&mut c.agent).remote_script_checks = true;
        assert!(script.apply(&mut local, &c, true).is_ok());
    }

    #[test]
    fn a_check_result_changes_the_local_state_only_when_it_differs() {
        let c = ctx();
        let mut local = LocalState::new();
        let register = op(
            "/v1/agent/check/register",
            r#"{"Name":"h","HTTP":"http://127.0.0.1:1/","Interval":"1s"}"#,
        );
        register.apply(&mut local, &c, true).expect("register");
        let before = local.revision();
        assert!(local.update_check("h", CheckStatus::Critical, ""));
        assert_eq!(local.revision(), before, "the same status and output");
        // Without an `OutputMaxSize` the runner has already cut the output (to the agent's limit); the
        // local state only bounds it.
        let long = "x".repeat(CHECK_OUTPUT_BYTES_CAP + 10);
        assert!(local.update_check("h", CheckStatus::Passing, &long));
        let check = local.check("h").expect("check");
        assert_eq!(check.status, CheckStatus::Passing);
        assert_eq!(check.output.len(), CHECK_OUTPUT_BYTES_CAP);
        // With one, the check's own limit holds.
        op(
            "/v1/agent/check/register",
            r#"{"Name":"l","HTTP":"http://127.0.0.1:1/","Interval":"1s","OutputMaxSize":10}"#,
        )
        .apply(&mut local, &c, true)
        .expect("register");
        assert!(local.update_check("l", CheckStatus::Passing, &long));
        assert_eq!(
            local.check("l").map(|c| c.output.clone()),
            Some("x".repeat(10))
        );
        assert!(!local.update_check("gone", CheckStatus::Passing, ""));
    }

    #[test]
    fn unknown_ids_are_refused_against_the_local_state() {
        let mut local = LocalState::new();
        let c = ctx();
        let pass = op("/v1/agent/check/pass/x?note=hi", "");
        let refusal = pass.apply(&mut local, &c, true).expect_err("unknown check");
        assert_eq!(refusal.status, 500);
        let dereg = op("/v1/agent/service/deregister/web", "");
        let refusal = dereg.apply(&mut local, &c, true).expect_err("unknown");
        assert_eq!(refusal.status, 404);
        let bound = op(
            "/v1/agent/check/register",
            r#"{"Name":"c","TTL":"1s","ServiceID":"web"}"#,
        );
        let refusal = bound.apply(&mut local, &c, true).expect_err("no service");
        assert_eq!(
            (refusal.status, body_text(&refusal)),
            (404, r#"ServiceID "web" does not exist"#.to_string())
        );
        let register = op(
            "/v1/agent/service/register",
            r#"{"Name":"web","Check":{"TTL":"2s"}}"#,
        );
        let ttls = register.apply(&mut local, &c, true).expect("register");
        assert_eq!(ttls, vec![("service:web".to_string(), Some(2_000))]);
        let steps = local.pending(&c);
        let crate::fsm::Command::CatalogRegister { request, .. } = &steps[0].command else {
            panic!("not a register");
        };
        assert_eq!(
            (request.node.as_str(), request.address.as_str()),
            ("node1", "127.0.0.1")
        );
        assert_eq!(request.checks[0].node, "node1");
        assert!(bound.apply(&mut local, &c, true).is_ok());
    }

    #[test]
    fn maintenance_adds_and_removes_a_critical_check() {
        let mut local = LocalState::new();
        let c = ctx();
        let missing = plan_of(Method::Put, "/v1/agent/maintenance", b"");
        let Plan::Respond(missing) = missing else {
            panic!("not refused");
        };
        assert_eq!(
            (missing.status, body_text(&missing)),
            (400, "Missing value for enable".into())
        );
        let bad = plan_of(Method::Put, "/v1/agent/maintenance?enable=yes", b"");
        assert!(matches!(
            bad,
            Plan::Respond(ApiResponse { status: 400, .. })
        ));
        op("/v1/agent/maintenance?enable=true", "")
            .apply(&mut local, &c, true)
            .expect("node maintenance");
        let check = local.check(NODE_MAINTENANCE_CHECK_ID).expect("added");
        assert_eq!(check.status, CheckStatus::Critical);
        assert!(check
            .notes
            .starts_with("Maintenance mode is enabled for this node"));
        let unknown = op("/v1/agent/service/maintenance/web?enable=true", "");
        assert_eq!(
            unknown
                .apply(&mut local, &c, true)
                .expect_err("no such")
                .status,
            404
        );
        op("/v1/agent/service/register", r#"{"Name":"web"}"#)
            .apply(&mut local, &c, true)
            .expect("register");
        op(
            "/v1/agent/service/maintenance/web?enable=true&reason=deploy",
            "",
        )
        .apply(&mut local, &c, true)
        .expect("service maintenance");
        let check = local.check("_service_maintenance:web").expect("added");
        assert_eq!(
            (check.notes.as_str(), check.service_id.as_str()),
            ("deploy", "web")
        );
        op("/v1/agent/service/maintenance/web?enable=false", "")
            .apply(&mut local, &c, true)
            .expect("off");
        op("/v1/agent/maintenance?enable=0", "")
            .apply(&mut local, &c, true)
            .expect("off");
        assert_eq!(local.checks().count(), 0);
    }
}
