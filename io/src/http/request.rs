//! The parsed request: method, target (path and raw query), version, headers and body.

use std::fmt;

/// An HTTP request method. The common ones are variants; any other valid token is kept in
/// [`Method::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answered like `GET`, without a body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// Any other method token, exactly as sent (methods are case-sensitive).
    Other(String),
}

impl Method {
    /// The method for a token (case-sensitive, as RFC 9110 says).
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method's token, e.g. `"GET"`.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP version of a request (the parser accepts only these two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: connections close after each response unless the request asks for
    /// `Connection: keep-alive`.
    Http10,
    /// `HTTP/1.1`: connections stay open unless either side says `Connection: close`.
    Http11,
}

impl Version {
    /// The version as written on the wire, e.g. `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field's position in [`Headers`]' byte store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    name_start: u32,
    /// The name ends and the value starts here.
    name_end: u32,
    value_end: u32,
}

/// Header fields in the order they came, with case-insensitive name lookup.
///
/// Names and values live in one byte buffer (two allocations for all the fields). Values are
/// bytes, since HTTP allows non-ASCII octets in them; [`Headers::get_str`] gives UTF-8 text.
/// Parsed names are always tokens (ASCII).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Headers {
    /// An empty set.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// An empty set with room for `count` fields of `bytes` name and value bytes in total.
    pub fn with_capacity(count: usize, bytes: usize) -> Headers {
        Headers {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(count),
        }
    }

    /// Appends a field (an existing field of the same name is kept; see [`Headers::set`]).
    ///
    /// Nothing is validated here; the response writer skips fields whose name is not a token
    /// or whose value holds CR, LF or NUL, so a handler cannot split a response.
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let name_start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let name_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        // Offsets fit in u32: a parsed head is at most HEADER_BYTES_MAX_LIMIT bytes, and a
        // handler building more than 4 GiB of headers has a bug; saturating keeps it harmless.
        self.entries.push(Entry {
            name_start: to_u32(name_start),
            name_end: to_u32(name_end),
            value_end: to_u32(self.bytes.len()),
        });
    }

    /// Replaces every field named `name` (case-insensitive) by one field with `value`.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.remove(name);
        self.push(name, value);
    }

    /// Removes every field named `name` (case-insensitive); returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        let bytes = &self.bytes;
        self.entries
            .retain(|entry| !name_of(bytes, entry).eq_ignore_ascii_case(name.as_bytes()));
        before - self.entries.len()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|entry| name_of(&self.bytes, entry).eq_ignore_ascii_case(name.as_bytes()))
            .map(|entry| value_of(&self.bytes, entry))
    }

    /// The value of the first field named `name` as text; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The values of every field named `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |entry| name_of(&self.bytes, entry).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |entry| value_of(&self.bytes, entry))
    }

    /// True when a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when a comma-separated list field named `name` (in any of its fields) holds
    /// `token`, compared case-insensitively, e.g. `has_token("connection", "close")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|value| {
            value
                .split(|&byte| byte == b',')
                .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Every field as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.entries.iter().map(move |entry| {
            let name = std::str::from_utf8(name_of(&self.bytes, entry)).unwrap_or("");
            (name, value_of(&self.bytes, entry))
        })
    }

    /// Name and value bytes held, for sizing.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

fn to_u32(offset: usize) -> u32 {
    u32::try_from(offset).unwrap_or(u32::MAX)
}

fn name_of<'a>(bytes: &'a [u8], entry: &Entry) -> &'a [u8] {
    bytes
        .get(entry.name_start as usize..entry.name_end as usize)
        .unwrap_or(&[])
}

fn value_of<'a>(bytes: &'a [u8], entry: &Entry) -> &'a [u8] {
    bytes
        .get(entry.name_end as usize..entry.value_end as usize)
        .unwrap_or(&[])
}

/// Strips optional whitespace (SP, HTAB) from both ends.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// One complete HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path part of the request target, raw (not percent-decoded), e.g. `/v1/kv/foo`.
    /// Absolute-form targets (`http://host/p`) are reduced to their path (`/p`); the asterisk
    /// form is `*`.
    pub path: String,
    /// The raw query string after `?`, without the `?` (empty when there is none), e.g.
    /// `index=10&wait=5m`.
    pub query: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields, in order (trailers of a chunked body are skipped, not merged).
    pub headers: Headers,
    /// The body, de-chunked; empty when the request had none.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no headers and no body, e.g. for handler tests.
    pub fn new(method: Method, target: &str) -> Request {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (target, ""),
        };
        Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            version: Version::Http11,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// True when the connection may carry another request after this one: HTTP/1.1 unless the
    /// request says `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.headers.has_token("connection", "close") {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => self.headers.has_token("connection", "keep-alive"),
        }
    }

    /// True when an HTTP/1.1 request carries `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11 && self.headers.has_token("expect", "100-continue")
    }
}
