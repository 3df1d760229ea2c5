//! DUMP and RESTORE with Redis's payload format (RDB value, 2-byte version, CRC-64), so values
//! move between Amber and Redis.

use amber_keyspace::Entry;
use amber_protocol::parse_i64;
use amber_rdb::{PayloadError, WriteOptions};
use bytes::Bytes;

use super::{Ctx, errors, is};
use crate::persistence::rdb::{from_rdb, to_rdb};

/// `DUMP key`
pub(super) fn dump(ctx: &mut Ctx, args: &[Bytes]) {
    let value = ctx.lookup_read(&args[1], to_rdb);
    let Some(value) = value else {
        return ctx.out.null();
    };
    let options = WriteOptions {
        compression: ctx.server.config.get_bool("rdbcompression"),
        ..WriteOptions::default()
    };
    match amber_rdb::dump_payload(&value, options) {
        Ok(payload) => ctx.out.bulk(&payload),
        Err(error) => ctx.error(&format!("ERR {error}")),
    }
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`
pub(super) fn restore(ctx: &mut Ctx, args: &[Bytes]) {
    let (mut replace, mut absolute) = (false, false);
    let mut idle_seconds = None;
    let mut frequency = None;
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "absttl") {
            absolute = true;
        } else if is(&args[i], "idletime") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => idle_seconds = Some(n),
                Some(_) => return ctx.error("ERR Invalid IDLETIME value, must be >= 0"),
                None => return ctx.error(errors::NOT_INTEGER),
            }
            i += 1;
        } else if is(&args[i], "freq") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if (0..=255).contains(&n) => frequency = Some(n as u8),
                Some(_) => return ctx.error("ERR Invalid FREQ value, must be >= 0 and <= 255"),
                None => return ctx.error(errors::NOT_INTEGER),
            }
            i += 1;
        } else {
            return ctx.error(errors::SYNTAX);
        }
        i += 1;
    }
    let Ok(ttl) = ctx.int_arg(&args[2]) else {
        return;
    };
    if ttl < 0 {
        return ctx.error("ERR Invalid TTL value, must be >= 0");
    }
    let key = &args[1];
    let now = ctx.server.now_ms;
    if !replace && ctx.db().exists(key, now) {
        return ctx.error("BUSYKEY Target key name already exists.");
    }
    let verify = !ctx.server.debug.skip_checksum_validation;
    let value = match amber_rdb::parse_payload(&args[3], verify) {
        Ok(value) => value,
        Err(PayloadError::VersionOrChecksum) => {
            return ctx.error("ERR DUMP payload version or checksum are wrong");
        }
        Err(PayloadError::BadFormat(reason)) => return bad_payload(ctx, key, &reason),
    };
    // `sanitize-dump-payload yes` (and `clients`, every connection being a client here):
    // the deep check Redis adds, refusing repeated fields and members.
    // Redis refuses repeats in the plain encodings always, and in the compact ones (listpack,
    // ziplist, intset) only under that deep check.
    let sanitize = ctx.server.config.get("sanitize-dump-payload") != "no";
    ctx.server.stats.dump_payload_sanitizations += u64::from(sanitize);
    let compact = args[3].first().is_some_and(|&t| {
        matches!(
            t,
            amber_rdb::types::HASH_ZIPMAP
                ..=amber_rdb::types::HASH_ZIPLIST
                    | amber_rdb::types::HASH_LISTPACK
                    | amber_rdb::types::ZSET_LISTPACK
                    | amber_rdb::types::SET_LISTPACK
        )
    });
    let type_byte = args[3].first().copied().unwrap_or_default();
    // Ziplists and zipmaps are converted on load, so Redis checks them deeply whatever the
    // setting.
    let converted = matches!(
        type_byte,
        amber_rdb::types::HASH_ZIPMAP..=amber_rdb::types::LIST_QUICKLIST
    );
    if (sanitize || converted || !compact) && has_repeats(&value) {
        let reason = format!(
            "{} integrity check failed: repeated elements",
            amber_rdb::types::blob_label(type_byte)
        );
        return bad_payload(ctx, key, &reason);
    }
    if is_empty_collection(&value) {
        // Redis never writes an empty collection: a blob without elements fails its check.
        let reason = format!(
            "{} integrity check failed: no elements",
            amber_rdb::types::blob_label(type_byte)
        );
        return bad_payload(ctx, key, &reason);
    }
    let limits = ctx.server.encoding_limits();
    let Ok(value) = from_rdb(&value, &limits) else {
        return bad_payload(ctx, key, "the value cannot be stored");
    };
    let expire_at = match ttl {
        0 => None,
        ttl if absolute => Some(ttl),
        ttl => Some(now.saturating_add(ttl)),
    };
    let replaced = ctx.db().remove(key).is_some();
    if expire_at.is_none_or(|at| at > now) {
        let mut entry = Entry::new(value, now);
        entry.set_expire_at(expire_at);
        // As Redis's objectSetLRUOrLFU: FREQ applies under an LFU policy, IDLETIME under any
        // other.
        if ctx.server.settings.eviction_policy.is_lfu() {
            if let Some(frequency) = frequency {
                entry.set_frequency(frequency, now);
            }
        } else if let Some(idle) = idle_seconds {
            entry.set_idle(idle as u64, now);
        }
        // The key was removed above, so `insert` keeps no earlier LFU counter.
        ctx.db().insert(key, entry);
        ctx.notify(crate::notify::GENERIC, "restore", key);
        if let (Some(at), false) = (expire_at, absolute) {
            // The AOF gets the absolute expiry, so a replay does not extend it.
            let mut rewritten = args.to_vec();
            rewritten[2] = Bytes::from(at.to_string());
            rewritten.push(Bytes::from_static(b"ABSTTL"));
            ctx.propagate_as(vec![rewritten]);
        }
    } else if replaced {
        // Already expired: as Redis, the replaced key is deleted and nothing is added.
        ctx.notify(crate::notify::GENERIC, "del", key);
        ctx.propagate_as(vec![aof_command!(b"DEL", key)]);
    } else {
        return ctx.out.ok();
    }
    ctx.dirty(1);
    ctx.out.ok();
}

/// Refuses a RESTORE payload: Redis's reply, and the reason in the log (at verbose level, as
/// Redis logs it).
fn bad_payload(ctx: &mut Ctx, key: &[u8], reason: &str) {
    crate::verbose!(
        "Bad data format in the RESTORE payload of key '{}': {reason}",
        String::from_utf8_lossy(key)
    );
    ctx.error("ERR Bad data format");
}

/// Whether a collection has no element (Redis refuses to create such a key).
fn is_empty_collection(value: &amber_rdb::Value) -> bool {
    match value {
        amber_rdb::Value::Hash(pairs) => pairs.is_empty(),
        amber_rdb::Value::Set(members) | amber_rdb::Value::List(members) => members.is_empty(),
        amber_rdb::Value::SortedSet(members) => members.is_empty(),
        _ => false,
    }
}

/// Whether a collection repeats a hash field, set member or sorted set member (which a payload
/// from Redis never does).
fn has_repeats(value: &amber_rdb::Value) -> bool {
    fn repeats<'a>(items: impl Iterator<Item = &'a [u8]>) -> bool {
        let mut seen = std::collections::HashSet::new();
        items.into_iter().any(|item| !seen.insert(item))
    }
    match value {
        amber_rdb::Value::Hash(pairs) => repeats(pairs.iter().map(|(f, _)| f.as_slice())),
        amber_rdb::Value::Set(members) => repeats(members.iter().map(Vec::as_slice)),
        amber_rdb::Value::SortedSet(members) => repeats(members.iter().map(|(m, _)| m.as_slice())),
        _ => false,
    }
}
