//! `MEMORY USAGE | STATS | DOCTOR | MALLOC-STATS | PURGE | HELP`: what a key or the server
//! costs in memory, answered in Redis's shapes.

use amber_keyspace::{HashValue, ListValue, SetValue, StrValue, Value, ZsetValue};
use bytes::Bytes;

use super::{Ctx, errors, is};
use crate::alloc;

const HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Print this help.",
];

/// Elements looked at by default before the size of a collection is extrapolated.
const DEFAULT_SAMPLES: usize = 5;

/// `MEMORY subcommand ...`
pub(super) fn memory(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    match args.len() {
        2 if is(sub, "help") => {
            ctx.out.array(HELP.len());
            HELP.iter().for_each(|line| ctx.out.simple(line));
        }
        n if n >= 3 && is(sub, "usage") => usage(ctx, args),
        2 if is(sub, "stats") => stats(ctx),
        2 if is(sub, "doctor") => ctx.out.verbatim(
            b"txt",
            b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.",
        ),
        2 if is(sub, "malloc-stats") => ctx.out.bulk(&crate::alloc::malloc_stats()),
        2 if is(sub, "purge") => {
            crate::alloc::purge();
            ctx.out.ok()
        }
        _ if ["help", "usage", "stats", "doctor", "malloc-stats", "purge"]
            .iter()
            .any(|known| is(sub, known)) =>
        {
            super::subcommand_arity(ctx, "memory", sub)
        }
        _ => super::unknown_subcommand(ctx, "memory", sub),
    }
}

fn usage(ctx: &mut Ctx, args: &[Bytes]) {
    let mut samples = DEFAULT_SAMPLES;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let Some(count) = options.next().filter(|_| is(option, "samples")) else {
            return ctx.error(errors::SYNTAX);
        };
        let Ok(count) = ctx.int_arg(count) else {
            return;
        };
        samples = match count {
            n if n < 0 => return ctx.error(errors::SYNTAX),
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
    }
    // Like Redis: no expiry check, a logically expired key still has a size.
    let Some(entry) = ctx.db().raw(&args[2]) else {
        return ctx.out.null();
    };
    let size = key_overhead(args[2].len()) + value_size(&entry.value, samples);
    ctx.out.integer(size as i64);
}

/// The table node, the key's bytes and the value's header, as Redis counts a key.
fn key_overhead(key_len: usize) -> usize {
    const DICT_ENTRY: usize = 24;
    const OBJECT_HEADER: usize = 16;
    DICT_ENTRY + OBJECT_HEADER + alloc_size(key_len + 3)
}

/// What an allocation of `len` bytes costs once rounded to the allocator's size classes.
fn alloc_size(len: usize) -> usize {
    len.max(8).next_multiple_of(8)
}

/// An estimate of the value's bytes: compact encodings by their packed size, table encodings
/// by a sample of `samples` elements scaled to the whole collection, as Redis estimates.
pub(crate) fn value_size(value: &Value, samples: usize) -> usize {
    match value {
        Value::Str(StrValue::Int(_)) => 0,
        Value::Str(StrValue::Embstr(bytes)) => alloc_size(bytes.len() + 3),
        Value::Str(StrValue::Raw(bytes)) => alloc_size(bytes.capacity().max(bytes.len()) + 9),
        Value::Str(StrValue::Shared(bytes)) => alloc_size(bytes.capacity().max(bytes.len()) + 9),
        Value::Hash(hash) => hash_size(hash, samples),
        Value::Set(set) => set_size(set, samples),
        Value::Zset(zset) => zset_size(zset, samples),
        Value::List(list) => list_size(list, samples),
        Value::Stream(stream) => stream.heap_bytes(),
    }
}

/// Scales the bytes of the first `seen` elements to `total` elements.
fn extrapolate(sampled: usize, seen: usize, total: usize) -> usize {
    if seen == 0 {
        return 0;
    }
    sampled / seen * total
}

/// Per-element cost in a packed (listpack/intset) encoding: the bytes plus about two of
/// header and back-length.
fn packed_element(len: usize) -> usize {
    len + 2
}

/// Per-element cost in a table encoding: a table entry, a string header and the bytes.
fn table_element(len: usize) -> usize {
    24 + alloc_size(len + 3)
}

fn hash_size(hash: &HashValue, samples: usize) -> usize {
    let packed = hash.encoding() == "listpack";
    let mut seen = 0;
    let mut sampled = 0;
    for (field, value) in hash.iter().take(samples) {
        seen += 1;
        sampled += if packed {
            packed_element(field.len()) + packed_element(value.len())
        } else {
            table_element(field.len()) + alloc_size(value.len() + 3)
        };
    }
    header(packed) + extrapolate(sampled, seen, hash.len())
}

fn set_size(set: &SetValue, samples: usize) -> usize {
    let compact = set.encoding() != "hashtable";
    let mut seen = 0;
    let mut sampled = 0;
    set.for_each_member(|member| {
        if seen < samples {
            seen += 1;
            sampled += if compact {
                packed_element(member.len())
            } else {
                table_element(member.len())
            };
        }
    });
    header(compact) + extrapolate(sampled, seen, set.len())
}

fn zset_size(zset: &ZsetValue, samples: usize) -> usize {
    let packed = zset.encoding() == "listpack";
    let mut seen = 0;
    let mut sampled = 0;
    for (member, _) in zset.iter().take(samples) {
        seen += 1;
        sampled += if packed {
            packed_element(member.len()) + packed_element(8)
        } else {
            // A skiplist node with its levels, and the member in the dictionary.
            table_element(member.len()) + 48
        };
    }
    header(packed) + extrapolate(sampled, seen, zset.len())
}

fn list_size(list: &ListValue, samples: usize) -> usize {
    let mut seen = 0;
    let mut sampled = 0;
    for element in list.iter().take(samples) {
        seen += 1;
        sampled += packed_element(element.len());
    }
    header(true) + extrapolate(sampled, seen, list.len())
}

/// The fixed cost of a collection: a packed blob's header, or an empty table.
fn header(packed: bool) -> usize {
    if packed { 16 } else { 96 }
}

/// `MEMORY STATS`, with the allocator's counters in Redis's fields (Amber has no replication
/// backlog, cluster links or scripts yet: those count 0).
fn stats(ctx: &mut Ctx) {
    let used = alloc::used_memory() as i64;
    let peak = alloc::peak_memory() as i64;
    let rss = alloc::rss_bytes() as i64;
    let startup = ctx.server.startup_memory as i64;
    let keyspace = &ctx.server.keyspace;
    let keys = keyspace.key_count() as i64;
    // Per database: its index, and the bytes of its key table and expiry index.
    let dbs: Vec<(usize, i64, i64)> = (0..keyspace.db_count())
        .map(|index| (index, keyspace.db_ref(index)))
        .filter(|(_, db)| !db.is_empty())
        .map(|(index, db)| (index, (db.len() * 8) as i64, (db.volatile_len() * 8) as i64))
        .collect();
    let overhead = startup
        + dbs
            .iter()
            .map(|(_, main, expires)| main + expires)
            .sum::<i64>();
    let dataset = (used - overhead).max(0);
    let percent = |part: i64, whole: i64| part as f64 * 100.0 / whole.max(1) as f64;
    let rss_ratio = rss as f64 / used.max(1) as f64;
    let backlog = ctx.server.replication.backlog_memory() as i64;
    let out = &mut *ctx.out;
    out.map(27 + dbs.len());
    let head = [
        ("peak.allocated", peak),
        ("total.allocated", used),
        ("startup.allocated", startup),
        ("replication.backlog", backlog),
        ("clients.slaves", 0),
        ("clients.normal", 0),
        ("cluster.links", 0),
        ("aof.buffer", 0),
        ("lua.caches", 0),
        ("functions.caches", 0),
    ];
    for (name, value) in head {
        out.bulk(name.as_bytes());
        out.integer(value);
    }
    for (index, main, expires) in dbs {
        out.bulk(format!("db.{index}").as_bytes());
        out.map(3);
        for (name, value) in [
            ("overhead.hashtable.main", main),
            ("overhead.hashtable.expires", expires),
            ("overhead.hashtable.slot-to-keys", 0),
        ] {
            out.bulk(name.as_bytes());
            out.integer(value);
        }
    }
    let bytes_per_key = if keys > 0 { (used - startup) / keys } else { 0 };
    let tail = [
        ("overhead.total", Stat::Int(overhead)),
        ("keys.count", Stat::Int(keys)),
        ("keys.bytes-per-key", Stat::Int(bytes_per_key)),
        ("dataset.bytes", Stat::Int(dataset)),
        (
            "dataset.percentage",
            Stat::Ratio(percent(dataset, used - startup)),
        ),
        ("peak.percentage", Stat::Ratio(percent(used, peak))),
        ("allocator.allocated", Stat::Int(used)),
        ("allocator.active", Stat::Int(used)),
        ("allocator.resident", Stat::Int(rss)),
        ("allocator-fragmentation.ratio", Stat::Ratio(1.0)),
        ("allocator-fragmentation.bytes", Stat::Int(0)),
        ("allocator-rss.ratio", Stat::Ratio(1.0)),
        ("allocator-rss.bytes", Stat::Int(0)),
        ("rss-overhead.ratio", Stat::Ratio(rss_ratio)),
        ("rss-overhead.bytes", Stat::Int(rss - used)),
        ("fragmentation", Stat::Ratio(rss_ratio)),
        ("fragmentation.bytes", Stat::Int(rss - used)),
    ];
    for (name, value) in tail {
        out.bulk(name.as_bytes());
        match value {
            Stat::Int(value) => out.integer(value),
            Stat::Ratio(value) => out.double(value),
        }
    }
}

/// One `MEMORY STATS` value.
enum Stat {
    Int(i64),
    Ratio(f64),
}
