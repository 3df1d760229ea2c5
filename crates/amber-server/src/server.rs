//! The server's state, owned by the one thread that runs the event loop and executes commands.
//!
//! Every connection task borrows [`Server`] only while it executes a batch of parsed commands,
//! never across an `.await`: between two batches the keyspace is always consistent, which is
//! the quiesced point from which a later `fork()` (BGSAVE, AOF rewrite) will be taken.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use amber_keyspace::Keyspace;
use tokio::sync::Notify;

use crate::config::Config;

/// Settings read on hot paths, refreshed from [`Config`] whenever it changes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `requirepass`, if set.
    pub requirepass: Option<Vec<u8>>,
    /// `protected-mode`.
    pub protected_mode: bool,
    /// `maxclients`.
    pub maxclients: usize,
    /// `timeout` in seconds (0 = never).
    pub timeout: u64,
    /// `proto-max-bulk-len`.
    pub proto_max_bulk_len: u64,
    /// `client-query-buffer-limit`.
    pub client_query_buffer_limit: usize,
    /// `hz`, clamped to 1..=500 as Redis does.
    pub hz: u32,
    /// `active-expire-effort`.
    pub active_expire_effort: u32,
    /// `enable-debug-command`: `no`, `yes` or `local`.
    pub enable_debug_command: String,
    /// `tcp-keepalive` in seconds (0 = off).
    pub tcp_keepalive: u32,
}

impl Settings {
    /// Reads the hot settings out of `config`.
    pub fn from_config(config: &Config) -> Settings {
        let requirepass = config.get("requirepass");
        Settings {
            requirepass: (!requirepass.is_empty()).then(|| requirepass.as_bytes().to_vec()),
            protected_mode: config.get_bool("protected-mode"),
            maxclients: config.get_i64("maxclients").max(1) as usize,
            timeout: config.get_i64("timeout").max(0) as u64,
            proto_max_bulk_len: config.get_i64("proto-max-bulk-len").max(0) as u64,
            client_query_buffer_limit: config.get_i64("client-query-buffer-limit").max(0) as usize,
            hz: config.get_i64("hz").clamp(1, 500) as u32,
            active_expire_effort: config.get_i64("active-expire-effort").clamp(1, 10) as u32,
            enable_debug_command: config.get("enable-debug-command").to_string(),
            tcp_keepalive: config
                .get_i64("tcp-keepalive")
                .clamp(0, i64::from(u32::MAX)) as u32,
        }
    }
}

/// Counters reported by `INFO stats`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections accepted since start.
    pub connections_received: u64,
    /// Connections refused (`maxclients`).
    pub rejected_connections: u64,
    /// Commands executed.
    pub commands_processed: u64,
    /// Bytes read from clients.
    pub net_input_bytes: u64,
    /// Bytes written to clients.
    pub net_output_bytes: u64,
    /// Keys deleted by expiry (lazy or active).
    pub expired_keys: u64,
    /// Lookups that found the key.
    pub keyspace_hits: u64,
    /// Lookups that did not.
    pub keyspace_misses: u64,
    /// Commands that returned an error.
    pub error_replies: u64,
    /// Operations per second, sampled by the cron.
    pub instantaneous_ops: u64,
}

/// What `CLIENT LIST` shows of a connection, shared between its task and the server.
#[derive(Debug)]
pub struct ClientInfo {
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
    /// Whether this is a Unix-socket connection.
    pub unix: bool,
    /// Set to close the connection (`CLIENT KILL`, `timeout`).
    pub killed: bool,
    /// Wakes the connection task when it must close.
    pub kill: Rc<Notify>,
}

/// The whole server state.
pub struct Server {
    /// The configuration, as `CONFIG GET` shows it.
    pub config: Config,
    /// Hot settings derived from the configuration.
    pub settings: Settings,
    /// All databases.
    pub keyspace: Keyspace,
    /// Connected clients by id.
    pub clients: BTreeMap<u64, Rc<RefCell<ClientInfo>>>,
    /// Next client id.
    pub next_client_id: u64,
    /// Counters for `INFO stats`.
    pub stats: Stats,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Time of the last successful save (start time until one happens), Unix seconds.
    pub last_save: i64,
    /// When the server started.
    pub started: Instant,
    /// 40 hex characters identifying this run.
    pub run_id: String,
    /// The TCP port actually listened on.
    pub port: u16,
    /// Set when a shutdown was asked for (by SHUTDOWN or a signal).
    pub shutdown_requested: Option<ShutdownRequest>,
    /// Wakes the main task to shut down.
    pub shutdown: Rc<Notify>,
    /// Current time in Unix milliseconds, refreshed before each batch of commands.
    pub now_ms: i64,
    /// `DEBUG SET-ACTIVE-EXPIRE`: whether the cron deletes expired keys.
    pub active_expire_enabled: bool,
    /// Path of the executable, for `INFO server`.
    pub executable: String,
    /// Clients watching each `(db, key)`.
    pub watchers: HashMap<(usize, Vec<u8>), Vec<u64>>,
    /// Clients whose watched keys were touched: their next EXEC fails.
    pub invalidated: HashSet<u64>,
}

/// Who asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownRequest {
    /// A client sent `SHUTDOWN`.
    Command,
    /// SIGTERM.
    Sigterm,
    /// SIGINT.
    Sigint,
}

/// Unix time in milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Server {
    /// A server with an empty keyspace for `config`.
    pub fn new(config: Config) -> Server {
        let settings = Settings::from_config(&config);
        let databases = config.get_i64("databases").max(1) as usize;
        let mut keyspace = Keyspace::new(databases);
        let run_id: String = (0..5)
            .map(|_| format!("{:016x}", keyspace.next_random()))
            .collect();
        Server {
            config,
            settings,
            keyspace,
            clients: BTreeMap::new(),
            next_client_id: 1,
            stats: Stats::default(),
            dirty: 0,
            last_save: unix_ms() / 1000,
            started: Instant::now(),
            run_id: run_id[..40].to_string(),
            port: 0,
            shutdown_requested: None,
            shutdown: Rc::new(Notify::new()),
            now_ms: unix_ms(),
            active_expire_enabled: true,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            watchers: HashMap::new(),
            invalidated: HashSet::new(),
        }
    }

    /// Re-derives the hot settings after a configuration change.
    pub fn refresh_settings(&mut self) {
        self.settings = Settings::from_config(&self.config);
    }

    /// Asks the main task to shut down.
    pub fn request_shutdown(&mut self, request: ShutdownRequest) {
        if self.shutdown_requested.is_none() {
            self.shutdown_requested = Some(request);
        }
        self.shutdown.notify_one();
    }

    /// Invalidates the transactions of clients watching `key` in `db` (Redis's signalModifiedKey).
    pub fn touch_key(&mut self, db: usize, key: &[u8]) {
        if let Some(ids) = self.watchers.get(&(db, key.to_vec())) {
            self.invalidated.extend(ids.iter().copied());
        }
    }

    /// Stops `client` watching `key` in `db`.
    pub fn remove_watcher(&mut self, client: u64, db: usize, key: Vec<u8>) {
        let slot = (db, key);
        if let Some(ids) = self.watchers.get_mut(&slot) {
            ids.retain(|&other| other != client);
            if ids.is_empty() {
                self.watchers.remove(&slot);
            }
        }
    }

    /// Invalidates watchers of every key of `db` that exists now (before a flush or swap).
    pub fn touch_existing_keys(&mut self, db: usize) {
        let now = self.now_ms;
        let touched: Vec<u64> = self
            .watchers
            .iter()
            .filter(|((watched_db, key), _)| {
                *watched_db == db && self.keyspace.db_ref(db).peek(key, now).is_some()
            })
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        self.invalidated.extend(touched);
    }

    /// Collects expiry counts from the databases into the stats.
    pub fn collect_expired(&mut self, db: usize) {
        self.stats.expired_keys += self.keyspace.db(db).take_expired_count();
    }
}

/// Formats a peer address as `CLIENT LIST` does (`ip:port`, IPv6 without brackets).
pub fn format_addr(addr: &SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}
