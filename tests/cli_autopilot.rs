//! Autopilot against a running `-dev` agent: `/v1/operator/autopilot/{configuration,health,state}` and
//! `operator autopilot get-config|set-config|state`, with Consul's shapes and error texts.

mod cli_support;
mod support;

use cli_support::{cli, fails, ok, wait_until};
use std::time::Duration;
use support::{test_dir, Agent};

const CONFIG: &str = "/v1/operator/autopilot/configuration";

/// A dev agent whose leader has stored the autopilot configuration.
fn agent(name: &str, extra: &[&str]) -> Agent {
    let agent = Agent::dev(name, extra);
    agent.wait_leader(Duration::from_secs(10));
    wait_until(Duration::from_secs(10), "autopilot configuration", || {
        agent.call("GET", CONFIG, b"").status == 200
    });
    agent
}

#[test]
fn configuration_get_put_and_cas_over_http() {
    let agent = agent("ap-config", &[]);
    let got = agent.call("GET", CONFIG, b"").json();
    assert_eq!(got["CleanupDeadServers"], true);
    assert_eq!(got["LastContactThreshold"], "200ms");
    assert_eq!(got["MaxTrailingLogs"], 250);
    assert_eq!(got["MinQuorum"], 0);
    assert_eq!(got["ServerStabilizationTime"], "10s");
    assert_eq!(got["RedundancyZoneTag"], "");
    assert_eq!(got["DisableUpgradeMigration"], false);
    assert_eq!(got["UpgradeVersionTag"], "");
    let index = got["ModifyIndex"].as_u64().unwrap();
    assert_eq!(got["CreateIndex"].as_u64(), Some(index));

    let body =
        br#"{"CleanupDeadServers": false, "LastContactThreshold": "1s", "MaxTrailingLogs": 9,
        "MinQuorum": 3, "ServerStabilizationTime": "30s"}"#;
    let stale = agent.call("PUT", &format!("{CONFIG}?cas={}", index + 100), body);
    assert_eq!((stale.status, stale.text().trim()), (200, "false"));
    let done = agent.call("PUT", &format!("{CONFIG}?cas={index}"), body);
    assert_eq!((done.status, done.text().trim()), (200, "true"));
    let got = agent.call("GET", CONFIG, b"").json();
    assert_eq!(got["CleanupDeadServers"], false);
    assert_eq!(got["LastContactThreshold"], "1s");
    assert_eq!(
        (got["MaxTrailingLogs"].as_u64(), got["MinQuorum"].as_u64()),
        (Some(9), Some(3))
    );
    assert_eq!(got["ServerStabilizationTime"], "30s");
    assert_eq!(got["CreateIndex"].as_u64(), Some(index));
    assert!(got["ModifyIndex"].as_u64().unwrap() > index);
    let plain = agent.call("PUT", CONFIG, b"{}");
    assert_eq!(
        plain.text().trim(),
        "true",
        "without cas the answer is true"
    );

    let bad_cas = agent.call("PUT", &format!("{CONFIG}?cas=abc"), b"{}");
    assert_eq!(bad_cas.status, 400);
    assert_eq!(
        bad_cas.text(),
        "Error parsing cas value: strconv.ParseUint: parsing \"abc\": invalid syntax"
    );
    let bad_body = agent.call("PUT", CONFIG, br#"{"MinQuorum": "three"}"#);
    assert_eq!(bad_body.status, 400);
    assert!(
        bad_body
            .text()
            .starts_with("Error parsing autopilot config: json: cannot unmarshal"),
        "{}",
        bad_body.text()
    );
    assert_eq!(agent.call("DELETE", CONFIG, b"").status, 405);
}

#[test]
fn health_and_state_describe_the_single_server() {
    let agent = agent("ap-health", &[]);
    let mut health = agent.call("GET", "/v1/operator/autopilot/health", b"");
    wait_until(Duration::from_secs(10), "autopilot health", || {
        health = agent.call("GET", "/v1/operator/autopilot/health", b"");
        health.status == 200
    });
    let h = health.json();
    assert_eq!(
        (h["Healthy"].as_bool(), h["FailureTolerance"].as_u64()),
        (Some(true), Some(0))
    );
    let server = &h["Servers"][0];
    for field in [
        "ID",
        "Name",
        "Address",
        "SerfStatus",
        "Version",
        "Leader",
        "LastContact",
        "LastTerm",
        "LastIndex",
        "Healthy",
        "Voter",
        "StableSince",
    ] {
        assert!(!server[field].is_null(), "{field} missing: {server}");
    }
    assert_eq!(server["Name"], "ap-health");
    assert_eq!(server["SerfStatus"], "alive");
    assert_eq!(
        (server["Leader"].as_bool(), server["Voter"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(server["LastContact"], "0s");
    assert!(server["StableSince"].as_str().unwrap().ends_with('Z'));

    let s = agent
        .call("GET", "/v1/operator/autopilot/state", b"")
        .json();
    let id = server["ID"].as_str().unwrap();
    assert_eq!(s["Leader"], id);
    assert_eq!(s["Voters"], serde_json::json!([id]));
    assert_eq!(s["OptimisticFailureTolerance"], 0);
    let entry = &s["Servers"][id];
    assert_eq!(
        (entry["Status"].as_str(), entry["NodeType"].as_str()),
        (Some("leader"), Some("voter"))
    );
    assert_eq!(entry["NodeStatus"], "alive");
    assert!(
        entry["Meta"].is_object(),
        "the catalog node's meta: {entry}"
    );

    let peers = ok(agent.http, &["operator", "raft", "list-peers"]);
    let header: Vec<&str> = peers
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header.len(),
        8,
        "the commit index columns come from health: {peers}"
    );
}

#[test]
fn cli_get_set_and_state() {
    let agent = agent("ap-cli", &[]);
    let http = agent.http;
    let got = ok(http, &["operator", "autopilot", "get-config"]);
    assert_eq!(
        got,
        "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\n\
         MinQuorum = 0\nServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\n\
         DisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
    );
    let set = ok(
        http,
        &[
            "operator",
            "autopilot",
            "set-config",
            "-cleanup-dead-servers=false",
            "-max-trailing-logs=100",
            "-min-quorum=3",
            "-last-contact-threshold=500ms",
            "-server-stabilization-time=1m30s",
        ],
    );
    assert_eq!(set, "Configuration updated!\n");
    let got = ok(http, &["operator", "autopilot", "get-config"]);
    assert!(
        got.starts_with(
            "CleanupDeadServers = false\nLastContactThreshold = 500ms\nMaxTrailingLogs = 100\n\
         MinQuorum = 3\nServerStabilizationTime = 1m30s\n"
        ),
        "{got}"
    );
    let err = fails(
        http,
        &["operator", "autopilot", "set-config", "-min-quorum=x"],
    );
    assert!(
        err.contains("invalid value \"x\" for flag -min-quorum"),
        "{err}"
    );

    wait_until(Duration::from_secs(10), "autopilot state", || {
        cli(http, &["operator", "autopilot", "state"]).code == 0
    });
    let state = ok(http, &["operator", "autopilot", "state"]);
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines[0], "Healthy:                      true");
    assert_eq!(lines[1], "Failure Tolerance:            0");
    assert_eq!(lines[2], "Optimistic Failure Tolerance: 0");
    assert!(lines.contains(&"      Name:            ap-cli"), "{state}");
    assert!(lines.contains(&"      Status:          leader"), "{state}");
    let json = ok(http, &["operator", "autopilot", "state", "-format=json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["Healthy"], true);
    assert!(
        json.starts_with("{\n    \"Healthy\": true,\n    \"FailureTolerance\": 0,"),
        "{json}"
    );
    let err = fails(http, &["operator", "autopilot", "state", "-format=yaml"]);
    assert_eq!(err.trim(), "Unknown format: yaml");
    for sub in ["get-config", "set-config", "state"] {
        let out = cli(http, &["operator", "autopilot", sub, "--help"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr.contains(&format!("operator autopilot {sub}")),
            "{out:?}"
        );
    }
    assert_eq!(cli(http, &["operator", "autopilot"]).code, 1);
}

#[test]
fn the_config_file_seeds_the_configuration() {
    let dir = test_dir("ap-seed");
    let file = dir.join("autopilot.hcl");
    std::fs::write(
        &file,
        "autopilot {\n  cleanup_dead_servers = false\n  max_trailing_logs = 42\n  \
         last_contact_threshold = \"2s\"\n}\n",
    )
    .unwrap();
    let agent = agent("ap-seed", &["-config-file", file.to_str().unwrap()]);
    let got = agent.call("GET", CONFIG, b"").json();
    assert_eq!(got["CleanupDeadServers"], false);
    assert_eq!(got["MaxTrailingLogs"], 42);
    assert_eq!(got["LastContactThreshold"], "2s");
    assert_eq!(got["ServerStabilizationTime"], "10s");
}
