//! The gossip simulator: N [`Swim`] members on a virtual clock and network, one seed choosing every latency, loss,
//! partition and crash. Events sit in a queue ordered by (time, seq); each member's wake-up, packets and TCP
//! push/pulls are events. Notifications are recorded so tests can ask who learned what, and when.
#![allow(dead_code)]

use cairn::gossip::{Action, Addr, Config, Input, NodeState, Swim};
use cairn::raft::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// The shape of one simulation.
#[derive(Clone, Debug)]
pub struct GossipSimConfig {
    /// Members started.
    pub members: usize,
    /// UDP packet loss, in parts per thousand.
    pub loss_per_mille: u64,
    /// One-way latency range.
    pub latency_ms: (u64, u64),
    /// Gap between successive joins during bootstrap.
    pub join_spacing_ms: u64,
    /// Timing profile of every member.
    pub profile: fn(String, Addr) -> Config,
}

impl Default for GossipSimConfig {
    fn default() -> Self {
        GossipSimConfig {
            members: 32,
            loss_per_mille: 0,
            latency_ms: (1, 5),
            join_spacing_ms: 20,
            profile: Config::lan,
        }
    }
}

enum Ev {
    Wake(usize),
    Packet {
        to: usize,
        from: Addr,
        bytes: Vec<u8>,
    },
    Stream {
        to: usize,
        from: usize,
        id: u64,
        bytes: Vec<u8>,
    },
    Reply {
        to: usize,
        id: u64,
        bytes: Option<Vec<u8>>,
    },
    Local {
        to: usize,
        input: Input,
    },
}

/// A running simulation.
pub struct GossipSim {
    pub seed: u64,
    pub cfg: GossipSimConfig,
    pub nodes: Vec<Swim>,
    /// Whether each member is running.
    pub up: Vec<bool>,
    /// Partition group of each member: packets only flow within a group.
    pub group: Vec<u8>,
    pub now: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    wake_at: Vec<u64>,
    rng: Rng,
    conns: BTreeMap<u64, (usize, u64)>,
    next_conn: u64,
    /// (observer, subject) → when the observer first reported the subject failed.
    pub failed_reports: BTreeMap<(usize, String), u64>,
    /// Failure reports about members that were running and reachable at the time.
    pub false_failures: Vec<(u64, usize, String)>,
    /// (observer, event name) → when the observer delivered it.
    pub events_seen: BTreeMap<(usize, String), u64>,
    /// Packets sent, dropped.
    pub packets: (u64, u64),
    /// Bytes sent in packets.
    pub packet_bytes: u64,
    pub steps: u64,
    trace: bool,
}

/// The address of member `i`.
pub fn addr(i: usize) -> Addr {
    Addr::v4([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 8301)
}

fn index_of(a: &Addr) -> Option<usize> {
    if a.ip.len() != 4 || a.ip[0] != 10 {
        return None;
    }
    Some(((a.ip[1] as usize) << 16) | ((a.ip[2] as usize) << 8) | a.ip[3] as usize)
}

/// The name of member `i`.
pub fn name(i: usize) -> String {
    format!("node-{i}")
}

impl GossipSim {
    /// Members created (not started: call [`GossipSim::bootstrap`]).
    pub fn new(seed: u64, cfg: GossipSimConfig) -> GossipSim {
        let mut rng = Rng::new(seed);
        let nodes = (0..cfg.members)
            .map(|i| {
                Swim::new((cfg.profile)(name(i), addr(i)), rng.next_u64(), None).expect("config")
            })
            .collect();
        GossipSim {
            seed,
            nodes,
            up: vec![true; cfg.members],
            group: vec![0; cfg.members],
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            wake_at: vec![u64::MAX; cfg.members],
            rng,
            conns: BTreeMap::new(),
            next_conn: 0,
            failed_reports: BTreeMap::new(),
            false_failures: Vec::new(),
            events_seen: BTreeMap::new(),
            packets: (0, 0),
            packet_bytes: 0,
            steps: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            cfg,
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    fn latency(&mut self) -> u64 {
        let (lo, hi) = self.cfg.latency_ms;
        self.rng.range(lo, hi + 1)
    }

    fn lost(&mut self) -> bool {
        self.rng.range(0, 1000) < self.cfg.loss_per_mille
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.up[a] && self.up[b] && self.group[a] == self.group[b]
    }

    /// Starts member 0 alone, then joins members 1..count each through a random earlier one; the others stay
    /// down until [`GossipSim::start_and_join`].
    pub fn bootstrap(&mut self, count: usize) {
        let spacing = self.cfg.join_spacing_ms;
        let now = self.now;
        self.push(
            now,
            Ev::Local {
                to: 0,
                input: Input::Tick,
            },
        );
        for i in count..self.nodes.len() {
            self.up[i] = false;
        }
        for i in 1..count {
            let seed = self.rng.range(0, i as u64) as usize;
            self.push(
                now + i as u64 * spacing,
                Ev::Local {
                    to: i,
                    input: Input::Join {
                        seeds: vec![addr(seed)],
                    },
                },
            );
        }
    }

    /// Starts member `i` and joins it through `seed`.
    pub fn start_and_join(&mut self, i: usize, seed: usize) {
        self.up[i] = true;
        self.local(
            i,
            Input::Join {
                seeds: vec![addr(seed)],
            },
        );
    }

    /// Queues a local request for member `i` now.
    pub fn local(&mut self, i: usize, input: Input) {
        let now = self.now;
        self.push(now, Ev::Local { to: i, input });
    }

    /// Stops member `i` (it processes nothing more).
    pub fn crash(&mut self, i: usize) {
        self.up[i] = false;
    }

    /// Runs events until virtual time `until`.
    pub fn run_until(&mut self, until: u64) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((t, _), ev) = entry.remove_entry();
            self.now = t;
            self.handle(ev);
        }
        self.now = until;
    }

    /// Runs until `done` holds (checked every `check_ms`) or `until`; returns when it held.
    pub fn run_until_true(
        &mut self,
        until: u64,
        check_ms: u64,
        done: impl Fn(&GossipSim) -> bool,
    ) -> Option<u64> {
        while self.now < until {
            let next = (self.now + check_ms).min(until);
            self.run_until(next);
            if done(self) {
                return Some(self.now);
            }
        }
        None
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake(i) => {
                if self.wake_at[i] == self.now {
                    self.step(i, Input::Tick);
                }
            }
            Ev::Local { to, input } => self.step(to, input),
            Ev::Packet { to, from, bytes } => {
                if self.up[to] {
                    self.step(to, Input::Packet { from, bytes });
                }
            }
            Ev::Stream {
                to,
                from,
                id,
                bytes,
            } => {
                if !self.reachable(to, from) {
                    let at = self.now + 1_000;
                    self.push(
                        at,
                        Ev::Reply {
                            to: from,
                            id,
                            bytes: None,
                        },
                    );
                    return;
                }
                self.next_conn += 1;
                let conn = self.next_conn;
                self.conns.insert(conn, (from, id));
                self.step(
                    to,
                    Input::Stream {
                        conn,
                        from: addr(from),
                        bytes,
                    },
                );
                if self.conns.remove(&conn).is_some() {
                    let at = self.now + self.latency();
                    self.push(
                        at,
                        Ev::Reply {
                            to: from,
                            id,
                            bytes: None,
                        },
                    );
                }
            }
            Ev::Reply { to, id, bytes } => {
                if self.up[to] {
                    let input = match bytes {
                        Some(bytes) => Input::DialReply { id, bytes },
                        None => Input::DialFailed { id },
                    };
                    self.step(to, input);
                }
            }
        }
    }

    fn step(&mut self, i: usize, input: Input) {
        if !self.up[i] {
            return;
        }
        self.steps += 1;
        let mut actions = Vec::new();
        let result = self.nodes[i].step(self.now, input, &mut actions);
        if self.trace {
            if let Err(e) = &result {
                eprintln!("{} node-{i}: {e}", self.now);
            }
        }
        for a in actions {
            if self.trace && !matches!(a, Action::WakeAt { .. } | Action::SendPacket { .. }) {
                eprintln!("{} node-{i}: {a:?}", self.now);
            }
            match a {
                Action::SendPacket { to, bytes } => {
                    self.packets.0 += 1;
                    self.packet_bytes += bytes.len() as u64;
                    let Some(j) = index_of(&to).filter(|&j| j < self.nodes.len()) else {
                        continue;
                    };
                    if self.lost() || self.group[i] != self.group[j] {
                        self.packets.1 += 1;
                        continue;
                    }
                    let at = self.now + self.latency();
                    self.push(
                        at,
                        Ev::Packet {
                            to: j,
                            from: addr(i),
                            bytes,
                        },
                    );
                }
                Action::Dial { id, to, bytes } => {
                    let j = index_of(&to).filter(|&j| j < self.nodes.len());
                    let at = self.now + self.latency();
                    match j {
                        // TCP retransmits: a stream fails only when the peer is down or partitioned away.
                        Some(j) => self.push(
                            at,
                            Ev::Stream {
                                to: j,
                                from: i,
                                id,
                                bytes,
                            },
                        ),
                        _ => self.push(
                            at + 1_000,
                            Ev::Reply {
                                to: i,
                                id,
                                bytes: None,
                            },
                        ),
                    }
                }
                Action::StreamReply { conn, bytes } => {
                    if let Some((from, id)) = self.conns.remove(&conn) {
                        let at = self.now + self.latency();
                        let bytes = self.reachable(i, from).then_some(bytes);
                        self.push(
                            at,
                            Ev::Reply {
                                to: from,
                                id,
                                bytes,
                            },
                        );
                    }
                }
                Action::WakeAt { at_ms } => {
                    self.wake_at[i] = at_ms.max(self.now);
                    let at = self.wake_at[i];
                    self.push(at, Ev::Wake(i));
                }
                Action::MemberFailed(m) => {
                    let subject = m.name.clone();
                    if let Some(j) = index_of(&m.addr) {
                        if j < self.nodes.len() && self.reachable(i, j) {
                            self.false_failures.push((self.now, i, subject.clone()));
                        }
                    }
                    self.failed_reports.entry((i, subject)).or_insert(self.now);
                }
                Action::UserEvent { name, .. } => {
                    self.events_seen.entry((i, name)).or_insert(self.now);
                }
                _ => {}
            }
        }
    }

    /// Running members.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.up[i]).collect()
    }

    /// True when every running member sees every running member alive and every stopped one dead or left.
    pub fn converged(&self) -> bool {
        let live = self.live();
        live.iter().all(|&i| {
            (0..self.nodes.len()).all(|j| {
                let state = self.nodes[i].member(&name(j)).map(|m| m.state);
                if self.up[j] {
                    state == Some(NodeState::Alive)
                } else {
                    state.is_none_or(|s| s.dead_or_left())
                }
            })
        })
    }

    /// Running members that see `subject` in `want` (any of them).
    pub fn count_seeing(&self, subject: &str, want: &[NodeState]) -> usize {
        self.live()
            .iter()
            .filter(|&&i| {
                self.nodes[i]
                    .member(subject)
                    .is_some_and(|m| want.contains(&m.state))
            })
            .count()
    }

    /// Members that delivered user event `event`.
    pub fn count_event(&self, event: &str) -> usize {
        self.live()
            .iter()
            .filter(|&&i| self.events_seen.contains_key(&(i, event.to_string())))
            .count()
    }

    /// A short description of who misses what, for failure messages.
    pub fn describe_divergence(&self) -> String {
        let mut out = Vec::new();
        for &i in &self.live() {
            for j in 0..self.nodes.len() {
                let state = self.nodes[i].member(&name(j)).map(|m| m.state);
                let ok = if self.up[j] {
                    state == Some(NodeState::Alive)
                } else {
                    state.is_none_or(|s| s.dead_or_left())
                };
                if !ok && out.len() < 10 {
                    out.push(format!(
                        "node-{i} sees node-{j} (up={}) as {state:?}",
                        self.up[j]
                    ));
                }
            }
        }
        out.join("; ")
    }

    /// Distinct (observer, subject) failure reports.
    pub fn failure_observers(&self, subject: &str) -> BTreeSet<usize> {
        self.failed_reports
            .keys()
            .filter(|(_, s)| s == subject)
            .map(|(o, _)| *o)
            .collect()
    }
}
