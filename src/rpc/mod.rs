//! The server RPC wire format: what one frame of the server transport (`cairn_io::net`) carries between
//! servers, and between a client helper and a server. PURE: bytes in, values out; no IO.
//!
//! Every payload is a [`Header`] (version, kind, datacenter, sender, request id) followed by a body chosen by
//! the kind: every Raft [`Message`], a [`SnapshotChunk`], a forwarded client write ([`ApplyRequest`]) with its
//! replies ([`Body::Applied`], [`ErrorReply`]), a read ([`ReadRequest`], [`Body::ReadResult`]) and a status
//! query ([`Body::Status`], [`StatusReply`]). The byte layout is in `src/rpc/WIRE.md`.
//!
//! Integers are little-endian and fixed width; every variable-length field is length-prefixed and bounded
//! (the `*_MAX` constants); a frame must be consumed exactly. [`decode`] never panics: bad bytes are a
//! [`DecodeError`] naming the field and the byte offset.

use crate::raft::codec::{encode_configuration, encode_payload};
use crate::raft::{Configuration, ConflictHint, Entry, Index, Message, ServerId, Term};
use std::fmt;

mod decode;
#[cfg(test)]
mod tests;

pub use decode::decode;

/// The wire version this code speaks; a frame with another version is refused.
pub const WIRE_VERSION: u8 = 1;
/// Bytes a datacenter name may take.
pub const DATACENTER_BYTES_MAX: usize = 128;
/// Entries one append message may carry.
pub const APPEND_ENTRIES_MAX: usize = 65_536;
/// Bytes one entry's encoded payload may take (the log's frame payload limit).
pub const ENTRY_BYTES_MAX: usize = 64 << 20;
/// Bytes one snapshot chunk may carry.
pub const CHUNK_BYTES_MAX: usize = 1 << 20;
/// Bytes a whole snapshot may take (a chunk's `total_bytes`).
pub const SNAPSHOT_BYTES_MAX: u64 = 16 << 30;
/// Bytes an encoded configuration may take.
pub const CONFIG_BYTES_MAX: usize = 4 << 20;
/// Bytes an ACL token may take.
pub const TOKEN_BYTES_MAX: usize = 512;
/// Bytes a reply address (`IP:PORT`) may take.
pub const ADDRESS_BYTES_MAX: usize = 256;
/// Bytes a client command, a read query, or a result may take.
pub const COMMAND_BYTES_MAX: usize = 32 << 20;
/// Bytes an error message may take.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 4096;

/// Kind numbers (byte 1 of every frame).
pub mod kind {
    /// Raft `VoteRequest`.
    pub const VOTE_REQUEST: u8 = 1;
    /// Raft `VoteResponse`.
    pub const VOTE_RESPONSE: u8 = 2;
    /// Raft `Append`.
    pub const APPEND: u8 = 3;
    /// Raft `AppendResponse`.
    pub const APPEND_RESPONSE: u8 = 4;
    /// Raft `InstallSnapshot`.
    pub const INSTALL_SNAPSHOT: u8 = 5;
    /// Raft `SnapshotResponse`.
    pub const SNAPSHOT_RESPONSE: u8 = 6;
    /// Raft `TimeoutNow`.
    pub const TIMEOUT_NOW: u8 = 7;
    /// A piece of a snapshot's payload.
    pub const SNAPSHOT_CHUNK: u8 = 16;
    /// A client write to apply through Raft.
    pub const APPLY: u8 = 32;
    /// A write was applied.
    pub const APPLIED: u8 = 33;
    /// A request failed.
    pub const ERROR: u8 = 34;
    /// A read of the state machine.
    pub const READ: u8 = 35;
    /// The answer to a read.
    pub const READ_RESULT: u8 = 36;
    /// A status query.
    pub const STATUS: u8 = 37;
    /// The answer to a status query.
    pub const STATUS_REPLY: u8 = 38;
    /// An operator action on the Raft cluster, forwarded to the leader.
    pub const OPERATOR: u8 = 39;
    /// A client agent's call, relayed by a server to one of its shards.
    pub const RELAY: u8 = 40;
    /// The answer to a relayed call.
    pub const RELAY_REPLY: u8 = 41;
}

/// What starts every frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The sender's datacenter (so cross-datacenter forwarding is a routing change later).
    pub datacenter: String,
    /// The sender's server id (a client helper uses any id outside the configuration).
    pub sender: ServerId,
    /// Chosen by the requester, echoed in the reply; 0 for Raft messages and chunks.
    pub request_id: u64,
}

/// A piece of the snapshot the leader sends to a follower that is too far behind. Chunks go in order, one
/// transfer at a time per follower; after the chunk with `done` the leader sends `Message::InstallSnapshot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The leader's term.
    pub leader_term: Term,
    /// The last index the snapshot covers.
    pub index: Index,
    /// The term of that entry.
    pub term: Term,
    /// Where `data` goes in the snapshot payload.
    pub offset_bytes: u64,
    /// The payload's whole length.
    pub total_bytes: u64,
    /// True on the last chunk (`offset_bytes + data.len() == total_bytes`).
    pub done: bool,
    /// The bytes, at most [`CHUNK_BYTES_MAX`].
    pub data: Vec<u8>,
}

/// A client write to apply through Raft (forwarded by a follower, or sent by a client helper).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyRequest {
    /// An ACL token (may be empty; checked once ACLs exist).
    pub token: String,
    /// Where to send the reply (`IP:PORT` of a listener); empty = the sender's address in the configuration.
    pub reply_to: String,
    /// The state-machine command.
    pub command: Vec<u8>,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Served by any server from what it has applied (Consul's `?stale`).
    Stale,
    /// Served by the leader under its lease (Consul's default mode).
    Default,
    /// Served by the leader after a quorum confirms its leadership (Consul's `?consistent`).
    Consistent,
}

/// A read of the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// An ACL token (may be empty).
    pub token: String,
    /// Where to send the reply; empty = the sender's address in the configuration.
    pub reply_to: String,
    /// How fresh the answer must be.
    pub consistency: Consistency,
    /// The state machine's query bytes.
    pub query: Vec<u8>,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// This server is not the leader; retry at the hint (or elsewhere when there is none).
    NotLeader,
    /// Too many requests are waiting; retry later. The request had no effect.
    Overloaded,
    /// The request was refused before it could take effect (bad request, leader transfer).
    Rejected,
    /// Leadership was lost or the entry was overwritten: the write may or may not have taken effect.
    Unknown,
}

/// Who leads, as far as the replying server knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's id.
    pub id: ServerId,
    /// Its server RPC address (empty when unknown).
    pub address: String,
}

/// The failure reply to an [`ApplyRequest`] or a [`ReadRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// What kind of failure.
    pub code: ErrorCode,
    /// The leader, when known.
    pub leader: Option<LeaderHint>,
    /// A message for people.
    pub message: String,
}

/// A server's role, as reported by [`StatusReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireRole {
    /// Following.
    Follower,
    /// Asking for pre-votes.
    PreCandidate,
    /// Campaigning.
    Candidate,
    /// Leading.
    Leader,
}

/// The answer to a status query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReply {
    /// The answering server.
    pub id: ServerId,
    /// Its role.
    pub role: WireRole,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<LeaderHint>,
    /// Its commit index.
    pub commit_index: Index,
    /// The index its state machine has applied.
    pub applied_index: Index,
    /// Its last log index.
    pub last_index: Index,
    /// The index of its latest snapshot.
    pub snapshot_index: Index,
}

/// What a frame carries after its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A Raft message (kinds 1..=7).
    Raft(Message),
    /// A piece of a snapshot.
    SnapshotChunk(SnapshotChunk),
    /// A write to apply.
    Apply(ApplyRequest),
    /// The write was applied at `index`; `result` is what the state machine returned.
    Applied {
        /// Where the command went in the log.
        index: Index,
        /// The state machine's answer.
        result: Vec<u8>,
    },
    /// The request failed.
    Error(ErrorReply),
    /// A read.
    Read(ReadRequest),
    /// The answer to a read, served at `index`.
    ReadResult {
        /// The applied index the read saw.
        index: Index,
        /// The state machine's answer.
        result: Vec<u8>,
    },
    /// A status query; the reply goes to `reply_to` (empty = the sender's configured address).
    Status {
        /// Where to send the reply.
        reply_to: String,
    },
    /// The answer to a status query.
    StatusReply(StatusReply),
    /// An operator action for the leader; answered with [`Body::Applied`] (empty result) or an error.
    Operator(OperatorRequest),
    /// A client agent's call for a server's API front end; answered with [`Body::RelayReply`] or an error.
    Relay(RelayRequest),
    /// The answer to a [`Body::Relay`] call.
    RelayReply {
        /// The front end's answer (its encoding is the agent's, see `crate::agent::relay`).
        result: Vec<u8>,
    },
}

/// A client agent's call relayed to a server's front end (an HTTP request it cannot answer itself, a
/// catalog command of its anti-entropy, or a read of its node's catalog entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayRequest {
    /// The ACL token of the call.
    pub token: String,
    /// Where to send the reply (the client agent's listener).
    pub reply_to: String,
    /// The call (its encoding is the agent's, see `crate::agent::relay`).
    pub call: Vec<u8>,
}

/// An operator action on the Raft cluster (`/v1/operator/raft/*`), forwarded by a follower to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRequest {
    /// The ACL token of the HTTP request.
    pub token: String,
    /// Where to send the reply.
    pub reply_to: String,
    /// What to do.
    pub action: OperatorAction,
}

/// What an [`OperatorRequest`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorAction {
    /// Hand leadership to this server, or to the most up-to-date voter.
    TransferLeader(Option<ServerId>),
    /// Remove this server from the configuration.
    RemovePeer(ServerId),
    /// The leader's autopilot state (answered with Applied whose result is the encoded state).
    AutopilotState,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Who sent it and why.
    pub header: Header,
    /// What it carries.
    pub body: Body,
}

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the frame where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad rpc frame at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// Why a frame could not be encoded (a field over its limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode rpc frame: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

impl Body {
    /// The kind byte of this body.
    pub fn kind(&self) -> u8 {
        match self {
            Body::Raft(msg) => match msg {
                Message::VoteRequest { .. } => kind::VOTE_REQUEST,
                Message::VoteResponse { .. } => kind::VOTE_RESPONSE,
                Message::Append { .. } => kind::APPEND,
                Message::AppendResponse { .. } => kind::APPEND_RESPONSE,
                Message::InstallSnapshot { .. } => kind::INSTALL_SNAPSHOT,
                Message::SnapshotResponse { .. } => kind::SNAPSHOT_RESPONSE,
                Message::TimeoutNow { .. } => kind::TIMEOUT_NOW,
            },
            Body::SnapshotChunk(_) => kind::SNAPSHOT_CHUNK,
            Body::Apply(_) => kind::APPLY,
            Body::Applied { .. } => kind::APPLIED,
            Body::Error(_) => kind::ERROR,
            Body::Read(_) => kind::READ,
            Body::ReadResult { .. } => kind::READ_RESULT,
            Body::Status { .. } => kind::STATUS,
            Body::StatusReply(_) => kind::STATUS_REPLY,
            Body::Operator(_) => kind::OPERATOR,
            Body::Relay(_) => kind::RELAY,
            Body::RelayReply { .. } => kind::RELAY_REPLY,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn flag(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    /// `u32 len | bytes`, checking the limit.
    fn bytes(&mut self, field: &str, bytes: &[u8], max: usize) -> Result<(), EncodeError> {
        if bytes.len() > max {
            return Err(EncodeError(format!(
                "{field} of {} bytes is over the limit of {max}",
                bytes.len()
            )));
        }
        self.u32(bytes.len() as u32);
        self.out.extend_from_slice(bytes);
        Ok(())
    }
    fn option_leader(&mut self, leader: &Option<LeaderHint>) -> Result<(), EncodeError> {
        match leader {
            None => self.u8(0),
            Some(hint) => {
                self.u8(1);
                self.u64(hint.id.0);
                self.bytes("leader address", hint.address.as_bytes(), ADDRESS_BYTES_MAX)?;
            }
        }
        Ok(())
    }
}

/// Encodes `frame` into a new buffer (the payload of one transport frame).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_into(frame, &mut out)?;
    Ok(out)
}

/// Encodes `frame`, appending to `out` (left as it was on error).
pub fn encode_into(frame: &Frame, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let mut w = Writer {
        out: std::mem::take(out),
    };
    let result = encode_parts(frame, &mut w);
    *out = w.out;
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_parts(frame: &Frame, w: &mut Writer) -> Result<(), EncodeError> {
    let dc = frame.header.datacenter.as_bytes();
    if dc.len() > DATACENTER_BYTES_MAX {
        return Err(EncodeError(format!(
            "datacenter name of {} bytes is over the limit of {DATACENTER_BYTES_MAX}",
            dc.len()
        )));
    }
    w.u8(WIRE_VERSION);
    w.u8(frame.body.kind());
    w.u16(dc.len() as u16);
    w.out.extend_from_slice(dc);
    w.u64(frame.header.sender.0);
    w.u64(frame.header.request_id);
    match &frame.body {
        Body::Raft(msg) => encode_message(msg, w)?,
        Body::SnapshotChunk(c) => {
            w.u64(c.leader_term);
            w.u64(c.index);
            w.u64(c.term);
            w.u64(c.offset_bytes);
            w.u64(c.total_bytes);
            w.flag(c.done);
            w.bytes("snapshot chunk", &c.data, CHUNK_BYTES_MAX)?;
        }
        Body::Apply(a) => {
            w.bytes("token", a.token.as_bytes(), TOKEN_BYTES_MAX)?;
            w.bytes("reply address", a.reply_to.as_bytes(), ADDRESS_BYTES_MAX)?;
            w.bytes("command", &a.command, COMMAND_BYTES_MAX)?;
        }
        Body::Applied { index, result } => {
            w.u64(*index);
            w.bytes("result", result, COMMAND_BYTES_MAX)?;
        }
        Body::Error(e) => {
            w.u8(match e.code {
                ErrorCode::NotLeader => 1,
                ErrorCode::Overloaded => 2,
                ErrorCode::Rejected => 3,
                ErrorCode::Unknown => 4,
            });
            w.option_leader(&e.leader)?;
            w.bytes(
                "error message",
                e.message.as_bytes(),
                ERROR_MESSAGE_BYTES_MAX,
            )?;
        }
        Body::Read(r) => {
            w.bytes("token", r.token.as_bytes(), TOKEN_BYTES_MAX)?;
            w.bytes("reply address", r.reply_to.as_bytes(), ADDRESS_BYTES_MAX)?;
            w.u8(match r.consistency {
                Consistency::Stale => 0,
                Consistency::Default => 1,
                Consistency::Consistent => 2,
            });
            w.bytes("query", &r.query, COMMAND_BYTES_MAX)?;
        }
        Body::ReadResult { index, result } => {
            w.u64(*index);
            w.bytes("result", result, COMMAND_BYTES_MAX)?;
        }
        Body::Status { reply_to } => {
            w.bytes("reply address", reply_to.as_bytes(), ADDRESS_BYTES_MAX)?;
        }
        Body::Operator(o) => {
            w.bytes("token", o.token.as_bytes(), TOKEN_BYTES_MAX)?;
            w.bytes("reply address", o.reply_to.as_bytes(), ADDRESS_BYTES_MAX)?;
            let (action, target) = match o.action {
                OperatorAction::TransferLeader(target) => (1, target),
                OperatorAction::RemovePeer(id) => (2, Some(id)),
                OperatorAction::AutopilotState => (3, None),
            };
            w.u8(action);
            w.u8(u8::from(target.is_some()));
            w.u64(target.map_or(0, |id| id.0));
        }
        Body::Relay(r) => {
            w.bytes("token", r.token.as_bytes(), TOKEN_BYTES_MAX)?;
            w.bytes("reply address", r.reply_to.as_bytes(), ADDRESS_BYTES_MAX)?;
            w.bytes("call", &r.call, COMMAND_BYTES_MAX)?;
        }
        Body::RelayReply { result } => {
            w.bytes("result", result, COMMAND_BYTES_MAX)?;
        }
        Body::StatusReply(s) => {
            w.u64(s.id.0);
            w.u8(match s.role {
                WireRole::Follower => 0,
                WireRole::PreCandidate => 1,
                WireRole::Candidate => 2,
                WireRole::Leader => 3,
            });
            w.u64(s.term);
            w.option_leader(&s.leader)?;
            w.u64(s.commit_index);
            w.u64(s.applied_index);
            w.u64(s.last_index);
            w.u64(s.snapshot_index);
        }
    }
    Ok(())
}

fn encode_message(msg: &Message, w: &mut Writer) -> Result<(), EncodeError> {
    match msg {
        Message::VoteRequest {
            term,
            last_index,
            last_term,
            pre_vote,
            transfer,
        } => {
            w.u64(*term);
            w.u64(*last_index);
            w.u64(*last_term);
            w.flag(*pre_vote);
            w.flag(*transfer);
        }
        Message::VoteResponse {
            term,
            granted,
            pre_vote,
        } => {
            w.u64(*term);
            w.flag(*granted);
            w.flag(*pre_vote);
        }
        Message::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            w.u64(*term);
            w.u64(*prev_index);
            w.u64(*prev_term);
            w.u64(*commit);
            w.u64(*round);
            if entries.len() > APPEND_ENTRIES_MAX {
                return Err(EncodeError(format!(
                    "append of {} entries is over the limit of {APPEND_ENTRIES_MAX}",
                    entries.len()
                )));
            }
            w.u32(entries.len() as u32);
            let mut payload = Vec::new();
            for e in entries {
                w.u64(e.index);
                w.u64(e.term);
                payload.clear();
                encode_payload(&e.payload, &mut payload);
                w.bytes("entry payload", &payload, ENTRY_BYTES_MAX)?;
            }
        }
        Message::AppendResponse {
            term,
            success,
            match_index,
            conflict,
            round,
        } => {
            w.u64(*term);
            w.flag(*success);
            w.u64(*match_index);
            match conflict {
                None => w.u8(0),
                Some(hint) => {
                    w.u8(1);
                    w.u64(hint.index);
                    w.u64(hint.term);
                }
            }
            w.u64(*round);
        }
        Message::InstallSnapshot {
            term,
            index,
            last_term,
            configuration,
        } => {
            w.u64(*term);
            w.u64(*index);
            w.u64(*last_term);
            let mut config = Vec::new();
            encode_configuration(configuration, &mut config);
            w.bytes("configuration", &config, CONFIG_BYTES_MAX)?;
        }
        Message::SnapshotResponse {
            term,
            index,
            success,
        } => {
            w.u64(*term);
            w.u64(*index);
            w.flag(*success);
        }
        Message::TimeoutNow { term } => w.u64(*term),
    }
    Ok(())
}
