//! Values as the file stores them: compact collections stay one blob and plain collections one
//! buffer, so a consumer (a server loading a snapshot) can build its own representation from
//! [`Element`]s without an allocation per element.

use crate::encodings::{self, Element};
use crate::error::ErrorKind;
use crate::model::{Value, types};

/// Byte strings back to back in one buffer, with where each one ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strings {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Strings {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no string.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(move |(start, end)| &self.bytes[start..end])
    }

    /// An empty list of strings that will fill `bytes` (an emptied, reusable buffer).
    pub(crate) fn with_buffer(bytes: Vec<u8>) -> Strings {
        Strings {
            bytes,
            ends: Vec::new(),
        }
    }

    /// The byte buffer, for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// The buffer a new string is appended to; call [`Strings::end_string`] after writing it.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Marks the end of the string just appended to the buffer.
    pub(crate) fn end_string(&mut self) {
        self.ends.push(self.bytes.len());
    }

    fn into_vecs(self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

/// One node of a quicklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicklistNode {
    /// A single large element stored as is (RDB 10+ `PLAIN` nodes).
    Plain(Vec<u8>),
    /// A listpack of elements (RDB 10+).
    Listpack(Vec<u8>),
    /// A ziplist of elements (RDB 7–9).
    Ziplist(Vec<u8>),
}

/// A value in the form the file stored it. Blobs are checked as they are visited or decoded:
/// a corrupt one makes [`RawValue::visit`] or [`RawValue::decode`] fail.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A value decoded into the neutral form (strings, plain sorted sets, streams, hashes with
    /// field TTLs).
    Decoded(Value),
    /// A compact collection: a listpack, ziplist, intset or zipmap, as `type_byte` says.
    Compact {
        /// The value type byte.
        type_byte: u8,
        /// The encoded collection.
        blob: Vec<u8>,
    },
    /// A list stored as quicklist nodes.
    Quicklist(Vec<QuicklistNode>),
    /// A stream with its nodes as stored: [`crate::PackedStream::unpack`] (or
    /// [`RawValue::decode`]) decompresses and checks them.
    Stream(Box<crate::PackedStream>),
    /// A plain list, set or hash (fields and values alternating), as `type_byte` says.
    Plain {
        /// The value type byte.
        type_byte: u8,
        /// The elements.
        strings: Strings,
    },
}

impl RawValue {
    /// Calls `visit` with each element of a collection, in file order (fields and values
    /// alternate in hashes, members and scores in sorted sets); returns the element count.
    /// A [`RawValue::Decoded`] value has no raw elements: 0. The blob is checked as it goes, so
    /// an error may come after some elements were visited.
    pub fn visit<'a>(&'a self, mut visit: impl FnMut(Element<'a>)) -> Result<usize, ErrorKind> {
        match self {
            RawValue::Decoded(_) | RawValue::Stream(_) => Ok(0),
            RawValue::Compact { type_byte, blob } => visit_compact(*type_byte, blob, visit),
            RawValue::Quicklist(nodes) => {
                let mut count = 0;
                for node in nodes {
                    count += match node {
                        QuicklistNode::Plain(bytes) => {
                            visit(Element::Bytes(bytes));
                            1
                        }
                        QuicklistNode::Listpack(blob) => {
                            encodings::visit_listpack(blob, &mut visit)?
                        }
                        QuicklistNode::Ziplist(blob) => encodings::visit_ziplist(blob, &mut visit)?,
                    };
                }
                Ok(count)
            }
            RawValue::Plain { strings, .. } => {
                for string in strings.iter() {
                    visit(Element::Bytes(string));
                }
                Ok(strings.len())
            }
        }
    }

    /// Converts to the neutral form.
    pub fn decode(self) -> Result<Value, ErrorKind> {
        Ok(match self {
            RawValue::Decoded(value) => value,
            RawValue::Stream(mut packed) => Value::Stream(Box::new(packed.unpack()?)),
            RawValue::Compact { type_byte, blob } => {
                let items = collect(&RawValue::Compact { type_byte, blob })?;
                match type_byte {
                    types::HASH_ZIPMAP | types::HASH_ZIPLIST | types::HASH_LISTPACK => {
                        Value::Hash(pairs(items)?)
                    }
                    types::ZSET_ZIPLIST | types::ZSET_LISTPACK => Value::SortedSet(
                        pairs(items)?
                            .into_iter()
                            .map(|(member, score)| Ok((member, parse_score(&score)?)))
                            .collect::<Result<_, ErrorKind>>()?,
                    ),
                    types::SET_INTSET | types::SET_LISTPACK => Value::Set(items),
                    _ => Value::List(items),
                }
            }
            RawValue::Quicklist(nodes) => Value::List(collect(&RawValue::Quicklist(nodes))?),
            RawValue::Plain { type_byte, strings } => match type_byte {
                types::SET => Value::Set(strings.into_vecs()),
                types::HASH => Value::Hash(pairs(strings.into_vecs())?),
                _ => Value::List(strings.into_vecs()),
            },
        })
    }
}

fn visit_compact<'a>(
    type_byte: u8,
    blob: &'a [u8],
    visit: impl FnMut(Element<'a>),
) -> Result<usize, ErrorKind> {
    match type_byte {
        types::HASH_ZIPMAP => encodings::visit_zipmap(blob, visit),
        types::SET_INTSET => encodings::visit_intset(blob, visit),
        types::LIST_ZIPLIST | types::ZSET_ZIPLIST | types::HASH_ZIPLIST => {
            encodings::visit_ziplist(blob, visit)
        }
        _ => encodings::visit_listpack(blob, visit),
    }
}

fn collect(raw: &RawValue) -> Result<Vec<Vec<u8>>, ErrorKind> {
    let mut items = Vec::new();
    raw.visit(|element| items.push(element.to_vec()))?;
    Ok(items)
}

/// Field/value pairs of a hash.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Pairs up alternating fields and values.
pub(crate) fn pairs(items: Vec<Vec<u8>>) -> Result<Pairs, ErrorKind> {
    if !items.len().is_multiple_of(2) {
        return Err(ErrorKind::corrupt("hash", "a field without a value"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        out.push((field, value));
    }
    Ok(out)
}

/// A score written as text (`inf`, `+inf` and `-inf` included).
pub fn parse_score(text: &[u8]) -> Result<f64, ErrorKind> {
    let text = std::str::from_utf8(text).map_err(|_| ErrorKind::corrupt("score", "not text"))?;
    match text {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| ErrorKind::corrupt("score", format!("'{text}' is not a number"))),
    }
}
