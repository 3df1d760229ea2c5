//! `amber-check-rdb` against files real Redis wrote, and against damaged copies of them.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn check(path: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_amber-check-rdb"))
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn valid_files_pass_with_a_summary() {
    let (ok, out) = check(&fixtures().join("redis-7.0/encodings.rdb"));
    assert!(ok, "{out}");
    assert!(out.contains("RDB version 10"), "{out}");
    assert!(out.contains("AUX FIELD redis-ver = '7.0.15'"), "{out}");
    assert!(out.contains("[info] 31 keys read"), "{out}");
    assert!(out.contains("[info] 4 expires"), "{out}");
    assert!(out.contains("[info] db15: 1 keys"), "{out}");
    assert!(out.contains("Checksum OK"), "{out}");
    let (ok, out) = check(&fixtures().join("redis-legacy/hash-zipmap.rdb"));
    assert!(ok, "{out}");
    assert!(out.contains("No checksum"), "{out}");
}

#[test]
fn damaged_files_fail_naming_offset_and_key() {
    let dir = std::env::temp_dir().join(format!("amber-check-rdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read(fixtures().join("redis-7.0/encodings.rdb")).unwrap();

    let truncated = dir.join("truncated.rdb");
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    let (ok, out) = check(&truncated);
    assert!(!ok);
    assert!(out.contains("--- RDB ERROR DETECTED ---"), "{out}");
    assert!(out.contains("unexpected end of file"), "{out}");
    assert!(out.contains("Reading key '"), "{out}");

    let flipped = dir.join("flipped.rdb");
    let mut bytes = original.clone();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x55;
    std::fs::write(&flipped, &bytes).unwrap();
    let (ok, out) = check(&flipped);
    assert!(!ok, "{out}");
    assert!(out.contains("[offset "), "{out}");

    let not_rdb = dir.join("text.rdb");
    std::fs::write(&not_rdb, b"hello world").unwrap();
    let (ok, out) = check(&not_rdb);
    assert!(!ok);
    assert!(out.contains("not an RDB file"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
