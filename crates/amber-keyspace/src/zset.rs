//! Sorted sets: members ordered by (score, member), with Redis's encoding names — `listpack`
//! while small, `skiplist` once past `zset-max-listpack-entries` / `-value` (never back).

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use crate::dict::Dict;
use crate::packed::{Packed, Span};
use crate::ranked::{Ranked, RankedIter};

/// A score with a total order (scores are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl crate::ranked::Summarized for (Score, Box<[u8]>) {
    type Summary = Score;

    fn summary(&self) -> Score {
        self.0
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // -0 and 0 are equal scores, as in Redis.
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// When a sorted set stops being compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZsetLimits {
    /// `zset-max-listpack-entries`
    pub max_entries: usize,
    /// `zset-max-listpack-value`
    pub max_value: usize,
}

impl Default for ZsetLimits {
    fn default() -> Self {
        ZsetLimits {
            max_entries: 128,
            max_value: 64,
        }
    }
}

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZsetValue {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// (score, member) pairs in one buffer, sorted by score then member; a score is its 8
    /// little-endian bytes (`OBJECT ENCODING` says `listpack`).
    Small(Packed),
    /// A member → score map and the (score, member) order (`skiplist`), behind an `Arc` so
    /// that small sets do not pay for its size and a capture shares it (INV-SHARED-SET).
    Big(Arc<Big>),
}

/// A big sorted set, as Redis's `skiplist` encoding: a hash table for a member's score and
/// an order with ranks, so that a lookup, a rank and the start of a range are each
/// O(log n) at most.
#[derive(Clone)]
struct Big {
    /// Member → score, in a table that resizes a few buckets at a time (INV-REHASH).
    scores: Dict<f64>,
    /// (score, member) in order.
    order: Ranked<(Score, Box<[u8]>)>,
}

impl std::fmt::Debug for Big {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Big({} members)", self.order.len())
    }
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Small(Packed::default())
    }
}

/// The (score span, member span) pairs of a small sorted set.
fn pairs(packed: &Packed) -> impl Iterator<Item = (Span, Span)> + '_ {
    let mut spans = packed.spans();
    std::iter::from_fn(move || Some((spans.next()?, spans.next()?)))
}

/// Marks a score stored as its 8 raw bytes (other scores are integers in decimal, as a
/// listpack stores them: "3" takes one byte instead of eight).
const RAW_SCORE: u8 = 0xff;

/// Encodes `score` into `buf`; returns the bytes used.
pub(crate) fn encode_score(score: f64, buf: &mut [u8; 20]) -> &[u8] {
    let integral = score.fract() == 0.0 && score.abs() < 9.0e15;
    if !integral {
        buf[0] = RAW_SCORE;
        buf[1..9].copy_from_slice(&score.to_le_bytes());
        return &buf[..9];
    }
    amber_protocol::format_i64(score as i64, buf)
}

fn score_at(packed: &Packed, span: Span) -> f64 {
    let bytes = packed.get(span);
    if bytes.len() == 9 && bytes[0] == RAW_SCORE {
        let raw: [u8; 8] = bytes[1..].try_into().unwrap_or([0; 8]);
        return f64::from_le_bytes(raw);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .map_or(0.0, |n| n as f64)
}

impl ZsetValue {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(packed) => packed.len() / 2,
            Repr::Big(big) => big.scores.len(),
        }
    }

    /// Reads the start of the set's memory (see [`crate::Value::touch`]).
    pub fn touch(&self) -> u64 {
        match &self.repr {
            Repr::Small(packed) => u64::from(packed.first_byte()),
            Repr::Big(big) => big.scores.len() as u64,
        }
    }

    /// As [`ZsetValue::touch`], with both ends of a small set's buffer.
    pub fn touch_for_copy(&self) -> u64 {
        match &self.repr {
            Repr::Small(packed) => packed.ends(),
            Repr::Big(big) => big.scores.len() as u64,
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's name for the encoding.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Small(_) => "listpack",
            Repr::Big(_) => "skiplist",
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small(packed) => pairs(packed)
                .find(|(_, m)| packed.get(*m) == member)
                .map(|(s, _)| score_at(packed, s)),
            Repr::Big(big) => big.scores.get(member).copied(),
        }
    }

    /// Sets `member`'s score; true if the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: ZsetLimits) -> bool {
        if member.len() > limits.max_value {
            self.convert();
        }
        match &mut self.repr {
            Repr::Small(packed) => {
                let existing = pairs(packed).find(|(_, m)| packed.get(*m) == member);
                if let Some((s, m)) = existing {
                    packed.splice(s.start, m.end, &[]);
                }
                // A listpack stores -0 as the integer 0, as Redis does.
                let score = if score == 0.0 { 0.0 } else { score };
                let key = (Score(score), member);
                let at = pairs(packed)
                    .find(|(s, m)| (Score(score_at(packed, *s)), packed.get(*m)) > key)
                    .map_or(packed.byte_len(), |(s, _)| s.start);
                let mut buf = [0u8; 20];
                packed.insert_at(at, &[encode_score(score, &mut buf), member]);
                let new = existing.is_none();
                if packed.len() / 2 > limits.max_entries {
                    self.convert();
                }
                new
            }
            Repr::Big(big) => {
                let Big { scores, order } = Arc::make_mut(big);
                let new = match scores.insert(member, score) {
                    Some(old) => {
                        order.remove(&(Score(old), Box::from(member)));
                        false
                    }
                    None => true,
                };
                order.insert((Score(score), member.into()));
                new
            }
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Small(packed) => {
                let found = pairs(packed).find(|(_, m)| packed.get(*m) == member);
                match found {
                    Some((s, m)) => {
                        packed.splice(s.start, m.end, &[]);
                        true
                    }
                    None => false,
                }
            }
            Repr::Big(big) => {
                let big = Arc::make_mut(big);
                match big.scores.remove(member) {
                    Some(score) => {
                        big.order.remove(&(Score(score), Box::from(member)));
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// A sorted set of `members` built in one pass (loading a file): packed when it fits
    /// `limits` and its members are distinct, else built member by member.
    pub fn from_members(members: &[(&[u8], f64)], limits: ZsetLimits) -> ZsetValue {
        let fits = members.len() <= limits.max_entries
            && members.iter().all(|(m, _)| m.len() <= limits.max_value);
        let mut names: Vec<&[u8]> = members.iter().map(|(m, _)| *m).collect();
        names.sort_unstable();
        let distinct = names.windows(2).all(|w| w[0] != w[1]);
        if !(fits && distinct) {
            let mut zset = ZsetValue::default();
            for (member, score) in members {
                zset.insert(member, *score, limits);
            }
            return zset;
        }
        let mut ordered: Vec<(Score, &[u8])> = members
            .iter()
            .map(|(m, s)| (Score(if *s == 0.0 { 0.0 } else { *s }), *m))
            .collect();
        ordered.sort_unstable();
        let mut packed = Packed::default();
        let mut buffers = vec![[0u8; 20]; ordered.len()];
        let mut flat: Vec<&[u8]> = Vec::with_capacity(ordered.len() * 2);
        for ((score, member), buf) in ordered.iter().zip(buffers.iter_mut()) {
            flat.push(encode_score(score.0, buf));
            flat.push(member);
        }
        packed.push(&flat);
        ZsetValue {
            repr: Repr::Small(packed),
        }
    }

    /// A compact sorted set from `packed`, which holds (encoded score, member) pairs already
    /// sorted by score then member, with distinct members.
    pub(crate) fn from_sorted_packed(packed: Packed) -> ZsetValue {
        ZsetValue {
            repr: Repr::Small(packed),
        }
    }

    /// Members with scores, lowest first.
    pub fn iter(&self) -> ZsetIter<'_> {
        self.range(0..self.len())
    }

    /// The members (with scores) of ranks `ranks`, clamped to the set, lowest first. A big
    /// set finds the first in O(log n), as Redis's skiplist does.
    pub fn range(&self, ranks: Range<usize>) -> ZsetIter<'_> {
        match &self.repr {
            Repr::Small(packed) => {
                let count = ranks.end.saturating_sub(ranks.start);
                ZsetIter(Items::Small(
                    pairs(packed)
                        .skip(ranks.start)
                        .take(count)
                        .map(|(s, m)| (packed.get(m), score_at(packed, s)))
                        .collect::<Vec<_>>()
                        .into_iter(),
                ))
            }
            Repr::Big(big) => ZsetIter(Items::Big(big.order.iter(ranks))),
        }
    }

    /// The rank of the first member (in order) for which `below(member, score)` is false,
    /// `below` being true for a prefix of the order and false after it (as
    /// `slice::partition_point`); O(log n) for a big set.
    pub fn partition_point(&self, mut below: impl FnMut(&[u8], f64) -> bool) -> usize {
        match &self.repr {
            Repr::Small(packed) => pairs(packed)
                .position(|(s, m)| !below(packed.get(m), score_at(packed, s)))
                .unwrap_or(packed.len() / 2),
            Repr::Big(big) => big
                .order
                .partition_point(|(score, member)| below(member, score.0)),
        }
    }

    /// Members with scores from the first whose score is at least `min`, lowest first (the
    /// start of a score range without a walk from the lowest member).
    pub fn iter_from(&self, min: f64) -> ZsetIter<'_> {
        let start = self.partition_point(|_, score| score < min);
        self.range(start..self.len())
    }

    /// 0-based rank of `member` (ascending).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Small(packed) => pairs(packed).position(|(_, m)| packed.get(m) == member),
            Repr::Big(big) => {
                let score = *big.scores.get(member)?;
                big.order.rank(&(Score(score), Box::from(member)))
            }
        }
    }

    /// One step of `ZSCAN` from `cursor`, visiting members with their scores; returns the
    /// next cursor (0 when done). A small set is visited whole with cursor 0, a big one a
    /// bucket of its member table at a time, as Redis does.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Small(packed) => {
                pairs(packed).for_each(|(s, m)| visit(packed.get(m), score_at(packed, s)));
                0
            }
            Repr::Big(big) => big
                .scores
                .scan(cursor, |member, score| visit(member, *score)),
        }
    }

    /// The member (with its score) of rank `rank`, lowest first; O(log n) for a big set.
    pub fn nth(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.range(rank..rank.saturating_add(1)).next()
    }

    /// The statistics of a big set's member table, as `DEBUG HTSTATS-KEY` shows them.
    pub(crate) fn table_stats(&self) -> Option<String> {
        match &self.repr {
            Repr::Small(_) => None,
            Repr::Big(big) => Some(big.scores.stats_text()),
        }
    }

    /// Whether a big set's member table is resizing (INV-REHASH).
    pub(crate) fn is_rehashing(&self) -> bool {
        matches!(&self.repr, Repr::Big(big) if big.scores.is_rehashing())
    }

    /// Moves a few buckets of a resize under way, unless a capture shares the set.
    pub(crate) fn continue_resize(&mut self) {
        if let Repr::Big(big) = &mut self.repr
            && let Some(big) = Arc::get_mut(big)
        {
            big.scores.rehash_step();
        }
    }

    /// Switches to the big representation (never back, as in Redis).
    fn convert(&mut self) {
        let Repr::Small(packed) = &self.repr else {
            return;
        };
        let mut scores = Dict::new();
        let mut order = Ranked::default();
        for (s, m) in pairs(packed) {
            let (member, score) = (packed.get(m), score_at(packed, s));
            scores.insert(member, score);
            order.insert((Score(score), Box::from(member)));
        }
        self.repr = Repr::Big(Arc::new(Big { scores, order }));
    }
}

/// Iterator over a sorted set's members and scores, lowest first (reversible).
#[derive(Clone)]
pub struct ZsetIter<'a>(Items<'a>);

#[derive(Clone)]
enum Items<'a> {
    /// Over a small set (decoded up front: at most `zset-max-listpack-entries` members).
    Small(std::vec::IntoIter<(&'a [u8], f64)>),
    /// Over a big set.
    Big(RankedIter<'a, (Score, Box<[u8]>)>),
}

impl<'a> Iterator for ZsetIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Items::Small(items) => items.next(),
            Items::Big(items) => items.next().map(|(score, member)| (&**member, score.0)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Items::Small(items) => items.size_hint(),
            Items::Big(items) => items.size_hint(),
        }
    }
}

impl DoubleEndedIterator for ZsetIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Items::Small(items) => items.next_back(),
            Items::Big(items) => items
                .next_back()
                .map(|(score, member)| (&**member, score.0)),
        }
    }
}

impl ExactSizeIterator for ZsetIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn building_in_one_pass_equals_inserting_one_by_one(
            members in prop::collection::vec((prop::collection::vec(0u8..4, 0..3), prop_oneof![(-5i64..5).prop_map(|n| n as f64), any::<f64>().prop_filter("no NaN", |s| !s.is_nan())]), 0..12),
            max_entries in 0usize..10,
        ) {
            let limits = ZsetLimits { max_entries, max_value: 3 };
            let borrowed: Vec<(&[u8], f64)> = members.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            let built = ZsetValue::from_members(&borrowed, limits);
            let mut stepwise = ZsetValue::default();
            for (m, s) in &borrowed {
                stepwise.insert(m, *s, limits);
            }
            prop_assert_eq!(built.encoding(), stepwise.encoding());
            let a: Vec<_> = built.iter().collect();
            let b: Vec<_> = stepwise.iter().collect();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn scores_round_trip_through_their_compact_form() {
        let limits = ZsetLimits::default();
        let mut z = ZsetValue::default();
        let scores = [
            0.0,
            -0.0,
            1.0,
            -7.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -8.9e15,
            123456789.0,
        ];
        for (i, score) in scores.iter().enumerate() {
            z.insert(format!("m{i}").as_bytes(), *score, limits);
        }
        for (i, score) in scores.iter().enumerate() {
            assert_eq!(z.score(format!("m{i}").as_bytes()), Some(*score), "{score}");
        }
        let ordered: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
    }

    #[test]
    fn orders_by_score_then_member_and_converts() {
        let limits = ZsetLimits {
            max_entries: 2,
            max_value: 64,
        };
        let mut z = ZsetValue::default();
        assert!(z.insert(b"b", 1.0, limits));
        assert!(z.insert(b"a", 1.0, limits));
        assert!(!z.insert(b"b", 0.5, limits));
        let order: Vec<&[u8]> = z.iter().map(|(m, _)| m).collect();
        assert_eq!(order, [&b"b"[..], b"a"]);
        assert_eq!(z.rank(b"a"), Some(1));
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"c", f64::INFINITY, limits);
        assert_eq!(z.encoding(), "skiplist");
        assert!(z.remove(b"c") && !z.remove(b"c"));
        assert_eq!(z.encoding(), "skiplist", "never converts back");
    }
}
