//! Piggybacked broadcasts with a retransmit limit (memberlist queue.go TransmitLimitedQueue).
//!
//! Order: fewest transmissions first, then the longer message, then the newer one. A broadcast with a key (memberlist's
//! alive/suspect/dead, keyed by node name) replaces a queued one with the same key. Each is sent at most
//! `retransmit_limit` times; the queue keeps at most `max` entries, dropping the most-sent (then oldest) first.

use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Ordering key: (transmits, longer first, newer first).
type Order = (u64, Reverse<usize>, Reverse<u64>);

#[derive(Clone, Debug)]
struct Item {
    key: Option<String>,
    bytes: Vec<u8>,
}

/// A bounded queue of broadcasts.
#[derive(Clone, Debug, Default)]
pub struct TransmitQueue {
    items: BTreeMap<Order, Item>,
    by_key: BTreeMap<String, Order>,
    next_id: u64,
    max: usize,
}

impl TransmitQueue {
    /// An empty queue holding at most `max` broadcasts.
    pub fn new(max: usize) -> TransmitQueue {
        TransmitQueue {
            max: max.max(1),
            ..TransmitQueue::default()
        }
    }

    /// Broadcasts queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `bytes`; with `key`, replaces the queued broadcast with that key.
    pub fn push(&mut self, key: Option<String>, bytes: Vec<u8>) {
        if let Some(k) = &key {
            if let Some(old) = self.by_key.remove(k) {
                self.items.remove(&old);
            }
        }
        self.next_id += 1;
        let order = (0, Reverse(bytes.len()), Reverse(self.next_id));
        if let Some(k) = &key {
            self.by_key.insert(k.clone(), order);
        }
        self.items.insert(order, Item { key, bytes });
        while self.items.len() > self.max {
            if let Some((_, item)) = self.items.pop_last() {
                if let Some(k) = item.key {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    /// Takes broadcasts for one packet: each costs its length + `overhead_bytes`, all within `limit_bytes`.
    /// A broadcast that has now been sent `retransmit_limit` times leaves the queue.
    pub fn take(
        &mut self,
        overhead_bytes: usize,
        limit_bytes: usize,
        retransmit_limit: u64,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut chosen: Vec<Order> = Vec::new();
        for (order, item) in &self.items {
            if used + overhead_bytes >= limit_bytes {
                break;
            }
            let cost = item.bytes.len() + overhead_bytes;
            if used + cost > limit_bytes {
                continue;
            }
            used += cost;
            chosen.push(*order);
            if out.len() + chosen.len() >= super::packet::COMPOUND_PARTS_MAX {
                break;
            }
        }
        for order in chosen {
            let Some(item) = self.items.remove(&order) else {
                continue;
            };
            out.push(item.bytes.clone());
            let transmits = order.0 + 1;
            if transmits >= retransmit_limit {
                if let Some(k) = &item.key {
                    self.by_key.remove(k);
                }
                continue;
            }
            let new_order = (transmits, order.1, order.2);
            if let Some(k) = &item.key {
                self.by_key.insert(k.clone(), new_order);
            }
            self.items.insert(new_order, item);
        }
        out
    }
}
