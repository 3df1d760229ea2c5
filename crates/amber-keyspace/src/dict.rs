//! A chained hash table keyed by byte strings, with Redis's reverse-binary `SCAN` cursor and
//! fair random sampling (for `RANDOMKEY` and the active expire cycle).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while a forked child (snapshot, AOF rewrite, backup) holds a copy-on-write image.
static RESIZES_PAUSED: AtomicBool = AtomicBool::new(false);

/// How overloaded a table may get while resizes are paused (Redis's `dict_force_resize_ratio`).
const FORCED_RESIZE_RATIO: usize = 5;

/// Pauses or resumes table resizes. Resizing relinks every node of a table, which would make
/// the kernel copy every page a forked child still shares; like Redis, tables only grow during
/// a fork when they are 5 times overloaded, and never shrink.
pub fn pause_resizes(paused: bool) {
    RESIZES_PAUSED.store(paused, Ordering::Relaxed);
}

fn resizes_paused() -> bool {
    RESIZES_PAUSED.load(Ordering::Relaxed)
}

/// Decides whether a table may allocate this many more bytes to grow (see
/// [`set_growth_guard`]).
pub type GrowthGuard = fn(extra_bytes: usize) -> bool;

static GROWTH_GUARD: std::sync::OnceLock<GrowthGuard> = std::sync::OnceLock::new();

/// Load (keys per bucket) past which a table grows whatever the guard says (Redis's
/// `HASHTABLE_MAX_LOAD_FACTOR`).
const MAX_LOAD_FACTOR: f64 = 1.618;

/// Installs the check a table makes before growing while it is not yet overloaded: a server
/// with `maxmemory` refuses growth that would take it over the limit (as Redis's
/// `dictExpandAllowed`), so a table's doubling does not by itself evict keys. Set once; later
/// calls are ignored.
pub fn set_growth_guard(guard: GrowthGuard) {
    let _ = GROWTH_GUARD.set(guard);
}

fn growth_allowed(new_buckets: usize, len: usize, buckets: usize) -> bool {
    let load = len as f64 / buckets.max(1) as f64;
    load > MAX_LOAD_FACTOR
        || GROWTH_GUARD
            .get()
            .is_none_or(|guard| guard(new_buckets * std::mem::size_of::<Option<Box<Node<()>>>>()))
}

pub(crate) use crate::small::INLINE as INLINE_KEY;
use crate::small::SmallBytes as Key;

struct Node<V> {
    /// The key's full hash: compared before the key, and reused when the table resizes.
    hash: u64,
    key: Key,
    value: V,
    next: Option<Box<Node<V>>>,
}

/// What [`Dict::get_mut_unless`] found.
pub enum Lookup<'a, V> {
    /// The key is absent.
    Missing,
    /// The key was present but discarded; here is its value.
    Removed(V),
    /// The key's value.
    Found(&'a mut V),
}

/// A hash table from byte strings to `V`.
///
/// The bucket count is a power of two, so a `SCAN` cursor stays valid across growth and
/// shrinking: every key present for the whole scan is returned at least once.
pub struct Dict<V> {
    buckets: Vec<Option<Box<Node<V>>>>,
    len: usize,
    hasher: RandomState,
    /// Set while a capture walks the table in bucket order.
    shrink_paused: bool,
}

const MIN_BUCKETS: usize = 4;

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<V> Dict<V> {
    /// An empty table.
    pub fn new() -> Self {
        Dict {
            buckets: empty_buckets(MIN_BUCKETS),
            len: 0,
            hasher: RandomState::new(),
            shrink_paused: false,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (for `DEBUG HTSTATS`-like reporting).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The table's statistics as Redis's `DEBUG HTSTATS` words them: size, elements, used
    /// buckets, chain lengths and their distribution.
    pub fn stats_text(&self) -> String {
        use std::fmt::Write;
        const LENGTHS: usize = 50;
        if self.len == 0 {
            return "Hash table 0 stats (main hash table):\nNo stats available for empty dictionaries\n".into();
        }
        let mut distribution = [0usize; LENGTHS];
        let (mut slots, mut longest, mut total) = (0usize, 0usize, 0usize);
        for bucket in &self.buckets {
            let mut chain = 0;
            let mut node = bucket.as_deref();
            while let Some(current) = node {
                chain += 1;
                node = current.next.as_deref();
            }
            distribution[chain.min(LENGTHS - 1)] += 1;
            if chain > 0 {
                slots += 1;
                longest = longest.max(chain);
                total += chain;
            }
        }
        let size = self.buckets.len();
        let mut text = format!(
            "Hash table 0 stats (main hash table):\n table size: {size}\n number of elements: {}\n different slots: {slots}\n max chain length: {longest}\n avg chain length (counted): {:.2}\n avg chain length (computed): {:.2}\n Chain length distribution:\n",
            self.len,
            total as f64 / slots as f64,
            self.len as f64 / slots as f64,
        );
        for (length, count) in distribution.iter().enumerate().take(LENGTHS - 1) {
            if *count > 0 {
                let percent = *count as f64 * 100.0 / size as f64;
                let _ = writeln!(text, "   {length}: {count} ({percent:.2}%)");
            }
        }
        text
    }

    fn hash_of(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn bucket_for(&self, hash: u64) -> usize {
        (hash as usize) & (self.buckets.len() - 1)
    }

    pub(crate) fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&V> {
        let mut node = self.buckets[self.bucket_for(hash)].as_deref();
        while let Some(n) = node {
            if n.hash == hash && n.key.as_bytes() == key {
                return Some(&n.value);
            }
            node = n.next.as_deref();
        }
        None
    }

    fn get_mut_hashed(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let bucket = self.bucket_for(hash);
        let mut node = self.buckets[bucket].as_deref_mut();
        while let Some(n) = node {
            if n.hash == hash && n.key.as_bytes() == key {
                return Some(&mut n.value);
            }
            node = n.next.as_deref_mut();
        }
        None
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_hashed(self.hash_of(key), key)
    }

    /// The value stored under `key`, for changing it in place.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.get_mut_hashed(self.hash_of(key), key)
    }

    /// Looks `key` up once: if `discard` says its value is stale (an expired key), the entry
    /// is removed and returned as [`Lookup::Removed`]; otherwise it is returned for use.
    pub fn get_mut_unless(
        &mut self,
        key: &[u8],
        discard: impl FnOnce(&V) -> bool,
    ) -> Lookup<'_, V> {
        let hash = self.hash_of(key);
        match self.get_hashed(hash, key) {
            None => Lookup::Missing,
            Some(value) if discard(value) => match self.remove_hashed(hash, key) {
                Some(value) => Lookup::Removed(value),
                None => Lookup::Missing,
            },
            Some(_) => match self.get_mut_hashed(hash, key) {
                Some(value) => Lookup::Found(value),
                None => Lookup::Missing,
            },
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let hash = self.hash_of(key);
        if let Some(slot) = self.get_mut_hashed(hash, key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(hash, Key::new(key), value);
        None
    }

    /// Makes room for `additional` more keys without resizing (a load's size hint).
    pub fn reserve(&mut self, additional: usize) {
        let wanted = (self.len + additional).next_power_of_two();
        if wanted > self.buckets.len() {
            self.resize(wanted);
        }
    }

    /// Stores `value` under an owned `key`, returning the value it replaces.
    pub fn insert_owned(&mut self, key: Box<[u8]>, value: V) -> Option<V> {
        let hash = self.hash_of(&key);
        if let Some(slot) = self.get_mut_hashed(hash, &key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(hash, Key::from(key), value);
        None
    }

    /// The hash this table files `key` under (for [`Dict::warm`] and [`Dict::insert_hashed`]).
    pub fn hash_key(&self, key: &[u8]) -> u64 {
        self.hash_of(key)
    }

    /// Pulls into the cache the buckets and first nodes that inserting or looking up keys of
    /// these `hashes` will read. The loads are independent of each other, so the processor
    /// overlaps their cache misses instead of taking them one after another, as a loop of
    /// single inserts into a large table does.
    pub fn warm(&self, hashes: &[u64]) {
        self.warm_with(hashes, |_| 0, |_| 0);
    }

    /// As [`Dict::warm`], and also reads each chain's first value in two more rounds: `near`
    /// reads what the node's value points to (an entry in a store's slot), `far` what that points
    /// to in turn (the entry's own buffers). Each returns something computed from the memory it read, so a
    /// lookup that reads the value then finds it in the cache too. Each round's loads are
    /// independent of each other; only the rounds follow one another.
    pub fn warm_with(&self, hashes: &[u64], near: impl Fn(&V) -> u64, far: impl Fn(&V) -> u64) {
        const AT_ONCE: usize = 32;
        let mut seen = 0u64;
        for chunk in hashes.chunks(AT_ONCE) {
            let mut heads: [Option<&Node<V>>; AT_ONCE] = [None; AT_ONCE];
            for (head, &hash) in heads.iter_mut().zip(chunk) {
                *head = self.buckets[self.bucket_for(hash)].as_deref();
            }
            // Second round: the next node of each chain (tables run close to one key per
            // bucket, so chains of two are common; longer ones are rare).
            let mut seconds: [Option<&Node<V>>; AT_ONCE] = [None; AT_ONCE];
            for (second, head) in seconds.iter_mut().zip(&heads) {
                if let Some(head) = head {
                    seen ^= head.hash;
                    *second = head.next.as_deref();
                }
            }
            for head in heads.iter().flatten() {
                seen ^= near(&head.value);
            }
            for second in seconds.iter().flatten() {
                seen ^= second.hash;
            }
            for head in heads.iter().flatten() {
                seen ^= far(&head.value);
            }
        }
        std::hint::black_box(seen);
    }

    /// Stores `value` under `key` whose hash is `hash` (from [`Dict::hash_key`]), returning
    /// the value it replaces.
    pub fn insert_hashed(&mut self, hash: u64, key: Key, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut_hashed(hash, key.as_bytes()) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(hash, key, value);
        None
    }

    /// Stores a key known to be absent.
    pub(crate) fn insert_new(&mut self, hash: u64, key: Key, value: V) {
        let limit = if resizes_paused() {
            self.buckets.len() * FORCED_RESIZE_RATIO
        } else {
            self.buckets.len()
        };
        let grown = self.buckets.len() * 2;
        if self.len >= limit && growth_allowed(grown, self.len, self.buckets.len()) {
            self.resize(grown);
        }
        let bucket = self.bucket_for(hash);
        let next = self.buckets[bucket].take();
        self.buckets[bucket] = Some(Box::new(Node {
            hash,
            key,
            value,
            next,
        }));
        self.len += 1;
    }

    /// The value under `key`, inserting `make()` first if the key is absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash_of(key);
        if self.get_hashed(hash, key).is_none() {
            self.insert_new(hash, Key::new(key), make());
        }
        match self.get_mut_hashed(hash, key) {
            Some(value) => value,
            None => unreachable!("the key was inserted just above"),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.remove_hashed(self.hash_of(key), key)
    }

    fn remove_hashed(&mut self, hash: u64, key: &[u8]) -> Option<V> {
        let bucket = self.bucket_for(hash);
        let mut link = &mut self.buckets[bucket];
        loop {
            match link {
                None => return None,
                Some(node) if node.hash == hash && node.key.as_bytes() == key => {
                    let mut removed = link.take()?;
                    *link = removed.next.take();
                    self.len -= 1;
                    self.shrink_if_sparse();
                    return Some(removed.value);
                }
                Some(node) => link = &mut node.next,
            }
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        let old = std::mem::replace(&mut self.buckets, empty_buckets(MIN_BUCKETS));
        drop_buckets(old);
        self.len = 0;
    }

    fn shrink_if_sparse(&mut self) {
        if resizes_paused() || self.shrink_paused {
            return;
        }
        let buckets = self.buckets.len();
        if buckets > MIN_BUCKETS && self.len * 10 < buckets {
            self.resize((self.len.next_power_of_two() * 2).max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, new_size: usize) {
        let old = std::mem::replace(&mut self.buckets, empty_buckets(new_size));
        for mut chain in old {
            while let Some(mut node) = chain {
                chain = node.next.take();
                let bucket = self.bucket_for(node.hash);
                node.next = self.buckets[bucket].take();
                self.buckets[bucket] = Some(node);
            }
        }
    }

    /// Visits every key and value, in no particular order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            buckets: self.buckets.iter(),
            chain: None,
        }
    }

    /// Visits the keys and values of buckets `buckets` (clamped to the table), in table order:
    /// disjoint ranges that cover `0..bucket_count()` visit every key once.
    pub fn iter_buckets(&self, buckets: std::ops::Range<usize>) -> Iter<'_, V> {
        let end = buckets.end.min(self.buckets.len());
        let start = buckets.start.min(end);
        Iter {
            buckets: self.buckets[start..end].iter(),
            chain: None,
        }
    }

    /// Calls `visit` for each key of the bucket(s) at `cursor` and returns the next cursor;
    /// 0 means the scan is complete. Cursors follow Redis's reverse-binary order.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &V)) -> u64 {
        let mask = (self.buckets.len() - 1) as u64;
        let bucket = (cursor & mask) as usize;
        for (key, value) in (ChainIter {
            node: self.buckets[bucket].as_deref(),
        }) {
            visit(key, value);
        }
        next_cursor(cursor, mask)
    }

    /// Pulls into the cache the first nodes of buckets `from..from + count` and what `near`
    /// and then `far` read of their values (as in [`Dict::warm_with`]): independent loads the
    /// processor overlaps, where a walk would take one cache miss after another.
    pub fn warm_buckets(
        &self,
        from: usize,
        count: usize,
        near: impl Fn(&V) -> u64,
        far: impl Fn(&V) -> u64,
    ) {
        let end = from.saturating_add(count).min(self.buckets.len());
        let heads = self.buckets.get(from..end).unwrap_or_default();
        let mut seen = 0u64;
        for head in heads.iter().flatten() {
            // A node may straddle two cache lines: the hash and the link sit apart.
            seen ^= head.hash ^ u64::from(head.next.is_some());
        }
        for head in heads.iter().flatten() {
            seen ^= near(&head.value);
            if let Some(second) = &head.next {
                seen ^= second.hash;
            }
        }
        for head in heads.iter().flatten() {
            seen ^= far(&head.value);
        }
        std::hint::black_box(seen);
    }

    /// Visits bucket `index`'s keys and values for changing them, and returns the next
    /// bucket's index, or 0 past the last (a walk in table order: sequential in memory, but
    /// only complete if the table does not resize meanwhile; see [`Dict::pause_shrinking`]).
    pub fn visit_bucket_mut(&mut self, index: usize, mut visit: impl FnMut(&Key, &mut V)) -> usize {
        let Some(bucket) = self.buckets.get_mut(index) else {
            return 0;
        };
        let mut node = bucket.as_deref_mut();
        while let Some(n) = node {
            visit(&n.key, &mut n.value);
            node = n.next.as_deref_mut();
        }
        if index + 1 >= self.buckets.len() {
            0
        } else {
            index + 1
        }
    }

    /// Stops or resumes shrinking when keys are removed (a walk in table order restarts when
    /// the table grows; with shrinking paused it restarts at most once per doubling).
    pub fn pause_shrinking(&mut self, paused: bool) {
        self.shrink_paused = paused;
    }

    /// Takes the keys and values of the bucket(s) at `cursor` out of the table, handing each
    /// to `take`, and returns the next cursor (0 = the table is empty of what the walk saw).
    /// Dismantling a detached table this way frees it a little at a time.
    pub fn drain_scan(&mut self, cursor: u64, mut take: impl FnMut(Key, V)) -> u64 {
        let mask = (self.buckets.len() - 1) as u64;
        let mut chain = self.buckets[(cursor & mask) as usize].take();
        while let Some(mut node) = chain {
            chain = node.next.take();
            self.len -= 1;
            let Node { key, value, .. } = *node;
            take(key, value);
        }
        next_cursor(cursor, mask)
    }

    /// Visits up to `count` keys near a random spot of the table: the chains of consecutive
    /// buckets from a random start, giving up after `count * 10` buckets (as Redis's
    /// `dictGetSomeKeys`: cheaper than `count` random picks, and as good for sampling).
    pub fn sample(
        &self,
        count: usize,
        mut random: impl FnMut() -> u64,
        mut visit: impl FnMut(&[u8], &V),
    ) {
        let count = count.min(self.len);
        if count == 0 {
            return;
        }
        let mask = self.buckets.len() - 1;
        let mut bucket = (random() as usize) & mask;
        let mut visited = 0;
        let mut empty_run = 0;
        for _ in 0..count.saturating_mul(10).max(count) {
            let chain = self.buckets[bucket].as_deref();
            if chain.is_none() {
                empty_run += 1;
                // A long empty stretch: jump elsewhere, as Redis does.
                if empty_run >= 5 && empty_run > count {
                    bucket = (random() as usize) & mask;
                    empty_run = 0;
                    continue;
                }
            } else {
                empty_run = 0;
            }
            for (key, value) in (ChainIter { node: chain }) {
                visit(key, value);
                visited += 1;
                if visited == count {
                    return;
                }
            }
            bucket = (bucket + 1) & mask;
        }
    }

    /// A key chosen at random, `random` being a source of random numbers. Every key has the
    /// same chance as long as no chain is longer than [`FAIR_CHAIN`]: a (bucket, position)
    /// pair is drawn until it names a key, so a key in a short chain is not favoured over one
    /// sharing its bucket (Redis's `dictGetFairRandomKey` serves the same purpose).
    pub fn random_key(&self, mut random: impl FnMut() -> u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let mask = (self.buckets.len() - 1) as u64;
        for _ in 0..FAIR_TRIES {
            let bucket = (random() & mask) as usize;
            let position = (random() % FAIR_CHAIN) as usize;
            let mut chain = ChainIter {
                node: self.buckets[bucket].as_deref(),
            };
            if let Some((key, _)) = chain.nth(position) {
                return Some(key);
            }
        }
        // A nearly empty table that drew nothing: any key of a random non-empty bucket.
        loop {
            let bucket = (random() & mask) as usize;
            let chain: Vec<&[u8]> = ChainIter {
                node: self.buckets[bucket].as_deref(),
            }
            .map(|(key, _)| key)
            .collect();
            if !chain.is_empty() {
                return Some(chain[(random() % chain.len() as u64) as usize]);
            }
        }
    }
}

/// The `SCAN` cursor after `cursor` in a table of `mask + 1` buckets (reverse-binary order).
fn next_cursor(cursor: u64, mask: u64) -> u64 {
    (cursor | !mask)
        .reverse_bits()
        .wrapping_add(1)
        .reverse_bits()
}

/// Chains up to this long get exactly fair random picks (longer ones are rare: the table
/// grows at one key per bucket).
pub(crate) const FAIR_CHAIN: u64 = 8;

/// Draws before a random pick falls back to the bucket-first way.
const FAIR_TRIES: usize = 4096;

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        drop_buckets(std::mem::take(&mut self.buckets));
    }
}

/// Frees chains iteratively, so a long chain cannot overflow the stack.
fn drop_buckets<V>(buckets: Vec<Option<Box<Node<V>>>>) {
    for mut chain in buckets {
        while let Some(mut node) = chain {
            chain = node.next.take();
        }
    }
}

impl<V: Clone> Clone for Dict<V> {
    /// A copy with the same buckets, hashes and chain order: no key is hashed again, and the
    /// copy iterates in the original's order.
    fn clone(&self) -> Self {
        Dict {
            buckets: self.buckets.iter().map(clone_chain).collect(),
            len: self.len,
            hasher: self.hasher.clone(),
            shrink_paused: false,
        }
    }
}

/// A copy of the chain that starts at `head`, node by node in the same order.
fn clone_chain<V: Clone>(head: &Option<Box<Node<V>>>) -> Option<Box<Node<V>>> {
    let mut copy = None;
    let mut tail = &mut copy;
    let mut node = head.as_deref();
    while let Some(original) = node {
        let linked = tail.insert(Box::new(Node {
            hash: original.hash,
            key: original.key.clone(),
            value: original.value.clone(),
            next: None,
        }));
        tail = &mut linked.next;
        node = original.next.as_deref();
    }
    copy
}

fn empty_buckets<V>(size: usize) -> Vec<Option<Box<Node<V>>>> {
    let mut buckets = Vec::with_capacity(size);
    buckets.resize_with(size, || None);
    buckets
}

/// Iterator over a table's keys and values, in table order.
pub struct Iter<'a, V> {
    buckets: std::slice::Iter<'a, Option<Box<Node<V>>>>,
    chain: Option<&'a Node<V>>,
}

// A derive would require `V: Clone`; the iterator only holds references.
impl<V> Clone for Iter<'_, V> {
    fn clone(&self) -> Self {
        Iter {
            buckets: self.buckets.clone(),
            chain: self.chain,
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(node) = self.chain {
                self.chain = node.next.as_deref();
                return Some((node.key.as_bytes(), &node.value));
            }
            self.chain = self.buckets.next()?.as_deref();
        }
    }
}

struct ChainIter<'a, V> {
    node: Option<&'a Node<V>>,
}

impl<'a, V> Iterator for ChainIter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let node = self.node?;
        self.node = node.next.as_deref();
        Some((node.key.as_bytes(), &node.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use std::collections::{HashMap, HashSet};

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
                (0u16..300).prop_map(Op::Remove),
            ],
            0..600,
        )
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in ops()) {
            let mut dict = Dict::new();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let key = k.to_be_bytes();
                        prop_assert_eq!(dict.insert(&key, v), model.insert(key.to_vec(), v));
                    }
                    Op::Remove(k) => {
                        let key = k.to_be_bytes();
                        prop_assert_eq!(dict.remove(&key), model.remove(key.as_slice()));
                    }
                }
                prop_assert_eq!(dict.len(), model.len());
            }
            let mut seen: Vec<(Vec<u8>, u32)> = dict.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            let mut want: Vec<(Vec<u8>, u32)> = model.into_iter().collect();
            seen.sort();
            want.sort();
            prop_assert_eq!(seen, want);
        }

        /// A clone holds the same keys and values in the same order, finds them, and then
        /// changes independently of the original.
        #[test]
        fn a_clone_is_an_equal_independent_table(ops in ops(), after in ops()) {
            let mut dict = Dict::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => { dict.insert(&k.to_be_bytes(), v); }
                    Op::Remove(k) => { dict.remove(&k.to_be_bytes()); }
                }
            }
            let before: Vec<(Vec<u8>, u32)> = dict.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            let mut copy = dict.clone();
            let copied: Vec<(Vec<u8>, u32)> = copy.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            prop_assert_eq!(&copied, &before);
            prop_assert_eq!(copy.len(), dict.len());
            for (key, value) in &before {
                prop_assert_eq!(copy.get(key), Some(value));
            }
            for op in after {
                match op {
                    Op::Insert(k, v) => { copy.insert(&k.to_be_bytes(), v); }
                    Op::Remove(k) => { copy.remove(&k.to_be_bytes()); }
                }
            }
            let original: Vec<(Vec<u8>, u32)> = dict.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            prop_assert_eq!(original, before);
        }

        #[test]
        fn scan_returns_every_stable_key(initial in 1u32..500, churn in ops()) {
            let mut dict = Dict::new();
            for i in 0..initial {
                dict.insert(&i.to_be_bytes(), i);
            }
            // Keys 0..initial are never touched by the churn (which uses 2-byte keys).
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut churn = churn.into_iter();
            loop {
                cursor = dict.scan(cursor, |k, _| { seen.insert(k.to_vec()); });
                for op in churn.by_ref().take(7) {
                    match op {
                        Op::Insert(k, v) => { dict.insert(&k.to_be_bytes(), v); }
                        Op::Remove(k) => { dict.remove(&k.to_be_bytes()); }
                    }
                }
                if cursor == 0 { break; }
            }
            for i in 0..initial {
                prop_assert!(seen.contains(i.to_be_bytes().as_slice()));
            }
        }
    }

    #[test]
    fn random_key_gives_every_key_the_same_chance() {
        let mut dict = Dict::new();
        for i in 0..10u8 {
            dict.insert(&[b'k', i], ());
        }
        let mut state = 7u64;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
        for _ in 0..100_000 {
            let key = dict.random_key(&mut rng).unwrap().to_vec();
            *counts.entry(key).or_default() += 1;
        }
        assert_eq!(counts.len(), 10);
        // Chi-square with 9 degrees of freedom: 40 is a one-in-100000 outcome for a fair pick
        // (the bound Redis's own SRANDMEMBER distribution test uses).
        let chi_square: f64 = counts
            .values()
            .map(|&n| (f64::from(n) - 10_000.0).powi(2) / 10_000.0)
            .sum();
        assert!(chi_square < 40.0, "{chi_square}: {counts:?}");
    }

    #[test]
    fn random_key_finds_keys() {
        let mut dict = Dict::new();
        let mut state = 42u64;
        let mut rng = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        assert!(dict.random_key(&mut rng).is_none());
        for i in 0..100u32 {
            dict.insert(&i.to_be_bytes(), ());
        }
        let picked: HashSet<Vec<u8>> = (0..2000)
            .filter_map(|_| dict.random_key(&mut rng).map(|k| k.to_vec()))
            .collect();
        assert!(
            picked.len() > 90,
            "random_key covers the table, got {}",
            picked.len()
        );
    }
}
