//! Deterministic crash simulations: a write load on a [`SimulatedDisk`] that tears writes,
//! fails fsyncs and loses power; whatever happens, every write acknowledged under
//! `appendfsync always` must be read back after the crash, and a failed fsync must be reported
//! instead of acknowledged.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::sync::Arc;
use std::sync::mpsc;

use amber_aof::{AppendLog, CommandReader, Faults, Item, ReadError, SimulatedDisk, Syncer};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// One client writes and waits for its fsync.
    Write(Vec<u8>),
    /// Several clients write; one fsync (group commit) acknowledges them all.
    Group(Vec<Vec<u8>>),
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        value.clone().prop_map(Op::Write),
        prop::collection::vec(value, 1..6).prop_map(Op::Group),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        prop::option::of((0usize..30, 0usize..60)),
        prop::option::of(0usize..30),
    )
        .prop_map(|(fail_append, fail_sync)| Faults {
            fail_append,
            fail_sync,
        })
}

/// The SET values read back from a crash image, up to the first cut or damaged byte.
fn recovered_values(image: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = CommandReader::new(image, 0);
    let mut values = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(Item::Command(args))) if args[0] == b"SET" => values.push(args[2].clone()),
            Ok(Some(_)) => {}
            Ok(None) | Err(ReadError::Truncated { .. }) | Err(ReadError::Format { .. }) => {
                return values;
            }
            Err(ReadError::Io(error)) => panic!("in-memory read failed: {error}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn acknowledged_always_writes_survive_any_crash(
        ops in prop::collection::vec(op(), 1..25),
        faults in faults(),
        torn in 0usize..200,
    ) {
        let disk = Arc::new(SimulatedDisk::new(faults));
        let mut log = AppendLog::new(disk.clone(), 0);
        let mut acknowledged: Vec<Vec<u8>> = Vec::new();
        let mut sync_failed = false;
        for op in ops {
            let batch = match op {
                Op::Write(value) => vec![value],
                Op::Group(values) => values,
            };
            if log.health().is_err() {
                // The server refuses writes (-MISCONF) once the log failed.
                continue;
            }
            for value in &batch {
                log.append(0, &[b"SET".as_slice(), b"k", value]);
            }
            match log.flush_and_sync() {
                Ok(_) => acknowledged.extend(batch),
                Err(amber_aof::LogError::Sync(_)) => sync_failed = true,
                Err(amber_aof::LogError::Write(_)) => {}
            }
        }
        if sync_failed {
            prop_assert!(log.health().is_err(), "a failed fsync must keep the log failed");
        }
        let recovered = recovered_values(&disk.crash_image(torn));
        prop_assert!(
            recovered.len() >= acknowledged.len(),
            "lost acknowledged writes: {} acknowledged, {} recovered",
            acknowledged.len(),
            recovered.len()
        );
        prop_assert_eq!(&recovered[..acknowledged.len()], &acknowledged[..]);
    }
}

#[test]
fn syncer_shares_one_fsync_among_queued_writes_and_reports_failure() {
    let disk = Arc::new(SimulatedDisk::new(Faults {
        fail_append: None,
        fail_sync: Some(1),
    }));
    let mut log = AppendLog::new(disk.clone(), 0);
    let (sender, reports) = mpsc::channel();
    let syncer = Syncer::start(
        log.storage(),
        0,
        Box::new(move |progress| {
            let _ = sender.send(progress);
        }),
    )
    .expect("thread starts");
    for value in ["a", "b", "c"] {
        log.append(0, &["SET", "k", value]);
    }
    let written = log.flush().expect("write");
    syncer.request(written);
    let progress = syncer.drain();
    assert_eq!(progress.synced, written);
    assert_eq!(progress.error, None);
    assert_eq!(disk.crash_image(0).len() as u64, written);

    log.append(0, &["SET", "k", "d"]);
    let written = log.flush().expect("write");
    syncer.request(written);
    let progress = syncer.drain();
    assert!(progress.error.is_some(), "the second fsync was set to fail");
    let last = reports.iter().last().expect("reports were sent");
    assert!(last.error.is_some());
    assert!(last.synced < written);
}
