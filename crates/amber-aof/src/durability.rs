//! The reply gate: when the replies of a batch of commands may leave, under each `appendfsync`
//! policy, and what a failing disk means for writes.
//!
//! A server appends a batch's writes to the [`DurableLog`], then asks [`DurableLog::before_reply`]
//! what to do with the batch's replies:
//!
//! * `always`: the replies wait until the log is durable up to the end of the batch. While an
//!   fsync runs, new writes only gather in the buffer; when it ends, everything gathered is
//!   written and one fsync asked for, so every batch that arrived during one fsync shares the
//!   next one (group commit).
//!
//!   With [`DurableLog::with_deferred_commits`], the owner starts each group itself, at the end
//!   of its event loop's tick ([`DurableLog::commit`], when [`CommitSignals::commit`] fires),
//!   so one group holds every batch that tick read, as Redis's `beforeSleep` does. A small
//!   group is fsynced right there, in the calling thread: handing it to the fsync thread and
//!   back costs two thread wake-ups, more than the overlap gains. A large one (or any, once an
//!   fsync was slow) goes to the fsync thread, so the loop keeps serving while the disk works;
//!   its report reaches the owner once ([`CommitSignals::synced`], then
//!   [`DurableLog::collect`]), and the waiting batches are woken from the loop's own thread.
//! * `everysec` and `no`: the replies wait until their bytes were written to the file (so a
//!   crash of the process loses nothing acknowledged). Under `everysec`, while a background
//!   fsync runs, the write is postponed for up to 2 seconds (a `write` could block behind the
//!   fsync), then done anyway and counted as a delayed fsync, as Redis does; [`DurableLog::cron`]
//!   asks for an fsync once a second.
//! * A log that cannot be written or synced fails the batch ([`ReplyGate::Fail`]): its replies
//!   are never sent, so no write is acknowledged that may be lost. [`DurableLog::write_error`]
//!   is what writes are refused with (`-MISCONF`). A failed write clears once a later write
//!   succeeds; a failed fsync stays until the log is replaced, since the kernel may have
//!   dropped the dirty pages.
//!
//! Time is passed in by the caller, so tests drive the policy with a simulated clock against a
//! [`crate::SimulatedDisk`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::log::{AppendLog, FsyncPolicy, LogError, SyncProgress, Syncer};
use crate::storage::Storage;

/// How long `everysec` lets writes wait for a slow background fsync before writing anyway.
pub const MAX_FSYNC_POSTPONE: Duration = Duration::from_secs(2);

/// How often `everysec` fsyncs.
const EVERYSEC_INTERVAL: Duration = Duration::from_secs(1);

/// The largest group of bytes a deferred commit at the end of a tick fsyncs in the calling
/// thread. Under one request per client the groups stay far below it (about 30 to 60 bytes
/// per `SET`, one per client); pipelined loads cross [`EAGER_COMMIT_BYTES`] first, and the
/// loop overlaps their groups with the fsync thread's work. See `docs/BENCHMARKS.md`,
/// `appendfsync always`.
pub const INLINE_COMMIT_BYTES: u64 = 16 * 1024;

/// Bytes waiting for an fsync at which the batch that reaches them starts the group commit at
/// once, on the fsync thread, instead of at the end of the loop's tick (when the thread is
/// idle). The loop executes the tick's other batches during that fsync, and they form the next
/// group: pipelined clients no longer move in lockstep, one fsync per round of all of them.
/// One request per client (about 30 to 60 bytes per `SET`) stays under it at 50 clients, and
/// keeps the inline fsync at the end of the tick. See `docs/BENCHMARKS.md`, session 39.
pub const EAGER_COMMIT_BYTES: u64 = 4 * 1024;

/// Where a group commit may fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitPlace {
    /// In the calling thread when the group is small and the disk fast, else the fsync thread.
    HereIfSmall,
    /// On the fsync thread, so that the caller goes on serving.
    Thread,
}

/// An fsync slower than this sends the next deferred commit to the fsync thread whatever its
/// size: while the disk stalls, the loop keeps serving instead of stalling with it.
pub const INLINE_COMMIT_MAX_FSYNC: Duration = Duration::from_millis(5);

/// The wake-ups a log with deferred commits needs from its owner's event loop
/// ([`DurableLog::with_deferred_commits`]).
#[derive(Debug, Clone)]
pub struct CommitSignals {
    /// A batch waits for an fsync nobody started: let the rest of the tick run, then call
    /// [`DurableLog::commit`].
    pub commit: Arc<Notify>,
    /// The fsync thread finished an fsync: call [`DurableLog::collect`].
    pub synced: Arc<Notify>,
}

/// The state of deferred commits: where the fsync thread leaves its report, and how long the
/// last fsync took.
struct Deferred {
    signals: CommitSignals,
    reported: Arc<std::sync::Mutex<Option<(u64, SyncProgress)>>>,
    last_fsync: Duration,
    /// See [`DurableLog::set_inline_commits`].
    inline_commits: bool,
}

/// What to do with a batch's replies.
#[derive(Debug)]
pub enum ReplyGate {
    /// Send them now.
    Send,
    /// Wait for [`Ticket::changed`], then ask again with [`DurableLog::wait_step`].
    Wait(Ticket),
    /// The log cannot be made durable: drop the replies (and the connection).
    Fail,
}

/// A batch waiting for the log: the offset its replies need and the file it was written to.
#[derive(Debug)]
pub struct Ticket {
    need: u64,
    generation: u64,
    receiver: watch::Receiver<(u64, SyncProgress)>,
}

impl Ticket {
    /// Waits until the fsync thread (or a postponed write) reports progress; `false` when the
    /// log is gone.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}

/// Cuts the preallocated zeros off the end of `file` (see [`Storage::seal`]).
fn seal(file: &mut OpenFile) -> Result<(), LogError> {
    file.log.storage().seal().map_err(|error| {
        let message = crate::storage::strerror(&error);
        file.log.record_sync_error(message.clone());
        LogError::Sync(message)
    })
}

/// The open file: its buffered log and its fsync thread.
struct OpenFile {
    log: AppendLog,
    syncer: Syncer,
}

/// The append-only log as a server runs it: the open file, its fsync thread and the reply
/// gate. Files come and go (each rewrite opens a new incr file); a batch waiting on a file that
/// was closed fully synced is released.
pub struct DurableLog {
    policy: FsyncPolicy,
    file: Option<OpenFile>,
    /// Progress of the open file, tagged with its generation (one per file).
    progress: watch::Sender<(u64, SyncProgress)>,
    generation: u64,
    /// The generations whose file was closed failed ([`DurableLog::close_failed`]): their
    /// waiting batches fail instead of being released. Failed fsyncs are rare; this stays short.
    failed_generations: Vec<u64>,
    delayed_fsync: u64,
    postponed_since: Option<Instant>,
    flush_sleep: Duration,
    last_sync_request: Option<Instant>,
    /// Set when the owner commits at the end of its loop's ticks.
    deferred: Option<Deferred>,
    /// A forked child of the owner runs (it competes for the disk); see [`WriteStalls`].
    child_active: bool,
    /// The longest writes since [`DurableLog::take_stalls`] last asked, by circumstance.
    stalls: WriteStalls,
}

/// The longest writes of the buffer, by what else was going on, as Redis's latency monitor
/// tells them apart (`aof-write-pending-fsync`, `aof-write-active-child`, `aof-write-alone`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStalls {
    /// Written while an fsync of the file was in flight.
    pub pending_fsync: Duration,
    /// Written while a forked child of the owner ran (and no fsync was in flight).
    pub active_child: Duration,
    /// Written with neither.
    pub alone: Duration,
}

impl WriteStalls {
    /// The longest write of any kind (`aof-write`).
    pub fn longest(&self) -> Duration {
        self.pending_fsync.max(self.active_child).max(self.alone)
    }
}

impl DurableLog {
    /// A log with no open file whose `always` groups are started by the owner at the end of
    /// each event-loop tick (see the module documentation), with the signals to run it by.
    pub fn with_deferred_commits(policy: FsyncPolicy) -> (DurableLog, CommitSignals) {
        let signals = CommitSignals {
            commit: Arc::new(Notify::new()),
            synced: Arc::new(Notify::new()),
        };
        let mut log = DurableLog::new(policy);
        log.deferred = Some(Deferred {
            signals: signals.clone(),
            reported: Arc::default(),
            last_fsync: Duration::ZERO,
            inline_commits: false,
        });
        (log, signals)
    }

    /// A log with no open file.
    pub fn new(policy: FsyncPolicy) -> DurableLog {
        DurableLog {
            policy,
            file: None,
            progress: watch::channel((0, SyncProgress::default())).0,
            generation: 0,
            failed_generations: Vec::new(),
            delayed_fsync: 0,
            postponed_since: None,
            flush_sleep: Duration::ZERO,
            last_sync_request: None,
            deferred: None,
            child_active: false,
            stalls: WriteStalls::default(),
        }
    }

    /// The longest writes and the longest fsync since the last call, for the latency monitor
    /// (zero without a file).
    pub fn take_stalls(&mut self) -> (WriteStalls, Duration) {
        let fsync = self
            .file
            .as_mut()
            .map_or(Duration::ZERO, |file| file.syncer.take_slowest_sync());
        (std::mem::take(&mut self.stalls), fsync)
    }

    /// Tells the log whether a forked child of its owner runs, to file slow writes under
    /// [`WriteStalls::active_child`].
    pub fn set_child_active(&mut self, active: bool) {
        self.child_active = active;
    }

    /// Writes the buffer of `file`, timing the write under its circumstance.
    fn flush_timed(
        file: &mut OpenFile,
        child_active: bool,
        stalls: &mut WriteStalls,
    ) -> Result<u64, crate::LogError> {
        if file.log.pending() == 0 {
            return file.log.flush();
        }
        let slot = if file.syncer.busy() {
            &mut stalls.pending_fsync
        } else if child_active {
            &mut stalls.active_child
        } else {
            &mut stalls.alone
        };
        let started = Instant::now();
        let flushed = file.log.flush();
        *slot = (*slot).max(started.elapsed());
        flushed
    }

    /// `appendfsync`.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Changes `appendfsync`.
    pub fn set_policy(&mut self, policy: FsyncPolicy) {
        self.policy = policy;
    }

    /// Says whether handing a group to the fsync thread costs more than the overlap gains.
    /// Then every deferred group is fsynced in the calling thread at the end of the tick,
    /// whatever its size, and none starts early on the fsync thread. Two cases: fsyncs that
    /// commit only data (a preallocated file, see [`crate::FileStorage::open_preallocated`]),
    /// which cost less than the two thread wake-ups of the hand-off (`docs/BENCHMARKS.md`,
    /// session 45); and a process with one CPU, where the fsync thread could only take turns
    /// with the caller (session 47). A slow fsync still sends the next group to the thread
    /// ([`INLINE_COMMIT_MAX_FSYNC`]).
    pub fn set_inline_commits(&mut self, inline: bool) {
        if let Some(deferred) = self.deferred.as_mut() {
            deferred.inline_commits = inline;
        }
    }

    /// A pause before each write of the buffer (`DEBUG AOF-FLUSH-SLEEP`, a test knob that
    /// widens the window between a write and its reply).
    pub fn set_flush_sleep(&mut self, pause: Duration) {
        self.flush_sleep = pause;
    }

    /// Starts appending to `storage`, which holds `len` bytes, all durable; a new fsync thread
    /// serves it.
    pub fn attach(&mut self, storage: Arc<dyn Storage>, len: u64) -> std::io::Result<()> {
        self.file = None;
        self.generation += 1;
        let generation = self.generation;
        let sender = self.progress.clone();
        sender.send_replace((
            generation,
            SyncProgress {
                synced: len,
                ..SyncProgress::default()
            },
        ));
        let report: Box<dyn Fn(SyncProgress) + Send> = match &self.deferred {
            // One cross-thread wake per fsync; the owner wakes the waiting batches.
            Some(deferred) => {
                let slot = deferred.reported.clone();
                let synced = deferred.signals.synced.clone();
                Box::new(move |progress| {
                    *slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((generation, progress));
                    synced.notify_one();
                })
            }
            None => Box::new(move |progress| {
                sender.send_replace((generation, progress));
            }),
        };
        let syncer = Syncer::start(storage.clone(), len, report)?;
        self.file = Some(OpenFile {
            log: AppendLog::new(storage, len),
            syncer,
        });
        Ok(())
    }

    /// Writes and fsyncs what is buffered, then closes the file. Batches waiting on it are
    /// released when that succeeded (everything they wrote is durable).
    pub fn close(&mut self) -> Result<(), LogError> {
        let result = match self.file.as_mut() {
            Some(file) => file
                .log
                .flush_and_sync()
                .map(|_| ())
                .and_then(|()| seal(file)),
            None => Ok(()),
        };
        self.file = None;
        if result.is_ok() {
            self.release_waiters();
        }
        result
    }

    /// Closes the file, syncing what it can, and releases every waiting batch whatever
    /// happened: its writes are about to be made durable another way (a new base of the
    /// whole dataset).
    pub fn abandon(&mut self) {
        if let Some(file) = self.file.as_mut() {
            let _ = file
                .log
                .flush_and_sync()
                .map(|_| ())
                .and_then(|()| seal(file));
        }
        self.file = None;
        self.release_waiters();
    }

    /// Drops a file whose fsync failed without syncing it: its waiting batches fail (their
    /// writes are not known to be durable). The caller replaces the file's contents another way
    /// (a rewrite's new base) before it accepts writes again.
    pub fn close_failed(&mut self) {
        self.file = None;
        self.failed_generations.push(self.generation);
        self.release_waiters();
    }

    fn release_waiters(&mut self) {
        self.generation += 1;
        self.progress
            .send_replace((self.generation, SyncProgress::default()));
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The open file's log, to append to.
    pub fn log_mut(&mut self) -> Option<&mut AppendLog> {
        self.file.as_mut().map(|file| &mut file.log)
    }

    /// The open file's log.
    pub fn log(&self) -> Option<&AppendLog> {
        self.file.as_ref().map(|file| &file.log)
    }

    /// Bytes written to the open file.
    pub fn written(&self) -> u64 {
        self.log().map_or(0, AppendLog::written)
    }

    /// Bytes buffered and not yet written (`aof_buffer_length`).
    pub fn pending(&self) -> usize {
        self.log().map_or(0, AppendLog::pending)
    }

    /// Writes done while a background fsync was late (`aof_delayed_fsync`).
    pub fn delayed_fsync(&self) -> u64 {
        self.delayed_fsync
    }

    /// Whether a background fsync runs (`aof_pending_bio_fsync`).
    pub fn fsync_in_flight(&self) -> bool {
        self.file
            .as_ref()
            .and_then(|file| file.syncer.in_flight())
            .is_some()
    }

    /// The error writes are refused with (`-MISCONF`), if any.
    pub fn write_error(&mut self) -> Option<String> {
        self.failure().map(|e| e.to_string())
    }

    /// Why the open file cannot take writes, if it cannot: a failed write (retried, and
    /// cleared by the first write that succeeds) or a failed fsync (for good).
    pub fn failure(&mut self) -> Option<LogError> {
        let log = &mut self.file.as_mut()?.log;
        if let Some(error) = self.progress.borrow().1.error.clone() {
            log.record_sync_error(error);
        }
        log.health().err()
    }

    /// `aof_last_write_status:err`: the last write or fsync failed.
    pub fn last_write_failed(&self) -> bool {
        self.progress.borrow().1.error.is_some()
            || self.log().is_some_and(|log| log.health().is_err())
    }

    /// Writes and fsyncs everything buffered, in the calling thread (shutdown, reloads), and
    /// gives back the file's preallocated space, so that it ends with its last command.
    pub fn sync_now(&mut self) -> Result<(), LogError> {
        match self.file.as_mut() {
            Some(file) => file
                .log
                .flush_and_sync()
                .map(|_| ())
                .and_then(|()| seal(file)),
            None => Ok(()),
        }
    }

    /// Runs before a batch's replies are sent: what to do with them (see the module
    /// documentation). `appended` says whether the batch wrote to the log: under `everysec`
    /// and `no` a batch that did not (reads, refused writes) is answered at once, whatever
    /// state the disk is in; under `always` it waits like any other, since it may show data
    /// that is not durable yet, except while the log is failing: writes are then refused and
    /// reads are answered (they may show the effect of a failed batch, whose own replies were
    /// never sent, and which is written once the disk takes it).
    pub fn before_reply(&mut self, now: Instant, appended: bool) -> ReplyGate {
        let Some(file) = self.file.as_ref() else {
            return ReplyGate::Send;
        };
        if self.policy != FsyncPolicy::Always && (!appended || file.log.pending() == 0) {
            return ReplyGate::Send;
        }
        let need = file.log.end();
        if !appended && self.failure().is_some() {
            return ReplyGate::Send;
        }
        let generation = self.generation;
        self.step(need, generation, now)
    }

    /// Asks again for a batch that waited (after [`Ticket::changed`]).
    pub fn wait_step(&mut self, ticket: Ticket, now: Instant) -> ReplyGate {
        self.step(ticket.need, ticket.generation, now)
    }

    fn step(&mut self, need: u64, generation: u64, now: Instant) -> ReplyGate {
        // Subscribe before reading the state, so no report between the two is missed.
        let receiver = self.progress.subscribe();
        let (current, progress) = self.progress.borrow().clone();
        if current != generation {
            if self.failed_generations.contains(&generation) {
                // The file was dropped after a failed fsync.
                return ReplyGate::Fail;
            }
            // That file was written and fsynced in full when it was closed.
            return ReplyGate::Send;
        }
        if progress.error.is_some() {
            return ReplyGate::Fail;
        }
        let ticket = Ticket {
            need,
            generation,
            receiver,
        };
        if self.policy != FsyncPolicy::Always {
            if self.written() < need {
                self.write_unless_fsync_is_slow(now);
            }
            if self.written() >= need {
                return ReplyGate::Send;
            }
            if self.log().is_none_or(|log| log.health().is_err()) {
                return ReplyGate::Fail;
            }
            return ReplyGate::Wait(ticket);
        }
        if progress.synced >= need {
            return ReplyGate::Send;
        }
        let pause = self.flush_sleep;
        let Some(file) = self.file.as_mut() else {
            return ReplyGate::Fail;
        };
        if let Some(deferred) = &self.deferred {
            if file.log.written() < need && file.log.health().is_err() {
                // The write of this batch's bytes failed.
                return ReplyGate::Fail;
            }
            if !file.syncer.busy() {
                if !deferred.inline_commits
                    && need.saturating_sub(file.syncer.synced()) >= EAGER_COMMIT_BYTES
                {
                    self.start_commit(CommitPlace::Thread);
                } else {
                    deferred.signals.commit.notify_one();
                }
            }
            return ReplyGate::Wait(ticket);
        }
        if !file.syncer.busy() {
            pause_before_write(pause, file.log.pending());
            if Self::flush_timed(file, self.child_active, &mut self.stalls).is_err() {
                return ReplyGate::Fail;
            }
            file.syncer.request(file.log.written());
        }
        ReplyGate::Wait(ticket)
    }

    /// Starts the group commit of everything written or buffered (deferred commits under
    /// `always`, at the end of the owner's loop tick): writes the buffer, then fsyncs it here
    /// when the group is small and the disk fast, or asks the fsync thread. Does nothing while
    /// an fsync runs; the batches waiting are woken by the outcome.
    pub fn commit(&mut self) {
        self.start_commit(CommitPlace::HereIfSmall);
    }

    /// [`DurableLog::commit`], with the fsync's place chosen by the caller.
    fn start_commit(&mut self, place: CommitPlace) {
        let generation = self.generation;
        let pause = self.flush_sleep;
        let (Some(file), Some(deferred)) = (self.file.as_mut(), self.deferred.as_mut()) else {
            return;
        };
        if self.policy != FsyncPolicy::Always || file.syncer.busy() {
            return;
        }
        pause_before_write(pause, file.log.pending());
        if Self::flush_timed(file, self.child_active, &mut self.stalls).is_err() {
            // The waiting batches look again and fail.
            self.progress.send_modify(|_| {});
            return;
        }
        let written = file.log.written();
        let synced = file.syncer.synced();
        if synced >= written {
            // Durable already (an fsync that ended after the batches looked): release them.
            publish(&self.progress, generation, synced, None);
            return;
        }
        let small = deferred.inline_commits || written - synced <= INLINE_COMMIT_BYTES;
        let here = place == CommitPlace::HereIfSmall;
        if here && small && deferred.last_fsync < INLINE_COMMIT_MAX_FSYNC {
            let storage = file.log.storage();
            if let Some(progress) = file.syncer.sync_here(storage.as_ref(), written) {
                deferred.last_fsync = progress.took;
                publish(&self.progress, generation, progress.synced, progress.error);
                return;
            }
        }
        file.syncer.request(written);
    }

    /// Takes the fsync thread's last report (deferred commits, when
    /// [`CommitSignals::synced`] fires) and wakes the batches it releases; asks for the next
    /// commit when more is waiting.
    pub fn collect(&mut self) {
        let Some(deferred) = self.deferred.as_mut() else {
            return;
        };
        let report = deferred
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some((generation, progress)) = report else {
            return;
        };
        deferred.last_fsync = progress.took;
        if generation != self.generation {
            return;
        }
        let more = self
            .file
            .as_ref()
            .is_some_and(|file| file.log.end() > progress.synced);
        publish(&self.progress, generation, progress.synced, progress.error);
        if more && self.policy == FsyncPolicy::Always {
            deferred.signals.commit.notify_one();
        }
    }

    /// Redis's rule for `everysec`: while a background fsync runs, postpone writes for up to
    /// [`MAX_FSYNC_POSTPONE`], then write anyway and count a delayed fsync.
    fn write_unless_fsync_is_slow(&mut self, now: Instant) {
        let pause = self.flush_sleep;
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.syncer.in_flight().is_some() && self.policy == FsyncPolicy::EverySec {
            let since = *self.postponed_since.get_or_insert(now);
            if now.saturating_duration_since(since) < MAX_FSYNC_POSTPONE {
                return;
            }
            self.delayed_fsync += 1;
        }
        let was_postponed = self.postponed_since.take().is_some();
        pause_before_write(pause, file.log.pending());
        let _ = Self::flush_timed(file, self.child_active, &mut self.stalls);
        if was_postponed {
            // Wake the batches that waited for this write.
            self.progress.send_modify(|_| {});
        }
    }

    /// Runs from the server's cron: writes what is buffered, and under `everysec` asks for an
    /// fsync once a second when something was written since the last one.
    pub fn cron(&mut self, now: Instant) {
        if self.pending() > 0 {
            if self.policy == FsyncPolicy::EverySec {
                self.write_unless_fsync_is_slow(now);
            } else if let Some(log) = self.log_mut() {
                let _ = log.flush();
            }
        }
        if self.policy != FsyncPolicy::EverySec {
            return;
        }
        let due = self
            .last_sync_request
            .is_none_or(|at| now.saturating_duration_since(at) >= EVERYSEC_INTERVAL);
        let synced = self.progress.borrow().1.synced;
        let Some(file) = self.file.as_ref() else {
            return;
        };
        if due && file.syncer.in_flight().is_none() && synced < file.log.written() {
            file.syncer.request(file.log.written());
            self.last_sync_request = Some(now);
        }
    }
}

/// Publishes `synced` (and `error`) for the file of `generation` to the waiting batches. The
/// published offset only grows: a report of the fsync thread collected after an inline fsync
/// that went further must not hold back batches the later one made durable.
fn publish(
    progress: &watch::Sender<(u64, SyncProgress)>,
    generation: u64,
    synced: u64,
    error: Option<String>,
) {
    progress.send_if_modified(|(current, published)| {
        if *current != generation {
            return false;
        }
        let mut changed = false;
        if synced > published.synced {
            published.synced = synced;
            changed = true;
        }
        if published.error.is_none() && error.is_some() {
            published.error = error;
            changed = true;
        }
        changed
    });
}

/// Sleeps `pause` before a write of `pending` buffered bytes (`DEBUG AOF-FLUSH-SLEEP`).
fn pause_before_write(pause: Duration, pending: usize) {
    if pending > 0 && !pause.is_zero() {
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Faults, SimulatedDisk};

    fn open(policy: FsyncPolicy, faults: Faults) -> (DurableLog, Arc<SimulatedDisk>) {
        let disk = Arc::new(SimulatedDisk::new(faults));
        let mut log = DurableLog::new(policy);
        log.attach(disk.clone(), 0).unwrap();
        (log, disk)
    }

    fn set(log: &mut DurableLog, key: &str) {
        log.log_mut().unwrap().append(0, &["SET", key, "v"]);
    }

    /// Drives a batch to its outcome the way a connection does, on a runtime.
    fn settle(log: &mut DurableLog, now: Instant) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut gate = log.before_reply(now, true);
        loop {
            match gate {
                ReplyGate::Send => return true,
                ReplyGate::Fail => return false,
                ReplyGate::Wait(mut ticket) => {
                    let woke = runtime.block_on(async {
                        tokio::time::timeout(Duration::from_secs(5), ticket.changed()).await
                    });
                    assert!(matches!(woke, Ok(true)), "the fsync thread never reported");
                    gate = log.wait_step(ticket, now);
                }
            }
        }
    }

    /// A disk whose writes take `delay`.
    #[derive(Debug)]
    struct SlowDisk {
        disk: SimulatedDisk,
        delay: Duration,
    }

    impl Storage for SlowDisk {
        fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
            std::thread::sleep(self.delay);
            self.disk.append(bytes)
        }
        fn sync(&self) -> std::io::Result<()> {
            self.disk.sync()
        }
        fn truncate(&self, len: u64) -> std::io::Result<()> {
            self.disk.truncate(len)
        }
        fn len(&self) -> std::io::Result<u64> {
            self.disk.len()
        }
    }

    #[test]
    fn slow_writes_are_told_apart_by_what_else_ran() {
        let delay = Duration::from_millis(20);
        let disk = Arc::new(SlowDisk {
            disk: SimulatedDisk::new(Faults::default()),
            delay,
        });
        let mut log = DurableLog::new(FsyncPolicy::EverySec);
        log.attach(disk, 0).unwrap();
        set(&mut log, "alone");
        log.write_unless_fsync_is_slow(Instant::now());
        let (stalls, _) = log.take_stalls();
        assert!(stalls.alone >= delay, "{stalls:?}");
        assert_eq!(
            (stalls.active_child, stalls.pending_fsync),
            (Duration::ZERO, Duration::ZERO)
        );
        assert_eq!(stalls.longest(), stalls.alone);

        log.set_child_active(true);
        set(&mut log, "child");
        log.write_unless_fsync_is_slow(Instant::now());
        let (stalls, _) = log.take_stalls();
        assert!(stalls.active_child >= delay, "{stalls:?}");
        assert_eq!(
            stalls.alone,
            Duration::ZERO,
            "taken stalls start again from zero"
        );
    }

    #[test]
    fn always_releases_replies_only_once_the_batch_is_durable() {
        let (mut log, disk) = open(FsyncPolicy::Always, Faults::default());
        set(&mut log, "a");
        assert!(settle(&mut log, Instant::now()));
        let durable = disk.crash_image(0);
        assert_eq!(durable.len() as u64, log.written(), "replied means on disk");
        assert!(log.write_error().is_none());
    }

    #[test]
    fn a_failed_fsync_fails_the_batch_and_refuses_writes_for_good() {
        let faults = Faults {
            fail_sync: Some(0),
            ..Faults::default()
        };
        let (mut log, _disk) = open(FsyncPolicy::Always, faults);
        set(&mut log, "a");
        assert!(!settle(&mut log, Instant::now()), "never acknowledged");
        let error = log.write_error().expect("writes are refused");
        assert!(error.contains("injected fsync failure"), "{error}");
        assert!(log.last_write_failed());
        // A batch that wrote nothing (reads) under everysec still gets its replies.
        log.set_policy(FsyncPolicy::EverySec);
        assert!(matches!(
            log.before_reply(Instant::now(), false),
            ReplyGate::Send
        ));
        assert!(
            log.write_error().is_some(),
            "a failed fsync is not forgotten"
        );
    }

    #[test]
    fn a_full_disk_mid_write_fails_the_batch_then_recovers() {
        // The first write fails after 5 of its bytes (ENOSPC); the torn bytes are cut off.
        let faults = Faults {
            fail_append: Some((0, 5)),
            ..Faults::default()
        };
        let (mut log, disk) = open(FsyncPolicy::EverySec, faults);
        set(&mut log, "a");
        assert!(!settle(&mut log, Instant::now()));
        assert!(
            log.write_error()
                .is_some_and(|e| e.contains("injected write failure"))
        );
        assert!(disk.contents().is_empty(), "the torn write was cut off");
        // Reads go on while the write waits in the buffer.
        assert!(matches!(
            log.before_reply(Instant::now(), false),
            ReplyGate::Send
        ));
        assert_eq!(log.pending() as u64, log.log().unwrap().end());
        // Space is back: the cron's write succeeds, the error clears, nothing is lost.
        log.cron(Instant::now());
        assert!(log.write_error().is_none());
        assert!(!log.last_write_failed());
        set(&mut log, "b");
        assert!(settle(&mut log, Instant::now()));
        let text = String::from_utf8(disk.contents()).unwrap();
        assert!(
            text.contains("$1\r\na\r\n") && text.contains("$1\r\nb\r\n"),
            "{text:?}"
        );
    }

    #[test]
    fn always_serves_reads_while_the_disk_is_full_and_recovers() {
        let faults = Faults {
            fail_append: Some((0, 3)),
            ..Faults::default()
        };
        let (mut log, disk) = open(FsyncPolicy::Always, faults);
        set(&mut log, "a");
        assert!(!settle(&mut log, Instant::now()), "never acknowledged");
        assert!(log.write_error().is_some());
        // A read (or a refused write) is answered; it waits for nothing while the log fails.
        assert!(matches!(
            log.before_reply(Instant::now(), false),
            ReplyGate::Send
        ));
        log.cron(Instant::now());
        assert!(
            log.write_error().is_none(),
            "the retried write went through"
        );
        // Once healthy, a read waits for durability again, as every batch under `always`.
        set(&mut log, "b");
        assert!(settle(&mut log, Instant::now()));
        assert_eq!(disk.crash_image(0).len() as u64, log.written());
    }

    #[test]
    fn batches_waiting_on_a_file_closed_after_a_failed_fsync_fail() {
        let (mut log, disk) = open(FsyncPolicy::Always, Faults::default());
        set(&mut log, "a");
        let ReplyGate::Wait(ticket) = log.before_reply(Instant::now(), true) else {
            panic!("an always batch waits for its fsync");
        };
        log.close_failed();
        assert!(matches!(
            log.wait_step(ticket, Instant::now()),
            ReplyGate::Fail
        ));
        // A new file takes writes again, and its batches are released as usual.
        log.attach(disk.clone(), disk.contents().len() as u64)
            .unwrap();
        set(&mut log, "b");
        assert!(settle(&mut log, Instant::now()));
    }

    #[test]
    fn everysec_fsyncs_once_a_second_from_the_cron() {
        let (mut log, disk) = open(FsyncPolicy::EverySec, Faults::default());
        let start = Instant::now();
        set(&mut log, "a");
        assert!(settle(&mut log, start), "written, so replied");
        log.cron(start);
        // The first request goes out at once; wait for the thread to report it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while disk.crash_image(0).len() as u64 != log.written() {
            assert!(Instant::now() < deadline, "no fsync happened");
            std::thread::sleep(Duration::from_millis(5));
        }
        set(&mut log, "b");
        assert!(settle(&mut log, start));
        log.cron(start + Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            (disk.crash_image(0).len() as u64) < log.written(),
            "not within the second"
        );
        log.cron(start + Duration::from_millis(1000));
        let deadline = Instant::now() + Duration::from_secs(5);
        while disk.crash_image(0).len() as u64 != log.written() {
            assert!(Instant::now() < deadline, "no second fsync");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn closing_a_synced_file_releases_its_waiters() {
        let (mut log, _disk) = open(FsyncPolicy::Always, Faults::default());
        set(&mut log, "a");
        let generation_before = log.generation;
        log.close().unwrap();
        assert_ne!(log.generation, generation_before);
        assert!(!log.is_open());
        assert!(matches!(
            log.before_reply(Instant::now(), true),
            ReplyGate::Send
        ));
    }

    /// A simulated disk that records which thread ran each fsync, and can make the first one
    /// slow.
    struct WatchedDisk {
        disk: SimulatedDisk,
        first_sync_delay: Duration,
        syncs: std::sync::Mutex<Vec<String>>,
    }

    impl Storage for WatchedDisk {
        fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
            self.disk.append(bytes)
        }
        fn sync(&self) -> std::io::Result<()> {
            let mut syncs = self.syncs.lock().unwrap();
            if syncs.is_empty() {
                std::thread::sleep(self.first_sync_delay);
            }
            syncs.push(std::thread::current().name().unwrap_or("").to_string());
            self.disk.sync()
        }
        fn truncate(&self, len: u64) -> std::io::Result<()> {
            self.disk.truncate(len)
        }
        fn len(&self) -> std::io::Result<u64> {
            self.disk.len()
        }
    }

    fn open_deferred(
        faults: Faults,
        first_sync_delay: Duration,
    ) -> (DurableLog, CommitSignals, Arc<WatchedDisk>) {
        let disk = Arc::new(WatchedDisk {
            disk: SimulatedDisk::new(faults),
            first_sync_delay,
            syncs: std::sync::Mutex::default(),
        });
        let (mut log, signals) = DurableLog::with_deferred_commits(FsyncPolicy::Always);
        log.attach(disk.clone(), 0).unwrap();
        (log, signals, disk)
    }

    /// The batch's ticket, which must wait.
    fn waiting(gate: ReplyGate) -> Ticket {
        match gate {
            ReplyGate::Wait(ticket) => ticket,
            other => panic!("expected the batch to wait, got {other:?}"),
        }
    }

    /// Plays the owner's loop for one waiting batch: commits, collects the fsync thread's
    /// report when it signals one, and asks again until the batch is settled.
    fn settle_deferred(log: &mut DurableLog, signals: &CommitSignals, ticket: Ticket) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut gate = log.wait_step(ticket, Instant::now());
        loop {
            let mut ticket = match gate {
                ReplyGate::Send => return true,
                ReplyGate::Fail => return false,
                ReplyGate::Wait(ticket) => ticket,
            };
            log.commit();
            let woke = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        tokio::select! {
                            changed = ticket.changed() => return changed,
                            () = signals.synced.notified() => log.collect(),
                        }
                    }
                })
                .await
            });
            assert!(matches!(woke, Ok(true)), "the batch was never woken");
            gate = log.wait_step(ticket, Instant::now());
        }
    }

    #[test]
    fn a_deferred_commit_fsyncs_a_small_group_once_in_the_calling_thread() {
        let (mut log, _signals, disk) = open_deferred(Faults::default(), Duration::ZERO);
        let tickets: Vec<Ticket> = ["a", "b", "c"]
            .into_iter()
            .map(|key| {
                set(&mut log, key);
                waiting(log.before_reply(Instant::now(), true))
            })
            .collect();
        assert!(
            disk.syncs.lock().unwrap().is_empty(),
            "nothing before the commit"
        );
        log.commit();
        let here = std::thread::current().name().unwrap_or("").to_string();
        assert_eq!(*disk.syncs.lock().unwrap(), vec![here], "one fsync, here");
        assert_eq!(disk.disk.crash_image(0).len() as u64, log.written());
        for ticket in tickets {
            assert!(matches!(
                log.wait_step(ticket, Instant::now()),
                ReplyGate::Send
            ));
        }
    }

    #[test]
    fn a_deferred_commit_hands_a_large_group_to_the_fsync_thread() {
        let (mut log, signals, disk) = open_deferred(Faults::default(), Duration::ZERO);
        let value = "v".repeat(INLINE_COMMIT_BYTES as usize);
        log.log_mut()
            .unwrap()
            .append(0, &["SET", "big", value.as_str()]);
        let ticket = waiting(log.before_reply(Instant::now(), true));
        assert!(settle_deferred(&mut log, &signals, ticket));
        assert_eq!(*disk.syncs.lock().unwrap(), vec!["aof-fsync".to_string()]);
        assert_eq!(disk.disk.crash_image(0).len() as u64, log.written());
    }

    #[test]
    fn with_inline_commits_a_large_group_waits_for_the_tick_and_is_fsynced_here() {
        let (mut log, _signals, disk) = open_deferred(Faults::default(), Duration::ZERO);
        log.set_inline_commits(true);
        let value = "v".repeat(INLINE_COMMIT_BYTES as usize);
        log.log_mut()
            .unwrap()
            .append(0, &["SET", "big", value.as_str()]);
        let ticket = waiting(log.before_reply(Instant::now(), true));
        assert!(
            !log.fsync_in_flight(),
            "nothing starts before the tick ends"
        );
        assert!(disk.syncs.lock().unwrap().is_empty());
        log.commit();
        let here = std::thread::current().name().unwrap_or("").to_string();
        assert_eq!(*disk.syncs.lock().unwrap(), vec![here], "one fsync, here");
        assert!(matches!(
            log.wait_step(ticket, Instant::now()),
            ReplyGate::Send
        ));
        assert_eq!(disk.disk.crash_image(0).len() as u64, log.written());
    }

    #[test]
    fn a_group_past_the_eager_size_starts_its_fsync_before_the_tick_ends() {
        let (mut log, signals, disk) = open_deferred(Faults::default(), Duration::ZERO);
        let mut tickets = Vec::new();
        let mut key = 0;
        while log.log().map_or(0, |file| file.end()) < EAGER_COMMIT_BYTES {
            assert!(!log.fsync_in_flight(), "no fsync below the eager size");
            set(&mut log, &key.to_string());
            key += 1;
            tickets.push(waiting(log.before_reply(Instant::now(), true)));
        }
        // The batch that reached the size asked the fsync thread, before any commit().
        let started = Instant::now();
        while disk.syncs.lock().unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no fsync started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(*disk.syncs.lock().unwrap(), vec!["aof-fsync".to_string()]);
        for ticket in tickets {
            assert!(settle_deferred(&mut log, &signals, ticket));
        }
        assert_eq!(disk.disk.crash_image(0).len() as u64, log.written());
    }

    #[test]
    fn after_a_slow_fsync_even_small_groups_go_to_the_fsync_thread() {
        let slow = INLINE_COMMIT_MAX_FSYNC + Duration::from_millis(5);
        let (mut log, signals, disk) = open_deferred(Faults::default(), slow);
        for key in ["a", "b"] {
            set(&mut log, key);
            let ticket = waiting(log.before_reply(Instant::now(), true));
            assert!(settle_deferred(&mut log, &signals, ticket));
        }
        let here = std::thread::current().name().unwrap_or("").to_string();
        assert_eq!(
            *disk.syncs.lock().unwrap(),
            vec![here, "aof-fsync".to_string()]
        );
    }

    #[test]
    fn a_failed_fsync_in_a_deferred_commit_fails_the_group_for_good() {
        let faults = Faults {
            fail_sync: Some(0),
            ..Faults::default()
        };
        let (mut log, signals, _disk) = open_deferred(faults, Duration::ZERO);
        set(&mut log, "a");
        let first = waiting(log.before_reply(Instant::now(), true));
        set(&mut log, "b");
        let second = waiting(log.before_reply(Instant::now(), true));
        assert!(!settle_deferred(&mut log, &signals, first));
        assert!(matches!(
            log.wait_step(second, Instant::now()),
            ReplyGate::Fail
        ));
        let error = log.write_error().expect("writes are refused");
        assert!(error.contains("injected fsync failure"), "{error}");
    }

    #[test]
    fn a_failed_write_in_a_deferred_commit_fails_the_waiting_batch() {
        let faults = Faults {
            fail_append: Some((0, 5)),
            ..Faults::default()
        };
        let (mut log, signals, disk) = open_deferred(faults, Duration::ZERO);
        set(&mut log, "a");
        let ticket = waiting(log.before_reply(Instant::now(), true));
        assert!(!settle_deferred(&mut log, &signals, ticket));
        assert!(
            disk.disk.contents().is_empty(),
            "the torn write was cut off"
        );
        assert!(disk.syncs.lock().unwrap().is_empty(), "nothing to fsync");
    }

    #[test]
    fn a_late_report_of_the_fsync_thread_does_not_hold_back_a_later_inline_fsync() {
        let (mut log, signals, _disk) = open_deferred(Faults::default(), Duration::ZERO);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A large group goes to the fsync thread, which reports; the report waits uncollected.
        let value = "v".repeat(INLINE_COMMIT_BYTES as usize);
        log.log_mut()
            .unwrap()
            .append(0, &["SET", "big", value.as_str()]);
        let big = waiting(log.before_reply(Instant::now(), true));
        log.commit();
        runtime.block_on(signals.synced.notified());
        // A small group meanwhile is fsynced inline, further.
        set(&mut log, "small");
        let small = waiting(log.before_reply(Instant::now(), true));
        log.commit();
        // The thread's older report is collected last; nothing may wait on it.
        log.collect();
        for ticket in [big, small] {
            assert!(matches!(
                log.wait_step(ticket, Instant::now()),
                ReplyGate::Send
            ));
        }
        assert!(
            matches!(log.before_reply(Instant::now(), false), ReplyGate::Send),
            "a read sees only durable data: it is answered at once"
        );
    }
}
