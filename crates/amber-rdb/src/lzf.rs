//! LZF decompression (Redis compresses strings over 20 bytes with LZF when `rdbcompression yes`).

use crate::error::ErrorKind;

/// Decompresses `input` into exactly `expected_len` bytes.
#[cfg(test)]
pub(crate) fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::new();
    decompress_into(input, expected_len, &mut out)?;
    Ok(out)
}

/// Decompresses `input` into `out` (emptied first), which must come to exactly
/// `expected_len` bytes.
pub(crate) fn decompress_into(
    input: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ErrorKind> {
    let corrupt = |detail: &str| ErrorKind::corrupt("LZF data", detail);
    out.clear();
    out.reserve(expected_len);
    let mut pos = 0;
    while pos < input.len() {
        let control = usize::from(input[pos]);
        pos += 1;
        if control < 32 {
            let run = control + 1;
            let literal = input
                .get(pos..pos + run)
                .ok_or_else(|| corrupt("literal run past the end"))?;
            if out.len() + run > expected_len {
                return Err(corrupt("output longer than declared"));
            }
            out.extend_from_slice(literal);
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
            if distance > out.len() {
                return Err(corrupt("back-reference before the start"));
            }
            if out.len() + len > expected_len {
                return Err(corrupt("output longer than declared"));
            }
            let start = out.len() - distance;
            if distance >= len {
                out.extend_from_within(start..start + len);
            } else {
                // The copy overlaps what it produces: a repeating pattern, byte by byte.
                for i in 0..len {
                    let byte = out[start + i];
                    out.push(byte);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(corrupt("output shorter than declared"));
    }
    Ok(())
}

const HASH_LOG: u32 = 14;
const MAX_LITERAL: usize = 32;
const MAX_OFFSET: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Compresses `input` with LZF; `None` if the result would not be smaller than `max_len`
/// bytes (Redis then stores the string uncompressed).
pub(crate) fn compress(input: &[u8], max_len: usize) -> Option<Vec<u8>> {
    thread_local! {
        // Reused between calls: stale slots are harmless, since every candidate is checked to
        // lie before the current position and to match the next three bytes.
        static TABLE: std::cell::RefCell<Vec<usize>> = std::cell::RefCell::new(vec![0; 1 << HASH_LOG]);
    }
    TABLE.with(|table| compress_with(input, max_len, &mut table.borrow_mut()))
}

fn compress_with(input: &[u8], max_len: usize, table: &mut [usize]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(max_len.min(input.len()));
    let mut literal_start = 0usize;
    let mut pos = 0usize;
    let hash = |p: usize| -> usize {
        let v =
            (u32::from(input[p]) << 16) | (u32::from(input[p + 1]) << 8) | u32::from(input[p + 2]);
        (v.wrapping_mul(2654435761) >> (32 - HASH_LOG)) as usize
    };
    while pos + 2 < input.len() {
        let slot = hash(pos);
        let candidate = table[slot];
        table[slot] = pos + 1; // store +1 so that 0 means "empty"
        let matched = candidate > 0 && {
            let reference = candidate - 1;
            reference < pos
                && pos - reference <= MAX_OFFSET
                && input[reference..reference + 3] == input[pos..pos + 3]
        };
        if !matched {
            pos += 1;
            continue;
        }
        let reference = candidate - 1;
        let mut len = 3;
        let max = (input.len() - pos).min(MAX_REF);
        while len < max && input[reference + len] == input[pos + len] {
            len += 1;
        }
        flush_literals(&mut out, &input[literal_start..pos]);
        let offset = pos - reference - 1;
        let code_len = len - 2;
        if code_len < 7 {
            out.push(((offset >> 8) as u8) | ((code_len as u8) << 5));
        } else {
            out.push(((offset >> 8) as u8) | (7 << 5));
            out.push((code_len - 7) as u8);
        }
        out.push(offset as u8);
        if out.len() >= max_len {
            return None;
        }
        pos += len;
        literal_start = pos;
    }
    flush_literals(&mut out, &input[literal_start..]);
    (out.len() < max_len).then_some(out)
}

fn flush_literals(out: &mut Vec<u8>, literals: &[u8]) {
    for chunk in literals.chunks(MAX_LITERAL) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
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
