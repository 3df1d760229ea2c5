//! `cargo xtask bench --connections-only`: what idle connections cost each server, side by
//! side with Redis, in alternating rounds. Each round starts a fresh server, opens 10,000
//! connections that each send one `PING`, and reads the server's RSS one second later (buffers
//! as first used), fifteen seconds later (after both servers' idle-buffer shrinking), and two
//! seconds after every connection closed (what was given back).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::{BenchArgs, median, start_with};

/// Connections per round.
const CONNECTIONS: usize = 10_000;

/// One round's figures, in bytes.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// RSS growth per connection, one second after the PINGs.
    per_connection_1s: f64,
    /// The same, fifteen seconds after.
    per_connection_15s: f64,
    /// RSS two seconds after all connections closed, minus the RSS before they opened.
    left_after_close: f64,
}

/// One line of the table: its label, what it reads from a round, the unit and its name.
type Row = (&'static str, fn(&Round) -> f64, f64, &'static str);

/// Lets this process (and the servers it starts) open every connection.
fn raise_descriptor_limit() -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let wanted = (CONNECTIONS as u64 * 2 + 1024).min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).context("raising RLIMIT_NOFILE")
}

fn rss(pid: u32) -> f64 {
    crate::bench::rss_of(pid) as f64
}

fn round(name: &'static str, binary: &Path, dir: &Path) -> Result<Round> {
    let server = start_with(name, binary, dir, &["--maxclients", "30000"])?;
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss(pid);
    let mut connections = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        connections.push(TcpStream::connect(("127.0.0.1", server.port))?);
    }
    for connection in &mut connections {
        connection.write_all(b"PING\r\n")?;
    }
    let mut reply = [0u8; 7];
    for connection in &mut connections {
        connection.read_exact(&mut reply)?;
    }
    std::thread::sleep(Duration::from_secs(1));
    let at_1s = rss(pid);
    std::thread::sleep(Duration::from_secs(14));
    let at_15s = rss(pid);
    drop(connections);
    std::thread::sleep(Duration::from_secs(2));
    let closed = rss(pid);
    let per = |at: f64| (at - before) / CONNECTIONS as f64;
    Ok(Round {
        per_connection_1s: per(at_1s),
        per_connection_15s: per(at_15s),
        left_after_close: closed - before,
    })
}

/// Runs the comparison and prints its table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    raise_descriptor_limit()?;
    let scratch = std::env::temp_dir().join(format!("amber-bench-conns-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber_binary = args.amber();
    let binaries = [amber_binary.as_path(), Path::new("/usr/bin/redis-server")];
    let names = ["amber", "redis"];
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for index in 0..args.rounds {
        let order = if index % 2 == 0 { [0, 1] } else { [1, 0] };
        for server in order {
            rounds[server].push(round(names[server], binaries[server], &scratch)?);
        }
    }
    let stat = |server: usize, pick: fn(&Round) -> f64| {
        median(&mut rounds[server].iter().map(pick).collect::<Vec<_>>())
    };
    println!(
        "{CONNECTIONS} connections, one PING each; RSS; medians of {} alternating rounds",
        args.rounds
    );
    println!(
        "{:<40} {:>12} {:>12} {:>7}",
        "figure", "amber", "redis", "ratio"
    );
    let rows: [Row; 3] = [
        (
            "bytes per connection after 1 s",
            |r| r.per_connection_1s,
            1.0,
            "B",
        ),
        (
            "bytes per connection after 15 s",
            |r| r.per_connection_15s,
            1.0,
            "B",
        ),
        (
            "RSS left 2 s after all closed",
            |r| r.left_after_close,
            1024.0 * 1024.0,
            "MiB",
        ),
    ];
    for (label, pick, unit, suffix) in rows {
        let (amber, redis) = (stat(0, pick), stat(1, pick));
        println!(
            "{label:<40} {:>10.1}{suffix:<2} {:>10.1}{suffix:<2} {:>6.2}x",
            amber / unit,
            redis / unit,
            amber / redis
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
