//! Redis's RDB snapshot format, usable on its own: open a file, walk its databases, keys,
//! expiry times and values, whatever version of Redis wrote it (RDB 1 to 12, and Valkey's
//! `VALKEY080`), with the trailing CRC-64 verified.
//!
//! ```no_run
//! let file = std::io::BufReader::new(std::fs::File::open("dump.rdb")?);
//! let mut reader = amber_rdb::RdbReader::new(file)?;
//! while let Some(item) = reader.next_item()? {
//!     if let amber_rdb::Item::Entry(entry) = item {
//!         println!("db{} {:?} {}", entry.db, entry.key, entry.value.type_name());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`RdbWriter`] writes Redis 7.0 files (RDB 10) in the encodings Redis 7.0 chooses, or on
//! request RDB 9 (Redis 5 and 6, ziplists) or RDB 11 (Redis 7.2).
//!
//! Reading is streaming: nothing but the current value is held in memory, and no length field
//! can make the reader allocate more than the input actually provides.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
mod encode;
mod encodings;
mod error;
mod lzf;
mod model;
mod node_check;
mod raw;
mod reader;
mod stream;
mod writer;

pub use encodings::{Element, IntText};
pub use error::{ErrorKind, RdbError};
pub use model::{
    Consumer, ConsumerGroup, Entry, Item, PendingEntry, Stream, StreamEntry, StreamId, StreamNode,
    Value, opcodes, types,
};
pub use raw::{QuicklistNode, RawValue, Strings, parse_score};
pub use reader::{MAX_VERSION, PayloadError, RdbReader, parse_functions_payload, parse_payload};
pub use stream::PackedStream;
pub use writer::{
    RdbWriter, Thresholds, WRITABLE_VERSIONS, WRITE_VERSION, WriteError, WriteOptions,
    dump_payload, functions_payload,
};

/// Redis's RDB checksum: CRC-64 with the Jones polynomial, reflected, initial value 0.
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc64_matches_redis() {
        assert_eq!(super::crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
