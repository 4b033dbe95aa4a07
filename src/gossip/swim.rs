//! The SWIM core: one [`Swim`] per pool member, driven by [`Swim::step`]. Inputs are received packets and stream
//! messages, the passage of time and local requests; [`Action`]s are packets and streams to send, a wake-up time and
//! notifications. Timers, packets and streams are dispatched here; probing and the gossip tick in `probe.rs`;
//! push/pull in `push_pull.rs`; the alive/suspect/dead rules in `state.rs`; the Serf layer in `serf_state.rs`.

use super::broadcast::TransmitQueue;
use super::config::{push_pull_scale_ms, retransmit_limit, Addr, Config};
use super::messages::{Accusation, Message, Ping, META_BYTES_MAX};
use super::packet::{self, WireError};
use super::security::{self, Keyring, NONCE_BYTES};
use super::serf::{encode_tags, EventsAt, LamportClock, EVENT_BUFFER_SLOTS, QUERY_BUFFER_SLOTS};
use super::suspicion::{Awareness, Suspicion};
use crate::raft::rng::Rng;
use std::collections::BTreeMap;

/// memberlist's view of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeState {
    /// Answering probes.
    Alive,
    /// Suspected; declared dead unless refuted in time.
    Suspect,
    /// Declared dead.
    Dead,
    /// Left on purpose.
    Left,
}

impl NodeState {
    /// The push/pull wire number.
    pub fn wire(self) -> u8 {
        match self {
            NodeState::Alive => 0,
            NodeState::Suspect => 1,
            NodeState::Dead => 2,
            NodeState::Left => 3,
        }
    }

    /// Dead or left.
    pub fn dead_or_left(self) -> bool {
        matches!(self, NodeState::Dead | NodeState::Left)
    }
}

/// Serf's view of a member (serf.go MemberStatus; wire numbers 1–4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    /// Alive.
    Alive,
    /// Announced a leave, not gone yet.
    Leaving,
    /// Left.
    Left,
    /// Failed (declared dead without a leave).
    Failed,
}

/// One member of the pool, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Unique name.
    pub name: String,
    /// Gossip address.
    pub addr: Addr,
    /// Raw node Meta.
    pub meta: Vec<u8>,
    /// Serf tags decoded from Meta.
    pub tags: BTreeMap<String, String>,
    /// pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: [u8; 6],
    /// memberlist incarnation.
    pub incarnation: u32,
    /// memberlist state.
    pub state: NodeState,
    /// When `state` last changed.
    pub state_change_ms: u64,
    /// Serf status.
    pub status: MemberStatus,
    /// Serf status Lamport time.
    pub status_ltime: u64,
    /// memberlist has forgotten it (dead longer than gossip_to_the_dead_time); serf still lists it.
    pub removed: bool,
}

/// What the driver hands to [`Swim::step`].
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed (timers are checked on every step).
    Tick,
    /// A UDP datagram arrived from `from`.
    Packet {
        /// The datagram's source.
        from: Addr,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A peer opened a TCP stream and sent one whole message (delimited with `packet::stream_message_len`).
    /// Answer with the [`Action::StreamReply`] that carries `conn`, if any, then close.
    Stream {
        /// The driver's connection number.
        conn: u64,
        /// The peer's address (not its gossip address).
        from: Addr,
        /// The message bytes.
        bytes: Vec<u8>,
    },
    /// The answer to [`Action::Dial`] `id` (one whole stream message).
    DialReply {
        /// The conversation's number.
        id: u64,
        /// The reply message bytes.
        bytes: Vec<u8>,
    },
    /// [`Action::Dial`] `id` failed (dial, write, read or timeout).
    DialFailed {
        /// The conversation's number.
        id: u64,
    },
    /// Join the pool through these seeds (push/pull with `Join = true` to each).
    Join {
        /// Seed addresses.
        seeds: Vec<Addr>,
    },
    /// Leave gracefully: gossip serf's leave intent and memberlist's dead(self, self).
    Leave,
    /// Fire a serf user event.
    UserEvent {
        /// Name.
        name: String,
        /// Payload.
        payload: Vec<u8>,
        /// May coalesce.
        coalesce: bool,
    },
    /// Replace this node's tags (gossips an alive with incarnation + 1).
    SetTags(BTreeMap<String, String>),
    /// Start a serf query (`name`, `payload`) answered until `timeout_ms` from now; its answers come back as
    /// [`Action::QueryResponse`] and its end as [`Action::QueryDone`], both carrying `token`.
    Query {
        /// The driver's number for this query.
        token: u64,
        /// The query name (`_serf_list-keys` ...).
        name: String,
        /// The payload.
        payload: Vec<u8>,
        /// How long answers are collected.
        timeout_ms: u64,
    },
    /// serf's RemoveFailedNode: gossip a leave intent for a failed member so every node marks it left;
    /// `prune` also erases it from the member list at once.
    ForceLeave {
        /// The member's name.
        node: String,
        /// Erase it now instead of after the tombstone timeout.
        prune: bool,
    },
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a UDP datagram from the gossip socket.
    SendPacket {
        /// Destination.
        to: Addr,
        /// Bytes, ready to send.
        bytes: Vec<u8>,
    },
    /// Dial `to` over TCP, write `bytes`, read one stream message, hand it back as [`Input::DialReply`]
    /// (or report [`Input::DialFailed`]), then close. Used for push/pull (join, periodic sync, reconnect) and for
    /// TCP fallback pings; the deadline is memberlist's TCPTimeout (the core ignores late ping answers itself).
    Dial {
        /// Number to report back with.
        id: u64,
        /// Destination.
        to: Addr,
        /// Bytes to write.
        bytes: Vec<u8>,
    },
    /// Write `bytes` on accepted stream `conn`, then close it.
    StreamReply {
        /// The connection number from [`Input::Stream`].
        conn: u64,
        /// Bytes to write.
        bytes: Vec<u8>,
    },
    /// Call `step(.., Input::Tick, ..)` at `at_ms` (replaces any earlier wake-up).
    WakeAt {
        /// When.
        at_ms: u64,
    },
    /// A member joined (or came back).
    MemberJoined(Member),
    /// A member's tags changed.
    MemberUpdated(Member),
    /// A member was declared dead without leaving.
    MemberFailed(Member),
    /// A member left.
    MemberLeft(Member),
    /// A failed or left member was erased after its timeout.
    MemberReaped(Member),
    /// A serf user event (new to this node).
    UserEvent {
        /// Event clock value.
        ltime: u64,
        /// Name.
        name: String,
        /// Payload.
        payload: Vec<u8>,
        /// May coalesce.
        coalesce: bool,
    },
    /// A member answered query `token` (each member once).
    QueryResponse {
        /// The driver's number for the query.
        token: u64,
        /// The member that answered.
        from: String,
        /// Its answer.
        payload: Vec<u8>,
    },
    /// Query `token`'s time is up: no more answers.
    QueryDone {
        /// The driver's number for the query.
        token: u64,
    },
    /// The push/pull join `id` failed (unreachable seed, error reply or bad bytes).
    JoinFailed {
        /// The push/pull's number.
        id: u64,
    },
    /// The push/pull join to `id` completed; `members` are now known.
    Joined {
        /// The push/pull's number.
        id: u64,
        /// Members known after the merge.
        members: usize,
    },
}

/// Why a local request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipError {
    /// Received bytes were malformed (the driver logs and drops them).
    Wire(WireError),
    /// A request broke a limit or a rule.
    Refused(String),
}

impl std::fmt::Display for GossipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GossipError::Wire(e) => write!(f, "gossip wire: {e}"),
            GossipError::Refused(why) => write!(f, "gossip: {why}"),
        }
    }
}

impl From<WireError> for GossipError {
    fn from(e: WireError) -> Self {
        GossipError::Wire(e)
    }
}

/// The probe in flight.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    pub(super) target: String,
    pub(super) seq: u32,
    pub(super) timeout_ms: u64,
    pub(super) window_end_ms: u64,
    pub(super) indirect_sent: bool,
    pub(super) expected_nacks: u32,
    pub(super) nacks: u32,
    pub(super) tcp_acked: bool,
}

/// An indirect probe served for another node.
#[derive(Clone, Debug)]
pub(super) struct Relay {
    pub(super) to: Addr,
    pub(super) seq: u32,
    pub(super) nack: bool,
    pub(super) deadline_ms: u64,
}

/// A serf intent for a member not known yet.
#[derive(Clone, Debug)]
pub(super) struct Intent {
    pub(super) ltime: u64,
    pub(super) leave: bool,
    pub(super) at_ms: u64,
}

/// Why a push/pull was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StreamKind {
    /// Periodic anti-entropy.
    Sync,
    /// A requested join: on success, gossip serf's join intent.
    Join,
    /// serf's reconnect to a failed member (a memberlist join without an intent).
    Reconnect,
    /// A TCP fallback ping for probe `seq`.
    Ping {
        /// The probe's sequence number.
        seq: u32,
    },
}

/// A query this member started, waiting for answers.
#[derive(Clone, Debug)]
pub(super) struct PendingQuery {
    pub(super) token: u64,
    pub(super) deadline_ms: u64,
    pub(super) responders: std::collections::BTreeSet<String>,
}

/// Queries waiting for answers at most.
pub(super) const PENDING_QUERIES_MAX: usize = 64;
/// Answers kept per query at most (one per member).
pub(super) const QUERY_RESPONDERS_MAX: usize = 100_000;

/// Broadcast queues, filled in this order: memberlist, serf intents, serf events and queries.
pub(super) const QUEUE_MEMBERLIST: usize = 0;
pub(super) const QUEUE_INTENTS: usize = 1;
pub(super) const QUEUE_EVENTS: usize = 2;
const REAP_INTERVAL_MS: u64 = 15_000;
/// Relays in flight at most.
const RELAYS_MAX: usize = 1_024;
/// Push/pulls in flight at most.
pub(super) const STREAMS_MAX: usize = 128;
/// Intents for unknown members kept at most.
pub(super) const INTENTS_MAX: usize = 4_096;

/// One member's SWIM + Lifeguard + Serf state machine. Pure: time comes in, randomness from a seeded PRNG.
pub struct Swim {
    pub(super) cfg: Config,
    pub(super) rng: Rng,
    pub(super) members: BTreeMap<String, Member>,
    pub(super) probe_order: Vec<String>,
    pub(super) probe_index: usize,
    pub(super) seq_no: u32,
    pub(super) probe: Option<Probe>,
    pub(super) relays: BTreeMap<u32, Relay>,
    pub(super) suspicions: BTreeMap<String, Suspicion>,
    pub(super) awareness: Awareness,
    pub(super) queues: [TransmitQueue; 3],
    pub(super) next_probe_ms: u64,
    pub(super) next_gossip_ms: u64,
    pub(super) next_push_pull_ms: u64,
    pub(super) next_reap_ms: u64,
    pub(super) member_clock: LamportClock,
    pub(super) event_clock: LamportClock,
    pub(super) query_clock: LamportClock,
    pub(super) events: Vec<Option<EventsAt>>,
    pub(super) event_min_time: u64,
    pub(super) queries: Vec<Option<(u64, Vec<u32>)>>,
    pub(super) recent_intents: BTreeMap<String, Intent>,
    pub(super) keyring: Option<Keyring>,
    pub(super) leaving: bool,
    pub(super) streams: BTreeMap<u64, StreamKind>,
    pub(super) next_reconnect_ms: u64,
    pub(super) next_stream_id: u64,
    pub(super) wake_at_ms: Option<u64>,
    pub(super) started: bool,
    pub(super) now_ms: u64,
    pub(super) pending_queries: BTreeMap<(u64, u32), PendingQuery>,
}

impl Swim {
    /// A member named and addressed by `cfg`, its choices drawn from `seed` (the driver seeds from OS entropy:
    /// encryption nonces come from this generator). `keyring` turns AES-GCM on.
    pub fn new(cfg: Config, seed: u64, keyring: Option<Keyring>) -> Result<Swim, GossipError> {
        let meta = encode_tags(&cfg.tags);
        if meta.len() > META_BYTES_MAX {
            return Err(GossipError::Refused(format!(
                "tags encode to {} bytes; at most {META_BYTES_MAX}",
                meta.len()
            )));
        }
        let me = Member {
            name: cfg.name.clone(),
            addr: cfg.addr.clone(),
            tags: cfg.tags.clone(),
            meta,
            vsn: cfg.vsn,
            incarnation: 1,
            state: NodeState::Alive,
            state_change_ms: 0,
            status: MemberStatus::Alive,
            status_ltime: 0,
            removed: false,
        };
        let queue_max = cfg.broadcast_queue_max;
        Ok(Swim {
            members: BTreeMap::from([(cfg.name.clone(), me)]),
            probe_order: vec![cfg.name.clone()],
            probe_index: 0,
            seq_no: 0,
            probe: None,
            relays: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            awareness: Awareness::new(cfg.awareness_max_multiplier),
            queues: [
                TransmitQueue::new(queue_max),
                TransmitQueue::new(queue_max),
                TransmitQueue::new(queue_max),
            ],
            next_probe_ms: 0,
            next_gossip_ms: 0,
            next_push_pull_ms: 0,
            next_reap_ms: 0,
            next_reconnect_ms: 0,
            member_clock: LamportClock(1),
            event_clock: LamportClock(1),
            query_clock: LamportClock(1),
            events: vec![None; EVENT_BUFFER_SLOTS as usize],
            event_min_time: 0,
            queries: vec![None; QUERY_BUFFER_SLOTS as usize],
            recent_intents: BTreeMap::new(),
            keyring,
            leaving: false,
            streams: BTreeMap::new(),
            next_stream_id: 0,
            wake_at_ms: None,
            started: false,
            now_ms: 0,
            pending_queries: BTreeMap::new(),
            rng: Rng::new(seed),
            cfg,
        })
    }

    /// This node's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every member known (self included), by name.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// memberlist's node-count estimate (nodes in the probe list, dead ones not yet removed included).
    pub fn num_nodes(&self) -> usize {
        self.probe_order.len()
    }

    /// Lifeguard's local health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score
    }

    /// Broadcasts still queued (a leaving driver waits for this to reach 0, up to BroadcastTimeout).
    pub fn pending_broadcasts(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }

    /// The three serf clocks: (member, event, query).
    pub fn clocks(&self) -> (u64, u64, u64) {
        (
            self.member_clock.time(),
            self.event_clock.time(),
            self.query_clock.time(),
        )
    }

    /// The keyring, to install, use or remove keys (`None` when unencrypted).
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.keyring.as_mut()
    }

    /// When the core next needs a [`Input::Tick`].
    pub fn next_wake_ms(&self) -> u64 {
        let mut t = self
            .next_gossip_ms
            .min(self.next_reap_ms)
            .min(self.next_reconnect_ms);
        if self.cfg.push_pull_interval_ms > 0 {
            t = t.min(self.next_push_pull_ms);
        }
        match &self.probe {
            Some(p) if !p.indirect_sent => t = t.min(p.timeout_ms.min(p.window_end_ms)),
            Some(p) => t = t.min(p.window_end_ms),
            None => t = t.min(self.next_probe_ms),
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline_ms);
        }
        if let Some(r) = self.relays.values().map(|r| r.deadline_ms).min() {
            t = t.min(r);
        }
        if let Some(q) = self.pending_queries.values().map(|q| q.deadline_ms).min() {
            t = t.min(q);
        }
        t
    }

    /// Handles one input at `now_ms`, runs due timers, and appends the resulting actions. A malformed packet or
    /// stream is reported as `Err` after whatever could be used was applied.
    pub fn step(
        &mut self,
        now_ms: u64,
        input: Input,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        self.now_ms = now_ms.max(self.now_ms);
        if !self.started {
            self.start(actions);
        }
        let result = match input {
            Input::Tick => Ok(()),
            Input::Packet { from, bytes } => self.on_packet(&from, &bytes, actions),
            Input::Stream { conn, from, bytes } => self.on_stream(conn, &from, &bytes, actions),
            Input::DialReply { id, bytes } => self.on_push_pull_reply(id, &bytes, actions),
            Input::DialFailed { id } => {
                if self.streams.remove(&id) == Some(StreamKind::Join) {
                    actions.push(Action::JoinFailed { id });
                }
                Ok(())
            }
            Input::Join { seeds } => {
                for seed in seeds {
                    self.start_push_pull(seed, StreamKind::Join, actions);
                }
                Ok(())
            }
            Input::Leave => {
                self.leave(actions);
                Ok(())
            }
            Input::UserEvent {
                name,
                payload,
                coalesce,
            } => self.fire_user_event(name, payload, coalesce, actions),
            Input::SetTags(tags) => self.set_tags(tags, actions),
            Input::ForceLeave { node, prune } => self.force_leave(&node, prune, actions),
            Input::Query {
                token,
                name,
                payload,
                timeout_ms,
            } => self.start_query(token, name, payload, timeout_ms, actions),
        };
        self.run_timers(actions);
        let wake = self.next_wake_ms();
        if self.wake_at_ms != Some(wake) {
            self.wake_at_ms = Some(wake);
            actions.push(Action::WakeAt { at_ms: wake });
        }
        result
    }

    fn start(&mut self, actions: &mut Vec<Action>) {
        self.started = true;
        let now = self.now_ms;
        self.next_probe_ms = now + self.rng.range(0, self.cfg.probe_interval_ms.max(1));
        self.next_gossip_ms = now + self.rng.range(0, self.cfg.gossip_interval_ms.max(1));
        self.next_push_pull_ms = now + self.rng.range(0, self.cfg.push_pull_interval_ms.max(1));
        self.next_reap_ms = now + REAP_INTERVAL_MS;
        self.next_reconnect_ms = now + self.cfg.reconnect_interval_ms;
        let name = self.cfg.name.clone();
        if let Some(me) = self.members.get_mut(&name) {
            me.state_change_ms = now;
            actions.push(Action::MemberJoined(me.clone()));
        }
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn nonce(&mut self) -> [u8; NONCE_BYTES] {
        let mut n = [0u8; NONCE_BYTES];
        n[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        n[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes()[..4]);
        n
    }

    /// Piggyback space left in a packet that already holds `used` bytes.
    pub(super) fn space_left(&self, used: usize) -> usize {
        let enc = if self.keyring.is_some() {
            security::OVERHEAD_V1_BYTES
        } else {
            0
        };
        self.cfg.udp_buffer_bytes.saturating_sub(used + 2 + enc)
    }

    /// Takes queued broadcasts (memberlist first, then serf intents, then events) for `limit_bytes`.
    pub(super) fn take_broadcasts(&mut self, limit_bytes: usize) -> Vec<Vec<u8>> {
        let limit = retransmit_limit(self.cfg.retransmit_mult, self.num_nodes());
        let mut out = Vec::new();
        let mut left = limit_bytes;
        for q in self.queues.iter_mut() {
            let got = q.take(2, left, limit);
            for g in &got {
                left = left.saturating_sub(g.len() + 2);
            }
            out.extend(got);
        }
        out
    }

    /// Sends `msg` to `to`, with broadcasts piggybacked, CRC-wrapped when asked, compressed and encrypted per config.
    pub(super) fn send_msg(
        &mut self,
        to: &Addr,
        msg: Vec<u8>,
        crc: bool,
        actions: &mut Vec<Action>,
    ) {
        let avail = self.space_left(msg.len());
        let mut parts = vec![msg];
        parts.extend(self.take_broadcasts(avail));
        self.send_parts(to, parts, crc, actions);
    }

    pub(super) fn send_parts(
        &mut self,
        to: &Addr,
        parts: Vec<Vec<u8>>,
        crc: bool,
        actions: &mut Vec<Action>,
    ) {
        let mut bytes = packet::pack(parts);
        if self.cfg.enable_compression {
            bytes = packet::compress_if_shorter(bytes);
        }
        if crc {
            bytes = packet::add_crc(&bytes);
        }
        if let Some(ring) = &self.keyring {
            let ring = ring.clone();
            let nonce = self.nonce();
            match packet::seal_packet(&ring, 1, nonce, &bytes) {
                Ok(sealed) => bytes = sealed,
                Err(_) => return,
            }
        }
        actions.push(Action::SendPacket {
            to: to.clone(),
            bytes,
        });
    }

    /// Wraps a stream message for sending (compression and encryption per config).
    pub(super) fn seal_stream(&mut self, msg: Vec<u8>) -> Vec<u8> {
        let nonce = self.nonce();
        let ring = self.keyring.clone();
        packet::encode_stream(
            msg.clone(),
            self.cfg.enable_compression,
            ring.as_ref(),
            nonce,
        )
        .unwrap_or(msg)
    }

    pub(super) fn pmax(&self, name: &str) -> u8 {
        self.members.get(name).map(|m| m.vsn[1]).unwrap_or(0)
    }

    /// Up to `k` distinct random members from the probe list that pass `keep` (memberlist kRandomNodes).
    pub(super) fn k_random(&mut self, k: usize, keep: impl Fn(&Member) -> bool) -> Vec<String> {
        let n = self.probe_order.len();
        let mut out: Vec<String> = Vec::with_capacity(k);
        let mut tries = 0;
        while tries < 3 * n && out.len() < k {
            tries += 1;
            let idx = self.rng.range(0, n as u64) as usize;
            let name = &self.probe_order[idx];
            if name == &self.cfg.name || out.contains(name) {
                continue;
            }
            if let Some(m) = self.members.get(name) {
                if keep(m) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    fn run_timers(&mut self, actions: &mut Vec<Action>) {
        let now = self.now_ms;
        self.expire_queries(actions);
        self.probe_timers(actions);
        if self.probe.is_none() && now >= self.next_probe_ms {
            self.next_probe_ms = now + self.cfg.probe_interval_ms;
            self.start_probe(actions);
        }
        if now >= self.next_gossip_ms {
            while self.next_gossip_ms <= now {
                self.next_gossip_ms += self.cfg.gossip_interval_ms.max(1);
            }
            self.gossip(actions);
        }
        if self.cfg.push_pull_interval_ms > 0 && now >= self.next_push_pull_ms {
            self.next_push_pull_ms =
                now + push_pull_scale_ms(self.cfg.push_pull_interval_ms, self.num_nodes());
            let peers = self.k_random(1, |m| m.state == NodeState::Alive);
            if let Some(peer) = peers.first() {
                if let Some(addr) = self.members.get(peer).map(|m| m.addr.clone()) {
                    self.start_push_pull(addr, StreamKind::Sync, actions);
                }
            }
        }
        let due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline_ms <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(s) = self.suspicions.remove(&name) else {
                continue;
            };
            let Some(m) = self.members.get(&name) else {
                continue;
            };
            if m.state == NodeState::Suspect && m.state_change_ms <= s.start_ms {
                let d = Accusation {
                    incarnation: m.incarnation,
                    node: name.clone(),
                    from: self.cfg.name.clone(),
                };
                self.on_dead(d, actions);
            }
        }
        let expired: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, r)| r.deadline_ms <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            if let Some(r) = self.relays.remove(&seq) {
                if r.nack {
                    self.send_msg(&r.to, Message::Nack(r.seq).encode(), false, actions);
                }
            }
        }
        if now >= self.next_reconnect_ms {
            self.next_reconnect_ms = now + self.cfg.reconnect_interval_ms.max(1);
            self.reconnect(actions);
        }
        if now >= self.next_reap_ms {
            self.next_reap_ms = now + REAP_INTERVAL_MS;
            self.reap(actions);
        }
    }

    fn on_packet(
        &mut self,
        from: &Addr,
        bytes: &[u8],
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let decoded = packet::decode_packet(
            bytes,
            self.keyring.as_ref(),
            self.cfg.gossip_verify_incoming,
        );
        // memberlist hands queued messages to its worker newest-first; order within a packet does not matter here.
        for msg in decoded.messages {
            self.on_message(from, msg, actions);
        }
        match decoded.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    pub(super) fn on_message(&mut self, from: &Addr, msg: Message, actions: &mut Vec<Action>) {
        match msg {
            Message::Ping(p) => {
                if !p.node.is_empty() && p.node != self.cfg.name {
                    return;
                }
                let to = reply_addr(from, &p.source_addr, p.source_port);
                let ack = Message::Ack(super::messages::Ack {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                });
                self.send_msg(&to, ack.encode(), false, actions);
            }
            Message::IndirectPing(ip) => {
                if self.relays.len() >= RELAYS_MAX {
                    return;
                }
                let seq = self.next_seq();
                let to = reply_addr(from, &ip.source_addr, ip.source_port);
                let port = if ip.port == 0 {
                    self.cfg.addr.port
                } else {
                    ip.port
                };
                let target = Addr {
                    ip: ip.target.clone(),
                    port,
                };
                self.relays.insert(
                    seq,
                    Relay {
                        to,
                        seq: ip.seq_no,
                        nack: ip.nack,
                        deadline_ms: self.now_ms + self.cfg.probe_timeout_ms,
                    },
                );
                let ping = Message::Ping(Ping {
                    seq_no: seq,
                    node: ip.node,
                    source_addr: self.cfg.addr.ip.clone(),
                    source_port: self.cfg.addr.port,
                    source_node: self.cfg.name.clone(),
                });
                self.send_msg(&target, ping.encode(), false, actions);
            }
            Message::Ack(a) => self.on_ack(a.seq_no, actions),
            Message::Nack(seq) => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq {
                        p.nacks += 1;
                    }
                }
            }
            Message::Alive(a) => self.on_alive(a, false, actions),
            Message::Suspect(s) => self.on_suspect(s, actions),
            Message::Dead(d) => self.on_dead(d, actions),
            Message::User(bytes) => self.on_serf(from, &bytes, actions),
        }
    }

    fn on_ack(&mut self, seq: u32, actions: &mut Vec<Action>) {
        if self.probe.as_ref().is_some_and(|p| p.seq == seq) {
            self.probe = None;
            self.awareness.apply_delta(-1);
            return;
        }
        if let Some(r) = self.relays.remove(&seq) {
            let ack = Message::Ack(super::messages::Ack {
                seq_no: r.seq,
                payload: Vec::new(),
            });
            self.send_msg(&r.to, ack.encode(), false, actions);
        }
    }

    /// serf's reconnect: with probability failed ÷ alive, push/pull (as a join) with one random failed member.
    fn reconnect(&mut self, actions: &mut Vec<Action>) {
        let failed: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Failed)
            .map(|m| m.addr.clone())
            .collect();
        if failed.is_empty() {
            return;
        }
        let left = self
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Left)
            .count();
        let alive = (self.members.len() - failed.len() - left).max(1);
        let prob = failed.len() as f64 / alive as f64;
        let roll = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if roll > prob {
            return;
        }
        let pick = self.rng.range(0, failed.len() as u64) as usize;
        self.start_push_pull(failed[pick].clone(), StreamKind::Reconnect, actions);
    }

    fn leave(&mut self, actions: &mut Vec<Action>) {
        if self.leaving {
            return;
        }
        self.serf_leave(actions);
        self.leaving = true;
        let inc = self
            .members
            .get(&self.cfg.name)
            .map(|m| m.incarnation)
            .unwrap_or(1);
        let name = self.cfg.name.clone();
        self.on_dead(
            Accusation {
                incarnation: inc,
                node: name.clone(),
                from: name,
            },
            actions,
        );
    }

    fn set_tags(
        &mut self,
        tags: BTreeMap<String, String>,
        actions: &mut Vec<Action>,
    ) -> Result<(), GossipError> {
        let meta = encode_tags(&tags);
        if meta.len() > META_BYTES_MAX {
            return Err(GossipError::Refused(format!(
                "tags encode to {} bytes; at most {META_BYTES_MAX}",
                meta.len()
            )));
        }
        self.cfg.tags = tags.clone();
        let name = self.cfg.name.clone();
        let Some(me) = self.members.get_mut(&name) else {
            return Ok(());
        };
        me.incarnation += 1;
        me.meta = meta;
        me.tags = tags;
        let alive = self.self_alive();
        self.queues[QUEUE_MEMBERLIST].push(Some(name.clone()), Message::Alive(alive).encode());
        if let Some(me) = self.members.get(&name) {
            actions.push(Action::MemberUpdated(me.clone()));
        }
        Ok(())
    }

    fn reap(&mut self, actions: &mut Vec<Action>) {
        let now = self.now_ms;
        let (reconnect, tombstone) = (self.cfg.reconnect_timeout_ms, self.cfg.tombstone_timeout_ms);
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.removed)
            .filter(|m| {
                let age = now.saturating_sub(m.state_change_ms);
                match m.status {
                    MemberStatus::Left => age > tombstone,
                    _ => age > reconnect,
                }
            })
            .map(|m| m.name.clone())
            .collect();
        for name in gone {
            if let Some(m) = self.members.remove(&name) {
                actions.push(Action::MemberReaped(m));
            }
        }
        let timeout = self.cfg.recent_intent_timeout_ms;
        self.recent_intents
            .retain(|_, i| now.saturating_sub(i.at_ms) <= timeout);
    }
}

/// Where to answer: the message's Source address when given, else the packet's source.
fn reply_addr(from: &Addr, source_addr: &[u8], source_port: u16) -> Addr {
    if !source_addr.is_empty() && source_port != 0 {
        Addr {
            ip: source_addr.to_vec(),
            port: source_port,
        }
    } else {
        from.clone()
    }
}
