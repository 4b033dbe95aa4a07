//! A DNS transport on glommio, for use inside one executor (one per shard): UDP datagrams and TCP streams
//! (RFC 1035 4.2.2: each message after a two-byte big-endian length) on the same address. It moves opaque
//! messages; what they mean is the handler's business.
//!
//! The handler sees each message with its transport and peer and either answers at once
//! ([`Handled::Reply`]), sends nothing ([`Handled::Drop`]), or answers later ([`Handled::Later`], e.g. after
//! asking an upstream server). Answers ready at once are sent from the receive loop without spawning a task;
//! later ones run as tasks, at most `pending_max` at a time per server (more are dropped, as a busy resolver
//! drops queries).
//!
//! UDP datagrams are received and answered in batches (`recvmmsg`/`sendmmsg`, see [`crate::udp_batch`]):
//! one system call each way per batch of up to [`UDP_BATCH_MESSAGES_MAX`] instead of one per datagram.
//!
//! Bounds: [`UDP_BATCH_MESSAGES_MAX`] receive buffers of 64 KiB for UDP; TCP connections at most `tcp_connections_max` (further ones
//! are closed at once), each with a 64 KiB message buffer, closed after `tcp_idle_timeout_ms` without a
//! message and when a write makes no progress for `write_timeout_ms`.
//!
//! [`exchange_udp`] is the client side, for forwarding a query to an upstream server.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use futures_lite::future::or;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use glommio::timer::sleep;
use glommio::Task;

use crate::listen::{
    stop_listening, Accepting, ConnectionCounts, ConnectionGuard, ListeningSocket, Stops,
};
use crate::net::IoFailure;
use crate::runtime::Shutdown;
use crate::udp_batch::{send_batch, RawPeer, RecvBatch};

/// The largest DNS message (the TCP length prefix is 16 bits; a UDP datagram's payload is smaller).
pub const MESSAGE_BYTES_MAX: usize = 65_535;
/// Default bound on TCP connections served at once by one server.
pub const TCP_CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Default idle bound on a TCP connection (no complete message for this long).
pub const TCP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default bound on one write making progress.
pub const WRITE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default bound on answers being worked on later ([`Handled::Later`]) at once.
pub const PENDING_MAX_DEFAULT: usize = 1_024;
/// UDP datagrams received (and answers sent) per system call at most; each has a [`MESSAGE_BYTES_MAX`]
/// receive buffer.
pub const UDP_BATCH_MESSAGES_MAX: usize = 16;
/// Backlog of the TCP listening socket.
const LISTEN_BACKLOG: i32 = 1024;
/// Pause after a failed receive or accept so the loop does not spin.
const ERROR_PAUSE_MS: u64 = 10;

/// How a message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsTransport {
    /// A UDP datagram.
    Udp,
    /// A TCP stream.
    Tcp,
}

/// A future answering a message later: the reply, or `None` to send nothing.
pub type LaterReply = Pin<Box<dyn Future<Output = Option<Vec<u8>>>>>;

/// What the handler does with one message.
pub enum Handled {
    /// Send these bytes back now.
    Reply(Vec<u8>),
    /// Send nothing.
    Drop,
    /// Send what this future yields, if anything.
    Later(LaterReply),
}

impl fmt::Debug for Handled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handled::Reply(bytes) => write!(f, "Reply({} bytes)", bytes.len()),
            Handled::Drop => write!(f, "Drop"),
            Handled::Later(_) => write!(f, "Later"),
        }
    }
}

/// What a [`DnsServer`] may be configured with.
#[derive(Clone, Debug)]
pub struct DnsServerOptions {
    /// TCP connections served at once (at least 1).
    pub tcp_connections_max: usize,
    /// Bound on a TCP connection without a complete message (at least 1).
    pub tcp_idle_timeout_ms: u64,
    /// Bound on one write making progress (at least 1).
    pub write_timeout_ms: u64,
    /// Answers worked on later at once (at least 1).
    pub pending_max: usize,
    /// Set `SO_REUSEPORT` so several shards can bind the same address.
    pub reuse_port: bool,
}

impl Default for DnsServerOptions {
    fn default() -> DnsServerOptions {
        DnsServerOptions {
            tcp_connections_max: TCP_CONNECTIONS_MAX_DEFAULT,
            tcp_idle_timeout_ms: TCP_IDLE_TIMEOUT_MS_DEFAULT,
            write_timeout_ms: WRITE_TIMEOUT_MS_DEFAULT,
            pending_max: PENDING_MAX_DEFAULT,
            reuse_port: false,
        }
    }
}

/// Why a server could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsServerError {
    /// An option is out of range.
    InvalidOptions(String),
    /// A socket could not be set up.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// The OS error.
        failure: IoFailure,
    },
}

impl fmt::Display for DnsServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsServerError::InvalidOptions(m) => write!(f, "invalid DNS server options: {m}"),
            DnsServerError::Bind {
                addr,
                protocol,
                failure,
            } => write!(
                f,
                "cannot listen for DNS ({protocol}) on {addr}: {failure:?} (is another process using \
                 the port, or is the address not local to this host?)"
            ),
        }
    }
}

impl std::error::Error for DnsServerError {}

/// Counters of a [`DnsServer`], totals since it was bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsServerStats {
    /// UDP datagrams received.
    pub udp_messages: u64,
    /// TCP messages received.
    pub tcp_messages: u64,
    /// Messages the handler dropped, or dropped because `pending_max` answers were pending.
    pub dropped: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// TCP connections open now.
    pub connections_active: usize,
    /// TCP connections closed at once because `tcp_connections_max` were open.
    pub connections_rejected: u64,
    /// Failed sends, receives and accepts.
    pub io_errors: u64,
}

#[derive(Debug, Default)]
struct Shared {
    stats: RefCell<DnsServerStats>,
    drained: RefCell<Option<Waker>>,
    pending: Cell<usize>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut DnsServerStats)) {
        f(&mut self.stats.borrow_mut());
    }
}

impl ConnectionCounts for Shared {
    fn counts<R>(&self, f: impl FnOnce(&mut u64, &mut usize) -> R) -> R {
        let mut stats = self.stats.borrow_mut();
        let stats = &mut *stats;
        f(
            &mut stats.connections_accepted,
            &mut stats.connections_active,
        )
    }

    fn drained(&self) -> &RefCell<Option<Waker>> {
        &self.drained
    }
}

/// A DNS server (UDP and TCP on one address) on one executor.
#[derive(Debug)]
pub struct DnsServer {
    accepting: Accepting,
    udp_task: Option<Task<()>>,
    local_addr: SocketAddr,
    shared: Rc<Shared>,
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 picks a free port for both, see [`DnsServer::local_addr`]) and
    /// serves every message through `handler` until `shutdown`, [`DnsServer::close`] or drop.
    ///
    /// Must be called on a glommio executor; the tasks run on it.
    pub fn bind<H>(
        addr: SocketAddr,
        options: DnsServerOptions,
        shutdown: &Shutdown,
        handler: H,
    ) -> Result<DnsServer, DnsServerError>
    where
        H: Fn(&[u8], DnsTransport, SocketAddr) -> Handled + 'static,
    {
        for (name, value) in [
            ("tcp_connections_max", options.tcp_connections_max as u64),
            ("tcp_idle_timeout_ms", options.tcp_idle_timeout_ms),
            ("write_timeout_ms", options.write_timeout_ms),
            ("pending_max", options.pending_max as u64),
        ] {
            if value == 0 {
                return Err(DnsServerError::InvalidOptions(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        let bind_error = |protocol, error: &io::Error| DnsServerError::Bind {
            addr,
            protocol,
            failure: IoFailure::from(error),
        };
        // TCP first: with port 0 it picks the port, and UDP takes the same one.
        let listening = ListeningSocket::bind(addr, options.reuse_port, LISTEN_BACKLOG)
            .map_err(|e| bind_error("tcp", &e))?;
        let local_addr = listening.local_addr;
        let udp = crate::sockets::bind_udp(local_addr, options.reuse_port)
            .map_err(|e| bind_error("udp", &e))?;
        let shared = Rc::new(Shared::default());
        let stops = Stops::new(shutdown);
        let handler = Rc::new(handler);
        let options = Rc::new(options);
        let udp_task = glommio::spawn_local(crate::listen::until_stopped(
            stops.clone(),
            udp_loop(
                Rc::new(udp),
                Rc::clone(&handler),
                Rc::clone(&shared),
                Rc::clone(&options),
            ),
        ));
        let fd = listening.fd;
        let accept = accept_loop(
            Rc::clone(&listening.socket),
            handler,
            Rc::clone(&shared),
            options,
            stops.clone(),
        );
        let stopped = stops.clone();
        let tcp_task = glommio::spawn_local(async move {
            let stop = async {
                stopped.wait().await;
                stop_listening(fd);
            };
            or(stop, accept).await
        });
        Ok(DnsServer {
            accepting: Accepting {
                listening,
                stops,
                task: Some(tcp_task),
            },
            udp_task: Some(udp_task),
            local_addr,
            shared,
        })
    }

    /// The bound address (UDP and TCP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's counters.
    pub fn stats(&self) -> DnsServerStats {
        *self.shared.stats.borrow()
    }

    /// Stops receiving, closes every TCP connection, and returns once they are closed.
    pub async fn close(mut self) {
        self.accepting.close(&*self.shared).await;
        if let Some(task) = self.udp_task.take() {
            task.await;
        }
    }
}

/// Receives datagrams in batches of up to [`UDP_BATCH_MESSAGES_MAX`] (`recvmmsg`), answers each, and sends
/// the answers ready at once in one batch (`sendmmsg`); waits on the executor when nothing is queued.
async fn udp_loop<H>(
    socket: Rc<UdpSocket>,
    handler: Rc<H>,
    shared: Rc<Shared>,
    options: Rc<DnsServerOptions>,
) where
    H: Fn(&[u8], DnsTransport, SocketAddr) -> Handled + 'static,
{
    let fd = socket.as_raw_fd();
    let mut batch = RecvBatch::new(UDP_BATCH_MESSAGES_MAX, MESSAGE_BYTES_MAX);
    let mut replies: Vec<(Vec<u8>, RawPeer)> = Vec::with_capacity(UDP_BATCH_MESSAGES_MAX);
    let mut probe = [0u8; 1];
    loop {
        let received = match batch.recv(fd) {
            Ok(received) => received,
            Err(_) => {
                shared.update(|s| s.io_errors += 1);
                sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        if received == 0 {
            // Nothing queued: wait until a datagram is (it stays queued for the next batch).
            if socket.peek_from(&mut probe).await.is_err() {
                shared.update(|s| s.io_errors += 1);
                sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
            }
            continue;
        }
        shared.update(|s| s.udp_messages += received as u64);
        for i in 0..received {
            let Some((packet, raw_peer)) = batch.get(i) else {
                break;
            };
            let Some(peer) = raw_peer.socket_addr() else {
                shared.update(|s| s.dropped += 1);
                continue;
            };
            match handler(packet, DnsTransport::Udp, peer) {
                Handled::Reply(reply) => replies.push((reply, *raw_peer)),
                Handled::Drop => shared.update(|s| s.dropped += 1),
                Handled::Later(later) => {
                    if shared.pending.get() >= options.pending_max {
                        shared.update(|s| s.dropped += 1);
                        continue;
                    }
                    shared.pending.set(shared.pending.get() + 1);
                    let socket = Rc::clone(&socket);
                    let shared = Rc::clone(&shared);
                    glommio::spawn_local(async move {
                        if let Some(reply) = later.await {
                            if socket.send_to(&reply, peer).await.is_err() {
                                shared.update(|s| s.io_errors += 1);
                            }
                        }
                        shared.pending.set(shared.pending.get() - 1);
                    })
                    .detach();
                }
            }
        }
        send_replies(&socket, &mut replies, &shared).await;
        glommio::yield_if_needed().await;
    }
}

/// Sends `replies` in batches; what the kernel does not take at once goes through the executor one by one.
/// Leaves `replies` empty.
async fn send_replies(socket: &UdpSocket, replies: &mut Vec<(Vec<u8>, RawPeer)>, shared: &Shared) {
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < replies.len() {
        match send_batch(fd, &replies[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(_) => {
                // The first of the rest failed: count it and go on with the next.
                shared.update(|s| s.io_errors += 1);
                sent += 1;
            }
        }
    }
    for (reply, raw_peer) in replies.drain(..).skip(sent) {
        let Some(peer) = raw_peer.socket_addr() else {
            continue;
        };
        if socket.send_to(&reply, peer).await.is_err() {
            shared.update(|s| s.io_errors += 1);
        }
    }
    replies.clear();
}

async fn accept_loop<H>(
    socket: Rc<TcpListener>,
    handler: Rc<H>,
    shared: Rc<Shared>,
    options: Rc<DnsServerOptions>,
    stops: Stops,
) where
    H: Fn(&[u8], DnsTransport, SocketAddr) -> Handled + 'static,
{
    loop {
        let accepted = socket.accept().await;
        if stops.is_triggered() {
            return;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(_) => {
                shared.update(|s| s.io_errors += 1);
                sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        if shared.stats.borrow().connections_active >= options.tcp_connections_max {
            shared.update(|s| s.connections_rejected += 1);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(options.write_timeout_ms)));
        let guard = ConnectionGuard::new(Rc::clone(&shared));
        let serve = serve_tcp(
            stream,
            Rc::clone(&handler),
            Rc::clone(&shared),
            Rc::clone(&options),
        );
        glommio::spawn_local(crate::listen::until_stopped(stops.clone(), async move {
            let _guard = guard;
            serve.await;
        }))
        .detach();
    }
}

/// Reads exactly `buffer.len()` bytes within `idle`; `false` on close, error or timeout.
async fn read_exact_within(stream: &mut TcpStream, buffer: &mut [u8], idle: Duration) -> bool {
    let read = async { stream.read_exact(buffer).await.is_ok() };
    let timer = async {
        sleep(idle).await;
        false
    };
    or(read, timer).await
}

async fn serve_tcp<H>(
    mut stream: TcpStream,
    handler: Rc<H>,
    shared: Rc<Shared>,
    options: Rc<DnsServerOptions>,
) where
    H: Fn(&[u8], DnsTransport, SocketAddr) -> Handled + 'static,
{
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let idle = Duration::from_millis(options.tcp_idle_timeout_ms);
    let mut buffer = vec![0u8; MESSAGE_BYTES_MAX];
    let mut out = Vec::with_capacity(512);
    loop {
        let mut prefix = [0u8; 2];
        if !read_exact_within(&mut stream, &mut prefix, idle).await {
            return;
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        if !read_exact_within(&mut stream, &mut buffer[..len], idle).await {
            return;
        }
        shared.update(|s| s.tcp_messages += 1);
        let reply = match handler(&buffer[..len], DnsTransport::Tcp, peer) {
            Handled::Reply(reply) => Some(reply),
            Handled::Drop => None,
            Handled::Later(later) => later.await,
        };
        let Some(reply) = reply.filter(|r| r.len() <= MESSAGE_BYTES_MAX) else {
            shared.update(|s| s.dropped += 1);
            // A TCP client waits for an answer that will not come: close instead.
            return;
        };
        out.clear();
        out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            shared.update(|s| s.io_errors += 1);
            return;
        }
    }
}

/// Sends `query` to `server` over UDP from an ephemeral port and returns the first datagram that `accept`s,
/// within `timeout_ms`. Errors: the socket, the send, or `TimedOut`.
pub async fn exchange_udp(
    server: SocketAddr,
    query: &[u8],
    timeout_ms: u64,
    accept: impl Fn(&[u8]) -> bool,
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = crate::sockets::bind_udp(local, false)?;
    let work = async {
        socket.send_to(query, server).await?;
        let mut buffer = vec![0u8; MESSAGE_BYTES_MAX];
        loop {
            let (len, from) = socket.recv_from(&mut buffer).await?;
            if from == server && accept(&buffer[..len]) {
                buffer.truncate(len);
                return Ok(buffer);
            }
        }
    };
    let timer = async {
        sleep(Duration::from_millis(timeout_ms)).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer from {server} within {timeout_ms} ms"),
        ))
    };
    or(work, timer).await
}
