//! HyperLogLog commands: `PFADD`, `PFCOUNT`, `PFMERGE`, `PFDEBUG` and `PFSELFTEST`, on string
//! values in Redis's own HyperLogLog layout (see `amber_hll`).

use amber_hll::{Encoding, HllError, Registers};
use amber_keyspace::{Entry, StrValue, Value};
use bytes::Bytes;

use super::strings::string_entry;
use super::{Ctx, Replied, errors, is};
use crate::notify;

/// Redis's reply for a string that is not a HyperLogLog.
const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
/// Redis's reply for a HyperLogLog whose registers are damaged.
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn reply_error(ctx: &mut Ctx, error: HllError) {
    ctx.error(match error {
        HllError::NotHll => NOT_HLL,
        HllError::Corrupt => CORRUPT,
    });
}

/// What a read lookup of a HyperLogLog key found.
enum Found<T> {
    Missing,
    WrongType,
    Hll(T),
}

/// Looks `key` up for reading and passes its checked bytes to `read`; replies the error and
/// returns `Err` for another type or a string that is not a HyperLogLog.
fn read_hll<T>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&[u8], Encoding) -> T,
) -> Result<Option<T>, Replied> {
    let found = ctx.lookup_read(key, |value| match value {
        Value::Str(value) => {
            let bytes = value.as_bytes();
            Found::Hll(amber_hll::check(&bytes).map(|encoding| read(&bytes, encoding)))
        }
        _ => Found::WrongType,
    });
    match found.unwrap_or(Found::Missing) {
        Found::Missing => Ok(None),
        Found::WrongType => {
            ctx.error(errors::WRONGTYPE);
            Err(Replied)
        }
        Found::Hll(Err(error)) => {
            reply_error(ctx, error);
            Err(Replied)
        }
        Found::Hll(Ok(result)) => Ok(Some(result)),
    }
}

/// The raw bytes of the HyperLogLog under `key`, for a change in place; `Ok(None)` if the
/// key is missing. Replies the error for another type or a string that is not one.
fn hll_for_write<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Vec<u8>>, Replied> {
    let not_hll = match string_entry(ctx, key)? {
        None => return Ok(None),
        Some(value) => amber_hll::check(&value.as_bytes()).err(),
    };
    if let Some(error) = not_hll {
        reply_error(ctx, error);
        return Err(Replied);
    }
    match string_entry(ctx, key)? {
        Some(value) => Ok(Some(value.make_raw())),
        None => Ok(None),
    }
}

fn insert_new(ctx: &mut Ctx, key: &[u8], hll: Vec<u8>) {
    let now = ctx.server.now_ms;
    ctx.db()
        .insert(key, Entry::new(Value::Str(StrValue::Raw(hll)), now));
}

/// What adding to an existing key did, found in one lookup.
enum Added {
    Missing,
    WrongType,
    Done(Result<(), HllError>),
}

/// `PFADD key [element ...]`
pub(super) fn pfadd(ctx: &mut Ctx, args: &[Bytes]) {
    let max_bytes = ctx.server.settings.hll_sparse_max_bytes;
    let elements = &args[2..];
    let mut updated = 0u64;
    let (now, db) = (ctx.server.now_ms, ctx.client.db);
    // One lookup on the hot path: check and add while the entry is at hand.
    let added =
        match ctx.server.keyspace.db(db).get_mut(&args[1], now) {
            None => Added::Missing,
            Some(entry) => match &mut entry.value {
                Value::Str(value) => {
                    let checked = amber_hll::check(&value.as_bytes()).map(|_| ());
                    Added::Done(checked.and_then(|()| {
                        add_all(value.make_raw(), elements, max_bytes, &mut updated)
                    }))
                }
                _ => Added::WrongType,
            },
        };
    let outcome = match added {
        Added::WrongType => return ctx.error(errors::WRONGTYPE),
        Added::Done(outcome) => outcome,
        Added::Missing => {
            let mut hll = amber_hll::new();
            updated += 1;
            let outcome = add_all(&mut hll, elements, max_bytes, &mut updated);
            insert_new(ctx, &args[1], hll);
            outcome
        }
    };
    if let Err(error) = outcome {
        reply_error(ctx, error);
        return;
    }
    if updated > 0 {
        ctx.dirty(updated);
        ctx.notify(notify::STRING, "pfadd", &args[1]);
    }
    ctx.out.integer(i64::from(updated > 0));
}

fn add_all(
    hll: &mut Vec<u8>,
    elements: &[Bytes],
    max_bytes: usize,
    updated: &mut u64,
) -> Result<(), HllError> {
    for element in elements {
        if amber_hll::add(hll, element, max_bytes)? {
            *updated += 1;
        }
    }
    if *updated > 0 {
        amber_hll::invalidate_cache(hll);
    }
    Ok(())
}

/// `PFCOUNT key [key ...]`: one key's cached or fresh estimate, or the estimate of the
/// union of several.
pub(super) fn pfcount(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len() > 2 {
        let mut union = Registers::new();
        for key in &args[1..] {
            match read_hll(ctx, key, |hll, _| union.merge(hll)) {
                Err(Replied) => return,
                Ok(Some(Err(error))) => return reply_error(ctx, error),
                Ok(_) => {}
            }
        }
        ctx.out.integer(union.cardinality() as i64);
        return;
    }
    let cached = match read_hll(ctx, &args[1], |hll, _| amber_hll::cached_cardinality(hll)) {
        Err(Replied) => return,
        Ok(None) => Some(0),
        Ok(Some(cached)) => cached,
    };
    if let Some(card) = cached {
        ctx.out.integer(card as i64);
        return;
    }
    // A stale cache is refreshed in the value: a change Redis propagates.
    let counted = match hll_for_write(ctx, &args[1]) {
        Err(Replied) => return,
        Ok(Some(hll)) => amber_hll::count(hll),
        Ok(None) => Ok((0, false)),
    };
    match counted {
        Err(error) => reply_error(ctx, error),
        Ok((card, changed)) => {
            if changed {
                ctx.dirty(1);
            }
            ctx.out.integer(card as i64);
        }
    }
}

/// `PFMERGE destkey [sourcekey ...]`
pub(super) fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) {
    let max_bytes = ctx.server.settings.hll_sparse_max_bytes;
    let mut union = Registers::new();
    let mut dense = false;
    for key in &args[1..] {
        let merged = read_hll(ctx, key, |hll, encoding| {
            dense |= encoding == Encoding::Dense;
            union.merge(hll)
        });
        match merged {
            Err(Replied) => return,
            Ok(Some(Err(error))) => return reply_error(ctx, error),
            Ok(_) => {}
        }
    }
    let stored = match hll_for_write(ctx, &args[1]) {
        Err(Replied) => return,
        Ok(Some(hll)) => union.store_into(hll, dense, max_bytes),
        Ok(None) => {
            let mut hll = amber_hll::new();
            let stored = union.store_into(&mut hll, dense, max_bytes);
            insert_new(ctx, &args[1], hll);
            stored
        }
    };
    if let Err(error) = stored {
        reply_error(ctx, error);
        return;
    }
    ctx.dirty(1);
    ctx.notify(notify::STRING, "pfadd", &args[1]);
    ctx.out.ok();
}

/// `PFSELFTEST`
pub(super) fn pfselftest(ctx: &mut Ctx, _args: &[Bytes]) {
    let seed = ctx.server.keyspace.next_random();
    let max_bytes = ctx.server.settings.hll_sparse_max_bytes;
    match amber_hll::self_test(seed, max_bytes) {
        Ok(()) => ctx.out.ok(),
        Err(message) => ctx.error(&message),
    }
}

/// `PFDEBUG GETREG|DECODE|ENCODING|TODENSE key`
pub(super) fn pfdebug(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    let hll = match hll_for_write(ctx, &args[2]) {
        Err(Replied) => return,
        Ok(None) => return ctx.error("ERR The specified key does not exist"),
        Ok(Some(hll)) => hll,
    };
    if is(sub, "getreg") {
        let converted = amber_hll::to_dense(hll);
        let registers = converted.and_then(|converted| Ok((converted, Registers::of(hll)?)));
        match registers {
            Err(error) => reply_error(ctx, error),
            Ok((converted, registers)) => {
                if converted {
                    ctx.dirty(1);
                }
                ctx.out.array(amber_hll::REGISTERS);
                for &value in registers.values() {
                    ctx.out.integer(i64::from(value));
                }
            }
        }
    } else if is(sub, "decode") {
        match amber_hll::decode_sparse(hll) {
            Some(decoded) => ctx.out.bulk(decoded.as_bytes()),
            None => ctx.error("ERR HLL encoding is not sparse"),
        }
    } else if is(sub, "encoding") {
        let name = amber_hll::encoding_of(hll).name();
        ctx.out.simple(name);
    } else if is(sub, "todense") {
        match amber_hll::to_dense(hll) {
            Err(error) => reply_error(ctx, error),
            Ok(converted) => {
                if converted {
                    ctx.dirty(1);
                }
                ctx.out.integer(i64::from(converted));
            }
        }
    } else {
        let message = format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        );
        ctx.error(&message);
    }
}
