//! Choosing keys to evict under `maxmemory`: Redis's eight policies and its approximation of
//! LRU, LFU and TTL order by sampling into a small pool of the best candidates seen.

use crate::access::AccessClock;
use crate::db::Keyspace;

/// Redis's `maxmemory-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Never evict: writes fail with `-OOM` instead.
    NoEviction,
    /// The least recently used keys.
    AllKeysLru,
    /// The least frequently used keys.
    AllKeysLfu,
    /// Any keys.
    AllKeysRandom,
    /// The least recently used keys among those with a TTL.
    VolatileLru,
    /// The least frequently used keys among those with a TTL.
    VolatileLfu,
    /// Any keys with a TTL.
    VolatileRandom,
    /// The keys with a TTL that expire first.
    VolatileTtl,
}

const POLICIES: [(EvictionPolicy, &str); 8] = [
    (EvictionPolicy::NoEviction, "noeviction"),
    (EvictionPolicy::AllKeysLru, "allkeys-lru"),
    (EvictionPolicy::AllKeysLfu, "allkeys-lfu"),
    (EvictionPolicy::AllKeysRandom, "allkeys-random"),
    (EvictionPolicy::VolatileLru, "volatile-lru"),
    (EvictionPolicy::VolatileLfu, "volatile-lfu"),
    (EvictionPolicy::VolatileRandom, "volatile-random"),
    (EvictionPolicy::VolatileTtl, "volatile-ttl"),
];

impl EvictionPolicy {
    /// The policy named `name` (case-insensitive), as `maxmemory-policy` spells it.
    pub fn parse(name: &str) -> Option<EvictionPolicy> {
        POLICIES
            .iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
            .map(|(policy, _)| *policy)
    }

    /// The policy's name in `maxmemory-policy`.
    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(policy, _)| *policy == self)
            .map_or("noeviction", |(_, name)| name)
    }

    /// Whether only keys with a TTL may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }

    /// Whether the policy orders keys by access frequency (so keys must count accesses).
    pub fn is_lfu(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }

    /// Whether the policy orders keys by last access time.
    pub fn is_lru(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru
        )
    }

    /// What keys' access records must count under this policy.
    pub fn access_clock(self, log_factor: u32, decay_minutes: u32) -> AccessClock {
        if self.is_lfu() {
            AccessClock::Lfu {
                log_factor,
                decay_minutes,
            }
        } else {
            AccessClock::Lru
        }
    }

    fn is_random(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysRandom | EvictionPolicy::VolatileRandom
        )
    }
}

/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

struct Candidate {
    /// Higher is evicted first: idle time, 255 minus the access counter, or time to expiry
    /// inverted.
    score: u64,
    db: usize,
    key: Box<[u8]>,
}

/// The state eviction keeps between picks: the best candidates sampled so far, and which
/// database the random policies visit next.
#[derive(Default)]
pub struct EvictionPool {
    /// Ordered by ascending score; the best candidate is last.
    candidates: Vec<Candidate>,
    next_db: usize,
}

impl EvictionPool {
    /// An empty pool.
    pub fn new() -> EvictionPool {
        EvictionPool::default()
    }

    /// Forgets every candidate (the keyspace was emptied or replaced).
    pub fn clear(&mut self) {
        self.candidates.clear();
    }

    fn offer(&mut self, candidate: Candidate) {
        let at = self
            .candidates
            .partition_point(|held| held.score < candidate.score);
        if self.candidates.len() < POOL_SIZE {
            self.candidates.insert(at, candidate);
        } else if at > 0 {
            // Full: the candidate beats the worst one held, which makes room.
            self.candidates.remove(0);
            self.candidates.insert(at - 1, candidate);
        }
    }
}

impl Keyspace {
    /// The next key to evict under `policy`, as (database, key), sampling `samples` keys per
    /// database into `pool`; `None` when no key may be evicted. The key is not removed.
    pub fn eviction_candidate(
        &mut self,
        policy: EvictionPolicy,
        samples: usize,
        pool: &mut EvictionPool,
        now_ms: i64,
    ) -> Option<(usize, Vec<u8>)> {
        match policy {
            EvictionPolicy::NoEviction => None,
            policy if policy.is_random() => self.random_candidate(policy.volatile_only(), pool),
            policy => self.pooled_candidate(policy, samples, pool, now_ms),
        }
    }

    fn random_candidate(
        &mut self,
        volatile_only: bool,
        pool: &mut EvictionPool,
    ) -> Option<(usize, Vec<u8>)> {
        let count = self.db_count();
        for _ in 0..count {
            pool.next_db = (pool.next_db + 1) % count;
            let index = pool.next_db;
            let (db, random) = self.db_with_random(index);
            let key = if volatile_only {
                db.volatile_keys().random_key(random)
            } else {
                db.entries().random_key(random)
            };
            if let Some(key) = key {
                return Some((index, key.to_vec()));
            }
        }
        None
    }

    fn pooled_candidate(
        &mut self,
        policy: EvictionPolicy,
        samples: usize,
        pool: &mut EvictionPool,
        now_ms: i64,
    ) -> Option<(usize, Vec<u8>)> {
        loop {
            let mut total = 0;
            for index in 0..self.db_count() {
                total += self.sample_into(index, policy, samples, pool, now_ms);
            }
            if total == 0 {
                return None;
            }
            // Best first; a candidate deleted since it was sampled is a ghost, skipped.
            while let Some(best) = pool.candidates.pop() {
                let db = self.db_ref(best.db);
                let present = if policy.volatile_only() {
                    db.volatile_keys().contains_key(&best.key)
                } else {
                    db.entries().contains_key(&best.key)
                };
                if present {
                    return Some((best.db, best.key.into_vec()));
                }
            }
        }
    }

    /// Samples database `index` into `pool`; returns how many keys it could have sampled.
    fn sample_into(
        &mut self,
        index: usize,
        policy: EvictionPolicy,
        samples: usize,
        pool: &mut EvictionPool,
        now_ms: i64,
    ) -> usize {
        let (db, random) = self.db_with_random(index);
        let entries = db.entries();
        let score = |entry: &crate::Entry| match policy {
            EvictionPolicy::VolatileTtl => {
                u64::MAX - entry.expire_at().map_or(u64::MAX, |at| at.max(0) as u64)
            }
            policy if policy.is_lfu() => 255 - u64::from(entry.frequency(now_ms)),
            _ => entry.idle_ms(now_ms),
        };
        let mut offer = |key: &[u8], score: u64| {
            pool.offer(Candidate {
                score,
                db: index,
                key: key.into(),
            });
        };
        if policy.volatile_only() {
            let volatile = db.volatile_keys();
            volatile.sample(samples, random, |key, ()| {
                if let Some(entry) = entries.get(key) {
                    offer(key, score(entry));
                }
            });
            volatile.len()
        } else {
            entries.sample(samples, random, |key, entry| offer(key, score(entry)));
            entries.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, StrValue, Value};

    fn entry(now: i64) -> Entry {
        Entry::new(Value::Str(StrValue::from_bytes(b"v")), now)
    }

    #[test]
    fn names_round_trip() {
        for (policy, name) in POLICIES {
            assert_eq!(EvictionPolicy::parse(name), Some(policy));
            assert_eq!(policy.name(), name);
        }
        assert_eq!(
            EvictionPolicy::parse("ALLKEYS-LRU"),
            Some(EvictionPolicy::AllKeysLru)
        );
        assert_eq!(EvictionPolicy::parse("lru"), None);
    }

    #[test]
    fn lru_prefers_the_idlest_keys() {
        let now = 1_700_000_000_000;
        let mut keyspace = Keyspace::new(2);
        for i in 0..200u32 {
            let mut e = entry(now);
            e.set_idle(u64::from(i), now);
            keyspace.db((i % 2) as usize).insert(&i.to_be_bytes(), e);
        }
        let mut pool = EvictionPool::new();
        let mut idle_sum = 0;
        for _ in 0..20 {
            let (db, key) = keyspace
                .eviction_candidate(EvictionPolicy::AllKeysLru, 5, &mut pool, now)
                .expect("a candidate");
            let removed = keyspace.db(db).remove(&key).expect("present");
            idle_sum += removed.idle_ms(now) / 1000;
        }
        // Random picks would average 100 s idle; sampling 5 per db into the pool does far better.
        assert!(idle_sum / 20 > 140, "mean idle {}", idle_sum / 20);
    }

    #[test]
    fn volatile_policies_never_pick_persistent_keys() {
        let now = 1_700_000_000_000;
        let mut keyspace = Keyspace::new(1);
        for i in 0..100u32 {
            let mut e = entry(now);
            if i % 2 == 1 {
                e.set_expire_at(Some(now + i64::from(i) * 1000));
            }
            keyspace.db(0).insert(&i.to_be_bytes(), e);
        }
        for policy in [
            EvictionPolicy::VolatileLru,
            EvictionPolicy::VolatileLfu,
            EvictionPolicy::VolatileRandom,
            EvictionPolicy::VolatileTtl,
        ] {
            let mut pool = EvictionPool::new();
            let mut copy = Keyspace::new(1);
            for (key, e) in keyspace.db_ref(0).iter() {
                copy.db(0).insert(key, e.clone());
            }
            let mut evicted = 0;
            while let Some((db, key)) = copy.eviction_candidate(policy, 5, &mut pool, now) {
                let removed = copy.db(db).remove(&key).expect("present");
                assert!(removed.expire_at().is_some(), "{policy:?}");
                evicted += 1;
            }
            assert_eq!(evicted, 50, "{policy:?}");
            assert_eq!(copy.db(0).len(), 50);
        }
    }

    #[test]
    fn ttl_prefers_the_soonest_expiry() {
        let now = 1_700_000_000_000;
        let mut keyspace = Keyspace::new(1);
        for i in 0..8u32 {
            let mut e = entry(now);
            e.set_expire_at(Some(now + i64::from(i + 1) * 1000));
            keyspace.db(0).insert(&i.to_be_bytes(), e);
        }
        let mut pool = EvictionPool::new();
        let (_, key) = keyspace
            .eviction_candidate(EvictionPolicy::VolatileTtl, 10, &mut pool, now)
            .expect("a candidate");
        assert_eq!(key, 0u32.to_be_bytes());
    }

    #[test]
    fn noeviction_picks_nothing() {
        let now = 1_700_000_000_000;
        let mut keyspace = Keyspace::new(1);
        keyspace.db(0).insert(b"k", entry(now));
        let mut pool = EvictionPool::new();
        assert!(
            keyspace
                .eviction_candidate(EvictionPolicy::NoEviction, 5, &mut pool, now)
                .is_none()
        );
    }
}
