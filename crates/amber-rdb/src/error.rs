//! What can be wrong with an RDB file, and where.

use thiserror::Error;

/// An RDB file (or DUMP payload) that cannot be read, with the byte offset where reading failed.
#[derive(Debug, Error)]
#[error("{kind} at offset {offset} (in the item starting at offset {item_offset}){}", key_suffix(.key))]
pub struct RdbError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the input where the problem was found.
    pub offset: u64,
    /// Byte offset where the item being read (key, AUX field, ...) starts.
    pub item_offset: u64,
    /// The key being read, if any.
    pub key: Option<Vec<u8>>,
}

fn key_suffix(key: &Option<Vec<u8>>) -> String {
    match key {
        Some(key) => format!(" (reading key '{}')", String::from_utf8_lossy(key)),
        None => String::new(),
    }
}

/// The kinds of failure.
#[derive(Debug, Error)]
pub enum ErrorKind {
    /// Reading the input failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input ended in the middle of something.
    #[error("unexpected end of file while reading {0}")]
    UnexpectedEof(&'static str),
    /// The file does not start with `REDIS` (or `VALKEY`).
    #[error("wrong signature: not an RDB file")]
    BadSignature,
    /// A version this reader does not know.
    #[error("unsupported RDB version {0}")]
    UnsupportedVersion(u32),
    /// The trailing checksum does not match the content.
    #[error("RDB CRC error: the file says {expected:016x}, the content gives {actual:016x}")]
    BadChecksum {
        /// Checksum stored in the file.
        expected: u64,
        /// Checksum computed over the content.
        actual: u64,
    },
    /// An unknown value type or opcode byte.
    #[error("unknown value type or opcode {0}")]
    UnknownType(u8),
    /// A length field that cannot be right.
    #[error("invalid length: {0}")]
    InvalidLength(String),
    /// An encoded blob (ziplist, listpack, intset, zipmap, LZF, stream) is malformed.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which encoding.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A value type this reader can parse but not represent (module values).
    #[error("unsupported value: {0}")]
    Unsupported(String),
}

impl ErrorKind {
    /// A corruption of the named encoding.
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> ErrorKind {
        ErrorKind::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
