//! `cargo xtask bench --eviction-only`: Amber and Redis side by side under `maxmemory`.
//!
//! * Eviction quality: a cache-aside workload (GET; on a miss, SET) whose keys follow a Zipf
//!   distribution over more keys than fit, the same sequence on both servers at the same
//!   `maxmemory`, with `allkeys-lru` and `allkeys-lfu`; the hit rate over the second half.
//! * SET throughput at `-P 16` while every write evicts, in alternating rounds; then RSS and
//!   `used_memory` against the limit.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bench::{
    BenchArgs, ServerUnderTest, alternating, benchmark, info_value, print_header, print_row,
    start_with,
};

/// Distinct keys the workload draws from.
const KEYSPACE: usize = 1_000_000;
/// Requests of the cache-aside workload (the hit rate counts the second half).
const REQUESTS: usize = 2_000_000;
/// Zipf exponent (`s = 1`: a few keys are very hot, a long tail is cold).
const ZIPF_S: f64 = 1.0;
/// Value size in bytes.
const VALUE_BYTES: usize = 100;
/// The cache size both servers get for the hit-rate comparison.
const CACHE_LIMIT: &str = "32mb";
/// The limit for the SET throughput comparison (small, so that every write evicts).
const THROUGHPUT_LIMIT: &str = "8mb";

/// A Zipf sampler over ranks `0..n` by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, s: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf, state: seed }
    }

    /// splitmix64, as a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self) -> usize {
        let u = self.uniform();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply to a GET: whether it was a hit.
fn read_get(reader: &mut BufReader<TcpStream>, line: &mut String) -> Result<bool> {
    line.clear();
    reader.read_line(line)?;
    if line.starts_with("$-1") {
        return Ok(false);
    }
    let len: usize = line
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected GET reply {line:?}"))?;
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(reader, &mut body)?;
    Ok(true)
}

/// Runs the cache-aside workload against `port`; the hit rate of the second half.
fn hit_rate(port: u16, seed: u64) -> Result<f64> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut zipf = Zipf::new(KEYSPACE, ZIPF_S, seed);
    let value = vec![b'v'; VALUE_BYTES];
    let (mut hits, mut counted) = (0u64, 0u64);
    let mut line = String::new();
    let batch = 200;
    for start in (0..REQUESTS).step_by(batch) {
        let keys: Vec<Vec<u8>> = (0..batch)
            .map(|_| format!("key:{}", zipf.next()).into_bytes())
            .collect();
        let mut wire = Vec::new();
        keys.iter()
            .for_each(|key| wire.extend(resp(&[b"GET", key])));
        writer.write_all(&wire)?;
        let mut misses = Vec::new();
        for key in &keys {
            let hit = read_get(&mut reader, &mut line)?;
            if start >= REQUESTS / 2 {
                counted += 1;
                hits += u64::from(hit);
            }
            if !hit {
                misses.push(key);
            }
        }
        let mut wire = Vec::new();
        misses
            .iter()
            .for_each(|key| wire.extend(resp(&[b"SET", key, &value])));
        writer.write_all(&wire)?;
        for _ in &misses {
            line.clear();
            reader.read_line(&mut line)?;
            if !line.starts_with('+') {
                bail!("SET failed: {line}");
            }
        }
    }
    Ok(hits as f64 / counted.max(1) as f64)
}

fn memory_row(server: &ServerUnderTest) -> Result<(u64, u64, u64)> {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    let used = info_value(&mut stream, "used_memory")?.parse()?;
    let rss = info_value(&mut stream, "used_memory_rss")?.parse()?;
    let evicted = info_value(&mut stream, "evicted_keys")?.parse()?;
    Ok((used, rss, evicted))
}

/// Prints the side-by-side tables.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-evict-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let redis_binary = Path::new("/usr/bin/redis-server");
    println!(
        "Eviction quality: cache-aside GET/SET, {REQUESTS} requests, Zipf s={ZIPF_S} over {KEYSPACE} keys, {VALUE_BYTES}-byte values, maxmemory {CACHE_LIMIT}; hit rate of the second half"
    );
    println!(
        "{:<12} | {:>10} {:>10} {:>9} | {:>10} {:>10}",
        "policy", "amber hit", "redis hit", "diff pp", "amber evic", "redis evic"
    );
    for policy in ["allkeys-lru", "allkeys-lfu"] {
        let extra = ["--maxmemory", CACHE_LIMIT, "--maxmemory-policy", policy];
        let amber = start_with("amber", &args.amber(), &scratch, &extra)?;
        let redis = start_with("redis", redis_binary, &scratch, &extra)?;
        let ours = hit_rate(amber.port, 7)?;
        let theirs = hit_rate(redis.port, 7)?;
        let (_, _, amber_evicted) = memory_row(&amber)?;
        let (_, _, redis_evicted) = memory_row(&redis)?;
        println!(
            "{:<12} | {:>9.2}% {:>9.2}% {:>+9.2} | {:>10} {:>10}",
            policy,
            ours * 100.0,
            theirs * 100.0,
            (ours - theirs) * 100.0,
            amber_evicted,
            redis_evicted
        );
    }
    println!();
    println!(
        "SET while evicting: maxmemory {THROUGHPUT_LIMIT} allkeys-lru, redis-benchmark -t set -r 100000 -c {} -n {}, {} alternating rounds; medians",
        args.clients, args.requests, args.rounds
    );
    let extra = [
        "--maxmemory",
        THROUGHPUT_LIMIT,
        "--maxmemory-policy",
        "allkeys-lru",
    ];
    let amber = start_with("amber", &args.amber(), &scratch, &extra)?;
    let redis = start_with("redis", redis_binary, &scratch, &extra)?;
    for server in [&amber, &redis] {
        // Fill past the limit first, so that every measured write evicts.
        benchmark(server.port, "set", 16, args)?;
    }
    print_header("command");
    for pipeline in [1, 16] {
        let samples = alternating([&amber, &redis], args.rounds, |server| {
            benchmark(server.port, "set", pipeline, args)
        })?;
        print_row("SET", pipeline, &samples);
    }
    println!();
    println!(
        "{:<6} | {:>12} {:>12} {:>12}",
        "server", "used_memory", "rss", "evicted"
    );
    for server in [&amber, &redis] {
        let (used, rss, evicted) = memory_row(server)?;
        println!(
            "{:<6} | {:>12} {:>12} {:>12}",
            server.name, used, rss, evicted
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
