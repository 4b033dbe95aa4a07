//! End to end over Consul's HTTP API: three `cairn agent -server` processes on 127.0.0.1, 127.0.0.2 and
//! 127.0.0.3 (one HTTP port and one server port shared by the three addresses), each with its own data
//! directory, bootstrapped with `-bootstrap-expect 3 -retry-join ...`.
//!
//! 1. Writers PUT unique keys through every server (followers forward to the leader), retrying on errors;
//!    the leader is killed with SIGKILL mid-load; a new leader must take over within 3 s (the figure is
//!    printed); every acknowledged write must be readable with `?consistent` from each survivor and be in
//!    each survivor's `?stale&recurse` state; the killed server restarts and must catch up by snapshot (the
//!    snapshot threshold is small, so the leader compacted past its log).
//! 2. A write through one follower is read with `?consistent`, default and `?stale` through the others, with
//!    Consul's query headers; `/v1/status/{leader,peers}` and `/v1/operator/raft/configuration` agree, and
//!    `/v1/operator/autopilot/health` (forwarded to the leader) shows three healthy voters.
//! 3. With two of three servers killed, the survivor answers default reads and writes with `500 No cluster
//!    leader`, and `?stale` reads from its own state with `X-Consul-KnownLeader: false`.
//!
//! Every wait is bounded; children are killed (SIGKILL) when the test ends, also on failure. The tests run
//! one at a time (two clusters at once would compete for the CPU and blur the failover figure).

mod support;

use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{common_free_port, request, test_dir, Agent, Resp};

const SERVERS: usize = 3;
/// One HTTP request's bound.
const CALL: Duration = Duration::from_secs(3);
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// The documented failover bound: a new leader within 3 s of `kill -9` of the old one.
const FAILOVER_BOUND: Duration = Duration::from_secs(3);
/// How long a server has to catch up (apply everything, or install a snapshot).
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long a lone survivor has to notice it has no leader.
const NO_LEADER_BOUND: Duration = Duration::from_secs(30);
/// A client timeout above the RPC hold timeout (7 s) a server waits for a leader before answering.
const HOLD_CALL: Duration = Duration::from_secs(10);
const SNAPSHOT_THRESHOLD: usize = 64;
const TRAILING_LOGS: usize = 16;
const WRITERS: usize = 4;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A KV prefix's content: key -> (value, ModifyIndex).
type Dump = BTreeMap<String, (Vec<u8>, u64)>;

struct Cluster {
    base: PathBuf,
    ips: Vec<IpAddr>,
    http_port: u16,
    server_port: u16,
    /// Every agent's Serf LAN port.
    serf_port: u16,
    agents: Vec<Option<Agent>>,
    starts: Vec<usize>,
}

impl Cluster {
    fn new(name: &str) -> Cluster {
        let base = test_dir(name);
        let ips: Vec<IpAddr> = (1..=SERVERS)
            .map(|n| format!("127.0.0.{n}").parse().expect("ip"))
            .collect();
        let http_port = common_free_port(&ips, &[]);
        let server_port = common_free_port(&ips, &[http_port]);
        let serf_port = common_free_port(&ips, &[http_port, server_port]);
        let mut cluster = Cluster {
            base,
            ips,
            http_port,
            server_port,
            serf_port,
            agents: (0..SERVERS).map(|_| None).collect(),
            starts: vec![0; SERVERS],
        };
        for i in 0..SERVERS {
            cluster.start(i);
        }
        cluster
    }

    fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ips[i], self.http_port)
    }

    /// Server `i`'s server RPC address, as `/v1/status/*` name it.
    fn server_address(&self, i: usize) -> String {
        format!("{}:{}", self.ips[i], self.server_port)
    }

    fn log_path(&self, i: usize, start: usize) -> PathBuf {
        self.base.join(format!("s{}-{start}.log", i + 1))
    }

    fn start(&mut self, i: usize) {
        let start = self.starts[i];
        self.starts[i] += 1;
        let ip = self.ips[i];
        let mut args: Vec<String> = vec![
            "-server".into(),
            format!("-node=s{}", i + 1),
            format!(
                "-data-dir={}",
                self.base.join(format!("s{}", i + 1)).display()
            ),
            format!("-bind={ip}"),
            format!("-client={ip}"),
            format!("-http-port={}", self.http_port),
            format!("-server-port={}", self.server_port),
            format!("-serf-lan-port={}", self.serf_port),
            "-serf-wan-port=-1".into(),
            "-dns-port=-1".into(),
            "-log-level=info".into(),
            format!("-bootstrap-expect={SERVERS}"),
            format!("-raft-snapshot-threshold={SNAPSHOT_THRESHOLD}"),
            format!("-raft-trailing-logs={TRAILING_LOGS}"),
            "-hcl=session_ttl_min = \"1s\"".to_string(),
        ];
        for j in (0..SERVERS).filter(|&j| j != i) {
            args.push(format!("-retry-join={}:{}", self.ips[j], self.serf_port));
        }
        self.agents[i] = Some(Agent::start(&args, self.http(i), self.log_path(i, start)));
    }

    /// SIGKILL (the agent's drop kills and reaps it).
    fn kill(&mut self, i: usize) {
        self.agents[i] = None;
    }

    fn running(&self) -> Vec<usize> {
        (0..SERVERS).filter(|&i| self.agents[i].is_some()).collect()
    }

    /// The tail of every log written so far, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..SERVERS {
            for start in 0..self.starts[i] {
                let path = self.log_path(i, start);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {}\n", path.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn check_alive(&mut self) {
        let mut exited = None;
        for i in 0..SERVERS {
            if let Some(agent) = self.agents[i].as_mut() {
                if let Ok(Some(status)) = agent.child.try_wait() {
                    exited = Some((i, status));
                }
            }
        }
        if let Some((i, status)) = exited {
            panic!("server s{} exited ({status})\n{}", i + 1, self.logs());
        }
    }

    /// Polls `f` until it answers `Ok` (every 20 ms, at most `timeout`); panics with the last error and the
    /// logs otherwise. Panics at once when a server exits.
    fn poll<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Cluster) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive();
            let last = match f(self) {
                Ok(value) => return value,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {timeout:?}; last: {last}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&self, i: usize, method: &str, target: &str, body: &[u8]) -> Result<Resp, String> {
        self.send_within(i, method, target, body, CALL)
    }

    fn send_within(
        &self,
        i: usize,
        method: &str,
        target: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Resp, String> {
        request(self.http(i), method, target, body, timeout)
            .map_err(|e| format!("{method} {target} on s{}: {e}", i + 1))
    }

    /// A request that must be answered.
    fn call(&self, i: usize, method: &str, target: &str, body: &[u8]) -> Resp {
        self.send(i, method, target, body)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The leader as server `i` reports it (`""` for none).
    fn leader_seen_by(&self, i: usize) -> Result<String, String> {
        let r = self.send(i, "GET", "/v1/status/leader", b"")?;
        if r.status != 200 {
            return Err(format!("status/leader on s{}: {r:?}", i + 1));
        }
        Ok(r.json().as_str().unwrap_or_default().to_string())
    }

    /// The leader every running server names, when they all name the same running server.
    fn stable_leader(&self) -> Result<usize, String> {
        let seen: Vec<(usize, String)> = self
            .running()
            .into_iter()
            .map(|i| self.leader_seen_by(i).map(|l| (i, l)))
            .collect::<Result<_, _>>()?;
        let names: BTreeSet<&String> = seen.iter().map(|(_, l)| l).collect();
        let leader = match names.into_iter().collect::<Vec<_>>()[..] {
            [one] => self
                .running()
                .into_iter()
                .find(|&i| self.server_address(i) == *one),
            _ => None,
        };
        leader.ok_or_else(|| format!("leaders seen: {seen:?}"))
    }

    /// Waits until every running server names the same running leader.
    fn wait_leader(&mut self) -> usize {
        self.poll(LEADER_TIMEOUT, "a stable leader", Cluster::stable_leader)
    }

    /// Server `i`'s `e2e/` prefix read in `mode` (`stale` or `consistent`), with its `X-Consul-Index`.
    fn dump(&self, i: usize, mode: &str) -> Result<(u64, Dump), String> {
        let r = self.send(i, "GET", &format!("/v1/kv/e2e/?{mode}&recurse"), b"")?;
        match r.status {
            200 => Ok((r.index(), entries(&r).into_iter().collect())),
            404 => Ok((r.index(), Dump::new())),
            _ => Err(format!("recurse read ({mode}) on s{}: {r:?}", i + 1)),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agents.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// The entries of a KV read: key -> (value, ModifyIndex).
fn entries(r: &Resp) -> Vec<(String, (Vec<u8>, u64))> {
    let json = r.json();
    let list = json
        .as_array()
        .unwrap_or_else(|| panic!("KV read is not an array: {}", r.text()));
    list.iter()
        .map(|e| {
            let key = e["Key"].as_str().expect("Key").to_string();
            let value = match &e["Value"] {
                serde_json::Value::Null => Vec::new(),
                v => base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().expect("Value is a string"))
                    .expect("Value is base64"),
            };
            let modify = e["ModifyIndex"].as_u64().expect("ModifyIndex");
            (key, (value, modify))
        })
        .collect()
}

/// The value of a single-key read.
fn single_value(r: &Resp) -> Result<(Vec<u8>, u64), String> {
    match &entries(r)[..] {
        [(_, entry)] => Ok(entry.clone()),
        other => Err(format!("expected one entry: {other:?}")),
    }
}

/// Keys of `acked` that `dump` lacks or holds with another value.
fn missing<'a>(dump: &Dump, acked: &'a BTreeMap<String, String>) -> Vec<&'a String> {
    acked
        .iter()
        .filter(|(k, v)| dump.get(*k).map(|(d, _)| d.as_slice()) != Some(v.as_bytes()))
        .map(|(k, _)| k)
        .collect()
}

/// Checks Consul's query headers: `X-Consul-Index` numeric and never 0 (returned), `X-Consul-KnownLeader`,
/// `X-Consul-LastContact` numeric, `X-Consul-Effective-Consistency`.
fn query_headers(r: &Resp, consistency: &str, known_leader: bool) -> u64 {
    let index: u64 = r
        .header("x-consul-index")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("numeric X-Consul-Index expected: {r:?}"));
    assert_ne!(index, 0, "X-Consul-Index is never 0: {r:?}");
    assert_eq!(
        r.header("x-consul-knownleader"),
        Some(if known_leader { "true" } else { "false" }),
        "X-Consul-KnownLeader: {r:?}"
    );
    let contact = r.header("x-consul-lastcontact");
    assert!(
        contact.is_some_and(|v| v.parse::<u64>().is_ok()),
        "numeric X-Consul-LastContact expected: {r:?}"
    );
    assert_eq!(
        r.header("x-consul-effective-consistency"),
        Some(consistency),
        "X-Consul-Effective-Consistency: {r:?}"
    );
    index
}

/// Writers PUTting unique keys through the servers until stopped; a write answered `true` is acknowledged.
struct Load {
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    stop: Arc<AtomicBool>,
    failed_attempts: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(servers: Vec<SocketAddr>) -> Load {
        let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let failed_attempts = Arc::new(AtomicU64::new(0));
        let threads = (0..WRITERS)
            .map(|w| {
                let (acked, stop, failed) = (
                    Arc::clone(&acked),
                    Arc::clone(&stop),
                    Arc::clone(&failed_attempts),
                );
                let servers = servers.clone();
                std::thread::spawn(move || {
                    let mut target = w % servers.len();
                    let mut n = 0u64;
                    'keys: while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("e2e/w{w}/{n:06}");
                        let value = format!("value-{w}-{n}");
                        // Retried (a fresh connection, the next server) until acknowledged; a set is
                        // idempotent, so an earlier attempt that did apply changes nothing.
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                break 'keys;
                            }
                            let addr = servers[target];
                            let path = format!("/v1/kv/{key}");
                            match request(addr, "PUT", &path, value.as_bytes(), CALL) {
                                Ok(r) if r.status == 200 => {
                                    assert_eq!(
                                        r.text().trim(),
                                        "true",
                                        "PUT {path} on {addr}: a plain set answers true"
                                    );
                                    acked.lock().expect("acked").insert(key, value);
                                    break;
                                }
                                // No leader, a failed forward, overload: the outcome is unknown.
                                Ok(r) if r.status == 500 || r.status == 429 => {}
                                Ok(r) => panic!("PUT {path} on {addr}: unexpected {r:?}"),
                                // Refused (a killed server) or timed out: unknown too.
                                Err(_) => {}
                            }
                            failed.fetch_add(1, Ordering::Relaxed);
                            target = (target + 1) % servers.len();
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            stop,
            failed_attempts,
            threads,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    /// Panics (with the writer's message) when a writer died.
    fn check_writers(&mut self) {
        if let Some(at) = self.threads.iter().position(JoinHandle::is_finished) {
            self.stop.store(true, Ordering::Relaxed);
            if let Err(panic) = self.threads.remove(at).join() {
                std::panic::resume_unwind(panic);
            }
            panic!("a writer stopped early");
        }
    }

    /// Stops the writers; returns every acknowledged write.
    fn finish(mut self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        eprintln!(
            "{} writes acknowledged, {} attempts failed or timed out (retried)",
            self.acked_count(),
            self.failed_attempts.load(Ordering::Relaxed)
        );
        self.acked.lock().expect("acked").clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn wait_acked(
    cluster: &mut Cluster,
    load: &mut Load,
    at_least: usize,
    timeout: Duration,
    what: &str,
) {
    cluster.poll(timeout, what, |_| {
        load.check_writers();
        match load.acked_count() {
            n if n >= at_least => Ok(()),
            n => Err(format!("{n} of {at_least} writes acknowledged")),
        }
    });
}

/// Every key of `acked` read with `?consistent` through server `i` (eight requests at a time).
fn check_consistent_reads(cluster: &Cluster, i: usize, acked: &BTreeMap<String, String>) {
    let keys: Vec<(&String, &String)> = acked.iter().collect();
    let chunk = keys.len().div_ceil(8).max(1);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for (key, value) in part {
                        let target = format!("/v1/kv/{key}?consistent");
                        match cluster.send(i, "GET", &target, b"") {
                            Ok(r) if r.status == 200 => {
                                query_headers(&r, "consistent", true);
                                match single_value(&r) {
                                    Ok((v, _)) if v == value.as_bytes() => {}
                                    other => failures.push(format!("{target}: {other:?}")),
                                }
                            }
                            other => failures.push(format!("{target}: {other:?}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reader"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "s{}: {} of {} acknowledged keys not read back with ?consistent, e.g. {:?}\n{}",
        i + 1,
        failures.len(),
        acked.len(),
        &failures[..failures.len().min(3)],
        cluster.logs()
    );
}

/// Waits until server `i`'s `?stale&recurse` state is the leader's `?consistent&recurse` state, which must
/// hold every acknowledged write.
fn wait_caught_up(cluster: &mut Cluster, i: usize, acked: &BTreeMap<String, String>, who: &str) {
    let what = format!("{who} (s{}) catches up", i + 1);
    cluster.poll(CATCH_UP, &what, |c| {
        let leader = c.stable_leader()?;
        let (_, reference) = c.dump(leader, "consistent")?;
        let lost = missing(&reference, acked);
        assert!(
            lost.is_empty(),
            "the leader's consistent read lost {} of {} acknowledged writes, e.g. {:?}\n{}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)],
            c.logs()
        );
        let (index, state) = c.dump(i, "stale")?;
        if state == reference {
            return Ok(());
        }
        let differ = reference
            .iter()
            .filter(|(k, v)| state.get(*k) != Some(v))
            .count();
        Err(format!(
            "at index {index} it holds {} keys, {differ} of the leader's {} missing or different; \
             {} acknowledged writes missing",
            state.len(),
            reference.len(),
            missing(&state, acked).len()
        ))
    });
}

/// The `installed snapshot <index>/<term>` lines of a log.
fn installed_snapshots(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| line.split_once("installed snapshot ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('/').next()?.parse().ok())
        .collect()
}

#[test]
fn kill_the_leader_lose_nothing_acknowledged_and_catch_up_by_snapshot() {
    let _serial = serial();
    let mut cluster = Cluster::new("raft-e2e-failover");
    let leader = cluster.wait_leader();

    let mut load = Load::start((0..SERVERS).map(|i| cluster.http(i)).collect());
    wait_acked(
        &mut cluster,
        &mut load,
        150,
        Duration::from_secs(30),
        "before the kill",
    );
    let acked_before_kill: BTreeSet<String> =
        load.acked.lock().expect("acked").keys().cloned().collect();
    // Sessions across the failover: `kept` is renewed all along and must survive with its lock;
    // `dropped` is never renewed and the new leader must invalidate it.
    let kept = create_session(&cluster, leader, r#"{"TTL": "3s", "LockDelay": "0s"}"#);
    let dropped = create_session(&cluster, leader, r#"{"TTL": "1s", "LockDelay": "0s"}"#);
    let r = cluster.call(
        leader,
        "PUT",
        &format!("/v1/kv/lock/kept?acquire={kept}"),
        b"x",
    );
    assert_eq!(r.text(), "true", "{r:?}");
    let renewer = Renewer::start(
        (0..SERVERS).map(|i| cluster.http(i)).collect(),
        kept.clone(),
    );

    cluster.kill(leader);
    let killed_at = Instant::now();
    let acked_at_kill = load.acked_count();
    let new_leader = cluster.wait_leader();
    let failover = killed_at.elapsed();
    eprintln!(
        "new leader s{} elected {} ms after kill -9 of leader s{}",
        new_leader + 1,
        failover.as_millis(),
        leader + 1
    );
    assert_ne!(new_leader, leader, "a survivor leads");
    assert!(
        failover <= FAILOVER_BOUND,
        "a new leader took {failover:?} (bound {FAILOVER_BOUND:?})\n{}",
        cluster.logs()
    );
    // Far enough past the kill that the new leader's snapshots cover everything the killed server has.
    wait_acked(
        &mut cluster,
        &mut load,
        acked_at_kill + 3 * (SNAPSHOT_THRESHOLD + TRAILING_LOGS),
        Duration::from_secs(60),
        "after the kill",
    );
    let acked = load.finish();
    let survivor = cluster.running()[0];
    cluster.poll(
        Duration::from_secs(20),
        "the new leader invalidates a session",
        |c| {
            let r = c.send(
                survivor,
                "GET",
                &format!("/v1/session/info/{dropped}?consistent"),
                b"",
            )?;
            (r.status == 200 && r.text() == "[]")
                .then_some(())
                .ok_or_else(|| format!("{r:?}"))
        },
    );
    let r = cluster.call(survivor, "GET", "/v1/kv/lock/kept?consistent", b"");
    assert_eq!(
        r.json()[0]["Session"],
        kept.as_str(),
        "the renewed session kept its lock: {r:?}"
    );
    assert_eq!(renewer.finish(), 0, "every renew found the session");

    // Every acknowledged write is readable with ?consistent through each survivor, and is in each
    // survivor's own state once it has applied everything.
    let survivors = cluster.running();
    for &i in &survivors {
        check_consistent_reads(&cluster, i, &acked);
    }
    for &i in &survivors {
        wait_caught_up(&mut cluster, i, &acked, "a survivor");
    }

    // The killed server restarts and catches up; the leader compacted past its log, so by snapshot.
    cluster.start(leader);
    wait_caught_up(&mut cluster, leader, &acked, "the restarted server");
    let leader_now = cluster.wait_leader();
    let (_, state) = cluster
        .dump(leader_now, "consistent")
        .expect("leader state");
    let before_kill = acked_before_kill
        .iter()
        .filter_map(|k| state.get(k).map(|(_, modify)| *modify))
        .max()
        .expect("writes before the kill");
    let log = std::fs::read_to_string(cluster.log_path(leader, 1)).unwrap_or_default();
    let installed = installed_snapshots(&log);
    assert!(
        installed.iter().any(|&index| index > before_kill),
        "the restarted server should have installed a snapshot past index {before_kill} (its writes \
         before the kill); installed: {installed:?}\n{log}"
    );
}

#[test]
fn follower_writes_consistent_reads_headers_and_no_cluster_leader() {
    let _serial = serial();
    let mut cluster = Cluster::new("raft-e2e-api");
    let leader = cluster.wait_leader();
    let followers: Vec<usize> = cluster
        .running()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    let (a, b) = (followers[0], followers[1]);
    let key = "/v1/kv/e2e/follower-write";
    let value = b"from-follower".as_slice();

    // A write through follower A.
    let r = cluster.call(a, "PUT", key, value);
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "true"),
        "PUT through a follower: {r:?}"
    );

    // A consistent read through follower B sees it.
    let r = cluster.call(b, "GET", &format!("{key}?consistent"), b"");
    assert_eq!(r.status, 200, "consistent read through a follower: {r:?}");
    let (read, modify) = single_value(&r).expect("one entry");
    assert_eq!(read, value);
    let index = query_headers(&r, "consistent", true);
    assert!(
        index >= modify,
        "X-Consul-Index {index} < ModifyIndex {modify}: {r:?}"
    );

    // Default mode through a follower (the leader's read index), and on the leader (LastContact 0).
    for i in [a, b, leader] {
        let r = cluster.call(i, "GET", key, b"");
        assert_eq!(r.status, 200, "default read on s{}: {r:?}", i + 1);
        assert_eq!(single_value(&r).expect("one entry").0, value);
        assert!(query_headers(&r, "leader", true) >= modify);
        if i == leader {
            assert_eq!(
                r.header("x-consul-lastcontact"),
                Some("0"),
                "on the leader: {r:?}"
            );
        }
    }

    // Stale reads on each server see it eventually.
    for i in [a, b, leader] {
        let r = cluster.poll(CATCH_UP, "a stale read sees the write", |c| {
            let r = c.send(i, "GET", &format!("{key}?stale"), b"")?;
            match r.status {
                200 => Ok(r),
                _ => Err(format!("{r:?}")),
            }
        });
        assert_eq!(single_value(&r).expect("one entry").0, value);
        assert!(query_headers(&r, "stale", true) >= modify);
    }

    // Status and operator routes agree on every server.
    let addresses: BTreeSet<String> = (0..SERVERS).map(|i| cluster.server_address(i)).collect();
    for i in 0..SERVERS {
        assert_eq!(
            cluster.leader_seen_by(i).expect("status/leader"),
            cluster.server_address(leader),
            "status/leader on s{}",
            i + 1
        );
        let r = cluster.call(i, "GET", "/v1/status/peers", b"");
        assert_eq!(r.status, 200, "{r:?}");
        let peers: BTreeSet<String> = r
            .json()
            .as_array()
            .expect("peers array")
            .iter()
            .map(|p| p.as_str().expect("peer address").to_string())
            .collect();
        assert_eq!(peers, addresses, "status/peers on s{}: {}", i + 1, r.text());
        let r = cluster.call(i, "GET", "/v1/operator/raft/configuration", b"");
        assert_eq!(r.status, 200, "{r:?}");
        query_headers(&r, "leader", true);
        let json = r.json();
        let servers = json["Servers"].as_array().expect("Servers");
        let listed: BTreeSet<String> = servers
            .iter()
            .map(|s| s["Address"].as_str().expect("Address").to_string())
            .collect();
        assert_eq!(listed, addresses, "configuration on s{}: {json}", i + 1);
        assert_eq!(
            servers.len(),
            SERVERS,
            "configuration on s{}: {json}",
            i + 1
        );
        let leaders: Vec<&str> = servers
            .iter()
            .filter(|s| s["Leader"] == serde_json::Value::Bool(true))
            .map(|s| s["Address"].as_str().expect("Address"))
            .collect();
        assert_eq!(
            leaders,
            [cluster.server_address(leader).as_str()],
            "exactly one Leader in the configuration on s{}: {json}",
            i + 1
        );
    }
    // Autopilot health, asked of every server (followers forward it): three healthy voters.
    for i in 0..SERVERS {
        let health = cluster.poll(CATCH_UP, "autopilot health", |c| {
            let r = c.send(i, "GET", "/v1/operator/autopilot/health", b"")?;
            let json = (r.status == 200).then(|| r.json());
            match json {
                Some(json) if json["FailureTolerance"] == 1 => Ok(json),
                _ => Err(format!("{r:?}")),
            }
        });
        let servers = health["Servers"].as_array().expect("Servers");
        assert_eq!(servers.len(), SERVERS, "{health}");
        assert!(
            servers
                .iter()
                .all(|s| s["Healthy"] == true && s["Voter"] == true),
            "{health}"
        );
        let leaders = servers.iter().filter(|s| s["Leader"] == true).count();
        assert_eq!(leaders, 1, "{health}");
    }

    // Two of three gone: the survivor (follower A) has no leader.
    cluster.kill(leader);
    cluster.kill(b);
    let killed_at = Instant::now();
    cluster.poll(
        NO_LEADER_BOUND,
        "500 No cluster leader on the survivor",
        |c| {
            // The three at once: each may be held for Consul's RPC hold timeout (7 s) first.
            let (get, put, consistent) = std::thread::scope(|scope| {
                let get = scope.spawn(|| c.send_within(a, "GET", "/v1/kv/x", b"", HOLD_CALL));
                let put = scope.spawn(|| c.send_within(a, "PUT", "/v1/kv/x", b"v", HOLD_CALL));
                let consistent =
                    scope.spawn(|| c.send_within(a, "GET", "/v1/kv/x?consistent", b"", HOLD_CALL));
                (
                    get.join().expect("get"),
                    put.join().expect("put"),
                    consistent.join().expect("consistent"),
                )
            });
            let (get, put, consistent) = (get?, put?, consistent?);
            let no_leader = |r: &Resp| r.status == 500 && r.text().trim() == "No cluster leader";
            if no_leader(&get) && no_leader(&put) && no_leader(&consistent) {
                Ok(())
            } else {
                Err(format!(
                    "GET {get:?}; PUT {put:?}; GET ?consistent {consistent:?}"
                ))
            }
        },
    );
    eprintln!(
        "the survivor answers No cluster leader {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    // Stale reads still answer from the survivor's own state.
    let r = cluster.call(a, "GET", &format!("{key}?stale"), b"");
    assert_eq!(r.status, 200, "stale read without a leader: {r:?}");
    assert_eq!(single_value(&r).expect("one entry").0, value);
    assert!(query_headers(&r, "stale", false) >= modify);
    let r = cluster.call(a, "GET", "/v1/kv/x?stale", b"");
    assert_eq!(
        r.status, 404,
        "stale read of a missing key without a leader: {r:?}"
    );
    query_headers(&r, "stale", false);
    assert_eq!(
        cluster.leader_seen_by(a).expect("status/leader"),
        "",
        "no leader to name"
    );
}

fn create_session(cluster: &Cluster, i: usize, body: &str) -> String {
    let r = cluster.call(i, "PUT", "/v1/session/create", body.as_bytes());
    assert_eq!(r.status, 200, "session create: {r:?}");
    r.json()["ID"].as_str().expect("ID").to_string()
}

/// Renews a session every 300 ms through whichever server answers, until finished.
struct Renewer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Renewer {
    fn start(servers: Vec<SocketAddr>, id: String) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut not_found = 0;
            let mut next = 0;
            while !stopping.load(Ordering::Relaxed) {
                let target = format!("/v1/session/renew/{id}");
                for _ in 0..servers.len() {
                    next = (next + 1) % servers.len();
                    match request(servers[next], "PUT", &target, b"", CALL) {
                        Ok(r) if r.status == 200 => break,
                        Ok(r) if r.status == 404 => {
                            not_found += 1;
                            break;
                        }
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            not_found
        });
        Renewer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops renewing; returns how many renews answered 404 (the session was gone).
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("renewer"))
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn operator_actions_sent_to_a_follower_transfer_leadership_and_remove_a_peer() {
    let _serial = serial();
    let mut cluster = Cluster::new("raft-e2e-operator");
    let leader = cluster.wait_leader();
    let followers: Vec<usize> = cluster
        .running()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    // `target` becomes the leader; every action is sent to `other`, a follower, which forwards it.
    let (target, other) = (followers[0], followers[1]);
    let config = cluster
        .call(leader, "GET", "/v1/operator/raft/configuration", b"")
        .json();
    let target_id = config["Servers"]
        .as_array()
        .expect("Servers")
        .iter()
        .find(|s| s["Address"] == cluster.server_address(target).as_str())
        .and_then(|s| s["ID"].as_str())
        .expect("the target's ID")
        .to_string();

    let r = cluster.call(
        other,
        "POST",
        &format!("/v1/operator/raft/transfer-leader?id={target_id}"),
        b"",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"Success":true}"#),
        "{r:?}"
    );
    let now = cluster.wait_leader();
    assert_eq!(now, target, "leadership went to the named server");

    // Through a follower of the new leader, the old leader is removed from the configuration.
    let removed = cluster.server_address(leader);
    let r = cluster.call(
        other,
        "DELETE",
        &format!("/v1/operator/raft/peer?address={removed}"),
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    cluster.poll(
        Duration::from_secs(10),
        "the configuration without the removed server",
        |c| {
            let r = c.send(target, "GET", "/v1/operator/raft/configuration", b"")?;
            let json = r.json();
            let listed: Vec<String> = json["Servers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["Address"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (listed.len() == SERVERS - 1 && !listed.contains(&removed))
                .then_some(())
                .ok_or_else(|| json.to_string())
        },
    );
    let peers = cluster.call(target, "GET", "/v1/status/peers", b"").json();
    assert_eq!(peers.as_array().map(Vec::len), Some(SERVERS - 1), "{peers}");
    // The two remaining servers still commit writes.
    let r = cluster.call(target, "PUT", "/v1/kv/after-remove", b"x");
    assert_eq!(r.text(), "true", "{r:?}");
}
