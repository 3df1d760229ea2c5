//! Append and read throughput of the AOF: encoding commands into the log buffer, and reading
//! them back (packed, as the server loads) from a file in memory; and the cost of one
//! `appendfsync always` group commit of 32 batches, fsynced by the caller (small groups) or
//! handed to the fsync thread and collected back (large ones), on a simulated disk so that
//! only the machinery is measured; and one write plus `fdatasync` of a group on a real file,
//! appended or written over preallocated zeros (`aof-preallocate`).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_aof::{AppendLog, CommandReader, FsyncPolicy, Packed, PackedCommand, SimulatedDisk};
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

/// 32 batches of one write each wait, one commit serves them, each is released.
fn group_commit(c: &mut Criterion) {
    use amber_aof::durability::{DurableLog, ReplyGate};
    use std::time::Instant;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("always_group_commit");
    // 32 values of 16 bytes stay under EAGER_COMMIT_BYTES and are fsynced by the caller; 32
    // of 1 KiB cross it, and their groups go to the fsync thread.
    for (name, value_len, threaded) in [
        ("inline_32_batches", 16, false),
        ("fsync_thread_32_batches", 1024, true),
    ] {
        let value = "v".repeat(value_len);
        group.bench_function(name, |b| {
            let disk = std::sync::Arc::new(SimulatedDisk::default());
            let (mut log, signals) = DurableLog::with_deferred_commits(FsyncPolicy::Always);
            log.attach(disk, 0).unwrap();
            b.iter(|| {
                let mut tickets = Vec::with_capacity(32);
                for i in 0..32 {
                    let key = format!("key:{i}");
                    log.log_mut()
                        .unwrap()
                        .append(0, &["SET", key.as_str(), value.as_str()]);
                    match log.before_reply(Instant::now(), true) {
                        ReplyGate::Wait(ticket) => tickets.push(ticket),
                        other => panic!("{other:?}"),
                    }
                }
                log.commit();
                for mut ticket in tickets {
                    loop {
                        match log.wait_step(ticket, Instant::now()) {
                            ReplyGate::Send => break,
                            ReplyGate::Wait(next) if threaded => ticket = next,
                            other => panic!("{other:?}"),
                        }
                        runtime.block_on(signals.synced.notified());
                        log.collect();
                        log.commit();
                    }
                }
            })
        });
    }
    group.finish();
}

/// A group of 50 `SET`s (about 2 KiB) written and fdatasynced, on a file in the target
/// directory (a real disk, unlike `/tmp` on some systems): appended, so each fsync commits
/// the new size and blocks, or written in place over zeros (`FileStorage::open_preallocated`).
fn file_group_fsync(c: &mut Criterion) {
    use amber_aof::{FileStorage, Storage};
    let mut group_bytes = Vec::new();
    for i in 0..50 {
        let key = format!("key:{i:08}");
        amber_aof::encode_command(
            &[b"SET".as_slice(), key.as_bytes(), b"value"],
            &mut group_bytes,
        );
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut group = c.benchmark_group("file_group_fsync");
    for (name, step) in [("appended", 0u64), ("preallocated_4mb", 4 << 20)] {
        let path = dir.join(format!("aof-bench-{name}"));
        let _ = std::fs::remove_file(&path);
        let storage = match step {
            0 => FileStorage::open(&path).unwrap(),
            step => FileStorage::open_preallocated(&path, step).unwrap(),
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                storage.append(&group_bytes).unwrap();
                storage.sync().unwrap();
            });
        });
        drop(storage);
        let _ = std::fs::remove_file(&path);
    }
    group.finish();
}

criterion_group!(benches, bench, group_commit, file_group_fsync);
criterion_main!(benches);
