//! Unit tests of the gossip state machine on a tiny lossless network: joins, probes, suspicion, refutation,
//! Lifeguard, leaves, user events, tags, encryption, indirect and TCP probes, profiles.

use super::config::{Addr, Config};
use super::messages::{Accusation, Ack, Alive, IndirectPing, Message, Ping};
use super::packet::{self, StreamMessage};
use super::security::Keyring;
use super::swim::{Action, Input, MemberStatus, NodeState, Swim};
use std::collections::BTreeMap;

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

    /// `n` LAN members sharing `ring`.
    fn encrypted(n: usize, ring: &Keyring) -> Net {
        let mut net = Net::lan(n);
        for (i, node) in net.nodes.iter_mut().enumerate() {
            let cfg = Config::lan(format!("n{i}"), addr(i));
            *node = Swim::new(cfg, i as u64 + 1, Some(ring.clone())).unwrap();
        }
        net
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
    let mut net = Net::encrypted(4, &Keyring::new(vec![4; 32]).unwrap());
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

#[test]
fn force_leave_turns_a_failed_member_left_everywhere_and_prune_erases_it() {
    let mut net = Net::lan(5);
    net.join_all();
    net.down[4] = true;
    net.down[3] = true;
    net.run_until(net.now + 40_000);
    assert_eq!(
        net.nodes[0].member("n4").unwrap().status,
        MemberStatus::Failed
    );
    let mut acts = Vec::new();
    for (node, why) in [
        ("n1", "alive"),
        ("nobody", "no member"),
        ("n0", "this node"),
    ] {
        let input = Input::ForceLeave {
            node: node.into(),
            prune: false,
        };
        let refused = net.nodes[0].step(net.now, input, &mut acts).unwrap_err();
        assert!(refused.to_string().contains(why), "{refused}");
    }
    net.step(
        0,
        Input::ForceLeave {
            node: "n4".into(),
            prune: false,
        },
    );
    net.step(
        1,
        Input::ForceLeave {
            node: "n3".into(),
            prune: true,
        },
    );
    net.run_until(net.now + 5_000);
    for i in 0..3 {
        assert_eq!(
            net.nodes[i].member("n4").map(|m| m.status),
            Some(MemberStatus::Left),
            "n{i}"
        );
        assert!(net.nodes[i].member("n3").is_none(), "n{i} still lists n3");
    }
}

#[test]
fn a_key_query_is_answered_by_every_member_once_then_ends() {
    let mut net = Net::encrypted(4, &Keyring::new(vec![4; 32]).unwrap());
    net.join_all();
    net.log.clear();
    let op = super::key_query::KeyOp::Install(vec![9; 16]);
    net.step(
        2,
        Input::Query {
            token: 7,
            name: op.query_name(),
            payload: op.payload(),
            timeout_ms: 3_000,
        },
    );
    net.run_until(net.now + 4_000);
    let mut responders: Vec<String> = net
        .log
        .iter()
        .filter_map(|(n, a)| match a {
            Action::QueryResponse {
                token: 7,
                from,
                payload,
            } if *n == 2 => {
                let answer = super::key_query::KeyResponse::decode(payload).unwrap();
                assert!(answer.result && answer.keys.len() == 2, "{answer:?}");
                Some(from.clone())
            }
            _ => None,
        })
        .collect();
    responders.sort();
    assert_eq!(responders, ["n0", "n1", "n2", "n3"]);
    let done = net
        .log
        .iter()
        .filter(|(n, a)| *n == 2 && matches!(a, Action::QueryDone { token: 7 }))
        .count();
    assert_eq!(done, 1);
    for node in &mut net.nodes {
        assert_eq!(node.keyring_mut().unwrap().keys().len(), 2);
    }
}
