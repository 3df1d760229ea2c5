//! Turning the AOF on and off at run time (`CONFIG SET appendonly`) and `DEBUG LOADAOF`.

use amber_snapshot::schedule::JobKind;

use crate::persistence::aof::HealthChange;
use crate::persistence::aof_load::{AofLoadError, FindError};
use crate::persistence::aof_rewrite::RewriteError;
use crate::server::Server;

/// Why the AOF could not be turned on or off, or reloaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AofControlError {
    /// The directory's manifest cannot be read.
    #[error(transparent)]
    Find(#[from] FindError),
    /// A file of the directory could not be created or opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The log could not be written or synced.
    #[error(transparent)]
    Log(#[from] amber_aof::LogError),
    /// The first rewrite could not start.
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// Reloading failed.
    #[error(transparent)]
    Load(#[from] AofLoadError),
}

impl Server {
    /// Turns the AOF on (writing a base of the current dataset, then appending) or off.
    pub(crate) fn switch_aof(&mut self, on: bool) -> Result<(), AofControlError> {
        self.switch_aof_from(on, false)
    }

    /// [`Server::switch_aof`] from a command; inside EXEC (`in_exec`) the base's rewrite is
    /// scheduled for after the transaction, as Redis does.
    pub(crate) fn switch_aof_from(
        &mut self,
        on: bool,
        in_exec: bool,
    ) -> Result<(), AofControlError> {
        if on == self.aof.is_on() {
            return Ok(());
        }
        if !on {
            // As Redis's `stopAppendOnly`: the file is closed, then a rewrite in progress is
            // killed (its base would describe an AOF no longer kept) and none stays queued.
            let closed = self.aof.close();
            self.refresh_recording();
            self.kill_aof_rewrite();
            self.jobs.scheduler.set_queued(JobKind::AofRewrite, false);
            return Ok(closed?);
        }
        // As Redis: appending starts now, to a new incr file that the manifest names only once
        // a background rewrite has written the base of the dataset as it is now.
        let paths = crate::persistence::aof::AofPaths::from_config(&self.config);
        let manifest = match crate::persistence::aof_load::find(&paths)? {
            crate::persistence::aof_load::Source::MultiPart(manifest) => manifest,
            _ => amber_aof::Manifest::default(),
        };
        self.aof_rewrite.waiting_attempts = 0;
        self.aof.open_waiting_for_base(&paths, manifest)?;
        self.refresh_recording();
        if self.jobs.running(JobKind::AofRewrite).is_some() {
            // Its base would not cover what is appended from now on.
            if !in_exec {
                crate::warning!(
                    "AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now."
                );
            }
            self.kill_aof_rewrite();
        }
        if self.has_active_child() {
            crate::notice!(
                "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
            );
            self.jobs.scheduler.set_queued(JobKind::AofRewrite, true);
            return Ok(());
        }
        if in_exec {
            crate::warning!(
                "AOF was enabled during a transaction. An AOF background was scheduled to start when possible."
            );
            self.jobs.scheduler.set_queued(JobKind::AofRewrite, true);
            return Ok(());
        }
        Ok(self.fork_rewrite()?)
    }

    /// `DEBUG LOADAOF`: makes the AOF durable, empties the dataset and loads it back from the
    /// files (nothing is appended while it replays).
    pub(crate) fn reload_aof(&mut self) -> Result<(), AofControlError> {
        self.aof.sync_now()?;
        let paths = crate::persistence::aof::AofPaths::from_config(&self.config);
        let source = crate::persistence::aof_load::find(&paths)?;
        self.aof.suspend();
        self.keyspace.set_record_expired(false);
        self.keyspace.clear();
        let result = crate::persistence::aof_load::load_blocking(self, &paths, source);
        self.aof.resume();
        self.refresh_recording();
        self.dirty = 0;
        let manifest = result?;
        // While waiting for the first base (appendonly just turned on), the manifest in memory
        // also names the incr file being appended to; the one on disk does not yet.
        if self.aof.is_on() && self.aof.waiting_first_incr.is_none() {
            self.aof.manifest = manifest;
        }
        crate::warning!("Append Only File loaded by DEBUG LOADAOF");
        Ok(())
    }

    /// Logs each change of the AOF's health once (from the cron), in Redis's words where Redis
    /// has them, and asks for a rewrite when an fsync failed (only a new base makes the log
    /// trustworthy again).
    pub(crate) fn watch_aof_health(&mut self) {
        match self.aof.health_change() {
            HealthChange::Same => {}
            HealthChange::WriteFailed(error) => {
                crate::warning!("Error writing to the AOF file: {error}");
                if self.aof.always() {
                    // Redis exits here; Amber keeps every acknowledged write and serves reads.
                    crate::warning!(
                        "appendfsync is 'always': the writes that failed were not acknowledged (their connections were closed). Writes are refused with -MISCONF and reads are served until the AOF can be written again."
                    );
                } else {
                    crate::warning!(
                        "Writes are refused with -MISCONF until the AOF can be written again; what is not written yet is kept and retried."
                    );
                }
            }
            HealthChange::SyncFailed(error) => {
                crate::warning!(
                    "Can't persist the AOF, fsync failed: {error}. The file can no longer be trusted: writes are refused with -MISCONF until an AOF rewrite replaces it (scheduled now)."
                );
                self.jobs.scheduler.set_queued(JobKind::AofRewrite, true);
            }
            HealthChange::Solved => {
                crate::warning!("AOF write error looks solved, Amber can write again.");
            }
        }
    }

    /// How AOF base files are written: RDB (`aof-use-rdb-preamble yes`) or commands.
    pub(crate) fn aof_base_format(&self) -> crate::persistence::aof::BaseFormat {
        if self.config.get_bool("aof-use-rdb-preamble") {
            // As Redis: an AOF base records no replication stream.
            let mut options = self.rdb_options();
            options.repl = None;
            options.incremental_fsync = self.config.get_bool("aof-rewrite-incremental-fsync");
            crate::persistence::aof::BaseFormat::Rdb(options)
        } else {
            crate::persistence::aof::BaseFormat::Commands {
                timestamp: self.config.get_bool("aof-timestamp-enabled"),
                functions: crate::commands::library_sources(self).into(),
                incremental_fsync: self.config.get_bool("aof-rewrite-incremental-fsync"),
            }
        }
    }
}
