//! memberlist's state rules (state.go aliveNode, suspectNode, deadNode, refute, mergeState): incarnation
//! precedence, refutation, Lifeguard suspicion with confirmations, and push/pull merging.

use super::config::{suspicion_timeout_ms, Addr};
use super::messages::{Accusation, Alive, Message, PushNodeState, PushPull};
use super::serf::{decode_tags, SerfMessage};
use super::suspicion::Suspicion;
use super::swim::{Action, GossipError, Member, MemberStatus, NodeState, Swim, QUEUE_MEMBERLIST};

fn vsn6(v: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(v) {
        *o = *b;
    }
    out
}

impl Swim {
    /// The alive message this node gossips about itself.
    pub(super) fn self_alive(&self) -> Alive {
        let me = &self.members[&self.cfg.name];
        Alive {
            incarnation: me.incarnation,
            node: me.name.clone(),
            addr: me.addr.ip.clone(),
            port: me.addr.port,
            meta: me.meta.clone(),
            vsn: me.vsn.to_vec(),
        }
    }

    fn known(&self, name: &str) -> Option<&Member> {
        self.members.get(name).filter(|m| !m.removed)
    }

    /// memberlist aliveNode. `bootstrap` is only true for this node's own first alive.
    pub(super) fn on_alive(&mut self, a: Alive, bootstrap: bool, actions: &mut Vec<Action>) {
        let is_local = a.node == self.cfg.name;
        if self.leaving && is_local {
            return;
        }
        if a.vsn.len() >= 3 && (a.vsn[0] == 0 || a.vsn[1] == 0 || a.vsn[0] > a.vsn[1]) {
            return;
        }
        if a.node.is_empty() {
            return;
        }
        let now = self.now_ms;
        let port = if a.port == 0 {
            self.cfg.addr.port
        } else {
            a.port
        };
        let addr = Addr {
            ip: a.addr.clone(),
            port,
        };
        let mut updates_node = false;
        match self.members.get_mut(&a.node) {
            None => {
                if self.members.len() >= self.cfg.members_max {
                    return;
                }
                let m = Member {
                    name: a.node.clone(),
                    addr: addr.clone(),
                    meta: Vec::new(),
                    tags: Default::default(),
                    vsn: vsn6(&a.vsn),
                    incarnation: 0,
                    state: NodeState::Dead,
                    state_change_ms: now,
                    status: MemberStatus::Failed,
                    status_ltime: 0,
                    removed: false,
                };
                self.members.insert(a.node.clone(), m);
                self.insert_probe_order(&a.node);
                updates_node = true;
            }
            Some(m) if m.removed => {
                m.removed = false;
                m.addr = addr.clone();
                m.incarnation = 0;
                m.state = NodeState::Dead;
                self.insert_probe_order(&a.node);
                updates_node = true;
            }
            Some(m) => {
                if m.addr != addr {
                    let reclaim = self.cfg.dead_node_reclaim_time_ms;
                    let can_reclaim =
                        reclaim > 0 && now.saturating_sub(m.state_change_ms) > reclaim;
                    if m.state == NodeState::Left || (m.state == NodeState::Dead && can_reclaim) {
                        m.addr = addr.clone();
                        updates_node = true;
                    } else {
                        // A name conflict: serf would log it; the message is dropped.
                        return;
                    }
                }
            }
        }
        let Some(m) = self.members.get(&a.node) else {
            return;
        };
        if a.incarnation <= m.incarnation && !is_local && !updates_node {
            return;
        }
        if a.incarnation < m.incarnation && is_local {
            return;
        }
        self.suspicions.remove(&a.node);
        let old_state = m.state;
        let old_meta = m.meta.clone();
        if is_local && !bootstrap {
            if a.incarnation == m.incarnation && a.meta == m.meta && vsn6(&a.vsn) == m.vsn {
                return;
            }
            self.refute(a.incarnation);
        } else {
            self.queues[QUEUE_MEMBERLIST]
                .push(Some(a.node.clone()), Message::Alive(a.clone()).encode());
            let Some(m) = self.members.get_mut(&a.node) else {
                return;
            };
            m.incarnation = a.incarnation;
            m.tags = decode_tags(&a.meta).unwrap_or_default();
            m.meta = a.meta;
            m.addr = addr;
            m.vsn = vsn6(&a.vsn);
            if m.state != NodeState::Alive {
                m.state = NodeState::Alive;
                m.state_change_ms = now;
            }
        }
        if old_state.dead_or_left() {
            self.notify_join(&a.node, actions);
        } else if self
            .members
            .get(&a.node)
            .is_some_and(|m| m.meta != old_meta)
        {
            if let Some(m) = self.members.get(&a.node) {
                actions.push(Action::MemberUpdated(m.clone()));
            }
        }
    }

    /// Inserts a new node at a random position of the probe list.
    fn insert_probe_order(&mut self, name: &str) {
        let n = self.probe_order.len();
        let offset = self.rng.range(0, n as u64 + 1) as usize;
        self.probe_order.push(name.to_string());
        self.probe_order.swap(offset, n);
    }

    /// memberlist suspectNode.
    pub(super) fn on_suspect(&mut self, s: Accusation, actions: &mut Vec<Action>) {
        let Some(m) = self.known(&s.node) else {
            return;
        };
        if s.incarnation < m.incarnation {
            return;
        }
        let state = m.state;
        if let Some(susp) = self.suspicions.get_mut(&s.node) {
            if susp.confirm(&s.from) {
                self.queues[QUEUE_MEMBERLIST]
                    .push(Some(s.node.clone()), Message::Suspect(s).encode());
            }
            return;
        }
        if state != NodeState::Alive {
            return;
        }
        if s.node == self.cfg.name {
            self.refute(s.incarnation);
            return;
        }
        let _ = actions;
        let now = self.now_ms;
        let n = self.num_nodes();
        let mut k = self.cfg.suspicion_mult.saturating_sub(2) as u32;
        if (n as i64 - 2) < k as i64 {
            k = 0;
        }
        let min = suspicion_timeout_ms(self.cfg.suspicion_mult, n, self.cfg.probe_interval_ms);
        let max = self.cfg.suspicion_max_timeout_mult * min;
        self.suspicions
            .insert(s.node.clone(), Suspicion::new(&s.from, k, min, max, now));
        if let Some(m) = self.members.get_mut(&s.node) {
            m.incarnation = s.incarnation;
            m.state = NodeState::Suspect;
            m.state_change_ms = now;
        }
        self.queues[QUEUE_MEMBERLIST].push(Some(s.node.clone()), Message::Suspect(s).encode());
    }

    /// memberlist deadNode (From == Node: a voluntary leave).
    pub(super) fn on_dead(&mut self, d: Accusation, actions: &mut Vec<Action>) {
        let Some(m) = self.known(&d.node) else {
            return;
        };
        if d.incarnation < m.incarnation {
            return;
        }
        let state = m.state;
        self.suspicions.remove(&d.node);
        if state.dead_or_left() {
            return;
        }
        if d.node == self.cfg.name && !self.leaving {
            self.refute(d.incarnation);
            return;
        }
        let left = d.node == d.from;
        let name = d.node.clone();
        let now = self.now_ms;
        if let Some(m) = self.members.get_mut(&name) {
            m.incarnation = d.incarnation;
            m.state = if left {
                NodeState::Left
            } else {
                NodeState::Dead
            };
            m.state_change_ms = now;
        }
        self.queues[QUEUE_MEMBERLIST].push(Some(name.clone()), Message::Dead(d).encode());
        self.notify_leave(&name, actions);
    }

    /// Beats an accusation at `accused` with a higher incarnation and gossips it; health worsens by one.
    pub(super) fn refute(&mut self, accused: u32) {
        let name = self.cfg.name.clone();
        let Some(me) = self.members.get_mut(&name) else {
            return;
        };
        let mut inc = me.incarnation.saturating_add(1);
        if accused >= inc {
            inc = accused.saturating_add(1);
        }
        me.incarnation = inc;
        self.awareness.apply_delta(1);
        let alive = self.self_alive();
        self.queues[QUEUE_MEMBERLIST].push(Some(name), Message::Alive(alive).encode());
    }

    /// This node's push/pull: every node in the probe list, self included, and serf's state.
    pub(super) fn local_push_pull(&self, join: bool) -> PushPull {
        let nodes = self
            .probe_order
            .iter()
            .filter_map(|n| self.members.get(n))
            .map(|m| PushNodeState {
                name: m.name.clone(),
                addr: m.addr.ip.clone(),
                port: m.addr.port,
                meta: m.meta.clone(),
                incarnation: m.incarnation,
                state: m.state.wire(),
                vsn: m.vsn.to_vec(),
            })
            .collect();
        PushPull {
            join,
            nodes,
            user_state: SerfMessage::PushPull(self.serf_local_state()).encode(),
        }
    }

    /// memberlist verifyProtocol: every node's current versions must lie within what all alive nodes support.
    fn verify_protocol(&self, remote: &[PushNodeState]) -> Result<(), GossipError> {
        let local = self.probe_order.iter().filter_map(|n| self.members.get(n));
        let mut ranges = (0u8, u8::MAX, 0u8, u8::MAX);
        let mut all: Vec<([u8; 6], bool)> = local
            .map(|m| (m.vsn, m.state == NodeState::Alive))
            .collect();
        for r in remote {
            if r.vsn.len() < 6 {
                return Err(GossipError::Refused(format!(
                    "node {} has a {}-byte Vsn; 6 are required",
                    r.name,
                    r.vsn.len()
                )));
            }
            all.push((vsn6(&r.vsn), r.state == 0));
        }
        for (v, alive) in &all {
            if *alive {
                ranges.0 = ranges.0.max(v[0]);
                ranges.1 = ranges.1.min(v[1]);
                ranges.2 = ranges.2.max(v[3]);
                ranges.3 = ranges.3.min(v[4]);
            }
        }
        for (v, _) in &all {
            if v[2] < ranges.0 || v[2] > ranges.1 || v[5] < ranges.2 || v[5] > ranges.3 {
                return Err(GossipError::Refused(format!(
                    "incompatible protocol versions {v:?} (protocol {}..={}, delegate {}..={})",
                    ranges.0, ranges.1, ranges.2, ranges.3
                )));
            }
        }
        Ok(())
    }

    /// memberlist mergeState then serf MergeRemoteState.
    pub(super) fn merge_remote(
        &mut self,
        pp: PushPull,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        self.verify_protocol(&pp.nodes)?;
        let me = self.cfg.name.clone();
        for r in pp.nodes {
            match r.state {
                0 => self.on_alive(
                    Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port: r.port,
                        meta: r.meta,
                        vsn: r.vsn,
                    },
                    false,
                    actions,
                ),
                3 => self.on_dead(
                    Accusation {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name,
                    },
                    actions,
                ),
                _ => self.on_suspect(
                    Accusation {
                        incarnation: r.incarnation,
                        node: r.name,
                        from: me.clone(),
                    },
                    actions,
                ),
            }
        }
        if !pp.user_state.is_empty() {
            match SerfMessage::decode(&pp.user_state) {
                Ok(SerfMessage::PushPull(state)) => self.serf_merge_state(state, pp.join, actions),
                Ok(_) => {}
                Err(e) => {
                    return Err(GossipError::Wire(e.into()));
                }
            }
        }
        Ok(())
    }
}
