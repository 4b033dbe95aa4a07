//! SWIM probing: the probe timers (direct ping, indirect pings through k members, the TCP fallback, suspicion
//! when nothing answers), the probe order, and the gossip tick that piggybacks broadcasts.

use super::messages::{Accusation, IndirectPing, Message, Ping};
use super::swim::*;

impl Swim {
    pub(super) fn probe_timers(&mut self, actions: &mut Vec<Action>) {
        let now = self.now_ms;
        let Some(p) = &self.probe else {
            return;
        };
        if !p.indirect_sent && now >= p.timeout_ms {
            let (target, seq) = (p.target.clone(), p.seq);
            let peers = self.k_random(self.cfg.indirect_checks, |m| {
                m.state == NodeState::Alive && m.name != target
            });
            let Some(t) = self.members.get(&target).cloned() else {
                self.probe = None;
                return;
            };
            let mut expected = 0;
            for peer in peers {
                let Some(pm) = self.members.get(&peer).cloned() else {
                    continue;
                };
                let nack = pm.vsn[1] >= 4;
                expected += u32::from(nack);
                let req = IndirectPing {
                    seq_no: seq,
                    target: t.addr.ip.clone(),
                    port: t.addr.port,
                    node: t.name.clone(),
                    nack,
                    source_addr: self.cfg.addr.ip.clone(),
                    source_port: self.cfg.addr.port,
                    source_node: self.cfg.name.clone(),
                };
                self.send_msg(
                    &pm.addr,
                    Message::IndirectPing(req).encode(),
                    false,
                    actions,
                );
            }
            if let Some(p) = self.probe.as_mut() {
                p.indirect_sent = true;
                p.expected_nacks = expected;
            }
            // memberlist's TCP fallback ping, to members speaking protocol 3 or later.
            if t.vsn[1] >= 3 && self.cfg.tcp_pings {
                let ping = Message::Ping(Ping {
                    seq_no: seq,
                    node: t.name.clone(),
                    source_addr: self.cfg.addr.ip.clone(),
                    source_port: self.cfg.addr.port,
                    source_node: self.cfg.name.clone(),
                })
                .encode();
                self.dial(t.addr.clone(), StreamKind::Ping { seq }, ping, actions);
            }
        }
        let Some(p) = &self.probe else {
            return;
        };
        if now >= p.window_end_ms {
            let p = p.clone();
            self.probe = None;
            if p.tcp_acked {
                // Only TCP got through: memberlist warns ("network may be misconfigured") and does not suspect.
                return;
            }
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks.saturating_sub(p.nacks) as i64
            } else {
                1
            };
            self.awareness.apply_delta(delta);
            if let Some(t) = self.members.get(&p.target) {
                if t.state == NodeState::Alive || t.state == NodeState::Suspect {
                    let s = Accusation {
                        incarnation: t.incarnation,
                        node: p.target.clone(),
                        from: self.cfg.name.clone(),
                    };
                    self.on_suspect(s, actions);
                }
            }
        }
    }

    /// Reshuffles the probe list and forgets nodes dead longer than gossip_to_the_dead_time (memberlist resetNodes).
    pub(super) fn reset_nodes(&mut self) {
        let now = self.now_ms;
        let dead_time = self.cfg.gossip_to_the_dead_time_ms;
        let members = &mut self.members;
        self.probe_order.retain(|name| match members.get_mut(name) {
            Some(m)
                if m.state.dead_or_left() && now.saturating_sub(m.state_change_ms) > dead_time =>
            {
                m.removed = true;
                false
            }
            Some(_) => true,
            None => false,
        });
        for i in (1..self.probe_order.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            self.probe_order.swap(i, j);
        }
    }

    pub(super) fn start_probe(&mut self, actions: &mut Vec<Action>) {
        let mut checked = 0;
        let target = loop {
            if checked >= self.probe_order.len() {
                return;
            }
            if self.probe_index >= self.probe_order.len() {
                self.reset_nodes();
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let name = self.probe_order[self.probe_index].clone();
            self.probe_index += 1;
            let skip = name == self.cfg.name
                || self
                    .members
                    .get(&name)
                    .is_none_or(|m| m.state.dead_or_left());
            if skip {
                checked += 1;
                continue;
            }
            break name;
        };
        let Some(m) = self.members.get(&target).cloned() else {
            return;
        };
        let seq = self.next_seq();
        let now = self.now_ms;
        self.probe = Some(Probe {
            target: target.clone(),
            seq,
            timeout_ms: now + self.cfg.probe_timeout_ms,
            window_end_ms: now + self.awareness.scale_timeout_ms(self.cfg.probe_interval_ms),
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            tcp_acked: false,
        });
        let ping = Message::Ping(Ping {
            seq_no: seq,
            node: target.clone(),
            source_addr: self.cfg.addr.ip.clone(),
            source_port: self.cfg.addr.port,
            source_node: self.cfg.name.clone(),
        })
        .encode();
        if m.state == NodeState::Suspect {
            // A suspect target gets ping + suspect, CRC-wrapped, so it can refute at once.
            let suspect = Message::Suspect(Accusation {
                incarnation: m.incarnation,
                node: target,
                from: self.cfg.name.clone(),
            })
            .encode();
            let crc = m.vsn[1] >= 5;
            self.send_parts(&m.addr, vec![ping, suspect], crc, actions);
        } else {
            self.send_msg(&m.addr, ping, false, actions);
        }
    }

    pub(super) fn gossip(&mut self, actions: &mut Vec<Action>) {
        let now = self.now_ms;
        let dead_time = self.cfg.gossip_to_the_dead_time_ms;
        let targets = self.k_random(self.cfg.gossip_nodes, |m| match m.state {
            NodeState::Alive | NodeState::Suspect => true,
            NodeState::Dead | NodeState::Left => now.saturating_sub(m.state_change_ms) <= dead_time,
        });
        for name in targets {
            let avail = self.space_left(0);
            let parts = self.take_broadcasts(avail);
            if parts.is_empty() {
                return;
            }
            let Some(addr) = self.members.get(&name).map(|m| m.addr.clone()) else {
                continue;
            };
            let crc = self.pmax(&name) >= 5;
            self.send_parts(&addr, parts, crc, actions);
        }
    }
}
