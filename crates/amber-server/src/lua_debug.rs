//! Lua debugging sessions (`SCRIPT DEBUG YES|SYNC`, what `redis-cli --ldb` uses), as Redis
//! runs them.
//!
//! The debugger itself is `amber-scripting`'s; this module gives it the client's socket as its
//! [`Console`] and runs the session one of Redis's two ways:
//! * **sync**: in the event loop, which the session holds (no other client is served) until
//!   the script ends; its writes stay;
//! * **forked** (the default of `SCRIPT DEBUG YES`): in a child on a copy-on-write image of
//!   the dataset, which talks to the client and exits; the parent closes its side of the
//!   connection at once and keeps serving. The child's writes are thrown away with it, and
//!   nothing it does reaches the AOF or the replicas.
//!
//! Either way the connection is closed when the session ends.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amber_scripting::{Console, DebugSession};
use bytes::Bytes;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::socket::{MsgFlags, recv, send};

use crate::commands::Ctx;
use crate::server::Server;
use crate::warning;

/// How a client's `EVAL`s are debugged (`SCRIPT DEBUG YES | SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DebugMode {
    /// `YES`: a forked session, on a copy of the dataset.
    Forked,
    /// `SYNC`: a session that holds the server, with its changes kept.
    Sync,
}

/// How long a write to the debugging client may wait for room, as Redis's send timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Set by SIGTERM and SIGINT: a sync session stops reading its client, so the script runs to
/// its end and the shutdown the signal asked for can proceed (in Redis the signal interrupts
/// the session's blocking read).
static TERMINATION_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Registers [`TERMINATION_REQUESTED`] on SIGTERM and SIGINT, beside the event loop's own
/// handling of them. Called once at start-up.
pub(crate) fn watch_termination() {
    for signal in [nix::libc::SIGTERM, nix::libc::SIGINT] {
        // SAFETY: the action only stores to an atomic, which is async-signal-safe.
        let registered = unsafe {
            signal_hook_registry::register(signal, || {
                TERMINATION_REQUESTED.store(true, Ordering::Relaxed);
            })
        };
        if registered.is_err() {
            warning!("Could not watch signal {signal} for Lua debugging sessions");
        }
    }
}

/// The debugging client's socket, read and written directly (the event loop is inside the
/// script). The socket stays non-blocking for the connection's task; waits use `poll`.
struct SocketConsole {
    fd: RawFd,
}

impl Console for SocketConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if TERMINATION_REQUESTED.load(Ordering::Relaxed) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            match wait_for(self.fd, PollFlags::POLLIN, Duration::from_millis(100)) {
                Ok(false) | Err(Errno::EINTR) => continue,
                Ok(true) => {}
                Err(error) => return Err(error.into()),
            }
            match recv(self.fd, buf, MsgFlags::MSG_DONTWAIT) {
                Ok(read) => return Ok(read),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        // A failure ends the dialogue at the next read.
        let _ = write_all(self.fd, bytes);
    }
}

/// Whether `fd` became ready for `events` within `timeout`.
fn wait_for(fd: RawFd, events: PollFlags, timeout: Duration) -> Result<bool, Errno> {
    // SAFETY: `fd` is the client's socket, open for as long as its connection (and so this
    // session) lasts.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(fd, events)];
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    Ok(poll(&mut fds, PollTimeout::from(millis))? > 0)
}

/// Writes all of `bytes` to the socket, waiting at most [`SEND_TIMEOUT`] for room.
fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), Errno> {
    let deadline = Instant::now() + SEND_TIMEOUT;
    while !bytes.is_empty() {
        match send(fd, bytes, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
            Ok(sent) => bytes = &bytes[sent..],
            Err(Errno::EAGAIN | Errno::EINTR) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Errno::ETIMEDOUT);
                }
                match wait_for(fd, PollFlags::POLLOUT, left) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(error) => return Err(error),
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// `EVAL` from a client in debugging mode: `run` is the ordinary `EVAL`, which the session
/// wraps. The connection closes afterwards.
pub(crate) fn eval(ctx: &mut Ctx, body: &Bytes, mode: DebugMode, run: impl FnOnce(&mut Ctx)) {
    match mode {
        DebugMode::Sync => {
            warning!("Redis synchronous debugging eval session started");
            TERMINATION_REQUESTED.store(false, Ordering::Relaxed);
            session(ctx, body, run);
            warning!("Redis synchronous debugging eval session ended");
        }
        DebugMode::Forked => fork_session(ctx, body, run),
    }
    ctx.client.lua_debug = None;
    ctx.client.close_after_reply = true;
}

/// Runs `run` under the debugger, talking to the client's socket.
fn session(ctx: &mut Ctx, body: &Bytes, run: impl FnOnce(&mut Ctx)) {
    let fd = ctx.client.info.borrow().fd;
    let threshold = Duration::from_millis(ctx.server.settings.busy_reply_threshold);
    let Some(engine) = ctx.server.scripting.engine() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    engine.start_debugging(
        DebugSession::new(Box::new(SocketConsole { fd }), threshold),
        body,
    );
    run(ctx);
    if let Some(engine) = ctx.server.scripting.engine() {
        engine.stop_debugging();
    }
}

/// Forks the session: the child debugs and replies, the parent forgets the client.
fn fork_session(ctx: &mut Ctx, body: &Bytes, run: impl FnOnce(&mut Ctx)) {
    let fd = ctx.client.info.borrow().fd;
    // The replies before this EVAL are the child's to send, with the session.
    let forked = crate::persistence::jobs::fork(|_| {
        run_in_child(ctx, fd, body, run);
        0
    });
    match forked {
        Ok(child) => {
            ctx.out.buffer().clear();
            ctx.client.handed_to_child = true;
            ctx.server.scripting.debug_children.push(child);
        }
        Err(error) => {
            let reason = match error {
                amber_snapshot::ForkError::Fork(errno) => errno.desc().to_string(),
                other => other.to_string(),
            };
            ctx.error(&format!(
                "ERR Fork() failed: can't run EVAL in debugging mode: {reason}"
            ));
        }
    }
}

/// The forked child's whole life: the session, then every reply the client is owed.
fn run_in_child(ctx: &mut Ctx, fd: RawFd, body: &Bytes, run: impl FnOnce(&mut Ctx)) {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) };
    }
    crate::log::enter_forked_child();
    warning!("Redis forked for debugging eval");
    ctx.server.command.propagation_off = true;
    session(ctx, body, run);
    let _ = write_all(fd, ctx.out.buffer());
    warning!("Lua debugging session child exiting");
}

impl Server {
    /// Reaps forked debugging sessions that ended (from the cron).
    pub(crate) fn reap_debug_sessions(&mut self) {
        self.scripting
            .debug_children
            .retain(|child| matches!(child.try_wait(), Ok(None)));
    }

    /// Kills the forked debugging sessions (at shutdown).
    pub(crate) fn kill_debug_sessions(&mut self) {
        for child in self.scripting.debug_children.drain(..) {
            warning!("Killing debugging session {}", child.pid());
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.pid()), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid()), None);
        }
    }
}
