//! The set family: SADD, SREM, SMEMBERS, set algebra with and without STORE, SPOP, SSCAN.

use amber_keyspace::{Entry, SetValue, Value};
use bytes::Bytes;

use super::{
    Ctx, Replied, errors, read_collection, read_collection_for_write, scan_args, write_collection,
};
use crate::notify;

/// Runs `read` on the set under `key` (see [`read_collection`]).
fn read_set<R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&SetValue) -> R,
) -> Result<Option<R>, Replied> {
    read_collection(ctx, key, read)
}

/// Runs `change` on the set under `key` with `set-max-intset-entries` (see [`write_collection`]).
fn write_set<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    change: impl FnOnce(&mut SetValue, usize) -> R,
) -> Result<Option<R>, Replied> {
    let max_intset = ctx.server.max_intset();
    write_collection(ctx, key, create, |set| change(set, max_intset))
}

fn reply_members(ctx: &mut Ctx, members: &[Vec<u8>]) {
    ctx.out.set(members.len());
    members.iter().for_each(|m| ctx.out.bulk(m));
}

/// `SADD key member [member ...]`
pub(super) fn sadd(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(Some(added)) = write_set(ctx, &args[1], true, |set, max| {
        args[2..].iter().filter(|m| set.add(m, max)).count()
    }) {
        ctx.dirty(added as u64);
        if added > 0 {
            ctx.notify(notify::SET, "sadd", &args[1]);
        }
        ctx.out.integer(added as i64);
    }
}

/// `SREM key member [member ...]`
pub(super) fn srem(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(removed) = write_set(ctx, &args[1], false, |set, _| {
        args[2..].iter().filter(|m| set.remove(m)).count()
    }) {
        let removed = removed.unwrap_or(0);
        ctx.dirty(removed as u64);
        if removed > 0 {
            ctx.notify(notify::SET, "srem", &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.out.integer(removed as i64);
    }
}

/// `SCARD key`
pub(super) fn scard(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(len) = read_set(ctx, &args[1], SetValue::len) {
        ctx.out.integer(len.unwrap_or(0) as i64);
    }
}

/// `SISMEMBER key member`
pub(super) fn sismember(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(found) = read_set(ctx, &args[1], |set| set.contains(&args[2])) {
        ctx.out.integer(i64::from(found.unwrap_or(false)));
    }
}

/// `SMISMEMBER key member [member ...]`
pub(super) fn smismember(ctx: &mut Ctx, args: &[Bytes]) {
    let found = read_set(ctx, &args[1], |set| {
        args[2..]
            .iter()
            .map(|m| set.contains(m))
            .collect::<Vec<_>>()
    });
    let Ok(found) = found else { return };
    let found = found.unwrap_or_else(|| vec![false; args.len() - 2]);
    ctx.out.array(found.len());
    found
        .into_iter()
        .for_each(|f| ctx.out.integer(i64::from(f)));
}

/// `SMEMBERS key`
pub(super) fn smembers(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(members) = read_set(ctx, &args[1], SetValue::members) {
        reply_members(ctx, &members.unwrap_or_default());
    }
}

/// The members of every key (missing keys are empty sets); WRONGTYPE if any is not a set.
fn all_sets(ctx: &mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<Vec<Vec<u8>>>>, Replied> {
    keys.iter()
        .map(|key| read_set(ctx, key, SetValue::members))
        .collect()
}

enum Algebra {
    Inter,
    Union,
    Diff,
}

fn combine(sets: Vec<Option<Vec<Vec<u8>>>>, op: &Algebra) -> Vec<Vec<u8>> {
    use std::collections::HashSet;
    let mut sets = sets.into_iter().map(Option::unwrap_or_default);
    let Some(first) = sets.next() else {
        return Vec::new();
    };
    match op {
        Algebra::Union => {
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut out = Vec::new();
            for member in std::iter::once(first).chain(sets).flatten() {
                if seen.insert(member.clone()) {
                    out.push(member);
                }
            }
            out
        }
        Algebra::Inter => {
            let others: Vec<HashSet<Vec<u8>>> = sets.map(|s| s.into_iter().collect()).collect();
            first
                .into_iter()
                .filter(|m| others.iter().all(|o| o.contains(m)))
                .collect()
        }
        Algebra::Diff => {
            let others: Vec<HashSet<Vec<u8>>> = sets.map(|s| s.into_iter().collect()).collect();
            first
                .into_iter()
                .filter(|m| others.iter().all(|o| !o.contains(m)))
                .collect()
        }
    }
}

fn algebra(ctx: &mut Ctx, keys: &[Bytes], op: Algebra) {
    let Ok(sets) = all_sets(ctx, keys) else {
        return;
    };
    let result = combine(sets, &op);
    reply_members(ctx, &result);
}

fn algebra_store(ctx: &mut Ctx, destination: &[u8], keys: &[Bytes], op: Algebra, event: &str) {
    let Ok(sets) = all_sets(ctx, keys) else {
        return;
    };
    let result = combine(sets, &op);
    let now = ctx.server.now_ms;
    let max_intset = ctx.server.max_intset();
    if result.is_empty() {
        if ctx.db().remove(destination).is_some() {
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "del", destination);
        }
        return ctx.out.integer(0);
    }
    let mut set = SetValue::default();
    for member in &result {
        set.add(member, max_intset);
    }
    let len = set.len();
    ctx.db().insert(
        destination,
        Entry::new(Value::Set(std::sync::Arc::new(set)), now),
    );
    ctx.dirty(1);
    ctx.notify(notify::SET, event, destination);
    ctx.out.integer(len as i64);
}

/// `SINTER key [key ...]`
pub(super) fn sinter(ctx: &mut Ctx, args: &[Bytes]) {
    algebra(ctx, &args[1..], Algebra::Inter);
}

/// `SUNION key [key ...]`
pub(super) fn sunion(ctx: &mut Ctx, args: &[Bytes]) {
    algebra(ctx, &args[1..], Algebra::Union);
}

/// `SDIFF key [key ...]`
pub(super) fn sdiff(ctx: &mut Ctx, args: &[Bytes]) {
    algebra(ctx, &args[1..], Algebra::Diff);
}

/// `SINTERSTORE destination key [key ...]`
pub(super) fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) {
    algebra_store(ctx, &args[1], &args[2..], Algebra::Inter, "sinterstore");
}

/// `SUNIONSTORE destination key [key ...]`
pub(super) fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) {
    algebra_store(ctx, &args[1], &args[2..], Algebra::Union, "sunionstore");
}

/// `SDIFFSTORE destination key [key ...]`
pub(super) fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) {
    algebra_store(ctx, &args[1], &args[2..], Algebra::Diff, "sdiffstore");
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`
pub(super) fn sintercard(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(numkeys) = super::numkeys_arg(ctx, &args[1]) else {
        return;
    };
    if numkeys > args.len() - 2 {
        return ctx.error("ERR Number of keys can't be greater than number of args");
    }
    let Some(limit) = super::limit_option(ctx, &args[2 + numkeys..]) else {
        return;
    };
    let Ok(sets) = all_sets(ctx, &args[2..2 + numkeys]) else {
        return;
    };
    let count = combine(sets, &Algebra::Inter).len();
    ctx.out
        .integer(if limit > 0 { count.min(limit) } else { count } as i64);
}

/// `SMOVE source destination member`
pub(super) fn smove(ctx: &mut Ctx, args: &[Bytes]) {
    let (source, destination, member) = (&args[1], &args[2], &args[3]);
    let Ok(present) = read_collection_for_write(ctx, source, |set: &SetValue| set.contains(member))
    else {
        return;
    };
    // As Redis: a missing source replies 0 before the destination's type is checked.
    if present.is_none() {
        return ctx.out.integer(0);
    }
    if read_collection_for_write(ctx, destination, |_: &SetValue| ()).is_err() {
        return;
    }
    if present != Some(true) {
        return ctx.out.integer(0);
    }
    if source == destination {
        return ctx.out.integer(1);
    }
    let _ = write_set(ctx, source, false, |set, _| set.remove(member));
    ctx.notify(notify::SET, "srem", source);
    ctx.notify_del_if_gone(source);
    let added = write_set(ctx, destination, true, |set, max| set.add(member, max));
    if matches!(added, Ok(Some(true))) {
        ctx.notify(notify::SET, "sadd", destination);
    }
    if !matches!(added, Ok(Some(true))) {
        // As Redis: the destination already had the member, so only the source changed (a
        // WATCH on the destination stays valid).
        ctx.modified_only(vec![source.clone()]);
    }
    ctx.dirty(1);
    ctx.out.integer(1);
}

/// `SPOP key [count]`
pub(super) fn spop(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len() > 3 {
        return ctx.error(errors::SYNTAX);
    }
    // As Redis: one message for a count that is not a positive integer, then the key's type.
    let count = match args.get(2).map(|arg| amber_protocol::parse_i64(arg)) {
        None => None,
        Some(Some(n)) if n >= 0 => Some(n),
        Some(_) => return ctx.error("ERR value is out of range, must be positive"),
    };
    if count == Some(0) {
        if read_collection_for_write(ctx, &args[1], |_: &SetValue| ()).is_err() {
            return;
        }
        return ctx.out.set(0);
    }
    let mut picks = Vec::new();
    let wanted = count.unwrap_or(1).max(0) as usize;
    for _ in 0..wanted {
        let random = ctx.server.keyspace.next_random();
        let popped = write_set(ctx, &args[1], false, |set, _| {
            let mut state = random;
            let member = set.random_member(|| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                state >> 11
            })?;
            set.remove(&member);
            Some(member)
        });
        match popped {
            Err(Replied) => return,
            Ok(Some(Some(member))) => picks.push(member),
            Ok(_) => break,
        }
    }
    ctx.dirty(picks.len() as u64);
    if !picks.is_empty() {
        ctx.notify(notify::SET, "spop", &args[1]);
        ctx.notify_del_if_gone(&args[1]);
    }
    // The AOF records which members were taken, not the random choice.
    let removed = picks
        .chunks(1024)
        .map(|chunk| {
            let mut srem = aof_command!(b"SREM", &args[1]);
            srem.extend(chunk.iter().map(|m| Bytes::copy_from_slice(m)));
            srem
        })
        .collect();
    ctx.propagate_as(removed);
    match count {
        None => match picks.first() {
            Some(member) => ctx.out.bulk(member),
            None => ctx.out.null(),
        },
        Some(_) => reply_members(ctx, &picks),
    }
}

/// `SRANDMEMBER key [count]`
pub(super) fn srandmember(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok((count, _)) = super::random_count_args(ctx, args, None) else {
        return;
    };
    let seed = ctx.server.keyspace.next_random();
    let Ok(picked) = read_set(ctx, &args[1], |set| {
        let Some(count) = count else {
            return set.random_member(super::seeded(seed)).map(|m| vec![m]);
        };
        Some(super::random_picks(
            set.len(),
            count,
            seed,
            |random| set.random_member(random),
            || set.members(),
        ))
    }) else {
        return;
    };
    match (count, picked.flatten()) {
        (None, None) => ctx.out.null(),
        (None, Some(one)) => ctx.out.bulk(&one[0]),
        (Some(_), picked) => {
            let picked = picked.unwrap_or_default();
            ctx.out.array(picked.len());
            picked.iter().for_each(|m| ctx.out.bulk(m));
        }
    }
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`
pub(super) fn sscan(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(scan) = scan_args::<SetValue>(ctx, &args[1], &args[2], &args[3..]) else {
        return;
    };
    let found = read_set(ctx, &args[1], |set| {
        scan.collect(|cursor, found| {
            set.scan(cursor, |m| {
                if scan.matches(m) {
                    found.push(m.to_vec());
                }
            })
        })
    });
    let Ok(found) = found else { return };
    let (cursor, found) = found.unwrap_or((0, Vec::new()));
    ctx.out.array(2);
    ctx.out.bulk(cursor.to_string().as_bytes());
    ctx.out.array(found.len());
    found.iter().for_each(|m| ctx.out.bulk(m));
}
