//! The settings read on hot paths (derived from the configuration) and the `INFO stats`
//! counters.

use crate::config::Config;

/// Settings read on hot paths, refreshed from [`Config`] whenever it changes.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
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
    /// `hll-sparse-max-bytes`: a sparse HyperLogLog that would grow past this turns dense.
    pub hll_sparse_max_bytes: usize,
    /// `client-query-buffer-limit`.
    pub client_query_buffer_limit: usize,
    /// `hz`, clamped to 1..=500 as Redis does.
    pub hz: u32,
    /// `active-expire-effort`.
    pub active_expire_effort: u32,
    /// `activerehashing`: the cron moves keys of the key tables' resizes under way.
    pub active_rehashing: bool,
    /// `enable-debug-command`: `no`, `yes` or `local`.
    pub enable_debug_command: String,
    /// `tcp-keepalive` in seconds (0 = off).
    pub tcp_keepalive: u32,
    /// The thresholds that decide compact encodings (read for every collection write).
    pub encoding: crate::persistence::rdb::EncodingLimits,
    /// `latency-tracking`: record each command's latency for `INFO latencystats`.
    pub latency_tracking: bool,
    /// `slowlog-log-slower-than` in microseconds (negative: the slow log is off).
    pub slowlog_slower_than: i64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` in milliseconds (0: the latency monitor is off).
    pub latency_monitor_threshold: u64,
    /// `latency-tracking-info-percentiles`.
    pub latency_percentiles: Vec<f64>,
    /// `notify-keyspace-events`, as flags (see [`crate::notify`]).
    pub notify_flags: u32,
    /// `min-replicas-to-write` and `min-replicas-max-lag` (checked for every write).
    pub min_replicas: (usize, u64),
    /// `replica-read-only`.
    pub replica_read_only: bool,
    /// `replica-serve-stale-data`.
    pub replica_serve_stale_data: bool,
    /// `busy-reply-threshold` (`lua-time-limit`), in milliseconds: a script running longer
    /// lets other clients in, to get `-BUSY` or to kill it.
    pub busy_reply_threshold: u64,
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: usize,
    /// `maxmemory-policy`.
    pub eviction_policy: amber_keyspace::EvictionPolicy,
    /// `maxmemory-samples`.
    pub maxmemory_samples: usize,
    /// `maxmemory-eviction-tenacity`.
    pub eviction_tenacity: u32,
    /// `replica-ignore-maxmemory`.
    pub replica_ignore_maxmemory: bool,
    /// `client-output-buffer-limit` for normal and for Pub/Sub clients (replicas' is the
    /// replication module's).
    pub output_limits: (super::OutputLimit, super::OutputLimit),
    /// `maxmemory-clients` in bytes (a percentage is of `maxmemory`); 0: no client eviction.
    pub maxmemory_clients: usize,
}

impl Settings {
    /// Reads the hot settings out of `config`.
    pub(crate) fn from_config(config: &Config) -> Settings {
        let requirepass = config.get("requirepass");
        Settings {
            requirepass: (!requirepass.is_empty()).then(|| requirepass.as_bytes().to_vec()),
            protected_mode: config.get_bool("protected-mode"),
            maxclients: config.get_i64("maxclients").max(1) as usize,
            timeout: config.get_i64("timeout").max(0) as u64,
            proto_max_bulk_len: config.get_i64("proto-max-bulk-len").max(0) as u64,
            hll_sparse_max_bytes: config.get_i64("hll-sparse-max-bytes").max(0) as usize,
            client_query_buffer_limit: config.get_i64("client-query-buffer-limit").max(0) as usize,
            hz: config.get_i64("hz").clamp(1, 500) as u32,
            active_expire_effort: config.get_i64("active-expire-effort").clamp(1, 10) as u32,
            active_rehashing: config.get_bool("activerehashing"),
            enable_debug_command: config.get("enable-debug-command").to_string(),
            tcp_keepalive: config
                .get_i64("tcp-keepalive")
                .clamp(0, i64::from(u32::MAX)) as u32,
            encoding: encoding_limits(config),
            latency_tracking: config.get_bool("latency-tracking"),
            slowlog_slower_than: config.get_i64("slowlog-log-slower-than"),
            slowlog_max_len: usize::try_from(config.get_i64("slowlog-max-len")).unwrap_or(0),
            latency_monitor_threshold: u64::try_from(config.get_i64("latency-monitor-threshold"))
                .unwrap_or(0),
            min_replicas: (
                config.get_i64("min-replicas-to-write").max(0) as usize,
                config.get_i64("min-replicas-max-lag").max(0) as u64,
            ),
            replica_read_only: config.get_bool("replica-read-only"),
            replica_serve_stale_data: config.get_bool("replica-serve-stale-data"),
            busy_reply_threshold: config.get_i64("busy-reply-threshold").max(0) as u64,
            maxmemory: config.get_i64("maxmemory").max(0) as usize,
            eviction_policy: amber_keyspace::EvictionPolicy::parse(config.get("maxmemory-policy"))
                .unwrap_or(amber_keyspace::EvictionPolicy::NoEviction),
            maxmemory_samples: config.get_i64("maxmemory-samples").clamp(1, 64) as usize,
            eviction_tenacity: config.get_i64("maxmemory-eviction-tenacity").clamp(0, 100) as u32,
            replica_ignore_maxmemory: config.get_bool("replica-ignore-maxmemory"),
            maxmemory_clients: clients_limit(config),
            output_limits: {
                let value = config.get("client-output-buffer-limit");
                (
                    super::OutputLimit::of_class(value, "normal"),
                    super::OutputLimit::of_class(value, "pubsub"),
                )
            },
            latency_percentiles: crate::commands::stats::parse_percentiles(
                config.get("latency-tracking-info-percentiles"),
            )
            .unwrap_or_default(),
            notify_flags: crate::notify::parse_flags(config.get("notify-keyspace-events"))
                .unwrap_or(0),
        }
    }
}

/// `maxmemory-clients` in bytes: a size, or a percentage of `maxmemory`.
fn clients_limit(config: &Config) -> usize {
    let value = config.get("maxmemory-clients");
    match value.strip_suffix('%') {
        Some(percent) => {
            let maxmemory = config.get_i64("maxmemory").max(0) as u128;
            let percent = percent.parse::<u128>().unwrap_or(0);
            (maxmemory * percent / 100) as usize
        }
        None => value.parse::<usize>().unwrap_or(0),
    }
}

/// The encoding thresholds `config` sets.
fn encoding_limits(config: &Config) -> crate::persistence::rdb::EncodingLimits {
    let size = |name: &str| config.get_i64(name).max(0) as usize;
    crate::persistence::rdb::EncodingLimits {
        hash: amber_keyspace::HashLimits {
            max_entries: size("hash-max-listpack-entries"),
            max_value: size("hash-max-listpack-value"),
        },
        max_intset: size("set-max-intset-entries"),
        list: amber_keyspace::ListLimits::from_setting(config.get_i64("list-max-listpack-size")),
        zset: amber_keyspace::ZsetLimits {
            max_entries: size("zset-max-listpack-entries"),
            max_value: size("zset-max-listpack-value"),
        },
        stream: amber_keyspace::StreamLimits {
            node_max_bytes: size("stream-node-max-bytes"),
            node_max_entries: size("stream-node-max-entries"),
        },
    }
}

/// Counters reported by `INFO stats`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
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
    /// Bytes read from the master (`total_net_repl_input_bytes`).
    pub net_repl_input_bytes: u64,
    /// Bytes written to replicas (`total_net_repl_output_bytes`).
    pub net_repl_output_bytes: u64,
    /// Full resynchronizations served (`sync_full`).
    pub sync_full: u64,
    /// Partial resynchronizations accepted (`sync_partial_ok`).
    pub sync_partial_ok: u64,
    /// Partial resynchronizations refused (`sync_partial_err`).
    pub sync_partial_err: u64,
    /// Keys deleted by expiry (lazy or active).
    pub expired_keys: u64,
    /// Keys deleted to stay within `maxmemory`.
    pub evicted_keys: u64,
    /// Connections closed to stay within `maxmemory-clients`.
    pub evicted_clients: u64,
    /// Lookups that found the key.
    pub keyspace_hits: u64,
    /// Lookups that did not.
    pub keyspace_misses: u64,
    /// Commands that returned an error.
    pub error_replies: u64,
    /// Operations per second, sampled by the cron.
    pub instantaneous_ops: u64,
    /// KiB per second read from and written to clients, then replication links, sampled by
    /// the cron (`instantaneous_input_kbps`, ...).
    pub instantaneous_kbps: [f64; 4],
    /// The share of keys the active expire cycle found expired, a moving average in percent.
    pub expired_stale_perc: f64,
    /// Active expire cycles that stopped at their time budget.
    pub expired_time_cap_reached: u64,
    /// Time spent in active expire cycles, in microseconds.
    pub expire_cycle_micros: u64,
    /// `RESTORE` payloads checked deeply (`sanitize-dump-payload`).
    pub dump_payload_sanitizations: u64,
    /// Reads from client sockets.
    pub reads_processed: u64,
    /// Writes of replies to client sockets.
    pub writes_processed: u64,
    /// Reply buffers given back after a large reply, and grown past their first size.
    pub reply_buffer_shrinks: u64,
    /// See `reply_buffer_shrinks`.
    pub reply_buffer_expands: u64,
}
