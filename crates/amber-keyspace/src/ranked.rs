//! A sorted sequence that finds an element's rank, and the element at a rank, in O(log n):
//! the order of a big sorted set. Redis's skiplist keeps the width of each link for the same
//! end (`ZRANK`, `ZRANGE` by rank and `LIMIT` without a walk from the lowest member).
//!
//! The elements are kept sorted in blocks of at most [`MOST_PER_BLOCK`]; a Fenwick tree over
//! the blocks' lengths turns a rank into a block and back. Inserting or removing shifts the
//! elements of one block and updates the tree; a block that grows too large is split in two,
//! one that shrinks too far joins its neighbour, and then the tree is rebuilt (once every
//! few hundred changes). Each block's last element is also summed up in an array of its own
//! (for a sorted set, its score), so finding an element's block reads that array, not every
//! block it passes on the way.

use std::ops::Range;

/// Elements a block holds after a split.
const BLOCK: usize = 128;
/// A block that grows past this many elements is split.
const MOST_PER_BLOCK: usize = 2 * BLOCK;
/// A block that shrinks below this many elements joins a neighbour, if the two fit in one.
const FEWEST_PER_BLOCK: usize = BLOCK / 4;

/// What an element is first ordered by, cheap to copy: `a < b` implies
/// `a.summary() <= b.summary()` (a sorted set's pairs summed up by their scores).
pub(crate) trait Summarized: Ord {
    /// The summary's type.
    type Summary: Ord + Copy;
    /// The part of the element that orders it first.
    fn summary(&self) -> Self::Summary;
}

/// Sorted, distinct elements with O(log n) rank and select.
#[derive(Clone)]
pub(crate) struct Ranked<T: Summarized> {
    /// Non-empty sorted blocks; each block's elements sort before the next block's.
    blocks: Vec<Vec<T>>,
    /// The summary of each block's last element.
    lasts: Vec<T::Summary>,
    /// Fenwick tree of the blocks' lengths (1-based: `tree[i]` covers blocks
    /// `i - lowbit(i) .. i`).
    tree: Vec<usize>,
    len: usize,
}

impl<T: Summarized> Default for Ranked<T> {
    fn default() -> Self {
        Ranked {
            blocks: Vec::new(),
            lasts: Vec::new(),
            tree: vec![0],
            len: 0,
        }
    }
}

impl<T: Summarized> Ranked<T> {
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `item`; false (and nothing changes) if an equal element is present.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        if self.blocks.is_empty() {
            self.blocks.push(vec![item]);
            self.len = 1;
            self.rebuild();
            return true;
        }
        // The first block whose last element is not below `item`, or the last block.
        let index = self.block_for(&item).min(self.blocks.len() - 1);
        let block = &mut self.blocks[index];
        let Err(at) = block.binary_search(&item) else {
            return false;
        };
        if at == block.len() {
            self.lasts[index] = item.summary();
        }
        block.insert(at, item);
        self.len += 1;
        if block.len() > MOST_PER_BLOCK {
            let tail = block.split_off(BLOCK);
            block.shrink_to(MOST_PER_BLOCK);
            self.blocks.insert(index + 1, tail);
            self.rebuild();
        } else {
            self.add(index, 1);
        }
        true
    }

    /// Removes the element equal to `item`; false if there is none.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        let Some((index, at)) = self.find(item) else {
            return false;
        };
        let block = &mut self.blocks[index];
        block.remove(at);
        if let Some(last) = block.last().filter(|_| at == block.len()) {
            self.lasts[index] = last.summary();
        }
        self.len -= 1;
        if self.blocks[index].len() < FEWEST_PER_BLOCK {
            self.join_small(index);
        } else {
            self.add(index, -1);
        }
        true
    }

    /// The rank (0-based position) of the element equal to `item`.
    pub(crate) fn rank(&self, item: &T) -> Option<usize> {
        let (index, at) = self.find(item)?;
        Some(self.before(index) + at)
    }

    /// The block and position of the element equal to `item`.
    fn find(&self, item: &T) -> Option<(usize, usize)> {
        let index = self.block_for(item);
        let at = self.blocks.get(index)?.binary_search(item).ok()?;
        Some((index, at))
    }

    /// The first block whose last element is not below `item` (the number of blocks if
    /// none): a bisection of the summaries, which reads a block only where they tie.
    fn block_for(&self, item: &T) -> usize {
        let key = item.summary();
        let (mut low, mut high) = (0, self.blocks.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let last = self.lasts[middle];
            let before =
                last < key || (last == key && self.blocks[middle].last().is_some_and(|l| l < item));
            if before {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

impl<T: Summarized> Ranked<T> {
    /// The rank of the first element for which `below` is false, `below` being true for a
    /// prefix of the order and false after it (as `slice::partition_point`).
    pub(crate) fn partition_point(&self, mut below: impl FnMut(&T) -> bool) -> usize {
        let index = self
            .blocks
            .partition_point(|block| block.last().is_some_and(&mut below));
        match self.blocks.get(index) {
            Some(block) => self.before(index) + block.partition_point(below),
            None => self.len,
        }
    }

    /// The element at `rank`.
    #[cfg(test)]
    pub(crate) fn get(&self, rank: usize) -> Option<&T> {
        let (index, at) = self.locate(rank)?;
        self.blocks[index].get(at)
    }

    /// The elements of ranks `ranks` (clamped to the length), in order; reversible.
    pub(crate) fn iter(&self, ranks: Range<usize>) -> RankedIter<'_, T> {
        let end = ranks.end.min(self.len);
        let start = ranks.start.min(end);
        let front = self.locate(start).unwrap_or((self.blocks.len(), 0));
        let back = match end.checked_sub(1).and_then(|last| self.locate(last)) {
            Some((index, at)) => (index, at + 1),
            None => (0, 0),
        };
        RankedIter {
            blocks: &self.blocks,
            front,
            back,
            left: end - start,
        }
    }

    /// Number of elements in the blocks before block `index`.
    fn before(&self, index: usize) -> usize {
        let mut sum = 0;
        let mut i = index;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }

    /// The block and position of rank `rank`.
    fn locate(&self, rank: usize) -> Option<(usize, usize)> {
        if rank >= self.len {
            return None;
        }
        let blocks = self.blocks.len();
        let mut index = 0;
        let mut left = rank;
        let mut step = blocks.next_power_of_two();
        while step > 0 {
            let next = index + step;
            if next <= blocks && self.tree[next] <= left {
                index = next;
                left -= self.tree[next];
            }
            step /= 2;
        }
        Some((index, left))
    }

    /// Adds `delta` to block `index`'s length in the tree.
    fn add(&mut self, index: usize, delta: isize) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Builds the tree and the summaries again from the blocks (after blocks were added or
    /// removed).
    fn rebuild(&mut self) {
        self.lasts.clear();
        self.lasts.extend(
            self.blocks
                .iter()
                .filter_map(|block| block.last())
                .map(T::summary),
        );
        let blocks = self.blocks.len();
        self.tree.clear();
        self.tree.resize(blocks + 1, 0);
        for (index, block) in self.blocks.iter().enumerate() {
            let i = index + 1;
            self.tree[i] += block.len();
            let parent = i + (i & i.wrapping_neg());
            if parent <= blocks {
                self.tree[parent] += self.tree[i];
            }
        }
    }

    /// Block `index` has become small: it is dropped if empty, else joined to a neighbour
    /// when the two fit in one block; the tree is rebuilt either way.
    fn join_small(&mut self, index: usize) {
        if self.blocks[index].is_empty() {
            self.blocks.remove(index);
        } else {
            let neighbour = if index + 1 < self.blocks.len() {
                Some(index + 1)
            } else {
                index.checked_sub(1)
            };
            if let Some(other) = neighbour {
                let (left, right) = (index.min(other), index.max(other));
                if self.blocks[left].len() + self.blocks[right].len() <= MOST_PER_BLOCK {
                    let moved = self.blocks.remove(right);
                    self.blocks[left].extend(moved);
                }
            }
        }
        self.rebuild();
    }
}

/// The elements of a rank range of a [`Ranked`], in order.
#[derive(Clone)]
pub(crate) struct RankedIter<'a, T> {
    blocks: &'a [Vec<T>],
    /// Block and position of the next element from the front.
    front: (usize, usize),
    /// Block and position just past the next element from the back.
    back: (usize, usize),
    left: usize,
}

impl<'a, T> Iterator for RankedIter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.left == 0 {
            return None;
        }
        let (mut index, mut at) = self.front;
        if at >= self.blocks[index].len() {
            index += 1;
            at = 0;
        }
        self.front = (index, at + 1);
        self.left -= 1;
        self.blocks[index].get(at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> DoubleEndedIterator for RankedIter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (mut index, mut at) = self.back;
        if at == 0 {
            index -= 1;
            at = self.blocks[index].len();
        }
        self.back = (index, at - 1);
        self.left -= 1;
        self.blocks[index].get(at - 1)
    }
}

impl<T> ExactSizeIterator for RankedIter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    impl Summarized for u16 {
        type Summary = u16;
        fn summary(&self) -> u16 {
            *self / 7
        }
    }

    impl Summarized for u32 {
        type Summary = u32;
        fn summary(&self) -> u32 {
            *self
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..2000).prop_map(Op::Insert),
            2 => (0u16..2000).prop_map(Op::Remove),
        ]
    }

    /// Checks every query of `ranked` against the model's.
    fn agrees(
        ranked: &Ranked<u16>,
        model: &BTreeSet<u16>,
        probe: u16,
    ) -> Result<(), TestCaseError> {
        let ordered: Vec<u16> = model.iter().copied().collect();
        prop_assert_eq!(ranked.len(), ordered.len());
        prop_assert_eq!(
            ranked.iter(0..usize::MAX).copied().collect::<Vec<_>>(),
            ordered.clone()
        );
        prop_assert_eq!(
            ranked
                .iter(0..usize::MAX)
                .rev()
                .copied()
                .collect::<Vec<_>>(),
            ordered.iter().rev().copied().collect::<Vec<_>>()
        );
        prop_assert_eq!(ranked.rank(&probe), ordered.binary_search(&probe).ok());
        prop_assert_eq!(
            ranked.partition_point(|x| *x < probe),
            ordered.partition_point(|x| *x < probe)
        );
        let rank = usize::from(probe) % (ordered.len() + 1);
        prop_assert_eq!(ranked.get(rank), ordered.get(rank));
        let end = (rank + usize::from(probe) % 300).min(ordered.len() + 3);
        let mut both_ends = ranked.iter(rank..end);
        let expected = &ordered[rank.min(ordered.len())..end.min(ordered.len())];
        prop_assert_eq!(both_ends.len(), expected.len());
        // Alternate ends: the two cursors meet in the middle.
        let mut front = Vec::new();
        let mut back = Vec::new();
        while let Some(x) = both_ends.next() {
            front.push(*x);
            match both_ends.next_back() {
                Some(x) => back.push(*x),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        prop_assert_eq!(front, expected.to_vec());
        Ok(())
    }

    proptest! {
        #[test]
        fn behaves_as_a_sorted_set_with_positions(ops in prop::collection::vec(op(), 0..3000), probe in 0u16..2000) {
            let mut ranked = Ranked::default();
            let mut model = BTreeSet::new();
            for op in &ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(ranked.insert(*x), model.insert(*x)),
                    Op::Remove(x) => prop_assert_eq!(ranked.remove(x), model.remove(x)),
                }
            }
            agrees(&ranked, &model, probe)?;
            for block in &ranked.blocks {
                prop_assert!(!block.is_empty() && block.len() <= MOST_PER_BLOCK);
            }
        }
    }

    #[test]
    fn a_large_sequence_splits_and_joins_its_blocks() {
        let mut ranked = Ranked::default();
        for x in (0..100_000u32).rev() {
            assert!(ranked.insert(x));
        }
        assert!(ranked.blocks.len() > 100_000 / MOST_PER_BLOCK);
        assert_eq!(ranked.rank(&77_777), Some(77_777));
        assert_eq!(ranked.get(54_321), Some(&54_321));
        for x in (0..100_000u32).filter(|x| x % 10 != 0) {
            assert!(ranked.remove(&x));
        }
        assert_eq!(ranked.len(), 10_000);
        assert!(ranked.blocks.len() <= 10_000 / FEWEST_PER_BLOCK + 1);
        assert_eq!(ranked.rank(&50_000), Some(5_000));
        assert_eq!(
            ranked.iter(9_998..20_000).copied().collect::<Vec<_>>(),
            [99_980, 99_990]
        );
    }
}
