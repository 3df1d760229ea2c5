//! XREAD and XREADGROUP: served at once when a stream has entries past the given id, else
//! blocked (with `BLOCK`) until an XADD signals one of the keys. A blocked client runs the
//! command again when woken, with `$` already resolved to the id it meant.

use amber_keyspace::{StreamId, StreamValue, Value};
use amber_protocol::Protocol;
use bytes::Bytes;
use tokio::time::Instant;

use super::{INVALID_ID, args, reply_entry, reply_id, stream_and_out};
use crate::commands::{Ctx, blocking, errors, is};
use crate::notify;

/// How many entries a woken client gets when it gave no COUNT (Redis's
/// `XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// The options of XREAD / XREADGROUP.
struct ReadArgs {
    /// `BLOCK ms`: `Some(None)` waits forever.
    block: Option<Option<Instant>>,
    count: usize,
    noack: bool,
    group: Option<(Bytes, Bytes)>,
    /// Index of the first key.
    keys_at: usize,
    /// Number of keys.
    streams: usize,
}

/// Where to read one stream from.
#[derive(Clone, Copy)]
enum From {
    /// Entries after this id.
    After(StreamId),
    /// `>`: entries never delivered to the group.
    New,
}

fn parse(ctx: &mut Ctx, args: &[Bytes], group_cmd: bool) -> Option<ReadArgs> {
    let mut read = ReadArgs {
        block: None,
        count: 0,
        noack: false,
        group: None,
        keys_at: 0,
        streams: 0,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let option = &args[i];
        if is(option, "block") && more > 0 {
            i += 1;
            let Some(ms) = amber_protocol::parse_i64(&args[i]) else {
                ctx.error("ERR timeout is not an integer or out of range");
                return None;
            };
            if ms < 0 {
                ctx.error("ERR timeout is negative");
                return None;
            }
            read.block = Some(
                (ms > 0).then(|| Instant::now() + std::time::Duration::from_millis(ms as u64)),
            );
        } else if is(option, "count") && more > 0 {
            i += 1;
            read.count = ctx.int_arg(&args[i]).ok()?.max(0) as usize;
        } else if is(option, "streams") && more > 0 {
            read.keys_at = i + 1;
            let rest = args.len() - read.keys_at;
            if !rest.is_multiple_of(2) {
                ctx.error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.");
                return None;
            }
            read.streams = rest / 2;
            break;
        } else if is(option, "group") && more >= 2 {
            if !group_cmd {
                ctx.error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            read.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if is(option, "noack") {
            if !group_cmd {
                ctx.error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            read.noack = true;
        } else {
            ctx.error(errors::SYNTAX);
            return None;
        }
        i += 1;
    }
    if read.keys_at == 0 {
        ctx.error(errors::SYNTAX);
        return None;
    }
    if group_cmd && read.group.is_none() {
        ctx.error("ERR Missing GROUP option for XREADGROUP");
        return None;
    }
    if read.block.is_some() && ctx.client.in_script {
        let name = if group_cmd { "xreadgroup" } else { "xread" };
        ctx.error(&format!(
            "ERR {name} command is not allowed with BLOCK option from scripts"
        ));
        return None;
    }
    if ctx.client.serving_blocked && read.count == 0 {
        read.count = BLOCKED_DEFAULT_COUNT;
    }
    Some(read)
}

/// What one key holds, as XREAD sees it.
enum Found {
    Missing,
    WrongType,
    Stream { last_id: StreamId, has_group: bool },
}

fn look(ctx: &mut Ctx, key: &[u8], group: Option<&[u8]>) -> Found {
    let seen = ctx.lookup_read(key, |value| match value {
        Value::Stream(stream) => Found::Stream {
            last_id: stream.log.last_id(),
            has_group: group.is_some_and(|name| stream.groups.contains_key(name)),
        },
        _ => Found::WrongType,
    });
    seen.unwrap_or(Found::Missing)
}

/// Resolves each key's id argument; `None` once an error is replied.
fn resolve(ctx: &mut Ctx, args: &[Bytes], read: &ReadArgs) -> Option<Vec<From>> {
    let group = read.group.as_ref().map(|(name, _)| name.as_ref());
    let woken = ctx.client.serving_blocked;
    let mut froms = Vec::with_capacity(read.streams);
    for index in 0..read.streams {
        let key = &args[read.keys_at + index];
        let id_arg = &args[read.keys_at + read.streams + index];
        let found = look(ctx, key, group);
        let last_id = match found {
            Found::WrongType if woken && group.is_none() => StreamId::MAX,
            Found::WrongType | Found::Missing if woken && group.is_some() => {
                ctx.error("UNBLOCKED the stream key no longer exists");
                return None;
            }
            Found::WrongType => {
                ctx.error(errors::WRONGTYPE);
                return None;
            }
            Found::Missing if group.is_none() => StreamId::MIN,
            Found::Missing
            | Found::Stream {
                has_group: false, ..
            } if group.is_some() => {
                let message = if woken {
                    "NOGROUP the consumer group this client was blocked on no longer exists"
                        .to_string()
                } else {
                    format!(
                        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(group.unwrap_or_default())
                    )
                };
                ctx.error(&message);
                return None;
            }
            Found::Missing => StreamId::MIN,
            Found::Stream { last_id, .. } => last_id,
        };
        let from = match id_arg.as_ref() {
            b"$" if group.is_some() => {
                ctx.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
                return None;
            }
            b"$" => From::After(last_id),
            b">" if group.is_none() => {
                ctx.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
                return None;
            }
            b">" => From::New,
            other => match args::strict_id(other) {
                Some(id) => From::After(id),
                None => {
                    ctx.error(INVALID_ID);
                    return None;
                }
            },
        };
        froms.push(from);
    }
    Some(froms)
}

/// `XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]`
pub(in crate::commands) fn xread(ctx: &mut Ctx, args: &[Bytes]) {
    read_streams(ctx, args, false);
}

/// `XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key
/// [key ...] id [id ...]`
pub(in crate::commands) fn xreadgroup(ctx: &mut Ctx, args: &[Bytes]) {
    read_streams(ctx, args, true);
}

fn read_streams(ctx: &mut Ctx, args: &[Bytes], group_cmd: bool) {
    let Some(read) = parse(ctx, args, group_cmd) else {
        return;
    };
    let Some(froms) = resolve(ctx, args, &read) else {
        return;
    };
    let servable: Vec<usize> = (0..read.streams)
        .filter(|&index| servable(ctx, &args[read.keys_at + index], froms[index], &read))
        .collect();
    if group_cmd {
        // XREADGROUP reaches the AOF as the XCLAIMs and SETIDs it causes, never as itself,
        // and (as in Redis) touches no WATCHed key.
        ctx.propagate_as(Vec::new());
        ctx.modified_only(Vec::new());
    }
    if !servable.is_empty() {
        if ctx.out.protocol() == Protocol::Resp3 {
            ctx.out.map(servable.len());
        } else {
            ctx.out.array(servable.len());
        }
        for index in servable {
            let key = &args[read.keys_at + index];
            serve(ctx, key, froms[index], &read);
        }
        return;
    }
    let Some(deadline) = read.block else {
        return ctx.out.null_array();
    };
    // A woken client keeps its resolved ids: `$` means the last id when it first asked.
    let mut stored = args.to_vec();
    for (index, from) in froms.iter().enumerate() {
        if let From::After(id) = from {
            stored[read.keys_at + read.streams + index] = Bytes::from(id.to_string());
        }
    }
    let keys = &args[read.keys_at..read.keys_at + read.streams];
    blocking::block(ctx, &stored, keys, deadline, |ctx| ctx.out.null_array());
}

/// Whether `key` has something to hand out now.
fn servable(ctx: &mut Ctx, key: &[u8], from: From, read: &ReadArgs) -> bool {
    let group = read.group.as_ref().map(|(name, _)| name.as_ref());
    ctx.lookup_quietly(key, |value| {
        let Value::Stream(stream) = value else {
            return false;
        };
        match (from, group) {
            (From::After(_), Some(_)) => true,
            (From::New, Some(name)) => {
                let last = stream.groups.get(name).map_or(StreamId::MAX, |g| g.last_id);
                stream.log.last_entry_id().is_some_and(|top| top > last)
            }
            (From::After(id), None) => stream.log.last_entry_id().is_some_and(|top| top > id),
            (From::New, None) => false,
        }
    })
    .unwrap_or(false)
}

/// Replies one key's part: its name and entries, delivering them to the group if any.
fn serve(ctx: &mut Ctx, key: &Bytes, from: From, read: &ReadArgs) {
    let resp2 = ctx.out.protocol() != Protocol::Resp3;
    let now = ctx.server.now_ms;
    let Some((group_name, consumer)) = read.group.clone() else {
        let Ok(Some((stream, out))) = stream_and_out(ctx, key, false) else {
            return;
        };
        if resp2 {
            out.array(2);
        }
        out.bulk(key);
        let From::After(after) = from else {
            return out.array(0);
        };
        let start = after.next().unwrap_or(StreamId::MAX);
        let entries: Vec<_> = stream
            .log
            .range(start, StreamId::MAX, false)
            .take(limit(read.count))
            .collect();
        out.array(entries.len());
        entries.iter().for_each(|entry| reply_entry(out, entry));
        return;
    };
    let Ok(Some((stream, out))) = stream_and_out(ctx, key, false) else {
        return;
    };
    let StreamValue { log, groups } = stream;
    let Some(group) = groups.get_mut(group_name.as_ref()) else {
        return;
    };
    let created = !group.touch_consumer(&consumer, now) && group.create_consumer(&consumer, now);
    if resp2 {
        out.array(2);
    }
    out.bulk(key);
    let mut records: Vec<Vec<Bytes>> = Vec::new();
    match from {
        From::After(after) => {
            // History: the consumer's own pending entries after `after`.
            let start = after.next().unwrap_or(StreamId::MAX);
            let ids: Vec<StreamId> = group
                .consumers
                .get(consumer.as_ref())
                .map(|c| {
                    c.pending
                        .range(start..)
                        .copied()
                        .take(limit(read.count))
                        .collect()
                })
                .unwrap_or_default();
            out.array(ids.len());
            for id in ids {
                match log.range(id, id, false).next() {
                    Some(entry) => {
                        reply_entry(out, &entry);
                        if let Some(nack) = group.pel.get_mut(&id) {
                            nack.delivery_time = now;
                            nack.delivery_count += 1;
                        }
                    }
                    None => {
                        out.array(2);
                        reply_id(out, id);
                        out.null_array();
                    }
                }
            }
        }
        From::New => {
            let start = group.last_id.next().unwrap_or(StreamId::MAX);
            let entries: Vec<_> = log
                .range(start, StreamId::MAX, false)
                .take(limit(read.count))
                .collect();
            out.array(entries.len());
            for entry in &entries {
                log.advance_group(group, entry.id);
                reply_entry(out, entry);
                if !read.noack {
                    group.deliver(entry.id, &consumer, now);
                    if let Some(nack) = group.pel.get(&entry.id) {
                        records.push(super::groups::xclaim_record(
                            key,
                            &group_name,
                            entry.id,
                            nack,
                            group.last_id,
                        ));
                    }
                }
            }
            if read.noack && !entries.is_empty() {
                records.push(super::groups::setid_record(key, &group_name, group));
            }
        }
    }
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        if read.noack {
            records.insert(
                0,
                super::groups::createconsumer_record(key, &group_name, &consumer),
            );
        }
    }
    ctx.dirty(1);
    if let Some(mut recorded) = ctx.server.command.propagation_override.take() {
        recorded.extend(records);
        ctx.propagate_as(recorded);
    } else {
        ctx.propagate_as(records);
    }
}

fn limit(count: usize) -> usize {
    if count == 0 { usize::MAX } else { count }
}
