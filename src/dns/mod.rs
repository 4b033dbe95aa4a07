//! The DNS interface's meaning, pure: a query packet and the published state in, a response packet (or "ask
//! the recursors", or "drop it") out. No IO, no clock, no unseeded randomness: the SOA serial (the current Unix
//! time) and a seeded generator (for shuffling answers and picking name servers) are handed in.
//!
//! - [`query`]: where a name is (`domain`, `alt_domain`, a reverse zone, outside) and which lookup it asks for.
//! - [`records`]: the lookups on the catalog (health filtering, shuffling, TTLs, SOA, NS).
//! - [`wire`]: reading the query (header, question, EDNS) and writing the response with simple-dns, trimmed
//!   to the transport's size.
//!
//! The driver (`src/agent/dns.rs`) owns the sockets and the recursors.

pub mod cache;
pub mod config;
pub mod query;
pub mod records;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;

pub use cache::ServiceCache;
pub use config::{DnsConfig, RecursorStrategy, ServiceTtls, Soa};
pub use wire::Transport;

use crate::fsm::State;
use crate::raft::rng::Rng;
use query::Zone;
use records::Context;
use serde::{Deserialize, Serialize};
use wire::{rcode, QType, ReadError, Sections, Shape};

/// What to do with a packet. Serializable: a server hands it back to the client agent that relayed the
/// query (`agent::relay`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// The name is outside the domain and recursors are configured: forward the query to them (in
    /// [`recursor_order`]); answer [`servfail`] when none answers.
    Recurse,
    /// Send nothing (too short to answer, or a response rather than a query).
    Drop,
}

/// Answers `packet` from `state`. `serial` is the SOA serial (the current Unix time, truncated to 32 bits).
/// Each call reads the catalog afresh; a server answering many queries uses [`respond_cached`].
pub fn respond(
    config: &DnsConfig,
    state: &State,
    packet: &[u8],
    transport: Transport,
    serial: u32,
    rng: &mut Rng,
) -> Outcome {
    respond_cached(
        config,
        state,
        packet,
        transport,
        serial,
        rng,
        &mut ServiceCache::new(),
    )
}

/// As [`respond`], reading services' healthy instances through `cache` (one per shard, kept across
/// queries; it follows `state`'s catalog version by itself).
pub fn respond_cached(
    config: &DnsConfig,
    state: &State,
    packet: &[u8],
    transport: Transport,
    serial: u32,
    rng: &mut Rng,
    cache: &mut ServiceCache,
) -> Outcome {
    let Screened { query, shape, zone } = match screen(config, packet, transport) {
        Ok(screened) => screened,
        Err(outcome) => return outcome,
    };
    let reply = |sections: Sections| Outcome::Reply(wire::encode(&query, sections, shape));
    let answers_wanted = match (transport, query.edns_bytes) {
        // One more than fits, so the encoder sees that answers were left out (TC with enable_truncate).
        (Transport::Udp, None) => shape.udp_answers_max + 1,
        _ => usize::MAX,
    };
    let mut ctx = Context {
        config,
        state,
        serial,
        rng,
        answers_wanted,
        cache,
    };
    match zone {
        Zone::Domain { domain, lookup } => {
            let qname = query.name();
            reply(records::answer_domain(
                &mut ctx,
                &domain,
                &lookup,
                &qname,
                query.qtype,
            ))
        }
        Zone::Reverse(ip) => {
            let found = match (ip, query.qtype) {
                (Some(ip), QType::Ptr | QType::Any) => {
                    records::answer_reverse(&mut ctx, ip, &query.name())
                }
                _ => None,
            };
            match found {
                Some(sections) => reply(sections),
                None if config.recursion => Outcome::Recurse,
                None => {
                    let domain = config.domain.clone();
                    reply(records::nxdomain(&mut ctx, &domain))
                }
            }
        }
        // `screen` answers these; kept total rather than unreachable.
        Zone::Outside => reply(with_rcode(rcode::SERVFAIL)),
    }
}

/// The outcome for `packet` when it needs no catalog read (so an agent without the catalog, a client agent,
/// answers it itself): a packet to drop, FORMERR, NOTIMP (another opcode, a zone transfer), and a name outside
/// the domain (recursed, or SERVFAIL without recursors). `None` when the answer needs the catalog.
pub fn answer_without_state(
    config: &DnsConfig,
    packet: &[u8],
    transport: Transport,
) -> Option<Outcome> {
    screen(config, packet, transport).err()
}

/// A query read and placed, that needs the catalog to answer.
struct Screened {
    query: wire::Query,
    shape: Shape,
    zone: Zone,
}

/// Reads `packet` and answers what needs no catalog (see [`answer_without_state`]) as `Err`.
fn screen(config: &DnsConfig, packet: &[u8], transport: Transport) -> Result<Screened, Outcome> {
    let query = match wire::read_query(packet) {
        Ok(query) => query,
        Err(ReadError::Drop) => return Err(Outcome::Drop),
        Err(ReadError::FormErr { id, opcode }) => {
            return Err(Outcome::Reply(wire::header_only(
                id,
                opcode,
                rcode::FORMERR,
            )))
        }
    };
    let shape = Shape {
        transport,
        udp_answers_max: config
            .udp_answer_limit
            .clamp(1, config::UDP_ANSWER_LIMIT_MAX),
        enable_truncate: config.enable_truncate,
        recursion_available: config.recursion,
        compress: !config.disable_compression,
    };
    let refuse = |code: u8| {
        Err(Outcome::Reply(wire::encode(
            &query,
            with_rcode(code),
            shape,
        )))
    };
    if query.opcode != 0 {
        return refuse(rcode::NOTIMP);
    }
    let zone = query::classify(
        &query.lower_name(),
        &config.domain,
        config.alt_domain.as_deref(),
        query.qtype == QType::Srv,
    );
    match zone {
        Zone::Domain { .. } | Zone::Reverse(_) if query.qtype == QType::Transfer => {
            refuse(rcode::NOTIMP)
        }
        Zone::Outside if config.recursion => Err(Outcome::Recurse),
        Zone::Outside => refuse(rcode::SERVFAIL),
        zone => Ok(Screened { query, shape, zone }),
    }
}

/// Empty sections with `code`.
fn with_rcode(code: u8) -> Sections {
    Sections {
        rcode: code,
        ..Sections::default()
    }
}

/// The SERVFAIL answer to `packet` (for a recursion that got no answer); `None` for a packet that gets none.
pub fn servfail(packet: &[u8], transport: Transport, recursion_available: bool) -> Option<Vec<u8>> {
    let query = wire::read_query(packet).ok()?;
    let shape = Shape {
        transport,
        udp_answers_max: config::UDP_ANSWER_LIMIT_DEFAULT,
        enable_truncate: false,
        recursion_available,
        compress: true,
    };
    let sections = Sections {
        rcode: rcode::SERVFAIL,
        ..Sections::default()
    };
    Some(wire::encode(&query, sections, shape))
}

/// The order to try `count` recursors in: as configured, or shuffled per query.
pub fn recursor_order(strategy: RecursorStrategy, count: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if strategy == RecursorStrategy::Random {
        for i in (1..order.len()).rev() {
            let j = rng.range(0, i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// Whether a recursor's `reply` answers `query` (same ID, a response); anything else is ignored.
pub fn is_reply_to(query: &[u8], reply: &[u8]) -> bool {
    reply.len() >= wire::HEADER_BYTES
        && query.len() >= 2
        && reply[..2] == query[..2]
        && reply[2] & 0x80 != 0
}
