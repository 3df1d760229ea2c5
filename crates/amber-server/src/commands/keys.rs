//! Generic key commands: deletion, existence, renaming, moving, expiry, iteration, OBJECT.

use amber_keyspace::glob_match;
use amber_protocol::parse_i64;
use bytes::Bytes;

use super::{Ctx, Replied, errors, is, subcommand_arity, unknown_subcommand};
use crate::notify;

/// `DEL key [key ...]` and `UNLINK`.
pub(super) fn del(ctx: &mut Ctx, args: &[Bytes]) {
    let now = ctx.server.now_ms;
    let mut deleted = 0;
    for key in &args[1..] {
        if ctx.db().exists(key, now) {
            ctx.db().remove(key);
            ctx.notify(notify::GENERIC, "del", key);
            deleted += 1;
        }
    }
    ctx.dirty(deleted);
    ctx.out.integer(deleted as i64);
}

/// `EXISTS key [key ...]`: counts repeated keys each time.
pub(super) fn exists(ctx: &mut Ctx, args: &[Bytes]) {
    let count = args[1..]
        .iter()
        .filter(|key| ctx.exists_for_read(key))
        .count();
    ctx.out.integer(count as i64);
}

/// `TOUCH key [key ...]`
pub(super) fn touch(ctx: &mut Ctx, args: &[Bytes]) {
    let count = args[1..]
        .iter()
        .filter(|key| ctx.lookup_read(key, |_| ()).is_some())
        .count();
    ctx.out.integer(count as i64);
}

/// `TYPE key`
pub(super) fn type_(ctx: &mut Ctx, args: &[Bytes]) {
    let now = ctx.server.now_ms;
    let name = if ctx.exists_for_read(&args[1]) {
        ctx.db()
            .peek(&args[1], now)
            .map_or("none", |e| e.value.type_name())
    } else {
        "none"
    };
    ctx.out.simple(name);
}

/// `KEYS pattern`
pub(super) fn keys(ctx: &mut Ctx, args: &[Bytes]) {
    let now = ctx.server.now_ms;
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let found: Vec<Vec<u8>> = ctx
        .db()
        .iter()
        .filter(|(key, entry)| {
            entry.expire_at().is_none_or(|at| at > now) && (all || glob_match(pattern, key, false))
        })
        .map(|(key, _)| key.to_vec())
        .collect();
    ctx.out.array(found.len());
    for key in found {
        ctx.out.bulk(&key);
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
pub(super) fn scan(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(mut cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        ctx.error("ERR invalid cursor");
        return;
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count: i64 = 10;
    let mut type_filter: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            ctx.error(errors::SYNTAX);
            return;
        };
        if is(&args[i], "match") {
            pattern = Some(value);
        } else if is(&args[i], "count") {
            let Ok(n) = ctx.int_arg(value) else { return };
            if n < 1 {
                ctx.error(errors::SYNTAX);
                return;
            }
            count = n;
        } else if is(&args[i], "type") {
            type_filter = Some(value);
        } else {
            ctx.error(errors::SYNTAX);
            return;
        }
        i += 2;
    }
    let now = ctx.server.now_ms;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut expired: Vec<Vec<u8>> = Vec::new();
    let mut budget = count.saturating_mul(10);
    let db = ctx.db();
    loop {
        cursor = db.scan(cursor, |key, entry| {
            let live = entry.expire_at().is_none_or(|at| at > now);
            if !live {
                expired.push(key.to_vec());
                return;
            }
            let matches = pattern.is_none_or(|p| glob_match(p, key, false));
            let typed = type_filter
                .is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()));
            if matches && typed {
                found.push(key.to_vec());
            }
        });
        budget -= 1;
        if cursor == 0 || budget <= 0 || found.len() as i64 >= count {
            break;
        }
    }
    // As Redis, the expired keys met on the way are deleted (and the deletions propagated).
    for key in &expired {
        ctx.db().exists(key, now);
    }
    ctx.out.array(2);
    ctx.out.bulk(cursor.to_string().as_bytes());
    ctx.out.array(found.len());
    for key in found {
        ctx.out.bulk(&key);
    }
}

/// `RANDOMKEY`
pub(super) fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) {
    let now = ctx.server.now_ms;
    let db = ctx.client.db;
    let (database, random) = ctx.server.keyspace.db_with_random(db);
    let key = database.random_key(now, random);
    match key {
        Some(key) => ctx.out.bulk(&key),
        None => ctx.out.null(),
    }
}

fn rename_generic(ctx: &mut Ctx, args: &[Bytes], nx: bool) {
    let now = ctx.server.now_ms;
    let (from, to) = (&args[1], &args[2]);
    if !ctx.db().exists(from, now) {
        ctx.error(errors::NO_SUCH_KEY);
        return;
    }
    if from == to {
        if nx {
            ctx.out.integer(0)
        } else {
            ctx.out.ok()
        }
        return;
    }
    if nx && ctx.db().exists(to, now) {
        ctx.out.integer(0);
        return;
    }
    if let Some(entry) = ctx.db().remove(from) {
        // As Redis: the destination is deleted, then added (a `new` key).
        ctx.db().remove(to);
        ctx.db().insert(to, entry);
    }
    ctx.notify(notify::GENERIC, "rename_from", from);
    ctx.notify(notify::GENERIC, "rename_to", to);
    ctx.dirty(1);
    if nx { ctx.out.integer(1) } else { ctx.out.ok() }
}

/// `RENAME key newkey`
pub(super) fn rename(ctx: &mut Ctx, args: &[Bytes]) {
    rename_generic(ctx, args, false);
}

/// `RENAMENX key newkey`
pub(super) fn renamenx(ctx: &mut Ctx, args: &[Bytes]) {
    rename_generic(ctx, args, true);
}

fn db_index(ctx: &mut Ctx, arg: &[u8]) -> Result<usize, Replied> {
    let index = ctx.int_arg(arg)?;
    if index < 0 || index >= ctx.server.keyspace.db_count() as i64 {
        ctx.error(errors::DB_RANGE);
        return Err(Replied);
    }
    Ok(index as usize)
}

/// `MOVE key db`
pub(super) fn move_(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(target) = db_index(ctx, &args[2]) else {
        return;
    };
    let source = ctx.client.db;
    if target == source {
        ctx.error("ERR source and destination objects are the same");
        return;
    }
    let now = ctx.server.now_ms;
    let key = &args[1];
    let movable = ctx.db().exists(key, now) && !ctx.server.keyspace.db(target).exists(key, now);
    if !movable {
        ctx.out.integer(0);
        return;
    }
    if let Some(entry) = ctx.db().remove(key) {
        ctx.server.keyspace.db(target).insert(key, entry);
    }
    ctx.notify_in(source, notify::GENERIC, "move_from", key);
    ctx.notify_in(target, notify::GENERIC, "move_to", key);
    ctx.modified_in(target, key);
    ctx.dirty(1);
    ctx.out.integer(1);
}

/// `COPY source destination [DB db] [REPLACE]`
pub(super) fn copy(ctx: &mut Ctx, args: &[Bytes]) {
    let mut target = ctx.client.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            let Ok(index) = db_index(ctx, &args[i + 1]) else {
                return;
            };
            target = index;
            i += 1;
        } else {
            ctx.error(errors::SYNTAX);
            return;
        }
        i += 1;
    }
    let (from, to) = (&args[1], &args[2]);
    if target == ctx.client.db && from == to {
        ctx.error("ERR source and destination objects are the same");
        return;
    }
    let now = ctx.server.now_ms;
    // As Redis: a read lookup of the source (a hit or a miss, with its `keymiss` event).
    let found = ctx.lookup_read(from, |_| ()).is_some();
    let Some(source) = ctx.db().peek(from, now).cloned().filter(|_| found) else {
        ctx.out.integer(0);
        return;
    };
    let destination = ctx.server.keyspace.db(target);
    if destination.exists(to, now) && !replace {
        ctx.out.integer(0);
        return;
    }
    let mut copy = source;
    copy.reset_access(now);
    // As Redis: a replaced destination is deleted, then added (a `new` key).
    destination.remove(to);
    destination.insert(to, copy);
    ctx.notify_in(target, notify::GENERIC, "copy_to", to);
    ctx.modified_in(target, to);
    ctx.dirty(1);
    ctx.out.integer(1);
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(ctx: &mut Ctx, args: &[Bytes]) -> Result<ExpireFlags, Replied> {
    let mut flags = ExpireFlags::default();
    for arg in args {
        if is(arg, "nx") {
            flags.nx = true;
        } else if is(arg, "xx") {
            flags.xx = true;
        } else if is(arg, "gt") {
            flags.gt = true;
        } else if is(arg, "lt") {
            flags.lt = true;
        } else {
            ctx.error(&format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(arg)
            ));
            return Err(Replied);
        }
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        ctx.error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return Err(Replied);
    }
    if flags.gt && flags.lt {
        ctx.error("ERR GT and LT options at the same time are not compatible");
        return Err(Replied);
    }
    Ok(flags)
}

fn expire_generic(ctx: &mut Ctx, args: &[Bytes], unit_ms: i64, relative: bool, command: &str) {
    // Redis checks the options before the time.
    let Ok(flags) = parse_expire_flags(ctx, &args[3..]) else {
        return;
    };
    let Ok(value) = ctx.int_arg(&args[2]) else {
        return;
    };
    let now = ctx.server.now_ms;
    let at = value.checked_mul(unit_ms).and_then(|ms| {
        if relative {
            ms.checked_add(now)
        } else {
            Some(ms)
        }
    });
    let Some(at) = at else {
        ctx.error(&format!("ERR invalid expire time in '{command}' command"));
        return;
    };
    let key = &args[1];
    let current = ctx.db().get_mut(key, now).map(|entry| entry.expire_at());
    let Some(current) = current else {
        ctx.out.integer(0);
        return;
    };
    let allowed = match current {
        None => !flags.xx && !flags.gt,
        Some(ttl) => !flags.nx && (!flags.gt || at > ttl) && (!flags.lt || at < ttl),
    };
    if !allowed {
        ctx.out.integer(0);
        return;
    }
    // As Redis: a past time deletes the key, except while a file loads (its later commands
    // must find the key as they first did).
    if at <= now && ctx.server.loading.is_none() {
        ctx.db().remove(key);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.propagate_as(vec![aof_command!(b"DEL", key)]);
    } else {
        ctx.db().set_expire(key, Some(at));
        ctx.notify(notify::GENERIC, "expire", key);
        let at = at.to_string();
        ctx.propagate_as(vec![aof_command!(b"PEXPIREAT", key, at.as_bytes())]);
    }
    ctx.dirty(1);
    ctx.out.integer(1);
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`
pub(super) fn expire(ctx: &mut Ctx, args: &[Bytes]) {
    expire_generic(ctx, args, 1000, true, "expire");
}

/// `PEXPIRE key milliseconds [NX|XX|GT|LT]`
pub(super) fn pexpire(ctx: &mut Ctx, args: &[Bytes]) {
    expire_generic(ctx, args, 1, true, "pexpire");
}

/// `EXPIREAT key unix-seconds [NX|XX|GT|LT]`
pub(super) fn expireat(ctx: &mut Ctx, args: &[Bytes]) {
    expire_generic(ctx, args, 1000, false, "expireat");
}

/// `PEXPIREAT key unix-milliseconds [NX|XX|GT|LT]`
pub(super) fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) {
    expire_generic(ctx, args, 1, false, "pexpireat");
}

/// The key's expiry: `None` if missing, `Some(None)` if persistent.
fn expiry_of(ctx: &mut Ctx, key: &[u8]) -> Option<Option<i64>> {
    let now = ctx.server.now_ms;
    ctx.db().get_mut(key, now).map(|entry| entry.expire_at())
}

fn ttl_generic(ctx: &mut Ctx, key: &[u8], in_ms: bool) {
    let now = ctx.server.now_ms;
    ctx.exists_for_read(key);
    let reply = match expiry_of(ctx, key) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            let left = (at - now).max(0);
            if in_ms { left } else { (left + 500) / 1000 }
        }
    };
    ctx.out.integer(reply);
}

/// `TTL key`
pub(super) fn ttl(ctx: &mut Ctx, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], false);
}

/// `PTTL key`
pub(super) fn pttl(ctx: &mut Ctx, args: &[Bytes]) {
    ttl_generic(ctx, &args[1], true);
}

fn expiretime_generic(ctx: &mut Ctx, key: &[u8], in_ms: bool) {
    ctx.exists_for_read(key);
    let reply = match expiry_of(ctx, key) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            if in_ms {
                at
            } else {
                at / 1000
            }
        }
    };
    ctx.out.integer(reply);
}

/// `EXPIRETIME key`
pub(super) fn expiretime(ctx: &mut Ctx, args: &[Bytes]) {
    expiretime_generic(ctx, &args[1], false);
}

/// `PEXPIRETIME key`
pub(super) fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) {
    expiretime_generic(ctx, &args[1], true);
}

/// `PERSIST key`
pub(super) fn persist(ctx: &mut Ctx, args: &[Bytes]) {
    if let Some(Some(_)) = expiry_of(ctx, &args[1]) {
        ctx.db().set_expire(&args[1], None);
        ctx.notify(notify::GENERIC, "persist", &args[1]);
        ctx.dirty(1);
        ctx.out.integer(1);
    } else {
        ctx.out.integer(0);
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP`
pub(super) fn object(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "help") && args.len() == 2 {
        ctx.out.array(OBJECT_HELP.len());
        OBJECT_HELP.iter().for_each(|line| ctx.out.simple(line));
        return;
    }
    let known = ["encoding", "refcount", "idletime", "freq"]
        .iter()
        .any(|s| is(sub, s));
    if !known {
        unknown_subcommand(ctx, "object", sub);
        return;
    }
    if args.len() != 3 {
        subcommand_arity(ctx, "object", sub);
        return;
    }
    let now = ctx.server.now_ms;
    let policy = ctx.server.settings.eviction_policy;
    // As Redis: small integers are shared objects, unless `maxmemory` with an LRU or LFU
    // policy needs every key's own access record.
    let shares = ctx.server.settings.maxmemory == 0 || !(policy.is_lru() || policy.is_lfu());
    let Some(entry) = ctx.db().peek(&args[2], now) else {
        ctx.out.null();
        return;
    };
    let encoding = entry.value.encoding();
    let (idle, frequency) = (entry.idle_ms(now) / 1000, entry.frequency(now));
    let shared_int = shares
        && matches!(&entry.value, amber_keyspace::Value::Str(amber_keyspace::StrValue::Int(n)) if (0..10000).contains(n));
    if is(sub, "encoding") {
        ctx.out.bulk(encoding.as_bytes());
    } else if is(sub, "refcount") {
        ctx.out
            .integer(if shared_int { i64::from(i32::MAX) } else { 1 });
    } else if is(sub, "idletime") {
        if policy.is_lfu() {
            return ctx.error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
        }
        ctx.out.integer(idle as i64);
    } else if policy.is_lfu() {
        ctx.out.integer(i64::from(frequency));
    } else {
        ctx.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
}

/// Why a database index argument was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DbIndexError {
    /// Not an integer.
    NotInteger,
    /// No such database.
    OutOfRange,
}

/// Parses a database index for SELECT/SWAPDB-style commands, without replying.
pub(super) fn parse_db_index(arg: &[u8], db_count: usize) -> Result<usize, DbIndexError> {
    let index = parse_i64(arg).ok_or(DbIndexError::NotInteger)?;
    if index < 0 || index >= db_count as i64 {
        Err(DbIndexError::OutOfRange)
    } else {
        Ok(index as usize)
    }
}
