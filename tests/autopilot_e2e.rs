//! Autopilot with gossip, end to end: three servers (127.0.0.81-83, `-bootstrap-expect 3`) form a cluster
//! through the LAN pool; a fourth server (127.0.0.84, no bootstrap flag, empty data directory) joins the pool,
//! is added to the Raft configuration as a non-voter by the leader's autopilot and promoted to voter once it has
//! been healthy for `server_stabilization_time` (2 s here); killed with SIGKILL, gossip marks it failed and
//! autopilot's dead-server cleanup removes it from the configuration again.

mod support;

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{common_free_port, test_dir, Agent};

const WAIT: Duration = Duration::from_secs(60);

struct Ports {
    http: u16,
    server: u16,
    serf: u16,
}

fn start(i: usize, ip: IpAddr, ports: &Ports, seed: IpAddr, expect: bool, dir: &Path) -> Agent {
    let name = format!("ap{}", i + 1);
    let mut args = vec![
        "-server".to_string(),
        format!("-node={name}"),
        format!("-data-dir={}", dir.join(&name).display()),
        format!("-bind={ip}"),
        format!("-client={ip}"),
        format!("-http-port={}", ports.http),
        format!("-server-port={}", ports.server),
        format!("-serf-lan-port={}", ports.serf),
        "-serf-wan-port=-1".into(),
        "-dns-port=-1".into(),
        "-retry-interval=1s".into(),
        format!("-retry-join={seed}:{}", ports.serf),
        "-hcl=autopilot {\n server_stabilization_time = \"2s\"\n}".into(),
    ];
    if expect {
        args.push("-bootstrap-expect=3".into());
    }
    let http = SocketAddr::new(ip, ports.http);
    Agent::start(&args, http, dir.join(format!("{name}.log")))
}

/// `/v1/operator/raft/configuration`'s servers as (node, voter) pairs, sorted; empty when it cannot answer.
fn raft_servers(agent: &Agent) -> Vec<(String, bool)> {
    let r = agent.call("GET", "/v1/operator/raft/configuration", b"");
    if r.status != 200 {
        return Vec::new();
    }
    let mut servers: Vec<(String, bool)> = r.json()["Servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["Node"].as_str().unwrap_or_default().to_string(),
                        s["Voter"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    servers.sort();
    servers
}

fn eventually(what: &str, agents: &[&Agent], mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        if Instant::now() > deadline {
            let logs: Vec<String> = agents.iter().map(|a| a.log_text()).collect();
            panic!("{what}: not within {WAIT:?}\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_server_is_added_promoted_and_removed_when_it_dies() {
    let dir = test_dir("autopilot-e2e");
    let ips: Vec<IpAddr> = (81..85)
        .map(|n| format!("127.0.0.{n}").parse().expect("ip"))
        .collect();
    let http = common_free_port(&ips, &[]);
    let server = common_free_port(&ips, &[http]);
    let serf = common_free_port(&ips, &[http, server]);
    let ports = Ports { http, server, serf };
    let first: Vec<Agent> = (0..3)
        .map(|i| start(i, ips[i], &ports, ips[(i + 1) % 3], true, &dir))
        .collect();
    let s1 = &first[0];
    s1.wait_leader(WAIT);
    let three: Vec<(String, bool)> = (1..=3).map(|i| (format!("ap{i}"), true)).collect();
    eventually(
        "three voters bootstrapped through the LAN pool",
        &[s1],
        || raft_servers(s1) == three,
    );

    // A fourth server joins: a non-voter first, then a voter once stable.
    let mut fourth = Some(start(3, ips[3], &ports, ips[0], false, &dir));
    let mut saw_nonvoter = false;
    eventually("ap4 is promoted to voter", &[s1], || {
        let servers = raft_servers(s1);
        saw_nonvoter |= servers.contains(&("ap4".to_string(), false));
        servers.contains(&("ap4".to_string(), true))
    });
    assert!(saw_nonvoter, "ap4 was never a non-voter first");
    let health: Value = s1.call("GET", "/v1/operator/autopilot/health", b"").json();
    assert_eq!(
        health["Servers"].as_array().map(Vec::len),
        Some(4),
        "{health}"
    );

    // It dies: gossip marks it failed and autopilot removes it.
    fourth.take();
    eventually("ap4 is removed from the Raft configuration", &[s1], || {
        raft_servers(s1) == three
    });
    let r = s1.call("PUT", "/v1/kv/after", b"still writable");
    assert_eq!(r.status, 200, "{}", r.text());
}
