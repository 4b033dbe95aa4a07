//! DNS e2e: `dig` against a running `-dev` agent with registered services (healthy, warning and critical
//! instances, tags, node meta, hostnames, IPv6, many instances), over UDP and TCP; a second agent recursing
//! to the first; random and bit-flipped packets sent at the port.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;
use support::dig::{answer_count, dig_at, flags, short_at, status};
use support::{free_port, test_dir, Agent};

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

const MANY: usize = 30;

fn register(agent: &Agent, body: &str) {
    let r = agent.call("PUT", "/v1/catalog/register", body.as_bytes());
    assert_eq!(r.status, 200, "register {body}: {}", r.text());
}

/// Registers `node` at `address` with one instance of `service` (tags) whose check is `status`.
fn instance(agent: &Agent, node: &str, address: &str, service: &str, tags: &[&str], status: &str) {
    let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    register(
        agent,
        &format!(
            r#"{{"Node":"{node}","Address":"{address}","Service":{{"Service":"{service}","Tags":[{}],"Port":8080}},
               "Check":{{"CheckID":"c-{service}","Name":"c","Status":"{status}","ServiceID":"{service}"}}}}"#,
            tags.join(",")
        ),
    );
}

/// Runs `dig @127.0.0.1 -p <port> <args>` and returns its output.
fn dig(port: u16, args: &[&str]) -> String {
    dig_at(LOCALHOST, port, args)
}

/// The `+short` lines, sorted.
fn short(port: u16, args: &[&str]) -> Vec<String> {
    short_at(LOCALHOST, port, args)
}

/// A `-dev` agent serving DNS on a free port, with `enable_truncate`, node_ttl and node meta, and the test
/// catalog registered.
fn agent_with_catalog() -> (Agent, u16) {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let port = free_port(ip);
    let dir = test_dir("dns-config");
    let file = dir.join("dns.hcl");
    std::fs::write(
        &file,
        "dns_config {\n  enable_truncate = true\n  node_ttl = \"7s\"\n  service_ttl = { \"web*\" = \"9s\" }\n}\n",
    )
    .unwrap();
    let dns_port = format!("-dns-port={port}");
    let config = format!("-config-file={}", file.display());
    let agent = Agent::dev(
        "dnsnode",
        &[
            &dns_port,
            &config,
            "-node-meta=rack:r1",
            "-node-meta=rfc1035-note:plain",
        ],
    );
    instance(&agent, "web-a", "10.1.0.1", "web", &["primary"], "passing");
    instance(
        &agent,
        "web-b",
        "10.1.0.2",
        "web",
        &["secondary"],
        "warning",
    );
    instance(&agent, "web-c", "10.1.0.3", "web", &["primary"], "critical");
    instance(&agent, "v6node", "2001:db8::7", "api", &[], "passing");
    instance(&agent, "hostnode", "db.example.org", "ext", &[], "passing");
    for i in 0..MANY {
        instance(
            &agent,
            &format!("many-{i}"),
            &format!("10.2.0.{}", i + 1),
            "many",
            &[],
            "passing",
        );
    }
    (agent, port)
}

#[test]
fn dig_against_a_dev_agent() {
    let (agent, port) = agent_with_catalog();

    // Health filtering: the critical instance is left out, the warning one is kept.
    assert_eq!(
        short(port, &["web.service.consul"]),
        ["10.1.0.1", "10.1.0.2"]
    );
    assert_eq!(short(port, &["primary.web.service.consul"]), ["10.1.0.1"]);
    assert_eq!(short(port, &["WEB.Service.CONSUL"]).len(), 2);
    let srv = short(port, &["_web._secondary.service.consul", "SRV"]);
    assert_eq!(srv, ["1 1 8080 web-b.node.dc1.consul."]);
    let srv = dig(port, &["web.service.dc1.consul", "SRV"]);
    assert!(
        srv.contains("web-a.node.dc1.consul.\t7\tIN\tA\t10.1.0.1"),
        "{srv}"
    );
    assert!(srv.contains("web.service.dc1.consul.\t9\tIN\tSRV"), "{srv}");

    // Nodes: address with node_ttl, node meta as TXT, a hostname as CNAME, IPv6.
    let node = dig(port, &["dnsnode.node.consul"]);
    assert!(
        node.contains("dnsnode.node.consul.\t7\tIN\tA\t127.0.0.1"),
        "{node}"
    );
    assert_eq!(
        short(port, &["dnsnode.node.consul", "TXT"]),
        ["\"plain\"", "\"rack=r1\""]
    );
    assert_eq!(short(port, &["hostnode.node.consul"]), ["db.example.org."]);
    assert!(dig(port, &["hostnode.node.consul"]).contains("CNAME"));
    assert_eq!(
        short(port, &["v6node.node.consul", "AAAA"]),
        ["2001:db8::7"]
    );
    assert_eq!(
        short(port, &["api.service.consul", "AAAA"]),
        ["2001:db8::7"]
    );
    let nodata = dig(port, &["v6node.node.consul", "A"]);
    assert_eq!(status(&nodata), "NOERROR");
    assert_eq!(answer_count(&nodata), 0);
    assert!(nodata.contains("SOA"), "{nodata}");

    // .addr and PTR.
    assert_eq!(short(port, &["0a010001.addr.dc1.consul"]), ["10.1.0.1"]);
    assert_eq!(short(port, &["-x", "10.1.0.1"]), ["web-a.node.dc1.consul."]);

    // NXDOMAIN with SOA, other datacenters, outside the domain, zone transfers.
    let nx = dig(port, &["nope.service.consul"]);
    assert_eq!(status(&nx), "NXDOMAIN");
    assert!(
        nx.contains("consul.\t\t\t0\tIN\tSOA\tns.consul. hostmaster.consul."),
        "{nx}"
    );
    assert_eq!(status(&dig(port, &["web.service.dc2.consul"])), "NXDOMAIN");
    assert_eq!(status(&dig(port, &["example.com"])), "SERVFAIL");
    let axfr = dig(port, &["consul", "AXFR"]);
    assert!(axfr.contains("Transfer failed"), "{axfr}");
    let soa = short(port, &["consul", "SOA"]);
    assert!(
        soa[0].starts_with("ns.consul. hostmaster.consul. "),
        "{soa:?}"
    );
    assert_eq!(short(port, &["consul", "NS"]), ["dnsnode.node.dc1.consul."]);

    // Many instances: UDP without EDNS gets 3 answers and TC (enable_truncate); dig then retries over TCP
    // and gets them all; EDNS with a large buffer gets them all over UDP.
    let udp = dig(port, &["+noedns", "+ignore", "many.service.consul"]);
    assert_eq!(answer_count(&udp), 3, "{udp}");
    assert!(flags(&udp).contains("tc"), "{udp}");
    let retried = dig(port, &["+noedns", "many.service.consul"]);
    assert_eq!(answer_count(&retried), MANY, "{retried}");
    let tcp = dig(port, &["+tcp", "many.service.consul", "SRV"]);
    assert_eq!(answer_count(&tcp), MANY, "{tcp}");
    let edns = dig(port, &["+bufsize=4096", "many.service.consul"]);
    assert_eq!(answer_count(&edns), MANY, "{edns}");
    assert!(!flags(&edns).contains("tc"));

    // Random and bit-flipped packets: FORMERR or nothing, never a crash.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let mut seed: u64 = 0x1234_5678;
    let mut next = || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^ (z >> 27)
    };
    let good: Vec<u8> = vec![
        0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 7, b's', b'e', b'r', b'v',
        b'i', b'c', b'e', 6, b'c', b'o', b'n', b's', b'u', b'l', 0, 0, 1, 0, 1,
    ];
    let mut buffer = [0u8; 4096];
    for round in 0..200 {
        let packet: Vec<u8> = if round % 2 == 0 {
            (0..next() % 300).map(|_| next() as u8).collect()
        } else {
            let mut p = good.clone();
            let at = (next() as usize) % p.len();
            p[at] ^= 1 << (next() % 8);
            p
        };
        socket.send_to(&packet, target).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buffer) {
            assert!(len >= 12, "round {round}: a reply shorter than a header");
            assert_eq!(buffer[2] & 0x80, 0x80, "round {round}: not a response");
        }
    }
    assert_eq!(
        short(port, &["web.service.consul"]),
        ["10.1.0.1", "10.1.0.2"]
    );
    drop(agent);
}

#[test]
fn names_outside_the_domain_go_to_the_recursors() {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let upstream_port = free_port(ip);
    let upstream_flag = format!("-dns-port={upstream_port}");
    let upstream = Agent::dev("upstream", &[&upstream_flag]);
    let port = free_port(ip);
    let dir = test_dir("dns-recursor");
    let file = dir.join("r.json");
    // A silent recursor first (nothing listens on it), then the upstream agent.
    let silent = free_port(ip);
    std::fs::write(
        &file,
        format!(
            r#"{{"recursors": ["127.0.0.1:{silent}", "127.0.0.1:{upstream_port}"],
                "dns_config": {{"recursor_timeout": "300ms"}}}}"#
        ),
    )
    .unwrap();
    let dns_port = format!("-dns-port={port}");
    let config = format!("-config-file={}", file.display());
    let agent = Agent::dev("downstream", &[&dns_port, &config, "-domain=cairn"]);
    // In its own domain, with RA set now that recursors exist.
    let own = dig(port, &["downstream.node.cairn"]);
    assert_eq!(status(&own), "NOERROR", "{own}");
    assert!(flags(&own).contains("ra"), "{own}");
    // `.consul` is outside this agent's domain: answered by the upstream agent.
    assert_eq!(short(port, &["upstream.node.consul"]), ["127.0.0.1"]);
    drop(agent);
    drop(upstream);
}
