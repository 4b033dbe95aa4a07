//! The WAN pool: two servers of different datacenters (`-dev` agents on 127.0.0.71 and 127.0.0.72) join through
//! `-retry-join-wan`; each lists both in `/v1/agent/members?wan` as `<node>.<dc>`, keeps its LAN pool to itself,
//! and names both datacenters in `/v1/catalog/datacenters` (its own first). A client agent has no WAN pool.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::gossip::member_statuses;
use support::{common_free_port, request, test_dir, Agent};

fn eventually(what: &str, agent: &Agent, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn servers_of_two_datacenters_share_the_wan_pool_only() {
    let dir = test_dir("gossip-wan");
    let ips: Vec<IpAddr> = ["127.0.0.71", "127.0.0.72", "127.0.0.73"]
        .iter()
        .map(|s| s.parse().expect("ip"))
        .collect();
    let http = common_free_port(&ips, &[]);
    let server = common_free_port(&ips, &[http]);
    let lan = common_free_port(&ips, &[http, server]);
    let wan = common_free_port(&ips, &[http, server, lan]);
    let start = |i: usize, name: &str, dc: &str, extra: &[String]| {
        let ip = ips[i];
        let mut args = vec![
            "-dev".to_string(),
            format!("-node={name}"),
            format!("-datacenter={dc}"),
            format!("-bind={ip}"),
            format!("-client={ip}"),
            format!("-http-port={http}"),
            format!("-server-port={server}"),
            format!("-serf-lan-port={lan}"),
            format!("-serf-wan-port={wan}"),
            "-dns-port=-1".into(),
            "-grpc-port=-1".into(),
        ];
        args.extend_from_slice(extra);
        let addr = SocketAddr::new(ip, http);
        let agent = Agent::start(&args, addr, dir.join(format!("{name}.log")));
        agent.wait_leader(Duration::from_secs(15));
        agent
    };
    let a = start(0, "a", "dc1", &[]);
    let join_wan = format!("-retry-join-wan={}:{wan}", ips[0]);
    let b = start(1, "b", "dc2", &[join_wan, "-retry-interval-wan=1s".into()]);
    let both = vec![("a.dc1".to_string(), 1), ("b.dc2".to_string(), 1)];
    eventually("a lists both servers in the WAN pool", &a, || {
        member_statuses(&a, "/v1/agent/members?wan") == both
    });
    eventually("b lists both servers in the WAN pool", &b, || {
        member_statuses(&b, "/v1/agent/members?wan") == both
    });
    // The LAN pools stay apart.
    assert_eq!(
        member_statuses(&a, "/v1/agent/members"),
        [("a".to_string(), 1)]
    );
    assert_eq!(
        member_statuses(&b, "/v1/agent/members"),
        [("b".to_string(), 1)]
    );
    // Each server knows both datacenters, its own first.
    let dcs = |agent: &Agent| agent.call("GET", "/v1/catalog/datacenters", b"").json();
    assert_eq!(dcs(&a), serde_json::json!(["dc1", "dc2"]));
    assert_eq!(dcs(&b), serde_json::json!(["dc2", "dc1"]));

    // A client agent has no WAN pool.
    let c_http = SocketAddr::new(ips[2], http);
    let client_args = vec![
        "-node=c".to_string(),
        format!("-data-dir={}", dir.join("c").display()),
        format!("-bind={}", ips[2]),
        format!("-client={}", ips[2]),
        format!("-http-port={http}"),
        format!("-serf-lan-port={lan}"),
        "-dns-port=-1".into(),
        format!("-retry-join={}:{lan}", ips[0]),
    ];
    let c = Agent::start(&client_args, c_http, dir.join("c.log"));
    eventually("the client answers", &c, || {
        request(c_http, "GET", "/v1/agent/self", b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200)
    });
    let r = c.call("GET", "/v1/agent/members?wan", b"");
    assert_eq!(
        (r.status, r.text()),
        (500, "WAN gossip is only available on servers".to_string())
    );
    eventually("the client joined a's LAN pool", &c, || {
        member_statuses(&c, "/v1/agent/members").len() == 2
    });
}
