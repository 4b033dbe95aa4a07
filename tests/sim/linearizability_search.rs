//! The per-key search of the linearizability checker (see the parent module's documentation): Wing & Gong with
//! Lowe's memoization over one key's operations, with the reductions for operations of unknown outcome.

use super::{Op, OpResult, Outcome, Record};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// The result of one key's search.
pub(super) enum KeyVerdict {
    Linearizable,
    NotLinearizable(String),
    BudgetExceeded,
}

/// What an operation does to (and requires of) its key's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Effect {
    /// Requires the value to be this.
    Read(Option<u64>),
    /// Sets the value, whatever it was.
    Write(u64),
    /// Known to have succeeded (requires `expected`, sets `new`) or failed (requires anything else, changes nothing);
    /// with an unknown outcome, sets `new` if the value is `expected`.
    Cas {
        expected: Option<u64>,
        new: u64,
        succeeded: bool,
    },
}

/// One operation of the key being checked.
#[derive(Clone, Copy, Debug)]
struct KeyOp {
    /// Index in the history's records.
    record: usize,
    effect: Effect,
    invoked_at: u64,
    /// `None`: unknown outcome (completion at +infinity).
    completed_at: Option<u64>,
}

impl KeyOp {
    /// The operation as the search sees it, or `None` when it constrains nothing (failed, or an unknown read).
    fn from_record(index: usize, record: &Record) -> Option<KeyOp> {
        let completed_at = match record.outcome {
            Outcome::Failed => return None,
            Outcome::Unknown => None,
            Outcome::Completed { at, .. } => Some(at),
        };
        let result = match record.outcome {
            Outcome::Completed { result, .. } => Some(result),
            _ => None,
        };
        let effect = match (record.op, result) {
            (Op::Read { .. }, Some(OpResult::Read(value))) => Effect::Read(value),
            (Op::Read { .. }, _) => return None,
            (Op::Write { value, .. }, _) => Effect::Write(value),
            (Op::Cas { expected, new, .. }, result) => Effect::Cas {
                expected,
                new,
                succeeded: result == Some(OpResult::Cas(true)),
            },
        };
        Some(KeyOp {
            record: index,
            effect,
            invoked_at: record.invoked_at,
            completed_at,
        })
    }

    fn known(&self) -> bool {
        self.completed_at.is_some()
    }

    /// The value after applying the operation to `value`, or `None` when the operation's result rules `value` out.
    fn step(&self, value: Option<u64>) -> Option<Option<u64>> {
        match self.effect {
            Effect::Read(seen) => (value == seen).then_some(value),
            Effect::Write(v) => Some(Some(v)),
            Effect::Cas {
                expected,
                new,
                succeeded,
            } => {
                if !self.known() {
                    Some(if value == expected { Some(new) } else { value })
                } else if succeeded {
                    (value == expected).then_some(Some(new))
                } else {
                    (value != expected).then_some(value)
                }
            }
        }
    }

    fn is_blind_write(&self) -> bool {
        matches!(self.effect, Effect::Write(_))
    }

    /// The value the operation compares the key's value against, if any.
    fn observed(&self) -> Option<u64> {
        match self.effect {
            Effect::Read(seen) => seen,
            Effect::Cas { expected, .. } => expected,
            Effect::Write(_) => None,
        }
    }
}

/// Whether the last operation linearized had an unknown outcome, for the canonical form the search keeps to. An
/// unknown operation `u` need not be linearized, and since its interval never ends it can always be moved later. So a
/// linearization in which `u` changes nothing, is followed by a blind write (which hides it), or is followed by a known
/// operation that changes nothing and would hold without `u` (which can go first) can be turned into one without `u`
/// or with `u` later, and the search only linearizes `u` right before an operation that needs it. `Unneeded(v)`: the
/// last operation was an unknown one that changed the value from `v`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Free,
    Unneeded(Option<u64>),
}

/// The SplitMix64 finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Passes the (already mixed) `u64` key of the cache map through unchanged.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// One visited configuration.
struct CacheEntry {
    /// Its compact set of linearized known operations in `Cache::words`.
    start: usize,
    len: usize,
    /// Its set of linearized unknown operations: `Cache::unknown_words` from here.
    unknown_start: usize,
    value: Option<u64>,
    tag: Tag,
    /// The next entry with the same hash, or `usize::MAX`.
    next: usize,
}

/// The visited configurations: (linearized known set, linearized unknown set, value, tag).
///
/// A configuration is skipped when one with the same known set, value and tag and a subset of its unknown set was
/// visited: the search from it failed (or is under way), and having fewer unknown operations left only removes
/// options. A known set is stored compactly as the number of leading all-ones words followed by (index, word) pairs
/// for the later nonzero words; known operations are numbered in invocation order, so a set is mostly a full prefix
/// plus a small window.
struct Cache {
    heads: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    entries: Vec<CacheEntry>,
    words: Vec<u64>,
    unknown_words: Vec<u64>,
    scratch: Vec<u64>,
    /// How many visited configurations lookups have compared against (charged to the search budget).
    comparisons: u64,
}

impl Cache {
    fn new() -> Self {
        Cache {
            heads: HashMap::default(),
            entries: Vec::new(),
            words: Vec::new(),
            unknown_words: Vec::new(),
            scratch: Vec::new(),
            comparisons: 0,
        }
    }

    /// Adds the configuration (`hash` covers all but the unknown set); false if it or one subsuming it was present.
    fn insert(
        &mut self,
        hash: u64,
        known: &[u64],
        unknown: &[u64],
        value: Option<u64>,
        tag: Tag,
    ) -> bool {
        self.scratch.clear();
        let full = known.iter().take_while(|&&w| w == u64::MAX).count();
        self.scratch.push(full as u64);
        for (i, &w) in known.iter().enumerate().skip(full) {
            if w != 0 {
                self.scratch.push(i as u64);
                self.scratch.push(w);
            }
        }
        let head = self.heads.get(&hash).copied().unwrap_or(usize::MAX);
        let mut at = head;
        while at != usize::MAX {
            self.comparisons += 1;
            let e = &self.entries[at];
            if e.value == value
                && e.tag == tag
                && self.words[e.start..e.start + e.len] == self.scratch[..]
                && self.unknown_words[e.unknown_start..e.unknown_start + unknown.len()]
                    .iter()
                    .zip(unknown)
                    .all(|(&visited, &now)| visited & !now == 0)
            {
                return false;
            }
            at = e.next;
        }
        let start = self.words.len();
        self.words.extend_from_slice(&self.scratch);
        let unknown_start = self.unknown_words.len();
        self.unknown_words.extend_from_slice(unknown);
        self.entries.push(CacheEntry {
            start,
            len: self.scratch.len(),
            unknown_start,
            value,
            tag,
            next: head,
        });
        self.heads.insert(hash, self.entries.len() - 1);
        true
    }
}

fn config_hash(known_hash: u64, value: Option<u64>, tag: Tag) -> u64 {
    let value_code = match value {
        None => 0x6A09_E667_F3BC_C908,
        Some(v) => mix(v ^ 0x3C6E_F372_FE94_F82B),
    };
    let tag_code = match tag {
        Tag::Free => 0,
        Tag::Unneeded(None) => 0xA54F_F53A_5F1D_36F1,
        Tag::Unneeded(Some(v)) => mix(v.wrapping_add(0x510E_527F_ADE6_82D1)),
    };
    mix(known_hash ^ value_code.rotate_left(17) ^ tag_code.rotate_left(41))
}

/// Where the search is in its scan for the next operation to linearize.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// At this entry of the event list (a known operation's invocation or completion).
    Known(usize),
    /// At position `pos` of the unknown candidates (see `check_key`), trying those invoked no later than the
    /// completion entry `limit`, the first pending one; `first_dead` is the first unlinearized unknown write of a
    /// dead value (`usize::MAX`: none), the only one of them that may go next.
    Unknown {
        pos: usize,
        limit: usize,
        first_dead: usize,
    },
}

/// A linearized operation, to undo on backtracking: which, where the scan chose it, and the value and tag before it.
struct Frame {
    op: usize,
    cursor: Cursor,
    value: Option<u64>,
    tag: Tag,
}

/// The deepest point the search reached before having to backtrack, for the explanation.
struct Furthest {
    depth: usize,
    /// The operation whose completion stopped the search.
    blocked: usize,
    value: Option<u64>,
    /// The last operations linearized (oldest first).
    recent: Vec<usize>,
    /// The other known operations that could have been linearized next.
    candidates: Vec<usize>,
    more_candidates: bool,
}

/// How many operations an explanation lists.
const EXPLAIN_RECENT: usize = 3;
const EXPLAIN_CANDIDATES: usize = 6;

/// The search's configuration (linearized set, value, tag) and its cache of visited ones.
///
/// Values are ids: `0..dead` for the values some operation compares against, and `dead` for any value that no
/// operation still to be linearized compares against. Such values are indistinguishable from then on, so the value and
/// tag are kept normalized: an id whose observers are all linearized becomes `dead`.
struct Search<'a> {
    /// The key's operations, with values renamed to ids.
    ops: &'a [KeyOp],
    /// The id each operation observes.
    observes: Vec<Option<usize>>,
    /// For each id, how many of its observers are not linearized.
    live: Vec<u32>,
    dead: u64,
    /// Operations `0..known` have a known outcome.
    known: usize,
    /// The linearized known operations, and a hash of that set (a xor of `bit_hash`).
    known_bits: Vec<u64>,
    known_hash: u64,
    bit_hash: Vec<u64>,
    /// The linearized unknown operations (bit `i - known` for operation `i`).
    unknown_bits: Vec<u64>,
    value: Option<u64>,
    tag: Tag,
    cache: Cache,
}

impl Search<'_> {
    fn linearized(&self, i: usize) -> bool {
        let (bits, b) = if i < self.known {
            (&self.known_bits, i)
        } else {
            (&self.unknown_bits, i - self.known)
        };
        bits[b / 64] & (1 << (b % 64)) != 0
    }

    /// Flips whether operation `i` is linearized.
    fn flip(&mut self, i: usize) {
        if i < self.known {
            self.known_bits[i / 64] ^= 1 << (i % 64);
            self.known_hash ^= self.bit_hash[i];
        } else {
            let b = i - self.known;
            self.unknown_bits[b / 64] ^= 1 << (b % 64);
        }
    }

    fn normalize(&self, value: Option<u64>) -> Option<u64> {
        match value {
            Some(v) if v != self.dead && self.live[v as usize] == 0 => Some(self.dead),
            other => other,
        }
    }

    /// Whether operation `i` is a write of a value nothing still to be linearized observes.
    fn writes_dead_value(&self, i: usize) -> bool {
        matches!(self.ops[i].effect, Effect::Write(v) if self.normalize(Some(v)) == Some(self.dead))
    }

    /// Linearizes operation `i` next if the model and the canonical form allow it and the resulting configuration is
    /// new; returns the frame that undoes it.
    fn try_push(&mut self, i: usize, cursor: Cursor) -> Option<Frame> {
        let op = self.ops[i];
        let before = self.value;
        let next = op.step(before)?;
        if let Tag::Unneeded(s0) = self.tag {
            // Right after an unknown operation, only an operation that needs it (see `Tag`).
            let also_without = op.known() && next == before && op.step(s0) == Some(s0);
            if op.is_blind_write() || also_without {
                return None;
            }
        }
        if let Some(x) = self.observes[i] {
            self.live[x] -= 1;
        }
        let value = self.normalize(next);
        let tag = if op.known() {
            Tag::Free
        } else {
            Tag::Unneeded(self.normalize(before))
        };
        // An unknown operation that changes nothing is left out.
        let mut added = op.known() || value != self.normalize(before);
        if added {
            self.flip(i);
            added = self.cache.insert(
                config_hash(self.known_hash, value, tag),
                &self.known_bits,
                &self.unknown_bits,
                value,
                tag,
            );
            if !added {
                self.flip(i);
            }
        }
        if !added {
            if let Some(x) = self.observes[i] {
                self.live[x] += 1;
            }
            return None;
        }
        let frame = Frame {
            op: i,
            cursor,
            value: self.value,
            tag: self.tag,
        };
        self.value = value;
        self.tag = tag;
        Some(frame)
    }

    /// Undoes the linearization of operation `i`.
    fn pop(&mut self, i: usize, frame: &Frame) {
        self.flip(i);
        if let Some(x) = self.observes[i] {
            self.live[x] += 1;
        }
        self.value = frame.value;
        self.tag = frame.tag;
    }
}

/// The Wing & Gong search with memoization over one key's operations (`ids`: indices into `records`).
///
/// Known operations take part through the time-ordered list of their invocations and completions, as in WGL.
/// Operations with an unknown outcome complete at +infinity, so they are kept apart and tried after the known
/// candidates, whenever they were invoked no later than the first pending completion. Four reductions keep them from
/// multiplying the search space, each preserving whether a linearization exists:
/// - values nothing still to be linearized compares against are indistinguishable, so they are merged (see `Search`);
/// - interchangeable unknown operations (identical ones, and writes of such values) go in invocation order;
/// - an unknown operation is only linearized when it changes the value and something needs it (see `Tag`);
/// - a configuration is skipped when one with fewer unknown operations spent was searched (see `Cache`).
pub(super) fn check_key(records: &[Record], ids: &[usize], budget: u64) -> KeyVerdict {
    let mut ops: Vec<KeyOp> = ids
        .iter()
        .filter_map(|&i| KeyOp::from_record(i, &records[i]))
        .collect();
    // Known operations first (low bits), each group in invocation order.
    ops.sort_by_key(|op| (!op.known(), op.invoked_at, op.record));
    let known = ops.iter().filter(|op| op.known()).count();
    if known == 0 {
        return KeyVerdict::Linearizable;
    }
    let n = ops.len();

    // Values to ids.
    let observed: BTreeSet<u64> = ops.iter().filter_map(KeyOp::observed).collect();
    let names: Vec<u64> = observed.iter().copied().collect();
    let dead = names.len() as u64;
    let id = |v: u64| names.binary_search(&v).map_or(dead, |i| i as u64);
    let renamed: Vec<KeyOp> = ops
        .iter()
        .map(|op| {
            let effect = match op.effect {
                Effect::Read(seen) => Effect::Read(seen.map(id)),
                Effect::Write(v) => Effect::Write(id(v)),
                Effect::Cas {
                    expected,
                    new,
                    succeeded,
                } => Effect::Cas {
                    expected: expected.map(id),
                    new: id(new),
                    succeeded,
                },
            };
            KeyOp { effect, ..*op }
        })
        .collect();
    let observes: Vec<Option<usize>> = renamed
        .iter()
        .map(|op| op.observed().map(|v| v as usize))
        .collect();
    let mut live = vec![0u32; names.len()];
    for &x in observes.iter().flatten() {
        live[x] += 1;
    }
    // For each unknown operation, the previous identical one.
    let mut twin = vec![usize::MAX; n];
    let mut last_like: BTreeMap<Effect, usize> = BTreeMap::new();
    for (i, op) in renamed.iter().enumerate().skip(known) {
        if let Some(prev) = last_like.insert(op.effect, i) {
            twin[i] = prev;
        }
    }
    // The unknown operations by kind and value (indexed by `slot`), each list in invocation order.
    let slot = |value: Option<u64>| value.map_or(0, |v| v as usize + 1);
    let mut writes = Vec::new();
    let mut writes_by_value = vec![Vec::new(); names.len() + 2];
    let mut cas_by_expected = vec![Vec::new(); names.len() + 2];
    let mut cas_by_new = vec![Vec::new(); names.len() + 2];
    for (i, op) in renamed.iter().enumerate().skip(known) {
        match op.effect {
            Effect::Write(v) => {
                writes.push(i);
                writes_by_value[slot(Some(v))].push(i);
            }
            Effect::Cas { expected, new, .. } => {
                cas_by_expected[slot(expected)].push(i);
                cas_by_new[slot(Some(new))].push(i);
            }
            Effect::Read(_) => unreachable!("unknown reads are dropped"),
        }
    }

    // The known operations' events in time order, calls before completions at the same time (closed intervals), as
    // a doubly linked list over entries 1..=2k with sentinels HEAD = 0 and TAIL = 2k + 1.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * known);
    for (i, op) in ops.iter().enumerate().take(known) {
        events.push((op.invoked_at, false, i));
        events.push((op.completed_at.expect("known"), true, i));
    }
    events.sort_unstable();
    const HEAD: usize = 0;
    let tail = 2 * known + 1;
    let mut next: Vec<usize> = (1..=tail + 1).collect();
    let mut prev: Vec<usize> = (0..=tail).map(|i| i.saturating_sub(1)).collect();
    next[tail] = tail;
    let mut entry_op = vec![usize::MAX; tail + 1];
    let mut entry_time = vec![0u64; tail + 1];
    let mut is_call = vec![false; tail + 1];
    let mut partner = vec![usize::MAX; tail + 1];
    let mut call_entry = vec![usize::MAX; known];
    for (pos, &(time, is_return, op)) in events.iter().enumerate() {
        let e = pos + 1;
        entry_op[e] = op;
        entry_time[e] = time;
        if is_return {
            partner[call_entry[op]] = e;
        } else {
            is_call[e] = true;
            call_entry[op] = e;
        }
    }
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, m: usize| {
        next[prev[e]] = next[e];
        prev[next[e]] = prev[e];
        next[prev[m]] = next[m];
        prev[next[m]] = prev[m];
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize, m: usize| {
        next[prev[m]] = m;
        prev[next[m]] = m;
        next[prev[e]] = e;
        prev[next[e]] = e;
    };

    let mut search = Search {
        ops: &renamed,
        observes,
        live,
        dead,
        known,
        known_bits: vec![0; known.div_ceil(64)],
        known_hash: 0,
        unknown_bits: vec![0; (n - known).div_ceil(64)],
        bit_hash: (0..known)
            .map(|i| mix(i as u64 ^ 0x243F_6A88_85A3_08D3))
            .collect(),
        value: None,
        tag: Tag::Free,
        cache: Cache::new(),
    };
    let mut linearized_known = 0usize;
    let mut stack: Vec<Frame> = Vec::new();
    let mut furthest: Option<Furthest> = None;
    let mut steps = 0u64;
    // Whether linearizing unknown operation `u` now could lead anywhere (see `Tag`): after it, and maybe a chain of
    // unknown CASes each needing the previous value, some known candidate (invoked before the completion entry
    // `limit`) must need the last value written. Edges are (value before, value after) of each such step.
    let needed_next = |search: &Search, next: &[usize], u: usize, limit: usize| -> bool {
        let before = search.value;
        let Some(written) = renamed[u].step(before).map(|v| search.normalize(v)) else {
            return false;
        };
        if written == before {
            return false;
        }
        let mut edges = vec![(before, written)];
        let mut reached = vec![written];
        let mut i = 0;
        while i < reached.len() {
            let from = reached[i];
            i += 1;
            for &c in &cas_by_expected[slot(from)] {
                if c == u || search.linearized(c) || ops[c].invoked_at > entry_time[limit] {
                    continue;
                }
                let to = search.normalize(renamed[c].step(from).expect("unknown CASes apply"));
                if to != from {
                    edges.push((from, to));
                    if !reached.contains(&to) {
                        reached.push(to);
                    }
                }
            }
        }
        let mut at = next[HEAD];
        while at != limit {
            let o = &renamed[entry_op[at]];
            if !o.is_blind_write()
                && edges.iter().any(|&(from, to)| {
                    let after = o.step(to);
                    after.is_some() && !(after == Some(to) && o.step(from) == Some(from))
                })
            {
                return true;
            }
            at = next[at];
        }
        false
    };
    // The candidate lists of the unknown phases under way, innermost last, and spare ones to reuse.
    let mut lists: Vec<Vec<usize>> = Vec::new();
    let mut spare: Vec<Vec<usize>> = Vec::new();
    let mut cursor = Cursor::Known(next[HEAD]);
    loop {
        if linearized_known == known {
            return KeyVerdict::Linearizable;
        }
        steps += 1;
        if steps + search.cache.comparisons > budget {
            return KeyVerdict::BudgetExceeded;
        }
        match cursor {
            Cursor::Known(e) if is_call[e] => {
                if let Some(frame) = search.try_push(entry_op[e], cursor) {
                    stack.push(frame);
                    linearized_known += 1;
                    lift(&mut next, &mut prev, e, partner[e]);
                    cursor = Cursor::Known(next[HEAD]);
                } else {
                    cursor = Cursor::Known(next[e]);
                }
            }
            Cursor::Known(e) => {
                // The first pending completion (the list never runs out while known operations are pending): no
                // known operation invoked before it can go next; try the unknown ones, then backtrack.
                if furthest.as_ref().is_none_or(|f| stack.len() > f.depth) {
                    furthest = Some(furthest_point(&stack, e, &next, &entry_op, search.value));
                }
                // The unknown candidates: unless the tag rules out a blind write, the writes of values some known
                // candidate needs (directly or through a chain of unknown CASes), or all writes if one needs just
                // another value than the current one; then the CASes expecting the current value.
                let value = search.value;
                let eligible =
                    |i: &usize| !search.linearized(*i) && ops[*i].invoked_at <= entry_time[e];
                let mut list = spare.pop().unwrap_or_default();
                list.clear();
                let mut first_dead = usize::MAX;
                if search.tag == Tag::Free {
                    let mut any = false;
                    let mut targets: Vec<Option<u64>> = Vec::new();
                    let mut at = next[HEAD];
                    while at != e {
                        let o = &renamed[entry_op[at]];
                        if o.step(value) != Some(value) {
                            match o.effect {
                                Effect::Read(x) => targets.push(x),
                                Effect::Cas {
                                    expected,
                                    succeeded: true,
                                    ..
                                } if expected != value => targets.push(expected),
                                Effect::Cas {
                                    succeeded: false, ..
                                } => any = true,
                                _ => {}
                            }
                        }
                        at = next[at];
                    }
                    if any {
                        list.extend(writes.iter().filter(|i| eligible(i)));
                        first_dead = writes
                            .iter()
                            .copied()
                            .find(|&w| !search.linearized(w) && search.writes_dead_value(w))
                            .unwrap_or(usize::MAX);
                    } else {
                        let mut i = 0;
                        while i < targets.len() {
                            for c in cas_by_new[slot(targets[i])].iter().filter(|c| eligible(c)) {
                                if let Effect::Cas { expected, .. } = renamed[*c].effect {
                                    if !targets.contains(&expected) {
                                        targets.push(expected);
                                    }
                                }
                            }
                            i += 1;
                        }
                        for &t in &targets {
                            if t.is_some() && t != value {
                                list.extend(
                                    writes_by_value[slot(t)].iter().filter(|i| eligible(i)),
                                );
                            }
                        }
                        list.sort_unstable();
                        list.dedup();
                    }
                }
                list.extend(cas_by_expected[slot(value)].iter().filter(|i| eligible(i)));
                lists.push(list);
                cursor = Cursor::Unknown {
                    pos: 0,
                    limit: e,
                    first_dead,
                };
            }
            Cursor::Unknown {
                pos,
                limit,
                first_dead,
            } if pos < lists.last().map_or(0, Vec::len) => {
                let op = lists.last().expect("checked")[pos];
                let ready = (twin[op] == usize::MAX || search.linearized(twin[op]))
                    && (op == first_dead || !search.writes_dead_value(op))
                    && needed_next(&search, &next, op, limit);
                if let Some(frame) = ready.then(|| search.try_push(op, cursor)).flatten() {
                    stack.push(frame);
                    cursor = Cursor::Known(next[HEAD]);
                } else {
                    cursor = Cursor::Unknown {
                        pos: pos + 1,
                        limit,
                        first_dead,
                    };
                }
            }
            Cursor::Unknown { .. } => {
                spare.extend(lists.pop());
                let Some(frame) = stack.pop() else {
                    let f = furthest.expect("recorded before any backtracking");
                    return KeyVerdict::NotLinearizable(explain(records, &ops, &names, &f));
                };
                search.pop(frame.op, &frame);
                cursor = match frame.cursor {
                    Cursor::Known(e) => {
                        linearized_known -= 1;
                        unlift(&mut next, &mut prev, e, partner[e]);
                        Cursor::Known(next[e])
                    }
                    Cursor::Unknown {
                        pos,
                        limit,
                        first_dead,
                    } => Cursor::Unknown {
                        pos: pos + 1,
                        limit,
                        first_dead,
                    },
                };
            }
        }
    }
}

/// Records where the search stands when blocked at completion entry `blocked_at`.
fn furthest_point(
    stack: &[Frame],
    blocked_at: usize,
    next: &[usize],
    entry_op: &[usize],
    value: Option<u64>,
) -> Furthest {
    let blocked = entry_op[blocked_at];
    let mut candidates = Vec::new();
    let mut more_candidates = false;
    let mut at = next[0];
    while at != blocked_at {
        if entry_op[at] != blocked {
            if candidates.len() == EXPLAIN_CANDIDATES {
                more_candidates = true;
                break;
            }
            candidates.push(entry_op[at]);
        }
        at = next[at];
    }
    let skip = stack.len().saturating_sub(EXPLAIN_RECENT);
    let recent = stack[skip..].iter().map(|f| f.op).collect();
    Furthest {
        depth: stack.len(),
        blocked,
        value,
        recent,
        candidates,
        more_candidates,
    }
}

/// A short description of one operation: `#id c<client> <op> [<invoked>, <completed or ?>]`.
fn describe(records: &[Record], op: &KeyOp) -> String {
    let record = &records[op.record];
    let body = match (record.op, record.outcome) {
        (Op::Read { .. }, Outcome::Completed { result, .. }) => match result {
            OpResult::Read(v) => format!("read -> {v:?}"),
            _ => "read".to_string(),
        },
        (Op::Read { .. }, _) => "read".to_string(),
        (Op::Write { value, .. }, _) => format!("write {value}"),
        (Op::Cas { expected, new, .. }, outcome) => {
            let result = match outcome {
                Outcome::Completed {
                    result: OpResult::Cas(ok),
                    ..
                } => ok.to_string(),
                _ => "?".to_string(),
            };
            format!("cas {expected:?} -> {new} = {result}")
        }
    };
    let completed = match op.completed_at {
        Some(at) => at.to_string(),
        None => "?".to_string(),
    };
    format!(
        "#{} c{} {} [{}, {}]",
        op.record, record.client, body, op.invoked_at, completed
    )
}

/// The explanation of a key's failure (`ops` with their original values; `names` maps value ids back).
fn explain(records: &[Record], ops: &[KeyOp], names: &[u64], f: &Furthest) -> String {
    let list = |ids: &[usize]| -> String {
        ids.iter()
            .map(|&i| describe(records, &ops[i]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!("cannot linearize {}", describe(records, &ops[f.blocked]));
    if f.depth == 0 {
        out.push_str(" first (value absent)");
    } else {
        let value = match f.value {
            None => "absent".to_string(),
            Some(id) => match names.get(id as usize) {
                Some(v) => v.to_string(),
                None => "one nothing later reads".to_string(),
            },
        };
        out.push_str(&format!(
            " after {} ops (last: {}; value then {value})",
            f.depth,
            list(&f.recent)
        ));
    }
    if !f.candidates.is_empty() {
        out.push_str(&format!("; other candidates: {}", list(&f.candidates)));
        if f.more_candidates {
            out.push_str(", ...");
        }
    }
    out
}
