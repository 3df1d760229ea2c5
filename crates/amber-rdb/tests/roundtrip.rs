//! Datasets written by `RdbWriter` read back equal through `RdbReader`, in every encoding the
//! writer chooses (small and large collections, integers, compressible strings).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_rdb::{Item, RdbReader, RdbWriter, Value, WriteOptions, types};
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        (-200i64..200).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..30),
        "[ab]{20,200}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 60..90),
    ]
}

fn unique<T: Clone, K: Ord + Clone>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = std::collections::BTreeSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(key(item)))
        .collect()
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        bytes().prop_map(Value::String),
        proptest::collection::vec(bytes(), 1..300).prop_map(Value::List),
        proptest::collection::vec(bytes(), 1..600)
            .prop_map(|m| Value::Set(unique(m, Clone::clone))),
        proptest::collection::vec(
            (any::<i16>()).prop_map(|n| n.to_string().into_bytes()),
            1..700
        )
        .prop_map(|m| Value::Set(unique(m, Clone::clone))),
        proptest::collection::vec(
            (
                bytes(),
                prop_oneof![
                    any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
                    (-50i32..50).prop_map(f64::from)
                ]
            ),
            1..200
        )
        .prop_map(|m| Value::SortedSet(unique(m, |(member, _)| member.clone()))),
        proptest::collection::vec((bytes(), bytes()), 1..600)
            .prop_map(|f| Value::Hash(unique(f, |(field, _)| field.clone()))),
    ]
}

fn normalized(value: &Value) -> Value {
    match value {
        Value::Set(members) => {
            let mut members = members.clone();
            members.sort();
            Value::Set(members)
        }
        Value::SortedSet(members) => {
            let mut members = members.clone();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::SortedSet(members)
        }
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn written_datasets_read_back_equal(
        entries in proptest::collection::vec((bytes(), value(), proptest::option::of(1i64..5_000_000_000_000)), 0..12),
        compression in any::<bool>(),
        version in amber_rdb::WRITABLE_VERSIONS,
    ) {
        let entries = unique(entries, |(key, _, _)| key.clone());
        let options = WriteOptions { compression, version, ..WriteOptions::default() };
        let mut writer = RdbWriter::new(Vec::new(), options).unwrap();
        writer.standard_aux(0, 0, false).unwrap();
        writer.select_db(0, entries.len() as u64, 0).unwrap();
        for (key, value, expire) in &entries {
            writer.entry(key, value, *expire).unwrap();
        }
        let file = writer.finish().unwrap();
        let mut reader = RdbReader::new(file.as_slice()).unwrap();
        let mut read = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            if let Item::Entry(entry) = item {
                read.push((entry.key, normalized(&entry.value), entry.expire_at_ms));
            }
        }
        let want: Vec<_> = entries.iter().map(|(k, v, e)| (k.clone(), normalized(v), *e)).collect();
        prop_assert_eq!(read, want);
    }

    /// Keys encoded in fragments (as a parallel save does) and appended in order make the
    /// very bytes, checksum included, that one writer makes.
    #[test]
    fn fragments_appended_make_the_same_file(
        entries in proptest::collection::vec((bytes(), value(), proptest::option::of(1i64..5_000_000_000_000)), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        version in amber_rdb::WRITABLE_VERSIONS,
    ) {
        let options = WriteOptions { version, ..WriteOptions::default() };
        let start = |writer: &mut RdbWriter<Vec<u8>>| {
            writer.standard_aux(0, 0, false).unwrap();
            writer.select_db(0, entries.len() as u64, 0).unwrap();
        };
        let mut whole = RdbWriter::new(Vec::new(), options).unwrap();
        start(&mut whole);
        for (key, value, expire) in &entries {
            whole.entry(key, value, *expire).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(entries.len() + 1)).collect();
        cuts.push(entries.len());
        cuts.sort_unstable();
        let mut pieced = RdbWriter::new(Vec::new(), options).unwrap();
        start(&mut pieced);
        let mut fragment = RdbWriter::fragment(options).unwrap();
        let mut from = 0;
        for cut in cuts {
            for (key, value, expire) in &entries[from..cut] {
                fragment.entry(key, value, *expire).unwrap();
            }
            let encoded = fragment.take_encoded(Vec::new());
            pieced.append_encoded(&encoded).unwrap();
            from = cut;
        }
        prop_assert_eq!(pieced.finish().unwrap(), whole.finish().unwrap());
    }
}

/// Each version stores small collections in its own compact encodings.
#[test]
fn each_version_picks_its_encodings() {
    let strings = |items: &[&str]| {
        items
            .iter()
            .map(|i| i.as_bytes().to_vec())
            .collect::<Vec<_>>()
    };
    let values = [
        ("hash", Value::Hash(vec![(b"f".to_vec(), b"v".to_vec())])),
        ("zset", Value::SortedSet(vec![(b"m".to_vec(), 1.5)])),
        ("list", Value::List(strings(&["a", "1"]))),
        ("set", Value::Set(strings(&["a", "b"]))),
    ];
    let expected = [
        (
            9,
            [
                types::HASH_ZIPLIST,
                types::ZSET_ZIPLIST,
                types::LIST_QUICKLIST,
                types::SET,
            ],
        ),
        (
            10,
            [
                types::HASH_LISTPACK,
                types::ZSET_LISTPACK,
                types::LIST_QUICKLIST_2,
                types::SET,
            ],
        ),
        (
            11,
            [
                types::HASH_LISTPACK,
                types::ZSET_LISTPACK,
                types::LIST_QUICKLIST_2,
                types::SET_LISTPACK,
            ],
        ),
    ];
    for (version, types) in expected {
        let options = WriteOptions {
            version,
            ..WriteOptions::default()
        };
        let mut writer = RdbWriter::new(Vec::new(), options).unwrap();
        writer.select_db(0, 4, 0).unwrap();
        for (key, value) in &values {
            writer.entry(key.as_bytes(), value, None).unwrap();
        }
        let file = writer.finish().unwrap();
        assert_eq!(&file[..9], format!("REDIS{version:04}").as_bytes());
        let mut reader = RdbReader::new(file.as_slice()).unwrap();
        let mut seen = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            if let Item::Entry(entry) = item {
                seen.push(entry.type_byte);
            }
        }
        assert_eq!(seen, types, "RDB {version}");
    }
    let refused = WriteOptions {
        version: 12,
        ..WriteOptions::default()
    };
    assert!(RdbWriter::new(Vec::new(), refused).is_err());
}
