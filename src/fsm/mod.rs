//! PURE: the replicated state machine: KV (with tombstones and lock-delay), sessions, transactions, and the
//! catalog (nodes, services, health checks; [`catalog`]). ACL tables come later and follow the same pattern.
//!
//! Sessions and the catalog: a session create on a node the catalog has is refused when a check it names is
//! missing or critical (Consul's texts); a node the catalog does not know is accepted, because the agent does
//! not register its own node yet (the HTTP layer can ask [`session_binding_error`] with `require_node` for
//! Consul's `Missing node registration`). A bound check going critical or away, or its node going away, ends
//! the session in the same apply (release or delete, with lock-delay).
//!
//! [`Fsm`] runs on the Raft core: [`Fsm::apply`] applies one committed [`Command`] at its log index and
//! returns an [`Outcome`] for the proposer. After each applied batch the core publishes [`Fsm::state`], an
//! immutable, structurally shared [`State`] (an `Arc` of persistent `imbl` maps; cloning is O(1)), that
//! every shard reads without locks, and tells each shard what changed ([`Fsm::take_changes`]) so it can wake
//! only the blocking queries that watch a changed key, prefix or table.
//!
//! No clock: a command carries the proposer's wall-clock time (`now_ms`) where time matters (lock-delay,
//! session deadlines), so every server computes the same state. No randomness: session IDs are chosen by
//! the proposer. Commands and outcomes are MessagePack (`rmp-serde`, as Consul's own log); snapshots are
//! rkyv archives of key-sorted vectors ([`snapshot`]).

mod apply;
pub mod autopilot;
pub mod catalog;
pub mod catalog_read;
pub mod catalog_write;
pub mod codec;
pub mod kv;
pub mod session;
pub mod snapshot;
mod state;
pub mod txn;

#[cfg(test)]
mod catalog_tests;
#[cfg(test)]
mod tests;

pub use autopilot::AutopilotConfig;
pub use catalog::{
    CheckDefinition, CheckStatus, HealthCheck, Node, RegisterRequest, Service, ServiceAddress,
    Weights,
};
pub use catalog_read::{HealthEntry, StateCounts};
pub use catalog_write::{session_binding_error, MISSING_NODE, MISSING_SERVICE};
pub use kv::{KvEntry, KvOp, KvVerb};
pub use session::{Behavior, ServiceCheck, Session, SessionSpec};
pub use state::{State, TableIndexes};
pub use txn::{TxnError, TxnOutcome, TxnResult};

use serde::{Deserialize, Serialize};

/// A Raft log index (the same numbers as `crate::raft::Index`).
pub type Index = u64;

/// Consul's default session lock-delay.
pub const LOCK_DELAY_MS_DEFAULT: u64 = 15_000;
/// The largest lock-delay a session may ask for.
pub const LOCK_DELAY_MS_MAX: u64 = 60_000;
/// Sessions expire after this many TTLs without a renew (Consul's `sessionTTLMultiplier`).
pub const SESSION_TTL_MULTIPLIER: u64 = 2;
/// Operations one transaction may hold.
pub const TXN_OPS_MAX: usize = 128;
/// Keys named one by one in a [`Changes`]; past it the change is reported as "every key".
pub const CHANGED_KEYS_MAX: usize = 1024;

/// A replicated command: what a write asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// One KV write (`PUT`/`DELETE /v1/kv/:key`); verbs `Set`, `Cas`, `Lock`, `Unlock`, `Delete`,
    /// `DeleteCas`, `DeleteTree`.
    Kv {
        /// The proposer's wall-clock time, for lock-delay checks.
        now_ms: u64,
        /// The operation.
        op: KvOp,
    },
    /// A transaction (`PUT /v1/txn`): all operations apply, or none.
    Txn {
        /// The proposer's wall-clock time.
        now_ms: u64,
        /// At most [`TXN_OPS_MAX`] operations.
        ops: Vec<KvOp>,
    },
    /// Creates a session (`PUT /v1/session/create`); the spec is already validated and has its ID.
    SessionCreate {
        /// The proposer's wall-clock time: the first deadline is `now_ms + 2 x TTL`.
        now_ms: u64,
        /// The new session.
        spec: SessionSpec,
    },
    /// Renews a session's TTL (`PUT /v1/session/renew/:id`).
    SessionRenew {
        /// The proposer's wall-clock time: the new deadline is `now_ms + 2 x TTL`.
        now_ms: u64,
        /// The session ID.
        id: String,
    },
    /// Destroys (or invalidates) a session: its locks are released or its keys deleted, per its behavior,
    /// and each such key gets a lock-delay of the session's `LockDelay` from `now_ms`.
    SessionDestroy {
        /// The proposer's wall-clock time.
        now_ms: u64,
        /// The session ID.
        id: String,
    },
    /// Registers a node, optionally a service instance on it, and checks (`PUT /v1/catalog/register`, the
    /// agent's anti-entropy). A check going critical invalidates the sessions bound to it.
    CatalogRegister {
        /// The proposer's wall-clock time, for the lock-delays of invalidated sessions.
        now_ms: u64,
        /// What to register (boxed: it is much larger than the other commands).
        request: Box<RegisterRequest>,
    },
    /// Deregisters (`PUT /v1/catalog/deregister`) one check, one service instance (and its checks), or, when
    /// neither is named, the whole node with its services, checks and sessions.
    CatalogDeregister {
        /// The proposer's wall-clock time, for the lock-delays of invalidated sessions.
        now_ms: u64,
        /// The node name.
        node: String,
        /// The service instance to remove.
        service_id: Option<String>,
        /// The check to remove.
        check_id: Option<String>,
    },
    /// Removes KV tombstones at or below `through_index` (the leader's tombstone reaper).
    TombstoneReap {
        /// The highest tombstone index to remove.
        through_index: Index,
    },
    /// Replaces the whole state with a snapshot (`PUT /v1/snapshot`). Applied at Raft index `r`, the restored
    /// state's own index becomes `max(r + offset, highest restored index + 1)`, so no index a client saw goes
    /// backwards, and every table index moves to it (blocking queries wake); the state keeps the difference
    /// as its index offset for every later command. Snapshot bytes that do not decode change nothing.
    Restore {
        /// The state machine snapshot bytes ([`snapshot::encode`]).
        #[serde(with = "codec::vec_bytes")]
        snapshot: Vec<u8>,
    },
    /// Stores the autopilot configuration (`PUT /v1/operator/autopilot/configuration`, or the leader seeding
    /// it from the config file). Answers `true`, or `false` when the check-and-set failed.
    AutopilotSet {
        /// The new configuration (its indexes are set by the apply).
        config: AutopilotConfig,
        /// Only if the stored configuration's `ModifyIndex` is this (0: only if none is stored).
        cas: Option<Index>,
    },
}

/// What applying a [`Command`] produced, returned to its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A KV write, session destroy or catalog write: `true` or `false` as Consul's JSON answer.
    Bool(bool),
    /// A transaction's results or its errors (then nothing was applied).
    Txn(TxnOutcome),
    /// A created session's ID.
    SessionCreated(String),
    /// A renewed session (`None` when it does not exist: HTTP 404).
    SessionRenewed(Option<Session>),
    /// Nothing to report (tombstone reap).
    Done,
    /// The command was refused: Consul's message (HTTP 500), e.g. `invalid session "<id>"`.
    Error(String),
}

/// Which tables a batch of commands changed, as bit flags.
pub mod table {
    /// The KV table (entries or tombstones).
    pub const KVS: u32 = 1;
    /// The sessions table.
    pub const SESSIONS: u32 = 1 << 1;
    /// The catalog's nodes table.
    pub const NODES: u32 = 1 << 2;
    /// The catalog's services table.
    pub const SERVICES: u32 = 1 << 3;
    /// The catalog's checks table.
    pub const CHECKS: u32 = 1 << 4;
}

/// What changed since the last [`Fsm::take_changes`]: what a shard needs to wake the right blocking queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The tables changed ([`table`] flags).
    pub tables: u32,
    /// The KV keys written, deleted, locked or unlocked (in order of first change, no duplicates), at most
    /// [`CHANGED_KEYS_MAX`]; `None` when more changed (every KV watcher must re-check).
    pub kv_keys: Option<Vec<String>>,
    /// The service names whose instances or checks changed (first change order, no duplicates), at most
    /// [`CHANGED_KEYS_MAX`]; `None` when more changed (every service watcher must re-check).
    pub service_names: Option<Vec<String>>,
    /// The nodes registered, changed or deregistered, or whose checks changed, capped the same way.
    pub node_names: Option<Vec<String>>,
}

/// The state machine as the Raft core owns it.
#[derive(Clone, Debug, Default)]
pub struct Fsm {
    state: State,
    changes: ChangeLog,
}

/// Accumulates [`Changes`] between [`Fsm::take_changes`] calls.
#[derive(Clone, Debug, Default)]
struct ChangeLog {
    tables: u32,
    keys: Vec<String>,
    seen: std::collections::BTreeSet<String>,
    overflow: bool,
    services: NameLog,
    nodes: NameLog,
}

/// Names changed, in first-change order without duplicates, up to [`CHANGED_KEYS_MAX`] (then "all").
#[derive(Clone, Debug, Default)]
struct NameLog {
    names: Vec<String>,
    seen: std::collections::BTreeSet<String>,
    overflow: bool,
}
