//! The HTTP/1.1 server loop on glommio, for use inside one executor (one per shard).
//!
//! [`HttpServer::bind`] listens and accepts connections, at most `connections_max` at once
//! (further ones get a canned `503` and are closed). Each connection is a glommio task that
//! reads into one reusable buffer, feeds a [`RequestParser`], and calls the async handler for
//! each complete request. Requests on one connection are handled one after the other, so
//! pipelined requests are answered in order; responses that are ready at once are gathered
//! into one write. A handler that waits (a blocking query may wait for minutes) only holds up
//! its own connection: every connection is its own task.
//!
//! While a handler waits, the connection is watched: when the client closes it (or resets it)
//! the handler's future is dropped, as Go's server cancels the request context, so abandoned
//! blocking queries do not pile up. Bytes of pipelined requests that arrive meanwhile are kept
//! (up to the read buffer's size).
//!
//! Timeouts: `idle_timeout_ms` closes a connection with no request in progress (measured from
//! the end of the last response, or from the accept); `request_timeout_ms` bounds receiving a
//! whole request from its first byte (answered with `408`); `handler_timeout_ms` bounds a
//! handler (answered with `503`); `write_timeout_ms` bounds each write making progress.
//!
//! Errors: a request the parser refuses is answered with the error's status and a short
//! plain-text message (`Connection: close`), then the connection is closed. Every close the
//! server decides on is graceful: it shuts down the sending side, then reads and drops what the
//! client still sends for at most `close_linger_ms` (so the client sees the response rather
//! than a reset).
//!
//! Everything stops when the [`Shutdown`] handed in is triggered, when [`HttpServer::close`]
//! is called (which also waits for every connection to be closed) or when the handle is
//! dropped: the listening socket stops listening at once, and connections close at the
//! executor's next turn, requests in flight included.
//!
//! By default the listening socket is exclusive: an address another socket listens on is an
//! `AddrInUse` error (glommio's own `bind` would silently share it). With `reuse_port` set,
//! `SO_REUSEPORT` lets every shard bind the same address and the kernel spreads connections
//! over them; guard against a second process with a lock file.

use std::cell::RefCell;
use std::fmt;
use std::future::{pending, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_lite::future::{or, poll_once};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::LocalReceiver;
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use glommio::{Task, TaskQueueHandle};

use super::parser::{ParseEvent, Parsed, ParserLimits, RequestParser, CONTINUE_RESPONSE};
use super::request::{Method, Request, Version};
use super::response::{encode_chunk, encode_head, BodyStream, Response, ResponseFraming};
use crate::listen::{
    self, stop_listening, until_stopped, Accepting, ConnectionCounts, ConnectionGuard,
    ListeningSocket, Stops,
};
use crate::net::IoFailure;
use crate::runtime::Shutdown;

/// Default bound on connections served at once by one server (one shard).
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// Default size of each connection's read buffer.
pub const READ_BUFFER_BYTES_DEFAULT: usize = 16 << 10;

/// Largest read buffer accepted in the options.
pub const READ_BUFFER_BYTES_MAX: usize = 16 << 20;

/// Default bound on an idle keep-alive connection; longer than the 90 s after which Go's HTTP
/// client drops idle connections, so clients normally close first.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 120_000;

/// Default bound on receiving one request (head and body) from its first byte.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Default bound on one write making progress.
pub const WRITE_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Default bound on one handler call: above Consul's longest blocking query (10 min plus
/// wait/16 jitter).
pub const HANDLER_TIMEOUT_MS_DEFAULT: u64 = 15 * 60_000;

/// Default bound on draining a connection the server closes.
pub const CLOSE_LINGER_MS_DEFAULT: u64 = 500;

/// Bound on the bytes read and dropped while lingering on a close.
const CLOSE_LINGER_BYTES_MAX: usize = 256 << 10;

/// Backlog of the listening socket.
const LISTEN_BACKLOG: i32 = 4096;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 10;

/// Response bodies up to this size are copied into the output buffer (one write for head and
/// body, and for several pipelined responses); larger ones are written on their own.
const WRITE_COALESCE_BYTES_MAX: usize = 16 << 10;

/// Output buffer capacity kept between responses; a larger one is released.
const OUT_BUFFER_BYTES_KEEP: usize = 64 << 10;

/// What a connection over `connections_max` gets before it is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 34\r\n\
Connection: close\r\n\r\n\
server busy: too many connections\n";

/// What an [`HttpServer`] may be configured with.
///
/// Memory per connection is bounded by `read_buffer_bytes`, one partial head (at most
/// `header_bytes_max`), one request body (at most its body limit), and the response being
/// written, for at most `connections_max` connections.
#[derive(Clone, Debug)]
pub struct HttpServerOptions {
    /// The request parser's limits (head size, header count, body size).
    pub limits: ParserLimits,
    /// Connections served at once (at least 1).
    pub connections_max: usize,
    /// Read buffer per connection, 1..=[`READ_BUFFER_BYTES_MAX`].
    pub read_buffer_bytes: usize,
    /// Bound on a connection with no request in progress (at least 1).
    pub idle_timeout_ms: u64,
    /// Bound on receiving one whole request from its first byte (at least 1).
    pub request_timeout_ms: u64,
    /// Bound on one write making progress (at least 1).
    pub write_timeout_ms: u64,
    /// Bound on one handler call (at least 1).
    pub handler_timeout_ms: u64,
    /// Bound on draining a connection the server closes (0 closes at once).
    pub close_linger_ms: u64,
    /// Set `SO_REUSEPORT` so several shards can listen on the same address.
    pub reuse_port: bool,
    /// The glommio task queue for the server's tasks; `None` for the current one.
    pub task_queue: Option<TaskQueueHandle>,
}

impl Default for HttpServerOptions {
    fn default() -> HttpServerOptions {
        HttpServerOptions {
            limits: ParserLimits::default(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            read_buffer_bytes: READ_BUFFER_BYTES_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            write_timeout_ms: WRITE_TIMEOUT_MS_DEFAULT,
            handler_timeout_ms: HANDLER_TIMEOUT_MS_DEFAULT,
            close_linger_ms: CLOSE_LINGER_MS_DEFAULT,
            reuse_port: false,
            task_queue: None,
        }
    }
}

impl HttpServerOptions {
    /// Checks every limit; [`HttpServer::bind`] calls this.
    pub fn validate(&self) -> Result<(), HttpServerError> {
        self.limits
            .validate()
            .map_err(HttpServerError::InvalidOptions)?;
        if self.connections_max == 0 {
            return Err(HttpServerError::InvalidOptions(
                "connections_max must be at least 1".to_string(),
            ));
        }
        if self.read_buffer_bytes == 0 || self.read_buffer_bytes > READ_BUFFER_BYTES_MAX {
            return Err(HttpServerError::InvalidOptions(format!(
                "read_buffer_bytes must be between 1 and {READ_BUFFER_BYTES_MAX}, not {}",
                self.read_buffer_bytes
            )));
        }
        for (name, value) in [
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("handler_timeout_ms", self.handler_timeout_ms),
        ] {
            if value == 0 {
                return Err(HttpServerError::InvalidOptions(format!(
                    "{name} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// Why a server could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpServerError {
    /// The options contradict each other or exceed a limit.
    InvalidOptions(String),
    /// The listening socket could not be set up.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        failure: IoFailure,
    },
    /// glommio refused to spawn a task (e.g. an unknown task queue).
    Spawn(String),
}

impl fmt::Display for HttpServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpServerError::InvalidOptions(message) => {
                write!(f, "invalid HTTP server options: {message}")
            }
            HttpServerError::Bind { addr, failure } => write!(
                f,
                "cannot listen for HTTP on {addr}: {failure} (is another process using the \
                 port, or is the address not local to this host?)"
            ),
            HttpServerError::Spawn(message) => {
                write!(f, "cannot spawn an HTTP server task: {message}")
            }
        }
    }
}

impl std::error::Error for HttpServerError {}

/// Counters of an [`HttpServer`]; totals since it was bound unless said otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpServerStats {
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections being served now.
    pub connections_active: usize,
    /// Connections refused (503) because `connections_max` were being served.
    pub connections_rejected: u64,
    /// Requests answered by the handler.
    pub requests: u64,
    /// Requests refused by the parser (answered with 4xx/5xx and closed).
    pub parse_errors: u64,
    /// Idle connections closed by `idle_timeout_ms`.
    pub idle_timeouts: u64,
    /// Connections closed by `request_timeout_ms` (answered with 408).
    pub request_timeouts: u64,
    /// Handler calls stopped by `handler_timeout_ms` (answered with 503).
    pub handler_timeouts: u64,
    /// Handler calls dropped because the client closed the connection.
    pub handlers_cancelled: u64,
    /// Connections ended by a read or write error (including write timeouts).
    pub io_errors: u64,
    /// Failed `accept` calls.
    pub accept_errors: u64,
}

#[derive(Debug, Default)]
struct ServerShared {
    stats: RefCell<HttpServerStats>,
    /// Woken when the last connection task ends (for [`HttpServer::close`]).
    drained: RefCell<Option<Waker>>,
}

impl ServerShared {
    fn update(&self, f: impl FnOnce(&mut HttpServerStats)) {
        f(&mut self.stats.borrow_mut());
    }
}

impl ConnectionCounts for ServerShared {
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

fn spawn(
    task_queue: Option<TaskQueueHandle>,
    future: impl Future<Output = ()> + 'static,
) -> Result<Task<()>, HttpServerError> {
    listen::spawn(task_queue, future).map_err(HttpServerError::Spawn)
}

/// An HTTP/1.1 server on one executor (see the [module docs](self)).
#[derive(Debug)]
pub struct HttpServer {
    /// The listening socket and accept task, stopped when the handle is closed or dropped.
    accepting: Accepting,
    shared: Rc<ServerShared>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port; see [`HttpServer::local_addr`]) and starts
    /// serving: every complete request is passed to `handler`, and the response its future
    /// yields is written back.
    ///
    /// Must be called on a glommio executor; the tasks run on it (in `options.task_queue`).
    pub fn bind<H, F>(
        addr: SocketAddr,
        options: HttpServerOptions,
        shutdown: &Shutdown,
        handler: H,
    ) -> Result<HttpServer, HttpServerError>
    where
        H: Fn(Request) -> F + 'static,
        F: Future<Output = Response> + 'static,
    {
        options.validate()?;
        let listening =
            ListeningSocket::bind(addr, options.reuse_port, LISTEN_BACKLOG).map_err(|error| {
                HttpServerError::Bind {
                    addr,
                    failure: IoFailure::from(&error),
                }
            })?;
        let fd = listening.fd;
        let shared = Rc::new(ServerShared::default());
        let stops = Stops::new(shutdown);
        let accept = accept_loop(
            Rc::clone(&listening.socket),
            Rc::new(handler),
            Rc::clone(&shared),
            Rc::new(options.clone()),
            stops.clone(),
        );
        let stopped = stops.clone();
        let task = spawn(options.task_queue, async move {
            let stop = async {
                stopped.wait().await;
                // On a shutdown the handle may live on: stop listening now, so that new
                // connections are refused instead of waiting in the backlog.
                stop_listening(fd);
            };
            // `accept` owns a clone of the socket, so `fd` stays valid while `stop` runs.
            or(stop, accept).await
        })?;
        Ok(HttpServer {
            accepting: Accepting {
                listening,
                stops,
                task: Some(task),
            },
            shared,
        })
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.accepting.listening.local_addr
    }

    /// The server's counters.
    pub fn stats(&self) -> HttpServerStats {
        *self.shared.stats.borrow()
    }

    /// Stops accepting, closes every connection (requests in flight included), and returns
    /// once the listening socket and all connections are closed.
    pub async fn close(mut self) {
        self.accepting.close(&*self.shared).await;
    }
}

async fn accept_loop<H, F>(
    socket: Rc<TcpListener>,
    handler: Rc<H>,
    shared: Rc<ServerShared>,
    options: Rc<HttpServerOptions>,
    stops: Stops,
) where
    H: Fn(Request) -> F + 'static,
    F: Future<Output = Response> + 'static,
{
    loop {
        let accepted = socket.accept().await;
        if stops.is_triggered() {
            return;
        }
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(_) => {
                shared.update(|stats| stats.accept_errors += 1);
                sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        if shared.stats.borrow().connections_active >= options.connections_max {
            shared.update(|stats| stats.connections_rejected += 1);
            // One non-blocking attempt (a new connection's send buffer is empty); dropping the
            // stream closes it.
            let _ = poll_once(stream.write(BUSY_RESPONSE)).await;
            continue;
        }
        // Responses are written whole; Nagle would only delay them. Failing to set either
        // option costs latency or a slower failure detection, nothing else.
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(options.write_timeout_ms)));
        let guard = ConnectionGuard::new(Rc::clone(&shared));
        let connection = Connection {
            stream,
            shared: Rc::clone(&shared),
            buffer: vec![0; options.read_buffer_bytes],
            start: 0,
            end: 0,
            out: Vec::new(),
        };
        let serve = serve_connection(
            connection,
            Rc::clone(&handler),
            Rc::clone(&options),
            stops.clone(),
        );
        let task = until_stopped(stops.clone(), async move {
            let _guard = guard;
            serve.await;
        });
        match spawn(options.task_queue, task) {
            Ok(task) => {
                task.detach();
            }
            Err(_) => shared.update(|stats| stats.accept_errors += 1),
        }
    }
}

/// What a read with a deadline gave.
enum Read {
    Bytes(usize),
    Closed,
    Failed,
    TimedOut,
}

/// How a handler call ended.
enum Outcome {
    Response(Response),
    ClientGone,
    TimedOut,
    WriteFailed,
}

/// One connection's socket and buffers.
struct Connection {
    stream: TcpStream,
    shared: Rc<ServerShared>,
    /// Input; `buffer[start..end]` is not parsed yet.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// Responses waiting to be written.
    out: Vec<u8>,
}

impl Connection {
    /// Moves the unparsed input to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads more input after `end`, until `deadline`.
    async fn read_until(&mut self, deadline: Instant) -> Read {
        self.compact();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Read::TimedOut;
        }
        let Connection {
            stream,
            buffer,
            end,
            ..
        } = self;
        let Some(free) = buffer.get_mut(*end..).filter(|free| !free.is_empty()) else {
            // Cannot happen: the parser consumes all input before asking for more.
            return Read::Failed;
        };
        let read = async {
            match stream.read(free).await {
                Ok(0) => Read::Closed,
                Ok(read_bytes) => Read::Bytes(read_bytes),
                Err(_) => Read::Failed,
            }
        };
        let timer = async {
            sleep(remaining).await;
            Read::TimedOut
        };
        let result = or(read, timer).await;
        if let Read::Bytes(read_bytes) = result {
            self.end += read_bytes;
        }
        result
    }

    /// Writes the buffered responses.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        if self.out.capacity() > OUT_BUFFER_BYTES_KEEP {
            self.out = Vec::new();
        }
        result
    }

    /// Writes a streamed body chunk by chunk until its sender is dropped (then the last chunk), the server
    /// stops, or the client goes away (it closed the connection, or a write failed).
    async fn stream_body(&mut self, stream: LocalReceiver<Vec<u8>>, stops: &Stops) {
        if self.flush().await.is_err() {
            return;
        }
        loop {
            let next = {
                let Connection {
                    stream: socket,
                    buffer,
                    end,
                    ..
                } = self;
                let chunk = async {
                    let stopped = async {
                        stops.wait().await;
                        None
                    };
                    or(stream.recv(), stopped)
                        .await
                        .map_or(Next::End, Next::Data)
                };
                let gone = async {
                    watch_client(socket, buffer, end).await;
                    Next::Gone
                };
                or(chunk, gone).await
            };
            match next {
                Next::Data(data) if data.is_empty() => {}
                Next::Data(data) => {
                    encode_chunk(&data, &mut self.out);
                    if self.flush().await.is_err() {
                        return;
                    }
                }
                Next::End => {
                    encode_chunk(&[], &mut self.out);
                    let _ = self.flush().await;
                    return;
                }
                Next::Gone => return,
            }
        }
    }

    /// Queues a response; large bodies are written at once, without copying.
    async fn push_response(
        &mut self,
        response: &Response,
        framing: ResponseFraming,
    ) -> io::Result<()> {
        let body_bytes = encode_head(response, framing, &mut self.out);
        let body = &response.body[..body_bytes];
        if body.len() <= WRITE_COALESCE_BYTES_MAX {
            self.out.extend_from_slice(body);
            if self.out.len() > WRITE_COALESCE_BYTES_MAX {
                self.flush().await?;
            }
            return Ok(());
        }
        self.flush().await?;
        self.stream.write_all(body).await
    }

    /// Calls the handler. A response ready at once is returned without any IO; otherwise the
    /// buffered responses are written first, and the handler is raced against the client
    /// closing the connection and against `timeout`.
    async fn call<H, F>(&mut self, handler: &H, request: Request, timeout: Duration) -> Outcome
    where
        H: Fn(Request) -> F,
        F: Future<Output = Response>,
    {
        let mut response = pin!(handler(request));
        if let Some(response) = poll_once(response.as_mut()).await {
            return Outcome::Response(response);
        }
        if self.flush().await.is_err() {
            return Outcome::WriteFailed;
        }
        self.compact();
        let Connection {
            stream,
            buffer,
            end,
            ..
        } = self;
        let watch = async {
            watch_client(stream, buffer, end).await;
            Outcome::ClientGone
        };
        let timer = async {
            sleep(timeout).await;
            Outcome::TimedOut
        };
        or(
            async { Outcome::Response(response.await) },
            or(watch, timer),
        )
        .await
    }

    /// Writes `response` (closing) and closes the connection gracefully.
    async fn fail(mut self, response: Response, linger: Duration) {
        let framing = ResponseFraming {
            version: Version::Http11,
            head_request: false,
            close: true,
        };
        if self.push_response(&response, framing).await.is_err() || self.flush().await.is_err() {
            self.shared.update(|stats| stats.io_errors += 1);
            return;
        }
        self.close(linger).await;
    }

    /// Shuts down the sending side, then reads and drops input until the client closes, for at
    /// most `linger` (so that the client reads the last response instead of a reset caused by
    /// unread input).
    async fn close(mut self, linger: Duration) {
        if linger.is_zero()
            || self
                .stream
                .shutdown(std::net::Shutdown::Write)
                .await
                .is_err()
        {
            return;
        }
        let deadline = Instant::now() + linger;
        let mut drained_bytes = 0;
        while drained_bytes < CLOSE_LINGER_BYTES_MAX {
            self.start = 0;
            self.end = 0;
            match self.read_until(deadline).await {
                Read::Bytes(read_bytes) => drained_bytes += read_bytes,
                Read::Closed | Read::Failed | Read::TimedOut => return,
            }
        }
    }
}

/// Reads (and keeps) pipelined input while a handler runs; returns when the client closed or
/// reset the connection. Once the buffer is full it only waits.
/// What a streamed body waits for next.
enum Next {
    /// A chunk to write (an empty one is skipped).
    Data(Vec<u8>),
    /// The sender is done, or the server stops: the last chunk.
    End,
    /// The client closed the connection.
    Gone,
}

async fn watch_client(stream: &mut TcpStream, buffer: &mut [u8], end: &mut usize) {
    loop {
        let Some(free) = buffer.get_mut(*end..).filter(|free| !free.is_empty()) else {
            return pending().await;
        };
        match stream.read(free).await {
            Ok(0) | Err(_) => return,
            Ok(read_bytes) => *end += read_bytes,
        }
    }
}

/// Serves one connection until it closes, fails, times out or the server stops.
async fn serve_connection<H, F>(
    mut connection: Connection,
    handler: Rc<H>,
    options: Rc<HttpServerOptions>,
    stops: Stops,
) where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let shared = Rc::clone(&connection.shared);
    let idle_timeout = Duration::from_millis(options.idle_timeout_ms);
    let request_timeout = Duration::from_millis(options.request_timeout_ms);
    let handler_timeout = Duration::from_millis(options.handler_timeout_ms);
    let linger = Duration::from_millis(options.close_linger_ms);
    let mut parser = RequestParser::new(options.limits.clone());
    let mut idle_deadline = Instant::now() + idle_timeout;
    let mut request_deadline: Option<Instant> = None;
    loop {
        let parsed = parser.parse(&connection.buffer[connection.start..connection.end]);
        let Parsed {
            consumed_bytes,
            event,
        } = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                shared.update(|stats| stats.parse_errors += 1);
                connection.fail(error.to_response(), linger).await;
                return;
            }
        };
        connection.start += consumed_bytes;
        if parser.is_idle() {
            request_deadline = None;
        } else if request_deadline.is_none() {
            request_deadline = Some(Instant::now() + request_timeout);
        }
        match event {
            ParseEvent::NeedMore => {
                if connection.flush().await.is_err() {
                    shared.update(|stats| stats.io_errors += 1);
                    return;
                }
                let deadline = request_deadline.unwrap_or(idle_deadline);
                match connection.read_until(deadline).await {
                    Read::Bytes(_) => {}
                    Read::Closed => return,
                    Read::Failed => {
                        shared.update(|stats| stats.io_errors += 1);
                        return;
                    }
                    Read::TimedOut if request_deadline.is_none() => {
                        shared.update(|stats| stats.idle_timeouts += 1);
                        return;
                    }
                    Read::TimedOut => {
                        shared.update(|stats| stats.request_timeouts += 1);
                        let response = Response::text(
                            408,
                            format!(
                                "request timeout: the request was not received within {} ms\n",
                                options.request_timeout_ms
                            ),
                        );
                        connection.fail(response, linger).await;
                        return;
                    }
                }
            }
            ParseEvent::SendContinue => {
                connection.out.extend_from_slice(CONTINUE_RESPONSE);
                if connection.flush().await.is_err() {
                    shared.update(|stats| stats.io_errors += 1);
                    return;
                }
            }
            ParseEvent::Request(request) => {
                let mut framing = ResponseFraming {
                    version: request.version,
                    head_request: request.method == Method::Head,
                    close: !request.keep_alive() || stops.is_triggered(),
                };
                let response = match connection.call(&*handler, request, handler_timeout).await {
                    Outcome::Response(response) => response,
                    Outcome::ClientGone => {
                        shared.update(|stats| stats.handlers_cancelled += 1);
                        return;
                    }
                    Outcome::WriteFailed => {
                        shared.update(|stats| stats.io_errors += 1);
                        return;
                    }
                    Outcome::TimedOut => {
                        shared.update(|stats| stats.handler_timeouts += 1);
                        let response = Response::text(
                            503,
                            format!(
                                "the request handler did not finish within {} ms\n",
                                options.handler_timeout_ms
                            ),
                        );
                        connection.fail(response, linger).await;
                        return;
                    }
                };
                shared.update(|stats| stats.requests += 1);
                // A streamed body ends with the connection.
                framing.close |= response.stream.is_some();
                if connection.push_response(&response, framing).await.is_err() {
                    shared.update(|stats| stats.io_errors += 1);
                    return;
                }
                if let Some(stream) = response.stream.as_ref().and_then(BodyStream::take) {
                    if !framing.head_request {
                        connection.stream_body(stream, &stops).await;
                    }
                    connection.close(linger).await;
                    return;
                }
                if framing.close {
                    if connection.flush().await.is_err() {
                        shared.update(|stats| stats.io_errors += 1);
                        return;
                    }
                    connection.close(linger).await;
                    return;
                }
                idle_deadline = Instant::now() + idle_timeout;
                glommio::yield_if_needed().await;
            }
        }
    }
}
