//! Append and read throughput of the AOF: encoding commands into the log buffer, and reading
//! them back (packed, as the server loads) from a file in memory.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_aof::{AppendLog, CommandReader, Packed, PackedCommand, SimulatedDisk};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const COMMANDS: usize = 100_000;

fn commands() -> Vec<Vec<Vec<u8>>> {
    (0..COMMANDS)
        .map(|i| {
            if i % 2 == 0 {
                vec![
                    b"SET".to_vec(),
                    format!("key:{i:08}").into_bytes(),
                    format!("value-{i}-padding-padding").into_bytes(),
                ]
            } else {
                let mut hset = vec![b"HSET".to_vec(), format!("hash:{i:08}").into_bytes()];
                for j in 0..10 {
                    hset.push(format!("f{j}").into_bytes());
                    hset.push(format!("v{j}").into_bytes());
                }
                hset
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let commands = commands();
    let mut encoded = Vec::new();
    for command in &commands {
        amber_aof::encode_command(command, &mut encoded);
    }
    let mut group = c.benchmark_group("aof");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("append_and_write", |b| {
        b.iter(|| {
            let disk = std::sync::Arc::new(SimulatedDisk::default());
            let mut log = AppendLog::new(disk, 0);
            for command in &commands {
                log.append(0, command);
            }
            log.flush().expect("in-memory write")
        })
    });
    group.bench_function("read_packed", |b| {
        b.iter(|| {
            let mut reader = CommandReader::new(encoded.as_slice(), 0);
            let mut command = PackedCommand::default();
            let mut count = 0;
            while let Some(item) = reader.next_packed(&mut command).expect("valid log") {
                if item == Packed::Command {
                    count += 1;
                }
            }
            count
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
