//! The master's snapshot read straight from the replication socket (`repl-diskless-load`), as
//! a blocking [`Read`] for the RDB reader's helper thread.
//!
//! The socket stays non-blocking (the event loop owns it too); this reader waits with `poll`,
//! in slices, so a cancelled load (REPLICAOF elsewhere) stops within one slice. It ends
//! exactly where the snapshot ends: after `len` bytes, or before the 40-byte EOF mark, which it
//! never hands out. Nothing follows a snapshot on the socket before the replica's first ACK,
//! so the reader never takes stream bytes.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How the snapshot is framed.
pub(crate) enum Framing {
    /// `$<len>`: exactly that many bytes.
    Sized(u64),
    /// `$EOF:<mark>`: bytes until the mark.
    Marked([u8; 40]),
}

/// Shared between the reader thread and the link task.
#[derive(Default)]
pub(crate) struct SourceControl {
    /// Set by the link task to stop the reader.
    pub cancelled: AtomicBool,
    /// Snapshot bytes received so far (`master_sync_read_bytes`).
    pub received: AtomicU64,
}

/// The snapshot's bytes from the socket.
pub(crate) struct SocketSource {
    socket: OwnedFd,
    framing: Framing,
    /// Bytes received but not handed out (the prefix read with the header, and for a marked
    /// transfer the last 40 bytes, which may be the mark).
    pending: Vec<u8>,
    /// Snapshot bytes still to come (sized transfers).
    remaining: u64,
    done: bool,
    timeout: Duration,
    control: Arc<SourceControl>,
}

impl SocketSource {
    /// Reads the snapshot from `socket` (a duplicate of the link's descriptor), starting with
    /// `prefix`, the bytes already read after the header.
    pub(crate) fn new(
        socket: OwnedFd,
        framing: Framing,
        prefix: Vec<u8>,
        timeout: Duration,
        control: Arc<SourceControl>,
    ) -> SocketSource {
        let remaining = match framing {
            Framing::Sized(len) => len,
            Framing::Marked(_) => u64::MAX,
        };
        control
            .received
            .fetch_add(prefix.len() as u64, Ordering::Relaxed);
        SocketSource {
            socket,
            framing,
            pending: prefix,
            remaining,
            done: false,
            timeout,
            control,
        }
    }

    /// Reads more bytes into `pending` (at most `limit`), waiting up to the timeout.
    fn fill(&mut self, limit: usize) -> io::Result<()> {
        let started = Instant::now();
        let mut chunk = vec![0u8; limit.clamp(1, 64 * 1024)];
        loop {
            if self.control.cancelled.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "replication cancelled",
                ));
            }
            match nix::unistd::read(self.socket.as_raw_fd(), &mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the master closed the connection during the transfer",
                    ));
                }
                Ok(read) => {
                    self.pending.extend_from_slice(&chunk[..read]);
                    self.control
                        .received
                        .fetch_add(read as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                    if started.elapsed() > self.timeout {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "timeout receiving bulk data from the master",
                        ));
                    }
                    let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(error) => return Err(io::Error::from(error)),
            }
        }
    }
}

impl Read for SocketSource {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Sized(_) => {
                if self.pending.is_empty() {
                    if self.remaining == 0 {
                        self.done = true;
                        return Ok(0);
                    }
                    let limit = self.remaining.min(out.len() as u64) as usize;
                    self.fill(limit)?;
                }
                let take = self
                    .pending
                    .len()
                    .min(out.len())
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                out[..take].copy_from_slice(&self.pending[..take]);
                self.pending.drain(..take);
                self.remaining -= take as u64;
                Ok(take)
            }
            Framing::Marked(mark) => loop {
                if self.pending.len() >= mark.len()
                    && self.pending[self.pending.len() - mark.len()..] == mark
                {
                    // Everything before the mark is the snapshot.
                    let body = self.pending.len() - mark.len();
                    if body == 0 {
                        self.done = true;
                        return Ok(0);
                    }
                    let take = body.min(out.len());
                    out[..take].copy_from_slice(&self.pending[..take]);
                    self.pending.drain(..take);
                    return Ok(take);
                }
                if self.pending.len() > mark.len() {
                    let take = (self.pending.len() - mark.len()).min(out.len());
                    out[..take].copy_from_slice(&self.pending[..take]);
                    self.pending.drain(..take);
                    return Ok(take);
                }
                self.fill(out.len())?;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn source(framing: Framing, prefix: &[u8], rest: &[u8]) -> Vec<u8> {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.write_all(rest).unwrap();
        let mut source = SocketSource::new(
            ours.into(),
            framing,
            prefix.to_vec(),
            Duration::from_secs(1),
            Arc::default(),
        );
        let mut body = Vec::new();
        source.read_to_end(&mut body).unwrap();
        body
    }

    #[test]
    fn a_sized_snapshot_ends_at_its_length() {
        assert_eq!(source(Framing::Sized(5), b"ab", b"cdeNEXT"), b"abcde");
    }

    #[test]
    fn a_marked_snapshot_ends_before_its_mark() {
        let mark = [b'x'; 40];
        let mut rest = b"defg".to_vec();
        rest.extend_from_slice(&mark);
        assert_eq!(source(Framing::Marked(mark), b"abc", &rest), b"abcdefg");
        // The mark split across the prefix and the socket.
        let mut prefix = b"abc".to_vec();
        prefix.extend_from_slice(&mark[..10]);
        assert_eq!(source(Framing::Marked(mark), &prefix, &mark[10..]), b"abc");
    }

    #[test]
    fn a_closed_socket_is_an_error_not_an_end() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        drop(theirs);
        let mut source = SocketSource::new(
            ours.into(),
            Framing::Sized(10),
            b"abc".to_vec(),
            Duration::from_secs(1),
            Arc::default(),
        );
        let mut body = Vec::new();
        assert!(source.read_to_end(&mut body).is_err());
    }
}
