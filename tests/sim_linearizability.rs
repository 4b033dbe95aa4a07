//! Tests of the simulator's linearizability checker (tests/sim/linearizability.rs): hand-written histories that are
//! and are not linearizable, seeded random histories recorded from a real sequential execution (accepted) and
//! mutations of them that are guaranteed not to be linearizable (rejected), and a size check.

#[path = "sim/linearizability.rs"]
mod linearizability;

use cairn::raft::rng::Rng;
use linearizability::{History, Op, OpId, OpResult, Verdict};
use std::collections::{BTreeMap, BTreeSet};

/// True with probability `percent`/100.
fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.range(0, 100) < percent
}

fn read(key: u64) -> Op {
    Op::Read { key }
}

fn write(key: u64, value: u64) -> Op {
    Op::Write { key, value }
}

fn cas(key: u64, expected: Option<u64>, new: u64) -> Op {
    Op::Cas { key, expected, new }
}

/// Adds a completed operation.
fn done(
    h: &mut History,
    client: u64,
    op: Op,
    invoked: u64,
    result: OpResult,
    completed: u64,
) -> OpId {
    let id = h.invoke(client, op, invoked);
    h.complete(id, result, completed);
    id
}

fn assert_linearizable(h: &History) {
    let verdict = h.check();
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
}

/// Asserts `h` is not linearizable because of `key`, and returns the explanation.
fn assert_not_linearizable(h: &History, key: u64) -> String {
    match h.check() {
        Verdict::NotLinearizable {
            key: k,
            explanation,
        } => {
            assert_eq!(k, key, "{explanation}");
            assert!(!explanation.is_empty());
            explanation
        }
        other => panic!("expected key {key} to be reported not linearizable, got: {other}"),
    }
}

// Linearizable histories.

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&History::new());
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = History::new();
    done(&mut h, 1, read(7), 0, OpResult::Read(None), 1);
    done(&mut h, 1, write(7, 1), 2, OpResult::Write, 3);
    done(&mut h, 2, read(7), 4, OpResult::Read(Some(1)), 5);
    done(&mut h, 1, cas(7, Some(1), 2), 6, OpResult::Cas(true), 7);
    done(&mut h, 2, cas(7, Some(1), 3), 8, OpResult::Cas(false), 9);
    done(&mut h, 3, read(7), 10, OpResult::Read(Some(2)), 11);
    done(&mut h, 3, cas(7, None, 4), 12, OpResult::Cas(false), 13);
    done(&mut h, 3, write(7, 5), 14, OpResult::Write, 15);
    done(&mut h, 1, read(7), 16, OpResult::Read(Some(5)), 17);
    assert_linearizable(&h);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for last in [1, 2] {
        let mut h = History::new();
        done(&mut h, 1, write(0, 1), 0, OpResult::Write, 10);
        done(&mut h, 2, write(0, 2), 5, OpResult::Write, 15);
        done(&mut h, 3, read(0), 20, OpResult::Read(Some(last)), 21);
        done(&mut h, 3, read(0), 22, OpResult::Read(Some(last)), 23);
        assert_linearizable(&h);
    }
}

#[test]
fn read_concurrent_with_a_write_may_see_old_or_new_value() {
    for seen in [None, Some(1)] {
        let mut h = History::new();
        done(&mut h, 1, write(0, 1), 0, OpResult::Write, 10);
        done(&mut h, 2, read(0), 2, OpResult::Read(seen), 8);
        done(&mut h, 2, read(0), 11, OpResult::Read(Some(1)), 12);
        assert_linearizable(&h);
    }
    // Two overlapping reads see the new value and then the old one: the second read took effect first.
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 10);
    done(&mut h, 2, read(0), 1, OpResult::Read(Some(1)), 9);
    done(&mut h, 3, read(0), 1, OpResult::Read(None), 9);
    assert_linearizable(&h);
}

#[test]
fn operations_touching_at_one_instant_are_concurrent() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 5);
    done(&mut h, 2, read(0), 5, OpResult::Read(None), 6);
    assert_linearizable(&h);
}

#[test]
fn concurrent_cas_chain_is_linearizable() {
    let mut h = History::new();
    // Invoked in the reverse of the order they must take effect, all overlapping.
    done(&mut h, 1, cas(3, Some(2), 3), 0, OpResult::Cas(true), 20);
    done(&mut h, 2, cas(3, Some(1), 2), 1, OpResult::Cas(true), 21);
    done(&mut h, 3, cas(3, None, 1), 2, OpResult::Cas(true), 22);
    done(&mut h, 4, cas(3, None, 9), 3, OpResult::Cas(false), 23);
    done(&mut h, 5, read(3), 4, OpResult::Read(Some(2)), 24);
    done(&mut h, 1, read(3), 30, OpResult::Read(Some(3)), 31);
    assert_linearizable(&h);
}

#[test]
fn unknown_write_that_took_effect() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 1);
    h.invoke(2, write(0, 2), 2); // times out
    done(&mut h, 1, read(0), 100, OpResult::Read(Some(2)), 101);
    done(&mut h, 3, read(0), 200, OpResult::Read(Some(2)), 201);
    assert_linearizable(&h);
}

#[test]
fn unknown_write_that_did_not_take_effect() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 1);
    h.invoke(2, write(0, 2), 2);
    done(&mut h, 1, read(0), 100, OpResult::Read(Some(1)), 101);
    assert_linearizable(&h);
}

#[test]
fn unknown_write_may_take_effect_long_after_its_invocation() {
    let mut h = History::new();
    h.invoke(2, write(0, 2), 0);
    done(&mut h, 1, read(0), 10, OpResult::Read(None), 11);
    done(&mut h, 1, write(0, 1), 20, OpResult::Write, 21);
    done(&mut h, 1, read(0), 30, OpResult::Read(Some(1)), 31);
    done(&mut h, 1, read(0), 40, OpResult::Read(Some(2)), 41);
    assert_linearizable(&h);
}

#[test]
fn unknown_write_needed_only_by_a_failed_cas() {
    // The CAS can only fail if the timed-out write took effect before it.
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 1);
    h.invoke(2, write(0, 2), 2);
    done(&mut h, 1, cas(0, Some(1), 3), 10, OpResult::Cas(false), 11);
    done(&mut h, 1, write(0, 4), 20, OpResult::Write, 21);
    done(&mut h, 1, read(0), 30, OpResult::Read(Some(4)), 31);
    assert_linearizable(&h);
}

#[test]
fn unknown_cas_chain() {
    let mut h = History::new();
    h.invoke(1, cas(0, None, 1), 0);
    h.invoke(2, cas(0, Some(1), 2), 1);
    h.invoke(3, cas(0, Some(7), 3), 2); // never applies: 7 is never the value
    done(&mut h, 4, read(0), 10, OpResult::Read(Some(2)), 11);
    assert_linearizable(&h);
}

#[test]
fn unknown_reads_and_failed_operations_are_ignored() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 1);
    h.invoke(2, read(0), 2); // unknown read: no constraint
    let rejected = h.invoke(3, write(0, 9), 3);
    h.fail(rejected);
    done(&mut h, 1, read(0), 10, OpResult::Read(Some(1)), 11);
    assert_linearizable(&h);
}

#[test]
fn keys_are_independent() {
    let mut h = History::new();
    done(&mut h, 1, write(1, 10), 0, OpResult::Write, 1);
    done(&mut h, 1, write(2, 20), 2, OpResult::Write, 3);
    done(&mut h, 2, read(1), 4, OpResult::Read(Some(10)), 5);
    done(&mut h, 2, read(2), 6, OpResult::Read(Some(20)), 7);
    done(&mut h, 2, read(3), 8, OpResult::Read(None), 9);
    assert_linearizable(&h);
}

// Histories that are not linearizable.

#[test]
fn stale_read_after_a_completed_write() {
    let mut h = History::new();
    done(&mut h, 1, write(5, 1), 0, OpResult::Write, 1);
    done(&mut h, 1, write(5, 2), 2, OpResult::Write, 3);
    done(&mut h, 2, read(5), 4, OpResult::Read(Some(1)), 5);
    let explanation = assert_not_linearizable(&h, 5);
    assert!(
        explanation.contains("#2 c2 read -> Some(1) [4, 5]"),
        "{explanation}"
    );
}

#[test]
fn read_of_absent_after_a_completed_write() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 1);
    done(&mut h, 2, read(0), 2, OpResult::Read(None), 3);
    assert_not_linearizable(&h, 0);
}

#[test]
fn read_of_a_value_never_written() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 1), 0, OpResult::Write, 10);
    done(&mut h, 2, read(0), 1, OpResult::Read(Some(7)), 9);
    let explanation = assert_not_linearizable(&h, 0);
    assert!(explanation.contains("read -> Some(7)"), "{explanation}");
}

#[test]
fn two_successful_cas_from_the_same_expected_value() {
    let mut h = History::new();
    done(&mut h, 1, write(0, 0), 0, OpResult::Write, 1);
    done(&mut h, 2, cas(0, Some(0), 1), 2, OpResult::Cas(true), 10);
    done(&mut h, 3, cas(0, Some(0), 2), 3, OpResult::Cas(true), 11);
    assert_not_linearizable(&h, 0);
}

#[test]
fn lost_update() {
    // Two increments by CAS both succeed, yet a later read sees only one of them.
    let mut h = History::new();
    done(&mut h, 1, write(0, 0), 0, OpResult::Write, 1);
    done(&mut h, 1, cas(0, Some(0), 1), 2, OpResult::Cas(true), 5);
    done(&mut h, 2, cas(0, Some(1), 2), 3, OpResult::Cas(true), 6);
    done(&mut h, 3, read(0), 7, OpResult::Read(Some(1)), 8);
    assert_not_linearizable(&h, 0);
}

#[test]
fn cas_failing_on_its_expected_value() {
    let mut h = History::new();
    done(&mut h, 1, cas(0, None, 1), 0, OpResult::Cas(false), 1);
    assert_not_linearizable(&h, 0);
}

#[test]
fn unknown_write_observed_then_unobserved() {
    // A timed-out write may take effect, but not be undone.
    let mut h = History::new();
    h.invoke(1, write(0, 1), 0);
    done(&mut h, 2, read(0), 10, OpResult::Read(Some(1)), 11);
    done(&mut h, 2, read(0), 12, OpResult::Read(None), 13);
    assert_not_linearizable(&h, 0);
}

#[test]
fn unknown_write_observed_before_its_invocation() {
    let mut h = History::new();
    done(&mut h, 2, read(0), 0, OpResult::Read(Some(1)), 5);
    h.invoke(1, write(0, 1), 6);
    assert_not_linearizable(&h, 0);
}

#[test]
fn unknown_write_cannot_take_effect_twice() {
    let mut h = History::new();
    h.invoke(1, write(0, 1), 0);
    done(&mut h, 2, read(0), 10, OpResult::Read(Some(1)), 11);
    done(&mut h, 2, write(0, 2), 12, OpResult::Write, 13);
    done(&mut h, 2, read(0), 14, OpResult::Read(Some(1)), 15);
    assert_not_linearizable(&h, 0);
}

#[test]
fn the_first_bad_key_is_reported() {
    let mut h = History::new();
    for key in [4, 9, 2] {
        done(&mut h, 1, write(key, 1), 0, OpResult::Write, 1);
    }
    done(&mut h, 2, read(9), 2, OpResult::Read(Some(3)), 3);
    done(&mut h, 2, read(4), 2, OpResult::Read(None), 3);
    done(&mut h, 2, read(2), 2, OpResult::Read(Some(1)), 3);
    assert_not_linearizable(&h, 4);
}

#[test]
fn exhausted_budget_is_reported_as_undecided() {
    let mut h = History::new();
    for c in 0..8 {
        done(&mut h, c, write(0, c), 0, OpResult::Write, 100);
    }
    done(&mut h, 9, read(0), 101, OpResult::Read(Some(99)), 102);
    assert_eq!(h.check_with_budget(5), Verdict::BudgetExceeded { key: 0 });
    assert!(matches!(h.check(), Verdict::NotLinearizable { key: 0, .. }));
}

#[test]
fn a_bad_key_wins_over_an_undecided_one() {
    let mut h = History::new();
    for c in 0..8 {
        done(&mut h, c, write(0, c), 0, OpResult::Write, 100);
    }
    done(&mut h, 9, read(0), 101, OpResult::Read(Some(99)), 102);
    done(&mut h, 9, read(1), 0, OpResult::Read(Some(5)), 1);
    assert!(matches!(
        h.check_with_budget(5),
        Verdict::NotLinearizable { key: 1, .. }
    ));
}

// Random histories recorded from a sequential execution.

/// One generated operation, with the instant it took effect inside its interval.
#[derive(Clone, Debug)]
struct GenOp {
    client: u64,
    op: Op,
    invoked: u64,
    takes_effect: u64,
    completed: u64,
    /// The client never learns the outcome.
    unknown: bool,
    /// For an unknown operation: whether it took effect at all.
    applied: bool,
    /// Filled in by the sequential execution.
    result: Option<OpResult>,
}

struct GenConfig {
    ops: usize,
    clients: u64,
    keys: u64,
    /// Every write and CAS stores a value never stored before; otherwise values come from `0..4`.
    unique_values: bool,
    unknown_percent: u64,
}

/// Generates `config.ops` operations with random overlapping intervals, then runs them in the order they took effect
/// against a real map to fill in their results, so the history is linearizable by construction.
fn generate(seed: u64, config: &GenConfig) -> Vec<GenOp> {
    let mut rng = Rng::new(seed);
    let mut free_at: Vec<u64> = (0..config.clients).map(|_| rng.range(0, 4)).collect();
    let mut next_value = 1u64;
    let mut last_value: BTreeMap<u64, u64> = BTreeMap::new();
    let mut ops = Vec::with_capacity(config.ops);
    for _ in 0..config.ops {
        let client = (0..config.clients)
            .min_by_key(|&c| (free_at[c as usize], c))
            .unwrap();
        let invoked = free_at[client as usize];
        let takes_effect = invoked + rng.range(0, 6);
        let completed = takes_effect + rng.range(0, 6);
        free_at[client as usize] = completed + 1 + rng.range(0, 3);
        let key = rng.range(0, config.keys);
        let mut value = |rng: &mut Rng| {
            if config.unique_values {
                next_value += 1;
                next_value
            } else {
                rng.range(0, 4)
            }
        };
        let op = match rng.range(0, 10) {
            0..=3 => read(key),
            4..=6 => {
                let v = value(&mut rng);
                last_value.insert(key, v);
                write(key, v)
            }
            _ => {
                let new = value(&mut rng);
                let expected = if config.unique_values {
                    match rng.range(0, 4) {
                        0 => None,
                        1 => Some(rng.range(0, next_value + 1)),
                        _ => last_value.get(&key).copied(),
                    }
                } else {
                    match rng.range(0, 5) {
                        0 => None,
                        v => Some(v - 1),
                    }
                };
                last_value.insert(key, new);
                cas(key, expected, new)
            }
        };
        let unknown = chance(&mut rng, config.unknown_percent);
        let applied = !unknown || chance(&mut rng, 50);
        ops.push(GenOp {
            client,
            op,
            invoked,
            takes_effect,
            completed,
            unknown,
            applied,
            result: None,
        });
    }

    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| (ops[i].takes_effect, i));
    let mut state: BTreeMap<u64, u64> = BTreeMap::new();
    for i in order {
        let g = &mut ops[i];
        if !g.applied {
            continue;
        }
        g.result = Some(match g.op {
            Op::Read { key } => OpResult::Read(state.get(&key).copied()),
            Op::Write { key, value } => {
                state.insert(key, value);
                OpResult::Write
            }
            Op::Cas { key, expected, new } => {
                let ok = state.get(&key).copied() == expected;
                if ok {
                    state.insert(key, new);
                }
                OpResult::Cas(ok)
            }
        });
    }
    ops
}

fn to_history(ops: &[GenOp]) -> History {
    let mut h = History::new();
    let ids: Vec<OpId> = ops
        .iter()
        .map(|g| h.invoke(g.client, g.op, g.invoked))
        .collect();
    for (g, id) in ops.iter().zip(ids) {
        if !g.unknown {
            h.complete(id, g.result.expect("known operations ran"), g.completed);
        }
    }
    h
}

/// Whether `g` is a known operation that set its key, and to what.
fn known_store(g: &GenOp) -> Option<(u64, u64)> {
    if g.unknown {
        return None;
    }
    match (g.op, g.result) {
        (Op::Write { key, value }, _) => Some((key, value)),
        (Op::Cas { key, new, .. }, Some(OpResult::Cas(true))) => Some((key, new)),
        _ => None,
    }
}

fn known_reads(ops: &[GenOp]) -> Vec<usize> {
    (0..ops.len())
        .filter(|&i| !ops[i].unknown && matches!(ops[i].op, Op::Read { .. }))
        .collect()
}

/// Mutation: a read returns a value nothing ever stored.
fn mutate_unwritten_value(ops: &[GenOp], rng: &mut Rng) -> Option<Vec<GenOp>> {
    let reads = known_reads(ops);
    if reads.is_empty() {
        return None;
    }
    let mut mutated = ops.to_vec();
    mutated[reads[rng.range(0, reads.len() as u64) as usize]].result =
        Some(OpResult::Read(Some(u64::MAX - 1)));
    Some(mutated)
}

/// Mutation: a read invoked after a store completed returns "absent" (nothing ever deletes).
fn mutate_absent_after_store(ops: &[GenOp], rng: &mut Rng) -> Option<Vec<GenOp>> {
    let candidates: Vec<usize> = known_reads(ops)
        .into_iter()
        .filter(|&r| {
            ops.iter().any(|w| {
                known_store(w).is_some_and(|(key, _)| key == ops[r].op.key())
                    && w.completed < ops[r].invoked
            })
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let mut mutated = ops.to_vec();
    mutated[candidates[rng.range(0, candidates.len() as u64) as usize]].result =
        Some(OpResult::Read(None));
    Some(mutated)
}

/// Mutation (unique values only): a read returns the value of a store W1 that a later store W2 had certainly
/// overwritten (W1 completed before W2 was invoked, W2 completed before the read was invoked); as no other operation
/// stores W1's value, no linearization explains it.
fn mutate_stale_read(ops: &[GenOp], rng: &mut Rng) -> Option<Vec<GenOp>> {
    let mut candidates = Vec::new();
    for r in known_reads(ops) {
        let key = ops[r].op.key();
        let stores: Vec<(usize, u64)> = (0..ops.len())
            .filter_map(|i| match known_store(&ops[i]) {
                Some((k, v)) if k == key && ops[i].completed < ops[r].invoked => Some((i, v)),
                _ => None,
            })
            .collect();
        for &(w2, _) in &stores {
            for &(w1, v1) in &stores {
                if ops[w1].completed < ops[w2].invoked
                    && ops[r].result != Some(OpResult::Read(Some(v1)))
                {
                    candidates.push((r, v1));
                }
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (r, v1) = candidates[rng.range(0, candidates.len() as u64) as usize];
    let mut mutated = ops.to_vec();
    mutated[r].result = Some(OpResult::Read(Some(v1)));
    Some(mutated)
}

#[test]
fn random_linearizable_histories_are_accepted_and_mutations_rejected() {
    let mut mutations = [0usize; 3];
    for seed in 0..120u64 {
        let config = GenConfig {
            ops: 150,
            clients: 5,
            keys: 3,
            unique_values: seed % 2 == 0,
            unknown_percent: [0, 5, 15][(seed % 3) as usize],
        };
        let ops = generate(seed, &config);
        let verdict = to_history(&ops).check();
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}: {verdict}");

        let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
        let mut mutated = vec![
            mutate_unwritten_value(&ops, &mut rng),
            mutate_absent_after_store(&ops, &mut rng),
        ];
        if config.unique_values {
            mutated.push(mutate_stale_read(&ops, &mut rng));
        }
        for (kind, m) in mutated.into_iter().enumerate() {
            let Some(m) = m else { continue };
            mutations[kind] += 1;
            let verdict = to_history(&m).check();
            assert!(
                matches!(verdict, Verdict::NotLinearizable { .. }),
                "seed {seed}, mutation {kind}: {verdict}"
            );
        }
    }
    // The mutations did happen, for most seeds.
    assert!(
        mutations[0] >= 110 && mutations[1] >= 100 && mutations[2] >= 40,
        "{mutations:?}"
    );
}

#[test]
fn random_single_key_histories_with_many_clients() {
    for seed in 0..20u64 {
        // Unique values: decided quickly even with many unknown outcomes.
        let config = GenConfig {
            ops: 300,
            clients: 8,
            keys: 1,
            unique_values: true,
            unknown_percent: 10,
        };
        let ops = generate(seed + 1000, &config);
        let verdict = to_history(&ops).check();
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}: {verdict}");
        let mut rng = Rng::new(seed);
        let mutations = [
            mutate_unwritten_value(&ops, &mut rng),
            mutate_absent_after_store(&ops, &mut rng),
            mutate_stale_read(&ops, &mut rng),
        ];
        for m in mutations.into_iter().flatten() {
            let verdict = to_history(&m).check();
            assert!(
                matches!(verdict, Verdict::NotLinearizable { key: 0, .. }),
                "seed {seed}: {verdict}"
            );
        }

        // Values from 0..4, all outcomes known.
        let config = GenConfig {
            unique_values: false,
            unknown_percent: 0,
            ..config
        };
        let ops = generate(seed + 2000, &config);
        assert_eq!(
            to_history(&ops).check(),
            Verdict::Linearizable,
            "seed {seed}"
        );
        let m = mutate_unwritten_value(&ops, &mut rng).expect("300 ops include a read");
        assert!(
            matches!(
                to_history(&m).check(),
                Verdict::NotLinearizable { key: 0, .. }
            ),
            "seed {seed}"
        );
    }
}

/// Few values and many unknown outcomes is the hard case: timed-out writes of every value can be spent anywhere, so
/// proving a history wrong may need more than the budget. The answer is then undecided, never a wrong verdict.
#[test]
fn hard_histories_are_undecided_rather_than_misjudged() {
    let mut undecided = 0;
    for seed in 0..10u64 {
        let config = GenConfig {
            ops: 300,
            clients: 8,
            keys: 1,
            unique_values: false,
            unknown_percent: 10,
        };
        let ops = generate(seed + 3000, &config);
        assert_eq!(
            to_history(&ops).check(),
            Verdict::Linearizable,
            "seed {seed}"
        );
        let mut rng = Rng::new(seed);
        let m = mutate_unwritten_value(&ops, &mut rng).expect("300 ops include a read");
        match to_history(&m).check_with_budget(200_000) {
            Verdict::NotLinearizable { key: 0, .. } => {}
            Verdict::BudgetExceeded { key: 0 } => undecided += 1,
            other => panic!("seed {seed}: {other}"),
        }
    }
    eprintln!("{undecided} of 10 undecided within 200000 steps");
}

/// A size check (ARCHITECTURE.md: tests never assert on time; the duration is printed for `--nocapture`).
#[test]
fn two_thousand_operations_check_quickly() {
    for (ops, keys, unique_values, unknown_percent) in [
        (2000, 3, true, 5),
        (2000, 3, false, 5),
        (2000, 1, true, 5),
        (2000, 1, false, 0),
    ] {
        let config = GenConfig {
            ops,
            clients: 5,
            keys,
            unique_values,
            unknown_percent,
        };
        let generated = generate(42, &config);
        let history = to_history(&generated);
        let start = std::time::Instant::now();
        let verdict = history.check();
        let accepted = start.elapsed();
        assert_eq!(verdict, Verdict::Linearizable, "{verdict}");

        let mut rng = Rng::new(7);
        let mutated = to_history(&mutate_unwritten_value(&generated, &mut rng).unwrap());
        let start = std::time::Instant::now();
        let verdict = mutated.check();
        let rejected = start.elapsed();
        assert!(
            matches!(verdict, Verdict::NotLinearizable { .. }),
            "{verdict}"
        );
        eprintln!(
            "{ops} ops, {keys} keys, unique values {unique_values}, {unknown_percent}% unknown: \
             accepted in {accepted:?}, mutation rejected in {rejected:?}"
        );
    }
}

// Agreement with an exhaustive search on small histories with arbitrary results.

/// An operation, its invocation time, and its completion time and result (`None`: unknown outcome).
type PlainOp = (Op, u64, Option<(u64, OpResult)>);

/// Whether some order of all the known operations and any subset of the unknown ones (`None` completion), respecting
/// real time, explains every result: a plain search over (operations used, state), remembering failures.
fn brute_force_linearizable(ops: &[PlainOp]) -> bool {
    type Failed = BTreeSet<(u64, Vec<(u64, u64)>)>;
    fn search(ops: &[PlainOp], used: u64, state: &BTreeMap<u64, u64>, failed: &mut Failed) -> bool {
        let pending_known = (0..ops.len()).filter(|&i| used & (1 << i) == 0 && ops[i].2.is_some());
        // An operation may go next if no pending known operation completed before it was invoked.
        let Some(deadline) = pending_known.map(|i| ops[i].2.unwrap().0).min() else {
            return true;
        };
        let key = (used, state.iter().map(|(&k, &v)| (k, v)).collect());
        if failed.contains(&key) {
            return false;
        }
        for (i, &(op, invoked, completion)) in ops.iter().enumerate() {
            if used & (1 << i) != 0 || invoked > deadline {
                continue;
            }
            let result = completion.map(|(_, r)| r);
            let mut next = state.clone();
            let ok = match op {
                Op::Read { key } => result == Some(OpResult::Read(state.get(&key).copied())),
                Op::Write { key, value } => {
                    next.insert(key, value);
                    true
                }
                Op::Cas { key, expected, new } => {
                    let success = state.get(&key).copied() == expected;
                    if success {
                        next.insert(key, new);
                    }
                    result.is_none() || result == Some(OpResult::Cas(success))
                }
            };
            if ok && search(ops, used | (1 << i), &next, failed) {
                return true;
            }
        }
        failed.insert(key);
        false
    }
    let ops: Vec<_> = ops
        .iter()
        .copied()
        .filter(|(op, _, c)| c.is_some() || !matches!(op, Op::Read { .. }))
        .collect();
    assert!(ops.len() <= 64);
    search(&ops, 0, &BTreeMap::new(), &mut BTreeSet::new())
}

#[test]
fn small_random_histories_agree_with_brute_force() {
    let mut verdicts = [0usize; 2];
    for seed in 0..3000u64 {
        let mut rng = Rng::new(seed);
        let n = 2 + rng.range(0, 7);
        let keys = 1 + rng.range(0, 2);
        let values = 1 + rng.range(0, 3);
        let mut ops = Vec::new();
        for _ in 0..n {
            let key = rng.range(0, keys);
            let value =
                |rng: &mut Rng| (rng.range(0, values + 1) != 0).then(|| rng.range(0, values));
            let op = match rng.range(0, 3) {
                0 => read(key),
                1 => write(key, rng.range(0, values)),
                _ => cas(key, value(&mut rng), rng.range(0, values)),
            };
            let invoked = rng.range(0, 10);
            let completion = (!chance(&mut rng, 25)).then(|| {
                let result = match op {
                    Op::Read { .. } => OpResult::Read(value(&mut rng)),
                    Op::Write { .. } => OpResult::Write,
                    Op::Cas { .. } => OpResult::Cas(chance(&mut rng, 50)),
                };
                (invoked + rng.range(0, 6), result)
            });
            ops.push((op, invoked, completion));
        }
        let mut h = History::new();
        for (c, &(op, invoked, completion)) in ops.iter().enumerate() {
            let id = h.invoke(c as u64, op, invoked);
            if let Some((at, result)) = completion {
                h.complete(id, result, at);
            }
        }
        let expected = brute_force_linearizable(&ops);
        let verdict = h.check();
        assert_eq!(
            verdict.is_linearizable(),
            expected,
            "seed {seed}: {ops:?}: {verdict}"
        );
        assert!(!matches!(verdict, Verdict::BudgetExceeded { .. }));
        verdicts[usize::from(expected)] += 1;
    }
    // Both answers are well represented.
    assert!(verdicts[0] > 500 && verdicts[1] > 500, "{verdicts:?}");
}

#[test]
fn perturbed_generated_histories_agree_with_brute_force() {
    let mut verdicts = [0usize; 2];
    for seed in 0..1500u64 {
        let config = GenConfig {
            ops: 8 + (seed % 9) as usize,
            clients: 2 + seed % 4,
            keys: 1,
            unique_values: seed % 3 == 0,
            unknown_percent: [10, 30, 50][(seed % 5 % 3) as usize],
        };
        let mut ops = generate(seed, &config);
        // Change one known result at random in most histories.
        let mut rng = Rng::new(!seed);
        let known: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].unknown).collect();
        if !known.is_empty() && chance(&mut rng, 70) {
            let i = known[rng.range(0, known.len() as u64) as usize];
            ops[i].result = match ops[i].op {
                Op::Read { .. } => Some(OpResult::Read(
                    (!chance(&mut rng, 20)).then(|| rng.range(0, 5)),
                )),
                Op::Write { .. } => Some(OpResult::Write),
                Op::Cas { .. } => Some(OpResult::Cas(chance(&mut rng, 50))),
            };
        }
        let plain: Vec<PlainOp> = ops
            .iter()
            .map(|g| {
                (
                    g.op,
                    g.invoked,
                    (!g.unknown).then(|| (g.completed, g.result.unwrap())),
                )
            })
            .collect();
        let expected = brute_force_linearizable(&plain);
        let verdict = to_history(&ops).check();
        assert_eq!(
            verdict.is_linearizable(),
            expected,
            "seed {seed}: {ops:?}: {verdict}"
        );
        assert!(!matches!(verdict, Verdict::BudgetExceeded { .. }));
        verdicts[usize::from(expected)] += 1;
    }
    assert!(verdicts[0] > 300 && verdicts[1] > 300, "{verdicts:?}");
}
