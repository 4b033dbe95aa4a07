//! DNS core tests: every query form, record type and rule, checked on the wire (responses are parsed back with
//! simple-dns and rendered as `name ttl TYPE data` lines).

use super::*;
use crate::fsm::{
    CheckStatus, Command, Fsm, HealthCheck, Outcome as FsmOutcome, RegisterRequest, Service,
};
use simple_dns::rdata::RData as Rd;
use simple_dns::{Packet, PacketFlag, RCODE};

pub(super) const SERIAL: u32 = 1_700_000_000;

/// A catalog under construction.
pub(super) struct Catalog {
    fsm: Fsm,
    index: u64,
}

impl Catalog {
    pub(super) fn new() -> Catalog {
        Catalog {
            fsm: Fsm::new(),
            index: 0,
        }
    }

    pub(super) fn register(&mut self, request: RegisterRequest) {
        self.index += 1;
        let outcome = self.fsm.apply(
            self.index,
            &Command::CatalogRegister {
                now_ms: 1,
                request: Box::new(request),
            },
        );
        assert_eq!(outcome, FsmOutcome::Bool(true));
    }

    pub(super) fn node(&mut self, node: &str, address: &str, meta: &[(&str, &str)]) {
        self.register(RegisterRequest {
            node: node.to_string(),
            address: address.to_string(),
            datacenter: "dc1".to_string(),
            node_meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..RegisterRequest::default()
        });
    }

    /// An instance `id` of `name` on `node` (which must exist) with one service check in `status`.
    pub(super) fn instance(
        &mut self,
        node: &str,
        id: &str,
        name: &str,
        address: &str,
        tags: &[&str],
        status: CheckStatus,
    ) {
        let existing = self.fsm.state().node(node).cloned().expect("node exists");
        self.register(RegisterRequest {
            node: node.to_string(),
            address: existing.address.clone(),
            datacenter: "dc1".to_string(),
            node_meta: existing.meta.clone(),
            service: Some(Service {
                id: id.to_string(),
                service: name.to_string(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                address: address.to_string(),
                port: 8080,
                ..Service::default()
            }),
            checks: vec![HealthCheck {
                check_id: format!("check-{id}"),
                name: format!("check {id}"),
                status,
                service_id: id.to_string(),
                ..HealthCheck::default()
            }],
            ..RegisterRequest::default()
        });
    }

    pub(super) fn node_check(&mut self, node: &str, status: CheckStatus) {
        let existing = self.fsm.state().node(node).cloned().expect("node exists");
        self.register(RegisterRequest {
            node: node.to_string(),
            address: existing.address.clone(),
            datacenter: "dc1".to_string(),
            node_meta: existing.meta.clone(),
            checks: vec![HealthCheck {
                check_id: "serfHealth".to_string(),
                name: "Serf Health Status".to_string(),
                status,
                ..HealthCheck::default()
            }],
            ..RegisterRequest::default()
        });
    }

    pub(super) fn state(&self) -> State {
        self.fsm.state()
    }
}

/// The test catalog: web on three nodes (one warning, one critical), a tagged db, IPv6 and hostname nodes,
/// the consul service on server1.
pub(super) fn catalog() -> State {
    let mut c = Catalog::new();
    c.node("server1", "10.0.0.1", &[]);
    c.instance("server1", "consul", "consul", "", &[], CheckStatus::Passing);
    c.node(
        "node1",
        "10.0.0.11",
        &[("rack", "r1"), ("rfc1035-note", "plain")],
    );
    c.node("node2", "10.0.0.12", &[]);
    c.node("node3", "10.0.0.13", &[]);
    c.node("v6", "2001:db8::5", &[]);
    c.node("named", "host.example.com", &[]);
    c.instance(
        "node1",
        "web1",
        "web",
        "",
        &["primary", "v1"],
        CheckStatus::Passing,
    );
    c.instance("node2", "web2", "web", "", &["v1"], CheckStatus::Warning);
    c.instance("node3", "web3", "web", "", &["v1"], CheckStatus::Critical);
    c.instance(
        "node1",
        "db1",
        "db",
        "192.168.1.7",
        &["primary"],
        CheckStatus::Passing,
    );
    c.instance("v6", "api1", "api", "", &[], CheckStatus::Passing);
    c.instance("named", "ext1", "ext", "", &[], CheckStatus::Passing);
    c.node("maint", "10.0.0.20", &[]);
    c.instance("maint", "cache1", "cache", "", &[], CheckStatus::Passing);
    c.node_check("maint", CheckStatus::Critical);
    c.state()
}

pub(super) fn query_bytes(name: &str, qtype: u16, edns_bytes: Option<u16>) -> Vec<u8> {
    let mut out = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    if edns_bytes.is_some() {
        out[11] = 1;
    }
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns_bytes {
        out.push(0);
        out.extend_from_slice(&41u16.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    out
}

pub(super) const A: u16 = 1;
pub(super) const NS: u16 = 2;
pub(super) const CNAME: u16 = 5;
pub(super) const SOA: u16 = 6;
pub(super) const PTR: u16 = 12;
pub(super) const TXT: u16 = 16;
pub(super) const AAAA: u16 = 28;
pub(super) const SRV: u16 = 33;
pub(super) const AXFR: u16 = 252;
pub(super) const ANY: u16 = 255;

/// A parsed response, rendered.
#[derive(Debug)]
pub(super) struct Resp {
    pub(super) rcode: RCODE,
    pub(super) aa: bool,
    pub(super) tc: bool,
    pub(super) ra: bool,
    pub(super) questions: usize,
    pub(super) answer: Vec<String>,
    pub(super) authority: Vec<String>,
    pub(super) additional: Vec<String>,
    pub(super) opt_bytes: Option<u16>,
    pub(super) len: usize,
}

pub(super) fn render(rr: &simple_dns::ResourceRecord<'_>) -> String {
    let data = match &rr.rdata {
        Rd::A(a) => format!("A {}", core::net::Ipv4Addr::from(a.address)),
        Rd::AAAA(a) => format!("AAAA {}", core::net::Ipv6Addr::from(a.address)),
        Rd::CNAME(c) => format!("CNAME {}", c.0),
        Rd::PTR(p) => format!("PTR {}", p.0),
        Rd::NS(n) => format!("NS {}", n.0),
        Rd::SRV(s) => format!("SRV {} {} {} {}", s.priority, s.weight, s.port, s.target),
        Rd::TXT(t) => {
            let strings: Vec<String> = t
                .iter_raw()
                .map(|(k, v)| match v {
                    Some(v) => format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    ),
                    None => String::from_utf8_lossy(k).to_string(),
                })
                .collect();
            format!("TXT {}", strings.join(" "))
        }
        Rd::SOA(s) => format!(
            "SOA {} {} {} {} {} {} {}",
            s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
        ),
        other => format!("{other:?}"),
    };
    format!("{} {} {data}", rr.name, rr.ttl)
}

pub(super) fn parse(bytes: &[u8]) -> Resp {
    let packet = Packet::parse(bytes).expect("a well-formed response");
    Resp {
        rcode: packet.rcode(),
        aa: packet.has_flags(PacketFlag::AUTHORITATIVE_ANSWER),
        tc: packet.has_flags(PacketFlag::TRUNCATION),
        ra: packet.has_flags(PacketFlag::RECURSION_AVAILABLE),
        questions: packet.questions.len(),
        answer: packet.answers.iter().map(render).collect(),
        authority: packet.name_servers.iter().map(render).collect(),
        additional: packet.additional_records.iter().map(render).collect(),
        opt_bytes: packet.opt().map(|o| o.udp_packet_size),
        len: bytes.len(),
    }
}

pub(super) fn ask_with(
    config: &DnsConfig,
    state: &State,
    name: &str,
    qtype: u16,
    edns: Option<u16>,
    transport: Transport,
) -> Resp {
    let mut rng = Rng::new(7);
    let packet = query_bytes(name, qtype, edns);
    match respond(config, state, &packet, transport, SERIAL, &mut rng) {
        Outcome::Reply(bytes) => parse(&bytes),
        other => panic!("{name}: expected a reply, got {other:?}"),
    }
}

pub(super) fn ask(state: &State, name: &str, qtype: u16) -> Resp {
    ask_with(
        &DnsConfig::default(),
        state,
        name,
        qtype,
        None,
        Transport::Udp,
    )
}

pub(super) fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

pub(super) const SOA_LINE: &str =
    "consul 0 SOA ns.consul hostmaster.consul 1700000000 3600 600 86400 0";

#[test]
fn service_a_answers_healthy_and_warning_instances_not_critical() {
    let state = catalog();
    let r = ask(&state, "web.service.consul", A);
    assert_eq!(r.rcode, RCODE::NoError);
    assert!(r.aa);
    assert!(!r.ra);
    assert_eq!(r.questions, 1);
    assert_eq!(
        sorted(r.answer),
        vec![
            "web.service.consul 0 A 10.0.0.11",
            "web.service.consul 0 A 10.0.0.12"
        ]
    );
}

#[test]
fn only_passing_drops_warning_instances() {
    let state = catalog();
    let config = DnsConfig {
        only_passing: true,
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "web.service.consul",
        A,
        None,
        Transport::Udp,
    );
    assert_eq!(r.answer, vec!["web.service.consul 0 A 10.0.0.11"]);
}

#[test]
fn a_critical_node_check_drops_the_instance_and_no_healthy_instance_is_nxdomain() {
    let state = catalog();
    let r = ask(&state, "cache.service.consul", A);
    assert_eq!(r.rcode, RCODE::NameError);
    assert!(r.answer.is_empty());
    assert_eq!(r.authority, vec![SOA_LINE]);
}

#[test]
fn unknown_names_are_nxdomain_with_soa() {
    let state = catalog();
    for name in [
        "nope.service.consul",
        "nope.node.consul",
        "foo.bar.consul",
        "web.service.dc1.extra.consul",
        "x.query.consul",
        "web.service.dc1.ns.consul",
        "zz.addr.consul",
    ] {
        let r = ask(&state, name, A);
        assert_eq!(r.rcode, RCODE::NameError, "{name}");
        assert_eq!(r.authority, vec![SOA_LINE], "{name}");
    }
}

#[test]
fn tags_filter_in_the_standard_and_rfc2782_forms() {
    let state = catalog();
    let r = ask(&state, "primary.web.service.consul", A);
    assert_eq!(r.answer, vec!["primary.web.service.consul 0 A 10.0.0.11"]);
    let r = ask(&state, "PRIMARY.Web.Service.Consul", A);
    assert_eq!(r.answer, vec!["PRIMARY.Web.Service.Consul 0 A 10.0.0.11"]);
    let r = ask(&state, "_web._primary.service.consul", SRV);
    assert_eq!(r.answer.len(), 1);
    assert!(
        r.answer[0].contains("node1.node.dc1.consul"),
        "{:?}",
        r.answer
    );
    let r = ask(&state, "_web._tcp.service.consul", SRV);
    assert_eq!(r.answer.len(), 2);
    // `.service` is optional in the RFC 2782 form of an SRV query.
    let r = ask(&state, "_web._tcp.consul", SRV);
    assert_eq!(r.answer.len(), 2);
    let r = ask(&state, "_web._v1.dc1.consul", SRV);
    assert_eq!(r.answer.len(), 2);
    let r = ask(&state, "nosuchtag.web.service.consul", A);
    assert_eq!(r.rcode, RCODE::NameError);
}

#[test]
fn srv_answers_carry_weights_ports_targets_and_additional_records() {
    let state = catalog();
    let r = ask(&state, "web.service.consul", SRV);
    assert_eq!(
        sorted(r.answer),
        vec![
            "web.service.consul 0 SRV 1 1 8080 node1.node.dc1.consul",
            "web.service.consul 0 SRV 1 1 8080 node2.node.dc1.consul",
        ]
    );
    assert_eq!(
        sorted(r.additional),
        vec![
            "node1.node.dc1.consul 0 A 10.0.0.11",
            "node1.node.dc1.consul 0 TXT plain",
            "node1.node.dc1.consul 0 TXT rack=r1",
            "node2.node.dc1.consul 0 A 10.0.0.12",
        ]
    );
    // A service address becomes an .addr target with its own A record.
    let r = ask(&state, "db.service.consul", SRV);
    assert_eq!(
        r.answer,
        vec!["db.service.consul 0 SRV 1 1 8080 c0a80107.addr.dc1.consul"]
    );
    assert_eq!(
        r.additional,
        vec!["c0a80107.addr.dc1.consul 0 A 192.168.1.7"]
    );
    // With enable_additional_node_meta_txt off, no TXT.
    let config = DnsConfig {
        node_meta_txt: false,
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "primary.web.service.consul",
        SRV,
        None,
        Transport::Udp,
    );
    assert_eq!(r.additional, vec!["node1.node.dc1.consul 0 A 10.0.0.11"]);
}

#[test]
fn srv_weight_follows_health() {
    let mut c = Catalog::new();
    c.node("n1", "10.1.0.1", &[]);
    c.node("n2", "10.1.0.2", &[]);
    for (node, status) in [("n1", CheckStatus::Passing), ("n2", CheckStatus::Warning)] {
        c.register(RegisterRequest {
            node: node.to_string(),
            address: c.fsm.state().node(node).unwrap().address.clone(),
            service: Some(Service {
                id: "w".to_string(),
                service: "w".to_string(),
                port: 80,
                weights: crate::fsm::Weights {
                    passing: 10,
                    warning: 2,
                },
                ..Service::default()
            }),
            checks: vec![HealthCheck {
                check_id: "c".to_string(),
                status,
                service_id: "w".to_string(),
                ..HealthCheck::default()
            }],
            ..RegisterRequest::default()
        });
    }
    let r = ask(&c.state(), "w.service.consul", SRV);
    assert_eq!(
        sorted(r.answer),
        vec![
            "w.service.consul 0 SRV 1 10 80 n1.node.dc1.consul",
            "w.service.consul 0 SRV 1 2 80 n2.node.dc1.consul",
        ]
    );
}

#[test]
fn node_lookup_gives_address_and_meta_txt() {
    let state = catalog();
    let r = ask(&state, "node1.node.consul", A);
    assert_eq!(r.answer, vec!["node1.node.consul 0 A 10.0.0.11"]);
    let r = ask(&state, "node1.node.consul", TXT);
    assert_eq!(
        sorted(r.answer),
        vec![
            "node1.node.consul 0 TXT plain",
            "node1.node.consul 0 TXT rack=r1"
        ]
    );
    let r = ask(&state, "node1.node.consul", ANY);
    assert_eq!(r.answer.len(), 3);
    // Case-insensitive, explicit and bare datacenter.
    for name in [
        "NODE1.node.consul",
        "node1.node.dc1.consul",
        "node1.node.dc1.dc.consul",
    ] {
        let r = ask(&state, name, A);
        assert_eq!(r.rcode, RCODE::NoError, "{name}");
        assert_eq!(r.answer.len(), 1, "{name}");
    }
}

#[test]
fn another_datacenter_is_nxdomain() {
    let state = catalog();
    for name in [
        "node1.node.dc2.consul",
        "web.service.dc2.consul",
        "web.service.dc2.dc.consul",
        "web.service.p1.peer.consul",
    ] {
        let r = ask(&state, name, A);
        assert_eq!(r.rcode, RCODE::NameError, "{name}");
        assert_eq!(r.authority, vec![SOA_LINE], "{name}");
    }
}

#[test]
fn ipv6_and_hostname_addresses() {
    let state = catalog();
    let r = ask(&state, "v6.node.consul", AAAA);
    assert_eq!(r.answer, vec!["v6.node.consul 0 AAAA 2001:db8::5"]);
    let r = ask(&state, "api.service.consul", AAAA);
    assert_eq!(r.answer, vec!["api.service.consul 0 AAAA 2001:db8::5"]);
    // An A query for an IPv6-only name: NOERROR, no answer, SOA.
    let r = ask(&state, "v6.node.consul", A);
    assert_eq!(r.rcode, RCODE::NoError);
    assert!(r.answer.is_empty());
    assert_eq!(r.authority, vec![SOA_LINE]);
    let r = ask(&state, "named.node.consul", A);
    assert_eq!(r.answer, vec!["named.node.consul 0 CNAME host.example.com"]);
    let r = ask(&state, "ext.service.consul", A);
    assert_eq!(
        r.answer,
        vec!["ext.service.consul 0 CNAME host.example.com"]
    );
    let r = ask(&state, "ext.service.consul", CNAME);
    assert_eq!(
        r.answer,
        vec!["ext.service.consul 0 CNAME host.example.com"]
    );
}

#[test]
fn addr_names_decode_hex_addresses() {
    let state = catalog();
    let r = ask(&state, "c0a80107.addr.dc1.consul", A);
    assert_eq!(r.answer, vec!["c0a80107.addr.dc1.consul 0 A 192.168.1.7"]);
    let r = ask(&state, "20010db8000000000000000000000005.addr.consul", AAAA);
    assert_eq!(
        r.answer,
        vec!["20010db8000000000000000000000005.addr.consul 0 AAAA 2001:db8::5"]
    );
    let r = ask(&state, "c0a80107.addr.consul", AAAA);
    assert_eq!(r.rcode, RCODE::NoError);
    assert!(r.answer.is_empty());
    let r = ask(&state, "c0a8017.addr.consul", A);
    assert_eq!(r.rcode, RCODE::NameError);
}

#[test]
fn ptr_answers_nodes_then_service_addresses() {
    let state = catalog();
    let r = ask(&state, "11.0.0.10.in-addr.arpa", PTR);
    assert_eq!(
        r.answer,
        vec!["11.0.0.10.in-addr.arpa 0 PTR node1.node.dc1.consul"]
    );
    let r = ask(&state, "7.1.168.192.in-addr.arpa", PTR);
    assert_eq!(
        r.answer,
        vec!["7.1.168.192.in-addr.arpa 0 PTR db.service.dc1.consul"]
    );
    let v6 = query::reverse_name("2001:db8::5".parse().unwrap());
    let r = ask(&state, &v6, PTR);
    assert_eq!(r.answer, vec![format!("{v6} 0 PTR v6.node.dc1.consul")]);
    // PTR answers use the primary domain even with an alt domain.
    let config = DnsConfig {
        alt_domain: Some("cairn.".to_string()),
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "11.0.0.10.in-addr.arpa",
        PTR,
        None,
        Transport::Udp,
    );
    assert_eq!(
        r.answer,
        vec!["11.0.0.10.in-addr.arpa 0 PTR node1.node.dc1.consul"]
    );
    let r = ask(&state, "99.0.0.10.in-addr.arpa", PTR);
    assert_eq!(r.rcode, RCODE::NameError);
}

#[test]
fn alt_domain_answers_in_the_domain_asked() {
    let state = catalog();
    let config = DnsConfig {
        alt_domain: Some("cairn.".to_string()),
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "web.service.cairn",
        SRV,
        None,
        Transport::Udp,
    );
    assert_eq!(r.answer.len(), 2);
    assert!(r.answer[0].contains(".node.dc1.cairn"), "{:?}", r.answer);
    let r = ask_with(&config, &state, "nope.node.cairn", A, None, Transport::Udp);
    assert_eq!(
        r.authority,
        vec!["cairn 0 SOA ns.cairn hostmaster.cairn 1700000000 3600 600 86400 0"]
    );
}

#[test]
fn soa_and_ns_queries() {
    let state = catalog();
    let r = ask(&state, "consul", SOA);
    assert_eq!(r.answer, vec![SOA_LINE]);
    assert_eq!(r.authority, vec!["consul 0 NS server1.node.dc1.consul"]);
    assert_eq!(r.additional, vec!["server1.node.dc1.consul 0 A 10.0.0.1"]);
    let r = ask(&state, "consul", NS);
    assert_eq!(r.answer, vec!["consul 0 NS server1.node.dc1.consul"]);
    assert_eq!(r.additional, vec!["server1.node.dc1.consul 0 A 10.0.0.1"]);
    // The apex exists: other types are NODATA.
    let r = ask(&state, "consul", A);
    assert_eq!(r.rcode, RCODE::NoError);
    assert_eq!(r.authority, vec![SOA_LINE]);
    // SOA fields and the negative TTL come from dns_config.soa.
    let config = DnsConfig {
        soa: Soa {
            refresh_s: 1,
            retry_s: 2,
            expire_s: 3,
            min_ttl_s: 4,
        },
        ..DnsConfig::default()
    };
    let r = ask_with(&config, &state, "nope.node.consul", A, None, Transport::Udp);
    assert_eq!(
        r.authority,
        vec!["consul 4 SOA ns.consul hostmaster.consul 1700000000 1 2 3 4"]
    );
}

#[test]
fn ttls_for_nodes_and_services_with_prefixes() {
    let state = catalog();
    let mut service_ttl = ServiceTtls::default();
    service_ttl.insert("*", 5);
    service_ttl.insert("we*", 7);
    service_ttl.insert("w*", 6);
    service_ttl.insert("db", 9);
    let config = DnsConfig {
        node_ttl_s: 30,
        service_ttl,
        ..DnsConfig::default()
    };
    let get = |name: &str, qtype: u16| ask_with(&config, &state, name, qtype, None, Transport::Udp);
    assert!(get("node1.node.consul", A).answer[0].starts_with("node1.node.consul 30 A"));
    assert!(get("web.service.consul", A).answer[0].starts_with("web.service.consul 7 A"));
    assert!(get("db.service.consul", A).answer[0].starts_with("db.service.consul 9 A"));
    assert!(get("api.service.consul", AAAA).answer[0].starts_with("api.service.consul 5 AAAA"));
    let r = get("db.service.consul", SRV);
    assert!(r.answer[0].starts_with("db.service.consul 9 SRV"));
    assert!(r.additional[0].starts_with("c0a80107.addr.dc1.consul 30 A"));
    assert!(get("c0a80107.addr.consul", A).answer[0].contains(" 30 A"));
}

#[test]
fn zone_transfers_are_not_implemented() {
    let state = catalog();
    let r = ask(&state, "consul", AXFR);
    assert_eq!(r.rcode, RCODE::NotImplemented);
}

#[test]
fn outside_the_domain_is_servfail_without_recursors_and_recursed_with_them() {
    let state = catalog();
    let r = ask(&state, "example.com", A);
    assert_eq!(r.rcode, RCODE::ServerFailure);
    assert!(!r.ra);
    let config = DnsConfig {
        recursion: true,
        ..DnsConfig::default()
    };
    let mut rng = Rng::new(1);
    let packet = query_bytes("example.com", A, None);
    assert_eq!(
        respond(&config, &state, &packet, Transport::Udp, SERIAL, &mut rng),
        Outcome::Recurse
    );
    let unknown_ptr = query_bytes("1.2.3.4.in-addr.arpa", PTR, None);
    assert_eq!(
        respond(
            &config,
            &state,
            &unknown_ptr,
            Transport::Udp,
            SERIAL,
            &mut rng
        ),
        Outcome::Recurse
    );
    // RA is set on our own answers once recursors exist.
    let r = ask_with(
        &config,
        &state,
        "web.service.consul",
        A,
        None,
        Transport::Udp,
    );
    assert!(r.ra);
    let failed = servfail(&packet, Transport::Udp, true).unwrap();
    let r = parse(&failed);
    assert_eq!(r.rcode, RCODE::ServerFailure);
    assert!(r.ra);
    assert_eq!(r.questions, 1);
}

#[test]
fn recursor_order_is_sequential_or_a_seeded_permutation() {
    let mut rng = Rng::new(3);
    assert_eq!(
        recursor_order(RecursorStrategy::Sequential, 3, &mut rng),
        vec![0, 1, 2]
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let mut order = recursor_order(RecursorStrategy::Random, 3, &mut rng);
        seen.insert(order.clone());
        order.sort();
        assert_eq!(order, vec![0, 1, 2]);
    }
    assert!(seen.len() > 1);
    assert!(is_reply_to(
        &[1, 2, 0, 0],
        &[1, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ));
    assert!(!is_reply_to(
        &[1, 2, 0, 0],
        &[1, 3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ));
}

#[test]
fn answers_without_the_catalog_only_where_no_lookup_is_needed() {
    let state = catalog();
    let plain = DnsConfig::default();
    let recursing = DnsConfig {
        recursion: true,
        ..DnsConfig::default()
    };
    let local = |config: &DnsConfig, name: &str, qtype: u16| {
        answer_without_state(config, &query_bytes(name, qtype, None), Transport::Udp)
    };
    // Lookups in the domain and reverse names need the catalog.
    for (name, qtype) in [
        ("web.service.consul", A),
        ("_web._tcp.service.consul", SRV),
        ("node1.node.consul", A),
        ("nowhere.service.consul", A),
        ("1.2.3.4.in-addr.arpa", PTR),
    ] {
        assert_eq!(local(&plain, name, qtype), None, "{name}");
        assert_eq!(local(&recursing, name, qtype), None, "{name}");
    }
    // Outside the domain: SERVFAIL without recursors (as a server answers), recursed with them.
    let packet = query_bytes("example.com", A, None);
    let mut rng = Rng::new(3);
    let server = respond(&plain, &state, &packet, Transport::Udp, SERIAL, &mut rng);
    assert_eq!(local(&plain, "example.com", A), Some(server.clone()));
    match server {
        Outcome::Reply(bytes) => assert_eq!(parse(&bytes).rcode, RCODE::ServerFailure),
        other => panic!("{other:?}"),
    }
    assert_eq!(local(&recursing, "example.com", A), Some(Outcome::Recurse));
    // Zone transfers, bad packets and responses.
    match local(&plain, "consul", AXFR) {
        Some(Outcome::Reply(bytes)) => assert_eq!(parse(&bytes).rcode, RCODE::NotImplemented),
        other => panic!("{other:?}"),
    }
    let no_question = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    match answer_without_state(&plain, &no_question, Transport::Tcp) {
        Some(Outcome::Reply(bytes)) => assert_eq!(bytes[3] & 0x0f, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answer_without_state(&plain, &[1, 2], Transport::Udp),
        Some(Outcome::Drop)
    );
}
