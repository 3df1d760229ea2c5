//! Durable files: every file Amber replaces (snapshots, AOF bases and manifests, backup
//! catalogs, the configuration) is written to a temporary name, fsynced, renamed over the old
//! one, and the directory fsynced, so that a crash at any point leaves either the old file or
//! the new one, complete, under the real name, and never overwrites it with a failed write.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Makes `temp` (already written and fsynced) the file at `target`: renames it over `target`,
/// then fsyncs `target`'s directory so the rename itself survives a crash.
pub fn install(temp: &Path, target: &Path) -> io::Result<()> {
    std::fs::rename(temp, target)?;
    sync_parent(target)
}

/// [`install`], handing back the file `target` named before (if any), still open. The rename
/// then only drops a name: the old file's blocks are freed when the returned handle is
/// closed, which for a large file takes milliseconds (3 ms for a 10 MB snapshot here), so
/// the caller can close it where that holds nothing up, as Redis closes a replaced file in a
/// background thread.
pub fn install_keeping_old(temp: &Path, target: &Path) -> io::Result<Option<File>> {
    let old = File::open(target).ok();
    install(temp, target)?;
    Ok(old)
}

/// Fsyncs the directory holding `path` (the current directory for a bare file name).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Fsyncs a directory, making the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `target` with what `write` writes, through the temporary file `temp` (in the same
/// directory): written, flushed, fsynced, then [`install`]ed. On any failure `temp` is removed
/// and `target` is untouched.
pub fn replace_with(
    target: &Path,
    temp: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let written = (|| {
        let mut out = BufWriter::new(File::create(temp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        install(temp, target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    written
}

/// Bytes written between two requests to start writeback (Redis's incremental fsync step).
pub const WRITEBACK_STEP: u64 = 4 << 20;

/// A file being written that asks the kernel to start writing each [`WRITEBACK_STEP`] to disk
/// as soon as it is written (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which does not
/// wait). The disk then works while the rest is encoded: the final fsync has little left to
/// wait for, and dirty pages never pile up. Durability still comes from that fsync.
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    enabled: bool,
    written: u64,
    started_up_to: u64,
}

impl WritebackFile {
    /// Wraps `file`, positioned at its start; with `enabled` false it is the plain file
    /// (`rdb-save-incremental-fsync no`).
    pub fn new(file: File, enabled: bool) -> WritebackFile {
        WritebackFile {
            file,
            enabled,
            written: 0,
            started_up_to: 0,
        }
    }

    /// The file, for its final fsync.
    pub fn into_inner(self) -> File {
        self.file
    }

    /// Starts writeback of what was written since the last start, once a step is complete.
    fn start_writeback(&mut self) {
        let pending = self.written - self.started_up_to;
        if !self.enabled || pending < WRITEBACK_STEP {
            return;
        }
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(self.started_up_to),
            libc::off64_t::try_from(pending),
        ) else {
            return;
        };
        // SAFETY: a plain syscall on a file descriptor this value owns; it reads no memory.
        // A failure only means the final fsync does all the work, so it is ignored.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started_up_to = self.written;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.written += written as u64;
        self.start_writeback();
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_writeback_file_writes_everything_it_is_given() {
        let dir = std::env::temp_dir().join(format!("amber-writeback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let mut out = BufWriter::new(WritebackFile::new(File::create(&path).unwrap(), true));
        for _ in 0..9 {
            out.write_all(&chunk).unwrap();
        }
        let file = out.into_inner().unwrap().into_inner();
        file.sync_all().unwrap();
        let read = std::fs::read(&path).unwrap();
        assert_eq!(read.len(), 9 << 20);
        assert!(read.chunks(1 << 20).all(|part| part == chunk.as_slice()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn installing_keeps_the_replaced_file_open_until_it_is_dropped() {
        let dir = std::env::temp_dir().join(format!("amber-durable-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (target, temp) = (dir.join("dump.rdb"), dir.join("temp.rdb"));
        assert!(install_keeping_old(&temp, &target).is_err(), "no temp file");
        std::fs::write(&temp, b"first").unwrap();
        assert!(install_keeping_old(&temp, &target).unwrap().is_none());
        std::fs::write(&temp, b"second").unwrap();
        let mut old = install_keeping_old(&temp, &target)
            .unwrap()
            .expect("the old file");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut old, &mut text).unwrap();
        assert_eq!(text, "first");
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        assert!(!temp.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = std::env::temp_dir().join(format!("amber-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (target, temp) = (dir.join("file"), dir.join("temp-file"));
        replace_with(&target, &temp, |out| out.write_all(b"old")).unwrap();
        let failed = replace_with(&target, &temp, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert!(!temp.exists());
        replace_with(&target, &temp, |out| out.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
