//! Building values from a flat sequence of elements, the way a loaded file presents them,
//! with buffers reused from one value to the next: a compact value costs one allocation.

use crate::dict::Dict;
use crate::hash::{HashLimits, HashValue};
use crate::list::{ListLimits, ListValue};
use crate::packed::Scratch;
use crate::quicklist::Quicklist;
use crate::set::{SetValue, member_as_int};
use crate::zset::{Score, ZsetLimits, ZsetValue, encode_score};

/// Reusable buffers that collect one value's elements, then build it in its final encoding.
pub struct ValueBuilder {
    elements: Scratch,
    count: usize,
    longest: usize,
    scores: Vec<f64>,
    /// Whether the scored members so far came in (score, member) order, each after the last.
    ascending: bool,
    /// Where the last member starts in `elements`.
    last_member: usize,
    out: Scratch,
    hashes: Vec<u64>,
}

impl Default for ValueBuilder {
    fn default() -> Self {
        ValueBuilder {
            elements: Scratch::default(),
            count: 0,
            longest: 0,
            scores: Vec::new(),
            ascending: true,
            last_member: 0,
            out: Scratch::default(),
            hashes: Vec::new(),
        }
    }
}

impl ValueBuilder {
    /// Forgets the previous value's elements (keeping the buffers).
    pub fn clear(&mut self) {
        self.elements.clear();
        self.count = 0;
        self.longest = 0;
        self.scores.clear();
        self.ascending = true;
        self.last_member = 0;
    }

    /// Number of elements pushed since the last [`ValueBuilder::clear`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was pushed since the last [`ValueBuilder::clear`].
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds an element (a list element, a set member, or alternately a hash field and value).
    pub fn push(&mut self, element: &[u8]) {
        self.elements.push(element);
        self.count += 1;
        self.longest = self.longest.max(element.len());
    }

    /// Adds a sorted set member with its score (never NaN).
    pub fn push_scored(&mut self, member: &[u8], score: f64) {
        if let Some(&last_score) = self.scores.last() {
            let last_member = self.elements.element_at(self.last_member);
            self.ascending &= (Score(last_score), last_member) < (Score(score), member);
        }
        self.last_member = self.elements.byte_len();
        self.push(member);
        self.scores.push(score);
    }

    /// The elements as a list: packed when they fit `limits`.
    pub fn list(&self, limits: ListLimits) -> ListValue {
        if self.count <= limits.max_entries && self.elements.byte_len() <= limits.max_bytes {
            return ListValue::Small(self.elements.to_packed());
        }
        ListValue::Big(std::sync::Arc::new(Quicklist::from_items(
            self.elements.iter(),
            limits,
        )))
    }

    /// The elements as a set: an intset when they are all integers and few enough.
    pub fn set(&self, max_intset: usize) -> SetValue {
        if self.count <= max_intset {
            let ints: Option<Vec<i64>> = self.elements.iter().map(member_as_int).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                ints.dedup();
                return SetValue::Ints(ints);
            }
        }
        let mut table = Dict::new();
        table.reserve(self.count);
        for member in self.elements.iter() {
            table.insert(member, ());
        }
        SetValue::Table(table)
    }

    /// Alternating fields and values as a hash: compact when they fit `limits` and the fields
    /// are distinct, else a table (a repeated field keeps its last value).
    pub fn hash(&mut self, limits: HashLimits) -> HashValue {
        let fits = self.count / 2 <= limits.max_entries && self.longest <= limits.max_value;
        if fits && distinct(self.elements.iter().step_by(2), &mut self.hashes) {
            return HashValue::Pack(self.elements.to_packed());
        }
        let mut hash = HashValue::default();
        let mut items = self.elements.iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            hash.set(field, value, limits);
        }
        hash
    }

    /// The scored members as a sorted set. Members that arrive in order (as Redis writes
    /// them) and distinct are encoded in one pass; any other input is sorted first.
    pub fn zset(&mut self, limits: ZsetLimits) -> ZsetValue {
        let fits = self.count <= limits.max_entries && self.longest <= limits.max_value;
        if fits && self.ascending && distinct(self.elements.iter(), &mut self.hashes) {
            self.out.clear();
            let mut text = [0u8; 20];
            for (member, &score) in self.elements.iter().zip(&self.scores) {
                self.out.push(encode_score(score, &mut text));
                self.out.push(member);
            }
            return ZsetValue::from_sorted_packed(self.out.to_packed());
        }
        let members: Vec<(&[u8], f64)> = self
            .elements
            .iter()
            .zip(self.scores.iter().copied())
            .collect();
        ZsetValue::from_members(&members, limits)
    }
}

/// Whether no two `items` are equal, judged by a quick hash: a collision (or a real repeat)
/// answers false, and the caller takes the careful path.
fn distinct<'a>(items: impl Iterator<Item = &'a [u8]>, hashes: &mut Vec<u64>) -> bool {
    hashes.clear();
    hashes.extend(items.map(fnv1a));
    hashes.sort_unstable();
    hashes.windows(2).all(|pair| pair[0] != pair[1])
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(elements: &[&str]) -> ValueBuilder {
        let mut builder = ValueBuilder::default();
        for element in elements {
            builder.push(element.as_bytes());
        }
        builder
    }

    #[test]
    fn hashes_are_compact_unless_a_field_repeats_or_limits_are_passed() {
        let limits = HashLimits::default();
        let hash = builder(&["f1", "v1", "f2", "v2"]).hash(limits);
        assert_eq!(hash.encoding(), "listpack");
        assert_eq!(hash.get(b"f2"), Some(&b"v2"[..]));
        let repeated = builder(&["f", "old", "f", "new"]).hash(limits);
        assert_eq!(repeated.len(), 1);
        assert_eq!(repeated.get(b"f"), Some(&b"new"[..]));
        let tight = HashLimits {
            max_entries: 1,
            ..limits
        };
        assert_eq!(
            builder(&["a", "1", "b", "2"]).hash(tight).encoding(),
            "hashtable"
        );
    }

    #[test]
    fn sorted_sets_accept_any_order_and_repeats() {
        let limits = ZsetLimits::default();
        for input in [
            vec![("a", 1.0), ("b", 2.0), ("c", 2.0)],
            vec![("c", 2.0), ("a", 1.0), ("b", 2.0)],
            vec![("a", 5.0), ("b", 2.0), ("c", 2.0), ("a", 1.0)],
        ] {
            let mut builder = ValueBuilder::default();
            for (member, score) in &input {
                builder.push_scored(member.as_bytes(), *score);
            }
            let zset = builder.zset(limits);
            let got: Vec<(Vec<u8>, f64)> = zset.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            let expected = vec![
                (b"a".to_vec(), 1.0),
                (b"b".to_vec(), 2.0),
                (b"c".to_vec(), 2.0),
            ];
            assert_eq!(got, expected, "{input:?}");
            assert_eq!(zset.encoding(), "listpack");
        }
    }

    #[test]
    fn sets_pick_intset_for_few_integers() {
        let ints = builder(&["3", "1", "2", "1"]).set(512);
        assert_eq!((ints.encoding(), ints.len()), ("intset", 3));
        let table = builder(&["3", "x"]).set(512);
        assert_eq!((table.encoding(), table.len()), ("hashtable", 2));
        assert_eq!(builder(&["1", "2"]).set(1).encoding(), "hashtable");
    }
}
