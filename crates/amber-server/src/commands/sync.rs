//! The commands a replica sends its master: `SYNC`, `PSYNC` (always a full resync here: there
//! is no backlog for partial ones yet) and `REPLCONF`.

use bytes::Bytes;

use super::{Ctx, is};

/// `SYNC` and `PSYNC replid offset`: the connection becomes a replica; a snapshot follows (see
/// [`crate::replication`]).
pub(super) fn sync(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.client.replica {
        return;
    }
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR Command not allowed inside a transaction");
    }
    let (addr, wake, kill) = {
        let info = ctx.client.info.borrow();
        (info.addr.clone(), info.wake.clone(), info.kill.clone())
    };
    crate::notice!("Replica {addr} asks for synchronization");
    let psync = is(&args[0], "psync");
    if psync {
        crate::notice!("Full resync requested by replica {addr}");
    }
    ctx.client.replica = true;
    ctx.client.info.borrow_mut().flags = 'S';
    let server = &mut *ctx.server;
    server.replication.attach(
        ctx.client.id,
        addr,
        ctx.client.replica_listening_port,
        psync,
        wake,
        kill,
    );
    server.refresh_recording();
    if server.has_active_child() {
        crate::notice!("Waiting for next BGSAVE for SYNC");
    } else {
        crate::notice!("Starting BGSAVE for SYNC with target: disk");
        if let Err(error) = server.request_bgsave(false) {
            crate::warning!("BGSAVE for replication failed: {error}");
            server.replication.detach(ctx.client.id);
            ctx.client.close_after_reply = true;
        }
    }
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
            return;
        } else if is(option, "listening-port") {
            let Ok(port) = ctx.int_arg(value) else {
                return;
            };
            ctx.client.replica_listening_port = u16::try_from(port).unwrap_or(0);
        } else if is(option, "capa") || is(option, "ip-address") || is(option, "getack") {
            // Capabilities are optional; this master sends snapshots from disk in any case.
        } else {
            let option = String::from_utf8_lossy(option);
            return ctx.error(&format!("ERR Unrecognized REPLCONF option: {option}"));
        }
    }
    ctx.out.ok();
}
