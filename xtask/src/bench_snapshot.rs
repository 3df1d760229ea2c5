//! `cargo xtask bench --snapshot-only`: background snapshots under a SET load, side by side:
//! Redis's forked BGSAVE, Amber's forked BGSAVE and Amber's forkless BGSAVE. For each: the peak
//! extra memory (PSS of the server and its children, so pages a fork shares count once),
//! the write load's p99 and worst latency during the snapshot against its p99 and worst before,
//! its throughput, and the snapshot's duration. With `--snapshot-plot`, SVG charts of memory and
//! p99 latency over time go to `docs/`.
//!
//! Memory and latency come from two passes of each round. Reading a process's PSS
//! (`/proc/<pid>/smaps_rollup`) walks its page tables under its memory-map lock, about 9 ms for
//! a server of 1M keys here: a `fork`, or an `mmap` or `munmap` of the server's allocator, waits
//! for the walk, and the page faults behind it wait too. So the pass that samples memory can
//! stall the server it measures (the fork variants' worst latency was 4-5 ms higher in it); the
//! latency figures come from a pass that samples nothing but `INFO`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bench::{BenchArgs, children_of, command, fill_type, info_section_value, median, start};

/// Connections of the SET load.
const LOAD_CONNECTIONS: usize = 8;
/// Seconds of load before the snapshot (the idle baseline) and after it.
const BEFORE: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_millis(1000);
/// How often memory is sampled.
const MEMORY_EVERY: Duration = Duration::from_millis(50);
/// Width of the windows p99 is plotted over.
const PLOT_WINDOW: Duration = Duration::from_millis(100);

/// One way of taking the snapshot.
struct Variant {
    label: &'static str,
    server: &'static str,
    binary: PathBuf,
    bgsave: &'static str,
}

/// What one pass of one variant measures besides latency.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    /// Samples PSS every [`MEMORY_EVERY`] (and so stalls the server now and then).
    Memory,
    /// Samples nothing but `INFO`: the latency figures.
    Latency,
}

/// What one round of one variant measured.
#[derive(Debug, Clone, Default)]
struct Round {
    snapshot_s: f64,
    peak_extra_mb: f64,
    idle_p99_ms: f64,
    p99_ms: f64,
    idle_max_ms: f64,
    max_ms: f64,
    /// The worst latency during the snapshot in the pass that sampled memory.
    sampled_max_ms: f64,
    idle_kops: f64,
    kops: f64,
    /// Extra PSS (MB) over time, seconds from the snapshot's start.
    memory: Vec<(f64, f64)>,
    /// p99 latency (ms) per window, seconds from the snapshot's start.
    latency: Vec<(f64, f64)>,
}

/// Proportional set size of `pid` plus its children's, in bytes.
pub(crate) fn pss_with_children(pid: u32) -> u64 {
    let mut total = pss_of(pid);
    for child in children_of(pid) {
        total += pss_of(child);
    }
    total
}

fn pss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("Pss:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// One connection of the load: SETs on the dataset's string keys until `stop`, recording
/// (microseconds since `epoch`, latency in microseconds) per request. With an `interval`,
/// request `k` is due at `k × interval`: the connection sleeps until then, and a request due
/// while the previous reply was late is timed from when it was due, so a stall of the server
/// counts in full for every request it held up (no coordinated omission).
fn set_load(
    port: u16,
    keys: u64,
    seed: u64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    interval: Option<Duration>,
) -> Result<Vec<(u64, u32)>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut state = seed | 1;
    let mut samples = Vec::with_capacity(1 << 20);
    let mut reply = [0u8; 64];
    let mut due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let late = match interval {
            Some(interval) => {
                due += interval;
                let now = Instant::now();
                std::thread::sleep(due.saturating_duration_since(now));
                now > due
            }
            None => false,
        };
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = format!("string:{}", state % keys.max(1));
        let request = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\nnew-value-{:06}\r\n",
            key.len(),
            state % 1_000_000
        );
        let sent = Instant::now();
        stream.write_all(request.as_bytes())?;
        let mut got = 0;
        while got < 5 {
            let n = stream.read(&mut reply[got..])?;
            anyhow::ensure!(n > 0, "server closed the connection");
            got += n;
        }
        let sent = if late { due } else { sent };
        let latency = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        samples.push(((sent.max(epoch) - epoch).as_micros() as u64, latency));
    }
    Ok(samples)
}

fn percentile(values: &mut [u32], fraction: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let at = ((values.len() as f64 * fraction) as usize).min(values.len() - 1);
    f64::from(values[at]) / 1000.0
}

/// One round of `variant`: its memory pass, then its latency pass, each on a fresh server.
fn round(variant: &Variant, keys: u64, rate: u64, stalls: bool) -> Result<Round> {
    let memory = one_pass(variant, keys, Pass::Memory, rate, stalls)?;
    let latency = one_pass(variant, keys, Pass::Latency, rate, stalls)?;
    Ok(Round {
        peak_extra_mb: memory.peak_extra_mb,
        memory: memory.memory,
        sampled_max_ms: memory.max_ms,
        ..latency
    })
}

fn one_pass(variant: &Variant, keys: u64, pass: Pass, rate: u64, stalls: bool) -> Result<Round> {
    let dir = std::env::temp_dir().join(format!(
        "amber-bench-snapshot-{}-{}",
        variant.label.replace(' ', "-"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let server = start(variant.server, &variant.binary, &dir)?;
    let pid = server.pid();
    let mut control = TcpStream::connect(("127.0.0.1", server.port))?;
    for kind in ["string", "hash", "list", "set", "zset"] {
        fill_type(&mut control, kind, keys / 5)?;
    }
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let interval =
        (rate > 0).then(|| Duration::from_secs_f64(LOAD_CONNECTIONS as f64 / rate as f64));
    let loads: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|n| {
            let stop = stop.clone();
            let port = server.port;
            let seed = 0x9e37 + n as u64;
            std::thread::spawn(move || set_load(port, keys / 5, seed, epoch, stop, interval))
        })
        .collect();
    let mut memory = Vec::new();
    let sample_until =
        |memory: &mut Vec<(Duration, u64)>, until: &dyn Fn() -> Result<bool>| -> Result<()> {
            let mut next = Instant::now();
            loop {
                if pass == Pass::Memory {
                    memory.push((epoch.elapsed(), pss_with_children(pid)));
                }
                if until()? {
                    return Ok(());
                }
                next += MEMORY_EVERY;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        };
    sample_until(&mut memory, &|| Ok(epoch.elapsed() >= BEFORE))?;
    let started = epoch.elapsed();
    let reply = command(&mut control, variant.bgsave)?;
    anyhow::ensure!(reply.contains("started"), "{}: {reply}", variant.bgsave);
    let control = std::cell::RefCell::new(control);
    sample_until(&mut memory, &|| {
        Ok(info_section_value(
            &mut control.borrow_mut(),
            "persistence",
            "rdb_bgsave_in_progress",
        )? == "0")
    })?;
    let ended = epoch.elapsed();
    let finished = Instant::now();
    sample_until(&mut memory, &|| Ok(finished.elapsed() >= AFTER))?;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for load in loads {
        samples.extend(
            load.join()
                .map_err(|_| anyhow::anyhow!("load thread panicked"))??,
        );
    }
    let status = info_section_value(
        &mut control.borrow_mut(),
        "persistence",
        "rdb_last_bgsave_status",
    )?;
    anyhow::ensure!(status == "ok", "{} failed", variant.label);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summarize(
        &memory,
        &samples,
        started,
        ended,
        stalls && pass == Pass::Latency,
    ))
}

/// Prints the pass's worst latencies during the snapshot, at least 20 ms apart, with when
/// each request was sent (microseconds from the snapshot's start): where the stalls are.
fn print_stalls(samples: &[(u64, u32)], started: u64, ended: u64) {
    let mut worst: Vec<(u32, u64)> = samples
        .iter()
        .filter(|(at, _)| (started..ended).contains(at))
        .map(|(at, latency)| (*latency, *at))
        .collect();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    let mut shown: Vec<(u32, u64)> = Vec::new();
    for (latency, at) in worst {
        let offset = at - started;
        if shown.iter().all(|(_, o)| o.abs_diff(offset) > 20_000) {
            shown.push((latency, offset));
        }
        if shown.len() == 12 {
            break;
        }
    }
    println!(
        "  worst latencies (us, sent at us into the {} us snapshot): {shown:?}",
        ended - started
    );
}

fn summarize(
    memory: &[(Duration, u64)],
    samples: &[(u64, u32)],
    started: Duration,
    ended: Duration,
    show_stalls: bool,
) -> Round {
    let us = |d: Duration| d.as_micros() as u64;
    let idle_from = us(started).saturating_sub(1_500_000);
    let mut idle: Vec<u32> = samples
        .iter()
        .filter(|(at, _)| (idle_from..us(started)).contains(at))
        .map(|(_, latency)| *latency)
        .collect();
    let mut during: Vec<u32> = samples
        .iter()
        .filter(|(at, _)| (us(started)..us(ended)).contains(at))
        .map(|(_, latency)| *latency)
        .collect();
    if show_stalls {
        print_stalls(samples, us(started), us(ended));
    }
    let idle_seconds = (us(started) - idle_from) as f64 / 1e6;
    let snapshot_s = (ended - started).as_secs_f64();
    let baseline: Vec<f64> = memory
        .iter()
        .filter(|(at, _)| *at < started && *at + Duration::from_millis(1000) >= started)
        .map(|(_, pss)| *pss as f64)
        .collect();
    let baseline = if baseline.is_empty() {
        1.0 // the latency pass samples no memory
    } else {
        median(&mut baseline.clone()).max(1.0)
    };
    let peak = memory
        .iter()
        .filter(|(at, _)| *at >= started && *at <= ended + MEMORY_EVERY)
        .map(|(_, pss)| *pss as f64)
        .fold(baseline, f64::max);
    let offset = |at: Duration| at.as_secs_f64() - started.as_secs_f64();
    let memory_curve = memory
        .iter()
        .map(|(at, pss)| (offset(*at), (*pss as f64 - baseline) / 1e6))
        .collect();
    let mut latency_curve = Vec::new();
    let window = us(PLOT_WINDOW);
    let last = samples.iter().map(|(at, _)| *at).max().unwrap_or(0);
    let mut from = us(started).saturating_sub(1_000_000);
    while from + window <= last {
        let mut inside: Vec<u32> = samples
            .iter()
            .filter(|(at, _)| (from..from + window).contains(at))
            .map(|(_, latency)| *latency)
            .collect();
        if !inside.is_empty() {
            let mid = Duration::from_micros(from + window / 2);
            latency_curve.push((offset(mid), percentile(&mut inside, 0.99)));
        }
        from += window;
    }
    Round {
        snapshot_s,
        peak_extra_mb: (peak - baseline) / 1e6,
        idle_kops: idle.len() as f64 / idle_seconds / 1000.0,
        kops: during.len() as f64 / snapshot_s.max(1e-3) / 1000.0,
        idle_p99_ms: percentile(&mut idle, 0.99),
        p99_ms: percentile(&mut during, 0.99),
        idle_max_ms: percentile(&mut idle, 1.0),
        max_ms: percentile(&mut during, 1.0),
        sampled_max_ms: f64::NAN,
        memory: memory_curve,
        latency: latency_curve,
    }
}

/// Runs the comparison and prints the table (and writes the charts with `plot`).
pub(crate) fn run(args: &BenchArgs, keys: u64, plot: bool) -> Result<()> {
    let rate = args.snapshot_rate;
    let pace = if rate == 0 {
        "as fast as replies come".to_string()
    } else {
        format!("{rate} requests/s in all, timed from when each was due")
    };
    let redis = PathBuf::from("/usr/bin/redis-server");
    let variants = [
        Variant {
            label: "redis fork",
            server: "redis",
            binary: redis,
            bgsave: "BGSAVE",
        },
        Variant {
            label: "amber fork",
            server: "amber",
            binary: args.amber(),
            bgsave: "BGSAVE FORK",
        },
        Variant {
            label: "amber forkless",
            server: "amber",
            binary: args.amber(),
            bgsave: "BGSAVE FORKLESS",
        },
    ];
    println!(
        "\nsnapshots under a SET load: {keys} mixed keys (strings, hashes, lists, sets, sorted sets; 10-element collections), {LOAD_CONNECTIONS} connections of SET on the string keys (-P 1, {pace}), medians of {} rounds",
        args.rounds
    );
    println!(
        "{:<15} | {:>10} | {:>13} | {:>11} | {:>6} | {:>11} | {:>6} | {:>14} | {:>9} | {:>5}",
        "variant",
        "snapshot s",
        "peak extra MB",
        "idle p99 ms",
        "p99 ms",
        "idle max ms",
        "max ms",
        "max (sampling)",
        "idle kops",
        "kops"
    );
    let names: Vec<String> = variants.iter().map(|v| v.label.replace(' ', "-")).collect();
    if let Some(unknown) = args.snapshot_variants.iter().find(|v| !names.contains(v)) {
        anyhow::bail!(
            "no snapshot variant {unknown}: choose among {}",
            names.join(", ")
        );
    }
    anyhow::ensure!(
        !plot || args.snapshot_variants.is_empty(),
        "--snapshot-plot draws all three variants: drop --snapshot-variants"
    );
    let chosen = |index: usize| {
        args.snapshot_variants.is_empty() || args.snapshot_variants.contains(&names[index])
    };
    let mut all: Vec<Vec<Round>> = variants.iter().map(|_| Vec::new()).collect();
    for round_index in 0..args.rounds {
        for offset in 0..variants.len() {
            let index = (round_index + offset) % variants.len();
            if !chosen(index) {
                continue;
            }
            if args.snapshot_stalls {
                println!("{}:", variants[index].label);
            }
            let result = round(&variants[index], keys, rate, args.snapshot_stalls)
                .with_context(|| variants[index].label)?;
            all[index].push(result);
        }
    }
    let mut medians = Vec::new();
    for (variant, rounds) in variants.iter().zip(&all) {
        if rounds.is_empty() {
            medians.push(Round::default());
            continue;
        }
        let pick = |f: fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
        let row = Round {
            snapshot_s: pick(|r| r.snapshot_s),
            peak_extra_mb: pick(|r| r.peak_extra_mb),
            idle_p99_ms: pick(|r| r.idle_p99_ms),
            p99_ms: pick(|r| r.p99_ms),
            idle_max_ms: pick(|r| r.idle_max_ms),
            max_ms: pick(|r| r.max_ms),
            sampled_max_ms: pick(|r| r.sampled_max_ms),
            idle_kops: pick(|r| r.idle_kops),
            kops: pick(|r| r.kops),
            ..Round::default()
        };
        println!(
            "{:<15} | {:>10.3} | {:>13.1} | {:>11.2} | {:>6.2} | {:>11.1} | {:>6.1} | {:>14.1} | {:>9.1} | {:>5.1}",
            variant.label,
            row.snapshot_s,
            row.peak_extra_mb,
            row.idle_p99_ms,
            row.p99_ms,
            row.idle_max_ms,
            row.max_ms,
            row.sampled_max_ms,
            row.idle_kops,
            row.kops
        );
        medians.push(row);
    }
    let (redis, fork, forkless) = (&medians[0], &medians[1], &medians[2]);
    if all.iter().any(Vec::is_empty) {
        return Ok(());
    }
    println!(
        "forkless: peak extra {:.2}x Redis's fork ({:.2}x Amber's fork); p99 during {:.2}x its idle p99; max {:.1} ms; time {:.2}x Amber's fork ({:.2}x Redis's)",
        forkless.peak_extra_mb / redis.peak_extra_mb,
        forkless.peak_extra_mb / fork.peak_extra_mb,
        forkless.p99_ms / forkless.idle_p99_ms,
        forkless.max_ms,
        forkless.snapshot_s / fork.snapshot_s,
        forkless.snapshot_s / redis.snapshot_s,
    );
    if plot {
        let last: Vec<(&str, &Round)> = variants
            .iter()
            .zip(&all)
            .filter_map(|(variant, rounds)| Some((variant.label, rounds.last()?)))
            .collect();
        let docs = crate::tools::workspace_root().join("docs");
        chart(
            &docs.join("snapshot-memory.svg"),
            &format!("Extra memory (PSS, MB) during a snapshot of {keys} keys under SET"),
            "MB",
            &last,
            |r| &r.memory,
        )?;
        chart(
            &docs.join("snapshot-latency.svg"),
            &format!(
                "SET p99 latency (ms, {} ms windows) during a snapshot of {keys} keys",
                PLOT_WINDOW.as_millis()
            ),
            "ms",
            &last,
            |r| &r.latency,
        )?;
        println!("charts: docs/snapshot-memory.svg, docs/snapshot-latency.svg");
    }
    Ok(())
}

/// A line chart of one curve per variant, time from the snapshot's start on the x axis.
fn chart(
    path: &Path,
    title: &str,
    unit: &str,
    rounds: &[(&str, &Round)],
    curve: fn(&Round) -> &Vec<(f64, f64)>,
) -> Result<()> {
    use plotters::prelude::*;
    let points = rounds.iter().flat_map(|(_, round)| curve(round).iter());
    let (mut x_max, mut y_max, mut y_min) = (1.0f64, 1.0f64, 0.0f64);
    for (x, y) in points {
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
        y_min = y_min.min(*y);
    }
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-1.0..x_max, y_min..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds from BGSAVE")
        .y_desc(unit)
        .draw()?;
    let colours = [
        RGBColor(200, 60, 50),
        RGBColor(60, 110, 200),
        RGBColor(40, 160, 80),
    ];
    for ((label, round), colour) in rounds.iter().zip(colours) {
        chart
            .draw_series(LineSeries::new(
                curve(round).iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
