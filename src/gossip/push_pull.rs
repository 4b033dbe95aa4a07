//! Push/pull: full-state exchanges over TCP with one member (periodic sync, join, serf's reconnect to failed
//! members), dialed by the driver and merged when the reply comes.

use super::config::Addr;
use super::messages::Message;
use super::packet::{self};
use super::swim::*;

impl Swim {
    pub(super) fn start_push_pull(
        &mut self,
        to: Addr,
        kind: StreamKind,
        actions: &mut Vec<Action>,
    ) {
        let msg = self.local_push_pull(kind != StreamKind::Sync).encode();
        self.dial(to, kind, msg, actions);
    }

    pub(super) fn dial(
        &mut self,
        to: Addr,
        kind: StreamKind,
        msg: Vec<u8>,
        actions: &mut Vec<Action>,
    ) {
        if self.streams.len() >= STREAMS_MAX {
            return;
        }
        self.next_stream_id += 1;
        let id = self.next_stream_id;
        self.streams.insert(id, kind);
        let bytes = self.seal_stream(msg);
        actions.push(Action::Dial { id, to, bytes });
    }

    pub(super) fn on_stream(
        &mut self,
        conn: u64,
        from: &Addr,
        bytes: &[u8],
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let msg = match packet::decode_stream(bytes, self.keyring.as_ref(), self.cfg.members_max) {
            Ok(m) => m,
            Err(e) => {
                let reply = self.seal_stream(super::messages::encode_err(&e.0));
                actions.push(Action::StreamReply { conn, bytes: reply });
                return Err(e.into());
            }
        };
        match msg {
            packet::StreamMessage::PushPull(pp) => {
                let reply = self.local_push_pull(pp.join).encode();
                let reply = self.seal_stream(reply);
                actions.push(Action::StreamReply { conn, bytes: reply });
                self.merge_remote(pp, actions)?;
            }
            packet::StreamMessage::Ping(p) => {
                if p.node.is_empty() || p.node == self.cfg.name {
                    let ack = Message::Ack(super::messages::Ack {
                        seq_no: p.seq_no,
                        payload: Vec::new(),
                    })
                    .encode();
                    let reply = self.seal_stream(ack);
                    actions.push(Action::StreamReply { conn, bytes: reply });
                }
            }
            packet::StreamMessage::User(payload) => self.on_serf(from, &payload, actions),
            packet::StreamMessage::Ack(_) | packet::StreamMessage::Err(_) => {}
        }
        Ok(())
    }

    pub(super) fn on_push_pull_reply(
        &mut self,
        id: u64,
        bytes: &[u8],
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let Some(kind) = self.streams.remove(&id) else {
            return Ok(());
        };
        let result = self.merge_reply(id, kind, bytes, actions);
        if result.is_err() && kind == StreamKind::Join {
            actions.push(Action::JoinFailed { id });
        }
        result
    }

    pub(super) fn merge_reply(
        &mut self,
        id: u64,
        kind: StreamKind,
        bytes: &[u8],
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let msg = packet::decode_stream(bytes, self.keyring.as_ref(), self.cfg.members_max)?;
        if let StreamKind::Ping { seq } = kind {
            if let packet::StreamMessage::Ack(acked) = msg {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq && acked == seq {
                        p.tcp_acked = true;
                    }
                }
            }
            return Ok(());
        }
        match msg {
            packet::StreamMessage::PushPull(pp) => {
                self.merge_remote(pp, actions)?;
                if kind == StreamKind::Join {
                    let ltime = self.member_clock.time();
                    self.broadcast_join(ltime, actions);
                    actions.push(Action::Joined {
                        id,
                        members: self.members.len(),
                    });
                }
                Ok(())
            }
            packet::StreamMessage::Err(e) => {
                Err(GossipError::Refused(format!("remote error: {e}")))
            }
            _ => Err(GossipError::Refused(
                "push/pull answered with another message".into(),
            )),
        }
    }
}
