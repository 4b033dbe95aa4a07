//! Interop of cairn agents with real Debian `serf` agents (memberlist/Serf as shipped by Debian), through the
//! agents' own gossip driver and HTTP API: a serf agent joins a cairn pool and a cairn agent joins a serf pool,
//! both sides list the same members, a user event crosses both ways, a killed serf agent is marked failed by
//! cairn and a killed cairn agent by serf; all of it again with an encryption key (`-encrypt`).
//!
//! Needs `serf` on PATH (`tests/run.sh` installs Debian's package; the test fails, never skips, without it).
//! Addresses: 127.0.0.51-54 (plain) and 127.0.0.55-58 (encrypted).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::gossip::{client_args, member_statuses, require_serf};
use support::{common_free_port, request, test_dir, Agent};

/// How long a membership change may take to be seen (failure detection is a few probe rounds).
const CONVERGE: Duration = Duration::from_secs(30);
const KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// A real serf agent; killed (SIGKILL) on drop.
struct Serf {
    child: Option<Child>,
    rpc: String,
    log: std::path::PathBuf,
}

impl Serf {
    fn start(name: &str, bind: SocketAddr, rpc_port: u16, key: Option<&str>, dir: &Path) -> Serf {
        let rpc = format!("{}:{rpc_port}", bind.ip());
        let log = dir.join(format!("{name}.log"));
        let mut args = vec![
            "agent".to_string(),
            format!("-node={name}"),
            format!("-bind={bind}"),
            format!("-rpc-addr={rpc}"),
            "-log-level=debug".into(),
        ];
        if let Some(key) = key {
            args.push(format!("-encrypt={key}"));
        }
        let file = std::fs::File::create(&log).expect("serf log");
        let child = Command::new("serf")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("serf agent starts (apt-get install -y serf; tests/run.sh does)");
        let serf = Serf {
            child: Some(child),
            rpc,
            log,
        };
        eventually("serf answers its RPC", || serf.members().is_some());
        serf
    }

    /// `serf members` as (name, status) pairs; `None` when the RPC does not answer.
    fn members(&self) -> Option<Vec<(String, String)>> {
        let out = Command::new("serf")
            .args(["members", &format!("-rpc-addr={}", self.rpc)])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Some(
            text.lines()
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    let name = words.next()?.to_string();
                    let _addr = words.next()?;
                    Some((name, words.next()?.to_string()))
                })
                .collect(),
        )
    }

    fn status_of(&self, name: &str) -> Option<String> {
        self.members()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    fn event(&self, name: &str, payload: &str) {
        let out = Command::new("serf")
            .args(["event", &format!("-rpc-addr={}", self.rpc), name, payload])
            .output()
            .expect("serf event");
        assert!(out.status.success(), "serf event: {out:?}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Serf {
    fn drop(&mut self) {
        self.kill();
    }
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {CONVERGE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A cairn client agent on `ip` with its Serf LAN port `serf_port`, joining `join` if given.
fn cairn(
    name: &str,
    ip: IpAddr,
    http_port: u16,
    serf_port: u16,
    key: Option<&str>,
    join: Option<SocketAddr>,
    dir: &Path,
) -> Agent {
    let mut args = client_args(name, ip, http_port, serf_port, dir);
    if let Some(key) = key {
        args.push(format!("-encrypt={key}"));
    }
    if let Some(join) = join {
        args.push(format!("-retry-join={join}"));
        args.push("-retry-interval=1s".into());
    }
    let http = SocketAddr::new(ip, http_port);
    let agent = Agent::start(&args, http, dir.join(format!("{name}.log")));
    eventually("the cairn agent answers", || {
        request(http, "GET", "/v1/agent/self", b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200)
    });
    agent
}

/// `/v1/agent/members` of `agent` as (name, status) pairs.
fn cairn_members(agent: &Agent) -> Vec<(String, u64)> {
    member_statuses(agent, "/v1/agent/members")
}

fn cairn_status(agent: &Agent, name: &str) -> Option<u64> {
    cairn_members(agent)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

fn scenario(first_ip: u8, key: Option<&str>) {
    let label = if key.is_some() { "encrypted" } else { "plain" };
    let dir = test_dir(&format!("serf-e2e-{label}"));
    let ips: Vec<IpAddr> = (first_ip..first_ip + 4)
        .map(|n| format!("127.0.0.{n}").parse().expect("ip"))
        .collect();
    let http_port = common_free_port(&ips, &[]);
    let serf_port = common_free_port(&ips, &[http_port]);
    let rpc_port = common_free_port(&ips, &[http_port, serf_port]);
    let gossip = |i: usize| SocketAddr::new(ips[i], serf_port);

    // Pool 1: a serf agent joins a cairn pool.
    let cairn1 = cairn("cairn1", ips[0], http_port, serf_port, key, None, &dir);
    let mut serf_a = Serf::start("serf-a", gossip(1), rpc_port, key, &dir);
    let out = Command::new("serf")
        .args([
            "join",
            &format!("-rpc-addr={}", serf_a.rpc),
            &gossip(0).to_string(),
        ])
        .output()
        .expect("serf join");
    assert!(out.status.success(), "serf join cairn1: {out:?}");
    eventually("cairn1 lists serf-a alive", || {
        cairn_status(&cairn1, "serf-a") == Some(1)
    });
    eventually("serf-a lists cairn1 alive", || {
        serf_a.status_of("cairn1").as_deref() == Some("alive")
    });
    let mut names: Vec<String> = cairn_members(&cairn1).into_iter().map(|m| m.0).collect();
    names.sort();
    let mut serf_names: Vec<String> = serf_a
        .members()
        .expect("members")
        .into_iter()
        .map(|m| m.0)
        .collect();
    serf_names.sort();
    assert_eq!(names, serf_names, "both sides list the same members");

    if key.is_some() {
        keyring_rotation(&cairn1, &serf_a, &dir.join("cairn1"));
    }

    // User events both ways.
    serf_a.event("deploy", "v1");
    eventually("cairn1 received serf's event", || {
        let events = cairn1.call("GET", "/v1/event/list?name=deploy", b"").json();
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["Payload"] == "djE="))
    });
    let fired = cairn1.call("PUT", "/v1/event/fire/release", b"v2");
    assert_eq!(fired.status, 200, "{}", fired.text());
    assert_eq!(fired.json()["Name"], "release");
    eventually("serf-a received cairn's event", || {
        serf_a.log_text().contains("consul:event:release")
    });

    // Pool 2: a cairn agent joins a serf pool.
    let serf_b = Serf::start("serf-b", gossip(2), rpc_port, key, &dir);
    let cairn2 = cairn(
        "cairn2",
        ips[3],
        http_port,
        serf_port,
        key,
        Some(gossip(2)),
        &dir,
    );
    eventually("cairn2 lists serf-b alive", || {
        cairn_status(&cairn2, "serf-b") == Some(1)
    });
    eventually("serf-b lists cairn2 alive", || {
        serf_b.status_of("cairn2").as_deref() == Some("alive")
    });

    // A killed serf agent is marked failed by cairn; a killed cairn agent by serf.
    serf_a.kill();
    eventually("cairn1 marks the killed serf-a failed", || {
        cairn_status(&cairn1, "serf-a") == Some(4)
    });
    drop(cairn2);
    eventually("serf-b marks the killed cairn2 failed", || {
        serf_b.status_of("cairn2").as_deref() == Some("failed")
    });
    drop(cairn1);
}

/// The keys `/v1/operator/keyring` lists for the LAN pool, with how many members hold each.
fn cairn_keys(agent: &Agent, query: &str) -> (Vec<(String, u64)>, u64) {
    let r = agent.call("GET", &format!("/v1/operator/keyring{query}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let pools = r.json();
    let lan = &pools.as_array().expect("pools")[0];
    assert_eq!(lan["WAN"], false);
    let keys = lan["Keys"]
        .as_object()
        .expect("keys")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect();
    (keys, lan["NumNodes"].as_u64().unwrap_or(0))
}

/// `serf keys -list` as (key, "[n/m]") pairs.
fn serf_keys(serf: &Serf) -> String {
    let out = Command::new("serf")
        .args(["keys", "-list", &format!("-rpc-addr={}", serf.rpc)])
        .output()
        .expect("serf keys");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rotates the pool's key through cairn's keyring API, seen by serf's own key query, and back from serf.
fn keyring_rotation(cairn1: &Agent, serf_a: &Serf, data_dir: &Path) {
    let new_key = "aGVsbG8tY2Fpcm4tZ29zc2lwLWtleS0zMmJ5dGVzISE=";
    assert_eq!(cairn_keys(cairn1, ""), (vec![(KEY.to_string(), 2)], 2));
    let body = format!(r#"{{"Key":"{new_key}"}}"#);
    for method in ["POST", "PUT"] {
        let r = cairn1.call(method, "/v1/operator/keyring", body.as_bytes());
        assert_eq!((r.status, r.text()), (200, String::new()), "{method}");
    }
    let old = format!(r#"{{"Key":"{KEY}"}}"#);
    let r = cairn1.call("DELETE", "/v1/operator/keyring", old.as_bytes());
    assert_eq!((r.status, r.text()), (200, String::new()));
    let listed = serf_keys(serf_a);
    assert!(listed.contains(&format!("{new_key}  [2/2]")), "{listed}");
    // The agent keeps its keyring in its data directory, as Consul does.
    let kept = std::fs::read_to_string(data_dir.join("serf/local.keyring")).expect("keyring file");
    assert_eq!(kept, format!(r#"["{new_key}"]"#));
    assert!(!listed.contains(KEY), "{listed}");
    // Removing the primary key is refused by every member.
    let r = cairn1.call("DELETE", "/v1/operator/keyring", body.as_bytes());
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().starts_with("2/2 nodes reported failure"),
        "{}",
        r.text()
    );
    // serf installs a key: cairn holds it too.
    let out = Command::new("serf")
        .args([
            "keys",
            "-install",
            KEY,
            &format!("-rpc-addr={}", serf_a.rpc),
        ])
        .output()
        .expect("serf keys -install");
    assert!(out.status.success(), "{out:?}");
    let (local, nodes) = cairn_keys(cairn1, "?local-only");
    assert_eq!(nodes, 1);
    assert!(local.contains(&(KEY.to_string(), 1)), "{local:?}");
    // Bad input gets Consul's answers.
    let r = cairn1.call("POST", "/v1/operator/keyring", b"{");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = cairn1.call("GET", "/v1/operator/keyring?relay-factor=9", b"");
    assert_eq!(
        (r.status, r.text()),
        (400, "Relay factor must be in range: [0, 5]".to_string())
    );
}

#[test]
fn cairn_agents_and_serf_agents_share_pools_events_and_failure_detection() {
    require_serf();
    scenario(51, None);
}

#[test]
fn the_same_with_gossip_encryption() {
    require_serf();
    scenario(55, Some(KEY));
}
