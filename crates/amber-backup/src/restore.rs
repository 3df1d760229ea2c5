//! Restore: puts a verified backup in place of a stopped server's data. The data it replaces
//! is moved aside (never deleted) into `replaced-<time>/`; a running server is detected by the
//! lock it holds on its dataset (`dump.rdb.lock`, `appendonly.aof.lock`, see [`crate::lock`])
//! and the restore is refused. An RDB backup is installed both as
//! `dbfilename` and as the base of a fresh AOF directory, so the server restarts with the
//! backup's exact dataset whether or not `appendonly` is on. With `at`, an AOF backup is
//! extended with the live AOF's later commands up to that time (point-in-time recovery).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use amber_aof::check::{check_file, cut_for_timestamp};
use amber_aof::{Manifest, manifest};

use crate::catalog::{Backup, BackupError, Catalog, Kind, io};
use crate::lock::{DatasetLock, lock_dataset};
use crate::verify::{Decrypted, Progress, checksum_dir, manifest_in, verify};

/// Where and how to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The server's `dir`.
    pub data_dir: PathBuf,
    /// `dbfilename`.
    pub dbfilename: String,
    /// `appenddirname`.
    pub appenddirname: String,
    /// `appendfilename`.
    pub appendfilename: String,
    /// Replay the live AOF up to this Unix time (ms); needs an AOF backup and timestamps.
    pub at_ms: Option<i64>,
    /// The AOF directory to replay from with `at_ms` (one rebuilt from a bucket's archive);
    /// by default the live AOF this restore moves aside.
    pub replay_from: Option<PathBuf>,
    /// The key of an encrypted backup.
    pub key: Option<crate::crypto::BackupKey>,
}

impl RestoreOptions {
    /// Redis's default names in `data_dir`.
    pub fn defaults(data_dir: &Path) -> RestoreOptions {
        RestoreOptions {
            data_dir: data_dir.to_path_buf(),
            dbfilename: "dump.rdb".into(),
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            at_ms: None,
            replay_from: None,
            key: None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: Backup,
    /// Where the replaced data went, if there was any.
    pub replaced_into: Option<PathBuf>,
    /// Bytes of later AOF commands added for point-in-time recovery.
    pub replayed_bytes: u64,
}

/// Takes the locks of both datasets a restore may replace (`dbfilename` and the AOF named by
/// `appendfilename`), failing if a server (or another restore) holds either.
pub fn lock_datasets(options: &RestoreOptions) -> Result<[DatasetLock; 2], BackupError> {
    Ok([
        lock_dataset(&options.data_dir, &options.dbfilename)?,
        lock_dataset(&options.data_dir, &options.appendfilename)?,
    ])
}

/// Restores backup `id` (or, with `at_ms` and no id, the newest good backup before it).
pub fn restore(
    catalog: &Catalog,
    id: Option<&str>,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let backup = match (id, options.at_ms) {
        (Some(id), _) => catalog.get(id)?.clone(),
        (None, Some(at)) => catalog
            .backups
            .iter()
            .rev()
            .find(|b| b.is_good() && b.kind == Kind::Aof && b.time_ms <= at)
            .or_else(|| catalog.newest_good_before(at))
            .cloned()
            .ok_or_else(|| BackupError::Refused("no verified backup before that time".into()))?,
        (None, None) => {
            return Err(BackupError::Refused("give a backup id or --at".into()));
        }
    };
    if !backup.is_good() {
        return Err(BackupError::Refused(format!(
            "backup {} failed verification; choose another",
            backup.id
        )));
    }
    std::fs::create_dir_all(&options.data_dir).map_err(io("creating the data directory"))?;
    let _locks = lock_datasets(options)?;
    let source = catalog.path_of(&backup.id);
    let (_, checksum) = checksum_dir(&source, progress)?;
    if checksum != backup.checksum {
        return Err(BackupError::Verification {
            id: backup.id.clone(),
            what: format!(
                "checksum {checksum} does not match the catalog's {}",
                backup.checksum
            ),
        });
    }
    // An encrypted backup is decrypted once, beside it; the plain copy is parsed and installed.
    let decrypted = if crate::crypto::is_encrypted(&source) {
        let key = options
            .key
            .as_ref()
            .ok_or_else(|| BackupError::NeedsKey(backup.id.clone()))?;
        Some(Decrypted::of(&source, key)?)
    } else {
        None
    };
    let source = decrypted
        .as_ref()
        .map_or(source.clone(), |d| d.path().to_path_buf());
    verify(&source, backup.kind, progress)?;
    let replaced_into = move_aside(options)?;
    match backup.kind {
        Kind::Rdb => install_rdb(&source.join("dump.rdb"), options, progress)?,
        Kind::Aof => copy_tree(
            &source.join("appendonlydir"),
            &options.data_dir.join(&options.appenddirname),
            progress,
        )?,
    }
    let mut replayed_bytes = 0;
    if let Some(at) = options.at_ms {
        let live = options
            .replay_from
            .clone()
            .or_else(|| {
                replaced_into
                    .as_ref()
                    .map(|dir| dir.join(&options.appenddirname))
            })
            .ok_or_else(|| BackupError::Refused("no live AOF to replay".into()))?;
        if backup.kind != Kind::Aof {
            return Err(BackupError::Refused(
                "point-in-time recovery needs an AOF backup (take backups with appendonly yes)"
                    .into(),
            ));
        }
        replayed_bytes = extend_to(&live, &options.data_dir.join(&options.appenddirname), at)?;
    }
    File::open(&options.data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the data directory"))?;
    Ok(RestoreReport {
        backup,
        replaced_into,
        replayed_bytes,
    })
}

/// Moves `dbfilename` and the AOF directory to `replaced-<time>/`; returns it if anything moved.
fn move_aside(options: &RestoreOptions) -> Result<Option<PathBuf>, BackupError> {
    let names = [&options.dbfilename, &options.appenddirname];
    let present: Vec<&String> = names
        .into_iter()
        .filter(|n| options.data_dir.join(n).exists())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    let aside = options.data_dir.join(format!(
        "replaced-{}",
        crate::time::backup_id(crate::time::now_ms())
    ));
    std::fs::create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
    for name in present {
        std::fs::rename(options.data_dir.join(name), aside.join(name))
            .map_err(io(format!("moving {name} aside")))?;
    }
    Ok(Some(aside))
}

/// Installs an RDB backup as `dbfilename` and as the base of a new AOF directory.
fn install_rdb(
    rdb: &Path,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<(), BackupError> {
    copy_file(rdb, &options.data_dir.join(&options.dbfilename), progress)?;
    let aof_dir = options.data_dir.join(&options.appenddirname);
    std::fs::create_dir_all(&aof_dir).map_err(io("creating the AOF directory"))?;
    let prefix = &options.appendfilename;
    let base = manifest::base_name(prefix, 1, true);
    copy_file(rdb, &aof_dir.join(&base), progress)?;
    let mut aof_manifest = Manifest::default();
    aof_manifest.replace_base(base, 1);
    let incr = aof_manifest.add_incr(prefix);
    File::create(aof_dir.join(incr))
        .and_then(|f| f.sync_all())
        .map_err(io("creating the incr file"))?;
    manifest::persist(&aof_dir, prefix, &aof_manifest).map_err(io("writing the manifest"))
}

fn copy_tree(from: &Path, to: &Path, progress: &mut dyn Progress) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("listing {}", from.display())))? {
        let entry = entry.map_err(io("listing"))?;
        copy_file(&entry.path(), &to.join(entry.file_name()), progress)?;
    }
    File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing"))
}

/// Copies a file durably: through a temp name, fsynced, renamed, the directory fsynced.
pub fn copy_file(from: &Path, to: &Path, progress: &mut dyn Progress) -> Result<(), BackupError> {
    let temp = to.with_extension("restoring");
    let what = format!("copying {} to {}", from.display(), to.display());
    let mut input = File::open(from).map_err(io(what.clone()))?;
    let total = input.metadata().map_or(0, |m| m.len());
    amber_snapshot::durable::replace_with(to, &temp, |output| {
        let mut buffer = vec![0u8; 1 << 20];
        let mut done = 0;
        loop {
            let n = input.read(&mut buffer)?;
            if n == 0 {
                return Ok(());
            }
            output.write_all(&buffer[..n])?;
            done += n as u64;
            progress.update("copy", done, total);
        }
    })
    .map_err(io(what))
}

/// Appends to the restored AOF directory the live AOF's commands that followed the backup, up
/// to the first `#TS:` annotation later than `at_ms`. Returns the bytes added.
fn extend_to(live_dir: &Path, restored_dir: &Path, at_ms: i64) -> Result<u64, BackupError> {
    let refused = |what: String| BackupError::Refused(what);
    let read_manifest = |dir: &Path| -> Result<Manifest, BackupError> {
        let path = manifest_in(dir).map_err(|e| refused(e.to_string()))?;
        let text = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        Manifest::parse(&text).map_err(|e| BackupError::Refused(e.to_string()))
    };
    let live = read_manifest(live_dir)?;
    let mut restored = read_manifest(restored_dir)?;
    let last = restored
        .last_incr()
        .cloned()
        .ok_or_else(|| refused("the backup has no incr file to extend".into()))?;
    let position = live
        .incrs
        .iter()
        .position(|incr| incr.name == last.name)
        .ok_or_else(|| {
            refused(format!(
                "the live AOF no longer has {} (rewritten since the backup): restore the backup itself, or a newer one",
                last.name
            ))
        })?;
    let at_seconds = at_ms.div_euclid(1000);
    let mut added = 0;
    let prefix = manifest_prefix(&restored_dir.join("x"), &last.name);
    for (index, incr) in live.incrs[position..].iter().enumerate() {
        let live_path = live_dir.join(&incr.name);
        let restored_path = restored_dir.join(&incr.name);
        let start = if index == 0 {
            std::fs::metadata(&restored_path).map_or(0, |m| m.len())
        } else {
            restored.incrs.push(incr.clone());
            restored.incr_seq = incr.seq;
            0
        };
        let report = check_file(&live_path);
        let later: Vec<(u64, i64)> = report
            .timestamps
            .iter()
            .copied()
            .filter(|(offset, _)| *offset >= start)
            .collect();
        let cut_report = amber_aof::check::FileReport {
            timestamps: later,
            ..report.clone()
        };
        let end = cut_for_timestamp(&cut_report, at_seconds).unwrap_or(report.valid_up_to);
        added += append_range(&live_path, &restored_path, start, end)?;
        if end < report.valid_up_to || cut_for_timestamp(&cut_report, at_seconds).is_some() {
            break;
        }
    }
    manifest::persist(restored_dir, &prefix, &restored).map_err(io("writing the manifest"))?;
    Ok(added)
}

/// The `appendfilename` prefix of an incr file name (`appendonly.aof.3.incr.aof`).
fn manifest_prefix(_dir: &Path, incr_name: &str) -> String {
    let without = incr_name.strip_suffix(".incr.aof").unwrap_or(incr_name);
    match without.rfind('.') {
        Some(dot) => without[..dot].to_string(),
        None => without.to_string(),
    }
}

fn append_range(from: &Path, to: &Path, start: u64, end: u64) -> Result<u64, BackupError> {
    let what = format!("appending {} to {}", from.display(), to.display());
    if end <= start {
        // A later incr file the manifest will name, cut before its first byte: it must
        // still exist, empty.
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(to)
            .and_then(|f| f.sync_all())
            .map_err(io(what))?;
        return Ok(0);
    }
    let mut input = File::open(from).map_err(io(what.clone()))?;
    input
        .seek(SeekFrom::Start(start))
        .map_err(io(what.clone()))?;
    let mut bytes = Vec::new();
    input
        .take(end - start)
        .read_to_end(&mut bytes)
        .map_err(io(what.clone()))?;
    let mut output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(to)
        .map_err(io(what.clone()))?;
    output.write_all(&bytes).map_err(io(what.clone()))?;
    output.sync_all().map_err(io(what))?;
    Ok(bytes.len() as u64)
}
