//! Session types: what a client asks for ([`SessionSpec`]) and what the state stores ([`Session`]).

use super::Index;
use serde::{Deserialize, Serialize};

/// What happens to the keys a session holds when it is destroyed or invalidated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behavior {
    /// The locks are released; the keys stay (Consul's default).
    #[default]
    Release,
    /// The keys are deleted.
    Delete,
}

impl Behavior {
    /// Consul's name: `"release"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }

    /// The behavior Consul names `s`; `None` for anything else (an empty string is the caller's default).
    pub fn parse(s: &str) -> Option<Behavior> {
        match s {
            "release" => Some(Behavior::Release),
            "delete" => Some(Behavior::Delete),
            _ => None,
        }
    }
}

/// A service check a session is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCheck {
    /// The check ID.
    pub id: String,
    /// The check's namespace (Enterprise; `""` in CE).
    pub namespace: String,
}

/// A session as its creator asked for it, already validated and with its ID chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The session ID (a UUID chosen by the proposer).
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// The node the session belongs to.
    pub node: String,
    /// Node checks the session is bound to (`serfHealth` by default).
    pub node_checks: Vec<String>,
    /// Service checks the session is bound to.
    pub service_checks: Vec<ServiceCheck>,
    /// How long a released lock stays unacquirable.
    pub lock_delay_ms: u64,
    /// What happens to held keys when the session ends.
    pub behavior: Behavior,
    /// The TTL (0: none).
    pub ttl_ms: u64,
    /// The TTL as the client gave it (`"30s"`), `""` when none: Consul echoes this string back.
    pub ttl: String,
}

/// A stored session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// What the creator asked for.
    pub spec: SessionSpec,
    /// The index that created the session.
    pub create_index: Index,
    /// The index of its last change (sessions do not change after creation, so equal to `create_index`).
    pub modify_index: Index,
}
