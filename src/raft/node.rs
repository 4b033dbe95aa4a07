//! The Raft node: its state, the inputs and actions of `step`, timers, role changes, and configuration tracking.
//! Elections live in `election.rs`, replication in `replication.rs`, client requests in `requests.rs`.

use super::log::RaftLog;
use super::progress::Progress;
use super::rng::Rng;
use super::types::{
    Bytes, Configuration, Entry, HardState, Index, Message, Payload, ServerId, Term,
};
use std::collections::{BTreeMap, VecDeque};

/// Timing and limits. Defaults follow Consul with `raft_multiplier = 1`.
#[derive(Clone, Debug)]
pub struct Options {
    /// This server's id.
    pub id: ServerId,
    /// How often a leader sends heartbeats (one round each).
    pub heartbeat_interval_ms: u64,
    /// A follower without leader contact this long starts an election; randomized in `[t, 2t)`.
    pub election_timeout_ms: u64,
    /// How long after a quorum-acknowledged round the leader may serve lease reads (< election timeout).
    pub lease_ms: u64,
    /// Appends in flight per follower in Replicate state.
    pub inflight_max: usize,
    /// Entries per append message at most.
    pub append_entries_max: usize,
    /// Payload bytes per append message at most (one entry is always allowed).
    pub append_bytes_max: u64,
    /// Entries kept before a snapshot's index for followers that are slightly behind.
    pub trailing_entries: u64,
    /// A snapshot send with no answer this long is retried.
    pub snapshot_timeout_ms: u64,
    /// Use pre-vote (§9.6).
    pub pre_vote: bool,
    /// Leaders step down without a quorum's contact; followers ignore votes while they have a leader.
    pub check_quorum: bool,
}

impl Options {
    /// Consul's timing scaled by `raft_multiplier` (1 = 1 s election timeout, 500 ms lease, 100 ms heartbeats).
    pub fn consul(id: ServerId, raft_multiplier: u64) -> Options {
        let m = raft_multiplier.max(1);
        Options {
            id,
            heartbeat_interval_ms: 100 * m,
            election_timeout_ms: 1000 * m,
            lease_ms: 500 * m,
            inflight_max: 64,
            append_entries_max: 4096,
            append_bytes_max: 1 << 20,
            trailing_entries: 10_240,
            snapshot_timeout_ms: 30_000 * m,
            pre_vote: true,
            check_quorum: true,
        }
    }
}

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes before campaigning.
    PreCandidate,
    /// Campaigning in its term.
    Candidate,
    /// Leading its term.
    Leader,
}

/// A single-server membership change (§4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a voter, or promote a non-voter.
    AddVoter {
        /// The server.
        id: ServerId,
        /// Its address.
        address: String,
    },
    /// Add a non-voting member.
    AddNonvoter {
        /// The server.
        id: ServerId,
        /// Its address.
        address: String,
    },
    /// Remove a member.
    Remove {
        /// The server.
        id: ServerId,
    },
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftError {
    /// This server is not the leader; `leader` is who is, when known.
    NotLeader {
        /// The known leader.
        leader: Option<ServerId>,
    },
    /// A leader transfer is under way; retry shortly.
    TransferInProgress,
    /// A membership change is not committed yet, or the leader has not committed an entry of its term.
    ConfigChangeInProgress,
    /// The membership change names no such member, or changes nothing.
    BadMembershipChange(String),
    /// The leader transfer did not finish within an election timeout.
    TransferTimedOut,
    /// Leadership was lost before the read could be confirmed.
    LeadershipLost,
}

/// What the driver hands to [`Node::step`].
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed; timers are checked (every step checks them too).
    Tick,
    /// A message from a peer.
    Message {
        /// The sender.
        from: ServerId,
        /// The message.
        msg: Message,
    },
    /// Client commands to replicate, each with the caller's context number.
    Propose(Vec<(u64, Bytes)>),
    /// A read: with `lease`, served under the leader lease when it holds; else confirmed by a heartbeat round.
    Read {
        /// The caller's context number.
        ctx: u64,
        /// Whether a lease read is acceptable (Consul's default mode).
        lease: bool,
    },
    /// Change membership.
    ChangeMembership {
        /// The caller's context number.
        ctx: u64,
        /// The change.
        change: MembershipChange,
    },
    /// Hand leadership to `to` (or the most up-to-date voter).
    TransferLeadership {
        /// The caller's context number.
        ctx: u64,
        /// The target.
        to: Option<ServerId>,
    },
    /// Entries up to `index` (which had `term`) are durable, and so is every hard state saved before them.
    Persisted {
        /// The last durable index.
        index: Index,
        /// Its term when written.
        term: Term,
    },
    /// The driver took a snapshot of the state machine at `index` (which it had applied).
    SnapshotTaken {
        /// The snapshot's last index.
        index: Index,
    },
    /// Sending the snapshot to `to` failed.
    SnapshotSendFailed {
        /// The follower.
        to: ServerId,
    },
    /// Start an election now if this server may (bootstrap, tests).
    Campaign,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Persist the hard state.
    SaveHardState(HardState),
    /// Remove stored entries from `from` on.
    TruncateLog {
        /// First index removed.
        from: Index,
    },
    /// Append entries to the stored log (consecutive after what is stored).
    AppendLog(Vec<Entry>),
    /// Send a message; with `after_persist`, only once every persistence action before it is durable.
    Send {
        /// The receiver.
        to: ServerId,
        /// The message.
        msg: Message,
        /// Wait for all earlier persistence (else only for earlier hard-state saves).
        after_persist: bool,
    },
    /// Apply committed entries to the state machine, in order.
    Apply(Vec<Entry>),
    /// Send the snapshot at (`index`, `term`) to `to` in chunks; then deliver `Message::InstallSnapshot`.
    SendSnapshot {
        /// The follower.
        to: ServerId,
        /// The snapshot's index.
        index: Index,
        /// Its term.
        term: Term,
    },
    /// A snapshot from the leader was installed: load it into the state machine and reset the stored log to
    /// start after `index`.
    RestoreSnapshot {
        /// The snapshot's index.
        index: Index,
        /// Its term.
        term: Term,
    },
    /// Proposal `ctx` was appended at (`index`, `term`); it succeeds when that entry is applied with that term.
    Proposed {
        /// The caller's context number.
        ctx: u64,
        /// Where it went.
        index: Index,
        /// In which term.
        term: Term,
    },
    /// Read `ctx` may be served once the state machine has applied `index`.
    ReadReady {
        /// The caller's context number.
        ctx: u64,
        /// The read index.
        index: Index,
    },
    /// Leader transfer `ctx` finished: another server leads now.
    TransferDone {
        /// The caller's context number.
        ctx: u64,
    },
    /// Request `ctx` was refused.
    Rejected {
        /// The caller's context number.
        ctx: u64,
        /// Why.
        error: RaftError,
    },
    /// The known leader changed (for observers: status endpoints, forwarding).
    LeaderChanged {
        /// The term.
        term: Term,
        /// The leader, if known.
        leader: Option<ServerId>,
    },
}

/// What a server recovered from disk.
#[derive(Clone, Debug, Default)]
pub struct RestoreState {
    /// The saved hard state.
    pub hard_state: HardState,
    /// The latest snapshot's (index, term, configuration), if any.
    pub snapshot: Option<(Index, Term, Configuration)>,
    /// The stored entries after the snapshot.
    pub entries: Vec<Entry>,
}

/// A read waiting for its heartbeat round to be acknowledged by a quorum.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    pub ctx: u64,
    pub index: Index,
    pub round: u64,
}

/// A leader transfer under way.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub ctx: u64,
    pub to: ServerId,
    pub deadline_ms: u64,
    pub timeout_now_sent: bool,
}

/// Rounds whose start times are remembered (older rounds count as expired for the lease).
const ROUNDS_REMEMBERED: usize = 1024;

/// One Raft server.
pub struct Node {
    pub(super) opts: Options,
    pub(super) rng: Rng,
    pub(super) now_ms: u64,
    pub(super) role: Role,
    pub(super) term: Term,
    pub(super) vote: Option<ServerId>,
    pub(super) leader: Option<ServerId>,
    pub(super) log: RaftLog,
    pub(super) commit: Index,
    pub(super) applied: Index,
    /// The configuration as of the snapshot, and the configurations in held entries after it.
    pub(super) snapshot_config: (Index, Configuration),
    pub(super) configs: Vec<(Index, Configuration)>,
    pub(super) election_deadline_ms: u64,
    pub(super) leader_contact_ms: Option<u64>,
    pub(super) votes: BTreeMap<ServerId, bool>,
    pub(super) progress: BTreeMap<ServerId, Progress>,
    pub(super) round: u64,
    pub(super) round_starts: VecDeque<(u64, u64)>,
    pub(super) heartbeat_due_ms: u64,
    pub(super) check_quorum_due_ms: u64,
    pub(super) term_start_index: Index,
    pub(super) reads: VecDeque<PendingRead>,
    pub(super) reads_waiting_commit: Vec<(u64, bool)>,
    pub(super) round_wanted: bool,
    pub(super) transfer: Option<Transfer>,
    pub(super) reported_leader: Option<(Term, Option<ServerId>)>,
}

impl Node {
    /// A server recovered from `restore`, starting as a follower at `now_ms`. `seed` drives its timeouts.
    pub fn new(opts: Options, seed: u64, restore: RestoreState, now_ms: u64) -> Node {
        let (snap_index, snap_term, snap_config) = restore.snapshot.unwrap_or_default();
        let log = RaftLog::restore(snap_index, snap_term, restore.entries);
        let configs = (log.first_index()..=log.last_index())
            .filter_map(|i| match log.get(i).map(|e| &e.payload) {
                Some(Payload::Config(c)) if i > snap_index => Some((i, c.clone())),
                _ => None,
            })
            .collect();
        let commit = restore
            .hard_state
            .commit
            .clamp(snap_index, log.last_index());
        let mut node = Node {
            opts,
            rng: Rng::new(seed),
            now_ms,
            role: Role::Follower,
            term: restore.hard_state.term,
            vote: restore.hard_state.vote,
            leader: None,
            log,
            commit,
            applied: snap_index,
            snapshot_config: (snap_index, snap_config),
            configs,
            election_deadline_ms: 0,
            leader_contact_ms: None,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            round: 0,
            round_starts: VecDeque::new(),
            heartbeat_due_ms: 0,
            check_quorum_due_ms: 0,
            term_start_index: 0,
            reads: VecDeque::new(),
            reads_waiting_commit: Vec::new(),
            round_wanted: false,
            transfer: None,
            reported_leader: None,
        };
        node.reset_election_deadline();
        node
    }

    /// The entry that bootstraps a cluster: the configuration at index 1, term 1. Every bootstrapping server
    /// writes the same one (Consul's `-bootstrap` / `-bootstrap-expect`).
    pub fn bootstrap_entry(configuration: Configuration) -> Entry {
        Entry {
            index: 1,
            term: 1,
            payload: Payload::Config(configuration),
        }
    }

    /// Feeds one input at `now_ms`; pushes the resulting actions onto `out`.
    pub fn step(&mut self, now_ms: u64, input: Input, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Tick => {}
            Input::Message { from, msg } => self.handle_message(from, msg, out),
            Input::Propose(commands) => self.propose(commands, out),
            Input::Read { ctx, lease } => self.read(ctx, lease, out),
            Input::ChangeMembership { ctx, change } => self.change_membership(ctx, change, out),
            Input::TransferLeadership { ctx, to } => self.transfer_leadership(ctx, to, out),
            Input::Persisted { index, term } => {
                self.log.mark_persisted(index, term);
                if self.role == Role::Leader {
                    self.maybe_commit(out);
                }
            }
            Input::SnapshotTaken { index } => self.snapshot_taken(index),
            Input::SnapshotSendFailed { to } => {
                if let Some(pr) = self.progress.get_mut(&to) {
                    let next = pr.next_index;
                    pr.become_probe(next);
                }
            }
            Input::Campaign => {
                if self.role != Role::Leader && self.config().is_voter(self.opts.id) {
                    self.campaign(false, out);
                }
            }
        }
        self.check_timers(out);
        self.finish_step(out);
    }

    /// The earliest time a `Tick` has something to do.
    pub fn next_deadline_ms(&self) -> u64 {
        let mut t = match self.role {
            Role::Leader => self.heartbeat_due_ms.min(self.check_quorum_due_ms),
            _ => self.election_deadline_ms,
        };
        if let Some(tr) = &self.transfer {
            t = t.min(tr.deadline_ms);
        }
        t
    }

    /// This server's id.
    pub fn id(&self) -> ServerId {
        self.opts.id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The known leader.
    pub fn leader(&self) -> Option<ServerId> {
        self.leader
    }

    /// The commit index.
    pub fn commit_index(&self) -> Index {
        self.commit
    }

    /// The index up to which `Apply` actions were emitted.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// The leader's replication progress for `id` (None on followers and for unknown servers).
    pub fn progress_of(&self, id: ServerId) -> Option<&Progress> {
        self.progress.get(&id)
    }

    /// The in-memory log.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The hard state as it must be persisted now.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    /// The latest configuration (the last one in the log, committed or not).
    pub fn config(&self) -> &Configuration {
        self.configs
            .last()
            .map_or(&self.snapshot_config.1, |(_, c)| c)
    }

    /// The index of the latest configuration's entry.
    pub fn config_index(&self) -> Index {
        self.configs
            .last()
            .map_or(self.snapshot_config.0, |(i, _)| *i)
    }

    /// The configuration in effect at `index` (for snapshots taken there).
    pub fn config_at(&self, index: Index) -> Configuration {
        self.configs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or_else(|| self.snapshot_config.1.clone(), |(_, c)| c.clone())
    }

    /// True while the leader lease holds (lease reads may be served).
    pub fn lease_valid(&self) -> bool {
        self.lease_expiry_ms().is_some_and(|end| end > self.now_ms)
    }

    /// When the leader lease runs out (the driver's clock, ms), if this server leads, no transfer is under
    /// way and an entry of its term is committed; it may already be in the past.
    pub fn lease_expiry_ms(&self) -> Option<u64> {
        if self.role != Role::Leader
            || self.transfer.is_some()
            || self.commit < self.term_start_index
        {
            return None;
        }
        self.round_start(self.quorum_acked_round())
            .map(|start| start + self.opts.lease_ms)
    }

    pub(super) fn reset_election_deadline(&mut self) {
        let t = self.opts.election_timeout_ms;
        self.election_deadline_ms = self.now_ms + self.rng.range(t, 2 * t);
    }

    pub(super) fn save_hard_state(&self, out: &mut Vec<Action>) {
        out.push(Action::SaveHardState(self.hard_state()));
    }

    pub(super) fn send(
        &self,
        to: ServerId,
        msg: Message,
        after_persist: bool,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send {
            to,
            msg,
            after_persist,
        });
    }

    /// Steps down to follower in `term` (saving the new term if it grew) with `leader` if known.
    pub(super) fn become_follower(
        &mut self,
        term: Term,
        leader: Option<ServerId>,
        out: &mut Vec<Action>,
    ) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.save_hard_state(out);
        }
        if self.role == Role::Leader {
            self.fail_leader_requests(out);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.reset_election_deadline();
    }

    fn fail_leader_requests(&mut self, out: &mut Vec<Action>) {
        for read in self.reads.drain(..) {
            out.push(Action::Rejected {
                ctx: read.ctx,
                error: RaftError::LeadershipLost,
            });
        }
        for (ctx, _) in self.reads_waiting_commit.drain(..) {
            out.push(Action::Rejected {
                ctx,
                error: RaftError::LeadershipLost,
            });
        }
        if let Some(tr) = self.transfer.take() {
            out.push(Action::TransferDone { ctx: tr.ctx });
        }
    }

    fn check_timers(&mut self, out: &mut Vec<Action>) {
        let now = self.now_ms;
        match self.role {
            Role::Leader => {
                if now >= self.check_quorum_due_ms {
                    self.check_quorum_due_ms = now + self.opts.election_timeout_ms;
                    if self.opts.check_quorum && !self.quorum_recently_active() {
                        let term = self.term;
                        self.become_follower(term, None, out);
                        return;
                    }
                }
                if now >= self.heartbeat_due_ms {
                    self.round_wanted = true;
                }
                self.check_transfer_timeout(out);
                self.check_snapshot_timeouts();
            }
            _ => {
                if now >= self.election_deadline_ms {
                    if self.config().is_voter(self.opts.id) {
                        self.campaign(false, out);
                    } else {
                        self.reset_election_deadline();
                    }
                }
            }
        }
    }

    fn check_transfer_timeout(&mut self, out: &mut Vec<Action>) {
        if self
            .transfer
            .as_ref()
            .is_some_and(|t| self.now_ms >= t.deadline_ms)
        {
            let tr = self.transfer.take().expect("checked");
            out.push(Action::Rejected {
                ctx: tr.ctx,
                error: RaftError::TransferTimedOut,
            });
        }
    }

    /// Work every step ends with: heartbeat rounds, commit-driven applies, reads, leader reports.
    fn finish_step(&mut self, out: &mut Vec<Action>) {
        if self.role == Role::Leader && self.round_wanted {
            self.start_round(out);
        }
        if self.role == Role::Leader {
            self.release_reads(out);
        }
        self.emit_applies(out);
        let now = (self.term, self.leader);
        if self.reported_leader != Some(now) {
            self.reported_leader = Some(now);
            out.push(Action::LeaderChanged {
                term: self.term,
                leader: self.leader,
            });
        }
    }

    fn emit_applies(&mut self, out: &mut Vec<Action>) {
        let upto = self.commit.min(self.log.persisted());
        if upto <= self.applied {
            return;
        }
        let entries = self
            .log
            .slice(self.applied + 1, upto, u64::MAX)
            .expect("entries after the applied index are held");
        self.applied = upto;
        out.push(Action::Apply(entries));
    }

    /// Records configuration entries among `entries` (just appended).
    pub(super) fn note_configs(&mut self, entries: &[Entry]) {
        for e in entries {
            if let Payload::Config(c) = &e.payload {
                self.configs.push((e.index, c.clone()));
            }
        }
    }

    /// Forgets configurations from `index` on (their entries were truncated).
    pub(super) fn drop_configs_from(&mut self, index: Index) {
        self.configs.retain(|(i, _)| *i < index);
    }

    fn snapshot_taken(&mut self, index: Index) {
        if index > self.applied || index <= self.log.snapshot_index() {
            return;
        }
        let keep_from = index.saturating_sub(self.opts.trailing_entries) + 1;
        let config = self.config_at(index);
        self.log.compact(index, keep_from);
        self.configs.retain(|(i, _)| *i > index);
        self.snapshot_config = (index, config);
    }

    /// Installs a snapshot sent by the leader: the log restarts after it.
    pub(super) fn install_snapshot(
        &mut self,
        index: Index,
        term: Term,
        config: Configuration,
        out: &mut Vec<Action>,
    ) {
        self.log.reset_to_snapshot(index, term);
        self.snapshot_config = (index, config);
        self.configs.clear();
        self.commit = index;
        self.applied = index;
        out.push(Action::RestoreSnapshot { index, term });
    }

    pub(super) fn round_start(&self, round: u64) -> Option<u64> {
        self.round_starts
            .iter()
            .find(|(r, _)| *r == round)
            .map(|(_, t)| *t)
    }

    /// The highest round acknowledged by a quorum of voters (the leader counts its current round).
    pub(super) fn quorum_acked_round(&self) -> u64 {
        let config = self.config();
        let mut rounds: Vec<u64> = config
            .voters()
            .map(|id| {
                if id == self.opts.id {
                    self.round
                } else {
                    self.progress.get(&id).map_or(0, |p| p.acked_round)
                }
            })
            .collect();
        if rounds.is_empty() {
            return 0;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[config.quorum() - 1]
    }

    fn quorum_recently_active(&self) -> bool {
        if !self.config().is_voter(self.opts.id) {
            return true;
        }
        match self.round_start(self.quorum_acked_round()) {
            Some(start) => start + self.opts.election_timeout_ms >= self.now_ms,
            None => false,
        }
    }

    /// Starts a heartbeat round: every follower gets an append (with entries when some are due).
    fn start_round(&mut self, out: &mut Vec<Action>) {
        self.round_wanted = false;
        self.round += 1;
        self.round_starts.push_back((self.round, self.now_ms));
        while self.round_starts.len() > ROUNDS_REMEMBERED {
            self.round_starts.pop_front();
        }
        self.heartbeat_due_ms = self.now_ms + self.opts.heartbeat_interval_ms;
        let peers: Vec<ServerId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, true, out);
        }
    }

    pub(super) fn check_snapshot_timeouts(&mut self) {
        let now = self.now_ms;
        let timeout = self.opts.snapshot_timeout_ms;
        for pr in self.progress.values_mut() {
            if let super::progress::ReplicationState::Snapshot { sent_at_ms, .. } = pr.state {
                if now >= sent_at_ms + timeout {
                    let next = pr.next_index;
                    pr.become_probe(next);
                }
            }
        }
    }
}
