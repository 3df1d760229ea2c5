//! The event loop's share of a forkless snapshot: a full capture walk of a keyspace larger
//! than the processor's caches, holding the snapshot bench's dataset (1M keys: strings, and
//! 10-element hashes, lists, sets and sorted sets, inserted type by type). The copies go to
//! another thread in chunks, which frees them, as the snapshot's writer does; jemalloc
//! allocates, as in the server.

#![allow(clippy::unwrap_used)] // a benchmark may panic on what it did not expect

use std::sync::mpsc::sync_channel;

use amber_keyspace::{
    Entry, HashLimits, HashValue, Keyspace, ListLimits, ListValue, SetValue, SmallBytes, StrValue,
    Value, ZsetLimits, ZsetValue,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The server's allocator: the copies' cost depends on it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PER_TYPE: u64 = 200_000;
const BUDGET: usize = 256;
const CHUNK: usize = 1024;

fn keyspace() -> Keyspace {
    let mut keyspace = Keyspace::new(1);
    let db = keyspace.db(0);
    let ten = |prefix: &str| (0..10).map(|j| format!("{prefix}{j}")).collect::<Vec<_>>();
    let (fields, elements, members) = (ten("f"), ten("e"), ten("m"));
    for i in 0..PER_TYPE {
        let value = Value::Str(StrValue::from_bytes(format!("value-{i}").as_bytes()));
        db.insert(format!("string:{i}").as_bytes(), Entry::new(value, 0));
    }
    for i in 0..PER_TYPE {
        let mut hash = HashValue::default();
        for (j, field) in fields.iter().enumerate() {
            hash.set(
                field.as_bytes(),
                format!("v{j}").as_bytes(),
                HashLimits::default(),
            );
        }
        db.insert(
            format!("hash:{i}").as_bytes(),
            Entry::new(Value::Hash(hash), 0),
        );
    }
    for i in 0..PER_TYPE {
        let list =
            ListValue::from_items(elements.iter().map(|e| e.as_bytes()), ListLimits::default());
        db.insert(
            format!("list:{i}").as_bytes(),
            Entry::new(Value::List(list), 0),
        );
    }
    for i in 0..PER_TYPE {
        let mut set = SetValue::default();
        for member in &members {
            set.add(member.as_bytes(), 512);
        }
        db.insert(
            format!("set:{i}").as_bytes(),
            Entry::new(Value::Set(std::sync::Arc::new(set)), 0),
        );
    }
    for i in 0..PER_TYPE {
        let scored: Vec<(&[u8], f64)> = members
            .iter()
            .enumerate()
            .map(|(j, m)| (m.as_bytes(), j as f64))
            .collect();
        let zset = ZsetValue::from_members(&scored, ZsetLimits::default());
        db.insert(
            format!("zset:{i}").as_bytes(),
            Entry::new(Value::Zset(zset), 0),
        );
    }
    keyspace
}

fn walk(c: &mut Criterion) {
    let mut keyspace = keyspace();
    let (sender, receiver) = sync_channel::<Vec<(usize, SmallBytes, Entry)>>(4);
    let writer =
        std::thread::spawn(move || receiver.into_iter().map(|chunk| chunk.len()).sum::<usize>());
    let mut group = c.benchmark_group("capture");
    group.sample_size(10);
    group.throughput(Throughput::Elements(PER_TYPE * 5));
    group.bench_function("walk_1m_mixed", |b| {
        b.iter(|| {
            keyspace.begin_capture();
            let mut chunk = Vec::with_capacity(CHUNK);
            loop {
                let complete = keyspace.capture_step(BUDGET, &mut |db, key, entry| {
                    chunk.push((db, key, entry));
                });
                if chunk.len() >= CHUNK || complete {
                    sender
                        .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                        .unwrap();
                }
                if complete {
                    break;
                }
            }
        })
    });
    group.finish();
    drop(sender);
    assert!(writer.join().unwrap() > 0);
}

criterion_group!(benches, walk);
criterion_main!(benches);
