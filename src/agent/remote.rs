//! A client agent's link to the servers: each shard relays the calls it cannot answer itself (see
//! [`super::relay`]) to one server over the server RPC, and fails over to the next server when that one
//! cannot be reached.
//!
//! The server transport is one-directional, so the link listens too: each call names this shard's listener
//! in `reply_to`, and the server dials it to send the answer with the call's request id. Calls go to one
//! server at a time (the first of the configured list that answers); a call whose frame never left (the
//! connection could not be made) moves on to the next server, and so does a call that is safe to repeat
//! (a read or a DNS query, or an anti-entropy write, which is idempotent) when the connection broke under it.

use super::membership::Membership;
use super::relay::{decode_answer, encode_call, RelayAnswer, RelayCall};
use crate::raft::ServerId;
use crate::rpc::{self, Body, ErrorCode, Frame, Header, RelayRequest};
use cairn_io::net::{InboundFrame, Listener, ListenerOptions, Peer, PeerOptions, PeerStats};
use cairn_io::Shutdown;
use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::Task;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls one shard may have waiting for an answer at once.
pub const CALLS_WAITING_MAX: usize = 8192;
/// How long a call that is not a blocking query waits for its answer.
pub const CALL_TIMEOUT_MS: u64 = 30_000;
/// How often a waiting call looks whether its connection failed.
pub const CONNECTION_CHECK_MS: u64 = 50;
/// The sender id client agents put in their frames (outside any Raft configuration).
pub const CLIENT_SENDER_ID: ServerId = ServerId(0);

type AnswerSender = LocalSender<Result<Vec<u8>, rpc::ErrorReply>>;

/// One shard's link to the servers.
pub struct RemoteLink {
    servers: Arc<Membership>,
    datacenter: String,
    current: Cell<usize>,
    peers: RefCell<BTreeMap<SocketAddr, Peer>>,
    waiting: Rc<RefCell<BTreeMap<u64, AnswerSender>>>,
    next_id: Cell<u64>,
    reply_to: String,
    listener: RefCell<Option<Listener>>,
    receiver: RefCell<Option<Task<()>>>,
    clock: Instant,
    shutdown: Shutdown,
}

impl RemoteLink {
    /// Listens on `bind_ip` (a free port) for answers and relays to the live servers of `datacenter` that the
    /// LAN pool lists in `servers`.
    pub fn start(
        servers: Arc<Membership>,
        bind_ip: IpAddr,
        datacenter: String,
        shutdown: &Shutdown,
    ) -> Result<Rc<RemoteLink>, String> {
        let (listener, inbound) = Listener::bind(
            SocketAddr::new(bind_ip, 0),
            ListenerOptions::default(),
            shutdown,
        )
        .map_err(|e| format!("client RPC listener on {bind_ip}: {e}"))?;
        let link = Rc::new(RemoteLink {
            servers,
            datacenter,
            current: Cell::new(0),
            peers: RefCell::new(BTreeMap::new()),
            waiting: Rc::new(RefCell::new(BTreeMap::new())),
            next_id: Cell::new(1),
            reply_to: listener.local_addr().to_string(),
            listener: RefCell::new(Some(listener)),
            receiver: RefCell::new(None),
            clock: Instant::now(),
            shutdown: shutdown.clone(),
        });
        let waiting = Rc::clone(&link.waiting);
        let task = glommio::spawn_local(receive_answers(inbound, waiting));
        *link.receiver.borrow_mut() = Some(task);
        Ok(link)
    }

    /// Milliseconds since this link started (the client agent's monotonic clock).
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Stops listening and drops the connections.
    pub async fn close(&self) {
        let listener = self.listener.borrow_mut().take();
        if let Some(listener) = listener {
            listener.close().await;
        }
        self.peers.borrow_mut().clear();
        let receiver = self.receiver.borrow_mut().take();
        if let Some(task) = receiver {
            drop(task.cancel());
        }
    }

    /// Relays `call` and waits for the answer (up to `timeout_ms` once it reached a server). A call that could
    /// not reach a server, or a failure on the server's side, is a [`RelayAnswer::Failed`] with Consul's status.
    pub async fn call(&self, call: &RelayCall, token: &str, timeout_ms: u64) -> RelayAnswer {
        let servers = self.servers.live_server_addrs(&self.datacenter);
        if servers.is_empty() {
            return failed(500, "No known Consul servers");
        }
        let repeatable = is_repeatable(call);
        let bytes = encode_call(call);
        let mut last_error = String::new();
        for _ in 0..servers.len() {
            let server = servers[self.current.get() % servers.len()];
            match self.call_once(server, &bytes, token, timeout_ms).await {
                Attempt::Answered(answer) => return answer,
                Attempt::NotDelivered(why) => last_error = why,
                Attempt::Lost(why) if repeatable => last_error = why,
                Attempt::Lost(why) => return failed(500, &format!("rpc error: {why}")),
            }
            self.current.set(self.current.get() + 1);
        }
        failed(
            500,
            &format!("rpc error: no server could be reached: {last_error}"),
        )
    }

    async fn call_once(
        &self,
        server: SocketAddr,
        call: &[u8],
        token: &str,
        timeout_ms: u64,
    ) -> Attempt {
        if self.waiting.borrow().len() >= CALLS_WAITING_MAX {
            return Attempt::Answered(failed(429, "too many calls waiting for the servers"));
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let frame = Frame {
            header: Header {
                datacenter: self.datacenter.clone(),
                sender: CLIENT_SENDER_ID,
                request_id: id,
            },
            body: Body::Relay(RelayRequest {
                token: token.to_string(),
                reply_to: self.reply_to.clone(),
                call: call.to_vec(),
            }),
        };
        let payload = match rpc::encode(&frame) {
            Ok(payload) => payload,
            Err(e) => return Attempt::Answered(failed(413, &e.to_string())),
        };
        let before = match self.send(server, payload) {
            Ok(before) => before,
            Err(why) => return Attempt::NotDelivered(why),
        };
        let (tx, rx) = local_channel::new_bounded(1);
        self.waiting.borrow_mut().insert(id, tx);
        let outcome = self.wait_answer(server, &rx, before, timeout_ms).await;
        self.waiting.borrow_mut().remove(&id);
        outcome
    }

    /// Queues the frame to `server`; the peer's counters before it, to tell later whether it left.
    fn send(&self, server: SocketAddr, payload: Vec<u8>) -> Result<PeerStats, String> {
        let mut peers = self.peers.borrow_mut();
        let peer = match peers.entry(server) {
            std::collections::btree_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => slot.insert(
                Peer::start(server, PeerOptions::default(), &self.shutdown)
                    .map_err(|e| format!("{server}: {e}"))?,
            ),
        };
        let before = peer.stats();
        peer.try_send(payload)
            .map_err(|e| format!("{server}: {:?}", e.kind()))?;
        Ok(before)
    }

    async fn wait_answer(
        &self,
        server: SocketAddr,
        rx: &LocalReceiver<Result<Vec<u8>, rpc::ErrorReply>>,
        before: PeerStats,
        timeout_ms: u64,
    ) -> Attempt {
        let deadline_ms = self.now_ms() + timeout_ms;
        loop {
            let tick = async {
                glommio::timer::sleep(Duration::from_millis(CONNECTION_CHECK_MS)).await;
                None
            };
            if let Some(answer) = or(async { Some(rx.recv().await) }, tick).await {
                return match answer {
                    Some(Ok(bytes)) => {
                        Attempt::Answered(decode_answer(&bytes).unwrap_or_else(|e| failed(500, &e)))
                    }
                    Some(Err(e)) => Attempt::Answered(server_error(&e)),
                    None => Attempt::Lost("the link closed".to_string()),
                };
            }
            if let Some(verdict) = self.connection_verdict(server, before) {
                return verdict;
            }
            if self.now_ms() >= deadline_ms || self.shutdown.is_triggered() {
                return Attempt::Lost(format!("{server}: no answer within {timeout_ms} ms"));
            }
        }
    }

    /// Whether the connection to `server` failed since `before`: the frame never left, or the connection
    /// broke after it did.
    fn connection_verdict(&self, server: SocketAddr, before: PeerStats) -> Option<Attempt> {
        let peers = self.peers.borrow();
        let peer = peers.get(&server)?;
        let now = peer.stats();
        let sent = now.frames_sent > before.frames_sent;
        if !sent && now.connect_failures > before.connect_failures {
            let why = peer
                .last_error()
                .map_or_else(String::new, |e| e.to_string());
            return Some(Attempt::NotDelivered(format!("{server}: {why}")));
        }
        if now.frames_dropped > before.frames_dropped || now.disconnects > before.disconnects {
            let why = peer
                .last_error()
                .map_or_else(String::new, |e| e.to_string());
            return Some(Attempt::Lost(format!("{server}: {why}")));
        }
        None
    }
}

/// How one try at one server went.
enum Attempt {
    /// The server answered (maybe with a failure of its own).
    Answered(RelayAnswer),
    /// The call never reached the server: safe to send elsewhere.
    NotDelivered(String),
    /// The call may have reached the server, but no answer will come.
    Lost(String),
}

/// Whether a call may be sent again after it may have reached a server: reads (DNS queries too), and
/// anti-entropy's catalog writes (registering or deregistering the same thing twice is harmless).
fn is_repeatable(call: &RelayCall) -> bool {
    match call {
        RelayCall::Http { method, .. } => method == "GET" || method == "HEAD",
        RelayCall::Apply { .. } | RelayCall::NodeView { .. } | RelayCall::Dns { .. } => true,
    }
}

fn failed(status: u16, message: &str) -> RelayAnswer {
    RelayAnswer::Failed {
        status,
        message: message.to_string(),
    }
}

/// Consul's answer to a server-side failure.
fn server_error(error: &rpc::ErrorReply) -> RelayAnswer {
    match error.code {
        ErrorCode::Overloaded => failed(429, &error.message),
        _ => failed(500, &format!("rpc error: {}", error.message)),
    }
}

/// Hands every answer that arrives to the call waiting for its id.
async fn receive_answers(
    inbound: LocalReceiver<InboundFrame>,
    waiting: Rc<RefCell<BTreeMap<u64, AnswerSender>>>,
) {
    while let Some(frame) = inbound.recv().await {
        let Ok(decoded) = rpc::decode(&frame.payload) else {
            continue;
        };
        let answer = match decoded.body {
            Body::RelayReply { result } => Ok(result),
            Body::Error(error) => Err(error),
            _ => continue,
        };
        if let Some(tx) = waiting.borrow_mut().remove(&decoded.header.request_id) {
            let _ = tx.try_send(answer);
        }
    }
}
