//! RDB snapshots of the running server: `SAVE` in the foreground, `BGSAVE` in a forked child
//! (a [`Work::Save`] job), `DEBUG RELOAD`, and the `-MISCONF` rule after a failed save.

use std::path::PathBuf;
use std::time::Duration;

use amber_snapshot::schedule::{Admission, JobKind};
use amber_snapshot::{ChildExit, ForkError};

use crate::persistence::forkless::{Encoding, ForklessJob, Output, Target};
use crate::persistence::jobs::{Ended, Work, child_result, fork, remove_leftover, temp_rdb_path};
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// Why a snapshot could not be started or written (the command turns it into Redis's text).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// A BGSAVE child already runs.
    #[error("Background save already in progress")]
    InProgress,
    /// Another kind of child runs and the request may not wait.
    #[error(
        "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
    )]
    AnotherChild,
    /// The fork failed.
    #[error("{0}")]
    Fork(#[from] ForkError),
    /// Writing the file failed (the error is in the log; Redis replies a bare `ERR`).
    #[error("")]
    Write(#[source] std::io::Error),
}

/// Why `DEBUG RELOAD` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The save before the reload failed.
    #[error("Error trying to save the DB: {0}")]
    Save(#[source] SaveError),
    /// The file could not be loaded back.
    #[error(transparent)]
    Load(#[from] crate::persistence::rdb::RdbLoadError),
}

/// How a background snapshot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotMethod {
    /// A forked child writes the copy-on-write image.
    Fork,
    /// This process captures the keyspace while serving; a thread writes (INV-CAPTURE).
    Forkless,
}

/// What `BGSAVE` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BgsaveStart {
    /// A child was forked.
    Started,
    /// Another child runs; the save starts when it ends.
    Scheduled,
}

impl Server {
    /// `dbfilename`, relative to the working directory (`dir`).
    pub(crate) fn rdb_file(&self) -> PathBuf {
        PathBuf::from(self.config.get("dbfilename"))
    }

    /// The options of every snapshot this server writes (SAVE, BGSAVE, AOF base, backups);
    /// `rdb-key-save-delay` holds backup children open too, so tests can act during them.
    pub(crate) fn rdb_options(&self) -> crate::persistence::rdb::SaveOptions {
        let mut options = crate::persistence::rdb::save_options(
            self.config.get_bool("rdbcompression"),
            self.config.get_bool("rdbchecksum"),
            self.config.get_i64("rdb-key-save-delay").max(0) as u64,
        );
        options.format.thresholds = self.rdb_thresholds();
        options.format.version = self.config.get_i64("rdb-version").clamp(9, 11) as u32;
        options.incremental_fsync = self.config.get_bool("rdb-save-incremental-fsync");
        let stream_db = self.replication.master.as_ref().map(|link| link.stream_db);
        options.repl = self.replication.save_info(stream_db);
        options.functions = crate::commands::library_sources(self).into();
        options
    }

    /// Replaces every Functions library with those a loaded file recorded (a start, `DEBUG
    /// RELOAD`, a full synchronization), as Redis does.
    pub(crate) fn replace_functions(&mut self, sources: &[Vec<u8>]) -> Result<(), String> {
        let Some(engine) = self.scripting.engine() else {
            return Err("a script is running".into());
        };
        engine
            .restore_libraries(sources, amber_scripting::RestorePolicy::Flush)
            .map_err(|error| error.message)
    }

    /// The encoding thresholds snapshots are written with: the configured ones, so a file
    /// holds each value in the encoding it has in memory, as Redis writes them.
    pub(crate) fn rdb_thresholds(&self) -> amber_rdb::Thresholds {
        let limits = self.settings.encoding;
        amber_rdb::Thresholds {
            hash_max_listpack_entries: limits.hash.max_entries,
            hash_max_listpack_value: limits.hash.max_value,
            zset_max_listpack_entries: limits.zset.max_entries,
            zset_max_listpack_value: limits.zset.max_value,
            set_max_intset_entries: limits.max_intset,
            list_max_listpack_bytes: limits.list.max_bytes,
            list_plain_threshold: self.debug.list_packed_threshold,
            ..amber_rdb::Thresholds::default()
        }
    }

    /// SAVE: writes the snapshot in this process, blocking clients meanwhile.
    pub(crate) fn save_now(&mut self) -> Result<(), SaveError> {
        if self.jobs.running(JobKind::Save).is_some() {
            return Err(SaveError::InProgress);
        }
        let path = self.rdb_file();
        let mut unreported = amber_snapshot::Reporter::disconnected();
        let mut options = self.rdb_options();
        // Clients wait for this save anyway: every core may encode.
        options.encoder_threads = crate::persistence::rdb::all_encoder_threads();
        match crate::persistence::rdb::save(&self.keyspace, &path, options, &mut unreported) {
            Ok((_, replaced)) => {
                if let Some(replaced) = replaced {
                    crate::persistence::closer::close_later(replaced);
                }
                notice!("DB saved on disk");
                self.dirty = 0;
                self.jobs.scheduler.saved(unix_ms());
                self.rdb.saves += 1;
                Ok(())
            }
            Err(error) => {
                warning!("Failed saving the DB: {error}");
                Err(SaveError::Write(error))
            }
        }
    }

    /// BGSAVE: writes the snapshot in the background (by `method`, or `bgsave-method`) while
    /// this process keeps serving; with `schedule`, waits for another running job instead of
    /// failing.
    pub(crate) fn request_bgsave(
        &mut self,
        schedule: bool,
        method: Option<SnapshotMethod>,
    ) -> Result<BgsaveStart, SaveError> {
        self.jobs.next_save_method = method;
        match self.jobs.scheduler.request(JobKind::Save, schedule) {
            Admission::Start => self.fork_bgsave().map(|()| BgsaveStart::Started),
            Admission::Queued => Ok(BgsaveStart::Scheduled),
            Admission::AlreadyRunning => Err(SaveError::InProgress),
            Admission::Busy(_) => Err(SaveError::AnotherChild),
        }
    }

    /// How background snapshots are taken: `bgsave-method`.
    pub(crate) fn snapshot_method(&self) -> SnapshotMethod {
        match self.config.get("bgsave-method") {
            "forkless" => SnapshotMethod::Forkless,
            _ => SnapshotMethod::Fork,
        }
    }

    /// Starts the BGSAVE job (the scheduler has admitted it): a forked child, or a forkless
    /// snapshot.
    pub(crate) fn fork_bgsave(&mut self) -> Result<(), SaveError> {
        let path = self.rdb_file();
        let mut options = self.rdb_options();
        if self.replication.replicas.waiting_for_snapshot() {
            // Redis 7.0 replicas refuse RDB versions past 10.
            options.format.version = options.format.version.min(10);
        }
        let method = self
            .jobs
            .next_save_method
            .take()
            .unwrap_or_else(|| self.snapshot_method());
        if method == SnapshotMethod::Forkless {
            return self.start_forkless_bgsave(path, options);
        }
        let keyspace = &self.keyspace;
        let spawned = fork(|reporter| {
            let saved = crate::persistence::rdb::save(keyspace, &path, options, reporter);
            child_result(reporter, "Write error saving DB on disk", saved)
        });
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                warning!("Can't save in background: {error}");
                self.jobs.scheduler.start_failed(JobKind::Save, unix_ms());
                return Err(SaveError::Fork(error));
            }
        };
        notice!("Background saving started by pid {}", child.pid());
        self.replication.snapshot_started();
        let dirty_at_fork = self.dirty;
        self.job_started(child, Work::Save { dirty_at_fork });
        Ok(())
    }

    fn start_forkless_bgsave(
        &mut self,
        path: PathBuf,
        options: crate::persistence::rdb::SaveOptions,
    ) -> Result<(), SaveError> {
        let target = Target {
            output: Output::File {
                temp: temp_rdb_path(&path, std::process::id()),
                install_at: Some(path),
            },
            key_delay: Duration::from_micros(options.key_delay_us),
            encoding: Encoding::Rdb {
                options,
                aof_base: false,
            },
            context: "Write error saving DB on disk",
            digest: false,
            then: None,
        };
        let job = match ForklessJob::start(self, target) {
            Ok(job) => job,
            Err(error) => {
                warning!("Can't save in background: {error}");
                self.jobs.scheduler.start_failed(JobKind::Save, unix_ms());
                return Err(SaveError::Write(error));
            }
        };
        notice!("Background forkless saving started");
        self.replication.snapshot_started();
        let dirty_at_fork = self.dirty;
        self.forkless_started(job, Work::Save { dirty_at_fork });
        Ok(())
    }

    /// Starts the snapshot replicas wait for, unless another child runs or a diskless
    /// synchronization waits for more replicas (`repl-diskless-sync-delay`,
    /// `repl-diskless-sync-max-replicas`). Diskless needs every waiting replica to accept a
    /// snapshot of unknown length (`capa eof`).
    pub(crate) fn start_replica_sync(&mut self) {
        let (waiting, eof, longest) = self.replication.replicas.waiting_stats();
        if waiting == 0 || self.has_active_child() {
            return;
        }
        let diskless = eof && self.config.get_bool("repl-diskless-sync");
        if !diskless {
            notice!("Starting BGSAVE for SYNC with target: disk");
            if let Err(error) = self.request_bgsave(false, None) {
                warning!("BGSAVE for replication failed: {error}");
            }
            return;
        }
        let delay = self.config.get_i64("repl-diskless-sync-delay").max(0) as u64;
        let enough = self
            .config
            .get_i64("repl-diskless-sync-max-replicas")
            .max(0) as usize;
        let full = enough > 0 && waiting >= enough;
        if !full && longest.as_secs() < delay {
            return;
        }
        notice!("Starting BGSAVE for SYNC with target: replicas sockets");
        if let Err(error) = self.fork_replica_sync() {
            warning!("BGSAVE for replication failed: {error}");
        }
    }

    /// Starts the snapshot the waiting replicas are sent on their sockets: a forked child, or
    /// with `bgsave-method forkless` the forkless writer thread.
    fn fork_replica_sync(&mut self) -> Result<(), SaveError> {
        let mut options = self.rdb_options();
        // Redis 7.0 replicas refuse RDB versions past 10.
        options.format.version = options.format.version.min(10);
        let mark = self.fresh_replid();
        let forkless = self.snapshot_method() == SnapshotMethod::Forkless;
        let targets = self.replication.socket_snapshot_starting();
        if targets.is_empty() {
            return Ok(());
        }
        let sockets: Vec<i32> = targets.iter().map(|(_, fd)| *fd).collect();
        if forkless {
            return self.start_forkless_replica_sync(&sockets, mark, options);
        }
        let keyspace = &self.keyspace;
        let spawned = fork(|reporter| {
            crate::replication::send_to_sockets(keyspace, sockets, &mark, options, reporter)
        });
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                warning!("Can't save in background: {error}");
                self.replication.replicas.socket_snapshot_done(false);
                return Err(SaveError::Fork(error));
            }
        };
        notice!("Background RDB transfer started by pid {}", child.pid());
        self.job_started(child, Work::ReplicaSync);
        Ok(())
    }

    /// Starts the forkless writer on copies of the replicas' `sockets` (already told
    /// `+FULLRESYNC`): the capture begins now, at the offset they were given.
    fn start_forkless_replica_sync(
        &mut self,
        sockets: &[i32],
        mark: String,
        options: crate::persistence::rdb::SaveOptions,
    ) -> Result<(), SaveError> {
        let copies = sockets
            .iter()
            .map(|&fd| {
                // SAFETY: the replicas' sockets stay open while they are attached (their
                // connection tasks own them and detach the replica before closing them), and
                // this runs on the event loop, where no connection task runs meanwhile.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
            })
            .collect::<std::io::Result<Vec<_>>>();
        let target = copies.map(|sockets| Target {
            output: Output::Sockets { sockets, mark },
            key_delay: Duration::from_micros(options.key_delay_us),
            encoding: Encoding::Rdb {
                options,
                aof_base: false,
            },
            context: crate::replication::SEND_ERROR,
            digest: false,
            then: None,
        });
        match target.and_then(|target| ForklessJob::start(self, target)) {
            Ok(job) => {
                notice!("Background RDB transfer started (forkless)");
                self.forkless_started(job, Work::ReplicaSync);
                Ok(())
            }
            Err(error) => {
                warning!("Can't save in background: {error}");
                self.replication.replicas.socket_snapshot_done(false);
                Err(SaveError::Write(error))
            }
        }
    }

    /// The diskless transfer ended: its replicas wait for their first ACK, or are dropped.
    pub(crate) fn finish_replica_sync(&mut self, exit: Ended) {
        if exit.success() {
            notice!("Background RDB transfer terminated with success");
        } else {
            if let Some(reason) = &exit.failure {
                warning!("{reason}");
            }
            warning!("Background transfer error");
        }
        // Not a save: the dirty counter and `rdb_last_bgsave_status` stay as they are.
        self.jobs.scheduler.cancelled(JobKind::Save);
        self.replication
            .replicas
            .socket_snapshot_done(exit.success());
    }

    /// A BGSAVE child ended: records its outcome and tells waiting replicas.
    pub(crate) fn finish_bgsave(
        &mut self,
        ended: Ended,
        pid: i32,
        dirty_at_fork: u64,
        took: Duration,
        peak_cow: u64,
    ) {
        self.rdb.last_bgsave_seconds = took.as_secs() as i64;
        self.rdb.last_cow = peak_cow;
        let now = unix_ms();
        let exit = ended.exit;
        match exit {
            ChildExit::Exited(0) => {
                notice!("Background saving terminated with success");
                self.dirty = self.dirty.saturating_sub(dirty_at_fork);
                self.rdb.saves += 1;
                self.jobs.scheduler.finished(JobKind::Save, true, now);
            }
            ChildExit::Exited(_) => {
                // The child's reason first, then the parent's line, as Redis logs them.
                if let Some(reason) = &ended.failure {
                    warning!("{reason}");
                }
                warning!("Background saving error");
                self.jobs.scheduler.finished(JobKind::Save, false, now);
            }
            ChildExit::Signaled(signal) => {
                warning!("Background saving terminated by signal {signal}");
                // A child killed on purpose (SIGUSR1) is not an error, as in Redis.
                if signal == nix::sys::signal::Signal::SIGUSR1 as i32 {
                    self.jobs.scheduler.cancelled(JobKind::Save);
                } else {
                    self.jobs.scheduler.finished(JobKind::Save, false, now);
                }
            }
        }
        let path = self.rdb_file();
        if !exit.success() {
            // A child that died mid-write leaves its temp file; the real file is untouched.
            remove_leftover(&temp_rdb_path(&path, pid as u32));
        }
        self.replication.snapshot_done(exit.success(), &path);
    }

    /// `DEBUG RELOAD`: saves the RDB file, empties the dataset and loads the file back.
    pub(crate) fn reload_rdb(&mut self) -> Result<(), ReloadError> {
        self.save_now().map_err(ReloadError::Save)?;
        let path = self.rdb_file();
        let limits = self.encoding_limits();
        self.aof.suspend();
        self.keyspace.clear();
        let result = crate::persistence::rdb::load(&path, &mut self.keyspace, unix_ms(), &limits);
        self.aof.resume();
        let (stats, meta) = result?;
        self.rdb.last_load = (stats.loaded, stats.expired);
        if let Err(error) = self.replace_functions(&meta.functions) {
            warning!(
                "Failed loading the Functions of {}: {error}",
                path.display()
            );
        }
        notice!("DB reloaded by DEBUG RELOAD");
        Ok(())
    }

    /// Whether writes must be refused with MISCONF (a failed background save, with
    /// `stop-writes-on-bgsave-error yes` and save points configured).
    pub(crate) fn writes_refused(&self) -> bool {
        !self.jobs.scheduler.last_save_ok()
            && self.config.get_bool("stop-writes-on-bgsave-error")
            && !self.config.get("save").is_empty()
    }

    /// The `-MISCONF` error writes get while persistence is failing, if it is.
    pub(crate) fn write_refusal(&mut self) -> Option<String> {
        // Each write sees the log's health first: a change is logged the moment it shows.
        self.watch_aof_health();
        if self.writes_refused() {
            return Some(crate::commands::errors::MISCONF.to_string());
        }
        self.aof
            .write_error()
            .map(|error| format!("MISCONF Errors writing to the AOF file: {error}"))
    }
}
