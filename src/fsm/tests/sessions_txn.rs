//! Sessions (create, renew, destroy, lock-delay) and transactions.

use super::*;

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
