//! Continuous AOF archiving to the backup bucket (`backup-remote s3://...` with AOF on): every
//! `backup-archive-interval` seconds the cron flushes the AOF and hands the incr files' names
//! and flushed lengths to a thread that uploads the new bytes (`amber_backup::archive`). With
//! AOF backups in the bucket, `amber-backup restore --from-remote --at T` rebuilds the dataset
//! at any archived second. Incr files closed by a rewrite stay on disk (as history) until
//! their last bytes are archived (INV-ARCHIVE-HOLD).

use std::path::PathBuf;
use std::thread::JoinHandle;

use amber_backup::archive::{ArchiveReport, Archiver};
use amber_backup::bucket::Bucket;

use crate::config::Config;
use crate::persistence::aof::{AofPaths, delete_history};
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// What an archive thread hands back: its state (kept for the next pass) and its outcome.
type Pass = (Archiver, Option<Bucket>, Result<ArchiveReport, String>);

/// The archiver between passes, the running pass, and what `INFO backup` shows.
#[derive(Default)]
pub(crate) struct ArchiveState {
    idle: Option<(Archiver, Option<Bucket>)>,
    running: Option<(i64, JoinHandle<Pass>)>,
    /// The incr files already closed when the running pass started: only their lengths were
    /// final, so only they can be complete in its report (INV-ARCHIVE-HOLD).
    closed_at_start: Vec<String>,
    /// Clock time of the last pass started (ms).
    last_started_ms: Option<i64>,
    /// The last pass: when it started (ms) and how it ended.
    pub last: Option<(i64, Result<ArchiveReport, String>)>,
    /// Unix ms up to which every write is archived (the flush point of the last good pass).
    pub archived_through_ms: Option<i64>,
    /// Bytes archived by this process.
    pub bytes: u64,
    warned_no_timestamps: bool,
}

/// Whether the configuration asks for archiving: an `s3://` remote, AOF on, a non-zero
/// interval, and a backup directory (backups are what the archive continues).
pub(crate) fn archiving_configured(config: &Config) -> bool {
    config.get("backup-remote").starts_with("s3://")
        && !config.get("backup-dir").is_empty()
        && config.get_bool("appendonly")
        && config.get_i64("backup-archive-interval") > 0
}

impl Server {
    /// From the cron: collects a finished pass, and starts the next when due.
    pub(crate) fn archive_cron(&mut self) {
        self.collect_archive_pass();
        if !archiving_configured(&self.config)
            || !self.aof.is_on()
            || self.aof.waiting_first_incr.is_some()
            || self.archive.running.is_some()
        {
            return;
        }
        let now = unix_ms();
        let interval_ms = self.config.get_i64("backup-archive-interval") * 1000;
        if self
            .archive
            .last_started_ms
            .is_some_and(|at| now - at < interval_ms)
        {
            return;
        }
        if !self.config.get_bool("aof-timestamp-enabled") && !self.archive.warned_no_timestamps {
            self.archive.warned_no_timestamps = true;
            warning!(
                "Archiving the AOF without aof-timestamp-enabled: a restore can replay the archive only to its end, not to a chosen second"
            );
        }
        if let Err(error) = self.aof.flush() {
            warning!("Archiving the AOF: flushing it failed: {error}");
            return;
        }
        let files = self.archive_files();
        self.archive.closed_at_start = self.closed_incr_files();
        let (archiver, bucket) = self.archive.idle.take().unwrap_or_default();
        let remote = self.config.get("backup-remote").to_string();
        let key_file = self.config.get("backup-encryption-key-file").to_string();
        let settings = amber_backup::s3::S3Settings {
            endpoint: self.config.get("backup-s3-endpoint").to_string(),
            region: self.config.get("backup-s3-region").to_string(),
            path_style: self.config.get_bool("backup-s3-path-style"),
        };
        self.archive.last_started_ms = Some(now);
        let thread = std::thread::spawn(move || {
            let mut archiver = archiver;
            let bucket = match bucket {
                Some(bucket) => bucket,
                None => {
                    let opened = crate::persistence::backup::load_key(&key_file).and_then(|key| {
                        amber_backup::s3::open(&remote, &settings)
                            .map(|bucket| bucket.with_key(key))
                            .map_err(|error| error.to_string())
                    });
                    match opened {
                        Ok(bucket) => bucket,
                        Err(error) => return (archiver, None, Err(error)),
                    }
                }
            };
            let outcome = archiver
                .archive(&bucket, &files)
                .map_err(|error| error.to_string());
            (archiver, Some(bucket), outcome)
        });
        self.archive.running = Some((now, thread));
    }

    /// The incr files to archive, current and closed (history), with their flushed lengths.
    fn archive_files(&self) -> Vec<(String, PathBuf, u64)> {
        let paths = AofPaths::from_config(&self.config);
        let manifest = &self.aof.manifest;
        let open = manifest.incrs.last();
        manifest
            .history
            .iter()
            .chain(manifest.incrs.iter())
            .filter(|info| info.name.ends_with(".incr.aof"))
            .map(|info| {
                let path = paths.file(&info.name);
                // The open file may be longer on disk than its content (aof-preallocate).
                let len = match self.aof.open_file_len() {
                    Some(len) if Some(info) == open => len,
                    _ => std::fs::metadata(&path).map_or(0, |m| m.len()),
                };
                (info.name.clone(), path, len)
            })
            .collect()
    }

    /// The incr files no write goes to any more: the history, and every incr file but the
    /// last (a rewrite in progress writes to a new one; the switch synced the old).
    fn closed_incr_files(&self) -> Vec<String> {
        let manifest = &self.aof.manifest;
        let open = manifest.incrs.last();
        manifest
            .history
            .iter()
            .chain(manifest.incrs.iter())
            .filter(|info| info.name.ends_with(".incr.aof") && Some(*info) != open)
            .map(|info| info.name.clone())
            .collect()
    }

    fn collect_archive_pass(&mut self) {
        let finished = self
            .archive
            .running
            .as_ref()
            .is_some_and(|(_, thread)| thread.is_finished());
        if !finished {
            return;
        }
        let Some((started, thread)) = self.archive.running.take() else {
            return;
        };
        let (archiver, bucket, outcome) = thread.join().unwrap_or_else(|_| {
            (
                Archiver::new(),
                None,
                Err("the archive thread panicked".into()),
            )
        });
        match &outcome {
            Ok(report) => {
                if report.bytes > 0 {
                    crate::verbose!(
                        "Archived {} bytes of the AOF in {} segments",
                        report.bytes,
                        report.segments
                    );
                }
                self.archive.bytes += report.bytes;
                self.archive.archived_through_ms = Some(started);
                self.release_archived_history(report);
            }
            Err(error) => {
                // A new archiver next time: it re-reads where the bucket stands.
                warning!("Archiving the AOF failed: {error}");
                self.archive.idle = None;
                self.archive.last = Some((started, outcome));
                return;
            }
        }
        self.archive.idle = Some((archiver, bucket));
        self.archive.last = Some((started, outcome));
    }

    /// Deletes the closed incr files (and the rest of the history) once every closed incr
    /// file is archived in full, unless `aof-disable-auto-gc` keeps them. A file the pass
    /// found open may have grown after its length was taken (a rewrite closed it during the
    /// pass): it waits for the next pass.
    fn release_archived_history(&mut self, report: &ArchiveReport) {
        let history = &self.aof.manifest.history;
        if history.is_empty() || self.config.get_bool("aof-disable-auto-gc") {
            return;
        }
        if history_archived(history, report, &self.archive.closed_at_start) {
            notice!("Closed AOF files are archived; removing them");
            let paths = AofPaths::from_config(&self.config);
            delete_history(&paths, &mut self.aof.manifest);
        }
    }
}

/// Whether every closed incr file in `history` was archived in full by a pass that found it
/// already closed (`closed_at_start`), so its archived length is its final length.
fn history_archived(
    history: &[amber_aof::FileInfo],
    report: &ArchiveReport,
    closed_at_start: &[String],
) -> bool {
    history
        .iter()
        .filter(|info| info.name.ends_with(".incr.aof"))
        .all(|info| report.complete.contains(&info.name) && closed_at_start.contains(&info.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amber_aof::{FileInfo, FileKind};

    fn incr(seq: u64) -> FileInfo {
        FileInfo {
            name: format!("appendonly.aof.{seq}.incr.aof"),
            seq,
            kind: FileKind::Incr,
        }
    }

    fn report(complete: &[&str]) -> ArchiveReport {
        ArchiveReport {
            complete: complete.iter().map(|n| n.to_string()).collect(),
            ..ArchiveReport::default()
        }
    }

    #[test]
    fn a_file_closed_during_the_pass_is_not_released_by_it() {
        let history = [incr(1)];
        let name = "appendonly.aof.1.incr.aof";
        // The pass took incr 1's length while it was still the open file: a rewrite then
        // closed it, possibly after more writes. Not released yet.
        assert!(!history_archived(&history, &report(&[name]), &[]));
        // The next pass found it closed and archived it to its end.
        assert!(history_archived(
            &history,
            &report(&[name]),
            &[name.to_string()]
        ));
        // Closed but not archived to its end.
        assert!(!history_archived(
            &history,
            &report(&[]),
            &[name.to_string()]
        ));
    }
}
