//! A mutable listpack, byte for byte Redis's: what a stream node is. Readers never index past
//! the buffer: a malformed node reads as ending early, never as a panic.

/// Header bytes: total size (u32) and element count (u16), little endian.
const HEADER: usize = 6;
/// The terminator byte.
const EOF: u8 = 0xff;
/// The element count that means "unknown, count them".
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One listpack element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// Stored as an integer (Redis stores integer-looking strings this way).
    Int(i64),
    /// Stored as bytes.
    Bytes(&'a [u8]),
}

impl Item<'_> {
    /// The element as an integer: integers as they are, strings parsed (0 when not a number).
    pub fn as_int(self) -> i64 {
        match self {
            Item::Int(number) => number,
            Item::Bytes(bytes) => amber_protocol::parse_i64(bytes).unwrap_or(0),
        }
    }

    /// Whether the element spells exactly `bytes`.
    pub fn eq_bytes(self, bytes: &[u8]) -> bool {
        match self {
            Item::Bytes(own) => own == bytes,
            Item::Int(number) => amber_protocol::parse_i64(bytes) == Some(number),
        }
    }

    /// Appends the element's string form to `out`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        match self {
            Item::Bytes(bytes) => out.extend_from_slice(bytes),
            Item::Int(number) => out.extend_from_slice(number.to_string().as_bytes()),
        }
    }
}

/// An empty listpack with room for `capacity` bytes.
pub(super) fn new(capacity: usize) -> Vec<u8> {
    let mut lp = Vec::with_capacity(capacity.max(HEADER + 1));
    lp.extend_from_slice(&((HEADER + 1) as u32).to_le_bytes());
    lp.extend_from_slice(&0u16.to_le_bytes());
    lp.push(EOF);
    lp
}

/// Offset of the first element (the end offset when the listpack is empty).
pub(super) const FIRST: usize = HEADER;

/// Whether `at` is past the last element.
pub(super) fn at_end(lp: &[u8], at: usize) -> bool {
    lp.get(at).is_none_or(|&byte| byte == EOF)
}

/// The element at `at` and the offset of the next one; `None` at the end or on bad bytes.
pub(super) fn get(lp: &[u8], at: usize) -> Option<(Item<'_>, usize)> {
    let (item, body) = decode(lp, at)?;
    Some((item, at + body + backlen_size(body)))
}

/// The integer at `at` and the next offset (0 for a missing or non-numeric element).
pub(super) fn int(lp: &[u8], at: usize) -> (i64, usize) {
    get(lp, at).map_or((0, lp.len()), |(item, next)| (item.as_int(), next))
}

/// The offset after the element at `at`.
pub(super) fn skip(lp: &[u8], at: usize) -> usize {
    get(lp, at).map_or(lp.len(), |(_, next)| next)
}

/// Decodes the element at `at`: the item and the size of its encoding plus data.
fn decode(lp: &[u8], at: usize) -> Option<(Item<'_>, usize)> {
    let first = *lp.get(at)?;
    let bytes = |from: usize, len: usize| lp.get(at + from..at + from + len);
    let le = |from: usize, len: usize| -> Option<u64> {
        let raw = bytes(from, len)?;
        Some(
            raw.iter()
                .rev()
                .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)),
        )
    };
    let sign_extend = |raw: u64, bits: u32| -> i64 { ((raw << (64 - bits)) as i64) >> (64 - bits) };
    Some(match first {
        0x00..=0x7f => (Item::Int(i64::from(first)), 1),
        0x80..=0xbf => {
            let len = usize::from(first & 0x3f);
            (Item::Bytes(bytes(1, len)?), 1 + len)
        }
        0xc0..=0xdf => {
            let raw = (u64::from(first & 0x1f) << 8) | u64::from(*lp.get(at + 1)?);
            (Item::Int(sign_extend(raw, 13)), 2)
        }
        0xe0..=0xef => {
            let len = (usize::from(first & 0x0f) << 8) | usize::from(*lp.get(at + 1)?);
            (Item::Bytes(bytes(2, len)?), 2 + len)
        }
        0xf0 => {
            let len = usize::try_from(le(1, 4)?).ok()?;
            (Item::Bytes(bytes(5, len)?), 5 + len)
        }
        0xf1 => (Item::Int(sign_extend(le(1, 2)?, 16)), 3),
        0xf2 => (Item::Int(sign_extend(le(1, 3)?, 24)), 4),
        0xf3 => (Item::Int(sign_extend(le(1, 4)?, 32)), 5),
        0xf4 => (Item::Int(le(1, 8)? as i64), 9),
        _ => return None,
    })
}

/// Bytes the back-length of an element of `body` bytes takes.
fn backlen_size(body: usize) -> usize {
    match body {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Encodes an integer element (encoding, data and back-length) into `out`.
fn encode_int(out: &mut Vec<u8>, value: i64) {
    let start = out.len();
    if (0..=127).contains(&value) {
        out.push(value as u8);
    } else if (-4096..=4095).contains(&value) {
        let raw = (value as u64) & 0x1fff;
        out.push(0xc0 | (raw >> 8) as u8);
        out.push(raw as u8);
    } else if (-32768..=32767).contains(&value) {
        out.push(0xf1);
        out.extend_from_slice(&(value as i16).to_le_bytes());
    } else if (-8_388_608..=8_388_607).contains(&value) {
        out.push(0xf2);
        out.extend_from_slice(&(value as i32).to_le_bytes()[..3]);
    } else if i32::try_from(value).is_ok() {
        out.push(0xf3);
        out.extend_from_slice(&(value as i32).to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&value.to_le_bytes());
    }
    push_backlen(out, out.len() - start);
}

/// Encodes a string element, as an integer when it spells one (Redis's `lpStringToInt64`).
fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if let Some(value) = canonical_int(bytes) {
        return encode_int(out, value);
    }
    let start = out.len();
    let len = bytes.len();
    if len < 64 {
        out.push(0x80 | len as u8);
    } else if len < 4096 {
        out.push(0xe0 | (len >> 8) as u8);
        out.push(len as u8);
    } else {
        out.push(0xf0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(bytes);
    push_backlen(out, out.len() - start);
}

/// An integer in the only spelling that reads back the same (no sign but `-`, no leading zero).
fn canonical_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    amber_protocol::parse_i64(bytes).filter(|value| value.to_string().as_bytes() == bytes)
}

/// The back-length: the size in 7-bit groups, most significant first, later bytes flagged.
fn push_backlen(out: &mut Vec<u8>, body: usize) {
    let count = backlen_size(body);
    for index in (0..count).rev() {
        let group = ((body >> (7 * index)) & 0x7f) as u8;
        out.push(if index == count - 1 {
            group
        } else {
            group | 0x80
        });
    }
}

/// Appends an integer element.
pub(super) fn push_int(lp: &mut Vec<u8>, value: i64) {
    lp.pop();
    encode_int(lp, value);
    finish_append(lp);
}

/// Appends a string element (stored as an integer when it spells one).
pub(super) fn push_bytes(lp: &mut Vec<u8>, bytes: &[u8]) {
    lp.pop();
    encode_bytes(lp, bytes);
    finish_append(lp);
}

fn finish_append(lp: &mut Vec<u8>) {
    lp.push(EOF);
    let count = u16::from_le_bytes([lp[4], lp[5]]);
    if count != COUNT_UNKNOWN {
        lp[4..6].copy_from_slice(&(count + 1).to_le_bytes());
    }
    set_total(lp);
}

fn set_total(lp: &mut [u8]) {
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
}

/// Replaces the element at `at` with the integer `value`; returns the offset after it.
pub(super) fn replace_int(lp: &mut Vec<u8>, at: usize, value: i64) -> usize {
    let end = skip(lp, at).min(lp.len());
    // Encoded past the end first: the common case (same size, a count going up) then copies
    // it into place without an allocation.
    let tail = lp.len();
    encode_int(lp, value);
    let size = lp.len() - tail;
    if end - at == size {
        lp.copy_within(tail.., at);
        lp.truncate(tail);
    } else {
        let encoded: Vec<u8> = lp.drain(tail..).collect();
        lp.splice(at..end, encoded);
        set_total(lp);
    }
    at + size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_read_back_as_written() {
        let mut lp = new(16);
        let ints = [
            0,
            127,
            128,
            -1,
            -4096,
            4095,
            -4097,
            32767,
            -32769,
            8_388_607,
            -8_388_609,
            i64::from(i32::MAX),
            i64::from(i32::MIN) - 1,
            i64::MAX,
            i64::MIN,
        ];
        for value in ints {
            push_int(&mut lp, value);
        }
        let long = vec![b'x'; 5000];
        for bytes in [&b"abc"[..], b"", &[b'y'; 100], &long, b"007", b"-0", b"12"] {
            push_bytes(&mut lp, bytes);
        }
        let mut at = FIRST;
        for value in ints {
            let (item, next) = get(&lp, at).unwrap();
            assert_eq!(item, Item::Int(value));
            at = next;
        }
        for bytes in [&b"abc"[..], b"", &[b'y'; 100], &long, b"007", b"-0"] {
            let (item, next) = get(&lp, at).unwrap();
            assert_eq!(item, Item::Bytes(bytes));
            at = next;
        }
        assert_eq!(get(&lp, at).unwrap().0, Item::Int(12));
        assert!(at_end(&lp, skip(&lp, at)));
        assert_eq!(
            u32::from_le_bytes(lp[..4].try_into().unwrap()) as usize,
            lp.len()
        );
        assert_eq!(u16::from_le_bytes([lp[4], lp[5]]), 22);
    }

    #[test]
    fn replacing_an_integer_resizes_the_element() {
        let mut lp = new(16);
        push_int(&mut lp, 127);
        push_bytes(&mut lp, b"tail");
        let next = replace_int(&mut lp, FIRST, 128);
        assert_eq!(get(&lp, FIRST).unwrap().0, Item::Int(128));
        assert_eq!(get(&lp, next).unwrap().0, Item::Bytes(b"tail"));
        replace_int(&mut lp, FIRST, 3);
        assert_eq!(get(&lp, FIRST).unwrap(), (Item::Int(3), FIRST + 2));
        assert_eq!(
            u32::from_le_bytes(lp[..4].try_into().unwrap()) as usize,
            lp.len()
        );
    }

    #[test]
    fn truncated_bytes_read_as_the_end() {
        let mut lp = new(16);
        push_bytes(&mut lp, &[b'z'; 300]);
        lp.truncate(100);
        assert!(get(&lp, FIRST).is_none());
        assert_eq!(int(&lp, FIRST).0, 0);
    }
}
