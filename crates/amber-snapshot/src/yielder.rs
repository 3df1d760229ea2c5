//! Giving the core away now and then during long background work that shares the cores with
//! the event loop and its clients.
//!
//! A snapshot's writer (a fork child or the forkless writer thread) keeps a core busy for the
//! whole snapshot. Linux's fair scheduler (EEVDF) runs a task woken on that core at once only
//! if the task is owed CPU time at its wake-up; a task that ran a little ahead of its share
//! (a client thread, the event loop, each waking thousands of times a second to run a few
//! microseconds) becomes eligible a moment later, but the scheduler looks again only at its
//! next tick: 4 ms at `HZ=250`. Measured in the snapshot bench: clients woken behind the
//! forkless writer waited 4-5 ms, the writer's run ending on a tick each time. A writer that
//! yields every [`YIELD_EVERY`] lets the scheduler look again that often; with nothing else
//! to run, the yield returns at once (about 0.2 µs here, under 1% of the interval).
//!
//! The interval bounds how long such a task waits: 250 µs still put a quarter of a
//! millisecond into a client's p99 during a snapshot, 25 µs keeps it near the idle p99
//! (`docs/BENCHMARKS.md`, session 43).

use std::time::{Duration, Instant};

/// How long a writer runs between two yields.
pub const YIELD_EVERY: Duration = Duration::from_micros(25);

/// Items between two looks at the clock (a look costs about 20 ns).
const ITEMS_PER_LOOK: u32 = 32;

/// Yields the calling thread's core every [`YIELD_EVERY`] of work, counted in items (keys).
#[derive(Debug)]
pub struct Yielder {
    last_yield: Instant,
    items: u32,
    yields: u64,
}

impl Default for Yielder {
    fn default() -> Self {
        Yielder {
            last_yield: Instant::now(),
            items: 0,
            yields: 0,
        }
    }
}

impl Yielder {
    /// Notes one item of work done; yields the core if [`YIELD_EVERY`] has passed since the
    /// last yield. Safe in a fork child: it reads the clock and makes one system call.
    pub fn item_done(&mut self) {
        self.items += 1;
        if self.items < ITEMS_PER_LOOK {
            return;
        }
        self.items = 0;
        self.yield_if_due();
    }

    /// Yields the core now if [`YIELD_EVERY`] has passed since the last yield (for work done
    /// in steps longer than an item).
    pub fn yield_if_due(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_yield) >= YIELD_EVERY {
            std::thread::yield_now();
            self.yields += 1;
            self.last_yield = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_yields_once_its_interval_has_passed() {
        let mut yielder = Yielder::default();
        std::thread::sleep(YIELD_EVERY * 2);
        // The clock is read only every ITEMS_PER_LOOK items.
        for _ in 0..ITEMS_PER_LOOK - 1 {
            yielder.item_done();
        }
        assert_eq!(yielder.yields, 0);
        yielder.item_done();
        assert_eq!(yielder.yields, 1);
        // The interval starts again at the yield.
        let since = yielder.last_yield;
        std::thread::sleep(YIELD_EVERY * 2);
        for _ in 0..ITEMS_PER_LOOK {
            yielder.item_done();
        }
        assert_eq!(yielder.yields, 2);
        assert!(yielder.last_yield.duration_since(since) >= YIELD_EVERY * 2);
    }
}
