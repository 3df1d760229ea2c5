//! Lists: one packed buffer while small (as Redis keeps a small list in a single listpack
//! node), a [`Quicklist`] of packed nodes once past `list-max-listpack-size` (never back).
//! `OBJECT ENCODING` says `quicklist` for both, as Redis 7.0 does.

use std::sync::Arc;

use crate::packed::{Packed, Spans};
use crate::quicklist::{Quicklist, QuicklistIter, without_indexes};
use crate::small::SmallBytes;

/// When a list stops being packed: Redis's `list-max-listpack-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Most elements a packed list holds.
    pub max_entries: usize,
    /// Most bytes a packed list holds.
    pub max_bytes: usize,
}

/// Redis's size limit of a count-limited quicklist node (`SIZE_SAFETY_LIMIT`).
const SAFETY_BYTES: usize = 8192;

impl ListLimits {
    /// Limits for a `list-max-listpack-size` value: -1 to -5 are 4 to 64 KiB per node, a
    /// positive value is an element count (nodes still stay under 8 KiB).
    pub fn from_setting(fill: i64) -> ListLimits {
        if fill < 0 {
            let level = fill.unsigned_abs().min(5) as u32;
            ListLimits {
                max_entries: usize::MAX,
                max_bytes: 4096 << (level - 1),
            }
        } else {
            ListLimits {
                max_entries: (fill as usize).max(1),
                max_bytes: SAFETY_BYTES,
            }
        }
    }

    fn allow(&self, packed: &Packed) -> bool {
        packed.byte_len() <= self.max_bytes
            && (self.max_entries == usize::MAX || packed.len() <= self.max_entries)
    }
}

impl Default for ListLimits {
    /// Redis 7.0's default, `-2` (8 KiB).
    fn default() -> Self {
        ListLimits::from_setting(-2)
    }
}

/// A list, head first.
#[derive(Clone)]
pub enum ListValue {
    /// Elements back to back in one buffer.
    Small(Packed),
    /// Nodes of packed elements, behind an `Arc` that a capture shares (INV-SHARED-SET).
    Big(Arc<Quicklist>),
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue::Small(Packed::default())
    }
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl ListValue {
    /// A list of `items` in order, packed when they fit `limits`.
    pub fn from_items<'a>(items: impl Iterator<Item = &'a [u8]>, limits: ListLimits) -> ListValue {
        let mut list = ListValue::default();
        list.extend_back(items, limits);
        list
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ListValue::Small(packed) => packed.len(),
            ListValue::Big(list) => list.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        match self {
            ListValue::Small(packed) => packed.is_empty(),
            ListValue::Big(list) => list.is_empty(),
        }
    }

    /// Whether the list is in its packed form (for tests and `DEBUG`).
    pub fn is_packed(&self) -> bool {
        matches!(self, ListValue::Small(_))
    }

    /// The element at `index` from the head.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        match self {
            ListValue::Small(packed) => packed.iter().nth(index),
            ListValue::Big(list) => list.get(index),
        }
    }

    /// The elements, head first.
    pub fn iter(&self) -> ListIter<'_> {
        self.range(0, usize::MAX)
    }

    /// The elements from index `from` to `to` inclusive (clamped to the list).
    pub fn range(&self, from: usize, to: usize) -> ListIter<'_> {
        let len = self.len();
        let count = if from >= len || to < from {
            0
        } else {
            to.min(len - 1) - from + 1
        };
        match self {
            ListValue::Small(packed) => {
                let mut spans = packed.spans();
                if from > 0 {
                    spans.nth(from - 1);
                }
                ListIter(Items::Small {
                    spans,
                    packed,
                    left: count,
                })
            }
            ListValue::Big(list) => ListIter(Items::Big {
                items: list.iter_from(from),
                left: count,
            }),
        }
    }

    /// Adds `items` at the tail, in order.
    pub fn extend_back<'a>(&mut self, items: impl Iterator<Item = &'a [u8]>, limits: ListLimits) {
        match self {
            ListValue::Small(packed) => {
                let items: Vec<&[u8]> = items.collect();
                packed.push(&items);
                self.grow_if_needed(limits);
            }
            ListValue::Big(list) => {
                let list = Arc::make_mut(list);
                items.for_each(|item| list.push_back(item, limits));
            }
        }
    }

    /// Adds `items` at the head one after the other (so the last one ends up first, as LPUSH).
    pub fn extend_front<'a>(&mut self, items: impl Iterator<Item = &'a [u8]>, limits: ListLimits) {
        match self {
            ListValue::Small(packed) => {
                let mut items: Vec<&[u8]> = items.collect();
                items.reverse();
                packed.insert_at(0, &items);
                self.grow_if_needed(limits);
            }
            ListValue::Big(list) => {
                let list = Arc::make_mut(list);
                items.for_each(|item| list.push_front(item, limits));
            }
        }
    }

    /// Removes and returns the head element.
    pub fn pop_front(&mut self) -> Option<SmallBytes> {
        match self {
            ListValue::Small(packed) => {
                let first = packed.spans().next()?;
                let item = SmallBytes::new(packed.get(first));
                packed.splice(first.start, first.end, &[]);
                Some(item)
            }
            ListValue::Big(list) => Arc::make_mut(list).pop_front(),
        }
    }

    /// Removes and returns the tail element.
    pub fn pop_back(&mut self) -> Option<SmallBytes> {
        match self {
            ListValue::Small(packed) => {
                let last = packed.spans().last()?;
                let item = SmallBytes::new(packed.get(last));
                packed.splice(last.start, last.end, &[]);
                Some(item)
            }
            ListValue::Big(list) => Arc::make_mut(list).pop_back(),
        }
    }

    /// Replaces the element at `index`; false if there is none.
    pub fn set(&mut self, index: usize, item: &[u8], limits: ListLimits) -> bool {
        match self {
            ListValue::Small(packed) => {
                let Some(span) = packed.spans().nth(index) else {
                    return false;
                };
                packed.splice(span.start, span.end, &[item]);
                self.grow_if_needed(limits);
                true
            }
            ListValue::Big(list) => {
                index < list.len() && Arc::make_mut(list).set(index, item, limits)
            }
        }
    }

    /// Inserts `item` before the element at `index` (at the tail when `index` is the
    /// length), as LINSERT.
    pub fn insert(&mut self, index: usize, item: &[u8], limits: ListLimits) {
        match self {
            ListValue::Small(packed) => {
                let at = packed
                    .spans()
                    .nth(index)
                    .map_or(packed.byte_len(), |span| span.start);
                packed.insert_at(at, &[item]);
                self.grow_if_needed(limits);
            }
            ListValue::Big(list) => Arc::make_mut(list).insert(index, item, limits),
        }
    }

    /// Keeps only the elements from index `from` to `to` inclusive (none when `to < from`),
    /// as LTRIM; returns how many went.
    pub fn trim(&mut self, from: usize, to: usize) -> usize {
        let len = self.len();
        let keep = from.min(len)..to.saturating_add(1).clamp(from.min(len), len);
        let removed = len - keep.len();
        if removed == 0 {
            return 0;
        }
        match self {
            ListValue::Small(packed) => {
                let spans: Vec<_> = packed.spans().collect();
                let end = keep.end.checked_sub(1).map_or(0, |last| spans[last].end);
                let start = spans
                    .get(keep.start)
                    .map_or(end, |span| span.start.min(end));
                packed.splice(end, packed.byte_len(), &[]);
                packed.splice(0, start, &[]);
            }
            ListValue::Big(list) => Arc::make_mut(list).trim(keep),
        }
        removed
    }

    /// Removes up to `count` elements equal to `element` from the head (from the tail when
    /// `count` is negative, all when 0), as LREM; returns how many went.
    pub fn remove_matching(&mut self, count: i64, element: &[u8], limits: ListLimits) -> usize {
        let mut doomed: Vec<usize> = self
            .iter()
            .enumerate()
            .filter(|(_, item)| *item == element)
            .map(|(index, _)| index)
            .collect();
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs().min(usize::MAX as u64) as usize
        };
        if count < 0 {
            doomed.drain(..doomed.len().saturating_sub(limit));
        } else {
            doomed.truncate(limit);
        }
        if doomed.is_empty() {
            return 0;
        }
        match self {
            ListValue::Small(packed) => {
                let kept: Vec<&[u8]> = without_indexes(packed.iter(), &doomed).collect();
                let mut repacked = Packed::default();
                repacked.push(&kept);
                *packed = repacked;
            }
            ListValue::Big(list) => Arc::make_mut(list).remove_indexes(&doomed, limits),
        }
        doomed.len()
    }

    /// Reads the start of the list's memory (see [`crate::Value::touch`]).
    pub fn touch(&self) -> u64 {
        match self {
            ListValue::Small(packed) => u64::from(packed.first_byte()),
            ListValue::Big(list) => list.len() as u64,
        }
    }

    /// As [`ListValue::touch`], with both ends of a small list's buffer.
    pub fn touch_for_copy(&self) -> u64 {
        match self {
            ListValue::Small(packed) => packed.ends(),
            ListValue::Big(list) => list.len() as u64,
        }
    }

    fn grow_if_needed(&mut self, limits: ListLimits) {
        if let ListValue::Small(packed) = self
            && !limits.allow(packed)
        {
            *self = ListValue::Big(Arc::new(Quicklist::from_items(packed.iter(), limits)));
        }
    }
}

/// Iterator over a list's elements, head first.
#[derive(Clone)]
pub struct ListIter<'a>(Items<'a>);

#[derive(Clone)]
enum Items<'a> {
    Small {
        spans: Spans<'a>,
        packed: &'a Packed,
        left: usize,
    },
    Big {
        items: QuicklistIter<'a>,
        left: usize,
    },
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            Items::Small {
                spans,
                packed,
                left,
            } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                spans.next().map(|span| packed.get(span))
            }
            Items::Big { items, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                items.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn items(list: &ListValue) -> Vec<Vec<u8>> {
        list.iter().map(<[u8]>::to_vec).collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<Vec<u8>>),
        PushFront(Vec<Vec<u8>>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Trim(usize, usize),
        RemoveMatching(i64, Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let item = proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            proptest::collection::vec(item.clone(), 1..6).prop_map(Op::PushBack),
            proptest::collection::vec(item.clone(), 1..6).prop_map(Op::PushFront),
            Just(Op::PopFront),
            Just(Op::PopBack),
            (0usize..20, item.clone()).prop_map(|(i, v)| Op::Set(i, v)),
            (0usize..20, item).prop_map(|(i, v)| Op::Insert(i, v)),
            (0usize..8, 0usize..30).prop_map(|(a, b)| Op::Trim(a, b)),
            (-3i64..3, proptest::collection::vec(0u8..2, 0..2))
                .prop_map(|(c, v)| Op::RemoveMatching(c, v)),
        ]
    }

    proptest! {
        /// Every operation gives the same list as a plain deque, across the switch from packed
        /// to deque at a small byte limit.
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec(op(), 0..60), max_bytes in 16usize..200) {
            let limits = ListLimits { max_entries: usize::MAX, max_bytes };
            let mut list = ListValue::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(new) => {
                        list.extend_back(new.iter().map(Vec::as_slice), limits);
                        model.extend(new);
                    }
                    Op::PushFront(new) => {
                        list.extend_front(new.iter().map(Vec::as_slice), limits);
                        new.into_iter().for_each(|i| model.push_front(i));
                    }
                    Op::PopFront => prop_assert_eq!(list.pop_front().map(|i| i.to_vec()), model.pop_front()),
                    Op::PopBack => prop_assert_eq!(list.pop_back().map(|i| i.to_vec()), model.pop_back()),
                    Op::Set(index, value) => {
                        let done = list.set(index, &value, limits);
                        prop_assert_eq!(done, index < model.len());
                        if done {
                            model[index] = value;
                        }
                    }
                    Op::Insert(index, value) => {
                        let index = index.min(model.len());
                        list.insert(index, &value, limits);
                        model.insert(index, value);
                    }
                    Op::Trim(from, to) => {
                        let before = model.len();
                        let kept: VecDeque<Vec<u8>> = model.iter().enumerate().filter(|(i, _)| *i >= from && *i <= to).map(|(_, v)| v.clone()).collect();
                        prop_assert_eq!(list.trim(from, to), before - kept.len());
                        model = kept;
                    }
                    Op::RemoveMatching(count, value) => {
                        let mut matches: Vec<usize> = model.iter().enumerate().filter(|(_, v)| **v == value).map(|(i, _)| i).collect();
                        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                        if count < 0 {
                            matches.reverse();
                        }
                        matches.truncate(limit);
                        matches.sort_unstable();
                        prop_assert_eq!(list.remove_matching(count, &value, limits), matches.len());
                        for &i in matches.iter().rev() {
                            model.remove(i);
                        }
                    }
                }
                prop_assert_eq!(list.len(), model.len());
                prop_assert_eq!(items(&list), model.iter().cloned().collect::<Vec<_>>());
                if let Some(first) = model.front() {
                    prop_assert_eq!(list.get(0), Some(first.as_slice()));
                }
                let (from, to) = (1, model.len().saturating_sub(2));
                let expected: Vec<Vec<u8>> = model.iter().skip(from).take((to + 1).saturating_sub(from)).cloned().collect();
                prop_assert_eq!(list.range(from, to).map(<[u8]>::to_vec).collect::<Vec<_>>(), expected);
            }
        }
    }

    #[test]
    fn small_lists_stay_packed_until_the_limit() {
        let limits = ListLimits::from_setting(-2);
        let ten: Vec<Vec<u8>> = (0..10).map(|i| format!("e{i}").into_bytes()).collect();
        let list = ListValue::from_items(ten.iter().map(Vec::as_slice), limits);
        assert!(list.is_packed());
        let big = vec![0u8; 9000];
        let mut list = list;
        list.extend_back(std::iter::once(big.as_slice()), limits);
        assert!(!list.is_packed());
        assert_eq!(list.len(), 11);
        let counted = ListLimits::from_setting(3);
        let list = ListValue::from_items(ten.iter().take(3).map(Vec::as_slice), counted);
        assert!(list.is_packed());
        let list = ListValue::from_items(ten.iter().take(4).map(Vec::as_slice), counted);
        assert!(!list.is_packed());
    }
}
