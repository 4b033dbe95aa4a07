//! What the agent's check runner runs, as pure code: each check's [`Spec`] (probe, interval, timeout,
//! output limit, thresholds), HTTP/1.1 request and answer bytes, Consul's status mappings, the
//! [`Schedule`] of due runs with each check's success/failure counters ([`Thresholds`]), the alias
//! aggregation ([`alias_status`]) and the tracking behind `deregister_critical_service_after`
//! ([`CriticalTracker`]). The IO lives in [`super::check_runner`], [`super::check_tls`] and
//! [`super::check_grpc`].

use crate::api::agent::{output_limit_bytes, truncate, CHECK_OUTPUT_BYTES_MAX};
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
/// Bytes read of an HTTP answer's head, on top of the check's output limit for the body.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// A run's timeout when the check names none (Consul's default for HTTP, TCP, UDP and gRPC).
pub const TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// A script run's timeout when the check names none (Consul's default).
pub const SCRIPT_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// The shortest interval (Consul's `MinInterval`): shorter ones are raised to it.
pub const INTERVAL_MS_MIN: u64 = 1_000;
/// How often an alias check looks at the aliased node or service in the published catalog.
pub const ALIAS_INTERVAL_MS: u64 = 200;
/// How often the runner looks for due checks and catalog changes.
pub const TICK_MS: u64 = 100;
/// Consul's `check_deregister_interval_min`: the shortest `deregister_critical_service_after` honoured.
pub const DEREGISTER_MS_MIN_DEFAULT: u64 = 60_000;
/// Consul's `check_reap_interval`: how often services critical for too long are deregistered.
pub const REAP_INTERVAL_MS_DEFAULT: u64 = 30_000;

/// The runner's agent-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnerSettings {
    /// The shortest `deregister_critical_service_after` honoured (shorter ones are raised to it).
    pub deregister_min_ms: u64,
    /// How often services whose check stayed critical too long are deregistered.
    pub reap_interval_ms: u64,
    /// Bytes of output kept for a check that names no `OutputMaxSize` (`check_output_max_size`).
    pub output_max_bytes: usize,
}

impl Default for RunnerSettings {
    fn default() -> RunnerSettings {
        RunnerSettings {
            deregister_min_ms: DEREGISTER_MS_MIN_DEFAULT,
            reap_interval_ms: REAP_INTERVAL_MS_DEFAULT,
            output_max_bytes: CHECK_OUTPUT_BYTES_MAX,
        }
    }
}

/// How one check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP request.
    Http(HttpProbe),
    /// A TCP connect to `host:port`, with a TLS handshake when `tcp_use_tls`.
    Tcp(String, Option<TlsOptions>),
    /// A UDP datagram to `host:port`.
    Udp(String),
    /// A gRPC health v1 `Check` call.
    Grpc(GrpcProbe),
    /// A process: program and arguments.
    Script(Vec<String>),
    /// The worst status of another node's or service's checks in the published catalog.
    Alias(AliasProbe),
}

/// How a TLS connection of a check verifies its server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The name to verify and send as SNI (empty: the target's host).
    pub server_name: String,
    /// Accept any certificate (`tls_skip_verify`).
    pub skip_verify: bool,
}

/// A gRPC check's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcProbe {
    /// The `grpc` field as registered.
    pub target: String,
    /// `host:port`.
    pub address: String,
    /// The service asked about (empty: the whole server).
    pub service: String,
    /// Over TLS (ALPN `h2`) rather than h2c.
    pub use_tls: bool,
    /// Verification when over TLS.
    pub tls: TlsOptions,
}

/// An alias check's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasProbe {
    /// The node (empty: this agent's).
    pub node: String,
    /// The service ID on that node (empty: the node itself).
    pub service: String,
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
    /// Verification for an `https://` URL.
    pub tls: TlsOptions,
    /// Follow redirects (unless `disable_redirects`).
    pub follow_redirects: bool,
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
    /// Bytes of output kept (`output_max_size`, Consul's 4 KiB by default).
    pub output_max_bytes: usize,
    /// When a run's result changes the check's status.
    pub thresholds: Thresholds,
}

/// The runner's plan for `check`; `None` when this agent does not run it (TTL, other kinds, no
/// interval).
pub fn spec(check: &HealthCheck) -> Option<Spec> {
    let d = &check.definition;
    let tls = TlsOptions {
        server_name: d.tls_server_name.clone(),
        skip_verify: d.tls_skip_verify,
    };
    let probe = match check.check_type.as_str() {
        "http" => Probe::Http(http_probe(d)),
        "tcp" => Probe::Tcp(d.tcp.clone(), d.tcp_use_tls.then(|| tls.clone())),
        "udp" => Probe::Udp(d.udp.clone()),
        "grpc" => Probe::Grpc(grpc_probe(&d.grpc, d.grpc_use_tls, tls)),
        "script" => Probe::Script(d.script_args.clone()),
        "alias" => Probe::Alias(AliasProbe {
            node: d.alias_node.clone(),
            service: d.alias_service.clone(),
        }),
        _ => return None,
    };
    let interval_ms = match probe {
        Probe::Alias(_) => ALIAS_INTERVAL_MS,
        _ => duration_ms(&d.interval)
            .filter(|ms| *ms > 0)?
            .max(INTERVAL_MS_MIN),
    };
    let timeout_default_ms = match probe {
        Probe::Script(_) => SCRIPT_TIMEOUT_MS_DEFAULT,
        _ => TIMEOUT_MS_DEFAULT,
    };
    let timeout_ms = duration_ms(&d.timeout).filter(|ms| *ms > 0);
    let timeout_ms = match probe {
        // Consul's HTTP and TCP rule: the timeout when shorter than the interval, else the interval
        // when shorter than the default, else the default.
        Probe::Http(_) | Probe::Tcp(..) => match timeout_ms {
            Some(ms) if ms < interval_ms => ms,
            _ => interval_ms.min(timeout_default_ms),
        },
        _ => timeout_ms.unwrap_or(timeout_default_ms),
    };
    Some(Spec {
        probe,
        interval_ms,
        timeout_ms,
        output_max_bytes: output_limit_bytes(d),
        thresholds: Thresholds::of(d),
    })
}

/// Splits a `grpc` field, `host:port[/service]`.
pub fn grpc_probe(target: &str, use_tls: bool, tls: TlsOptions) -> GrpcProbe {
    let (address, service) = target.split_once('/').unwrap_or((target, ""));
    GrpcProbe {
        target: target.to_string(),
        address: address.to_string(),
        service: service.to_string(),
        use_tls,
        tls,
    }
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
        tls: TlsOptions {
            server_name: d.tls_server_name.clone(),
            skip_verify: d.tls_skip_verify,
        },
        follow_redirects: !d.disable_redirects,
    }
}

/// A Go duration as whole milliseconds (rounded up); `None` when unset or malformed.
pub fn duration_ms(text: &str) -> Option<u64> {
    let ns = parse_go_duration(text).ok()?;
    u64::try_from(ns).ok().map(|ns| ns.div_ceil(1_000_000))
}

/// Where an `http://` or `https://` URL points: scheme, authority (for `Host`), host, port and path with
/// query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    /// Whether the scheme is `https`.
    pub tls: bool,
    /// `host[:port]` as written.
    pub authority: String,
    /// The host (brackets of an IPv6 literal removed).
    pub host: String,
    /// The port (80, or 443 for `https`, when absent).
    pub port: u16,
    /// Path and query (`/` when absent).
    pub path: String,
}

/// Parses an `http://` or `https://` URL; anything else is an error a user can read.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(format!("unsupported protocol scheme in {url:?}")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('?') => (&rest[..at], format!("/{}", &rest[at..])),
        Some(at) => (&rest[..at], rest[at..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
    Ok(HttpTarget {
        tls,
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
    /// The body read (possibly cut at the check's read limit).
    pub body: Vec<u8>,
    /// The `Location` header, when present.
    pub location: Option<String>,
}

/// Parses the bytes of an answer; `None` before a complete head.
pub fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_once(' ')?.1.trim().to_string();
    let code = status.get(..3)?.parse().ok()?;
    let mut chunked = false;
    let mut location = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("location") {
            location = Some(value.trim().to_string());
        }
    }
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Some(HttpAnswer {
        code,
        status,
        body,
        location,
    })
}

/// Redirects an HTTP check follows before it fails (Go's client default).
pub const REDIRECTS_MAX: usize = 10;

/// The request a redirect answer leads to, by Go's client rules: 301, 302 and 303 turn the method into
/// `GET` (a `HEAD` stays) and drop the body, 307 and 308 keep both; the `Location` is resolved against
/// `url`. `None` when `answer` is not a redirect with a usable `Location`.
pub fn redirect(probe: &HttpProbe, url: &str, answer: &HttpAnswer) -> Option<HttpProbe> {
    let location = answer.location.as_deref().filter(|l| !l.is_empty())?;
    let (method, body) = match answer.code {
        301..=303 if probe.method == "HEAD" => (probe.method.clone(), String::new()),
        301..=303 => ("GET".to_string(), String::new()),
        307 | 308 => (probe.method.clone(), probe.body.clone()),
        _ => return None,
    };
    let next = resolve_location(url, location)?;
    Some(HttpProbe {
        url: next,
        method,
        body,
        ..probe.clone()
    })
}

/// `location` as an absolute URL, relative to `base`.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let target = parse_http_url(base).ok()?;
    let scheme = if target.tls { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let path = target.path.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |at| at + 1)];
        format!("{dir}{location}")
    };
    Some(format!("{scheme}://{}{path}", target.authority))
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

/// An HTTP check's output: `HTTP GET <url>: 200 OK Output: <body>` (cut to `output_max_bytes`).
pub fn http_output(probe: &HttpProbe, answer: &HttpAnswer, output_max_bytes: usize) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    let text = format!(
        "HTTP {} {}: {} Output: {body}",
        probe.method, probe.url, answer.status
    );
    truncate(&text, output_max_bytes).to_string()
}

/// A script's status from its exit code: 0 passing, 1 warning, anything else (or a signal) critical.
pub fn script_status(code: Option<i32>) -> CheckStatus {
    match code {
        Some(0) => CheckStatus::Passing,
        Some(1) => CheckStatus::Warning,
        _ => CheckStatus::Critical,
    }
}

/// A check's `success_before_passing`, `failures_before_warning` and `failures_before_critical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive passing (or warning) runs before such a status is recorded.
    pub success_before_passing: u32,
    /// Consecutive failed runs before the check is recorded warning (0: as `failures_before_critical`).
    pub failures_before_warning: u32,
    /// Consecutive failed runs before the check is recorded critical.
    pub failures_before_critical: u32,
}

impl Thresholds {
    /// The thresholds a definition names.
    pub fn of(d: &CheckDefinition) -> Thresholds {
        Thresholds {
            success_before_passing: d.success_before_passing,
            failures_before_warning: d.failures_before_warning,
            failures_before_critical: d.failures_before_critical,
        }
    }
}

/// Consecutive runs of one check that succeeded (passing or warning) or failed (critical).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successes in a row.
    pub successes: u32,
    /// Failures in a row.
    pub failures: u32,
}

impl Counters {
    /// Counts a run whose probe said `status` and returns the status to record, Consul's way: a success
    /// is recorded once `success_before_passing` are in a row; a failure is recorded critical once
    /// `failures_before_critical` are in a row, else warning once `failures_before_warning` are; `None`:
    /// the check keeps its status and output.
    pub fn count(&mut self, t: &Thresholds, status: CheckStatus) -> Option<CheckStatus> {
        if matches!(status, CheckStatus::Passing | CheckStatus::Warning) {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            return (self.successes >= t.success_before_passing).then_some(status);
        }
        self.failures = self.failures.saturating_add(1);
        self.successes = 0;
        let warning_at = match t.failures_before_warning {
            0 => t.failures_before_critical,
            n => n,
        };
        if self.failures >= t.failures_before_critical {
            Some(CheckStatus::Critical)
        } else if self.failures >= warning_at {
            Some(CheckStatus::Warning)
        } else {
            None
        }
    }
}

/// The checks the runner runs and when each is due next (milliseconds on the agent's monotonic clock).
#[derive(Clone, Debug)]
pub struct Schedule {
    entries: BTreeMap<String, Entry>,
    output_max_bytes_default: usize,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::new(CHECK_OUTPUT_BYTES_MAX)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    definition: CheckDefinition,
    spec: Spec,
    due_ms: u64,
    running: bool,
    counters: Counters,
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
    /// An empty schedule whose checks without an `OutputMaxSize` keep `output_max_bytes_default` bytes.
    pub fn new(output_max_bytes_default: usize) -> Schedule {
        Schedule {
            entries: BTreeMap::new(),
            output_max_bytes_default,
        }
    }

    /// Reconciles with this node's checks: starts new ones (due at `now_ms`), restarts changed ones (their
    /// counters from zero), drops gone ones; at most [`CHECKS_MAX`]. Returns how many runnable checks were
    /// left out.
    pub fn sync(&mut self, checks: &[&HealthCheck], now_ms: u64) -> usize {
        let runnable: BTreeMap<&str, (&HealthCheck, Spec)> = checks
            .iter()
            .filter_map(|c| Some((c.check_id.as_str(), (*c, spec(c)?))))
            .map(|(id, (check, mut spec))| {
                if check.definition.output_max_size == 0 {
                    spec.output_max_bytes = self.output_max_bytes_default;
                }
                (id, (check, spec))
            })
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
                counters: Counters::default(),
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

    /// Notes that the run of `id` of `definition` ended with `status` and returns the status to record
    /// (see [`Counters::count`]); `None` when nothing is to be recorded (below a threshold, or the check
    /// is gone or changed meanwhile).
    pub fn finish(
        &mut self,
        id: &str,
        definition: &CheckDefinition,
        status: CheckStatus,
    ) -> Option<CheckStatus> {
        let entry = self.entries.get_mut(id)?;
        entry.running = false;
        if entry.definition != *definition {
            return None;
        }
        let thresholds = entry.spec.thresholds;
        entry.counters.count(&thresholds, status)
    }

    /// The counters of `id`, when scheduled.
    pub fn counters(&self, id: &str) -> Option<Counters> {
        self.entries.get(id).map(|e| e.counters)
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

/// What an alias check sees of the aliased node: whether the aliased service is registered there, and
/// the node's checks.
#[derive(Clone, Debug, Default)]
pub struct AliasView<'a> {
    /// The aliased node.
    pub node: &'a str,
    /// Whether the aliased service (if any) is registered on the node.
    pub service_found: bool,
    /// The node's checks (node-level and of every service).
    pub checks: Vec<&'a HealthCheck>,
}

/// An alias check's status and output: the worst status among the aliased node's node-level checks and
/// the aliased service's checks (critical wins at once, warning over passing), leaving out the alias
/// check itself (`own_id` on `own_node`); passing with `No checks found.` when there are none; critical
/// when the aliased service is not registered.
pub fn alias_status(
    own_node: &str,
    own_id: &str,
    service: &str,
    view: &AliasView,
) -> (CheckStatus, String) {
    if !service.is_empty() && !view.service_found {
        let text = format!("Service {service} could not be found on node {}", view.node);
        return (CheckStatus::Critical, text);
    }
    let mut status = CheckStatus::Passing;
    let mut output = "No checks found.".to_string();
    for check in &view.checks {
        let own = check.node == own_node && check.check_id == own_id;
        let relevant = check.service_id.is_empty() || check.service_id == service;
        if own || !relevant {
            continue;
        }
        match check.status {
            CheckStatus::Passing => {
                if status == CheckStatus::Passing {
                    output = "All checks passing.".to_string();
                }
            }
            failing => {
                let worse = matches!(failing, CheckStatus::Critical | CheckStatus::Maintenance)
                    || status == CheckStatus::Passing;
                if worse {
                    status = match failing {
                        CheckStatus::Warning => CheckStatus::Warning,
                        _ => CheckStatus::Critical,
                    };
                    output = format!("Aliased check {:?} failing: {}", check.name, check.output);
                }
                if status == CheckStatus::Critical {
                    break;
                }
            }
        }
    }
    (status, output)
}

/// Since when each of this agent's checks with `deregister_critical_service_after` has been seen
/// critical, to deregister its service once that is longer than the setting.
#[derive(Clone, Debug, Default)]
pub struct CriticalTracker {
    since_ms: BTreeMap<String, u64>,
}

impl CriticalTracker {
    /// Notes the status of this node's checks at `now_ms` and returns the IDs of the services (sorted,
    /// each once) that a check has held critical for longer than its `deregister_critical_service_after`
    /// (raised to `min_ms`).
    pub fn observe(&mut self, checks: &[HealthCheck], now_ms: u64, min_ms: u64) -> Vec<String> {
        let mut services = std::collections::BTreeSet::new();
        let mut seen = BTreeMap::new();
        for check in checks {
            let after = duration_ms(&check.definition.deregister_critical_service_after)
                .filter(|ms| *ms > 0);
            let critical = check.status == CheckStatus::Critical;
            let (Some(after_ms), true, false) = (after, critical, check.service_id.is_empty())
            else {
                continue;
            };
            let since = *self.since_ms.get(&check.check_id).unwrap_or(&now_ms);
            seen.insert(check.check_id.clone(), since);
            if now_ms.saturating_sub(since) > after_ms.max(min_ms) {
                services.insert(check.service_id.clone());
            }
        }
        self.since_ms = seen;
        services.into_iter().collect()
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
