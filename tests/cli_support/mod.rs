//! Running the `cairn` client commands against a test agent: bounded waits, output captured,
//! `CONSUL_*` variables of the caller's environment removed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");
/// How long one command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A command line for `program` (the binary or a link to it) talking to `http`.
pub fn command(program: &Path, http: Option<SocketAddr>, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("CONSUL_") {
            command.env_remove(name);
        }
    }
    if let Some(http) = http {
        command.env("CONSUL_HTTP_ADDR", http.to_string());
    }
    command
}

/// Runs `command` with `stdin` to completion (killed after [`COMMAND_TIMEOUT`]).
pub fn run_command(mut command: Command, stdin: &[u8]) -> Out {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    wait_output(child, COMMAND_TIMEOUT)
}

/// Waits for `child` (output piped) at most `timeout`, then kills it.
pub fn wait_output(mut child: Child, timeout: Duration) -> Out {
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs `cairn <args>` against the agent at `http`.
pub fn cli(http: SocketAddr, args: &[&str]) -> Out {
    run_command(command(Path::new(BIN), Some(http), args), b"")
}

/// Runs `cairn <args>` against the agent at `http` with `stdin`.
pub fn cli_stdin(http: SocketAddr, args: &[&str], stdin: &[u8]) -> Out {
    run_command(command(Path::new(BIN), Some(http), args), stdin)
}

/// Runs `cairn <args>` that must succeed; returns its stdout.
pub fn ok(http: SocketAddr, args: &[&str]) -> String {
    let out = cli(http, args);
    assert_eq!(out.code, 0, "{args:?} failed: {out:?}");
    out.stdout
}

/// Runs `cairn <args>` that must fail with exit code 1; returns its stderr.
pub fn fails(http: SocketAddr, args: &[&str]) -> String {
    let out = cli(http, args);
    assert_eq!(out.code, 1, "{args:?} should fail: {out:?}");
    out.stderr
}

/// An address where nothing listens (a port bound and released).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A link named `consul` to the binary, in `dir`.
pub fn consul_link(dir: &Path) -> PathBuf {
    let link = dir.join("consul");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).expect("symlink");
    link
}

/// Polls `check` every 20 ms until it holds, for at most `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what} not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
