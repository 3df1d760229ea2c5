//! The append-only file against the real binary: what is written (in Redis's propagated
//! forms), directories moving between Amber and Redis 7.0 both ways, cut tails at every byte,
//! corruption, legacy files, DEBUG LOADAOF, CONFIG SET appendonly, and kill -9 under
//! `appendfsync always`.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amber_aof::{CommandReader, Item};
use common::{
    Frame, ServerProcess, bulk, digest, fixture, manifest_digest, run_amber_to_exit, simple,
    wait_for,
};

const AOF_ON: &[&str] = &["--appendonly", "yes"];

fn incr_file(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
        .expect("manifest written");
    let name = manifest
        .lines()
        .rfind(|line| line.ends_with("type i"))
        .and_then(|line| line.split(' ').nth(1))
        .expect("an incr file in the manifest")
        .to_string();
    dir.join("appendonlydir").join(name)
}

/// The commands of an AOF file, names upper-cased, `SELECT`s kept.
fn commands_of(path: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).expect("read AOF");
    let mut reader = CommandReader::new(bytes.as_slice(), 0);
    let mut commands = Vec::new();
    while let Some(item) = reader.next_item().expect("a well-formed AOF") {
        if let Item::Command(args) = item {
            let mut args: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args[0] = args[0].to_ascii_uppercase();
            commands.push(args);
        }
    }
    commands
}

/// Writes a dataset that exercises every command whose AOF form differs from the request.
fn write_varied(client: &mut common::Client) {
    let far = "4102444800000"; // 2100-01-01 in ms
    let steps: Vec<Vec<&str>> = vec![
        vec!["SET", "plain", "v"],
        vec!["SETEX", "setex", "100000", "v"],
        vec!["SET", "set-ex", "v", "EX", "100000"],
        vec!["SET", "set-pxat", "v", "PXAT", far],
        vec!["SET", "counter", "10"],
        vec!["INCRBYFLOAT", "counter", "1.5"],
        vec!["HSET", "hash", "f", "1"],
        vec!["HINCRBYFLOAT", "hash", "f", "0.25"],
        vec!["SADD", "set", "a", "b", "c", "d", "e"],
        vec!["SPOP", "set"],
        vec!["SPOP", "set", "2"],
        vec!["SET", "expiring", "v"],
        vec!["EXPIRE", "expiring", "100000"],
        vec!["SET", "gone", "v"],
        vec!["EXPIRE", "gone", "-1"],
        vec!["RPUSH", "list", "a", "b", "c"],
        vec!["BLPOP", "list", "0"],
        vec!["BRPOPLPUSH", "list", "other", "0"],
        vec!["ZADD", "zset", "1", "a", "2", "b", "-inf", "c"],
        vec!["BZPOPMIN", "zset", "0"],
        vec!["ZADD", "zset", "5", "d", "6", "e"],
        vec!["BZMPOP", "0", "2", "nothing", "zset", "MAX", "COUNT", "1"],
        vec!["ZMPOP", "1", "zset", "MIN"],
        vec!["SET", "getex", "v"],
        vec!["GETEX", "getex", "PX", "100000"],
        vec!["SET", "getdel", "v"],
        vec!["GETDEL", "getdel"],
        vec!["SELECT", "3"],
        vec!["SET", "in3", "v"],
        vec!["SELECT", "0"],
    ];
    for step in steps {
        let reply = client.cmd(&step);
        assert!(!matches!(reply, Frame::Error(_)), "{step:?}: {reply:?}");
    }
    client.cmd(&["MULTI"]);
    client.cmd(&["SET", "tx:a", "1"]);
    client.cmd(&["INCR", "tx:b"]);
    client.cmd(&["GET", "tx:a"]);
    assert!(matches!(client.cmd(&["EXEC"]), Frame::Array(_)));
    // A key that expires by itself is recorded as DEL when the server deletes it.
    client.cmd(&["SET", "short", "v", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(client.cmd(&["GET", "short"]), Frame::NullBulk);
}

#[test]
fn writes_are_recorded_in_redis_propagated_forms() {
    let server = ServerProcess::amber(AOF_ON);
    let mut client = server.client();
    write_varied(&mut client);
    let commands = commands_of(&incr_file(&server.dir));
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    for absent in [
        "SETEX",
        "INCRBYFLOAT",
        "HINCRBYFLOAT",
        "SPOP",
        "EXPIRE",
        "BLPOP",
        "BRPOPLPUSH",
        "BZPOPMIN",
        "BZMPOP",
        "ZMPOP",
        "GETEX",
        "GETDEL",
        "GET",
    ] {
        assert!(
            !names.contains(&absent),
            "{absent} recorded as is: {names:?}"
        );
    }
    let has = |expected: &[&str]| commands.iter().any(|c| c == expected);
    assert!(has(&["SET", "counter", "11.5", "KEEPTTL"]), "{commands:?}");
    assert!(has(&["HSET", "hash", "f", "1.25"]), "{commands:?}");
    assert!(has(&["DEL", "gone"]), "{commands:?}");
    assert!(has(&["LPOP", "list"]), "{commands:?}");
    // As Redis 7.0: BRPOPLPUSH is recorded as RPOPLPUSH (BLMOVE as LMOVE).
    assert!(has(&["RPOPLPUSH", "list", "other"]), "{commands:?}");
    assert!(has(&["ZPOPMIN", "zset"]), "{commands:?}");
    assert!(has(&["ZPOPMAX", "zset", "1"]), "{commands:?}");
    assert!(has(&["ZPOPMIN", "zset", "1"]), "{commands:?}");
    assert!(has(&["DEL", "getdel"]), "{commands:?}");
    assert!(has(&["DEL", "short"]), "{commands:?}");
    assert!(has(&["SET", "set-pxat", "v", "PXAT", "4102444800000"]));
    let absolute = |name: &str, key: &str| {
        commands.iter().any(|c| {
            c[0] == name
                && c[1] == key
                && c.last()
                    .and_then(|t| t.parse::<i64>().ok())
                    .is_some_and(|t| t > 1_700_000_000_000)
        })
    };
    assert!(
        absolute("SET", "setex") && absolute("SET", "set-ex"),
        "{commands:?}"
    );
    assert!(absolute("PEXPIREAT", "expiring") && absolute("PEXPIREAT", "getex"));
    let srem_members: usize = commands
        .iter()
        .filter(|c| c[0] == "SREM")
        .map(|c| c.len() - 2)
        .sum();
    assert_eq!(
        srem_members, 3,
        "SPOP recorded as SREM of the members taken"
    );
    let multi = names.iter().position(|n| *n == "MULTI").expect("MULTI");
    assert_eq!(names[multi + 1..multi + 4], ["SET", "INCR", "EXEC"]);
    let select3 = commands.iter().position(|c| c == &["SELECT", "3"]);
    let in3 = commands.iter().position(|c| c[0] == "SET" && c[1] == "in3");
    assert!(select3.is_some_and(|s| in3.is_some_and(|i| s < i)));
}

#[test]
fn redis_loads_what_amber_appends_and_amber_reloads_it() {
    for preamble in ["yes", "no"] {
        let server =
            ServerProcess::amber(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut client = server.client();
        client.cmd(&["DEBUG", "POPULATE", "2000", "key", "10"]);
        write_varied(&mut client);
        let expected = digest(&mut client);
        let dir = server.kill9();
        let amber = ServerProcess::amber_in(&dir, AOF_ON);
        assert_eq!(
            digest(&mut amber.client()),
            expected,
            "Amber restart, preamble {preamble}"
        );
        drop(amber.kill9());
        assert_redis_accepts(&dir, &expected, &format!("preamble {preamble}"));
    }
}

#[test]
fn amber_loads_redis_directories_with_redis_digest() {
    for name in ["aof-plain", "aof-preamble"] {
        let dir = common::temp_dir(name);
        copy_dir(
            &fixture(&format!("redis-7.0/{name}")),
            &dir.join("appendonlydir"),
        );
        let server = ServerProcess::amber_in(&dir, AOF_ON);
        let mut client = server.client();
        assert_eq!(
            digest(&mut client),
            simple(&manifest_digest("redis-7.0", name)),
            "{name}"
        );
        client.cmd(&["SET", "after-amber", "1"]);
        let expected = digest(&mut client);
        let dir = server.kill9();
        let again = ServerProcess::amber_in(&dir, AOF_ON);
        assert_eq!(
            digest(&mut again.client()),
            expected,
            "{name} after appending"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).expect("copy fixture");
        let mut permissions = std::fs::metadata(&target).expect("metadata").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        std::fs::set_permissions(&target, permissions).expect("make writable");
    }
}

fn amber_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--port",
        &common::free_port().to_string(),
        "--dir",
        dir.to_str().expect("utf-8 dir"),
        "--save",
        "",
        "--appendonly",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A restart (with `aof-load-truncated yes`) of a directory whose incr file holds `key0` to
/// `key3` and `key4`'s `SET` cut at `cut`: `key4` is gone and the file ends at `last_start`.
fn assert_restart_cuts_key4(dir: &Path, incr: &Path, last_start: usize, cut: usize) {
    let server = ServerProcess::amber_in(dir, AOF_ON);
    let mut client = server.client();
    assert_eq!(client.cmd(&["GET", "key3"]), bulk("value3"), "cut at {cut}");
    assert_eq!(
        client.cmd(&["EXISTS", "key4"]),
        Frame::Integer(0),
        "cut at {cut}"
    );
    assert!(
        server.log().contains("!!! Truncating the AOF"),
        "cut at {cut}"
    );
    drop(server.kill9());
    assert_eq!(
        std::fs::read(incr).expect("incr").len(),
        last_start,
        "the tail is cut at the last whole command (cut at {cut})"
    );
}

#[test]
fn a_cut_tail_is_repaired_at_every_offset_or_refused_when_asked() {
    let server = ServerProcess::amber(AOF_ON);
    let mut client = server.client();
    for i in 0..5 {
        client.cmd(&["SET", &format!("key{i}"), &format!("value{i}")]);
    }
    let dir = server.kill9();
    let incr = incr_file(&dir);
    let full = std::fs::read(&incr).expect("incr file");
    let last_start = full.len() - "*3\r\n$3\r\nSET\r\n$4\r\nkey4\r\n$6\r\nvalue4\r\n".len();
    for cut in last_start + 1..full.len() {
        std::fs::write(&incr, &full[..cut]).expect("cut");
        assert_restart_cuts_key4(&dir, &incr, last_start, cut);

        std::fs::write(&incr, &full[..cut]).expect("cut");
        let output = run_amber_to_exit(
            &amber_args(&dir, &["--aof-load-truncated", "no"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert!(
            !output.status.success(),
            "cut at {cut} must refuse to start"
        );
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(
            log.contains("Unexpected end of file reading the append only file"),
            "{log}"
        );
        assert_eq!(
            std::fs::read(&incr).expect("incr"),
            &full[..cut],
            "refusal keeps the file"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_unfinished_transaction_at_the_end_is_discarded() {
    let server = ServerProcess::amber(AOF_ON);
    server.client().cmd(&["SET", "before", "1"]);
    let dir = server.kill9();
    let incr = incr_file(&dir);
    let complete = std::fs::read(&incr).expect("incr").len();
    let mut tail = Vec::new();
    amber_aof::encode_command(&["MULTI"], &mut tail);
    amber_aof::encode_command(&["SET", "inside", "1"], &mut tail);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&incr)
        .expect("open");
    std::io::Write::write_all(&mut file, &tail).expect("append");
    drop(file);
    let server = ServerProcess::amber_in(&dir, AOF_ON);
    let mut client = server.client();
    assert_eq!(client.cmd(&["GET", "before"]), bulk("1"));
    assert_eq!(client.cmd(&["EXISTS", "inside"]), Frame::Integer(0));
    assert!(
        server
            .log()
            .contains("Revert incomplete MULTI/EXEC transaction")
    );
    client.cmd(&["SET", "after", "1"]);
    let dir = server.kill9();
    assert!(commands_of(&incr).iter().all(|c| c[0] != "MULTI"));
    assert!(std::fs::read(&incr).expect("incr").len() > complete);
    let again = ServerProcess::amber_in(&dir, AOF_ON);
    assert_eq!(again.client().cmd(&["GET", "after"]), bulk("1"));
}

#[test]
fn corruption_in_the_middle_stops_startup_and_touches_nothing() {
    let server = ServerProcess::amber(AOF_ON);
    let mut client = server.client();
    for i in 0..20 {
        client.cmd(&["SET", &format!("key{i}"), "value"]);
    }
    let dir = server.kill9();
    let incr = incr_file(&dir);
    let mut bytes = std::fs::read(&incr).expect("incr");
    let middle = bytes.len() / 2;
    let star = middle
        + bytes[middle..]
            .iter()
            .position(|&b| b == b'*')
            .expect("a command");
    bytes[star] = b'!';
    std::fs::write(&incr, &bytes).expect("corrupt");
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("appendonlydir"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing(&dir);
    let args = amber_args(&dir, &[]);
    let output = run_amber_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        log.contains("Bad file format reading the append only file"),
        "{log}"
    );
    assert!(
        log.contains(&format!("offset {star}")),
        "the offset is named: {log}"
    );
    assert_eq!(std::fs::read(&incr).expect("incr"), bytes);
    assert_eq!(listing(&dir), before, "no file created or deleted");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_legacy_single_file_loads_and_is_upgraded() {
    let dir = common::temp_dir("legacy");
    std::fs::copy(
        fixture("redis-legacy/rdb-preamble.aof"),
        dir.join("appendonly.aof"),
    )
    .expect("copy legacy AOF");
    let server = ServerProcess::amber_in(&dir, AOF_ON);
    let mut client = server.client();
    assert_eq!(
        digest(&mut client),
        simple(&manifest_digest("redis-legacy", "rdb-preamble.aof"))
    );
    assert!(
        !dir.join("appendonly.aof").exists(),
        "moved into the directory"
    );
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest"))
        .expect("manifest");
    assert!(
        manifest.contains("file appendonly.aof seq 1 type b"),
        "{manifest}"
    );
    client.cmd(&["SET", "new", "1"]);
    let expected = digest(&mut client);
    let dir = server.kill9();
    let again = ServerProcess::amber_in(&dir, AOF_ON);
    assert_eq!(digest(&mut again.client()), expected);
}

#[test]
fn debug_loadaof_reloads_without_appending_again() {
    let server = ServerProcess::amber(AOF_ON);
    let mut client = server.client();
    write_varied(&mut client);
    let expected = digest(&mut client);
    let incr = incr_file(&server.dir);
    let size = std::fs::metadata(&incr).expect("incr").len();
    assert_eq!(client.cmd(&["DEBUG", "LOADAOF"]), simple("OK"));
    assert_eq!(digest(&mut client), expected);
    assert_eq!(std::fs::metadata(&incr).expect("incr").len(), size);
}

/// The `calls=` of each command in INFO commandstats, by name.
fn command_calls(client: &mut common::Client) -> Vec<(String, String)> {
    let Frame::Bulk(text) = client.cmd(&["INFO", "commandstats"]) else {
        panic!("INFO is a bulk string");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.to_string()))
        })
        .collect()
}

/// As Redis's loader, a replayed AOF leaves INFO commandstats empty: neither its commands nor
/// those its EXECs ran are counted.
#[test]
fn a_replayed_aof_counts_commands_in_commandstats_as_redis_does() {
    let server = ServerProcess::amber(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut client = server.client();
    write_varied(&mut client);
    client.cmd(&["MULTI"]);
    client.cmd(&["INCR", "in-multi"]);
    client.cmd(&["RPUSH", "in-multi-list", "a"]);
    client.cmd(&["EXEC"]);
    let dir = server.kill9();
    let redis_dir = common::temp_dir("commandstats-redis");
    copy_dir(&dir.join("appendonlydir"), &redis_dir.join("appendonlydir"));
    let amber = ServerProcess::amber_in(&dir, AOF_ON);
    let redis = ServerProcess::redis_in(&redis_dir, AOF_ON);
    let mut redis_client = redis.client();
    wait_for(
        || redis_client.cmd(&["PING"]) == simple("PONG"),
        "redis to load",
    );
    let mut amber_client = amber.client();
    wait_for(
        || amber_client.cmd(&["PING"]) == simple("PONG"),
        "amber to load",
    );
    let amber_calls = command_calls(&mut amber_client);
    let redis_calls = command_calls(&mut redis_client);
    // Both counted the PINGs above, and nothing of the log, EXEC's commands included.
    let without_ping = |calls: Vec<(String, String)>| -> Vec<(String, String)> {
        calls
            .into_iter()
            .filter(|(name, _)| name != "ping")
            .collect()
    };
    assert_eq!(without_ping(amber_calls), without_ping(redis_calls));
    for client in [&mut amber_client, &mut redis_client] {
        assert_eq!(
            client.cmd(&["GET", "in-multi"]),
            bulk("1"),
            "the log was replayed"
        );
    }
}

#[test]
fn config_set_appendonly_yes_starts_from_the_current_dataset() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "1000"]);
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "appendonly", "yes"]),
        simple("OK")
    );
    client.cmd(&["SET", "after", "1"]);
    // The base is written by a forked rewrite; the manifest names the new files once it is in.
    common::wait_for(
        || {
            common::info_field(&mut client, "aof_rewrites") == "1"
                && common::info_field(&mut client, "aof_rewrite_in_progress") == "0"
        },
        "the rewrite that writes the base",
    );
    assert_eq!(
        common::info_field(&mut client, "aof_last_bgrewrite_status"),
        "ok"
    );
    client.cmd(&["SET", "after-rewrite", "1"]);
    let expected = digest(&mut client);
    let dir = server.kill9();
    let restarted = ServerProcess::amber_in(&dir, AOF_ON);
    assert_eq!(digest(&mut restarted.client()), expected);
}

#[test]
fn timestamps_are_annotations_the_loader_skips() {
    let server = ServerProcess::amber(&["--appendonly", "yes", "--aof-timestamp-enabled", "yes"]);
    let mut client = server.client();
    client.cmd(&["SET", "a", "1"]);
    let text = std::fs::read(incr_file(&server.dir)).expect("incr");
    assert!(
        text.starts_with(b"#TS:"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    let expected = digest(&mut client);
    let dir = server.kill9();
    let again = ServerProcess::amber_in(&dir, AOF_ON);
    assert_eq!(digest(&mut again.client()), expected);
}

/// Asserts that every key of `keys` exists, 1000 keys per `EXISTS`; names the first missing.
fn assert_all_exist(client: &mut common::Client, keys: &[String], context: &str) {
    for chunk in keys.chunks(1000) {
        let mut args = vec!["EXISTS"];
        args.extend(chunk.iter().map(String::as_str));
        if client.cmd(&args) != Frame::Integer(chunk.len() as i64) {
            let missing = chunk
                .iter()
                .find(|key| client.cmd(&["EXISTS", key.as_str()]) != Frame::Integer(1));
            panic!("lost {missing:?} ({context})");
        }
    }
}

/// Sends `count` SETs of `value_len`-byte values as one pipeline and reads the replies; the keys
/// acknowledged with `+OK`, in order, until the connection broke.
fn pipelined_sets(
    client: &mut common::Client,
    prefix: &str,
    count: usize,
    value_len: usize,
) -> Vec<String> {
    let value = "v".repeat(value_len);
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}:{i}")).collect();
    // The server may be killed while the pipeline is being written: what was answered counts.
    for key in &keys {
        if !client.try_send(&["SET", key.as_str(), value.as_str()]) {
            break;
        }
    }
    let mut acknowledged = Vec::new();
    for key in keys {
        match client.read() {
            Some(Frame::Simple(ok)) if ok == b"OK" => acknowledged.push(key),
            _ => break,
        }
    }
    acknowledged
}

/// Under `appendfsync always` small groups (one request per client) are fsynced on the event
/// loop and large ones (pipelines of 1 KiB values) on the fsync thread. Mixed, for seconds,
/// with readers: every request is answered (the client's 10 s read timeout would fail it), and
/// every acknowledged write is in the file.
#[test]
fn always_answers_every_request_whatever_the_size_of_its_group() {
    let dir = common::temp_dir("always-mixed");
    let server = ServerProcess::amber_in(&dir, &["--appendonly", "yes", "--appendfsync", "always"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let port = server.port;
    let workers: Vec<_> = (0..5)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut client = common::Client::connect(port);
                let mut acknowledged = Vec::new();
                let mut round = 0;
                while std::time::Instant::now() < deadline {
                    round += 1;
                    let prefix = format!("w{worker}:{round}");
                    match worker {
                        0 | 1 => {
                            let done = pipelined_sets(&mut client, &prefix, 24, 1024);
                            assert_eq!(done.len(), 24, "a pipeline went unanswered");
                            acknowledged.extend(done);
                        }
                        2 => assert_eq!(client.cmd(&["PING"]), Frame::Simple(b"PONG".to_vec())),
                        _ => {
                            let done = pipelined_sets(&mut client, &prefix, 1, 8);
                            assert!(!done.is_empty(), "a write went unanswered");
                            acknowledged.extend(done);
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.join().expect("a request went unanswered"));
    }
    let dir = server.kill9();
    let again = ServerProcess::amber_in(&dir, AOF_ON);
    let mut checker = again.client();
    assert!(acknowledged.len() > 100, "{}", acknowledged.len());
    assert_all_exist(&mut checker, &acknowledged, "after the last restart");
}

/// kill -9 at random moments of a write load under `appendfsync always`: every write that got
/// its reply is there after the restart. One writer sends pipelines of 1 KiB values, so that
/// both the loop's own fsyncs and the fsync thread's are crashed into.
#[test]
fn kill9_under_always_loses_no_acknowledged_write() {
    kill9_under_always(&[]);
}

/// The same with the incr file kept zero-filled ahead of its end in steps of 64 KiB, so that
/// kills land before, during and after the zeros are written, and every restart cuts them.
#[test]
fn kill9_under_always_with_preallocation_loses_no_acknowledged_write() {
    kill9_under_always(&["--aof-preallocate", "64kb"]);
}

fn kill9_under_always(extra: &[&str]) {
    let dir = common::temp_dir("always-crash");
    let mut args = vec!["--appendonly", "yes", "--appendfsync", "always"];
    args.extend_from_slice(extra);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for cycle in 0..20 {
        let server = ServerProcess::amber_in(&dir, &args);
        let mut checker = server.client();
        assert_all_exist(&mut checker, &acknowledged, &format!("cycle {cycle}"));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let stop = stop.clone();
                let port = server.port;
                std::thread::spawn(move || {
                    let mut done = Vec::new();
                    let mut client = common::Client::connect(port);
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let prefix = format!("c{cycle}:w{writer}:{i}");
                        let (count, value_len) = if writer == 0 { (24, 1024) } else { (1, 1) };
                        let keys = pipelined_sets(&mut client, &prefix, count, value_len);
                        let complete = keys.len() == count;
                        done.extend(keys);
                        if !complete {
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 200));
        let kept_dir = server.kill9();
        assert_eq!(kept_dir, dir);
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            acknowledged.extend(writer.join().expect("writer thread"));
        }
    }
    let server = ServerProcess::amber_in(&dir, &args);
    let mut checker = server.client();
    assert!(
        acknowledged.len() > 100,
        "the load wrote something: {}",
        acknowledged.len()
    );
    assert_all_exist(&mut checker, &acknowledged, "after the last restart");
}

/// kill -9 under `appendfsync everysec`: a process crash loses nothing that was replied to,
/// because every write reaches the kernel (one `write` per batch) before its reply. Only a
/// machine crash can lose the writes of the last fsync interval (about 1 s, at most 2 s when
/// the disk is slow); that window cannot be produced by killing a process.
#[test]
fn kill9_under_everysec_loses_no_acknowledged_write() {
    let dir = common::temp_dir("everysec-crash");
    let mut acknowledged: Vec<String> = Vec::new();
    for cycle in 0..5 {
        let server = ServerProcess::amber_in(&dir, AOF_ON);
        let port = server.port;
        let writer = std::thread::spawn(move || {
            let mut client = common::Client::connect(port);
            let mut done = Vec::new();
            for i in 0.. {
                let key = format!("e{cycle}:{i}");
                if !client.try_send(&["SET", key.as_str(), "v"]) {
                    break;
                }
                match client.read() {
                    Some(Frame::Simple(ok)) if ok == b"OK" => done.push(key),
                    _ => break,
                }
            }
            done
        });
        std::thread::sleep(Duration::from_millis(300 + 150 * cycle));
        server.kill9();
        acknowledged.extend(writer.join().expect("writer"));
    }
    let server = ServerProcess::amber_in(&dir, AOF_ON);
    let mut client = server.client();
    let lost = acknowledged
        .iter()
        .filter(|key| client.cmd(&["EXISTS", key.as_str()]) != Frame::Integer(1))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged writes lost",
        acknowledged.len()
    );
}

#[test]
fn a_key_expired_in_the_base_still_takes_the_commands_logged_after_it() {
    // The base (RDB preamble) holds the key with its TTL; the incr file then PERSISTs it while
    // it is alive. A restart after the TTL must replay that PERSIST on the key, as Redis does:
    // skipping the expired key in the base would lose it.
    let server = ServerProcess::amber(&["--appendonly", "yes", "--aof-use-rdb-preamble", "yes"]);
    let mut client = server.client();
    client.cmd(&["SET", "k", "v", "PX", "1000"]);
    client.cmd(&["BGREWRITEAOF"]);
    common::wait_for(
        || {
            common::info_field(&mut client, "aof_rewrite_in_progress") == "0"
                && common::info_field(&mut client, "aof_last_bgrewrite_status") == "ok"
        },
        "the rewrite",
    );
    client.cmd(&["PERSIST", "k"]);
    let dir = server.kill9();
    std::thread::sleep(Duration::from_millis(1200));
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    let mut after = restarted.client();
    assert_eq!(after.cmd(&["GET", "k"]), common::bulk("v"));
    assert_eq!(after.cmd(&["TTL", "k"]), amber_protocol::Frame::Integer(-1));
}

const PREALLOCATED: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--aof-preallocate",
    "1mb",
];

/// `aof-preallocate`: the open incr file holds zeros past its last command; a crash leaves
/// them, a restart cuts them off (whatever `aof-load-truncated` says, since no command is
/// lost), and a clean shutdown leaves a file that redis-check-aof and Redis accept.
#[test]
fn preallocated_zeros_are_cut_at_restart_and_gone_after_shutdown() {
    let server = ServerProcess::amber(PREALLOCATED);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "500", "key", "10"]);
    write_varied(&mut client);
    let expected = digest(&mut client);
    let dir = server.kill9();
    let incr = incr_file(&dir);
    let bytes = std::fs::read(&incr).expect("incr");
    let content = bytes.iter().rposition(|&b| b != 0).expect("commands") + 1;
    assert!(
        bytes.len() >= content + 512 * 1024,
        "zeros follow the commands: {} of {}",
        content,
        bytes.len()
    );
    let mut args = PREALLOCATED.to_vec();
    args.extend(["--aof-load-truncated", "no"]);
    let mut server = ServerProcess::amber_in(&dir, &args);
    let mut client = server.client();
    assert_eq!(digest(&mut client), expected, "after the crash");
    assert!(
        server
            .log()
            .contains("preallocated space (zeros) after the last command"),
        "{}",
        server.log()
    );
    client.cmd(&["SET", "after-restart", "1"]);
    let expected = digest(&mut client);
    client.send(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(client.read(), None);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let sealed = std::fs::read(&incr).expect("incr");
    assert_ne!(
        sealed.last(),
        Some(&0),
        "the file ends with its last command"
    );
    assert_eq!(
        commands_of(&incr).last().map(|c| c[1].clone()),
        Some("after-restart".to_string())
    );
    assert_redis_accepts(&dir, &expected, "a sealed preallocated file");
}

/// redis-check-aof accepts the AOF directory of `dir`, and Redis 7.0 loads it with the
/// `expected` digest.
fn assert_redis_accepts(dir: &Path, expected: &Frame, what: &str) {
    let check = std::process::Command::new(common::redis_tool("redis-check-aof"))
        .arg(dir.join("appendonlydir/appendonly.aof.manifest"))
        .output()
        .expect("redis-check-aof runs");
    assert!(
        check.status.success(),
        "redis-check-aof rejects Amber's AOF ({what}): {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let redis = ServerProcess::redis_in(dir, AOF_ON);
    let mut redis_client = redis.client();
    wait_for(
        || redis_client.cmd(&["PING"]) == simple("PONG"),
        "redis to load",
    );
    assert_eq!(&digest(&mut redis_client), expected, "Redis load, {what}");
}

/// A command cut short by a crash, followed by preallocated zeros, is a cut tail: repaired at
/// every cut under `aof-load-truncated yes`, refused under `no`. Zeros followed by more data
/// are not a tail: the load stops and the file is left as it was.
#[test]
fn a_command_cut_short_before_preallocated_zeros_is_a_cut_tail() {
    let server = ServerProcess::amber(PREALLOCATED);
    let mut client = server.client();
    for i in 0..5 {
        client.cmd(&["SET", &format!("key{i}"), &format!("value{i}")]);
    }
    let dir = server.kill9();
    let incr = incr_file(&dir);
    let bytes = std::fs::read(&incr).expect("incr");
    let full = &bytes[..=bytes.iter().rposition(|&b| b != 0).expect("commands")];
    let last_start = full.len() - "*3\r\n$3\r\nSET\r\n$4\r\nkey4\r\n$6\r\nvalue4\r\n".len();
    for cut in last_start + 1..full.len() {
        let mut torn = full[..cut].to_vec();
        torn.resize(cut + 4096, 0);
        std::fs::write(&incr, &torn).expect("tear");
        assert_restart_cuts_key4(&dir, &incr, last_start, cut);
    }
    let mut torn = full[..full.len() - 3].to_vec();
    torn.resize(torn.len() + 4096, 0);
    std::fs::write(&incr, &torn).expect("tear");
    let args = amber_args(&dir, &["--aof-load-truncated", "no"]);
    let output = run_amber_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Unexpected end of file"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(std::fs::read(&incr).expect("incr"), torn, "left as it was");

    let mut holed = full[..last_start].to_vec();
    holed.resize(last_start + 4096, 0);
    holed.extend_from_slice(&full[last_start..]);
    std::fs::write(&incr, &holed).expect("hole");
    let args = amber_args(&dir, &[]);
    let output = run_amber_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Bad file format"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(std::fs::read(&incr).expect("incr"), holed, "left as it was");
    let _ = std::fs::remove_dir_all(dir);
}

/// `CONFIG SET aof-preallocate` applies from the next incr file: the open one stays as it is,
/// the one a rewrite opens is zero-filled ahead, and a rewrite seals the file it closes.
#[test]
fn config_set_preallocate_applies_from_the_next_incr_file() {
    let server = ServerProcess::amber(AOF_ON);
    let mut client = server.client();
    client.cmd(&["SET", "before", "1"]);
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "aof-preallocate", "1mb"]),
        simple("OK")
    );
    assert_eq!(
        client.cmd(&["CONFIG", "GET", "aof-preallocate"]),
        Frame::Array(vec![bulk("aof-preallocate"), bulk("1048576")])
    );
    client.cmd(&["SET", "still-appended", "1"]);
    let first = incr_file(&server.dir);
    let first_bytes = std::fs::read(&first).expect("incr");
    assert_ne!(
        first_bytes.last(),
        Some(&0),
        "the open file is not preallocated"
    );
    client.cmd(&["BGREWRITEAOF"]);
    wait_for(
        || {
            incr_file(&server.dir) != first
                && common::info_field(&mut client, "aof_rewrite_in_progress") == "0"
        },
        "the rewrite to finish",
    );
    client.cmd(&["SET", "after", "1"]);
    let second = incr_file(&server.dir);
    let bytes = std::fs::read(&second).expect("incr");
    assert!(
        bytes.len() >= 512 * 1024,
        "zero-filled ahead: {}",
        bytes.len()
    );
    assert_eq!(bytes.last(), Some(&0));
    client.cmd(&["CONFIG", "SET", "aof-preallocate", "0"]);
    client.cmd(&["BGREWRITEAOF"]);
    wait_for(
        || {
            incr_file(&server.dir) != second
                && common::info_field(&mut client, "aof_rewrite_in_progress") == "0"
        },
        "the second rewrite to finish",
    );
    if let Ok(sealed) = std::fs::read(&second) {
        // The rewrite may already have deleted it as history.
        assert_ne!(sealed.last(), Some(&0), "the closed file was sealed");
    }
    client.cmd(&["SET", "last", "1"]);
    let third = std::fs::read(incr_file(&server.dir)).expect("incr");
    assert_ne!(third.last(), Some(&0), "preallocation off again");
}
