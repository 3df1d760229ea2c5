//! A database's keys encoded on several threads: the key table is cut into runs of buckets,
//! helper threads encode the runs into fragments ([`RdbWriter::fragment`]) and the calling
//! thread appends them in table order, checksumming and writing as it goes. The file is byte
//! for byte the one a single thread writes.
//!
//! Only the foreground SAVE (and start-up or shutdown saves) use it: clients wait for those
//! anyway, so every core may work. A forked BGSAVE child stays on one thread, leaving the cores
//! to the parent that keeps serving, and spawns nothing after the fork (INV-FORK).
//!
//! Memory stays bounded whatever the dataset: a helper hands over pieces of at most
//! [`PIECE_BYTES`] through a channel [`IN_FLIGHT`] deep, and leaves a value estimated past
//! [`BIG_VALUE`] to the writer, which streams it as a single-threaded save does. The helpers
//! are scoped threads, joined before the save returns.

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use amber_keyspace::{Db, Entry};
use amber_rdb::{RdbWriter, WriteError, WriteOptions};

/// Encoded bytes after which a helper hands its piece over.
const PIECE_BYTES: usize = 256 * 1024;
/// Pieces (and run ends) a helper may have handed over and the writer not yet taken: deep
/// enough that a helper finishing small runs goes on while the other encodes a big one.
const IN_FLIGHT: usize = 16;
/// Runs per helper thread: enough for the runs to even out across helpers.
const RUNS_PER_HELPER: usize = 64;
/// The most buckets in one run.
const MAX_RUN_BUCKETS: usize = 4096;
/// Values estimated larger than this are written by the writer itself, streamed, rather
/// than encoded whole into a helper's buffer.
const BIG_VALUE: usize = 8 << 20;
/// Elements sampled to estimate a value's size.
const SIZE_SAMPLES: usize = 8;

/// What a helper hands the writer, in table order.
enum Piece<'a> {
    /// Keys encoded, and how many.
    Encoded { bytes: Vec<u8>, keys: u64 },
    /// A big key, for the writer to write itself.
    Direct { key: &'a [u8], entry: &'a Entry },
    /// The run is complete: the next piece comes from the next run's helper.
    EndOfRun,
    /// The encoder refused a key (a value this RDB version cannot hold).
    Failed(WriteError),
}

/// Writes the keys of `db` to `writer` with `helpers` encoding threads, in the order a
/// single-threaded walk of the table writes them. `progress` is told the running key count.
pub(crate) fn write_db<W: Write>(
    writer: &mut RdbWriter<W>,
    db: &Db,
    format: WriteOptions,
    helpers: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, WriteError> {
    let helpers = helpers.max(1);
    let buckets = db.bucket_count();
    let run_buckets = (buckets / (helpers * RUNS_PER_HELPER)).clamp(1, MAX_RUN_BUCKETS);
    let runs = Runs {
        buckets,
        run_buckets,
        helpers,
    };
    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(helpers);
        for helper in 0..helpers {
            let (pieces_tx, pieces) = sync_channel(IN_FLIGHT);
            let (spent, spent_rx) = channel();
            std::thread::Builder::new()
                .name("rdb-encoder".into())
                .spawn_scoped(scope, move || {
                    encode_runs(db, format, runs, helper, &pieces_tx, &spent_rx);
                })?;
            lanes.push(Lane { pieces, spent });
        }
        // Returning drops the lanes: a helper still sending sees the writer gone and stops,
        // and the scope joins it.
        append_runs(writer, &lanes, runs.count(), progress)
    })
}

/// How the table is cut: run `r` covers `run_buckets` buckets from `r * run_buckets`, and is
/// encoded by helper `r % helpers`.
#[derive(Clone, Copy)]
struct Runs {
    buckets: usize,
    run_buckets: usize,
    helpers: usize,
}

impl Runs {
    fn count(self) -> usize {
        self.buckets.div_ceil(self.run_buckets)
    }

    fn of_helper(self, helper: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        (helper..self.count())
            .step_by(self.helpers)
            .map(move |run| run * self.run_buckets..((run + 1) * self.run_buckets))
    }
}

/// The writer's end of one helper.
struct Lane<'a> {
    pieces: Receiver<Piece<'a>>,
    spent: Sender<Vec<u8>>,
}

/// A helper: encodes its runs in order, handing pieces over; stops early when the writer has
/// gone (an error) or after a key is refused.
fn encode_runs<'a>(
    db: &'a Db,
    format: WriteOptions,
    runs: Runs,
    helper: usize,
    pieces: &SyncSender<Piece<'a>>,
    spent: &Receiver<Vec<u8>>,
) {
    let mut fragment = match RdbWriter::fragment(format) {
        Ok(fragment) => fragment,
        Err(error) => {
            let _ = pieces.send(Piece::Failed(error));
            return;
        }
    };
    let mut keys = 0u64;
    let hand_over = |fragment: &mut RdbWriter<Vec<u8>>, keys: &mut u64| {
        let spare = spent.try_recv().unwrap_or_default();
        let bytes = fragment.take_encoded(spare);
        let count = std::mem::take(keys);
        bytes.is_empty() || pieces.send(Piece::Encoded { bytes, keys: count }).is_ok()
    };
    for buckets in runs.of_helper(helper) {
        let mut going = true;
        db.for_each_batched_in(buckets, |key, entry| {
            if is_big(entry) {
                going = hand_over(&mut fragment, &mut keys)
                    && pieces.send(Piece::Direct { key, entry }).is_ok();
                return going;
            }
            if let Err(error) = super::rdb::write_entry(&mut fragment, key, entry) {
                let _ = hand_over(&mut fragment, &mut keys);
                let _ = pieces.send(Piece::Failed(error));
                going = false;
                return false;
            }
            keys += 1;
            if fragment.bytes_written() as usize >= PIECE_BYTES {
                going = hand_over(&mut fragment, &mut keys);
            }
            going
        });
        if !going || !hand_over(&mut fragment, &mut keys) || pieces.send(Piece::EndOfRun).is_err() {
            return;
        }
    }
}

/// Whether a value is big enough to be streamed by the writer rather than encoded whole.
fn is_big(entry: &Entry) -> bool {
    crate::commands::value_size(&entry.value, SIZE_SAMPLES) > BIG_VALUE
}

/// The writer: takes the runs' pieces in table order and appends them; returns the key count.
fn append_runs<W: Write>(
    writer: &mut RdbWriter<W>,
    lanes: &[Lane<'_>],
    runs: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, WriteError> {
    let mut keys = 0u64;
    for run in 0..runs {
        let lane = &lanes[run % lanes.len()];
        loop {
            let piece = lane.pieces.recv().map_err(|_| helper_vanished())?;
            match piece {
                Piece::Encoded { bytes, keys: count } => {
                    writer.append_encoded(&bytes)?;
                    let _ = lane.spent.send(bytes);
                    keys += count;
                }
                Piece::Direct { key, entry } => {
                    super::rdb::write_entry(writer, key, entry)?;
                    keys += 1;
                }
                Piece::EndOfRun => break,
                Piece::Failed(error) => return Err(error),
            }
            progress(keys);
        }
    }
    Ok(keys)
}

/// A helper ended without finishing its runs (it panicked: the scope reports that too).
fn helper_vanished() -> WriteError {
    WriteError::Io(std::io::Error::other("an RDB encoding thread stopped"))
}
