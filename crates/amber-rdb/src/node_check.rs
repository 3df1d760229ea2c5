//! The fast check of a stream node: one straight walk over the listpack that checks what
//! Redis's deep sanitization checks (every element's encoding and back-length, the master
//! entry, each entry's flags, IDs, fields and element count, the end marker and the header's
//! counts) and only says whether the node is sound. Loading a stream checks every node, so
//! this walk is the loader's hot loop; when it says "malformed", the element-by-element check
//! in `stream` runs to say what is wrong.
//!
//! Each element's place depends on the one before, so the walk is one long chain of loads.
//! The common shapes (7- and 13-bit integers, strings under 64 bytes) are stepped over by
//! branches on the first byte, not decoded or looked up in a table: a predicted branch gives
//! the next element's place before the bytes arrive, which roughly halves the walk's time.

use crate::encodings::{Element, le, sign_extend};
use crate::stream::{FLAG_DELETED, FLAG_SAME_FIELDS};

/// The node's live entry count if the node is sound, `None` if anything is malformed.
pub(crate) fn live_entries(listpack: &[u8]) -> Option<u64> {
    let mut elements = Elements::new(listpack)?;
    let live = elements.unsigned()?;
    let deleted = elements.unsigned()?;
    let total = live.checked_add(deleted)?;
    let master_fields = elements.count()?;
    for _ in 0..master_fields {
        elements.skip()?;
    }
    if elements.int()? != 0 {
        return None;
    }
    let mut flagged_live = 0u64;
    for _ in 0..total {
        let flags = elements.int()?;
        if flags & FLAG_DELETED == 0 {
            flagged_live += 1;
        }
        elements.skip_int()?; // milliseconds delta
        elements.skip_int()?; // sequence delta
        let element_count = if flags & FLAG_SAME_FIELDS != 0 {
            for _ in 0..master_fields {
                elements.skip()?;
            }
            master_fields.checked_add(3)?
        } else {
            let fields = elements.count()?;
            for _ in 0..fields.checked_mul(2)? {
                elements.skip()?;
            }
            fields.checked_mul(2)?.checked_add(4)?
        };
        if elements.count()? != element_count {
            return None;
        }
    }
    elements.finish()?;
    (flagged_live == live).then_some(live)
}

/// The length before the back-length of an element starting with `0xf0 | i`, at `i`, when
/// it is a 16- to 64-bit integer; 0 otherwise.
const INT_LEN: [u8; 16] = [0, 3, 4, 5, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// A listpack's elements, read one at a time with their encoding and back-length checked.
struct Elements<'a> {
    blob: &'a [u8],
    pos: usize,
    seen: usize,
}

impl<'a> Elements<'a> {
    /// Starts after the header, once the header's total size matches the blob.
    fn new(blob: &'a [u8]) -> Option<Elements<'a>> {
        if blob.len() < 7 || le(&blob[0..4]) as usize != blob.len() {
            return None;
        }
        Some(Elements {
            blob,
            pos: 6,
            seen: 0,
        })
    }

    /// The next element (`None` at the end marker or if malformed).
    #[inline(always)]
    fn next(&mut self) -> Option<Element<'a>> {
        let start = self.pos;
        let encoding = *self.blob.get(start)?;
        let (element, end) = if encoding & 0x80 == 0 {
            (Element::Int(i64::from(encoding)), start + 1)
        } else if encoding & 0xc0 == 0x80 {
            let len = usize::from(encoding & 0x3f);
            (self.bytes(start + 1, len)?, start + 1 + len)
        } else if encoding & 0xe0 == 0xc0 {
            let low = *self.blob.get(start + 1)?;
            let raw = (u64::from(encoding & 0x1f) << 8) | u64::from(low);
            (Element::Int(sign_extend(raw, 13)), start + 2)
        } else if encoding & 0xf0 == 0xe0 {
            let low = *self.blob.get(start + 1)?;
            let len = (usize::from(encoding & 0x0f) << 8) | usize::from(low);
            (self.bytes(start + 2, len)?, start + 2 + len)
        } else {
            self.wide(start, encoding)?
        };
        self.pos = end + self.back_length(end, end - start)?;
        self.seen += 1;
        Some(element)
    }

    /// The 32-bit string and the 16- to 64-bit integer encodings (IDs' deltas often take
    /// 16 or 24 bits).
    #[inline(always)]
    fn wide(&self, start: usize, encoding: u8) -> Option<(Element<'a>, usize)> {
        let int = |width: usize, bits: u32| -> Option<(Element<'a>, usize)> {
            let raw = le(self.blob.get(start + 1..start + 1 + width)?);
            Some((Element::Int(sign_extend(raw, bits)), start + 1 + width))
        };
        match encoding {
            0xf0 => {
                let len = usize::try_from(le(self.blob.get(start + 1..start + 5)?)).ok()?;
                let end = start.checked_add(5)?.checked_add(len)?;
                Some((self.bytes(start + 5, len)?, end))
            }
            0xf1 => int(2, 16),
            0xf2 => int(3, 24),
            0xf3 => int(4, 32),
            0xf4 => int(8, 64),
            _ => None,
        }
    }

    fn bytes(&self, from: usize, len: usize) -> Option<Element<'a>> {
        Some(Element::Bytes(self.blob.get(from..from.checked_add(len)?)?))
    }

    /// Checks the back-length after an entry of `entry_len` bytes ending at `at`; returns
    /// its size.
    #[inline(always)]
    fn back_length(&self, at: usize, entry_len: usize) -> Option<usize> {
        if entry_len < 128 {
            return (usize::from(*self.blob.get(at)?) == entry_len).then_some(1);
        }
        let size = crate::encode::backlen_bytes(entry_len);
        let bytes = self.blob.get(at..at.checked_add(size)?)?;
        crate::encode::backlen_matches(bytes, entry_len).then_some(size)
    }

    /// The next element as an integer (an integer encoding, or a string holding one).
    #[inline(always)]
    fn int(&mut self) -> Option<i64> {
        let pos = self.pos;
        let first = *self.blob.get(pos)?;
        if first < 0x80 {
            // A 7-bit integer: flags, counts and small deltas, the common case.
            self.step(pos, 1)?;
            return Some(i64::from(first));
        }
        self.any_int()
    }

    /// [`Elements::int`] for any encoding.
    #[inline(never)]
    fn any_int(&mut self) -> Option<i64> {
        match self.next()? {
            Element::Int(number) => Some(number),
            Element::Bytes(bytes) => amber_protocol::parse_i64(bytes),
        }
    }

    /// Steps over an element that must be an integer, without decoding it.
    #[inline(always)]
    fn skip_int(&mut self) -> Option<()> {
        let pos = self.pos;
        let first = *self.blob.get(pos)?;
        if first < 0x80 {
            return self.step(pos, 1);
        }
        if first & 0xe0 == 0xc0 {
            return self.step(pos, 2);
        }
        let len = INT_LEN[usize::from(first & 0x0f)];
        if first & 0xf0 == 0xf0 && len != 0 {
            return self.step(pos, usize::from(len));
        }
        self.any_int().map(|_| ())
    }

    #[inline(always)]
    fn unsigned(&mut self) -> Option<u64> {
        u64::try_from(self.int()?).ok()
    }

    #[inline(always)]
    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.int()?).ok()
    }

    /// Steps over an element of any kind.
    #[inline(always)]
    fn skip(&mut self) -> Option<()> {
        let pos = self.pos;
        let first = *self.blob.get(pos)?;
        if first < 0x80 {
            return self.step(pos, 1);
        }
        if first < 0xc0 {
            return self.step(pos, 1 + usize::from(first & 0x3f));
        }
        if first < 0xe0 {
            return self.step(pos, 2);
        }
        self.next().map(|_| ())
    }

    /// Steps over the element at `pos`, `len` bytes long before its one-byte back-length,
    /// once that back-length checks.
    #[inline(always)]
    fn step(&mut self, pos: usize, len: usize) -> Option<()> {
        if usize::from(*self.blob.get(pos + len)?) != len {
            return None;
        }
        self.pos = pos + len + 1;
        self.seen += 1;
        Some(())
    }

    /// Checks that the end marker is next and last, and the header's element count.
    fn finish(&self) -> Option<()> {
        if self.blob.get(self.pos) != Some(&0xff) || self.pos + 1 != self.blob.len() {
            return None;
        }
        let declared = le(&self.blob[4..6]);
        (declared == 0xffff || declared as usize == self.seen).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// A node as Redis packs it: `entries` of which `deleted` are flagged deleted; each entry
    /// with the master's fields when `same`, or its own.
    fn node(entries: &[(bool, bool, Vec<Vec<u8>>)], master: &[Vec<u8>]) -> Vec<u8> {
        let mut elements: Vec<Vec<u8>> = Vec::new();
        let int = |n: i64| n.to_string().into_bytes();
        let live = entries.iter().filter(|(deleted, _, _)| !deleted).count() as i64;
        elements.push(int(live));
        elements.push(int(entries.len() as i64 - live));
        elements.push(int(master.len() as i64));
        elements.extend(master.iter().cloned());
        elements.push(int(0));
        for (index, (deleted, same, values)) in entries.iter().enumerate() {
            let mut flags = if *deleted { super::FLAG_DELETED } else { 0 };
            if *same {
                flags |= super::FLAG_SAME_FIELDS;
            }
            elements.push(int(flags));
            // Deltas in each integer width, and a negative one.
            elements.push(int([7, 5_000, 70_000, 9_000_000, 9_000_000_000][index % 5]));
            elements.push(int([index as i64, -3][index % 2]));
            if *same {
                elements.extend(master.iter().map(|_| b"v".to_vec()));
                elements.push(int(master.len() as i64 + 3));
            } else {
                elements.push(int(values.len() as i64));
                for value in values {
                    elements.push(b"field".to_vec());
                    elements.push(value.clone());
                }
                elements.push(int(values.len() as i64 * 2 + 4));
            }
        }
        crate::encode::listpack(elements.iter().map(Vec::as_slice))
    }

    fn entries() -> impl Strategy<Value = Vec<(bool, bool, Vec<Vec<u8>>)>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(
                    prop_oneof![
                        proptest::collection::vec(any::<u8>(), 0..8),
                        (-100_000i64..100_000).prop_map(|n| n.to_string().into_bytes()),
                        proptest::collection::vec(any::<u8>(), 60..200),
                    ],
                    0..4,
                ),
            ),
            1..12,
        )
    }

    proptest! {
        /// The fast walk and the detailed check agree on every node, sound or damaged.
        #[test]
        fn agrees_with_the_detailed_check(
            entries in entries(),
            master in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..6), 0..3),
            damage in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let mut blob = node(&entries, &master);
            if let Some((at, byte)) = damage {
                let at = at.index(blob.len());
                blob[at] = byte;
            }
            if let Some(cut) = cut {
                blob.truncate(cut.index(blob.len() + 1));
            }
            let fast = super::live_entries(&blob);
            let detailed = crate::stream::check_node_in_detail(&blob).ok();
            prop_assert_eq!(fast, detailed);
            if damage.is_none() && cut.is_none() {
                let live = entries.iter().filter(|(deleted, _, _)| !deleted).count() as u64;
                prop_assert_eq!(fast, Some(live));
            }
        }
    }
}
