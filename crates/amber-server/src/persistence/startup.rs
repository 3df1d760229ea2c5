//! Start-up loading and the final save: the AOF or RDB file read into the keyspace before
//! clients are served (answering `-LOADING` meanwhile), and what happens to persistence when the
//! server stops.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use crate::server::{Server, ShutdownRequest, unix_ms};
use crate::{notice, warning};

/// Loads the AOF (the RDB file is ignored when AOF is on, as in Redis), then opens it for
/// appending: a first start writes the base and the first incr file.
pub(crate) async fn load_aof(shared: &Rc<RefCell<Server>>) -> anyhow::Result<()> {
    let paths = crate::persistence::aof::AofPaths::from_config(&shared.borrow().config);
    let fatal = |message: String| {
        warning!("{message}");
        anyhow::Error::new(AlreadyLogged)
    };
    let source = crate::persistence::aof_load::find(&paths).map_err(|error| match error {
        crate::persistence::aof_load::FindError::Manifest(error) => {
            log_manifest_error(&paths.manifest(), &error);
            anyhow::Error::new(AlreadyLogged)
        }
        crate::persistence::aof_load::FindError::Unreadable(message) => fatal(message),
    })?;
    remove_temp_files(&paths.dir);
    remove_dead_snapshot_temps(std::path::Path::new(
        shared.borrow().config.get("dbfilename"),
    ));
    let mut manifest = crate::persistence::aof_load::load(shared, &paths, source)
        .await
        .map_err(|error| match error {
            crate::persistence::aof_load::AofLoadError::ShutdownWhileLoading => {
                anyhow::Error::new(ShutdownWhileLoading)
            }
            other => fatal(other.to_string()),
        })?;
    let keep_history = {
        let config = &shared.borrow().config;
        config.get_bool("aof-disable-auto-gc")
            || crate::persistence::archive::archiving_configured(config)
    };
    if !keep_history {
        crate::persistence::aof::delete_history(&paths, &mut manifest);
    }
    let mut server = shared.borrow_mut();
    let format = server.aof_base_format();
    let server = &mut *server;
    server
        .aof
        .open(&paths, manifest, &server.keyspace, format)
        .map_err(|e| fatal(format!("Can't open the append-only file: {e}")))?;
    server.refresh_recording();
    Ok(())
}

/// A shutdown (signal or SHUTDOWN) arrived while the dataset was loading: the server stops
/// without saving, as Redis does.
#[derive(Debug, thiserror::Error)]
#[error("shutdown requested while loading")]
pub(crate) struct ShutdownWhileLoading;

/// A start-up failure whose cause is already in the log, in Redis's words: nothing more is
/// printed before the process exits.
#[derive(Debug, thiserror::Error)]
#[error("start-up failed (see the log lines above)")]
pub struct AlreadyLogged;

/// Logs an unreadable manifest as Redis does: a banner, the line and the reason.
fn log_manifest_error(path: &std::path::Path, error: &amber_aof::ManifestError) {
    warning!("\n*** FATAL AOF MANIFEST FILE ERROR ***\n");
    if let Some(number) = error.line() {
        let text = std::fs::read(path).unwrap_or_default();
        let line = text
            .split(|&b| b == b'\n')
            .nth(number - 1)
            .unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        warning!("Reading the manifest file, at line {number}\n");
        warning!(">>> '{}'\n", line.trim_matches([' ', '\t', '\r']));
    }
    warning!("{}\n", error.reason());
}

/// Removes `temp-*` files a killed rewrite left in the AOF directory (they are never named by a
/// manifest, so nothing can need them).
fn remove_temp_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("temp-") {
            notice!(
                "Removing the leftover temporary AOF file {}",
                name.to_string_lossy()
            );
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes the `temp-<pid>.rdb` files next to `dbfilename` whose writer is gone: a snapshot
/// cut short by a crash or `kill -9` (a forkless one is written by the server itself, so it
/// cannot finish after the server died). A live process's file is left alone.
pub(crate) fn remove_dead_snapshot_temps(dbfilename: &std::path::Path) {
    let dir = match dbfilename.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("temp-")
            .and_then(|rest| rest.strip_suffix(".rdb"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let alive =
            pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive || pid as u32 == std::process::id() {
            notice!(
                "Removing the leftover temporary snapshot file {name} of a save that did not finish"
            );
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Loads `dbfilename` when it exists, a batch of keys at a time, answering `-LOADING` to
/// clients meanwhile; a file that cannot be read stops start-up and is left untouched.
pub(crate) async fn load_snapshot(shared: &Rc<RefCell<Server>>) -> anyhow::Result<()> {
    let (path, limits, delay) = {
        let server = shared.borrow();
        let path = std::path::PathBuf::from(server.config.get("dbfilename"));
        let delay = server.config.get_i64("key-load-delay").max(0) as u64;
        (path, server.encoding_limits(), delay)
    };
    remove_dead_snapshot_temps(&path);
    if !path.exists() {
        return Ok(());
    }
    let started = Instant::now();
    let now = unix_ms();
    let fail = |message: crate::persistence::rdb::RdbLoadError| -> anyhow::Error {
        let failure = format!(
            "Internal error in RDB reading {}: {message}",
            path.display()
        );
        warning!("{failure}");
        // As Redis: the whole file is checked and the report logged, so the operator sees
        // what it holds and where it breaks without running the checker.
        amber_rdb::check::check_file(&path, now, Some(&failure), &mut |line| {
            crate::log::raw(&format!("{line}\n"))
        });
        warning!("Terminating server after rdb file reading failure.");
        anyhow::Error::new(AlreadyLogged)
    };
    let mut loader = crate::persistence::rdb::Loader::open(&path, &limits).map_err(|message| {
        warning!("Fatal error loading the DB: {message}. Exiting.");
        anyhow::Error::new(AlreadyLogged)
    })?;
    loader.key_delay_us = delay;
    // A replica keeps keys that expired: its master will send their `DEL`s.
    loader.keep_expired = shared.borrow().replication.is_replica();
    let total = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    shared.borrow_mut().loading = Some((started, total, 0));
    loop {
        let step = {
            let mut server = shared.borrow_mut();
            let result = loader.step(&mut server.keyspace, now, 1024);
            server.loading = Some((started, total, loader.offset()));
            if result.is_err() {
                server.keyspace.clear();
            }
            result
        };
        match step {
            Ok(true) => break,
            Ok(false) => {
                tokio::task::yield_now().await;
                if shared.borrow().shutdown_requested.is_some() {
                    shared.borrow_mut().loading = None;
                    return Err(anyhow::Error::new(ShutdownWhileLoading));
                }
            }
            Err(message) => return Err(fail(message)),
        }
    }
    let mut server = shared.borrow_mut();
    server.loading = None;
    let stats = loader.stats;
    notice!("{}", stats.summary());
    notice!(
        "DB loaded from disk: {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    server.rdb.last_load = (stats.loaded, stats.expired);
    if let Err(error) = server.replace_functions(&loader.repl.functions) {
        warning!(
            "Failed loading the Functions libraries of {}: {error}",
            path.display()
        );
        return Err(anyhow::Error::new(AlreadyLogged));
    }
    if let Some((replid, offset, stream_db)) = loader.repl.position() {
        server.replication.restore(replid, offset);
        if let Some(link) = server.replication.master.as_mut() {
            link.stream_db = stream_db;
        }
    }
    Ok(())
}

/// Saves before exiting when asked to (SHUTDOWN SAVE) or when save points are configured
/// (unless SHUTDOWN NOSAVE). Returns false when the save failed and the shutdown is cancelled.
pub(crate) fn final_save(server: &mut Server) -> bool {
    let request = server.shutdown_requested.take();
    let (explicit, force) = match request {
        Some(ShutdownRequest::Command { save, force }) => {
            warning!("User requested shutdown...");
            (save, force)
        }
        _ => (None, false),
    };
    server.kill_debug_sessions();
    server.kill_job();
    if server.aof.is_on() {
        notice!("Calling fsync() on the AOF file.");
        if let Err(error) = server.aof.sync_now() {
            warning!("Error flushing the AOF file on shutdown: {error}");
        }
    }
    let wanted = explicit.unwrap_or_else(|| !server.config.get("save").is_empty());
    if !wanted {
        return true;
    }
    notice!("Saving the final RDB snapshot before exiting.");
    if server.save_now().is_ok() || force {
        return true;
    }
    warning!("Error trying to save the DB, can't exit.");
    false
}
