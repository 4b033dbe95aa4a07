//! Integration tests of the HTTP/1.1 server over loopback, each on its own small glommio
//! executor with the client in the same executor. Every wait has a deadline, so a broken server
//! fails a test instead of hanging it.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cairn_io::http::{
    BodyStream, HttpServer, HttpServerError, HttpServerOptions, HttpServerStats, ParserLimits,
    Request, Response,
};
use cairn_io::runtime::Shutdown;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::{sleep, timeout};

mod common;

use common::{loopback_any_port, run, wait_until, WAIT_TIMEOUT_MS};

/// What the test handler saw; shared between the handler and the test.
#[derive(Default)]
struct Seen {
    /// Handler calls started.
    calls: Cell<u64>,
    /// `/forever` handler futures dropped before finishing.
    dropped: Cell<u64>,
}

struct DropCounter(Rc<Seen>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

/// The test routes:
/// - `/echo`: `METHOD path?query` on the first line, then the body;
/// - `/slow?ms=N`: waits N ms, then answers `slow N`;
/// - `/forever`: never answers (counts its future being dropped);
/// - `/stream`: a chunked body of three lines produced over time;
/// - anything else: `ok`.
async fn route(seen: Rc<Seen>, request: Request) -> Response {
    seen.calls.set(seen.calls.get() + 1);
    match request.path.as_str() {
        "/echo" => {
            let mut body =
                format!("{} {}?{}\n", request.method, request.path, request.query).into_bytes();
            body.extend_from_slice(&request.body);
            Response::text(200, "")
                .with_body(body)
                .with_header("X-Body-Bytes", request.body.len().to_string())
        }
        "/slow" => {
            let ms: u64 = request
                .query
                .strip_prefix("ms=")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            sleep(Duration::from_millis(ms)).await;
            Response::text(200, format!("slow {ms}"))
        }
        "/forever" => {
            let _counter = DropCounter(Rc::clone(&seen));
            std::future::pending::<Response>().await
        }
        "/stream" => {
            // Three chunks a few ms apart, then the end.
            let (tx, rx) = glommio::channels::local_channel::new_bounded(4);
            glommio::spawn_local(async move {
                for i in 0..3 {
                    sleep(Duration::from_millis(5)).await;
                    if tx.send(format!("line {i}\n").into_bytes()).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
            let mut response = Response::text(200, "");
            response.stream = Some(BodyStream::new(rx));
            response
        }
        _ => Response::text(200, "ok"),
    }
}

fn start(options: HttpServerOptions, shutdown: &Shutdown) -> (HttpServer, Rc<Seen>) {
    let seen = Rc::new(Seen::default());
    let handler_seen = Rc::clone(&seen);
    let server = HttpServer::bind(loopback_any_port(), options, shutdown, move |request| {
        route(Rc::clone(&handler_seen), request)
    })
    .expect("bind the server");
    (server, seen)
}

/// One parsed response.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }
}

/// A raw HTTP client over one connection, with a buffer for bytes read past a response.
struct Client {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(addr, Duration::from_millis(WAIT_TIMEOUT_MS))
            .await
            .expect("connect");
        Client {
            stream,
            input: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads once, within `wait_ms`: `Some(0)` at EOF, `None` when nothing arrived in time.
    async fn read_within(&mut self, wait_ms: u64) -> Option<io::Result<usize>> {
        let mut chunk = [0u8; 16 << 10];
        let stream = &mut self.stream;
        let read = timeout(Duration::from_millis(wait_ms), async {
            Ok(stream.read(&mut chunk).await)
        })
        .await
        .ok()?;
        if let Ok(read_bytes) = read {
            self.input.extend_from_slice(&chunk[..read_bytes]);
        }
        Some(read)
    }

    async fn read_more(&mut self) -> usize {
        match self.read_within(WAIT_TIMEOUT_MS).await {
            Some(Ok(read_bytes)) => read_bytes,
            Some(Err(error)) => panic!("read failed: {error}"),
            None => panic!("no response within {WAIT_TIMEOUT_MS} ms"),
        }
    }

    /// Reads one response; its body is `Content-Length` bytes unless `no_body` (HEAD, 1xx).
    async fn reply(&mut self, no_body: bool) -> Reply {
        loop {
            if let Some(reply) = self.take_reply(no_body) {
                return reply;
            }
            if self.read_more().await == 0 {
                panic!(
                    "the connection closed before a complete response; got {:?}",
                    String::from_utf8_lossy(&self.input)
                );
            }
        }
    }

    async fn response(&mut self) -> Reply {
        self.reply(false).await
    }

    fn take_reply(&mut self, no_body: bool) -> Option<Reply> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        let head_bytes = match parsed.parse(&self.input).expect("a valid response") {
            httparse::Status::Complete(head_bytes) => head_bytes,
            httparse::Status::Partial => return None,
        };
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|field| {
                (
                    field.name.to_string(),
                    String::from_utf8_lossy(field.value).into_owned(),
                )
            })
            .collect();
        let status = parsed.code.expect("status");
        let minor = parsed.version.expect("version");
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.parse().expect("numeric Content-Length"))
            .unwrap_or(0);
        let body_bytes = if no_body { 0 } else { length };
        if self.input.len() < head_bytes + body_bytes {
            return None;
        }
        let body = self.input[head_bytes..head_bytes + body_bytes].to_vec();
        self.input.drain(..head_bytes + body_bytes);
        Some(Reply {
            status,
            minor,
            headers,
            body,
        })
    }

    /// Asserts the server closes the connection (a clean EOF) with no further bytes.
    async fn expect_closed(&mut self) {
        loop {
            match self.read_within(WAIT_TIMEOUT_MS).await {
                Some(Ok(0)) => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("expected a clean close, got {error}"),
                None => panic!("the connection was not closed within {WAIT_TIMEOUT_MS} ms"),
            }
        }
        assert!(
            self.input.is_empty(),
            "unexpected bytes before the close: {:?}",
            String::from_utf8_lossy(&self.input)
        );
    }

    /// Asserts nothing arrives (and the connection stays open) for `wait_ms`.
    async fn expect_silence(&mut self, wait_ms: u64) {
        match self.read_within(wait_ms).await {
            None => {}
            Some(result) => panic!(
                "expected silence, got {result:?} with {:?}",
                String::from_utf8_lossy(&self.input)
            ),
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn keep_alive_serves_sequential_requests_on_one_connection() {
    run("http-keepalive", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        for i in 0..5 {
            let body = format!("value-{i}");
            client
                .send(
                    format!(
                        "PUT /echo?i={i} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            let reply = client.response().await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.minor, 1);
            assert!(!reply.closes());
            assert_eq!(reply.text(), format!("PUT /echo?i={i}\n{body}"));
            assert_eq!(
                reply.header("x-body-bytes"),
                Some(body.len().to_string().as_str())
            );
        }
        // A HEAD gets the length but no body, and the connection stays in step.
        client
            .send(b"HEAD /echo HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        let reply = client.reply(true).await;
        assert_eq!(reply.header("content-length"), Some("12"));
        client.send(get("/other").as_bytes()).await;
        assert_eq!(client.response().await.text(), "ok");
        assert!(client.input.is_empty());
        let stats = server.stats();
        assert_eq!(stats.connections_accepted, 1);
        assert_eq!(stats.requests, 7);
        assert_eq!(seen.calls.get(), 7);
        server.close().await;
    });
}

#[test]
fn a_streamed_body_is_chunked_and_closes_the_connection() {
    run("http-stream", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client.send(get("/stream").as_bytes()).await;
        while client
            .read_within(WAIT_TIMEOUT_MS)
            .await
            .is_some_and(|r| r.is_ok_and(|n| n > 0))
        {}
        let text = String::from_utf8_lossy(&client.input).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
        assert_eq!(
            body,
            "7\r\nline 0\n\r\n7\r\nline 1\n\r\n7\r\nline 2\n\r\n0\r\n\r\n"
        );
        server.close().await;
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    run("http-pipelining", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        // The slow request first: the quick ones behind it must wait their turn.
        let mut batch = get("/slow?ms=50");
        batch.push_str("POST /echo?n=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\none");
        batch.push_str(
            "POST /echo?n=2 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
        );
        batch.push_str(&get("/echo?n=3"));
        client.send(batch.as_bytes()).await;
        let texts = [
            client.response().await.text(),
            client.response().await.text(),
            client.response().await.text(),
            client.response().await.text(),
        ];
        assert_eq!(
            texts,
            [
                "slow 50".to_string(),
                "POST /echo?n=1\none".to_string(),
                "POST /echo?n=2\ntwo".to_string(),
                "GET /echo?n=3\n".to_string(),
            ]
        );
        assert_eq!(server.stats().connections_accepted, 1);
        server.close().await;
    });
}

#[test]
fn chunked_request_body_in_pieces() {
    run("http-chunked", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        let pieces: [&[u8]; 6] = [
            b"PUT /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"6\r\nhello ",
            b"\r\n1a;ext=x\r\n",
            b"abcdefghijklmnopqrstuvwxyz\r",
            b"\n0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ];
        for piece in pieces {
            client.send(piece).await;
            sleep(Duration::from_millis(5)).await;
        }
        let reply = client.response().await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "PUT /echo?\nhello abcdefghijklmnopqrstuvwxyz");
        server.close().await;
    });
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    run("http-continue", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(b"PUT /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .await;
        let interim = client.reply(true).await;
        assert_eq!(interim.status, 100);
        client.send(b"12345").await;
        let reply = client.response().await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "PUT /echo?\n12345");
        // Over the limit: refused instead of invited, before any body byte is sent.
        client
            .send(b"PUT /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 100000000\r\n\r\n")
            .await;
        let reply = client.response().await;
        assert_eq!(reply.status, 413);
        assert!(reply.closes());
        client.expect_closed().await;
        server.close().await;
    });
}

#[test]
fn http_1_0_closes_by_default_and_keeps_alive_on_request() {
    run("http-10", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await;
        let reply = client.response().await;
        assert_eq!((reply.status, reply.minor), (200, 0));
        assert_eq!(reply.header("connection"), Some("keep-alive"));
        client.send(b"GET /echo HTTP/1.0\r\n\r\n").await;
        let reply = client.response().await;
        assert_eq!((reply.status, reply.minor), (200, 0));
        assert!(reply.closes());
        client.expect_closed().await;
        server.close().await;
    });
}

#[test]
fn connection_close_is_honoured() {
    run("http-close", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        // The request after the closing one is never served.
        let mut batch =
            String::from("GET /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        batch.push_str(&get("/never"));
        client.send(batch.as_bytes()).await;
        let reply = client.response().await;
        assert_eq!(reply.status, 200);
        assert!(reply.closes());
        client.expect_closed().await;
        assert_eq!(seen.calls.get(), 1);
        server.close().await;
    });
}

#[test]
fn oversized_body_is_refused_from_its_content_length() {
    run("http-413", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(b"PUT /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1073741824\r\n\r\n")
            .await;
        let reply = client.response().await;
        assert_eq!(reply.status, 413);
        assert!(reply.closes());
        assert!(reply.text().contains("589824"), "{}", reply.text());
        client.expect_closed().await;
        assert_eq!(seen.calls.get(), 0);
        assert_eq!(server.stats().parse_errors, 1);
        server.close().await;
    });
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    run("http-431", || async {
        let shutdown = Shutdown::new();
        let options = HttpServerOptions {
            limits: ParserLimits {
                header_bytes_max: 4096,
                header_count_max: 10,
                ..ParserLimits::default()
            },
            ..HttpServerOptions::default()
        };
        let (server, seen) = start(options, &shutdown);
        let many: String = (0..11).map(|i| format!("X-H{i}: v\r\n")).collect();
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(format!("GET / HTTP/1.1\r\nHost: test\r\n{many}\r\n").as_bytes())
            .await;
        let reply = client.response().await;
        assert_eq!(reply.status, 431);
        assert!(reply.text().contains("too many"), "{}", reply.text());
        client.expect_closed().await;
        // A head that never ends is cut at the limit.
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(
                format!(
                    "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}",
                    "x".repeat(5000)
                )
                .as_bytes(),
            )
            .await;
        let reply = client.response().await;
        assert_eq!(reply.status, 431);
        assert!(reply.closes());
        client.expect_closed().await;
        assert_eq!(seen.calls.get(), 0);
        server.close().await;
    });
}

#[test]
fn garbage_and_bad_versions_are_refused() {
    run("http-400", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let cases: [(&[u8], u16); 4] = [
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),
            (b"hello there\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505),
            (
                b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
                501,
            ),
        ];
        for (input, status) in cases {
            let mut client = Client::connect(server.local_addr()).await;
            client.send(input).await;
            let reply = client.response().await;
            assert_eq!(reply.status, status, "{}", reply.text());
            assert_eq!(
                reply.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            assert!(reply.closes());
            client.expect_closed().await;
        }
        assert_eq!(seen.calls.get(), 0);
        assert_eq!(server.stats().parse_errors, 4);
        server.close().await;
    });
}

#[test]
fn a_waiting_handler_blocks_only_its_own_connection() {
    run("http-concurrency", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let mut waiting = Client::connect(server.local_addr()).await;
        waiting.send(get("/forever").as_bytes()).await;
        wait_until("the waiting handler started", || seen.calls.get() == 1).await;
        let mut other = Client::connect(server.local_addr()).await;
        for _ in 0..3 {
            other.send(get("/echo").as_bytes()).await;
            assert_eq!(other.response().await.status, 200);
        }
        waiting.expect_silence(50).await;
        // The client gives up: its handler is dropped, like a cancelled request context.
        drop(waiting);
        wait_until("the abandoned handler was dropped", || {
            seen.dropped.get() == 1
        })
        .await;
        wait_until("the connection ended", || {
            server.stats().handlers_cancelled == 1 && server.stats().connections_active == 1
        })
        .await;
        other.send(get("/echo").as_bytes()).await;
        assert_eq!(other.response().await.status, 200);
        server.close().await;
    });
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    run("http-idle", || async {
        let shutdown = Shutdown::new();
        let options = HttpServerOptions {
            idle_timeout_ms: 200,
            ..HttpServerOptions::default()
        };
        let (server, _seen) = start(options, &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client.send(get("/").as_bytes()).await;
        assert_eq!(client.response().await.status, 200);
        let idle_since = Instant::now();
        client.expect_closed().await;
        assert!(idle_since.elapsed() >= Duration::from_millis(150));
        wait_until("the idle timeout was counted", || {
            server.stats().idle_timeouts == 1 && server.stats().connections_active == 0
        })
        .await;
        server.close().await;
    });
}

#[test]
fn a_stalled_request_gets_408() {
    run("http-408", || async {
        let shutdown = Shutdown::new();
        let options = HttpServerOptions {
            request_timeout_ms: 200,
            ..HttpServerOptions::default()
        };
        let (server, seen) = start(options, &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client
            .send(b"PUT /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
            .await;
        let reply = client.response().await;
        assert_eq!(reply.status, 408);
        assert!(reply.closes());
        client.expect_closed().await;
        assert_eq!(seen.calls.get(), 0);
        assert_eq!(server.stats().request_timeouts, 1);
        server.close().await;
    });
}

#[test]
fn a_handler_over_its_time_gets_503() {
    run("http-handler-timeout", || async {
        let shutdown = Shutdown::new();
        let options = HttpServerOptions {
            handler_timeout_ms: 100,
            ..HttpServerOptions::default()
        };
        let (server, seen) = start(options, &shutdown);
        let mut client = Client::connect(server.local_addr()).await;
        client.send(get("/forever").as_bytes()).await;
        let reply = client.response().await;
        assert_eq!(reply.status, 503);
        assert!(reply.closes());
        client.expect_closed().await;
        assert_eq!(seen.dropped.get(), 1);
        assert_eq!(server.stats().handler_timeouts, 1);
        server.close().await;
    });
}

#[test]
fn connections_over_the_limit_are_refused() {
    run("http-conn-limit", || async {
        let shutdown = Shutdown::new();
        let options = HttpServerOptions {
            connections_max: 1,
            ..HttpServerOptions::default()
        };
        let (server, _seen) = start(options, &shutdown);
        let mut first = Client::connect(server.local_addr()).await;
        first.send(get("/").as_bytes()).await;
        assert_eq!(first.response().await.status, 200);
        let mut second = Client::connect(server.local_addr()).await;
        let reply = second.response().await;
        assert_eq!(reply.status, 503);
        assert!(reply.closes());
        second.expect_closed().await;
        first.send(get("/").as_bytes()).await;
        assert_eq!(first.response().await.status, 200);
        let stats: HttpServerStats = server.stats();
        assert_eq!(
            (stats.connections_accepted, stats.connections_rejected),
            (1, 1)
        );
        server.close().await;
    });
}

#[test]
fn shutdown_stops_the_server() {
    run("http-shutdown", || async {
        let shutdown = Shutdown::new();
        let (server, seen) = start(HttpServerOptions::default(), &shutdown);
        let addr = server.local_addr();
        let mut idle = Client::connect(addr).await;
        idle.send(get("/").as_bytes()).await;
        assert_eq!(idle.response().await.status, 200);
        let mut busy = Client::connect(addr).await;
        busy.send(get("/forever").as_bytes()).await;
        wait_until("the waiting handler started", || seen.calls.get() == 2).await;
        shutdown.trigger();
        idle.expect_closed().await;
        busy.expect_closed().await;
        assert_eq!(seen.dropped.get(), 1);
        wait_until("every connection ended", || {
            server.stats().connections_active == 0
        })
        .await;
        let refused =
            TcpStream::connect_timeout(addr, Duration::from_millis(WAIT_TIMEOUT_MS)).await;
        assert!(refused.is_err(), "the server still accepts connections");
        timeout(Duration::from_millis(WAIT_TIMEOUT_MS), async {
            server.close().await;
            Ok(())
        })
        .await
        .expect("close after shutdown");
    });
}

#[test]
fn binding_is_exclusive_unless_reuse_port_is_asked_for() {
    run("http-bind", || async {
        let shutdown = Shutdown::new();
        let (server, _seen) = start(HttpServerOptions::default(), &shutdown);
        let taken = HttpServer::bind(
            server.local_addr(),
            HttpServerOptions::default(),
            &shutdown,
            |_request| async { Response::new(200) },
        );
        match taken {
            Err(HttpServerError::Bind { failure, .. }) => {
                assert_eq!(failure.kind, io::ErrorKind::AddrInUse)
            }
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        server.close().await;
        let shared = HttpServerOptions {
            reuse_port: true,
            ..HttpServerOptions::default()
        };
        let (first, _seen) = start(shared.clone(), &shutdown);
        let second = HttpServer::bind(first.local_addr(), shared, &shutdown, |_request| async {
            Response::new(200)
        })
        .expect("a second SO_REUSEPORT listener on the same port");
        let invalid = HttpServer::bind(
            loopback_any_port(),
            HttpServerOptions {
                connections_max: 0,
                ..HttpServerOptions::default()
            },
            &shutdown,
            |_request| async { Response::new(200) },
        );
        assert!(matches!(invalid, Err(HttpServerError::InvalidOptions(_))));
        second.close().await;
        first.close().await;
    });
}
