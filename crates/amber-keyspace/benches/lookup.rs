//! Key lookups in a database larger than the processor's caches, one at a time and as a
//! pipelined batch whose keys are first brought into the cache together (`Db::warm_keys`);
//! the copy of a hash-table value a forkless snapshot takes of each key it captures; and a
//! table grown to 1M keys.

#![allow(clippy::unwrap_used)] // a benchmark may panic on what it did not expect

use amber_keyspace::{Db, Dict, Entry, HashLimits, HashValue, SetValue, StrValue, Value};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const KEYS: u64 = 1_000_000;
const BATCH: usize = 16;

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

/// Batches of `BATCH` keys in a scattered order (a multiplicative walk through the keys).
fn batches(count: usize) -> Vec<Vec<Vec<u8>>> {
    let mut next = 1u64;
    (0..count)
        .map(|_| {
            (0..BATCH)
                .map(|_| {
                    next = next.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    key((next >> 20) % KEYS)
                })
                .collect()
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let mut db = Db::new();
    for i in 0..KEYS {
        let value = Value::Str(StrValue::from_bytes(format!("value-{i}").as_bytes()));
        db.insert(&key(i), Entry::new(value, 0));
    }
    let batches = batches(4096);
    let mut group = c.benchmark_group("lookup_1m_keys");
    group.throughput(Throughput::Elements((batches.len() * BATCH) as u64));
    group.bench_function("one_by_one", |b| {
        b.iter(|| {
            let mut found = 0;
            for batch in &batches {
                for key in batch {
                    found += db.get_for_read(key, 0).map_or(0, |e| e.value.touch());
                }
            }
            found
        })
    });
    group.bench_function("warmed_batch", |b| {
        b.iter(|| {
            let mut found = 0;
            for batch in &batches {
                db.warm_keys(batch.iter().map(Vec::as_slice));
                for key in batch {
                    found += db.get_for_read(key, 0).map_or(0, |e| e.value.touch());
                }
            }
            found
        })
    });
    group.finish();
}

/// Copies of a 10-member set and a 600-field hash in their hash-table encodings, and the
/// set's packed copy for a forkless capture.
fn copies(c: &mut Criterion) {
    let mut set = SetValue::default();
    for i in 0..10 {
        set.add(format!("member-{i}").as_bytes(), 0);
    }
    let mut hash = HashValue::default();
    let limits = HashLimits::default();
    for i in 0..600 {
        hash.set(
            format!("field-{i}").as_bytes(),
            format!("value-{i}").as_bytes(),
            limits,
        );
    }
    assert_eq!(
        (set.encoding(), hash.encoding()),
        ("hashtable", "hashtable")
    );
    let mut group = c.benchmark_group("copy");
    group.bench_function("set_hashtable_10", |b| b.iter(|| set.clone()));
    group.bench_function("hash_hashtable_600", |b| b.iter(|| hash.clone()));
    group.finish();
}

/// A table built from empty to 1M keys, through every doubling: the total cost of the
/// incremental resizes (the stall they avoid is measured by `cargo xtask bench --growth-only`).
fn growth(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let mut group = c.benchmark_group("grow");
    group.sample_size(10);
    group.throughput(Throughput::Elements(KEYS));
    group.bench_function("insert_1m_keys", |b| {
        b.iter(|| {
            let mut table: Dict<_> = Dict::new();
            for (value, key) in keys.iter().enumerate() {
                table.insert(key, value as u32);
            }
            table
        })
    });
    group.finish();
}

criterion_group!(benches, lookups, copies, growth);
criterion_main!(benches);
