//! Log replication (§5.3): the leader's appends, pipelining and backtracking; the follower's side; the commit
//! rule (§5.4.2); snapshots sent to and installed by followers (§7).

use super::node::{Action, Node, Role};
use super::progress::{Progress, ReplicationState};
use super::types::{Configuration, ConflictHint, Entry, Index, Message, Payload, ServerId, Term};

impl Node {
    /// Appends entries made by this leader, persists them, and replicates them.
    pub(super) fn append_as_leader(&mut self, entries: Vec<Entry>, out: &mut Vec<Action>) {
        for e in &entries {
            self.log.push(e.clone());
        }
        let config_changed = entries
            .iter()
            .any(|e| matches!(e.payload, Payload::Config(_)));
        self.note_configs(&entries);
        out.push(Action::AppendLog(entries));
        if config_changed {
            self.sync_progress_with_config();
        }
        let peers: Vec<ServerId> = self.progress.keys().copied().collect();
        for peer in peers {
            while self.send_append(peer, false, out) {}
        }
        self.maybe_commit(out);
    }

    /// Adds progress for new members and drops it for removed ones.
    pub(super) fn sync_progress_with_config(&mut self) {
        let config = self.config().clone();
        let last = self.log.last_index();
        self.progress.retain(|id, _| config.get(*id).is_some());
        for s in &config.servers {
            if s.id != self.opts.id {
                self.progress
                    .entry(s.id)
                    .or_insert_with(|| Progress::new(last));
            }
        }
    }

    /// Sends `peer` an append if its progress allows (`heartbeat` always sends one). Returns true when entries
    /// went out and more might follow (to fill the pipeline).
    pub(super) fn send_append(
        &mut self,
        peer: ServerId,
        heartbeat: bool,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(pr) = self.progress.get(&peer) else {
            return false;
        };
        if matches!(pr.state, ReplicationState::Snapshot { .. }) {
            if heartbeat {
                self.send_heartbeat_only(peer, out);
            }
            return false;
        }
        let pipelined = pr.state == ReplicationState::Replicate;
        let has_new = pr.next_index <= self.log.last_index();
        if !heartbeat && (!has_new || !pr.can_send(self.opts.inflight_max)) {
            return false;
        }
        if pipelined && heartbeat && (!has_new || !pr.can_send(self.opts.inflight_max)) {
            self.send_heartbeat_at(peer, pr.next_index - 1, out);
            return false;
        }
        let (prev_index, next) = (pr.next_index - 1, pr.next_index);
        let hi = (next + self.opts.append_entries_max as u64 - 1).min(self.log.last_index());
        let (Some(prev_term), Some(entries)) = (
            self.log.term(prev_index),
            self.log.slice(next, hi, self.opts.append_bytes_max),
        ) else {
            self.start_snapshot(peer, out);
            return false;
        };
        let last = entries.last().map_or(prev_index, |e| e.index);
        let sent_entries = !entries.is_empty();
        let msg = Message::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
            round: self.round,
        };
        self.send(peer, msg, false, out);
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.sent(last);
        }
        sent_entries && pipelined
    }

    /// An empty append after `prev_index` (the last index sent): if appends in flight were lost, the follower
    /// rejects it and replication falls back to probing. When `prev_index` is compacted away, the follower gets
    /// the snapshot instead.
    fn send_heartbeat_at(&mut self, peer: ServerId, prev_index: Index, out: &mut Vec<Action>) {
        match self.log.term(prev_index) {
            Some(prev_term) => {
                let msg = Message::Append {
                    term: self.term,
                    prev_index,
                    prev_term,
                    entries: Vec::new(),
                    commit: self.commit,
                    round: self.round,
                };
                self.send(peer, msg, false, out);
            }
            None => self.start_snapshot(peer, out),
        }
    }

    /// A heartbeat that only asserts leadership (while a snapshot is on its way): it matches at index 0.
    fn send_heartbeat_only(&mut self, peer: ServerId, out: &mut Vec<Action>) {
        let msg = Message::Append {
            term: self.term,
            prev_index: 0,
            prev_term: 0,
            entries: Vec::new(),
            commit: 0,
            round: self.round,
        };
        self.send(peer, msg, false, out);
    }

    fn start_snapshot(&mut self, peer: ServerId, out: &mut Vec<Action>) {
        let (index, term) = (self.log.snapshot_index(), self.log.snapshot_term());
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.state = ReplicationState::Snapshot {
                index,
                sent_at_ms: self.now_ms,
            };
        }
        out.push(Action::SendSnapshot {
            to: peer,
            index,
            term,
        });
    }

    /// A message from the current term's leader: follow it, note the contact, restart the election timer.
    fn heard_from_leader(&mut self, from: ServerId, out: &mut Vec<Action>) {
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, Some(from), out);
        }
        self.leader = Some(from);
        self.leader_contact_ms = Some(self.now_ms);
        self.reset_election_deadline();
    }

    /// The follower's side of AppendEntries.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_append(
        &mut self,
        from: ServerId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
        round: u64,
        out: &mut Vec<Action>,
    ) {
        self.heard_from_leader(from, out);
        let reply = match self.log.plan_append(prev_index, prev_term, &entries) {
            None => {
                let index = self.log.find_conflict_by_term(prev_index, prev_term);
                let term = self.log.term(index).unwrap_or(0);
                Message::AppendResponse {
                    term: self.term,
                    success: false,
                    match_index: 0,
                    conflict: Some(ConflictHint { index, term }),
                    round,
                }
            }
            Some(plan) => {
                if let Some(from_index) = plan.truncate_from {
                    if from_index <= self.commit {
                        // Never happens under Raft's guarantees; refuse rather than lose committed entries.
                        return;
                    }
                    out.push(Action::TruncateLog { from: from_index });
                    self.drop_configs_from(from_index);
                }
                self.log.apply_plan(&plan);
                if !plan.new_entries.is_empty() {
                    self.note_configs(&plan.new_entries);
                    out.push(Action::AppendLog(plan.new_entries));
                }
                let match_index = prev_index + entries.len() as u64;
                self.commit = self.commit.max(leader_commit.min(match_index));
                Message::AppendResponse {
                    term: self.term,
                    success: true,
                    match_index,
                    conflict: None,
                    round,
                }
            }
        };
        self.send(from, reply, true, out);
    }

    /// The leader's side of an append answer: progress, backtracking, commit, reads, transfer.
    pub(super) fn handle_append_response(
        &mut self,
        from: ServerId,
        success: bool,
        match_index: Index,
        conflict: Option<ConflictHint>,
        round: u64,
        out: &mut Vec<Action>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.acked_round = pr.acked_round.max(round);
        if success {
            if pr.acknowledged(match_index.min(last)) {
                self.maybe_commit(out);
            }
        } else if let Some(hint) = conflict {
            if !matches!(pr.state, ReplicationState::Snapshot { .. }) {
                let next = self.log.find_conflict_by_term(hint.index, hint.term) + 1;
                let pr = self.progress.get_mut(&from).expect("present");
                let next = next.min(pr.next_index.saturating_sub(1).max(1));
                pr.become_probe(next);
            }
        }
        while self.send_append(from, false, out) {}
        self.maybe_send_timeout_now(from, out);
    }

    /// Advances the commit index to the highest index stored on a quorum of voters, if it is of this term.
    pub(super) fn maybe_commit(&mut self, out: &mut Vec<Action>) {
        let config = self.config();
        let mut matched: Vec<Index> = config
            .voters()
            .map(|id| {
                if id == self.opts.id {
                    self.log.persisted()
                } else {
                    self.progress.get(&id).map_or(0, |p| p.match_index)
                }
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[config.quorum() - 1];
        if candidate > self.commit && self.log.term(candidate) == Some(self.term) {
            self.commit = candidate;
            self.on_commit_advanced(out);
        }
    }

    /// After the commit index moved: step down if a committed configuration removed this leader.
    fn on_commit_advanced(&mut self, out: &mut Vec<Action>) {
        if self.config_index() <= self.commit && self.config().get(self.opts.id).is_none() {
            let term = self.term;
            self.become_follower(term, None, out);
        }
    }

    pub(super) fn handle_install_snapshot(
        &mut self,
        from: ServerId,
        index: Index,
        last_term: Term,
        configuration: Configuration,
        out: &mut Vec<Action>,
    ) {
        self.heard_from_leader(from, out);
        if self.log.term(index) == Some(last_term) {
            // The log already holds the snapshot's last entry: keep what follows it (§7); those entries may have
            // been acknowledged. Everything up to `index` is committed.
            self.commit = self.commit.max(index);
        } else if index > self.commit {
            self.install_snapshot(index, last_term, configuration, out);
        }
        let reply = Message::SnapshotResponse {
            term: self.term,
            index,
            success: true,
        };
        self.send(from, reply, true, out);
    }

    pub(super) fn handle_snapshot_response(
        &mut self,
        from: ServerId,
        index: Index,
        success: bool,
        out: &mut Vec<Action>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if !matches!(pr.state, ReplicationState::Snapshot { index: i, .. } if i == index) {
            return;
        }
        if success {
            pr.match_index = pr.match_index.max(index);
            pr.become_probe(index + 1);
        } else {
            let next = pr.next_index;
            pr.become_probe(next);
        }
        while self.send_append(from, false, out) {}
    }
}
