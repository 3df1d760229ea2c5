//! Keyspace notifications, differentially: Amber and Redis 7.0 run the same command sequences
//! (seeded random ones over a few keys of every type, plus hand-picked cases for `new`,
//! `expired`, `rename_*`, `move_*`, `copy_to` and key misses) while a subscriber on each
//! listens to `__key*@*__:*`; the two message streams must be identical, in order.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::time::Duration;

use common::{Client, Frame, ServerProcess};

/// A pattern subscriber that collects what it receives.
struct Listener {
    client: Client,
}

impl Listener {
    fn start(server: &ServerProcess) -> Listener {
        let mut client = server.client();
        client.send(&["PSUBSCRIBE", "__key*@*__:*"]);
        client.read().expect("psubscribe confirmation");
        Listener { client }
    }

    /// Every message until a marker published after `commands` arrives: `channel message`.
    fn drain(&mut self, publisher: &mut Client) -> Vec<String> {
        publisher.cmd(&["PUBLISH", "__keyspace@0__:marker", "end"]);
        let mut seen = Vec::new();
        loop {
            let Some(Frame::Array(parts)) = self.client.read() else {
                panic!("the subscriber lost its connection");
            };
            let text = |frame: &Frame| match frame {
                Frame::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            };
            let channel = text(&parts[2]);
            let message = text(&parts[3]);
            if channel == "__keyspace@0__:marker" && message == "end" {
                return seen;
            }
            seen.push(format!("{channel} {message}"));
        }
    }
}

/// Runs `commands` on both servers with `classes` set; returns both message streams.
fn run_both(classes: &str, commands: &[Vec<String>]) -> (Vec<String>, Vec<String>) {
    let mut streams = Vec::new();
    for redis in [false, true] {
        let server = if redis {
            ServerProcess::redis(&[])
        } else {
            ServerProcess::amber(&[])
        };
        let mut client = server.client();
        client.cmd(&["CONFIG", "SET", "notify-keyspace-events", classes]);
        // Expiry only when a command looks, so both servers expire at the same moments.
        client.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        let mut listener = Listener::start(&server);
        for command in commands {
            if command[0] == "SLEEP" {
                std::thread::sleep(Duration::from_millis(command[1].parse().unwrap()));
                continue;
            }
            if command[0] == "DUMPTO" {
                // RESTORE of the DUMP of another key (of this server), with the options given;
                // `PX` makes it an already expired restore.
                let Frame::Bulk(payload) = client.cmd(&["DUMP", command[1].as_str()]) else {
                    continue;
                };
                let expired = command.iter().any(|word| word == "PX");
                let ttl = if expired { "1" } else { "0" };
                let mut restore: Vec<Vec<u8>> = vec![
                    b"RESTORE".to_vec(),
                    command[2].clone().into_bytes(),
                    ttl.as_bytes().to_vec(),
                    payload,
                ];
                if expired {
                    restore.push(b"ABSTTL".to_vec());
                }
                if command.iter().any(|word| word == "REPLACE") {
                    restore.push(b"REPLACE".to_vec());
                }
                client.cmd(&restore);
                continue;
            }
            client.cmd(command);
        }
        streams.push(listener.drain(&mut client));
    }
    let redis = streams.pop().unwrap();
    let amber = streams.pop().unwrap();
    (amber, redis)
}

fn commands(lines: &[&str]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|line| line.split(' ').map(str::to_string).collect())
        .collect()
}

fn assert_same(classes: &str, lines: &[&str]) {
    let (amber, redis) = run_both(classes, &commands(lines));
    assert!(!redis.is_empty(), "Redis published nothing for {lines:?}");
    assert_eq!(amber, redis, "for {lines:?}");
}

#[test]
fn config_get_shows_classes_in_redis_order() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    for (given, shown) in [("KEA", "AKE"), ("Ex$g", "g$xE"), ("nmK", "nKm"), ("", "")] {
        client.cmd(&["CONFIG", "SET", "notify-keyspace-events", given]);
        assert_eq!(
            client.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
            Frame::Array(vec![
                common::bulk("notify-keyspace-events"),
                common::bulk(shown)
            ])
        );
    }
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KQ"]),
        common::error(
            "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        )
    );
}

#[test]
fn generic_events_match_redis() {
    assert_same(
        "KEAn",
        &[
            "SET a 1",
            "SET b 2 EX 100",
            "EXPIRE a 100",
            "PERSIST a",
            "RENAME a c",
            "RENAME c b",
            "MOVE b 1",
            "SELECT 1",
            "COPY b d DB 0",
            "COPY b d DB 0 REPLACE",
            "SELECT 0",
            "DEL d nothing",
            "SET e 1",
            "EXPIRE e -1",
            "SET f 1 PX 1",
            "SLEEP 20",
            "GET f",
            "DUMPTO e2 r",
            "SET e2 v",
            "DUMPTO e2 r",
            "DUMPTO e2 r REPLACE",
            "DUMPTO e2 r2 REPLACE PX",
        ],
    );
}

#[test]
fn string_events_match_redis() {
    assert_same(
        "KEA",
        &[
            "SET s v",
            "SETNX s w",
            "SETNX t w",
            "SETEX u 100 v",
            "PSETEX u 100000 v",
            "MSET m1 1 m2 2",
            "MSETNX m1 1 m3 3",
            "GETSET s x",
            "APPEND s y",
            "APPEND new y",
            "INCR n",
            "INCRBY n 5",
            "DECR n",
            "INCRBYFLOAT n 1.5",
            "SETRANGE s 1 zz",
            "SETRANGE s 1 ",
            "GETDEL s",
            "GETEX u PERSIST",
            "GETEX u EX 100",
            "GETEX u PXAT 1",
            "SETBIT bits 7 1",
            "SETBIT bits 7 1",
            "BITFIELD bits SET u8 0 255",
            "BITOP OR dest bits",
            "BITOP AND dest none",
        ],
    );
}

#[test]
fn collection_events_match_redis() {
    assert_same(
        "KEA",
        &[
            "RPUSH l a b c d",
            "LPUSH l z",
            "LPUSHX nol a",
            "LINSERT l BEFORE b x",
            "LSET l 0 y",
            "LPOP l",
            "RPOP l 2",
            "LREM l 0 x",
            "LTRIM l 0 0",
            "LMOVE l l2 LEFT RIGHT",
            "RPUSH l3 only",
            "LMOVE l3 l3 LEFT RIGHT",
            "BLMOVE l3 l3 RIGHT LEFT 0",
            "BRPOPLPUSH l3 l3 0",
            "LMPOP 2 nol l2 LEFT COUNT 5",
            "SADD s a b c",
            "SADD s a",
            "SREM s a",
            "SMOVE s s2 b",
            "SPOP s",
            "SADD s3 1 2 3",
            "SINTERSTORE s4 s3 s2",
            "SUNIONSTORE s4 s3 s2",
            "SDIFFSTORE s4 nothing",
            "HSET h f 1 g 2",
            "HSETNX h f 3",
            "HSETNX h k 3",
            "HINCRBY h f 2",
            "HINCRBYFLOAT h g 0.5",
            "HDEL h f g k",
            "ZADD z 1 a 2 b 3 c",
            "ZADD z XX 1 a",
            "ZINCRBY z 1 a",
            "ZREM z a",
            "ZREMRANGEBYSCORE z 3 3",
            "ZADD z 5 e 6 f 7 g",
            "ZREMRANGEBYRANK z 0 0",
            "ZPOPMIN z",
            "ZPOPMAX z 5",
            "ZADD z2 1 a 2 b",
            "ZUNIONSTORE z3 1 z2",
            "ZINTERSTORE z3 2 z2 nothing",
            "ZRANGESTORE z4 z2 0 -1",
            "ZMPOP 1 z2 MIN COUNT 10",
            "RPUSH sortme 3 1 2",
            "SORT sortme STORE sorted",
            "SORT nothing STORE sorted",
        ],
    );
}

/// A small deterministic generator (the sequences are reproducible from the seed).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn stream_events_match_redis() {
    assert_same(
        "KEAn",
        &[
            "XADD s 1-1 f v",
            "XADD s MAXLEN 1 2-1 f v",
            "XADD s NOMKSTREAM 3-1 f v",
            "XADD none NOMKSTREAM 3-1 f v",
            "XDEL s 3-1",
            "XDEL s 9-9",
            "XTRIM s MAXLEN 0",
            "XTRIM s MAXLEN 0",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE fresh g $ MKSTREAM",
            "XADD s 4-1 f v",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XGROUP CREATECONSUMER s g bob",
            "XGROUP CREATECONSUMER s g bob",
            "XCLAIM s g carol 0 4-1",
            "XAUTOCLAIM s g dave 0 0",
            "XACK s g 4-1",
            "XGROUP SETID s g 0",
            "XGROUP DELCONSUMER s g bob",
            "XGROUP DELCONSUMER s g nobody",
            "XSETID s 10-0",
            "XGROUP DESTROY s g",
            "XGROUP DESTROY s g",
            "DEL s",
        ],
    );
}

#[test]
fn random_sequences_publish_what_redis_publishes() {
    const MENU: &[&str] = &[
        "SET {k} {v}",
        "DEL {k}",
        "INCR {k}",
        "APPEND {k} {v}",
        "EXPIRE {k} 100",
        "PERSIST {k}",
        "RENAME {k} {k2}",
        "RPUSH {k} {v}",
        "LPOP {k}",
        "LMOVE {k} {k2} LEFT LEFT",
        "SADD {k} {v}",
        "SREM {k} {v}",
        "SMOVE {k} {k2} {v}",
        "HSET {k} {v} {v}",
        "HDEL {k} {v}",
        "ZADD {k} 1 {v}",
        "ZREM {k} {v}",
        "ZPOPMIN {k}",
        "GET {k}",
        "COPY {k} {k2}",
        "COPY {k} {k2} REPLACE",
        "MOVE {k} 1",
        "LTRIM {k} 1 -1",
        "SPOP {k}",
        "ZINCRBY {k} 2 {v}",
        "HINCRBY {k} {v} 1",
        "SETRANGE {k} 1 {v}",
        "GETDEL {k}",
        "GETEX {k} EX 100",
        "SUNIONSTORE {k} {k2} {k}",
        "ZUNIONSTORE {k} 2 {k2} {k}",
        "RPOPLPUSH {k} {k2}",
        "SET {k} {v} EX 100 GET",
        "EXISTS {k}",
        "TYPE {k}",
        "LRANGE {k} 0 -1",
        "SMEMBERS {k}",
        "HGETALL {k}",
        "ZRANGE {k} 0 -1",
        "MGET {k} {k2}",
        "UNLINK {k} {k2}",
    ];
    for seed in [1u64, 7, 42, 99, 1234, 77777] {
        let mut state = seed;
        let lines: Vec<String> = (0..150)
            .map(|_| {
                let template = MENU[(next(&mut state) % MENU.len() as u64) as usize];
                let key = format!("k{}", next(&mut state) % 4);
                let other = format!("k{}", next(&mut state) % 4);
                let value = format!("v{}", next(&mut state) % 3);
                template
                    .replace("{k2}", &other)
                    .replace("{k}", &key)
                    .replace("{v}", &value)
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_same("KEAnm", &lines);
    }
}
