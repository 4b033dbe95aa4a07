//! The `watches` of the agent configuration against a running `-dev` agent: a script handler and an
//! HTTP handler (a tiny server in the test) get each change of a key; a failing handler is logged
//! and its watch goes on; a bad watch keeps the agent from starting.

mod cli_support;
mod support;

use cli_support::{command, wait_output, wait_until, BIN};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{test_dir, Agent};

/// What the HTTP handler's server saw: (method and target, `X-Consul-Index`, body) per request.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// Serves `listener` until the test ends: records each request and answers 200.
fn serve(listener: TcpListener) -> Seen {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            if let Some(request) = read_request(&mut stream) {
                record.lock().expect("lock").push(request);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    seen
}

fn read_request(stream: &mut impl Read) -> Option<(String, String, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let length: usize = field("content-length").parse().unwrap_or(0);
            if body.len() >= length {
                let line = head.lines().next().unwrap_or_default();
                let line = line.trim_end_matches(" HTTP/1.1").to_string();
                return Some((line, field("x-consul-index"), body.to_string()));
            }
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn put(agent: &Agent, key: &str, value: &str) {
    agent.put_ok(&format!("/v1/kv/{key}"), value);
}

#[test]
fn config_watches_run_script_and_http_handlers() {
    let dir = test_dir("agent-watches");
    let script_log = dir.join("script");
    let failing_log = dir.join("failing");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen = serve(listener);
    let config = serde_json::json!({
        "watches": [
            {"type": "key", "key": "app/config",
             "args": ["/bin/sh", "-c", format!("cat >> {}", script_log.display())]},
            {"type": "key", "key": "app/config", "handler_type": "http",
             "http_handler_config": {"path": hook, "header": {"X-Test": ["yes"]}, "timeout": "5s"}},
            {"type": "key", "key": "app/flaky",
             "handler": format!("cat >> {}; exit 1", failing_log.display())}
        ]
    });
    let file = dir.join("watches.json");
    std::fs::write(&file, config.to_string()).expect("config");
    let agent = Agent::dev(
        "agent-watches",
        &[&format!("-config-file={}", file.display())],
    );
    let wait = Duration::from_secs(20);
    // The first answer (the key is missing: null) is handed over at once.
    wait_until(wait, "first script call", || lines(&script_log).len() == 1);
    assert_eq!(lines(&script_log), vec!["null".to_string()]);
    wait_until(wait, "first HTTP call", || {
        seen.lock().expect("lock").len() == 1
    });

    put(&agent, "app/config", "one");
    wait_until(wait, "script gets the value", || {
        lines(&script_log).len() == 2
    });
    let entry: serde_json::Value = serde_json::from_str(&lines(&script_log)[1]).expect("json");
    assert_eq!(entry["Key"], "app/config");
    assert_eq!(entry["Value"], "b25l");
    wait_until(wait, "HTTP handler gets the value", || {
        seen.lock().expect("lock").len() == 2
    });
    let (line, index, body) = seen.lock().expect("lock")[1].clone();
    assert_eq!(line, "POST /hook");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(body["Value"], "b25l");
    assert_eq!(index, body["ModifyIndex"].to_string(), "X-Consul-Index");

    put(&agent, "app/config", "two");
    wait_until(wait, "HTTP handler gets the second value", || {
        seen.lock().expect("lock").len() == 3
    });
    let (_, _, body) = seen.lock().expect("lock")[2].clone();
    assert!(body.contains("\"Value\":\"dHdv\""), "{body}");
    wait_until(wait, "script gets the second value", || {
        lines(&script_log).len() == 3
    });

    // A failing handler is logged and its watch goes on.
    put(&agent, "app/flaky", "a");
    wait_until(wait, "failing handler, first change", || {
        lines(&failing_log).iter().any(|l| l.contains("\"YQ==\""))
    });
    put(&agent, "app/flaky", "b");
    wait_until(wait, "failing handler, second change", || {
        lines(&failing_log).iter().any(|l| l.contains("\"Yg==\""))
    });
    let log = agent.log_text();
    assert!(
        log.contains("agent.watch: Failed to run watch handler:") && log.contains("exit status 1"),
        "{log}"
    );
    assert!(
        log.contains("'handler' field in watches has been deprecated"),
        "{log}"
    );

    // The agent still stops promptly with its watches running.
    let mut agent = agent;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(agent.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = agent.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "agent did not stop: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}: {}", agent.log_text());
    assert!(agent.log_text().contains("Graceful shutdown complete"));
}

#[test]
fn a_bad_watch_keeps_the_agent_from_starting() {
    let refused = |watch: serde_json::Value| {
        let hcl = format!("watches = [{watch}]");
        let child = command(
            Path::new(BIN),
            None,
            &[
                "agent",
                "-dev",
                "-http-port=0",
                "-dns-port=-1",
                &format!("-hcl={hcl}"),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
        let out = wait_output(child, Duration::from_secs(30));
        assert_eq!(out.code, 1, "{out:?}");
        out.stderr
    };
    let err = refused(serde_json::json!({"type": "key", "args": ["true"]}));
    assert!(
        err.starts_with("==> Error starting agent: Failed to parse watch (")
            && err
                .trim_end()
                .ends_with("): Must specify a single key to watch"),
        "{err}"
    );
    let err = refused(serde_json::json!({"type": "keys", "key": "k", "args": ["true"]}));
    assert!(err.contains("Unsupported watch type: keys"), "{err}");
    let err = refused(serde_json::json!({"type": "key", "key": "k"}));
    assert_eq!(
        err,
        "==> Error starting agent: Must define a watch handler\n"
    );
}
