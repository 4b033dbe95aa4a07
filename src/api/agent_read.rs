//! `GET /v1/agent/{services,service/:id,checks,self}`: this agent's own services and checks, answered from the
//! published catalog filtered to this agent's node (a server agent keeps no other copy), and what the agent is.

use super::cluster::ClusterView;
use super::router::method_not_allowed;
use super::views::CheckJson;
use super::{json, Answer, ApiRequest, ApiResponse, Consistency, Context, Method, Plan};
use super::{ReadPlan, ReadQuery};
use crate::fsm::{HealthCheck, Service, ServiceAddress, State};
use serde::Serialize;
use std::collections::BTreeMap;

/// What an agent read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRead {
    /// `GET /v1/agent/services`.
    Services,
    /// `GET /v1/agent/service/:id`.
    Service(String),
    /// `GET /v1/agent/checks`.
    Checks,
    /// `GET /v1/agent/self`.
    Myself,
}

/// Plans the agent reads; `None` for other agent routes.
pub fn plan(req: &ApiRequest, rest: &str) -> Option<Plan> {
    let read = match rest.split_once('/') {
        None if rest == "services" => AgentRead::Services,
        None if rest == "checks" => AgentRead::Checks,
        None if rest == "self" => AgentRead::Myself,
        Some(("service", id)) if !id.is_empty() && !id.contains('/') => {
            AgentRead::Service(id.to_string())
        }
        _ => return None,
    };
    if !matches!(req.method, Method::Get | Method::Head) {
        return Some(Plan::Respond(method_not_allowed(req.method)));
    }
    // Agent-local data: no consistency modes and no index blocking, as in Consul.
    Some(Plan::Read(ReadPlan {
        consistency: Consistency::Stale,
        blocking: None,
        query: ReadQuery::Agent(read),
        pretty: req.query.has("pretty"),
    }))
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

fn own_services<'a>(state: &'a State, ctx: &Context) -> Vec<&'a Service> {
    state
        .node_services(&ctx.node_name)
        .map(|(_, services)| services)
        .unwrap_or_default()
}

fn own_checks<'a>(state: &'a State, ctx: &Context) -> Vec<&'a HealthCheck> {
    state.node_checks(&ctx.node_name)
}

/// Answers an agent read.
pub fn answer(
    state: &State,
    cluster: &ClusterView,
    read: &AgentRead,
    ctx: &Context,
    pretty: bool,
) -> Answer {
    let index = state
        .table_indexes()
        .services
        .max(state.table_indexes().checks);
    let response = match read {
        AgentRead::Services => {
            let map: BTreeMap<&str, AgentServiceJson> = own_services(state, ctx)
                .into_iter()
                .map(|s| (s.id.as_str(), AgentServiceJson::new(s, &ctx.datacenter)))
                .collect();
            json::ok(&map, pretty)
        }
        AgentRead::Service(id) => service(state, ctx, id, pretty),
        AgentRead::Checks => {
            let map: BTreeMap<&str, CheckJson> = own_checks(state, ctx)
                .into_iter()
                .map(|c| (c.check_id.as_str(), CheckJson::new(c)))
                .collect();
            json::ok(&map, pretty)
        }
        AgentRead::Myself => myself(cluster, ctx, pretty),
    };
    Answer { index, response }
}

fn service(state: &State, ctx: &Context, id: &str, pretty: bool) -> ApiResponse {
    let services = own_services(state, ctx);
    let Some(found) = services.into_iter().find(|s| s.id == id) else {
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
}

fn myself(cluster: &ClusterView, ctx: &Context, pretty: bool) -> ApiResponse {
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
    };
    json::ok(&body, pretty)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, plan_of};
    use super::*;

    #[test]
    fn agent_reads_plan_stale_and_self_names_the_agent() {
        let Plan::Read(read) = plan_of(Method::Get, "/v1/agent/service/web", b"") else {
            panic!("not a read");
        };
        assert_eq!(read.consistency, Consistency::Stale);
        assert_eq!(
            read.query,
            ReadQuery::Agent(AgentRead::Service("web".into()))
        );
        assert!(matches!(
            plan_of(Method::Put, "/v1/agent/services", b""),
            Plan::Respond(ApiResponse { status: 405, .. })
        ));
        let c = ctx();
        let answer = answer(
            &State::default(),
            &ClusterView::default(),
            &AgentRead::Myself,
            &c,
            false,
        );
        let body: serde_json::Value = serde_json::from_slice(&answer.response.body).expect("json");
        assert_eq!(body["Config"]["NodeName"], "node1");
        assert_eq!(body["Member"]["Status"], 1);
        let missing = answer_of(&AgentRead::Service("x".into()));
        assert_eq!(missing.status, 404);
    }

    fn answer_of(read: &AgentRead) -> ApiResponse {
        answer(
            &State::default(),
            &ClusterView::default(),
            read,
            &ctx(),
            false,
        )
        .response
    }
}
