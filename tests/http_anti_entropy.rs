//! e2e: anti-entropy between an agent's local state and the catalog. The local state is the truth for the
//! agent's node: a full sync (every `ae_interval`, shortened here) puts back what someone removed from the
//! catalog and removes what the agent does not know; API registrations survive a restart (they are kept
//! in the data dir) and are not deregistered by the first sync after it. Also the agent's own health and
//! maintenance endpoints, `/v1/agent/metrics`, and `PUT /v1/agent/reload`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::{free_port, test_dir, Agent};

const SYNC_WAIT: Duration = Duration::from_secs(15);

/// The service IDs the catalog lists for `node`.
fn catalog_services(a: &Agent, node: &str) -> Vec<String> {
    let r = a.call("GET", &format!("/v1/catalog/node-services/{node}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ids: Vec<String> = r.json()["Services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| s["ID"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Waits until `cond` holds, for at most [`SYNC_WAIT`].
fn eventually(what: &str, a: &Agent, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + SYNC_WAIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SYNC_WAIT:?}; log:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn with_ae_interval(name: &str) -> String {
    let file = test_dir(&format!("ae-{name}")).join("ae.hcl");
    std::fs::write(&file, "ae_interval = \"1s\"\n").expect("config");
    file.display().to_string()
}

#[test]
fn a_full_sync_repairs_the_catalog_from_the_local_state() {
    let config = with_ae_interval("repair");
    let a = Agent::dev("aenode", &["-config-file", &config]);
    a.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","Port":80,"Check":{"CheckID":"web-ttl","TTL":"30s","Status":"passing"}}"#,
    );
    // Visible in the catalog and in health as soon as the PUT returns.
    assert_eq!(catalog_services(&a, "aenode"), vec!["consul", "web"]);
    let health = a.call("GET", "/v1/health/service/web?passing", b"").json();
    assert_eq!(health.as_array().map(Vec::len), Some(1), "{health}");

    // Drift: the service is removed behind the agent's back, a stranger is registered on its node, and a
    // service on another node is registered too.
    a.put_ok(
        "/v1/catalog/deregister",
        r#"{"Node":"aenode","ServiceID":"web"}"#,
    );
    a.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"aenode","Address":"127.0.0.1","Service":{"Service":"stranger","Port":1}}"#,
    );
    a.put_ok(
        "/v1/catalog/register",
        r#"{"Node":"other","Address":"10.0.0.2","Service":{"Service":"elsewhere","Port":2}}"#,
    );
    eventually("the catalog agrees with the agent again", &a, || {
        catalog_services(&a, "aenode") == vec!["consul", "web"]
    });
    let checks = a.call("GET", "/v1/health/checks/web", b"").json();
    assert_eq!(checks[0]["CheckID"], "web-ttl", "{checks}");
    assert_eq!(checks[0]["Status"], "passing", "{checks}");
    assert_eq!(catalog_services(&a, "other"), vec!["elsewhere"]);
    assert!(
        a.log_text().contains("anti-entropy: synced"),
        "{}",
        a.log_text()
    );
}

#[test]
fn api_registrations_survive_a_restart_and_config_ones_follow_the_config() {
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    let dir = test_dir("ae-restart");
    let data = dir.join("data");
    let config = dir.join("services.hcl");
    std::fs::write(
        &config,
        "ae_interval = \"1s\"\nservice {\n  name = \"from-config\"\n  port = 81\n}\n",
    )
    .expect("config");
    let http = SocketAddr::new(ip, free_port(ip));
    // The same server address across the restart: it names the Raft server.
    let server_port = free_port(ip);
    let serf_port = free_port(ip);
    let args = |http: SocketAddr| -> Vec<String> {
        vec![
            "-server".into(),
            "-bootstrap-expect=1".into(),
            "-node=keeper".into(),
            "-bind=127.0.0.1".into(),
            format!("-data-dir={}", data.display()),
            format!("-http-port={}", http.port()),
            format!("-server-port={server_port}"),
            format!("-serf-lan-port={serf_port}"),
            "-serf-wan-port=-1".into(),
            "-dns-port=-1".into(),
            format!("-config-file={}", config.display()),
        ]
    };
    let a = Agent::start(&args(http), http, dir.join("first.log"));
    a.wait_leader(Duration::from_secs(15));
    a.wait_registered("keeper", Duration::from_secs(15));
    a.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"api","Port":9000}"#,
    );
    a.put_ok(
        "/v1/agent/service/maintenance/api?enable=true&reason=deploy",
        "",
    );
    eventually("the config service is registered", &a, || {
        catalog_services(&a, "keeper") == vec!["api", "consul", "from-config"]
    });
    drop(a); // kill -9

    // Restart without the config file's service: the API one and its maintenance stay, the config one goes.
    std::fs::write(&config, "ae_interval = \"1s\"\n").expect("config");
    let http = SocketAddr::new(ip, free_port(ip));
    let b = Agent::start(&args(http), http, dir.join("second.log"));
    b.wait_leader(Duration::from_secs(15));
    let services = b.call("GET", "/v1/agent/services", b"").json();
    assert_eq!(services["api"]["Port"], 9000, "{services}");
    assert!(services.get("from-config").is_none(), "{services}");
    eventually("the catalog follows the restarted agent", &b, || {
        catalog_services(&b, "keeper") == vec!["api", "consul"]
    });
    let checks = b.call("GET", "/v1/agent/checks", b"").json();
    let maintenance = &checks["_service_maintenance:api"];
    assert_eq!(maintenance["Status"], "critical", "{checks}");
    assert_eq!(maintenance["Notes"], "deploy", "{checks}");
    let health = b.call("GET", "/v1/health/service/api?passing", b"").json();
    assert_eq!(health.as_array().map(Vec::len), Some(0), "{health}");
}

#[test]
fn agent_health_and_maintenance_endpoints() {
    let a = Agent::dev("aehealth", &[]);
    a.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","ID":"web-1","Check":{"CheckID":"t1","TTL":"30s","Status":"passing"}}"#,
    );
    a.put_ok(
        "/v1/agent/service/register",
        r#"{"Name":"web","ID":"web-2","Check":{"CheckID":"t2","TTL":"30s","Status":"passing"}}"#,
    );
    let r = a.call("GET", "/v1/agent/health/service/id/web-1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["AggregatedStatus"], "passing");
    assert_eq!(r.json()["Service"]["ID"], "web-1");
    a.put_ok("/v1/agent/check/warn/t2?note=slow", "");
    let r = a.call("GET", "/v1/agent/health/service/name/web", b"");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let r = a.call("GET", "/v1/agent/health/service/name/web?format=text", b"");
    assert_eq!((r.status, r.text().as_str()), (429, "warning"));
    let r = a.call("GET", "/v1/agent/health/service/id/nope", b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "ServiceId nope not found")
    );

    // Maintenance: a critical check on the service, and on the node.
    let r = a.call("PUT", "/v1/agent/service/maintenance/web-1", b"");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Missing value for enable")
    );
    let r = a.call("PUT", "/v1/agent/service/maintenance/nope?enable=true", b"");
    assert_eq!(r.status, 404, "{}", r.text());
    a.put_ok("/v1/agent/service/maintenance/web-1?enable=true", "");
    let r = a.call("GET", "/v1/agent/health/service/id/web-1?format=text", b"");
    assert_eq!((r.status, r.text().as_str()), (503, "critical"));
    let passing = a.call("GET", "/v1/health/service/web?passing", b"").json();
    let ids: Vec<&str> = passing
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["Service"]["ID"].as_str())
        .collect();
    assert!(
        ids.is_empty(),
        "web-2 warns and web-1 is in maintenance: {ids:?}"
    );
    a.put_ok("/v1/agent/maintenance?enable=true&reason=patching", "");
    let node = a.call("GET", "/v1/health/node/aehealth", b"").json();
    let maintenance = node
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["CheckID"] == "_node_maintenance")
        .cloned()
        .expect("node maintenance check");
    assert_eq!(maintenance["Notes"], "patching");
    assert_eq!(maintenance["Status"], "critical");
    a.put_ok("/v1/agent/maintenance?enable=false", "");
    a.put_ok("/v1/agent/service/maintenance/web-1?enable=false", "");
    let checks = a.call("GET", "/v1/agent/checks", b"").json();
    assert_eq!(checks.as_object().map(|m| m.len()), Some(2), "{checks}");

    // Metrics, JSON and Prometheus.
    let metrics = a.call("GET", "/v1/agent/metrics", b"").json();
    let gauge = |name: &str| {
        metrics["Gauges"]
            .as_array()
            .and_then(|g| g.iter().find(|m| m["Name"] == name))
            .map(|m| m["Value"].as_f64().unwrap_or(-1.0))
    };
    assert_eq!(
        gauge("consul.state.service_instances"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(gauge("consul.server.isLeader"), Some(1.0), "{metrics}");
    assert!(
        gauge("consul.runtime.sys_bytes").is_some_and(|b| b > 0.0),
        "{metrics}"
    );
    assert!(
        metrics["Counters"][0]["Count"]
            .as_u64()
            .is_some_and(|n| n > 5),
        "{metrics}"
    );
    let text = a.call("GET", "/v1/agent/metrics?format=prometheus", b"");
    assert!(
        text.text().contains("\nconsul_state_nodes 1\n"),
        "{}",
        text.text()
    );

    // Reload: the same path as SIGHUP.
    a.put_ok("/v1/agent/reload", "");
    eventually("the reload is logged", &a, || {
        a.log_text().contains("reloaded configuration")
    });
    assert_eq!(a.call("GET", "/v1/agent/reload", b"").status, 405);
}
