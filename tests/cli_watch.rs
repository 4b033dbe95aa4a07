//! `watch` against a running `-dev` agent: one-shot JSON output per type, a handler run on
//! changes with the data on stdin, a failing handler, and bad parameters.

mod cli_support;
mod support;

use cli_support::{cli, command, dead_addr, fails, ok, wait_output, wait_until, BIN};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::{test_dir, Agent};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn watch_without_handler_prints_each_type_once() {
    let agent = Agent::dev("cli-watch-once", &[]);
    let http = agent.http;
    ok(http, &["kv", "put", "w/a", "hello"]);
    let key = ok(http, &["watch", "-type=key", "-key=w/a"]);
    assert!(key.starts_with("{\n    \""), "four-space indent: {key}");
    assert_eq!(json(&key)["Value"], "aGVsbG8=");
    assert_eq!(ok(http, &["watch", "-type=key", "-key=missing"]), "null\n");
    let prefix = json(&ok(http, &["watch", "-type=keyprefix", "-prefix=w/"]));
    assert_eq!(prefix[0]["Key"], "w/a");
    let services = json(&ok(http, &["watch", "-type=services"]));
    assert!(services["consul"].is_array(), "{services}");
    let nodes = json(&ok(http, &["watch", "-type=nodes"]));
    assert_eq!(nodes[0]["Node"], "cli-watch-once");
    let service = json(&ok(
        http,
        &[
            "watch",
            "-type=service",
            "-service=consul",
            "-passingonly=true",
        ],
    ));
    assert_eq!(service[0]["Service"]["Service"], "consul");
    let checks = json(&ok(http, &["watch", "-type=checks", "-state=passing"]));
    assert!(checks.as_array().is_some_and(|c| !c.is_empty()), "{checks}");
    let checks = json(&ok(http, &["watch", "-type=checks", "-service=consul"]));
    assert!(checks.is_array(), "{checks}");
}

#[test]
fn watch_handler_runs_on_each_change() {
    let agent = Agent::dev("cli-watch-handler", &[]);
    let dir = test_dir("cli-watch-handler");
    let log = dir.join("calls");
    ok(agent.http, &["kv", "put", "h", "one"]);
    let handler = format!(
        "echo \"$(cat) index=$CONSUL_INDEX\" >> {log}",
        log = log.display()
    );
    let child = command(
        Path::new(BIN),
        Some(agent.http),
        &["watch", "-type=key", "-key=h", &handler],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn watch");
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(10), "first handler call", || {
        calls().lines().count() == 1
    });
    assert!(calls().contains("\"Value\":\"b25l\""), "{}", calls());
    assert!(calls().contains(" index="), "{}", calls());
    ok(agent.http, &["kv", "put", "h", "two"]);
    wait_until(Duration::from_secs(10), "second handler call", || {
        calls().lines().count() == 2
    });
    assert!(
        calls()
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("\"Value\":\"dHdv\"")),
        "{}",
        calls()
    );
    // SIGTERM ends the watch with 0, as consul's.
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_failing_handler_ends_the_watch_with_1() {
    let agent = Agent::dev("cli-watch-fail", &[]);
    let out = cli(
        agent.http,
        &["watch", "-type=nodes", "cat > /dev/null; exit 7"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "Error executing handler: exit status 7\n");
}

#[test]
fn watch_failures() {
    let agent = Agent::dev("cli-watch-errors", &[]);
    let http = agent.http;
    // An event watch reads /v1/event/list: no event yet is an empty list.
    let r = support::call(http, "PUT", "/v1/event/fire/deploy", b"v1");
    assert_eq!(r.status, 200, "{}", r.text());
    let events: serde_json::Value =
        serde_json::from_str(&ok(http, &["watch", "-type=event", "-name=deploy"])).expect("json");
    assert_eq!(events[0]["Name"], "deploy", "{events}");
    assert_eq!(events[0]["Payload"], "djE=", "{events}");
    assert_eq!(ok(http, &["watch", "-type=event", "-name=other"]), "[]\n");
    assert!(
        fails(http, &["watch"]).starts_with("Watch type must be specified\n\nUsage: cairn watch")
    );
    assert_eq!(
        fails(http, &["watch", "-type=key"]),
        "Must specify a single key to watch\n"
    );
    assert_eq!(
        fails(http, &["watch", "-type=bogus"]),
        "Unsupported watch type: bogus\n"
    );
    assert_eq!(
        fails(http, &["watch", "-type=service"]),
        "Must specify a single service to watch\n"
    );
    assert!(fails(
        http,
        &["watch", "-type=service", "-service=a", "-passingonly=maybe"]
    )
    .starts_with("Failed to parse passingonly flag"));
    let dead = dead_addr();
    let err = fails(dead, &["watch", "-type=nodes"]);
    assert!(
        err.starts_with("Error querying Consul agent: Get \"http://"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("connection refused"), "{err}");
    let help = cli(dead, &["watch", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help
        .stderr
        .starts_with("Usage: cairn watch [options] [child...]"));
}
