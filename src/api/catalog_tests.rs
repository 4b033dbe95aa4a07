//! Catalog and health routes without IO: register bodies, errors, JSON shapes, parameters, indexes and the
//! watches blocking queries register.

use super::cluster::ClusterView;
use super::tests::{body_text, ctx, plan_of, respond};
use super::*;
use crate::fsm::{table, CheckStatus, Fsm, RegisterRequest};

fn register_request(body: &str) -> RegisterRequest {
    match plan_of(Method::Put, "/v1/catalog/register", body.as_bytes()) {
        Plan::Write(WritePlan {
            command: Command::CatalogRegister { request, .. },
            render: Render::Bool,
            ..
        }) => *request,
        other => panic!("expected a register write for {body}, got {other:?}"),
    }
}

fn error(method: Method, target: &str, body: &str) -> (u16, String) {
    let r = respond(plan_of(method, target, body.as_bytes()));
    (r.status, body_text(&r))
}

/// A state built from register bodies, applied at indexes 10, 11, ...
fn catalog(bodies: &[&str]) -> State {
    let mut fsm = Fsm::new();
    for (at, body) in bodies.iter().enumerate() {
        let command = match plan_of(Method::Put, "/v1/catalog/register", body.as_bytes()) {
            Plan::Write(plan) => plan.command,
            other => panic!("not a write: {other:?}"),
        };
        assert_eq!(
            fsm.apply(at as u64 + 10, &command),
            fsm::Outcome::Bool(true)
        );
    }
    fsm.state()
}

const WEB1: &str = r#"{"Node":"n1","Address":"10.0.0.1","NodeMeta":{"rack":"r1"},
    "Service":{"Service":"web","Tags":["v1","primary"],"Port":80,"Meta":{"env":"prod"}},
    "Check":{"CheckID":"web-alive","Name":"web alive","Status":"passing","ServiceID":"web"}}"#;
const WEB2: &str = r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
    "Service":{"ID":"web-b","Service":"web","Tags":["v1"],"Port":81},
    "Checks":[{"CheckID":"web-b-alive","Name":"web alive","ServiceID":"web-b","Status":"critical"}]}"#;
const DB: &str = r#"{"Node":"n2","Address":"10.0.0.2","NodeMeta":{"rack":"r2"},
    "Service":{"Service":"db","Port":5432}}"#;

fn read(state: &State, target: &str) -> Answer {
    match plan_of(Method::Get, target, b"") {
        Plan::Read(plan) => plan
            .query
            .answer(state, &ClusterView::default(), &ctx(), plan.pretty),
        other => panic!("expected a read for {target}, got {other:?}"),
    }
}

fn json_of(answer: &Answer) -> serde_json::Value {
    serde_json::from_slice(&answer.response.body).expect("JSON body")
}

fn names(answer: &Answer, field: &str) -> Vec<String> {
    json_of(answer)
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            e.pointer(field)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[test]
fn register_bodies_accept_any_key_case_and_snake_case() {
    let req = register_request(
        r#"{"node":"n1","ADDRESS":"10.0.0.1","tagged_addresses":{"wan":"1.2.3.4"},
            "node_meta":{"rack":"r1"},"skip_node_update":false,
            "service":{"id":"w1","service":"web","tags":["a"],"port":8080,
                "enable_tag_override":true,"weights":{"passing":3,"warning":2},
                "tagged_addresses":{"lan":{"address":"10.0.0.9","port":9}},"kind":""},
            "check":{"check_id":"c1","name":"c","service_id":"w1",
                "definition":{"http":"http://x/","interval":"10s","timeout":1500000000,
                    "deregister_critical_service_after":"90s","header":{"X":["1"]}}}}"#,
    );
    assert_eq!(
        (req.node.as_str(), req.address.as_str()),
        ("n1", "10.0.0.1")
    );
    assert_eq!(req.datacenter, "dc1", "the agent's datacenter by default");
    assert_eq!(req.tagged_addresses["wan"], "1.2.3.4");
    assert_eq!(req.node_meta["rack"], "r1");
    let service = req.service.expect("service");
    assert_eq!((service.id.as_str(), service.port), ("w1", 8080));
    assert!(service.enable_tag_override);
    assert_eq!((service.weights.passing, service.weights.warning), (3, 2));
    assert_eq!(service.tagged_addresses["lan"].port, 9);
    let check = &req.checks[0];
    assert_eq!(
        check.status,
        CheckStatus::Critical,
        "Consul's default status"
    );
    assert_eq!(check.definition.interval, "10s");
    assert_eq!(
        check.definition.timeout, "1.5s",
        "nanoseconds become a Go duration"
    );
    assert_eq!(check.definition.deregister_critical_service_after, "1m30s");
    assert_eq!(check.definition.header["X"], vec!["1".to_string()]);
    let req = register_request(
        r#"{"Node":"n","Address":"a","Service":{"Service":"s","Weights":{"Passing":0,"Warning":1}},
            "Check":{"Name":"x"},"Checks":[{"Name":"y","Status":"warning","Interval":"5s"}]}"#,
    );
    assert_eq!(req.service.unwrap().weights, fsm::Weights::default());
    assert_eq!(req.checks.len(), 2, "Check and Checks together");
    assert_eq!(req.checks[1].status, CheckStatus::Warning);
    assert_eq!(req.checks[1].definition.interval, "5s");
}

#[test]
fn catalog_writes_answer_consuls_errors() {
    let reg = "/v1/catalog/register";
    let (status, text) = error(Method::Put, reg, "{\"Node\": ");
    assert_eq!(status, 400);
    assert!(text.starts_with("Request decode failed: "), "{text}");
    assert_eq!(
        error(Method::Put, reg, ""),
        (400, "Request decode failed: EOF".to_string())
    );
    assert_eq!(
        error(Method::Put, reg, "[]"),
        (
            400,
            "Request decode failed: json: cannot unmarshal array into Go value of type structs.RegisterRequest"
                .to_string()
        )
    );
    assert_eq!(
        error(
            Method::Put,
            reg,
            r#"{"Node":"n","Address":"a","Service":{"Port":"80"}}"#
        ),
        (
            400,
            "Request decode failed: json: cannot unmarshal string into field Port of type uint64"
                .to_string()
        )
    );
    assert_eq!(
        error(Method::Put, reg, r#"{"Address":"10.0.0.1"}"#),
        (500, "Must provide node".to_string())
    );
    assert_eq!(
        error(Method::Put, reg, r#"{"Node":"n1"}"#),
        (
            500,
            "Must provide address if SkipNodeUpdate is not set".to_string()
        )
    );
    assert_eq!(
        error(
            Method::Put,
            reg,
            r#"{"Node":"n1","Address":"a","Datacenter":"dc9"}"#
        ),
        (500, "No path to datacenter".to_string())
    );
    let (status, text) = error(
        Method::Put,
        reg,
        r#"{"Node":"n","Address":"a","Check":{"Name":"c","Status":"sick"}}"#,
    );
    assert_eq!(status, 400, "{text}");
    assert_eq!(error(Method::Get, reg, "").0, 405);
    assert_eq!(
        error(Method::Put, "/v1/catalog/deregister", "{}"),
        (500, "Must provide node".to_string())
    );
    assert_eq!(error(Method::Put, "/v1/catalog/nodes", "").0, 405);
    assert_eq!(error(Method::Get, "/v1/catalog/nowhere", "").0, 404);
    assert_eq!(
        error(Method::Get, "/v1/catalog/service/", ""),
        (400, "Missing service name".to_string())
    );
    assert_eq!(
        error(Method::Get, "/v1/catalog/node/", ""),
        (400, "Missing node name".to_string())
    );
    assert_eq!(
        error(Method::Get, "/v1/health/state/", ""),
        (400, "Missing check state".to_string())
    );
    assert_eq!(
        error(Method::Get, "/v1/health/service/web?passing=maybe", ""),
        (400, "Invalid value for ?passing".to_string())
    );
    let (status, text) = error(
        Method::Get,
        "/v1/health/service/web?filter=Node%20%3D%3D",
        "",
    );
    assert_eq!(status, 400);
    assert!(
        text.starts_with("Failed to create boolean expression evaluator: "),
        "{text}"
    );
}

#[test]
fn deregister_names_what_to_remove() {
    let plan = plan_of(
        Method::Put,
        "/v1/catalog/deregister",
        br#"{"node":"n1","ServiceID":"web","CheckID":""}"#,
    );
    let Plan::Write(WritePlan { command, .. }) = plan else {
        panic!("expected a write");
    };
    assert_eq!(
        command,
        Command::CatalogDeregister {
            now_ms: ctx().now_ms,
            node: "n1".to_string(),
            service_id: Some("web".to_string()),
            check_id: None,
        }
    );
}

#[test]
fn datacenters_answer_at_once() {
    let r = respond(plan_of(Method::Get, "/v1/catalog/datacenters", b""));
    // This datacenter first, then the ones the WAN pool knows.
    assert_eq!(
        (r.status, body_text(&r).as_str()),
        (200, r#"["dc1","dc2"]"#)
    );
}

#[test]
fn a_service_node_has_consuls_fields_in_consuls_order() {
    let state = catalog(&[
        r#"{"ID":"0b1b9a3c-0000-4000-8000-000000000001","Node":"n1","Address":"10.0.0.1",
            "TaggedAddresses":{"wan":"1.2.3.4"},"NodeMeta":{"rack":"r1"},
            "Service":{"ID":"web-1","Service":"web","Tags":["v1"],"Address":"10.0.0.10",
                "TaggedAddresses":{"lan":{"Address":"10.0.0.10","Port":80}},
                "Meta":{"env":"prod"},"Port":80}}"#,
    ]);
    let a = read(&state, "/v1/catalog/service/web");
    assert_eq!(a.index, 10);
    assert_eq!(
        body_text(&a.response),
        concat!(
            r#"[{"ID":"0b1b9a3c-0000-4000-8000-000000000001","Node":"n1","Address":"10.0.0.1","#,
            r#""Datacenter":"dc1","TaggedAddresses":{"wan":"1.2.3.4"},"NodeMeta":{"rack":"r1"},"#,
            r#""ServiceKind":"","ServiceID":"web-1","ServiceName":"web","ServiceTags":["v1"],"#,
            r#""ServiceAddress":"10.0.0.10","#,
            r#""ServiceTaggedAddresses":{"lan":{"Address":"10.0.0.10","Port":80}},"#,
            r#""ServiceWeights":{"Passing":1,"Warning":1},"ServiceMeta":{"env":"prod"},"#,
            r#""ServicePort":80,"ServiceSocketPath":"","ServiceEnableTagOverride":false,"#,
            r#""ServiceProxy":{"Mode":"","MeshGateway":{},"Expose":{}},"ServiceConnect":{},"#,
            r#""ServiceLocality":null,"CreateIndex":10,"ModifyIndex":10}]"#
        )
    );
    assert_eq!(
        body_text(&read(&state, "/v1/catalog/service/nope").response),
        "[]"
    );
}

#[test]
fn a_health_entry_has_node_service_and_checks() {
    let state = catalog(&[
        r#"{"Node":"n1","Address":"10.0.0.1","Service":{"Service":"web","Port":80},
            "Checks":[{"CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing"},
                {"CheckID":"web-http","Name":"web http","Status":"critical","ServiceID":"web",
                 "Output":"refused","Type":"http",
                 "Definition":{"HTTP":"http://10.0.0.1/","Interval":"10s","Timeout":"1s"}}]}"#,
    ]);
    let a = read(&state, "/v1/health/service/web");
    assert_eq!(a.index, 10);
    assert_eq!(
        body_text(&a.response),
        concat!(
            r#"[{"Node":{"ID":"","Node":"n1","Address":"10.0.0.1","Datacenter":"dc1","#,
            r#""TaggedAddresses":{},"Meta":{},"CreateIndex":10,"ModifyIndex":10},"#,
            r#""Service":{"ID":"web","Service":"web","Tags":[],"Address":"","Meta":{},"Port":80,"#,
            r#""Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"#,
            r#""Proxy":{"Mode":"","MeshGateway":{},"Expose":{}},"Connect":{},"PeerName":"","#,
            r#""CreateIndex":10,"ModifyIndex":10},"#,
            r#""Checks":[{"Node":"n1","CheckID":"serfHealth","Name":"Serf Health Status","#,
            r#""Status":"passing","Notes":"","Output":"","ServiceID":"","ServiceName":"","#,
            r#""ServiceTags":[],"Type":"","Interval":"","Timeout":"","ExposedPort":0,"#,
            r#""Definition":{},"CreateIndex":10,"ModifyIndex":10},"#,
            r#"{"Node":"n1","CheckID":"web-http","Name":"web http","Status":"critical","#,
            r#""Notes":"","Output":"refused","ServiceID":"web","ServiceName":"web","#,
            r#""ServiceTags":[],"Type":"http","Interval":"10s","Timeout":"1s","ExposedPort":0,"#,
            r#""Definition":{"Interval":"10s","Timeout":"1s","HTTP":"http://10.0.0.1/"},"#,
            r#""CreateIndex":10,"ModifyIndex":10}]}]"#
        )
    );
    assert_eq!(
        body_text(&read(&state, "/v1/health/service/web?passing").response),
        "[]"
    );
}

#[test]
fn catalog_reads_and_their_indexes() {
    let state = catalog(&[WEB1, WEB2, DB]);
    let nodes = read(&state, "/v1/catalog/nodes");
    assert_eq!(
        (nodes.index, names(&nodes, "/Node")),
        (11, vec!["n1".into(), "n2".into()]),
        "registering n2 again unchanged does not move the nodes index"
    );
    let services = read(&state, "/v1/catalog/services");
    assert_eq!(
        body_text(&services.response),
        r#"{"db":[],"web":["primary","v1"]}"#
    );
    let web = read(&state, "/v1/catalog/service/web");
    assert_eq!(names(&web, "/ServiceID"), vec!["web", "web-b"]);
    assert_eq!(web.index, state.service_index("web"));
    let node = read(&state, "/v1/catalog/node/n2");
    let body = json_of(&node);
    assert_eq!(body["Node"]["Node"], "n2");
    assert_eq!(body["Services"]["web-b"]["Port"], 81);
    assert_eq!(body["Services"]["db"]["Service"], "db");
    assert_eq!(node.index, state.node_services_index());
    assert_eq!(
        body_text(&read(&state, "/v1/catalog/node/none").response),
        "null"
    );
    let list = json_of(&read(&state, "/v1/catalog/node-services/n2"));
    assert_eq!(list["Services"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body_text(&read(&state, "/v1/catalog/node-services/none").response),
        r#"{"Node":null,"Services":[]}"#
    );
}

#[test]
fn health_reads_and_their_indexes() {
    let state = catalog(&[WEB1, WEB2, DB]);
    let web = read(&state, "/v1/health/service/web");
    assert_eq!(
        names(&web, "/Service/ID"),
        vec!["web", "web-b"],
        "critical ones too"
    );
    assert_eq!(web.index, state.health_service_index("web"));
    let passing = read(&state, "/v1/health/service/web?passing=true");
    assert_eq!(names(&passing, "/Service/ID"), vec!["web"]);
    let not_passing = read(&state, "/v1/health/service/web?passing=false");
    assert_eq!(names(&not_passing, "/Service/ID").len(), 2);
    let checks = read(&state, "/v1/health/checks/web");
    assert_eq!(names(&checks, "/CheckID"), vec!["web-alive", "web-b-alive"]);
    assert_eq!(checks.index, state.checks_index());
    let node = read(&state, "/v1/health/node/n2");
    assert_eq!(names(&node, "/CheckID"), vec!["web-b-alive"]);
    let critical = read(&state, "/v1/health/state/critical");
    assert_eq!(names(&critical, "/CheckID"), vec!["web-b-alive"]);
    assert_eq!(
        names(&read(&state, "/v1/health/state/any"), "/CheckID").len(),
        2
    );
    assert_eq!(
        body_text(&read(&state, "/v1/health/state/bogus").response),
        "[]",
        "Consul finds no check in a state that does not exist"
    );
}

#[test]
fn tags_node_meta_and_filters_select_results() {
    let state = catalog(&[WEB1, WEB2, DB]);
    let ids = |target: &str| names(&read(&state, target), "/ServiceID");
    assert_eq!(ids("/v1/catalog/service/web?tag=v1"), vec!["web", "web-b"]);
    assert_eq!(
        ids("/v1/catalog/service/web?tag=v1&tag=primary"),
        vec!["web"]
    );
    assert!(ids("/v1/catalog/service/web?tag=v9").is_empty());
    assert_eq!(
        ids("/v1/catalog/service/web?node-meta=rack:r2"),
        vec!["web-b"]
    );
    assert_eq!(
        ids("/v1/catalog/service/web?filter=ServiceMeta.env%20%3D%3D%20prod"),
        vec!["web"]
    );
    let health = |target: &str| names(&read(&state, target), "/Service/ID");
    assert_eq!(health("/v1/health/service/web?tag=primary"), vec!["web"]);
    assert_eq!(
        health("/v1/health/service/web?node-meta=rack:r2"),
        vec!["web-b"]
    );
    assert_eq!(
        health("/v1/health/service/web?filter=Checks.Status%20contains%20critical"),
        vec!["web-b"]
    );
    assert_eq!(
        health("/v1/health/service/web?filter=Node.Meta%5B%22rack%22%5D%20%3D%3D%20r1"),
        vec!["web"]
    );
    let nodes = names(
        &read(&state, "/v1/catalog/nodes?node-meta=rack:r1"),
        "/Node",
    );
    assert_eq!(nodes, vec!["n1"]);
    let nodes = names(
        &read(
            &state,
            "/v1/catalog/nodes?filter=Address%20matches%20%22%5C.2%24%22",
        ),
        "/Node",
    );
    assert_eq!(nodes, vec!["n2"]);
    let services = read(&state, "/v1/catalog/services?node-meta=rack:r2");
    assert_eq!(body_text(&services.response), r#"{"db":[],"web":["v1"]}"#);
    let services = read(
        &state,
        "/v1/catalog/services?filter=ServiceName%20%3D%3D%20db",
    );
    assert_eq!(body_text(&services.response), r#"{"db":[]}"#);
    let checks = names(
        &read(
            &state,
            "/v1/health/state/any?filter=Status%20%3D%3D%20passing",
        ),
        "/CheckID",
    );
    assert_eq!(checks, vec!["web-alive"]);
    let node = json_of(&read(
        &state,
        "/v1/catalog/node/n2?filter=Port%20%3D%3D%205432",
    ));
    assert_eq!(node["Services"].as_object().map(|m| m.len()), Some(1));
    assert_eq!(
        names(
            &read(&state, "/v1/health/checks/web?node-meta=rack:r1"),
            "/CheckID"
        ),
        vec!["web-alive"]
    );
    let near = read(&state, "/v1/catalog/service/web?near=_agent");
    assert_eq!(
        names(&near, "/ServiceID").len(),
        2,
        "near is accepted and ignored"
    );
}

#[test]
fn blocking_reads_watch_their_service_or_tables() {
    let watch = |target: &str| match plan_of(Method::Get, target, b"") {
        Plan::Read(plan) => (plan.query.watch(), plan.blocking),
        other => panic!("expected a read, got {other:?}"),
    };
    let service = |name: &str| WatchSpec::Service(name.to_string());
    assert_eq!(watch("/v1/health/service/web?index=7").0, service("web"));
    assert_eq!(watch("/v1/health/checks/web").0, service("web"));
    assert_eq!(watch("/v1/catalog/service/web").0, service("web"));
    assert_eq!(
        watch("/v1/catalog/nodes").0,
        WatchSpec::Tables(table::NODES)
    );
    assert_eq!(
        watch("/v1/health/state/any").0,
        WatchSpec::Tables(table::CHECKS | table::NODES)
    );
    let (_, blocking) = watch("/v1/health/service/web?index=7&wait=2s");
    assert_eq!(
        blocking,
        Some(Blocking {
            index: 7,
            wait_ms: 2_000
        })
    );
}
