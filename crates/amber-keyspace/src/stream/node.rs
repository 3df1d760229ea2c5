//! One stream node: a listpack that starts with a master entry (live count, deleted count,
//! the master field names, a zero), followed by entries stored as deltas from the node's key:
//!
//! `flags ms-delta seq-delta [field-count] [field] value ... lp-count`
//!
//! Fields are left out when the entry has exactly the master's (`SAME_FIELDS`); `lp-count`
//! is the number of elements of the entry before it, for walking backwards.

use super::StreamId;
use super::listpack::{self, Item};

/// Entry flag: deleted (a tombstone).
pub(super) const DELETED: i64 = 1;
/// Entry flag: the entry has exactly the master entry's fields.
pub(super) const SAME_FIELDS: i64 = 2;

/// The master entry of a node.
pub(super) struct Header {
    /// Live entries.
    pub live: i64,
    /// Entries marked deleted.
    pub deleted: i64,
    /// Offset of the first master field name.
    pub master_fields_at: usize,
    /// Number of master fields.
    pub master_count: usize,
    /// Offset of the first entry.
    pub entries_at: usize,
}

/// Reads the master entry.
pub(super) fn header(lp: &[u8]) -> Header {
    let (live, at) = listpack::int(lp, listpack::FIRST);
    let (deleted, at) = listpack::int(lp, at);
    let (count, at) = listpack::int(lp, at);
    let master_count = usize::try_from(count).unwrap_or(0);
    let mut end = at;
    for _ in 0..master_count {
        end = listpack::skip(lp, end);
    }
    Header {
        live,
        deleted,
        master_fields_at: at,
        master_count,
        entries_at: listpack::skip(lp, end),
    }
}

/// Where one entry of a node lies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// Its id.
    pub id: StreamId,
    /// Its flags.
    pub flags: i64,
    /// Offset of its flags element.
    pub flags_at: usize,
    /// Offset of its first field (or first value, with `SAME_FIELDS`).
    pub fields_at: usize,
    /// Number of field/value pairs.
    pub count: usize,
}

/// Every entry of the node keyed `master`, tombstones included, in order.
pub(super) fn slots(master: StreamId, lp: &[u8]) -> Vec<Slot> {
    let head = header(lp);
    let mut slots = Vec::with_capacity(usize::try_from(head.live + head.deleted).unwrap_or(0));
    let mut at = head.entries_at;
    while !listpack::at_end(lp, at) {
        let flags_at = at;
        let (flags, next) = listpack::int(lp, at);
        let (ms_delta, next) = listpack::int(lp, next);
        let (seq_delta, mut next) = listpack::int(lp, next);
        let same = flags & SAME_FIELDS != 0;
        let count = if same {
            head.master_count
        } else {
            let (count, after) = listpack::int(lp, next);
            next = after;
            usize::try_from(count).unwrap_or(0)
        };
        let fields_at = next;
        let elements = if same { count } else { count * 2 };
        for _ in 0..elements {
            next = listpack::skip(lp, next);
        }
        at = listpack::skip(lp, next);
        if at > lp.len() {
            break;
        }
        slots.push(Slot {
            id: StreamId::new(
                master.ms.wrapping_add(ms_delta as u64),
                master.seq.wrapping_add(seq_delta as u64),
            ),
            flags,
            flags_at,
            fields_at,
            count,
        });
    }
    slots
}

/// A live entry, read in place from its node.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    /// Its id.
    pub id: StreamId,
    lp: &'a [u8],
    master_fields_at: Option<usize>,
    fields_at: usize,
    count: usize,
}

impl<'a> EntryRef<'a> {
    pub(super) fn new(lp: &'a [u8], slot: Slot, master_fields_at: usize) -> EntryRef<'a> {
        EntryRef {
            id: slot.id,
            lp,
            master_fields_at: (slot.flags & SAME_FIELDS != 0).then_some(master_fields_at),
            fields_at: slot.fields_at,
            count: slot.count,
        }
    }

    /// Number of field/value pairs.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the entry has no field (Redis never stores one).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The field/value pairs, in order.
    pub fn pairs(&self) -> Pairs<'a> {
        Pairs {
            lp: self.lp,
            master_at: self.master_fields_at,
            at: self.fields_at,
            left: self.count,
        }
    }
}

/// The field/value pairs of an entry.
pub struct Pairs<'a> {
    lp: &'a [u8],
    master_at: Option<usize>,
    at: usize,
    left: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Item<'a>, Item<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let field = match self.master_at.as_mut() {
            Some(master_at) => {
                let (field, next) = listpack::get(self.lp, *master_at)?;
                *master_at = next;
                field
            }
            None => {
                let (field, next) = listpack::get(self.lp, self.at)?;
                self.at = next;
                field
            }
        };
        let (value, next) = listpack::get(self.lp, self.at)?;
        self.at = next;
        Some((field, value))
    }
}

/// Starts a node for an entry with `fields` (names at even positions of `pairs`).
pub(super) fn start(pairs: &[&[u8]], prealloc: usize) -> Vec<u8> {
    let mut lp = listpack::new(prealloc);
    listpack::push_int(&mut lp, 1);
    listpack::push_int(&mut lp, 0);
    listpack::push_int(&mut lp, (pairs.len() / 2) as i64);
    for field in pairs.iter().step_by(2) {
        listpack::push_bytes(&mut lp, field);
    }
    listpack::push_int(&mut lp, 0);
    lp
}

/// Counts one more live entry in the header of `lp` and tells whether an entry with `pairs`
/// has exactly the master's fields.
pub(super) fn count_new_entry(lp: &mut Vec<u8>, pairs: &[&[u8]]) -> bool {
    let head = header(lp);
    listpack::replace_int(lp, listpack::FIRST, head.live + 1);
    let head = header(lp);
    if head.master_count != pairs.len() / 2 {
        return false;
    }
    let mut at = head.master_fields_at;
    for field in pairs.iter().step_by(2) {
        match listpack::get(lp, at) {
            Some((item, next)) if item.eq_bytes(field) => at = next,
            _ => return false,
        }
    }
    true
}

/// Appends an entry (its flags, id deltas, fields and the back count).
pub(super) fn push_entry(
    lp: &mut Vec<u8>,
    master: StreamId,
    id: StreamId,
    pairs: &[&[u8]],
    same: bool,
) {
    let count = (pairs.len() / 2) as i64;
    listpack::push_int(lp, if same { SAME_FIELDS } else { 0 });
    listpack::push_int(lp, id.ms.wrapping_sub(master.ms) as i64);
    listpack::push_int(lp, id.seq.wrapping_sub(master.seq) as i64);
    if !same {
        listpack::push_int(lp, count);
    }
    for (index, item) in pairs.iter().enumerate() {
        if !same || index % 2 == 1 {
            listpack::push_bytes(lp, item);
        }
    }
    listpack::push_int(lp, if same { count + 3 } else { count * 2 + 4 });
}

/// Marks the entry whose flags are at `flags_at` deleted and moves it from the live count to
/// the deleted count. Returns the node's live count before.
pub(super) fn mark_deleted(lp: &mut Vec<u8>, slot: Slot) -> i64 {
    listpack::replace_int(lp, slot.flags_at, slot.flags | DELETED);
    let head = header(lp);
    let after_live = listpack::replace_int(lp, listpack::FIRST, head.live - 1);
    listpack::replace_int(lp, after_live, head.deleted + 1);
    head.live
}

/// The total size in bytes, as the listpack header says.
pub(super) fn bytes(lp: &[u8]) -> usize {
    lp.len()
}
