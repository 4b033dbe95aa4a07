//! The driver's side of the bridge to the shards (`crate::agent::bridge`): requests from shards, replies and
//! change notices to them (one outbox per shard, notices merged while they wait), the published cluster view
//! and lease, and forwarding to the leader over the server RPC when this server is a follower.

use super::*;
use crate::agent::bridge::{
    ChangeNotice, ClusterView, CoreReply, CoreRequest, CoreSide, OperatorOp, ServerView,
    ShardMessage, Shared,
};
use crate::raft::{MembershipChange, Suffrage};
use crate::rpc::{OperatorAction, OperatorRequest};
use std::sync::Arc;

/// How long a request forwarded to the leader may wait for its reply.
pub const FORWARD_TIMEOUT_MS: u64 = 10_000;
/// How long a forwarded request still waits once leadership moved: the old leader, if alive, answers within
/// this (a transfer-leader it carried out answers only once the new leader is known); if dead, the request
/// fails this soon instead of after the full timeout.
pub const FORWARD_LEADER_CHANGE_GRACE_MS: u64 = 1_000;

/// Calls relayed to the shards and not answered yet, at most; more are refused as overloaded.
pub const RELAYS_MAX: usize = 16_384;

/// The bridge as the driver holds it.
pub(super) struct BridgeCore {
    shared: Arc<Shared>,
    outboxes: Vec<VecDeque<ShardMessage>>,
    wakes: Vec<LocalSender<()>>,
    /// What the published cluster view was built from: (leader, config index, term).
    published_from: Option<(Option<ServerId>, Index, Term)>,
}

impl RaftHandle {
    /// Connects the core's ends of the bridge: one task per shard receives its requests, one sends it the
    /// outbox. Publishes the current state at once.
    pub fn attach_shards(&self, side: CoreSide) -> Result<(), DriverError> {
        let CoreSide {
            shared,
            requests,
            messages,
        } = side;
        let (tq, stop) = {
            let i = self.inner.borrow();
            (i.tq, i.stop.clone())
        };
        let mut wakes = Vec::with_capacity(messages.len());
        let mut tasks = Vec::new();
        for (shard, (receiver, sender)) in requests.into_iter().zip(messages).enumerate() {
            let (wake, woken) = local_channel::new_bounded(1);
            wakes.push(wake);
            let inner = Rc::clone(&self.inner);
            let stop_in = stop.clone();
            let intake = async move {
                // A shard that failed at startup never connects: stop waiting when the driver stops.
                let Some(receiver) = unless_stopped(receiver.connect(), &stop_in).await else {
                    return;
                };
                loop {
                    let request = or(receiver.recv(), async {
                        stop_in.wait().await;
                        None
                    })
                    .await;
                    let Some(request) = request else { break };
                    inner.borrow_mut().on_shard_request(shard, request);
                    glommio::yield_if_needed().await;
                }
            };
            let inner = Rc::clone(&self.inner);
            let stop_out = stop.clone();
            let outbox = async move {
                let Some(sender) = unless_stopped(sender.connect(), &stop_out).await else {
                    return;
                };
                loop {
                    let woke = or(async { woken.recv().await.is_some() }, async {
                        stop_out.wait().await;
                        false
                    })
                    .await;
                    if !woke {
                        break;
                    }
                    loop {
                        let next = inner.borrow_mut().pop_outbox(shard);
                        let Some(message) = next else { break };
                        if sender.send(message).await.is_err() {
                            return;
                        }
                    }
                }
            };
            for future in [
                Box::pin(intake) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
                Box::pin(outbox),
            ] {
                tasks.push(
                    glommio::spawn_local_into(future, tq)
                        .map_err(|e| DriverError(e.to_string()))?,
                );
            }
        }
        {
            let mut i = self.inner.borrow_mut();
            i.bridge = Some(BridgeCore {
                shared,
                outboxes: wakes.iter().map(|_| VecDeque::new()).collect(),
                wakes,
                published_from: None,
            });
            i.after_step();
            i.publish_state();
        }
        self.parts.borrow_mut().tasks.extend(tasks);
        Ok(())
    }
}

impl Inner {
    pub(super) fn on_shard_request(&mut self, shard: usize, request: CoreRequest) {
        match request {
            CoreRequest::Apply { id, command } => {
                self.submit(command, Responder::Shard { shard, id })
            }
            CoreRequest::ReadIndex { id, consistency } => {
                let responder = Responder::Shard { shard, id };
                match self.forward_target() {
                    Some(leader) => self.forward(leader, responder, |reply_to| {
                        Body::Read(ReadRequest {
                            token: String::new(),
                            reply_to,
                            consistency,
                            query: Vec::new(),
                        })
                    }),
                    None => self.read(consistency, Vec::new(), responder),
                }
            }
            CoreRequest::RelayAnswer { id, answer } => {
                if let Some((target, request_id)) = self.relays.remove(&id) {
                    self.send_to(target, request_id, Body::RelayReply { result: answer });
                }
            }
            CoreRequest::Operator { id, op } => {
                let responder = Responder::Shard { shard, id };
                let action = match op {
                    OperatorOp::TransferLeader(to) => OperatorAction::TransferLeader(to),
                    OperatorOp::RemovePeer(id) => OperatorAction::RemovePeer(id),
                    OperatorOp::AutopilotState => OperatorAction::AutopilotState,
                };
                match self.forward_target() {
                    Some(leader) => self.forward(leader, responder, |reply_to| {
                        Body::Operator(OperatorRequest {
                            token: String::new(),
                            reply_to,
                            action,
                        })
                    }),
                    None => self.operator(responder, action),
                }
            }
        }
    }

    /// Proposes `command` here, or forwards it to the leader when this server is a follower that knows one
    /// (for requests of this server's own clients; a request another server sent is never forwarded again).
    pub(super) fn submit(&mut self, command: Vec<u8>, responder: Responder) {
        match self.forward_target() {
            Some(leader) => self.forward(leader, responder, |reply_to| {
                Body::Apply(ApplyRequest {
                    token: String::new(),
                    reply_to,
                    command,
                })
            }),
            None => self.propose(command, responder),
        }
    }

    /// The leader to forward to, when this server is a follower that knows one.
    fn forward_target(&self) -> Option<ServerId> {
        match self.node.leader() {
            Some(leader) if self.node.role() != Role::Leader && leader != self.id => Some(leader),
            _ => None,
        }
    }

    /// Runs an operator action on the leader (answered when it completes), or refuses it elsewhere.
    pub(super) fn operator(&mut self, responder: Responder, action: OperatorAction) {
        if action == OperatorAction::AutopilotState {
            return self.answer_autopilot_state(responder);
        }
        let Some(ctx) = self.admit(responder, None) else {
            return;
        };
        let input = match action {
            OperatorAction::TransferLeader(to) => Input::TransferLeadership { ctx, to },
            OperatorAction::RemovePeer(id) => Input::ChangeMembership {
                ctx,
                change: MembershipChange::Remove { id },
            },
            OperatorAction::AutopilotState => return,
        };
        self.step(input);
    }

    /// Sends a request to the leader; its reply arrives as a frame with the same request id.
    fn forward(
        &mut self,
        leader: ServerId,
        responder: Responder,
        body: impl FnOnce(String) -> Body,
    ) {
        if self.forwarded.len() >= self.requests_max {
            return self.respond(responder, Err(requests::overloaded(self.requests_max)));
        }
        let id = self.next_forward_id;
        self.next_forward_id += 1;
        let body = body(self.reply_address.clone());
        let deadline = self.now_ms() + FORWARD_TIMEOUT_MS;
        self.forwarded.insert(id, (responder, deadline));
        self.send_to(Target::Server(leader), id, body);
    }

    pub(super) fn on_forward_reply(&mut self, request_id: u64, reply: LocalReply) {
        match self.forwarded.remove(&request_id) {
            Some((responder, _)) => self.respond(responder, reply),
            None => self.stats.frames_dropped_inbound += 1,
        }
    }

    /// Leadership moved: every forwarded request gets at most [`FORWARD_LEADER_CHANGE_GRACE_MS`] more for
    /// the old leader's reply, then fails (the outcome of a forwarded write is then unknown; reads may be
    /// retried).
    pub(super) fn hurry_forwarded(&mut self) {
        let deadline = self.now_ms() + FORWARD_LEADER_CHANGE_GRACE_MS;
        for (_, at) in self.forwarded.values_mut() {
            *at = (*at).min(deadline);
        }
    }

    fn expire_forwarded(&mut self) {
        let now = self.now_ms();
        if !self
            .forwarded
            .values()
            .any(|(_, deadline)| *deadline <= now)
        {
            return;
        }
        let (expired, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.forwarded)
            .into_iter()
            .partition(|(_, (_, deadline))| *deadline <= now);
        self.forwarded = kept;
        for (_, (responder, _)) in expired {
            let error = ErrorReply {
                code: ErrorCode::Unknown,
                leader: self.leader_hint(),
                message: "no reply from the leader the request was forwarded to (it may have lost leadership)"
                    .to_string(),
            };
            self.respond(responder, Err(error));
        }
    }

    /// A Raft message from the known leader: the follower is in contact.
    pub(super) fn note_leader_contact(&mut self, from: ServerId) {
        if self.node.leader() == Some(from) {
            if let Some(bridge) = &self.bridge {
                bridge.shared.touch_leader_contact();
            }
        }
    }

    /// Keeps what the shards see in step with Raft: the cluster view, the lease, leader contact.
    pub(super) fn after_step(&mut self) {
        self.expire_forwarded();
        if self.bridge.is_none() {
            return;
        }
        let now = self.now_ms();
        let lease_left_ms = self
            .node
            .lease_expiry_ms()
            .map(|until| until.saturating_sub(now));
        let leading = self.node.role() == Role::Leader;
        let from = (
            self.node.leader(),
            self.node.config_index(),
            self.node.term(),
        );
        let view = (self.bridge.as_ref().expect("checked").published_from != Some(from))
            .then(|| self.cluster_view());
        let bridge = self.bridge.as_mut().expect("checked");
        let shared = &bridge.shared;
        shared.set_lease_until_ms(lease_left_ms.map(|left| shared.now_ms() + left));
        if leading {
            shared.touch_leader_contact();
        }
        if let Some(view) = view {
            bridge.published_from = Some(from);
            shared.publish_cluster(view);
        }
    }

    fn cluster_view(&self) -> ClusterView {
        ClusterView {
            id: self.id,
            leader_id: self.node.leader(),
            leader_address: self.leader_hint().map(|hint| hint.address),
            servers: self
                .node
                .config()
                .servers
                .iter()
                .map(|s| ServerView {
                    id: s.id,
                    address: s.address.clone(),
                    voter: s.suffrage == Suffrage::Voter,
                })
                .collect(),
            config_index: self.node.config_index(),
            term: self.node.term(),
        }
    }

    /// Publishes the state machine's state and tells every shard what changed.
    pub(super) fn publish_state(&mut self) {
        if self.bridge.is_none() {
            return;
        }
        let Some(notice) = self.sm.publish(self.node.applied_index()) else {
            return;
        };
        let bridge = self.bridge.as_mut().expect("checked");
        let listeners = bridge.shared.listeners();
        for shard in 0..bridge.outboxes.len() {
            if listeners.get(shard).copied().unwrap_or(true) {
                push_notice(&mut bridge.outboxes[shard], notice.clone());
                let _ = bridge.wakes[shard].try_send(());
            }
        }
    }

    pub(super) fn reply_to_shard(&mut self, shard: usize, id: u64, reply: LocalReply) {
        let reply = match reply {
            Ok(Reply::Applied(a)) => Ok(CoreReply::Applied {
                index: a.index,
                result: a.result,
            }),
            Ok(Reply::Read(r)) => Ok(CoreReply::ReadIndex(r.index)),
            Ok(Reply::Done) => Ok(CoreReply::Done),
            Err(e) => Err(e),
        };
        let Some(bridge) = &mut self.bridge else {
            return;
        };
        if let Some(outbox) = bridge.outboxes.get_mut(shard) {
            outbox.push_back(ShardMessage::Reply { id, reply });
            let _ = bridge.wakes[shard].try_send(());
        }
    }

    /// Hands a client agent's call to a shard (in turn), or refuses it when none can take it.
    pub(super) fn relay_to_shard(&mut self, target: Target, request_id: u64, call: Vec<u8>) {
        let refusal = match &self.bridge {
            None => Some((ErrorCode::Rejected, "this server serves no relayed calls")),
            Some(_) if self.relays.len() >= RELAYS_MAX => Some((
                ErrorCode::Overloaded,
                "too many relayed calls on this server",
            )),
            Some(_) => None,
        };
        if let Some((code, message)) = refusal {
            let error = ErrorReply {
                code,
                leader: None,
                message: message.to_string(),
            };
            return self.send_to(target, request_id, Body::Error(error));
        }
        let id = self.next_relay_id;
        self.next_relay_id += 1;
        self.relays.insert(id, (target, request_id));
        let bridge = self.bridge.as_mut().expect("checked");
        let shard = (id % bridge.outboxes.len().max(1) as u64) as usize;
        if let Some(outbox) = bridge.outboxes.get_mut(shard) {
            outbox.push_back(ShardMessage::Relay { id, call });
            let _ = bridge.wakes[shard].try_send(());
        }
    }

    pub(super) fn pop_outbox(&mut self, shard: usize) -> Option<ShardMessage> {
        self.bridge.as_mut()?.outboxes.get_mut(shard)?.pop_front()
    }
}

/// Queues a notice, merged into a notice still waiting at the back of the outbox.
fn push_notice(outbox: &mut VecDeque<ShardMessage>, notice: ChangeNotice) {
    if let Some(ShardMessage::Changed(last)) = outbox.back_mut() {
        last.merge(notice);
    } else {
        outbox.push_back(ShardMessage::Changed(notice));
    }
}

/// `future`'s output, or `None` once `stop` is triggered first.
async fn unless_stopped<T>(
    future: impl std::future::Future<Output = T>,
    stop: &Shutdown,
) -> Option<T> {
    let done = async { Some(future.await) };
    let stopped = async {
        stop.wait().await;
        None
    };
    or(done, stopped).await
}
