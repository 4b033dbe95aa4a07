//! Lifeguard's dynamic suspicion timeout (memberlist suspicion.go) and local-health awareness (awareness.go).

use std::collections::BTreeSet;

/// A running suspicion of one node.
#[derive(Clone, Debug)]
pub struct Suspicion {
    /// Confirmations expected (k).
    pub k: u32,
    /// Confirmations counted so far (n ≤ k).
    pub n: u32,
    /// Minimum timeout.
    pub min_ms: u64,
    /// Maximum timeout.
    pub max_ms: u64,
    /// When the suspicion started.
    pub start_ms: u64,
    /// When the node is declared dead unless refuted.
    pub deadline_ms: u64,
    /// Who accused (the first accuser included; bounded by k + 1).
    pub confirmations: BTreeSet<String>,
}

impl Suspicion {
    /// A suspicion raised by `from` at `now_ms`: the timer runs `max` when confirmations are expected, else `min`.
    pub fn new(from: &str, k: u32, min_ms: u64, max_ms: u64, now_ms: u64) -> Suspicion {
        let timeout = if k < 1 { min_ms } else { max_ms };
        Suspicion {
            k,
            n: 0,
            min_ms,
            max_ms,
            start_ms: now_ms,
            deadline_ms: now_ms + timeout,
            confirmations: BTreeSet::from([from.to_string()]),
        }
    }

    /// Counts an independent confirmation from `from`; true when it was new (and should be re-gossiped).
    /// The deadline shrinks to `max − ln(n+1)/ln(k+1) × (max − min)`, never below `min`.
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.n >= self.k || self.confirmations.contains(from) {
            return false;
        }
        self.confirmations.insert(from.to_string());
        self.n += 1;
        self.deadline_ms =
            self.start_ms + remaining_timeout_ms(self.n, self.k, self.min_ms, self.max_ms);
        true
    }
}

/// The total suspicion timeout after `n` of `k` confirmations, floored to the millisecond, at least `min_ms`.
pub fn remaining_timeout_ms(n: u32, k: u32, min_ms: u64, max_ms: u64) -> u64 {
    let frac = ((n as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
    let raw = max_ms as f64 / 1000.0 - frac * ((max_ms as f64 - min_ms as f64) / 1000.0);
    let timeout = (1000.0 * raw).floor();
    let timeout = if timeout.is_finite() && timeout > 0.0 {
        timeout as u64
    } else {
        0
    };
    timeout.max(min_ms)
}

/// Lifeguard's local health score, 0 ..= max − 1; timeouts scale by score + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Awareness {
    /// The ceiling multiplier.
    pub max: u32,
    /// The score.
    pub score: u32,
}

impl Awareness {
    /// A healthy score with ceiling `max`.
    pub fn new(max: u32) -> Awareness {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Adds `delta`, clamped to 0 ..= max − 1.
    pub fn apply_delta(&mut self, delta: i64) {
        let s = (self.score as i64 + delta).clamp(0, self.max as i64 - 1);
        self.score = s as u32;
    }

    /// `timeout_ms × (score + 1)`.
    pub fn scale_timeout_ms(&self, timeout_ms: u64) -> u64 {
        timeout_ms * (self.score as u64 + 1)
    }
}
