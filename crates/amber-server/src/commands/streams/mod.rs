//! The stream family: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XREAD and XSETID here;
//! consumer groups in [`groups`]; XINFO in [`info`]. Replies, errors and what reaches the AOF
//! follow Redis 7.0's `t_stream.c`.

mod args;
mod groups;
mod info;
mod read;

use amber_keyspace::{EntryRef, StreamId, StreamItem, StreamValue, Trim, Value};
use amber_protocol::ReplyWriter;
use bytes::Bytes;

use super::{Collection, Ctx, Replied, errors};
use crate::notify;
use args::{IdArg, TrimArgs};

pub(super) use groups::{xack, xautoclaim, xclaim, xgroup, xpending};
pub(super) use info::xinfo;
pub(super) use read::{xread, xreadgroup};

impl Collection for StreamValue {
    fn of(value: &Value) -> Option<&Self> {
        match value {
            Value::Stream(stream) => Some(stream),
            _ => None,
        }
    }
    /// A stream shared with a running capture is copied first (INV-SHARED-SET).
    fn of_mut(value: &mut Value) -> Option<&mut Self> {
        match value {
            Value::Stream(stream) => Some(std::sync::Arc::make_mut(stream)),
            _ => None,
        }
    }
    fn wrap(self) -> Value {
        Value::Stream(std::sync::Arc::new(self))
    }
    /// An empty stream stays: it keeps its last id and its groups.
    fn is_empty(&self) -> bool {
        false
    }
}

/// The error Redis replies for any malformed id.
const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// The stream under `key` with the reply writer beside it, after the lookup (`read`: counted
/// as a read); `Ok(None)` if missing, WRONGTYPE replied if another type.
fn stream_and_out<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    read: bool,
) -> Result<Option<(&'c mut StreamValue, &'c mut ReplyWriter)>, Replied> {
    let kind = |value: &Value| matches!(value, Value::Stream(_));
    let found = if read {
        ctx.lookup_read(key, kind)
    } else {
        ctx.lookup_quietly(key, kind)
    };
    match found {
        None => return Ok(None),
        Some(false) => {
            ctx.error(errors::WRONGTYPE);
            return Err(Replied);
        }
        Some(true) => {}
    }
    let now = ctx.server.now_ms;
    let db = ctx.client.db;
    let entry = ctx.server.keyspace.db(db).get_mut(key, now);
    Ok(match entry.map(|entry| &mut entry.value) {
        Some(Value::Stream(stream)) => Some((std::sync::Arc::make_mut(stream), &mut *ctx.out)),
        _ => None,
    })
}

/// Writes an id as the bulk string `ms-seq`.
fn reply_id(out: &mut ReplyWriter, id: StreamId) {
    let mut text = [0u8; 41];
    out.bulk(id_text(id, &mut text));
}

/// `ms-seq` written into `buf` (room for two `u64`s and the dash), without an allocation.
fn id_text(id: StreamId, buf: &mut [u8; 41]) -> &[u8] {
    let mut digits = [0u8; 20];
    let ms = amber_protocol::format_u64(id.ms, &mut digits);
    let mut len = ms.len();
    buf[..len].copy_from_slice(ms);
    buf[len] = b'-';
    len += 1;
    let seq = amber_protocol::format_u64(id.seq, &mut digits);
    buf[len..len + seq.len()].copy_from_slice(seq);
    &buf[..len + seq.len()]
}

fn reply_item(out: &mut ReplyWriter, item: StreamItem<'_>) {
    match item {
        StreamItem::Bytes(bytes) => out.bulk(bytes),
        StreamItem::Int(number) => out.bulk_i64(number),
    }
}

/// Writes one entry: `[id, [field, value, ...]]`.
fn reply_entry(out: &mut ReplyWriter, entry: &EntryRef<'_>) {
    out.array(2);
    reply_id(out, entry.id);
    out.array(entry.len() * 2);
    for (field, value) in entry.pairs() {
        reply_item(out, field);
        reply_item(out, value);
    }
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...`
pub(super) fn xadd(ctx: &mut Ctx, args: &[Bytes]) {
    let loading = ctx.client.id == super::LOADING_CLIENT_ID;
    let Some((trim, add)) = args::parse_add_or_trim(ctx, args, true, loading) else {
        return;
    };
    let id_at = add.id_at;
    let pairs = args.get(id_at + 1..).unwrap_or_default();
    if pairs.len() < 2 || pairs.len() % 2 == 1 {
        return ctx.error("ERR wrong number of arguments for 'xadd' command");
    }
    if let IdArg::Exact(id) = add.id
        && id.is_zero()
    {
        return ctx.error("ERR The ID specified in XADD must be greater than 0-0");
    }
    let key = &args[1];
    let now = ctx.server.now_ms.max(0) as u64;
    let limits = ctx.server.encoding_limits().stream;
    let pairs: Vec<&[u8]> = pairs.iter().map(|item| item.as_ref()).collect();
    // A stream made for an entry that is then refused stays, empty, as in Redis (it cannot
    // happen in practice: a new stream takes any id above 0-0 and any size the protocol lets in).
    let outcome = super::write_collection::<StreamValue, _>(ctx, key, !add.no_mkstream, |stream| {
        let last = stream.log.last_id();
        if last == StreamId::MAX {
            return Err(
                "ERR The stream has exhausted the last possible ID, unable to add more items",
            );
        }
        let id = next_id(last, add.id, now).ok_or(TOO_SMALL)?;
        stream
            .log
            .append(id, &pairs, limits)
            .map_err(|error| match error {
                amber_keyspace::AppendError::IdTooSmall => TOO_SMALL,
                amber_keyspace::AppendError::TooLarge => "ERR Elements are too large to be stored",
            })?;
        let trimmed = trim.apply(stream);
        Ok((id, trimmed, trim.rewritten(stream)))
    });
    let (id, trimmed, rewritten) = match outcome {
        Ok(Some(Ok(done))) => done,
        Ok(Some(Err(message))) => return ctx.error(message),
        Ok(None) => return ctx.out.null(),
        Err(Replied) => return,
    };
    reply_id(ctx.out, id);
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    // What the AOF and replicas get (the id made explicit, `~` trimming as its effect): built
    // only when something records it.
    if !ctx.server.propagating() {
        return;
    }
    let mut record: Vec<Bytes> = args.to_vec();
    if let Some((at, value)) = rewritten {
        record[at - 1] = Bytes::from_static(b"=");
        record[at] = Bytes::from(value);
    }
    if !matches!(add.id, IdArg::Exact(_)) {
        let mut text = [0u8; 41];
        record[id_at] = Bytes::copy_from_slice(id_text(id, &mut text));
    }
    ctx.propagate_as(vec![record]);
}

const TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";

/// The id XADD adds under: generated from the clock, completed from `ms-*`, or as given.
fn next_id(last: StreamId, wanted: IdArg, now_ms: u64) -> Option<StreamId> {
    let id = match wanted {
        IdArg::Auto if now_ms > last.ms => StreamId::new(now_ms, 0),
        IdArg::Auto => last.next()?,
        IdArg::Ms(ms) if ms == last.ms => {
            if last.seq == u64::MAX {
                return None;
            }
            StreamId::new(ms, last.seq + 1)
        }
        IdArg::Ms(ms) => StreamId::new(ms, 0),
        IdArg::Exact(id) => id,
    };
    (id > last).then_some(id)
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`
pub(super) fn xtrim(ctx: &mut Ctx, args: &[Bytes]) {
    let loading = ctx.client.id == super::LOADING_CLIENT_ID;
    let Some((trim, _)) = args::parse_add_or_trim(ctx, args, false, loading) else {
        return;
    };
    let key = &args[1];
    let outcome = super::write_collection::<StreamValue, _>(ctx, key, false, |stream| {
        let trimmed = trim.apply(stream);
        (trimmed, trim.rewritten(stream))
    });
    let (trimmed, rewritten) = match outcome {
        Ok(Some(done)) => done,
        Ok(None) => return ctx.out.integer(0),
        Err(Replied) => return,
    };
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
        ctx.dirty(trimmed);
        if let Some((at, value)) = rewritten {
            let mut record: Vec<Bytes> = args.to_vec();
            record[at - 1] = Bytes::from_static(b"=");
            record[at] = Bytes::from(value);
            ctx.propagate_as(vec![record]);
        }
    }
    ctx.out.integer(trimmed as i64);
}

impl TrimArgs {
    /// Trims `stream` as asked; the number of entries removed.
    fn apply(&self, stream: &mut StreamValue) -> u64 {
        match self.trim {
            Some(trim) => stream.log.trim(trim, self.approx, self.limit),
            None => 0,
        }
    }

    /// For an approximate trim, the argument to record instead (the length or first id the
    /// stream ended with), so replaying it is exact: `(index, value)`.
    fn rewritten(&self, stream: &StreamValue) -> Option<(usize, Vec<u8>)> {
        if !self.approx {
            return None;
        }
        let value = match self.trim? {
            Trim::MaxLen(_) => stream.log.len().to_string(),
            Trim::MinId(_) => stream
                .log
                .first_entry_id(true)
                .unwrap_or(StreamId::MAX)
                .to_string(),
        };
        Some((self.arg_at, value.into_bytes()))
    }
}

/// `XRANGE key start end [COUNT count]` and `XREVRANGE key end start [COUNT count]`.
fn range(ctx: &mut Ctx, args: &[Bytes], rev: bool) {
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let Some(start) = args::interval_start(ctx, start_arg) else {
        return;
    };
    let Some(end) = args::interval_end(ctx, end_arg) else {
        return;
    };
    let mut count: Option<usize> = None;
    let mut options = args[4..].iter();
    while let Some(option) = options.next() {
        match options.next() {
            Some(value) if super::is(option, "count") => {
                let Ok(n) = ctx.int_arg(value) else {
                    return;
                };
                count = Some(n.max(0) as usize);
            }
            _ => return ctx.error(errors::SYNTAX),
        }
    }
    let Ok(found) = stream_and_out(ctx, &args[1], true) else {
        return;
    };
    let Some((stream, out)) = found else {
        return ctx.out.array(0);
    };
    if count == Some(0) {
        return out.null_array();
    }
    let entries: Vec<EntryRef<'_>> = stream
        .log
        .range(start, end, rev)
        .take(count.unwrap_or(usize::MAX))
        .collect();
    out.array(entries.len());
    entries.iter().for_each(|entry| reply_entry(out, entry));
}

/// `XRANGE key start end [COUNT count]`
pub(super) fn xrange(ctx: &mut Ctx, args: &[Bytes]) {
    range(ctx, args, false);
}

/// `XREVRANGE key end start [COUNT count]`
pub(super) fn xrevrange(ctx: &mut Ctx, args: &[Bytes]) {
    range(ctx, args, true);
}

/// `XLEN key`
pub(super) fn xlen(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(length) = super::read_collection::<StreamValue, _>(ctx, &args[1], |s| s.log.len()) {
        ctx.out.integer(length.unwrap_or(0) as i64);
    }
}

/// `XDEL key id [id ...]`
pub(super) fn xdel(ctx: &mut Ctx, args: &[Bytes]) {
    let key = &args[1];
    match super::read_collection_for_write::<StreamValue, _>(ctx, key, |_| ()) {
        Err(Replied) => return,
        Ok(None) => return ctx.out.integer(0),
        Ok(Some(())) => {}
    }
    let mut ids = Vec::with_capacity(args.len() - 2);
    for arg in &args[2..] {
        match args::strict_id(arg) {
            Some(id) => ids.push(id),
            None => return ctx.error(INVALID_ID),
        }
    }
    let deleted = super::write_collection::<StreamValue, _>(ctx, key, false, |stream| {
        ids.iter().filter(|id| stream.log.delete(**id)).count()
    });
    let deleted = deleted.ok().flatten().unwrap_or(0);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xdel", key);
        ctx.dirty(deleted as u64);
    }
    ctx.out.integer(deleted as i64);
}

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]`
pub(super) fn xsetid(ctx: &mut Ctx, args: &[Bytes]) {
    // As Redis, XSETID neither touches WATCHed keys nor wakes readers.
    ctx.modified_only(Vec::new());
    let Some(id) = args::strict_id(&args[2]) else {
        return ctx.error(INVALID_ID);
    };
    let mut entries_added = None;
    let mut max_deleted = None;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let Some(value) = options.next() else {
            return ctx.error(errors::SYNTAX);
        };
        if super::is(option, "entriesadded") {
            let Ok(added) = ctx.int_arg(value) else {
                return;
            };
            if added < 0 {
                return ctx.error("ERR entries_added must be positive");
            }
            entries_added = Some(added as u64);
        } else if super::is(option, "maxdeletedid") {
            let Some(max) = args::strict_id(value) else {
                return ctx.error(INVALID_ID);
            };
            if id < max {
                return ctx.error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
            max_deleted = Some(max);
        } else {
            return ctx.error(errors::SYNTAX);
        }
    }
    let key = &args[1];
    let outcome = super::write_collection::<StreamValue, _>(ctx, key, false, |stream| {
        if !stream.log.is_empty() {
            if stream.log.last_entry_id().is_some_and(|top| id < top) {
                return Err(
                    "ERR The ID specified in XSETID is smaller than the target stream top item",
                );
            }
            if entries_added.is_some_and(|added| stream.log.len() > added) {
                return Err(
                    "ERR The entries_added specified in XSETID is smaller than the target stream length",
                );
            }
        }
        stream
            .log
            .set_ids(id, entries_added, max_deleted.filter(|max| !max.is_zero()));
        Ok(())
    });
    match outcome {
        Err(Replied) => {}
        Ok(None) => ctx.error("ERR no such key"),
        Ok(Some(Err(message))) => ctx.error(message),
        Ok(Some(Ok(()))) => {
            ctx.dirty(1);
            ctx.notify(notify::STREAM, "xsetid", key);
            ctx.out.ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn id_text_spells_an_id_as_its_display(ms: u64, seq: u64) {
            let id = StreamId::new(ms, seq);
            let mut buf = [0u8; 41];
            let expected = id.to_string();
            proptest::prop_assert_eq!(id_text(id, &mut buf), expected.as_bytes());
        }
    }

    #[test]
    fn id_text_handles_the_extremes() {
        let mut buf = [0u8; 41];
        assert_eq!(id_text(StreamId::new(0, 0), &mut buf), b"0-0");
        let max = StreamId::new(u64::MAX, u64::MAX);
        assert_eq!(id_text(max, &mut buf), max.to_string().as_bytes());
    }
}
