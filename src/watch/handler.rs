//! Watch handlers: a script (the data as JSON on stdin, `CONSUL_INDEX` in its environment) or an
//! HTTP request (the data as the body, `X-Consul-Index` among the header fields), as Consul runs them.

use crate::cli::lock::{child_command, exit_text};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default `http_handler_config.timeout`.
pub const HTTP_TIMEOUT_MS: u64 = 10_000;
/// How much of a handler's output is kept for the log (the last bytes), as Consul's buffer.
pub const OUTPUT_BYTES_MAX: usize = 4 * 1024;
/// The most of an HTTP handler's response read.
pub const HTTP_RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// `http_handler_config`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// `path`: the URL the data is sent to (`http://` or `https://`).
    pub path: String,
    /// `method` (`POST` by default).
    pub method: String,
    /// `header`: extra header fields, each with its values in order.
    pub header: Vec<(String, Vec<String>)>,
    /// `timeout` in milliseconds ([`HTTP_TIMEOUT_MS`] by default): for the whole exchange.
    pub timeout_ms: u64,
    /// `tls_skip_verify`: accept any certificate of an `https://` path.
    pub tls_skip_verify: bool,
}

/// What runs on a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// A command: `args` run as is, or (`shell`) joined and run with `$SHELL -c` (`/bin/sh`).
    Script {
        /// The command and its arguments, or the shell text (one element).
        args: Vec<String>,
        /// Whether the args go through the shell.
        shell: bool,
    },
    /// An HTTP request.
    Http(HttpConfig),
}

impl Handler {
    /// A short name for the log: the command line or `METHOD url`.
    pub fn describe(&self) -> String {
        match self {
            Handler::Script { args, .. } => args.join(" "),
            Handler::Http(config) => format!("{} {}", config.method, config.path),
        }
    }
}

/// The handler's input: the data as JSON and a newline, as Go's JSON encoder writes it.
fn input_of(data: &Value) -> Vec<u8> {
    let mut input = data.to_string().into_bytes();
    input.push(b'\n');
    input
}

/// Runs a script handler once with `data` on stdin, its output going where the caller's goes.
pub fn run_script_inherit(
    args: &[String],
    shell: bool,
    data: &Value,
    index: u64,
) -> Result<(), String> {
    let mut command = child_command(args, shell);
    command
        .env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("Error starting handler: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that does not read its input may close the pipe; that is not a failure.
        let _ = stdin.write_all(&input_of(data));
    }
    let status = child
        .wait()
        .map_err(|e| format!("Error executing handler: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("Error executing handler: {}", exit_text(status)))
    }
}

/// Runs a script handler once with `data` on stdin; its stdout and stderr are collected (the last
/// [`OUTPUT_BYTES_MAX`] bytes kept). `Ok(output)`, or `Err((why, output))` when it failed.
pub fn run_script_captured(
    args: &[String],
    shell: bool,
    data: &Value,
    index: u64,
) -> Result<String, (String, String)> {
    let failed = |why: String| (why, String::new());
    let (mut reader, writer) = std::io::pipe().map_err(|e| failed(e.to_string()))?;
    let mut command = child_command(args, shell);
    command
        .env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped())
        .stdout(writer.try_clone().map_err(|e| failed(e.to_string()))?)
        .stderr(writer);
    let spawned = command.spawn();
    // The command holds the write end: drop it so reading ends when the handler's copies close.
    drop(command);
    let mut child = spawned.map_err(|e| failed(e.to_string()))?;
    let input = input_of(data);
    let stdin = child.stdin.take();
    let output = std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&input);
            }
        });
        read_tail(&mut reader)
    });
    match child.wait() {
        Ok(status) if status.success() => Ok(output),
        Ok(status) => Err((exit_text(status), output)),
        Err(e) => Err((e.to_string(), output)),
    }
}

/// Reads `reader` to its end, keeping the last [`OUTPUT_BYTES_MAX`] bytes as text.
fn read_tail(reader: &mut impl Read) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > OUTPUT_BYTES_MAX {
                    kept.drain(..kept.len() - OUTPUT_BYTES_MAX);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The parts of an `http://` or `https://` URL a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    /// The host as written (brackets of an IPv6 literal removed).
    pub host: String,
    /// The port (80 or 443 when not written).
    pub port: u16,
    /// `host[:port]` as written, for the `Host` field.
    pub authority: String,
    /// The path and query (`/` when empty).
    pub target: String,
}

/// Parses `path` of `http_handler_config`.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let (tls, rest) = if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("path {text:?} is not an http:// or https:// URL"));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let target = target.split('#').next().unwrap_or_default();
    let target = match target {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    let bad = || format!("path {text:?} has no valid host");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (host, port.parse().map_err(|_| bad())?),
            None if after.is_empty() => (host, default_port),
            None => return Err(bad()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        target,
    })
}

/// The answer of an HTTP handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body read (at most [`HTTP_RESPONSE_BYTES_MAX`] of the whole response), as text, its
    /// last [`OUTPUT_BYTES_MAX`] bytes.
    pub output: String,
}

/// Sends `data` as configured with `X-Consul-Index: index`; `Err` when no answer came (a status
/// outside 2xx is an answer: the caller decides).
pub fn send_http(config: &HttpConfig, data: &Value, index: u64) -> Result<HttpAnswer, String> {
    let url = parse_url(&config.path)?;
    let deadline = Instant::now() + Duration::from_millis(config.timeout_ms.max(1));
    let body = input_of(data);
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cairn-watch\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Consul-Index: {index}\r\nConnection: close\r\n",
        config.method,
        url.target,
        url.authority,
        body.len()
    );
    for (name, values) in &config.header {
        for value in values {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(&body);
    let tcp = connect(&url, deadline)?;
    let raw = if url.tls {
        let config = tls_config(config.tls_skip_verify)?;
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| format!("bad TLS server name {:?}: {e}", url.host))?;
        let connection =
            rustls::ClientConnection::new(config, name).map_err(|e| format!("tls: {e}"))?;
        exchange(
            rustls::StreamOwned::new(connection, tcp.try_clone().map_err(|e| e.to_string())?),
            &tcp,
            &message,
            deadline,
        )?
    } else {
        exchange(
            tcp.try_clone().map_err(|e| e.to_string())?,
            &tcp,
            &message,
            deadline,
        )?
    };
    parse_answer(&raw)
}

fn tls_config(skip_verify: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    use crate::agent::check_tls;
    let roots = (!skip_verify).then(check_tls::load_system_roots);
    check_tls::client_config(roots, skip_verify, &[])
}

fn connect(url: &Url, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp: lookup {}: {e}", url.host))?
        .collect();
    let mut last = format!("dial tcp: lookup {}: no addresses", url.host);
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("dial tcp {addr}: i/o timeout"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("dial tcp {addr}: connect: {e}"),
        }
    }
    Err(last)
}

/// Writes `message` and reads the response until the peer closes, the limit, or the deadline.
fn exchange(
    mut stream: impl Read + Write,
    tcp: &TcpStream,
    message: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let timed_out = || "context deadline exceeded (Client.Timeout exceeded)".to_string();
    let left = |now: Instant| {
        let left = deadline.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    };
    let set = |d| {
        let _ = tcp.set_write_timeout(Some(d));
        let _ = tcp.set_read_timeout(Some(d));
    };
    set(left(Instant::now()).ok_or_else(timed_out)?);
    stream
        .write_all(message)
        .map_err(|e| io_text(&e, timed_out))?;
    stream.flush().map_err(|e| io_text(&e, timed_out))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let Some(remaining) = left(Instant::now()) else {
            return Err(timed_out());
        };
        set(remaining);
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() >= HTTP_RESPONSE_BYTES_MAX {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A TLS peer closing without close_notify, after a whole head: take what came.
            Err(_) if !raw.is_empty() && parse_answer(&raw).is_ok() => break,
            Err(e) => return Err(io_text(&e, timed_out)),
        }
    }
    Ok(raw)
}

fn io_text(error: &std::io::Error, timed_out: impl Fn() -> String) -> String {
    match error.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => timed_out(),
        _ => error.to_string(),
    }
}

fn parse_answer(raw: &[u8]) -> Result<HttpAnswer, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(raw) {
        Ok(httparse::Status::Complete(head)) => {
            let body = &raw[head..];
            let tail = &body[body.len().saturating_sub(OUTPUT_BYTES_MAX)..];
            Ok(HttpAnswer {
                status: response.code.unwrap_or(0),
                output: String::from_utf8_lossy(tail).into_owned(),
            })
        }
        Ok(httparse::Status::Partial) => {
            Err("malformed HTTP response: the head is cut short".into())
        }
        Err(e) => Err(format!("malformed HTTP response: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_are_split_for_the_request() {
        let url = parse_url("http://127.0.0.1:8080/hook?x=1").expect("url");
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 8080));
        assert_eq!(url.target, "/hook?x=1");
        let url = parse_url("https://[::1]/").expect("v6");
        assert_eq!((url.host.as_str(), url.port, url.tls), ("::1", 443, true));
        assert_eq!(parse_url("http://h").expect("bare").target, "/");
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://h:port/").is_err());
    }

    #[test]
    fn the_http_handler_posts_the_data_with_the_index() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&seen).contains("{\"a\":1}\n") {
                let n = stream.read(&mut buf).expect("read");
                assert!(n > 0, "closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope")
                .expect("write");
            String::from_utf8_lossy(&seen).into_owned()
        });
        let config = HttpConfig {
            path: format!("http://{addr}/hook"),
            method: "PUT".into(),
            header: vec![("X-A".into(), vec!["1".into(), "2".into()])],
            timeout_ms: 5_000,
            tls_skip_verify: false,
        };
        let answer = send_http(&config, &serde_json::json!({"a": 1}), 42).expect("answer");
        assert_eq!(answer.status, 500);
        assert_eq!(answer.output, "nope");
        let request = server.join().expect("server");
        assert!(request.starts_with("PUT /hook HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("X-Consul-Index: 42\r\n"), "{request}");
        assert!(request.contains("X-A: 1\r\nX-A: 2\r\n"), "{request}");
    }

    /// An HTTPS server with a self-signed certificate answering one request with 204 per connection.
    fn https_server(connections: usize) -> SocketAddr {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (tcp, _) = listener.accept().expect("accept");
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let connection = rustls::ServerConnection::new(Arc::clone(&config)).expect("tls");
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&seen).ends_with("null\n") {
                    match tls.read(&mut buf) {
                        Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        addr
    }

    #[test]
    fn an_https_handler_with_tls_skip_verify_accepts_a_self_signed_certificate() {
        let addr = https_server(2);
        let mut config = HttpConfig {
            path: format!("https://{addr}/hook"),
            method: "POST".into(),
            header: Vec::new(),
            timeout_ms: 5_000,
            tls_skip_verify: true,
        };
        let answer = send_http(&config, &Value::Null, 3).expect("answer");
        assert_eq!(answer.status, 204);
        config.tls_skip_verify = false;
        let error = send_http(&config, &Value::Null, 3).expect_err("unknown issuer");
        assert!(error.to_lowercase().contains("certificate"), "{error}");
    }

    #[test]
    fn an_unanswered_http_handler_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let config = HttpConfig {
            path: format!("http://{}/", listener.local_addr().expect("addr")),
            method: "POST".into(),
            header: Vec::new(),
            timeout_ms: 200,
            tls_skip_verify: false,
        };
        let error = send_http(&config, &Value::Null, 1).expect_err("timeout");
        assert!(error.contains("deadline exceeded"), "{error}");
    }

    #[test]
    fn a_captured_script_gets_the_data_and_index() {
        let args = vec!["cat; echo \" i=$CONSUL_INDEX\"; echo oops >&2".to_string()];
        let output = run_script_captured(&args, true, &serde_json::json!([1]), 7).expect("ok");
        assert_eq!(output, "[1]\n i=7\noops\n");
        let args = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let (why, _) = run_script_captured(&args, false, &Value::Null, 1).expect_err("fails");
        assert_eq!(why, "exit status 3");
    }
}
