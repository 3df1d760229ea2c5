//! Fork orchestration shared by BGSAVE and the AOF rewrite: fork a child from a quiesced point,
//! let it do blocking work and leave with `_exit`, then reap or kill it from the parent.
//!
//! The caller must call [`spawn`] from the thread that owns the data, at a point where no
//! mutation is half done (between two commands). The child runs only the given closure: it must
//! not touch an async runtime or any lock another thread may hold, must write with plain
//! blocking I/O and fsync what it writes. Its exit code is the closure's return value; a panic
//! in the child exits with code 70 instead of unwinding into the parent's code.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use thiserror::Error;

/// Exit code of a child whose work panicked.
pub const PANIC_EXIT_CODE: i32 = 70;

/// Why a child could not be started or reaped.
#[derive(Debug, Error)]
pub enum ForkError {
    /// `fork()` failed (typically out of memory or process limit).
    #[error("fork failed: {0}")]
    Fork(nix::Error),
    /// `waitpid()` failed.
    #[error("waiting for child {pid} failed: {error}")]
    Wait {
        /// The child.
        pid: i32,
        /// The error.
        error: nix::Error,
    },
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code (0 = success).
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ChildExit {
    /// Whether the child did its work.
    pub fn success(self) -> bool {
        self == ChildExit::Exited(0)
    }
}

/// A running child process.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    started: Instant,
    fork_time: Duration,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// How long `fork()` took in the parent (`latest_fork_usec`).
    pub fn fork_time(&self) -> Duration {
        self.fork_time
    }

    /// How long the child has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Returns how the child ended, or `None` if it is still running; never blocks.
    pub fn try_wait(&self) -> Result<Option<ChildExit>, ForkError> {
        let status =
            waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).map_err(|error| ForkError::Wait {
                pid: self.pid(),
                error,
            })?;
        Ok(match status {
            WaitStatus::Exited(_, code) => Some(ChildExit::Exited(code)),
            WaitStatus::Signaled(_, signal, _) => Some(ChildExit::Signaled(signal as i32)),
            _ => None,
        })
    }

    /// Kills the child (SIGUSR1, as Redis does, so it is not mistaken for a crash) and reaps it.
    pub fn kill_and_reap(&self) -> Result<ChildExit, ForkError> {
        let _ = kill(self.pid, Signal::SIGUSR1);
        loop {
            let status = waitpid(self.pid, None).map_err(|error| ForkError::Wait {
                pid: self.pid(),
                error,
            })?;
            match status {
                WaitStatus::Exited(_, code) => return Ok(ChildExit::Exited(code)),
                WaitStatus::Signaled(_, signal, _) => {
                    return Ok(ChildExit::Signaled(signal as i32));
                }
                _ => continue,
            }
        }
    }
}

/// Forks; the child runs `work` and exits with its return value through `_exit` (no atexit
/// handlers, no destructors, no flushing of the parent's buffers). The parent gets a [`Child`].
pub fn spawn(work: impl FnOnce() -> i32) -> Result<Child, ForkError> {
    let started = Instant::now();
    // SAFETY: the caller forks from the thread that owns the data, between mutations, and the
    // child only runs `work` (blocking I/O, no locks shared with other threads) and `_exit`s.
    match unsafe { fork() }.map_err(ForkError::Fork)? {
        ForkResult::Child => {
            // A child whose parent died (kill -9) has nobody to install its work: stop it.
            // Best effort: a failure leaves an orphan that finishes and exits on its own.
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or(PANIC_EXIT_CODE);
            // SAFETY: _exit never returns and skips the parent's atexit handlers and destructors.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(Child {
            pid: child,
            started,
            fork_time: started.elapsed(),
        }),
    }
}

/// Private dirty memory of the current process in bytes (`Private_Dirty` of
/// `/proc/self/smaps_rollup`): in a forked child, the memory copy-on-write has duplicated.
pub fn private_dirty_bytes() -> u64 {
    private_dirty_of("/proc/self/smaps_rollup")
}

/// Private dirty memory of process `pid` in bytes, read by the parent while its child runs:
/// the pages copy-on-write has duplicated so far (0 if it cannot be read).
pub fn private_dirty_bytes_of(pid: i32) -> u64 {
    private_dirty_of(&format!("/proc/{pid}/smaps_rollup"))
}

fn private_dirty_of(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("Private_Dirty:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(child: &Child) -> ChildExit {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "child did not finish");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn child_sees_a_snapshot_and_reports_its_exit_code() {
        let dir = std::env::temp_dir().join(format!("amber-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let mut data = vec![1u8, 2, 3];
        let child = spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(&path, &data).map_or(1, |_| 0)
        })
        .unwrap();
        data.push(4); // the parent changes its copy; the child wrote the data at fork time
        assert_eq!(wait(&child), ChildExit::Exited(0));
        assert_eq!(std::fs::read(&path).unwrap(), [1, 2, 3]);
        assert_eq!(data, [1, 2, 3, 4]);
        let failing = spawn(|| 3).unwrap();
        assert_eq!(wait(&failing), ChildExit::Exited(3));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn panics_and_kills_are_reported() {
        let panicking = spawn(|| panic!("child work failed")).unwrap();
        assert_eq!(wait(&panicking), ChildExit::Exited(PANIC_EXIT_CODE));
        let sleeper = spawn(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
        assert_eq!(sleeper.try_wait().unwrap(), None);
        assert_eq!(
            sleeper.kill_and_reap().unwrap(),
            ChildExit::Signaled(Signal::SIGUSR1 as i32)
        );
    }
}
