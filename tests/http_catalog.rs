//! End to end over loopback: a `cairn agent -dev` process and Consul's catalog and health routes: register
//! nodes, services and checks, read every route with `passing`, `tag`, `node-meta` and `filter`, blocking
//! health queries woken only by their own service, deregistration, and bad input.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::Agent;

const WEB1: &str = r#"{"Node":"n1","Address":"10.0.0.1","NodeMeta":{"rack":"r1"},
    "Service":{"Service":"web","Tags":["v1","primary"],"Port":80,"Meta":{"env":"prod"}},
    "Checks":[{"CheckID":"node-alive","Name":"Node alive","Status":"passing"},
        {"CheckID":"web-alive","Name":"web alive","Status":"passing","ServiceID":"web"}]}"#;
const WEB2: &str = r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
    "Service":{"ID":"web-b","Service":"web","Tags":["v1"],"Port":81},
    "Check":{"CheckID":"web-b-alive","Name":"web alive","ServiceID":"web-b","Status":"critical"}}"#;
const DB: &str = r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
    "Service":{"Service":"db","Port":5432},
    "Check":{"CheckID":"db-alive","Name":"db alive","ServiceID":"db","Status":"passing"}}"#;

fn put(a: &Agent, path: &str, body: &str) {
    let r = a.call("PUT", path, body.as_bytes());
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "true"),
        "PUT {path} {body}"
    );
}

fn get(a: &Agent, target: &str) -> (Value, u64) {
    let r = a.call("GET", target, b"");
    assert_eq!(r.status, 200, "GET {target}: {}", r.text());
    assert_eq!(r.header("x-consul-knownleader"), Some("true"), "{target}");
    assert!(r.header("x-consul-lastcontact").is_some(), "{target}");
    (r.json(), r.index())
}

/// The string at `pointer` in each element of the list at `target`.
fn list(a: &Agent, target: &str, pointer: &str) -> Vec<String> {
    let (body, _) = get(a, target);
    body.as_array()
        .unwrap_or_else(|| panic!("{target} is not a list: {body}"))
        .iter()
        .map(|e| {
            e.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// A `-dev` agent (its own node `catalog` with the `consul` service and `serfHealth`: anti-entropy keeps
/// the node registered) plus the nodes and services of [`WEB1`], [`WEB2`] and [`DB`]. These external nodes
/// carry no `serfHealth`: the leader would deregister a node with `serfHealth` that gossip does not list.
fn registered() -> Agent {
    let a = Agent::dev("catalog", &[]);
    for body in [WEB1, WEB2, DB] {
        put(&a, "/v1/catalog/register", body);
    }
    a
}

#[test]
fn every_catalog_and_health_route_reads_what_was_registered() {
    let a = registered();
    let (dcs, _) = get_plain(&a, "/v1/catalog/datacenters");
    assert_eq!(dcs, serde_json::json!(["dc1"]));
    assert_eq!(
        list(&a, "/v1/catalog/nodes", "/Node"),
        ["catalog", "n1", "n2"]
    );
    let (services, index) = get(&a, "/v1/catalog/services");
    assert_eq!(
        services,
        serde_json::json!({"consul": [], "db": [], "web": ["primary", "v1"]})
    );
    assert!(index > 1);
    let (web, _) = get(&a, "/v1/catalog/service/web");
    assert_eq!(web[0]["ServiceID"], "web");
    assert_eq!(web[0]["Address"], "10.0.0.1");
    assert_eq!(web[0]["Datacenter"], "dc1");
    assert_eq!(web[0]["ServiceMeta"]["env"], "prod");
    assert_eq!(web[1]["ServiceID"], "web-b");
    let (node, _) = get(&a, "/v1/catalog/node/n2");
    assert_eq!(node["Node"]["Address"], "10.0.0.2");
    assert_eq!(node["Services"]["db"]["Port"], 5432);
    assert_eq!(node["Services"]["web-b"]["Tags"], serde_json::json!(["v1"]));
    let (missing, _) = get(&a, "/v1/catalog/node/nowhere");
    assert_eq!(missing, Value::Null);
    let (node_services, _) = get(&a, "/v1/catalog/node-services/n2");
    assert_eq!(node_services["Services"].as_array().map(Vec::len), Some(2));

    let (health, index) = get(&a, "/v1/health/service/web");
    assert_eq!(
        health.as_array().map(Vec::len),
        Some(2),
        "critical instances too"
    );
    assert_eq!(health[0]["Node"]["Node"], "n1");
    assert_eq!(health[0]["Service"]["ID"], "web");
    let checks: Vec<&str> = health[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["node-alive", "web-alive"], "node checks first");
    assert!(index > 1);
    assert_eq!(
        list(&a, "/v1/health/checks/web", "/CheckID"),
        ["web-alive", "web-b-alive"]
    );
    assert_eq!(
        list(&a, "/v1/health/node/n2", "/CheckID"),
        ["db-alive", "web-b-alive"]
    );
    assert_eq!(
        list(&a, "/v1/health/state/critical", "/CheckID"),
        ["web-b-alive"]
    );
    // The agent's own serfHealth counts too.
    assert_eq!(list(&a, "/v1/health/state/any", "/CheckID").len(), 5);
    assert_eq!(list(&a, "/v1/health/state/passing", "/CheckID").len(), 4);
    let pretty = a.call("GET", "/v1/catalog/nodes?pretty", b"").text();
    assert!(
        pretty.contains("\n    {\n        \"ID\": \"\","),
        "{pretty}"
    );
}

/// A GET answered without the query headers (`/catalog/datacenters` needs no leader).
fn get_plain(a: &Agent, target: &str) -> (Value, u16) {
    let r = a.call("GET", target, b"");
    (r.json(), r.status)
}

#[test]
fn passing_tag_node_meta_and_filter_select_results() {
    let a = registered();
    let ids = |target: &str| list(&a, target, "/Service/ID");
    assert_eq!(ids("/v1/health/service/web?passing"), ["web"]);
    assert_eq!(
        ids("/v1/health/service/web?passing=false"),
        ["web", "web-b"]
    );
    assert_eq!(ids("/v1/health/service/web?tag=primary"), ["web"]);
    assert_eq!(ids("/v1/health/service/web?tag=v1&tag=primary"), ["web"]);
    assert_eq!(ids("/v1/health/service/web?node-meta=rack:r2"), ["web-b"]);
    assert_eq!(
        ids("/v1/health/service/web?filter=Service.Port%20%3D%3D%2081"),
        ["web-b"]
    );
    assert_eq!(
        ids("/v1/health/service/web?filter=Service.Meta.env%20%3D%3D%20prod%20and%20v1%20in%20Service.Tags"),
        ["web"]
    );
    let catalog = |target: &str| list(&a, target, "/ServiceID");
    assert_eq!(catalog("/v1/catalog/service/web?tag=primary"), ["web"]);
    assert_eq!(
        catalog("/v1/catalog/service/web?node-meta=rack:r1"),
        ["web"]
    );
    assert_eq!(
        catalog("/v1/catalog/service/web?filter=NodeMeta%5B%22rack%22%5D%20%3D%3D%20%22r2%22"),
        ["web-b"]
    );
    assert_eq!(
        list(
            &a,
            "/v1/catalog/nodes?filter=Node%20matches%20%22%5En2%22",
            "/Node"
        ),
        ["n2"]
    );
    assert_eq!(
        list(
            &a,
            "/v1/health/state/any?filter=ServiceName%20%3D%3D%20db",
            "/CheckID"
        ),
        ["db-alive"]
    );
    let r = a.call(
        "GET",
        "/v1/health/service/web?filter=Service.Port%20%3D%3D",
        b"",
    );
    assert_eq!(r.status, 400);
    assert!(r
        .text()
        .starts_with("Failed to create boolean expression evaluator"));
}

#[test]
fn a_blocking_health_query_wakes_on_its_service_only() {
    let a = registered();
    let (_, index) = get(&a, "/v1/health/service/web");
    let http = a.http;
    let waiter = std::thread::spawn(move || {
        support::call(
            http,
            "GET",
            &format!("/v1/health/service/web?index={index}&wait=20s"),
            b"",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // Another service's check changes: the web query keeps waiting.
    put(
        &a,
        "/v1/catalog/register",
        r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
            "Check":{"CheckID":"db-alive","Name":"db alive","ServiceID":"db","Status":"critical"}}"#,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiter.is_finished(),
        "a change to db ended a blocking query on web"
    );
    // A web check turns passing: the query answers with it and a higher index.
    put(
        &a,
        "/v1/catalog/register",
        r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
            "Check":{"CheckID":"web-b-alive","Name":"web alive","ServiceID":"web-b","Status":"passing"}}"#,
    );
    let r = waiter.join().expect("waiter");
    assert_eq!(r.status, 200);
    assert!(r.index() > index);
    let body = r.json();
    assert_eq!(body[1]["Checks"][0]["Status"], "passing");

    // A catalog query blocks the same way and times out with the same index when nothing changes.
    let (_, index) = get(&a, "/v1/catalog/service/web");
    let r = a.call(
        "GET",
        &format!("/v1/catalog/service/web?index={index}&wait=300ms"),
        b"",
    );
    assert_eq!((r.status, r.index()), (200, index));
}

#[test]
fn deregister_removes_a_check_a_service_or_a_node() {
    let a = registered();
    put(
        &a,
        "/v1/catalog/deregister",
        r#"{"Node":"n2","CheckID":"web-b-alive"}"#,
    );
    assert_eq!(list(&a, "/v1/health/checks/web", "/CheckID"), ["web-alive"]);
    assert_eq!(
        list(&a, "/v1/health/service/web?passing", "/Service/ID"),
        ["web", "web-b"],
        "an instance without checks passes"
    );
    put(
        &a,
        "/v1/catalog/deregister",
        r#"{"Node":"n2","ServiceID":"db"}"#,
    );
    let (services, _) = get(&a, "/v1/catalog/services");
    assert_eq!(
        services,
        serde_json::json!({"consul": [], "web": ["primary", "v1"]})
    );
    assert!(list(&a, "/v1/health/node/n2", "/CheckID").is_empty());
    put(&a, "/v1/catalog/deregister", r#"{"Node":"n1"}"#);
    assert_eq!(list(&a, "/v1/catalog/nodes", "/Node"), ["catalog", "n2"]);
    assert_eq!(list(&a, "/v1/catalog/service/web", "/ServiceID"), ["web-b"]);
    put(&a, "/v1/catalog/deregister", r#"{"Node":"gone"}"#);
}

#[test]
fn bad_catalog_input_gets_consuls_errors() {
    let a = Agent::dev("catalog-bad", &[]);
    let r = a.call("PUT", "/v1/catalog/register", b"{\"Node\": ");
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("Request decode failed"),
        "{}",
        r.text()
    );
    let r = a.call("PUT", "/v1/catalog/register", br#"{"Address":"10.0.0.1"}"#);
    assert_eq!((r.status, r.text().as_str()), (500, "Must provide node"));
    let r = a.call("PUT", "/v1/catalog/register", br#"{"Node":"n1"}"#);
    assert_eq!(r.status, 500);
    let r = a.call(
        "PUT",
        "/v1/catalog/register",
        br#"{"Node":"n1","Address":"a","Check":{"Name":"c","ServiceID":"nope"}}"#,
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("Missing service registration"),
        "{}",
        r.text()
    );
    let r = a.call("GET", "/v1/catalog/register", b"");
    assert_eq!(r.status, 405);
    let r = a.call("GET", "/v1/catalog/service/", b"");
    assert_eq!((r.status, r.text().as_str()), (400, "Missing service name"));
    let r = a.call("GET", "/v1/health/service/web?passing=maybe", b"");
    assert_eq!(r.status, 400);
    let r = a.call("GET", "/v1/catalog/nodes", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        list(&a, "/v1/catalog/nodes", "/Node"),
        ["catalog-bad"],
        "nothing bad was kept"
    );
    assert!(r.index() >= 1, "X-Consul-Index is never 0");
}

#[test]
fn a_server_registers_its_own_node_with_serf_health_and_the_consul_service() {
    let a = Agent::dev("self-registered", &[]);
    let (consul, _) = get(&a, "/v1/catalog/service/consul");
    assert_eq!(consul[0]["Node"], "self-registered");
    assert_eq!(consul[0]["Address"], "127.0.0.1");
    assert_eq!(consul[0]["ServiceID"], "consul");
    let (health, _) = get(&a, "/v1/health/node/self-registered");
    assert_eq!(health[0]["CheckID"], "serfHealth");
    assert_eq!(health[0]["Status"], "passing");
    assert_eq!(
        list(&a, "/v1/health/service/consul?passing", "/Node/Node"),
        ["self-registered"]
    );
}
