//! Side-by-side throughput and latency: `redis-benchmark` against amber-server and
//! redis-server in alternating rounds of the same run, reported as medians and ratios.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::{cargo, workspace_root};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Requests per redis-benchmark run.
    #[arg(long, default_value_t = 200_000)]
    requests: u32,
    /// Rounds per configuration (each round runs both servers).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Parallel connections.
    #[arg(long, default_value_t = 50)]
    clients: u32,
}

struct ServerUnderTest {
    name: &'static str,
    child: Child,
    port: u16,
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

fn start(name: &'static str, binary: &Path, dir: &Path) -> Result<ServerUnderTest> {
    let port = free_port()?;
    let child = Command::new(binary)
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &dir.display().to_string(), "--logfile", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{name} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(ServerUnderTest { name, child, port })
}

/// One redis-benchmark result line.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn benchmark(port: u16, test: &str, pipeline: u32, args: &BenchArgs) -> Result<Sample> {
    let output = Command::new("redis-benchmark")
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
        .output()
        .context("running redis-benchmark")?;
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
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Builds the release binary, starts both servers and prints the comparison table.
pub fn run(args: &BenchArgs) -> Result<()> {
    cargo(&["build", "--release", "-p", "amber-server"])?;
    let root = workspace_root();
    let scratch = std::env::temp_dir().join(format!("amber-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber = start("amber", &root.join("target/release/amber-server"), &scratch)?;
    let redis = start("redis", Path::new("/usr/bin/redis-server"), &scratch)?;
    println!(
        "redis-benchmark -c {} -n {} (-r 100000), {} alternating rounds; medians",
        args.clients, args.requests, args.rounds
    );
    println!(
        "{:<8} {:>3} | {:>12} {:>12} {:>7} | {:>9} {:>9} | {:>9} {:>9}",
        "test",
        "-P",
        "amber rps",
        "redis rps",
        "ratio",
        "amber p50",
        "redis p50",
        "amber p99",
        "redis p99"
    );
    for pipeline in [1, 16] {
        for test in ["set", "get", "incr", "mset"] {
            let mut results: Vec<Vec<Sample>> = vec![Vec::new(), Vec::new()];
            for round in 0..args.rounds {
                // Alternate which server goes first so neither always runs on a warmer machine.
                let order: [&ServerUnderTest; 2] = if round % 2 == 0 {
                    [&amber, &redis]
                } else {
                    [&redis, &amber]
                };
                for server in order {
                    let index = usize::from(server.name == "redis");
                    results[index].push(benchmark(server.port, test, pipeline, args)?);
                }
            }
            let stat = |i: usize, pick: fn(&Sample) -> f64| {
                median(&mut results[i].iter().map(pick).collect::<Vec<_>>())
            };
            let (amber_rps, redis_rps) = (stat(0, |s| s.rps), stat(1, |s| s.rps));
            println!(
                "{:<8} {:>3} | {:>12.0} {:>12.0} {:>6.2}x | {:>9.3} {:>9.3} | {:>9.3} {:>9.3}",
                test.to_uppercase(),
                pipeline,
                amber_rps,
                redis_rps,
                amber_rps / redis_rps,
                stat(0, |s| s.p50_ms),
                stat(1, |s| s.p50_ms),
                stat(0, |s| s.p99_ms),
                stat(1, |s| s.p99_ms),
            );
        }
    }
    drop(amber);
    drop(redis);
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
