//! Forkless snapshots (`BGSAVE FORKLESS`, `bgsave-method forkless`) against the real binary:
//! the file is the dataset at the snapshot's start whatever the clients write meanwhile
//! (checked by loading it in Redis 7.0 and comparing `DEBUG DIGEST`), and a `kill -9` in the
//! middle leaves the old file and, after a restart, no temp file.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber_protocol::Frame;
use common::{Client, ServerProcess, assert_redis_check_rdb, digest, info_field, simple, wait_for};

/// splitmix64, for reproducible operation sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An expiry far enough ahead to stay the same in the image and in the digest.
const FAR_FUTURE_MS: u64 = 4_000_000_000_000;

/// Sends `commands` pipelined and reads every reply.
fn pipeline(client: &mut Client, commands: &[Vec<String>]) -> Vec<Frame> {
    for chunk in commands.chunks(500) {
        for command in chunk {
            client.send(command);
        }
    }
    commands
        .iter()
        .map(|_| client.read().expect("a reply"))
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(' ').map(str::to_string).collect()
}

/// Strings, small and large collections of every type in databases 0 to 2, some with a TTL.
fn populate(client: &mut Client) {
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "40"]);
    let mut commands = Vec::new();
    for db in 0..3 {
        commands.push(words(&format!("SELECT {db}")));
        for i in 0..1500 {
            let width = if i % 50 == 0 { 300 } else { 5 };
            let fields: Vec<String> = (0..width).map(|f| format!("f{f} v{i}-{f}")).collect();
            commands.push(words(&format!("HSET h{i} {}", fields.join(" "))));
            let items: Vec<String> = (0..width).map(|f| format!("item{f}")).collect();
            commands.push(words(&format!("RPUSH l{i} {}", items.join(" "))));
            let members: Vec<String> = (0..width).map(|f| format!("m{f}")).collect();
            commands.push(words(&format!("SADD s{i} {}", members.join(" "))));
            let scored: Vec<String> = (0..width).map(|f| format!("{f}.5 z{f}")).collect();
            commands.push(words(&format!("ZADD z{i} {}", scored.join(" "))));
            commands.push(words(&format!("XADD x{} * a {i}", i % 100)));
            if i % 3 == 0 {
                commands.push(words(&format!("PEXPIREAT h{i} {}", FAR_FUTURE_MS + i)));
            }
        }
    }
    commands.push(words("SELECT 0"));
    for reply in pipeline(client, &commands) {
        assert!(!matches!(reply, Frame::Error(_)), "{reply:?}");
    }
}

/// One random write of mix `mix`, as a command.
fn random_write(rng: &mut Rng, mix: u64) -> Vec<String> {
    let i = rng.below(1600);
    let key_kind = ["h", "l", "s", "z", "key:"][rng.below(5) as usize];
    let key = if key_kind == "key:" {
        format!("key:{}", rng.below(21000))
    } else {
        format!("{key_kind}{i}")
    };
    // Each mix favours some operations: overwrites, changes in place, deletes and flushes,
    // keys moving between databases.
    let weights: [u64; 4] = match mix {
        0 => [8, 1, 1, 1],
        1 => [1, 8, 1, 1],
        2 => [1, 1, 8, 1],
        _ => [1, 1, 1, 8],
    };
    let mut pick = rng.below(weights.iter().sum());
    let group = weights
        .iter()
        .position(|w| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .unwrap_or(0);
    let text = match (group, rng.below(4)) {
        (0, 0) => format!("SET {key} new{}", rng.next()),
        (0, 1) => format!("SET fresh:{} v", rng.next()),
        (0, 2) => format!("SET {key} {} PX 100000000", rng.next()),
        (0, _) => format!("GETSET key:{} replaced", rng.below(21000)),
        (1, 0) => format!("HSET h{i} f{} changed", rng.below(400)),
        (1, 1) => format!("LPUSH l{i} pushed"),
        (1, 2) => format!("ZINCRBY z{i} 1 z{}", rng.below(300)),
        (1, _) => format!("SADD s{i} added{}", rng.below(10)),
        (2, 0) => format!("DEL {key}"),
        (2, 1) => format!("UNLINK {key}"),
        (2, 2) => format!("PEXPIREAT {key} 1"),
        (2, _) if rng.below(40) == 0 => "FLUSHDB".to_string(),
        (2, _) => format!("XADD x{} * b c", rng.below(100)),
        (_, 0) => format!("RENAME {key} renamed:{}", rng.below(50)),
        (_, 1) => format!("MOVE {key} {}", 1 + rng.below(2)),
        (_, 2) if rng.below(20) == 0 => "SWAPDB 0 1".to_string(),
        (_, 2) => format!("PEXPIREAT {key} {}", FAR_FUTURE_MS + rng.below(1000)),
        (_, _) => format!("COPY {key} copied:{} REPLACE", rng.below(50)),
    };
    words(&text)
}

/// Writes with mix `mix` from a connection until `stop`, in databases 0 to 2.
fn write_load(port: u16, seed: u64, mix: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut client = Client::connect(port);
    let mut rng = Rng(seed);
    let mut writes = 0;
    while !stop.load(Ordering::Relaxed) {
        client.cmd(&["SELECT", &rng.below(3).to_string()]);
        let batch: Vec<Vec<String>> = (0..20).map(|_| random_write(&mut rng, mix)).collect();
        pipeline(&mut client, &batch);
        writes += batch.len() as u64;
    }
    writes
}

/// Starts [`write_load`] (mix 1) on a thread; it runs until the flag returned is set.
fn spawn_write_load(port: u16, seed: u64) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || write_load(port, seed, 1, stop))
    };
    (stop, load)
}

fn text(frame: Frame) -> String {
    match frame {
        Frame::Bulk(bytes) | Frame::Simple(bytes) => String::from_utf8(bytes).expect("text"),
        other => panic!("expected a string reply, got {other:?}"),
    }
}

/// Takes the digest and starts the snapshot in one batch: both arrive in one write, so the
/// server runs them back to back, with no other client's command between.
fn digest_then_bgsave(client: &mut Client, args: &[&str]) -> String {
    let mut wire = bytes::BytesMut::new();
    Frame::command(["DEBUG", "DIGEST"]).encode(&mut wire);
    Frame::command(args).encode(&mut wire);
    client.send_raw(&wire);
    let before = text(client.read().expect("digest"));
    assert_eq!(client.read(), Some(simple("Background saving started")));
    before
}

fn wait_save_done(client: &mut Client) {
    wait_for(
        || info_field(client, "rdb_bgsave_in_progress") == "0",
        "the background save ends",
    );
    assert_eq!(info_field(client, "rdb_last_bgsave_status"), "ok");
}

/// The digest Redis 7.0 computes after loading `dump`.
fn digest_in_redis(dump: &Path) -> String {
    let dir = common::temp_dir("forkless-redis-load");
    std::fs::copy(dump, dir.join("dump.rdb")).expect("copy the dump");
    let redis = ServerProcess::redis_in(&dir, &[]);
    let mut client = redis.client();
    text(digest(&mut client))
}

#[test]
fn a_forkless_save_under_writes_is_the_dataset_at_its_start() {
    for mix in 0..4u64 {
        let server = ServerProcess::amber(&["--rdb-key-save-delay", "25"]);
        let mut control = server.client();
        populate(&mut control);
        let stop = Arc::new(AtomicBool::new(false));
        let loads: Vec<_> = (0..2)
            .map(|n| {
                let stop = stop.clone();
                let port = server.port;
                std::thread::spawn(move || write_load(port, mix * 10 + n, mix, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let before = digest_then_bgsave(&mut control, &["BGSAVE", "FORKLESS"]);
        wait_save_done(&mut control);
        stop.store(true, Ordering::Relaxed);
        let writes: u64 = loads.into_iter().map(|t| t.join().expect("load")).sum();
        assert!(writes > 1000, "mix {mix}: only {writes} writes ran");
        let now = text(digest(&mut control));
        assert_ne!(now, before, "mix {mix}: the load changed nothing");
        let dump = server.dir.join("dump.rdb");
        assert_redis_check_rdb(&dump);
        assert_eq!(
            digest_in_redis(&dump),
            before,
            "mix {mix}: Redis's load of the image"
        );
        assert!(server.log().contains("Background forkless saving started"));
    }
}

/// INV-SHARED-SET: sets, streams, long strings and big hashes, sorted sets and lists are
/// handed to the writer by reference. With the writer slowed down, every one of them is still queued when
/// the commands below change it, so each change must copy the value first; the image is the
/// dataset before the changes.
#[test]
fn shared_values_changed_while_the_writer_holds_them_keep_their_old_form() {
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "1000"]);
    let mut client = server.client();
    let mut fill = Vec::new();
    for i in 0..200 {
        fill.push(words(&format!("SADD set{i} a b c {i}")));
        fill.push(words(&format!("SADD ints{i} 1 2 3 {i}")));
        for n in 1..=5 {
            fill.push(words(&format!("XADD stream{i} {n}-1 field {n}")));
        }
    }
    for i in 0..20 {
        // Past the packed encodings' limits: a hash table, a skip list, a deque.
        let fields: Vec<String> = (0..600).map(|n| format!("f{n} v{n}")).collect();
        fill.push(words(&format!("HSET hash{i} {}", fields.join(" "))));
        let members: Vec<String> = (0..200).map(|n| format!("{n} m{n}")).collect();
        fill.push(words(&format!("ZADD zset{i} {}", members.join(" "))));
        let elements: Vec<String> = (0..2000).map(|n| format!("element-{n}")).collect();
        fill.push(words(&format!("RPUSH list{i} {}", elements.join(" "))));
    }
    let long = "x".repeat(100_000);
    for i in 0..5 {
        fill.push(vec!["SET".into(), format!("long{i}"), long.clone()]);
    }
    pipeline(&mut client, &fill);
    for (key, encoding) in [("hash0", "hashtable"), ("zset0", "skiplist")] {
        assert_eq!(
            client.cmd(&["OBJECT", "ENCODING", key]),
            Frame::Bulk(encoding.into())
        );
    }
    let before = digest_then_bgsave(&mut client, &["BGSAVE", "FORKLESS"]);
    let mut changes = Vec::new();
    for i in 0..200 {
        changes.push(words(&format!("SADD set{i} added")));
        changes.push(words(&format!("SREM ints{i} 1")));
        changes.push(words(&format!("XADD stream{i} 9-1 field new")));
        changes.push(words(&format!("XDEL stream{i} 1-1")));
        changes.push(words(&format!("XGROUP CREATE stream{i} group 0")));
    }
    for i in 0..20 {
        changes.push(words(&format!("HSET hash{i} f1 changed new added")));
        changes.push(words(&format!("HDEL hash{i} f2")));
        changes.push(words(&format!("ZADD zset{i} 1000 m1 5 added")));
        changes.push(words(&format!("ZREM zset{i} m2")));
        changes.push(words(&format!("LPUSH list{i} head")));
        changes.push(words(&format!("RPOP list{i}")));
        changes.push(words(&format!("LSET list{i} 5 changed")));
    }
    for i in 0..5 {
        changes.push(words(&format!("APPEND long{i} tail")));
        changes.push(words(&format!("SETRANGE long{i} 10 changed")));
    }
    pipeline(&mut client, &changes);
    assert_eq!(
        info_field(&mut client, "rdb_bgsave_in_progress"),
        "1",
        "the changes ran while the writer held the values"
    );
    let after = text(digest(&mut client));
    assert_ne!(after, before);
    wait_save_done(&mut client);
    assert_eq!(digest_in_redis(&server.dir.join("dump.rdb")), before);
    assert_eq!(text(digest(&mut client)), after);
}

#[test]
fn bgsave_method_forkless_applies_to_save_points_and_bgsave() {
    let server = ServerProcess::amber(&["--bgsave-method", "forkless"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "1000"]);
    let before = digest_then_bgsave(&mut client, &["BGSAVE"]);
    wait_save_done(&mut client);
    assert_eq!(digest_in_redis(&server.dir.join("dump.rdb")), before);
    client.cmd(&["CONFIG", "SET", "save", "1 1"]);
    client.cmd(&["SET", "one", "more"]);
    wait_for(
        || {
            server
                .log()
                .matches("Background forkless saving started")
                .count()
                == 2
        },
        "the save point starts a forkless save",
    );
    wait_save_done(&mut client);
    // Forkless saves fork nothing.
    assert_eq!(info_field(&mut client, "total_forks"), "0");
    // FORK overrides the directive for one save.
    assert_eq!(
        client.cmd(&["BGSAVE", "FORK"]),
        simple("Background saving started")
    );
    wait_save_done(&mut client);
    assert_eq!(info_field(&mut client, "total_forks"), "1");
}

#[test]
fn bgsave_arguments_are_checked() {
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "1000"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "2000"]);
    for bad in [
        vec!["BGSAVE", "FORKLESS", "FORK"],
        vec!["BGSAVE", "NOW"],
        vec!["BGSAVE", "SCHEDULE", "SCHEDULE"],
    ] {
        assert_eq!(client.cmd(&bad), common::error("ERR syntax error"));
    }
    assert_eq!(
        client.cmd(&["BGSAVE", "FORKLESS", "SCHEDULE"]),
        simple("Background saving started")
    );
    assert_eq!(
        client.cmd(&["BGSAVE", "FORKLESS"]),
        common::error("ERR Background save already in progress")
    );
    // As a forked save, FLUSHALL stops it and the dataset goes on.
    client.cmd(&["FLUSHALL"]);
    assert_eq!(info_field(&mut client, "rdb_bgsave_in_progress"), "0");
    client.cmd(&["SET", "after", "flush"]);
    assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(1));
}

#[test]
fn kill_9_mid_forkless_save_leaves_the_old_file_and_no_temp_file_after_restart() {
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "500"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "3000"]);
    assert_eq!(client.cmd(&["SAVE"]), simple("OK"));
    let saved = text(digest(&mut client));
    client.cmd(&["DEBUG", "POPULATE", "6000", "other"]);
    assert_eq!(
        client.cmd(&["BGSAVE", "FORKLESS"]),
        simple("Background saving started")
    );
    let temp = server.dir.join(format!("temp-{}.rdb", server.pid()));
    wait_for(
        || {
            temp.exists()
                && info_field(&mut client, "current_save_keys_processed")
                    .parse::<u64>()
                    .is_ok_and(|keys| keys > 100)
        },
        "the forkless save writes its temp file",
    );
    let dir = server.kill9();
    assert!(temp.exists(), "the temp file outlives the killed server");
    assert_redis_check_rdb(&dir.join("dump.rdb"));
    let restarted = ServerProcess::amber_in(&dir, &[]);
    let mut client = restarted.client();
    assert_eq!(text(digest(&mut client)), saved);
    assert!(
        !temp.exists(),
        "the restart removes the dead save's temp file"
    );
    assert!(
        restarted
            .log()
            .contains("Removing the leftover temporary snapshot file")
    );
}

#[test]
fn a_forkless_aof_rewrite_under_writes_loads_back_in_amber_and_redis() {
    forkless_rewrite_under_writes_loads_back("yes", ".base.rdb");
}

#[test]
fn a_forkless_command_form_rewrite_under_writes_loads_back_in_amber_and_redis() {
    forkless_rewrite_under_writes_loads_back("no", ".base.aof");
}

/// A forkless rewrite with `aof-use-rdb-preamble preamble` under a write load leaves a base
/// named `*<base_suffix>` that, with the incr file written since, loads in Redis 7.0 and in
/// Amber as the dataset the server holds.
fn forkless_rewrite_under_writes_loads_back(preamble: &str, base_suffix: &str) {
    let server = ServerProcess::amber(&[
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        preamble,
        "--bgsave-method",
        "forkless",
        "--rdb-key-save-delay",
        "25",
    ]);
    let mut control = server.client();
    populate(&mut control);
    let (stop, load) = spawn_write_load(server.port, 77);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        control.cmd(&["BGREWRITEAOF"]),
        simple("Background append only file rewriting started")
    );
    wait_for(
        || info_field(&mut control, "aof_rewrite_in_progress") == "0",
        "the rewrite ends",
    );
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().expect("load") > 1000);
    assert_eq!(info_field(&mut control, "aof_last_bgrewrite_status"), "ok");
    assert!(
        server
            .log()
            .contains("Background append only file rewriting started (forkless)")
    );
    assert_eq!(info_field(&mut control, "total_forks"), "0");
    let expected = text(digest(&mut control));
    let aof_dir = server.dir.join("appendonlydir");
    let names: Vec<String> = std::fs::read_dir(&aof_dir)
        .expect("aof dir")
        .flatten()
        .map(|file| file.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|name| name.ends_with(base_suffix)),
        "no *{base_suffix} base in {names:?}"
    );
    // The base (the capture at the rewrite's start) plus the incr file written since.
    let copy = common::temp_dir("forkless-aof-copy");
    std::fs::create_dir_all(copy.join("appendonlydir")).expect("copy dir");
    for file in std::fs::read_dir(&aof_dir).expect("aof dir").flatten() {
        std::fs::copy(
            file.path(),
            copy.join("appendonlydir").join(file.file_name()),
        )
        .expect("copy the AOF");
    }
    let redis = ServerProcess::redis_in(&copy, &["--appendonly", "yes"]);
    assert_eq!(text(digest(&mut redis.client())), expected, "Redis's load");
    drop(redis);
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(
        text(digest(&mut restarted.client())),
        expected,
        "Amber's load"
    );
}

/// A Redis 7.0 replica and an Amber replica take their diskless full sync from a master with
/// `bgsave-method forkless` while it is written to: no fork, and both then hold the master's
/// dataset.
#[test]
fn replicas_synced_diskless_and_forkless_under_writes_hold_the_masters_dataset() {
    let master = ServerProcess::amber(&[
        "--bgsave-method",
        "forkless",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "1",
        "--rdb-key-save-delay",
        "20",
    ]);
    let mut control = master.client();
    populate(&mut control);
    let (stop, load) = spawn_write_load(master.port, 91);
    let port = master.port.to_string();
    let redis = ServerProcess::redis(&["--replicaof", "127.0.0.1", &port]);
    let amber = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
    let (mut redis_client, mut amber_client) = (redis.client(), amber.client());
    wait_for(
        || {
            info_field(&mut redis_client, "master_link_status") == "up"
                && info_field(&mut amber_client, "master_link_status") == "up"
        },
        "both replicas to finish their full sync",
    );
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().expect("load") > 1000);
    // The stream is applied in order: once the last write arrives, every earlier one has.
    control.cmd(&["SET", "last", "done"]);
    for replica in [&mut redis_client, &mut amber_client] {
        wait_for(
            || replica.cmd(&["GET", "last"]) == common::bulk("done"),
            "the stream to reach the replica",
        );
    }
    let expected = text(digest(&mut control));
    assert_eq!(text(digest(&mut redis_client)), expected, "Redis replica");
    assert_eq!(text(digest(&mut amber_client)), expected, "Amber replica");
    let log = master.log();
    assert!(log.contains("Starting BGSAVE for SYNC with target: replicas sockets"));
    assert!(log.contains("Background RDB transfer started (forkless)"));
    assert!(!log.contains("Background RDB transfer started by pid"));
    assert_eq!(info_field(&mut control, "total_forks"), "0");
}

/// A forkless transfer blocked on a replica that stopped reading does not hold up the
/// master's shutdown: the writer's copies of the sockets are shut down when the transfer is
/// abandoned.
#[test]
fn shutdown_during_a_forkless_transfer_to_a_stalled_replica_is_prompt() {
    use std::io::{BufRead, BufReader, Write};
    let mut master = ServerProcess::amber(&[
        "--bgsave-method",
        "forkless",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let mut control = master.client();
    // Far more than the socket buffers hold.
    control.cmd(&["DEBUG", "POPULATE", "200000", "key", "200"]);
    let mut replica = std::net::TcpStream::connect(("127.0.0.1", master.port)).expect("connect");
    replica
        .write_all(b"REPLCONF capa eof\r\n")
        .expect("REPLCONF");
    let mut lines = BufReader::new(replica.try_clone().expect("clone"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("REPLCONF reply");
    assert_eq!(line, "+OK\r\n");
    replica.write_all(b"PSYNC ? -1\r\n").expect("PSYNC");
    line.clear();
    lines.read_line(&mut line).expect("PSYNC reply");
    assert!(line.starts_with("+FULLRESYNC"), "{line}");
    // The replica reads nothing more: the writer fills the socket and waits on it.
    wait_for(
        || {
            master
                .log()
                .contains("Background RDB transfer started (forkless)")
        },
        "the transfer to start",
    );
    std::thread::sleep(Duration::from_millis(300));
    control.send(&["SHUTDOWN", "NOSAVE"]);
    let started = std::time::Instant::now();
    assert!(
        master.wait_exit(Duration::from_secs(10)).is_some(),
        "the master did not exit; log:\n{}",
        master.log()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(replica);
}
