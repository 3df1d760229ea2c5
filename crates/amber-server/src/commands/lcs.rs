//! `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`: the longest common
//! subsequence of two strings, by the classic dynamic programming table, answered as Redis
//! answers it (the matches listed from the end of the strings backwards).

use amber_keyspace::Value;
use bytes::Bytes;

use super::{Ctx, errors, is};

/// Which answer LCS gives.
#[derive(Debug, Default)]
struct Options {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: usize,
}

/// One matching stretch: `(start, end)` in each string, both ends included.
type Match = ((usize, usize), (usize, usize));

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`
pub(super) fn lcs(ctx: &mut Ctx, args: &[Bytes]) {
    let (Some(a), Some(b)) = (
        string_or_empty(ctx, &args[1]),
        string_or_empty(ctx, &args[2]),
    ) else {
        return ctx.error("ERR The specified keys must contain string values");
    };
    let Some(options) = parse_options(ctx, &args[3..]) else {
        return;
    };
    if options.len && options.idx {
        return ctx.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server.settings.proto_max_bulk_len {
        return ctx
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let table = Table::build(&a, &b);
    let length = table.get(a.len(), b.len());
    if options.len {
        return ctx.out.integer(length as i64);
    }
    let (common, matches) = table.walk_back(&a, &b, options.min_match_len);
    if !options.idx {
        return ctx.out.bulk(&common);
    }
    ctx.out.map(2);
    ctx.out.bulk(b"matches");
    ctx.out.array(matches.len());
    for ((a_start, a_end), (b_start, b_end)) in matches {
        ctx.out.array(if options.with_match_len { 3 } else { 2 });
        for (start, end) in [(a_start, a_end), (b_start, b_end)] {
            ctx.out.array(2);
            ctx.out.integer(start as i64);
            ctx.out.integer(end as i64);
        }
        if options.with_match_len {
            ctx.out.integer((a_end - a_start + 1) as i64);
        }
    }
    ctx.out.bulk(b"len");
    ctx.out.integer(length as i64);
}

/// The string under `key`, empty if missing, `None` if another type (no expiry side effects
/// beyond a normal read).
fn string_or_empty(ctx: &mut Ctx, key: &[u8]) -> Option<Vec<u8>> {
    ctx.lookup_read(key, |value| match value {
        Value::Str(value) => Some(value.as_bytes().into_owned()),
        _ => None,
    })
    .unwrap_or(Some(Vec::new()))
}

fn parse_options(ctx: &mut Ctx, args: &[Bytes]) -> Option<Options> {
    let mut options = Options::default();
    let mut rest = args.iter();
    while let Some(word) = rest.next() {
        if is(word, "idx") {
            options.idx = true;
        } else if is(word, "len") {
            options.len = true;
        } else if is(word, "withmatchlen") {
            options.with_match_len = true;
        } else if is(word, "minmatchlen") && rest.len() > 0 {
            let value = rest.next()?;
            let n = ctx.int_arg(value).ok()?;
            options.min_match_len = usize::try_from(n).unwrap_or(0);
        } else {
            ctx.error(errors::SYNTAX);
            return None;
        }
    }
    Some(options)
}

/// `lengths[i][j]`: the LCS length of `a[..i]` and `b[..j]`, stored row by row.
struct Table {
    lengths: Vec<u32>,
    width: usize,
}

impl Table {
    fn build(a: &[u8], b: &[u8]) -> Table {
        let width = b.len() + 1;
        let mut lengths = vec![0u32; (a.len() + 1) * width];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                lengths[i * width + j] = if a[i - 1] == b[j - 1] {
                    lengths[(i - 1) * width + j - 1] + 1
                } else {
                    lengths[(i - 1) * width + j].max(lengths[i * width + j - 1])
                };
            }
        }
        Table { lengths, width }
    }

    fn get(&self, i: usize, j: usize) -> u32 {
        self.lengths[i * self.width + j]
    }

    /// Walks from the end: the common subsequence, and its contiguous matching stretches of
    /// at least `min_len` bytes, last first.
    fn walk_back(&self, a: &[u8], b: &[u8], min_len: usize) -> (Vec<u8>, Vec<Match>) {
        let mut common = Vec::with_capacity(self.get(a.len(), b.len()) as usize);
        let mut matches = Vec::new();
        let mut current: Option<Match> = None;
        let (mut i, mut j) = (a.len(), b.len());
        let emit = |stretch: Match, matches: &mut Vec<Match>| {
            let len = stretch.0.1 - stretch.0.0 + 1;
            if min_len == 0 || len >= min_len {
                matches.push(stretch);
            }
        };
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                common.push(a[i - 1]);
                let stretch = match current {
                    // Contiguous with the stretch found so far: extend it backwards.
                    Some(((a_start, a_end), (b_start, b_end))) if a_start == i && b_start == j => {
                        ((i - 1, a_end), (j - 1, b_end))
                    }
                    _ => ((i - 1, i - 1), (j - 1, j - 1)),
                };
                i -= 1;
                j -= 1;
                if i == 0 || j == 0 {
                    emit(stretch, &mut matches);
                    current = None;
                } else {
                    current = Some(stretch);
                }
            } else {
                if self.get(i - 1, j) > self.get(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                if let Some(stretch) = current.take() {
                    emit(stretch, &mut matches);
                }
            }
        }
        common.reverse();
        (common, matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_redis_documented_example() {
        let a = b"ohmytext";
        let b = b"mynewtext";
        let table = Table::build(a, b);
        assert_eq!(table.get(a.len(), b.len()), 6);
        let (common, matches) = table.walk_back(a, b, 0);
        assert_eq!(common, b"mytext");
        assert_eq!(matches, vec![((4, 7), (5, 8)), ((2, 3), (0, 1))]);
        let (_, long_only) = table.walk_back(a, b, 4);
        assert_eq!(long_only, vec![((4, 7), (5, 8))]);
    }
}
