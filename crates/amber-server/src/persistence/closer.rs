//! Closing replaced and deleted files off the event loop, as Redis's background I/O thread
//! closes them (`bioCreateCloseJob`): freeing a large file's blocks when its last handle
//! closes takes milliseconds (3 ms for a 10 MB snapshot here, more for an AOF base of
//! gigabytes), which clients would otherwise wait for.
//!
//! Only the server process uses it: a forked child spawns nothing (INV-FORK) and frees what
//! it replaced itself, off the parent's path anyway.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

/// The closing thread's queue, started with the first file.
static QUEUE: Mutex<Option<Sender<File>>> = Mutex::new(None);

/// Closes `file` on the closing thread (here, if that thread cannot run).
pub(crate) fn close_later(file: File) {
    let Ok(mut queue) = QUEUE.lock() else {
        return; // dropped here
    };
    if queue.is_none() {
        let (sender, files) = channel::<File>();
        let started = std::thread::Builder::new()
            .name("file-closer".into())
            .spawn(move || files.into_iter().for_each(drop));
        if started.is_err() {
            return;
        }
        *queue = Some(sender);
    }
    if let Some(queue) = queue.as_ref()
        && let Err(unsent) = queue.send(file)
    {
        drop(unsent.0);
    }
}

/// Removes the name `path` now and frees the file's blocks on the closing thread: the file
/// is opened first, so the unlink only drops a name.
pub(crate) fn remove_later(path: &Path) -> std::io::Result<()> {
    let file = File::open(path).ok();
    std::fs::remove_file(path)?;
    if let Some(file) = file {
        close_later(file);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_file_loses_its_name_at_once() {
        let dir = std::env::temp_dir().join(format!("amber-closer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.aof");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        remove_later(&path).unwrap();
        assert!(!path.exists());
        assert!(remove_later(&path).is_err(), "a missing file is an error");
        std::fs::write(&path, b"again").unwrap();
        close_later(File::open(&path).unwrap());
        remove_later(&path).unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
