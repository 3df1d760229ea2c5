//! Every RDB file that real Redis wrote in `../shared/fixtures` loads with exactly the content
//! its manifest lists; and corrupting them in any way gives an error, never a panic.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use amber_rdb::{Entry, Item, RdbReader, Value};
use proptest::prelude::*;
use support::{Json, base64, fixtures, parse_json, sha1_hex};

fn read_all(bytes: &[u8]) -> Result<(Vec<Entry>, Vec<Item>), amber_rdb::RdbError> {
    let mut reader = RdbReader::new(bytes)?;
    let mut entries = Vec::new();
    let mut others = Vec::new();
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Entry(entry) => entries.push(entry),
            other => others.push(other),
        }
    }
    Ok((entries, others))
}

fn bytes_of(json: &Json) -> Vec<u8> {
    match json {
        Json::String(text) => text.as_bytes().to_vec(),
        other => base64(
            other
                .get("b64")
                .and_then(Json::as_str)
                .expect("string or {b64}"),
        ),
    }
}

fn score_of(json: &Json) -> f64 {
    match json.as_str().expect("score as text") {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        text => text.parse().expect("score"),
    }
}

/// The value in the manifest is either the content, or `{len, dump_sha1?}` for large ones.
fn check_value(key: &str, expected: &Json, value: &Value) {
    if let Some(len) = expected.get("len").and_then(Json::as_f64) {
        let actual_len = match value {
            Value::String(s) => s.len(),
            Value::List(items) | Value::Set(items) => items.len(),
            Value::SortedSet(items) => items.len(),
            Value::Hash(items) => items.len(),
            Value::HashWithFieldTtl(items) => items.len(),
            Value::Stream(stream) => stream.entries().unwrap().len(),
        };
        assert_eq!(actual_len, len as usize, "{key}: length");
        if let (Some(sha), Value::String(s)) =
            (expected.get("dump_sha1").and_then(Json::as_str), value)
        {
            assert_eq!(sha1_hex(s), sha, "{key}: content digest");
        }
        return;
    }
    match (value, expected) {
        (Value::String(s), _) => assert_eq!(s, &bytes_of(expected), "{key}"),
        (Value::List(items), Json::Array(want)) => {
            let want: Vec<Vec<u8>> = want.iter().map(bytes_of).collect();
            assert_eq!(items, &want, "{key}");
        }
        (Value::Set(items), Json::Array(want)) => {
            let mut items = items.clone();
            let mut want: Vec<Vec<u8>> = want.iter().map(bytes_of).collect();
            items.sort();
            want.sort();
            assert_eq!(items, want, "{key}");
        }
        (Value::Hash(items), Json::Object(want)) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = items.iter().cloned().collect();
            let want: BTreeMap<Vec<u8>, Vec<u8>> = want
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), bytes_of(v)))
                .collect();
            assert_eq!(got, want, "{key}");
        }
        (Value::SortedSet(items), Json::Array(want)) => {
            let mut got: Vec<(Vec<u8>, f64)> = items.clone();
            let mut want: Vec<(Vec<u8>, f64)> = want
                .iter()
                .map(|pair| match pair {
                    Json::Array(p) => (bytes_of(&p[0]), score_of(&p[1])),
                    other => panic!("{key}: pair expected, got {other:?}"),
                })
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want, "{key}");
        }
        (value, expected) => panic!("{key}: {value:?} does not match {expected:?}"),
    }
}

/// The RDB type byte Redis 7.0 writes for the encoding the manifest reports.
fn type_byte_for(kind: &str, encoding: &str) -> Option<u8> {
    Some(match (kind, encoding) {
        ("string", _) => 0,
        ("list", "quicklist") => 18,
        ("set", "intset") => 11,
        ("set", "hashtable") => 2,
        ("hash", "listpack") => 16,
        ("hash", "hashtable") => 4,
        ("zset", "listpack") => 17,
        ("zset", "skiplist") => 5,
        ("stream", _) => 19,
        _ => return None,
    })
}

fn check_fixture(dir: &str, name: &str, check_encodings: bool) {
    let root = fixtures();
    let manifest =
        parse_json(&std::fs::read_to_string(root.join(dir).join("manifest.json")).unwrap());
    let expected = manifest
        .get("fixtures")
        .and_then(|f| f.get(name))
        .expect("fixture in manifest");
    let bytes = std::fs::read(root.join(dir).join(name)).unwrap();
    let (entries, _) = read_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Some(Json::Object(dbs)) = expected.get("dbs") else {
        panic!("dbs")
    };
    let total: usize = dbs
        .values()
        .map(|keys| {
            if let Json::Array(k) = keys {
                k.len()
            } else {
                0
            }
        })
        .sum();
    assert_eq!(entries.len(), total, "{name}: number of keys");
    for (db, keys) in dbs {
        let Json::Array(keys) = keys else {
            panic!("keys")
        };
        for want in keys {
            let key = want.get("key").and_then(Json::as_str).unwrap();
            let entry = entries
                .iter()
                .find(|e| e.db.to_string() == *db && e.key == key.as_bytes())
                .unwrap_or_else(|| panic!("{name}: key {key} missing from db {db}"));
            let kind = want.get("type").and_then(Json::as_str).unwrap();
            assert_eq!(entry.value.type_name(), kind, "{key}: type");
            let pexpireat = want.get("pexpireat").and_then(Json::as_f64).unwrap() as i64;
            assert_eq!(
                entry.expire_at_ms,
                (pexpireat >= 0).then_some(pexpireat),
                "{key}: expiry"
            );
            check_value(key, want.get("value").unwrap(), &entry.value);
            let encoding = want.get("encoding").and_then(Json::as_str).unwrap();
            if check_encodings && let Some(byte) = type_byte_for(kind, encoding) {
                assert_eq!(
                    entry.type_byte, byte,
                    "{key}: RDB type for {kind}/{encoding}"
                );
            }
        }
    }
}

#[test]
fn redis_7_fixtures_load_exactly() {
    for name in [
        "encodings.rdb",
        "encodings-nocompress.rdb",
        "stream.rdb",
        "empty.rdb",
    ] {
        check_fixture("redis-7.0", name, true);
    }
}

#[test]
fn legacy_fixtures_load_exactly() {
    for name in [
        "encodings.rdb",
        "hash-zipmap.rdb",
        "hash-ziplist.rdb",
        "list-quicklist.rdb",
        "zset-ziplist.rdb",
    ] {
        check_fixture("redis-legacy", name, false);
    }
}

#[test]
fn aof_preamble_base_is_an_rdb_followed_by_commands() {
    let dir = fixtures().join("redis-7.0/aof-preamble");
    let base = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .expect("base file");
    let bytes = std::fs::read(&base).unwrap();
    let (_, items) = read_all(&bytes).unwrap();
    assert!(items.contains(&Item::Aux {
        key: b"aof-base".to_vec(),
        value: b"1".to_vec()
    }));
}

#[test]
fn stream_details_are_decoded() {
    let bytes = std::fs::read(fixtures().join("redis-7.0/stream.rdb")).unwrap();
    let (entries, _) = read_all(&bytes).unwrap();
    let stream = entries
        .iter()
        .find_map(|e| match &e.value {
            Value::Stream(s) if e.key == b"stream:s" => Some(s),
            _ => None,
        })
        .unwrap();
    let entries = stream.entries().unwrap();
    assert_eq!(entries.len(), 99);
    assert!(
        entries.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase"
    );
    assert!(!stream.groups.is_empty(), "consumer groups");
    assert!(
        stream.groups.iter().any(|g| !g.pending.is_empty()),
        "a pending entries list"
    );
    assert!(
        stream.max_deleted_id.is_some_and(|id| id.ms > 0),
        "a deleted entry"
    );
}

#[test]
fn wrong_checksum_is_reported_with_its_offset() {
    let mut bytes = std::fs::read(fixtures().join("redis-7.0/encodings.rdb")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let error = read_all(&bytes).unwrap_err();
    assert!(
        matches!(error.kind, amber_rdb::ErrorKind::BadChecksum { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("RDB CRC error"), "{error}");
}

#[test]
fn every_truncation_is_an_error() {
    for name in [
        "redis-7.0/stream.rdb",
        "redis-legacy/encodings.rdb",
        "redis-7.0/empty.rdb",
    ] {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        for cut in 0..bytes.len() {
            let result = read_all(&bytes[..cut]);
            assert!(result.is_err(), "{name} cut at {cut} must fail");
        }
    }
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn byte_flips_are_always_detected(position in any::<prop::sample::Index>(), flip in 1u8..=255, which in 0usize..2) {
        // Files with a checksum (RDB 5+): every single-byte change must be reported.
        let name = ["redis-7.0/stream.rdb", "redis-7.0/encodings-nocompress.rdb"][which];
        let mut bytes = fixture_bytes(name);
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        // A flip in a payload is caught by the checksum; anywhere else by the parser. Either
        // way the result is an error, and it must never be a panic.
        prop_assert!(read_all(&bytes).is_err());
    }

    #[test]
    fn flips_with_checksum_disabled_never_panic(position in any::<prop::sample::Index>(), flip in 1u8..=255, which in 0usize..2) {
        let mut bytes = fixture_bytes(["redis-7.0/stream.rdb", "redis-7.0/encodings.rdb"][which]);
        let len = bytes.len();
        bytes[len - 8..].fill(0); // "checksum not computed": the parser alone must cope
        let at = position.index(len - 8);
        bytes[at] ^= flip;
        let _ = read_all(&bytes);
    }

    #[test]
    fn flips_in_files_without_checksum_never_panic(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = fixture_bytes("redis-legacy/encodings.rdb");
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        let _ = read_all(&bytes);
    }
}

#[test]
fn fixtures_dir_exists() {
    assert!(Path::new(&fixtures()).join("redis-7.0").is_dir());
}

/// The raw reading path (collections kept in their stored form) gives, once decoded, the same
/// values as the neutral path, and visits as many elements as the values hold.
#[test]
fn raw_items_decode_to_the_same_values() {
    let files = [
        ("redis-7.0", "encodings.rdb"),
        ("redis-7.0", "encodings-nocompress.rdb"),
        ("redis-legacy", "encodings.rdb"),
        ("redis-legacy", "hash-zipmap.rdb"),
        ("redis-legacy", "hash-ziplist.rdb"),
        ("redis-legacy", "list-quicklist.rdb"),
        ("redis-legacy", "zset-ziplist.rdb"),
    ];
    for (dir, name) in files {
        let bytes = std::fs::read(fixtures().join(dir).join(name)).unwrap();
        let (entries, _) = read_all(&bytes).unwrap();
        let mut reader = RdbReader::new(bytes.as_slice()).unwrap();
        let mut raw_entries = Vec::new();
        while let Some(item) = reader.next_raw_item().unwrap() {
            if let Item::Entry(entry) = item {
                raw_entries.push(entry);
            }
        }
        assert_eq!(raw_entries.len(), entries.len(), "{dir}/{name}");
        let mut compact = 0;
        for (raw, neutral) in raw_entries.into_iter().zip(entries) {
            let visited = raw.value.visit(&mut |_| {}).unwrap();
            let expected = match &neutral.value {
                _ if matches!(raw.value, amber_rdb::RawValue::Decoded(_)) => 0,
                Value::List(items) | Value::Set(items) => items.len(),
                Value::Hash(pairs) => pairs.len() * 2,
                Value::SortedSet(members) => members.len() * 2,
                _ => 0,
            };
            compact += usize::from(expected > 0);
            assert_eq!(visited, expected, "{dir}/{name} key {:?}", neutral.key);
            assert_eq!(raw.key, neutral.key);
            assert_eq!(raw.value.decode().unwrap(), neutral.value, "{dir}/{name}");
        }
        assert!(compact > 0, "{dir}/{name} has collections");
    }
}

/// A stream written back in RDB 10 reads back exactly as Redis wrote it, groups, pending
/// entries and consumers included.
#[test]
fn streams_round_trip_through_the_writer() {
    let bytes = std::fs::read(fixtures().join("redis-7.0/stream.rdb")).unwrap();
    let (entries, _) = read_all(&bytes).unwrap();
    let streams: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e.value, Value::Stream(_)))
        .collect();
    assert!(!streams.is_empty());
    let mut writer =
        amber_rdb::RdbWriter::new(Vec::new(), amber_rdb::WriteOptions::default()).unwrap();
    writer.select_db(0, streams.len() as u64, 0).unwrap();
    for entry in &streams {
        writer
            .entry(&entry.key, &entry.value, entry.expire_at_ms)
            .unwrap();
    }
    let file = writer.finish().unwrap();
    let (written, _) = read_all(&file).unwrap();
    assert_eq!(written.len(), streams.len());
    for (got, want) in written.iter().zip(&streams) {
        assert_eq!(
            got.value,
            want.value,
            "stream {:?}",
            String::from_utf8_lossy(&want.key)
        );
    }
}
