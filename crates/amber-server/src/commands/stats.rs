//! Per-command and per-error counters, as `INFO commandstats`, `INFO errorstats` and
//! `INFO latencystats` report them: calls, time, rejected and failed calls; error replies by
//! their code; latency percentiles from an HDR histogram per command.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Distinct error codes tracked before tracking stops (as Redis, to bound memory).
const MAX_ERROR_CODES: usize = 128;

/// One command's counters.
struct CommandCounters {
    calls: u64,
    /// Time spent, in nanoseconds (reported in microseconds: summing each call's truncated
    /// microseconds would report most fast commands as taking none).
    nanos: u64,
    rejected: u64,
    failed: u64,
    latency: Option<Histogram<u64>>,
}

impl CommandCounters {
    fn new() -> CommandCounters {
        CommandCounters {
            calls: 0,
            nanos: 0,
            rejected: 0,
            failed: 0,
            latency: None,
        }
    }
}

/// A command name from the command table. Every name there is one static string, so its
/// address identifies it: hashing it costs one multiplication instead of hashing its text on
/// every command.
#[derive(Clone, Copy)]
struct Name(&'static str);

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.as_ptr() as usize);
    }
}

/// Hashes a [`Name`]'s address with a multiplication (Fibonacci hashing).
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, value: usize) {
        self.0 = (value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Names<V> = HashMap<Name, V, std::hash::BuildHasherDefault<AddressHasher>>;

/// One command's `LATENCY HISTOGRAM`: its name, calls, and (microseconds, cumulative
/// count) steps.
pub(crate) type LatencyHistogram = (&'static str, u64, Vec<(u64, u64)>);

/// Counters for every command and error code seen since start or `CONFIG RESETSTAT`.
#[derive(Default)]
pub(crate) struct CommandStats {
    commands: Names<CommandCounters>,
    errors: BTreeMap<String, u64>,
    /// Set once more than [`MAX_ERROR_CODES`] codes were seen.
    errors_overflowed: bool,
}

impl CommandStats {
    /// Counts a call of `command` (its full name, `client|id` for a subcommand) that took
    /// `elapsed`, and whether it replied an error; latency is recorded when `track_latency`.
    pub(crate) fn record_call(
        &mut self,
        command: &'static str,
        elapsed: Duration,
        failed: bool,
        track_latency: bool,
    ) {
        let counters = self
            .commands
            .entry(Name(command))
            .or_insert_with(CommandCounters::new);
        counters.calls += 1;
        counters.nanos += elapsed.as_nanos() as u64;
        if failed {
            counters.failed += 1;
        }
        if track_latency {
            let histogram = counters.latency.get_or_insert_with(new_histogram);
            let nanos = (elapsed.as_nanos() as u64).clamp(1, histogram.high());
            let _ = histogram.record(nanos);
        }
    }

    /// Counts a call refused before it ran (arity, authentication, `-MISCONF`, ...).
    pub(crate) fn record_rejected(&mut self, command: &'static str) {
        self.commands
            .entry(Name(command))
            .or_insert_with(CommandCounters::new)
            .rejected += 1;
    }

    /// Counts an error reply under its code (the first word: `ERR`, `WRONGTYPE`, ...).
    pub(crate) fn record_error(&mut self, message: &str) {
        if self.errors_overflowed {
            return;
        }
        let code = message.split(' ').next().unwrap_or("ERR");
        if let Some(count) = self.errors.get_mut(code) {
            *count += 1;
        } else if self.errors.len() >= MAX_ERROR_CODES {
            self.errors_overflowed = true;
            self.errors.clear();
            crate::warning!(
                "Errorstats stopped adding new errors because the number of different errors reached {MAX_ERROR_CODES}; existing errors stats are still available"
            );
        } else {
            self.errors.insert(code.to_string(), 1);
        }
    }

    /// The `# Commandstats` lines.
    pub(crate) fn commandstats(&self) -> String {
        let mut out = String::new();
        for (name, c) in self.sorted() {
            let per_call = if c.calls > 0 {
                c.nanos as f64 / 1000.0 / c.calls as f64
            } else {
                0.0
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                c.calls,
                c.nanos / 1000,
                c.rejected,
                c.failed
            );
        }
        out
    }

    /// The `# Errorstats` lines.
    pub(crate) fn errorstats(&self) -> String {
        self.errors
            .iter()
            .map(|(code, count)| format!("errorstat_{code}:count={count}\r\n"))
            .collect()
    }

    /// The `# Latencystats` lines for `percentiles` (0 to 100).
    pub(crate) fn latencystats(&self, percentiles: &[f64]) -> String {
        let mut out = String::new();
        for (name, c) in self.sorted() {
            let Some(histogram) = c.latency.as_ref().filter(|h| !h.is_empty()) else {
                continue;
            };
            let values: Vec<String> = percentiles
                .iter()
                .map(|&p| {
                    let micros = histogram.value_at_percentile(p) as f64 / 1000.0;
                    format!("p{}={micros:.3}", format_percentile(p))
                })
                .collect();
            let _ = write!(
                out,
                "latency_percentiles_usec_{name}:{}\r\n",
                values.join(",")
            );
        }
        out
    }

    /// `LATENCY HISTOGRAM`: for each command (`only` those named, when given) with latency
    /// samples, its calls and cumulative counts at 1024 ns × 2^k, in microseconds (Redis's
    /// `hdr_iter_log` steps; a step without new samples is left out).
    pub(crate) fn latency_histograms(&self, only: Option<&[&str]>) -> Vec<LatencyHistogram> {
        self.sorted()
            .into_iter()
            .filter(|(name, _)| only.is_none_or(|names| names.contains(name)))
            .filter_map(|(name, counters)| {
                let histogram = counters.latency.as_ref().filter(|h| !h.is_empty())?;
                let mut buckets = Vec::new();
                let mut cumulative = 0;
                for step in histogram.iter_log(1024, 2.0) {
                    let before = cumulative;
                    cumulative += step.count_since_last_iteration();
                    if cumulative > before {
                        let top = histogram.highest_equivalent(step.value_iterated_to());
                        buckets.push((top / 1000, cumulative));
                    }
                }
                Some((name, histogram.len(), buckets))
            })
            .collect()
    }

    fn sorted(&self) -> Vec<(&'static str, &CommandCounters)> {
        let mut commands: Vec<_> = self
            .commands
            .iter()
            .map(|(name, counters)| (name.0, counters))
            .collect();
        commands.sort_by_key(|(name, _)| *name);
        commands
    }
}

/// A histogram of 1 ns to 1 s at 2 significant digits, as Redis keeps per command.
fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 1_000_000_000, 2).expect("constant, valid histogram bounds")
}

/// A percentile as Redis names it (`p50`, `p99.9`, `p0`).
pub(crate) fn format_percentile(p: f64) -> String {
    let text = format!("{p}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_string)
}

/// Parses `latency-tracking-info-percentiles`: numbers from 0 to 100, separated by spaces.
pub(crate) fn parse_percentiles(value: &str) -> Option<Vec<f64>> {
    value
        .split_whitespace()
        .map(|word| {
            word.parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_microsecond_calls_add_up_as_redis_reports_them() {
        let mut stats = CommandStats::default();
        for _ in 0..1000 {
            stats.record_call("get", Duration::from_nanos(450), false, false);
        }
        let lines = stats.commandstats();
        assert!(
            lines.starts_with("cmdstat_get:calls=1000,usec=450,usec_per_call=0.45,"),
            "{lines}"
        );
    }

    #[test]
    fn counts_calls_failures_and_error_codes() {
        let mut stats = CommandStats::default();
        stats.record_call("set", Duration::from_micros(3), false, true);
        stats.record_call("set", Duration::from_micros(5), true, true);
        stats.record_rejected("set");
        stats.record_error("WRONGTYPE Operation against a key");
        stats.record_error("ERR syntax error");
        stats.record_error("ERR other");
        let lines = stats.commandstats();
        assert!(
            lines.starts_with(
                "cmdstat_set:calls=2,usec=8,usec_per_call=4.00,rejected_calls=1,failed_calls=1"
            ),
            "{lines}"
        );
        assert_eq!(
            stats.errorstats(),
            "errorstat_ERR:count=2\r\nerrorstat_WRONGTYPE:count=1\r\n"
        );
        let latency = stats.latencystats(&[50.0, 99.9]);
        assert!(
            latency.starts_with("latency_percentiles_usec_set:p50="),
            "{latency}"
        );
        assert!(latency.contains(",p99.9="), "{latency}");
    }

    #[test]
    fn percentiles_parse_and_print_as_redis() {
        assert_eq!(
            parse_percentiles("0.0 50 99.9"),
            Some(vec![0.0, 50.0, 99.9])
        );
        assert_eq!(parse_percentiles("10 101"), None);
        assert_eq!(parse_percentiles("10 a"), None);
        assert_eq!(format_percentile(50.0), "50");
        assert_eq!(format_percentile(99.9), "99.9");
    }

    #[test]
    fn error_codes_are_bounded() {
        let mut stats = CommandStats::default();
        for i in 0..(MAX_ERROR_CODES + 5) {
            stats.record_error(&format!("CODE{i} x"));
        }
        assert!(stats.errorstats().is_empty());
    }
}
