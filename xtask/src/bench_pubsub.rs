//! `cargo xtask bench --pubsub-only`: PUBLISH throughput with 1, 100 and 1000 subscribers on one
//! channel, Amber and Redis side by side in alternating rounds. Each subscriber is a thread
//! that reads and counts what it receives; the publisher is redis-benchmark running
//! `PUBLISH channel payload`. Reported: publishes per second and messages delivered per second
//! (publishes times subscribers, checked against what the subscribers counted).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{BenchArgs, ServerUnderTest, median, start};

/// The payload of every message.
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef";

/// Subscribers reading `channel` on `port`, each counting the messages it received.
struct Subscribers {
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Subscribers {
    fn connect(port: u16, count: usize) -> Result<Subscribers> {
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(count);
        for _ in 0..count {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n")?;
            let mut confirmation = [0u8; 64];
            let read = stream.read(&mut confirmation)?;
            if !confirmation[..read].starts_with(b"*3\r\n$9\r\nsubscribe") {
                bail!("unexpected SUBSCRIBE reply");
            }
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
            let (received, stop) = (received.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || count_messages(stream, &received, &stop))?,
            );
        }
        Ok(Subscribers {
            received,
            stop,
            threads,
        })
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        self.received.load(Ordering::Relaxed)
    }
}

/// Counts messages by their `*3\r\n$7\r\nmessage` header (payloads never contain it).
fn count_messages(mut stream: TcpStream, received: &AtomicU64, stop: &AtomicBool) {
    const HEADER: &[u8] = b"$7\r\nmessage\r\n";
    let mut buffer = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                carry.extend_from_slice(&buffer[..n]);
                let found = carry.windows(HEADER.len()).filter(|w| *w == HEADER).count();
                received.fetch_add(found as u64, Ordering::Relaxed);
                let keep = carry.len().min(HEADER.len() - 1);
                carry.drain(..carry.len() - keep);
            }
            Err(_) => {}
        }
    }
}

/// One round: publishes/s and deliveries/s for `subscribers` subscribers.
fn round(server: &ServerUnderTest, subscribers: usize, publishes: u32) -> Result<(f64, f64)> {
    let listening = Subscribers::connect(server.port, subscribers)?;
    let started = Instant::now();
    let status = crate::placement::client_command("redis-benchmark")
        .args(["-p", &server.port.to_string(), "-c", "10", "-q"])
        .args(["-n", &publishes.to_string()])
        .args(["PUBLISH", "bench", PAYLOAD])
        .output()
        .context("running redis-benchmark")?;
    if !status.status.success() {
        bail!("redis-benchmark failed");
    }
    let expected = u64::from(publishes) * subscribers as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while listening.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let received = listening.finish();
    if received < expected {
        bail!("{}: {received} of {expected} messages arrived", server.name);
    }
    Ok((f64::from(publishes) / elapsed, received as f64 / elapsed))
}

/// Runs the comparison and prints the table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-pubsub-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber = start("amber", &args.amber(), &scratch)?;
    let redis = start(
        "redis",
        std::path::Path::new("/usr/bin/redis-server"),
        &scratch,
    )?;
    println!(
        "PUBLISH to one channel, redis-benchmark -c 10, {} rounds alternating; medians (until every subscriber has every message)",
        args.rounds
    );
    println!(
        "{:>11} | {:>12} {:>12} {:>7} | {:>14} {:>14}",
        "subscribers", "amber pub/s", "redis pub/s", "ratio", "amber msg/s", "redis msg/s"
    );
    for subscribers in [1usize, 100, 1000] {
        // About the same number of deliveries per round whatever the fan-out.
        let publishes = (2_000_000 / subscribers as u32).clamp(2_000, 200_000);
        let mut results = [Vec::new(), Vec::new()];
        for round_index in 0..args.rounds {
            let order: [&ServerUnderTest; 2] = if round_index % 2 == 0 {
                [&amber, &redis]
            } else {
                [&redis, &amber]
            };
            for server in order {
                let index = usize::from(server.name == "redis");
                results[index].push(round(server, subscribers, publishes)?);
            }
        }
        let stat = |i: usize, pick: fn(&(f64, f64)) -> f64| {
            median(&mut results[i].iter().map(pick).collect::<Vec<_>>())
        };
        let (amber_pub, redis_pub) = (stat(0, |r| r.0), stat(1, |r| r.0));
        println!(
            "{subscribers:>11} | {amber_pub:>12.0} {redis_pub:>12.0} {:>6.2}x | {:>14.0} {:>14.0}",
            amber_pub / redis_pub,
            stat(0, |r| r.1),
            stat(1, |r| r.1),
        );
    }
    drop(amber);
    drop(redis);
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
