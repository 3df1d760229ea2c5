//! Databases: keys with their values and expiry times, lazy and active expiry.

use crate::access::{Access, AccessClock, access_clock};
use crate::capture::{Capture, CaptureSink};
use crate::dict::{Dict, Lookup};
use crate::entries::Entries;
use crate::small::SmallBytes;
use crate::value::Value;

/// A stored value with its metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry time in Unix milliseconds, [`NO_EXPIRY`] for a persistent key (an
    /// `Option<i64>` would take 8 more bytes in every key's node).
    expire: i64,
    /// Last access time or access frequency (see [`crate::access`]).
    access: Access,
    /// Whether a running capture has this entry's image (INV-CAPTURE): equal to the
    /// database's mark once handed out. Fits in the struct's padding.
    pub(crate) mark: bool,
}

/// Most keys [`Db::warm_keys`] brings into the cache at once.
pub const WARM_BATCH: usize = 32;

/// The `expire` of a key that never expires.
const NO_EXPIRY: i64 = i64::MIN;

impl Entry {
    /// Reads the entry's own memory and returns something computed from it: loads that bring
    /// the entry into the cache ahead of its use. An entry may straddle two cache lines, so
    /// both its first field (the value's tag) and its last ones are read.
    pub(crate) fn touch(&self) -> u64 {
        let tag = u64::from(matches!(self.value, Value::Str(_)));
        tag ^ self.expire as u64 ^ u64::from(self.mark)
    }

    /// A copy for a capture (INV-CAPTURE): a clone, which shares a set, a stream or a big
    /// collection (INV-SHARED-SET); a long string is first made shared, so that it is not
    /// copied on the event loop either.
    pub(crate) fn clone_for_capture(&mut self) -> Entry {
        if let Value::Str(string) = &mut self.value {
            string.share_if_long();
        }
        self.clone()
    }

    /// An entry without expiry, accessed at `now_ms`.
    pub fn new(value: Value, now_ms: i64) -> Entry {
        Entry {
            value,
            expire: NO_EXPIRY,
            access: Access::new(now_ms),
            mark: false,
        }
    }

    /// Milliseconds since the key was last accessed, reading its record as LRU data
    /// (`OBJECT IDLETIME`, the LRU policies).
    pub fn idle_ms(&self, now_ms: i64) -> u64 {
        self.access.idle_ms(now_ms)
    }

    /// The key's access counter with its decay applied, reading its record as LFU data
    /// (`OBJECT FREQ`, the LFU policies).
    pub fn frequency(&self, now_ms: i64) -> u8 {
        let decay = match access_clock() {
            AccessClock::Lfu { decay_minutes, .. } => decay_minutes,
            AccessClock::Lru => 1,
        };
        self.access.decayed_counter(now_ms, decay)
    }

    /// Says the key was last accessed `idle_seconds` ago (`RESTORE ... IDLETIME`, an RDB's
    /// idle-time record).
    pub fn set_idle(&mut self, idle_seconds: u64, now_ms: i64) {
        self.access = Access::idle_for(idle_seconds, now_ms);
    }

    /// Gives the key the access counter `counter` (`RESTORE ... FREQ`, an RDB's frequency
    /// record).
    pub fn set_frequency(&mut self, counter: u8, now_ms: i64) {
        self.access = Access::with_frequency(counter, now_ms);
    }

    /// Resets the access record as for a key created at `now_ms` (a copy of a key).
    pub fn reset_access(&mut self, now_ms: i64) {
        self.access = Access::new(now_ms);
    }

    /// The raw 24-bit access record (`DEBUG OBJECT`'s `lru:`).
    pub fn access_bits(&self) -> u32 {
        self.access.bits()
    }

    /// Absolute expiry time in Unix milliseconds, or `None` for a persistent key.
    pub fn expire_at(&self) -> Option<i64> {
        (self.expire != NO_EXPIRY).then_some(self.expire)
    }

    /// Sets (or with `None` removes) the expiry time. Use [`Db::set_expire`] for a stored key,
    /// which also keeps the index of keys with a TTL.
    pub fn set_expire_at(&mut self, at: Option<i64>) {
        self.expire = at.map_or(NO_EXPIRY, |at| at.max(NO_EXPIRY + 1));
    }

    fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at().is_some_and(|at| at <= now_ms)
    }

    /// Whether the key has logically expired at `now_ms` (kept for callers that decide
    /// themselves, such as a command setting a past expiry while the AOF loads).
    pub fn has_expired(&self, now_ms: i64) -> bool {
        self.is_expired(now_ms)
    }
}

/// One of the numbered databases (`SELECT n`).
#[derive(Default)]
pub struct Db {
    /// Keys and their entries, each entry apart from the key's node (INV-ENTRY-APART).
    keys: Entries,
    /// The keys that have an expiry time, sampled by the active expire cycle.
    volatile: Dict<(), ()>,
    /// Keys deleted because they expired, since the counter was last read.
    expired: u64,
    /// While set, no key is treated as expired (as Redis while it loads a file: an AOF replays
    /// commands on keys whose expiry has passed exactly as they first ran).
    expiry_paused: bool,
    /// While set, expired keys read as absent but are never deleted here (as on a Redis
    /// replica, which waits for its master's `DEL`).
    keep_expired: bool,
    /// Whether to remember the names of expired keys (for the AOF's `DEL`s).
    record_expired: bool,
    /// Names of keys deleted by expiry since last taken, when recording.
    expired_keys: Vec<Vec<u8>>,
    /// Whether to remember the names of keys added (for the `new` keyspace event).
    record_new: bool,
    /// Names of keys added since last taken, when recording.
    new_keys: Vec<Vec<u8>>,
    /// The mark of entries a running capture has handed out (INV-CAPTURE).
    mark: bool,
    /// The running capture, if any.
    capture: Option<Box<Capture>>,
}

/// What one active expire pass over a database did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpireCycle {
    /// Keys with a TTL that were looked at.
    pub sampled: usize,
    /// Keys that were deleted.
    pub expired: usize,
}

impl Db {
    /// An empty database.
    pub fn new() -> Db {
        Db::default()
    }

    /// Number of keys, including expired keys not yet deleted (as `DBSIZE` counts them).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key and expiry tables' statistics, as Redis's `DEBUG HTSTATS` prints them.
    pub fn table_stats(&self) -> String {
        format!(
            "[Dictionary HT]\n{}[Expires HT]\n{}",
            self.keys.stats_text(),
            self.volatile.stats_text()
        )
    }

    /// Whether the key or expiry table is resizing (INV-REHASH).
    pub fn is_rehashing(&self) -> bool {
        self.keys.is_rehashing() || self.volatile.is_rehashing()
    }

    /// Moves up to `buckets` buckets of each of the key and expiry tables' resizes under way
    /// (INV-REHASH), and returns whether either is still under way: the server's cron calls it
    /// with time to spare, as Redis's `activerehashing` does.
    pub fn rehash(&mut self, buckets: usize) -> bool {
        let keys = self.keys.rehash(buckets);
        let volatile = self.volatile.rehash(buckets);
        keys || volatile
    }

    /// The table of keys and entries (for sampling).
    pub(crate) fn entries(&self) -> &Entries {
        &self.keys
    }

    /// The table of keys that have an expiry time (for sampling).
    pub(crate) fn volatile_keys(&self) -> &Dict<(), ()> {
        &self.volatile
    }

    /// Number of keys with an expiry time.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Takes the number of keys deleted by expiry since the last call.
    pub fn take_expired_count(&mut self) -> u64 {
        std::mem::take(&mut self.expired)
    }

    /// Starts or stops remembering which keys expiry deletes (see [`Db::take_expired_keys`]).
    pub fn set_record_expired(&mut self, record: bool) {
        self.record_expired = record;
        if !record {
            self.expired_keys = Vec::new();
        }
    }

    /// Takes the names of the keys deleted by expiry since the last call (when recording).
    pub fn take_expired_keys(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.expired_keys)
    }

    /// Whether expired keys' names wait to be taken.
    pub fn has_expired_keys(&self) -> bool {
        !self.expired_keys.is_empty()
    }

    /// Starts or stops remembering which keys are added (see [`Db::take_new_keys`]).
    pub fn set_record_new(&mut self, record: bool) {
        self.record_new = record;
        if !record {
            self.new_keys = Vec::new();
        }
    }

    /// Takes the names of the keys added since the last call (when recording): keys that did
    /// not exist before, as Redis's `new` keyspace event reports them.
    pub fn take_new_keys(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.new_keys)
    }

    /// Whether added keys' names wait to be taken.
    pub fn has_new_keys(&self) -> bool {
        !self.new_keys.is_empty()
    }

    /// Whether anything waits to be taken: an expiry count, expired keys' names or added
    /// keys' names.
    pub fn has_pending_events(&self) -> bool {
        self.expired != 0 || !self.expired_keys.is_empty() || !self.new_keys.is_empty()
    }

    fn note_new(&mut self, key: &[u8]) {
        if self.record_new {
            self.new_keys.push(key.to_vec());
        }
    }

    fn note_expired(&mut self, key: &[u8]) {
        self.expired += 1;
        if self.record_expired {
            self.expired_keys.push(key.to_vec());
        }
    }

    /// Pauses or resumes expiry (see the `expiry_paused` field).
    pub fn set_expiry_paused(&mut self, paused: bool) {
        self.expiry_paused = paused;
    }

    /// Hides expired keys without deleting them (see the `keep_expired` field), or goes back
    /// to deleting them.
    pub fn set_keep_expired(&mut self, keep: bool) {
        self.keep_expired = keep;
    }

    /// The time expiry is judged at: `now_ms`, or never while expiry is paused.
    fn expiry_clock(&self, now_ms: i64) -> i64 {
        if self.expiry_paused { i64::MIN } else { now_ms }
    }

    /// Deletes `key` if it has expired at `now_ms`; returns whether it did.
    fn expire_if_needed(&mut self, key: &[u8], now_ms: i64) -> bool {
        if self.keep_expired {
            return false;
        }
        let now_ms = self.expiry_clock(now_ms);
        let expired = self
            .keys
            .get(key)
            .is_some_and(|entry| entry.is_expired(now_ms));
        if expired {
            self.delete(key);
            self.note_expired(key);
        }
        expired
    }

    /// The live entry under `key`, deleting it first if it has expired, and marking it accessed.
    pub fn get_mut(&mut self, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let clock = self.expiry_clock(now_ms);
        if self.keep_expired {
            let entry = self.keys.get_mut(key)?;
            if entry.is_expired(clock) {
                return None;
            }
            entry.access.touch(now_ms);
            if let Some(capture) = &mut self.capture {
                capture.before_change(self.mark, key, entry);
            }
            return Some(entry);
        }
        match self
            .keys
            .get_mut_unless(key, |entry| entry.is_expired(clock))
        {
            Lookup::Found(entry) => {
                entry.access.touch(now_ms);
                if let Some(capture) = &mut self.capture {
                    capture.before_change(self.mark, key, entry);
                }
                Some(entry)
            }
            Lookup::Removed(entry) => {
                if let Some(capture) = &mut self.capture {
                    capture.removed(self.mark, key, entry);
                }
                self.volatile.remove(key);
                self.expired += 1;
                if self.record_expired {
                    self.expired_keys.push(key.to_vec());
                }
                None
            }
            Lookup::Missing => None,
        }
    }

    /// The live entry under `key` for reading: like [`Db::get_mut`] (an expired key deleted,
    /// the access time updated), but a running capture need not copy the value first.
    /// A hash or set whose table is resizing moves a few buckets (INV-REHASH).
    pub fn get_for_read(&mut self, key: &[u8], now_ms: i64) -> Option<&Entry> {
        let entry = if self.capture.is_none() {
            self.get_mut(key, now_ms)?
        } else {
            if !self.exists(key, now_ms) {
                return None;
            }
            let entry = self.keys.get_mut(key)?;
            entry.access.touch(now_ms);
            entry
        };
        entry.value.continue_resize();
        Some(entry)
    }

    /// The live entry under `key` without changing anything (an expired key reads as absent).
    pub fn peek(&self, key: &[u8], now_ms: i64) -> Option<&Entry> {
        let clock = self.expiry_clock(now_ms);
        self.keys.get(key).filter(|entry| !entry.is_expired(clock))
    }

    /// The entry under `key` even if it has logically expired (for debugging commands).
    pub fn raw(&self, key: &[u8]) -> Option<&Entry> {
        self.keys.get(key)
    }

    /// Whether a live key exists, deleting it if it has expired.
    pub fn exists(&mut self, key: &[u8], now_ms: i64) -> bool {
        let clock = self.expiry_clock(now_ms);
        match self.keys.get(key) {
            None => false,
            Some(entry) if entry.is_expired(clock) => {
                !self.keep_expired && !self.expire_if_needed(key, now_ms)
            }
            Some(_) => true,
        }
    }

    /// Stores `entry` under `key`, replacing any value and expiry the key had.
    pub fn insert(&mut self, key: &[u8], mut entry: Entry) {
        let volatile = entry.expire_at().is_some();
        entry.mark = self.mark;
        let previous = self.keys.insert(key, entry);
        if previous.is_none() {
            self.note_new(key);
        }
        // As Redis's dbOverwrite: under LFU, a new value keeps the key's access counter.
        if let (Some(previous), AccessClock::Lfu { .. }) = (&previous, access_clock())
            && let Some(entry) = self.keys.get_mut(key)
        {
            entry.access = previous.access;
        }
        let was_volatile = previous.as_ref().is_some_and(|p| p.expire_at().is_some());
        self.replaced(key, previous);
        match (was_volatile, volatile) {
            (false, true) => {
                self.volatile.insert(key, ());
            }
            (true, false) => {
                self.volatile.remove(key);
            }
            _ => {}
        }
    }

    /// Makes room for `keys` more keys, `volatile` of them with a TTL (RDB's RESIZEDB hint).
    pub fn reserve(&mut self, keys: usize, volatile: usize) {
        self.keys.reserve(keys);
        self.volatile.reserve(volatile);
    }

    /// Stores a freshly loaded key (owned, known to be new or replacing) with its entry.
    pub fn insert_owned(&mut self, key: Vec<u8>, mut entry: Entry) {
        entry.mark = self.mark;
        if entry.expire_at().is_some() {
            self.volatile.insert(&key, ());
        } else if !self.volatile.is_empty() {
            self.volatile.remove(&key);
        }
        if self.record_new && !self.keys.contains_key(&key) {
            self.new_keys.push(key.clone());
        }
        if key.len() <= crate::dict::INLINE_KEY {
            // Short keys are stored inside the table's node: copying beats shrinking the Vec.
            let previous = self.keys.insert(&key, entry);
            self.replaced(&key, previous);
        } else {
            let key = key.into_boxed_slice();
            let previous = self.keys.insert_owned(key.clone(), entry);
            self.replaced(&key, previous);
        }
    }

    /// Hands an entry just replaced in the table to a running capture that still owes it.
    fn replaced(&mut self, key: &[u8], previous: Option<Entry>) {
        if let (Some(capture), Some(previous)) = (&mut self.capture, previous) {
            capture.removed(self.mark, key, previous);
        }
    }

    /// Brings into the cache the table entries, and the values, that looking up these keys
    /// will read (the first [`WARM_BATCH`] of them), so a pipelined batch of commands takes its
    /// cache misses together instead of one command after another. Changes nothing. A key
    /// repeated from the one before is skipped, and a batch of one distinct key is left alone:
    /// its lookups hit the cache anyway, and hashing it again would only cost.
    pub fn warm_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut distinct: [&[u8]; WARM_BATCH] = [&[]; WARM_BATCH];
        let mut count = 0;
        for key in keys.into_iter().take(WARM_BATCH) {
            if count == 0 || distinct[count - 1] != key {
                distinct[count] = key;
                count += 1;
            }
        }
        if count < 2 {
            return;
        }
        let mut hashes = [0u64; WARM_BATCH];
        for (slot, key) in hashes.iter_mut().zip(&distinct[..count]) {
            *slot = self.keys.hash_key(key);
        }
        self.keys
            .warm_with(&hashes[..count], |entry| entry.value.touch());
    }

    /// Stores freshly loaded keys (each replacing any value the key had), taking the table's
    /// cache misses for the whole batch at once: the fast path of loading a file.
    pub fn insert_loaded(&mut self, batch: &mut Vec<(SmallBytes, Entry)>) {
        let hashes: Vec<u64> = batch
            .iter()
            .map(|(key, _)| self.keys.hash_key(key.as_bytes()))
            .collect();
        self.keys.warm(&hashes);
        for ((key, mut entry), hash) in batch.drain(..).zip(hashes) {
            entry.mark = self.mark;
            if entry.expire_at().is_some() {
                self.volatile.insert(key.as_bytes(), ());
            } else if !self.volatile.is_empty() {
                self.volatile.remove(key.as_bytes());
            }
            if self.capture.is_some() {
                let name = key.clone();
                let previous = self.keys.insert_hashed(hash, key, entry);
                self.replaced(&name, previous);
            } else {
                self.keys.insert_hashed(hash, key, entry);
            }
        }
    }

    /// Removes `key` whether or not it has expired, returning its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.keys.remove(key)?;
        if entry.expire_at().is_some() {
            self.volatile.remove(key);
        }
        match &mut self.capture {
            Some(capture) if entry.mark != self.mark => {
                // The capture needs the entry as it is; the caller gets a copy.
                let copy = entry.clone();
                capture.removed(self.mark, key, entry);
                Some(copy)
            }
            _ => Some(entry),
        }
    }

    /// Deletes `key` whether or not it has expired; returns whether it existed. Unlike
    /// [`Db::remove`], a running capture that still owes the entry takes it without a copy.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let Some(entry) = self.keys.remove(key) else {
            return false;
        };
        if entry.expire_at().is_some() {
            self.volatile.remove(key);
        }
        if let Some(capture) = &mut self.capture {
            capture.removed(self.mark, key, entry);
        }
        true
    }

    /// Sets or clears the expiry time of an existing key; false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<i64>) -> bool {
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        if let Some(capture) = &mut self.capture {
            capture.before_change(self.mark, key, entry);
        }
        let was_volatile = entry.expire_at().is_some();
        entry.set_expire_at(expire_at);
        match (was_volatile, expire_at.is_some()) {
            (false, true) => {
                self.volatile.insert(key, ());
            }
            (true, false) => {
                self.volatile.remove(key);
            }
            _ => {}
        }
        true
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        match &mut self.capture {
            Some(capture) => capture.detach(std::mem::take(&mut self.keys)),
            None => self.keys.clear(),
        }
        self.volatile.clear();
    }

    /// Visits every key and entry (expired ones included), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.keys.iter()
    }

    /// Visits every key and entry like [`Db::iter`], fast for a whole-keyspace walk (a snapshot):
    /// keys are gathered a batch at a time and their values' memory touched before the batch
    /// is visited, so the cache misses of a batch overlap instead of stalling one by one.
    /// `visit` returns false to stop the walk.
    pub fn for_each_batched(&self, visit: impl FnMut(&[u8], &Entry) -> bool) {
        self.for_each_batched_in(0..self.keys.bucket_count(), visit);
    }

    /// The number of buckets of the key table: [`Db::for_each_batched_in`] splits a walk by
    /// bucket ranges.
    pub fn bucket_count(&self) -> usize {
        self.keys.bucket_count()
    }

    /// [`Db::for_each_batched`] over the keys of buckets `buckets` only, so threads can share
    /// one walk: disjoint ranges covering `0..bucket_count()` visit every key once.
    pub fn for_each_batched_in<'a>(
        &'a self,
        buckets: std::ops::Range<usize>,
        mut visit: impl FnMut(&'a [u8], &'a Entry) -> bool,
    ) {
        const BATCH: usize = 16;
        let mut batch: Vec<(&'a [u8], &'a Entry)> = Vec::with_capacity(BATCH);
        let mut keys = self.keys.iter_buckets(buckets);
        loop {
            batch.clear();
            batch.extend(keys.by_ref().take(BATCH));
            if batch.is_empty() {
                return;
            }
            let touched = batch
                .iter()
                .fold(0u64, |acc, (_, entry)| acc ^ entry.value.touch());
            std::hint::black_box(touched);
            for (key, entry) in &batch {
                if !visit(key, entry) {
                    return;
                }
            }
        }
    }

    /// One step of `SCAN`: visits the keys under `cursor` and returns the next cursor (0 = done).
    pub fn scan(&self, cursor: u64, visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.keys.scan(cursor, visit)
    }

    /// A key picked at random among live ones, or `None` if there is none.
    pub fn random_key(&mut self, now_ms: i64, mut random: impl FnMut() -> u64) -> Option<Vec<u8>> {
        // Like Redis, give up looking for a live key after a bounded number of tries.
        for _ in 0..100 {
            let key = self.keys.random_key(&mut random)?.to_vec();
            if !self.expire_if_needed(&key, now_ms) {
                return Some(key);
            }
        }
        None
    }

    /// Samples up to `samples` keys that have a TTL and deletes those that have expired.
    pub fn expire_sample(
        &mut self,
        now_ms: i64,
        samples: usize,
        mut random: impl FnMut() -> u64,
    ) -> ExpireCycle {
        let mut cycle = ExpireCycle::default();
        for _ in 0..samples.min(self.volatile.len()) {
            let Some(key) = self.volatile.random_key(&mut random).map(<[u8]>::to_vec) else {
                break;
            };
            cycle.sampled += 1;
            if self.expire_if_needed(&key, now_ms) {
                cycle.expired += 1;
            }
        }
        cycle
    }
}

/// All databases of a server.
pub struct Keyspace {
    dbs: Vec<Db>,
    random_state: u64,
}

impl Keyspace {
    /// A keyspace of `count` empty databases.
    pub fn new(count: usize) -> Keyspace {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Keyspace {
            dbs: (0..count.max(1)).map(|_| Db::new()).collect(),
            random_state: seed | 1,
        }
    }

    /// Whether any database has expiry counts or key names waiting to be taken (see
    /// [`Db::has_pending_events`]): one cheap pass that lets the caller skip the collection.
    pub fn has_pending_events(&self) -> bool {
        self.dbs.iter().any(Db::has_pending_events)
    }

    /// Number of databases.
    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// Database `index`; panics on an index not checked against [`Keyspace::db_count`].
    pub fn db(&mut self, index: usize) -> &mut Db {
        &mut self.dbs[index]
    }

    /// Database `index`, read-only.
    pub fn db_ref(&self, index: usize) -> &Db {
        &self.dbs[index]
    }

    /// All databases, read-only.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Exchanges the contents of two databases (`SWAPDB`).
    pub fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    /// Starts or stops remembering added keys' names in every database.
    pub fn set_record_new(&mut self, record: bool) {
        self.dbs.iter_mut().for_each(|db| db.set_record_new(record));
    }

    /// Starts or stops remembering expired keys' names in every database.
    pub fn set_record_expired(&mut self, record: bool) {
        self.dbs
            .iter_mut()
            .for_each(|db| db.set_record_expired(record));
    }

    /// Pauses or resumes expiry in every database (while a file loads).
    pub fn set_expiry_paused(&mut self, paused: bool) {
        self.dbs
            .iter_mut()
            .for_each(|db| db.set_expiry_paused(paused));
    }

    /// Hides expired keys without deleting them in every database (a replica), or not.
    pub fn set_keep_expired(&mut self, keep: bool) {
        self.dbs.iter_mut().for_each(|db| db.set_keep_expired(keep));
    }

    /// Empties every database.
    pub fn clear(&mut self) {
        self.dbs.iter_mut().for_each(Db::clear);
    }

    /// Begins a point-in-time capture of every database (a forkless snapshot, INV-CAPTURE):
    /// from now on, [`Keyspace::capture_step`] hands out each entry as it is at this moment,
    /// however the databases change meanwhile. An abandoned capture still marking entries is
    /// finished first.
    pub fn begin_capture(&mut self) {
        if self.capturing() {
            self.abandon_capture();
            while !self.capture_step(usize::MAX, &mut |_, _, _| {}) {}
        }
        for (index, db) in self.dbs.iter_mut().enumerate() {
            db.mark = !db.mark;
            db.capture = Some(Box::new(Capture::new(index)));
        }
    }

    /// Whether a capture runs (or an abandoned one is still marking entries).
    pub fn capturing(&self) -> bool {
        self.dbs.iter().any(|db| db.capture.is_some())
    }

    /// One step of the running capture: hands `out` the old forms of entries changed since
    /// the last step, then walks on until it has taken `budget` more entries (or visited a
    /// few times as many buckets); returns true once every entry has been handed out (the
    /// capture is then over).
    pub fn capture_step(&mut self, budget: usize, out: &mut CaptureSink<'_>) -> bool {
        let mut budget = budget;
        let mut complete = true;
        for db in &mut self.dbs {
            let Some(capture) = db.capture.as_mut() else {
                continue;
            };
            capture.take_saved(out);
            if budget > 0 {
                budget = capture.walk(&mut db.keys, db.mark, budget, out);
            }
            if capture.is_complete() {
                db.capture = None;
            } else {
                complete = false;
            }
        }
        complete
    }

    /// Hands out the old forms of entries changed since the last step, without walking (to
    /// keep what a burst of writes saved from piling up).
    pub fn take_captured(&mut self, out: &mut CaptureSink<'_>) {
        for capture in self.dbs.iter_mut().filter_map(|db| db.capture.as_mut()) {
            capture.take_saved(out);
        }
    }

    /// Gives up the running capture: what it saved is dropped, and later steps only finish
    /// marking entries (which the next capture needs).
    pub fn abandon_capture(&mut self) {
        for capture in self.dbs.iter_mut().filter_map(|db| db.capture.as_mut()) {
            capture.abandon();
        }
    }

    /// Total number of keys.
    pub fn key_count(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    /// A pseudo-random number (splitmix64), for sampling; not for anything secret.
    pub fn next_random(&mut self) -> u64 {
        next_random(&mut self.random_state)
    }

    /// Database `index` with a random number source, for sampling operations.
    pub fn db_with_random(&mut self, index: usize) -> (&mut Db, impl FnMut() -> u64 + '_) {
        let state = &mut self.random_state;
        (&mut self.dbs[index], move || next_random(state))
    }
}

/// splitmix64: consecutive outputs are independent enough that a bucket pick and the pick
/// within the bucket do not correlate (plain xorshift made some keys unreachable).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{HashLimits, HashValue};
    use crate::set::SetValue;
    use crate::value::StrValue;
    use std::sync::Arc;

    fn string(text: &str) -> Value {
        Value::Str(StrValue::from_bytes(text.as_bytes()))
    }

    /// A set whose table was left growing by its last `SADD`, and its members.
    fn set_mid_resize() -> (SetValue, Vec<Vec<u8>>) {
        let mut set = SetValue::default();
        let mut members = Vec::new();
        while !set.is_rehashing() {
            let member = format!("member:{}", members.len()).into_bytes();
            set.add(&member, 0);
            members.push(member);
        }
        (set, members)
    }

    /// Reads move a resizing set's or hash's buckets until the resize is over (INV-REHASH),
    /// unless the table is shared with a capture's copy.
    #[test]
    fn reads_finish_a_collection_resize_its_writes_began() {
        let mut db = Db::new();
        let (set, members) = set_mid_resize();
        db.insert(b"set", Entry::new(Value::Set(Arc::new(set)), 0));
        let mut hash = HashValue::default();
        let limits = HashLimits {
            max_entries: 0,
            max_value: 64,
        };
        let mut fields = 0;
        while !matches!(&hash, HashValue::Table(table) if table.is_rehashing()) {
            hash.set(format!("field:{fields}").as_bytes(), b"v", limits);
            fields += 1;
        }
        db.insert(b"hash", Entry::new(Value::Hash(hash), 0));

        let shared = match &db.get_for_read(b"set", 0).map(|entry| &entry.value) {
            Some(Value::Set(set)) => set.clone(),
            other => panic!("not a set: {other:?}"),
        };
        for _ in 0..1000 {
            db.get_for_read(b"set", 0);
        }
        assert!(shared.is_rehashing(), "a shared table moved");
        drop(shared);

        let rehashing = |db: &Db, key: &[u8]| {
            db.raw(key)
                .and_then(|entry| entry.value.table_stats())
                .is_some_and(|stats| stats.contains("rehashing target"))
        };
        assert!(rehashing(&db, b"set") && rehashing(&db, b"hash"));
        let mut reads = 0;
        while rehashing(&db, b"set") || rehashing(&db, b"hash") {
            db.get_for_read(b"set", 0);
            db.get_for_read(b"hash", 0);
            reads += 1;
            assert!(reads < 10_000, "the resize never ended");
        }
        let Some(Value::Set(set)) = db.raw(b"set").map(|entry| &entry.value) else {
            panic!("the set is gone");
        };
        assert!(members.iter().all(|member| set.contains(member)));
        assert_eq!(set.len(), members.len());
        let Some(Value::Hash(hash)) = db.raw(b"hash").map(|entry| &entry.value) else {
            panic!("the hash is gone");
        };
        assert!((0..fields).all(|f| hash.get(format!("field:{f}").as_bytes()) == Some(b"v")));
    }

    #[test]
    fn lazy_expiry_deletes_on_access() {
        let mut db = Db::new();
        let mut entry = Entry::new(string("v"), 1000);
        entry.set_expire_at(Some(2000));
        db.insert(b"k", entry);
        assert_eq!(db.volatile_len(), 1);
        assert!(db.get_mut(b"k", 1999).is_some());
        assert!(db.peek(b"k", 2000).is_none());
        assert_eq!(db.len(), 1, "peek does not delete");
        assert!(db.get_mut(b"k", 2000).is_none());
        assert_eq!(
            (db.len(), db.volatile_len(), db.take_expired_count()),
            (0, 0, 1)
        );
    }

    #[test]
    fn overwrite_clears_ttl_and_set_expire_tracks_volatile() {
        let mut db = Db::new();
        let mut entry = Entry::new(string("v"), 0);
        entry.set_expire_at(Some(10));
        db.insert(b"k", entry);
        db.insert(b"k", Entry::new(string("w"), 0));
        assert_eq!(db.volatile_len(), 0);
        assert!(db.set_expire(b"k", Some(5)));
        assert_eq!(db.volatile_len(), 1);
        assert!(db.set_expire(b"k", None));
        assert_eq!(db.volatile_len(), 0);
        assert!(!db.set_expire(b"missing", Some(5)));
    }

    #[test]
    fn active_sampling_removes_expired_keys() {
        let mut keyspace = Keyspace::new(1);
        let (db, mut random) = keyspace.db_with_random(0);
        for i in 0..200u32 {
            let mut entry = Entry::new(string("v"), 0);
            entry.set_expire_at(Some(if i % 2 == 0 { 100 } else { 1_000_000 }));
            db.insert(&i.to_be_bytes(), entry);
        }
        let mut expired = 0;
        for _ in 0..10_000 {
            expired += db.expire_sample(500, 20, &mut random).expired;
            if expired == 100 {
                break;
            }
        }
        assert_eq!(expired, 100);
        assert_eq!(db.len(), 100);
    }
}
