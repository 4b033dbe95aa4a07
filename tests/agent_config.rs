//! Runs the built `cairn` binary with config files: startup errors name the file (bad syntax, unknown keys,
//! unreadable paths), and an agent with a known-but-unimplemented key starts and logs a warning.
//! Every wait is bounded; a child still running when a test ends is killed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const RUNNING_LINE: &str = "==> Cairn agent running!";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under cargo's per-test temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("agent_config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write config file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `cairn` with its output collected by threads (stdout lines also arrive on a channel); killed on
/// drop if still running.
struct Run {
    child: Child,
    lines: Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Run {
    fn start(args: &[&str]) -> Run {
        // Agents of parallel tests must not share the gossip port.
        let serf = format!(
            "-serf-lan-port={}",
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_or(0, |a| a.port())
        );
        let extra: &[&str] = if args.first() == Some(&"agent") {
            &[serf.as_str(), "-serf-wan-port=-1"]
        } else {
            &[]
        };
        let mut child = Command::new(BIN)
            .args(args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                let _ = tx.send(line);
            }
            text
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Run {
            child,
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// Waits (bounded) for a stdout line equal to `wanted`.
    fn wait_for_line(&mut self, wanted: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) if line == wanted => return,
                Ok(_) => {}
                Err(_) => {
                    let (status, stdout, stderr) = self.finish();
                    panic!("no {wanted:?} ({status:?}); stdout:\n{stdout}\nstderr:\n{stderr}");
                }
            }
        }
    }

    /// Waits (bounded) for exit, then returns the status, stdout and stderr.
    fn finish(&mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                None => {
                    let _ = self.child.kill();
                    panic!("cairn did not exit within {TIMEOUT:?}");
                }
            }
        };
        let join = |handle: Option<JoinHandle<String>>| {
            handle
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default()
        };
        (status, join(self.stdout.take()), join(self.stderr.take()))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs an agent that must fail at startup; returns its stderr after checking the exit code and stdout.
fn startup_error(args: &[&str]) -> String {
    let (status, stdout, stderr) = Run::start(args).finish();
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains(RUNNING_LINE), "{stdout}");
    stderr
}

#[test]
fn a_bad_config_file_is_refused_naming_the_file_and_position() {
    let dir = TempDir::new("syntax");
    let file = dir.write(
        "agent.json",
        "{\n  \"datacenter\": \"dc1\",\n  \"server\" true\n}\n",
    );
    let stderr = startup_error(&["agent", "-dev", "-config-file", &file]);
    assert!(
        stderr.starts_with(&format!("==> failed to parse {file}: line 3, column 12: ")),
        "{stderr}"
    );
    let file = dir.write("agent.hcl", "ports {\n  http = = 1\n}\n");
    let stderr = startup_error(&["agent", "-dev", &format!("-config-file={file}")]);
    assert!(
        stderr.starts_with(&format!("==> failed to parse {file}: line 2, column ")),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_in_a_config_dir_is_refused() {
    let dir = TempDir::new("unknown");
    dir.write("a.json", r#"{"datacenter": "dc1"}"#);
    let file = dir.write("b.hcl", "datacenter = \"dc1\"\nbogus_key = true\n");
    let stderr = startup_error(&["agent", "-dev", "-config-dir", &dir.0.display().to_string()]);
    assert_eq!(
        stderr,
        format!(
            "==> failed to parse {file}: 1 error occurred:\n\t* invalid config key bogus_key\n"
        )
    );
}

#[test]
fn unreadable_paths_and_bad_extensions_are_refused() {
    let dir = TempDir::new("paths");
    let missing = dir.0.join("missing.json").display().to_string();
    let stderr = startup_error(&["agent", "-dev", "-config-file", &missing]);
    assert!(
        stderr.starts_with(&format!("==> config: Open failed on {missing}. ")),
        "{stderr}"
    );
    let file = dir.write("agent.conf", "{}");
    let stderr = startup_error(&["agent", "-dev", "-config-file", &file]);
    assert!(
        stderr.contains(&file) && stderr.contains(".json or .hcl"),
        "{stderr}"
    );
}

#[test]
fn an_unimplemented_consul_key_warns_and_the_agent_starts() {
    let dir = TempDir::new("warn");
    let file = dir.write(
        "agent.hcl",
        "telemetry {\n  disable_hostname = true\n}\nnode_name = \"from-file\"\n",
    );
    let mut run = Run::start(&["agent", "-dev", "-config-dir", &dir.0.display().to_string()]);
    run.wait_for_line(RUNNING_LINE);
    // SAFETY: kill(2) on our own child's pid, which has not been reaped.
    unsafe { libc::kill(run.child.id() as libc::pid_t, libc::SIGTERM) };
    let (status, stdout, stderr) = run.finish();
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "[WARN]  agent: {file}: config key \"telemetry\" is not supported by cairn yet and is ignored"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Node name: 'from-file'"), "{stdout}");
}
