//! End to end over loopback: a `cairn agent -dev` process and Consul's HTTP API: KV (get, put, delete and
//! every parameter), transactions, sessions and locks (lock-delay, TTL invalidation), blocking queries,
//! consistency headers, status and operator routes, bad input, and leave.

mod support;

use std::time::{Duration, Instant};
use support::Agent;

const MIB_HALF: usize = 512 << 10;

fn entry(agent: &Agent, key: &str) -> serde_json::Value {
    let r = agent.call("GET", &format!("/v1/kv/{key}"), b"");
    assert_eq!(r.status, 200, "GET {key}: {r:?}");
    r.json()[0].clone()
}

#[test]
fn kv_get_put_delete_with_every_parameter() {
    let a = Agent::dev("kv", &[]);
    assert_eq!(a.call("GET", "/v1/kv/app/db", b"").status, 404);
    let missing = a.call("GET", "/v1/kv/app/db", b"");
    assert!(missing.index() >= 1, "X-Consul-Index is never 0");
    assert_eq!(
        a.call("PUT", "/v1/kv/app/db?flags=42", b"postgres").text(),
        "true"
    );
    let e = entry(&a, "app/db");
    assert_eq!(e["Key"], "app/db");
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["Value"], "cG9zdGdyZXM=");
    assert_eq!(e["LockIndex"], 0);
    assert!(
        e.get("Session").is_none(),
        "Session is omitted when unlocked"
    );
    let modify = e["ModifyIndex"].as_u64().unwrap();
    let r = a.call("GET", "/v1/kv/app/db", b"");
    assert_eq!(r.index(), modify);
    assert_eq!(r.header("x-consul-knownleader"), Some("true"));
    assert_eq!(r.header("x-consul-lastcontact"), Some("0"));
    assert_eq!(r.header("x-consul-effective-consistency"), Some("leader"));
    for (mode, want) in [("stale", "stale"), ("consistent", "consistent")] {
        let r = a.call("GET", &format!("/v1/kv/app/db?{mode}"), b"");
        assert_eq!(r.header("x-consul-effective-consistency"), Some(want));
        assert_eq!(r.status, 200);
    }
    let raw = a.call("GET", "/v1/kv/app/db?raw", b"");
    assert_eq!(raw.body, b"postgres");

    // cas: 0 creates only; otherwise it must match ModifyIndex.
    assert_eq!(a.call("PUT", "/v1/kv/app/db?cas=0", b"x").text(), "false");
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/app/db?cas={}", modify + 100), b"x")
            .text(),
        "false"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/app/db?cas={modify}"), b"mysql")
            .text(),
        "true"
    );
    assert_eq!(a.call("GET", "/v1/kv/app/db?raw", b"").body, b"mysql");
    assert_eq!(a.call("PUT", "/v1/kv/app/new?cas=0", b"n").text(), "true");

    for key in ["app/web/port", "app/web/host", "other"] {
        assert_eq!(a.call("PUT", &format!("/v1/kv/{key}"), b"v").text(), "true");
    }
    let keys = a.call("GET", "/v1/kv/app/?keys&separator=/", b"").json();
    assert_eq!(keys, serde_json::json!(["app/db", "app/new", "app/web/"]));
    let keys = a.call("GET", "/v1/kv/app/?keys", b"").json();
    assert_eq!(keys.as_array().unwrap().len(), 4);
    let all = a.call("GET", "/v1/kv/app/?recurse", b"");
    assert_eq!(all.json().as_array().unwrap().len(), 4);
    let before_delete = all.index();

    // delete: cas must match; recurse removes the prefix; the prefix index never goes backwards.
    let new_index = entry(&a, "app/new")["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        a.call(
            "DELETE",
            &format!("/v1/kv/app/new?cas={}", new_index + 1),
            b""
        )
        .text(),
        "false"
    );
    assert_eq!(
        a.call("DELETE", &format!("/v1/kv/app/new?cas={new_index}"), b"")
            .text(),
        "true"
    );
    assert_eq!(a.call("DELETE", "/v1/kv/app/db", b"").text(), "true");
    assert_eq!(a.call("GET", "/v1/kv/app/db", b"").status, 404);
    let after = a.call("GET", "/v1/kv/app/?recurse", b"");
    assert!(
        after.index() > before_delete,
        "tombstones keep the prefix index moving forward"
    );
    assert_eq!(a.call("DELETE", "/v1/kv/app/?recurse", b"").text(), "true");
    assert_eq!(a.call("GET", "/v1/kv/app/?recurse", b"").status, 404);
    assert_eq!(a.call("GET", "/v1/kv/other?raw", b"").body, b"v");
    let pretty = a.call("GET", "/v1/kv/other?pretty", b"").text();
    assert!(
        pretty.contains("\n    {\n        \"LockIndex\": 0,"),
        "{pretty}"
    );
}

#[test]
fn bad_input_gets_consuls_errors() {
    let a = Agent::dev("bad", &[]);
    let big = vec![b'x'; MIB_HALF + 1];
    assert_eq!(a.call("PUT", "/v1/kv/big", &big).status, 413);
    assert_eq!(
        a.call("PUT", "/v1/kv/big", &big[..MIB_HALF]).text(),
        "true",
        "512 KiB is allowed"
    );
    let r = a.call("PUT", "/v1/txn", b"[{\"KV\": {\"Verb\": \"set\"");
    assert_eq!(r.status, 400, "{r:?}");
    let r = a.call("PUT", "/v1/session/create", b"{\"TTL\": ");
    assert_eq!(r.status, 400);
    let r = a.call(
        "PUT",
        "/v1/kv/lock?acquire=00000000-0000-0000-0000-000000000000",
        b"",
    );
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "invalid session \"00000000-0000-0000-0000-000000000000\""
    );
    let r = a.call("PUT", "/v1/session/create", br#"{"TTL": "1s"}"#);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text(),
        "Invalid Session TTL '1000000000', must be between [10s=24h0m0s]"
    );
    let r = a.call("PUT", "/v1/session/create", br#"{"TTL": "86401s"}"#);
    assert_eq!(r.status, 500);
    let r = a.call("GET", "/v1/kv/x?index=1&wait=forever", b"");
    assert_eq!((r.status, r.text().as_str()), (400, "Invalid wait time"));
    assert_eq!(a.call("GET", "/v1/kv/x?stale&consistent", b"").status, 400);
    assert_eq!(a.call("POST", "/v1/kv/x", b"").status, 405);
    assert_eq!(a.call("GET", "/v1/no/such/route", b"").status, 404);
    let r = a.call(
        "PUT",
        "/v1/session/renew/00000000-0000-0000-0000-000000000000",
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Session id '00000000-0000-0000-0000-000000000000' not found"
    );
    assert_eq!(a.call("GET", "/v1/kv/%zz", b"").status, 400);
    assert_eq!(
        a.call("GET", "/v1/kv/x?dc=elsewhere", b"").text(),
        "No path to datacenter"
    );
}

fn create_session(a: &Agent, body: &str) -> String {
    let r = a.call("PUT", "/v1/session/create", body.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["ID"].as_str().expect("ID").to_string()
}

#[test]
fn sessions_locks_and_lock_delay() {
    let a = Agent::dev("locks", &[]);
    let s1 = create_session(&a, r#"{"Name": "one", "LockDelay": "2s", "TTL": "30s"}"#);
    let s2 = create_session(&a, r#"{"name": "two", "lock_delay": 0}"#);
    let info = a.call("GET", &format!("/v1/session/info/{s1}"), b"");
    let info_json = info.json();
    assert_eq!(info_json[0]["Name"], "one");
    assert_eq!(info_json[0]["Node"], "locks");
    assert_eq!(info_json[0]["LockDelay"], 2_000_000_000u64);
    assert_eq!(info_json[0]["TTL"], "30s");
    assert_eq!(info_json[0]["Behavior"], "release");
    assert_eq!(
        info_json[0]["NodeChecks"],
        serde_json::json!(["serfHealth"])
    );
    assert!(info.index() >= 1);
    assert_eq!(
        a.call("GET", "/v1/session/list", b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        a.call("GET", "/v1/session/node/locks", b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        a.call("GET", "/v1/session/node/elsewhere", b"").json(),
        serde_json::json!([])
    );
    assert_eq!(
        a.call("GET", "/v1/session/info/nope", b"").json(),
        serde_json::json!([])
    );
    let renewed = a
        .call("PUT", &format!("/v1/session/renew/{s1}"), b"")
        .json();
    assert_eq!(renewed[0]["ID"], s1.as_str());

    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s1}"), b"me")
            .text(),
        "true"
    );
    let e = entry(&a, "leader");
    assert_eq!(
        (e["LockIndex"].as_u64(), e["Session"].as_str()),
        (Some(1), Some(s1.as_str()))
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s2}"), b"you")
            .text(),
        "false"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?release={s2}"), b"")
            .text(),
        "false"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s1}"), b"me2")
            .text(),
        "true"
    );
    assert_eq!(
        entry(&a, "leader")["LockIndex"],
        1,
        "re-acquire by the holder keeps LockIndex"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?release={s1}"), b"")
            .text(),
        "true"
    );
    assert!(entry(&a, "leader").get("Session").is_none());
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s2}"), b"you")
            .text(),
        "true"
    );
    assert_eq!(entry(&a, "leader")["LockIndex"], 2);
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?release={s2}"), b"")
            .text(),
        "true"
    );

    // Destroying a holder releases its lock and starts its lock-delay (2 s) on the key.
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s1}"), b"me")
            .text(),
        "true"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/session/destroy/{s1}"), b"")
            .text(),
        "true"
    );
    assert!(
        entry(&a, "leader").get("Session").is_none(),
        "released by the destroy"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/leader?acquire={s2}"), b"")
            .text(),
        "false",
        "the lock-delay holds the key"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while a
        .call("PUT", &format!("/v1/kv/leader?acquire={s2}"), b"")
        .text()
        != "true"
    {
        assert!(Instant::now() < deadline, "the lock-delay never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        a.call("PUT", &format!("/v1/session/destroy/{s1}"), b"")
            .text(),
        "true",
        "idempotent"
    );
    assert_eq!(
        a.call("GET", "/v1/session/list", b"")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn sessions_expire_after_twice_their_ttl_unless_renewed() {
    let a = Agent::dev("ttl", &["-hcl=session_ttl_min = \"1s\""]);
    let doomed = create_session(
        &a,
        r#"{"TTL": "1s", "Behavior": "delete", "LockDelay": "0s"}"#,
    );
    let kept = create_session(&a, r#"{"TTL": "1s", "LockDelay": "0s"}"#);
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/doomed?acquire={doomed}"), b"x")
            .text(),
        "true"
    );
    assert_eq!(
        a.call("PUT", &format!("/v1/kv/kept?acquire={kept}"), b"y")
            .text(),
        "true"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(
            a.call("PUT", &format!("/v1/session/renew/{kept}"), b"")
                .status,
            200
        );
        let gone = a
            .call("GET", &format!("/v1/session/info/{doomed}"), b"")
            .json()
            == serde_json::json!([]);
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session never expired:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        a.call("GET", "/v1/kv/doomed", b"").status,
        404,
        "behavior delete removed the key"
    );
    assert_eq!(
        entry(&a, "kept")["Session"],
        kept.as_str(),
        "the renewed session still holds its lock"
    );
}

#[test]
fn transactions_apply_all_or_nothing() {
    let a = Agent::dev("txn", &[]);
    let ok = a.call(
        "PUT",
        "/v1/txn",
        br#"[{"KV":{"Verb":"set","Key":"t/a","Value":"YQ=="}},{"KV":{"Verb":"set","Key":"t/b","Value":"Yg==","Flags":3}},{"KV":{"Verb":"get","Key":"t/a"}}]"#,
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    let body = ok.json();
    assert_eq!(body["Errors"], serde_json::Value::Null);
    let results = body["Results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0]["KV"]["Value"],
        serde_json::Value::Null,
        "no value for set results"
    );
    assert_eq!(results[2]["KV"]["Value"], "YQ==");
    let index = results[0]["KV"]["ModifyIndex"].as_u64().unwrap();

    let failed = a.call(
        "PUT",
        "/v1/txn",
        format!(
            r#"[{{"KV":{{"Verb":"set","Key":"t/c","Value":"Yw=="}}}},{{"KV":{{"Verb":"cas","Key":"t/a","Value":"eA==","Index":{}}}}}]"#,
            index + 1000
        )
        .as_bytes(),
    );
    assert_eq!(failed.status, 409, "{failed:?}");
    let body = failed.json();
    assert_eq!(body["Results"], serde_json::Value::Null);
    assert_eq!(body["Errors"][0]["OpIndex"], 1);
    assert!(body["Errors"][0]["What"]
        .as_str()
        .unwrap()
        .contains("index is stale"));
    assert_eq!(a.call("GET", "/v1/kv/t/c", b"").status, 404, "rolled back");

    let read = a.call(
        "PUT",
        "/v1/txn?stale",
        br#"[{"KV":{"Verb":"get-tree","Key":"t/"}}]"#,
    );
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["Results"].as_array().unwrap().len(), 2);
    assert_eq!(read.header("x-consul-knownleader"), Some("true"));
    let too_many: Vec<String> = (0..129)
        .map(|i| format!(r#"{{"KV":{{"Verb":"get","Key":"k{i}"}}}}"#))
        .collect();
    let r = a.call(
        "PUT",
        "/v1/txn",
        format!("[{}]", too_many.join(",")).as_bytes(),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn a_blocking_query_wakes_on_its_key_and_times_out_otherwise() {
    let a = Agent::dev("block", &[]);
    assert_eq!(a.call("PUT", "/v1/kv/watched", b"v1").text(), "true");
    let index = a.call("GET", "/v1/kv/watched", b"").index();

    // Times out with the same index when nothing changes (wait is honoured).
    let started = Instant::now();
    let r = a.call(
        "GET",
        &format!("/v1/kv/watched?index={index}&wait=400ms"),
        b"",
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "returned before the wait ended"
    );
    assert_eq!((r.status, r.index()), (200, index));

    // An unrelated write does not end it; a write to the key does, with the new value and index.
    let http = a.http;
    let waiter = std::thread::spawn(move || {
        support::call(
            http,
            "GET",
            &format!("/v1/kv/watched?index={index}&wait=20s"),
            b"",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.call("PUT", "/v1/kv/unrelated", b"x").text(), "true");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiter.is_finished(),
        "an unrelated write ended the blocking query"
    );
    assert_eq!(a.call("PUT", "/v1/kv/watched", b"v2").text(), "true");
    let r = waiter.join().expect("waiter");
    assert!(r.index() > index);
    assert_eq!(r.json()[0]["Value"], "djI=");

    // A prefix query wakes on a key under the prefix.
    let prefix_index = a.call("GET", "/v1/kv/dir/?recurse", b"").index();
    let waiter = std::thread::spawn(move || {
        support::call(
            http,
            "GET",
            &format!("/v1/kv/dir/?recurse&index={prefix_index}&wait=20s"),
            b"",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.call("PUT", "/v1/kv/dir/sub/key", b"x").text(), "true");
    let r = waiter.join().expect("waiter");
    assert_eq!(r.status, 200);
    assert!(r.index() > prefix_index);
}

#[test]
fn status_operator_and_leave() {
    let mut a = Agent::dev("status", &[]);
    let leader = a.call("GET", "/v1/status/leader", b"").json();
    let peers = a.call("GET", "/v1/status/peers", b"").json();
    assert_eq!(peers, serde_json::json!([leader]));
    let config = a.call("GET", "/v1/operator/raft/configuration", b"").json();
    assert_eq!(config["Servers"][0]["Leader"], true);
    assert_eq!(config["Servers"][0]["Node"], "status");
    assert_eq!(config["Servers"][0]["Address"], leader);
    assert_eq!(a.call("GET", "/", b"").status, 200);
    assert_eq!(a.call("PUT", "/v1/agent/leave", b"").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = a.child.try_wait().expect("wait") {
            assert!(
                status.success(),
                "leave exits 0: {status:?}\n{}",
                a.log_text()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit after leave"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pid_file_and_sighup_reload() {
    let dir = support::test_dir("reload");
    let pid_file = dir.join("cairn.pid");
    let config = dir.join("agent.hcl");
    std::fs::write(&config, "node_meta { rack = \"r1\" }\n").expect("config");
    let a = Agent::dev(
        "reload",
        &[
            &format!("-pid-file={}", pid_file.display()),
            &format!("-config-file={}", config.display()),
        ],
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(pid.trim(), a.child.id().to_string());
    std::fs::write(&config, "node_meta { rack = \"r2\" }\n").expect("config");
    unsafe { libc::kill(a.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a
        .log_text()
        .contains("reloaded configuration; applied: node_meta")
    {
        assert!(
            Instant::now() < deadline,
            "no reload logged:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.call("GET", "/v1/status/leader", b"").status,
        200,
        "still serving after SIGHUP"
    );
    unsafe { libc::kill(a.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut a = a;
    while a.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid_file.exists(), "the pid file is removed at exit");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn thousands_of_blocking_queries_wake_only_on_their_key() {
    use std::io::{Read, Write};
    const WAITERS: usize = 2000;
    let a = Agent::dev("many", &[]);
    assert_eq!(a.call("PUT", "/v1/kv/hot", b"v1").text(), "true");
    assert_eq!(a.call("PUT", "/v1/kv/cold", b"v1").text(), "true");
    let hot = a.call("GET", "/v1/kv/hot", b"").index();
    let cold = a.call("GET", "/v1/kv/cold", b"").index();
    let before_kib = rss_kib(a.child.id());
    let mut waiters = Vec::with_capacity(WAITERS);
    for i in 0..WAITERS {
        let (key, index) = if i % 2 == 0 {
            ("hot", hot)
        } else {
            ("cold", cold)
        };
        let mut stream = std::net::TcpStream::connect(a.http).expect("connect");
        let request = format!(
            "GET /v1/kv/{key}?index={index}&wait=60s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        waiters.push((key, stream));
    }
    // Every waiter is registered once the agent answers a request sent after them.
    assert_eq!(a.call("GET", "/v1/kv/hot", b"").index(), hot);
    std::thread::sleep(Duration::from_millis(500));
    let grown_kib = rss_kib(a.child.id()).saturating_sub(before_kib);
    eprintln!("{WAITERS} blocking queries: agent RSS grew by {grown_kib} KiB");
    assert!(
        grown_kib < 100 * 1024,
        "{WAITERS} blocking queries took {grown_kib} KiB"
    );

    assert_eq!(a.call("PUT", "/v1/kv/hot", b"v2").text(), "true");
    let mut woken = 0;
    for (key, stream) in &mut waiters {
        if *key != "hot" {
            continue;
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("response");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("djI="), "the new value: {text}");
        woken += 1;
    }
    assert_eq!(woken, WAITERS / 2);
    for (key, stream) in &mut waiters {
        if *key == "cold" {
            stream.set_nonblocking(true).expect("nonblocking");
            let mut byte = [0u8; 1];
            let still_waiting = matches!(
                stream.read(&mut byte),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            );
            assert!(still_waiting, "a query on another key answered");
        }
    }
}
