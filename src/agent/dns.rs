//! The DNS front end of one shard: the `cairn-io` DNS transport (UDP and TCP on the DNS port, shared by every
//! shard through `SO_REUSEPORT`) around the pure `crate::dns` core. A server's shard reads the state the Raft
//! core publishes; a client agent's shard has no state and asks a server (see below).
//!
//! - Reads are stale by default (`dns_config.allow_stale`): the published state answers at once. With
//!   `allow_stale = false`, or when this server has not heard from a leader for longer than `max_stale`, the
//!   shard first gets a read index (the leader's) and waits to apply it, as a default-mode HTTP read does;
//!   SERVFAIL when that fails.
//! - Names outside the domain go to the recursors (`recursors`, `dns_config.recursor_strategy`), each given
//!   `recursor_timeout`; the first answer is relayed as is, SERVFAIL when none answers.
//! - A client agent answers what needs no catalog itself (drop, FORMERR, NOTIMP, names outside the domain,
//!   which it recurses with its own recursors), and relays the rest with its own DNS settings
//!   (`RelayCall::Dns` over its [`RemoteLink`], failing over between servers). The server's shard answers it
//!   with those settings, `allow_stale`/`max_stale` included, exactly as above; `Recurse` comes back to the
//!   client's recursors; no answer within [`DNS_RELAY_TIMEOUT_MS`], or a failure, is SERVFAIL.

use super::bridge::Published;
use super::http::APPLY_WAIT_MS_MAX;
use super::relay::{RelayAnswer, RelayCall, DNS_PACKET_BYTES_MAX};
use super::remote::RemoteLink;
use super::shard::ShardLink;
use crate::dns::{self, DnsConfig, Outcome, ServiceCache, Transport};
use crate::raft::rng::Rng;
use crate::rpc::Consistency;
use cairn_io::dns_server::{
    exchange_udp, DnsServer, DnsServerError, DnsServerOptions, DnsTransport, Handled,
};
use cairn_io::Shutdown;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a client agent waits for a server's answer to a relayed query (then SERVFAIL).
pub const DNS_RELAY_TIMEOUT_MS: u64 = 5_000;

/// Where a shard's DNS answers come from.
pub enum DnsSource {
    /// A server's shard: the state the Raft core publishes.
    Local(Rc<ShardLink>),
    /// A client agent's shard: the servers, over the server RPC.
    Remote(Rc<RemoteLink>),
}

/// One shard's DNS interface.
pub struct DnsFrontEnd {
    source: DnsSource,
    config: Arc<DnsConfig>,
    recursors: Arc<Vec<SocketAddr>>,
    rng: RefCell<Rng>,
    /// Healthy instances of the services asked for, per catalog version (bounded, see `dns::cache`).
    cache: RefCell<ServiceCache>,
}

impl DnsFrontEnd {
    /// A front end answering from `source`; `shard` varies the shuffling seed.
    pub fn new(
        source: DnsSource,
        config: Arc<DnsConfig>,
        recursors: Arc<Vec<SocketAddr>>,
        shard: usize,
    ) -> Rc<DnsFrontEnd> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rc::new(DnsFrontEnd {
            source,
            config,
            recursors,
            rng: RefCell::new(Rng::new(nanos ^ ((shard as u64) << 48))),
            cache: RefCell::new(ServiceCache::new()),
        })
    }

    /// Binds UDP and TCP on `addr` and serves until `shutdown`.
    pub fn serve(
        self: &Rc<Self>,
        addr: SocketAddr,
        shutdown: &Shutdown,
    ) -> Result<DnsServer, DnsServerError> {
        let options = DnsServerOptions {
            reuse_port: true,
            ..DnsServerOptions::default()
        };
        let front = Rc::clone(self);
        DnsServer::bind(addr, options, shutdown, move |packet, transport, _peer| {
            front.handle(packet, transport)
        })
    }

    fn handle(self: &Rc<Self>, packet: &[u8], transport: DnsTransport) -> Handled {
        let transport = match transport {
            DnsTransport::Udp => Transport::Udp,
            DnsTransport::Tcp => Transport::Tcp,
        };
        match &self.source {
            DnsSource::Local(link) => self.handle_local(link, packet, transport),
            DnsSource::Remote(remote) => self.handle_remote(remote, packet, transport),
        }
    }

    /// Answers from the published state (a server's shard).
    fn handle_local(
        self: &Rc<Self>,
        link: &Rc<ShardLink>,
        packet: &[u8],
        transport: Transport,
    ) -> Handled {
        // One read of the published state per query (it is shared by every shard: each read touches the
        // lock and the reference count other shards touch too).
        let published = link.shared().published();
        if needs_leader_read(link, &self.config, &published) {
            let front = Rc::clone(self);
            let link = Rc::clone(link);
            let packet = packet.to_vec();
            return Handled::Later(Box::pin(async move {
                if !catch_up(&link).await {
                    return dns::servfail(&packet, transport, front.config.recursion);
                }
                let published = link.shared().published();
                let outcome = front.respond(&front.config, &published, &packet, transport);
                front.finish(outcome, &packet, transport).await
            }));
        }
        match self.respond(&self.config, &published, packet, transport) {
            Outcome::Reply(reply) => Handled::Reply(reply),
            Outcome::Drop => Handled::Drop,
            Outcome::Recurse => self.recurse_later(packet, transport),
        }
    }

    /// Answers what needs no catalog here and relays the rest to a server (a client agent's shard).
    fn handle_remote(
        self: &Rc<Self>,
        remote: &Rc<RemoteLink>,
        packet: &[u8],
        transport: Transport,
    ) -> Handled {
        match dns::answer_without_state(&self.config, packet, transport) {
            Some(Outcome::Reply(reply)) => Handled::Reply(reply),
            Some(Outcome::Drop) => Handled::Drop,
            Some(Outcome::Recurse) => self.recurse_later(packet, transport),
            None => {
                let front = Rc::clone(self);
                let remote = Rc::clone(remote);
                let packet = packet.to_vec();
                Handled::Later(Box::pin(async move {
                    let outcome = front.relay(&remote, &packet, transport).await;
                    front.finish(outcome, &packet, transport).await
                }))
            }
        }
    }

    /// Asks a server to answer `packet` with this agent's settings; SERVFAIL on any failure.
    async fn relay(&self, remote: &RemoteLink, packet: &[u8], transport: Transport) -> Outcome {
        let servfail = || match dns::servfail(packet, transport, self.config.recursion) {
            Some(reply) => Outcome::Reply(reply),
            None => Outcome::Drop,
        };
        if packet.len() > DNS_PACKET_BYTES_MAX {
            return servfail();
        }
        let call = RelayCall::Dns {
            packet: packet.to_vec(),
            transport,
            config: (*self.config).clone(),
        };
        match remote.call(&call, "", DNS_RELAY_TIMEOUT_MS).await {
            RelayAnswer::Dns(Outcome::Reply(reply)) if is_answer_to(packet, &reply) => {
                Outcome::Reply(reply)
            }
            RelayAnswer::Dns(Outcome::Reply(_)) => servfail(),
            RelayAnswer::Dns(outcome) => outcome,
            _ => servfail(),
        }
    }

    /// Answers a query a client agent relayed, with that client's settings (a server's shard): from the
    /// published state, through the leader first when `config` asks for it. `Err` names why it could not.
    pub async fn answer_relayed(
        &self,
        config: &DnsConfig,
        packet: &[u8],
        transport: Transport,
    ) -> Result<Outcome, String> {
        let DnsSource::Local(link) = &self.source else {
            return Err("a client agent answers no relayed DNS queries".to_string());
        };
        let mut published = link.shared().published();
        if needs_leader_read(link, config, &published) {
            if !catch_up(link).await {
                return Err("could not read the state through the leader".to_string());
            }
            published = link.shared().published();
        }
        Ok(self.respond(config, &published, packet, transport))
    }

    /// Answers `packet` from `published` with `config`.
    fn respond(
        &self,
        config: &DnsConfig,
        published: &Published,
        packet: &[u8],
        transport: Transport,
    ) -> Outcome {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        dns::respond_cached(
            config,
            &published.state,
            packet,
            transport,
            serial,
            &mut self.rng.borrow_mut(),
            &mut self.cache.borrow_mut(),
        )
    }

    /// What an outcome sends back, once any recursion is done.
    async fn finish(
        &self,
        outcome: Outcome,
        packet: &[u8],
        transport: Transport,
    ) -> Option<Vec<u8>> {
        match outcome {
            Outcome::Reply(reply) => Some(reply),
            Outcome::Drop => None,
            Outcome::Recurse => self.recurse(packet, transport).await,
        }
    }

    fn recurse_later(self: &Rc<Self>, packet: &[u8], transport: Transport) -> Handled {
        let front = Rc::clone(self);
        let packet = packet.to_vec();
        Handled::Later(Box::pin(
            async move { front.recurse(&packet, transport).await },
        ))
    }

    /// Asks the recursors in the configured order; SERVFAIL when none answers.
    async fn recurse(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let order = dns::recursor_order(
            self.config.recursor_strategy,
            self.recursors.len(),
            &mut self.rng.borrow_mut(),
        );
        for i in order {
            let Some(server) = self.recursors.get(i) else {
                continue;
            };
            let accept = |reply: &[u8]| dns::is_reply_to(packet, reply);
            if let Ok(reply) =
                exchange_udp(*server, packet, self.config.recursor_timeout_ms, accept).await
            {
                return Some(reply);
            }
        }
        dns::servfail(packet, transport, true)
    }
}

/// Whether the published state may not answer as is under `config`: `allow_stale` off, or no leader contact
/// for longer than `max_stale`.
fn needs_leader_read(link: &ShardLink, config: &DnsConfig, published: &Published) -> bool {
    let shared = link.shared();
    let cluster = &published.cluster;
    if cluster.is_leader() && shared.lease_valid() {
        return false;
    }
    if !config.allow_stale {
        return true;
    }
    match shared.last_contact_age_ms() {
        Some(age_ms) => !cluster.is_leader() && age_ms > config.max_stale_ms,
        None => false,
    }
}

/// Gets the leader's read index and waits for this server to apply it.
async fn catch_up(link: &Rc<ShardLink>) -> bool {
    match link.read_index(Consistency::Default).await {
        Ok(index) => link.wait_applied(index, APPLY_WAIT_MS_MAX).await,
        Err(_) => false,
    }
}

/// Whether a server's `reply` can go back for `query`: it answers it and fits a DNS message.
fn is_answer_to(query: &[u8], reply: &[u8]) -> bool {
    reply.len() <= DNS_PACKET_BYTES_MAX && dns::is_reply_to(query, reply)
}
