//! The Raft driver in one process: three servers, each on its own glommio executor thread with its own data
//! directory, talking over loopback TCP; a client over the server RPC. Writes, reads, a follower restarted after
//! the leader compacted its log (it must catch up by snapshot), and a leader stopped and restarted.
//! Every wait is bounded.

use cairn::agent::raft_driver::{RaftDriverOptions, RaftHandle};
use cairn::agent::rpc_client::RpcClient;
use cairn::agent::server::{bootstrap_configuration, server_id};
use cairn::agent::state_machine::KvStateMachine;
use cairn::raft::{Configuration, Options};
use cairn::rpc::{Consistency, StatusReply, WireRole};
use cairn_io::Shutdown;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CALL: Duration = Duration::from_secs(2);

struct TestServer {
    shutdown: Shutdown,
    join: Option<ExecutorJoinHandle<Result<(), String>>>,
}

impl TestServer {
    fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(join) = self.join.take() {
            let result = join.join().expect("executor thread");
            result.expect("driver closed cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

struct Cluster {
    addrs: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
    config: Configuration,
    servers: Vec<Option<TestServer>>,
    threshold: u64,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    fn new(name: &str, n: usize, threshold: u64) -> Cluster {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("raft-driver-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let config = bootstrap_configuration(&addrs);
        let dirs = (0..n).map(|i| base.join(format!("s{i}"))).collect();
        let mut c = Cluster {
            addrs,
            dirs,
            config,
            servers: (0..n).map(|_| None).collect(),
            threshold,
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    fn start(&mut self, i: usize) {
        let shutdown = Shutdown::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut options = RaftDriverOptions::new(
            server_id(self.addrs[i]),
            self.dirs[i].clone(),
            self.addrs[i],
        );
        options.bootstrap = Some(self.config.clone());
        options.snapshot_threshold = self.threshold;
        options.log_segment_bytes_max = 4096;
        options.raft = Options {
            trailing_entries: 4,
            ..Options::consul(server_id(self.addrs[i]), 1)
        };
        options.seed = i as u64 + 99;
        let stop = shutdown.clone();
        let join =
            LocalExecutorBuilder::new(Placement::Unbound)
                .name(&format!("raft-test-{i}"))
                .io_memory(256 << 10)
                .spawn(move || async move {
                    let handle =
                        match RaftHandle::start(options, Box::new(KvStateMachine::new()), &stop)
                            .await
                        {
                            Ok(h) => h,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return Err(e.to_string());
                            }
                        };
                    let _ = ready_tx.send(Ok(()));
                    handle.stopped().await;
                    handle.close().await.map_err(|e| e.to_string())
                })
                .expect("spawn executor");
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started in time")
            .expect("server started");
        self.servers[i] = Some(TestServer {
            shutdown,
            join: Some(join),
        });
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut s) = self.servers[i].take() {
            s.stop();
        }
    }

    fn statuses(&self, client: &RpcClient) -> BTreeMap<usize, StatusReply> {
        (0..self.addrs.len())
            .filter(|&i| self.servers[i].is_some())
            .filter_map(|i| client.status(self.addrs[i], CALL).ok().map(|s| (i, s)))
            .collect()
    }

    /// Waits until one running server leads and every running server knows it; returns its index.
    fn wait_leader(&self, client: &RpcClient, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.statuses(client);
            let running = self.servers.iter().filter(|s| s.is_some()).count();
            let leaders: Vec<usize> = st
                .iter()
                .filter(|(_, s)| s.role == WireRole::Leader)
                .map(|(i, _)| *i)
                .collect();
            if let [l] = leaders[..] {
                let term = st[&l].term;
                if st.len() == running
                    && st.values().all(|s| {
                        s.term == term && s.leader.as_ref().map(|h| h.id) == Some(st[&l].id)
                    })
                {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no stable leader: {st:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write(&self, client: &RpcClient, key: &str, value: &str) -> u64 {
        let servers: Vec<SocketAddr> = (0..self.addrs.len())
            .filter(|&i| self.servers[i].is_some())
            .map(|i| self.addrs[i])
            .collect();
        let (index, result) = client
            .apply_to_leader(
                &servers,
                KvStateMachine::set_command(key.as_bytes(), value.as_bytes()),
                CALL,
                Instant::now() + Duration::from_secs(15),
            )
            .unwrap_or_else(|e| panic!("write {key}: {e}"));
        assert_eq!(result, [0]);
        index
    }

    /// Waits until server `i` has applied at least `index`, then returns its map (a stale dump).
    fn dump_after(&self, client: &RpcClient, i: usize, index: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (applied, dump) = client
                .read(self.addrs[i], Consistency::Stale, Vec::new(), CALL)
                .expect("read")
                .expect("stale reads always succeed");
            if applied >= index {
                return KvStateMachine::decode_map(&dump).expect("dump decodes");
            }
            assert!(
                Instant::now() < deadline,
                "server {i} applied only {applied} of {index}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn expect_all(map: &BTreeMap<Vec<u8>, Vec<u8>>, acked: &BTreeMap<String, String>, who: &str) {
    for (k, v) in acked {
        assert_eq!(
            map.get(k.as_bytes()).map(Vec::as_slice),
            Some(v.as_bytes()),
            "{who} lost acknowledged write {k}"
        );
    }
}

#[test]
fn three_servers_replicate_snapshot_and_survive_restarts() {
    let mut cluster = Cluster::new("three", 3, 20);
    let client = RpcClient::new("127.0.0.1".parse().unwrap(), "dc1").expect("client");
    let mut acked = BTreeMap::new();
    let leader = cluster.wait_leader(&client, Duration::from_secs(15));
    let mut last = 0;
    for k in 0..60 {
        let (key, value) = (format!("k{k}"), format!("v{k}"));
        last = cluster.write(&client, &key, &value);
        acked.insert(key, value);
    }
    // A linearizable read at the leader sees every acknowledged write.
    let (_, dump) = client
        .read(
            cluster.addrs[leader],
            Consistency::Consistent,
            Vec::new(),
            CALL,
        )
        .expect("read")
        .expect("leader serves consistent reads");
    expect_all(
        &KvStateMachine::decode_map(&dump).expect("dump"),
        &acked,
        "leader",
    );
    let get = client
        .read(
            cluster.addrs[leader],
            Consistency::Default,
            KvStateMachine::get_query(b"k7"),
            CALL,
        )
        .expect("read")
        .expect("lease read");
    assert_eq!(KvStateMachine::decode_get(&get.1), Ok(Some(b"v7".to_vec())));
    // A follower refuses consistent reads and names the leader.
    let follower = (leader + 1) % 3;
    let refused = client
        .read(
            cluster.addrs[follower],
            Consistency::Consistent,
            Vec::new(),
            CALL,
        )
        .expect("read");
    let hint = refused.expect_err("followers refuse").leader.expect("hint");
    assert_eq!(hint.address, cluster.addrs[leader].to_string());

    // Stop a follower; the others go on and compact well past it.
    cluster.stop(follower);
    let stopped_last = last;
    for k in 60..160 {
        let (key, value) = (format!("k{k}"), format!("v{k}"));
        last = cluster.write(&client, &key, &value);
        acked.insert(key, value);
    }
    cluster.start(follower);
    let map = cluster.dump_after(&client, follower, last);
    expect_all(&map, &acked, "restarted follower");
    let st = client
        .status(cluster.addrs[follower], CALL)
        .expect("status");
    assert!(
        st.snapshot_index > stopped_last,
        "the follower should have caught up by snapshot: {st:?} (it stopped at {stopped_last})"
    );

    // Stop the leader: a new one takes over, nothing acknowledged is lost.
    let leader = cluster.wait_leader(&client, Duration::from_secs(15));
    cluster.stop(leader);
    let new_leader = cluster.wait_leader(&client, Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    for k in 160..200 {
        let (key, value) = (format!("k{k}"), format!("v{k}"));
        last = cluster.write(&client, &key, &value);
        acked.insert(key, value);
    }
    cluster.start(leader);
    for i in 0..3 {
        let map = cluster.dump_after(&client, i, last);
        expect_all(&map, &acked, &format!("server {i}"));
        assert_eq!(map.len(), acked.len());
    }
}

#[test]
fn a_single_server_commits_alone_and_recovers_its_state() {
    let mut cluster = Cluster::new("single", 1, 16_384);
    let client = RpcClient::new("127.0.0.1".parse().unwrap(), "dc1").expect("client");
    cluster.wait_leader(&client, Duration::from_secs(10));
    let mut last = 0;
    for k in 0..30 {
        last = cluster.write(&client, &format!("k{k}"), "x");
    }
    cluster.stop(0);
    cluster.start(0);
    cluster.wait_leader(&client, Duration::from_secs(10));
    let map = cluster.dump_after(&client, 0, last);
    assert_eq!(map.len(), 30);
    // Requests from another datacenter are dropped.
    let other = RpcClient::new("127.0.0.1".parse().unwrap(), "dc2").expect("client");
    assert!(other
        .status(cluster.addrs[0], Duration::from_millis(300))
        .is_err());
}
