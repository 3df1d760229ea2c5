//! The server's append-only file: propagating writes into the log, writing and fsyncing it by
//! `appendfsync`, and opening the multi-part directory (creating its base and incr files).
//! Loading lives in [`crate::aof_load`].

use amber_snapshot::Reporter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amber_aof::manifest::{self, base_name};
use amber_aof::{AppendLog, FileStorage, FsyncPolicy, Manifest, Storage, SyncProgress, Syncer};
use amber_keyspace::{Keyspace, Value};
use tokio::sync::watch;

use crate::config::Config;
use crate::persistence::rdb::SaveOptions;

/// How long `everysec` lets writes wait for a slow background fsync before writing anyway.
const MAX_FSYNC_POSTPONE: Duration = Duration::from_secs(2);

/// Items per command when a collection is written as commands (Redis's
/// `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;

/// The AOF as the server runs it.
pub(crate) struct Aof {
    /// `appendfsync`.
    pub policy: FsyncPolicy,
    /// `aof-timestamp-enabled`.
    pub timestamps: bool,
    /// The manifest of the directory in use.
    pub manifest: Manifest,
    /// The open incr file, while `appendonly` is on.
    pub log: Option<AppendLog>,
    syncer: Option<Syncer>,
    /// What the fsync thread reports, tagged with the generation of the open file (a new one
    /// per incr file: waiting clients of an older, fully synced file are released).
    progress: watch::Sender<(u64, SyncProgress)>,
    generation: u64,
    /// `aof_current_size` right after the last rewrite or open (the automatic rewrite's base).
    pub rewrite_base_size: u64,
    /// Set while appending after CONFIG SET appendonly yes, before the first rewrite wrote a
    /// base: the sequence number of the first incr file the new manifest must keep.
    pub waiting_first_incr: Option<u64>,
    /// Writes done while a background fsync was late (`aof_delayed_fsync`).
    pub delayed_fsync: u64,
    postponed_since: Option<Instant>,
    /// `DEBUG AOF-FLUSH-SLEEP`: a pause before each write of the buffer (a test knob, as in
    /// Redis, to widen the window between a write and its reply).
    pub flush_sleep: std::time::Duration,
    last_sync_request: Instant,
    /// Size of the base file (`aof_base_size`).
    pub base_size: u64,
    /// Size of all files at the last open or rewrite, plus what was written since.
    size_at_open: u64,
    written_at_open: u64,
    /// Inside EXEC: whether `MULTI` was already written for this transaction.
    multi: Option<bool>,
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
        Aof {
            policy: policy_of(config),
            timestamps: config.get_bool("aof-timestamp-enabled"),
            manifest: Manifest::default(),
            log: None,
            syncer: None,
            progress: watch::channel((0, SyncProgress::default())).0,
            generation: 0,
            rewrite_base_size: 0,
            waiting_first_incr: None,
            delayed_fsync: 0,
            postponed_since: None,
            flush_sleep: std::time::Duration::ZERO,
            last_sync_request: Instant::now(),
            base_size: 0,
            size_at_open: 0,
            written_at_open: 0,
            multi: None,
        }
    }

    /// Whether writes are being appended.
    pub(crate) fn is_on(&self) -> bool {
        self.log.is_some()
    }

    /// Re-reads `appendfsync` and `aof-timestamp-enabled` after CONFIG SET.
    pub(crate) fn refresh(&mut self, config: &Config) {
        self.policy = policy_of(config);
        self.timestamps = config.get_bool("aof-timestamp-enabled");
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
        if let Some(log) = self.log.as_mut() {
            // The writes it holds are in the dataset the next base is taken from.
            let _ = log.flush_and_sync();
        }
        self.syncer = None;
        self.log = None;
        self.generation += 1;
        self.progress
            .send_replace((self.generation, SyncProgress::default()));
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
        let storage = Arc::new(FileStorage::open(&incr)?);
        let len = storage.len()?;
        self.generation += 1;
        let generation = self.generation;
        let sender = self.progress.clone();
        sender.send_replace((
            generation,
            SyncProgress {
                synced: len,
                error: None,
            },
        ));
        let syncer = Syncer::start(
            storage.clone(),
            len,
            Box::new(move |progress| {
                sender.send_replace((generation, progress));
            }),
        )?;
        self.log = Some(AppendLog::new(storage, len));
        self.syncer = Some(syncer);
        Ok(())
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
        self.written_at_open = self.log.as_ref().map_or(0, AppendLog::written);
    }

    /// Starts a new incr file (at a rewrite's fork): the current one is written and fsynced,
    /// the new one is created and named in the persisted manifest, then appends go to it.
    pub(crate) fn rotate(&mut self, paths: &AofPaths) -> std::io::Result<()> {
        if let Some(log) = self.log.as_mut()
            && let Err(error) = log.flush_and_sync()
        {
            let message = error.to_string();
            let generation = self.generation;
            let synced = self.progress.borrow().1.synced;
            self.progress.send_replace((
                generation,
                SyncProgress {
                    synced,
                    error: Some(message),
                },
            ));
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
        let was_on = self.log.is_some();
        self.syncer = None;
        self.log = None;
        if was_on {
            self.attach(paths)?;
        }
        self.recount_sizes(paths);
        Ok(())
    }

    /// Stops appending: writes and fsyncs what is buffered, and stops the fsync thread.
    pub(crate) fn close(&mut self) -> Result<(), String> {
        let result = match self.log.as_mut() {
            Some(log) => log.flush_and_sync().map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        };
        self.syncer = None;
        self.log = None;
        self.waiting_first_incr = None;
        if result.is_ok() {
            // Everything written is durable: release clients waiting on this file.
            self.generation += 1;
            self.progress
                .send_replace((self.generation, SyncProgress::default()));
        }
        result
    }

    /// Appends one command executed in `db`.
    pub(crate) fn feed<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A], now_ms: i64) {
        let timestamps = self.timestamps;
        let multi = &mut self.multi;
        let Some(log) = self.log.as_mut() else {
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

    /// Marks the start of EXEC: the first write inside it is preceded by `MULTI`.
    pub(crate) fn begin_exec(&mut self) {
        self.multi = Some(false);
    }

    /// Marks the end of EXEC: closes the `MULTI` block if one was opened.
    pub(crate) fn end_exec(&mut self) {
        if self.multi.take() == Some(true)
            && let Some(log) = self.log.as_mut()
        {
            log.append_global(&["EXEC"]);
        }
    }

    /// The error that makes writes refused (`-MISCONF`), if any.
    pub(crate) fn write_error(&mut self) -> Option<String> {
        let log = self.log.as_mut()?;
        if let Some(error) = self.progress.borrow().1.error.clone() {
            log.record_sync_error(error);
        }
        log.health().err().map(|e| e.to_string())
    }

    /// Runs before replies are sent: writes the buffer (unless `everysec` is waiting for a slow
    /// fsync). Under `always` it says how long the replies must wait: until the whole log as
    /// it is now is durable, since they may show data that is not on disk yet.
    pub(crate) fn before_reply(&mut self) -> BeforeReply {
        let Some(log) = self.log.as_mut() else {
            return BeforeReply::Send;
        };
        match self.policy {
            FsyncPolicy::Always => {
                let need = log.end();
                self.wait_step(need, self.generation)
            }
            FsyncPolicy::EverySec | FsyncPolicy::No => {
                if log.pending() == 0 {
                    return BeforeReply::Send;
                }
                let need = log.end();
                self.wait_step(need, self.generation)
            }
        }
    }

    /// Under `always`, one step of waiting until the log of `generation` is durable up to
    /// `need`: while an fsync runs, new writes only gather in the buffer (a `write` could block
    /// behind the fsync); once it is done, everything gathered is written and the next fsync
    /// asked for — so all the writes that arrived during one fsync share the next one.
    pub(crate) fn wait_step(&mut self, need: u64, generation: u64) -> BeforeReply {
        // Subscribe before reading the state, so no report between the two is missed.
        let receiver = self.progress.subscribe();
        let (current, progress) = self.progress.borrow().clone();
        if current != generation {
            // That file was written and fsynced in full when it was closed or rotated.
            return BeforeReply::Send;
        }
        if progress.error.is_some() {
            return BeforeReply::Fail;
        }
        if self.policy != FsyncPolicy::Always {
            // everysec / no: a reply waits until its write reached the kernel (so a crash of
            // the process loses nothing acknowledged); while a background fsync runs the write
            // is postponed (up to 2 s, as Redis), and so is the reply.
            let written = |aof: &Aof| aof.log.as_ref().map_or(0, AppendLog::written);
            if written(self) < need {
                self.write_unless_fsync_is_slow();
            }
            if written(self) >= need {
                return BeforeReply::Send;
            }
            if self.log.as_ref().is_none_or(|log| log.health().is_err()) {
                return BeforeReply::Fail;
            }
            return BeforeReply::Wait(need, generation, receiver);
        }
        if progress.synced >= need {
            return BeforeReply::Send;
        }
        let (Some(log), Some(syncer)) = (self.log.as_mut(), self.syncer.as_ref()) else {
            return BeforeReply::Fail;
        };
        if !syncer.busy() {
            pause_before_write(self.flush_sleep, log.pending());
            if log.flush().is_err() {
                return BeforeReply::Fail;
            }
            syncer.request(log.written());
        }
        BeforeReply::Wait(need, generation, receiver)
    }

    /// Writes and fsyncs everything buffered, in the calling thread (shutdown, DEBUG LOADAOF).
    pub(crate) fn sync_now(&mut self) -> Result<(), String> {
        match self.log.as_mut() {
            Some(log) => log.flush_and_sync().map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Redis's rule for `everysec`: while a background fsync runs, postpone writes (a write
    /// could block behind it) for up to 2 seconds, then write anyway and count it.
    fn write_unless_fsync_is_slow(&mut self) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let fsync_running = self.syncer.as_ref().and_then(Syncer::in_flight).is_some();
        if fsync_running {
            let since = *self.postponed_since.get_or_insert_with(Instant::now);
            if since.elapsed() < MAX_FSYNC_POSTPONE {
                return;
            }
            self.delayed_fsync += 1;
            crate::notice!(
                "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
            );
        }
        let was_postponed = self.postponed_since.take().is_some();
        pause_before_write(self.flush_sleep, log.pending());
        let _ = log.flush();
        if was_postponed {
            // Wake the replies that waited for this write.
            self.progress.send_modify(|_| {});
        }
    }

    /// Runs from the cron: writes what is buffered, and under `everysec` starts an fsync once
    /// a second when something was written since the last one.
    pub(crate) fn cron(&mut self) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if self.policy == FsyncPolicy::EverySec {
            if log.pending() > 0 {
                self.write_unless_fsync_is_slow();
            }
        } else if log.pending() > 0 {
            let _ = log.flush();
        }
        let Some(log) = self.log.as_ref() else {
            return;
        };
        let Some(syncer) = &self.syncer else {
            return;
        };
        let due = self.last_sync_request.elapsed() >= Duration::from_secs(1);
        if self.policy == FsyncPolicy::EverySec
            && due
            && syncer.in_flight().is_none()
            && self.progress.borrow().1.synced < log.written()
        {
            syncer.request(log.written());
            self.last_sync_request = Instant::now();
        }
    }

    /// `aof_current_size`: every file of the log.
    pub(crate) fn current_size(&self) -> u64 {
        let written = self.log.as_ref().map_or(0, AppendLog::written);
        self.size_at_open + written.saturating_sub(self.written_at_open)
    }

    /// `aof_last_write_status:err`: the last write or fsync failed.
    pub(crate) fn last_write_failed(&self) -> bool {
        self.progress.borrow().1.error.is_some()
            || self.log.as_ref().is_some_and(|log| log.health().is_err())
    }

    /// `aof_buffer_length`.
    pub(crate) fn buffer_length(&self) -> usize {
        self.log.as_ref().map_or(0, AppendLog::pending)
    }

    /// `aof_pending_bio_fsync`: whether a background fsync is running.
    pub(crate) fn fsync_in_flight(&self) -> bool {
        self.syncer.as_ref().and_then(Syncer::in_flight).is_some()
    }
}

/// What a connection does with its replies after writing the log.
pub(crate) enum BeforeReply {
    /// Send them now.
    Send,
    /// Send them once the log of this generation is durable up to this offset (the receiver
    /// reports progress).
    Wait(u64, u64, watch::Receiver<(u64, SyncProgress)>),
    /// The log cannot be made durable: close the connection without replying, so that no write
    /// is acknowledged that may be lost.
    Fail,
}

fn policy_of(config: &Config) -> FsyncPolicy {
    FsyncPolicy::parse(config.get("appendfsync")).unwrap_or(FsyncPolicy::EverySec)
}

/// Sleeps `pause` before a write of `pending` buffered bytes (`DEBUG AOF-FLUSH-SLEEP`).
fn pause_before_write(pause: std::time::Duration, pending: usize) {
    if pending > 0 && !pause.is_zero() {
        std::thread::sleep(pause);
    }
}

/// Deletes the history files and forgets them (persisting the manifest without them).
pub(crate) fn delete_history(paths: &AofPaths, manifest: &mut Manifest) {
    if manifest.history.is_empty() {
        return;
    }
    for info in manifest.history.drain(..) {
        crate::notice!("Removing the history file {} in the background", info.name);
        let _ = std::fs::remove_file(paths.file(&info.name));
    }
    if let Err(error) = manifest::persist(&paths.dir, &paths.prefix, manifest) {
        crate::warning!("Error persisting the AOF manifest after deleting history: {error}");
    }
}

/// How a base file is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BaseFormat {
    /// RDB form (`aof-use-rdb-preamble yes`), with these options.
    Rdb(SaveOptions),
    /// Commands (`aof-use-rdb-preamble no`), after a `#TS:` annotation when
    /// `aof-timestamp-enabled` is on.
    Commands {
        /// Start with a timestamp annotation.
        timestamp: bool,
    },
}

impl BaseFormat {
    fn is_rdb(self) -> bool {
        matches!(self, BaseFormat::Rdb(_))
    }
}

/// Writes the command form of `keyspace` to `path` (a new file), fsynced; with `timestamp`, a
/// `#TS:<unix seconds>` annotation comes first, as Redis starts a rewritten base. Returns the
/// number of keys written. Safe in a forked child: plain blocking I/O, no locks.
pub(crate) fn write_commands_file(
    keyspace: &Keyspace,
    path: &Path,
    timestamp: bool,
    reporter: &mut Reporter,
) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(out, "#TS:{now}\r\n")?;
    }
    let keys = write_commands(keyspace, &mut out, reporter)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
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
            BaseFormat::Commands { timestamp } => {
                write_commands_file(keyspace, &temp, timestamp, &mut Reporter::disconnected())?
            }
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
    for (index, db) in keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        amber_aof::encode_command(&["SELECT", index.to_string().as_str()], &mut buffer);
        db.for_each_batched(|key, entry| {
            encode_value(key, &entry.value, &mut buffer);
            if let Some(at) = entry.expire_at() {
                let at = at.to_string();
                amber_aof::encode_command(
                    &[b"PEXPIREAT".as_slice(), key, at.as_bytes()],
                    &mut buffer,
                );
            }
            keys += 1;
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
