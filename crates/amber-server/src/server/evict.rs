//! `maxmemory`: deciding when memory is over the limit (Redis's rule of what counts) and
//! evicting keys under the configured policy until it is not, within a time budget.
//!
//! Eviction runs before each command (so a command that would add data is refused with
//! `-OOM` only once eviction cannot make room), after `CONFIG SET maxmemory`, and from a task
//! that carries on when one pass ran out of time.

use std::rc::Rc;
use std::time::{Duration, Instant};

use amber_keyspace::{EvictionPolicy, EvictionPool};
use tokio::sync::Notify;

use super::Server;
use crate::alloc;

/// The error a command refused for lack of memory gets.
pub(crate) const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Keys evicted between two looks at the clock (as Redis).
const KEYS_PER_CLOCK_CHECK: usize = 16;

/// What one eviction pass achieved (Redis's `EVICT_OK`, `EVICT_RUNNING`, `EVICT_FAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evicted {
    /// Memory is within the limit (or eviction does not apply now).
    Enough,
    /// The pass ran out of time; the eviction task carries on.
    Continuing,
    /// Nothing more can be evicted and memory is still over the limit.
    Failed,
}

/// Eviction's state between passes.
pub(crate) struct Eviction {
    /// The best candidates sampled so far.
    pool: EvictionPool,
    /// Set while the eviction task should keep going.
    pub(crate) continuing: bool,
    /// Wakes the eviction task.
    pub(crate) wake: Rc<Notify>,
    /// Whether memory was over the limit when the running command started (scripts check it
    /// for the commands they call).
    pub(crate) oom_at_command_start: bool,
    /// Since when memory has been over the limit, while it is.
    over_since: Option<Instant>,
    /// Time spent over the limit in earlier spells.
    over_total: Duration,
}

impl Eviction {
    /// Milliseconds memory has been over `maxmemory`: in the current spell, or in total
    /// (`current_eviction_exceeded_time`, `total_eviction_exceeded_time`).
    pub(crate) fn exceeded_ms(&self, current_only: bool) -> u128 {
        let current = self
            .over_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        if current_only {
            current.as_millis()
        } else {
            (self.over_total + current).as_millis()
        }
    }

    fn note_over_limit(&mut self, over: bool) {
        match (over, self.over_since) {
            (true, None) => self.over_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.over_total += since.elapsed();
                self.over_since = None;
            }
            _ => {}
        }
    }
}

impl Default for Eviction {
    fn default() -> Self {
        Eviction {
            pool: EvictionPool::new(),
            continuing: false,
            wake: Rc::new(Notify::new()),
            oom_at_command_start: false,
            over_since: None,
            over_total: Duration::ZERO,
        }
    }
}

impl Server {
    /// Heap bytes that do not count against `maxmemory`: replicas' output buffers beyond the
    /// backlog and the AOF buffer (Redis's `freeMemoryGetNotCountedMemory`), so that the
    /// `DEL`s eviction sends them cannot feed more eviction; and a forkless snapshot's
    /// captured entries, which stand for a fork's copy-on-write.
    pub(crate) fn memory_not_counted_for_evict(&self) -> usize {
        let snapshot = self
            .jobs
            .running
            .as_ref()
            .and_then(|job| job.forkless())
            .map_or(0, |job| job.held_bytes());
        self.replication.buffered_bytes()
            + self.aof.buffered_bytes()
            + self.memory_being_freed()
            + snapshot
    }

    /// Buffers of connections already closed (by client eviction, `CLIENT KILL`) whose tasks
    /// have not yet run to free them: Redis frees a client at once, so they must not make
    /// eviction delete keys in the meantime.
    fn memory_being_freed(&self) -> usize {
        self.clients
            .values()
            .map(|info| {
                let info = info.borrow();
                if info.killed { info.buffer_memory() } else { 0 }
            })
            .sum()
    }

    /// Bytes held in the buffers of every connection but replicas (`mem_clients_normal`).
    pub(crate) fn client_buffer_memory(&self) -> usize {
        self.clients
            .values()
            .map(|info| {
                let info = info.borrow();
                if info.flags == 'S' {
                    0
                } else {
                    info.buffer_memory()
                }
            })
            .sum()
    }

    /// Closes the connections holding the most memory in buffers until those that may be
    /// evicted hold less than `maxmemory-clients` (Redis 7.0's client eviction).
    pub(crate) fn evict_clients(&mut self) {
        let limit = self.settings.maxmemory_clients;
        if limit == 0 {
            return;
        }
        let mut candidates: Vec<(usize, u64)> = self
            .clients
            .values()
            .filter_map(|info| {
                let info = info.borrow();
                info.evictable().then(|| (info.buffer_memory(), info.id))
            })
            .collect();
        let mut total: usize = candidates.iter().map(|(memory, _)| memory).sum();
        if total < limit {
            return;
        }
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        for (memory, id) in candidates {
            if total < limit {
                break;
            }
            let Some(info) = self.clients.get(&id) else {
                continue;
            };
            let mut info = info.borrow_mut();
            crate::verbose!(
                "Evicting client: {}",
                crate::commands::describe_client(&info)
            );
            info.killed = true;
            info.kill.notify_one();
            total -= memory;
            self.stats.evicted_clients += 1;
        }
    }

    /// How many bytes over `maxmemory` the server is, if it is.
    pub(crate) fn memory_over_limit(&self) -> Option<usize> {
        let limit = self.settings.maxmemory;
        if limit == 0 {
            return None;
        }
        let used = alloc::used_memory().saturating_sub(self.memory_not_counted_for_evict());
        (used > limit).then(|| used - limit)
    }

    /// Whether evicting is allowed now: not while a script holds the server, a file loads,
    /// clients are paused (the dataset must stay as it is) or on a replica ignoring
    /// `maxmemory` (its master evicts for it).
    fn may_evict(&self) -> bool {
        self.scripting.running.is_none()
            && self.loading.is_none()
            && !self.async_loading
            && !(self.replication.is_replica() && self.settings.replica_ignore_maxmemory)
            && !self.pauses.holds(true)
    }

    /// Evicts keys until memory is within `maxmemory`, for at most the time
    /// `maxmemory-eviction-tenacity` allows (Redis's `performEvictions`).
    pub(crate) fn perform_evictions(&mut self, origin: &mut crate::notify::Origin<'_>) -> Evicted {
        if !self.may_evict() {
            return Evicted::Enough;
        }
        // Messages queued for clients count until written: once over, write them first (as
        // Redis does before reading a command) and measure again, or eviction's own
        // invalidations feed it. Under the limit (the common case) memory is measured once.
        let over = self.memory_over_limit().and_then(|_| {
            crate::pubsub::flush_pending(self);
            self.memory_over_limit()
        });
        let Some(to_free) = over else {
            self.eviction.continuing = false;
            self.eviction.note_over_limit(false);
            return Evicted::Enough;
        };
        self.eviction.note_over_limit(true);
        let policy = self.settings.eviction_policy;
        if policy == EvictionPolicy::NoEviction {
            return Evicted::Failed;
        }
        let started = Instant::now();
        let budget = time_budget(self.settings.eviction_tenacity);
        let samples = self.settings.maxmemory_samples;
        let mut freed = 0usize;
        let mut evicted = 0usize;
        while freed < to_free {
            let now = self.now_ms;
            let Some((db, key)) =
                self.keyspace
                    .eviction_candidate(policy, samples, &mut self.eviction.pool, now)
            else {
                break;
            };
            freed += self.evict_key(db, &key, origin);
            evicted += 1;
            if evicted.is_multiple_of(KEYS_PER_CLOCK_CHECK) && started.elapsed() > budget {
                if self.memory_over_limit().is_some() {
                    self.continue_evicting();
                    return Evicted::Continuing;
                }
                break;
            }
        }
        self.latency_sample("eviction-cycle", started.elapsed());
        if freed >= to_free || self.memory_over_limit().is_none() {
            self.eviction.note_over_limit(false);
            Evicted::Enough
        } else {
            Evicted::Failed
        }
    }

    /// Removes one key for eviction, with what a deletion brings: `DEL` to the AOF and
    /// replicas, the `evicted` event, WATCHes and tracking invalidated. Returns the memory
    /// the deletion alone freed: as in Redis, what the `DEL` and the invalidations add to
    /// buffers is freed once they are written, and does not count against the eviction.
    fn evict_key(
        &mut self,
        db: usize,
        key: &[u8],
        origin: &mut crate::notify::Origin<'_>,
    ) -> usize {
        let before = alloc::used_memory();
        let started = Instant::now();
        if self.keyspace.db(db).remove(key).is_none() {
            return 0;
        }
        self.latency_sample("eviction-del", started.elapsed());
        let freed = before.saturating_sub(alloc::used_memory());
        self.stats.evicted_keys += 1;
        self.changes += 1;
        self.dirty += 1;
        self.touch_key(db, key);
        if self.propagating() {
            self.propagate(db, &[b"DEL".as_slice(), key]);
        }
        self.notify(origin, crate::notify::EVICTED, "evicted", key, db);
        freed
    }

    /// Asks the eviction task to carry on after this pass.
    pub(crate) fn continue_evicting(&mut self) {
        self.eviction.continuing = true;
        self.eviction.wake.notify_one();
    }
}

/// The time one eviction pass may take (Redis's `evictionTimeLimitUs`): 50 µs per tenacity
/// step up to 10, growing 15% per step after, unlimited at 100.
fn time_budget(tenacity: u32) -> Duration {
    if tenacity <= 10 {
        return Duration::from_micros(50 * u64::from(tenacity));
    }
    if tenacity < 100 {
        let micros = 500.0 * 1.15f64.powi(tenacity as i32 - 10);
        return Duration::from_micros(micros as u64);
    }
    Duration::MAX
}

/// Keeps evicting while a pass runs out of time (Redis's `evictionTimeProc`), yielding to the
/// event loop between passes.
pub(crate) async fn eviction_task(shared: Rc<std::cell::RefCell<Server>>) {
    let wake = shared.borrow().eviction.wake.clone();
    loop {
        wake.notified().await;
        // As Redis's time event: the first pass runs once the replies in flight are sent.
        tokio::time::sleep(Duration::from_millis(1)).await;
        loop {
            tokio::task::yield_now().await;
            let mut server = shared.borrow_mut();
            if !server.eviction.continuing {
                break;
            }
            server.eviction.continuing = false;
            server.now_ms = super::unix_ms();
            let mut unused = amber_protocol::ReplyWriter::new(amber_protocol::Protocol::Resp2);
            let mut origin = crate::notify::Origin {
                client: 0,
                out: &mut unused,
            };
            if server.perform_evictions(&mut origin) != Evicted::Continuing {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_tenacity() {
        assert_eq!(time_budget(0), Duration::ZERO);
        assert_eq!(time_budget(10), Duration::from_micros(500));
        assert!(time_budget(11) > Duration::from_micros(570));
        assert!(time_budget(99) > Duration::from_millis(100));
        assert_eq!(time_budget(100), Duration::MAX);
    }
}
