//! e2e: client agents. Three servers on 127.0.0.21-23 and two client agents (`cairn agent` without
//! `-server`) on 127.0.0.24 and 127.0.0.25, which know the servers from `-retry-join`. A client answers its
//! agent endpoints from its own local state, syncs its services and checks into the catalog (anti-entropy),
//! and relays every other request to a server over the server RPC, failing over when that server dies.
//! The clients serve DNS (the servers do not): `dig` against a client gets answers built by a server with
//! the client's own DNS settings.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use support::dig::{dig_at, short_at, status};
use support::{common_free_port, test_dir, Agent, Resp};

const SERVERS: usize = 3;
const WAIT: Duration = Duration::from_secs(20);

struct Fleet {
    ips: Vec<IpAddr>,
    http_port: u16,
    server_port: u16,
    /// Every agent's Serf LAN port.
    serf_port: u16,
    /// The clients' DNS port (the servers serve no DNS).
    dns_port: u16,
    agents: Vec<Option<Agent>>,
}

impl Fleet {
    fn start(name: &str) -> Fleet {
        let base = test_dir(name);
        let ips: Vec<IpAddr> = (21..=25)
            .map(|n| format!("127.0.0.{n}").parse().expect("ip"))
            .collect();
        let http_port = common_free_port(&ips, &[]);
        let server_port = common_free_port(&ips, &[http_port]);
        let serf_port = common_free_port(&ips, &[http_port, server_port]);
        let dns_port = common_free_port(&ips[SERVERS..], &[http_port, server_port]);
        let mut fleet = Fleet {
            ips,
            http_port,
            server_port,
            serf_port,
            dns_port,
            agents: Vec::new(),
        };
        for i in 0..ips_len() {
            let agent = fleet.spawn(i, &base);
            fleet.agents.push(Some(agent));
            if i == SERVERS - 1 {
                fleet.wait_leader();
            }
        }
        for i in SERVERS..ips_len() {
            fleet.eventually("the client agent answers", || {
                support::request(
                    fleet.http(i),
                    "GET",
                    "/v1/agent/self",
                    b"",
                    Duration::from_secs(1),
                )
                .is_ok_and(|r| r.status == 200)
            });
            // The client found the servers through the LAN pool.
            fleet.eventually("the client agent sees every server alive by gossip", || {
                support::request(
                    fleet.http(i),
                    "GET",
                    "/v1/agent/members",
                    b"",
                    Duration::from_secs(1),
                )
                .ok()
                .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|members| {
                    members
                        .iter()
                        .filter(|m| m["Tags"]["role"] == "consul" && m["Status"] == 1)
                        .count()
                        == SERVERS
                })
            });
        }
        fleet
    }

    fn spawn(&self, i: usize, base: &std::path::Path) -> Agent {
        let ip = self.ips[i];
        let server = i < SERVERS;
        let name = if server {
            format!("s{}", i + 1)
        } else {
            format!("c{}", i - SERVERS + 1)
        };
        let mut args: Vec<String> = vec![
            format!("-node={name}"),
            format!("-data-dir={}", base.join(&name).display()),
            format!("-bind={ip}"),
            format!("-client={ip}"),
            format!("-http-port={}", self.http_port),
            format!("-server-port={}", self.server_port),
            format!("-serf-lan-port={}", self.serf_port),
            "-serf-wan-port=-1".into(),
            "-log-level=info".into(),
            "-hcl=ae_interval = \"1s\"".into(),
        ];
        if server {
            args.push("-server".into());
            args.push(format!("-bootstrap-expect={SERVERS}"));
            args.push("-dns-port=-1".into());
        } else {
            // TTLs only the clients know: answers carrying them were built with the client's settings.
            args.push(format!("-dns-port={}", self.dns_port));
            args.push(
                "-hcl=dns_config {\n node_ttl = \"7s\"\n service_ttl = { \"*\" = \"9s\" }\n}"
                    .into(),
            );
        }
        for j in (0..SERVERS).filter(|&j| j != i) {
            args.push(format!("-retry-join={}:{}", self.ips[j], self.serf_port));
        }
        Agent::start(&args, self.http(i), base.join(format!("{name}.log")))
    }

    fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ips[i], self.http_port)
    }

    /// `dig` against agent `i`'s DNS port.
    fn dig(&self, i: usize, args: &[&str]) -> String {
        dig_at(self.ips[i], self.dns_port, args)
    }

    /// `dig +short` against agent `i`'s DNS port, sorted.
    fn short(&self, i: usize, args: &[&str]) -> Vec<String> {
        short_at(self.ips[i], self.dns_port, args)
    }

    fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("running")
    }

    fn call(&self, i: usize, method: &str, target: &str, body: &str) -> Resp {
        support::call(self.http(i), method, target, body.as_bytes())
    }

    fn wait_leader(&self) {
        for i in 0..SERVERS {
            self.agent(i).wait_leader(WAIT);
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for agent in self.agents.iter().flatten() {
            out.push_str(&format!(
                "--- {}\n{}\n",
                agent.log.display(),
                agent.log_text()
            ));
        }
        out
    }

    /// Waits until `cond` holds.
    fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn ips_len() -> usize {
    SERVERS + 2
}

/// The nodes `/v1/health/service/<name>?passing` lists through agent `i`.
fn passing_nodes(fleet: &Fleet, i: usize, name: &str) -> Vec<String> {
    let r = fleet.call(i, "GET", &format!("/v1/health/service/{name}?passing"), "");
    if r.status != 200 {
        return Vec::new();
    }
    let mut nodes: Vec<String> = r
        .json()
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e["Node"]["Node"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes
}

#[test]
fn client_agents_register_locally_relay_to_servers_and_fail_over() {
    let fleet = Fleet::start("client-agents");
    let (c1, c2) = (SERVERS, SERVERS + 1);

    // A client answers its own agent endpoints.
    let me = fleet.call(c1, "GET", "/v1/agent/self", "").json();
    assert_eq!(me["Config"]["Server"], false, "{me}");
    assert_eq!(me["Config"]["NodeName"], "c1");
    // The client's own metrics: no catalog gauges (those are a server's).
    let metrics = fleet.call(c1, "GET", "/v1/agent/metrics", "").json();
    let names: Vec<&str> = metrics["Gauges"]
        .as_array()
        .expect("gauges")
        .iter()
        .filter_map(|g| g["Name"].as_str())
        .collect();
    assert!(names.contains(&"consul.runtime.sys_bytes"), "{metrics}");
    assert!(!names.contains(&"consul.state.nodes"), "{metrics}");

    // A service registered on c1 is in the catalog, through any agent, as soon as the PUT returns.
    let r = fleet.call(
        c1,
        "PUT",
        "/v1/agent/service/register",
        r#"{"Name":"web","Port":80,"Check":{"CheckID":"web-ttl","TTL":"30s","Status":"passing"}}"#,
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), fleet.logs());
    assert_eq!(passing_nodes(&fleet, c1, "web"), vec!["c1"]);
    assert_eq!(passing_nodes(&fleet, 0, "web"), vec!["c1"]);
    assert_eq!(passing_nodes(&fleet, c2, "web"), vec!["c1"]);
    let services = fleet.call(c1, "GET", "/v1/agent/services", "").json();
    assert_eq!(services.as_object().map(|m| m.len()), Some(1), "{services}");
    let node = fleet.call(c2, "GET", "/v1/catalog/node/c1", "").json();
    assert_eq!(node["Node"]["Address"], "127.0.0.24", "{node}");
    dns_on_the_clients(&fleet);

    // KV through the clients: written on one, read on the other, a blocking query woken across them.
    let r = fleet.call(c2, "PUT", "/v1/kv/app/config", "v1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "true"),
        "{}",
        fleet.logs()
    );
    let r = fleet.call(c1, "GET", "/v1/kv/app/config?raw", "");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    let index = r.index();
    assert!(r.header("x-consul-knownleader").is_some());
    let blocking = {
        let http = fleet.http(c1);
        std::thread::spawn(move || {
            support::request(
                http,
                "GET",
                &format!("/v1/kv/app/config?raw&index={index}&wait=20s"),
                b"",
                Duration::from_secs(30),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fleet.call(c2, "PUT", "/v1/kv/app/config", "v2").status, 200);
    let woken = blocking.join().expect("thread").expect("answer");
    assert_eq!((woken.status, woken.text().as_str()), (200, "v2"));
    assert!(woken.index() > index);

    // Bad input relayed to a server gets the server's answer.
    let r = fleet.call(c1, "PUT", "/v1/catalog/register", "{");
    assert_eq!(r.status, 400, "{}", r.text());

    // A TTL check on c2 that is never updated turns critical in the catalog.
    let r = fleet.call(
        c2,
        "PUT",
        "/v1/agent/service/register",
        r#"{"Name":"db","Check":{"CheckID":"db-ttl","TTL":"1s","Status":"passing"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    fleet.eventually("db's TTL check expires", || {
        let checks = fleet.call(0, "GET", "/v1/health/checks/db", "").json();
        checks[0]["Status"] == "critical"
    });

    // Anti-entropy on a client: what is removed from the catalog behind its back comes back.
    let r = fleet.call(
        0,
        "PUT",
        "/v1/catalog/deregister",
        r#"{"Node":"c1","ServiceID":"web"}"#,
    );
    assert_eq!(r.status, 200);
    fleet.eventually("c1 puts web back", || {
        passing_nodes(&fleet, 0, "web") == vec!["c1"]
    });

    // c1 talks to s1 first; kill it, and c1 keeps working through the other servers.
    let mut fleet = fleet;
    fleet.agents[0] = None;
    fleet.eventually("s2 and s3 agree on a new leader", || {
        let leaders: Vec<String> = (1..SERVERS)
            .map(|i| fleet.call(i, "GET", "/v1/status/leader", "").text())
            .collect();
        leaders[0].len() > 2 && leaders.iter().all(|l| *l == leaders[0])
    });
    fleet.eventually("a client read after its server died", || {
        let r = fleet.call(c1, "GET", "/v1/kv/app/config?raw", "");
        r.status == 200 && r.text() == "v2"
    });
    let r = fleet.call(c1, "PUT", "/v1/kv/after-failover", "yes");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "true"),
        "{}",
        fleet.logs()
    );
    let r = fleet.call(c1, "PUT", "/v1/agent/check/fail/web-ttl?note=down", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(passing_nodes(&fleet, 1, "web").is_empty());
    // DNS on c1 fails over too, and sees the critical check: no healthy instance is NXDOMAIN.
    fleet.eventually("c1's DNS drops the failed instance", || {
        status(&fleet.dig(c1, &["web.service.consul", "A"])) == "NXDOMAIN"
    });
    assert_eq!(fleet.short(c1, &["c2.node.consul"]), ["127.0.0.25"]);
}

/// Whether dig's `output` has the record `want` (fields separated by one space).
fn has_record(output: &str, want: &str) -> bool {
    output
        .lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>().join(" ") == want)
}

/// `dig` against the client agents (web registered on c1 with a passing check).
fn dns_on_the_clients(fleet: &Fleet) {
    let (c1, c2) = (SERVERS, SERVERS + 1);
    for i in [c1, c2] {
        let srv = fleet.dig(i, &["web.service.consul", "SRV"]);
        assert_eq!(status(&srv), "NOERROR", "{srv}\n{}", fleet.logs());
        assert!(
            has_record(
                &srv,
                "web.service.consul. 9 IN SRV 1 1 80 c1.node.dc1.consul."
            ),
            "{srv}"
        );
        assert!(
            has_record(&srv, "c1.node.dc1.consul. 7 IN A 127.0.0.24"),
            "{srv}"
        );
        assert_eq!(fleet.short(i, &["web.service.consul", "A"]), ["127.0.0.24"]);
        assert_eq!(
            fleet.short(i, &["_web._tcp.service.consul", "SRV"]),
            ["1 1 80 c1.node.dc1.consul."]
        );
    }
    // Node lookups, the client's own node and a server's.
    let node = fleet.dig(c1, &["c2.node.consul"]);
    assert_eq!(status(&node), "NOERROR", "{node}");
    assert!(
        has_record(&node, "c2.node.consul. 7 IN A 127.0.0.25"),
        "{node}"
    );
    assert_eq!(fleet.short(c2, &["s2.node.dc1.consul"]), ["127.0.0.22"]);
    // Over TCP too.
    assert_eq!(
        fleet.short(c2, &["+tcp", "web.service.consul"]),
        ["127.0.0.24"]
    );
    // Unknown names: NXDOMAIN with the SOA.
    let unknown = fleet.dig(c1, &["nothing.service.consul"]);
    assert_eq!(status(&unknown), "NXDOMAIN", "{unknown}");
    assert!(unknown.contains("SOA"), "{unknown}");
    // Outside the domain without recursors: SERVFAIL, answered by the client itself.
    let outside = fleet.dig(c1, &["example.org", "A"]);
    assert_eq!(status(&outside), "SERVFAIL", "{outside}");
    // Garbage at the client's DNS port gets FORMERR or nothing, and the client keeps answering.
    let socket = std::net::UdpSocket::bind((fleet.ips[c1], 0)).expect("udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let port = (fleet.ips[c1], fleet.dns_port);
    for junk in [
        &b"\x12"[..],
        &[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &[0xff; 40][..],
    ] {
        socket.send_to(junk, port).expect("send");
        let mut buf = [0u8; 512];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            assert!(n >= 12 && buf[2] & 0x80 != 0, "{:?}", &buf[..n]);
        }
    }
    assert_eq!(fleet.short(c1, &["web.service.consul"]), ["127.0.0.24"]);
}

#[test]
fn gossip_drives_the_catalog_serf_health_and_bound_sessions() {
    let mut fleet = Fleet::start("client-agents-gossip");
    let (c1, c2) = (SERVERS, SERVERS + 1);
    // Every agent is a node with serfHealth passing, put there by the leader from the LAN pool.
    fleet.eventually("every member is a node with serfHealth passing", || {
        let checks = fleet.call(0, "GET", "/v1/health/state/passing", "").json();
        let passing: Vec<&str> = checks
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["CheckID"] == "serfHealth")
                    .filter_map(|c| c["Node"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        ["s1", "s2", "s3", "c1", "c2"]
            .iter()
            .all(|n| passing.contains(n))
    });
    // A session on c2 bound to its serfHealth (the default check of a session).
    let created = fleet.call(c1, "PUT", "/v1/session/create", r#"{"Node":"c2"}"#);
    assert_eq!(created.status, 200, "{}", created.text());
    let id = created.json()["ID"].as_str().expect("id").to_string();
    let members = fleet.call(c1, "GET", "/v1/agent/members", "").json();
    assert_eq!(
        members.as_array().map(Vec::len),
        Some(SERVERS + 2),
        "{members}"
    );

    // c2 dies: gossip marks it failed, the leader turns its serfHealth critical, which ends the session.
    fleet.agents[c2] = None;
    fleet.eventually("c1 sees c2 failed", || {
        fleet
            .call(c1, "GET", "/v1/agent/members", "")
            .json()
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["Name"] == "c2" && m["Status"] == 4))
    });
    fleet.eventually("c2's serfHealth is critical", || {
        let checks = fleet.call(c1, "GET", "/v1/health/node/c2", "").json();
        checks.as_array().is_some_and(|a| {
            a.iter().any(|c| {
                c["CheckID"] == "serfHealth"
                    && c["Status"] == "critical"
                    && c["Output"] == "Agent not live or unreachable"
            })
        })
    });
    fleet.eventually("the session bound to c2's serfHealth is gone", || {
        let info = fleet.call(c1, "GET", &format!("/v1/session/info/{id}"), "");
        info.status == 200 && info.json().as_array().is_some_and(Vec::is_empty)
    });
    // force-leave turns the failed member into a left one, and the leader deregisters its node.
    let r = fleet.call(c1, "PUT", "/v1/agent/force-leave/c2", "");
    assert_eq!(r.status, 200, "{}", r.text());
    fleet.eventually("c2 is deregistered after force-leave", || {
        fleet.call(0, "GET", "/v1/catalog/node/c2", "").text() == "null"
    });
    let unknown = fleet.call(c1, "PUT", "/v1/agent/force-leave/nobody", "");
    assert_eq!(
        (unknown.status, unknown.text()),
        (500, "agent: No node found with name 'nobody'".to_string())
    );
    let alive = fleet.call(c1, "PUT", "/v1/agent/force-leave/s1", "");
    assert_eq!(alive.status, 500, "{}", alive.text());

    // A graceful leave: the others list c1 as left (status 3) and the leader deregisters its node.
    let r = fleet.call(c1, "PUT", "/v1/agent/leave", "");
    assert_eq!(r.status, 200, "{}", r.text());
    fleet.eventually("s1 lists c1 as left", || {
        fleet
            .call(0, "GET", "/v1/agent/members", "")
            .json()
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["Name"] == "c1" && m["Status"] == 3))
    });
    fleet.eventually("c1 is deregistered after leaving", || {
        fleet.call(0, "GET", "/v1/catalog/node/c1", "").text() == "null"
    });
}
