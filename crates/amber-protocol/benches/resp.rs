//! Throughput of request parsing and reply encoding.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_protocol::{Frame, Limits, Protocol, ReplyWriter, RequestParser, peek_keys};
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn pipeline(count: usize) -> BytesMut {
    let mut wire = BytesMut::new();
    for i in 0..count {
        let key = format!("key:{i:08}");
        Frame::command([
            b"SET".as_slice(),
            key.as_bytes(),
            b"some-value-of-medium-length",
        ])
        .encode(&mut wire);
    }
    wire
}

fn parse(c: &mut Criterion) {
    let wire = pipeline(1000);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("set_pipeline_1000", |b| {
        b.iter(|| {
            let mut buf = wire.clone();
            let mut parser = RequestParser::new();
            let mut n = 0;
            while let Ok(Some(req)) = parser.next_request(&mut buf, &Limits::default()) {
                n += req.len();
            }
            n
        })
    });
    // What the server does before running a pipelined read: find the keys of the next 32.
    group.bench_function("peek_keys_32", |b| {
        b.iter(|| {
            let mut total = 0;
            peek_keys(&wire, 32, |key| total += key.len());
            total
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("bulk_replies_1000", |b| {
        let mut writer = ReplyWriter::new(Protocol::Resp2);
        b.iter(|| {
            for i in 0..1000 {
                writer.bulk(b"some-value-of-medium-length");
                writer.integer(i);
            }
            writer.buffer().clear();
        })
    });
    group.finish();
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
