//! Serf messages carried in memberlist user messages (WIRE.md §6): `[serf type][msgpack body]`, and tags in node
//! Meta (`0xFF` + msgpack map of str to str).

use super::msgpack::{
    field_bool, field_bytes, field_str, field_uint, read_exact, ReadError, Value, Writer,
};
use std::collections::BTreeMap;

/// Serf message type bytes.
pub mod kind {
    /// Leave intent.
    pub const LEAVE: u8 = 0;
    /// Join intent.
    pub const JOIN: u8 = 1;
    /// Push/pull user state.
    pub const PUSH_PULL: u8 = 2;
    /// User event.
    pub const USER_EVENT: u8 = 3;
    /// Query.
    pub const QUERY: u8 = 4;
    /// Query response (and ack).
    pub const QUERY_RESPONSE: u8 = 5;
    /// Relay wrapper.
    pub const RELAY: u8 = 9;
}

/// Slots in the user-event ring (`EventBuffer`).
pub const EVENT_BUFFER_SLOTS: u64 = 512;
/// Slots in the query ring (`QueryBuffer`).
pub const QUERY_BUFFER_SLOTS: u64 = 512;
/// Entries accepted in a push/pull's status map, left list or event list.
pub const PUSH_PULL_ENTRIES_MAX: usize = 65_536;

/// A user event's name and payload.
#[derive(Clone, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct EventBody {
    /// Event name.
    pub name: String,
    /// Event payload.
    pub payload: Vec<u8>,
}

/// The events seen at one Lamport time.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EventsAt {
    /// The event clock value.
    pub ltime: u64,
    /// Events seen at it.
    pub events: Vec<EventBody>,
}

/// Serf's push/pull user state (type 2).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SerfPushPull {
    /// Member clock.
    pub ltime: u64,
    /// Every member's status time, self included.
    pub status_ltimes: BTreeMap<String, u64>,
    /// Members that left.
    pub left_members: Vec<String>,
    /// Event clock.
    pub event_ltime: u64,
    /// Recent events (non-empty ring slots).
    pub events: Vec<EventsAt>,
    /// Query clock.
    pub query_ltime: u64,
}

/// A serf query (type 4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Query {
    /// Query clock value.
    pub ltime: u64,
    /// Query id.
    pub id: u32,
    /// Originator IP.
    pub addr: Vec<u8>,
    /// Originator port.
    pub port: u16,
    /// Originator name.
    pub source_node: String,
    /// Raw filters (`[type][msgpack]` each).
    pub filters: Vec<Vec<u8>>,
    /// Bit 0: ack wanted; bit 1: do not re-broadcast.
    pub flags: u32,
    /// How many relays to use for answers.
    pub relay_factor: u8,
    /// Timeout in nanoseconds.
    pub timeout_ns: i64,
    /// Query name.
    pub name: String,
    /// Query payload.
    pub payload: Vec<u8>,
}

/// A serf query response or ack (type 5).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct QueryResponse {
    /// The query's clock value.
    pub ltime: u64,
    /// The query's id.
    pub id: u32,
    /// The responder.
    pub from: String,
    /// Bit 0: this is an ack.
    pub flags: u32,
    /// The answer.
    pub payload: Vec<u8>,
}

/// A decoded serf message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerfMessage {
    /// Leave intent.
    Leave {
        /// Member clock.
        ltime: u64,
        /// Leaving node.
        node: String,
        /// Erase the member soon after.
        prune: bool,
    },
    /// Join intent.
    Join {
        /// Member clock.
        ltime: u64,
        /// Joining node.
        node: String,
    },
    /// Push/pull state.
    PushPull(SerfPushPull),
    /// User event.
    UserEvent {
        /// Event clock.
        ltime: u64,
        /// Name.
        name: String,
        /// Payload.
        payload: Vec<u8>,
        /// May coalesce.
        cc: bool,
    },
    /// Query.
    Query(Query),
    /// Query response.
    QueryResponse(QueryResponse),
    /// A relay: forward `inner` (`[serf type][body]`) to `dest`.
    Relay {
        /// Destination IP.
        dest_ip: Vec<u8>,
        /// Destination port.
        dest_port: u16,
        /// Destination name.
        dest_name: String,
        /// The wrapped message.
        inner: Vec<u8>,
    },
}

fn u32_field(v: &Value, key: &str) -> Result<u32, ReadError> {
    Ok(field_uint(v, key, u32::MAX as u64)? as u32)
}

fn str_list(v: Option<&Value>) -> Result<Vec<Vec<u8>>, ReadError> {
    match v {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= PUSH_PULL_ENTRIES_MAX => items
            .iter()
            .map(|i| i.as_bytes().map(|b| b.to_vec()))
            .collect(),
        Some(other) => Err(ReadError::Malformed(format!(
            "expected a list, got {other:?}"
        ))),
    }
}

fn utf8(b: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(b).map_err(|_| ReadError::Malformed("string is not UTF-8".into()))
}

impl SerfMessage {
    /// `[serf type][msgpack body]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            SerfMessage::Leave { ltime, node, prune } => {
                w.buf.push(kind::LEAVE);
                w.map(3).str("LTime").uint(*ltime);
                w.str("Node").str(node);
                w.str("Prune").bool(*prune);
            }
            SerfMessage::Join { ltime, node } => {
                w.buf.push(kind::JOIN);
                w.map(2).str("LTime").uint(*ltime);
                w.str("Node").str(node);
            }
            SerfMessage::PushPull(pp) => {
                w.buf.push(kind::PUSH_PULL);
                w.map(6).str("EventLTime").uint(pp.event_ltime);
                w.str("Events").array(pp.events.len());
                for e in &pp.events {
                    w.map(2).str("Events").array(e.events.len());
                    for ev in &e.events {
                        w.map(2).str("Name").str(&ev.name);
                        w.str("Payload").raw_or_nil(&ev.payload);
                    }
                    w.str("LTime").uint(e.ltime);
                }
                w.str("LTime").uint(pp.ltime);
                w.str("LeftMembers").array(pp.left_members.len());
                for m in &pp.left_members {
                    w.str(m);
                }
                w.str("QueryLTime").uint(pp.query_ltime);
                w.str("StatusLTimes").map(pp.status_ltimes.len());
                for (name, t) in &pp.status_ltimes {
                    w.str(name).uint(*t);
                }
            }
            SerfMessage::UserEvent {
                ltime,
                name,
                payload,
                cc,
            } => {
                w.buf.push(kind::USER_EVENT);
                w.map(4).str("CC").bool(*cc);
                w.str("LTime").uint(*ltime);
                w.str("Name").str(name);
                w.str("Payload").raw_or_nil(payload);
            }
            SerfMessage::Query(q) => {
                w.buf.push(kind::QUERY);
                w.map(11).str("Addr").raw_or_nil(&q.addr);
                w.str("Filters");
                if q.filters.is_empty() {
                    w.nil();
                } else {
                    w.array(q.filters.len());
                    for f in &q.filters {
                        w.raw(f);
                    }
                }
                w.str("Flags").uint(q.flags as u64);
                w.str("ID").uint(q.id as u64);
                w.str("LTime").uint(q.ltime);
                w.str("Name").str(&q.name);
                w.str("Payload").raw_or_nil(&q.payload);
                w.str("Port").uint(q.port as u64);
                w.str("RelayFactor").uint(q.relay_factor as u64);
                w.str("SourceNode").str(&q.source_node);
                w.str("Timeout").int(q.timeout_ns);
            }
            SerfMessage::QueryResponse(r) => {
                w.buf.push(kind::QUERY_RESPONSE);
                w.map(5).str("Flags").uint(r.flags as u64);
                w.str("From").str(&r.from);
                w.str("ID").uint(r.id as u64);
                w.str("LTime").uint(r.ltime);
                w.str("Payload").raw_or_nil(&r.payload);
            }
            SerfMessage::Relay {
                dest_ip,
                dest_port,
                dest_name,
                inner,
            } => {
                w.buf.push(kind::RELAY);
                w.map(2)
                    .str("DestAddr")
                    .map(3)
                    .str("IP")
                    .raw_or_nil(dest_ip);
                w.str("Port").uint(*dest_port as u64);
                w.str("Zone").str("");
                w.str("DestName").str(dest_name);
                w.buf.extend_from_slice(inner);
            }
        }
        w.buf
    }

    /// Decodes `[serf type][body]`.
    pub fn decode(bytes: &[u8]) -> Result<SerfMessage, ReadError> {
        let Some((&t, body)) = bytes.split_first() else {
            return Err(ReadError::Malformed("empty serf message".into()));
        };
        if t == kind::RELAY {
            let (h, n) = super::msgpack::read(body)?;
            let dest = h.get("DestAddr").cloned().unwrap_or(Value::Nil);
            return Ok(SerfMessage::Relay {
                dest_ip: field_bytes(&dest, "IP")?,
                dest_port: field_uint(&dest, "Port", u16::MAX as u64)? as u16,
                dest_name: field_str(&h, "DestName")?,
                inner: body[n..].to_vec(),
            });
        }
        let v = read_exact(body)?;
        if !matches!(v, Value::Map(_)) {
            return Err(ReadError::Malformed("serf body is not a map".into()));
        }
        Ok(match t {
            kind::LEAVE => SerfMessage::Leave {
                ltime: field_uint(&v, "LTime", u64::MAX)?,
                node: field_str(&v, "Node")?,
                prune: field_bool(&v, "Prune")?,
            },
            kind::JOIN => SerfMessage::Join {
                ltime: field_uint(&v, "LTime", u64::MAX)?,
                node: field_str(&v, "Node")?,
            },
            kind::USER_EVENT => SerfMessage::UserEvent {
                ltime: field_uint(&v, "LTime", u64::MAX)?,
                name: field_str(&v, "Name")?,
                payload: field_bytes(&v, "Payload")?,
                cc: field_bool(&v, "CC")?,
            },
            kind::PUSH_PULL => SerfMessage::PushPull(decode_push_pull(&v)?),
            kind::QUERY => SerfMessage::Query(Query {
                ltime: field_uint(&v, "LTime", u64::MAX)?,
                id: u32_field(&v, "ID")?,
                addr: field_bytes(&v, "Addr")?,
                port: field_uint(&v, "Port", u16::MAX as u64)? as u16,
                source_node: field_str(&v, "SourceNode")?,
                filters: str_list(v.get("Filters"))?,
                flags: u32_field(&v, "Flags")?,
                relay_factor: field_uint(&v, "RelayFactor", u8::MAX as u64)? as u8,
                timeout_ns: match v.get("Timeout") {
                    Some(Value::Int(n)) => *n,
                    Some(Value::Uint(n)) => (*n).min(i64::MAX as u64) as i64,
                    _ => 0,
                },
                name: field_str(&v, "Name")?,
                payload: field_bytes(&v, "Payload")?,
            }),
            kind::QUERY_RESPONSE => SerfMessage::QueryResponse(QueryResponse {
                ltime: field_uint(&v, "LTime", u64::MAX)?,
                id: u32_field(&v, "ID")?,
                from: field_str(&v, "From")?,
                flags: u32_field(&v, "Flags")?,
                payload: field_bytes(&v, "Payload")?,
            }),
            other => {
                return Err(ReadError::Malformed(format!(
                    "serf message type {other} is not handled"
                )))
            }
        })
    }
}

fn decode_push_pull(v: &Value) -> Result<SerfPushPull, ReadError> {
    let mut status_ltimes = BTreeMap::new();
    match v.get("StatusLTimes") {
        None | Some(Value::Nil) => {}
        Some(Value::Map(entries)) if entries.len() <= PUSH_PULL_ENTRIES_MAX => {
            for (k, t) in entries {
                status_ltimes.insert(utf8(k.as_bytes()?.to_vec())?, t.as_u64()?);
            }
        }
        Some(_) => return Err(ReadError::Malformed("StatusLTimes is not a map".into())),
    }
    let left_members = str_list(v.get("LeftMembers"))?
        .into_iter()
        .map(utf8)
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = Vec::new();
    match v.get("Events") {
        None | Some(Value::Nil) => {}
        Some(Value::Array(slots)) if slots.len() <= PUSH_PULL_ENTRIES_MAX => {
            for slot in slots {
                if matches!(slot, Value::Nil) {
                    continue;
                }
                let mut at = EventsAt {
                    ltime: field_uint(slot, "LTime", u64::MAX)?,
                    events: Vec::new(),
                };
                match slot.get("Events") {
                    None | Some(Value::Nil) => {}
                    Some(Value::Array(list)) => {
                        for e in list {
                            at.events.push(EventBody {
                                name: field_str(e, "Name")?,
                                payload: field_bytes(e, "Payload")?,
                            });
                        }
                    }
                    Some(_) => return Err(ReadError::Malformed("Events is not a list".into())),
                }
                events.push(at);
            }
        }
        Some(_) => return Err(ReadError::Malformed("Events is not a list".into())),
    }
    Ok(SerfPushPull {
        ltime: field_uint(v, "LTime", u64::MAX)?,
        status_ltimes,
        left_members,
        event_ltime: field_uint(v, "EventLTime", u64::MAX)?,
        events,
        query_ltime: field_uint(v, "QueryLTime", u64::MAX)?,
    })
}

/// Tags as node Meta: `0xFF` + msgpack map (keys in sorted order).
pub fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    let mut w = Writer::new(vec![0xff]);
    w.map(tags.len());
    for (k, v) in tags {
        w.str(k).str(v);
    }
    w.buf
}

/// Tags from node Meta. Meta that is empty or lacks the 0xFF marker is serf protocol 2's `{role: <meta>}`.
pub fn decode_tags(meta: &[u8]) -> Result<BTreeMap<String, String>, ReadError> {
    let mut tags = BTreeMap::new();
    if meta.first() != Some(&0xff) {
        tags.insert(
            "role".to_string(),
            String::from_utf8_lossy(meta).into_owned(),
        );
        return Ok(tags);
    }
    match read_exact(&meta[1..])? {
        Value::Map(entries) => {
            for (k, v) in entries {
                tags.insert(
                    String::from_utf8_lossy(k.as_bytes()?).into_owned(),
                    String::from_utf8_lossy(v.as_bytes()?).into_owned(),
                );
            }
            Ok(tags)
        }
        _ => Err(ReadError::Malformed("tags are not a map".into())),
    }
}

/// A Lamport clock (serf lamport.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LamportClock(pub u64);

impl LamportClock {
    /// The current value.
    pub fn time(&self) -> u64 {
        self.0
    }

    /// Advances and returns the new value.
    pub fn increment(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    /// Moves past `t` when `t` is not behind.
    pub fn witness(&mut self, t: u64) {
        if t >= self.0 {
            self.0 = t.saturating_add(1);
        }
    }
}
