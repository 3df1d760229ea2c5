//! XINFO STREAM [FULL [COUNT n]], XINFO GROUPS, XINFO CONSUMERS and XINFO HELP.

use amber_keyspace::{StreamId, StreamValue};
use amber_protocol::ReplyWriter;
use bytes::Bytes;

use super::groups::subcommand_syntax;
use super::{reply_entry, reply_id, stream_and_out};
use crate::commands::{Ctx, errors, is};

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Print this help.",
];

/// `XINFO STREAM key [FULL [COUNT count]] | GROUPS key | CONSUMERS key group | HELP`
pub(in crate::commands) fn xinfo(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "help") {
        if args.len() != 2 {
            return crate::commands::subcommand_arity(ctx, "xinfo", sub);
        }
        ctx.out.array(XINFO_HELP.len());
        XINFO_HELP.iter().for_each(|line| ctx.out.simple(line));
        return;
    }
    let known = ["stream", "groups", "consumers"].iter().any(|s| is(sub, s));
    if !known {
        return crate::commands::unknown_subcommand(ctx, "xinfo", sub);
    }
    let arity_ok = match () {
        () if is(sub, "groups") => args.len() == 3,
        () if is(sub, "consumers") => args.len() == 4,
        () => args.len() >= 3,
    };
    if !arity_ok {
        return crate::commands::subcommand_arity(ctx, "xinfo", sub);
    }
    let full = if is(sub, "stream") {
        match full_count(ctx, args) {
            Some(full) => full,
            None => return,
        }
    } else {
        None
    };
    let now = ctx.server.now_ms;
    let key = &args[2];
    let Ok(found) = stream_and_out(ctx, key, true) else {
        return;
    };
    let Some((stream, out)) = found else {
        return ctx.error("ERR no such key");
    };
    if is(sub, "consumers") {
        let Some(group) = stream.groups.get(args[3].as_ref()) else {
            let message = format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(&args[3]),
                String::from_utf8_lossy(key)
            );
            return ctx.error(&message);
        };
        out.array(group.consumers.len());
        for (name, consumer) in &group.consumers {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name);
            out.bulk(b"pending");
            out.integer(consumer.pending.len() as i64);
            out.bulk(b"idle");
            out.integer((now - consumer.seen_time).max(0));
        }
    } else if is(sub, "groups") {
        out.array(stream.groups.len());
        for (name, group) in &stream.groups {
            out.map(6);
            out.bulk(b"name");
            out.bulk(name);
            out.bulk(b"consumers");
            out.integer(group.consumers.len() as i64);
            out.bulk(b"pending");
            out.integer(group.pel.len() as i64);
            out.bulk(b"last-delivered-id");
            reply_id(out, group.last_id);
            out.bulk(b"entries-read");
            optional(out, group.entries_read);
            out.bulk(b"lag");
            optional(out, stream.log.lag(group));
        }
    } else {
        stream_info(out, stream, full);
    }
}

/// `FULL [COUNT n]` after `XINFO STREAM key`: `Some(None)` without FULL, `Some(Some(n))` with
/// it (0: everything); `None` once an error is replied.
fn full_count(ctx: &mut Ctx, args: &[Bytes]) -> Option<Option<usize>> {
    let options = &args[3..];
    if options.is_empty() {
        return Some(None);
    }
    if (options.len() != 1 && options.len() != 3)
        || !is(&options[0], "full")
        || (options.len() == 3 && !is(&options[1], "count"))
    {
        subcommand_syntax(ctx, args);
        return None;
    }
    let count = match options.get(2) {
        None => 10,
        Some(value) => match amber_protocol::parse_i64(value) {
            None => {
                ctx.error(errors::NOT_INTEGER);
                return None;
            }
            Some(n) if n < 0 => 10,
            Some(n) => n as usize,
        },
    };
    Some(Some(count))
}

fn optional(out: &mut ReplyWriter, value: Option<u64>) {
    match value {
        Some(value) => out.integer(value as i64),
        None => out.null(),
    }
}

fn stream_info(out: &mut ReplyWriter, stream: &StreamValue, full: Option<usize>) {
    let log = &stream.log;
    let meta = log.meta();
    out.map(if full.is_some() { 9 } else { 10 });
    out.bulk(b"length");
    out.integer(meta.length as i64);
    out.bulk(b"radix-tree-keys");
    out.integer(log.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.integer(radix_tree_nodes(log.node_count()) as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, meta.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, meta.max_deleted_id);
    out.bulk(b"entries-added");
    out.integer(meta.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, meta.first_id);
    let Some(count) = full else {
        out.bulk(b"groups");
        out.integer(stream.groups.len() as i64);
        for (label, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(label);
            match log.range(StreamId::MIN, StreamId::MAX, rev).next() {
                Some(entry) => reply_entry(out, &entry),
                None => out.null(),
            }
        }
        return;
    };
    let limit = if count == 0 { usize::MAX } else { count };
    out.bulk(b"entries");
    let entries: Vec<_> = log
        .range(StreamId::MIN, StreamId::MAX, false)
        .take(limit)
        .collect();
    out.array(entries.len());
    entries.iter().for_each(|entry| reply_entry(out, entry));
    out.bulk(b"groups");
    out.array(stream.groups.len());
    for (name, group) in &stream.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, group.last_id);
        out.bulk(b"entries-read");
        optional(out, group.entries_read);
        out.bulk(b"lag");
        optional(out, log.lag(group));
        out.bulk(b"pel-count");
        out.integer(group.pel.len() as i64);
        out.bulk(b"pending");
        let pending: Vec<_> = group.pel.iter().take(limit).collect();
        out.array(pending.len());
        for (id, nack) in pending {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&nack.consumer);
            out.integer(nack.delivery_time);
            out.integer(nack.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(group.consumers.len());
        for (consumer, state) in &group.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(consumer);
            out.bulk(b"seen-time");
            out.integer(state.seen_time);
            out.bulk(b"pel-count");
            out.integer(state.pending.len() as i64);
            out.bulk(b"pending");
            let own: Vec<_> = state.pending.iter().take(limit).collect();
            out.array(own.len());
            for id in own {
                out.array(3);
                reply_id(out, *id);
                let nack = group.pel.get(id);
                out.integer(nack.map_or(0, |n| n.delivery_time));
                out.integer(nack.map_or(0, |n| n.delivery_count as i64));
            }
        }
    }
}

/// Redis reports its radix tree's node count; Amber keys nodes in a B-tree, so this is the
/// count a radix tree of 16-byte keys would need at least: one per key plus the root.
fn radix_tree_nodes(keys: usize) -> usize {
    if keys == 0 { 1 } else { keys + 1 }
}
