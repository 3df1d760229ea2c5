//! A chained hash table keyed by byte strings, with Redis's reverse-binary `SCAN` cursor, fair
//! random sampling (for `RANDOMKEY` and the active expire cycle) and Redis's incremental
//! resizing.
//!
//! **INV-REHASH**: a resize never moves more than a few buckets at once. Growing or shrinking
//! allocates the new table (zeroed by the kernel, not written) and keeps the old one; every
//! insert, removal or change-lookup then moves [`STEP_BUCKETS`] old buckets (skipping at
//! most [`EMPTY_VISITS`] empty ones for each), and [`Dict::rehash`] moves more when the owner has time (the
//! server's cron). Until the old table is empty a key is looked up in both. So a table of
//! millions of keys doubles without stopping its owner, as Redis's `dictRehash` does.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while a forked child (snapshot, AOF rewrite, backup) holds a copy-on-write image.
static RESIZES_PAUSED: AtomicBool = AtomicBool::new(false);

/// How overloaded a table may get while resizes are paused (Redis's `dict_force_resize_ratio`).
const FORCED_RESIZE_RATIO: usize = 5;

/// Pauses or resumes table resizes. Resizing relinks every node of a table, which would make
/// the kernel copy every page a forked child still shares; like Redis, tables only start to
/// grow during a fork when they are 5 times overloaded, never shrink, and a resize already
/// under way waits unless one table is 5 times the other's size.
pub fn pause_resizes(paused: bool) {
    RESIZES_PAUSED.store(paused, Ordering::Relaxed);
}

fn resizes_paused() -> bool {
    RESIZES_PAUSED.load(Ordering::Relaxed)
}

/// Set while a file loads: nobody waits on a table's resize, so it moves every key at once.
static RESIZE_AT_ONCE_WHILE_LOADING: AtomicBool = AtomicBool::new(false);

/// Makes tables resize at once (`true`, while a file loads and no client is served) or a few
/// buckets per change (INV-REHASH). Resizing at once costs less in all: lookups never read
/// two tables.
pub fn resize_at_once(at_once: bool) {
    RESIZE_AT_ONCE_WHILE_LOADING.store(at_once, Ordering::Relaxed);
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
            .is_none_or(|guard| guard(new_buckets * std::mem::size_of::<Bucket<(), u64>>()))
}

pub(crate) use crate::small::INLINE as INLINE_KEY;
use crate::small::SmallBytes as Key;

/// What a table's nodes keep of their keys' hashes. `u64` keeps the whole hash: a lookup
/// compares it before the key (a long key is then read only when it is likely the one) and a
/// resize files the node without hashing its key again. `()` keeps nothing, for tables whose
/// nodes it makes a size class smaller (a set's: 32 bytes, not 48; a big hash's: 48, not 64):
/// a lookup compares keys, and a resize hashes each key again, as Redis's tables do.
pub trait NodeHash: Copy {
    /// What a node keeps of `hash`.
    fn keep(hash: u64) -> Self;
    /// Whether a node that kept `self` may hold a key of `hash`.
    fn may_be(self, hash: u64) -> bool;
    /// The hash of the node's `key`: kept, or computed again.
    fn recall(self, key: &[u8]) -> u64;
}

impl NodeHash for u64 {
    fn keep(hash: u64) -> Self {
        hash
    }

    fn may_be(self, hash: u64) -> bool {
        self == hash
    }

    fn recall(self, _key: &[u8]) -> u64 {
        self
    }
}

impl NodeHash for () {
    fn keep(_hash: u64) -> Self {}

    fn may_be(self, _hash: u64) -> bool {
        true
    }

    fn recall(self, key: &[u8]) -> u64 {
        hasher().hash_one(key)
    }
}

struct Node<V, H> {
    /// What the node keeps of its key's hash ([`NodeHash`]).
    hash: H,
    key: Key,
    value: V,
    next: Bucket<V, H>,
}

impl<V, H> Node<V, H> {
    /// A read of the node's first bytes, for the prefetching walks.
    fn touch(&self) -> u64 {
        self.key.len() as u64
    }
}

/// A bucket: the head of its chain.
type Bucket<V, H> = Option<Box<Node<V, H>>>;

/// A table's buckets.
type Table<V, H> = [Bucket<V, H>];

/// Empty buckets a resize step may pass over for each bucket it moves (Redis's
/// `empty_visits`), so a step through a sparse old table still ends soon.
const EMPTY_VISITS: usize = 10;

/// Non-empty buckets a change moves of a resize under way. Redis moves one; a few more end
/// the resize sooner, so fewer lookups of absent keys (every insert's) read both tables, for
/// about half a microsecond at most per change.
const STEP_BUCKETS: usize = 4;

/// A table of at most this many buckets resizes at once rather than a bucket at a time (in
/// unit tests only the smallest do, so the proptests' small tables resize incrementally).
const RESIZE_AT_ONCE: usize = if cfg!(test) { 16 } else { 1024 };

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
///
/// A table holds its bucket array, a pointer and its length: 48 bytes, so that a set or a big
/// hash (one table each) costs little beyond its members. The hash function's keys are the
/// process's, drawn once at random (as Redis seeds one hash function for all its tables).
pub struct Dict<V, H: NodeHash = u64> {
    /// The table keys are added to: while a resize is under way, the one they move to.
    buckets: Vec<Bucket<V, H>>,
    /// The resize under way, if any (INV-REHASH).
    resize: Option<Box<Resize<V, H>>>,
    len: usize,
    /// Set while a capture walks the table in bucket order.
    shrink_paused: bool,
}

/// A resize under way: the table keys move out of, boxed so that the many tables not
/// resizing pay one pointer for it.
struct Resize<V, H> {
    old: Vec<Bucket<V, H>>,
    /// The buckets of `old` below this index have been moved.
    moved: usize,
}

impl<V, H> Drop for Resize<V, H> {
    fn drop(&mut self) {
        drop_buckets(std::mem::take(&mut self.old));
    }
}

/// The hash function of every table: SipHash with keys drawn at random once per process.
fn hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

const MIN_BUCKETS: usize = 4;

impl<V, H: NodeHash> Default for Dict<V, H> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<V, H: NodeHash> Dict<V, H> {
    /// An empty table.
    pub fn new() -> Self {
        Dict {
            buckets: empty_buckets(MIN_BUCKETS),
            resize: None,
            len: 0,
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

    /// Number of buckets, of both tables while a resize is under way: the range
    /// [`Dict::iter_buckets`] splits.
    pub fn bucket_count(&self) -> usize {
        self.old().len() + self.buckets.len()
    }

    /// The table keys move out of while a resize is under way; empty otherwise.
    fn old(&self) -> &[Bucket<V, H>] {
        self.resize.as_deref().map_or(&[], |resize| &resize.old)
    }

    /// The old table's buckets already moved (0 when no resize is under way).
    fn moved(&self) -> usize {
        self.resize.as_deref().map_or(0, |resize| resize.moved)
    }

    /// Whether a resize is under way (Redis's `dictIsRehashing`).
    pub fn is_rehashing(&self) -> bool {
        self.resize.is_some()
    }

    /// Whether a resize to a smaller table is under way.
    pub fn is_shrinking(&self) -> bool {
        self.old().len() > self.buckets.len()
    }

    /// The table's statistics as Redis's `DEBUG HTSTATS` words them: size, elements, used
    /// buckets, chain lengths and their distribution; while a resize is under way, the old
    /// table as "main hash table" and the new one as "rehashing target".
    pub fn stats_text(&self) -> String {
        if self.is_rehashing() {
            let mut text = table_stats(self.old(), 0);
            text.push_str(&table_stats(&self.buckets, 1));
            text
        } else {
            table_stats(&self.buckets, 0)
        }
    }

    fn hash_of(&self, key: &[u8]) -> u64 {
        hasher().hash_one(key)
    }

    fn bucket_for(&self, hash: u64) -> usize {
        (hash as usize) & (self.buckets.len() - 1)
    }

    /// The bucket of the old table that may still hold keys of `hash`.
    fn old_bucket_for(&self, hash: u64) -> Option<usize> {
        let resize = self.resize.as_deref()?;
        let bucket = (hash as usize) & (resize.old.len() - 1);
        (bucket >= resize.moved).then_some(bucket)
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Node<V, H>> {
        if let Some(bucket) = self.old_bucket_for(hash)
            && let Some(node) = find_in(&self.old()[bucket], hash, key)
        {
            return Some(node);
        }
        find_in(&self.buckets[self.bucket_for(hash)], hash, key)
    }

    pub(crate) fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&V> {
        self.find(hash, key).map(|node| &node.value)
    }

    fn get_mut_hashed(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let (old, bucket) = (self.old_bucket_for(hash), self.bucket_for(hash));
        if let Some(old) = old
            && let Some(resize) = self.resize.as_deref_mut()
            && let Some(node) = find_in_mut(&mut resize.old[old], hash, key)
        {
            return Some(&mut node.value);
        }
        find_in_mut(&mut self.buckets[bucket], hash, key).map(|node| &mut node.value)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_hashed(self.hash_of(key), key)
    }

    /// The value stored under `key`, for changing it in place.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.rehash_step();
        self.get_mut_hashed(self.hash_of(key), key)
    }

    /// Looks `key` up once: if `discard` says its value is stale (an expired key), the entry
    /// is removed and returned as [`Lookup::Removed`]; otherwise it is returned for use.
    pub fn get_mut_unless(
        &mut self,
        key: &[u8],
        discard: impl FnOnce(&V) -> bool,
    ) -> Lookup<'_, V> {
        self.rehash_step();
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

    /// Makes room for `additional` more keys without resizing (a load's size hint). An empty
    /// table takes the new size at once; one with keys starts an incremental resize, unless
    /// one is under way.
    pub fn reserve(&mut self, additional: usize) {
        let wanted = (self.len + additional).next_power_of_two();
        if wanted > self.buckets.len() && !self.is_rehashing() {
            self.start_resize(wanted);
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
    /// independent of each other; only the rounds follow one another. While a resize is under
    /// way, a key's old bucket is warmed if it still holds keys, its new one otherwise.
    pub fn warm_with(&self, hashes: &[u64], near: impl Fn(&V) -> u64, far: impl Fn(&V) -> u64) {
        const AT_ONCE: usize = 32;
        let mut seen = 0u64;
        for chunk in hashes.chunks(AT_ONCE) {
            let mut heads: [Option<&Node<V, H>>; AT_ONCE] = [None; AT_ONCE];
            for (head, &hash) in heads.iter_mut().zip(chunk) {
                *head = match self.old_bucket_for(hash) {
                    Some(old) => self.old()[old].as_deref(),
                    None => self.buckets[self.bucket_for(hash)].as_deref(),
                };
            }
            // Second round: the next node of each chain (tables run close to one key per
            // bucket, so chains of two are common; longer ones are rare).
            let mut seconds: [Option<&Node<V, H>>; AT_ONCE] = [None; AT_ONCE];
            for (second, head) in seconds.iter_mut().zip(&heads) {
                if let Some(head) = head {
                    seen ^= head.touch();
                    *second = head.next.as_deref();
                }
            }
            for head in heads.iter().flatten() {
                seen ^= near(&head.value);
            }
            for second in seconds.iter().flatten() {
                seen ^= second.touch();
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

    /// Stores a key known to be absent: in the new table while a resize is under way, after
    /// moving one old bucket.
    pub(crate) fn insert_new(&mut self, hash: u64, key: Key, value: V) {
        if self.is_rehashing() {
            self.rehash_step();
        } else {
            self.grow_if_full();
        }
        let bucket = self.bucket_for(hash);
        let next = self.buckets[bucket].take();
        self.buckets[bucket] = Some(Box::new(Node {
            hash: H::keep(hash),
            key,
            value,
            next,
        }));
        self.len += 1;
    }

    /// Starts doubling the table once it holds a key per bucket (five while resizes are
    /// paused), if the growth guard allows.
    fn grow_if_full(&mut self) {
        let buckets = self.buckets.len();
        let limit = if resizes_paused() {
            buckets * FORCED_RESIZE_RATIO
        } else {
            buckets
        };
        if self.len >= limit && growth_allowed(buckets * 2, self.len, buckets) {
            self.start_resize(buckets * 2);
        }
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
        self.rehash_step();
        self.remove_hashed(self.hash_of(key), key)
    }

    fn remove_hashed(&mut self, hash: u64, key: &[u8]) -> Option<V> {
        let (old, bucket) = (self.old_bucket_for(hash), self.bucket_for(hash));
        let in_old =
            old.and_then(|old| unlink(&mut self.resize.as_deref_mut()?.old[old], hash, key));
        let removed = match in_old {
            Some(node) => node,
            None => unlink(&mut self.buckets[bucket], hash, key)?,
        };
        self.len -= 1;
        self.shrink_if_sparse();
        Some(removed.value)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        let table = std::mem::replace(&mut self.buckets, empty_buckets(MIN_BUCKETS));
        drop_buckets(table);
        self.resize = None;
        self.len = 0;
    }

    fn shrink_if_sparse(&mut self) {
        if resizes_paused() || self.shrink_paused || self.is_rehashing() {
            return;
        }
        let buckets = self.buckets.len();
        if buckets > MIN_BUCKETS && self.len * 10 < buckets {
            self.start_resize((self.len.next_power_of_two() * 2).max(MIN_BUCKETS));
        }
    }

    /// Starts moving the keys to a table of `new_size` buckets (INV-REHASH). An empty table is
    /// simply replaced; a small one moves at once (tens of microseconds), so small hashes and
    /// sets, which only move keys when written, never sit half-resized with both tables.
    fn start_resize(&mut self, new_size: usize) {
        let table = std::mem::replace(&mut self.buckets, empty_buckets(new_size));
        if self.len == 0 {
            drop_buckets(table);
            return;
        }
        let small =
            table.len() <= RESIZE_AT_ONCE || RESIZE_AT_ONCE_WHILE_LOADING.load(Ordering::Relaxed);
        self.resize = Some(Box::new(Resize {
            old: table,
            moved: 0,
        }));
        if small {
            self.move_buckets(usize::MAX);
        }
    }

    /// One step of a resize under way: the next [`STEP_BUCKETS`] old buckets that hold keys.
    pub(crate) fn rehash_step(&mut self) {
        if self.is_rehashing() {
            self.rehash(STEP_BUCKETS);
        }
    }

    /// Moves up to `buckets` non-empty buckets of a resize under way to the new table
    /// (passing over at most [`EMPTY_VISITS`] empty ones for each), and returns whether the
    /// resize is still under way. The owner calls it when it has time, as Redis's cron does
    /// with `activerehashing`.
    pub fn rehash(&mut self, buckets: usize) -> bool {
        if resizes_paused() && !self.resize_is_extreme() {
            // Moving nodes would copy the pages a forked child shares (Redis's
            // `DICT_RESIZE_AVOID`): the resize waits for the child, unless it is extreme.
            return self.is_rehashing();
        }
        self.move_buckets(buckets)
    }

    /// The moving part of [`Dict::rehash`].
    fn move_buckets(&mut self, buckets: usize) -> bool {
        let Some(resize) = self.resize.as_deref_mut() else {
            return false;
        };
        let mask = self.buckets.len() - 1;
        let mut empty_visits = buckets.saturating_mul(EMPTY_VISITS);
        let mut left = buckets;
        while left > 0 && resize.moved < resize.old.len() {
            let mut chain = resize.old[resize.moved].take();
            resize.moved += 1;
            if chain.is_none() {
                empty_visits -= 1;
                if empty_visits == 0 {
                    break;
                }
                continue;
            }
            while let Some(mut node) = chain {
                chain = node.next.take();
                let bucket = (node.hash.recall(node.key.as_bytes()) as usize) & mask;
                node.next = self.buckets[bucket].take();
                self.buckets[bucket] = Some(node);
            }
            left -= 1;
        }
        if resize.moved < resize.old.len() {
            return true;
        }
        // Every bucket is empty: freeing reads the table once more, and no node.
        self.resize = None;
        false
    }

    /// Whether one table is [`FORCED_RESIZE_RATIO`] times the other's size: a resize that
    /// goes on even while resizes are paused.
    fn resize_is_extreme(&self) -> bool {
        let (small, large) = match self.tables_by_size() {
            (small, Some(large)) => (small.len(), large.len()),
            (_, None) => return false,
        };
        large / small >= FORCED_RESIZE_RATIO
    }

    /// Visits every key and value, in no particular order.
    pub fn iter(&self) -> Iter<'_, V, H> {
        Iter {
            buckets: self.old()[self.moved()..].iter().chain(&self.buckets),
            chain: None,
        }
    }

    /// Visits the keys and values of buckets `buckets` (clamped to [`Dict::bucket_count`]),
    /// in table order, the old table's buckets first while a resize is under way: disjoint
    /// ranges that cover `0..bucket_count()` visit every key once.
    pub fn iter_buckets(&self, buckets: std::ops::Range<usize>) -> Iter<'_, V, H> {
        let split = self.old().len();
        let old = buckets.start.min(split)..buckets.end.min(split);
        let end = buckets.end.saturating_sub(split).min(self.buckets.len());
        let start = buckets.start.saturating_sub(split).min(end);
        Iter {
            buckets: self.old()[old].iter().chain(&self.buckets[start..end]),
            chain: None,
        }
    }

    /// Calls `visit` for each key of the bucket(s) at `cursor` and returns the next cursor;
    /// 0 means the scan is complete. Cursors follow Redis's reverse-binary order; while a
    /// resize is under way, the smaller table's bucket and every bucket of the larger one
    /// that its keys spread to are visited together (as Redis's `dictScan`).
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &V)) -> u64 {
        let (small, large) = self.tables_by_size();
        scan_buckets(
            cursor,
            small.len(),
            large.map(<[_]>::len),
            |in_large, index| {
                let table = match large {
                    Some(large) if in_large => large,
                    _ => small,
                };
                for (key, value) in chain_of(&table[index]) {
                    visit(key, value);
                }
            },
        )
    }

    /// The two tables, smaller first; the second is `None` unless a resize is under way.
    fn tables_by_size(&self) -> (&Table<V, H>, Option<&Table<V, H>>) {
        if !self.is_rehashing() {
            (&self.buckets, None)
        } else if self.old().len() < self.buckets.len() {
            (self.old(), Some(&self.buckets))
        } else {
            (&self.buckets, Some(self.old()))
        }
    }

    /// The number of positions of a walk in table order ([`Dict::visit_bucket_mut`]): the
    /// larger table's bucket count.
    fn walk_len(&self) -> usize {
        self.buckets.len().max(self.old().len())
    }

    /// Pulls into the cache the first nodes at walk positions `from..from + count` and what
    /// `near` and then `far` read of their values (as in [`Dict::warm_with`]): independent
    /// loads the processor overlaps, where a walk would take one cache miss after another.
    pub fn warm_buckets(
        &self,
        from: usize,
        count: usize,
        near: impl Fn(&V) -> u64,
        far: impl Fn(&V) -> u64,
    ) {
        let range = |table: &[Bucket<V, H>]| {
            let end = from.saturating_add(count).min(table.len());
            from.min(end)..end
        };
        let old = self.old();
        let heads = old[range(old)]
            .iter()
            .chain(&self.buckets[range(&self.buckets)]);
        let mut seen = 0u64;
        for head in heads.clone().flatten() {
            // A node may straddle two cache lines: the hash and the link sit apart.
            seen ^= head.touch() ^ u64::from(head.next.is_some());
        }
        for head in heads.clone().flatten() {
            seen ^= near(&head.value);
            if let Some(second) = &head.next {
                seen ^= second.touch();
            }
        }
        for head in heads.flatten() {
            seen ^= far(&head.value);
        }
        std::hint::black_box(seen);
    }

    /// Visits the keys and values at walk position `index` for changing them, and returns the
    /// next position, or 0 past the last: a walk in table order, sequential in memory. Position
    /// `i` is bucket `i` of each table. Growing (at once or incrementally) moves a key of
    /// position `i` only to positions at or after `i`, so a walk sees every key present
    /// throughout, provided it starts with no shrink under way and none starts meanwhile (see
    /// [`Dict::pause_shrinking`] and [`Dict::is_shrinking`]).
    pub fn visit_bucket_mut(&mut self, index: usize, mut visit: impl FnMut(&Key, &mut V)) -> usize {
        let walk_len = self.walk_len();
        let old: &mut [Bucket<V, H>] = match self.resize.as_deref_mut() {
            Some(resize) => &mut resize.old,
            None => &mut [],
        };
        for table in [old, &mut self.buckets[..]] {
            let Some(bucket) = table.get_mut(index) else {
                continue;
            };
            let mut node = bucket.as_deref_mut();
            while let Some(n) = node {
                visit(&n.key, &mut n.value);
                node = n.next.as_deref_mut();
            }
        }
        if index + 1 >= walk_len { 0 } else { index + 1 }
    }

    /// Stops or resumes starting a shrink when keys are removed (a walk in table order
    /// restarts when the table grows; with shrinking paused it restarts at most once per
    /// doubling).
    pub fn pause_shrinking(&mut self, paused: bool) {
        self.shrink_paused = paused;
    }

    /// Takes the keys and values of the bucket(s) at `cursor` (as [`Dict::scan`] visits them)
    /// out of the table, handing each to `take`, and returns the next cursor (0 = the table is
    /// empty of what the walk saw). Dismantling a detached table this way frees it a little at
    /// a time.
    pub fn drain_scan(&mut self, cursor: u64, mut take: impl FnMut(Key, V)) -> u64 {
        let Dict {
            buckets,
            resize,
            len,
            ..
        } = self;
        let buckets: &mut [Bucket<V, H>] = buckets;
        let (small, mut large) = match resize.as_deref_mut() {
            None => (buckets, None),
            Some(resize) if resize.old.len() < buckets.len() => {
                (&mut resize.old[..], Some(buckets))
            }
            Some(resize) => (buckets, Some(&mut resize.old[..])),
        };
        let large_len = large.as_ref().map(|table| table.len());
        scan_buckets(cursor, small.len(), large_len, |in_large, index| {
            let table = match &mut large {
                Some(large) if in_large => &mut **large,
                _ => &mut *small,
            };
            let mut chain = table[index].take();
            while let Some(mut node) = chain {
                chain = node.next.take();
                *len -= 1;
                let Node { key, value, .. } = *node;
                take(key, value);
            }
        })
    }

    /// Visits up to `count` keys near a random spot of the table: the chains of consecutive
    /// buckets from a random start, giving up after `count * 10` buckets (as Redis's
    /// `dictGetSomeKeys`: cheaper than `count` random picks, and as good for sampling). While
    /// a resize is under way, a position covers the bucket of that index in each table.
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
        let mask = self.walk_len() - 1;
        let mut position = (random() as usize) & mask;
        let mut visited = 0;
        let mut empty_run = 0;
        for _ in 0..count.saturating_mul(10).max(count) {
            let chains = [self.old().get(position), self.buckets.get(position)];
            if chains.iter().flatten().all(|bucket| bucket.is_none()) {
                empty_run += 1;
                // A long empty stretch: jump elsewhere, as Redis does.
                if empty_run >= 5 && empty_run > count {
                    position = (random() as usize) & mask;
                    empty_run = 0;
                    continue;
                }
            } else {
                empty_run = 0;
            }
            for (key, value) in chains.into_iter().flatten().flat_map(chain_of) {
                visit(key, value);
                visited += 1;
                if visited == count {
                    return;
                }
            }
            position = (position + 1) & mask;
        }
    }

    /// A key chosen at random, `random` being a source of random numbers. Every key has the
    /// same chance as long as no chain is longer than [`FAIR_CHAIN`]: a (bucket, position)
    /// pair is drawn, over the buckets of both tables while a resize is under way, until it
    /// names a key, so a key in a short chain is not favoured over one sharing its bucket
    /// (Redis's `dictGetFairRandomKey` serves the same purpose). A longer chain draws its
    /// position over its own length, so every key of it can be drawn too.
    pub fn random_key(&self, mut random: impl FnMut() -> u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let slots = self.bucket_count() as u64;
        for _ in 0..FAIR_TRIES {
            let bucket = self.slot(random() % slots);
            if bucket.is_none() {
                continue;
            }
            let length = chain_of(bucket).count() as u64;
            let position = (random() % length.max(FAIR_CHAIN)) as usize;
            if let Some((key, _)) = chain_of(bucket).nth(position) {
                return Some(key);
            }
        }
        // A nearly empty table that drew nothing: any key of a random non-empty bucket.
        loop {
            let chain: Vec<&[u8]> = chain_of(self.slot(random() % slots))
                .map(|(key, _)| key)
                .collect();
            if !chain.is_empty() {
                return Some(chain[(random() % chain.len() as u64) as usize]);
            }
        }
    }

    /// Bucket `slot` of the old table followed by the new one (`slot < bucket_count()`).
    fn slot(&self, slot: u64) -> &Bucket<V, H> {
        let slot = slot as usize;
        match self.old().get(slot) {
            Some(bucket) => bucket,
            None => &self.buckets[slot - self.old().len()],
        }
    }
}

/// The node of `key` in the chain that starts at `head`.
fn find_in<'a, V, H: NodeHash>(
    head: &'a Bucket<V, H>,
    hash: u64,
    key: &[u8],
) -> Option<&'a Node<V, H>> {
    let mut node = head.as_deref();
    while let Some(n) = node {
        if n.hash.may_be(hash) && n.key.as_bytes() == key {
            return Some(n);
        }
        node = n.next.as_deref();
    }
    None
}

/// As [`find_in`], for changing the node's value.
fn find_in_mut<'a, V, H: NodeHash>(
    head: &'a mut Bucket<V, H>,
    hash: u64,
    key: &[u8],
) -> Option<&'a mut Node<V, H>> {
    let mut node = head.as_deref_mut();
    while let Some(n) = node {
        if n.hash.may_be(hash) && n.key.as_bytes() == key {
            return Some(n);
        }
        node = n.next.as_deref_mut();
    }
    None
}

/// Takes the node of `key` out of the chain that starts at `head`.
fn unlink<V, H: NodeHash>(
    head: &mut Bucket<V, H>,
    hash: u64,
    key: &[u8],
) -> Option<Box<Node<V, H>>> {
    let mut link = head;
    loop {
        match link {
            None => return None,
            Some(node) if node.hash.may_be(hash) && node.key.as_bytes() == key => {
                let mut removed = link.take()?;
                *link = removed.next.take();
                return Some(removed);
            }
            Some(node) => link = &mut node.next,
        }
    }
}

/// `DEBUG HTSTATS`'s report of one table (`index` 0 is the main table, 1 the rehashing
/// target), with Redis's wording.
fn table_stats<V, H: NodeHash>(table: &[Bucket<V, H>], index: usize) -> String {
    use std::fmt::Write;
    const LENGTHS: usize = 50;
    let name = if index == 0 {
        "main hash table"
    } else {
        "rehashing target"
    };
    let mut distribution = [0usize; LENGTHS];
    let (mut slots, mut longest, mut total) = (0usize, 0usize, 0usize);
    for bucket in table {
        let chain = chain_of(bucket).count();
        distribution[chain.min(LENGTHS - 1)] += 1;
        if chain > 0 {
            slots += 1;
            longest = longest.max(chain);
            total += chain;
        }
    }
    if total == 0 {
        return format!(
            "Hash table {index} stats ({name}):\nNo stats available for empty dictionaries\n"
        );
    }
    let size = table.len();
    let average = total as f64 / slots as f64;
    let mut text = format!(
        "Hash table {index} stats ({name}):\n table size: {size}\n number of elements: {total}\n different slots: {slots}\n max chain length: {longest}\n avg chain length (counted): {average:.2}\n avg chain length (computed): {average:.2}\n Chain length distribution:\n",
    );
    for (length, count) in distribution.iter().enumerate().take(LENGTHS - 1) {
        if *count > 0 {
            let percent = *count as f64 * 100.0 / size as f64;
            let _ = writeln!(text, "   {length}: {count} ({percent:.2}%)");
        }
    }
    text
}

/// Calls `at(in_large, index)` for the buckets a `SCAN` step at `cursor` covers, as Redis's
/// `dictScan`: bucket `cursor` of the smaller table (the only one when `large` is `None`), then
/// every bucket of the larger table of `large` buckets that its keys spread to; returns the
/// next cursor.
fn scan_buckets(
    cursor: u64,
    small: usize,
    large: Option<usize>,
    mut at: impl FnMut(bool, usize),
) -> u64 {
    let small_mask = (small - 1) as u64;
    at(false, (cursor & small_mask) as usize);
    let Some(large) = large else {
        return next_cursor(cursor, small_mask);
    };
    let large_mask = (large - 1) as u64;
    let mut cursor = cursor;
    loop {
        at(true, (cursor & large_mask) as usize);
        cursor = next_cursor(cursor, large_mask);
        // Done once the bits only the larger table has wrap round to zero.
        if cursor & (small_mask ^ large_mask) == 0 {
            return cursor;
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

impl<V, H: NodeHash> Drop for Dict<V, H> {
    fn drop(&mut self) {
        drop_buckets(std::mem::take(&mut self.buckets));
    }
}

/// Frees chains iteratively, so a long chain cannot overflow the stack.
fn drop_buckets<V, H>(buckets: Vec<Bucket<V, H>>) {
    for mut chain in buckets {
        while let Some(mut node) = chain {
            chain = node.next.take();
        }
    }
}

impl<V: Clone, H: NodeHash> Clone for Dict<V, H> {
    /// A copy with the same buckets, hashes and chain order, a resize under way included: no
    /// key is hashed again, and the copy iterates in the original's order.
    fn clone(&self) -> Self {
        Dict {
            buckets: self.buckets.iter().map(clone_chain).collect(),
            resize: self.resize.as_deref().map(|resize| {
                Box::new(Resize {
                    old: resize.old.iter().map(clone_chain).collect(),
                    moved: resize.moved,
                })
            }),
            len: self.len,
            shrink_paused: false,
        }
    }
}

/// A copy of the chain that starts at `head`, node by node in the same order.
fn clone_chain<V: Clone, H: NodeHash>(head: &Bucket<V, H>) -> Bucket<V, H> {
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

/// A table of `size` empty buckets, allocated zeroed: a large one comes as fresh pages the
/// kernel zeroes on first touch, so the keys moving in pay for the pages as they fill them.
fn empty_buckets<V, H: NodeHash>(size: usize) -> Vec<Bucket<V, H>> {
    bytemuck::allocation::zeroed_vec(size)
}

/// The buckets a walk of both tables visits.
type Buckets<'a, V, H> =
    std::iter::Chain<std::slice::Iter<'a, Bucket<V, H>>, std::slice::Iter<'a, Bucket<V, H>>>;

/// Iterator over a table's keys and values, in table order.
pub struct Iter<'a, V, H = u64> {
    buckets: Buckets<'a, V, H>,
    chain: Option<&'a Node<V, H>>,
}

// A derive would require `V: Clone`; the iterator only holds references.
impl<V, H> Clone for Iter<'_, V, H> {
    fn clone(&self) -> Self {
        Iter {
            buckets: self.buckets.clone(),
            chain: self.chain,
        }
    }
}

impl<'a, V, H> Iterator for Iter<'a, V, H> {
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

/// The keys and values of the chain that starts at `head`.
fn chain_of<V, H: NodeHash>(head: &Bucket<V, H>) -> ChainIter<'_, V, H> {
    ChainIter {
        node: head.as_deref(),
    }
}

struct ChainIter<'a, V, H> {
    node: Option<&'a Node<V, H>>,
}

impl<'a, V, H> Iterator for ChainIter<'a, V, H> {
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

    #[test]
    fn a_table_not_resizing_costs_six_words() {
        // A set's or a big hash's own cost beyond its members (used_memory per key).
        assert_eq!(std::mem::size_of::<Dict<()>>(), 48);
        assert_eq!(std::mem::size_of::<crate::set::SetValue>(), 48);
    }

    #[test]
    fn nodes_that_keep_no_hash_are_a_size_class_smaller() {
        // jemalloc's classes: 32, 48, 64. A set member's node, a big hash's field node, and
        // the key table's node (which keeps its hash for long keys: same class either way).
        assert_eq!(std::mem::size_of::<Node<(), ()>>(), 32);
        assert_eq!(std::mem::size_of::<Node<(), u64>>(), 40);
        assert_eq!(std::mem::size_of::<Node<Box<[u8]>, ()>>(), 48);
        assert_eq!(std::mem::size_of::<Node<Box<[u8]>, u64>>(), 56);
        assert_eq!(std::mem::size_of::<Node<u32, u64>>(), 48);
    }

    /// SplitMix64 from `seed`: xorshift's consecutive outputs are linearly related, which
    /// would tie a drawn chain position to the drawn bucket.
    fn splitmix(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

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
            let mut dict: Dict<_> = Dict::new();
            let mut unhashed: Dict<u32, ()> = Dict::new();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let key = k.to_be_bytes();
                        let old = model.insert(key.to_vec(), v);
                        prop_assert_eq!(dict.insert(&key, v), old);
                        prop_assert_eq!(unhashed.insert(&key, v), old);
                    }
                    Op::Remove(k) => {
                        let key = k.to_be_bytes();
                        let old = model.remove(key.as_slice());
                        prop_assert_eq!(dict.remove(&key), old);
                        prop_assert_eq!(unhashed.remove(&key), old);
                    }
                }
                prop_assert_eq!(dict.len(), model.len());
                prop_assert_eq!(unhashed.len(), model.len());
            }
            let mut want: Vec<(Vec<u8>, u32)> = model.into_iter().collect();
            want.sort();
            for (key, value) in &want {
                prop_assert_eq!(unhashed.get(key), Some(value));
            }
            let mut seen: Vec<(Vec<u8>, u32)> = dict.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            seen.sort();
            prop_assert_eq!(&seen, &want);
            let mut seen: Vec<(Vec<u8>, u32)> = unhashed.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            seen.sort();
            prop_assert_eq!(&seen, &want);
        }

        /// A clone holds the same keys and values in the same order, finds them, and then
        /// changes independently of the original.
        #[test]
        fn a_clone_is_an_equal_independent_table(ops in ops(), after in ops()) {
            let mut dict: Dict<_> = Dict::new();
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
            let mut dict: Dict<_> = Dict::new();
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

    proptest! {
        /// Disjoint bucket ranges cover every key once, a resize under way or not (the
        /// parallel save's split).
        #[test]
        fn bucket_ranges_cover_every_key_once(ops in ops(), run in 1usize..40) {
            let mut dict: Dict<_> = Dict::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => { dict.insert(&k.to_be_bytes(), v); }
                    Op::Remove(k) => { dict.remove(&k.to_be_bytes()); }
                }
            }
            let mut seen: Vec<Vec<u8>> = Vec::new();
            let mut start = 0;
            while start < dict.bucket_count() {
                seen.extend(dict.iter_buckets(start..start + run).map(|(k, _)| k.to_vec()));
                start += run;
            }
            let mut all: Vec<Vec<u8>> = dict.iter().map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(seen.len(), dict.len());
            seen.sort();
            all.sort();
            prop_assert_eq!(seen, all);
        }
    }

    /// Fills a table until a doubling has just started.
    fn table_in_the_middle_of_growing(keys: u32) -> Dict<u32> {
        let mut dict: Dict<_> = Dict::new();
        for i in 0..keys {
            dict.insert(&i.to_be_bytes(), i);
        }
        assert!(dict.is_rehashing(), "{keys} keys start a doubling");
        dict
    }

    /// INV-REHASH: a doubling moves a bucket or so per insert; until it is over, keys are
    /// found in both tables, scanned, drawn at random and reported as Redis does.
    #[test]
    fn a_doubling_moves_keys_a_bucket_at_a_time() {
        let mut dict = table_in_the_middle_of_growing(4097);
        assert_eq!((dict.old().len(), dict.buckets.len()), (4096, 8192));
        assert!(dict.moved() <= 1 + EMPTY_VISITS, "moved {}", dict.moved());
        for i in 0..4097u32 {
            assert_eq!(dict.get(&i.to_be_bytes()), Some(&i));
        }
        let stats = dict.stats_text();
        assert!(stats.contains("Hash table 0 stats (main hash table):\n table size: 4096\n"));
        assert!(stats.contains("Hash table 1 stats (rehashing target):\n table size: 8192\n"));
        let mut scanned = HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = dict.scan(cursor, |k, _| {
                scanned.insert(k.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(scanned.len(), 4097);
        let mut rng = splitmix(99);
        let drawn: HashSet<Vec<u8>> = (0..200_000)
            .filter_map(|_| dict.random_key(&mut rng).map(|k| k.to_vec()))
            .collect();
        assert_eq!(drawn.len(), 4097, "every key drawn, from both tables");
        assert!(!dict.rehash(usize::MAX));
        assert_eq!((dict.old().len(), dict.bucket_count()), (0, 8192));
        for i in 0..4097u32 {
            assert_eq!(dict.get(&i.to_be_bytes()), Some(&i));
        }
    }

    /// A table shrinks a bucket at a time too, and a drained detached table empties whole.
    #[test]
    fn a_shrink_is_incremental_and_a_drain_takes_every_key() {
        let mut dict = table_in_the_middle_of_growing(4097);
        dict.rehash(usize::MAX);
        for i in 0..3280u32 {
            dict.remove(&i.to_be_bytes());
        }
        assert!(dict.is_shrinking(), "817 keys in 8192 buckets shrink");
        let mut taken = HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = dict.drain_scan(cursor, |k, _| {
                taken.insert(k.as_bytes().to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!((taken.len(), dict.len()), (817, 0));
    }

    #[test]
    fn random_key_gives_every_key_the_same_chance() {
        let mut dict: Dict<_> = Dict::new();
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

    /// Keys left in one long chain, as Redis's "SRANDMEMBER with a dict containing long
    /// chain" test leaves them (the survivors of a big table share their low hash bits), are
    /// all drawn, each about as often.
    #[test]
    fn random_key_reaches_every_key_of_a_long_chain() {
        let mut dict: Dict<_> = Dict::new();
        for i in 0..65536u32 {
            dict.insert(&i.to_be_bytes(), ());
        }
        let gone: Vec<[u8; 4]> = (0..65536u32)
            .map(u32::to_be_bytes)
            .filter(|key| dict.hash_of(key) & 511 != 0)
            .collect();
        for key in &gone {
            dict.remove(key);
        }
        while dict.is_rehashing() {
            dict.rehash(usize::MAX);
        }
        let longest = dict.buckets.iter().map(|b| chain_of(b).count()).max();
        let survivors = dict.len();
        assert!(
            longest.is_some_and(|n| n > 2 * FAIR_CHAIN as usize),
            "{longest:?} of {survivors} in {} buckets",
            dict.buckets.len()
        );
        let mut rng = splitmix(42);
        let draws = 200 * survivors;
        let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
        for _ in 0..draws {
            *counts
                .entry(dict.random_key(&mut rng).unwrap().to_vec())
                .or_default() += 1;
        }
        assert_eq!(counts.len(), survivors, "every key is drawn");
        assert!(counts.values().all(|&n| n > 100), "{counts:?}");
    }

    #[test]
    fn random_key_finds_keys() {
        let mut dict: Dict<_> = Dict::new();
        let mut rng = splitmix(42);
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
