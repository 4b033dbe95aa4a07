//! Unit tests of the pure gossip core: golden bytes from WIRE.md's captures, PRNG-driven codec round trips,
//! hostile input, and the probe / suspect / refute / dead paths with Lifeguard's timeouts.

use super::broadcast::TransmitQueue;
use super::config::{retransmit_limit, suspicion_timeout_ms, Addr, Config};
use super::lzw;
use super::messages::{
    Accusation, Ack, Alive, IndirectPing, Message, Ping, PushNodeState, PushPull,
};
use super::msgpack;
use super::packet::{self, StreamMessage};
use super::security::{self, Keyring};
use super::serf::{
    decode_tags, encode_tags, EventBody, EventsAt, Query, QueryResponse, SerfMessage, SerfPushPull,
};
use super::suspicion::{remaining_timeout_ms, Awareness, Suspicion};
use super::swim::{Action, Input, MemberStatus, NodeState, Swim};
use crate::raft::rng::Rng;
use std::collections::BTreeMap;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Builds bytes from hex pieces and quoted ASCII, the way WIRE.md writes captures: `a4"Node"`.
fn capture(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in s.split('"').enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(part.as_bytes());
        } else {
            out.extend(hex(part));
        }
    }
    out
}

fn ping_capture() -> Vec<u8> {
    capture(
        r#"00 85 a4"Node" a2"n2" a5"SeqNo" 01 aa"SourceAddr" a4 7f0000c9
           aa"SourceNode" a2"n1" aa"SourcePort" cd 1f0a"#,
    )
}

#[test]
fn golden_ping_encodes_byte_for_byte() {
    let ping = Message::Ping(Ping {
        seq_no: 1,
        node: "n2".into(),
        source_addr: vec![127, 0, 0, 201],
        source_port: 7946,
        source_node: "n1".into(),
    });
    let want = ping_capture();
    assert_eq!(want.len(), 61);
    assert_eq!(ping.encode(), want);
    assert_eq!(Message::decode(&want).unwrap(), ping);
}

#[test]
fn golden_alive_with_crc_decodes_and_reencodes() {
    let raw = capture(
        r#"0c 94212ee6 04 86 a4"Addr" a4 7f0000ca ab"Incarnation" 02
           a4"Meta" b2 ff82a4726f6c65a26462a3666f6fa3626172 a4"Node" a2"n2" a4"Port" cd1f0a a3"Vsn" a6 010502020505"#,
    );
    assert_eq!(raw.len(), 81);
    let d = packet::decode_packet(&raw, None, true);
    assert_eq!(d.error, None);
    let Message::Alive(a) = &d.messages[0] else {
        panic!("not alive: {:?}", d.messages)
    };
    assert_eq!(a.node, "n2");
    assert_eq!(a.incarnation, 2);
    assert_eq!(a.addr, vec![127, 0, 0, 202]);
    assert_eq!(a.port, 7946);
    assert_eq!(a.vsn, vec![1, 5, 2, 2, 5, 5]);
    let tags = decode_tags(&a.meta).unwrap();
    assert_eq!(tags.get("role").map(String::as_str), Some("db"));
    assert_eq!(tags.get("foo").map(String::as_str), Some("bar"));
    // Our encoding of the same alive, CRC-wrapped, is the captured packet.
    assert_eq!(packet::add_crc(&Message::Alive(a.clone()).encode()), raw);
}

#[test]
fn golden_leave_dead_and_join_intent_match_captures() {
    let dead = capture(r#"0c f10819e7 05 83 a4"From" a2"n2" ab"Incarnation" 02 a4"Node" a2"n2""#);
    assert_eq!(dead.len(), 36);
    let msg = Message::Dead(Accusation {
        incarnation: 2,
        node: "n2".into(),
        from: "n2".into(),
    });
    assert_eq!(packet::add_crc(&msg.encode()), dead);
    let join = capture(r#"0c 3f8b6d17 08 01 82 a5"LTime" 01 a4"Node" a2"n2""#);
    assert_eq!(join.len(), 23);
    let intent = SerfMessage::Join {
        ltime: 1,
        node: "n2".into(),
    };
    assert_eq!(
        packet::add_crc(&Message::User(intent.encode()).encode()),
        join
    );
    let d = packet::decode_packet(&join, None, true);
    assert_eq!(d.messages, vec![Message::User(intent.encode())]);
}

#[test]
fn golden_compound_of_ping_and_user_event() {
    let event =
        capture(r#"08 03 84 a2"CC" c3 a5"LTime" 01 a4"Name" a6"deploy" a7"Payload" a4"v1.2""#);
    let mut want = hex("07 02 003d 0027");
    want.extend(ping_capture());
    want.extend(&event);
    assert_eq!(
        packet::make_compound(&[ping_capture(), event.clone()]),
        want
    );
    let d = packet::decode_packet(&want, None, true);
    assert_eq!(d.error, None);
    assert_eq!(d.messages.len(), 2);
    let Message::User(serf) = &d.messages[1] else {
        panic!()
    };
    assert_eq!(
        SerfMessage::decode(serf).unwrap(),
        SerfMessage::UserEvent {
            ltime: 1,
            name: "deploy".into(),
            payload: b"v1.2".to_vec(),
            cc: true
        }
    );
}

#[test]
fn golden_query_ack_and_relay() {
    let ack = capture(
        r#"08 05 85 a5"Flags" 01 a4"From" a2"n1" a2"ID" ce2186efe4 a5"LTime" 01 a7"Payload" c0"#,
    );
    let resp = SerfMessage::QueryResponse(QueryResponse {
        ltime: 1,
        id: 0x2186efe4,
        from: "n1".into(),
        flags: 1,
        payload: vec![],
    });
    assert_eq!(Message::User(resp.encode()).encode(), ack);
    let mut relay = capture(
        r#"09 82 a8"DestAddr" 83 a2"IP" a4 7f0000c9 a4"Port" cd1f0a a4"Zone" a0 a8"DestName" a2"n1""#,
    );
    relay.extend_from_slice(&ack[1..]);
    let msg = SerfMessage::Relay {
        dest_ip: vec![127, 0, 0, 201],
        dest_port: 7946,
        dest_name: "n1".into(),
        inner: ack[1..].to_vec(),
    };
    assert_eq!(msg.encode(), relay);
    assert_eq!(SerfMessage::decode(&relay).unwrap(), msg);
}

#[test]
fn msgpack_reader_accepts_str8_and_bin_and_ignores_unknown_keys() {
    // {"SeqNo": 5, "Extra": [1,2], "Payload": bin8 "xy"} as an ack body, keys out of order.
    let mut body = vec![0x83];
    body.extend(capture(
        r#"a5"Extra" 92 01 02 a5"SeqNo" 05 d9 07"Payload" c4 02"xy""#,
    ));
    let mut msg = vec![2u8];
    msg.extend(body);
    assert_eq!(
        Message::decode(&msg).unwrap(),
        Message::Ack(Ack {
            seq_no: 5,
            payload: b"xy".to_vec()
        })
    );
    // Keys are case-sensitive: "seqno" is ignored.
    let lower = capture(r#"02 81 a5"seqno" 05"#);
    assert_eq!(
        Message::decode(&lower).unwrap(),
        Message::Ack(Ack {
            seq_no: 0,
            payload: vec![]
        })
    );
}

fn random_bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    let n = rng.range(0, max + 1);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn random_name(rng: &mut Rng) -> String {
    let n = rng.range(0, 40);
    (0..n)
        .map(|_| (b'a' + rng.range(0, 26) as u8) as char)
        .collect()
}

fn random_message(rng: &mut Rng) -> Message {
    match rng.range(0, 8) {
        0 => Message::Ping(Ping {
            seq_no: rng.next_u64() as u32,
            node: random_name(rng),
            source_addr: random_bytes(rng, 16),
            source_port: rng.next_u64() as u16,
            source_node: random_name(rng),
        }),
        1 => Message::IndirectPing(IndirectPing {
            seq_no: rng.next_u64() as u32,
            target: random_bytes(rng, 16),
            port: rng.next_u64() as u16,
            node: random_name(rng),
            nack: rng.range(0, 2) == 1,
            source_addr: random_bytes(rng, 16),
            source_port: rng.next_u64() as u16,
            source_node: random_name(rng),
        }),
        2 => Message::Ack(Ack {
            seq_no: rng.next_u64() as u32,
            payload: random_bytes(rng, 300),
        }),
        3 => Message::Nack(rng.next_u64() as u32),
        4 => Message::Suspect(Accusation {
            incarnation: rng.next_u64() as u32,
            node: random_name(rng),
            from: random_name(rng),
        }),
        5 => Message::Dead(Accusation {
            incarnation: rng.next_u64() as u32,
            node: random_name(rng),
            from: random_name(rng),
        }),
        6 => Message::Alive(Alive {
            incarnation: rng.next_u64() as u32,
            node: random_name(rng),
            addr: random_bytes(rng, 16),
            port: rng.next_u64() as u16,
            meta: random_bytes(rng, 512),
            vsn: random_bytes(rng, 6),
        }),
        _ => Message::User(random_bytes(rng, 200)),
    }
}

#[test]
fn messages_round_trip_through_every_packet_layer() {
    let mut rng = Rng::new(0x6055);
    let ring = Keyring::new(vec![7u8; 32]).unwrap();
    for round in 0..400 {
        let msgs: Vec<Message> = (0..rng.range(1, 6))
            .map(|_| random_message(&mut rng))
            .collect();
        let mut bytes = packet::pack(msgs.iter().map(Message::encode).collect());
        if round % 2 == 0 {
            bytes = packet::compress_if_shorter(bytes);
        }
        if round % 3 == 0 {
            bytes = packet::add_crc(&bytes);
        }
        let keyed = round % 4 == 0;
        if keyed {
            bytes = packet::seal_packet(&ring, (round % 8 == 0) as u8, [round as u8; 12], &bytes)
                .unwrap();
        }
        let d = packet::decode_packet(&bytes, keyed.then_some(&ring), true);
        assert_eq!(d.error, None, "round {round}");
        assert_eq!(d.messages, msgs, "round {round}");
    }
}

#[test]
fn serf_messages_round_trip() {
    let mut rng = Rng::new(99);
    for _ in 0..200 {
        let msg = match rng.range(0, 6) {
            0 => SerfMessage::Join {
                ltime: rng.next_u64(),
                node: random_name(&mut rng),
            },
            1 => SerfMessage::Leave {
                ltime: rng.next_u64(),
                node: random_name(&mut rng),
                prune: rng.range(0, 2) == 0,
            },
            2 => SerfMessage::UserEvent {
                ltime: rng.next_u64(),
                name: random_name(&mut rng),
                payload: random_bytes(&mut rng, 100),
                cc: rng.range(0, 2) == 0,
            },
            3 => SerfMessage::Query(Query {
                ltime: rng.next_u64(),
                id: rng.next_u64() as u32,
                addr: random_bytes(&mut rng, 4),
                port: rng.next_u64() as u16,
                source_node: random_name(&mut rng),
                filters: (0..rng.range(0, 3))
                    .map(|_| random_bytes(&mut rng, 10))
                    .collect(),
                flags: rng.range(0, 4) as u32,
                relay_factor: rng.next_u64() as u8,
                timeout_ns: -(rng.range(0, 1 << 40) as i64),
                name: random_name(&mut rng),
                payload: random_bytes(&mut rng, 50),
            }),
            4 => SerfMessage::QueryResponse(QueryResponse {
                ltime: rng.next_u64(),
                id: rng.next_u64() as u32,
                from: random_name(&mut rng),
                flags: 1,
                payload: random_bytes(&mut rng, 50),
            }),
            _ => {
                let mut status = BTreeMap::new();
                for _ in 0..rng.range(0, 20) {
                    status.insert(random_name(&mut rng), rng.next_u64());
                }
                SerfMessage::PushPull(SerfPushPull {
                    ltime: rng.next_u64(),
                    left_members: status.keys().take(2).cloned().collect(),
                    status_ltimes: status,
                    event_ltime: rng.next_u64(),
                    events: vec![EventsAt {
                        ltime: 3,
                        events: vec![EventBody {
                            name: random_name(&mut rng),
                            payload: random_bytes(&mut rng, 20),
                        }],
                    }],
                    query_ltime: rng.next_u64(),
                })
            }
        };
        assert_eq!(SerfMessage::decode(&msg.encode()).unwrap(), msg);
    }
}

#[test]
fn serf_push_pull_accepts_nil_event_slots() {
    // A 512-slot ring as serf sends it: mostly nil.
    let mut w = msgpack::Writer::new(vec![2]);
    w.map(3).str("Events").array(512);
    for i in 0..512 {
        if i == 5 {
            w.map(2)
                .str("Events")
                .array(1)
                .map(2)
                .str("Name")
                .str("e")
                .str("Payload")
                .nil();
            w.str("LTime").uint(5);
        } else {
            w.nil();
        }
    }
    w.str("LTime")
        .uint(9)
        .str("StatusLTimes")
        .map(1)
        .str("n1")
        .uint(3);
    let SerfMessage::PushPull(pp) = SerfMessage::decode(&w.buf).unwrap() else {
        panic!()
    };
    assert_eq!(pp.events.len(), 1);
    assert_eq!(pp.events[0].ltime, 5);
    assert_eq!(pp.ltime, 9);
    assert_eq!(pp.status_ltimes.get("n1"), Some(&3));
}

#[test]
fn tags_round_trip_and_old_meta_is_the_role() {
    let tags: BTreeMap<String, String> = [("role", "consul"), ("dc", "dc1"), ("port", "8300")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let meta = encode_tags(&tags);
    assert_eq!(meta[0], 0xff);
    assert_eq!(decode_tags(&meta).unwrap(), tags);
    let old = decode_tags(b"web").unwrap();
    assert_eq!(old.get("role").map(String::as_str), Some("web"));
}

#[test]
fn lzw_matches_hand_computed_streams_and_round_trips() {
    assert_eq!(lzw::compress(b""), hex("00 03 02"));
    assert_eq!(lzw::compress(b"a"), hex("00 c3 04 04"));
    assert_eq!(lzw::decompress(&hex("00 c3 04 04"), 10).unwrap(), b"a");
    let mut rng = Rng::new(5);
    for i in 0..60 {
        // Low-entropy input exercises long codes, width growth and table resets.
        let n = rng.range(0, 20_000) as usize;
        let alphabet = 1 + (i % 7) as u64 * 40;
        let data: Vec<u8> = (0..n).map(|_| rng.range(0, alphabet) as u8).collect();
        let c = lzw::compress(&data);
        assert_eq!(lzw::decompress(&c, 1 << 20).unwrap(), data, "case {i}");
    }
    // Streams without the leading clear code are accepted too.
    let c = lzw::compress(b"hello hello hello");
    // Drop the 9-bit clear: re-encode the rest by shifting is awkward, so check the decoder's limit instead.
    assert!(matches!(
        lzw::decompress(&c, 3),
        Err(lzw::LzwError::TooLarge(3))
    ));
    assert!(lzw::decompress(&c[..c.len() - 2], 100).is_err());
}

#[test]
fn aes_gcm_matches_reference_vectors() {
    let key: Vec<u8> = (0..16).collect();
    let nonce: [u8; 12] = std::array::from_fn(|i| 100 + i as u8);
    let v1 = security::encrypt(&key, 1, nonce, b"ping-bytes", &[]).unwrap();
    assert_eq!(
        v1,
        hex("016465666768696a6b6c6d6e6f6a0b20c2f660c18efe4d5bd7683452f17f09d6440f26b7f028fa")
    );
    let v0 = security::encrypt(&key, 0, nonce, b"ping-bytes", &[]).unwrap();
    assert_eq!(
        v0,
        hex("006465666768696a6b6c6d6e6f6a0b20c2f660c18efe4d511680cc2deaed0acacbf09b403058b4078fb8a86967")
    );
    let ring = Keyring::new(key.clone()).unwrap();
    assert_eq!(
        security::decrypt(ring.keys(), &v0, &[]).unwrap(),
        b"ping-bytes"
    );
    assert_eq!(
        security::decrypt(ring.keys(), &v1, &[]).unwrap(),
        b"ping-bytes"
    );
    // Stream: additional data is the 5-byte header.
    let key32: Vec<u8> = (0..32).collect();
    let ring32 = Keyring::new(key32).unwrap();
    let mut stream = hex("0a00000027");
    stream.extend(hex(
        "016465666768696a6b6c6d6e6f3b6fac0318847bf34d05f07668cc6ec53061cfea76886c6391cf",
    ));
    assert_eq!(
        security::decrypt(ring32.keys(), &stream[5..], &stream[..5]).unwrap(),
        b"stream-msg"
    );
    let mut bad = v1.clone();
    bad[20] ^= 1;
    assert_eq!(
        security::decrypt(ring.keys(), &bad, &[]),
        Err(security::SecurityError::NoKeyMatched)
    );
    assert!(security::decrypt(ring.keys(), &v1[..28], &[]).is_err());
}

#[test]
fn keyring_install_use_remove() {
    let mut ring = Keyring::new(vec![1; 16]).unwrap();
    assert!(Keyring::new(vec![1; 15]).is_err());
    ring.install(vec![2; 24]).unwrap();
    let sealed = security::encrypt(&[2; 24], 1, [0; 12], b"x", &[]).unwrap();
    assert_eq!(security::decrypt(ring.keys(), &sealed, &[]).unwrap(), b"x");
    assert_eq!(
        ring.remove(&[1; 16]),
        Err(security::SecurityError::RemovePrimary)
    );
    ring.use_key(&[2; 24]).unwrap();
    ring.remove(&[1; 16]).unwrap();
    assert_eq!(ring.keys().len(), 1);
    assert_eq!(ring.primary(), &[2; 24]);
}

#[test]
fn hostile_packets_and_streams_never_panic() {
    let mut rng = Rng::new(1234);
    let ring = Keyring::new(vec![3; 16]).unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        ping_capture(),
        packet::make_compound(&[ping_capture(), ping_capture()]),
        packet::compress_if_shorter(packet::make_compound(&vec![ping_capture(); 4])),
        PushPull::default().encode(),
    ];
    for i in 0..3000 {
        let mut b = if i % 2 == 0 {
            seeds[i % seeds.len()].clone()
        } else {
            random_bytes(&mut rng, 200)
        };
        for _ in 0..rng.range(0, 4) {
            if b.is_empty() {
                break;
            }
            let at = rng.range(0, b.len() as u64) as usize;
            b[at] = rng.next_u64() as u8;
        }
        if rng.range(0, 3) == 0 && !b.is_empty() {
            let cut = rng.range(0, b.len() as u64) as usize;
            b.truncate(cut);
        }
        let _ = packet::decode_packet(&b, None, true);
        let _ = packet::decode_packet(&b, Some(&ring), false);
        let _ = packet::stream_message_len(&b, 100);
        let _ = packet::decode_stream(&b, None, 100);
        let _ = SerfMessage::decode(&b);
        let _ = lzw::decompress(&b, 4096);
    }
    // A compound whose length table runs past the end keeps the whole parts before it.
    let mut c = packet::make_compound(&[ping_capture(), ping_capture()]);
    c.truncate(c.len() - 3);
    let d = packet::decode_packet(&c, None, true);
    assert_eq!(d.messages.len(), 1);
    assert!(d.error.is_some());
    // Labels and nested CRC are refused, not misread.
    assert!(packet::decode_packet(&[244, 1, 2], None, true)
        .error
        .is_some());
}

#[test]
fn stream_framing_finds_the_end_of_a_push_pull_at_any_split() {
    let pp = PushPull {
        join: true,
        nodes: (0..5)
            .map(|i| PushNodeState {
                name: format!("n{i}"),
                addr: vec![10, 0, 0, i],
                port: 7946,
                meta: encode_tags(&BTreeMap::new()),
                incarnation: i as u32 + 1,
                state: 0,
                vsn: vec![1, 5, 2, 2, 5, 4],
            })
            .collect(),
        user_state: vec![2, 0x80],
    };
    let bytes = pp.encode();
    for cut in 0..bytes.len() {
        assert_eq!(
            packet::stream_message_len(&bytes[..cut], 100).unwrap(),
            None,
            "cut {cut}"
        );
    }
    let mut more = bytes.clone();
    more.extend([0xde, 0xad]);
    assert_eq!(
        packet::stream_message_len(&more, 100).unwrap(),
        Some(bytes.len())
    );
    assert_eq!(
        packet::decode_stream(&bytes, None, 100).unwrap(),
        StreamMessage::PushPull(pp.clone())
    );
    // Compressed and encrypted, the way serf sends streams.
    let ring = Keyring::new(vec![9; 32]).unwrap();
    let sealed = packet::encode_stream(bytes.clone(), true, Some(&ring), [1; 12]).unwrap();
    assert_eq!(
        packet::stream_message_len(&sealed, 100).unwrap(),
        Some(sealed.len())
    );
    assert_eq!(
        packet::decode_stream(&sealed, Some(&ring), 100).unwrap(),
        StreamMessage::PushPull(pp)
    );
    assert!(packet::decode_stream(&sealed, None, 100).is_err());
    assert!(packet::decode_stream(&bytes, Some(&ring), 100).is_err());
    // The node-count limit holds.
    assert!(packet::stream_message_len(&bytes, 3).is_err());
}

#[test]
fn retransmit_and_suspicion_formulas_match_memberlist() {
    assert_eq!(retransmit_limit(4, 2), 4);
    assert_eq!(retransmit_limit(4, 9), 4);
    assert_eq!(retransmit_limit(4, 10), 8);
    assert_eq!(retransmit_limit(4, 10_000), 20);
    for n in 4..=10 {
        assert_eq!(suspicion_timeout_ms(4, n, 1000), 4000, "n={n}");
    }
    assert_eq!(suspicion_timeout_ms(4, 100, 1000), 8000);
    assert_eq!(suspicion_timeout_ms(4, 1, 1000), 4000);
    // Lifeguard: k = 2 confirmations shrink 24 s to 4 s along a log curve.
    assert_eq!(remaining_timeout_ms(0, 2, 4000, 24000), 24000);
    assert_eq!(remaining_timeout_ms(1, 2, 4000, 24000), 11381);
    assert_eq!(remaining_timeout_ms(2, 2, 4000, 24000), 4000);
}

#[test]
fn suspicion_counts_each_accuser_once_and_at_most_k() {
    let mut s = Suspicion::new("a", 2, 4000, 24000, 1000);
    assert_eq!(s.deadline_ms, 25000);
    assert!(!s.confirm("a"), "the first accuser is not a confirmation");
    assert!(s.confirm("b"));
    assert_eq!(s.deadline_ms, 1000 + 11381);
    assert!(!s.confirm("b"));
    assert!(s.confirm("c"));
    assert_eq!(s.deadline_ms, 5000);
    assert!(!s.confirm("d"), "no more than k");
    let flat = Suspicion::new("a", 0, 4000, 24000, 0);
    assert_eq!(flat.deadline_ms, 4000);
}

#[test]
fn awareness_clamps_and_scales() {
    let mut a = Awareness::new(8);
    a.apply_delta(-1);
    assert_eq!(a.score, 0);
    a.apply_delta(100);
    assert_eq!(a.score, 7);
    assert_eq!(a.scale_timeout_ms(1000), 8000);
}

#[test]
fn broadcast_queue_orders_replaces_and_retires() {
    let mut q = TransmitQueue::new(3);
    q.push(Some("n1".into()), vec![1; 10]);
    q.push(Some("n1".into()), vec![2; 5]);
    assert_eq!(q.len(), 1, "same key replaces");
    q.push(None, vec![3; 20]);
    q.push(None, vec![4; 20]);
    // Fewest transmits, then longer, then newer.
    let got = q.take(2, 1000, 2);
    assert_eq!(got, vec![vec![4; 20], vec![3; 20], vec![2; 5]]);
    // A tight budget takes what fits.
    let got = q.take(2, 8, 2);
    assert_eq!(got, vec![vec![2; 5]]);
    assert_eq!(q.len(), 2);
    q.take(2, 1000, 2);
    assert!(q.is_empty(), "retired after the limit");
    for i in 0..10 {
        q.push(None, vec![i]);
    }
    assert_eq!(q.len(), 3, "bounded");
}

// ---- the state machine, on a tiny lossless network ----

fn addr(i: usize) -> Addr {
    Addr::v4([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 7946)
}

struct Net {
    nodes: Vec<Swim>,
    down: Vec<bool>,
    /// UDP to and from this member is lost (TCP still works).
    mute_udp: Option<usize>,
    now: u64,
    log: Vec<(usize, Action)>,
}

impl Net {
    fn new(n: usize, cfg: impl Fn(usize) -> Config) -> Net {
        let nodes = (0..n)
            .map(|i| Swim::new(cfg(i), i as u64 + 1, None).unwrap())
            .collect();
        Net {
            nodes,
            down: vec![false; n],
            mute_udp: None,
            now: 0,
            log: Vec::new(),
        }
    }

    fn lan(n: usize) -> Net {
        Net::new(n, |i| Config::lan(format!("n{i}"), addr(i)))
    }

    fn index(&self, a: &Addr) -> Option<usize> {
        self.nodes.iter().position(|s| &s.config().addr == a)
    }

    /// Steps node `i` with `input` and delivers every resulting packet and stream at once (no loss).
    fn step(&mut self, i: usize, input: Input) {
        let mut queue = vec![(i, input)];
        while let Some((i, input)) = queue.pop() {
            if self.down[i] {
                continue;
            }
            let mut actions = Vec::new();
            let _ = self.nodes[i].step(self.now, input, &mut actions);
            for a in actions {
                match &a {
                    Action::SendPacket { to, bytes } => {
                        let muted = |k| self.mute_udp == Some(k);
                        if let Some(j) = self.index(to).filter(|&j| !muted(i) && !muted(j)) {
                            queue.push((
                                j,
                                Input::Packet {
                                    from: self.nodes[i].config().addr.clone(),
                                    bytes: bytes.clone(),
                                },
                            ));
                        }
                    }
                    Action::Dial { id, to, bytes } => {
                        let from = self.nodes[i].config().addr.clone();
                        let reply = self.index(to).filter(|&j| !self.down[j]).and_then(|j| {
                            let mut acts = Vec::new();
                            let _ = self.nodes[j].step(
                                self.now,
                                Input::Stream {
                                    conn: 1,
                                    from,
                                    bytes: bytes.clone(),
                                },
                                &mut acts,
                            );
                            let mut reply = None;
                            for x in acts {
                                if let Action::StreamReply { bytes, .. } = &x {
                                    reply = Some(bytes.clone());
                                }
                                self.log.push((j, x));
                            }
                            reply
                        });
                        queue.push((
                            i,
                            match reply {
                                Some(bytes) => Input::DialReply { id: *id, bytes },
                                None => Input::DialFailed { id: *id },
                            },
                        ));
                    }
                    _ => {}
                }
                self.log.push((i, a));
            }
        }
    }

    fn run_until(&mut self, until: u64) {
        while self.now < until {
            self.now += 10;
            for i in 0..self.nodes.len() {
                self.step(i, Input::Tick);
            }
        }
    }

    fn join_all(&mut self) {
        for i in 1..self.nodes.len() {
            self.step(
                i,
                Input::Join {
                    seeds: vec![addr(0)],
                },
            );
        }
        self.run_until(self.now + 5_000);
    }

    fn state_of(&self, observer: usize, name: &str) -> Option<NodeState> {
        self.nodes[observer].member(name).map(|m| m.state)
    }
}

#[test]
fn join_through_a_seed_spreads_to_everyone() {
    let mut net = Net::lan(6);
    net.join_all();
    for i in 0..6 {
        assert_eq!(net.nodes[i].members().len(), 6, "node {i}");
        for j in 0..6 {
            assert_eq!(net.state_of(i, &format!("n{j}")), Some(NodeState::Alive));
        }
    }
    // The serf join intent made everyone's status time > 0 for the joiners.
    assert!(net.nodes[0].member("n3").unwrap().status_ltime > 0);
    assert!(net
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::Joined { .. })));
}

#[test]
fn probes_of_live_nodes_are_acked_and_nobody_is_suspected() {
    let mut net = Net::lan(5);
    net.join_all();
    net.run_until(net.now + 60_000);
    for i in 0..5 {
        assert_eq!(net.nodes[i].health_score(), 0);
        for m in net.nodes[i].members().values() {
            assert_eq!(m.state, NodeState::Alive, "{} seen by n{i}", m.name);
        }
    }
    assert!(!net
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::MemberFailed(_))));
}

#[test]
fn a_crashed_node_is_probed_indirectly_suspected_then_declared_dead_by_all() {
    let mut net = Net::lan(6);
    net.join_all();
    net.log.clear();
    net.down[5] = true;
    let crash = net.now;
    net.run_until(crash + 40_000);
    for i in 0..5 {
        assert_eq!(net.state_of(i, "n5"), Some(NodeState::Dead), "n{i}");
        assert_eq!(
            net.nodes[i].member("n5").unwrap().status,
            MemberStatus::Failed
        );
    }
    // The path went through indirect probes and suspicion first.
    let indirect = net.log.iter().any(|(_, a)| match a {
        Action::SendPacket { bytes, .. } => packet::decode_packet(bytes, None, true)
            .messages
            .iter()
            .any(|m| matches!(m, Message::IndirectPing(_))),
        _ => false,
    });
    assert!(indirect, "no indirect ping was sent");
    let failed = net
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::MemberFailed(m) if m.name == "n5"))
        .count();
    assert_eq!(failed, 5);
}

#[test]
fn a_suspected_live_node_refutes_with_a_higher_incarnation() {
    let mut net = Net::lan(4);
    net.join_all();
    let inc = net.nodes[2].member("n2").unwrap().incarnation;
    // n0 hears a (false) suspicion of n2 at n2's incarnation.
    let s = Message::Suspect(Accusation {
        incarnation: inc,
        node: "n2".into(),
        from: "n1".into(),
    });
    net.step(
        0,
        Input::Packet {
            from: addr(1),
            bytes: s.encode(),
        },
    );
    assert_eq!(net.state_of(0, "n2"), Some(NodeState::Suspect));
    // Deliver the accusation to n2 itself: it refutes.
    net.step(
        2,
        Input::Packet {
            from: addr(1),
            bytes: s.encode(),
        },
    );
    let new_inc = net.nodes[2].member("n2").unwrap().incarnation;
    assert!(new_inc > inc);
    assert_eq!(net.nodes[2].health_score(), 1, "refuting costs health");
    net.run_until(net.now + 10_000);
    for i in 0..4 {
        let m = net.nodes[i].member("n2").unwrap();
        assert_eq!(m.state, NodeState::Alive, "n{i}");
        assert_eq!(m.incarnation, new_inc, "n{i}");
    }
    // A dead message about itself is refuted the same way.
    let d = Message::Dead(Accusation {
        incarnation: new_inc,
        node: "n2".into(),
        from: "n1".into(),
    });
    net.step(
        2,
        Input::Packet {
            from: addr(1),
            bytes: d.encode(),
        },
    );
    assert!(net.nodes[2].member("n2").unwrap().incarnation > new_inc);
}

#[test]
fn precedence_at_equal_incarnation_and_alive_needs_a_higher_one() {
    let mut net = Net::lan(3);
    net.join_all();
    let inc = net.nodes[0].member("n1").unwrap().incarnation;
    let alive = |inc| {
        let a = net.nodes[1].member("n1").unwrap();
        Message::Alive(Alive {
            incarnation: inc,
            node: "n1".into(),
            addr: a.addr.ip.clone(),
            port: a.addr.port,
            meta: a.meta.clone(),
            vsn: a.vsn.to_vec(),
        })
        .encode()
    };
    let (same, higher) = (alive(inc), alive(inc + 1));
    let suspect = Message::Suspect(Accusation {
        incarnation: inc,
        node: "n1".into(),
        from: "n2".into(),
    })
    .encode();
    net.down[1] = true;
    net.step(
        0,
        Input::Packet {
            from: addr(2),
            bytes: suspect,
        },
    );
    assert_eq!(net.state_of(0, "n1"), Some(NodeState::Suspect));
    net.step(
        0,
        Input::Packet {
            from: addr(2),
            bytes: same,
        },
    );
    assert_eq!(
        net.state_of(0, "n1"),
        Some(NodeState::Suspect),
        "equal incarnation: suspect wins"
    );
    net.step(
        0,
        Input::Packet {
            from: addr(2),
            bytes: higher,
        },
    );
    assert_eq!(net.state_of(0, "n1"), Some(NodeState::Alive));
}

#[test]
fn lifeguard_confirmations_shorten_the_suspicion() {
    // 10 nodes: min 4 s, max 24 s, k = 2.
    let mut net = Net::lan(10);
    net.join_all();
    net.down[9] = true;
    let t0 = net.now;
    let accuse = |from: &str| {
        Message::Suspect(Accusation {
            incarnation: 1,
            node: "n9".into(),
            from: from.into(),
        })
        .encode()
    };
    net.step(
        0,
        Input::Packet {
            from: addr(1),
            bytes: accuse("n1"),
        },
    );
    let s = net.nodes[0].suspicions.get("n9").unwrap().clone();
    assert_eq!((s.k, s.min_ms, s.max_ms), (2, 4000, 24000));
    assert_eq!(s.deadline_ms, t0 + 24000);
    net.step(
        0,
        Input::Packet {
            from: addr(2),
            bytes: accuse("n2"),
        },
    );
    net.step(
        0,
        Input::Packet {
            from: addr(3),
            bytes: accuse("n3"),
        },
    );
    assert_eq!(
        net.nodes[0].suspicions.get("n9").unwrap().deadline_ms,
        t0 + 4000
    );
}

#[test]
fn graceful_leave_is_seen_as_left_not_failed() {
    let mut net = Net::lan(5);
    net.join_all();
    net.log.clear();
    net.step(4, Input::Leave);
    net.run_until(net.now + 3_000);
    net.down[4] = true;
    net.run_until(net.now + 30_000);
    for i in 0..4 {
        assert_eq!(net.state_of(i, "n4"), Some(NodeState::Left), "n{i}");
        assert_eq!(
            net.nodes[i].member("n4").unwrap().status,
            MemberStatus::Left
        );
    }
    assert!(!net
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::MemberFailed(_))));
}

#[test]
fn user_events_reach_everyone_once() {
    let mut net = Net::lan(8);
    net.join_all();
    net.log.clear();
    net.step(
        3,
        Input::UserEvent {
            name: "deploy".into(),
            payload: b"v2".to_vec(),
            coalesce: true,
        },
    );
    net.run_until(net.now + 10_000);
    for i in 0..8 {
        let got = net
            .log
            .iter()
            .filter(|(n, a)| {
                *n == i && matches!(a, Action::UserEvent { name, .. } if name == "deploy")
            })
            .count();
        assert_eq!(got, 1, "n{i}");
    }
    let too_big = Input::UserEvent {
        name: "x".into(),
        payload: vec![0; 600],
        coalesce: false,
    };
    let mut acts = Vec::new();
    assert!(net.nodes[0].step(net.now, too_big, &mut acts).is_err());
}

#[test]
fn tag_updates_raise_the_incarnation_and_notify_peers() {
    let mut net = Net::lan(4);
    net.join_all();
    net.log.clear();
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "web".to_string());
    net.step(1, Input::SetTags(tags.clone()));
    net.run_until(net.now + 5_000);
    for i in 0..4 {
        let m = net.nodes[i].member("n1").unwrap();
        assert_eq!(m.tags, tags, "n{i}");
        assert_eq!(m.incarnation, 2);
    }
    assert!(net
        .log
        .iter()
        .any(|(n, a)| *n == 0 && matches!(a, Action::MemberUpdated(m) if m.name == "n1")));
}

#[test]
fn encrypted_pools_work_and_refuse_strangers() {
    let ring = Keyring::new(vec![4; 32]).unwrap();
    let mut net = Net::lan(4);
    for (i, n) in net.nodes.iter_mut().enumerate() {
        *n = Swim::new(
            Config::lan(format!("n{i}"), addr(i)),
            i as u64 + 1,
            Some(ring.clone()),
        )
        .unwrap();
    }
    net.join_all();
    for i in 0..4 {
        assert_eq!(net.nodes[i].members().len(), 4);
    }
    let mut acts = Vec::new();
    let plain = Message::Ping(Ping {
        seq_no: 1,
        ..Ping::default()
    })
    .encode();
    let r = net.nodes[0].step(
        net.now,
        Input::Packet {
            from: addr(9),
            bytes: plain,
        },
        &mut acts,
    );
    assert!(r.is_err());
    assert!(!acts.iter().any(|a| matches!(a, Action::SendPacket { .. })));
}

#[test]
fn pings_are_answered_to_the_source_address_and_pings_for_others_ignored() {
    let mut s = Swim::new(Config::lan("me", addr(0)), 1, None).unwrap();
    let mut acts = Vec::new();
    let ping = |node: &str| {
        Message::Ping(Ping {
            seq_no: 42,
            node: node.into(),
            source_addr: vec![10, 9, 9, 9],
            source_port: 8301,
            source_node: "x".into(),
        })
        .encode()
    };
    s.step(
        0,
        Input::Packet {
            from: addr(5),
            bytes: ping("me"),
        },
        &mut acts,
    )
    .unwrap();
    let sent: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::SendPacket { to, bytes } => Some((to.clone(), bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Addr::v4([10, 9, 9, 9], 8301));
    assert_eq!(
        packet::decode_packet(&sent[0].1, None, true).messages[0],
        Message::Ack(Ack {
            seq_no: 42,
            payload: vec![]
        })
    );
    acts.clear();
    s.step(
        1,
        Input::Packet {
            from: addr(5),
            bytes: ping("other"),
        },
        &mut acts,
    )
    .unwrap();
    assert!(!acts.iter().any(|a| matches!(a, Action::SendPacket { .. })));
}

#[test]
fn an_indirect_probe_relays_the_ack_or_sends_a_nack() {
    let mut relay = Swim::new(Config::lan("relay", addr(1)), 1, None).unwrap();
    let req = |seq| {
        Message::IndirectPing(IndirectPing {
            seq_no: seq,
            target: addr(2).ip,
            port: 7946,
            node: "target".into(),
            nack: true,
            source_addr: addr(0).ip,
            source_port: 7946,
            source_node: "asker".into(),
        })
        .encode()
    };
    let sent = |acts: &[Action]| -> Vec<(Addr, Vec<Message>)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::SendPacket { to, bytes } => Some((
                    to.clone(),
                    packet::decode_packet(bytes, None, true).messages,
                )),
                _ => None,
            })
            .collect()
    };
    // The target answers: the ack goes back to the asker with the asker's sequence number.
    let mut acts = Vec::new();
    relay
        .step(
            0,
            Input::Packet {
                from: addr(0),
                bytes: req(77),
            },
            &mut acts,
        )
        .unwrap();
    let out = sent(&acts);
    let Message::Ping(p) = &out[0].1[0] else {
        panic!("{out:?}")
    };
    assert_eq!(out[0].0, addr(2));
    let ack = Message::Ack(Ack {
        seq_no: p.seq_no,
        payload: vec![],
    })
    .encode();
    acts.clear();
    relay
        .step(
            10,
            Input::Packet {
                from: addr(2),
                bytes: ack,
            },
            &mut acts,
        )
        .unwrap();
    assert_eq!(
        sent(&acts),
        vec![(
            addr(0),
            vec![Message::Ack(Ack {
                seq_no: 77,
                payload: vec![]
            })]
        )]
    );
    // The target stays silent: a nack follows after the probe timeout.
    acts.clear();
    relay
        .step(
            100,
            Input::Packet {
                from: addr(0),
                bytes: req(78),
            },
            &mut acts,
        )
        .unwrap();
    acts.clear();
    relay.step(100 + 500, Input::Tick, &mut acts).unwrap();
    assert!(
        sent(&acts).contains(&(addr(0), vec![Message::Nack(78)])),
        "{:?}",
        sent(&acts)
    );
}

#[test]
fn a_tcp_ping_is_answered_and_a_failed_join_is_reported() {
    let mut s = Swim::new(Config::lan("me", addr(0)), 1, None).unwrap();
    let mut acts = Vec::new();
    let ping = Message::Ping(Ping {
        seq_no: 9,
        node: "me".into(),
        ..Ping::default()
    })
    .encode();
    assert_eq!(
        packet::stream_message_len(&ping, 10).unwrap(),
        Some(ping.len())
    );
    s.step(
        0,
        Input::Stream {
            conn: 4,
            from: addr(3),
            bytes: ping,
        },
        &mut acts,
    )
    .unwrap();
    let reply = acts.iter().find_map(|a| match a {
        Action::StreamReply { conn: 4, bytes } => Some(bytes.clone()),
        _ => None,
    });
    assert_eq!(
        packet::decode_stream(&reply.unwrap(), None, 10).unwrap(),
        StreamMessage::Ack(9)
    );
    acts.clear();
    s.step(
        1,
        Input::Join {
            seeds: vec![addr(5)],
        },
        &mut acts,
    )
    .unwrap();
    let id = acts
        .iter()
        .find_map(|a| match a {
            Action::Dial { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    acts.clear();
    s.step(2, Input::DialFailed { id }, &mut acts).unwrap();
    assert!(acts.contains(&Action::JoinFailed { id }));
}

#[test]
fn profiles_match_memberlist_defaults() {
    let a = Addr::v4([127, 0, 0, 1], 7946);
    let lan = Config::lan("n", a.clone());
    let wan = Config::wan("n", a.clone());
    let local = Config::local("n", a);
    let row = |c: &Config| {
        (
            c.probe_interval_ms,
            c.probe_timeout_ms,
            c.gossip_interval_ms,
            c.gossip_nodes,
            c.suspicion_mult,
            c.suspicion_max_timeout_mult,
            c.retransmit_mult,
            c.indirect_checks,
            c.push_pull_interval_ms,
            c.gossip_to_the_dead_time_ms,
        )
    };
    assert_eq!(row(&lan), (1000, 500, 200, 3, 4, 6, 4, 3, 30_000, 30_000));
    assert_eq!(row(&wan), (5000, 3000, 500, 4, 6, 6, 4, 3, 60_000, 60_000));
    assert_eq!(row(&local), (1000, 200, 100, 3, 3, 6, 2, 1, 15_000, 15_000));
    for c in [&lan, &wan, &local] {
        assert_eq!((c.awareness_max_multiplier, c.udp_buffer_bytes), (8, 1400));
    }
    assert_eq!(super::config::push_pull_scale_ms(30_000, 32), 30_000);
    assert_eq!(super::config::push_pull_scale_ms(30_000, 64), 60_000);
    assert_eq!(super::config::push_pull_scale_ms(30_000, 1000), 30_000 * 6);
}

#[test]
fn the_tcp_fallback_ping_keeps_a_member_whose_udp_is_lost_from_being_suspected() {
    let mut net = Net::lan(5);
    net.join_all();
    net.log.clear();
    net.mute_udp = Some(4);
    net.run_until(net.now + 60_000);
    for i in 0..4 {
        assert_eq!(net.state_of(i, "n4"), Some(NodeState::Alive), "n{i}");
    }
    let pings = net
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Dial { bytes, .. } if bytes.first() == Some(&0)))
        .count();
    assert!(pings > 0, "no TCP ping was dialled");
    // Without TCP pings the same member is declared failed.
    let mut net = Net::new(5, |i| Config {
        tcp_pings: false,
        ..Config::lan(format!("n{i}"), addr(i))
    });
    net.join_all();
    net.log.clear();
    net.mute_udp = Some(4);
    net.run_until(net.now + 60_000);
    assert!(net
        .log
        .iter()
        .any(|(_, a)| matches!(a, Action::MemberFailed(m) if m.name == "n4")));
}
