//! Sorted sets: members ordered by (score, member), with Redis's encoding names — `listpack`
//! while small, `skiplist` once past `zset-max-listpack-entries` / `-value` (never back).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A score with a total order (scores are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

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
    scores: HashMap<Box<[u8]>, f64>,
    order: BTreeSet<(Score, Box<[u8]>)>,
    big: bool,
}

impl ZsetValue {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Redis's name for the encoding.
    pub fn encoding(&self) -> &'static str {
        if self.big { "skiplist" } else { "listpack" }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; true if the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: ZsetLimits) -> bool {
        let new = match self.scores.get(member).copied() {
            Some(old) => {
                self.order.remove(&(Score(old), Box::from(member)));
                false
            }
            None => true,
        };
        self.scores.insert(member.into(), score);
        self.order.insert((Score(score), member.into()));
        if member.len() > limits.max_value || self.scores.len() > limits.max_entries {
            self.big = true;
        }
        new
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(Score(score), Box::from(member)));
                true
            }
            None => false,
        }
    }

    /// Members with scores, lowest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order
            .iter()
            .map(|(score, member)| (&**member, score.0))
    }

    /// 0-based rank of `member` (ascending).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(
            self.order
                .range(..(Score(score), Box::from(member)))
                .count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
