//! Decoders for the compact blobs Redis stores inside RDB strings: ziplist, listpack, intset
//! and zipmap. Every length is checked against the blob, so corrupt input is an error, never a
//! panic or an out-of-bounds read. Integers come back in their decimal string form.

use crate::error::ErrorKind;

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn sign_extend(value: u64, bits: u32) -> i64 {
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

/// Decodes a ziplist (Redis ≤ 6.2 lists, hashes and sorted sets).
pub fn ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
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
    let mut items = Vec::new();
    loop {
        let first = *blob
            .get(cursor.pos)
            .ok_or_else(|| ErrorKind::corrupt(what, "missing end marker"))?;
        if first == 0xff {
            break;
        }
        let prevlen = cursor.byte()?;
        if prevlen == 0xfe {
            cursor.take(4)?;
        }
        let encoding = cursor.byte()?;
        let item = match encoding >> 6 {
            0 => cursor.take(usize::from(encoding & 0x3f))?.to_vec(),
            1 => {
                let len = (usize::from(encoding & 0x3f) << 8) | usize::from(cursor.byte()?);
                cursor.take(len)?.to_vec()
            }
            2 => {
                let len = cursor
                    .take(4)?
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                cursor.take(len)?.to_vec()
            }
            _ => {
                let number = match encoding {
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
                };
                number.to_string().into_bytes()
            }
        };
        items.push(item);
    }
    let declared = le(&blob[8..10]);
    if declared != 0xffff && declared as usize != items.len() {
        return Err(ErrorKind::corrupt(
            what,
            "entry count does not match its header",
        ));
    }
    Ok(items)
}

/// Decodes a listpack (Redis ≥ 7.0 compact lists, hashes, sets, sorted sets, streams).
pub fn listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
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
    let mut items = Vec::new();
    loop {
        let start = cursor.pos;
        let encoding = cursor.byte()?;
        if encoding == 0xff {
            break;
        }
        let item = if encoding & 0x80 == 0 {
            i64::from(encoding & 0x7f).to_string().into_bytes()
        } else if encoding & 0xc0 == 0x80 {
            cursor.take(usize::from(encoding & 0x3f))?.to_vec()
        } else if encoding & 0xe0 == 0xc0 {
            let raw = (u64::from(encoding & 0x1f) << 8) | u64::from(cursor.byte()?);
            sign_extend(raw, 13).to_string().into_bytes()
        } else if encoding & 0xf0 == 0xe0 {
            let len = (usize::from(encoding & 0x0f) << 8) | usize::from(cursor.byte()?);
            cursor.take(len)?.to_vec()
        } else {
            match encoding {
                0xf0 => {
                    let len = le(cursor.take(4)?) as usize;
                    cursor.take(len)?.to_vec()
                }
                0xf1 => sign_extend(le(cursor.take(2)?), 16)
                    .to_string()
                    .into_bytes(),
                0xf2 => sign_extend(le(cursor.take(3)?), 24)
                    .to_string()
                    .into_bytes(),
                0xf3 => sign_extend(le(cursor.take(4)?), 32)
                    .to_string()
                    .into_bytes(),
                0xf4 => (le(cursor.take(8)?) as i64).to_string().into_bytes(),
                other => {
                    return Err(ErrorKind::corrupt(
                        what,
                        format!("unknown entry encoding 0x{other:02x}"),
                    ));
                }
            }
        };
        let entry_len = cursor.pos - start;
        cursor.take(crate::encode::backlen_bytes(entry_len))?;
        items.push(item);
    }
    if cursor.pos != blob.len() {
        return Err(ErrorKind::corrupt(what, "bytes after the end marker"));
    }
    let declared = le(&blob[4..6]);
    if declared != 0xffff && declared as usize != items.len() {
        return Err(ErrorKind::corrupt(
            what,
            "element count does not match its header",
        ));
    }
    Ok(items)
}

/// Decodes an intset (small integer-only sets).
pub fn intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
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
    Ok(blob[8..]
        .chunks_exact(width)
        .map(|chunk| {
            sign_extend(le(chunk), (width * 8) as u32)
                .to_string()
                .into_bytes()
        })
        .collect())
}

/// Decodes a zipmap (Redis ≤ 2.4 small hashes) into alternating fields and values.
pub fn zipmap(blob: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
    let what = "zipmap";
    let mut cursor = Cursor { blob, pos: 1, what };
    let mut items = Vec::new();
    loop {
        let first = cursor.byte()?;
        if first == 0xff {
            break;
        }
        let key_len = zipmap_len(&mut cursor, first)?;
        items.push(cursor.take(key_len)?.to_vec());
        let first = cursor.byte()?;
        let value_len = zipmap_len(&mut cursor, first)?;
        let free = usize::from(cursor.byte()?);
        items.push(cursor.take(value_len)?.to_vec());
        cursor.take(free)?;
    }
    if !items.len().is_multiple_of(2) {
        return Err(ErrorKind::corrupt(what, "a field without a value"));
    }
    Ok(items)
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
