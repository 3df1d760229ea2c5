//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis 7.0's rules — queue-time
//! errors abort EXEC with EXECABORT, and a watched key that was written, flushed, or expired
//! since WATCH makes EXEC return a null reply.

use bytes::Bytes;

use super::{Ctx, execute_now, table};

/// A transaction being queued by one client.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// Commands queued since MULTI.
    pub queued: Vec<Vec<Bytes>>,
    /// Set when a command was refused while queueing: EXEC will abort.
    pub failed: bool,
}

impl Transaction {
    /// Bytes the queued commands hold (`CLIENT LIST`'s `multi-mem`): their arguments and
    /// the vectors holding them.
    pub(crate) fn memory(&self) -> usize {
        self.queued
            .iter()
            .map(|args| {
                std::mem::size_of::<Vec<Bytes>>()
                    + args
                        .iter()
                        .map(|arg| arg.len() + std::mem::size_of::<Bytes>())
                        .sum::<usize>()
            })
            .sum()
    }
}

/// One key a client watches.
#[derive(Debug, Clone)]
pub(crate) struct WatchedKey {
    /// Database index.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// Whether the key existed (and had not expired) when it was watched.
    pub existed: bool,
}

/// Whether `args` must be queued rather than executed, for a client inside MULTI.
pub(super) fn queues(name: &str) -> bool {
    !matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "unwatch" | "quit" | "reset"
    )
}

/// `MULTI`
pub(super) fn multi(ctx: &mut Ctx, _args: &[Bytes]) {
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR MULTI calls can not be nested");
    }
    ctx.client.transaction = Some(Transaction::default());
    ctx.out.ok();
}

/// `DISCARD`
pub(super) fn discard(ctx: &mut Ctx, _args: &[Bytes]) {
    if ctx.client.transaction.take().is_none() {
        return ctx.error("ERR DISCARD without MULTI");
    }
    unwatch_all(ctx);
    ctx.out.ok();
}

/// `EXEC`
pub(super) fn exec(ctx: &mut Ctx, _args: &[Bytes]) {
    let Some(transaction) = ctx.client.transaction.take() else {
        return ctx.error("ERR EXEC without MULTI");
    };
    if transaction.failed {
        unwatch_all(ctx);
        return ctx.error("EXECABORT Transaction discarded because of previous errors.");
    }
    let invalidated = watch_invalidated(ctx);
    unwatch_all(ctx);
    if invalidated {
        ctx.out.null_array();
        return;
    }
    ctx.out.array(transaction.queued.len());
    ctx.client.in_exec = true;
    // The writes inside are recorded in the AOF as one MULTI ... EXEC block; EXEC itself is
    // not recorded again.
    ctx.server.begin_exec();
    for args in &transaction.queued {
        execute_now(ctx, args);
    }
    ctx.server.end_exec();
    ctx.propagate_as(Vec::new());
    ctx.client.in_exec = false;
}

/// The flags EXEC has: those of the commands it queued, together (as Redis's
/// `mstate.cmd_flags`), so a read-only replica or a failed save refuses a transaction that
/// writes before any of it runs.
pub(super) fn queued_flags(ctx: &mut Ctx) -> super::table::Flags {
    let Some(transaction) = ctx.client.transaction.take() else {
        return super::table::EXEC_FLAGS;
    };
    use super::table::{DENYOOM, EXEC_FLAGS, LOADING, NO_ASYNC_LOADING, NOSCRIPT, STALE, WRITE};
    let mut queued = super::table::Flags::default();
    let mut all_stale = true;
    for args in &transaction.queued {
        if let Some(spec) = super::lookup(&args[0]) {
            let flags = super::scripting_cmds::effective_flags(ctx, spec, args);
            queued = queued | flags;
            all_stale &= flags.contains(STALE);
        }
    }
    ctx.client.transaction = Some(transaction);
    // As in Redis, whether they write (and may grow memory, or wait for an async load)
    // carries over, and EXEC may run on a stale replica only if all of them may.
    let carried = queued.only(WRITE | DENYOOM | NO_ASYNC_LOADING);
    let stale = if all_stale {
        EXEC_FLAGS.only(STALE)
    } else {
        super::table::Flags::default()
    };
    EXEC_FLAGS.only(NOSCRIPT | LOADING) | stale | carried
}

/// Ends the transaction without running it: `EXECABORT` with the reason.
pub(super) fn abort(ctx: &mut Ctx, reason: &str) {
    ctx.client.transaction = None;
    unwatch_all(ctx);
    let reason = reason.strip_prefix('-').unwrap_or(reason);
    ctx.error(&format!(
        "EXECABORT Transaction discarded because of: {reason}"
    ));
}

/// Refuses `args` with `message` before it runs (a busy script), as Redis's `rejectCommand`:
/// an open transaction is flagged, so its EXEC aborts, and EXEC itself is aborted with the
/// reason.
pub(crate) fn refuse(ctx: &mut Ctx, args: &[Bytes], message: &str) {
    if args[0].eq_ignore_ascii_case(b"exec") {
        return abort(ctx, message);
    }
    flag_failed(ctx);
    ctx.error(message);
}

/// Queues `args` inside MULTI.
pub(super) fn queue(ctx: &mut Ctx, args: &[Bytes]) {
    if let Some(transaction) = ctx.client.transaction.as_mut() {
        transaction.queued.push(args.to_vec());
    }
    ctx.out.simple("QUEUED");
}

/// Marks the open transaction as failed (a command was refused while queueing).
pub(super) fn flag_failed(ctx: &mut Ctx) {
    if let Some(transaction) = ctx.client.transaction.as_mut() {
        transaction.failed = true;
    }
}

/// `WATCH key [key ...]`
pub(super) fn watch(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.client.db;
    let now = ctx.server.now_ms;
    for key in &args[1..] {
        if ctx
            .client
            .watching
            .iter()
            .any(|w| w.db == db && w.key == key.as_ref())
        {
            continue;
        }
        let existed = ctx.server.keyspace.db(db).peek(key, now).is_some();
        ctx.client.watching.push(WatchedKey {
            db,
            key: key.to_vec(),
            existed,
        });
        ctx.server
            .links
            .watchers
            .entry((db, key.to_vec()))
            .or_default()
            .push(ctx.client.id);
    }
    ctx.out.ok();
}

/// `UNWATCH`
pub(super) fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) {
    unwatch_all(ctx);
    ctx.out.ok();
}

/// Forgets every key the client watches.
pub(super) fn unwatch_all(ctx: &mut Ctx) {
    let id = ctx.client.id;
    for watched in ctx.client.watching.drain(..) {
        ctx.server.remove_watcher(id, watched.db, watched.key);
    }
    ctx.server.links.invalidated.remove(&id);
}

/// Whether a watched key was touched, or existed at WATCH and has expired or gone since.
fn watch_invalidated(ctx: &mut Ctx) -> bool {
    if ctx.server.links.invalidated.contains(&ctx.client.id) {
        return true;
    }
    let now = ctx.server.now_ms;
    let watching = ctx.client.watching.clone();
    watching
        .iter()
        .any(|w| w.existed && ctx.server.keyspace.db(w.db).peek(&w.key, now).is_none())
}

/// The keys of a command: its key specification's range, or for commands whose keys move
/// (a `numkeys` argument, SORT's `STORE`, MIGRATE's `KEYS`), where they are in `args`.
pub(super) fn command_keys<'a>(
    spec: &table::CommandSpec,
    args: &'a [Bytes],
) -> impl Iterator<Item = &'a Bytes> {
    key_positions(spec, args)
        .into_iter()
        .filter_map(move |i| args.get(i))
}

/// The positions of a command's keys in `args` (see [`command_keys`]).
pub(super) fn key_positions(spec: &table::CommandSpec, args: &[Bytes]) -> Vec<usize> {
    let numkeys_at = |index: usize| {
        args.get(index)
            .and_then(|n| amber_protocol::parse_i64(n))
            .filter(|&n| n > 0)
            .map_or(0, |n| n as usize)
    };
    let counted = |numkeys_index: usize| {
        let first = numkeys_index + 1;
        (first..first + numkeys_at(numkeys_index))
            .filter(|&i| i < args.len())
            .collect::<Vec<usize>>()
    };
    match spec.name {
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut keys = vec![1];
            keys.extend(counted(2));
            keys
        }
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            counted(1)
        }
        "blmpop" | "bzmpop" => counted(2),
        "xread" | "xreadgroup" => {
            let from = if spec.name == "xread" { 1 } else { 4 };
            match args
                .iter()
                .skip(from)
                .position(|word| super::is(word, "streams"))
                .map(|at| at + from)
            {
                Some(at) => {
                    let keys = (args.len() - at - 1) / 2;
                    (at + 1..at + 1 + keys).collect()
                }
                None => Vec::new(),
            }
        }
        "sort" | "sort_ro" => {
            let mut keys = vec![1];
            let store = args
                .iter()
                .enumerate()
                .skip(2)
                .filter(|(_, word)| super::is(word, "store"))
                .map(|(i, _)| i + 1)
                .filter(|&i| i < args.len())
                .last();
            keys.extend(store);
            keys
        }
        "migrate" => match args.iter().position(|word| super::is(word, "keys")) {
            Some(at) if at > 5 && args.get(3).is_some_and(|k| k.is_empty()) => {
                (at + 1..args.len()).collect()
            }
            _ => vec![3],
        },
        _ => {
            if spec.first_key == 0 {
                return Vec::new();
            }
            let count = args.len() as i32;
            let first = spec.first_key;
            let last = match spec.last_key {
                negative if negative < 0 => count + negative,
                last => last.min(count - 1),
            };
            (first..=last)
                .step_by(spec.step.max(1) as usize)
                .map(|i| i as usize)
                .collect()
        }
    }
}
