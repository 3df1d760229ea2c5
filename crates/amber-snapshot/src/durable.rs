//! Durable files: every file Amber replaces (snapshots, AOF bases and manifests, backup
//! catalogs, the configuration) is written to a temporary name, fsynced, renamed over the old
//! one, and the directory fsynced, so that a crash at any point leaves either the old file or
//! the new one, complete, under the real name, and never overwrites it with a failed write.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

/// Makes `temp` (already written and fsynced) the file at `target`: renames it over `target`,
/// then fsyncs `target`'s directory so the rename itself survives a crash.
pub fn install(temp: &Path, target: &Path) -> io::Result<()> {
    std::fs::rename(temp, target)?;
    sync_parent(target)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
