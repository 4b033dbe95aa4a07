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
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::{Task, TaskQueueHandle};

use crate::listen::{
    self, until_stopped, Accepting, ConnectionCounts, ConnectionGuard, ListeningSocket, Stops,
};

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

fn spawn(
    task_queue: Option<TaskQueueHandle>,
    future: impl Future<Output = ()> + 'static,
) -> Result<Task<()>, TransportError> {
    listen::spawn(task_queue, future).map_err(TransportError::Spawn)
}

fn check_frame_bytes_max(frame_bytes_max: usize) -> Result<(), TransportError> {
    if frame_bytes_max == 0 || frame_bytes_max > FRAME_BYTES_MAX_LIMIT {
        return Err(TransportError::InvalidOptions(format!(
            "frame_bytes_max must be between 1 and {FRAME_BYTES_MAX_LIMIT}, not {frame_bytes_max}"
        )));
    }
    Ok(())
}

mod listener;
mod peer;

pub use listener::*;
pub use peer::*;
