//! Replication as Redis 7.0 speaks it, on both sides.
//!
//! * As a master: replicas attach with `SYNC` or `PSYNC`. A replica whose replication id and
//!   offset the backlog still covers continues (`+CONTINUE`); any other gets a snapshot
//!   written by a BGSAVE (`+FULLRESYNC <replid> <offset>`, then the RDB as one bulk), then
//!   every write as the commands the AOF records, in one stream with `SELECT`s and
//!   `MULTI`/`EXEC` ([`replicas`]). Replicas acknowledge offsets with `REPLCONF ACK`, which
//!   `WAIT` and `min-replicas-to-write` count.
//! * As a replica (`REPLICAOF host port`): one task ([`link`]) connects, shakes hands, loads
//!   the master's snapshot or continues from its offset, and applies the master's stream. The
//!   applied bytes go unchanged into this server's own backlog and to its own replicas, so a
//!   chain keeps one replication id and one offset space.
//!
//! Offsets follow Redis: `offset` is the number of stream bytes produced (as a master) or
//! applied (as a replica) under the current replication id; the backlog keeps the last
//! `repl-backlog-size` of them.

mod backlog;
mod diskless;
mod failover;
pub(crate) mod link;
mod replicas;
mod socket_source;

use std::rc::Rc;
use std::time::Instant;

use tokio::sync::Notify;

use backlog::Backlog;
pub(crate) use diskless::{FanOut, SEND_ERROR, failure_text, send_to_sockets, shut_down};
pub(crate) use failover::{Failover, FailoverState};
pub(crate) use link::{LinkState, MasterLink};
pub(crate) use replicas::{Capabilities, Detached, NewReplica, Output, Replicas};

/// The replication id shown when there is none (`master_replid2` with no history).
pub(crate) const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// What an RDB records about the replication stream it is a snapshot of (the `repl-stream-db`,
/// `repl-id` and `repl-offset` AUX fields), so a restarted server can continue a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplAux {
    /// The database the stream last selected.
    pub stream_db: u32,
    /// The replication id.
    pub replid: [u8; 40],
    /// The stream offset the snapshot corresponds to.
    pub offset: u64,
}

/// Why a `PSYNC` cannot continue from the backlog (a full resync follows).
#[derive(Debug)]
pub(crate) enum PartialRefused {
    /// `PSYNC ? -1`: the replica asked for a full resync.
    Requested,
    /// Its replication id is neither of ours (or the second one past its end).
    Mismatch,
    /// The backlog does not hold its offset.
    NoBacklog,
}

impl Replication {
    /// Bytes buffered for replicas beyond the backlog (`mem_clients_slaves`; not counted
    /// against `maxmemory`).
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.replicas.buffered_bytes()
    }
}

/// The replication state: ids, offsets, backlog, replicas, and the link to a master.
pub(crate) struct Replication {
    /// The attached replicas.
    pub replicas: Replicas,
    /// The replication id (`master_replid`).
    pub replid: String,
    /// The previous replication id, valid up to `second_offset` (after a promotion).
    pub replid2: String,
    /// The last offset valid under `replid2` plus one (`second_repl_offset`), or -1.
    pub second_offset: i64,
    /// Stream bytes produced or applied so far (`master_repl_offset`).
    pub offset: u64,
    backlog: Option<Backlog>,
    backlog_size: usize,
    backlog_ttl: u64,
    /// Since when no replica is attached (the backlog is freed after `repl-backlog-ttl`).
    no_replicas_since: Instant,
    /// The database the stream last selected.
    selected_db: Option<usize>,
    /// Inside EXEC: `Some(false)` until the first write, which opens a `MULTI`.
    multi: Option<bool>,
    /// The master this server replicates, when it is a replica.
    pub master: Option<MasterLink>,
    /// A running `FAILOVER`.
    pub failover: Option<Failover>,
    /// Wakes the link task when `master` changes.
    pub link_changed: Rc<Notify>,
    /// Clients blocked in WAIT, woken on every acknowledgement.
    waiters: Vec<(u64, Rc<crate::signal::Signal>)>,
    /// When the replicas were last sent a `PING` (`repl-ping-replica-period`).
    last_ping: Instant,
    /// When the replicas waiting for a snapshot were last sent a `\n`.
    last_keepalive: Instant,
    /// The buffer `feed` encodes into.
    scratch: Vec<u8>,
}

impl Replication {
    /// A master without replicas or backlog, with the given replication id.
    pub(crate) fn new(replid: String) -> Replication {
        Replication {
            replicas: Replicas::default(),
            replid,
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            offset: 0,
            backlog: None,
            backlog_size: 1 << 20,
            backlog_ttl: 3600,
            no_replicas_since: Instant::now(),
            selected_db: None,
            multi: None,
            master: None,
            failover: None,
            link_changed: Rc::new(Notify::new()),
            waiters: Vec::new(),
            last_ping: Instant::now(),
            last_keepalive: Instant::now(),
            scratch: Vec::new(),
        }
    }

    /// Applies `client-output-buffer-limit`, `repl-backlog-size` and `repl-backlog-ttl`.
    pub(crate) fn configure(&mut self, config: &crate::config::Config) {
        let limit = crate::server::OutputLimit::of_class(
            config.get("client-output-buffer-limit"),
            "replica",
        );
        self.replicas.set_hard_limit(limit.hard);
        self.backlog_size = config.get_i64("repl-backlog-size").max(16 * 1024) as usize;
        self.backlog_ttl = config.get_i64("repl-backlog-ttl").max(0) as u64;
        if let Some(backlog) = self.backlog.as_mut()
            && backlog.capacity() != self.backlog_size
        {
            backlog.resize(self.backlog_size);
        }
    }

    /// Whether this server replicates a master.
    pub(crate) fn is_replica(&self) -> bool {
        self.master.is_some()
    }

    /// Whether this server's own writes are streamed (a master with a backlog).
    pub(crate) fn streaming(&self) -> bool {
        self.backlog.is_some() && self.master.is_none()
    }

    /// The backlog's state for `INFO replication`: (active, first byte offset, bytes held).
    pub(crate) fn backlog_info(&self) -> (bool, u64, usize) {
        match &self.backlog {
            Some(backlog) => (true, backlog.first_offset(), backlog.len()),
            None => (false, 0, 0),
        }
    }

    /// Bytes the backlog holds (for `MEMORY STATS`).
    pub(crate) fn backlog_memory(&self) -> usize {
        self.backlog.as_ref().map_or(0, |backlog| {
            crate::alloc::allocated_size(backlog.capacity())
        })
    }

    /// Creates the backlog if there is none, starting after the current offset.
    fn ensure_backlog(&mut self) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(self.backlog_size, self.offset + 1));
        }
    }

    /// A replica needs a full synchronization. The first one on a server without a backlog
    /// starts a new history: a new replication id, no second one, as Redis does.
    pub(crate) fn attach_for_snapshot(&mut self, new: NewReplica, fresh_id: String) {
        if self.backlog.is_none() && self.master.is_none() {
            self.replid = fresh_id;
            self.clear_replid2();
            self.ensure_backlog();
            crate::notice!(
                "Replication backlog created, my new replication IDs are '{}' and '{}'",
                self.replid,
                self.replid2
            );
        }
        self.replicas.attach_for_snapshot(new);
    }

    /// `PSYNC replid offset`: attaches the replica online with the backlog from `offset` when
    /// the history allows it.
    pub(crate) fn try_partial(
        &mut self,
        replid: &str,
        offset: u64,
        new: NewReplica,
    ) -> Result<(), (PartialRefused, NewReplica)> {
        let known = replid.eq_ignore_ascii_case(&self.replid)
            || (replid.eq_ignore_ascii_case(&self.replid2)
                && i64::try_from(offset).is_ok_and(|o| o <= self.second_offset));
        if !known {
            if replid == "?" {
                crate::notice!("Full resync requested by replica {}", new.addr);
                return Err((PartialRefused::Requested, new));
            }
            if !replid.eq_ignore_ascii_case(&self.replid)
                && !replid.eq_ignore_ascii_case(&self.replid2)
            {
                crate::notice!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{replid}', my replication IDs are '{}' and '{}')",
                    self.replid,
                    self.replid2
                );
            } else {
                crate::notice!(
                    "Partial resynchronization not accepted: Requested offset for second ID was {offset}, but I can reply up to {}",
                    self.second_offset
                );
            }
            return Err((PartialRefused::Mismatch, new));
        }
        let Some(tail) = self
            .backlog
            .as_ref()
            .and_then(|backlog| backlog.tail_from(offset))
        else {
            crate::notice!(
                "Unable to partial resync with replica {} for lack of backlog (Replica request was: {offset}).",
                new.addr
            );
            if offset > self.offset {
                crate::warning!(
                    "Warning: replica {} tried to PSYNC with an offset that is greater than the master replication offset.",
                    new.addr
                );
            }
            return Err((PartialRefused::NoBacklog, new));
        };
        let preamble = if new.capabilities.psync2 {
            format!("+CONTINUE {}\r\n", self.replid)
        } else {
            "+CONTINUE\r\n".to_string()
        };
        crate::notice!(
            "Partial resynchronization request from {} accepted. Sending {} bytes of backlog starting from offset {offset}.",
            new.addr,
            tail.len()
        );
        self.replicas
            .attach_online(new, preamble.into_bytes(), tail, offset.saturating_sub(1));
        Ok(())
    }

    /// A BGSAVE just forked: replicas waiting for one are served by it, and the stream
    /// restarts with a `SELECT` for them.
    pub(crate) fn snapshot_started(&mut self) {
        if self.replicas.snapshot_started(&self.replid, self.offset) {
            self.selected_db = None;
        }
    }

    /// A diskless snapshot is about to fork: the waiting replicas are told `+FULLRESYNC` now
    /// and their sockets returned; the stream restarts with a `SELECT` for them.
    pub(crate) fn socket_snapshot_starting(&mut self) -> Vec<(u64, i32)> {
        let targets = self
            .replicas
            .socket_snapshot_starting(&self.replid, self.offset);
        if !targets.is_empty() {
            self.selected_db = None;
        }
        targets
    }

    /// The BGSAVE ended: its file goes to the replicas that waited for it, or they are
    /// disconnected.
    pub(crate) fn snapshot_done(&mut self, success: bool, path: &std::path::Path) {
        self.replicas.snapshot_done(success, path);
    }

    /// Forgets a replica whose connection closed.
    pub(crate) fn detach(&mut self, id: u64) -> Detached {
        let detached = self.replicas.detach(id);
        if self.replicas.is_empty() {
            self.no_replicas_since = Instant::now();
        }
        detached
    }

    /// Appends one command executed in `db` to the stream (a replica streams only what its
    /// master sent, see [`Replication::proxy`]).
    pub(crate) fn feed<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if !self.streaming() {
            return;
        }
        // One buffer reused for every command: no allocation per write.
        let mut chunk = std::mem::take(&mut self.scratch);
        chunk.clear();
        if self.selected_db != Some(db) {
            amber_aof::encode_command(
                &[b"SELECT".as_slice(), db.to_string().as_bytes()],
                &mut chunk,
            );
            self.selected_db = Some(db);
        }
        if self.multi == Some(false) {
            amber_aof::encode_command(&[b"MULTI".as_slice()], &mut chunk);
            self.multi = Some(true);
        }
        amber_aof::encode_command(args, &mut chunk);
        self.push(&chunk);
        if chunk.capacity() <= 64 * 1024 {
            self.scratch = chunk;
        }
    }

    /// Appends a command that belongs to no database (`PING`, `EXEC`, `REPLCONF GETACK`).
    pub(crate) fn feed_global<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        if !self.streaming() {
            return;
        }
        let mut chunk = Vec::new();
        amber_aof::encode_command(args, &mut chunk);
        self.push(&chunk);
    }

    /// Marks the start of EXEC: its first write opens a `MULTI` in the stream.
    pub(crate) fn begin_exec(&mut self) {
        self.multi = Some(false);
    }

    /// Marks the end of EXEC: closes the `MULTI` block if one was opened.
    pub(crate) fn end_exec(&mut self) {
        if self.multi.take() == Some(true) {
            self.feed_global(&[b"EXEC".as_slice()]);
        }
    }

    /// A replica applied `bytes` of its master's stream: they extend this server's history
    /// unchanged, for its own replicas.
    pub(crate) fn proxy(&mut self, bytes: &[u8]) {
        // A replica restarted from its RDB continues a history it has no backlog of yet.
        self.ensure_backlog();
        self.push(bytes);
    }

    fn push(&mut self, chunk: &[u8]) {
        let Some(backlog) = self.backlog.as_mut() else {
            return;
        };
        backlog.append(chunk);
        self.offset += chunk.len() as u64;
        self.replicas.push(chunk);
    }

    /// Starts a new history after a promotion: the old id stays valid up to the current
    /// offset as the second id, so the other replicas of the old master can continue.
    pub(crate) fn shift_replid(&mut self, fresh_id: String) {
        self.replid2 = std::mem::replace(&mut self.replid, fresh_id);
        self.second_offset = self.offset as i64 + 1;
        crate::notice!(
            "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
            self.replid2,
            self.second_offset,
            self.replid
        );
        self.ensure_backlog();
        self.selected_db = None;
    }

    /// A new history with no past: a new id and no second one (the backlog was freed).
    pub(crate) fn start_new_history(&mut self, fresh_id: String) {
        self.replid = fresh_id;
        self.clear_replid2();
    }

    fn clear_replid2(&mut self) {
        self.replid2 = NO_REPLID.to_string();
        self.second_offset = -1;
    }

    /// A full synchronization with a master begins: this server's history ends (its own
    /// replicas must synchronize again), as Redis's `replicationAttachToNewMaster`.
    pub(crate) fn discard_history(&mut self) {
        self.replicas.disconnect_all();
        self.backlog = None;
    }

    /// A full synchronization finished: this server's history is now the master's, from
    /// `offset` under `replid`.
    pub(crate) fn adopt_master_history(&mut self, replid: String, offset: u64) {
        self.replid = replid;
        self.offset = offset;
        self.clear_replid2();
        self.backlog = None;
        self.ensure_backlog();
    }

    /// `+CONTINUE <new id>`: the master's history goes on under a new id (it was promoted);
    /// ours follows, and our replicas must learn the new id.
    pub(crate) fn master_changed_id(&mut self, new_id: String) {
        self.replid2 = std::mem::replace(&mut self.replid, new_id);
        self.second_offset = self.offset as i64 + 1;
        self.replicas.disconnect_all();
    }

    /// What a snapshot taken now records about the stream (`None` when this server is in no
    /// replication chain, as Redis's `rdbPopulateSaveInfo`).
    pub(crate) fn save_info(&self, stream_db: Option<usize>) -> Option<ReplAux> {
        if self.master.is_none() && self.backlog.is_none() {
            return None;
        }
        let mut replid = [b'0'; 40];
        let bytes = self.replid.as_bytes();
        replid[..bytes.len().min(40)].copy_from_slice(&bytes[..bytes.len().min(40)]);
        let db = if self.master.is_some() {
            stream_db
        } else {
            self.selected_db
        };
        Some(ReplAux {
            stream_db: db.unwrap_or(0) as u32,
            replid,
            offset: self.offset,
        })
    }

    /// Restores the history a snapshot recorded: a replica continues it with its master; a
    /// master keeps it as its second id, so its replicas can continue after its restart.
    pub(crate) fn restore(&mut self, replid: String, offset: u64) {
        if self.master.is_some() {
            self.replid = replid;
            self.offset = offset;
        } else {
            self.replid2 = replid;
            self.second_offset = offset as i64 + 1;
            self.offset = offset;
            self.backlog = None;
            self.ensure_backlog();
            self.no_replicas_since = Instant::now();
        }
    }

    /// Adds a client blocked in WAIT; it is woken on every acknowledgement.
    pub(crate) fn add_waiter(&mut self, id: u64, wake: Rc<crate::signal::Signal>) {
        self.waiters.retain(|(waiter, _)| *waiter != id);
        self.waiters.push((id, wake));
    }

    /// Whether client `id` is blocked in WAIT.
    pub(crate) fn is_waiter(&self, id: u64) -> bool {
        self.waiters.iter().any(|(waiter, _)| *waiter == id)
    }

    /// The clients blocked in WAIT.
    pub(crate) fn waiter_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.waiters.iter().map(|(id, _)| *id)
    }

    /// Removes a client from the WAIT list.
    pub(crate) fn remove_waiter(&mut self, id: u64) {
        self.waiters.retain(|(waiter, _)| *waiter != id);
    }

    /// `REPLCONF ACK <offset>` from replica `id`.
    pub(crate) fn acknowledge(&mut self, id: u64, offset: u64) {
        self.replicas.acknowledge(id, offset);
        for (_, wake) in &self.waiters {
            wake.notify_one();
        }
    }

    /// Replication's share of the cron: pings the replicas every `repl-ping-replica-period`
    /// seconds and frees the backlog `repl-backlog-ttl` seconds after the last replica left.
    pub(crate) fn cron(&mut self, ping_period: u64) {
        if self.last_keepalive.elapsed().as_secs() >= 1 {
            self.last_keepalive = Instant::now();
            self.replicas.keep_alive();
        }
        if self.master.is_none() && !self.replicas.is_empty() {
            // Not while a failover waits for a replica to reach this exact offset.
            if self.last_ping.elapsed().as_secs() >= ping_period.max(1) && self.failover.is_none() {
                self.last_ping = Instant::now();
                self.feed_global(&[b"PING".as_slice()]);
            }
        } else if self.master.is_none()
            && self.backlog.is_some()
            && self.backlog_ttl > 0
            && self.no_replicas_since.elapsed().as_secs() > self.backlog_ttl
        {
            self.backlog = None;
            crate::notice!(
                "Replication backlog freed after {} seconds without connected replicas.",
                self.backlog_ttl
            );
        }
    }
}
