//! Elections (§5.2): term handling for every message, pre-vote (§9.6), leader stickiness, votes, becoming leader.

use super::node::{Action, Node, Role};
use super::progress::Progress;
use super::types::{Entry, Message, Payload, ServerId, Term};

impl Node {
    /// Every message passes here first: stale terms are answered or dropped, newer terms adopted, then the
    /// message goes to its handler.
    pub(super) fn handle_message(&mut self, from: ServerId, msg: Message, out: &mut Vec<Action>) {
        let term = msg.term();
        if term > self.term {
            match &msg {
                Message::VoteRequest { pre_vote: true, .. } => {}
                Message::VoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                } => {}
                Message::VoteRequest { transfer, .. } if !*transfer && self.in_leader_lease() => {
                    return
                }
                Message::Append { .. }
                | Message::InstallSnapshot { .. }
                | Message::TimeoutNow { .. } => self.become_follower(term, Some(from), out),
                _ => self.become_follower(term, None, out),
            }
        } else if term < self.term {
            self.answer_stale(from, &msg, out);
            return;
        }
        match msg {
            Message::VoteRequest {
                term,
                last_index,
                last_term,
                pre_vote,
                transfer,
            } => self.handle_vote_request(
                from,
                term,
                (last_index, last_term),
                pre_vote,
                transfer,
                out,
            ),
            Message::VoteResponse {
                term,
                granted,
                pre_vote,
            } => self.handle_vote_response(from, term, granted, pre_vote, out),
            Message::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                round,
                ..
            } => self.handle_append(from, prev_index, prev_term, entries, commit, round, out),
            Message::AppendResponse {
                success,
                match_index,
                conflict,
                round,
                ..
            } => self.handle_append_response(from, success, match_index, conflict, round, out),
            Message::InstallSnapshot {
                index,
                last_term,
                configuration,
                ..
            } => self.handle_install_snapshot(from, index, last_term, configuration, out),
            Message::SnapshotResponse { index, success, .. } => {
                self.handle_snapshot_response(from, index, success, out)
            }
            Message::TimeoutNow { .. } => {
                if self.role != Role::Leader && self.config().is_voter(self.opts.id) {
                    self.campaign(true, out);
                }
            }
        }
    }

    /// A message from an older term: tell a stale leader or candidate the current term; drop the rest.
    fn answer_stale(&mut self, from: ServerId, msg: &Message, out: &mut Vec<Action>) {
        let reply = match msg {
            Message::Append { round, .. } => Message::AppendResponse {
                term: self.term,
                success: false,
                match_index: 0,
                conflict: None,
                round: *round,
            },
            Message::VoteRequest { pre_vote, .. } => Message::VoteResponse {
                term: self.term,
                granted: false,
                pre_vote: *pre_vote,
            },
            Message::InstallSnapshot { index, .. } => Message::SnapshotResponse {
                term: self.term,
                index: *index,
                success: false,
            },
            _ => return,
        };
        self.send(from, reply, false, out);
    }

    /// True while this server heard from a leader within the minimum election timeout (leader stickiness),
    /// or is the leader itself.
    fn in_leader_lease(&self) -> bool {
        if !self.opts.check_quorum {
            return false;
        }
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some()
            && self
                .leader_contact_ms
                .is_some_and(|t| self.now_ms < t + self.opts.election_timeout_ms)
    }

    /// Starts an election: a pre-vote round first unless `transfer` (TimeoutNow) or pre-vote is off.
    pub(super) fn campaign(&mut self, transfer: bool, out: &mut Vec<Action>) {
        if self.opts.pre_vote && !transfer {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.request_votes(self.term + 1, true, false, out);
        } else {
            self.become_candidate(transfer, out);
        }
    }

    fn become_candidate(&mut self, transfer: bool, out: &mut Vec<Action>) {
        self.role = Role::Candidate;
        self.term += 1;
        self.vote = Some(self.opts.id);
        self.leader = None;
        self.save_hard_state(out);
        self.request_votes(self.term, false, transfer, out);
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool, out: &mut Vec<Action>) {
        self.reset_election_deadline();
        self.votes.clear();
        self.votes.insert(self.opts.id, true);
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<ServerId> = self
            .config()
            .voters()
            .filter(|&v| v != self.opts.id)
            .collect();
        for v in voters {
            let msg = Message::VoteRequest {
                term,
                last_index,
                last_term,
                pre_vote,
                transfer,
            };
            self.send(v, msg, true, out);
        }
        self.tally(out);
    }

    fn handle_vote_request(
        &mut self,
        from: ServerId,
        term: Term,
        (last_index, last_term): (u64, Term),
        pre_vote: bool,
        transfer: bool,
        out: &mut Vec<Action>,
    ) {
        let up_to_date = self.log.candidate_up_to_date(last_index, last_term);
        let sticky = !transfer && self.in_leader_lease();
        let granted = if pre_vote {
            term > self.term && up_to_date && !sticky
        } else {
            term == self.term && self.vote.is_none_or(|v| v == from) && up_to_date && !sticky
        };
        if granted && !pre_vote {
            self.vote = Some(from);
            self.save_hard_state(out);
            self.reset_election_deadline();
        }
        let reply_term = if pre_vote && granted { term } else { self.term };
        let reply = Message::VoteResponse {
            term: reply_term,
            granted,
            pre_vote,
        };
        self.send(from, reply, true, out);
    }

    fn handle_vote_response(
        &mut self,
        from: ServerId,
        term: Term,
        granted: bool,
        pre_vote: bool,
        out: &mut Vec<Action>,
    ) {
        let expected = match (self.role, pre_vote) {
            (Role::PreCandidate, true) => term == self.term + 1 || !granted,
            (Role::Candidate, false) => term == self.term,
            _ => false,
        };
        if !expected || !self.config().is_voter(from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        self.tally(out);
    }

    /// Counts votes: a quorum of grants wins (pre-vote: go on to campaign), a quorum of refusals loses.
    fn tally(&mut self, out: &mut Vec<Action>) {
        let config = self.config();
        let quorum = config.quorum();
        let granted = config
            .voters()
            .filter(|v| self.votes.get(v) == Some(&true))
            .count();
        let refused = config
            .voters()
            .filter(|v| self.votes.get(v) == Some(&false))
            .count();
        if granted >= quorum {
            match self.role {
                Role::PreCandidate => self.become_candidate(false, out),
                Role::Candidate => self.become_leader(out),
                _ => {}
            }
        } else if refused >= quorum {
            let term = self.term;
            self.become_follower(term, None, out);
        }
    }

    /// Wins the election: a no-op opens the term (§5.4.2), and a heartbeat round announces it.
    fn become_leader(&mut self, out: &mut Vec<Action>) {
        self.role = Role::Leader;
        self.leader = Some(self.opts.id);
        self.votes.clear();
        self.leader_contact_ms = None;
        let last = self.log.last_index();
        self.progress = self
            .config()
            .servers
            .iter()
            .filter(|s| s.id != self.opts.id)
            .map(|s| (s.id, Progress::new(last)))
            .collect();
        self.check_quorum_due_ms = self.now_ms + self.opts.election_timeout_ms;
        let noop = Entry {
            index: last + 1,
            term: self.term,
            payload: Payload::Noop,
        };
        self.term_start_index = noop.index;
        self.append_as_leader(vec![noop], out);
        self.round_wanted = true;
    }
}
