//! A full disk under the real binaries: `dir` is a small tmpfs (the test needs root to mount
//! it, as CI runs), the AOF is on with `everysec`, and a filler file takes the last bytes.
//! Amber and Redis 7.0 go through the same steps side by side: writes are refused with
//! `-MISCONF Errors writing to the AOF file`, reads keep working, `INFO persistence` shows
//! the error, writes come back once space is freed. On top of Redis, Amber never acknowledges
//! a write it could not write: after a kill -9, every `+OK` it gave is in the restarted
//! dataset. The test prints how many acknowledged writes Redis lost the same way.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, Frame, ServerProcess, bulk, info_field, temp_dir, wait_for};

/// A tmpfs of `megabytes` mounted on a fresh directory; unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(label: &str, megabytes: u32) -> Option<SmallDisk> {
        let path = temp_dir(label);
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A small tmpfs, or `None` after saying why the test is skipped: mounting needs root (CI
/// runs as root) and a kernel that lets this container mount.
fn small_disk_or_skip(label: &str, megabytes: u32) -> Option<SmallDisk> {
    let disk = SmallDisk::mount(label, megabytes);
    if disk.is_none() {
        eprintln!(
            "SKIPPED: could not mount a tmpfs (uid {})",
            nix::unistd::geteuid()
        );
    }
    disk
}

/// Fills the disk holding `dir` with `dir/filler`, up to the last byte it takes.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let small = [b'x'; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    filler
}

/// The `temp-*` files in `dir` (what a failed save must not leave).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("temp-"))
        .collect()
}

/// One `SET` on its own connection: the reply, or `None` when the server closed the
/// connection without replying.
fn set_once(port: u16, key: &str, value: &[u8]) -> Option<Frame> {
    let mut client = Client::connect(port);
    client.send(&[b"SET".as_slice(), key.as_bytes(), value]);
    client.read()
}

/// What one server did through the scenario.
struct Outcome {
    log: PathBuf,
    acknowledged: Vec<String>,
    first_refusal: String,
    closed_without_reply: usize,
    lost_after_kill: usize,
}

fn scenario(name: &str, start: impl Fn(&Path, &Path) -> ServerProcess) -> Option<Outcome> {
    let disk = small_disk_or_skip(name, 8)?;
    let log = temp_dir(&format!("{name}-log")).join("server.log");
    let server = start(&disk.path, &log);
    let port = server.port;
    let mut reader = server.client();
    assert_eq!(reader.cmd(&["SET", "before", "kept"]), common::simple("OK"));
    std::thread::sleep(Duration::from_millis(1200)); // one everysec fsync
    let filler = fill(&disk.path);

    let value = vec![b'v'; 16 * 1024];
    let mut acknowledged = Vec::new();
    let mut closed_without_reply = 0;
    let mut first_refusal = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        assert!(
            Instant::now() < deadline,
            "{name}: writes were never refused"
        );
        let key = format!("k{i}");
        match set_once(port, &key, &value) {
            Some(Frame::Simple(ok)) if ok == b"OK" => acknowledged.push(key),
            Some(Frame::Error(error)) => {
                first_refusal = Some(String::from_utf8_lossy(&error).into_owned());
                break;
            }
            Some(other) => panic!("{name}: unexpected reply {other:?}"),
            None => closed_without_reply += 1,
        }
    }
    let first_refusal = first_refusal.unwrap_or_default();
    assert_eq!(
        reader.cmd(&["GET", "before"]),
        bulk("kept"),
        "{name}: reads work"
    );
    assert_eq!(
        info_field(&mut reader, "aof_last_write_status"),
        "err",
        "{name}"
    );

    std::fs::remove_file(&filler).unwrap();
    wait_for(
        || matches!(set_once(port, "after", b"back"), Some(Frame::Simple(ok)) if ok == b"OK"),
        "writes accepted again after space was freed",
    );
    acknowledged.push("after".into());
    wait_for(
        || info_field(&mut reader, "aof_last_write_status") == "ok",
        "aof_last_write_status back to ok",
    );

    let dir = server.kill9();
    let restarted = start(&dir, &log);
    let mut client = restarted.client();
    let lost_after_kill = acknowledged
        .iter()
        .filter(|key| matches!(client.cmd(&["EXISTS", key.as_str()]), Frame::Integer(0)))
        .count();
    drop(restarted);
    Some(Outcome {
        log,
        acknowledged,
        first_refusal,
        closed_without_reply,
        lost_after_kill,
    })
}

/// The flags of one scenario: the AOF with `policy`, and the log in `log`.
fn flags(policy: &str, log: &Path) -> Vec<String> {
    [
        "--appendonly",
        "yes",
        "--appendfsync",
        policy,
        "--aof-use-rdb-preamble",
        "yes",
        "--logfile",
        log.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn start_amber(policy: &'static str) -> impl Fn(&Path, &Path) -> ServerProcess {
    start_amber_with(policy, &[])
}

fn start_amber_with(
    policy: &'static str,
    extra: &'static [&'static str],
) -> impl Fn(&Path, &Path) -> ServerProcess {
    move |dir, log| {
        let mut flags = flags(policy, log);
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServerProcess::amber_in(dir, &flags)
    }
}

/// How many lines of the log at `path` contain `text`.
fn log_lines(path: &Path, text: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(text))
        .count()
}

/// Each change of health is logged once: the error when the disk fills, the recovery when
/// it frees (a restart appends to the same log, so only the first run's lines are counted).
fn assert_logged_once_each(log: &Path) {
    assert_eq!(
        log_lines(
            log,
            "Error writing to the AOF file: No space left on device"
        ),
        1,
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert_eq!(
        log_lines(log, "AOF write error looks solved"),
        1,
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_like_redis() {
    let Some(amber) = scenario("amber-full", start_amber("everysec")) else {
        return;
    };
    let redis = scenario("redis-full", |dir, log| {
        let flags = flags("everysec", log);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServerProcess::redis_in(dir, &flags)
    })
    .expect("the tmpfs mounted for Amber");
    for (name, outcome) in [("amber", &amber), ("redis", &redis)] {
        eprintln!(
            "{name}: {} writes acknowledged, {} connections closed without a reply, refused with {:?}, {} acknowledged writes lost after kill -9",
            outcome.acknowledged.len(),
            outcome.closed_without_reply,
            outcome.first_refusal,
            outcome.lost_after_kill
        );
    }
    assert_eq!(
        redis.first_refusal,
        "MISCONF Errors writing to the AOF file: No space left on device"
    );
    assert_eq!(amber.first_refusal, redis.first_refusal);
    assert_eq!(
        amber.lost_after_kill, 0,
        "Amber lost writes it had acknowledged"
    );
    assert_logged_once_each(&amber.log);
}

/// Writes were refused with Redis's words for a full disk, nothing acknowledged was lost
/// across kill -9, and each change of health was logged once.
fn assert_refused_then_recovered_losing_nothing(amber: &Outcome) {
    assert_eq!(
        amber.first_refusal,
        "MISCONF Errors writing to the AOF file: No space left on device"
    );
    assert_eq!(
        amber.lost_after_kill, 0,
        "Amber lost writes it had acknowledged"
    );
    assert_logged_once_each(&amber.log);
}

/// Redis exits under `always` when the AOF cannot be written. Amber's policy: the failing
/// batch is never acknowledged, writes are refused with -MISCONF, reads are answered, and
/// writes come back by themselves once the disk has room.
#[test]
fn under_always_a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let Some(amber) = scenario("amber-full-always", start_amber("always")) else {
        return;
    };
    assert_refused_then_recovered_losing_nothing(&amber);
    assert_eq!(log_lines(&amber.log, "appendfsync is 'always'"), 1);
}

/// The same with the incr file zero-filled ahead (`aof-preallocate`): writes go into the
/// zeros until they run out, zeros that cannot be written are given up, then writes are
/// refused, come back, and nothing acknowledged is lost across kill -9 (whose restart cuts
/// the zeros).
#[test]
fn with_preallocation_a_full_disk_refuses_writes_and_recovers() {
    let Some(amber) = scenario(
        "amber-full-prealloc",
        start_amber_with("always", &["--aof-preallocate", "1mb"]),
    ) else {
        return;
    };
    assert_refused_then_recovered_losing_nothing(&amber);
}

/// BGSAVE and BGREWRITEAOF on a full disk: both fail with the child's reason in the log (as
/// Redis's child logs it), the files in place stay intact, no temp file is left, and both
/// work again once there is room.
#[test]
fn background_saves_on_a_full_disk_log_why_and_keep_the_old_files() {
    let Some(disk) = small_disk_or_skip("amber-full-bg", 8) else {
        return;
    };
    let log = temp_dir("amber-full-bg-log").join("server.log");
    let server = start_amber("everysec")(&disk.path, &log);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "100"]);
    assert_eq!(client.cmd(&["SAVE"]), common::simple("OK"));
    let rdb = std::fs::read(disk.path.join("dump.rdb")).unwrap();
    let aof_files = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = aof_files(&disk.path);
    let filler = fill(&disk.path);

    client.cmd(&["BGSAVE"]);
    wait_for(
        || info_field(&mut client, "rdb_last_bgsave_status") == "err",
        "BGSAVE fails on the full disk",
    );
    client.cmd(&["BGREWRITEAOF"]);
    wait_for(
        || info_field(&mut client, "aof_last_bgrewrite_status") == "err",
        "the rewrite fails on the full disk",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Write error saving DB on disk: No space left on device"),
        "{text}"
    );
    // Either the new incr file or the new base could not be written, whichever ran out.
    assert!(
        text.contains("Can't open a new AOF incr file for the rewrite: No space left on device")
            || text.contains(
                "Background AOF rewrite terminated with error: Write error writing append only file on disk: No space left on device"
            ),
        "{text}"
    );
    assert_eq!(std::fs::read(disk.path.join("dump.rdb")).unwrap(), rdb);
    assert_eq!(aof_files(&disk.path), before, "no temp file left");
    let leftovers = temp_files(&disk.path);
    assert!(leftovers.is_empty(), "{leftovers:?}");

    std::fs::remove_file(&filler).unwrap();
    client.cmd(&["BGSAVE"]);
    wait_for(
        || info_field(&mut client, "rdb_last_bgsave_status") == "ok",
        "BGSAVE works once there is room",
    );
    wait_for(
        || {
            client.cmd(&["BGREWRITEAOF"]);
            info_field(&mut client, "aof_last_bgrewrite_status") == "ok"
        },
        "the rewrite works once there is room",
    );
}

/// A backup into a full disk: `BACKUP NOW` fails with the child's reason, no staging
/// directory is left behind, and the next backup works once there is room.
#[test]
fn a_backup_on_a_full_disk_fails_cleanly_and_works_again() {
    let Some(disk) = small_disk_or_skip("amber-full-backup", 8) else {
        return;
    };
    let data = temp_dir("amber-full-backup-data");
    let backups = disk.path.join("backups");
    let server = ServerProcess::amber_in(
        &data,
        &[
            "--backup-dir",
            backups.to_str().unwrap(),
            "--backup-interval",
            "0",
        ],
    );
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "100"]);
    std::fs::create_dir_all(&backups).unwrap();
    let filler = fill(&disk.path);
    let Frame::Error(error) = client.cmd(&["BACKUP", "NOW"]) else {
        panic!("a backup into a full disk fails")
    };
    let error = String::from_utf8_lossy(&error).into_owned();
    assert!(error.contains("No space left on device"), "{error}");
    let staging: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".staging-"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    std::fs::remove_file(&filler).unwrap();
    let Frame::Simple(id) = client.cmd(&["BACKUP", "NOW"]) else {
        panic!("the backup works once there is room")
    };
    assert!(backups.join(String::from_utf8_lossy(&id).as_ref()).is_dir());
}

/// A forkless save that runs out of room: the same log line and status as a forked one, the
/// old file kept, no temp file; the server keeps serving, and the next forkless save, once
/// there is room, is the dataset at its start (the abandoned capture finished its marks).
#[test]
fn a_forkless_save_on_a_full_disk_fails_cleanly_and_the_next_one_is_whole() {
    let Some(disk) = small_disk_or_skip("amber-full-forkless", 8) else {
        return;
    };
    let log = temp_dir("amber-full-forkless-log").join("server.log");
    let server = ServerProcess::amber_in(
        &disk.path,
        &[
            "--logfile",
            &log.display().to_string(),
            "--bgsave-method",
            "forkless",
        ],
    );
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "20000", "key", "100"]);
    assert_eq!(client.cmd(&["SAVE"]), common::simple("OK"));
    let rdb = std::fs::read(disk.path.join("dump.rdb")).unwrap();
    let filler = fill(&disk.path);

    client.cmd(&["BGSAVE"]);
    wait_for(
        || info_field(&mut client, "rdb_last_bgsave_status") == "err",
        "the forkless save fails on the full disk",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Background forkless saving started"),
        "{text}"
    );
    assert!(
        text.contains("Write error saving DB on disk: No space left on device"),
        "{text}"
    );
    assert_eq!(std::fs::read(disk.path.join("dump.rdb")).unwrap(), rdb);
    let leftovers = temp_files(&disk.path);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Reads and writes go on (no save points, so no -MISCONF).
    assert_eq!(
        client.cmd(&["SET", "during", "failure"]),
        common::simple("OK")
    );
    assert!(matches!(client.cmd(&["GET", "key:7"]), Frame::Bulk(_)));

    std::fs::remove_file(&filler).unwrap();
    client.cmd(&["DEL", "during"]);
    let expected = client.cmd(&["DEBUG", "DIGEST"]);
    assert_eq!(
        client.cmd(&["BGSAVE"]),
        common::simple("Background saving started")
    );
    wait_for(
        || {
            info_field(&mut client, "rdb_bgsave_in_progress") == "0"
                && info_field(&mut client, "rdb_last_bgsave_status") == "ok"
        },
        "the next forkless save works once there is room",
    );
    let copy = temp_dir("amber-full-forkless-load");
    std::fs::copy(disk.path.join("dump.rdb"), copy.join("dump.rdb")).unwrap();
    let reloaded = ServerProcess::amber_in(&copy, &[]);
    assert_eq!(reloaded.client().cmd(&["DEBUG", "DIGEST"]), expected);
}
