//! Responses and their encoding: status line, header fields, `Content-Length`, body.

use super::request::{Headers, Version};
use glommio::channels::local_channel::LocalReceiver;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// A body written as it is produced, with the chunked transfer coding (a log monitor): each `Vec<u8>`
/// received is one chunk; the response ends, and the connection closes, when the sender is dropped, the
/// server stops, or the client goes away.
#[derive(Clone)]
pub struct BodyStream(Rc<RefCell<Option<LocalReceiver<Vec<u8>>>>>);

impl BodyStream {
    /// A stream of the chunks `receiver` yields.
    pub fn new(receiver: LocalReceiver<Vec<u8>>) -> BodyStream {
        BodyStream(Rc::new(RefCell::new(Some(receiver))))
    }

    /// The receiver (once: the writer takes it).
    pub fn take(&self) -> Option<LocalReceiver<Vec<u8>>> {
        self.0.borrow_mut().take()
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyStream")
    }
}

impl PartialEq for BodyStream {
    fn eq(&self, other: &BodyStream) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for BodyStream {}

/// A response built by a handler. The writer adds the framing fields itself
/// (`Content-Length`, `Connection`); the same fields set by a handler are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100..=999 (others are written as 500).
    pub status: u16,
    /// Header fields, in the order written.
    pub headers: Headers,
    /// The body (not written for `HEAD` requests and for statuses that have none: 1xx, 204,
    /// 304).
    pub body: Vec<u8>,
    /// A body that follows `body` as it is produced (chunked; the connection closes after it).
    pub stream: Option<BodyStream>,
}

impl Response {
    /// A response with no header fields and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Vec::new(),
            stream: None,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut response = Response::new(status);
        response
            .headers
            .push("Content-Type", "text/plain; charset=utf-8");
        response.body = body.into().into_bytes();
        response
    }

    /// An `application/json` response; `body` must already be JSON text.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        let mut response = Response::new(status);
        response.headers.push("Content-Type", "application/json");
        response.body = body.into();
        response
    }

    /// Adds a header field (builder style).
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Response {
        self.headers.push(name, value);
        self
    }

    /// Replaces the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

/// How a response is written for the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFraming {
    /// The request's version; the status line uses the same, and an HTTP/1.0 keep-alive
    /// response says `Connection: keep-alive`.
    pub version: Version,
    /// The request was `HEAD`: `Content-Length` is the body's length but no body is written.
    pub head_request: bool,
    /// The connection closes after this response: `Connection: close` is written.
    pub close: bool,
}

/// Whether a response with this status carries a body (and `Content-Length`).
fn status_has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// Writes the status line and header fields (ending with the empty line) into `out`, and
/// returns how much of the body must follow them: all of it, or nothing for `HEAD` requests
/// and statuses without a body (1xx, 204, 304).
///
/// Handler fields named `Content-Length`, `Transfer-Encoding` or `Connection` are skipped (the
/// writer frames the response itself), as are fields whose name is not a token or whose value
/// holds CR, LF or NUL (they would split the response).
pub fn encode_head(response: &Response, framing: ResponseFraming, out: &mut Vec<u8>) -> usize {
    let status = if (100..=999).contains(&response.status) {
        response.status
    } else {
        500
    };
    out.extend_from_slice(framing.version.as_str().as_bytes());
    out.push(b' ');
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in response.headers.iter() {
        if is_framing_field(name) || !is_token(name.as_bytes()) || !is_field_value(value) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let has_body = status_has_body(status);
    if has_body && response.stream.is_some() {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if has_body {
        // The length a GET would have, also for HEAD (RFC 9110 section 8.6).
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, response.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if framing.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if framing.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if has_body && !framing.head_request && response.stream.is_none() {
        response.body.len()
    } else {
        0
    }
}

/// One chunk of the chunked transfer coding (`size CRLF data CRLF`); an empty `data` is the last chunk.
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes the whole response (head and, where it has one, body) into `out`.
pub fn encode_response(response: &Response, framing: ResponseFraming, out: &mut Vec<u8>) {
    let body_bytes = encode_head(response, framing, out);
    out.extend_from_slice(&response.body[..body_bytes]);
}

fn is_framing_field(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
}

/// RFC 9110 token characters.
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Field values may hold anything but CR, LF and NUL here.
fn is_field_value(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .any(|&byte| byte == b'\r' || byte == b'\n' || byte == 0)
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The standard reason phrase of a status code (empty for codes without one).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
