//! What the DNS interface is configured with (`domain`, `alt_domain`, `recursors`, `dns_config`), as plain data
//! with Consul's defaults. The config layer builds it; the pure core and the driver read it. A client agent
//! sends its own with every query it relays to a server (`agent::relay`), so it is serializable.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Consul's `dns_config.udp_answer_limit` default: answers in a UDP response without EDNS.
pub const UDP_ANSWER_LIMIT_DEFAULT: usize = 3;
/// The hard cap on answers in a UDP response without EDNS, whatever `udp_answer_limit` says.
pub const UDP_ANSWER_LIMIT_MAX: usize = 8;
/// The size of a UDP response without EDNS (RFC 1035).
pub const UDP_BYTES_DEFAULT: usize = 512;
/// The largest EDNS buffer size honoured (a UDP datagram's payload over IPv4 less headers).
pub const EDNS_BYTES_MAX: usize = 65_467;
/// The largest TCP response (the two-byte length prefix caps a message at 65 535 bytes).
pub const TCP_BYTES_MAX: usize = 65_535;
/// Consul's `dns_config.recursor_timeout` default.
pub const RECURSOR_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Consul's `dns_config.max_stale` default (87 600 h).
pub const MAX_STALE_MS_DEFAULT: u64 = 87_600 * 3_600 * 1_000;

/// The SOA record's fields (`dns_config.soa`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soa {
    /// `refresh` (3600).
    pub refresh_s: u32,
    /// `retry` (600).
    pub retry_s: u32,
    /// `expire` (86400).
    pub expire_s: u32,
    /// `min_ttl` (0): the SOA's minimum, its own TTL and the negative-cache TTL.
    pub min_ttl_s: u32,
}

impl Default for Soa {
    fn default() -> Soa {
        Soa {
            refresh_s: 3_600,
            retry_s: 600,
            expire_s: 86_400,
            min_ttl_s: 0,
        }
    }
}

/// How the recursors are tried (`dns_config.recursor_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecursorStrategy {
    /// In the configured order (Consul's default).
    #[default]
    Sequential,
    /// In a random order per query.
    Random,
}

/// `dns_config.service_ttl`: TTLs by service name, exact names or `prefix*` patterns (the longest prefix wins;
/// `*` alone is the fallback).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTtls {
    /// Exact names (lower-cased) and their TTLs.
    pub exact: BTreeMap<String, u32>,
    /// Prefixes (lower-cased, without the `*`) and their TTLs; `""` is the `*` fallback.
    pub prefixes: BTreeMap<String, u32>,
}

impl ServiceTtls {
    /// Adds one `service_ttl` entry: `name` or `prefix*`.
    pub fn insert(&mut self, pattern: &str, ttl_s: u32) {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_suffix('*') {
            Some(prefix) => self.prefixes.insert(prefix.to_string(), ttl_s),
            None => self.exact.insert(pattern, ttl_s),
        };
    }

    /// The TTL for service `name` (lower-cased), or `None` when no entry applies (TTL 0).
    pub fn lookup(&self, name: &str) -> Option<u32> {
        if let Some(ttl) = self.exact.get(name) {
            return Some(*ttl);
        }
        self.prefixes
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, ttl)| *ttl)
    }
}

/// The DNS interface's settings (Consul's `domain`, `alt_domain`, `recursors` and `dns_config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `domain`, lower-cased, with its trailing dot (`consul.`).
    pub domain: String,
    /// `alt_domain`, lower-cased, with its trailing dot; `None` when unset.
    pub alt_domain: Option<String>,
    /// This agent's datacenter (answers for other datacenters are NXDOMAIN until federation exists).
    pub datacenter: String,
    /// Whether recursors are configured (sets RA; names outside the domain are recursed, not SERVFAIL).
    pub recursion: bool,
    /// `dns_config.allow_stale` (true): any server answers from its own state.
    pub allow_stale: bool,
    /// `dns_config.max_stale`: with `allow_stale`, a state older than this (since leader contact) is re-read
    /// through the leader.
    pub max_stale_ms: u64,
    /// `dns_config.node_ttl` (0): node, addr and NS records.
    pub node_ttl_s: u32,
    /// `dns_config.service_ttl`.
    pub service_ttl: ServiceTtls,
    /// `dns_config.only_passing` (false): drop warning instances too.
    pub only_passing: bool,
    /// `dns_config.enable_truncate` (false): set TC when answers were trimmed.
    pub enable_truncate: bool,
    /// `dns_config.udp_answer_limit` (3): answers in a UDP response without EDNS (at most 8).
    pub udp_answer_limit: usize,
    /// `dns_config.a_record_limit` (0 = unlimited): caps A/AAAA answers (not SRV).
    pub a_record_limit: usize,
    /// `dns_config.enable_additional_node_meta_txt` (true): node meta TXT in SRV answers' additional section.
    pub node_meta_txt: bool,
    /// `dns_config.disable_compression` (false).
    pub disable_compression: bool,
    /// `dns_config.soa`.
    pub soa: Soa,
    /// `dns_config.recursor_timeout` (2 s).
    pub recursor_timeout_ms: u64,
    /// `dns_config.recursor_strategy` (sequential).
    pub recursor_strategy: RecursorStrategy,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            domain: "consul.".to_string(),
            alt_domain: None,
            datacenter: "dc1".to_string(),
            recursion: false,
            allow_stale: true,
            max_stale_ms: MAX_STALE_MS_DEFAULT,
            node_ttl_s: 0,
            service_ttl: ServiceTtls::default(),
            only_passing: false,
            enable_truncate: false,
            udp_answer_limit: UDP_ANSWER_LIMIT_DEFAULT,
            a_record_limit: 0,
            node_meta_txt: true,
            disable_compression: false,
            soa: Soa::default(),
            recursor_timeout_ms: RECURSOR_TIMEOUT_MS_DEFAULT,
            recursor_strategy: RecursorStrategy::Sequential,
        }
    }
}
