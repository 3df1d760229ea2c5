//! Consumer groups: the last delivered id, the pending entries list (PEL) and the consumers,
//! each with its own view of the PEL.

use std::collections::{BTreeMap, BTreeSet};

use super::StreamId;

/// A delivered, not yet acknowledged entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// Last delivery, Unix milliseconds.
    pub delivery_time: i64,
    /// Number of deliveries.
    pub delivery_count: u64,
    /// The consumer it was last delivered to.
    pub consumer: Vec<u8>,
}

/// One consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// Last time it was seen, Unix milliseconds.
    pub seen_time: i64,
    /// Ids of the pending entries it owns.
    pub pending: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The last id delivered to the group.
    pub last_id: StreamId,
    /// Entries the group has read, when known (Redis's -1 is `None`).
    pub entries_read: Option<u64>,
    /// The pending entries list.
    pub pel: BTreeMap<StreamId, Nack>,
    /// The consumers by name.
    pub consumers: BTreeMap<Vec<u8>, ConsumerState>,
}

impl ConsumerGroup {
    /// A group that starts after `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> ConsumerGroup {
        ConsumerGroup {
            last_id,
            entries_read,
            ..ConsumerGroup::default()
        }
    }

    /// Creates consumer `name` seen at `now`; `false` when it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.to_vec(),
            ConsumerState {
                seen_time: now,
                pending: BTreeSet::new(),
            },
        );
        true
    }

    /// Marks consumer `name` seen at `now`; `false` when there is none.
    pub fn touch_consumer(&mut self, name: &[u8], now: i64) -> bool {
        match self.consumers.get_mut(name) {
            Some(consumer) => {
                consumer.seen_time = now;
                true
            }
            None => false,
        }
    }

    /// Deletes consumer `name` and its pending entries; returns how many it had, or `None`.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pel.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Records `id` as delivered to `consumer` at `now`: a new PEL entry, or an existing one
    /// moved to this consumer with its delivery count reset (Redis's XREADGROUP).
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: i64) {
        if let Some(old) = self.pel.get(&id).map(|nack| nack.consumer.clone())
            && let Some(owner) = self.consumers.get_mut(&old)
        {
            owner.pending.remove(&id);
        }
        self.pel.insert(
            id,
            Nack {
                delivery_time: now,
                delivery_count: 1,
                consumer: consumer.to_vec(),
            },
        );
        if let Some(owner) = self.consumers.get_mut(consumer) {
            owner.pending.insert(id);
        }
    }

    /// Gives PEL entry `id` to `consumer` (moving it from its owner); `false` when absent.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8]) -> bool {
        let Some(nack) = self.pel.get_mut(&id) else {
            return false;
        };
        if nack.consumer != consumer {
            if let Some(owner) = self.consumers.get_mut(&nack.consumer) {
                owner.pending.remove(&id);
            }
            nack.consumer = consumer.to_vec();
        }
        if let Some(owner) = self.consumers.get_mut(consumer) {
            owner.pending.insert(id);
        }
        true
    }

    /// Acknowledges `id`: removes it from the PEL and its owner; `false` when not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(nack) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(owner) = self.consumers.get_mut(&nack.consumer) {
            owner.pending.remove(&id);
        }
        true
    }

    /// Heap bytes held (for `MEMORY USAGE`).
    pub fn heap_bytes(&self) -> usize {
        let pel: usize = self.pel.values().map(|nack| 64 + nack.consumer.len()).sum();
        let consumers: usize = self
            .consumers
            .iter()
            .map(|(name, state)| 64 + name.len() + state.pending.len() * 24)
            .sum();
        pel + consumers
    }
}
