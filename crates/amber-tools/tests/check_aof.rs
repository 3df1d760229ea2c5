//! `amber-check-aof` against directories real Redis wrote, and against damaged copies.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn check(args: &[&str], file: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_amber-check-aof"))
        .args(args)
        .arg(file)
        .output()
        .expect("run amber-check-aof");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn copy_fixture_dir(name: &str, label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amber-check-aof-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("entry");
        let bytes = std::fs::read(entry.path()).expect("read fixture");
        std::fs::write(dir.join(entry.file_name()), bytes).expect("copy fixture");
    }
    dir
}

#[test]
fn redis_directories_are_valid() {
    for name in ["aof-plain", "aof-preamble"] {
        let manifest = fixtures().join(format!("redis-7.0/{name}/appendonly.aof.manifest"));
        let (ok, out) = check(&[], &manifest);
        assert!(ok, "{out}");
        assert!(
            out.contains("All AOF files and manifest are valid"),
            "{out}"
        );
    }
    let (ok, out) = check(&[], &fixtures().join("redis-legacy/rdb-preamble.aof"));
    assert!(ok, "{out}");
    assert!(out.contains("RDB preamble with"), "{out}");
}

#[test]
fn a_cut_tail_is_reported_and_fixed_keeping_the_cut_bytes() {
    let dir = copy_fixture_dir("redis-7.0/aof-plain", "fix");
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let original = std::fs::read(&incr).expect("incr");
    let cut = original.len() - 5;
    std::fs::write(&incr, &original[..cut]).expect("cut");
    let manifest = dir.join("appendonly.aof.manifest");
    let (ok, out) = check(&[], &manifest);
    assert!(!ok, "{out}");
    assert!(out.contains("ends in the middle of a command"), "{out}");
    assert_eq!(
        std::fs::read(&incr).expect("incr").len(),
        cut,
        "a check changes nothing"
    );

    let (ok, out) = check(&["--fix", "--yes"], &manifest);
    assert!(ok, "{out}");
    let fixed = std::fs::read(&incr).expect("incr");
    assert!(fixed.len() < cut && original.starts_with(&fixed), "{out}");
    let backup = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains(".cut-"))
        .expect("the cut bytes are kept");
    let kept = std::fs::read(backup).expect("backup");
    assert_eq!(
        [fixed.as_slice(), kept.as_slice()].concat(),
        &original[..cut]
    );
    let (ok, out) = check(&[], &manifest);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The zeros a crash leaves after the last command of a preallocated incr file
/// (`aof-preallocate`) are reported as such and cut by `--fix`, after which Redis's own
/// checker accepts the directory.
#[test]
fn zeros_after_the_last_command_are_reported_and_cut() {
    let dir = copy_fixture_dir("redis-7.0/aof-plain", "zeros");
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let original = std::fs::read(&incr).expect("incr");
    let mut padded = original.clone();
    padded.resize(original.len() + 64 * 1024 + 3, 0);
    std::fs::write(&incr, &padded).expect("pad");
    let manifest = dir.join("appendonly.aof.manifest");
    let (ok, out) = check(&[], &manifest);
    assert!(!ok, "{out}");
    assert!(out.contains("zeros follow the last command"), "{out}");
    assert_eq!(
        std::fs::read(&incr).expect("incr"),
        padded,
        "a check changes nothing"
    );

    let (ok, out) = check(&["--fix", "--yes"], &manifest);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(&incr).expect("incr"), original, "{out}");
    let (ok, out) = check(&[], &manifest);
    assert!(ok, "{out}");
    let redis = Command::new("redis-check-aof")
        .arg(&manifest)
        .output()
        .expect("run redis-check-aof");
    assert!(
        redis.status.success(),
        "{}",
        String::from_utf8_lossy(&redis.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_damaged_rdb_preamble_is_not_cut() {
    let dir = copy_fixture_dir("redis-7.0/aof-preamble", "rdb");
    let base = dir.join("appendonly.aof.2.base.rdb");
    let mut bytes = std::fs::read(&base).expect("base");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&base, &bytes).expect("damage");
    let (ok, out) = check(&["--fix", "--yes"], &dir.join("appendonly.aof.manifest"));
    assert!(!ok, "{out}");
    assert!(out.contains("RDB preamble is damaged"), "{out}");
    assert_eq!(std::fs::read(&base).expect("base"), bytes);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn truncate_to_timestamp_cuts_at_the_first_later_annotation() {
    let dir = std::env::temp_dir().join(format!("amber-check-aof-{}-ts", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("single.aof");
    let mut bytes = b"#TS:100\r\n".to_vec();
    amber_aof::encode_command(&["SET", "a", "1"], &mut bytes);
    let keep = bytes.len();
    bytes.extend_from_slice(b"#TS:200\r\n");
    amber_aof::encode_command(&["SET", "b", "2"], &mut bytes);
    std::fs::write(&path, &bytes).expect("write");
    let (ok, out) = check(&["--truncate-to-timestamp", "150", "--yes"], &path);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(&path).expect("read"), &bytes[..keep]);
    let _ = std::fs::remove_dir_all(dir);
}
