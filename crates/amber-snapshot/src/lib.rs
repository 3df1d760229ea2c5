//! Snapshot-fork orchestration: when a background job (RDB save, AOF rewrite, backup) runs,
//! and how it runs.
//!
//! * [`schedule`]: the decisions, as a state machine fed with requests, clock ticks and job
//!   exits (save points, the automatic AOF rewrite and its back-off, the backup interval, one
//!   job at a time).
//! * [`spawn`]: fork a child from a quiesced point, let it do blocking work and leave with
//!   `_exit`, then reap or kill it from the parent ([`Child`]). The child reports its progress
//!   (keys written) and its copy-on-write size through a pipe.
//! * [`durable`]: files replaced atomically and durably (temp file, fsync, rename, directory
//!   fsync).
//! * [`Yielder`]: a background writer yields its core every quarter of a millisecond, so a
//!   client or the event loop woken on that core does not wait for the scheduler's next tick.

#![warn(missing_docs)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use thiserror::Error;

pub mod durable;
pub mod schedule;
mod yielder;

pub use yielder::{YIELD_EVERY, Yielder};

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

/// What a child last reported to its parent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Keys the child has written so far.
    pub keys_processed: u64,
    /// The child's private dirty memory when it last measured it: what copy-on-write has
    /// duplicated.
    pub cow_bytes: u64,
    /// When the parent received the last copy-on-write measurement.
    pub cow_received: Option<Instant>,
}

/// Bytes of one report: keys processed then copy-on-write bytes, little-endian. Writes of up to
/// `PIPE_BUF` bytes are atomic, so reports never interleave or split.
const REPORT_BYTES: usize = 16;

/// The first word of a report that carries the child's failure text instead of progress: the
/// second word is the text's length, and the text follows in the same write.
const FAILURE_MARK: u64 = u64::MAX;

/// The longest failure text sent (the whole message stays within `PIPE_BUF`, 4096 bytes).
const MAX_FAILURE_BYTES: usize = 2048;

/// How often a child sends a report, and measures its copy-on-write size.
const REPORT_EVERY: Duration = Duration::from_millis(100);
const MEASURE_COW_EVERY: Duration = Duration::from_secs(1);

/// The child's end of the progress pipe.
pub struct Reporter {
    pipe: Option<OwnedFd>,
    last_report: Option<Instant>,
    last_cow: Option<Instant>,
    cow_bytes: u64,
}

impl Reporter {
    /// Reports that `keys` keys are written. Sends at most every 100 ms and measures the
    /// copy-on-write size at most once a second; never blocks (a full pipe drops the report).
    pub fn keys_processed(&mut self, keys: u64) {
        if self
            .last_report
            .is_some_and(|last| last.elapsed() < REPORT_EVERY)
        {
            return;
        }
        self.send(keys);
    }

    /// Sends the final report, with the copy-on-write size measured now.
    pub fn finish(&mut self, keys: u64) {
        self.last_cow = None;
        self.send(keys);
    }

    /// Sends a report now. A disconnected reporter (a save in the process itself) does
    /// nothing: reading `smaps_rollup` walks every page table, about a millisecond a GB.
    pub fn send(&mut self, keys: u64) {
        if self.pipe.is_none() {
            return;
        }
        let now = Instant::now();
        self.last_report = Some(now);
        if self
            .last_cow
            .is_none_or(|last| now.duration_since(last) >= MEASURE_COW_EVERY)
        {
            self.last_cow = Some(now);
            self.cow_bytes = private_dirty_bytes();
        }
        let Some(pipe) = &self.pipe else {
            return;
        };
        let mut report = [0u8; REPORT_BYTES];
        report[..8].copy_from_slice(&keys.to_le_bytes());
        report[8..].copy_from_slice(&self.cow_bytes.to_le_bytes());
        // A full pipe (the parent is busy) or a closed one (the parent is gone) drops it.
        let _ = nix::unistd::write(pipe, &report);
    }

    /// Tells the parent why the work failed (read there with [`Child::failure`]), in one
    /// atomic write; a text longer than 2 KiB is cut. Never blocks.
    pub fn fail(&mut self, reason: &str) {
        let Some(pipe) = &self.pipe else {
            return;
        };
        let mut end = reason.len().min(MAX_FAILURE_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let text = &reason.as_bytes()[..end];
        let mut message = Vec::with_capacity(REPORT_BYTES + text.len());
        message.extend_from_slice(&FAILURE_MARK.to_le_bytes());
        message.extend_from_slice(&(text.len() as u64).to_le_bytes());
        message.extend_from_slice(text);
        let _ = nix::unistd::write(pipe, &message);
    }

    /// A reporter that sends nothing (for work run in the parent, such as SAVE).
    pub fn disconnected() -> Reporter {
        Reporter {
            pipe: None,
            last_report: None,
            last_cow: None,
            cow_bytes: 0,
        }
    }
}

/// A running child process.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    started: Instant,
    fork_time: Duration,
    reports: Option<OwnedFd>,
    /// Bytes read from the pipe that do not make a whole message yet.
    unparsed: Vec<u8>,
    progress: Progress,
    failure: Option<String>,
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

    /// The child's latest report, after reading every report waiting in the pipe (never
    /// blocks).
    pub fn progress(&mut self) -> Progress {
        self.read_reports();
        self.progress
    }

    /// Why the child's work failed, if it said so with [`Reporter::fail`] (reads the pipe
    /// first, so a text sent just before the child exited is seen).
    pub fn failure(&mut self) -> Option<&str> {
        self.read_reports();
        self.failure.as_deref()
    }

    fn read_reports(&mut self) {
        let Some(pipe) = &self.reports else {
            return;
        };
        let mut buf = [0u8; 4096];
        while let Ok(read) = nix::unistd::read(pipe.as_raw_fd(), &mut buf) {
            if read == 0 {
                break;
            }
            self.unparsed.extend_from_slice(&buf[..read]);
            if read < buf.len() {
                break;
            }
        }
        let mut at = 0;
        while let Some(header) = self.unparsed.get(at..at + REPORT_BYTES) {
            let (first, second) = (word(header, 0), word(header, 8));
            if first == FAILURE_MARK {
                let Some(text) = usize::try_from(second).ok().and_then(|len| {
                    self.unparsed
                        .get(at + REPORT_BYTES..at + REPORT_BYTES + len)
                }) else {
                    break; // the rest of the text is still in the pipe
                };
                self.failure = Some(String::from_utf8_lossy(text).into_owned());
                at += REPORT_BYTES + text.len();
                continue;
            }
            self.progress.keys_processed = first;
            if second != self.progress.cow_bytes || self.progress.cow_received.is_none() {
                self.progress.cow_received = Some(Instant::now());
            }
            self.progress.cow_bytes = second;
            at += REPORT_BYTES;
        }
        self.unparsed.drain(..at);
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

/// Forks; the child runs `work` with the write end of the progress pipe and exits with its
/// return value through `_exit` (no atexit handlers, no destructors, no flushing of the
/// parent's buffers). The parent gets a [`Child`]. A panic in `work` exits with
/// [`PANIC_EXIT_CODE`] instead of unwinding into the parent's code.
///
/// # Safety
///
/// The child is a copy of the whole process with only the calling thread in it. The caller
/// must call this from the thread that owns the data `work` reads, at a point where no mutation
/// of it is half done (between two commands), and `work` must not touch an async runtime, any
/// lock another thread may hold, or any state another thread was changing at the fork: it may
/// only read that data and write with plain blocking I/O (and fsync what it writes).
pub unsafe fn spawn(work: impl FnOnce(&mut Reporter) -> i32) -> Result<Child, ForkError> {
    // Both ends non-blocking: the child never waits on a busy parent, the parent never waits
    // on a quiet child. Without a pipe (descriptors exhausted) the work still runs, unreported.
    let pipe =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).ok();
    let (reports, report_to) = match pipe {
        Some((read, write)) => (Some(read), Some(write)),
        None => (None, None),
    };
    let started = Instant::now();
    let parent = nix::unistd::getpid();
    // SAFETY: this function's own contract: the caller forks from the thread that owns the
    // data, between mutations, and the child only runs `work` (blocking I/O, no locks shared
    // with other threads) and `_exit`s.
    match unsafe { fork() }.map_err(ForkError::Fork)? {
        ForkResult::Child => {
            drop(reports);
            // A child whose parent died (kill -9) has nobody to install its work: stop it.
            // Best effort: a failure leaves an orphan that finishes and exits on its own.
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid() != parent {
                // The parent died before the death signal was armed.
                // SAFETY: as below, _exit skips the parent's handlers and destructors.
                unsafe { nix::libc::_exit(PANIC_EXIT_CODE) }
            }
            let mut reporter = Reporter {
                pipe: report_to,
                last_report: None,
                last_cow: None,
                cow_bytes: 0,
            };
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut reporter)))
                    .unwrap_or(PANIC_EXIT_CODE);
            // SAFETY: _exit never returns and skips the parent's atexit handlers and destructors.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let fork_time = started.elapsed();
            drop(report_to);
            Ok(Child {
                pid: child,
                started,
                fork_time,
                reports,
                unparsed: Vec::new(),
                progress: Progress::default(),
                failure: None,
            })
        }
    }
}

/// The little-endian word at `at` of a report.
fn word(report: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&report[at..at + 8]);
    u64::from_le_bytes(bytes)
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

    /// Forks a child that runs `work`.
    fn fork_for_test(work: impl FnOnce(&mut Reporter) -> i32) -> Child {
        // SAFETY: each test's child only sleeps, reads memory of the forking thread, writes to
        // a file or the progress pipe, and exits; it takes no lock another thread may hold.
        unsafe { spawn(work) }.unwrap()
    }

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
        let child = fork_for_test(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(&path, &data).map_or(1, |_| 0)
        });
        data.push(4); // the parent changes its copy; the child wrote the data at fork time
        assert_eq!(wait(&child), ChildExit::Exited(0));
        assert_eq!(std::fs::read(&path).unwrap(), [1, 2, 3]);
        assert_eq!(data, [1, 2, 3, 4]);
        let failing = fork_for_test(|_| 3);
        assert_eq!(wait(&failing), ChildExit::Exited(3));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn progress_and_cow_come_through_the_pipe() {
        // Memory the parent wrote before the fork; the child's writes make the kernel copy it.
        let mut pages = vec![1u8; 8 << 20];
        let mut child = fork_for_test(move |reporter| {
            pages.iter_mut().step_by(4096).for_each(|b| *b = 2);
            reporter.send(1234);
            std::thread::sleep(Duration::from_millis(300));
            i32::from(pages[0] != 2)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.progress().keys_processed != 1234 {
            assert!(Instant::now() < deadline, "no report arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
        let progress = child.progress();
        assert!(progress.cow_bytes >= 8 << 20, "{progress:?}");
        assert!(progress.cow_received.is_some());
        assert_eq!(wait(&child), ChildExit::Exited(0));
    }

    #[test]
    fn a_failure_text_follows_the_progress_reports() {
        let mut child = fork_for_test(|reporter| {
            for keys in 0..500 {
                reporter.send(keys);
            }
            reporter.fail("Write error saving DB on disk: No space left on device");
            1
        });
        assert_eq!(wait(&child), ChildExit::Exited(1));
        assert_eq!(
            child.failure(),
            Some("Write error saving DB on disk: No space left on device")
        );
        assert_eq!(child.progress().keys_processed, 499);
        let mut quiet = fork_for_test(|_| 1);
        assert_eq!(wait(&quiet), ChildExit::Exited(1));
        assert_eq!(quiet.failure(), None);
    }

    #[test]
    fn panics_and_kills_are_reported() {
        let panicking = fork_for_test(|_| panic!("child work failed"));
        assert_eq!(wait(&panicking), ChildExit::Exited(PANIC_EXIT_CODE));
        let sleeper = fork_for_test(|_| {
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        assert_eq!(sleeper.try_wait().unwrap(), None);
        assert_eq!(
            sleeper.kill_and_reap().unwrap(),
            ChildExit::Signaled(Signal::SIGUSR1 as i32)
        );
    }
}
