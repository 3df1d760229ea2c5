//! Connected clients as the server sees them (`CLIENT LIST`), and what ties them to keys:
//! WATCH, blocking commands and MONITOR.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Instant;

use crate::signal::Signal;

use super::Server;

/// What `CLIENT LIST` shows of a connection, shared between its task and the server.
#[derive(Debug)]
pub(crate) struct ClientInfo {
    /// `CLIENT ID`.
    pub id: u64,
    /// Peer address (`addr=`), or the socket path for a Unix socket.
    pub addr: String,
    /// Local address (`laddr=`).
    pub laddr: String,
    /// File descriptor.
    pub fd: i32,
    /// `CLIENT SETNAME`.
    pub name: Vec<u8>,
    /// Selected database.
    pub db: usize,
    /// When the connection was accepted.
    pub created: Instant,
    /// Last time a command arrived.
    pub last_interaction: Instant,
    /// The last command's name.
    pub last_command: &'static str,
    /// RESP version (2 or 3).
    pub resp: u8,
    /// Bytes waiting in the query buffer.
    pub query_buffer: usize,
    /// Bytes the query buffer holds allocated (`qbuf` + `qbuf-free`).
    pub query_buffer_capacity: usize,
    /// Asks the connection to resize its query buffer (from the cron) to `shrink_to` bytes:
    /// 0 frees an idle connection's empty buffer.
    pub shrink: Rc<Signal>,
    /// The size the cron asks the query buffer to shrink to (see `shrink`).
    pub shrink_to: Option<usize>,
    /// The largest query buffer content since the cron last looked (Redis's
    /// `querybuf_peak`).
    pub query_buffer_peak: usize,
    /// Bytes the connection's reply buffer holds allocated (replies being written, or room
    /// kept for the next ones).
    pub reply_buffer: usize,
    /// The most reply bytes one batch put in the buffer since it was last resized (`rbp`).
    pub reply_peak: usize,
    /// Bytes of replies built and not yet written (checked against the output limits).
    pub reply_pending: usize,
    /// Bytes of a request's arguments read so far, while the request is incomplete
    /// (`argv-mem`).
    pub argv_memory: usize,
    /// The ACL user the connection runs as (`user=`).
    pub user: String,
    /// `CLIENT NO-EVICT on`: never closed by client eviction.
    pub no_evict: bool,
    /// Pub/Sub messages for this connection not yet written (see [`crate::pubsub`]).
    pub outbox: Vec<u8>,
    /// Capacity of the outbox buffer its task took and is writing to the socket: still
    /// memory this connection holds.
    pub outbox_writing: usize,
    /// Wakes the connection task to write its outbox.
    pub push: Rc<Signal>,
    /// Whether the Pub/Sub flush is about to wake it (see `PubSub::pending`).
    pub push_pending: bool,
    /// Since when the outbox has been over the soft limit.
    pub over_soft_limit_since: Option<Instant>,
    /// Channels, patterns and shard channels subscribed to (`sub=`, `psub=`, `ssub=` in
    /// `CLIENT LIST`).
    pub subscriptions: (usize, usize, usize),
    /// Whether this is a Unix-socket connection.
    pub unix: bool,
    /// Set to close the connection (`CLIENT KILL`, `timeout`).
    pub killed: bool,
    /// `CLIENT LIST` flags: `N` for a normal client, `S` for a replica.
    pub flags: char,
    /// Wakes the connection task when it must close.
    pub kill: Rc<Signal>,
    /// Wakes a blocked client when one of its keys may have data.
    pub wake: Rc<Signal>,
    /// This blocked client must stop waiting (`CLIENT UNBLOCK`, a role change): with an error
    /// reply, or `None` to reply as if it timed out.
    pub unblock: Option<Option<&'static str>>,
    /// What a script running past `busy-reply-threshold` needs to serve this client.
    pub busy: BusyLink,
    /// `CLIENT TRACKING` mode, when on.
    pub tracking: Option<crate::tracking::ClientTracking>,
}

/// Lets the server serve a client while a long script runs (see `net::busy`): the connection
/// task parks its state here while it waits for input.
#[derive(Default)]
pub(crate) struct BusyLink {
    /// The client's state, while its task waits for input.
    pub parked: Option<crate::commands::ClientState>,
    /// The task waits with no partial request in its buffer: input may be read beside it.
    pub idle: bool,
    /// Bytes read while a script was busy that the task has not seen yet.
    pub input: Vec<u8>,
}

impl std::fmt::Debug for BusyLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusyLink")
            .field("parked", &self.parked.is_some())
            .field("idle", &self.idle)
            .field("input", &self.input.len())
            .finish()
    }
}

impl ClientInfo {
    /// Bytes this connection holds in buffers: its query buffer, the replies being written and
    /// unsent Pub/Sub messages (`tot-mem` in `CLIENT LIST`, what client eviction counts), as
    /// the allocator holds them, so they add up with `used_memory`.
    pub(crate) fn buffer_memory(&self) -> usize {
        use crate::alloc::allocated_size;
        allocated_size(self.query_buffer_capacity)
            + self.argv_memory
            + allocated_size(self.reply_buffer)
            + allocated_size(self.outbox.capacity())
            + allocated_size(self.outbox_writing)
    }

    /// Whether client eviction may close this connection: a normal or Pub/Sub client without
    /// `CLIENT NO-EVICT on` (never a replica or the master link).
    pub(crate) fn evictable(&self) -> bool {
        !self.no_evict && !matches!(self.flags, 'S' | 'M') && !self.killed
    }

    /// A newly connected (or internal) client: database 0, RESP2, no name.
    pub(crate) fn new(id: u64, addr: String, laddr: String, fd: i32, unix: bool) -> ClientInfo {
        let now = Instant::now();
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            name: Vec::new(),
            db: 0,
            created: now,
            last_interaction: now,
            last_command: "",
            resp: 2,
            query_buffer: 0,
            query_buffer_capacity: 0,
            shrink: Rc::new(Signal::new()),
            shrink_to: None,
            query_buffer_peak: 0,
            outbox: Vec::new(),
            outbox_writing: 0,
            push: Rc::new(Signal::new()),
            push_pending: false,
            over_soft_limit_since: None,
            reply_buffer: 0,
            reply_peak: 0,
            reply_pending: 0,
            argv_memory: 0,
            no_evict: false,
            user: "default".to_string(),
            subscriptions: (0, 0, 0),
            unix,
            killed: false,
            flags: 'N',
            kill: Rc::new(Signal::new()),
            wake: Rc::new(Signal::new()),
            unblock: None,
            busy: BusyLink::default(),
            tracking: None,
        }
    }
}

/// What ties clients to keys and to other clients' commands.
#[derive(Default)]
pub(crate) struct ClientLinks {
    /// Clients watching each `(db, key)`.
    pub(crate) watchers: HashMap<(usize, Vec<u8>), Vec<u64>>,
    /// Clients whose watched keys were touched: their next EXEC fails.
    pub(crate) invalidated: HashSet<u64>,
    /// Clients blocked on each `(db, key)`, in the order they blocked.
    pub(crate) blocking: HashMap<(usize, Vec<u8>), Vec<u64>>,
    /// Clients in MONITOR mode, shown every command executed.
    pub(crate) monitors: Vec<u64>,
}

impl Server {
    /// Wakes the clients blocked on `key` in `db`, oldest first (Redis's signalKeyAsReady).
    pub(crate) fn signal_ready(&self, db: usize, key: &[u8]) {
        let Some(ids) = self.links.blocking.get(&(db, key.to_vec())) else {
            return;
        };
        for id in ids {
            if let Some(info) = self.clients.get(id) {
                info.borrow().wake.notify_one();
            }
        }
    }

    /// Wakes every client blocked on a key of `db` that now exists, even logically expired
    /// (after SWAPDB; a woken client then deletes it, and the deletion is propagated).
    pub(crate) fn signal_blocked_in(&mut self, db: usize) {
        let keys: Vec<Vec<u8>> = self
            .links
            .blocking
            .keys()
            .filter(|(blocked_db, _)| *blocked_db == db)
            .map(|(_, key)| key.clone())
            .collect();
        for key in keys {
            if self.keyspace.db(db).raw(&key).is_some() {
                self.signal_ready(db, &key);
            }
        }
    }

    /// Records that `client` waits for data on `keys` of `db`.
    pub(crate) fn block_on(&mut self, client: u64, db: usize, keys: &[Vec<u8>]) {
        if let Some(info) = self.clients.get(&client) {
            info.borrow_mut().flags = 'b';
        }
        for key in keys {
            let waiting = self.links.blocking.entry((db, key.clone())).or_default();
            if !waiting.contains(&client) {
                waiting.push(client);
            }
        }
    }

    /// Forgets that `client` waits on `keys` of `db`.
    pub(crate) fn unblock(&mut self, client: u64, db: usize, keys: &[Vec<u8>]) {
        if let Some(info) = self.clients.get(&client) {
            let mut info = info.borrow_mut();
            if info.flags == 'b' {
                info.flags = 'N';
            }
        }
        for key in keys {
            let slot = (db, key.clone());
            if let Some(waiting) = self.links.blocking.get_mut(&slot) {
                waiting.retain(|&id| id != client);
                if waiting.is_empty() {
                    self.links.blocking.remove(&slot);
                }
            }
        }
    }

    /// Shows a command to the MONITOR clients: `+<time> [<db> <addr>] "cmd" "arg" ...`.
    pub(crate) fn feed_monitors(
        &mut self,
        client: u64,
        db: usize,
        addr: &str,
        args: &[bytes::Bytes],
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = format!(
            "+{}.{:06} [{db} {addr}]",
            now.as_secs(),
            now.subsec_micros()
        );
        for arg in args {
            line.push(' ');
            line.push_str(&amber_protocol::quote_arg(arg));
        }
        line.push_str("\r\n");
        for id in &self.links.monitors {
            if *id == client {
                continue;
            }
            if let Some(info) = self.clients.get(id) {
                let mut info = info.borrow_mut();
                info.outbox.extend_from_slice(line.as_bytes());
                info.push.notify_one();
            }
        }
    }

    /// Whether `client` is blocked on keys.
    pub(crate) fn is_blocked(&self, client: u64) -> bool {
        self.replication.is_waiter(client)
            || self
                .links
                .blocking
                .values()
                .any(|ids| ids.contains(&client))
    }

    /// The clients blocked on keys or in `WAIT`, each once.
    fn blocked_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.links.blocking.values().flatten().copied().collect();
        ids.extend(self.replication.waiter_ids());
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Fails every blocked client (on keys or in `WAIT`), as Redis does when a master becomes
    /// a replica.
    pub(crate) fn unblock_all_for_role_change(&mut self) {
        for id in self.blocked_ids() {
            if let Some(info) = self.clients.get(&id) {
                let mut info = info.borrow_mut();
                info.unblock = Some(Some(
                    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
                ));
                info.wake.notify_one();
            }
        }
    }

    /// Number of clients blocked on keys or in `WAIT` (`blocked_clients`).
    pub(crate) fn blocked_clients(&self) -> usize {
        self.blocked_ids().len()
    }

    /// Invalidates the transactions of clients watching `key` in `db` (Redis's signalModifiedKey).
    pub(crate) fn touch_key(&mut self, db: usize, key: &[u8]) {
        if let Some(ids) = self.links.watchers.get(&(db, key.to_vec())) {
            self.links.invalidated.extend(ids.iter().copied());
        }
        if self.tracking.active() {
            self.invalidate_tracked_key(key);
        }
    }

    /// Stops `client` watching `key` in `db`.
    pub(crate) fn remove_watcher(&mut self, client: u64, db: usize, key: Vec<u8>) {
        let slot = (db, key);
        if let Some(ids) = self.links.watchers.get_mut(&slot) {
            ids.retain(|&other| other != client);
            if ids.is_empty() {
                self.links.watchers.remove(&slot);
            }
        }
    }

    /// Invalidates watchers of every key of `db` that exists now (before a flush or swap).
    pub(crate) fn touch_existing_keys(&mut self, db: usize) {
        self.touch_keys_swapped(db, db);
    }

    /// Invalidates the watchers of keys of `db` that exist in `db` or in `replacement` (the
    /// database whose contents are about to take its place: SWAPDB, as Redis's
    /// `touchAllWatchedKeysInDb`).
    pub(crate) fn touch_keys_swapped(&mut self, db: usize, replacement: usize) {
        let now = self.now_ms;
        let exists =
            |index: usize, key: &[u8]| self.keyspace.db_ref(index).peek(key, now).is_some();
        let touched: Vec<u64> = self
            .links
            .watchers
            .iter()
            .filter(|((watched_db, key), _)| {
                *watched_db == db && (exists(db, key) || exists(replacement, key))
            })
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        self.links.invalidated.extend(touched);
    }
}

/// One class of `client-output-buffer-limit`: a hard limit in bytes, and a soft limit that
/// closes a connection staying over it for `soft_seconds` (0 bytes: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutputLimit {
    /// Bytes past which the connection is closed at once.
    pub hard: u64,
    /// Bytes past which the connection is closed after `soft_seconds`.
    pub soft: u64,
    /// How long a connection may stay past `soft`.
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// The limits of `class` (`normal`, `replica` or `pubsub`; `slave` is `replica`) in a
    /// `client-output-buffer-limit` value.
    pub(crate) fn of_class(value: &str, class: &str) -> OutputLimit {
        let words: Vec<&str> = value.split_whitespace().collect();
        let wanted = |name: &str| name == class || (class == "replica" && name == "slave");
        let Some(limits) = words
            .chunks(4)
            .find(|limits| limits.first().is_some_and(|name| wanted(name)))
        else {
            return OutputLimit::default();
        };
        let size = |index: usize| {
            limits
                .get(index)
                .and_then(|value| crate::config::parse_memory(value))
                .map_or(0, |value| value.max(0) as u64)
        };
        OutputLimit {
            hard: size(1),
            soft: size(2),
            soft_seconds: limits.get(3).and_then(|s| s.parse().ok()).unwrap_or(0),
        }
    }
}

impl ClientInfo {
    /// Checks `pending` unsent bytes against `limit` (Redis's
    /// `checkClientOutputBufferLimits`); when passed, closes the connection with Redis's log
    /// line and returns true.
    pub(crate) fn close_if_over(&mut self, pending: u64, limit: OutputLimit) -> bool {
        let over_soft = limit.soft > 0 && pending > limit.soft;
        let soft_expired = if over_soft {
            let since = *self.over_soft_limit_since.get_or_insert_with(Instant::now);
            since.elapsed().as_secs() >= limit.soft_seconds
        } else {
            self.over_soft_limit_since = None;
            false
        };
        if !((limit.hard > 0 && pending > limit.hard) || soft_expired) {
            return false;
        }
        crate::warning!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            crate::commands::describe_client(self)
        );
        self.outbox = Vec::new();
        self.killed = true;
        self.kill.notify_one();
        true
    }
}
