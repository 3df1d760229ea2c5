//! The sorted-set family: ZADD and its options, scores and ranks, ZRANGE in all its forms,
//! pops, range removals and ZSCAN.

use std::ops::Range;

use amber_keyspace::{Entry, Value, ZsetLimits, ZsetValue};
use amber_protocol::{Protocol, parse_i64};
use bytes::Bytes;

use super::strings::parse_float;
use super::{Ctx, Replied, errors, is, read_collection, scan_args, write_collection};
use crate::notify;

/// Runs `read` on the sorted set under `key` (see [`read_collection`]).
pub(super) fn read_zset<R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&ZsetValue) -> R,
) -> Result<Option<R>, Replied> {
    read_collection(ctx, key, read)
}

/// Runs `change` on the sorted set under `key` with the listpack limits (see [`write_collection`]).
pub(super) fn write_zset<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    change: impl FnOnce(&mut ZsetValue, ZsetLimits) -> R,
) -> Result<Option<R>, Replied> {
    let limits = ctx.server.zset_limits();
    write_collection(ctx, key, create, |zset| change(zset, limits))
}

fn score_arg(bytes: &[u8]) -> Option<f64> {
    parse_float(bytes).filter(|f| !f.is_nan())
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
pub(super) fn zadd(ctx: &mut Ctx, args: &[Bytes]) {
    add(ctx, args, false);
}

/// ZADD, and ZINCRBY as Redis runs it: ZADD with INCR set, so it takes ZADD's flags too.
fn add(ctx: &mut Ctx, args: &[Bytes], incr_command: bool) {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, incr_command);
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        let flag = if is(arg, "nx") {
            &mut nx
        } else if is(arg, "xx") {
            &mut xx
        } else if is(arg, "gt") {
            &mut gt
        } else if is(arg, "lt") {
            &mut lt
        } else if is(arg, "ch") {
            &mut ch
        } else if is(arg, "incr") {
            &mut incr
        } else {
            break;
        };
        *flag = true;
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return ctx.error(errors::SYNTAX);
    }
    if nx && xx {
        return ctx.error("ERR XX and NX options at the same time are not compatible");
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return ctx.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return ctx.error("ERR INCR option supports a single increment-element pair");
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        let Some(score) = score_arg(&pair[0]) else {
            return ctx.error(errors::NOT_FLOAT);
        };
        parsed.push((score, pair[1].clone()));
    }
    let outcome = write_zset(ctx, &args[1], !xx, |zset, limits| {
        let (mut added, mut changed) = (0, 0);
        let mut incr_result = None;
        for (score, member) in &parsed {
            let current = zset.score(member);
            if (nx && current.is_some()) || (xx && current.is_none()) {
                continue;
            }
            let new_score = match (incr, current) {
                (true, Some(old)) => old + score,
                _ => *score,
            };
            if new_score.is_nan() {
                return Err("ERR resulting score is not a number (NaN)");
            }
            if let Some(old) = current
                && ((gt && new_score <= old) || (lt && new_score >= old))
            {
                continue;
            }
            if current != Some(new_score) {
                if zset.insert(member, new_score, limits) {
                    added += 1;
                } else {
                    changed += 1;
                }
            }
            incr_result = Some(new_score);
        }
        Ok((added, changed, incr_result))
    });
    match outcome {
        Ok(Some(Ok((added, changed, incr_result)))) => {
            ctx.dirty((added + changed) as u64);
            if added + changed > 0 {
                let event = if incr { "zincr" } else { "zadd" };
                ctx.notify(notify::ZSET, event, &args[1]);
            }
            if incr {
                match incr_result {
                    Some(score) => ctx.out.double(score),
                    None => ctx.out.null(),
                }
            } else {
                ctx.out.integer(if ch { added + changed } else { added });
            }
        }
        Ok(Some(Err(message))) => ctx.error(message),
        Ok(None) if incr => ctx.out.null(),
        Ok(None) => ctx.out.integer(0),
        Err(Replied) => {}
    }
}

/// `ZINCRBY key increment member`
pub(super) fn zincrby(ctx: &mut Ctx, args: &[Bytes]) {
    add(ctx, args, true);
}

/// `ZREM key member [member ...]`
pub(super) fn zrem(ctx: &mut Ctx, args: &[Bytes]) {
    let removed = write_zset(ctx, &args[1], false, |zset, _| {
        args[2..].iter().filter(|m| zset.remove(m)).count()
    });
    if let Ok(removed) = removed {
        let removed = removed.unwrap_or(0);
        ctx.dirty(removed as u64);
        if removed > 0 {
            ctx.notify(notify::ZSET, "zrem", &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.out.integer(removed as i64);
    }
}

/// `ZCARD key`
pub(super) fn zcard(ctx: &mut Ctx, args: &[Bytes]) {
    if let Ok(len) = read_zset(ctx, &args[1], ZsetValue::len) {
        ctx.out.integer(len.unwrap_or(0) as i64);
    }
}

/// `ZSCORE key member`
pub(super) fn zscore(ctx: &mut Ctx, args: &[Bytes]) {
    match read_zset(ctx, &args[1], |zset| zset.score(&args[2])) {
        Ok(Some(Some(score))) => ctx.out.double(score),
        Ok(_) => ctx.out.null(),
        Err(Replied) => {}
    }
}

/// `ZMSCORE key member [member ...]`
pub(super) fn zmscore(ctx: &mut Ctx, args: &[Bytes]) {
    let scores = read_zset(ctx, &args[1], |zset| {
        args[2..].iter().map(|m| zset.score(m)).collect::<Vec<_>>()
    });
    let Ok(scores) = scores else { return };
    let scores = scores.unwrap_or_else(|| vec![None; args.len() - 2]);
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(score) => ctx.out.double(score),
            None => ctx.out.null(),
        }
    }
}

fn rank(ctx: &mut Ctx, args: &[Bytes], reverse: bool) {
    let found = read_zset(ctx, &args[1], |zset| {
        zset.rank(&args[2])
            .map(|r| if reverse { zset.len() - 1 - r } else { r })
    });
    match found {
        Ok(Some(Some(rank))) => ctx.out.integer(rank as i64),
        Ok(_) => ctx.out.null(),
        Err(Replied) => {}
    }
}

/// `ZRANK key member`
pub(super) fn zrank(ctx: &mut Ctx, args: &[Bytes]) {
    rank(ctx, args, false);
}

/// `ZREVRANK key member`
pub(super) fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) {
    rank(ctx, args, true);
}

/// One end of a score range (`(1.5`, `-inf`).
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (exclusive, text) = match arg.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, arg),
    };
    Some(ScoreBound {
        value: score_arg(text)?,
        exclusive,
    })
}

fn above(score: f64, min: ScoreBound) -> bool {
    if min.exclusive {
        score > min.value
    } else {
        score >= min.value
    }
}

fn below(score: f64, max: ScoreBound) -> bool {
    if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    }
}

/// One end of a lexicographic range (`-`, `+`, `[a`, `(a`).
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

fn lex_bound(arg: &[u8]) -> Option<LexBound> {
    match arg.split_first()? {
        (b'-', []) => Some(LexBound::Min),
        (b'+', []) => Some(LexBound::Max),
        (b'[', rest) => Some(LexBound::Inclusive(rest.to_vec())),
        (b'(', rest) => Some(LexBound::Exclusive(rest.to_vec())),
        _ => None,
    }
}

fn lex_above(member: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Inclusive(v) => member >= v.as_slice(),
        LexBound::Exclusive(v) => member > v.as_slice(),
    }
}

fn lex_below(member: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(v) => member <= v.as_slice(),
        LexBound::Exclusive(v) => member < v.as_slice(),
    }
}

enum RangeKind {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

struct RangeQuery {
    kind: RangeKind,
    reverse: bool,
    limit: Option<(i64, i64)>,
}

type Scored = Vec<(Vec<u8>, f64)>;

/// The members a range query picks, in its order (LIMIT applied).
fn select(zset: &ZsetValue, query: &RangeQuery) -> Scored {
    let items = zset.range(picked_ranks(zset, query));
    let scored = |(member, score): (&[u8], f64)| (member.to_vec(), score);
    if query.reverse {
        items.rev().map(scored).collect()
    } else {
        items.map(scored).collect()
    }
}

/// The ranks (ascending) of the members a range query picks, LIMIT applied: found in
/// O(log n) on a big set, as Redis's skiplist finds a range's first member, so a range or a
/// count costs the members it covers, not the members before it.
fn picked_ranks(zset: &ZsetValue, query: &RangeQuery) -> Range<usize> {
    let ranks = match &query.kind {
        RangeKind::Rank(start, stop) => rank_range(zset.len(), *start, *stop, query.reverse),
        RangeKind::Score(min, max) => {
            let first = zset.partition_point(|_, score| !above(score, *min));
            let end = zset.partition_point(|_, score| below(score, *max));
            first..end.max(first)
        }
        RangeKind::Lex(min, max) => lex_ranks(zset, min, max, query.reverse),
    };
    match query.limit {
        None => ranks,
        Some((offset, count)) => limited(ranks, offset, count, query.reverse),
    }
}

/// Ranks `start..=stop` (negative counting from the end) of a set of `len` members, counted
/// from the highest member when `reverse`, as ascending ranks.
fn rank_range(len: usize, start: i64, stop: i64, reverse: bool) -> Range<usize> {
    let Some((start, stop)) = super::lists::clamp(len, start, stop) else {
        return 0..0;
    };
    if reverse {
        len - 1 - stop..len - start
    } else {
        start..stop + 1
    }
}

/// `LIMIT offset count` applied to `ranks` in the query's order: a negative offset picks
/// nothing, a negative count everything after the offset.
fn limited(ranks: Range<usize>, offset: i64, count: i64, reverse: bool) -> Range<usize> {
    let Ok(offset) = usize::try_from(offset) else {
        return ranks.start..ranks.start;
    };
    let left = ranks.len().saturating_sub(offset);
    let take = usize::try_from(count).map_or(left, |count| count.min(left));
    if reverse {
        let end = ranks.end - offset.min(ranks.len());
        end - take..end
    } else {
        let start = ranks.start + offset.min(ranks.len());
        start..start + take
    }
}

/// The ranks of a lexicographic range, as Redis finds them. A range that is empty, starts
/// past the last member or ends before the first holds nothing (`zslIsInLexRange`). In a
/// small set the range starts at the first member (in order) at or past `min` and goes on
/// while members are at most `max`, the other way round when `reverse`, as Redis walks a
/// listpack; a big set finds both ends by bisection, as Redis's skiplist does. The two agree
/// when the members are in lexicographic order, which is what a lexicographic range is for
/// (all scores equal).
fn lex_ranks(zset: &ZsetValue, min: &LexBound, max: &LexBound, reverse: bool) -> Range<usize> {
    let len = zset.len();
    let empty = match lex_cmp(min, max) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => lex_exclusive(min) || lex_exclusive(max),
        std::cmp::Ordering::Less => false,
    };
    let first = zset.range(0..1).next().map(|(member, _)| member);
    let last = zset
        .range(len.saturating_sub(1)..len)
        .next()
        .map(|(member, _)| member);
    let (Some(first), Some(last)) = (first, last) else {
        return 0..0;
    };
    if empty || !lex_above(last, min) || !lex_below(first, max) {
        return 0..0;
    }
    if zset.encoding() != "listpack" {
        let start = zset.partition_point(|member, _| !lex_above(member, min));
        let end = zset.partition_point(|member, _| lex_below(member, max));
        return start..end.max(start);
    }
    let members: Vec<&[u8]> = zset.iter().map(|(member, _)| member).collect();
    if reverse {
        let Some(end) = members.iter().rposition(|m| lex_below(m, max)) else {
            return 0..0;
        };
        let inside = members[..=end]
            .iter()
            .rev()
            .take_while(|m| lex_above(m, min))
            .count();
        end + 1 - inside..end + 1
    } else {
        let Some(start) = members.iter().position(|m| lex_above(m, min)) else {
            return 0..0;
        };
        let inside = members[start..]
            .iter()
            .take_while(|m| lex_below(m, max))
            .count();
        start..start + inside
    }
}

/// The order of two lexicographic bounds: `-` below every string, `+` above.
fn lex_cmp(a: &LexBound, b: &LexBound) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match (a, b) {
        (LexBound::Min, LexBound::Min) | (LexBound::Max, LexBound::Max) => Equal,
        (LexBound::Min, _) | (_, LexBound::Max) => Less,
        (_, LexBound::Min) | (LexBound::Max, _) => Greater,
        (
            LexBound::Inclusive(a) | LexBound::Exclusive(a),
            LexBound::Inclusive(b) | LexBound::Exclusive(b),
        ) => a.cmp(b),
    }
}

/// Whether a bound leaves out its own value (`(a`; `-` and `+` as Redis parses them).
fn lex_exclusive(bound: &LexBound) -> bool {
    !matches!(bound, LexBound::Inclusive(_))
}

fn reply_scored(ctx: &mut Ctx, items: &Scored, with_scores: bool) {
    if with_scores && ctx.out.protocol() == Protocol::Resp3 {
        ctx.out.array(items.len());
        for (member, score) in items {
            ctx.out.array(2);
            ctx.out.bulk(member);
            ctx.out.double(*score);
        }
        return;
    }
    ctx.out.array(items.len() * if with_scores { 2 } else { 1 });
    for (member, score) in items {
        ctx.out.bulk(member);
        if with_scores {
            ctx.out.double(*score);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// Parses the range arguments shared by the ZRANGE family; `reverse` swaps min/max for
/// BYSCORE/BYLEX as Redis does.
fn parse_range(
    ctx: &mut Ctx,
    min: &[u8],
    max: &[u8],
    by: By,
    reverse: bool,
) -> Result<RangeKind, Replied> {
    let (low, high) = if reverse && by != By::Rank {
        (max, min)
    } else {
        (min, max)
    };
    match by {
        By::Rank => match (parse_i64(low), parse_i64(high)) {
            (Some(a), Some(b)) => Ok(RangeKind::Rank(a, b)),
            _ => {
                ctx.error(errors::NOT_INTEGER);
                Err(Replied)
            }
        },
        By::Score => match (score_bound(low), score_bound(high)) {
            (Some(a), Some(b)) => Ok(RangeKind::Score(a, b)),
            _ => {
                ctx.error("ERR min or max is not a float");
                Err(Replied)
            }
        },
        By::Lex => match (lex_bound(low), lex_bound(high)) {
            (Some(a), Some(b)) => Ok(RangeKind::Lex(a, b)),
            _ => {
                ctx.error("ERR min or max not valid string range item");
                Err(Replied)
            }
        },
    }
}

/// Checks a parsed `LIMIT offset count` against the range type. As in Redis,
/// a count of -1 is "no limit", so `LIMIT n -1` is accepted (and ignored) in a
/// rank range; any other LIMIT there is a syntax error.
fn limit_for(
    ctx: &mut Ctx,
    limit: Option<(i64, i64)>,
    by: By,
) -> Result<Option<(i64, i64)>, Replied> {
    match limit {
        Some((_, -1)) | None if by == By::Rank => Ok(None),
        Some(_) if by == By::Rank => {
            ctx.error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            );
            Err(Replied)
        }
        other => Ok(other),
    }
}

/// Shared by ZRANGE and the older ZRANGEBYSCORE/ZREVRANGE/... forms.
fn range_generic(ctx: &mut Ctx, args: &[Bytes], mut by: By, mut reverse: bool, allow_by: bool) {
    let (mut limit, mut with_scores) = (None, false);
    let mut i = 4;
    while i < args.len() {
        let arg = &args[i];
        if is(arg, "withscores") {
            with_scores = true;
        } else if is(arg, "limit") && i + 2 < args.len() {
            match (parse_i64(&args[i + 1]), parse_i64(&args[i + 2])) {
                (Some(offset), Some(count)) => limit = Some((offset, count)),
                _ => return ctx.error(errors::NOT_INTEGER),
            }
            i += 2;
        // As Redis: BYSCORE/BYLEX and REV are each accepted once.
        } else if allow_by && by == By::Rank && is(arg, "byscore") {
            by = By::Score;
        } else if allow_by && by == By::Rank && is(arg, "bylex") {
            by = By::Lex;
        } else if allow_by && !reverse && is(arg, "rev") {
            reverse = true;
        } else {
            return ctx.error(errors::SYNTAX);
        }
        i += 1;
    }
    let Ok(limit) = limit_for(ctx, limit, by) else {
        return;
    };
    if with_scores && by == By::Lex {
        return ctx.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let Ok(kind) = parse_range(ctx, &args[2], &args[3], by, reverse) else {
        return;
    };
    let query = RangeQuery {
        kind,
        reverse,
        limit,
    };
    let Ok(items) = read_zset(ctx, &args[1], |zset| select(zset, &query)) else {
        return;
    };
    reply_scored(ctx, &items.unwrap_or_default(), with_scores);
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
pub(super) fn zrange(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Rank, false, true);
}

/// `ZREVRANGE key start stop [WITHSCORES]`
pub(super) fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Rank, true, false);
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`
pub(super) fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Score, false, false);
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`
pub(super) fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Score, true, false);
}

/// `ZRANGEBYLEX key min max [LIMIT offset count]`
pub(super) fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Lex, false, false);
}

/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`
pub(super) fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) {
    range_generic(ctx, args, By::Lex, true, false);
}

fn count_generic(ctx: &mut Ctx, args: &[Bytes], by: By) {
    let Ok(kind) = parse_range(ctx, &args[2], &args[3], by, false) else {
        return;
    };
    let query = RangeQuery {
        kind,
        reverse: false,
        limit: None,
    };
    if let Ok(count) = read_zset(ctx, &args[1], |zset| picked_ranks(zset, &query).len()) {
        ctx.out.integer(count.unwrap_or(0) as i64);
    }
}

/// `ZCOUNT key min max`
pub(super) fn zcount(ctx: &mut Ctx, args: &[Bytes]) {
    count_generic(ctx, args, By::Score);
}

/// `ZLEXCOUNT key min max`
pub(super) fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) {
    count_generic(ctx, args, By::Lex);
}

fn remove_range(ctx: &mut Ctx, args: &[Bytes], by: By) {
    let Ok(kind) = parse_range(ctx, &args[2], &args[3], by, false) else {
        return;
    };
    let query = RangeQuery {
        kind,
        reverse: false,
        limit: None,
    };
    let removed = write_zset(ctx, &args[1], false, |zset, _| {
        let doomed = select(zset, &query);
        doomed.iter().for_each(|(m, _)| {
            zset.remove(m);
        });
        doomed.len()
    });
    if let Ok(removed) = removed {
        let removed = removed.unwrap_or(0);
        ctx.dirty(removed as u64);
        if removed > 0 {
            let event = match by {
                By::Rank => "zremrangebyrank",
                By::Score => "zremrangebyscore",
                By::Lex => "zremrangebylex",
            };
            ctx.notify(notify::ZSET, event, &args[1]);
            ctx.notify_del_if_gone(&args[1]);
        }
        ctx.out.integer(removed as i64);
    }
}

/// `ZREMRANGEBYRANK key start stop`
pub(super) fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) {
    remove_range(ctx, args, By::Rank);
}

/// `ZREMRANGEBYSCORE key min max`
pub(super) fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) {
    remove_range(ctx, args, By::Score);
}

/// `ZREMRANGEBYLEX key min max`
pub(super) fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) {
    remove_range(ctx, args, By::Lex);
}

fn pop(ctx: &mut Ctx, args: &[Bytes], highest: bool) {
    let count = match args.get(2) {
        None => None,
        Some(_) if args.len() > 3 => return ctx.error(errors::SYNTAX),
        Some(arg) => match parse_i64(arg) {
            // As Redis's getPositiveLongFromObjectOrReply: one message for both failures.
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.error("ERR value is out of range, must be positive"),
        },
    };
    let popped = write_zset(ctx, &args[1], false, |zset, _| {
        let picked: Scored = if highest {
            zset.iter()
                .rev()
                .take(count.unwrap_or(1))
                .map(|(m, s)| (m.to_vec(), s))
                .collect()
        } else {
            zset.iter()
                .take(count.unwrap_or(1))
                .map(|(m, s)| (m.to_vec(), s))
                .collect()
        };
        picked.iter().for_each(|(m, _)| {
            zset.remove(m);
        });
        picked
    });
    let Ok(popped) = popped else { return };
    let popped = popped.unwrap_or_default();
    ctx.dirty(popped.len() as u64);
    if !popped.is_empty() {
        ctx.notify(notify::ZSET, pop_event(highest), &args[1]);
        ctx.notify_del_if_gone(&args[1]);
    }
    if count.is_none() || ctx.out.protocol() == Protocol::Resp2 {
        ctx.out.array(popped.len() * 2);
        for (member, score) in &popped {
            ctx.out.bulk(member);
            ctx.out.double(*score);
        }
    } else {
        reply_scored(ctx, &popped, true);
    }
}

/// `ZPOPMIN key [count]`
pub(super) fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) {
    pop(ctx, args, false);
}

/// `ZPOPMAX key [count]`
pub(super) fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) {
    pop(ctx, args, true);
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
pub(super) fn zscan(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(scan) = scan_args::<ZsetValue>(ctx, &args[1], &args[2], &args[3..]) else {
        return;
    };
    let found = read_zset(ctx, &args[1], |zset| {
        scan.collect(|cursor, found| {
            zset.scan(cursor, |member, score| {
                if scan.matches(member) {
                    found.push((member.to_vec(), score));
                }
            })
        })
    });
    let Ok(found) = found else { return };
    let (cursor, found) = found.unwrap_or((0, Vec::new()));
    ctx.out.array(2);
    ctx.out.bulk(cursor.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (member, score) in &found {
        ctx.out.bulk(member);
        ctx.out.double(*score);
    }
}

/// One input of ZUNION/ZINTER/ZDIFF: members with scores (a plain set counts as score 1).
fn input_members(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Scored>, Replied> {
    let members = match ctx.lookup_read(key, |value| match value {
        Value::Zset(zset) => Ok(zset.iter().map(|(m, s)| (m.to_vec(), s)).collect()),
        Value::Set(set) => Ok(set.members().into_iter().map(|m| (m, 1.0)).collect()),
        _ => Err(Replied),
    }) {
        None => Ok(None),
        Some(found) => found.map(Some),
    };
    if members.is_err() {
        ctx.error(errors::WRONGTYPE);
    }
    members
}

#[derive(Clone, Copy, PartialEq)]
enum Combine {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(op: Aggregate, a: f64, b: f64) -> f64 {
    let value = match op {
        Aggregate::Sum => a + b,
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    };
    if value.is_nan() { 0.0 } else { value }
}

/// Parses `numkeys key... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]` and computes the result.
fn combine_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    first: usize,
    op: Combine,
    store: bool,
) -> Result<(Scored, bool), Replied> {
    let name = args[0].to_ascii_lowercase();
    let name = String::from_utf8_lossy(&name);
    let numkeys = ctx.int_arg(&args[first])?;
    if numkeys < 1 {
        ctx.error(&format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
        return Err(Replied);
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - first - 1 {
        ctx.error(errors::SYNTAX);
        return Err(Replied);
    }
    let keys = &args[first + 1..first + 1 + numkeys];
    // As Redis: the inputs' types are checked before the options are parsed.
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys {
        inputs.push(input_members(ctx, key)?.unwrap_or_default());
    }
    let mut weights = vec![1.0; numkeys];
    let mut how = Aggregate::Sum;
    let mut with_scores = false;
    let mut i = first + 1 + numkeys;
    while i < args.len() {
        let rest = args.len() - i - 1;
        if is(&args[i], "weights") && op != Combine::Diff && rest >= numkeys {
            for (slot, arg) in weights.iter_mut().zip(&args[i + 1..i + 1 + numkeys]) {
                match score_arg(arg) {
                    Some(w) => *slot = w,
                    None => {
                        ctx.error("ERR weight value is not a float");
                        return Err(Replied);
                    }
                }
            }
            i += numkeys;
        } else if is(&args[i], "aggregate") && op != Combine::Diff && rest >= 1 {
            how = if is(&args[i + 1], "sum") {
                Aggregate::Sum
            } else if is(&args[i + 1], "min") {
                Aggregate::Min
            } else if is(&args[i + 1], "max") {
                Aggregate::Max
            } else {
                ctx.error(errors::SYNTAX);
                return Err(Replied);
            };
            i += 1;
        } else if is(&args[i], "withscores") && !store {
            with_scores = true;
        } else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        }
        i += 1;
    }
    let mut result: std::collections::HashMap<Vec<u8>, f64> = std::collections::HashMap::new();
    match op {
        Combine::Union => {
            for (input, weight) in inputs.iter().zip(&weights) {
                for (member, score) in input {
                    let weighted = weighted(*score, *weight);
                    result
                        .entry(member.clone())
                        .and_modify(|s| *s = aggregate(how, *s, weighted))
                        .or_insert(weighted);
                }
            }
        }
        Combine::Inter => {
            let lookups: Vec<std::collections::HashMap<&[u8], f64>> = inputs
                .iter()
                .map(|input| input.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                .collect();
            for (member, score) in &inputs[0] {
                let mut total = weighted(*score, weights[0]);
                let mut everywhere = true;
                for (lookup, weight) in lookups.iter().zip(&weights).skip(1) {
                    match lookup.get(member.as_slice()) {
                        Some(other) => total = aggregate(how, total, weighted(*other, *weight)),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if everywhere {
                    result.insert(member.clone(), total);
                }
            }
        }
        Combine::Diff => {
            let others: std::collections::HashSet<&[u8]> = inputs
                .iter()
                .skip(1)
                .flat_map(|input| input.iter().map(|(m, _)| m.as_slice()))
                .collect();
            for (member, score) in &inputs[0] {
                if !others.contains(member.as_slice()) {
                    result.insert(member.clone(), *score);
                }
            }
        }
    }
    let mut scored: Scored = result.into_iter().collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok((scored, with_scores))
}

/// `weight * score`, where NaN (e.g. 0 * inf) counts as 0 as in Redis.
fn weighted(score: f64, weight: f64) -> f64 {
    let value = score * weight;
    if value.is_nan() { 0.0 } else { value }
}

/// `zpopmin` or `zpopmax`.
pub(super) fn pop_event(highest: bool) -> &'static str {
    if highest { "zpopmax" } else { "zpopmin" }
}

fn store_scored(ctx: &mut Ctx, destination: &[u8], scored: &Scored, event: &str) {
    let now = ctx.server.now_ms;
    let limits = ctx.server.zset_limits();
    if scored.is_empty() {
        if ctx.db().remove(destination).is_some() {
            ctx.dirty(1);
            ctx.notify(notify::GENERIC, "del", destination);
        }
        return ctx.out.integer(0);
    }
    let mut zset = ZsetValue::default();
    for (member, score) in scored {
        zset.insert(member, *score, limits);
    }
    ctx.db()
        .insert(destination, Entry::new(Value::Zset(zset), now));
    ctx.dirty(1);
    ctx.notify(notify::ZSET, event, destination);
    ctx.out.integer(scored.len() as i64);
}

fn combine_command(ctx: &mut Ctx, args: &[Bytes], op: Combine, store: bool) {
    let first = if store { 2 } else { 1 };
    let Ok((scored, with_scores)) = combine_generic(ctx, args, first, op, store) else {
        return;
    };
    if store {
        let event = match op {
            Combine::Union => "zunionstore",
            Combine::Inter => "zinterstore",
            Combine::Diff => "zdiffstore",
        };
        store_scored(ctx, &args[1], &scored, event);
    } else {
        reply_scored(ctx, &scored, with_scores);
    }
}

/// `ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
pub(super) fn zunion(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Union, false);
}

/// `ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`
pub(super) fn zinter(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Inter, false);
}

/// `ZDIFF numkeys key [key ...] [WITHSCORES]`
pub(super) fn zdiff(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Diff, false);
}

/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]`
pub(super) fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Union, true);
}

/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]`
pub(super) fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Inter, true);
}

/// `ZDIFFSTORE destination numkeys key [key ...]`
pub(super) fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) {
    combine_command(ctx, args, Combine::Diff, true);
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`
pub(super) fn zintercard(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(numkeys) = ctx.int_arg(&args[1]) else {
        return;
    };
    if numkeys <= 0 {
        return ctx.error("ERR at least 1 input key is needed for 'zintercard' command");
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 2 {
        return ctx.error(errors::SYNTAX);
    }
    // As Redis: the keys' types before the LIMIT option.
    let mut inputs = Vec::new();
    for key in &args[2..2 + numkeys] {
        match input_members(ctx, key) {
            Ok(members) => inputs.push(members.unwrap_or_default()),
            Err(Replied) => return,
        }
    }
    let Some(limit) = super::limit_option(ctx, &args[2 + numkeys..]) else {
        return;
    };
    let others: Vec<std::collections::HashSet<&[u8]>> = inputs
        .iter()
        .skip(1)
        .map(|i| i.iter().map(|(m, _)| m.as_slice()).collect())
        .collect();
    let count = inputs[0]
        .iter()
        .filter(|(m, _)| others.iter().all(|o| o.contains(m.as_slice())))
        .count();
    ctx.out
        .integer(if limit > 0 { count.min(limit) } else { count } as i64);
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`
pub(super) fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) {
    let (mut by, mut reverse, mut limit) = (By::Rank, false, None);
    let mut i = 5;
    while i < args.len() {
        if by == By::Rank && is(&args[i], "byscore") {
            by = By::Score;
        } else if by == By::Rank && is(&args[i], "bylex") {
            by = By::Lex;
        } else if !reverse && is(&args[i], "rev") {
            reverse = true;
        } else if is(&args[i], "limit") && i + 2 < args.len() {
            match (parse_i64(&args[i + 1]), parse_i64(&args[i + 2])) {
                (Some(offset), Some(count)) => limit = Some((offset, count)),
                _ => return ctx.error(errors::NOT_INTEGER),
            }
            i += 2;
        } else {
            return ctx.error(errors::SYNTAX);
        }
        i += 1;
    }
    let Ok(limit) = limit_for(ctx, limit, by) else {
        return;
    };
    let Ok(kind) = parse_range(ctx, &args[3], &args[4], by, reverse) else {
        return;
    };
    let query = RangeQuery {
        kind,
        reverse,
        limit,
    };
    let Ok(items) = read_zset(ctx, &args[2], |zset| select(zset, &query)) else {
        return;
    };
    store_scored(ctx, &args[1], &items.unwrap_or_default(), "zrangestore");
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`
pub(super) fn zmpop(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(numkeys) = super::numkeys_arg(ctx, &args[1]) else {
        return;
    };
    if numkeys > args.len().saturating_sub(3) {
        return ctx.error(errors::SYNTAX);
    }
    let Some((highest, count)) = mpop_options(ctx, &args[2 + numkeys..]) else {
        return;
    };
    match pop_first_nonempty(ctx, &args[2..2 + numkeys], highest, count) {
        Ok(Some((key, popped))) => {
            // As Redis, the log gets the pop that happened, not the search.
            let pop: &[u8] = if highest { b"ZPOPMAX" } else { b"ZPOPMIN" };
            let popped = popped.to_string();
            ctx.propagate_as(vec![aof_command!(pop, &key, popped.as_bytes())]);
        }
        Err(Replied) => {}
        Ok(None) => ctx.out.null_array(),
    }
}

/// ZMPOP's and BZMPOP's `MIN|MAX [COUNT count]` after the keys: (highest first, count).
pub(super) fn mpop_options(ctx: &mut Ctx, options: &[Bytes]) -> Option<(bool, usize)> {
    let highest = match options.first() {
        Some(word) if is(word, "max") => true,
        Some(word) if is(word, "min") => false,
        _ => {
            ctx.error(errors::SYNTAX);
            return None;
        }
    };
    let count = match &options[1..] {
        [] => 1,
        [word, value] if is(word, "count") => match parse_i64(value) {
            Some(n) if n > 0 => n as usize,
            _ => {
                ctx.error("ERR count should be greater than 0");
                return None;
            }
        },
        _ => {
            ctx.error(errors::SYNTAX);
            return None;
        }
    };
    Some((highest, count))
}

/// Pops up to `count` members from the first non-empty sorted set among `keys` (types are
/// checked in order, as far as the search goes) and replies `[key, [[member, score] ...]]`;
/// returns that key, or `None` with nothing replied when every set is empty.
pub(super) fn pop_first_nonempty(
    ctx: &mut Ctx,
    keys: &[Bytes],
    highest: bool,
    count: usize,
) -> Result<Option<(Bytes, usize)>, Replied> {
    if let Some(key) = super::first_ready::<ZsetValue>(ctx, keys)? {
        let popped = write_zset(ctx, key, false, |zset, _| {
            let picked: Scored = if highest {
                zset.iter()
                    .rev()
                    .take(count)
                    .map(|(m, s)| (m.to_vec(), s))
                    .collect()
            } else {
                zset.iter()
                    .take(count)
                    .map(|(m, s)| (m.to_vec(), s))
                    .collect()
            };
            picked.iter().for_each(|(m, _)| {
                zset.remove(m);
            });
            picked
        })?;
        if let Some(items) = popped.filter(|items| !items.is_empty()) {
            ctx.dirty(items.len() as u64);
            ctx.modified_only(vec![key.clone()]);
            ctx.notify(notify::ZSET, pop_event(highest), key);
            ctx.notify_del_if_gone(key);
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(items.len());
            for (member, score) in &items {
                ctx.out.array(2);
                ctx.out.bulk(member);
                ctx.out.double(*score);
            }
            return Ok(Some((key.clone(), items.len())));
        }
    }
    Ok(None)
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`: members picked by rank, each found in O(log n).
pub(super) fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok((count, with_scores)) = super::random_count_args(ctx, args, Some("withscores")) else {
        return;
    };
    let seed = ctx.server.keyspace.next_random();
    let Ok(picked) = read_zset(ctx, &args[1], |zset| {
        let len = zset.len();
        if count.is_some_and(|count| count >= len as i64) {
            // The whole set: one walk, not a lookup per rank.
            return zset
                .iter()
                .map(|(m, s)| (m.to_vec(), s))
                .collect::<Scored>();
        }
        let ranks = match count {
            None if len == 0 => Vec::new(),
            None => vec![(super::seeded(seed)() % len as u64) as usize],
            Some(count) => super::random_picks(
                len,
                count,
                seed,
                |random| Some((random() % len as u64) as usize),
                || (0..len).collect(),
            ),
        };
        ranks
            .into_iter()
            .filter_map(|rank| zset.nth(rank))
            .map(|(member, score)| (member.to_vec(), score))
            .collect::<Scored>()
    }) else {
        return;
    };
    let picked = picked.unwrap_or_default();
    match (count, picked.first()) {
        (None, None) => ctx.out.null(),
        (None, Some((member, _))) => ctx.out.bulk(member),
        (Some(_), _) => reply_scored(ctx, &picked, with_scores),
    }
}
