//! LZF decompression (Redis compresses strings over 20 bytes with LZF when `rdbcompression yes`).

use crate::error::ErrorKind;

/// Decompresses `input` into exactly `expected_len` bytes.
#[cfg(test)]
pub(crate) fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::new();
    decompress_into(input, expected_len, &mut out)?;
    Ok(out)
}

/// The most bytes a literal run holds: while there is room, runs are copied as a fixed
/// 32 bytes (inlined moves, not a `memcpy` call per run), what follows overwritten later.
const WIDE_COPY: usize = 32;

/// Decompresses `input` into `out` (emptied first), which must come to exactly
/// `expected_len` bytes.
pub(crate) fn decompress_into(
    input: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ErrorKind> {
    out.clear();
    out.resize(expected_len, 0);
    let produced = decompress_slice(input, expected_len, out);
    out.truncate(produced.as_ref().map_or(0, |&len| len));
    match produced? {
        len if len == expected_len => Ok(()),
        _ => Err(corrupt("output shorter than declared")),
    }
}

fn corrupt(detail: &str) -> ErrorKind {
    ErrorKind::corrupt("LZF data", detail)
}

/// Decompresses into `out` (`expected_len` bytes long); returns the bytes produced.
fn decompress_slice(input: &[u8], expected_len: usize, out: &mut [u8]) -> Result<usize, ErrorKind> {
    let mut op = 0;
    let mut pos = 0;
    while pos < input.len() {
        let control = usize::from(input[pos]);
        pos += 1;
        if control < 32 {
            let run = control + 1;
            if pos + run > input.len() {
                return Err(corrupt("literal run past the end"));
            }
            if op + run > expected_len {
                return Err(corrupt("output longer than declared"));
            }
            if pos + WIDE_COPY <= input.len() && op + WIDE_COPY <= expected_len {
                out[op..op + WIDE_COPY].copy_from_slice(&input[pos..pos + WIDE_COPY]);
            } else {
                out[op..op + run].copy_from_slice(&input[pos..pos + run]);
            }
            op += run;
            pos += run;
        } else {
            let mut len = control >> 5;
            if len == 7 {
                len += usize::from(
                    *input
                        .get(pos)
                        .ok_or_else(|| corrupt("truncated back-reference"))?,
                );
                pos += 1;
            }
            let low = usize::from(
                *input
                    .get(pos)
                    .ok_or_else(|| corrupt("truncated back-reference"))?,
            );
            pos += 1;
            let distance = ((control & 0x1f) << 8) + low + 1;
            let len = len + 2;
            if distance > op {
                return Err(corrupt("back-reference before the start"));
            }
            if op + len > expected_len {
                return Err(corrupt("output longer than declared"));
            }
            copy_match(out, op - distance, op, len);
            op += len;
        }
    }
    Ok(op)
}

/// Copies `len` bytes from `from` to `to` (`from < to`) as LZF means it: byte by byte, so a
/// source that overlaps the copy repeats a pattern.
#[inline(always)]
fn copy_match(out: &mut [u8], from: usize, to: usize, len: usize) {
    let distance = to - from;
    if distance >= 16 && to + len.next_multiple_of(16) <= out.len() {
        // Each 16-byte step reads only bytes already in place.
        let mut done = 0;
        while done < len {
            out.copy_within(from + done..from + done + 16, to + done);
            done += 16;
        }
    } else if distance == 1 {
        let byte = out[from];
        out[to..to + len].fill(byte);
    } else {
        for i in 0..len {
            out[to + i] = out[from + i];
        }
    }
}

/// Bits of the match-finder's hash table (Redis's `HLOG`).
const HASH_LOG: u32 = 16;
const MAX_LITERAL: usize = 32;
const MAX_OFFSET: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Compresses `input` as Redis's `lzf_compress` does (HLOG 16, `VERY_FAST`), so compressed
/// strings, and so `DUMP` payloads and snapshots, are byte for byte Redis's. `None` when the
/// result would not fit in `max_len` bytes (Redis's `out_len`), with Redis's exact bounds.
#[cfg(test)]
pub(crate) fn compress(input: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let mut packed = None;
    with_compressed(input, max_len, |bytes| packed = Some(bytes.to_vec()));
    packed
}

/// Compresses `input` as [`compress`] does into a reused buffer and hands the result to
/// `use_packed`; `false` (and `use_packed` not called) when it does not fit in `max_len`.
pub(crate) fn with_compressed(
    input: &[u8],
    max_len: usize,
    use_packed: impl FnOnce(&[u8]),
) -> bool {
    thread_local! {
        static STATE: std::cell::RefCell<(MatchTable, Vec<u8>)> =
            std::cell::RefCell::new((MatchTable::new(), Vec::new()));
    }
    STATE.with(|state| {
        let (table, out) = &mut *state.borrow_mut();
        if input.len() >= u32::MAX as usize / 2 {
            return false;
        }
        table.start(input.len());
        match compress_with(input, max_len, table, out) {
            Some(len) => {
                use_packed(&out[..len]);
                true
            }
            None => false,
        }
    })
}

/// Redis's hash table of the last position seen for each 3-byte hash. A call's positions are
/// stored offset by `base`, which grows past every earlier call's, so a new call starts with
/// an empty table without clearing it (only when the offsets would overflow).
struct MatchTable {
    /// A fixed-size array, so a hash's slot (masked to [`HASH_LOG`] bits) needs no bounds check.
    slots: Box<[u32; 1 << HASH_LOG]>,
    base: u32,
    len: u32,
}

impl MatchTable {
    fn new() -> MatchTable {
        // Built on the heap: the array is too big for a thread's stack in a debug build. Filled
        // by writing, not allocated zeroed: the fresh zeroed pages of a zeroed allocation are
        // mapped read-only at the first lookup and copied at the first store, each copy a TLB
        // flush across the process's threads, and every save's encoder threads start anew.
        #[allow(clippy::slow_vector_initialization)] // the writing is the point
        let mut slots = Vec::with_capacity(1 << HASH_LOG);
        slots.resize(1 << HASH_LOG, 0);
        MatchTable {
            slots: slots
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the vector has the array's length")),
            base: 1,
            len: 0,
        }
    }

    /// Starts a call on an input of `len` bytes.
    fn start(&mut self, len: usize) {
        let len = len as u32;
        let next = u64::from(self.base) + u64::from(self.len) + 1;
        if next + u64::from(len) >= u64::from(u32::MAX) {
            self.slots.fill(0);
            self.base = 1;
        } else {
            self.base = next as u32;
        }
        self.len = len;
    }

    /// The position stored for `hash` in this call, and stores `pos` in its place.
    fn swap(&mut self, hash: u32, pos: usize) -> Option<usize> {
        let slot = &mut self.slots[slot_of(hash)];
        let old = *slot;
        *slot = self.base + pos as u32;
        (old >= self.base).then(|| (old - self.base) as usize)
    }

    fn set(&mut self, hash: u32, pos: usize) {
        self.slots[slot_of(hash)] = self.base + pos as u32;
    }
}

/// Appends one literal byte to the current run, closing the run (its length byte is reserved
/// before it) once it holds [`MAX_LITERAL`] bytes.
fn push_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, byte: u8) {
    out[*op] = byte;
    *op += 1;
    *lit += 1;
    if *lit == MAX_LITERAL {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

/// How many bytes Redis's match extension takes at `ip` against `reference` (3 already
/// equal): its 16-step unrolled loop first when `max_match > 16`, which may take up to 19
/// bytes even past `max_match`, then byte by byte up to `max_match`.
#[inline(always)] // a call per match costs a sixth of the compressor's time
fn match_length(input: &[u8], reference: usize, ip: usize, max_match: usize) -> usize {
    if max_match > 16 {
        let early = first_difference(input, reference, ip, 3, 19);
        if early < 19 {
            return early;
        }
        return first_difference(input, reference, ip, 19, max_match.max(19)).max(19);
    }
    first_difference(input, reference, ip, 3, max_match).max(3)
}

/// The first offset in `from..to` where the bytes after `a` and `b` differ (`to` if none).
#[inline(always)]
fn first_difference(input: &[u8], a: usize, b: usize, from: usize, to: usize) -> usize {
    let mut at = from;
    while at + 8 <= to {
        let left = u64::from_le_bytes(input[a + at..a + at + 8].try_into().unwrap_or_default());
        let right = u64::from_le_bytes(input[b + at..b + at + 8].try_into().unwrap_or_default());
        if left != right {
            return at + ((left ^ right).trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < to && input[a + at] == input[b + at] {
        at += 1;
    }
    at
}

/// Redis's `IDX` for `VERY_FAST`: `((h >> 8) - h * 5) & (HSIZE - 1)`.
fn slot_of(hash: u32) -> usize {
    ((hash >> (24 - HASH_LOG)).wrapping_sub(hash.wrapping_mul(5)) & ((1 << HASH_LOG) - 1)) as usize
}

fn compress_with(
    input: &[u8],
    max_len: usize,
    table: &mut MatchTable,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let len = input.len();
    if len == 0 || max_len == 0 || len > u32::MAX as usize {
        return None;
    }
    // Every byte is written before it is read: old contents need no clearing. Redis never
    // writes at or past `max_len` (its checks come first), so neither does this.
    if out.len() < max_len {
        out.resize(max_len, 0);
    }
    let out = &mut out[..max_len];
    let mut op = 1usize; // a literal run's length byte is reserved at op - 1
    let mut lit = 0usize;
    let mut ip = 0usize;
    let byte = |at: usize| u32::from(input.get(at).copied().unwrap_or(0));
    // Redis's rolling hash: only its low 24 bits (the three bytes at `ip`) pick a slot.
    let mut hval = (byte(0) << 8) | byte(1);
    while ip + 2 < len {
        hval = (hval << 8) | u32::from(input[ip + 2]);
        let here = hval & 0x00ff_ffff;
        let matched = table.swap(here, ip).filter(|&reference| {
            reference < ip
                && ip - reference - 1 < MAX_OFFSET
                && reference > 0
                && word_at(input, reference).is_some_and(|word| word >> 8 == here)
        });
        let Some(reference) = matched else {
            if op >= max_len {
                return None;
            }
            push_literal(out, &mut op, &mut lit, input[ip]);
            ip += 1;
            continue;
        };
        let offset = ip - reference - 1;
        let max_match = (len - ip - 2).min(MAX_REF);
        if op + 4 >= max_len && op - usize::from(lit == 0) + 4 >= max_len {
            return None;
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= usize::from(lit == 0);
        let matched_len = match_length(input, reference, ip, max_match);
        let code = matched_len - 2;
        if code < 7 {
            out[op] = ((offset >> 8) + (code << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((offset >> 8) + (7 << 5)) as u8;
            out[op + 1] = (code - 7) as u8;
            op += 2;
        }
        out[op] = offset as u8;
        op += 2; // the offset byte, then a new run's length byte
        lit = 0;
        ip += matched_len;
        if ip + 2 >= len {
            break;
        }
        // Redis hashes the match's last two positions before going on; the four bytes from
        // `ip - 2` are in the input (`ip + 2 < len`).
        if let Some(word) = word_at(input, ip - 2) {
            table.set(word >> 8, ip - 2);
            table.set(word & 0x00ff_ffff, ip - 1);
            hval = word & 0xffff;
        }
    }
    if op + 3 > max_len {
        return None;
    }
    while ip < len {
        push_literal(out, &mut op, &mut lit, input[ip]);
        ip += 1;
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    Some(op)
}

/// The four bytes at `at` read big-endian, so `>> 8` is the three-byte number Redis hashes;
/// `None` past the end.
#[inline(always)]
fn word_at(input: &[u8], at: usize) -> Option<u32> {
    let bytes: &[u8; 4] = input.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compresses_repetitive_data() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(20);
        let packed = compress(&data, data.len()).expect("repetitive data compresses");
        assert!(packed.len() < data.len() / 4);
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..3000)) {
            if let Some(packed) = compress(&data, data.len() + 64) {
                prop_assert_eq!(decompress(&packed, data.len()).unwrap(), data);
            }
        }
    }
}
