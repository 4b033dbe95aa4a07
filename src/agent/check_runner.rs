//! The check runner's IO (see [`super::checks`] for what runs and the bounds): one task on shard 0 keeps
//! the [`Schedule`] in step with the published catalog and spawns each due run as a local task; HTTP(S),
//! TCP, UDP and gRPC probes use glommio sockets (TLS through [`super::check_tls`]), an alias check reads
//! the published catalog, and name lookups, the system's root certificates and scripts are handled on a
//! thread of their own that the shard polls, so the shard never blocks. A run's status goes through the
//! check's [`Thresholds`](super::checks::Thresholds) before it is recorded. The same task deregisters a
//! service whose check has stayed critical longer than its `deregister_critical_service_after`.

use super::check_grpc;
use super::check_tls;
use super::checks::{
    alias_status, http_output, http_status, parse_answer, parse_http_url, redirect, resolve,
    script_status, split_host_port, AliasProbe, AliasView, CriticalTracker, GrpcProbe, HttpAnswer,
    HttpProbe, HttpTarget, Probe, Run, RunnerSettings, Schedule, Spec, TlsOptions, REDIRECTS_MAX,
    RESPONSE_HEAD_BYTES_MAX, RUNS_CONCURRENT_MAX, SCRIPT_RUNS_CONCURRENT_MAX, TICK_MS,
};
use super::http::FrontEnd;
use crate::fsm::{CheckStatus, HealthCheck};
use cairn_io::Shutdown;
use futures_lite::future::or;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpStream, UdpSocket};
use std::cell::RefCell;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the shard looks whether an off-shard job ended.
pub const OFF_SHARD_POLL_MS: u64 = 10;
/// How often a script's thread looks whether the process ended.
pub const SCRIPT_POLL_MS: u64 = 10;
/// The datagram a UDP check sends.
pub const UDP_PAYLOAD: &[u8] = b"Consul health check";
/// Bytes of a UDP reply read (the rest is dropped).
pub const UDP_REPLY_BYTES_MAX: usize = 2048;

/// Runs this agent's checks until `shutdown`.
pub async fn run_checks(front: Rc<FrontEnd>, settings: RunnerSettings, shutdown: Shutdown) {
    let schedule = Rc::new(RefCell::new(Schedule::new(settings.output_max_bytes)));
    let mut critical = CriticalTracker::default();
    let mut seen_revision = None;
    let mut reaped_ms = front.now_ms();
    while !shutdown.is_triggered() {
        pause(TICK_MS, &shutdown).await;
        let now_ms = front.now_ms();
        let revision = front.local_revision();
        let checks = front.local_checks();
        if seen_revision != Some(revision) {
            seen_revision = Some(revision);
            let refs: Vec<&HealthCheck> = checks.iter().collect();
            schedule.borrow_mut().sync(&refs, now_ms);
        }
        let overdue = critical.observe(&checks, now_ms, settings.deregister_min_ms);
        if now_ms.saturating_sub(reaped_ms) >= settings.reap_interval_ms {
            reaped_ms = now_ms;
            for service in overdue {
                front.deregister_local_service(&service).await;
            }
        }
        let runs =
            schedule
                .borrow_mut()
                .take_due(now_ms, RUNS_CONCURRENT_MAX, SCRIPT_RUNS_CONCURRENT_MAX);
        for run in runs {
            spawn_run(Rc::clone(&front), Rc::clone(&schedule), run);
        }
    }
}

fn spawn_run(front: Rc<FrontEnd>, schedule: Rc<RefCell<Schedule>>, run: Run) {
    glommio::spawn_local(async move {
        let (status, output) = match &run.spec.probe {
            Probe::Alias(alias) => alias_check(&front, &run.id, alias),
            _ => execute(&run.spec).await,
        };
        let record = schedule
            .borrow_mut()
            .finish(&run.id, &run.definition, status);
        if let Some(status) = record {
            front
                .record_check(&run.id, &run.definition, status, &output)
                .await;
        }
    })
    .detach();
}

/// Sleeps `ms`, or less when `shutdown` comes first.
pub(super) async fn pause(ms: u64, shutdown: &Shutdown) {
    let tick = glommio::timer::sleep(Duration::from_millis(ms));
    or(
        async {
            tick.await;
        },
        shutdown.wait(),
    )
    .await;
}

/// Runs one check once (every kind but alias, which reads the catalog): its status and output.
pub async fn execute(spec: &Spec) -> (CheckStatus, String) {
    match &spec.probe {
        Probe::Http(probe) => http_check(probe, spec.timeout_ms, spec.output_max_bytes).await,
        Probe::Tcp(address, tls) => tcp_check(address, tls.as_ref(), spec.timeout_ms).await,
        Probe::Udp(address) => udp_check(address, spec.timeout_ms).await,
        Probe::Grpc(probe) => grpc_check(probe, spec.timeout_ms).await,
        Probe::Script(args) => {
            script_check(args.clone(), spec.timeout_ms, spec.output_max_bytes).await
        }
        Probe::Alias(_) => (
            CheckStatus::Critical,
            "an alias check needs the catalog".to_string(),
        ),
    }
}

fn alias_check(front: &FrontEnd, id: &str, alias: &AliasProbe) -> (CheckStatus, String) {
    let (node, service_found, checks) = front.alias_view(&alias.node, &alias.service);
    let view = AliasView {
        node: &node,
        service_found,
        checks: checks.iter().collect(),
    };
    alias_status(front.node_name(), id, &alias.service, &view)
}

/// `future`'s output, or `None` when it takes longer than `ms`.
async fn within<T>(ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let timer = async {
        glommio::timer::sleep(Duration::from_millis(ms)).await;
        None
    };
    or(async { Some(future.await) }, timer).await
}

/// Runs `job` on a thread of its own and waits for it without blocking the shard.
pub async fn off_shard<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let handle = std::thread::Builder::new()
        .name("cairn-check".to_string())
        .spawn(job)
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    while !handle.is_finished() {
        glommio::timer::sleep(Duration::from_millis(OFF_SHARD_POLL_MS)).await;
    }
    handle
        .join()
        .map_err(|_| "the check's thread panicked".to_string())
}

/// `host:port` as a socket address; names are looked up off the shard.
async fn lookup(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let host = host.to_string();
    off_shard(move || resolve(&host, port)).await?
}

/// `1500ms`, `10s`: a timeout as Go prints simple durations.
fn go_duration(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A TLS client configuration for a check (the system's roots are loaded off the shard, once).
async fn tls_config(
    options: &TlsOptions,
    alpn: &[&[u8]],
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let roots = if options.skip_verify {
        None
    } else {
        match check_tls::loaded_roots() {
            Some(roots) => Some(roots),
            None => Some(off_shard(check_tls::load_system_roots).await?),
        }
    };
    check_tls::client_config(roots, options.skip_verify, alpn)
}

async fn http_check(
    probe: &HttpProbe,
    timeout_ms: u64,
    output_max_bytes: usize,
) -> (CheckStatus, String) {
    let fail = |e: String| {
        let text = format!("HTTP {} {}: {e}", probe.method, probe.url);
        (CheckStatus::Critical, text)
    };
    let target = match parse_http_url(&probe.url) {
        Ok(target) => target,
        Err(e) => return fail(e),
    };
    let exchange = http_follow(probe, target, timeout_ms, output_max_bytes);
    match within(timeout_ms, exchange).await {
        None => fail(format!("timed out after {}", go_duration(timeout_ms))),
        Some(Err(e)) => fail(e),
        Some(Ok(answer)) => (
            http_status(answer.code),
            http_output(probe, &answer, output_max_bytes),
        ),
    }
}

/// One request, and the requests its redirects lead to (at most [`REDIRECTS_MAX`]) unless the check
/// disables them.
async fn http_follow(
    probe: &HttpProbe,
    target: HttpTarget,
    timeout_ms: u64,
    output_max_bytes: usize,
) -> Result<HttpAnswer, String> {
    let mut current = probe.clone();
    let mut target = target;
    for _ in 0..=REDIRECTS_MAX {
        let answer = http_exchange(&current, &target, timeout_ms, output_max_bytes).await?;
        let next = probe
            .follow_redirects
            .then(|| redirect(&current, &current.url, &answer))
            .flatten();
        let Some(next) = next else {
            return Ok(answer);
        };
        target = parse_http_url(&next.url)?;
        current = next;
    }
    Err(format!("stopped after {REDIRECTS_MAX} redirects"))
}

async fn http_exchange(
    probe: &HttpProbe,
    target: &HttpTarget,
    timeout_ms: u64,
    output_max_bytes: usize,
) -> Result<HttpAnswer, String> {
    let addr = lookup(&target.host, target.port).await?;
    let tcp = connect(addr, timeout_ms).await?;
    let request = super::checks::request_bytes(probe, target);
    let limit = RESPONSE_HEAD_BYTES_MAX + output_max_bytes;
    let raw = if target.tls {
        let config = tls_config(&probe.tls, &[]).await?;
        let name = check_tls::server_name(&probe.tls, &target.host)?;
        let mut stream = check_tls::handshake(tcp, config, name).await?;
        exchange(&mut stream, &request, limit).await?
    } else {
        let mut stream = tcp;
        exchange(&mut stream, &request, limit).await?
    };
    parse_answer(&raw).ok_or_else(|| format!("malformed HTTP response from {addr}"))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    limit: usize,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    read_answer(stream, limit).await
}

async fn connect(addr: SocketAddr, timeout_ms: u64) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(addr, Duration::from_millis(timeout_ms.max(1)))
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// Reads an answer until the peer closes, the `Content-Length` body is complete, or `limit` bytes. A TLS
/// peer that closes without `close_notify` after sending something ends the answer the same way.
async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while raw.len() < limit && !super::checks::answer_complete(&raw) {
        let read = match stream.read(&mut buffer).await {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => 0,
            Err(e) => return Err(format!("read: {e}")),
        };
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    raw.truncate(limit);
    Ok(raw)
}

/// A TCP check: a connect, and with `tcp_use_tls` a TLS handshake.
async fn tcp_check(
    address: &str,
    tls: Option<&TlsOptions>,
    timeout_ms: u64,
) -> (CheckStatus, String) {
    let attempt = async {
        let addr = address_of(address).await?;
        let tcp = connect(addr, timeout_ms).await?;
        if let Some(options) = tls {
            let host = split_host_port(address, 0)?.0;
            let config = tls_config(options, &[]).await?;
            let name = check_tls::server_name(options, &host)?;
            check_tls::handshake(tcp, config, name).await?;
        }
        Ok(())
    };
    let kind = if tls.is_some() { "TCP+TLS" } else { "TCP" };
    match within(timeout_ms, attempt).await {
        Some(Ok(())) => (
            CheckStatus::Passing,
            format!("{kind} connect {address}: Success"),
        ),
        Some(Err(e)) => (CheckStatus::Critical, e),
        None => (
            CheckStatus::Critical,
            format!("dial tcp {address}: i/o timeout"),
        ),
    }
}

/// `host:port` (a port is required) resolved.
async fn address_of(address: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(address, 0)?;
    if port == 0 {
        return Err(format!("address {address}: missing port in address"));
    }
    lookup(&host, port).await
}

/// A UDP check: one datagram to the target on a connected socket; passing when anything comes back or
/// nothing does within the timeout, critical when the send fails or the target refuses (an ICMP port
/// unreachable surfaces as `ECONNREFUSED`).
async fn udp_check(address: &str, timeout_ms: u64) -> (CheckStatus, String) {
    let attempt = async {
        let addr = address_of(address).await?;
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(|e| format!("udp socket: {e}"))?;
        socket
            .connect(addr)
            .await
            .map_err(|e| format!("dial udp {addr}: {e}"))?;
        socket
            .send(UDP_PAYLOAD)
            .await
            .map_err(|e| format!("write udp {addr}: {e}"))?;
        let mut reply = vec![0u8; UDP_REPLY_BYTES_MAX];
        match within(timeout_ms, socket.recv(&mut reply)).await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(format!("read udp {addr}: {e}")),
        }
    };
    // The read waits at most the timeout; the rest (lookup, send) gets as long again.
    match within(timeout_ms.saturating_mul(2), attempt).await {
        Some(Ok(())) => (
            CheckStatus::Passing,
            format!("UDP connect {address}: Success"),
        ),
        Some(Err(e)) => (CheckStatus::Critical, e),
        None => (
            CheckStatus::Critical,
            format!("dial udp {address}: i/o timeout"),
        ),
    }
}

/// A gRPC health check: one `Check` call over h2c or TLS (ALPN `h2`).
async fn grpc_check(probe: &GrpcProbe, timeout_ms: u64) -> (CheckStatus, String) {
    let attempt = async {
        let (host, port) = split_host_port(&probe.address, 0)?;
        if port == 0 {
            return Err(format!(
                "address {}: missing port in address",
                probe.address
            ));
        }
        let addr = lookup(&host, port).await?;
        let tcp = connect(addr, timeout_ms).await?;
        let answer = if probe.use_tls {
            let config = tls_config(&probe.tls, &[check_tls::ALPN_H2]).await?;
            let name = check_tls::server_name(&probe.tls, &host)?;
            let mut stream = check_tls::handshake(tcp, config, name).await?;
            check_grpc::call(&mut stream, "https", &probe.address, &probe.service).await?
        } else {
            let mut stream = tcp;
            check_grpc::call(&mut stream, "http", &probe.address, &probe.service).await?
        };
        check_grpc::verdict(&answer)
    };
    match within(timeout_ms, attempt).await {
        Some(Ok(())) => (
            CheckStatus::Passing,
            format!("gRPC check {}: success", probe.target),
        ),
        Some(Err(e)) => (
            CheckStatus::Critical,
            format!("gRPC check {}: failed: {e}", probe.target),
        ),
        None => (
            CheckStatus::Critical,
            format!(
                "gRPC check {}: failed: timed out after {}",
                probe.target,
                go_duration(timeout_ms)
            ),
        ),
    }
}

async fn script_check(
    args: Vec<String>,
    timeout_ms: u64,
    output_max_bytes: usize,
) -> (CheckStatus, String) {
    match off_shard(move || run_script(&args, timeout_ms, output_max_bytes)).await {
        Ok(result) => result,
        Err(e) => (CheckStatus::Critical, e),
    }
}

/// Runs a script check's process (on a thread of its own): stdout and stderr share one pipe; the whole
/// process group is killed at the timeout; the first `output_max_bytes` of output are kept.
pub fn run_script(
    args: &[String],
    timeout_ms: u64,
    output_max_bytes: usize,
) -> (CheckStatus, String) {
    match spawn_script(args) {
        Ok((child, reader)) => wait_script(child, reader, timeout_ms, output_max_bytes),
        Err(e) => (CheckStatus::Critical, e),
    }
}

fn spawn_script(args: &[String]) -> Result<(Child, std::io::PipeReader), String> {
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| "the script check has no arguments".to_string())?;
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer_too = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_too)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("failed to run {program:?}: {e}"))?;
    // SAFETY: fcntl only changes the flags of a descriptor this function owns.
    unsafe {
        libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
    }
    Ok((child, reader))
}

fn wait_script(
    mut child: Child,
    mut reader: std::io::PipeReader,
    timeout_ms: u64,
    output_max_bytes: usize,
) -> (CheckStatus, String) {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut output = Vec::new();
    loop {
        drain(&mut reader, &mut output, output_max_bytes);
        match child.try_wait() {
            Ok(Some(exit)) => {
                drain(&mut reader, &mut output, output_max_bytes);
                let text = String::from_utf8_lossy(&output).into_owned();
                return (script_status(exit.code()), text);
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(SCRIPT_POLL_MS));
            }
            other => {
                kill_group(&mut child);
                let text = match other {
                    Err(e) => format!("waiting for the check: {e}"),
                    _ => format!("Timed out ({}) running check", go_duration(timeout_ms)),
                };
                return (CheckStatus::Critical, text);
            }
        }
    }
}

/// Reads what the pipe holds now, keeping the first `max` bytes.
fn drain(reader: &mut std::io::PipeReader, output: &mut Vec<u8>, max: usize) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = reader.read(&mut buffer) {
        if read == 0 {
            return;
        }
        let room = max.saturating_sub(output.len());
        output.extend_from_slice(&buffer[..read.min(room)]);
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill only sends a signal to the process group the script leads.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::CHECK_OUTPUT_BYTES_MAX;

    fn sh(script: &str) -> Vec<String> {
        ["/bin/sh", "-c", script].map(str::to_string).to_vec()
    }

    #[test]
    fn scripts_map_exit_codes_and_capture_both_streams() {
        let (status, output) = run_script(
            &sh("echo out; echo err >&2; exit 1"),
            5_000,
            CHECK_OUTPUT_BYTES_MAX,
        );
        assert_eq!(status, CheckStatus::Warning);
        assert_eq!(output, "out\nerr\n");
        assert_eq!(
            run_script(&sh("exit 0"), 5_000, CHECK_OUTPUT_BYTES_MAX).0,
            CheckStatus::Passing
        );
        assert_eq!(
            run_script(&sh("exit 7"), 5_000, CHECK_OUTPUT_BYTES_MAX).0,
            CheckStatus::Critical
        );
        let (status, output) = run_script(&sh("sleep 5"), 200, CHECK_OUTPUT_BYTES_MAX);
        assert_eq!(
            (status, output.as_str()),
            (CheckStatus::Critical, "Timed out (200ms) running check")
        );
        let (status, output) = run_script(
            &sh("head -c 10000 /dev/zero"),
            5_000,
            CHECK_OUTPUT_BYTES_MAX,
        );
        assert_eq!(
            (status, output.len()),
            (CheckStatus::Passing, CHECK_OUTPUT_BYTES_MAX)
        );
        let missing = run_script(
            &["/nonexistent/x".to_string()],
            1_000,
            CHECK_OUTPUT_BYTES_MAX,
        );
        assert_eq!(missing.0, CheckStatus::Critical);
    }
}
