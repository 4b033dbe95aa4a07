//! The sending half of the transport: one address, a bounded queue, a reconnecting writer.

use super::*;

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
/// [module docs](super)). Dropping it stops the writer task and discards queued frames.
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
