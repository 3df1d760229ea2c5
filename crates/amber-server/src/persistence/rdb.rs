//! RDB snapshots of the keyspace: SAVE (in process), BGSAVE (in a forked child), save points,
//! and loading `dbfilename` at start-up. Files are written to a temp file, fsynced, renamed
//! over the old one and the directory fsynced, so a crash leaves the old or the new file.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use amber_keyspace::{
    Entry, HashLimits, HashValue, Keyspace, ListLimits, ListValue, SetValue, SmallBytes, StrValue,
    Value, ValueBuilder, ZsetLimits, ZsetValue,
};
use amber_rdb::{Element, IntText, Item, RawValue, RdbReader, RdbWriter, WriteOptions, types};
use amber_snapshot::Reporter;
use amber_snapshot::durable::WritebackFile;

use super::rdb_prefetch::Prepared;

use crate::server::unix_ms;

/// State of RDB persistence for `INFO persistence` and the cron.
#[derive(Debug, Default)]
pub(crate) struct RdbState {
    /// Duration of the last background save, seconds (-1 if none).
    pub last_bgsave_seconds: i64,
    /// Successful saves since start (`rdb_saves`).
    pub saves: u64,
    /// Peak copy-on-write size of the last BGSAVE child (`rdb_last_cow_size`).
    pub last_cow: u64,
    /// Keys loaded and skipped as expired by the last load.
    pub last_load: (u64, u64),
}

impl RdbState {
    /// Initial state: no save yet, so the last background save counts as successful.
    pub(crate) fn new() -> RdbState {
        RdbState {
            last_bgsave_seconds: -1,
            ..RdbState::default()
        }
    }
}

/// How a snapshot is written.
#[derive(Debug, Clone)]
pub(crate) struct SaveOptions {
    /// Format options (`rdbcompression`, `rdbchecksum`).
    pub format: WriteOptions,
    /// The Functions libraries' sources, written before the keys (`FUNCTION2`).
    pub functions: std::sync::Arc<[bytes::Bytes]>,
    /// `rdb-key-save-delay`: microseconds to sleep per key (a test knob, as in Redis).
    pub key_delay_us: u64,
    /// The replication stream this snapshot belongs to (the `repl-*` AUX fields).
    pub repl: Option<crate::replication::ReplAux>,
    /// Threads that encode keys (see `rdb_parallel`); 1 encodes on the calling thread, as a
    /// forked child does.
    pub encoder_threads: usize,
    /// Start writeback every 4 MB while writing a file (`rdb-save-incremental-fsync`, or
    /// `aof-rewrite-incremental-fsync` for an AOF base).
    pub incremental_fsync: bool,
}

/// The options a save uses, from `rdbcompression`, `rdbchecksum` and `rdb-key-save-delay`.
pub(crate) fn save_options(compression: bool, checksum: bool, key_delay_us: u64) -> SaveOptions {
    let format = WriteOptions {
        compression,
        checksum,
        ..WriteOptions::default()
    };
    SaveOptions {
        format,
        functions: std::sync::Arc::from(Vec::new()),
        key_delay_us,
        repl: None,
        encoder_threads: 1,
        incremental_fsync: true,
    }
}

/// Databases with fewer keys are encoded on the calling thread even when more may work.
const PARALLEL_KEYS: usize = 16;

/// The encoding threads a save in this process may use: every core, up to 8 (past that the
/// one thread that checksums and writes is the limit).
pub(crate) fn all_encoder_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Writes every database to `path` atomically; returns the number of keys written, and the
/// file `path` named before, still open (see `durable::install_keeping_old`).
pub(crate) fn save(
    keyspace: &Keyspace,
    path: &Path,
    options: SaveOptions,
    reporter: &mut Reporter,
) -> std::io::Result<(u64, Option<std::fs::File>)> {
    let temp = crate::persistence::jobs::temp_rdb_path(path, std::process::id());
    let result = write_snapshot(keyspace, &temp, options, false, reporter).and_then(|keys| {
        let replaced = amber_snapshot::durable::install_keeping_old(&temp, path)?;
        Ok((keys, replaced))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes every database to `path` in RDB form and fsyncs it (no rename); `aof_base` marks it
/// as the base of a multi-part AOF (the `aof-base` AUX field). Progress goes to `reporter`.
pub(crate) fn write_snapshot(
    keyspace: &Keyspace,
    path: &Path,
    options: SaveOptions,
    aof_base: bool,
    reporter: &mut Reporter,
) -> std::io::Result<u64> {
    let file = WritebackFile::new(File::create(path)?, options.incremental_fsync);
    let out = BufWriter::with_capacity(super::WRITE_BUFFER, file);
    let (keys, out) = write_rdb(keyspace, out, options, aof_base, reporter)?;
    let file = out.into_inner().map_err(|e| e.into_error())?.into_inner();
    file.sync_all()?;
    Ok(keys)
}

/// Writes every database in RDB form to `out` (a file, or replicas' sockets); returns the
/// number of keys written and `out`.
pub(crate) fn write_rdb<W: std::io::Write>(
    keyspace: &Keyspace,
    out: W,
    options: SaveOptions,
    aof_base: bool,
    reporter: &mut Reporter,
) -> std::io::Result<(u64, W)> {
    let mut writer = RdbWriter::new(out, options.format).map_err(to_io)?;
    let ctime = (unix_ms() / 1000).max(0) as u64;
    let used_memory = crate::alloc::used_memory() as u64;
    write_header(&mut writer, &options, aof_base, ctime, used_memory)?;
    let mut keys = 0;
    let mut yielder = amber_snapshot::Yielder::default();
    for (index, db) in keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        writer
            .select_db(index as u64, db.len() as u64, db.volatile_len() as u64)
            .map_err(to_io)?;
        if options.encoder_threads > 1 && options.key_delay_us == 0 && db.len() >= PARALLEL_KEYS {
            let before = keys;
            keys += super::rdb_parallel::write_db(
                &mut writer,
                db,
                options.format,
                options.encoder_threads,
                &mut |done| reporter.keys_processed(before + done),
            )
            .map_err(to_io)?;
            continue;
        }
        let mut failure = None;
        db.for_each_batched(|key, entry| {
            if let Err(error) = write_entry(&mut writer, key, entry) {
                failure = Some(to_io(error));
                return false;
            }
            yielder.item_done();
            keys += 1;
            if keys % 1024 == 0 || options.key_delay_us > 0 {
                reporter.keys_processed(keys);
            }
            if options.key_delay_us > 0 {
                std::thread::sleep(std::time::Duration::from_micros(options.key_delay_us));
            }
            true
        });
        if let Some(error) = failure {
            return Err(error);
        }
    }
    let out = writer.finish().map_err(to_io)?;
    reporter.finish(keys);
    Ok((keys, out))
}

/// Writes what comes before the keys: the AUX fields (creation time `ctime`, `used_memory`,
/// `aof-base`, the replication stream's), then the Functions libraries.
pub(crate) fn write_header<W: std::io::Write>(
    writer: &mut RdbWriter<W>,
    options: &SaveOptions,
    aof_base: bool,
    ctime: u64,
    used_memory: u64,
) -> std::io::Result<()> {
    writer
        .standard_aux(ctime, used_memory, aof_base)
        .map_err(to_io)?;
    if let Some(repl) = &options.repl {
        let replid = String::from_utf8_lossy(&repl.replid);
        writer
            .aux("repl-stream-db", &repl.stream_db.to_string())
            .and_then(|()| writer.aux("repl-id", &replid))
            .and_then(|()| writer.aux("repl-offset", &repl.offset.to_string()))
            .map_err(to_io)?;
    }
    for code in options.functions.iter() {
        writer.function(code).map_err(to_io)?;
    }
    Ok(())
}

/// Writes one key straight from its keyspace form (no neutral copy of the value).
pub(crate) fn write_entry<W: std::io::Write>(
    writer: &mut RdbWriter<W>,
    key: &[u8],
    entry: &Entry,
) -> Result<(), amber_rdb::WriteError> {
    let expire = entry.expire_at();
    match &entry.value {
        Value::Str(value) => writer.string_entry(key, &value.as_bytes(), expire),
        Value::List(items) => writer.list_entry(key, items.iter(), expire),
        Value::Set(set) => match &**set {
            SetValue::Ints(ints) => writer.intset_entry(key, ints, expire),
            SetValue::Table(table) => {
                writer.set_entry(key, table.iter().map(|(member, ())| member), expire)
            }
        },
        Value::Hash(hash) => writer.hash_entry(key, hash.iter(), expire),
        Value::Zset(zset) => writer.sorted_set_entry(key, zset.iter(), expire),
        Value::Stream(stream) => super::rdb_stream::write(writer, key, stream, expire),
    }
}

/// A writer's error as an I/O error (the file's own, or what the encoder refused).
pub(crate) fn to_io(error: amber_rdb::WriteError) -> std::io::Error {
    match error {
        amber_rdb::WriteError::Io(error) => error,
        other => std::io::Error::other(other.to_string()),
    }
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadStats {
    /// Keys stored.
    pub loaded: u64,
    /// Keys skipped because they had already expired.
    pub expired: u64,
    /// Keys skipped because their collection had no element (which Redis never writes, but
    /// a damaged or hand-made file may hold).
    pub empty: u64,
}

impl LoadStats {
    /// Redis's closing line of a load: `Done loading RDB, keys loaded: ..., keys expired: ...`.
    pub(crate) fn summary(&self) -> String {
        let mut line = format!(
            "Done loading RDB, keys loaded: {}, keys expired: {}",
            self.loaded, self.expired
        );
        if self.empty > 0 {
            line.push_str(&format!(", empty keys skipped: {}", self.empty));
        }
        line.push('.');
        line
    }
}

/// Loads an RDB file into the keyspace a step at a time, so the event loop can answer
/// `-LOADING` between steps. On any error the caller clears the keyspace; the file is never
/// modified.
///
/// Values are built straight from the file's encodings ([`from_raw`]), and keys are inserted
/// in batches whose table cache misses overlap ([`amber_keyspace::Db::insert_loaded`]).
pub(crate) struct Loader {
    reader: super::rdb_prefetch::Prefetch,
    /// Builds the values the helper thread handed over raw, within `limits`.
    builder: ValueBuilder,
    limits: EncodingLimits,
    current_db: u64,
    /// Keys stored and keys skipped as expired so far.
    pub stats: LoadStats,
    /// `key-load-delay`: microseconds to sleep per key (a test knob, as in Redis).
    pub key_delay_us: u64,
    /// Keep keys whose expiry has passed (an AOF's RDB base: the commands after it may still
    /// act on them, as they did when they ran; Redis loads them too).
    pub keep_expired: bool,
    /// The replication stream the file recorded (`repl-id`, `repl-offset`, `repl-stream-db`).
    pub repl: FileMeta,
    /// A step ends early rather than wait for the reader (a master's socket may be slow;
    /// the event loop must not wait on it).
    pub nonblocking: bool,
}

/// What a file records besides its keys: the `repl-*` AUX fields and the Functions
/// libraries, as read.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileMeta {
    /// The sources of the Functions libraries (`FUNCTION2` records), in file order.
    pub functions: Vec<Vec<u8>>,
    /// `repl-id`, when 40 characters long.
    pub replid: Option<String>,
    /// `repl-offset`.
    pub offset: Option<i64>,
    /// `repl-stream-db`.
    pub stream_db: Option<i64>,
}

impl FileMeta {
    /// The replication id and offset, when the file recorded a usable stream position (as
    /// Redis, which ignores a `repl-stream-db` of -1 written by old versions).
    pub(crate) fn position(&self) -> Option<(String, u64, usize)> {
        let offset = u64::try_from(self.offset?).ok()?;
        let db = usize::try_from(self.stream_db?).ok()?;
        Some((self.replid.clone()?, offset, db))
    }

    fn record(&mut self, key: &[u8], value: &[u8]) {
        let text = String::from_utf8_lossy(value);
        match key {
            b"repl-id" if value.len() == 40 => self.replid = Some(text.into_owned()),
            b"repl-offset" => self.offset = text.parse().ok(),
            b"repl-stream-db" => self.stream_db = text.parse().ok(),
            _ => {}
        }
    }
}

/// One decoded element of the file, ready to apply to the keyspace.
enum Loaded {
    SelectDb(u64),
    ResizeDb {
        keys: u64,
        volatile: u64,
    },
    Key {
        db: u64,
        key: SmallBytes,
        entry: Entry,
    },
    Expired,
    /// A collection without elements, skipped (its key's name).
    Empty(Vec<u8>),
}

/// Why an RDB file could not be loaded: what is wrong, and where.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RdbLoadError {
    /// The file could not be opened.
    #[error("Can't open {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The I/O error, with its kind.
        #[source]
        source: std::io::Error,
    },
    /// The file is damaged or truncated (the reader says where).
    #[error(transparent)]
    Format(#[from] amber_rdb::RdbError),
    /// A key's value cannot be stored.
    #[error("key '{key}' {reason} (the value ends at offset {offset})")]
    Value {
        /// The key, lossily as text.
        key: String,
        /// Why.
        reason: String,
        /// Where its value ends.
        offset: u64,
    },
    /// A key of a database this server does not have.
    #[error(
        "FATAL: Data file was created with a Redis server configured to handle more than {configured} databases"
    )]
    TooManyDatabases {
        /// `databases` here.
        configured: usize,
    },
}

/// Keys inserted together, so their cache misses in the table overlap.
const INSERT_BATCH: usize = 64;

impl Loader {
    /// Opens `path` and reads its header; values are built within `limits`.
    pub(crate) fn open(path: &Path, limits: &EncodingLimits) -> Result<Loader, RdbLoadError> {
        let open_error = |source| RdbLoadError::Open {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let reader = RdbReader::new(file)?;
        let reader = super::rdb_prefetch::Prefetch::start(reader, *limits).map_err(open_error)?;
        Ok(Loader::with_reader(reader, limits))
    }

    /// Reads an RDB from a master's socket; even its header is read on the helper thread, so
    /// nothing here waits for the master. Values are built within `limits`.
    pub(crate) fn from_socket<R: std::io::Read + Send + 'static>(
        source: R,
        limits: &EncodingLimits,
    ) -> Result<Loader, RdbLoadError> {
        let reader =
            super::rdb_prefetch::Prefetch::start_unread(source, *limits).map_err(|source| {
                RdbLoadError::Open {
                    path: "the master's socket".to_string(),
                    source,
                }
            })?;
        Ok(Loader::with_reader(reader, limits))
    }

    fn with_reader(reader: super::rdb_prefetch::Prefetch, limits: &EncodingLimits) -> Loader {
        Loader {
            reader,
            builder: ValueBuilder::default(),
            limits: *limits,
            current_db: 0,
            stats: LoadStats {
                loaded: 0,
                expired: 0,
                empty: 0,
            },
            key_delay_us: 0,
            keep_expired: false,
            repl: FileMeta::default(),
            nonblocking: false,
        }
    }

    /// Whether a step can run now without waiting on the reader (see `nonblocking`).
    pub(crate) fn ready_now(&mut self) -> bool {
        self.reader.ready()
    }

    /// Bytes read so far (`loading_loaded_bytes`); once the load is complete, the offset just
    /// past the RDB data (where an AOF base's command tail starts).
    pub(crate) fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Loads up to `max_keys` keys; `Ok(true)` once the whole file is in.
    pub(crate) fn step(
        &mut self,
        keyspace: &mut Keyspace,
        now_ms: i64,
        max_keys: usize,
    ) -> Result<bool, RdbLoadError> {
        let mut keys = 0;
        let mut batch = Vec::with_capacity(INSERT_BATCH);
        let mut batch_db = 0;
        // With `key-load-delay` a step sleeps per key: keep steps near 100 ms so clients are
        // still answered (`-LOADING`) between them.
        let max_keys = match self.key_delay_us {
            0 => max_keys,
            delay => max_keys.min((100_000 / delay).max(1) as usize),
        };
        while keys < max_keys {
            if self.nonblocking && !self.reader.ready() {
                break;
            }
            let expired_before = if self.keep_expired { i64::MIN } else { now_ms };
            let Some(loaded) = decode_item(
                &mut self.reader,
                expired_before,
                now_ms,
                &self.limits,
                &mut self.builder,
                &mut self.repl,
            )?
            else {
                keyspace.db(batch_db).insert_loaded(&mut batch);
                return Ok(true);
            };
            match loaded {
                Loaded::SelectDb(db) => self.current_db = db,
                Loaded::ResizeDb { keys, volatile } => {
                    keyspace.db(batch_db).insert_loaded(&mut batch);
                    self.reserve(keyspace, keys, volatile);
                }
                Loaded::Expired => {
                    self.delay();
                    self.stats.expired += 1;
                    keys += 1;
                }
                Loaded::Empty(key) => {
                    crate::warning!(
                        "rdbLoadObject skipping empty key: {}",
                        String::from_utf8_lossy(&key)
                    );
                    self.stats.empty += 1;
                    keys += 1;
                }
                Loaded::Key { db, key, entry } => {
                    self.delay();
                    let db = usize::try_from(db)
                        .ok()
                        .filter(|&db| db < keyspace.db_count())
                        .ok_or(RdbLoadError::TooManyDatabases {
                            configured: keyspace.db_count(),
                        })?;
                    if db != batch_db || batch.len() == INSERT_BATCH {
                        keyspace.db(batch_db).insert_loaded(&mut batch);
                        batch_db = db;
                    }
                    batch.push((key, entry));
                    self.stats.loaded += 1;
                    keys += 1;
                }
            }
        }
        keyspace.db(batch_db).insert_loaded(&mut batch);
        Ok(false)
    }

    /// Applies a RESIZEDB hint to the current database, capped so a corrupt hint cannot
    /// allocate much.
    fn reserve(&self, keyspace: &mut Keyspace, keys: u64, volatile: u64) {
        let Some(db) = usize::try_from(self.current_db)
            .ok()
            .filter(|&db| db < keyspace.db_count())
        else {
            return;
        };
        let cap = 1 << 26;
        keyspace
            .db(db)
            .reserve((keys as usize).min(cap), (volatile as usize).min(cap));
    }

    fn delay(&self) {
        if self.key_delay_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(self.key_delay_us));
        }
    }
}

/// Reads items up to the next one that changes the keyspace (AUX fields and the like are
/// skipped); `Ok(None)` at the end of the file.
fn decode_item(
    reader: &mut super::rdb_prefetch::Prefetch,
    expired_before: i64,
    now_ms: i64,
    limits: &EncodingLimits,
    builder: &mut ValueBuilder,
    repl: &mut FileMeta,
) -> Result<Option<Loaded>, RdbLoadError> {
    loop {
        let Some(item) = reader.next_item()? else {
            return Ok(None);
        };
        let entry = match item {
            Item::Entry(entry) => entry,
            Item::Aux { key, value } => {
                repl.record(&key, &value);
                continue;
            }
            Item::ResizeDb {
                db_size,
                expires_size,
            } => {
                return Ok(Some(Loaded::ResizeDb {
                    keys: db_size,
                    volatile: expires_size,
                }));
            }
            Item::SelectDb(db) => return Ok(Some(Loaded::SelectDb(db))),
            Item::Function(code) => {
                repl.functions.push(code);
                continue;
            }
            _ => continue,
        };
        if entry.expire_at_ms.is_some_and(|at| at <= expired_before) {
            reader.recycle_bytes(entry.key);
            return Ok(Some(Loaded::Expired));
        }
        let corrupt = |reason: String| RdbLoadError::Value {
            key: String::from_utf8_lossy(&entry.key).into_owned(),
            reason,
            offset: reader.offset(),
        };
        let value = match entry.value {
            Prepared::Built(built) => built.map_err(corrupt)?,
            Prepared::Raw(mut raw) => from_raw(&mut raw, limits, builder).map_err(corrupt)?,
        };
        if is_empty_collection(&value) {
            return Ok(Some(Loaded::Empty(entry.key)));
        }
        let key = SmallBytes::new(&entry.key);
        reader.recycle_bytes(entry.key);
        let mut stored = Entry::new(value, now_ms);
        stored.set_expire_at(entry.expire_at_ms);
        // As Redis's objectSetLRUOrLFU: a stored frequency under LFU, an idle time otherwise.
        match (amber_keyspace::access_clock(), entry.freq, entry.idle) {
            (amber_keyspace::AccessClock::Lfu { .. }, Some(freq), _) => {
                stored.set_frequency(freq, now_ms);
            }
            (amber_keyspace::AccessClock::Lru, _, Some(idle)) => stored.set_idle(idle, now_ms),
            _ => {}
        }
        return Ok(Some(Loaded::Key {
            db: entry.db,
            key,
            entry: stored,
        }));
    }
}

/// Loads `path` into an empty `keyspace` in one go. On any error nothing is kept and the file
/// is left untouched; the message says what is wrong, where, and in which key.
pub(crate) fn load(
    path: &Path,
    keyspace: &mut Keyspace,
    now_ms: i64,
    limits: &EncodingLimits,
) -> Result<(LoadStats, FileMeta), RdbLoadError> {
    let mut loader = Loader::open(path, limits)?;
    loop {
        match loader.step(keyspace, now_ms, usize::MAX) {
            Ok(true) => return Ok((loader.stats, loader.repl)),
            Ok(false) => {}
            Err(message) => {
                keyspace.clear();
                return Err(message);
            }
        }
    }
}

/// Parses `save` points: pairs of (seconds, changes).
pub(crate) fn save_points(config: &str) -> Vec<(u64, u64)> {
    let numbers: Vec<u64> = config
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    numbers
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .collect()
}

/// The thresholds that decide compact encodings when values are built from a file or payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodingLimits {
    /// `hash-max-listpack-*`
    pub hash: HashLimits,
    /// `set-max-intset-entries`
    pub max_intset: usize,
    /// `zset-max-listpack-*`
    pub zset: ZsetLimits,
    /// `list-max-listpack-size`
    pub list: ListLimits,
    /// `stream-node-max-bytes` / `stream-node-max-entries`
    pub stream: amber_keyspace::StreamLimits,
}

/// A keyspace value in the RDB crate's neutral form (for SAVE and DUMP).
pub(crate) fn to_rdb(value: &Value) -> amber_rdb::Value {
    match value {
        Value::Str(value) => amber_rdb::Value::String(value.as_bytes().into_owned()),
        Value::List(items) => {
            amber_rdb::Value::List(items.iter().map(|item| item.to_vec()).collect())
        }
        Value::Set(set) => amber_rdb::Value::Set(set.members()),
        Value::Hash(hash) => {
            amber_rdb::Value::Hash(hash.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect())
        }
        Value::Zset(zset) => {
            amber_rdb::Value::SortedSet(zset.iter().map(|(m, s)| (m.to_vec(), s)).collect())
        }
        Value::Stream(stream) => {
            amber_rdb::Value::Stream(Box::new(super::rdb_stream::to_rdb(stream)))
        }
    }
}

/// Builds a keyspace value from the RDB crate's form (for loading and RESTORE); `Err` names
/// the type when Amber cannot store it yet (streams, hash field TTLs, NaN scores).
pub(crate) fn from_rdb(
    value: &amber_rdb::Value,
    limits: &EncodingLimits,
) -> Result<Value, &'static str> {
    Ok(match value {
        amber_rdb::Value::String(bytes) => Value::Str(StrValue::from_bytes(bytes)),
        amber_rdb::Value::SortedSet(members) if members.iter().all(|(_, s)| !s.is_nan()) => {
            let members: Vec<(&[u8], f64)> =
                members.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            Value::Zset(ZsetValue::from_members(&members, limits.zset))
        }
        amber_rdb::Value::List(items) => Value::List(ListValue::from_items(
            items.iter().map(Vec::as_slice),
            limits.list,
        )),
        amber_rdb::Value::Set(members) => {
            let mut set = SetValue::default();
            for member in members {
                set.add(member, limits.max_intset);
            }
            Value::Set(std::sync::Arc::new(set))
        }
        amber_rdb::Value::Hash(pairs) => {
            hash_from_pairs(pairs.iter().map(|(f, v)| (f, v)), limits.hash)
        }
        amber_rdb::Value::HashWithFieldTtl(fields)
            if fields.iter().all(|(_, _, ttl)| ttl.is_none()) =>
        {
            hash_from_pairs(fields.iter().map(|(f, v, _)| (f, v)), limits.hash)
        }
        amber_rdb::Value::Stream(stream) => {
            Value::Stream(std::sync::Arc::new(super::rdb_stream::from_rdb(stream)))
        }
        other => return Err(other.type_name()),
    })
}

/// Builds a keyspace value straight from a value as the file stored it: the elements of
/// compact and plain collections go through `builder`'s reused buffers into their final
/// encoding, with no copy per element in between; a stream's nodes are decompressed, checked
/// and moved out of `raw` into the keyspace. `Err` says why the value cannot be stored.
pub(crate) fn from_raw(
    raw: &mut RawValue,
    limits: &EncodingLimits,
    builder: &mut ValueBuilder,
) -> Result<Value, String> {
    let type_byte = match raw {
        RawValue::Stream(packed) => {
            let stream = packed
                .unpack()
                .map_err(|e| format!("holds a corrupt value: {e}"))?;
            return Ok(Value::Stream(std::sync::Arc::new(
                super::rdb_stream::from_rdb_owned(stream),
            )));
        }
        RawValue::Decoded(value) => {
            return from_rdb(value, limits).map_err(|kind| {
                format!("holds a {kind} value, which this Amber version cannot store yet")
            });
        }
        RawValue::Compact { type_byte, .. } | RawValue::Plain { type_byte, .. } => *type_byte,
        RawValue::Quicklist(_) => types::LIST_QUICKLIST_2,
    };
    let label_type = match raw {
        RawValue::Quicklist(nodes)
            if nodes
                .iter()
                .any(|node| matches!(node, amber_rdb::QuicklistNode::Ziplist(_))) =>
        {
            types::LIST_QUICKLIST
        }
        _ => type_byte,
    };
    let label = types::blob_label(label_type);
    let corrupt = |e: amber_rdb::ErrorKind| {
        format!("holds a corrupt value: {label} integrity check failed: {e}")
    };
    builder.clear();
    let mut text: IntText = [0; 20];
    if matches!(type_byte, types::ZSET_ZIPLIST | types::ZSET_LISTPACK) {
        let mut member: Option<Element> = None;
        let mut bad_score = None;
        raw.visit(|element: Element| match member.take() {
            None => member = Some(element),
            Some(name) => {
                let score = match element {
                    Element::Int(number) => Ok(number as f64),
                    Element::Bytes(bytes) => amber_rdb::parse_score(bytes),
                };
                match score {
                    Ok(score) if !score.is_nan() => {
                        builder.push_scored(name.bytes(&mut text), score);
                    }
                    Ok(_) => bad_score = Some("holds a sorted set with a NaN score".to_string()),
                    Err(e) => bad_score = Some(corrupt(e)),
                }
            }
        })
        .map_err(corrupt)?;
        if let Some(error) = bad_score {
            return Err(error);
        }
        if member.is_some() {
            return Err("holds a sorted set member without a score".into());
        }
        return Ok(Value::Zset(builder.zset(limits.zset)));
    }
    raw.visit(|element: Element| builder.push(element.bytes(&mut text)))
        .map_err(corrupt)?;
    Ok(match type_byte {
        types::SET | types::SET_INTSET | types::SET_LISTPACK => {
            Value::Set(std::sync::Arc::new(builder.set(limits.max_intset)))
        }
        types::HASH | types::HASH_ZIPMAP | types::HASH_ZIPLIST | types::HASH_LISTPACK => {
            if builder.len() % 2 == 1 {
                return Err(format!(
                    "holds a corrupt value: {label} integrity check failed: a hash field without a value"
                ));
            }
            Value::Hash(builder.hash(limits.hash))
        }
        _ => Value::List(builder.list(limits.list)),
    })
}

/// Whether a loaded value is a collection without elements.
fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Str(_) => false,
        Value::Hash(hash) => hash.is_empty(),
        Value::Set(set) => set.is_empty(),
        Value::Zset(zset) => zset.is_empty(),
        Value::List(list) => list.is_empty(),
        // An empty stream is a value of its own (XADD MAXLEN 0, XGROUP CREATE MKSTREAM).
        Value::Stream(_) => false,
    }
}

fn hash_from_pairs<'a>(
    pairs: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    limits: HashLimits,
) -> Value {
    let pairs: Vec<(&[u8], &[u8])> = pairs.map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
    Value::Hash(HashValue::from_pairs(&pairs, limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EncodingLimits {
        EncodingLimits {
            hash: HashLimits::default(),
            max_intset: 512,
            zset: ZsetLimits::default(),
            list: ListLimits::default(),
            stream: amber_keyspace::StreamLimits::default(),
        }
    }

    /// A file with one key of each type, in the encodings Redis 7.0 picks, without checksum
    /// (so a corrupted byte is found by the value's own checks).
    fn sample_file() -> Vec<u8> {
        let options = WriteOptions {
            compression: false,
            checksum: false,
            ..WriteOptions::default()
        };
        let mut writer = RdbWriter::new(Vec::new(), options).unwrap();
        writer.select_db(0, 5, 0).unwrap();
        let bytes = |text: &str| text.as_bytes().to_vec();
        let values = [
            ("s", amber_rdb::Value::String(bytes("text"))),
            (
                "h",
                amber_rdb::Value::Hash(vec![
                    (bytes("f1"), bytes("v1")),
                    (bytes("f2"), bytes("17")),
                ]),
            ),
            (
                "l",
                amber_rdb::Value::List(vec![bytes("a"), bytes("-5"), bytes("c")]),
            ),
            ("i", amber_rdb::Value::Set(vec![bytes("3"), bytes("1")])),
            ("m", amber_rdb::Value::Set(vec![bytes("x"), bytes("y")])),
            (
                "z",
                amber_rdb::Value::SortedSet(vec![
                    (bytes("b"), 1.5),
                    (bytes("a"), 1.5),
                    (bytes("c"), -2.0),
                ]),
            ),
            ("x", sample_stream()),
        ];
        for (key, value) in &values {
            writer.entry(key.as_bytes(), value, None).unwrap();
        }
        writer.finish().unwrap()
    }

    /// A stream of five entries `f v` with ids 1-0 to 5-0, in one node.
    fn sample_stream() -> amber_rdb::Value {
        let mut stream = amber_keyspace::StreamValue::default();
        for ms in 1..=5 {
            let id = amber_keyspace::StreamId::new(ms, 0);
            stream
                .log
                .append(id, &[b"f", b"v"], amber_keyspace::StreamLimits::default())
                .unwrap();
        }
        amber_rdb::Value::Stream(Box::new(super::super::rdb_stream::to_rdb(&stream)))
    }

    fn load_bytes(bytes: &[u8]) -> Result<Keyspace, RdbLoadError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("amber-load-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dump.rdb");
        std::fs::write(&path, bytes).unwrap();
        let mut keyspace = Keyspace::new(16);
        let result = load(&path, &mut keyspace, 0, &limits());
        std::fs::remove_dir_all(&dir).unwrap();
        result.map(|_| keyspace)
    }

    #[test]
    fn every_type_loads_from_its_stored_encoding() {
        let mut keyspace = load_bytes(&sample_file()).unwrap();
        let db = keyspace.db(0);
        let value =
            |db: &amber_keyspace::Db, key: &str| db.raw(key.as_bytes()).unwrap().value.clone();
        let Value::Hash(hash) = value(db, "h") else {
            panic!("h is a hash")
        };
        assert_eq!(
            (hash.encoding(), hash.get(b"f2")),
            ("listpack", Some(&b"17"[..]))
        );
        let Value::List(list) = value(db, "l") else {
            panic!("l is a list")
        };
        let items: Vec<&[u8]> = list.iter().collect();
        assert_eq!(items, [&b"a"[..], b"-5", b"c"]);
        let Value::Set(ints) = value(db, "i") else {
            panic!("i is a set")
        };
        assert_eq!((ints.encoding(), ints.len()), ("intset", 2));
        let Value::Set(members) = value(db, "m") else {
            panic!("m is a set")
        };
        assert!(members.contains(b"x") && members.contains(b"y"));
        let Value::Zset(zset) = value(db, "z") else {
            panic!("z is a zset")
        };
        let order: Vec<(Vec<u8>, f64)> = zset.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(
            order,
            [
                (b"c".to_vec(), -2.0),
                (b"a".to_vec(), 1.5),
                (b"b".to_vec(), 1.5)
            ]
        );
        assert_eq!(zset.encoding(), "listpack");
        let Value::Stream(stream) = value(db, "x") else {
            panic!("x is a stream")
        };
        let ids: Vec<u64> = stream
            .log
            .range(
                amber_keyspace::StreamId::MIN,
                amber_keyspace::StreamId::MAX,
                false,
            )
            .map(|entry| entry.id.ms)
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_stream_node_that_fails_its_check_names_its_key() {
        let file = sample_file();
        // The node ends with the last entry's element count (4), its back-length and 0xff.
        let end = file.windows(3).rposition(|w| w == [4, 1, 0xff]).unwrap();
        let mut broken = file.clone();
        broken[end] = 5;
        let error = load_bytes(&broken)
            .err()
            .expect("the load fails")
            .to_string();
        assert!(
            error.contains("key 'x'") && error.contains("Stream listpack integrity check failed"),
            "{error}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// A file without checksum with any byte changed, or cut anywhere, loads or fails with
        /// a message; the value builders never panic on what the blobs contain.
        #[test]
        fn damaged_files_never_panic_the_loader(
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..4),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut file = sample_file();
            for (at, byte) in flips {
                let at = at % file.len();
                file[at] = byte;
            }
            let _ = load_bytes(&file);
            let cut = cut.index(file.len());
            let _ = load_bytes(&file[..cut]);
        }
    }

    #[test]
    fn a_corrupt_collection_names_its_key_and_offset() {
        let file = sample_file();
        // The hash's listpack ends with its 0xff end marker just before the list's key.
        let list_key = file.windows(3).position(|w| w == [18, 1, b'l']).unwrap();
        let mut broken = file.clone();
        assert_eq!(broken[list_key - 1], 0xff);
        broken[list_key - 1] = 0x81;
        let error = load_bytes(&broken)
            .err()
            .expect("the load fails")
            .to_string();
        assert!(
            error.contains("key 'h'") && error.contains("offset"),
            "{error}"
        );
    }
}
