//! Copy-on-write per write, per dataset, side by side with redis-server. A BGSAVE child is
//! slowed down (`rdb-key-save-delay`) so that it is still running after the same writes have
//! been sent to both servers: one pipelined client rewrites the same random keys of the
//! dataset in place, in the same order. Memory is the growth of the server's and its child's
//! PSS (a page the fork still shares counts once) over those writes, so the figure does not
//! depend on how fast either server saves or serves.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::bench::{BenchArgs, command, fill_type, median, pipeline, start};
use crate::bench_snapshot::pss_with_children;

/// The datasets: each type alone, then all five in equal parts.
const DATASETS: [&str; 6] = ["string", "hash", "list", "set", "zset", "mixed"];
const TYPES: [&str; 5] = ["string", "hash", "list", "set", "zset"];
/// Writes sent while the child runs, as shares of the keys: sparse (each write lands on a
/// page no other has dirtied, as in a dataset much larger than the writes) and dense (many
/// writes land on pages already copied, so how tightly the touched structures are packed
/// counts).
const DENSITIES: [f64; 2] = [0.005, 0.05];

/// `cargo xtask bench --cow-only`: the table for every dataset.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let binaries: [(&'static str, PathBuf); 2] = [
        ("amber", args.amber()),
        ("redis", Path::new("/usr/bin/redis-server").to_path_buf()),
    ];
    let counts = DENSITIES.map(|share| (args.cow_keys as f64 * share) as u64);
    println!(
        "\ncopy-on-write: {} keys per dataset (10-element collections); while a slowed BGSAVE child runs, {} then {} pipelined writes in all rewrite random keys of the dataset in place (the same on both servers); growth of parent + child PSS per write; medians of {} alternating rounds",
        args.cow_keys, counts[0], counts[1], args.rounds
    );
    println!(
        "{:<7} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>9} {:>9}",
        "dataset",
        "amber B/w",
        "redis B/w",
        "ratio",
        "amber B/w",
        "redis B/w",
        "ratio",
        "amber B/k",
        "redis B/k"
    );
    let chosen = DATASETS.into_iter().filter(|dataset| {
        args.cow_datasets.is_empty() || args.cow_datasets.iter().any(|d| d == dataset)
    });
    for dataset in chosen {
        let mut figures: [Vec<[f64; 3]>; 2] = [Vec::new(), Vec::new()];
        for round in 0..args.rounds {
            for index in [round % 2, 1 - round % 2] {
                let (name, binary) = &binaries[index];
                let round = cow_round(name, binary, dataset, args.cow_keys, counts)?;
                figures[index].push(round);
            }
        }
        let pick = |index: usize, at: usize| {
            median(&mut figures[index].iter().map(|f| f[at]).collect::<Vec<_>>())
        };
        let per_write = |index: usize, at: usize| pick(index, at) / counts[at] as f64;
        let (sparse, dense) = (
            [per_write(0, 0), per_write(1, 0)],
            [per_write(0, 1), per_write(1, 1)],
        );
        println!(
            "{dataset:<7} | {:>9.0} {:>9.0} {:>5.2}x | {:>9.0} {:>9.0} {:>5.2}x | {:>9.0} {:>9.0}",
            sparse[0],
            sparse[1],
            sparse[0] / sparse[1],
            dense[0],
            dense[1],
            dense[0] / dense[1],
            pick(0, 2),
            pick(1, 2),
        );
    }
    println!(
        "B/w = bytes of PSS growth per write, first after {} writes, then after {}; ratio = Amber's / Redis's (below 1: Amber copies less); B/k = used_memory per key",
        counts[0], counts[1]
    );
    Ok(())
}

/// The command that rewrites key `i` of `kind` in place with `value`: one element of a
/// collection changes (a set gains one member), a string gets a new value.
fn write_command(kind: &str, i: u64, value: u64) -> String {
    let key = format!("{kind}:{i}"); // as `fill_type` names them
    match kind {
        "string" => format!("SET {key} value-{value}\r\n"),
        "hash" => format!("HSET {key} f3 v{value}\r\n"),
        "list" => format!("LSET {key} 3 e{value}\r\n"),
        "set" => format!("SADD {key} m{value}\r\n"),
        _ => format!("ZADD {key} {value} m3\r\n"),
    }
}

/// The types a dataset holds, and the keys of each.
fn parts(dataset: &str, keys: u64) -> Vec<(&'static str, u64)> {
    match TYPES.iter().find(|kind| **kind == dataset) {
        Some(kind) => vec![(kind, keys)],
        None => TYPES.iter().map(|kind| (*kind, keys / 5)).collect(),
    }
}

/// The same pseudo-random writes for every server: a fixed-seed xorshift over the keys of
/// the dataset's types in turn.
fn writes(dataset: &str, keys: u64, count: u64) -> impl Iterator<Item = String> {
    let parts = parts(dataset, keys);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..count).map(move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let (kind, keys) = parts[n as usize % parts.len()];
        write_command(kind, state % keys, state >> 40)
    })
}

/// PSS growth (bytes) of one server and its child after each count of writes, and
/// `used_memory` per key before them.
fn cow_round(
    name: &'static str,
    binary: &Path,
    dataset: &str,
    keys: u64,
    counts: [u64; 2],
) -> Result<[f64; 3]> {
    let dir = std::env::temp_dir().join(format!("amber-bench-cow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let server = start(name, binary, &dir)?;
    let pid = server.pid();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    let used = |stream: &mut TcpStream| -> Result<f64> {
        Ok(crate::bench::info_value(stream, "used_memory")?
            .parse()
            .unwrap_or(0.0))
    };
    let empty = used(&mut stream)?;
    for (kind, count) in parts(dataset, keys) {
        fill_type(&mut stream, kind, count)?;
    }
    let used_per_key = (used(&mut stream)? - empty) / keys as f64;
    // A millisecond per key: the child outlives the writes whatever the dataset.
    command(&mut stream, "CONFIG SET rdb-key-save-delay 1000")?;
    command(&mut stream, "BGSAVE")?;
    std::thread::sleep(Duration::from_millis(300));
    let before = pss_with_children(pid);
    let mut all = writes(dataset, keys, counts[1]);
    let mut growth = [0.0; 2];
    let mut sent = 0;
    for (at, count) in counts.into_iter().enumerate() {
        pipeline(&mut stream, all.by_ref().take((count - sent) as usize), 1)?;
        sent = count;
        std::thread::sleep(Duration::from_millis(100));
        growth[at] = pss_with_children(pid).saturating_sub(before) as f64;
    }
    // A child that ended early would have stopped sharing pages: the figure would be wrong.
    if crate::bench::info_value(&mut stream, "rdb_bgsave_in_progress")? != "1" {
        anyhow::bail!("{name}'s BGSAVE child ended before the writes were measured");
    }
    for child in crate::bench::children_of(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok([growth[0], growth[1], used_per_key])
}
