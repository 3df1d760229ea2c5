//! `INFO`: the sections monitoring tools parse, with Redis's field names and order.

use amber_snapshot::schedule::JobKind;
use std::fmt::Write;

use crate::alloc;
use crate::server::{Server, unix_ms};

/// Sections only `all`, `everything` or their own name show.
const EXTRA_SECTIONS: &[&str] = &["commandstats", "errorstats", "latencystats"];

/// Every section, in Redis's order (`all` and `everything`).
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "backup",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// Renders the requested sections (`default` when none are named, `all`/`everything` for all).
pub(super) fn render(server: &Server, requested: &[String]) -> String {
    let all = requested.iter().any(|s| s == "all" || s == "everything");
    let wanted: Vec<&str> = ALL_SECTIONS
        .iter()
        .copied()
        .filter(|section| {
            let default = !EXTRA_SECTIONS.contains(section);
            all || (default && (requested.is_empty() || requested.iter().any(|r| r == "default")))
                || requested.iter().any(|r| r == section)
        })
        .collect();
    let mut out = String::new();
    for (index, section) in wanted.iter().enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        let body = match *section {
            "server" => server_section(server),
            "clients" => clients_section(server),
            "memory" => memory_section(server),
            "persistence" => persistence_section(server),
            "backup" => crate::commands::backup_cmd::info_section(server),
            "stats" => stats_section(server),
            "replication" => replication_section(server),
            "cpu" => cpu_section(),
            // Amber loads no modules and runs no cluster; the sections say so, as Redis's do.
            "modules" => String::new(),
            "cluster" => lines(&[("cluster_enabled", "0".into())]),
            "commandstats" => server.command_stats.commandstats(),
            "errorstats" => server.command_stats.errorstats(),
            "latencystats" => server
                .command_stats
                .latencystats(&server.settings.latency_percentiles),
            _ => keyspace_section(server),
        };
        let title = match *section {
            "cpu" => "CPU".to_string(),
            other => capitalize(other),
        };
        let _ = write!(out, "# {title}\r\n{body}");
    }
    out
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn lines(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}:{value}\r\n"))
        .collect()
}

fn server_section(server: &Server) -> String {
    let uptime = server.started.elapsed().as_secs();
    let hz = server.settings.hz;
    lines(&[
        ("redis_version", crate::REDIS_VERSION.into()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_build_id", "0".into()),
        ("redis_mode", "standalone".into()),
        ("amber_version", env!("CARGO_PKG_VERSION").into()),
        ("os", os_name()),
        ("arch_bits", "64".into()),
        ("monotonic_clock", "POSIX clock_gettime".into()),
        ("multiplexing_api", "epoll".into()),
        ("atomicvar_api", "c11-builtin".into()),
        ("gcc_version", "0.0.0".into()),
        ("process_id", std::process::id().to_string()),
        ("process_supervised", "no".into()),
        ("run_id", server.run_id.clone()),
        ("tcp_port", server.port.to_string()),
        ("server_time_usec", (unix_ms() * 1000).to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86400).to_string()),
        ("hz", hz.to_string()),
        ("configured_hz", hz.to_string()),
        ("lru_clock", ((unix_ms() / 1000) & 0xff_ffff).to_string()),
        ("executable", server.executable.clone()),
        (
            "config_file",
            server
                .config
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
        ),
        ("io_threads_active", "0".into()),
    ])
}

fn os_name() -> String {
    match nix::sys::utsname::uname() {
        Ok(name) => format!(
            "{} {} {}",
            name.sysname().to_string_lossy(),
            name.release().to_string_lossy(),
            name.machine().to_string_lossy()
        ),
        Err(_) => "Linux".into(),
    }
}

fn clients_section(server: &Server) -> String {
    lines(&[
        ("connected_clients", server.clients.len().to_string()),
        ("cluster_connections", "0".into()),
        ("maxclients", server.settings.maxclients.to_string()),
        ("client_recent_max_input_buffer", "0".into()),
        ("client_recent_max_output_buffer", "0".into()),
        ("blocked_clients", server.blocked_clients().to_string()),
        ("tracking_clients", server.tracking.counts().0.to_string()),
        ("clients_in_timeout_table", "0".into()),
    ])
}

/// `1.50M`-style sizes as Redis's `bytesToHuman` prints them.
fn human(bytes: usize) -> String {
    let b = bytes as f64;
    const K: f64 = 1024.0;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.2}K", b / K)
    } else if b < K * K * K {
        format!("{:.2}M", b / (K * K))
    } else {
        format!("{:.2}G", b / (K * K * K))
    }
}

fn memory_section(server: &Server) -> String {
    let used = alloc::used_memory();
    let peak = alloc::peak_memory().max(used);
    let rss = alloc::rss_bytes();
    let maxmemory = server.config.get_i64("maxmemory").max(0) as usize;
    let scripts = ScriptMemory::of(server);
    let backlog = server.replication.backlog_memory();
    let replica_buffers = server.replication.buffered_bytes();
    let normal_clients = server.client_buffer_memory();
    let aof_buffer = server.aof.buffered_bytes();
    let overhead = server.startup_memory + backlog + replica_buffers + normal_clients + aof_buffer;
    let dataset = used.saturating_sub(overhead);
    let net = used.saturating_sub(server.startup_memory).max(1);
    let heap = alloc::heap_stats();
    let ratio = |a: usize, b: usize| format!("{:.2}", a as f64 / b.max(1) as f64);
    let difference = |a: usize, b: usize| (a as i64 - b as i64).to_string();
    let system = total_system_memory();
    lines(&[
        ("used_memory", used.to_string()),
        ("used_memory_human", human(used)),
        ("used_memory_rss", rss.to_string()),
        ("used_memory_rss_human", human(rss)),
        ("used_memory_peak", peak.to_string()),
        ("used_memory_peak_human", human(peak)),
        (
            "used_memory_peak_perc",
            format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64),
        ),
        ("used_memory_overhead", overhead.to_string()),
        ("used_memory_startup", server.startup_memory.to_string()),
        ("used_memory_dataset", dataset.to_string()),
        (
            "used_memory_dataset_perc",
            format!("{:.2}%", dataset as f64 * 100.0 / net as f64),
        ),
        ("allocator_allocated", heap.allocated.to_string()),
        ("allocator_active", heap.active.to_string()),
        ("allocator_resident", heap.resident.to_string()),
        ("total_system_memory", system.to_string()),
        ("total_system_memory_human", human(system)),
        ("used_memory_lua", scripts.eval_vm.to_string()),
        ("used_memory_vm_eval", scripts.eval_vm.to_string()),
        ("used_memory_lua_human", human(scripts.eval_vm)),
        ("used_memory_scripts_eval", scripts.eval_bytes.to_string()),
        ("number_of_cached_scripts", scripts.eval_count.to_string()),
        ("number_of_functions", scripts.functions.to_string()),
        ("number_of_libraries", scripts.libraries.to_string()),
        // Functions run in the same interpreter as EVAL scripts.
        ("used_memory_vm_functions", "0".into()),
        ("used_memory_vm_total", scripts.eval_vm.to_string()),
        ("used_memory_vm_total_human", human(scripts.eval_vm)),
        ("used_memory_functions", scripts.library_bytes.to_string()),
        (
            "used_memory_scripts",
            (scripts.eval_bytes + scripts.library_bytes).to_string(),
        ),
        (
            "used_memory_scripts_human",
            human(scripts.eval_bytes + scripts.library_bytes),
        ),
        ("maxmemory", maxmemory.to_string()),
        ("maxmemory_human", human(maxmemory)),
        (
            "maxmemory_policy",
            server.config.get("maxmemory-policy").into(),
        ),
        ("allocator_frag_ratio", ratio(heap.active, heap.allocated)),
        (
            "allocator_frag_bytes",
            difference(heap.active, heap.allocated),
        ),
        ("allocator_rss_ratio", ratio(heap.resident, heap.active)),
        (
            "allocator_rss_bytes",
            difference(heap.resident, heap.active),
        ),
        ("rss_overhead_ratio", ratio(rss, heap.resident)),
        ("rss_overhead_bytes", difference(rss, heap.resident)),
        ("mem_fragmentation_ratio", ratio(rss, used)),
        ("mem_fragmentation_bytes", difference(rss, used)),
        (
            "mem_not_counted_for_evict",
            server.memory_not_counted_for_evict().to_string(),
        ),
        ("mem_replication_backlog", backlog.to_string()),
        (
            "mem_total_replication_buffers",
            (backlog + replica_buffers).to_string(),
        ),
        ("mem_clients_slaves", replica_buffers.to_string()),
        ("mem_clients_normal", normal_clients.to_string()),
        ("mem_cluster_links", "0".into()),
        ("mem_aof_buffer", aof_buffer.to_string()),
        ("mem_allocator", alloc::allocator_name()),
        ("active_defrag_running", "0".into()),
        ("lazyfree_pending_objects", "0".into()),
        ("lazyfreed_objects", "0".into()),
    ])
}

/// What scripts and functions take (`INFO memory`).
struct ScriptMemory {
    eval_vm: usize,
    eval_count: usize,
    eval_bytes: usize,
    functions: usize,
    libraries: usize,
    library_bytes: usize,
}

impl ScriptMemory {
    fn of(server: &Server) -> ScriptMemory {
        let engine = server.scripting.engine.as_ref();
        let (eval_count, eval_bytes) = engine.map_or((0, 0), |e| e.scripts_usage());
        let (libraries, functions) = engine.map_or((0, 0), |e| e.functions_count());
        let library_bytes = engine.map_or(0, |e| e.libraries().map(|l| l.code.len()).sum());
        ScriptMemory {
            eval_vm: engine.map_or(0, |e| e.memory()),
            eval_count,
            eval_bytes,
            functions,
            libraries,
            library_bytes,
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes (0 if unreadable).
fn total_system_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn persistence_section(server: &Server) -> String {
    let rewrite = &server.aof_rewrite;
    let jobs = &server.jobs;
    let scheduler = &jobs.scheduler;
    // The running child's report, whatever its kind.
    let (progress, keys_total, peak_cow) = jobs
        .running
        .as_ref()
        .map_or((amber_snapshot::Progress::default(), 0, 0), |job| {
            (job.progress, job.keys_total, job.peak_cow)
        });
    let rewrite_child = jobs.running(JobKind::AofRewrite);
    let save_child = jobs.running(JobKind::Save);
    let rewrite_scheduled = scheduler.is_queued(JobKind::AofRewrite);
    let mut text = lines(&[
        ("loading", u8::from(server.loading.is_some()).to_string()),
        ("async_loading", u8::from(server.async_loading).to_string()),
        ("current_cow_peak", peak_cow.to_string()),
        ("current_cow_size", progress.cow_bytes.to_string()),
        (
            "current_cow_size_age",
            progress
                .cow_received
                .map_or(0, |at| at.elapsed().as_secs())
                .to_string(),
        ),
        (
            "current_fork_perc",
            format!(
                "{:.2}",
                progress.keys_processed as f64 * 100.0 / keys_total.max(1) as f64
            ),
        ),
        (
            "current_save_keys_processed",
            progress.keys_processed.to_string(),
        ),
        ("current_save_keys_total", keys_total.to_string()),
        ("rdb_changes_since_last_save", server.dirty.to_string()),
        (
            "rdb_bgsave_in_progress",
            u8::from(save_child.is_some()).to_string(),
        ),
        (
            "rdb_last_save_time",
            (scheduler.last_save_ms() / 1000).to_string(),
        ),
        (
            "rdb_last_bgsave_status",
            if scheduler.last_save_ok() {
                "ok"
            } else {
                "err"
            }
            .into(),
        ),
        (
            "rdb_last_bgsave_time_sec",
            server.rdb.last_bgsave_seconds.to_string(),
        ),
        (
            "rdb_current_bgsave_time_sec",
            save_child
                .map_or(-1, |job| job.seconds() as i64)
                .to_string(),
        ),
        ("rdb_saves", server.rdb.saves.to_string()),
        ("rdb_last_cow_size", server.rdb.last_cow.to_string()),
        (
            "rdb_last_load_keys_expired",
            server.rdb.last_load.1.to_string(),
        ),
        (
            "rdb_last_load_keys_loaded",
            server.rdb.last_load.0.to_string(),
        ),
        ("aof_enabled", u8::from(server.aof.is_on()).to_string()),
        (
            "aof_rewrite_in_progress",
            u8::from(rewrite_child.is_some()).to_string(),
        ),
        (
            "aof_rewrite_scheduled",
            u8::from(rewrite_scheduled).to_string(),
        ),
        (
            "aof_last_rewrite_time_sec",
            rewrite
                .last_seconds
                .map_or("-1".to_string(), |s| s.to_string()),
        ),
        (
            "aof_current_rewrite_time_sec",
            rewrite_child.map_or("-1".to_string(), |job| job.seconds().to_string()),
        ),
        (
            "aof_last_bgrewrite_status",
            if rewrite.last_failed { "err" } else { "ok" }.into(),
        ),
        ("aof_rewrites", rewrite.rewrites.to_string()),
        (
            "aof_rewrites_consecutive_failures",
            scheduler.rewrite_failures().to_string(),
        ),
        (
            "aof_last_write_status",
            if server.aof.last_write_failed() {
                "err"
            } else {
                "ok"
            }
            .into(),
        ),
        ("aof_last_cow_size", rewrite.last_cow.to_string()),
        ("module_fork_in_progress", "0".into()),
        ("module_fork_last_cow_size", "0".into()),
    ]);
    if server.aof.is_on() {
        text.push_str(&lines(&[
            ("aof_current_size", server.aof.current_size().to_string()),
            ("aof_base_size", server.aof.base_size.to_string()),
            (
                "aof_pending_rewrite",
                u8::from(rewrite_scheduled).to_string(),
            ),
            ("aof_buffer_length", server.aof.buffer_length().to_string()),
            (
                "aof_pending_bio_fsync",
                u8::from(server.aof.fsync_in_flight()).to_string(),
            ),
            ("aof_delayed_fsync", server.aof.delayed_fsync().to_string()),
        ]));
    }
    if let Some((started, total, loaded)) = server.loading {
        let elapsed = started.elapsed().as_secs_f64();
        let percent = if total > 0 {
            loaded as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let eta = if loaded > 0 {
            (elapsed * (total.saturating_sub(loaded)) as f64 / loaded as f64) as u64
        } else {
            1
        };
        text.push_str(&lines(&[
            (
                "loading_start_time",
                (unix_ms() / 1000 - elapsed as i64).to_string(),
            ),
            ("loading_total_bytes", total.to_string()),
            ("loading_rdb_used_mem", "0".into()),
            ("loading_loaded_bytes", loaded.to_string()),
            ("loading_loaded_perc", format!("{percent:.2}")),
            ("loading_eta_seconds", eta.to_string()),
        ]));
    }
    text
}

fn stats_section(server: &Server) -> String {
    let stats = &server.stats;
    let kbps = |slot: usize| format!("{:.2}", stats.instantaneous_kbps[slot]);
    lines(&[
        (
            "total_connections_received",
            stats.connections_received.to_string(),
        ),
        (
            "total_commands_processed",
            stats.commands_processed.to_string(),
        ),
        (
            "instantaneous_ops_per_sec",
            stats.instantaneous_ops.to_string(),
        ),
        ("total_net_input_bytes", stats.net_input_bytes.to_string()),
        ("total_net_output_bytes", stats.net_output_bytes.to_string()),
        (
            "total_net_repl_input_bytes",
            stats.net_repl_input_bytes.to_string(),
        ),
        (
            "total_net_repl_output_bytes",
            stats.net_repl_output_bytes.to_string(),
        ),
        ("instantaneous_input_kbps", kbps(0)),
        ("instantaneous_output_kbps", kbps(1)),
        ("instantaneous_input_repl_kbps", kbps(2)),
        ("instantaneous_output_repl_kbps", kbps(3)),
        (
            "rejected_connections",
            stats.rejected_connections.to_string(),
        ),
        ("sync_full", stats.sync_full.to_string()),
        ("sync_partial_ok", stats.sync_partial_ok.to_string()),
        ("sync_partial_err", stats.sync_partial_err.to_string()),
        ("expired_keys", stats.expired_keys.to_string()),
        (
            "expired_stale_perc",
            format!("{:.2}", stats.expired_stale_perc * 100.0),
        ),
        (
            "expired_time_cap_reached_count",
            stats.expired_time_cap_reached.to_string(),
        ),
        (
            "expire_cycle_cpu_milliseconds",
            (stats.expire_cycle_micros / 1000).to_string(),
        ),
        ("evicted_keys", stats.evicted_keys.to_string()),
        ("evicted_clients", stats.evicted_clients.to_string()),
        (
            "total_eviction_exceeded_time",
            server.eviction.exceeded_ms(false).to_string(),
        ),
        (
            "current_eviction_exceeded_time",
            server.eviction.exceeded_ms(true).to_string(),
        ),
        ("keyspace_hits", stats.keyspace_hits.to_string()),
        ("keyspace_misses", stats.keyspace_misses.to_string()),
        ("pubsub_channels", server.pubsub.channel_count().to_string()),
        ("pubsub_patterns", server.pubsub.pattern_count().to_string()),
        (
            "pubsubshard_channels",
            server.pubsub.shard_channel_count().to_string(),
        ),
        (
            "latest_fork_usec",
            server.jobs.forks.latest_fork_usec.to_string(),
        ),
        ("total_forks", server.jobs.forks.total_forks.to_string()),
        (
            "migrate_cached_sockets",
            server.migrate_sockets.len().to_string(),
        ),
        // Keys with a TTL written on a writable replica: Amber's replicas are read-only.
        ("slave_expires_tracked_keys", "0".into()),
        // Amber has no active defragmentation.
        ("active_defrag_hits", "0".into()),
        ("active_defrag_misses", "0".into()),
        ("active_defrag_key_hits", "0".into()),
        ("active_defrag_key_misses", "0".into()),
        ("total_active_defrag_time", "0".into()),
        ("current_active_defrag_time", "0".into()),
        (
            "tracking_total_keys",
            server.tracking.counts().1.to_string(),
        ),
        (
            "tracking_total_items",
            server.tracking.counts().2.to_string(),
        ),
        (
            "tracking_total_prefixes",
            server.tracking.counts().3.to_string(),
        ),
        // Errors in replies from a master or the AOF: Amber stops on those instead.
        ("unexpected_error_replies", "0".into()),
        ("total_error_replies", stats.error_replies.to_string()),
        (
            "dump_payload_sanitizations",
            stats.dump_payload_sanitizations.to_string(),
        ),
        ("total_reads_processed", stats.reads_processed.to_string()),
        ("total_writes_processed", stats.writes_processed.to_string()),
        ("io_threaded_reads_processed", "0".into()),
        ("io_threaded_writes_processed", "0".into()),
        (
            "reply_buffer_shrinks",
            stats.reply_buffer_shrinks.to_string(),
        ),
        (
            "reply_buffer_expands",
            stats.reply_buffer_expands.to_string(),
        ),
    ])
}

fn replication_section(server: &Server) -> String {
    let replication = &server.replication;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut field = |name: &str, value: String| fields.push((name.to_string(), value));
    match &replication.master {
        None => field("role", "master".into()),
        Some(link) => {
            field("role", "slave".into());
            field("master_host", link.host.clone());
            field("master_port", link.port.to_string());
            let up = link.state == crate::replication::LinkState::Connected;
            field("master_link_status", if up { "up" } else { "down" }.into());
            let io = match (link.client_id, link.last_io) {
                (Some(_), Some(at)) => at.elapsed().as_secs() as i64,
                _ => -1,
            };
            field("master_last_io_seconds_ago", io.to_string());
            let syncing = link.state == crate::replication::LinkState::Transfer;
            field("master_sync_in_progress", u8::from(syncing).to_string());
            let applied = if link.can_continue {
                replication.offset
            } else {
                1
            };
            field("slave_read_repl_offset", applied.to_string());
            field("slave_repl_offset", applied.to_string());
            if let (true, Some((total, read))) = (syncing, link.transfer) {
                let total = total.unwrap_or(0);
                let percent = if total > 0 {
                    read as f64 * 100.0 / total as f64
                } else {
                    0.0
                };
                field("master_sync_total_bytes", total.to_string());
                field("master_sync_read_bytes", read.to_string());
                field(
                    "master_sync_left_bytes",
                    (total as i64 - read as i64).to_string(),
                );
                field("master_sync_perc", format!("{percent:.2}"));
                let quiet = link.last_io.map_or(0, |at| at.elapsed().as_secs());
                field("master_sync_last_io_seconds_ago", quiet.to_string());
            }
            if !up {
                let down = link
                    .down_since
                    .map_or(-1, |at| at.elapsed().as_secs() as i64);
                field("master_link_down_since_seconds", down.to_string());
            }
            field(
                "slave_priority",
                server.config.get("replica-priority").into(),
            );
            let read_only = server.config.get_bool("replica-read-only");
            field("slave_read_only", u8::from(read_only).to_string());
            let announced = server.config.get_bool("replica-announced");
            field("replica_announced", u8::from(announced).to_string());
        }
    }
    field("connected_slaves", replication.replicas.len().to_string());
    let (min_replicas, max_lag) = server.min_replicas();
    if min_replicas > 0 && max_lag > 0 {
        let good = replication.replicas.good_count(max_lag);
        field("min_slaves_good_slaves", good.to_string());
    }
    for (index, replica) in replication.replicas.views().iter().enumerate() {
        field(
            &format!("slave{index}"),
            format!(
                "ip={},port={},state={},offset={},lag={}",
                replica.ip, replica.port, replica.state, replica.ack_offset, replica.lag
            ),
        );
    }
    let (active, first, histlen) = replication.backlog_info();
    let failover = replication.failover.as_ref().map(|f| f.state);
    field(
        "master_failover_state",
        crate::replication::FailoverState::info_name(failover).into(),
    );
    field("master_replid", replication.replid.clone());
    field("master_replid2", replication.replid2.clone());
    field("master_repl_offset", replication.offset.to_string());
    field("second_repl_offset", replication.second_offset.to_string());
    field("repl_backlog_active", u8::from(active).to_string());
    field(
        "repl_backlog_size",
        server.config.get_i64("repl-backlog-size").to_string(),
    );
    field("repl_backlog_first_byte_offset", first.to_string());
    field("repl_backlog_histlen", histlen.to_string());
    let borrowed: Vec<(&str, String)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    lines(&borrowed)
}

fn cpu_section() -> String {
    let usage = |who| nix::sys::resource::getrusage(who).ok();
    let format_time = |t: nix::sys::time::TimeVal| format!("{}.{:06}", t.tv_sec(), t.tv_usec());
    let me = usage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let children = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    // INFO runs on the event-loop thread: its own usage is the main thread's.
    let main_thread = usage(nix::sys::resource::UsageWho::RUSAGE_THREAD);
    lines(&[
        (
            "used_cpu_sys",
            me.map(|u| format_time(u.system_time())).unwrap_or_default(),
        ),
        (
            "used_cpu_user",
            me.map(|u| format_time(u.user_time())).unwrap_or_default(),
        ),
        (
            "used_cpu_sys_children",
            children
                .map(|u| format_time(u.system_time()))
                .unwrap_or_default(),
        ),
        (
            "used_cpu_user_children",
            children
                .map(|u| format_time(u.user_time()))
                .unwrap_or_default(),
        ),
        (
            "used_cpu_sys_main_thread",
            main_thread
                .map(|u| format_time(u.system_time()))
                .unwrap_or_default(),
        ),
        (
            "used_cpu_user_main_thread",
            main_thread
                .map(|u| format_time(u.user_time()))
                .unwrap_or_default(),
        ),
    ])
}

fn keyspace_section(server: &Server) -> String {
    let mut out = String::new();
    for (index, db) in server.keyspace.dbs().iter().enumerate() {
        if !db.is_empty() {
            let _ = write!(
                out,
                "db{index}:keys={},expires={},avg_ttl=0\r\n",
                db.len(),
                db.volatile_len()
            );
        }
    }
    out
}
