//! Point-in-time captures of a keyspace that keeps changing: what a forkless snapshot reads
//! instead of a forked child's frozen pages.
//!
//! **INV-CAPTURE**: while a capture runs, every entry present when it began is handed out
//! exactly once, as it was at that moment, and nothing added later is:
//! - each [`Db`](crate::Db) has a mark bit, flipped when a capture begins; an entry whose bit
//!   differs from its database's has not been handed out yet;
//! - the walk visits the table position by position, in memory order (position `i` is bucket
//!   `i` of each table while a resize is under way, INV-REHASH), hands out a copy of each
//!   unmarked entry and marks it; growing the table, at once or a bucket at a time, keeps
//!   unvisited keys at or after the walk's position; a shrink under way is finished before the
//!   walk starts and none starts while it runs, so the walk sees every key present throughout;
//! - before an unmarked entry changes or leaves the table, the database hands out its old form
//!   first (a copy before a change, the entry itself when it is removed) and marks it;
//! - an entry inserted while the capture runs is marked already: it is not part of the image;
//! - a table emptied by `FLUSHDB`/`FLUSHALL` is detached whole and taken apart by the walk;
//! - the capture belongs to the database object, so `SWAPDB` carries it along with the
//!   number the database had when the capture began.

use crate::db::Entry;
use crate::entries::Entries;
use crate::small::SmallBytes;

/// Where captured entries go: the database's number at the capture's start, the key, and the
/// entry as it was then.
pub type CaptureSink<'a> = dyn FnMut(usize, SmallBytes, Entry) + 'a;

/// Buckets whose first nodes the walk pulls into the cache at once.
const WARM_AHEAD: usize = 16;

/// Buckets a walk step may visit per entry of its budget: a step through a sparse or emptied
/// part of the table still ends, after about as much work as a step through a full part.
const BUCKETS_PER_ENTRY: usize = 4;

/// One database's share of a running capture.
pub(crate) struct Capture {
    /// The database's number when the capture began (what the image files the keys under).
    db_index: usize,
    /// The next position the walk visits in the live table. A key sits in bucket
    /// `hash & mask`, so when the table grows, a key of bucket `b` moves to `b` or past the
    /// old size: keys not yet visited stay at or after the cursor. A key moved later from an
    /// old bucket `b` to a new bucket `d` has `b <= d`: if the walk passed `d` first it passed
    /// `b` first, while the key was still there. Shrinking would fold keys below the cursor,
    /// so the table does not shrink while it is walked.
    cursor: usize,
    /// Whether the walk of the live table has gone all the way round.
    walked: bool,
    /// Tables emptied while the capture ran, taken apart before the live one is walked.
    detached: Vec<Entries>,
    /// The cursor of the detached table being taken apart.
    detached_cursor: u64,
    /// Old forms of entries changed or removed since they were last taken.
    saved: Vec<(SmallBytes, Entry)>,
    /// Set when the capture was abandoned: the walk goes on only to mark entries.
    discard: bool,
}

impl Capture {
    /// A capture of database `db_index` that has seen nothing yet.
    pub(crate) fn new(db_index: usize) -> Capture {
        Capture {
            db_index,
            cursor: 0,
            walked: false,
            detached: Vec::new(),
            detached_cursor: 0,
            saved: Vec::new(),
            discard: false,
        }
    }

    /// Keeps `entry`'s current form before it changes, unless it was handed out already.
    pub(crate) fn before_change(&mut self, mark: bool, key: &[u8], entry: &mut Entry) {
        if entry.mark != mark {
            entry.mark = mark;
            if !self.discard {
                self.saved
                    .push((SmallBytes::new(key), entry.clone_for_capture()));
            }
        }
    }

    /// Keeps an entry just removed from the table, unless it was handed out already.
    pub(crate) fn removed(&mut self, mark: bool, key: &[u8], entry: Entry) {
        if entry.mark != mark && !self.discard {
            self.saved.push((SmallBytes::new(key), entry));
        }
    }

    /// Takes over a table just emptied (`FLUSHDB`): its unmarked entries are still owed.
    pub(crate) fn detach(&mut self, table: Entries) {
        if !self.discard && !table.is_empty() {
            self.detached.push(table);
        }
    }

    /// Gives up the image: nothing more is handed out, the walk only marks.
    pub(crate) fn abandon(&mut self) {
        self.discard = true;
        self.saved = Vec::new();
        self.detached = Vec::new();
    }

    /// Hands the saved old forms to `out`.
    pub(crate) fn take_saved(&mut self, out: &mut CaptureSink<'_>) {
        for (key, entry) in self.saved.drain(..) {
            out(self.db_index, key, entry);
        }
    }

    /// Walks the detached tables, then `live`, until `budget` entries have been taken (handed
    /// to `out`, or only marked once the capture is abandoned) or [`BUCKETS_PER_ENTRY`] times
    /// as many buckets visited; returns the budget left (the walk is complete when it is done
    /// and nothing is left to take).
    pub(crate) fn walk(
        &mut self,
        live: &mut Entries,
        mark: bool,
        budget: usize,
        out: &mut CaptureSink<'_>,
    ) -> usize {
        let (db_index, discard) = (self.db_index, self.discard);
        let mut left = budget;
        let mut buckets = budget.saturating_mul(BUCKETS_PER_ENTRY);
        while left > 0 && buckets > 0 {
            buckets -= 1;
            if let Some(table) = self.detached.last_mut() {
                self.detached_cursor = table.drain_scan(self.detached_cursor, |key, entry| {
                    if entry.mark != mark {
                        left = left.saturating_sub(1);
                        if !discard {
                            out(db_index, key, entry);
                        }
                    }
                });
                if self.detached_cursor == 0 {
                    self.detached.pop();
                }
                continue;
            }
            if self.walked {
                break;
            }
            if self.cursor == 0 {
                live.pause_shrinking(true);
                // A shrink folds keys to lower positions: the walk starts once it is over.
                if live.is_shrinking() {
                    live.rehash(1);
                    continue;
                }
            }
            if self.cursor.is_multiple_of(WARM_AHEAD) {
                live.warm_buckets(self.cursor, WARM_AHEAD, |entry| {
                    u64::from(entry.mark) ^ entry.value.touch_for_copy()
                });
            }
            self.cursor = live.visit_bucket_mut(self.cursor, |key, entry| {
                if entry.mark != mark {
                    entry.mark = mark;
                    left = left.saturating_sub(1);
                    if !discard {
                        out(db_index, key.clone(), entry.clone_for_capture());
                    }
                }
            });
            if self.cursor == 0 {
                self.walked = true;
                live.pause_shrinking(false);
            }
        }
        left
    }

    /// Whether every entry owed has been handed out.
    pub(crate) fn is_complete(&self) -> bool {
        self.walked && self.detached.is_empty() && self.saved.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::{Entry, Keyspace, StrValue, Value};

    const DBS: usize = 3;
    const NOW: i64 = 1_000_000;

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, u16, u16),
        Append(usize, u16),
        Delete(usize, u16),
        Remove(usize, u16),
        Expire(usize, u16),
        Read(usize, u16),
        Flush(usize),
        Swap(usize, usize),
        Move(usize, usize, u16),
        Step(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let db = 0..DBS;
        let key = 0u16..400;
        let op = prop_oneof![
            6 => (db.clone(), key.clone(), any::<u16>()).prop_map(|(d, k, v)| Op::Set(d, k, v)),
            3 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Append(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Delete(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Remove(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Expire(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Read(d, k)),
            1 => db.clone().prop_map(Op::Flush),
            1 => (db.clone(), db.clone()).prop_map(|(a, b)| Op::Swap(a, b)),
            2 => (db.clone(), db.clone(), key).prop_map(|(a, b, k)| Op::Move(a, b, k)),
            6 => (1usize..40).prop_map(Op::Step),
        ];
        proptest::collection::vec(op, 0..600)
    }

    type Image = BTreeMap<(usize, Vec<u8>), (Vec<u8>, Option<i64>)>;

    fn string(entry: &Entry) -> Vec<u8> {
        match &entry.value {
            Value::Str(value) => value.as_bytes().into_owned(),
            other => panic!("only strings here, got {other:?}"),
        }
    }

    fn image_of(keyspace: &Keyspace) -> Image {
        let mut image = Image::new();
        for (index, db) in keyspace.dbs().iter().enumerate() {
            for (key, entry) in db.iter() {
                image.insert((index, key.to_vec()), (string(entry), entry.expire_at()));
            }
        }
        image
    }

    fn key(k: u16) -> Vec<u8> {
        // Some keys too long to live inside the table's node.
        if k.is_multiple_of(7) {
            format!("a-key-long-enough-to-be-boxed-{k}").into_bytes()
        } else {
            format!("k{k}").into_bytes()
        }
    }

    fn apply(keyspace: &mut Keyspace, op: &Op, captured: &mut Vec<(usize, Vec<u8>, Entry)>) {
        let mut out = |db: usize, key: crate::SmallBytes, entry: Entry| {
            captured.push((db, key.to_vec(), entry));
        };
        match *op {
            Op::Set(db, k, v) => {
                let value = Value::Str(StrValue::from_bytes(v.to_string().as_bytes()));
                keyspace.db(db).insert(&key(k), Entry::new(value, NOW));
            }
            Op::Append(db, k) => {
                if let Some(entry) = keyspace.db(db).get_mut(&key(k), NOW) {
                    let mut bytes = string(entry);
                    bytes.extend_from_slice(b"+x");
                    entry.value = Value::Str(StrValue::from_bytes(&bytes));
                }
            }
            Op::Delete(db, k) => {
                keyspace.db(db).delete(&key(k));
            }
            Op::Remove(db, k) => {
                keyspace.db(db).remove(&key(k));
            }
            Op::Expire(db, k) => {
                keyspace
                    .db(db)
                    .set_expire(&key(k), Some(NOW * 2 + i64::from(k)));
            }
            Op::Read(db, k) => {
                keyspace.db(db).get_for_read(&key(k), NOW);
            }
            Op::Flush(db) => keyspace.db(db).clear(),
            Op::Swap(a, b) => keyspace.swap(a, b),
            Op::Move(a, b, k) => {
                if a != b
                    && !keyspace.db(b).exists(&key(k), NOW)
                    && let Some(entry) = keyspace.db(a).remove(&key(k))
                {
                    keyspace.db(b).insert(&key(k), entry);
                }
            }
            Op::Step(budget) => {
                keyspace.capture_step(budget, &mut out);
            }
        }
    }

    fn fill(keyspace: &mut Keyspace, ops: &[Op]) {
        let mut ignored = Vec::new();
        for op in ops {
            apply(keyspace, op, &mut ignored);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// INV-CAPTURE: whatever happens during a capture, it yields the image at its start,
        /// each key once.
        #[test]
        fn a_capture_is_the_image_at_its_start(before in ops(), during in ops(), again in ops()) {
            let mut keyspace = Keyspace::new(DBS);
            fill(&mut keyspace, &before);
            for round in [&during, &again] {
                let expected = image_of(&keyspace);
                keyspace.begin_capture();
                let mut captured = Vec::new();
                for op in round.iter() {
                    apply(&mut keyspace, op, &mut captured);
                }
                let mut out = |db: usize, key: crate::SmallBytes, entry: Entry| {
                    captured.push((db, key.to_vec(), entry));
                };
                while !keyspace.capture_step(3, &mut out) {}
                let mut image = Image::new();
                for (db, key, entry) in captured {
                    let value = (string(&entry), entry.expire_at());
                    prop_assert!(image.insert((db, key.clone()), value).is_none(), "{key:?} twice");
                }
                prop_assert_eq!(&image, &expected);
                prop_assert!(!keyspace.capturing());
            }
        }

        /// An abandoned capture leaves the marks so that the next one is still complete.
        #[test]
        fn a_capture_after_an_abandoned_one_is_complete(before in ops(), during in ops(), stop in 0usize..50) {
            let mut keyspace = Keyspace::new(DBS);
            fill(&mut keyspace, &before);
            keyspace.begin_capture();
            keyspace.capture_step(stop, &mut |_, _, _| {});
            keyspace.abandon_capture();
            fill(&mut keyspace, &during);
            let expected = image_of(&keyspace);
            keyspace.begin_capture();
            let mut image = Image::new();
            while !keyspace.capture_step(5, &mut |db, key, entry| {
                image.insert((db, key.to_vec()), (string(&entry), entry.expire_at()));
            }) {}
            prop_assert_eq!(image, expected);
        }
    }

    /// A sink that files each captured entry in `image`, checking none comes twice.
    fn into_image(image: &mut Image) -> impl FnMut(usize, crate::SmallBytes, Entry) + '_ {
        |db, key, entry| {
            let value = (string(&entry), entry.expire_at());
            assert!(image.insert((db, key.to_vec()), value).is_none());
        }
    }

    /// A table that would shrink or grow in the middle of the walk.
    #[test]
    fn a_walk_survives_the_table_resizing_under_it() {
        for (keys, delete, insert) in [(1000u16, 990u16, 0u16), (100, 0, 5000), (2000, 1990, 3000)]
        {
            let mut keyspace = Keyspace::new(1);
            let value = |k: u16| Value::Str(StrValue::from_bytes(k.to_string().as_bytes()));
            for k in 0..keys {
                keyspace.db(0).insert(&key(k), Entry::new(value(k), NOW));
            }
            let expected = image_of(&keyspace);
            keyspace.begin_capture();
            let mut image = Image::new();
            let mut out = into_image(&mut image);
            keyspace.capture_step(usize::from(keys) * 3 / 4, &mut out);
            for k in 0..delete {
                keyspace.db(0).delete(&key(k));
            }
            for k in 0..insert {
                let name = format!("new-{k}").into_bytes();
                keyspace.db(0).insert(&name, Entry::new(value(k), NOW));
            }
            while !keyspace.capture_step(7, &mut out) {}
            drop(out);
            assert_eq!(
                image, expected,
                "{keys} keys, {delete} deleted, {insert} added"
            );
        }
    }

    /// A capture that begins while the table is moving its keys to a smaller table, then
    /// sees the table grow again a bucket at a time (INV-REHASH).
    #[test]
    fn a_walk_starting_in_the_middle_of_a_shrink_sees_every_key() {
        let value = |k: u16| Value::Str(StrValue::from_bytes(k.to_string().as_bytes()));
        // 8000 keys fill 8192 buckets; removing down to 819 starts a shrink to 2048 buckets,
        // and the removals after it move only a few buckets.
        for removed in [7181u16, 7190, 7200] {
            let mut keyspace = Keyspace::new(1);
            for k in 0..8000 {
                keyspace.db(0).insert(&key(k), Entry::new(value(k), NOW));
            }
            for k in 0..removed {
                keyspace.db(0).delete(&key(k));
            }
            let expected = image_of(&keyspace);
            keyspace.begin_capture();
            let mut image = Image::new();
            let mut out = into_image(&mut image);
            // The walk takes a step; the resize, a bucket per removal, then moves the keys
            // past it to the buckets it has visited.
            keyspace.capture_step(5, &mut out);
            for _ in 0..1500 {
                keyspace.db(0).delete(b"no-such-key");
            }
            while !keyspace.capture_step(7, &mut out) {}
            drop(out);
            assert_eq!(image, expected, "{removed} removed");
        }
    }

    /// Runs a whole capture of `keyspace` and returns the entries it handed out.
    fn capture_whole(keyspace: &mut Keyspace) -> Vec<Entry> {
        keyspace.begin_capture();
        let mut captured = Vec::new();
        while !keyspace.capture_step(64, &mut |_, _, entry| captured.push(entry)) {}
        captured
    }

    /// INV-SHARED-SET: the walk hands out a set by reference; a change made afterwards through
    /// `Arc::make_mut` copies it and leaves the handed-out set as it was.
    #[test]
    fn a_set_handed_out_keeps_its_members_when_the_key_changes() {
        let mut keyspace = Keyspace::new(1);
        let mut set = crate::SetValue::default();
        for member in ["a", "b", "c"] {
            set.add(member.as_bytes(), 512);
        }
        let set = std::sync::Arc::new(set);
        keyspace
            .db(0)
            .insert(b"s", Entry::new(Value::Set(set), NOW));
        let captured = capture_whole(&mut keyspace);
        let Some(Value::Set(live)) = keyspace.db(0).get_mut(b"s", NOW).map(|e| &mut e.value) else {
            panic!("the set is gone");
        };
        std::sync::Arc::make_mut(live).add(b"d", 512);
        assert_eq!(live.len(), 4);
        let [
            Entry {
                value: Value::Set(handed_out),
                ..
            },
        ] = captured.as_slice()
        else {
            panic!("one set handed out, got {captured:?}");
        };
        assert_eq!(handed_out.members().len(), 3);
        assert!(!handed_out.contains(b"d"));
    }

    /// A long string is shared with the capture, not copied; a change afterwards copies it
    /// and leaves the handed-out bytes as they were.
    #[test]
    fn a_long_string_handed_out_keeps_its_bytes_when_the_key_changes() {
        let long = vec![b'x'; 100_000];
        let mut keyspace = Keyspace::new(1);
        let value = Value::Str(StrValue::from_bytes(&long));
        keyspace.db(0).insert(b"long", Entry::new(value, NOW));
        let captured = capture_whole(&mut keyspace);
        let Some(Value::Str(live)) = keyspace.db(0).get_mut(b"long", NOW).map(|e| &mut e.value)
        else {
            panic!("the string is gone");
        };
        assert!(matches!(live, StrValue::Shared(_)), "shared while captured");
        live.make_raw().extend_from_slice(b"more");
        assert_eq!((live.len(), live.encoding()), (100_004, "raw"));
        let [
            Entry {
                value: Value::Str(handed_out),
                ..
            },
        ] = captured.as_slice()
        else {
            panic!("one string handed out, got {captured:?}");
        };
        assert_eq!(handed_out.as_bytes().as_ref(), long.as_slice());
        assert_eq!(
            *handed_out,
            StrValue::Raw(long),
            "shared equals raw of the same bytes"
        );
    }

    #[test]
    fn an_entry_still_fits_in_48_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }
}
