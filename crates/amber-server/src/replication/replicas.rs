//! The replicas attached to this server: where each is in its synchronization, the stream bytes
//! it has not been handed yet, and what it last acknowledged.
//!
//! Each replica's connection task sends what [`Replicas::take_output`] hands it; a replica
//! whose unsent output passes the `client-output-buffer-limit replica` hard limit is
//! disconnected, so memory stays bounded whatever the replica's speed.

use std::fs::File;
use std::rc::Rc;
use std::time::Instant;

/// Where a replica is in its synchronization.
#[derive(Debug)]
enum State {
    /// Waiting for a BGSAVE to start (one was already running for another purpose).
    WaitBgsaveStart,
    /// The snapshot that will be sent is being made; writes since its fork are buffered.
    /// `to_socket`: a diskless child writes it to the replica's socket itself.
    WaitBgsaveEnd {
        /// Whether the child writes to the socket (nothing else may meanwhile).
        to_socket: bool,
    },
    /// The snapshot is ready to be sent: the open file and its length.
    SendRdb(File, u64),
    /// A diskless snapshot was sent: the stream follows the replica's first `REPLCONF ACK`
    /// (it acknowledges once the snapshot is loaded).
    WaitAck,
    /// The snapshot was handed to the connection (or the replica continued from the
    /// backlog): only the stream remains.
    Online,
}

/// How a replica connected: what it can take and how it asked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Capabilities {
    /// It asked with PSYNC (it is told `+FULLRESYNC <replid> <offset>` first).
    pub psync: bool,
    /// `REPLCONF capa psync2`: `+CONTINUE` carries the replication id.
    pub psync2: bool,
    /// `REPLCONF capa eof`: it accepts a snapshot of unknown length.
    pub eof: bool,
}

/// Bytes written to the socket `fd` that the peer has not acknowledged yet (0 if unknown).
fn unsent_bytes(fd: i32) -> u32 {
    let mut unsent: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer, which points at `unsent`; `fd` is
    // an attached replica's open socket.
    let result = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unsent) };
    if result == 0 {
        u32::try_from(unsent).unwrap_or(0)
    } else {
        0
    }
}

/// One attached replica.
struct Replica {
    id: u64,
    /// The socket's descriptor (a diskless child writes to it).
    fd: i32,
    addr: String,
    /// The port the replica said it listens on (`REPLCONF listening-port`).
    listening_port: u16,
    state: State,
    capabilities: Capabilities,
    /// Bytes to send before the snapshot or the stream (`+FULLRESYNC`/`+CONTINUE` lines).
    preamble: Vec<u8>,
    /// Stream bytes not yet handed to the connection task.
    pending: Vec<u8>,
    /// The last offset it acknowledged (`REPLCONF ACK`), and when.
    ack_offset: u64,
    ack_time: Instant,
    /// When it attached (`repl-diskless-sync-delay` counts from the first waiting replica).
    attached: Instant,
    /// A `\n` keep-alive is due (sent while it waits for its snapshot).
    keepalive: bool,
    /// It acknowledged while its diskless snapshot was still counted as being sent.
    acked_early: bool,
    /// Its task was woken for pending bytes it has not taken yet.
    woken: bool,
    /// While a diskless child writes to it: the bytes last seen unsent in the socket, and
    /// since when that count has not moved (a stalled replica times out, see
    /// [`Replicas::drop_stalled_transfers`]).
    unsent: (u32, Instant),
    /// Killed (`CLIENT KILL`): its buffer is gone and nothing more is queued for it while
    /// its task closes the connection.
    closing: bool,
    wake: Rc<crate::signal::Signal>,
    kill: Rc<crate::signal::Signal>,
}

impl Replica {
    /// Whether a diskless child is writing the snapshot to its socket.
    fn is_socket_target(&self) -> bool {
        matches!(self.state, State::WaitBgsaveEnd { to_socket: true })
    }
}

/// What the departure of a replica means for the snapshot being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detached {
    /// It was the last replica a diskless child was writing to.
    LastSocketTarget,
    /// It was the last replica waiting for a BGSAVE's file.
    LastDiskWaiter,
    /// The snapshot, if any, still has someone to go to.
    Other,
}

/// What a replica's connection task sends next.
pub(crate) enum Output {
    /// The snapshot: `$<len>\r\n` then the file's bytes.
    Rdb(File, u64),
    /// Stream bytes.
    Bytes(Vec<u8>),
}

/// Who a new replica is: its connection and how to reach its task.
pub(crate) struct NewReplica {
    /// Its client id.
    pub id: u64,
    /// Its socket's descriptor.
    pub fd: i32,
    /// `ip:port` of the connection.
    pub addr: String,
    /// `REPLCONF listening-port`.
    pub listening_port: u16,
    /// What it said it supports.
    pub capabilities: Capabilities,
    /// Wakes its connection task when there is output.
    pub wake: Rc<crate::signal::Signal>,
    /// Closes its connection.
    pub kill: Rc<crate::signal::Signal>,
}

/// One replica as `INFO replication` and `ROLE` show it.
pub(crate) struct ReplicaView {
    /// The IP of the connection.
    pub ip: String,
    /// `REPLCONF listening-port`.
    pub port: u16,
    /// Redis's state name (`wait_bgsave`, `send_bulk`, `online`).
    pub state: &'static str,
    /// The last acknowledged offset.
    pub ack_offset: u64,
    /// Seconds since its last acknowledgement (0 unless online).
    pub lag: u64,
}

/// Every attached replica.
#[derive(Default)]
pub(crate) struct Replicas {
    list: Vec<Replica>,
    /// The hard output limit in bytes (0: none).
    hard_limit: u64,
}

impl Replicas {
    /// Whether the client `id` is an attached replica.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.list.iter().any(|replica| replica.id == id)
    }

    /// Whether no replica is attached.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number attached (`connected_slaves`).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Sets the hard limit of unsent output per replica (0: none).
    pub(crate) fn set_hard_limit(&mut self, limit: u64) {
        self.hard_limit = limit;
    }

    /// Attaches a replica that needs a full synchronization: it waits for the next snapshot.
    pub(crate) fn attach_for_snapshot(&mut self, new: NewReplica) {
        self.attach(new, State::WaitBgsaveStart, Vec::new(), Vec::new(), 0);
    }

    /// Attaches a replica that continues from `offset`: it gets `preamble` (`+CONTINUE`), then
    /// `backlog` (the stream from its offset), then the stream as it grows.
    pub(crate) fn attach_online(
        &mut self,
        new: NewReplica,
        preamble: Vec<u8>,
        backlog: Vec<u8>,
        offset: u64,
    ) {
        self.attach(new, State::Online, preamble, backlog, offset);
    }

    fn attach(
        &mut self,
        new: NewReplica,
        state: State,
        preamble: Vec<u8>,
        pending: Vec<u8>,
        ack_offset: u64,
    ) {
        self.list.retain(|replica| replica.id != new.id);
        new.wake.notify_one();
        self.list.push(Replica {
            id: new.id,
            fd: new.fd,
            attached: Instant::now(),
            keepalive: false,
            acked_early: false,
            woken: false,
            unsent: (0, Instant::now()),
            closing: false,
            addr: new.addr,
            listening_port: new.listening_port,
            state,
            capabilities: new.capabilities,
            preamble,
            pending,
            ack_offset,
            ack_time: Instant::now(),
            wake: new.wake,
            kill: new.kill,
        });
    }

    /// Forgets a replica (its connection is closing; its socket is still open), and says
    /// whether the snapshot being made still has a replica to go to.
    pub(crate) fn detach(&mut self, id: u64) -> Detached {
        let mut waited = None;
        for replica in &self.list {
            if replica.id != id {
                continue;
            }
            if let State::WaitBgsaveEnd { to_socket } = replica.state {
                waited = Some(to_socket);
            }
            if replica.is_socket_target() {
                // A diskless child holds a copy of the socket and would go on writing the
                // snapshot: end the connection itself, for both.
                let _ = nix::sys::socket::shutdown(replica.fd, nix::sys::socket::Shutdown::Both);
            }
        }
        self.list.retain(|replica| replica.id != id);
        match waited {
            Some(true) if self.socket_targets() == 0 => Detached::LastSocketTarget,
            Some(false) if !self.waiting_for_snapshot_end() => Detached::LastDiskWaiter,
            _ => Detached::Other,
        }
    }

    /// Whether a replica waits for the snapshot being made.
    fn waiting_for_snapshot_end(&self) -> bool {
        self.list
            .iter()
            .any(|replica| matches!(replica.state, State::WaitBgsaveEnd { .. }))
    }

    /// How many replicas a diskless child is writing to (not counting those being closed).
    pub(crate) fn socket_targets(&self) -> usize {
        self.list
            .iter()
            .filter(|replica| replica.is_socket_target() && !replica.closing)
            .count()
    }

    /// Drops the replicas a diskless child writes to whose socket has not taken a byte for
    /// `timeout` (`repl-timeout`), as Redis drops a replica stuck in its full sync. Shutting
    /// the socket down makes the child's write fail, so it goes on with the others.
    pub(crate) fn drop_stalled_transfers(&mut self, timeout: std::time::Duration) {
        for replica in &mut self.list {
            if !replica.is_socket_target() || replica.closing {
                continue;
            }
            let unsent = unsent_bytes(replica.fd);
            if unsent == 0 || unsent != replica.unsent.0 {
                replica.unsent = (unsent, Instant::now());
                continue;
            }
            if replica.unsent.1.elapsed() > timeout {
                crate::warning!(
                    "Disconnecting timedout replica (full sync): {}",
                    replica.addr
                );
                let _ = nix::sys::socket::shutdown(replica.fd, nix::sys::socket::Shutdown::Both);
                replica.closing = true;
                replica.kill.notify_one();
            }
        }
    }

    /// Closes every replica's connection (they will reconnect and synchronize again).
    pub(crate) fn disconnect_all(&mut self) {
        for replica in self.list.drain(..) {
            replica.kill.notify_one();
        }
    }

    /// Whether a replica waits for a snapshot to start.
    pub(crate) fn waiting_for_snapshot(&self) -> bool {
        self.list
            .iter()
            .any(|replica| matches!(replica.state, State::WaitBgsaveStart))
    }

    /// How many replicas wait for a snapshot to start, whether all of them take a snapshot
    /// of unknown length, and how long the first of them has waited.
    pub(crate) fn waiting_stats(&self) -> (usize, bool, std::time::Duration) {
        let waiting = self
            .list
            .iter()
            .filter(|replica| matches!(replica.state, State::WaitBgsaveStart));
        let (mut count, mut eof, mut longest) = (0, true, std::time::Duration::ZERO);
        for replica in waiting {
            count += 1;
            eof &= replica.capabilities.eof;
            longest = longest.max(replica.attached.elapsed());
        }
        (count, eof, longest)
    }

    /// A BGSAVE just forked at stream offset `offset`: replicas waiting for one are served by
    /// it (PSYNC ones are told `+FULLRESYNC` by their connection task). Returns whether any
    /// was.
    pub(crate) fn snapshot_started(&mut self, replid: &str, offset: u64) -> bool {
        let mut any = false;
        for replica in &mut self.list {
            if matches!(replica.state, State::WaitBgsaveStart) {
                replica.state = State::WaitBgsaveEnd { to_socket: false };
                replica.pending.clear();
                if replica.capabilities.psync {
                    replica.preamble = format!("+FULLRESYNC {replid} {offset}\r\n").into_bytes();
                    replica.wake.notify_one();
                }
                any = true;
            }
        }
        any
    }

    /// A diskless child is about to fork at stream offset `offset`: the waiting replicas are
    /// told `+FULLRESYNC` right now, on their sockets (the child writes next), and their
    /// sockets are returned with their ids.
    pub(crate) fn socket_snapshot_starting(
        &mut self,
        replid: &str,
        offset: u64,
    ) -> Vec<(u64, i32)> {
        let mut targets = Vec::new();
        for replica in &mut self.list {
            if !matches!(replica.state, State::WaitBgsaveStart) {
                continue;
            }
            replica.pending.clear();
            replica.keepalive = false;
            if replica.capabilities.psync {
                let line = format!("+FULLRESYNC {replid} {offset}\r\n");
                // The socket's buffer is empty at this point of the handshake, so the short
                // line is taken whole (as Redis assumes); a failure drops the replica.
                // SAFETY: the replica's socket stays open while it is attached (its
                // connection task owns it and detaches the replica before closing it).
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(replica.fd) };
                if nix::unistd::write(fd, line.as_bytes()) != Ok(line.len()) {
                    replica.kill.notify_one();
                    continue;
                }
            }
            replica.state = State::WaitBgsaveEnd { to_socket: true };
            targets.push((replica.id, replica.fd));
        }
        targets
    }

    /// The diskless child ended: on success its replicas wait for their first ACK; on failure
    /// they are disconnected.
    pub(crate) fn socket_snapshot_done(&mut self, success: bool) {
        if success {
            // Redis's words (its parent relays the child's pipe); log watchers and Redis's
            // tests look for this line.
            crate::warning!(
                "Diskless rdb transfer, done reading from pipe, {} replicas still up.",
                self.socket_targets()
            );
        }
        for replica in &mut self.list {
            if !matches!(replica.state, State::WaitBgsaveEnd { to_socket: true }) {
                continue;
            }
            if success {
                crate::notice!(
                    "Streamed RDB transfer with replica {} succeeded (socket). Waiting for REPLCONF ACK from replica to enable streaming",
                    replica.addr
                );
                replica.state = State::WaitAck;
                if std::mem::take(&mut replica.acked_early) {
                    crate::notice!("Synchronization with replica {} succeeded", replica.addr);
                    replica.state = State::Online;
                    replica.wake.notify_one();
                }
            } else {
                replica.kill.notify_one();
            }
        }
    }

    /// Schedules a `\n` keep-alive for every replica still waiting for its snapshot (once a
    /// second, as Redis), except those a diskless child writes to.
    pub(crate) fn keep_alive(&mut self) {
        for replica in &mut self.list {
            if matches!(
                replica.state,
                State::WaitBgsaveStart | State::WaitBgsaveEnd { to_socket: false }
            ) {
                replica.keepalive = true;
                replica.wake.notify_one();
            }
        }
    }

    /// The BGSAVE ended: on success its file goes to the replicas that waited for it; on
    /// failure they are disconnected, as Redis does.
    pub(crate) fn snapshot_done(&mut self, success: bool, path: &std::path::Path) {
        for replica in &mut self.list {
            if !matches!(replica.state, State::WaitBgsaveEnd { to_socket: false }) {
                continue;
            }
            let opened = success
                .then(|| File::open(path).and_then(|file| Ok((file.metadata()?.len(), file))));
            match opened {
                Some(Ok((len, file))) => {
                    crate::notice!("Synchronization with replica {} succeeded", replica.addr);
                    replica.state = State::SendRdb(file, len);
                    replica.wake.notify_one();
                }
                Some(Err(error)) => {
                    crate::warning!("SYNC failed. Can't open/stat DB after BGSAVE: {error}");
                    replica.kill.notify_one();
                }
                None => {
                    crate::warning!(
                        "SYNC failed. BGSAVE child returned an error; closing the connection of replica {}",
                        replica.addr
                    );
                    replica.kill.notify_one();
                }
            }
        }
    }

    /// Frees the stream buffer of a killed replica at once and queues nothing more for it
    /// (its task detaches it when it ends, as for any lost replica).
    pub(crate) fn release(&mut self, id: u64) {
        if let Some(replica) = self.list.iter_mut().find(|replica| replica.id == id) {
            replica.closing = true;
            replica.pending = Vec::new();
            replica.preamble = Vec::new();
        }
    }

    /// Stream bytes held for replicas and not yet handed to their connections.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.list
            .iter()
            .map(|replica| {
                crate::alloc::allocated_size(replica.pending.capacity())
                    + crate::alloc::allocated_size(replica.preamble.capacity())
            })
            .sum()
    }

    /// Appends stream bytes for every replica that already has a snapshot coming.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let limit = self.hard_limit;
        for replica in &mut self.list {
            if matches!(replica.state, State::WaitBgsaveStart) || replica.closing {
                continue;
            }
            replica.pending.extend_from_slice(chunk);
            if limit > 0 && replica.pending.len() as u64 > limit {
                crate::warning!(
                    "Client id={} addr={} flags=S scheduled to be closed ASAP for overcoming of output buffer limits.",
                    replica.id,
                    replica.addr
                );
                replica.pending = Vec::new();
                replica.kill.notify_one();
            } else if matches!(replica.state, State::Online) && !replica.woken {
                // One wake-up per batch: the task takes everything pending at once.
                replica.woken = true;
                replica.wake.notify_one();
            }
        }
    }

    /// Records `REPLCONF ACK <offset>` from replica `id`.
    pub(crate) fn acknowledge(&mut self, id: u64, offset: u64) {
        if let Some(replica) = self.list.iter_mut().find(|replica| replica.id == id) {
            replica.ack_offset = replica.ack_offset.max(offset);
            replica.ack_time = Instant::now();
            match replica.state {
                State::WaitAck => {
                    crate::notice!("Synchronization with replica {} succeeded", replica.addr);
                    replica.state = State::Online;
                    replica.wake.notify_one();
                }
                // It loaded the snapshot before the child's exit was noticed.
                State::WaitBgsaveEnd { to_socket: true } => replica.acked_early = true,
                _ => {}
            }
        }
    }

    /// Drops the online replicas that acknowledged nothing for `timeout` (`repl-timeout`).
    /// `SYNC` replicas never acknowledge and are kept, as Redis keeps them.
    pub(crate) fn drop_silent(&mut self, timeout: std::time::Duration) {
        for replica in &self.list {
            if matches!(replica.state, State::Online)
                && replica.capabilities.psync
                && replica.ack_time.elapsed() > timeout
            {
                crate::warning!(
                    "Disconnecting timedout replica (streaming sync): {}",
                    replica.addr
                );
                replica.kill.notify_one();
            }
        }
    }

    /// Online replicas that acknowledged at least `offset` (WAIT).
    pub(crate) fn acked_at_least(&self, offset: u64) -> usize {
        self.list
            .iter()
            .filter(|replica| {
                matches!(replica.state, State::Online) && replica.ack_offset >= offset
            })
            .count()
    }

    /// Online replicas whose last acknowledgement is at most `max_lag` seconds old
    /// (`min-replicas-max-lag`).
    pub(crate) fn good_count(&self, max_lag: u64) -> usize {
        self.list
            .iter()
            .filter(|replica| {
                matches!(replica.state, State::Online)
                    && replica.ack_time.elapsed().as_secs() <= max_lag
            })
            .count()
    }

    /// What the connection of replica `id` sends next, if anything.
    pub(crate) fn take_output(&mut self, id: u64) -> Option<Output> {
        let replica = self.list.iter_mut().find(|replica| replica.id == id)?;
        replica.woken = false;
        if std::mem::take(&mut replica.keepalive)
            && matches!(
                replica.state,
                State::WaitBgsaveStart | State::WaitBgsaveEnd { to_socket: false }
            )
            && replica.preamble.is_empty()
        {
            return Some(Output::Bytes(b"\n".to_vec()));
        }
        if !replica.preamble.is_empty() {
            return Some(Output::Bytes(std::mem::take(&mut replica.preamble)));
        }
        match std::mem::replace(&mut replica.state, State::Online) {
            State::SendRdb(file, len) => {
                // Online from now: its lag counts from here, as Redis's putSlaveOnline.
                replica.ack_time = Instant::now();
                Some(Output::Rdb(file, len))
            }
            State::Online if !replica.pending.is_empty() => {
                Some(Output::Bytes(std::mem::take(&mut replica.pending)))
            }
            State::Online => None,
            waiting => {
                replica.state = waiting;
                None
            }
        }
    }

    /// Every replica, for `INFO replication` and `ROLE`.
    pub(crate) fn views(&self) -> Vec<ReplicaView> {
        self.list
            .iter()
            .map(|replica| {
                let (state, online) = match replica.state {
                    State::WaitBgsaveStart | State::WaitBgsaveEnd { .. } => ("wait_bgsave", false),
                    State::SendRdb(..) => ("send_bulk", false),
                    State::WaitAck | State::Online => ("online", true),
                };
                let ip = replica
                    .addr
                    .rsplit_once(':')
                    .map_or(replica.addr.as_str(), |(ip, _)| ip);
                ReplicaView {
                    ip: ip.to_string(),
                    port: replica.listening_port,
                    state,
                    ack_offset: replica.ack_offset,
                    lag: if online {
                        replica.ack_time.elapsed().as_secs()
                    } else {
                        0
                    },
                }
            })
            .collect()
    }
}
