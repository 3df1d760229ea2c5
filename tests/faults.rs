//! Crashes in the middle of background work, against the real binary: a server killed with
//! `kill -9` while its backup child writes takes the child down with it at once, and the
//! staging directory it leaves is removed by the next server to start and by
//! `amber-backup prune`.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ServerProcess, temp_dir, wait_for};

/// The children of process `pid` (from `/proc`).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` still runs (a zombie counts as gone: it does nothing any more).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Fails unless process `pid` stops within 500 ms (its server was just killed).
fn assert_gone_within_500ms(pid: u32, what: &str) {
    let killed_at = Instant::now();
    while running(pid) {
        assert!(
            killed_at.elapsed() < Duration::from_millis(500),
            "{what} outlived its server by 500 ms"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn staging_dirs(backups: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(backups)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".staging-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn backup_flags(backups: &Path) -> Vec<String> {
    [
        "--backup-dir",
        backups.to_str().unwrap(),
        "--backup-interval",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn kill_9_mid_backup_takes_the_child_down_and_its_staging_is_cleaned_up() {
    let backups = temp_dir("faults-backups");
    let flags = backup_flags(&backups);
    let mut with_delay: Vec<&str> = flags.iter().map(String::as_str).collect();
    // One millisecond per key: the child writes for seconds.
    with_delay.extend(["--rdb-key-save-delay", "1000"]);
    let server = ServerProcess::amber(&with_delay);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "5000"]);
    client.send(&["BACKUP", "NOW"]);
    let pid = server.pid();
    let mut child = None;
    wait_for(
        || {
            child = children_of(pid).first().copied();
            child.is_some() && !staging_dirs(&backups).is_empty()
        },
        "the backup child runs and writes its staging directory",
    );
    let child = child.unwrap();
    let dir = server.kill9();
    assert_gone_within_500ms(child, "the backup child");
    let left = staging_dirs(&backups);
    assert_eq!(left.len(), 1, "kill -9 leaves the staging directory");

    // `amber-backup prune` removes it (its server is gone).
    let output = std::process::Command::new(common::amber_binary().with_file_name("amber-backup"))
        .arg("--backup-dir")
        .arg(&backups)
        .arg("prune")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("removed abandoned"), "{printed}");
    assert!(staging_dirs(&backups).is_empty());

    // A server starting on that directory removes what a killed one left.
    std::fs::create_dir_all(&left[0]).unwrap();
    std::fs::write(left[0].join("dump.rdb"), b"partial").unwrap();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let restarted = ServerProcess::amber_in(&dir, &flags);
    wait_for(
        || staging_dirs(&backups).is_empty(),
        "the restarted server removes the abandoned staging directory",
    );
    assert!(
        restarted
            .log()
            .contains("left by a backup that never finished")
    );
    drop(restarted);
    let _ = std::fs::remove_dir_all(&backups);
}

#[test]
fn kill_9_mid_rewrite_takes_the_rewrite_child_down() {
    let server = ServerProcess::amber(&["--appendonly", "yes", "--rdb-key-save-delay", "1000"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "5000"]);
    client.cmd(&["BGREWRITEAOF"]);
    let pid = server.pid();
    let mut child = None;
    wait_for(
        || {
            child = children_of(pid).first().copied();
            child.is_some()
        },
        "the rewrite child runs",
    );
    let child = child.unwrap();
    server.kill9();
    assert_gone_within_500ms(child, "the rewrite child");
}
