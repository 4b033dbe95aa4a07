//! End to end over loopback: a `cairn agent -dev` process and the agent's own services and checks:
//! register a service with a TTL check, see it in `/v1/health/service` as soon as the PUT returns, pass it,
//! let the TTL expire, deregister, and bad input.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::Agent;

/// The checks of the first `/v1/health/service/<name>` entry.
fn checks(a: &Agent, name: &str) -> Vec<Value> {
    let r = a.call("GET", &format!("/v1/health/service/{name}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let entries = body.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{body}");
    entries[0]["Checks"].as_array().expect("checks").clone()
}

fn check<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|c| c["CheckID"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {list:?}"))
}

#[test]
fn a_ttl_check_registers_passes_expires_and_deregisters() {
    let a = Agent::dev("agentttl", &[]);
    let body = r#"{"name":"web","id":"web-1","tags":["v1"],"port":8080,
        "check":{"check_id":"web-ttl","ttl":"1s","notes":"heartbeat"}}"#;
    a.put_empty("/v1/agent/service/register", body);
    let list = checks(&a, "web");
    let ttl = check(&list, "web-ttl");
    assert_eq!(ttl["Status"], "critical", "{ttl}");
    assert_eq!(ttl["ServiceID"], "web-1");
    assert_eq!(ttl["Node"], "agentttl");

    a.put_empty("/v1/agent/check/pass/web-ttl?note=ok", "");
    let list = checks(&a, "web");
    assert_eq!(check(&list, "web-ttl")["Status"], "passing");
    assert_eq!(check(&list, "web-ttl")["Output"], "ok");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = checks(&a, "web");
        let c = check(&list, "web-ttl");
        if c["Status"] == "critical" {
            let output = c["Output"].as_str().unwrap_or("");
            assert!(output.starts_with("TTL expired"), "{c}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TTL never expired: {c}\nagent checks: {}\nlog:\n{}",
            a.call("GET", "/v1/agent/checks", b"").text(),
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    a.put_empty(
        "/v1/agent/check/update/web-ttl",
        r#"{"Status":"warning","Output":"slow"}"#,
    );
    assert_eq!(check(&checks(&a, "web"), "web-ttl")["Status"], "warning");

    a.put_empty("/v1/agent/service/deregister/web-1", "");
    let r = a.call("GET", "/v1/health/service/web", b"");
    assert_eq!(r.json(), serde_json::json!([]));
    let r = a.call("PUT", "/v1/agent/check/pass/web-ttl", b"");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        r#"CheckID "web-ttl" does not have associated TTL"#
    );
}

#[test]
fn node_checks_and_bad_input_get_consuls_answers() {
    let a = Agent::dev("agentbad", &[]);
    let cases: [(&str, &str, u16, &str); 6] = [
        (
            "/v1/agent/service/register",
            r#"{"Port":1}"#,
            400,
            "Missing service name",
        ),
        (
            "/v1/agent/check/register",
            r#"{"TTL":"5s"}"#,
            400,
            "Missing check name",
        ),
        (
            "/v1/agent/check/deregister/nope",
            "",
            404,
            r#"Unknown check ID "nope". Ensure that the check ID is passed, not the check name."#,
        ),
        (
            "/v1/agent/check/update/x",
            r#"{"Status":"bogus"}"#,
            400,
            "Invalid check status: 'bogus'",
        ),
        (
            "/v1/agent/check/register",
            r#"{"Name":"c","TTL":"5s","ServiceID":"none"}"#,
            404,
            r#"ServiceID "none" does not exist"#,
        ),
        (
            "/v1/agent/service/deregister/none",
            "",
            404,
            r#"Unknown service ID "none". Ensure that the service ID is passed, not the service name."#,
        ),
    ];
    for (target, body, status, text) in cases {
        let r = a.call("PUT", target, body.as_bytes());
        assert_eq!((r.status, r.text().as_str()), (status, text), "{target}");
    }
    let r = a.call("PUT", "/v1/agent/service/register", b"{not json");
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("Request decode failed"),
        "{}",
        r.text()
    );

    a.put_empty(
        "/v1/agent/check/register",
        r#"{"Name":"disk","TTL":"30s","Status":"passing"}"#,
    );
    let r = a.call("GET", "/v1/health/node/agentbad", b"");
    let ids: Vec<String> = r
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(ids.contains(&"disk".to_string()), "{ids:?}");
    a.put_empty("/v1/agent/check/deregister/disk", "");
}

#[test]
fn agent_reads_show_this_nodes_services_checks_and_self() {
    let a = Agent::dev("agentread", &[]);
    let body = r#"{"Name":"api","ID":"api-1","Port":9000,"Meta":{"v":"2"},
        "Check":{"CheckID":"api-ttl","TTL":"30s","Status":"passing"}}"#;
    a.put_empty("/v1/agent/service/register", body);

    let r = a.call("GET", "/v1/agent/services", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let services = r.json();
    assert_eq!(services["api-1"]["Service"], "api", "{services}");
    assert_eq!(services["api-1"]["Port"], 9000);
    assert_eq!(services["api-1"]["Datacenter"], "dc1");
    // The server's own `consul` service and `serfHealth` check are the catalog's, not the agent's.
    assert!(services.get("consul").is_none(), "{services}");

    let r = a.call("GET", "/v1/agent/service/api-1", b"");
    assert_eq!(r.status, 200);
    assert!(r.header("x-consul-contenthash").is_some());
    assert_eq!(r.json()["Meta"]["v"], "2");
    assert_eq!(a.call("GET", "/v1/agent/service/none", b"").status, 404);

    let checks = a.call("GET", "/v1/agent/checks", b"").json();
    assert_eq!(checks["api-ttl"]["Status"], "passing", "{checks}");
    assert_eq!(checks["api-ttl"]["ServiceID"], "api-1");
    assert!(checks.get("serfHealth").is_none(), "{checks}");

    let me = a.call("GET", "/v1/agent/self", b"").json();
    assert_eq!(me["Config"]["NodeName"], "agentread", "{me}");
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["Server"], true);
    assert_eq!(me["Member"]["Status"], 1);
    assert_eq!(me["Member"]["Name"], "agentread");
}

#[test]
fn services_and_checks_from_config_files_are_registered_at_startup() {
    let dir = support::test_dir("config-services");
    let file = dir.join("services.hcl");
    std::fs::write(
        &file,
        r#"
service {
  name = "from-config"
  port = 8080
  tags = ["a", "b"]
  check {
    check_id = "from-config-ttl"
    name = "config ttl"
    ttl = "60s"
  }
}
check {
  id = "node-level"
  name = "node level"
  ttl = "60s"
}
"#,
    )
    .expect("config");
    let a = Agent::dev(
        "config-services",
        &[&format!("-config-file={}", file.display())],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = a.call("GET", "/v1/catalog/service/from-config", b"");
        let json = r.json();
        if json.as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(json[0]["ServicePort"], 8080);
            assert_eq!(json[0]["ServiceTags"], serde_json::json!(["a", "b"]));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not registered:\n{}",
            a.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let checks = a.call("GET", "/v1/agent/checks", b"").json();
    assert_eq!(checks["from-config-ttl"]["ServiceID"], "from-config");
    assert_eq!(checks["node-level"]["Name"], "node level");
    assert_eq!(
        checks["from-config-ttl"]["Status"], "critical",
        "a TTL check starts critical"
    );
}

/// Reads from a streamed monitor response until `needle` shows up (or 15 s pass); what was read.
fn read_stream_until(stream: &mut std::net::TcpStream, needle: &str) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = stream.read(&mut chunk) {
            seen.extend_from_slice(&chunk[..n]);
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn monitor_streams_log_lines_at_the_asked_level() {
    use std::io::Write;
    let a = Agent::dev("agentmonitor", &["-log-level=warn"]);
    let r = a.call("GET", "/v1/agent/monitor?loglevel=loud", b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Unknown log level: loud")
    );

    // Text lines at info, although the agent itself logs at warn.
    let mut text = std::net::TcpStream::connect(a.http).expect("connect");
    text.write_all(b"GET /v1/agent/monitor?loglevel=info HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut json = std::net::TcpStream::connect(a.http).expect("connect");
    json.write_all(b"GET /v1/agent/monitor?loglevel=info&logjson HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    std::thread::sleep(std::time::Duration::from_millis(300));
    a.put_empty("/v1/agent/reload", "");
    let seen = read_stream_until(&mut text, "reloaded configuration");
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    assert!(seen.contains("Transfer-Encoding: chunked"), "{seen}");
    assert!(
        seen.contains("[INFO]  agent: reloaded configuration"),
        "{seen}"
    );
    let seen = read_stream_until(&mut json, "reloaded configuration");
    assert!(
        seen.contains(r#""@level":"info""#) && seen.contains(r#""@module":"agent""#),
        "{seen}"
    );
    assert!(
        !a.log_text().contains("reloaded configuration"),
        "the agent logs at warn"
    );
}
