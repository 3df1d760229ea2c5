//! Side-by-side throughput and latency: `redis-benchmark` against amber-server and
//! redis-server in alternating rounds of the same run, reported as medians and ratios.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::{cargo, workspace_root};

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Clone)]
pub(crate) struct BenchArgs {
    /// Requests per redis-benchmark run.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u32,
    /// Rounds per configuration (each round runs both servers).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Parallel connections.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Keys for the persistence comparison (SAVE, BGSAVE, restart); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    persistence_keys: u64,
    /// Only the persistence comparison.
    #[arg(long)]
    persistence_only: bool,
    /// Keys per type for the memory comparison; 0 skips it.
    #[arg(long, default_value_t = 200_000)]
    memory_keys: u64,
    /// Only the memory comparison.
    #[arg(long)]
    memory_only: bool,
    /// Keys for the AOF load comparison (mixed types); 0 skips the AOF comparisons.
    #[arg(long, default_value_t = 1_000_000)]
    pub aof_keys: u64,
    /// Only the AOF comparisons (SET under appendfsync always/everysec, AOF load time).
    #[arg(long)]
    aof_only: bool,
    /// Only the AOF rewrite comparison (rewrite time, COW, restart with each kind of base).
    #[arg(long)]
    pub rewrite_only: bool,
    /// Only the Pub/Sub comparison (PUBLISH with 1, 100 and 1000 subscribers).
    #[arg(long)]
    pub pubsub_only: bool,
    /// Only the stream comparison (XADD, XREADGROUP + XACK, memory per entry, SAVE/restart).
    #[arg(long)]
    pub streams_only: bool,
    /// Only the replication comparison (full sync, throughput with replicas, replica lag).
    #[arg(long)]
    pub replication_only: bool,
    /// Only the scripting comparison (EVALSHA and FCALL of INCR plus EXPIRE).
    #[arg(long)]
    pub scripting_only: bool,
    /// Only the eviction comparison (hit rate under a Zipf load, SET while evicting).
    #[arg(long)]
    pub eviction_only: bool,
    /// Only the key-table doubling comparison (SET and PING latency while the table resizes).
    #[arg(long)]
    pub growth_only: bool,
    /// Only the HyperLogLog, GEO and SORT comparison.
    #[arg(long)]
    pub commands_only: bool,
    /// Only the idle-connection memory comparison (10,000 connections).
    #[arg(long)]
    pub connections_only: bool,
    /// Only the redis-benchmark throughput table (SET, GET, INCR, MSET at -P 1 and -P 16).
    #[arg(long)]
    pub throughput_only: bool,
    /// Only the copy-on-write comparison: the PSS growth per write while a BGSAVE child runs,
    /// for each type of keys and a mix.
    #[arg(long)]
    pub cow_only: bool,
    /// Keys per dataset for the copy-on-write comparison.
    #[arg(long, default_value_t = 300_000)]
    pub cow_keys: u64,
    /// Only these datasets in the copy-on-write comparison (comma-separated: string, hash,
    /// list, set, zset, mixed); all when empty.
    #[arg(long, value_delimiter = ',')]
    pub cow_datasets: Vec<String>,
    /// Only the snapshot comparison (Redis's fork, Amber's fork and forkless BGSAVE under a
    /// SET load: peak extra memory, latency, time).
    #[arg(long)]
    pub snapshot_only: bool,
    /// Only the backup comparison: a backup plain and encrypted, shipped to and verified
    /// from a local S3 server (moto), against `aws s3 cp` when installed.
    #[arg(long)]
    pub backup_only: bool,
    /// Megabytes of data for the backup comparison.
    #[arg(long, default_value_t = 1024)]
    pub backup_mb: u64,
    /// Keys (mixed types) for the snapshot comparison.
    #[arg(long, default_value_t = 1_000_000)]
    pub snapshot_keys: u64,
    /// Also write SVG charts of memory and p99 latency over time to `docs/`.
    #[arg(long)]
    pub snapshot_plot: bool,
    /// The snapshot comparison's SET load in requests per second, spread evenly over its
    /// connections, each request timed from its scheduled start; 0: as fast as the server
    /// answers (each connection sends its next request when the reply arrives).
    #[arg(long, default_value_t = 0)]
    pub snapshot_rate: u64,
    /// Print each latency pass's worst requests during the snapshot, and when they were sent.
    #[arg(long)]
    pub snapshot_stalls: bool,
    /// Only these variants in the snapshot comparison (comma-separated: redis-fork,
    /// amber-fork, amber-forkless); all when empty.
    #[arg(long, value_delimiter = ',')]
    pub snapshot_variants: Vec<String>,
    /// Keys (mixed types) for the full-sync comparison; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub replication_keys: u64,
    /// Benchmark this amber-server binary instead of the freshly built one (e.g. an older
    /// build, for a before/after comparison against the same Redis).
    #[arg(long)]
    pub amber_binary: Option<std::path::PathBuf>,
    /// Run the servers (every thread and child) on these CPUs only (`taskset -c` list, e.g.
    /// `0` or `0-1`); with `--client-cpus`, the client never competes with the server.
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Run `redis-benchmark` on these CPUs only (`taskset -c` list).
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// `redis-benchmark --threads` for the throughput and AOF tables: one client thread tops
    /// out near 90-100k requests/s at -P 1, below what 2x Redis's `always` would need.
    #[arg(long, default_value_t = 1)]
    pub client_threads: u32,
}

impl BenchArgs {
    /// The amber-server binary to run.
    pub(crate) fn amber(&self) -> std::path::PathBuf {
        self.amber_binary
            .clone()
            .unwrap_or_else(|| workspace_root().join("target/release/amber-server"))
    }
}

pub(crate) struct ServerUnderTest {
    pub name: &'static str,
    child: Child,
    pub port: u16,
}

impl ServerUnderTest {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn start(name: &'static str, binary: &Path, dir: &Path) -> Result<ServerUnderTest> {
    start_with(name, binary, dir, &[])
}

pub(crate) fn start_with(
    name: &'static str,
    binary: &Path,
    dir: &Path,
    extra: &[&str],
) -> Result<ServerUnderTest> {
    let port = free_port()?;
    let child = crate::placement::server_command(binary)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--dir",
            &dir.display().to_string(),
            "--logfile",
            "",
            "--enable-debug-command",
            "yes",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{name} did not start");
        }
        // Finely: restart times are measured through this wait, and a coarse step would add
        // the same rounding to both servers, pulling their ratio towards 1.
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(ServerUnderTest { name, child, port })
}

/// One redis-benchmark result line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server's CPU time (user + system, all threads) per request, in microseconds:
    /// steadier than the rate on a shared machine (set by [`alternating_rounds`]).
    pub cpu_us: f64,
    /// redis-benchmark's own CPU time over its wall time (1.0 = a whole core): near 1.0 the
    /// client, not the server, sets the rate.
    pub client_core: f64,
}

/// CPU seconds (user + system) of this process's children that have ended so far.
fn ended_children_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return f64::NAN;
    };
    let seconds =
        |time: nix::sys::time::TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
    seconds(usage.user_time()) + seconds(usage.system_time())
}

/// CPU seconds (user + system, all threads) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The fields after the command name (which may hold spaces): utime and stime are the
    // 12th and 13th of them, in clock ticks of 1/100 s.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    match ticks[..] {
        [user, system] => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Runs `measure` against `server` and fills in the server's CPU time per request it used
/// (its CPU time over the requests the run's rate and wall time account for).
fn with_cpu(
    server: &ServerUnderTest,
    measure: impl FnOnce(&ServerUnderTest) -> Result<Sample>,
) -> Result<Sample> {
    let (cpu_before, started) = (cpu_seconds(server.pid()), Instant::now());
    let mut sample = measure(server)?;
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    let requests = sample.rps * started.elapsed().as_secs_f64();
    sample.cpu_us = cpu / requests * 1e6;
    Ok(sample)
}

pub(crate) fn benchmark(port: u16, test: &str, pipeline: u32, args: &BenchArgs) -> Result<Sample> {
    // The servers outlive this call: the only child to end during it is redis-benchmark.
    let (children_before, started) = (ended_children_cpu_seconds(), Instant::now());
    let output = crate::placement::client_command("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            test,
            "-n",
            &args.requests.to_string(),
        ])
        .args([
            "-c",
            &args.clients.to_string(),
            "-P",
            &pipeline.to_string(),
            "-r",
            "100000",
            "--csv",
        ])
        .args(client_threads(args.client_threads))
        .output()
        .context("running redis-benchmark")?;
    let client_core =
        (ended_children_cpu_seconds() - children_before) / started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}", test.to_uppercase())))
        .with_context(|| format!("no {test} result in redis-benchmark output: {text}"))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    if fields.len() < 7 {
        bail!("unexpected redis-benchmark line: {line}");
    }
    Ok(Sample {
        rps: fields[0],
        p50_ms: fields[3],
        p99_ms: fields[5],
        cpu_us: f64::NAN,
        client_core,
    })
}

/// `--threads N` when the client runs more than one thread (redis-benchmark's default is one).
fn client_threads(threads: u32) -> Vec<String> {
    match threads {
        0 | 1 => Vec::new(),
        threads => vec!["--threads".to_string(), threads.to_string()],
    }
}

/// Measures both servers `rounds` times, alternating which goes first so neither always runs
/// on a warmer machine; the medians of each (`[first, second]`).
pub(crate) fn alternating(
    servers: [&ServerUnderTest; 2],
    rounds: usize,
    measure: impl FnMut(&ServerUnderTest) -> Result<Sample>,
) -> Result<[Sample; 2]> {
    let results = alternating_rounds(servers, rounds, measure)?;
    Ok(results.map(|samples| {
        let stat =
            |pick: fn(&Sample) -> f64| median(&mut samples.iter().map(pick).collect::<Vec<_>>());
        Sample {
            rps: stat(|s| s.rps),
            p50_ms: stat(|s| s.p50_ms),
            p99_ms: stat(|s| s.p99_ms),
            cpu_us: stat(|s| s.cpu_us),
            client_core: stat(|s| s.client_core),
        }
    }))
}

/// Measures both servers `rounds` times, alternating which goes first; every round's sample
/// of each (`[first, second]`).
pub(crate) fn alternating_rounds(
    servers: [&ServerUnderTest; 2],
    rounds: usize,
    mut measure: impl FnMut(&ServerUnderTest) -> Result<Sample>,
) -> Result<[Vec<Sample>; 2]> {
    let mut results: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            results[index].push(with_cpu(servers[index], &mut measure)?);
        }
    }
    Ok(results)
}

/// The header of a side-by-side throughput table whose first column is `what`.
pub(crate) fn print_header(what: &str) {
    println!(
        "{:<8} {:>3} | {:>12} {:>12} {:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} {:>7}",
        what,
        "-P",
        "amber rps",
        "redis rps",
        "ratio",
        "amber p50",
        "redis p50",
        "amber p99",
        "redis p99",
        "amber us",
        "redis us",
        "cpu"
    );
}

/// One row of that table: Amber's and Redis's medians and their ratio.
pub(crate) fn print_row(label: &str, pipeline: u32, [amber, redis]: &[Sample; 2]) {
    println!(
        "{:<8} {:>3} | {:>12.0} {:>12.0} {:>6.2}x | {:>9.3} {:>9.3} | {:>9.3} {:>9.3} | {:>9.2} {:>9.2} {:>6.2}x",
        label,
        pipeline,
        amber.rps,
        redis.rps,
        amber.rps / redis.rps,
        amber.p50_ms,
        redis.p50_ms,
        amber.p99_ms,
        redis.p99_ms,
        amber.cpu_us,
        redis.cpu_us,
        amber.cpu_us / redis.cpu_us,
    );
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Builds the release binary, starts both servers and prints the comparison table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    cargo(&["build", "--release", "-p", "amber-server"])?;
    crate::placement::set(args.server_cpus.as_deref(), args.client_cpus.as_deref())?;
    if args.persistence_only {
        return persistence(args);
    }
    if args.memory_only {
        return memory(args);
    }
    if args.aof_only || args.rewrite_only {
        return crate::bench_aof::run(args);
    }
    if args.pubsub_only {
        return crate::bench_pubsub::run(args);
    }
    if args.streams_only {
        return crate::bench_streams::run(args);
    }
    if args.replication_only {
        return crate::bench_replication::run(args);
    }
    if args.eviction_only {
        return crate::bench_eviction::run(args);
    }
    if args.growth_only {
        return crate::bench_growth::run(args);
    }
    if args.scripting_only {
        return crate::bench_scripting::run(args);
    }
    if args.commands_only {
        return crate::bench_commands::run(args);
    }
    if args.connections_only {
        return crate::bench_connections::run(args);
    }
    if args.backup_only {
        return crate::bench_backup::run(args, args.backup_mb);
    }
    if args.cow_only {
        return crate::bench_cow::run(args);
    }
    if args.snapshot_only || args.snapshot_plot {
        return crate::bench_snapshot::run(args, args.snapshot_keys, args.snapshot_plot);
    }
    let scratch = std::env::temp_dir().join(format!("amber-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber = start("amber", &args.amber(), &scratch)?;
    let redis = start("redis", Path::new("/usr/bin/redis-server"), &scratch)?;
    println!(
        "redis-benchmark -c {} -n {} (-r 100000), {} alternating rounds; medians{}",
        args.clients,
        args.requests,
        args.rounds,
        crate::placement::describe()
    );
    print_header("test");
    for pipeline in [1, 16] {
        for test in ["set", "get", "incr", "mset"] {
            let medians = alternating([&amber, &redis], args.rounds, |server| {
                benchmark(server.port, test, pipeline, args)
            })?;
            print_row(&test.to_uppercase(), pipeline, &medians);
        }
    }
    drop(amber);
    drop(redis);
    let _ = std::fs::remove_dir_all(scratch);
    if args.throughput_only {
        return Ok(());
    }
    crate::bench_pubsub::run(args)?;
    crate::bench_streams::run(args)?;
    crate::bench_replication::run(args)?;
    if args.persistence_keys > 0 {
        persistence(args)?;
    }
    if args.memory_keys > 0 {
        memory(args)?;
    }
    if args.aof_keys > 0 {
        crate::bench_aof::run(args)?;
    }
    Ok(())
}

/// Sends `commands` in batches of 1000 and waits for their replies, each `lines_per_reply`
/// lines long (`+OK` is one, a bulk string two).
pub(crate) fn pipeline(
    stream: &mut TcpStream,
    commands: impl Iterator<Item = String>,
    lines_per_reply: u64,
) -> Result<()> {
    use std::io::{Read, Write};
    let mut batch = String::new();
    let mut pending = 0u64;
    let mut sink = vec![0u8; 1 << 20];
    let mut flush = |stream: &mut TcpStream, batch: &mut String, pending: &mut u64| -> Result<()> {
        stream.write_all(batch.as_bytes())?;
        batch.clear();
        let mut lines = 0u64;
        while lines < *pending * lines_per_reply {
            let n = stream.read(&mut sink)?;
            if n == 0 {
                bail!("server closed the connection");
            }
            lines += sink[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        *pending = 0;
        Ok(())
    };
    for command in commands {
        batch.push_str(&command);
        pending += 1;
        if pending == 1000 {
            flush(stream, &mut batch, &mut pending)?;
        }
    }
    flush(stream, &mut batch, &mut pending)
}

/// Writes `keys` keys of one type through a pipeline (10-element collections, as REDIS-FACTS),
/// or, for a `big-` kind, `keys` elements of one big collection (Redis's table, skiplist and
/// quicklist encodings).
pub(crate) fn fill_type(stream: &mut TcpStream, kind: &str, keys: u64) -> Result<()> {
    let line = |i: u64| match kind {
        "string" => format!("SET {kind}:{i} value-{i}\r\n"),
        "big-hash" => format!("HSET big field:{i:08} v{i}\r\n"),
        "big-list" => format!("RPUSH big member:{i:08}\r\n"),
        "big-list-of-ints" => format!("RPUSH big {i}\r\n"),
        "big-set" => format!("SADD big member:{i:08}\r\n"),
        "big-zset" => format!("ZADD big {i}.5 member:{i:08}\r\n"),
        "hash" => format!(
            "HSET {kind}:{i} {}\r\n",
            (0..10)
                .map(|j| format!("f{j} v{j}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "list" => format!(
            "RPUSH {kind}:{i} {}\r\n",
            (0..10)
                .map(|j| format!("e{j}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "set" => format!(
            "SADD {kind}:{i} {}\r\n",
            (0..10)
                .map(|j| format!("m{j}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ => format!(
            "ZADD {kind}:{i} {}\r\n",
            (0..10)
                .map(|j| format!("{j} m{j}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    pipeline(stream, (0..keys).map(line), 1)
}

/// Memory per key for each type, `used_memory` growth, side by side with redis-server.
fn memory(args: &BenchArgs) -> Result<()> {
    let binaries = [
        ("amber", args.amber()),
        ("redis", Path::new("/usr/bin/redis-server").to_path_buf()),
    ];
    println!(
        "\nmemory: {} keys per type (10-element collections), or elements of one big collection (big-), bytes per key or element from used_memory and RSS growth",
        args.memory_keys
    );
    println!(
        "{:<16} | {:>14} {:>14} {:>7} | {:>14} {:>14} {:>7}",
        "type",
        "amber used/key",
        "redis used/key",
        "ratio",
        "amber rss/key",
        "redis rss/key",
        "ratio"
    );
    for kind in [
        "string",
        "hash",
        "list",
        "set",
        "zset",
        "big-hash",
        "big-list",
        "big-list-of-ints",
        "big-set",
        "big-zset",
    ] {
        let mut used = Vec::new();
        let mut rss = Vec::new();
        for (name, binary) in &binaries {
            let dir =
                std::env::temp_dir().join(format!("amber-bench-mem-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let server = start(name, binary, &dir)?;
            let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
            let before: f64 = info_value(&mut stream, "used_memory")?
                .parse()
                .unwrap_or(0.0);
            let rss_before: f64 = info_value(&mut stream, "used_memory_rss")?
                .parse()
                .unwrap_or(0.0);
            fill_type(&mut stream, kind, args.memory_keys)?;
            let after: f64 = info_value(&mut stream, "used_memory")?
                .parse()
                .unwrap_or(0.0);
            let rss_after: f64 = info_value(&mut stream, "used_memory_rss")?
                .parse()
                .unwrap_or(0.0);
            used.push((after - before) / args.memory_keys as f64);
            rss.push((rss_after - rss_before) / args.memory_keys as f64);
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
        }
        println!(
            "{kind:<16} | {:>14.1} {:>14.1} {:>6.2}x | {:>14.1} {:>14.1} {:>6.2}x",
            used[0],
            used[1],
            used[0] / used[1],
            rss[0],
            rss[1],
            rss[0] / rss[1]
        );
    }
    Ok(())
}

/// Sends one inline command and returns the reply's text (bulk strings read in full).
pub(crate) fn command(stream: &mut TcpStream, line: &str) -> Result<String> {
    use std::io::Write;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    read_reply(stream, line)
}

/// Sends one command as a RESP array (arguments may hold any byte) and returns the reply's
/// text.
pub(crate) fn command_args(stream: &mut TcpStream, args: &[&str]) -> Result<String> {
    use std::io::Write;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    read_reply(stream, args[0])
}

fn read_reply(stream: &mut TcpStream, line: &str) -> Result<String> {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let header = header.trim_end().to_string();
    if let Some(len) = header.strip_prefix('$') {
        let len: usize = len.parse().unwrap_or(0);
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body)?;
        return Ok(String::from_utf8_lossy(&body[..len]).into_owned());
    }
    if header.starts_with('-') {
        bail!("{line}: {header}");
    }
    Ok(header)
}

pub(crate) fn info_value(stream: &mut TcpStream, field: &str) -> Result<String> {
    info_section_value(stream, "all", field)
}

/// A field of one `INFO` section: cheaper for the server than `INFO all` when polled during
/// a measurement.
pub(crate) fn info_section_value(
    stream: &mut TcpStream,
    section: &str,
    field: &str,
) -> Result<String> {
    let info = command(stream, &format!("INFO {section}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .with_context(|| format!("no {field} in INFO"))
}

/// Seconds from starting the server on `dir` until it answers PING (after loading).
fn restart_time(name: &'static str, binary: &Path, dir: &Path) -> Result<f64> {
    restart_time_with(name, binary, dir, &[])
}

/// Like [`restart_time`], with extra server flags.
pub(crate) fn restart_time_with(
    name: &'static str,
    binary: &Path,
    dir: &Path,
    extra: &[&str],
) -> Result<f64> {
    let started = Instant::now();
    let server = start_with(name, binary, dir, extra)?;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    while command(&mut stream, "PING").is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A background `redis-benchmark` SET load (10 clients over `keys` random keys) that runs
/// until killed.
pub(crate) fn set_load(port: u16, keys: u64) -> Result<std::process::Child> {
    Ok(crate::placement::client_command("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "set", "-n", "100000000"])
        .args(["-c", "10", "-r", &keys.to_string(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Resident set size of process `pid`, in bytes (0 once it is gone).
pub(crate) fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// The children of `pid` (of any of its threads).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| task.ok())
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// One server's persistence figures for one round.
#[derive(Debug, Clone, Copy, Default)]
struct PersistenceRound {
    save: f64,
    bgsave: f64,
    fork_us: f64,
    peak_extra_mb: f64,
    restart: f64,
    size_mb: f64,
}

/// Fills 1M mixed keys, then: SAVE; BGSAVE under a SET load with the peak of parent plus child
/// RSS above the RSS before; restart from the snapshot.
fn persistence_round(name: &'static str, binary: &Path, keys: u64) -> Result<PersistenceRound> {
    let dir =
        std::env::temp_dir().join(format!("amber-bench-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut round = PersistenceRound::default();
    {
        let server = start(name, binary, &dir)?;
        let pid = server.child.id();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
        for kind in ["string", "hash", "list", "set", "zset"] {
            fill_type(&mut stream, kind, keys / 5)?;
        }
        let started = Instant::now();
        command(&mut stream, "SAVE")?;
        round.save = started.elapsed().as_secs_f64();
        round.size_mb = std::fs::metadata(dir.join("dump.rdb"))?.len() as f64 / 1e6;
        let mut load = set_load(server.port, 100_000)?;
        std::thread::sleep(Duration::from_millis(500));
        let before = rss_of(pid);
        let started = Instant::now();
        command(&mut stream, "BGSAVE")?;
        let mut peak = before;
        let mut last_check = Instant::now();
        loop {
            let total = rss_of(pid) + children_of(pid).into_iter().map(rss_of).sum::<u64>();
            peak = peak.max(total);
            if last_check.elapsed() > Duration::from_millis(20) {
                last_check = Instant::now();
                if info_value(&mut stream, "rdb_bgsave_in_progress")? == "0" {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        round.bgsave = started.elapsed().as_secs_f64();
        round.peak_extra_mb = peak.saturating_sub(before) as f64 / 1e6;
        round.fork_us = info_value(&mut stream, "latest_fork_usec")?
            .parse::<f64>()
            .unwrap_or(f64::NAN);
        let _ = load.kill();
        let _ = load.wait();
    }
    round.restart = restart_time(name, binary, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(round)
}

/// SAVE time, BGSAVE time and peak extra memory under writes, fork latency and restart time
/// for the same mixed dataset, side by side, alternating which server goes first.
fn persistence(args: &BenchArgs) -> Result<()> {
    let binaries = [
        ("amber", args.amber()),
        ("redis", Path::new("/usr/bin/redis-server").to_path_buf()),
    ];
    println!(
        "\npersistence: {} mixed keys (strings, hashes, lists, sets, sorted sets; 10-element collections), BGSAVE under a redis-benchmark SET load (-c 10), medians of {} rounds",
        args.persistence_keys, args.rounds
    );
    println!(
        "{:<8} | {:>8} | {:>9} | {:>9} | {:>15} | {:>9} | {:>7}",
        "server", "SAVE s", "BGSAVE s", "fork us", "peak extra MB", "restart s", "RDB MB"
    );
    let mut rounds: [Vec<PersistenceRound>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for index in [round % 2, 1 - round % 2] {
            let (name, binary) = &binaries[index];
            rounds[index].push(persistence_round(name, binary, args.persistence_keys)?);
        }
    }
    let mut medians = Vec::new();
    for (index, (name, _)) in binaries.iter().enumerate() {
        let pick = |f: fn(&PersistenceRound) -> f64| {
            median(&mut rounds[index].iter().map(f).collect::<Vec<_>>())
        };
        let row = PersistenceRound {
            save: pick(|r| r.save),
            bgsave: pick(|r| r.bgsave),
            fork_us: pick(|r| r.fork_us),
            peak_extra_mb: pick(|r| r.peak_extra_mb),
            restart: pick(|r| r.restart),
            size_mb: pick(|r| r.size_mb),
        };
        println!(
            "{name:<8} | {:>8.3} | {:>9.3} | {:>9.0} | {:>15.1} | {:>9.3} | {:>7.1}",
            row.save, row.bgsave, row.fork_us, row.peak_extra_mb, row.restart, row.size_mb
        );
        medians.push(row);
    }
    let (amber, redis) = (medians[0], medians[1]);
    println!(
        "ratios   | SAVE {:.2}x faster | BGSAVE {:.2}x faster | fork time amber/redis {:.2}x | peak extra amber/redis {:.2}x | restart {:.2}x faster",
        redis.save / amber.save,
        redis.bgsave / amber.bgsave,
        amber.fork_us / redis.fork_us,
        amber.peak_extra_mb / redis.peak_extra_mb,
        redis.restart / amber.restart
    );
    Ok(())
}
