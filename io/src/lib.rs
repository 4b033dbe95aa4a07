//! cairn-io: the generic IO shell. It knows glommio and the kernel, nothing about Consul.
//!
//! - [`runtime`]: the executor topology (Raft core + shards), memlock preflight, CPU placement,
//!   signals and shutdown.
//! - [`net`]: the server-to-server transport: a CRC-checked frame codec and framed TCP
//!   listeners and peers.
//! - [`http`]: HTTP/1.1 server framing: an incremental request parser, a response writer and a
//!   keep-alive, pipelining server loop with limits and timeouts.
//! - [`dns_server`]: a DNS transport (UDP and TCP on one port, bounded) and a UDP exchange for upstream
//!   queries.
#![warn(missing_docs)]

pub mod dns_server;
pub mod http;
mod listen;
pub mod net;
pub mod runtime;
pub mod sockets;
#[doc(hidden)]
pub mod testing;
pub mod udp_batch;

pub use runtime::{
    ExecutorContext, ExecutorPlan, ExecutorRole, Placement, RunningTopology, RuntimeError,
    RuntimeEvent, Shutdown, ShutdownSignal, ShutdownSignals, Topology, TopologyOptions,
};
