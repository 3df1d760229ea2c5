//! Continuous archiving of the AOF to a bucket, for point-in-time recovery off the machine (as
//! PostgreSQL's WAL archiving does): every few seconds the new bytes of each incr file are
//! uploaded as one segment object, `archive/<incr file>/<start>-<end>` (offsets in the plain
//! file), encrypted when the bucket has a key.
//!
//! Each segment records, as user metadata, the CRC-64 of its incr file's bytes before it and up
//! to its end (INV-ARCHIVE-CHAIN). An archiver that starts again (a restarted server) continues
//! only where the last segment's end CRC matches the local file, so two histories that reuse a
//! file name (an AOF directory recreated from scratch) are never spliced: it refuses instead.
//! A restore checks the same chain, and that the archived file begins with the backup's copy
//! of it.
//!
//! An incr file closed by a rewrite is kept by the server until its last bytes are archived.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use amber_aof::{FileInfo, FileKind, Manifest};

use crate::bucket::Bucket;
use crate::catalog::{BackupError, io};

/// Segments larger than this are split (each is one object, buffered in memory).
const MAX_SEGMENT: u64 = 64 << 20;

/// One archived piece of an incr file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Offset of its first byte in the incr file.
    pub start: u64,
    /// Bytes.
    pub size: u64,
}

impl Segment {
    /// Offset after its last byte.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// What one archive pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Bytes uploaded.
    pub bytes: u64,
    /// Segments uploaded.
    pub segments: usize,
    /// Files whose every byte is now archived (a closed incr file may then be deleted).
    pub complete: Vec<String>,
}

/// Where the archive of one incr file stands.
#[derive(Clone)]
struct Position {
    end: u64,
    digest: crc_fast::Digest,
}

/// Ships the new bytes of incr files; keeps, per file, how far it got.
#[derive(Default)]
pub struct Archiver {
    positions: HashMap<String, Position>,
}

fn crc_hex(digest: &crc_fast::Digest) -> String {
    format!("{:016x}", digest.finalize())
}

impl Archiver {
    /// A new archiver (it learns what the bucket holds on first use of each file).
    pub fn new() -> Archiver {
        Archiver::default()
    }

    /// Archives `files` (name, path, length to archive up to: what is flushed now). Files no
    /// longer named are forgotten.
    pub fn archive(
        &mut self,
        bucket: &Bucket,
        files: &[(String, PathBuf, u64)],
    ) -> Result<ArchiveReport, BackupError> {
        let mut report = ArchiveReport::default();
        self.positions
            .retain(|name, _| files.iter().any(|(n, _, _)| n == name));
        for (name, path, len) in files {
            let mut position = match self.positions.get(name) {
                Some(position) => position.clone(),
                None => self.resume(bucket, name, path)?,
            };
            while position.end < *len {
                let size = (*len - position.end).min(MAX_SEGMENT);
                let bytes = read_range(path, position.end, size)?;
                let start_crc = crc_hex(&position.digest);
                let mut digest = position.digest;
                digest.update(&bytes);
                bucket.put_segment(name, position.end, bytes, &start_crc, &crc_hex(&digest))?;
                report.bytes += size;
                report.segments += 1;
                position = Position {
                    end: position.end + size,
                    digest,
                };
                self.positions.insert(name.clone(), position.clone());
            }
            self.positions.insert(name.clone(), position.clone());
            if position.end >= *len {
                report.complete.push(name.clone());
            }
        }
        Ok(report)
    }

    /// Where the bucket's archive of `name` ends, checked against the local file.
    fn resume(&self, bucket: &Bucket, name: &str, path: &Path) -> Result<Position, BackupError> {
        let segments = bucket.segments_of(name)?;
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
        let Some(last) = segments.last() else {
            return Ok(Position { end: 0, digest });
        };
        let local_len = std::fs::metadata(path).map_or(0, |m| m.len());
        let expected = bucket.segment_end_crc(name, last)?;
        if local_len >= last.end() {
            digest.update(&read_range(path, 0, last.end())?);
            if crc_hex(&digest) == expected {
                return Ok(Position {
                    end: last.end(),
                    digest,
                });
            }
        }
        Err(BackupError::Refused(format!(
            "the archive in {} holds a different history for {name} (its first {} bytes differ from the local file): archive this AOF under another backup-remote prefix",
            bucket.describe(),
            last.end()
        )))
    }
}

fn read_range(path: &Path, start: u64, size: u64) -> Result<Vec<u8>, BackupError> {
    let what = format!("reading {}", path.display());
    let mut file = File::open(path).map_err(io(what.clone()))?;
    file.seek(SeekFrom::Start(start))
        .map_err(io(what.clone()))?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(io(what.clone()))?;
    if bytes.len() as u64 != size {
        return Err(BackupError::Refused(format!(
            "{} is shorter than {} bytes",
            path.display(),
            start + size
        )));
    }
    Ok(bytes)
}

/// The sequence number in an incr file's name (`appendonly.aof.12.incr.aof` is 12).
pub fn incr_seq(name: &str) -> Option<u64> {
    let without = name.strip_suffix(".incr.aof")?;
    without.rsplit('.').next()?.parse().ok()
}

/// Rebuilds, from the bucket's archive, the incr files that follow an AOF backup: the backup's
/// last incr file and every later one, each from its first byte, in `dir` with a manifest
/// naming them (for [`crate::restore::RestoreOptions::replay_from`]). Checks the CRC chain of
/// every segment, that nothing is missing, and that the archived copy of the backup's last
/// incr file begins with the backup's own bytes. Returns the bytes assembled.
pub fn assemble_after(
    bucket: &Bucket,
    backup_aof_dir: &Path,
    dir: &Path,
) -> Result<u64, BackupError> {
    let refused = BackupError::Refused;
    let manifest_path =
        crate::verify::manifest_in(backup_aof_dir).map_err(|e| refused(e.to_string()))?;
    let text = std::fs::read(&manifest_path).map_err(io("reading the backup's manifest"))?;
    let backup_manifest = Manifest::parse(&text).map_err(|e| refused(e.to_string()))?;
    let last = backup_manifest
        .last_incr()
        .cloned()
        .ok_or_else(|| refused("the backup has no incr file to continue from".into()))?;
    let archived = bucket.archived_files()?;
    let mut names: Vec<(u64, String)> = archived
        .keys()
        .filter_map(|name| Some((incr_seq(name)?, name.clone())))
        .filter(|(seq, _)| *seq >= last.seq)
        .collect();
    names.sort();
    if names.first().map(|(_, n)| n) != Some(&last.name) {
        return Err(refused(format!(
            "the bucket's archive has nothing of {}, the backup's last incr file",
            last.name
        )));
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut manifest = backup_manifest.clone();
    manifest.history.clear();
    let mut total = 0;
    for (seq, name) in &names {
        let segments = &archived[name];
        total += download_chain(bucket, name, segments, &dir.join(name))?;
        if *seq > last.seq {
            manifest.incrs.push(FileInfo {
                name: name.clone(),
                seq: *seq,
                kind: FileKind::Incr,
            });
            manifest.incr_seq = *seq;
        }
    }
    let ours = backup_aof_dir.join(&last.name);
    let ours_len = std::fs::metadata(&ours).map_or(0, |m| m.len());
    let theirs = dir.join(&last.name);
    let theirs_len = std::fs::metadata(&theirs).map_or(0, |m| m.len());
    if theirs_len < ours_len || read_range(&ours, 0, ours_len)? != read_range(&theirs, 0, ours_len)?
    {
        return Err(refused(format!(
            "the archived {} does not continue the backup's copy of it (another history)",
            last.name
        )));
    }
    let prefix = last
        .name
        .strip_suffix(&format!(".{}.incr.aof", last.seq))
        .unwrap_or(&last.name)
        .to_string();
    amber_aof::manifest::persist(dir, &prefix, &manifest).map_err(io("writing the manifest"))?;
    Ok(total)
}

/// Downloads one file's segments into `path`, checking that they join up and their CRCs.
fn download_chain(
    bucket: &Bucket,
    name: &str,
    segments: &[Segment],
    path: &Path,
) -> Result<u64, BackupError> {
    let mut output = File::create(path).map_err(io(format!("creating {}", path.display())))?;
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
    let mut end = 0;
    for segment in segments {
        if segment.start != end {
            return Err(BackupError::Refused(format!(
                "the archive of {name} is missing bytes {end}..{}",
                segment.start
            )));
        }
        let (bytes, start_crc, end_crc) = bucket.get_segment(name, segment)?;
        if start_crc != crc_hex(&digest) {
            return Err(BackupError::Refused(format!(
                "the archive of {name} mixes two histories at offset {end}"
            )));
        }
        digest.update(&bytes);
        if end_crc != crc_hex(&digest) || bytes.len() as u64 != segment.size {
            return Err(BackupError::Verification {
                id: format!("archive of {name}"),
                what: format!("the segment at offset {end} is damaged"),
            });
        }
        output
            .write_all(&bytes)
            .map_err(io(format!("writing {}", path.display())))?;
        end = segment.end();
    }
    output
        .sync_all()
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(end)
}

/// The archive's files: segments by incr file name, in offset order.
pub type ArchivedFiles = BTreeMap<String, Vec<Segment>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_sequence_numbers_come_from_the_name() {
        assert_eq!(incr_seq("appendonly.aof.12.incr.aof"), Some(12));
        assert_eq!(incr_seq("my file.aof.3.incr.aof"), Some(3));
        assert_eq!(incr_seq("appendonly.aof.1.base.rdb"), None);
    }
}
