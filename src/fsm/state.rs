//! The applied state: persistent `imbl` maps, so a clone is O(1) and shares structure with the original. Shards
//! read a published clone; the Raft core keeps applying to its own.

use super::catalog::{HealthCheck, Node, Service};
use super::txn::{self, TxnOutcome};
use super::{ChangeLog, Index, KvEntry, KvOp, Session};
use imbl::{OrdMap, OrdSet};
use std::ops::Bound;
use std::sync::Arc;

/// The index of each table's last change (Consul's `index` table), what blocking queries compare against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableIndexes {
    /// Last change to a KV entry (write, lock, release or delete).
    pub kvs: Index,
    /// Last tombstone written.
    pub tombstones: Index,
    /// Last session created or destroyed.
    pub sessions: Index,
    /// Last node registered, changed or deregistered.
    pub nodes: Index,
    /// Last service instance registered, changed or deregistered.
    pub services: Index,
    /// Last check registered, changed or deregistered.
    pub checks: Index,
    /// Last time the last instance of some service name was deregistered (Consul's
    /// `service_last_extinction`): what a blocking query on a missing service reports.
    pub service_extinction: Index,
}

/// Everything the state machine holds, at one applied index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// KV entries by key.
    pub(super) kvs: OrdMap<String, Arc<KvEntry>>,
    /// Deleted keys and the index that deleted them, until reaped.
    pub(super) tombstones: OrdMap<String, Index>,
    /// Sessions by ID.
    pub(super) sessions: OrdMap<String, Arc<Session>>,
    /// When each session with a TTL expires unless renewed (ms, the proposers' clock).
    pub(super) deadlines: OrdMap<String, u64>,
    /// Keys a released or deleted lock made unacquirable until a time (ms).
    pub(super) lock_delays: OrdMap<String, u64>,
    /// (session ID, key) for every held lock: finds a session's keys without a scan.
    pub(super) held: OrdSet<(String, String)>,
    /// Catalog nodes by name.
    pub(super) nodes: OrdMap<String, Arc<Node>>,
    /// Service instances by (node, service ID).
    pub(super) services: OrdMap<(String, String), Arc<Service>>,
    /// (service name, node, service ID) of every instance: finds a service's instances without a scan.
    pub(super) service_names: OrdSet<(String, String, String)>,
    /// Checks by (node, check ID).
    pub(super) checks: OrdMap<(String, String), Arc<HealthCheck>>,
    /// The last change to each registered service name's instances or their checks.
    pub(super) service_indexes: OrdMap<String, Index>,
    /// Per-table last-change indexes.
    pub(super) indexes: TableIndexes,
    /// The index of the last command applied.
    pub(super) applied_index: Index,
    /// What the state machine adds to a Raft log index to get its own index: 0 until a snapshot restore
    /// (`Command::Restore`) moves the state's indexes past the restored ones while the Raft log stays behind.
    pub(super) index_offset: Index,
    /// The autopilot configuration, once stored.
    pub(super) autopilot: Option<Arc<super::AutopilotConfig>>,
}

/// The entries of `map` whose key starts with `prefix`, key-ascending.
fn under<'a, V>(
    map: &'a OrdMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl State {
    /// The index of the last command applied (refused ones included).
    pub fn applied_index(&self) -> Index {
        self.applied_index
    }

    /// What the state machine adds to a Raft log index (see [`Command::Restore`](super::Command::Restore)).
    pub fn index_offset(&self) -> Index {
        self.index_offset
    }

    /// The highest index anywhere in the state: the applied index, every table index, every entry's.
    pub fn highest_index(&self) -> Index {
        let t = &self.indexes;
        let tables = [
            self.applied_index,
            t.kvs,
            t.tombstones,
            t.sessions,
            t.nodes,
            t.services,
            t.checks,
            t.service_extinction,
        ];
        let kvs = self
            .kvs
            .values()
            .map(|e| e.modify_index.max(e.create_index));
        let tombstones = self.tombstones.values().copied();
        let services = self.service_indexes.values().copied();
        let autopilot = self.autopilot.iter().map(|c| c.modify_index);
        tables
            .into_iter()
            .chain(kvs)
            .chain(tombstones)
            .chain(services)
            .chain(autopilot)
            .max()
            .unwrap_or(0)
    }

    /// Moves every table index (and each service name's) to `index`: after a restore, every blocking
    /// query sees a change.
    pub(super) fn bump_indexes(&mut self, index: Index) {
        let t = &mut self.indexes;
        for i in [
            &mut t.kvs,
            &mut t.tombstones,
            &mut t.sessions,
            &mut t.nodes,
            &mut t.services,
            &mut t.checks,
            &mut t.service_extinction,
        ] {
            *i = (*i).max(index);
        }
        self.service_indexes = self
            .service_indexes
            .iter()
            .map(|(name, i)| (name.clone(), (*i).max(index)))
            .collect();
    }

    /// Each table's last-change index.
    pub fn table_indexes(&self) -> TableIndexes {
        self.indexes
    }

    /// The entry at `key`.
    pub fn kv_get(&self, key: &str) -> Option<&KvEntry> {
        self.kvs.get(key).map(|e| &**e)
    }

    /// The entries under `prefix` (`""`: all), key-ascending.
    pub fn kv_list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        under(&self.kvs, prefix).map(|(_, e)| &**e)
    }

    /// Consul's `?keys&separator=`: the keys under `prefix`, each cut after the first `separator` that follows
    /// the prefix (the separator kept), deduplicated, ascending. `None` or `""` lists whole keys.
    pub fn kv_keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let sep = separator.filter(|s| !s.is_empty());
        let mut keys: Vec<String> = Vec::new();
        for (key, _) in under(&self.kvs, prefix) {
            let cut = sep
                .and_then(|s| {
                    key[prefix.len()..]
                        .find(s)
                        .map(|at| prefix.len() + at + s.len())
                })
                .unwrap_or(key.len());
            let shown = &key[..cut];
            if keys.last().map(String::as_str) != Some(shown) {
                keys.push(shown.to_string());
            }
        }
        keys
    }

    /// The blocking index for one key: its ModifyIndex, else the KV tables' last change.
    pub fn kv_key_index(&self, key: &str) -> Index {
        match self.kvs.get(key) {
            Some(e) => e.modify_index,
            None => self.kv_table_index(),
        }
    }

    /// The blocking index for a prefix listing (Consul's rule): the highest ModifyIndex of the entries and
    /// tombstones under the prefix, or for `""` the tables' index; when that is 0, the tables' index.
    pub fn kv_prefix_index(&self, prefix: &str) -> Index {
        let table = self.kv_table_index();
        let sub = if prefix.is_empty() {
            table
        } else {
            let entries = under(&self.kvs, prefix).map(|(_, e)| e.modify_index);
            let stones = under(&self.tombstones, prefix).map(|(_, at)| *at);
            entries.chain(stones).max().unwrap_or(0)
        };
        if sub != 0 {
            sub
        } else {
            table
        }
    }

    /// The session `id`.
    pub fn session_get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id).map(|s| &**s)
    }

    /// Every session, ID-ascending.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().map(|s| &**s)
    }

    /// The sessions of `node`, ID-ascending.
    pub fn sessions_for_node(&self, node: &str) -> Vec<&Session> {
        self.sessions().filter(|s| s.spec.node == node).collect()
    }

    /// When session `id` expires unless renewed (ms); `None` for a session without TTL or an unknown one.
    pub fn session_deadline_ms(&self, id: &str) -> Option<u64> {
        self.deadlines.get(id).copied()
    }

    /// Every session deadline as (ID, ms), ID-ascending: what the leader's expirer watches.
    pub fn session_deadlines(&self) -> Vec<(String, u64)> {
        self.deadlines
            .iter()
            .map(|(id, at)| (id.clone(), *at))
            .collect()
    }

    /// Until when `key` cannot be locked (ms), if a lock-delay was ever set on it.
    pub fn lock_delay_until_ms(&self, key: &str) -> Option<u64> {
        self.lock_delays.get(key).copied()
    }

    /// Evaluates a read-only transaction (gets and checks) with the same meaning and texts as in a write
    /// transaction; a write verb is an error for its operation.
    pub fn txn_read(&self, ops: &[KvOp]) -> TxnOutcome {
        txn::read_only(self, ops)
    }

    /// The KV tables' last change (entries or tombstones).
    fn kv_table_index(&self) -> Index {
        self.indexes.kvs.max(self.indexes.tombstones)
    }

    /// The keys session `id` holds, ascending.
    pub(super) fn keys_held_by(&self, id: &str) -> Vec<String> {
        let from = (id.to_string(), String::new());
        self.held
            .range(from..)
            .take_while(|(s, _)| s == id)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Stores `entry` (its ModifyIndex is the change's index) and records the change.
    pub(super) fn put_entry(&mut self, entry: KvEntry, log: &mut ChangeLog) {
        let key = entry.key.clone();
        let session = entry.session.clone();
        self.indexes.kvs = entry.modify_index;
        if let Some(old) = self.kvs.insert(key.clone(), Arc::new(entry)) {
            match &old.session {
                Some(s) if Some(s) != session.as_ref() => {
                    self.held.remove(&(s.clone(), key.clone()));
                }
                _ => {}
            }
        }
        if let Some(s) = session {
            self.held.insert((s, key.clone()));
        }
        log.key(&key);
    }

    /// Deletes `key` at `index`, leaving a tombstone; `false` (and no change) when it does not exist.
    pub(super) fn delete_entry(&mut self, key: &str, index: Index, log: &mut ChangeLog) -> bool {
        let Some(old) = self.kvs.remove(key) else {
            return false;
        };
        if let Some(s) = &old.session {
            self.held.remove(&(s.clone(), key.to_string()));
        }
        self.tombstones.insert(key.to_string(), index);
        self.indexes.tombstones = index;
        self.indexes.kvs = index;
        log.key(key);
        true
    }

    /// Deletes every key under `prefix` at `index`, one tombstone per key.
    pub(super) fn delete_tree(&mut self, prefix: &str, index: Index, log: &mut ChangeLog) {
        let keys: Vec<String> = under(&self.kvs, prefix).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.delete_entry(&key, index, log);
        }
    }

    /// Removes the tombstones at or below `through_index`.
    pub(super) fn reap_tombstones(&mut self, through_index: Index) {
        let reaped: Vec<String> = self
            .tombstones
            .iter()
            .filter(|(_, at)| **at <= through_index)
            .map(|(k, _)| k.clone())
            .collect();
        for key in reaped {
            self.tombstones.remove(&key);
        }
    }

    /// Makes `key` unacquirable until `until_ms`.
    pub(super) fn set_lock_delay(&mut self, key: &str, until_ms: u64) {
        self.lock_delays.insert(key.to_string(), until_ms);
    }

    /// Forgets the lock-delays that ended at or before `now_ms` (they no longer block anything).
    pub(super) fn prune_lock_delays(&mut self, now_ms: u64) {
        let ended: Vec<String> = self
            .lock_delays
            .iter()
            .filter(|(_, until)| **until <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            self.lock_delays.remove(&key);
        }
    }
}
