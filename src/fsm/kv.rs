//! KV types: a stored entry, the verbs of single writes and transactions, and one operation.

use super::Index;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One stored key (Consul's `DirEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value (shared: reads and transaction results never copy it).
    #[serde(with = "super::codec::shared_bytes")]
    pub value: Arc<[u8]>,
    /// Opaque client flags.
    pub flags: u64,
    /// How many times a session acquired the key.
    pub lock_index: u64,
    /// The session holding the lock, if any.
    pub session: Option<String>,
    /// The index that created the key.
    pub create_index: Index,
    /// The index of the last change.
    pub modify_index: Index,
}

impl KvEntry {
    /// The same entry with an empty value (how transaction results show non-get verbs).
    pub fn without_value(&self) -> KvEntry {
        KvEntry {
            value: Arc::from(&[][..]),
            ..self.clone()
        }
    }

    /// Whether two entries hold the same content (Consul's `DirEntry.Equal`: indexes aside). A write of an
    /// equal entry changes nothing.
    pub(crate) fn same_content(&self, other: &KvEntry) -> bool {
        self.key == other.key
            && self.value == other.value
            && self.flags == other.flags
            && self.lock_index == other.lock_index
            && self.session == other.session
    }
}

/// A KV verb, as Consul's transaction API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KvVerb {
    /// Sets the value (and flags), keeping the lock holder.
    Set,
    /// Sets the value if the key's ModifyIndex equals the op's index (0: only if the key does not exist).
    Cas,
    /// Acquires the key's lock for a session and sets the value.
    Lock,
    /// Releases the key's lock held by a session and sets the value.
    Unlock,
    /// Reads a key; a missing key is an error.
    Get,
    /// Reads a key; a missing key gives an empty entry.
    GetOrEmpty,
    /// Reads every key under a prefix.
    GetTree,
    /// Fails unless the key's ModifyIndex equals the op's index.
    CheckIndex,
    /// Fails unless the key is held by the op's session.
    CheckSession,
    /// Fails if the key exists.
    CheckNotExists,
    /// Deletes a key.
    Delete,
    /// Deletes every key under a prefix.
    DeleteTree,
    /// Deletes a key if its ModifyIndex equals the op's index.
    DeleteCas,
}

/// Every verb with its wire name.
const VERB_NAMES: [(KvVerb, &str); 13] = [
    (KvVerb::Set, "set"),
    (KvVerb::Cas, "cas"),
    (KvVerb::Lock, "lock"),
    (KvVerb::Unlock, "unlock"),
    (KvVerb::Get, "get"),
    (KvVerb::GetOrEmpty, "get-or-empty"),
    (KvVerb::GetTree, "get-tree"),
    (KvVerb::CheckIndex, "check-index"),
    (KvVerb::CheckSession, "check-session"),
    (KvVerb::CheckNotExists, "check-not-exists"),
    (KvVerb::Delete, "delete"),
    (KvVerb::DeleteTree, "delete-tree"),
    (KvVerb::DeleteCas, "delete-cas"),
];

impl KvVerb {
    /// The verb named by Consul's transaction verb string (`"get-tree"`...); `None` for an unknown one.
    pub fn parse(s: &str) -> Option<KvVerb> {
        VERB_NAMES.iter().find(|(_, n)| *n == s).map(|(v, _)| *v)
    }

    /// Consul's name for the verb.
    pub fn as_str(self) -> &'static str {
        VERB_NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, n)| n)
    }

    /// Whether the verb only reads (gets and checks): a transaction of such verbs needs no Raft round.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            KvVerb::Get
                | KvVerb::GetOrEmpty
                | KvVerb::GetTree
                | KvVerb::CheckIndex
                | KvVerb::CheckSession
                | KvVerb::CheckNotExists
        )
    }
}

/// One KV operation: a single write or one element of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvOp {
    /// What to do.
    pub verb: KvVerb,
    /// The key (the prefix for `GetTree` and `DeleteTree`).
    pub key: String,
    /// The value for `Set`, `Cas`, `Lock` and `Unlock`.
    #[serde(with = "super::codec::vec_bytes")]
    pub value: Vec<u8>,
    /// The flags for `Set`, `Cas`, `Lock` and `Unlock`.
    pub flags: u64,
    /// The expected ModifyIndex for `Cas`, `CheckIndex` and `DeleteCas`.
    pub index: Index,
    /// The session for `Lock`, `Unlock` and `CheckSession` (`""` for none).
    pub session: String,
}

impl KvOp {
    /// An operation with only a verb and a key (empty value, no flags, index 0, no session).
    pub fn new(verb: KvVerb, key: &str) -> KvOp {
        KvOp {
            verb,
            key: key.to_string(),
            value: Vec::new(),
            flags: 0,
            index: 0,
            session: String::new(),
        }
    }
}
