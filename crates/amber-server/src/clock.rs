//! A cheap stopwatch for timing every command (INFO commandstats, latency histograms, the
//! slow log).
//!
//! Two `Instant::now()` calls per command cost about 60 ns here, several percent of a
//! pipelined GET. Where the kernel itself keeps time with the processor's time-stamp counter
//! (an invariant TSC, the `tsc` clocksource), the counter is read directly instead, as Redis
//! does when built with its processor clock. Its rate is learnt against the system's
//! monotonic clock from the cron, over an ever longer span; until the first measurement, and
//! on any other machine, the stopwatch falls back to `Instant`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds per counter tick, as `f64` bits; 0 while unknown or unusable.
static NANOS_PER_TICK: AtomicU64 = AtomicU64::new(0);

/// Shortest span the rate is measured over before it is used.
const MIN_CALIBRATION: Duration = Duration::from_millis(50);

/// A running measurement of elapsed time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stopwatch {
    /// Started at this counter value.
    Ticks(u64),
    /// Started at this instant.
    Os(Instant),
}

impl Stopwatch {
    /// Starts measuring.
    pub(crate) fn start() -> Stopwatch {
        if NANOS_PER_TICK.load(Ordering::Relaxed) != 0 {
            Stopwatch::Ticks(ticks())
        } else {
            Stopwatch::Os(Instant::now())
        }
    }

    /// Time since [`Stopwatch::start`].
    pub(crate) fn elapsed(&self) -> Duration {
        match *self {
            Stopwatch::Ticks(start) => {
                let rate = f64::from_bits(NANOS_PER_TICK.load(Ordering::Relaxed));
                let ticks = ticks().saturating_sub(start);
                Duration::from_nanos((ticks as f64 * rate) as u64)
            }
            Stopwatch::Os(start) => start.elapsed(),
        }
    }
}

/// The counter and the instant the rate is measured from, when the counter can be used.
fn anchor() -> Option<(u64, Instant)> {
    static ANCHOR: OnceLock<Option<(u64, Instant)>> = OnceLock::new();
    *ANCHOR.get_or_init(|| counter_is_reliable().then(|| (ticks(), Instant::now())))
}

/// Measures (again) the counter's rate against the monotonic clock; called from the cron. The
/// first call only sets the starting point.
pub(crate) fn calibrate() {
    let Some((start_ticks, start)) = anchor() else {
        return;
    };
    let span = start.elapsed();
    let ticks = ticks().saturating_sub(start_ticks);
    if span < MIN_CALIBRATION || ticks == 0 {
        return;
    }
    let rate = span.as_nanos() as f64 / ticks as f64;
    NANOS_PER_TICK.store(rate.to_bits(), Ordering::Relaxed);
}

/// Whether the kernel keeps its own time with an invariant time-stamp counter: then the
/// counter runs at a constant rate, in step on every core.
fn counter_is_reliable() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |flag: &str| {
        flags
            .lines()
            .find(|line| line.starts_with("flags"))
            .is_some_and(|line| line.split_whitespace().any(|word| word == flag))
    };
    source.trim() == "tsc" && has("constant_tsc") && has("nonstop_tsc")
}

#[cfg(target_arch = "x86_64")]
fn ticks() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 processor and reads a register; it has no
    // memory effects and no precondition.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn ticks() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stopwatch_agrees_with_the_system_clock() {
        calibrate();
        std::thread::sleep(MIN_CALIBRATION + Duration::from_millis(10));
        calibrate();
        let watch = Stopwatch::start();
        let reference = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let measured = watch.elapsed();
        let expected = reference.elapsed();
        let error = measured.as_secs_f64() - expected.as_secs_f64();
        // Within 5% (the calibration span is short here; the server's grows every cron tick).
        assert!(
            error.abs() < expected.as_secs_f64() * 0.05,
            "measured {measured:?}, expected {expected:?} ({watch:?})"
        );
    }
}
