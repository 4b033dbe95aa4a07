//! Runs the built `cairn` binary: version and usage output, flag errors, agent start and graceful
//! stop on SIGTERM/SIGINT, the memlock preflight, and invocation as `consul`.
//! Every wait is bounded; a child still running when a test ends is killed.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PROTOCOL_LINE: &str = "Protocol 2 spoken by default, understands 2 to 3 (agent will \
                             automatically use protocol >2 when speaking to compatible agents)";
const RUNNING_LINE: &str = "==> Cairn agent running!";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A spawned agent whose stdout lines arrive on a channel; killed on drop if still running.
struct Agent {
    child: Child,
    lines: Receiver<String>,
    stdout_seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Agent {
    fn spawn(command: &mut Command) -> Agent {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Agent {
            child,
            lines,
            stdout_seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Reads stdout until a line equal to `wanted`; panics (with what was seen) after `timeout`.
    fn wait_for_line(&mut self, wanted: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) => {
                    let found = line == wanted;
                    self.stdout_seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {wanted:?} within {timeout:?}; stdout so far:\n{}",
                        self.stdout()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_bounded(&mut self.child, EXIT_TIMEOUT);
                    panic!(
                        "stdout closed before {wanted:?} (exit {status:?}); stdout:\n{}\nstderr:\n{}",
                        self.stdout(),
                        self.stderr_text()
                    )
                }
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits for exit (bounded), then collects the rest of stdout and all of stderr.
    fn finish(&mut self) -> (ExitStatus, String, String) {
        let status = wait_bounded(&mut self.child, EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("agent still running {EXIT_TIMEOUT:?} after the signal"));
        // The child has exited, so its stdout closes and the reader thread ends.
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) => self.stdout_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout not closed after exit"),
            }
        }
        (status, self.stdout(), self.stderr_text())
    }

    fn stdout(&self) -> String {
        self.stdout_seen.join("\n")
    }

    fn stderr_text(&mut self) -> String {
        match self.stderr.take() {
            // Only joined once the child has exited (stderr closed), so this does not hang.
            Some(handle) if !matches!(self.child.try_wait(), Ok(None)) => {
                handle.join().unwrap_or_default()
            }
            Some(handle) => {
                self.stderr = Some(handle);
                "(still running)".to_string()
            }
            None => String::new(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = wait_bounded(&mut self.child, EXIT_TIMEOUT);
        }
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Runs a short command (bounded) and returns its output.
fn run(program: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if wait_bounded(&mut child, EXIT_TIMEOUT).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} {args:?} did not exit within {EXIT_TIMEOUT:?}",
            program.display()
        );
    }
    child.wait_with_output().expect("collect output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under cargo's per-test temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("agent_cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn version_has_consuls_shape() {
    let expected = format!("Cairn v{VERSION}\n{PROTOCOL_LINE}\n");
    for arg in ["version", "-v", "--version", "-version"] {
        let out = run(Path::new(BIN), &[arg]);
        assert_eq!(out.status.code(), Some(0), "{arg}");
        assert_eq!(text(&out.stdout), expected, "{arg}");
        assert_eq!(text(&out.stderr), "", "{arg}");
    }
}

#[test]
fn unknown_command_and_no_command_print_usage_and_exit_1() {
    for args in [&["frobnicate"][..], &[]] {
        let out = run(Path::new(BIN), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("Usage: cairn [--version] [--help] <command> [<args>]"),
            "{stderr}"
        );
        assert!(stderr.contains("    agent "), "{stderr}");
        assert!(stderr.contains("    version "), "{stderr}");
        assert_eq!(text(&out.stdout), "");
    }
    let stderr = text(&run(Path::new(BIN), &["frobnicate"]).stderr);
    assert!(
        stderr.starts_with("Unknown command: \"frobnicate\""),
        "{stderr}"
    );
}

#[test]
fn unknown_agent_flag_is_rejected_like_go() {
    for (flag, name) in [("-xyz", "-xyz"), ("--xyz=1", "-xyz"), ("-dev=maybe", "")] {
        let out = run(Path::new(BIN), &["agent", flag]);
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        if name.is_empty() {
            assert_eq!(
                first,
                "invalid boolean value \"maybe\" for -dev: parse error"
            );
        } else {
            assert_eq!(first, format!("flag provided but not defined: {name}"));
        }
        assert!(stderr.contains("Usage: cairn agent [options]"), "{stderr}");
    }
    let out = run(Path::new(BIN), &["agent", "-data-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("flag needs an argument: -data-dir"));
}

#[test]
fn agent_without_dev_or_data_dir_fails() {
    let out = run(Path::new(BIN), &["agent"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("==> data_dir cannot be empty"),
        "{stderr}"
    );
    assert!(stderr.contains("-dev"), "{stderr}");
    assert_eq!(text(&out.stdout), "");
}

fn graceful_stop(args: &[&str], signal: libc::c_int, signal_name: &str) -> String {
    // Agents of parallel tests must not share the gossip port.
    let serf = format!("-serf-lan-port={}", free_port());
    let mut agent = Agent::spawn(
        Command::new(BIN)
            .args(args)
            .args([serf.as_str(), "-serf-wan-port=-1"]),
    );
    agent.wait_for_line(RUNNING_LINE, STARTUP_TIMEOUT);
    agent.signal(signal);
    let (status, stdout, stderr) = agent.finish();
    assert!(
        status.success(),
        "exit {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"==> Starting Cairn agent..."),
        "{stdout}"
    );
    let caught = format!("==> Caught signal: {signal_name}");
    let caught_at = lines.iter().position(|l| *l == caught);
    let running_at = lines.iter().position(|l| *l == RUNNING_LINE);
    assert!(caught_at > running_at, "{stdout}");
    assert!(
        lines.contains(&"==> Gracefully shutting down agent..."),
        "{stdout}"
    );
    assert_eq!(
        lines.last(),
        Some(&"==> Graceful shutdown complete"),
        "{stdout}"
    );
    assert_eq!(stderr, "");
    stdout
}

/// The value of a banner row such as `         Executors: 3 (1 raft + 2 shards) ...`.
fn banner_value<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} row in:\n{stdout}"))
}

#[test]
fn agent_dev_starts_and_stops_gracefully_on_sigterm() {
    let stdout = graceful_stop(&["agent", "-dev"], libc::SIGTERM, "terminated");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = if cpus >= 8 { cpus - 1 } else { cpus };
    assert_eq!(
        banner_value(&stdout, "Executors"),
        format!(
            "{} (1 raft + {shards} shards) on {cpus} usable CPUs",
            shards + 1
        )
    );
    assert!(
        banner_value(&stdout, "Placement").starts_with("raft on cpu "),
        "{stdout}"
    );
    assert!(banner_value(&stdout, "IO memory").contains(" per executor (RLIMIT_MEMLOCK "));
    assert_eq!(banner_value(&stdout, "Server"), "true (dev mode)");
}

#[test]
fn agent_dev_stops_gracefully_on_sigint() {
    let stdout = graceful_stop(
        &["agent", "--dev", "-node", "test-node", "-log-level=debug"],
        libc::SIGINT,
        "interrupt",
    );
    assert_eq!(banner_value(&stdout, "Node name"), "'test-node'");
    assert!(stdout.contains("[DEBUG] agent.runtime: executor running: name=cairn-raft"));
}

#[test]
fn agent_with_data_dir_creates_it_and_stops_on_sigterm() {
    let dir = temp_dir("data-dir").join("data");
    let dir_arg = format!("-data-dir={}", dir.display());
    let stdout = graceful_stop(&["agent", &dir_arg], libc::SIGTERM, "terminated");
    assert!(dir.is_dir(), "{} not created", dir.display());
    assert_eq!(banner_value(&stdout, "Data dir"), dir.display().to_string());
    assert_eq!(banner_value(&stdout, "Server"), "false");
}

#[test]
fn memlock_preflight_explains_how_to_raise_the_limit() {
    let mut command = Command::new(BIN);
    command.args(["agent", "-dev"]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 65536,
                rlim_max: 65536,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut agent = Agent::spawn(&mut command);
    let (status, stdout, stderr) = agent.finish();
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains(RUNNING_LINE), "{stdout}");
    assert!(stderr.starts_with("==> Error starting agent: "), "{stderr}");
    for needle in [
        "RLIMIT_MEMLOCK is 64 KiB (65536 bytes)",
        "ulimit -l ",
        "LimitMEMLOCK=",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} missing from:\n{stderr}"
        );
    }
}

#[test]
fn invoked_as_consul_behaves_the_same() {
    let dir = temp_dir("consul-symlink");
    let consul = dir.join("consul");
    std::os::unix::fs::symlink(BIN, &consul).expect("symlink");
    let via_consul = run(&consul, &["version"]);
    let via_cairn = run(Path::new(BIN), &["version"]);
    assert_eq!(via_consul.status.code(), Some(0));
    assert_eq!(text(&via_consul.stdout), text(&via_cairn.stdout));
    assert_eq!(
        text(&via_consul.stdout),
        format!("Cairn v{VERSION}\n{PROTOCOL_LINE}\n")
    );
    let usage = run(&consul, &[]);
    assert_eq!(usage.status.code(), Some(1));
    assert!(text(&usage.stderr).starts_with("Usage: consul [--version]"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test on loopback).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn server_args(data_dir: &Path, node: &str, port: u16) -> Vec<String> {
    vec![
        "agent".into(),
        "-server".into(),
        format!("-data-dir={}", data_dir.display()),
        format!("-node={node}"),
        "-bind=127.0.0.1".into(),
        format!("-server-port={port}"),
        format!("-serf-lan-port={}", free_port()),
        "-serf-wan-port=-1".into(),
        "-bootstrap-expect=1".into(),
    ]
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = temp_dir("locked").join("data");
    let mut first = Agent::spawn(Command::new(BIN).args(server_args(&dir, "first", free_port())));
    first.wait_for_line(RUNNING_LINE, STARTUP_TIMEOUT);
    let mut second = Agent::spawn(Command::new(BIN).args(server_args(&dir, "second", free_port())));
    let (status, stdout, stderr) = second.finish();
    assert!(
        !status.success(),
        "the second server started: {stdout}\n{stderr}"
    );
    let said = format!("{stdout}\n{stderr}");
    assert!(said.contains("is locked by another process"), "{said}");
    assert!(
        said.contains(&format!("pid {}", first.child.id())),
        "{said}"
    );
    first.signal(libc::SIGTERM);
    let (status, stdout, stderr) = first.finish();
    assert!(status.success(), "{stdout}\n{stderr}");
}

#[test]
fn a_second_agent_on_the_same_gossip_port_fails_at_once_naming_it() {
    let serf = free_port();
    let dev_args = |serf: u16| -> Vec<String> {
        vec![
            "agent".into(),
            "-dev".into(),
            format!("-http-port={}", free_port()),
            format!("-server-port={}", free_port()),
            format!("-serf-lan-port={serf}"),
            "-serf-wan-port=-1".into(),
            "-dns-port=-1".into(),
            "-grpc-port=-1".into(),
        ]
    };
    let mut first = Agent::spawn(Command::new(BIN).args(dev_args(serf)));
    first.wait_for_line(RUNNING_LINE, STARTUP_TIMEOUT);
    let mut second = Agent::spawn(Command::new(BIN).args(dev_args(serf)));
    let (status, stdout, stderr) = second.finish();
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "serf LAN (tcp) on 127.0.0.1:{serf}: Address already in use"
        )),
        "{stderr}"
    );
    // The Raft executor does not wait for the shard that failed (it used to, until the shutdown timeout).
    assert!(!stdout.contains("executors still running"), "{stdout}");
    first.signal(libc::SIGTERM);
    let (status, _, _) = first.finish();
    assert!(status.success());
}
