//! The agent's TTL timers: when each of its TTL checks expires unless updated. The HTTP routes arm a timer
//! on register and on every pass/warn/fail/update, and forget it on deregister; one task (on shard 0) takes
//! the expired ones and turns them critical with `TTL expired` in the local state ([`crate::api::expire_ttl`]),
//! which anti-entropy syncs to the catalog.
//!
//! The table is shared by the shards behind a mutex (held only for a map operation, never across an await)
//! and bounded by [`TTL_CHECKS_MAX`]. It is not persisted: after a restart a TTL check keeps its last status
//! until it is updated again.

use std::collections::BTreeMap;

/// TTL checks one agent times.
pub const TTL_CHECKS_MAX: usize = 65_536;
/// How often the expiry task looks at the table.
pub const TICK_MS: u64 = 100;
/// How soon a failed expiry proposal is tried again.
pub const RETRY_MS: u64 = 1_000;

/// Deadlines of this agent's TTL checks, by check ID (milliseconds on the agent's monotonic clock).
#[derive(Clone, Debug, Default)]
pub struct TtlTable {
    deadlines: BTreeMap<String, u64>,
}

impl TtlTable {
    /// Arms (or re-arms) `id` to expire `ttl_ms` after `now_ms`; `false` when the table is full.
    pub fn arm(&mut self, id: &str, ttl_ms: u64, now_ms: u64) -> bool {
        if self.deadlines.len() >= TTL_CHECKS_MAX && !self.deadlines.contains_key(id) {
            return false;
        }
        self.deadlines
            .insert(id.to_string(), now_ms.saturating_add(ttl_ms));
        true
    }

    /// Forgets `id`.
    pub fn forget(&mut self, id: &str) {
        self.deadlines.remove(id);
    }

    /// Removes and returns the checks whose deadline is at or before `now_ms`, ID-ascending.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<String> {
        let expired: Vec<String> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.deadlines.remove(id);
        }
        expired
    }

    /// How many checks are timed.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether no check is timed.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_once_and_rearms() {
        let mut table = TtlTable::default();
        assert!(table.arm("a", 1_000, 0));
        assert!(table.arm("b", 5_000, 0));
        assert!(table.take_expired(999).is_empty());
        assert_eq!(table.take_expired(1_000), vec!["a".to_string()]);
        assert!(table.take_expired(2_000).is_empty());
        table.arm("b", 5_000, 4_000);
        assert!(table.take_expired(5_000).is_empty());
        table.forget("b");
        assert!(table.is_empty());
    }
}
