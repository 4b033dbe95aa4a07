//! KV operations and transactions, with Consul's meaning and error texts (clients match on them).
//!
//! Every operation of a transaction runs in order on a working copy of the state, each seeing the effects of
//! those before it; all failures are collected (each with its operation's position). The copy is kept only
//! when none failed. Results: gets return entries with values, `get-tree` every entry under the prefix, the
//! other verbs that name an entry return it without its value, deletes and `check-not-exists` return nothing.

use super::{ChangeLog, Index, KvEntry, KvOp, KvVerb, State, LOCK_DELAY_MS_MAX};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a transaction produced: all results, or (when anything failed, and then nothing changed) the errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Every operation succeeded (HTTP 200).
    Results(Vec<TxnResult>),
    /// At least one operation failed; nothing was applied (HTTP 409).
    Errors(Vec<TxnError>),
}

/// One result of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResult {
    /// The entry; its value is empty except for the get verbs (the HTTP layer renders `Value: null`).
    pub kv: KvEntry,
}

/// One failed operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    /// The failed operation's position in the transaction.
    pub op_index: usize,
    /// Consul's message.
    pub what: String,
}

/// Why an operation did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum OpError {
    /// Its condition did not hold (stale index, lock held, missing key...): a single write answers `false`.
    Failed(String),
    /// It is malformed (no session, unknown session): a single write answers with the error.
    Invalid(String),
}

impl OpError {
    /// The message.
    pub(super) fn what(self) -> String {
        match self {
            OpError::Failed(m) | OpError::Invalid(m) => m,
        }
    }
}

/// What one operation returns when it applies: the entries it reports.
type OpResult = Result<Vec<KvEntry>, OpError>;

/// `s` quoted as Go's `%q` does (clients see these texts).
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `ops` on `state` at `index`; the caller keeps `state` only when the outcome is `Results`.
pub(super) fn run(
    state: &mut State,
    index: Index,
    now_ms: u64,
    ops: &[KvOp],
    log: &mut ChangeLog,
) -> TxnOutcome {
    collect(ops, |op| {
        if op.verb.is_read() {
            read_op(state, op)
        } else {
            write_op(state, index, now_ms, op, log)
        }
    })
}

/// Evaluates a transaction of reads on `state`.
pub(super) fn read_only(state: &State, ops: &[KvOp]) -> TxnOutcome {
    collect(ops, |op| {
        if op.verb.is_read() {
            read_op(state, op)
        } else {
            Err(OpError::Invalid(format!(
                "verb {} writes: not allowed in a read-only transaction",
                go_quote(op.verb.as_str())
            )))
        }
    })
}

/// Runs every op through `each`, gathering results, or every error when any failed.
fn collect(ops: &[KvOp], mut each: impl FnMut(&KvOp) -> OpResult) -> TxnOutcome {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (op_index, op) in ops.iter().enumerate() {
        match each(op) {
            Ok(entries) => results.extend(entries.into_iter().map(|kv| TxnResult { kv })),
            Err(e) => errors.push(TxnError {
                op_index,
                what: e.what(),
            }),
        }
    }
    if errors.is_empty() {
        TxnOutcome::Results(results)
    } else {
        TxnOutcome::Errors(errors)
    }
}

/// A read verb on `state`.
pub(super) fn read_op(state: &State, op: &KvOp) -> OpResult {
    let key = op.key.as_str();
    let existing = state.kv_get(key);
    match op.verb {
        KvVerb::Get => existing
            .map(|e| vec![e.clone()])
            .ok_or_else(|| OpError::Failed(format!("key {} doesn't exist", go_quote(key)))),
        KvVerb::GetOrEmpty => Ok(vec![existing.cloned().unwrap_or_else(|| empty_entry(op))]),
        KvVerb::GetTree => Ok(state.kv_list(key).cloned().collect()),
        KvVerb::CheckIndex => check_index(existing, op),
        KvVerb::CheckSession => check_session(existing, op),
        KvVerb::CheckNotExists => match existing {
            Some(_) => Err(OpError::Failed(format!("key {} exists", go_quote(key)))),
            None => Ok(Vec::new()),
        },
        _ => Err(OpError::Invalid(format!(
            "unknown KV verb {}",
            go_quote(op.verb.as_str())
        ))),
    }
}

/// What `get-or-empty` returns for a missing key: the op's own fields, no value.
fn empty_entry(op: &KvOp) -> KvEntry {
    KvEntry {
        key: op.key.clone(),
        value: Arc::from(&[][..]),
        flags: op.flags,
        lock_index: 0,
        session: Some(op.session.clone()).filter(|s| !s.is_empty()),
        create_index: 0,
        modify_index: op.index,
    }
}

fn check_index(existing: Option<&KvEntry>, op: &KvOp) -> OpResult {
    let key = go_quote(&op.key);
    match existing {
        None => Err(OpError::Failed(format!(
            "failed to check index, key {key} doesn't exist"
        ))),
        Some(e) if e.modify_index != op.index => Err(OpError::Failed(format!(
            "failed index check for key {key}, current modify index {} != {}",
            e.modify_index, op.index
        ))),
        Some(e) => Ok(vec![e.without_value()]),
    }
}

fn check_session(existing: Option<&KvEntry>, op: &KvOp) -> OpResult {
    let key = go_quote(&op.key);
    match existing {
        None => Err(OpError::Failed(format!(
            "failed to check session, key {key} doesn't exist"
        ))),
        Some(e) if e.session.as_deref().unwrap_or("") != op.session => {
            Err(OpError::Failed(format!(
                "failed session check for key {key}, current session {} != {}",
                go_quote(e.session.as_deref().unwrap_or("")),
                go_quote(&op.session)
            )))
        }
        Some(e) => Ok(vec![e.without_value()]),
    }
}

/// A write verb on `state` at `index`.
pub(super) fn write_op(
    state: &mut State,
    index: Index,
    now_ms: u64,
    op: &KvOp,
    log: &mut ChangeLog,
) -> OpResult {
    match op.verb {
        KvVerb::Set => Ok(vec![set(state, index, op, log)]),
        KvVerb::Cas => cas(state, index, op, log),
        KvVerb::Lock => lock(state, index, now_ms, op, log),
        KvVerb::Unlock => unlock(state, index, op, log),
        KvVerb::Delete => {
            state.delete_entry(&op.key, index, log);
            Ok(Vec::new())
        }
        KvVerb::DeleteTree => {
            state.delete_tree(&op.key, index, log);
            Ok(Vec::new())
        }
        KvVerb::DeleteCas => delete_cas(state, index, op, log),
        _ => read_op(state, op),
    }
}

/// Stores `entry` unless the key already holds the same content (then nothing changes, as in Consul); returns
/// the stored entry without its value.
fn store(state: &mut State, entry: KvEntry, log: &mut ChangeLog) -> KvEntry {
    if let Some(old) = state.kv_get(&entry.key) {
        if old.same_content(&entry) {
            return old.without_value();
        }
    }
    let shown = entry.without_value();
    state.put_entry(entry, log);
    shown
}

/// The entry `op` writes at `index`, over `existing`, with the given lock fields.
fn entry_for(
    op: &KvOp,
    index: Index,
    existing: Option<&KvEntry>,
    lock_index: u64,
    session: Option<String>,
) -> KvEntry {
    KvEntry {
        key: op.key.clone(),
        value: Arc::from(op.value.as_slice()),
        flags: op.flags,
        lock_index,
        session,
        create_index: existing.map_or(index, |e| e.create_index),
        modify_index: index,
    }
}

/// `set`: the value and flags change; the lock holder stays. LockIndex is the op's (0), as in Consul, whose
/// plain writes carry no LockIndex.
fn set(state: &mut State, index: Index, op: &KvOp, log: &mut ChangeLog) -> KvEntry {
    let existing = state.kv_get(&op.key);
    let session = existing.and_then(|e| e.session.clone());
    let entry = entry_for(op, index, existing, 0, session);
    store(state, entry, log)
}

fn cas(state: &mut State, index: Index, op: &KvOp, log: &mut ChangeLog) -> OpResult {
    let current = state.kv_get(&op.key).map(|e| e.modify_index);
    let fresh = match current {
        None => op.index == 0,
        Some(at) => op.index != 0 && op.index == at,
    };
    if !fresh {
        return Err(OpError::Failed(format!(
            "failed to set key {}, index is stale",
            go_quote(&op.key)
        )));
    }
    Ok(vec![set(state, index, op, log)])
}

fn lock(state: &mut State, index: Index, now_ms: u64, op: &KvOp, log: &mut ChangeLog) -> OpResult {
    let key = go_quote(&op.key);
    if state
        .lock_delay_until_ms(&op.key)
        .is_some_and(|until| until > now_ms)
    {
        return Err(OpError::Failed(format!(
            "failed to lock key {key} due to lock delay"
        )));
    }
    check_session_exists(state, &op.session)?;
    let existing = state.kv_get(&op.key);
    let lock_index = match existing {
        None => 1,
        Some(e) => match e.session.as_deref() {
            Some(s) if s == op.session => e.lock_index,
            Some(_) => {
                return Err(OpError::Failed(format!(
                    "failed to lock key {key}, lock is already held"
                )))
            }
            None => e.lock_index + 1,
        },
    };
    let entry = entry_for(op, index, existing, lock_index, Some(op.session.clone()));
    let shown = store(state, entry, log);
    state.lock_delays.remove(&op.key);
    Ok(vec![shown])
}

/// A lock or unlock needs a session, and a lock one that exists.
fn check_session_exists(state: &State, session: &str) -> Result<(), OpError> {
    if session.is_empty() {
        return Err(OpError::Invalid("missing session".to_string()));
    }
    if state.session_get(session).is_none() {
        return Err(OpError::Invalid(format!(
            "invalid session {}",
            go_quote(session)
        )));
    }
    Ok(())
}

fn unlock(state: &mut State, index: Index, op: &KvOp, log: &mut ChangeLog) -> OpResult {
    if op.session.is_empty() {
        return Err(OpError::Invalid("missing session".to_string()));
    }
    let existing = state.kv_get(&op.key);
    let Some(e) = existing.filter(|e| e.session.as_deref() == Some(op.session.as_str())) else {
        return Err(OpError::Failed(format!(
            "failed to unlock key {}, lock isn't held, or is held by another session",
            go_quote(&op.key)
        )));
    };
    let entry = entry_for(op, index, Some(e), e.lock_index, None);
    Ok(vec![store(state, entry, log)])
}

/// `delete-cas`: deletes when the index matches; a missing key is a success with nothing to do (Consul).
fn delete_cas(state: &mut State, index: Index, op: &KvOp, log: &mut ChangeLog) -> OpResult {
    match state.kv_get(&op.key) {
        None => Ok(Vec::new()),
        Some(e) if e.modify_index == op.index => {
            state.delete_entry(&op.key, index, log);
            Ok(Vec::new())
        }
        Some(_) => Err(OpError::Failed(format!(
            "failed to delete key {}, index is stale",
            go_quote(&op.key)
        ))),
    }
}

/// The lock-delay a session imposes on the keys it held, capped as Consul does.
pub(super) fn capped_lock_delay_ms(lock_delay_ms: u64) -> u64 {
    lock_delay_ms.min(LOCK_DELAY_MS_MAX)
}
