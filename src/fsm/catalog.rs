//! Catalog types: nodes, the service instances registered on them, and health checks, with the fields Consul
//! shows in its JSON (the HTTP layer renders them). What a register command carries is [`RegisterRequest`].
//!
//! The same types are archived in the snapshot (rkyv) and carried in commands (serde).

use super::Index;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The check ID of the node-level check the leader keeps from gossip (Consul's `serfHealth`).
pub const SERF_CHECK_ID: &str = "serfHealth";

/// A registered node (Consul's `structs.Node`).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Node {
    /// The node ID (a UUID; may be empty for external nodes).
    pub id: String,
    /// The node name (the key).
    pub node: String,
    /// The node address.
    pub address: String,
    /// The datacenter.
    pub datacenter: String,
    /// Tagged addresses (`lan`, `wan`, ...).
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node metadata.
    pub meta: BTreeMap<String, String>,
    /// The index that created the node.
    pub create_index: Index,
    /// The index of its last change.
    pub modify_index: Index,
}

/// One tagged address of a service: an address and a port.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct ServiceAddress {
    /// The address.
    pub address: String,
    /// The port.
    pub port: u32,
}

/// DNS SRV weights of a service instance by health.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Weights {
    /// Weight while every check passes (Consul's default 1).
    pub passing: u32,
    /// Weight while some check warns (Consul's default 1).
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A service instance on a node (Consul's `structs.NodeService`), stored per (node, service ID).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Service {
    /// The instance ID, unique on its node (defaults to the service name).
    pub id: String,
    /// The service name.
    pub service: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The instance address (`""`: use the node's).
    pub address: String,
    /// Tagged addresses (`lan`, `wan`, ...), each an address and a port.
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// Service metadata.
    pub meta: BTreeMap<String, String>,
    /// The port.
    pub port: u32,
    /// DNS SRV weights.
    pub weights: Weights,
    /// Whether tags edited in the catalog survive the agent's anti-entropy.
    pub enable_tag_override: bool,
    /// The service kind (`""` for a typical service, `connect-proxy`, ...).
    pub kind: String,
    /// The index that created the instance.
    pub create_index: Index,
    /// The index of its last change.
    pub modify_index: Index,
}

impl Service {
    /// Whether `self` and `other` have the same content (indexes aside).
    pub fn same_content(&self, other: &Service) -> bool {
        Service {
            create_index: other.create_index,
            modify_index: other.modify_index,
            ..self.clone()
        } == *other
    }
}

/// A check's health.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum CheckStatus {
    /// Healthy.
    Passing,
    /// Degraded.
    Warning,
    /// Unhealthy (Consul's default for a new check).
    #[default]
    Critical,
    /// In maintenance (Consul's `maintenance`; counted as critical by health filters).
    Maintenance,
}

impl CheckStatus {
    /// Consul's name: `passing`, `warning`, `critical` or `maintenance`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
            CheckStatus::Maintenance => "maintenance",
        }
    }

    /// The status Consul names `s`; `None` for anything else.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            "maintenance" => Some(CheckStatus::Maintenance),
            _ => None,
        }
    }
}

/// How a check runs (Consul's `HealthCheckDefinition`), durations as Consul shows them (`"10s"`), `""` when unset.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct CheckDefinition {
    /// HTTP check URL.
    pub http: String,
    /// TLS server name for an HTTPS check.
    pub tls_server_name: String,
    /// Skip TLS verification.
    pub tls_skip_verify: bool,
    /// HTTP headers, each with its values.
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP method.
    pub method: String,
    /// HTTP body.
    pub body: String,
    /// Do not follow HTTP redirects.
    pub disable_redirects: bool,
    /// TCP check address (`host:port`).
    pub tcp: String,
    /// TCP check over TLS.
    pub tcp_use_tls: bool,
    /// UDP check address.
    pub udp: String,
    /// H2PING check address.
    pub h2ping: String,
    /// H2PING over TLS.
    pub h2ping_use_tls: bool,
    /// OS service check name.
    pub os_service: String,
    /// gRPC check address.
    pub grpc: String,
    /// gRPC over TLS.
    pub grpc_use_tls: bool,
    /// Alias check: the node.
    pub alias_node: String,
    /// Alias check: the service.
    pub alias_service: String,
    /// Script check arguments.
    pub script_args: Vec<String>,
    /// Docker check container.
    pub docker_container_id: String,
    /// Docker check shell.
    pub shell: String,
    /// How often the check runs.
    pub interval: String,
    /// How long one run may take.
    pub timeout: String,
    /// A TTL check's TTL.
    pub ttl: String,
    /// Deregister the service after this long critical.
    pub deregister_critical_service_after: String,
    /// Output kept, in bytes (0: the agent's default).
    pub output_max_size: u32,
    /// Consecutive successful runs before the check turns passing (0: at once).
    #[serde(default)]
    pub success_before_passing: u32,
    /// Consecutive failed runs before the check turns warning (0: as `failures_before_critical`).
    #[serde(default)]
    pub failures_before_warning: u32,
    /// Consecutive failed runs before the check turns critical (0: at once).
    #[serde(default)]
    pub failures_before_critical: u32,
}

/// A health check on a node, node-level (`service_id` empty) or bound to a service instance
/// (Consul's `structs.HealthCheck`).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct HealthCheck {
    /// The node (defaults to the register request's node).
    pub node: String,
    /// The check ID, unique on its node (defaults to the name).
    pub check_id: String,
    /// The check name.
    pub name: String,
    /// The health.
    pub status: CheckStatus,
    /// Notes for humans.
    pub notes: String,
    /// The last output.
    pub output: String,
    /// The service instance the check belongs to (`""`: node-level).
    pub service_id: String,
    /// That instance's service name (filled from the service on register).
    pub service_name: String,
    /// That instance's tags (filled from the service on register).
    pub service_tags: Vec<String>,
    /// The check type (`http`, `tcp`, `ttl`, ...; Consul's `Type`).
    pub check_type: String,
    /// The port exposed for the check through a proxy (0: none).
    pub exposed_port: u32,
    /// How the check runs.
    pub definition: CheckDefinition,
    /// The index that created the check.
    pub create_index: Index,
    /// The index of its last change.
    pub modify_index: Index,
}

impl HealthCheck {
    /// Whether `self` and `other` have the same content (indexes aside).
    pub fn same_content(&self, other: &HealthCheck) -> bool {
        HealthCheck {
            create_index: other.create_index,
            modify_index: other.modify_index,
            ..self.clone()
        } == *other
    }
}

/// A catalog registration (`PUT /v1/catalog/register`, and the agent's anti-entropy): a node, optionally one
/// service instance, and checks, applied in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The node ID.
    pub id: String,
    /// The node name (required).
    pub node: String,
    /// The node address (required unless `skip_node_update`).
    pub address: String,
    /// The datacenter.
    pub datacenter: String,
    /// The node's tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// The node's metadata.
    pub node_meta: BTreeMap<String, String>,
    /// The service instance to register (its ID defaults to its name).
    pub service: Option<Service>,
    /// The checks to register (Consul's `Check` and `Checks` together).
    pub checks: Vec<HealthCheck>,
    /// Leave the node's fields alone (the node must exist).
    pub skip_node_update: bool,
}

impl RegisterRequest {
    /// The node this request describes (indexes 0).
    pub fn to_node(&self) -> Node {
        Node {
            id: self.id.clone(),
            node: self.node.clone(),
            address: self.address.clone(),
            datacenter: self.datacenter.clone(),
            tagged_addresses: self.tagged_addresses.clone(),
            meta: self.node_meta.clone(),
            create_index: 0,
            modify_index: 0,
        }
    }
}
