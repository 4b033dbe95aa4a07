//! DNS tests of sizes and limits (answer limits, truncation, EDNS, TCP), malformed and fuzzed packets, and the
//! per-shard instance cache.

use super::*;
use crate::fsm::CheckStatus;
use simple_dns::Packet;
use std::collections::BTreeMap;

use super::tests::*;

/// `count` passing instances of `many` on nodes m0..m<count>.
fn many(count: usize) -> State {
    let mut c = Catalog::new();
    for i in 0..count {
        let node = format!("m{i}");
        c.node(
            &node,
            &format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            &[],
        );
        c.instance(&node, "many", "many", "", &[], CheckStatus::Passing);
    }
    c.state()
}

#[test]
fn udp_without_edns_gets_the_answer_limit_and_no_tc_unless_enabled() {
    let state = many(20);
    let r = ask(&state, "many.service.consul", A);
    assert_eq!(r.answer.len(), 3);
    assert!(!r.tc);
    assert!(r.len <= 512);
    let config = DnsConfig {
        enable_truncate: true,
        udp_answer_limit: 5,
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "many.service.consul",
        A,
        None,
        Transport::Udp,
    );
    assert_eq!(r.answer.len(), 5);
    assert!(r.tc);
    // The limit is at most 8.
    let config = DnsConfig {
        udp_answer_limit: 100,
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "many.service.consul",
        A,
        None,
        Transport::Udp,
    );
    assert_eq!(r.answer.len(), 8);
}

#[test]
fn udp_srv_without_edns_fits_512_bytes() {
    let state = many(20);
    let r = ask(&state, "many.service.consul", SRV);
    assert!(r.len <= 512, "{}", r.len);
    assert!(!r.answer.is_empty() && r.answer.len() <= 3);
    // Every answer keeps its extra record.
    assert_eq!(r.additional.len(), r.answer.len());
}

#[test]
fn edns_buffer_size_and_tcp_carry_more_answers() {
    let state = many(200);
    let r = ask_with(
        &DnsConfig::default(),
        &state,
        "many.service.consul",
        A,
        Some(4096),
        Transport::Udp,
    );
    assert!(r.len <= 4096);
    assert!(r.answer.len() > 100, "{}", r.answer.len());
    assert_eq!(r.opt_bytes, Some(4096));
    let r = ask_with(
        &DnsConfig::default(),
        &state,
        "many.service.consul",
        A,
        Some(1232),
        Transport::Udp,
    );
    assert!(r.len <= 1232);
    assert!(r.answer.len() < 200 && r.answer.len() > 3);
    let r = ask_with(
        &DnsConfig::default(),
        &state,
        "many.service.consul",
        SRV,
        None,
        Transport::Tcp,
    );
    assert_eq!(r.answer.len(), 200);
    assert_eq!(r.additional.len(), 200);
}

#[test]
fn a_thousand_instances_over_tcp_fit_64k() {
    let state = many(1000);
    let r = ask_with(
        &DnsConfig::default(),
        &state,
        "many.service.consul",
        SRV,
        None,
        Transport::Tcp,
    );
    assert!(r.len <= 65_535);
    assert!(r.answer.len() > 500, "{}", r.answer.len());
    let r = ask_with(
        &DnsConfig::default(),
        &state,
        "many.service.consul",
        A,
        None,
        Transport::Tcp,
    );
    assert_eq!(r.answer.len(), 1000);
}

#[test]
fn a_record_limit_caps_address_answers_not_srv() {
    let state = many(20);
    let config = DnsConfig {
        a_record_limit: 2,
        ..DnsConfig::default()
    };
    let r = ask_with(
        &config,
        &state,
        "many.service.consul",
        A,
        None,
        Transport::Tcp,
    );
    assert_eq!(r.answer.len(), 2);
    let r = ask_with(
        &config,
        &state,
        "many.service.consul",
        SRV,
        None,
        Transport::Tcp,
    );
    assert_eq!(r.answer.len(), 20);
}

#[test]
fn answers_are_shuffled_by_the_seeded_generator() {
    let state = many(10);
    let packet = query_bytes("many.service.consul", A, Some(4096));
    let config = DnsConfig::default();
    let run = |seed: u64| {
        let mut rng = Rng::new(seed);
        match respond(&config, &state, &packet, Transport::Udp, SERIAL, &mut rng) {
            Outcome::Reply(bytes) => parse(&bytes).answer,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(run(1), run(1));
    let orders: std::collections::BTreeSet<Vec<String>> = (0..10).map(run).collect();
    assert!(orders.len() > 1);
}

#[test]
fn unknown_query_types_are_nodata_and_ecs_is_echoed_with_scope_zero() {
    let state = catalog();
    // Type 99 (SPF) is unknown to simple-dns: read the header by hand. NOERROR, QD 1, AN 0, NS 1 (SOA).
    let mut rng = Rng::new(1);
    let packet = query_bytes("web.service.consul", 99, None);
    let Outcome::Reply(bytes) = respond(
        &DnsConfig::default(),
        &state,
        &packet,
        Transport::Udp,
        SERIAL,
        &mut rng,
    ) else {
        panic!("no reply");
    };
    assert_eq!(bytes[3] & 0x0f, 0);
    assert_eq!(&bytes[4..10], &[0, 1, 0, 0, 0, 1]);
    // ECS: family 1, source /24, scope 24, 10.0.0.
    let mut packet = query_bytes("web.service.consul", A, None);
    packet[11] = 1;
    packet.extend_from_slice(&[
        0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 24, 10, 0, 0,
    ]);
    let mut rng = Rng::new(1);
    let Outcome::Reply(bytes) = respond(
        &DnsConfig::default(),
        &state,
        &packet,
        Transport::Udp,
        SERIAL,
        &mut rng,
    ) else {
        panic!("no reply");
    };
    let parsed = Packet::parse(&bytes).unwrap();
    let opt = parsed.opt().expect("OPT echoed");
    assert_eq!(opt.opt_codes[0].code, 8);
    assert_eq!(&opt.opt_codes[0].data[..], &[0, 1, 24, 0, 10, 0, 0]);
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let state = catalog();
    let config = DnsConfig::default();
    let mut rng = Rng::new(1);
    let mut run =
        |packet: &[u8]| respond(&config, &state, packet, Transport::Udp, SERIAL, &mut rng);
    assert_eq!(run(&[]), Outcome::Drop);
    assert_eq!(run(&[1, 2, 3]), Outcome::Drop);
    // A response is never answered.
    let mut response = query_bytes("web.service.consul", A, None);
    response[2] |= 0x80;
    assert_eq!(run(&response), Outcome::Drop);
    let formerr = |outcome: Outcome| match outcome {
        Outcome::Reply(bytes) => bytes.len() == 12 && bytes[3] & 0x0f == 1 && bytes[2] & 0x80 != 0,
        _ => false,
    };
    // No question, two questions, a truncated name, trailing garbage, a count the packet cannot hold.
    assert!(formerr(run(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
    let mut two = query_bytes("web.service.consul", A, None);
    two[5] = 2;
    assert!(formerr(run(&two)));
    let good = query_bytes("web.service.consul", A, None);
    assert!(formerr(run(&good[..good.len() - 6])));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(formerr(run(&trailing)));
    let mut huge = good.clone();
    huge[10] = 0xff;
    huge[11] = 0xff;
    assert!(formerr(run(&huge)));
    // A compression pointer in the question.
    let mut pointer = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    assert!(formerr(run(&pointer)));
    pointer[12] = 0x40;
    assert!(formerr(run(&pointer)));
    // Another opcode: NOTIMP.
    let mut notify = good.clone();
    notify[2] = 0x20;
    match run(&notify) {
        Outcome::Reply(bytes) => assert_eq!(bytes[3] & 0x0f, 4),
        other => panic!("{other:?}"),
    }
}

/// Whether the question of `packet` has a type or class simple-dns cannot parse back (the reply then echoes
/// it and is valid DNS, but simple-dns refuses it).
fn unknown_to_simple_dns(packet: &[u8]) -> bool {
    match wire::read_query(packet) {
        Ok(q) => {
            let code = match q.qtype {
                wire::QType::Other(code) => code,
                _ => 1,
            };
            simple_dns::QTYPE::try_from(code).is_err()
                || simple_dns::QCLASS::try_from(q.qclass).is_err()
        }
        Err(_) => false,
    }
}

/// Seeded random and bit-flipped packets: the responder never panics, and every reply it sends parses.
#[test]
fn fuzz_random_and_bit_flipped_packets() {
    let seeds: u64 = std::env::var("DNS_FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let state = catalog();
    let config = DnsConfig {
        alt_domain: Some("cairn.".to_string()),
        ..DnsConfig::default()
    };
    let seeds_packets: Vec<Vec<u8>> = [
        ("web.service.consul", SRV, Some(1232)),
        ("_web._tcp.service.dc1.consul", SRV, None),
        ("node1.node.consul", ANY, Some(4096)),
        ("11.0.0.10.in-addr.arpa", PTR, None),
        ("c0a80107.addr.cairn", A, Some(512)),
    ]
    .iter()
    .map(|(n, t, e)| query_bytes(n, *t, *e))
    .collect();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for seed in 0..seeds {
        let mut rng = Rng::new(seed);
        let packet: Vec<u8> = if seed % 3 == 0 {
            let len = rng.range(0, 600) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut p = seeds_packets[(seed as usize) % seeds_packets.len()].clone();
            let flips = rng.range(1, 8);
            for _ in 0..flips {
                let at = rng.range(0, p.len() as u64) as usize;
                p[at] ^= 1 << rng.range(0, 8);
            }
            if rng.range(0, 4) == 0 {
                p.truncate(rng.range(0, p.len() as u64) as usize);
            }
            p
        };
        let transport = if seed % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let outcome = respond(&config, &state, &packet, transport, SERIAL, &mut rng);
        // What a client agent answers without the catalog is what a server answers.
        if let Some(local) = answer_without_state(&config, &packet, transport) {
            assert_eq!(local, outcome, "DNS_FUZZ seed {seed}");
        }
        match outcome {
            Outcome::Reply(bytes) => {
                assert!(bytes.len() >= 12, "DNS_FUZZ seed {seed}");
                assert!(bytes.len() <= 65_535, "DNS_FUZZ seed {seed}");
                assert!(
                    Packet::parse(&bytes).is_ok()
                        || bytes.len() == 12
                        || unknown_to_simple_dns(&packet),
                    "DNS_FUZZ seed {seed}: reply does not parse: {:?}",
                    Packet::parse(&bytes).err()
                );
                *outcomes.entry("reply").or_default() += 1;
            }
            Outcome::Drop => *outcomes.entry("drop").or_default() += 1,
            Outcome::Recurse => *outcomes.entry("recurse").or_default() += 1,
        }
    }
    assert!(
        outcomes.get("reply").copied().unwrap_or(0) > seeds / 2,
        "{outcomes:?}"
    );
}

/// Asks through a cache kept across calls; the answers sorted (their order is random).
fn ask_cached(
    state: &State,
    cache: &mut ServiceCache,
    rng: &mut Rng,
    name: &str,
    qtype: u16,
) -> Resp {
    let packet = query_bytes(name, qtype, Some(4096));
    let config = DnsConfig::default();
    match respond_cached(&config, state, &packet, Transport::Udp, SERIAL, rng, cache) {
        Outcome::Reply(bytes) => {
            let mut r = parse(&bytes);
            r.answer.sort();
            r.additional.sort();
            r
        }
        other => panic!("{name}: expected a reply, got {other:?}"),
    }
}

#[test]
fn a_kept_cache_answers_as_a_fresh_read_and_follows_catalog_changes() {
    let mut c = Catalog::new();
    for i in 0..6 {
        let node = format!("n{i}");
        c.node(&node, &format!("10.9.0.{i}"), &[]);
        c.instance(&node, "api", "api", "", &["v1"], CheckStatus::Passing);
    }
    let mut cache = ServiceCache::new();
    let mut rng = Rng::new(5);
    let fresh = |state: &State, name: &str, qtype: u16| {
        let mut r = ask_with(
            &DnsConfig::default(),
            state,
            name,
            qtype,
            Some(4096),
            Transport::Udp,
        );
        r.answer.sort();
        r.additional.sort();
        r
    };
    let check = |state: &State, cache: &mut ServiceCache, rng: &mut Rng| {
        for (name, qtype) in [
            ("api.service.consul", A),
            ("API.service.consul", SRV),
            ("v1.api.service.consul", A),
            ("_api._v1.service.consul", SRV),
            ("nothing.service.consul", A),
        ] {
            for _ in 0..3 {
                let kept = ask_cached(state, cache, rng, name, qtype);
                let again = fresh(state, name, qtype);
                assert_eq!(kept.rcode, again.rcode, "{name}");
                assert_eq!(kept.answer, again.answer, "{name}");
                assert_eq!(kept.additional, again.additional, "{name}");
            }
        }
    };
    let state = c.state();
    check(&state, &mut cache, &mut rng);
    assert_eq!(
        ask_cached(&state, &mut cache, &mut rng, "api.service.consul", A)
            .answer
            .len(),
        6
    );
    // A failing instance check, a warning node, a new instance, a node gone: each is seen at once.
    c.instance("n1", "api", "api", "", &["v1"], CheckStatus::Critical);
    let state = c.state();
    check(&state, &mut cache, &mut rng);
    assert_eq!(
        ask_cached(&state, &mut cache, &mut rng, "api.service.consul", A)
            .answer
            .len(),
        5
    );
    c.node_check("n2", CheckStatus::Critical);
    c.node("n9", "10.9.0.9", &[]);
    c.instance("n9", "api", "api", "", &["v2"], CheckStatus::Passing);
    let state = c.state();
    check(&state, &mut cache, &mut rng);
    let answers = ask_cached(&state, &mut cache, &mut rng, "api.service.consul", A).answer;
    assert_eq!(answers.len(), 5);
    assert!(answers.iter().any(|a| a.contains("10.9.0.9")));
    assert!(!answers
        .iter()
        .any(|a| a.contains("10.9.0.1") || a.contains("10.9.0.2")));
    // An older state (a restored snapshot) is read afresh too.
    let old = {
        let mut c = Catalog::new();
        c.node("n0", "10.8.0.1", &[]);
        c.instance("n0", "api", "api", "", &[], CheckStatus::Passing);
        c.state()
    };
    check(&old, &mut cache, &mut rng);
    assert!(cache.len() <= cache::CACHED_SERVICES_MAX);
}

#[test]
fn the_cache_stays_bounded_and_answers_from_a_large_service_are_spread() {
    let state = many(50);
    let mut cache = ServiceCache::new();
    let mut rng = Rng::new(9);
    let config = DnsConfig::default();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let packet = query_bytes("many.service.consul", A, None);
        match respond_cached(
            &config,
            &state,
            &packet,
            Transport::Udp,
            SERIAL,
            &mut rng,
            &mut cache,
        ) {
            Outcome::Reply(bytes) => {
                let r = parse(&bytes);
                assert_eq!(r.answer.len(), 3);
                let distinct: std::collections::BTreeSet<_> = r.answer.iter().collect();
                assert_eq!(distinct.len(), 3);
                seen.extend(r.answer);
            }
            other => panic!("{other:?}"),
        }
    }
    // 600 draws of 3 from 50: every instance shows up.
    assert_eq!(seen.len(), 50);
    for i in 0..(cache::CACHED_SERVICES_MAX + 10) {
        let packet = query_bytes(&format!("x{i}.service.consul"), A, None);
        let _ = respond_cached(
            &config,
            &state,
            &packet,
            Transport::Udp,
            SERIAL,
            &mut rng,
            &mut cache,
        );
    }
    assert_eq!(cache.len(), 1);
}
