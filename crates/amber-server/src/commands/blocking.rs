//! Blocking pops: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP. A command that
//! finds no data records itself in [`Blocked`]; the connection task then waits until a write
//! signals one of its keys (clients are woken oldest first), the timeout passes, or the client
//! goes away, and re-runs the command.

use amber_protocol::Protocol;
use bytes::Bytes;
use tokio::time::Instant;

use amber_keyspace::{ListValue, ZsetValue};

use super::lists::{End, end_of, pop_from, read_list, write_list};
use super::zsets::write_zset;
use super::{Ctx, Replied, errors, first_ready, is};
use crate::commands::long_double::LongDouble;
use crate::notify;

/// A client waiting for data.
#[derive(Debug, Clone)]
pub(crate) struct Blocked {
    /// The command to run again when a key is signalled.
    pub args: Vec<Bytes>,
    /// The keys it waits on.
    pub keys: Vec<Vec<u8>>,
    /// The database of the keys.
    pub db: usize,
    /// When to give up (`None`: never).
    pub deadline: Option<Instant>,
    /// On timeout the command runs once more to give its own reply (WAIT) instead of a nil.
    pub rerun_on_timeout: bool,
    /// Woken, the command goes through every check again (a command held by a pause).
    pub recheck: bool,
}

/// Parses a blocking timeout in seconds (fractions allowed; 0 = forever).
fn timeout(ctx: &mut Ctx, arg: &[u8]) -> Result<Option<Instant>, Replied> {
    let seconds = LongDouble::parse(arg)
        .and_then(|value| value.to_human_string().parse::<f64>().ok())
        .filter(|s| s.is_finite());
    match seconds {
        None => {
            ctx.error("ERR timeout is not a float or out of range");
            Err(Replied)
        }
        Some(s) if s < 0.0 => {
            ctx.error("ERR timeout is negative");
            Err(Replied)
        }
        Some(0.0) => Ok(None),
        Some(s) => Ok(Some(
            Instant::now() + std::time::Duration::from_secs_f64(s.min(1e9)),
        )),
    }
}

/// Blocks the client on `keys` unless inside EXEC, where the empty result is replied instead.
pub(super) fn block(
    ctx: &mut Ctx,
    args: &[Bytes],
    keys: &[Bytes],
    deadline: Option<Instant>,
    in_exec_reply: fn(&mut Ctx),
) {
    if ctx.client.in_exec {
        in_exec_reply(ctx);
        return;
    }
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    let db = ctx.client.db;
    ctx.server.block_on(ctx.client.id, db, &keys);
    ctx.client.blocked = Some(Blocked {
        args: args.to_vec(),
        keys,
        db,
        deadline,
        rerun_on_timeout: false,
        recheck: false,
    });
}

/// Holds a command until the pause that stops it ends (`CLIENT PAUSE`, `FAILOVER`).
pub(super) fn hold_for_pause(ctx: &mut Ctx, args: &[Bytes]) {
    let wake = ctx.client.info.borrow().wake.clone();
    ctx.server.pauses.wait(ctx.client.id, wake);
    ctx.client.blocked = Some(Blocked {
        args: args.to_vec(),
        keys: Vec::new(),
        db: ctx.client.db,
        deadline: None,
        rerun_on_timeout: false,
        recheck: true,
    });
}

/// Blocks a WAIT until replicas acknowledge (it is woken by each `REPLCONF ACK`).
pub(super) fn block_for_acks(ctx: &mut Ctx, args: &[Bytes], deadline: Option<Instant>) {
    ctx.client.blocked = Some(Blocked {
        args: args.to_vec(),
        keys: Vec::new(),
        db: ctx.client.db,
        deadline,
        rerun_on_timeout: true,
        recheck: false,
    });
}

fn null_array(ctx: &mut Ctx) {
    ctx.out.null_array();
}

fn null(ctx: &mut Ctx) {
    ctx.out.null();
}

/// The key that had data and the elements popped from it.
type Popped = (Bytes, Vec<amber_keyspace::SmallBytes>);

/// Pops from the first non-empty list among `keys`; WRONGTYPE for a non-list key.
fn pop_any(
    ctx: &mut Ctx,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<Popped>, Replied> {
    let Some(key) = first_ready::<ListValue>(ctx, keys)? else {
        return Ok(None);
    };
    let items = write_list(ctx, key, false, |list| pop_from(list, end, count))?.unwrap_or_default();
    ctx.dirty(items.len() as u64);
    ctx.modified_only(vec![key.clone()]);
    Ok(Some((key.clone(), items)))
}

fn bpop(ctx: &mut Ctx, args: &[Bytes], end: End) {
    let keys = &args[1..args.len() - 1];
    let Ok(deadline) = timeout(ctx, &args[args.len() - 1]) else {
        return;
    };
    match pop_any(ctx, keys, end, 1) {
        Err(Replied) => {}
        Ok(Some((key, items))) => {
            ctx.notify(notify::LIST, super::lists::pop_event(end), &key);
            ctx.notify_del_if_gone(&key);
            ctx.propagate_as(vec![aof_command!(pop_name(end), &key)]);
            ctx.out.array(2);
            ctx.out.bulk(&key);
            ctx.out.bulk(&items[0]);
        }
        Ok(None) => block(ctx, args, keys, deadline, null_array),
    }
}

/// The non-blocking pop the AOF records for a blocking one.
fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    }
}

fn end_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LEFT",
        End::Right => b"RIGHT",
    }
}

/// `BLPOP key [key ...] timeout`
pub(super) fn blpop(ctx: &mut Ctx, args: &[Bytes]) {
    bpop(ctx, args, End::Left);
}

/// `BRPOP key [key ...] timeout`
pub(super) fn brpop(ctx: &mut Ctx, args: &[Bytes]) {
    bpop(ctx, args, End::Right);
}

fn bmove(ctx: &mut Ctx, args: &[Bytes], from: End, to: End, timeout_arg: &[u8]) {
    let Ok(deadline) = timeout(ctx, timeout_arg) else {
        return;
    };
    let (source, destination) = (&args[1], &args[2]);
    // As Redis: the destination's type matters only once the source has an element.
    let Ok(ready) = first_ready::<ListValue>(ctx, std::slice::from_ref(source)) else {
        return;
    };
    let source_has_data = ready.is_some();
    if source_has_data && read_list(ctx, destination, |_| ()).is_err() {
        return;
    }
    if !source_has_data {
        return block(ctx, args, std::slice::from_ref(source), deadline, null);
    }
    if let Ok(Some(item)) = super::lists::move_element(ctx, source, destination, from, to) {
        // As Redis: BRPOPLPUSH is recorded as RPOPLPUSH, BLMOVE as LMOVE.
        let recorded = if is(&args[0], "brpoplpush") {
            aof_command!(b"RPOPLPUSH", source, destination)
        } else {
            aof_command!(b"LMOVE", source, destination, end_name(from), end_name(to))
        };
        ctx.propagate_as(vec![recorded]);
        // Both lists changed: the destination's waiters may now be served.
        ctx.modified_only(vec![source.clone(), destination.clone()]);
        ctx.out.bulk(&item);
    }
}

/// `BRPOPLPUSH source destination timeout`
pub(super) fn brpoplpush(ctx: &mut Ctx, args: &[Bytes]) {
    bmove(ctx, args, End::Right, End::Left, &args[3]);
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
pub(super) fn blmove(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(from), Some(to)) = (end_of(&args[3]), end_of(&args[4])) else {
        return ctx.error(errors::SYNTAX);
    };
    bmove(ctx, args, from, to, &args[5]);
}

/// The `timeout numkeys key [key ...]` that BLMPOP and BZMPOP start with: the deadline, the
/// keys, and the arguments after them (at least one); `None` once an error is replied.
fn mpop_head<'a>(
    ctx: &mut Ctx,
    args: &'a [Bytes],
) -> Option<(Option<Instant>, &'a [Bytes], &'a [Bytes])> {
    let deadline = timeout(ctx, &args[1]).ok()?;
    let numkeys = super::numkeys_arg(ctx, &args[2])?;
    if numkeys > args.len().saturating_sub(4) {
        ctx.error(errors::SYNTAX);
        return None;
    }
    Some((deadline, &args[3..3 + numkeys], &args[3 + numkeys..]))
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`
pub(super) fn blmpop(ctx: &mut Ctx, args: &[Bytes]) {
    let Some((deadline, keys, options)) = mpop_head(ctx, args) else {
        return;
    };
    let Some(end) = end_of(&options[0]) else {
        return ctx.error(errors::SYNTAX);
    };
    let count = match &options[1..] {
        [] => 1,
        [word, value] if is(word, "count") => match amber_protocol::parse_i64(value) {
            Some(n) if n > 0 => n as usize,
            _ => return ctx.error("ERR count should be greater than 0"),
        },
        _ => return ctx.error(errors::SYNTAX),
    };
    match pop_any(ctx, keys, end, count) {
        Err(Replied) => {}
        Ok(Some((key, items))) => {
            ctx.notify(notify::LIST, super::lists::pop_event(end), &key);
            ctx.notify_del_if_gone(&key);
            let popped = items.len().to_string();
            ctx.propagate_as(vec![aof_command!(pop_name(end), &key, popped.as_bytes())]);
            ctx.out.array(2);
            ctx.out.bulk(&key);
            ctx.out.array(items.len());
            items.iter().for_each(|item| ctx.out.bulk(item));
        }
        Ok(None) => block(ctx, args, keys, deadline, null_array),
    }
}

fn bzpop(ctx: &mut Ctx, args: &[Bytes], highest: bool) {
    let keys = &args[1..args.len() - 1];
    let Ok(deadline) = timeout(ctx, &args[args.len() - 1]) else {
        return;
    };
    let Ok(ready) = first_ready::<ZsetValue>(ctx, keys) else {
        return;
    };
    if let Some(key) = ready {
        let popped = write_zset(ctx, key, false, |zset, _| {
            let first = if highest {
                zset.iter().next_back()
            } else {
                zset.iter().next()
            };
            let (member, score) = first.map(|(m, s)| (m.to_vec(), s))?;
            zset.remove(&member);
            Some((member, score))
        });
        match popped {
            Err(Replied) => return,
            Ok(Some(Some((member, score)))) => {
                ctx.dirty(1);
                let pop: &[u8] = if highest { b"ZPOPMAX" } else { b"ZPOPMIN" };
                ctx.propagate_as(vec![aof_command!(pop, key)]);
                ctx.modified_only(vec![key.clone()]);
                ctx.notify(notify::ZSET, super::zsets::pop_event(highest), key);
                ctx.notify_del_if_gone(key);
                ctx.out.array(3);
                ctx.out.bulk(key);
                ctx.out.bulk(&member);
                if ctx.out.protocol() == Protocol::Resp3 {
                    ctx.out.double(score);
                } else {
                    ctx.out
                        .bulk(amber_protocol::format_double(score).as_bytes());
                }
                return;
            }
            Ok(_) => {}
        }
    }
    block(ctx, args, keys, deadline, null_array);
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`
pub(super) fn bzmpop(ctx: &mut Ctx, args: &[Bytes]) {
    let Some((deadline, keys, options)) = mpop_head(ctx, args) else {
        return;
    };
    let Some((highest, count)) = super::zsets::mpop_options(ctx, options) else {
        return;
    };
    match super::zsets::pop_first_nonempty(ctx, keys, highest, count) {
        Err(Replied) => {}
        Ok(Some((key, popped))) => {
            let pop: &[u8] = if highest { b"ZPOPMAX" } else { b"ZPOPMIN" };
            let popped = popped.to_string();
            ctx.propagate_as(vec![aof_command!(pop, &key, popped.as_bytes())]);
        }
        Ok(None) => block(ctx, args, keys, deadline, null_array),
    }
}

/// `BZPOPMIN key [key ...] timeout`
pub(super) fn bzpopmin(ctx: &mut Ctx, args: &[Bytes]) {
    bzpop(ctx, args, false);
}

/// `BZPOPMAX key [key ...] timeout`
pub(super) fn bzpopmax(ctx: &mut Ctx, args: &[Bytes]) {
    bzpop(ctx, args, true);
}
