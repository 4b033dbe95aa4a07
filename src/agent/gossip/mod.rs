//! The gossip driver: runs the pure SWIM/Serf core ([`crate::gossip::Swim`]) of each pool this agent is in
//! (the LAN pool always, the WAN pool on a server) on shard 0, over a UDP socket and a TCP listener on the
//! pool's port (8301 LAN, 8302 WAN).
//!
//! One task owns each pool's `Swim` ([`owner`]); it is the only writer of the pool's [`Membership`] (published
//! after every change, read by the HTTP shards, the Raft executor and a client agent's server list) and of the
//! pool's user event buffer. Other executors hand it requests (join, force-leave, fire an event, leave) through
//! the pool's [`PoolHub`] mailbox and wait for the answer on a [`Ticket`]; requests are rare operator actions,
//! so the owner looks at the mailbox every [`MAILBOX_POLL_MS`].
//!
//! Consul's tags ([`tags`]) say what each member is; user events in Consul's format ([`events`]) are kept for
//! `/v1/event/list`.

pub mod events;
pub mod http;
pub mod owner;
pub mod receiver;
pub mod tags;

use super::membership::Membership;
use crate::gossip::Keyring;
use events::EventBuffer;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a pool's owner looks at its request mailbox.
pub const MAILBOX_POLL_MS: u64 = 20;
/// Requests waiting in a mailbox at most (more are refused).
pub const MAILBOX_REQUESTS_MAX: usize = 256;
/// How long a request waits for the owner's answer.
pub const REQUEST_TIMEOUT_MS: u64 = 15_000;

/// Which pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The datacenter's pool: every agent.
    Lan,
    /// The servers of every datacenter.
    Wan,
}

impl Pool {
    /// The log component Consul uses for it.
    pub fn log_name(self, server: bool) -> &'static str {
        match (self, server) {
            (Pool::Lan, true) => "agent.server.serf.lan",
            (Pool::Lan, false) => "agent.client.serf.lan",
            (Pool::Wan, _) => "agent.server.serf.wan",
        }
    }
}

/// What the owner of one pool needs (built on the main thread from the configuration).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Which pool.
    pub pool: Pool,
    /// This member's name (`<node>` on the LAN, `<node>.<dc>` on the WAN).
    pub name: String,
    /// The address the sockets bind.
    pub bind: SocketAddr,
    /// The address other members reach this one at.
    pub advertise: SocketAddr,
    /// This member's Serf tags.
    pub tags: BTreeMap<String, String>,
    /// Addresses to join at start (`retry_join` / `retry_join_wan`), retried until one answers.
    pub join: Vec<SocketAddr>,
    /// Wait between join attempts (`retry_interval`).
    pub retry_interval_ms: u64,
    /// Join attempts at most, 0 for no limit (`retry_max`).
    pub retry_max: u32,
    /// The gossip key (`encrypt`), raw bytes.
    pub encrypt: Option<Vec<u8>>,
    /// Leave the pool when the agent stops.
    pub leave_on_shutdown: bool,
    /// A server agent (for the log component).
    pub server: bool,
    /// Where the keyring is kept (`<data_dir>/serf/local.keyring` for the LAN pool, `remote.keyring` for the WAN
    /// one); `None` in `-dev` or with `disable_keyring_file`.
    pub keyring_file: Option<std::path::PathBuf>,
}

impl PoolSettings {
    /// The keyring: the one kept in the keyring file when there is one (it wins over `encrypt`, as in Consul),
    /// else one holding `encrypt`, else none.
    pub fn keyring(&self) -> Result<Option<Keyring>, String> {
        if let Some(keys) = self
            .keyring_file
            .as_deref()
            .and_then(read_keyring_file)
            .transpose()?
        {
            let mut keys = keys.into_iter();
            let Some(primary) = keys.next() else {
                return Ok(None);
            };
            let mut ring = Keyring::new(primary).map_err(|e| format!("keyring file: {e}"))?;
            for key in keys {
                ring.install(key)
                    .map_err(|e| format!("keyring file: {e}"))?;
            }
            return Ok(Some(ring));
        }
        self.encrypt
            .clone()
            .map(|key| Keyring::new(key).map_err(|e| format!("encrypt: {e}")))
            .transpose()
    }
}

/// The keys of a keyring file (a JSON array of base64 keys, primary first); `None` when there is no file.
pub fn read_keyring_file(path: &std::path::Path) -> Option<Result<Vec<Vec<u8>>, String>> {
    use base64::Engine;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
    };
    let parsed = serde_json::from_str::<Vec<String>>(&text)
        .map_err(|e| format!("{}: not a JSON list of keys: {e}", path.display()))
        .and_then(|keys| {
            keys.iter()
                .map(|k| {
                    base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .map_err(|e| format!("{}: bad key {k:?}: {e}", path.display()))
                })
                .collect()
        });
    Some(parsed)
}

/// Writes `keys` to the keyring file (a temporary file, fsynced, then renamed over it).
pub fn write_keyring_file(path: &std::path::Path, keys: &[Vec<u8>]) -> Result<(), String> {
    use base64::Engine;
    use std::io::Write;
    let encoded: Vec<String> = keys
        .iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k))
        .collect();
    let text = serde_json::to_string(&encoded).map_err(|e| e.to_string())?;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("keyring.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// What an executor asks a pool's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipRequest {
    /// Join through these addresses (`/v1/agent/join`).
    Join(Vec<SocketAddr>),
    /// Force a failed member out (`/v1/agent/force-leave`).
    ForceLeave {
        /// Its name.
        node: String,
        /// Erase it at once.
        prune: bool,
    },
    /// Fire a Serf user event (`/v1/event/fire`): the name on the wire and the payload.
    UserEvent {
        /// The Serf event name.
        name: String,
        /// The payload.
        payload: Vec<u8>,
    },
    /// List this member's gossip keys.
    ListKeys,
    /// A keyring operation on every member of the pool (a serf key query).
    Keyring(crate::gossip::key_query::KeyOp),
}

/// What the members answered to a keyring query (serf's KeyResponse).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyringSummary {
    /// Members in the pool when the query ended (not dead).
    pub num_nodes: usize,
    /// Members that answered.
    pub num_resp: usize,
    /// Members that answered with a failure.
    pub num_err: usize,
    /// Failure messages by member.
    pub messages: BTreeMap<String, String>,
    /// How many members hold each key.
    pub keys: BTreeMap<String, usize>,
    /// How many members use each key as their primary.
    pub primary_keys: BTreeMap<String, usize>,
}

/// The owner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipReply {
    /// Done; for a join, how many addresses answered.
    Done(usize),
    /// The keys (base64), primary first.
    Keys(Vec<String>),
    /// The members' answers to a keyring query.
    Keyring(KeyringSummary),
    /// Refused or failed, with the reason.
    Failed(String),
}

/// Where the answer to one request lands.
#[derive(Clone, Debug, Default)]
pub struct Ticket(Arc<Mutex<Option<GossipReply>>>);

impl Ticket {
    /// Records the answer (the owner).
    pub fn answer(&self, reply: GossipReply) {
        *self.0.lock() = Some(reply);
    }

    /// Waits for the answer, looking every [`MAILBOX_POLL_MS`], up to `timeout_ms`.
    pub async fn wait(&self, timeout_ms: u64) -> GossipReply {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if let Some(reply) = self.0.lock().take() {
                return reply;
            }
            if Instant::now() >= deadline {
                return GossipReply::Failed("timed out waiting for the gossip layer".into());
            }
            glommio::timer::sleep(Duration::from_millis(MAILBOX_POLL_MS)).await;
        }
    }
}

/// A pool's counters for `/v1/agent/self`'s `Stats` (`serf_lan`, `serf_wan`), as Serf reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Members known (any status).
    pub members: usize,
    /// Members failed.
    pub failed: usize,
    /// Members left.
    pub left: usize,
    /// Lifeguard's local health score.
    pub health_score: u32,
    /// The Serf member clock.
    pub member_time: u64,
    /// The Serf event clock.
    pub event_time: u64,
    /// The Serf query clock.
    pub query_time: u64,
    /// Gossip is encrypted.
    pub encrypted: bool,
    /// Broadcasts waiting to be sent.
    pub pending_broadcasts: usize,
}

impl PoolStats {
    /// The `serf_lan`/`serf_wan` group of `/v1/agent/self`'s `Stats` (Consul's keys; values are strings).
    pub fn to_group(self) -> BTreeMap<String, String> {
        [
            ("members", self.members.to_string()),
            ("failed", self.failed.to_string()),
            ("left", self.left.to_string()),
            ("health_score", self.health_score.to_string()),
            ("member_time", self.member_time.to_string()),
            ("event_time", self.event_time.to_string()),
            ("query_time", self.query_time.to_string()),
            ("encrypted", self.encrypted.to_string()),
            ("intent_queue", "0".to_string()),
            ("event_queue", "0".to_string()),
            ("query_queue", "0".to_string()),
            ("coordinate_resets", "0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// One pool as the rest of the agent sees it: its members, its events, and its owner's mailbox.
#[derive(Debug)]
pub struct PoolHub {
    /// The pool's members (published by the owner).
    pub membership: Arc<Membership>,
    /// Consul user events received (LAN pool).
    pub events: Mutex<EventBuffer>,
    /// The pool's counters (updated by the owner after every step).
    pub stats: Mutex<PoolStats>,
    mailbox: Mutex<VecDeque<(GossipRequest, Ticket)>>,
    /// False until the owner runs (a request before then fails at once).
    running: std::sync::atomic::AtomicBool,
}

impl PoolHub {
    /// An empty hub.
    pub fn new(membership: Arc<Membership>) -> PoolHub {
        PoolHub {
            membership,
            events: Mutex::new(EventBuffer::default()),
            stats: Mutex::new(PoolStats::default()),
            mailbox: Mutex::new(VecDeque::new()),
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Asks the owner and waits for its answer.
    pub async fn request(&self, request: GossipRequest) -> GossipReply {
        if !self.running.load(std::sync::atomic::Ordering::Acquire) {
            return GossipReply::Failed("the gossip layer is not running".into());
        }
        let ticket = Ticket::default();
        {
            let mut mailbox = self.mailbox.lock();
            if mailbox.len() >= MAILBOX_REQUESTS_MAX {
                return GossipReply::Failed("too many gossip requests waiting".into());
            }
            mailbox.push_back((request, ticket.clone()));
        }
        ticket.wait(REQUEST_TIMEOUT_MS).await
    }

    /// Takes the waiting requests (the owner).
    fn take_requests(&self) -> Vec<(GossipRequest, Ticket)> {
        self.mailbox.lock().drain(..).collect()
    }

    fn set_running(&self, running: bool) {
        self.running
            .store(running, std::sync::atomic::Ordering::Release);
        if !running {
            for (_, ticket) in self.take_requests() {
                ticket.answer(GossipReply::Failed("the gossip layer stopped".into()));
            }
        }
    }
}

/// Every pool of this agent.
#[derive(Debug)]
pub struct GossipHub {
    /// The LAN pool.
    pub lan: Arc<PoolHub>,
    /// The WAN pool (servers).
    pub wan: Option<Arc<PoolHub>>,
}

impl GossipHub {
    /// Hubs for the LAN pool and, when `wan`, the WAN pool.
    pub fn new(wan: bool) -> GossipHub {
        GossipHub {
            lan: Arc::new(PoolHub::new(Arc::new(Membership::new()))),
            wan: wan.then(|| Arc::new(PoolHub::new(Arc::new(Membership::new())))),
        }
    }

    /// The datacenters of the live members of the WAN pool (empty on a client).
    pub fn wan_datacenters(&self) -> Vec<String> {
        let Some(wan) = &self.wan else {
            return Vec::new();
        };
        let mut dcs: Vec<String> = wan
            .membership
            .members()
            .iter()
            .filter(|m| m.state == super::membership::MemberState::Alive)
            .filter_map(|m| m.tags.get("dc").cloned())
            .collect();
        dcs.sort();
        dcs.dedup();
        dcs
    }

    /// The node names of the servers the LAN pool lists (any datacenter, any status), by RPC address.
    pub fn lan_server_names(&self) -> BTreeMap<String, String> {
        self.lan
            .membership
            .members()
            .iter()
            .filter_map(super::membership::MemberView::server)
            .map(|s| (s.rpc_addr.to_string(), s.name))
            .collect()
    }

    /// `serf_lan` and, on a server, `serf_wan`: each pool's counters.
    pub fn stats_groups(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut groups = BTreeMap::new();
        groups.insert("serf_lan".to_string(), self.lan.stats.lock().to_group());
        if let Some(wan) = &self.wan {
            groups.insert("serf_wan".to_string(), wan.stats.lock().to_group());
        }
        groups
    }

    /// The pool asked for (`?wan`): `None` when this agent is not in it.
    pub fn pool(&self, wan: bool) -> Option<&Arc<PoolHub>> {
        if wan {
            self.wan.as_ref()
        } else {
            Some(&self.lan)
        }
    }
}

/// The pools this agent is in, from its configuration: the LAN pool, and the WAN pool on a server whose
/// `ports.serf_wan` is not disabled. `node_id` goes in the tags.
pub fn pools(config: &crate::config::AgentConfig, node_id: &str) -> Vec<PoolSettings> {
    use std::net::{IpAddr, Ipv4Addr};
    let server = config.server || config.dev;
    let any = if config.dev {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let bind_ip = config.bind.unwrap_or(IpAddr::V4(any));
    let advertise_ip = super::http::identity(config)
        .address
        .parse()
        .unwrap_or(bind_ip);
    let encrypt = config.encrypt.as_ref().and_then(|key| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(key).ok()
    });
    let lan_port = config.ports.serf_lan.unwrap_or(8301);
    let keyring_file = |name: &str| {
        let keep = !config.dev && !config.disable_keyring_file;
        config
            .data_dir
            .as_ref()
            .filter(|_| keep)
            .map(|dir| dir.join("serf").join(name))
    };
    let mut pools = vec![PoolSettings {
        pool: Pool::Lan,
        name: config.node_name.clone(),
        bind: SocketAddr::new(bind_ip, lan_port),
        advertise: SocketAddr::new(advertise_ip, lan_port),
        tags: tags::lan_tags(config, node_id),
        join: config.retry_join.clone(),
        retry_interval_ms: config.retry_interval_ms,
        retry_max: config.retry_max,
        encrypt: encrypt.clone(),
        leave_on_shutdown: config.leaves_on_terminate(),
        server,
        keyring_file: keyring_file("local.keyring"),
    }];
    if let (true, Some(wan_port)) = (server, config.ports.serf_wan) {
        pools.push(PoolSettings {
            pool: Pool::Wan,
            name: format!("{}.{}", config.node_name, config.datacenter),
            bind: SocketAddr::new(bind_ip, wan_port),
            advertise: SocketAddr::new(advertise_ip, wan_port),
            tags: tags::wan_tags(config, node_id),
            join: config.retry_join_wan.clone(),
            retry_interval_ms: config.retry_interval_wan_ms,
            retry_max: 0,
            encrypt,
            leave_on_shutdown: config.leaves_on_terminate(),
            server,
            keyring_file: keyring_file("remote.keyring"),
        });
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        keyring_file: Option<std::path::PathBuf>,
        encrypt: Option<Vec<u8>>,
    ) -> PoolSettings {
        let addr: SocketAddr = "127.0.0.1:8301".parse().unwrap();
        PoolSettings {
            pool: Pool::Lan,
            name: "n".into(),
            bind: addr,
            advertise: addr,
            tags: BTreeMap::new(),
            join: Vec::new(),
            retry_interval_ms: 1,
            retry_max: 0,
            encrypt,
            leave_on_shutdown: false,
            server: false,
            keyring_file,
        }
    }

    #[test]
    fn the_keyring_file_wins_over_encrypt_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("cairn-keyring-{}", std::process::id()));
        let path = dir.join("serf").join("local.keyring");
        let _ = std::fs::remove_dir_all(&dir);
        // No file: the encrypt key, or nothing.
        assert!(settings(Some(path.clone()), None)
            .keyring()
            .unwrap()
            .is_none());
        let ring = settings(Some(path.clone()), Some(vec![1; 32]))
            .keyring()
            .unwrap()
            .unwrap();
        assert_eq!(ring.keys(), [vec![1u8; 32]]);
        // A file: its keys, primary first, whatever encrypt says.
        write_keyring_file(&path, &[vec![2; 16], vec![3; 32]]).unwrap();
        let ring = settings(Some(path.clone()), Some(vec![1; 32]))
            .keyring()
            .unwrap()
            .unwrap();
        assert_eq!(ring.keys(), [vec![2u8; 16], vec![3u8; 32]]);
        // A damaged file is an error naming it.
        std::fs::write(&path, "{").unwrap();
        let why = settings(Some(path.clone()), None).keyring().unwrap_err();
        assert!(why.contains("local.keyring"), "{why}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
