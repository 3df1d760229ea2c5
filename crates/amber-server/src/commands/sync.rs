//! Replication commands: what a replica sends its master (`SYNC`, `PSYNC`, `REPLCONF`), what
//! makes this server a replica or a master again (`REPLICAOF`, `SLAVEOF`), `ROLE`, and `WAIT`.

use bytes::Bytes;

use super::{Ctx, is};
use crate::replication::{Capabilities, LinkState, MasterLink, NewReplica, PartialRefused};

/// `SYNC` and `PSYNC replid offset`: the connection becomes a replica. It continues from the
/// backlog when its history allows; otherwise a snapshot follows (see [`crate::replication`]).
pub(super) fn sync(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.client.replica {
        return;
    }
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR Command not allowed inside a transaction");
    }
    if args.len() > 3 && is(&args[0], "psync") && is(&args[3], "failover") {
        crate::warning!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(&args[1])
        );
        if ctx.server.replication.master.is_none() {
            return ctx.error("PSYNC FAILOVER can't be sent to a master.");
        }
        if !args[1].eq_ignore_ascii_case(ctx.server.replication.replid.as_bytes()) {
            return ctx.error("PSYNC FAILOVER replid must match my replid.");
        }
        promote(ctx.server);
        let client = super::describe_client(&ctx.client.info.borrow());
        crate::notice!("MASTER MODE enabled (failover request from '{client}')");
    }
    if ctx.server.replication.failover.is_some() {
        return ctx.error("NOMASTERLINK Can't SYNC while failing over");
    }
    let link_down = ctx
        .server
        .replication
        .master
        .as_ref()
        .is_some_and(|link| link.state != LinkState::Connected);
    if link_down {
        return ctx.error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    let psync = is(&args[0], "psync");
    let requested_offset = match args.get(2).map(|arg| super::parse_i64(arg)) {
        Some(None) => {
            crate::warning!(
                "Replica {} asks for synchronization but with a wrong offset",
                ctx.client.info.borrow().addr
            );
            return ctx.error(super::errors::NOT_INTEGER);
        }
        Some(Some(offset)) => offset,
        None => -1,
    };
    let new = {
        let info = ctx.client.info.borrow();
        NewReplica {
            id: ctx.client.id,
            fd: info.fd,
            addr: info.addr.clone(),
            listening_port: ctx.client.replica_listening_port,
            capabilities: Capabilities {
                psync,
                ..ctx.client.replica_capabilities
            },
            wake: info.wake.clone(),
            kill: info.kill.clone(),
        }
    };
    crate::notice!("Replica {} asks for synchronization", new.addr);
    ctx.client.replica = true;
    ctx.client.info.borrow_mut().flags = 'S';
    let server = &mut *ctx.server;
    let new = if psync {
        let replid = String::from_utf8_lossy(&args[1]).into_owned();
        let offset = u64::try_from(requested_offset).unwrap_or(u64::MAX);
        match server.replication.try_partial(&replid, offset, new) {
            Ok(()) => {
                server.stats.sync_partial_ok += 1;
                server.refresh_recording();
                return;
            }
            Err((reason, new)) => {
                if !matches!(reason, PartialRefused::Requested) {
                    server.stats.sync_partial_err += 1;
                }
                new
            }
        }
    } else {
        new
    };
    server.stats.sync_full += 1;
    let fresh = server.fresh_replid();
    server.replication.attach_for_snapshot(new, fresh);
    server.refresh_recording();
    if server.has_active_child() {
        crate::notice!(
            "Can't attach the replica to the current BGSAVE. Waiting for next BGSAVE for SYNC"
        );
        return;
    }
    let diskless =
        server.config.get_bool("repl-diskless-sync") && ctx.client.replica_capabilities.eof;
    if diskless && server.config.get_i64("repl-diskless-sync-delay") > 0 {
        crate::notice!("Delay next BGSAVE for diskless SYNC");
        return;
    }
    server.start_replica_sync();
}

/// `REPLCONF option value ...`: what a replica tells its master about itself (`ACK` gets no
/// reply, as in Redis).
pub(super) fn replconf(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len().is_multiple_of(2) {
        return ctx.error(super::errors::SYNTAX);
    }
    for pair in args[1..].chunks(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "ack") || is(option, "fack") {
            if let Some(offset) = super::parse_i64(value).and_then(|o| u64::try_from(o).ok())
                && ctx.client.replica
            {
                ctx.server.replication.acknowledge(ctx.client.id, offset);
            }
            return;
        } else if is(option, "listening-port") {
            let Ok(port) = ctx.int_arg(value) else {
                return;
            };
            ctx.client.replica_listening_port = u16::try_from(port).unwrap_or(0);
        } else if is(option, "capa") {
            if is(value, "eof") {
                ctx.client.replica_capabilities.eof = true;
            } else if is(value, "psync2") {
                ctx.client.replica_capabilities.psync2 = true;
            }
        } else if is(option, "getack") {
            // Only a master asks this of its replica, over the replication link.
            return;
        } else if is(option, "ip-address")
            || is(option, "rdb-only")
            || is(option, "rdb-filter-only")
        {
            // Accepted; the address is taken from the connection.
        } else {
            let option = String::from_utf8_lossy(option);
            return ctx.error(&format!("ERR Unrecognized REPLCONF option: {option}"));
        }
    }
    ctx.out.ok();
}

/// `REPLICAOF host port` / `SLAVEOF host port`, and `REPLICAOF NO ONE`.
pub(super) fn replicaof(ctx: &mut Ctx, args: &[Bytes]) {
    if is(&args[1], "no") && is(&args[2], "one") {
        if ctx.server.replication.master.is_some() {
            promote(ctx.server);
            let client = super::describe_client(&ctx.client.info.borrow());
            crate::notice!("MASTER MODE enabled (user request from '{client}')");
        }
        return ctx.out.ok();
    }
    if ctx.client.replica {
        return ctx.error("ERR Command is not valid when client is a replica.");
    }
    let Some(port) = super::parse_i64(&args[2]) else {
        return ctx.error(super::errors::NOT_INTEGER);
    };
    let Ok(port) = u16::try_from(port) else {
        return ctx.error("ERR Invalid master port");
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let same = ctx
        .server
        .replication
        .master
        .as_ref()
        .is_some_and(|link| link.host.eq_ignore_ascii_case(&host) && link.port == port);
    if same {
        crate::notice!(
            "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
        );
        ctx.out.simple("OK Already connected to specified master");
        return;
    }
    follow(ctx.server, host.clone(), port);
    let client = super::describe_client(&ctx.client.info.borrow());
    crate::notice!("REPLICAOF {host}:{port} enabled (user request from '{client}')");
    ctx.out.ok();
}

/// Makes this server a replica of `host:port` (the `replicaof` directive and `REPLICAOF`).
pub(crate) fn follow(server: &mut crate::server::Server, host: String, port: u16) {
    let previous = server.replication.master.take();
    let generation = previous.as_ref().map_or(1, |link| link.generation + 1);
    if let Some(id) = previous.and_then(|link| link.client_id) {
        server.clients.remove(&id);
    } else {
        crate::notice!(
            "Before turning into a replica, using my own master parameters to synthesize a cached master: I may be able to synchronize with the new master with just a partial transfer."
        );
    }
    let mut link = MasterLink::new(host, port, generation, true);
    link.down_since = Some(std::time::Instant::now());
    server.replication.master = Some(link);
    server.keyspace.set_keep_expired(true);
    server.unblock_all_for_role_change();
    server.refresh_recording();
    server.replication.link_changed.notify_one();
}

/// `REPLICAOF NO ONE`: a new history whose past is the old master's (replicas of the old
/// master may continue with this server); keys expire here again.
pub(crate) fn promote(server: &mut crate::server::Server) {
    if let Some(id) = server
        .replication
        .master
        .take()
        .and_then(|link| link.client_id)
    {
        server.clients.remove(&id);
    }
    let fresh = server.fresh_replid();
    server.replication.shift_replid(fresh);
    server.replication.replicas.disconnect_all();
    server.keyspace.set_keep_expired(false);
    // A master expires every key itself.
    server.replica_keys_with_expire.clear();
    server.refresh_recording();
    server.replication.link_changed.notify_one();
}

/// `ROLE`: `master` with its offset and online replicas, or `slave` with its master and link.
pub(super) fn role(ctx: &mut Ctx, _args: &[Bytes]) {
    let replication = &ctx.server.replication;
    match &replication.master {
        None => {
            let replicas: Vec<_> = replication
                .replicas
                .views()
                .into_iter()
                .filter(|replica| replica.state == "online")
                .collect();
            ctx.out.array(3);
            ctx.out.bulk(b"master");
            ctx.out.integer(replication.offset as i64);
            ctx.out.array(replicas.len());
            for replica in replicas {
                ctx.out.array(3);
                ctx.out.bulk(replica.ip.as_bytes());
                ctx.out.bulk(replica.port.to_string().as_bytes());
                ctx.out.bulk(replica.ack_offset.to_string().as_bytes());
            }
        }
        Some(link) => {
            let offset = if link.client_id.is_some() {
                replication.offset as i64
            } else {
                -1
            };
            ctx.out.array(5);
            ctx.out.bulk(b"slave");
            ctx.out.bulk(link.host.as_bytes());
            ctx.out.integer(i64::from(link.port));
            ctx.out.bulk(link.state.role_name().as_bytes());
            ctx.out.integer(offset);
        }
    }
}

/// `WAIT numreplicas timeout`: blocks until that many replicas acknowledged this client's
/// last write, or the timeout (milliseconds, 0 = forever) passes; replies how many did.
pub(super) fn wait(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.server.replication.is_replica() {
        return ctx.error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Ok(wanted) = ctx.int_arg(&args[1]) else {
        return;
    };
    let Some(timeout) = super::parse_i64(&args[2]) else {
        return ctx.error("ERR timeout is not an integer or out of range");
    };
    if timeout < 0 {
        return ctx.error("ERR timeout is negative");
    }
    let acked = ctx
        .server
        .replication
        .replicas
        .acked_at_least(ctx.client.write_offset);
    let timed_out = std::mem::take(&mut ctx.client.wait_timed_out);
    if acked as i64 >= wanted || ctx.client.in_exec || timed_out {
        ctx.server.replication.remove_waiter(ctx.client.id);
        return ctx.out.integer(acked as i64);
    }
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    let first_time = !ctx.client.serving_blocked;
    let wake = ctx.client.info.borrow().wake.clone();
    ctx.server.replication.add_waiter(ctx.client.id, wake);
    super::blocking::block_for_acks(ctx, args, deadline);
    if first_time {
        ctx.server
            .replication
            .feed_global(&[b"REPLCONF".as_slice(), b"GETACK", b"*"]);
    }
}

/// `FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]`: hands the master role to a replica
/// without losing a write (see [`crate::replication::Failover`]).
pub(super) fn failover(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len() == 2 && is(&args[1], "abort") {
        if ctx.server.replication.failover.is_none() {
            return ctx.error("ERR No failover in progress.");
        }
        ctx.server.abort_failover("Failover manually aborted");
        return ctx.out.ok();
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut index = 1;
    while index < args.len() {
        let word = &args[index];
        if is(word, "timeout") && index + 1 < args.len() && timeout == 0 {
            let Ok(ms) = ctx.int_arg(&args[index + 1]) else {
                return;
            };
            if ms <= 0 {
                return ctx.error("ERR FAILOVER timeout must be greater than 0");
            }
            timeout = ms;
            index += 2;
        } else if is(word, "to") && index + 2 < args.len() && target.is_none() {
            let Ok(port) = ctx.int_arg(&args[index + 2]) else {
                return;
            };
            let host = String::from_utf8_lossy(&args[index + 1]).into_owned();
            target = Some((host, port));
            index += 3;
        } else if is(word, "force") && !force {
            force = true;
            index += 1;
        } else {
            return ctx.error(super::errors::SYNTAX);
        }
    }
    let server = &mut *ctx.server;
    if server.replication.failover.is_some() {
        return ctx.error("ERR FAILOVER already in progress.");
    }
    if server.replication.is_replica() {
        return ctx.error("ERR FAILOVER is not valid when server is a replica.");
    }
    if server.replication.replicas.is_empty() {
        return ctx.error("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout == 0 || target.is_none()) {
        return ctx.error(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        );
    }
    let target = match target {
        Some((host, port)) => {
            let views = server.replication.replicas.views();
            let Some(replica) = views
                .iter()
                .find(|replica| replica.ip == host && i64::from(replica.port) == port)
            else {
                return ctx.error("ERR FAILOVER target HOST and PORT is not a replica.");
            };
            if replica.state != "online" {
                return ctx.error("ERR FAILOVER target replica is not online.");
            }
            crate::notice!("FAILOVER requested to {host}:{port}.");
            Some((host, replica.port))
        }
        None => {
            crate::notice!("FAILOVER requested to any replica.");
            None
        }
    };
    server.replication.failover = Some(crate::replication::Failover {
        target,
        force,
        deadline: (timeout > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64)),
        state: crate::replication::FailoverState::WaitingForSync,
    });
    server.pauses.set_failover(true);
    ctx.out.ok();
}
