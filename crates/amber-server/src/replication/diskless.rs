//! Diskless full synchronization (`repl-diskless-sync yes`): a forked child writes the RDB
//! straight to the replicas' sockets as `$EOF:<mark>\r\n<rdb><mark>`, without a file.
//!
//! The child writes with plain system calls: it waits on a full socket with `poll`, never
//! through the runtime. A replica whose socket fails is shut down (its connection task in the
//! parent then sees the end of the stream and drops it); the others go on. Meanwhile the
//! parent sends these replicas nothing; once the child is done they get the buffered stream
//! after their first `REPLCONF ACK` (they acknowledge once the snapshot is loaded).

use std::io::{self, Write};
use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::persistence::rdb::SaveOptions;

/// How long the child waits for a replica's socket to take more bytes before giving it up.
const STALL_LIMIT_MS: u16 = 60_000;

/// A writer that copies everything to every live socket.
struct FanOut {
    sockets: Vec<RawFd>,
}

impl FanOut {
    /// Writes `bytes` to one socket, waiting while it is full; false if the socket failed.
    fn write_to(fd: RawFd, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match nix::unistd::write(borrow(fd), bytes) {
                Ok(0) => return false,
                Ok(written) => bytes = &bytes[written..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(borrow(fd), PollFlags::POLLOUT)];
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
}

impl Write for FanOut {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.sockets.retain(|&fd| {
            let ok = FanOut::write_to(fd, bytes);
            if !ok {
                let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
            }
            ok
        });
        if self.sockets.is_empty() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
    let mut fan_out = FanOut { sockets };
    let sent = fan_out
        .write_all(format!("$EOF:{mark}\r\n").as_bytes())
        .and_then(|()| {
            let out = io::BufWriter::with_capacity(64 * 1024, fan_out);
            crate::persistence::rdb::write_rdb(keyspace, out, options, false, reporter)
        })
        .and_then(|(_, out)| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|mut fan_out| {
            fan_out.write_all(mark.as_bytes())?;
            Ok(fan_out)
        });
    match sent {
        Ok(fan_out) if !fan_out.sockets.is_empty() => 0,
        Ok(_) => {
            reporter.fail("Diskless rdb transfer, every replica's connection was lost");
            1
        }
        Err(error) => {
            let error = crate::log::os_error(&error);
            reporter.fail(&format!("Write error sending DB to replicas: {error}"));
            1
        }
    }
}
