//! Streams, laid out as Redis lays them out: listpack nodes keyed by their master id (see
//! [`node`]), the stream's counters, and its consumer groups. Nodes are Redis's bytes, so a
//! snapshot writes them as they are and `DUMP` payloads equal Redis's.

mod group;
mod id;
mod listpack;
mod node;

use std::collections::BTreeMap;
use std::ops::Bound;

pub use group::{ConsumerGroup, ConsumerState, Nack};
pub use id::StreamId;
pub use listpack::Item as StreamItem;
pub use node::{EntryRef, Pairs};

use node::Slot;

/// Largest node Redis builds, whatever `stream-node-max-bytes` says.
const NODE_MAX_SIZE: usize = 1 << 30;
/// Most bytes reserved up front for a new node.
const NODE_PREALLOC: usize = 4096;

/// `stream-node-max-bytes` and `stream-node-max-entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest node in bytes (0: no limit).
    pub node_max_bytes: usize,
    /// Most entries in a node, tombstones included (0: no limit).
    pub node_max_entries: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            node_max_bytes: 4096,
            node_max_entries: 100,
        }
    }
}

/// How `XTRIM` and `XADD` trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop the entries below this id.
    MinId(StreamId),
}

/// Why an entry could not be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The id is not above the stream's last id.
    #[error("the id is equal or smaller than the stream's top item")]
    IdTooSmall,
    /// The fields and values add up to more than a node can hold.
    #[error("elements are too large to be stored")]
    TooLarge,
}

/// The entries of a stream and its counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamLog {
    nodes: BTreeMap<StreamId, Vec<u8>>,
    length: u64,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
}

/// A stream: its entries and its consumer groups by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamValue {
    /// The entries.
    pub log: StreamLog,
    /// Consumer groups, ordered by name as Redis lists them.
    pub groups: BTreeMap<Vec<u8>, ConsumerGroup>,
}

/// The counters of a stream, as snapshots store them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMeta {
    /// Live entries.
    pub length: u64,
    /// The last id ever added (or set by `XSETID`).
    pub last_id: StreamId,
    /// The first live id (`0-0` when empty).
    pub first_id: StreamId,
    /// The largest id ever deleted.
    pub max_deleted_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
}

impl StreamLog {
    /// Number of live entries.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The counters.
    pub fn meta(&self) -> StreamMeta {
        StreamMeta {
            length: self.length,
            last_id: self.last_id,
            first_id: self.first_id,
            max_deleted_id: self.max_deleted_id,
            entries_added: self.entries_added,
        }
    }

    /// The last id ever added (or set by `XSETID`).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// Number of nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes: master id and listpack bytes, in id order (what snapshots store).
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (StreamId, &[u8])> + '_ {
        self.nodes.iter().map(|(id, lp)| (*id, lp.as_slice()))
    }

    /// Rebuilds a stream from a snapshot's nodes and counters. The nodes must be valid stream
    /// listpacks (a loader checks them first); a malformed one reads as ending early.
    pub fn from_parts(
        nodes: impl IntoIterator<Item = (StreamId, Vec<u8>)>,
        meta: StreamMeta,
    ) -> StreamLog {
        StreamLog {
            nodes: nodes.into_iter().collect(),
            length: meta.length,
            last_id: meta.last_id,
            first_id: meta.first_id,
            max_deleted_id: meta.max_deleted_id,
            entries_added: meta.entries_added,
        }
    }

    /// Replaces the counters (a loader completing what an old snapshot did not store).
    pub fn set_meta(&mut self, meta: StreamMeta) {
        self.length = meta.length;
        self.last_id = meta.last_id;
        self.first_id = meta.first_id;
        self.max_deleted_id = meta.max_deleted_id;
        self.entries_added = meta.entries_added;
    }

    /// Heap bytes held by the nodes (for `MEMORY USAGE`).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.values().map(|lp| lp.capacity() + 48).sum()
    }

    /// Sets the counters `XSETID` changes.
    pub fn set_ids(
        &mut self,
        last_id: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    ) {
        self.last_id = last_id;
        if let Some(added) = entries_added {
            self.entries_added = added;
        }
        if let Some(max_deleted) = max_deleted {
            self.max_deleted_id = max_deleted;
        }
    }

    /// Appends an entry with `pairs` (fields and values alternating) under `id`.
    pub fn append(
        &mut self,
        id: StreamId,
        pairs: &[&[u8]],
        limits: StreamLimits,
    ) -> Result<(), AppendError> {
        if id <= self.last_id {
            return Err(AppendError::IdTooSmall);
        }
        let payload: usize = pairs.iter().map(|item| item.len()).sum();
        if payload > NODE_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        let max_bytes = match limits.node_max_bytes {
            0 => NODE_MAX_SIZE,
            bytes => bytes.min(NODE_MAX_SIZE),
        };
        let tail_fits = self.nodes.last_key_value().is_some_and(|(_, lp)| {
            let head = node::header(lp);
            node::bytes(lp) + payload < max_bytes
                && (limits.node_max_entries == 0
                    || head.live + head.deleted < limits.node_max_entries as i64)
        });
        if tail_fits && let Some(mut tail) = self.nodes.last_entry() {
            let master = *tail.key();
            let lp = tail.get_mut();
            let same = node::count_new_entry(lp, pairs);
            node::push_entry(lp, master, id, pairs, same);
        } else {
            if let Some(mut tail) = self.nodes.last_entry() {
                tail.get_mut().shrink_to_fit();
            }
            let prealloc = match limits.node_max_bytes {
                0 => NODE_PREALLOC,
                bytes => bytes.min(NODE_PREALLOC),
            };
            let mut lp = node::start(pairs, prealloc);
            node::push_entry(&mut lp, id, id, pairs, true);
            self.nodes.insert(id, lp);
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(())
    }

    /// The live entries with ids in `start..=end`, backwards when `rev`.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Range<'_> {
        Range::new(self, start, end, rev, false)
    }

    /// Whether a live entry has this id.
    pub fn contains(&self, id: StreamId) -> bool {
        self.range(id, id, false).next().is_some()
    }

    /// The first live entry's id (or the first entry's, tombstones included).
    pub fn first_entry_id(&self, with_tombstones: bool) -> Option<StreamId> {
        Range::new(self, StreamId::MIN, StreamId::MAX, false, with_tombstones)
            .next()
            .map(|entry| entry.id)
    }

    /// The last live entry's id.
    pub fn last_entry_id(&self) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX, true)
            .next()
            .map(|entry| entry.id)
    }

    /// Deletes the live entry `id`; `false` when there is none. Updates the first id and the
    /// largest deleted id as `XDEL` does.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, _)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        let Some(lp) = self.nodes.get_mut(&master) else {
            return false;
        };
        let Some(slot) = node::slots(master, lp)
            .into_iter()
            .find(|slot| slot.id == id && slot.flags & node::DELETED == 0)
        else {
            return false;
        };
        if node::header(lp).live == 1 {
            self.nodes.remove(&master);
        } else {
            node::mark_deleted(lp, slot);
        }
        self.length -= 1;
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.first_entry_id(false).unwrap_or(StreamId::MAX);
        }
        true
    }

    /// Trims from the head as Redis's `streamTrim`: whole nodes first; inside a node only when
    /// not `approx`; at most `limit` entries when it is not 0. Returns the entries removed.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        let masters: Vec<StreamId> = self.nodes.keys().copied().collect();
        for master in masters {
            if let Trim::MaxLen(max) = trim
                && self.length <= max
            {
                break;
            }
            let Some(lp) = self.nodes.get_mut(&master) else {
                break;
            };
            let entries = node::header(lp).live as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match trim {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => node::slots(master, lp)
                    .last()
                    .is_some_and(|last| last.id < min),
            };
            if remove_node {
                self.nodes.remove(&master);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            for slot in node::slots(master, lp) {
                let stop = match trim {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => slot.id >= min,
                };
                if stop {
                    break;
                }
                if slot.flags & node::DELETED == 0 {
                    node::mark_deleted(lp, slot);
                    self.length -= 1;
                    deleted += 1;
                }
            }
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.first_entry_id(false).unwrap_or(StreamId::MAX);
        }
        deleted
    }

    /// Whether `start..=end` may hold a deleted entry (Redis's `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() || self.first_id > self.max_deleted_id
        {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// The number of entries added up to and including `id`, when it can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`).
    pub fn entries_read_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return Some(self.entries_added - self.length);
            }
            if id == self.first_id {
                return Some(self.entries_added - self.length + 1);
            }
        }
        None
    }

    /// A group's lag: entries not yet delivered to it, when it can be known.
    pub fn lag(&self, group: &ConsumerGroup) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read
            && !self.range_has_tombstones(group.last_id, StreamId::MAX)
        {
            return Some(self.entries_added.wrapping_sub(read));
        }
        self.entries_read_at(group.last_id)
            .map(|read| self.entries_added.wrapping_sub(read))
    }

    /// Moves a group past `id`, delivered to it now, keeping its read counter as Redis does.
    pub fn advance_group(&self, group: &mut ConsumerGroup, id: StreamId) {
        if id <= group.last_id {
            return;
        }
        match group.entries_read {
            Some(read) if !self.range_has_tombstones(id, StreamId::MAX) => {
                group.entries_read = Some(read + 1);
            }
            _ if self.entries_added > 0 => group.entries_read = self.entries_read_at(id),
            _ => {}
        }
        group.last_id = id;
    }
}

/// Live entries of a stream in id order (or reverse), read in place.
pub struct Range<'a> {
    nodes: std::collections::btree_map::Range<'a, StreamId, Vec<u8>>,
    start: StreamId,
    end: StreamId,
    rev: bool,
    tombstones: bool,
    /// Entries of the current node still to hand out, in hand-out order reversed.
    pending: Vec<EntryRef<'a>>,
    done: bool,
}

impl<'a> Range<'a> {
    fn new(
        log: &'a StreamLog,
        start: StreamId,
        end: StreamId,
        rev: bool,
        tombstones: bool,
    ) -> Range<'a> {
        let nodes = if rev {
            log.nodes.range(..=end)
        } else {
            match log.nodes.range(..=start).next_back() {
                Some((&first, _)) => log.nodes.range((Bound::Included(first), Bound::Unbounded)),
                None => log.nodes.range(..),
            }
        };
        Range {
            nodes,
            start,
            end,
            rev,
            tombstones,
            pending: Vec::new(),
            done: start > end,
        }
    }

    fn load_node(&mut self) -> bool {
        let next = if self.rev {
            self.nodes.next_back()
        } else {
            self.nodes.next()
        };
        let Some((&master, lp)) = next else {
            return false;
        };
        if !self.rev && master > self.end {
            return false;
        }
        let head = node::header(lp);
        let keep = |slot: &Slot| self.tombstones || slot.flags & node::DELETED == 0;
        let mut entries: Vec<EntryRef<'a>> = node::slots(master, lp)
            .into_iter()
            .filter(keep)
            .map(|slot| EntryRef::new(lp, slot, head.master_fields_at))
            .collect();
        if !self.rev {
            entries.reverse();
        }
        self.pending = entries;
        true
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        while !self.done {
            let Some(entry) = self.pending.pop() else {
                if !self.load_node() {
                    self.done = true;
                }
                continue;
            };
            if self.rev {
                if entry.id > self.end {
                    continue;
                }
                if entry.id < self.start {
                    self.done = true;
                    return None;
                }
            } else {
                if entry.id < self.start {
                    continue;
                }
                if entry.id > self.end {
                    self.done = true;
                    return None;
                }
            }
            return Some(entry);
        }
        None
    }
}

impl StreamValue {
    /// Heap bytes held (for `MEMORY USAGE`).
    pub fn heap_bytes(&self) -> usize {
        self.log.heap_bytes()
            + self
                .groups
                .values()
                .map(ConsumerGroup::heap_bytes)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
