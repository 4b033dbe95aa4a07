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

/// Opens a node's storage after a crash and rebuilds its Raft node and state machine.
fn recover(id: ServerId, disk: &MemDisk, seed: u64, now: u64) -> Result<(Live, bool), String> {
    let dir = DataDir::open(disk.clone(), data_dir()).map_err(|e| e.to_string())?;
    let (mut log, _) = dir
        .open_log(LogOptions {
            segment_bytes_max: 4096,
        })
        .map_err(|e| e.to_string())?;
    let meta = dir.open_meta().map_err(|e| e.to_string())?;
    let snaps = dir.open_snapshots(2).map_err(|e| e.to_string())?;
    let (kv, snapshot) = match snaps.load_latest().map_err(|e| e.to_string())? {
        Some(s) => {
            let config = decode_configuration(&s.meta)?;
            let kv = Kv::decode(&s.payload).ok_or("bad snapshot payload")?;
            (kv, Some((s.header.index, s.header.term, config)))
        }
        None => (Kv::default(), None),
    };
    let stored = log
        .read(log.first_index(), log.last_index() + 1, u64::MAX)
        .map_err(|e| e.to_string())?;
    let entries = stored
        .into_iter()
        .map(|e| {
            decode_payload(&e.payload).map(|payload| Entry {
                index: e.index,
                term: e.term,
                payload,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hs = meta.state();
    let vote = match &hs.vote {
        Some(b) => Some(ServerId(u64::from_le_bytes(
            b.as_slice().try_into().map_err(|_| "bad vote")?,
        ))),
        None => None,
    };
    let hard_state = HardState {
        term: hs.term,
        vote,
        commit: hs.commit,
    };
    let snap_index = snapshot.as_ref().map_or(0, |s| s.0);
    let raft = Node::new(
        options(id),
        seed,
        RestoreState {
            hard_state,
            snapshot,
            entries,
        },
        now,
    );
    // The stored log must hold exactly the entries Raft kept: cut a diverged suffix, or start it after the
    // snapshot when the snapshot got ahead of it (a crash between installing a snapshot and resetting the log).
    let kept = raft.log().last_index();
    let trimmed = log.last_index() != kept;
    if trimmed {
        let result = if (log.first_index()..=log.last_index()).contains(&kept) {
            log.truncate_from(kept + 1)
        } else {
            log.reset(kept + 1)
        };
        result.map_err(|e| e.to_string())?;
    }
    let live = Live {
        raft,
        _dir: dir,
        log,
        meta,
        snaps,
        kv,
        applied: snap_index,
        last_commit: 0,
        incoming: None,
        proposals: BTreeMap::new(),
        reads: Vec::new(),
    };
    Ok((live, trimmed))
}

fn bootstrap_disk(disk: &MemDisk, config: &Configuration) -> Result<(), String> {
    let dir = DataDir::open(disk.clone(), data_dir()).map_err(|e| e.to_string())?;
    let (mut log, _) = dir
        .open_log(LogOptions {
            segment_bytes_max: 4096,
        })
        .map_err(|e| e.to_string())?;
    let entry = Node::bootstrap_entry(config.clone());
    let mut payload = Vec::new();
    encode_payload(&entry.payload, &mut payload);
    log.append(&[EntryRef {
        index: entry.index,
        term: entry.term,
        payload: &payload,
    }])
    .map_err(|e| e.to_string())
}

impl Sim {
    fn client_next(&mut self, c: usize) -> Result<(), Fail> {
        if !self.clients_on || self.clients[c].pending.is_some() {
            return Ok(());
        }
        let key = self.rng.range(0, KEYS);
        let op = match self.rng.range(0, 10) {
            0..=3 => Op::Write {
                key,
                value: self.rng.range(1, 1_000_000),
            },
            4..=5 => {
                let expected = if self.rng.range(0, 4) == 0 {
                    None
                } else {
                    Some(self.rng.range(1, 1_000_000))
                };
                Op::Cas {
                    key,
                    expected,
                    new: self.rng.range(1, 1_000_000),
                }
            }
            _ => Op::Read { key },
        };
        let lease = self.rng.range(0, 2) == 0;
        self.start_op(c, op, lease)
    }

    /// Invokes `op` for client `c` on its target node (a live one).
    fn start_op(&mut self, c: usize, op: Op, lease: bool) -> Result<(), Fail> {
        let mut node = self.clients[c].target;
        if self.nodes[node].live.is_none() {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&n| self.nodes[n].live.is_some())
                .collect();
            if live.is_empty() {
                self.schedule(50, Event::ClientNext { client: c });
                return Ok(());
            }
            node = live[self.rng.range(0, live.len() as u64) as usize];
            self.clients[c].target = node;
        }
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let id = self.history.invoke(c as u64, op, self.now);
        self.clients[c].pending = Some(Pending {
            id,
            op,
            node,
            ctx,
            started: self.now,
        });
        self.ctx_client.insert(ctx, c);
        let input = match op {
            Op::Read { .. } => Input::Read { ctx, lease },
            Op::Write { key, value } => Input::Propose(vec![(
                ctx,
                Command::Write {
                    op: ctx,
                    key,
                    value,
                }
                .encode()
                .into(),
            )]),
            Op::Cas { key, expected, new } => Input::Propose(vec![(
                ctx,
                Command::Cas {
                    op: ctx,
                    key,
                    expected,
                    new,
                }
                .encode()
                .into(),
            )]),
        };
        self.step(node, input)
    }

    fn take_pending(&mut self, ctx: u64) -> Option<(usize, Pending)> {
        let c = self.ctx_client.remove(&ctx)?;
        if self.clients[c]
            .pending
            .as_ref()
            .is_some_and(|p| p.ctx == ctx)
        {
            let p = self.clients[c].pending.take()?;
            return Some((c, p));
        }
        None
    }

    fn next_op_soon(&mut self, c: usize) {
        let delay = self.rng.range(0, 20);
        self.schedule(delay, Event::ClientNext { client: c });
    }

    fn complete(&mut self, ctx: u64, result: OpResult) {
        if let Some((c, p)) = self.take_pending(ctx) {
            self.history.complete(p.id, result, self.now);
            self.report.completed += 1;
            self.next_op_soon(c);
        }
    }

    fn complete_write(&mut self, ctx: u64, took_effect: bool) {
        let result = match self.clients[self.ctx_client.get(&ctx).copied().unwrap_or(0)]
            .pending
            .as_ref()
            .map(|p| p.op)
        {
            Some(Op::Cas { .. }) => OpResult::Cas(took_effect),
            _ => OpResult::Write,
        };
        self.complete(ctx, result);
    }

    /// The operation definitely had no effect (refused, or its entry was overwritten).
    fn fail_op(&mut self, ctx: u64) {
        if let Some((c, p)) = self.take_pending(ctx) {
            self.history.fail(p.id);
            self.next_op_soon(c);
        }
    }

    fn rejected(&mut self, ctx: u64, error: RaftError) {
        let Some(&c) = self.ctx_client.get(&ctx) else {
            return;
        };
        match &error {
            RaftError::NotLeader { leader: Some(l) } => self.clients[c].target = (l.0 - 1) as usize,
            _ => self.clients[c].target = self.rng.range(0, self.nodes.len() as u64) as usize,
        }
        self.fail_op(ctx);
    }

    /// The client gives up waiting: the outcome stays unknown.
    fn abandon(&mut self, c: usize) {
        if let Some(p) = self.clients[c].pending.take() {
            self.ctx_client.remove(&p.ctx);
            self.next_op_soon(c);
        }
    }

    fn expire_client_ops(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| self.now >= p.started + OP_TIMEOUT_MS)
            {
                self.abandon(c);
            }
        }
    }

    fn inject_fault(&mut self) -> Result<(), Fail> {
        let n = self.nodes.len();
        match self.rng.range(0, 100) {
            0..=14 => {
                let side: Vec<bool> = (0..n).map(|_| self.rng.range(0, 2) == 0).collect();
                self.partition(&side);
            }
            15..=29 => {
                // Cut the leader off with at most one follower: the majority elects a new leader while the old
                // one may still believe it leads.
                let leader = (0..n).find(|&i| {
                    self.nodes[i]
                        .live
                        .as_ref()
                        .is_some_and(|l| l.raft.role() == Role::Leader)
                });
                if let Some(l) = leader {
                    let buddy = self.rng.range(0, n as u64) as usize;
                    let side: Vec<bool> = (0..n).map(|i| i == l || (i == buddy && n > 3)).collect();
                    self.partition(&side);
                }
            }
            30..=37 => {
                let (a, b) = (
                    self.rng.range(0, n as u64) as usize,
                    self.rng.range(0, n as u64) as usize,
                );
                self.net.blocked[a][b] = true;
                self.note(format!("one-way block n{a} -> n{b}"));
            }
            38..=49 => {
                self.net.blocked = vec![vec![false; n]; n];
                self.note("heal partitions".to_string());
            }
            50..=61 => {
                let i = self.rng.range(0, n as u64) as usize;
                self.crash(i);
            }
            62..=69 => {
                let i = self.rng.range(0, n as u64) as usize;
                if self.nodes[i].live.is_some() {
                    let calls = self.rng.range(0, 12);
                    self.nodes[i].disk.power_cut_after(calls);
                    self.note(format!("n{i} power cut after {calls} disk calls"));
                }
            }
            70..=79 => {
                if let Some(i) = (0..n).find(|&i| self.nodes[i].live.is_none()) {
                    self.restart(i)?;
                }
            }
            80..=86 => self.change_membership()?,
            87..=90 => {
                if let Some(l) = self.leader_index() {
                    self.note(format!("n{l} asked to transfer leadership"));
                    self.step(l, Input::TransferLeadership { ctx: 0, to: None })?;
                }
            }
            _ => {
                self.net.drop_pct = self.rng.range(0, 15);
                self.net.dup_pct = self.rng.range(0, 10);
                self.net.delay_ms_max = 5 + self.rng.range(0, 60);
                self.note(format!(
                    "net drop {}% dup {}% delay<{}ms",
                    self.net.drop_pct, self.net.dup_pct, self.net.delay_ms_max
                ));
            }
        }
        Ok(())
    }

    fn leader_index(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            self.nodes[i]
                .live
                .as_ref()
                .is_some_and(|l| l.raft.role() == Role::Leader)
        })
    }

    /// A random single-server change on the leader: remove a voter (keeping at least three), add a missing server
    /// as a non-voter, or promote a non-voter.
    fn change_membership(&mut self) -> Result<(), Fail> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let target = self.rng.range(0, self.nodes.len() as u64) as usize;
        let config = self.nodes[l]
            .live
            .as_ref()
            .expect("live")
            .raft
            .config()
            .clone();
        let id = self.nodes[target].id;
        let address = format!("127.0.0.{}:8300", target + 1);
        let change = match config.get(id).map(|s| s.suffrage) {
            Some(Suffrage::Voter) if config.voters().count() > 3 && target != l => {
                MembershipChange::Remove { id }
            }
            Some(Suffrage::Voter) => return Ok(()),
            Some(Suffrage::Nonvoter) => MembershipChange::AddVoter { id, address },
            None => MembershipChange::AddNonvoter { id, address },
        };
        self.note(format!("n{l} membership change {change:?}"));
        self.step(l, Input::ChangeMembership { ctx: 0, change })
    }

    /// After healing: adds back, one change at a time, every server the configuration lacks as a voter.
    fn repair_membership(&mut self) -> Result<(), Fail> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let raft = &self.nodes[l].live.as_ref().expect("live").raft;
        if raft.config_index() > raft.commit_index() {
            return Ok(());
        }
        let config = raft.config().clone();
        let missing = (0..self.nodes.len()).find(|&i| !config.is_voter(self.nodes[i].id));
        if let Some(i) = missing {
            let change = MembershipChange::AddVoter {
                id: self.nodes[i].id,
                address: format!("127.0.0.{}:8300", i + 1),
            };
            self.note(format!("n{l} repairs membership: {change:?}"));
            self.step(l, Input::ChangeMembership { ctx: 0, change })?;
        }
        Ok(())
    }

    fn partition(&mut self, side: &[bool]) {
        for a in 0..side.len() {
            for b in 0..side.len() {
                self.net.blocked[a][b] = side[a] != side[b];
            }
        }
        self.note(format!("partition {side:?}"));
    }

    /// Ends the chaos: no partitions, a clean network, every node running, clients stopped.
    fn heal(&mut self) {
        let n = self.nodes.len();
        self.net = Net {
            drop_pct: 0,
            dup_pct: 0,
            delay_ms_max: 10,
            blocked: vec![vec![false; n]; n],
        };
        self.clients_on = false;
        for i in 0..n {
            self.nodes[i].disk.power_cut_after(u64::MAX);
            if self.nodes[i].live.is_none() {
                self.schedule(1, Event::Restart { node: i });
            }
        }
        self.note("heal everything".to_string());
    }

    /// Every node runs, one leader leads the highest term, and every node applied everything the leader holds.
    fn converged(&self) -> bool {
        let lives: Vec<&Live> = self.nodes.iter().filter_map(|n| n.live.as_ref()).collect();
        if lives.len() != self.nodes.len() || self.clients.iter().any(|c| c.pending.is_some()) {
            return false;
        }
        let Some(leader) = lives.iter().find(|l| l.raft.role() == Role::Leader) else {
            return false;
        };
        let last = leader.raft.log().last_index();
        let full = self
            .nodes
            .iter()
            .all(|n| leader.raft.config().is_voter(n.id));
        full && leader.raft.commit_index() == last
            && lives.iter().all(|l| {
                l.applied == last && l.raft.term() == leader.raft.term() && l.kv == leader.kv
            })
    }

    /// Reads every key through the leader (linearizable reads), recorded in the history.
    fn final_reads(&mut self) -> Result<(), Fail> {
        for key in 0..KEYS {
            let leader = (0..self.nodes.len())
                .find(|&i| {
                    self.nodes[i]
                        .live
                        .as_ref()
                        .is_some_and(|l| l.raft.role() == Role::Leader)
                })
                .ok_or_else(|| self.fail("no leader for the final reads".to_string()))?;
            self.clients[0].target = leader;
            self.start_op(0, Op::Read { key }, false)?;
            let deadline = self.now + 5_000;
            while self.clients[0].pending.is_some() && self.now < deadline {
                self.run_until(self.now + 10)?;
            }
            if self.clients[0].pending.is_some() {
                return Err(self.fail(format!("final read of key {key} did not complete")));
            }
        }
        Ok(())
    }

    /// Election safety, leader completeness, monotonic commit and apply: after every event.
    fn check_invariants(&mut self) -> Result<(), Fail> {
        for i in 0..self.nodes.len() {
            let Some(live) = self.nodes[i].live.as_mut() else {
                continue;
            };
            let (commit, term, role) =
                (live.raft.commit_index(), live.raft.term(), live.raft.role());
            let last_commit = live.last_commit;
            live.last_commit = commit;
            if commit < last_commit {
                return Err(self.fail(format!(
                    "n{i} commit went back from {last_commit} to {commit}"
                )));
            }
            self.report.max_term = self.report.max_term.max(term);
            if role != Role::Leader {
                continue;
            }
            let id = self.nodes[i].id;
            if let Some(other) = self.leaders.insert(term, id) {
                if other != id {
                    return Err(self.fail(format!(
                        "election safety: n{} and n{} both lead term {term}",
                        other.0 - 1,
                        i
                    )));
                }
            }
            if self.checked_leader_terms.get(&i) != Some(&term) {
                self.checked_leader_terms.insert(i, term);
                self.check_leader_completeness(i)?;
            }
        }
        Ok(())
    }

    fn check_leader_completeness(&self, i: usize) -> Result<(), Fail> {
        let log = self.nodes[i].live.as_ref().expect("live").raft.log();
        for (&index, (term, _)) in self.global_applied.range(log.snapshot_index() + 1..) {
            if log.term(index) != Some(*term) {
                return Err(self.fail(format!(
                    "leader completeness: n{i} leads without committed entry {index} (term {term}, has {:?})",
                    log.term(index)
                )));
            }
        }
        Ok(())
    }

    /// Log matching: two logs holding an entry with the same index and term hold the same entries up to it.
    fn check_log_matching(&self) -> Result<(), Fail> {
        let lives: Vec<(usize, &Live)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.live.as_ref().map(|l| (i, l)))
            .collect();
        for (a, la) in &lives {
            for (b, lb) in &lives {
                if a >= b {
                    continue;
                }
                let (x, y) = (la.raft.log(), lb.raft.log());
                let lo = x.first_index().max(y.first_index());
                let hi = x.last_index().min(y.last_index());
                let Some(top) = (lo..=hi)
                    .rev()
                    .find(|&k| x.term(k).is_some() && x.term(k) == y.term(k))
                else {
                    continue;
                };
                for k in lo..=top {
                    if x.get(k) != y.get(k) {
                        return Err(self.fail(format!(
                            "log matching: n{a} and n{b} agree at {top} but differ at {k}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
