//! AOF rewrite against the real binary: BGREWRITEAOF under a write load (nothing lost or
//! doubled, Redis's aof-race check), kill -9 of the server and of the rewrite child at random
//! moments, Redis 7.0 loading the directory after a rewrite, automatic rewrites, and a rewrite
//! asked for during a BGSAVE.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Frame, ServerProcess, digest, info_field, simple, wait_for};

const ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .expect("AOF dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file the manifest names exists, and nothing else is in the directory.
fn assert_directory_consistent(dir: &Path) {
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
        .expect("manifest");
    let mut named: Vec<String> = manifest
        .lines()
        .filter_map(|line| line.split(' ').nth(1).map(str::to_string))
        .collect();
    named.push("appendonly.aof.manifest".into());
    named.sort();
    assert_eq!(files_in(dir), named, "manifest: {manifest}");
}

/// Writers: one INCRs a counter, others SET unique keys; each returns what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(port: u16, writers: usize, label: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..writers)
            .map(|writer| {
                let stop = stop.clone();
                let label = label.to_string();
                std::thread::spawn(move || {
                    let mut client = common::Client::connect(port);
                    let (mut increments, mut keys) = (0u64, Vec::new());
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if writer == 0 {
                            if !client.try_send(&["INCR", "counter"]) {
                                break;
                            }
                            match client.read() {
                                Some(Frame::Integer(_)) => increments += 1,
                                _ => break,
                            }
                        } else {
                            let key = format!("{label}:w{writer}:{i}");
                            if !client.try_send(&["SET", key.as_str(), "v"]) {
                                break;
                            }
                            match client.read() {
                                Some(Frame::Simple(ok)) if ok == b"OK" => keys.push(key),
                                _ => break,
                            }
                        }
                    }
                    (increments, keys)
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut increments = 0;
        let mut keys = Vec::new();
        for thread in self.threads {
            let (n, mut k) = thread.join().expect("writer");
            increments += n;
            keys.append(&mut k);
        }
        (increments, keys)
    }
}

fn wait_rewrite_done(client: &mut common::Client) {
    wait_for(
        || info_field(client, "aof_rewrite_in_progress") == "0",
        "the rewrite to finish",
    );
}

#[test]
fn rewrites_under_load_lose_and_double_nothing() {
    let server = ServerProcess::amber(ALWAYS);
    let mut admin = server.client();
    admin.cmd(&["DEBUG", "POPULATE", "50000"]);
    let load = Load::start(server.port, 3, "load");
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            admin.cmd(&["BGREWRITEAOF"]),
            simple("Background append only file rewriting started")
        );
        wait_rewrite_done(&mut admin);
        assert_eq!(info_field(&mut admin, "aof_last_bgrewrite_status"), "ok");
    }
    let (increments, keys) = load.stop();
    assert!(increments > 50, "the load ran: {increments}");
    let expected = digest(&mut admin);
    assert_eq!(info_field(&mut admin, "aof_rewrites"), "4");
    let dir = server.kill9();
    assert_directory_consistent(&dir);
    let restarted = ServerProcess::amber_in(&dir, ALWAYS);
    let mut client = restarted.client();
    assert_eq!(digest(&mut client), expected);
    assert_eq!(
        client.cmd(&["GET", "counter"]),
        Frame::Bulk(increments.to_string().into_bytes()),
        "every INCR exactly once"
    );
    for key in &keys {
        assert_eq!(
            client.cmd(&["EXISTS", key]),
            Frame::Integer(1),
            "lost {key}"
        );
    }
}

#[test]
fn kill9_of_the_server_during_rewrites_loses_no_acknowledged_write() {
    let dir = common::temp_dir("rewrite-crash");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut min_counter = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for cycle in 0..8 {
        let flags = [ALWAYS, &["--rdb-key-save-delay", "20"]].concat();
        let server = ServerProcess::amber_in(&dir, &flags);
        let mut admin = server.client();
        if cycle == 0 {
            admin.cmd(&["DEBUG", "POPULATE", "5000"]);
        }
        let counter = match admin.cmd(&["GET", "counter"]) {
            Frame::Bulk(value) => String::from_utf8(value)
                .expect("text")
                .parse()
                .expect("number"),
            _ => 0,
        };
        assert!(
            counter >= min_counter,
            "counter went back: {counter} < {min_counter}"
        );
        for key in &acknowledged {
            assert_eq!(admin.cmd(&["EXISTS", key]), Frame::Integer(1), "lost {key}");
        }
        let load = Load::start(server.port, 3, &format!("c{cycle}"));
        admin.cmd(&["BGREWRITEAOF"]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 150));
        server.kill9();
        let (increments, keys) = load.stop();
        min_counter = counter + increments;
        acknowledged.extend(keys);
    }
    let server = ServerProcess::amber_in(&dir, ALWAYS);
    let mut client = server.client();
    for key in &acknowledged {
        assert_eq!(
            client.cmd(&["EXISTS", key]),
            Frame::Integer(1),
            "lost {key}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !files_in(&dir).iter().any(|name| name.starts_with("temp-")),
        "temp files are cleaned up: {:?}",
        files_in(&dir)
    );
}

fn rewrite_child_pid(server_pid: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{server_pid}/task/{server_pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Waits for `server`'s rewrite child (`what` names it in the failure) and returns its pid.
fn wait_rewrite_child(server: &ServerProcess, what: &str) -> u32 {
    let mut child = None;
    wait_for(
        || {
            child = rewrite_child_pid(server.pid());
            child.is_some()
        },
        what,
    );
    child.expect("child pid")
}

#[test]
fn killing_the_rewrite_child_leaves_the_old_files_in_use() {
    let server = ServerProcess::amber(&["--appendonly", "yes", "--rdb-key-save-delay", "100"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000"]);
    client.cmd(&["BGREWRITEAOF"]);
    let pid = wait_rewrite_child(&server, "the rewrite child");
    client.cmd(&["SET", "during", "1"]);
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_rewrite_done(&mut client);
    assert_eq!(info_field(&mut client, "aof_last_bgrewrite_status"), "err");
    assert_eq!(
        info_field(&mut client, "aof_rewrites_consecutive_failures"),
        "1"
    );
    assert!(
        server
            .log()
            .contains("Background AOF rewrite terminated with error")
    );
    client.cmd(&["SET", "after", "1"]);
    let expected = digest(&mut client);
    let dir = server.kill9();
    assert_directory_consistent(&dir);
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(digest(&mut restarted.client()), expected);
}

#[test]
fn redis_loads_the_directory_after_a_rewrite() {
    for preamble in ["yes", "no"] {
        let server =
            ServerProcess::amber(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut client = server.client();
        client.cmd(&["DEBUG", "POPULATE", "3000", "key", "20"]);
        client.cmd(&["HSET", "hash", "a", "1", "b", "2"]);
        client.cmd(&["ZADD", "zset", "1.5", "x", "-inf", "y"]);
        client.cmd(&["RPUSH", "list", "a", "b", "c"]);
        client.cmd(&["SADD", "set", "1", "2", "3"]);
        client.cmd(&["SET", "ttl", "v", "EX", "100000"]);
        client.cmd(&["BGREWRITEAOF"]);
        wait_rewrite_done(&mut client);
        client.cmd(&["SET", "after", "1"]);
        let expected = digest(&mut client);
        let dir = server.kill9();
        let base = files_in(&dir)
            .into_iter()
            .find(|name| name.contains(".base."))
            .expect("a base");
        let suffix = if preamble == "yes" {
            ".base.rdb"
        } else {
            ".base.aof"
        };
        assert!(base.ends_with(suffix), "{base}");
        let redis = ServerProcess::redis_in(&dir, &["--appendonly", "yes"]);
        let mut redis_client = redis.client();
        wait_for(
            || redis_client.cmd(&["PING"]) == simple("PONG"),
            "redis to load",
        );
        assert_eq!(digest(&mut redis_client), expected, "preamble {preamble}");
    }
}

#[test]
fn automatic_rewrite_starts_when_the_log_doubles() {
    let server = ServerProcess::amber(&[
        "--appendonly",
        "yes",
        "--auto-aof-rewrite-min-size",
        "1mb",
        "--auto-aof-rewrite-percentage",
        "100",
    ]);
    let mut client = server.client();
    let value = "x".repeat(1000);
    for i in 0..3000 {
        client.cmd(&["SET", &format!("key{i}"), value.as_str()]);
    }
    wait_for(
        || info_field(&mut client, "aof_rewrites") != "0",
        "an automatic rewrite",
    );
    assert!(server.log().contains("Starting automatic rewriting of AOF"));
}

#[test]
fn a_rewrite_asked_for_during_bgsave_runs_after_it() {
    let server = ServerProcess::amber(&["--appendonly", "yes", "--rdb-key-save-delay", "50"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "5000"]);
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    assert_eq!(
        client.cmd(&["BGREWRITEAOF"]),
        simple("Background append only file rewriting scheduled")
    );
    assert_eq!(info_field(&mut client, "aof_rewrite_scheduled"), "1");
    assert!(matches!(client.cmd(&["BGSAVE"]), Frame::Error(_)));
    wait_for(
        || {
            info_field(&mut client, "aof_rewrites") == "1"
                && info_field(&mut client, "aof_rewrite_in_progress") == "0"
        },
        "the scheduled rewrite",
    );
    assert_eq!(info_field(&mut client, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(info_field(&mut client, "rdb_last_bgsave_status"), "ok");
}

#[test]
fn a_failed_first_rewrite_after_turning_aof_on_applies_nothing_twice() {
    // AOF turned on at runtime: writes wait in an incr file for the first base. When that
    // first rewrite fails and is retried, the retried base already holds the writes made in
    // between, so the incr file must start over or a restart applies them twice.
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "100"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "5000"]);
    client.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    let pid = wait_rewrite_child(&server, "the first rewrite child").to_string();
    for _ in 0..10 {
        client.cmd(&["INCR", "counter"]);
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    assert!(killed.expect("kill").success());
    // The retry starts by itself; let it finish quickly.
    wait_for(
        || rewrite_child_pid(server.pid()).is_some_and(|p| p.to_string() != pid),
        "the retried rewrite",
    );
    client.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    for _ in 0..5 {
        client.cmd(&["INCR", "counter"]);
    }
    wait_for(
        || info_field(&mut client, "aof_last_bgrewrite_status") == "ok",
        "a successful rewrite",
    );
    client.cmd(&["INCR", "counter"]);
    assert_eq!(client.cmd(&["GET", "counter"]), common::bulk("16"));
    let expected = digest(&mut client);
    let dir = server.kill9();
    assert_directory_consistent(&dir);
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    let mut after = restarted.client();
    assert_eq!(after.cmd(&["GET", "counter"]), common::bulk("16"));
    assert_eq!(digest(&mut after), expected);
}

/// The files of `dir` (and its AOF directory) a rewrite child writes before renaming.
fn rewrite_temp_files(dir: &Path) -> Vec<String> {
    common::files_under(dir)
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .filter(|name| name.starts_with("temp-"))
        .collect()
}

#[test]
fn turning_aof_off_kills_a_rewrite_in_progress_as_redis_does() {
    // Redis's `stopAppendOnly` kills a running rewrite and logs it; its base would describe
    // an AOF no longer kept (Redis's unit/aofrw checks the log line).
    let servers = [
        ServerProcess::amber(&["--appendonly", "yes"]),
        ServerProcess::redis(&["--appendonly", "yes"]),
    ];
    for server in &servers {
        let mut client = server.client();
        client.cmd(&["DEBUG", "POPULATE", "1000"]);
        client.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "10000000"]);
        client.cmd(&["BGREWRITEAOF"]);
        let pid = wait_rewrite_child(server, "the rewrite child");
        assert_eq!(
            client.cmd(&["CONFIG", "SET", "appendonly", "no"]),
            simple("OK")
        );
        // Both servers reap the child before they reply.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still there"
        );
        assert_eq!(info_field(&mut client, "aof_rewrite_in_progress"), "0");
        assert_eq!(info_field(&mut client, "aof_rewrite_scheduled"), "0");
        let log = server.log();
        assert!(
            log.contains(&format!("Killing running AOF rewrite child: {pid}")),
            "{log}"
        );
        assert!(
            rewrite_temp_files(&server.dir).is_empty(),
            "{:?}",
            rewrite_temp_files(&server.dir)
        );
        client.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(1000));
    }
}
