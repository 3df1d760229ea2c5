//! Loading the AOF at start-up (and `DEBUG LOADAOF`): the manifest's base (RDB or commands)
//! then its incr files, or a legacy single `appendonly.aof`, replayed without the network path.
//! A cut tail is handled as `aof-load-truncated` says; corruption stops the load, and nothing is
//! deleted or rewritten by a failed load.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use amber_aof::check::{ZeroTail, zero_tail};
use amber_aof::{CommandReader, FileKind, Manifest, ReadError};
use amber_keyspace::WARM_BATCH;
use amber_protocol::{Protocol, ReplyWriter};

use crate::commands::{ClientState, Ctx, execute_loaded};
use crate::persistence::aof::AofPaths;
use crate::persistence::aof_prefetch::{CommandPrefetch, ReadCommand};
use crate::persistence::rdb::EncodingLimits;
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// What [`load`] returns when a shutdown was asked for during the load.
/// Why the AOF could not be loaded. Each message is the log line Redis writes for the same
/// failure (the caller logs it once).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AofLoadError {
    /// A shutdown was asked for while loading: the server exits without saving.
    #[error("shutdown requested while loading")]
    ShutdownWhileLoading,
    /// A file named by the manifest does not exist.
    #[error("Unable to obtain the AOF file {name} length. stat: {reason}")]
    Missing {
        /// The file.
        name: String,
        /// `strerror`'s words.
        reason: String,
    },
    /// A file could not be opened or read.
    #[error("Fatal error: can't open the append log file {name} for reading: {reason}")]
    Unreadable {
        /// The file.
        name: String,
        /// `strerror`'s words.
        reason: String,
    },
    /// Reading failed mid-file.
    #[error("Unrecoverable error reading the append only file {name}: {source}")]
    Io {
        /// The file.
        name: String,
        /// The I/O error, with its kind.
        #[source]
        source: std::io::Error,
    },
    /// The RDB part of a base file is damaged.
    #[error("Bad file format reading the RDB base of the append only file {name}: {reason}")]
    BadRdbBase {
        /// The file.
        name: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// A command could not be parsed.
    #[error("Bad file format reading the append only file {name} at offset {offset}: {what}")]
    BadFormat {
        /// The file.
        name: String,
        /// Where the bad command starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A command was refused by the server while replaying it.
    #[error("{reason} reading the append only file {name} at offset {offset}")]
    BadCommand {
        /// The file.
        name: String,
        /// Where the command starts.
        offset: u64,
        /// The server's error.
        reason: String,
    },
    /// A file other than the last ends mid-command.
    #[error(
        "Fatal error: the truncated file {name} is not the last file (it ends at offset {end}, last valid command ends at {valid})"
    )]
    TruncatedNotLast {
        /// The file.
        name: String,
        /// Where it ends.
        end: u64,
        /// Where its last complete command ends.
        valid: u64,
    },
    /// The last file ends mid-command and `aof-load-truncated` is off.
    #[error(
        "Unexpected end of file reading the append only file {name} at offset {end} (last valid command ends at {valid})"
    )]
    Truncated {
        /// The file.
        name: String,
        /// Where it ends.
        end: u64,
        /// Where its last complete command ends.
        valid: u64,
    },
    /// Cutting the tail of a truncated file failed.
    #[error("Error truncating the AOF file {name}: {source}")]
    CutFailed {
        /// The file.
        name: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Moving a legacy AOF into the directory failed.
    #[error("Failed to upgrade the legacy AOF file: {0}")]
    Upgrade(#[source] std::io::Error),
}

/// Commands applied between two yields to the event loop (which answers `-LOADING`).
const COMMANDS_PER_STEP: usize = 4096;

/// What is on disk to load.
pub(crate) enum Source {
    /// A multi-part directory with its manifest.
    MultiPart(Manifest),
    /// A Redis ≤ 6.2 single file (`dir/appendfilename`), upgraded after it loads.
    Legacy(PathBuf),
    /// No AOF yet.
    Nothing,
}

/// Why the AOF to load could not be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FindError {
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] amber_aof::ManifestError),
    /// The manifest exists but cannot be read.
    #[error("{0}")]
    Unreadable(String),
}

/// Finds what to load, with Redis's upgrade rules: a legacy `dir/appendfilename` is loaded
/// and moved into the directory when there is no AOF directory, when its manifest names no
/// file, or when an interrupted upgrade left a manifest naming only that file as the base
/// without the file having been moved yet. Otherwise the manifest is loaded, if any.
pub(crate) fn find(paths: &AofPaths) -> Result<Source, FindError> {
    let manifest_path = paths.manifest();
    let manifest = match std::fs::read(&manifest_path) {
        Ok(text) => Some(Manifest::parse(&text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(FindError::Unreadable(format!(
                "Fatal error: can't open the AOF manifest file {} for reading: {}",
                manifest_path.display(),
                crate::log::os_error(&error)
            )));
        }
    };
    let legacy = PathBuf::from(&paths.prefix);
    if legacy.is_file() {
        let interrupted_upgrade = |manifest: &Manifest| {
            manifest.incrs.is_empty()
                && manifest.base.as_ref().is_some_and(|base| {
                    base.name == paths.prefix && !paths.file(&base.name).exists()
                })
        };
        let upgrade = match &manifest {
            None => true,
            Some(manifest) => {
                (manifest.base.is_none() && manifest.incrs.is_empty())
                    || interrupted_upgrade(manifest)
            }
        } || !paths.dir.is_dir();
        if upgrade {
            return Ok(Source::Legacy(legacy));
        }
    }
    Ok(match manifest {
        Some(manifest) => Source::MultiPart(manifest),
        None => Source::Nothing,
    })
}

/// Loads `source` into the server, yielding to the event loop between steps (clients get
/// `-LOADING`); returns the manifest to continue appending with.
pub(crate) async fn load(
    shared: &Rc<RefCell<Server>>,
    paths: &AofPaths,
    source: Source,
) -> Result<Manifest, AofLoadError> {
    let mut job = LoadJob::new(&mut shared.borrow_mut(), paths, source);
    loop {
        let finished = job.step(&mut shared.borrow_mut());
        match finished {
            Some(result) => return result,
            None => tokio::task::yield_now().await,
        }
        if shared.borrow().shutdown_requested.is_some() {
            shared.borrow_mut().loading = None;
            return Err(AofLoadError::ShutdownWhileLoading);
        }
    }
}

/// Loads `source` in one go (`DEBUG LOADAOF`).
pub(crate) fn load_blocking(
    server: &mut Server,
    paths: &AofPaths,
    source: Source,
) -> Result<Manifest, AofLoadError> {
    let mut job = LoadJob::new(server, paths, source);
    loop {
        if let Some(result) = job.step(server) {
            return result;
        }
    }
}

/// One file of the load, in progress.
enum FileJob {
    /// The RDB part of a base file.
    Rdb(Box<crate::persistence::rdb::Loader>),
    /// Commands (after the RDB part, or the whole file).
    Commands(Box<CommandPrefetch>, Box<Replay>),
}

/// A load in progress, advanced a bounded amount of work per [`LoadJob::step`].
struct LoadJob {
    paths: AofPaths,
    files: Vec<(PathBuf, &'static str)>,
    manifest: Option<Manifest>,
    legacy: Option<PathBuf>,
    next: usize,
    current: Option<(FileJob, Instant)>,
    truncate_ok: bool,
    done_bytes: u64,
    started: Instant,
}

impl LoadJob {
    fn new(server: &mut Server, paths: &AofPaths, source: Source) -> LoadJob {
        let (files, manifest, legacy) = match source {
            Source::Nothing => (Vec::new(), Some(Manifest::default()), None),
            Source::MultiPart(manifest) => {
                let files = manifest
                    .load_order()
                    .map(|info| {
                        let kind = if info.kind == FileKind::Base {
                            "base"
                        } else {
                            "incr"
                        };
                        (paths.file(&info.name), kind)
                    })
                    .collect();
                (files, Some(manifest), None)
            }
            Source::Legacy(path) => (vec![(path.clone(), "legacy")], None, Some(path)),
        };
        let started = Instant::now();
        let total = files
            .iter()
            .filter_map(|(path, _)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum();
        if !files.is_empty() {
            server.loading = Some((started, total, 0));
        }
        LoadJob {
            paths: paths.clone(),
            files,
            manifest,
            legacy,
            next: 0,
            current: None,
            truncate_ok: server.config.get_bool("aof-load-truncated"),
            done_bytes: 0,
            started,
        }
    }

    /// Does a bounded amount of work; `Some` when the load is over.
    fn step(&mut self, server: &mut Server) -> Option<Result<Manifest, AofLoadError>> {
        // As in Redis, nothing expires while the log replays: its commands meet the keys as
        // they first did. Expired keys go once the load is over.
        // Clients only get -LOADING meanwhile: tables may resize at once, which costs less.
        server.keyspace.set_expiry_paused(true);
        amber_keyspace::resize_at_once(true);
        let result = self.advance(server);
        amber_keyspace::resize_at_once(false);
        server.keyspace.set_expiry_paused(false);
        let result = result?;
        server.loading = None;
        let result = result.and_then(|()| match self.legacy.take() {
            Some(legacy) => upgrade_legacy(&self.paths, &legacy),
            None => Ok(self.manifest.take().unwrap_or_default()),
        });
        match &result {
            Err(_) => server.keyspace.clear(),
            Ok(_) if !self.files.is_empty() => notice!(
                "DB loaded from append only file: {:.3} seconds",
                self.started.elapsed().as_secs_f64()
            ),
            Ok(_) => {}
        }
        Some(result)
    }

    fn advance(&mut self, server: &mut Server) -> Option<Result<(), AofLoadError>> {
        let Some((job, file_started)) = self.current.as_mut() else {
            let Some((path, _)) = self.files.get(self.next) else {
                return Some(Ok(()));
            };
            return match open_file(path, &server.encoding_limits()) {
                Ok(Some(job)) => {
                    self.current = Some((job, Instant::now()));
                    None
                }
                Ok(None) => {
                    self.next += 1;
                    None
                }
                Err(error) => Some(Err(error)),
            };
        };
        let (path, kind) = &self.files[self.next];
        let name = path.display().to_string();
        let last = self.next + 1 == self.files.len();
        let finished = match job {
            FileJob::Rdb(loader) => match rdb_step(server, loader, &name) {
                Ok(false) => None,
                Ok(true) => match install_functions(server, loader, &name)
                    .and_then(|()| commands_after(path, loader.offset()))
                {
                    Ok(next) => {
                        *job = next;
                        None
                    }
                    Err(error) => Some(Err(error)),
                },
                Err(error) => Some(Err(error)),
            },
            FileJob::Commands(commands, replay) => {
                let mut result = replay.step(server, commands, &name, last, self.truncate_ok);
                if let Some(Err(AofLoadError::BadFormat { offset, .. })) = &result
                    && *kind == "incr"
                {
                    let tail = replay.end_at_zeros(
                        path,
                        *offset,
                        commands.offset(),
                        last,
                        self.truncate_ok,
                    );
                    if tail.is_some() {
                        result = tail;
                    }
                }
                if let Some(Err(AofLoadError::BadFormat { .. })) = &result {
                    warning!(
                        "Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./amber-check-aof --fix <filename.manifest>"
                    );
                }
                if let Some(loading) = server.loading.as_mut() {
                    loading.2 = self.done_bytes + commands.offset();
                }
                result
            }
        };
        match finished? {
            Ok(()) => {
                notice!(
                    "DB loaded from {kind} file {}: {:.3} seconds",
                    path.file_name()
                        .map_or(name.clone(), |n| n.to_string_lossy().into_owned()),
                    file_started.elapsed().as_secs_f64()
                );
                self.done_bytes += std::fs::metadata(path).map_or(0, |m| m.len());
                self.current = None;
                self.next += 1;
                None
            }
            Err(error) => Some(Err(error)),
        }
    }
}

/// Opens one file: its RDB part first if it starts with `REDIS`; `None` if it is empty.
fn open_file(path: &Path, limits: &EncodingLimits) -> Result<Option<FileJob>, AofLoadError> {
    let name = path.display();
    let mut file = File::open(path).map_err(|e| {
        let file_name = path
            .file_name()
            .map_or(name.to_string(), |n| n.to_string_lossy().into_owned());
        let reason = crate::log::os_error(&e);
        if e.kind() == std::io::ErrorKind::NotFound {
            AofLoadError::Missing {
                name: file_name,
                reason,
            }
        } else {
            AofLoadError::Unreadable {
                name: file_name,
                reason,
            }
        }
    })?;
    let io = |source| AofLoadError::Io {
        name: name.to_string(),
        source,
    };
    let size = file.metadata().map_err(io)?.len();
    if size == 0 {
        return Ok(None);
    }
    let mut magic = [0u8; 5];
    if file.read_exact(&mut magic).is_ok() && &magic == b"REDIS" {
        notice!("Reading RDB base file on AOF loading...");
        let loader = crate::persistence::rdb::Loader::open(path, limits).map_err(|reason| {
            AofLoadError::BadRdbBase {
                name: name.to_string(),
                reason: reason.to_string(),
            }
        })?;
        return Ok(Some(FileJob::Rdb(Box::new(loader))));
    }
    commands_after(path, 0).map(Some)
}

/// Installs the Functions libraries an AOF's RDB base recorded.
fn install_functions(
    server: &mut Server,
    loader: &crate::persistence::rdb::Loader,
    name: &str,
) -> Result<(), AofLoadError> {
    server
        .replace_functions(&loader.repl.functions)
        .map_err(|reason| AofLoadError::BadRdbBase {
            name: name.to_string(),
            reason: format!("its Functions libraries do not load: {reason}"),
        })
}

/// The commands of `path` from `offset` on, read ahead on a helper thread.
fn commands_after(path: &Path, offset: u64) -> Result<FileJob, AofLoadError> {
    let io = |source| AofLoadError::Io {
        name: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let reader = CommandReader::new(BufReader::with_capacity(1 << 20, file), offset);
    let commands = CommandPrefetch::start(reader).map_err(io)?;
    Ok(FileJob::Commands(
        Box::new(commands),
        Box::new(Replay {
            client: ClientState::internal(),
            out: ReplyWriter::new(Protocol::Resp2),
            before_multi: None,
            unwarmed: 0,
        }),
    ))
}

/// Loads up to 1024 keys of an RDB part; `Ok(true)` when it is complete.
fn rdb_step(
    server: &mut Server,
    loader: &mut crate::persistence::rdb::Loader,
    name: &str,
) -> Result<bool, AofLoadError> {
    loader.key_delay_us = server.config.get_i64("key-load-delay").max(0) as u64;
    loader.keep_expired = true;
    let now = unix_ms();
    let done = loader
        .step(&mut server.keyspace, now, 1024)
        .map_err(|reason| {
            warning!("Internal error in RDB reading {name}: {reason}");
            AofLoadError::BadRdbBase {
                name: name.to_string(),
                reason: reason.to_string(),
            }
        })?;
    if let Some(loading) = server.loading.as_mut() {
        loading.2 = loader.offset();
    }
    if done {
        let stats = loader.stats;
        notice!("{}", stats.summary());
        server.rdb.last_load = (stats.loaded, stats.expired);
    }
    Ok(done)
}

/// Moves a loaded legacy `appendonly.aof` into the directory as its base and writes the
/// manifest, as Redis 7 upgrades such a file.
fn upgrade_legacy(paths: &AofPaths, legacy: &Path) -> Result<Manifest, AofLoadError> {
    let failed = AofLoadError::Upgrade;
    std::fs::create_dir_all(&paths.dir).map_err(failed)?;
    let name = paths.prefix.clone();
    let mut manifest = Manifest::default();
    manifest.replace_base(name.clone(), 1);
    amber_snapshot::durable::install(legacy, &paths.file(&name)).map_err(failed)?;
    amber_aof::manifest::persist(&paths.dir, &paths.prefix, &manifest).map_err(failed)?;
    notice!("Successfully migrated an old-style AOF into the AOF directory");
    Ok(manifest)
}

/// The state of one file's replay.
struct Replay {
    client: ClientState,
    out: ReplyWriter,
    /// Where the open MULTI block started, if one is open.
    before_multi: Option<u64>,
    /// Commands left before the keys of the next ones are brought into the cache.
    unwarmed: usize,
}

impl Replay {
    /// Applies up to [`COMMANDS_PER_STEP`] commands; `Some` once the file is done or failed.
    fn step(
        &mut self,
        server: &mut Server,
        commands: &mut CommandPrefetch,
        name: &str,
        last: bool,
        truncate_ok: bool,
    ) -> Option<Result<(), AofLoadError>> {
        server.now_ms = unix_ms();
        for _ in 0..COMMANDS_PER_STEP {
            let command = match commands.next_command() {
                Ok(Some(command)) => command,
                Ok(None) => return Some(self.finish(name, last, truncate_ok)),
                Err(error) => return Some(self.read_failed(name, error, last, truncate_ok)),
            };
            self.warm_keys(server, &command, commands.upcoming());
            let args = command.args;
            if args[0].eq_ignore_ascii_case(b"multi") {
                self.before_multi = Some(command.start);
            } else if args[0].eq_ignore_ascii_case(b"exec")
                || args[0].eq_ignore_ascii_case(b"discard")
            {
                self.before_multi = None;
            }
            let mut ctx = Ctx {
                server: &mut *server,
                client: &mut self.client,
                out: &mut self.out,
            };
            if let Err(reason) = execute_loaded(&mut ctx, &args) {
                return Some(Err(AofLoadError::BadCommand {
                    name: name.to_string(),
                    offset: command.start,
                    reason,
                }));
            }
            self.out.buffer().clear();
        }
        None
    }

    /// Every [`WARM_BATCH`] commands, brings the table entries of the next ones' first keys
    /// into the cache together, as a pipelined batch from a client is (on a large keyspace
    /// each lookup is otherwise a chain of cache misses taken alone). A command whose second
    /// argument is not a key (SELECT) only warms nothing useful.
    fn warm_keys(&mut self, server: &Server, command: &ReadCommand, upcoming: &[ReadCommand]) {
        if self.unwarmed > 0 {
            self.unwarmed -= 1;
            return;
        }
        self.unwarmed = WARM_BATCH - 1;
        let keys = std::iter::once(command)
            .chain(upcoming)
            .take(WARM_BATCH)
            .filter_map(|command| command.args.get(1))
            .map(|key| key.as_ref());
        server.keyspace.db_ref(self.client.db).warm_keys(keys);
    }

    /// Where reading the file stopped early: a cut tail, corruption or an I/O error.
    fn read_failed(
        &mut self,
        name: &str,
        error: ReadError,
        last: bool,
        truncate_ok: bool,
    ) -> Result<(), AofLoadError> {
        match error {
            ReadError::Truncated {
                offset,
                valid_up_to,
            } => {
                let valid = self.before_multi.unwrap_or(valid_up_to);
                cut_tail(name, offset, valid, last, truncate_ok)
            }
            ReadError::Format { offset, what } => Err(AofLoadError::BadFormat {
                name: name.to_string(),
                offset,
                what,
            }),
            ReadError::Io(source) => Err(AofLoadError::Io {
                name: name.to_string(),
                source,
            }),
        }
    }

    /// At the end of the file: an open MULTI block is discarded (the file cut before it).
    fn finish(&mut self, name: &str, last: bool, truncate_ok: bool) -> Result<(), AofLoadError> {
        let Some(valid) = self.before_multi else {
            return Ok(());
        };
        warning!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        self.client.transaction = None;
        cut_tail(name, valid, valid, last, truncate_ok)
    }
}

impl Replay {
    /// An incr file that a crash left longer than its content (`aof-preallocate`): zeros after
    /// the last command are cut off; a command cut short before them is a cut tail (see
    /// [`amber_aof::check::zero_tail`]). `None` for anything else.
    fn end_at_zeros(
        &mut self,
        path: &Path,
        error_at: u64,
        command_start: u64,
        last: bool,
        truncate_ok: bool,
    ) -> Option<Result<(), AofLoadError>> {
        let name = path.display().to_string();
        match zero_tail(path, error_at, command_start).ok()?? {
            ZeroTail::Padding => {
                notice!(
                    "Removing the preallocated space (zeros) after the last command of the AOF {name}"
                );
                if let Err(source) = cut_file(path, command_start) {
                    return Some(Err(AofLoadError::CutFailed { name, source }));
                }
                Some(self.finish(&name, last, truncate_ok))
            }
            ZeroTail::CutCommand => {
                let end = std::fs::metadata(path).map_or(command_start, |m| m.len());
                let valid = self.before_multi.unwrap_or(command_start);
                Some(cut_tail(&name, end, valid, last, truncate_ok))
            }
        }
    }
}

/// Cuts `path` to `len` bytes, durably.
fn cut_file(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// A file that ends mid-command (or mid-transaction): cut at `valid` when allowed.
fn cut_tail(
    name: &str,
    end: u64,
    valid: u64,
    last: bool,
    truncate_ok: bool,
) -> Result<(), AofLoadError> {
    if !last {
        return Err(AofLoadError::TruncatedNotLast {
            name: name.to_string(),
            end,
            valid,
        });
    }
    if !truncate_ok {
        warning!(
            "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./amber-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
        );
        return Err(AofLoadError::Truncated {
            name: name.to_string(),
            end,
            valid,
        });
    }
    warning!("!!! Warning: short read while loading the AOF file {name}!!!");
    warning!("!!! Truncating the AOF {name} at offset {valid} !!!");
    if let Err(source) = cut_file(Path::new(name), valid) {
        return Err(AofLoadError::CutFailed {
            name: name.to_string(),
            source,
        });
    }
    warning!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(())
}
