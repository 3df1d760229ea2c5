//! The backup library on real files with a simulated clock: retention over three days of
//! hourly backups, verification catching damage, restore refusing a locked directory and
//! keeping what it replaces, and shipping (to a path, resumed, and checked by checksum).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;

use amber_backup::catalog::Meta;
use amber_backup::restore::{RestoreOptions, lock_datasets, restore};
use amber_backup::ship::{Remote, ship};
use amber_backup::time::{DAY_MS, backup_id};
use amber_backup::{Catalog, Kind, Policy, Status, finalize, plan, verify};

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amber-backup-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes a small RDB backup (keys `k0..k{n}`) into a staging directory, as the server's child does.
fn stage_rdb(backup_dir: &Path, time_ms: i64, keys: u64) -> PathBuf {
    let staging = backup_dir.join(format!(".staging-{time_ms}"));
    std::fs::create_dir_all(&staging).expect("staging");
    let file = std::fs::File::create(staging.join("dump.rdb")).expect("create rdb");
    let mut writer =
        amber_rdb::RdbWriter::new(file, amber_rdb::WriteOptions::default()).expect("writer");
    writer.select_db(0, keys, 0).expect("select");
    for i in 0..keys {
        writer
            .string_entry(format!("k{i}").as_bytes(), b"value", None)
            .expect("entry");
    }
    writer.finish().expect("finish");
    Meta {
        time_ms,
        keys,
        digest: "0".repeat(40),
    }
    .write(&staging)
    .expect("meta");
    staging
}

#[test]
fn three_days_of_hourly_backups_leave_exactly_the_policy_set() {
    let dir = temp_dir("retention");
    let mut catalog = Catalog::open(&dir).expect("catalog");
    let midnight = 20_000 * DAY_MS;
    let policy = Policy {
        keep_hourly_hours: 48,
        keep_daily_days: 30,
    };
    for hour in 0..72 {
        let now = midnight + hour * 3_600_000;
        let staging = stage_rdb(&dir, now, 3);
        let backup = finalize(&mut catalog, &staging, Kind::Rdb, &mut ()).expect("finalize");
        assert_eq!(backup.status, Status::Verified);
        for id in plan(&catalog.backups, now, policy).delete {
            catalog.delete(&id).expect("delete");
        }
    }
    // Hours 24..=71 are within 48 hours of the last (hour 71); of day 0 only its newest (hour 23).
    let mut expected: Vec<String> = (23..72)
        .map(|hour| backup_id(midnight + hour * 3_600_000))
        .collect();
    expected.sort();
    let reopened = Catalog::open(&dir).expect("catalog");
    let kept: Vec<String> = reopened.backups.iter().map(|b| b.id.clone()).collect();
    assert_eq!(kept, expected);
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "catalog")
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, expected, "pruned backups are deleted from disk");
    // 29 more days without new backups: the daily ones age out, the newest always stays.
    let later = plan(&reopened.backups, midnight + 40 * DAY_MS, policy);
    assert_eq!(later.keep, vec![backup_id(midnight + 71 * 3_600_000)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn damage_is_caught_and_a_damaged_backup_never_displaces_a_good_one() {
    let dir = temp_dir("damage");
    let mut catalog = Catalog::open(&dir).expect("catalog");
    let good = finalize(
        &mut catalog,
        &stage_rdb(&dir, 1_000, 100),
        Kind::Rdb,
        &mut (),
    )
    .expect("good");
    assert!(good.is_good());
    // A backup whose file is damaged before finalizing fails verification and is recorded so.
    let staging = stage_rdb(&dir, 2_000, 100);
    let rdb = staging.join("dump.rdb");
    let mut bytes = std::fs::read(&rdb).expect("rdb");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&rdb, &bytes).expect("damage");
    let bad = finalize(&mut catalog, &staging, Kind::Rdb, &mut ()).expect("recorded");
    assert!(matches!(bad.status, Status::Failed(_)), "{bad:?}");
    let plan = plan(&catalog.backups, 2_000, Policy::default());
    assert_eq!(plan.keep, vec![good.id.clone()]);
    assert_eq!(plan.delete, vec![bad.id.clone()]);

    // Damage after the fact: verify() fails, and the CLI says so with a failing exit code.
    let stored = catalog.path_of(&good.id).join("dump.rdb");
    let mut bytes = std::fs::read(&stored).expect("rdb");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&stored, &bytes).expect("damage");
    assert!(verify(&catalog.path_of(&good.id), Kind::Rdb, &mut ()).is_err());
    let output = Command::new(env!("CARGO_BIN_EXE_amber-backup"))
        .args([
            "--backup-dir",
            dir.to_str().expect("utf-8"),
            "verify",
            &good.id,
        ])
        .output()
        .expect("run amber-backup");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAILED"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Not a test of its own: run by `restore_refuses_...` in a child process to hold the lock.
#[test]
fn lock_holder() {
    let Some(dir) = std::env::var_os("AMBER_TEST_HOLD_LOCK") else {
        return;
    };
    let _locks = lock_datasets(&RestoreOptions::defaults(Path::new(&dir))).expect("lock");
    println!("locked");
    std::thread::sleep(std::time::Duration::from_secs(30));
}

#[test]
fn restore_refuses_a_locked_directory_and_keeps_what_it_replaces() {
    let dir = temp_dir("restore");
    let backups = dir.join("backups");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let mut catalog = Catalog::open(&backups).expect("catalog");
    let backup = finalize(
        &mut catalog,
        &stage_rdb(&backups, 5_000, 10),
        Kind::Rdb,
        &mut (),
    )
    .expect("backup");
    std::fs::write(data.join("dump.rdb"), b"the data being replaced").expect("old data");
    let options = RestoreOptions::defaults(&data);
    {
        // Another process holds the lock, as a running server does (record locks belong to a
        // process, so it has to be another one).
        let mut holder = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "lock_holder", "--nocapture"])
            .env("AMBER_TEST_HOLD_LOCK", &data)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the lock holder");
        let stdout = holder.stdout.take().expect("holder stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // The test harness prints its own lines first.
        let locked = lines.any(|line| line.is_ok_and(|l| l.contains("locked")));
        assert!(locked, "the holder took the lock");
        let refused = restore(&catalog, Some(&backup.id), &options, &mut ());
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(
            refused.is_err(),
            "restore must refuse while the directory is locked"
        );
        assert_eq!(
            std::fs::read(data.join("dump.rdb")).expect("old"),
            b"the data being replaced"
        );
    }
    let report = restore(&catalog, Some(&backup.id), &options, &mut ()).expect("restore");
    let aside = report.replaced_into.expect("old data moved aside");
    assert_eq!(
        std::fs::read(aside.join("dump.rdb")).expect("kept"),
        b"the data being replaced"
    );
    assert_eq!(
        std::fs::read(data.join("dump.rdb")).expect("restored"),
        std::fs::read(catalog.path_of(&backup.id).join("dump.rdb")).expect("backup")
    );
    let manifest = std::fs::read_to_string(data.join("appendonlydir/appendonly.aof.manifest"))
        .expect("manifest");
    assert!(manifest.contains("appendonly.aof.1.base.rdb"), "{manifest}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn shipping_to_a_path_resumes_and_is_checked_by_checksum() {
    let dir = temp_dir("ship");
    let backups = dir.join("backups");
    let remote = dir.join("remote");
    let mut catalog = Catalog::open(&backups).expect("catalog");
    let backup = finalize(
        &mut catalog,
        &stage_rdb(&backups, 7_000, 5000),
        Kind::Rdb,
        &mut (),
    )
    .expect("backup");
    // An interrupted earlier ship left half of the file on the far side.
    let source = catalog.path_of(&backup.id).join("dump.rdb");
    let full = std::fs::read(&source).expect("rdb");
    let far = remote.join(&backup.id);
    std::fs::create_dir_all(&far).expect("far dir");
    std::fs::write(far.join("dump.rdb"), &full[..full.len() / 2]).expect("partial");
    let target = Remote::Path(remote.to_string_lossy().into_owned());
    ship(&backups, &target, false).expect("ship");
    assert_eq!(std::fs::read(far.join("dump.rdb")).expect("far copy"), full);
    let far_catalog = Catalog::open(&remote).expect("far catalog");
    assert_eq!(far_catalog.backups, catalog.backups);
    assert!(verify(&far, Kind::Rdb, &mut ()).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}
