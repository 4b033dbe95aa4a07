//! The bridge between the Raft core and the shards (ARCHITECTURE.md rule 3).
//!
//! - **Published state.** After each applied batch the Raft core replaces [`Shared`]'s [`Published`]: the
//!   state machine's immutable, structurally shared [`fsm::State`] (an O(1) clone of persistent maps), the
//!   applied index and a [`ClusterView`] (leader, servers). Shards read it with one short read lock and an
//!   `Arc` clone, never waiting for the core. The leader lease's end and the last leader contact are atomics
//!   the core updates after every step, so a default-mode read on the leader needs no round trip.
//! - **Requests** go from a shard to the core over a bounded glommio shared channel ([`CoreRequest`]):
//!   writes, read-index requests for `default`/`consistent` reads that the shard cannot serve locally, and
//!   operator actions. Each carries the shard's request id; the reply comes back on the shard's message
//!   channel ([`ShardMessage::Reply`]).
//! - **Change notices** ([`ShardMessage::Changed`]) tell each shard the new applied index, which tables,
//!   KV keys, service names and nodes changed, so the shard wakes only the blocking queries that watch them.
//!   The core keeps a per-shard outbox and merges notices that have not left yet, so a slow shard never
//!   makes it drop one.
//!
//! [`bridge`] builds both sides before the executors start; each side connects its channel ends on its own
//! executor.

pub use crate::api::cluster::{ClusterView, ServerView};
use crate::fsm;
use crate::raft::{Index, ServerId};
use crate::rpc::{Consistency, ErrorReply};
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use parking_lot::RwLock;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Requests one shard may have queued to the core at once (the channel's capacity).
pub const CORE_REQUEST_QUEUE_MAX: usize = 1024;
/// Messages the core may have queued to one shard at once (the channel's capacity).
pub const SHARD_MESSAGE_QUEUE_MAX: usize = 1024;

/// What a shard asks the Raft core.
#[derive(Debug)]
pub enum CoreRequest {
    /// Apply a state machine command through Raft (forwarded to the leader on a follower).
    Apply {
        /// The shard's request id.
        id: u64,
        /// The encoded [`fsm::Command`].
        command: Vec<u8>,
    },
    /// Find the index a `default` or `consistent` read must see (from the leader, on a follower).
    ReadIndex {
        /// The shard's request id.
        id: u64,
        /// `Default` (leader lease) or `Consistent` (a quorum round).
        consistency: Consistency,
    },
    /// An operator action on the Raft cluster.
    Operator {
        /// The shard's request id.
        id: u64,
        /// What to do.
        op: OperatorOp,
    },
    /// The answer to a call relayed by a client agent ([`ShardMessage::Relay`]); no reply.
    RelayAnswer {
        /// The relay id the core gave the call.
        id: u64,
        /// The encoded `agent::relay::RelayAnswer`.
        answer: Vec<u8>,
    },
}

/// Operator actions on the Raft cluster (`/v1/operator/raft/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorOp {
    /// Hand leadership to `to`, or to the most up-to-date voter.
    TransferLeader(Option<ServerId>),
    /// Remove a server from the configuration.
    RemovePeer(ServerId),
    /// The leader's autopilot state (`/v1/operator/autopilot/{health,state}`), encoded.
    AutopilotState,
}

/// The core's answer to a [`CoreRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreReply {
    /// A command was applied at `index`; `result` is the encoded [`fsm::Outcome`].
    Applied {
        /// Its log index.
        index: Index,
        /// The state machine's answer.
        result: Vec<u8>,
    },
    /// A read must see at least this applied index.
    ReadIndex(Index),
    /// An operator action finished.
    Done,
}

/// What the core sends a shard.
#[derive(Debug)]
pub enum ShardMessage {
    /// The answer to request `id`.
    Reply {
        /// The shard's request id.
        id: u64,
        /// The answer.
        reply: Result<CoreReply, ErrorReply>,
    },
    /// The published state moved on.
    Changed(ChangeNotice),
    /// A client agent's call for this shard's front end, to be answered with
    /// [`CoreRequest::RelayAnswer`] and the same id.
    Relay {
        /// The relay id.
        id: u64,
        /// The encoded `agent::relay::RelayCall`.
        call: Vec<u8>,
    },
}

/// What changed in the published state: enough for a shard to wake the right blocking queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeNotice {
    /// The applied index now published.
    pub index: Index,
    /// Tables changed ([`fsm::table`] flags).
    pub tables: u32,
    /// KV keys changed, or `None` for "any key may have changed".
    pub kv_keys: Option<Arc<Vec<String>>>,
    /// Service names whose instances or checks changed (with [`fsm::table::SERVICES`]), or `None` for "any".
    pub service_names: Option<Arc<Vec<String>>>,
    /// Nodes changed or whose checks changed (with [`fsm::table::NODES`] or [`fsm::table::CHECKS`]), or
    /// `None` for "any".
    pub node_names: Option<Arc<Vec<String>>>,
}

impl ChangeNotice {
    /// Folds a later notice into this one (for notices that have not left the outbox yet). Each list of
    /// names stays exact while both notices name what they changed and the union fits
    /// [`fsm::CHANGED_KEYS_MAX`]; otherwise it becomes `None` ("any").
    pub fn merge(&mut self, later: ChangeNotice) {
        use fsm::table::{CHECKS, KVS, NODES, SERVICES};
        let (mine, theirs) = (self.tables, later.tables);
        let pick = |flags: u32| (mine & flags != 0, theirs & flags != 0);
        self.kv_keys = merge_names(pick(KVS), self.kv_keys.take(), later.kv_keys);
        self.service_names = merge_names(
            pick(SERVICES),
            self.service_names.take(),
            later.service_names,
        );
        self.node_names = merge_names(
            pick(NODES | CHECKS),
            self.node_names.take(),
            later.node_names,
        );
        self.index = self.index.max(later.index);
        self.tables |= later.tables;
    }

    /// True when a change to KV `key` (or, with `prefix`, to any key under it) may be in this notice.
    pub fn touches_kv(&self, key: &str, prefix: bool) -> bool {
        if self.tables & fsm::table::KVS == 0 {
            return false;
        }
        match &self.kv_keys {
            None => true,
            Some(keys) if prefix => keys.iter().any(|k| k.starts_with(key)),
            Some(keys) => keys.iter().any(|k| k == key),
        }
    }

    /// True when a change to the instances (or checks) of service `name` may be in this notice.
    pub fn touches_service(&self, name: &str) -> bool {
        if self.tables & fsm::table::SERVICES == 0 {
            return false;
        }
        self.service_names
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

/// Unites two lists of changed names; `changed` says whether each notice changed the table the names belong
/// to (a notice that did not has no list to offer, and must not turn the other's list into "any").
fn merge_names(
    changed: (bool, bool),
    mine: Option<Arc<Vec<String>>>,
    theirs: Option<Arc<Vec<String>>>,
) -> Option<Arc<Vec<String>>> {
    match (changed, mine, theirs) {
        ((false, false), _, _) => None,
        ((false, true), _, names) | ((true, false), names, _) => names,
        (_, Some(a), Some(b)) if a.len() + b.len() <= fsm::CHANGED_KEYS_MAX => {
            let mut names = Vec::with_capacity(a.len() + b.len());
            names.extend(a.iter().cloned());
            names.extend(b.iter().filter(|n| !a.contains(n)).cloned());
            Some(Arc::new(names))
        }
        _ => None,
    }
}

/// What the core publishes after each applied batch.
#[derive(Clone, Debug, Default)]
pub struct Published {
    /// The state machine's state.
    pub state: fsm::State,
    /// The Raft applied index (may exceed `state.applied_index()`: no-op and configuration entries).
    pub applied_index: Index,
    /// The cluster.
    pub cluster: Arc<ClusterView>,
}

/// State shared by the core and every shard.
#[derive(Debug)]
pub struct Shared {
    clock: Instant,
    published: RwLock<Arc<Published>>,
    /// `clock` ms at which the leader lease ends; 0 when this server holds none.
    lease_until_ms: AtomicU64,
    /// `clock` ms of the last contact with a leader (refreshed continuously on the leader); `u64::MAX` when
    /// there never was one.
    last_contact_ms: AtomicU64,
    /// Per shard: whether it has blocking queries waiting, i.e. wants change notices (see [`Shared::listen`]).
    listening: Vec<AtomicBool>,
}

impl Shared {
    /// A fresh shared state whose clock starts now, for no shards.
    pub fn new() -> Shared {
        Shared::for_shards(0)
    }

    /// A fresh shared state for `shards` shards.
    pub fn for_shards(shards: usize) -> Shared {
        Shared {
            clock: Instant::now(),
            published: RwLock::new(Arc::new(Published::default())),
            lease_until_ms: AtomicU64::new(0),
            last_contact_ms: AtomicU64::new(u64::MAX),
            listening: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Says whether `shard` has blocking queries waiting. The core sends change notices only to listening
    /// shards, so an idle shard is not woken by every write. The handshake is Dekker's: the shard sets its
    /// flag, then (fence) reads the published state; the core publishes, then (fence) reads the flags. Either
    /// the core sees the flag and sends the notice, or the shard sees the new state: a shard that starts
    /// listening must re-check the published index after this call ([`crate::agent::shard::ShardLink::watch`]
    /// does).
    pub fn listen(&self, shard: usize, on: bool) {
        if let Some(flag) = self.listening.get(shard) {
            flag.store(on, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
    }

    /// Which shards want notices, read after a publish (the core's half of [`Shared::listen`]).
    pub fn listeners(&self) -> Vec<bool> {
        fence(Ordering::SeqCst);
        self.listening
            .iter()
            .map(|flag| flag.load(Ordering::SeqCst))
            .collect()
    }

    /// Milliseconds on the clock shared by the core and the shards.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// The latest published state.
    pub fn published(&self) -> Arc<Published> {
        Arc::clone(&self.published.read())
    }

    /// Replaces the published state (the core only).
    pub fn publish(&self, published: Published) {
        *self.published.write() = Arc::new(published);
    }

    /// Replaces only the cluster view (the core only).
    pub fn publish_cluster(&self, cluster: ClusterView) {
        let mut slot = self.published.write();
        let mut next = Published::clone(&slot);
        next.cluster = Arc::new(cluster);
        *slot = Arc::new(next);
    }

    /// Records the leader lease's end (`None`: no lease).
    pub fn set_lease_until_ms(&self, until_ms: Option<u64>) {
        self.lease_until_ms
            .store(until_ms.unwrap_or(0), Ordering::Release);
    }

    /// True while this server holds a valid leader lease.
    pub fn lease_valid(&self) -> bool {
        self.now_ms() < self.lease_until_ms.load(Ordering::Acquire)
    }

    /// Records contact with the leader now.
    pub fn touch_leader_contact(&self) {
        self.last_contact_ms.store(self.now_ms(), Ordering::Release);
    }

    /// Milliseconds since the last leader contact (0 on the leader), or `None` when there never was one.
    pub fn last_contact_age_ms(&self) -> Option<u64> {
        match self.last_contact_ms.load(Ordering::Acquire) {
            u64::MAX => None,
            at => Some(self.now_ms().saturating_sub(at)),
        }
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new()
    }
}

/// The core's ends of the bridge.
pub struct CoreSide {
    /// The shared state.
    pub shared: Arc<Shared>,
    /// One request channel per shard, in shard order.
    pub requests: Vec<SharedReceiver<CoreRequest>>,
    /// One message channel per shard, in shard order.
    pub messages: Vec<SharedSender<ShardMessage>>,
}

/// One shard's ends of the bridge.
pub struct ShardSide {
    /// The shard's number (its position in the core's vectors).
    pub shard: usize,
    /// The shared state.
    pub shared: Arc<Shared>,
    /// Requests to the core.
    pub requests: SharedSender<CoreRequest>,
    /// Messages from the core.
    pub messages: SharedReceiver<ShardMessage>,
}

/// Builds the bridge for `shards` shards.
pub fn bridge(shards: usize) -> (CoreSide, Vec<ShardSide>) {
    let shared = Arc::new(Shared::for_shards(shards));
    let mut core = CoreSide {
        shared: Arc::clone(&shared),
        requests: Vec::with_capacity(shards),
        messages: Vec::with_capacity(shards),
    };
    let mut sides = Vec::with_capacity(shards);
    for shard in 0..shards {
        let (request_tx, request_rx) = shared_channel::new_bounded(CORE_REQUEST_QUEUE_MAX);
        let (message_tx, message_rx) = shared_channel::new_bounded(SHARD_MESSAGE_QUEUE_MAX);
        core.requests.push(request_rx);
        core.messages.push(message_tx);
        sides.push(ShardSide {
            shard,
            shared: Arc::clone(&shared),
            requests: request_tx,
            messages: message_rx,
        });
    }
    (core, sides)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(index: Index, tables: u32, keys: Option<&[&str]>) -> ChangeNotice {
        ChangeNotice {
            index,
            tables,
            kv_keys: keys.map(|k| Arc::new(k.iter().map(|s| s.to_string()).collect())),
            ..ChangeNotice::default()
        }
    }

    fn names(list: &[&str]) -> Option<Arc<Vec<String>>> {
        Some(Arc::new(list.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn service_and_node_names_merge_like_keys() {
        use fsm::table::{CHECKS, KVS, NODES, SERVICES};
        let mut a = ChangeNotice {
            index: 3,
            tables: SERVICES | CHECKS,
            service_names: names(&["web"]),
            node_names: names(&["n1"]),
            ..ChangeNotice::default()
        };
        a.merge(notice(4, KVS, Some(&["k"])));
        assert_eq!(
            a.service_names,
            names(&["web"]),
            "a KV notice keeps the names"
        );
        assert_eq!(a.node_names, names(&["n1"]));
        a.merge(ChangeNotice {
            index: 5,
            tables: SERVICES | NODES,
            service_names: names(&["db", "web"]),
            node_names: names(&["n2"]),
            ..ChangeNotice::default()
        });
        assert_eq!(a.service_names, names(&["web", "db"]));
        assert_eq!(a.node_names, names(&["n1", "n2"]));
        assert!(a.touches_service("db") && a.touches_service("web"));
        assert!(!a.touches_service("cache"));
        a.merge(ChangeNotice {
            index: 6,
            tables: SERVICES,
            service_names: None,
            ..ChangeNotice::default()
        });
        assert!(a.touches_service("cache"), "None means every service");
        let big: Vec<String> = (0..fsm::CHANGED_KEYS_MAX)
            .map(|i| format!("s{i}"))
            .collect();
        let mut b = ChangeNotice {
            tables: SERVICES,
            service_names: names(&["x"]),
            ..ChangeNotice::default()
        };
        b.merge(ChangeNotice {
            tables: SERVICES,
            service_names: Some(Arc::new(big)),
            ..ChangeNotice::default()
        });
        assert_eq!(
            b.service_names, None,
            "past the cap the list means every service"
        );
        assert!(!notice(1, KVS, None).touches_service("web"));
    }

    #[test]
    fn notices_merge_without_losing_a_change() {
        let mut a = notice(5, fsm::table::KVS, Some(&["a", "b"]));
        a.merge(notice(7, fsm::table::KVS, Some(&["b", "c"])));
        assert_eq!(a, notice(7, fsm::table::KVS, Some(&["a", "b", "c"])));
        let mut s = notice(3, fsm::table::SESSIONS, None);
        s.merge(notice(4, fsm::table::KVS, Some(&["k"])));
        assert_eq!(s.tables, fsm::table::KVS | fsm::table::SESSIONS);
        assert!(s.touches_kv("k", false));
        assert!(!s.touches_kv("j", false));
        let mut all = notice(3, fsm::table::KVS, None);
        all.merge(notice(4, fsm::table::KVS, Some(&["k"])));
        assert!(all.touches_kv("anything", false), "None means every key");
    }

    #[test]
    fn a_notice_touches_keys_and_prefixes() {
        let n = notice(9, fsm::table::KVS, Some(&["app/db/host"]));
        assert!(n.touches_kv("app/db/host", false));
        assert!(n.touches_kv("app/", true));
        assert!(!n.touches_kv("app/", false));
        assert!(!n.touches_kv("web/", true));
        assert!(!notice(9, fsm::table::SESSIONS, None).touches_kv("a", true));
    }
}
