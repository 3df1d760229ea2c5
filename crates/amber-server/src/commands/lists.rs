//! The list family: pushes and pops at both ends, ranges, positions, LMOVE and LMPOP.
//! The blocking variants live in `blocking.rs`.

use amber_protocol::parse_i64;
use bytes::Bytes;

use super::{Ctx, Replied, errors, is, read_collection, write_collection};
use crate::notify;

pub(super) type List = amber_keyspace::ListValue;

/// Runs `read` on the list under `key` (see [`read_collection`]).
pub(super) fn read_list<R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&List) -> R,
) -> Result<Option<R>, Replied> {
    read_collection(ctx, key, read)
}

/// Runs `change` on the list under `key` (see [`write_collection`]).
pub(super) fn write_list<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    change: impl FnOnce(&mut List) -> R,
) -> Result<Option<R>, Replied> {
    write_collection(ctx, key, create, change)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Left,
    Right,
}

pub(super) fn end_of(arg: &[u8]) -> Option<End> {
    if is(arg, "left") {
        Some(End::Left)
    } else if is(arg, "right") {
        Some(End::Right)
    } else {
        None
    }
}

fn push(ctx: &mut Ctx, args: &[Bytes], end: End, only_existing: bool) {
    let limits = ctx.server.list_limits();
    let len = write_list(ctx, &args[1], !only_existing, |list| {
        let items = args[2..].iter().map(|item| &item[..]);
        match end {
            End::Left => list.extend_front(items, limits),
            End::Right => list.extend_back(items, limits),
        }
        list.len()
    });
    match len {
        Ok(Some(len)) => {
            ctx.dirty(args.len() as u64 - 2);
            ctx.notify(notify::LIST, push_event(end), &args[1]);
            ctx.out.integer(len as i64);
        }
        Ok(None) => ctx.out.integer(0),
        Err(Replied) => {}
    }
}

/// `LPUSH key element [element ...]`
pub(super) fn lpush(ctx: &mut Ctx, args: &[Bytes]) {
    push(ctx, args, End::Left, false);
}

/// `RPUSH key element [element ...]`
pub(super) fn rpush(ctx: &mut Ctx, args: &[Bytes]) {
    push(ctx, args, End::Right, false);
}

/// `LPUSHX key element [element ...]`
pub(super) fn lpushx(ctx: &mut Ctx, args: &[Bytes]) {
    push(ctx, args, End::Left, true);
}

/// `RPUSHX key element [element ...]`
pub(super) fn rpushx(ctx: &mut Ctx, args: &[Bytes]) {
    push(ctx, args, End::Right, true);
}

/// `lpush` or `rpush`, the event of a push at `end`.
pub(super) fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// `lpop` or `rpop`, the event of a pop at `end`.
pub(super) fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

pub(super) fn pop_from(list: &mut List, end: End, count: usize) -> Vec<amber_keyspace::SmallBytes> {
    (0..count)
        .map_while(|_| match end {
            End::Left => list.pop_front(),
            End::Right => list.pop_back(),
        })
        .collect()
}

fn pop(ctx: &mut Ctx, args: &[Bytes], end: End) {
    let count = match args.get(2) {
        None => None,
        Some(_) if args.len() > 3 => {
            let name = if end == End::Left { "lpop" } else { "rpop" };
            return ctx.error(&format!(
                "ERR wrong number of arguments for '{name}' command"
            ));
        }
        Some(arg) => match parse_i64(arg) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.error("ERR value is out of range, must be positive"),
        },
    };
    let popped = write_list(ctx, &args[1], false, |list| {
        pop_from(list, end, count.unwrap_or(1))
    });
    let Ok(popped) = popped else { return };
    match (count, popped) {
        (None, Some(items)) if !items.is_empty() => {
            ctx.dirty(1);
            ctx.notify(notify::LIST, pop_event(end), &args[1]);
            ctx.notify_del_if_gone(&args[1]);
            ctx.out.bulk(&items[0]);
        }
        (None, _) => ctx.out.null(),
        (Some(_), None) => ctx.out.null_array(),
        (Some(_), Some(items)) => {
            ctx.dirty(items.len() as u64);
            if !items.is_empty() {
                ctx.notify(notify::LIST, pop_event(end), &args[1]);
                ctx.notify_del_if_gone(&args[1]);
            }
            ctx.out.array(items.len());
            items.iter().for_each(|item| ctx.out.bulk(item));
        }
    }
}

/// `LPOP key [count]`
pub(super) fn lpop(ctx: &mut Ctx, args: &[Bytes]) {
    pop(ctx, args, End::Left);
}

/// `RPOP key [count]`
pub(super) fn rpop(ctx: &mut Ctx, args: &[Bytes]) {
    pop(ctx, args, End::Right);
}

/// `LLEN key`
pub(super) fn llen(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(len) = read_list(ctx, &args[1], List::len) {
        ctx.out.integer(len.unwrap_or(0) as i64);
    }
}

/// Redis's index rules: negative counts from the end; `None` if outside the list.
fn resolve(len: usize, index: i64) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

/// `LINDEX key index`
pub(super) fn lindex(ctx: &mut Ctx, args: &[Bytes]) {
    // As Redis: a missing key replies nil before the index is parsed.
    match read_list(ctx, &args[1], |_| ()) {
        Ok(Some(())) => {}
        Ok(None) => return ctx.out.null(),
        Err(Replied) => return,
    }
    let Ok(index) = ctx.int_arg(&args[2]) else {
        return;
    };
    let item = read_list(ctx, &args[1], |list| {
        resolve(list.len(), index).and_then(|i| list.get(i).map(<[u8]>::to_vec))
    });
    match item {
        Ok(Some(Some(item))) => ctx.out.bulk(&item),
        Ok(_) => ctx.out.null(),
        Err(Replied) => {}
    }
}

/// `LSET key index element`
pub(super) fn lset(ctx: &mut Ctx, args: &[Bytes]) {
    // As Redis: the key is looked up (and its type checked) before the index is parsed.
    match super::read_collection_for_write(ctx, &args[1], |_: &List| ()) {
        Ok(Some(())) => {}
        Ok(None) => return ctx.error(errors::NO_SUCH_KEY),
        Err(Replied) => return,
    }
    let Ok(index) = ctx.int_arg(&args[2]) else {
        return;
    };
    let limits = ctx.server.list_limits();
    let done = write_list(ctx, &args[1], false, |list| {
        match resolve(list.len(), index) {
            Some(i) => list.set(i, &args[3], limits),
            None => false,
        }
    });
    match done {
        Ok(Some(true)) => {
            ctx.dirty(1);
            ctx.notify(notify::LIST, "lset", &args[1]);
            ctx.out.ok();
        }
        Ok(Some(false)) => ctx.error("ERR index out of range"),
        Ok(None) => ctx.error(errors::NO_SUCH_KEY),
        Err(Replied) => {}
    }
}

/// Redis's LRANGE/LTRIM clamping (ZRANGE's by rank too): the inclusive range, or `None` when
/// empty.
pub(super) fn clamp(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

/// `LRANGE key start stop`
pub(super) fn lrange(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    let items = read_list(ctx, &args[1], |list| match clamp(list.len(), start, stop) {
        Some((from, to)) => list.range(from, to).map(<[u8]>::to_vec).collect(),
        None => Vec::new(),
    });
    if let Ok(items) = items {
        let items = items.unwrap_or_default();
        ctx.out.array(items.len());
        items.iter().for_each(|item| ctx.out.bulk(item));
    }
}

/// `LTRIM key start stop`
pub(super) fn ltrim(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    let trimmed = write_list(ctx, &args[1], false, |list| {
        match clamp(list.len(), start, stop) {
            Some((from, to)) => list.trim(from, to),
            // An empty range keeps nothing.
            None => list.trim(1, 0),
        }
    });
    if let Ok(removed) = trimmed {
        if removed.is_some() {
            ctx.notify(notify::LIST, "ltrim", &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.dirty(removed.unwrap_or(0) as u64);
        ctx.out.ok();
    }
}

/// `LINSERT key BEFORE|AFTER pivot element`
pub(super) fn linsert(ctx: &mut Ctx, args: &[Bytes]) {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return ctx.error(errors::SYNTAX);
    };
    let limits = ctx.server.list_limits();
    let result = write_list(ctx, &args[1], false, |list| {
        let position = list.iter().position(|item| *item == *args[3])?;
        list.insert(position + usize::from(after), &args[4], limits);
        Some(list.len())
    });
    match result {
        Ok(Some(Some(len))) => {
            ctx.dirty(1);
            ctx.notify(notify::LIST, "linsert", &args[1]);
            ctx.out.integer(len as i64);
        }
        Ok(Some(None)) => ctx.out.integer(-1),
        Ok(None) => ctx.out.integer(0),
        Err(Replied) => {}
    }
}

/// `LREM key count element`
pub(super) fn lrem(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(count) = ctx.int_arg(&args[2]) else {
        return;
    };
    let limits = ctx.server.list_limits();
    let removed = write_list(ctx, &args[1], false, |list| {
        list.remove_matching(count, &args[3], limits)
    });
    if let Ok(removed) = removed {
        let removed = removed.unwrap_or(0);
        ctx.dirty(removed as u64);
        if removed > 0 {
            ctx.notify(notify::LIST, "lrem", &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.out.integer(removed as i64);
    }
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub(super) fn lpos(ctx: &mut Ctx, args: &[Bytes]) {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    let mut i = 3;
    while i < args.len() {
        // As Redis: the option name is checked before its value is parsed.
        let known = ["rank", "count", "maxlen"]
            .iter()
            .any(|name| is(&args[i], name));
        let Some(value) = args.get(i + 1).filter(|_| known) else {
            return ctx.error(errors::SYNTAX);
        };
        // As Redis: COUNT and MAXLEN name themselves in every failure, RANK does not.
        let number = match parse_i64(value) {
            Some(number) => number,
            None if is(&args[i], "count") => return ctx.error("ERR COUNT can't be negative"),
            None if is(&args[i], "maxlen") => return ctx.error("ERR MAXLEN can't be negative"),
            None => return ctx.error(errors::NOT_INTEGER),
        };
        if is(&args[i], "rank") {
            if number == 0 {
                return ctx.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
            rank = number;
        } else if is(&args[i], "count") {
            if number < 0 {
                return ctx.error("ERR COUNT can't be negative");
            }
            count = Some(number as usize);
        } else {
            if number < 0 {
                return ctx.error("ERR MAXLEN can't be negative");
            }
            maxlen = number;
        }
        i += 2;
    }
    let found = read_list(ctx, &args[1], |list| {
        // RANK -9223372036854775808: Redis negates it in C, where it stays itself, so every
        // match from the tail qualifies and a COUNT never stops the search early.
        let overflowed = rank == i64::MIN;
        let wanted = match count {
            Some(0) => usize::MAX,
            Some(_) if overflowed => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let skip = if overflowed {
            0
        } else {
            rank.unsigned_abs() as usize - 1
        };
        let len = list.len();
        let limit = if maxlen == 0 {
            len
        } else {
            (maxlen as usize).min(len)
        };
        let matches = |(_, item): &(usize, &[u8])| **item == *args[2];
        // Only the MAXLEN elements searched are read: from the head lazily, from the tail
        // through a window of them.
        if rank > 0 {
            return list
                .iter()
                .take(limit)
                .enumerate()
                .filter(matches)
                .map(|(i, _)| i)
                .skip(skip)
                .take(wanted)
                .collect::<Vec<usize>>();
        }
        let first = len - limit;
        let window: Vec<&[u8]> = list.range(first, len.saturating_sub(1)).collect();
        window
            .into_iter()
            .enumerate()
            .rev()
            .filter(matches)
            .map(|(i, _)| first + i)
            .skip(skip)
            .take(wanted)
            .collect::<Vec<usize>>()
    });
    let Ok(found) = found else { return };
    let found = found.unwrap_or_default();
    match count {
        Some(_) => {
            ctx.out.array(found.len());
            found.iter().for_each(|&i| ctx.out.integer(i as i64));
        }
        None => match found.first() {
            Some(&i) => ctx.out.integer(i as i64),
            None => ctx.out.null(),
        },
    }
}

fn move_one(ctx: &mut Ctx, source: &[u8], destination: &[u8], from: End, to: End) {
    // As Redis: a missing or empty source replies nil before the destination's type is checked.
    match super::read_collection_for_write(ctx, source, List::is_empty) {
        Err(Replied) => return,
        Ok(None | Some(true)) => return ctx.out.null(),
        Ok(Some(false)) => {}
    }
    if super::read_collection_for_write(ctx, destination, |_: &List| ()).is_err() {
        return;
    }
    match move_element(ctx, source, destination, from, to) {
        Ok(Some(item)) => ctx.out.bulk(&item),
        Ok(None) => ctx.out.null(),
        Err(Replied) => {}
    }
}

/// Moves one element from `source`'s `from` end to `destination`'s `to` end (the types are
/// checked already), with the change counted and the events Redis publishes (`lpush`/`rpush`,
/// `lpop`/`rpop`, `del` when the source empties). A list moved onto itself is rotated in
/// place: it is never empty in between, so it is neither deleted nor new. `None` when the
/// source has no element.
pub(super) fn move_element(
    ctx: &mut Ctx,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Option<amber_keyspace::SmallBytes>, Replied> {
    let limits = ctx.server.list_limits();
    let push = move |list: &mut List, item: &amber_keyspace::SmallBytes| match to {
        End::Left => list.extend_front(std::iter::once(item.as_bytes()), limits),
        End::Right => list.extend_back(std::iter::once(item.as_bytes()), limits),
    };
    let moved = if source == destination {
        write_list(ctx, source, false, |list| {
            let item = pop_from(list, from, 1).pop()?;
            push(list, &item);
            Some(item)
        })?
        .flatten()
    } else {
        let popped = write_list(ctx, source, false, |list| pop_from(list, from, 1).pop())?;
        if let Some(Some(item)) = &popped {
            write_list(ctx, destination, true, |list| push(list, item))?;
        }
        popped.flatten()
    };
    if moved.is_some() {
        ctx.dirty(1);
        ctx.notify(notify::LIST, push_event(to), destination);
        ctx.notify(notify::LIST, pop_event(from), source);
        ctx.notify_del_if_gone(source);
    }
    Ok(moved)
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`
pub(super) fn lmove(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(from), Some(to)) = (end_of(&args[3]), end_of(&args[4])) else {
        return ctx.error(errors::SYNTAX);
    };
    move_one(ctx, &args[1], &args[2], from, to);
}

/// `RPOPLPUSH source destination`
pub(super) fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) {
    move_one(ctx, &args[1], &args[2], End::Right, End::Left);
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`
pub(super) fn lmpop(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(numkeys) = super::numkeys_arg(ctx, &args[1]) else {
        return;
    };
    if numkeys > args.len().saturating_sub(3) {
        return ctx.error(errors::SYNTAX);
    }
    let Some(end) = end_of(&args[2 + numkeys]) else {
        return ctx.error(errors::SYNTAX);
    };
    let count = match &args[3 + numkeys..] {
        [] => 1,
        [word, value] if is(word, "count") => match parse_i64(value) {
            Some(n) if n > 0 => n as usize,
            _ => return ctx.error("ERR count should be greater than 0"),
        },
        _ => return ctx.error(errors::SYNTAX),
    };
    for key in &args[2..2 + numkeys] {
        match write_list(ctx, key, false, |list| pop_from(list, end, count)) {
            Err(Replied) => return,
            Ok(Some(items)) if !items.is_empty() => {
                ctx.dirty(items.len() as u64);
                ctx.modified_only(vec![key.clone()]);
                ctx.notify(notify::LIST, pop_event(end), key);
                ctx.notify_del_if_gone(key);
                // As Redis, the log gets the pop that happened: LPOP/RPOP with the count.
                let pop: &[u8] = match end {
                    End::Left => b"LPOP",
                    End::Right => b"RPOP",
                };
                let popped = items.len().to_string();
                ctx.propagate_as(vec![aof_command!(pop, key, popped.as_bytes())]);
                ctx.out.array(2);
                ctx.out.bulk(key);
                ctx.out.array(items.len());
                items.iter().for_each(|item| ctx.out.bulk(item));
                return;
            }
            Ok(_) => {}
        }
    }
    ctx.out.null_array();
}
