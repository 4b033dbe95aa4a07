//! `gossip_fanout`: the pure gossip core's hot paths and its dissemination speed.
//!
//! Cases: encode and decode of a ping (the 61-byte captured shape), of a full 1 400-byte gossip compound of alive
//! broadcasts, plain and AES-GCM encrypted, and of a 100-node push/pull; LZW on a gossip packet; one `Swim::step`
//! answering a ping on a member that knows 1 000 others. Then "dissemination rounds vs N": the dissemination model of
//! tests/gossip_sim.rs (every member holds the core's retransmit-limited queue and gossips to 3 random members each
//! 200 ms) for N = 100, 1 000 and 10 000, printed as the median time and gossip rounds until 99.9 % know an event.
//! Run: `cargo bench -p cairn-bench --bench gossip_fanout`.

use cairn::gossip::broadcast::TransmitQueue;
use cairn::gossip::config::retransmit_limit;
use cairn::gossip::messages::{Alive, Message, Ping, PushNodeState, PushPull};
use cairn::gossip::{lzw, packet, Action, Addr, Config, Input, Keyring, Swim};
use cairn::raft::rng::Rng;
use cairn_bench::is_bench_run;
use criterion::{black_box, Criterion, Throughput};
use std::collections::BTreeMap;

fn ping() -> Message {
    Message::Ping(Ping {
        seq_no: 1,
        node: "n2".into(),
        source_addr: vec![127, 0, 0, 201],
        source_port: 7946,
        source_node: "n1".into(),
    })
}

fn alive(i: u32) -> Alive {
    let mut tags = BTreeMap::new();
    tags.insert("role".to_string(), "node".to_string());
    tags.insert("dc".to_string(), "dc1".to_string());
    Alive {
        incarnation: i,
        node: format!("node-{i:05}"),
        addr: vec![10, 0, (i >> 8) as u8, i as u8],
        port: 8301,
        meta: cairn::gossip::serf::encode_tags(&tags),
        vsn: vec![1, 5, 2, 2, 5, 4],
    }
}

/// A gossip packet as `Swim` fills it: alive broadcasts up to 1 400 bytes.
fn gossip_packet() -> Vec<u8> {
    let mut q = TransmitQueue::new(1024);
    for i in 0..100 {
        q.push(Some(format!("node-{i}")), Message::Alive(alive(i)).encode());
    }
    packet::pack(q.take(2, 1400 - 2, 4))
}

fn push_pull(n: u32) -> PushPull {
    PushPull {
        join: false,
        nodes: (0..n)
            .map(|i| {
                let a = alive(i);
                PushNodeState {
                    name: a.node,
                    addr: a.addr,
                    port: a.port,
                    meta: a.meta,
                    incarnation: a.incarnation,
                    state: 0,
                    vsn: a.vsn,
                }
            })
            .collect(),
        user_state: Vec::new(),
    }
}

/// A member that knows `n` others (merged from a push/pull), ready to step.
fn member_knowing(n: u32) -> Swim {
    let mut s =
        Swim::new(Config::lan("bench", Addr::v4([10, 9, 9, 9], 8301)), 1, None).expect("config");
    let mut actions = Vec::new();
    s.step(
        0,
        Input::Stream {
            conn: 1,
            from: Addr::v4([10, 0, 0, 1], 5000),
            bytes: push_pull(n).encode(),
        },
        &mut actions,
    )
    .expect("push/pull merges");
    s
}

/// The dissemination model (see tests/gossip_sim.rs): ms until 99.9 % of `members` know one event.
fn model_dissemination(seed: u64, members: usize) -> u64 {
    let cfg = Config::lan("m", Addr::default());
    let mut rng = Rng::new(seed);
    let limit = retransmit_limit(cfg.retransmit_mult, members);
    let mut queues: Vec<TransmitQueue> = (0..members).map(|_| TransmitQueue::new(16)).collect();
    let phase: Vec<u64> = (0..members)
        .map(|_| rng.range(0, cfg.gossip_interval_ms))
        .collect();
    let mut knows = vec![false; members];
    knows[0] = true;
    queues[0].push(None, vec![0u8; 40]);
    let need = (members as f64 * 0.999).ceil() as usize;
    let mut known = 1;
    let mut arrivals: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let (mut seq, mut t) = (0u64, 0u64);
    while known < need && t < 60_000 {
        t += 1;
        while let Some(entry) = arrivals.first_entry() {
            if entry.key().0 > t {
                break;
            }
            let j = entry.remove();
            if !knows[j] {
                knows[j] = true;
                known += 1;
                queues[j].push(None, vec![0u8; 40]);
            }
        }
        for i in 0..members {
            if t % cfg.gossip_interval_ms != phase[i] || queues[i].is_empty() {
                continue;
            }
            let mut chosen = Vec::with_capacity(cfg.gossip_nodes);
            while chosen.len() < cfg.gossip_nodes {
                let j = rng.range(0, members as u64) as usize;
                if j != i && !chosen.contains(&j) {
                    chosen.push(j);
                }
            }
            for j in chosen {
                if queues[i].take(2, cfg.udp_buffer_bytes, limit).is_empty() {
                    break;
                }
                seq += 1;
                arrivals.insert((t + rng.range(1, 6), seq), j);
            }
        }
    }
    t
}

fn criterion_cases(c: &mut Criterion) {
    let ring = Keyring::new(vec![7; 32]).expect("key");
    let ping_bytes = ping().encode();
    let gossip = gossip_packet();
    let sealed = packet::seal_packet(&ring, 1, [3; 12], &gossip).expect("seal");
    let pp = push_pull(100);
    let pp_bytes = pp.encode();
    let mut g = c.benchmark_group("gossip_codec");
    g.throughput(Throughput::Bytes(ping_bytes.len() as u64));
    g.bench_function("ping/encode", |b| b.iter(|| black_box(ping().encode())));
    g.bench_function("ping/decode", |b| {
        b.iter(|| black_box(packet::decode_packet(black_box(&ping_bytes), None, true)))
    });
    g.throughput(Throughput::Bytes(gossip.len() as u64));
    let parts = packet::decode_packet(&gossip, None, true).messages;
    g.bench_function("gossip_1400B/encode", |b| {
        b.iter(|| black_box(packet::pack(parts.iter().map(Message::encode).collect())))
    });
    g.bench_function("gossip_1400B/decode", |b| {
        b.iter(|| black_box(packet::decode_packet(black_box(&gossip), None, true)))
    });
    g.bench_function("gossip_1400B/decode_encrypted", |b| {
        b.iter(|| black_box(packet::decode_packet(black_box(&sealed), Some(&ring), true)))
    });
    g.bench_function("gossip_1400B/lzw_compress", |b| {
        b.iter(|| black_box(lzw::compress(black_box(&gossip))))
    });
    g.throughput(Throughput::Bytes(pp_bytes.len() as u64));
    g.bench_function("push_pull_100/encode", |b| {
        b.iter(|| black_box(pp.encode()))
    });
    g.bench_function("push_pull_100/decode", |b| {
        b.iter(|| black_box(packet::decode_stream(black_box(&pp_bytes), None, 1000)))
    });
    g.finish();

    // Answering a probe from a known member (decode, ack, piggyback check) on a member that knows 1 000 others;
    // the clock stands still so no timer runs inside the measurement.
    let mut g = c.benchmark_group("gossip_step");
    let mut s = member_knowing(1000);
    let mut actions: Vec<Action> = Vec::new();
    let _ = s.step(1, Input::Tick, &mut actions);
    let probe = Message::Ping(Ping {
        seq_no: 5,
        node: "bench".into(),
        source_addr: vec![10, 0, 0, 7],
        source_port: 8301,
        source_node: "node-00007".into(),
    })
    .encode();
    let from = Addr::v4([10, 0, 0, 7], 8301);
    g.bench_function("answer_ping_1000_members", |b| {
        b.iter(|| {
            actions.clear();
            let input = Input::Packet {
                from: from.clone(),
                bytes: probe.clone(),
            };
            let _ = s.step(1, input, &mut actions);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("dissemination");
    g.sample_size(10);
    for n in [100usize, 1000, 10_000] {
        let mut seed = 0;
        g.bench_function(format!("model_{n}"), |b| {
            b.iter(|| {
                seed += 1;
                black_box(model_dissemination(seed, n))
            })
        });
    }
    g.finish();
}

/// Median time and gossip rounds (200 ms) until 99.9 % know an event, over `seeds` seeds.
fn summary(seeds: u64) {
    println!(
        "\ngossip_fanout summary: dissemination model, LAN (200 ms, fan-out 3), {seeds} seeds"
    );
    println!(
        "  {:>7} {:>10} {:>8} {:>8}",
        "N", "median ms", "rounds", "max ms"
    );
    for n in [100usize, 1000, 10_000] {
        let mut t: Vec<u64> = (0..seeds).map(|s| model_dissemination(s, n)).collect();
        t.sort();
        let median = t[t.len() / 2];
        println!(
            "  {:>7} {:>10} {:>8.1} {:>8}",
            n,
            median,
            median as f64 / 200.0,
            t[t.len() - 1]
        );
    }
}

fn main() {
    if is_bench_run() {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c);
        c.final_summary();
        summary(21);
    } else {
        // Under `cargo test`: one token pass of each path.
        black_box(packet::decode_packet(&gossip_packet(), None, true));
        let mut s = member_knowing(50);
        let mut actions = Vec::new();
        let _ = s.step(1_000, Input::Tick, &mut actions);
        assert!(model_dissemination(1, 100) < 60_000);
    }
}
