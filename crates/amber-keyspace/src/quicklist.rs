//! Big lists as Redis keeps them: a deque of nodes of a few KiB (`list-max-listpack-size`),
//! each holding its elements back to back, so an element costs its bytes and two length
//! bytes rather than a slot of its own (a deque of [`SmallBytes`] took 24 bytes a slot).
//!
//! In a node an element is its length (LEB128), its bytes, then its length again with the
//! bytes reversed, so a node is read from either end: RPOP, LINDEX -1 and an index past the
//! middle of a node do not walk the node from its start.

use std::collections::VecDeque;
use std::ops::Range;

use crate::list::ListLimits;
use crate::packed::{len_size, read_len, size_class, write_len};
use crate::small::SmallBytes;

/// Bytes an element of `len` bytes takes in a node.
fn entry_size(len: usize) -> usize {
    len + 2 * len_size(len)
}

/// Appends the element `item` to `out` in a node's encoding.
fn write_entry(out: &mut Vec<u8>, item: &[u8]) {
    let header = out.len();
    write_len(out, item.len());
    let header_end = out.len();
    out.extend_from_slice(item);
    out.extend_from_within(header..header_end);
    let back = out.len() - (header_end - header);
    out[back..].reverse();
}

/// Decodes the reversed length that ends at `end`; returns it and where it starts.
fn read_back_len(buf: &[u8], mut end: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    while end > 0 {
        end -= 1;
        let byte = buf[end];
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 || shift > 56 {
            break;
        }
        shift += 7;
    }
    (len, end)
}

/// `items` but those at the indexes in `doomed` (ascending).
pub(crate) fn without_indexes<'a>(
    items: impl Iterator<Item = &'a [u8]>,
    doomed: &[usize],
) -> impl Iterator<Item = &'a [u8]> {
    let mut doomed = doomed.iter().peekable();
    items
        .enumerate()
        .filter(move |(index, _)| doomed.next_if(|&&d| d == *index).is_none())
        .map(|(_, item)| item)
}

/// One node: elements back to back, and how many.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    fn with(item: &[u8]) -> Node {
        let mut node = Node::default();
        node.push_back(item);
        node
    }

    fn count(&self) -> usize {
        self.count as usize
    }

    /// Whether `item` may join the node without passing `limits`.
    fn has_room(&self, item: &[u8], limits: ListLimits) -> bool {
        self.count() < limits.max_entries
            && self.buf.len() + entry_size(item.len()) <= limits.max_bytes
    }

    /// Whether the node passed `limits` (with more than one element, which alone may).
    fn over(&self, limits: ListLimits) -> bool {
        self.count > 1 && (self.count() > limits.max_entries || self.buf.len() > limits.max_bytes)
    }

    /// Makes room for `extra` more bytes, up to the allocator's size class (no doubling: a
    /// node's spare room is at most one class step).
    fn reserve(&mut self, extra: usize) {
        let needed = self.buf.len() + extra;
        if needed > self.buf.capacity() {
            self.buf.reserve_exact(size_class(needed) - self.buf.len());
        }
    }

    /// Gives back room a shrunken node no longer needs.
    fn fit(&mut self) {
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to(size_class(self.buf.len()));
        }
    }

    /// The element that starts at byte `start`, and where the next one starts.
    fn entry_at(&self, start: usize) -> (&[u8], usize) {
        let (len, data) = read_len(&self.buf, start);
        let end = (data + len).min(self.buf.len());
        (&self.buf[data.min(end)..end], end + len_size(len))
    }

    /// Where the element that ends at byte `end` starts.
    fn start_before(&self, end: usize) -> usize {
        let (len, back) = read_back_len(&self.buf, end);
        back.saturating_sub(len + len_size(len))
    }

    /// Where element `k` starts (the end of the node for `k == count`), read from the nearer
    /// end of the node.
    fn offset_of(&self, k: usize) -> usize {
        if k <= self.count() / 2 {
            (0..k).fold(0, |at, _| self.entry_at(at).1)
        } else {
            (k..self.count()).fold(self.buf.len(), |at, _| self.start_before(at))
        }
    }

    fn get(&self, k: usize) -> &[u8] {
        self.entry_at(self.offset_of(k)).0
    }

    fn push_back(&mut self, item: &[u8]) {
        self.reserve(entry_size(item.len()));
        write_entry(&mut self.buf, item);
        self.count += 1;
    }

    /// Replaces the bytes `bytes` of the buffer by `item`'s entry (none for a removal).
    fn splice(&mut self, bytes: Range<usize>, item: Option<&[u8]>) {
        let mut entry = Vec::new();
        if let Some(item) = item {
            write_entry(&mut entry, item);
        }
        self.reserve(entry.len().saturating_sub(bytes.len()));
        self.buf.splice(bytes, entry);
    }

    /// Inserts `item` before element `k` (at the end for `k == count`).
    fn insert(&mut self, k: usize, item: &[u8]) {
        let at = self.offset_of(k);
        self.splice(at..at, Some(item));
        self.count += 1;
    }

    /// Replaces element `k` by `item`.
    fn replace(&mut self, k: usize, item: &[u8]) {
        let start = self.offset_of(k);
        let (_, end) = self.entry_at(start);
        self.splice(start..end, Some(item));
    }

    fn pop_front(&mut self) -> Option<SmallBytes> {
        if self.count == 0 {
            return None;
        }
        let (item, end) = self.entry_at(0);
        let item = SmallBytes::new(item);
        self.buf.drain(..end);
        self.count -= 1;
        self.fit();
        Some(item)
    }

    fn pop_back(&mut self) -> Option<SmallBytes> {
        if self.count == 0 {
            return None;
        }
        let start = self.start_before(self.buf.len());
        let item = SmallBytes::new(self.entry_at(start).0);
        self.buf.truncate(start);
        self.count -= 1;
        self.fit();
        Some(item)
    }

    /// Removes the first `n` elements (fewer than all).
    fn remove_front(&mut self, n: usize) {
        let end = self.offset_of(n);
        self.buf.drain(..end);
        self.count -= n as u32;
        self.fit();
    }

    /// Removes the last `n` elements (fewer than all).
    fn remove_back(&mut self, n: usize) {
        let start = self.offset_of(self.count() - n);
        self.buf.truncate(start);
        self.count -= n as u32;
        self.fit();
    }

    /// Moves the second half of the elements into a new node.
    fn split(&mut self) -> Node {
        let keep = self.count() / 2;
        let at = self.offset_of(keep);
        let mut tail = Vec::with_capacity(size_class(self.buf.len() - at));
        tail.extend_from_slice(&self.buf[at..]);
        let moved = self.count - keep as u32;
        self.buf.truncate(at);
        self.count = keep as u32;
        self.fit();
        Node {
            buf: tail,
            count: moved,
        }
    }
}

/// A big list: nodes of elements, head first, and the number of elements.
#[derive(Clone, Default)]
pub struct Quicklist {
    nodes: VecDeque<Node>,
    len: usize,
}

impl Quicklist {
    /// A list of `items` in order, in nodes filled up to `limits`.
    pub fn from_items<'a>(items: impl Iterator<Item = &'a [u8]>, limits: ListLimits) -> Quicklist {
        let mut list = Quicklist::default();
        items.for_each(|item| list.push_back(item, limits));
        list
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `item` at the tail.
    pub fn push_back(&mut self, item: &[u8], limits: ListLimits) {
        match self.nodes.back_mut() {
            Some(node) if node.has_room(item, limits) => node.push_back(item),
            _ => self.nodes.push_back(Node::with(item)),
        }
        self.len += 1;
    }

    /// Adds `item` at the head.
    pub fn push_front(&mut self, item: &[u8], limits: ListLimits) {
        match self.nodes.front_mut() {
            Some(node) if node.has_room(item, limits) => node.insert(0, item),
            _ => self.nodes.push_front(Node::with(item)),
        }
        self.len += 1;
    }

    /// Removes and returns the head element.
    pub fn pop_front(&mut self) -> Option<SmallBytes> {
        let node = self.nodes.front_mut()?;
        let item = node.pop_front();
        if node.count == 0 {
            self.nodes.pop_front();
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Removes and returns the tail element.
    pub fn pop_back(&mut self) -> Option<SmallBytes> {
        let node = self.nodes.back_mut()?;
        let item = node.pop_back();
        if node.count == 0 {
            self.nodes.pop_back();
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// The node holding element `index` and the element's position in it, counted from the
    /// nearer end of the list (as Redis's quicklist does).
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut left = index;
            for (n, node) in self.nodes.iter().enumerate() {
                if left < node.count() {
                    return Some((n, left));
                }
                left -= node.count();
            }
            return None;
        }
        let mut from_tail = self.len - index;
        for (n, node) in self.nodes.iter().enumerate().rev() {
            if from_tail <= node.count() {
                return Some((n, node.count() - from_tail));
            }
            from_tail -= node.count();
        }
        None
    }

    /// The element at `index` from the head.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (n, k) = self.locate(index)?;
        Some(self.nodes[n].get(k))
    }

    /// Replaces the element at `index`; false if there is none.
    pub fn set(&mut self, index: usize, item: &[u8], limits: ListLimits) -> bool {
        let Some((n, k)) = self.locate(index) else {
            return false;
        };
        self.nodes[n].replace(k, item);
        self.split_if_over(n, limits);
        true
    }

    /// Inserts `item` before the element at `index` (at the tail when `index` is the length).
    pub fn insert(&mut self, index: usize, item: &[u8], limits: ListLimits) {
        if index >= self.len {
            return self.push_back(item, limits);
        }
        if let Some((n, k)) = self.locate(index) {
            self.nodes[n].insert(k, item);
            self.len += 1;
            self.split_if_over(n, limits);
        }
    }

    /// Splits node `n` in halves until each is within `limits` (a big element may leave a
    /// half over them).
    fn split_if_over(&mut self, n: usize, limits: ListLimits) {
        if self.nodes[n].over(limits) {
            let tail = self.nodes[n].split();
            self.nodes.insert(n + 1, tail);
            self.split_if_over(n + 1, limits);
            self.split_if_over(n, limits);
        }
    }

    /// Keeps only the elements of indexes `keep` (clamped to the list).
    pub fn trim(&mut self, keep: Range<usize>) {
        let end = keep.end.min(self.len);
        self.remove_back(self.len - end);
        self.remove_front(keep.start.min(self.len));
    }

    fn remove_front(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(node) = self.nodes.front_mut() else {
                return;
            };
            if node.count() <= n {
                n -= node.count();
                self.nodes.pop_front();
            } else {
                node.remove_front(n);
                return;
            }
        }
    }

    fn remove_back(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(node) = self.nodes.back_mut() else {
                return;
            };
            if node.count() <= n {
                n -= node.count();
                self.nodes.pop_back();
            } else {
                node.remove_back(n);
                return;
            }
        }
    }

    /// Removes the elements whose indexes are in `doomed` (ascending), rebuilding the nodes.
    pub fn remove_indexes(&mut self, doomed: &[usize], limits: ListLimits) {
        if doomed.is_empty() {
            return;
        }
        *self = Quicklist::from_items(without_indexes(self.iter_from(0), doomed), limits);
    }

    /// The elements from index `from` on, head first.
    pub fn iter_from(&self, from: usize) -> QuicklistIter<'_> {
        let Some((n, k)) = self.locate(from) else {
            return QuicklistIter {
                nodes: self.nodes.range(0..0),
                node: None,
                at: 0,
            };
        };
        QuicklistIter {
            nodes: self.nodes.range(n + 1..),
            node: Some(&self.nodes[n]),
            at: self.nodes[n].offset_of(k),
        }
    }
}

/// Iterator over a [`Quicklist`]'s elements, head first.
#[derive(Clone)]
pub struct QuicklistIter<'a> {
    nodes: std::collections::vec_deque::Iter<'a, Node>,
    node: Option<&'a Node>,
    at: usize,
}

impl<'a> Iterator for QuicklistIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let node = self.node?;
            if self.at < node.buf.len() {
                let (item, next) = node.entry_at(self.at);
                self.at = next;
                return Some(item);
            }
            self.node = self.nodes.next();
            self.at = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Trim(usize, usize),
        Remove(Vec<usize>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let item = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            proptest::collection::vec(any::<u8>(), 100..300),
        ];
        prop_oneof![
            4 => item.clone().prop_map(Op::PushBack),
            4 => item.clone().prop_map(Op::PushFront),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            2 => (0usize..80, item.clone()).prop_map(|(i, v)| Op::Set(i, v)),
            2 => (0usize..80, item).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (0usize..10, 0usize..80).prop_map(|(a, b)| Op::Trim(a, b)),
            1 => proptest::collection::vec(0usize..80, 0..6).prop_map(Op::Remove),
        ]
    }

    fn check(list: &Quicklist, model: &VecDeque<Vec<u8>>, limits: ListLimits) {
        assert_eq!(list.len(), model.len());
        assert_eq!(
            list.nodes.iter().map(Node::count).sum::<usize>(),
            model.len()
        );
        assert!(list.nodes.iter().all(|node| node.count > 0));
        assert!(list.nodes.iter().all(|node| !node.over(limits)));
        let items: Vec<&[u8]> = list.iter_from(0).collect();
        assert_eq!(items, model.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for (index, item) in model.iter().enumerate() {
            assert_eq!(list.get(index), Some(item.as_slice()));
        }
        assert_eq!(list.get(model.len()), None);
        if model.len() > 2 {
            let tail: Vec<&[u8]> = list.iter_from(model.len() / 2).collect();
            assert_eq!(tail.len(), model.len() - model.len() / 2);
        }
    }

    proptest! {
        /// Every operation gives the same list as a plain deque, with nodes that split and
        /// empty at small limits in bytes or in elements.
        #[test]
        fn behaves_like_a_deque(
            ops in proptest::collection::vec(op(), 0..120),
            max_bytes in 8usize..400,
            max_entries in prop_oneof![Just(usize::MAX), 1usize..8],
        ) {
            let limits = ListLimits { max_entries, max_bytes };
            let mut list = Quicklist::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(item) => {
                        list.push_back(&item, limits);
                        model.push_back(item);
                    }
                    Op::PushFront(item) => {
                        list.push_front(&item, limits);
                        model.push_front(item);
                    }
                    Op::PopFront => {
                        prop_assert_eq!(list.pop_front().map(|i| i.to_vec()), model.pop_front());
                    }
                    Op::PopBack => {
                        prop_assert_eq!(list.pop_back().map(|i| i.to_vec()), model.pop_back());
                    }
                    Op::Set(index, item) => {
                        prop_assert_eq!(list.set(index, &item, limits), index < model.len());
                        if index < model.len() {
                            model[index] = item;
                        }
                    }
                    Op::Insert(index, item) => {
                        let index = index.min(model.len());
                        list.insert(index, &item, limits);
                        model.insert(index, item);
                    }
                    Op::Trim(start, end) => {
                        list.trim(start..end);
                        let end = end.min(model.len());
                        model.truncate(end);
                        model.drain(..start.min(model.len()));
                    }
                    Op::Remove(mut doomed) => {
                        doomed.retain(|&i| i < model.len());
                        doomed.sort_unstable();
                        doomed.dedup();
                        list.remove_indexes(&doomed, limits);
                        for &i in doomed.iter().rev() {
                            model.remove(i);
                        }
                    }
                }
                check(&list, &model, limits);
            }
        }

        /// A length is read back from either side of an element, whatever its size.
        #[test]
        fn an_entry_reads_from_both_ends(len in 0usize..70_000) {
            let item = vec![7u8; len];
            let mut buf = vec![1, 2, 3];
            write_entry(&mut buf, &item);
            prop_assert_eq!(buf.len(), 3 + entry_size(len));
            let node = Node { buf, count: 1 };
            prop_assert_eq!(node.entry_at(3), (item.as_slice(), node.buf.len()));
            prop_assert_eq!(node.start_before(node.buf.len()), 3);
        }
    }

    /// A long list costs about its bytes plus two per element, in nodes of at most the limit.
    #[test]
    fn elements_are_packed_in_nodes_of_the_limit() {
        let limits = ListLimits::from_setting(-2);
        let items: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("member:{i:08}").into_bytes())
            .collect();
        let list = Quicklist::from_items(items.iter().map(Vec::as_slice), limits);
        let bytes: usize = list.nodes.iter().map(|node| node.buf.capacity()).sum();
        assert!(list.nodes.iter().all(|node| node.buf.len() <= 8192));
        assert!(
            bytes < 100_000 * 18,
            "{} bytes of nodes for 100000 elements of 15 bytes",
            bytes
        );
        assert_eq!(list.get(54_321), Some(items[54_321].as_slice()));
    }
}
