//! Start-up and the event loop: listeners (TCP and Unix socket), accepting clients, the
//! periodic cron (active expiry, client timeouts, stats), signals and shutdown.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};

use crate::config::Config;
use crate::net::client::serve;
use crate::net::cron::cron;
use crate::persistence::startup::{ShutdownWhileLoading, final_save, load_aof, load_snapshot};
use crate::server::{ClientInfo, Server, ShutdownRequest, format_addr};
use crate::{notice, verbose, warning};

pub(crate) mod busy;
pub(crate) mod client;
mod cron;
pub(crate) mod tick;

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Runs the server until it is shut down.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let port: u16 = config
        .get_i64("port")
        .try_into()
        .context("port out of range")?;
    let backlog = config.get_i64("tcp-backlog").clamp(1, i64::from(i32::MAX)) as i32;
    let bind = config.get("bind").to_string();
    let listeners = if port == 0 {
        Vec::new()
    } else {
        bind_all(&bind, port, backlog, &[])
            .map_err(|()| anyhow::anyhow!("Failed listening on port {port} (TCP), aborting."))?
    };
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
    crate::commands::install_renames(&config.renames)
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    let mut server = Server::new(config);
    server.refresh_settings();
    crate::acl::load_at_startup(&mut server).map_err(|message| anyhow::anyhow!("{message}"))?;
    server.port = port;
    server.listeners.bind = bind;
    server.listeners.backlog = backlog;
    server.listeners.pending = Some(listeners);
    let replicaof = server.config.get("replicaof").to_string();
    if let [host, master_port] = replicaof.split_whitespace().collect::<Vec<_>>()[..]
        && !(host.eq_ignore_ascii_case("no") && master_port.eq_ignore_ascii_case("one"))
    {
        let master_port = master_port
            .parse::<u16>()
            .with_context(|| format!("Invalid master port in 'replicaof {replicaof}'"))?;
        crate::commands::follow(&mut server, host.to_string(), master_port);
    }
    let shutdown = server.shutdown.clone();
    let shared = Rc::new(RefCell::new(server));
    notice!("Server initialized");
    crate::clock::calibrate();
    crate::proctitle::refresh(&shared.borrow().config);
    shared.borrow().tick.spawn_closer();
    tokio::task::spawn_local(manage_listeners(shared.clone()));
    if let Some(listener) = unix_listener {
        tokio::task::spawn_local(accept_unix(shared.clone(), listener, unix_path.clone()));
    }
    tokio::task::spawn_local(watch_signals(shared.clone()));
    crate::lua_debug::watch_termination();
    tokio::task::spawn_local(crate::pubsub::flush_task(shared.clone()));
    tokio::task::spawn_local(crate::persistence::aof::commit_task(shared.clone()));
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
    tokio::task::spawn_local(crate::server::eviction_task(shared.clone()));
    let wake = shared.borrow().forkless_wake.clone();
    tokio::task::spawn_local(crate::persistence::forkless::capture_task(
        shared.clone(),
        wake,
    ));
    tokio::task::spawn_local(crate::replication::link::run(shared.clone()));
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

/// The IP a `bind` address names (`*` and `::*` are every IPv4 and IPv6 address).
fn bind_ip(address: &str) -> anyhow::Result<IpAddr> {
    Ok(match address {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "::*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other
            .parse()
            .with_context(|| format!("invalid bind address '{other}'"))?,
    })
}

/// Creates a listening TCP socket with `SO_REUSEADDR` (and `IPV6_V6ONLY` for IPv6, so that
/// `* ::*` can listen on both families) and Redis's backlog.
fn bind_tcp(ip: IpAddr, port: u16, backlog: i32) -> anyhow::Result<TcpListener> {
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

/// The TCP listening sockets and the tasks accepting on them, replaced when `CONFIG SET
/// port` or `bind` changes them.
#[derive(Default)]
pub(crate) struct Listeners {
    /// The `bind` addresses the sockets listen on.
    pub(crate) bind: String,
    /// `tcp-backlog`.
    pub(crate) backlog: i32,
    /// The accepting tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The listening sockets, with the address each is bound to.
    active: Vec<BoundListener>,
    /// Sockets bound and waiting for their tasks (the old ones stop when these start).
    pending: Option<Vec<BoundListener>>,
    /// Wakes [`manage_listeners`].
    wake: Rc<tokio::sync::Notify>,
}

/// A listening socket and the address it is bound to; shared by the accepting task and
/// [`Listeners`], so a rebind that keeps an address keeps its socket.
type BoundListener = (SocketAddr, Rc<TcpListener>);

/// Binds every address of `bind` (a `-` prefix marks one that may be missing) on `port`,
/// reusing the socket of `existing` already bound to an address.
fn bind_all(
    bind: &str,
    port: u16,
    backlog: i32,
    existing: &[BoundListener],
) -> Result<Vec<BoundListener>, ()> {
    let mut listeners = Vec::new();
    for address in bind.split_whitespace() {
        let (optional, address) = match address.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, address),
        };
        let bound = bind_ip(address).and_then(|ip| {
            let wanted = SocketAddr::new(ip, port);
            match existing.iter().find(|(addr, _)| *addr == wanted) {
                Some((_, listener)) => Ok((wanted, listener.clone())),
                None => Ok((wanted, Rc::new(bind_tcp(ip, port, backlog)?))),
            }
        });
        match bound {
            Ok(listener) => listeners.push(listener),
            Err(error) if optional => {
                verbose!("Skipping optional bind address {address}: {error}");
            }
            Err(error) => {
                warning!(
                    "Warning: Could not create server TCP listening socket {address}:{port}: {error}"
                );
                return Err(());
            }
        }
    }
    if listeners.is_empty() {
        Err(())
    } else {
        Ok(listeners)
    }
}

impl Server {
    /// `CONFIG SET port | bind`: moves the listening sockets to the new addresses. An address
    /// both lists name keeps its socket. The old sockets stop listening before the new ones
    /// are bound, as Redis closes them first, so a new address that overlaps an old one (a
    /// wildcard and a specific address on one port) can be bound; if any bind fails, the old
    /// sockets listen again and nothing changed.
    pub(crate) fn rebind(&mut self, bind: &str, port: u16) -> Result<(), ()> {
        if bind == self.listeners.bind && port == self.port {
            return Ok(());
        }
        let backlog = self.listeners.backlog;
        let kept = |addr: &SocketAddr| {
            port != 0
                && bind.split_whitespace().any(|address| {
                    bind_ip(address.trim_start_matches('-'))
                        .is_ok_and(|ip| SocketAddr::new(ip, port) == *addr)
                })
        };
        let stopped: Vec<&BoundListener> = self
            .listeners
            .active
            .iter()
            .filter(|(addr, _)| !kept(addr))
            .collect();
        for (_, listener) in &stopped {
            // On Linux this ends listening on the socket but keeps it bound, so a later
            // `listen` restores it.
            let _ = socket::shutdown(listener.as_raw_fd(), socket::Shutdown::Read);
        }
        let listeners = if port == 0 {
            Ok(Vec::new())
        } else {
            bind_all(bind, port, backlog, &self.listeners.active)
        };
        let Ok(listeners) = listeners else {
            for (addr, listener) in &stopped {
                let fd = listener.as_fd();
                let backlog = socket::Backlog::new(backlog).unwrap_or(socket::Backlog::MAXCONN);
                if let Err(error) = socket::listen(&fd, backlog) {
                    warning!("Failed to restore the listening socket {addr}: {error}");
                }
            }
            return Err(());
        };
        // The old tasks stop now, before they could meet a socket that no longer listens.
        for task in self.listeners.tasks.drain(..) {
            task.abort();
        }
        self.listeners.bind = bind.to_string();
        self.port = port;
        self.listeners.pending = Some(listeners);
        self.listeners.wake.notify_one();
        Ok(())
    }
}

/// Starts accepting on newly bound sockets and stops the tasks of the old ones.
async fn manage_listeners(shared: Rc<RefCell<Server>>) {
    let wake = shared.borrow().listeners.wake.clone();
    wake.notify_one();
    loop {
        wake.notified().await;
        let mut server = shared.borrow_mut();
        let Some(listeners) = server.listeners.pending.take() else {
            continue;
        };
        for task in server.listeners.tasks.drain(..) {
            task.abort();
        }
        server.listeners.tasks = listeners
            .iter()
            .map(|(_, listener)| {
                tokio::task::spawn_local(accept_tcp(shared.clone(), listener.clone()))
            })
            .collect();
        // An old socket no new address kept closes once its aborted task is dropped.
        server.listeners.active = listeners;
    }
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

async fn accept_tcp(shared: Rc<RefCell<Server>>, listener: Rc<TcpListener>) {
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
        let local = protected_mode_allows(peer.ip());
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

/// Whether protected mode lets `ip` in: as Redis, only `127.0.0.1` and `::1` (and
/// `127.0.0.1` mapped into IPv6), not the rest of `127.0.0.0/8`.
fn protected_mode_allows(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST
                || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_admits_only_redis_loopback_addresses() {
        let allowed = |text: &str| {
            protected_mode_allows(
                text.parse()
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            )
        };
        assert!(allowed("127.0.0.1"));
        assert!(allowed("::1"));
        assert!(allowed("::ffff:127.0.0.1"));
        assert!(!allowed("127.0.0.2"));
        assert!(!allowed("::ffff:127.0.0.2"));
        assert!(!allowed("10.0.0.1"));
    }
}
