//! `GET /v1/agent/{services,service/:id,checks,self}` and `/v1/agent/health/service/{id,name}/:x`: this agent's
//! own services and checks, answered from its local state ([`LocalState`], not the catalog), and what the agent is.

use super::cluster::ClusterView;
use super::filter::Filter;
use super::local::LocalState;
use super::params::{fits, Selection};
use super::router::method_not_allowed;
use super::views::CheckJson;
use super::{json, ApiRequest, ApiResponse, Context, Method, Plan};
use crate::fsm::{CheckStatus, HealthCheck, Service, ServiceAddress};
use crate::logging::LogLevel;
use serde::Serialize;
use std::collections::BTreeMap;

/// What an agent read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRead {
    /// `GET /v1/agent/services` (`?filter`).
    Services(Option<Filter>),
    /// `GET /v1/agent/service/:id`.
    Service(String),
    /// `GET /v1/agent/checks` (`?filter`).
    Checks(Option<Filter>),
    /// `GET /v1/agent/self`.
    Myself,
    /// `GET /v1/agent/health/service/id/:id` (`text`: `?format=text`).
    HealthById {
        /// The service ID.
        id: String,
        /// Answer with the status as plain text.
        text: bool,
    },
    /// `GET /v1/agent/health/service/name/:name` (`text`: `?format=text`).
    HealthByName {
        /// The service name.
        name: String,
        /// Answer with the status as plain text.
        text: bool,
    },
}

/// Plans the agent reads; `None` for other agent routes.
pub fn plan(req: &ApiRequest, rest: &str) -> Option<Plan> {
    let read = match rest.split_once('/') {
        None if rest == "services" => match Selection::parse(&req.query) {
            Ok(selection) => AgentRead::Services(selection.filter),
            Err(response) => return Some(Plan::Respond(response)),
        },
        None if rest == "checks" => match Selection::parse(&req.query) {
            Ok(selection) => AgentRead::Checks(selection.filter),
            Err(response) => return Some(Plan::Respond(response)),
        },
        None if rest == "self" => AgentRead::Myself,
        Some(("service", id)) if !id.is_empty() && !id.contains('/') => {
            AgentRead::Service(id.to_string())
        }
        Some(("health", tail)) => health_read(req, tail)?,
        _ => return None,
    };
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(Plan::Respond(method_not_allowed(req.method)));
    }
    // Agent-local data: no consistency modes and no index blocking, as in Consul.
    Some(Plan::AgentRead(read, req.query.has("pretty")))
}

fn health_read(req: &ApiRequest, tail: &str) -> Option<AgentRead> {
    let text = req.query.get("format") == Some("text");
    let (by, key) = tail.strip_prefix("service/")?.split_once('/')?;
    if key.is_empty() || key.contains('/') {
        return None;
    }
    match by {
        "id" => Some(AgentRead::HealthById {
            id: key.to_string(),
            text,
        }),
        "name" => Some(AgentRead::HealthByName {
            name: key.to_string(),
            text,
        }),
        _ => None,
    }
}

/// `GET /v1/agent/monitor`'s parameters: the log level (`?loglevel`, default `info`) and `?logjson`;
/// `None` for other paths, Consul's refusal for a bad level or method.
pub fn monitor_plan(req: &ApiRequest) -> Option<Result<(LogLevel, bool), ApiResponse>> {
    if req.path != "/v1/agent/monitor" {
        return None;
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(Err(method_not_allowed(req.method)));
    }
    let text = req
        .query
        .get("loglevel")
        .filter(|l| !l.is_empty())
        .unwrap_or("info");
    let Some(level) = LogLevel::parse(text) else {
        return Some(Err(ApiResponse::text(
            400,
            format!("Unknown log level: {text}"),
        )));
    };
    Some(Ok((level, req.query.has("logjson"))))
}

/// A tagged address of a service.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AddressJson<'a> {
    address: &'a str,
    port: u32,
}

/// DNS weights.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WeightsJson {
    passing: u32,
    warning: u32,
}

/// A service as the agent shows it (Consul's `api.AgentService`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentServiceJson<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    port: u32,
    address: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: BTreeMap<&'a str, AddressJson<'a>>,
    weights: WeightsJson,
    enable_tag_override: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_hash: Option<String>,
    datacenter: &'a str,
}

fn addresses(map: &BTreeMap<String, ServiceAddress>) -> BTreeMap<&str, AddressJson<'_>> {
    map.iter()
        .map(|(k, a)| {
            let json = AddressJson {
                address: &a.address,
                port: a.port,
            };
            (k.as_str(), json)
        })
        .collect()
}

impl<'a> AgentServiceJson<'a> {
    fn new(service: &'a Service, datacenter: &'a str) -> AgentServiceJson<'a> {
        AgentServiceJson {
            kind: &service.kind,
            id: &service.id,
            service: &service.service,
            tags: &service.tags,
            meta: &service.meta,
            port: service.port,
            address: &service.address,
            tagged_addresses: addresses(&service.tagged_addresses),
            weights: WeightsJson {
                passing: service.weights.passing,
                warning: service.weights.warning,
            },
            enable_tag_override: service.enable_tag_override,
            content_hash: None,
            datacenter,
        }
    }
}

/// FNV-1a, 64 bits: the content hash of a service's JSON.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Answers an agent read from the agent's local state.
pub fn answer(
    local: &LocalState,
    cluster: &ClusterView,
    read: &AgentRead,
    ctx: &Context,
    pretty: bool,
) -> ApiResponse {
    match read {
        AgentRead::Services(filter) => {
            let map: BTreeMap<&str, AgentServiceJson> = local
                .services()
                .map(|s| (s.id.as_str(), AgentServiceJson::new(s, &ctx.datacenter)))
                .filter(|(_, view)| fits(filter, view))
                .collect();
            json::ok(&map, pretty)
        }
        AgentRead::Service(id) => service(local, ctx, id, pretty),
        AgentRead::Checks(filter) => {
            let map: BTreeMap<&str, CheckJson> = local
                .checks()
                .map(|c| (c.check_id.as_str(), CheckJson::new(c)))
                .filter(|(_, view)| fits(filter, view))
                .collect();
            json::ok(&map, pretty)
        }
        AgentRead::Myself => myself(local, cluster, ctx, pretty),
        AgentRead::HealthById { id, text } => health_by_id(local, ctx, id, *text, pretty),
        AgentRead::HealthByName { name, text } => health_by_name(local, ctx, name, *text, pretty),
    }
}

/// The worst status among `checks` (`passing` when there are none), as Consul aggregates them:
/// maintenance, then critical, then warning.
fn aggregated_status<'a>(checks: impl Iterator<Item = &'a HealthCheck>) -> CheckStatus {
    worst(checks.map(|c| c.status))
}

fn worst(statuses: impl Iterator<Item = CheckStatus>) -> CheckStatus {
    let rank = |s: &CheckStatus| match s {
        CheckStatus::Passing => 0,
        CheckStatus::Warning => 1,
        CheckStatus::Critical => 2,
        CheckStatus::Maintenance => 3,
    };
    statuses.max_by_key(rank).unwrap_or(CheckStatus::Passing)
}

/// The HTTP status Consul gives an aggregated status: 200 passing, 429 warning, 503 critical.
fn health_code(status: CheckStatus) -> u16 {
    match status {
        CheckStatus::Passing => 200,
        CheckStatus::Warning => 429,
        _ => 503,
    }
}

/// One entry of `/v1/agent/health/service/*`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceHealthJson<'a> {
    aggregated_status: &'static str,
    service: AgentServiceJson<'a>,
    checks: Vec<CheckJson<'a>>,
}

fn service_health<'a>(
    local: &'a LocalState,
    ctx: &'a Context,
    service: &'a Service,
) -> (CheckStatus, ServiceHealthJson<'a>) {
    let status = aggregated_status(local.service_checks(&service.id));
    let json = ServiceHealthJson {
        aggregated_status: status.as_str(),
        service: AgentServiceJson::new(service, &ctx.datacenter),
        checks: local
            .service_checks(&service.id)
            .map(CheckJson::new)
            .collect(),
    };
    (status, json)
}

fn health_by_id(
    local: &LocalState,
    ctx: &Context,
    id: &str,
    text: bool,
    pretty: bool,
) -> ApiResponse {
    let Some(found) = local.service(id) else {
        return ApiResponse::text(404, format!("ServiceId {id} not found"));
    };
    let (status, json) = service_health(local, ctx, found);
    health_response(status, text, &json, pretty)
}

fn health_by_name(
    local: &LocalState,
    ctx: &Context,
    name: &str,
    text: bool,
    pretty: bool,
) -> ApiResponse {
    let entries: Vec<(CheckStatus, ServiceHealthJson)> = local
        .services()
        .filter(|s| s.service == name)
        .map(|s| service_health(local, ctx, s))
        .collect();
    if entries.is_empty() {
        return ApiResponse::text(404, format!("ServiceName {name} Not Found"));
    }
    let status = worst(entries.iter().map(|(s, _)| *s));
    let list: Vec<&ServiceHealthJson> = entries.iter().map(|(_, j)| j).collect();
    health_response(status, text, &list, pretty)
}

fn health_response<T: Serialize>(
    status: CheckStatus,
    text: bool,
    body: &T,
    pretty: bool,
) -> ApiResponse {
    let code = health_code(status);
    if text {
        return ApiResponse::text(code, status.as_str());
    }
    let mut response = json::ok(body, pretty);
    response.status = code;
    response
}

fn service(local: &LocalState, ctx: &Context, id: &str, pretty: bool) -> ApiResponse {
    let Some(found) = local.service(id) else {
        return ApiResponse::text(404, format!("unknown service ID: {id}"));
    };
    let mut view = AgentServiceJson::new(found, &ctx.datacenter);
    let hash = format!("{:016x}", fnv1a64(&json::to_body(&view, false)));
    view.content_hash = Some(hash.clone());
    let mut response = json::ok(&view, pretty);
    response.headers.push(("X-Consul-ContentHash", hash));
    response
}

/// `GET /v1/agent/self`'s `Config`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson<'a> {
    datacenter: &'a str,
    primary_datacenter: &'a str,
    node_name: &'a str,
    #[serde(rename = "NodeID")]
    node_id: &'a str,
    revision: &'static str,
    server: bool,
    version: &'a str,
}

/// `GET /v1/agent/self`'s `Member` (the agent as its gossip pool sees it).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MemberJson<'a> {
    name: &'a str,
    addr: &'a str,
    port: u16,
    tags: BTreeMap<&'static str, String>,
    status: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SelfJson<'a> {
    config: ConfigJson<'a>,
    member: MemberJson<'a>,
    meta: &'a BTreeMap<String, String>,
    stats: BTreeMap<String, BTreeMap<String, String>>,
}

/// `Stats`: Consul's groups (`agent`, `build`, `consul`, `runtime`) plus what the agent layer adds
/// (`serf_lan`, `serf_wan`); every value is a string.
fn stats(
    local: &LocalState,
    cluster: &ClusterView,
    ctx: &Context,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let group = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let checks = local.checks().count();
    let ttls = local
        .checks()
        .filter(|c| !c.definition.ttl.is_empty())
        .count();
    let mut groups = ctx.stats.clone();
    groups.insert(
        "agent".into(),
        group(&[
            ("checks", checks.to_string()),
            ("check_ttls", ttls.to_string()),
            ("check_monitors", (checks - ttls).to_string()),
            ("services", local.services().count().to_string()),
        ]),
    );
    groups.insert(
        "build".into(),
        group(&[
            ("prerelease", String::new()),
            ("revision", String::new()),
            ("version", ctx.agent.version.clone()),
        ]),
    );
    let mut consul = vec![
        ("acl", "disabled".to_string()),
        ("server", ctx.agent.server.to_string()),
    ];
    if ctx.agent.server {
        consul.push(("leader", cluster.is_leader().to_string()));
        consul.push((
            "leader_addr",
            cluster.leader_address.clone().unwrap_or_default(),
        ));
        consul.push((
            "known_datacenters",
            (ctx.other_datacenters.len() + 1).to_string(),
        ));
    }
    groups.insert("consul".into(), group(&consul));
    groups.insert(
        "runtime".into(),
        group(&[
            ("arch", std::env::consts::ARCH.to_string()),
            ("os", std::env::consts::OS.to_string()),
            ("version", "rust".to_string()),
        ]),
    );
    groups
}

fn myself(local: &LocalState, cluster: &ClusterView, ctx: &Context, pretty: bool) -> ApiResponse {
    let me = &ctx.agent;
    let role = if me.server { "consul" } else { "node" };
    let mut tags = BTreeMap::new();
    tags.insert("role", role.to_string());
    tags.insert("dc", ctx.datacenter.clone());
    tags.insert("build", me.version.clone());
    if cluster.is_leader() {
        tags.insert("leader", "true".to_string());
    }
    let body = SelfJson {
        config: ConfigJson {
            datacenter: &ctx.datacenter,
            primary_datacenter: &ctx.datacenter,
            node_name: &ctx.node_name,
            node_id: &me.node_id,
            revision: "",
            server: me.server,
            version: &me.version,
        },
        member: MemberJson {
            name: &ctx.node_name,
            addr: &me.address,
            port: me.serf_lan_port,
            tags,
            status: 1,
        },
        meta: &me.node_meta,
        stats: stats(local, cluster, ctx),
    };
    json::ok(&body, pretty)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, plan_of};
    use super::*;

    #[test]
    fn agent_reads_answer_from_the_local_state_and_self_names_the_agent() {
        let Plan::AgentRead(read, false) = plan_of(Method::Get, "/v1/agent/service/web", b"")
        else {
            panic!("not an agent read");
        };
        assert_eq!(read, AgentRead::Service("web".into()));
        assert!(matches!(
            plan_of(Method::Put, "/v1/agent/services", b""),
            Plan::Respond(ApiResponse { status: 405, .. })
        ));
        let c = ctx();
        let local = LocalState::new();
        let response = answer(
            &local,
            &ClusterView::default(),
            &AgentRead::Myself,
            &c,
            false,
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["Config"]["NodeName"], "node1");
        assert_eq!(body["Member"]["Status"], 1);
        let missing = answer(
            &local,
            &ClusterView::default(),
            &AgentRead::Service("x".into()),
            &c,
            false,
        );
        assert_eq!(missing.status, 404);
    }

    fn health_of(local: &LocalState, target: &str) -> ApiResponse {
        let Plan::AgentRead(read, pretty) = plan_of(Method::Get, target, b"") else {
            panic!("{target}: not an agent read");
        };
        answer(local, &ClusterView::default(), &read, &ctx(), pretty)
    }

    #[test]
    fn agent_services_and_checks_take_a_filter() {
        let mut local = LocalState::new();
        for (id, port) in [("a", 80), ("b", 90)] {
            let service = Service {
                id: id.into(),
                service: id.into(),
                port,
                ..Service::default()
            };
            let check = HealthCheck {
                check_id: format!("{id}-check"),
                service_id: id.into(),
                status: CheckStatus::Passing,
                ..HealthCheck::default()
            };
            local
                .add_service(service, vec![check], false, true)
                .expect("add");
        }
        let services = health_of(&local, "/v1/agent/services?filter=Port%20%3D%3D%2090");
        let body: serde_json::Value = serde_json::from_slice(&services.body).expect("json");
        assert_eq!(
            body.as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["b".to_string()])
        );
        let checks = health_of(
            &local,
            "/v1/agent/checks?filter=ServiceID%20%3D%3D%20%22a%22",
        );
        let body: serde_json::Value = serde_json::from_slice(&checks.body).expect("json");
        assert_eq!(body.as_object().map(|m| m.len()), Some(1), "{body}");
        assert!(matches!(
            plan_of(Method::Get, "/v1/agent/services?filter=%3D%3D", b""),
            Plan::Respond(ApiResponse { status: 400, .. })
        ));
    }

    #[test]
    fn agent_service_health_aggregates_the_worst_status() {
        let mut local = LocalState::new();
        let web = |id: &str| Service {
            id: id.into(),
            service: "web".into(),
            ..Service::default()
        };
        let check = |id: &str, service: &str, status| HealthCheck {
            check_id: id.into(),
            service_id: service.into(),
            status,
            ..HealthCheck::default()
        };
        let passing = check("a", "web1", CheckStatus::Passing);
        local
            .add_service(web("web1"), vec![passing], false, true)
            .expect("web1");
        let warning = check("b", "web2", CheckStatus::Warning);
        local
            .add_service(web("web2"), vec![warning], false, true)
            .expect("web2");
        let one = health_of(&local, "/v1/agent/health/service/id/web1");
        assert_eq!(one.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&one.body).expect("json");
        assert_eq!(body["AggregatedStatus"], "passing");
        assert_eq!(body["Service"]["ID"], "web1");
        assert_eq!(body["Checks"][0]["CheckID"], "a");
        let all = health_of(&local, "/v1/agent/health/service/name/web");
        assert_eq!(all.status, 429);
        let body: serde_json::Value = serde_json::from_slice(&all.body).expect("json");
        assert_eq!(body.as_array().map(Vec::len), Some(2));
        let text = health_of(&local, "/v1/agent/health/service/name/web?format=text");
        assert_eq!((text.status, text.body.as_slice()), (429, &b"warning"[..]));
        local.update_check("a", CheckStatus::Critical, "down");
        assert_eq!(
            health_of(&local, "/v1/agent/health/service/id/web1").status,
            503
        );
        let gone = health_of(&local, "/v1/agent/health/service/id/nope");
        assert_eq!(
            (gone.status, gone.body.as_slice()),
            (404, &b"ServiceId nope not found"[..])
        );
        let gone = health_of(&local, "/v1/agent/health/service/name/nope");
        assert_eq!(gone.status, 404);
    }
}
