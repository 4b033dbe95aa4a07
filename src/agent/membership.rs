//! What gossip knows of a pool, published for the rest of the agent: the gossip owner (one task on shard 0)
//! replaces the member list after every change; the HTTP shards (`/v1/agent/members`), the Raft executor
//! (the leader's catalog reconcile, autopilot, `-bootstrap-expect`) and a client agent's server list read it
//! with one short lock and an `Arc` clone.
//!
//! Consul's Serf tags say what a member is: `role` (`consul` for a server, `node` for a client), `dc`, `port`
//! (a server's RPC port), `id` (the node id), `expect` (its `-bootstrap-expect`), `nonvoter`, `vsn`, `build`.
//! A server's Raft id is derived from its RPC address ([`super::server::server_id`]).

use super::server::server_id;
use crate::raft::ServerId;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Serf's status of a member, as `/v1/agent/members` numbers it (`Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// 1: alive.
    Alive,
    /// 2: announced a leave.
    Leaving,
    /// 3: left.
    Left,
    /// 4: failed (declared dead without leaving).
    Failed,
}

impl MemberState {
    /// The number Consul's API uses (`serf.MemberStatus`).
    pub fn code(self) -> u8 {
        match self {
            MemberState::Alive => 1,
            MemberState::Leaving => 2,
            MemberState::Left => 3,
            MemberState::Failed => 4,
        }
    }

    /// The word `consul members` prints.
    pub fn word(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Leaving => "leaving",
            MemberState::Left => "left",
            MemberState::Failed => "failed",
        }
    }
}

/// One member of a gossip pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Its node name (in the WAN pool: `<node>.<dc>`).
    pub name: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its Serf tags.
    pub tags: BTreeMap<String, String>,
    /// Its status.
    pub state: MemberState,
    /// memberlist protocol versions: min, max, current; delegate versions: min, max, current.
    pub vsn: [u8; 6],
}

impl MemberView {
    /// The server this member is, when its tags say it is a Consul server.
    pub fn server(&self) -> Option<ConsulServer> {
        if self.tags.get("role").map(String::as_str) != Some("consul") {
            return None;
        }
        let port: u16 = self.tags.get("port")?.parse().ok()?;
        let rpc_addr = SocketAddr::new(self.addr.ip(), port);
        Some(ConsulServer {
            name: self.name.clone(),
            id: server_id(rpc_addr),
            rpc_addr,
            datacenter: self.tags.get("dc").cloned().unwrap_or_default(),
            expect: self.tags.get("expect").and_then(|e| e.parse().ok()),
            nonvoter: self.tags.contains_key("nonvoter"),
            state: self.state,
        })
    }
}

/// A Consul server seen in a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulServer {
    /// Its node name.
    pub name: String,
    /// Its Raft id.
    pub id: ServerId,
    /// Its server RPC address.
    pub rpc_addr: SocketAddr,
    /// Its datacenter (`dc` tag).
    pub datacenter: String,
    /// Its `-bootstrap-expect`, if any.
    pub expect: Option<usize>,
    /// Started with `-non-voting-server` (tag `nonvoter`).
    pub nonvoter: bool,
    /// Its gossip status.
    pub state: MemberState,
}

/// The published member list of one pool.
#[derive(Debug, Default)]
pub struct Membership {
    members: RwLock<Arc<Vec<MemberView>>>,
    version: AtomicU64,
}

impl Membership {
    /// An empty list (before the gossip owner starts).
    pub fn new() -> Membership {
        Membership::default()
    }

    /// Replaces the list (the gossip owner, after a change).
    pub fn publish(&self, members: Vec<MemberView>) {
        *self.members.write() = Arc::new(members);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current list, sorted by name.
    pub fn members(&self) -> Arc<Vec<MemberView>> {
        Arc::clone(&self.members.read())
    }

    /// Bumped by every [`Membership::publish`]: readers compare it to skip unchanged lists.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The Consul servers of `datacenter` in the list, any status.
    pub fn servers(&self, datacenter: &str) -> Vec<ConsulServer> {
        self.members()
            .iter()
            .filter_map(MemberView::server)
            .filter(|s| s.datacenter == datacenter)
            .collect()
    }

    /// The RPC addresses of the live servers of `datacenter` (a client agent's server list).
    pub fn live_server_addrs(&self, datacenter: &str) -> Vec<SocketAddr> {
        self.servers(datacenter)
            .into_iter()
            .filter(|s| s.state == MemberState::Alive)
            .map(|s| s.rpc_addr)
            .collect()
    }
}

/// The gossip address `ip:port` for `ip` given as raw bytes (4 or 16); `None` for another length.
pub fn socket_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = match ip.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ip: [u8; 4], tags: &[(&str, &str)], state: MemberState) -> MemberView {
        MemberView {
            name: name.to_string(),
            addr: socket_addr(&ip, 8301).unwrap(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    #[test]
    fn servers_are_the_members_tagged_consul_with_a_port_in_the_datacenter() {
        let list = Membership::new();
        assert_eq!(list.version(), 0);
        list.publish(vec![
            member(
                "s1",
                [127, 0, 0, 2],
                &[
                    ("role", "consul"),
                    ("dc", "dc1"),
                    ("port", "8300"),
                    ("expect", "3"),
                ],
                MemberState::Alive,
            ),
            member(
                "s2",
                [127, 0, 0, 3],
                &[("role", "consul"), ("dc", "dc1"), ("port", "8300")],
                MemberState::Failed,
            ),
            member(
                "s3",
                [127, 0, 0, 4],
                &[("role", "consul"), ("dc", "dc2"), ("port", "8300")],
                MemberState::Alive,
            ),
            member(
                "c1",
                [127, 0, 0, 5],
                &[("role", "node"), ("dc", "dc1")],
                MemberState::Alive,
            ),
            member(
                "bad",
                [127, 0, 0, 6],
                &[("role", "consul"), ("dc", "dc1"), ("port", "x")],
                MemberState::Alive,
            ),
        ]);
        assert_eq!(list.version(), 1);
        let servers = list.servers("dc1");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].expect, Some(3));
        assert_eq!(
            servers[0].rpc_addr,
            "127.0.0.2:8300".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(servers[0].id, server_id(servers[0].rpc_addr));
        assert_eq!(
            list.live_server_addrs("dc1"),
            vec!["127.0.0.2:8300".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(MemberState::Failed.code(), 4);
        assert!(socket_addr(&[1, 2, 3], 1).is_none());
    }
}
