//! Verification: every file of a backup read in full by the format crates (an RDB parsed with
//! its CRC-64 checked, every AOF file of the manifest checked command by command), and a
//! CRC-64 of all its files that the catalog records and later checks recompute.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use amber_aof::check::check_file;
use amber_aof::{FileKind, Manifest};

use crate::catalog::{BackupError, Kind, io};
use crate::crypto::BackupKey;

/// What makes a backup's files fail verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error, with its kind.
        #[source]
        source: std::io::Error,
    },
    /// An RDB file is damaged.
    #[error("{path}: {source}")]
    Rdb {
        /// The file.
        path: String,
        /// What the reader found, and where.
        #[source]
        source: amber_rdb::RdbError,
    },
    /// An AOF directory has no manifest.
    #[error("no manifest in {0}")]
    NoManifest(String),
    /// The manifest cannot be parsed.
    #[error(transparent)]
    Manifest(#[from] amber_aof::ManifestError),
    /// A file the manifest names is damaged.
    #[error("{name} at offset {offset}: {problem}")]
    Aof {
        /// The file.
        name: String,
        /// Where the damage starts.
        offset: u64,
        /// What it is.
        problem: String,
    },
}

/// Receives progress of long operations (a terminal shows it, the server ignores it).
pub trait Progress {
    /// `done` of `total` bytes of `what` are processed.
    fn update(&mut self, what: &str, done: u64, total: u64);
}

/// No progress display.
impl Progress for () {
    fn update(&mut self, _what: &str, _done: u64, _total: u64) {}
}

/// What verification measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bytes in the backup's files.
    pub size: u64,
    /// CRC-64 of the files, hex.
    pub checksum: String,
    /// Keys parsed (RDB data, including an AOF's RDB base).
    pub keys: u64,
}

/// Fully parses the backup in `dir` and computes its checksum (an encrypted backup is refused:
/// see [`verify_with_key`]).
pub fn verify(dir: &Path, kind: Kind, progress: &mut dyn Progress) -> Result<Report, BackupError> {
    verify_with_key(dir, kind, None, progress)
}

/// A scratch directory beside `dir` for its decrypted files, removed when dropped.
pub struct Decrypted {
    path: PathBuf,
}

impl Decrypted {
    /// Decrypts the backup in `dir` into a scratch directory beside it.
    pub fn of(dir: &Path, key: &BackupKey) -> Result<Decrypted, BackupError> {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let path = dir.with_file_name(format!(".decrypted-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let decrypted = Decrypted { path };
        key.decrypt_tree(dir, &decrypted.path)?;
        Ok(decrypted)
    }

    /// The plain files.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Fully parses the backup in `dir` (decrypting it with `key` into a scratch directory first
/// when it is encrypted) and computes the checksum of its files as stored.
pub fn verify_with_key(
    dir: &Path,
    kind: Kind,
    key: Option<&BackupKey>,
    progress: &mut dyn Progress,
) -> Result<Report, BackupError> {
    if crate::crypto::is_encrypted(dir) {
        let id = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let key = key.ok_or(BackupError::NeedsKey(id.clone()))?;
        let (size, checksum) = checksum_dir(dir, progress)?;
        let sealed_rdb = dir.join("dump.rdb.age");
        let keys = if kind == Kind::Rdb && sealed_rdb.exists() {
            // Parsed as it is decrypted: no plain copy.
            parse_sealed_rdb(&sealed_rdb, key, progress).map_err(|error| match error {
                SealedParse::Key(error) => error,
                SealedParse::Parse(error) => BackupError::Verification {
                    id,
                    what: error.to_string(),
                },
            })?
        } else {
            let plain = Decrypted::of(dir, key)?;
            verify_plain(plain.path(), kind, progress)?.keys
        };
        return Ok(Report {
            size,
            checksum,
            keys,
        });
    }
    verify_plain(dir, kind, progress)
}

fn verify_plain(
    dir: &Path,
    kind: Kind,
    progress: &mut dyn Progress,
) -> Result<Report, BackupError> {
    let failed = |error: VerifyError| BackupError::Verification {
        id: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        what: error.to_string(),
    };
    let keys = match kind {
        Kind::Rdb => parse_rdb(&dir.join("dump.rdb"), progress).map_err(failed)?,
        Kind::Aof => check_aof_dir(&dir.join("appendonlydir")).map_err(failed)?,
    };
    let (size, checksum) = checksum_dir(dir, progress)?;
    Ok(Report {
        size,
        checksum,
        keys,
    })
}

/// Why an encrypted RDB could not be parsed.
enum SealedParse {
    /// The key is not the one it was encrypted to, or the header is unreadable.
    Key(BackupError),
    /// The plain stream is not a valid RDB (or the ciphertext is damaged).
    Parse(VerifyError),
}

/// Reads an encrypted RDB in full through the decrypting reader; returns its key count.
fn parse_sealed_rdb(
    path: &Path,
    key: &BackupKey,
    progress: &mut dyn Progress,
) -> Result<u64, SealedParse> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| {
        SealedParse::Parse(VerifyError::Io {
            path: name.clone(),
            source,
        })
    })?;
    let total = file.metadata().map_or(0, |m| m.len());
    let plain = key
        .open(std::io::BufReader::with_capacity(1 << 20, file), &name)
        .map_err(SealedParse::Key)?;
    parse_rdb_from(plain, &name, total, progress).map_err(SealedParse::Parse)
}

/// Reads an RDB file in full (CRC-64 verified by the reader); returns its key count.
fn parse_rdb(path: &Path, progress: &mut dyn Progress) -> Result<u64, VerifyError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| VerifyError::Io {
        path: name.clone(),
        source,
    })?;
    let total = file.metadata().map_or(0, |m| m.len());
    parse_rdb_from(file, &name, total, progress)
}

/// Parses an RDB stream of about `total` bytes in full; returns its key count.
fn parse_rdb_from(
    input: impl Read,
    name: &str,
    total: u64,
    progress: &mut dyn Progress,
) -> Result<u64, VerifyError> {
    let rdb = |source| VerifyError::Rdb {
        path: name.to_string(),
        source,
    };
    let mut reader = amber_rdb::RdbReader::new(input).map_err(rdb)?;
    let mut keys = 0u64;
    while let Some(item) = reader.next_item().map_err(rdb)? {
        if matches!(item, amber_rdb::Item::Entry(_)) {
            keys += 1;
            if keys.is_multiple_of(65_536) {
                progress.update("parse", reader.offset(), total);
            }
        }
    }
    progress.update("parse", total, total);
    Ok(keys)
}

/// The manifest file of an AOF directory.
pub fn manifest_in(dir: &Path) -> Result<PathBuf, VerifyError> {
    std::fs::read_dir(dir)
        .map_err(|source| VerifyError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .ok_or_else(|| VerifyError::NoManifest(dir.display().to_string()))
}

/// Checks every file an AOF directory's manifest names; returns the keys of its RDB base.
fn check_aof_dir(dir: &Path) -> Result<u64, VerifyError> {
    let manifest_path = manifest_in(dir)?;
    let text = std::fs::read(&manifest_path).map_err(|source| VerifyError::Io {
        path: manifest_path.display().to_string(),
        source,
    })?;
    let manifest = Manifest::parse(&text)?;
    let mut keys = 0;
    for info in manifest.load_order() {
        let report = check_file(&dir.join(&info.name));
        if let Some((offset, problem)) = report.problem {
            return Err(VerifyError::Aof {
                name: info.name.clone(),
                offset,
                problem: format!("{problem:?}"),
            });
        }
        if info.kind == FileKind::Base {
            keys = report.rdb_keys;
        }
    }
    Ok(keys)
}

/// Every file under `dir`, by relative path, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(io(format!("listing {}", current.display())))?;
        for entry in entries {
            let path = entry.map_err(io("listing"))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Total size and CRC-64 (hex) of every file under `dir` (names and contents, in name order).
pub fn checksum_dir(dir: &Path, progress: &mut dyn Progress) -> Result<(u64, String), BackupError> {
    let files = files_under(dir)?;
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
    let mut done = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    for path in &files {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        digest.update(relative.to_string_lossy().as_bytes());
        let mut file = File::open(path).map_err(io(format!("reading {}", path.display())))?;
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(io(format!("reading {}", path.display())))?;
            if n == 0 {
                break;
            }
            digest.update(&buffer[..n]);
            done += n as u64;
            progress.update("checksum", done, total);
        }
    }
    Ok((total, format!("{:016x}", digest.finalize())))
}
