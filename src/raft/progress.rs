//! The leader's view of each follower's replication (§5.3), with pipelining and an in-flight limit.

use super::types::Index;
use std::collections::VecDeque;

/// How the leader is replicating to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Finding where the logs match: one append at a time.
    Probe,
    /// Logs match: appends are pipelined, up to the in-flight limit.
    Replicate,
    /// The follower needs the snapshot at `index`; the driver is sending it.
    Snapshot {
        /// The snapshot being sent.
        index: Index,
        /// When it was handed to the driver.
        sent_at_ms: u64,
    },
}

/// One follower's replication progress.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known replicated on the follower.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    /// Probe, Replicate or Snapshot.
    pub state: ReplicationState,
    /// Last index of each append in flight (Replicate), oldest first.
    pub inflight: VecDeque<Index>,
    /// In Probe: an append is out and unanswered; wait for it (or the next heartbeat) before sending another.
    pub probe_sent: bool,
    /// The highest heartbeat round the follower has answered.
    pub acked_round: u64,
}

impl Progress {
    /// Progress for a follower whose log is assumed to end at `last_index` (optimistic, §5.3).
    pub fn new(last_index: Index) -> Progress {
        Progress {
            match_index: 0,
            next_index: last_index + 1,
            state: ReplicationState::Probe,
            inflight: VecDeque::new(),
            probe_sent: false,
            acked_round: 0,
        }
    }

    /// True when another append may be sent now.
    pub fn can_send(&self, inflight_max: usize) -> bool {
        match self.state {
            ReplicationState::Probe => !self.probe_sent,
            ReplicationState::Replicate => self.inflight.len() < inflight_max,
            ReplicationState::Snapshot { .. } => false,
        }
    }

    /// Records an append ending at `last` as sent.
    pub fn sent(&mut self, last: Index) {
        match self.state {
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Replicate => {
                self.next_index = last + 1;
                self.inflight.push_back(last);
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// The follower matched up to `index`; returns true if that was news.
    pub fn acknowledged(&mut self, index: Index) -> bool {
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        self.probe_sent = false;
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        self.next_index = self.next_index.max(index + 1);
        if self.state == ReplicationState::Probe {
            self.become_replicate();
        }
        true
    }

    /// Starts pipelining.
    pub fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.next_index.max(self.match_index + 1);
        self.inflight.clear();
    }

    /// Back to probing from `next_index`.
    pub fn become_probe(&mut self, next_index: Index) {
        self.state = ReplicationState::Probe;
        self.next_index = next_index.max(self.match_index + 1);
        self.inflight.clear();
        self.probe_sent = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_pipelines_after_a_match() {
        let mut p = Progress::new(10);
        assert!(p.can_send(4));
        p.sent(10);
        assert!(!p.can_send(4));
        assert!(p.acknowledged(10));
        assert_eq!(p.state, ReplicationState::Replicate);
        for last in [12, 14, 16, 18] {
            assert!(p.can_send(4));
            p.sent(last);
        }
        assert!(!p.can_send(4), "in-flight limit");
        p.acknowledged(14);
        assert_eq!(p.inflight.len(), 2);
        assert_eq!((p.match_index, p.next_index), (14, 19));
    }
}
