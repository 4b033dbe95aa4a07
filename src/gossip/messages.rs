//! memberlist message bodies (WIRE.md §3): `[type][msgpack body]`, map keys in Go's (bytewise sorted) order.

use super::msgpack::{
    field_bool, field_bytes, field_str, field_uint, read, read_exact, ReadError, Value, Writer,
};

/// memberlist message type bytes.
pub mod kind {
    /// ping.
    pub const PING: u8 = 0;
    /// indirect ping request.
    pub const INDIRECT_PING: u8 = 1;
    /// ack response.
    pub const ACK: u8 = 2;
    /// suspect.
    pub const SUSPECT: u8 = 3;
    /// alive.
    pub const ALIVE: u8 = 4;
    /// dead (or left, when From == Node).
    pub const DEAD: u8 = 5;
    /// push/pull (TCP only).
    pub const PUSH_PULL: u8 = 6;
    /// compound.
    pub const COMPOUND: u8 = 7;
    /// user (serf) message.
    pub const USER: u8 = 8;
    /// compressed.
    pub const COMPRESS: u8 = 9;
    /// encrypted stream header.
    pub const ENCRYPT: u8 = 10;
    /// nack response.
    pub const NACK: u8 = 11;
    /// CRC header.
    pub const HAS_CRC: u8 = 12;
    /// error (streams only).
    pub const ERR: u8 = 13;
    /// label header (memberlist >= 0.3 only; never sent).
    pub const HAS_LABEL: u8 = 244;
}

/// Largest node name accepted, in bytes.
pub const NAME_BYTES_MAX: usize = 512;
/// Largest node metadata, in bytes (`MetaMaxSize`).
pub const META_BYTES_MAX: usize = 512;

/// `ping` (type 0).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ping {
    /// Probe sequence number.
    pub seq_no: u32,
    /// Intended target's name ("" accepted by anyone).
    pub node: String,
    /// IP to answer to (empty: the packet's source).
    pub source_addr: Vec<u8>,
    /// Port to answer to (0: the packet's source).
    pub source_port: u16,
    /// Sender's name.
    pub source_node: String,
}

/// `indirectPing` (type 1).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IndirectPing {
    /// The requester's sequence number.
    pub seq_no: u32,
    /// Target IP.
    pub target: Vec<u8>,
    /// Target port.
    pub port: u16,
    /// Target name.
    pub node: String,
    /// Whether the requester wants a nack.
    pub nack: bool,
    /// IP to answer to.
    pub source_addr: Vec<u8>,
    /// Port to answer to.
    pub source_port: u16,
    /// Requester's name.
    pub source_node: String,
}

/// `ack` (type 2).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ack {
    /// Echoed sequence number.
    pub seq_no: u32,
    /// Delegate payload (serf: network coordinates); empty is sent as nil.
    pub payload: Vec<u8>,
}

/// `suspect` (type 3) and `dead` (type 5) share this shape.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Accusation {
    /// Incarnation accused.
    pub incarnation: u32,
    /// Accused node.
    pub node: String,
    /// Accuser (for dead: == node means a voluntary leave).
    pub from: String,
}

/// `alive` (type 4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Alive {
    /// Incarnation.
    pub incarnation: u32,
    /// Node name.
    pub node: String,
    /// Advertised IP (4 or 16 bytes).
    pub addr: Vec<u8>,
    /// Advertised gossip port.
    pub port: u16,
    /// Delegate metadata (serf tags).
    pub meta: Vec<u8>,
    /// pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: Vec<u8>,
}

/// One node in a push/pull.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PushNodeState {
    /// Node name.
    pub name: String,
    /// IP.
    pub addr: Vec<u8>,
    /// Port.
    pub port: u16,
    /// Metadata.
    pub meta: Vec<u8>,
    /// Incarnation.
    pub incarnation: u32,
    /// 0 alive, 1 suspect, 2 dead, 3 left.
    pub state: u8,
    /// Versions, six bytes.
    pub vsn: Vec<u8>,
}

/// A decoded UDP-level memberlist message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// ping.
    Ping(Ping),
    /// indirect ping.
    IndirectPing(IndirectPing),
    /// ack.
    Ack(Ack),
    /// nack with its sequence number.
    Nack(u32),
    /// suspect.
    Suspect(Accusation),
    /// alive.
    Alive(Alive),
    /// dead.
    Dead(Accusation),
    /// user (serf) payload, without the 0x08 byte.
    User(Vec<u8>),
}

fn u16_field(v: &Value, key: &str) -> Result<u16, ReadError> {
    Ok(field_uint(v, key, u16::MAX as u64)? as u16)
}

fn u32_field(v: &Value, key: &str) -> Result<u32, ReadError> {
    Ok(field_uint(v, key, u32::MAX as u64)? as u32)
}

fn name_field(v: &Value, key: &str) -> Result<String, ReadError> {
    let s = field_str(v, key)?;
    if s.len() > NAME_BYTES_MAX {
        return Err(ReadError::Malformed(format!(
            "{key} longer than {NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(s)
}

fn expect_map(v: &Value) -> Result<(), ReadError> {
    match v {
        Value::Map(_) => Ok(()),
        other => Err(ReadError::Malformed(format!(
            "expected a map body, got {other:?}"
        ))),
    }
}

impl Message {
    /// The message as `[type][body]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Message::Ping(p) => {
                w.buf.push(kind::PING);
                let n = 2
                    + usize::from(!p.source_addr.is_empty())
                    + usize::from(!p.source_node.is_empty())
                    + usize::from(p.source_port != 0);
                w.map(n).str("Node").str(&p.node);
                w.str("SeqNo").uint(p.seq_no as u64);
                if !p.source_addr.is_empty() {
                    w.str("SourceAddr").raw(&p.source_addr);
                }
                if !p.source_node.is_empty() {
                    w.str("SourceNode").str(&p.source_node);
                }
                if p.source_port != 0 {
                    w.str("SourcePort").uint(p.source_port as u64);
                }
            }
            Message::IndirectPing(p) => {
                w.buf.push(kind::INDIRECT_PING);
                let n = 5
                    + usize::from(!p.source_addr.is_empty())
                    + usize::from(!p.source_node.is_empty())
                    + usize::from(p.source_port != 0);
                w.map(n).str("Nack").bool(p.nack);
                w.str("Node").str(&p.node);
                w.str("Port").uint(p.port as u64);
                w.str("SeqNo").uint(p.seq_no as u64);
                if !p.source_addr.is_empty() {
                    w.str("SourceAddr").raw(&p.source_addr);
                }
                if !p.source_node.is_empty() {
                    w.str("SourceNode").str(&p.source_node);
                }
                if p.source_port != 0 {
                    w.str("SourcePort").uint(p.source_port as u64);
                }
                w.str("Target").raw_or_nil(&p.target);
            }
            Message::Ack(a) => {
                w.buf.push(kind::ACK);
                w.map(2).str("Payload").raw_or_nil(&a.payload);
                w.str("SeqNo").uint(a.seq_no as u64);
            }
            Message::Nack(seq) => {
                w.buf.push(kind::NACK);
                w.map(1).str("SeqNo").uint(*seq as u64);
            }
            Message::Suspect(s) | Message::Dead(s) => {
                w.buf.push(if matches!(self, Message::Suspect(_)) {
                    kind::SUSPECT
                } else {
                    kind::DEAD
                });
                w.map(3).str("From").str(&s.from);
                w.str("Incarnation").uint(s.incarnation as u64);
                w.str("Node").str(&s.node);
            }
            Message::Alive(a) => {
                w.buf.push(kind::ALIVE);
                w.map(6).str("Addr").raw_or_nil(&a.addr);
                w.str("Incarnation").uint(a.incarnation as u64);
                w.str("Meta").raw_or_nil(&a.meta);
                w.str("Node").str(&a.node);
                w.str("Port").uint(a.port as u64);
                w.str("Vsn").raw_or_nil(&a.vsn);
            }
            Message::User(payload) => {
                w.buf.push(kind::USER);
                w.buf.extend_from_slice(payload);
            }
        }
        w.buf
    }

    /// Decodes one `[type][body]` message (not a compound, compressed or CRC layer: see `packet`).
    pub fn decode(bytes: &[u8]) -> Result<Message, ReadError> {
        let Some((&t, body)) = bytes.split_first() else {
            return Err(ReadError::Malformed("empty message".into()));
        };
        if t == kind::USER {
            return Ok(Message::User(body.to_vec()));
        }
        let v = read_exact(body)?;
        expect_map(&v)?;
        Ok(match t {
            kind::PING => Message::Ping(Ping {
                seq_no: u32_field(&v, "SeqNo")?,
                node: name_field(&v, "Node")?,
                source_addr: field_bytes(&v, "SourceAddr")?,
                source_port: u16_field(&v, "SourcePort")?,
                source_node: name_field(&v, "SourceNode")?,
            }),
            kind::INDIRECT_PING => Message::IndirectPing(IndirectPing {
                seq_no: u32_field(&v, "SeqNo")?,
                target: field_bytes(&v, "Target")?,
                port: u16_field(&v, "Port")?,
                node: name_field(&v, "Node")?,
                nack: field_bool(&v, "Nack")?,
                source_addr: field_bytes(&v, "SourceAddr")?,
                source_port: u16_field(&v, "SourcePort")?,
                source_node: name_field(&v, "SourceNode")?,
            }),
            kind::ACK => Message::Ack(Ack {
                seq_no: u32_field(&v, "SeqNo")?,
                payload: field_bytes(&v, "Payload")?,
            }),
            kind::NACK => Message::Nack(u32_field(&v, "SeqNo")?),
            kind::SUSPECT | kind::DEAD => {
                let a = Accusation {
                    incarnation: u32_field(&v, "Incarnation")?,
                    node: name_field(&v, "Node")?,
                    from: name_field(&v, "From")?,
                };
                if t == kind::SUSPECT {
                    Message::Suspect(a)
                } else {
                    Message::Dead(a)
                }
            }
            kind::ALIVE => Message::Alive(decode_alive(&v)?),
            other => {
                return Err(ReadError::Malformed(format!(
                    "message type {other} is not handled over UDP"
                )))
            }
        })
    }
}

fn decode_alive(v: &Value) -> Result<Alive, ReadError> {
    let meta = field_bytes(v, "Meta")?;
    if meta.len() > META_BYTES_MAX {
        return Err(ReadError::Malformed(format!(
            "Meta above {META_BYTES_MAX} bytes"
        )));
    }
    Ok(Alive {
        incarnation: u32_field(v, "Incarnation")?,
        node: name_field(v, "Node")?,
        addr: field_bytes(v, "Addr")?,
        port: u16_field(v, "Port")?,
        meta,
        vsn: field_bytes(v, "Vsn")?,
    })
}

/// The push/pull header `{Join, Nodes, UserStateLen}`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PushPullHeader {
    /// Node states that follow.
    pub nodes: u32,
    /// Raw user-state bytes after the node states.
    pub user_state_len: u32,
    /// Whether this is a join.
    pub join: bool,
}

/// A whole push/pull message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PushPull {
    /// Whether this is a join.
    pub join: bool,
    /// Every node the sender knows, itself included.
    pub nodes: Vec<PushNodeState>,
    /// serf's push/pull state (`[0x02][msgpack]`), possibly empty.
    pub user_state: Vec<u8>,
}

impl PushPull {
    /// `[0x06][header][node states][user state]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(vec![kind::PUSH_PULL]);
        w.map(3).str("Join").bool(self.join);
        w.str("Nodes").uint(self.nodes.len() as u64);
        w.str("UserStateLen").uint(self.user_state.len() as u64);
        for n in &self.nodes {
            w.map(7).str("Addr").raw_or_nil(&n.addr);
            w.str("Incarnation").uint(n.incarnation as u64);
            w.str("Meta").raw_or_nil(&n.meta);
            w.str("Name").str(&n.name);
            w.str("Port").uint(n.port as u64);
            w.str("State").uint(n.state as u64);
            w.str("Vsn").raw_or_nil(&n.vsn);
        }
        w.buf.extend_from_slice(&self.user_state);
        w.buf
    }

    /// Decodes the body after the 0x06 byte; returns the message and the bytes used. `nodes_max` bounds the list.
    pub fn decode_body(body: &[u8], nodes_max: usize) -> Result<(PushPull, usize), ReadError> {
        let (h, mut used) = read(body)?;
        expect_map(&h)?;
        let header = PushPullHeader {
            nodes: u32_field(&h, "Nodes")?,
            user_state_len: u32_field(&h, "UserStateLen")?,
            join: field_bool(&h, "Join")?,
        };
        if header.nodes as usize > nodes_max {
            return Err(ReadError::Malformed(format!(
                "push/pull lists {} nodes, more than the {nodes_max} allowed",
                header.nodes
            )));
        }
        let mut nodes = Vec::with_capacity((header.nodes as usize).min(1024));
        for _ in 0..header.nodes {
            let (v, n) = read(&body[used..])?;
            used += n;
            expect_map(&v)?;
            let meta = field_bytes(&v, "Meta")?;
            if meta.len() > META_BYTES_MAX {
                return Err(ReadError::Malformed("node Meta above 512 bytes".into()));
            }
            nodes.push(PushNodeState {
                name: name_field(&v, "Name")?,
                addr: field_bytes(&v, "Addr")?,
                port: u16_field(&v, "Port")?,
                meta,
                incarnation: u32_field(&v, "Incarnation")?,
                state: field_uint(&v, "State", 255)? as u8,
                vsn: field_bytes(&v, "Vsn")?,
            });
        }
        let len = header.user_state_len as usize;
        if body.len() - used < len {
            return Err(ReadError::Incomplete);
        }
        let user_state = body[used..used + len].to_vec();
        used += len;
        Ok((
            PushPull {
                join: header.join,
                nodes,
                user_state,
            },
            used,
        ))
    }
}

/// `err` (type 13) body.
pub fn encode_err(error: &str) -> Vec<u8> {
    let mut w = Writer::new(vec![kind::ERR]);
    w.map(1).str("Error").str(error);
    w.buf
}

/// `compress` (type 9) wrapping of an LZW buffer.
pub fn encode_compress(lzw: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(vec![kind::COMPRESS]);
    w.map(2).str("Algo").uint(0);
    w.str("Buf").raw(lzw);
    w.buf
}
