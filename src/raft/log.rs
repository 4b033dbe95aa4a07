//! The in-memory Raft log: the entries since the last snapshot (plus a few trailing ones for slow followers),
//! the snapshot's index and term, and what is known durable. Pure bookkeeping; the driver persists.

use super::types::{Entry, Index, Term};
use std::collections::VecDeque;

/// The log as the Raft core sees it.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Entries from `start` on, consecutive.
    entries: VecDeque<Entry>,
    /// The index of `entries[0]` (or the next index when `entries` is empty).
    start: Index,
    /// The last index covered by the latest snapshot.
    snapshot_index: Index,
    /// The term of that entry.
    snapshot_term: Term,
    /// The highest index the driver reported durable (with the term it had then).
    persisted: Index,
}

/// What a follower must do to its stored log to accept an append.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppendPlan {
    /// Remove stored entries from this index on first.
    pub truncate_from: Option<Index>,
    /// Then store these.
    pub new_entries: Vec<Entry>,
}

impl RaftLog {
    /// A log restored from a snapshot at (`snapshot_index`, `snapshot_term`) and the durable `entries`.
    /// Entries at or below the snapshot index are skipped; a gap after it drops the rest; and if the stored entry
    /// at the snapshot index has another term, every entry after it belongs to another history and is dropped
    /// (§7). The driver then trims its stored log to [`RaftLog::last_index`].
    pub fn restore(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>) -> RaftLog {
        let diverged = entries
            .iter()
            .any(|e| e.index == snapshot_index && e.term != snapshot_term && snapshot_index > 0);
        let entries = if diverged { Vec::new() } else { entries };
        let mut log = RaftLog {
            entries: VecDeque::new(),
            start: snapshot_index + 1,
            snapshot_index,
            snapshot_term,
            persisted: snapshot_index,
        };
        for e in entries {
            if e.index == log.last_index() + 1 {
                log.entries.push_back(e);
            } else if e.index > log.last_index() + 1 {
                break;
            }
        }
        log.persisted = log.last_index();
        log
    }

    /// The index of the last entry (the snapshot index when no entry follows it).
    pub fn last_index(&self) -> Index {
        self.start + self.entries.len() as u64 - 1
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.term(self.last_index()).unwrap_or(self.snapshot_term)
    }

    /// The first index whose entry is held in memory.
    pub fn first_index(&self) -> Index {
        self.start
    }

    /// The last index the snapshot covers.
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// The term of the snapshot's last entry.
    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    /// The highest index known durable.
    pub fn persisted(&self) -> Index {
        self.persisted
    }

    /// The term of the entry at `index`, if known (index 0 has term 0).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == 0 {
            return Some(0);
        }
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.start {
            return None;
        }
        self.entries
            .get((index - self.start) as usize)
            .map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn get(&self, index: Index) -> Option<&Entry> {
        index
            .checked_sub(self.start)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Entries `lo..=hi`, stopping after `bytes_max` payload bytes (at least one entry when any is asked).
    /// `None` when `lo` is no longer held (the follower needs a snapshot).
    pub fn slice(&self, lo: Index, hi: Index, bytes_max: u64) -> Option<Vec<Entry>> {
        if lo < self.start {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in lo..=hi.min(self.last_index()) {
            let e = self.get(index)?;
            bytes += e.size_bytes();
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }

    /// Appends an entry created by the leader; its index must be `last_index() + 1`.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push_back(entry);
    }

    /// Works out how to accept `entries` after (`prev_index`, `prev_term`): `None` when the log does not
    /// contain that entry; else the truncation (at the first conflicting entry) and the entries that are new.
    pub fn plan_append(
        &self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Option<AppendPlan> {
        if prev_index > self.last_index() {
            return None;
        }
        if prev_index >= self.snapshot_index && self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let mut plan = AppendPlan::default();
        for (k, e) in entries.iter().enumerate() {
            if e.index <= self.snapshot_index {
                continue;
            }
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => plan.truncate_from = Some(e.index),
                None => {}
            }
            plan.new_entries = entries[k..].to_vec();
            break;
        }
        Some(plan)
    }

    /// Applies an [`AppendPlan`] to memory.
    pub fn apply_plan(&mut self, plan: &AppendPlan) {
        if let Some(from) = plan.truncate_from {
            self.truncate_from(from);
        }
        for e in &plan.new_entries {
            self.push(e.clone());
        }
    }

    /// Drops entries from `index` on (a conflict). The durable mark moves back with them.
    pub fn truncate_from(&mut self, index: Index) {
        let keep = index.saturating_sub(self.start) as usize;
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(self.last_index());
    }

    /// The driver made entries up to `index` durable while `index` had `term`.
    pub fn mark_persisted(&mut self, index: Index, term: Term) {
        if index <= self.last_index() && self.term(index) == Some(term) && index > self.persisted {
            self.persisted = index;
        }
    }

    /// The largest index at or below `index` whose entry's term is at most `term` (fast backtracking, used by
    /// both sides: the follower to build its hint, the leader to pick the next index to try). Stops at the first
    /// index whose term is unknown (compacted): the leader then falls back to a snapshot.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> Index {
        let mut i = index.min(self.last_index());
        while i > 0 {
            match self.term(i) {
                Some(t) if t > term => i -= 1,
                _ => break,
            }
        }
        i
    }

    /// A snapshot now covers `index`: remember its term and drop held entries before `keep_from`.
    pub fn compact(&mut self, index: Index, keep_from: Index) {
        let Some(term) = self.term(index) else {
            return;
        };
        if index <= self.snapshot_index {
            return;
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        let keep_from = keep_from.min(index + 1);
        while self.start < keep_from && !self.entries.is_empty() {
            self.entries.pop_front();
            self.start += 1;
        }
    }

    /// Replaces the whole log with a snapshot at (`index`, `term`) (a follower installed it).
    pub fn reset_to_snapshot(&mut self, index: Index, term: Term) {
        self.entries.clear();
        self.start = index + 1;
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.persisted = index;
    }

    /// Whether a candidate with (`last_index`, `last_term`) is at least as up to date as this log (§5.4.1).
    pub fn candidate_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Payload;

    fn e(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    fn log_of(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| e(i as u64 + 1, t))
            .collect();
        RaftLog::restore(0, 0, entries)
    }

    #[test]
    fn log_matching_append_truncates_only_at_a_conflict() {
        let log = log_of(&[1, 1, 2, 2]);
        // Same entries again: nothing new.
        let plan = log.plan_append(1, 1, &[e(2, 1), e(3, 2)]).unwrap();
        assert_eq!(plan, AppendPlan::default());
        // A conflict at 3: truncate there.
        let plan = log.plan_append(2, 1, &[e(3, 3), e(4, 3)]).unwrap();
        assert_eq!(plan.truncate_from, Some(3));
        assert_eq!(plan.new_entries.len(), 2);
        // prev term mismatch: reject.
        assert!(log.plan_append(3, 1, &[]).is_none());
        // Beyond the end: reject.
        assert!(log.plan_append(9, 2, &[]).is_none());
    }

    #[test]
    fn fast_backtracking_skips_whole_terms() {
        // Follower [1,1,2,2,2] gets an append after (5, term 3): its hint is the last entry of term <= 3 at or
        // below 5, i.e. (5, 2). A leader [1,1,3,3,3,3] then looks for the last index <= 5 with term <= 2: 2.
        let follower = log_of(&[1, 1, 2, 2, 2]);
        let hint = follower.find_conflict_by_term(5, 3);
        assert_eq!((hint, follower.term(hint)), (5, Some(2)));
        let leader = log_of(&[1, 1, 3, 3, 3, 3]);
        assert_eq!(leader.find_conflict_by_term(5, 2), 2);
        assert_eq!(follower.find_conflict_by_term(9, 1), 2);
        assert_eq!(follower.find_conflict_by_term(1, 0), 0);
    }

    #[test]
    fn compaction_keeps_trailing_entries_and_the_snapshot_term() {
        let mut log = log_of(&[1, 1, 2, 2, 3, 3]);
        log.compact(5, 4);
        assert_eq!(
            (log.snapshot_index(), log.snapshot_term(), log.first_index()),
            (5, 3, 4)
        );
        assert_eq!(log.term(3), None);
        assert_eq!(log.term(4), Some(2));
        assert_eq!(log.last_index(), 6);
        assert!(log.slice(3, 6, u64::MAX).is_none());
        assert_eq!(log.slice(4, 6, u64::MAX).unwrap().len(), 3);
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let log = log_of(&[1, 2]);
        assert!(log.candidate_up_to_date(2, 2));
        assert!(log.candidate_up_to_date(1, 3));
        assert!(!log.candidate_up_to_date(5, 1));
        assert!(!log.candidate_up_to_date(1, 2));
    }
}
