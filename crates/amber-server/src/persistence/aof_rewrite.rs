//! AOF rewrite (`BGREWRITEAOF` and the automatic rewrite): at a quiesced point the parent
//! makes the current incr file durable and starts a new one (named in the persisted manifest),
//! then forks a child that writes a base of the dataset at the fork. When the child succeeds
//! the parent renames the base into place and switches the manifest atomically: the new base
//! plus the incr files opened since the fork. A failed or killed child leaves the manifest and
//! every file in use untouched; its temp file is removed.

use std::path::PathBuf;
use std::time::Duration;

use amber_aof::manifest::{self, base_name};
use amber_aof::{FileInfo, FileKind};
use amber_snapshot::schedule::{Admission, JobKind};

use crate::persistence::aof::{AofPaths, BaseFormat, delete_history};
use crate::persistence::forkless::{Encoding, ForklessJob, Output, Target};
use crate::persistence::jobs::{
    Ended, Work, child_result, fork, remove_leftover, temp_rewrite_path,
};
use crate::persistence::save::SnapshotMethod;
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// What a rewrite job needs once its child ends.
pub(crate) struct RewriteJob {
    /// The base the child writes.
    pub(crate) temp: PathBuf,
    /// Incr files with this sequence number or higher were opened at or after the fork.
    first_incr_after_fork: u64,
    /// Whether the base is an RDB file (else commands).
    rdb: bool,
}

/// Rewrite history for `INFO persistence`.
#[derive(Default)]
pub(crate) struct RewriteState {
    /// Whether the last rewrite failed (`aof_last_bgrewrite_status`).
    pub(crate) last_failed: bool,
    /// Duration of the last rewrite in seconds (-1 if none).
    pub(crate) last_seconds: Option<u64>,
    /// Rewrites started (`aof_rewrites`, as Redis counts them).
    pub(crate) rewrites: u64,
    /// Copy-on-write size of the last rewrite child (`aof_last_cow_size`).
    pub(crate) last_cow: u64,
    /// Rewrites started since appendonly was turned on, before one succeeded (a retry starts
    /// the incr file over, see [`crate::persistence::aof::Aof::restart_waiting_incr`]).
    pub(crate) waiting_attempts: u32,
}

/// Why a rewrite could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RewriteError {
    /// A rewrite child already runs.
    #[error("Background append only file rewriting already in progress")]
    InProgress,
    /// The AOF directory or a new incr file could not be created.
    #[error("Can't open a new AOF incr file: {0}")]
    Incr(#[source] std::io::Error),
    /// The fork failed.
    #[error("Can't rewrite append only file in background: {0}")]
    Fork(#[source] amber_snapshot::ForkError),
}

/// Why a finished rewrite's base could not be installed (the old files stay in use).
#[derive(Debug, thiserror::Error)]
enum InstallError {
    /// The directory's manifest cannot be read.
    #[error(transparent)]
    Find(#[from] crate::persistence::aof_load::FindError),
    /// The temporary base could not be renamed into place.
    #[error("renaming the temporary base: {0}")]
    Rename(#[source] std::io::Error),
    /// The new manifest could not be written.
    #[error("persisting the new manifest: {0}")]
    Manifest(#[source] std::io::Error),
}

/// What `BGREWRITEAOF` did.
pub(crate) enum RewriteStart {
    /// A child was forked.
    Started,
    /// Another child runs; the rewrite starts when it ends.
    Scheduled,
}

impl Server {
    /// `BGREWRITEAOF`: starts a rewrite now, or schedules it after a running child.
    pub(crate) fn request_aof_rewrite(&mut self) -> Result<RewriteStart, RewriteError> {
        match self.jobs.scheduler.request(JobKind::AofRewrite, true) {
            Admission::Start => self.fork_rewrite().map(|()| RewriteStart::Started),
            Admission::Queued => Ok(RewriteStart::Scheduled),
            Admission::AlreadyRunning | Admission::Busy(_) => Err(RewriteError::InProgress),
        }
    }

    /// Forks the rewrite child (the scheduler has admitted it).
    pub(crate) fn fork_rewrite(&mut self) -> Result<(), RewriteError> {
        let paths = AofPaths::from_config(&self.config);
        if let Err(error) = self.prepare_incr_for_rewrite(&paths) {
            // As Redis: `aof_last_bgrewrite_status:err`, retried by the scheduler's rules.
            self.record_rewrite_start_failure();
            return Err(error);
        }
        let waiting = self.aof.waiting_first_incr;
        let format = self.aof_base_format();
        let rdb_base = matches!(format, BaseFormat::Rdb(_));
        let temp = temp_rewrite_path(&paths.dir, std::process::id());
        let job = RewriteJob {
            temp: temp.clone(),
            first_incr_after_fork: match (waiting, self.aof.is_on()) {
                (Some(first), _) => first,
                (None, true) => self.aof.manifest.incr_seq,
                (None, false) => u64::MAX,
            },
            rdb: rdb_base,
        };
        if self.snapshot_method() == SnapshotMethod::Forkless {
            return self.start_forkless_rewrite(job, format);
        }
        let keyspace = &self.keyspace;
        let child_temp = temp.clone();
        let spawned = fork(move |reporter| {
            let written = write_rewrite_base(keyspace, &child_temp, format, reporter);
            child_result(
                reporter,
                "Write error writing append only file on disk",
                written,
            )
        });
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                warning!("Can't rewrite append only file in background: fork: {error}");
                self.record_rewrite_start_failure();
                return Err(RewriteError::Fork(error));
            }
        };
        notice!(
            "Background append only file rewriting started by pid {}",
            child.pid()
        );
        // As Redis, `aof_rewrites` counts rewrites started.
        self.aof_rewrite.rewrites += 1;
        self.job_started(child, Work::Rewrite(job));
        Ok(())
    }

    /// Starts a forkless rewrite (`bgsave-method forkless`): the base, in RDB or command form,
    /// is the keyspace's capture at this point, as a fork's would be, and the new incr file
    /// has already started.
    fn start_forkless_rewrite(
        &mut self,
        job: RewriteJob,
        format: BaseFormat,
    ) -> Result<(), RewriteError> {
        let key_delay = Duration::from_micros(self.rdb_options().key_delay_us);
        let encoding = match format {
            BaseFormat::Rdb(options) => Encoding::Rdb {
                options,
                aof_base: true,
            },
            BaseFormat::Commands {
                timestamp,
                functions,
                incremental_fsync: _,
            } => Encoding::Commands {
                timestamp,
                functions,
            },
        };
        let target = Target {
            output: Output::File {
                temp: job.temp.clone(),
                install_at: None,
            },
            key_delay,
            encoding,
            context: "Write error writing append only file on disk",
            digest: false,
            then: None,
        };
        let forkless = match ForklessJob::start(self, target) {
            Ok(forkless) => forkless,
            Err(error) => {
                warning!("Can't rewrite append only file in background: {error}");
                self.record_rewrite_start_failure();
                return Err(RewriteError::Incr(error));
            }
        };
        notice!("Background append only file rewriting started (forkless)");
        self.aof_rewrite.rewrites += 1;
        self.forkless_started(forkless, Work::Rewrite(job));
        Ok(())
    }

    /// Before the fork: the current incr file is made durable and a new one started (or, while
    /// waiting for the first base, the waiting incr file is started over on a retry).
    fn prepare_incr_for_rewrite(&mut self, paths: &AofPaths) -> Result<(), RewriteError> {
        std::fs::create_dir_all(&paths.dir).map_err(RewriteError::Incr)?;
        let waiting = self.aof.waiting_first_incr;
        if waiting.is_some() && self.aof_rewrite.waiting_attempts > 0 {
            self.aof.restart_waiting_incr(paths).map_err(|e| {
                warning!(
                    "Can't restart the temporary AOF incr file: {}",
                    crate::log::os_error(&e)
                );
                RewriteError::Incr(e)
            })?;
        }
        if waiting.is_some() {
            self.aof_rewrite.waiting_attempts += 1;
        }
        if self.aof.is_on() && waiting.is_none() {
            self.aof.rotate(paths).map_err(|e| {
                warning!(
                    "Can't open a new AOF incr file for the rewrite: {}",
                    crate::log::os_error(&e)
                );
                RewriteError::Incr(e)
            })?;
        }
        Ok(())
    }

    /// A rewrite child ended: installs its base, or records the failure (and retries, while
    /// the AOF waits for its first base).
    pub(crate) fn finish_rewrite(
        &mut self,
        exit: Ended,
        done: RewriteJob,
        took: Duration,
        peak_cow: u64,
    ) {
        self.aof_rewrite.last_seconds = Some(took.as_secs());
        self.aof_rewrite.last_cow = peak_cow;
        let installed = if exit.success() {
            self.install_rewrite(&done).map_err(|e| e.to_string())
        } else {
            Err(exit.describe())
        };
        let now = unix_ms();
        match installed {
            Ok(()) => {
                self.aof_rewrite.last_failed = false;
                self.jobs.scheduler.finished(JobKind::AofRewrite, true, now);
                notice!("Background AOF rewrite finished successfully");
            }
            Err(error) => {
                remove_leftover(&done.temp);
                warning!("Background AOF rewrite terminated with error: {error}");
                self.aof_rewrite.last_failed = true;
                self.jobs
                    .scheduler
                    .finished(JobKind::AofRewrite, false, now);
                if self.aof.waiting_first_incr.is_some() {
                    // AOF was just enabled: without a base the log is not usable; retry.
                    self.jobs.scheduler.set_queued(JobKind::AofRewrite, true);
                }
            }
        }
    }

    fn record_rewrite_start_failure(&mut self) {
        self.aof_rewrite.last_failed = true;
        self.jobs
            .scheduler
            .start_failed(JobKind::AofRewrite, unix_ms());
    }

    /// Renames the child's base into place and switches the manifest to it and the incr files
    /// opened since the fork; the replaced files are deleted.
    fn install_rewrite(&mut self, done: &RewriteJob) -> Result<(), InstallError> {
        notice!("Background AOF rewrite terminated with success");
        let paths = AofPaths::from_config(&self.config);
        let mut manifest = if self.aof.is_on() {
            self.aof.manifest.clone()
        } else {
            match crate::persistence::aof_load::find(&paths)? {
                crate::persistence::aof_load::Source::MultiPart(manifest) => manifest,
                _ => amber_aof::Manifest::default(),
            }
        };
        let seq = manifest.base_seq + 1;
        let name = base_name(&paths.prefix, seq, done.rdb);
        amber_snapshot::durable::install(&done.temp, &paths.file(&name))
            .map_err(InstallError::Rename)?;
        notice!(
            "Successfully renamed the temporary AOF base file {} into {name}",
            done.temp
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        let (keep, replaced): (Vec<FileInfo>, Vec<FileInfo>) = manifest
            .incrs
            .drain(..)
            .partition(|incr| incr.seq >= done.first_incr_after_fork);
        // Newest first, as Redis lists them: the replaced incr files (last first), then the
        // old base, then older history.
        let mut history: Vec<FileInfo> = replaced
            .into_iter()
            .rev()
            .chain(manifest.base.take())
            .collect();
        for info in &mut history {
            info.kind = FileKind::History;
        }
        history.append(&mut manifest.history);
        manifest.history = history;
        manifest.base = Some(FileInfo {
            name,
            seq,
            kind: FileKind::Base,
        });
        manifest.base_seq = seq;
        manifest.incrs = keep;
        if let Err(error) = manifest::persist(&paths.dir, &paths.prefix, &manifest) {
            // The old manifest still names the old files, all intact: the rewrite is lost,
            // not the data. The new base is now an orphan; remove it.
            if let Some(base) = &manifest.base {
                let _ = std::fs::remove_file(paths.file(&base.name));
            }
            return Err(InstallError::Manifest(error));
        }
        // With archiving on, closed incr files wait for their last bytes to be archived.
        if !self.config.get_bool("aof-disable-auto-gc")
            && !crate::persistence::archive::archiving_configured(&self.config)
        {
            delete_history(&paths, &mut manifest);
        }
        if self.aof.is_on() {
            self.aof.manifest = manifest;
            self.aof.waiting_first_incr = None;
            self.aof.base_installed();
            self.aof_rewrite.waiting_attempts = 0;
            self.aof.recount_sizes(&paths);
            self.aof.rewrite_base_size = self.aof.current_size();
        }
        Ok(())
    }

    /// Deletes the AOF's history files now (`aof-disable-auto-gc` turned back off).
    pub(crate) fn delete_aof_history(&mut self) {
        if self.aof.is_on() {
            let paths = AofPaths::from_config(&self.config);
            delete_history(&paths, &mut self.aof.manifest);
        }
    }
}

/// In the child: writes the base file (RDB or commands) and fsyncs it; no rename, no logging.
fn write_rewrite_base(
    keyspace: &amber_keyspace::Keyspace,
    temp: &std::path::Path,
    format: BaseFormat,
    reporter: &mut amber_snapshot::Reporter,
) -> std::io::Result<()> {
    match format {
        BaseFormat::Rdb(options) => {
            crate::persistence::rdb::write_snapshot(keyspace, temp, options, true, reporter)
                .map(|_| ())
        }
        BaseFormat::Commands {
            timestamp,
            functions,
            incremental_fsync,
        } => crate::persistence::aof::write_commands_file(
            keyspace,
            temp,
            (timestamp, incremental_fsync),
            &functions,
            reporter,
        )
        .map(|_| ()),
    }
}
