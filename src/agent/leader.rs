//! Work only the leader does, on the Raft executor: reconciling the LAN pool into the catalog
//! ([`super::reconcile`]), invalidating sessions whose TTL ran out, and reaping old KV tombstones.
//!
//! Session deadlines are replicated (a create or renew command carries the proposer's wall clock), so any
//! leader sees them. Like Consul, a new leader first grants every session a full grace period: a session
//! expires only once both its deadline and `leadership start + 2 x TTL` have passed, so sessions do not all
//! expire at once after an election that took a while.
//!
//! Tombstones keep a deleted key's index so a prefix's `X-Consul-Index` never goes backwards; the leader
//! samples the applied index every [`REAP_INTERVAL_MS`] and reaps tombstones older than [`TOMBSTONE_TTL_MS`]
//! with one replicated command.

use super::bridge::Shared;
use super::http::wall_clock_ms;
use super::membership::Membership;
use super::raft_driver::RaftHandle;
use super::reconcile::reconcile;
use crate::fsm::codec::encode_command;
use crate::fsm::{Command, Index, SESSION_TTL_MULTIPLIER};
use cairn_io::Shutdown;
use futures_lite::future::or;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// How often the leader looks for expired sessions.
pub const SESSION_CHECK_INTERVAL_MS: u64 = 500;
/// How long a KV tombstone is kept (Consul's `tombstone_ttl`).
pub const TOMBSTONE_TTL_MS: u64 = 15 * 60_000;
/// How often the applied index is sampled for the tombstone reaper.
pub const REAP_INTERVAL_MS: u64 = 60_000;
/// Samples kept (enough to cover the tombstone TTL).
const REAP_SAMPLES_MAX: usize = (TOMBSTONE_TTL_MS / REAP_INTERVAL_MS) as usize + 2;

/// Who this leader is and what gossip says of its datacenter (for the catalog reconcile).
pub struct LeaderContext {
    /// The LAN pool's members.
    pub lan: Arc<Membership>,
    /// This server's datacenter.
    pub datacenter: String,
    /// This server's node name.
    pub node_name: String,
}

/// Runs the leader's periodic work until `stop`.
pub async fn run(handle: RaftHandle, shared: Arc<Shared>, context: LeaderContext, stop: Shutdown) {
    let mut leader_since_ms: Option<u64> = None;
    let mut samples: VecDeque<(u64, Index)> = VecDeque::new();
    let mut reaped_through: Index = 0;
    while !stop.is_triggered() {
        let tick = glommio::timer::sleep(Duration::from_millis(SESSION_CHECK_INTERVAL_MS));
        or(
            async {
                tick.await;
            },
            stop.wait(),
        )
        .await;
        let published = shared.published();
        if !published.cluster.is_leader() {
            leader_since_ms = None;
            samples.clear();
            continue;
        }
        let now_ms = wall_clock_ms();
        let since = *leader_since_ms.get_or_insert(now_ms);
        let members = context.lan.members();
        let reconciled = reconcile(
            &members,
            &published.state,
            &context.datacenter,
            &context.node_name,
            now_ms,
        );
        for command in reconciled {
            let _ = handle.apply(encode_command(&command)).await;
        }
        for id in expired_sessions(&published.state, since, now_ms) {
            let command = Command::SessionDestroy { now_ms, id };
            let _ = handle.apply(encode_command(&command)).await;
        }
        if samples
            .back()
            .is_none_or(|(at, _)| now_ms >= at + REAP_INTERVAL_MS)
        {
            samples.push_back((now_ms, published.state.applied_index()));
            while samples.len() > REAP_SAMPLES_MAX {
                samples.pop_front();
            }
        }
        let through = samples
            .iter()
            .rev()
            .find(|(at, _)| at + TOMBSTONE_TTL_MS <= now_ms)
            .map(|(_, index)| *index);
        if let Some(through) = through.filter(|t| *t > reaped_through) {
            let command = Command::TombstoneReap {
                through_index: through,
            };
            if handle.apply(encode_command(&command)).await.is_ok() {
                reaped_through = through;
            }
        }
    }
}

/// The sessions whose deadline and whose grace period since `leader_since_ms` have both passed.
pub fn expired_sessions(
    state: &crate::fsm::State,
    leader_since_ms: u64,
    now_ms: u64,
) -> Vec<String> {
    state
        .session_deadlines()
        .into_iter()
        .filter(|(id, deadline_ms)| {
            let ttl_ms = state.session_get(id).map_or(0, |s| s.spec.ttl_ms);
            let grace_ms = leader_since_ms + SESSION_TTL_MULTIPLIER * ttl_ms;
            ttl_ms > 0 && now_ms >= (*deadline_ms).max(grace_ms)
        })
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{Behavior, Fsm, SessionSpec};

    fn session(id: &str, ttl_ms: u64) -> Command {
        Command::SessionCreate {
            now_ms: 1_000,
            spec: SessionSpec {
                id: id.to_string(),
                name: String::new(),
                node: "n".to_string(),
                node_checks: Vec::new(),
                service_checks: Vec::new(),
                lock_delay_ms: 0,
                behavior: Behavior::Release,
                ttl_ms,
                ttl: format!("{ttl_ms}ms"),
            },
        }
    }

    #[test]
    fn sessions_expire_after_their_deadline_and_a_new_leaders_grace_period() {
        let mut fsm = Fsm::new();
        fsm.apply(1, &session("a", 10_000));
        fsm.apply(2, &session("b", 20_000));
        fsm.apply(3, &session("none", 0));
        let state = fsm.state();
        // Deadlines: a at 1 000 + 2 x 10 000, b at 1 000 + 2 x 20 000; "none" never expires.
        assert!(expired_sessions(&state, 0, 20_999).is_empty());
        assert_eq!(expired_sessions(&state, 0, 21_000), vec!["a".to_string()]);
        assert_eq!(
            expired_sessions(&state, 0, 41_000),
            vec!["a".to_string(), "b".to_string()]
        );
        // A leader since 30 000 grants a full 2 x TTL first.
        assert!(expired_sessions(&state, 30_000, 49_999).is_empty());
        assert_eq!(
            expired_sessions(&state, 30_000, 50_000),
            vec!["a".to_string()]
        );
    }
}
