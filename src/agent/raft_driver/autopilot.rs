//! What the driver gives the leader's autopilot (`crate::agent::autopilot`): the Raft view of each server
//! (how far its log matches the leader's, when the leader last heard from it), single-server membership
//! changes, and a slot for the autopilot state it computed, which `/v1/operator/autopilot/{health,state}`
//! read (forwarded to the leader from other servers, as `rpc::OperatorAction::AutopilotState`).

use super::*;
use crate::raft::{MembershipChange, Suffrage};

/// The driver's autopilot bookkeeping.
#[derive(Debug, Default)]
pub(super) struct AutopilotSlot {
    /// When (driver clock ms) a Raft message last came from each server.
    heard_ms: BTreeMap<ServerId, u64>,
    /// The latest autopilot state the leader computed (`api::autopilot::encode_view`).
    state: Option<Vec<u8>>,
}

/// One server as the leader's replication sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHealth {
    /// Its id.
    pub id: ServerId,
    /// Its address in the configuration.
    pub address: String,
    /// It votes.
    pub voter: bool,
    /// The highest index known replicated on it (the leader's own last index for the leader).
    pub match_index: Index,
    /// The term of that entry (the current term when it is no longer in the leader's log).
    pub match_term: Term,
    /// Milliseconds since the leader last heard from it (0 for the leader); `None` if never.
    pub contact_age_ms: Option<u64>,
}

/// The Raft side of autopilot's inputs, taken on the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftHealth {
    /// This server's id.
    pub id: ServerId,
    /// This server leads.
    pub leading: bool,
    /// The current term.
    pub term: Term,
    /// The leader's last log index.
    pub last_index: Index,
    /// The term of the leader's last log entry.
    pub last_term: Term,
    /// Every server of the latest configuration, in configuration order.
    pub servers: Vec<PeerHealth>,
}

impl Inner {
    /// A Raft message came from `from`.
    pub(super) fn note_heard(&mut self, from: ServerId) {
        let now = self.now_ms();
        self.autopilot.heard_ms.insert(from, now);
    }

    /// Answers `rpc::OperatorAction::AutopilotState` from the slot, on the leader.
    pub(super) fn answer_autopilot_state(&mut self, responder: Responder) {
        if self.node.role() != Role::Leader {
            let reply = self.not_leader();
            return self.respond(responder, Err(reply));
        }
        let reply = match &self.autopilot.state {
            Some(state) => Ok(Reply::Applied(Applied {
                index: self.node.applied_index(),
                result: state.clone(),
            })),
            None => Err(ErrorReply {
                code: ErrorCode::Rejected,
                leader: None,
                message: "Failed to get autopilot state: no state found".to_string(),
            }),
        };
        self.respond(responder, reply);
    }

    fn raft_health(&self) -> RaftHealth {
        let now = self.now_ms();
        let leading = self.node.role() == Role::Leader;
        let log = self.node.log();
        let servers = self
            .node
            .config()
            .servers
            .iter()
            .map(|s| {
                let me = s.id == self.id;
                let match_index = match (me, self.node.progress_of(s.id)) {
                    (true, _) => log.last_index(),
                    (false, Some(p)) => p.match_index,
                    (false, None) => 0,
                };
                PeerHealth {
                    id: s.id,
                    address: s.address.clone(),
                    voter: s.suffrage == Suffrage::Voter,
                    match_index,
                    match_term: log.term(match_index).unwrap_or(self.node.term()),
                    contact_age_ms: match me {
                        true => Some(0),
                        false => self.autopilot.heard_ms.get(&s.id).map(|at| now - at),
                    },
                }
            })
            .collect();
        RaftHealth {
            id: self.id,
            leading,
            term: self.node.term(),
            last_index: log.last_index(),
            last_term: log.last_term(),
            servers,
        }
    }
}

impl RaftHandle {
    /// Autopilot's Raft inputs now.
    pub fn raft_health(&self) -> RaftHealth {
        self.inner.borrow().raft_health()
    }

    /// Stores the autopilot state the leader computed (`None`: forget it, e.g. on losing leadership).
    pub fn set_autopilot_state(&self, state: Option<Vec<u8>>) {
        self.inner.borrow_mut().autopilot.state = state;
    }

    /// One membership change on the leader, answered once it is committed (or refused).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ErrorReply> {
        let (tx, rx) = local_channel::new_bounded(1);
        {
            let mut inner = self.inner.borrow_mut();
            if let Some(ctx) = inner.admit(Responder::Local(tx), None) {
                inner.step(Input::ChangeMembership { ctx, change });
            }
        }
        match rx.recv().await {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(stopped_error()),
        }
    }
}
