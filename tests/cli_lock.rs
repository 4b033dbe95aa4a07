//! `lock` against a running `-dev` agent: the child runs with `CONSUL_LOCK_HELD=true`, a held
//! lock makes `-try`/`-timeout` fail, semaphores admit `-n` holders, a lost lock kills the child,
//! and the keys use consul's layout.

mod cli_support;
mod support;

use cli_support::{cli, command, dead_addr, fails, ok, wait_output, wait_until, BIN};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::{test_dir, Agent};

const LOCK_FLAGS: u64 = 0x2ddc_cbc0_58a5_0c18;
const SEMAPHORE_FLAGS: u64 = 0xe0f6_9a2b_aa41_4de0;

fn spawn_lock(agent: &Agent, args: &[&str]) -> Child {
    let mut full = vec!["lock"];
    full.extend_from_slice(args);
    command(Path::new(BIN), Some(agent.http), &full)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lock")
}

fn wait_for_file(path: &Path) {
    wait_until(
        Duration::from_secs(10),
        &format!("{}", path.display()),
        || path.exists(),
    );
}

#[test]
fn lock_runs_the_child_holding_the_lock() {
    let agent = Agent::dev("cli-lock-run", &[]);
    let out = ok(agent.http, &["lock", "app", "echo held=$CONSUL_LOCK_HELD"]);
    assert_eq!(out, "held=true\n");
    let out = ok(
        agent.http,
        &["lock", "-shell=false", "app", "/bin/echo", "a", "b"],
    );
    assert_eq!(out, "a b\n");
    // The lock key is released and removed afterwards.
    assert_eq!(agent.call("GET", "/v1/kv/app/.lock", b"").status, 404);
    let failed = cli(agent.http, &["lock", "-child-exit-code", "app", "exit 3"]);
    assert_eq!(failed.code, 2, "{failed:?}");
    assert_eq!(failed.stderr, "Error running handler: exit status 3\n");
    assert_eq!(cli(agent.http, &["lock", "app", "exit 3"]).code, 0);
}

#[test]
fn a_held_lock_makes_try_fail_and_uses_consuls_key() {
    let agent = Agent::dev("cli-lock-held", &[]);
    let dir = test_dir("cli-lock-held");
    let started = dir.join("started");
    let release = dir.join("release");
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
        started.display(),
        release.display()
    );
    let holder = spawn_lock(&agent, &["jobs", &script]);
    wait_for_file(&started);
    let key = agent.call("GET", "/v1/kv/jobs/.lock", b"").json();
    assert_eq!(key[0]["Flags"], LOCK_FLAGS);
    assert!(
        key[0]["Session"].as_str().is_some_and(|s| !s.is_empty()),
        "{key}"
    );
    let begun = Instant::now();
    let err = fails(agent.http, &["lock", "-try=300ms", "jobs", "echo never"]);
    assert_eq!(
        err,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    assert!(begun.elapsed() >= Duration::from_millis(250));
    let err = fails(
        agent.http,
        &["lock", "-timeout=200ms", "jobs", "echo never"],
    );
    assert_eq!(
        err,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    std::fs::write(&release, "").expect("release");
    let out = wait_output(holder, Duration::from_secs(20));
    assert_eq!(out.code, 0, "{out:?}");
    // Now free: a waiting contender gets it.
    assert_eq!(
        ok(agent.http, &["lock", "-timeout=5s", "jobs", "echo got"]),
        "got\n"
    );
    // A key that is not a lock is reported as a conflict.
    ok(agent.http, &["kv", "put", "plain/.lock", "x"]);
    let err = fails(agent.http, &["lock", "plain", "true"]);
    assert_eq!(
        err,
        "Lock acquisition failed: Existing key does not match lock use\n"
    );
}

#[test]
fn semaphore_admits_n_holders() {
    let agent = Agent::dev("cli-lock-sem", &[]);
    let dir = test_dir("cli-lock-sem");
    let release = dir.join("release");
    let mut holders = Vec::new();
    for i in 0..2 {
        let started = dir.join(format!("started-{i}"));
        let script = format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
            started.display(),
            release.display()
        );
        holders.push(spawn_lock(&agent, &["-n=2", "pool", &script]));
        wait_for_file(&started);
    }
    let record = agent.call("GET", "/v1/kv/pool/.lock", b"").json();
    assert_eq!(record[0]["Flags"], SEMAPHORE_FLAGS);
    let err = fails(
        agent.http,
        &["lock", "-n=2", "-try=300ms", "pool", "echo never"],
    );
    assert_eq!(
        err,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    let err = fails(
        agent.http,
        &["lock", "-n=3", "-try=300ms", "pool", "echo never"],
    );
    assert_eq!(
        err,
        "Lock acquisition failed: Semaphore limit conflict (lock: 2, local: 3)\n"
    );
    std::fs::write(&release, "").expect("release");
    for holder in holders {
        let out = wait_output(holder, Duration::from_secs(20));
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(
        agent.call("GET", "/v1/kv/pool/?recurse", b"").status,
        404,
        "all keys cleaned up"
    );
}

#[test]
fn losing_the_lock_terminates_the_child() {
    let agent = Agent::dev("cli-lock-lost", &[]);
    let dir = test_dir("cli-lock-lost");
    let started = dir.join("started");
    let script = format!(
        "trap 'echo terminated; kill $!; exit 0' TERM; touch {}; sleep 30 & wait",
        started.display()
    );
    let holder = spawn_lock(&agent, &["-verbose", "lost", &script]);
    wait_for_file(&started);
    let key = agent.call("GET", "/v1/kv/lost/.lock", b"").json();
    let session = key[0]["Session"].as_str().expect("session").to_string();
    agent.call("PUT", &format!("/v1/session/destroy/{session}"), b"");
    let out = wait_output(holder, Duration::from_secs(20));
    assert!(out.stdout.contains("Lock lost, killing child"), "{out:?}");
    assert!(out.stdout.contains("terminated"), "{out:?}");
}

#[test]
fn lock_failures() {
    let dead = dead_addr();
    let err = fails(dead, &["lock", "p", "true"]);
    assert!(
        err.starts_with("Error querying Consul agent: Get \"http://"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("connection refused"), "{err}");
    assert_eq!(
        fails(dead, &["lock", "p"]),
        "Key prefix and child command must be specified\n"
    );
    assert_eq!(
        fails(dead, &["lock", "-n=0", "p", "true"]),
        "Lock holder limit must be positive\n"
    );
    assert_eq!(
        fails(dead, &["lock", "-monitor-retry=-1", "p", "true"]),
        "Number for 'monitor-retry' must be >= 0\n"
    );
    assert!(fails(dead, &["lock", "-timeout=abc", "p", "true"])
        .starts_with("invalid value \"abc\" for flag -timeout"));
    assert!(fails(dead, &["lock", "-bogus", "p", "true"])
        .starts_with("flag provided but not defined: -bogus"));
    let help = cli(dead, &["lock", "-h"]);
    assert_eq!(help.code, 0);
    assert!(help
        .stderr
        .starts_with("Usage: cairn lock [options] prefix child..."));
}
