//! PURE: autopilot's judgement, from the configuration, the leader's Raft view, the gossip member list and
//! the time. No IO, no clock: the loop in [`super`] gathers the inputs and carries out the actions.
//!
//! - **Server health** (Consul's rule): alive in gossip (a server gossip does not list yet counts as alive),
//!   heard from within `LastContactThreshold`, its log at the leader's last term and no more than
//!   `MaxTrailingLogs` behind. The leader is healthy when alive. `StableSince` moves when health changes.
//! - **Cluster**: healthy when every server is; the failure tolerance is the healthy voters beyond a quorum.
//! - **Actions** (only on the leader, only when gossip lists servers): a live server missing from the Raft
//!   configuration is added as a non-voter; a non-voter (not tagged `nonvoter`) healthy for
//!   `ServerStabilizationTime` is promoted; with `CleanupDeadServers`, servers gossip reports failed or left
//!   are removed: non-voters always, voters one at a time while more than `MinQuorum` voters remain and
//!   fewer than half of them have been removed this round. A server gossip does not list is never removed.

use crate::agent::membership::{ConsulServer, MemberState, MemberView};
use crate::agent::raft_driver::{PeerHealth, RaftHealth};
use crate::api::autopilot::{AutopilotView, ServerHealthView};
use crate::fsm::{AutopilotConfig, State};
use crate::raft::ServerId;
use std::collections::BTreeMap;

/// What autopilot asks of Raft, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add a server gossip found as a non-voter.
    AddNonvoter {
        /// Its Raft id.
        id: ServerId,
        /// Its server RPC address.
        address: String,
    },
    /// Make a stable non-voter a voter.
    Promote {
        /// Its Raft id.
        id: ServerId,
        /// Its address in the configuration.
        address: String,
    },
    /// Remove a dead server.
    Remove {
        /// Its Raft id.
        id: ServerId,
    },
}

/// Everything autopilot judges from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The replicated configuration.
    pub config: &'a AutopilotConfig,
    /// The leader's Raft view.
    pub raft: &'a RaftHealth,
    /// The LAN pool's members (any role, any datacenter).
    pub members: &'a [MemberView],
    /// This server's datacenter.
    pub datacenter: &'a str,
    /// This server's node name.
    pub node_name: &'a str,
    /// This server's version.
    pub version: &'a str,
    /// The applied state (the catalog gives each server node's metadata).
    pub state: &'a State,
    /// Wall-clock milliseconds.
    pub now_ms: u64,
}

/// When each server's health last changed: `(healthy, since_ms)` by server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracker {
    stable: BTreeMap<ServerId, (bool, u64)>,
}

impl Tracker {
    /// Records `healthy` for `id` at `now_ms`; returns since when it has had that health.
    fn observe(&mut self, id: ServerId, healthy: bool, now_ms: u64) -> u64 {
        let entry = self.stable.entry(id).or_insert((healthy, now_ms));
        if entry.0 != healthy {
            *entry = (healthy, now_ms);
        }
        entry.1
    }

    /// Forgets everything (leadership lost: a new term starts afresh).
    pub fn clear(&mut self) {
        self.stable.clear();
    }
}

/// One server of the configuration, judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessed {
    /// Replication facts.
    pub peer: PeerHealth,
    /// Gossip's entry for it, when gossip lists it.
    pub member: Option<ConsulServer>,
    /// Its build version, when known.
    pub version: String,
    /// Its health now.
    pub healthy: bool,
    /// Since when it has had that health (wall-clock ms).
    pub stable_since_ms: u64,
}

/// The servers of the datacenter gossip lists, with their build versions.
fn servers_of(inputs: &Inputs<'_>) -> Vec<(ConsulServer, String)> {
    inputs
        .members
        .iter()
        .filter_map(|m| {
            let build = m
                .tags
                .get("build")
                .map_or("", |b| b.split(':').next().unwrap_or(""));
            m.server().map(|s| (s, build.to_string()))
        })
        .filter(|(s, _)| s.datacenter == inputs.datacenter)
        .collect()
}

/// Consul's health rule for one server.
pub fn server_healthy(
    config: &AutopilotConfig,
    raft: &RaftHealth,
    peer: &PeerHealth,
    state: MemberState,
) -> bool {
    if state != MemberState::Alive {
        return false;
    }
    if peer.id == raft.id {
        return true;
    }
    let in_contact = peer
        .contact_age_ms
        .is_some_and(|age| age <= config.last_contact_threshold_ms);
    in_contact
        && peer.match_term == raft.last_term
        && peer.match_index.saturating_add(config.max_trailing_logs) >= raft.last_index
}

/// Judges every server of the configuration, updating `tracker`.
pub fn assess(inputs: &Inputs<'_>, tracker: &mut Tracker) -> Vec<Assessed> {
    let known = servers_of(inputs);
    let assessed: Vec<Assessed> = inputs
        .raft
        .servers
        .iter()
        .map(|peer| {
            let found = known.iter().find(|(s, _)| s.id == peer.id);
            let state = found.map_or(MemberState::Alive, |(s, _)| s.state);
            let healthy = server_healthy(inputs.config, inputs.raft, peer, state);
            let version = match found {
                Some((_, build)) => build.clone(),
                None if peer.id == inputs.raft.id => inputs.version.to_string(),
                None => String::new(),
            };
            Assessed {
                peer: peer.clone(),
                member: found.map(|(s, _)| s.clone()),
                version,
                healthy,
                stable_since_ms: tracker.observe(peer.id, healthy, inputs.now_ms),
            }
        })
        .collect();
    tracker
        .stable
        .retain(|id, _| assessed.iter().any(|a| a.peer.id == *id));
    assessed
}

/// The view `/v1/operator/autopilot/{health,state}` render.
pub fn view_of(inputs: &Inputs<'_>, assessed: &[Assessed]) -> AutopilotView {
    let voters: Vec<&Assessed> = assessed.iter().filter(|a| a.peer.voter).collect();
    let healthy_voters = voters.iter().filter(|a| a.healthy).count() as u64;
    let quorum = voters.len() as u64 / 2 + 1;
    AutopilotView {
        healthy: assessed.iter().all(|a| a.healthy),
        failure_tolerance: healthy_voters.saturating_sub(quorum),
        leader: id_text(inputs.raft.id),
        voters: voters.iter().map(|a| id_text(a.peer.id)).collect(),
        servers: assessed.iter().map(|a| server_view(inputs, a)).collect(),
    }
}

fn id_text(id: ServerId) -> String {
    format!("{:016x}", id.0)
}

fn server_view(inputs: &Inputs<'_>, a: &Assessed) -> ServerHealthView {
    let me = a.peer.id == inputs.raft.id;
    let name = match (&a.member, me) {
        (Some(m), _) => m.name.clone(),
        (None, true) => inputs.node_name.to_string(),
        (None, false) => a
            .peer
            .address
            .rsplit_once(':')
            .map_or(a.peer.address.clone(), |(host, _)| host.to_string()),
    };
    let meta = inputs.state.node(&name).map(|n| n.meta.clone());
    ServerHealthView {
        id: id_text(a.peer.id),
        name,
        address: a.peer.address.clone(),
        serf_status: a
            .member
            .as_ref()
            .map_or(MemberState::Alive, |m| m.state)
            .word()
            .to_string(),
        version: a.version.clone(),
        leader: me && inputs.raft.leading,
        voter: a.peer.voter,
        last_contact_ms: a.peer.contact_age_ms.unwrap_or(0),
        last_term: a.peer.match_term,
        last_index: a.peer.match_index,
        healthy: a.healthy,
        stable_since_ms: a.stable_since_ms,
        meta,
    }
}

/// What autopilot should do now. Nothing unless this server leads and gossip lists servers.
pub fn decide(inputs: &Inputs<'_>, assessed: &[Assessed]) -> Vec<Action> {
    let known = servers_of(inputs);
    if !inputs.raft.leading || known.is_empty() {
        return Vec::new();
    }
    let mut actions: Vec<Action> = known
        .iter()
        .filter(|(s, _)| s.state == MemberState::Alive)
        .filter(|(s, _)| !assessed.iter().any(|a| a.peer.id == s.id))
        .map(|(s, _)| Action::AddNonvoter {
            id: s.id,
            address: s.rpc_addr.to_string(),
        })
        .collect();
    if inputs.config.cleanup_dead_servers {
        actions.extend(removals(inputs, assessed));
    }
    actions.extend(promotions(inputs, assessed));
    actions
}

/// Dead servers to remove: every dead non-voter, then dead voters within the limits.
fn removals(inputs: &Inputs<'_>, assessed: &[Assessed]) -> Vec<Action> {
    let dead = |a: &&Assessed| {
        a.peer.id != inputs.raft.id
            && a.member
                .as_ref()
                .is_some_and(|m| matches!(m.state, MemberState::Failed | MemberState::Left))
    };
    let mut out: Vec<Action> = assessed
        .iter()
        .filter(dead)
        .filter(|a| !a.peer.voter)
        .map(|a| Action::Remove { id: a.peer.id })
        .collect();
    let mut voters = assessed.iter().filter(|a| a.peer.voter).count() as u64;
    let mut removable = voters.saturating_sub(1) / 2;
    let floor = inputs.config.min_quorum.max(1);
    for a in assessed.iter().filter(dead).filter(|a| a.peer.voter) {
        if removable == 0 || voters <= floor {
            break;
        }
        out.push(Action::Remove { id: a.peer.id });
        removable -= 1;
        voters -= 1;
    }
    out
}

/// Non-voters healthy for the stabilization time, not tagged to stay non-voters.
fn promotions(inputs: &Inputs<'_>, assessed: &[Assessed]) -> Vec<Action> {
    let stable_ms = inputs.config.server_stabilization_time_ms;
    assessed
        .iter()
        .filter(|a| !a.peer.voter && a.healthy)
        .filter(|a| {
            a.member
                .as_ref()
                .is_some_and(|m| m.state == MemberState::Alive && !m.nonvoter)
        })
        .filter(|a| inputs.now_ms.saturating_sub(a.stable_since_ms) >= stable_ms)
        .map(|a| Action::Promote {
            id: a.peer.id,
            address: a.peer.address.clone(),
        })
        .collect()
}
