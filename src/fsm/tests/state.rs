//! The applied index, the codec, snapshots, change tracking, structural sharing, random-command invariants.

use super::*;

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

// ---- snapshot restore through the log ----

fn restore_command(state_of: &Fsm) -> Command {
    Command::Restore {
        snapshot: state_of.snapshot(),
    }
}

#[test]
fn a_restore_replaces_the_state_and_moves_indexes_past_the_restored_ones() {
    let mut source = Fsm::new();
    for i in 1..=50 {
        kv(
            &mut source,
            100 + i,
            op(KvVerb::Set, &format!("k{i}"), b"v"),
        );
    }
    let mut target = Fsm::new();
    kv(&mut target, 1, op(KvVerb::Set, "old", b"x"));
    target.take_changes();
    let command = restore_command(&source);
    let out = target.apply_bytes(2, &encode_command(&command));
    assert_eq!(decode_outcome(&out), Ok(Outcome::Done));
    let state = target.state();
    assert!(state.kv_get("old").is_none(), "the old state is gone");
    assert_eq!(state.kv_get("k7").map(|e| e.modify_index), Some(107));
    assert_eq!(state.applied_index(), 151, "past the restored index 150");
    assert_eq!(state.index_offset(), 149);
    assert_eq!(state.table_indexes().kvs, 151);
    let changes = target.take_changes();
    assert_eq!(changes.kv_keys, None, "every watcher wakes");
    // Later commands get Raft index + offset, so indexes keep growing.
    kv(&mut target, 3, op(KvVerb::Set, "new", b"y"));
    assert_eq!(
        target.state().kv_get("new").map(|e| e.modify_index),
        Some(152)
    );
    // The offset survives a Raft snapshot of the restored state.
    let again = Fsm::restore(&target.snapshot()).expect("restores");
    assert_eq!(again.state().index_offset(), 149);
    assert_eq!(again.state(), target.state());
}

#[test]
fn a_restore_onto_a_state_ahead_of_the_snapshot_keeps_the_log_index() {
    let mut source = Fsm::new();
    kv(&mut source, 5, op(KvVerb::Set, "a", b"1"));
    let mut target = Fsm::new();
    kv(&mut target, 900, op(KvVerb::Set, "b", b"2"));
    assert_eq!(target.apply(901, &restore_command(&source)), Outcome::Done);
    assert_eq!(target.state().applied_index(), 901);
    assert_eq!(target.state().index_offset(), 0);
    assert_eq!(target.state().table_indexes().kvs, 901);
    assert_eq!(target.state().kv_get("a").map(|e| e.modify_index), Some(5));
}

#[test]
fn a_bad_restore_changes_nothing_but_the_applied_index() {
    let mut target = Fsm::new();
    kv(&mut target, 1, op(KvVerb::Set, "keep", b"x"));
    let mut snapshot = Fsm::new().snapshot();
    let last = snapshot.len() - 1;
    snapshot[last] ^= 0xff;
    let outcome = target.apply(2, &Command::Restore { snapshot });
    assert!(matches!(outcome, Outcome::Error(m) if m.starts_with("snapshot restore refused")));
    assert!(target.state().kv_get("keep").is_some());
    assert_eq!(target.state().applied_index(), 2);
}
