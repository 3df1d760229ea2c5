//! The sparse encoding: run-length opcodes after the header.
//!
//! - `00xxxxxx` ZERO: 1 to 64 registers set to 0;
//! - `01xxxxxx yyyyyyyy` XZERO: 1 to 16384 registers set to 0;
//! - `1vvvvvxx` VAL: 1 to 4 registers set to a value from 1 to 32.
//!
//! Updates split and merge opcodes exactly as Redis 7.0 does, so the same additions leave
//! the same bytes.

use crate::{HDR_SIZE, HllError, REGISTERS, dense};

/// The longest run of a VAL opcode.
const VAL_MAX_LEN: usize = 4;
/// The highest value a VAL opcode holds.
pub(crate) const VAL_MAX_VALUE: u8 = 32;
/// The longest run of a ZERO opcode.
const ZERO_MAX_LEN: usize = 64;
/// The longest run of an XZERO opcode.
pub(crate) const XZERO_MAX_LEN: usize = 16384;

/// One decoded opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A run of zero registers in one byte.
    Zero(usize),
    /// A run of zero registers in two bytes.
    XZero(usize),
    /// A run of registers holding `value`.
    Val { value: u8, len: usize },
}

impl Op {
    /// How many registers the opcode covers.
    pub(crate) fn span(self) -> usize {
        match self {
            Op::Zero(len) | Op::XZero(len) | Op::Val { len, .. } => len,
        }
    }

    /// How many bytes the opcode takes.
    fn size(self) -> usize {
        if matches!(self, Op::XZero(_)) { 2 } else { 1 }
    }
}

/// The opcode at `p`. A two-byte opcode cut short reads its missing byte as 0, as Redis's
/// reads the string's terminator.
pub(crate) fn op_at(bytes: &[u8], p: usize) -> Op {
    let b = bytes[p];
    if b & 0x80 != 0 {
        Op::Val {
            value: ((b >> 2) & 0x1f) + 1,
            len: usize::from(b & 0x3) + 1,
        }
    } else if b & 0x40 != 0 {
        let low = bytes.get(p + 1).copied().unwrap_or(0);
        Op::XZero(((usize::from(b & 0x3f) << 8) | usize::from(low)) + 1)
    } else {
        Op::Zero(usize::from(b & 0x3f) + 1)
    }
}

/// The opcodes of a sparse value, in order.
pub(crate) fn ops(hll: &[u8]) -> impl Iterator<Item = Op> + '_ {
    let mut p = HDR_SIZE;
    std::iter::from_fn(move || {
        if p >= hll.len() {
            return None;
        }
        let op = op_at(hll, p);
        p += op.size();
        Some(op)
    })
}

fn val_byte(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len - 1) as u8
}

/// Appends a run of `len` zero registers as one ZERO or XZERO opcode.
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        seq.push(0x40 | (l >> 8) as u8);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push((len - 1) as u8);
    }
}

/// A new, empty sparse value's opcodes: XZERO runs covering every register.
pub(crate) fn empty_ops() -> Vec<u8> {
    let mut ops = Vec::with_capacity(2 * REGISTERS.div_ceil(XZERO_MAX_LEN));
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_zeros(&mut ops, run);
        left -= run;
    }
    ops
}

/// Adds how many registers hold each value to `histogram`; false if the opcodes do not
/// cover exactly 16384 registers.
pub(crate) fn histogram(hll: &[u8], histogram: &mut [u32; 64]) -> bool {
    let mut index = 0;
    for op in ops(hll) {
        let value = match op {
            Op::Zero(_) | Op::XZero(_) => 0,
            Op::Val { value, .. } => value,
        };
        histogram[usize::from(value)] += op.span() as u32;
        index += op.span();
    }
    index == REGISTERS
}

/// Calls `visit(index, value)` for each register a VAL opcode sets; `Corrupt` if the
/// opcodes overflow or do not cover all registers.
pub(crate) fn for_each_set(hll: &[u8], mut visit: impl FnMut(usize, u8)) -> Result<(), HllError> {
    let mut index = 0;
    for op in ops(hll) {
        if let Op::Val { value, len } = op {
            if index + len > REGISTERS {
                return Err(HllError::Corrupt);
            }
            for i in index..index + len {
                visit(i, value);
            }
        }
        index += op.span();
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(HllError::Corrupt)
    }
}

/// The dense form of a sparse value: the same header (cached cardinality included) with the
/// encoding byte set to dense.
pub(crate) fn to_dense(hll: &[u8]) -> Result<Vec<u8>, HllError> {
    let mut out = vec![0u8; crate::DENSE_SIZE];
    out[..HDR_SIZE].copy_from_slice(&hll[..HDR_SIZE]);
    out[4] = crate::DENSE;
    let registers = &mut out[HDR_SIZE..];
    for_each_set(hll, |index, value| dense::set(registers, index, value))?;
    Ok(out)
}

/// What setting a sparse register did.
pub(crate) enum SetOutcome {
    /// The register already held at least that value.
    Unchanged,
    /// The register was raised in the sparse form.
    Raised,
    /// The value must become dense first (a value above 32, or the sparse form would grow
    /// past the limit).
    Promote,
}

/// Raises register `index` of the sparse `hll` to `count`, splitting and merging opcodes as
/// Redis does. `max_bytes` is `hll-sparse-max-bytes`.
pub(crate) fn raise(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<SetOutcome, HllError> {
    if count > VAL_MAX_VALUE {
        return Ok(SetOutcome::Promote);
    }
    // Step 1: find the opcode covering `index`.
    let mut p = HDR_SIZE;
    let mut first = 0usize;
    let mut prev = None;
    let mut found = None;
    while p < hll.len() {
        let op = op_at(hll, p);
        if index < first + op.span() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.size();
        first += op.span();
    }
    let Some(op) = found else {
        return Err(HllError::Corrupt);
    };
    // Step 2: the trivial in-place cases.
    match op {
        Op::Val { value, .. } if value >= count => return Ok(SetOutcome::Unchanged),
        Op::Val { len: 1, .. } | Op::Zero(1) => {
            hll[p] = val_byte(count, 1);
            merge_adjacent(hll, prev.unwrap_or(HDR_SIZE));
            return Ok(SetOutcome::Raised);
        }
        _ => {}
    }
    // Step 3: split the opcode into up to three.
    let last = first + op.span() - 1;
    let mut seq = Vec::with_capacity(5);
    match op {
        Op::Val { value, .. } => {
            if index != first {
                seq.push(val_byte(value, index - first));
            }
            seq.push(val_byte(count, 1));
            if index != last {
                seq.push(val_byte(value, last - index));
            }
        }
        Op::Zero(_) | Op::XZero(_) => {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
    }
    let old_end = (p + op.size()).min(hll.len());
    let grows_by = seq.len().saturating_sub(old_end - p);
    if grows_by > 0 && hll.len() + grows_by > max_bytes {
        return Ok(SetOutcome::Promote);
    }
    hll.splice(p..old_end, seq);
    // Step 4: merge equal VAL opcodes next to the change.
    merge_adjacent(hll, prev.unwrap_or(HDR_SIZE));
    Ok(SetOutcome::Raised)
}

/// Merges adjacent VAL opcodes of equal value, scanning up to five opcodes from `start`.
fn merge_adjacent(hll: &mut Vec<u8>, start: usize) {
    let mut p = start;
    let mut scans = 5;
    while p < hll.len() && scans > 0 {
        scans -= 1;
        match op_at(hll, p) {
            Op::XZero(_) => p += 2,
            Op::Zero(_) => p += 1,
            Op::Val { value, len } => {
                if p + 1 < hll.len()
                    && let Op::Val {
                        value: next_value,
                        len: next_len,
                    } = op_at(hll, p + 1)
                    && next_value == value
                    && len + next_len <= VAL_MAX_LEN
                {
                    hll[p + 1] = val_byte(value, len + next_len);
                    hll.remove(p);
                    continue;
                }
                p += 1;
            }
        }
    }
}
