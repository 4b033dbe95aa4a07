//! State machine tests, named after the behaviour they pin down (Consul's, where it has one).

use super::codec::{decode_command, decode_outcome, encode_command, encode_outcome};
use super::txn::go_quote;
use super::*;
use crate::raft::rng::Rng;

mod sessions_txn;
mod state;

const NOW_MS: u64 = 1_000_000;

impl Changes {
    /// No table, no key.
    fn default_empty() -> Changes {
        Changes {
            tables: 0,
            kv_keys: Some(Vec::new()),
            service_names: Some(Vec::new()),
            node_names: Some(Vec::new()),
        }
    }
}

fn op(verb: KvVerb, key: &str, value: &[u8]) -> KvOp {
    KvOp {
        value: value.to_vec(),
        ..KvOp::new(verb, key)
    }
}

fn with_index(mut op: KvOp, index: Index) -> KvOp {
    op.index = index;
    op
}

fn with_session(mut op: KvOp, session: &str) -> KvOp {
    op.session = session.to_string();
    op
}

fn kv(fsm: &mut Fsm, index: Index, op: KvOp) -> Outcome {
    kv_at(fsm, index, NOW_MS, op)
}

fn kv_at(fsm: &mut Fsm, index: Index, now_ms: u64, op: KvOp) -> Outcome {
    fsm.apply(index, &Command::Kv { now_ms, op })
}

fn set(fsm: &mut Fsm, index: Index, key: &str, value: &[u8]) -> Outcome {
    kv(fsm, index, op(KvVerb::Set, key, value))
}

fn lock(fsm: &mut Fsm, index: Index, key: &str, session: &str, value: &[u8]) -> Outcome {
    kv(
        fsm,
        index,
        with_session(op(KvVerb::Lock, key, value), session),
    )
}

fn txn(fsm: &mut Fsm, index: Index, ops: Vec<KvOp>) -> TxnOutcome {
    match fsm.apply(
        index,
        &Command::Txn {
            now_ms: NOW_MS,
            ops,
        },
    ) {
        Outcome::Txn(t) => t,
        other => panic!("not a txn outcome: {other:?}"),
    }
}

fn spec(id: &str, behavior: Behavior, lock_delay_ms: u64, ttl_ms: u64) -> SessionSpec {
    SessionSpec {
        id: id.to_string(),
        name: format!("name-{id}"),
        node: "node1".to_string(),
        node_checks: vec!["serfHealth".to_string()],
        service_checks: vec![ServiceCheck {
            id: "svc-check".to_string(),
            namespace: String::new(),
        }],
        lock_delay_ms,
        behavior,
        ttl_ms,
        ttl: if ttl_ms > 0 {
            format!("{}s", ttl_ms / 1000)
        } else {
            String::new()
        },
    }
}

fn create(fsm: &mut Fsm, index: Index, spec: SessionSpec) -> Outcome {
    fsm.apply(
        index,
        &Command::SessionCreate {
            now_ms: NOW_MS,
            spec,
        },
    )
}

fn create_release(fsm: &mut Fsm, index: Index, id: &str) {
    let out = create(fsm, index, spec(id, Behavior::Release, 0, 0));
    assert_eq!(out, Outcome::SessionCreated(id.to_string()));
}

fn destroy(fsm: &mut Fsm, index: Index, now_ms: u64, id: &str) -> Outcome {
    fsm.apply(
        index,
        &Command::SessionDestroy {
            now_ms,
            id: id.to_string(),
        },
    )
}

fn entry(fsm: &Fsm, key: &str) -> KvEntry {
    fsm.state().kv_get(key).cloned().expect("entry exists")
}

fn results(outcome: TxnOutcome) -> Vec<KvEntry> {
    match outcome {
        TxnOutcome::Results(r) => r.into_iter().map(|r| r.kv).collect(),
        TxnOutcome::Errors(e) => panic!("txn failed: {e:?}"),
    }
}

fn errors(outcome: TxnOutcome) -> Vec<(usize, String)> {
    match outcome {
        TxnOutcome::Errors(e) => e.into_iter().map(|e| (e.op_index, e.what)).collect(),
        TxnOutcome::Results(r) => panic!("txn succeeded: {r:?}"),
    }
}

// ---- set and cas ----

#[test]
fn set_creates_an_entry_at_the_index() {
    let mut fsm = Fsm::new();
    assert_eq!(set(&mut fsm, 5, "a", b"1"), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!((&*e.value, e.flags, e.lock_index), (&b"1"[..], 0, 0));
    assert_eq!((e.create_index, e.modify_index, e.session), (5, 5, None));
    assert_eq!(fsm.state().table_indexes().kvs, 5);
}

#[test]
fn set_keeps_create_index_and_moves_modify_index_and_flags() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 5, "a", b"1");
    let mut write = op(KvVerb::Set, "a", b"2");
    write.flags = 42;
    kv(&mut fsm, 7, write);
    let e = entry(&fsm, "a");
    assert_eq!((&*e.value, e.flags), (&b"2"[..], 42));
    assert_eq!((e.create_index, e.modify_index), (5, 7));
}

#[test]
fn set_keeps_the_lock_holder_and_resets_lock_index_as_consul_does() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"held");
    assert_eq!(entry(&fsm, "a").lock_index, 1);
    assert_eq!(set(&mut fsm, 3, "a", b"plain"), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!(e.session.as_deref(), Some("s1"));
    assert_eq!(
        (e.lock_index, e.modify_index, &*e.value),
        (0, 3, &b"plain"[..])
    );
}

#[test]
fn set_of_identical_content_changes_nothing() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 5, "a", b"1");
    fsm.take_changes();
    assert_eq!(set(&mut fsm, 9, "a", b"1"), Outcome::Bool(true));
    assert_eq!(entry(&fsm, "a").modify_index, 5);
    assert_eq!(fsm.state().table_indexes().kvs, 5);
    assert_eq!(fsm.state().applied_index(), 9);
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn cas_with_index_zero_only_creates() {
    let mut fsm = Fsm::new();
    let create_only = || op(KvVerb::Cas, "a", b"1");
    assert_eq!(kv(&mut fsm, 3, create_only()), Outcome::Bool(true));
    assert_eq!(kv(&mut fsm, 4, create_only()), Outcome::Bool(false));
    assert_eq!(entry(&fsm, "a").modify_index, 3);
}

#[test]
fn cas_writes_only_when_the_index_matches_modify_index() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 3, "a", b"1");
    let stale = with_index(op(KvVerb::Cas, "a", b"2"), 2);
    assert_eq!(kv(&mut fsm, 4, stale), Outcome::Bool(false));
    let fresh = with_index(op(KvVerb::Cas, "a", b"3"), 3);
    assert_eq!(kv(&mut fsm, 5, fresh), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!(
        (&*e.value, e.create_index, e.modify_index),
        (&b"3"[..], 3, 5)
    );
}

#[test]
fn cas_with_an_index_on_a_missing_key_fails() {
    let mut fsm = Fsm::new();
    let cas = with_index(op(KvVerb::Cas, "a", b"1"), 7);
    assert_eq!(kv(&mut fsm, 8, cas), Outcome::Bool(false));
    assert!(fsm.state().kv_get("a").is_none());
}

#[test]
fn read_verbs_are_not_single_writes() {
    let mut fsm = Fsm::new();
    let out = kv(&mut fsm, 1, op(KvVerb::Get, "a", b""));
    assert_eq!(
        out,
        Outcome::Error("Invalid KVS operation 'get'".to_string())
    );
    assert_eq!(fsm.state().applied_index(), 1);
}

// ---- locks ----

#[test]
fn lock_without_a_session_is_an_error() {
    let mut fsm = Fsm::new();
    let out = kv(&mut fsm, 1, op(KvVerb::Lock, "a", b""));
    assert_eq!(out, Outcome::Error("missing session".to_string()));
    let out = kv(&mut fsm, 2, op(KvVerb::Unlock, "a", b""));
    assert_eq!(out, Outcome::Error("missing session".to_string()));
}

#[test]
fn lock_with_an_unknown_session_is_an_invalid_session_error() {
    let mut fsm = Fsm::new();
    let out = lock(&mut fsm, 1, "a", "nope", b"");
    assert_eq!(out, Outcome::Error("invalid session \"nope\"".to_string()));
    assert!(fsm.state().kv_get("a").is_none());
}

#[test]
fn lock_acquire_sets_the_session_and_counts_the_acquire() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    assert_eq!(lock(&mut fsm, 2, "a", "s1", b"v"), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!((e.session.as_deref(), e.lock_index), (Some("s1"), 1));
    assert_eq!(
        (e.create_index, e.modify_index, &*e.value),
        (2, 2, &b"v"[..])
    );
}

#[test]
fn lock_reacquire_by_the_holder_updates_the_value_only() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"v1");
    assert_eq!(lock(&mut fsm, 3, "a", "s1", b"v2"), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!(
        (e.lock_index, e.modify_index, &*e.value),
        (1, 3, &b"v2"[..])
    );
}

#[test]
fn lock_held_by_another_session_fails() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create_release(&mut fsm, 2, "s2");
    lock(&mut fsm, 3, "a", "s1", b"v1");
    assert_eq!(lock(&mut fsm, 4, "a", "s2", b"v2"), Outcome::Bool(false));
    let e = entry(&fsm, "a");
    assert_eq!((e.session.as_deref(), &*e.value), (Some("s1"), &b"v1"[..]));
}

#[test]
fn lock_by_a_new_holder_after_release_counts_another_acquire() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create_release(&mut fsm, 2, "s2");
    lock(&mut fsm, 3, "a", "s1", b"");
    let release = with_session(op(KvVerb::Unlock, "a", b""), "s1");
    assert_eq!(kv(&mut fsm, 4, release), Outcome::Bool(true));
    assert_eq!(lock(&mut fsm, 5, "a", "s2", b""), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!((e.session.as_deref(), e.lock_index), (Some("s2"), 2));
}

#[test]
fn lock_of_an_existing_unlocked_key_keeps_its_create_index() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    set(&mut fsm, 2, "a", b"");
    lock(&mut fsm, 3, "a", "s1", b"");
    let e = entry(&fsm, "a");
    assert_eq!((e.create_index, e.modify_index, e.lock_index), (2, 3, 1));
}

#[test]
fn unlock_by_the_holder_clears_the_session_and_bumps_modify_index() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"v");
    let release = with_session(op(KvVerb::Unlock, "a", b"w"), "s1");
    assert_eq!(kv(&mut fsm, 3, release), Outcome::Bool(true));
    let e = entry(&fsm, "a");
    assert_eq!((e.session, e.lock_index, e.modify_index), (None, 1, 3));
    assert_eq!(&*e.value, b"w");
}

#[test]
fn unlock_by_another_session_or_of_a_missing_key_fails() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create_release(&mut fsm, 2, "s2");
    lock(&mut fsm, 3, "a", "s1", b"");
    let other = with_session(op(KvVerb::Unlock, "a", b""), "s2");
    assert_eq!(kv(&mut fsm, 4, other), Outcome::Bool(false));
    let missing = with_session(op(KvVerb::Unlock, "b", b""), "s1");
    assert_eq!(kv(&mut fsm, 5, missing), Outcome::Bool(false));
    assert_eq!(entry(&fsm, "a").session.as_deref(), Some("s1"));
}

#[test]
fn a_plain_write_succeeds_on_a_locked_key_because_locks_are_advisory() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"");
    assert_eq!(set(&mut fsm, 3, "a", b"x"), Outcome::Bool(true));
    assert_eq!(&*entry(&fsm, "a").value, b"x");
}

// ---- deletes and tombstones ----

#[test]
fn delete_leaves_a_tombstone_and_moves_both_kv_table_indexes() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 2, "a/b", b"");
    assert_eq!(
        kv(&mut fsm, 4, op(KvVerb::Delete, "a/b", b"")),
        Outcome::Bool(true)
    );
    let state = fsm.state();
    assert!(state.kv_get("a/b").is_none());
    assert_eq!(state.tombstones.get("a/b"), Some(&4));
    let t = state.table_indexes();
    assert_eq!((t.kvs, t.tombstones), (4, 4));
    assert_eq!(state.kv_prefix_index("a/"), 4);
}

#[test]
fn delete_of_a_missing_key_is_true_and_changes_nothing() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 2, "a", b"");
    fsm.take_changes();
    assert_eq!(
        kv(&mut fsm, 6, op(KvVerb::Delete, "zz", b"")),
        Outcome::Bool(true)
    );
    let state = fsm.state();
    assert_eq!(
        state.table_indexes(),
        TableIndexes {
            kvs: 2,
            ..TableIndexes::default()
        }
    );
    assert!(state.tombstones.is_empty());
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn delete_tree_deletes_every_key_under_the_prefix_with_a_tombstone_each() {
    let mut fsm = Fsm::new();
    for (i, k) in ["a/1", "a/2", "a/b/3", "ab", "b"].iter().enumerate() {
        set(&mut fsm, 1 + i as u64, k, b"");
    }
    assert_eq!(
        kv(&mut fsm, 9, op(KvVerb::DeleteTree, "a/", b"")),
        Outcome::Bool(true)
    );
    let state = fsm.state();
    let left: Vec<&str> = state.kv_list("").map(|e| e.key.as_str()).collect();
    assert_eq!(left, ["ab", "b"]);
    let stones: Vec<(&String, &u64)> = state.tombstones.iter().collect();
    assert_eq!(stones.len(), 3);
    assert!(stones
        .iter()
        .all(|(k, at)| k.starts_with("a/") && **at == 9));
}

#[test]
fn delete_tree_of_an_empty_prefix_deletes_everything() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"");
    set(&mut fsm, 2, "b", b"");
    kv(&mut fsm, 3, op(KvVerb::DeleteTree, "", b""));
    assert_eq!(fsm.state().kv_list("").count(), 0);
    assert_eq!(fsm.state().kv_prefix_index(""), 3);
}

#[test]
fn delete_cas_deletes_only_at_the_matching_index() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 3, "a", b"");
    let zero = op(KvVerb::DeleteCas, "a", b"");
    assert_eq!(kv(&mut fsm, 4, zero), Outcome::Bool(false));
    let stale = with_index(op(KvVerb::DeleteCas, "a", b""), 2);
    assert_eq!(kv(&mut fsm, 5, stale), Outcome::Bool(false));
    assert!(fsm.state().kv_get("a").is_some());
    let fresh = with_index(op(KvVerb::DeleteCas, "a", b""), 3);
    assert_eq!(kv(&mut fsm, 6, fresh), Outcome::Bool(true));
    assert!(fsm.state().kv_get("a").is_none());
    assert_eq!(fsm.state().tombstones.get("a"), Some(&6));
}

#[test]
fn delete_cas_of_a_missing_key_succeeds_with_nothing_to_do_as_in_consul() {
    let mut fsm = Fsm::new();
    let cas = with_index(op(KvVerb::DeleteCas, "a", b""), 9);
    assert_eq!(kv(&mut fsm, 1, cas), Outcome::Bool(true));
    assert!(fsm.state().tombstones.is_empty());
}

#[test]
fn deleting_a_held_key_forgets_the_hold() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"");
    kv(&mut fsm, 3, op(KvVerb::Delete, "a", b""));
    assert!(fsm.state().keys_held_by("s1").is_empty());
    set(&mut fsm, 4, "a", b"again");
    destroy(&mut fsm, 5, NOW_MS, "s1");
    assert_eq!(
        entry(&fsm, "a").modify_index,
        4,
        "a new key is not released"
    );
}

#[test]
fn tombstone_reap_removes_tombstones_through_the_index() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"");
    set(&mut fsm, 2, "b", b"");
    kv(&mut fsm, 3, op(KvVerb::Delete, "a", b""));
    kv(&mut fsm, 4, op(KvVerb::Delete, "b", b""));
    let out = fsm.apply(5, &Command::TombstoneReap { through_index: 3 });
    assert_eq!(out, Outcome::Done);
    let state = fsm.state();
    assert_eq!(state.tombstones.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(state.applied_index(), 5);
}

// ---- reads and blocking indexes ----

#[test]
fn kv_list_returns_the_entries_under_a_prefix_in_key_order() {
    let mut fsm = Fsm::new();
    for (i, k) in ["b", "a/2", "a/1", "a", "ab"].iter().enumerate() {
        set(&mut fsm, 1 + i as u64, k, b"");
    }
    let state = fsm.state();
    let keys = |p: &str| -> Vec<String> { state.kv_list(p).map(|e| e.key.clone()).collect() };
    assert_eq!(keys("a/"), ["a/1", "a/2"]);
    assert_eq!(keys("a"), ["a", "a/1", "a/2", "ab"]);
    assert_eq!(keys(""), ["a", "a/1", "a/2", "ab", "b"]);
    assert!(keys("c").is_empty());
}

#[test]
fn kv_keys_groups_at_the_first_separator_after_the_prefix() {
    let mut fsm = Fsm::new();
    let keys = [
        "web/a", "web/b/c", "web/b/d", "web/e/", "web", "webx/1", "other",
    ];
    for (i, k) in keys.iter().enumerate() {
        set(&mut fsm, 1 + i as u64, k, b"");
    }
    let state = fsm.state();
    assert_eq!(
        state.kv_keys("web/", Some("/")),
        ["web/a", "web/b/", "web/e/"]
    );
    assert_eq!(state.kv_keys("web", Some("/")), ["web", "web/", "webx/"]);
    assert_eq!(
        state.kv_keys("web/", None),
        ["web/a", "web/b/c", "web/b/d", "web/e/"]
    );
    assert_eq!(state.kv_keys("web/", Some("")), state.kv_keys("web/", None));
    assert_eq!(
        state.kv_keys("", Some("/")),
        ["other", "web", "web/", "webx/"]
    );
}

#[test]
fn kv_key_index_is_the_modify_index_or_the_kv_tables_index() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 3, "a", b"");
    set(&mut fsm, 4, "b", b"");
    kv(&mut fsm, 6, op(KvVerb::Delete, "b", b""));
    let state = fsm.state();
    assert_eq!(state.kv_key_index("a"), 3);
    assert_eq!(state.kv_key_index("b"), 6);
    assert_eq!(state.kv_key_index("never"), 6);
}

#[test]
fn kv_prefix_index_follows_consuls_list_rule() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 3, "a/1", b"");
    set(&mut fsm, 5, "b/1", b"");
    set(&mut fsm, 6, "c/1", b"");
    kv(&mut fsm, 7, op(KvVerb::Delete, "c/1", b""));
    set(&mut fsm, 8, "z", b"");
    let state = fsm.state();
    assert_eq!(
        state.kv_prefix_index("a/"),
        3,
        "max entry index under the prefix"
    );
    assert_eq!(
        state.kv_prefix_index("c/"),
        7,
        "tombstones under the prefix count"
    );
    assert_eq!(
        state.kv_prefix_index("nothing/"),
        8,
        "nothing under it: the table index"
    );
    assert_eq!(state.kv_prefix_index(""), 8, "everything: the table index");
    drop(state);
    fsm.apply(9, &Command::TombstoneReap { through_index: 7 });
    assert_eq!(
        fsm.state().kv_prefix_index("c/"),
        8,
        "reaped: back to the table index"
    );
}

#[test]
fn an_empty_state_has_zero_indexes() {
    let state = Fsm::new().state();
    assert_eq!(state.applied_index(), 0);
    assert_eq!(state.kv_key_index("a"), 0);
    assert_eq!(state.kv_prefix_index(""), 0);
    assert_eq!(state.table_indexes(), TableIndexes::default());
}
