//! The check runner's IO (see [`super::checks`] for what runs and the bounds): one task on shard 0 keeps
//! the [`Schedule`] in step with the published catalog and spawns each due run as a local task; HTTP and
//! TCP probes use glommio sockets, name lookups and scripts run on a thread of their own that the shard
//! polls, so the shard never blocks.

use super::checks::{
    http_output, http_status, parse_answer, parse_http_url, resolve, script_status,
    split_host_port, HttpAnswer, HttpProbe, HttpTarget, Probe, Run, Schedule, Spec,
    RESPONSE_BYTES_MAX, RUNS_CONCURRENT_MAX, SCRIPT_RUNS_CONCURRENT_MAX, TICK_MS,
};
use super::http::FrontEnd;
use crate::api::agent::CHECK_OUTPUT_BYTES_MAX;
use crate::fsm::{CheckStatus, HealthCheck};
use cairn_io::Shutdown;
use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the shard looks whether an off-shard job ended.
pub const OFF_SHARD_POLL_MS: u64 = 10;
/// How often a script's thread looks whether the process ended.
pub const SCRIPT_POLL_MS: u64 = 10;

/// Runs this agent's HTTP, TCP and script checks until `shutdown`.
pub async fn run_checks(front: Rc<FrontEnd>, shutdown: Shutdown) {
    let schedule = Rc::new(RefCell::new(Schedule::default()));
    let mut seen_revision = None;
    while !shutdown.is_triggered() {
        pause(TICK_MS, &shutdown).await;
        let now_ms = front.now_ms();
        let revision = front.local_revision();
        if seen_revision != Some(revision) {
            seen_revision = Some(revision);
            let checks = front.local_checks();
            let refs: Vec<&HealthCheck> = checks.iter().collect();
            schedule.borrow_mut().sync(&refs, now_ms);
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
        let (status, output) = execute(&run.spec).await;
        front
            .record_check(&run.id, &run.definition, status, &output)
            .await;
        schedule.borrow_mut().finished(&run.id);
    })
    .detach();
}

async fn pause(ms: u64, shutdown: &Shutdown) {
    let tick = glommio::timer::sleep(Duration::from_millis(ms));
    or(
        async {
            tick.await;
        },
        shutdown.wait(),
    )
    .await;
}

/// Runs one check once: its status and output.
pub async fn execute(spec: &Spec) -> (CheckStatus, String) {
    match &spec.probe {
        Probe::Http(probe) => http_check(probe, spec.timeout_ms).await,
        Probe::Tcp(address) => tcp_check(address, spec.timeout_ms).await,
        Probe::Script(args) => script_check(args.clone(), spec.timeout_ms).await,
    }
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
async fn off_shard<R: Send + 'static>(
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

async fn http_check(probe: &HttpProbe, timeout_ms: u64) -> (CheckStatus, String) {
    let fail = |e: String| {
        let text = format!("HTTP {} {}: {e}", probe.method, probe.url);
        (CheckStatus::Critical, text)
    };
    let target = match parse_http_url(&probe.url) {
        Ok(target) => target,
        Err(e) => return fail(e),
    };
    match within(timeout_ms, http_exchange(probe, &target, timeout_ms)).await {
        None => fail(format!("timed out after {}", go_duration(timeout_ms))),
        Some(Err(e)) => fail(e),
        Some(Ok(answer)) => (http_status(answer.code), http_output(probe, &answer)),
    }
}

async fn http_exchange(
    probe: &HttpProbe,
    target: &HttpTarget,
    timeout_ms: u64,
) -> Result<HttpAnswer, String> {
    let addr = lookup(&target.host, target.port).await?;
    let mut stream = connect(addr, timeout_ms).await?;
    let request = super::checks::request_bytes(probe, target);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let raw = read_answer(&mut stream).await?;
    parse_answer(&raw).ok_or_else(|| format!("malformed HTTP response from {addr}"))
}

async fn connect(addr: SocketAddr, timeout_ms: u64) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(addr, Duration::from_millis(timeout_ms.max(1)))
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// Reads an answer until the peer closes, the `Content-Length` body is complete, or
/// [`RESPONSE_BYTES_MAX`] bytes.
async fn read_answer(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while raw.len() < RESPONSE_BYTES_MAX && !super::checks::answer_complete(&raw) {
        let read = stream
            .read(&mut buffer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    raw.truncate(RESPONSE_BYTES_MAX);
    Ok(raw)
}

async fn tcp_check(address: &str, timeout_ms: u64) -> (CheckStatus, String) {
    let attempt = async {
        let (host, port) = split_host_port(address, 0)?;
        if port == 0 {
            return Err(format!("address {address}: missing port in address"));
        }
        let addr = lookup(&host, port).await?;
        connect(addr, timeout_ms).await.map(drop)
    };
    match within(timeout_ms, attempt).await {
        Some(Ok(())) => (
            CheckStatus::Passing,
            format!("TCP connect {address}: Success"),
        ),
        Some(Err(e)) => (CheckStatus::Critical, e),
        None => (
            CheckStatus::Critical,
            format!("dial tcp {address}: i/o timeout"),
        ),
    }
}

async fn script_check(args: Vec<String>, timeout_ms: u64) -> (CheckStatus, String) {
    match off_shard(move || run_script(&args, timeout_ms)).await {
        Ok(result) => result,
        Err(e) => (CheckStatus::Critical, e),
    }
}

/// Runs a script check's process (on a thread of its own): stdout and stderr share one pipe; the whole
/// process group is killed at the timeout.
pub fn run_script(args: &[String], timeout_ms: u64) -> (CheckStatus, String) {
    match spawn_script(args) {
        Ok((child, reader)) => wait_script(child, reader, timeout_ms),
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
) -> (CheckStatus, String) {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut output = Vec::new();
    loop {
        drain(&mut reader, &mut output);
        match child.try_wait() {
            Ok(Some(exit)) => {
                drain(&mut reader, &mut output);
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

/// Reads what the pipe holds now, keeping the first [`CHECK_OUTPUT_BYTES_MAX`] bytes.
fn drain(reader: &mut std::io::PipeReader, output: &mut Vec<u8>) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = reader.read(&mut buffer) {
        if read == 0 {
            return;
        }
        let room = CHECK_OUTPUT_BYTES_MAX.saturating_sub(output.len());
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

    fn sh(script: &str) -> Vec<String> {
        ["/bin/sh", "-c", script].map(str::to_string).to_vec()
    }

    #[test]
    fn scripts_map_exit_codes_and_capture_both_streams() {
        let (status, output) = run_script(&sh("echo out; echo err >&2; exit 1"), 5_000);
        assert_eq!(status, CheckStatus::Warning);
        assert_eq!(output, "out\nerr\n");
        assert_eq!(run_script(&sh("exit 0"), 5_000).0, CheckStatus::Passing);
        assert_eq!(run_script(&sh("exit 7"), 5_000).0, CheckStatus::Critical);
        let (status, output) = run_script(&sh("sleep 5"), 200);
        assert_eq!(
            (status, output.as_str()),
            (CheckStatus::Critical, "Timed out (200ms) running check")
        );
        let (status, output) = run_script(&sh("head -c 10000 /dev/zero"), 5_000);
        assert_eq!(
            (status, output.len()),
            (CheckStatus::Passing, CHECK_OUTPUT_BYTES_MAX)
        );
        let missing = run_script(&["/nonexistent/x".to_string()], 1_000);
        assert_eq!(missing.0, CheckStatus::Critical);
    }
}
