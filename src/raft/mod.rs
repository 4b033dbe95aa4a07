//! Raft, hand-written and pure: no IO, no clock, no threads, no unseeded randomness (ARCHITECTURE.md rule 1).
//!
//! A [`Node`] is driven by `step(now_ms, input, &mut actions)`. Inputs are ticks, messages from peers, client
//! proposals and reads, membership changes, leader transfers, and the driver's reports (entries durable, a
//! snapshot taken). Actions name effects, and their order is the contract (rule 2): the driver makes every
//! persistence action durable before it releases a `Send` that follows it with `after_persist: true`; sends with
//! `after_persist: false` (the leader's appends, which may overlap its own disk write) wait only for hard-state
//! saves before them.
//!
//! What is implemented, by the paper's and dissertation's sections:
//! - §5.2 leader election with randomized timeouts from the seeded PRNG; §9.6 pre-vote; check-quorum (an
//!   isolated leader steps down) and leader stickiness (a server that heard from a leader within the minimum
//!   election timeout ignores vote requests);
//! - §5.3 log replication with fast conflict backtracking, pipelining in Replicate state with an in-flight limit,
//!   probing one append at a time otherwise;
//! - §5.4.2 the commit rule: only entries of the leader's current term commit by counting (a no-op opens each term);
//! - §7 snapshots: compaction keeps trailing entries; followers too far behind get InstallSnapshot (the driver
//!   moves the bytes in chunks and reports the snapshot installed);
//! - §4 single-server membership changes with the dissertation's safety rule (one uncommitted change at a time,
//!   only after the leader committed an entry of its term), non-voting members, configurations taking effect
//!   when appended;
//! - §3.10 leader transfer with TimeoutNow;
//! - §6.4 ReadIndex for linearizable reads, and a leader lease for default-mode reads.
//!
//! Lease and clock drift: the leader serves lease reads until `lease_ms` after the start of the newest heartbeat
//! round a quorum acknowledged. A follower that acknowledged it refuses votes for `election_timeout_ms` after
//! receiving it. So no other leader can be elected while the lease holds as long as the leader's clock runs no
//! slower than `lease_ms / election_timeout_ms` of any follower's (with Consul's defaults, 500 ms / 1 000 ms: a
//! clock drift of up to 2x is tolerated). Leader transfer gives the lease up first.

pub mod codec;
mod election;
pub mod log;
mod node;
pub mod progress;
mod replication;
mod requests;
pub mod rng;
pub mod types;

pub use node::{Action, Input, MembershipChange, Node, Options, RaftError, RestoreState, Role};
pub use types::{
    Bytes, Configuration, ConflictHint, Entry, HardState, Index, Message, Payload, Server,
    ServerId, Suffrage, Term,
};

#[cfg(test)]
mod tests;
