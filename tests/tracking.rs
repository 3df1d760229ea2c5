//! Client-side caching against Redis 7.0: the same sessions of tracking clients, writers and
//! redirection targets give byte-identical streams (replies, RESP3 `invalidate` pushes,
//! `__redis__:invalidate` messages, nulls on flushes) in the default, OPTIN, OPTOUT, NOLOOP
//! and BCAST modes, through expiry, transactions, scripts and a closed redirection target.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ServerProcess;

/// A connection read as raw bytes.
struct Raw(TcpStream);

impl Raw {
    fn connect(server: &ServerProcess) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Raw(stream)
    }

    fn send(&mut self, line: &str) {
        let args: Vec<&str> = line.split(' ').collect();
        let mut wire = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            wire.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        self.0.write_all(&wire).unwrap();
    }

    /// Everything that arrives within `wait`.
    fn drain(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut chunk = [0u8; 65536];
        while Instant::now() < deadline {
            match self.0.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        got
    }
}

/// A step: which connection sends what (`.` to only read), then what every connection
/// received is compared.
fn run(steps: &[(usize, &str)]) {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let mut sides: Vec<Vec<Raw>> = [&redis, &amber]
        .iter()
        .map(|server| (0..3).map(|_| Raw::connect(server)).collect())
        .collect();
    // Client ids differ between the servers: each side's are shown as <0>, <1>, <2>.
    let ids: Vec<Vec<String>> = sides
        .iter_mut()
        .map(|side| {
            side.iter_mut()
                .map(|conn| {
                    conn.send("CLIENT ID");
                    let reply = conn.drain(Duration::from_millis(100));
                    String::from_utf8_lossy(&reply[1..reply.len() - 2]).to_string()
                })
                .collect()
        })
        .collect();
    for (number, (who, line)) in steps.iter().enumerate() {
        let mut seen: Vec<Vec<Vec<u8>>> = Vec::new();
        for side in sides.iter_mut() {
            if let Some(id_of) = line.strip_prefix("redirect-to ") {
                // Redirect to the id of another connection of this side.
                let target: usize = id_of.parse().unwrap();
                side[target].send("CLIENT ID");
                let reply = side[target].drain(Duration::from_millis(150));
                let id = String::from_utf8_lossy(&reply[1..reply.len() - 2]).to_string();
                side[*who].send(&format!("CLIENT TRACKING on REDIRECT {id}"));
            } else if *line == "close" {
                side[*who].0.shutdown(std::net::Shutdown::Both).unwrap();
            } else if *line != "." {
                side[*who].send(line);
            }
            seen.push(
                side.iter_mut()
                    .map(|conn| conn.drain(Duration::from_millis(150)))
                    .collect(),
            );
        }
        let show = |streams: &Vec<Vec<u8>>, ids: &[String]| {
            streams
                .iter()
                .map(|s| {
                    let mut text = String::from_utf8_lossy(s).replace("\r\n", " ");
                    for (i, id) in ids.iter().enumerate() {
                        for context in ["id", "redirect", "tracking-redir-broken"] {
                            text = text.replace(
                                &format!("{context} :{id} "),
                                &format!("{context} :<{i}> "),
                            );
                        }
                    }
                    text
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(&seen[1], &ids[1]),
            show(&seen[0], &ids[0]),
            "step {number}: {who} {line} (amber, then redis)"
        );
    }
}

#[test]
fn default_mode_matches_redis() {
    run(&[
        // Only lazy expiry, so the expired key's invalidation comes at a known step.
        (2, "DEBUG SET-ACTIVE-EXPIRE 0"),
        (0, "HELLO 3"),
        (0, "CLIENT TRACKING on"),
        (0, "GET a"),
        (0, "MGET b c"),
        (1, "SET a 1"),
        (1, "SET a 2"),
        (0, "GET a"),
        (0, "SET b 1"),
        (0, "HSET h f v"),
        (0, "HGET h f"),
        (1, "MULTI"),
        (1, "HDEL h f"),
        (1, "DEL c"),
        (1, "EXEC"),
        (0, "EVAL return redis.call('get',KEYS[1]) 1 s"),
        (1, "SET s 1"),
        (0, "GET e"),
        (1, "SET e 1 PX 50"),
        (0, "GET e"),
        (2, "DEBUG SLEEP 0.2"),
        (0, "GET e"),
        (0, "CLIENT TRACKINGINFO"),
        (0, "FLUSHALL"),
        (0, "CLIENT TRACKING off"),
        (0, "GET a"),
        (1, "SET a 3"),
    ]);
}

#[test]
fn optin_optout_and_noloop_match_redis() {
    run(&[
        (0, "HELLO 3"),
        (0, "CLIENT TRACKING on OPTIN"),
        (0, "GET a"),
        (1, "SET a 1"),
        (0, "CLIENT CACHING yes"),
        (0, "GET a"),
        (1, "SET a 2"),
        (0, "CLIENT CACHING no"),
        (0, "CLIENT TRACKING on OPTOUT"),
        (0, "CLIENT TRACKING off"),
        (0, "CLIENT TRACKING on OPTOUT NOLOOP"),
        (0, "GET b"),
        (0, "SET b 1"),
        (0, "GET b"),
        (0, "CLIENT CACHING no"),
        (0, "GET c"),
        (1, "SET c 1"),
        (1, "SET b 2"),
        (0, "CLIENT TRACKINGINFO"),
        (0, "CLIENT TRACKING on BCAST"),
        (0, "CLIENT TRACKING on OPTIN OPTOUT"),
        (0, "CLIENT TRACKING on PREFIX x"),
    ]);
}

#[test]
fn broadcast_and_redirection_match_redis() {
    run(&[
        (2, "SUBSCRIBE __redis__:invalidate"),
        (1, "redirect-to 2"),
        (1, "GET k"),
        (0, "SET k 1"),
        (0, "HELLO 3"),
        (0, "CLIENT TRACKING on BCAST PREFIX user: PREFIX job:"),
        (1, "SET user:1 a"),
        (1, "SET other 1"),
        (1, "SET job:9 b"),
        (0, "CLIENT TRACKING on BCAST PREFIX user:x"),
        (0, "CLIENT TRACKING on BCAST PREFIX zz PREFIX z"),
        (0, "CLIENT TRACKINGINFO"),
        (0, "CLIENT TRACKING off"),
        (0, "CLIENT TRACKING on BCAST NOLOOP"),
        (0, "SET mine 1"),
        (1, "SET theirs 1"),
        (1, "FLUSHDB"),
        (1, "GET k"),
        (2, "close"),
        (0, "SET k 2"),
        (1, "CLIENT TRACKINGINFO"),
        (0, "CLIENT TRACKING on REDIRECT 999999"),
    ]);
}
