//! When background jobs run: a plain state machine, fed with requests, clock ticks and job
//! exits, that decides which job to start and when. It holds Redis's rules: save points
//! (`save <seconds> <changes>`, with a 5-second pause after a failed save), the automatic AOF
//! rewrite (`auto-aof-rewrite-percentage` / `-min-size`, backing off after three failures in a
//! row), the backup interval, and one job at a time (a request made while another job runs is
//! queued or refused).
//!
//! It does no I/O and reads no clock: every time is a millisecond count the caller passes in,
//! so tests drive it with a simulated clock.

/// What a background job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// An RDB snapshot (BGSAVE, a save point, a replica's full sync).
    Save,
    /// An AOF rewrite (a new base file).
    AofRewrite,
    /// A backup (written by a child, then verified by a thread).
    Backup,
}

impl JobKind {
    const ALL: [JobKind; 3] = [JobKind::Save, JobKind::AofRewrite, JobKind::Backup];

    fn index(self) -> usize {
        match self {
            JobKind::Save => 0,
            JobKind::AofRewrite => 1,
            JobKind::Backup => 2,
        }
    }
}

/// Why the scheduler starts a job on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It was requested while another job ran, and now it can run.
    Queued,
    /// A save point was reached: `changes` changes in `seconds` seconds.
    SavePoint {
        /// The save point's seconds.
        seconds: u64,
        /// The save point's changes.
        changes: u64,
    },
    /// The AOF grew by `percent` percent since its last rewrite.
    AofGrowth {
        /// Growth since the last rewrite, in percent.
        percent: i64,
    },
    /// `backup-interval` has passed since the last backup started.
    BackupDue,
}

/// The answer to a request for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start it now.
    Start,
    /// It will start once the running job has ended.
    Queued,
    /// A job of the same kind is already running (or, for a backup, being verified).
    AlreadyRunning,
    /// Another job runs and the request may not wait for it.
    Busy(JobKind),
}

/// What a tick decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// The job to start now, if any.
    pub start: Option<(JobKind, Reason)>,
    /// The automatic AOF rewrite is held back after repeated failures: the wait in minutes,
    /// reported once per failure count.
    pub rewrite_backoff_minutes: Option<u64>,
}

/// The rules, from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `save` points: (seconds, changes).
    pub save_points: Vec<(u64, u64)>,
    /// `auto-aof-rewrite-percentage` (0 or less: no automatic rewrite).
    pub auto_rewrite_percentage: i64,
    /// `auto-aof-rewrite-min-size` in bytes.
    pub auto_rewrite_min_size: u64,
    /// `backup-interval` in milliseconds (0: backups only on request).
    pub backup_interval_ms: i64,
}

/// What the scheduler needs to know about the dataset on each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The clock, in milliseconds (Unix time in the server).
    pub now_ms: i64,
    /// Changes since the last successful save.
    pub dirty: u64,
    /// With AOF on: the log's current size and its size after the last rewrite.
    pub aof_sizes: Option<(u64, u64)>,
    /// With backups configured: the backup clock, in milliseconds.
    pub backup_clock_ms: Option<i64>,
}

/// Consecutive failures after which automatic and retried rewrites back off.
pub const FAILURES_BEFORE_BACKOFF: u32 = 3;

/// A failed save is retried by the save points only after this long (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
pub const SAVE_RETRY_DELAY_MS: i64 = 5_000;

/// The state machine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policy: Policy,
    running: Option<JobKind>,
    queued: [bool; 3],
    last_save_ms: i64,
    last_save_try_ms: i64,
    last_save_ok: bool,
    rewrite_failures: u32,
    last_rewrite_failure_ms: Option<i64>,
    backoff_announced: u32,
    last_backup_ms: Option<i64>,
    backup_verifying: bool,
}

impl Scheduler {
    /// A scheduler with nothing running; the dataset counts as saved at `now_ms`.
    pub fn new(policy: Policy, now_ms: i64) -> Scheduler {
        Scheduler {
            policy,
            running: None,
            queued: [false; 3],
            last_save_ms: now_ms,
            last_save_try_ms: now_ms,
            last_save_ok: true,
            rewrite_failures: 0,
            last_rewrite_failure_ms: None,
            backoff_announced: 0,
            last_backup_ms: None,
            backup_verifying: false,
        }
    }

    /// Replaces the rules (after a configuration change).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The job running now, if any.
    pub fn running(&self) -> Option<JobKind> {
        self.running
    }

    /// Whether a job of `kind` waits for the running one.
    pub fn is_queued(&self, kind: JobKind) -> bool {
        self.queued[kind.index()]
    }

    /// Queues a job of `kind` (or withdraws it), whatever runs.
    pub fn set_queued(&mut self, kind: JobKind, queued: bool) {
        self.queued[kind.index()] = queued;
    }

    /// When the dataset was last saved successfully (or the start time), in milliseconds.
    pub fn last_save_ms(&self) -> i64 {
        self.last_save_ms
    }

    /// Whether the last save succeeded (or none was tried).
    pub fn last_save_ok(&self) -> bool {
        self.last_save_ok
    }

    /// AOF rewrites that failed in a row.
    pub fn rewrite_failures(&self) -> u32 {
        self.rewrite_failures
    }

    /// Forgets the rewrite failures (`BGREWRITEAOF` asked by a user clears the back-off).
    pub fn reset_rewrite_failures(&mut self) {
        self.rewrite_failures = 0;
        self.backoff_announced = 0;
    }

    /// Whether a backup is being written or verified.
    pub fn backup_in_progress(&self) -> bool {
        self.running == Some(JobKind::Backup)
            || self.backup_verifying
            || self.is_queued(JobKind::Backup)
    }

    /// A request for a job of `kind` (`BGSAVE`, `BGREWRITEAOF`, `BACKUP NOW`): whether it may
    /// start now. With `may_wait`, a request that finds another job running is queued.
    pub fn request(&mut self, kind: JobKind, may_wait: bool) -> Admission {
        if kind == JobKind::Backup {
            // A backup asked for must hold every write before the request: one already
            // running (or being verified) took its snapshot earlier, so another is queued
            // behind it; an already queued one has not, and is joined.
            if self.is_queued(kind) {
                return Admission::AlreadyRunning;
            }
            if self.running.is_some() || self.backup_verifying {
                if !may_wait {
                    return Admission::Busy(self.running.unwrap_or(JobKind::Backup));
                }
                self.queued[kind.index()] = true;
                return Admission::Queued;
            }
            return Admission::Start;
        }
        if self.running == Some(kind) {
            return Admission::AlreadyRunning;
        }
        match self.running {
            None => Admission::Start,
            Some(other) if may_wait => {
                let _ = other;
                self.queued[kind.index()] = true;
                Admission::Queued
            }
            Some(other) => Admission::Busy(other),
        }
    }

    /// A job of `kind` was started (forked) at `now_ms`.
    pub fn started(&mut self, kind: JobKind, now_ms: i64) {
        self.running = Some(kind);
        self.queued[kind.index()] = false;
        match kind {
            JobKind::Save => self.last_save_try_ms = now_ms,
            JobKind::Backup => self.last_backup_ms = Some(now_ms),
            JobKind::AofRewrite => {}
        }
    }

    /// A job of `kind` could not even start (the fork failed).
    pub fn start_failed(&mut self, kind: JobKind, now_ms: i64) {
        self.finished(kind, false, now_ms);
    }

    /// The running job of `kind` ended at `now_ms`; `success` says whether its result was
    /// installed. A backup then goes on being verified until [`Scheduler::backup_verified`].
    pub fn finished(&mut self, kind: JobKind, success: bool, now_ms: i64) {
        if self.running == Some(kind) {
            self.running = None;
        }
        match kind {
            JobKind::Save => {
                self.last_save_ok = success;
                self.last_save_try_ms = now_ms;
                if success {
                    self.last_save_ms = now_ms;
                }
            }
            JobKind::AofRewrite if success => self.reset_rewrite_failures(),
            JobKind::AofRewrite => {
                self.rewrite_failures += 1;
                self.last_rewrite_failure_ms = Some(now_ms);
            }
            JobKind::Backup => self.backup_verifying = success,
        }
    }

    /// A save made in the foreground (`SAVE`, shutdown) at `now_ms`.
    pub fn saved(&mut self, now_ms: i64) {
        self.last_save_ok = true;
        self.last_save_ms = now_ms;
        self.last_save_try_ms = now_ms;
    }

    /// The running job of `kind` was killed on purpose (shutdown, FLUSHALL): the slot is free
    /// and no status changes, as in Redis.
    pub fn cancelled(&mut self, kind: JobKind) {
        if self.running == Some(kind) {
            self.running = None;
        }
    }

    /// The backup written last has been verified (or failed verification).
    pub fn backup_verified(&mut self) {
        self.backup_verifying = false;
    }

    /// The schedule of backups continues from the newest one already made (read at start-up).
    pub fn set_last_backup(&mut self, time_ms: Option<i64>) {
        self.last_backup_ms = time_ms;
    }

    /// Whether the schedule knows when the last backup started.
    pub fn knows_last_backup(&self) -> bool {
        self.last_backup_ms.is_some()
    }

    /// One clock tick: what to start, in Redis's order of precedence (a queued rewrite, save
    /// points, the automatic rewrite, a queued save), then backups. Nothing starts while a
    /// job runs.
    pub fn tick(&mut self, inputs: &Inputs) -> Tick {
        let mut tick = Tick::default();
        if self.running.is_some() {
            return tick;
        }
        let now = inputs.now_ms;
        let rewrite_allowed = self.rewrite_backoff_elapsed(now);
        if self.is_queued(JobKind::AofRewrite) && rewrite_allowed {
            tick.start = Some((JobKind::AofRewrite, Reason::Queued));
        } else if let Some((seconds, changes)) = self.save_point_reached(inputs) {
            tick.start = Some((JobKind::Save, Reason::SavePoint { seconds, changes }));
        } else if let Some(percent) = self.aof_growth(inputs) {
            if rewrite_allowed {
                tick.start = Some((JobKind::AofRewrite, Reason::AofGrowth { percent }));
            } else if self.backoff_announced != self.rewrite_failures {
                self.backoff_announced = self.rewrite_failures;
                tick.rewrite_backoff_minutes = Some(backoff_minutes(self.rewrite_failures));
            }
        }
        if tick.start.is_none() && self.is_queued(JobKind::Save) {
            tick.start = Some((JobKind::Save, Reason::Queued));
        }
        if tick.start.is_none() {
            tick.start = self
                .backup_due(inputs)
                .map(|reason| (JobKind::Backup, reason));
        }
        tick
    }

    fn save_point_reached(&self, inputs: &Inputs) -> Option<(u64, u64)> {
        let now = inputs.now_ms;
        let may_retry = self.last_save_ok || now - self.last_save_try_ms > SAVE_RETRY_DELAY_MS;
        if !may_retry {
            return None;
        }
        let elapsed = ((now - self.last_save_ms) / 1000).max(0) as u64;
        self.policy
            .save_points
            .iter()
            .copied()
            .find(|&(seconds, changes)| inputs.dirty >= changes && elapsed >= seconds)
    }

    fn aof_growth(&self, inputs: &Inputs) -> Option<i64> {
        let (current, base) = inputs.aof_sizes?;
        let percentage = self.policy.auto_rewrite_percentage;
        if percentage <= 0 || current <= self.policy.auto_rewrite_min_size {
            return None;
        }
        let growth = growth_percent(current, base);
        (growth >= percentage).then_some(growth)
    }

    fn backup_due(&self, inputs: &Inputs) -> Option<Reason> {
        let clock = inputs.backup_clock_ms?;
        if self.backup_verifying {
            return None;
        }
        if self.is_queued(JobKind::Backup) {
            return Some(Reason::Queued);
        }
        let interval = self.policy.backup_interval_ms;
        let due = interval > 0
            && self
                .last_backup_ms
                .is_none_or(|last| clock.saturating_sub(last) >= interval);
        due.then_some(Reason::BackupDue)
    }

    /// After three failures in a row, rewrites wait 1, 2, 4 ... 60 minutes.
    fn rewrite_backoff_elapsed(&self, now_ms: i64) -> bool {
        if self.rewrite_failures < FAILURES_BEFORE_BACKOFF {
            return true;
        }
        let delay = 60_000 * backoff_minutes(self.rewrite_failures) as i64;
        self.last_rewrite_failure_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= delay)
    }

    /// Whether a queued or automatic rewrite is held back by failures now.
    pub fn rewrite_backing_off(&self, now_ms: i64) -> bool {
        !self.rewrite_backoff_elapsed(now_ms)
    }

    /// Every kind queued now (for `INFO`).
    pub fn queued_kinds(&self) -> impl Iterator<Item = JobKind> + '_ {
        JobKind::ALL
            .into_iter()
            .filter(|kind| self.is_queued(*kind))
    }
}

/// How much the AOF grew since its last rewrite, in percent.
pub fn growth_percent(current: u64, base: u64) -> i64 {
    let base = base.max(1);
    (current.saturating_mul(100) / base) as i64 - 100
}

/// Minutes rewrites wait after `failures` failures in a row: 1, 2, 4 ... 60 from the third on.
pub fn backoff_minutes(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(FAILURES_BEFORE_BACKOFF).min(6);
    (1u64 << doublings).min(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn policy() -> Policy {
        Policy {
            save_points: vec![(3600, 1), (300, 100), (60, 10000)],
            auto_rewrite_percentage: 100,
            auto_rewrite_min_size: 64 << 20,
            backup_interval_ms: 0,
        }
    }

    fn at(now_ms: i64, dirty: u64) -> Inputs {
        Inputs {
            now_ms,
            dirty,
            ..Inputs::default()
        }
    }

    #[test]
    fn save_points_fire_when_both_time_and_changes_are_reached() {
        let mut scheduler = Scheduler::new(policy(), 0);
        assert_eq!(scheduler.tick(&at(299_000, 5000)).start, None);
        assert_eq!(
            scheduler.tick(&at(300_000, 100)).start,
            Some((
                JobKind::Save,
                Reason::SavePoint {
                    seconds: 300,
                    changes: 100
                }
            ))
        );
        assert_eq!(scheduler.tick(&at(3_599_000, 1)).start, None);
        assert!(scheduler.tick(&at(3_600_000, 1)).start.is_some());
    }

    #[test]
    fn a_failed_save_is_retried_only_after_the_delay() {
        let mut scheduler = Scheduler::new(policy(), 0);
        scheduler.started(JobKind::Save, 300_000);
        assert_eq!(
            scheduler.tick(&at(300_500, 1000)).start,
            None,
            "one job at a time"
        );
        scheduler.finished(JobKind::Save, false, 301_000);
        assert!(!scheduler.last_save_ok());
        assert_eq!(scheduler.tick(&at(305_000, 1000)).start, None);
        assert!(scheduler.tick(&at(306_001, 1000)).start.is_some());
        scheduler.started(JobKind::Save, 306_001);
        scheduler.finished(JobKind::Save, true, 307_000);
        assert_eq!(scheduler.last_save_ms(), 307_000);
        assert_eq!(scheduler.tick(&at(308_000, 1000)).start, None);
    }

    #[test]
    fn requests_are_queued_or_refused_while_another_job_runs() {
        let mut scheduler = Scheduler::new(policy(), 0);
        assert_eq!(scheduler.request(JobKind::Save, false), Admission::Start);
        scheduler.started(JobKind::Save, 0);
        assert_eq!(
            scheduler.request(JobKind::Save, true),
            Admission::AlreadyRunning
        );
        assert_eq!(
            scheduler.request(JobKind::Backup, false),
            Admission::Busy(JobKind::Save)
        );
        assert_eq!(
            scheduler.request(JobKind::AofRewrite, true),
            Admission::Queued
        );
        assert_eq!(scheduler.tick(&at(1000, 0)).start, None);
        scheduler.finished(JobKind::Save, true, 1000);
        assert_eq!(
            scheduler.tick(&at(1000, 0)).start,
            Some((JobKind::AofRewrite, Reason::Queued))
        );
    }

    #[test]
    fn a_queued_rewrite_goes_before_save_points_and_a_queued_save_after() {
        let mut scheduler = Scheduler::new(policy(), 0);
        scheduler.set_queued(JobKind::Save, true);
        scheduler.set_queued(JobKind::AofRewrite, true);
        let first = scheduler.tick(&at(3_600_000, 1)).start;
        assert_eq!(first, Some((JobKind::AofRewrite, Reason::Queued)));
        scheduler.started(JobKind::AofRewrite, 3_600_000);
        scheduler.finished(JobKind::AofRewrite, true, 3_601_000);
        let second = scheduler.tick(&at(3_601_000, 1)).start;
        assert!(matches!(
            second,
            Some((JobKind::Save, Reason::SavePoint { .. }))
        ));
        scheduler.started(JobKind::Save, 3_601_000);
        assert!(
            !scheduler.is_queued(JobKind::Save),
            "the save point served the queued save"
        );
    }

    #[test]
    fn automatic_rewrite_follows_growth_and_min_size() {
        let mut scheduler = Scheduler::new(policy(), 0);
        let mut inputs = at(1000, 0);
        inputs.aof_sizes = Some((60 << 20, 10 << 20));
        assert_eq!(
            scheduler.tick(&inputs).start,
            None,
            "below the minimum size"
        );
        inputs.aof_sizes = Some((100 << 20, 60 << 20));
        assert_eq!(scheduler.tick(&inputs).start, None, "66% growth");
        inputs.aof_sizes = Some((120 << 20, 60 << 20));
        assert_eq!(
            scheduler.tick(&inputs).start,
            Some((JobKind::AofRewrite, Reason::AofGrowth { percent: 100 }))
        );
    }

    #[test]
    fn rewrites_back_off_after_three_failures_and_say_so_once() {
        let mut scheduler = Scheduler::new(policy(), 0);
        let mut inputs = at(0, 0);
        inputs.aof_sizes = Some((200 << 20, 64 << 20));
        for failure in 1..=3 {
            assert!(scheduler.tick(&inputs).start.is_some(), "failure {failure}");
            scheduler.started(JobKind::AofRewrite, inputs.now_ms);
            scheduler.finished(JobKind::AofRewrite, false, inputs.now_ms);
        }
        let tick = scheduler.tick(&inputs);
        assert_eq!(tick.start, None);
        assert_eq!(tick.rewrite_backoff_minutes, Some(1));
        assert_eq!(
            scheduler.tick(&inputs).rewrite_backoff_minutes,
            None,
            "logged once"
        );
        inputs.now_ms = MINUTE - 1;
        assert_eq!(scheduler.tick(&inputs).start, None);
        inputs.now_ms = MINUTE;
        assert!(scheduler.tick(&inputs).start.is_some());
        scheduler.started(JobKind::AofRewrite, MINUTE);
        scheduler.finished(JobKind::AofRewrite, false, MINUTE);
        inputs.now_ms = 2 * MINUTE;
        assert_eq!(scheduler.tick(&inputs).rewrite_backoff_minutes, Some(2));
        inputs.now_ms = 3 * MINUTE;
        assert!(scheduler.tick(&inputs).start.is_some(), "after 2 minutes");
        scheduler.started(JobKind::AofRewrite, inputs.now_ms);
        scheduler.finished(JobKind::AofRewrite, true, inputs.now_ms);
        assert_eq!(scheduler.rewrite_failures(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let minutes: Vec<u64> = (3..=11).map(backoff_minutes).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn backups_run_on_their_interval_and_wait_for_verification() {
        let mut policy = policy();
        policy.save_points.clear();
        policy.backup_interval_ms = 10 * MINUTE;
        let mut scheduler = Scheduler::new(policy, 0);
        let mut inputs = at(0, 0);
        inputs.backup_clock_ms = Some(0);
        scheduler.set_last_backup(Some(0));
        assert_eq!(scheduler.tick(&inputs).start, None);
        inputs.backup_clock_ms = Some(10 * MINUTE);
        assert_eq!(
            scheduler.tick(&inputs).start,
            Some((JobKind::Backup, Reason::BackupDue))
        );
        scheduler.started(JobKind::Backup, 10 * MINUTE);
        scheduler.finished(JobKind::Backup, true, 10 * MINUTE + 1000);
        assert!(scheduler.backup_in_progress(), "verifying");
        // The verified backup's snapshot predates the request: another one is queued, and a
        // second request joins that one.
        assert_eq!(scheduler.request(JobKind::Backup, true), Admission::Queued);
        assert_eq!(
            scheduler.request(JobKind::Backup, true),
            Admission::AlreadyRunning
        );
        inputs.backup_clock_ms = Some(30 * MINUTE);
        assert_eq!(scheduler.tick(&inputs).start, None);
        scheduler.backup_verified();
        assert_eq!(
            scheduler.tick(&inputs).start,
            Some((JobKind::Backup, Reason::Queued))
        );
    }

    #[test]
    fn a_requested_backup_waits_for_a_running_save() {
        let mut scheduler = Scheduler::new(policy(), 0);
        scheduler.started(JobKind::Save, 0);
        assert_eq!(scheduler.request(JobKind::Backup, true), Admission::Queued);
        assert!(scheduler.backup_in_progress());
        scheduler.finished(JobKind::Save, true, 1000);
        let mut inputs = at(1000, 0);
        inputs.backup_clock_ms = Some(1000);
        assert_eq!(
            scheduler.tick(&inputs).start,
            Some((JobKind::Backup, Reason::Queued))
        );
    }
}
