//! `/v1/status/{leader,peers}` and `/v1/operator/raft/{configuration,peer,transfer-leader}`.

use super::cluster::ClusterView;
use super::json;
use super::params;
use super::{
    Answer, ApiRequest, ApiResponse, Context, Method, OperatorPlan, Plan, ReadPlan, ReadQuery,
};
use crate::raft::ServerId;
use serde::Serialize;

/// The Raft protocol version Consul reports for its servers.
const RAFT_PROTOCOL_VERSION: &str = "3";

/// Plans `/v1/status/<rest>`: answered at once from the cluster view.
pub fn plan_status(req: &ApiRequest, rest: &str, cluster: &ClusterView) -> Plan {
    if !matches!(req.method, Method::Get | Method::Head) {
        return Plan::Respond(super::router::method_not_allowed(req.method));
    }
    let pretty = req.query.has("pretty");
    match rest {
        "leader" => {
            let leader = cluster.leader_address.clone().unwrap_or_default();
            Plan::Respond(json::ok(&leader, pretty))
        }
        "peers" => {
            let peers: Vec<&str> = cluster
                .servers
                .iter()
                .filter(|s| s.voter)
                .map(|s| s.address.as_str())
                .collect();
            Plan::Respond(json::ok(&peers, pretty))
        }
        _ => Plan::Respond(super::router::not_found()),
    }
}

/// Plans `/v1/operator/raft/<rest>`.
pub fn plan_operator(req: &ApiRequest, rest: &str, cluster: &ClusterView) -> Plan {
    match (rest, req.method) {
        ("configuration", Method::Get | Method::Head) => {
            let consistency = match params::consistency(&req.query) {
                Ok(c) => c,
                Err(response) => return Plan::Respond(response),
            };
            Plan::Read(ReadPlan {
                consistency,
                blocking: None,
                query: ReadQuery::RaftConfiguration,
                pretty: req.query.has("pretty"),
            })
        }
        ("peer", Method::Delete) => match peer_to_remove(req, cluster) {
            Ok(id) => Plan::Operator(OperatorPlan::RemovePeer(id)),
            Err(response) => Plan::Respond(response),
        },
        ("transfer-leader", Method::Post | Method::Put) => {
            match req.query.get("id").filter(|id| !id.is_empty()) {
                None => Plan::Operator(OperatorPlan::TransferLeader(None)),
                Some(text) => match resolve(cluster, text) {
                    Some(id) => Plan::Operator(OperatorPlan::TransferLeader(Some(id))),
                    None => Plan::Respond(ApiResponse::text(
                        400,
                        format!("cannot find peer {text:?} in the Raft configuration"),
                    )),
                },
            }
        }
        ("configuration" | "peer" | "transfer-leader", method) => {
            Plan::Respond(super::router::method_not_allowed(method))
        }
        _ => Plan::Respond(super::router::not_found()),
    }
}

/// The server named by `?id=` or `?address=`.
fn peer_to_remove(req: &ApiRequest, cluster: &ClusterView) -> Result<ServerId, ApiResponse> {
    let (what, text) = match (req.query.get("id"), req.query.get("address")) {
        (Some(id), None) if !id.is_empty() => ("id", id),
        (None, Some(address)) if !address.is_empty() => ("address", address),
        (Some(_), Some(_)) => {
            return Err(ApiResponse::text(
                400,
                "Must specify only one of ?id or ?address",
            ))
        }
        _ => {
            return Err(ApiResponse::text(
                400,
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
            ))
        }
    };
    resolve(cluster, text).ok_or_else(|| {
        ApiResponse::text(
            500,
            format!("{what} {text:?} was not found in the Raft configuration"),
        )
    })
}

/// A server of the configuration by its ID (16 hex digits) or its address.
fn resolve(cluster: &ClusterView, text: &str) -> Option<ServerId> {
    cluster
        .servers
        .iter()
        .find(|s| s.address == text || server_id_text(s.id) == text.to_ascii_lowercase())
        .map(|s| s.id)
}

/// How a server ID is written in the API.
pub fn server_id_text(id: ServerId) -> String {
    format!("{:016x}", id.0)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationJson<'a> {
    servers: Vec<ServerJson<'a>>,
    index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServerJson<'a> {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: &'a str,
    leader: bool,
    voter: bool,
    protocol_version: &'static str,
}

/// `GET /v1/operator/raft/configuration`. Other servers' node names come from the LAN pool
/// ([`Context::server_names`]); a server gossip does not list is named by its host address.
pub fn answer_configuration(cluster: &ClusterView, ctx: &Context, pretty: bool) -> Answer {
    let servers = cluster
        .servers
        .iter()
        .map(|s| ServerJson {
            id: server_id_text(s.id),
            node: if s.id == cluster.id {
                ctx.node_name.clone()
            } else if let Some(name) = ctx.server_names.get(&s.address) {
                name.clone()
            } else {
                s.address
                    .rsplit_once(':')
                    .map_or(s.address.clone(), |(host, _)| host.to_string())
            },
            address: &s.address,
            leader: cluster.leader_id == Some(s.id),
            voter: s.voter,
            protocol_version: RAFT_PROTOCOL_VERSION,
        })
        .collect();
    let body = ConfigurationJson {
        servers,
        index: cluster.config_index,
    };
    Answer {
        index: cluster.config_index,
        response: json::ok(&body, pretty),
    }
}
