//! Forkless snapshots (`BGSAVE FORKLESS`, `bgsave-method forkless`): the event loop captures
//! the keyspace at a point in time (INV-CAPTURE in `amber-keyspace`) while it keeps serving,
//! and a writer thread encodes, checksums and writes the file.
//!
//! The capture is handed over in chunks through a queue of [`QUEUE_CHUNKS`] slots. The event
//! loop keeps at most [`PENDING_LIMIT`] bytes of entries that found the queue full; past that,
//! a write that must save an old value waits for the writer (INV-FORKLESS-BOUND: the extra
//! memory of a snapshot is bounded by design, whatever the write rate, apart from the one
//! value a command is changing). The walk of the keyspace only runs when the queue has room.
//!
//! The file is written to a temp file (`temp-<pid>.rdb` for BGSAVE), fsynced and renamed over
//! the target, as a forked save does; a failed or abandoned snapshot removes its temp file and
//! leaves the old file. An AOF rewrite's base (an RDB, or commands with
//! `aof-use-rdb-preamble no`) is left in its temp file for the rewrite's own installation with
//! the manifest. A diskless full sync's image goes to the replicas' sockets instead.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amber_keyspace::{DigestBuilder, Entry, ListValue, SmallBytes, StrValue, Value};
use amber_rdb::RdbWriter;
use amber_snapshot::{ChildExit, Progress};

use crate::persistence::rdb::{SaveOptions, to_io};
use crate::replication::FanOut;
use crate::server::Server;

/// Slots in the queue to the writer thread.
const QUEUE_CHUNKS: usize = 4;
/// A chunk is sent once it holds this many bytes (an estimate of the entries' memory)...
const CHUNK_BYTES: usize = 256 * 1024;
/// ... or this many entries.
const CHUNK_ENTRIES: usize = 1024;
/// Bytes of entries the event loop may hold while the queue is full, before a write waits.
const PENDING_LIMIT: usize = 4 * 1024 * 1024;
/// Entries the walk takes per step between two turns of the event loop. A step of 64 costs
/// about 18 µs at 1M mixed keys here: a request that arrives while it runs waits no longer
/// than that. Under a closed-loop write load the snapshot's length is the number of steps
/// times a turn of the loop, so it is about 1.4x as long as with steps of 256, which delayed
/// such a request by 70 µs (`docs/BENCHMARKS.md`, sessions 36 and 43).
const WALK_ENTRIES: usize = 64;

/// The command form's buffer, written out whenever it holds this much.
const COMMANDS_BUFFER: usize = 64 * 1024;
/// The buffer in front of replicas' sockets (as a diskless child's).
const REPLICA_BUFFER: usize = 64 * 1024;

/// Longest wait for room in the queue before the walk looks again.
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// One captured key: its database at the snapshot's start, its name, its entry then.
type Captured = (usize, SmallBytes, Entry);

/// What the event loop sends the writer.
enum Chunk {
    /// Captured keys, to be written in this order.
    Entries(Vec<Captured>),
    /// The capture is complete: finish the file and install it.
    End,
}

/// What the writer thread and the event loop share.
#[derive(Default)]
struct Shared {
    /// Keys written so far.
    keys_written: AtomicU64,
    /// Set when the snapshot is abandoned: the writer stops at its next chunk.
    abandoned: AtomicBool,
    /// Why the writer failed.
    failure: Mutex<Option<String>>,
    /// Signalled by the writer each time it takes a chunk: the walk, waiting on a full queue,
    /// goes on at once.
    room: tokio::sync::Notify,
}

/// Where the snapshot goes and in what form.
pub(crate) struct Target {
    /// Where the bytes go.
    pub output: Output,
    /// What they say.
    pub encoding: Encoding,
    /// The log line's words for a failure ("Write error saving DB on disk").
    pub context: &'static str,
    /// Whether to compute the image's `DEBUG DIGEST` as it is written.
    pub digest: bool,
    /// Runs on the writer thread once the image is complete and durable (a backup copies
    /// its AOF files and writes its `meta` there).
    pub then: Option<AfterImage>,
    /// A pause after each key (`rdb-key-save-delay`, for tests).
    pub key_delay: Duration,
}

/// Where a forkless snapshot's bytes go.
pub(crate) enum Output {
    /// A temp file, fsynced, then renamed over `install_at`; with `None` the temp file is left
    /// for the job's finisher (an AOF rewrite installs its base with the manifest).
    File {
        /// The file written first.
        temp: PathBuf,
        /// The file it replaces once complete and durable.
        install_at: Option<PathBuf>,
    },
    /// The sockets of replicas in a diskless full sync (descriptors of their own, so that a
    /// replica's connection closing cannot hand the number to another file), framed as
    /// `$EOF:<mark>\r\n<rdb><mark>`.
    Sockets {
        /// Duplicates of the replicas' sockets.
        sockets: Vec<OwnedFd>,
        /// The transfer's end mark.
        mark: String,
    },
    /// Nothing: only the image's digest is wanted (an AOF backup).
    Nothing,
}

/// The form of a forkless snapshot's bytes.
pub(crate) enum Encoding {
    /// An RDB file.
    Rdb {
        /// Header options, functions, replication fields.
        options: SaveOptions,
        /// Whether the file is an AOF base (`aof-base` AUX field).
        aof_base: bool,
    },
    /// The commands that rebuild the image (an AOF base with `aof-use-rdb-preamble no`).
    Commands {
        /// Whether a `#TS:<unix seconds>` annotation comes first (`aof-timestamp-enabled`).
        timestamp: bool,
        /// The function libraries' code, loaded first.
        functions: Arc<[bytes::Bytes]>,
    },
}

/// What runs after an image is written, with what the writer learnt of it.
pub(crate) type AfterImage = Box<dyn FnOnce(Image) -> std::io::Result<()> + Send>;

/// What the writer learnt of the image it wrote.
pub(crate) struct Image {
    /// Keys in the image.
    pub keys: u64,
    /// Its `DEBUG DIGEST`, when asked for.
    pub digest: Option<amber_keyspace::Digest>,
}

/// A forkless snapshot in progress: the event loop's side.
pub(crate) struct ForklessJob {
    sender: Option<SyncSender<Chunk>>,
    pending: Vec<Captured>,
    pending_bytes: usize,
    walk_complete: bool,
    writer: Option<JoinHandle<bool>>,
    shared: Arc<Shared>,
    started: Instant,
    capture_time: Duration,
    /// Most bytes of captured entries held at once (pending plus a full queue, estimated).
    peak_held: u64,
    exit: Option<ChildExit>,
    /// Copies of the replicas' sockets a diskless sync writes to, shut down if it is
    /// abandoned.
    replica_sockets: Vec<OwnedFd>,
}

impl ForklessJob {
    /// Begins the capture of `server`'s keyspace and starts the writer thread.
    pub(crate) fn start(server: &mut Server, target: Target) -> std::io::Result<ForklessJob> {
        let began = Instant::now();
        let sizes: Vec<(u64, u64)> = server
            .keyspace
            .dbs()
            .iter()
            .map(|db| (db.len() as u64, db.volatile_len() as u64))
            .collect();
        let header = Header {
            ctime: (crate::server::unix_ms() / 1000).max(0) as u64,
            used_memory: crate::alloc::used_memory() as u64,
            sizes,
        };
        let replica_sockets = match &target.output {
            Output::Sockets { sockets, .. } => sockets
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<std::io::Result<_>>()?,
            _ => Vec::new(),
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_CHUNKS);
        let shared = Arc::new(Shared::default());
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("forkless-save".into())
                .spawn(move || write_image(target, header, receiver, &shared))?
        };
        server.keyspace.begin_capture();
        Ok(ForklessJob {
            sender: Some(sender),
            pending: Vec::new(),
            pending_bytes: 0,
            walk_complete: false,
            writer: Some(writer),
            shared,
            started: began,
            capture_time: began.elapsed(),
            peak_held: 0,
            exit: None,
            replica_sockets,
        })
    }

    /// How long starting the capture took (what `latest_fork_usec` shows for a fork).
    pub(crate) fn start_time(&self) -> Duration {
        self.capture_time
    }

    /// How long the snapshot has run.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Keys written so far, and the most memory the capture held at once (in the place of a
    /// child's copy-on-write size).
    pub(crate) fn progress(&self) -> Progress {
        Progress {
            keys_processed: self.shared.keys_written.load(Ordering::Relaxed),
            cow_bytes: self.peak_held,
            cow_received: Some(Instant::now()),
        }
    }

    /// How the snapshot ended, once the writer is done.
    pub(crate) fn try_wait(&mut self) -> Option<ChildExit> {
        if self.exit.is_none() && self.writer.as_ref().is_some_and(JoinHandle::is_finished) {
            let ok = self
                .writer
                .take()
                .is_some_and(|w| w.join().unwrap_or(false));
            self.exit = Some(ChildExit::Exited(if ok { 0 } else { 1 }));
        }
        self.exit
    }

    /// Why the writer failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Stops the snapshot: the writer removes its temp file and ends. The caller abandons the
    /// keyspace's capture.
    pub(crate) fn abandon(&mut self) -> ChildExit {
        self.shared.abandoned.store(true, Ordering::Relaxed);
        self.sender = None;
        self.pending = Vec::new();
        // A writer waiting on a replica's full socket returns at once.
        for socket in &self.replica_sockets {
            crate::replication::shut_down(socket.as_raw_fd());
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        *self.exit.get_or_insert(ChildExit::Exited(1))
    }

    /// Takes `entry` into the pending chunk.
    fn push(&mut self, db: usize, key: SmallBytes, entry: Entry) {
        self.pending_bytes += entry_bytes(&key, &entry);
        self.pending.push((db, key, entry));
    }

    /// Bytes of captured entries held now, in the event loop and the queue (as Redis leaves a
    /// fork's copy-on-write out of `maxmemory`, they do not count against it).
    /// The chunks in the queue are counted at their most.
    pub(crate) fn held_bytes(&self) -> usize {
        self.pending_bytes + QUEUE_CHUNKS * CHUNK_BYTES
    }

    /// Sends the pending chunk if it is big enough (or `force`); with `wait`, blocks on a full
    /// queue once more than [`PENDING_LIMIT`] bytes are held. Returns false while the queue
    /// is full.
    fn flush(&mut self, force: bool, wait: bool) -> bool {
        let held = self.pending_bytes as u64 + (QUEUE_CHUNKS * CHUNK_BYTES) as u64;
        self.peak_held = self.peak_held.max(held);
        let big_enough = self.pending_bytes >= CHUNK_BYTES || self.pending.len() >= CHUNK_ENTRIES;
        if self.pending.is_empty() || !(big_enough || force) {
            return true;
        }
        let Some(sender) = &self.sender else {
            self.pending.clear();
            return true;
        };
        let chunk = Chunk::Entries(std::mem::take(&mut self.pending));
        let result = if wait && self.pending_bytes > PENDING_LIMIT {
            sender
                .send(chunk)
                .map_err(|error| TrySendError::Disconnected(error.0))
        } else {
            sender.try_send(chunk)
        };
        match result {
            Ok(()) => {
                self.pending_bytes = 0;
                true
            }
            Err(TrySendError::Full(Chunk::Entries(entries))) => {
                self.pending = entries;
                false
            }
            Err(_) => {
                // The writer failed; the reaper reports it.
                self.sender = None;
                self.pending_bytes = 0;
                true
            }
        }
    }
}

/// About how much memory a captured entry holds: its node, key and value. Small values
/// (the common case) are not measured, only counted; a set, a stream, a long string and the
/// table, skip list or deque of a big hash, sorted set or list are shared with the keyspace (INV-SHARED-SET),
/// not copied.
fn entry_bytes(key: &SmallBytes, entry: &Entry) -> usize {
    let value = match (&entry.value, entry.value.encoding()) {
        (Value::Set(_) | Value::Stream(_) | Value::Str(StrValue::Shared(_)), _)
        | (Value::Str(_), "int" | "embstr") => 64,
        (Value::Str(_), _) => crate::commands::value_size(&entry.value, 4),
        (Value::List(ListValue::Small(_)), _) | (_, "listpack" | "intset") => 256,
        _ => 64,
    };
    key.len() + 48 + value
}

/// What the writer needs of the keyspace at the snapshot's start.
struct Header {
    ctime: u64,
    used_memory: u64,
    /// Keys and keys with a TTL in each database (the `RESIZEDB` hints).
    sizes: Vec<(u64, u64)>,
}

/// The writer thread: writes the image from the chunks to the target's output, installs it
/// and runs what comes after. Returns whether all of it succeeded.
fn write_image(target: Target, header: Header, chunks: Receiver<Chunk>, shared: &Shared) -> bool {
    let Target {
        output,
        encoding,
        context,
        digest,
        then,
        key_delay,
    } = target;
    let reading = Reading {
        header: &header,
        chunks: &chunks,
        shared,
        digest,
        key_delay,
    };
    let mut temp = None;
    let mut to_replicas = false;
    let result = match output {
        Output::File {
            temp: path,
            install_at,
        } => {
            let written = write_file(&path, &encoding, &reading).and_then(|image| {
                if let Some(install_at) = &install_at {
                    amber_snapshot::durable::install(&path, install_at)?;
                }
                Ok(image)
            });
            temp = Some(path);
            written
        }
        Output::Sockets { sockets, mark } => {
            to_replicas = true;
            send_to_replicas(sockets, &mark, &encoding, &reading)
        }
        Output::Nothing => reading.copy_into::<std::io::Sink>(None),
    };
    let Err(error) = result.and_then(|image| then.map_or(Ok(()), |then| then(image))) else {
        return true;
    };
    if let Some(temp) = temp {
        let _ = std::fs::remove_file(temp);
    }
    if !shared.abandoned.load(Ordering::Relaxed)
        && let Ok(mut failure) = shared.failure.lock()
    {
        *failure = Some(match to_replicas {
            true => crate::replication::failure_text(&error),
            false => format!("{context}: {}", crate::log::os_error(&error)),
        });
    }
    false
}

/// Writes the image to `temp` and fsyncs it.
fn write_file(temp: &Path, encoding: &Encoding, reading: &Reading<'_>) -> std::io::Result<Image> {
    let file = std::fs::File::create(temp)?;
    let out = std::io::BufWriter::with_capacity(super::WRITE_BUFFER, file);
    let mut encoder = Encoder::start(out, encoding, reading.header)?;
    let image = reading.copy_into(Some(&mut encoder))?;
    let file = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(image)
}

/// Sends the image to the replicas' sockets, framed by `mark`; succeeds if at least one
/// replica got all of it.
fn send_to_replicas(
    sockets: Vec<OwnedFd>,
    mark: &str,
    encoding: &Encoding,
    reading: &Reading<'_>,
) -> std::io::Result<Image> {
    let mut fan_out = FanOut::new(sockets);
    fan_out.open(mark)?;
    let out = std::io::BufWriter::with_capacity(REPLICA_BUFFER, fan_out);
    let mut encoder = Encoder::start(out, encoding, reading.header)?;
    let image = reading.copy_into(Some(&mut encoder))?;
    let mut fan_out = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    fan_out.close(mark)?;
    Ok(image)
}

/// Where the writer takes the image from, and what it does with each key besides encoding
/// it.
struct Reading<'a> {
    header: &'a Header,
    chunks: &'a Receiver<Chunk>,
    shared: &'a Shared,
    digest: bool,
    key_delay: Duration,
}

impl Reading<'_> {
    /// Takes every chunk until the capture's end into `encoder` (`None`: the digest only).
    fn copy_into<W: Write>(&self, mut encoder: Option<&mut Encoder<W>>) -> std::io::Result<Image> {
        let mut digest = self.digest.then(DigestBuilder::default);
        let mut current_db = None;
        let mut keys = 0u64;
        let mut yielder = amber_snapshot::Yielder::default();
        loop {
            let chunk = self
                .chunks
                .recv()
                .map_err(|_| std::io::Error::other("the snapshot was abandoned"))?;
            self.shared.room.notify_one();
            if self.shared.abandoned.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("the snapshot was abandoned"));
            }
            let entries = match chunk {
                Chunk::Entries(entries) => entries,
                Chunk::End => break,
            };
            for (db, key, entry) in entries {
                // Checked per key as well: an abandoning event loop waits for this thread,
                // and a chunk may take long (`rdb-key-save-delay`).
                if self.shared.abandoned.load(Ordering::Relaxed) {
                    return Err(std::io::Error::other("the snapshot was abandoned"));
                }
                if let Some(encoder) = encoder.as_deref_mut() {
                    if current_db != Some(db) {
                        encoder.select_db(db, self.header)?;
                        current_db = Some(db);
                    }
                    encoder.entry(&key, &entry)?;
                }
                if let Some(digest) = digest.as_mut() {
                    digest.add(db, &key, &entry);
                }
                keys += 1;
                yielder.item_done();
                self.shared.keys_written.store(keys, Ordering::Relaxed);
                self.pause_after_key();
            }
        }
        // INV-CAPTURE hands out every key present at the start exactly once: a different
        // count means the image is not the dataset, and it must not replace the last good
        // file.
        let expected: u64 = self.header.sizes.iter().map(|(keys, _)| keys).sum();
        if keys != expected {
            return Err(std::io::Error::other(format!(
                "the capture handed out {keys} keys of the {expected} at its start"
            )));
        }
        Ok(Image {
            keys,
            digest: digest.map(|digest| digest.finish()),
        })
    }

    /// Sleeps `rdb-key-save-delay`, a millisecond at a time, so that an abandoning event loop
    /// waiting for this thread is not held up by it.
    fn pause_after_key(&self) {
        if self.key_delay.is_zero() {
            // The usual case: no clock reads per key.
            return;
        }
        let deadline = Instant::now() + self.key_delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.abandoned.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(1)));
        }
    }
}

/// Encodes captured keys in a target's [`Encoding`].
enum Encoder<W: Write> {
    Rdb(Box<RdbWriter<W>>),
    Commands { out: W, buffer: Vec<u8> },
}

impl<W: Write> Encoder<W> {
    /// Writes what comes before the keys: the RDB header, or the command form's timestamp
    /// and function libraries.
    fn start(out: W, encoding: &Encoding, header: &Header) -> std::io::Result<Encoder<W>> {
        match encoding {
            Encoding::Rdb { options, aof_base } => {
                let mut writer = RdbWriter::new(out, options.format).map_err(to_io)?;
                crate::persistence::rdb::write_header(
                    &mut writer,
                    options,
                    *aof_base,
                    header.ctime,
                    header.used_memory,
                )?;
                Ok(Encoder::Rdb(Box::new(writer)))
            }
            Encoding::Commands {
                timestamp,
                functions,
            } => {
                let mut buffer = Vec::with_capacity(COMMANDS_BUFFER);
                crate::persistence::aof::begin_commands(*timestamp, functions, &mut buffer);
                Ok(Encoder::Commands { out, buffer })
            }
        }
    }

    /// The keys that follow belong to database `db`.
    fn select_db(&mut self, db: usize, header: &Header) -> std::io::Result<()> {
        match self {
            Encoder::Rdb(writer) => {
                let (size, volatile) = header.sizes.get(db).copied().unwrap_or_default();
                writer.select_db(db as u64, size, volatile).map_err(to_io)
            }
            Encoder::Commands { buffer, .. } => {
                amber_aof::encode_command(&["SELECT", db.to_string().as_str()], buffer);
                Ok(())
            }
        }
    }

    /// One key.
    fn entry(&mut self, key: &[u8], entry: &Entry) -> std::io::Result<()> {
        match self {
            Encoder::Rdb(writer) => {
                crate::persistence::rdb::write_entry(writer, key, entry).map_err(to_io)
            }
            Encoder::Commands { out, buffer } => {
                crate::persistence::aof::encode_entry(key, entry, buffer);
                if buffer.len() >= COMMANDS_BUFFER {
                    out.write_all(buffer)?;
                    buffer.clear();
                }
                Ok(())
            }
        }
    }

    /// Writes what comes after the keys and hands back the output.
    fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Rdb(writer) => writer.finish().map_err(to_io),
            Encoder::Commands { mut out, buffer } => {
                out.write_all(&buffer)?;
                Ok(out)
            }
        }
    }
}

impl Server {
    /// After each command: moves the old values the command made the capture save into the
    /// pending chunk, waiting for the writer if too much is held (INV-FORKLESS-BOUND).
    pub(crate) fn forward_captured(&mut self) {
        let Some(job) = self.jobs.forkless_mut() else {
            return;
        };
        self.keyspace
            .take_captured(&mut |db, key, entry| job.push(db, key, entry));
        job.flush(false, true);
    }

    /// One step of the running capture between two turns of the event loop.
    fn forkless_step(&mut self) -> Step {
        let capturing = self.keyspace.capturing();
        let Some(job) = self.jobs.forkless_mut() else {
            if capturing {
                // An abandoned capture: the walk goes on only to mark entries.
                self.keyspace
                    .capture_step(WALK_ENTRIES * 4, &mut |_, _, _| {});
                return Step::Continue;
            }
            return Step::Idle;
        };
        let Some(sender) = job.sender.clone() else {
            return Step::Idle;
        };
        if !job.flush(job.walk_complete, false) {
            return Step::QueueFull(job.shared.clone());
        }
        if !job.walk_complete {
            let complete = self
                .keyspace
                .capture_step(WALK_ENTRIES, &mut |db, key, entry| job.push(db, key, entry));
            job.walk_complete = complete;
            if !job.flush(complete, false) {
                return Step::QueueFull(job.shared.clone());
            }
            if !complete {
                return Step::Continue;
            }
        }
        match sender.try_send(Chunk::End) {
            Err(TrySendError::Full(_)) => Step::QueueFull(job.shared.clone()),
            _ => {
                job.sender = None;
                Step::Idle
            }
        }
    }
}

/// What [`Server::forkless_step`] left to do.
enum Step {
    /// More to walk: yield and step again.
    Continue,
    /// The writer is behind: wait until it takes a chunk.
    QueueFull(Arc<Shared>),
    /// Nothing to walk.
    Idle,
}

/// The task that walks a running capture, a step at a time between the event loop's other
/// work. Woken by `wake` when a capture begins. Each step waits for a poll of the sockets,
/// then for the connections of that tick to send their replies: a step delays the requests
/// that arrive while it runs, not the replies already due.
pub(crate) async fn capture_task(shared: Rc<RefCell<Server>>, wake: Rc<tokio::sync::Notify>) {
    let tick = shared.borrow().tick.clone();
    let mut yielder = amber_snapshot::Yielder::default();
    loop {
        wake.notified().await;
        loop {
            tokio::task::yield_now().await;
            tick.wait_last().await;
            let step = shared.borrow_mut().forkless_step();
            yielder.yield_if_due();
            match step {
                Step::Continue => {}
                Step::QueueFull(shared) => {
                    // The timeout only bounds the wait should the writer stop taking chunks.
                    let _ = tokio::time::timeout(ROOM_WAIT, shared.room.notified()).await;
                }
                Step::Idle => break,
            }
        }
    }
}
