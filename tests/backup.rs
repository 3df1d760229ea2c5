//! Backups against the real binary: BACKUP NOW (clients served meanwhile), restore giving the
//! exact digest for RDB and AOF backups, point-in-time recovery with AOF timestamps, restore
//! refused while the server runs, and three days of hourly backups on a simulated clock.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use amber_backup::restore::{RestoreOptions, restore};
use amber_backup::{Catalog, Kind};
use common::{Frame, ServerProcess, digest, info_field, simple, wait_for};

fn backup_now(client: &mut common::Client) -> String {
    match client.cmd(&["BACKUP", "NOW"]) {
        Frame::Simple(id) => String::from_utf8(id).expect("utf-8 id"),
        other => panic!("BACKUP NOW replied {other:?}"),
    }
}

fn flags<'a>(backups: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--backup-dir",
        backups.to_str().expect("utf-8"),
        "--backup-interval",
        "0",
    ];
    all.extend_from_slice(extra);
    all
}

#[test]
fn backup_now_then_restore_gives_the_exact_digest() {
    for (aof, method) in [
        (false, "fork"),
        (true, "fork"),
        (false, "forkless"),
        (true, "forkless"),
    ] {
        let backups = common::temp_dir("backups");
        let extra: &[&str] = if aof { &["--appendonly", "yes"] } else { &[] };
        let server = ServerProcess::amber(&flags(
            &backups,
            &[
                extra,
                &["--rdb-key-save-delay", "1000", "--bgsave-method", method],
            ]
            .concat(),
        ));
        let mut client = server.client();
        client.cmd(&["DEBUG", "POPULATE", "3000", "key", "30"]);
        client.cmd(&["HSET", "hash", "a", "1"]);
        client.cmd(&["ZADD", "zset", "2.5", "m"]);
        client.cmd(&["SET", "ttl", "v", "EX", "100000"]);
        let expected = digest(&mut client);
        // While the backup is written (about 3 s with the delay), other clients are served.
        let port = server.port;
        let pinger = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let started = Instant::now();
            let reply = common::Client::connect(port).cmd(&["SET", "during", "backup"]);
            (reply, started.elapsed())
        });
        let id = backup_now(&mut client);
        let (reply, waited) = pinger.join().expect("pinger");
        assert_eq!(reply, simple("OK"));
        assert!(
            waited < Duration::from_millis(1500),
            "served in {waited:?} during the backup"
        );
        assert_eq!(info_field(&mut client, "backup_last_status"), "ok");
        assert_eq!(info_field(&mut client, "backup_last_id"), id);
        let Frame::Array(list) = client.cmd(&["BACKUP", "LIST"]) else {
            panic!("BACKUP LIST is an array")
        };
        assert_eq!(list.len(), 1);
        let catalog = Catalog::open(&backups).expect("catalog");
        let backup = catalog.get(&id).expect("catalogued");
        assert_eq!(backup.kind, if aof { Kind::Aof } else { Kind::Rdb });
        assert_eq!(
            simple(&backup.digest),
            expected,
            "the catalog records the digest at the snapshot"
        );
        assert_eq!(backup.keys, 3003);

        assert_eq!(
            server.log().contains(") started (forkless)"),
            method == "forkless",
            "{method}"
        );
        let data = server.kill9();
        let report = restore(
            &catalog,
            Some(&id),
            &RestoreOptions::defaults(&data),
            &mut (),
        )
        .expect("restore");
        // With AOF on there was an AOF directory to move aside (without it, `save ""` left none).
        assert_eq!(report.replaced_into.is_some(), aof);
        let restarted = ServerProcess::amber_in(&data, extra);
        let mut client = restarted.client();
        assert_eq!(digest(&mut client), expected, "aof backup: {aof}, {method}");
        assert_eq!(client.cmd(&["EXISTS", "during"]), Frame::Integer(0));
        let _ = std::fs::remove_dir_all(backups);
    }
}

#[test]
fn restore_is_refused_while_the_server_runs() {
    let backups = common::temp_dir("backups-locked");
    let server = ServerProcess::amber(&flags(&backups, &[]));
    let mut client = server.client();
    client.cmd(&["SET", "k", "v"]);
    let id = backup_now(&mut client);
    let catalog = Catalog::open(&backups).expect("catalog");
    let refused = restore(
        &catalog,
        Some(&id),
        &RestoreOptions::defaults(&server.dir),
        &mut (),
    );
    let error = refused.expect_err("a running server holds the directory");
    assert!(
        error.to_string().contains("is locked by process"),
        "{error}"
    );
    assert_eq!(client.cmd(&["GET", "k"]), common::bulk("v"));
    let _ = std::fs::remove_dir_all(backups);
}

#[test]
fn point_in_time_recovery_replays_the_aof_up_to_the_time_asked() {
    let backups = common::temp_dir("backups-pitr");
    let server = ServerProcess::amber(&flags(
        &backups,
        &["--appendonly", "yes", "--aof-timestamp-enabled", "yes"],
    ));
    let mut client = server.client();
    client.cmd(&["SET", "before-backup", "1"]);
    backup_now(&mut client);
    client.cmd(&["SET", "after-backup", "1"]);
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let state_at = digest(&mut client);
    // Writes more than a second later carry a later #TS annotation.
    std::thread::sleep(Duration::from_millis(1100));
    client.cmd(&["SET", "too-late", "1"]);
    client.cmd(&["DEL", "before-backup"]);
    let data = server.kill9();
    let catalog = Catalog::open(&backups).expect("catalog");
    let mut options = RestoreOptions::defaults(&data);
    options.at_ms = Some(cut * 1000 + 999);
    let report = restore(&catalog, None, &options, &mut ()).expect("point-in-time restore");
    assert!(report.replayed_bytes > 0);
    let restarted = ServerProcess::amber_in(&data, &["--appendonly", "yes"]);
    let mut client = restarted.client();
    assert_eq!(client.cmd(&["EXISTS", "after-backup"]), Frame::Integer(1));
    assert_eq!(client.cmd(&["EXISTS", "too-late"]), Frame::Integer(0));
    assert_eq!(digest(&mut client), state_at);
    let _ = std::fs::remove_dir_all(backups);
}

#[test]
fn three_simulated_days_of_hourly_backups_keep_the_policy_set() {
    let backups = common::temp_dir("backups-schedule");
    let server = ServerProcess::amber(&[
        "--backup-dir",
        backups.to_str().expect("utf-8"),
        "--backup-interval",
        "3600",
        "--backup-keep-hourly",
        "48",
        "--backup-keep-daily",
        "30",
    ]);
    let mut client = server.client();
    client.cmd(&["SET", "k", "v"]);
    // The first backup happens at start (the directory has none); then one per simulated hour.
    wait_for(
        || info_field(&mut client, "backup_last_status") == "ok",
        "the first backup",
    );
    let hour = 3_600_000i64;
    for step in 1..=72 {
        let before = info_field(&mut client, "backup_last_time");
        assert_eq!(
            client.cmd(&["DEBUG", "BACKUP-CLOCK-OFFSET", &(step * hour).to_string()]),
            simple("OK")
        );
        wait_for(
            || {
                info_field(&mut client, "backup_last_time") != before
                    && info_field(&mut client, "backup_in_progress") == "0"
            },
            "the hourly backup",
        );
    }
    let catalog = Catalog::open(&backups).expect("catalog");
    let times: Vec<i64> = catalog.backups.iter().map(|b| b.time_ms).collect();
    assert!(catalog.backups.iter().all(|b| b.is_good()));
    let newest = *times.last().expect("backups");
    // Every backup of the last 48 hours is kept...
    let recent = times.iter().filter(|&&t| t > newest - 48 * hour).count();
    assert_eq!(recent, 48, "{times:?}");
    // ...and, older than that, exactly the newest backup of each day.
    let older: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t <= newest - 48 * hour)
        .collect();
    let day = |t: i64| t.div_euclid(24 * hour);
    for (index, &time) in older.iter().enumerate() {
        assert!(
            older
                .get(index + 1)
                .is_none_or(|&next| day(next) != day(time)),
            "one per day: {older:?}"
        );
        assert!(
            !times
                .iter()
                .any(|&t| t > time && day(t) == day(time) && t <= newest - 48 * hour)
        );
    }
    assert!(!older.is_empty() && older.len() <= 2, "{older:?}");
    assert_eq!(
        info_field(&mut client, "backup_count_kept"),
        times.len().to_string()
    );
    let _ = std::fs::remove_dir_all(backups);
}

#[test]
fn backup_help_and_list_describe_their_fields() {
    let backups = common::temp_dir("backup-help");
    let server = ServerProcess::amber(&flags(&backups, &[]));
    let mut client = server.client();
    let Frame::Array(help) = client.cmd(&["BACKUP", "HELP"]) else {
        panic!("BACKUP HELP is an array")
    };
    assert!(help.len() > 4);
    assert!(help.contains(&common::simple("LIST")));
    client.cmd(&["SET", "k", "v"]);
    let id = backup_now(&mut client);
    client.cmd(&["HELLO", "3"]);
    let Frame::Array(list) = client.cmd(&["BACKUP", "LIST"]) else {
        panic!("BACKUP LIST is an array")
    };
    let Some(Frame::Map(fields)) = list.last() else {
        panic!("under RESP3 each backup is a map: {list:?}")
    };
    let names: Vec<Frame> = fields.iter().map(|(name, _)| name.clone()).collect();
    let expected: Vec<Frame> = ["id", "time", "kind", "size", "keys", "verified"]
        .into_iter()
        .map(common::bulk)
        .collect();
    assert_eq!(names, expected);
    assert_eq!(fields[0].1, common::bulk(&id));
    assert_eq!(fields[5].1, common::bulk("yes"));
    let _ = std::fs::remove_dir_all(&backups);
}

#[test]
fn amber_backup_finds_the_backup_dir_in_the_servers_config() {
    let backups = common::temp_dir("backup-config");
    let server = ServerProcess::amber(&flags(&backups, &[]));
    let mut client = server.client();
    client.cmd(&["SET", "k", "v"]);
    let id = backup_now(&mut client);
    let config = backups.with_extension("conf");
    std::fs::write(
        &config,
        format!("port 7000\ndir {}\nbackup-dir .\n", backups.display()),
    )
    .unwrap();
    let tool = common::amber_binary().with_file_name("amber-backup");
    let output = std::process::Command::new(&tool)
        .arg("--config")
        .arg(&config)
        .arg("list")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains(&id));
    let bare = std::process::Command::new(&tool)
        .arg("list")
        .output()
        .unwrap();
    assert!(!bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--config redis.conf"));
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_dir_all(&backups);
}

#[test]
fn scheduled_backups_skip_an_empty_dataset() {
    let backups = common::temp_dir("backup-empty");
    let server = ServerProcess::amber(&[
        "--backup-dir",
        backups.to_str().unwrap(),
        "--backup-interval",
        "1",
    ]);
    let mut client = server.client();
    std::thread::sleep(Duration::from_millis(2500));
    let count = |dir: &Path| Catalog::open(dir).map_or(0, |c| c.backups.len());
    assert_eq!(count(&backups), 0, "no backup of an empty dataset");
    client.cmd(&["SET", "k", "v"]);
    wait_for(|| count(&backups) > 0, "a backup once there is data");
    let catalog = Catalog::open(&backups).unwrap();
    assert!(catalog.backups.iter().all(|b| b.keys == 1));
    let _ = std::fs::remove_dir_all(&backups);
}

/// With a key, a forked backup's child seals every file as it writes it: while it is being
/// written (slowed down), the staging directory holds only `.age` files, no byte of a marker
/// value is in clear, and the restore with the key gives the exact digest. (An AOF backup's
/// verification decrypts into a `.decrypted-*` scratch directory for the AOF checker, which
/// reads files by path; that directory is not checked here.)
#[test]
fn encrypted_backups_are_never_written_in_clear() {
    for aof in [false, true] {
        let backups = common::temp_dir("backup-sealed");
        let key = backups.with_extension("key");
        let tool = common::amber_binary().with_file_name("amber-backup");
        let made = std::process::Command::new(&tool)
            .arg("keygen")
            .arg(&key)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let mut extra = vec![
            "--backup-encryption-key-file",
            key.to_str().unwrap(),
            "--rdb-key-save-delay",
            "300",
        ];
        if aof {
            extra.extend(["--appendonly", "yes"]);
        }
        let server = ServerProcess::amber(&flags(&backups, &extra));
        let mut client = server.client();
        let marker = "sealed-marker-31c9";
        client.cmd(&["DEBUG", "POPULATE", "2000", "key", "20"]);
        client.cmd(&["SET", marker, marker]);
        let expected = digest(&mut client);
        let port = server.port;
        let waiter = std::thread::spawn(move || {
            let mut client = common::Client::connect(port);
            backup_now(&mut client)
        });
        let mut looked = 0;
        while !waiter.is_finished() {
            for path in common::files_under(&backups) {
                let name = path.to_string_lossy().into_owned();
                // The catalog (ids, times, digests) and each backup's `meta` are clear by
                // design; the catalog is rewritten through `catalog.tmp`.
                let clear_by_design = ["/catalog", "/catalog.tmp", "/meta"];
                if clear_by_design.iter().any(|end| name.ends_with(end)) {
                    continue;
                }
                if aof && name.contains("/.decrypted-") {
                    continue;
                }
                assert!(name.ends_with(".age"), "{name} is written in clear");
                let bytes = std::fs::read(&path).unwrap_or_default();
                assert!(
                    !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                    "{name} holds the marker in clear"
                );
                looked += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !aof {
            assert!(looked > 0, "the staging files were seen while written");
        }
        let id = waiter.join().unwrap();
        let data = server.kill9();
        let catalog = Catalog::open(&backups).expect("catalog");
        let mut options = RestoreOptions::defaults(&data);
        options.key = Some(amber_backup::crypto::BackupKey::load(&key).unwrap());
        restore(&catalog, Some(&id), &options, &mut ()).expect("restore with the key");
        let restarted =
            ServerProcess::amber_in(&data, if aof { &["--appendonly", "yes"] } else { &[] });
        assert_eq!(digest(&mut restarted.client()), expected, "aof {aof}");
        let _ = std::fs::remove_dir_all(&backups);
        let _ = std::fs::remove_file(&key);
    }
}
