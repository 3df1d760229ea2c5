//! A list of byte strings in one allocation, each stored as its length (LEB128) then its
//! bytes: what small hashes and sorted sets use, as Redis uses listpacks. Operations are linear
//! in the size, which stays small (the encoding thresholds).

/// Byte strings back to back in one buffer that also holds their total length.
///
/// The buffer is the content's length (LEB128), the content, then room to grow up to the
/// allocator's size class. Keeping the length in the buffer rather than beside its pointer
/// means a change that fits the buffer writes only the buffer: the value that holds it (in a
/// key's entry) is left untouched, so while a fork shares the pages such a write dirties one
/// page, not two (as a Redis listpack keeps its length in its header).
#[derive(Default)]
pub struct Packed {
    /// Length header, content, spare room; empty while nothing was ever stored.
    buf: Box<[u8]>,
}

/// Most spare bytes a buffer keeps after a change that shrank it.
const MOST_SPARE: usize = 64;

impl Clone for Packed {
    /// A copy of the content in a buffer of its size (a scratch buffer's spare room is not
    /// copied).
    fn clone(&self) -> Self {
        Packed {
            buf: fresh_buffer(&[self.content()]),
        }
    }
}

impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.content() == other.content()
    }
}

impl Eq for Packed {}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Packed({} elements, {} bytes)",
            self.len(),
            self.content().len()
        )
    }
}

/// Where one element lies in the content.
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
    /// small).
    pub fn len(&self) -> usize {
        self.spans().count()
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.content().is_empty()
    }

    /// The elements back to back, without the length header and the spare room.
    fn content(&self) -> &[u8] {
        if self.buf.is_empty() {
            return &[];
        }
        let (used, start) = read_len(&self.buf, 0);
        self.buf
            .get(start..start.saturating_add(used))
            .unwrap_or_default()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let content = self.content();
        self.spans().map(move |span| &content[span.data..span.end])
    }

    /// The positions of the elements, in order.
    pub fn spans(&self) -> Spans<'_> {
        Spans {
            buf: self.content(),
            at: 0,
        }
    }

    /// The bytes of the element at `span`.
    pub fn get(&self, span: Span) -> &[u8] {
        &self.content()[span.data..span.end]
    }

    /// Appends elements at the end.
    pub fn push(&mut self, items: &[&[u8]]) {
        let added: usize = items.iter().map(|i| i.len() + len_size(i.len())).sum();
        let old_len = self.byte_len();
        let new_len = old_len + added;
        let header = len_size(new_len);
        let fits = header + new_len <= self.buf.len() && header == len_size(old_len);
        if !fits {
            self.replace_bytes(old_len, old_len, &encode(items));
            return;
        }
        let mut at = header + old_len;
        for item in items {
            let size = len_size(item.len());
            put_len(&mut self.buf[at..at + size], item.len());
            at += size;
            self.buf[at..at + item.len()].copy_from_slice(item);
            at += item.len();
        }
        put_len(&mut self.buf[..header], new_len);
    }

    /// The bytes of the element that starts at byte offset `start`.
    pub fn element_at(&self, start: usize) -> &[u8] {
        element_at(self.content(), start)
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

    /// Inserts elements at byte offset `at` (the start of an element, or the end).
    pub fn insert_at(&mut self, at: usize, items: &[&[u8]]) {
        self.splice(at, at, items);
    }

    /// Replaces the elements between byte offsets `start` and `end` by `items`.
    pub fn splice(&mut self, start: usize, end: usize, items: &[&[u8]]) {
        self.replace_bytes(start, end, &encode(items));
    }

    /// Replaces the content's bytes `start..end` by `bytes`: in the buffer when it has room
    /// (and would not keep more than [`MOST_SPARE`] bytes spare), else in a new buffer.
    fn replace_bytes(&mut self, start: usize, end: usize, bytes: &[u8]) {
        let old = self.content();
        let old_len = old.len();
        let end = end.min(old_len);
        let start = start.min(end);
        let new_len = old_len - (end - start) + bytes.len();
        let header = len_size(new_len);
        let needed = header + new_len;
        let old_header = if self.buf.is_empty() {
            0
        } else {
            len_size(old_len)
        };
        let too_roomy = self.buf.len() > needed + MOST_SPARE;
        if needed <= self.buf.len() && !too_roomy {
            if header == old_header {
                let tail = header + end..header + old_len;
                self.buf.copy_within(tail, header + start + bytes.len());
                self.buf[header + start..header + start + bytes.len()].copy_from_slice(bytes);
            } else {
                // The length's header changes size (at 128 bytes, 16 KiB...): rare, copied.
                let content = [&old[..start], bytes, &old[end..]].concat();
                self.buf[header..needed].copy_from_slice(&content);
            }
            put_len(&mut self.buf[..header], new_len);
            return;
        }
        self.buf = fresh_buffer(&[&old[..start], bytes, &old[end..]]);
    }

    /// Bytes of content (the elements with their length headers).
    pub fn byte_len(&self) -> usize {
        self.content().len()
    }
}

/// A buffer holding the length header of `parts` put together, the parts, and the room up to
/// the size class.
fn fresh_buffer(parts: &[&[u8]]) -> Box<[u8]> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let size = size_class(len_size(len) + len);
    let mut buf = Vec::with_capacity(size);
    write_len(&mut buf, len);
    for part in parts {
        buf.extend_from_slice(part);
    }
    buf.resize(size, 0);
    buf.into_boxed_slice()
}

/// The bytes of the element of `content` that starts at byte offset `start`.
fn element_at(content: &[u8], start: usize) -> &[u8] {
    let (len, data) = read_len(content, start);
    &content[data.min(content.len())..(data + len).min(content.len())]
}

/// The elements encoded back to back.
fn encode(items: &[&[u8]]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(items.iter().map(|i| i.len() + len_size(i.len())).sum());
    for item in items {
        write_len(&mut encoded, item.len());
        encoded.extend_from_slice(item);
    }
    encoded
}

/// The allocation a request of `bytes` gets from a size-class allocator (jemalloc's classes:
/// 8, multiples of 16 up to 128, then four classes per doubling), so the room up to it is free.
pub(crate) fn size_class(bytes: usize) -> usize {
    if bytes <= 8 {
        return 8;
    }
    if bytes <= 128 {
        return bytes.next_multiple_of(16);
    }
    let below = 1usize << (usize::BITS - 1 - (bytes - 1).leading_zeros());
    bytes.next_multiple_of(below / 4)
}

/// Elements encoded as in a [`Packed`], in a plain growable buffer with no length header: what
/// a loader fills an element at a time before it makes the value.
#[derive(Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
}

impl Scratch {
    /// Appends one element.
    pub(crate) fn push(&mut self, item: &[u8]) {
        write_len(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
    }

    /// Removes every element, keeping the buffer.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    /// Bytes of content (the elements with their length headers).
    pub(crate) fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The elements, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let spans = Spans {
            buf: &self.buf,
            at: 0,
        };
        spans.map(move |span| &self.buf[span.data..span.end])
    }

    /// The bytes of the element that starts at byte offset `start`.
    pub(crate) fn element_at(&self, start: usize) -> &[u8] {
        element_at(&self.buf, start)
    }

    /// The elements as a [`Packed`] value, in a buffer of their size.
    pub(crate) fn to_packed(&self) -> Packed {
        Packed {
            buf: fresh_buffer(&[&self.buf]),
        }
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
pub(crate) fn len_size(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}

/// Writes `len` over `out`, which is exactly [`len_size`]`(len)` bytes long.
fn put_len(out: &mut [u8], mut len: usize) {
    let last = out.len().saturating_sub(1);
    for (index, byte) in out.iter_mut().enumerate() {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        *byte = if index == last { low } else { low | 0x80 };
    }
}

pub(crate) fn write_len(out: &mut Vec<u8>, mut len: usize) {
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
pub(crate) fn read_len(buf: &[u8], mut at: usize) -> (usize, usize) {
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

    #[test]
    fn a_change_that_fits_is_made_in_the_buffer() {
        let mut packed = Packed::default();
        for i in 0..10 {
            packed.push(&[format!("{i}").as_bytes(), format!("m{i}").as_bytes()]);
        }
        let buffer = packed.buf.as_ptr();
        let span = packed.spans().nth(6).expect("ten pairs");
        packed.splice(span.start, span.end, &[b"8372615"]);
        assert_eq!(packed.buf.as_ptr(), buffer, "the buffer had room");
        assert_eq!(packed.iter().nth(6), Some(&b"8372615"[..]));
        assert_eq!(packed.len(), 20);
    }

    #[test]
    fn a_scratch_makes_the_same_value_as_pushes() {
        let mut scratch = Scratch::default();
        let mut packed = Packed::default();
        for i in 0..100 {
            let item = format!("element-{i}");
            scratch.push(item.as_bytes());
            packed.push(&[item.as_bytes()]);
        }
        assert_eq!(scratch.to_packed(), packed);
        assert_eq!(
            scratch.to_packed().buf.len(),
            size_class(scratch.byte_len() + 2)
        );
    }

    #[test]
    fn size_classes_are_jemallocs() {
        let classes: Vec<usize> = [1, 16, 17, 57, 128, 129, 160, 161, 256, 257, 4097]
            .into_iter()
            .map(size_class)
            .collect();
        assert_eq!(classes, [8, 16, 32, 64, 128, 160, 160, 192, 256, 320, 5120]);
    }

    proptest! {
        #[test]
        fn a_length_is_written_as_it_is_read(len in 0usize..1 << 40) {
            let mut written = Vec::new();
            write_len(&mut written, len);
            let mut put = vec![0u8; len_size(len)];
            put_len(&mut put, len);
            prop_assert_eq!(&put, &written);
            prop_assert_eq!(read_len(&put, 0), (len, put.len()));
        }

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
                prop_assert!(packed.buf.len() <= 2 * size_class(packed.byte_len() + 10) + MOST_SPARE);
                let copy = packed.clone();
                prop_assert_eq!(&copy, &packed);
                prop_assert!(copy.buf.len() <= size_class(copy.byte_len() + 10));
            }
        }
    }
}
