//! Timing profiles and limits (memberlist config.go DefaultLANConfig, DefaultWANConfig, DefaultLocalConfig; serf
//! config.go). Names follow memberlist's, in snake case with units last.

use std::collections::BTreeMap;

/// An advertised address: IPv4 (4 bytes) or IPv6 (16 bytes) and a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Addr {
    /// The IP, 4 or 16 bytes, as on the wire.
    pub ip: Vec<u8>,
    /// The port.
    pub port: u16,
}

impl Addr {
    /// An IPv4 address.
    pub fn v4(ip: [u8; 4], port: u16) -> Addr {
        Addr {
            ip: ip.to_vec(),
            port,
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ip.len() == 4 {
            write!(
                f,
                "{}.{}.{}.{}:{}",
                self.ip[0], self.ip[1], self.ip[2], self.ip[3], self.port
            )
        } else {
            write!(f, "[")?;
            for (i, pair) in self.ip.chunks(2).enumerate() {
                if i > 0 {
                    write!(f, ":")?;
                }
                let word = pair.iter().fold(0u16, |a, b| (a << 8) | *b as u16);
                write!(f, "{word:x}")?;
            }
            write!(f, "]:{}", self.port)
        }
    }
}

/// Everything a [`super::Swim`] needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name, unique in the pool.
    pub name: String,
    /// The address peers reach this node at (UDP and TCP on the same port).
    pub addr: Addr,
    /// Serf tags, sent in node Meta.
    pub tags: BTreeMap<String, String>,
    /// pmin, pmax, pcur, dmin, dmax, dcur (Consul: 1 5 2 2 5 4).
    pub vsn: [u8; 6],
    /// Probe one node this often.
    pub probe_interval_ms: u64,
    /// Direct ack wait before indirect probes.
    pub probe_timeout_ms: u64,
    /// Gossip broadcasts this often.
    pub gossip_interval_ms: u64,
    /// Nodes gossiped to per round.
    pub gossip_nodes: usize,
    /// Suspicion timeout multiplier.
    pub suspicion_mult: u64,
    /// Maximum suspicion timeout as a multiple of the minimum.
    pub suspicion_max_timeout_mult: u64,
    /// Broadcast retransmits = retransmit_mult × ceil(log10(n + 1)).
    pub retransmit_mult: u64,
    /// Peers asked to probe indirectly.
    pub indirect_checks: usize,
    /// Full state sync with one random node this often (0 disables).
    pub push_pull_interval_ms: u64,
    /// Dead nodes still receive gossip (and stay in the table) this long.
    pub gossip_to_the_dead_time_ms: u64,
    /// A dead node's name may be taken by another address after this long (0: never).
    pub dead_node_reclaim_time_ms: u64,
    /// Send memberlist's TCP fallback ping alongside indirect probes (memberlist: !DisableTcpPings).
    pub tcp_pings: bool,
    /// Lifeguard health multiplier ceiling.
    pub awareness_max_multiplier: u32,
    /// Bytes of a UDP packet filled with piggybacked broadcasts.
    pub udp_buffer_bytes: usize,
    /// Compress UDP packets when shorter and TCP streams always (memberlist's EnableCompression).
    pub enable_compression: bool,
    /// Drop undecryptable packets when keyed (GossipVerifyIncoming).
    pub gossip_verify_incoming: bool,
    /// Members kept at most (the table refuses more).
    pub members_max: usize,
    /// Broadcasts queued per queue at most; the most-sent are dropped first.
    pub broadcast_queue_max: usize,
    /// Try to rejoin a random failed member this often (serf ReconnectInterval).
    pub reconnect_interval_ms: u64,
    /// Failed members are reaped after this long (serf ReconnectTimeout).
    pub reconnect_timeout_ms: u64,
    /// Left members are reaped after this long (serf TombstoneTimeout).
    pub tombstone_timeout_ms: u64,
    /// Intents for unknown members are kept this long (serf RecentIntentTimeout).
    pub recent_intent_timeout_ms: u64,
    /// Largest user event (name + payload), serf UserEventSizeLimit.
    pub user_event_bytes_max: usize,
}

impl Config {
    /// memberlist's DefaultLANConfig with serf's defaults.
    pub fn lan(name: impl Into<String>, addr: Addr) -> Config {
        Config {
            name: name.into(),
            addr,
            tags: BTreeMap::new(),
            vsn: [1, 5, 2, 2, 5, 4],
            probe_interval_ms: 1_000,
            probe_timeout_ms: 500,
            gossip_interval_ms: 200,
            gossip_nodes: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            retransmit_mult: 4,
            indirect_checks: 3,
            push_pull_interval_ms: 30_000,
            gossip_to_the_dead_time_ms: 30_000,
            dead_node_reclaim_time_ms: 0,
            tcp_pings: true,
            awareness_max_multiplier: 8,
            udp_buffer_bytes: 1_400,
            enable_compression: false,
            gossip_verify_incoming: true,
            members_max: 100_000,
            broadcast_queue_max: 4_096,
            reconnect_interval_ms: 30_000,
            reconnect_timeout_ms: 24 * 3_600_000,
            tombstone_timeout_ms: 24 * 3_600_000,
            recent_intent_timeout_ms: 5 * 60_000,
            user_event_bytes_max: 512,
        }
    }

    /// memberlist's DefaultWANConfig.
    pub fn wan(name: impl Into<String>, addr: Addr) -> Config {
        Config {
            probe_interval_ms: 5_000,
            probe_timeout_ms: 3_000,
            gossip_interval_ms: 500,
            gossip_nodes: 4,
            suspicion_mult: 6,
            push_pull_interval_ms: 60_000,
            gossip_to_the_dead_time_ms: 60_000,
            ..Config::lan(name, addr)
        }
    }

    /// memberlist's DefaultLocalConfig.
    pub fn local(name: impl Into<String>, addr: Addr) -> Config {
        Config {
            probe_interval_ms: 1_000,
            probe_timeout_ms: 200,
            gossip_interval_ms: 100,
            suspicion_mult: 3,
            retransmit_mult: 2,
            indirect_checks: 1,
            push_pull_interval_ms: 15_000,
            gossip_to_the_dead_time_ms: 15_000,
            ..Config::lan(name, addr)
        }
    }
}

/// memberlist's retransmit limit: `mult × ceil(log10(n + 1))`.
pub fn retransmit_limit(retransmit_mult: u64, n: usize) -> u64 {
    let scale = ((n as f64) + 1.0).log10().ceil() as u64;
    retransmit_mult * scale
}

/// memberlist's suspicionTimeout: `mult × max(1, log10(max(1, n))) × interval`, kept to the millisecond.
pub fn suspicion_timeout_ms(suspicion_mult: u64, n: usize, probe_interval_ms: u64) -> u64 {
    let node_scale = (n.max(1) as f64).log10().max(1.0);
    suspicion_mult * ((node_scale * 1000.0) as u64) * probe_interval_ms / 1000
}

/// memberlist's push/pull interval scaling above 32 nodes: `interval × (ceil(log2 n − 5) + 1)`.
pub fn push_pull_scale_ms(interval_ms: u64, n: usize) -> u64 {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval_ms;
    }
    let mult = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() as u64 + 1;
    interval_ms * mult
}
