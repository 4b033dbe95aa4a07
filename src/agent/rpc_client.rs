//! A small blocking client of the server RPC (std threads and sockets, no glommio) for tests, benchmarks and
//! debugging: status queries, writes applied through Raft, and reads.
//!
//! The server transport is one-directional, so the client listens too: each request names the client's
//! listening address in `reply_to`, and the server dials it to send the reply with the request's id. One
//! reader thread per accepted connection decodes replies and hands each to the caller waiting for its id.

use crate::raft::ServerId;
use crate::rpc::{
    self, ApplyRequest, Body, Consistency, ErrorCode, ErrorReply, Frame, Header, ReadRequest,
    StatusReply,
};
use cairn_io::net::{encode_frame, FrameDecoder};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Largest reply frame the client accepts.
pub const CLIENT_FRAME_BYTES_MAX: usize = 64 << 20;
/// Replies kept for callers that gave up waiting, at most (older ones are dropped).
const UNCLAIMED_REPLIES_MAX: usize = 4096;
/// How long a connection attempt to a server may take.
const CONNECT_TIMEOUT_MS: u64 = 1_000;

/// Why a call did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// Connecting or writing failed.
    Io(String),
    /// No reply within the timeout.
    Timeout,
    /// The reply was not the kind the request expects.
    UnexpectedReply(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(why) => write!(f, "rpc: {why}"),
            ClientError::Timeout => write!(f, "rpc: no reply in time"),
            ClientError::UnexpectedReply(what) => write!(f, "rpc: unexpected reply: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Default)]
struct Mailbox {
    replies: BTreeMap<u64, Body>,
}

struct Shared {
    mailbox: Mutex<Mailbox>,
    arrived: Condvar,
    closed: AtomicBool,
}

/// A blocking RPC client (see the module docs). Cheap to share between threads by reference.
pub struct RpcClient {
    shared: Arc<Shared>,
    reply_addr: SocketAddr,
    sender: ServerId,
    datacenter: String,
    next_id: AtomicU64,
    connections: Mutex<BTreeMap<SocketAddr, TcpStream>>,
}

impl RpcClient {
    /// A client listening for replies on `reply_ip` (an ephemeral port), speaking for `datacenter`.
    pub fn new(reply_ip: IpAddr, datacenter: &str) -> std::io::Result<RpcClient> {
        let listener = TcpListener::bind(SocketAddr::new(reply_ip, 0))?;
        let reply_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mailbox: Mutex::new(Mailbox::default()),
            arrived: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("rpc-client-accept".to_string())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(RpcClient {
            shared,
            reply_addr,
            sender: ServerId(u64::from(reply_addr.port()) | 0xC11E_0000_0000_0000),
            datacenter: datacenter.to_string(),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(BTreeMap::new()),
        })
    }

    /// The address replies come to.
    pub fn reply_addr(&self) -> SocketAddr {
        self.reply_addr
    }

    fn send(&self, server: SocketAddr, frame: &Frame) -> Result<(), ClientError> {
        let payload = rpc::encode(frame).map_err(|e| ClientError::Io(e.to_string()))?;
        let mut bytes = Vec::with_capacity(payload.len() + 8);
        encode_frame(&payload, CLIENT_FRAME_BYTES_MAX, &mut bytes)
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let mut connections = self.connections.lock().expect("client lock");
        // A cached connection may have been closed by a restarted server: retry once on a fresh one.
        for attempt in 0..2 {
            if connections.get(&server).is_some_and(|c| !is_open(c)) {
                connections.remove(&server);
            }
            let stream = match connections.entry(server) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let stream = TcpStream::connect_timeout(
                        &server,
                        Duration::from_millis(CONNECT_TIMEOUT_MS),
                    )
                    .map_err(|e| ClientError::Io(format!("connect to {server}: {e}")))?;
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                    e.insert(stream)
                }
            };
            match stream.write_all(&bytes) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    connections.remove(&server);
                    if attempt == 1 {
                        return Err(ClientError::Io(format!("write to {server}: {e}")));
                    }
                }
            }
        }
        Err(ClientError::Io(format!("write to {server} failed")))
    }

    /// Sends `body` to `server` and waits at most `timeout` for the reply with the same request id.
    pub fn call(
        &self,
        server: SocketAddr,
        body: Body,
        timeout: Duration,
    ) -> Result<Body, ClientError> {
        let request_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Frame {
            header: Header {
                datacenter: self.datacenter.clone(),
                sender: self.sender,
                request_id,
            },
            body,
        };
        self.send(server, &frame)?;
        let deadline = Instant::now() + timeout;
        let mut mailbox = self.shared.mailbox.lock().expect("mailbox lock");
        loop {
            if let Some(reply) = mailbox.replies.remove(&request_id) {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            mailbox = self
                .shared
                .arrived
                .wait_timeout(mailbox, left)
                .expect("mailbox lock")
                .0;
        }
    }

    /// The status of `server`.
    pub fn status(
        &self,
        server: SocketAddr,
        timeout: Duration,
    ) -> Result<StatusReply, ClientError> {
        let body = Body::Status {
            reply_to: self.reply_addr.to_string(),
        };
        match self.call(server, body, timeout)? {
            Body::StatusReply(status) => Ok(status),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Applies `command` at `server`: `Ok(Ok((index, result)))` once applied, `Ok(Err(reply))` when refused.
    pub fn apply(
        &self,
        server: SocketAddr,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<(u64, Vec<u8>), ErrorReply>, ClientError> {
        let body = Body::Apply(ApplyRequest {
            token: String::new(),
            reply_to: self.reply_addr.to_string(),
            command,
        });
        match self.call(server, body, timeout)? {
            Body::Applied { index, result } => Ok(Ok((index, result))),
            Body::Error(e) => Ok(Err(e)),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Reads through the state machine's `query` at `server`.
    pub fn read(
        &self,
        server: SocketAddr,
        consistency: Consistency,
        query: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<(u64, Vec<u8>), ErrorReply>, ClientError> {
        let body = Body::Read(ReadRequest {
            token: String::new(),
            reply_to: self.reply_addr.to_string(),
            consistency,
            query,
        });
        match self.call(server, body, timeout)? {
            Body::ReadResult { index, result } => Ok(Ok((index, result))),
            Body::Error(e) => Ok(Err(e)),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Applies `command` on whichever of `servers` leads, following leader hints, until `deadline`. Returns
    /// the index and result once applied; `Err` with the last failure otherwise. A reply of
    /// [`ErrorCode::Unknown`] or a timeout ends the attempt (the write may have happened): retrying could
    /// apply it twice.
    pub fn apply_to_leader(
        &self,
        servers: &[SocketAddr],
        command: Vec<u8>,
        call_timeout: Duration,
        deadline: Instant,
    ) -> Result<(u64, Vec<u8>), String> {
        let mut target = servers.first().copied().ok_or("no servers")?;
        let mut next = 0usize;
        loop {
            if Instant::now() >= deadline {
                return Err("no leader accepted the write in time".to_string());
            }
            match self.apply(target, command.clone(), call_timeout) {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(e)) if e.code == ErrorCode::Unknown => return Err(e.message),
                Ok(Err(e)) => {
                    let hinted = e
                        .leader
                        .as_ref()
                        .and_then(|h| h.address.parse::<SocketAddr>().ok())
                        .filter(|a| *a != target);
                    target = match hinted {
                        Some(addr) => addr,
                        None => {
                            next = (next + 1) % servers.len();
                            std::thread::sleep(Duration::from_millis(20));
                            servers[next]
                        }
                    };
                }
                Err(ClientError::Timeout) => return Err("timed out".to_string()),
                Err(_) => {
                    next = (next + 1) % servers.len();
                    target = servers[next];
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // Wake the accept thread so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.reply_addr, Duration::from_millis(100));
    }
}

/// True while the server has not closed `stream`. Servers never write to these connections, so anything
/// readable means the other end closed (e.g. the server restarted) and a write would be lost.
fn is_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(
        stream.peek(&mut [0u8; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    open && stream.set_nonblocking(false).is_ok()
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("rpc-client-read".to_string())
            .spawn(move || read_loop(stream, shared));
    }
}

fn read_loop(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut decoder = FrameDecoder::new(CLIENT_FRAME_BYTES_MAX);
    let mut buf = vec![0u8; 64 << 10];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        for frame in decoder.frames(&buf[..n]) {
            let Ok(payload) = frame else { return };
            let Ok(decoded) = rpc::decode(&payload) else {
                continue;
            };
            let mut mailbox = shared.mailbox.lock().expect("mailbox lock");
            mailbox
                .replies
                .insert(decoded.header.request_id, decoded.body);
            while mailbox.replies.len() > UNCLAIMED_REPLIES_MAX {
                mailbox.replies.pop_first();
            }
            shared.arrived.notify_all();
        }
    }
}
