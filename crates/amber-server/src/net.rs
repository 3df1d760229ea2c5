//! Start-up and the event loop: listeners (TCP and Unix socket), accepting clients, the
//! periodic cron (active expiry, client timeouts, stats), signals and shutdown.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};

use crate::config::Config;
use crate::connection::serve;
use crate::server::{ClientInfo, Server, ShutdownRequest, format_addr, unix_ms};
use crate::{notice, verbose, warning};

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Runs the server until it is shut down.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let port: u16 = config
        .get_i64("port")
        .try_into()
        .context("port out of range")?;
    let backlog = config.get_i64("tcp-backlog").clamp(1, i64::from(i32::MAX)) as i32;
    let mut listeners = Vec::new();
    if port != 0 {
        for address in config.get("bind").split_whitespace() {
            let (optional, address) = match address.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, address),
            };
            match bind_tcp(address, port, backlog) {
                Ok(listener) => listeners.push(listener),
                Err(error) if optional => {
                    verbose!("Skipping optional bind address {address}: {error}");
                }
                Err(error) => {
                    warning!(
                        "Warning: Could not create server TCP listening socket {address}:{port}: {error}"
                    );
                    bail!("Failed listening on port {port} (TCP), aborting.");
                }
            }
        }
        if listeners.is_empty() {
            bail!("Failed listening on port {port} (TCP), aborting.");
        }
    }
    let unix_path = config.get("unixsocket").to_string();
    let unix_listener = if unix_path.is_empty() {
        None
    } else {
        let _ = std::fs::remove_file(&unix_path);
        let listener = UnixListener::bind(&unix_path)
            .with_context(|| format!("Failed opening Unix socket: {unix_path}"))?;
        let perm = u32::from_str_radix(config.get("unixsocketperm"), 8).unwrap_or(0);
        if perm != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&unix_path, std::fs::Permissions::from_mode(perm))?;
        }
        Some(listener)
    };

    // One server per dataset: a second one on the same files (or `amber-backup restore`) is
    // refused; servers with other file names may share the directory, as in Redis.
    let dataset = if config.get_bool("appendonly") {
        config.get("appendfilename")
    } else {
        config.get("dbfilename")
    };
    let _lock = amber_backup::lock::lock_dataset(std::path::Path::new("."), dataset)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut server = Server::new(config);
    server.refresh_settings();
    server.port = port;
    let shutdown = server.shutdown.clone();
    let shared = Rc::new(RefCell::new(server));
    notice!("Server initialized");
    for listener in listeners {
        tokio::task::spawn_local(accept_tcp(shared.clone(), listener));
    }
    if let Some(listener) = unix_listener {
        tokio::task::spawn_local(accept_unix(shared.clone(), listener, unix_path.clone()));
    }
    tokio::task::spawn_local(watch_signals(shared.clone()));
    let loaded = if shared.borrow().config.get_bool("appendonly") {
        load_aof(&shared).await
    } else {
        load_snapshot(&shared).await
    };
    if let Err(error) = loaded {
        if error.is::<ShutdownWhileLoading>() {
            // As Redis: a shutdown asked for during the load exits at once, saving nothing.
            finish(&shared, &unix_path);
            return Ok(());
        }
        return Err(error);
    }
    tokio::task::spawn_local(cron(shared.clone()));
    notice!("Ready to accept connections");

    loop {
        shutdown.notified().await;
        if final_save(&mut shared.borrow_mut()) {
            break;
        }
    }
    finish(&shared, &unix_path);
    Ok(())
}

/// Loads the AOF (the RDB file is ignored when AOF is on, as in Redis), then opens it for
/// appending: a first start writes the base and the first incr file.
async fn load_aof(shared: &Rc<RefCell<Server>>) -> anyhow::Result<()> {
    let paths = crate::aof::AofPaths::from_config(&shared.borrow().config);
    let fatal = |message: String| {
        warning!("{message}");
        anyhow::Error::new(AlreadyLogged)
    };
    let source = crate::aof_load::find(&paths).map_err(|error| match error {
        crate::aof_load::FindError::Manifest(error) => {
            log_manifest_error(&paths.manifest(), &error);
            anyhow::Error::new(AlreadyLogged)
        }
        crate::aof_load::FindError::Unreadable(message) => fatal(message),
    })?;
    remove_temp_files(&paths.dir);
    let mut manifest = crate::aof_load::load(shared, &paths, source)
        .await
        .map_err(|message| {
            if message == crate::aof_load::SHUTDOWN_WHILE_LOADING {
                anyhow::Error::new(ShutdownWhileLoading)
            } else {
                fatal(message)
            }
        })?;
    if !shared.borrow().config.get_bool("aof-disable-auto-gc") {
        crate::aof::delete_history(&paths, &mut manifest);
    }
    let mut server = shared.borrow_mut();
    let format = server.aof_base_format();
    let server = &mut *server;
    server
        .aof
        .open(&paths, manifest, &server.keyspace, format)
        .map_err(|e| fatal(format!("Can't open the append-only file: {e}")))?;
    server.keyspace.set_record_expired(true);
    Ok(())
}

/// A shutdown (signal or SHUTDOWN) arrived while the dataset was loading: the server stops
/// without saving, as Redis does.
#[derive(Debug, thiserror::Error)]
#[error("shutdown requested while loading")]
pub struct ShutdownWhileLoading;

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

/// Loads `dbfilename` when it exists, a batch of keys at a time, answering `-LOADING` to
/// clients meanwhile; a file that cannot be read stops start-up and is left untouched.
async fn load_snapshot(shared: &Rc<RefCell<Server>>) -> anyhow::Result<()> {
    let (path, limits, delay) = {
        let server = shared.borrow();
        let path = std::path::PathBuf::from(server.config.get("dbfilename"));
        let delay = server.config.get_i64("key-load-delay").max(0) as u64;
        (path, server.encoding_limits(), delay)
    };
    if !path.exists() {
        return Ok(());
    }
    let started = Instant::now();
    let now = unix_ms();
    let fail = |message: String| -> anyhow::Error {
        warning!(
            "Internal error in RDB reading {}: {message}",
            path.display()
        );
        warning!("Terminating server after rdb file reading failure.");
        anyhow::Error::new(AlreadyLogged)
    };
    let mut loader = crate::persistence::Loader::open(&path).map_err(|message| {
        warning!("Fatal error loading the DB: {message}. Exiting.");
        anyhow::Error::new(AlreadyLogged)
    })?;
    loader.key_delay_us = delay;
    let total = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    shared.borrow_mut().loading = Some((started, total, 0));
    loop {
        let step = {
            let mut server = shared.borrow_mut();
            let result = loader.step(&mut server.keyspace, now, &limits, 1024);
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
    Ok(())
}

/// Saves before exiting when asked to (SHUTDOWN SAVE) or when save points are configured
/// (unless SHUTDOWN NOSAVE). Returns false when the save failed and the shutdown is cancelled.
fn final_save(server: &mut Server) -> bool {
    let request = server.shutdown_requested.take();
    let (explicit, force) = match request {
        Some(ShutdownRequest::Command { save, force }) => {
            warning!("User requested shutdown...");
            (save, force)
        }
        _ => (None, false),
    };
    server.kill_aof_rewrite();
    server.kill_backup();
    if let Some((child, _)) = server.rdb.child.take() {
        warning!("There is a child saving an .rdb. Killing it!");
        let pid = child.pid();
        let _ = child.kill_and_reap();
        let _ = std::fs::remove_file(format!("temp-{pid}.rdb"));
    }
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

fn finish(shared: &Rc<RefCell<Server>>, unix_path: &str) {
    let mut server = shared.borrow_mut();
    if let Err(error) = server.aof.close() {
        warning!("Error closing the AOF file: {error}");
    }
    for info in server.clients.values() {
        info.borrow_mut().killed = true;
        info.borrow().kill.notify_one();
    }
    server.clients.clear();
    let pidfile = server.config.get("pidfile").to_string();
    if !pidfile.is_empty() {
        notice!("Removing the pid file.");
        let _ = std::fs::remove_file(&pidfile);
    }
    if !unix_path.is_empty() {
        notice!("Removing the unix socket file.");
        let _ = std::fs::remove_file(unix_path);
    }
    warning!("Amber is now ready to exit, bye bye...");
}

/// Creates a listening TCP socket with `SO_REUSEADDR` (and `IPV6_V6ONLY` for IPv6, so that
/// `* ::*` can listen on both families) and Redis's backlog.
fn bind_tcp(address: &str, port: u16, backlog: i32) -> anyhow::Result<TcpListener> {
    let ip: IpAddr = match address {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "::*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other
            .parse()
            .with_context(|| format!("invalid bind address '{other}'"))?,
    };
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd: OwnedFd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if ip.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    let addr = SockaddrStorage::from(SocketAddr::new(ip, port));
    socket::bind(fd.as_raw_fd(), &addr)?;
    socket::listen(
        &fd,
        socket::Backlog::new(backlog).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// Registers a new client, or explains why it is refused.
fn admit(
    server: &mut Server,
    addr: String,
    laddr: String,
    fd: i32,
    unix: bool,
    local: bool,
) -> Result<Rc<RefCell<ClientInfo>>, &'static str> {
    server.stats.connections_received += 1;
    if server.clients.len() >= server.settings.maxclients {
        server.stats.rejected_connections += 1;
        return Err("-ERR max number of clients reached\r\n");
    }
    if server.settings.protected_mode && server.settings.requirepass.is_none() && !local {
        return Err(DENIED);
    }
    let id = server.next_client_id;
    server.next_client_id += 1;
    let info = Rc::new(RefCell::new(ClientInfo::new(id, addr, laddr, fd, unix)));
    server.clients.insert(id, info.clone());
    verbose!(
        "Accepted {}",
        if unix {
            "connection to unix socket".to_string()
        } else {
            info.borrow().addr.clone()
        }
    );
    Ok(info)
}

async fn accept_tcp(shared: Rc<RefCell<Server>>, listener: TcpListener) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warning!("Accepting client connection: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let keepalive = shared.borrow().settings.tcp_keepalive;
        if keepalive > 0 {
            let _ = socket::setsockopt(&stream, sockopt::KeepAlive, &true);
            let _ = socket::setsockopt(&stream, sockopt::TcpKeepIdle, &keepalive);
        }
        let local_addr = stream
            .local_addr()
            .map(|a| format_addr(&a))
            .unwrap_or_default();
        let fd = stream.as_raw_fd();
        let local = peer.ip().is_loopback()
            || matches!(peer.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
        let admitted = admit(
            &mut shared.borrow_mut(),
            format_addr(&peer),
            local_addr,
            fd,
            false,
            local,
        );
        match admitted {
            Ok(info) => {
                tokio::task::spawn_local(serve(shared.clone(), stream, info, local));
            }
            Err(message) => {
                tokio::task::spawn_local(async move {
                    let _ = stream.write_all(message.as_bytes()).await;
                });
            }
        }
    }
}

async fn accept_unix(shared: Rc<RefCell<Server>>, listener: UnixListener, path: String) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let fd = stream.as_raw_fd();
        let admitted = admit(
            &mut shared.borrow_mut(),
            format!("{path}:0"),
            format!("{path}:0"),
            fd,
            true,
            true,
        );
        match admitted {
            Ok(info) => {
                tokio::task::spawn_local(serve(shared.clone(), stream, info, true));
            }
            Err(message) => {
                let _ = stream.write_all(message.as_bytes()).await;
            }
        }
    }
}

/// Runs `hz` times a second: active expiry, idle-client timeouts, ops/sec sampling.
async fn cron(shared: Rc<RefCell<Server>>) {
    let mut last_commands = 0u64;
    let mut last_sample = Instant::now();
    loop {
        let hz = shared.borrow().settings.hz;
        tokio::time::sleep(Duration::from_millis(u64::from(1000 / hz.max(1)))).await;
        let mut server = shared.borrow_mut();
        server.now_ms = unix_ms();
        if server.active_expire_enabled {
            active_expire(&mut server, hz);
        }
        close_idle_clients(&server);
        server.check_bgsave();
        server.check_save_points();
        server.aof.cron();
        server.check_aof_rewrite();
        server.check_backup();
        server.update_resize_policy();
        server.migrate_sockets.close_idle();
        server.check_replication();
        let elapsed = last_sample.elapsed();
        if elapsed >= Duration::from_millis(1000) {
            let done = server.stats.commands_processed - last_commands;
            server.stats.instantaneous_ops = (done as f64 / elapsed.as_secs_f64()) as u64;
            last_commands = server.stats.commands_processed;
            last_sample = Instant::now();
        }
    }
}

/// Redis's active expire cycle: sample keys with a TTL in each database, and keep going while
/// more than 10% of a sample was expired, within a time budget of 25% of a cron tick.
fn active_expire(server: &mut Server, hz: u32) {
    let effort = server.settings.active_expire_effort as usize;
    let per_loop = 20 + 20 / 4 * (effort - 1);
    let budget = Duration::from_micros(u64::from(250_000 / hz.max(1)));
    let started = Instant::now();
    let now = server.now_ms;
    for index in 0..server.keyspace.db_count() {
        loop {
            let (db, random) = server.keyspace.db_with_random(index);
            if db.volatile_len() == 0 {
                break;
            }
            let cycle = db.expire_sample(now, per_loop, random);
            if cycle.sampled == 0
                || cycle.expired * 10 <= cycle.sampled
                || started.elapsed() > budget
            {
                break;
            }
        }
        server.collect_expired(index);
    }
}

fn close_idle_clients(server: &Server) {
    let timeout = server.settings.timeout;
    for info in server.clients.values() {
        let mut info = info.borrow_mut();
        let idle = info.last_interaction.elapsed();
        // As Redis, a connection idle for 2 seconds gives its empty query buffer back.
        if idle.as_secs() >= 2 && info.query_buffer == 0 && info.query_buffer_capacity > 0 {
            info.shrink.notify_one();
        }
        if timeout > 0 && idle.as_secs() > timeout {
            verbose!("Closing idle client");
            info.killed = true;
            info.kill.notify_one();
        }
    }
}

async fn watch_signals(shared: Rc<RefCell<Server>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warning!("Could not install signal handlers");
        return;
    };
    loop {
        let request = tokio::select! {
            _ = term.recv() => ShutdownRequest::Sigterm,
            _ = int.recv() => ShutdownRequest::Sigint,
        };
        let name = if request == ShutdownRequest::Sigterm {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        if shared.borrow().loading.is_some() {
            warning!("Received shutdown signal during loading, scheduling shutdown.");
        } else {
            warning!("Received {name} scheduling shutdown...");
        }
        shared.borrow_mut().request_shutdown(request);
    }
}
