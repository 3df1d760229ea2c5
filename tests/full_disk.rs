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

/// One `SET` on its own connection: the reply, or `None` when the server closed the
/// connection without replying.
fn set_once(port: u16, key: &str, value: &[u8]) -> Option<Frame> {
    let mut client = Client::connect(port);
    client.send(&[b"SET".as_slice(), key.as_bytes(), value]);
    client.read()
}

/// What one server did through the scenario.
struct Outcome {
    acknowledged: Vec<String>,
    first_refusal: String,
    closed_without_reply: usize,
    lost_after_kill: usize,
}

fn scenario(name: &str, start: impl Fn(&Path, &Path) -> ServerProcess) -> Option<Outcome> {
    let disk = SmallDisk::mount(name, 8)?;
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
        acknowledged,
        first_refusal,
        closed_without_reply,
        lost_after_kill,
    })
}

const FLAGS: [&str; 6] = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--aof-use-rdb-preamble",
    "yes",
];

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_like_redis() {
    let with_log = |log: &Path| {
        let mut flags: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        flags.extend(["--logfile".into(), log.display().to_string()]);
        flags
    };
    let amber = scenario("amber-full", |dir, log| {
        let flags = with_log(log);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServerProcess::amber_in(dir, &flags)
    });
    let Some(amber) = amber else {
        // Mounting needs root (CI runs as root) and a kernel that lets this container mount.
        eprintln!(
            "SKIPPED: could not mount a tmpfs (uid {})",
            nix::unistd::geteuid()
        );
        return;
    };
    let redis = scenario("redis-full", |dir, log| {
        let flags = with_log(log);
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
}
