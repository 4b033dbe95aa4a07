//! The Serf layer over memberlist (serf.go, delegate.go, event handling): member status with Lamport-timed
//! join/leave intents, user events de-duplicated in a 512-slot ring, query de-duplication and acks, and the
//! push/pull user state.

use super::config::Addr;
use super::key_query::{self, KeyOp, KeyResponse};
use super::messages::Message;
use super::serf::{
    EventBody, EventsAt, Query, QueryResponse, SerfMessage, SerfPushPull, EVENT_BUFFER_SLOTS,
    QUERY_BUFFER_SLOTS,
};
use super::swim::{
    Action, GossipError, Intent, MemberStatus, NodeState, PendingQuery, Swim, INTENTS_MAX,
    PENDING_QUERIES_MAX, QUERY_RESPONDERS_MAX, QUEUE_EVENTS, QUEUE_INTENTS,
};
use std::collections::BTreeSet;

/// Query flag: the originator wants an ack.
const QUERY_FLAG_ACK: u32 = 1;
/// Query flag: do not re-broadcast.
const QUERY_FLAG_NO_BROADCAST: u32 = 2;

fn user_msg(serf: &SerfMessage) -> Vec<u8> {
    Message::User(serf.encode()).encode()
}

impl Swim {
    /// A serf message arrived (gossip, direct UDP or a user stream).
    pub(super) fn on_serf(&mut self, from: &Addr, bytes: &[u8], actions: &mut Vec<Action>) {
        let _ = from;
        let Ok(msg) = SerfMessage::decode(bytes) else {
            return;
        };
        match msg {
            SerfMessage::Join { ltime, node } => {
                if self.join_intent(ltime, &node) {
                    self.queues[QUEUE_INTENTS]
                        .push(None, user_msg(&SerfMessage::Join { ltime, node }));
                }
            }
            SerfMessage::Leave { ltime, node, prune } => {
                if self.leave_intent(ltime, &node, actions) {
                    if prune {
                        self.prune(&node, actions);
                    }
                    self.queues[QUEUE_INTENTS]
                        .push(None, user_msg(&SerfMessage::Leave { ltime, node, prune }));
                }
            }
            SerfMessage::UserEvent {
                ltime,
                name,
                payload,
                cc,
            } => {
                if self.user_event(ltime, &name, &payload, cc, actions) {
                    let m = SerfMessage::UserEvent {
                        ltime,
                        name,
                        payload,
                        cc,
                    };
                    self.queues[QUEUE_EVENTS].push(None, user_msg(&m));
                }
            }
            SerfMessage::Query(q) => self.on_query(q, actions),
            SerfMessage::Relay {
                dest_ip,
                dest_port,
                inner,
                ..
            } => {
                let to = Addr {
                    ip: dest_ip,
                    port: dest_port,
                };
                self.send_msg(&to, Message::User(inner).encode(), false, actions);
            }
            SerfMessage::QueryResponse(r) => self.on_query_response(r, actions),
            SerfMessage::PushPull(_) => {}
        }
    }

    /// serf handleNodeJoinIntent: true when the intent is news (re-gossip it).
    fn join_intent(&mut self, ltime: u64, node: &str) -> bool {
        self.member_clock.witness(ltime);
        match self.members.get_mut(node) {
            None => self.upsert_intent(node, ltime, false),
            Some(m) => {
                if ltime <= m.status_ltime {
                    return false;
                }
                m.status_ltime = ltime;
                if m.status == MemberStatus::Leaving {
                    m.status = MemberStatus::Alive;
                }
                true
            }
        }
    }

    /// serf handleNodeLeaveIntent.
    fn leave_intent(&mut self, ltime: u64, node: &str, actions: &mut Vec<Action>) -> bool {
        self.member_clock.witness(ltime);
        let me = self.cfg.name.clone();
        let leaving_self = self.leaving;
        let Some(m) = self.members.get_mut(node) else {
            return self.upsert_intent(node, ltime, true);
        };
        if ltime <= m.status_ltime {
            return false;
        }
        if node == me && !leaving_self {
            // Someone says we are leaving: refute with a fresh join intent.
            let t = self.member_clock.time();
            self.broadcast_join(t, actions);
            return false;
        }
        m.status_ltime = ltime;
        match m.status {
            MemberStatus::Alive => {
                m.status = MemberStatus::Leaving;
                true
            }
            MemberStatus::Failed => {
                m.status = MemberStatus::Left;
                actions.push(Action::MemberLeft(m.clone()));
                true
            }
            MemberStatus::Leaving | MemberStatus::Left => true,
        }
    }

    fn upsert_intent(&mut self, node: &str, ltime: u64, leave: bool) -> bool {
        if let Some(i) = self.recent_intents.get(node) {
            if ltime <= i.ltime {
                return false;
            }
        } else if self.recent_intents.len() >= INTENTS_MAX {
            return false;
        }
        self.recent_intents.insert(
            node.to_string(),
            Intent {
                ltime,
                leave,
                at_ms: self.now_ms,
            },
        );
        true
    }

    /// serf broadcastJoin: witness, apply locally, gossip.
    pub(super) fn broadcast_join(&mut self, ltime: u64, actions: &mut Vec<Action>) {
        let _ = actions;
        let node = self.cfg.name.clone();
        self.member_clock.witness(ltime);
        self.join_intent(ltime, &node);
        self.queues[QUEUE_INTENTS].push(None, user_msg(&SerfMessage::Join { ltime, node }));
    }

    /// serf Leave: stamp the intent, apply it to ourselves, gossip it.
    pub(super) fn serf_leave(&mut self, actions: &mut Vec<Action>) {
        let ltime = self.member_clock.time();
        self.member_clock.increment();
        let node = self.cfg.name.clone();
        self.leaving = true;
        self.leave_intent(ltime, &node, actions);
        self.leaving = false;
        let msg = SerfMessage::Leave {
            ltime,
            node,
            prune: false,
        };
        self.queues[QUEUE_INTENTS].push(None, user_msg(&msg));
    }

    /// serf RemoveFailedNodePrune: a leave intent for `node` (stamped, applied here, gossiped). Only a member
    /// that is not alive may be forced out; `prune` erases it at once everywhere.
    pub(super) fn force_leave(
        &mut self,
        node: &str,
        prune: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        if node == self.cfg.name {
            return Err(GossipError::Refused(
                "cannot force this node to leave".into(),
            ));
        }
        let Some(m) = self.members.get(node) else {
            return Err(GossipError::Refused(format!("no member named {node:?}")));
        };
        if m.status == MemberStatus::Alive && m.state == NodeState::Alive {
            return Err(GossipError::Refused(format!(
                "member {node:?} is alive; only failed members can be forced to leave"
            )));
        }
        let ltime = self.member_clock.time();
        self.member_clock.increment();
        let node = node.to_string();
        self.leave_intent(ltime, &node, actions);
        if prune {
            self.prune(&node, actions);
        }
        let msg = SerfMessage::Leave { ltime, node, prune };
        self.queues[QUEUE_INTENTS].push(None, user_msg(&msg));
        Ok(())
    }

    /// Erases a member that left (serf's prune): it is reaped now instead of after the tombstone timeout.
    fn prune(&mut self, node: &str, actions: &mut Vec<Action>) {
        let left = self
            .members
            .get(node)
            .is_some_and(|m| m.status == MemberStatus::Left && node != self.cfg.name);
        if left {
            if let Some(m) = self.members.remove(node) {
                self.probe_order.retain(|n| n != node);
                actions.push(Action::MemberReaped(m));
            }
        }
    }

    /// serf handleUserEvent: true when the event is new (delivered, and to be re-gossiped).
    fn user_event(
        &mut self,
        ltime: u64,
        name: &str,
        payload: &[u8],
        cc: bool,
        actions: &mut Vec<Action>,
    ) -> bool {
        self.event_clock.witness(ltime);
        if ltime < self.event_min_time {
            return false;
        }
        let cur = self.event_clock.time();
        if cur > EVENT_BUFFER_SLOTS && ltime < cur - EVENT_BUFFER_SLOTS {
            return false;
        }
        let idx = (ltime % EVENT_BUFFER_SLOTS) as usize;
        let body = EventBody {
            name: name.to_string(),
            payload: payload.to_vec(),
        };
        match &mut self.events[idx] {
            Some(seen) if seen.ltime == ltime => {
                if seen.events.contains(&body) || seen.events.len() >= 64 {
                    return false;
                }
                seen.events.push(body);
            }
            slot => {
                *slot = Some(EventsAt {
                    ltime,
                    events: vec![body],
                })
            }
        }
        actions.push(Action::UserEvent {
            ltime,
            name: name.to_string(),
            payload: payload.to_vec(),
            coalesce: cc,
        });
        true
    }

    /// serf UserEvent: stamp, deliver locally, gossip.
    pub(super) fn fire_user_event(
        &mut self,
        name: String,
        payload: Vec<u8>,
        cc: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let size = name.len() + payload.len();
        if size > self.cfg.user_event_bytes_max {
            return Err(GossipError::Refused(format!(
                "user event exceeds the limit of {} bytes ({size})",
                self.cfg.user_event_bytes_max
            )));
        }
        let ltime = self.event_clock.time();
        let msg = SerfMessage::UserEvent {
            ltime,
            name: name.clone(),
            payload: payload.clone(),
            cc,
        };
        let raw = user_msg(&msg);
        if raw.len() > self.cfg.user_event_bytes_max.max(512) + 64 {
            return Err(GossipError::Refused("encoded user event too large".into()));
        }
        self.event_clock.increment();
        self.user_event(ltime, &name, &payload, cc, actions);
        self.queues[QUEUE_EVENTS].push(None, raw);
        Ok(())
    }

    /// A query: de-duplicate, re-gossip unless forbidden, ack when asked. Answers are for a later layer.
    fn on_query(&mut self, q: Query, actions: &mut Vec<Action>) {
        self.query_clock.witness(q.ltime);
        let cur = self.query_clock.time();
        if cur > QUERY_BUFFER_SLOTS && q.ltime < cur - QUERY_BUFFER_SLOTS {
            return;
        }
        let idx = (q.ltime % QUERY_BUFFER_SLOTS) as usize;
        match &mut self.queries[idx] {
            Some((t, ids)) if *t == q.ltime => {
                if ids.contains(&q.id) || ids.len() >= 64 {
                    return;
                }
                ids.push(q.id);
            }
            slot => *slot = Some((q.ltime, vec![q.id])),
        }
        if q.flags & QUERY_FLAG_NO_BROADCAST == 0 {
            self.queues[QUEUE_EVENTS].push(None, user_msg(&SerfMessage::Query(q.clone())));
        }
        if q.flags & QUERY_FLAG_ACK != 0 {
            let ack = SerfMessage::QueryResponse(QueryResponse {
                ltime: q.ltime,
                id: q.id,
                from: self.cfg.name.clone(),
                flags: 1,
                payload: Vec::new(),
            });
            let to = Addr {
                ip: q.addr.clone(),
                port: q.port,
            };
            let bytes = crate::gossip::packet::pack(vec![user_msg(&ack)]);
            self.send_raw(&to, bytes, actions);
        }
        self.answer_internal_query(&q, actions);
    }

    /// serf's internal queries this member answers: the keyring ones.
    fn answer_internal_query(&mut self, q: &Query, actions: &mut Vec<Action>) {
        let answer = match KeyOp::from_query(&q.name, &q.payload) {
            None => return,
            Some(Ok(op)) => key_query::apply(self.keyring.as_mut(), &op),
            Some(Err(why)) => KeyResponse {
                message: why,
                ..KeyResponse::default()
            },
        };
        let response = SerfMessage::QueryResponse(QueryResponse {
            ltime: q.ltime,
            id: q.id,
            from: self.cfg.name.clone(),
            flags: 0,
            payload: answer.encode(),
        });
        let to = Addr {
            ip: q.addr.clone(),
            port: q.port,
        };
        let bytes = crate::gossip::packet::pack(vec![user_msg(&response)]);
        self.send_raw(&to, bytes, actions);
    }

    /// serf Query: stamp it, handle it here (this member answers too), gossip it, and wait for answers.
    pub(super) fn start_query(
        &mut self,
        token: u64,
        name: String,
        payload: Vec<u8>,
        timeout_ms: u64,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        if self.pending_queries.len() >= PENDING_QUERIES_MAX {
            return Err(GossipError::Refused("too many queries in flight".into()));
        }
        let ltime = self.query_clock.time();
        self.query_clock.increment();
        let id = self.rng.next_u64() as u32;
        let q = Query {
            ltime,
            id,
            addr: self.cfg.addr.ip.clone(),
            port: self.cfg.addr.port,
            source_node: self.cfg.name.clone(),
            filters: Vec::new(),
            flags: 0,
            relay_factor: 0,
            timeout_ns: (timeout_ms as i64).saturating_mul(1_000_000),
            name,
            payload,
        };
        self.pending_queries.insert(
            (ltime, id),
            PendingQuery {
                token,
                deadline_ms: self.now_ms + timeout_ms,
                responders: BTreeSet::new(),
            },
        );
        self.on_query(q, actions);
        Ok(())
    }

    /// An answer to one of this member's queries (acks are not reported).
    fn on_query_response(&mut self, r: QueryResponse, actions: &mut Vec<Action>) {
        if r.flags & QUERY_FLAG_ACK != 0 {
            return;
        }
        let Some(pending) = self.pending_queries.get_mut(&(r.ltime, r.id)) else {
            return;
        };
        if pending.responders.len() >= QUERY_RESPONDERS_MAX
            || !pending.responders.insert(r.from.clone())
        {
            return;
        }
        actions.push(Action::QueryResponse {
            token: pending.token,
            from: r.from,
            payload: r.payload,
        });
    }

    /// Ends the queries whose time is up.
    pub(super) fn expire_queries(&mut self, actions: &mut Vec<Action>) {
        let now = self.now_ms;
        let done: Vec<(u64, u32)> = self
            .pending_queries
            .iter()
            .filter(|(_, q)| q.deadline_ms <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            if let Some(q) = self.pending_queries.remove(&key) {
                actions.push(Action::QueryDone { token: q.token });
            }
        }
    }

    fn send_raw(&mut self, to: &Addr, bytes: Vec<u8>, actions: &mut Vec<Action>) {
        self.send_msg(to, bytes, false, actions);
    }

    /// memberlist NotifyJoin → serf member join (applying a buffered intent).
    pub(super) fn notify_join(&mut self, name: &str, actions: &mut Vec<Action>) {
        let intent = self.recent_intents.remove(name);
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        m.status = MemberStatus::Alive;
        if let Some(i) = intent {
            if i.ltime > m.status_ltime {
                m.status_ltime = i.ltime;
                if i.leave {
                    m.status = MemberStatus::Leaving;
                }
            }
        }
        actions.push(Action::MemberJoined(m.clone()));
    }

    /// memberlist NotifyLeave → serf left (it announced a leave, or memberlist says left) or failed.
    pub(super) fn notify_leave(&mut self, name: &str, actions: &mut Vec<Action>) {
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        if m.status == MemberStatus::Leaving || m.state == NodeState::Left {
            m.status = MemberStatus::Left;
            actions.push(Action::MemberLeft(m.clone()));
        } else {
            m.status = MemberStatus::Failed;
            actions.push(Action::MemberFailed(m.clone()));
        }
    }

    /// serf LocalState.
    pub(super) fn serf_local_state(&self) -> SerfPushPull {
        SerfPushPull {
            ltime: self.member_clock.time(),
            status_ltimes: self
                .members
                .values()
                .map(|m| (m.name.clone(), m.status_ltime))
                .collect(),
            left_members: self
                .members
                .values()
                .filter(|m| m.status == MemberStatus::Left)
                .map(|m| m.name.clone())
                .collect(),
            event_ltime: self.event_clock.time(),
            events: self.events.iter().flatten().cloned().collect(),
            query_ltime: self.query_clock.time(),
        }
    }

    /// serf MergeRemoteState.
    pub(super) fn serf_merge_state(
        &mut self,
        pp: SerfPushPull,
        join: bool,
        actions: &mut Vec<Action>,
    ) {
        let _ = join;
        if pp.ltime > 0 {
            self.member_clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        for name in &pp.left_members {
            let t = pp.status_ltimes.get(name).copied().unwrap_or(0);
            self.leave_intent(t.saturating_add(1), name, actions);
        }
        for (name, t) in &pp.status_ltimes {
            if pp.left_members.contains(name) {
                continue;
            }
            self.join_intent(*t, name);
        }
        for at in pp.events {
            for e in at.events {
                self.user_event(at.ltime, &e.name, &e.payload, false, actions);
            }
        }
    }
}
