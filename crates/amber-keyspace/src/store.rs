//! Values kept in chunks of their own, addressed by a slot number: what holds the entries of a
//! database's key table apart from the table's nodes (INV-ENTRY-APART, see
//! [`crate::entries`]).
//!
//! A chunk is one allocation of [`CHUNK`] slots. A freed slot is reused by the next insert
//! (last freed, first reused); a chunk whose slots are all free gives its memory back, but one
//! such chunk is kept spare so that a key added and deleted over and over does not allocate
//! and free a chunk each time. Slots with no value are counted apart
//! ([`unused_slot_bytes`]): a server leaves them out of its `used_memory`, so that figure
//! follows the number of values, not of chunks.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Most slots per chunk: 256 entries of 48 bytes are a 12 KiB allocation, and the list of
/// chunks of a million keys (96 KiB) stays in the processor's cache.
const CHUNK: usize = 256;

/// The number of a slot. 32 bits: a database holds at most 2^32 keys, as Redis documents for
/// an instance (the slots alone would then take 200 GiB).
pub(crate) type Slot = u32;

/// Bytes of every store's slots that hold no value: allocated, but free for the next insert.
static UNUSED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes that stores hold in slots with no value (a deleted key's slot, a chunk's room to
/// grow, a spare chunk). Like the free regions of an allocator's slabs, which its count of
/// allocated bytes leaves out, they are free memory: the next key added takes one. A server
/// subtracts them from its allocated bytes to tell `maxmemory` what the data holds, so that
/// evicting a key counts the slot it frees.
pub fn unused_slot_bytes() -> usize {
    UNUSED_BYTES.load(Ordering::Relaxed)
}

/// A store of values in chunks.
pub(crate) struct Store<T> {
    /// The chunks: slots `CHUNK * i..` in chunk `i`, as far as its length goes; an empty chunk
    /// has no memory.
    chunks: Vec<Vec<Option<T>>>,
    /// Values in each chunk.
    live: Vec<u16>,
    /// Free slots below `next`, the last freed on top.
    free: Vec<Slot>,
    /// Slots ever handed out: the next fresh slot.
    next: Slot,
    /// The memory of the last chunk that emptied.
    spare: Option<Vec<Option<T>>>,
    /// Values stored.
    len: usize,
    /// Slots allocated: the capacities of the chunks and of the spare.
    capacity: usize,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            chunks: Vec::new(),
            live: Vec::new(),
            free: Vec::new(),
            next: 0,
            spare: None,
            len: 0,
            capacity: 0,
        }
    }
}

impl<T> Store<T> {
    /// Number of values stored.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its slot.
    pub(crate) fn insert(&mut self, value: T) -> Slot {
        let unused = self.unused_bytes();
        let slot = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        let (chunk, offset) = split(slot);
        if chunk == self.chunks.len() {
            self.chunks.push(Vec::new());
            self.live.push(0);
        }
        let spare = &mut self.spare;
        let slots = &mut self.chunks[chunk];
        if slots.is_empty()
            && let Some(spare) = spare.take()
        {
            *slots = spare;
        }
        if slots.capacity() <= offset {
            let before = slots.capacity();
            slots.reserve_exact(CHUNK - slots.len());
            self.capacity += slots.capacity() - before;
        }
        if slots.len() <= offset {
            slots.resize_with(offset + 1, || None);
        }
        slots[offset] = Some(value);
        self.live[chunk] += 1;
        self.len += 1;
        self.settle(unused);
        slot
    }

    /// The value in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> Option<&T> {
        let (chunk, offset) = split(slot);
        self.chunks.get(chunk)?.get(offset)?.as_ref()
    }

    /// The value in `slot`, for changing it in place.
    pub(crate) fn get_mut(&mut self, slot: Slot) -> Option<&mut T> {
        let (chunk, offset) = split(slot);
        self.chunks.get_mut(chunk)?.get_mut(offset)?.as_mut()
    }

    /// Takes the value out of `slot` and frees the slot.
    pub(crate) fn remove(&mut self, slot: Slot) -> Option<T> {
        let (chunk, offset) = split(slot);
        let value = self.chunks.get_mut(chunk)?.get_mut(offset)?.take()?;
        let unused = self.unused_bytes();
        self.len -= 1;
        self.live[chunk] -= 1;
        if self.live[chunk] == 0 {
            let emptied = std::mem::take(&mut self.chunks[chunk]);
            let dropped = match emptied.capacity() {
                CHUNK => self.spare.replace(emptied),
                _ => Some(emptied),
            };
            self.capacity -= dropped.map_or(0, |chunk| chunk.capacity());
        }
        self.free.push(slot);
        self.settle(unused);
        if self.len == 0 {
            *self = Store::default();
        }
        Some(value)
    }

    /// Bytes of slots that hold no value.
    fn unused_bytes(&self) -> usize {
        (self.capacity - self.len) * std::mem::size_of::<Option<T>>()
    }

    /// Moves the global count of unused bytes from `before` to what this store holds now.
    fn settle(&self, before: usize) {
        let now = self.unused_bytes();
        if now >= before {
            UNUSED_BYTES.fetch_add(now - before, Ordering::Relaxed);
        } else {
            UNUSED_BYTES.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// Drops every value and gives the memory back.
    pub(crate) fn clear(&mut self) {
        *self = Store::default();
    }
}

impl<T> Drop for Store<T> {
    fn drop(&mut self) {
        UNUSED_BYTES.fetch_sub(self.unused_bytes(), Ordering::Relaxed);
    }
}

/// A slot's chunk and place in it.
fn split(slot: Slot) -> (usize, usize) {
    let slot = slot as usize;
    (slot / CHUNK, slot % CHUNK)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn behaves_like_a_map_of_slots(ops in proptest::collection::vec((any::<bool>(), 0usize..64, any::<u16>()), 0..2000)) {
            let mut store = Store::default();
            let mut model: HashMap<Slot, u16> = HashMap::new();
            let mut slots: Vec<Slot> = Vec::new();
            for (add, pick, value) in ops {
                if add || slots.is_empty() {
                    let slot = store.insert(value);
                    prop_assert!(model.insert(slot, value).is_none(), "slot {} handed out twice", slot);
                    slots.push(slot);
                } else {
                    let slot = slots.swap_remove(pick % slots.len());
                    prop_assert_eq!(store.remove(slot), model.remove(&slot));
                    prop_assert_eq!(store.remove(slot), None);
                }
                prop_assert_eq!(store.len(), model.len());
                for (slot, value) in &model {
                    prop_assert_eq!(store.get(*slot), Some(value));
                }
            }
        }
    }

    #[test]
    fn an_emptied_chunk_gives_its_memory_back() {
        let mut store = Store::default();
        let slots: Vec<Slot> = (0..3 * CHUNK as u32).map(|i| store.insert(i)).collect();
        for slot in &slots[..2 * CHUNK] {
            store.remove(*slot);
        }
        let held = store
            .chunks
            .iter()
            .filter(|chunk| !chunk.is_empty())
            .count();
        assert_eq!(held, 1, "the third chunk only; one more is spare");
        assert!(store.spare.is_some());
        assert_eq!(store.get(slots[2 * CHUNK]), Some(&(2 * CHUNK as u32)));
        for slot in &slots[2 * CHUNK..] {
            store.remove(*slot);
        }
        assert!(store.chunks.is_empty() && store.free.is_empty());
    }

    #[test]
    fn unused_slots_are_counted() {
        let slot = std::mem::size_of::<Option<u64>>();
        let mut store = Store::default();
        let slots: Vec<Slot> = (0..=CHUNK as u64).map(|i| store.insert(i)).collect();
        let second_chunk_free = (CHUNK - 1) * slot;
        assert_eq!(store.unused_bytes(), second_chunk_free);
        store.remove(slots[1]);
        assert_eq!(store.unused_bytes(), second_chunk_free + slot);
        store.insert(9);
        assert_eq!(
            store.unused_bytes(),
            second_chunk_free,
            "the freed slot is taken again"
        );
    }

    #[test]
    fn an_entry_takes_no_more_than_its_slot() {
        assert_eq!(
            std::mem::size_of::<Option<crate::Entry>>(),
            std::mem::size_of::<crate::Entry>()
        );
    }
}
