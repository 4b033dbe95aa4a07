//! Client requests on the leader: proposals, reads (ReadIndex §6.4 and the lease), membership changes (§4.1),
//! and leader transfer (§3.10).

use super::node::{Action, MembershipChange, Node, PendingRead, RaftError, Role, Transfer};
use super::types::{Bytes, Configuration, Entry, Message, Payload, Server, ServerId, Suffrage};

impl Node {
    fn refuse(&self, ctx: u64, error: RaftError, out: &mut Vec<Action>) {
        out.push(Action::Rejected { ctx, error });
    }

    fn not_leader(&self) -> RaftError {
        RaftError::NotLeader {
            leader: self.leader.filter(|&l| l != self.opts.id),
        }
    }

    /// Whether this server may take a leader-only request now: it leads and is not handing leadership over.
    fn ready_to_lead(&self) -> Result<(), RaftError> {
        match (self.role, &self.transfer) {
            (Role::Leader, None) => Ok(()),
            (Role::Leader, Some(_)) => Err(RaftError::TransferInProgress),
            _ => Err(self.not_leader()),
        }
    }

    /// Appends client commands (leader only) and reports where each went.
    pub(super) fn propose(&mut self, commands: Vec<(u64, Bytes)>, out: &mut Vec<Action>) {
        if let Err(error) = self.ready_to_lead() {
            for (ctx, _) in commands {
                self.refuse(ctx, error.clone(), out);
            }
            return;
        }
        let mut entries = Vec::with_capacity(commands.len());
        for (index, (ctx, command)) in (self.log.last_index() + 1..).zip(commands) {
            out.push(Action::Proposed {
                ctx,
                index,
                term: self.term,
            });
            entries.push(Entry {
                index,
                term: self.term,
                payload: Payload::Command(command),
            });
        }
        if !entries.is_empty() {
            self.append_as_leader(entries, out);
        }
    }

    /// A read: under the lease when allowed and valid, else confirmed by a quorum-acknowledged heartbeat round.
    pub(super) fn read(&mut self, ctx: u64, lease: bool, out: &mut Vec<Action>) {
        if self.role != Role::Leader {
            let error = self.not_leader();
            self.refuse(ctx, error, out);
            return;
        }
        if self.commit < self.term_start_index {
            self.reads_waiting_commit.push((ctx, lease));
            return;
        }
        if lease && self.lease_valid() {
            out.push(Action::ReadReady {
                ctx,
                index: self.commit,
            });
            return;
        }
        self.round_wanted = true;
        self.reads.push_back(PendingRead {
            ctx,
            index: self.commit,
            round: self.round + 1,
        });
    }

    /// Releases reads whose round a quorum acknowledged, and queues reads that waited for this term's first commit.
    pub(super) fn release_reads(&mut self, out: &mut Vec<Action>) {
        if self.commit >= self.term_start_index && !self.reads_waiting_commit.is_empty() {
            for (ctx, lease) in std::mem::take(&mut self.reads_waiting_commit) {
                self.read(ctx, lease, out);
            }
        }
        let acked = self.quorum_acked_round();
        while self.reads.front().is_some_and(|r| r.round <= acked) {
            let r = self.reads.pop_front().expect("checked");
            out.push(Action::ReadReady {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    /// One membership change at a time, only after this leader committed an entry of its term.
    pub(super) fn change_membership(
        &mut self,
        ctx: u64,
        change: MembershipChange,
        out: &mut Vec<Action>,
    ) {
        if let Err(error) = self.ready_to_lead() {
            self.refuse(ctx, error, out);
            return;
        }
        if self.config_index() > self.commit || self.commit < self.term_start_index {
            self.refuse(ctx, RaftError::ConfigChangeInProgress, out);
            return;
        }
        let next = match changed_configuration(self.config(), &change) {
            Ok(c) => c,
            Err(why) => {
                self.refuse(ctx, RaftError::BadMembershipChange(why), out);
                return;
            }
        };
        let index = self.log.last_index() + 1;
        out.push(Action::Proposed {
            ctx,
            index,
            term: self.term,
        });
        let entry = Entry {
            index,
            term: self.term,
            payload: Payload::Config(next),
        };
        self.append_as_leader(vec![entry], out);
    }

    /// Starts handing leadership to `to` (or the voter with the most log): catch it up, then TimeoutNow.
    pub(super) fn transfer_leadership(
        &mut self,
        ctx: u64,
        to: Option<ServerId>,
        out: &mut Vec<Action>,
    ) {
        if let Err(error) = self.ready_to_lead() {
            self.refuse(ctx, error, out);
            return;
        }
        let target = to.or_else(|| {
            self.progress
                .iter()
                .filter(|(id, _)| self.config().is_voter(**id))
                .max_by_key(|(id, p)| (p.match_index, std::cmp::Reverse(**id)))
                .map(|(id, _)| *id)
        });
        let Some(target) = target.filter(|t| *t != self.opts.id && self.config().is_voter(*t))
        else {
            let why = "the transfer target must be another voter".to_string();
            self.refuse(ctx, RaftError::BadMembershipChange(why), out);
            return;
        };
        self.transfer = Some(Transfer {
            ctx,
            to: target,
            deadline_ms: self.now_ms + self.opts.election_timeout_ms,
            timeout_now_sent: false,
        });
        while self.send_append(target, false, out) {}
        self.maybe_send_timeout_now(target, out);
    }

    /// Sends TimeoutNow once the transfer target holds the whole log.
    pub(super) fn maybe_send_timeout_now(&mut self, peer: ServerId, out: &mut Vec<Action>) {
        let last = self.log.last_index();
        let caught_up = self
            .progress
            .get(&peer)
            .is_some_and(|p| p.match_index == last);
        let Some(tr) = self.transfer.as_mut() else {
            return;
        };
        if tr.to == peer && caught_up && !tr.timeout_now_sent {
            tr.timeout_now_sent = true;
            let msg = Message::TimeoutNow { term: self.term };
            self.send(peer, msg, false, out);
        }
    }
}

/// The configuration after `change`, or why the change makes no sense.
fn changed_configuration(
    config: &Configuration,
    change: &MembershipChange,
) -> Result<Configuration, String> {
    let mut servers = config.servers.clone();
    match change {
        MembershipChange::AddVoter { id, address }
        | MembershipChange::AddNonvoter { id, address } => {
            let suffrage = if matches!(change, MembershipChange::AddVoter { .. }) {
                Suffrage::Voter
            } else {
                Suffrage::Nonvoter
            };
            match servers.iter_mut().find(|s| s.id == *id) {
                Some(s) if s.suffrage == suffrage && s.address == *address => {
                    return Err(format!("server {} is already a member as asked", id.0));
                }
                Some(s) => {
                    s.suffrage = suffrage;
                    s.address = address.clone();
                }
                None => servers.push(Server {
                    id: *id,
                    suffrage,
                    address: address.clone(),
                }),
            }
        }
        MembershipChange::Remove { id } => {
            let before = servers.len();
            servers.retain(|s| s.id != *id);
            if servers.len() == before {
                return Err(format!("server {} is not a member", id.0));
            }
        }
    }
    let next = Configuration::new(servers);
    if next.voters().next().is_none() {
        return Err("the change would leave no voter".to_string());
    }
    Ok(next)
}
