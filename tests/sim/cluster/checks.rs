//! The invariants checked after every event, and the final reads of every key.

use super::*;

impl Sim {
    /// Reads every key through the leader (linearizable reads), recorded in the history.
    pub(super) fn final_reads(&mut self) -> Result<(), Fail> {
        for key in 0..KEYS {
            let leader = (0..self.nodes.len())
                .find(|&i| {
                    self.nodes[i]
                        .live
                        .as_ref()
                        .is_some_and(|l| l.raft.role() == Role::Leader)
                })
                .ok_or_else(|| self.fail("no leader for the final reads".to_string()))?;
            self.clients[0].target = leader;
            self.start_op(0, Op::Read { key }, false)?;
            let deadline = self.now + 5_000;
            while self.clients[0].pending.is_some() && self.now < deadline {
                self.run_until(self.now + 10)?;
            }
            if self.clients[0].pending.is_some() {
                return Err(self.fail(format!("final read of key {key} did not complete")));
            }
        }
        Ok(())
    }

    /// Election safety, leader completeness, monotonic commit and apply: after every event.
    pub(super) fn check_invariants(&mut self) -> Result<(), Fail> {
        for i in 0..self.nodes.len() {
            let Some(live) = self.nodes[i].live.as_mut() else {
                continue;
            };
            let (commit, term, role) =
                (live.raft.commit_index(), live.raft.term(), live.raft.role());
            let last_commit = live.last_commit;
            live.last_commit = commit;
            if commit < last_commit {
                return Err(self.fail(format!(
                    "n{i} commit went back from {last_commit} to {commit}"
                )));
            }
            self.report.max_term = self.report.max_term.max(term);
            if role != Role::Leader {
                continue;
            }
            let id = self.nodes[i].id;
            if let Some(other) = self.leaders.insert(term, id) {
                if other != id {
                    return Err(self.fail(format!(
                        "election safety: n{} and n{} both lead term {term}",
                        other.0 - 1,
                        i
                    )));
                }
            }
            if self.checked_leader_terms.get(&i) != Some(&term) {
                self.checked_leader_terms.insert(i, term);
                self.check_leader_completeness(i)?;
            }
        }
        Ok(())
    }

    pub(super) fn check_leader_completeness(&self, i: usize) -> Result<(), Fail> {
        let log = self.nodes[i].live.as_ref().expect("live").raft.log();
        for (&index, (term, _)) in self.global_applied.range(log.snapshot_index() + 1..) {
            if log.term(index) != Some(*term) {
                return Err(self.fail(format!(
                    "leader completeness: n{i} leads without committed entry {index} (term {term}, has {:?})",
                    log.term(index)
                )));
            }
        }
        Ok(())
    }

    /// Log matching: two logs holding an entry with the same index and term hold the same entries up to it.
    pub(super) fn check_log_matching(&self) -> Result<(), Fail> {
        let lives: Vec<(usize, &Live)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.live.as_ref().map(|l| (i, l)))
            .collect();
        for (a, la) in &lives {
            for (b, lb) in &lives {
                if a >= b {
                    continue;
                }
                let (x, y) = (la.raft.log(), lb.raft.log());
                let lo = x.first_index().max(y.first_index());
                let hi = x.last_index().min(y.last_index());
                let Some(top) = (lo..=hi)
                    .rev()
                    .find(|&k| x.term(k).is_some() && x.term(k) == y.term(k))
                else {
                    continue;
                };
                for k in lo..=top {
                    if x.get(k) != y.get(k) {
                        return Err(self.fail(format!(
                            "log matching: n{a} and n{b} agree at {top} but differ at {k}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
