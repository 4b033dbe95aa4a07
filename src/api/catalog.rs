//! `/v1/catalog/*`: register and deregister (replicated writes answering a bare `true`), and the reads:
//! datacenters, nodes, services, the instances of a service, and the services of a node.

use super::params::{self, Selection};
use super::register::{deregister_body, register_body};
use super::router::{method_not_allowed, not_found};
use super::views::{NodeJson, NodeServiceJson, ServiceNodeJson};
use super::{json, Answer, ApiRequest, ApiResponse, Context, Method, Plan, ReadQuery, Render};
use super::{WatchSpec, WritePlan};
use crate::fsm::{table, Command, Node, Service, State};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a catalog read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogRead {
    /// `GET /v1/catalog/nodes`.
    Nodes,
    /// `GET /v1/catalog/services`.
    Services,
    /// `GET /v1/catalog/service/:name`.
    Service(String),
    /// `GET /v1/catalog/node/:node`.
    Node(String),
    /// `GET /v1/catalog/node-services/:node`.
    NodeServices(String),
}

/// Plans `/v1/catalog/<rest>`.
pub fn plan(req: &ApiRequest, rest: &str, ctx: &Context) -> Plan {
    let (verb, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let read = match (verb, arg) {
        ("register" | "deregister", "") => return plan_write(req, verb, ctx),
        ("datacenters", "") => None,
        ("nodes", "") => Some(CatalogRead::Nodes),
        ("services", "") => Some(CatalogRead::Services),
        ("service", "") => return missing("Missing service name"),
        ("node" | "node-services", "") => return missing("Missing node name"),
        ("service", name) => Some(CatalogRead::Service(name.to_string())),
        ("node", name) => Some(CatalogRead::Node(name.to_string())),
        ("node-services", name) => Some(CatalogRead::NodeServices(name.to_string())),
        _ => return Plan::Respond(not_found()),
    };
    if !matches!(req.method, Method::Get | Method::Head) {
        return Plan::Respond(method_not_allowed(req.method));
    }
    let Some(read) = read else {
        // This datacenter first (the nearest), then the others the WAN pool knows, by name.
        let mut others: Vec<&str> = ctx.other_datacenters.iter().map(String::as_str).collect();
        others.sort_unstable();
        others.dedup();
        let dcs: Vec<&str> = std::iter::once(ctx.datacenter.as_str())
            .chain(others.into_iter().filter(|dc| *dc != ctx.datacenter))
            .collect();
        return Plan::Respond(json::ok(&dcs, req.query.has("pretty")));
    };
    match Selection::parse(&req.query) {
        Ok(selection) => params::read(req, ReadQuery::Catalog(read, selection)),
        Err(response) => Plan::Respond(response),
    }
}

fn missing(text: &str) -> Plan {
    Plan::Respond(ApiResponse::text(400, text))
}

/// Consul's refusal (from its server, hence 500) of a write naming another datacenter or no node.
fn refuse(datacenter: &str, node: &str, ctx: &Context) -> Option<ApiResponse> {
    if !datacenter.is_empty() && datacenter != ctx.datacenter {
        return Some(ApiResponse::text(500, "No path to datacenter"));
    }
    node.is_empty()
        .then(|| ApiResponse::text(500, "Must provide node"))
}

fn plan_write(req: &ApiRequest, verb: &str, ctx: &Context) -> Plan {
    if req.method != Method::Put {
        return Plan::Respond(method_not_allowed(req.method));
    }
    let command = if verb == "register" {
        register_command(req.body, ctx)
    } else {
        deregister_command(req.body, ctx)
    };
    match command {
        Ok(command) => Plan::Write(WritePlan {
            command,
            render: Render::Bool,
            pretty: req.query.has("pretty"),
        }),
        Err(response) => Plan::Respond(response),
    }
}

fn register_command(body: &[u8], ctx: &Context) -> Result<Command, ApiResponse> {
    let mut request = register_body(body)?;
    if let Some(refusal) = refuse(&request.datacenter, &request.node, ctx) {
        return Err(refusal);
    }
    if request.address.is_empty() && !request.skip_node_update {
        return Err(ApiResponse::text(
            500,
            "Must provide address if SkipNodeUpdate is not set",
        ));
    }
    request.datacenter = ctx.datacenter.clone();
    Ok(Command::CatalogRegister {
        now_ms: ctx.now_ms,
        request: Box::new(request),
    })
}

fn deregister_command(body: &[u8], ctx: &Context) -> Result<Command, ApiResponse> {
    let d = deregister_body(body)?;
    if let Some(refusal) = refuse(&d.datacenter, &d.node, ctx) {
        return Err(refusal);
    }
    Ok(Command::CatalogDeregister {
        now_ms: ctx.now_ms,
        node: d.node,
        service_id: d.service_id,
        check_id: d.check_id,
    })
}

/// What a blocking query on `read` waits for.
pub fn watch(read: &CatalogRead) -> WatchSpec {
    match read {
        CatalogRead::Nodes => WatchSpec::Tables(table::NODES),
        CatalogRead::Services | CatalogRead::Node(_) | CatalogRead::NodeServices(_) => {
            WatchSpec::Tables(table::NODES | table::SERVICES)
        }
        CatalogRead::Service(name) => WatchSpec::Service(name.clone()),
    }
}

/// Answers a catalog read from `state`.
pub fn answer(state: &State, read: &CatalogRead, sel: &Selection, pretty: bool) -> Answer {
    match read {
        CatalogRead::Nodes => {
            let nodes: Vec<NodeJson> = state
                .nodes()
                .into_iter()
                .filter(|n| sel.node_fits(n))
                .map(NodeJson::new)
                .filter(|view| sel.filter_fits(view))
                .collect();
            ok(state.nodes_index(), &nodes, pretty)
        }
        CatalogRead::Services => ok(state.services_index(), &services(state, sel), pretty),
        CatalogRead::Service(name) => {
            let list = service_nodes(state, name, sel);
            ok(state.service_index(name), &list, pretty)
        }
        CatalogRead::Node(name) => node(state, name, sel, pretty, false),
        CatalogRead::NodeServices(name) => node(state, name, sel, pretty, true),
    }
}

fn ok<T: Serialize + ?Sized>(index: u64, body: &T, pretty: bool) -> Answer {
    Answer {
        index,
        response: json::ok(body, pretty),
    }
}

/// `{"name": [tags]}`; with `node-meta` or `filter`, only the instances that fit count (the filter sees
/// each instance as a ServiceNode).
fn services(state: &State, sel: &Selection) -> BTreeMap<String, Vec<String>> {
    if sel.node_meta.is_empty() && sel.filter.is_none() {
        return state.services_by_name();
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in state.nodes().into_iter().filter(|n| sel.node_fits(n)) {
        let Some((_, services)) = state.node_services(&node.node) else {
            continue;
        };
        for service in services {
            if sel.filter_fits(&ServiceNodeJson::new(node, service)) {
                let tags = out.entry(service.service.clone()).or_default();
                tags.extend(service.tags.iter().cloned());
            }
        }
    }
    for tags in out.values_mut() {
        tags.sort();
        tags.dedup();
    }
    out
}

fn service_nodes<'a>(state: &'a State, name: &str, sel: &Selection) -> Vec<ServiceNodeJson<'a>> {
    state
        .service_instances(name)
        .into_iter()
        .filter(|(node, service)| sel.node_fits(node) && sel.tags_fit(service))
        .map(|(node, service)| ServiceNodeJson::new(node, service))
        .filter(|view| sel.filter_fits(view))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeServicesJson<'a, S: Serialize> {
    node: Option<NodeJson<'a>>,
    services: S,
}

/// `/catalog/node/:node` (`Services` keyed by ID; `null` for an unknown node) or, with `as_list`,
/// `/catalog/node-services/:node` (`Services` a list; `{"Node":null,"Services":[]}` for an unknown node).
fn node(state: &State, name: &str, sel: &Selection, pretty: bool, as_list: bool) -> Answer {
    let index = state.node_services_index();
    let found = state.node_services(name);
    let (node, services): (Option<&Node>, Vec<&Service>) = match found {
        Some((node, services)) => (Some(node), services),
        None if as_list => (None, Vec::new()),
        None => return ok(index, &(), pretty),
    };
    let views = services
        .into_iter()
        .map(NodeServiceJson::new)
        .filter(|view| sel.filter_fits(view));
    let node = node.map(NodeJson::new);
    if as_list {
        let services: Vec<NodeServiceJson> = views.collect();
        return ok(index, &NodeServicesJson { node, services }, pretty);
    }
    let services: BTreeMap<String, NodeServiceJson> =
        views.map(|view| (view.id().to_string(), view)).collect();
    ok(index, &NodeServicesJson { node, services }, pretty)
}
