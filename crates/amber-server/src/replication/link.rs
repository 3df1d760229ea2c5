//! The replica side: the link to the master named by `REPLICAOF host port`.
//!
//! One task ([`run`]) owns the link. For each connection it shakes hands as Redis's replicas
//! do (`PING`, `AUTH`, `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`, `PSYNC`),
//! then either continues the stream (`+CONTINUE`) or receives the master's snapshot
//! (`+FULLRESYNC`, in either transfer form) into a temp file, loads it while clients get
//! `-LOADING`, and only then installs it as `dbfilename`. From then on it applies the
//! master's commands as the master client, acknowledges the applied offset every second and
//! on `REPLCONF GETACK`, and passes the applied bytes on to this server's own replicas.
//!
//! A lost link is retried every second with `PSYNC <replid> <offset + 1>`; `REPLICAOF` with
//! another master (or `NO ONE`) ends the current connection at its next read.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use amber_protocol::{Limits, Protocol, ReplyWriter, RequestParser};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::socket_source::{Framing, SocketSource, SourceControl};
use crate::commands::{ClientState, Ctx, execute};
use crate::server::{ClientInfo, Server, unix_ms};
use crate::{notice, warning};

/// Where the link to the master is (`master_link_status`, `ROLE`'s state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Not connected; a connection will be attempted.
    Connect,
    /// The TCP connection is being made.
    Connecting,
    /// The handshake runs (`PING` ... `PSYNC`).
    Handshake,
    /// The snapshot is being received or loaded.
    Transfer,
    /// The stream is being applied.
    Connected,
}

impl LinkState {
    /// The name `ROLE` shows.
    pub(crate) fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// The master this server replicates and the state of the link to it.
#[derive(Debug)]
pub(crate) struct MasterLink {
    /// `REPLICAOF` host.
    pub host: String,
    /// `REPLICAOF` port.
    pub port: u16,
    /// Where the link is.
    pub state: LinkState,
    /// Bumped by every `REPLICAOF`: a connection made for an older one ends.
    pub generation: u64,
    /// When the master last sent something (`master_last_io_seconds_ago`).
    pub last_io: Option<Instant>,
    /// Since when the link is down (`master_link_down_since_seconds`).
    pub down_since: Option<Instant>,
    /// The snapshot transfer: total bytes when known, bytes read so far.
    pub transfer: Option<(Option<u64>, u64)>,
    /// Whether this server's history may be continued (`PSYNC <replid> <offset+1>`); false
    /// after a failed load, when the dataset no longer matches the offset.
    pub can_continue: bool,
    /// The database the master's stream last selected (kept across reconnections, as the
    /// master does not repeat its `SELECT` after `+CONTINUE`).
    pub stream_db: usize,
    /// The master client's id while connected.
    pub client_id: Option<u64>,
}

impl MasterLink {
    /// A link to `host:port` that has not connected yet.
    pub(crate) fn new(host: String, port: u16, generation: u64, can_continue: bool) -> MasterLink {
        MasterLink {
            host,
            port,
            state: LinkState::Connect,
            generation,
            last_io: None,
            down_since: None,
            transfer: None,
            can_continue,
            stream_db: 0,
            client_id: None,
        }
    }
}

/// Why a connection to the master ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Already logged in Redis's words; retry.
    #[error("replication aborted")]
    Logged,
    /// `REPLICAOF` changed the master (or removed it).
    #[error("replaced")]
    Replaced,
}

/// Owns the link to the master for the life of the server.
pub(crate) async fn run(shared: Rc<RefCell<Server>>) {
    let changed = shared.borrow().replication.link_changed.clone();
    loop {
        let target = {
            let server = shared.borrow();
            server
                .replication
                .master
                .as_ref()
                .map(|link| (link.host.clone(), link.port, link.generation))
        };
        let Some((host, port, generation)) = target else {
            changed.notified().await;
            continue;
        };
        let mut session = Session {
            shared: shared.clone(),
            generation,
            stream: None,
            killed: None,
        };
        match session.connect_and_sync(&host, port).await {
            Err(LinkError::Replaced) => continue,
            Err(LinkError::Io(error)) => {
                if session.is_current() {
                    warning!("Error condition on socket for SYNC: {error}");
                }
            }
            Err(LinkError::Logged) | Ok(()) => {}
        }
        session.link_down();
        let failing_over = shared
            .borrow()
            .replication
            .failover
            .as_ref()
            .is_some_and(|f| f.state == super::FailoverState::InProgress);
        if failing_over {
            shared
                .borrow_mut()
                .abort_failover("the link to the failover target failed");
            continue;
        }
        // As Redis's replication cron: another attempt a second later (sooner if REPLICAOF
        // names another master meanwhile).
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = changed.notified() => {}
        }
    }
}

/// One connection to the master.
struct Session {
    shared: Rc<RefCell<Server>>,
    generation: u64,
    stream: Option<TcpStream>,
    /// Fires when the master client is killed (`CLIENT KILL TYPE master`).
    killed: Option<Rc<crate::signal::Signal>>,
}

impl Session {
    /// Whether `REPLICAOF` still names the master this session serves.
    fn is_current(&self) -> bool {
        self.shared
            .borrow()
            .replication
            .master
            .as_ref()
            .is_some_and(|link| link.generation == self.generation)
    }

    fn set_state(&self, state: LinkState) {
        if let Some(link) = self.shared.borrow_mut().replication.master.as_mut()
            && link.generation == self.generation
        {
            link.state = state;
            link.last_io = Some(Instant::now());
        }
    }

    fn with_link<T>(&self, change: impl FnOnce(&mut MasterLink) -> T) -> Option<T> {
        let mut server = self.shared.borrow_mut();
        server
            .replication
            .master
            .as_mut()
            .filter(|link| link.generation == self.generation)
            .map(change)
    }

    fn stream(&mut self) -> Result<&mut TcpStream, LinkError> {
        self.stream
            .as_mut()
            .ok_or_else(|| LinkError::Io(std::io::ErrorKind::NotConnected.into()))
    }

    fn repl_timeout(&self) -> Duration {
        let seconds = self.shared.borrow().config.get_i64("repl-timeout").max(1);
        Duration::from_secs(seconds as u64)
    }

    /// The connection ended: the master client goes away and the link is marked down.
    fn link_down(&mut self) {
        self.stream = None;
        self.killed = None;
        let mut server = self.shared.borrow_mut();
        let Some(link) = server.replication.master.as_mut() else {
            return;
        };
        if link.generation != self.generation {
            return;
        }
        let was_connected = link.state == LinkState::Connected;
        link.state = LinkState::Connect;
        link.transfer = None;
        if link.down_since.is_none() || was_connected {
            link.down_since = Some(Instant::now());
        }
        if let Some(id) = link.client_id.take() {
            server.clients.remove(&id);
        }
        if was_connected {
            notice!("Connection with master lost.");
            notice!("Caching the disconnected master state.");
        }
    }

    async fn connect_and_sync(&mut self, host: &str, port: u16) -> Result<(), LinkError> {
        notice!("Connecting to MASTER {host}:{port}");
        self.set_state(LinkState::Connecting);
        notice!("MASTER <-> REPLICA sync started");
        let timeout = self.repl_timeout();
        let connected = tokio::time::timeout(timeout, TcpStream::connect((host, port))).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                warning!("Unable to connect to MASTER: {error}");
                return Err(LinkError::Logged);
            }
            Err(_) => {
                warning!("Timeout connecting to the MASTER...");
                return Err(LinkError::Logged);
            }
        };
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        notice!("Non blocking connect for SYNC fired the event.");
        self.set_state(LinkState::Handshake);
        let mut input = BytesMut::with_capacity(16 * 1024);
        self.handshake(&mut input).await?;
        let (replid, offset) = self.psync_arguments();
        match replid.as_deref() {
            Some(id) => notice!(
                "Trying a partial resynchronization (request {id}:{}).",
                offset + 1
            ),
            None => notice!("Partial resynchronization not possible (no cached master)"),
        }
        let mut request = match &replid {
            Some(id) => vec!["PSYNC".to_string(), id.clone(), (offset + 1).to_string()],
            None => vec!["PSYNC".into(), "?".into(), "-1".into()],
        };
        let failing_over = self.shared.borrow().replication.failover.is_some();
        if failing_over {
            // The target promotes itself before it answers.
            request.push("FAILOVER".into());
        }
        let reply = self.command(&mut input, &request).await?;
        if failing_over {
            let mut server = self.shared.borrow_mut();
            if reply.starts_with("+CONTINUE") || reply.starts_with("+FULLRESYNC") {
                server.finish_failover();
            } else {
                server.abort_failover("Failover target rejected psync request");
                return Err(LinkError::Replaced);
            }
        }
        if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
            let mut words = rest.split_whitespace();
            let (Some(id), Some(Ok(master_offset))) =
                (words.next(), words.next().map(str::parse::<u64>))
            else {
                warning!("Master replied with wrong +FULLRESYNC syntax.");
                return Err(LinkError::Logged);
            };
            notice!("Full resync from master: {id}:{master_offset}");
            self.set_state(LinkState::Transfer);
            self.full_sync(&mut input, id.to_string(), master_offset)
                .await?;
            notice!("MASTER <-> REPLICA sync: Finished with success");
        } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
            notice!("Successful partial resynchronization with master.");
            let new_id = rest.trim();
            if !new_id.is_empty() {
                let mut server = self.shared.borrow_mut();
                if !new_id.eq_ignore_ascii_case(&server.replication.replid) {
                    server.replication.master_changed_id(new_id.to_string());
                    notice!("Master replication ID changed to {new_id}");
                }
            }
            notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
            notice!("Master is currently unable to PSYNC but should be in the future: {reply}");
            return Err(LinkError::Logged);
        } else {
            warning!("Unexpected reply to PSYNC from master: {reply}");
            return Err(LinkError::Logged);
        }
        self.stream_commands(input).await
    }

    /// `(replid, offset)` to continue from, if this server's history can be continued.
    fn psync_arguments(&self) -> (Option<String>, u64) {
        let server = self.shared.borrow();
        let can_continue = server
            .replication
            .master
            .as_ref()
            .is_some_and(|link| link.can_continue);
        let replid = can_continue.then(|| server.replication.replid.clone());
        (replid, server.replication.offset)
    }

    /// `PING`, `AUTH`, `REPLCONF listening-port`, `ip-address` and `capa`, as Redis sends them.
    async fn handshake(&mut self, input: &mut BytesMut) -> Result<(), LinkError> {
        let reply = self.command(input, &["PING".to_string()]).await?;
        let tolerated = ["-NOAUTH", "-NOPERM", "-ERR operation not permitted"];
        if reply.starts_with('-') && !tolerated.iter().any(|t| reply.starts_with(t)) {
            warning!("Error reply to PING from master: '{reply}'");
            return Err(LinkError::Logged);
        }
        notice!("Master replied to PING, replication can continue...");
        let (auth, user, port, ip) = {
            let server = self.shared.borrow();
            let config = &server.config;
            let announced = config.get_i64("replica-announce-port");
            let port = if announced > 0 {
                announced as u16
            } else {
                server.port
            };
            (
                config.get("masterauth").to_string(),
                config.get("masteruser").to_string(),
                port,
                config.get("replica-announce-ip").to_string(),
            )
        };
        if !auth.is_empty() {
            let mut request = vec!["AUTH".to_string()];
            if !user.is_empty() {
                request.push(user);
            }
            request.push(auth);
            let reply = self.command(input, &request).await?;
            if reply.starts_with('-') {
                warning!("Unable to AUTH to MASTER: {reply}");
                return Err(LinkError::Logged);
            }
        }
        let listening = ["REPLCONF", "listening-port", &port.to_string()].map(String::from);
        let reply = self.command(input, &listening).await?;
        if reply.starts_with('-') {
            notice!("(Non critical) Master does not understand REPLCONF listening-port: {reply}");
        }
        if !ip.is_empty() {
            let request = ["REPLCONF", "ip-address", &ip].map(String::from);
            let reply = self.command(input, &request).await?;
            if reply.starts_with('-') {
                notice!("(Non critical) Master does not understand REPLCONF ip-address: {reply}");
            }
        }
        let capa = ["REPLCONF", "capa", "eof", "capa", "psync2"].map(String::from);
        let reply = self.command(input, &capa).await?;
        if reply.starts_with('-') {
            notice!("(Non critical) Master does not understand REPLCONF capa: {reply}");
        }
        Ok(())
    }

    /// Sends one command and reads its one-line reply.
    async fn command(
        &mut self,
        input: &mut BytesMut,
        args: &[String],
    ) -> Result<String, LinkError> {
        let mut request = Vec::new();
        amber_aof::encode_command(args, &mut request);
        let timeout = self.repl_timeout();
        self.stream()?.write_all(&request).await?;
        self.read_line(input, timeout).await
    }

    /// Reads one CRLF-terminated line (without the CRLF), skipping the empty keep-alive lines
    /// a master sends while it prepares a snapshot.
    async fn read_line(
        &mut self,
        input: &mut BytesMut,
        timeout: Duration,
    ) -> Result<String, LinkError> {
        loop {
            while let Some(end) = input.iter().position(|&b| b == b'\n') {
                let line = input.split_to(end + 1);
                let text = String::from_utf8_lossy(&line[..end]);
                let text = text.trim_end_matches('\r');
                if !text.is_empty() {
                    return Ok(text.to_string());
                }
                self.with_link(|link| link.last_io = Some(Instant::now()));
            }
            if input.len() > 64 * 1024 {
                warning!("The master sent an over-long line during the handshake.");
                return Err(LinkError::Logged);
            }
            self.read_more(input, timeout).await?;
        }
    }

    /// Reads more bytes from the master, within `timeout`.
    async fn read_more(
        &mut self,
        input: &mut BytesMut,
        timeout: Duration,
    ) -> Result<usize, LinkError> {
        if !self.is_current() {
            return Err(LinkError::Replaced);
        }
        let changed = self.shared.borrow().replication.link_changed.clone();
        let killed = self.killed.clone();
        let master_killed = async {
            match killed {
                Some(kill) => kill.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(master_killed);
        input.reserve(16 * 1024);
        let read = loop {
            let stream = self.stream()?;
            tokio::select! {
                read = tokio::time::timeout(timeout, stream.read_buf(input)) => break read,
                _ = changed.notified() => {
                    if !self.is_current() {
                        return Err(LinkError::Replaced);
                    }
                }
                _ = &mut master_killed => return Err(LinkError::Logged),
            }
        };
        match read {
            Err(_) => {
                let state = self.with_link(|link| link.state);
                match state {
                    Some(LinkState::Transfer) => warning!(
                        "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value."
                    ),
                    Some(LinkState::Connected) => {
                        warning!("MASTER timeout: no data nor PING received...")
                    }
                    _ => warning!("Timeout connecting to the MASTER..."),
                }
                Err(LinkError::Logged)
            }
            Ok(Ok(0)) => {
                notice!("Master closed the connection.");
                Err(LinkError::Logged)
            }
            Ok(Ok(read)) => {
                let mut server = self.shared.borrow_mut();
                server.stats.net_repl_input_bytes += read as u64;
                if let Some(link) = server.replication.master.as_mut() {
                    link.last_io = Some(Instant::now());
                }
                Ok(read)
            }
            Ok(Err(error)) => Err(error.into()),
        }
    }

    /// Receives the snapshot into a temp file, loads it, then installs it as `dbfilename`.
    async fn full_sync(
        &mut self,
        input: &mut BytesMut,
        replid: String,
        master_offset: u64,
    ) -> Result<(), LinkError> {
        let timeout = self.repl_timeout();
        let header = self.read_line(input, timeout).await?;
        if header.starts_with('-') {
            warning!("MASTER aborted replication with an error: {header}");
            return Err(LinkError::Logged);
        }
        let Some(size) = header.strip_prefix('$') else {
            warning!(
                "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
            );
            return Err(LinkError::Logged);
        };
        let form = match size.strip_prefix("EOF:") {
            Some(mark) if mark.len() == 40 => Transfer::Streamed(mark.as_bytes().to_vec()),
            Some(_) => {
                warning!("Bad EOF mark from MASTER: {size}");
                return Err(LinkError::Logged);
            }
            None => match size.parse::<u64>() {
                Ok(len) => Transfer::Sized(len),
                Err(_) => {
                    warning!("Bad bulk length from MASTER: {size}");
                    return Err(LinkError::Logged);
                }
            },
        };
        match &form {
            Transfer::Sized(len) => {
                notice!("MASTER <-> REPLICA sync: receiving {len} bytes from master to disk");
            }
            Transfer::Streamed(_) => {
                notice!(
                    "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk"
                );
            }
        }
        if let Some(target) = self.diskless_load_target() {
            return self
                .load_from_socket(input, form, target, replid, master_offset)
                .await;
        }
        let temp = PathBuf::from(format!(
            "temp-{}.{}.rdb",
            unix_ms() / 1000,
            std::process::id()
        ));
        let received = self.receive_snapshot(input, &form, &temp).await;
        if let Err(error) = received {
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
        let recorded = match load_snapshot(&self.shared, &temp).await {
            Ok(recorded) => recorded,
            Err(error) => {
                let _ = std::fs::remove_file(&temp);
                return Err(error);
            }
        };
        let mut server = self.shared.borrow_mut();
        let target = PathBuf::from(server.config.get("dbfilename"));
        if let Err(error) = amber_snapshot::durable::install(&temp, &target) {
            warning!(
                "Failed trying to rename the temp DB into {} in MASTER <-> REPLICA synchronization: {error}",
                target.display()
            );
            let _ = std::fs::remove_file(&temp);
        }
        finish_full_sync(&mut server, replid, master_offset, &recorded);
        Ok(())
    }

    /// Where `repl-diskless-load` loads a snapshot straight from the socket: into a second
    /// dataset swapped in at the end (`swapdb`), into the empty dataset (`on-empty-db`), or
    /// nowhere (`disabled`, or a non-empty dataset: the snapshot goes to disk first).
    fn diskless_load_target(&self) -> Option<DisklessTarget> {
        let server = self.shared.borrow();
        match server.config.get("repl-diskless-load") {
            "swapdb" => Some(DisklessTarget::Swap),
            "on-empty-db" if server.keyspace.key_count() == 0 => Some(DisklessTarget::Empty),
            _ => None,
        }
    }

    /// Loads the snapshot as it arrives on the socket (`repl-diskless-load`). With `swapdb`
    /// the old dataset stays until the new one is complete, and comes back if the transfer
    /// fails; clients get `-LOADING` meanwhile, or the old data when the master continues
    /// this server's own history (Redis's async loading).
    async fn load_from_socket(
        &mut self,
        input: &mut BytesMut,
        form: Transfer,
        target: DisklessTarget,
        replid: String,
        master_offset: u64,
    ) -> Result<(), LinkError> {
        let framing = match form {
            Transfer::Sized(len) => Framing::Sized(len),
            Transfer::Streamed(mark) => {
                let mut fixed = [0u8; 40];
                fixed.copy_from_slice(&mark);
                Framing::Marked(fixed)
            }
        };
        let prefix_len = match framing {
            Framing::Sized(len) => input.len().min(usize::try_from(len).unwrap_or(usize::MAX)),
            Framing::Marked(_) => input.len(),
        };
        let prefix = input.split_to(prefix_len).to_vec();
        let socket = {
            use std::os::fd::AsFd;
            self.stream()?.as_fd().try_clone_to_owned()?
        };
        let control = std::sync::Arc::new(SourceControl::default());
        let source = SocketSource::new(
            socket,
            framing,
            prefix,
            self.repl_timeout(),
            control.clone(),
        );
        let mut loader = crate::persistence::rdb::Loader::from_socket(
            source,
            &self.shared.borrow().encoding_limits(),
        )
        .map_err(|error| {
            log_load_failure("socket", &error);
            LinkError::Logged
        })?;
        loader.keep_expired = true;
        loader.key_delay_us = key_load_delay(&self.shared);
        loader.nonblocking = true;
        notice!("MASTER <-> REPLICA sync: Loading DB in memory");
        let started = Instant::now();
        let (mut side, serving_old) = {
            let mut server = self.shared.borrow_mut();
            server.kill_job_for_replication_load();
            // The master continues our own history: clients keep the old data meanwhile.
            let serving_old = target == DisklessTarget::Swap
                && replid.eq_ignore_ascii_case(&server.replication.replid);
            server.replication.discard_history();
            if server.aof.is_on() {
                let _ = server.switch_aof(false);
                server.replication_aof_restart = true;
            }
            let side = match target {
                DisklessTarget::Swap => {
                    let mut side = amber_keyspace::Keyspace::new(server.keyspace.db_count());
                    side.set_keep_expired(true);
                    Some(side)
                }
                DisklessTarget::Empty => {
                    server.flush_all_for_sync();
                    None
                }
            };
            if serving_old {
                server.async_loading = true;
            } else {
                server.loading = Some((started, 0, 0));
            }
            (side, serving_old)
        };
        let outcome = loop {
            if !self.is_current() {
                break Err(LinkError::Replaced);
            }
            let step = {
                let mut server = self.shared.borrow_mut();
                let now = unix_ms();
                let keyspace = side.as_mut().unwrap_or(&mut server.keyspace);
                let result = loader.step(keyspace, now, 1024);
                let received = control.received.load(std::sync::atomic::Ordering::Relaxed);
                if !serving_old {
                    server.loading = Some((started, 0, received));
                }
                if let Some(link) = server.replication.master.as_mut() {
                    link.last_io = Some(Instant::now());
                    link.transfer = Some((None, received));
                }
                result
            };
            match step {
                Ok(true) => break Ok(()),
                Ok(false) if loader.ready_now() => tokio::task::yield_now().await,
                Ok(false) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(error) => {
                    log_load_failure("socket", &error);
                    break Err(LinkError::Logged);
                }
            }
        };
        control
            .cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let recorded = loader.repl.clone();
        let stats = loader.stats;
        drop(loader);
        let mut server = self.shared.borrow_mut();
        server.loading = None;
        server.async_loading = false;
        if let Err(error) = outcome {
            match side {
                // The old dataset was never touched.
                Some(_) => notice!("MASTER <-> REPLICA sync: Discarding the half-loaded data"),
                None => {
                    server.keyspace.clear();
                    if let Some(link) = server.replication.master.as_mut() {
                        link.can_continue = false;
                    }
                }
            }
            return Err(error);
        }
        if let Some(mut loaded) = side {
            for db in 0..server.keyspace.db_count() {
                server.touch_existing_keys(db);
            }
            std::mem::swap(&mut server.keyspace, &mut loaded);
            for db in 0..server.keyspace.db_count() {
                server.touch_existing_keys(db);
            }
        }
        notice!("{}", stats.summary());
        server.rdb.last_load = (stats.loaded, stats.expired);
        notice!(
            "MASTER <-> REPLICA sync: Loaded in {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
        finish_full_sync(&mut server, replid, master_offset, &recorded);
        Ok(())
    }

    /// Copies the snapshot from the socket into `temp` and fsyncs it.
    async fn receive_snapshot(
        &mut self,
        input: &mut BytesMut,
        form: &Transfer,
        temp: &Path,
    ) -> Result<(), LinkError> {
        let mut file = std::fs::File::create(temp).map_err(|error| {
            warning!(
                "Opening the temp file needed for MASTER <-> REPLICA synchronization: {error}"
            );
            LinkError::Logged
        })?;
        let total = match form {
            Transfer::Sized(len) => Some(*len),
            Transfer::Streamed(_) => None,
        };
        self.with_link(|link| link.transfer = Some((total, 0)));
        let timeout = self.repl_timeout();
        let mut written = 0u64;
        // The last bytes written, to find the EOF mark of a streamed transfer.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            if input.is_empty() {
                self.read_more(input, timeout).await?;
            }
            let take = match total {
                Some(len) => (len - written).min(input.len() as u64) as usize,
                None => input.len(),
            };
            let chunk = input.split_to(take);
            file.write_all(&chunk).map_err(|error| {
                warning!("Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {error}");
                LinkError::Logged
            })?;
            written += chunk.len() as u64;
            self.with_link(|link| link.transfer = Some((total, written)));
            match form {
                Transfer::Sized(len) if written == *len => break,
                Transfer::Sized(_) => {}
                Transfer::Streamed(mark) => {
                    tail.extend_from_slice(&chunk);
                    if tail.len() > mark.len() {
                        tail.drain(..tail.len() - mark.len());
                    }
                    if tail == *mark {
                        written -= mark.len() as u64;
                        file.set_len(written)?;
                        break;
                    }
                }
            }
        }
        file.sync_all()?;
        Ok(())
    }

    /// Applies the master's stream until the link breaks or `REPLICAOF` changes.
    async fn stream_commands(&mut self, mut input: BytesMut) -> Result<(), LinkError> {
        let mut master = self.register_master_client();
        self.set_state(LinkState::Connected);
        self.with_link(|link| link.down_since = None);
        let mut parser = RequestParser::new();
        let mut out = ReplyWriter::new(Protocol::Resp2);
        // A copy of the unapplied input, passed on to our replicas as applied.
        let mut raw: Vec<u8> = input.to_vec();
        let mut consumed = 0usize;
        let mut last_ack = Instant::now();
        let timeout = self.repl_timeout();
        self.send_ack().await?;
        loop {
            let acks = {
                let mut server = self.shared.borrow_mut();
                let start = server.aof.end();
                let applied = apply(
                    &mut server,
                    &mut master,
                    &mut parser,
                    &mut input,
                    &mut out,
                    &mut raw,
                    &mut consumed,
                );
                // As Redis's beforeSleep: what the batch appended is written to the AOF now
                // (and fsynced per `appendfsync`), not left to the cron.
                if server.aof.end() != start {
                    let _ = server.aof.before_reply(true);
                }
                applied
            };
            let acks = match acks {
                Ok(acks) => acks,
                Err(error) => {
                    warning!("Protocol error from the MASTER: {error}");
                    return Err(LinkError::Logged);
                }
            };
            if acks > 0 || last_ack.elapsed() >= Duration::from_secs(1) {
                last_ack = Instant::now();
                self.send_ack().await?;
            }
            let before = input.len();
            let read =
                tokio::time::timeout(Duration::from_secs(1), self.read_more(&mut input, timeout));
            match read.await {
                Ok(result) => {
                    result?;
                    raw.extend_from_slice(&input[before..]);
                }
                Err(_) => {
                    let silent = self
                        .with_link(|link| link.last_io.map(|at| at.elapsed()))
                        .flatten()
                        .is_some_and(|quiet| quiet > timeout);
                    if silent {
                        warning!("MASTER timeout: no data nor PING received...");
                        return Err(LinkError::Logged);
                    }
                }
            }
        }
    }

    /// `REPLCONF ACK <applied offset>`.
    async fn send_ack(&mut self) -> Result<(), LinkError> {
        let offset = self.shared.borrow().replication.offset;
        let mut request = Vec::new();
        amber_aof::encode_command(
            &[
                b"REPLCONF".as_slice(),
                b"ACK",
                offset.to_string().as_bytes(),
            ],
            &mut request,
        );
        self.stream()?.write_all(&request).await?;
        Ok(())
    }

    /// Registers the master client (`flags=M` in `CLIENT LIST`).
    fn register_master_client(&mut self) -> ClientState {
        let mut server = self.shared.borrow_mut();
        let id = server.next_client_id;
        server.next_client_id += 1;
        let (addr, laddr, fd) = match &self.stream {
            Some(stream) => (
                stream
                    .peer_addr()
                    .map(|a| crate::server::format_addr(&a))
                    .unwrap_or_default(),
                stream
                    .local_addr()
                    .map(|a| crate::server::format_addr(&a))
                    .unwrap_or_default(),
                std::os::fd::AsRawFd::as_raw_fd(stream),
            ),
            None => Default::default(),
        };
        let mut info = ClientInfo::new(id, addr, laddr, fd, false);
        info.flags = 'M';
        self.killed = Some(info.kill.clone());
        let info = Rc::new(RefCell::new(info));
        server.clients.insert(id, info.clone());
        let stream_db = match server.replication.master.as_mut() {
            Some(link) => {
                link.client_id = Some(id);
                link.stream_db
            }
            None => 0,
        };
        let mut client = ClientState::connected(info, id, false, true);
        client.is_master = true;
        client.db = stream_db;
        client
    }
}

/// Where a snapshot read from the socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DisklessTarget {
    /// A second dataset, swapped in once complete (`swapdb`).
    Swap,
    /// The (empty) dataset itself (`on-empty-db`).
    Empty,
}

/// How the master sends its snapshot.
enum Transfer {
    /// `$<len>`: exactly that many bytes.
    Sized(u64),
    /// `$EOF:<mark>`: bytes until the 40-byte mark.
    Streamed(Vec<u8>),
}

/// Executes every complete command of the master's stream in `input`. Each applied command's
/// bytes move the offset and go to this server's replicas. Returns how many `REPLCONF GETACK`s
/// were seen (each wants an acknowledgement).
fn apply(
    server: &mut Server,
    master: &mut ClientState,
    parser: &mut RequestParser,
    input: &mut BytesMut,
    out: &mut ReplyWriter,
    raw: &mut Vec<u8>,
    consumed: &mut usize,
) -> Result<usize, amber_protocol::ProtocolError> {
    let mut acks = 0;
    let mut applied = 0;
    server.now_ms = unix_ms();
    let limits = Limits {
        max_bulk_len: server.settings.proto_max_bulk_len,
        authenticated: true,
    };
    // The master's commands see keys as it does: nothing expires under them.
    server.keyspace.set_expiry_paused(true);
    let result = loop {
        let before = input.len();
        let next = parser.next_request(input, &limits);
        *consumed += before - input.len();
        match next {
            Ok(Some(args)) => {
                if args[0].eq_ignore_ascii_case(b"replconf")
                    && args
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"))
                {
                    acks += 1;
                } else {
                    let mut ctx = Ctx {
                        server: &mut *server,
                        client: &mut *master,
                        out: &mut *out,
                    };
                    execute(&mut ctx, &args);
                    out.buffer().clear();
                }
                applied += std::mem::take(consumed);
            }
            Ok(None) => break Ok(acks),
            Err(error) => break Err(error),
        }
    };
    // The applied commands' bytes, passed on in one piece.
    if applied > 0 {
        server.replication.proxy(&raw[..applied]);
        raw.drain(..applied);
    }
    server.keyspace.set_expiry_paused(false);
    if let Some(link) = server.replication.master.as_mut() {
        link.stream_db = master.db;
    }
    master.info.borrow_mut().last_interaction = Instant::now();
    result
}

/// `key-load-delay` in microseconds (a test knob: Redis slows every load with it).
fn key_load_delay(shared: &Rc<RefCell<Server>>) -> u64 {
    shared.borrow().config.get_i64("key-load-delay").max(0) as u64
}

/// Logs why the master's snapshot could not be loaded from `source` (`socket` or `disk`), in
/// Redis's two lines: the RDB error (which log watchers and Redis's tests look for), then the
/// sync failure.
fn log_load_failure(source: &str, error: &dyn std::fmt::Display) {
    warning!("Internal error in RDB reading the master's snapshot: {error}");
    warning!(
        "Failed trying to load the MASTER synchronization DB from {source}, check server logs."
    );
}

/// Loads the received snapshot in place of the dataset, a batch of keys at a time while
/// clients get `-LOADING`. Expired keys are kept: the master will send their `DEL`s.
async fn load_snapshot(
    shared: &Rc<RefCell<Server>>,
    path: &Path,
) -> Result<crate::persistence::rdb::FileMeta, LinkError> {
    let mut loader =
        crate::persistence::rdb::Loader::open(path, &shared.borrow().encoding_limits()).map_err(
            |error| {
                log_load_failure("disk", &error);
                LinkError::Logged
            },
        )?;
    loader.keep_expired = true;
    loader.key_delay_us = key_load_delay(shared);
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    {
        let mut server = shared.borrow_mut();
        notice!("MASTER <-> REPLICA sync: Flushing old data");
        server.kill_job_for_replication_load();
        server.replication.discard_history();
        if server.aof.is_on() {
            // As Redis: the AOF stops while the master's dataset loads, then a rewrite
            // starts a new one from it.
            let _ = server.switch_aof(false);
            server.replication_aof_restart = true;
        }
        server.flush_all_for_sync();
        server.loading = Some((started, total, 0));
        notice!("MASTER <-> REPLICA sync: Loading DB in memory");
    }
    loop {
        let step = {
            let mut server = shared.borrow_mut();
            let now = unix_ms();
            let result = loader.step(&mut server.keyspace, now, 1024);
            server.loading = Some((started, total, loader.offset()));
            result
        };
        match step {
            Ok(true) => break,
            Ok(false) => tokio::task::yield_now().await,
            Err(error) => {
                let mut server = shared.borrow_mut();
                server.keyspace.clear();
                server.loading = None;
                if let Some(link) = server.replication.master.as_mut() {
                    link.can_continue = false;
                }
                log_load_failure("disk", &error);
                return Err(LinkError::Logged);
            }
        }
    }
    let mut server = shared.borrow_mut();
    server.loading = None;
    let stats = loader.stats;
    notice!("{}", stats.summary());
    server.rdb.last_load = (stats.loaded, stats.expired);
    notice!(
        "MASTER <-> REPLICA sync: Loaded in {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    Ok(loader.repl.clone())
}

/// A snapshot is in: this server's history becomes the master's from `offset`, the stream
/// continues in the database the snapshot recorded, and a stopped AOF starts again.
fn finish_full_sync(
    server: &mut Server,
    replid: String,
    offset: u64,
    recorded: &crate::persistence::rdb::FileMeta,
) {
    server.replication.adopt_master_history(replid, offset);
    if let Err(error) = server.replace_functions(&recorded.functions) {
        warning!("Failed loading the master's Functions libraries: {error}");
    }
    if let Some(link) = server.replication.master.as_mut() {
        link.stream_db = recorded
            .stream_db
            .and_then(|db| usize::try_from(db).ok())
            .unwrap_or(0);
        link.can_continue = true;
        link.transfer = None;
    }
    restart_aof(server);
}

/// Turns the AOF back on after a full synchronization stopped it (a rewrite writes the base).
fn restart_aof(server: &mut Server) {
    if !std::mem::take(&mut server.replication_aof_restart) {
        return;
    }
    if let Err(error) = server.switch_aof(true) {
        warning!(
            "Failed enabling the AOF after successful master synchronization! Trying it again in one second: {error}"
        );
    }
}
