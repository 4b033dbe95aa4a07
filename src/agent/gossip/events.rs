//! Consul user events (`/v1/event/fire`, `/v1/event/list`): a Serf user event named `consul:event:<name>` whose
//! payload is the event's msgpack encoding, and the buffer of the last [`EVENTS_KEPT`] events an agent
//! received, as Consul keeps them.
//!
//! Serf events from other software (a plain `serf event deploy`) are kept too, under their own name with the
//! raw payload, so a Serf pool's events are visible through the HTTP API.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The Serf name prefix of Consul's user events.
pub const EVENT_PREFIX: &str = "consul:event:";
/// Events kept by an agent (Consul's userEventBuffer).
pub const EVENTS_KEPT: usize = 256;

/// One user event, as `/v1/event/*` shows it and as it travels in the Serf payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent {
    /// A UUID given when fired.
    #[serde(rename = "ID")]
    pub id: String,
    /// The event name.
    pub name: String,
    /// The payload (`null` when empty).
    #[serde(with = "payload_bytes")]
    pub payload: Option<Vec<u8>>,
    /// A regular expression on node names (empty: every node).
    pub node_filter: String,
    /// A regular expression on service names.
    pub service_filter: String,
    /// A regular expression on the service's tags (with a service filter).
    pub tag_filter: String,
    /// The event format version (1).
    pub version: u32,
    /// The Serf event clock when received (0 when fired).
    #[serde(rename = "LTime")]
    pub ltime: u64,
}

impl UserEvent {
    /// The Serf event name and payload that carry this event.
    pub fn to_serf(&self) -> (String, Vec<u8>) {
        let mut wire = self.clone();
        wire.ltime = 0;
        let payload = rmp_serde::to_vec_named(&wire).unwrap_or_default();
        (format!("{EVENT_PREFIX}{}", self.name), payload)
    }

    /// The event a Serf user event carries: a Consul event decoded, any other kept as it came.
    pub fn from_serf(ltime: u64, name: &str, payload: &[u8]) -> UserEvent {
        if let Some(short) = name.strip_prefix(EVENT_PREFIX) {
            if let Ok(mut event) = rmp_serde::from_slice::<UserEvent>(payload) {
                event.ltime = ltime;
                if event.name.is_empty() {
                    event.name = short.to_string();
                }
                return event;
            }
        }
        UserEvent {
            id: id_from(ltime, name, payload),
            name: name.to_string(),
            payload: (!payload.is_empty()).then(|| payload.to_vec()),
            version: 1,
            ltime,
            ..UserEvent::default()
        }
    }

    /// Whether this agent (node `node`, with local services `(name, tags)`) should keep the event.
    pub fn matches(&self, node: &str, services: &[(String, Vec<String>)]) -> bool {
        if !filter_matches(&self.node_filter, node) {
            return false;
        }
        if self.service_filter.is_empty() {
            return true;
        }
        services.iter().any(|(name, tags)| {
            filter_matches(&self.service_filter, name)
                && (self.tag_filter.is_empty()
                    || tags.iter().any(|t| filter_matches(&self.tag_filter, t)))
        })
    }

    /// The event's index for blocking `/v1/event/list`: its UUID's two halves XORed (as Consul does).
    pub fn index(&self) -> u64 {
        let hex: String = self.id.chars().filter(char::is_ascii_hexdigit).collect();
        if hex.len() != 32 {
            return 0;
        }
        let high = u64::from_str_radix(&hex[..16], 16).unwrap_or(0);
        let low = u64::from_str_radix(&hex[16..], 16).unwrap_or(0);
        high ^ low
    }
}

/// A deterministic UUID-shaped id for a foreign Serf event (FNV-1a of its clock, name and payload).
fn id_from(ltime: u64, name: &str, payload: &[u8]) -> String {
    let mut text = format!("{ltime}/{name}/");
    text.push_str(&String::from_utf8_lossy(payload));
    let a = crate::agent::server::fnv1a64(&text);
    let b = crate::agent::server::fnv1a64(&format!("{text}#"));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An empty filter matches everything; a bad expression matches nothing.
fn filter_matches(filter: &str, text: &str) -> bool {
    filter.is_empty() || regex::Regex::new(filter).is_ok_and(|re| re.is_match(text))
}

/// The validation Consul applies when an event is fired: filters must compile, a tag filter needs a service
/// filter. `Err` carries Consul's message.
pub fn validate(event: &UserEvent) -> Result<(), String> {
    if event.name.is_empty() {
        return Err("User event missing name".into());
    }
    if !event.tag_filter.is_empty() && event.service_filter.is_empty() {
        return Err("cannot provide tag filter without service filter".into());
    }
    for filter in [&event.node_filter, &event.service_filter, &event.tag_filter] {
        if let Err(e) = regex::Regex::new(filter) {
            return Err(format!("Invalid filter {filter:?}: {e}"));
        }
    }
    Ok(())
}

/// The last events received, oldest first, with a counter bumped by every new one.
#[derive(Debug, Default)]
pub struct EventBuffer {
    events: VecDeque<UserEvent>,
    received: u64,
}

impl EventBuffer {
    /// Keeps `event`, dropping the oldest past [`EVENTS_KEPT`].
    pub fn push(&mut self, event: UserEvent) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(event);
        self.received += 1;
    }

    /// The events named `name` (all with `None`), oldest first.
    pub fn list(&self, name: Option<&str>) -> Vec<UserEvent> {
        self.events
            .iter()
            .filter(|e| name.is_none_or(|n| e.name == n))
            .cloned()
            .collect()
    }

    /// How many events were ever kept (changes when a new one arrives).
    pub fn received(&self) -> u64 {
        self.received
    }
}

mod payload_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(bytes) if s.is_human_readable() => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Some(bytes) => s.serialize_bytes(bytes),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(serde_bytes_like::Bytes),
            Text(String),
        }
        let raw: Option<Raw> = Option::deserialize(d)?;
        Ok(match raw {
            None => None,
            Some(Raw::Bytes(b)) => Some(b.0),
            Some(Raw::Text(t)) => base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .ok(),
        })
    }

    mod serde_bytes_like {
        /// Bytes from a msgpack bin (or an array of numbers).
        pub struct Bytes(pub Vec<u8>);

        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                        Ok(Bytes(v))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> UserEvent {
        UserEvent {
            id: "b54fe110-7af5-cafc-d1fb-afc8ba432b1c".into(),
            name: name.into(),
            payload: Some(b"hi".to_vec()),
            version: 1,
            ..UserEvent::default()
        }
    }

    #[test]
    fn consul_events_round_trip_through_serf_and_foreign_events_are_kept_raw() {
        let e = event("deploy");
        let (name, payload) = e.to_serf();
        assert_eq!(name, "consul:event:deploy");
        let back = UserEvent::from_serf(7, &name, &payload);
        assert_eq!(back.ltime, 7);
        assert_eq!(back.payload.as_deref(), Some(&b"hi"[..]));
        assert_eq!(back.id, e.id);
        let raw = UserEvent::from_serf(3, "serf-deploy", b"x");
        assert_eq!(raw.name, "serf-deploy");
        assert_eq!(raw.payload.as_deref(), Some(&b"x"[..]));
        assert_eq!(raw.id.len(), 36);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["Payload"], "aGk=");
        assert_eq!(json["ID"], e.id);
        assert_eq!(json["LTime"], 0);
    }

    #[test]
    fn filters_validation_index_and_the_buffer_bound() {
        let mut e = event("x");
        e.node_filter = "^web".into();
        assert!(e.matches("web-1", &[]));
        assert!(!e.matches("db-1", &[]));
        e.node_filter.clear();
        e.service_filter = "api".into();
        e.tag_filter = "v2".into();
        let services = vec![("api".to_string(), vec!["v1".to_string()])];
        assert!(!e.matches("n", &services));
        let services = vec![("api".to_string(), vec!["v2".to_string()])];
        assert!(e.matches("n", &services));
        e.service_filter.clear();
        assert!(validate(&e).unwrap_err().contains("tag filter"));
        e.tag_filter = "(".into();
        e.service_filter = "a".into();
        assert!(validate(&e).is_err());
        assert_eq!(event("y").index(), 0xb54fe1107af5cafc ^ 0xd1fbafc8ba432b1c);
        let mut buffer = EventBuffer::default();
        for i in 0..(EVENTS_KEPT + 10) {
            buffer.push(event(&format!("e{}", i % 2)));
        }
        assert_eq!(buffer.list(None).len(), EVENTS_KEPT);
        assert_eq!(buffer.list(Some("e1")).len(), EVENTS_KEPT / 2);
        assert_eq!(buffer.received(), (EVENTS_KEPT + 10) as u64);
    }
}
