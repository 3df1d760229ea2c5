//! Each key's access record, Redis's 24-bit `lru` field: either the last access time on a
//! 24-bit seconds clock (LRU), or a 16-bit minutes clock and an 8-bit logarithmic access counter
//! (LFU). Which one the field holds follows the eviction policy, process-wide, as in Redis.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// What keys' access records count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessClock {
    /// The time of the last access (for `OBJECT IDLETIME` and the LRU policies).
    Lru,
    /// An access frequency (for `OBJECT FREQ` and the LFU policies), with Redis's
    /// `lfu-log-factor` and `lfu-decay-time` (minutes per halving step).
    Lfu {
        /// `lfu-log-factor`: how slowly the counter climbs.
        log_factor: u32,
        /// `lfu-decay-time`: minutes without access that take one off the counter.
        decay_minutes: u32,
    },
}

/// The highest value of the 24-bit LRU clock.
const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

/// The counter a new key starts with under LFU (so it is not evicted before its second access).
pub const LFU_INIT_VAL: u8 = 5;

static LFU: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_MINUTES: AtomicU32 = AtomicU32::new(1);
static FROZEN: AtomicBool = AtomicBool::new(false);

/// Chooses what every key's access record counts from now on. Records written under the other
/// clock are read as if they were of this one, as in Redis (they adjust as keys are accessed).
pub fn set_access_clock(clock: AccessClock) {
    match clock {
        AccessClock::Lru => LFU.store(false, Ordering::Relaxed),
        AccessClock::Lfu {
            log_factor,
            decay_minutes,
        } => {
            LFU_LOG_FACTOR.store(log_factor, Ordering::Relaxed);
            LFU_DECAY_MINUTES.store(decay_minutes, Ordering::Relaxed);
            LFU.store(true, Ordering::Relaxed);
        }
    }
}

/// The clock chosen by [`set_access_clock`].
pub fn access_clock() -> AccessClock {
    if LFU.load(Ordering::Relaxed) {
        AccessClock::Lfu {
            log_factor: LFU_LOG_FACTOR.load(Ordering::Relaxed),
            decay_minutes: LFU_DECAY_MINUTES.load(Ordering::Relaxed),
        }
    } else {
        AccessClock::Lru
    }
}

/// Stops or resumes updating access records on lookups. As Redis, a server stops while a forked
/// child holds a copy-on-write image: writing every key's record on reads would make the kernel
/// copy the pages the child still shares.
pub fn freeze_access(frozen: bool) {
    FROZEN.store(frozen, Ordering::Relaxed);
}

/// A key's access record (Redis's `lru` field): 24 bits used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access(u32);

impl Access {
    /// The record of a key created at `now_ms`.
    pub(crate) fn new(now_ms: i64) -> Access {
        match access_clock() {
            AccessClock::Lru => Access(lru_clock(now_ms)),
            AccessClock::Lfu { .. } => Access::lfu(minutes_clock(now_ms), LFU_INIT_VAL),
        }
    }

    fn lfu(minutes: u32, counter: u8) -> Access {
        Access((minutes << 8) | u32::from(counter))
    }

    /// Records an access at `now_ms` (nothing while access records are frozen).
    pub(crate) fn touch(&mut self, now_ms: i64) {
        if FROZEN.load(Ordering::Relaxed) {
            return;
        }
        *self = match access_clock() {
            AccessClock::Lru => Access(lru_clock(now_ms)),
            AccessClock::Lfu {
                log_factor,
                decay_minutes,
            } => {
                let counter = self.decayed_counter(now_ms, decay_minutes);
                Access::lfu(minutes_clock(now_ms), log_increment(counter, log_factor))
            }
        };
    }

    /// Milliseconds since the last access, reading the record as an LRU time (Redis's
    /// `estimateObjectIdleTime`, with its clock wrapping every 194 days).
    pub(crate) fn idle_ms(self, now_ms: i64) -> u64 {
        let clock = lru_clock(now_ms);
        let stamp = self.0 & LRU_CLOCK_MAX;
        let seconds = if clock >= stamp {
            clock - stamp
        } else {
            clock + (LRU_CLOCK_MAX - stamp)
        };
        u64::from(seconds) * 1000
    }

    /// The access counter, reading the record as LFU data and taking off one for every
    /// `decay_minutes` since the last access (Redis's `LFUDecrAndReturn`).
    pub(crate) fn decayed_counter(self, now_ms: i64, decay_minutes: u32) -> u8 {
        let counter = (self.0 & 0xff) as u8;
        let last = (self.0 >> 8) & 0xffff;
        let now = minutes_clock(now_ms);
        let elapsed = if now >= last {
            now - last
        } else {
            65535 - last + now
        };
        let periods = elapsed.checked_div(decay_minutes).unwrap_or(0);
        counter.saturating_sub(periods.min(255) as u8)
    }

    /// A record saying the key was last accessed `idle_seconds` before `now_ms` (LRU).
    pub(crate) fn idle_for(idle_seconds: u64, now_ms: i64) -> Access {
        let clock = i64::from(lru_clock(now_ms));
        let idle = (idle_seconds % u64::from(LRU_CLOCK_MAX + 1)) as i64;
        Access((clock - idle).rem_euclid(i64::from(LRU_CLOCK_MAX) + 1) as u32)
    }

    /// A record giving the key the access counter `counter`, as of `now_ms` (LFU).
    pub(crate) fn with_frequency(counter: u8, now_ms: i64) -> Access {
        Access::lfu(minutes_clock(now_ms), counter)
    }

    /// The raw 24-bit record (as `DEBUG OBJECT` prints `lru:`).
    pub(crate) fn bits(self) -> u32 {
        self.0 & LRU_CLOCK_MAX
    }
}

/// The 24-bit LRU clock: seconds, wrapping.
fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms.max(0) / 1000) as u64 & u64::from(LRU_CLOCK_MAX)) as u32
}

/// The 16-bit LFU clock: minutes, wrapping.
fn minutes_clock(now_ms: i64) -> u32 {
    ((now_ms.max(0) / 60_000) as u64 & 0xffff) as u32
}

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0x2545_f491_4f6c_dd1d) };
}

/// A uniform number in [0, 1) for the counter's coin flips (xorshift64*, not for secrets).
fn coin() -> f64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Increments the logarithmic counter with probability `1 / ((counter - 5) * factor + 1)`,
/// saturating at 255 (Redis's `LFULogIncr`).
fn log_increment(counter: u8, log_factor: u32) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let probability = 1.0 / (base * f64::from(log_factor) + 1.0);
    if coin() < probability {
        counter + 1
    } else {
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_wraps_with_the_clock() {
        let now = 1_700_000_000_000;
        assert_eq!(Access::idle_for(30, now).idle_ms(now), 30_000);
        let before_wrap = Access(LRU_CLOCK_MAX - 5);
        let after = i64::from(LRU_CLOCK_MAX + 1) * 1000 * 3 + 4000;
        assert_eq!(before_wrap.idle_ms(after), 9000);
    }

    #[test]
    fn counters_decay_one_step_per_period() {
        let now = 1_700_000_000_000;
        let record = Access::with_frequency(20, now);
        assert_eq!(record.decayed_counter(now, 1), 20);
        assert_eq!(record.decayed_counter(now + 7 * 60_000, 1), 13);
        assert_eq!(record.decayed_counter(now + 7 * 60_000, 0), 20);
        assert_eq!(record.decayed_counter(now + 700 * 60_000, 1), 0);
    }

    #[test]
    fn counters_climb_logarithmically() {
        let mut counter = LFU_INIT_VAL;
        for _ in 0..100_000 {
            counter = log_increment(counter, 10);
        }
        // Redis's table for factor 10: about 142 after 100k hits (and never 255).
        assert!((100..200).contains(&counter), "{counter}");
        let mut fast = 0;
        for _ in 0..10_000 {
            fast = log_increment(fast, 0);
        }
        assert_eq!(fast, 255);
    }
}
