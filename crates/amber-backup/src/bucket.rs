//! Backups in an object store: an S3-compatible bucket ([`crate::s3`]) or any other
//! [`ObjectStore`] (the tests use object_store's in-memory store behind fault-injecting
//! wrappers).
//!
//! Layout under the prefix, one "directory" per backup:
//! - `backups/<id>/<file>`: every file of the local backup directory, byte for byte (encrypted
//!   backups are already encrypted on disk, so nothing leaves in clear). Each object carries
//!   its CRC-64 as user metadata; large files go up as multipart uploads whose parts each carry
//!   a SHA-256 the store checks on receipt.
//! - `backups/<id>/backup.manifest`, written last, after every object was read back (size and
//!   CRC-64) and found equal: the catalog line and each file's size and CRC-64. Its presence is
//!   what makes a backup complete (INV-BUCKET-COMPLETE); a backup without it is partial, never
//!   listed as restorable, never counted by retention, and is resumed (files already there with
//!   the right size and CRC-64 are skipped) or deleted by the next ship.
//!
//! The store API is async; [`Bucket`] owns a current-thread runtime and offers blocking calls,
//! for the server's ship thread and the CLI.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};

use crate::archive::Segment;
use crate::catalog::{Backup, BackupError, Catalog, Kind, Status, io};
use crate::crypto::BackupKey;
use crate::retention::{Policy, plan};
use crate::verify::{Progress, files_under};

/// The object that marks a backup complete.
pub const MANIFEST: &str = "backup.manifest";
/// Files larger than this go up as multipart uploads of parts this size.
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// The user-metadata key holding an object's CRC-64.
const CRC_KEY: &str = "amber-crc64";
const MANIFEST_HEADER: &str = "# amber remote backup v1";

/// One file of a remote backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path relative to the backup's directory (`dump.rdb`, `appendonlydir/...`).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// CRC-64 (Redis's polynomial), hex.
    pub crc64: String,
}

/// A complete backup in the bucket: its catalog entry and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackup {
    /// The catalog entry, as the shipping machine recorded it.
    pub backup: Backup,
    /// Its files.
    pub files: Vec<RemoteFile>,
}

/// What the bucket holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub complete: Vec<RemoteBackup>,
    /// Ids of backups whose manifest is missing (an upload that stopped) or unreadable.
    pub partial: Vec<String>,
}

impl Listing {
    /// The complete backup with `id`.
    pub fn get(&self, id: &str) -> Result<&RemoteBackup, BackupError> {
        self.complete
            .iter()
            .find(|r| r.backup.id == id)
            .ok_or_else(|| BackupError::UnknownId(id.to_string()))
    }
}

/// What a ship to a bucket did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketReport {
    /// Backups uploaded (or completed) by this ship.
    pub uploaded: Vec<String>,
    /// Bytes sent.
    pub bytes: u64,
    /// Remote backups deleted by the remote retention policy, and partial ones removed.
    pub deleted: Vec<String>,
    /// Complete backups in the bucket afterwards.
    pub kept: usize,
    /// Archive segments no kept backup needs any more, deleted.
    pub archive_segments_deleted: usize,
}

/// A prefix of an object store holding backups, with blocking calls.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: String,
    runtime: tokio::runtime::Runtime,
    /// Encrypts archive segments (backups arrive already encrypted).
    encryption: Option<BackupKey>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the store itself: its configuration holds credentials.
        f.debug_struct("Bucket")
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

fn remote_error(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Remote {
        what,
        cause: Box::new(source),
    }
}

/// One line for an object store error: the store's status, error code and message when it
/// answered (`403 Forbidden InvalidAccessKeyId: ...`), else the innermost cause (`Connection
/// refused`). object_store's own text repeats its whole chain and the response body.
pub fn describe_error(error: &object_store::Error) -> String {
    let mut texts = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = current {
        texts.push(cause.to_string());
        current = cause.source();
    }
    let all = texts.join("\n");
    let between = |open: &str, close: &str| {
        let start = all.find(open)? + open.len();
        let end = all[start..].find(close)? + start;
        Some(all[start..end].to_string())
    };
    let status = between("status code: ", ":").unwrap_or_default();
    match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        (Some(code), None) => format!("{status} {code}"),
        _ => match error {
            object_store::Error::NotFound { path, .. } => format!("{path} not found"),
            _ => texts.last().cloned().unwrap_or_default(),
        },
    }
}

impl Bucket {
    /// Backups under `prefix` (may be empty) of `store`; `describe` names it in messages
    /// (`s3://bucket/prefix`).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        describe: impl Into<String>,
    ) -> Result<Bucket, BackupError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting the object store's runtime"))?;
        Ok(Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            describe: describe.into(),
            runtime,
            encryption: None,
        })
    }

    /// Archive segments are encrypted with `key` and decrypted with it.
    pub fn with_key(mut self, key: Option<BackupKey>) -> Bucket {
        self.encryption = key;
        self
    }

    /// `s3://bucket/prefix`, or what the caller named it.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn key(&self, rest: &str) -> ObjectPath {
        let full = if self.prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.prefix)
        };
        ObjectPath::from(full.as_str())
    }

    fn backup_key(&self, id: &str, file: &str) -> ObjectPath {
        self.key(&format!("backups/{id}/{file}"))
    }

    /// Every backup in the bucket, complete or partial.
    pub fn list(&self) -> Result<Listing, BackupError> {
        let backups = self.key("backups");
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&backups)))
            .map_err(remote_error(format!("listing {}", self.describe)))?;
        let mut listing = Listing::default();
        for directory in listed.common_prefixes {
            let Some(id) = directory.filename().map(str::to_string) else {
                continue;
            };
            match self.read_manifest(&id)? {
                Some(remote) => listing.complete.push(remote),
                None => listing.partial.push(id),
            }
        }
        listing.complete.sort_by_key(|r| r.backup.time_ms);
        listing.partial.sort();
        Ok(listing)
    }

    /// The manifest of backup `id`; `None` if it is missing or unreadable (a partial backup).
    fn read_manifest(&self, id: &str) -> Result<Option<RemoteBackup>, BackupError> {
        let key = self.backup_key(id, MANIFEST);
        let bytes = self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(error),
            }
        });
        let Some(bytes) = bytes.map_err(remote_error(format!("reading {key}")))? else {
            return Ok(None);
        };
        Ok(parse_manifest(&String::from_utf8_lossy(&bytes)).filter(|r| r.backup.id == id))
    }

    /// Size and CRC-64 metadata of an object, `None` if it does not exist.
    fn stat(&self, key: &ObjectPath) -> Result<Option<(u64, Option<String>)>, BackupError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.runtime.block_on(self.store.get_opts(key, options)) {
            Ok(result) => {
                let crc = result
                    .attributes
                    .get(&Attribute::Metadata(CRC_KEY.into()))
                    .map(|value| value.as_ref().to_string());
                Ok(Some((result.meta.size, crc)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(remote_error(format!("reading back {key}"))(error)),
        }
    }

    /// Uploads a verified local backup: every file not already there (same size and CRC-64),
    /// each read back, then the manifest. Returns the bytes sent.
    pub fn upload(
        &self,
        catalog: &Catalog,
        backup: &Backup,
        progress: &mut dyn Progress,
    ) -> Result<u64, BackupError> {
        let dir = catalog.path_of(&backup.id);
        let mut files = Vec::new();
        for path in files_under(&dir)? {
            let relative = relative_name(&dir, &path)?;
            let (size, crc64) = crc_of(&path)?;
            files.push((
                path,
                RemoteFile {
                    path: relative,
                    size,
                    crc64,
                },
            ));
        }
        // Smallest first: a ship stopped midway leaves a visibly partial backup early.
        files.sort_by_key(|(_, f)| f.size);
        let total: u64 = files.iter().map(|(_, f)| f.size).sum();
        let mut sent = 0;
        let mut done = 0;
        for (path, file) in &files {
            let key = self.backup_key(&backup.id, &file.path);
            let there = self.stat(&key)?;
            if there != Some((file.size, Some(file.crc64.clone()))) {
                self.put_file(path, &key, file, &mut |n| {
                    progress.update("upload", done + n, total);
                })?;
                sent += file.size;
                self.check_object(&key, file)?;
            }
            done += file.size;
            progress.update("upload", done, total);
        }
        let remote = RemoteBackup {
            backup: backup.clone(),
            files: files.into_iter().map(|(_, f)| f).collect(),
        };
        let text = manifest_text(&remote);
        let key = self.backup_key(&backup.id, MANIFEST);
        let options = PutOptions {
            mode: PutMode::Overwrite,
            ..PutOptions::default()
        };
        self.runtime
            .block_on(self.store.put_opts(
                &key,
                PutPayload::from(text.clone().into_bytes()),
                options,
            ))
            .map_err(remote_error(format!("writing {key}")))?;
        match self.read_manifest(&backup.id)? {
            Some(read) if read == remote => Ok(sent),
            _ => Err(BackupError::Verification {
                id: backup.id.clone(),
                what: format!("{key} reads back different from what was written"),
            }),
        }
    }

    /// Reads back an uploaded object's size and CRC-64 and compares them.
    fn check_object(&self, key: &ObjectPath, file: &RemoteFile) -> Result<(), BackupError> {
        match self.stat(key)? {
            Some((size, Some(crc))) if size == file.size && crc == file.crc64 => Ok(()),
            found => Err(BackupError::Verification {
                id: key.to_string(),
                what: format!(
                    "reads back as {found:?}, expected {} bytes with CRC-64 {}",
                    file.size, file.crc64
                ),
            }),
        }
    }

    fn put_file(
        &self,
        path: &Path,
        key: &ObjectPath,
        file: &RemoteFile,
        sent: &mut dyn FnMut(u64),
    ) -> Result<(), BackupError> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(CRC_KEY.into()),
            AttributeValue::from(file.crc64.clone()),
        );
        let what = format!("uploading {} to {key}", path.display());
        let mut input = File::open(path).map_err(io(what.clone()))?;
        if file.size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(file.size as usize);
            input.read_to_end(&mut bytes).map_err(io(what.clone()))?;
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.runtime
                .block_on(self.store.put_opts(key, PutPayload::from(bytes), options))
                .map_err(remote_error(what))?;
            sent(file.size);
            return Ok(());
        }
        self.runtime.block_on(async {
            let options = PutMultipartOptions {
                attributes,
                ..PutMultipartOptions::default()
            };
            let upload = self
                .store
                .put_multipart_opts(key, options)
                .await
                .map_err(remote_error(what.clone()))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buffer = vec![0u8; 1 << 20];
            let mut done = 0u64;
            let failure = loop {
                let n = match input.read(&mut buffer) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(error) => break Some(io(what.clone())(error)),
                };
                if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    break Some(remote_error(what.clone())(error));
                }
                writer.write(&buffer[..n]);
                done += n as u64;
                sent(done);
            };
            match failure {
                None => writer
                    .finish()
                    .await
                    .map(|_| ())
                    .map_err(remote_error(what.clone())),
                Some(error) => {
                    // Best effort: the store's lifecycle rules reap what an abort misses.
                    let _ = writer.abort().await;
                    Err(error)
                }
            }
        })
    }

    /// Downloads complete backup `remote` into `backup_dir/<id>/`, checking each file's size
    /// and CRC-64 against the manifest. A file that differs is reported as damage in the bucket.
    pub fn download(
        &self,
        remote: &RemoteBackup,
        backup_dir: &Path,
        progress: &mut dyn Progress,
    ) -> Result<(), BackupError> {
        let id = &remote.backup.id;
        let target = backup_dir.join(id);
        let total: u64 = remote.files.iter().map(|f| f.size).sum();
        let mut done = 0;
        for file in &remote.files {
            let local = target.join(safe_relative(&file.path)?);
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("creating {}", parent.display())))?;
            }
            let key = self.backup_key(id, &file.path);
            let (size, crc) = self.get_into(&key, &local, &mut |n| {
                progress.update("download", done + n, total);
            })?;
            if size != file.size || crc != file.crc64 {
                return Err(BackupError::Verification {
                    id: id.clone(),
                    what: format!(
                        "object {key} is {size} bytes with CRC-64 {crc}; the manifest says {} bytes with CRC-64 {}: damaged in the bucket",
                        file.size, file.crc64
                    ),
                });
            }
            done += file.size;
        }
        progress.update("download", total, total);
        Ok(())
    }

    fn get_into(
        &self,
        key: &ObjectPath,
        local: &Path,
        received: &mut dyn FnMut(u64),
    ) -> Result<(u64, String), BackupError> {
        let what = format!("downloading {key} to {}", local.display());
        let mut output = File::create(local).map_err(io(what.clone()))?;
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
        let size = self.runtime.block_on(async {
            let result = self
                .store
                .get(key)
                .await
                .map_err(remote_error(what.clone()))?;
            let mut stream = result.into_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(remote_error(what.clone()))?;
                digest.update(&chunk);
                output.write_all(&chunk).map_err(io(what.clone()))?;
                size += chunk.len() as u64;
                received(size);
            }
            Ok::<u64, BackupError>(size)
        })?;
        output.sync_all().map_err(io(what))?;
        Ok((size, format!("{:016x}", digest.finalize())))
    }

    /// Downloads backup `id` into a fresh catalog at `backup_dir` (for verify and restore on a
    /// machine that has nothing but the bucket).
    pub fn fetch(
        &self,
        listing: &Listing,
        id: &str,
        backup_dir: &Path,
        progress: &mut dyn Progress,
    ) -> Result<Catalog, BackupError> {
        let remote = listing.get(id)?;
        std::fs::create_dir_all(backup_dir)
            .map_err(io(format!("creating {}", backup_dir.display())))?;
        self.download(remote, backup_dir, progress)?;
        Ok(Catalog {
            dir: backup_dir.to_path_buf(),
            backups: vec![remote.backup.clone()],
        })
    }

    /// Deletes backup `id` from the bucket: its manifest first (so it stops being complete),
    /// then its other objects.
    pub fn delete(&self, id: &str) -> Result<(), BackupError> {
        let manifest = self.backup_key(id, MANIFEST);
        let directory = self.key(&format!("backups/{id}"));
        self.runtime.block_on(async {
            match self.store.delete(&manifest).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(remote_error(format!("deleting {manifest}"))(error)),
            }
            let mut objects = self.store.list(Some(&directory));
            while let Some(meta) = objects.next().await {
                let meta = meta.map_err(remote_error(format!("listing {directory}")))?;
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => {
                        return Err(remote_error(format!("deleting {}", meta.location))(error));
                    }
                }
            }
            Ok(())
        })
    }

    /// Ships the local catalog's verified backups that the remote policy keeps and the bucket
    /// lacks (resuming partial uploads), then prunes the bucket by `policy` at `now_ms`: never
    /// the newest complete backup; partial backups are removed once the uploads are done.
    /// Nothing is deleted if an upload fails.
    pub fn ship(
        &self,
        catalog: &Catalog,
        policy: Policy,
        now_ms: i64,
        progress: &mut dyn Progress,
    ) -> Result<BucketReport, BackupError> {
        let listing = self.list()?;
        let complete: HashSet<&str> = listing
            .complete
            .iter()
            .map(|r| r.backup.id.as_str())
            .collect();
        let missing: Vec<&Backup> = catalog
            .backups
            .iter()
            .filter(|b| b.is_good() && !complete.contains(b.id.as_str()))
            .collect();
        let mut pool: Vec<Backup> = listing.complete.iter().map(|r| r.backup.clone()).collect();
        pool.extend(missing.iter().map(|b| (*b).clone()));
        let keep: HashSet<String> = plan(&pool, now_ms, policy).keep.into_iter().collect();
        let mut report = BucketReport::default();
        for backup in missing {
            if keep.contains(&backup.id) {
                report.bytes += self.upload(catalog, backup, progress)?;
                report.uploaded.push(backup.id.clone());
            }
        }
        for id in &listing.partial {
            if !report.uploaded.contains(id) {
                self.delete(id)?;
                report.deleted.push(id.clone());
            }
        }
        for remote in &listing.complete {
            if !keep.contains(&remote.backup.id) {
                self.delete(&remote.backup.id)?;
                report.deleted.push(remote.backup.id.clone());
            }
        }
        report.kept = keep.len();
        // The archive is needed from the oldest kept AOF backup's last incr file on.
        let oldest_needed = self
            .list()?
            .complete
            .iter()
            .filter(|r| r.backup.kind == Kind::Aof)
            .filter_map(last_incr_seq)
            .min();
        if let Some(seq) = oldest_needed {
            report.archive_segments_deleted = self.prune_archive(seq)?;
        }
        Ok(report)
    }
}

const START_CRC_KEY: &str = "amber-start-crc64";
const END_CRC_KEY: &str = "amber-end-crc64";

/// The archive's segments ([`crate::archive`]): `archive/<incr file>/<start>-<end>` (offsets
/// in the plain file, 20 digits each), encrypted with the bucket's key when it has one.
impl Bucket {
    fn segment_key(&self, name: &str, segment: &Segment) -> ObjectPath {
        self.key(&format!(
            "archive/{name}/{:020}-{:020}",
            segment.start,
            segment.end()
        ))
    }

    /// Uploads one segment of incr file `name`, with the CRC-64s of the plain file up to its
    /// start and its end; it is read back before this returns.
    pub(crate) fn put_segment(
        &self,
        name: &str,
        start: u64,
        bytes: Vec<u8>,
        start_crc: &str,
        end_crc: &str,
    ) -> Result<(), BackupError> {
        let segment = Segment {
            start,
            size: bytes.len() as u64,
        };
        let key = self.segment_key(name, &segment);
        let bytes = match &self.encryption {
            Some(key) => key.encrypt_bytes(&bytes)?,
            None => bytes,
        };
        let size = bytes.len() as u64;
        let mut attributes = Attributes::new();
        for (field, value) in [(START_CRC_KEY, start_crc), (END_CRC_KEY, end_crc)] {
            attributes.insert(
                Attribute::Metadata(field.into()),
                AttributeValue::from(value.to_string()),
            );
        }
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.runtime
            .block_on(self.store.put_opts(&key, PutPayload::from(bytes), options))
            .map_err(remote_error(format!("archiving {key}")))?;
        match self.segment_meta(&key)? {
            Some((found, end)) if found == size && end == end_crc => Ok(()),
            found => Err(BackupError::Verification {
                id: key.to_string(),
                what: format!(
                    "reads back as {found:?}, expected {size} bytes ending at CRC-64 {end_crc}"
                ),
            }),
        }
    }

    /// Object size and end CRC of a segment.
    fn segment_meta(&self, key: &ObjectPath) -> Result<Option<(u64, String)>, BackupError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.runtime.block_on(self.store.get_opts(key, options)) {
            Ok(result) => {
                let end = metadata(&result.attributes, END_CRC_KEY);
                Ok(Some((result.meta.size, end)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(remote_error(format!("reading back {key}"))(error)),
        }
    }

    /// The CRC-64 of incr file `name` up to the end of `segment`.
    pub(crate) fn segment_end_crc(
        &self,
        name: &str,
        segment: &Segment,
    ) -> Result<String, BackupError> {
        let key = self.segment_key(name, segment);
        Ok(self
            .segment_meta(&key)?
            .map(|(_, end)| end)
            .unwrap_or_default())
    }

    /// A segment's plain bytes and its start and end CRC-64s.
    pub(crate) fn get_segment(
        &self,
        name: &str,
        segment: &Segment,
    ) -> Result<(Vec<u8>, String, String), BackupError> {
        let key = self.segment_key(name, segment);
        let result = self.runtime.block_on(async {
            let result = self.store.get(&key).await?;
            let start_crc = metadata(&result.attributes, START_CRC_KEY);
            let end_crc = metadata(&result.attributes, END_CRC_KEY);
            let bytes = result.bytes().await?;
            Ok::<_, object_store::Error>((bytes.to_vec(), start_crc, end_crc))
        });
        let (bytes, start_crc, end_crc) = result.map_err(remote_error(format!("reading {key}")))?;
        let plain = match &self.encryption {
            Some(encryption) => encryption.decrypt_bytes(&bytes, key.as_ref())?,
            None if bytes.starts_with(b"age-encryption.org/") => {
                return Err(BackupError::NeedsKey(format!("the archive ({key})")));
            }
            None => bytes,
        };
        Ok((plain, start_crc, end_crc))
    }

    /// The segments of incr file `name`, in offset order.
    pub(crate) fn segments_of(&self, name: &str) -> Result<Vec<Segment>, BackupError> {
        let all = self.list_archive(Some(name))?;
        Ok(all.into_values().next().unwrap_or_default())
    }

    /// Every archived file's segments.
    pub fn archived_files(&self) -> Result<crate::archive::ArchivedFiles, BackupError> {
        self.list_archive(None)
    }

    fn list_archive(
        &self,
        only: Option<&str>,
    ) -> Result<crate::archive::ArchivedFiles, BackupError> {
        let prefix = match only {
            Some(name) => self.key(&format!("archive/{name}")),
            None => self.key("archive"),
        };
        let root = self.key("archive");
        let mut files = crate::archive::ArchivedFiles::new();
        self.runtime.block_on(async {
            let mut objects = self.store.list(Some(&prefix));
            while let Some(meta) = objects.next().await {
                let meta = meta.map_err(remote_error(format!("listing {prefix}")))?;
                let Some(rest) = meta.location.prefix_match(&root) else {
                    continue;
                };
                let parts: Vec<String> = rest.map(|p| p.as_ref().to_string()).collect();
                let [name, range] = parts.as_slice() else {
                    continue;
                };
                let Some((start, end)) = range.split_once('-') else {
                    continue;
                };
                let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>()) else {
                    continue;
                };
                if end < start {
                    continue;
                }
                files.entry(name.clone()).or_default().push(Segment {
                    start,
                    size: end - start,
                });
            }
            Ok::<(), BackupError>(())
        })?;
        for segments in files.values_mut() {
            segments.sort_by_key(|s| s.start);
        }
        Ok(files)
    }

    /// Deletes the archive's files whose every byte lies before what `keep_from` needs: the
    /// incr files older than the oldest kept AOF backup's last incr file. Returns how many
    /// segments went.
    pub fn prune_archive(&self, oldest_needed_seq: u64) -> Result<usize, BackupError> {
        let files = self.archived_files()?;
        let mut deleted = 0;
        for (name, segments) in files {
            let Some(seq) = crate::archive::incr_seq(&name) else {
                continue;
            };
            if seq >= oldest_needed_seq {
                continue;
            }
            for segment in segments {
                let key = self.segment_key(&name, &segment);
                match self.runtime.block_on(self.store.delete(&key)) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                    Err(error) => return Err(remote_error(format!("deleting {key}"))(error)),
                }
            }
        }
        Ok(deleted)
    }
}

/// A user-metadata value of an object ("" when absent).
fn metadata(attributes: &Attributes, name: &'static str) -> String {
    attributes
        .get(&Attribute::Metadata(name.into()))
        .map(|v| v.as_ref().to_string())
        .unwrap_or_default()
}

/// The sequence number of an AOF backup's last incr file.
fn last_incr_seq(remote: &RemoteBackup) -> Option<u64> {
    remote
        .files
        .iter()
        .filter_map(|f| crate::archive::incr_seq(f.path.rsplit('/').next()?))
        .max()
}

/// A file's path under the backup directory, with `/` separators.
fn relative_name(dir: &Path, path: &Path) -> Result<String, BackupError> {
    let relative = path.strip_prefix(dir).map_err(|_| {
        BackupError::Refused(format!("{} is outside {}", path.display(), dir.display()))
    })?;
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// A manifest's file path, refused if it could escape the download directory.
fn safe_relative(name: &str) -> Result<&Path, BackupError> {
    let path = Path::new(name);
    let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !normal {
        return Err(BackupError::Refused(format!(
            "the bucket's manifest names an unsafe path {name:?}"
        )));
    }
    Ok(path)
}

/// Size and CRC-64 (hex) of a file.
fn crc_of(path: &Path) -> Result<(u64, String), BackupError> {
    let what = format!("reading {}", path.display());
    let mut file = File::open(path).map_err(io(what.clone()))?;
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(what.clone()))?;
        if n == 0 {
            return Ok((size, format!("{:016x}", digest.finalize())));
        }
        digest.update(&buffer[..n]);
        size += n as u64;
    }
}

/// The manifest's text: a header, the catalog fields, then one line per file
/// (`file<TAB>size<TAB>crc64<TAB>path`).
fn manifest_text(remote: &RemoteBackup) -> String {
    let b = &remote.backup;
    let mut text = format!(
        "{MANIFEST_HEADER}\nid\t{}\ntime_ms\t{}\nkind\t{}\nsize\t{}\nkeys\t{}\ndigest\t{}\nchecksum\t{}\n",
        b.id,
        b.time_ms,
        b.kind.name(),
        b.size,
        b.keys,
        b.digest,
        b.checksum
    );
    for file in &remote.files {
        text.push_str(&format!(
            "file\t{}\t{}\t{}\n",
            file.size, file.crc64, file.path
        ));
    }
    text.push_str("end\n");
    text
}

/// Parses a manifest; `None` if it is not a complete one (a truncated manifest lacks `end`).
fn parse_manifest(text: &str) -> Option<RemoteBackup> {
    let mut lines = text.lines();
    if lines.next()? != MANIFEST_HEADER {
        return None;
    }
    let mut fields = std::collections::HashMap::new();
    let mut files = Vec::new();
    let mut ended = false;
    for line in lines {
        if line == "end" {
            ended = true;
            break;
        }
        let (name, rest) = line.split_once('\t')?;
        if name == "file" {
            let mut parts = rest.splitn(3, '\t');
            files.push(RemoteFile {
                size: parts.next()?.parse().ok()?,
                crc64: parts.next()?.to_string(),
                path: parts.next()?.to_string(),
            });
        } else {
            fields.insert(name, rest);
        }
    }
    let field = |name: &str| fields.get(name).copied();
    let backup = Backup {
        id: field("id")?.to_string(),
        time_ms: field("time_ms")?.parse().ok()?,
        kind: match field("kind")? {
            "rdb" => Kind::Rdb,
            "aof" => Kind::Aof,
            _ => return None,
        },
        size: field("size")?.parse().ok()?,
        keys: field("keys")?.parse().ok()?,
        digest: field("digest")?.to_string(),
        checksum: field("checksum")?.to_string(),
        status: Status::Verified,
    };
    ended.then_some(RemoteBackup { backup, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_truncated_ones_are_partial() {
        let remote = RemoteBackup {
            backup: Backup {
                id: "20261201-010203-004".into(),
                time_ms: 1_796_000_000_004,
                kind: Kind::Aof,
                size: 300,
                keys: 7,
                digest: "ab".repeat(20),
                checksum: "0123456789abcdef".into(),
                status: Status::Verified,
            },
            files: vec![
                RemoteFile {
                    path: "appendonlydir/appendonly aof.1.incr.aof".into(),
                    size: 100,
                    crc64: "00000000000000ff".into(),
                },
                RemoteFile {
                    path: "meta".into(),
                    size: 200,
                    crc64: "0000000000000001".into(),
                },
            ],
        };
        let text = manifest_text(&remote);
        assert_eq!(parse_manifest(&text), Some(remote));
        let cut = &text[..text.len() - 4];
        assert_eq!(parse_manifest(cut), None);
        assert_eq!(parse_manifest("garbage"), None);
    }

    #[test]
    fn manifest_paths_cannot_escape_the_download_directory() {
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(safe_relative("appendonlydir/appendonly.aof.1.base.rdb").is_ok());
    }
}
