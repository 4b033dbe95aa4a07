//! The catalog's JSON shapes, field for field and in Consul's order (its `structs.Node`, `ServiceNode`,
//! `NodeService`, `HealthCheck` and `HealthCheckDefinition` as Consul CE encodes them): empty tag lists are
//! `[]`, empty maps `{}`, fields Consul tags `omitempty` are left out when empty, and the mesh fields a plain
//! service has (`Proxy`, `Connect`) keep their empty shapes.

use super::duration::parse_go_duration;
use crate::fsm::{CheckDefinition, HealthCheck, Node, Service, ServiceAddress, Weights};
use serde::Serialize;
use std::collections::BTreeMap;

/// A node (`/catalog/nodes`, the `Node` of `/catalog/node` and of health entries).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    meta: &'a BTreeMap<String, String>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> NodeJson<'a> {
    /// The JSON view of `node`.
    pub fn new(node: &'a Node) -> NodeJson<'a> {
        NodeJson {
            id: &node.id,
            node: &node.node,
            address: &node.address,
            datacenter: &node.datacenter,
            tagged_addresses: &node.tagged_addresses,
            meta: &node.meta,
            create_index: node.create_index,
            modify_index: node.modify_index,
        }
    }
}

/// A tagged address of a service (`structs.ServiceAddress` has no JSON tags: `Address`, `Port`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AddressJson<'a> {
    address: &'a str,
    port: u32,
}

fn addresses(map: &BTreeMap<String, ServiceAddress>) -> BTreeMap<&str, AddressJson<'_>> {
    map.iter()
        .map(|(name, a)| {
            let json = AddressJson {
                address: &a.address,
                port: a.port,
            };
            (name.as_str(), json)
        })
        .collect()
}

/// DNS weights.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WeightsJson {
    passing: u32,
    warning: u32,
}

impl WeightsJson {
    fn new(weights: &Weights) -> WeightsJson {
        WeightsJson {
            passing: weights.passing,
            warning: weights.warning,
        }
    }
}

/// An empty JSON object (`{}`: the mesh settings of a plain service).
#[derive(Serialize)]
struct Empty {}

/// A plain service's proxy settings as Consul encodes them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProxyJson {
    mode: &'static str,
    mesh_gateway: Empty,
    expose: Empty,
}

const PROXY: ProxyJson = ProxyJson {
    mode: "",
    mesh_gateway: Empty {},
    expose: Empty {},
};

/// A service instance with its node (`/catalog/service/:name`, Consul's `ServiceNode`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceNodeJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    node_meta: &'a BTreeMap<String, String>,
    service_kind: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    service_address: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    service_tagged_addresses: BTreeMap<&'a str, AddressJson<'a>>,
    service_weights: WeightsJson,
    service_meta: &'a BTreeMap<String, String>,
    service_port: u32,
    service_socket_path: &'static str,
    service_enable_tag_override: bool,
    service_proxy: ProxyJson,
    service_connect: Empty,
    service_locality: Option<()>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> ServiceNodeJson<'a> {
    /// The JSON view of `service` on `node`.
    pub fn new(node: &'a Node, service: &'a Service) -> ServiceNodeJson<'a> {
        ServiceNodeJson {
            id: &node.id,
            node: &node.node,
            address: &node.address,
            datacenter: &node.datacenter,
            tagged_addresses: &node.tagged_addresses,
            node_meta: &node.meta,
            service_kind: &service.kind,
            service_id: &service.id,
            service_name: &service.service,
            service_tags: &service.tags,
            service_address: &service.address,
            service_tagged_addresses: addresses(&service.tagged_addresses),
            service_weights: WeightsJson::new(&service.weights),
            service_meta: &service.meta,
            service_port: service.port,
            service_socket_path: "",
            service_enable_tag_override: service.enable_tag_override,
            service_proxy: PROXY,
            service_connect: Empty {},
            service_locality: None,
            create_index: service.create_index,
            modify_index: service.modify_index,
        }
    }
}

/// A service instance on its own (`/catalog/node`'s services, the `Service` of health entries; Consul's
/// `NodeService`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServiceJson<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    address: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tagged_addresses: BTreeMap<&'a str, AddressJson<'a>>,
    meta: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_zero")]
    port: u32,
    weights: WeightsJson,
    enable_tag_override: bool,
    proxy: ProxyJson,
    connect: Empty,
    peer_name: &'static str,
    create_index: u64,
    modify_index: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl<'a> NodeServiceJson<'a> {
    /// The JSON view of `service`.
    pub fn new(service: &'a Service) -> NodeServiceJson<'a> {
        NodeServiceJson {
            kind: &service.kind,
            id: &service.id,
            service: &service.service,
            tags: &service.tags,
            address: &service.address,
            tagged_addresses: addresses(&service.tagged_addresses),
            meta: &service.meta,
            port: service.port,
            weights: WeightsJson::new(&service.weights),
            enable_tag_override: service.enable_tag_override,
            proxy: PROXY,
            connect: Empty {},
            peer_name: "",
            create_index: service.create_index,
            modify_index: service.modify_index,
        }
    }

    /// The instance ID.
    pub fn id(&self) -> &'a str {
        self.id
    }
}

/// A health check (`/health/checks`, `/health/node`, `/health/state`, the `Checks` of health entries).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckJson<'a> {
    node: &'a str,
    #[serde(rename = "CheckID")]
    check_id: &'a str,
    name: &'a str,
    status: &'static str,
    notes: &'a str,
    output: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    #[serde(rename = "Type")]
    check_type: &'a str,
    interval: &'a str,
    timeout: &'a str,
    exposed_port: u32,
    definition: DefinitionJson<'a>,
    create_index: u64,
    modify_index: u64,
}

impl<'a> CheckJson<'a> {
    /// The JSON view of `check`.
    pub fn new(check: &'a HealthCheck) -> CheckJson<'a> {
        CheckJson {
            node: &check.node,
            check_id: &check.check_id,
            name: &check.name,
            status: check.status.as_str(),
            notes: &check.notes,
            output: &check.output,
            service_id: &check.service_id,
            service_name: &check.service_name,
            service_tags: &check.service_tags,
            check_type: &check.check_type,
            interval: &check.definition.interval,
            timeout: &check.definition.timeout,
            exposed_port: check.exposed_port,
            definition: DefinitionJson::new(&check.definition),
            create_index: check.create_index,
            modify_index: check.modify_index,
        }
    }
}

/// How a check runs, every field left out when empty; the durations first (Consul's encoder puts them
/// there), as Go duration strings, except `TTL`, which Consul encodes in nanoseconds.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DefinitionJson<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    interval: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    output_max_size: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    timeout: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    deregister_critical_service_after: &'a str,
    #[serde(rename = "HTTP", skip_serializing_if = "str::is_empty")]
    http: &'a str,
    #[serde(rename = "TLSServerName", skip_serializing_if = "str::is_empty")]
    tls_server_name: &'a str,
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "is_false")]
    tls_skip_verify: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    header: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    method: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    body: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    disable_redirects: bool,
    #[serde(rename = "TCP", skip_serializing_if = "str::is_empty")]
    tcp: &'a str,
    #[serde(rename = "TCPUseTLS", skip_serializing_if = "is_false")]
    tcp_use_tls: bool,
    #[serde(rename = "UDP", skip_serializing_if = "str::is_empty")]
    udp: &'a str,
    #[serde(rename = "H2PING", skip_serializing_if = "str::is_empty")]
    h2ping: &'a str,
    #[serde(rename = "OSService", skip_serializing_if = "str::is_empty")]
    os_service: &'a str,
    #[serde(rename = "H2PingUseTLS", skip_serializing_if = "is_false")]
    h2ping_use_tls: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    script_args: &'a [String],
    #[serde(rename = "DockerContainerID", skip_serializing_if = "str::is_empty")]
    docker_container_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    shell: &'a str,
    #[serde(rename = "GRPC", skip_serializing_if = "str::is_empty")]
    grpc: &'a str,
    #[serde(rename = "GRPCUseTLS", skip_serializing_if = "is_false")]
    grpc_use_tls: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    alias_node: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    alias_service: &'a str,
    #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> DefinitionJson<'a> {
    fn new(d: &'a CheckDefinition) -> DefinitionJson<'a> {
        DefinitionJson {
            interval: &d.interval,
            output_max_size: d.output_max_size,
            timeout: &d.timeout,
            deregister_critical_service_after: &d.deregister_critical_service_after,
            http: &d.http,
            tls_server_name: &d.tls_server_name,
            tls_skip_verify: d.tls_skip_verify,
            header: &d.header,
            method: &d.method,
            body: &d.body,
            disable_redirects: d.disable_redirects,
            tcp: &d.tcp,
            tcp_use_tls: d.tcp_use_tls,
            udp: &d.udp,
            h2ping: &d.h2ping,
            os_service: &d.os_service,
            h2ping_use_tls: d.h2ping_use_tls,
            script_args: &d.script_args,
            docker_container_id: &d.docker_container_id,
            shell: &d.shell,
            grpc: &d.grpc,
            grpc_use_tls: d.grpc_use_tls,
            alias_node: &d.alias_node,
            alias_service: &d.alias_service,
            ttl: parse_go_duration(&d.ttl).ok().filter(|ns| *ns != 0),
        }
    }
}

/// A `/health/service` entry: the node, the instance and its checks (node-level first).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntryJson<'a> {
    node: NodeJson<'a>,
    service: NodeServiceJson<'a>,
    checks: Vec<CheckJson<'a>>,
}

impl<'a> HealthEntryJson<'a> {
    /// The JSON view of an instance with its node and checks.
    pub fn new(node: &'a Node, service: &'a Service, checks: &[&'a HealthCheck]) -> Self {
        HealthEntryJson {
            node: NodeJson::new(node),
            service: NodeServiceJson::new(service),
            checks: checks.iter().map(|c| CheckJson::new(c)).collect(),
        }
    }
}
