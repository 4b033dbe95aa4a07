//! Framed TCP transport between servers, on glommio, for use inside one executor.
//!
//! Two halves, each owning its glommio tasks (the types are `!Send`; create them on the executor
//! that uses them):
//!
//! - [`Listener`] binds an address, accepts connections and reads [frames](super::frame) from
//!   each one. Frames are delivered in per-connection order as [`InboundFrame`]s through a bounded
//!   glommio local channel. When that channel is full the connection's reader waits (and stops
//!   reading the socket, so TCP flow control slows the sender down): frames are never dropped for
//!   lack of room. A connection that sends a bad frame (CRC mismatch, length over
//!   `frame_bytes_max`, stream cut inside a frame) is closed and counted in [`ListenerStats`];
//!   [`Listener::last_error`] says why.
//! - [`Peer`] sends frames to one address. [`Peer::try_send`] (or a cloneable [`PeerSender`])
//!   queues a frame in a bounded send queue and returns at once; a full queue is an error and the
//!   caller decides what to do. A writer task connects lazily (when the first frame is queued),
//!   writes every queued frame it can into one write (pipelining; nothing waits for replies), and
//!   after a failure reconnects with exponential backoff (`reconnect_backoff_ms_min` doubling up
//!   to `reconnect_backoff_ms_max`, back to the minimum after a successful write). Frames queued
//!   while disconnected wait in the queue. Frames in a write that failed are dropped and counted
//!   in [`PeerStats::frames_dropped`]: the protocol above (Raft) retransmits. A successful write
//!   only means the kernel accepted the bytes, not that the peer read them.
//!
//! Connections are one-directional: a listener never writes to an accepted connection, and a
//! peer never reads frames from its connection (it only watches it for the remote end closing,
//! so that an idle connection to a restarted node is replaced before the next frame is written
//! into it). Two servers that talk to each other therefore use two connections, each side
//! dialling the other for its own sends. That keeps each connection's state machine trivial and
//! avoids deciding which of two simultaneous dials wins. It also means the
//! [`InboundFrame::peer_addr`] of a frame is the sender's ephemeral source address, not its
//! listening address: identify the sender from the payload (e.g. a node id in the message).
//!
//! Everything stops when the [`Shutdown`] handed in is triggered, when [`Listener::close`] /
//! [`Peer::close`] is called (these also wait for the tasks to end and their sockets to be
//! closed), or when the handle is dropped. Dropping a [`Listener`] stops listening at once
//! (`shutdown(2)` on the listening socket); its tasks end and close their sockets at the
//! executor's next turn.
//!
//! Unlike glommio's own `TcpListener::bind`, [`Listener::bind`] does not set `SO_REUSEPORT`: an
//! address another socket already listens on is an `AddrInUse` error rather than a second
//! listener silently sharing the port. (`SO_REUSEADDR` is set, so a restarted node can bind again
//! while old connections linger in `TIME_WAIT`.)

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_lite::future::or;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::{Task, TaskQueueHandle};

use super::frame::{
    encode_header, FrameDecoder, FrameError, FRAME_BYTES_MAX_DEFAULT, FRAME_BYTES_MAX_LIMIT,
    FRAME_HEADER_BYTES,
};
use crate::runtime::Shutdown;

/// Default bound on frames waiting in a listener's inbound channel.
pub const INBOUND_QUEUE_FRAMES_MAX_DEFAULT: usize = 1024;

/// Default bound on connections a listener serves at once.
pub const CONNECTIONS_MAX_DEFAULT: usize = 256;

/// Default size of each connection's read buffer.
pub const READ_BUFFER_BYTES_DEFAULT: usize = 64 << 10;

/// Largest read buffer a listener accepts in its options.
pub const READ_BUFFER_BYTES_MAX: usize = 16 << 20;

/// Default bound on frames waiting in a peer's send queue.
pub const SEND_QUEUE_FRAMES_MAX_DEFAULT: usize = 1024;

/// Default bound on payload bytes waiting in a peer's send queue.
pub const SEND_QUEUE_BYTES_MAX_DEFAULT: usize = 128 << 20;

/// Default bound on the bytes gathered into one write; a frame larger than this is written on
/// its own without being copied.
pub const WRITE_BATCH_BYTES_MAX_DEFAULT: usize = 256 << 10;

/// Default bound on establishing a connection.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 1_000;

/// Default bound on one write making progress; a peer that stops reading for longer loses the
/// connection (and the frames in that write).
pub const WRITE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Default first reconnect delay.
pub const RECONNECT_BACKOFF_MS_MIN_DEFAULT: u64 = 10;

/// Default largest reconnect delay.
pub const RECONNECT_BACKOFF_MS_MAX_DEFAULT: u64 = 1_000;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 10;

/// Scratch space for watching an idle outbound connection for the remote end closing.
const WATCH_BUFFER_BYTES: usize = 64;

/// An IO error reduced to data that can be cloned and stored: its kind and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoFailure {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The error's message.
    pub message: String,
}

impl From<&io::Error> for IoFailure {
    fn from(error: &io::Error) -> IoFailure {
        IoFailure {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl From<glommio::GlommioError<()>> for IoFailure {
    fn from(error: glommio::GlommioError<()>) -> IoFailure {
        IoFailure::from(&io::Error::from(error))
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a listener or peer could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The options contradict each other or exceed a limit.
    InvalidOptions(String),
    /// The listening socket could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        failure: IoFailure,
    },
    /// glommio refused to spawn a task (e.g. an unknown task queue).
    Spawn(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::InvalidOptions(message) => {
                write!(f, "invalid transport options: {message}")
            }
            TransportError::Bind { addr, failure } => write!(
                f,
                "cannot listen on {addr}: {failure} (is the address local to this host?)"
            ),
            TransportError::Spawn(message) => {
                write!(f, "cannot spawn a transport task: {message}")
            }
        }
    }
}

impl std::error::Error for TransportError {}

/// The shutdown handed in by the owner plus the handle's own stop signal.
#[derive(Clone, Debug)]
struct Stops {
    global: Shutdown,
    local: Shutdown,
}

impl Stops {
    fn new(global: &Shutdown) -> Stops {
        Stops {
            global: global.clone(),
            local: Shutdown::new(),
        }
    }

    fn is_triggered(&self) -> bool {
        self.global.is_triggered() || self.local.is_triggered()
    }

    async fn wait(&self) {
        or(self.global.wait(), self.local.wait()).await
    }
}

/// Runs `work` until it finishes or a stop is triggered, whichever comes first.
async fn until_stopped(stops: Stops, work: impl Future<Output = ()>) {
    or(stops.wait(), work).await
}

fn spawn(
    task_queue: Option<TaskQueueHandle>,
    future: impl Future<Output = ()> + 'static,
) -> Result<Task<()>, TransportError> {
    match task_queue {
        Some(queue) => glommio::spawn_local_into(future, queue)
            .map_err(|e| TransportError::Spawn(e.to_string())),
        None => Ok(glommio::spawn_local(future)),
    }
}

fn check_frame_bytes_max(frame_bytes_max: usize) -> Result<(), TransportError> {
    if frame_bytes_max == 0 || frame_bytes_max > FRAME_BYTES_MAX_LIMIT {
        return Err(TransportError::InvalidOptions(format!(
            "frame_bytes_max must be between 1 and {FRAME_BYTES_MAX_LIMIT}, not {frame_bytes_max}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------------------------

/// What a [`Listener`] may be configured with.
///
/// Memory is bounded by `inbound_queue_frames_max * frame_bytes_max` for queued frames plus, per
/// connection, `read_buffer_bytes` and one partial frame (which grows only as its bytes arrive,
/// up to `frame_bytes_max`), for at most `connections_max` connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerOptions {
    /// Longest payload accepted; a longer frame closes its connection. 1..=u32::MAX.
    pub frame_bytes_max: usize,
    /// Capacity of the inbound channel in frames (at least 1). When it is full, readers wait.
    pub inbound_queue_frames_max: usize,
    /// Connections served at once (at least 1); further connections are accepted and closed
    /// at once, and counted in [`ListenerStats::connections_rejected`].
    pub connections_max: usize,
    /// Read buffer per connection, 1..=[`READ_BUFFER_BYTES_MAX`].
    pub read_buffer_bytes: usize,
    /// The glommio task queue for the listener's tasks; `None` for the current one.
    pub task_queue: Option<TaskQueueHandle>,
}

impl Default for ListenerOptions {
    fn default() -> ListenerOptions {
        ListenerOptions {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            inbound_queue_frames_max: INBOUND_QUEUE_FRAMES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            read_buffer_bytes: READ_BUFFER_BYTES_DEFAULT,
            task_queue: None,
        }
    }
}

impl ListenerOptions {
    /// Checks every limit; [`Listener::bind`] calls this.
    pub fn validate(&self) -> Result<(), TransportError> {
        check_frame_bytes_max(self.frame_bytes_max)?;
        if self.inbound_queue_frames_max == 0 {
            return Err(TransportError::InvalidOptions(
                "inbound_queue_frames_max must be at least 1".to_string(),
            ));
        }
        if self.connections_max == 0 {
            return Err(TransportError::InvalidOptions(
                "connections_max must be at least 1".to_string(),
            ));
        }
        if self.read_buffer_bytes == 0 || self.read_buffer_bytes > READ_BUFFER_BYTES_MAX {
            return Err(TransportError::InvalidOptions(format!(
                "read_buffer_bytes must be between 1 and {READ_BUFFER_BYTES_MAX}, not {}",
                self.read_buffer_bytes
            )));
        }
        Ok(())
    }
}

/// One frame received by a [`Listener`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundFrame {
    /// The remote address of the connection it came on (the sender's ephemeral source address,
    /// not its listening address).
    pub peer_addr: SocketAddr,
    /// The frame's payload.
    pub payload: Vec<u8>,
}

/// Counters of a [`Listener`]; totals since it was bound unless said otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections being served now.
    pub connections_active: usize,
    /// Connections closed at once because `connections_max` were being served.
    pub connections_rejected: u64,
    /// Frames delivered to the inbound channel.
    pub frames_received: u64,
    /// Bytes read from connections (headers included).
    pub bytes_received: u64,
    /// Connections closed because of a bad frame (CRC, length, or cut inside a frame).
    pub frame_errors: u64,
    /// Connections ended by a read error (e.g. reset by the peer).
    pub io_errors: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
}

/// Why a listener closed a connection or failed to accept one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    /// The connection sent a bad frame and was closed.
    Frame {
        /// The connection's remote address.
        peer_addr: SocketAddr,
        /// What was wrong.
        error: FrameError,
    },
    /// Reading the connection failed; it was closed.
    Io {
        /// The connection's remote address.
        peer_addr: SocketAddr,
        /// The OS error.
        failure: IoFailure,
    },
    /// A connection arrived while `connections_max` were being served and was closed.
    Rejected {
        /// The connection's remote address.
        peer_addr: SocketAddr,
        /// The limit in force.
        connections_max: usize,
    },
    /// `accept` failed.
    Accept(IoFailure),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Frame { peer_addr, error } => {
                write!(f, "closed the connection from {peer_addr}: {error}")
            }
            ConnectionError::Io { peer_addr, failure } => {
                write!(
                    f,
                    "reading the connection from {peer_addr} failed: {failure}"
                )
            }
            ConnectionError::Rejected {
                peer_addr,
                connections_max,
            } => write!(
                f,
                "refused the connection from {peer_addr}: already serving connections_max \
                 ({connections_max}) connections"
            ),
            ConnectionError::Accept(failure) => {
                write!(f, "accepting a connection failed: {failure}")
            }
        }
    }
}

impl std::error::Error for ConnectionError {}

#[derive(Debug, Default)]
struct ListenerShared {
    stats: RefCell<ListenerStats>,
    last_error: RefCell<Option<ConnectionError>>,
    /// Woken when the last connection task ends (for [`Listener::close`]).
    drained: RefCell<Option<Waker>>,
}

impl ListenerShared {
    fn update(&self, f: impl FnOnce(&mut ListenerStats)) {
        f(&mut self.stats.borrow_mut());
    }

    fn record(&self, error: ConnectionError) {
        *self.last_error.borrow_mut() = Some(error);
    }
}

/// Counts a connection task as active for exactly as long as it exists, even when it is
/// cancelled.
struct ConnectionGuard {
    shared: Rc<ListenerShared>,
}

impl ConnectionGuard {
    fn new(shared: Rc<ListenerShared>) -> ConnectionGuard {
        shared.update(|stats| {
            stats.connections_accepted += 1;
            stats.connections_active += 1;
        });
        ConnectionGuard { shared }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let remaining = {
            let mut stats = self.shared.stats.borrow_mut();
            stats.connections_active -= 1;
            stats.connections_active
        };
        if remaining == 0 {
            let waker = self.shared.drained.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Accepts connections and delivers the frames they carry (see the [module docs](self)).
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    /// The listening socket's descriptor, valid while `socket` is alive.
    fd: RawFd,
    /// Keeps the listening socket (and so `fd`) open while the handle exists.
    _socket: Rc<TcpListener>,
    shared: Rc<ListenerShared>,
    stops: Stops,
    task: Option<Task<()>>,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; see [`Listener::local_addr`]) and starts
    /// accepting. Returns the listener and the receiving end of its bounded inbound channel,
    /// which yields `None` once the listener has stopped and every connection task has ended.
    ///
    /// Must be called on a glommio executor; the tasks run on it (in `options.task_queue`).
    pub fn bind(
        addr: SocketAddr,
        options: ListenerOptions,
        shutdown: &Shutdown,
    ) -> Result<(Listener, LocalReceiver<InboundFrame>), TransportError> {
        options.validate()?;
        let bind_error = |error: io::Error| TransportError::Bind {
            addr,
            failure: IoFailure::from(&error),
        };
        // std binds with SO_REUSEADDR but, unlike glommio's `TcpListener::bind`, without
        // SO_REUSEPORT: a port another socket listens on is an `AddrInUse` error, not a silent
        // second listener.
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        let local_addr = std_listener.local_addr().map_err(bind_error)?;
        let fd = std_listener.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket that nothing else owns; glommio takes it
        // over and closes it when the listener is dropped.
        let socket = Rc::new(unsafe { TcpListener::from_raw_fd(fd) });
        let (sender, receiver) = local_channel::new_bounded(options.inbound_queue_frames_max);
        let shared = Rc::new(ListenerShared::default());
        let stops = Stops::new(shutdown);
        let accept = accept_loop(
            Rc::clone(&socket),
            Rc::new(sender),
            Rc::clone(&shared),
            options.clone(),
            stops.clone(),
        );
        let task = spawn(options.task_queue, until_stopped(stops.clone(), accept))?;
        Ok((
            Listener {
                local_addr,
                fd,
                _socket: socket,
                shared,
                stops,
                task: Some(task),
            },
            receiver,
        ))
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The listener's counters.
    pub fn stats(&self) -> ListenerStats {
        *self.shared.stats.borrow()
    }

    /// The most recent connection error, if any.
    pub fn last_error(&self) -> Option<ConnectionError> {
        self.shared.last_error.borrow().clone()
    }

    /// Stops accepting, closes every connection, and returns once the listening socket and all
    /// connections are closed.
    pub async fn close(mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.await;
        }
        let shared = Rc::clone(&self.shared);
        poll_fn(|cx| {
            if shared.stats.borrow().connections_active == 0 {
                return Poll::Ready(());
            }
            *shared.drained.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    fn begin_stop(&self) {
        self.stops.local.trigger();
        // Stop listening now rather than when the accept task next runs: the kernel takes the
        // socket out of the listening set (new connections are refused, or go to another socket
        // bound to the same port) and a pending accept fails. The result does not matter (the
        // socket may already be shut down).
        // SAFETY: `self.fd` is valid: `self._socket` owns it and is alive. shutdown(2) touches no
        // memory.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.begin_stop();
        // Dropping the task handle cancels the accept task; connection tasks end when they next
        // run, woken by the stop signal.
        self.task.take();
    }
}

async fn accept_loop(
    socket: Rc<TcpListener>,
    sender: Rc<LocalSender<InboundFrame>>,
    shared: Rc<ListenerShared>,
    options: ListenerOptions,
    stops: Stops,
) {
    loop {
        let accepted = socket.accept().await;
        if stops.is_triggered() {
            return;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                shared.update(|stats| stats.accept_errors += 1);
                shared.record(ConnectionError::Accept(error.into()));
                glommio::timer::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        let peer_addr = match stream.peer_addr() {
            Ok(addr) => addr,
            Err(error) => {
                // The connection was reset before we could look at it.
                shared.update(|stats| stats.accept_errors += 1);
                shared.record(ConnectionError::Accept(error.into()));
                continue;
            }
        };
        if shared.stats.borrow().connections_active >= options.connections_max {
            shared.update(|stats| stats.connections_rejected += 1);
            shared.record(ConnectionError::Rejected {
                peer_addr,
                connections_max: options.connections_max,
            });
            continue; // dropping `stream` closes it
        }
        let guard = ConnectionGuard::new(Rc::clone(&shared));
        let reader = read_connection(
            stream,
            peer_addr,
            Rc::clone(&sender),
            Rc::clone(&shared),
            options.frame_bytes_max,
            options.read_buffer_bytes,
        );
        let task = until_stopped(stops.clone(), async move {
            let _guard = guard;
            reader.await;
        });
        match spawn(options.task_queue, task) {
            Ok(task) => {
                task.detach();
            }
            Err(error) => shared.record(ConnectionError::Io {
                peer_addr,
                failure: IoFailure {
                    kind: io::ErrorKind::Other,
                    message: error.to_string(),
                },
            }),
        }
    }
}

/// Reads frames from one connection until it ends, a bad frame arrives, or the inbound channel
/// is closed. Waiting for room in the channel stops the reading (backpressure).
async fn read_connection(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    sender: Rc<LocalSender<InboundFrame>>,
    shared: Rc<ListenerShared>,
    frame_bytes_max: usize,
    read_buffer_bytes: usize,
) {
    let mut decoder = FrameDecoder::new(frame_bytes_max);
    let mut buffer = vec![0u8; read_buffer_bytes];
    loop {
        let read_bytes = match stream.read(&mut buffer).await {
            Ok(read_bytes) => read_bytes,
            Err(error) => {
                shared.update(|stats| stats.io_errors += 1);
                shared.record(ConnectionError::Io {
                    peer_addr,
                    failure: IoFailure::from(&error),
                });
                return;
            }
        };
        if read_bytes == 0 {
            if let Err(error) = decoder.finish() {
                shared.update(|stats| stats.frame_errors += 1);
                shared.record(ConnectionError::Frame { peer_addr, error });
            }
            return;
        }
        shared.update(|stats| stats.bytes_received += read_bytes as u64);
        for frame in decoder.frames(&buffer[..read_bytes]) {
            match frame {
                Ok(payload) => {
                    let frame = InboundFrame { peer_addr, payload };
                    if sender.send(frame).await.is_err() {
                        return; // the owner dropped the receiver
                    }
                    shared.update(|stats| stats.frames_received += 1);
                }
                Err(error) => {
                    shared.update(|stats| stats.frame_errors += 1);
                    shared.record(ConnectionError::Frame { peer_addr, error });
                    return; // dropping `stream` closes the connection
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Peer
// ---------------------------------------------------------------------------------------------

/// What a [`Peer`] may be configured with.
///
/// Memory is bounded by `send_queue_bytes_max` (or one frame, if larger) for queued payloads plus
/// `write_batch_bytes_max` for the write buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOptions {
    /// Frames the send queue holds (at least 1).
    pub send_queue_frames_max: usize,
    /// Payload bytes the send queue holds (at least 1); a single frame is always accepted into an
    /// empty queue, so one frame of up to `frame_bytes_max` always fits.
    pub send_queue_bytes_max: usize,
    /// Longest payload accepted by [`Peer::try_send`]; use the receivers' limit. 1..=u32::MAX.
    pub frame_bytes_max: usize,
    /// Bytes gathered into one write (at least [`FRAME_HEADER_BYTES`]); larger frames are
    /// written on their own.
    pub write_batch_bytes_max: usize,
    /// Bound on establishing a connection (at least 1).
    pub connect_timeout_ms: u64,
    /// Bound on a write making progress (at least 1); when exceeded the connection is dropped.
    pub write_timeout_ms: u64,
    /// First reconnect delay after a failure (at least 1).
    pub reconnect_backoff_ms_min: u64,
    /// Largest reconnect delay (at least `reconnect_backoff_ms_min`).
    pub reconnect_backoff_ms_max: u64,
    /// The glommio task queue for the writer task; `None` for the current one.
    pub task_queue: Option<TaskQueueHandle>,
}

impl Default for PeerOptions {
    fn default() -> PeerOptions {
        PeerOptions {
            send_queue_frames_max: SEND_QUEUE_FRAMES_MAX_DEFAULT,
            send_queue_bytes_max: SEND_QUEUE_BYTES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            write_batch_bytes_max: WRITE_BATCH_BYTES_MAX_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            write_timeout_ms: WRITE_TIMEOUT_MS_DEFAULT,
            reconnect_backoff_ms_min: RECONNECT_BACKOFF_MS_MIN_DEFAULT,
            reconnect_backoff_ms_max: RECONNECT_BACKOFF_MS_MAX_DEFAULT,
            task_queue: None,
        }
    }
}

impl PeerOptions {
    /// Checks every limit; [`Peer::start`] calls this.
    pub fn validate(&self) -> Result<(), TransportError> {
        check_frame_bytes_max(self.frame_bytes_max)?;
        let at_least = |name: &str, value: u64, min: u64| {
            if value < min {
                Err(TransportError::InvalidOptions(format!(
                    "{name} must be at least {min}, not {value}"
                )))
            } else {
                Ok(())
            }
        };
        at_least(
            "send_queue_frames_max",
            self.send_queue_frames_max as u64,
            1,
        )?;
        at_least("send_queue_bytes_max", self.send_queue_bytes_max as u64, 1)?;
        at_least(
            "write_batch_bytes_max",
            self.write_batch_bytes_max as u64,
            FRAME_HEADER_BYTES as u64,
        )?;
        at_least("connect_timeout_ms", self.connect_timeout_ms, 1)?;
        at_least("write_timeout_ms", self.write_timeout_ms, 1)?;
        at_least("reconnect_backoff_ms_min", self.reconnect_backoff_ms_min, 1)?;
        at_least(
            "reconnect_backoff_ms_max",
            self.reconnect_backoff_ms_max,
            self.reconnect_backoff_ms_min,
        )?;
        Ok(())
    }
}

/// Counters and state of a [`Peer`]; totals since it started unless said otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Frames in the send queue now.
    pub frames_queued: usize,
    /// Payload bytes in the send queue now.
    pub bytes_queued: usize,
    /// Frames written to the socket (accepted by the kernel; not proof of delivery).
    pub frames_sent: u64,
    /// Bytes written to the socket (headers included).
    pub bytes_sent: u64,
    /// Successful writes; fewer than `frames_sent` when frames were batched.
    pub writes: u64,
    /// Frames lost in writes that failed.
    pub frames_dropped: u64,
    /// Frames still queued when the peer was closed or shut down.
    pub frames_discarded: u64,
    /// Frames refused by `try_send` (queue full, too large, or closed).
    pub frames_rejected: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed or timed out.
    pub connect_failures: u64,
    /// Established connections lost (a write failed or the remote end closed).
    pub disconnects: u64,
    /// Whether a connection is established now.
    pub connected: bool,
}

/// Why a peer's connection failed (see [`Peer::last_error`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerError {
    /// Connecting failed or timed out.
    Connect(IoFailure),
    /// A write failed or timed out; its frames were dropped.
    Write(IoFailure),
    /// The remote end closed (or reset) the connection while it was idle.
    RemoteClosed(Option<IoFailure>),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Connect(failure) => write!(f, "connect failed: {failure}"),
            PeerError::Write(failure) => {
                write!(f, "write failed (the frames in it were dropped): {failure}")
            }
            PeerError::RemoteClosed(None) => write!(f, "the remote end closed the connection"),
            PeerError::RemoteClosed(Some(failure)) => {
                write!(f, "the connection was closed: {failure}")
            }
        }
    }
}

impl std::error::Error for PeerError {}

/// Why [`Peer::try_send`] refused a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrySendErrorKind {
    /// The send queue is at `send_queue_frames_max` or `send_queue_bytes_max`.
    QueueFull {
        /// Frames queued.
        frames_queued: usize,
        /// Payload bytes queued.
        bytes_queued: usize,
    },
    /// The payload is longer than `frame_bytes_max`.
    FrameTooLarge {
        /// The payload's length.
        len_bytes: usize,
        /// The limit.
        frame_bytes_max: usize,
    },
    /// The peer was closed, dropped, or shut down.
    Closed,
}

/// A frame [`Peer::try_send`] refused, with the reason; the payload is handed back.
#[derive(Clone, PartialEq, Eq)]
pub struct TrySendError {
    kind: TrySendErrorKind,
    payload: Vec<u8>,
}

impl TrySendError {
    /// Why the frame was refused.
    pub fn kind(&self) -> &TrySendErrorKind {
        &self.kind
    }

    /// The refused payload, to retry or drop.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

impl fmt::Debug for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrySendError")
            .field("kind", &self.kind)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TrySendErrorKind::QueueFull {
                frames_queued,
                bytes_queued,
            } => write!(
                f,
                "the send queue is full ({frames_queued} frames, {bytes_queued} bytes queued)"
            ),
            TrySendErrorKind::FrameTooLarge {
                len_bytes,
                frame_bytes_max,
            } => write!(
                f,
                "a frame of {len_bytes} bytes exceeds frame_bytes_max ({frame_bytes_max} bytes)"
            ),
            TrySendErrorKind::Closed => write!(f, "the peer is closed"),
        }
    }
}

impl std::error::Error for TrySendError {}

#[derive(Debug)]
struct PeerShared {
    addr: SocketAddr,
    options: PeerOptions,
    stops: Stops,
    state: RefCell<PeerState>,
}

#[derive(Debug, Default)]
struct PeerState {
    queue: VecDeque<Vec<u8>>,
    /// The writer task, when it waits for frames.
    waker: Option<Waker>,
    closed: bool,
    stats: PeerStats,
    last_error: Option<PeerError>,
}

impl PeerShared {
    fn try_send(&self, payload: Vec<u8>) -> Result<(), TrySendError> {
        let waker = {
            let mut state = self.state.borrow_mut();
            let refused = if state.closed || self.stops.is_triggered() {
                Some(TrySendErrorKind::Closed)
            } else if payload.len() > self.options.frame_bytes_max {
                Some(TrySendErrorKind::FrameTooLarge {
                    len_bytes: payload.len(),
                    frame_bytes_max: self.options.frame_bytes_max,
                })
            } else if state.queue.len() >= self.options.send_queue_frames_max
                || (!state.queue.is_empty()
                    && state.stats.bytes_queued + payload.len() > self.options.send_queue_bytes_max)
            {
                Some(TrySendErrorKind::QueueFull {
                    frames_queued: state.queue.len(),
                    bytes_queued: state.stats.bytes_queued,
                })
            } else {
                None
            };
            if let Some(kind) = refused {
                state.stats.frames_rejected += 1;
                return Err(TrySendError { kind, payload });
            }
            state.stats.bytes_queued += payload.len();
            state.queue.push_back(payload);
            state.stats.frames_queued = state.queue.len();
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    fn stats(&self) -> PeerStats {
        self.state.borrow().stats
    }

    fn is_closed(&self) -> bool {
        self.state.borrow().closed || self.stops.is_triggered()
    }

    /// Marks the peer closed and discards the queued frames.
    fn close(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        state.stats.connected = false;
        state.stats.frames_discarded += state.queue.len() as u64;
        state.queue.clear();
        state.stats.frames_queued = 0;
        state.stats.bytes_queued = 0;
        state.waker = None;
    }

    fn has_frames(&self) -> bool {
        !self.state.borrow().queue.is_empty()
    }

    /// Waits until a frame is queued, registering the writer's waker.
    async fn frames_queued(&self) {
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.queue.is_empty() {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Moves queued frames into `batch` (header + payload each) up to `write_batch_bytes_max`.
    /// A frame too large for a batch is returned on its own instead (with `batch` left empty),
    /// to be written without copying. Returns the frame count and that large frame, if any.
    fn fill_batch(&self, batch: &mut Vec<u8>) -> (u64, Option<Vec<u8>>) {
        batch.clear();
        let batch_bytes_max = self.options.write_batch_bytes_max;
        let mut state = self.state.borrow_mut();
        let mut frames = 0;
        let mut large = None;
        while let Some(front) = state.queue.front() {
            let wire_bytes = FRAME_HEADER_BYTES + front.len();
            if frames > 0 && batch.len() + wire_bytes > batch_bytes_max {
                break;
            }
            let Some(payload) = state.queue.pop_front() else {
                break;
            };
            state.stats.bytes_queued -= payload.len();
            frames += 1;
            if wire_bytes > batch_bytes_max {
                large = Some(payload);
                break;
            }
            match encode_header(&payload, self.options.frame_bytes_max) {
                Ok(header) => {
                    batch.extend_from_slice(&header);
                    batch.extend_from_slice(&payload);
                }
                // Cannot happen: try_send checked the length. Count it as dropped.
                Err(_) => {
                    frames -= 1;
                    state.stats.frames_dropped += 1;
                }
            }
        }
        state.stats.frames_queued = state.queue.len();
        (frames, large)
    }

    fn update(&self, f: impl FnOnce(&mut PeerState)) {
        f(&mut self.state.borrow_mut());
    }
}

/// Marks the peer closed when the writer task ends, however it ends.
struct WriterGuard {
    shared: Rc<PeerShared>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// An outbound connection to one address with a bounded send queue (see the
/// [module docs](self)). Dropping it stops the writer task and discards queued frames.
#[derive(Debug)]
pub struct Peer {
    shared: Rc<PeerShared>,
    task: Option<Task<()>>,
}

impl Peer {
    /// Starts the writer task for `addr`. Nothing connects until a frame is queued.
    ///
    /// Must be called on a glommio executor; the task runs on it (in `options.task_queue`).
    pub fn start(
        addr: SocketAddr,
        options: PeerOptions,
        shutdown: &Shutdown,
    ) -> Result<Peer, TransportError> {
        options.validate()?;
        let stops = Stops::new(shutdown);
        let task_queue = options.task_queue;
        let shared = Rc::new(PeerShared {
            addr,
            options,
            stops: stops.clone(),
            state: RefCell::new(PeerState::default()),
        });
        let guard = WriterGuard {
            shared: Rc::clone(&shared),
        };
        let writer = write_loop(Rc::clone(&shared));
        let task = spawn(
            task_queue,
            until_stopped(stops, async move {
                let _guard = guard;
                writer.await;
            }),
        )?;
        Ok(Peer {
            shared,
            task: Some(task),
        })
    }

    /// The address this peer sends to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Queues `payload` to be sent as one frame. Never waits: a full queue, an over-limit
    /// payload or a closed peer is an error carrying the payload back.
    pub fn try_send(&self, payload: Vec<u8>) -> Result<(), TrySendError> {
        self.shared.try_send(payload)
    }

    /// A cloneable handle that queues frames for this peer; it reports
    /// [`TrySendErrorKind::Closed`] once the peer is closed or dropped.
    pub fn sender(&self) -> PeerSender {
        PeerSender {
            shared: Rc::clone(&self.shared),
        }
    }

    /// The peer's counters and connection state.
    pub fn stats(&self) -> PeerStats {
        self.shared.stats()
    }

    /// Why the connection last failed, if it ever did.
    pub fn last_error(&self) -> Option<PeerError> {
        self.shared.state.borrow().last_error.clone()
    }

    /// True once the peer was closed or its shutdown triggered.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Stops the writer task, discarding queued frames, and returns once its connection is
    /// closed.
    pub async fn close(mut self) {
        self.shared.stops.local.trigger();
        self.shared.close();
        if let Some(task) = self.task.take() {
            task.await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shared.stops.local.trigger();
        self.shared.close();
        // Dropping the handle cancels the task; its socket closes at the executor's next turn.
        self.task.take();
    }
}

/// A cloneable handle for queueing frames to a [`Peer`].
#[derive(Clone, Debug)]
pub struct PeerSender {
    shared: Rc<PeerShared>,
}

impl PeerSender {
    /// The address the peer sends to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Same as [`Peer::try_send`].
    pub fn try_send(&self, payload: Vec<u8>) -> Result<(), TrySendError> {
        self.shared.try_send(payload)
    }

    /// Same as [`Peer::stats`].
    pub fn stats(&self) -> PeerStats {
        self.shared.stats()
    }

    /// True once the peer was closed, dropped, or its shutdown triggered.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

/// What ended the wait of an idle connection.
enum Idle {
    /// Frames are queued.
    Frames,
    /// The remote end closed the connection (or sent data, which it never should).
    RemoteClosed(Option<IoFailure>),
}

/// Waits for queued frames while watching the idle connection for the remote end closing. The
/// remote end is checked first so that frames are not written into a connection already known
/// to be dead.
async fn idle(shared: &PeerShared, stream: &mut TcpStream, scratch: &mut [u8]) -> Idle {
    poll_fn(|cx| {
        match Pin::new(&mut *stream).poll_read(cx, scratch) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Idle::RemoteClosed(None)),
            Poll::Ready(Ok(_)) => {
                return Poll::Ready(Idle::RemoteClosed(Some(IoFailure {
                    kind: io::ErrorKind::InvalidData,
                    message: "the remote end sent data on a send-only connection".to_string(),
                })))
            }
            Poll::Ready(Err(error)) => {
                return Poll::Ready(Idle::RemoteClosed(Some(IoFailure::from(&error))))
            }
            Poll::Pending => {}
        }
        let mut state = shared.state.borrow_mut();
        if state.queue.is_empty() {
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(Idle::Frames)
        }
    })
    .await
}

async fn write_frames(
    stream: &mut TcpStream,
    batch: &[u8],
    large: Option<&[u8]>,
    frame_bytes_max: usize,
) -> io::Result<u64> {
    if !batch.is_empty() {
        stream.write_all(batch).await?;
    }
    let mut written = batch.len() as u64;
    if let Some(payload) = large {
        let header = encode_header(payload, frame_bytes_max)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        stream.write_all(&header).await?;
        stream.write_all(payload).await?;
        written += (FRAME_HEADER_BYTES + payload.len()) as u64;
    }
    Ok(written)
}

/// The writer task: connect when frames are queued, write them in batches, reconnect with
/// backoff after failures. Runs until stopped (see [`until_stopped`]).
async fn write_loop(shared: Rc<PeerShared>) {
    let options = shared.options.clone();
    let backoff_min = Duration::from_millis(options.reconnect_backoff_ms_min);
    let backoff_max = Duration::from_millis(options.reconnect_backoff_ms_max);
    let connect_timeout = Duration::from_millis(options.connect_timeout_ms);
    let write_timeout = Duration::from_millis(options.write_timeout_ms);
    let mut backoff = backoff_min;
    let mut batch = Vec::new();
    let mut scratch = [0u8; WATCH_BUFFER_BYTES];
    loop {
        if !shared.has_frames() {
            shared.frames_queued().await;
        }
        let mut stream = match TcpStream::connect_timeout(shared.addr, connect_timeout).await {
            Ok(stream) => stream,
            Err(error) => {
                shared.update(|state| {
                    state.stats.connect_failures += 1;
                    state.last_error = Some(PeerError::Connect(error.into()));
                });
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(backoff_max);
                continue;
            }
        };
        // Frames are small and latency matters; batching happens in `fill_batch`. Failing to set
        // either option only costs latency or a slower failure detection.
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(write_timeout));
        shared.update(|state| {
            state.stats.connects += 1;
            state.stats.connected = true;
        });
        let failure = loop {
            if let Idle::RemoteClosed(failure) = idle(&shared, &mut stream, &mut scratch).await {
                break PeerError::RemoteClosed(failure);
            }
            if batch.capacity() == 0 {
                // Once, on the first write: the batch never grows past this.
                batch.reserve_exact(options.write_batch_bytes_max);
            }
            let (frames, large) = shared.fill_batch(&mut batch);
            let result = write_frames(
                &mut stream,
                &batch,
                large.as_deref(),
                options.frame_bytes_max,
            )
            .await;
            match result {
                Ok(written_bytes) => {
                    shared.update(|state| {
                        state.stats.frames_sent += frames;
                        state.stats.bytes_sent += written_bytes;
                        state.stats.writes += 1;
                    });
                    backoff = backoff_min;
                }
                Err(error) => {
                    shared.update(|state| state.stats.frames_dropped += frames);
                    break PeerError::Write(IoFailure::from(&error));
                }
            }
            glommio::yield_if_needed().await;
        };
        shared.update(|state| {
            state.stats.connected = false;
            state.stats.disconnects += 1;
            state.last_error = Some(failure);
        });
        drop(stream);
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(backoff_max);
    }
}
