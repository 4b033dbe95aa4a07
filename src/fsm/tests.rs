//! State machine tests, named after the behaviour they pin down (Consul's, where it has one).

use super::codec::{decode_command, decode_outcome, encode_command, encode_outcome};
use super::txn::go_quote;
use super::*;
use crate::raft::rng::Rng;

const NOW_MS: u64 = 1_000_000;

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

// ---- sessions ----

#[test]
fn session_create_stores_the_spec_at_the_index_with_a_deadline_of_twice_the_ttl() {
    let mut fsm = Fsm::new();
    let s = spec("s1", Behavior::Release, 15_000, 30_000);
    assert_eq!(
        create(&mut fsm, 4, s.clone()),
        Outcome::SessionCreated("s1".into())
    );
    let state = fsm.state();
    let stored = state.session_get("s1").expect("stored");
    assert_eq!(
        (&stored.spec, stored.create_index, stored.modify_index),
        (&s, 4, 4)
    );
    assert_eq!(state.session_deadline_ms("s1"), Some(NOW_MS + 60_000));
    assert_eq!(state.table_indexes().sessions, 4);
}

#[test]
fn session_without_ttl_has_no_deadline() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    assert_eq!(fsm.state().session_deadline_ms("s1"), None);
    assert!(fsm.state().session_deadlines().is_empty());
}

#[test]
fn session_create_without_an_id_is_an_error() {
    let mut fsm = Fsm::new();
    let out = create(&mut fsm, 1, spec("", Behavior::Release, 0, 0));
    assert_eq!(out, Outcome::Error("Missing session ID".to_string()));
    assert_eq!(fsm.state().sessions().count(), 0);
}

#[test]
fn session_renew_moves_the_deadline_and_nothing_else() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 4, spec("s1", Behavior::Release, 0, 10_000));
    fsm.take_changes();
    let renew = Command::SessionRenew {
        now_ms: NOW_MS + 5_000,
        id: "s1".to_string(),
    };
    let Outcome::SessionRenewed(Some(s)) = fsm.apply(9, &renew) else {
        panic!("renewed");
    };
    assert_eq!((s.create_index, s.modify_index), (4, 4));
    let state = fsm.state();
    assert_eq!(state.session_deadline_ms("s1"), Some(NOW_MS + 25_000));
    assert_eq!(state.table_indexes().sessions, 4);
    assert_eq!(state.applied_index(), 9);
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn session_renew_of_an_unknown_session_is_none() {
    let mut fsm = Fsm::new();
    let renew = Command::SessionRenew {
        now_ms: NOW_MS,
        id: "nope".to_string(),
    };
    assert_eq!(fsm.apply(1, &renew), Outcome::SessionRenewed(None));
}

#[test]
fn session_lists_are_id_ascending_and_by_node() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s2", Behavior::Release, 0, 10_000));
    create(&mut fsm, 2, spec("s1", Behavior::Release, 0, 20_000));
    let mut other = spec("s0", Behavior::Release, 0, 0);
    other.node = "node2".to_string();
    create(&mut fsm, 3, other);
    let state = fsm.state();
    let ids: Vec<&str> = state.sessions().map(|s| s.spec.id.as_str()).collect();
    assert_eq!(ids, ["s0", "s1", "s2"]);
    let on_node1: Vec<&str> = state
        .sessions_for_node("node1")
        .iter()
        .map(|s| s.spec.id.as_str())
        .collect();
    assert_eq!(on_node1, ["s1", "s2"]);
    assert_eq!(
        state.session_deadlines(),
        [
            ("s1".to_string(), NOW_MS + 40_000),
            ("s2".to_string(), NOW_MS + 20_000)
        ]
    );
}

#[test]
fn session_destroy_with_release_clears_holders_and_sets_the_lock_delay() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Release, 15_000, 10_000));
    lock(&mut fsm, 2, "a", "s1", b"va");
    lock(&mut fsm, 3, "b", "s1", b"vb");
    set(&mut fsm, 4, "c", b"free");
    assert_eq!(destroy(&mut fsm, 7, NOW_MS, "s1"), Outcome::Bool(true));
    let state = fsm.state();
    assert!(state.session_get("s1").is_none());
    assert_eq!(state.session_deadline_ms("s1"), None);
    for key in ["a", "b"] {
        let e = state.kv_get(key).expect("kept");
        assert_eq!(
            (e.session.as_deref(), e.modify_index, e.lock_index),
            (None, 7, 1)
        );
        assert_eq!(state.lock_delay_until_ms(key), Some(NOW_MS + 15_000));
    }
    assert_eq!(state.kv_get("c").map(|e| e.modify_index), Some(4));
    assert_eq!(state.lock_delay_until_ms("c"), None);
    assert_eq!(state.table_indexes().sessions, 7);
    assert_eq!(state.table_indexes().kvs, 7);
}

#[test]
fn session_destroy_with_delete_deletes_held_keys_leaving_tombstones() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Delete, 5_000, 0));
    lock(&mut fsm, 2, "a", "s1", b"");
    set(&mut fsm, 3, "c", b"");
    destroy(&mut fsm, 8, NOW_MS, "s1");
    let state = fsm.state();
    assert!(state.kv_get("a").is_none());
    assert!(state.kv_get("c").is_some());
    assert_eq!(state.tombstones.get("a"), Some(&8));
    assert_eq!(state.lock_delay_until_ms("a"), Some(NOW_MS + 5_000));
}

#[test]
fn lock_delay_refuses_a_lock_until_it_ends() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Release, 15_000, 0));
    create_release(&mut fsm, 2, "s2");
    lock(&mut fsm, 3, "a", "s1", b"");
    destroy(&mut fsm, 4, NOW_MS, "s1");
    let take = || with_session(op(KvVerb::Lock, "a", b""), "s2");
    assert_eq!(
        kv_at(&mut fsm, 5, NOW_MS + 14_999, take()),
        Outcome::Bool(false)
    );
    assert_eq!(entry(&fsm, "a").session, None);
    assert_eq!(
        kv_at(&mut fsm, 6, NOW_MS + 15_000, take()),
        Outcome::Bool(true)
    );
    assert_eq!(entry(&fsm, "a").lock_index, 2);
    assert_eq!(
        fsm.state().lock_delay_until_ms("a"),
        None,
        "an ended delay is forgotten"
    );
}

#[test]
fn lock_delay_is_capped_at_the_maximum() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Release, 3_600_000, 0));
    lock(&mut fsm, 2, "a", "s1", b"");
    destroy(&mut fsm, 3, NOW_MS, "s1");
    assert_eq!(
        fsm.state().lock_delay_until_ms("a"),
        Some(NOW_MS + LOCK_DELAY_MS_MAX)
    );
}

#[test]
fn lock_delay_of_zero_sets_no_delay() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"");
    destroy(&mut fsm, 3, NOW_MS, "s1");
    assert_eq!(fsm.state().lock_delay_until_ms("a"), None);
}

#[test]
fn ended_lock_delays_are_forgotten_at_the_next_destroy() {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Release, 1_000, 0));
    lock(&mut fsm, 2, "a", "s1", b"");
    destroy(&mut fsm, 3, NOW_MS, "s1");
    create_release(&mut fsm, 4, "s2");
    destroy(&mut fsm, 5, NOW_MS + 1_000, "s2");
    assert_eq!(fsm.state().lock_delay_until_ms("a"), None);
}

#[test]
fn session_destroy_is_idempotent() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    assert_eq!(destroy(&mut fsm, 2, NOW_MS, "s1"), Outcome::Bool(true));
    fsm.take_changes();
    assert_eq!(destroy(&mut fsm, 3, NOW_MS, "s1"), Outcome::Bool(true));
    assert_eq!(fsm.state().table_indexes().sessions, 2);
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn session_destroy_releases_only_its_own_keys() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create_release(&mut fsm, 2, "s2");
    lock(&mut fsm, 3, "a", "s1", b"");
    lock(&mut fsm, 4, "b", "s2", b"");
    destroy(&mut fsm, 5, NOW_MS, "s1");
    assert_eq!(entry(&fsm, "b").session.as_deref(), Some("s2"));
    assert_eq!(entry(&fsm, "b").modify_index, 4);
    assert_eq!(fsm.state().keys_held_by("s2"), ["b"]);
}

// ---- transactions ----

#[test]
fn txn_results_carry_values_only_for_gets() {
    let mut fsm = Fsm::new();
    let out = txn(
        &mut fsm,
        3,
        vec![
            op(KvVerb::Set, "a", b"1"),
            op(KvVerb::Get, "a", b""),
            op(KvVerb::Set, "b", b"2"),
        ],
    );
    let r = results(out);
    assert_eq!(r.len(), 3);
    assert!(r[0].value.is_empty() && r[2].value.is_empty());
    assert_eq!((&*r[1].value, r[1].modify_index), (&b"1"[..], 3));
    assert_eq!(
        (r[0].key.as_str(), r[0].create_index, r[0].modify_index),
        ("a", 3, 3)
    );
    assert_eq!(&*entry(&fsm, "b").value, b"2");
}

#[test]
fn txn_deletes_and_check_not_exists_return_no_result() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"");
    let out = txn(
        &mut fsm,
        2,
        vec![
            op(KvVerb::Delete, "a", b""),
            op(KvVerb::CheckNotExists, "a", b""),
            op(KvVerb::DeleteTree, "x/", b""),
            op(KvVerb::DeleteCas, "zz", b""),
        ],
    );
    assert!(results(out).is_empty());
}

#[test]
fn txn_later_operations_see_earlier_ones() {
    let mut fsm = Fsm::new();
    let out = txn(
        &mut fsm,
        4,
        vec![
            op(KvVerb::Set, "a", b"1"),
            with_index(op(KvVerb::Cas, "a", b"2"), 4),
            with_index(op(KvVerb::CheckIndex, "a", b""), 4),
            op(KvVerb::Get, "a", b""),
        ],
    );
    let r = results(out);
    assert_eq!(&*r[3].value, b"2");
}

#[test]
fn txn_rollback_leaves_the_state_untouched() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"old");
    create_release(&mut fsm, 2, "s1");
    fsm.take_changes();
    let before = fsm.state();
    let out = txn(
        &mut fsm,
        3,
        vec![
            op(KvVerb::Set, "a", b"new"),
            op(KvVerb::Delete, "a", b""),
            with_session(op(KvVerb::Lock, "b", b""), "s1"),
            with_index(op(KvVerb::Cas, "c", b""), 99),
        ],
    );
    assert_eq!(errors(out).len(), 1);
    let after = fsm.state();
    assert_eq!(after.applied_index(), 3);
    assert_eq!(
        State {
            applied_index: 2,
            ..after
        },
        before
    );
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn txn_reports_every_failed_operation_with_its_position() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"");
    let out = txn(
        &mut fsm,
        2,
        vec![
            op(KvVerb::Get, "missing", b""),
            op(KvVerb::Set, "b", b""),
            op(KvVerb::CheckNotExists, "a", b""),
        ],
    );
    assert_eq!(
        errors(out),
        [
            (0, "key \"missing\" doesn't exist".to_string()),
            (2, "key \"a\" exists".to_string())
        ]
    );
    assert!(fsm.state().kv_get("b").is_none());
}

/// The texts Consul's clients match on, verb by verb.
#[test]
fn txn_error_texts_match_consul() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create(&mut fsm, 2, spec("s2", Behavior::Release, 10_000, 0));
    lock(&mut fsm, 3, "held", "s1", b"");
    set(&mut fsm, 4, "free", b"");
    lock(&mut fsm, 5, "delayed", "s2", b"");
    destroy(&mut fsm, 6, NOW_MS, "s2");
    let cases: Vec<(KvOp, &str)> = vec![
        (
            with_index(op(KvVerb::Cas, "free", b""), 1),
            "failed to set key \"free\", index is stale",
        ),
        (
            with_session(op(KvVerb::Lock, "held", b""), "s1x"),
            "invalid session \"s1x\"",
        ),
        (op(KvVerb::Lock, "held", b""), "missing session"),
        (
            with_session(op(KvVerb::Lock, "delayed", b""), "s1"),
            "failed to lock key \"delayed\" due to lock delay",
        ),
        (
            with_session(op(KvVerb::Unlock, "free", b""), "s1"),
            "failed to unlock key \"free\", lock isn't held, or is held by another session",
        ),
        (op(KvVerb::Get, "nope", b""), "key \"nope\" doesn't exist"),
        (
            with_index(op(KvVerb::CheckIndex, "free", b""), 3),
            "failed index check for key \"free\", current modify index 4 != 3",
        ),
        (
            op(KvVerb::CheckIndex, "nope", b""),
            "failed to check index, key \"nope\" doesn't exist",
        ),
        (
            with_session(op(KvVerb::CheckSession, "held", b""), "s2"),
            "failed session check for key \"held\", current session \"s1\" != \"s2\"",
        ),
        (
            op(KvVerb::CheckSession, "nope", b""),
            "failed to check session, key \"nope\" doesn't exist",
        ),
        (
            op(KvVerb::CheckNotExists, "free", b""),
            "key \"free\" exists",
        ),
        (
            with_index(op(KvVerb::DeleteCas, "free", b""), 3),
            "failed to delete key \"free\", index is stale",
        ),
    ];
    for (i, (o, text)) in cases.into_iter().enumerate() {
        let got = errors(txn(&mut fsm, 10 + i as u64, vec![o.clone()]));
        assert_eq!(got, [(0, text.to_string())], "{o:?}");
    }
    let lock_held = with_session(op(KvVerb::Lock, "held", b""), "s2");
    create_release(&mut fsm, 30, "s2");
    assert_eq!(
        errors(txn(&mut fsm, 31, vec![lock_held])),
        [(
            0,
            "failed to lock key \"held\", lock is already held".to_string()
        )]
    );
}

#[test]
fn txn_checks_return_the_entry_without_its_value() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    lock(&mut fsm, 2, "a", "s1", b"secret");
    let r = results(txn(
        &mut fsm,
        3,
        vec![
            with_index(op(KvVerb::CheckIndex, "a", b""), 2),
            with_session(op(KvVerb::CheckSession, "a", b""), "s1"),
        ],
    ));
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|e| e.value.is_empty() && e.modify_index == 2));
}

#[test]
fn txn_get_or_empty_of_a_missing_key_returns_an_empty_entry() {
    let mut fsm = Fsm::new();
    let r = results(txn(
        &mut fsm,
        1,
        vec![op(KvVerb::GetOrEmpty, "a", b"ignored")],
    ));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].key.as_str(), r[0].value.is_empty()), ("a", true));
    assert_eq!(
        (r[0].create_index, r[0].modify_index, r[0].session.clone()),
        (0, 0, None)
    );
}

#[test]
fn txn_get_tree_returns_every_entry_under_the_prefix_with_values() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "p/a", b"1");
    set(&mut fsm, 2, "p/b", b"2");
    set(&mut fsm, 3, "q", b"3");
    let r = results(txn(&mut fsm, 4, vec![op(KvVerb::GetTree, "p/", b"")]));
    let got: Vec<(&str, &[u8])> = r.iter().map(|e| (e.key.as_str(), &*e.value)).collect();
    assert_eq!(got, [("p/a", &b"1"[..]), ("p/b", &b"2"[..])]);
}

#[test]
fn txn_lock_and_unlock_behave_as_single_writes() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    let r = results(txn(
        &mut fsm,
        2,
        vec![with_session(op(KvVerb::Lock, "a", b"v"), "s1")],
    ));
    assert_eq!((r[0].session.as_deref(), r[0].lock_index), (Some("s1"), 1));
    assert!(r[0].value.is_empty());
    results(txn(
        &mut fsm,
        3,
        vec![with_session(op(KvVerb::Unlock, "a", b"v"), "s1")],
    ));
    assert_eq!(entry(&fsm, "a").session, None);
}

#[test]
fn txn_read_evaluates_reads_on_the_state_without_changing_it() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"1");
    let state = fsm.state();
    let r = results(state.txn_read(&[op(KvVerb::Get, "a", b""), op(KvVerb::GetTree, "", b"")]));
    assert_eq!(r.len(), 2);
    let e = errors(state.txn_read(&[op(KvVerb::Get, "b", b""), op(KvVerb::Set, "a", b"")]));
    assert_eq!(e[0], (0, "key \"b\" doesn't exist".to_string()));
    assert_eq!(e[1].0, 1);
    assert_eq!(state.kv_get("a").map(|e| &*e.value), Some(&b"1"[..]));
}

#[test]
fn an_empty_txn_succeeds_with_no_results() {
    let mut fsm = Fsm::new();
    assert_eq!(txn(&mut fsm, 1, vec![]), TxnOutcome::Results(vec![]));
}

// ---- applied index, codec ----

#[test]
fn applied_index_moves_with_every_command_even_refused_ones() {
    let mut fsm = Fsm::new();
    kv(&mut fsm, 3, with_index(op(KvVerb::Cas, "a", b""), 9));
    assert_eq!(fsm.state().applied_index(), 3);
    lock(&mut fsm, 4, "a", "nope", b"");
    assert_eq!(fsm.state().applied_index(), 4);
    fsm.apply_bytes(5, b"\x01garbage");
    assert_eq!(fsm.state().applied_index(), 5);
}

#[test]
fn apply_bytes_decodes_applies_and_encodes_the_outcome() {
    let mut fsm = Fsm::new();
    let command = Command::Kv {
        now_ms: 0,
        op: op(KvVerb::Set, "a", b"1"),
    };
    let out = fsm.apply_bytes(1, &encode_command(&command));
    assert_eq!(decode_outcome(&out), Ok(Outcome::Bool(true)));
    let bad = decode_outcome(&fsm.apply_bytes(2, &[])).expect("an encoded outcome");
    assert!(matches!(bad, Outcome::Error(m) if m.starts_with("undecodable command")));
}

/// A random command from the seeded generator (keys and sessions from small sets so they collide).
fn random_command(rng: &mut Rng) -> Command {
    let key = format!("k/{}", rng.range(0, 6));
    let session = format!("s{}", rng.range(0, 3));
    let now_ms = NOW_MS + rng.range(0, 100_000);
    let verbs = [
        KvVerb::Set,
        KvVerb::Cas,
        KvVerb::Lock,
        KvVerb::Unlock,
        KvVerb::Delete,
        KvVerb::DeleteTree,
        KvVerb::DeleteCas,
    ];
    let value: Vec<u8> = (0..rng.range(0, 8)).map(|_| rng.next_u64() as u8).collect();
    let one = |rng: &mut Rng| KvOp {
        verb: verbs[rng.range(0, verbs.len() as u64) as usize],
        key: key.clone(),
        value: value.clone(),
        flags: rng.range(0, 3),
        index: rng.range(0, 40),
        session: session.clone(),
    };
    match rng.range(0, 8) {
        0 => Command::SessionCreate {
            now_ms,
            spec: spec(
                &session,
                if rng.range(0, 2) == 0 {
                    Behavior::Release
                } else {
                    Behavior::Delete
                },
                rng.range(0, 3) * 1000,
                rng.range(0, 3) * 10_000,
            ),
        },
        1 => Command::SessionDestroy {
            now_ms,
            id: session,
        },
        2 => Command::SessionRenew {
            now_ms,
            id: session,
        },
        3 => Command::Txn {
            now_ms,
            ops: (0..rng.range(0, 4)).map(|_| one(rng)).collect(),
        },
        4 => Command::TombstoneReap {
            through_index: rng.range(0, 40),
        },
        _ => Command::Kv {
            now_ms,
            op: one(rng),
        },
    }
}

#[test]
fn commands_and_outcomes_round_trip_through_the_codec() {
    let mut rng = Rng::new(7);
    let mut fsm = Fsm::new();
    for index in 1..=300 {
        let command = random_command(&mut rng);
        assert_eq!(
            decode_command(&encode_command(&command)),
            Ok(command.clone())
        );
        let outcome = fsm.apply(index, &command);
        assert_eq!(decode_outcome(&encode_outcome(&outcome)), Ok(outcome));
    }
}

#[test]
fn bad_command_bytes_are_errors_never_panics() {
    let command = Command::Txn {
        now_ms: 5,
        ops: vec![op(KvVerb::Set, "key", b"value"), op(KvVerb::Get, "k", b"")],
    };
    let bytes = encode_command(&command);
    for cut in 0..bytes.len() {
        assert!(decode_command(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_command(&longer).unwrap_err().contains("trailing"));
    let mut other_version = bytes.clone();
    other_version[0] = 2;
    assert!(decode_command(&other_version)
        .unwrap_err()
        .contains("version"));
    let mut rng = Rng::new(11);
    for _ in 0..2000 {
        let mut flipped = bytes.clone();
        let at = rng.range(1, bytes.len() as u64) as usize;
        flipped[at] ^= 1 << rng.range(0, 8);
        let _ = decode_command(&flipped);
    }
    // A huge declared length must not allocate it.
    assert!(decode_command(&[1, 0xc6, 0xff, 0xff, 0xff, 0xff]).is_err());
}

// ---- snapshots ----

/// A state with a bit of everything: entries, a held lock, tombstones, sessions with and without TTL, a
/// lock-delay.
fn busy_fsm() -> Fsm {
    let mut fsm = Fsm::new();
    create(&mut fsm, 1, spec("s1", Behavior::Release, 1_000, 20_000));
    create(&mut fsm, 2, spec("s2", Behavior::Delete, 2_000, 0));
    create(&mut fsm, 3, spec("s3", Behavior::Release, 5_000, 0));
    set(&mut fsm, 4, "a", b"alpha");
    let mut flagged = op(KvVerb::Set, "b/1", &[0, 1, 2, 255]);
    flagged.flags = 77;
    kv(&mut fsm, 5, flagged);
    lock(&mut fsm, 6, "b/2", "s1", b"held");
    lock(&mut fsm, 7, "c", "s2", b"");
    set(&mut fsm, 8, "d", b"");
    kv(&mut fsm, 9, op(KvVerb::Delete, "d", b""));
    lock(&mut fsm, 10, "e", "s3", b"");
    destroy(&mut fsm, 11, NOW_MS, "s3");
    fsm
}

#[test]
fn snapshot_round_trip_equals_the_state() {
    let fsm = busy_fsm();
    let restored = Fsm::restore(&fsm.snapshot()).expect("restores");
    assert_eq!(restored.state(), fsm.state());
    let state = restored.state();
    assert_eq!(state.lock_delay_until_ms("e"), Some(NOW_MS + 5_000));
    assert_eq!(state.session_deadline_ms("s1"), Some(NOW_MS + 40_000));
    assert_eq!(state.keys_held_by("s1"), ["b/2"]);
    assert_eq!(state.applied_index(), 11);
}

#[test]
fn a_restored_state_machine_applies_as_the_original_does() {
    let mut original = busy_fsm();
    let mut restored = Fsm::restore(&original.snapshot()).expect("restores");
    let mut rng = Rng::new(3);
    for index in 12..200 {
        let command = random_command(&mut rng);
        assert_eq!(
            original.apply(index, &command),
            restored.apply(index, &command)
        );
    }
    assert_eq!(original.state(), restored.state());
}

#[test]
fn snapshot_of_an_empty_state_round_trips() {
    let fsm = Fsm::new();
    assert_eq!(
        Fsm::restore(&fsm.snapshot()).expect("restores").state(),
        fsm.state()
    );
}

#[test]
fn restore_reads_an_unaligned_buffer() {
    let fsm = busy_fsm();
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&fsm.snapshot());
    let restored = Fsm::restore(&shifted[1..]).expect("restores");
    assert_eq!(restored.state(), fsm.state());
}

#[test]
fn restore_of_every_cut_of_a_snapshot_is_an_error() {
    let bytes = busy_fsm().snapshot();
    for cut in 0..bytes.len() {
        assert!(Fsm::restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn restore_of_a_snapshot_with_any_flipped_bit_is_an_error() {
    let bytes = busy_fsm().snapshot();
    for at in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << bit;
            assert!(Fsm::restore(&bad).is_err(), "bit {bit} of byte {at}");
        }
    }
}

#[test]
fn restore_refuses_other_formats_and_garbage() {
    let bytes = busy_fsm().snapshot();
    let mut other = bytes.clone();
    other[8] = 1;
    assert!(Fsm::restore(&other).unwrap_err().contains("format"));
    assert!(Fsm::restore(b"not a snapshot at all, definitely not").is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Fsm::restore(&longer).is_err());
}

#[test]
fn restore_reports_every_table_changed() {
    let mut restored = Fsm::restore(&busy_fsm().snapshot()).expect("restores");
    let changes = restored.take_changes();
    let all = table::KVS | table::SESSIONS | table::NODES | table::SERVICES | table::CHECKS;
    assert_eq!(changes.tables, all);
    assert_eq!(changes.kv_keys, None);
    assert_eq!(changes.service_names, None);
    assert_eq!(changes.node_names, None);
    assert_eq!(restored.take_changes(), Changes::default_empty());
}

// ---- changes ----

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

#[test]
fn changes_list_kv_keys_in_order_of_first_change_without_duplicates() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "b", b"1");
    set(&mut fsm, 2, "a", b"1");
    set(&mut fsm, 3, "b", b"2");
    kv(&mut fsm, 4, op(KvVerb::Delete, "a", b""));
    let changes = fsm.take_changes();
    assert_eq!(changes.tables, table::KVS);
    assert_eq!(
        changes.kv_keys,
        Some(vec!["b".to_string(), "a".to_string()])
    );
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn changes_include_keys_released_or_deleted_by_a_session_destroy() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    create(&mut fsm, 2, spec("s2", Behavior::Delete, 0, 0));
    lock(&mut fsm, 3, "x", "s1", b"");
    lock(&mut fsm, 4, "y", "s2", b"");
    fsm.take_changes();
    destroy(&mut fsm, 5, NOW_MS, "s1");
    destroy(&mut fsm, 6, NOW_MS, "s2");
    let changes = fsm.take_changes();
    assert_eq!(changes.tables, table::KVS | table::SESSIONS);
    assert_eq!(
        changes.kv_keys,
        Some(vec!["x".to_string(), "y".to_string()])
    );
}

#[test]
fn changes_of_a_session_create_name_the_sessions_table_only() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    let changes = fsm.take_changes();
    assert_eq!(
        (changes.tables, changes.kv_keys),
        (table::SESSIONS, Some(vec![]))
    );
}

#[test]
fn changes_record_nothing_for_refused_writes() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", b"");
    fsm.take_changes();
    kv(&mut fsm, 2, op(KvVerb::Cas, "a", b""));
    lock(&mut fsm, 3, "a", "nope", b"");
    txn(
        &mut fsm,
        4,
        vec![op(KvVerb::Set, "b", b""), op(KvVerb::Get, "zz", b"")],
    );
    assert_eq!(fsm.take_changes(), Changes::default_empty());
}

#[test]
fn changes_past_the_key_cap_report_every_key() {
    let mut fsm = Fsm::new();
    for i in 0..CHANGED_KEYS_MAX as u64 {
        set(&mut fsm, 1 + i, &format!("k{i:05}"), b"");
    }
    let changes = fsm.take_changes();
    assert_eq!(changes.kv_keys.map(|k| k.len()), Some(CHANGED_KEYS_MAX));
    for i in 0..=CHANGED_KEYS_MAX as u64 {
        set(&mut fsm, 5000 + i, &format!("k{i:05}"), b"x");
    }
    let changes = fsm.take_changes();
    assert_eq!((changes.tables, changes.kv_keys), (table::KVS, None));
    set(&mut fsm, 9000, "again", b"");
    assert_eq!(fsm.take_changes().kv_keys, Some(vec!["again".to_string()]));
}

#[test]
fn a_delete_tree_over_the_key_cap_in_one_txn_reports_every_key() {
    let mut fsm = Fsm::new();
    let ops: Vec<KvOp> = (0..=CHANGED_KEYS_MAX)
        .map(|i| op(KvVerb::Set, &format!("t/{i:05}"), b""))
        .collect();
    for chunk in ops.chunks(TXN_OPS_MAX) {
        results(txn(&mut fsm, 1, chunk.to_vec()));
    }
    fsm.take_changes();
    kv(&mut fsm, 2, op(KvVerb::DeleteTree, "t/", b""));
    assert_eq!(fsm.take_changes().kv_keys, None);
    assert_eq!(fsm.state().kv_list("t/").count(), 0);
}

// ---- structural sharing ----

#[test]
fn a_published_state_is_unaffected_by_later_applies() {
    let mut fsm = Fsm::new();
    create_release(&mut fsm, 1, "s1");
    set(&mut fsm, 2, "a", b"1");
    let published = fsm.state();
    set(&mut fsm, 3, "a", b"2");
    set(&mut fsm, 4, "b", b"");
    lock(&mut fsm, 5, "c", "s1", b"");
    destroy(&mut fsm, 6, NOW_MS, "s1");
    kv(&mut fsm, 7, op(KvVerb::Delete, "a", b""));
    assert_eq!(published.applied_index(), 2);
    assert_eq!(published.kv_get("a").map(|e| &*e.value), Some(&b"1"[..]));
    assert!(published.kv_get("b").is_none());
    assert!(published.session_get("s1").is_some());
    assert!(published.tombstones.is_empty());
    assert_eq!(published.table_indexes().kvs, 2);
}

#[test]
fn a_published_state_shares_values_with_the_live_one() {
    let mut fsm = Fsm::new();
    set(&mut fsm, 1, "a", &[7u8; 4096]);
    let published = fsm.state();
    set(&mut fsm, 2, "b", b"");
    let (old, new) = (published.kv_get("a"), fsm.state.kv_get("a"));
    let (old, new) = (old.expect("a"), new.expect("a"));
    assert!(std::sync::Arc::ptr_eq(&old.value, &new.value));
}

// ---- invariants under random commands ----

/// The hold index names exactly the entries' holders, and every holder is a live session.
fn check_holds(state: &State) {
    let from_entries: Vec<(String, String)> = state
        .kv_list("")
        .filter_map(|e| e.session.clone().map(|s| (s, e.key.clone())))
        .collect();
    let mut sorted = from_entries.clone();
    sorted.sort();
    let held: Vec<(String, String)> = state.held.iter().cloned().collect();
    assert_eq!(held, sorted);
    for (s, _) in &held {
        assert!(state.session_get(s).is_some(), "held by dead session {s}");
    }
}

#[test]
fn random_commands_keep_holds_consistent_and_snapshots_exact() {
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let mut fsm = Fsm::new();
        for index in 1..=150 {
            let command = random_command(&mut rng);
            fsm.apply(index, &command);
            check_holds(&fsm.state());
            if index % 25 == 0 {
                let restored = Fsm::restore(&fsm.snapshot()).expect("restores");
                assert_eq!(restored.state(), fsm.state(), "seed {seed} index {index}");
            }
        }
    }
}

// ---- names ----

#[test]
fn kv_verbs_parse_from_and_print_as_consuls_names() {
    let names = [
        "set",
        "cas",
        "lock",
        "unlock",
        "get",
        "get-or-empty",
        "get-tree",
        "check-index",
        "check-session",
        "check-not-exists",
        "delete",
        "delete-tree",
        "delete-cas",
    ];
    for name in names {
        let verb = KvVerb::parse(name).expect(name);
        assert_eq!(verb.as_str(), name);
        assert_eq!(
            verb.is_read(),
            name.starts_with("get") || name.starts_with("check")
        );
    }
    assert_eq!(KvVerb::parse("SET"), None);
    assert_eq!(KvVerb::parse(""), None);
}

#[test]
fn behaviors_parse_from_and_print_as_consuls_names() {
    assert_eq!(Behavior::parse("release"), Some(Behavior::Release));
    assert_eq!(Behavior::parse("delete"), Some(Behavior::Delete));
    assert_eq!(Behavior::parse("keep"), None);
    assert_eq!(Behavior::Delete.as_str(), "delete");
    assert_eq!(Behavior::default().as_str(), "release");
}

#[test]
fn messages_quote_keys_as_go_does() {
    assert_eq!(go_quote("a/b"), "\"a/b\"");
    assert_eq!(go_quote("q\"\\\n\t"), "\"q\\\"\\\\\\n\\t\"");
    assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
}

#[test]
fn restore_of_a_damaged_payload_with_a_matching_crc_is_an_error_or_a_valid_state() {
    let bytes = busy_fsm().snapshot();
    let header = snapshot::SNAPSHOT_HEADER_BYTES;
    let mut refused = 0;
    for at in header..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        let crc = snapshot::crc32(&bad[header..]);
        bad[12..16].copy_from_slice(&crc.to_le_bytes());
        if let Ok(restored) = Fsm::restore(&bad) {
            check_holds(&restored.state());
        } else {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "bytecheck and the order checks refuse some damage"
    );
}
