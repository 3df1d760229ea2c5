//! Diskless full synchronization (`repl-diskless-sync yes`): the RDB goes straight to the
//! replicas' sockets as `$EOF:<mark>\r\n<rdb><mark>`, without a file, written by a forked
//! child or, with `bgsave-method forkless`, by the forkless writer thread.
//!
//! Either writes with plain system calls: it waits on a full socket with `poll`, never
//! through the runtime. A replica whose socket fails is shut down (its connection task in the
//! parent then sees the end of the stream and drops it); the others go on. Meanwhile the
//! parent sends these replicas nothing; once the transfer is done they get the buffered stream
//! after their first `REPLCONF ACK` (they acknowledge once the snapshot is loaded).

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::persistence::rdb::SaveOptions;

/// How long a writer waits for a replica's socket to take more bytes before giving it up.
const STALL_LIMIT_MS: u16 = 60_000;

/// Why a transfer failed when no replica is left to send to.
#[derive(Debug, thiserror::Error)]
#[error("Diskless rdb transfer, every replica's connection was lost")]
struct AllReplicasLost;

fn all_replicas_lost() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, AllReplicasLost)
}

/// The log line's words for a transfer that failed otherwise.
pub(crate) const SEND_ERROR: &str = "Write error sending DB to replicas";

/// A writer that copies everything to every live socket; writing fails once none is left.
pub(crate) struct FanOut<F: AsFd> {
    sockets: Vec<F>,
}

impl<F: AsFd> FanOut<F> {
    /// A writer to `sockets` (non-blocking or not).
    pub(crate) fn new(sockets: Vec<F>) -> FanOut<F> {
        FanOut { sockets }
    }

    /// Whether any socket is still taking the snapshot.
    pub(crate) fn any_left(&self) -> bool {
        !self.sockets.is_empty()
    }

    /// Writes the transfer's opening, `$EOF:<mark>\r\n`.
    pub(crate) fn open(&mut self, mark: &str) -> io::Result<()> {
        self.write_all(format!("$EOF:{mark}\r\n").as_bytes())
    }

    /// Writes the transfer's closing mark; fails if no replica got all of it.
    pub(crate) fn close(&mut self, mark: &str) -> io::Result<()> {
        self.write_all(mark.as_bytes())?;
        if !self.any_left() {
            return Err(all_replicas_lost());
        }
        Ok(())
    }
}

/// Writes `bytes` to one socket, waiting while it is full; false if the socket failed.
fn write_to(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return false,
            Ok(written) => bytes = &bytes[written..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(STALL_LIMIT_MS)) {
                    Ok(0) => return false,
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            Err(_) => return false,
        }
    }
    true
}

impl<F: AsFd> Write for FanOut<F> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.sockets.retain(|socket| {
            let ok = write_to(socket.as_fd(), bytes);
            if !ok {
                shut_down(socket.as_fd().as_raw_fd());
            }
            ok
        });
        if self.sockets.is_empty() {
            return Err(all_replicas_lost());
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Ends both directions of a replica's socket: its connection task sees the end of the stream
/// and drops the replica, and a writer blocked on it returns.
pub(crate) fn shut_down(fd: RawFd) {
    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
}

fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the descriptors are the replicas' sockets, which the forked child inherited and
    // never closes; they stay open for the whole life of the child.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// In the forked child: sends the snapshot of `keyspace` to every socket in `sockets`, framed
/// by `mark`. Exit code 0 if at least one replica got all of it.
pub(crate) fn send_to_sockets(
    keyspace: &amber_keyspace::Keyspace,
    sockets: Vec<RawFd>,
    mark: &str,
    options: SaveOptions,
    reporter: &mut amber_snapshot::Reporter,
) -> i32 {
    let mut fan_out = FanOut::new(sockets.into_iter().map(borrow).collect());
    let sent = fan_out
        .open(mark)
        .and_then(|()| {
            let out = io::BufWriter::with_capacity(64 * 1024, fan_out);
            crate::persistence::rdb::write_rdb(keyspace, out, options, false, reporter)
        })
        .and_then(|(_, out)| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|mut fan_out| fan_out.close(mark));
    match sent {
        Ok(()) => 0,
        Err(error) => {
            reporter.fail(&failure_text(&error));
            1
        }
    }
}

/// The log line for a failed transfer.
pub(crate) fn failure_text(error: &io::Error) -> String {
    if let Some(lost) = error
        .get_ref()
        .filter(|inner| inner.is::<AllReplicasLost>())
    {
        return lost.to_string();
    }
    format!("{SEND_ERROR}: {}", crate::log::os_error(error))
}
