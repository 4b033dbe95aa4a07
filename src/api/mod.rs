//! HTTP API meaning, pure (ARCHITECTURE.md rule 1): Consul's `/v1` routes, parameters, JSON shapes and headers.
//!
//! The agent's HTTP front end hands each request to [`plan`], which answers at once ([`Plan::Respond`]: bad
//! input, status routes) or says what the request needs: a read of the published state
//! ([`Plan::Read`], answered by [`ReadQuery::answer`] once the consistency mode is satisfied, and re-run by
//! the front end while a blocking query waits), a replicated write ([`Plan::Write`], whose outcome
//! [`render_outcome`] turns into Consul's JSON), an operator action, or leaving. Clock readings and fresh IDs
//! come in through [`Context`]; nothing here does IO.

pub mod agent;
mod agent_read;
pub mod autopilot;
mod catalog;
#[cfg(test)]
mod catalog_tests;
pub mod cluster;
pub mod duration;
pub mod filter;
pub mod gossip;
mod health;
mod json;
mod kv;
pub mod local;
pub mod metrics;
mod params;
pub mod query;
mod register;
mod router;
mod session;
pub mod snapshot;
mod status;
#[cfg(test)]
mod tests;
mod txn;
mod views;

pub use agent::{expire_ttl, AgentIdentity, AgentOp, TtlChanges};
pub use agent_read::{answer as agent_read_answer, monitor_plan, AgentRead};
pub use catalog::CatalogRead;
pub use health::HealthRead;
pub use params::{jitter_ms, Blocking, Consistency, Selection, WAIT_MS_DEFAULT, WAIT_MS_MAX};
pub use router::{plan, render_outcome};

use crate::fsm::{self, Command, KvOp, State};
use crate::raft::ServerId;
use cluster::ClusterView;
use query::Query;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The HTTP methods the API tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD (answered as GET without a body by the HTTP layer).
    Head,
    /// PUT.
    Put,
    /// POST.
    Post,
    /// DELETE.
    Delete,
    /// Anything else.
    Other,
}

impl Method {
    /// The method's name as Consul prints it in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Other => "OTHER",
        }
    }
}

/// One request as the API sees it.
#[derive(Clone, Debug)]
pub struct ApiRequest<'a> {
    /// The method.
    pub method: Method,
    /// The path, percent-decoded (`/v1/kv/a b`).
    pub path: &'a str,
    /// The query parameters.
    pub query: Query,
    /// The ACL token (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`), carried for the authorizer.
    pub token: Option<String>,
    /// The body.
    pub body: &'a [u8],
}

/// A response: status, content type, extra headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, when there is a body type to name.
    pub content_type: Option<&'static str>,
    /// Further headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A JSON body.
    pub fn json(status: u16, body: Vec<u8>) -> ApiResponse {
        ApiResponse {
            status,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body,
        }
    }

    /// A plain-text body (Consul's error responses).
    pub fn text(status: u16, body: impl Into<String>) -> ApiResponse {
        ApiResponse {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// A `404` with no body (a missing KV key, as in Consul).
    pub fn not_found() -> ApiResponse {
        ApiResponse {
            status: 404,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An empty `200`.
    pub fn empty() -> ApiResponse {
        ApiResponse {
            status: 200,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// What the agent tells the API about itself and the moment.
#[derive(Clone, Debug)]
pub struct Context {
    /// This agent's node name (the default session node).
    pub node_name: String,
    /// This agent's datacenter.
    pub datacenter: String,
    /// `session_ttl_min`.
    pub session_ttl_min_ms: u64,
    /// `limits.kv_max_value_size`.
    pub kv_max_value_bytes: u64,
    /// `limits.txn_max_req_len`.
    pub txn_max_req_bytes: u64,
    /// Wall-clock milliseconds since the Unix epoch (carried in commands: lock-delay, session deadlines).
    pub now_ms: u64,
    /// A fresh UUID, used if the request creates something that needs an ID.
    pub new_id: String,
    /// This agent's node and build, for its own services and checks and `/v1/agent/self`.
    pub agent: Arc<AgentIdentity>,
    /// The other datacenters this agent knows of (a server: the `dc` tags of the live WAN pool members).
    pub other_datacenters: Vec<String>,
    /// Node names of the servers the LAN pool lists, by server RPC address (`IP:PORT`).
    pub server_names: BTreeMap<String, String>,
    /// Extra `Stats` groups of `/v1/agent/self` the agent layer knows (`serf_lan`, `serf_wan`).
    pub stats: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a request needs.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Answer with this response now.
    Respond(ApiResponse),
    /// Read the published state.
    Read(ReadPlan),
    /// Apply a command through Raft.
    Write(WritePlan),
    /// Act on the Raft cluster.
    Operator(OperatorPlan),
    /// Change this agent's own services or checks: [`AgentOp::apply`] on the agent's local state, then a
    /// sync of the change to the catalog; the empty `200` is sent once it is applied.
    Agent(AgentOp),
    /// Read this agent's local state or identity (`pretty` with it).
    AgentRead(AgentRead, bool),
    /// Reload the configuration (`PUT /v1/agent/reload`, the same as SIGHUP).
    Reload,
    /// `GET /v1/agent/metrics` (`prometheus`: `?format=prometheus`; `pretty` with it).
    Metrics {
        /// Answer in Prometheus' text format.
        prometheus: bool,
        /// `?pretty`.
        pretty: bool,
    },
    /// Leave the cluster and stop the agent (`PUT /v1/agent/leave`).
    Leave,
    /// A gossip route: members, join, force-leave, user events.
    Gossip(gossip::GossipPlan),
}

/// A read: how consistent, whether it blocks, and what it reads.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    /// The consistency mode asked for.
    pub consistency: Consistency,
    /// `?index=` and `?wait=`, when the route blocks and `index` was given.
    pub blocking: Option<Blocking>,
    /// What to read.
    pub query: ReadQuery,
    /// `?pretty`.
    pub pretty: bool,
}

/// What a read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadQuery {
    /// `GET /v1/kv/:key`.
    Kv {
        /// The key (or prefix with `recurse`/`keys`).
        key: String,
        /// `?recurse`.
        recurse: bool,
        /// `?keys`.
        keys: bool,
        /// `?separator=` (with `keys`).
        separator: Option<String>,
        /// `?raw`.
        raw: bool,
    },
    /// `GET /v1/session/info/:id`.
    SessionInfo(String),
    /// `GET /v1/session/node/:node`.
    SessionNode(String),
    /// `GET /v1/session/list`.
    SessionList,
    /// `PUT /v1/txn` with only read operations.
    Txn(Vec<KvOp>),
    /// `GET /v1/operator/raft/configuration`.
    RaftConfiguration,
    /// `GET /v1/operator/autopilot/configuration`.
    AutopilotConfiguration,
    /// `GET /v1/catalog/{nodes,services,service/:name,node/:node,node-services/:node}`.
    Catalog(CatalogRead, Selection),
    /// `GET /v1/health/{service/:name,checks/:service,node/:node,state/:state}`.
    Health(HealthRead, Selection),
    /// `GET /v1/snapshot`: the state as a snapshot archive.
    Snapshot,
}

/// What a blocking query waits on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSpec {
    /// A KV key, or with `prefix` every key under it.
    Kv {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
    /// The instances of a service name, or their checks.
    Service(String),
    /// A table ([`fsm::table`] flags).
    Tables(u32),
    /// The Raft configuration (no table: woken by any applied change).
    Any,
}

/// A read's answer: the index it reflects (for `X-Consul-Index` and blocking) and the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The index the result reflects (may be 0; the headers raise it to 1).
    pub index: u64,
    /// The response.
    pub response: ApiResponse,
}

impl ReadQuery {
    /// Answers the read from the published state.
    pub fn answer(
        &self,
        state: &State,
        cluster: &ClusterView,
        ctx: &Context,
        pretty: bool,
    ) -> Answer {
        match self {
            ReadQuery::Kv {
                key,
                recurse,
                keys,
                separator,
                raw,
            } => kv::answer_get(
                state,
                key,
                *recurse,
                *keys,
                separator.as_deref(),
                *raw,
                pretty,
            ),
            ReadQuery::SessionInfo(id) => session::answer_info(state, id, pretty),
            ReadQuery::SessionNode(node) => session::answer_node(state, node, pretty),
            ReadQuery::SessionList => session::answer_list(state, pretty),
            ReadQuery::Txn(ops) => txn::answer_read(state, ops, pretty),
            ReadQuery::RaftConfiguration => status::answer_configuration(cluster, ctx, pretty),
            ReadQuery::AutopilotConfiguration => autopilot::answer_configuration(state, pretty),
            ReadQuery::Catalog(read, selection) => catalog::answer(state, read, selection, pretty),
            ReadQuery::Health(read, selection) => health::answer(state, read, selection, pretty),
            ReadQuery::Snapshot => snapshot::answer(state, cluster, ctx),
        }
    }

    /// What a blocking query on this read waits for.
    pub fn watch(&self) -> WatchSpec {
        match self {
            ReadQuery::Kv {
                key, recurse, keys, ..
            } => WatchSpec::Kv {
                key: key.clone(),
                prefix: *recurse || *keys,
            },
            ReadQuery::SessionInfo(_) | ReadQuery::SessionNode(_) | ReadQuery::SessionList => {
                WatchSpec::Tables(fsm::table::SESSIONS)
            }
            ReadQuery::Txn(_) => WatchSpec::Tables(fsm::table::KVS),
            ReadQuery::RaftConfiguration
            | ReadQuery::AutopilotConfiguration
            | ReadQuery::Snapshot => WatchSpec::Any,
            ReadQuery::Catalog(read, _) => catalog::watch(read),
            ReadQuery::Health(read, _) => health::watch(read),
        }
    }
}

/// A write: the command and how to render its outcome.
#[derive(Clone, Debug)]
pub struct WritePlan {
    /// The command to apply.
    pub command: Command,
    /// How the outcome becomes a response.
    pub render: Render,
    /// `?pretty`.
    pub pretty: bool,
}

/// How a write's [`fsm::Outcome`] becomes a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Render {
    /// A bare JSON `true`/`false` (KV writes, session destroy, catalog register and deregister).
    Bool,
    /// Consul's `{"Results":...,"Errors":...}`.
    Txn,
    /// `{"ID":"..."}`.
    SessionCreated,
    /// `[Session]`, or 404 naming the session.
    SessionRenewed(String),
    /// An empty `200` (`PUT /v1/snapshot`).
    Empty,
}

/// An operator action and its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorPlan {
    /// `POST /v1/operator/raft/transfer-leader`.
    TransferLeader(Option<ServerId>),
    /// `DELETE /v1/operator/raft/peer`.
    RemovePeer(ServerId),
    /// `GET /v1/operator/autopilot/health` (the leader's autopilot state, rendered as health).
    AutopilotHealth {
        /// `?pretty`.
        pretty: bool,
    },
    /// `GET /v1/operator/autopilot/state`.
    AutopilotState {
        /// `?pretty`.
        pretty: bool,
    },
}

impl OperatorPlan {
    /// The response once the action succeeded; `result` is what the leader answered (for the autopilot
    /// reads, an [`autopilot::encode_view`]).
    pub fn done(&self, result: &[u8]) -> ApiResponse {
        let view = || autopilot::decode_view(result);
        match self {
            OperatorPlan::TransferLeader(_) => {
                ApiResponse::json(200, br#"{"Success":true}"#.to_vec())
            }
            OperatorPlan::RemovePeer(_) => ApiResponse::empty(),
            OperatorPlan::AutopilotHealth { pretty } => match view() {
                Ok(view) => autopilot::render_health(&view, *pretty),
                Err(e) => ApiResponse::text(500, e),
            },
            OperatorPlan::AutopilotState { pretty } => match view() {
                Ok(view) => autopilot::render_state(&view, *pretty),
                Err(e) => ApiResponse::text(500, e),
            },
        }
    }
}
