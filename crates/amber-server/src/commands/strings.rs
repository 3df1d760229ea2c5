//! The string family: GET, SET and its options, counters, ranges.

use amber_keyspace::{Entry, StrValue, Value};
use amber_protocol::parse_i64;
use bytes::Bytes;

use super::{Ctx, Replied, errors, is, string_value};
use crate::commands::long_double::LongDouble;
use crate::notify;

/// Where a command's expiry argument puts the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExpireArg {
    /// No expiry option: the key loses any TTL.
    None,
    /// `KEEPTTL`.
    Keep,
    /// An absolute time in Unix milliseconds.
    At(i64),
    /// `PERSIST` (GETEX).
    Persist,
}

/// Converts `EX/PX/EXAT/PXAT value` into an absolute time, or `None` if invalid (Redis's
/// "invalid expire time" error: not positive, or overflowing).
pub(super) fn absolute_expire(
    unit_ms: i64,
    relative: bool,
    value: i64,
    now_ms: i64,
) -> Option<i64> {
    if value <= 0 {
        return None;
    }
    let ms = value.checked_mul(unit_ms)?;
    if relative {
        ms.checked_add(now_ms)
    } else {
        Some(ms)
    }
}

fn store(ctx: &mut Ctx, key: &[u8], value: Value, expire: ExpireArg) {
    let now = ctx.server.now_ms;
    let previous_ttl = match expire {
        ExpireArg::Keep => ctx.db().peek(key, now).and_then(|e| e.expire_at()),
        _ => None,
    };
    let mut entry = Entry::new(value, now);
    entry.set_expire_at(match expire {
        ExpireArg::At(at) => Some(at),
        ExpireArg::Keep => previous_ttl,
        ExpireArg::None | ExpireArg::Persist => None,
    });
    ctx.db().insert(key, entry);
    ctx.dirty(1);
}

/// Looks up a string for a read-modify-write command; `Err` means a reply was already sent.
pub(super) fn string_entry<'a>(
    ctx: &'a mut Ctx,
    key: &[u8],
) -> Result<Option<&'a mut StrValue>, Replied> {
    let now = ctx.server.now_ms;
    let db = ctx.client.db;
    let is_string = ctx
        .server
        .keyspace
        .db(db)
        .get_mut(key, now)
        .map(|e| matches!(e.value, Value::Str(_)));
    match is_string {
        None => Ok(None),
        Some(false) => {
            ctx.error(errors::WRONGTYPE);
            Err(Replied)
        }
        Some(true) => match ctx
            .server
            .keyspace
            .db(db)
            .get_mut(key, now)
            .map(|e| &mut e.value)
        {
            Some(Value::Str(value)) => Ok(Some(value)),
            _ => Ok(None),
        },
    }
}

/// `GET key`
pub(super) fn get(ctx: &mut Ctx, args: &[Bytes]) {
    // Replied straight from the stored value; false for another type.
    let found = ctx.lookup_read_replying(&args[1], |value, out| {
        let Value::Str(string) = value else {
            return false;
        };
        match string {
            StrValue::Int(number) => out.bulk_i64(*number),
            StrValue::Embstr(bytes) => out.bulk(bytes.as_bytes()),
            StrValue::Raw(bytes) => out.bulk(bytes),
            StrValue::Shared(bytes) => out.bulk(bytes),
        }
        true
    });
    match found {
        None => ctx.out.null(),
        Some(true) => {}
        Some(false) => ctx.error(errors::WRONGTYPE),
    }
}

struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    expire: ExpireArg,
}

fn parse_set_options(ctx: &mut Ctx, args: &[Bytes], command: &str) -> Result<SetOptions, Replied> {
    let mut options = SetOptions {
        nx: false,
        xx: false,
        get: false,
        expire: ExpireArg::None,
    };
    let mut expire_given = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let next = args.get(i + 1);
        if is(arg, "nx") && !options.xx {
            options.nx = true;
        } else if is(arg, "xx") && !options.nx {
            options.xx = true;
        } else if is(arg, "get") {
            options.get = true;
        } else if is(arg, "keepttl") && !expire_given {
            expire_given = true;
            options.expire = ExpireArg::Keep;
        } else if let (Some(unit), Some(value)) = (expire_unit(arg), next) {
            if expire_given {
                ctx.error(errors::SYNTAX);
                return Err(Replied);
            }
            expire_given = true;
            let number = ctx.int_arg(value)?;
            let now = ctx.server.now_ms;
            match absolute_expire(unit.0, unit.1, number, now) {
                Some(at) => options.expire = ExpireArg::At(at),
                None => {
                    ctx.error(&format!("ERR invalid expire time in '{command}' command"));
                    return Err(Replied);
                }
            }
            i += 1;
        } else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        }
        i += 1;
    }
    Ok(options)
}

/// `(milliseconds per unit, relative)` for EX/PX/EXAT/PXAT.
fn expire_unit(arg: &[u8]) -> Option<(i64, bool)> {
    if is(arg, "ex") {
        Some((1000, true))
    } else if is(arg, "px") {
        Some((1, true))
    } else if is(arg, "exat") {
        Some((1000, false))
    } else if is(arg, "pxat") {
        Some((1, false))
    } else {
        None
    }
}

/// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL]`
pub(super) fn set(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(options) = parse_set_options(ctx, &args[3..], "set") else {
        return;
    };
    let key = &args[1];
    let old = if options.get {
        match ctx.read_string(key) {
            Ok(old) => Some(old),
            Err(Replied) => return,
        }
    } else {
        None
    };
    let now = ctx.server.now_ms;
    // As Redis's lookupKeyWrite: an expired key is deleted (and its events sent) first.
    let exists = ctx.db().exists(key, now);
    if (options.nx && exists) || (options.xx && !exists) {
        match old {
            Some(Some(old)) => ctx.out.bulk(&old),
            _ => ctx.out.null(),
        }
        return;
    }
    store(ctx, key, string_value(&args[2]), options.expire);
    ctx.notify(notify::STRING, "set", key);
    if let ExpireArg::At(at) = options.expire {
        ctx.notify(notify::GENERIC, "expire", key);
        let at = at.to_string();
        ctx.propagate_as(vec![aof_command!(
            b"SET",
            key,
            &args[2],
            b"PXAT",
            at.as_bytes()
        )]);
    } else if options.get {
        // As Redis: recorded without its GET arguments.
        let recorded: Vec<Bytes> = args
            .iter()
            .enumerate()
            .filter(|(index, arg)| *index < 3 || !is(arg, "get"))
            .map(|(_, arg)| arg.clone())
            .collect();
        ctx.propagate_as(vec![recorded]);
    }
    match old {
        Some(Some(old)) => ctx.out.bulk(&old),
        Some(None) => ctx.out.null(),
        None => ctx.out.ok(),
    }
}

/// `SETNX key value`
pub(super) fn setnx(ctx: &mut Ctx, args: &[Bytes]) {
    let now = ctx.server.now_ms;
    if ctx.db().exists(&args[1], now) {
        ctx.out.integer(0);
    } else {
        store(ctx, &args[1], string_value(&args[2]), ExpireArg::None);
        ctx.notify(notify::STRING, "set", &args[1]);
        ctx.out.integer(1);
    }
}

fn set_with_expire(ctx: &mut Ctx, args: &[Bytes], unit_ms: i64, command: &str) {
    let Ok(number) = ctx.int_arg(&args[2]) else {
        return;
    };
    let now = ctx.server.now_ms;
    let Some(at) = absolute_expire(unit_ms, true, number, now) else {
        ctx.error(&format!("ERR invalid expire time in '{command}' command"));
        return;
    };
    store(ctx, &args[1], string_value(&args[3]), ExpireArg::At(at));
    ctx.notify(notify::STRING, "set", &args[1]);
    ctx.notify(notify::GENERIC, "expire", &args[1]);
    let at = at.to_string();
    ctx.propagate_as(vec![aof_command!(
        b"SET",
        &args[1],
        &args[3],
        b"PXAT",
        at.as_bytes()
    )]);
    ctx.out.ok();
}

/// `SETEX key seconds value`
pub(super) fn setex(ctx: &mut Ctx, args: &[Bytes]) {
    set_with_expire(ctx, args, 1000, "setex");
}

/// `PSETEX key milliseconds value`
pub(super) fn psetex(ctx: &mut Ctx, args: &[Bytes]) {
    set_with_expire(ctx, args, 1, "psetex");
}

/// `MGET key [key ...]`: nil for missing keys and keys of other types.
pub(super) fn mget(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.out.array(args.len() - 1);
    for key in &args[1..] {
        // As Redis: a key of another type is a hit that reads as nil.
        let value = ctx.lookup_read(key, |value| match value {
            Value::Str(value) => Some(value.as_bytes().into_owned()),
            _ => None,
        });
        match value.flatten() {
            Some(bytes) => ctx.out.bulk(&bytes),
            None => ctx.out.null(),
        }
    }
}

/// `MSET key value [key value ...]`
pub(super) fn mset(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len().is_multiple_of(2) {
        ctx.error("ERR wrong number of arguments for 'mset' command");
        return;
    }
    for pair in args[1..].chunks(2) {
        store(ctx, &pair[0], string_value(&pair[1]), ExpireArg::None);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    ctx.out.ok();
}

/// `MSETNX key value [key value ...]`: all or nothing.
pub(super) fn msetnx(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len().is_multiple_of(2) {
        ctx.error("ERR wrong number of arguments for 'msetnx' command");
        return;
    }
    let now = ctx.server.now_ms;
    let any_exists = args[1..]
        .chunks(2)
        .any(|pair| ctx.db().exists(&pair[0], now));
    if any_exists {
        ctx.out.integer(0);
        return;
    }
    for pair in args[1..].chunks(2) {
        store(ctx, &pair[0], string_value(&pair[1]), ExpireArg::None);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    ctx.out.integer(1);
}

/// `GETSET key value`
pub(super) fn getset(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(old) = ctx.read_string(&args[1]) else {
        return;
    };
    store(ctx, &args[1], string_value(&args[2]), ExpireArg::None);
    ctx.notify(notify::STRING, "set", &args[1]);
    // As Redis: recorded as SET.
    ctx.propagate_as(vec![aof_command!(b"SET", &args[1], &args[2])]);
    match old {
        Some(old) => ctx.out.bulk(&old),
        None => ctx.out.null(),
    }
}

/// `GETDEL key`
pub(super) fn getdel(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(old) = ctx.read_string(&args[1]) else {
        return;
    };
    match old {
        Some(old) => {
            ctx.db().remove(&args[1]);
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "del", &args[1]);
            ctx.propagate_as(vec![aof_command!(b"DEL", &args[1])]);
            ctx.out.bulk(&old);
        }
        None => ctx.out.null(),
    }
}

/// `GETEX key [EX|PX|EXAT|PXAT n|PERSIST]`
pub(super) fn getex(ctx: &mut Ctx, args: &[Bytes]) {
    // As Redis: the options' shape first, then the key, then the expiry's value.
    let mut persist = false;
    let mut relative: Option<((i64, bool), &Bytes)> = None;
    let mut i = 2;
    while i < args.len() {
        let unit = expire_unit(&args[i]);
        if is(&args[i], "persist") && !persist && relative.is_none() {
            persist = true;
        } else if let (Some(unit), Some(value), false, None) =
            (unit, args.get(i + 1), persist, relative)
        {
            relative = Some((unit, value));
            i += 1;
        } else {
            ctx.error(errors::SYNTAX);
            return;
        }
        i += 1;
    }
    let Ok(value) = ctx.read_string(&args[1]) else {
        return;
    };
    let Some(value) = value else {
        ctx.out.null();
        return;
    };
    let now = ctx.server.now_ms;
    let expire = match relative {
        None if persist => ExpireArg::Persist,
        None => ExpireArg::None,
        Some((unit, value)) => {
            let Ok(number) = ctx.int_arg(value) else {
                return;
            };
            match absolute_expire(unit.0, unit.1, number, now) {
                Some(at) => ExpireArg::At(at),
                None => {
                    ctx.error("ERR invalid expire time in 'getex' command");
                    return;
                }
            }
        }
    };
    match expire {
        ExpireArg::At(at) if at <= now && ctx.server.loading.is_none() => {
            ctx.db().remove(&args[1]);
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "del", &args[1]);
            ctx.propagate_as(vec![aof_command!(b"DEL", &args[1])]);
        }
        ExpireArg::At(at) => {
            ctx.db().set_expire(&args[1], Some(at));
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "expire", &args[1]);
            let at = at.to_string();
            ctx.propagate_as(vec![aof_command!(b"PEXPIREAT", &args[1], at.as_bytes())]);
        }
        ExpireArg::Persist
            if ctx
                .db()
                .peek(&args[1], now)
                .is_some_and(|e| e.expire_at().is_some()) =>
        {
            ctx.db().set_expire(&args[1], None);
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "persist", &args[1]);
            ctx.propagate_as(vec![aof_command!(b"PERSIST", &args[1])]);
        }
        _ => {}
    }
    ctx.out.bulk(&value);
}

/// `APPEND key value`
pub(super) fn append(ctx: &mut Ctx, args: &[Bytes]) {
    let limit = ctx.server.settings.proto_max_bulk_len;
    let new_len = match string_entry(ctx, &args[1]) {
        Err(Replied) => return,
        Ok(None) => None,
        Ok(Some(value)) => {
            if (value.len() + args[2].len()) as u64 > limit {
                ctx.error(errors::TOO_BIG);
                return;
            }
            let raw = value.make_raw();
            raw.extend_from_slice(&args[2]);
            Some(raw.len())
        }
    };
    match new_len {
        Some(len) => {
            ctx.dirty(1);
            ctx.notify(notify::STRING, "append", &args[1]);
            ctx.out.integer(len as i64);
        }
        None => {
            // A new key gets the encoding SET would give it (Redis calls tryObjectEncoding).
            store(ctx, &args[1], string_value(&args[2]), ExpireArg::None);
            ctx.notify(notify::STRING, "append", &args[1]);
            ctx.out.integer(args[2].len() as i64);
        }
    }
}

/// `STRLEN key`
pub(super) fn strlen(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(value) = ctx.read_string(&args[1]) {
        ctx.out.integer(value.map_or(0, |v| v.len()) as i64);
    }
}

fn increment(ctx: &mut Ctx, key: &[u8], by: i64) {
    let result = match string_entry(ctx, key) {
        Err(Replied) => return,
        Ok(None) => None,
        Ok(Some(value)) => match value.as_int() {
            None => Some(Err(errors::NOT_INTEGER)),
            Some(current) => match current.checked_add(by) {
                None => Some(Err(errors::OVERFLOW)),
                Some(next) => {
                    *value = StrValue::Int(next);
                    Some(Ok(next))
                }
            },
        },
    };
    match result {
        Some(Err(message)) => ctx.error(message),
        Some(Ok(next)) => {
            ctx.dirty(1);
            ctx.notify(notify::STRING, "incrby", key);
            ctx.out.integer(next);
        }
        None => {
            store(ctx, key, Value::Str(StrValue::Int(by)), ExpireArg::None);
            ctx.notify(notify::STRING, "incrby", key);
            ctx.out.integer(by);
        }
    }
}

/// `INCR key`
pub(super) fn incr(ctx: &mut Ctx, args: &[Bytes]) {
    increment(ctx, &args[1], 1);
}

/// `DECR key`
pub(super) fn decr(ctx: &mut Ctx, args: &[Bytes]) {
    increment(ctx, &args[1], -1);
}

/// `INCRBY key increment`
pub(super) fn incrby(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(by) = ctx.int_arg(&args[2]) {
        increment(ctx, &args[1], by);
    }
}

/// `DECRBY key decrement`
pub(super) fn decrby(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(by) = ctx.int_arg(&args[2]) else {
        return;
    };
    match by.checked_neg() {
        Some(negated) => increment(ctx, &args[1], negated),
        None => ctx.error("ERR decrement would overflow"),
    }
}

/// Parses a float as Redis's `string2ld` accepts it: the whole string, no spaces, not NaN.
pub(super) fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value: f64 = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => lower.parse().ok()?,
        rest if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') => lower.parse().ok()?,
        _ => return None,
    };
    (!value.is_nan()).then_some(value)
}

/// `INCRBYFLOAT key increment`, in long double arithmetic as Redis computes it.
pub(super) fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) {
    let current = match ctx.read_string(&args[1]) {
        Err(Replied) => return,
        Ok(None) => Some(LongDouble::ZERO),
        Ok(Some(bytes)) => LongDouble::parse(&bytes),
    };
    let (Some(current), Some(by)) = (current, LongDouble::parse(&args[2])) else {
        ctx.error(errors::NOT_FLOAT);
        return;
    };
    let next = current.plus(by);
    if !next.is_finite() {
        ctx.error("ERR increment would produce NaN or Infinity");
        return;
    }
    let text = next.to_human_string();
    store(
        ctx,
        &args[1],
        Value::Str(StrValue::from_text(text.as_bytes())),
        ExpireArg::Keep,
    );
    ctx.notify(notify::STRING, "incrbyfloat", &args[1]);
    ctx.propagate_as(vec![aof_command!(
        b"SET",
        &args[1],
        text.as_bytes(),
        b"KEEPTTL"
    )]);
    ctx.out.bulk(text.as_bytes());
}

/// `GETRANGE key start end`
pub(super) fn getrange(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        ctx.error(errors::NOT_INTEGER);
        return;
    };
    let Ok(value) = ctx.read_string(&args[1]) else {
        return;
    };
    let value = value.unwrap_or_default();
    match byte_range(value.len() as i64, start, end) {
        Some((from, to)) => ctx.out.bulk(&value[from..=to]),
        None => ctx.out.bulk(b""),
    }
}

/// Redis's range rules for GETRANGE: negative indexes count from the end, clamped.
fn byte_range(len: i64, mut start: i64, mut end: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

/// `SETRANGE key offset value`
pub(super) fn setrange(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(offset) = ctx.int_arg(&args[2]) else {
        return;
    };
    if offset < 0 {
        ctx.error("ERR offset is out of range");
        return;
    }
    let patch = &args[3];
    let limit = ctx.server.settings.proto_max_bulk_len;
    let too_big = !patch.is_empty() && (offset as u64).saturating_add(patch.len() as u64) > limit;
    let result = match string_entry(ctx, &args[1]) {
        Err(Replied) => return,
        Ok(None) => None,
        Ok(Some(_)) if too_big => Some(Err(Replied)),
        Ok(Some(value)) if patch.is_empty() => Some(Ok((value.len(), false))),
        Ok(Some(value)) => {
            let raw = value.make_raw();
            write_at(raw, offset as usize, patch);
            Some(Ok((raw.len(), true)))
        }
    };
    match result {
        Some(Err(Replied)) => ctx.error(errors::TOO_BIG),
        Some(Ok((len, changed))) => {
            if changed {
                ctx.dirty(1);
                ctx.notify(notify::STRING, "setrange", &args[1]);
            }
            ctx.out.integer(len as i64);
        }
        None if patch.is_empty() => ctx.out.integer(0),
        None if too_big => ctx.error(errors::TOO_BIG),
        None => {
            let mut raw = Vec::new();
            write_at(&mut raw, offset as usize, patch);
            let len = raw.len();
            store(
                ctx,
                &args[1],
                Value::Str(StrValue::Raw(raw)),
                ExpireArg::None,
            );
            ctx.notify(notify::STRING, "setrange", &args[1]);
            ctx.out.integer(len as i64);
        }
    }
}

fn write_at(buffer: &mut Vec<u8>, offset: usize, patch: &[u8]) {
    if buffer.len() < offset + patch.len() {
        buffer.resize(offset + patch.len(), 0);
    }
    buffer[offset..offset + patch.len()].copy_from_slice(patch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(byte_range(10, 0, -1), Some((0, 9)));
        assert_eq!(byte_range(10, -3, -1), Some((7, 9)));
        assert_eq!(byte_range(10, 5, 100), Some((5, 9)));
        assert_eq!(byte_range(10, -1, -5), None);
        assert_eq!(byte_range(0, 0, -1), None);
        assert_eq!(byte_range(10, 8, 2), None);
    }

    #[test]
    fn floats_parse_strictly() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"-1e3"), Some(-1000.0));
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"abc"), None);
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b""), None);
    }

    #[test]
    fn expire_conversion_rejects_bad_values() {
        assert_eq!(absolute_expire(1000, true, 10, 5), Some(10_005));
        assert_eq!(absolute_expire(1000, true, 0, 5), None);
        assert_eq!(absolute_expire(1000, true, i64::MAX, 5), None);
        assert_eq!(absolute_expire(1, false, 77, 5), Some(77));
    }
}
