//! End to end over loopback, the check kinds beyond HTTP/TCP/script: HTTPS against a self-signed
//! certificate (passing only with `TLSSkipVerify`), gRPC health v1 (h2c and TLS) against a tiny server
//! written here that flips SERVING/NOT_SERVING, UDP, alias, the success/failure thresholds,
//! `DeregisterCriticalServiceAfter`, and Consul's refusals of bad check definitions. Every wait is a
//! bounded poll; nothing asserts on time beyond those bounds.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Agent;

/// How long a check may take to show a new status (an interval of 1 s, thresholds of two runs, slack for
/// a loaded machine).
const STATUS_WAIT_MS: u64 = 8_000;

/// `/v1/agent/checks`'s entry for `id`.
fn agent_check(a: &Agent, id: &str) -> Option<Value> {
    let r = a.call("GET", "/v1/agent/checks", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().get(id).cloned()
}

/// Polls `/v1/agent/checks` until check `id` has `status`; returns it.
fn wait_check(a: &Agent, id: &str, status: &str) -> Value {
    wait_for(a, id, status, |_| true)
}

/// Polls `/v1/agent/checks` until check `id` has `status` and an output `ok` accepts; returns it.
fn wait_for(a: &Agent, id: &str, status: &str, ok: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_millis(STATUS_WAIT_MS);
    loop {
        let check = agent_check(a, id);
        let done = |c: &&Value| c["Status"] == status && ok(c["Output"].as_str().unwrap_or(""));
        if let Some(check) = check.as_ref().filter(done) {
            return check.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {status}: {check:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tls_material() -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate");
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    (vec![cert], key)
}

fn server_config(alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let (certs, key) = tls_material();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Accepts connections on a thread until `stop`, handing each (on its own thread) to `serve`.
fn accept_loop(stop: Arc<AtomicBool>, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let serve = Arc::clone(&serve);
                    std::thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                        serve(stream);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    port
}

/// An HTTP/1.1 answer with `code` to one request on `stream`.
fn answer_http(stream: &mut impl ReadWrite, code: u16) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let reason = if code == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let body = format!("status {code}");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn https_and_tcp_tls_checks_pass_only_with_tls_skip_verify() {
    let a = Agent::dev("checkshttps", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let config = server_config(&[]);
    let port = accept_loop(Arc::clone(&stop), move |tcp| {
        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        answer_http(&mut tls, 200);
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let url = format!("https://127.0.0.1:{port}/health");
    let skip = serde_json::json!({
        "Name": "https-skip", "HTTP": url, "TLSSkipVerify": true, "Interval": "1s", "Timeout": "2s"
    });
    a.put_empty("/v1/agent/check/register", &skip.to_string());
    let verify = serde_json::json!({
        "Name": "https-verify", "HTTP": url, "Interval": "1s", "Timeout": "2s",
        "TLSServerName": "localhost", "Status": "passing"
    });
    a.put_empty("/v1/agent/check/register", &verify.to_string());

    let tcp = serde_json::json!({
        "Name": "tcp-tls", "TCP": format!("127.0.0.1:{port}"), "TCPUseTLS": true,
        "TLSSkipVerify": true, "Interval": "1s"
    });
    a.put_empty("/v1/agent/check/register", &tcp.to_string());
    let tcp_verify = serde_json::json!({
        "Name": "tcp-tls-verify", "TCP": format!("127.0.0.1:{port}"), "TCPUseTLS": true,
        "Interval": "1s", "Status": "passing"
    });
    a.put_empty("/v1/agent/check/register", &tcp_verify.to_string());

    let check = wait_check(&a, "tcp-tls", "passing");
    assert_eq!(
        check["Output"],
        format!("TCP+TLS connect 127.0.0.1:{port}: Success").as_str()
    );
    wait_check(&a, "tcp-tls-verify", "critical");
    let check = wait_check(&a, "https-skip", "passing");
    assert_eq!(
        check["Output"],
        format!("HTTP GET {url}: 200 OK Output: status 200").as_str(),
        "{check}"
    );
    let check = wait_check(&a, "https-verify", "critical");
    let output = check["Output"].as_str().unwrap_or("");
    assert!(output.contains("certificate"), "{check}");
    stop.store(true, Ordering::Release);
}

/// A gRPC health server: answers every `Check` call with the status in `serving` (1 SERVING, 2
/// NOT_SERVING), or `grpc-status` 5 (NOT_FOUND) for the service `missing`.
fn serve_grpc(stream: &mut impl ReadWrite, serving: u8) {
    let mut preface = [0u8; 24];
    if stream.read_exact(&mut preface).is_err() || &preface[..3] != b"PRI" {
        return;
    }
    let frame = |kind: u8, flags: u8, stream_id: u32, payload: &[u8]| {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    let _ = stream.write_all(&frame(4, 0, 0, &[]));
    let mut decoder = loona_hpack::Decoder::new();
    let mut path = Vec::new();
    let mut request = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).is_err() {
            return;
        }
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; length];
        if length > 16_384 || stream.read_exact(&mut payload).is_err() {
            return;
        }
        match head[3] {
            4 if head[4] & 1 == 0 => {
                let _ = stream.write_all(&frame(4, 1, 0, &[]));
            }
            1 => {
                for (name, value) in decoder.decode(&payload).unwrap_or_default() {
                    if name == b":path" {
                        path = value;
                    }
                }
            }
            0 => {
                request.extend_from_slice(&payload);
                if head[4] & 1 != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(path, b"/grpc.health.v1.Health/Check");
    let service = request.get(7..).unwrap_or_default();
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = Vec::new();
    let status_fields: [(&[u8], &[u8]); 2] =
        [(b":status", b"200"), (b"content-type", b"application/grpc")];
    if service == b"missing" {
        let mut fields = status_fields.to_vec();
        fields.push((b"grpc-status", b"5"));
        fields.push((b"grpc-message", b"unknown service"));
        out.extend(frame(1, 0x5, 1, &encoder.encode(fields)));
    } else {
        out.extend(frame(1, 0x4, 1, &encoder.encode(status_fields)));
        out.extend(frame(0, 0, 1, &[0, 0, 0, 0, 2, 0x08, serving]));
        let trailers: [(&[u8], &[u8]); 1] = [(b"grpc-status", b"0")];
        out.extend(frame(1, 0x5, 1, &encoder.encode(trailers)));
    }
    let _ = stream.write_all(&out);
    let _ = stream.flush();
    // Wait for the client to go away (it reads until END_STREAM, then closes).
    let mut rest = [0u8; 64];
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
}

#[test]
fn grpc_checks_follow_the_serving_status_over_h2c_and_tls() {
    let a = Agent::dev("checksgrpc", &[]);
    let serving = Arc::new(AtomicU8::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let plain_status = Arc::clone(&serving);
    let plain = accept_loop(Arc::clone(&stop), move |mut tcp| {
        serve_grpc(&mut tcp, plain_status.load(Ordering::Acquire));
    });
    let config = server_config(&[b"h2"]);
    let tls_status = Arc::clone(&serving);
    let secure = accept_loop(Arc::clone(&stop), move |tcp| {
        let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        serve_grpc(&mut tls, tls_status.load(Ordering::Acquire));
    });
    let target = format!("127.0.0.1:{plain}/my.Service");
    let body = serde_json::json!({
        "Name": "api", "Port": plain,
        "Checks": [
            {"CheckID": "grpc-plain", "Name": "g", "GRPC": target, "Interval": "1s", "Timeout": "2s"},
            {"CheckID": "grpc-tls", "Name": "t", "GRPC": format!("127.0.0.1:{secure}"),
             "GRPCUseTLS": true, "TLSSkipVerify": true, "Interval": "1s", "Timeout": "2s"},
            {"CheckID": "grpc-missing", "Name": "m", "GRPC": format!("127.0.0.1:{plain}/missing"),
             "Interval": "1s", "Timeout": "2s", "Status": "passing"}
        ]
    });
    a.put_empty("/v1/agent/service/register", &body.to_string());
    let check = wait_check(&a, "grpc-plain", "passing");
    assert_eq!(
        check["Output"],
        format!("gRPC check {target}: success").as_str()
    );
    wait_check(&a, "grpc-tls", "passing");
    let missing = wait_check(&a, "grpc-missing", "critical");
    assert!(
        missing["Output"]
            .as_str()
            .unwrap_or("")
            .contains("code = 5 desc = unknown service"),
        "{missing}"
    );
    serving.store(2, Ordering::Release);
    let check = wait_check(&a, "grpc-plain", "critical");
    assert!(
        check["Output"]
            .as_str()
            .unwrap_or("")
            .contains("NOT_SERVING"),
        "{check}"
    );
    wait_check(&a, "grpc-tls", "critical");
    serving.store(1, Ordering::Release);
    wait_check(&a, "grpc-plain", "passing");
    stop.store(true, Ordering::Release);
}

#[test]
fn a_udp_check_passes_while_the_port_is_open_and_fails_when_refused() {
    let a = Agent::dev("checksudp", &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let echo = std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while !stopped.load(Ordering::Acquire) {
            if let Ok((n, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(&buffer[..n], from);
            }
        }
    });
    let body = serde_json::json!({
        "Name": "dns", "Port": addr.port(),
        "Check": {"UDP": addr.to_string(), "Interval": "1s", "Timeout": "500ms"}
    });
    a.put_empty("/v1/agent/service/register", &body.to_string());
    let check = wait_check(&a, "service:dns", "passing");
    assert_eq!(
        check["Output"],
        format!("UDP connect {addr}: Success").as_str()
    );
    stop.store(true, Ordering::Release);
    echo.join().expect("echo thread");
    // The socket is closed: the kernel answers with ICMP port unreachable.
    let check = wait_check(&a, "service:dns", "critical");
    assert!(
        check["Output"].as_str().unwrap_or("").contains("refused"),
        "{check}"
    );
}

#[test]
fn an_alias_check_follows_the_aliased_service() {
    let a = Agent::dev("checksalias", &[]);
    let web = r#"{"Name":"web","Check":{"CheckID":"web-ttl","TTL":"60s"}}"#;
    a.put_empty("/v1/agent/service/register", web);
    let proxy = r#"{"Name":"web-proxy","Check":{"CheckID":"proxy-alias","AliasService":"web"}}"#;
    a.put_empty("/v1/agent/service/register", proxy);
    wait_for(&a, "proxy-alias", "critical", |o| {
        o.starts_with("Aliased check \"Service 'web' check\" failing")
    });
    a.put_empty("/v1/agent/check/pass/web-ttl", "");
    wait_for(&a, "proxy-alias", "passing", |o| o == "All checks passing.");
    a.put_empty("/v1/agent/check/warn/web-ttl", "");
    wait_check(&a, "proxy-alias", "warning");
    a.put_empty("/v1/agent/check/fail/web-ttl", "");
    wait_check(&a, "proxy-alias", "critical");
    // An alias of a service that is not registered is critical.
    let ghost = r#"{"Name":"ghost-alias","AliasService":"ghost","Status":"passing"}"#;
    a.put_empty("/v1/agent/check/register", ghost);
    let check = wait_check(&a, "ghost-alias", "critical");
    assert!(
        check["Output"]
            .as_str()
            .unwrap_or("")
            .starts_with("Service ghost could not be found on node"),
        "{check}"
    );
}

/// An HTTP server answering with `code`, counting the requests it answered.
fn counting_http(code: Arc<AtomicU16>, served: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> u16 {
    accept_loop(stop, move |mut tcp| {
        answer_http(&mut tcp, code.load(Ordering::Acquire));
        served.fetch_add(1, Ordering::AcqRel);
    })
}

fn wait_served(served: &AtomicU64, count: u64) {
    let deadline = Instant::now() + Duration::from_millis(STATUS_WAIT_MS);
    while served.load(Ordering::Acquire) < count {
        assert!(
            Instant::now() < deadline,
            "the check never ran {count} times"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn thresholds_hold_a_status_until_enough_runs_agree() {
    let a = Agent::dev("checksthresholds", &[]);
    let code = Arc::new(AtomicU16::new(200));
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let port = counting_http(Arc::clone(&code), Arc::clone(&served), Arc::clone(&stop));
    let body = serde_json::json!({
        "Name": "flaky", "HTTP": format!("http://127.0.0.1:{port}/"), "Interval": "1s",
        "SuccessBeforePassing": 2, "FailuresBeforeCritical": 2, "FailuresBeforeWarning": 1
    });
    a.put_empty("/v1/agent/check/register", &body.to_string());
    // One success is not enough: the check keeps its initial status (and empty output).
    // (Reads taken while the server has answered exactly one request, before and after each read.)
    wait_served(&served, 1);
    let mut seen_after_one = 0;
    while served.load(Ordering::Acquire) == 1 {
        let check = agent_check(&a, "flaky").expect("registered");
        if served.load(Ordering::Acquire) == 1 {
            assert_eq!(
                (&check["Status"], &check["Output"]),
                (&"critical".into(), &"".into())
            );
            seen_after_one += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen_after_one > 0, "no read between the first two runs");
    wait_check(&a, "flaky", "passing");
    assert!(served.load(Ordering::Acquire) >= 2);
    // The first failure makes it warning, the second critical.
    code.store(503, Ordering::Release);
    let failing_from = served.load(Ordering::Acquire);
    wait_check(&a, "flaky", "warning");
    assert!(served.load(Ordering::Acquire) > failing_from);
    wait_check(&a, "flaky", "critical");
    assert!(served.load(Ordering::Acquire) >= failing_from + 2);
    stop.store(true, Ordering::Release);
}

#[test]
fn a_service_critical_too_long_is_deregistered() {
    let a = Agent::dev(
        "checksreap",
        &[
            "-hcl=check_deregister_interval_min = \"0s\"",
            "-hcl=check_reap_interval = \"200ms\"",
        ],
    );
    let body = r#"{"Name":"doomed","Check":{"TTL":"60s","DeregisterCriticalServiceAfter":"1s"}}"#;
    a.put_empty("/v1/agent/service/register", body);
    let kept = r#"{"Name":"kept","Check":{"TTL":"60s"}}"#;
    a.put_empty("/v1/agent/service/register", kept);
    let deadline = Instant::now() + Duration::from_millis(STATUS_WAIT_MS);
    loop {
        let services = a.call("GET", "/v1/agent/services", b"").json();
        if services.get("doomed").is_none() {
            assert!(services.get("kept").is_some(), "{services}");
            break;
        }
        assert!(Instant::now() < deadline, "doomed was never deregistered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(agent_check(&a, "service:doomed").is_none());
}

#[test]
fn bad_check_definitions_get_consuls_errors() {
    let a = Agent::dev("checksbad", &[]);
    let cases = [
        (
            r#"{"Name":"x","Interval":"1s"}"#,
            "Invalid check: TTL must be > 0 for TTL checks",
        ),
        (
            r#"{"Name":"x","GRPC":"127.0.0.1:1"}"#,
            "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks",
        ),
        (
            r#"{"Name":"x","UDP":"127.0.0.1:1","Interval":"1s","TTL":"1s"}"#,
            "Invalid check: Interval and TTL cannot both be specified",
        ),
        (
            r#"{"Name":"x","AliasService":"web","TTL":"10s"}"#,
            "Invalid check: TTL must be not be set for Alias checks",
        ),
        (
            r#"{"Name":"x","TCP":"127.0.0.1:1","Interval":"1s","FailuresBeforeWarning":3,"FailuresBeforeCritical":2}"#,
            "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical",
        ),
    ];
    for (body, text) in cases {
        let r = a.call("PUT", "/v1/agent/check/register", body.as_bytes());
        assert_eq!((r.status, r.text()), (400, text.to_string()), "{body}");
    }
    let r = a.call("GET", "/v1/agent/checks", b"");
    assert!(r.json().get("x").is_none(), "{}", r.text());
}

#[test]
fn redirects_are_followed_unless_disabled() {
    let a = Agent::dev("checksredirect", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = accept_loop(Arc::clone(&stop), |mut tcp| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let response: &[u8] = if head.starts_with(b"GET /old ") {
            b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnew"
        };
        let _ = tcp.write_all(response);
    });
    let url = format!("http://127.0.0.1:{port}/old");
    let follow = serde_json::json!({"Name": "follow", "HTTP": url, "Interval": "1s"});
    a.put_empty("/v1/agent/check/register", &follow.to_string());
    let stay = serde_json::json!({
        "Name": "stay", "HTTP": url, "Interval": "1s", "DisableRedirects": true, "Status": "passing"
    });
    a.put_empty("/v1/agent/check/register", &stay.to_string());
    let check = wait_check(&a, "follow", "passing");
    assert_eq!(
        check["Output"],
        format!("HTTP GET {url}: 200 OK Output: new").as_str()
    );
    let check = wait_check(&a, "stay", "critical");
    assert!(
        check["Output"].as_str().unwrap_or("").contains("302 Found"),
        "{check}"
    );
    stop.store(true, Ordering::Release);
}

#[test]
fn output_is_cut_to_the_check_or_agent_limit() {
    let a = Agent::dev("checksoutput", &["-hcl=check_output_max_size = 30"]);
    let code = Arc::new(AtomicU16::new(200));
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let port = counting_http(code, served, Arc::clone(&stop));
    let url = format!("http://127.0.0.1:{port}/");
    let agent_limit = serde_json::json!({"Name": "agent-limit", "HTTP": url, "Interval": "1s"});
    a.put_empty("/v1/agent/check/register", &agent_limit.to_string());
    let own_limit = serde_json::json!({
        "Name": "own-limit", "HTTP": url, "Interval": "1s", "OutputMaxSize": 12
    });
    a.put_empty("/v1/agent/check/register", &own_limit.to_string());
    let full = format!("HTTP GET {url}: 200 OK Output: status 200");
    let check = wait_check(&a, "agent-limit", "passing");
    assert_eq!(check["Output"], &full[..30]);
    let check = wait_check(&a, "own-limit", "passing");
    assert_eq!(check["Output"], &full[..12]);
    stop.store(true, Ordering::Release);
}
