//! Dataset locks: a running server holds a lock on the dataset it persists to (its RDB file or
//! its AOF), so that a second server started on the same files, or `amber-backup restore`,
//! is refused with the holder's pid. Two servers may share one `dir` as long as their
//! datasets differ (other `dbfilename` / `appendfilename`), as Redis allows.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::catalog::{BackupError, io};

/// The lock file that guards the dataset stored as `file_name` in `dir`
/// (`dump.rdb` -> `dump.rdb.lock`).
pub fn lock_path(dir: &Path, file_name: &str) -> PathBuf {
    dir.join(format!("{file_name}.lock"))
}

/// A dataset's lock, held until dropped.
#[derive(Debug)]
pub struct DatasetLock {
    _file: File,
    path: PathBuf,
}

impl DatasetLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock of the dataset stored as `file_name` in `dir`, failing with the holder's pid
/// if another process holds it.
///
/// It is a POSIX record lock (`fcntl(F_SETLK)`), which a forked child does not inherit: when
/// a server is killed, its lock goes with it even if a snapshot child still runs.
pub fn lock_dataset(dir: &Path, file_name: &str) -> Result<DatasetLock, BackupError> {
    let path = lock_path(dir, file_name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    let mut request = whole_file_lock();
    // SAFETY: F_SETLK reads the flock struct, which outlives the call; the fd is open.
    let result = unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_SETLK, &request) };
    if result == -1 {
        let errno = std::io::Error::last_os_error();
        // SAFETY: F_GETLK writes into the flock struct, which outlives the call; the fd is open.
        let asked = unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_GETLK, &mut request) };
        let holder = if asked == 0 && request.l_type != nix::libc::F_UNLCK as i16 {
            format!("process {}", request.l_pid)
        } else {
            format!("another process ({errno})")
        };
        return Err(BackupError::Refused(format!(
            "{} is locked by {holder}, which is using the dataset {}",
            path.display(),
            dir.join(file_name).display()
        )));
    }
    Ok(DatasetLock { _file: file, path })
}

fn whole_file_lock() -> nix::libc::flock {
    nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}
