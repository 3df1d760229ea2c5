//! Reads an RDB file on a helper thread, ahead of the loader: decompressing and checking
//! values (LZF, listpacks, stream nodes) overlaps with building and inserting them on the
//! event-loop thread. The thread owns the reader, hands over items in batches through a
//! bounded channel (memory stays bounded whatever the file), gets spent buffers back for
//! reuse, and is joined when the prefetch is dropped, so no helper outlives a load (nothing
//! runs beside the event loop when it later forks: INV-FORK).

use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use amber_rdb::{Item, RawValue, RdbError, RdbReader};

/// Items per batch handed over.
const BATCH: usize = 64;
/// File bytes per batch handed over: big values go over one or a few at a time, so the
/// loader works on one while the next is read.
const BATCH_BYTES: u64 = 256 * 1024;
/// Batches in flight.
const IN_FLIGHT: usize = 8;

/// One item as read, with the reader's offset after it.
struct Read {
    item: Result<Option<Item<RawValue>>, RdbError>,
    offset: u64,
}

/// A buffer given back to the reader for reuse.
enum Spent {
    Value(RawValue),
    Bytes(Vec<u8>),
}

/// The loader's side of the helper thread.
pub(crate) struct Prefetch {
    batches: Option<Receiver<Vec<Read>>>,
    spent: Sender<Spent>,
    current: std::vec::IntoIter<Read>,
    offset: u64,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts reading `reader` (its header already read) on a helper thread.
    pub(crate) fn start<R: std::io::Read + Send + 'static>(
        reader: RdbReader<R>,
    ) -> std::io::Result<Prefetch> {
        let offset = reader.offset();
        Prefetch::spawn(offset, move |batches, spent| {
            read_ahead(reader, batches, spent)
        })
    }

    /// Starts reading an RDB from `source` (a master's socket) on a helper thread, header
    /// included: nothing here waits for the source; a bad header is the first item's error.
    pub(crate) fn start_unread<R: std::io::Read + Send + 'static>(
        source: R,
    ) -> std::io::Result<Prefetch> {
        Prefetch::spawn(0, move |batches, spent| match RdbReader::new(source) {
            Ok(reader) => read_ahead(reader, batches, spent),
            Err(error) => {
                let _ = batches.send(vec![Read {
                    item: Err(error),
                    offset: 0,
                }]);
            }
        })
    }

    fn spawn(
        offset: u64,
        work: impl FnOnce(SyncSender<Vec<Read>>, Receiver<Spent>) + Send + 'static,
    ) -> std::io::Result<Prefetch> {
        let (batch_tx, batch_rx) = sync_channel(IN_FLIGHT);
        let (spent_tx, spent_rx) = channel();
        let thread = std::thread::Builder::new()
            .name("rdb-reader".into())
            .spawn(move || work(batch_tx, spent_rx))?;
        Ok(Prefetch {
            batches: Some(batch_rx),
            spent: spent_tx,
            current: Vec::new().into_iter(),
            offset,
            thread: Some(thread),
        })
    }

    /// The next item, as [`RdbReader::next_raw_item`] gives it.
    pub(crate) fn next_raw_item(&mut self) -> Result<Option<Item<RawValue>>, RdbError> {
        loop {
            if let Some(read) = self.current.next() {
                self.offset = read.offset;
                return read.item;
            }
            let batch = self
                .batches
                .as_ref()
                .and_then(|batches| batches.recv().ok());
            match batch {
                Some(batch) => self.current = batch.into_iter(),
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
        let Some(batches) = self.batches.as_ref() else {
            return true;
        };
        match batches.try_recv() {
            Ok(batch) => {
                self.current = batch.into_iter();
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        }
    }

    /// The file offset after the last item handed out.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Gives a value's buffers back to the reader.
    pub(crate) fn recycle(&mut self, value: RawValue) {
        let _ = self.spent.send(Spent::Value(value));
    }

    /// Gives a key's buffer back to the reader.
    pub(crate) fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        let _ = self.spent.send(Spent::Bytes(bytes));
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

fn read_ahead<R: std::io::Read>(
    mut reader: RdbReader<R>,
    batches: SyncSender<Vec<Read>>,
    spent: Receiver<Spent>,
) {
    loop {
        while let Ok(buffer) = spent.try_recv() {
            match buffer {
                Spent::Value(value) => reader.recycle(value),
                Spent::Bytes(bytes) => reader.recycle_bytes(bytes),
            }
        }
        let mut batch = Vec::with_capacity(BATCH);
        let mut last = false;
        let started_at = reader.offset();
        while batch.len() < BATCH && !last && reader.offset() - started_at < BATCH_BYTES {
            let item = reader.next_raw_item();
            last = !matches!(item, Ok(Some(_)));
            batch.push(Read {
                item,
                offset: reader.offset(),
            });
        }
        if batches.send(batch).is_err() || last {
            return;
        }
    }
}
