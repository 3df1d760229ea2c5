//! LZF decompression (Redis compresses strings over 20 bytes with LZF when `rdbcompression yes`).

use crate::error::ErrorKind;

/// Decompresses `input` into exactly `expected_len` bytes.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, ErrorKind> {
    let corrupt = |detail: &str| ErrorKind::corrupt("LZF data", detail);
    let mut out: Vec<u8> = Vec::with_capacity(expected_len);
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
            for i in 0..len {
                let byte = out[start + i];
                out.push(byte);
            }
        }
    }
    if out.len() != expected_len {
        return Err(corrupt("output shorter than declared"));
    }
    Ok(out)
}
