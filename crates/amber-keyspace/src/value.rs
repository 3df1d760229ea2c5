//! Values stored under keys, in the encodings Redis reports with `OBJECT ENCODING`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::hash::HashValue;
use crate::set::SetValue;
use crate::zset::ZsetValue;

/// Longest string Redis stores in its compact `embstr` encoding.
pub const EMBSTR_MAX_LEN: usize = 44;

/// Shortest `raw` string a capture shares instead of copying ([`StrValue::share_if_long`]).
const SHARE_MIN_LEN: usize = 64 * 1024;

/// A string value.
#[derive(Debug, Clone, Eq)]
pub enum StrValue {
    /// An integer stored as a number (`OBJECT ENCODING` says `int`).
    Int(i64),
    /// A short string (up to 44 bytes) stored in one allocation (`embstr`).
    Embstr(crate::SmallBytes),
    /// Any other string, with room to grow in place for `APPEND`/`SETRANGE` (`raw`).
    Raw(Vec<u8>),
    /// A long `raw` string shared with a running capture (INV-SHARED-SET); it becomes `Raw`
    /// again at its next change ([`StrValue::make_raw`]), copied only if still shared.
    Shared(Arc<Vec<u8>>),
}

impl PartialEq for StrValue {
    /// As the derived comparison, except that a `Raw` and a `Shared` string of the same
    /// bytes are equal (sharing is not an encoding).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StrValue::Int(a), StrValue::Int(b)) => a == b,
            (StrValue::Embstr(a), StrValue::Embstr(b)) => a == b,
            (StrValue::Raw(_) | StrValue::Shared(_), StrValue::Raw(_) | StrValue::Shared(_)) => {
                self.as_bytes() == other.as_bytes()
            }
            _ => false,
        }
    }
}

impl StrValue {
    /// Stores `bytes` in the encoding Redis would pick for a value set by `SET`.
    pub fn from_bytes(bytes: &[u8]) -> StrValue {
        if let Some(number) = parse_int(bytes).filter(|_| bytes.len() <= 20) {
            return StrValue::Int(number);
        }
        if bytes.len() <= EMBSTR_MAX_LEN {
            StrValue::Embstr(bytes.into())
        } else {
            StrValue::Raw(bytes.to_vec())
        }
    }

    /// Stores `bytes` as a string even when they spell an integer, as Redis keeps a value it
    /// formatted itself (the result of `INCRBYFLOAT` is `embstr`, not `int`).
    pub fn from_text(bytes: &[u8]) -> StrValue {
        if bytes.len() <= EMBSTR_MAX_LEN {
            StrValue::Embstr(bytes.into())
        } else {
            StrValue::Raw(bytes.to_vec())
        }
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            StrValue::Int(number) => Cow::Owned(number.to_string().into_bytes()),
            StrValue::Embstr(bytes) => Cow::Borrowed(bytes.as_bytes()),
            StrValue::Raw(bytes) => Cow::Borrowed(bytes),
            StrValue::Shared(bytes) => Cow::Borrowed(bytes),
        }
    }

    /// Length in bytes of the string form.
    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(number) => decimal_len(*number),
            StrValue::Embstr(bytes) => bytes.len(),
            StrValue::Raw(bytes) => bytes.len(),
            StrValue::Shared(bytes) => bytes.len(),
        }
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The integer value, if the string is one (for `INCR` and friends).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            StrValue::Int(number) => Some(*number),
            StrValue::Embstr(bytes) => parse_int(bytes),
            StrValue::Raw(bytes) if bytes.len() <= 20 => parse_int(bytes),
            StrValue::Raw(_) | StrValue::Shared(_) => None,
        }
    }

    /// A growable buffer holding the string, converting the value to `raw` (as `APPEND` does).
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if let StrValue::Shared(shared) = self {
            // Copied only while a capture's writer still holds it.
            let bytes = Arc::unwrap_or_clone(std::mem::take(shared));
            *self = StrValue::Raw(bytes);
        }
        if !matches!(self, StrValue::Raw(_)) {
            *self = StrValue::Raw(self.as_bytes().into_owned());
        }
        match self {
            StrValue::Raw(bytes) => bytes,
            _ => unreachable!("converted to raw just above"),
        }
    }

    /// Redis's name for the encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Embstr(_) => "embstr",
            StrValue::Raw(_) | StrValue::Shared(_) => "raw",
        }
    }

    /// Turns a long `raw` string into a shared one, in constant time, so that a capture's
    /// clone shares its bytes instead of copying them on the event loop (INV-SHARED-SET).
    pub(crate) fn share_if_long(&mut self) {
        if let StrValue::Raw(bytes) = self
            && bytes.len() >= SHARE_MIN_LEN
        {
            *self = StrValue::Shared(Arc::new(std::mem::take(bytes)));
        }
    }
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    amber_protocol::parse_i64(bytes)
}

fn decimal_len(number: i64) -> usize {
    let sign = usize::from(number < 0);
    let mut magnitude = number.unsigned_abs();
    let mut digits = 1;
    while magnitude >= 10 {
        magnitude /= 10;
        digits += 1;
    }
    digits + sign
}

/// Any value a key can hold. Collections are boxed so that every key's entry stays small.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string.
    Str(StrValue),
    /// A hash.
    Hash(HashValue),
    /// A set, shared with a running capture (INV-SHARED-SET) until it changes.
    Set(Arc<SetValue>),
    /// A sorted set.
    Zset(ZsetValue),
    /// A list, head first (`OBJECT ENCODING` says `quicklist`, as Redis 7.0 always does).
    List(crate::list::ListValue),
    /// A stream, shared with a running capture (INV-SHARED-SET) until it changes.
    Stream(Arc<crate::StreamValue>),
}

impl Value {
    /// Reads the first bytes of the value's heap memory and returns something computed from
    /// them: loads that bring the value into the cache ahead of its use (see
    /// [`crate::Db::for_each_batched`]).
    pub fn touch(&self) -> u64 {
        match self {
            Value::Str(StrValue::Raw(bytes)) => bytes.first().copied().map_or(0, u64::from),
            Value::Str(StrValue::Shared(bytes)) => bytes.first().copied().map_or(0, u64::from),
            Value::Str(_) => 0,
            Value::Hash(HashValue::Pack(packed)) => u64::from(packed.first_byte()),
            Value::Hash(HashValue::Table(table)) => table.len() as u64,
            Value::Set(set) => set.len() as u64,
            Value::Zset(zset) => zset.touch(),
            Value::List(list) => list.touch(),
            Value::Stream(stream) => stream.log.len(),
        }
    }

    /// As [`Value::touch`], one level deeper for what a capture copies next: both ends of a
    /// small packed collection (a set is shared, not copied: only its counts are read).
    pub fn touch_for_copy(&self) -> u64 {
        match self {
            Value::Hash(HashValue::Pack(packed)) => packed.ends(),
            Value::Zset(zset) => zset.touch_for_copy(),
            Value::List(list) => list.touch_for_copy(),
            other => other.touch(),
        }
    }

    /// The statistics of the hash table holding a hash's fields or a set's members, as
    /// `DEBUG HTSTATS-KEY` shows them; `None` for a value kept otherwise.
    pub fn table_stats(&self) -> Option<String> {
        match self {
            Value::Hash(HashValue::Table(table)) => Some(table.stats_text()),
            Value::Set(set) => match &**set {
                SetValue::Table(table) => Some(table.stats_text()),
                SetValue::Ints(_) => None,
            },
            Value::Zset(zset) => zset.table_stats(),
            _ => None,
        }
    }

    /// Moves a few buckets of a hash's or set's table that is resizing (INV-REHASH), as
    /// Redis does on every lookup, so that a collection that is only read after it began to
    /// grow does not keep both tables. A table shared with a running capture is left alone:
    /// moving its buckets would copy it first.
    pub(crate) fn continue_resize(&mut self) {
        match self {
            Value::Hash(HashValue::Table(table)) if table.is_rehashing() => {
                if let Some(table) = Arc::get_mut(table) {
                    table.rehash_step();
                }
            }
            Value::Set(set) if set.is_rehashing() => {
                if let Some(SetValue::Table(table)) = Arc::get_mut(set) {
                    table.rehash_step();
                }
            }
            Value::Zset(zset) if zset.is_rehashing() => zset.continue_resize(),
            _ => {}
        }
    }

    /// The name `TYPE` replies.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::Zset(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name `OBJECT ENCODING` replies.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(value) => value.encoding(),
            Value::Hash(hash) => hash.encoding(),
            Value::Set(set) => set.encoding(),
            Value::List(_) => "quicklist",
            Value::Zset(zset) => zset.encoding(),
            Value::Stream(_) => "stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_32_bytes() {
        // Every key's entry holds one: small hashes and sorted sets live inside it.
        assert_eq!(std::mem::size_of::<Value>(), 32);
        assert!(std::mem::size_of::<crate::HashValue>() <= 24);
        assert!(std::mem::size_of::<crate::ZsetValue>() <= 24);
    }

    #[test]
    fn picks_redis_encodings() {
        assert_eq!(StrValue::from_bytes(b"123").encoding(), "int");
        assert_eq!(
            StrValue::from_bytes(b"-9223372036854775808").encoding(),
            "int"
        );
        assert_eq!(StrValue::from_bytes(b"0123").encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(b"+1").encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 45]).encoding(), "raw");
        assert_eq!(
            StrValue::from_bytes(b"9223372036854775808").encoding(),
            "embstr"
        );
    }

    #[test]
    fn int_strings_keep_their_text() {
        for text in [
            "0",
            "-1",
            "42",
            "-9223372036854775808",
            "9223372036854775807",
        ] {
            let value = StrValue::from_bytes(text.as_bytes());
            assert_eq!(&*value.as_bytes(), text.as_bytes());
            assert_eq!(value.len(), text.len());
        }
    }
}
