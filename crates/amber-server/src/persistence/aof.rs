//! The server's append-only file: propagating writes into the log, writing and fsyncing it by
//! `appendfsync`, and opening the multi-part directory (creating its base and incr files).
//! Loading lives in [`crate::aof_load`].

use amber_snapshot::Reporter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use amber_aof::durability::{CommitSignals, DurableLog, ReplyGate, Ticket};
use amber_aof::manifest::{self, base_name};
use amber_aof::{FileStorage, FsyncPolicy, LogError, Manifest, Storage};
use amber_keyspace::{Keyspace, Value};

use crate::config::Config;
use crate::persistence::rdb::SaveOptions;

/// Items per command when a collection is written as commands (Redis's
/// `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;

/// The AOF as the server runs it: the manifest and files of the directory, and the open
/// log with its reply gate ([`DurableLog`], which decides when replies may leave).
pub(crate) struct Aof {
    /// `aof-timestamp-enabled`.
    pub(crate) timestamps: bool,
    /// `aof-preallocate`: zeros kept ahead of the incr file's end (0: none); applies from the
    /// next incr file opened.
    preallocate: u64,
    /// The manifest of the directory in use.
    pub(crate) manifest: Manifest,
    durable: DurableLog,
    /// What [`commit_task`] waits for.
    commits: CommitSignals,
    /// Set while a reload replays the files: nothing is appended meanwhile.
    suspended: bool,
    /// `aof_current_size` right after the last rewrite or open (the automatic rewrite's base).
    pub(crate) rewrite_base_size: u64,
    /// Set while appending after CONFIG SET appendonly yes, before the first rewrite wrote a
    /// base: the sequence number of the first incr file the new manifest must keep.
    pub(crate) waiting_first_incr: Option<u64>,
    /// Size of the base file (`aof_base_size`).
    pub(crate) base_size: u64,
    /// Size of all files at the last open or rewrite, plus what was written since.
    size_at_open: u64,
    written_at_open: u64,
    /// Inside EXEC: whether `MULTI` was already written for this transaction.
    multi: Option<bool>,
    /// Delayed fsyncs already logged.
    delays_logged: u64,
    /// A failed fsync of an incr file that was closed at a rewrite's fork: writes stay refused
    /// until that rewrite's base replaces the file ([`Aof::base_installed`]).
    replaced_failure: Option<String>,
    /// The failure last logged, so each change of health is logged once.
    logged_failure: Option<String>,
}

/// A change of the log's health since the last [`Aof::health_change`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HealthChange {
    /// Nothing new.
    Same,
    /// A write failed (ENOSPC, EIO...): the bytes stay buffered and are retried.
    WriteFailed(String),
    /// An fsync failed: the file is not trusted any more; a rewrite must replace it.
    SyncFailed(String),
    /// Writes go through again.
    Solved,
}

/// Directory and file names from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct AofPaths {
    /// `dir/appenddirname`.
    pub dir: PathBuf,
    /// `appendfilename` (the prefix of every file name).
    pub prefix: String,
}

impl AofPaths {
    /// The paths `config` names (relative to the working directory, which is `dir`).
    pub(crate) fn from_config(config: &Config) -> AofPaths {
        AofPaths {
            dir: PathBuf::from(config.get("appenddirname")),
            prefix: config.get("appendfilename").to_string(),
        }
    }

    /// `appenddirname/<prefix>.manifest`.
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join(manifest::manifest_name(&self.prefix))
    }

    /// A file of the directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Aof {
    /// A closed AOF with the policy from `config`.
    pub(crate) fn new(config: &Config) -> Aof {
        let (durable, commits) = DurableLog::with_deferred_commits(policy_of(config));
        Aof {
            timestamps: config.get_bool("aof-timestamp-enabled"),
            preallocate: preallocate_of(config),
            manifest: Manifest::default(),
            durable,
            commits,
            suspended: false,
            rewrite_base_size: 0,
            waiting_first_incr: None,
            base_size: 0,
            size_at_open: 0,
            written_at_open: 0,
            multi: None,
            delays_logged: 0,
            replaced_failure: None,
            logged_failure: None,
        }
    }

    /// Whether writes are being appended.
    pub(crate) fn is_on(&self) -> bool {
        self.durable.is_open() && !self.suspended
    }

    /// Stops appending while a reload replays the files (the file stays open).
    pub(crate) fn suspend(&mut self) {
        self.suspended = true;
    }

    /// Appends again after [`Aof::suspend`].
    pub(crate) fn resume(&mut self) {
        self.suspended = false;
    }

    /// Re-reads `appendfsync`, `aof-timestamp-enabled` and `aof-preallocate` after CONFIG
    /// SET.
    pub(crate) fn refresh(&mut self, config: &Config) {
        self.durable.set_policy(policy_of(config));
        self.timestamps = config.get_bool("aof-timestamp-enabled");
        self.preallocate = preallocate_of(config);
    }

    /// The length of the incr file appended to, once its buffer is written: its content
    /// (a preallocated file is longer on disk until it is sealed).
    pub(crate) fn open_file_len(&self) -> Option<u64> {
        self.durable.log().map(|log| log.written())
    }

    /// `DEBUG AOF-FLUSH-SLEEP`: a pause before each write of the buffer.
    pub(crate) fn set_flush_sleep(&mut self, pause: std::time::Duration) {
        self.durable.set_flush_sleep(pause);
    }

    /// Opens the directory for appending after a load: writes a base of `keyspace` if the
    /// manifest has none and no incr file (as Redis does on a first start), adds an incr file if
    /// there is none, persists the manifest and starts the fsync thread.
    pub(crate) fn open(
        &mut self,
        paths: &AofPaths,
        mut manifest: Manifest,
        keyspace: &Keyspace,
        base: BaseFormat,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&paths.dir)?;
        let mut changed = false;
        if manifest.base.is_none() && manifest.incrs.is_empty() {
            let seq = manifest.base_seq + 1;
            let name = base_name(&paths.prefix, seq, base.is_rdb());
            write_base(keyspace, &paths.dir, &name, base)?;
            manifest.replace_base(name, seq);
            changed = true;
        }
        if manifest.incrs.is_empty() {
            manifest.add_incr(&paths.prefix);
            changed = true;
        }
        if changed {
            if let Some(incr) = manifest.last_incr() {
                // The new incr file exists (empty, durable) before the manifest names it.
                FileStorage::open(&paths.file(&incr.name))?.sync()?;
            }
            manifest::persist(&paths.dir, &paths.prefix, &manifest)?;
        }
        self.manifest = manifest;
        self.attach(paths)?;
        self.recount_sizes(paths);
        self.rewrite_base_size = self.current_size();
        Ok(())
    }

    /// Starts appending to a new incr file that `manifest` names only in memory (CONFIG SET
    /// appendonly yes): the rewrite that follows writes the base and persists the manifest.
    pub(crate) fn open_waiting_for_base(
        &mut self,
        paths: &AofPaths,
        mut manifest: Manifest,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&paths.dir)?;
        let name = manifest.add_incr(&paths.prefix);
        // A file of that name left over from an earlier attempt is not part of any manifest.
        std::fs::File::create(paths.file(&name))?;
        self.waiting_first_incr = Some(manifest.incr_seq);
        self.manifest = manifest;
        self.attach(paths)?;
        self.recount_sizes(paths);
        Ok(())
    }

    /// Before a retried first rewrite (appendonly just turned on, an earlier rewrite failed):
    /// empties the incr file being appended to, so that it holds exactly the writes after the
    /// fork and the base does not get them twice. Redis removes its temp incr file likewise.
    pub(crate) fn restart_waiting_incr(&mut self, paths: &AofPaths) -> std::io::Result<()> {
        let Some(first) = self.waiting_first_incr else {
            return Ok(());
        };
        // The writes it holds are in the dataset the next base is taken from.
        self.durable.abandon();
        for incr in self.manifest.incrs.iter().filter(|incr| incr.seq >= first) {
            crate::notice!(
                "Removing the temp incr aof file {} in the background",
                incr.name
            );
            let _ = std::fs::remove_file(paths.file(&incr.name));
        }
        self.manifest.incrs.retain(|incr| incr.seq < first);
        self.manifest.incr_seq = first - 1;
        let name = self.manifest.add_incr(&paths.prefix);
        std::fs::File::create(paths.file(&name))?;
        self.attach(paths)?;
        self.recount_sizes(paths);
        Ok(())
    }

    /// Opens the manifest's last incr file for appending, with a new fsync thread.
    fn attach(&mut self, paths: &AofPaths) -> std::io::Result<()> {
        let incr = self
            .manifest
            .last_incr()
            .map(|info| paths.file(&info.name))
            .ok_or_else(|| std::io::Error::other("no incr file"))?;
        let storage = Arc::new(match self.preallocate {
            0 => FileStorage::open(&incr)?,
            step => FileStorage::open_preallocated(&incr, step)?,
        });
        let len = storage.len()?;
        self.durable
            .set_inline_commits(self.preallocate > 0 || crate::server::single_cpu());
        self.durable.attach(storage, len)
    }

    /// Recomputes `aof_base_size` and the size of every file from the directory.
    pub(crate) fn recount_sizes(&mut self, paths: &AofPaths) {
        let size = |name: &str| std::fs::metadata(paths.file(name)).map_or(0, |m| m.len());
        self.base_size = self.manifest.base.as_ref().map_or(0, |b| size(&b.name));
        self.size_at_open = self
            .manifest
            .load_order()
            .map(|info| size(&info.name))
            .sum();
        self.written_at_open = self.durable.written();
    }

    /// Starts a new incr file (at a rewrite's fork): the current one is written and fsynced,
    /// the new one is created and named in the persisted manifest, then appends go to it.
    pub(crate) fn rotate(&mut self, paths: &AofPaths) -> std::io::Result<()> {
        let was_on = self.durable.is_open();
        let failed_sync = match self.durable.failure() {
            Some(LogError::Sync(error)) => Some(error),
            _ => None,
        };
        if failed_sync.is_none()
            && let Err(error) = self.durable.sync_now()
        {
            return Err(std::io::Error::other(error));
        }
        let name = self.manifest.add_incr(&paths.prefix);
        let created = FileStorage::open(&paths.file(&name))
            .and_then(|file| file.sync())
            .and_then(|()| manifest::persist(&paths.dir, &paths.prefix, &self.manifest));
        if let Err(error) = created {
            self.manifest.incrs.pop();
            self.manifest.incr_seq -= 1;
            let _ = std::fs::remove_file(paths.file(&name));
            return Err(error);
        }
        if let Some(error) = failed_sync {
            // The old file cannot be trusted: its waiters fail, and writes stay refused until
            // the rewrite's base (taken from memory) replaces it.
            self.durable.close_failed();
            self.replaced_failure = Some(error);
            self.attach(paths)?;
        } else if was_on {
            // Everything written to the old file is durable: its waiters are released.
            let _ = self.durable.close();
            self.attach(paths)?;
        }
        self.recount_sizes(paths);
        Ok(())
    }

    /// Stops appending: writes and fsyncs what is buffered, and stops the fsync thread.
    pub(crate) fn close(&mut self) -> Result<(), LogError> {
        self.waiting_first_incr = None;
        self.durable.close()
    }

    /// Appends one command executed in `db`.
    pub(crate) fn feed<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A], now_ms: i64) {
        if self.suspended {
            return;
        }
        let timestamps = self.timestamps;
        let multi = &mut self.multi;
        let Some(log) = self.durable.log_mut() else {
            return;
        };
        if timestamps {
            log.annotate_time(now_ms / 1000);
        }
        if *multi == Some(false) {
            log.append(db, &["MULTI"]);
            *multi = Some(true);
        }
        log.append(db, args);
    }

    /// Heap bytes of the buffer of commands not yet written (`mem_aof_buffer`).
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.durable
            .log()
            .map_or(0, |log| crate::alloc::allocated_size(log.buffer_capacity()))
    }

    /// Marks the start of EXEC: the first write inside it is preceded by `MULTI`.
    pub(crate) fn begin_exec(&mut self) {
        self.multi = Some(false);
    }

    /// Marks the end of EXEC: closes the `MULTI` block if one was opened.
    pub(crate) fn end_exec(&mut self) {
        if self.multi.take() == Some(true)
            && let Some(log) = self.durable.log_mut()
        {
            log.append_global(&["EXEC"]);
        }
    }

    /// Writes what is buffered (before a backup copies the files).
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        match self.durable.log_mut() {
            Some(log) => log.flush().map(|_| ()),
            None => Ok(()),
        }
    }

    /// The error that makes writes refused (`-MISCONF`), if any.
    pub(crate) fn write_error(&mut self) -> Option<String> {
        self.durable
            .write_error()
            .or_else(|| self.replaced_failure.clone())
    }

    /// A rewrite's base replaced every file before its fork: a failed fsync of those no longer
    /// matters.
    pub(crate) fn base_installed(&mut self) {
        self.replaced_failure = None;
    }

    /// How the log's health changed since the last call (each change is reported once).
    pub(crate) fn health_change(&mut self) -> HealthChange {
        let failure = self.durable.failure();
        let text = failure
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| self.replaced_failure.clone());
        if text == self.logged_failure {
            return HealthChange::Same;
        }
        let was_failing = self.logged_failure.is_some();
        self.logged_failure = text.clone();
        match (failure, text) {
            (Some(LogError::Write(error)), _) => HealthChange::WriteFailed(error),
            (Some(LogError::Sync(error)), _) => HealthChange::SyncFailed(error),
            (None, Some(_)) => HealthChange::Same, // waiting for the rewrite's base
            (None, None) if was_failing => HealthChange::Solved,
            (None, None) => HealthChange::Same,
        }
    }

    /// Whether `appendfsync` is `always`.
    pub(crate) fn always(&self) -> bool {
        self.durable.policy() == FsyncPolicy::Always
    }

    /// Where the log ends (buffer included): a batch compares it before and after it runs to
    /// know whether it appended anything.
    pub(crate) fn end(&self) -> u64 {
        self.durable.log().map_or(0, |log| log.end())
    }

    /// Runs before replies are sent (see [`DurableLog::before_reply`]); `appended` says
    /// whether the batch wrote to the log.
    pub(crate) fn before_reply(&mut self, appended: bool) -> ReplyGate {
        let gate = self.durable.before_reply(Instant::now(), appended);
        self.log_delays();
        gate
    }

    /// Starts the group commit of what the tick wrote (see [`commit_task`]).
    fn commit(&mut self) {
        self.durable.commit();
        self.log_delays();
    }

    /// Asks again for replies that waited.
    pub(crate) fn wait_step(&mut self, ticket: Ticket) -> ReplyGate {
        let gate = self.durable.wait_step(ticket, Instant::now());
        self.log_delays();
        gate
    }

    /// Writes and fsyncs everything buffered, in the calling thread (shutdown, DEBUG LOADAOF).
    pub(crate) fn sync_now(&mut self) -> Result<(), LogError> {
        self.durable.sync_now()
    }

    /// The longest writes and fsync since the last call, and whether fsyncs hold replies
    /// (`always`): what the latency monitor records as `aof-write*` and `aof-fsync-always`.
    pub(crate) fn take_stalls(
        &mut self,
    ) -> (
        amber_aof::durability::WriteStalls,
        std::time::Duration,
        bool,
    ) {
        let (writes, fsync) = self.durable.take_stalls();
        let always = self.durable.policy() == FsyncPolicy::Always;
        (writes, fsync, always)
    }

    /// Whether a forked child runs (slow writes meanwhile are `aof-write-active-child`).
    pub(crate) fn set_child_active(&mut self, active: bool) {
        self.durable.set_child_active(active);
    }

    /// Runs from the cron: writes what is buffered, and under `everysec` asks for an fsync
    /// once a second.
    pub(crate) fn cron(&mut self) {
        self.durable.cron(Instant::now());
        self.log_delays();
    }

    /// Logs each write that did not wait any longer for a slow fsync, in Redis's words.
    fn log_delays(&mut self) {
        let delays = self.durable.delayed_fsync();
        if delays > self.delays_logged {
            self.delays_logged = delays;
            crate::notice!(
                "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
            );
        }
    }

    /// `aof_current_size`: every file of the log.
    pub(crate) fn current_size(&self) -> u64 {
        self.size_at_open + self.durable.written().saturating_sub(self.written_at_open)
    }

    /// `aof_last_write_status:err`: the last write or fsync failed.
    pub(crate) fn last_write_failed(&self) -> bool {
        self.replaced_failure.is_some() || self.durable.last_write_failed()
    }

    /// `aof_buffer_length`.
    pub(crate) fn buffer_length(&self) -> usize {
        self.durable.pending()
    }

    /// `aof_pending_bio_fsync`: whether a background fsync is running.
    pub(crate) fn fsync_in_flight(&self) -> bool {
        self.durable.fsync_in_flight()
    }

    /// `aof_delayed_fsync`.
    pub(crate) fn delayed_fsync(&self) -> u64 {
        self.durable.delayed_fsync()
    }
}

/// Event-loop ticks a group commit waits after the first batch asked for it, so that the
/// connections that became readable meanwhile join the group (as every client read in one
/// Redis loop iteration shares its `beforeSleep` fsync). Each tick is a non-blocking poll of
/// the sockets; fewer ticks made smaller groups and more fsyncs in `cargo xtask bench`.
const COMMIT_LINGER_TICKS: usize = 4;

/// Runs the `appendfsync always` group commits at the end of the loop's ticks, and wakes the
/// batches a background fsync released ([`DurableLog::with_deferred_commits`]).
pub(crate) async fn commit_task(shared: std::rc::Rc<std::cell::RefCell<crate::server::Server>>) {
    let CommitSignals { commit, synced } = shared.borrow().aof.commits.clone();
    loop {
        tokio::select! {
            () = commit.notified() => {
                for _ in 0..COMMIT_LINGER_TICKS {
                    tokio::task::yield_now().await;
                }
                shared.borrow_mut().aof.commit();
            }
            () = synced.notified() => shared.borrow_mut().aof.durable.collect(),
        }
    }
}

fn preallocate_of(config: &Config) -> u64 {
    u64::try_from(config.get_i64("aof-preallocate")).unwrap_or(0)
}

fn policy_of(config: &Config) -> FsyncPolicy {
    FsyncPolicy::parse(config.get("appendfsync")).unwrap_or(FsyncPolicy::EverySec)
}

/// Deletes the history files and forgets them (persisting the manifest without them).
pub(crate) fn delete_history(paths: &AofPaths, manifest: &mut Manifest) {
    if manifest.history.is_empty() {
        return;
    }
    for info in manifest.history.drain(..) {
        crate::notice!("Removing the history file {} in the background", info.name);
        let _ = crate::persistence::closer::remove_later(&paths.file(&info.name));
    }
    if let Err(error) = manifest::persist(&paths.dir, &paths.prefix, manifest) {
        crate::warning!("Error persisting the AOF manifest after deleting history: {error}");
    }
}

/// How a base file is written.
#[derive(Debug, Clone)]
pub(crate) enum BaseFormat {
    /// RDB form (`aof-use-rdb-preamble yes`), with these options.
    Rdb(SaveOptions),
    /// Commands (`aof-use-rdb-preamble no`), after a `#TS:` annotation when
    /// `aof-timestamp-enabled` is on.
    Commands {
        /// Start with a timestamp annotation.
        timestamp: bool,
        /// The Functions libraries' sources, written first as `FUNCTION LOAD`s.
        functions: std::sync::Arc<[bytes::Bytes]>,
        /// Start writeback every 4 MB (`aof-rewrite-incremental-fsync`).
        incremental_fsync: bool,
    },
}

impl BaseFormat {
    fn is_rdb(&self) -> bool {
        matches!(self, BaseFormat::Rdb(_))
    }
}

/// Writes the command form of `keyspace` to `path` (a new file), fsynced; with `timestamp`, a
/// `#TS:<unix seconds>` annotation comes first, as Redis starts a rewritten base. Returns the
/// number of keys written. Safe in a forked child: plain blocking I/O, no locks.
pub(crate) fn write_commands_file(
    keyspace: &Keyspace,
    path: &Path,
    (timestamp, incremental_fsync): (bool, bool),
    functions: &[bytes::Bytes],
    reporter: &mut Reporter,
) -> std::io::Result<u64> {
    let file = amber_snapshot::durable::WritebackFile::new(File::create(path)?, incremental_fsync);
    let mut out = BufWriter::with_capacity(super::WRITE_BUFFER, file);
    let mut opening = Vec::new();
    begin_commands(timestamp, functions, &mut opening);
    out.write_all(&opening)?;
    let keys = write_commands(keyspace, &mut out, reporter)?;
    let file = out.into_inner().map_err(|e| e.into_error())?.into_inner();
    file.sync_all()?;
    Ok(keys)
}

/// Writes a base file of `keyspace` as `dir/name`: a temp file, fsynced, renamed, and the
/// directory fsynced. Returns the number of keys written.
pub(crate) fn write_base(
    keyspace: &Keyspace,
    dir: &Path,
    name: &str,
    format: BaseFormat,
) -> std::io::Result<u64> {
    let temp = dir.join(format!("temp-rewriteaof-{}.aof", std::process::id()));
    let result = (|| {
        let keys = match format {
            BaseFormat::Rdb(options) => crate::persistence::rdb::write_snapshot(
                keyspace,
                &temp,
                options,
                true,
                &mut Reporter::disconnected(),
            )?,
            BaseFormat::Commands {
                timestamp,
                functions,
                incremental_fsync,
            } => write_commands_file(
                keyspace,
                &temp,
                (timestamp, incremental_fsync),
                &functions,
                &mut Reporter::disconnected(),
            )?,
        };
        amber_snapshot::durable::install(&temp, &dir.join(name))?;
        Ok(keys)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `keyspace` as the commands that rebuild it (Redis's command-form rewrite): `SELECT`,
/// then per key `SET`/`RPUSH`/`SADD`/`ZADD`/`HMSET` in batches of 64 items and `PEXPIREAT`.
pub(crate) fn write_commands(
    keyspace: &Keyspace,
    out: &mut impl Write,
    reporter: &mut Reporter,
) -> std::io::Result<u64> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut keys = 0;
    let mut failure = None;
    let mut yielder = amber_snapshot::Yielder::default();
    for (index, db) in keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        amber_aof::encode_command(&["SELECT", index.to_string().as_str()], &mut buffer);
        db.for_each_batched(|key, entry| {
            encode_entry(key, entry, &mut buffer);
            keys += 1;
            yielder.item_done();
            if keys % 1024 == 0 {
                reporter.keys_processed(keys);
            }
            if buffer.len() >= 64 * 1024 {
                if let Err(error) = out.write_all(&buffer) {
                    failure = Some(error);
                    return false;
                }
                buffer.clear();
            }
            true
        });
        if let Some(error) = failure {
            return Err(error);
        }
    }
    out.write_all(&buffer)?;
    out.flush()?;
    reporter.finish(keys);
    Ok(keys)
}

/// What a command-form base starts with: with `timestamp`, a `#TS:<unix seconds>`
/// annotation, as Redis starts a rewritten base; then, as Redis's rewrite, a `FUNCTION LOAD`
/// per library, so the keys' commands may call them.
pub(crate) fn begin_commands(timestamp: bool, functions: &[bytes::Bytes], out: &mut Vec<u8>) {
    if timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        out.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
    }
    for code in functions {
        amber_aof::encode_command(&[b"FUNCTION".as_slice(), b"LOAD", code], out);
    }
}

/// The commands that rebuild one key: its value's, then `PEXPIREAT` if it has a TTL.
pub(crate) fn encode_entry(key: &[u8], entry: &amber_keyspace::Entry, out: &mut Vec<u8>) {
    encode_value(key, &entry.value, out);
    if let Some(at) = entry.expire_at() {
        let at = at.to_string();
        amber_aof::encode_command(&[b"PEXPIREAT".as_slice(), key, at.as_bytes()], out);
    }
}

fn encode_value(key: &[u8], value: &Value, out: &mut Vec<u8>) {
    // Streamed straight into `out` without collecting the items: in a forked child every
    // allocation may dirty (and so copy) a page of the parent's heap.
    match value {
        Value::Str(value) => {
            amber_aof::encode_command(&[b"SET".as_slice(), key, &value.as_bytes()], out);
        }
        Value::List(items) => {
            let mut batch = Batcher::new(b"RPUSH", key, items.len(), 1);
            items.iter().for_each(|item| batch.push(out, &[item]));
        }
        Value::Set(set) => {
            let mut batch = Batcher::new(b"SADD", key, set.len(), 1);
            set.for_each_member(|member| batch.push(out, &[member]));
        }
        Value::Hash(hash) => {
            let mut batch = Batcher::new(b"HMSET", key, hash.len(), 2);
            hash.iter().for_each(|(f, v)| batch.push(out, &[f, v]));
        }
        Value::Zset(zset) => {
            let mut batch = Batcher::new(b"ZADD", key, zset.len(), 2);
            for (member, score) in zset.iter() {
                let score = amber_protocol::format_double(score);
                batch.push(out, &[score.as_bytes(), member]);
            }
        }
        Value::Stream(stream) => encode_stream(key, stream, out),
    }
}

/// A stream as Redis's rewrite writes it: an `XADD` per entry (or an `XADD ... MAXLEN 0` that
/// leaves an empty stream), `XSETID` with its counters, then each group with `XGROUP CREATE`,
/// its pending entries as `XCLAIM ... JUSTID FORCE` and its idle consumers as
/// `XGROUP CREATECONSUMER`.
fn encode_stream(key: &[u8], stream: &amber_keyspace::StreamValue, out: &mut Vec<u8>) {
    use amber_keyspace::StreamId;
    let mut args: Vec<Vec<u8>> = Vec::new();
    let emit = |args: &mut Vec<Vec<u8>>, out: &mut Vec<u8>| {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        amber_aof::encode_command(&refs, out);
        args.clear();
    };
    let text = |value: &dyn std::fmt::Display| value.to_string().into_bytes();
    if stream.log.is_empty() {
        for arg in [&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"] {
            args.push(arg.to_vec());
        }
        emit(&mut args, out);
    }
    for entry in stream.log.range(StreamId::MIN, StreamId::MAX, false) {
        args.extend([b"XADD".to_vec(), key.to_vec(), text(&entry.id)]);
        for (field, value) in entry.pairs() {
            let (mut f, mut v) = (Vec::new(), Vec::new());
            field.write_to(&mut f);
            value.write_to(&mut v);
            args.extend([f, v]);
        }
        emit(&mut args, out);
    }
    let meta = stream.log.meta();
    args.extend([
        b"XSETID".to_vec(),
        key.to_vec(),
        text(&meta.last_id),
        b"ENTRIESADDED".to_vec(),
        text(&meta.entries_added),
        b"MAXDELETEDID".to_vec(),
        text(&meta.max_deleted_id),
    ]);
    emit(&mut args, out);
    for (name, group) in &stream.groups {
        let read = group.entries_read.map_or(-1, |read| read as i64);
        args.extend([
            b"XGROUP".to_vec(),
            b"CREATE".to_vec(),
            key.to_vec(),
            name.clone(),
            text(&group.last_id),
            b"ENTRIESREAD".to_vec(),
            text(&read),
        ]);
        emit(&mut args, out);
        for (consumer, state) in &group.consumers {
            if state.pending.is_empty() {
                args.extend([
                    b"XGROUP".to_vec(),
                    b"CREATECONSUMER".to_vec(),
                    key.to_vec(),
                    name.clone(),
                    consumer.clone(),
                ]);
                emit(&mut args, out);
                continue;
            }
            for id in &state.pending {
                let Some(nack) = group.pel.get(id) else {
                    continue;
                };
                args.extend([
                    b"XCLAIM".to_vec(),
                    key.to_vec(),
                    name.clone(),
                    consumer.clone(),
                    b"0".to_vec(),
                    text(id),
                    b"TIME".to_vec(),
                    text(&nack.delivery_time),
                    b"RETRYCOUNT".to_vec(),
                    text(&nack.delivery_count),
                    b"JUSTID".to_vec(),
                    b"FORCE".to_vec(),
                ]);
                emit(&mut args, out);
            }
        }
    }
}

/// Writes a collection as commands of at most [`ITEMS_PER_COMMAND`] items each.
struct Batcher<'a> {
    command: &'a [u8],
    key: &'a [u8],
    remaining: usize,
    left_in_batch: usize,
    args_per_item: usize,
}

impl<'a> Batcher<'a> {
    fn new(command: &'a [u8], key: &'a [u8], items: usize, args_per_item: usize) -> Batcher<'a> {
        Batcher {
            command,
            key,
            remaining: items,
            left_in_batch: 0,
            args_per_item,
        }
    }

    fn push(&mut self, out: &mut Vec<u8>, args: &[&[u8]]) {
        if self.left_in_batch == 0 {
            self.left_in_batch = self.remaining.min(ITEMS_PER_COMMAND);
            let count = 2 + self.left_in_batch * self.args_per_item;
            out.extend_from_slice(format!("*{count}\r\n").as_bytes());
            bulk(out, self.command);
            bulk(out, self.key);
        }
        args.iter().for_each(|arg| bulk(out, arg));
        self.left_in_batch -= 1;
        self.remaining = self.remaining.saturating_sub(1);
    }
}

fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(arg.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}
