//! Where the log's bytes go: a file, or a simulated disk that tests use to inject faults (torn
//! writes, failed fsyncs, crashes that drop what was never synced) deterministically.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
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
    /// Gives back space reserved beyond the end (see [`FileStorage::open_preallocated`]), so
    /// the file holds exactly what was appended; appends may follow.
    fn seal(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A real file opened for appending.
///
/// Opened with [`FileStorage::open_preallocated`], the file is kept zero-filled ahead of its
/// end: bytes are written in place over zeros that already reached the disk, so an fsync has
/// no block allocation and no file size to commit, only the data (on ext4 here it takes about
/// 0.6x as long). The file is then longer than its content until [`Storage::seal`]; a crash
/// leaves zeros after the last command, which a load removes.
pub struct FileStorage {
    file: File,
    preallocation: Option<Preallocation>,
}

/// The logical end of a preallocated file and how far zeros reach beyond it.
struct Preallocation {
    /// How many zeros to add when the end reaches them.
    step: u64,
    state: Mutex<PreallocState>,
}

#[derive(Debug, Clone, Copy)]
struct PreallocState {
    end: u64,
    zeroed_to: u64,
    /// Writing zeros failed (a full disk): appends go on without, until the next truncate.
    fill_failed: bool,
}

impl FileStorage {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> io::Result<FileStorage> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(FileStorage {
            file,
            preallocation: None,
        })
    }

    /// Opens (creating if needed) `path` to append to its end, keeping `step` bytes of zeros
    /// written ahead of the end (see the type's documentation). The file must hold no
    /// zeros beyond its content yet (a load cuts them).
    pub fn open_preallocated(path: &Path, step: u64) -> io::Result<FileStorage> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let end = file.metadata()?.len();
        Ok(FileStorage {
            file,
            preallocation: Some(Preallocation {
                step: step.max(1),
                state: Mutex::new(PreallocState {
                    end,
                    zeroed_to: end,
                    fill_failed: false,
                }),
            }),
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Preallocation {
    fn state(&self) -> MutexGuard<'_, PreallocState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `bytes` at the end, then zeros up to `step` beyond it when the end came within
    /// half a step of where zeros stop. The zeros are made durable by the next fsync. They
    /// only make fsyncs cheaper: when they cannot be written (a full disk), the file is cut
    /// back to its end and appends go on without them.
    fn append(&self, file: &File, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        file.write_all_at(bytes, state.end)?;
        state.end += bytes.len() as u64;
        state.zeroed_to = state.zeroed_to.max(state.end);
        if !state.fill_failed && state.zeroed_to - state.end < self.step / 2 {
            let target = state.end + self.step;
            match write_zeros(file, state.zeroed_to, target) {
                Ok(()) => state.zeroed_to = target,
                Err(_) => {
                    state.fill_failed = true;
                    state.zeroed_to = state.end;
                    file.set_len(state.end)?;
                }
            }
        }
        Ok(())
    }

    fn truncate(&self, file: &File, len: u64) -> io::Result<()> {
        let mut state = self.state();
        file.set_len(len)?;
        *state = PreallocState {
            end: len,
            zeroed_to: len,
            fill_failed: false,
        };
        Ok(())
    }
}

/// Writes zeros over `[from, to)` of `file`.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 256 * 1024;
    let zeros = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).unwrap_or(CHUNK).min(CHUNK);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl Storage for FileStorage {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        match &self.preallocation {
            Some(preallocation) => preallocation.append(&self.file, bytes),
            None => (&self.file).write_all(bytes),
        }
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        match &self.preallocation {
            Some(preallocation) => preallocation.truncate(&self.file, len),
            None => self.file.set_len(len),
        }
    }

    fn len(&self) -> io::Result<u64> {
        match &self.preallocation {
            Some(preallocation) => Ok(preallocation.state().end),
            None => Ok(self.file.metadata()?.len()),
        }
    }

    fn seal(&self) -> io::Result<()> {
        let Some(preallocation) = &self.preallocation else {
            return Ok(());
        };
        let end = preallocation.state().end;
        preallocation.truncate(&self.file, end)?;
        self.file.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh path in the system's temporary directory, removed by the caller.
    fn scratch(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("amber-aof-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn preallocated_file_holds_zeros_past_its_end_until_sealed() {
        let path = scratch("prealloc");
        let storage = FileStorage::open_preallocated(&path, 4096).unwrap();
        storage.append(b"*1\r\n$4\r\nPING\r\n").unwrap();
        storage.append(b"*1\r\n$4\r\nPING\r\n").unwrap();
        storage.sync().unwrap();
        assert_eq!(storage.len().unwrap(), 28);
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.len() >= 28 + 2048, "zeros reach beyond the end");
        assert_eq!(&on_disk[..28], b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
        assert!(on_disk[28..].iter().all(|&b| b == 0));
        storage.seal().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 28);
        // Appends go on after a seal.
        storage.append(b"#TS:1\r\n").unwrap();
        storage.seal().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 35);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn preallocated_file_writes_past_its_zeros_and_cuts_back() {
        let path = scratch("prealloc-long");
        let storage = FileStorage::open_preallocated(&path, 64).unwrap();
        let chunk = [b'x'; 50];
        for _ in 0..10 {
            storage.append(&chunk).unwrap();
        }
        assert_eq!(storage.len().unwrap(), 500);
        storage.truncate(120).unwrap();
        assert_eq!(storage.len().unwrap(), 120);
        storage.append(b"yy").unwrap();
        storage.seal().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 122);
        assert!(on_disk[..120].iter().all(|&b| b == b'x'));
        assert_eq!(&on_disk[120..], b"yy");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn preallocated_file_continues_an_existing_one() {
        let path = scratch("prealloc-existing");
        std::fs::write(&path, b"abc").unwrap();
        let storage = FileStorage::open_preallocated(&path, 16).unwrap();
        assert_eq!(storage.len().unwrap(), 3);
        storage.append(b"def").unwrap();
        storage.seal().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        std::fs::remove_file(&path).unwrap();
    }
}
