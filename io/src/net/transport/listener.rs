//! The listening half of the transport: accepts connections and delivers their frames in order.

use super::*;

/// Backlog of the listening socket (what std's `TcpListener::bind` uses).
const LISTEN_BACKLOG: i32 = 128;

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

impl ConnectionCounts for ListenerShared {
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

/// Accepts connections and delivers the frames they carry (see the [module docs](super)).
#[derive(Debug)]
pub struct Listener {
    /// The listening socket and accept task, stopped when the handle is closed or dropped.
    accepting: Accepting,
    shared: Rc<ListenerShared>,
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
        // Like std's `TcpListener::bind` (SO_REUSEADDR, backlog 128) and unlike glommio's, without
        // SO_REUSEPORT: a port another socket listens on is an `AddrInUse` error, not a silent
        // second listener.
        let listening = ListeningSocket::bind(addr, false, LISTEN_BACKLOG).map_err(|error| {
            TransportError::Bind {
                addr,
                failure: IoFailure::from(&error),
            }
        })?;
        let (sender, receiver) = local_channel::new_bounded(options.inbound_queue_frames_max);
        let shared = Rc::new(ListenerShared::default());
        let stops = Stops::new(shutdown);
        let accept = accept_loop(
            Rc::clone(&listening.socket),
            Rc::new(sender),
            Rc::clone(&shared),
            options.clone(),
            stops.clone(),
        );
        let task = spawn(options.task_queue, until_stopped(stops.clone(), accept))?;
        Ok((
            Listener {
                accepting: Accepting {
                    listening,
                    stops,
                    task: Some(task),
                },
                shared,
            },
            receiver,
        ))
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.accepting.listening.local_addr
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
        self.accepting.close(&*self.shared).await;
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
