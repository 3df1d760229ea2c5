//! What operators read to see where time goes: the slow log (`SLOWLOG`) and the latency
//! monitor (`LATENCY`), as Redis 7.0 keeps them.
//!
//! - The slow log keeps the last `slowlog-max-len` commands that ran for at least
//!   `slowlog-log-slower-than` microseconds, arguments trimmed (32 at most, 128 bytes each)
//!   and secrets redacted.
//! - The latency monitor keeps, per event class, one sample per second (the worst) for the
//!   last 160 seconds that had one, and the all-time maximum, for every event that took at
//!   least `latency-monitor-threshold` milliseconds: commands, forks (the main thread's cost of
//!   an RDB save or rewrite), AOF writes and, under `always`, fsyncs (the slowest of each cron
//!   tick), expire and eviction cycles.

use std::collections::{BTreeMap, VecDeque};

/// Arguments kept per slow log entry.
const MAX_ARGS: usize = 32;
/// Bytes kept per argument.
const MAX_ARG_BYTES: usize = 128;
/// Samples kept per latency event.
const SAMPLES: usize = 160;

/// One slow log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlowEntry {
    /// Sequence number, from 0.
    pub id: u64,
    /// Unix time the command ended.
    pub time: u64,
    /// How long it ran, in microseconds.
    pub micros: u64,
    /// Its arguments, trimmed.
    pub args: Vec<Vec<u8>>,
    /// The client's `ip:port`.
    pub peer: String,
    /// The client's name.
    pub name: Vec<u8>,
}

/// The slow log, newest first.
#[derive(Default)]
pub(crate) struct SlowLog {
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

impl SlowLog {
    /// Records a command that ran `micros` if it is slow enough; `threshold` < 0 disables.
    pub(crate) fn record(
        &mut self,
        threshold: i64,
        max_len: usize,
        micros: u64,
        args: &[bytes::Bytes],
        peer: &str,
        name: &[u8],
    ) {
        if threshold >= 0 && micros >= threshold as u64 {
            let entry = SlowEntry {
                id: self.next_id,
                time: unix_seconds(),
                micros,
                args: trimmed(args),
                peer: peer.to_string(),
                name: name.to_vec(),
            };
            self.next_id += 1;
            self.entries.push_front(entry);
        }
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries.
    pub(crate) fn newest(&self, count: usize) -> impl Iterator<Item = &SlowEntry> {
        self.entries.iter().take(count)
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Empties the log (ids keep counting).
    pub(crate) fn reset(&mut self) {
        self.entries.clear();
    }
}

/// A command's arguments as the slow log keeps them: at most 32 (the last saying how many
/// more there were), each at most 128 bytes (with how many more there were).
fn trimmed(args: &[bytes::Bytes]) -> Vec<Vec<u8>> {
    let kept = args.len().min(MAX_ARGS);
    (0..kept)
        .map(|j| {
            if kept != args.len() && j == kept - 1 {
                return format!("... ({} more arguments)", args.len() - kept + 1).into_bytes();
            }
            let arg = &args[j];
            if arg.len() > MAX_ARG_BYTES {
                let mut short = arg[..MAX_ARG_BYTES].to_vec();
                short.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - MAX_ARG_BYTES).as_bytes(),
                );
                short
            } else {
                arg.to_vec()
            }
        })
        .collect()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One latency sample: the worst latency of one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Unix time of the second.
    pub time: u64,
    /// Milliseconds.
    pub millis: u64,
}

/// The samples of one event class.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    /// Oldest first, at most [`SAMPLES`].
    pub samples: VecDeque<Sample>,
    /// The highest latency ever seen.
    pub max: u64,
}

/// The latency monitor: event name → its series, in the order events first occurred.
#[derive(Default)]
pub(crate) struct LatencyMonitor {
    events: BTreeMap<String, Series>,
    order: Vec<String>,
}

impl LatencyMonitor {
    /// Records `millis` for `event` if the monitor is on and it reaches `threshold`
    /// (Redis's `latencyAddSampleIfNeeded`).
    pub(crate) fn add_if_needed(&mut self, threshold: u64, event: &str, millis: u64) {
        if threshold != 0 && millis >= threshold {
            self.add(event, millis, unix_seconds());
        }
    }

    fn add(&mut self, event: &str, millis: u64, now: u64) {
        if !self.events.contains_key(event) {
            self.order.push(event.to_string());
        }
        let series = self.events.entry(event.to_string()).or_default();
        series.max = series.max.max(millis);
        if let Some(last) = series.samples.back_mut()
            && last.time == now
        {
            last.millis = last.millis.max(millis);
            return;
        }
        series.samples.push_back(Sample { time: now, millis });
        if series.samples.len() > SAMPLES {
            series.samples.pop_front();
        }
    }

    /// Every event with its series, in the order they first occurred.
    pub(crate) fn events(&self) -> impl Iterator<Item = (&str, &Series)> {
        self.order
            .iter()
            .filter_map(|name| self.events.get(name).map(|s| (name.as_str(), s)))
    }

    /// One event's series.
    pub(crate) fn series(&self, event: &[u8]) -> Option<(&str, &Series)> {
        let name = std::str::from_utf8(event).ok()?;
        self.events
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Forgets one event (or all, with `None`); how many were forgotten.
    pub(crate) fn reset(&mut self, event: Option<&[u8]>) -> usize {
        match event {
            None => {
                let count = self.events.len();
                self.events.clear();
                self.order.clear();
                count
            }
            Some(event) => {
                let Some(name) = std::str::from_utf8(event).ok() else {
                    return 0;
                };
                if self.events.remove(name).is_some() {
                    self.order.retain(|known| known != name);
                    1
                } else {
                    0
                }
            }
        }
    }
}

/// Columns of a `LATENCY GRAPH`.
const GRAPH_COLUMNS: usize = 80;
/// Rows of its curve.
const GRAPH_ROWS: usize = 4;

/// `LATENCY GRAPH`: a header, then the samples as a filled sparkline (`_o#` and `|`), each
/// column labelled, vertically, with how long ago it was (`12s`, `5m`, `2h`, `1d`), as
/// Redis draws it.
pub(crate) fn graph(event: &str, series: &Series) -> String {
    let now = unix_seconds();
    let values: Vec<u64> = series.samples.iter().map(|s| s.millis).collect();
    let labels: Vec<String> = series
        .samples
        .iter()
        .map(|s| {
            let ago = now.saturating_sub(s.time);
            match ago {
                0..60 => format!("{ago}s"),
                60..3600 => format!("{}m", ago / 60),
                3600..86400 => format!("{}h", ago / 3600),
                _ => format!("{}d", ago / 86400),
            }
        })
        .collect();
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {high} ms, low {low} ms (all time high {} ms)\n",
        series.max
    );
    out.push_str(&"-".repeat(GRAPH_COLUMNS));
    out.push('\n');
    for (chunk, start) in values
        .chunks(GRAPH_COLUMNS)
        .zip((0..).step_by(GRAPH_COLUMNS))
    {
        if start != 0 {
            out.push('\n');
        }
        render_rows(
            &mut out,
            chunk,
            &labels[start..start + chunk.len()],
            low,
            high,
        );
    }
    out
}

/// One band of up to 80 columns: the curve's rows, a blank row, then the labels' rows.
fn render_rows(out: &mut String, values: &[u64], labels: &[String], low: u64, high: u64) {
    const FILL: [char; 3] = ['_', 'o', '#'];
    let steps = (FILL.len() * GRAPH_ROWS) as f64;
    let range = match (high - low) as f64 {
        0.0 => 1.0,
        range => range,
    };
    let step_of = |value: u64| {
        let step = (((value - low) as f64 * steps) / range) as i64;
        step.clamp(0, steps as i64 - 1)
    };
    for row in 0..GRAPH_ROWS {
        let line: String = values
            .iter()
            .map(|&value| {
                let index = step_of(value) - ((GRAPH_ROWS - row - 1) * FILL.len()) as i64;
                match index {
                    0..=2 => FILL[index as usize],
                    3.. => '|',
                    _ => ' ',
                }
            })
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&" ".repeat(values.len()));
    out.push('\n');
    let tallest = labels.iter().map(String::len).max().unwrap_or(0);
    for row in 0..tallest {
        let line: String = labels
            .iter()
            .map(|label| label.as_bytes().get(row).map_or(' ', |&b| char::from(b)))
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
}

/// Per-event statistics over the kept samples: count, average, mean absolute deviation and
/// the seconds they span.
fn event_stats(series: &Series) -> (u64, u64, u64, u64) {
    let count = series.samples.len() as u64;
    if count == 0 {
        return (0, 0, 0, 0);
    }
    let sum: u64 = series.samples.iter().map(|s| s.millis).sum();
    let average = sum / count;
    let deviation = series
        .samples
        .iter()
        .map(|s| s.millis.abs_diff(average))
        .sum::<u64>()
        / count;
    let oldest = series.samples.iter().map(|s| s.time).min().unwrap_or(0);
    let period = unix_seconds().saturating_sub(oldest).max(1);
    (count, average, deviation, period)
}

/// `LATENCY DOCTOR`: each event's spikes with their statistics, as Redis reports them, and
/// what usually causes such spikes.
pub(crate) fn doctor(server: &crate::server::Server) -> String {
    let threshold = server.settings.latency_monitor_threshold;
    let events: Vec<(&str, &Series)> = server.latency.events().collect();
    if events.is_empty() && threshold == 0 {
        return "The latency monitor is off, and has recorded nothing. Turn it on with \
                'CONFIG SET latency-monitor-threshold <milliseconds>'.\n"
            .to_string();
    }
    if events.is_empty() {
        return "No latency spike has been observed since the server started.\n".to_string();
    }
    let mut out = String::from("Latency spikes were observed:\n\n");
    let mut hints: Vec<&str> = Vec::new();
    for (number, (event, series)) in events.iter().enumerate() {
        let (count, average, deviation, period) = event_stats(series);
        out.push_str(&format!(
            "{}. {event}: {count} latency spikes (average {average}ms, mean deviation {deviation}ms, period {:.2} sec). Worst all time event {}ms.\n",
            number + 1,
            period as f64 / count.max(1) as f64,
            series.max
        ));
        let hint = match *event {
            "command" => {
                "- Slow commands: SLOWLOG GET shows which ones (and large values deleted, expired or evicted block too)."
            }
            "fast-command" => {
                "- Even O(1) commands were slow: the machine does not give the server CPU time (load, noisy neighbours)."
            }
            "fork" => {
                "- Forks are slow on this machine: snapshots and rewrites stall the server while the page tables are copied."
            }
            "expire-cycle" => {
                "- Expiring many keys at once takes time: spread expiry times, or raise 'hz' so each cycle does less."
            }
            "eviction-del" => "- Evicting large values blocks: split them into smaller keys.",
            "eviction-cycle" => {
                "- Eviction had a lot to free at once: avoid lowering 'maxmemory' suddenly or storing large results."
            }
            "aof-write" => {
                "- Writes to the AOF were slow: the disk is busy (other processes, a rewrite or a snapshot writing) or remote."
            }
            "aof-fsync-always" => {
                "- fsync is slow on this disk and 'appendfsync always' waits for it before replying: a faster local disk helps, or 'everysec' if a second of writes may be lost."
            }
            _ => "- See the event's history with LATENCY HISTORY.",
        };
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    out.push_str("\nWhat usually causes them:\n\n");
    for hint in hints {
        out.push_str(hint);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_log_trims_arguments_as_redis() {
        let many: Vec<bytes::Bytes> = (0..40).map(|i| bytes::Bytes::from(i.to_string())).collect();
        let kept = trimmed(&many);
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[31], b"... (9 more arguments)".to_vec());
        let long = [bytes::Bytes::from(vec![b'a'; 130])];
        let kept = trimmed(&long);
        assert_eq!(kept[0].len(), 128 + "... (2 more bytes)".len());
    }

    #[test]
    fn latency_keeps_the_worst_sample_per_second_and_the_last_160() {
        let mut monitor = LatencyMonitor::default();
        monitor.add("command", 5, 100);
        monitor.add("command", 9, 100);
        monitor.add("command", 3, 100);
        let (_, series) = monitor.series(b"command").expect("recorded");
        assert_eq!(series.samples.len(), 1);
        assert_eq!(series.samples[0].millis, 9);
        for second in 101..400 {
            monitor.add("command", 1, second);
        }
        let (_, series) = monitor.series(b"command").expect("recorded");
        assert_eq!(series.samples.len(), SAMPLES);
        assert_eq!(series.max, 9);
        assert_eq!(monitor.reset(Some(b"command")), 1);
        assert_eq!(monitor.reset(None), 0);
    }
}
