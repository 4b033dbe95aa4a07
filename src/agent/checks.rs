//! The agent's check runner: HTTP, TCP and script checks of this agent's node, each run every interval
//! with its timeout. A run whose status or output differs updates the agent's local state, and
//! anti-entropy syncs it to the catalog at once (`FrontEnd::record_check`), the path a TTL expiry takes.
//!
//! Which checks run: the runner watches the agent's local state. Whenever its revision moves it reads
//! the agent's checks and reconciles its [`Schedule`]: new checks start (first run at once), removed ones
//! stop, a changed definition restarts its check; so checks registered by any agent route, a config file
//! or a restart that restores the local state run, and a deregistration stops them, with no hook in the routes.
//!
//! Where: one task on shard 0 (next to the TTL timers). HTTP and TCP probes are glommio IO on that shard;
//! a script runs on its own thread (never on the shard), polled by the shard until it exits or its
//! timeout kills its process group. Bounds: [`CHECKS_MAX`] checks, [`RUNS_CONCURRENT_MAX`] runs at once,
//! [`SCRIPT_RUNS_CONCURRENT_MAX`] of them scripts, [`RESPONSE_BYTES_MAX`] read per HTTP answer and
//! [`CHECK_OUTPUT_BYTES_MAX`] of output kept. HTTPS is not supported yet: such a check is critical with an
//! output saying so.

use crate::api::agent::{truncate, CHECK_OUTPUT_BYTES_MAX};
use crate::api::duration::parse_go_duration;
use crate::fsm::{CheckDefinition, CheckStatus, HealthCheck};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Checks one agent runs; further ones are ignored (and logged once by the runner).
pub const CHECKS_MAX: usize = 1024;
/// Runs in flight at once, all kinds.
pub const RUNS_CONCURRENT_MAX: usize = 32;
/// Script runs in flight at once (each holds a thread).
pub const SCRIPT_RUNS_CONCURRENT_MAX: usize = 4;
/// Bytes read of one HTTP answer (head and body).
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// A run's timeout when the check names none (Consul's default).
pub const TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// The shortest interval (Consul's `MinInterval`): shorter ones are raised to it.
pub const INTERVAL_MS_MIN: u64 = 1_000;
/// How often the runner looks for due checks and catalog changes.
pub const TICK_MS: u64 = 100;

/// How one check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP request.
    Http(HttpProbe),
    /// A TCP connect to `host:port`.
    Tcp(String),
    /// A process: program and arguments.
    Script(Vec<String>),
}

/// An HTTP check's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// The URL as registered.
    pub url: String,
    /// The method (`GET` by default).
    pub method: String,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: String,
}

/// One check as the runner runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// How it probes.
    pub probe: Probe,
    /// Time between runs.
    pub interval_ms: u64,
    /// Time one run may take.
    pub timeout_ms: u64,
}

/// The runner's plan for `check`; `None` when this agent does not run it (TTL, alias, other kinds, no
/// interval).
pub fn spec(check: &HealthCheck) -> Option<Spec> {
    let d = &check.definition;
    let probe = match check.check_type.as_str() {
        "http" => Probe::Http(http_probe(d)),
        "tcp" => Probe::Tcp(d.tcp.clone()),
        "script" => Probe::Script(d.script_args.clone()),
        _ => return None,
    };
    let interval_ms = duration_ms(&d.interval).filter(|ms| *ms > 0)?;
    let timeout_ms = duration_ms(&d.timeout)
        .filter(|ms| *ms > 0)
        .unwrap_or(TIMEOUT_MS_DEFAULT);
    Some(Spec {
        probe,
        interval_ms: interval_ms.max(INTERVAL_MS_MIN),
        timeout_ms,
    })
}

fn http_probe(d: &CheckDefinition) -> HttpProbe {
    let headers = d
        .header
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
        .collect();
    HttpProbe {
        url: d.http.clone(),
        method: if d.method.is_empty() {
            "GET".to_string()
        } else {
            d.method.to_ascii_uppercase()
        },
        headers,
        body: d.body.clone(),
    }
}

fn duration_ms(text: &str) -> Option<u64> {
    let ns = parse_go_duration(text).ok()?;
    u64::try_from(ns).ok().map(|ns| ns.div_ceil(1_000_000))
}

/// Where an `http://` URL points: authority (for `Host`), host, port and path with query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host[:port]` as written.
    pub authority: String,
    /// The host (brackets of an IPv6 literal removed).
    pub host: String,
    /// The port (80 when absent).
    pub port: u16,
    /// Path and query (`/` when absent).
    pub path: String,
}

/// Parses an `http://` URL; an `https://` URL or anything else is an error a user can read.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    if url.starts_with("https://") {
        return Err("HTTPS checks are not supported yet by this agent".to_string());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported URL {url:?}: only http:// is supported"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
        Some(at) => (&rest[..at], rest[at..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let (host, port) = split_host_port(authority, 80)?;
    Ok(HttpTarget {
        authority: authority.to_string(),
        host,
        port,
        path,
    })
}

/// Splits `host[:port]` (`[v6]:port` too); `default_port` when none is written.
pub fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("bad address {text:?}");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
        (host, tail.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

/// Resolves `host:port` (a blocking name lookup for names; run it off the shard).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("lookup {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("lookup {host}: no addresses"))
}

/// The request bytes of an HTTP check (`Connection: close`, so the answer ends at EOF).
pub fn request_bytes(probe: &HttpProbe, target: &HttpTarget) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\n", probe.method, target.path);
    let named = |name: &str| {
        probe
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !named("host") {
        head.push_str(&format!("Host: {}\r\n", target.authority));
    }
    if !named("user-agent") {
        head.push_str("User-Agent: Consul Health Check\r\n");
    }
    if !named("accept") {
        head.push_str("Accept: text/plain, text/*, */*\r\n");
    }
    for (name, value) in &probe.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !probe.body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", probe.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(probe.body.as_bytes());
    bytes
}

/// An HTTP answer's status line and body (de-chunked when chunked), from the bytes read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub code: u16,
    /// `200 OK`: code and reason phrase.
    pub status: String,
    /// The body read (possibly cut at [`RESPONSE_BYTES_MAX`]).
    pub body: Vec<u8>,
}

/// Parses the bytes of an answer; `None` before a complete head.
pub fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_once(' ')?.1.trim().to_string();
    let code = status.get(..3)?.parse().ok()?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")
        })
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some(HttpAnswer { code, status, body })
}

/// Whether `raw` holds a whole answer by its `Content-Length` (without one, the answer ends at EOF).
pub fn answer_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let length = head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|n| raw.len() - (end + 4) >= n)
}

/// The data of a chunked body, as far as it is complete.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(at) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&raw[..at]).unwrap_or("");
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        let data = &raw[at + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        raw = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Consul's HTTP status mapping: 2xx passing, 429 warning, anything else critical.
pub fn http_status(code: u16) -> CheckStatus {
    match code {
        200..=299 => CheckStatus::Passing,
        429 => CheckStatus::Warning,
        _ => CheckStatus::Critical,
    }
}

/// An HTTP check's output: `HTTP GET <url>: 200 OK Output: <body>` (cut to the output limit).
pub fn http_output(probe: &HttpProbe, answer: &HttpAnswer) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    let text = format!(
        "HTTP {} {}: {} Output: {body}",
        probe.method, probe.url, answer.status
    );
    truncate(&text, CHECK_OUTPUT_BYTES_MAX).to_string()
}

/// A script's status from its exit code: 0 passing, 1 warning, anything else (or a signal) critical.
pub fn script_status(code: Option<i32>) -> CheckStatus {
    match code {
        Some(0) => CheckStatus::Passing,
        Some(1) => CheckStatus::Warning,
        _ => CheckStatus::Critical,
    }
}

/// The checks the runner runs and when each is due next (milliseconds on the agent's monotonic clock).
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    entries: BTreeMap<String, Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    definition: CheckDefinition,
    spec: Spec,
    due_ms: u64,
    running: bool,
}

/// One run handed out by [`Schedule::take_due`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The check ID.
    pub id: String,
    /// The definition it runs (a result is recorded only while the catalog still holds it).
    pub definition: CheckDefinition,
    /// How to run it.
    pub spec: Spec,
}

impl Schedule {
    /// Reconciles with this node's checks: starts new ones (due at `now_ms`), restarts changed ones, drops
    /// gone ones; at most [`CHECKS_MAX`]. Returns how many runnable checks were left out.
    pub fn sync(&mut self, checks: &[&HealthCheck], now_ms: u64) -> usize {
        let runnable: BTreeMap<&str, (&HealthCheck, Spec)> = checks
            .iter()
            .filter_map(|c| Some((c.check_id.as_str(), (*c, spec(c)?))))
            .collect();
        self.entries.retain(|id, e| {
            runnable
                .get(id.as_str())
                .is_some_and(|(c, _)| c.definition == e.definition)
        });
        let mut left_out = 0;
        for (id, (check, spec)) in runnable {
            if self.entries.contains_key(id) {
                continue;
            }
            if self.entries.len() >= CHECKS_MAX {
                left_out += 1;
                continue;
            }
            let entry = Entry {
                definition: check.definition.clone(),
                spec,
                due_ms: now_ms,
                running: false,
            };
            self.entries.insert(id.to_string(), entry);
        }
        left_out
    }

    /// Marks and returns the checks due at `now_ms` that are not running, ID-ascending, so that at most
    /// `runs_max` are running in all and at most `scripts_max` scripts; each is next due an interval later.
    pub fn take_due(&mut self, now_ms: u64, runs_max: usize, scripts_max: usize) -> Vec<Run> {
        let is_script = |e: &Entry| matches!(e.spec.probe, Probe::Script(_));
        let mut running = self.entries.values().filter(|e| e.running).count();
        let mut scripts = self
            .entries
            .values()
            .filter(|e| e.running && is_script(e))
            .count();
        let mut out = Vec::new();
        for (id, entry) in &mut self.entries {
            let script = is_script(entry);
            let room = running < runs_max && (!script || scripts < scripts_max);
            if entry.running || entry.due_ms > now_ms || !room {
                continue;
            }
            entry.running = true;
            entry.due_ms = now_ms.saturating_add(entry.spec.interval_ms);
            running += 1;
            scripts += usize::from(script);
            out.push(Run {
                id: id.clone(),
                definition: entry.definition.clone(),
                spec: entry.spec.clone(),
            });
        }
        out
    }

    /// Notes that the run of `id` ended.
    pub fn finished(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.running = false;
        }
    }

    /// How many checks are scheduled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_check(id: &str, url: &str, interval: &str) -> HealthCheck {
        HealthCheck {
            check_id: id.to_string(),
            check_type: "http".to_string(),
            definition: CheckDefinition {
                http: url.to_string(),
                interval: interval.to_string(),
                ..CheckDefinition::default()
            },
            ..HealthCheck::default()
        }
    }

    #[test]
    fn specs_take_defaults_and_skip_what_the_agent_does_not_run() {
        let check = http_check("h", "http://127.0.0.1:80/x", "200ms");
        let s = spec(&check).expect("runnable");
        assert_eq!(
            (s.interval_ms, s.timeout_ms),
            (INTERVAL_MS_MIN, TIMEOUT_MS_DEFAULT)
        );
        let Probe::Http(probe) = &s.probe else {
            panic!("not http");
        };
        assert_eq!(probe.method, "GET");
        let ttl = HealthCheck {
            check_type: "ttl".to_string(),
            ..HealthCheck::default()
        };
        assert!(spec(&ttl).is_none());
        assert!(spec(&http_check("h", "http://x", "")).is_none());
    }

    #[test]
    fn urls_and_addresses_parse() {
        let t = parse_http_url("http://127.0.0.1:8080/health?x=1#frag").expect("url");
        assert_eq!(
            (
                t.authority.as_str(),
                t.host.as_str(),
                t.port,
                t.path.as_str()
            ),
            ("127.0.0.1:8080", "127.0.0.1", 8080, "/health?x=1")
        );
        let t = parse_http_url("http://example.com").expect("url");
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = parse_http_url("http://[::1]:9?q").expect("url");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/?q")
        );
        assert!(parse_http_url("https://x/").unwrap_err().contains("HTTPS"));
        assert!(parse_http_url("ftp://x/").is_err());
        assert!(split_host_port("host:notaport", 1).is_err());
        assert_eq!(resolve("127.0.0.1", 5), Ok("127.0.0.1:5".parse().unwrap()));
    }

    #[test]
    fn statuses_map_like_consul() {
        assert_eq!(http_status(200), CheckStatus::Passing);
        assert_eq!(http_status(204), CheckStatus::Passing);
        assert_eq!(http_status(429), CheckStatus::Warning);
        assert_eq!(http_status(503), CheckStatus::Critical);
        assert_eq!(http_status(301), CheckStatus::Critical);
        assert_eq!(script_status(Some(0)), CheckStatus::Passing);
        assert_eq!(script_status(Some(1)), CheckStatus::Warning);
        assert_eq!(script_status(Some(2)), CheckStatus::Critical);
        assert_eq!(script_status(None), CheckStatus::Critical);
    }

    #[test]
    fn requests_and_answers() {
        let probe = HttpProbe {
            url: "http://h:1/p".to_string(),
            method: "POST".to_string(),
            headers: vec![("X-A".to_string(), "b".to_string())],
            body: "hi".to_string(),
        };
        let target = parse_http_url(&probe.url).expect("url");
        let text = String::from_utf8(request_bytes(&probe, &target)).expect("utf8");
        assert!(
            text.starts_with("POST /p HTTP/1.1\r\nHost: h:1\r\n"),
            "{text}"
        );
        assert!(text.contains("X-A: b\r\nContent-Length: 2\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhi"), "{text}");
        let answer = parse_answer(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nfine").expect("answer");
        assert_eq!((answer.code, answer.status.as_str()), (200, "200 OK"));
        assert_eq!(
            http_output(&probe, &answer),
            "HTTP POST http://h:1/p: 200 OK Output: fine"
        );
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let answer = parse_answer(chunked).expect("answer");
        assert_eq!((answer.code, answer.body.as_slice()), (503, &b"abcde"[..]));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_none());
        assert!(answer_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        ));
        assert!(!answer_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok"
        ));
        assert!(!answer_complete(b"HTTP/1.1 200 OK\r\n\r\nok"));
    }

    #[test]
    fn the_schedule_follows_the_catalog_and_bounds_runs() {
        let mut schedule = Schedule::default();
        let a = http_check("a", "http://127.0.0.1:1/", "1s");
        let b = http_check("b", "http://127.0.0.1:2/", "2s");
        assert_eq!(schedule.sync(&[&a, &b], 0), 0);
        let runs = schedule.take_due(0, 1, 1);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].id, "a");
        assert!(schedule.take_due(0, 1, 1).is_empty());
        schedule.finished("a");
        assert_eq!(schedule.take_due(0, 2, 1)[0].id, "b");
        schedule.finished("b");
        assert!(schedule.take_due(999, 2, 1).is_empty());
        assert_eq!(schedule.take_due(1_000, 2, 1)[0].id, "a");
        schedule.finished("a");
        let changed = http_check("a", "http://127.0.0.1:3/", "1s");
        schedule.sync(&[&changed], 1_100);
        assert_eq!(schedule.len(), 1);
        let runs = schedule.take_due(1_100, 2, 1);
        assert_eq!(runs[0].definition.http, "http://127.0.0.1:3/");
        schedule.sync(&[], 1_200);
        assert!(schedule.is_empty());
    }
}
