//! Consumer groups: XGROUP, XACK, XPENDING, XCLAIM and XAUTOCLAIM, and the commands Redis
//! records in the AOF for group changes (XCLAIM ... LASTID, XGROUP SETID, CREATECONSUMER).

use amber_keyspace::{ConsumerGroup, Nack, StreamId, StreamValue};
use bytes::Bytes;

use super::{INVALID_ID, args, reply_entry, reply_id, stream_and_out};
use crate::commands::{Ctx, Replied, errors, is, subcommand_arity, unknown_subcommand};
use crate::notify;

fn text(value: &dyn std::fmt::Display) -> Bytes {
    Bytes::from(value.to_string())
}

/// `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id`: how Redis
/// records a delivery so that replaying it rebuilds the pending entry exactly.
pub(super) fn xclaim_record(
    key: &Bytes,
    group: &Bytes,
    id: StreamId,
    nack: &Nack,
    last_id: StreamId,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        Bytes::from(nack.consumer.clone()),
        Bytes::from_static(b"0"),
        text(&id),
        Bytes::from_static(b"TIME"),
        text(&nack.delivery_time),
        Bytes::from_static(b"RETRYCOUNT"),
        text(&nack.delivery_count),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        text(&last_id),
    ]
}

/// `XGROUP SETID key group id ENTRIESREAD n`: the group's position after a NOACK read.
pub(super) fn setid_record(key: &Bytes, name: &Bytes, group: &ConsumerGroup) -> Vec<Bytes> {
    let read = group.entries_read.map_or(-1, |read| read as i64);
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        name.clone(),
        text(&group.last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        text(&read),
    ]
}

/// `XGROUP CREATECONSUMER key group consumer`.
pub(super) fn createconsumer_record(key: &Bytes, group: &Bytes, consumer: &Bytes) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"CREATECONSUMER"),
        key.clone(),
        group.clone(),
        consumer.clone(),
    ]
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Print this help.",
];

/// Arity of each XGROUP subcommand (Redis's command table).
fn xgroup_arity(sub: &[u8]) -> Option<i32> {
    [
        ("create", -5),
        ("setid", -5),
        ("destroy", 4),
        ("createconsumer", 5),
        ("delconsumer", 5),
        ("help", 2),
    ]
    .iter()
    .find(|(name, _)| is(sub, name))
    .map(|(_, arity)| *arity)
}

/// `XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER | HELP`
pub(in crate::commands) fn xgroup(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    let Some(arity) = xgroup_arity(sub) else {
        return unknown_subcommand(ctx, "xgroup", sub);
    };
    let count = args.len() as i32;
    if (arity > 0 && count != arity) || (arity < 0 && count < -arity) {
        return subcommand_arity(ctx, "xgroup", sub);
    }
    // As Redis, group changes neither touch WATCHed keys nor wake readers (DESTROY wakes the
    // group's readers below, MKSTREAM touches the key it creates).
    ctx.modified_only(Vec::new());
    if is(sub, "help") {
        ctx.out.array(XGROUP_HELP.len());
        XGROUP_HELP.iter().for_each(|line| ctx.out.simple(line));
        return;
    }
    let (create, setid) = (is(sub, "create"), is(sub, "setid"));
    let mut mkstream = false;
    let mut entries_read: Option<u64> = None;
    let mut i = 5;
    while i < args.len() {
        if create && is(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && is(&args[i], "entriesread") && i + 1 < args.len() {
            let Ok(read) = ctx.int_arg(&args[i + 1]) else {
                return;
            };
            if read < 0 && read != -1 {
                return ctx.error("ERR value for ENTRIESREAD must be positive or -1");
            }
            entries_read = u64::try_from(read).ok();
            i += 2;
        } else {
            return subcommand_syntax(ctx, args);
        }
    }
    let (key, name) = (&args[2], &args[3]);
    let exists = match crate::commands::read_collection_for_write::<StreamValue, _>(ctx, key, |s| {
        s.groups.contains_key(name.as_ref())
    }) {
        Err(Replied) => return,
        Ok(found) => found,
    };
    if !mkstream {
        let Some(group_exists) = exists else {
            return ctx.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        };
        let needs_group = setid || is(sub, "createconsumer") || is(sub, "delconsumer");
        if needs_group && !group_exists {
            return ctx.error(&format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(key)
            ));
        }
    }
    if create {
        group_create(ctx, args, exists.is_some(), entries_read);
    } else if setid {
        group_setid(ctx, args, entries_read);
    } else if is(sub, "destroy") {
        let destroyed = change(ctx, key, |stream| {
            stream.groups.remove(name.as_ref()).is_some()
        });
        if destroyed {
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xgroup-destroy", key);
            // Readers blocked on the group get their NOGROUP error.
            let db = ctx.client.db;
            ctx.server.signal_ready(db, key);
        }
        ctx.out.integer(i64::from(destroyed));
    } else if is(sub, "createconsumer") {
        let now = ctx.server.now_ms;
        let created = change(ctx, key, |stream| {
            stream
                .groups
                .get_mut(name.as_ref())
                .is_some_and(|group| group.create_consumer(&args[4], now))
        });
        if created {
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        }
        ctx.out.integer(i64::from(created));
    } else {
        let pending = change(ctx, key, |stream| {
            stream
                .groups
                .get_mut(name.as_ref())
                .and_then(|group| group.delete_consumer(&args[4]))
        });
        if pending.is_some() {
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
        }
        ctx.out.integer(pending.unwrap_or(0) as i64);
    }
}

/// Redis's `addReplySubcommandSyntaxError`.
pub(super) fn subcommand_syntax(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&args[1]),
        String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
    ));
}

/// Runs `f` on the existing stream under `key`.
fn change<R: Default>(ctx: &mut Ctx, key: &[u8], f: impl FnOnce(&mut StreamValue) -> R) -> R {
    crate::commands::write_collection::<StreamValue, _>(ctx, key, false, f)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn group_create(ctx: &mut Ctx, args: &[Bytes], exists: bool, entries_read: Option<u64>) {
    let (key, name) = (&args[2], &args[3]);
    let explicit = if args[4].as_ref() == b"$" {
        None
    } else {
        match args::strict_id(&args[4]) {
            Some(id) => Some(id),
            None => return ctx.error(INVALID_ID),
        }
    };
    let created = crate::commands::write_collection::<StreamValue, _>(ctx, key, true, |stream| {
        if stream.groups.contains_key(name.as_ref()) {
            return false;
        }
        let last_id = explicit.unwrap_or(stream.log.last_id());
        stream
            .groups
            .insert(name.to_vec(), ConsumerGroup::new(last_id, entries_read));
        true
    });
    if !exists {
        // MKSTREAM made the key, whatever happens to the group.
        ctx.dirty(1);
        ctx.modified_only(vec![key.clone()]);
    }
    match created {
        Ok(Some(true)) => {
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xgroup-create", key);
            ctx.out.ok();
        }
        Ok(_) => ctx.error("BUSYGROUP Consumer Group name already exists"),
        Err(Replied) => {}
    }
}

fn group_setid(ctx: &mut Ctx, args: &[Bytes], entries_read: Option<u64>) {
    if args.len() != 5 && args.len() != 7 {
        return subcommand_syntax(ctx, args);
    }
    let (key, name) = (&args[2], &args[3]);
    let explicit = if args[4].as_ref() == b"$" {
        None
    } else {
        match args::loose_id(&args[4], 0) {
            Some(id) => Some(id),
            None => return ctx.error(INVALID_ID),
        }
    };
    change(ctx, key, |stream| {
        let last = stream.log.last_id();
        if let Some(group) = stream.groups.get_mut(name.as_ref()) {
            group.last_id = explicit.unwrap_or(last);
            group.entries_read = entries_read;
        }
    });
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-setid", key);
    ctx.out.ok();
}

/// `XACK key group id [id ...]`
pub(in crate::commands) fn xack(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.modified_only(Vec::new());
    let (key, name) = (&args[1], &args[2]);
    let has_group = match crate::commands::read_collection::<StreamValue, _>(ctx, key, |s| {
        s.groups.contains_key(name.as_ref())
    }) {
        Err(Replied) => return,
        Ok(found) => found.unwrap_or(false),
    };
    if !has_group {
        return ctx.out.integer(0);
    }
    let mut ids = Vec::with_capacity(args.len() - 3);
    for arg in &args[3..] {
        match args::strict_id(arg) {
            Some(id) => ids.push(id),
            None => return ctx.error(INVALID_ID),
        }
    }
    let acked = change(ctx, key, |stream| {
        let group = stream.groups.get_mut(name.as_ref());
        group.map_or(0, |group| ids.iter().filter(|id| group.ack(**id)).count())
    });
    ctx.dirty(acked as u64);
    ctx.out.integer(acked as i64);
}

fn nogroup(ctx: &mut Ctx, key: &[u8], name: &[u8]) {
    ctx.error(&format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(name)
    ));
}

/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`
pub(in crate::commands) fn xpending(ctx: &mut Ctx, args: &[Bytes]) {
    let summary = args.len() == 3;
    if !summary && !(6..=9).contains(&args.len()) {
        return ctx.error(errors::SYNTAX);
    }
    let mut min_idle = 0i64;
    let mut range = (StreamId::MIN, StreamId::MAX, 0usize, None::<&Bytes>);
    if !summary {
        let mut at = 3;
        if is(&args[3], "idle") {
            let Ok(idle) = ctx.int_arg(&args[4]) else {
                return;
            };
            min_idle = idle;
            if args.len() < 8 {
                return ctx.error(errors::SYNTAX);
            }
            at = 5;
        }
        let Ok(count) = ctx.int_arg(&args[at + 2]) else {
            return;
        };
        let Some(start) = args::interval_start(ctx, &args[at]) else {
            return;
        };
        let Some(end) = args::interval_end(ctx, &args[at + 1]) else {
            return;
        };
        range = (start, end, count.max(0) as usize, args.get(at + 3));
    }
    let (key, name) = (&args[1], &args[2]);
    let now = ctx.server.now_ms;
    let Ok(found) = stream_and_out(ctx, key, true) else {
        return;
    };
    let Some(group) =
        found.and_then(|(stream, out)| Some((stream.groups.get(name.as_ref())?, out)))
    else {
        return nogroup(ctx, key, name);
    };
    let (group, out) = group;
    if summary {
        out.array(4);
        out.integer(group.pel.len() as i64);
        let (Some(first), Some(last)) = (group.pel.keys().next(), group.pel.keys().next_back())
        else {
            out.null();
            out.null();
            return out.null_array();
        };
        reply_id(out, *first);
        reply_id(out, *last);
        let owners: Vec<_> = group
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .collect();
        out.array(owners.len());
        for (consumer, state) in owners {
            out.array(2);
            out.bulk(consumer);
            out.bulk(state.pending.len().to_string().as_bytes());
        }
        return;
    }
    let (start, end, count, consumer) = range;
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match group.consumers.get(name.as_ref()) {
            Some(state) => state
                .pending
                .range(start..=end.max(start))
                .copied()
                .collect(),
            None => return out.array(0),
        },
        None => group
            .pel
            .range(start..=end.max(start))
            .map(|(id, _)| *id)
            .collect(),
    };
    let rows: Vec<(StreamId, &Nack)> = ids
        .into_iter()
        .filter(|id| *id <= end)
        .filter_map(|id| Some((id, group.pel.get(&id)?)))
        .filter(|(_, nack)| min_idle == 0 || now - nack.delivery_time >= min_idle)
        .take(count)
        .collect();
    out.array(rows.len());
    for (id, nack) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(&nack.consumer);
        out.integer((now - nack.delivery_time).max(0));
        out.integer(nack.delivery_count as i64);
    }
}

/// The options of XCLAIM after its ids.
struct ClaimOptions {
    force: bool,
    justid: bool,
    delivery_time: Option<i64>,
    retry_count: Option<u64>,
    last_id: StreamId,
}

fn claim_options(ctx: &mut Ctx, options: &[Bytes], now: i64) -> Option<ClaimOptions> {
    let mut parsed = ClaimOptions {
        force: false,
        justid: false,
        delivery_time: None,
        retry_count: None,
        last_id: StreamId::MIN,
    };
    let mut i = 0;
    while i < options.len() {
        let option = &options[i];
        let value = options.get(i + 1);
        let number = |ctx: &mut Ctx, what: &str| -> Option<i64> {
            let parsed = value.and_then(|v| amber_protocol::parse_i64(v));
            if parsed.is_none() {
                ctx.error(&format!("ERR Invalid {what} option argument for XCLAIM"));
            }
            parsed
        };
        if is(option, "force") {
            parsed.force = true;
        } else if is(option, "justid") {
            parsed.justid = true;
        } else if is(option, "idle") && value.is_some() {
            parsed.delivery_time = Some(now - number(ctx, "IDLE")?);
            i += 1;
        } else if is(option, "time") && value.is_some() {
            parsed.delivery_time = Some(number(ctx, "TIME")?);
            i += 1;
        } else if is(option, "retrycount") && value.is_some() {
            parsed.retry_count = Some(number(ctx, "RETRYCOUNT")? as u64);
            i += 1;
        } else if is(option, "lastid") && value.is_some() {
            let Some(id) = value.and_then(|v| args::strict_id(v)) else {
                ctx.error(INVALID_ID);
                return None;
            };
            parsed.last_id = id;
            i += 1;
        } else {
            ctx.error(&format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(option)
            ));
            return None;
        }
        i += 1;
    }
    Some(parsed)
}

/// Parses a min-idle-time argument (negative counts as 0).
fn min_idle(ctx: &mut Ctx, arg: &[u8], command: &str) -> Option<i64> {
    match amber_protocol::parse_i64(arg) {
        Some(idle) => Some(idle.max(0)),
        None => {
            ctx.error(&format!("ERR Invalid min-idle-time argument for {command}"));
            None
        }
    }
}

fn group_missing(ctx: &mut Ctx, key: &[u8], name: &[u8]) -> Result<bool, Replied> {
    let found = crate::commands::read_collection::<StreamValue, _>(ctx, key, |stream| {
        stream.groups.contains_key(name)
    })?;
    Ok(!found.unwrap_or(false))
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]`
pub(in crate::commands) fn xclaim(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.modified_only(Vec::new());
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    match group_missing(ctx, key, name) {
        Err(Replied) => return,
        Ok(true) => return nogroup(ctx, key, name),
        Ok(false) => {}
    }
    let Some(min_idle) = min_idle(ctx, &args[4], "XCLAIM") else {
        return;
    };
    let ids: Vec<StreamId> = args[5..]
        .iter()
        .map_while(|arg| args::strict_id(arg))
        .collect();
    let now = ctx.server.now_ms;
    let Some(options) = claim_options(ctx, &args[5 + ids.len()..], now) else {
        return;
    };
    let delivery_time = match options.delivery_time {
        Some(time) if (0..=now).contains(&time) => time,
        _ => now,
    };
    let Ok(Some((stream, out))) = stream_and_out(ctx, key, false) else {
        return;
    };
    let StreamValue { log, groups } = stream;
    let Some(group) = groups.get_mut(name.as_ref()) else {
        return;
    };
    let mut records = Vec::new();
    let mut propagate_last_id = false;
    if options.last_id > group.last_id {
        group.last_id = options.last_id;
        propagate_last_id = true;
    }
    let mut consumer_created = false;
    let mut replies: Vec<StreamId> = Vec::new();
    let mut changes = 0u64;
    for id in ids {
        let pending = group.pel.contains_key(&id);
        if !log.contains(id) {
            if let Some(nack) = group.pel.get(&id) {
                records.push(xclaim_record(key, name, id, nack, group.last_id));
                propagate_last_id = false;
                changes += 1;
                group.ack(id);
            }
            continue;
        }
        if !pending && !options.force {
            continue;
        }
        if pending && min_idle > 0 {
            let idle = group
                .pel
                .get(&id)
                .map_or(0, |nack| now - nack.delivery_time);
            if idle < min_idle {
                continue;
            }
        }
        if !group.touch_consumer(consumer, now) && group.create_consumer(consumer, now) {
            consumer_created = true;
        }
        if !pending {
            group.pel.insert(
                id,
                Nack {
                    delivery_time,
                    delivery_count: 1,
                    consumer: consumer.to_vec(),
                },
            );
        }
        group.assign(id, consumer);
        if let Some(nack) = group.pel.get_mut(&id) {
            nack.delivery_time = delivery_time;
            match options.retry_count {
                Some(count) => nack.delivery_count = count,
                None if !options.justid => nack.delivery_count += 1,
                None => {}
            }
            records.push(xclaim_record(key, name, id, nack, group.last_id));
        }
        propagate_last_id = false;
        changes += 1;
        replies.push(id);
    }
    if propagate_last_id {
        records.push(setid_record(key, name, group));
        changes += 1;
    }
    out.array(replies.len());
    for id in replies {
        if options.justid {
            reply_id(out, id);
        } else if let Some(entry) = log.range(id, id, false).next() {
            reply_entry(out, &entry);
        }
    }
    if consumer_created {
        ctx.dirty(1);
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(changes);
    ctx.propagate_as(records);
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`
pub(in crate::commands) fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.modified_only(Vec::new());
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let Some(min_idle) = min_idle(ctx, &args[4], "XAUTOCLAIM") else {
        return;
    };
    let Some(start) = args::interval_start(ctx, &args[5]) else {
        return;
    };
    let mut count = 100usize;
    let mut justid = false;
    let mut i = 6;
    while i < args.len() {
        if is(&args[i], "count") && i + 1 < args.len() {
            let max = (i64::MAX / 16) as i128;
            match amber_protocol::parse_i64(&args[i + 1]) {
                Some(n) if n >= 1 && i128::from(n) <= max => count = n as usize,
                _ => return ctx.error("ERR COUNT must be > 0"),
            }
            i += 1;
        } else if is(&args[i], "justid") {
            justid = true;
        } else {
            return ctx.error(errors::SYNTAX);
        }
        i += 1;
    }
    match group_missing(ctx, key, name) {
        Err(Replied) => return,
        Ok(true) => return nogroup(ctx, key, name),
        Ok(false) => {}
    }
    let now = ctx.server.now_ms;
    let Ok(Some((stream, out))) = stream_and_out(ctx, key, false) else {
        return;
    };
    let StreamValue { log, groups } = stream;
    let Some(group) = groups.get_mut(name.as_ref()) else {
        return;
    };
    let mut attempts = count.saturating_mul(10);
    let mut records = Vec::new();
    let mut claimed: Vec<StreamId> = Vec::new();
    let mut deleted: Vec<StreamId> = Vec::new();
    let mut consumer_created = false;
    let candidates: Vec<StreamId> = group.pel.range(start..).map(|(id, _)| *id).collect();
    let mut next_cursor = StreamId::MIN;
    let mut position = 0;
    while attempts > 0 && count > 0 && position < candidates.len() {
        attempts -= 1;
        let id = candidates[position];
        position += 1;
        if !log.contains(id) {
            if let Some(nack) = group.pel.get(&id) {
                records.push(xclaim_record(key, name, id, nack, group.last_id));
            }
            group.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        }
        let idle = group
            .pel
            .get(&id)
            .map_or(0, |nack| now - nack.delivery_time);
        if min_idle > 0 && idle < min_idle {
            continue;
        }
        if !group.touch_consumer(consumer, now) && group.create_consumer(consumer, now) {
            consumer_created = true;
        }
        group.assign(id, consumer);
        if let Some(nack) = group.pel.get_mut(&id) {
            nack.delivery_time = now;
            if !justid {
                nack.delivery_count += 1;
            }
            records.push(xclaim_record(key, name, id, nack, group.last_id));
        }
        claimed.push(id);
        count -= 1;
    }
    if let Some(next) = candidates.get(position) {
        next_cursor = *next;
    }
    out.array(3);
    reply_id(out, next_cursor);
    out.array(claimed.len());
    for id in &claimed {
        if justid {
            reply_id(out, *id);
        } else if let Some(entry) = log.range(*id, *id, false).next() {
            reply_entry(out, &entry);
        }
    }
    out.array(deleted.len());
    deleted.iter().for_each(|id| reply_id(out, *id));
    if consumer_created {
        ctx.dirty(1);
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(records.len() as u64);
    ctx.propagate_as(records);
}
