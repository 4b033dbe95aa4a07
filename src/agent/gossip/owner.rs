//! The owner of one pool: the task that holds the pool's `Swim` and drives it (the contract is in
//! `crate::gossip`'s module doc). Everything that happens to the pool reaches the owner as an [`Event`] on one
//! bounded local channel: datagrams from the UDP task, whole stream messages from the TCP connection tasks,
//! dial results, and mailbox requests; the owner steps the core with it, then carries out the actions.

use super::events::UserEvent;
use super::receiver::Datagram;
use super::{
    GossipReply, GossipRequest, KeyringSummary, Pool, PoolHub, PoolSettings, Ticket,
    MAILBOX_POLL_MS,
};
use crate::agent::membership::{socket_addr, MemberState, MemberView};
use crate::gossip::key_query::{KeyOp, KeyResponse};
use crate::gossip::{packet, Action, Addr, Config, Input, Member, MemberStatus, Swim};
use crate::logging::Logger;
use cairn_io::sockets::{bind_tcp, bind_udp};
use cairn_io::Shutdown;
use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::SharedReceiver;
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events queued to the owner at most (a datagram arriving when it is full is dropped, as the network would).
pub const EVENT_QUEUE_MAX: usize = 4096;
/// Largest datagram read (memberlist's UDP buffer is 1400 bytes; peers may send up to 64 KiB).
pub const PACKET_BYTES_MAX: usize = 65_536;
/// Largest stream message read (a push/pull of a large pool).
pub const STREAM_BYTES_MAX: usize = 32 * 1024 * 1024;
/// TCP connections served at once.
pub const STREAMS_OPEN_MAX: usize = 128;
/// memberlist's TCPTimeout: dialing, writing and reading one stream message.
pub const TCP_TIMEOUT_MS: u64 = 10_000;
/// How long a leaving member keeps gossiping its leave at most (memberlist's BroadcastTimeout is 5 s; the
/// agent's whole shutdown has [`crate::agent::SHUTDOWN_TIMEOUT_MS`]).
pub const LEAVE_PROPAGATE_MS: u64 = 2_000;

/// The owner's inbox, shared by the tasks that feed it.
type Events = Rc<LocalSender<Event>>;

/// What the owner reacts to.
enum Event {
    Packet {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Stream {
        from: SocketAddr,
        bytes: Vec<u8>,
        reply: LocalSender<Vec<u8>>,
    },
    DialReply {
        id: u64,
        bytes: Option<Vec<u8>>,
    },
    Requests(Vec<(GossipRequest, Ticket)>),
    RetryJoin,
}

/// A keyring query waiting for its answers.
struct PendingKeyring {
    ticket: Ticket,
    summary: KeyringSummary,
}

/// serf's DefaultQueryTimeout: the gossip interval × 16 × ceil(log10(N + 1)).
fn query_timeout_ms(gossip_interval_ms: u64, members: usize) -> u64 {
    let scale = ((members + 1) as f64).log10().ceil().max(1.0) as u64;
    gossip_interval_ms * 16 * scale
}

/// A join request waiting for its push/pulls.
struct PendingJoin {
    ids: BTreeSet<u64>,
    joined: usize,
    ticket: Option<Ticket>,
}

/// The owner's state beside the core.
struct Owner {
    swim: Swim,
    hub: Arc<PoolHub>,
    settings: PoolSettings,
    udp: Rc<UdpSocket>,
    events: Events,
    clock: Instant,
    wake_at_ms: u64,
    streams: BTreeMap<u64, LocalSender<Vec<u8>>>,
    joins: Vec<PendingJoin>,
    next_conn: u64,
    logger: Logger,
    node_name: String,
    local_services: Rc<dyn Fn() -> Vec<(String, Vec<String>)>>,
    retry_join_done: bool,
    join_attempts: u32,
    leave_requested: Arc<AtomicBool>,
    keyring_queries: BTreeMap<u64, PendingKeyring>,
    next_query: u64,
    /// The keys last written to the keyring file.
    saved_keys: Vec<Vec<u8>>,
}

/// The gossip address of a socket address.
pub fn to_addr(addr: SocketAddr) -> Addr {
    match addr.ip() {
        IpAddr::V4(v4) => Addr::v4(v4.octets(), addr.port()),
        IpAddr::V6(v6) => Addr {
            ip: v6.octets().to_vec(),
            port: addr.port(),
        },
    }
}

fn to_socket(addr: &Addr) -> Option<SocketAddr> {
    socket_addr(&addr.ip, addr.port)
}

/// What the owner of a pool gets from the agent besides the pool's settings.
pub struct AgentLinks {
    /// This agent's node name (event node filters).
    pub node_name: String,
    /// This agent's services and their tags (event service and tag filters).
    pub local_services: Rc<dyn Fn() -> Vec<(String, Vec<String>)>>,
    /// The agent's logger.
    pub logger: Logger,
    /// Set by `PUT /v1/agent/leave`: leave the pool when stopping.
    pub leave_requested: Arc<AtomicBool>,
    /// The other shards' received datagrams.
    pub forwarded: Vec<SharedReceiver<Datagram>>,
}

/// Runs the pool until `shutdown`: binds its sockets (an error is returned at once), joins the configured
/// addresses, then drives the core.
pub async fn run_pool(
    hub: Arc<PoolHub>,
    settings: PoolSettings,
    links: AgentLinks,
    shutdown: Shutdown,
) -> Result<glommio::Task<()>, String> {
    let AgentLinks {
        node_name,
        local_services,
        logger,
        leave_requested,
        forwarded,
    } = links;
    let what = match settings.pool {
        Pool::Lan => "serf LAN",
        Pool::Wan => "serf WAN",
    };
    // TCP first and without SO_REUSEPORT: a second agent on this address fails here; UDP is shared with the
    // other shards' receivers.
    let tcp = bind_tcp(settings.bind, false, 128)
        .map_err(|e| format!("{what} (tcp) on {}: {e}", settings.bind))?;
    let udp = bind_udp(settings.bind, true)
        .map_err(|e| format!("{what} (udp) on {}: {e}", settings.bind))?;
    let mut config = match settings.pool {
        Pool::Lan => Config::lan(settings.name.clone(), to_addr(settings.advertise)),
        Pool::Wan => Config::wan(settings.name.clone(), to_addr(settings.advertise)),
    };
    config.tags = settings.tags.clone();
    let keyring = settings.keyring()?;
    let swim = Swim::new(config, entropy_seed(), keyring).map_err(|e| e.to_string())?;
    let (events, inbox) = local_channel::new_bounded(EVENT_QUEUE_MAX);
    let events: Events = Rc::new(events);
    let udp = Rc::new(udp);
    let mut owner = Owner {
        swim,
        hub: Arc::clone(&hub),
        settings,
        udp: Rc::clone(&udp),
        events: events.clone(),
        clock: Instant::now(),
        wake_at_ms: 0,
        streams: BTreeMap::new(),
        joins: Vec::new(),
        next_conn: 0,
        logger,
        node_name,
        local_services,
        retry_join_done: false,
        join_attempts: 0,
        leave_requested,
        keyring_queries: BTreeMap::new(),
        next_query: 0,
        saved_keys: Vec::new(),
    };
    hub.set_running(true);
    owner.publish();
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(1000),
        glommio::Latency::Matters(Duration::from_millis(10)),
        "cairn-gossip",
    );
    let task = glommio::spawn_local_into(
        async move {
            let receiving = glommio::spawn_local(receive_packets(udp, events.clone()));
            let accepting = glommio::spawn_local(accept_streams(Rc::new(tcp), events.clone()));
            let polling = glommio::spawn_local(poll_mailbox(Arc::clone(&hub), events.clone()));
            let forwarding: Vec<_> = forwarded
                .into_iter()
                .map(|rx| glommio::spawn_local(take_forwarded(rx, events.clone())))
                .collect();
            owner.start_join().await;
            owner.drive(inbox, &shutdown).await;
            drop((receiving, accepting, polling, forwarding));
            owner.hub.set_running(false);
        },
        tq,
    )
    .map_err(|e| format!("{what}: {e}"))?;
    Ok(task)
}

fn entropy_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return nanos ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

async fn receive_packets(udp: Rc<UdpSocket>, events: Events) {
    let mut buf = vec![0u8; PACKET_BYTES_MAX];
    loop {
        match udp.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let _ = events.try_send(Event::Packet {
                    from,
                    bytes: buf[..n].to_vec(),
                });
            }
            Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Datagrams another shard received, handed to the owner.
async fn take_forwarded(rx: SharedReceiver<Datagram>, events: Events) {
    let rx = rx.connect().await;
    while let Some((from, bytes)) = rx.recv().await {
        let _ = events.try_send(Event::Packet { from, bytes });
    }
}

async fn accept_streams(tcp: Rc<TcpListener>, events: Events) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let Ok(stream) = tcp.accept().await else {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if open.get() >= STREAMS_OPEN_MAX {
            continue;
        }
        open.set(open.get() + 1);
        let (events, open) = (events.clone(), Rc::clone(&open));
        glommio::spawn_local(async move {
            serve_stream(stream, events).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// Reads one stream message, hands it to the owner, writes its answer (if any), closes.
async fn serve_stream(mut stream: TcpStream, events: Events) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(TCP_TIMEOUT_MS)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(TCP_TIMEOUT_MS)));
    let Ok(from) = stream.peer_addr() else { return };
    let Some(bytes) = read_message(&mut stream).await else {
        return;
    };
    let (reply, answer) = local_channel::new_bounded(1);
    if events
        .send(Event::Stream { from, bytes, reply })
        .await
        .is_err()
    {
        return;
    }
    if let Some(bytes) = answer.recv().await {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
    }
    let _ = stream.close().await;
}

/// Reads until one whole memberlist stream message is buffered; `None` on error, timeout or a bad message.
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match packet::stream_message_len(&buf, 1_000_000) {
            Ok(Some(n)) => {
                buf.truncate(n);
                return Some(buf);
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        if buf.len() >= STREAM_BYTES_MAX {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Dials `to`, writes `bytes`, reads one message (all within [`TCP_TIMEOUT_MS`]).
async fn dial(to: SocketAddr, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let exchange = async {
        let timeout = Duration::from_millis(TCP_TIMEOUT_MS);
        let mut stream = TcpStream::connect_timeout(to, timeout).await.ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream.write_all(&bytes).await.ok()?;
        stream.flush().await.ok()?;
        let reply = read_message(&mut stream).await;
        let _ = stream.close().await;
        reply
    };
    let deadline = async {
        glommio::timer::sleep(Duration::from_millis(TCP_TIMEOUT_MS)).await;
        None
    };
    or(exchange, deadline).await
}

async fn poll_mailbox(hub: Arc<PoolHub>, events: Events) {
    loop {
        glommio::timer::sleep(Duration::from_millis(MAILBOX_POLL_MS)).await;
        let requests = hub.take_requests();
        if !requests.is_empty() && events.send(Event::Requests(requests)).await.is_err() {
            return;
        }
    }
}

impl Owner {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn component(&self) -> &'static str {
        self.settings.pool.log_name(self.settings.server)
    }

    /// Steps the core until shutdown, then leaves (when configured) and gossips the leave for a while.
    async fn drive(&mut self, inbox: LocalReceiver<Event>, shutdown: &Shutdown) {
        self.step(Input::Tick).await;
        loop {
            let wait_ms = self.wake_at_ms.saturating_sub(self.now_ms()).max(1);
            let next = async { inbox.recv().await.map(Some) };
            let timer = async {
                glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
                Some(None)
            };
            let stop = async {
                shutdown.wait().await;
                None
            };
            match or(stop, or(next, timer)).await {
                None => break,
                Some(Some(event)) => self.on_event(event).await,
                Some(None) => self.step(Input::Tick).await,
            }
        }
        if self.settings.leave_on_shutdown || self.leave_requested.load(Ordering::Acquire) {
            self.leave(&inbox).await;
        }
    }

    async fn leave(&mut self, inbox: &LocalReceiver<Event>) {
        self.logger.info(self.component(), "serf: leaving the pool");
        self.step(Input::Leave).await;
        let deadline = self.now_ms() + LEAVE_PROPAGATE_MS;
        while self.swim.pending_broadcasts() > 0 && self.now_ms() < deadline {
            let next = async { inbox.recv().await };
            let timer = async {
                glommio::timer::sleep(Duration::from_millis(50)).await;
                None
            };
            match or(next, timer).await {
                Some(event) => self.on_event(event).await,
                None => self.step(Input::Tick).await,
            }
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Packet { from, bytes } => {
                self.step(Input::Packet {
                    from: to_addr(from),
                    bytes,
                })
                .await
            }
            Event::Stream { from, bytes, reply } => {
                self.next_conn += 1;
                let conn = self.next_conn;
                self.streams.insert(conn, reply);
                self.step(Input::Stream {
                    conn,
                    from: to_addr(from),
                    bytes,
                })
                .await;
                // No reply for this stream: dropping its sender closes the connection.
                self.streams.remove(&conn);
            }
            Event::DialReply {
                id,
                bytes: Some(bytes),
            } => self.step(Input::DialReply { id, bytes }).await,
            Event::DialReply { id, bytes: None } => self.step(Input::DialFailed { id }).await,
            Event::Requests(requests) => {
                for (request, ticket) in requests {
                    self.on_request(request, ticket).await;
                }
            }
            Event::RetryJoin => self.start_join().await,
        }
    }

    async fn on_request(&mut self, request: GossipRequest, ticket: Ticket) {
        match request {
            GossipRequest::Join(addrs) => {
                let ids = self.join(addrs).await;
                self.joins.push(PendingJoin {
                    ids,
                    joined: 0,
                    ticket: Some(ticket),
                });
                self.settle_joins();
            }
            GossipRequest::ForceLeave { node, prune } => {
                let result = self.step_checked(Input::ForceLeave { node, prune }).await;
                ticket.answer(match result {
                    Ok(()) => GossipReply::Done(1),
                    Err(e) => GossipReply::Failed(e),
                });
            }
            GossipRequest::UserEvent { name, payload } => {
                let input = Input::UserEvent {
                    name,
                    payload,
                    coalesce: true,
                };
                ticket.answer(match self.step_checked(input).await {
                    Ok(()) => GossipReply::Done(1),
                    Err(e) => GossipReply::Failed(e),
                });
            }
            GossipRequest::ListKeys => ticket.answer(self.list_keys()),
            GossipRequest::Keyring(op) => self.keyring_query(op, ticket).await,
        }
    }

    /// Starts a serf key query; answered when its time is up.
    async fn keyring_query(&mut self, op: KeyOp, ticket: Ticket) {
        self.next_query += 1;
        let token = self.next_query;
        let members = self.swim.num_nodes();
        let input = Input::Query {
            token,
            name: op.query_name(),
            payload: op.payload(),
            timeout_ms: query_timeout_ms(self.swim.config().gossip_interval_ms, members),
        };
        self.keyring_queries.insert(
            token,
            PendingKeyring {
                ticket,
                summary: KeyringSummary::default(),
            },
        );
        if let Err(why) = self.step_checked(input).await {
            if let Some(pending) = self.keyring_queries.remove(&token) {
                pending.ticket.answer(GossipReply::Failed(why));
            }
        }
    }

    fn on_query_response(&mut self, token: u64, from: String, payload: &[u8]) {
        let Some(pending) = self.keyring_queries.get_mut(&token) else {
            return;
        };
        let summary = &mut pending.summary;
        summary.num_resp += 1;
        match KeyResponse::decode(payload) {
            Ok(answer) => {
                if !answer.result {
                    summary.num_err += 1;
                    summary.messages.insert(from, answer.message);
                }
                for key in answer.keys {
                    *summary.keys.entry(key).or_default() += 1;
                }
                if !answer.primary_key.is_empty() {
                    *summary.primary_keys.entry(answer.primary_key).or_default() += 1;
                }
            }
            Err(why) => {
                summary.num_err += 1;
                summary.messages.insert(from, why);
            }
        }
        // Every live member answered: no need to wait for the query's timeout.
        if summary.num_resp >= self.live_members() {
            self.on_query_done(token);
        }
    }

    fn live_members(&self) -> usize {
        self.swim
            .members()
            .values()
            .filter(|m| !m.state.dead_or_left())
            .count()
    }

    fn on_query_done(&mut self, token: u64) {
        let Some(mut pending) = self.keyring_queries.remove(&token) else {
            return;
        };
        pending.summary.num_nodes = self.live_members();
        pending.ticket.answer(GossipReply::Keyring(pending.summary));
    }

    fn list_keys(&mut self) -> GossipReply {
        use base64::Engine;
        let Some(keyring) = self.swim.keyring_mut() else {
            return GossipReply::Failed("Gossip encryption is not enabled".into());
        };
        let engine = &base64::engine::general_purpose::STANDARD;
        GossipReply::Keys(keyring.keys().iter().map(|k| engine.encode(k)).collect())
    }

    /// Starts a join through `addrs`; the ids of the push/pulls it dialed.
    async fn join(&mut self, addrs: Vec<SocketAddr>) -> BTreeSet<u64> {
        let seeds = addrs.into_iter().map(to_addr).collect();
        let mut actions = Vec::new();
        let now = self.now_ms();
        let _ = self.swim.step(now, Input::Join { seeds }, &mut actions);
        let ids = actions
            .iter()
            .filter_map(|a| match a {
                Action::Dial { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        self.carry_out(actions).await;
        ids
    }

    /// The configured join (`retry_join`): tried at start and every `retry_interval` until one address
    /// answers, at most `retry_max` times (0: no limit).
    async fn start_join(&mut self) {
        if self.settings.join.is_empty() || self.retry_join_done {
            return;
        }
        if self.settings.retry_max > 0 && self.join_attempts >= self.settings.retry_max {
            self.logger.error(
                self.component(),
                &format!(
                    "Join failed: gave up after {} attempts to join {:?}",
                    self.join_attempts, self.settings.join
                ),
            );
            return;
        }
        self.join_attempts += 1;
        let ids = self.join(self.settings.join.clone()).await;
        self.joins.push(PendingJoin {
            ids,
            joined: 0,
            ticket: None,
        });
        self.settle_joins();
    }

    /// Steps the core and reports a refusal as text.
    async fn step_checked(&mut self, input: Input) -> Result<(), String> {
        let mut actions = Vec::new();
        let now = self.now_ms();
        let result = self.swim.step(now, input, &mut actions);
        self.carry_out(actions).await;
        result.map_err(|e| e.to_string())
    }

    async fn step(&mut self, input: Input) {
        let mut actions = Vec::new();
        let now = self.now_ms();
        if let Err(e) = self.swim.step(now, input, &mut actions) {
            self.logger
                .debug(self.component(), &format!("memberlist: dropped: {e}"));
        }
        self.carry_out(actions).await;
    }

    async fn carry_out(&mut self, actions: Vec<Action>) {
        let mut changed = false;
        for action in actions {
            changed |= self.carry_out_one(action).await;
        }
        if changed {
            self.publish();
        }
        self.settle_joins();
        self.update_stats();
        self.save_keyring().await;
    }

    /// Copies the pool's counters for `/v1/agent/self`.
    fn update_stats(&mut self) {
        let (member_time, event_time, query_time) = self.swim.clocks();
        let count = |status: MemberStatus| {
            self.swim
                .members()
                .values()
                .filter(|m| m.status == status)
                .count()
        };
        let stats = super::PoolStats {
            members: self.swim.members().len(),
            failed: count(MemberStatus::Failed),
            left: count(MemberStatus::Left),
            health_score: self.swim.health_score(),
            member_time,
            event_time,
            query_time,
            encrypted: self.swim.keyring_mut().is_some(),
            pending_broadcasts: self.swim.pending_broadcasts(),
        };
        *self.hub.stats.lock() = stats;
    }

    /// Writes the keyring file when the keys changed (off the shard, on the blocking pool).
    async fn save_keyring(&mut self) {
        let Some(path) = self.settings.keyring_file.clone() else {
            return;
        };
        let keys = match self.swim.keyring_mut() {
            Some(ring) if ring.keys() != self.saved_keys.as_slice() => ring.keys().to_vec(),
            _ => return,
        };
        self.saved_keys = keys.clone();
        let written = glommio::executor()
            .spawn_blocking(move || super::write_keyring_file(&path, &keys))
            .await;
        if let Err(why) = written {
            self.logger
                .error(self.component(), &format!("cannot save the keyring: {why}"));
        }
    }

    /// One action; true when the member list changed.
    async fn carry_out_one(&mut self, action: Action) -> bool {
        match action {
            Action::SendPacket { to, bytes } => {
                if let Some(to) = to_socket(&to) {
                    let _ = self.udp.send_to(&bytes, to).await;
                }
                false
            }
            Action::Dial { id, to, bytes } => {
                let events = self.events.clone();
                let to = to_socket(&to);
                glommio::spawn_local(async move {
                    let reply = match to {
                        Some(to) => dial(to, bytes).await,
                        None => None,
                    };
                    let _ = events.send(Event::DialReply { id, bytes: reply }).await;
                })
                .detach();
                false
            }
            Action::StreamReply { conn, bytes } => {
                if let Some(reply) = self.streams.remove(&conn) {
                    let _ = reply.try_send(bytes);
                }
                false
            }
            Action::WakeAt { at_ms } => {
                self.wake_at_ms = at_ms;
                false
            }
            Action::MemberJoined(m) => self.log_member("EventMemberJoin", &m),
            Action::MemberUpdated(m) => self.log_member("EventMemberUpdate", &m),
            Action::MemberFailed(m) => self.log_member("EventMemberFailed", &m),
            Action::MemberLeft(m) => self.log_member("EventMemberLeave", &m),
            Action::MemberReaped(m) => self.log_member("EventMemberReap", &m),
            Action::UserEvent {
                ltime,
                name,
                payload,
                ..
            } => {
                self.on_user_event(ltime, &name, &payload);
                false
            }
            Action::QueryResponse {
                token,
                from,
                payload,
            } => {
                self.on_query_response(token, from, &payload);
                false
            }
            Action::QueryDone { token } => {
                self.on_query_done(token);
                false
            }
            Action::JoinFailed { id } => {
                self.join_result(id, false);
                false
            }
            Action::Joined { id, .. } => {
                self.join_result(id, true);
                false
            }
        }
    }

    fn log_member(&self, what: &str, m: &Member) -> bool {
        let ip = to_socket(&m.addr).map_or_else(|| m.addr.to_string(), |a| a.ip().to_string());
        self.logger
            .info(self.component(), &format!("serf: {what}: {} {ip}", m.name));
        true
    }

    fn on_user_event(&self, ltime: u64, name: &str, payload: &[u8]) {
        let event = UserEvent::from_serf(ltime, name, payload);
        self.logger.debug(
            self.component(),
            &format!("serf: EventUser: {} (ltime {ltime})", event.name),
        );
        if event.matches(&self.node_name, &(self.local_services)()) {
            self.hub.events.lock().push(event);
        }
    }

    fn join_result(&mut self, id: u64, ok: bool) {
        for join in &mut self.joins {
            if join.ids.remove(&id) && ok {
                join.joined += 1;
            }
        }
    }

    /// Answers the joins whose push/pulls all finished; schedules a retry of a configured join that failed.
    fn settle_joins(&mut self) {
        let mut retry = false;
        self.joins.retain_mut(|join| {
            if !join.ids.is_empty() {
                return true;
            }
            match join.ticket.take() {
                Some(ticket) if join.joined > 0 => ticket.answer(GossipReply::Done(join.joined)),
                Some(ticket) => {
                    ticket.answer(GossipReply::Failed("no address could be joined".into()))
                }
                None if join.joined > 0 => self.retry_join_done = true,
                None => retry = true,
            }
            false
        });
        if retry && !self.retry_join_done {
            self.logger.log(
                crate::logging::LogLevel::Warn,
                self.component(),
                &format!(
                    "Join failed: no address in {:?} answered; retrying in {} ms",
                    self.settings.join, self.settings.retry_interval_ms
                ),
            );
            let events = self.events.clone();
            let wait = Duration::from_millis(self.settings.retry_interval_ms);
            glommio::spawn_local(async move {
                glommio::timer::sleep(wait).await;
                let _ = events.send(Event::RetryJoin).await;
            })
            .detach();
        }
    }

    /// Publishes the member list.
    fn publish(&self) {
        let members = self
            .swim
            .members()
            .values()
            .filter_map(|m| {
                Some(MemberView {
                    name: m.name.clone(),
                    addr: to_socket(&m.addr)?,
                    tags: m.tags.clone(),
                    state: match m.status {
                        MemberStatus::Alive => MemberState::Alive,
                        MemberStatus::Leaving => MemberState::Leaving,
                        MemberStatus::Left => MemberState::Left,
                        MemberStatus::Failed => MemberState::Failed,
                    },
                    vsn: m.vsn,
                })
            })
            .collect();
        self.hub.membership.publish(members);
    }
}
