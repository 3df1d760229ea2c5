//! Parsing of stream ids and of the XADD/XTRIM trimming options, with Redis's error texts.

use amber_keyspace::{StreamId, Trim};
use bytes::Bytes;

use super::INVALID_ID;
use crate::commands::{Ctx, errors, is};

/// The id argument of XADD.
#[derive(Debug, Clone, Copy)]
pub(super) enum IdArg {
    /// `*`: generated from the clock.
    Auto,
    /// `ms-*`: the sequence is generated.
    Ms(u64),
    /// A full id.
    Exact(StreamId),
}

/// How XADD or XTRIM trims.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TrimArgs {
    /// The strategy, if any.
    pub trim: Option<Trim>,
    /// `~`: only whole nodes.
    pub approx: bool,
    /// Most entries removed (0: no limit).
    pub limit: u64,
    /// Index of the threshold argument (rewritten for approximate trims).
    pub arg_at: usize,
}

/// What else XADD takes.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddArgs {
    /// The id argument.
    pub id: IdArg,
    /// Its index.
    pub id_at: usize,
    /// `NOMKSTREAM`.
    pub no_mkstream: bool,
}

/// Parses `ms-seq`, `ms` (the sequence then is `missing_seq`), and with `allow` set `-`, `+`
/// and `ms-*` (`Ok(None)` seq): Redis's `streamGenericParseIDOrReply`.
fn parse(
    arg: &[u8],
    missing_seq: u64,
    plus_minus: bool,
    seq_star: bool,
) -> Option<(u64, Option<u64>)> {
    if arg.len() > 127 {
        return None;
    }
    match arg {
        b"-" if plus_minus => return Some((0, Some(0))),
        b"+" if plus_minus => return Some((u64::MAX, Some(u64::MAX))),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms)?;
    let seq = match seq {
        None => Some(missing_seq),
        Some(b"*") if seq_star => None,
        Some(seq) => Some(parse_u64(seq)?),
    };
    Some((ms, seq))
}

/// An unsigned decimal as Redis's `string2ull` reads it (no sign, no spaces).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A full id where `-` and `+` are refused (sequence 0 when left out).
pub(super) fn strict_id(arg: &[u8]) -> Option<StreamId> {
    let (ms, seq) = parse(arg, 0, false, false)?;
    Some(StreamId::new(ms, seq?))
}

/// An id where `-` and `+` are allowed; `missing_seq` completes a bare `ms`.
pub(super) fn loose_id(arg: &[u8], missing_seq: u64) -> Option<StreamId> {
    let (ms, seq) = parse(arg, missing_seq, true, false)?;
    Some(StreamId::new(ms, seq?))
}

/// Parses the start of a range: `-`, an id (sequence 0 when left out), or `(id` for an
/// exclusive start. `None` once the error is replied.
pub(super) fn interval_start(ctx: &mut Ctx, arg: &[u8]) -> Option<StreamId> {
    interval(ctx, arg, 0, true)
}

/// Parses the end of a range: `+`, an id (the largest sequence when left out), or `(id`.
pub(super) fn interval_end(ctx: &mut Ctx, arg: &[u8]) -> Option<StreamId> {
    interval(ctx, arg, u64::MAX, false)
}

fn interval(ctx: &mut Ctx, arg: &[u8], missing_seq: u64, start: bool) -> Option<StreamId> {
    let exclusive = arg.len() > 1 && arg[0] == b'(';
    let id = if exclusive {
        parse(&arg[1..], missing_seq, false, false)
            .and_then(|(ms, seq)| Some(StreamId::new(ms, seq?)))
    } else {
        loose_id(arg, missing_seq)
    };
    let Some(id) = id else {
        ctx.error(INVALID_ID);
        return None;
    };
    if !exclusive {
        return Some(id);
    }
    let moved = if start { id.next() } else { id.prev() };
    if moved.is_none() {
        ctx.error(if start {
            "ERR invalid start ID for the interval"
        } else {
            "ERR invalid end ID for the interval"
        });
    }
    moved
}

/// Parses the options of XADD (`xadd`) or XTRIM, as Redis's `streamParseAddOrTrimArgsOrReply`.
/// `loading`: the AOF replays the command, whose trimming is then exact. `None` once an error
/// is replied.
pub(super) fn parse_add_or_trim(
    ctx: &mut Ctx,
    args: &[Bytes],
    xadd: bool,
    loading: bool,
) -> Option<(TrimArgs, AddArgs)> {
    let mut trim = TrimArgs::default();
    let mut add = AddArgs {
        id: IdArg::Auto,
        id_at: 0,
        no_mkstream: false,
    };
    let mut limit: Option<i64> = None;
    let mut i = 2;
    let both = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    while i < args.len() {
        let more = args.len() - 1 - i;
        let option = &args[i];
        if xadd && option.as_ref() == b"*" {
            break;
        } else if (is(option, "maxlen") || is(option, "minid")) && more > 0 {
            if trim.trim.is_some() {
                ctx.error(both);
                return None;
            }
            trim.approx = false;
            let next = args[i + 1].as_ref();
            if more >= 2 && (next == b"~" || next == b"=") {
                trim.approx = next == b"~";
                i += 1;
            }
            let value = &args[i + 1];
            trim.trim = Some(if is(option, "maxlen") {
                let max = ctx.int_arg(value).ok()?;
                if max < 0 {
                    ctx.error("ERR The MAXLEN argument must be >= 0.");
                    return None;
                }
                Trim::MaxLen(max as u64)
            } else {
                let Some(id) = strict_id(value) else {
                    ctx.error(INVALID_ID);
                    return None;
                };
                Trim::MinId(id)
            });
            i += 1;
            trim.arg_at = i;
        } else if is(option, "limit") && more > 0 {
            let value = ctx.int_arg(&args[i + 1]).ok()?;
            if value < 0 {
                ctx.error("ERR The LIMIT argument must be >= 0.");
                return None;
            }
            limit = Some(value);
            i += 1;
        } else if xadd && is(option, "nomkstream") {
            add.no_mkstream = true;
        } else if xadd {
            let Some((ms, seq)) = parse(option, 0, false, true) else {
                ctx.error(INVALID_ID);
                return None;
            };
            add.id = match seq {
                Some(seq) => IdArg::Exact(StreamId::new(ms, seq)),
                None => IdArg::Ms(ms),
            };
            break;
        } else {
            ctx.error(errors::SYNTAX);
            return None;
        }
        i += 1;
    }
    add.id_at = i;
    if limit.is_some_and(|l| l != 0) && trim.trim.is_none() {
        ctx.error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
        return None;
    }
    if !xadd && trim.trim.is_none() {
        ctx.error("ERR syntax error, XTRIM must be called with a trimming strategy");
        return None;
    }
    trim.limit = if loading {
        0
    } else {
        match limit {
            Some(_) if !trim.approx => {
                ctx.error("ERR syntax error, LIMIT cannot be used without the special ~ option");
                return None;
            }
            Some(limit) => limit as u64,
            None if trim.approx => {
                let nodes = ctx.server.encoding_limits().stream.node_max_entries as i64;
                match 100 * nodes {
                    n if n <= 0 => 10_000,
                    n => n.min(1_000_000) as u64,
                }
            }
            None => 0,
        }
    };
    Some((trim, add))
}
