//! The Raft cluster as the HTTP API sees it: the status and operator routes and the `X-Consul-KnownLeader`
//! header read it. The Raft core builds it; it is plain data.

use crate::raft::{Index, ServerId};

/// One Raft server as the shards see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// Its Raft id.
    pub id: ServerId,
    /// Its server RPC address (`IP:PORT`).
    pub address: String,
    /// Whether it votes.
    pub voter: bool,
}

/// The Raft cluster as the shards see it (status and operator routes, headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// This server's id.
    pub id: ServerId,
    /// The known leader's id.
    pub leader_id: Option<ServerId>,
    /// The known leader's server RPC address.
    pub leader_address: Option<String>,
    /// The latest configuration's servers.
    pub servers: Vec<ServerView>,
    /// The log index of that configuration.
    pub config_index: Index,
    /// The current term.
    pub term: u64,
}

impl ClusterView {
    /// True when this server is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader_id == Some(self.id)
    }
}
