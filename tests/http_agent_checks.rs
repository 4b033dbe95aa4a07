//! End to end over loopback: a `cairn agent -dev` runs its HTTP, TCP and script checks and the results reach
//! `/v1/health/checks/<service>`; a script check is refused unless `enable_script_checks` is on.
//! Every wait is a bounded poll; nothing asserts on time beyond those bounds.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Agent;

/// How long a check may take to show a new status: its 1 s interval plus a second, plus slack for a
/// loaded machine.
const STATUS_WAIT_MS: u64 = 15_000;

/// Polls `/v1/health/checks/<service>` until its only check has `status`; returns that check.
fn wait_status(a: &Agent, service: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_millis(STATUS_WAIT_MS);
    loop {
        let r = a.call("GET", &format!("/v1/health/checks/{service}"), b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        let check = body.as_array().and_then(|l| l.first()).cloned();
        if let Some(check) = check.filter(|c| c["Status"] == status) {
            return check;
        }
        assert!(
            Instant::now() < deadline,
            "{service} never became {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tiny HTTP server on a thread answering every request with the status in `code`, until `stop`.
fn serve_status(code: Arc<AtomicU16>, stop: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, _)) => answer(stream, code.load(Ordering::Acquire)),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    port
}

fn answer(mut stream: std::net::TcpStream, code: u16) {
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let reason = match code {
        200 => "OK",
        429 => "Too Many Requests",
        _ => "Service Unavailable",
    };
    let body = format!("status {code}");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[test]
fn an_http_check_follows_the_server_status() {
    let a = Agent::dev("checkshttp", &[]);
    let code = Arc::new(AtomicU16::new(200));
    let stop = Arc::new(AtomicBool::new(false));
    let port = serve_status(Arc::clone(&code), Arc::clone(&stop));
    let url = format!("http://127.0.0.1:{port}/health");
    let body = format!(
        r#"{{"Name":"web","Port":{port},"Check":{{"HTTP":"{url}","Interval":"1s","Timeout":"2s"}}}}"#
    );
    a.put_empty("/v1/agent/service/register", &body);

    let check = wait_status(&a, "web", "passing");
    let expected = format!("HTTP GET {url}: 200 OK Output: status 200");
    assert_eq!(check["Output"], expected.as_str(), "{check}");
    code.store(503, Ordering::Release);
    let check = wait_status(&a, "web", "critical");
    assert!(
        check["Output"]
            .as_str()
            .unwrap_or("")
            .contains("503 Service Unavailable"),
        "{check}"
    );
    code.store(429, Ordering::Release);
    wait_status(&a, "web", "warning");
    stop.store(true, Ordering::Release);
}

#[test]
fn a_tcp_check_goes_critical_when_the_listener_closes() {
    let a = Agent::dev("checkstcp", &[]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = format!(
        r#"{{"Name":"db","Port":{},"Check":{{"TCP":"{addr}","Interval":"1s","Timeout":"1s"}}}}"#,
        addr.port()
    );
    a.put_empty("/v1/agent/service/register", &body);
    let check = wait_status(&a, "db", "passing");
    assert_eq!(
        check["Output"],
        format!("TCP connect {addr}: Success").as_str()
    );
    drop(listener);
    wait_status(&a, "db", "critical");
}

#[test]
fn a_script_check_maps_exit_codes() {
    let a = Agent::dev("checksscript", &["-hcl=enable_script_checks = true"]);
    let dir = support::test_dir("checksscript-code");
    let file = dir.join("code");
    std::fs::write(&file, "0").expect("write");
    let script = format!("echo ran; exit $(cat {})", file.display());
    let body = serde_json::json!({
        "Name": "job",
        "Check": {"Args": ["/bin/sh", "-c", script], "Interval": "1s", "Timeout": "5s"}
    });
    a.put_empty("/v1/agent/service/register", &body.to_string());
    let check = wait_status(&a, "job", "passing");
    assert_eq!(check["Output"], "ran\n", "{check}");
    std::fs::write(&file, "1").expect("write");
    wait_status(&a, "job", "warning");
    std::fs::write(&file, "2").expect("write");
    wait_status(&a, "job", "critical");
}

#[test]
fn script_checks_are_refused_when_disabled() {
    let a = Agent::dev("checksnoscript", &[]);
    let body = r#"{"Name":"s","Args":["/bin/true"],"Interval":"1s"}"#;
    let r = a.call("PUT", "/v1/agent/check/register", body.as_bytes());
    assert_eq!(
        (r.status, r.text()),
        (
            500,
            "Scripts are disabled on this agent from remote calls; to enable, configure \
             'enable_script_checks' to true"
                .to_string()
        )
    );
    let r = a.call("GET", "/v1/agent/checks", b"");
    assert!(r.json().get("s").is_none(), "{}", r.text());
}
