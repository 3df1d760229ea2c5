//! A big list (1M elements of 15 bytes, `quicklist` encoding): building it at the tail, a
//! queue's push at the head and pop at the tail, an element by index, and a range of ten.

#![allow(clippy::unwrap_used)] // a benchmark may panic on what it did not expect

use amber_keyspace::{ListLimits, ListValue};
use criterion::{Criterion, criterion_group, criterion_main};

const ELEMENTS: usize = 1_000_000;

fn element(i: usize) -> Vec<u8> {
    format!("member:{i:08}").into_bytes()
}

fn big_list(c: &mut Criterion) {
    let limits = ListLimits::default();
    let elements: Vec<Vec<u8>> = (0..ELEMENTS).map(element).collect();
    let mut group = c.benchmark_group("list_1m_elements");
    group.sample_size(10);
    group.bench_function("build", |b| {
        b.iter(|| ListValue::from_items(elements.iter().map(Vec::as_slice), limits).len())
    });
    let mut list = ListValue::from_items(elements.iter().map(Vec::as_slice), limits);
    group.bench_function("lpush_rpop_1024", |b| {
        b.iter(|| {
            for item in &elements[..1024] {
                list.extend_front(std::iter::once(item.as_slice()), limits);
                list.pop_back();
            }
            list.len()
        })
    });
    let probes: Vec<usize> = (0..1024).map(|i| i * 977 % ELEMENTS).collect();
    group.bench_function("index_1024", |b| {
        b.iter(|| probes.iter().filter_map(|&at| list.get(at)).count())
    });
    group.bench_function("range_of_10_at_1024_indexes", |b| {
        b.iter(|| {
            probes
                .iter()
                .map(|&at| list.range(at, at + 9).count())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, big_list);
criterion_main!(benches);
