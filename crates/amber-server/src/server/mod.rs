//! The server's state, owned by the one thread that runs the event loop and executes commands.
//!
//! Every connection task borrows [`Server`] only while it executes a batch of parsed commands,
//! never across an `.await`: between two batches the keyspace is always consistent, which is
//! the quiesced point from which a later `fork()` (BGSAVE, AOF rewrite) will be taken.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use amber_keyspace::Keyspace;
use tokio::sync::Notify;

use crate::config::Config;

mod clients;
mod evict;
mod pause;
mod settings;

pub(crate) use clients::{ClientInfo, ClientLinks, OutputLimit};
pub(crate) use evict::{Evicted, Eviction, OOM, eviction_task};
pub(crate) use pause::Pauses;
pub(crate) use settings::{Settings, Stats};

/// The whole server state.
pub(crate) struct Server {
    /// The configuration, as `CONFIG GET` shows it.
    pub(crate) config: Config,
    /// Hot settings derived from the configuration.
    pub(crate) settings: Settings,
    /// All databases.
    pub(crate) keyspace: Keyspace,
    /// Connected clients by id.
    pub(crate) clients: BTreeMap<u64, Rc<RefCell<ClientInfo>>>,
    /// Next client id.
    pub(crate) next_client_id: u64,
    /// Counters for `INFO stats`.
    pub(crate) stats: Stats,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub(crate) dirty: u64,
    /// When the server started.
    pub(crate) started: Instant,
    /// 40 hex characters identifying this run.
    pub(crate) run_id: String,
    /// The TCP port actually listened on.
    pub(crate) port: u16,
    /// Set when a shutdown was asked for (by SHUTDOWN or a signal).
    pub(crate) shutdown_requested: Option<ShutdownRequest>,
    /// Wakes the main task to shut down.
    pub(crate) shutdown: Rc<Notify>,
    /// Current time in Unix milliseconds, refreshed before each batch of commands.
    pub(crate) now_ms: i64,
    /// Path of the executable, for `INFO server`.
    pub(crate) executable: String,
    /// The background job slot (BGSAVE, AOF rewrite, backup) and its schedule.
    pub(crate) jobs: crate::persistence::jobs::Jobs,
    /// What ties clients to keys and commands: WATCH, blocking commands, MONITOR.
    pub(crate) links: ClientLinks,
    /// What the running command records and reports, besides its reply.
    pub(crate) command: RunningCommand,
    /// Behaviour changed by DEBUG subcommands (test knobs).
    pub(crate) debug: DebugKnobs,
    /// RDB snapshot state.
    pub(crate) rdb: crate::persistence::rdb::RdbState,
    /// While a snapshot loads: when it started, the file size and the bytes read so far.
    pub(crate) loading: Option<(Instant, u64, u64)>,
    /// Changes to the dataset since start; never reset (unlike `dirty`, which SAVE resets).
    pub(crate) changes: u64,
    /// The append-only file.
    pub(crate) aof: crate::persistence::aof::Aof,
    /// The AOF rewrite child and its history.
    pub(crate) aof_rewrite: crate::persistence::aof_rewrite::RewriteState,
    /// Scheduled backups.
    pub(crate) backup: crate::persistence::backup::BackupState,
    /// Continuous AOF archiving to the backup bucket.
    pub(crate) archive: crate::persistence::archive::ArchiveState,
    /// Heap bytes in use once the server was set up (`MEMORY STATS` `startup.allocated`).
    pub(crate) startup_memory: usize,
    /// Pub/Sub channels and patterns.
    pub(crate) pubsub: crate::pubsub::PubSub,
    /// Attached replicas and the replication stream.
    pub(crate) replication: crate::replication::Replication,
    /// Set while a replica loads its master's snapshot beside the dataset it keeps serving
    /// (`async_loading`).
    pub(crate) async_loading: bool,
    /// Clients paused by `CLIENT PAUSE` or a `FAILOVER`.
    pub(crate) pauses: Pauses,
    /// On a writable replica: keys its own clients wrote with a TTL, which it expires itself.
    pub(crate) replica_keys_with_expire: std::collections::BTreeSet<(usize, Vec<u8>)>,
    /// Set while a full synchronization with a master stopped the AOF, which is turned back
    /// on (with a rewrite) once the master's dataset is loaded.
    pub(crate) replication_aof_restart: bool,
    /// Connections MIGRATE keeps to its targets.
    pub(crate) migrate_sockets: crate::commands::MigrateSockets,
    /// Per-command and per-error counters (`INFO commandstats | errorstats | latencystats`).
    pub(crate) command_stats: crate::commands::stats::CommandStats,
    /// The Lua interpreter, its scripts and Functions, and the running script.
    pub(crate) scripting: crate::scripting::Scripting,
    /// `maxmemory` eviction between passes.
    pub(crate) eviction: Eviction,
    /// Wakes the task that walks a forkless snapshot's capture.
    pub(crate) forkless_wake: Rc<tokio::sync::Notify>,
    /// Where connections wait for the end of the loop's tick before they reply
    /// (INV-TICK-END); `net::run` spawns its closing task.
    pub(crate) tick: Rc<crate::net::tick::TickEnd>,
    /// ACL users and the ACL log.
    pub(crate) acl: crate::acl::AclState,
    /// Client-side caching: the tracking table and broadcast prefixes.
    pub(crate) tracking: crate::tracking::Tracking,
    /// The TCP listening sockets.
    pub(crate) listeners: crate::net::Listeners,
    /// `SLOWLOG`.
    pub(crate) slowlog: crate::diagnostics::SlowLog,
    /// `LATENCY`: the latency monitor's events.
    pub(crate) latency: crate::diagnostics::LatencyMonitor,
}

/// What the running command records and reports, besides its reply (reset as it ends).
#[derive(Default)]
pub(crate) struct RunningCommand {
    /// What the command records in the AOF instead of itself (see `Ctx::propagate_as`).
    pub(crate) propagation_override: Option<Vec<Vec<bytes::Bytes>>>,
    /// The writes of the EXEC being run, recorded when it ends (see [`Server::end_exec`]).
    pub(crate) exec_propagation: Option<Vec<HeldWrite>>,
    /// The keys (with their database) the command says it changed, when they differ from
    /// what its key specification names (see `Ctx::modified_only`, `Ctx::modified_in`).
    pub(crate) modified_override: Option<Vec<(usize, bytes::Bytes)>>,
    /// The keys of `modified_override` come on top of the key specification's.
    pub(crate) modified_with_spec: bool,
    /// `redis.set_repl` of the running script: its writes skip the AOF (`.0`) or the
    /// replicas (`.1`).
    pub(crate) script_skips: (bool, bool),
    /// `error_replies` when the last command's counters were taken: a command failed if more
    /// errors were replied since (inner commands of EXEC move it, as in Redis).
    pub(crate) errors_seen: u64,
    /// Set when the command replied an error already counted elsewhere (a script's error
    /// from a command it called): the command still counts as failed, as Redis's
    /// `ERR_REPLY_FLAG_NO_STATS_UPDATE`.
    pub(crate) failed_uncounted: bool,
    /// The connection whose request runs now (0 between requests): its own invalidations
    /// follow its reply, and `NOLOOP` skips its changes.
    pub(crate) client: u64,
    /// Set while a command read from the AOF runs, with everything it runs (the commands of
    /// its EXEC, a script's calls): as in Redis's AOF-loading context, none of them is counted
    /// in INFO commandstats, the latency histograms or the slow log.
    pub(crate) replaying_aof: bool,
    /// Set for good in a forked Lua debugging session: its writes die with the child, and
    /// nothing reaches the AOF or the replicas the parent owns.
    pub(crate) propagation_off: bool,
}

/// A write held until its EXEC or script ends: the database, the command, and where it must
/// not go (`redis.set_repl`: the AOF, the replicas).
pub(crate) type HeldWrite = (usize, Vec<bytes::Bytes>, (bool, bool));

/// Behaviour changed by DEBUG subcommands, for tests.
pub(crate) struct DebugKnobs {
    /// `DEBUG SET-ACTIVE-EXPIRE`: whether the cron deletes expired keys.
    pub(crate) active_expire_enabled: bool,
    /// `DEBUG SET-SKIP-CHECKSUM-VALIDATION`: RESTORE accepts payloads with a wrong CRC.
    pub(crate) skip_checksum_validation: bool,
    /// `DEBUG QUICKLIST-PACKED-THRESHOLD`: list elements this large are saved as plain nodes.
    pub(crate) list_packed_threshold: usize,
    /// `DEBUG SET-DISABLE-DENY-SCRIPTS`: scripts may call commands flagged `noscript`.
    pub(crate) disable_deny_scripts: bool,
}

impl Default for DebugKnobs {
    fn default() -> DebugKnobs {
        DebugKnobs {
            active_expire_enabled: true,
            skip_checksum_validation: false,
            list_packed_threshold: 1 << 30,
            disable_deny_scripts: false,
        }
    }
}

/// Who asked the server to stop, and whether to save first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownRequest {
    /// A client sent `SHUTDOWN`; `save` is `Some(true)` for SAVE, `Some(false)` for NOSAVE.
    Command {
        /// Explicit SAVE/NOSAVE.
        save: Option<bool>,
        /// FORCE: exit even if the final save fails.
        force: bool,
    },
    /// SIGTERM.
    Sigterm,
    /// SIGINT.
    Sigint,
}

/// Whether this process may run on one CPU only (its affinity or its cgroup's CPU quota):
/// then a helper thread can only take turns with the event loop, never run beside it.
pub(crate) fn single_cpu() -> bool {
    std::thread::available_parallelism().map_or(true, |n| n.get() == 1)
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Server {
    /// A server with an empty keyspace for `config`.
    pub(crate) fn new(config: Config) -> Server {
        let settings = Settings::from_config(&config);
        let databases = config.get_i64("databases").max(1) as usize;
        let mut keyspace = Keyspace::new(databases);
        // 40 hex characters, as Redis's run and replication ids.
        let run_id = random_id(&mut keyspace);
        let aof = crate::persistence::aof::Aof::new(&config);
        let jobs = crate::persistence::jobs::Jobs::new(Default::default());
        Server {
            scripting: crate::scripting::Scripting::new(),
            eviction: Eviction::default(),
            forkless_wake: Rc::default(),
            tick: Rc::default(),
            acl: crate::acl::AclState::new(settings.requirepass.as_deref()),
            tracking: crate::tracking::Tracking::default(),
            listeners: crate::net::Listeners::default(),
            slowlog: crate::diagnostics::SlowLog::default(),
            latency: crate::diagnostics::LatencyMonitor::default(),
            startup_memory: crate::alloc::used_memory(),
            command_stats: Default::default(),
            migrate_sockets: Default::default(),
            replication: crate::replication::Replication::new(random_id(&mut keyspace)),
            pubsub: Default::default(),
            replication_aof_restart: false,
            pauses: Pauses::default(),
            async_loading: false,
            replica_keys_with_expire: Default::default(),
            config,
            settings,
            keyspace,
            clients: BTreeMap::new(),
            next_client_id: 1,
            stats: Stats::default(),
            dirty: 0,
            started: Instant::now(),
            run_id,
            port: 0,
            shutdown_requested: None,
            shutdown: Rc::new(Notify::new()),
            now_ms: unix_ms(),
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            rdb: crate::persistence::rdb::RdbState::new(),
            loading: None,
            changes: 0,
            aof,
            jobs,
            links: ClientLinks::default(),
            command: RunningCommand::default(),
            debug: DebugKnobs::default(),
            aof_rewrite: crate::persistence::aof_rewrite::RewriteState::default(),
            backup: crate::persistence::backup::BackupState::default(),
            archive: crate::persistence::archive::ArchiveState::default(),
        }
    }

    /// `hash-max-listpack-entries` / `hash-max-listpack-value`.
    pub(crate) fn hash_limits(&self) -> amber_keyspace::HashLimits {
        self.settings.encoding.hash
    }

    /// `zset-max-listpack-entries` / `zset-max-listpack-value`.
    pub(crate) fn zset_limits(&self) -> amber_keyspace::ZsetLimits {
        self.settings.encoding.zset
    }

    /// All the thresholds that decide compact encodings.
    pub(crate) fn encoding_limits(&self) -> crate::persistence::rdb::EncodingLimits {
        self.settings.encoding
    }

    /// `list-max-listpack-size`.
    pub(crate) fn list_limits(&self) -> amber_keyspace::ListLimits {
        self.settings.encoding.list
    }

    /// `set-max-intset-entries`.
    pub(crate) fn max_intset(&self) -> usize {
        self.settings.encoding.max_intset
    }

    /// Records a latency sample for `event` if the latency monitor is on and it took long
    /// enough (Redis's `latencyAddSampleIfNeeded`).
    pub(crate) fn latency_sample(&mut self, event: &str, elapsed: std::time::Duration) {
        let threshold = self.settings.latency_monitor_threshold;
        self.latency
            .add_if_needed(threshold, event, elapsed.as_millis() as u64);
    }

    /// Re-derives the hot settings after a configuration change.
    pub(crate) fn refresh_settings(&mut self) {
        let requirepass = self.settings.requirepass.clone();
        self.settings = Settings::from_config(&self.config);
        if self.settings.requirepass != requirepass {
            self.acl
                .set_requirepass(self.settings.requirepass.as_deref());
        }
        self.acl.acl.all_channels_by_default =
            self.config.get("acl-pubsub-default") == "allchannels";
        let lfu_factor = self
            .config
            .get_i64("lfu-log-factor")
            .clamp(0, i64::from(u32::MAX)) as u32;
        let lfu_decay = self
            .config
            .get_i64("lfu-decay-time")
            .clamp(0, i64::from(u32::MAX)) as u32;
        self.tracking.max_keys =
            usize::try_from(self.config.get_i64("tracking-table-max-keys").max(0)).unwrap_or(0);
        crate::alloc::set_limit(self.settings.maxmemory);
        amber_keyspace::set_growth_guard(crate::alloc::growth_within_limit);
        amber_keyspace::set_access_clock(
            self.settings
                .eviction_policy
                .access_clock(lfu_factor, lfu_decay),
        );
        self.refresh_recording();
        let policy = self.job_policy();
        self.jobs.scheduler.set_policy(policy);
        let limits = self.config.get("client-output-buffer-limit").to_string();
        self.replication.configure(&self.config);
        self.pubsub.configure(&limits);
    }

    /// Whether a new connection starts authenticated: the default user is on and needs no
    /// password.
    pub(crate) fn default_user_open(&self) -> bool {
        self.acl
            .acl
            .user("default")
            .is_some_and(|user| user.enabled() && user.nopass())
    }

    /// Asks the main task to shut down.
    pub(crate) fn request_shutdown(&mut self, request: ShutdownRequest) {
        if self.shutdown_requested.is_none() {
            self.shutdown_requested = Some(request);
        }
        self.shutdown.notify_one();
    }

    /// Collects expiry counts from every database into the stats, then records the deleted
    /// keys in the AOF and the replication stream as `DEL`s and publishes their `expired`
    /// events, with the pending `new` events (once per command, and from the active expire
    /// cycle).
    pub(crate) fn collect_expired(&mut self, origin: &mut crate::notify::Origin<'_>) {
        if !self.keyspace.has_pending_events() {
            return;
        }
        for db in 0..self.keyspace.db_count() {
            self.stats.expired_keys += self.keyspace.db(db).take_expired_count();
        }
        self.drain_keyspace_events(origin);
    }

    /// Whether writes are recorded anywhere: the AOF, or the stream to replicas.
    pub(crate) fn propagating(&self) -> bool {
        self.aof.is_on() || self.replication.streaming()
    }

    /// Records one command executed in `db` in the AOF and the replication stream (inside EXEC,
    /// once the transaction is over).
    pub(crate) fn propagate<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if self.command.propagation_off {
            return;
        }
        if let Some(held) = self.command.exec_propagation.as_mut() {
            let args = args
                .iter()
                .map(|arg| bytes::Bytes::copy_from_slice(arg.as_ref()))
                .collect();
            let skips = self.command.script_skips;
            if skips != (true, true) {
                held.push((db, args, skips));
            }
            return;
        }
        let (skip_aof, skip_replicas) = self.command.script_skips;
        if self.aof.is_on() && !skip_aof {
            let now = self.now_ms;
            self.aof.feed(db, args, now);
        }
        if !skip_replicas {
            self.replication.feed(db, args);
        }
    }

    /// [`Server::propagate`] to the AOF alone: replicas are not sent the command.
    pub(crate) fn propagate_to_aof_only<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        self.propagate_skipping(db, args, (false, true));
    }

    /// [`Server::propagate`] to the replicas alone: the AOF is not sent the command.
    pub(crate) fn propagate_to_replicas_only<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        self.propagate_skipping(db, args, (true, false));
    }

    /// [`Server::propagate`] with `skips` (the AOF, the replicas) added to the running
    /// script's own (`redis.set_repl`).
    fn propagate_skipping<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A], skips: (bool, bool)) {
        let own = self.command.script_skips;
        self.command.script_skips = (own.0 || skips.0, own.1 || skips.1);
        self.propagate(db, args);
        self.command.script_skips = own;
    }

    /// EXEC starts: its writes are held until it ends.
    pub(crate) fn begin_exec(&mut self) {
        self.command.exec_propagation = Some(Vec::new());
    }

    /// EXEC ends: as Redis 7, several writes are recorded as one `MULTI ... EXEC` block and a
    /// single write on its own.
    pub(crate) fn end_exec(&mut self) {
        let Some(held) = self.command.exec_propagation.take() else {
            return;
        };
        if self.command.propagation_off {
            return;
        }
        let wrap = held.len() > 1;
        if wrap {
            self.aof.begin_exec();
            self.replication.begin_exec();
        }
        let skips = self.command.script_skips;
        for (db, args, held_skips) in &held {
            self.command.script_skips = *held_skips;
            self.propagate(*db, args);
        }
        self.command.script_skips = skips;
        if wrap {
            self.aof.end_exec();
            self.replication.end_exec();
        }
    }

    /// The connection of replica `id` (at `addr`) closed: it is forgotten, and a snapshot no
    /// one needs any more is stopped, as Redis does: a diskless child with no replica left
    /// to write to, or a BGSAVE no replica waits for when no save point wants the file.
    pub(crate) fn replica_connection_lost(&mut self, id: u64, addr: &str) {
        let detached = self.replication.detach(id);
        self.refresh_recording();
        crate::notice!("Connection with replica {addr} lost.");
        match detached {
            crate::replication::Detached::LastSocketTarget => {
                crate::warning!("Diskless rdb transfer, last replica dropped, killing fork child.");
                self.kill_replica_sync();
            }
            crate::replication::Detached::LastDiskWaiter
                if self.config.get("save").trim().is_empty() =>
            {
                self.kill_bgsave();
            }
            _ => {}
        }
    }

    /// Replication's share of the cron: starts the snapshot replicas wait for once no other
    /// child runs, pings the replicas, and frees an unused backlog.
    pub(crate) fn check_replication(&mut self) {
        self.start_replica_sync();
        self.update_failover();
        let timeout = self.config.get_i64("repl-timeout").max(1) as u64;
        let timeout = std::time::Duration::from_secs(timeout);
        self.replication.replicas.drop_silent(timeout);
        self.replication.replicas.drop_stalled_transfers(timeout);
        let period = self.config.get_i64("repl-ping-replica-period").max(1) as u64;
        let backlog_was_active = self.replication.backlog_info().0;
        self.replication.cron(period);
        if backlog_was_active && !self.replication.backlog_info().0 {
            // No history left to continue: the next replica starts a new one.
            let fresh = self.fresh_replid();
            self.replication.start_new_history(fresh);
        }
    }

    /// Remembers the keys a replica's own client wrote that now have a TTL.
    pub(crate) fn track_replica_key_expiry(&mut self, keys: &[(usize, bytes::Bytes)]) {
        for (db, key) in keys {
            let volatile = self
                .keyspace
                .db_ref(*db)
                .raw(key)
                .is_some_and(|entry| entry.expire_at().is_some());
            if volatile {
                self.replica_keys_with_expire.insert((*db, key.to_vec()));
            }
        }
    }

    /// From the cron on a replica: deletes the tracked keys whose TTL passed (with their
    /// `expired` events and `DEL`s in the AOF) and forgets those gone or made persistent.
    pub(crate) fn expire_replica_keys(&mut self, origin: &mut crate::notify::Origin<'_>) {
        if self.replica_keys_with_expire.is_empty() {
            return;
        }
        let now = unix_ms();
        let tracked = std::mem::take(&mut self.replica_keys_with_expire);
        self.keyspace.set_keep_expired(false);
        for (db, key) in tracked {
            let volatile = self
                .keyspace
                .db_ref(db)
                .raw(&key)
                .is_some_and(|entry| entry.expire_at().is_some());
            // `exists` deletes a key whose TTL passed, and records it as expired.
            if volatile && self.keyspace.db(db).exists(&key, now) {
                self.replica_keys_with_expire.insert((db, key));
            }
        }
        self.keyspace
            .set_keep_expired(self.replication.is_replica());
        self.collect_expired(origin);
    }

    /// A new random 40-character replication id.
    pub(crate) fn fresh_replid(&mut self) -> String {
        random_id(&mut self.keyspace)
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag`.
    pub(crate) fn min_replicas(&self) -> (usize, u64) {
        self.settings.min_replicas
    }

    /// Why a write must be refused for lack of good replicas, if it must
    /// (`min-replicas-to-write`).
    pub(crate) fn replicas_refusal(&self) -> Option<&'static str> {
        let (needed, max_lag) = self.min_replicas();
        if needed == 0 || max_lag == 0 || self.replication.is_replica() {
            return None;
        }
        (self.replication.replicas.good_count(max_lag) < needed)
            .then_some("NOREPLICAS Not enough good replicas to write.")
    }

    /// A full synchronization is about to replace the dataset: a snapshot or rewrite child
    /// would write the old data, so it is stopped, as Redis does.
    pub(crate) fn kill_job_for_replication_load(&mut self) {
        self.kill_job_of(amber_snapshot::schedule::JobKind::Save);
        self.kill_job_of(amber_snapshot::schedule::JobKind::AofRewrite);
    }

    /// Empties every database for a full synchronization; WATCHes on existing keys fail.
    pub(crate) fn flush_all_for_sync(&mut self) {
        for db in 0..self.keyspace.db_count() {
            self.touch_existing_keys(db);
        }
        self.invalidate_all_tracked();
        self.keyspace.clear();
    }
}

/// 40 random hex characters, as Redis's run and replication ids.
fn random_id(keyspace: &mut Keyspace) -> String {
    let mut id: String = (0..3)
        .map(|_| format!("{:016x}", keyspace.next_random()))
        .collect();
    id.truncate(40);
    id
}

/// Formats a peer address as `CLIENT LIST` does (`ip:port`, IPv6 without brackets).
pub(crate) fn format_addr(addr: &SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}
