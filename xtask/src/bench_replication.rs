//! `cargo xtask bench --replication-only`: replication side by side, Amber→Amber against
//! Redis→Redis in alternating rounds:
//! - full-sync time of a mixed dataset (strings, hashes, lists, sets, sorted sets), disk-based
//!   and diskless, from `REPLICAOF` to `master_link_status:up`;
//! - master throughput (redis-benchmark SET) with 0, 1 and 2 replicas attached;
//! - replica lag under that load: the largest gap between the master's offset and the
//!   replica's, sampled every 50 ms, and the time the replica needs to catch up once the load
//!   stops.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench::{
    BenchArgs, ServerUnderTest, benchmark, command, fill_type, info_value, median, start_with,
};

const KINDS: [&str; 5] = ["string", "hash", "list", "set", "zset"];

/// The binary of `name` (`amber` or `redis`).
fn binary(args: &BenchArgs, name: &str) -> PathBuf {
    if name == "amber" {
        args.amber()
    } else {
        PathBuf::from("/usr/bin/redis-server")
    }
}

/// Starts a server of `name` in its own fresh directory under `scratch`.
fn start_in(
    args: &BenchArgs,
    name: &'static str,
    scratch: &Path,
    label: &str,
    extra: &[&str],
) -> Result<ServerUnderTest> {
    let dir = scratch.join(format!("{name}-{label}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    start_with(name, &binary(args, name), &dir, extra)
}

/// Makes `replica` follow `master` and waits until its link is up; returns the time taken.
fn attach(replica: &ServerUnderTest, master: &ServerUnderTest) -> Result<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", replica.port))?;
    let started = Instant::now();
    command(&mut stream, &format!("REPLICAOF 127.0.0.1 {}", master.port))?;
    let deadline = started + Duration::from_secs(600);
    while info_value(&mut stream, "master_link_status")? != "up" {
        if Instant::now() > deadline {
            bail!(
                "{}: the replica did not sync within 10 minutes",
                replica.name
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(started.elapsed())
}

fn offset(port: u16) -> Result<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    Ok(info_value(&mut stream, "master_repl_offset")?.parse()?)
}

/// Full-sync seconds of a master holding `keys` mixed keys, for each transfer form.
fn full_sync(args: &BenchArgs, name: &'static str, scratch: &Path, keys: u64) -> Result<[f64; 2]> {
    let mut times = [0.0; 2];
    for (slot, diskless) in ["no", "yes"].iter().enumerate() {
        let extra = [
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ];
        let master = start_in(args, name, scratch, "master", &extra)?;
        let mut stream = TcpStream::connect(("127.0.0.1", master.port))?;
        for kind in KINDS {
            fill_type(&mut stream, kind, keys / KINDS.len() as u64)?;
        }
        let replica = start_in(args, name, scratch, "replica", &[])?;
        times[slot] = attach(&replica, &master)?.as_secs_f64();
    }
    Ok(times)
}

/// SET throughput of a master with `replicas` replicas attached, and (with replicas) the
/// largest lag in bytes seen during the load and the seconds to catch up after it.
fn under_load(
    args: &BenchArgs,
    name: &'static str,
    scratch: &Path,
    replicas: usize,
    pipeline: u32,
) -> Result<(f64, u64, f64)> {
    let master = start_in(
        args,
        name,
        scratch,
        "master",
        &["--repl-diskless-sync-delay", "0"],
    )?;
    let mut attached = Vec::new();
    for index in 0..replicas {
        let replica = start_in(args, name, scratch, &format!("replica{index}"), &[])?;
        attach(&replica, &master)?;
        attached.push(replica);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let (master_port, replica_port) = (master.port, attached.first().map(|r| r.port));
        std::thread::spawn(move || -> u64 {
            let mut largest = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The replica first: the master's offset read after it is never older, so
                // the gap is never under-counted.
                if let Some(Ok(applied)) = replica_port.map(offset)
                    && let Ok(produced) = offset(master_port)
                {
                    largest = largest.max(produced.saturating_sub(applied));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            largest
        })
    };
    let sample = benchmark(master.port, "set", pipeline, args)?;
    let finished = Instant::now();
    let produced = offset(master.port)?;
    for replica in &attached {
        while offset(replica.port)? < produced {
            if finished.elapsed() > Duration::from_secs(60) {
                bail!("{}: a replica did not catch up within 60 s", name);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let catch_up = finished.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let largest = sampler.join().unwrap_or(0);
    Ok((sample.rps, largest, catch_up))
}

/// Runs the comparison and prints the tables.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-repl-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let keys = args.replication_keys;
    let names: [&'static str; 2] = ["amber", "redis"];
    if keys > 0 {
        let mut results = [Vec::new(), Vec::new()];
        for round in 0..args.rounds {
            for step in 0..2 {
                let index = (round + step) % 2;
                results[index].push(full_sync(args, names[index], &scratch, keys)?);
            }
        }
        println!(
            "Full sync of {keys} mixed keys (5 types), REPLICAOF to link up, {} rounds alternating; medians",
            args.rounds
        );
        println!(
            "{:<9} | {:>9} {:>9} {:>7}",
            "transfer", "amber s", "redis s", "ratio"
        );
        for (slot, form) in ["disk", "diskless"].iter().enumerate() {
            let stat =
                |i: usize| median(&mut results[i].iter().map(|r| r[slot]).collect::<Vec<_>>());
            let (amber, redis) = (stat(0), stat(1));
            println!(
                "{form:<9} | {amber:>9.2} {redis:>9.2} {:>6.2}x",
                redis / amber
            );
        }
    }
    println!(
        "Master SET throughput with replicas attached (redis-benchmark -c {} -n {}), {} rounds alternating; medians",
        args.clients, args.requests, args.rounds
    );
    println!(
        "{:>8} {:>3} | {:>11} {:>11} {:>7} | {:>14} {:>14} | {:>12} {:>12}",
        "replicas",
        "-P",
        "amber rps",
        "redis rps",
        "ratio",
        "amber max lag",
        "redis max lag",
        "amber catch",
        "redis catch"
    );
    for pipeline in [1, 16] {
        for replicas in [0, 1, 2] {
            let mut results = [Vec::new(), Vec::new()];
            for round in 0..args.rounds {
                for step in 0..2 {
                    let index = (round + step) % 2;
                    results[index].push(under_load(
                        args,
                        names[index],
                        &scratch,
                        replicas,
                        pipeline,
                    )?);
                }
            }
            let rps = |i: usize| median(&mut results[i].iter().map(|r| r.0).collect::<Vec<_>>());
            let lag =
                |i: usize| median(&mut results[i].iter().map(|r| r.1 as f64).collect::<Vec<_>>());
            let catch = |i: usize| median(&mut results[i].iter().map(|r| r.2).collect::<Vec<_>>());
            println!(
                "{replicas:>8} {pipeline:>3} | {:>11.0} {:>11.0} {:>6.2}x | {:>12.0} B {:>12.0} B | {:>10.3} s {:>10.3} s",
                rps(0),
                rps(1),
                rps(0) / rps(1),
                lag(0),
                lag(1),
                catch(0),
                catch(1),
            );
        }
    }
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
