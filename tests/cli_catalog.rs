//! `catalog datacenters|nodes|services` and `services register|deregister` against a running
//! `-dev` agent, including failures.

mod cli_support;
mod support;

use cli_support::{cli, dead_addr, fails, ok, wait_until};
use std::time::Duration;
use support::{test_dir, Agent};

#[test]
fn catalog_lists_datacenters_nodes_and_services() {
    let agent = Agent::dev("cli-cat", &[]);
    let http = agent.http;
    assert_eq!(ok(http, &["catalog", "datacenters"]), "dc1\n");
    let nodes = ok(http, &["catalog", "nodes"]);
    let lines: Vec<&str> = nodes.lines().collect();
    assert!(lines[0].starts_with("Node"), "{nodes}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Node", "ID", "Address", "DC"]
    );
    assert!(lines[1].starts_with("cli-cat "), "{nodes}");
    assert!(
        lines[1].contains("127.0.0.1") && lines[1].ends_with("dc1"),
        "{nodes}"
    );
    let detailed = ok(http, &["catalog", "nodes", "-detailed"]);
    assert!(
        detailed
            .lines()
            .next()
            .is_some_and(|l| l.contains("  TaggedAddresses  ") && l.ends_with("  Meta")),
        "{detailed}"
    );
    assert!(detailed.contains("lan=127.0.0.1"), "{detailed}");
    assert!(ok(http, &["catalog", "nodes", "-service=consul"]).contains("cli-cat"));
    let none = cli(http, &["catalog", "nodes", "-service=nope"]);
    assert_eq!(none.code, 0);
    assert_eq!(
        none.stderr,
        "No nodes match the given query - try expanding your search.\n"
    );
    assert_eq!(ok(http, &["catalog", "services"]), "consul\n");
    assert_eq!(
        ok(http, &["catalog", "services", "-node=cli-cat"]),
        "consul\n"
    );
    assert!(fails(http, &["catalog", "nodes", "-node-meta=nokeyvalue"]).contains("-node-meta"));
}

#[test]
fn services_register_from_flags_and_files_then_deregister() {
    let agent = Agent::dev("cli-svc", &[]);
    let http = agent.http;
    let out = ok(
        http,
        &[
            "services",
            "register",
            "-name=web",
            "-id=web-1",
            "-port=8080",
            "-tag=v1",
            "-tag=blue",
            "-meta=team=a",
            "-address=10.0.0.5",
        ],
    );
    assert_eq!(out, "Registered service: web\n");
    let dir = test_dir("cli-svc");
    let hcl = dir.join("api.hcl");
    std::fs::write(
        &hcl,
        "service {\n  name = \"api\"\n  id = \"api-1\"\n  port = 9090\n  tags = [\"x\"]\n}\n",
    )
    .expect("write");
    let json = dir.join("db.json");
    std::fs::write(&json, r#"{"service": {"name": "db", "port": 5432}}"#).expect("write");
    let out = ok(
        http,
        &[
            "services",
            "register",
            hcl.to_str().expect("path"),
            json.to_str().expect("path"),
        ],
    );
    assert_eq!(out, "Registered service: api\nRegistered service: db\n");
    let registered = agent.call("GET", "/v1/agent/services", b"").json();
    assert_eq!(registered["web-1"]["Port"], 8080);
    assert_eq!(registered["web-1"]["Address"], "10.0.0.5");
    assert_eq!(registered["web-1"]["Meta"]["team"], "a");
    assert_eq!(registered["api-1"]["Service"], "api");
    wait_until(Duration::from_secs(10), "services in the catalog", || {
        ok(http, &["catalog", "services"]).lines().count() == 4
    });
    let tags = ok(http, &["catalog", "services", "-tags"]);
    assert!(
        tags.lines()
            .any(|l| l.starts_with("web") && l.ends_with("blue,v1")),
        "{tags}"
    );
    assert!(ok(http, &["catalog", "nodes", "-service=web"]).contains("cli-svc"));
    assert_eq!(
        ok(http, &["services", "deregister", "-id=web-1"]),
        "Deregistered service: web-1\n"
    );
    assert_eq!(
        ok(
            http,
            &["services", "deregister", hcl.to_str().expect("path")]
        ),
        "Deregistered service: api-1\n"
    );
    assert_eq!(
        ok(
            http,
            &["services", "deregister", json.to_str().expect("path")]
        ),
        "Deregistered service: db\n"
    );
    let left = agent.call("GET", "/v1/agent/services", b"").json();
    assert!(
        left.as_object()
            .is_some_and(|m| !m.contains_key("web-1") && !m.contains_key("db")),
        "{left}"
    );
}

#[test]
fn catalog_and_services_failures() {
    let dead = dead_addr();
    let err = fails(dead, &["catalog", "nodes"]);
    assert!(
        err.starts_with("Error listing nodes: Get \"http://"),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with("connect: connection refused"),
        "{err}"
    );
    assert!(fails(dead, &["catalog", "services"]).starts_with("Error listing services: Get"));
    assert!(fails(dead, &["catalog", "datacenters"]).starts_with("Error listing datacenters: Get"));
    assert!(fails(dead, &["catalog", "nodes", "-bogus"])
        .starts_with("flag provided but not defined: -bogus"));
    assert_eq!(
        fails(dead, &["services", "register"]),
        "Service registration requires at least one argument or flags.\n"
    );
    let err = fails(dead, &["services", "register", "-name=x"]);
    assert!(
        err.starts_with("Error registering service \"x\": Put"),
        "{err}"
    );
    assert!(fails(dead, &["services", "register", "/nonexistent.json"]).starts_with("Error: "));
    assert!(fails(dead, &["services", "deregister"]).starts_with("Service deregistration requires"));
    for sub in ["datacenters", "nodes", "services"] {
        let out = cli(dead, &["catalog", sub, "-help"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("Usage: cairn catalog {sub}")),
            "{out:?}"
        );
    }
    for sub in ["register", "deregister"] {
        let out = cli(dead, &["services", sub, "--help"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("Usage: cairn services {sub}")),
            "{out:?}"
        );
    }
    assert_eq!(cli(dead, &["catalog", "-h"]).code, 0);
    assert_eq!(cli(dead, &["services"]).code, 1);
}
