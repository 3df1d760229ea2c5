//! Where the log's bytes go: a file, or a simulated disk that tests use to inject faults (torn
//! writes, failed fsyncs, crashes that drop what was never synced) deterministically.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// An append-only byte store with an explicit durability barrier. `append` and `sync` may be
/// called from different threads (the event loop writes, a background thread syncs).
pub trait Storage: Send + Sync {
    /// Appends all of `bytes` (after an error, part of them may have been written).
    fn append(&self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended before the call durable.
    fn sync(&self) -> io::Result<()>;
    /// Cuts the store back to `len` bytes (to remove a partial write).
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether nothing was appended yet.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A real file opened for appending.
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> io::Result<FileStorage> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(FileStorage { file })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Storage for FileStorage {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.file).write_all(bytes)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

/// Faults a [`SimulatedDisk`] injects, counted in calls from its creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// The n-th `append` (0-based) writes only `torn_bytes` bytes, then fails.
    pub fail_append: Option<(usize, usize)>,
    /// The n-th `sync` (0-based) fails.
    pub fail_sync: Option<usize>,
}

#[derive(Debug, Default)]
struct DiskState {
    /// What a reader sees now (the page cache).
    visible: Vec<u8>,
    /// How much of `visible` is known to be on the platter.
    durable: usize,
    /// Set by a failed sync: bytes from here on may never reach the disk, even after a later
    /// successful sync (Linux drops the dirty pages' error state).
    poisoned_from: Option<usize>,
    appends: usize,
    syncs: usize,
    faults: Faults,
}

/// An in-memory disk for crash simulations.
#[derive(Debug, Default)]
pub struct SimulatedDisk {
    state: Mutex<DiskState>,
}

impl SimulatedDisk {
    /// An empty disk that injects `faults`.
    pub fn new(faults: Faults) -> SimulatedDisk {
        SimulatedDisk {
            state: Mutex::new(DiskState {
                faults,
                ..DiskState::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What survives a power cut: the synced bytes, plus the first `torn` bytes of what was
    /// written but not synced; bytes written after a failed sync read back as zeros.
    pub fn crash_image(&self, torn: usize) -> Vec<u8> {
        let state = self.state();
        let keep = (state.durable + torn).min(state.visible.len());
        let mut image = state.visible[..keep].to_vec();
        if let Some(from) = state.poisoned_from {
            for byte in image.iter_mut().skip(from) {
                *byte = 0;
            }
        }
        image
    }

    /// Bytes currently visible (as a reader without a crash would see them).
    pub fn contents(&self) -> Vec<u8> {
        self.state().visible.clone()
    }
}

impl Storage for SimulatedDisk {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let call = state.appends;
        state.appends += 1;
        if let Some((at, torn)) = state.faults.fail_append
            && at == call
        {
            let torn = torn.min(bytes.len());
            state.visible.extend_from_slice(&bytes[..torn]);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected write failure",
            ));
        }
        state.visible.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state();
        let call = state.syncs;
        state.syncs += 1;
        if state.faults.fail_sync == Some(call) {
            let from = state.durable;
            state.poisoned_from.get_or_insert(from);
            return Err(io::Error::other("injected fsync failure"));
        }
        state.durable = state.visible.len();
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        let len = usize::try_from(len).map_err(io::Error::other)?;
        state.visible.truncate(len);
        state.durable = state.durable.min(len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state().visible.len() as u64)
    }
}

/// An I/O error in the words of C's `strerror`, as Redis reports it (`No space left on
/// device`), without Rust's ` (os error 28)` suffix; other errors as they display.
pub fn strerror(error: &io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_string),
        None => text,
    }
}
