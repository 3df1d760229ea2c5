//! Byte strings stored inline when short: list elements and hash-table keys are mostly a few
//! bytes, and an allocation each would cost more than the bytes themselves.

/// Strings up to this long are stored inside the value (24 bytes in all).
pub(crate) const INLINE: usize = 22;

/// A byte string: inline up to [`INLINE`] bytes, on the heap otherwise.
#[derive(Clone)]
pub enum SmallBytes {
    /// Short: the bytes themselves.
    Inline {
        /// How many of `bytes` are used.
        len: u8,
        /// The bytes, zero-padded.
        bytes: [u8; INLINE],
    },
    /// Long: a heap allocation.
    Heap(Box<[u8]>),
}

impl SmallBytes {
    /// Copies `bytes`.
    pub fn new(bytes: &[u8]) -> SmallBytes {
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            SmallBytes::Heap(bytes.into())
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SmallBytes::Heap(bytes) => bytes,
        }
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(bytes: &[u8]) -> SmallBytes {
        SmallBytes::new(bytes)
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(bytes: Vec<u8>) -> SmallBytes {
        if bytes.len() <= INLINE {
            SmallBytes::new(&bytes)
        } else {
            SmallBytes::Heap(bytes.into_boxed_slice())
        }
    }
}

impl From<Box<[u8]>> for SmallBytes {
    fn from(bytes: Box<[u8]>) -> SmallBytes {
        if bytes.len() <= INLINE {
            SmallBytes::new(&bytes)
        } else {
            SmallBytes::Heap(bytes)
        }
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &SmallBytes) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SmallBytes {}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_24_bytes_and_keeps_any_length() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        for len in [0, 1, 22, 23, 100] {
            let bytes = vec![b'x'; len];
            assert_eq!(SmallBytes::new(&bytes).as_bytes(), &bytes[..]);
            assert_eq!(SmallBytes::from(bytes.clone()).as_bytes(), &bytes[..]);
        }
    }
}
