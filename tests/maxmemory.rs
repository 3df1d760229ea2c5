//! Memory limits against Redis 7.0: the `-OOM` refusals and `OBJECT FREQ`/`IDLETIME` replies
//! match Redis's; every eviction policy keeps memory under `maxmemory` and the volatile ones
//! never touch a key without a TTL; evicted keys reach the AOF and a real Redis replica as
//! `DEL`s and raise `evicted` events; and clients that never read, burst 100k requests or
//! announce a huge bulk leave the server up, its memory bounded, other clients served; and
//! under a write load far past the limit, RSS stays within the margin Redis needs.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::{Client, Frame, ServerProcess, bulk, info_field, wait_for};

fn used_memory(client: &mut Client) -> u64 {
    info_field(client, "used_memory").parse().unwrap()
}

fn ok(client: &mut Client, args: &[&str]) {
    assert_eq!(client.cmd(args), common::simple("OK"), "{args:?}");
}

/// The same session on both servers gives the same replies: refusals under `maxmemory`, and
/// the `OBJECT` subcommands that depend on the policy.
#[test]
fn refusals_and_object_replies_match_redis() {
    let session: &[&[&str]] = &[
        &["SET", "x", "123"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["SET", "x", "1"],
        &["GET", "x"],
        &["APPEND", "x", "1"],
        &["DEL", "x"],
        &["EVAL", "redis.call('set','x',1) return 1", "1", "x"],
        &["EVAL", "return redis.call('get','x')", "1", "x"],
        &[
            "EVAL",
            "#!lua flags=allow-oom\nredis.call('set','y',1) return 1",
            "1",
            "y",
        ],
        &[
            "EVAL",
            "local t = redis.pcall('set','x',1) return t['err']",
            "1",
            "x",
        ],
        &["MULTI"],
        &["GET", "x"],
        &["DISCARD"],
        &["CONFIG", "SET", "maxmemory", "0"],
        &["SET", "k", "v"],
        &["OBJECT", "FREQ", "k"],
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        &["OBJECT", "IDLETIME", "k"],
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        &["CONFIG", "SET", "maxmemory-policy", "bogus"],
        &["CONFIG", "GET", "maxmemory-policy"],
        &["CONFIG", "SET", "maxmemory-clients", "10%"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CONFIG", "SET", "maxmemory-clients", "2mb"],
        &["CONFIG", "GET", "maxmemory-clients"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT", "on"],
    ];
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let (mut a, mut r) = (amber.client(), redis.client());
    for command in session {
        assert_eq!(a.cmd(command), r.cmd(command), "{command:?}");
    }
    // The FREQ given to RESTORE is kept under LFU (read back before it decays).
    for client in [&mut a, &mut r] {
        ok(
            client,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        );
        let payload = dump_bytes(client, "k");
        client.send(&[b"RESTORE".as_slice(), b"r", b"0", &payload, b"FREQ", b"42"]);
        assert_eq!(client.read().unwrap(), common::simple("OK"));
        assert_eq!(client.cmd(&["OBJECT", "FREQ", "r"]), Frame::Integer(42));
    }
}

fn dump_bytes(client: &mut Client, key: &str) -> Vec<u8> {
    match client.cmd(&["DUMP", key]) {
        Frame::Bulk(payload) => payload,
        other => panic!("DUMP gave {other:?}"),
    }
}

/// Fills a server just past a limit 200 KiB above its current use, with half the keys
/// volatile, under each policy: memory ends within the limit (plus Redis's 4 KiB test
/// margin) and the volatile policies evict only keys with a TTL.
#[test]
fn every_policy_keeps_memory_within_the_limit() {
    let server = ServerProcess::amber(&["--latency-tracking", "no"]);
    let mut client = server.client();
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        ok(&mut client, &["FLUSHALL"]);
        ok(&mut client, &["CONFIG", "SET", "maxmemory", "0"]);
        let limit = used_memory(&mut client) + 200 * 1024;
        ok(&mut client, &["CONFIG", "SET", "maxmemory-policy", policy]);
        ok(
            &mut client,
            &["CONFIG", "SET", "maxmemory", &limit.to_string()],
        );
        for i in 0..6000 {
            let key = format!("key:{i}");
            if i % 2 == 1 {
                client.send(&["SETEX", &key, "10000", "value-value-value"]);
            } else if policy.starts_with("allkeys") {
                client.send(&["SET", &key, "value-value-value"]);
            } else {
                // Persistent keys are written before the limit is reached, then kept.
                if i >= 1000 {
                    continue;
                }
                client.send(&["SET", &key, "value-value-value"]);
            }
            let reply = client.read().unwrap();
            assert!(
                !matches!(reply, Frame::Error(_)),
                "{policy}: {reply:?} at {i}"
            );
        }
        let used = used_memory(&mut client);
        assert!(used < limit + 4096, "{policy}: {used} over {limit}");
        assert!(
            info_field(&mut client, "evicted_keys")
                .parse::<u64>()
                .unwrap()
                > 0
        );
        if policy.starts_with("volatile") {
            for i in (0..1000).step_by(2) {
                assert_eq!(
                    client.cmd(&["EXISTS", &format!("key:{i}")]),
                    Frame::Integer(1),
                    "{policy} evicted a persistent key"
                );
            }
        }
        ok(&mut client, &["CONFIG", "RESETSTAT"]);
    }
}

/// Evictions go to the AOF and to a Redis replica as `DEL`s, and publish `evicted` events;
/// the replica ends with the master's dataset.
#[test]
fn evicted_keys_reach_the_aof_the_replica_and_subscribers() {
    let master = ServerProcess::amber(&["--appendonly", "yes", "--notify-keyspace-events", "Ee"]);
    let replica = ServerProcess::redis(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut client = master.client();
    let mut replica_client = replica.client();
    wait_for(
        || info_field(&mut replica_client, "master_link_status") == "up",
        "the replica to connect",
    );
    let mut subscriber = master.client();
    subscriber.cmd(&["SUBSCRIBE", "__keyevent@0__:evicted"]);
    for i in 0..50 {
        ok(&mut client, &["SET", &format!("asdf{i}"), "x"]);
    }
    ok(
        &mut client,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    ok(&mut client, &["CONFIG", "SET", "maxmemory", "1"]);
    wait_for(
        || client.cmd(&["DBSIZE"]) == Frame::Integer(0),
        "every key to be evicted",
    );
    let mut evicted = Vec::new();
    for _ in 0..50 {
        match subscriber.read().unwrap() {
            Frame::Array(parts) => evicted.push(parts[2].clone()),
            other => panic!("unexpected message {other:?}"),
        }
    }
    evicted.sort_by_key(|key| format!("{key:?}"));
    evicted.dedup();
    assert_eq!(evicted.len(), 50);
    ok(&mut client, &["CONFIG", "SET", "maxmemory", "0"]);
    ok(&mut client, &["SET", "after", "1"]);
    wait_for(
        || replica_client.cmd(&["GET", "after"]) == bulk("1"),
        "the replica to catch up",
    );
    assert_eq!(replica_client.cmd(&["DBSIZE"]), Frame::Integer(1));
    assert_eq!(info_field(&mut client, "evicted_keys"), "50");
    let aof_dir = master.dir.join("appendonlydir");
    let incremental = std::fs::read_dir(&aof_dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().ends_with(".incr.aof"))
        .expect("an incremental AOF");
    let text = String::from_utf8_lossy(&std::fs::read(incremental.path()).unwrap()).into_owned();
    assert_eq!(text.matches("$3\r\nDEL\r\n").count(), 50, "{text}");
}

/// A client that sends 100k GETs of a 100 KB value and never reads, a 100k-request pipeline
/// sent at once, and a bulk header announcing 2 GB: the server stays up, its heap bounded,
/// and another client is served meanwhile.
#[test]
fn abusive_clients_leave_memory_bounded() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let big = "x".repeat(100_000);
    ok(&mut client, &["SET", "big", &big]);
    let baseline = used_memory(&mut client);

    // Never reads: the server stops reading it once its replies back up.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    silent
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000);
    for _ in 0..100 {
        if silent.write_all(&request).is_err() {
            break; // the kernel buffers are full: the server is not reading it
        }
    }
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
    let held = used_memory(&mut client).saturating_sub(baseline);
    assert!(held < 8 << 20, "a silent client holds {held} bytes");

    // A burst of 100k requests at once, read only at the end.
    let mut burst = server.client();
    let mut wire = Vec::new();
    for i in 0..100_000 {
        let key = format!("k{i}");
        wire.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes(),
        );
    }
    let port = server.port;
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(&wire).unwrap();
        stream
    });
    let burst_stream = sender.join().unwrap();
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
    drop(burst_stream);
    burst.cmd(&["PING"]);

    // A 2 GB bulk header: refused with Redis's error, the connection closed.
    let mut huge = server.client();
    huge.send_raw(b"*2\r\n$3\r\nGET\r\n$2147483648\r\n");
    assert_eq!(
        huge.read(),
        Some(common::error("ERR Protocol error: invalid bulk length"))
    );
    assert_eq!(huge.read(), None);
    drop(silent);
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
    let held = used_memory(&mut client).saturating_sub(baseline);
    assert!(held < 24 << 20, "the server holds {held} bytes more");
}

/// `maxmemory-clients`: connections holding the most buffer memory are closed first, a
/// `CLIENT NO-EVICT on` connection never is, and no key is evicted for their sake.
#[test]
fn client_eviction_closes_the_biggest_clients() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    ok(&mut client, &["CLIENT", "NO-EVICT", "on"]);
    ok(&mut client, &["CONFIG", "SET", "maxmemory-clients", "1mb"]);
    let mut hogs = Vec::new();
    for _ in 0..10 {
        let mut hog = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        // An incomplete request of 200 KB: it stays in the query buffer.
        hog.write_all(b"*2\r\n$3\r\nSET\r\n$1000000\r\n").unwrap();
        hog.write_all(&vec![b'x'; 200_000]).unwrap();
        hogs.push(hog);
    }
    wait_for(
        || {
            info_field(&mut client, "evicted_clients")
                .parse::<u64>()
                .unwrap()
                >= 5
        },
        "clients to be evicted",
    );
    assert_eq!(info_field(&mut client, "evicted_keys"), "0");
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
    let Frame::Bulk(list) = client.cmd(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST is a bulk string")
    };
    let list = String::from_utf8(list).unwrap();
    assert!(list.lines().count() <= 6, "{list}");
    assert!(list.contains("flags=e"), "{list}");
}

/// `client-output-buffer-limit normal`: a client whose replies back up past the hard limit is
/// closed, with Redis's log line, and the server goes on.
#[test]
fn a_client_over_its_output_limit_is_closed() {
    let server = ServerProcess::amber(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut client = server.client();
    ok(&mut client, &["SET", "big", &"x".repeat(400_000)]);
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    silent
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(200);
    let _ = silent.write_all(&request);
    wait_for(
        || {
            server
                .log()
                .contains("scheduled to be closed ASAP for overcoming of output buffer limits.")
        },
        "the client to be closed",
    );
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
}

/// A Redis RDB written under an LFU or LRU policy carries each key's counter or idle time;
/// Amber loads them (Redis's objectSetLRUOrLFU).
#[test]
fn access_records_load_from_a_redis_rdb() {
    for (policy, option, value, read) in [
        ("allkeys-lfu", "FREQ", "42", "FREQ"),
        ("allkeys-lru", "IDLETIME", "5000", "IDLETIME"),
    ] {
        let mut redis = ServerProcess::redis(&["--maxmemory-policy", policy]);
        redis.keep_dir = true;
        let mut client = redis.client();
        ok(&mut client, &["SET", "k", "v"]);
        let payload = dump_bytes(&mut client, "k");
        client.send(&[
            b"RESTORE".as_slice(),
            b"r",
            b"0",
            &payload,
            option.as_bytes(),
            value.as_bytes(),
        ]);
        assert_eq!(client.read().unwrap(), common::simple("OK"));
        ok(&mut client, &["SAVE"]);
        let dir = redis.dir.clone();
        drop(client);
        drop(redis);
        let amber = ServerProcess::amber_in(&dir, &["--maxmemory-policy", policy]);
        let mut client = amber.client();
        let Frame::Integer(found) = client.cmd(&["OBJECT", read, "r"]) else {
            panic!("OBJECT {read} failed")
        };
        let expected: i64 = value.parse().unwrap();
        assert!(
            (expected..expected + 5).contains(&found),
            "{policy}: {found} instead of {expected}"
        );
    }
}

/// Anonymous resident memory of process `pid` (`RssAnon`), in bytes.
fn rss_of(pid: u32) -> u64 {
    // Anonymous memory only: the heap, stacks and buffers. A debug build's code pages alone
    // are 20 MB of file-backed RSS, which says nothing about the data's overhead.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("RssAnon:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        * 1024
}

/// Writes 150 MB of 1 KB strings, pipelined, into a server limited to 32 MB with
/// `allkeys-lru`; returns the highest anonymous RSS seen while it wrote and just after.
fn peak_rss_under_writes(server: &ServerProcess) -> u64 {
    let mut client = server.client();
    let value = "v".repeat(1000);
    let mut peak = 0;
    for batch in 0..1500 {
        for i in 0..100 {
            client.send(&["SET", &format!("key:{batch}:{i}"), &value]);
        }
        for _ in 0..100 {
            let reply = client.read().unwrap();
            assert!(!matches!(reply, Frame::Error(_)), "{reply:?}");
        }
        if batch % 10 == 0 {
            peak = peak.max(rss_of(server.pid()));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    peak.max(rss_of(server.pid()))
}

/// Under a write load far past `maxmemory`, Amber's RSS stays within the limit plus the
/// margin Redis needs in the same run (with some slack for allocator differences).
#[test]
fn rss_stays_within_maxmemory_plus_redis_margin_under_a_write_load() {
    const LIMIT: u64 = 32 << 20;
    let flags = ["--maxmemory", "32mb", "--maxmemory-policy", "allkeys-lru"];
    let redis = ServerProcess::redis(&flags);
    let amber = ServerProcess::amber(&flags);
    let redis_peak = peak_rss_under_writes(&redis);
    let amber_peak = peak_rss_under_writes(&amber);
    let redis_margin = redis_peak.saturating_sub(LIMIT);
    let amber_margin = amber_peak.saturating_sub(LIMIT);
    eprintln!(
        "peak RSS with maxmemory 32 MiB: Amber {:.1} MiB, Redis {:.1} MiB",
        amber_peak as f64 / 1048576.0,
        redis_peak as f64 / 1048576.0
    );
    assert!(
        amber_margin <= redis_margin + redis_margin / 4 + (8 << 20),
        "Amber's RSS went {:.1} MiB past maxmemory, Redis's {:.1} MiB",
        amber_margin as f64 / 1048576.0,
        redis_margin as f64 / 1048576.0
    );
    let mut client = amber.client();
    assert!(
        info_field(&mut client, "evicted_keys")
            .parse::<u64>()
            .unwrap()
            > 100_000
    );
}

/// Eviction's own invalidations cannot feed more eviction: ten tracking connections cache
/// 300 keys, `maxmemory` drops 40 KB below use, and twenty commands pipelined behind the
/// `CONFIG SET` each run an eviction check. The invalidations the first eviction queued count
/// as memory until written, so unless they are written before the next check, every command
/// evicts another slice and queues more until the keyspace drains (Redis 7.0.15 drains to 0
/// here, its known problem #8069; it keeps the keys only when each command waits for a reply).
#[test]
fn tracking_invalidations_do_not_feed_eviction() {
    let server = ServerProcess::amber(&["--latency-tracking", "no"]);
    let mut client = server.client();
    ok(
        &mut client,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    ok(
        &mut client,
        &["CONFIG", "SET", "maxmemory-eviction-tenacity", "100"],
    );
    let mut trackers: Vec<Client> = (0..10).map(|_| server.client()).collect();
    for tracker in &mut trackers {
        tracker.cmd(&["HELLO", "3"]);
        ok(tracker, &["CLIENT", "TRACKING", "on"]);
    }
    let keys: Vec<String> = (0..300)
        .map(|i| format!("{i}{}", "x".repeat(1000)))
        .collect();
    for key in &keys {
        ok(&mut client, &["SET", key, "x"]);
        for tracker in &mut trackers {
            assert_eq!(tracker.cmd(&["GET", key]), bulk("x"));
        }
    }
    let limit = used_memory(&mut client) - 40_000;
    let mut wire = BytesMut::new();
    Frame::command(["CONFIG", "SET", "maxmemory", &limit.to_string()]).encode(&mut wire);
    for _ in 0..20 {
        Frame::command(["DBSIZE"]).encode(&mut wire);
    }
    client.send_raw(&wire);
    assert_eq!(client.read(), Some(common::simple("OK")));
    for _ in 0..20 {
        assert!(matches!(client.read(), Some(Frame::Integer(_))));
    }
    let Frame::Integer(left) = client.cmd(&["DBSIZE"]) else {
        panic!("DBSIZE is an integer");
    };
    let evicted: u64 = info_field(&mut client, "evicted_keys").parse().unwrap();
    assert!((200..300).contains(&left), "{left} keys left");
    assert!((10..=100).contains(&evicted), "{evicted} keys evicted");
    // Every tracker was told about at least one evicted key.
    for tracker in &mut trackers {
        let Some(Frame::Push(push)) = tracker.read() else {
            panic!("an invalidation push");
        };
        assert_eq!(push.first(), Some(&bulk("invalidate")));
    }
}
