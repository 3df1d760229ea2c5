//! `cargo xtask bench --streams-only`: XADD throughput at -P 1 and -P 16, XREADGROUP + XACK
//! round trips of one consumer, memory per entry, and SAVE and restart with 1M entries, side
//! by side with redis-server in alternating rounds (medians and ratios).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::{
    BenchArgs, Sample, ServerUnderTest, alternating, command, info_value, median, pipeline,
    print_header, print_row, restart_time_with, start,
};

/// Entries for the memory and persistence figures, spread over this many streams.
const STREAMS: u64 = 100;
/// Entries each consumer round reads and acknowledges.
const CONSUMED: u64 = 20_000;

fn binaries(args: &BenchArgs) -> [(&'static str, PathBuf); 2] {
    [
        ("amber", args.amber()),
        ("redis", PathBuf::from("/usr/bin/redis-server")),
    ]
}

/// Amber and Redis, each in its own folder under `dir`.
fn start_both(args: &BenchArgs, dir: &Path) -> Result<Vec<ServerUnderTest>> {
    binaries(args)
        .iter()
        .map(|(name, binary)| {
            std::fs::create_dir_all(dir.join(name))?;
            start(name, binary, &dir.join(name))
        })
        .collect()
}

fn scratch(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("amber-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    xadd_throughput(args)?;
    consumer_round_trips(args)?;
    memory_and_persistence(args)
}

/// redis-benchmark running `XADD bench:stream * field value`.
fn xadd_rps(port: u16, pipeline: u32, args: &BenchArgs) -> Result<Sample> {
    let output = crate::placement::client_command("redis-benchmark")
        .args(["-p", &port.to_string(), "-n", &args.requests.to_string()])
        .args(["-c", &args.clients.to_string(), "-P", &pipeline.to_string()])
        .args(["--csv", "XADD", "bench:stream", "*", "field", "value"])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("\"XADD"))
        .with_context(|| format!("no XADD result in redis-benchmark output: {text}"))?;
    let fields: Vec<f64> = line
        .rsplitn(8, ',')
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    // rsplitn gives the fields backwards: max, p99, p95, p50, min, avg, rps, name.
    if fields.len() < 8 {
        bail!("unexpected redis-benchmark line: {line}");
    }
    Ok(Sample {
        rps: fields[6],
        p50_ms: fields[3],
        p99_ms: fields[1],
        cpu_us: f64::NAN,
        client_core: f64::NAN,
    })
}

fn xadd_throughput(args: &BenchArgs) -> Result<()> {
    let dir = scratch("xadd")?;
    let servers = start_both(args, &dir)?;
    println!(
        "\nstreams: XADD bench:stream * field value, redis-benchmark -c {} -n {}, {} alternating rounds; medians",
        args.clients, args.requests, args.rounds
    );
    print_header("");
    for pipeline in [1, 16] {
        let medians = alternating([&servers[0], &servers[1]], args.rounds, |server| {
            xadd_rps(server.port, pipeline, args)
        })?;
        print_row("XADD", pipeline, &medians);
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// `entries` entries of two fields over [`STREAMS`] streams, ids given so both servers hold
/// the same data.
fn fill(stream: &mut TcpStream, entries: u64) -> Result<()> {
    pipeline(
        stream,
        (0..entries).map(|i| {
            format!(
                "XADD stream:{} {}-1 sensor s{} reading {}\r\n",
                i % STREAMS,
                i + 1,
                i % 50,
                1000 + i % 9000
            )
        }),
        2,
    )
}

/// Reads one RESP reply and returns the first bulk string that looks like an entry id.
fn read_reply(reader: &mut BufReader<TcpStream>, first_id: &mut Option<String>) -> Result<()> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "*" | "%" => {
            let count: i64 = rest.parse().unwrap_or(0);
            let items = if kind == "%" { count * 2 } else { count };
            for _ in 0..items.max(0) {
                read_reply(reader, first_id)?;
            }
        }
        "$" => {
            let len: i64 = rest.parse().unwrap_or(-1);
            if len >= 0 {
                let mut body = vec![0u8; len as usize + 2];
                reader.read_exact(&mut body)?;
                let text = String::from_utf8_lossy(&body[..len as usize]).into_owned();
                if first_id.is_none() && text.contains('-') && text.starts_with(char::is_numeric) {
                    *first_id = Some(text);
                }
            }
        }
        "-" => bail!("error reply: {line}"),
        _ => {}
    }
    Ok(())
}

/// One consumer reading and acknowledging entries one at a time: entries per second.
fn consume(port: u16) -> Result<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    command(&mut stream, "FLUSHALL")?;
    pipeline(
        &mut stream,
        (0..CONSUMED).map(|i| format!("XADD jobs {}-1 job {i} payload abcdefgh\r\n", i + 1)),
        2,
    )?;
    command(&mut stream, "XGROUP CREATE jobs workers 0")?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let started = Instant::now();
    for _ in 0..CONSUMED {
        stream.write_all(b"XREADGROUP GROUP workers w1 COUNT 1 STREAMS jobs >\r\n")?;
        let mut id = None;
        read_reply(&mut reader, &mut id)?;
        let id = id.context("XREADGROUP returned no entry")?;
        stream.write_all(format!("XACK jobs workers {id}\r\n").as_bytes())?;
        read_reply(&mut reader, &mut None)?;
    }
    Ok(CONSUMED as f64 / started.elapsed().as_secs_f64())
}

fn consumer_round_trips(args: &BenchArgs) -> Result<()> {
    let dir = scratch("consume")?;
    let servers = start_both(args, &dir)?;
    let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for index in [round % 2, 1 - round % 2] {
            samples[index].push(consume(servers[index].port)?);
        }
    }
    let (amber, redis) = (median(&mut samples[0]), median(&mut samples[1]));
    println!(
        "XREADGROUP COUNT 1 + XACK, one consumer, {CONSUMED} entries: amber {amber:.0}/s, redis {redis:.0}/s, {:.2}x",
        amber / redis
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Figures of one server for one round of the memory and persistence comparison.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    bytes_per_entry: f64,
    /// The first SAVE, into an empty directory.
    save: f64,
    /// A second SAVE, which replaces the first one's file (as nearly every SAVE does).
    save_again: f64,
    restart: f64,
}

fn persistence_round(name: &'static str, binary: &Path, entries: u64) -> Result<Round> {
    let dir = scratch(&format!("stream-persist-{name}"))?;
    let mut round = Round::default();
    {
        let server = start(name, binary, &dir)?;
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
        let used = |stream: &mut TcpStream| -> Result<f64> {
            Ok(info_value(stream, "used_memory")?.parse().unwrap_or(0.0))
        };
        let before = used(&mut stream)?;
        fill(&mut stream, entries)?;
        round.bytes_per_entry = (used(&mut stream)? - before) / entries as f64;
        let started = Instant::now();
        command(&mut stream, "SAVE")?;
        round.save = started.elapsed().as_secs_f64();
        let started = Instant::now();
        command(&mut stream, "SAVE")?;
        round.save_again = started.elapsed().as_secs_f64();
    }
    round.restart = restart_time_with(name, binary, &dir, &[])?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(round)
}

fn memory_and_persistence(args: &BenchArgs) -> Result<()> {
    let entries = 1_000_000;
    let binaries = binaries(args);
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for index in [round % 2, 1 - round % 2] {
            let (name, binary) = &binaries[index];
            rounds[index].push(persistence_round(name, binary, entries)?);
        }
    }
    let pick = |index: usize, f: fn(&Round) -> f64| {
        median(&mut rounds[index].iter().map(f).collect::<Vec<_>>())
    };
    println!(
        "{entries} entries of two fields in {STREAMS} streams: used_memory per entry amber {:.1} B, redis {:.1} B ({:.2}x)",
        pick(0, |r| r.bytes_per_entry),
        pick(1, |r| r.bytes_per_entry),
        pick(0, |r| r.bytes_per_entry) / pick(1, |r| r.bytes_per_entry)
    );
    println!(
        "  SAVE amber {:.3} s, redis {:.3} s ({:.2}x faster); restart amber {:.3} s, redis {:.3} s ({:.2}x faster)",
        pick(0, |r| r.save),
        pick(1, |r| r.save),
        pick(1, |r| r.save) / pick(0, |r| r.save),
        pick(0, |r| r.restart),
        pick(1, |r| r.restart),
        pick(1, |r| r.restart) / pick(0, |r| r.restart)
    );
    println!(
        "  SAVE replacing the file amber {:.3} s, redis {:.3} s ({:.2}x faster)",
        pick(0, |r| r.save_again),
        pick(1, |r| r.save_again),
        pick(1, |r| r.save_again) / pick(0, |r| r.save_again),
    );
    Ok(())
}
