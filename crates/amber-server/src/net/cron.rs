//! The cron: what runs `hz` times a second (active expiry, client timeouts, background jobs,
//! replication pings, the ops/sec sample).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::server::{Server, unix_ms};
use crate::verbose;

/// Runs `hz` times a second: active expiry, idle-client timeouts, ops/sec sampling.
pub(crate) async fn cron(shared: Rc<RefCell<Server>>) {
    let mut last_commands = 0u64;
    let mut last_sample = Instant::now();
    let mut last_bytes = network_bytes(&shared.borrow().stats);
    let mut trimmer = crate::alloc::SlackTrimmer::default();
    let mut rehash_db = 0;
    loop {
        let hz = shared.borrow().settings.hz;
        tokio::time::sleep(Duration::from_millis(u64::from(1000 / hz.max(1)))).await;
        crate::clock::calibrate();
        let mut server = shared.borrow_mut();
        server.now_ms = unix_ms();
        // A replica never expires keys itself: it waits for its master's `DEL`s.
        if server.debug.active_expire_enabled && !server.replication.is_replica() {
            active_expire(&mut server, hz);
        } else if server.debug.active_expire_enabled {
            let mut unused = amber_protocol::ReplyWriter::new(amber_protocol::Protocol::Resp2);
            let mut origin = crate::notify::Origin {
                client: 0,
                out: &mut unused,
            };
            server.expire_replica_keys(&mut origin);
        }
        // As Redis: not while a child shares the pages, which each move would make it copy.
        if server.settings.active_rehashing && !server.has_active_child() {
            active_rehash(&mut server, &mut rehash_db);
        }
        close_idle_clients(&server);
        server.evict_clients();
        server.aof.cron();
        server.watch_aof_health();
        let (writes, fsync, always) = server.aof.take_stalls();
        // As Redis: each slow write under its circumstance, and all of them as `aof-write`.
        server.latency_sample("aof-write-pending-fsync", writes.pending_fsync);
        server.latency_sample("aof-write-active-child", writes.active_child);
        server.latency_sample("aof-write-alone", writes.alone);
        server.latency_sample("aof-write", writes.longest());
        if always {
            server.latency_sample("aof-fsync-always", fsync);
        }
        server.run_jobs();
        server.reap_debug_sessions();
        server.backup_cron();
        server.archive_cron();
        server.migrate_sockets.close_idle();
        server.check_replication();
        server.pauses.cron(Instant::now());
        let elapsed = last_sample.elapsed();
        if elapsed >= Duration::from_millis(1000) {
            // CONFIG RESETSTAT may have set the counter back meanwhile.
            let done = server
                .stats
                .commands_processed
                .saturating_sub(last_commands);
            server.stats.instantaneous_ops = (done as f64 / elapsed.as_secs_f64()) as u64;
            last_commands = server.stats.commands_processed;
            let now_bytes = network_bytes(&server.stats);
            for (slot, (now, before)) in now_bytes.iter().zip(last_bytes).enumerate() {
                let kib = now.saturating_sub(before) as f64 / 1024.0;
                server.stats.instantaneous_kbps[slot] = kib / elapsed.as_secs_f64();
            }
            last_bytes = now_bytes;
            // Not while a child shares the pages: its copy-on-write image is what it saves.
            if !server.has_active_child() {
                trimmer.tick();
            }
            last_sample = Instant::now();
        }
    }
}

/// Bytes read and written on client connections, then on replication links.
fn network_bytes(stats: &crate::server::Stats) -> [u64; 4] {
    [
        stats.net_input_bytes,
        stats.net_output_bytes,
        stats.net_repl_input_bytes,
        stats.net_repl_output_bytes,
    ]
}

/// Redis's active expire cycle: sample keys with a TTL in each database, and keep going while
/// more than 10% of a sample was expired, within a time budget of 25% of a cron tick.
fn active_expire(server: &mut Server, hz: u32) {
    let effort = server.settings.active_expire_effort as usize;
    let per_loop = 20 + 20 / 4 * (effort - 1);
    let budget = Duration::from_micros(u64::from(250_000 / hz.max(1)));
    let started = Instant::now();
    let now = server.now_ms;
    let (mut sampled, mut expired, mut capped) = (0, 0, false);
    for index in 0..server.keyspace.db_count() {
        loop {
            let (db, random) = server.keyspace.db_with_random(index);
            if db.volatile_len() == 0 {
                break;
            }
            let cycle = db.expire_sample(now, per_loop, random);
            sampled += cycle.sampled;
            expired += cycle.expired;
            if started.elapsed() > budget {
                capped = true;
                break;
            }
            if cycle.sampled == 0 || cycle.expired * 10 <= cycle.sampled {
                break;
            }
        }
    }
    let took = started.elapsed();
    let stats = &mut server.stats;
    // As Redis: a moving average of the share found expired, weighted 5% per cycle.
    let current = if sampled > 0 {
        expired as f64 / sampled as f64
    } else {
        0.0
    };
    stats.expired_stale_perc = current * 0.05 + stats.expired_stale_perc * 0.95;
    stats.expired_time_cap_reached += u64::from(capped);
    stats.expire_cycle_micros += took.as_micros() as u64;
    server.latency_sample("expire-cycle", took);
    let mut unused = amber_protocol::ReplyWriter::new(amber_protocol::Protocol::Resp2);
    let mut origin = crate::notify::Origin {
        client: 0,
        out: &mut unused,
    };
    server.collect_expired(&mut origin);
}

/// Redis's `incrementallyRehash`: gives the first database from `next_db` on whose key or
/// expiry table is resizing up to a millisecond of moving keys (INV-REHASH), so a table that
/// is only read still finishes its resize.
fn active_rehash(server: &mut Server, next_db: &mut usize) {
    /// Buckets moved between looks at the clock (Redis's `dictRehashMilliseconds` step).
    const BATCH: usize = 100;
    let budget = Duration::from_millis(1);
    let count = server.keyspace.db_count();
    for _ in 0..count {
        let index = *next_db % count;
        *next_db = (index + 1) % count;
        let db = server.keyspace.db(index);
        if !db.is_rehashing() {
            continue;
        }
        let started = Instant::now();
        while db.rehash(BATCH) && started.elapsed() < budget {}
        return;
    }
}

fn close_idle_clients(server: &Server) {
    let timeout = server.settings.timeout;
    for info in server.clients.values() {
        let mut info = info.borrow_mut();
        let idle = info.last_interaction.elapsed();
        let replication_link = matches!(info.flags, 'S' | 'M');
        // As Redis's clientsCronResizeQueryBuffer, for a buffer wasting more than 4 KiB: a
        // connection idle for 2 seconds gives its empty buffer back; a buffer past 32 KiB and
        // twice the recent peak is trimmed to that peak.
        let (len, allocated, peak) = (
            info.query_buffer,
            info.query_buffer_capacity,
            info.query_buffer_peak,
        );
        if allocated.saturating_sub(len) > 4096 {
            if idle.as_secs() >= 2 && len == 0 {
                info.shrink_to = Some(0);
                info.shrink.notify_one();
            } else if allocated > 32 * 1024 && allocated / 2 > peak {
                info.shrink_to = Some(len.max(peak).max(1));
                info.shrink.notify_one();
            }
        }
        // An idle connection's reply buffer goes back to its starting size too.
        if idle.as_secs() >= 2 && info.reply_buffer > 0 {
            info.shrink.notify_one();
        }
        info.query_buffer_peak = len;
        if timeout > 0 && idle.as_secs() > timeout && !replication_link {
            verbose!("Closing idle client");
            info.killed = true;
            info.kill.notify_one();
        }
    }
}
