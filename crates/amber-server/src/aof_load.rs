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

use amber_aof::{CommandReader, FileInfo, FileKind, Item, Manifest, ReadError};
use amber_protocol::{Protocol, ReplyWriter};
use bytes::Bytes;

use crate::aof::AofPaths;
use crate::commands::{ClientState, Ctx, execute_loaded};
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// Commands applied between two yields to the event loop (which answers `-LOADING`).
const COMMANDS_PER_STEP: usize = 4096;

/// What is on disk to load.
pub enum Source {
    /// A multi-part directory with its manifest.
    MultiPart(Manifest),
    /// A Redis ≤ 6.2 single file (`dir/appendfilename`), upgraded after it loads.
    Legacy(PathBuf),
    /// No AOF yet.
    Nothing,
}

/// Finds what to load: the manifest, else a legacy file, else nothing.
pub fn find(paths: &AofPaths) -> Result<Source, String> {
    let manifest_path = paths.manifest();
    match std::fs::read(&manifest_path) {
        Ok(text) => {
            let manifest = Manifest::parse(&text).map_err(|e| e.to_string())?;
            return Ok(Source::MultiPart(manifest));
        }
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "Unable to open the AOF manifest file {}: {error}",
                manifest_path.display()
            ));
        }
        Err(_) => {}
    }
    let legacy = PathBuf::from(&paths.prefix);
    if legacy.is_file() {
        return Ok(Source::Legacy(legacy));
    }
    Ok(Source::Nothing)
}

/// Loads `source` into the server; returns the manifest to continue appending with.
pub async fn load(
    shared: &Rc<RefCell<Server>>,
    paths: &AofPaths,
    source: Source,
) -> Result<Manifest, String> {
    let started = Instant::now();
    let truncate_ok = shared.borrow().config.get_bool("aof-load-truncated");
    let result = match source {
        Source::Nothing => return Ok(Manifest::default()),
        Source::MultiPart(manifest) => {
            let files: Vec<FileInfo> = manifest.load_order().cloned().collect();
            let total: u64 = files
                .iter()
                .filter_map(|f| std::fs::metadata(paths.file(&f.name)).ok())
                .map(|m| m.len())
                .sum();
            shared.borrow_mut().loading = Some((started, total, 0));
            let mut done = 0;
            let mut result = Ok(());
            for (index, info) in files.iter().enumerate() {
                let path = paths.file(&info.name);
                let last = index + 1 == files.len();
                let kind = if info.kind == FileKind::Base {
                    "base"
                } else {
                    "incr"
                };
                let file_started = Instant::now();
                match load_file(shared, &path, last, truncate_ok, done).await {
                    Ok(size) => {
                        done += size;
                        notice!(
                            "DB loaded from {kind} file {}: {:.3} seconds",
                            info.name,
                            file_started.elapsed().as_secs_f64()
                        );
                    }
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
            result.map(|()| manifest)
        }
        Source::Legacy(path) => {
            let total = std::fs::metadata(&path).map_or(0, |m| m.len());
            shared.borrow_mut().loading = Some((started, total, 0));
            match load_file(shared, &path, true, truncate_ok, 0).await {
                Ok(_) => upgrade_legacy(paths, &path),
                Err(error) => Err(error),
            }
        }
    };
    let mut server = shared.borrow_mut();
    server.loading = None;
    if result.is_err() {
        server.keyspace.clear();
    } else {
        notice!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

/// Moves a loaded legacy `appendonly.aof` into the directory as its base and writes the
/// manifest, as Redis 7 upgrades such a file.
fn upgrade_legacy(paths: &AofPaths, legacy: &Path) -> Result<Manifest, String> {
    let failed = |e: std::io::Error| format!("Failed to upgrade the legacy AOF file: {e}");
    std::fs::create_dir_all(&paths.dir).map_err(failed)?;
    let name = paths.prefix.clone();
    let mut manifest = Manifest::default();
    manifest.replace_base(name.clone(), 1);
    std::fs::rename(legacy, paths.file(&name)).map_err(failed)?;
    amber_aof::manifest::persist(&paths.dir, &paths.prefix, &manifest).map_err(failed)?;
    notice!("Successfully migrated an old-style AOF into the AOF directory");
    Ok(manifest)
}

/// Loads one file (an RDB part if it starts with `REDIS`, then commands); returns its size.
async fn load_file(
    shared: &Rc<RefCell<Server>>,
    path: &Path,
    last: bool,
    truncate_ok: bool,
    done_before: u64,
) -> Result<u64, String> {
    let name = path.display().to_string();
    let mut file = File::open(path)
        .map_err(|e| format!("The AOF file {name} doesn't exist or can't be opened: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size == 0 {
        return Ok(0);
    }
    let mut magic = [0u8; 5];
    let is_rdb = file.read_exact(&mut magic).is_ok() && &magic == b"REDIS";
    let start = if is_rdb {
        notice!("Reading RDB base file on AOF loading...");
        load_rdb_part(shared, path, done_before).await?
    } else {
        0
    };
    file.seek(SeekFrom::Start(start))
        .map_err(|e| e.to_string())?;
    let reader = CommandReader::new(BufReader::with_capacity(1 << 20, file), start);
    replay(shared, reader, &name, last, truncate_ok, done_before).await?;
    Ok(size)
}

/// Loads the RDB preamble of a base file; returns where its commands (if any) start.
async fn load_rdb_part(
    shared: &Rc<RefCell<Server>>,
    path: &Path,
    done_before: u64,
) -> Result<u64, String> {
    let (limits, delay) = {
        let server = shared.borrow();
        let delay = server.config.get_i64("key-load-delay").max(0) as u64;
        (server.encoding_limits(), delay)
    };
    let fail = |message: String| {
        warning!(
            "Internal error in RDB reading {}: {message}",
            path.display()
        );
        format!("Bad file format reading the RDB base of the append only file: {message}")
    };
    let mut loader = crate::persistence::Loader::open(path).map_err(fail)?;
    loader.key_delay_us = delay;
    let now = unix_ms();
    loop {
        let step = {
            let mut server = shared.borrow_mut();
            let result = loader.step(&mut server.keyspace, now, &limits, 1024);
            if let Some(loading) = server.loading.as_mut() {
                loading.2 = done_before + loader.offset();
            }
            result
        };
        match step {
            Ok(true) => break,
            Ok(false) => tokio::task::yield_now().await,
            Err(message) => return Err(fail(message)),
        }
    }
    let stats = loader.stats;
    notice!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        stats.loaded,
        stats.expired
    );
    shared.borrow_mut().rdb.last_load = (stats.loaded, stats.expired);
    Ok(loader.offset())
}

/// Replays the commands of one file through a client that never replies, yielding to the
/// event loop between steps.
async fn replay<R: std::io::BufRead>(
    shared: &Rc<RefCell<Server>>,
    mut reader: CommandReader<R>,
    name: &str,
    last: bool,
    truncate_ok: bool,
    done_before: u64,
) -> Result<(), String> {
    let mut replay = Replay {
        client: ClientState::internal(),
        out: ReplyWriter::new(Protocol::Resp2),
        before_multi: None,
    };
    loop {
        let finished = {
            let mut server = shared.borrow_mut();
            let finished = replay.step(&mut server, &mut reader, name, last, truncate_ok);
            if let Some(loading) = server.loading.as_mut() {
                loading.2 = done_before + reader.offset();
            }
            finished
        };
        match finished {
            Some(result) => return result,
            None => tokio::task::yield_now().await,
        }
    }
}

/// The state of one file's replay.
struct Replay {
    client: ClientState,
    out: ReplyWriter,
    /// Where the open MULTI block started, if one is open.
    before_multi: Option<u64>,
}

impl Replay {
    /// Applies up to [`COMMANDS_PER_STEP`] commands; `Some` once the file is done or failed.
    fn step<R: std::io::BufRead>(
        &mut self,
        server: &mut Server,
        reader: &mut CommandReader<R>,
        name: &str,
        last: bool,
        truncate_ok: bool,
    ) -> Option<Result<(), String>> {
        server.now_ms = unix_ms();
        for _ in 0..COMMANDS_PER_STEP {
            let command_start = reader.offset();
            let args = match reader.next_item() {
                Ok(Some(Item::Command(args))) => args,
                Ok(Some(Item::Annotation(_))) => continue,
                Ok(None) => return Some(self.finish(name, last, truncate_ok)),
                Err(ReadError::Truncated {
                    offset,
                    valid_up_to,
                }) => {
                    let valid = self.before_multi.unwrap_or(valid_up_to);
                    return Some(cut_tail(name, offset, valid, last, truncate_ok));
                }
                Err(ReadError::Format { offset, what }) => {
                    warning!(
                        "Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./amber-check-aof --fix <filename.manifest>"
                    );
                    return Some(Err(format!(
                        "Bad file format reading the append only file {name} at offset {offset}: {what}"
                    )));
                }
                Err(ReadError::Io(error)) => {
                    return Some(Err(format!(
                        "Unrecoverable error reading the append only file {name}: {error}"
                    )));
                }
            };
            if args[0].eq_ignore_ascii_case(b"multi") {
                self.before_multi = Some(command_start);
            } else if args[0].eq_ignore_ascii_case(b"exec")
                || args[0].eq_ignore_ascii_case(b"discard")
            {
                self.before_multi = None;
            }
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            let mut ctx = Ctx {
                server: &mut *server,
                client: &mut self.client,
                out: &mut self.out,
            };
            if let Err(error) = execute_loaded(&mut ctx, &args) {
                return Some(Err(format!(
                    "{error} reading the append only file {name} at offset {command_start}"
                )));
            }
            self.out.buffer().clear();
        }
        None
    }

    /// At the end of the file: an open MULTI block is discarded (the file cut before it).
    fn finish(&mut self, name: &str, last: bool, truncate_ok: bool) -> Result<(), String> {
        let Some(valid) = self.before_multi else {
            return Ok(());
        };
        warning!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        self.client.transaction = None;
        cut_tail(name, valid, valid, last, truncate_ok)
    }
}

/// A file that ends mid-command (or mid-transaction): cut at `valid` when allowed.
fn cut_tail(name: &str, end: u64, valid: u64, last: bool, truncate_ok: bool) -> Result<(), String> {
    if !last {
        return Err(format!(
            "Fatal error: the truncated file {name} is not the last file (it ends at offset {end}, last valid command ends at {valid})"
        ));
    }
    if !truncate_ok {
        warning!(
            "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./amber-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
        );
        return Err(format!(
            "Unexpected end of file reading the append only file {name} at offset {end} (last valid command ends at {valid})"
        ));
    }
    warning!("!!! Warning: short read while loading the AOF file {name}!!!");
    warning!("!!! Truncating the AOF {name} at offset {valid} !!!");
    let truncated = std::fs::OpenOptions::new()
        .write(true)
        .open(name)
        .and_then(|file| {
            file.set_len(valid)?;
            file.sync_all()
        });
    if let Err(error) = truncated {
        warning!("Error truncating the AOF file {name}: {error}");
        return Err(format!("Error truncating the AOF file {name}: {error}"));
    }
    warning!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(())
}
