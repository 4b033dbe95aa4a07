//! The deterministic cluster simulator (ARCHITECTURE.md, "Testing layers"): Raft servers over a virtual clock
//! and network, with storage on the `MemDisk` crash model, faults chosen by one seed, invariants checked after
//! every event, and the client history checked for linearizability.
#![allow(dead_code)]

pub mod cluster;
pub mod kv;
pub mod linearizability;
