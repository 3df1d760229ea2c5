//! The replication backlog: the last `repl-backlog-size` bytes of the replication stream, kept
//! so a replica that lost its link can continue from its offset (`PSYNC replid offset`)
//! instead of loading a whole snapshot again.

use std::collections::VecDeque;

/// A bounded window over the replication stream, addressed by stream offsets.
///
/// Offsets follow Redis's convention: the stream's first byte has offset 1, and the window
/// holds the bytes from [`Backlog::first_offset`] up to the master's current offset.
#[derive(Debug)]
pub(crate) struct Backlog {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Offset of the first byte held (`repl_backlog_first_byte_offset`).
    first_offset: u64,
}

impl Backlog {
    /// An empty backlog whose next byte will have offset `next_offset`. Its whole buffer is
    /// allocated now, as Redis does, so filling it later does not look like new data to
    /// `maxmemory`.
    pub(crate) fn new(capacity: usize, next_offset: u64) -> Backlog {
        let capacity = capacity.max(1);
        Backlog {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            first_offset: next_offset,
        }
    }

    /// Appends stream bytes, dropping the oldest past the capacity.
    pub(crate) fn append(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.capacity {
            self.first_offset += (self.bytes.len() + chunk.len() - self.capacity) as u64;
            self.bytes.clear();
            self.bytes.extend(&chunk[chunk.len() - self.capacity..]);
            return;
        }
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.bytes.drain(..overflow);
            self.first_offset += overflow as u64;
        }
        self.bytes.extend(chunk);
    }

    /// Changes the capacity (`CONFIG SET repl-backlog-size`), keeping the newest bytes.
    pub(crate) fn resize(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        let overflow = self.bytes.len().saturating_sub(self.capacity);
        if overflow > 0 {
            self.bytes.drain(..overflow);
            self.first_offset += overflow as u64;
        }
        self.bytes.shrink_to(self.capacity);
        self.bytes
            .reserve_exact(self.capacity.saturating_sub(self.bytes.len()));
    }

    /// The bytes from stream offset `offset` to the end, if the window still holds them
    /// (`offset` one past the end gives an empty tail).
    pub(crate) fn tail_from(&self, offset: u64) -> Option<Vec<u8>> {
        let skip = offset.checked_sub(self.first_offset)?;
        let skip = usize::try_from(skip)
            .ok()
            .filter(|&s| s <= self.bytes.len())?;
        Some(self.bytes.range(skip..).copied().collect())
    }

    /// Offset of the first byte held.
    pub(crate) fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// Bytes held (`repl_backlog_histlen`).
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The configured capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_newest_bytes() {
        let mut backlog = Backlog::new(4, 1);
        backlog.append(b"abc");
        assert_eq!(backlog.tail_from(1).unwrap(), b"abc");
        backlog.append(b"de");
        assert_eq!(backlog.first_offset(), 2);
        assert_eq!(backlog.tail_from(2).unwrap(), b"bcde");
        assert_eq!(backlog.tail_from(6).unwrap(), b"");
        assert!(backlog.tail_from(1).is_none());
        assert!(backlog.tail_from(7).is_none());
        backlog.append(b"0123456");
        assert_eq!(backlog.first_offset(), 9);
        assert_eq!(backlog.tail_from(9).unwrap(), b"3456");
    }

    proptest! {
        /// Whatever the chunks, the window is the stream's last `capacity` bytes.
        #[test]
        fn the_window_is_the_stream_suffix(
            capacity in 1usize..64,
            start in 1u64..1000,
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..20),
        ) {
            let mut backlog = Backlog::new(capacity, start);
            let mut stream = Vec::new();
            for chunk in &chunks {
                backlog.append(chunk);
                stream.extend_from_slice(chunk);
            }
            let kept = stream.len().min(capacity);
            let end = start + stream.len() as u64;
            prop_assert_eq!(backlog.first_offset(), end - kept as u64);
            prop_assert_eq!(backlog.len(), kept);
            let tail = backlog.tail_from(backlog.first_offset()).unwrap();
            prop_assert_eq!(&tail[..], &stream[stream.len() - kept..]);
            prop_assert_eq!(backlog.tail_from(end).unwrap(), Vec::<u8>::new());
        }
    }
}
