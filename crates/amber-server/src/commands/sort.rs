//! `SORT` and `SORT_RO`: the elements of a list, set or sorted set, sorted numerically or
//! lexicographically, optionally by the values of other keys (`BY`), with other keys' values
//! fetched for each (`GET`), limited and stored, as Redis 7.0 does it.

use std::cmp::Ordering;

use amber_keyspace::{Entry, ListValue, Value};
use bytes::Bytes;

use super::{Ctx, errors, is};

/// The parsed options.
#[derive(Default)]
struct Options {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<Bytes>,
    by: Option<Bytes>,
    gets: Vec<Bytes>,
}

/// One element to sort, with what it sorts by.
struct Item {
    element: Vec<u8>,
    score: f64,
    /// The `BY` value for an alphabetic sort (`None`: the key was missing).
    by_value: Option<Vec<u8>>,
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE dst]`
pub(super) fn sort(ctx: &mut Ctx, args: &[Bytes]) {
    sort_generic(ctx, args, false);
}

/// `SORT_RO key ...`: SORT without STORE.
pub(super) fn sort_ro(ctx: &mut Ctx, args: &[Bytes]) {
    sort_generic(ctx, args, true);
}

fn parse_options(ctx: &mut Ctx, args: &[Bytes], read_only: bool) -> Option<Options> {
    let mut options = Options::default();
    let mut index = 2;
    while index < args.len() {
        let word = &args[index];
        let left = args.len() - index - 1;
        if is(word, "asc") {
            options.desc = false;
        } else if is(word, "desc") {
            options.desc = true;
        } else if is(word, "alpha") {
            options.alpha = true;
        } else if is(word, "limit") && left >= 2 {
            let start = ctx.int_arg(&args[index + 1]).ok()?;
            let count = ctx.int_arg(&args[index + 2]).ok()?;
            options.limit = Some((start, count));
            index += 2;
        } else if !read_only && is(word, "store") && left >= 1 {
            options.store = Some(args[index + 1].clone());
            index += 1;
        } else if is(word, "by") && left >= 1 {
            options.by = Some(args[index + 1].clone());
            index += 1;
        } else if is(word, "get") && left >= 1 {
            options.gets.push(args[index + 1].clone());
            index += 1;
        } else {
            ctx.error(errors::SYNTAX);
            return None;
        }
        index += 1;
    }
    Some(options)
}

/// The elements of the key to sort, in its own order (`None`: WRONGTYPE replied); a sorted
/// set comes in score order.
fn elements(ctx: &mut Ctx, key: &[u8]) -> Option<(Vec<Vec<u8>>, Kind)> {
    let found = ctx.lookup_read(key, |value| match value {
        Value::List(list) => Some((list.iter().map(|e| e.to_vec()).collect(), Kind::List)),
        Value::Set(set) => {
            let mut members = Vec::with_capacity(set.len());
            set.for_each_member(|member| members.push(member.to_vec()));
            Some((members, Kind::Set))
        }
        Value::Zset(zset) => Some((zset.iter().map(|(m, _)| m.to_vec()).collect(), Kind::Zset)),
        _ => None,
    });
    match found {
        None => Some((Vec::new(), Kind::List)),
        Some(Some(found)) => Some(found),
        Some(None) => {
            ctx.error(errors::WRONGTYPE);
            None
        }
    }
}

/// The type of the sorted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Set,
    Zset,
}

fn sort_generic(ctx: &mut Ctx, args: &[Bytes], read_only: bool) {
    let Some(mut options) = parse_options(ctx, args, read_only) else {
        return;
    };
    let Some((mut elements, kind)) = elements(ctx, &args[1]) else {
        return;
    };
    let mut dont_sort = options.by.as_ref().is_some_and(|by| !by.contains(&b'*'));
    if dont_sort && kind == Kind::Set && (options.store.is_some() || ctx.client.in_script) {
        // A set has no order of its own: what is stored, or given to a script, is sorted so
        // that it is deterministic.
        dont_sort = false;
        options.alpha = true;
        options.by = None;
    }
    let len = elements.len() as i64;
    let (limit_start, limit_count) = options.limit.unwrap_or((0, -1));
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);
    let range = |start: i64, end: i64| {
        if end >= start {
            start as usize..end as usize + 1
        } else {
            0..0
        }
    };
    let picked: Vec<Vec<u8>> = if dont_sort {
        if options.desc && kind != Kind::Set {
            elements.reverse();
        }
        elements.drain(range(start, end)).collect()
    } else {
        let Some(mut items) = sort_keys(ctx, elements, &options) else {
            return ctx.error("ERR One or more scores can't be converted into double");
        };
        let alpha = options.alpha;
        let by_pattern = options.by.is_some();
        items.sort_by(|a, b| {
            let order = compare(a, b, alpha, by_pattern);
            if options.desc { order.reverse() } else { order }
        });
        items
            .drain(range(start, end))
            .map(|item| item.element)
            .collect()
    };
    let output: Vec<Option<Vec<u8>>> = if options.gets.is_empty() {
        picked.into_iter().map(Some).collect()
    } else {
        let mut output = Vec::with_capacity(picked.len() * options.gets.len());
        for element in &picked {
            for pattern in &options.gets {
                output.push(lookup_by_pattern(ctx, pattern, element));
            }
        }
        output
    };
    match options.store {
        None => {
            ctx.out.array(output.len());
            for value in &output {
                match value {
                    Some(bytes) => ctx.out.bulk(bytes),
                    None => ctx.out.null(),
                }
            }
        }
        Some(destination) => store(ctx, &destination, output),
    }
}

/// Computes what each element sorts by; `None` when a numeric sort meets a value that is not
/// a number.
fn sort_keys(ctx: &mut Ctx, elements: Vec<Vec<u8>>, options: &Options) -> Option<Vec<Item>> {
    let mut items = Vec::with_capacity(elements.len());
    let mut not_a_number = false;
    for element in elements {
        let mut item = Item {
            element,
            score: 0.0,
            by_value: None,
        };
        match &options.by {
            // Without BY, an element sorts by itself: alphabetically by its bytes (see
            // `compare`), or by its value as a number.
            None if options.alpha => {}
            None => match parse_score(&item.element) {
                Some(score) => item.score = score,
                None => not_a_number = true,
            },
            Some(pattern) => match lookup_by_pattern(ctx, pattern, &item.element) {
                None => {}
                Some(value) if options.alpha => item.by_value = Some(value),
                Some(value) => match parse_score(&value) {
                    Some(score) => item.score = score,
                    None => not_a_number = true,
                },
            },
        }
        items.push(item);
    }
    (!not_a_number).then_some(items)
}

/// A number as C's `strtod` reads the whole of it (leading spaces allowed), NaN refused.
fn parse_score(value: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(value).ok()?.trim_start();
    let score: f64 = text.parse().ok()?;
    (!score.is_nan()).then_some(score)
}

/// Redis's order: numbers (ties broken by the elements' bytes), or bytes of the elements or
/// of their `BY` values (a missing `BY` value first).
fn compare(a: &Item, b: &Item, alpha: bool, by_pattern: bool) -> Ordering {
    if !alpha {
        return a
            .score
            .partial_cmp(&b.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.element.cmp(&b.element));
    }
    if by_pattern {
        match (&a.by_value, &b.by_value) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        }
    } else {
        a.element.cmp(&b.element)
    }
}

/// The value `pattern` names for `element`: `#` is the element itself; the first `*` is
/// replaced by it, and `key->field` reads a hash field. Missing keys, other types and
/// patterns without `*` give `None`.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let (suffix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(arrow) if arrow + 2 < after.len() => (&after[..arrow], Some(&after[arrow + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + suffix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(suffix);
    ctx.lookup_read(&key, |value| match (value, field) {
        (Value::Hash(hash), Some(field)) => hash.get(field).map(<[u8]>::to_vec),
        (Value::Str(string), None) => Some(string.as_bytes().into_owned()),
        _ => None,
    })
    .flatten()
}

/// `STORE destination`: the result as a list (missing values as empty strings), or the key
/// deleted when there is none; replies the number of elements.
fn store(ctx: &mut Ctx, destination: &[u8], output: Vec<Option<Vec<u8>>>) {
    let count = output.len();
    let now = ctx.server.now_ms;
    if count > 0 {
        let mut list = ListValue::default();
        let limits = ctx.server.list_limits();
        list.extend_back(
            output.iter().map(|value| value.as_deref().unwrap_or(b"")),
            limits,
        );
        ctx.db()
            .insert(destination, Entry::new(Value::List(list), now));
        ctx.dirty(count as u64);
        ctx.notify(crate::notify::LIST, "sortstore", destination);
    } else if ctx.db().exists(destination, now) {
        ctx.db().remove(destination);
        ctx.dirty(1);
        ctx.notify(crate::notify::GENERIC, "del", destination);
    }
    ctx.modified_only(vec![Bytes::copy_from_slice(destination)]);
    ctx.out.integer(count as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_as_strtod_reads_them() {
        assert_eq!(parse_score(b" 1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"1e3"), Some(1000.0));
        assert_eq!(parse_score(b"1.5 "), None);
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b"abc"), None);
    }

    #[test]
    fn numeric_ties_break_on_the_element() {
        let item = |element: &[u8], score| Item {
            element: element.to_vec(),
            score,
            by_value: None,
        };
        assert_eq!(
            compare(&item(b"b", 1.0), &item(b"a", 1.0), false, false),
            Ordering::Greater
        );
        assert_eq!(
            compare(&item(b"b", 1.0), &item(b"a", 2.0), false, false),
            Ordering::Less
        );
    }
}
