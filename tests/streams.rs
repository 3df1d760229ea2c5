//! Streams against Redis 7.0: random command sequences with consumer groups compared reply by
//! reply and by the final `DUMP` payload (byte for byte: the nodes are Redis's), blocking reads
//! woken by XADD across real clients, the shared `stream.rdb` fixture, and AOF rewrites that
//! load in Redis with the same digest.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use common::{Client, Frame, ServerProcess, digest, fixture, manifest_digest, simple, wait_for};
use proptest::prelude::*;

/// Both servers with small nodes, so sequences span several nodes.
fn pair() -> (ServerProcess, ServerProcess) {
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    for server in [&amber, &redis] {
        server
            .client()
            .cmd(&["CONFIG", "SET", "stream-node-max-entries", "4"]);
    }
    (amber, redis)
}

/// Replies that carry wall-clock times are compared by shape only.
fn normalize(command: &[String], reply: Frame) -> Frame {
    match command[0].as_str() {
        "XINFO" => Frame::Simple(b"<xinfo>".to_vec()),
        _ => reply,
    }
}

fn run(commands: &[Vec<String>]) {
    let (amber, redis) = pair();
    let (mut a, mut r) = (amber.client(), redis.client());
    for command in commands {
        let expected = normalize(command, r.cmd(command));
        let actual = normalize(command, a.cmd(command));
        assert_eq!(actual, expected, "reply to {command:?}");
    }
    for key in ["s1", "s2"] {
        let dumped = |c: &mut Client| without_clock(c.cmd(&["DUMP", key]));
        assert_eq!(
            dumped(&mut a),
            dumped(&mut r),
            "DUMP {key} after {commands:?}"
        );
        let value = |c: &mut Client| c.cmd(&["DEBUG", "DIGEST-VALUE", key]);
        assert_eq!(value(&mut a), value(&mut r), "DIGEST-VALUE {key}");
    }
}

/// A DUMP payload decoded, with the wall-clock times of consumer groups (seen and delivery
/// times) zeroed: everything else, the nodes' bytes included, must be equal.
fn without_clock(reply: Frame) -> Option<amber_rdb::Value> {
    let Frame::Bulk(payload) = reply else {
        return None;
    };
    let mut value = amber_rdb::parse_payload(&payload, true).unwrap();
    if let amber_rdb::Value::Stream(stream) = &mut value {
        for group in &mut stream.groups {
            group.pending.iter_mut().for_each(|p| p.delivery_time = 0);
            group.consumers.iter_mut().for_each(|c| c.seen_time = 0);
        }
    }
    Some(value)
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..40, 0u64..3).prop_map(|(ms, seq)| format!("{ms}-{seq}")),
        (1u64..40).prop_map(|ms| format!("{ms}-*")),
        Just("0-0".to_string()),
        Just("abc".to_string()),
    ]
}

fn range_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-".to_string()),
        Just("+".to_string()),
        (0u64..45).prop_map(|ms| ms.to_string()),
        (0u64..45, 0u64..3).prop_map(|(ms, seq)| format!("({ms}-{seq}")),
    ]
}

fn command() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![Just("s1"), Just("s2"), Just("str")];
    let group = prop_oneof![Just("g1"), Just("g2")];
    let consumer = prop_oneof![Just("alice"), Just("bob")];
    let field = prop_oneof![Just("f"), Just("g"), Just("12"), Just("long-field-name")];
    let words = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    prop_oneof![
        4 => (key.clone(), id(), field.clone(), 0u32..100000, prop::bool::ANY).prop_map(
            move |(k, id, f, v, two)| {
                let v = v.to_string();
                let mut c = words(vec!["XADD", k, &id, f, &v]);
                if two {
                    c.extend(words(vec!["other", "x"]));
                }
                c
            }
        ),
        1 => (key.clone(), 0u32..12, prop::bool::ANY).prop_map(move |(k, n, approx)| {
            let n = n.to_string();
            let how = if approx { "~" } else { "=" };
            words(vec!["XTRIM", k, "MAXLEN", how, &n])
        }),
        1 => (key.clone(), 0u64..40).prop_map(move |(k, ms)| {
            let ms = ms.to_string();
            words(vec!["XTRIM", k, "MINID", &ms])
        }),
        1 => (key.clone(), id(), field.clone(), 0u32..8).prop_map(move |(k, id, f, n)| {
            let n = n.to_string();
            words(vec!["XADD", k, "MAXLEN", "~", &n, &id, f, "v"])
        }),
        2 => (key.clone(), id()).prop_map(move |(k, id)| words(vec!["XDEL", k, &id])),
        2 => (key.clone(), range_id(), range_id(), 0u32..5).prop_map(move |(k, a, b, n)| {
            let n = n.to_string();
            words(vec!["XRANGE", k, &a, &b, "COUNT", &n])
        }),
        1 => (key.clone(), range_id(), range_id()).prop_map(move |(k, a, b)| {
            words(vec!["XREVRANGE", k, &b, &a])
        }),
        1 => key.clone().prop_map(move |k| words(vec!["XLEN", k])),
        1 => (key.clone(), id()).prop_map(move |(k, id)| {
            words(vec!["XREAD", "COUNT", "3", "STREAMS", k, &id])
        }),
        2 => (key.clone(), group.clone(), prop_oneof![Just("$"), Just("0")], prop::bool::ANY)
            .prop_map(move |(k, g, at, mk)| {
                let mut c = words(vec!["XGROUP", "CREATE", k, g, at]);
                if mk {
                    c.push("MKSTREAM".into());
                }
                c
            }),
        3 => (key.clone(), group.clone(), consumer.clone(), 1u32..4, prop::bool::ANY, prop::bool::ANY)
            .prop_map(move |(k, g, c, n, noack, history)| {
                let n = n.to_string();
                let mut cmd = words(vec!["XREADGROUP", "GROUP", g, c, "COUNT", &n]);
                if noack {
                    cmd.push("NOACK".into());
                }
                let from = if history { "0" } else { ">" };
                cmd.extend(words(vec!["STREAMS", k, from]));
                cmd
            }),
        2 => (key.clone(), group.clone(), id()).prop_map(move |(k, g, id)| {
            words(vec!["XACK", k, g, &id])
        }),
        1 => (key.clone(), group.clone()).prop_map(move |(k, g)| words(vec!["XPENDING", k, g])),
        1 => (key.clone(), group.clone(), consumer.clone(), id()).prop_map(move |(k, g, c, id)| {
            words(vec!["XCLAIM", k, g, c, "0", &id, "JUSTID"])
        }),
        1 => (key.clone(), group.clone(), consumer.clone()).prop_map(move |(k, g, c)| {
            words(vec!["XAUTOCLAIM", k, g, c, "0", "0", "COUNT", "2", "JUSTID"])
        }),
        1 => (key.clone(), group.clone(), consumer.clone()).prop_map(move |(k, g, c)| {
            words(vec!["XGROUP", "DELCONSUMER", k, g, c])
        }),
        1 => (key.clone(), group.clone(), id()).prop_map(move |(k, g, id)| {
            words(vec!["XGROUP", "SETID", k, g, &id])
        }),
        1 => (key.clone(), group).prop_map(move |(k, g)| words(vec!["XGROUP", "DESTROY", k, g])),
        1 => (key.clone(), (40u64..60)).prop_map(move |(k, ms)| {
            let id = format!("{ms}-0");
            words(vec!["XSETID", k, &id])
        }),
        1 => key.prop_map(move |k| words(vec!["XINFO", "STREAM", k])),
        1 => Just(words(vec!["SET", "str", "x"])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_stream_sequences_match_redis_reply_for_reply_and_byte_for_byte(
        commands in proptest::collection::vec(command(), 1..60)
    ) {
        run(&commands);
    }
}

#[test]
fn blocked_readers_are_served_in_order_by_xadd() {
    let (amber, redis) = pair();
    let mut replies = Vec::new();
    for server in [&amber, &redis] {
        let mut setup = server.client();
        setup.cmd(&["XADD", "s", "1-1", "a", "1"]);
        setup.cmd(&["XGROUP", "CREATE", "s", "g", "$"]);
        let mut plain = server.client();
        plain.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
        let mut grouped = server.client();
        grouped.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        let mut second = server.client();
        second.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "d",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        let mut timed = server.client();
        timed.send(&["XREAD", "BLOCK", "50", "STREAMS", "nothing", "$"]);
        wait_for(
            || common::info_field(&mut setup, "blocked_clients") == "4",
            "four blocked clients",
        );
        setup.cmd(&["XADD", "s", "2-1", "b", "2"]);
        let timed_out = timed.read();
        let served = (plain.read(), grouped.read());
        // The first group reader took the entry: the second stays blocked until the next.
        setup.cmd(&["XADD", "s", "3-1", "c", "3"]);
        let later = second.read();
        let pending = setup.cmd(&["XPENDING", "s", "g"]);
        replies.push((served, later, timed_out, pending));
    }
    assert_eq!(replies[0], replies[1]);
}

#[test]
fn the_stream_fixture_loads_with_redis_digest_and_dumps_as_redis() {
    let dir = common::temp_dir("stream-fixture");
    std::fs::copy(fixture("redis-7.0/stream.rdb"), dir.join("dump.rdb")).unwrap();
    let redis_dir = common::temp_dir("stream-fixture-redis");
    std::fs::copy(fixture("redis-7.0/stream.rdb"), redis_dir.join("dump.rdb")).unwrap();
    let amber = ServerProcess::amber_in(&dir, &[]);
    let redis = ServerProcess::redis_in(&redis_dir, &[]);
    let (mut a, mut r) = (amber.client(), redis.client());
    wait_for(|| r.cmd(&["PING"]) == simple("PONG"), "redis to load");
    let expected = manifest_digest("redis-7.0", "stream.rdb");
    assert_eq!(digest(&mut a), Frame::Simple(expected.into_bytes()));
    let Frame::Array(keys) = r.cmd(&["KEYS", "*"]) else {
        panic!("KEYS");
    };
    for key in keys {
        let Frame::Bulk(key) = key else { continue };
        assert_eq!(
            a.cmd(&[b"DUMP".to_vec(), key.clone()]),
            r.cmd(&[b"DUMP".to_vec(), key.clone()])
        );
        let groups = |c: &mut Client| c.cmd(&[b"XINFO".to_vec(), b"GROUPS".to_vec(), key.clone()]);
        assert_eq!(groups(&mut a), groups(&mut r));
    }
    // Saved again by Amber, the file loads in Redis with the same digest.
    assert_eq!(a.cmd(&["SAVE"]), simple("OK"));
    common::assert_redis_check_rdb(&dir.join("dump.rdb"));
    drop(redis);
    let reload = common::temp_dir("stream-fixture-back");
    std::fs::copy(dir.join("dump.rdb"), reload.join("dump.rdb")).unwrap();
    let back = ServerProcess::redis_in(&reload, &[]);
    let mut b = back.client();
    wait_for(
        || b.cmd(&["PING"]) == simple("PONG"),
        "redis to load Amber's file",
    );
    assert_eq!(digest(&mut b), digest(&mut a));
}

#[test]
fn a_rewritten_aof_with_streams_loads_in_redis_with_the_same_digest() {
    let amber = ServerProcess::amber(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut a = amber.client();
    a.cmd(&["XADD", "s", "1-1", "a", "1", "b", "2"]);
    a.cmd(&["XADD", "s", "2-1", "x", "y"]);
    a.cmd(&["XADD", "s", "3-1", "a", "3", "b", "4"]);
    a.cmd(&["XDEL", "s", "2-1"]);
    a.cmd(&["XGROUP", "CREATE", "s", "g", "0"]);
    a.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    a.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "idle"]);
    a.cmd(&["XADD", "empty", "MAXLEN", "0", "5-5", "k", "v"]);
    assert_eq!(
        a.cmd(&["BGREWRITEAOF"]),
        simple("Background append only file rewriting started")
    );
    let manifest = amber.dir.join("appendonlydir/appendonly.aof.manifest");
    wait_for(
        || {
            std::fs::read_to_string(&manifest)
                .is_ok_and(|text| text.contains("appendonly.aof.2.base.aof"))
        },
        "the rewrite to be installed",
    );
    let redis_dir = common::temp_dir("stream-aof-redis");
    copy_tree(
        &amber.dir.join("appendonlydir"),
        &redis_dir.join("appendonlydir"),
    );
    let redis = ServerProcess::redis_in(&redis_dir, &["--appendonly", "yes"]);
    let mut r = redis.client();
    wait_for(
        || r.cmd(&["PING"]) == simple("PONG"),
        "redis to load the AOF",
    );
    assert_eq!(digest(&mut r), digest(&mut a));
    // Node for node as Redis builds them; consumers are seen again when the file is replayed,
    // so the stream with a group is compared through its replies.
    assert_eq!(r.cmd(&["DUMP", "empty"]), a.cmd(&["DUMP", "empty"]));
    for command in [
        vec!["XRANGE", "s", "-", "+"],
        vec!["XPENDING", "s", "g"],
        vec!["XPENDING", "s", "g", "-", "+", "10", "alice"],
        vec!["DEBUG", "DIGEST-VALUE", "s"],
    ] {
        let (expected, actual) = (r.cmd(&command), a.cmd(&command));
        if command[0] == "XPENDING" && command.len() > 3 {
            // [id, consumer, idle, deliveries]: the idle time moves on.
            let shape = |f: Frame| match f {
                Frame::Array(rows) => rows.len(),
                _ => usize::MAX,
            };
            assert_eq!(shape(expected), shape(actual));
            continue;
        }
        assert_eq!(expected, actual, "{command:?}");
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn watch_is_invalidated_by_the_same_stream_commands_as_in_redis() {
    let commands: &[&[&str]] = &[
        &["XADD", "s", "*", "f", "v"],
        &["XDEL", "s", "1-1"],
        &["XDEL", "s", "9-9"],
        &["XTRIM", "s", "MAXLEN", "0"],
        &["XGROUP", "CREATE", "s", "g2", "0"],
        &["XGROUP", "CREATE", "fresh", "g", "0", "MKSTREAM"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
        &["XACK", "s", "g", "1-1"],
        &["XCLAIM", "s", "g", "d", "0", "1-1"],
        &["XSETID", "s", "99-0"],
        &["XGROUP", "SETID", "s", "g", "0"],
        &["XGROUP", "DESTROY", "s", "g"],
    ];
    let (amber, redis) = pair();
    let mut outcomes = Vec::new();
    for server in [&amber, &redis] {
        let mut seen = Vec::new();
        for command in commands {
            let mut setup = server.client();
            setup.cmd(&["FLUSHALL"]);
            setup.cmd(&["XADD", "s", "1-1", "a", "1"]);
            setup.cmd(&["XGROUP", "CREATE", "s", "g", "0"]);
            let mut watcher = server.client();
            let key = if command.contains(&"fresh") {
                "fresh"
            } else {
                "s"
            };
            watcher.cmd(&["WATCH", key]);
            let reply = setup.cmd(command);
            watcher.cmd(&["MULTI"]);
            watcher.cmd(&["PING"]);
            seen.push((reply, watcher.cmd(&["EXEC"])));
        }
        outcomes.push(seen);
    }
    for (index, command) in commands.iter().enumerate() {
        if command[0] == "XADD" {
            // The generated id differs; whether EXEC ran must not.
            assert_eq!(outcomes[0][index].1, outcomes[1][index].1, "{command:?}");
            continue;
        }
        assert_eq!(outcomes[0][index], outcomes[1][index], "{command:?}");
    }
}

/// kill -9 at random moments of a consumer-group workload under `appendfsync always`: after
/// each restart every acknowledged XADD is in the stream and every acknowledged XACK has left
/// the pending list.
#[test]
fn kill9_under_always_loses_no_acknowledged_xadd_or_xack() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = common::temp_dir("stream-crash");
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut added: Vec<String> = Vec::new();
    let mut acked: Vec<String> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for cycle in 0..12u64 {
        let server = ServerProcess::amber_in(&dir, &always);
        let mut checker = server.client();
        verify_survivors(&mut checker, &added, &acked, cycle);
        if cycle == 0 {
            checker.cmd(&["XGROUP", "CREATE", "jobs", "workers", "0", "MKSTREAM"]);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let port = server.port;
        let producer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let mut done = Vec::new();
                for n in 1.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("{}-{n}", cycle + 1);
                    client.send(&["XADD", "jobs", id.as_str(), "n", "1"]);
                    match client.read() {
                        Some(Frame::Bulk(reply)) if reply == id.as_bytes() => done.push(id),
                        _ => break,
                    }
                }
                done
            })
        };
        let consumer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(port);
                let mut done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    client.send(&[
                        "XREADGROUP",
                        "GROUP",
                        "workers",
                        "w",
                        "COUNT",
                        "5",
                        "STREAMS",
                        "jobs",
                        ">",
                    ]);
                    let ids = match client.read() {
                        Some(reply) => entry_ids(&reply),
                        None => break,
                    };
                    for id in ids {
                        client.send(&["XACK", "jobs", "workers", id.as_str()]);
                        match client.read() {
                            Some(Frame::Integer(1)) => done.push(id),
                            _ => return done,
                        }
                    }
                }
                done
            })
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(40 + seed % 150));
        drop(server.kill9());
        stop.store(true, Ordering::Relaxed);
        added.extend(producer.join().expect("producer"));
        acked.extend(consumer.join().expect("consumer"));
    }
    assert!(
        added.len() > 100 && acked.len() > 50,
        "{} added, {} acked",
        added.len(),
        acked.len()
    );
    let server = ServerProcess::amber_in(&dir, &always);
    verify_survivors(&mut server.client(), &added, &acked, 99);
}

/// The ids of the entries in an XREADGROUP reply.
fn entry_ids(reply: &Frame) -> Vec<String> {
    let Frame::Array(streams) = reply else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for stream in streams {
        let Frame::Array(parts) = stream else {
            continue;
        };
        let Some(Frame::Array(entries)) = parts.get(1) else {
            continue;
        };
        for entry in entries {
            if let Frame::Array(fields) = entry
                && let Some(Frame::Bulk(id)) = fields.first()
            {
                ids.push(String::from_utf8_lossy(id).into_owned());
            }
        }
    }
    ids
}

/// The ids that start each row of an XRANGE or extended XPENDING reply.
fn leading_ids(rows: &[Frame]) -> std::collections::HashSet<String> {
    rows.iter()
        .filter_map(|row| match row {
            Frame::Array(fields) => match fields.first() {
                Some(Frame::Bulk(id)) => Some(String::from_utf8_lossy(id).into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn verify_survivors(client: &mut Client, added: &[String], acked: &[String], cycle: u64) {
    let Frame::Array(entries) = client.cmd(&["XRANGE", "jobs", "-", "+"]) else {
        assert!(added.is_empty(), "the stream is gone (cycle {cycle})");
        return;
    };
    let present = leading_ids(&entries);
    for id in added {
        assert!(present.contains(id), "lost XADD {id} (cycle {cycle})");
    }
    let Frame::Array(pending) = client.cmd(&["XPENDING", "jobs", "workers", "-", "+", "1000000"])
    else {
        assert!(acked.is_empty(), "the group is gone (cycle {cycle})");
        return;
    };
    let pending = leading_ids(&pending);
    for id in acked {
        assert!(!pending.contains(id), "XACK of {id} lost (cycle {cycle})");
    }
}

/// A client blocked on `s` in a random blocking read.
#[derive(Debug, Clone)]
enum Reader {
    /// `XREAD [COUNT n] BLOCK ms STREAMS s $`
    Plain(Option<u8>),
    /// `XREADGROUP GROUP g <consumer> [COUNT n] [NOACK] BLOCK ms STREAMS s >`
    Group(&'static str, Option<u8>, bool),
}

fn reader() -> impl Strategy<Value = Reader> {
    let count = proptest::option::of(1u8..3);
    prop_oneof![
        count.clone().prop_map(Reader::Plain),
        (prop_oneof![Just("c1"), Just("c2")], count, prop::bool::ANY)
            .prop_map(|(consumer, count, noack)| Reader::Group(consumer, count, noack)),
    ]
}

/// A write that may wake readers, with ids that only grow.
fn blocking_write() -> impl Strategy<Value = Vec<String>> {
    let words = |v: &[&str]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    prop_oneof![
        4 => (0u8..2).prop_map(move |two| {
            let mut c = words(&["XADD", "s", "{id}", "f", "v"]);
            if two == 1 {
                c.extend(words(&["g", "w"]));
            }
            c
        }),
        1 => Just(words(&["XDEL", "s", "{last}"])),
        1 => Just(words(&["XTRIM", "s", "MAXLEN", "0"])),
        1 => Just(words(&["XGROUP", "DESTROY", "s", "g"])),
        1 => Just(words(&["DEL", "s"])),
        1 => Just(words(&["SET", "s", "x"])),
    ]
}

fn reader_command(reader: &Reader) -> Vec<String> {
    let mut command = Vec::new();
    let (count, tail): (Option<u8>, &[&str]) = match reader {
        Reader::Plain(count) => {
            command.push("XREAD".to_string());
            (*count, &["$"])
        }
        Reader::Group(consumer, count, noack) => {
            command.extend(["XREADGROUP", "GROUP", "g", consumer].map(String::from));
            if *noack {
                command.push("NOACK".into());
            }
            (*count, &[">"])
        }
    };
    if let Some(count) = count {
        command.extend(["COUNT".to_string(), count.to_string()]);
    }
    command.extend(["BLOCK", "400", "STREAMS", "s"].map(String::from));
    command.extend(tail.iter().map(|w| w.to_string()));
    command
}

/// Runs the readers and writes on one server: each reader's reply, then the stream's state.
fn run_blocking(server: &ServerProcess, readers: &[Reader], writes: &[Vec<String>]) -> Vec<Frame> {
    let mut writer = server.client();
    writer.cmd(&["XADD", "s", "1-1", "a", "1"]);
    writer.cmd(&["XGROUP", "CREATE", "s", "g", "$"]);
    let mut clients = Vec::new();
    for (index, reader) in readers.iter().enumerate() {
        let mut client = server.client();
        client.send(&reader_command(reader));
        wait_for(
            || common::info_field(&mut writer, "blocked_clients") == (index + 1).to_string(),
            "the reader to block",
        );
        clients.push(client);
    }
    let mut next = 2u64;
    for write in writes {
        let command: Vec<String> = write
            .iter()
            .map(|word| match word.as_str() {
                "{id}" => {
                    next += 1;
                    format!("{next}-1")
                }
                "{last}" => format!("{next}-1"),
                other => other.to_string(),
            })
            .collect();
        writer.cmd(&command);
        writer.cmd(&["PING"]);
    }
    let mut outcome: Vec<Frame> = clients
        .iter_mut()
        .map(|client| client.read().unwrap_or(Frame::Null))
        .collect();
    outcome.push(writer.cmd(&["XRANGE", "s", "-", "+"]));
    outcome.push(writer.cmd(&["XPENDING", "s", "g"]));
    outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Blocked XREAD / XREADGROUP clients get what Redis gives them, in Redis's order, whatever
    /// the writes that follow (new entries, deletions, a destroyed group, a deleted or retyped
    /// key) and the timeout.
    #[test]
    fn random_blocked_readers_are_served_as_redis_serves_them(
        readers in proptest::collection::vec(reader(), 1..5),
        writes in proptest::collection::vec(blocking_write(), 1..6),
    ) {
        let (amber, redis) = pair();
        let expected = run_blocking(&redis, &readers, &writes);
        let actual = run_blocking(&amber, &readers, &writes);
        prop_assert_eq!(actual, expected, "readers {:?} writes {:?}", readers, writes);
    }
}
