//! cairn: a Consul-compatible service discovery, health checking and key/value system.
//!
//! See /work/shared/design/ARCHITECTURE.md for the map. Present so far:
//! - [`cli`]: command dispatch (`version`, `agent`), argv\[0\] `cairn` or `consul`
//! - [`config`]: agent flags (Go syntax) and JSON/HCL config files merged into an [`config::AgentConfig`]
//! - [`agent`]: starts the executor topology (from `cairn-io`) and runs until a signal; a `-server` agent runs
//!   the Raft driver (`agent::raft_driver`) on the Raft executor
//! - [`logging`], [`ui`]: Consul-shaped log lines and user output
//! - [`raft`]: the pure Raft core (`Node::step`)
//! - [`gossip`]: the pure SWIM + Lifeguard membership core and the memberlist/Serf wire codec (`Swim::step`)
//! - [`fsm`]: the pure replicated state machine (KV with tombstones and lock-delay, sessions, transactions)
//! - [`rpc`]: the pure server RPC wire format (Raft messages, snapshot chunks, forwarded writes)
//! - [`dns`]: the pure DNS interface (query names, lookups, truncation, EDNS) on simple-dns
//! - [`watch`]: watch plans, handlers (script, HTTP) and the blocking-query loop, shared by `cairn watch` and the
//!   agent configuration's `watches`
#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod dns;
pub mod fsm;
pub mod gossip;
pub mod logging;
pub mod raft;
pub mod rpc;
pub mod ui;
pub mod watch;
