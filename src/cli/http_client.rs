//! A small blocking HTTP/1.1 client for the CLI: one request per connection (`Connection: close`)
//! over TCP or a unix socket, responses parsed with httparse. Errors read like the Go client's
//! (`Get "http://127.0.0.1:8500/v1/kv/a": dial tcp 127.0.0.1:8500: connect: connection refused`).

use std::fmt;
use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Largest response body read, in bytes.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long connecting may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// How long a response may take when the request does not block.
pub const READ_TIMEOUT_MS: u64 = 60_000;

/// Where the agent's HTTP API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` over TCP.
    Tcp(String),
    /// A unix socket path.
    Unix(PathBuf),
}

/// Why a request failed; `Display` reads like the Go client's errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The address cannot be used (bad syntax, or HTTPS which this client does not speak).
    Address(String),
    /// Connecting, writing or reading failed.
    Transport {
        /// `Get`, `Put`, `Delete`...
        method: String,
        /// The full URL.
        url: String,
        /// The cause (`dial tcp ...: connect: connection refused`).
        cause: String,
    },
    /// The agent answered with a status outside 2xx.
    Status {
        /// The HTTP status.
        code: u16,
        /// The body, as text.
        body: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Address(why) => f.write_str(why),
            ClientError::Transport { method, url, cause } => {
                write!(f, "{method} \"{url}\": {cause}")
            }
            ClientError::Status { code, body } => {
                write!(f, "Unexpected response code: {code} ({body})")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// An HTTP response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `X-Consul-Index`, or 0 when missing or not a number.
    pub fn index(&self) -> u64 {
        self.header("x-consul-index")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|error| ClientError::Status {
            code: self.status,
            body: format!("invalid JSON in the response: {error}"),
        })
    }
}

/// One request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `PUT`, `DELETE`, `POST`.
    pub method: &'static str,
    /// The path, already encoded (see [`encode_path`]).
    pub path: String,
    /// Query parameters (unencoded); `None` values are sent bare (`?recurse`).
    pub query: Vec<(String, Option<String>)>,
    /// The body.
    pub body: Vec<u8>,
    /// Header fields to add.
    pub headers: Vec<(String, String)>,
    /// How long to wait for the response.
    pub timeout_ms: u64,
}

impl Request {
    /// A request without a body, answered within [`READ_TIMEOUT_MS`].
    pub fn new(method: &'static str, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            timeout_ms: READ_TIMEOUT_MS,
            ..Request::default()
        }
    }

    /// Adds a query parameter with a value.
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Request {
        self.query.push((name.to_string(), Some(value.into())));
        self
    }

    /// Adds a bare query parameter (`?recurse`).
    pub fn flag(mut self, name: &str) -> Request {
        self.query.push((name.to_string(), None));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }

    fn target(&self) -> String {
        let mut target = self.path.clone();
        for (i, (name, value)) in self.query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&encode_component(name));
            if let Some(value) = value {
                target.push('=');
                target.push_str(&encode_component(value));
            }
        }
        target
    }
}

/// Parses an agent address as `-http-addr` takes it: `host:port`, `http://host:port`,
/// `https://...`, `unix:///path`. `ssl` is `CONSUL_HTTP_SSL`.
pub fn parse_endpoint(addr: &str, ssl: bool) -> Result<Endpoint, ClientError> {
    if let Some(path) = addr.strip_prefix("unix://") {
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    let https = || {
        ClientError::Address(format!(
            "HTTPS is not supported by this client (address {addr}); use http:// or a unix socket"
        ))
    };
    if addr.starts_with("https://") || (ssl && !addr.starts_with("http://")) {
        return Err(https());
    }
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(ClientError::Address(format!(
            "invalid HTTP address: {addr}"
        )));
    }
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(h, _)| !h.ends_with(':'))
    {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok(Endpoint::Tcp(with_port))
}

/// Sends `request` to `endpoint`; a status outside 2xx is returned as a response, not an error.
pub fn send(endpoint: &Endpoint, request: &Request) -> Result<Response, ClientError> {
    let (url, head) = url_and_head(endpoint, request);
    let failed = |cause: String| ClientError::Transport {
        method: go_method(request.method),
        url: url.clone(),
        cause,
    };
    let timeout = Duration::from_millis(request.timeout_ms.max(1));
    let raw = match endpoint {
        Endpoint::Tcp(host) => {
            let mut stream = connect_tcp(host).map_err(&failed)?;
            exchange(&mut stream, &head, &request.body, timeout, |s, t| {
                s.set_read_timeout(Some(t))
            })
        }
        Endpoint::Unix(path) => {
            let mut stream = UnixStream::connect(path).map_err(|error| {
                failed(format!(
                    "dial unix {}: connect: {}",
                    path.display(),
                    go_io_error(&error)
                ))
            })?;
            exchange(&mut stream, &head, &request.body, timeout, |s, t| {
                s.set_read_timeout(Some(t))
            })
        }
    }
    .map_err(|error| failed(go_io_error(&error)))?;
    parse_response(&raw).map_err(failed)
}

/// The URL errors name, and the request line with header fields, of `request` to `endpoint`.
fn url_and_head(endpoint: &Endpoint, request: &Request) -> (String, String) {
    let target = request.target();
    let (url, host) = match endpoint {
        Endpoint::Tcp(host) => (format!("http://{host}{target}"), host.clone()),
        Endpoint::Unix(path) => (
            format!("http://unix{target}"),
            format!("unix:{}", path.display()),
        ),
    };
    let head = request_head(endpoint, request, &host);
    (url, head)
}

/// The request line and header fields of `request` for `endpoint` (the connection closes after it).
fn request_head(endpoint: &Endpoint, request: &Request, host: &str) -> String {
    let target = request.target();
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cairn-cli\r\nContent-Length: {}\r\nConnection: close\r\n",
        request.method,
        if matches!(endpoint, Endpoint::Unix(_)) { "localhost" } else { &host },
        request.body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A response whose body is read as it arrives (`GET /v1/agent/monitor`).
pub struct StreamedResponse {
    /// The HTTP status.
    pub status: u16,
    /// Whether the body uses the chunked transfer coding.
    pub chunked: bool,
    /// The connection, positioned after the head.
    pub body: Box<dyn BufRead>,
}

/// Sends `request` and returns once the response head arrived; the body is read by the caller. No read
/// timeout: a stream may be quiet for long.
pub fn open_stream(
    endpoint: &Endpoint,
    request: &Request,
) -> Result<StreamedResponse, ClientError> {
    let (url, head) = url_and_head(endpoint, request);
    let failed = |cause: String| ClientError::Transport {
        method: go_method(request.method),
        url: url.clone(),
        cause,
    };
    let mut stream: Box<dyn ReadWrite> = match endpoint {
        Endpoint::Tcp(host) => Box::new(connect_tcp(host).map_err(&failed)?),
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path).map_err(|error| {
            failed(format!(
                "dial unix {}: connect: {}",
                path.display(),
                go_io_error(&error)
            ))
        })?),
    };
    stream
        .write_all(head.as_bytes())
        .map_err(|e| failed(go_io_error(&e)))?;
    let mut reader = std::io::BufReader::new(stream);
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        let mut line = Vec::new();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| failed(go_io_error(&e)))?;
        if read == 0 || raw.len() > 64 * 1024 {
            return Err(failed("unexpected EOF".to_string()));
        }
        raw.extend_from_slice(&line);
    }
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut fields);
    parsed
        .parse(&raw)
        .map_err(|e| failed(format!("malformed HTTP response: {e}")))?;
    let chunked = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .trim()
                .eq_ignore_ascii_case("chunked")
    });
    Ok(StreamedResponse {
        status: parsed.code.unwrap_or(0),
        chunked,
        body: Box::new(reader),
    })
}

/// A connection to read from and write to.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The next chunk of a chunked body read from `body`; `None` at the last chunk or the end of input.
pub fn next_chunk(body: &mut dyn BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if body.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let size_text = line.trim().split(';').next().unwrap_or("");
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
    if size == 0 {
        return Ok(None);
    }
    if size > RESPONSE_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "chunk too large",
        ));
    }
    let mut data = vec![0u8; size + 2];
    body.read_exact(&mut data)?;
    data.truncate(size);
    Ok(Some(data))
}

fn connect_tcp(host: &str) -> Result<TcpStream, String> {
    let addrs: Vec<_> = host
        .to_socket_addrs()
        .map_err(|error| format!("dial tcp: lookup {host}: {error}"))?
        .collect();
    let mut last = format!("dial tcp {host}: no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(CONNECT_TIMEOUT_MS)) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = format!("dial tcp {addr}: connect: {}", go_io_error(&error)),
        }
    }
    Err(last)
}

fn exchange<S: Read + Write>(
    stream: &mut S,
    head: &str,
    body: &[u8],
    timeout: Duration,
    set_timeout: impl Fn(&S, Duration) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    set_timeout(stream, timeout)?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    let mut limited = stream.take(RESPONSE_BYTES_MAX as u64 + 64 * 1024);
    limited.read_to_end(&mut raw)?;
    Ok(raw)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if raw.is_empty() => return Err("EOF".to_string()),
        Ok(httparse::Status::Partial) => return Err("unexpected EOF".to_string()),
        Err(error) => return Err(format!("malformed HTTP response: {error}")),
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let rest = &raw[head_len..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match length {
            Some(length) if length <= rest.len() => rest[..length].to_vec(),
            Some(_) => return Err("unexpected EOF".to_string()),
            None => rest.to_vec(),
        }
    };
    if body.len() > RESPONSE_BYTES_MAX {
        return Err(format!("response body over {RESPONSE_BYTES_MAX} bytes"));
    }
    Ok(Response {
        status: parsed.code.unwrap_or(0),
        headers,
        body,
    })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("malformed chunked body")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("unexpected EOF in chunked body".to_string());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Go's spelling of a method in client errors (`Get`, `Put`...).
fn go_method(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// An IO error as Go's syscall errors read (`connection refused`).
fn go_io_error(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "i/o timeout".to_string(),
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        _ => {
            let text = error.to_string();
            // Drop Rust's " (os error N)" suffix and lower-case the first letter, as Go prints.
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
                None => text,
            }
        }
    }
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
pub fn encode_component(text: &str) -> String {
    encode(text, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Percent-encodes a path (keeps `/`), for KV keys and other path segments.
pub fn encode_path(text: &str) -> String {
    encode(text, |b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

fn encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_consuls_http_addr() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8500", false),
            Ok(Endpoint::Tcp("127.0.0.1:8500".into()))
        );
        assert_eq!(
            parse_endpoint("http://localhost:1234/", false),
            Ok(Endpoint::Tcp("localhost:1234".into()))
        );
        assert_eq!(
            parse_endpoint("unix:///tmp/c.sock", false),
            Ok(Endpoint::Unix("/tmp/c.sock".into()))
        );
        assert!(parse_endpoint("https://127.0.0.1:8501", false).is_err());
        assert!(parse_endpoint("127.0.0.1:8501", true).is_err());
    }

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Length: 4\r\n\r\ntrue";
        let r = parse_response(raw).expect("parse");
        assert_eq!(
            (r.status, r.index(), r.body.as_slice()),
            (200, 7, &b"true"[..])
        );
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).expect("parse").body, b"abc");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn encoding_keeps_slashes_in_paths_only() {
        assert_eq!(encode_path("a b/c?"), "a%20b/c%3F");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }
}
