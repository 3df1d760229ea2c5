//! The append path: commands are encoded into a buffer, written to [`Storage`] in batches, and
//! made durable by fsync according to `appendfsync`. [`Syncer`] runs fsyncs on a background
//! thread and shares each one among every write that arrived before it started (group commit).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::command::encode_command;
use crate::storage::Storage;

/// `appendfsync`: when appended bytes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before any reply that depends on the write is sent.
    Always,
    /// Once a second, in the background.
    EverySec,
    /// When the operating system decides.
    No,
}

impl FsyncPolicy {
    /// Parses `always`, `everysec` or `no` (case-insensitive).
    pub fn parse(text: &str) -> Option<FsyncPolicy> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }
}

/// Why the log cannot take or persist writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// `write(2)` failed; the bytes stay buffered and are retried.
    #[error("{0}")]
    Write(String),
    /// `fsync` failed: what was written since the last good fsync may not be on disk, whatever
    /// later fsyncs say, so the log stays failed until it is replaced by a rewrite.
    #[error("{0}")]
    Sync(String),
}

/// The open end of the log: buffered commands and what was written and synced.
pub struct AppendLog {
    storage: Arc<dyn Storage>,
    buffer: Vec<u8>,
    written: u64,
    selected_db: Option<usize>,
    last_timestamp: i64,
    write_error: Option<String>,
    sync_error: Option<String>,
    /// The longest write since [`AppendLog::take_slowest_write`] last asked.
    slowest_write: Duration,
}

impl AppendLog {
    /// A log appending to `storage`, which already holds `len` bytes.
    pub fn new(storage: Arc<dyn Storage>, len: u64) -> AppendLog {
        AppendLog {
            storage,
            buffer: Vec::with_capacity(64 * 1024),
            written: len,
            selected_db: None,
            last_timestamp: 0,
            write_error: None,
            sync_error: None,
            slowest_write: Duration::ZERO,
        }
    }

    /// The longest write of the buffer since the last call (for latency monitoring).
    pub fn take_slowest_write(&mut self) -> Duration {
        std::mem::take(&mut self.slowest_write)
    }

    /// The storage, to hand to a [`Syncer`].
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Buffers one command for database `db`, preceded by `SELECT` when the database changes.
    pub fn append<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if self.selected_db != Some(db) {
            let index = db.to_string();
            encode_command(&["SELECT", index.as_str()], &mut self.buffer);
            self.selected_db = Some(db);
        }
        encode_command(args, &mut self.buffer);
    }

    /// Buffers one command that does not depend on the database (`MULTI`, `EXEC`).
    pub fn append_global<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.buffer);
    }

    /// Buffers a `#TS:<unix-seconds>` annotation if the second changed since the last one.
    pub fn annotate_time(&mut self, unix_seconds: i64) {
        if unix_seconds > self.last_timestamp {
            self.last_timestamp = unix_seconds;
            self.buffer
                .extend_from_slice(format!("#TS:{unix_seconds}\r\n").as_bytes());
        }
    }

    /// Forgets the selected database, so the next command starts with `SELECT` (a new file).
    pub fn reset_selected_db(&mut self) {
        self.selected_db = None;
    }

    /// Bytes buffered and not yet written.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes the buffer has room for (its allocation, for memory figures).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Bytes written to storage (the file's length as far as this log knows).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Where the log will end once the buffer is written.
    pub fn end(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    /// Whether writes can be accepted: not after a failed fsync, nor while writes fail.
    pub fn health(&self) -> Result<(), LogError> {
        if let Some(error) = &self.sync_error {
            return Err(LogError::Sync(error.clone()));
        }
        if let Some(error) = &self.write_error {
            return Err(LogError::Write(error.clone()));
        }
        Ok(())
    }

    /// Records an fsync failure reported by a [`Syncer`].
    pub fn record_sync_error(&mut self, error: String) {
        self.sync_error.get_or_insert(error);
    }

    /// Writes the buffer to storage. On failure a partial write is cut off again, the bytes stay
    /// buffered for the next try, and the error is returned (and kept until a write succeeds).
    pub fn flush(&mut self) -> Result<u64, LogError> {
        if self.buffer.is_empty() {
            return Ok(self.written);
        }
        let started = Instant::now();
        let appended = self.storage.append(&self.buffer);
        self.slowest_write = self.slowest_write.max(started.elapsed());
        match appended {
            Ok(()) => {
                self.written += self.buffer.len() as u64;
                self.buffer.clear();
                if self.buffer.capacity() > 4 << 20 {
                    self.buffer = Vec::with_capacity(64 * 1024);
                }
                self.write_error = None;
                Ok(self.written)
            }
            Err(error) => {
                let message = crate::storage::strerror(&error);
                if let Err(truncate) = self.storage.truncate(self.written) {
                    // The partial bytes stay: the file is now damaged at its tail, which a
                    // load repairs (aof-load-truncated); refuse writes until a rewrite.
                    self.sync_error.get_or_insert(format!(
                        "{message}; cutting the partial write failed: {truncate}"
                    ));
                }
                self.write_error = Some(message.clone());
                Err(LogError::Write(message))
            }
        }
    }

    /// Writes the buffer and fsyncs in the calling thread; returns the durable length.
    pub fn flush_and_sync(&mut self) -> Result<u64, LogError> {
        self.health()?;
        let written = self.flush()?;
        match self.storage.sync() {
            Ok(()) => Ok(written),
            Err(error) => {
                let message = crate::storage::strerror(&error);
                self.record_sync_error(message.clone());
                Err(LogError::Sync(message))
            }
        }
    }
}

/// What a [`Syncer`] reports after each fsync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Bytes known durable.
    pub synced: u64,
    /// The first fsync error, if any (the log is then failed for good).
    pub error: Option<String>,
    /// How long the fsync behind this report took.
    pub took: Duration,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    synced: u64,
    in_flight_since: Option<Instant>,
    error: Option<String>,
    stop: bool,
    /// The longest fsync since [`Syncer::take_slowest_sync`] last asked.
    slowest: Duration,
}

struct Shared {
    state: Mutex<SyncState>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A background thread that fsyncs the log on request. Requests made while an fsync runs are
/// served together by the next one, so N concurrent writers cost about two fsyncs, not N.
pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread for `storage`, whose first `synced` bytes are already durable;
    /// `report` is called (on the thread) after every fsync.
    pub fn start(
        storage: Arc<dyn Storage>,
        synced: u64,
        report: Box<dyn Fn(SyncProgress) + Send>,
    ) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(SyncState {
                requested: synced,
                synced,
                ..SyncState::default()
            }),
            wake: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("aof-fsync".into())
            .spawn(move || sync_loop(&thread_shared, storage.as_ref(), report.as_ref()))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for everything up to `offset` (bytes already written) to be made durable.
    pub fn request(&self, offset: u64) {
        let mut state = self.shared.lock();
        if offset > state.requested {
            state.requested = offset;
            self.shared.wake.notify_one();
        }
    }

    /// Whether an fsync runs or is asked for and not yet started.
    pub fn busy(&self) -> bool {
        let state = self.shared.lock();
        state.in_flight_since.is_some() || state.requested > state.synced
    }

    /// Fsyncs in the calling thread, now, everything up to `offset` (bytes already written),
    /// unless an fsync runs or is asked for (then `None`: the thread serves it). The state is
    /// kept as if the thread had done it: a failure fails the log for good.
    pub fn sync_here(&self, storage: &dyn Storage, offset: u64) -> Option<SyncProgress> {
        let started = {
            let mut state = self.shared.lock();
            if state.in_flight_since.is_some()
                || state.requested > state.synced
                || state.error.is_some()
            {
                return None;
            }
            let now = Instant::now();
            state.in_flight_since = Some(now);
            now
        };
        let result = storage.sync();
        let mut state = self.shared.lock();
        Some(finish_sync(&mut state, started, offset, result))
    }

    /// Bytes known durable.
    pub fn synced(&self) -> u64 {
        self.shared.lock().synced
    }

    /// How long the running fsync has taken, if one runs (`aof_pending_bio_fsync`).
    pub fn in_flight(&self) -> Option<Duration> {
        self.shared.lock().in_flight_since.map(|at| at.elapsed())
    }

    /// The longest fsync since the last call (for latency monitoring).
    pub fn take_slowest_sync(&self) -> Duration {
        std::mem::take(&mut self.shared.lock().slowest)
    }

    /// Waits (blocking) until everything requested so far is durable or failed.
    pub fn drain(&self) -> SyncProgress {
        let mut state = self.shared.lock();
        while state.synced < state.requested && state.error.is_none() {
            state = self
                .shared
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        SyncProgress {
            synced: state.synced,
            error: state.error.clone(),
            took: Duration::ZERO,
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sync_loop(shared: &Shared, storage: &dyn Storage, report: &dyn Fn(SyncProgress)) {
    loop {
        let target = {
            let mut state = shared.lock();
            while state.requested <= state.synced && !state.stop {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.requested <= state.synced || state.error.is_some() {
                return;
            }
            let now = Instant::now();
            state.in_flight_since = Some(now);
            (state.requested, now)
        };
        let (target, started) = target;
        let result = storage.sync();
        let progress = {
            let mut state = shared.lock();
            let progress = finish_sync(&mut state, started, target, result);
            shared.wake.notify_all();
            progress
        };
        let failed = progress.error.is_some();
        report(progress);
        if failed {
            return;
        }
    }
}

/// Records the end of an fsync of everything up to `target`, started at `started`.
fn finish_sync(
    state: &mut SyncState,
    started: Instant,
    target: u64,
    result: std::io::Result<()>,
) -> SyncProgress {
    let took = started.elapsed();
    state.in_flight_since = None;
    state.slowest = state.slowest.max(took);
    match result {
        Ok(()) => {
            state.synced = state.synced.max(target);
            state.requested = state.requested.max(target);
        }
        Err(error) => {
            state.error.get_or_insert(crate::storage::strerror(&error));
        }
    }
    SyncProgress {
        synced: state.synced,
        error: state.error.clone(),
        took,
    }
}
