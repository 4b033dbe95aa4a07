//! HTTP API meaning, pure (ARCHITECTURE.md rule 1): Consul's `/v1` routes, parameters, JSON shapes and headers.
//! So far the parsing every route shares: Go durations and query parameters.

pub mod duration;
pub mod query;
