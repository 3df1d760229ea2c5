//! A list of byte strings in one allocation, each stored as its length (LEB128) then its
//! bytes: what small hashes and sorted sets use, as Redis uses listpacks. Operations are linear
//! in the size, which stays small (the encoding thresholds).

/// Byte strings back to back in one exactly-sized buffer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Packed {
    buf: Vec<u8>,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Packed({} elements, {} bytes)",
            self.len(),
            self.buf.len()
        )
    }
}

/// Where one element lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start of its length header.
    pub start: usize,
    /// Start of its bytes.
    pub data: usize,
    /// End of its bytes.
    pub end: usize,
}

impl Packed {
    /// Number of elements (counted: the buffer is all there is, so a value holding it stays
    /// 24 bytes).
    pub fn len(&self) -> usize {
        self.spans().count()
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans().map(move |span| &self.buf[span.data..span.end])
    }

    /// The positions of the elements, in order.
    pub fn spans(&self) -> Spans<'_> {
        Spans {
            buf: &self.buf,
            at: 0,
        }
    }

    /// The bytes of the element at `span`.
    pub fn get(&self, span: Span) -> &[u8] {
        &self.buf[span.data..span.end]
    }

    /// Appends elements at the end.
    pub fn push(&mut self, items: &[&[u8]]) {
        let added: usize = items.iter().map(|i| i.len() + len_size(i.len())).sum();
        self.buf.reserve_exact(added);
        for item in items {
            write_len(&mut self.buf, item.len());
            self.buf.extend_from_slice(item);
        }
    }

    /// Appends one element (growing the buffer as a `Vec` does: for scratch buffers).
    pub fn push_one(&mut self, item: &[u8]) {
        write_len(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
    }

    /// The bytes of the element that starts at byte offset `start`.
    pub fn element_at(&self, start: usize) -> &[u8] {
        let (len, data) = read_len(&self.buf, start);
        &self.buf[data.min(self.buf.len())..(data + len).min(self.buf.len())]
    }

    /// The buffer's first byte (0 when empty): a cheap read that brings it into the cache.
    pub fn first_byte(&self) -> u8 {
        self.buf.first().copied().unwrap_or(0)
    }

    /// The first and last bytes together: loads that bring a buffer of up to two cache lines
    /// (a small collection's) into the cache.
    pub fn ends(&self) -> u64 {
        u64::from(self.first_byte()) << 8 | u64::from(self.buf.last().copied().unwrap_or(0))
    }

    /// Removes every element, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Inserts elements at byte offset `at` (the start of an element, or the end).
    pub fn insert_at(&mut self, at: usize, items: &[&[u8]]) {
        if at == self.buf.len() {
            self.push(items);
        } else {
            self.splice(at, at, items);
        }
    }

    /// Replaces the elements between byte offsets `start` and `end` by `items`.
    pub fn splice(&mut self, start: usize, end: usize, items: &[&[u8]]) {
        let mut encoded = Vec::with_capacity(items.iter().map(|i| i.len() + 10).sum());
        for item in items {
            write_len(&mut encoded, item.len());
            encoded.extend_from_slice(item);
        }
        let new_len = self.buf.len() - (end - start) + encoded.len();
        if new_len > self.buf.capacity() {
            self.buf.reserve_exact(new_len - self.buf.len());
        }
        self.buf.splice(start..end, encoded);
        if self.buf.capacity() > self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    /// Bytes held (for memory accounting in tests).
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
}

/// Iterator over element positions.
#[derive(Clone)]
pub struct Spans<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.at >= self.buf.len() {
            return None;
        }
        let start = self.at;
        let (len, data) = read_len(self.buf, start);
        let end = (data + len).min(self.buf.len());
        self.at = end;
        Some(Span { start, data, end })
    }
}

/// Bytes the length header of a `len`-byte element takes.
fn len_size(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}

fn write_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Decodes the length at `at`; returns it and where the bytes start.
fn read_len(buf: &[u8], mut at: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    while let Some(&byte) = buf.get(at) {
        at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 || shift > 56 {
            break;
        }
        shift += 7;
    }
    (len, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_vec_of_strings(
            ops in prop::collection::vec((0usize..4, prop::collection::vec(any::<u8>(), 0..300), any::<usize>()), 0..40)
        ) {
            let mut packed = Packed::default();
            let mut model: Vec<Vec<u8>> = Vec::new();
            for (op, item, at) in ops {
                let spans: Vec<Span> = packed.spans().collect();
                match op {
                    0 => { packed.push(&[&item]); model.push(item); }
                    1 if !model.is_empty() => {
                        let index = at % model.len();
                        let span = spans[index];
                        packed.splice(span.start, span.end, &[]);
                        model.remove(index);
                    }
                    2 if !model.is_empty() => {
                        let index = at % model.len();
                        let span = spans[index];
                        packed.splice(span.start, span.end, &[&item]);
                        model[index] = item;
                    }
                    _ => {
                        let index = at % (model.len() + 1);
                        let offset = spans.get(index).map_or(packed.byte_len(), |s| s.start);
                        packed.insert_at(offset, &[&item]);
                        model.insert(index, item);
                    }
                }
                let now: Vec<Vec<u8>> = packed.iter().map(<[u8]>::to_vec).collect();
                prop_assert_eq!(&now, &model);
                prop_assert_eq!(packed.len(), model.len());
            }
        }
    }
}
