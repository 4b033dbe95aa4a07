//! The replicated state machine the Raft driver applies committed commands to: the Consul state machine
//! ([`ConsulStateMachine`], publishing to the shards) and a small key/value one ([`KvStateMachine`]) that the
//! driver tests and benchmarks use.

use crate::agent::bridge::{ChangeNotice, Published, Shared};
use crate::fsm::Fsm;
use crate::raft::Index;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the Raft driver applies committed commands to. Runs on the Raft executor; every call must be quick
/// (a long snapshot should be taken from a structurally shared copy).
pub trait StateMachine {
    /// Applies the command committed at `index`; the result is returned to the client that proposed it.
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8>;
    /// The whole state as bytes (the payload of a snapshot).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot made by [`StateMachine::snapshot`]. Bad bytes are an error
    /// and leave the state unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
    /// Answers a read; `query` and the answer are the state machine's own encoding.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// Publishes the state for the shards after a batch of applies (or a restore), Raft having applied
    /// through `applied_index`; returns what changed since the last call. State machines the shards do not
    /// read publish nothing.
    fn publish(&mut self, applied_index: Index) -> Option<ChangeNotice> {
        let _ = applied_index;
        None
    }
}

/// A key/value map as a state machine.
///
/// Commands: `1 | u32 key_len | key | value` sets a key, `2 | u32 key_len | key` deletes it; the result is
/// `[0]` for done or `[1] | message` for a command it cannot decode. Queries: `1 | key` gets a key
/// (answer `[0]` when absent, `[1] | value` when present); an empty query dumps the whole map in the
/// snapshot encoding (`u64 count`, then per key `u32 key_len | key | u32 value_len | value`, keys ascending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStateMachine {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    last_index: Index,
}

const SET: u8 = 1;
const DELETE: u8 = 2;
const GET: u8 = 1;

impl KvStateMachine {
    /// An empty map.
    pub fn new() -> KvStateMachine {
        KvStateMachine::default()
    }

    /// The command that sets `key` to `value`.
    pub fn set_command(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + key.len() + value.len());
        out.push(SET);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    }

    /// The command that deletes `key`.
    pub fn delete_command(key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + key.len());
        out.push(DELETE);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out
    }

    /// The query that reads `key`.
    pub fn get_query(key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + key.len());
        out.push(GET);
        out.extend_from_slice(key);
        out
    }

    /// Decodes the answer to [`KvStateMachine::get_query`].
    pub fn decode_get(answer: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match answer.split_first() {
            Some((0, [])) => Ok(None),
            Some((1, value)) => Ok(Some(value.to_vec())),
            _ => Err("not an answer to a get query".to_string()),
        }
    }

    /// Decodes a dump (the answer to an empty query) or a snapshot payload.
    pub fn decode_map(bytes: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let end = at
                .checked_add(n)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| format!("kv snapshot cut short at byte {at}"))?;
            let out = &bytes[at..end];
            at = end;
            Ok(out)
        };
        let mut u64_bytes = [0u8; 8];
        u64_bytes.copy_from_slice(take(8)?);
        let count = u64::from_le_bytes(u64_bytes);
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let mut len = [0u8; 4];
            len.copy_from_slice(take(4)?);
            let key = take(u32::from_le_bytes(len) as usize)?.to_vec();
            len.copy_from_slice(take(4)?);
            let value = take(u32::from_le_bytes(len) as usize)?.to_vec();
            map.insert(key, value);
        }
        if at != bytes.len() {
            return Err(format!(
                "{} trailing bytes after the kv snapshot",
                bytes.len() - at
            ));
        }
        Ok(map)
    }

    /// The map.
    pub fn map(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.map
    }

    /// The index of the last command applied.
    pub fn last_index(&self) -> Index {
        self.last_index
    }

    fn split_key(rest: &[u8]) -> Option<(&[u8], &[u8])> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let key = rest.get(4..4usize.checked_add(len)?)?;
        Some((key, &rest[4 + len..]))
    }
}

impl StateMachine for KvStateMachine {
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8> {
        self.last_index = index;
        let parsed = match command.split_first() {
            Some((&SET, rest)) => Self::split_key(rest).map(|(k, v)| (k, Some(v))),
            Some((&DELETE, rest)) => {
                Self::split_key(rest).and_then(|(k, v)| v.is_empty().then_some((k, None)))
            }
            _ => None,
        };
        match parsed {
            Some((key, Some(value))) => {
                self.map.insert(key.to_vec(), value.to_vec());
                vec![0]
            }
            Some((key, None)) => {
                self.map.remove(key);
                vec![0]
            }
            None => {
                let mut out = vec![1];
                out.extend_from_slice(b"not a kv command");
                out
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let size: usize = self.map.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut out = Vec::with_capacity(8 + size);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, v) in &self.map {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.map = Self::decode_map(snapshot)?;
        Ok(())
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match query.split_first() {
            None => self.snapshot(),
            Some((&GET, key)) => match self.map.get(key) {
                Some(value) => {
                    let mut out = Vec::with_capacity(1 + value.len());
                    out.push(1);
                    out.extend_from_slice(value);
                    out
                }
                None => vec![0],
            },
            Some(_) => Vec::new(),
        }
    }
}

/// The Consul state machine ([`Fsm`]: KV, sessions...) as the Raft driver runs it: applies commands and
/// publishes each new state to the shards through [`Shared`].
pub struct ConsulStateMachine {
    fsm: Fsm,
    shared: Arc<Shared>,
}

impl ConsulStateMachine {
    /// An empty state machine publishing to `shared`.
    pub fn new(shared: Arc<Shared>) -> ConsulStateMachine {
        ConsulStateMachine {
            fsm: Fsm::new(),
            shared,
        }
    }
}

impl StateMachine for ConsulStateMachine {
    fn apply(&mut self, index: Index, command: &[u8]) -> Vec<u8> {
        self.fsm.apply_bytes(index, command)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.fsm.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.fsm = Fsm::restore(snapshot)?;
        Ok(())
    }

    /// Reads are answered by the shards from the published state; a query through Raft only establishes
    /// the read index, so its answer is empty.
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        Vec::new()
    }

    fn publish(&mut self, applied_index: Index) -> Option<ChangeNotice> {
        let changes = self.fsm.take_changes();
        let cluster = Arc::clone(&self.shared.published().cluster);
        self.shared.publish(Published {
            state: self.fsm.state(),
            applied_index,
            cluster,
        });
        Some(ChangeNotice {
            index: applied_index,
            tables: changes.tables,
            kv_keys: changes.kv_keys.map(Arc::new),
            service_names: changes.service_names.map(Arc::new),
            node_names: changes.node_names.map(Arc::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_queries_and_snapshots() {
        let mut kv = KvStateMachine::new();
        assert_eq!(kv.apply(1, &KvStateMachine::set_command(b"a", b"1")), [0]);
        assert_eq!(kv.apply(2, &KvStateMachine::set_command(b"b", b"")), [0]);
        assert_eq!(kv.apply(3, &KvStateMachine::delete_command(b"a")), [0]);
        assert_eq!(kv.apply(4, b"\x09junk")[0], 1);
        assert_eq!(kv.last_index(), 4);
        let got = kv.query(&KvStateMachine::get_query(b"b"));
        assert_eq!(KvStateMachine::decode_get(&got), Ok(Some(Vec::new())));
        let got = kv.query(&KvStateMachine::get_query(b"a"));
        assert_eq!(KvStateMachine::decode_get(&got), Ok(None));
        let snap = kv.snapshot();
        assert_eq!(kv.query(&[]), snap);
        let mut other = KvStateMachine::new();
        other.restore(&snap).expect("restores");
        assert_eq!(other.map(), kv.map());
        for cut in 0..snap.len() {
            assert!(other.restore(&snap[..cut]).is_err());
        }
        assert_eq!(other.map(), kv.map(), "a failed restore changes nothing");
    }
}
