//! Round trips of every frame kind driven by the seeded PRNG, every truncation refused, random bytes never
//! panicking the decoder.

use super::*;
use crate::raft::rng::Rng;
use crate::raft::{Payload, Server, Suffrage};

fn bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    let len = rng.range(0, max + 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn text(rng: &mut Rng, max: u64) -> String {
    let len = rng.range(0, max + 1);
    (0..len)
        .map(|_| match rng.range(0, 4) {
            0 => 'é',
            _ => char::from(b'a' + rng.range(0, 26) as u8),
        })
        .collect()
}

fn flag(rng: &mut Rng) -> bool {
    rng.range(0, 2) == 1
}

fn configuration(rng: &mut Rng) -> Configuration {
    let n = rng.range(0, 6);
    Configuration::new(
        (0..n)
            .map(|_| Server {
                id: ServerId(rng.next_u64()),
                suffrage: if flag(rng) {
                    Suffrage::Voter
                } else {
                    Suffrage::Nonvoter
                },
                address: format!("127.0.0.{}:{}", rng.range(1, 255), rng.range(1, 65536)),
            })
            .collect(),
    )
}

fn leader(rng: &mut Rng) -> Option<LeaderHint> {
    flag(rng).then(|| LeaderHint {
        id: ServerId(rng.next_u64()),
        address: text(rng, 20),
    })
}

fn message(rng: &mut Rng, which: u64) -> Message {
    match which {
        0 => Message::VoteRequest {
            term: rng.next_u64(),
            last_index: rng.next_u64(),
            last_term: rng.next_u64(),
            pre_vote: flag(rng),
            transfer: flag(rng),
        },
        1 => Message::VoteResponse {
            term: rng.next_u64(),
            granted: flag(rng),
            pre_vote: flag(rng),
        },
        2 => {
            let prev_index = rng.range(0, 1 << 40);
            let count = rng.range(0, 8);
            let entries = (0..count)
                .map(|k| Entry {
                    index: prev_index + 1 + k,
                    term: rng.range(1, 100),
                    payload: match rng.range(0, 3) {
                        0 => Payload::Noop,
                        1 => Payload::Command(bytes(rng, 40).into()),
                        _ => Payload::Config(configuration(rng)),
                    },
                })
                .collect();
            Message::Append {
                term: rng.next_u64(),
                prev_index,
                prev_term: rng.next_u64(),
                entries,
                commit: rng.next_u64(),
                round: rng.next_u64(),
            }
        }
        3 => Message::AppendResponse {
            term: rng.next_u64(),
            success: flag(rng),
            match_index: rng.next_u64(),
            conflict: flag(rng).then(|| ConflictHint {
                index: rng.next_u64(),
                term: rng.next_u64(),
            }),
            round: rng.next_u64(),
        },
        4 => Message::InstallSnapshot {
            term: rng.next_u64(),
            index: rng.next_u64(),
            last_term: rng.next_u64(),
            configuration: configuration(rng),
        },
        5 => Message::SnapshotResponse {
            term: rng.next_u64(),
            index: rng.next_u64(),
            success: flag(rng),
        },
        _ => Message::TimeoutNow {
            term: rng.next_u64(),
        },
    }
}

/// Bodies: 0..=6 Raft messages, then one per other kind.
const BODY_KINDS: u64 = 18;

fn body(rng: &mut Rng, which: u64) -> Body {
    match which {
        0..=6 => Body::Raft(message(rng, which)),
        7 => {
            let data = bytes(rng, 64);
            let offset_bytes = rng.range(0, 1000);
            let done = flag(rng);
            let total_bytes =
                offset_bytes + data.len() as u64 + if done { 0 } else { rng.range(0, 1000) };
            Body::SnapshotChunk(SnapshotChunk {
                leader_term: rng.next_u64(),
                index: rng.next_u64(),
                term: rng.next_u64(),
                offset_bytes,
                total_bytes,
                done,
                data,
            })
        }
        8 => Body::Apply(ApplyRequest {
            token: text(rng, 10),
            reply_to: text(rng, 20),
            command: bytes(rng, 50),
        }),
        9 => Body::Applied {
            index: rng.next_u64(),
            result: bytes(rng, 20),
        },
        10 => Body::Error(ErrorReply {
            code: match rng.range(0, 4) {
                0 => ErrorCode::NotLeader,
                1 => ErrorCode::Overloaded,
                2 => ErrorCode::Rejected,
                _ => ErrorCode::Unknown,
            },
            leader: leader(rng),
            message: text(rng, 30),
        }),
        11 => Body::Read(ReadRequest {
            token: text(rng, 10),
            reply_to: text(rng, 20),
            consistency: match rng.range(0, 3) {
                0 => Consistency::Stale,
                1 => Consistency::Default,
                _ => Consistency::Consistent,
            },
            query: bytes(rng, 30),
        }),
        12 => Body::ReadResult {
            index: rng.next_u64(),
            result: bytes(rng, 30),
        },
        13 => Body::Status {
            reply_to: text(rng, 20),
        },
        14 => Body::Operator(OperatorRequest {
            token: text(rng, 20),
            reply_to: text(rng, 20),
            action: match rng.range(0, 4) {
                0 => OperatorAction::TransferLeader(None),
                1 => OperatorAction::TransferLeader(Some(ServerId(rng.next_u64()))),
                2 => OperatorAction::AutopilotState,
                _ => OperatorAction::RemovePeer(ServerId(rng.next_u64())),
            },
        }),
        15 => Body::Relay(RelayRequest {
            token: text(rng, 20),
            reply_to: text(rng, 20),
            call: bytes(rng, 60),
        }),
        16 => Body::RelayReply {
            result: bytes(rng, 60),
        },
        _ => Body::StatusReply(StatusReply {
            id: ServerId(rng.next_u64()),
            role: match rng.range(0, 4) {
                0 => WireRole::Follower,
                1 => WireRole::PreCandidate,
                2 => WireRole::Candidate,
                _ => WireRole::Leader,
            },
            term: rng.next_u64(),
            leader: leader(rng),
            commit_index: rng.next_u64(),
            applied_index: rng.next_u64(),
            last_index: rng.next_u64(),
            snapshot_index: rng.next_u64(),
        }),
    }
}

fn frame(rng: &mut Rng, which: u64) -> Frame {
    Frame {
        header: Header {
            datacenter: text(rng, 12),
            sender: ServerId(rng.next_u64()),
            request_id: rng.next_u64(),
        },
        body: body(rng, which),
    }
}

#[test]
fn every_kind_round_trips() {
    let mut rng = Rng::new(7);
    for round in 0..300 {
        for which in 0..BODY_KINDS {
            let f = frame(&mut rng, which);
            let encoded = encode(&f).expect("encodes");
            assert_eq!(encoded[0], WIRE_VERSION);
            assert_eq!(encoded[1], f.body.kind());
            assert_eq!(
                decode(&encoded),
                Ok(f.clone()),
                "round {round}, kind {which}"
            );
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let mut rng = Rng::new(11);
    for _ in 0..20 {
        for which in 0..BODY_KINDS {
            let encoded = encode(&frame(&mut rng, which)).expect("encodes");
            for cut in 0..encoded.len() {
                let err = decode(&encoded[..cut]).expect_err("a cut frame must not decode");
                assert!(err.offset <= cut, "{err} for a cut at {cut}");
            }
            let mut longer = encoded.clone();
            longer.push(0);
            assert!(decode(&longer).is_err(), "trailing byte accepted");
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let junk = bytes(&mut rng, 120);
        let _ = decode(&junk);
    }
    // Valid headers with random bodies reach every body decoder.
    for _ in 0..20_000 {
        let which = rng.range(0, BODY_KINDS);
        let mut encoded = encode(&frame(&mut rng, which)).expect("encodes");
        let flips = rng.range(1, 4);
        for _ in 0..flips {
            let at = rng.range(0, encoded.len() as u64) as usize;
            encoded[at] = rng.next_u64() as u8;
        }
        if let Err(e) = decode(&encoded) {
            assert!(e.offset <= encoded.len(), "{e}");
        }
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let f = Frame {
        header: Header {
            datacenter: "dc1".into(),
            sender: ServerId(1),
            request_id: 9,
        },
        body: Body::Status {
            reply_to: String::new(),
        },
    };
    let mut b = encode(&f).expect("encodes");
    b[0] = 9;
    assert_eq!(
        decode(&b).expect_err("version").to_string(),
        "bad rpc frame at byte 0: unsupported wire version 9 (this server speaks 1)"
    );
    b[0] = WIRE_VERSION;
    b[1] = 200;
    assert!(decode(&b)
        .expect_err("kind")
        .to_string()
        .contains("unknown frame kind 200"));
    let cut = decode(&encode(&f).expect("encodes")[..10]).expect_err("cut");
    assert!(cut.reason.contains("cut short in sender"), "{cut}");
}

#[test]
fn limits_are_enforced_both_ways() {
    let big = Frame {
        header: Header {
            datacenter: "dc1".into(),
            sender: ServerId(1),
            request_id: 0,
        },
        body: Body::SnapshotChunk(SnapshotChunk {
            leader_term: 1,
            index: 1,
            term: 1,
            offset_bytes: 0,
            total_bytes: CHUNK_BYTES_MAX as u64 + 1,
            done: false,
            data: vec![0; CHUNK_BYTES_MAX + 1],
        }),
    };
    assert!(encode(&big).is_err());
    let long_dc = Frame {
        header: Header {
            datacenter: "d".repeat(DATACENTER_BYTES_MAX + 1),
            sender: ServerId(1),
            request_id: 0,
        },
        body: Body::Status {
            reply_to: String::new(),
        },
    };
    assert!(encode(&long_dc).is_err());
    // A length field claiming more than the limit is refused before anything is allocated.
    let ok = Frame {
        header: Header {
            datacenter: String::new(),
            sender: ServerId(1),
            request_id: 0,
        },
        body: Body::Applied {
            index: 1,
            result: Vec::new(),
        },
    };
    let mut b = encode(&ok).expect("encodes");
    let len_at = b.len() - 4;
    b[len_at..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode(&b)
        .expect_err("over limit")
        .reason
        .contains("over the limit"));
    // Entries must follow the previous index one by one.
    let mut rng = Rng::new(1);
    let mut f = frame(&mut rng, 2);
    if let Body::Raft(Message::Append { entries, .. }) = &mut f.body {
        entries.clear();
        entries.push(Entry {
            index: 5,
            term: 1,
            payload: Payload::Noop,
        });
    }
    if let Body::Raft(Message::Append { prev_index, .. }) = &mut f.body {
        *prev_index = 1;
    }
    assert!(decode(&encode(&f).expect("encodes"))
        .expect_err("gap")
        .reason
        .contains("one by one"));
}
