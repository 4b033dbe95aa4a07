//! The DNS front end of one shard: the `cairn-io` DNS transport (UDP and TCP on the DNS port, shared by every
//! shard through `SO_REUSEPORT`) around the pure `crate::dns` core, reading the state the Raft core publishes.
//!
//! - Reads are stale by default (`dns_config.allow_stale`): the published state answers at once. With
//!   `allow_stale = false`, or when this server has not heard from a leader for longer than `max_stale`, the
//!   shard first gets a read index (the leader's) and waits to apply it, as a default-mode HTTP read does;
//!   SERVFAIL when that fails.
//! - Names outside the domain go to the recursors (`recursors`, `dns_config.recursor_strategy`), each given
//!   `recursor_timeout`; the first answer is relayed as is, SERVFAIL when none answers.

use super::bridge::Published;
use super::http::APPLY_WAIT_MS_MAX;
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

/// One shard's DNS interface.
pub struct DnsFrontEnd {
    link: Rc<ShardLink>,
    config: Arc<DnsConfig>,
    recursors: Arc<Vec<SocketAddr>>,
    rng: RefCell<Rng>,
    /// Healthy instances of the services asked for, per catalog version (bounded, see `dns::cache`).
    cache: RefCell<ServiceCache>,
}

impl DnsFrontEnd {
    /// A front end answering from `link`'s published state; `shard` varies the shuffling seed.
    pub fn new(
        link: Rc<ShardLink>,
        config: Arc<DnsConfig>,
        recursors: Arc<Vec<SocketAddr>>,
        shard: usize,
    ) -> Rc<DnsFrontEnd> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rc::new(DnsFrontEnd {
            link,
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
        // One read of the published state per query (it is shared by every shard: each read touches the
        // lock and the reference count other shards touch too).
        let published = self.link.shared().published();
        if self.needs_leader_read(&published) {
            let front = Rc::clone(self);
            let packet = packet.to_vec();
            return Handled::Later(Box::pin(async move {
                if !front.catch_up().await {
                    return dns::servfail(&packet, transport, front.config.recursion);
                }
                let published = front.link.shared().published();
                match front.answer(&published, &packet, transport) {
                    Handled::Reply(reply) => Some(reply),
                    Handled::Drop => None,
                    Handled::Later(later) => later.await,
                }
            }));
        }
        self.answer(&published, packet, transport)
    }

    /// Whether the published state may not answer as is: `allow_stale` off, or no leader contact for longer
    /// than `max_stale`.
    fn needs_leader_read(&self, published: &Published) -> bool {
        let shared = self.link.shared();
        let cluster = &published.cluster;
        if cluster.is_leader() && shared.lease_valid() {
            return false;
        }
        if !self.config.allow_stale {
            return true;
        }
        match shared.last_contact_age_ms() {
            Some(age_ms) => !cluster.is_leader() && age_ms > self.config.max_stale_ms,
            None => false,
        }
    }

    /// Gets the leader's read index and waits for this server to apply it.
    async fn catch_up(&self) -> bool {
        match self.link.read_index(Consistency::Default).await {
            Ok(index) => self.link.wait_applied(index, APPLY_WAIT_MS_MAX).await,
            Err(_) => false,
        }
    }

    fn answer(
        self: &Rc<Self>,
        published: &Published,
        packet: &[u8],
        transport: Transport,
    ) -> Handled {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        let outcome = dns::respond_cached(
            &self.config,
            &published.state,
            packet,
            transport,
            serial,
            &mut self.rng.borrow_mut(),
            &mut self.cache.borrow_mut(),
        );
        match outcome {
            Outcome::Reply(reply) => Handled::Reply(reply),
            Outcome::Drop => Handled::Drop,
            Outcome::Recurse => {
                let front = Rc::clone(self);
                let packet = packet.to_vec();
                Handled::Later(Box::pin(
                    async move { front.recurse(&packet, transport).await },
                ))
            }
        }
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
