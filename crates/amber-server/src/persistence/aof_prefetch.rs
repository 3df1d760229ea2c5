//! Reads an AOF's commands on a helper thread, ahead of the replay: parsing RESP and slicing
//! each command's arguments out of its buffer overlaps with executing the commands on the
//! event-loop thread. Redis does both on one thread.
//!
//! The thread owns the reader and hands commands over in batches. Memory stays bounded
//! whatever the file: the thread stops reading while the batches handed over and not yet
//! taken hold more than [`AHEAD_BYTES`] of the file, so beside the command being replayed it
//! holds at most that plus one batch (a 512 MB string is one command, and a batch of its
//! own). How reading ended, at the end of the file or at an error, comes last with the
//! reader's offset then. The thread is joined when the prefetch is dropped, so no helper
//! outlives a load (nothing runs beside the event loop when it later forks: INV-FORK).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use amber_aof::{CommandReader, Packed, PackedCommand, ReadError};
use bytes::Bytes;

/// Commands per batch handed over: each hand-over may wake the other thread (a futex call of
/// a few microseconds), so a batch holds many small commands.
const BATCH: usize = 1024;
/// File bytes per batch: big commands go over one or a few at a time, so the replay works on
/// one while the next is read.
const BATCH_BYTES: u64 = 256 * 1024;
/// File bytes the batches handed over and not yet taken may hold before the thread waits.
const AHEAD_BYTES: u64 = 4 * BATCH_BYTES;

/// A command as read from the file.
#[derive(Debug)]
pub(crate) struct ReadCommand {
    /// Where it starts in the file.
    pub(crate) start: u64,
    /// Where it ends (where the next command or annotation starts).
    pub(crate) end: u64,
    /// Its arguments, the name first, sliced from one buffer.
    pub(crate) args: Vec<Bytes>,
}

/// How reading ended (`Ok` at the end of the file, else the reader's error), with the reader's
/// offset then.
type Outcome = (Result<(), ReadError>, u64);

/// One hand-over: commands in file order, then, in the last batch, how reading ended.
struct Batch {
    commands: Vec<ReadCommand>,
    /// The file bytes its commands took.
    bytes: u64,
    /// `Ok` at the end of the file, else the reader's error; with the reader's offset then
    /// (after an error, the start of the command it could not read).
    outcome: Option<Outcome>,
}

/// The replay's side of the helper thread.
pub(crate) struct CommandPrefetch {
    batches: Option<Receiver<Batch>>,
    /// What the thread and the replay share.
    shared: Arc<Shared>,
    current: std::vec::IntoIter<ReadCommand>,
    /// How reading ended, once the last batch is taken and until it is handed out.
    outcome: Option<Outcome>,
    offset: u64,
    thread: Option<JoinHandle<()>>,
}

impl CommandPrefetch {
    /// Starts reading `reader`'s commands on a helper thread.
    pub(crate) fn start<R: std::io::BufRead + Send + 'static>(
        reader: CommandReader<R>,
    ) -> std::io::Result<CommandPrefetch> {
        let offset = reader.offset();
        let (sender, batches) = channel();
        let shared = Arc::new(Shared::default());
        let handover = Handover {
            batches: sender,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("aof-reader".into())
            .spawn(move || read_ahead(reader, &handover))?;
        Ok(CommandPrefetch {
            batches: Some(batches),
            shared,
            current: Vec::new().into_iter(),
            outcome: None,
            offset,
            thread: Some(thread),
        })
    }

    /// The next command; `None` at the end of the file. After an error or the end, every
    /// later call returns `None`.
    pub(crate) fn next_command(&mut self) -> Result<Option<ReadCommand>, ReadError> {
        loop {
            if let Some(command) = self.current.next() {
                self.offset = command.end;
                return Ok(Some(command));
            }
            if let Some((result, offset)) = self.outcome.take() {
                self.offset = offset;
                self.batches = None;
                return result.map(|()| None);
            }
            let Some(batches) = self.batches.as_ref() else {
                return Ok(None);
            };
            let Ok(batch) = batches.recv() else {
                // The helper hung up before its last batch: it died. Said as an error, since
                // the commands it did not hand over would otherwise look like a short file.
                self.batches = None;
                return Err(ReadError::Io(std::io::Error::other(
                    "the AOF reader thread stopped",
                )));
            };
            if self.shared.ahead.fetch_sub(batch.bytes, Ordering::AcqRel) > AHEAD_BYTES
                && let Some(thread) = &self.thread
            {
                // The thread may be waiting for room.
                thread.thread().unpark();
            }
            self.current = batch.commands.into_iter();
            self.outcome = batch.outcome;
        }
    }

    /// The commands read ahead of the next one in the batch at hand (for warming the cache).
    pub(crate) fn upcoming(&self) -> &[ReadCommand] {
        self.current.as_slice()
    }

    /// The file offset after the last command handed out (after the end or an error, the
    /// reader's offset then).
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

impl Drop for CommandPrefetch {
    fn drop(&mut self) {
        // The reader stops at its next hand-over, or at once if it waits for room.
        self.batches = None;
        self.shared.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// What the replay and the helper thread share.
#[derive(Default)]
struct Shared {
    /// File bytes in batches handed over and not yet taken.
    ahead: AtomicU64,
    /// The replay is gone: the thread stops.
    stopped: AtomicBool,
}

/// The helper thread's side: where batches go, and the state it shares with the replay.
struct Handover {
    batches: Sender<Batch>,
    shared: Arc<Shared>,
}

impl Handover {
    /// Hands `batch` over; `false` once the replay has hung up.
    fn send(&self, batch: Batch) -> bool {
        self.shared.ahead.fetch_add(batch.bytes, Ordering::AcqRel);
        self.batches.send(batch).is_ok()
    }

    /// Waits while more than [`AHEAD_BYTES`] wait to be taken; `false` once the replay has
    /// hung up.
    fn wait_for_room(&self) -> bool {
        while self.shared.ahead.load(Ordering::Acquire) > AHEAD_BYTES {
            if self.shared.stopped.load(Ordering::Acquire) {
                return false;
            }
            // Woken when a batch is taken or the replay hangs up; the timeout only guards
            // against a missed wake-up.
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
        true
    }
}

/// The helper thread: reads commands until the end of the file, an error, or the replay
/// hangs up.
fn read_ahead<R: std::io::BufRead>(mut reader: CommandReader<R>, handover: &Handover) {
    let mut packed = PackedCommand::default();
    loop {
        if !handover.wait_for_room() {
            return;
        }
        let mut commands = Vec::with_capacity(BATCH);
        let mut outcome = None;
        let started_at = reader.offset();
        while outcome.is_none()
            && commands.len() < BATCH
            && reader.offset() - started_at < BATCH_BYTES
        {
            let start = reader.offset();
            match reader.next_packed(&mut packed) {
                Ok(Some(Packed::Command)) => commands.push(ReadCommand {
                    start,
                    end: reader.offset(),
                    args: split_args(&mut packed),
                }),
                Ok(Some(Packed::Annotation(_))) => {}
                Ok(None) => outcome = Some((Ok(()), reader.offset())),
                Err(error) => outcome = Some((Err(error), reader.offset())),
            }
        }
        let last = outcome.is_some();
        let bytes = reader.offset() - started_at;
        if !handover.send(Batch {
            commands,
            bytes,
            outcome,
        }) || last
        {
            return;
        }
    }
}

/// One buffer per command, its arguments sliced out of it without copying.
fn split_args(packed: &mut PackedCommand) -> Vec<Bytes> {
    let data = Bytes::from(std::mem::take(&mut packed.data));
    let mut start = 0;
    packed
        .ends
        .iter()
        .map(|&end| {
            let arg = data.slice(start..end);
            start = end;
            arg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Everything a plain reader gives for `bytes`: each command's start, end and arguments,
    /// then how reading ended and the reader's offset then.
    type Reading = (Vec<(u64, u64, Vec<Vec<u8>>)>, String, u64);

    fn read_plainly(bytes: &[u8]) -> Reading {
        let mut reader = CommandReader::new(bytes, 0);
        let mut packed = PackedCommand::default();
        let mut commands = Vec::new();
        loop {
            let start = reader.offset();
            match reader.next_packed(&mut packed) {
                Ok(Some(Packed::Command)) => commands.push((
                    start,
                    reader.offset(),
                    packed.args().map(<[u8]>::to_vec).collect(),
                )),
                Ok(Some(Packed::Annotation(_))) => {}
                Ok(None) => return (commands, "end".into(), reader.offset()),
                Err(error) => return (commands, error.to_string(), reader.offset()),
            }
        }
    }

    fn read_ahead_of(bytes: &[u8]) -> Reading {
        let reader = CommandReader::new(std::io::Cursor::new(bytes.to_vec()), 0);
        let mut prefetch = CommandPrefetch::start(reader).expect("thread starts");
        let mut commands = Vec::new();
        loop {
            match prefetch.next_command() {
                Ok(Some(command)) => {
                    assert_eq!(prefetch.offset(), command.end);
                    commands.push((
                        command.start,
                        command.end,
                        command.args.iter().map(|a| a.to_vec()).collect(),
                    ));
                }
                Ok(None) => return (commands, "end".into(), prefetch.offset()),
                Err(error) => return (commands, error.to_string(), prefetch.offset()),
            }
        }
    }

    /// A log of `count` commands (some with big arguments, so batches split by size too),
    /// with annotations between some.
    fn log(count: usize, big_every: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 0..count {
            if i % 7 == 3 {
                bytes.extend_from_slice(format!("#TS:{i}\r\n").as_bytes());
            }
            let value = if big_every > 0 && i % big_every == 0 {
                vec![b'v'; 70_000]
            } else {
                format!("value-{i}").into_bytes()
            };
            amber_aof::encode_command(
                &[&b"SET"[..], format!("k{i}").as_bytes(), &value],
                &mut bytes,
            );
        }
        bytes
    }

    #[test]
    fn a_whole_log_reads_as_the_plain_reader_reads_it_across_many_batches() {
        let bytes = log(3 * BATCH + 17, 301);
        let plain = read_plainly(&bytes);
        assert_eq!(plain.0.len(), 3 * BATCH + 17);
        assert_eq!(read_ahead_of(&bytes), plain);
    }

    #[test]
    fn dropping_the_prefetch_mid_file_stops_and_joins_its_thread() {
        let bytes = log(20 * BATCH, 0);
        let reader = CommandReader::new(std::io::Cursor::new(bytes), 0);
        let mut prefetch = CommandPrefetch::start(reader).expect("thread starts");
        assert!(matches!(prefetch.next_command(), Ok(Some(_))));
        drop(prefetch); // joins: a helper blocked on the full channel must see the hang-up
    }

    #[test]
    fn the_thread_reads_no_further_ahead_than_its_bound() {
        // 70 KB commands: a batch ends after four of them.
        let bytes = log(400, 1);
        let reader = CommandReader::new(std::io::Cursor::new(bytes), 0);
        let mut prefetch = CommandPrefetch::start(reader).expect("thread starts");
        assert!(matches!(prefetch.next_command(), Ok(Some(_))));
        std::thread::sleep(std::time::Duration::from_millis(200));
        let ahead = prefetch.shared.ahead.load(Ordering::Acquire);
        assert!(ahead > 0, "the thread reads ahead");
        // It looks at the bound before each batch: at most one batch past it.
        assert!(
            ahead <= AHEAD_BYTES + BATCH_BYTES + 71_000,
            "{ahead} bytes ahead"
        );
        let mut commands = 1;
        while let Ok(Some(_)) = prefetch.next_command() {
            commands += 1;
        }
        assert_eq!(commands, 400, "and goes on as the replay takes batches");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A log cut anywhere, or with one byte changed anywhere, ends at the same command,
        /// with the same error and offset, as the plain reader says.
        #[test]
        fn a_cut_or_damaged_log_ends_where_the_plain_reader_ends(
            count in 1usize..3000,
            cut in 0.0f64..1.0,
            damage in proptest::option::of((0.0f64..1.0, any::<u8>())),
        ) {
            let mut bytes = log(count, 997);
            bytes.truncate((bytes.len() as f64 * cut) as usize);
            if let Some((at, byte)) = damage
                && !bytes.is_empty()
            {
                let at = ((bytes.len() - 1) as f64 * at) as usize;
                bytes[at] = byte;
            }
            prop_assert_eq!(read_ahead_of(&bytes), read_plainly(&bytes));
        }
    }
}
