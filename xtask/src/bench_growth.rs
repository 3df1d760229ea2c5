//! `cargo xtask bench --growth-only`: what a client sees while the key table doubles.
//!
//! Each server gets `DEBUG POPULATE` keys just short of a power of two, then one client adds
//! new keys one `SET` at a time across the doubling and times each reply; another then sends
//! `PING`s while the server finishes the resize in its cron, until `DEBUG HTSTATS 0` no
//! longer shows a "rehashing target" (both at `hz 100`). Rounds alternate between the servers; medians.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{BenchArgs, ServerUnderTest, start_with};

/// Keys added one at a time: the doubling happens a few thousand keys in.
const ADDED: usize = 16_000;
/// Keys populated below the doubling point.
const HEADROOM: usize = 4_000;
/// The longest the cron may take to finish a resize.
const REHASH_LIMIT: Duration = Duration::from_secs(120);

/// One round's figures for one server.
#[derive(Clone, Copy, Default)]
struct Round {
    /// The slowest SET across the doubling, in ms.
    worst_set: f64,
    /// The 99.9th percentile SET, in ms.
    p999_set: f64,
    /// The slowest PING while the cron finished the resize, in ms.
    worst_ping: f64,
    /// Seconds from the last SET until no resize was under way.
    rehash_secs: f64,
}

/// Sends one command and reads its one-line (or bulk) reply.
fn call(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    args: &[&[u8]],
) -> Result<String> {
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        wire.extend_from_slice(arg);
        wire.extend_from_slice(b"\r\n");
    }
    writer.write_all(&wire)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if let Some(len) = line
        .strip_prefix(['$', '='])
        .and_then(|n| n.trim_end().parse::<usize>().ok())
    {
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body)?;
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    if line.starts_with('-') {
        bail!("{}", line.trim_end());
    }
    Ok(line)
}

fn connect(server: &ServerUnderTest) -> Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(("127.0.0.1", server.port))?;
    stream.set_nodelay(true)?;
    Ok((stream.try_clone()?, BufReader::new(stream)))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Populates `server` with `keys` keys, adds [`ADDED`] more one at a time, then waits for the
/// resize to finish.
fn round(server: &ServerUnderTest, keys: usize) -> Result<Round> {
    let (mut writer, mut reader) = connect(server)?;
    call(&mut writer, &mut reader, &[b"FLUSHALL"])?;
    let populate = keys.to_string();
    call(
        &mut writer,
        &mut reader,
        &[b"DEBUG", b"POPULATE", populate.as_bytes()],
    )?;
    // Let a resize the populate left behind finish first.
    wait_for_rehash(server, &mut writer, &mut reader)?;
    let mut latencies = Vec::with_capacity(ADDED);
    for i in 0..ADDED {
        let key = format!("grown:{i}");
        let started = Instant::now();
        call(&mut writer, &mut reader, &[b"SET", key.as_bytes(), b"x"])?;
        latencies.push(millis(started.elapsed()));
    }
    let (worst_ping, rehash_secs) = wait_for_rehash(server, &mut writer, &mut reader)?;
    latencies.sort_by(f64::total_cmp);
    Ok(Round {
        worst_set: latencies[latencies.len() - 1],
        p999_set: latencies[latencies.len() * 999 / 1000],
        worst_ping,
        rehash_secs,
    })
}

/// PINGs `server` until `DEBUG HTSTATS 0` shows no resize; the slowest PING and the seconds it
/// took.
fn wait_for_rehash(
    server: &ServerUnderTest,
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
) -> Result<(f64, f64)> {
    let (mut ping_writer, mut ping_reader) = connect(server)?;
    let started = Instant::now();
    let mut worst = 0.0f64;
    loop {
        let stats = call(writer, reader, &[b"DEBUG", b"HTSTATS", b"0"])?;
        if !stats.contains("rehashing target") {
            return Ok((worst, started.elapsed().as_secs_f64()));
        }
        if started.elapsed() > REHASH_LIMIT {
            bail!("{} still resizing after {REHASH_LIMIT:?}", server.name);
        }
        for _ in 0..200 {
            let ping = Instant::now();
            call(&mut ping_writer, &mut ping_reader, &[b"PING"])?;
            worst = worst.max(millis(ping.elapsed()));
        }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Prints the side-by-side table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-growth-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let redis_binary = Path::new("/usr/bin/redis-server");
    // At the default hz of 10 the cron's millisecond per tick takes Redis minutes to finish
    // the resize of 4M keys; hz 100 gives both servers ten times as much.
    let extra = ["--hz", "100"];
    let amber = start_with("amber", &args.amber(), &scratch, &extra)?;
    let redis = start_with("redis", redis_binary, &scratch, &extra)?;
    println!(
        "Key table doubling: DEBUG POPULATE n, then {ADDED} SETs of new keys one at a time (the table doubles a few thousand in), then PINGs until DEBUG HTSTATS shows no resize; hz 100; {} alternating rounds, medians (ms, seconds)",
        args.rounds
    );
    println!(
        "{:>9} {:<6} | {:>9} {:>9} | {:>9} | {:>10}",
        "keys", "server", "worst SET", "p99.9 SET", "worst PING", "resize (s)"
    );
    for power in [20u32, 22] {
        let keys = (1usize << power) - HEADROOM;
        let servers = [&amber, &redis];
        let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        for number in 0..args.rounds {
            let order = if number % 2 == 0 { [0, 1] } else { [1, 0] };
            for index in order {
                let figures = round(servers[index], keys)
                    .with_context(|| format!("{} with {keys} keys", servers[index].name))?;
                rounds[index].push(figures);
            }
        }
        for (server, rounds) in servers.iter().zip(&rounds) {
            println!(
                "{:>9} {:<6} | {:>9.2} {:>9.3} | {:>10.2} | {:>10.1}",
                keys,
                server.name,
                median(rounds.iter().map(|r| r.worst_set)),
                median(rounds.iter().map(|r| r.p999_set)),
                median(rounds.iter().map(|r| r.worst_ping)),
                median(rounds.iter().map(|r| r.rehash_secs)),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
