//! Snapshots end to end: three `cairn agent -server` processes on 127.0.0.31-33 (one HTTP port and one server
//! port shared by the three addresses).
//!
//! 1. 100 000 KV keys are written (`/v1/txn` batches of 64 sets, eight writers spread over the three servers),
//!    an archive is taken through a follower (`GET /v1/snapshot`, forwarded read index), and it
//!    is restored onto a fresh `-dev` agent; every key's value, flags and indexes must be identical, and a
//!    write after the restore must get a higher index than the snapshot's. The figures are printed.
//! 2. A small archive (from a second fresh `-dev` agent) is restored onto the running cluster through a
//!    follower: the 100 000 keys are gone and the restored keys are there on every server, a blocking query
//!    waiting on the cluster wakes, and the cluster's index does not go backwards.
//! 3. The 100 000-key archive is restored onto the running cluster through the leader: every server holds
//!    exactly its keys again (checked key by key) and the cluster still takes writes.
//!
//! 4. (A second test) an archive restored onto a single server with a data dir on 127.0.0.34 survives a
//!    restart (Raft snapshot and log replay), and the index offset with it: later writes keep higher indexes.
//!
//! Cost: about 40-55 s in a debug build on a shared two-core machine, most of it writing the keys (20-25 s).
//!
//! Every wait is bounded; children are killed when the test ends, also on failure.

mod support;

use base64::Engine;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{request, test_dir, Agent, Resp};

const SERVERS: usize = 3;
const KEYS: usize = 100_000;
const TXN_OPS: usize = 64;
const WRITERS: usize = 8;
const CALL: Duration = Duration::from_secs(10);
/// Reads and writes of whole archives and 100 000-key listings in a debug build.
const BIG_CALL: Duration = Duration::from_secs(60);
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// A key's content: value, flags, CreateIndex, ModifyIndex, LockIndex.
type Dump = BTreeMap<String, (Vec<u8>, u64, u64, u64, u64)>;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn dump(r: &Resp) -> Dump {
    let list = r.json();
    let mut out = Dump::new();
    for e in list.as_array().cloned().unwrap_or_default() {
        let value = e["Value"]
            .as_str()
            .map(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .expect("base64")
            })
            .unwrap_or_default();
        let n = |f: &str| e[f].as_u64().unwrap_or(0);
        out.insert(
            e["Key"].as_str().unwrap_or_default().to_string(),
            (
                value,
                n("Flags"),
                n("CreateIndex"),
                n("ModifyIndex"),
                n("LockIndex"),
            ),
        );
    }
    out
}

fn common_free_port(ips: &[IpAddr], avoid: &[u16]) -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind((ips[0], 0)).expect("bind");
        let port = probe.local_addr().expect("addr").port();
        if avoid.contains(&port) {
            continue;
        }
        let others: Vec<_> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on {ips:?}");
}

struct Cluster {
    ips: Vec<IpAddr>,
    http_port: u16,
    server_port: u16,
    agents: Vec<Agent>,
    logs: Vec<PathBuf>,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let base = test_dir(name);
        let ips: Vec<IpAddr> = (31..31 + SERVERS)
            .map(|n| format!("127.0.0.{n}").parse().expect("ip"))
            .collect();
        let http_port = common_free_port(&ips, &[]);
        let server_port = common_free_port(&ips, &[http_port]);
        let serf_port = common_free_port(&ips, &[http_port, server_port]);
        let mut agents = Vec::new();
        let mut logs = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let mut args: Vec<String> = vec![
                "-server".into(),
                format!("-node=snap{}", i + 1),
                format!("-data-dir={}", base.join(format!("s{}", i + 1)).display()),
                format!("-bind={ip}"),
                format!("-client={ip}"),
                format!("-http-port={http_port}"),
                format!("-server-port={server_port}"),
                format!("-serf-lan-port={serf_port}"),
                "-serf-wan-port=-1".into(),
                "-dns-port=-1".into(),
                "-log-level=info".into(),
                format!("-bootstrap-expect={SERVERS}"),
            ];
            for (j, other) in ips.iter().enumerate() {
                if j != i {
                    args.push(format!("-retry-join={other}:{serf_port}"));
                }
            }
            let log = base.join(format!("s{}.log", i + 1));
            agents.push(Agent::start(
                &args,
                SocketAddr::new(*ip, http_port),
                log.clone(),
            ));
            logs.push(log);
        }
        Cluster {
            ips,
            http_port,
            server_port,
            agents,
            logs,
        }
    }

    fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ips[i], self.http_port)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- {}\n", log.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn call_within(&self, i: usize, method: &str, target: &str, body: &[u8], t: Duration) -> Resp {
        request(self.http(i), method, target, body, t)
            .unwrap_or_else(|e| panic!("{method} {target} on s{}: {e}\n{}", i + 1, self.logs()))
    }

    fn call(&self, i: usize, method: &str, target: &str, body: &[u8]) -> Resp {
        self.call_within(i, method, target, body, CALL)
    }

    /// The index of the leader once all three name the same one.
    fn wait_leader(&mut self) -> usize {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            for agent in &mut self.agents {
                if let Ok(Some(status)) = agent.child.try_wait() {
                    panic!("a server exited ({status})\n{}", self.logs());
                }
            }
            let seen: Vec<String> = (0..SERVERS)
                .map(|i| {
                    request(self.http(i), "GET", "/v1/status/leader", b"", CALL)
                        .ok()
                        .filter(|r| r.status == 200)
                        .and_then(|r| r.json().as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect();
            if !seen[0].is_empty() && seen.iter().all(|s| *s == seen[0]) {
                let leader = seen[0].clone();
                if let Some(i) = (0..SERVERS)
                    .find(|&i| leader == format!("{}:{}", self.ips[i], self.server_port))
                {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no stable leader: {seen:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes keys `big/<n>` for `n` in `range`, `TXN_OPS` at a time, through `addr`.
fn write_keys(addr: SocketAddr, range: std::ops::Range<usize>) {
    let keys: Vec<usize> = range.collect();
    for chunk in keys.chunks(TXN_OPS) {
        let ops: Vec<serde_json::Value> = chunk
            .iter()
            .map(|n| {
                serde_json::json!({"KV": {
                    "Verb": "set",
                    "Key": format!("big/{n:06}"),
                    "Value": b64(format!("value-{n}").as_bytes()),
                    "Flags": (*n % 7) as u64,
                }})
            })
            .collect();
        let body = serde_json::to_vec(&ops).expect("json");
        let mut tries = 0;
        loop {
            match request(addr, "PUT", "/v1/txn", &body, CALL) {
                Ok(r) if r.status == 200 => break,
                other => {
                    tries += 1;
                    assert!(tries < 20, "txn through {addr} failed: {other:?}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

#[test]
fn a_three_server_snapshot_of_100000_keys_restores_onto_a_fresh_server_and_a_running_cluster() {
    let mut cluster = Cluster::start("snapshot-e2e");
    let leader = cluster.wait_leader();
    let follower = (leader + 1) % SERVERS;

    // 1. Load.
    let started = Instant::now();
    let per = KEYS / WRITERS;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let addr = cluster.http(w % SERVERS);
            std::thread::spawn(move || write_keys(addr, w * per..(w + 1) * per))
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let load_ms = started.elapsed().as_millis();

    // 2. Save through a follower.
    let started = Instant::now();
    let saved = cluster.call_within(follower, "GET", "/v1/snapshot", b"", BIG_CALL);
    let save_ms = started.elapsed().as_millis();
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert_eq!(
        saved.header("content-type"),
        Some("application/octet-stream")
    );
    let archive = saved.body.clone();
    let source = cluster.call_within(
        leader,
        "GET",
        "/v1/kv/big/?recurse&consistent",
        b"",
        BIG_CALL,
    );
    let source = dump(&source);
    assert_eq!(source.len(), KEYS, "every key written");
    let snapshot_index = saved.index();
    let max_modify = source.values().map(|e| e.3).max().unwrap_or(0);
    assert!(
        snapshot_index >= max_modify,
        "the snapshot index {snapshot_index} covers every key (max ModifyIndex {max_modify})"
    );

    // 3. Restore onto a fresh single server.
    let fresh = Agent::dev("snapshot-fresh", &[]);
    let started = Instant::now();
    let r = support::request(fresh.http, "PUT", "/v1/snapshot", &archive, BIG_CALL)
        .expect("restore answered");
    let restore_ms = started.elapsed().as_millis();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    let restored = support::request(fresh.http, "GET", "/v1/kv/big/?recurse", b"", BIG_CALL)
        .expect("listing answered");
    let restored = dump(&restored);
    assert_eq!(restored.len(), KEYS);
    let first_difference = source
        .iter()
        .find(|(key, entry)| restored.get(*key) != Some(*entry));
    assert!(
        first_difference.is_none(),
        "{first_difference:?} in the cluster, {:?} restored",
        first_difference.and_then(|(key, _)| restored.get(key))
    );
    let missing = fresh.call("GET", "/v1/kv/no-such-key", b"");
    assert_eq!(missing.status, 404);
    assert!(
        missing.index() > snapshot_index,
        "the KV index moved past the snapshot's: {} > {snapshot_index}",
        missing.index()
    );
    let r = fresh.call("PUT", "/v1/kv/after-restore", b"x");
    assert_eq!(r.status, 200);
    let after = fresh.call("GET", "/v1/kv/after-restore", b"");
    let after_index = after.json()[0]["ModifyIndex"].as_u64().unwrap_or(0);
    assert!(
        after_index > snapshot_index,
        "{after_index} > {snapshot_index}"
    );
    println!(
        "snapshot e2e: {KEYS} keys written in {load_ms} ms; archive {} bytes at index {snapshot_index} \
         saved in {save_ms} ms through a follower; restored onto a fresh -dev agent in {restore_ms} ms",
        archive.len()
    );

    // 4. Restore a small archive onto the running cluster through a follower.
    let small_source = Agent::dev("snapshot-small", &[]);
    for n in 0..10 {
        let r = small_source.call(
            "PUT",
            &format!("/v1/kv/restored/{n}"),
            format!("r{n}").as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    let small = small_source.call("GET", "/v1/snapshot", b"");
    assert_eq!(small.status, 200);
    let before = cluster.call(follower, "GET", "/v1/kv/restored/?recurse", b"");
    assert_eq!(before.status, 404);
    let before_index = before.index();
    let waiter_addr = cluster.http((follower + 1) % SERVERS);
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let r = request(
            waiter_addr,
            "GET",
            &format!("/v1/kv/restored/?recurse&index={before_index}&wait=30s"),
            b"",
            Duration::from_secs(40),
        );
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = cluster.call_within(follower, "PUT", "/v1/snapshot", &small.body, BIG_CALL);
    assert_eq!(r.status, 200, "{}", r.text());
    let (woken, waited) = waiter.join().expect("waiter");
    let woken = woken.expect("the blocking query answered");
    assert_eq!(woken.status, 200, "{}", woken.text());
    assert!(
        waited < Duration::from_secs(25),
        "woken by the restore, not the timeout"
    );
    assert_eq!(
        dump(&woken).len(),
        10,
        "the blocking query sees the restored keys"
    );
    for i in 0..SERVERS {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = cluster.call(i, "GET", "/v1/kv/?recurse&stale", b"");
            let keys: Vec<String> = dump(&r).into_keys().collect();
            let want: Vec<String> = (0..10).map(|n| format!("restored/{n}")).collect();
            if keys == want {
                let missing = cluster.call(i, "GET", "/v1/kv/no-such-key?stale", b"");
                assert!(
                    missing.index() > before_index,
                    "the KV index did not go backwards on s{}",
                    i + 1
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "s{} holds {} keys, first {:?}\n{}",
                i + 1,
                keys.len(),
                keys.first(),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let r = cluster.call(leader, "GET", "/v1/kv/restored/3?consistent", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["Value"], b64(b"r3"));

    // 5. The 100 000-key archive back onto the running cluster: every server holds it again, key by key.
    let started = Instant::now();
    let r = cluster.call_within(leader, "PUT", "/v1/snapshot", &archive, BIG_CALL);
    assert_eq!(r.status, 200, "{}", r.text());
    let restore_ms = started.elapsed().as_millis();
    for i in 0..SERVERS {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = cluster.call_within(i, "GET", "/v1/kv/?recurse&stale", b"", BIG_CALL);
            let held = dump(&r);
            if held.len() == KEYS && !held.contains_key("restored/0") {
                assert!(
                    held == source,
                    "s{} holds the archive's keys exactly",
                    i + 1
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "s{} holds {} keys\n{}",
                i + 1,
                held.len(),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let write = cluster.call(follower, "PUT", "/v1/kv/after-big-restore", b"z");
    assert_eq!(
        write.status,
        200,
        "the cluster still takes writes: {}",
        write.text()
    );
    println!(
        "snapshot e2e: the {KEYS}-key archive restored onto the running three-server cluster in {restore_ms} ms"
    );
}

/// A single server with a data dir on 127.0.0.34 (Raft snapshots every 8 entries).
fn single_server(base: &std::path::Path, http_port: u16, server_port: u16, start: usize) -> Agent {
    let ip: IpAddr = "127.0.0.34".parse().expect("ip");
    let args: Vec<String> = vec![
        "-server".into(),
        "-node=snap-single".into(),
        format!("-data-dir={}", base.join("data").display()),
        format!("-bind={ip}"),
        format!("-client={ip}"),
        format!("-http-port={http_port}"),
        format!("-server-port={server_port}"),
        format!(
            "-serf-lan-port={}",
            common_free_port(&[ip], &[http_port, server_port])
        ),
        "-serf-wan-port=-1".into(),
        "-dns-port=-1".into(),
        "-log-level=info".into(),
        "-bootstrap-expect=1".into(),
        "-raft-snapshot-threshold=8".into(),
        "-raft-trailing-logs=4".into(),
    ];
    let agent = Agent::start(
        &args,
        SocketAddr::new(ip, http_port),
        base.join(format!("single-{start}.log")),
    );
    agent.wait_leader(LEADER_TIMEOUT);
    agent
}

#[test]
fn a_restored_state_and_its_index_offset_survive_a_restart() {
    let base = test_dir("snapshot-restart");
    let ip: IpAddr = "127.0.0.34".parse().expect("ip");
    let http_port = common_free_port(&[ip], &[]);
    let server_port = common_free_port(&[ip], &[http_port]);

    // An archive whose indexes are far above the fresh server's.
    let source = Agent::dev("snapshot-restart-source", &[]);
    for n in 0..40 {
        let r = source.call(
            "PUT",
            &format!("/v1/kv/src/{n}"),
            format!("v{n}").as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    let archive = source.call("GET", "/v1/snapshot", b"");
    assert_eq!(archive.status, 200);
    let archive_index = archive.index();
    let source_dump = dump(&source.call("GET", "/v1/kv/src/?recurse", b""));

    let server = single_server(&base, http_port, server_port, 0);
    let r = server.call("PUT", "/v1/snapshot", &archive.body);
    assert_eq!(r.status, 200, "{}", r.text());
    // Enough writes after the restore for a Raft snapshot of the restored state.
    for n in 0..20 {
        let r = server.call("PUT", &format!("/v1/kv/after/{n}"), b"a");
        assert_eq!(r.status, 200);
    }
    let after = dump(&server.call("GET", "/v1/kv/after/?recurse", b""));
    assert!(after.values().all(|e| e.3 > archive_index));
    drop(server);

    let server = single_server(&base, http_port, server_port, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.call("GET", "/v1/kv/src/?recurse", b"");
        if r.status == 200 && dump(&r) == source_dump {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restored keys after a restart: {}\n{}",
            r.text(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        dump(&server.call("GET", "/v1/kv/after/?recurse", b"")),
        after
    );
    let r = server.call("PUT", "/v1/kv/later", b"l");
    assert_eq!(r.status, 200);
    let later = server.call("GET", "/v1/kv/later", b"").json()[0]["ModifyIndex"]
        .as_u64()
        .unwrap_or(0);
    let highest = after.values().map(|e| e.3).max().unwrap_or(0);
    assert!(
        later > highest,
        "indexes keep growing after a restart: {later} > {highest}"
    );
}
