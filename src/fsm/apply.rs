//! Applying commands: each runs on a working copy of the state (O(1) to take) that replaces the state only
//! when the command changed something, so a refused command or a failed transaction leaves no trace.

use super::catalog_write;
use super::codec::{decode_command, encode_outcome};
use super::txn::{self, OpError};
use super::{
    snapshot, table, Behavior, ChangeLog, Changes, Command, Fsm, Index, KvOp, NameLog, Outcome,
    Session, SessionSpec, State, TxnOutcome, CHANGED_KEYS_MAX, SESSION_TTL_MULTIPLIER,
};
use std::sync::Arc;

impl ChangeLog {
    /// Records a changed KV key.
    pub(super) fn key(&mut self, key: &str) {
        self.tables |= table::KVS;
        if self.overflow || self.seen.contains(key) {
            return;
        }
        if self.keys.len() == CHANGED_KEYS_MAX {
            self.overflow = true;
            self.keys.clear();
            self.seen.clear();
            return;
        }
        self.seen.insert(key.to_string());
        self.keys.push(key.to_string());
    }

    /// Records a changed table.
    pub(super) fn table(&mut self, flags: u32) {
        self.tables |= flags;
    }

    /// Records a change to the instances (or their checks) of service `name`.
    pub(super) fn service(&mut self, name: &str) {
        self.tables |= table::SERVICES;
        self.services.add(name);
    }

    /// Records a change to node `name` (the node itself or its checks; `flags` the tables touched).
    pub(super) fn node(&mut self, name: &str, flags: u32) {
        self.tables |= flags;
        self.nodes.add(name);
    }

    /// Adds what `other` recorded.
    fn merge(&mut self, other: ChangeLog) {
        self.tables |= other.tables;
        if other.overflow {
            self.tables |= table::KVS;
            self.overflow = true;
        }
        for key in &other.keys {
            self.key(key);
        }
        self.services.merge(other.services);
        self.nodes.merge(other.nodes);
    }

    /// A log that reports every table, key and name changed.
    fn everything() -> ChangeLog {
        ChangeLog {
            tables: table::KVS | table::SESSIONS | table::NODES | table::SERVICES | table::CHECKS,
            overflow: true,
            services: NameLog::everything(),
            nodes: NameLog::everything(),
            ..ChangeLog::default()
        }
    }

    /// The changes recorded, leaving the log empty.
    fn take(&mut self) -> Changes {
        let log = std::mem::take(self);
        Changes {
            tables: log.tables,
            kv_keys: (!log.overflow).then_some(log.keys),
            service_names: log.services.into_names(),
            node_names: log.nodes.into_names(),
        }
    }
}

impl NameLog {
    /// A log that reports every name changed.
    fn everything() -> NameLog {
        NameLog {
            overflow: true,
            ..NameLog::default()
        }
    }

    /// Records `name`, once; past [`CHANGED_KEYS_MAX`] names the log reports "all".
    fn add(&mut self, name: &str) {
        if self.overflow || self.seen.contains(name) {
            return;
        }
        if self.names.len() == CHANGED_KEYS_MAX {
            *self = NameLog::everything();
            return;
        }
        self.seen.insert(name.to_string());
        self.names.push(name.to_string());
    }

    /// Adds what `other` recorded.
    fn merge(&mut self, other: NameLog) {
        if other.overflow {
            *self = NameLog::everything();
            return;
        }
        for name in &other.names {
            self.add(name);
        }
    }

    /// The names recorded, `None` for "all".
    fn into_names(self) -> Option<Vec<String>> {
        (!self.overflow).then_some(self.names)
    }
}

/// The effect of one command on the working copy: the answer, and whether to keep the copy.
struct Applied {
    outcome: Outcome,
    keep: bool,
}

impl Applied {
    fn keep(outcome: Outcome) -> Applied {
        Applied {
            outcome,
            keep: true,
        }
    }

    fn discard(outcome: Outcome) -> Applied {
        Applied {
            outcome,
            keep: false,
        }
    }
}

impl Fsm {
    /// An empty state machine.
    pub fn new() -> Fsm {
        Fsm::default()
    }

    /// Applies `command`, committed at `index`, and returns the proposer's answer. The applied index moves
    /// to `index` whatever the outcome.
    pub fn apply(&mut self, raft_index: Index, command: &Command) -> Outcome {
        let index = raft_index.saturating_add(self.state.index_offset);
        if let Command::Restore { snapshot } = command {
            return self.restore_at(raft_index, index, snapshot);
        }
        let mut work = self.state.clone();
        let mut log = ChangeLog::default();
        let applied = match command {
            Command::Kv { now_ms, op } => kv_write(&mut work, index, *now_ms, op, &mut log),
            Command::Txn { now_ms, ops } => {
                let outcome = txn::run(&mut work, index, *now_ms, ops, &mut log);
                let keep = matches!(outcome, TxnOutcome::Results(_));
                Applied {
                    outcome: Outcome::Txn(outcome),
                    keep,
                }
            }
            Command::SessionCreate { now_ms, spec } => {
                session_create(&mut work, index, *now_ms, spec, &mut log)
            }
            Command::SessionRenew { now_ms, id } => session_renew(&mut work, *now_ms, id),
            Command::SessionDestroy { now_ms, id } => {
                session_destroy(&mut work, index, *now_ms, id, &mut log)
            }
            Command::CatalogRegister { now_ms, request } => {
                let result = catalog_write::register(&mut work, index, *now_ms, request, &mut log);
                catalog_applied(result)
            }
            Command::CatalogDeregister {
                now_ms,
                node,
                service_id,
                check_id,
            } => {
                let (service, check) = (service_id.as_deref(), check_id.as_deref());
                let result = catalog_write::deregister(
                    &mut work, index, *now_ms, node, service, check, &mut log,
                );
                catalog_applied(result)
            }
            Command::TombstoneReap { through_index } => {
                work.reap_tombstones(*through_index);
                Applied::keep(Outcome::Done)
            }
            Command::Restore { .. } => Applied::keep(Outcome::Done),
            Command::AutopilotSet { config, cas } => {
                if work.set_autopilot(index, config, *cas) {
                    Applied::keep(Outcome::Bool(true))
                } else {
                    Applied::discard(Outcome::Bool(false))
                }
            }
        };
        if applied.keep {
            self.state = work;
            self.changes.merge(log);
        }
        self.state.applied_index = index;
        applied.outcome
    }

    /// Decodes and applies a command from the log, answering with an encoded [`Outcome`]; bytes that do not
    /// decode give an encoded [`Outcome::Error`] (and still move the applied index).
    pub fn apply_bytes(&mut self, index: Index, command: &[u8]) -> Vec<u8> {
        let outcome = match decode_command(command) {
            Ok(command) => self.apply(index, &command),
            Err(e) => {
                self.state.applied_index = index.saturating_add(self.state.index_offset);
                Outcome::Error(format!("undecodable command: {e}"))
            }
        };
        encode_outcome(&outcome)
    }

    /// [`Command::Restore`] at Raft index `raft_index` (`index` with the current offset).
    fn restore_at(&mut self, raft_index: Index, index: Index, snapshot: &[u8]) -> Outcome {
        let mut restored = match snapshot::decode(snapshot) {
            Ok(state) => state,
            Err(e) => {
                self.state.applied_index = index;
                return Outcome::Error(format!("snapshot restore refused: {e}"));
            }
        };
        let at = index.max(restored.highest_index().saturating_add(1));
        restored.index_offset = at - raft_index;
        restored.applied_index = at;
        restored.bump_indexes(at);
        self.state = restored;
        self.changes = ChangeLog::everything();
        Outcome::Done
    }

    /// The current state to publish (O(1): shares structure with the state machine's own).
    pub fn state(&self) -> State {
        self.state.clone()
    }

    /// What changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        self.changes.take()
    }

    /// The whole state as snapshot bytes ([`snapshot`]).
    pub fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(&self.state)
    }

    /// A state machine restored from [`Fsm::snapshot`] bytes; its first [`Fsm::take_changes`] reports every
    /// table and key changed. Bad bytes are an error.
    pub fn restore(bytes: &[u8]) -> Result<Fsm, String> {
        Ok(Fsm {
            state: snapshot::decode(bytes)?,
            changes: ChangeLog::everything(),
        })
    }
}

/// A catalog write's answer: `true`, or Consul's error text (and nothing kept).
fn catalog_applied(result: Result<(), String>) -> Applied {
    match result {
        Ok(()) => Applied::keep(Outcome::Bool(true)),
        Err(what) => Applied::discard(Outcome::Error(what)),
    }
}

/// One KV write: `true`/`false` as Consul answers, or the error for a malformed one.
fn kv_write(
    state: &mut State,
    index: Index,
    now_ms: u64,
    op: &KvOp,
    log: &mut ChangeLog,
) -> Applied {
    if op.verb.is_read() {
        return Applied::discard(Outcome::Error(format!(
            "Invalid KVS operation '{}'",
            op.verb.as_str()
        )));
    }
    match txn::write_op(state, index, now_ms, op, log) {
        Ok(_) => Applied::keep(Outcome::Bool(true)),
        Err(OpError::Failed(_)) => Applied::discard(Outcome::Bool(false)),
        Err(OpError::Invalid(what)) => Applied::discard(Outcome::Error(what)),
    }
}

/// The deadline of a session with `ttl_ms` renewed at `now_ms`.
fn deadline_ms(now_ms: u64, ttl_ms: u64) -> u64 {
    now_ms.saturating_add(ttl_ms.saturating_mul(SESSION_TTL_MULTIPLIER))
}

fn session_create(
    state: &mut State,
    index: Index,
    now_ms: u64,
    spec: &SessionSpec,
    log: &mut ChangeLog,
) -> Applied {
    if spec.id.is_empty() {
        return Applied::discard(Outcome::Error("Missing session ID".to_string()));
    }
    if let Err(what) = catalog_write::check_session_binding(state, spec) {
        return Applied::discard(Outcome::Error(what));
    }
    let session = Session {
        spec: spec.clone(),
        create_index: index,
        modify_index: index,
    };
    state.sessions.insert(spec.id.clone(), Arc::new(session));
    if spec.ttl_ms > 0 {
        let at = deadline_ms(now_ms, spec.ttl_ms);
        state.deadlines.insert(spec.id.clone(), at);
    }
    state.indexes.sessions = index;
    log.table(table::SESSIONS);
    Applied::keep(Outcome::SessionCreated(spec.id.clone()))
}

/// Renewing moves only the deadline: no index changes, nothing for blocking queries to see.
fn session_renew(state: &mut State, now_ms: u64, id: &str) -> Applied {
    let Some(session) = state.session_get(id).cloned() else {
        return Applied::discard(Outcome::SessionRenewed(None));
    };
    if session.spec.ttl_ms > 0 {
        let at = deadline_ms(now_ms, session.spec.ttl_ms);
        state.deadlines.insert(id.to_string(), at);
    }
    Applied::keep(Outcome::SessionRenewed(Some(session)))
}

fn session_destroy(
    state: &mut State,
    index: Index,
    now_ms: u64,
    id: &str,
    log: &mut ChangeLog,
) -> Applied {
    if !end_session(state, index, now_ms, id, log) {
        return Applied::discard(Outcome::Bool(true));
    }
    Applied::keep(Outcome::Bool(true))
}

/// Ends session `id` (destroyed or invalidated): its held keys are released or deleted per its behavior, each
/// with the session's lock-delay from `now_ms`. `false` (and no change) when it does not exist.
pub(super) fn end_session(
    state: &mut State,
    index: Index,
    now_ms: u64,
    id: &str,
    log: &mut ChangeLog,
) -> bool {
    let Some(session) = state.sessions.remove(id) else {
        return false;
    };
    state.deadlines.remove(id);
    state.prune_lock_delays(now_ms);
    let delay_ms = txn::capped_lock_delay_ms(session.spec.lock_delay_ms);
    for key in state.keys_held_by(id) {
        end_hold(state, index, &key, session.spec.behavior, log);
        if delay_ms > 0 {
            state.set_lock_delay(&key, now_ms.saturating_add(delay_ms));
        }
    }
    state.indexes.sessions = index;
    log.table(table::SESSIONS);
    true
}

/// Releases (clears the holder, bumps ModifyIndex) or deletes a key whose session ended.
fn end_hold(state: &mut State, index: Index, key: &str, behavior: Behavior, log: &mut ChangeLog) {
    match behavior {
        Behavior::Release => {
            let Some(held) = state.kv_get(key) else {
                return;
            };
            let mut entry = held.clone();
            entry.session = None;
            entry.modify_index = index;
            state.put_entry(entry, log);
        }
        Behavior::Delete => {
            state.delete_entry(key, index, log);
        }
    }
}
