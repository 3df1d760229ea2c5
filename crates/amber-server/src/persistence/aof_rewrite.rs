//! AOF rewrite (`BGREWRITEAOF` and the automatic rewrite): at a quiesced point the parent
//! makes the current incr file durable and starts a new one (named in the persisted manifest),
//! then forks a child that writes a base of the dataset at the fork. When the child succeeds
//! the parent renames the base into place and switches the manifest atomically: the new base
//! plus the incr files opened since the fork. A failed or killed child leaves the manifest and
//! every file in use untouched; its temp file is removed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amber_aof::manifest::{self, base_name};
use amber_aof::{FileInfo, FileKind};
use amber_snapshot::{Child, ChildExit};

use crate::persistence::aof::{AofPaths, BaseFormat, delete_history};
use crate::server::Server;
use crate::{notice, warning};

/// Consecutive failures after which automatic rewrites back off.
const FAILURES_BEFORE_BACKOFF: u32 = 3;

/// The running rewrite child.
pub(crate) struct RewriteChild {
    child: Child,
    temp: PathBuf,
    /// Incr files with this sequence number or higher were opened at or after the fork.
    first_incr_after_fork: u64,
    rdb: bool,
    /// Largest copy-on-write size seen while the child ran.
    pub peak_cow: u64,
    /// Keys in the dataset at the fork, and the child's latest report.
    pub keys_total: u64,
    /// The child's latest report (keys written, copy-on-write size).
    pub progress: amber_snapshot::Progress,
}

impl RewriteChild {
    /// How long the child has been running.
    pub(crate) fn elapsed(&self) -> Duration {
        self.child.elapsed()
    }
}

/// Rewrite state for `INFO persistence` and the cron.
#[derive(Default)]
pub(crate) struct RewriteState {
    /// The running child.
    pub child: Option<RewriteChild>,
    /// A rewrite asked for while a BGSAVE ran (`aof_rewrite_scheduled`).
    pub scheduled: bool,
    /// Whether the last rewrite failed (`aof_last_bgrewrite_status`).
    pub last_failed: bool,
    /// Duration of the last rewrite in seconds (-1 if none).
    pub last_seconds: Option<u64>,
    /// Rewrites started (`aof_rewrites`, as Redis counts them).
    pub rewrites: u64,
    /// Failures in a row (`aof_rewrites_consecutive_failures`).
    pub consecutive_failures: u32,
    /// When the last failure happened (for the automatic rewrite's back-off).
    pub last_failure: Option<Instant>,
    /// Copy-on-write size of the last rewrite child (`aof_last_cow_size`).
    pub last_cow: u64,
    /// The failure count the back-off was last logged for.
    pub backoff_announced: u32,
    /// Rewrites started since appendonly was turned on, before one succeeded (a retry starts
    /// the incr file over, see [`crate::persistence::aof::Aof::restart_waiting_incr`]).
    pub waiting_attempts: u32,
}

/// What `BGREWRITEAOF` replies.
pub(crate) enum RewriteStart {
    /// A child was forked.
    Started,
    /// A BGSAVE runs; the rewrite starts when it ends.
    Scheduled,
}

impl Server {
    /// Whether a BGSAVE or rewrite child runs.
    pub(crate) fn has_active_child(&self) -> bool {
        self.rdb.child.is_some() || self.aof_rewrite.child.is_some() || self.backup.child.is_some()
    }

    /// Pauses hash-table resizes while a child shares the keyspace's pages (see
    /// [`amber_keyspace::pause_resizes`]); called after every fork and reap.
    pub(crate) fn update_resize_policy(&self) {
        amber_keyspace::pause_resizes(self.has_active_child());
    }

    /// `BGREWRITEAOF`: starts a rewrite now, or schedules it after a running BGSAVE.
    pub(crate) fn start_aof_rewrite(&mut self) -> Result<RewriteStart, String> {
        if self.aof_rewrite.child.is_some() {
            return Err("ERR Background append only file rewriting already in progress".into());
        }
        if self.rdb.child.is_some() || self.backup.child.is_some() {
            self.aof_rewrite.scheduled = true;
            return Ok(RewriteStart::Scheduled);
        }
        self.fork_rewrite().map(|()| RewriteStart::Started)
    }

    fn fork_rewrite(&mut self) -> Result<(), String> {
        let paths = AofPaths::from_config(&self.config);
        std::fs::create_dir_all(&paths.dir).map_err(|e| format!("ERR {e}"))?;
        let aof_was_on = self.aof.is_on();
        let waiting = self.aof.waiting_first_incr;
        if waiting.is_some() && self.aof_rewrite.waiting_attempts > 0 {
            self.aof.restart_waiting_incr(&paths).map_err(|e| {
                warning!("Can't restart the temporary AOF incr file: {e}");
                format!("ERR Can't open a new AOF incr file: {e}")
            })?;
        }
        if waiting.is_some() {
            self.aof_rewrite.waiting_attempts += 1;
        }
        if aof_was_on && waiting.is_none() {
            self.aof.rotate(&paths).map_err(|e| {
                warning!("Can't open a new AOF incr file for the rewrite: {e}");
                format!("ERR Can't open a new AOF incr file: {e}")
            })?;
        }
        let format = self.aof_base_format();
        let temp = paths
            .dir
            .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
        let keyspace = &self.keyspace;
        let child_temp = temp.clone();
        let spawned = amber_snapshot::spawn(move |reporter| {
            match write_rewrite_base(keyspace, &child_temp, format, reporter) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        });
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                warning!("Can't rewrite append only file in background: fork: {error}");
                self.record_rewrite_failure();
                return Err(format!(
                    "ERR Can't rewrite append only file in background: {error}"
                ));
            }
        };
        notice!(
            "Background append only file rewriting started by pid {}",
            child.pid()
        );
        self.rdb.latest_fork_usec = child.fork_time().as_micros() as u64;
        self.rdb.total_forks += 1;
        self.aof_rewrite.scheduled = false;
        // As Redis, `aof_rewrites` counts rewrites started.
        self.aof_rewrite.rewrites += 1;
        self.aof_rewrite.child = Some(RewriteChild {
            child,
            temp,
            first_incr_after_fork: match (waiting, aof_was_on) {
                (Some(first), _) => first,
                (None, true) => self.aof.manifest.incr_seq,
                (None, false) => u64::MAX,
            },
            rdb: matches!(format, BaseFormat::Rdb(_)),
            peak_cow: 0,
            keys_total: self.keyspace.key_count() as u64,
            progress: amber_snapshot::Progress::default(),
        });
        self.update_resize_policy();
        Ok(())
    }

    /// Runs from the cron: samples the child's copy-on-write size, reaps it when it is done
    /// and installs its base, starts a scheduled rewrite, or an automatic one when the log grew
    /// enough.
    pub(crate) fn check_aof_rewrite(&mut self) {
        if let Some(running) = self.aof_rewrite.child.as_mut() {
            running.progress = running.child.progress();
            running.peak_cow = running.peak_cow.max(running.progress.cow_bytes);
            match running.child.try_wait() {
                Ok(Some(exit)) => self.finish_rewrite(exit),
                Ok(None) => {}
                Err(error) => warning!("{error}"),
            }
            return;
        }
        if self.rdb.child.is_some() || self.backup.child.is_some() {
            return;
        }
        if self.aof_rewrite.scheduled && self.backoff_elapsed() {
            let _ = self.fork_rewrite();
            return;
        }
        if !self.automatic_growth_reached() {
            return;
        }
        if !self.backoff_elapsed() {
            self.announce_backoff();
            return;
        }
        let aof = &self.aof;
        notice!(
            "Starting automatic rewriting of AOF on {}% growth",
            growth_percent(aof.current_size(), aof.rewrite_base_size)
        );
        let _ = self.fork_rewrite();
    }

    /// Whether the log grew past `auto-aof-rewrite-min-size` and `-percentage`.
    fn automatic_growth_reached(&self) -> bool {
        let percentage = self.config.get_i64("auto-aof-rewrite-percentage");
        let min_size = self.config.get_i64("auto-aof-rewrite-min-size").max(0) as u64;
        let current = self.aof.current_size();
        if !self.aof.is_on() || percentage <= 0 || current <= min_size {
            return false;
        }
        growth_percent(current, self.aof.rewrite_base_size) >= percentage
    }

    /// Logs, once per failure count, that the automatic rewrite waits (Redis's words).
    fn announce_backoff(&mut self) {
        let failures = self.aof_rewrite.consecutive_failures;
        if self.aof_rewrite.backoff_announced == failures {
            return;
        }
        self.aof_rewrite.backoff_announced = failures;
        warning!(
            "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {} minutes",
            backoff_minutes(failures)
        );
    }

    /// After 3 failures in a row, automatic and retried rewrites wait 1, 2, 4 ... 60 minutes.
    fn backoff_elapsed(&self) -> bool {
        let failures = self.aof_rewrite.consecutive_failures;
        if failures < FAILURES_BEFORE_BACKOFF {
            return true;
        }
        let delay = Duration::from_secs(60 * backoff_minutes(failures));
        self.aof_rewrite
            .last_failure
            .is_none_or(|at| at.elapsed() >= delay)
    }

    fn finish_rewrite(&mut self, exit: ChildExit) {
        let Some(done) = self.aof_rewrite.child.take() else {
            return;
        };
        let seconds = done.child.elapsed().as_secs();
        self.aof_rewrite.last_seconds = Some(seconds);
        self.aof_rewrite.last_cow = done.peak_cow;
        let installed = match exit {
            ChildExit::Exited(0) => self.install_rewrite(&done),
            ChildExit::Exited(code) => Err(format!("the child exited with code {code}")),
            ChildExit::Signaled(signal) => Err(format!("the child was killed by signal {signal}")),
        };
        match installed {
            Ok(()) => {
                self.aof_rewrite.consecutive_failures = 0;
                self.aof_rewrite.last_failed = false;
                notice!("Background AOF rewrite finished successfully");
            }
            Err(error) => {
                let _ = std::fs::remove_file(&done.temp);
                warning!("Background AOF rewrite terminated with error: {error}");
                self.record_rewrite_failure();
                if self.aof.waiting_first_incr.is_some() {
                    // AOF was just enabled: without a base the log is not usable; retry.
                    self.aof_rewrite.scheduled = true;
                }
            }
        }
    }

    fn record_rewrite_failure(&mut self) {
        self.aof_rewrite.last_failed = true;
        self.aof_rewrite.consecutive_failures += 1;
        self.aof_rewrite.last_failure = Some(Instant::now());
    }

    /// Renames the child's base into place and switches the manifest to it and the incr files
    /// opened since the fork; the replaced files are deleted.
    fn install_rewrite(&mut self, done: &RewriteChild) -> Result<(), String> {
        notice!("Background AOF rewrite terminated with success");
        let paths = AofPaths::from_config(&self.config);
        let mut manifest = if self.aof.is_on() {
            self.aof.manifest.clone()
        } else {
            match crate::persistence::aof_load::find(&paths).map_err(|e| e.to_string())? {
                crate::persistence::aof_load::Source::MultiPart(manifest) => manifest,
                _ => amber_aof::Manifest::default(),
            }
        };
        let seq = manifest.base_seq + 1;
        let name = base_name(&paths.prefix, seq, done.rdb);
        std::fs::rename(&done.temp, paths.file(&name))
            .and_then(|()| std::fs::File::open(&paths.dir)?.sync_all())
            .map_err(|e| format!("renaming the temporary base: {e}"))?;
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
            return Err(format!("persisting the new manifest: {error}"));
        }
        if !self.config.get_bool("aof-disable-auto-gc") {
            delete_history(&paths, &mut manifest);
        }
        if self.aof.is_on() {
            self.aof.manifest = manifest;
            self.aof.waiting_first_incr = None;
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

    /// Kills a running rewrite child (shutdown) and removes its temp file.
    pub(crate) fn kill_aof_rewrite(&mut self) {
        if let Some(running) = self.aof_rewrite.child.take() {
            warning!("There is a child rewriting the AOF. Killing it!");
            let _ = running.child.kill_and_reap();
            let _ = std::fs::remove_file(&running.temp);
        }
    }
}

fn growth_percent(current: u64, base: u64) -> i64 {
    let base = base.max(1);
    (current.saturating_mul(100) / base) as i64 - 100
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
        BaseFormat::Commands { timestamp } => {
            crate::persistence::aof::write_commands_file(keyspace, temp, timestamp, reporter)
                .map(|_| ())
        }
    }
}

/// Minutes an automatic rewrite waits after `failures` failures in a row: 1, 2, 4 ... 60 from
/// the third on.
fn backoff_minutes(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(FAILURES_BEFORE_BACKOFF).min(6);
    (1u64 << doublings).min(60)
}
