//! A database's key table: the keys in a hash table whose nodes hold a slot number, and each
//! key's [`Entry`] in that slot of a [`Store`] of its own.
//!
//! **INV-ENTRY-APART**: an entry never shares a page with the table's nodes. A write changes
//! the entry in its slot and leaves the node (the key's hash, name and link) untouched, so
//! while a forked child shares the pages a write dirties a page of 48-byte entries, 85 to a
//! page, and not a page of 96-byte nodes that also hold the keys. Redis's writes likewise
//! touch a 24-byte `dictEntry` or a 16-byte `robj`. The split costs no memory: a 48-byte node
//! and a 48-byte slot in place of one node of 88 bytes in a 96-byte allocation. Boxing the
//! entry alone would not do: the allocator puts boxes and nodes of the same size class side by
//! side in the same pages.

use crate::db::Entry;
use crate::dict::{Dict, Iter, Lookup};
use crate::small::SmallBytes as Key;
use crate::store::{Slot, Store};

/// Keys and their entries.
#[derive(Default)]
pub(crate) struct Entries {
    /// Key to slot.
    index: Dict<Slot>,
    /// The entries.
    store: Store<Entry>,
}

impl Entries {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The hash table's statistics, as Redis's `DEBUG HTSTATS` words them.
    pub(crate) fn stats_text(&self) -> String {
        self.index.stats_text()
    }

    /// Number of buckets of the hash table.
    pub(crate) fn bucket_count(&self) -> usize {
        self.index.bucket_count()
    }

    /// The hash the table files `key` under.
    pub(crate) fn hash_key(&self, key: &[u8]) -> u64 {
        self.index.hash_key(key)
    }

    /// The entry under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.store.get(*self.index.get(key)?)
    }

    /// The entry under `key`, for changing it in place.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.store.get_mut(*self.index.get(key)?)
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// Looks `key` up once: if `discard` says its entry is stale, the key is removed and its
    /// entry returned as [`Lookup::Removed`]; otherwise the entry is returned for use.
    pub(crate) fn get_mut_unless(
        &mut self,
        key: &[u8],
        discard: impl FnOnce(&Entry) -> bool,
    ) -> Lookup<'_, Entry> {
        let store = &self.store;
        let lookup = self
            .index
            .get_mut_unless(key, |slot| store.get(*slot).is_some_and(discard));
        match lookup {
            Lookup::Missing => Lookup::Missing,
            Lookup::Removed(slot) => match self.store.remove(slot) {
                Some(entry) => Lookup::Removed(entry),
                None => Lookup::Missing,
            },
            Lookup::Found(slot) => match self.store.get_mut(*slot) {
                Some(entry) => Lookup::Found(entry),
                None => Lookup::Missing,
            },
        }
    }

    /// Stores `entry` under `key`, over the old entry's slot when the key is present;
    /// returns the entry it replaces.
    pub(crate) fn insert(&mut self, key: &[u8], entry: Entry) -> Option<Entry> {
        let hash = self.index.hash_key(key);
        let entry = match self.overwrite(hash, key, entry) {
            Ok(previous) => return Some(previous),
            Err(entry) => entry,
        };
        self.insert_absent(hash, Key::new(key), entry);
        None
    }

    /// [`Entries::insert`] with an owned `key`, kept as it is if the key is new.
    pub(crate) fn insert_owned(&mut self, key: Box<[u8]>, entry: Entry) -> Option<Entry> {
        let hash = self.index.hash_key(&key);
        let entry = match self.overwrite(hash, &key, entry) {
            Ok(previous) => return Some(previous),
            Err(entry) => entry,
        };
        self.insert_absent(hash, Key::from(key), entry);
        None
    }

    /// [`Entries::insert`] for a key whose hash is `hash` (from [`Entries::hash_key`]).
    pub(crate) fn insert_hashed(&mut self, hash: u64, key: Key, entry: Entry) -> Option<Entry> {
        let entry = match self.overwrite(hash, key.as_bytes(), entry) {
            Ok(previous) => return Some(previous),
            Err(entry) => entry,
        };
        self.insert_absent(hash, key, entry);
        None
    }

    /// Writes `entry` over the slot of a present key and returns the old entry (the node is
    /// left untouched: INV-ENTRY-APART); hands `entry` back if the key is absent.
    fn overwrite(&mut self, hash: u64, key: &[u8], entry: Entry) -> Result<Entry, Entry> {
        let slot = self.index.get_hashed(hash, key).copied();
        match slot.and_then(|slot| self.store.get_mut(slot)) {
            Some(old) => Ok(std::mem::replace(old, entry)),
            None => Err(entry),
        }
    }

    /// Stores a key known to be absent.
    fn insert_absent(&mut self, hash: u64, key: Key, entry: Entry) {
        let slot = self.store.insert(entry);
        self.index.insert_new(hash, key, slot);
    }

    /// Makes room for `additional` more keys without resizing (a load's size hint).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
    }

    /// Removes `key`, returning its entry.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let slot = self.index.remove(key)?;
        self.store.remove(slot)
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.store.clear();
    }

    /// Pulls into the cache the buckets, nodes and entries that looking up keys of these
    /// `hashes` will read, and what `touch` reads of the entries' values (see
    /// [`Dict::warm_with`]).
    pub(crate) fn warm_with(&self, hashes: &[u64], touch: impl Fn(&Entry) -> u64) {
        let store = &self.store;
        self.index.warm_with(
            hashes,
            |slot| store.get(*slot).map_or(0, Entry::touch),
            |slot| store.get(*slot).map_or(0, &touch),
        );
    }

    /// Pulls into the cache the buckets and nodes that inserting keys of these `hashes` will
    /// read.
    pub(crate) fn warm(&self, hashes: &[u64]) {
        self.index.warm(hashes);
    }

    /// Pulls into the cache the first nodes of buckets `from..from + count`, their entries
    /// and what `touch` reads of the entries (see [`Dict::warm_buckets`]).
    pub(crate) fn warm_buckets(&self, from: usize, count: usize, touch: impl Fn(&Entry) -> u64) {
        let store = &self.store;
        self.index.warm_buckets(
            from,
            count,
            |slot| store.get(*slot).map_or(0, Entry::touch),
            |slot| store.get(*slot).map_or(0, &touch),
        );
    }

    /// Visits every key and entry, in table order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.with_entries(self.index.iter())
    }

    /// Visits the keys and entries of buckets `buckets` (see [`Dict::iter_buckets`]).
    pub(crate) fn iter_buckets(
        &self,
        buckets: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.with_entries(self.index.iter_buckets(buckets))
    }

    fn with_entries<'a>(
        &'a self,
        keys: Iter<'a, Slot>,
    ) -> impl Iterator<Item = (&'a [u8], &'a Entry)> {
        keys.filter_map(|(key, slot)| Some((key, self.store.get(*slot)?)))
    }

    /// One step of `SCAN` (see [`Dict::scan`]).
    pub(crate) fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.index.scan(cursor, |key, slot| {
            if let Some(entry) = self.store.get(*slot) {
                visit(key, entry);
            }
        })
    }

    /// Visits up to `count` keys near a random spot of the table (see [`Dict::sample`]).
    pub(crate) fn sample(
        &self,
        count: usize,
        random: impl FnMut() -> u64,
        mut visit: impl FnMut(&[u8], &Entry),
    ) {
        self.index.sample(count, random, |key, slot| {
            if let Some(entry) = self.store.get(*slot) {
                visit(key, entry);
            }
        });
    }

    /// A key chosen at random (see [`Dict::random_key`]).
    pub(crate) fn random_key(&self, random: impl FnMut() -> u64) -> Option<&[u8]> {
        self.index.random_key(random)
    }

    /// Whether the hash table is resizing (see [`Dict::is_rehashing`]).
    pub(crate) fn is_rehashing(&self) -> bool {
        self.index.is_rehashing()
    }

    /// Whether the hash table is moving its keys to a smaller table (see
    /// [`Dict::is_shrinking`]).
    pub(crate) fn is_shrinking(&self) -> bool {
        self.index.is_shrinking()
    }

    /// Moves up to `buckets` buckets of a resize under way; returns whether it is still under
    /// way (see [`Dict::rehash`]).
    pub(crate) fn rehash(&mut self, buckets: usize) -> bool {
        self.index.rehash(buckets)
    }

    /// Stops or resumes shrinking (see [`Dict::pause_shrinking`]).
    pub(crate) fn pause_shrinking(&mut self, paused: bool) {
        self.index.pause_shrinking(paused);
    }

    /// Visits the keys and entries at walk position `index` for changing them, and returns
    /// the next position, or 0 past the last (see [`Dict::visit_bucket_mut`]).
    pub(crate) fn visit_bucket_mut(
        &mut self,
        index: usize,
        mut visit: impl FnMut(&Key, &mut Entry),
    ) -> usize {
        let store = &mut self.store;
        self.index.visit_bucket_mut(index, |key, slot| {
            if let Some(entry) = store.get_mut(*slot) {
                visit(key, entry);
            }
        })
    }

    /// Takes the keys and entries of the bucket(s) at `cursor` out of the table (see
    /// [`Dict::drain_scan`]).
    pub(crate) fn drain_scan(&mut self, cursor: u64, mut take: impl FnMut(Key, Entry)) -> u64 {
        let store = &mut self.store;
        self.index.drain_scan(cursor, |key, slot| {
            if let Some(entry) = store.remove(slot) {
                take(key, entry);
            }
        })
    }
}
