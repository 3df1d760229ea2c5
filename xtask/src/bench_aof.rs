//! AOF comparisons, side by side with redis-server: SET throughput and p99 under
//! `appendfsync everysec` and `always` (and Amber without AOF, the everysec target's baseline),
//! and the time to restart from the same plain AOF directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::bench::{
    BenchArgs, Sample, ServerUnderTest, alternating_rounds, benchmark, command, fill_type, median,
    restart_time_with, start_with,
};

fn scratch(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("amber-bench-aof-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn binaries(args: &BenchArgs) -> [(&'static str, PathBuf); 2] {
    [
        ("amber", args.amber()),
        ("redis", Path::new("/usr/bin/redis-server").to_path_buf()),
    ]
}

/// Runs every comparison and prints the tables.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    if args.rewrite_only {
        return rewrite(args);
    }
    throughput(args)?;
    if args.aof_keys > 0 {
        load_time(args)?;
        rewrite(args)?;
    }
    Ok(())
}

/// BGREWRITEAOF of the same mixed dataset under a SET load: rewrite time, copy-on-write
/// memory of the child (one rewrite per server), then the time to restart from the rewritten
/// directory, with an RDB-preamble base and with a command base, in alternating rounds.
pub(crate) fn rewrite(args: &BenchArgs) -> Result<()> {
    println!(
        "\nAOF rewrite: {} mixed keys, BGREWRITEAOF under a redis-benchmark SET load (-c 10), one rewrite; restart: medians (min-max) of {} alternating rounds",
        args.aof_keys,
        args.rounds.max(1)
    );
    println!(
        "{:<8} {:<8} | {:>10} | {:>12} | {:>10} | {:>23}",
        "server", "preamble", "rewrite s", "COW MB", "base MB", "restart s"
    );
    let mut ratios = Vec::new();
    for preamble in ["yes", "no"] {
        let mut rewritten = Vec::new();
        for (name, binary) in binaries(args) {
            let dir = scratch(&format!("rewrite-{name}"))?;
            let (seconds, cow) = rewrite_once(args, name, &binary, &dir, preamble)?;
            let base = base_size_mb(&dir)?;
            rewritten.push((name, binary, dir, seconds, cow, base, Vec::new()));
        }
        for round in 0..args.rounds.max(1) {
            // Each round, the other server restarts first.
            if round > 0 {
                rewritten.reverse();
            }
            for (name, binary, dir, .., restarts) in &mut rewritten {
                restarts.push(restart_time_with(
                    name,
                    binary,
                    dir,
                    &["--appendonly", "yes"],
                )?);
            }
        }
        rewritten.sort_by_key(|(name, ..)| *name != "amber");
        let mut row = Vec::new();
        for (name, _, dir, seconds, cow, base, mut restarts) in rewritten {
            let restart = median(&mut restarts);
            let spread = format!(
                "{restart:.3} ({:.3}-{:.3})",
                restarts[0],
                restarts[restarts.len() - 1]
            );
            println!(
                "{name:<8} {preamble:<8} | {seconds:>10.3} | {cow:>12.1} | {base:>10.1} | {spread:>23}"
            );
            row.push((seconds, restart));
            let _ = std::fs::remove_dir_all(dir);
        }
        ratios.push((row[0].0 / row[1].0, row[1].1 / row[0].1));
    }
    println!(
        "ratios   | preamble: rewrite amber/redis {:.2}x, restart {:.2}x faster | plain: rewrite amber/redis {:.2}x, restart {:.2}x faster",
        ratios[0].0, ratios[0].1, ratios[1].0, ratios[1].1
    );
    Ok(())
}

/// Fills a fresh server in `dir` with the mixed dataset, rewrites its AOF under a SET load
/// and shuts it down: the rewrite's seconds and the child's copy-on-write MB.
fn rewrite_once(
    args: &BenchArgs,
    name: &'static str,
    binary: &Path,
    dir: &Path,
    preamble: &str,
) -> Result<(f64, f64)> {
    let flags = [
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        preamble,
        "--auto-aof-rewrite-percentage",
        "0",
    ];
    let server = start_with(name, binary, dir, &flags)?;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    for kind in ["string", "hash", "list", "set", "zset"] {
        fill_type(&mut stream, kind, args.aof_keys / 5)?;
    }
    let mut load = crate::bench::set_load(server.port, 1_000_000)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = crate::bench::info_value(&mut stream, "aof_rewrites")?;
    let started = std::time::Instant::now();
    command(&mut stream, "BGREWRITEAOF")?;
    // `aof_rewrites` counts rewrites started; then wait for the end.
    while crate::bench::info_value(&mut stream, "aof_rewrites")? == before
        || crate::bench::info_value(&mut stream, "aof_rewrite_in_progress")? != "0"
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cow = crate::bench::info_value(&mut stream, "aof_last_cow_size")?
        .parse::<f64>()
        .unwrap_or(0.0)
        / 1e6;
    let _ = load.kill();
    let _ = load.wait();
    let _ = command(&mut stream, "SHUTDOWN NOSAVE");
    Ok((seconds, cow))
}

/// Megabytes of the base files in `dir`'s AOF directory.
fn base_size_mb(dir: &Path) -> Result<f64> {
    Ok(std::fs::read_dir(dir.join("appendonlydir"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".base."))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>() as f64
        / 1e6)
}

/// SET throughput with the AOF on, side by side: each `(clients, pipeline)` shape under
/// `everysec` and `always`, rounds alternating which server goes first. Prints medians, the
/// spread of each server's rounds, and Amber's rate against Amber without the AOF.
fn throughput(args: &BenchArgs) -> Result<()> {
    println!(
        "\nAOF: SET, redis-benchmark -n {} (-r 100000), {} alternating rounds; medians (min-max){}",
        args.requests,
        args.rounds,
        crate::placement::describe()
    );
    println!(
        "{:<10} {:>4} {:>3} | {:>21} {:>21} {:>7} | {:>9} {:>9} | {:>12} | {:>8} {:>8} {:>6} | {:>13}",
        "fsync",
        "-c",
        "-P",
        "amber rps",
        "redis rps",
        "ratio",
        "amber p99",
        "redis p99",
        "amber/no-AOF",
        "amber us",
        "redis us",
        "cpu",
        "client core"
    );
    let shapes = [(args.clients, 1), (200, 1), (args.clients, 16)];
    for (clients, pipeline) in shapes {
        let mut shape = args.clone();
        shape.clients = clients;
        let baseline = {
            let dir = scratch("off")?;
            let server = start_with("amber", &binaries(args)[0].1, &dir, &[])?;
            let mut samples: Vec<f64> = (0..args.rounds)
                .map(|_| benchmark(server.port, "set", pipeline, &shape).map(|s| s.rps))
                .collect::<Result<_>>()?;
            let _ = std::fs::remove_dir_all(dir);
            median(&mut samples)
        };
        // The third row runs Amber with its incr file zero-filled ahead (`aof-preallocate`),
        // against the same Redis `always`.
        for (label, policy, preallocate) in [
            ("everysec", "everysec", "0"),
            ("always", "always", "0"),
            ("always+pre", "always", "4mb"),
        ] {
            let flags = ["--appendonly", "yes", "--appendfsync", policy];
            let mut amber_flags = flags.to_vec();
            amber_flags.extend(["--aof-preallocate", preallocate]);
            let dirs = [scratch("amber")?, scratch("redis")?];
            let [amber_bin, redis_bin] = binaries(args);
            let servers: [ServerUnderTest; 2] = [
                start_with(amber_bin.0, &amber_bin.1, &dirs[0], &amber_flags)?,
                start_with(redis_bin.0, &redis_bin.1, &dirs[1], &flags)?,
            ];
            let rounds = alternating_rounds([&servers[0], &servers[1]], args.rounds, |server| {
                benchmark(server.port, "set", pipeline, &shape)
            })?;
            let [amber, redis] = rounds.map(|samples| Spread::of(&samples));
            println!(
                "{label:<10} {clients:>4} {pipeline:>3} | {:>21} {:>21} {:>6.2}x | {:>9.3} {:>9.3} | {:>11.2}x | {:>8.2} {:>8.2} {:>5.2}x | {:>5.0}% {:>5.0}%",
                amber.rps_text(),
                redis.rps_text(),
                amber.rps / redis.rps,
                amber.p99_ms,
                redis.p99_ms,
                amber.rps / baseline,
                amber.cpu_us,
                redis.cpu_us,
                amber.cpu_us / redis.cpu_us,
                amber.client_core * 100.0,
                redis.client_core * 100.0,
            );
            drop(servers);
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    Ok(())
}

/// One server's rounds: median rate with its range, median p99, median CPU time per
/// request (µs, all the server's threads: under `always` the fsyncs' system time counts) and
/// the median share of a core redis-benchmark used against it (near 100% the client is the
/// ceiling: on a 2-core machine it shares the cores with the server).
struct Spread {
    rps: f64,
    min: f64,
    max: f64,
    p99_ms: f64,
    cpu_us: f64,
    client_core: f64,
}

impl Spread {
    fn of(samples: &[Sample]) -> Spread {
        let mut rates: Vec<f64> = samples.iter().map(|s| s.rps).collect();
        let mut p99s: Vec<f64> = samples.iter().map(|s| s.p99_ms).collect();
        let mut cpus: Vec<f64> = samples.iter().map(|s| s.cpu_us).collect();
        let mut clients: Vec<f64> = samples.iter().map(|s| s.client_core).collect();
        Spread {
            rps: median(&mut rates),
            min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            max: rates.iter().copied().fold(0.0, f64::max),
            p99_ms: median(&mut p99s),
            cpu_us: median(&mut cpus),
            client_core: median(&mut clients),
        }
    }

    /// `median (min-max)`, in thousands per second.
    fn rps_text(&self) -> String {
        format!(
            "{:.1}k ({:.1}-{:.1}k)",
            self.rps / 1000.0,
            self.min / 1000.0,
            self.max / 1000.0
        )
    }
}

/// Builds one plain AOF directory (an empty base and every write in the incr file) with Amber,
/// then times both servers restarting from identical copies of it.
fn load_time(args: &BenchArgs) -> Result<()> {
    let source = scratch("source")?;
    {
        // No automatic rewrite: past 64 MB (1M keys) it would turn the writes into a base.
        let flags = [
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            "no",
            "--auto-aof-rewrite-percentage",
            "0",
        ];
        let server = start_with("amber", &binaries(args)[0].1, &source, &flags)?;
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
        for kind in ["string", "hash", "list", "set", "zset"] {
            fill_type(&mut stream, kind, args.aof_keys / 5)?;
        }
        let _ = command(&mut stream, "SHUTDOWN NOSAVE");
    }
    let size = dir_size(&source.join("appendonlydir"))? as f64 / 1e6;
    println!(
        "\nAOF load: {} mixed keys (string, 10-item hash/list/set/zset), plain AOF of {size:.1} MB, medians (min-max) of {} alternating rounds",
        args.aof_keys, args.rounds
    );
    let servers = binaries(args);
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let (name, binary) = &servers[index];
            let dir = scratch(&format!("load-{name}"))?;
            copy_dir(&source.join("appendonlydir"), &dir.join("appendonlydir"))?;
            times[index].push(restart_time_with(
                name,
                binary,
                &dir,
                &["--appendonly", "yes"],
            )?);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let mut medians = [0.0; 2];
    for (index, (name, _)) in servers.iter().enumerate() {
        let low = times[index].iter().copied().fold(f64::INFINITY, f64::min);
        let high = times[index].iter().copied().fold(0.0, f64::max);
        medians[index] = median(&mut times[index]);
        println!(
            "{name:<8} | restart from AOF {:>7.3} s ({low:.3}-{high:.3}) | {:>6.1} MB/s",
            medians[index],
            size / medians[index]
        );
    }
    println!(
        "ratio    | AOF load {:.2}x faster than redis",
        medians[1] / medians[0]
    );
    let _ = std::fs::remove_dir_all(source);
    Ok(())
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}
