//! The incremental request parser: pure code, no IO, no clock.
//!
//! Feed [`RequestParser::parse`] the bytes as they arrive. Each call consumes some of them and
//! reports one [`ParseEvent`]: more bytes are needed (everything given was consumed), a request
//! asked for `100 Continue`, or a request is complete. Pass the unconsumed rest of the input in
//! the next call: several pipelined requests in one read come out one per call, in order.
//!
//! The request head (request line and header fields) is parsed by `httparse`: in place, in one
//! pass, when it arrives in one piece; otherwise its bytes are gathered (at most
//! `header_bytes_max`) and parsed once its empty line is seen, with an early syntax check each
//! time the gathered bytes double (so garbage is refused at once, and a head dripping in byte
//! by byte costs linear time).
//!
//! Bodies are framed by `Content-Length` or `Transfer-Encoding: chunked` (trailers are read and
//! dropped). The body limit is decided per request by [`ParserLimits::body_limit`] from the head,
//! checked against a declared `Content-Length` before any body byte is buffered and against a
//! chunked body as it grows. A body buffer grows with the bytes that arrive (16 KiB first, then
//! doubling, never past the declared length), so a large declared length alone allocates little.
//!
//! Every error is a [`ParseError`] that names the status to answer with; after an error the
//! parser keeps returning it (the connection must be closed: its framing is lost).

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use super::request::{trim_ows, Headers, Method, Request, Version};
use super::response::Response;

/// Default bound on the request line plus header fields, in bytes.
pub const HEADER_BYTES_MAX_DEFAULT: usize = 64 << 10;

/// Largest `header_bytes_max` accepted.
pub const HEADER_BYTES_MAX_LIMIT: usize = 16 << 20;

/// Default bound on the number of header fields.
pub const HEADER_COUNT_MAX_DEFAULT: usize = 100;

/// Largest `header_count_max` accepted (the parser's header slots live on the stack).
pub const HEADER_COUNT_MAX_LIMIT: usize = 256;

/// Default bound on a request body: Consul's 512 KiB limits on KV values and transaction
/// bodies, plus 64 KiB of slack so that the API layer, not the framing, reports the precise
/// Consul error for bodies just over 512 KiB.
pub const BODY_BYTES_MAX_DEFAULT: usize = (512 << 10) + (64 << 10);

/// Bound on one chunk-size line of a chunked body (size plus extensions plus CRLF).
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;

/// A body buffer starts with at most this much room; it grows (up to the declared length) as
/// bytes arrive, so a large `Content-Length` alone does not allocate.
const BODY_RESERVE_BYTES_INITIAL: usize = 16 << 10;

/// Longest piece of client input quoted in an error message.
const QUOTE_BYTES_MAX: usize = 40;

/// Chooses the body limit of one request from its head (method, path, query, headers; the body
/// is still empty), e.g. to allow larger bodies on a few routes. Cheap to clone.
#[derive(Clone)]
pub struct BodyLimit(Arc<dyn Fn(&Request) -> usize + Send + Sync>);

impl BodyLimit {
    /// Wraps a function returning the body limit in bytes for a request head.
    pub fn new(limit: impl Fn(&Request) -> usize + Send + Sync + 'static) -> BodyLimit {
        BodyLimit(Arc::new(limit))
    }

    /// The limit for `head`.
    pub fn body_bytes_max(&self, head: &Request) -> usize {
        (self.0)(head)
    }
}

impl fmt::Debug for BodyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyLimit(..)")
    }
}

/// The parser's limits.
#[derive(Clone, Debug)]
pub struct ParserLimits {
    /// Bound on the request line plus header fields (and on a chunked body's trailers), in
    /// bytes, 1..=[`HEADER_BYTES_MAX_LIMIT`]; larger heads are answered with 431.
    pub header_bytes_max: usize,
    /// Bound on the number of header fields, 1..=[`HEADER_COUNT_MAX_LIMIT`]; more are answered
    /// with 431.
    pub header_count_max: usize,
    /// Bound on a request body in bytes when `body_limit` is `None`; larger bodies are answered
    /// with 413.
    pub body_bytes_max: usize,
    /// Decides the body limit per request instead of `body_bytes_max`, when set.
    pub body_limit: Option<BodyLimit>,
}

impl Default for ParserLimits {
    fn default() -> ParserLimits {
        ParserLimits {
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            header_count_max: HEADER_COUNT_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            body_limit: None,
        }
    }
}

impl ParserLimits {
    /// Checks every limit; [`RequestParser::new`] clamps instead, the server validates.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_bytes_max == 0 || self.header_bytes_max > HEADER_BYTES_MAX_LIMIT {
            return Err(format!(
                "header_bytes_max must be between 1 and {HEADER_BYTES_MAX_LIMIT}, not {}",
                self.header_bytes_max
            ));
        }
        if self.header_count_max == 0 || self.header_count_max > HEADER_COUNT_MAX_LIMIT {
            return Err(format!(
                "header_count_max must be between 1 and {HEADER_COUNT_MAX_LIMIT}, not {}",
                self.header_count_max
            ));
        }
        Ok(())
    }

    /// The body limit for one request head.
    pub fn body_bytes_max_for(&self, head: &Request) -> usize {
        match &self.body_limit {
            Some(limit) => limit.body_bytes_max(head),
            None => self.body_bytes_max,
        }
    }
}

/// Why a request cannot be served. Each names the status to answer with; see
/// [`ParseError::status`] and [`ParseError::to_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The request is malformed (400); the text says what was wrong.
    Malformed(String),
    /// The body is longer than the limit (413): a declared `Content-Length`, or a chunked body
    /// as it grew.
    BodyTooLarge {
        /// The declared length, or the chunked body's length with the chunk that crossed it.
        body_bytes: u64,
        /// The limit in force for this request.
        body_bytes_max: usize,
    },
    /// The request line and header fields (or a chunked body's trailers) are longer than
    /// `header_bytes_max` (431).
    HeadersTooLarge {
        /// The limit.
        header_bytes_max: usize,
    },
    /// More than `header_count_max` header fields (431).
    TooManyHeaders {
        /// The limit.
        header_count_max: usize,
    },
    /// A transfer coding other than `chunked` (501).
    UnsupportedTransferEncoding(String),
    /// An HTTP version other than 1.0 and 1.1 (505).
    UnsupportedVersion(String),
    /// An `Expect` other than `100-continue` (417).
    UnsupportedExpectation(String),
}

impl ParseError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::HeadersTooLarge { .. } | ParseError::TooManyHeaders { .. } => 431,
            ParseError::UnsupportedTransferEncoding(_) => 501,
            ParseError::UnsupportedVersion(_) => 505,
            ParseError::UnsupportedExpectation(_) => 417,
        }
    }

    /// The plain-text response for this error (the connection is closed after it).
    pub fn to_response(&self) -> Response {
        Response::text(self.status(), format!("{self}\n"))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed(message) => write!(f, "bad request: {message}"),
            ParseError::BodyTooLarge {
                body_bytes,
                body_bytes_max,
            } => write!(
                f,
                "request body too large: {body_bytes} bytes, the limit is {body_bytes_max} bytes"
            ),
            ParseError::HeadersTooLarge { header_bytes_max } => write!(
                f,
                "request header fields too large: the limit is {header_bytes_max} bytes"
            ),
            ParseError::TooManyHeaders { header_count_max } => write!(
                f,
                "too many request header fields: the limit is {header_count_max}"
            ),
            ParseError::UnsupportedTransferEncoding(coding) => write!(
                f,
                "unsupported transfer coding {coding:?}: only chunked is supported"
            ),
            ParseError::UnsupportedVersion(version) => write!(
                f,
                "HTTP version not supported: {version:?}; use HTTP/1.1 or HTTP/1.0"
            ),
            ParseError::UnsupportedExpectation(expectation) => write!(
                f,
                "unsupported expectation {expectation:?}: only 100-continue is supported"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// What one [`RequestParser::parse`] call found.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseEvent {
    /// Every input byte was consumed and the request is not complete: read more.
    NeedMore,
    /// The head of a request with a body carries `Expect: 100-continue` and no body byte has
    /// arrived yet: write `HTTP/1.1 100 Continue` (see [`CONTINUE_RESPONSE`]) and read on.
    /// Its body limit was already checked against its `Content-Length`.
    SendContinue,
    /// A complete request.
    Request(Request),
}

/// The interim response that answers [`ParseEvent::SendContinue`].
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The result of one [`RequestParser::parse`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Input bytes consumed; pass the rest in the next call. All of them for
    /// [`ParseEvent::NeedMore`].
    pub consumed_bytes: usize,
    /// What happened.
    pub event: ParseEvent,
}

/// Where a chunked body is.
#[derive(Debug)]
enum Chunk {
    /// Reading a chunk-size line (buffered in `line` when split across inputs).
    SizeLine,
    /// Reading chunk data.
    Data { remaining_bytes: u64 },
    /// Reading the CRLF after chunk data; `seen` of its two bytes arrived.
    DataEnd { seen: usize },
    /// Reading (and dropping) trailer lines after the last chunk.
    Trailers {
        /// Trailer bytes so far, bounded by `header_bytes_max`.
        section_bytes: usize,
        /// Bytes of the current line so far.
        line_bytes: usize,
        /// Whether the current line so far is a lone CR.
        line_is_cr: bool,
    },
}

#[derive(Debug)]
enum State {
    /// Reading a request head (gathered in `head` when split across inputs).
    Head,
    /// Reading a body of known length.
    Body {
        request: Request,
        remaining_bytes: u64,
        declared_bytes: u64,
    },
    /// Reading a chunked body.
    Chunked {
        request: Request,
        chunk: Chunk,
        body_bytes_max: usize,
    },
    /// An error happened; the stream's framing is lost.
    Failed(ParseError),
}

/// A parsed request head: the request (body still empty) and how its body is framed.
type Head = (Request, Framing);

/// How the body of a request is framed.
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// An incremental HTTP/1.x request parser for one connection (see the [module docs](self)).
#[derive(Debug)]
pub struct RequestParser {
    limits: ParserLimits,
    state: State,
    /// The head so far, when it arrived in pieces; at most `header_bytes_max + 1` bytes.
    head: Vec<u8>,
    /// Where to resume looking for the end of the head in `head`.
    head_scan_from: usize,
    /// `head` length at the last early syntax check (checks run each time it doubles).
    head_checked_bytes: usize,
    /// A chunk-size line split across inputs; at most [`CHUNK_LINE_BYTES_MAX`] bytes.
    line: Vec<u8>,
}

impl RequestParser {
    /// A parser with these limits (out-of-range header limits are clamped into range).
    pub fn new(mut limits: ParserLimits) -> RequestParser {
        limits.header_bytes_max = limits.header_bytes_max.clamp(1, HEADER_BYTES_MAX_LIMIT);
        limits.header_count_max = limits.header_count_max.clamp(1, HEADER_COUNT_MAX_LIMIT);
        RequestParser {
            limits,
            state: State::Head,
            head: Vec::new(),
            head_scan_from: 0,
            head_checked_bytes: 0,
            line: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &ParserLimits {
        &self.limits
    }

    /// True between requests: no byte of the next request has arrived (empty lines before a
    /// request do not count). The server applies its idle timeout then, its request timeout
    /// otherwise.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.head.is_empty()
    }

    /// Bytes held for the request in progress: a partial head, a partial chunk-size line and
    /// the body so far. At most `header_bytes_max + 1 + CHUNK_LINE_BYTES_MAX` plus the body
    /// limit.
    pub fn buffered_bytes(&self) -> usize {
        let body_bytes = match &self.state {
            State::Body { request, .. } | State::Chunked { request, .. } => request.body.len(),
            State::Head | State::Failed(_) => 0,
        };
        self.head.len() + self.line.len() + body_bytes
    }

    /// The error the parser stopped at, if any.
    pub fn error(&self) -> Option<&ParseError> {
        match &self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Consumes input and reports the next event (see the [module docs](self)). Never panics
    /// and never buffers more than the limits allow, whatever the input.
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ParseError> {
        let result = match &self.state {
            State::Failed(error) => return Err(error.clone()),
            State::Head => self.parse_head(input),
            State::Body { .. } | State::Chunked { .. } => self.parse_body(input, 0),
        };
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
            self.head = Vec::new();
            self.line = Vec::new();
        }
        result
    }

    fn parse_head(&mut self, input: &[u8]) -> Result<Parsed, ParseError> {
        let header_bytes_max = self.limits.header_bytes_max;
        if self.head.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112 section 2.2).
            let skipped = input
                .iter()
                .position(|&byte| byte != b'\r' && byte != b'\n')
                .unwrap_or(input.len());
            let rest = &input[skipped..];
            if rest.is_empty() {
                return Ok(need_more(input.len()));
            }
            // The common case: the whole head in one piece, parsed in place in one pass (an
            // incomplete head is also checked for errors by this pass).
            if let Some((end, request)) = self.build_request(rest)? {
                return self.after_head(request, input, skipped + end);
            }
            if rest.len() > header_bytes_max {
                return Err(ParseError::HeadersTooLarge { header_bytes_max });
            }
            self.head.extend_from_slice(rest);
            self.head_checked_bytes = rest.len();
            self.head_scan_from = rest.len().saturating_sub(2);
            return Ok(need_more(input.len()));
        }
        let held_bytes = self.head.len();
        let take = input.len().min(header_bytes_max + 1 - held_bytes);
        self.head.extend_from_slice(&input[..take]);
        match find_head_end(&self.head, self.head_scan_from) {
            Some(end) => {
                if end > header_bytes_max {
                    return Err(ParseError::HeadersTooLarge { header_bytes_max });
                }
                let mut head = std::mem::take(&mut self.head);
                let built = self.build_request(&head[..end]);
                // Keep the allocation for the next split head.
                head.clear();
                self.head = head;
                let Some((_, request)) = built? else {
                    return Err(ParseError::Malformed("incomplete request head".to_string()));
                };
                self.head_scan_from = 0;
                self.head_checked_bytes = 0;
                // `end > held_bytes`: the held bytes did not contain the end of the head.
                self.after_head(request, input, end.saturating_sub(held_bytes))
            }
            None => {
                let len = self.head.len();
                if len >= 2 * self.head_checked_bytes || len > header_bytes_max {
                    let head = std::mem::take(&mut self.head);
                    let checked = self.check_partial_head(&head);
                    self.head = head;
                    checked?;
                    self.head_checked_bytes = len;
                }
                if len > header_bytes_max {
                    return Err(ParseError::HeadersTooLarge { header_bytes_max });
                }
                self.head_scan_from = len.saturating_sub(2);
                Ok(need_more(input.len()))
            }
        }
    }

    /// Runs httparse over an incomplete head so that garbage is refused before the head limit
    /// or a timeout is reached.
    fn check_partial_head(&self, head: &[u8]) -> Result<(), ParseError> {
        let mut slots =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_COUNT_MAX_LIMIT];
        let mut parsed = httparse::Request::new(&mut []);
        match parsed.parse_with_uninit_headers(head, &mut slots[..self.limits.header_count_max]) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.head_error(error, head)),
        }
    }

    fn head_error(&self, error: httparse::Error, head: &[u8]) -> ParseError {
        match error {
            httparse::Error::TooManyHeaders => ParseError::TooManyHeaders {
                header_count_max: self.limits.header_count_max,
            },
            httparse::Error::Version => version_error(head),
            httparse::Error::HeaderName => {
                ParseError::Malformed("invalid header field name".to_string())
            }
            httparse::Error::HeaderValue => {
                ParseError::Malformed("invalid header field value".to_string())
            }
            httparse::Error::NewLine => ParseError::Malformed("invalid line ending".to_string()),
            httparse::Error::Token | httparse::Error::Status => {
                ParseError::Malformed("invalid request line".to_string())
            }
        }
    }

    /// Parses the head at the start of `bytes` into a request with an empty body and decides
    /// its framing. Returns the head's length with the request, or `None` when the head is
    /// not complete yet (and has no error so far).
    fn build_request(&self, bytes: &[u8]) -> Result<Option<(usize, Head)>, ParseError> {
        let mut slots =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_COUNT_MAX_LIMIT];
        let mut parsed = httparse::Request::new(&mut []);
        let head_bytes = match parsed
            .parse_with_uninit_headers(bytes, &mut slots[..self.limits.header_count_max])
        {
            Ok(httparse::Status::Complete(head_bytes)) => head_bytes,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(self.head_error(error, bytes)),
        };
        let header_bytes_max = self.limits.header_bytes_max;
        if head_bytes > header_bytes_max {
            return Err(ParseError::HeadersTooLarge { header_bytes_max });
        }
        let (Some(method), Some(target), Some(minor)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return Err(ParseError::Malformed("incomplete request line".to_string()));
        };
        let version = if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        let (path, query) = split_target(target)?;
        let fields_bytes = parsed
            .headers
            .iter()
            .map(|field| field.name.len() + field.value.len())
            .sum();
        let mut headers = Headers::with_capacity(parsed.headers.len(), fields_bytes);
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let mut host_count = 0usize;
        for field in parsed.headers.iter() {
            headers.push(field.name, field.value);
            let name = field.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = parse_content_length(field.value)?;
                if content_length.is_some_and(|previous| previous != length) {
                    return Err(ParseError::Malformed(
                        "conflicting Content-Length values".to_string(),
                    ));
                }
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                for coding in field.value.split(|&byte| byte == b',').map(trim_ows) {
                    if coding.is_empty() {
                        continue;
                    }
                    if chunked {
                        return Err(ParseError::Malformed(
                            "chunked must be the last transfer coding, and only once".to_string(),
                        ));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else {
                        return Err(ParseError::UnsupportedTransferEncoding(quote(coding)));
                    }
                }
            } else if name.eq_ignore_ascii_case("host") {
                host_count += 1;
            } else if name.eq_ignore_ascii_case("expect") && version == Version::Http11 {
                // HTTP/1.0 servers ignore Expect (RFC 9110 section 10.1.1).
                let expectation = trim_ows(field.value);
                if !expectation.eq_ignore_ascii_case(b"100-continue") {
                    return Err(ParseError::UnsupportedExpectation(quote(expectation)));
                }
            }
        }
        if version == Version::Http11 && host_count != 1 {
            return Err(ParseError::Malformed(if host_count == 0 {
                "an HTTP/1.1 request must carry a Host header".to_string()
            } else {
                "more than one Host header".to_string()
            }));
        }
        let framing = if transfer_encoding {
            if version == Version::Http10 {
                return Err(ParseError::Malformed(
                    "Transfer-Encoding is not allowed in an HTTP/1.0 request".to_string(),
                ));
            }
            if content_length.is_some() {
                return Err(ParseError::Malformed(
                    "both Content-Length and Transfer-Encoding are present".to_string(),
                ));
            }
            if !chunked {
                return Err(ParseError::Malformed("empty Transfer-Encoding".to_string()));
            }
            Framing::Chunked
        } else {
            match content_length {
                Some(0) | None => Framing::None,
                Some(length) => Framing::Length(length),
            }
        };
        let request = Request {
            method: Method::from_token(method),
            path,
            query,
            version,
            headers,
            body: Vec::new(),
        };
        Ok(Some((head_bytes, (request, framing))))
    }

    /// Starts the body of a parsed head that ended at `input[..consumed]`.
    fn after_head(
        &mut self,
        (request, framing): Head,
        input: &[u8],
        consumed: usize,
    ) -> Result<Parsed, ParseError> {
        let body_bytes_max = match framing {
            Framing::None => {
                return Ok(Parsed {
                    consumed_bytes: consumed,
                    event: ParseEvent::Request(request),
                })
            }
            Framing::Length(_) | Framing::Chunked => self.limits.body_bytes_max_for(&request),
        };
        let expects_continue = request.expects_continue();
        self.state = match framing {
            Framing::Length(length) => {
                if length > body_bytes_max as u64 {
                    return Err(ParseError::BodyTooLarge {
                        body_bytes: length,
                        body_bytes_max,
                    });
                }
                State::Body {
                    request,
                    remaining_bytes: length,
                    declared_bytes: length,
                }
            }
            Framing::Chunked | Framing::None => State::Chunked {
                request,
                chunk: Chunk::SizeLine,
                body_bytes_max,
            },
        };
        if expects_continue && consumed == input.len() {
            return Ok(Parsed {
                consumed_bytes: consumed,
                event: ParseEvent::SendContinue,
            });
        }
        self.parse_body(input, consumed)
    }

    /// Continues the body with `input[pos..]`.
    fn parse_body(&mut self, input: &[u8], mut pos: usize) -> Result<Parsed, ParseError> {
        let header_bytes_max = self.limits.header_bytes_max;
        let complete = match &mut self.state {
            State::Body {
                request,
                remaining_bytes,
                declared_bytes,
            } => {
                let take = clamp_to_usize(*remaining_bytes).min(input.len() - pos);
                extend_body(
                    &mut request.body,
                    &input[pos..pos + take],
                    clamp_to_usize(*declared_bytes),
                );
                pos += take;
                *remaining_bytes -= take as u64;
                *remaining_bytes == 0
            }
            State::Chunked {
                request,
                chunk,
                body_bytes_max,
            } => {
                let (end, complete) = parse_chunked(
                    &mut request.body,
                    chunk,
                    &mut self.line,
                    *body_bytes_max,
                    header_bytes_max,
                    input,
                    pos,
                )?;
                pos = end;
                complete
            }
            State::Head | State::Failed(_) => false,
        };
        if !complete {
            return Ok(need_more(pos));
        }
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body { request, .. } | State::Chunked { request, .. } => Ok(Parsed {
                consumed_bytes: pos,
                event: ParseEvent::Request(request),
            }),
            State::Head | State::Failed(_) => Err(ParseError::Malformed(
                "internal parser state lost".to_string(),
            )),
        }
    }
}

/// Parses chunked body bytes `input[pos..]`; returns where it stopped and whether the body
/// (with its trailers) is complete. Stops at the end of the body or of the input.
fn parse_chunked(
    body: &mut Vec<u8>,
    chunk: &mut Chunk,
    line: &mut Vec<u8>,
    body_bytes_max: usize,
    header_bytes_max: usize,
    input: &[u8],
    mut pos: usize,
) -> Result<(usize, bool), ParseError> {
    loop {
        if pos == input.len() {
            return Ok((pos, false));
        }
        match chunk {
            Chunk::SizeLine => {
                let Some(newline) = input[pos..].iter().position(|&byte| byte == b'\n') else {
                    if line.len() + (input.len() - pos) > CHUNK_LINE_BYTES_MAX {
                        return Err(chunk_line_too_long());
                    }
                    line.extend_from_slice(&input[pos..]);
                    return Ok((input.len(), false));
                };
                let line_end = pos + newline + 1;
                if line.len() + (line_end - pos) > CHUNK_LINE_BYTES_MAX {
                    return Err(chunk_line_too_long());
                }
                let size = if line.is_empty() {
                    chunk_size(&input[pos..line_end])?
                } else {
                    line.extend_from_slice(&input[pos..line_end]);
                    let size = chunk_size(line);
                    line.clear();
                    size?
                };
                pos = line_end;
                if size == 0 {
                    *chunk = Chunk::Trailers {
                        section_bytes: 0,
                        line_bytes: 0,
                        line_is_cr: false,
                    };
                    continue;
                }
                let body_bytes = (body.len() as u64).saturating_add(size);
                if body_bytes > body_bytes_max as u64 {
                    return Err(ParseError::BodyTooLarge {
                        body_bytes,
                        body_bytes_max,
                    });
                }
                *chunk = Chunk::Data {
                    remaining_bytes: size,
                };
            }
            Chunk::Data { remaining_bytes } => {
                let take = clamp_to_usize(*remaining_bytes).min(input.len() - pos);
                extend_body(body, &input[pos..pos + take], body_bytes_max);
                pos += take;
                *remaining_bytes -= take as u64;
                if *remaining_bytes == 0 {
                    *chunk = Chunk::DataEnd { seen: 0 };
                }
            }
            Chunk::DataEnd { seen } => {
                while *seen < 2 && pos < input.len() {
                    if input[pos] != b"\r\n"[*seen] {
                        return Err(ParseError::Malformed(
                            "chunk data is not followed by CRLF".to_string(),
                        ));
                    }
                    *seen += 1;
                    pos += 1;
                }
                if *seen == 2 {
                    *chunk = Chunk::SizeLine;
                }
            }
            Chunk::Trailers {
                section_bytes,
                line_bytes,
                line_is_cr,
            } => {
                let newline = input[pos..].iter().position(|&byte| byte == b'\n');
                let piece = newline.map_or(input.len() - pos, |at| at + 1);
                *section_bytes += piece;
                if *section_bytes > header_bytes_max {
                    return Err(ParseError::HeadersTooLarge { header_bytes_max });
                }
                let Some(at) = newline else {
                    // The line goes on in the next input.
                    let piece_bytes = &input[pos..];
                    *line_is_cr = *line_bytes == 0 && piece_bytes == b"\r";
                    *line_bytes += piece_bytes.len();
                    return Ok((input.len(), false));
                };
                // The bytes of this line before its LF.
                let before = &input[pos..pos + at];
                let empty_line = (*line_bytes == 0 && (before.is_empty() || before == b"\r"))
                    || (*line_is_cr && before.is_empty());
                pos += at + 1;
                if empty_line {
                    return Ok((pos, true));
                }
                *line_bytes = 0;
                *line_is_cr = false;
            }
        }
    }
}

fn chunk_line_too_long() -> ParseError {
    ParseError::Malformed(format!(
        "chunk size line longer than {CHUNK_LINE_BYTES_MAX} bytes"
    ))
}

/// The size from one complete chunk-size line (ending with LF).
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((used, size))) if used == line.len() => Ok(size),
        _ => Err(ParseError::Malformed(format!(
            "invalid chunk size line {}",
            quote(line)
        ))),
    }
}

/// Appends `bytes` to a body whose final length is at most `final_bytes`, growing the buffer
/// geometrically but never past `final_bytes` (so a declared length is not allocated before
/// its bytes arrive, and the buffer does not end up twice the body's size).
fn extend_body(body: &mut Vec<u8>, bytes: &[u8], final_bytes: usize) {
    let needed = body.len() + bytes.len();
    if needed > body.capacity() {
        let grown = (body.capacity() * 2)
            .max(BODY_RESERVE_BYTES_INITIAL)
            .min(final_bytes)
            .max(needed);
        body.reserve_exact(grown - body.len());
    }
    body.extend_from_slice(bytes);
}

fn clamp_to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn need_more(consumed_bytes: usize) -> Parsed {
    Parsed {
        consumed_bytes,
        event: ParseEvent::NeedMore,
    }
}

/// Where the head ends (just past its empty line), looking from `from`: the first LF followed
/// by LF or by CR LF. httparse accepts bare LF line endings, so both are ends.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(offset) = bytes.get(at..)?.iter().position(|&byte| byte == b'\n') {
        let newline = at + offset;
        match bytes.get(newline + 1) {
            Some(b'\n') => return Some(newline + 2),
            Some(b'\r') => match bytes.get(newline + 2) {
                Some(b'\n') => return Some(newline + 3),
                Some(_) => {}
                None => return None,
            },
            Some(_) => {}
            None => return None,
        }
        at = newline + 1;
    }
    None
}

/// A `Content-Length` value: one or more digits (RFC 9110 section 8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Malformed(format!(
            "invalid Content-Length {}",
            quote(value)
        )));
    }
    let mut length: u64 = 0;
    for &digit in digits {
        length = match length
            .checked_mul(10)
            .and_then(|tens| tens.checked_add(u64::from(digit - b'0')))
        {
            Some(length) => length,
            // Longer than any body limit can be: the limit check answers 413.
            None => return Ok(u64::MAX),
        };
    }
    Ok(length)
}

/// Splits a request target into its raw path and raw query.
fn split_target(target: &str) -> Result<(String, String), ParseError> {
    let path_and_query = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form: drop the authority.
        match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'/' => &rest[at..],
            Some(at) => return Ok(("/".to_string(), rest[at + 1..].to_string())),
            None => "/",
        }
    } else {
        return Err(ParseError::Malformed(format!(
            "invalid request target {}",
            quote(target.as_bytes())
        )));
    };
    Ok(match path_and_query.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (path_and_query.to_string(), String::new()),
    })
}

fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        if let Some(prefix) = target.get(..scheme.len()) {
            if prefix.eq_ignore_ascii_case(scheme) {
                return target.get(scheme.len()..);
            }
        }
    }
    None
}

/// The error for a request line whose version httparse refused: 505 when it looks like an HTTP
/// version (`HTTP/<digit>...`), 400 otherwise.
fn version_error(head: &[u8]) -> ParseError {
    let start = head
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .unwrap_or(head.len());
    let rest = &head[start..];
    let line_end = rest
        .iter()
        .position(|&byte| byte == b'\r' || byte == b'\n')
        .unwrap_or(rest.len());
    let version = rest[..line_end]
        .rsplit(|&byte| byte == b' ')
        .next()
        .unwrap_or(&[]);
    match version {
        [b'H', b'T', b'T', b'P', b'/', digit, ..] if digit.is_ascii_digit() => {
            ParseError::UnsupportedVersion(quote(version))
        }
        _ => ParseError::Malformed("invalid HTTP version in the request line".to_string()),
    }
}

/// Client bytes made safe to show: printable ASCII, at most [`QUOTE_BYTES_MAX`] bytes.
fn quote(bytes: &[u8]) -> String {
    let mut text: String = bytes
        .iter()
        .take(QUOTE_BYTES_MAX)
        .map(|&byte| {
            if byte.is_ascii_graphic() || byte == b' ' {
                char::from(byte)
            } else {
                '?'
            }
        })
        .collect();
    if bytes.len() > QUOTE_BYTES_MAX {
        text.push_str("...");
    }
    text
}
