//! Watches: a view of the catalog, KV or events followed with blocking queries, and a handler run
//! on every change. Shared by `cairn watch` ([`crate::cli`]) and the `watches` of the agent
//! configuration ([`crate::agent::watches`]).
//!
//! - [`plan`]: the parameters of each watch type and the request they make;
//! - [`config`]: a watch definition of the agent configuration, checked as Consul checks it;
//! - [`handler`]: script and HTTP handlers;
//! - [`run`]: the blocking-query loop.
//!
//! This is blocking std code (threads, sockets, child processes), not a pure core.

pub mod config;
pub mod handler;
pub mod plan;
pub mod run;
