//! Faults chosen by the seed (partitions, crashes, power cuts, membership changes, transfers), healing and convergence.

use super::*;

impl Sim {
    pub(super) fn inject_fault(&mut self) -> Result<(), Fail> {
        let n = self.nodes.len();
        match self.rng.range(0, 100) {
            0..=14 => {
                let side: Vec<bool> = (0..n).map(|_| self.rng.range(0, 2) == 0).collect();
                self.partition(&side);
            }
            15..=29 => {
                // Cut the leader off with at most one follower: the majority elects a new leader while the old
                // one may still believe it leads.
                let leader = (0..n).find(|&i| {
                    self.nodes[i]
                        .live
                        .as_ref()
                        .is_some_and(|l| l.raft.role() == Role::Leader)
                });
                if let Some(l) = leader {
                    let buddy = self.rng.range(0, n as u64) as usize;
                    let side: Vec<bool> = (0..n).map(|i| i == l || (i == buddy && n > 3)).collect();
                    self.partition(&side);
                }
            }
            30..=37 => {
                let (a, b) = (
                    self.rng.range(0, n as u64) as usize,
                    self.rng.range(0, n as u64) as usize,
                );
                self.net.blocked[a][b] = true;
                self.note(format!("one-way block n{a} -> n{b}"));
            }
            38..=49 => {
                self.net.blocked = vec![vec![false; n]; n];
                self.note("heal partitions".to_string());
            }
            50..=61 => {
                let i = self.rng.range(0, n as u64) as usize;
                self.crash(i);
            }
            62..=69 => {
                let i = self.rng.range(0, n as u64) as usize;
                if self.nodes[i].live.is_some() {
                    let calls = self.rng.range(0, 12);
                    self.nodes[i].disk.power_cut_after(calls);
                    self.note(format!("n{i} power cut after {calls} disk calls"));
                }
            }
            70..=79 => {
                if let Some(i) = (0..n).find(|&i| self.nodes[i].live.is_none()) {
                    self.restart(i)?;
                }
            }
            80..=86 => self.change_membership()?,
            87..=90 => {
                if let Some(l) = self.leader_index() {
                    self.note(format!("n{l} asked to transfer leadership"));
                    self.step(l, Input::TransferLeadership { ctx: 0, to: None })?;
                }
            }
            _ => {
                self.net.drop_pct = self.rng.range(0, 15);
                self.net.dup_pct = self.rng.range(0, 10);
                self.net.delay_ms_max = 5 + self.rng.range(0, 60);
                self.note(format!(
                    "net drop {}% dup {}% delay<{}ms",
                    self.net.drop_pct, self.net.dup_pct, self.net.delay_ms_max
                ));
            }
        }
        Ok(())
    }

    pub(super) fn leader_index(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            self.nodes[i]
                .live
                .as_ref()
                .is_some_and(|l| l.raft.role() == Role::Leader)
        })
    }

    /// A random single-server change on the leader: remove a voter (keeping at least three), add a missing server
    /// as a non-voter, or promote a non-voter.
    pub(super) fn change_membership(&mut self) -> Result<(), Fail> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let target = self.rng.range(0, self.nodes.len() as u64) as usize;
        let config = self.nodes[l]
            .live
            .as_ref()
            .expect("live")
            .raft
            .config()
            .clone();
        let id = self.nodes[target].id;
        let address = format!("127.0.0.{}:8300", target + 1);
        let change = match config.get(id).map(|s| s.suffrage) {
            Some(Suffrage::Voter) if config.voters().count() > 3 && target != l => {
                MembershipChange::Remove { id }
            }
            Some(Suffrage::Voter) => return Ok(()),
            Some(Suffrage::Nonvoter) => MembershipChange::AddVoter { id, address },
            None => MembershipChange::AddNonvoter { id, address },
        };
        self.note(format!("n{l} membership change {change:?}"));
        self.step(l, Input::ChangeMembership { ctx: 0, change })
    }

    /// After healing: adds back, one change at a time, every server the configuration lacks as a voter.
    pub(super) fn repair_membership(&mut self) -> Result<(), Fail> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let raft = &self.nodes[l].live.as_ref().expect("live").raft;
        if raft.config_index() > raft.commit_index() {
            return Ok(());
        }
        let config = raft.config().clone();
        let missing = (0..self.nodes.len()).find(|&i| !config.is_voter(self.nodes[i].id));
        if let Some(i) = missing {
            let change = MembershipChange::AddVoter {
                id: self.nodes[i].id,
                address: format!("127.0.0.{}:8300", i + 1),
            };
            self.note(format!("n{l} repairs membership: {change:?}"));
            self.step(l, Input::ChangeMembership { ctx: 0, change })?;
        }
        Ok(())
    }

    pub(super) fn partition(&mut self, side: &[bool]) {
        for a in 0..side.len() {
            for b in 0..side.len() {
                self.net.blocked[a][b] = side[a] != side[b];
            }
        }
        self.note(format!("partition {side:?}"));
    }

    /// Ends the chaos: no partitions, a clean network, every node running, clients stopped.
    pub(super) fn heal(&mut self) {
        let n = self.nodes.len();
        self.net = Net {
            drop_pct: 0,
            dup_pct: 0,
            delay_ms_max: 10,
            blocked: vec![vec![false; n]; n],
        };
        self.clients_on = false;
        for i in 0..n {
            self.nodes[i].disk.power_cut_after(u64::MAX);
            if self.nodes[i].live.is_none() {
                self.schedule(1, Event::Restart { node: i });
            }
        }
        self.note("heal everything".to_string());
    }

    /// Every node runs, one leader leads the highest term, and every node applied everything the leader holds.
    pub(super) fn converged(&self) -> bool {
        let lives: Vec<&Live> = self.nodes.iter().filter_map(|n| n.live.as_ref()).collect();
        if lives.len() != self.nodes.len() || self.clients.iter().any(|c| c.pending.is_some()) {
            return false;
        }
        let Some(leader) = lives.iter().find(|l| l.raft.role() == Role::Leader) else {
            return false;
        };
        let last = leader.raft.log().last_index();
        let full = self
            .nodes
            .iter()
            .all(|n| leader.raft.config().is_voter(n.id));
        full && leader.raft.commit_index() == last
            && lives.iter().all(|l| {
                l.applied == last && l.raft.term() == leader.raft.term() && l.kv == leader.kv
            })
    }
}
