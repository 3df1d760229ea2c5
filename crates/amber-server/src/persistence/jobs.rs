//! Background jobs: one slot for the one forked child that may run at a time (an RDB save, an
//! AOF rewrite or a backup), one way to start it, one reaper, one way to kill it, and one set
//! of fork statistics. When jobs run is decided by [`amber_snapshot::schedule::Scheduler`];
//! what each kind does when it ends lives with the kind (`save.rs`, `aof_rewrite.rs`,
//! `backup.rs`).

use std::path::{Path, PathBuf};

use amber_snapshot::schedule::{Inputs, JobKind, Policy, Reason, Scheduler};
use amber_snapshot::{Child, ChildExit, ForkError, Progress, Reporter};

use crate::persistence::aof_rewrite::RewriteJob;
use crate::persistence::backup::BackupJob;
use crate::persistence::forkless::ForklessJob;
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// What the running child does, with what its kind needs once it ends.
pub(crate) enum Work {
    /// BGSAVE: the dirty counter at the fork (what a successful save makes clean).
    Save {
        /// `dirty` when the child forked.
        dirty_at_fork: u64,
    },
    /// A diskless full synchronization: the child writes the snapshot to replicas' sockets.
    ReplicaSync,
    /// An AOF rewrite.
    Rewrite(RewriteJob),
    /// A backup.
    Backup(BackupJob),
}

impl Work {
    fn kind(&self) -> JobKind {
        match self {
            Work::Save { .. } | Work::ReplicaSync => JobKind::Save,
            Work::Rewrite(_) => JobKind::AofRewrite,
            Work::Backup(_) => JobKind::Backup,
        }
    }
}

/// What does a job's work: a forked child, or a forkless snapshot in this process.
pub(crate) enum Worker {
    /// A forked child.
    Forked(Child),
    /// A forkless snapshot: the event loop captures, a thread writes.
    Forkless(ForklessJob),
}

impl Worker {
    /// The child's process id (this process's for a forkless snapshot).
    fn pid(&self) -> i32 {
        match self {
            Worker::Forked(child) => child.pid(),
            Worker::Forkless(_) => std::process::id() as i32,
        }
    }

    fn elapsed(&self) -> std::time::Duration {
        match self {
            Worker::Forked(child) => child.elapsed(),
            Worker::Forkless(job) => job.elapsed(),
        }
    }

    fn progress(&mut self) -> Progress {
        match self {
            Worker::Forked(child) => child.progress(),
            Worker::Forkless(job) => job.progress(),
        }
    }

    fn try_wait(&mut self) -> Result<Option<ChildExit>, ForkError> {
        match self {
            Worker::Forked(child) => child.try_wait(),
            Worker::Forkless(job) => Ok(job.try_wait()),
        }
    }

    fn failure(&mut self) -> Option<String> {
        match self {
            Worker::Forked(child) => child.failure().map(str::to_owned),
            Worker::Forkless(job) => job.failure(),
        }
    }

    fn kill_and_reap(&mut self) {
        match self {
            Worker::Forked(child) => {
                let _ = child.kill_and_reap();
            }
            Worker::Forkless(job) => {
                job.abandon();
            }
        }
    }
}

/// The running child.
pub(crate) struct RunningJob {
    worker: Worker,
    /// Its kind and what finishing it needs.
    pub(crate) work: Work,
    /// Keys in the dataset at the fork (`current_save_keys_total`).
    pub(crate) keys_total: u64,
    /// The child's latest report: keys written, copy-on-write size.
    pub(crate) progress: Progress,
    /// Largest copy-on-write size seen (`current_cow_peak`).
    pub(crate) peak_cow: u64,
}

impl RunningJob {
    /// The child's process id.
    pub(crate) fn pid(&self) -> i32 {
        self.worker.pid()
    }

    /// How long the child has run, in whole seconds.
    pub(crate) fn seconds(&self) -> u64 {
        self.worker.elapsed().as_secs()
    }

    /// The forkless snapshot this job runs, if it is one.
    pub(crate) fn forkless_mut(&mut self) -> Option<&mut ForklessJob> {
        match &mut self.worker {
            Worker::Forkless(job) => Some(job),
            Worker::Forked(_) => None,
        }
    }

    /// The forkless snapshot this job runs, if it is one, read-only.
    pub(crate) fn forkless(&self) -> Option<&ForklessJob> {
        match &self.worker {
            Worker::Forkless(job) => Some(job),
            Worker::Forked(_) => None,
        }
    }

    /// Whether the job forked a child.
    pub(crate) fn forked(&self) -> bool {
        matches!(self.worker, Worker::Forked(_))
    }

    /// Whether it is a job of `kind`.
    pub(crate) fn is(&self, kind: JobKind) -> bool {
        self.work.kind() == kind
    }
}

/// The fork statistics `INFO stats` reports.
#[derive(Debug, Default)]
pub(crate) struct ForkStats {
    /// `latest_fork_usec`.
    pub(crate) latest_fork_usec: u64,
    /// `total_forks`.
    pub(crate) total_forks: u64,
}

/// The job slot and its schedule.
pub(crate) struct Jobs {
    /// The child running now.
    pub(crate) running: Option<RunningJob>,
    /// When jobs start.
    pub(crate) scheduler: Scheduler,
    /// Fork statistics over all kinds.
    pub(crate) forks: ForkStats,
    /// The method `BGSAVE FORK|FORKLESS` asked for the save it requested.
    pub(crate) next_save_method: Option<crate::persistence::save::SnapshotMethod>,
}

impl Jobs {
    /// No job, with the rules of `policy`; the dataset counts as saved now.
    pub(crate) fn new(policy: Policy) -> Jobs {
        Jobs {
            running: None,
            scheduler: Scheduler::new(policy, unix_ms()),
            forks: ForkStats::default(),
            next_save_method: None,
        }
    }

    /// The running forkless snapshot, if the job is one.
    pub(crate) fn forkless_mut(&mut self) -> Option<&mut ForklessJob> {
        self.running.as_mut().and_then(RunningJob::forkless_mut)
    }

    /// The running job if it is of `kind`.
    pub(crate) fn running(&self, kind: JobKind) -> Option<&RunningJob> {
        self.running.as_ref().filter(|job| job.is(kind))
    }
}

/// The temporary file process `pid` writes a snapshot into before renaming it over `target`
/// (in the same directory, as Redis names it).
pub(crate) fn temp_rdb_path(target: &Path, pid: u32) -> PathBuf {
    target.with_file_name(format!("temp-{pid}.rdb"))
}

/// The temporary base an AOF rewrite of process `pid` writes into the AOF directory.
pub(crate) fn temp_rewrite_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("temp-rewriteaof-bg-{pid}.aof"))
}

/// Forks a child running `task` (the one place the server forks).
///
/// Called only between two commands, from the event-loop thread that owns the keyspace: no
/// mutation is half done, and `task` only reads the keyspace and writes files with blocking
/// I/O.
pub(crate) fn fork(task: impl FnOnce(&mut Reporter) -> i32) -> Result<Child, ForkError> {
    // SAFETY: see above. The event-loop thread is the only one touching the keyspace; the other
    // threads (fsync, verification) share no lock with what the child runs.
    unsafe { amber_snapshot::spawn(task) }
}

impl Server {
    /// Whether a background job (a forked child or a forkless snapshot) runs.
    pub(crate) fn has_active_child(&self) -> bool {
        self.jobs.running.is_some()
    }

    /// Pauses hash-table resizes and access-record updates while a child shares the
    /// keyspace's pages (see [`amber_keyspace::pause_resizes`] and
    /// [`amber_keyspace::freeze_access`]); called after every fork and reap. A forkless
    /// snapshot shares no page: it needs neither.
    pub(crate) fn update_resize_policy(&mut self) {
        let forked = self.jobs.running.as_ref().is_some_and(RunningJob::forked);
        self.aof.set_child_active(forked);
        amber_keyspace::pause_resizes(forked);
        amber_keyspace::freeze_access(forked);
    }

    /// Records a child just forked for `work`.
    pub(crate) fn job_started(&mut self, child: Child, work: Work) {
        self.jobs.forks.latest_fork_usec = child.fork_time().as_micros() as u64;
        self.latency_sample("fork", child.fork_time());
        self.jobs.forks.total_forks += 1;
        self.job_running(Worker::Forked(child), work);
    }

    /// Records a forkless snapshot just begun for `work`, and wakes the task that walks it.
    pub(crate) fn forkless_started(&mut self, job: ForklessJob, work: Work) {
        self.latency_sample("forkless-start", job.start_time());
        self.job_running(Worker::Forkless(job), work);
        self.forkless_wake.notify_one();
    }

    fn job_running(&mut self, worker: Worker, work: Work) {
        let now = match work.kind() {
            JobKind::Backup => self.backup.now_ms(),
            _ => unix_ms(),
        };
        self.jobs.scheduler.started(work.kind(), now);
        self.jobs.running = Some(RunningJob {
            worker,
            work,
            keys_total: self.keyspace.key_count() as u64,
            progress: Progress::default(),
            peak_cow: 0,
        });
        self.update_resize_policy();
    }

    /// The rules of the scheduler, from the configuration.
    pub(crate) fn job_policy(&self) -> Policy {
        Policy {
            save_points: crate::persistence::rdb::save_points(self.config.get("save")),
            auto_rewrite_percentage: self.config.get_i64("auto-aof-rewrite-percentage"),
            auto_rewrite_min_size: self.config.get_i64("auto-aof-rewrite-min-size").max(0) as u64,
            backup_interval_ms: self.config.get_i64("backup-interval").max(0) * 1000,
        }
    }

    /// From the cron: samples the running child and reaps it when it is done, then starts
    /// what the scheduler decides.
    pub(crate) fn run_jobs(&mut self) {
        self.reap_job();
        self.start_scheduled_job();
        self.update_resize_policy();
    }

    fn reap_job(&mut self) {
        let Some(job) = self.jobs.running.as_mut() else {
            return;
        };
        // Measured, not estimated: the child reports its private dirty pages, which are what
        // copy-on-write duplicated.
        job.progress = job.worker.progress();
        job.peak_cow = job.peak_cow.max(job.progress.cow_bytes);
        let exit = match job.worker.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => return,
            Err(error) => {
                warning!("{error}");
                return;
            }
        };
        let Some(mut job) = self.jobs.running.take() else {
            return;
        };
        let (pid, seconds, peak_cow) = (job.pid(), job.worker.elapsed(), job.peak_cow);
        let exit = Ended {
            exit,
            failure: job.worker.failure(),
        };
        if !job.forked() {
            // A failed forkless snapshot leaves its capture to finish marking entries.
            self.keyspace.abandon_capture();
            self.forkless_wake.notify_one();
        }
        match job.work {
            Work::Save { dirty_at_fork } => {
                self.finish_bgsave(exit, pid, dirty_at_fork, seconds, peak_cow);
            }
            Work::ReplicaSync => self.finish_replica_sync(exit),
            Work::Rewrite(rewrite) => self.finish_rewrite(exit, rewrite, seconds, peak_cow),
            Work::Backup(backup) => self.finish_backup_child(exit, backup),
        }
    }

    fn start_scheduled_job(&mut self) {
        let backup_clock_ms = self.backup_clock_for_schedule();
        let inputs = Inputs {
            now_ms: unix_ms(),
            dirty: self.dirty,
            aof_sizes: self
                .aof
                .is_on()
                .then(|| (self.aof.current_size(), self.aof.rewrite_base_size)),
            backup_clock_ms,
        };
        let tick = self.jobs.scheduler.tick(&inputs);
        if let Some(minutes) = tick.rewrite_backoff_minutes {
            warning!(
                "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {minutes} minutes"
            );
        }
        let Some((kind, reason)) = tick.start else {
            return;
        };
        match (kind, reason) {
            (JobKind::Save, Reason::SavePoint { seconds, changes }) => {
                notice!("{changes} changes in {seconds} seconds. Saving...");
            }
            (JobKind::AofRewrite, Reason::AofGrowth { percent }) => {
                notice!("Starting automatic rewriting of AOF on {percent}% growth");
            }
            _ => {}
        }
        let failed = match kind {
            JobKind::Save => self.fork_bgsave().is_err(),
            JobKind::AofRewrite => self.fork_rewrite().is_err(),
            JobKind::Backup => self.fork_scheduled_backup(reason).is_err(),
        };
        if failed {
            // The failure is logged and counted by the kind; the scheduler must not consider
            // it running, nor queued (a failed fork is retried by its own rules).
            self.jobs.scheduler.set_queued(kind, false);
        }
    }

    /// Kills the running child (shutdown, FLUSHALL, a full sync) and removes what it was
    /// writing; the files in use are untouched.
    pub(crate) fn kill_job(&mut self) {
        let Some(job) = self.jobs.running.as_ref() else {
            return;
        };
        match (&job.work, job.forked()) {
            (Work::Save { .. } | Work::ReplicaSync, true) => {
                warning!("Killing the background saving child {}", job.pid());
            }
            (Work::Rewrite(_), true) => {
                warning!("There is a child rewriting the AOF. Killing it!");
            }
            (Work::Backup(_), true) => warning!("Killing the backup child {}", job.pid()),
            (Work::Save { .. } | Work::ReplicaSync, false) => {
                warning!("Stopping the forkless background save");
            }
            (Work::Rewrite(_), false) => warning!("Stopping the forkless AOF rewrite"),
            (Work::Backup(_), false) => warning!("Stopping the forkless backup"),
        }
        self.kill_running_job();
    }

    /// Kills a running AOF rewrite, as turning AOF off (or on again) does, with Redis's log
    /// line for it; other children are left alone.
    pub(crate) fn kill_aof_rewrite(&mut self) {
        if let Some(job) = self.jobs.running(JobKind::AofRewrite) {
            match job.forked() {
                true => notice!("Killing running AOF rewrite child: {}", job.pid()),
                false => notice!("Stopping the forkless AOF rewrite"),
            }
            self.kill_running_job();
        }
    }

    /// [`Server::kill_job`] without its log line.
    fn kill_running_job(&mut self) {
        let Some(job) = self.jobs.running.take() else {
            return;
        };
        let pid = job.pid();
        let mut job = job;
        job.worker.kill_and_reap();
        if !job.forked() {
            self.keyspace.abandon_capture();
            self.forkless_wake.notify_one();
        }
        self.jobs.scheduler.cancelled(job.work.kind());
        match job.work {
            Work::Save { .. } => {
                remove_leftover(&temp_rdb_path(&self.rdb_file(), pid as u32));
                self.replication.snapshot_done(false, &self.rdb_file());
            }
            Work::ReplicaSync => self.replication.replicas.socket_snapshot_done(false),
            Work::Rewrite(rewrite) => remove_leftover(&rewrite.temp),
            Work::Backup(backup) => {
                let _ = std::fs::remove_dir_all(&backup.staging);
            }
        }
        self.update_resize_policy();
    }

    /// Kills the running child if it is a diskless transfer to replicas.
    pub(crate) fn kill_replica_sync(&mut self) {
        self.kill_job_if(|work| matches!(work, Work::ReplicaSync));
    }

    /// Kills the running child if it is a BGSAVE writing a file.
    pub(crate) fn kill_bgsave(&mut self) {
        self.kill_job_if(|work| matches!(work, Work::Save { .. }));
    }

    fn kill_job_if(&mut self, which: impl Fn(&Work) -> bool) {
        if self
            .jobs
            .running
            .as_ref()
            .is_some_and(|job| which(&job.work))
        {
            self.kill_job();
        }
    }

    /// Kills the running child if it is of `kind`.
    pub(crate) fn kill_job_of(&mut self, kind: JobKind) {
        if self.jobs.running(kind).is_some() {
            self.kill_job();
        }
    }
}

/// Removes a child's temporary file (a failed or killed child; the real file is untouched).
pub(crate) fn remove_leftover(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// How a child ended, with the reason it gave for failing ([`Reporter::fail`]).
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    /// Its exit code or signal.
    pub exit: ChildExit,
    /// What it said went wrong, if it said.
    pub failure: Option<String>,
}

impl Ended {
    /// Whether the child did its work.
    pub(crate) fn success(&self) -> bool {
        self.exit.success()
    }

    /// Why the child failed, as a log or error text: its own reason, or its exit.
    pub(crate) fn describe(&self) -> String {
        match (&self.failure, self.exit) {
            (Some(reason), ChildExit::Exited(_)) => reason.clone(),
            (_, exit) => describe_exit(exit),
        }
    }
}

/// Runs `work` in a forked child: 0 on success; on failure the reason goes to the parent
/// through `reporter`, prefixed with `context` (Redis's wording of the child's log line).
pub(crate) fn child_result<T>(
    reporter: &mut Reporter,
    context: &str,
    result: std::io::Result<T>,
) -> i32 {
    match result {
        Ok(_) => 0,
        Err(error) => {
            reporter.fail(&format!("{context}: {}", crate::log::os_error(&error)));
            1
        }
    }
}

/// What `ChildExit` says as a log or error text.
pub(crate) fn describe_exit(exit: ChildExit) -> String {
    match exit {
        ChildExit::Exited(code) => format!("the child exited with code {code}"),
        ChildExit::Signaled(signal) => format!("the child was killed by signal {signal}"),
    }
}
