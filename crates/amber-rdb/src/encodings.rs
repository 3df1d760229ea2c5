//! Decoders for the compact blobs Redis stores inside RDB strings: ziplist, listpack, intset
//! and zipmap. Every length is checked against the blob, so corrupt input is an error, never a
//! panic or an out-of-bounds read. Integers come back in their decimal string form.

use crate::error::ErrorKind;

pub(crate) fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

pub(crate) fn sign_extend(value: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((value << shift) as i64) >> shift
}

struct Cursor<'a> {
    blob: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.blob.len());
        let Some(end) = end else {
            return Err(ErrorKind::corrupt(
                self.what,
                format!("entry at {} runs past the end", self.pos),
            ));
        };
        let slice = &self.blob[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, ErrorKind> {
        Ok(self.take(1)?[0])
    }
}

/// One element of a compact encoding: bytes, or an integer the encoding stored as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    /// A byte string.
    Bytes(&'a [u8]),
    /// An integer (Redis replies it in decimal).
    Int(i64),
}

/// Room for an `i64` in decimal.
pub type IntText = [u8; 20];

impl<'a> Element<'a> {
    /// The element as Redis replies it; an integer is written into `text` in decimal.
    pub fn bytes<'b>(&self, text: &'b mut IntText) -> &'b [u8]
    where
        'a: 'b,
    {
        match *self {
            Element::Bytes(bytes) => bytes,
            Element::Int(number) => amber_protocol::format_i64(number, text),
        }
    }

    /// The element as an owned byte string.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes(&mut [0; 20]).to_vec()
    }
}

/// Collects every element as an owned byte string.
fn collect<'a>(
    visit: impl FnOnce(&mut dyn FnMut(Element<'a>)) -> Result<usize, ErrorKind>,
) -> Result<Vec<Vec<u8>>, ErrorKind> {
    let mut items = Vec::new();
    visit(&mut |element| items.push(element.to_vec()))?;
    Ok(items)
}

/// Decodes a ziplist (Redis ≤ 6.2 lists, hashes and sorted sets).
#[cfg(test)]
pub(crate) fn ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
    collect(|visit| visit_ziplist(blob, visit))
}

/// Decodes a listpack (Redis ≥ 7.0 compact lists, hashes, sets, sorted sets, streams).
pub(crate) fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
    collect(|visit| visit_listpack(blob, visit))
}

/// Decodes an intset (small integer-only sets).
#[cfg(test)]
pub(crate) fn intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
    collect(|visit| visit_intset(blob, visit))
}

/// Decodes a zipmap (Redis ≤ 2.4 small hashes) into alternating fields and values.
#[cfg(test)]
pub(crate) fn zipmap(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
    collect(|visit| visit_zipmap(blob, visit))
}

/// Calls `visit` with each element of a ziplist; returns the element count. The whole blob is
/// checked: an error may come after some elements were visited.
pub(crate) fn visit_ziplist<'a>(
    blob: &'a [u8],
    mut visit: impl FnMut(Element<'a>),
) -> Result<usize, ErrorKind> {
    let what = "ziplist";
    if blob.len() < 11 {
        return Err(ErrorKind::corrupt(what, "shorter than its header"));
    }
    if le(&blob[0..4]) as usize != blob.len() {
        return Err(ErrorKind::corrupt(
            what,
            "total size does not match the blob",
        ));
    }
    let mut cursor = Cursor {
        blob,
        pos: 10,
        what,
    };
    let mut count = 0;
    // Redis's deep check: each entry records the previous entry's size, and the header points
    // at the last entry.
    let mut previous: Option<(usize, usize)> = None;
    loop {
        let start = cursor.pos;
        let first = *blob
            .get(cursor.pos)
            .ok_or_else(|| ErrorKind::corrupt(what, "missing end marker"))?;
        if first == 0xff {
            break;
        }
        let prevlen = match cursor.byte()? {
            0xfe => le(cursor.take(4)?) as usize,
            short => usize::from(short),
        };
        let previous_len = previous.map_or(0, |(_, len)| len);
        if prevlen != previous_len {
            return Err(ErrorKind::corrupt(
                what,
                format!(
                    "entry at {start} records a previous entry of {prevlen} bytes, not {previous_len}"
                ),
            ));
        }
        let encoding = cursor.byte()?;
        let element = match encoding >> 6 {
            0 => Element::Bytes(cursor.take(usize::from(encoding & 0x3f))?),
            1 => {
                let len = (usize::from(encoding & 0x3f) << 8) | usize::from(cursor.byte()?);
                Element::Bytes(cursor.take(len)?)
            }
            2 => {
                let len = cursor
                    .take(4)?
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                Element::Bytes(cursor.take(len)?)
            }
            _ => Element::Int(match encoding {
                0xc0 => sign_extend(le(cursor.take(2)?), 16),
                0xd0 => sign_extend(le(cursor.take(4)?), 32),
                0xe0 => le(cursor.take(8)?) as i64,
                0xf0 => sign_extend(le(cursor.take(3)?), 24),
                0xfe => sign_extend(le(cursor.take(1)?), 8),
                0xf1..=0xfd => i64::from(encoding & 0x0f) - 1,
                other => {
                    return Err(ErrorKind::corrupt(
                        what,
                        format!("unknown entry encoding 0x{other:02x}"),
                    ));
                }
            }),
        };
        previous = Some((start, cursor.pos - start));
        visit(element);
        count += 1;
    }
    if cursor.pos + 1 != blob.len() {
        return Err(ErrorKind::corrupt(what, "bytes after the end marker"));
    }
    let last_entry = previous.map_or(10, |(start, _)| start);
    if le(&blob[4..8]) as usize != last_entry {
        return Err(ErrorKind::corrupt(
            what,
            "the tail offset does not point at the last entry",
        ));
    }
    let declared = le(&blob[8..10]);
    if declared != 0xffff && declared as usize != count {
        return Err(ErrorKind::corrupt(
            what,
            "entry count does not match its header",
        ));
    }
    Ok(count)
}

/// Calls `visit` with each element of a listpack; returns the element count. The whole blob is
/// checked: an error may come after some elements were visited.
pub(crate) fn visit_listpack<'a>(
    blob: &'a [u8],
    mut visit: impl FnMut(Element<'a>),
) -> Result<usize, ErrorKind> {
    let what = "listpack";
    if blob.len() < 7 {
        return Err(ErrorKind::corrupt(what, "shorter than its header"));
    }
    if le(&blob[0..4]) as usize != blob.len() {
        return Err(ErrorKind::corrupt(
            what,
            "total size does not match the blob",
        ));
    }
    let mut cursor = Cursor { blob, pos: 6, what };
    let mut count = 0;
    loop {
        let start = cursor.pos;
        let encoding = cursor.byte()?;
        if encoding == 0xff {
            break;
        }
        let element = if encoding & 0x80 == 0 {
            Element::Int(i64::from(encoding & 0x7f))
        } else if encoding & 0xc0 == 0x80 {
            Element::Bytes(cursor.take(usize::from(encoding & 0x3f))?)
        } else if encoding & 0xe0 == 0xc0 {
            let raw = (u64::from(encoding & 0x1f) << 8) | u64::from(cursor.byte()?);
            Element::Int(sign_extend(raw, 13))
        } else if encoding & 0xf0 == 0xe0 {
            let len = (usize::from(encoding & 0x0f) << 8) | usize::from(cursor.byte()?);
            Element::Bytes(cursor.take(len)?)
        } else {
            match encoding {
                0xf0 => {
                    let len = le(cursor.take(4)?) as usize;
                    Element::Bytes(cursor.take(len)?)
                }
                0xf1 => Element::Int(sign_extend(le(cursor.take(2)?), 16)),
                0xf2 => Element::Int(sign_extend(le(cursor.take(3)?), 24)),
                0xf3 => Element::Int(sign_extend(le(cursor.take(4)?), 32)),
                0xf4 => Element::Int(le(cursor.take(8)?) as i64),
                other => {
                    return Err(ErrorKind::corrupt(
                        what,
                        format!("unknown entry encoding 0x{other:02x}"),
                    ));
                }
            }
        };
        let entry_len = cursor.pos - start;
        let backlen = cursor.take(crate::encode::backlen_bytes(entry_len))?;
        if !crate::encode::backlen_matches(backlen, entry_len) {
            return Err(ErrorKind::corrupt(
                what,
                format!("entry at {start} has a wrong back-length"),
            ));
        }
        visit(element);
        count += 1;
    }
    if cursor.pos != blob.len() {
        return Err(ErrorKind::corrupt(what, "bytes after the end marker"));
    }
    let declared = le(&blob[4..6]);
    if declared != 0xffff && declared as usize != count {
        return Err(ErrorKind::corrupt(
            what,
            "element count does not match its header",
        ));
    }
    Ok(count)
}

/// Calls `visit` with each integer of an intset; returns the element count.
pub(crate) fn visit_intset<'a>(
    blob: &'a [u8],
    mut visit: impl FnMut(Element<'a>),
) -> Result<usize, ErrorKind> {
    let what = "intset";
    if blob.len() < 8 {
        return Err(ErrorKind::corrupt(what, "shorter than its header"));
    }
    let width = le(&blob[0..4]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(ErrorKind::corrupt(
            what,
            format!("invalid integer width {width}"),
        ));
    }
    let count = le(&blob[4..8]) as usize;
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(ErrorKind::corrupt(
            what,
            "length does not match its element count",
        ));
    }
    for chunk in blob[8..].chunks_exact(width) {
        visit(Element::Int(sign_extend(le(chunk), (width * 8) as u32)));
    }
    Ok(count)
}

/// Calls `visit` with each field and value of a zipmap, alternating; returns the element count.
pub(crate) fn visit_zipmap<'a>(
    blob: &'a [u8],
    mut visit: impl FnMut(Element<'a>),
) -> Result<usize, ErrorKind> {
    let what = "zipmap";
    let mut cursor = Cursor { blob, pos: 1, what };
    let mut count = 0;
    loop {
        let first = cursor.byte()?;
        if first == 0xff {
            break;
        }
        let key_len = zipmap_len(&mut cursor, first)?;
        visit(Element::Bytes(cursor.take(key_len)?));
        let first = cursor.byte()?;
        let value_len = zipmap_len(&mut cursor, first)?;
        let free = usize::from(cursor.byte()?);
        visit(Element::Bytes(cursor.take(value_len)?));
        cursor.take(free)?;
        count += 2;
    }
    Ok(count)
}

fn zipmap_len(cursor: &mut Cursor, first: u8) -> Result<usize, ErrorKind> {
    match first {
        0..=253 => Ok(usize::from(first)),
        254 => Ok(le(cursor.take(4)?) as usize),
        _ => Err(ErrorKind::corrupt("zipmap", "unexpected end marker")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(items: Vec<Vec<u8>>) -> Vec<String> {
        items
            .into_iter()
            .map(|i| String::from_utf8(i).unwrap())
            .collect()
    }

    #[test]
    fn listpack_decodes_every_encoding() {
        // Built from the listpack layout: 7-bit uint 5, 6-bit string "ab", 13-bit int -1, int16 1000.
        let mut body = vec![
            0x05, 0x01, 0x82, b'a', b'b', 0x03, 0xdf, 0xff, 0x02, 0xf1, 0xe8, 0x03, 0x03,
        ];
        body.push(0xff);
        let total = (6 + body.len()) as u32;
        let mut blob = total.to_le_bytes().to_vec();
        blob.extend_from_slice(&4u16.to_le_bytes());
        blob.extend_from_slice(&body);
        assert_eq!(text(listpack(&blob).unwrap()), ["5", "ab", "-1", "1000"]);
        blob[4] = 3;
        assert!(listpack(&blob).is_err());
    }

    #[test]
    fn integers_print_in_decimal() {
        for number in [0, 7, -1, 1000, -8192, i64::MAX, i64::MIN] {
            let mut text = [0; 20];
            assert_eq!(
                Element::Int(number).bytes(&mut text),
                number.to_string().as_bytes()
            );
        }
    }

    #[test]
    fn intset_widths() {
        let mut blob = 2u32.to_le_bytes().to_vec();
        blob.extend_from_slice(&2u32.to_le_bytes());
        blob.extend_from_slice(&(-3i16).to_le_bytes());
        blob.extend_from_slice(&7i16.to_le_bytes());
        assert_eq!(text(intset(&blob).unwrap()), ["-3", "7"]);
        blob.pop();
        assert!(intset(&blob).is_err());
    }

    #[test]
    fn truncated_blobs_are_errors() {
        for blob in [
            &b""[..],
            b"\x0b\x00\x00\x00\x0a\x00\x00\x00\x01\x00\x05",
            b"\xff\xff\xff\xff\x00\x00\xff",
        ] {
            assert!(ziplist(blob).is_err());
            assert!(listpack(blob).is_err());
            assert!(intset(blob).is_err());
        }
        assert!(zipmap(b"").is_err());
        assert!(zipmap(b"\x01\x02f1\x02").is_err());
        assert_eq!(
            zipmap(b"\x01\x02f1\x02\x00v1\xff").unwrap(),
            [b"f1".to_vec(), b"v1".to_vec()]
        );
    }
}
