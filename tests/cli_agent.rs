//! The agent and operator commands against a running `-dev` agent: `info`, `leave`, `reload`,
//! `maint`, `keygen`, `validate`, `version`, `operator raft ...`, plus help on every command.

mod cli_support;
mod support;

use base64::Engine;
use cli_support::{cli, dead_addr, fails, ok, wait_until};
use std::time::Duration;
use support::{test_dir, Agent};

#[test]
fn info_prints_grouped_stats() {
    let agent = Agent::dev("cli-info", &[]);
    let out = ok(agent.http, &["info"]);
    assert!(out.lines().any(|l| l == "consul:"), "{out}");
    assert!(out.lines().any(|l| l == "\tserver = true"), "{out}");
    assert!(out.lines().any(|l| l == "\tleader = true"), "{out}");
    let err = fails(dead_addr(), &["info"]);
    assert!(
        err.starts_with("Error querying agent: Get \"http://"),
        "{err}"
    );
}

#[test]
fn operator_raft_lists_peers_and_checks_its_flags() {
    let agent = Agent::dev("cli-raft", &[]);
    let http = agent.http;
    let table = ok(http, &["operator", "raft", "list-peers"]);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header[..6],
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "cli-raft");
    assert_eq!(row[2], agent.wait_leader(Duration::from_secs(5)));
    assert_eq!(row[3..6], ["leader", "true", "3"]);
    assert_eq!(
        ok(http, &["operator", "raft", "list-peers", "-stale"]),
        table
    );
    assert_eq!(
        fails(http, &["operator", "raft", "remove-peer"]),
        "Error removing peer: an address or id is required for the peer to remove\n"
    );
    assert_eq!(
        fails(
            http,
            &["operator", "raft", "remove-peer", "-id=a", "-address=b"]
        ),
        "Error removing peer: cannot give both an address and id\n"
    );
    let err = fails(
        http,
        &["operator", "raft", "remove-peer", "-address=10.9.9.9:8300"],
    );
    assert!(
        err.starts_with("Error removing peer: Unexpected response code: 500"),
        "{err}"
    );
    // A single server has nobody to hand leadership to.
    let err = fails(http, &["operator", "raft", "transfer-leader"]);
    assert!(
        err.starts_with("Error transfering leadership: Failed to transfer leadership"),
        "{err}"
    );
    let err = fails(dead_addr(), &["operator", "raft", "list-peers"]);
    assert!(
        err.starts_with("Error getting peers: Failed to retrieve raft configuration: Get"),
        "{err}"
    );
    for sub in ["list-peers", "remove-peer", "transfer-leader"] {
        let out = cli(http, &["operator", "raft", sub, "-h"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("Usage: cairn operator raft {sub}")),
            "{out:?}"
        );
    }
    assert_eq!(cli(http, &["operator", "raft"]).code, 1);
    assert_eq!(cli(http, &["operator", "-h"]).code, 0);
}

#[test]
fn reload_and_maint_talk_to_consuls_endpoints() {
    let agent = Agent::dev("cli-reload", &[]);
    let http = agent.http;
    assert_eq!(ok(http, &["reload"]), "Configuration reload triggered\n");
    assert_eq!(ok(http, &["maint"]), "", "no maintenance checks");
    assert_eq!(
        ok(http, &["maint", "-enable", "-reason=upgrade"]),
        "Node maintenance is now enabled\n"
    );
    assert_eq!(
        ok(http, &["maint"]),
        "Node:\n  Name:   cli-reload\n  Reason: upgrade\n\n"
    );
    assert_eq!(
        ok(http, &["maint", "-disable"]),
        "Node maintenance is now disabled\n"
    );
    assert_eq!(ok(http, &["maint"]), "", "maintenance is over");
    assert_eq!(
        fails(http, &["maint", "-enable", "-disable"]),
        "Only one of -enable or -disable may be provided\n"
    );
    assert_eq!(
        fails(http, &["maint", "-reason=x"]),
        "Reason may only be provided with -enable\n"
    );
    assert!(fails(dead_addr(), &["reload"]).starts_with("Error reloading: Put \"http://"));
    assert!(fails(dead_addr(), &["maint"]).starts_with("Error querying Consul agent: Get"));
}

#[test]
fn leave_stops_the_agent() {
    let mut agent = Agent::dev("cli-leave", &[]);
    assert_eq!(ok(agent.http, &["leave"]), "Graceful leave complete\n");
    wait_until(Duration::from_secs(15), "agent exit", || {
        agent.child.try_wait().ok().flatten().is_some()
    });
    let err = fails(dead_addr(), &["leave"]);
    assert!(err.starts_with("Error leaving: Put \"http://"), "{err}");
    assert!(fails(dead_addr(), &["leave", "extra"])
        .starts_with("The 'leave' command takes no arguments"));
}

#[test]
fn keygen_validate_and_version_work_offline() {
    let dead = dead_addr();
    let key = ok(dead, &["keygen"]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim_end())
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    assert_ne!(ok(dead, &["keygen"]), key, "random");
    let dir = test_dir("cli-validate");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let good = dir.join("conf");
    std::fs::create_dir_all(&good).expect("conf dir");
    std::fs::write(
        good.join("a.json"),
        format!(r#"{{"data_dir": "{}"}}"#, data.display()),
    )
    .expect("write");
    std::fs::write(
        good.join("b.hcl"),
        "node_name = \"n1\"\nserver = true\nbind_addr = \"127.0.0.1\"\n",
    )
    .expect("write");
    let good = good.to_str().expect("path");
    assert_eq!(ok(dead, &["validate", good]), "Configuration is valid!\n");
    assert_eq!(ok(dead, &["validate", "-quiet", good]), "");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"no_such_key": 1}"#).expect("write");
    let err = fails(dead, &["validate", bad.to_str().expect("path")]);
    assert!(err.starts_with("Config validation failed: "), "{err}");
    assert!(err.contains("no_such_key"), "{err}");
    assert_eq!(
        fails(dead, &["validate"]),
        "Must specify at least one config file or directory\n"
    );
    assert!(ok(dead, &["version"]).starts_with("Cairn v"));
}

#[test]
fn every_command_has_help_and_rejects_bad_flags() {
    let dead = dead_addr();
    let commands: &[&[&str]] = &[
        &["kv", "get"],
        &["catalog", "nodes"],
        &["services", "register"],
        &["lock"],
        &["watch"],
        &["info"],
        &["leave"],
        &["reload"],
        &["maint"],
        &["monitor"],
        &["keygen"],
        &["validate"],
        &["operator", "raft", "list-peers"],
    ];
    for command in commands {
        let mut help = command.to_vec();
        help.push("--help");
        let out = cli(dead, &help);
        assert_eq!(out.code, 0, "{help:?}: {out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("Usage: cairn {}", command.join(" "))),
            "{help:?}: {out:?}"
        );
        let mut bad = command.to_vec();
        bad.push("-no-such-flag");
        let out = cli(dead, &bad);
        assert_eq!(out.code, 1, "{bad:?}: {out:?}");
        assert!(
            out.stderr
                .starts_with("flag provided but not defined: -no-such-flag\nUsage: cairn"),
            "{bad:?}: {out:?}"
        );
    }
    let usage = cli(dead, &["--help"]);
    for name in [
        "catalog", "info", "keygen", "kv", "leave", "lock", "maint", "monitor", "operator",
        "reload", "services", "validate", "watch",
    ] {
        assert!(
            usage.stderr.contains(&format!("\n    {name} ")),
            "{name}: {}",
            usage.stderr
        );
    }
}

#[test]
fn monitor_streams_the_agents_log_until_it_stops() {
    let mut agent = Agent::dev("cli-monitor", &["-log-level=warn"]);
    let err = fails(agent.http, &["monitor", "-log-level=loud"]);
    assert_eq!(
        err,
        "Error starting monitor: Unexpected response code: 400 (Unknown log level: loud)\n"
    );
    let dir = test_dir("cli-monitor-out");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let mut monitor = cli_support::command(
        std::path::Path::new(cli_support::BIN),
        Some(agent.http),
        &["monitor", "-log-level=info"],
    )
    .stdout(std::fs::File::create(&out_path).expect("file"))
    .stderr(std::fs::File::create(&err_path).expect("file"))
    .spawn()
    .expect("spawn monitor");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ok(agent.http, &["reload"]),
        "Configuration reload triggered\n"
    );
    wait_until(Duration::from_secs(15), "the reload in the monitor", || {
        std::fs::read_to_string(&out_path)
            .is_ok_and(|o| o.contains("agent: reloaded configuration"))
    });
    assert_eq!(ok(agent.http, &["leave"]), "Graceful leave complete\n");
    wait_until(Duration::from_secs(15), "the monitor ends", || {
        monitor.try_wait().ok().flatten().is_some()
    });
    let status = monitor.wait().expect("status");
    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(&err_path).expect("stderr");
    assert!(
        stderr.starts_with("Remote side ended the monitor!"),
        "{stderr}"
    );
    wait_until(Duration::from_secs(15), "agent exit", || {
        agent.child.try_wait().ok().flatten().is_some()
    });
}

#[test]
fn keyring_lists_and_rotates_the_gossip_keys() {
    let key = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let encrypt = format!("-encrypt={key}");
    let agent = Agent::dev("cli-keyring", &[&encrypt]);
    let http = agent.http;
    assert_eq!(
        ok(http, &["keyring", "-list"]),
        format!("==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  {key} [1/1]\n")
    );
    let new_key = ok(http, &["keygen"]).trim().to_string();
    assert_eq!(
        ok(http, &["keyring", &format!("-install={new_key}")]),
        "==> Installing new gossip encryption key...\n"
    );
    ok(http, &["keyring", &format!("-use={new_key}")]);
    let primary = ok(http, &["keyring", "-list-primary"]);
    assert!(primary.contains(&format!("  {new_key} [1/1]")), "{primary}");
    assert!(!primary.contains(key), "{primary}");
    ok(http, &["keyring", &format!("-remove={key}")]);
    let listed = ok(http, &["keyring", "-list", "-local-only"]);
    assert!(!listed.contains(key), "{listed}");
    // Removing the primary key fails on every member: exit 1 with the agent's reason.
    let err = fails(http, &["keyring", &format!("-remove={new_key}")]);
    assert!(
        err.starts_with("error: Unexpected response code: 500 (1/1 nodes reported failure"),
        "{err}"
    );
    assert_eq!(
        fails(http, &["keyring", "-list", &format!("-use={key}")]),
        "Only a single action is allowed\n"
    );
    assert!(fails(http, &["keyring"]).starts_with("Usage: cairn keyring [options]"));
    assert_eq!(
        fails(http, &["keyring", "-list", "-relay-factor=9"]),
        "Error parsing relay factor: Relay factor must be in range: [0, 5]\n"
    );
    assert!(fails(
        http,
        &["keyring", &format!("-install={key}"), "-local-only"]
    )
    .starts_with("Error validating local-only"));
}
