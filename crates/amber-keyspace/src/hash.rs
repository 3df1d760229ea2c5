//! Hash values in Redis's two encodings: a compact field/value list in insertion order
//! (`listpack`) while small, and a hash table (`hashtable`) once it grows past the limits.

use crate::dict::Dict;
use crate::packed::{Packed, Span, Spans};
use std::sync::Arc;

/// When a hash stops being compact (`hash-max-listpack-entries`, `hash-max-listpack-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Most fields a compact hash holds.
    pub max_entries: usize,
    /// Longest field or value a compact hash holds.
    pub max_value: usize,
}

impl Default for HashLimits {
    /// Redis 7.0's built-in defaults.
    fn default() -> Self {
        HashLimits {
            max_entries: 512,
            max_value: 64,
        }
    }
}

/// A hash.
#[derive(Clone)]
pub enum HashValue {
    /// Field/value pairs in insertion order, in one buffer (`OBJECT ENCODING` says `listpack`).
    Pack(Packed),
    /// A hash table (`hashtable`), behind an `Arc` so that small hashes do not pay for its
    /// size and a capture shares it instead of copying it (INV-SHARED-SET).
    Table(Arc<Dict<Box<[u8]>, ()>>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::Pack(Packed::default())
    }
}

impl std::fmt::Debug for HashValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({} fields, {})", self.len(), self.encoding())
    }
}

/// The spans of each (field, value) pair of a packed hash.
fn pair_spans(packed: &Packed) -> impl Iterator<Item = (Span, Span)> + '_ {
    let mut spans = packed.spans();
    std::iter::from_fn(move || Some((spans.next()?, spans.next()?)))
}

/// Iterator over a hash's fields and values.
#[derive(Clone)]
pub struct HashIter<'a>(Fields<'a>);

#[derive(Clone)]
enum Fields<'a> {
    Pack {
        spans: Spans<'a>,
        packed: &'a Packed,
    },
    Table(crate::dict::Iter<'a, Box<[u8]>, ()>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Fields::Pack { spans, packed } => {
                let field = spans.next()?;
                let value = spans.next()?;
                Some((packed.get(field), packed.get(value)))
            }
            Fields::Table(table) => table.next().map(|(f, v)| (f, &**v)),
        }
    }
}

impl HashValue {
    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            HashValue::Pack(packed) => packed.len() / 2,
            HashValue::Table(table) => table.len(),
        }
    }

    /// Whether there is no field.
    pub fn is_empty(&self) -> bool {
        match self {
            HashValue::Pack(packed) => packed.is_empty(),
            HashValue::Table(table) => table.len() == 0,
        }
    }

    /// Redis's name for the encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            HashValue::Pack(_) => "listpack",
            HashValue::Table(_) => "hashtable",
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashValue::Pack(packed) => pair_spans(packed)
                .find(|(f, _)| packed.get(*f) == field)
                .map(|(_, v)| packed.get(v)),
            HashValue::Table(table) => table.get(field).map(|v| &**v),
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts to a table when the hash
    /// outgrows `limits`.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if let HashValue::Pack(packed) = self {
            if field.len() > limits.max_value || value.len() > limits.max_value {
                self.convert();
            } else {
                let found = pair_spans(packed).find(|(f, _)| packed.get(*f) == field);
                if let Some((_, value_span)) = found {
                    packed.splice(value_span.start, value_span.end, &[value]);
                    return false;
                }
                packed.push(&[field, value]);
                if packed.len() / 2 > limits.max_entries {
                    self.convert();
                }
                return true;
            }
        }
        match self {
            HashValue::Table(table) => Arc::make_mut(table).insert(field, value.into()).is_none(),
            HashValue::Pack(_) => unreachable!("converted to a table above"),
        }
    }

    /// Removes `field`; true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Pack(packed) => {
                let found = pair_spans(packed).find(|(f, _)| packed.get(*f) == field);
                match found {
                    Some((f, v)) => {
                        packed.splice(f.start, v.end, &[]);
                        true
                    }
                    None => false,
                }
            }
            HashValue::Table(table) => Arc::make_mut(table).remove(field).is_some(),
        }
    }

    /// A hash of `pairs` built in one pass (loading a file): packed when it fits `limits` and
    /// its fields are distinct, else built field by field (a repeated field keeps its last value).
    pub fn from_pairs(pairs: &[(&[u8], &[u8])], limits: HashLimits) -> HashValue {
        let fits = pairs.len() <= limits.max_entries
            && pairs
                .iter()
                .all(|(f, v)| f.len() <= limits.max_value && v.len() <= limits.max_value);
        let mut fields: Vec<&[u8]> = pairs.iter().map(|(f, _)| *f).collect();
        fields.sort_unstable();
        let distinct = fields.windows(2).all(|w| w[0] != w[1]);
        if fits && distinct {
            let mut packed = Packed::default();
            let flat: Vec<&[u8]> = pairs.iter().flat_map(|(f, v)| [*f, *v]).collect();
            packed.push(&flat);
            return HashValue::Pack(packed);
        }
        let mut hash = HashValue::default();
        for (field, value) in pairs {
            hash.set(field, value, limits);
        }
        hash
    }

    /// Every field and value: insertion order when compact, table order otherwise.
    pub fn iter(&self) -> HashIter<'_> {
        match self {
            HashValue::Pack(packed) => HashIter(Fields::Pack {
                spans: packed.spans(),
                packed,
            }),
            HashValue::Table(table) => HashIter(Fields::Table(table.iter())),
        }
    }

    /// One step of `HSCAN`: a compact hash is returned whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            HashValue::Pack(packed) => {
                pair_spans(packed).for_each(|(f, v)| visit(packed.get(f), packed.get(v)));
                0
            }
            HashValue::Table(table) => table.scan(cursor, |f, v| visit(f, v)),
        }
    }

    /// A field picked at random, `random` being a source of random numbers.
    pub fn random_field(&self, mut random: impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match self {
            HashValue::Pack(packed) if packed.is_empty() => None,
            HashValue::Pack(packed) => {
                let index = (random() % (packed.len() / 2) as u64) as usize;
                pair_spans(packed)
                    .nth(index)
                    .map(|(f, v)| (packed.get(f), packed.get(v)))
            }
            HashValue::Table(table) => {
                let field = table.random_key(random)?;
                table.get(field).map(|v| (field, &**v))
            }
        }
    }

    fn convert(&mut self) {
        if let HashValue::Pack(packed) = self {
            let mut table = Dict::new();
            table.reserve(packed.len() / 2);
            for (f, v) in pair_spans(packed) {
                table.insert_owned(packed.get(f).into(), packed.get(v).into());
            }
            *self = HashValue::Table(Arc::new(table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn building_in_one_pass_equals_setting_field_by_field(
            pairs in prop::collection::vec((prop::collection::vec(0u8..4, 0..3), prop::collection::vec(any::<u8>(), 0..5)), 0..12),
            max_entries in 0usize..10,
        ) {
            let limits = HashLimits { max_entries, max_value: 3 };
            let borrowed: Vec<(&[u8], &[u8])> = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
            let built = HashValue::from_pairs(&borrowed, limits);
            let mut stepwise = HashValue::default();
            for (f, v) in &borrowed {
                stepwise.set(f, v, limits);
            }
            prop_assert_eq!(built.encoding(), stepwise.encoding());
            let mut a: Vec<_> = built.iter().collect();
            let mut b: Vec<_> = stepwise.iter().collect();
            if built.encoding() == "hashtable" { a.sort(); b.sort(); }
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn converts_at_the_limits_and_keeps_insertion_order_until_then() {
        let limits = HashLimits {
            max_entries: 3,
            max_value: 8,
        };
        let mut hash = HashValue::default();
        assert!(hash.set(b"b", b"1", limits));
        assert!(hash.set(b"a", b"2", limits));
        assert!(!hash.set(b"b", b"3", limits));
        let order: Vec<&[u8]> = hash.iter().map(|(f, _)| f).collect();
        assert_eq!(order, [&b"b"[..], b"a"]);
        assert_eq!(hash.encoding(), "listpack");
        hash.set(b"c", b"x", limits);
        assert_eq!(hash.encoding(), "listpack");
        hash.set(b"d", b"x", limits);
        assert_eq!(hash.encoding(), "hashtable", "more than max_entries fields");
        let mut long = HashValue::default();
        long.set(b"f", b"123456789", limits);
        assert_eq!(
            long.encoding(),
            "hashtable",
            "a value longer than max_value"
        );
        assert_eq!(long.get(b"f"), Some(&b"123456789"[..]));
        assert!(long.remove(b"f"));
        assert!(long.is_empty());
    }
}
