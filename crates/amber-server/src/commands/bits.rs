//! Bit operations on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO. Bit 0 is the most significant bit of the first byte, as in Redis.

use amber_keyspace::{Entry, StrValue, Value};
use amber_protocol::parse_i64;
use bytes::Bytes;

use super::strings::string_entry;
use super::{Ctx, LOADING_CLIENT_ID, Replied, errors, is};

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// Parses a bit offset (with `#N` meaning `N * bits` when `bits` is given, for BITFIELD),
/// refusing offsets past `proto-max-bulk-len` bytes except from the AOF loader.
fn bit_offset(ctx: &mut Ctx, arg: &[u8], bits: Option<u32>) -> Result<u64, Replied> {
    let (digits, multiplier) = match (arg.strip_prefix(b"#"), bits) {
        (Some(rest), Some(bits)) => (rest, i64::from(bits)),
        _ => (arg, 1),
    };
    let offset = parse_i64(digits).and_then(|n| n.checked_mul(multiplier));
    let limit = ctx.server.settings.proto_max_bulk_len;
    let unlimited = ctx.client.id == LOADING_CLIENT_ID;
    match offset {
        Some(n) if n >= 0 && (unlimited || ((n as u64) >> 3) < limit) => Ok(n as u64),
        _ => {
            ctx.error(BAD_OFFSET);
            Err(Replied)
        }
    }
}

/// The string under `key` grown with zeroes so that bit `max_bit` exists (created if
/// missing); `Ok(true)` if it was created or grown.
fn grow_for_bits(ctx: &mut Ctx, key: &[u8], max_bit: u64) -> Result<bool, Replied> {
    let needed = (max_bit >> 3) as usize + 1;
    match string_entry(ctx, key)? {
        Some(value) => {
            let raw = value.make_raw();
            let grown = raw.len() < needed;
            if grown {
                raw.resize(needed, 0);
            }
            Ok(grown)
        }
        None => {
            let now = ctx.server.now_ms;
            let value = Value::Str(StrValue::Raw(vec![0; needed]));
            ctx.db().insert(key, Entry::new(value, now));
            Ok(true)
        }
    }
}

/// The raw bytes of the string under `key` for writing (after [`grow_for_bits`]).
fn bytes_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Option<&'a mut Vec<u8>> {
    let now = ctx.server.now_ms;
    match ctx.db().get_mut(key, now).map(|entry| &mut entry.value) {
        Some(Value::Str(value)) => Some(value.make_raw()),
        _ => None,
    }
}

/// `SETBIT key offset value`
pub(super) fn setbit(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(offset) = bit_offset(ctx, &args[2], None) else {
        return;
    };
    let on = match parse_i64(&args[3]) {
        Some(bit @ (0 | 1)) => bit == 1,
        _ => return ctx.error(BAD_BIT),
    };
    let Ok(grown) = grow_for_bits(ctx, &args[1], offset) else {
        return;
    };
    let Some(bytes) = bytes_mut(ctx, &args[1]) else {
        return;
    };
    let byte = &mut bytes[(offset >> 3) as usize];
    let mask = 0x80u8 >> (offset & 7);
    let was = *byte & mask != 0;
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    if grown || was != on {
        ctx.dirty(1);
        ctx.notify(crate::notify::STRING, "setbit", &args[1]);
    }
    ctx.out.integer(i64::from(was));
}

/// `GETBIT key offset`
pub(super) fn getbit(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(offset) = bit_offset(ctx, &args[2], None) else {
        return;
    };
    let Ok(value) = ctx.read_string(&args[1]) else {
        return;
    };
    let bit = value
        .and_then(|bytes| bytes.get((offset >> 3) as usize).copied())
        .is_some_and(|byte| byte & (0x80 >> (offset & 7)) != 0);
    ctx.out.integer(i64::from(bit));
}

/// A range of bit positions, both ends included.
#[derive(Debug, Clone, Copy)]
struct BitRange {
    first: u64,
    last: u64,
}

/// Turns Redis's `start end [BYTE|BIT]` (negative from the end, clamped) into bit positions
/// of a `len`-byte string; `None` for an empty range.
fn bit_range(len: usize, start: i64, end: i64, in_bits: bool) -> Option<BitRange> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    let resolve = |index: i64| {
        if index < 0 {
            (total + index).max(0)
        } else {
            index
        }
    };
    let start = resolve(start);
    let end = resolve(end).min(total - 1);
    if start > end {
        return None;
    }
    Some(if in_bits {
        BitRange {
            first: start as u64,
            last: end as u64,
        }
    } else {
        BitRange {
            first: start as u64 * 8,
            last: end as u64 * 8 + 7,
        }
    })
}

/// The bits of byte `index` that lie within `range`.
fn range_mask(index: usize, range: BitRange) -> u8 {
    let first_bit = index as u64 * 8;
    let mut mask = 0xffu8;
    if range.first > first_bit {
        let shift = u32::try_from(range.first - first_bit).unwrap_or(u32::MAX);
        mask &= 0xffu8.checked_shr(shift).unwrap_or(0);
    }
    if range.last < first_bit + 7 {
        let shift = u32::try_from(first_bit + 7 - range.last).unwrap_or(u32::MAX);
        mask &= 0xffu8.checked_shl(shift).unwrap_or(0);
    }
    mask
}

/// `BITCOUNT key [start end [BYTE|BIT]]`
pub(super) fn bitcount(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(value) = ctx.read_string(&args[1]) else {
        return;
    };
    let Some(bytes) = value else {
        return ctx.out.integer(0);
    };
    let range = match args.len() {
        2 => bit_range(bytes.len(), 0, -1, false),
        4 | 5 => {
            let Ok(start) = ctx.int_arg(&args[2]) else {
                return;
            };
            let Ok(end) = ctx.int_arg(&args[3]) else {
                return;
            };
            if start < 0 && end < 0 && start > end {
                return ctx.out.integer(0);
            }
            let Ok(in_bits) = unit_option(ctx, args.get(4)) else {
                return;
            };
            bit_range(bytes.len(), start, end, in_bits)
        }
        _ => return ctx.error(errors::SYNTAX),
    };
    let count = range.map_or(0, |range| {
        let (first, last) = ((range.first / 8) as usize, (range.last / 8) as usize);
        (first..=last)
            .map(|index| (bytes[index] & range_mask(index, range)).count_ones() as i64)
            .sum()
    });
    ctx.out.integer(count);
}

/// `BYTE` (false) or `BIT` (true), `BYTE` when absent.
fn unit_option(ctx: &mut Ctx, arg: Option<&Bytes>) -> Result<bool, Replied> {
    match arg {
        None => Ok(false),
        Some(word) if is(word, "byte") => Ok(false),
        Some(word) if is(word, "bit") => Ok(true),
        Some(_) => {
            ctx.error(errors::SYNTAX);
            Err(Replied)
        }
    }
}

/// `BITPOS key bit [start [end [BYTE|BIT]]]`
pub(super) fn bitpos(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(bit) = ctx.int_arg(&args[2]) else {
        return;
    };
    if bit != 0 && bit != 1 {
        return ctx.error("ERR The bit argument must be 1 or 0.");
    }
    let want_one = bit == 1;
    let Ok(value) = ctx.read_string(&args[1]) else {
        return;
    };
    let Some(bytes) = value else {
        return ctx.out.integer(if want_one { -1 } else { 0 });
    };
    if args.len() > 6 {
        return ctx.error(errors::SYNTAX);
    }
    let mut end_given = false;
    let range = if args.len() == 3 {
        bit_range(bytes.len(), 0, -1, false)
    } else {
        let Ok(start) = ctx.int_arg(&args[3]) else {
            return;
        };
        let Ok(in_bits) = unit_option(ctx, args.get(5)) else {
            return;
        };
        let end = match args.get(4) {
            Some(end) => {
                end_given = true;
                let Ok(end) = ctx.int_arg(end) else {
                    return;
                };
                end
            }
            None => -1,
        };
        bit_range(bytes.len(), start, end, in_bits)
    };
    let Some(range) = range else {
        return ctx.out.integer(-1);
    };
    let found = first_bit(&bytes, range, want_one);
    let position = match found {
        Some(position) => position as i64,
        // Past an open-ended range the string reads as zeroes.
        None if !want_one && !end_given => range.last as i64 + 1,
        None => -1,
    };
    ctx.out.integer(position);
}

/// The first bit equal to `one` within `range`.
fn first_bit(bytes: &[u8], range: BitRange, one: bool) -> Option<u64> {
    let (first, last) = ((range.first / 8) as usize, (range.last / 8) as usize);
    (first..=last).find_map(|index| {
        // Looking for a zero is looking for a one in the complement.
        let byte = if one { bytes[index] } else { !bytes[index] };
        let candidates = byte & range_mask(index, range);
        (candidates != 0).then(|| index as u64 * 8 + u64::from(candidates.leading_zeros()))
    })
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`
pub(super) fn bitop(ctx: &mut Ctx, args: &[Bytes]) {
    let operation = &args[1];
    let op = if is(operation, "and") {
        BitOp::And
    } else if is(operation, "or") {
        BitOp::Or
    } else if is(operation, "xor") {
        BitOp::Xor
    } else if is(operation, "not") {
        BitOp::Not
    } else {
        return ctx.error(errors::SYNTAX);
    };
    if op == BitOp::Not && args.len() != 4 {
        return ctx.error("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        match ctx.read_string(key) {
            Ok(value) => sources.push(value.unwrap_or_default()),
            Err(Replied) => return,
        }
    }
    let longest = sources.iter().map(Vec::len).max().unwrap_or(0);
    let destination = &args[2];
    if longest == 0 {
        let now = ctx.server.now_ms;
        if ctx.db().exists(destination, now) {
            ctx.db().remove(destination);
            ctx.dirty(1);
            ctx.notify(crate::notify::GENERIC, "del", destination);
        }
        return ctx.out.integer(0);
    }
    let result: Vec<u8> = (0..longest)
        .map(|index| {
            let byte = |source: &Vec<u8>| source.get(index).copied().unwrap_or(0);
            let mut bytes = sources.iter().map(byte);
            let first = bytes.next().unwrap_or(0);
            match op {
                BitOp::And => bytes.fold(first, |acc, b| acc & b),
                BitOp::Or => bytes.fold(first, |acc, b| acc | b),
                BitOp::Xor => bytes.fold(first, |acc, b| acc ^ b),
                BitOp::Not => !first,
            }
        })
        .collect();
    let now = ctx.server.now_ms;
    ctx.db().insert(
        destination,
        Entry::new(Value::Str(StrValue::Raw(result)), now),
    );
    ctx.dirty(1);
    ctx.notify(crate::notify::STRING, "set", destination);
    ctx.out.integer(longest as i64);
}

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// One BITFIELD operation, parsed.
#[derive(Debug, Clone, Copy)]
struct FieldOp {
    kind: FieldOpKind,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOpKind {
    Get,
    Set,
    IncrBy,
}

/// What BITFIELD does when a SET or INCRBY does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// `BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP|SAT|FAIL] ...`
pub(super) fn bitfield(ctx: &mut Ctx, args: &[Bytes]) {
    bitfield_generic(ctx, args, false);
}

/// `BITFIELD_RO key [GET type offset ...]`
pub(super) fn bitfield_ro(ctx: &mut Ctx, args: &[Bytes]) {
    bitfield_generic(ctx, args, true);
}

fn bitfield_generic(ctx: &mut Ctx, args: &[Bytes], read_only: bool) {
    let Ok(ops) = parse_field_ops(ctx, &args[2..]) else {
        return;
    };
    let writes = ops.iter().any(|op| op.kind != FieldOpKind::Get);
    if !writes {
        let Ok(value) = ctx.read_string(&args[1]) else {
            return;
        };
        let bytes = value.unwrap_or_default();
        ctx.out.array(ops.len());
        for op in &ops {
            ctx.out.integer(read_field(&bytes, op));
        }
        return;
    }
    if read_only {
        return ctx.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let highest = ops
        .iter()
        .filter(|op| op.kind != FieldOpKind::Get)
        .map(|op| op.offset + u64::from(op.bits) - 1)
        .max()
        .unwrap_or(0);
    let Ok(grown) = grow_for_bits(ctx, &args[1], highest) else {
        return;
    };
    let Some(bytes) = bytes_mut(ctx, &args[1]) else {
        return;
    };
    let mut replies = Vec::with_capacity(ops.len());
    let mut changes = 0;
    for op in &ops {
        if op.kind == FieldOpKind::Get {
            replies.push(Some(read_field(bytes, op)));
            continue;
        }
        let old = read_field(bytes, op);
        let wanted = match op.kind {
            FieldOpKind::IncrBy => i128::from(old) + i128::from(op.value),
            _ => i128::from(op.value),
        };
        let Some(new) = fit(wanted, op) else {
            replies.push(None);
            continue;
        };
        write_field(bytes, op, new);
        replies.push(Some(if op.kind == FieldOpKind::Set {
            old
        } else {
            new
        }));
        if grown || old != new {
            changes += 1;
        }
    }
    ctx.dirty(changes);
    if changes > 0 {
        ctx.notify(crate::notify::STRING, "setbit", &args[1]);
    }
    ctx.out.array(replies.len());
    for reply in replies {
        match reply {
            Some(value) => ctx.out.integer(value),
            None => ctx.out.null(),
        }
    }
}

/// Parses the operations in order, with Redis's errors for the first bad one.
fn parse_field_ops(ctx: &mut Ctx, args: &[Bytes]) -> Result<Vec<FieldOp>, Replied> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut index = 0;
    while index < args.len() {
        let word = &args[index];
        let remaining = args.len() - index - 1;
        let kind = if is(word, "get") && remaining >= 2 {
            FieldOpKind::Get
        } else if is(word, "set") && remaining >= 3 {
            FieldOpKind::Set
        } else if is(word, "incrby") && remaining >= 3 {
            FieldOpKind::IncrBy
        } else if is(word, "overflow") && remaining >= 1 {
            let mode = &args[index + 1];
            overflow = if is(mode, "wrap") {
                Overflow::Wrap
            } else if is(mode, "sat") {
                Overflow::Sat
            } else if is(mode, "fail") {
                Overflow::Fail
            } else {
                ctx.error("ERR Invalid OVERFLOW type specified");
                return Err(Replied);
            };
            index += 2;
            continue;
        } else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        };
        let Some((signed, bits)) = field_type(&args[index + 1]) else {
            ctx.error(BAD_TYPE);
            return Err(Replied);
        };
        let offset = bit_offset(ctx, &args[index + 2], Some(bits))?;
        let value = if kind == FieldOpKind::Get {
            0
        } else {
            ctx.int_arg(&args[index + 3])?
        };
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        index += if kind == FieldOpKind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Option<(bool, u32)> {
    let (&sign, digits) = arg.split_first()?;
    let signed = match sign {
        b'i' => true,
        b'u' => false,
        _ => return None,
    };
    let bits = parse_i64(digits)?;
    let max = if signed { 64 } else { 63 };
    (1..=max).contains(&bits).then_some((signed, bits as u32))
}

/// The field's value (bits past the end of the string read as zero).
fn read_field(bytes: &[u8], op: &FieldOp) -> i64 {
    let mut raw: u64 = 0;
    for i in 0..u64::from(op.bits) {
        let position = op.offset + i;
        let bit = bytes
            .get((position >> 3) as usize)
            .is_some_and(|byte| byte & (0x80 >> (position & 7)) != 0);
        raw = (raw << 1) | u64::from(bit);
    }
    if op.signed && op.bits < 64 && raw >> (op.bits - 1) & 1 == 1 {
        // Sign-extend.
        (raw | (u64::MAX << op.bits)) as i64
    } else {
        raw as i64
    }
}

/// Writes the low `bits` bits of `value` at the field's offset.
fn write_field(bytes: &mut [u8], op: &FieldOp, value: i64) {
    let value = value as u64;
    for i in 0..u64::from(op.bits) {
        let position = op.offset + i;
        let bit = value >> (u64::from(op.bits) - 1 - i) & 1 == 1;
        if let Some(byte) = bytes.get_mut((position >> 3) as usize) {
            let mask = 0x80u8 >> (position & 7);
            if bit {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

/// The value stored for `wanted` under the field's overflow rule, `None` to fail.
fn fit(wanted: i128, op: &FieldOp) -> Option<i64> {
    let bits = op.bits;
    let (min, max) = if op.signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if (min..=max).contains(&wanted) {
        return Some(wanted as i64);
    }
    match op.overflow {
        Overflow::Fail => None,
        Overflow::Sat => Some(wanted.clamp(min, max) as i64),
        Overflow::Wrap => {
            let modulus = 1i128 << bits;
            let mut wrapped = wanted.rem_euclid(modulus);
            if op.signed && wrapped > max {
                wrapped -= modulus;
            }
            Some(wrapped as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(signed: bool, bits: u32, overflow: Overflow) -> FieldOp {
        FieldOp {
            kind: FieldOpKind::IncrBy,
            signed,
            bits,
            offset: 0,
            value: 0,
            overflow,
        }
    }

    #[test]
    fn overflow_rules_match_redis() {
        assert_eq!(fit(128, &op(true, 8, Overflow::Wrap)), Some(-128));
        assert_eq!(fit(128, &op(true, 8, Overflow::Sat)), Some(127));
        assert_eq!(fit(-129, &op(true, 8, Overflow::Sat)), Some(-128));
        assert_eq!(fit(256, &op(false, 8, Overflow::Wrap)), Some(0));
        assert_eq!(fit(-1, &op(false, 8, Overflow::Wrap)), Some(255));
        assert_eq!(fit(-1, &op(false, 8, Overflow::Fail)), None);
        assert_eq!(
            fit(i128::from(i64::MAX) + 1, &op(true, 64, Overflow::Wrap)),
            Some(i64::MIN)
        );
    }

    #[test]
    fn fields_round_trip_across_bytes() {
        let mut bytes = vec![0u8; 3];
        let field = FieldOp {
            kind: FieldOpKind::Set,
            signed: true,
            bits: 12,
            offset: 5,
            value: 0,
            overflow: Overflow::Wrap,
        };
        write_field(&mut bytes, &field, -1000);
        assert_eq!(read_field(&bytes, &field), -1000);
    }

    #[test]
    fn first_bit_respects_range_edges() {
        let bytes = [0b0000_0000, 0b0001_0000];
        let range = BitRange { first: 0, last: 15 };
        assert_eq!(first_bit(&bytes, range, true), Some(11));
        assert_eq!(first_bit(&[0xff, 0xf0], range, false), Some(12));
        let narrow = BitRange {
            first: 12,
            last: 15,
        };
        assert_eq!(first_bit(&bytes, narrow, true), None);
    }
}
