//! A big sorted set (1M members, `skiplist` encoding): building it member by member, a
//! member's rank, a range of ten from the middle, and an update that moves a member.

#![allow(clippy::unwrap_used)] // a benchmark may panic on what it did not expect

use amber_keyspace::{ZsetLimits, ZsetValue};
use criterion::{Criterion, criterion_group, criterion_main};

const MEMBERS: u64 = 1_000_000;

fn member(i: u64) -> Vec<u8> {
    format!("member:{i:08}").into_bytes()
}

/// A scattered order of the members (a multiplicative walk).
fn scattered(count: usize) -> Vec<u64> {
    let mut next = 1u64;
    (0..count)
        .map(|_| {
            next = next.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (next >> 20) % MEMBERS
        })
        .collect()
}

fn big_zset(c: &mut Criterion) {
    let limits = ZsetLimits::default();
    let order = scattered(MEMBERS as usize);
    let mut group = c.benchmark_group("zset_1m_members");
    group.sample_size(10);
    group.bench_function("build", |b| {
        b.iter(|| {
            let mut zset = ZsetValue::default();
            for &i in &order {
                zset.insert(&member(i), i as f64, limits);
            }
            zset.len()
        })
    });
    let mut zset = ZsetValue::default();
    for &i in &order {
        zset.insert(&member(i), i as f64, limits);
    }
    let probes: Vec<Vec<u8>> = scattered(1024).into_iter().map(member).collect();
    group.bench_function("rank_1024", |b| {
        b.iter(|| probes.iter().filter_map(|m| zset.rank(m)).sum::<usize>())
    });
    group.bench_function("range_of_10_at_1024_ranks", |b| {
        b.iter(|| {
            scattered(1024)
                .into_iter()
                .map(|at| zset.range(at as usize..at as usize + 10).count())
                .sum::<usize>()
        })
    });
    group.bench_function("move_1024_members", |b| {
        let mut round = 0.0;
        b.iter(|| {
            round += 1.0;
            for (n, m) in probes.iter().enumerate() {
                zset.insert(m, round * 1e6 + n as f64, limits);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, big_zset);
criterion_main!(benches);
