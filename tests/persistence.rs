//! RDB persistence against the real binary: SAVE, BGSAVE while serving, restart, save points,
//! MISCONF after a failed background save, kill -9 during a save, and files that Redis 7.0
//! itself loads with the same digest.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::time::{Duration, Instant};

use common::{
    Frame, ServerProcess, digest, fixture, info_field, manifest_digest, simple, wait_for,
};

fn fill(client: &mut common::Client) {
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "20"]);
    client.cmd(&["SET", "ttl", "v", "EX", "10000"]);
    client.cmd(&["HSET", "hash:small", "a", "1", "b", "two"]);
    let mut big = vec!["HSET".to_string(), "hash:big".to_string()];
    for i in 0..700 {
        big.push(format!("f{i}"));
        big.push(format!("value-{i}"));
    }
    client.cmd(&big);
    client.cmd(&["SADD", "set:ints", "3", "1", "2"]);
    client.cmd(&["ZADD", "zset", "1.5", "a", "-inf", "b", "3", "c"]);
    client.cmd(&[
        "RPUSH",
        "list",
        "a",
        "1",
        "",
        "x".repeat(3000).as_str(),
        "-5",
    ]);
    client.cmd(&["SADD", "set:words", "a", "b", "c"]);
    client.cmd(&["SELECT", "5"]);
    client.cmd(&["SET", "in5", "12345"]);
    client.cmd(&["HSET", "h5", "x", "y"]);
    client.cmd(&["SELECT", "0"]);
}

/// Saves a dataset of one key (`generation` 1), then changes it a lot and makes the next save
/// slow (200 µs per key), so a test can act in the middle of it.
fn saved_then_changed(client: &mut common::Client) {
    client.cmd(&["SET", "generation", "1"]);
    client.cmd(&["SAVE"]);
    fill(client);
    client.cmd(&["SET", "generation", "2"]);
    client.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "200"]);
}

/// A server started on `dir` has the first saved dataset: `generation` 1 and nothing else.
fn assert_first_generation_restarts(dir: &std::path::Path) {
    let restarted = ServerProcess::amber_in(dir, &[]);
    let mut client = restarted.client();
    assert_eq!(
        client.cmd(&["GET", "generation"]),
        Frame::Bulk(b"1".to_vec())
    );
    assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(1));
}

/// The `DEBUG DIGEST` of the dataset redis-server loads from `dir`.
fn redis_digest_of(dir: &std::path::Path) -> Frame {
    let redis = ServerProcess::redis_in(dir, &[]);
    let mut client = redis.client();
    wait_for(|| client.cmd(&["PING"]) == simple("PONG"), "redis to load");
    digest(&mut client)
}

#[test]
fn save_and_restart_keep_the_dataset() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    fill(&mut client);
    let before = digest(&mut client);
    assert_eq!(client.cmd(&["SAVE"]), simple("OK"));
    let Frame::Integer(lastsave) = client.cmd(&["LASTSAVE"]) else {
        panic!()
    };
    assert!(lastsave > 1_700_000_000);
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, &[]);
    let mut client = restarted.client();
    assert_eq!(digest(&mut client), before);
    assert!(
        client.cmd(&["TTL", "ttl"]) != Frame::Integer(-1),
        "TTL survives"
    );
    let log = restarted.log();
    assert!(
        log.contains("Done loading RDB, keys loaded: 20009, keys expired: 0."),
        "{log}"
    );
    assert_eq!(
        client.cmd(&["OBJECT", "ENCODING", "hash:big"]),
        Frame::Bulk(b"hashtable".to_vec())
    );
    assert_eq!(
        client.cmd(&["HGET", "hash:small", "b"]),
        Frame::Bulk(b"two".to_vec())
    );
}

#[test]
fn bgsave_snapshot_is_the_dataset_at_fork_time() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    fill(&mut client);
    let at_fork = digest(&mut client);
    client.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "20"]);
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    // The server keeps serving writes while the child saves.
    let writes_started = Instant::now();
    for i in 0..2000 {
        client.cmd(&["SET", &format!("after:{i}"), "x"]);
    }
    client.cmd(&["SET", "key:1", "changed"]);
    assert!(
        writes_started.elapsed() < Duration::from_secs(5),
        "writes were not blocked by the save"
    );
    assert_eq!(info_field(&mut client, "rdb_bgsave_in_progress"), "1");
    assert!(
        matches!(client.cmd(&["BGSAVE"]), Frame::Error(e) if e.ends_with(b"already in progress"))
    );
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the BGSAVE child",
    );
    assert_eq!(info_field(&mut client, "rdb_last_bgsave_status"), "ok");
    assert_eq!(
        info_field(&mut client, "rdb_changes_since_last_save"),
        "2001"
    );
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, &[]);
    assert_eq!(
        digest(&mut restarted.client()),
        at_fork,
        "writes after the fork are absent"
    );
}

#[test]
fn redis_loads_what_amber_saves_with_the_same_digest() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    fill(&mut client);
    client.cmd(&["SET", "big", &"abc".repeat(10_000)]);
    let amber_digest = digest(&mut client);
    client.cmd(&["SAVE"]);
    let dir = server.kill9();
    common::assert_redis_check_rdb(&dir.join("dump.rdb"));
    assert_eq!(redis_digest_of(&dir), amber_digest);
}

#[test]
fn amber_loads_what_redis_saves() {
    let redis = ServerProcess::redis(&[]);
    let mut client = redis.client();
    fill(&mut client);
    let redis_digest = digest(&mut client);
    client.cmd(&["SAVE"]);
    let dir = redis.kill9();
    let amber = ServerProcess::amber_in(&dir, &[]);
    assert_eq!(digest(&mut amber.client()), redis_digest);
}

#[test]
fn corrupt_snapshot_stops_startup_and_is_left_untouched() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    fill(&mut client);
    client.cmd(&["SAVE"]);
    let dir = server.kill9();
    let path = dir.join("dump.rdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let output = std::process::Command::new(common::amber_binary())
        .args([
            "--port",
            &common::free_port().to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--save",
            "",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success(), "start-up must fail");
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        log.contains("Terminating server after rdb file reading failure."),
        "{log}"
    );
    assert!(log.contains("offset"), "the message says where: {log}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is not overwritten"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn save_points_trigger_bgsave() {
    let server = ServerProcess::amber(&["--save", "1 3"]);
    let mut client = server.client();
    for i in 0..3 {
        client.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    wait_for(
        || server.dir.join("dump.rdb").exists(),
        "a save point BGSAVE",
    );
    wait_for(
        || {
            server
                .log()
                .contains("Background saving terminated with success")
        },
        "the BGSAVE to end",
    );
    assert!(
        server.log().contains("changes in 1 seconds. Saving..."),
        "{}",
        server.log()
    );
    assert_eq!(info_field(&mut client, "rdb_changes_since_last_save"), "0");
}

#[test]
fn shutdown_saves_when_save_points_are_set_and_nosave_does_not() {
    let mut server = ServerProcess::amber(&["--save", "3600 1"]);
    let mut client = server.client();
    client.cmd(&["SET", "kept", "yes"]);
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        server
            .log()
            .contains("Saving the final RDB snapshot before exiting.")
    );
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, &["--save", "3600 1"]);
    let mut client = restarted.client();
    assert_eq!(client.cmd(&["GET", "kept"]), Frame::Bulk(b"yes".to_vec()));
    client.cmd(&["SET", "lost", "yes"]);
    client.send(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(client.read(), None);
    let mut restarted = restarted;
    assert_eq!(restarted.wait_exit(Duration::from_secs(10)), Some(0));
    let dir = restarted.kill9();
    let again = ServerProcess::amber_in(&dir, &[]);
    assert_eq!(again.client().cmd(&["GET", "lost"]), Frame::NullBulk);
}

#[test]
fn kill9_during_bgsave_leaves_the_old_snapshot_loadable() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    saved_then_changed(&mut client);
    client.cmd(&["BGSAVE"]);
    std::thread::sleep(Duration::from_millis(300));
    // Kill the server and its child in the middle of writing the new snapshot.
    let _ = std::process::Command::new("pkill")
        .args(["-9", "-P", &server.pid().to_string()])
        .status();
    let dir = server.kill9();
    assert_first_generation_restarts(&dir);
}

#[test]
fn failed_bgsave_refuses_writes_with_misconf() {
    // A file size limit makes the child's write fail (SIGXFSZ), as a full disk would.
    let dir = common::temp_dir("fsize");
    let port = common::free_port();
    let script = format!(
        "ulimit -f 64; exec {} --port {port} --dir {} --logfile {} --enable-debug-command yes --save '3600 1'",
        common::amber_binary().display(),
        dir.display(),
        dir.join("server.log").display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "amber to start",
    );
    let mut client = common::Client::connect(port);
    client.cmd(&["DEBUG", "POPULATE", "50000", "key", "100"]);
    client.cmd(&["BGSAVE"]);
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the failing child",
    );
    assert_eq!(info_field(&mut client, "rdb_last_bgsave_status"), "err");
    let reply = client.cmd(&["SET", "k", "v"]);
    assert!(
        matches!(&reply, Frame::Error(e) if e.starts_with(b"MISCONF")),
        "{reply:?}"
    );
    assert_eq!(
        client.cmd(&["GET", "key:1"]).clone(),
        client.cmd(&["GET", "key:1"]),
        "reads still work"
    );
    assert!(!dir.join("dump.rdb").exists(), "no partial dump.rdb");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files are removed");
    client.cmd(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"]);
    assert_eq!(client.cmd(&["SET", "k", "v"]), simple("OK"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_fixture_loads_with_redis_digest() {
    for name in ["redis-7.0/encodings.rdb", "redis-legacy/encodings.rdb"] {
        let amber_dir = common::temp_dir("fixture-amber");
        let redis_dir = common::temp_dir("fixture-redis");
        std::fs::copy(fixture(name), amber_dir.join("dump.rdb")).unwrap();
        std::fs::copy(fixture(name), redis_dir.join("dump.rdb")).unwrap();
        let amber = ServerProcess::amber_in(&amber_dir, &[]);
        let redis = ServerProcess::redis_in(&redis_dir, &[]);
        let mut redis_client = redis.client();
        wait_for(
            || redis_client.cmd(&["PING"]) == simple("PONG"),
            "redis to load",
        );
        assert_eq!(
            digest(&mut amber.client()),
            digest(&mut redis_client),
            "{name}"
        );
    }
}

#[test]
fn fixture_rebuilt_by_commands_has_redis_digest() {
    // Read the values Redis stored, then create them in Amber with ordinary commands.
    let bytes = std::fs::read(fixture("redis-7.0/encodings.rdb")).unwrap();
    let mut reader = amber_rdb::RdbReader::new(bytes.as_slice()).unwrap();
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    while let Some(item) = reader.next_item().unwrap() {
        let amber_rdb::Item::Entry(entry) = item else {
            continue;
        };
        client.cmd(&[b"SELECT".to_vec(), entry.db.to_string().into_bytes()]);
        let key = entry.key.clone();
        let mut command: Vec<Vec<u8>> = match entry.value {
            amber_rdb::Value::String(value) => vec![b"SET".to_vec(), key.clone(), value],
            amber_rdb::Value::List(items) => [vec![b"RPUSH".to_vec(), key.clone()], items].concat(),
            amber_rdb::Value::Set(members) => {
                [vec![b"SADD".to_vec(), key.clone()], members].concat()
            }
            amber_rdb::Value::Hash(pairs) => {
                let flat: Vec<Vec<u8>> = pairs.into_iter().flat_map(|(f, v)| [f, v]).collect();
                [vec![b"HSET".to_vec(), key.clone()], flat].concat()
            }
            amber_rdb::Value::SortedSet(members) => {
                let flat: Vec<Vec<u8>> = members
                    .into_iter()
                    .flat_map(|(m, s)| [amber_protocol::format_double(s).into_bytes(), m])
                    .collect();
                [vec![b"ZADD".to_vec(), key.clone()], flat].concat()
            }
            other => panic!("unexpected {} in the fixture", other.type_name()),
        };
        assert!(
            !matches!(client.cmd(&command), Frame::Error(_)),
            "{command:?}"
        );
        if let Some(at) = entry.expire_at_ms {
            command = vec![b"PEXPIREAT".to_vec(), key, at.to_string().into_bytes()];
            assert_eq!(client.cmd(&command), Frame::Integer(1));
        }
    }
    let want = manifest_digest("redis-7.0", "encodings.rdb");
    assert_eq!(digest(&mut client), Frame::Simple(want.into_bytes()));
}

#[test]
fn clients_get_loading_while_the_snapshot_loads() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000"]);
    client.cmd(&["SAVE"]);
    let dir = server.kill9();
    let port = common::free_port();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = KillOnDrop(
        std::process::Command::new(common::amber_binary())
            .args([
                "--port",
                &port.to_string(),
                "--dir",
                dir.to_str().unwrap(),
                "--save",
                "",
            ])
            .args(["--key-load-delay", "100", "--logfile"])
            .arg(dir.join("server.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the listener",
    );
    let mut early = common::Client::connect(port);
    let reply = early.cmd(&["GET", "key:1"]);
    assert_eq!(
        reply,
        Frame::Error(b"LOADING Redis is loading the dataset in memory".to_vec())
    );
    assert_eq!(info_field(&mut early, "loading"), "1");
    wait_for(
        || early.cmd(&["PING"]) == simple("PONG"),
        "the load to finish",
    );
    assert_eq!(early.cmd(&["DBSIZE"]), Frame::Integer(20000));
    assert_eq!(info_field(&mut early, "loading"), "0");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn flushall_with_save_points_saves_the_empty_dataset() {
    let server = ServerProcess::amber(&["--save", "3600 1"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "1000"]);
    assert_eq!(client.cmd(&["SAVE"]), simple("OK"));
    assert_eq!(client.cmd(&["FLUSHALL"]), simple("OK"));
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, &[]);
    assert_eq!(restarted.client().cmd(&["DBSIZE"]), Frame::Integer(0));
}

#[test]
fn bgsave_reports_the_copy_on_write_it_measured() {
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "50"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "200"]);
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    // Rewrite every value while the child runs: the parent's pages diverge from the child's.
    let value = "y".repeat(200);
    for i in 0..20000 {
        client.send(&["SET", &format!("key:{i}"), value.as_str()]);
    }
    for _ in 0..20000 {
        client.read();
    }
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the BGSAVE to finish",
    );
    let cow: u64 = info_field(&mut client, "rdb_last_cow_size")
        .parse()
        .expect("a number");
    assert!(cow > 1 << 20, "measured copy-on-write: {cow} bytes");
}

#[test]
fn bgsave_progress_comes_from_the_child() {
    let server = ServerProcess::amber(&["--rdb-key-save-delay", "200"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "5000", "key", "10"]);
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    assert_eq!(info_field(&mut client, "current_save_keys_total"), "5000");
    wait_for(
        || {
            let processed: u64 = info_field(&mut client, "current_save_keys_processed")
                .parse()
                .expect("a number");
            (1024..5000).contains(&processed)
        },
        "the child to report keys written",
    );
    let percent: f64 = info_field(&mut client, "current_fork_perc")
        .parse()
        .expect("a number");
    assert!(
        percent > 0.0 && percent < 100.0,
        "current_fork_perc {percent}"
    );
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the BGSAVE to finish",
    );
    assert_eq!(info_field(&mut client, "current_save_keys_processed"), "0");
}

#[test]
fn large_list_elements_are_saved_as_plain_quicklist_nodes() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    assert!(matches!(
        client.cmd(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "5gb"]),
        Frame::Error(e) if e == b"ERR argument must be a memory value bigger than 1 and smaller than 4gb"
    ));
    assert_eq!(
        client.cmd(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "10"]),
        simple("OK")
    );
    let large = "x".repeat(30);
    client.cmd(&["RPUSH", "list", "a", &large, "b", "c"]);
    let amber_digest = digest(&mut client);
    client.cmd(&["SAVE"]);
    let dir = server.kill9();
    // The file holds packed, plain, packed nodes, as Redis would write this list.
    let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
    let mut reader = amber_rdb::RdbReader::new(bytes.as_slice()).unwrap();
    let mut nodes = None;
    while let Some(item) = reader.next_raw_item().unwrap() {
        if let amber_rdb::Item::Entry(entry) = item
            && let amber_rdb::RawValue::Quicklist(list) = entry.value
        {
            nodes = Some(list);
        }
    }
    let kinds: Vec<&str> = nodes
        .expect("the list is a quicklist")
        .iter()
        .map(|node| match node {
            amber_rdb::QuicklistNode::Plain(_) => "plain",
            _ => "packed",
        })
        .collect();
    assert_eq!(kinds, ["packed", "plain", "packed"]);
    assert_eq!(redis_digest_of(&dir), amber_digest);
}

#[test]
fn rdb_version_9_snapshots_for_redis_6_load_in_redis() {
    let server = ServerProcess::amber(&["--rdb-version", "9"]);
    let mut client = server.client();
    fill(&mut client);
    assert!(matches!(
        client.cmd(&["CONFIG", "SET", "rdb-version", "12"]),
        Frame::Error(_)
    ));
    let amber_digest = digest(&mut client);
    client.cmd(&["SAVE"]);
    let dir = server.kill9();
    let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
    assert_eq!(&bytes[..9], b"REDIS0009");
    assert_eq!(redis_digest_of(&dir), amber_digest);
}

#[test]
fn kill9_during_save_leaves_the_old_snapshot_loadable() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    saved_then_changed(&mut client);
    // SAVE blocks the server while it writes; kill it in the middle.
    client.send(&["SAVE"]);
    std::thread::sleep(Duration::from_millis(300));
    let dir = server.kill9();
    assert_first_generation_restarts(&dir);
}

#[test]
fn a_killed_bgsave_child_fails_cleanly_and_the_server_goes_on() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    saved_then_changed(&mut client);
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("pkill")
        .args(["-9", "-P", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "there was a child to kill");
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the parent to reap its child",
    );
    assert_eq!(info_field(&mut client, "rdb_last_bgsave_status"), "err");
    // The server still serves, the old snapshot is intact and no temp file is left.
    assert_eq!(
        client.cmd(&["GET", "generation"]),
        Frame::Bulk(b"2".to_vec())
    );
    let leftovers: Vec<String> = std::fs::read_dir(&server.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let dir = server.kill9();
    assert_first_generation_restarts(&dir);
}

/// The keys of a snapshot: what follows the AUX fields (from the first SELECTDB, 0xFE; AUX
/// values are text) up to the checksum.
fn keys_section(file: &[u8]) -> &[u8] {
    let start = file.iter().position(|&byte| byte == 0xfe).unwrap();
    &file[start..file.len() - 8]
}

#[test]
fn save_on_every_core_writes_what_one_thread_writes_byte_for_byte() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    fill(&mut client);
    client.cmd(&["DEBUG", "POPULATE", "30000", "other", "300"]);
    for i in 0..300 {
        let stream = format!("stream:{}", i % 7);
        client.cmd(&["XADD", &stream, "*", "n", &i.to_string()]);
    }
    // Past the size a helper thread encodes whole: the writing thread streams it itself.
    client.cmd(&["SETRANGE", "huge", "9000000", "end"]);
    client.cmd(&["SELECT", "3"]);
    client.cmd(&["DEBUG", "POPULATE", "5000", "db3", "10"]);
    let before = digest(&mut client);
    assert_eq!(client.cmd(&["SAVE"]), simple("OK"));
    let saved = std::fs::read(server.dir.join("dump.rdb")).unwrap();
    assert_eq!(client.cmd(&["BGSAVE"]), simple("Background saving started"));
    wait_for(
        || info_field(&mut client, "rdb_bgsave_in_progress") == "0",
        "the BGSAVE child",
    );
    let bgsaved = std::fs::read(server.dir.join("dump.rdb")).unwrap();
    assert!(
        keys_section(&saved) == keys_section(&bgsaved),
        "SAVE ({} bytes) and BGSAVE ({} bytes) differ",
        saved.len(),
        bgsaved.len()
    );
    common::assert_redis_check_rdb(&server.dir.join("dump.rdb"));
    let dir = server.kill9();
    std::fs::write(dir.join("dump.rdb"), &saved).unwrap();
    assert_eq!(redis_digest_of(&dir), before);
}
