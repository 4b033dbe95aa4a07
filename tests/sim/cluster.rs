//! The cluster simulator: N Raft servers on a virtual clock and network, storage on `MemDisk`, one seed choosing
//! every fault (drop, duplicate, reorder/delay, symmetric and asymmetric partitions, crashes between events and
//! power cuts in the middle of a write), invariants after every event, a client workload whose history is checked
//! for linearizability, then healing and a bounded wait for convergence.

use super::kv::{Command, Kv};
use super::linearizability::{History, Op, OpId, OpResult, Verdict};
use cairn::raft::codec::{
    decode_configuration, decode_payload, encode_configuration, encode_payload,
};
use cairn::raft::rng::Rng;
use cairn::raft::{
    Action, Configuration, Entry, HardState, Index, Input, MembershipChange, Message, Node,
    Options, Payload, RaftError, RestoreState, Role, Server, ServerId, Suffrage, Term,
};
use cairn_storage::{DataDir, EntryRef, Log, LogOptions, MemDisk, MetaStore, SnapshotStore};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;

/// The shape of one simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Raft servers.
    pub servers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Virtual time with faults on.
    pub chaos_ms: u64,
    /// After healing, the cluster must converge within this much virtual time.
    pub converge_ms: u64,
    /// Take a snapshot every this many applied entries.
    pub snapshot_every: u64,
    /// Inject faults during the chaos phase (else only the client load runs).
    pub faults: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            servers: 5,
            clients: 4,
            chaos_ms: 20_000,
            converge_ms: 60_000,
            snapshot_every: 40,
            faults: true,
        }
    }
}

/// A summary of a finished run, for the test's report.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Events processed.
    pub events: u64,
    /// Client operations recorded.
    pub ops: usize,
    /// Operations that completed.
    pub completed: usize,
    /// Crashes injected.
    pub crashes: u64,
    /// Highest term reached.
    pub max_term: Term,
    /// Highest commit index reached.
    pub commit: Index,
    /// Snapshots installed on followers.
    pub snapshots_installed: u64,
    /// Compare-and-set operations that succeeded.
    pub cas_succeeded: u64,
}

const TICK_MS: u64 = 10;
const OP_TIMEOUT_MS: u64 = 5_000;
const TRACE_LEN: usize = 60;
const KEYS: u64 = 3;

enum Event {
    Tick,
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
    },
    Snapshot {
        from: usize,
        to: usize,
        leader_term: Term,
        index: Index,
        term: Term,
        data: Vec<u8>,
        config: Configuration,
    },
    ClientNext {
        client: usize,
    },
    Fault,
    Restart {
        node: usize,
    },
}

/// One server's durable storage and running state.
struct Live {
    raft: Node,
    _dir: DataDir<MemDisk>,
    log: Log<MemDisk>,
    meta: MetaStore<MemDisk>,
    snaps: SnapshotStore<MemDisk>,
    kv: Kv,
    applied: Index,
    last_commit: Index,
    incoming: Option<(Index, Term, Vec<u8>, Configuration)>,
    proposals: BTreeMap<Index, (u64, Term)>,
    reads: Vec<(u64, Index)>,
}

struct SimNode {
    id: ServerId,
    disk: MemDisk,
    live: Option<Live>,
}

struct Pending {
    id: OpId,
    op: Op,
    node: usize,
    ctx: u64,
    started: u64,
}

struct Client {
    target: usize,
    pending: Option<Pending>,
    /// The value this client last read or wrote per key (CAS expectations come from it).
    seen: BTreeMap<u64, Option<u64>>,
}

struct Net {
    drop_pct: u64,
    dup_pct: u64,
    delay_ms_max: u64,
    blocked: Vec<Vec<bool>>,
}

/// The simulator.
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    nodes: Vec<SimNode>,
    net: Net,
    clients: Vec<Client>,
    history: History,
    next_ctx: u64,
    ctx_client: BTreeMap<u64, usize>,
    global_applied: BTreeMap<Index, (Term, Payload)>,
    leaders: BTreeMap<Term, ServerId>,
    checked_leader_terms: BTreeMap<usize, Term>,
    trace: VecDeque<String>,
    clients_on: bool,
    report: SimReport,
}

fn bootstrap_config(n: usize) -> Configuration {
    Configuration::new(
        (0..n)
            .map(|i| Server {
                id: ServerId(i as u64 + 1),
                suffrage: Suffrage::Voter,
                address: format!("127.0.0.{}:8300", i + 1),
            })
            .collect(),
    )
}

fn options(id: ServerId) -> Options {
    Options {
        trailing_entries: 16,
        append_entries_max: 64,
        inflight_max: 8,
        snapshot_timeout_ms: 5_000,
        ..Options::consul(id, 1)
    }
}

fn data_dir() -> &'static Path {
    Path::new("/data")
}

type Fail = String;

mod checks;
mod clients;
mod faults;
mod recovery;

use recovery::{bootstrap_disk, recover};

impl Sim {
    /// A cluster of `cfg.servers` bootstrapped servers, ready to run under `seed`.
    pub fn new(seed: u64, cfg: SimConfig) -> Result<Sim, Fail> {
        let mut sim = Sim {
            rng: Rng::new(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes: Vec::new(),
            net: Net {
                drop_pct: 0,
                dup_pct: 0,
                delay_ms_max: 20,
                blocked: vec![vec![false; cfg.servers]; cfg.servers],
            },
            clients: (0..cfg.clients)
                .map(|c| Client {
                    target: c % cfg.servers,
                    pending: None,
                    seen: BTreeMap::new(),
                })
                .collect(),
            history: History::new(),
            next_ctx: 1,
            ctx_client: BTreeMap::new(),
            global_applied: BTreeMap::new(),
            leaders: BTreeMap::new(),
            checked_leader_terms: BTreeMap::new(),
            trace: VecDeque::new(),
            clients_on: true,
            report: SimReport::default(),
            cfg,
        };
        let config = bootstrap_config(sim.cfg.servers);
        for i in 0..sim.cfg.servers {
            let disk = MemDisk::new();
            bootstrap_disk(&disk, &config).map_err(|e| format!("bootstrap: {e}"))?;
            sim.nodes.push(SimNode {
                id: ServerId(i as u64 + 1),
                disk,
                live: None,
            });
            sim.restart(i)?;
        }
        sim.schedule(TICK_MS, Event::Tick);
        for c in 0..sim.cfg.clients {
            let at = 100 + sim.rng.range(0, 100);
            sim.schedule(at, Event::ClientNext { client: c });
        }
        let first_fault = 500 + sim.rng.range(0, 1000);
        sim.schedule(first_fault, Event::Fault);
        Ok(sim)
    }

    /// Runs chaos, heals, waits for convergence, reads every key, and checks the history.
    pub fn run(&mut self) -> Result<SimReport, Fail> {
        self.run_until(self.cfg.chaos_ms)?;
        self.heal();
        let deadline = self.now + self.cfg.converge_ms;
        while !self.converged() {
            if self.now >= deadline {
                let state = self.describe();
                return Err(self.fail(format!(
                    "no convergence within {} ms after healing\n{state}",
                    self.cfg.converge_ms
                )));
            }
            self.repair_membership()?;
            self.run_until(self.now + 100)?;
        }
        self.final_reads()?;
        self.check_log_matching()?;
        match self.history.check() {
            Verdict::Linearizable => {}
            other => return Err(self.fail(format!("history is not linearizable: {other:?}"))),
        }
        self.report.ops = self.history.len();
        self.report.commit = self
            .nodes
            .iter()
            .filter_map(|n| n.live.as_ref())
            .map(|l| l.raft.commit_index())
            .max()
            .unwrap_or(0);
        Ok(self.report.clone())
    }

    /// One line per node: role, term, leader, commit, applied, log bounds.
    fn describe(&self) -> String {
        let mut lines = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            match &n.live {
                None => lines.push(format!("n{i}: down")),
                Some(l) => lines.push(format!(
                    "n{i}: {:?} term {} leader {:?} commit {} applied {} log {}..={} snap {} pending-client {}",
                    l.raft.role(),
                    l.raft.term(),
                    l.raft.leader().map(|x| x.0 - 1),
                    l.raft.commit_index(),
                    l.applied,
                    l.raft.log().first_index(),
                    l.raft.log().last_index(),
                    l.raft.log().snapshot_index(),
                    self.clients.iter().filter(|c| c.pending.as_ref().is_some_and(|p| p.node == i)).count()
                ) + &self.nodes.iter().filter_map(|m| l.raft.progress_of(m.id).map(|p| format!("\n    -> {:?}: {p:?}", m.id))).collect::<String>()),
            }
        }
        lines.join("\n")
    }

    fn fail(&self, why: String) -> String {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        format!(
            "{why}\nat {} ms; last events:\n  {}",
            self.now,
            trace.join("\n  ")
        )
    }

    fn note(&mut self, line: String) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{:>6} {line}", self.now);
        }
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>6} {line}", self.now));
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay_ms, self.seq)));
        self.events.insert(self.seq, event);
    }

    fn run_until(&mut self, until: u64) -> Result<(), Fail> {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&seq).expect("scheduled event");
            self.handle(event)?;
            self.report.events += 1;
            self.check_invariants()?;
            if self.report.events.is_multiple_of(200) {
                self.check_log_matching()?;
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), Fail> {
        match event {
            Event::Tick => {
                for i in 0..self.nodes.len() {
                    self.step(i, Input::Tick)?;
                }
                self.expire_client_ops();
                self.schedule(TICK_MS, Event::Tick);
            }
            Event::Deliver { from, to, msg } => {
                let from_id = self.nodes[from].id;
                self.step(to, Input::Message { from: from_id, msg })?;
            }
            Event::Snapshot {
                from,
                to,
                leader_term,
                index,
                term,
                data,
                config,
            } => {
                if let Some(live) = self.nodes[to].live.as_mut() {
                    live.incoming = Some((index, term, data, config.clone()));
                    let from_id = self.nodes[from].id;
                    let msg = Message::InstallSnapshot {
                        term: leader_term,
                        index,
                        last_term: term,
                        configuration: config,
                    };
                    self.note(format!("n{to} snapshot {index}/{term} from n{from}"));
                    self.step(to, Input::Message { from: from_id, msg })?;
                }
            }
            Event::ClientNext { client } => self.client_next(client)?,
            Event::Fault => {
                if !self.cfg.faults || self.now >= self.cfg.chaos_ms {
                    return Ok(());
                }
                self.inject_fault()?;
                let next = 300 + self.rng.range(0, 2500);
                if self.now + next < self.cfg.chaos_ms {
                    self.schedule(next, Event::Fault);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].live.is_none() {
                    self.restart(node)?;
                }
            }
        }
        Ok(())
    }

    /// Feeds one input to a live node and carries out its actions (and the follow-ups they cause).
    fn step(&mut self, i: usize, input: Input) -> Result<(), Fail> {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        live.raft.step(self.now, input, &mut out);
        self.carry_out(i, out)
    }

    /// Carries out actions in order. Appends are batched (one write, one sync) until something must follow them:
    /// a send that waits for persistence, a hard-state save, a truncation, or a snapshot restore. After each flush
    /// the node is told what is durable, and what that causes joins the queue. A power cut ends it all.
    fn carry_out(&mut self, i: usize, actions: Vec<Action>) -> Result<(), Fail> {
        let mut queue: VecDeque<Action> = actions.into();
        let mut batch: Vec<Entry> = Vec::new();
        while let Some(action) = queue.pop_front() {
            let needs_flush = match &action {
                Action::Send { after_persist, .. } => *after_persist,
                Action::TruncateLog { .. } | Action::RestoreSnapshot { .. } => true,
                _ => false,
            };
            if needs_flush && !batch.is_empty() && !self.flush(i, &mut batch, &mut queue)? {
                return Ok(());
            }
            let alive = match action {
                Action::AppendLog(entries) => {
                    batch.extend(entries);
                    true
                }
                other => self.carry_out_one(i, other)?,
            };
            if !alive {
                return Ok(());
            }
            if queue.is_empty() && !batch.is_empty() && !self.flush(i, &mut batch, &mut queue)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Appends the batch with one write and one sync, then reports it durable to the node. False on a power cut.
    fn flush(
        &mut self,
        i: usize,
        batch: &mut Vec<Entry>,
        queue: &mut VecDeque<Action>,
    ) -> Result<bool, Fail> {
        let entries = std::mem::take(batch);
        let encoded: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| {
                let mut b = Vec::new();
                encode_payload(&e.payload, &mut b);
                b
            })
            .collect();
        let refs: Vec<EntryRef<'_>> = entries
            .iter()
            .zip(&encoded)
            .map(|(e, b)| EntryRef {
                index: e.index,
                term: e.term,
                payload: b,
            })
            .collect();
        let live = self.nodes[i]
            .live
            .as_mut()
            .expect("live while carrying out");
        if let Err(e) = live.log.append(&refs) {
            return self.storage_failed(i, format!("append: {e}"));
        }
        let last = entries.last().expect("non-empty batch");
        let mut out = Vec::new();
        live.raft.step(
            self.now,
            Input::Persisted {
                index: last.index,
                term: last.term,
            },
            &mut out,
        );
        queue.extend(out);
        Ok(true)
    }

    /// A storage call failed: only a simulated power cut may do that. The node dies; false.
    fn storage_failed(&mut self, i: usize, why: String) -> Result<bool, Fail> {
        if !why.contains("simulated power loss") {
            return Err(self.fail(format!("n{i} storage error: {why}")));
        }
        self.crash(i);
        Ok(false)
    }

    fn carry_out_one(&mut self, i: usize, action: Action) -> Result<bool, Fail> {
        match action {
            Action::SaveHardState(hs) => {
                let live = self.nodes[i].live.as_mut().expect("live");
                let state = cairn_storage::HardState {
                    term: hs.term,
                    vote: hs.vote.map(|v| v.0.to_le_bytes().to_vec()),
                    commit: hs.commit,
                };
                if let Err(e) = live.meta.save(&state) {
                    return self.storage_failed(i, format!("save hard state: {e}"));
                }
            }
            Action::TruncateLog { from } => {
                let live = self.nodes[i].live.as_mut().expect("live");
                let result = if from < live.log.first_index() {
                    live.log.reset(from)
                } else {
                    live.log.truncate_from(from)
                };
                if let Err(e) = result {
                    return self.storage_failed(i, format!("truncate: {e}"));
                }
            }
            Action::AppendLog(_) => unreachable!("batched by carry_out"),
            Action::Send { to, msg, .. } => self.send(i, to, msg),
            Action::Apply(entries) => self.apply(i, entries)?,
            Action::SendSnapshot { to, index, term } => self.send_snapshot(i, to, index, term)?,
            Action::RestoreSnapshot { index, term } => {
                return self.restore_snapshot(i, index, term)
            }
            Action::Proposed { ctx, index, term } => {
                let live = self.nodes[i].live.as_mut().expect("live");
                live.proposals.insert(index, (ctx, term));
            }
            Action::ReadReady { ctx, index } => {
                let live = self.nodes[i].live.as_mut().expect("live");
                live.reads.push((ctx, index));
                self.serve_reads(i);
            }
            Action::Rejected { ctx, error } => self.rejected(ctx, error),
            Action::TransferDone { .. } => {}
            Action::LeaderChanged { term, leader } => {
                self.note(format!("n{i} term {term} leader {:?}", leader.map(|l| l.0)));
            }
        }
        Ok(self.nodes[i].live.is_some())
    }

    fn send(&mut self, from: usize, to: ServerId, msg: Message) {
        let to = (to.0 - 1) as usize;
        if to >= self.nodes.len()
            || self.net.blocked[from][to]
            || self.rng.range(0, 100) < self.net.drop_pct
        {
            return;
        }
        let copies = if self.rng.range(0, 100) < self.net.dup_pct {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = 1 + self.rng.range(0, self.net.delay_ms_max);
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// Applies committed entries: checks state-machine safety, updates the map, completes proposals.
    fn apply(&mut self, i: usize, entries: Vec<Entry>) -> Result<(), Fail> {
        for e in entries {
            if let Some((term, payload)) = self.global_applied.get(&e.index) {
                if *term != e.term || *payload != e.payload {
                    return Err(self.fail(format!("state machine safety: n{i} applied {} term {} where term {term} was applied", e.index, e.term)));
                }
            } else {
                self.global_applied
                    .insert(e.index, (e.term, e.payload.clone()));
            }
            let applied = self.nodes[i].live.as_ref().expect("live").applied;
            if e.index != applied + 1 {
                return Err(self.fail(format!("n{i} applied {} after {applied}", e.index)));
            }
            let live = self.nodes[i].live.as_mut().expect("live");
            live.applied = e.index;
            let outcome = match &e.payload {
                Payload::Command(bytes) => {
                    let cmd =
                        Command::decode(bytes).ok_or_else(|| "undecodable command".to_string())?;
                    Some(live.kv.apply(&cmd))
                }
                _ => None,
            };
            if let Some((ctx, term)) = live.proposals.remove(&e.index) {
                match outcome {
                    Some(took) if term == e.term => self.complete_write(ctx, took),
                    _ => self.fail_op(ctx),
                }
            }
        }
        self.serve_reads(i);
        self.maybe_snapshot(i)
    }

    fn serve_reads(&mut self, i: usize) {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return;
        };
        let applied = live.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = live
            .reads
            .drain(..)
            .partition(|(_, index)| *index <= applied);
        live.reads = waiting;
        for (ctx, _) in ready {
            let Some(&c) = self.ctx_client.get(&ctx) else {
                continue;
            };
            let Some(p) = self.clients[c].pending.as_ref() else {
                continue;
            };
            let value = self.nodes[i]
                .live
                .as_ref()
                .expect("live")
                .kv
                .get(p.op.key());

            self.complete(ctx, OpResult::Read(value));
        }
    }

    fn maybe_snapshot(&mut self, i: usize) -> Result<(), Fail> {
        let live = self.nodes[i].live.as_mut().expect("live");
        let index = live.applied;
        if index < live.raft.log().snapshot_index() + self.cfg.snapshot_every {
            return Ok(());
        }
        let term = live
            .raft
            .log()
            .term(index)
            .expect("applied entries are held");
        let mut meta = Vec::new();
        encode_configuration(&live.raft.config_at(index), &mut meta);
        if let Err(e) = live.snaps.write(index, term, 1, &meta, &live.kv.encode()) {
            self.storage_failed(i, format!("snapshot: {e}"))?;
            return Ok(());
        }
        let mut out = Vec::new();
        live.raft
            .step(self.now, Input::SnapshotTaken { index }, &mut out);
        let keep_from = live.raft.log().first_index();
        if let Err(e) = live.log.purge_through(keep_from.saturating_sub(1)) {
            self.storage_failed(i, format!("purge: {e}"))?;
            return Ok(());
        }
        self.carry_out(i, out)
    }

    fn send_snapshot(
        &mut self,
        i: usize,
        to: ServerId,
        index: Index,
        term: Term,
    ) -> Result<(), Fail> {
        let live = self.nodes[i].live.as_mut().expect("live");
        let leader_term = live.raft.term();
        let loaded = live
            .snaps
            .load_latest()
            .map_err(|e| format!("n{i} load snapshot: {e}"))?;
        let to_i = (to.0 - 1) as usize;
        let found = loaded.as_ref().map(|s| (s.header.index, s.header.term));
        self.note(format!(
            "n{i} sends snapshot {index}/{term} to n{to_i} (stored {found:?})"
        ));
        match loaded {
            Some(s) if s.header.index == index && s.header.term == term => {
                let config =
                    decode_configuration(&s.meta).map_err(|e| format!("snapshot meta: {e}"))?;
                if !self.net.blocked[i][to_i] && self.rng.range(0, 100) >= self.net.drop_pct {
                    let delay = 20 + self.rng.range(0, 200);
                    let data = s.payload.to_vec();
                    self.schedule(
                        delay,
                        Event::Snapshot {
                            from: i,
                            to: to_i,
                            leader_term,
                            index,
                            term,
                            data,
                            config,
                        },
                    );
                }
            }
            _ => {
                let mut out = Vec::new();
                let live = self.nodes[i].live.as_mut().expect("live");
                live.raft
                    .step(self.now, Input::SnapshotSendFailed { to }, &mut out);
                self.carry_out(i, out)?;
            }
        }
        Ok(())
    }

    fn restore_snapshot(&mut self, i: usize, index: Index, term: Term) -> Result<bool, Fail> {
        let live = self.nodes[i].live.as_mut().expect("live");
        let Some((in_index, in_term, data, config)) = live.incoming.take() else {
            return Err(self.fail(format!("n{i} restores a snapshot it never received")));
        };
        if (in_index, in_term) != (index, term) {
            return Err(self.fail(format!(
                "n{i} restores {index}/{term} but received {in_index}/{in_term}"
            )));
        }
        let mut meta = Vec::new();
        encode_configuration(&config, &mut meta);
        if let Err(e) = live.snaps.write(index, term, 1, &meta, &data) {
            return self.storage_failed(i, format!("install snapshot: {e}"));
        }
        if let Err(e) = live.log.reset(index + 1) {
            return self.storage_failed(i, format!("reset log: {e}"));
        }
        live.kv = Kv::decode(&data).ok_or_else(|| "bad snapshot payload".to_string())?;
        live.applied = index;
        live.proposals.clear();
        self.report.snapshots_installed += 1;
        Ok(true)
    }

    /// Kills node `i`: its disk keeps what a crash keeps (unsynced bytes lost, the last write torn).
    fn crash(&mut self, i: usize) {
        if self.nodes[i].live.take().is_none() {
            return;
        }
        self.report.crashes += 1;
        let mut rng = Rng::new(self.rng.next_u64());
        self.nodes[i].disk = self.nodes[i].disk.crash(|n| rng.range(0, n));
        self.note(format!("n{i} crashed"));
        for c in 0..self.clients.len() {
            if self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| p.node == i)
            {
                self.abandon(c);
            }
        }
        if self.now < self.cfg.chaos_ms {
            let delay = 200 + self.rng.range(0, 3000);
            self.schedule(delay, Event::Restart { node: i });
        }
    }

    /// Recovers node `i` from its disk.
    fn restart(&mut self, i: usize) -> Result<(), Fail> {
        let node = &self.nodes[i];
        let (live, trimmed) = match recover(node.id, &node.disk, self.rng.next_u64(), self.now) {
            Ok(r) => r,
            Err(e) if e.contains("simulated power loss") => {
                // The power went out again during recovery: crash from here.
                let mut rng = Rng::new(self.rng.next_u64());
                self.nodes[i].disk = self.nodes[i].disk.crash(|n| rng.range(0, n));
                self.note(format!("n{i} lost power during recovery"));
                let delay = 200 + self.rng.range(0, 1000);
                self.schedule(delay, Event::Restart { node: i });
                return Ok(());
            }
            Err(e) => return Err(self.fail(format!("n{i} recovery: {e}"))),
        };
        self.nodes[i].live = Some(live);
        self.note(format!(
            "n{i} restarted{}",
            if trimmed {
                " (trimmed a diverged log)"
            } else {
                ""
            }
        ));
        self.step(i, Input::Tick)
    }
}
