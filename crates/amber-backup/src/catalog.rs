//! The catalog: one line per backup in `<backup-dir>/catalog` (id, time, kind, size, keys,
//! `DEBUG DIGEST` at the snapshot, checksum, verification status), replaced atomically.
//! Each backup lives in `<backup-dir>/<id>/`: `dump.rdb` for an RDB backup, `appendonlydir/`
//! for an AOF backup, and `meta` (the time, key count and digest the server recorded).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::verify::{Progress, checksum_dir};

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The catalog has a line that cannot be read.
    #[error("catalog line {line}: {what}")]
    BadCatalog {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// No backup has this id.
    #[error("no backup with id {0}")]
    UnknownId(String),
    /// The backup's files are damaged or do not match the catalog.
    #[error("backup {id} failed verification: {what}")]
    Verification {
        /// The backup.
        id: String,
        /// What is wrong.
        what: String,
    },
    /// The operation is refused (a server uses the directory, nothing to restore...).
    #[error("{0}")]
    Refused(String),
    /// An encrypted file was encrypted to another key than the one given.
    #[error(
        "{0} was encrypted to another key than the one given (check backup-encryption-key-file)"
    )]
    WrongKey(String),
    /// The backup is encrypted and no key was given.
    #[error("backup {0} is encrypted: give its key (backup-encryption-key-file, or --key-file)")]
    NeedsKey(String),
    /// The object store refused or could not be reached.
    #[error("{what}: {}", crate::bucket::describe_error(cause))]
    Remote {
        /// What was being done.
        what: String,
        /// The store's error (its whole chain is summed up in the message).
        cause: Box<object_store::Error>,
    },
}

/// Attaches `what` to an I/O error.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An RDB snapshot (`dump.rdb`).
    Rdb,
    /// A multi-part AOF directory (`appendonlydir/`) at one manifest version.
    Aof,
}

impl Kind {
    /// `rdb` or `aof`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rdb => "rdb",
            Kind::Aof => "aof",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        match text {
            "rdb" => Some(Kind::Rdb),
            "aof" => Some(Kind::Aof),
            _ => None,
        }
    }
}

/// Whether a backup passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Fully parsed, checksum recorded: it counts for retention.
    Verified,
    /// Damaged: kept for inspection, never counted as kept, pruned first.
    Failed(String),
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// `YYYYMMDD-HHMMSS-mmm` (UTC), also the directory name.
    pub id: String,
    /// When the snapshot was taken, Unix milliseconds.
    pub time_ms: i64,
    /// RDB or AOF.
    pub kind: Kind,
    /// Total size of its files in bytes.
    pub size: u64,
    /// Keys in the dataset at the snapshot.
    pub keys: u64,
    /// `DEBUG DIGEST` of the dataset at the snapshot.
    pub digest: String,
    /// CRC-64 of its files, hex.
    pub checksum: String,
    /// Verification outcome.
    pub status: Status,
}

impl Backup {
    /// Whether it passed verification.
    pub fn is_good(&self) -> bool {
        self.status == Status::Verified
    }
}

/// The backups of one backup directory, oldest first.
#[derive(Debug)]
pub struct Catalog {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its backups, oldest first.
    pub backups: Vec<Backup>,
}

const HEADER: &str =
    "# amber backup catalog v1: id time_ms kind size keys digest checksum status [reason]";

impl Catalog {
    /// Reads `dir/catalog` (an absent file is an empty catalog; the directory is created).
    pub fn open(dir: &Path) -> Result<Catalog, BackupError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let path = dir.join("catalog");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(io(format!("reading {}", path.display()))(error)),
        };
        let mut backups = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            backups.push(parse_line(line, index + 1)?);
        }
        backups.sort_by_key(|b| b.time_ms);
        Ok(Catalog {
            dir: dir.to_path_buf(),
            backups,
        })
    }

    /// Writes the catalog atomically (temp file, fsync, rename, directory fsync).
    pub fn save(&self) -> Result<(), BackupError> {
        let mut text = format!("{HEADER}\n");
        for b in &self.backups {
            let status = match &b.status {
                Status::Verified => "verified".to_string(),
                Status::Failed(reason) => format!("failed\t{}", reason.replace(['\t', '\n'], " ")),
            };
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{status}\n",
                b.id,
                b.time_ms,
                b.kind.name(),
                b.size,
                b.keys,
                b.digest,
                b.checksum
            ));
        }
        let temp = self.dir.join("catalog.tmp");
        amber_snapshot::durable::replace_with(&self.dir.join("catalog"), &temp, |out| {
            out.write_all(text.as_bytes())
        })
        .map_err(io("writing the catalog"))
    }

    /// The entry with `id`.
    pub fn get(&self, id: &str) -> Result<&Backup, BackupError> {
        self.backups
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| BackupError::UnknownId(id.to_string()))
    }

    /// The directory holding a backup's files.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Deletes a backup's files and its entry (the catalog is saved).
    pub fn delete(&mut self, id: &str) -> Result<(), BackupError> {
        let path = self.path_of(id);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io(format!("deleting {}", path.display())))?;
        }
        self.backups.retain(|b| b.id != id);
        self.save()
    }

    /// The newest verified backup taken at or before `unix_ms`.
    pub fn newest_good_before(&self, unix_ms: i64) -> Option<&Backup> {
        self.backups
            .iter()
            .rev()
            .find(|b| b.is_good() && b.time_ms <= unix_ms)
    }
}

fn parse_line(line: &str, number: usize) -> Result<Backup, BackupError> {
    let bad = |what: &str| BackupError::BadCatalog {
        line: number,
        what: what.to_string(),
    };
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() < 8 {
        return Err(bad("expected 8 tab-separated fields"));
    }
    let number_field = |i: usize| fields[i].parse::<i64>().map_err(|_| bad("bad number"));
    let status = match fields[7] {
        "verified" => Status::Verified,
        "failed" => Status::Failed(fields.get(8).unwrap_or(&"").to_string()),
        _ => return Err(bad("unknown status")),
    };
    Ok(Backup {
        id: fields[0].to_string(),
        time_ms: number_field(1)?,
        kind: Kind::parse(fields[2]).ok_or_else(|| bad("unknown kind"))?,
        size: number_field(3)?.max(0) as u64,
        keys: number_field(4)?.max(0) as u64,
        digest: fields[5].to_string(),
        checksum: fields[6].to_string(),
        status,
    })
}

/// What the server's backup child records beside the data: `time_ms`, `keys` and `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// When the snapshot was taken.
    pub time_ms: i64,
    /// Keys at the snapshot.
    pub keys: u64,
    /// `DEBUG DIGEST` at the snapshot.
    pub digest: String,
}

impl Meta {
    /// Writes `dir/meta` and fsyncs it.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut file = File::create(dir.join("meta"))?;
        writeln!(
            file,
            "time_ms {}\nkeys {}\ndigest {}",
            self.time_ms, self.keys, self.digest
        )?;
        file.sync_all()
    }

    /// Reads `dir/meta`.
    pub fn read(dir: &Path) -> Result<Meta, BackupError> {
        let path = dir.join("meta");
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| BackupError::Refused(format!("{} has no {name}", path.display())))
        };
        Ok(Meta {
            time_ms: field("time_ms")?.parse().unwrap_or(0),
            keys: field("keys")?.parse().unwrap_or(0),
            digest: field("digest")?,
        })
    }
}

/// The staging directory a server writes a backup into before [`finalize`]:
/// `<backup-dir>/.staging-<seq>-<pid>`.
pub fn staging_dir(backup_dir: &Path, seq: u64, pid: u32) -> PathBuf {
    backup_dir.join(format!(".staging-{seq}-{pid}"))
}

/// Removes the staging directories left by servers that died mid-backup (kill -9, power
/// loss): those whose process is gone, and those of `own_pid` (a previous process that had the
/// same pid; the caller has no backup running). Returns what it removed. Staging directories of
/// live processes (another server writing a backup now) are left alone.
pub fn remove_abandoned_staging(backup_dir: &Path, own_pid: Option<u32>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(backup_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(staging_pid) else {
            continue;
        };
        if Some(pid) != own_pid && process_alive(pid) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The pid in a staging directory's name (`.staging-<seq>-<pid>`).
fn staging_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".staging-")?;
    let (seq, pid) = rest.split_once('-')?;
    seq.parse::<u64>().ok()?;
    // `.staging-<seq>-<pid>.encrypted` is its encrypted twin.
    pid.split('.').next()?.parse().ok()
}

/// Whether process `pid` exists (signal 0: EPERM means it exists under another user).
fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(error) => error != nix::errno::Errno::ESRCH,
    }
}

/// Turns a written staging directory into a catalogued backup: verifies it (full parse and
/// checksum), renames it to `<backup-dir>/<id>`, and records it (as failed if verification
/// failed, so it is never counted as kept).
pub fn finalize(
    catalog: &mut Catalog,
    staging: &Path,
    kind: Kind,
    progress: &mut dyn Progress,
) -> Result<Backup, BackupError> {
    finalize_with_key(catalog, staging, kind, None, progress)
}

/// [`finalize`], encrypting the verified files with `key` first when one is given: the
/// catalogued backup then holds only `.age` files (and `meta`), and its checksum covers them.
pub fn finalize_with_key(
    catalog: &mut Catalog,
    staging: &Path,
    kind: Kind,
    key: Option<&crate::crypto::BackupKey>,
    progress: &mut dyn Progress,
) -> Result<Backup, BackupError> {
    let meta = Meta::read(staging)?;
    let id = crate::time::backup_id(meta.time_ms);
    let mut status = Status::Verified;
    let mut installed = staging.to_path_buf();
    let mut sealed = false;
    // A writer with the key seals the files itself; otherwise they are sealed here, once
    // verified.
    let written_sealed = crate::crypto::is_encrypted(staging);
    let verified = crate::verify::verify_with_key(staging, kind, key, progress);
    let (size, checksum) = match (verified, key) {
        (Err(error), _) => {
            status = Status::Failed(error.to_string());
            (0, String::new())
        }
        (Ok(report), _) if written_sealed => (report.size, report.checksum),
        (Ok(report), None) => (report.size, report.checksum),
        (Ok(_), Some(key)) => {
            let encrypted = staging.with_extension("encrypted");
            let _ = std::fs::remove_dir_all(&encrypted);
            key.encrypt_tree(staging, &encrypted)?;
            sealed = true;
            installed = encrypted;
            checksum_dir(&installed, progress)?
        }
    };
    let target = catalog.path_of(&id);
    amber_snapshot::durable::install(&installed, &target)
        .map_err(io(format!("renaming {}", installed.display())))?;
    if sealed {
        // The plain copy goes as soon as the encrypted one is in place.
        std::fs::remove_dir_all(staging).map_err(io(format!("removing {}", staging.display())))?;
    }
    let backup = Backup {
        id,
        time_ms: meta.time_ms,
        kind,
        size,
        keys: meta.keys,
        digest: meta.digest,
        checksum,
        status,
    };
    catalog.backups.push(backup.clone());
    catalog.backups.sort_by_key(|b| b.time_ms);
    catalog.save()?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn abandoned_staging_directories_are_removed_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("amber-staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = exited.id();
        exited.wait().unwrap();
        let me = std::process::id();
        let dead = staging_dir(&dir, 1, dead_pid);
        let live = staging_dir(&dir, 2, me);
        let backup = dir.join("20261130-120000-000");
        for path in [&dead, &live, &backup] {
            std::fs::create_dir_all(path).unwrap();
            std::fs::write(path.join("dump.rdb"), b"REDIS").unwrap();
        }
        assert_eq!(remove_abandoned_staging(&dir, None), vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && backup.exists());
        // At a server's start, its own pid's leftovers are a previous process's.
        assert_eq!(remove_abandoned_staging(&dir, Some(me)), vec![live.clone()]);
        assert!(backup.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
