//! Backups in an object store, on object_store's in-memory store (the same code path as an S3
//! bucket, without the network; `tests/s3.rs` runs against a real S3-compatible server):
//! round trips with exact checksums, an interrupted upload resumed, damage in the bucket
//! caught, and the remote retention policy over 400 simulated days.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::path::PathBuf;
use std::sync::Arc;

use amber_backup::bucket::{Bucket, MANIFEST};
use amber_backup::catalog::Meta;
use amber_backup::time::DAY_MS;
use amber_backup::{BackupError, Catalog, Kind, Policy, checksum_dir, finalize, plan, verify};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amber-bucket-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes and catalogues an RDB backup of `keys` keys taken at `time_ms`.
fn backup(catalog: &mut Catalog, time_ms: i64, keys: u64) -> amber_backup::Backup {
    let staging = catalog.dir.join(format!(".staging-{time_ms}"));
    std::fs::create_dir_all(&staging).unwrap();
    let file = std::fs::File::create(staging.join("dump.rdb")).unwrap();
    let mut writer = amber_rdb::RdbWriter::new(file, amber_rdb::WriteOptions::default()).unwrap();
    writer.select_db(0, keys, 0).unwrap();
    for i in 0..keys {
        let value = format!("value-{i}-{time_ms}");
        writer
            .string_entry(format!("k{i}").as_bytes(), value.as_bytes(), None)
            .unwrap();
    }
    writer.finish().unwrap();
    Meta {
        time_ms,
        keys,
        digest: format!("{time_ms:040}"),
    }
    .write(&staging)
    .unwrap();
    let backup = finalize(catalog, &staging, Kind::Rdb, &mut ()).unwrap();
    assert!(backup.is_good());
    backup
}

fn bucket(store: &Arc<InMemory>) -> Bucket {
    Bucket::new(store.clone(), "amber/test", "memory://amber/test").unwrap()
}

fn object(id: &str, file: &str) -> ObjectPath {
    ObjectPath::from(format!("amber/test/backups/{id}/{file}").as_str())
}

const NOW: i64 = 1_800_000_000_000;

#[test]
fn a_shipped_backup_comes_back_with_its_exact_checksum() {
    let dir = temp_dir("round-trip");
    let mut catalog = Catalog::open(&dir.join("local")).unwrap();
    let first = backup(&mut catalog, NOW - 3_600_000, 2_000);
    let second = backup(&mut catalog, NOW, 3_000);
    let store = Arc::new(InMemory::new());
    let bucket = bucket(&store);
    let report = bucket
        .ship(&catalog, Policy::default(), NOW, &mut ())
        .unwrap();
    assert_eq!(report.uploaded, vec![first.id.clone(), second.id.clone()]);
    assert_eq!(report.bytes, first.size + second.size);
    // A second ship finds everything there.
    let again = bucket
        .ship(&catalog, Policy::default(), NOW, &mut ())
        .unwrap();
    assert!(
        again.uploaded.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );

    let listing = bucket.list().unwrap();
    let listed: Vec<_> = listing.complete.iter().map(|r| r.backup.clone()).collect();
    assert_eq!(listed, vec![first.clone(), second.clone()]);
    assert!(listing.partial.is_empty());

    let elsewhere = dir.join("elsewhere");
    let fetched = bucket
        .fetch(&listing, &second.id, &elsewhere, &mut ())
        .unwrap();
    let path = fetched.path_of(&second.id);
    let report = verify(&path, Kind::Rdb, &mut ()).unwrap();
    assert_eq!(report.checksum, second.checksum);
    assert_eq!(report.keys, 3_000);
    assert_eq!(
        std::fs::read(path.join("dump.rdb")).unwrap(),
        std::fs::read(catalog.path_of(&second.id).join("dump.rdb")).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_upload_is_partial_until_the_next_ship_completes_it() {
    let dir = temp_dir("resume");
    let mut catalog = Catalog::open(&dir).unwrap();
    let only = backup(&mut catalog, NOW, 20_000);
    let store = Arc::new(InMemory::new());
    let bucket = bucket(&store);
    bucket
        .ship(&catalog, Policy::default(), NOW, &mut ())
        .unwrap();
    // The state a ship killed before its last object and the manifest leaves behind.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.delete(&object(&only.id, MANIFEST)))
        .unwrap();
    runtime
        .block_on(store.delete(&object(&only.id, "dump.rdb")))
        .unwrap();
    let listing = bucket.list().unwrap();
    assert!(listing.complete.is_empty(), "no manifest, not complete");
    assert_eq!(listing.partial, vec![only.id.clone()]);
    assert!(matches!(
        bucket.fetch(&listing, &only.id, &dir.join("x"), &mut ()),
        Err(BackupError::UnknownId(_))
    ));

    let report = bucket
        .ship(&catalog, Policy::default(), NOW, &mut ())
        .unwrap();
    let rdb_size = std::fs::metadata(catalog.path_of(&only.id).join("dump.rdb"))
        .unwrap()
        .len();
    assert_eq!(report.uploaded, vec![only.id.clone()]);
    assert_eq!(
        report.bytes, rdb_size,
        "only the missing object is sent again"
    );
    assert_eq!(bucket.list().unwrap().complete.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_object_damaged_in_the_bucket_is_caught_on_download() {
    let dir = temp_dir("damage");
    let mut catalog = Catalog::open(&dir.join("local")).unwrap();
    let only = backup(&mut catalog, NOW, 1_000);
    let store = Arc::new(InMemory::new());
    let bucket = bucket(&store);
    bucket
        .ship(&catalog, Policy::default(), NOW, &mut ())
        .unwrap();
    let path = catalog.path_of(&only.id).join("dump.rdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.put(&object(&only.id, "dump.rdb"), PutPayload::from(bytes)))
        .unwrap();
    let listing = bucket.list().unwrap();
    let error = bucket
        .fetch(&listing, &only.id, &dir.join("elsewhere"), &mut ())
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BackupError::Verification { .. }), "{text}");
    assert!(
        text.contains("dump.rdb") && text.contains("damaged in the bucket"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn four_hundred_days_leave_the_remote_policy_set_and_never_a_partial_backup() {
    let dir = temp_dir("retention");
    let mut catalog = Catalog::open(&dir).unwrap();
    let store = Arc::new(InMemory::new());
    let bucket = bucket(&store);
    let local = Policy {
        keep_hourly_hours: 24,
        keep_daily_days: 7,
    };
    let remote = Policy {
        keep_hourly_hours: 48,
        keep_daily_days: 365,
    };
    let start = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS;
    let mut all = Vec::new();
    let mut now = start;
    for day in 0..400 {
        // Two backups a day, as a 12-hour backup-interval makes, each shipped when taken.
        for hour in [3, 15] {
            now = start + day * DAY_MS + hour * 3_600_000;
            all.push(backup(&mut catalog, now, 3));
            for id in plan(&catalog.backups, now, local).delete {
                catalog.delete(&id).unwrap();
            }
            bucket.ship(&catalog, remote, now, &mut ()).unwrap();
        }
    }
    let expected = plan(&all, now, remote).keep;
    let listing = bucket.list().unwrap();
    let shipped: Vec<String> = listing
        .complete
        .iter()
        .map(|r| r.backup.id.clone())
        .collect();
    assert_eq!(shipped, expected);
    assert_eq!(
        shipped.len(),
        365 + 2,
        "a year of dailies and 48 hours of the rest"
    );
    assert_eq!(
        catalog.backups.len(),
        7 + 1,
        "locally: a week of dailies, the last day's"
    );

    // A partial upload of a newer backup never counts: the next ship completes it, or
    // removes it when the local copy is gone.
    let newest = backup(&mut catalog, now + 1_000, 3);
    bucket.ship(&catalog, remote, now + 1_000, &mut ()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.delete(&object(&newest.id, MANIFEST)))
        .unwrap();
    catalog.delete(&newest.id).unwrap();
    let report = bucket.ship(&catalog, remote, now + 2_000, &mut ()).unwrap();
    assert_eq!(report.deleted, vec![newest.id.clone()]);
    let listing = bucket.list().unwrap();
    assert!(listing.partial.is_empty());
    assert_eq!(
        listing.complete.last().map(|r| r.backup.id.clone()),
        all.last().map(|b| b.id.clone()),
        "the newest complete backup stays"
    );
    let (_, checksum) = checksum_dir(&catalog.path_of(&all.last().unwrap().id), &mut ()).unwrap();
    assert_eq!(checksum, all.last().unwrap().checksum);
    std::fs::remove_dir_all(&dir).unwrap();
}
