//! AOF comparisons, side by side with redis-server: SET throughput and p99 under
//! `appendfsync everysec` and `always` (and Amber without AOF, the everysec target's baseline),
//! and the time to restart from the same plain AOF directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::bench::{
    BenchArgs, Sample, ServerUnderTest, benchmark, command, fill_type, median, restart_time_with,
    start_with,
};
use crate::tools::workspace_root;

fn scratch(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("amber-bench-aof-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn binaries() -> [(&'static str, PathBuf); 2] {
    [
        (
            "amber",
            workspace_root().join("target/release/amber-server"),
        ),
        ("redis", Path::new("/usr/bin/redis-server").to_path_buf()),
    ]
}

/// Runs every comparison and prints the tables.
pub fn run(args: &BenchArgs) -> Result<()> {
    throughput(args)?;
    if args.aof_keys > 0 {
        load_time(args)?;
    }
    Ok(())
}

fn throughput(args: &BenchArgs) -> Result<()> {
    println!(
        "\nAOF: SET, redis-benchmark -c {} -n {} (-r 100000), {} alternating rounds; medians",
        args.clients, args.requests, args.rounds
    );
    println!(
        "{:<9} {:>3} | {:>11} {:>11} {:>7} | {:>9} {:>9} | {:>14}",
        "fsync", "-P", "amber rps", "redis rps", "ratio", "amber p99", "redis p99", "amber/no-AOF"
    );
    for pipeline in [1, 16] {
        let baseline = {
            let dir = scratch("off")?;
            let server = start_with("amber", &binaries()[0].1, &dir, &[])?;
            let mut samples: Vec<f64> = (0..args.rounds)
                .map(|_| benchmark(server.port, "set", pipeline, args).map(|s| s.rps))
                .collect::<Result<_>>()?;
            let _ = std::fs::remove_dir_all(dir);
            median(&mut samples)
        };
        for policy in ["everysec", "always"] {
            let flags = ["--appendonly", "yes", "--appendfsync", policy];
            let dirs = [scratch("amber")?, scratch("redis")?];
            let [amber_bin, redis_bin] = binaries();
            let servers: [ServerUnderTest; 2] = [
                start_with(amber_bin.0, &amber_bin.1, &dirs[0], &flags)?,
                start_with(redis_bin.0, &redis_bin.1, &dirs[1], &flags)?,
            ];
            let mut results: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
            for round in 0..args.rounds {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for index in order {
                    results[index].push(benchmark(servers[index].port, "set", pipeline, args)?);
                }
            }
            let stat = |i: usize, pick: fn(&Sample) -> f64| {
                median(&mut results[i].iter().map(pick).collect::<Vec<_>>())
            };
            let (amber, redis) = (stat(0, |s| s.rps), stat(1, |s| s.rps));
            println!(
                "{policy:<9} {pipeline:>3} | {amber:>11.0} {redis:>11.0} {:>6.2}x | {:>9.3} {:>9.3} | {:>13.2}x",
                amber / redis,
                stat(0, |s| s.p99_ms),
                stat(1, |s| s.p99_ms),
                amber / baseline,
            );
            drop(servers);
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    Ok(())
}

/// Builds one plain AOF directory (an empty base and every write in the incr file) with Amber,
/// then times both servers restarting from identical copies of it.
fn load_time(args: &BenchArgs) -> Result<()> {
    let source = scratch("source")?;
    {
        let flags = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
        let server = start_with("amber", &binaries()[0].1, &source, &flags)?;
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
        for kind in ["string", "hash", "list", "set", "zset"] {
            fill_type(&mut stream, kind, args.aof_keys / 5)?;
        }
        let _ = command(&mut stream, "SHUTDOWN NOSAVE");
    }
    let size = dir_size(&source.join("appendonlydir"))? as f64 / 1e6;
    println!(
        "\nAOF load: {} mixed keys (string, 10-item hash/list/set/zset), plain AOF of {size:.1} MB, medians of {} rounds",
        args.aof_keys, args.rounds
    );
    let mut medians = Vec::new();
    for (name, binary) in binaries() {
        let mut times = Vec::new();
        for _ in 0..args.rounds {
            let dir = scratch(&format!("load-{name}"))?;
            copy_dir(&source.join("appendonlydir"), &dir.join("appendonlydir"))?;
            times.push(restart_time_with(
                name,
                &binary,
                &dir,
                &["--appendonly", "yes"],
            )?);
            let _ = std::fs::remove_dir_all(dir);
        }
        let time = median(&mut times);
        println!(
            "{name:<8} | restart from AOF {time:>7.3} s | {:>6.1} MB/s",
            size / time
        );
        medians.push(time);
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
