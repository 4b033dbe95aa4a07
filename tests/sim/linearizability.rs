//! A linearizability checker for key/value register histories (ARCHITECTURE.md, "Testing layers": the cluster simulator
//! records what its clients saw and asks this module whether some sequential order explains it).
//!
//! The model is a map from `u64` keys to `Option<u64>` values, every key starting absent (`None`), with three
//! operations: [`Op::Read`], [`Op::Write`] and [`Op::Cas`] (compare-and-set, succeeding iff the current value equals
//! `expected`). A [`History`] records, for every operation, the client that issued it, when it was invoked and how it
//! ended: completed at some time with a result, never completed ([`Outcome::Unknown`]: the client timed out or crashed,
//! so the operation may have taken effect at any time after its invocation, or never), or definitely rejected
//! ([`Outcome::Failed`]).
//!
//! Linearizability is compositional, so [`History::check`] checks every key on its own, in key order. Each key runs
//! the Wing & Gong search with Lowe's memoization (the algorithm of porcupine and knossos): walk the time-ordered list of
//! invocation and completion events, try to linearize each operation invoked before the first pending completion,
//! backtrack when no candidate works, and never revisit a (linearized set, value) configuration. An operation with an
//! unknown outcome completes at +infinity and need never be linearized. Such operations are what makes the search
//! expensive (each stays a candidate forever), so the search uses reductions that preserve the answer: it only
//! linearizes one when a later operation needs its effect, treats interchangeable ones (identical, or writing values
//! nothing will read) as one queue, merges values nothing will read or compare against, and skips a configuration when
//! one with the same known operations and fewer unknown ones spent was already searched. Each key's search is bounded
//! by a step budget ([`DEFAULT_STEP_BUDGET`]); running out gives [`Verdict::BudgetExceeded`], never a hang or a wrong
//! verdict.
//!
//! Cost: a linearizable history is usually accepted in a few steps per operation (2 000 operations on one key: about
//! 10 ms in a debug build). Proving a history wrong searches every configuration up to the failure: with 5 clients,
//! 2 000 operations on one key, unique write values and 5% unknown outcomes, most take well under a second in a debug
//! build, but with 5-10% unknown outcomes some (1 in 12 to 1 in 6 in our generated histories) run out of the default
//! budget, which takes about 1 s in a release build and 3 s in a debug one. Write unique values (a counter) and spread
//! operations over several keys: with few distinct values and many unknown outcomes, timed-out writes of each value can
//! be spent almost anywhere, and wrong histories of a few hundred operations can already exhaust the budget.
//!
//! Times are plain `u64`s (virtual milliseconds or sequence numbers). Intervals are closed: an operation that
//! completes at `t` is concurrent with one invoked at `t`. Everything is deterministic: no randomness, and the cache's
//! hasher is fixed and only used for membership.

// Included by several test crates, each of which uses a different part of the API.
#![allow(dead_code)]

#[path = "linearizability_search.rs"]
mod search;

use search::{check_key, KeyVerdict};
use std::collections::BTreeMap;
use std::fmt;

/// The search steps [`History::check`] allows per key before giving up with [`Verdict::BudgetExceeded`]. A step is one
/// candidate tried or one visited configuration compared against, so the budget bounds time and memory (for the
/// default, about 1 s in a release build, 3 s in a debug one, and tens of MB).
pub const DEFAULT_STEP_BUDGET: u64 = 10_000_000;

/// An operation a client invokes on the key/value register map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read `key`; completes with [`OpResult::Read`].
    Read {
        /// The key read.
        key: u64,
    },
    /// Set `key` to `value`; completes with [`OpResult::Write`].
    Write {
        /// The key written.
        key: u64,
        /// The value stored.
        value: u64,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: absent); completes with [`OpResult::Cas`].
    Cas {
        /// The key compared and set.
        key: u64,
        /// The value the key must hold for the operation to succeed.
        expected: Option<u64>,
        /// The value stored on success.
        new: u64,
    },
}

impl Op {
    /// The key the operation acts on.
    pub fn key(&self) -> u64 {
        match *self {
            Op::Read { key } | Op::Write { key, .. } | Op::Cas { key, .. } => key,
        }
    }
}

/// What a completed operation returned to its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// The value a [`Op::Read`] saw (`None`: absent).
    Read(Option<u64>),
    /// A [`Op::Write`] was acknowledged.
    Write,
    /// Whether a [`Op::Cas`] succeeded.
    Cas(bool),
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No answer (still pending, timed out, or the client crashed): the operation may take effect at any time after its
    /// invocation, or never. An unknown read constrains nothing and is ignored.
    Unknown,
    /// The client received `result` at time `at`.
    Completed {
        /// When the client received the answer.
        at: u64,
        /// The answer.
        result: OpResult,
    },
    /// The operation definitely did not take effect (for example, rejected before it was proposed); it is ignored.
    Failed,
}

/// Identifies an operation of a [`History`]: its position in [`History::records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(usize);

impl OpId {
    /// The operation's index in [`History::records`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// One operation of a [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The client that invoked it (only used in explanations).
    pub client: u64,
    /// What was invoked.
    pub op: Op,
    /// When it was invoked.
    pub invoked_at: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// A concurrent history of operations on the key/value register map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    records: Vec<Record>,
}

/// The answer of [`History::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some sequential execution of the model explains every key's operations.
    Linearizable,
    /// No sequential execution explains `key`'s operations (the first such key in key order).
    NotLinearizable {
        /// The key whose operations cannot be linearized.
        key: u64,
        /// A short account of the furthest point the search reached: the operation it could not linearize, the last
        /// operations linearized before it, the value then, and the other candidates.
        explanation: String,
    },
    /// The search for `key` (the first such key in key order) ran out of its step budget: undecided. Only reported
    /// when no key is definitely not linearizable.
    BudgetExceeded {
        /// The key whose search was abandoned.
        key: u64,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable { key, explanation } => {
                write!(f, "key {key} is not linearizable: {explanation}")
            }
            Verdict::BudgetExceeded { key } => {
                write!(
                    f,
                    "key {key}: linearizability search budget exceeded (undecided)"
                )
            }
        }
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` at time `at`. The operation's outcome is [`Outcome::Unknown`] until
    /// [`History::complete`] or [`History::fail`] is called.
    pub fn invoke(&mut self, client: u64, op: Op, at: u64) -> OpId {
        self.records.push(Record {
            client,
            op,
            invoked_at: at,
            outcome: Outcome::Unknown,
        });
        OpId(self.records.len() - 1)
    }

    /// Records that operation `id` returned `result` to its client at time `at`.
    ///
    /// # Panics
    /// If `id` is not pending, `at` is before the invocation, or `result` does not match the operation's kind.
    pub fn complete(&mut self, id: OpId, result: OpResult, at: u64) {
        let record = &mut self.records[id.0];
        assert_eq!(
            record.outcome,
            Outcome::Unknown,
            "operation {} is not pending",
            id.0
        );
        assert!(
            at >= record.invoked_at,
            "operation {} completes at {at}, before its invocation at {}",
            id.0,
            record.invoked_at
        );
        let matches = matches!(
            (record.op, result),
            (Op::Read { .. }, OpResult::Read(_))
                | (Op::Write { .. }, OpResult::Write)
                | (Op::Cas { .. }, OpResult::Cas(_))
        );
        assert!(
            matches,
            "operation {} ({:?}) cannot return {result:?}",
            id.0, record.op
        );
        record.outcome = Outcome::Completed { at, result };
    }

    /// Records that operation `id` definitely did not take effect, so the check ignores it. Only for rejections known
    /// to precede any effect; a timeout is not one (leave the operation [`Outcome::Unknown`]).
    ///
    /// # Panics
    /// If `id` is not pending.
    pub fn fail(&mut self, id: OpId) {
        let record = &mut self.records[id.0];
        assert_eq!(
            record.outcome,
            Outcome::Unknown,
            "operation {} is not pending",
            id.0
        );
        record.outcome = Outcome::Failed;
    }

    /// Every operation recorded, indexed by [`OpId::index`].
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The number of operations recorded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Checks the history with [`DEFAULT_STEP_BUDGET`] search steps per key.
    pub fn check(&self) -> Verdict {
        self.check_with_budget(DEFAULT_STEP_BUDGET)
    }

    /// Checks every key on its own, in key order, allowing `steps_per_key` search steps for each. A key that is not
    /// linearizable wins over one whose search ran out of budget.
    pub fn check_with_budget(&self, steps_per_key: u64) -> Verdict {
        let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, record) in self.records.iter().enumerate() {
            by_key.entry(record.op.key()).or_default().push(i);
        }
        let mut undecided = None;
        for (&key, ids) in &by_key {
            match check_key(&self.records, ids, steps_per_key) {
                KeyVerdict::Linearizable => {}
                KeyVerdict::NotLinearizable(explanation) => {
                    return Verdict::NotLinearizable { key, explanation };
                }
                KeyVerdict::BudgetExceeded => {
                    undecided.get_or_insert(key);
                }
            }
        }
        match undecided {
            Some(key) => Verdict::BudgetExceeded { key },
            None => Verdict::Linearizable,
        }
    }
}
