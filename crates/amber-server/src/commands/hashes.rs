//! The hash family: HSET, HGET, HDEL, HINCRBY, HGETALL, HSCAN and the rest.

use amber_keyspace::{HashLimits, HashValue};
use amber_protocol::parse_i64;
use bytes::Bytes;

use super::{Ctx, Replied, errors, read_collection, scan_args, write_collection};
use crate::commands::long_double::LongDouble;
use crate::notify;

/// Runs `read` on the hash under `key` (see [`read_collection`]).
fn read_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&HashValue) -> R,
) -> Result<Option<R>, Replied> {
    read_collection(ctx, key, read)
}

/// Runs `change` on the hash under `key` with the listpack limits (see [`write_collection`]).
fn write_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    change: impl FnOnce(&mut HashValue, HashLimits) -> R,
) -> Result<Option<R>, Replied> {
    let limits = ctx.server.hash_limits();
    write_collection(ctx, key, create, |hash| change(hash, limits))
}

fn check_pairs(ctx: &mut Ctx, args: &[Bytes], command: &str) -> Result<(), Replied> {
    if args.len().is_multiple_of(2) {
        return Ok(());
    }
    ctx.error(&format!(
        "ERR wrong number of arguments for '{command}' command"
    ));
    Err(Replied)
}

/// `HSET key field value [field value ...]`
pub(super) fn hset(ctx: &mut Ctx, args: &[Bytes]) {
    if check_pairs(ctx, args, "hset").is_err() {
        return;
    }
    let added = write_hash(ctx, &args[1], true, |hash, limits| {
        args[2..]
            .chunks(2)
            .filter(|pair| hash.set(&pair[0], &pair[1], limits))
            .count()
    });
    if let Ok(Some(added)) = added {
        ctx.dirty((args.len() as u64 - 2) / 2);
        ctx.notify(notify::HASH, "hset", &args[1]);
        ctx.out.integer(added as i64);
    }
}

/// `HMSET key field value [field value ...]`
pub(super) fn hmset(ctx: &mut Ctx, args: &[Bytes]) {
    if check_pairs(ctx, args, "hmset").is_err() {
        return;
    }
    let done = write_hash(ctx, &args[1], true, |hash, limits| {
        args[2..].chunks(2).for_each(|pair| {
            hash.set(&pair[0], &pair[1], limits);
        })
    });
    if done.is_ok() {
        ctx.dirty((args.len() as u64 - 2) / 2);
        ctx.notify(notify::HASH, "hset", &args[1]);
        ctx.out.ok();
    }
}

/// `HSETNX key field value`
pub(super) fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) {
    let exists = match read_hash(ctx, &args[1], |hash| hash.get(&args[2]).is_some()) {
        Ok(exists) => exists.unwrap_or(false),
        Err(Replied) => return,
    };
    if exists {
        return ctx.out.integer(0);
    }
    if write_hash(ctx, &args[1], true, |hash, limits| {
        hash.set(&args[2], &args[3], limits)
    })
    .is_ok()
    {
        ctx.dirty(1);
        ctx.notify(notify::HASH, "hset", &args[1]);
        ctx.out.integer(1);
    }
}

/// `HGET key field`
pub(super) fn hget(ctx: &mut Ctx, args: &[Bytes]) {
    match read_hash(ctx, &args[1], |hash| hash.get(&args[2]).map(<[u8]>::to_vec)) {
        Ok(Some(Some(value))) => ctx.out.bulk(&value),
        Ok(_) => ctx.out.null(),
        Err(Replied) => {}
    }
}

/// `HMGET key field [field ...]`
pub(super) fn hmget(ctx: &mut Ctx, args: &[Bytes]) {
    let values = read_hash(ctx, &args[1], |hash| {
        args[2..]
            .iter()
            .map(|field| hash.get(field).map(<[u8]>::to_vec))
            .collect::<Vec<_>>()
    });
    let Ok(values) = values else { return };
    let values = values.unwrap_or_else(|| vec![None; args.len() - 2]);
    ctx.out.array(values.len());
    for value in values {
        match value {
            Some(value) => ctx.out.bulk(&value),
            None => ctx.out.null(),
        }
    }
}

/// `HDEL key field [field ...]`
pub(super) fn hdel(ctx: &mut Ctx, args: &[Bytes]) {
    let removed = write_hash(ctx, &args[1], false, |hash, _| {
        args[2..].iter().filter(|field| hash.remove(field)).count()
    });
    if let Ok(removed) = removed {
        let removed = removed.unwrap_or(0);
        ctx.dirty(removed as u64);
        if removed > 0 {
            ctx.notify(notify::HASH, "hdel", &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.out.integer(removed as i64);
    }
}

/// `HLEN key`
pub(super) fn hlen(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(len) = read_hash(ctx, &args[1], HashValue::len) {
        ctx.out.integer(len.unwrap_or(0) as i64);
    }
}

/// `HSTRLEN key field`
pub(super) fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(len) = read_hash(ctx, &args[1], |hash| {
        hash.get(&args[2]).map_or(0, <[u8]>::len)
    }) {
        ctx.out.integer(len.unwrap_or(0) as i64);
    }
}

/// `HEXISTS key field`
pub(super) fn hexists(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(exists) = read_hash(ctx, &args[1], |hash| hash.get(&args[2]).is_some()) {
        ctx.out.integer(i64::from(exists.unwrap_or(false)));
    }
}

/// A hash's fields and values, copied out.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn all_fields(ctx: &mut Ctx, key: &[u8]) -> Result<Pairs, Replied> {
    read_hash(ctx, key, |hash| {
        hash.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    })
    .map(Option::unwrap_or_default)
}

/// `HKEYS key`
pub(super) fn hkeys(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(pairs) = all_fields(ctx, &args[1]) else {
        return;
    };
    ctx.out.array(pairs.len());
    pairs.iter().for_each(|(f, _)| ctx.out.bulk(f));
}

/// `HVALS key`
pub(super) fn hvals(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(pairs) = all_fields(ctx, &args[1]) else {
        return;
    };
    ctx.out.array(pairs.len());
    pairs.iter().for_each(|(_, v)| ctx.out.bulk(v));
}

/// `HGETALL key` (a map in RESP3)
pub(super) fn hgetall(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(pairs) = all_fields(ctx, &args[1]) else {
        return;
    };
    ctx.out.map(pairs.len());
    for (field, value) in &pairs {
        ctx.out.bulk(field);
        ctx.out.bulk(value);
    }
}

/// `HINCRBY key field increment`
pub(super) fn hincrby(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(by) = ctx.int_arg(&args[3]) else {
        return;
    };
    let result = write_hash(ctx, &args[1], true, |hash, limits| {
        let current = match hash.get(&args[2]) {
            None => 0,
            Some(value) => parse_i64(value).ok_or("ERR hash value is not an integer")?,
        };
        let next = current.checked_add(by).ok_or(errors::OVERFLOW)?;
        hash.set(&args[2], next.to_string().as_bytes(), limits);
        Ok::<i64, &str>(next)
    });
    match result {
        Ok(Some(Ok(next))) => {
            ctx.dirty(1);
            ctx.notify(notify::HASH, "hincrby", &args[1]);
            ctx.out.integer(next);
        }
        Ok(Some(Err(message))) => ctx.error(message),
        _ => {}
    }
}

/// `HINCRBYFLOAT key field increment`, in long double as Redis computes it.
pub(super) fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(by) = LongDouble::parse(&args[3]) else {
        return ctx.error(errors::NOT_FLOAT);
    };
    if !by.is_finite() {
        return ctx.error("ERR value is NaN or Infinity");
    }
    let result = write_hash(ctx, &args[1], true, |hash, limits| {
        let current = match hash.get(&args[2]) {
            None => LongDouble::ZERO,
            Some(value) => LongDouble::parse(value).ok_or("ERR hash value is not a float")?,
        };
        let next = current.plus(by);
        if !next.is_finite() {
            return Err("ERR increment would produce NaN or Infinity");
        }
        let text = next.to_human_string();
        hash.set(&args[2], text.as_bytes(), limits);
        Ok(text)
    });
    match result {
        Ok(Some(Ok(text))) => {
            ctx.dirty(1);
            ctx.notify(notify::HASH, "hincrbyfloat", &args[1]);
            ctx.propagate_as(vec![aof_command!(
                b"HSET",
                &args[1],
                &args[2],
                text.as_bytes()
            )]);
            ctx.out.bulk(text.as_bytes());
        }
        Ok(Some(Err(message))) => ctx.error(message),
        _ => {}
    }
}

/// `HRANDFIELD key [count [WITHVALUES]]`
pub(super) fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok((count, with_values)) = super::random_count_args(ctx, args, Some("withvalues")) else {
        return;
    };
    let seed = ctx.server.keyspace.next_random();
    let Ok(picked) = read_hash(ctx, &args[1], |hash| {
        let owned = |(f, v): (&[u8], &[u8])| (f.to_vec(), v.to_vec());
        let Some(count) = count else {
            return hash
                .random_field(super::seeded(seed))
                .map(|pair| vec![owned(pair)]);
        };
        Some(super::random_picks(
            hash.len(),
            count,
            seed,
            |random| hash.random_field(random).map(owned),
            || hash.iter().map(owned).collect(),
        ))
    }) else {
        return;
    };
    let picked: Pairs = match (count, picked.flatten()) {
        (None, None) => return ctx.out.null(),
        (None, Some(one)) => return ctx.out.bulk(&one[0].0),
        (Some(_), picked) => picked.unwrap_or_default(),
    };
    if with_values && ctx.out.protocol() == amber_protocol::Protocol::Resp3 {
        ctx.out.array(picked.len());
        for (field, value) in &picked {
            ctx.out.array(2);
            ctx.out.bulk(field);
            ctx.out.bulk(value);
        }
        return;
    }
    ctx.out
        .array(picked.len() * if with_values { 2 } else { 1 });
    for (field, value) in &picked {
        ctx.out.bulk(field);
        if with_values {
            ctx.out.bulk(value);
        }
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`
pub(super) fn hscan(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(scan) = scan_args::<amber_keyspace::HashValue>(ctx, &args[1], &args[2], &args[3..])
    else {
        return;
    };
    let found = read_hash(ctx, &args[1], |hash| {
        scan.collect(|cursor, found| {
            hash.scan(cursor, |f, v| {
                if scan.matches(f) {
                    found.push((f.to_vec(), v.to_vec()));
                }
            })
        })
    });
    let Ok(found) = found else { return };
    let (cursor, found) = found.unwrap_or((0, Vec::new()));
    ctx.out.array(2);
    ctx.out.bulk(cursor.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (field, value) in found {
        ctx.out.bulk(&field);
        ctx.out.bulk(&value);
    }
}
