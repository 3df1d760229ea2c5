//! `cargo xtask bench --scripting-only`: `EVALSHA` of a small script (INCR plus EXPIRE on a
//! random key), Amber and Redis side by side in alternating rounds, with redis-benchmark's
//! arbitrary-command mode; and `FCALL` of the same code as a function.

use std::net::TcpStream;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bench::{
    BenchArgs, Sample, ServerUnderTest, alternating, command, print_header, print_row, start,
};

/// The script measured: what a rate counter or a session touch does.
const SCRIPT: &str = "redis.call('incr', KEYS[1]) return redis.call('expire', KEYS[1], 60)";

/// The same code as a library.
const LIBRARY: &str = "#!lua name=bench\nredis.register_function('touch', function(keys) redis.call('incr', keys[1]) return redis.call('expire', keys[1], 60) end)";

/// Runs redis-benchmark with `args` as the command; the CSV line of that command.
pub(crate) fn custom(port: u16, pipeline: u32, bench: &BenchArgs, args: &[&str]) -> Result<Sample> {
    let output = crate::placement::client_command("redis-benchmark")
        .args(["-p", &port.to_string(), "-n", &bench.requests.to_string()])
        .args([
            "-c",
            &bench.clients.to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .args(["-r", "100000", "--csv"])
        .args(args)
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}", args[0])))
        .with_context(|| format!("no result in redis-benchmark output: {text}"))?;
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
        client_core: f64::NAN,
    })
}

/// Loads the script and the library into a server; the script's SHA1.
fn prepare(server: &ServerUnderTest) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    let sha = command(&mut stream, &format!("SCRIPT LOAD \"{SCRIPT}\""))?;
    let loaded =
        crate::bench::command_args(&mut stream, &["FUNCTION", "LOAD", "REPLACE", LIBRARY])?;
    if !loaded.contains("bench") {
        bail!("{} did not load the library: {loaded}", server.name);
    }
    Ok(sha.trim().to_string())
}

/// Prints the side-by-side table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-lua-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber = start("amber", &args.amber(), &scratch)?;
    let redis = start("redis", Path::new("/usr/bin/redis-server"), &scratch)?;
    let sha = prepare(&amber)?;
    if prepare(&redis)? != sha {
        bail!("the servers disagree on the script's SHA1");
    }
    println!(
        "Scripting: redis-benchmark -c {} -n {} -r 100000, {} alternating rounds; medians",
        args.clients, args.requests, args.rounds
    );
    print_header("command");
    let evalsha = ["EVALSHA", sha.as_str(), "1", "counter:__rand_int__"];
    let fcall = ["FCALL", "touch", "1", "counter:__rand_int__"];
    for pipeline in [1, 16] {
        for (name, request) in [("EVALSHA", &evalsha), ("FCALL", &fcall)] {
            let medians = alternating([&amber, &redis], args.rounds, |server| {
                custom(server.port, pipeline, args, request)
            })?;
            print_row(name, pipeline, &medians);
        }
    }
    Ok(())
}
