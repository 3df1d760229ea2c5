//! Reads an RDB file on a helper thread, ahead of the loader: decompressing and checking
//! values (LZF, listpacks) and building them into the keyspace's encodings overlaps with
//! inserting them on the event-loop thread.
//!
//! The two threads share the building so neither waits on the other: while batches queue up
//! (the loader is behind) the helper builds the values it hands over; when the queue runs
//! low (the loader waits) it hands them over raw and the loader builds them. A stream's
//! nodes come over still LZF-compressed in the raw case, so whoever builds it also
//! decompresses and checks them, node by node while each is in the cache.
//!
//! The thread owns the reader, hands over items in batches through a bounded channel (memory
//! stays bounded whatever the file), gets spent key buffers back for reuse, and is joined
//! when the prefetch is dropped, so no helper outlives a load (nothing runs beside the event
//! loop when it later forks: INV-FORK).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use amber_keyspace::{Value, ValueBuilder};
use amber_rdb::{Item, RawValue, RdbError, RdbReader};

use super::rdb::EncodingLimits;

/// Items per batch handed over: each hand-over may wake the other thread (a futex call of a
/// few microseconds), so a batch holds many small keys.
const BATCH: usize = 1024;
/// File bytes per batch handed over: big values go over one or a few at a time, so the
/// loader works on one while the next is read.
const BATCH_BYTES: u64 = 256 * 1024;
/// Batches in flight.
const IN_FLIGHT: usize = 8;

/// A key's value as the helper thread hands it over.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The keyspace value, built on the helper thread, or why the file's value is unusable.
    Built(Result<Value, String>),
    /// The value as read, for the loader to build (the helper was ahead).
    Raw(RawValue),
}

/// One item as read, with the reader's offset after it.
struct Read {
    item: Result<Option<Item<Prepared>>, RdbError>,
    offset: u64,
}

/// The loader's side of the helper thread.
pub(crate) struct Prefetch {
    batches: Option<Receiver<Vec<Read>>>,
    /// Batches sent and not yet taken: how far the helper is ahead.
    queued: Arc<AtomicUsize>,
    spent: Sender<Vec<Vec<u8>>>,
    /// Key buffers given back since the last batch, sent back together with the next receive.
    spent_batch: Vec<Vec<u8>>,
    current: std::vec::IntoIter<Read>,
    offset: u64,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts reading `reader` (its header already read) on a helper thread, which builds
    /// values within `limits`.
    pub(crate) fn start<R: std::io::Read + Send + 'static>(
        reader: RdbReader<R>,
        limits: EncodingLimits,
    ) -> std::io::Result<Prefetch> {
        let offset = reader.offset();
        Prefetch::spawn(offset, move |handover| read_ahead(reader, limits, handover))
    }

    /// Starts reading an RDB from `source` (a master's socket) on a helper thread, header
    /// included: nothing here waits for the source; a bad header is the first item's error.
    pub(crate) fn start_unread<R: std::io::Read + Send + 'static>(
        source: R,
        limits: EncodingLimits,
    ) -> std::io::Result<Prefetch> {
        Prefetch::spawn(0, move |handover| match RdbReader::new(source) {
            Ok(reader) => read_ahead(reader, limits, handover),
            Err(error) => {
                let _ = handover.batches.send(vec![Read {
                    item: Err(error),
                    offset: 0,
                }]);
            }
        })
    }

    fn spawn(
        offset: u64,
        work: impl FnOnce(Handover) + Send + 'static,
    ) -> std::io::Result<Prefetch> {
        let (batch_tx, batch_rx) = sync_channel(IN_FLIGHT);
        let (spent_tx, spent_rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let handover = Handover {
            batches: batch_tx,
            queued: queued.clone(),
            spent: spent_rx,
        };
        let thread = std::thread::Builder::new()
            .name("rdb-reader".into())
            .spawn(move || work(handover))?;
        Ok(Prefetch {
            batches: Some(batch_rx),
            queued,
            spent: spent_tx,
            spent_batch: Vec::new(),
            current: Vec::new().into_iter(),
            offset,
            thread: Some(thread),
        })
    }

    /// The next item, as [`RdbReader::next_raw_item`] gives it, with its value prepared.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item<Prepared>>, RdbError> {
        loop {
            if let Some(read) = self.current.next() {
                self.offset = read.offset;
                return read.item;
            }
            self.send_spent();
            let batch = self
                .batches
                .as_ref()
                .and_then(|batches| batches.recv().ok());
            match batch {
                Some(batch) => self.take(batch),
                // The reader ended after an error or the end, both already handed over.
                None => return Ok(None),
            }
        }
    }

    /// Whether the next item can be taken without waiting for the helper thread (which may
    /// itself wait on a network peer).
    pub(crate) fn ready(&mut self) -> bool {
        if self.current.len() > 0 {
            return true;
        }
        self.send_spent();
        let Some(batches) = self.batches.as_ref() else {
            return true;
        };
        match batches.try_recv() {
            Ok(batch) => {
                self.take(batch);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        }
    }

    fn take(&mut self, batch: Vec<Read>) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.current = batch.into_iter();
    }

    /// The file offset after the last item handed out.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Gives a key's buffer back to the reader (with the next batch taken).
    pub(crate) fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        self.spent_batch.push(bytes);
    }

    /// Sends the buffers given back so far to the reader in one message.
    fn send_spent(&mut self) {
        if !self.spent_batch.is_empty() {
            let capacity = self.spent_batch.capacity();
            let spent = std::mem::replace(&mut self.spent_batch, Vec::with_capacity(capacity));
            let _ = self.spent.send(spent);
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel stops the reader at its next hand-over.
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The helper thread's side of the channels.
struct Handover {
    batches: SyncSender<Vec<Read>>,
    queued: Arc<AtomicUsize>,
    spent: Receiver<Vec<Vec<u8>>>,
}

fn read_ahead<R: std::io::Read>(
    mut reader: RdbReader<R>,
    limits: EncodingLimits,
    handover: Handover,
) {
    let mut builder = ValueBuilder::default();
    loop {
        while let Ok(buffers) = handover.spent.try_recv() {
            for buffer in buffers {
                reader.recycle_bytes(buffer);
            }
        }
        // Build here only while the loader is behind; when it waits, it builds itself.
        let build = handover.queued.load(Ordering::Relaxed) >= IN_FLIGHT / 2;
        let mut batch = Vec::with_capacity(BATCH);
        let mut last = false;
        let started_at = reader.offset();
        while batch.len() < BATCH && !last && reader.offset() - started_at < BATCH_BYTES {
            let item = reader.next_raw_item();
            last = !matches!(item, Ok(Some(_)));
            let item = item.map(|item| {
                item.map(|item| {
                    item.map_value(|value| {
                        prepare(value, build, &mut reader, &limits, &mut builder)
                    })
                })
            });
            batch.push(Read {
                item,
                offset: reader.offset(),
            });
        }
        handover.queued.fetch_add(1, Ordering::Relaxed);
        if handover.batches.send(batch).is_err() || last {
            return;
        }
    }
}

/// A value as the loader gets it: built here when `build`, the file's buffers given back to
/// the reader.
fn prepare<R: std::io::Read>(
    value: RawValue,
    build: bool,
    reader: &mut RdbReader<R>,
    limits: &EncodingLimits,
    builder: &mut ValueBuilder,
) -> Prepared {
    match value {
        mut raw if build => {
            let built = super::rdb::from_raw(&mut raw, limits, builder);
            reader.recycle(raw);
            Prepared::Built(built)
        }
        raw => Prepared::Raw(raw),
    }
}
