//! Encode and decode throughput per value type, on a synthetic dataset shaped like the one in
//! REDIS-FACTS (strings and 10-element hashes, lists, sets and sorted sets).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_rdb::{Item, RawValue, RdbReader, RdbWriter, Value, WriteOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const KEYS: usize = 20_000;

fn dataset(kind: &str) -> Vec<(Vec<u8>, Value)> {
    (0..KEYS)
        .map(|i| {
            let key = format!("{kind}:{i:08}").into_bytes();
            let item = |j: usize| format!("element-{i}-{j}").into_bytes();
            let value = match kind {
                "string" => Value::String(format!("value-{i}-padding-padding").into_bytes()),
                "int" => Value::String((i as i64 * 7919).to_string().into_bytes()),
                "hash" => Value::Hash(
                    (0..10)
                        .map(|j| (item(j), format!("{j}").into_bytes()))
                        .collect(),
                ),
                "list" => Value::List((0..10).map(item).collect()),
                "set" => Value::Set((0..10).map(item).collect()),
                _ => Value::SortedSet((0..10).map(|j| (item(j), j as f64 * 1.5)).collect()),
            };
            (key, value)
        })
        .collect()
}

fn encode(data: &[(Vec<u8>, Value)]) -> Vec<u8> {
    let mut writer = RdbWriter::new(Vec::with_capacity(4 << 20), WriteOptions::default()).unwrap();
    writer.select_db(0, data.len() as u64, 0).unwrap();
    for (key, value) in data {
        writer.entry(key, value, None).unwrap();
    }
    writer.finish().unwrap()
}

fn decode(file: &[u8]) -> usize {
    let mut reader = RdbReader::new(file).unwrap();
    let mut keys = 0;
    while let Some(item) = reader.next_item().unwrap() {
        keys += usize::from(matches!(item, Item::Entry(_)));
    }
    keys
}

/// The raw path a server uses: values kept in their stored form, elements visited in place,
/// buffers given back to the reader.
fn decode_raw(file: &[u8]) -> usize {
    let mut reader = RdbReader::new(file).unwrap();
    let mut elements = 0;
    while let Some(item) = reader.next_raw_item().unwrap() {
        if let Item::Entry(entry) = item {
            elements += entry.value.visit(|_| {}).unwrap();
            reader.recycle(entry.value);
            reader.recycle_bytes(entry.key);
        }
    }
    elements
}

/// 4 KiB strings that compress about as stream nodes do: short fields with varying numbers.
fn node_like_strings() -> Vec<(Vec<u8>, Value)> {
    (0..2_000)
        .map(|i| {
            let mut text = Vec::with_capacity(4096);
            let mut n: u64 = i * 7919;
            while text.len() < 4096 {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 1_000_003;
                text.extend_from_slice(
                    format!("sensor s{} reading {} ", n % 50, 1000 + n % 9000).as_bytes(),
                );
            }
            text.truncate(4096);
            (format!("node:{i}").into_bytes(), Value::String(text))
        })
        .collect()
}

/// Streams of two-field entries (as `cargo xtask bench --streams-only` writes them) in an RDB
/// file with compressed nodes: 20 streams of 5000 entries.
fn stream_file() -> Vec<u8> {
    streams_file(|stream, i| {
        let id = amber_keyspace::StreamId::new(i * 100 + stream + 1, 1);
        let (name, reading) = (format!("s{}", i % 50), (1000 + i % 9000).to_string());
        let pairs = vec![
            b"sensor".to_vec(),
            name.into_bytes(),
            b"reading".to_vec(),
            reading.into_bytes(),
        ];
        (id, pairs)
    })
}

/// Streams of entries less alike: IDs far apart, a third of the entries with fields of their
/// own, numbers of every width and text of 10 to 110 bytes.
fn varied_stream_file() -> Vec<u8> {
    let mut seed = 12_345u64;
    let mut random = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut ms = 0;
    streams_file(move |_, _| {
        ms += 1 + random(300_000);
        let mut pairs = vec![
            b"user".to_vec(),
            random(1_000_000).to_string().into_bytes(),
            b"event".to_vec(),
            format!("ev{}", random(20)).into_bytes(),
            b"payload".to_vec(),
            vec![b'x'; 10 + random(100) as usize],
        ];
        if random(3) == 0 {
            pairs.extend([b"retry".to_vec(), random(5).to_string().into_bytes()]);
        }
        (amber_keyspace::StreamId::new(ms, random(4)), pairs)
    })
}

/// 20 streams of 5000 entries made by `entry(stream, index)` (ids increasing within each
/// stream), in an RDB file with compressed nodes.
fn streams_file(
    mut entry: impl FnMut(u64, u64) -> (amber_keyspace::StreamId, Vec<Vec<u8>>),
) -> Vec<u8> {
    let mut writer = RdbWriter::new(Vec::new(), WriteOptions::default()).unwrap();
    writer.select_db(0, 20, 0).unwrap();
    for stream in 0..20u64 {
        let mut log = amber_keyspace::StreamLog::default();
        for i in 0..5_000u64 {
            let (id, pairs) = entry(stream, i);
            let pairs: Vec<&[u8]> = pairs.iter().map(Vec::as_slice).collect();
            log.append(id, &pairs, amber_keyspace::StreamLimits::default())
                .unwrap();
        }
        let meta = log.meta();
        let rest = amber_rdb::Stream {
            length: meta.length,
            last_id: amber_rdb::StreamId {
                ms: meta.last_id.ms,
                seq: meta.last_id.seq,
            },
            ..amber_rdb::Stream::default()
        };
        let nodes = log.nodes().map(|(master, listpack)| {
            (
                amber_rdb::StreamId {
                    ms: master.ms,
                    seq: master.seq,
                },
                listpack,
            )
        });
        let key = format!("stream:{stream}").into_bytes();
        writer.stream_entry(&key, nodes, &rest, None).unwrap();
    }
    writer.finish().unwrap()
}

/// A server's load of streams: nodes read still compressed, then decompressed and checked.
fn unpack_streams(file: &[u8]) -> usize {
    let mut reader = RdbReader::new(file).unwrap();
    let mut nodes = 0;
    while let Some(item) = reader.next_raw_item().unwrap() {
        if let Item::Entry(entry) = item
            && let RawValue::Stream(mut packed) = entry.value
        {
            nodes += packed.unpack().unwrap().nodes.len();
        }
    }
    nodes
}

fn benches(c: &mut Criterion) {
    let file = stream_file();
    let mut group = c.benchmark_group("rdb_stream");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(20);
    group.bench_function("read_and_unpack", |b| b.iter(|| unpack_streams(&file)));
    group.bench_function("decode", |b| b.iter(|| decode(&file)));
    let varied = varied_stream_file();
    group.bench_function("read_and_unpack_varied", |b| {
        b.iter(|| unpack_streams(&varied))
    });
    group.finish();
    let data = node_like_strings();
    let file = encode(&data);
    let mut group = c.benchmark_group("rdb_lzf_4k");
    group.throughput(Throughput::Bytes((data.len() * 4096) as u64));
    group.sample_size(20);
    group.bench_function("encode", |b| b.iter(|| encode(&data).len()));
    group.bench_function("decode_raw", |b| b.iter(|| decode_raw(&file)));
    group.finish();
    for kind in ["string", "int", "hash", "list", "set", "zset"] {
        let data = dataset(kind);
        let file = encode(&data);
        let mut group = c.benchmark_group(format!("rdb_{kind}"));
        group.throughput(Throughput::Elements(KEYS as u64));
        group.sample_size(20);
        group.bench_function("encode", |b| b.iter(|| encode(&data).len()));
        group.bench_function("decode", |b| b.iter(|| decode(&file)));
        group.bench_function("decode_raw", |b| b.iter(|| decode_raw(&file)));
        group.finish();
    }
}

criterion_group!(rdb, benches);
criterion_main!(rdb);
