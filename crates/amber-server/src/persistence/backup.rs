//! Scheduled backups: every `backup-interval` seconds (or on `BACKUP NOW`) a forked child
//! writes a point-in-time copy into `backup-dir` — an RDB snapshot, or with AOF on the
//! manifest's files hard-linked/copied at one manifest version with the incr files cut at the
//! length they had at the fork — plus the key count and `DEBUG DIGEST` at that moment. A
//! background thread then verifies it (full parse and checksum, `amber_backup::finalize`),
//! prunes by the retention policy and, every `backup-ship-interval`, ships the directory with
//! rsync. Failures are logged and shown in `INFO backup`; they never touch serving clients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amber_backup::catalog::Meta;
use amber_backup::catalog::finalize_with_key;
use amber_backup::crypto::BackupKey;
use amber_backup::ship::{Remote, ship};
use amber_backup::{Backup, Catalog, Kind, Policy, plan};
use amber_snapshot::schedule::{Admission, JobKind, Reason};

use crate::persistence::forkless::{AfterImage, Encoding, ForklessJob, Output, Target};
use crate::persistence::jobs::{Ended, Work, child_result, fork};
use crate::persistence::save::SnapshotMethod;
use crate::server::{Server, unix_ms};
use crate::{notice, warning};

/// The outcome of one backup, as `BACKUP NOW` replies it (kept, and cloned for every waiting
/// client, so the failure is its message).
pub(crate) type Outcome = Result<Backup, String>;

/// Why a backup could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupStartError {
    /// `backup-dir` is empty.
    #[error("backup-dir is not set")]
    NotConfigured,
    /// The staging directory could not be created.
    #[error("can't create {path}: {source}")]
    Staging {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The fork failed.
    #[error("can't fork the backup: {0}")]
    Fork(#[source] amber_snapshot::ForkError),
    /// A forkless backup's writer thread could not start.
    #[error("can't start the backup's writer: {0}")]
    Writer(#[source] std::io::Error),
    /// `backup-encryption-key-file` could not be read.
    #[error("{0}")]
    Key(String),
}

/// What a backup job needs once its child ends.
pub(crate) struct BackupJob {
    /// The directory the child writes into (renamed into the catalog once verified).
    pub(crate) staging: PathBuf,
    kind: Kind,
    seq: u64,
    /// The snapshot's time, which names the backup.
    time_ms: i64,
    started: Instant,
}

/// Backup state for the cron, `BACKUP` and `INFO backup`.
#[derive(Default)]
pub(crate) struct BackupState {
    /// The thread verifying (then pruning) the last written backup.
    verifying: Option<(u64, Instant, JoinHandle<Outcome>)>,
    /// The thread shipping backups.
    shipping: Option<JoinHandle<Result<String, String>>>,
    /// Sequence number of the last backup started.
    pub sequence: u64,
    /// Outcomes by sequence number (for clients waiting in `BACKUP NOW`).
    pub finished: HashMap<u64, Outcome>,
    /// Clients waiting in `BACKUP NOW`.
    pub waiters: Vec<u64>,
    /// Backup clock time of the last ship (ms).
    last_ship_ms: Option<i64>,
    /// The last finished backup: clock time, outcome, seconds taken.
    pub last: Option<(i64, Outcome, f64)>,
    /// The last ship: clock time and outcome.
    pub last_ship: Option<(i64, Result<String, String>)>,
    /// Verified backups kept after the last prune.
    pub kept: usize,
    /// `DEBUG BACKUP-CLOCK-OFFSET`: added to the clock the scheduler, ids and retention use.
    pub clock_offset_ms: i64,
}

impl BackupState {
    /// The backup clock: real time plus the test offset.
    pub(crate) fn now_ms(&self) -> i64 {
        unix_ms() + self.clock_offset_ms
    }
}

/// `backup-*` settings.
struct BackupSettings {
    dir: PathBuf,
    policy: Policy,
    remote: String,
    ship_interval_ms: i64,
    s3: amber_backup::s3::S3Settings,
    remote_policy: Policy,
    key_file: String,
}

impl Server {
    fn backup_settings(&self) -> Option<BackupSettings> {
        let dir = self.config.get("backup-dir");
        if dir.is_empty() {
            return None;
        }
        Some(BackupSettings {
            dir: PathBuf::from(dir),
            policy: Policy {
                keep_hourly_hours: self.config.get_i64("backup-keep-hourly").max(0) as u64,
                keep_daily_days: self.config.get_i64("backup-keep-daily").max(0) as u64,
            },
            remote: self.config.get("backup-remote").to_string(),
            ship_interval_ms: self.config.get_i64("backup-ship-interval").max(0) * 1000,
            s3: amber_backup::s3::S3Settings {
                endpoint: self.config.get("backup-s3-endpoint").to_string(),
                region: self.config.get("backup-s3-region").to_string(),
                path_style: self.config.get("backup-s3-path-style") == "yes",
            },
            key_file: self.config.get("backup-encryption-key-file").to_string(),
            remote_policy: Policy {
                keep_hourly_hours: self.config.get_i64("backup-remote-keep-hourly").max(0) as u64,
                keep_daily_days: self.config.get_i64("backup-remote-keep-daily").max(0) as u64,
            },
        })
    }

    /// Starts a backup now (or joins the running one); returns its sequence number.
    pub(crate) fn start_backup(&mut self) -> Result<u64, BackupStartError> {
        let Some(settings) = self.backup_settings() else {
            return Err(BackupStartError::NotConfigured);
        };
        match self.jobs.scheduler.request(JobKind::Backup, true) {
            Admission::AlreadyRunning => Ok(self.backup.sequence),
            Admission::Queued | Admission::Busy(_) => {
                self.backup.sequence += 1;
                Ok(self.backup.sequence)
            }
            Admission::Start => {
                self.backup.sequence += 1;
                self.fork_backup(&settings.dir)
                    .map(|()| self.backup.sequence)
            }
        }
    }

    /// Starts the backup the scheduler decided on: a queued `BACKUP NOW`, or the interval's.
    pub(crate) fn fork_scheduled_backup(&mut self, reason: Reason) -> Result<(), BackupStartError> {
        let Some(settings) = self.backup_settings() else {
            return Err(BackupStartError::NotConfigured);
        };
        if reason == Reason::BackupDue && self.keyspace.key_count() == 0 {
            // Nothing to keep: the schedule moves on by one interval (BACKUP NOW still backs
            // up an empty dataset if asked).
            crate::verbose!("Scheduled backup skipped: the dataset is empty");
            let now = self.backup.now_ms();
            self.jobs.scheduler.set_last_backup(Some(now));
            return Ok(());
        }
        if reason == Reason::BackupDue {
            self.backup.sequence += 1;
        }
        self.fork_backup(&settings.dir)
    }

    /// The backup clock when backups are configured (the scheduler's input); on first use,
    /// the schedule continues from the newest backup already in the directory.
    pub(crate) fn backup_clock_for_schedule(&mut self) -> Option<i64> {
        let settings = self.backup_settings()?;
        if !self.jobs.scheduler.knows_last_backup() {
            // Once per process, before its first backup: what a killed server left behind.
            for path in
                amber_backup::remove_abandoned_staging(&settings.dir, Some(std::process::id()))
            {
                notice!(
                    "Removed {}, left by a backup that never finished",
                    path.display()
                );
            }
            let newest = Catalog::open(&settings.dir)
                .ok()
                .and_then(|c| c.backups.last().map(|b| b.time_ms))
                .unwrap_or(i64::MIN / 2);
            self.jobs.scheduler.set_last_backup(Some(newest));
        }
        Some(self.backup.now_ms())
    }

    fn fork_backup(&mut self, backup_dir: &Path) -> Result<(), BackupStartError> {
        let seq = self.backup.sequence;
        let time_ms = self.backup.now_ms();
        for path in amber_backup::remove_abandoned_staging(backup_dir, None) {
            notice!(
                "Removed {}, left by a backup that never finished",
                path.display()
            );
        }
        let staging = amber_backup::staging_dir(backup_dir, seq, std::process::id());
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|source| BackupStartError::Staging {
            path: staging.display().to_string(),
            source,
        })?;
        let aof_copy = self.aof_copy_plan();
        let kind = if aof_copy.is_some() {
            Kind::Aof
        } else {
            Kind::Rdb
        };
        let options = self.rdb_options();
        let key = match load_key(self.config.get("backup-encryption-key-file")) {
            Ok(key) => key,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staging);
                let now = self.backup.now_ms();
                self.jobs.scheduler.start_failed(JobKind::Backup, now);
                self.finish_backup(seq, Err(error.clone()), 0.0);
                return Err(BackupStartError::Key(error));
            }
        };
        let job = BackupJob {
            staging: staging.clone(),
            kind,
            seq,
            time_ms,
            started: Instant::now(),
        };
        if self.snapshot_method() == SnapshotMethod::Forkless {
            return self.start_forkless_backup(job, aof_copy, options, key);
        }
        let keyspace = &self.keyspace;
        let child_staging = staging.clone();
        let spawned = fork(move |reporter| {
            // With a key, every file is sealed as it is written: nothing plain on disk.
            let written = match (&aof_copy, &key) {
                (Some(plan), _) => copy_aof(plan, &child_staging, key.as_ref()),
                (None, None) => crate::persistence::rdb::write_snapshot(
                    keyspace,
                    &child_staging.join("dump.rdb"),
                    options,
                    false,
                    reporter,
                )
                .map(|_| ()),
                (None, Some(key)) => write_sealed_rdb(
                    keyspace,
                    &child_staging.join("dump.rdb.age"),
                    key,
                    options,
                    reporter,
                ),
            };
            let meta = Meta {
                time_ms,
                keys: keyspace.key_count() as u64,
                digest: amber_keyspace::dataset_digest(keyspace).hex(),
            };
            let written = written.and_then(|()| meta.write(&child_staging));
            child_result(reporter, "Write error writing the backup", written)
        });
        match spawned {
            Ok(child) => {
                notice!(
                    "Backup {} ({}) started by pid {}",
                    amber_backup::time::backup_id(time_ms),
                    kind.name(),
                    child.pid()
                );
                self.job_started(child, Work::Backup(job));
                Ok(())
            }
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staging);
                let now = self.backup.now_ms();
                self.jobs.scheduler.start_failed(JobKind::Backup, now);
                self.finish_backup(seq, Err(format!("fork: {error}")), 0.0);
                Err(BackupStartError::Fork(error))
            }
        }
    }

    /// Starts a forkless backup (`bgsave-method forkless`): the writer thread writes the
    /// capture to `dump.rdb` (or, with AOF on, only computes its digest and then copies the
    /// AOF files up to their lengths now) and writes `meta`, all in the staging directory.
    fn start_forkless_backup(
        &mut self,
        job: BackupJob,
        aof_copy: Option<AofCopy>,
        options: crate::persistence::rdb::SaveOptions,
        key: Option<BackupKey>,
    ) -> Result<(), BackupStartError> {
        let (staging, time_ms) = (job.staging.clone(), job.time_ms);
        let rdb = aof_copy.is_none();
        // The writer writes a plain RDB (finalize seals it once verified); AOF files are
        // sealed as they are copied.
        let then: AfterImage = Box::new(move |image| {
            if let Some(plan) = &aof_copy {
                copy_aof(plan, &staging, key.as_ref())?;
            }
            let meta = Meta {
                time_ms,
                keys: image.keys,
                digest: image.digest.unwrap_or_default().hex(),
            };
            meta.write(&staging)
        });
        let target = Target {
            output: match rdb {
                true => Output::File {
                    temp: job.staging.join("dump.rdb"),
                    install_at: None,
                },
                false => Output::Nothing,
            },
            key_delay: Duration::from_micros(options.key_delay_us),
            encoding: Encoding::Rdb {
                options,
                aof_base: false,
            },
            context: "Write error writing the backup",
            digest: true,
            then: Some(then),
        };
        match ForklessJob::start(self, target) {
            Ok(forkless) => {
                notice!(
                    "Backup {} ({}) started (forkless)",
                    amber_backup::time::backup_id(time_ms),
                    job.kind.name()
                );
                self.forkless_started(forkless, Work::Backup(job));
                Ok(())
            }
            Err(error) => {
                let _ = std::fs::remove_dir_all(&job.staging);
                let now = self.backup.now_ms();
                self.jobs.scheduler.start_failed(JobKind::Backup, now);
                self.finish_backup(job.seq, Err(format!("writer: {error}")), 0.0);
                Err(BackupStartError::Writer(error))
            }
        }
    }

    /// With AOF on: the files of the manifest and the length each has now (the buffer is
    /// written first, so the lengths cover every write done so far).
    fn aof_copy_plan(&mut self) -> Option<AofCopy> {
        if !self.aof.is_on() || self.aof.waiting_first_incr.is_some() {
            return None;
        }
        self.aof.flush().ok()?;
        let paths = crate::persistence::aof::AofPaths::from_config(&self.config);
        let manifest = self.aof.manifest.clone();
        let open = manifest.last_incr().map(|info| info.name.clone());
        let files = manifest
            .load_order()
            .map(|info| {
                let path = paths.file(&info.name);
                // The open file may be longer on disk than its content (aof-preallocate).
                let len = match self.aof.open_file_len() {
                    Some(len) if open.as_deref() == Some(info.name.as_str()) => len,
                    _ => std::fs::metadata(&path).map_or(0, |m| m.len()),
                };
                (info.name.clone(), path, len)
            })
            .collect();
        let mut copied = manifest;
        copied.history.clear();
        Some(AofCopy {
            dir_name: self.config.get("appenddirname").to_string(),
            prefix: paths.prefix,
            manifest: copied,
            files,
        })
    }

    /// Runs from the cron: collects the verification and ship threads, and ships when due.
    pub(crate) fn backup_cron(&mut self) {
        let Some(settings) = self.backup_settings() else {
            return;
        };
        self.collect_verification();
        self.collect_ship();
        let now = self.backup.now_ms();
        let ship_due = !settings.remote.is_empty()
            && self.backup.shipping.is_none()
            && self.backup.verifying.is_none()
            && self
                .backup
                .last_ship_ms
                .is_none_or(|at| now - at >= settings.ship_interval_ms);
        if ship_due && self.backup.kept > 0 {
            self.backup.last_ship_ms = Some(now);
            self.backup.shipping = Some(std::thread::spawn(move || ship_backups(&settings, now)));
        }
    }

    /// A backup child ended: a failed one is recorded; a written one goes to the verify
    /// thread (which then prunes by the retention policy).
    pub(crate) fn finish_backup_child(&mut self, exit: Ended, done: BackupJob) {
        let clock = self.backup.now_ms();
        let settings = self.backup_settings();
        let (Some(settings), true) = (settings, exit.success()) else {
            let _ = std::fs::remove_dir_all(&done.staging);
            let seconds = done.started.elapsed().as_secs_f64();
            self.jobs.scheduler.finished(JobKind::Backup, false, clock);
            self.finish_backup(
                done.seq,
                Err(format!("the backup child failed: {}", exit.describe())),
                seconds,
            );
            return;
        };
        self.jobs.scheduler.finished(JobKind::Backup, true, clock);
        notice!(
            "Backup {}: written with its digest by the child in {:.3} seconds; verifying it",
            amber_backup::time::backup_id(done.time_ms),
            done.started.elapsed().as_secs_f64()
        );
        let (dir, policy, now) = (settings.dir.clone(), settings.policy, clock);
        let key_file = settings.key_file.clone();
        let thread = std::thread::spawn(move || -> Outcome {
            let mut catalog = Catalog::open(&dir).map_err(|e| e.to_string())?;
            let key = load_key(&key_file).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&done.staging);
            })?;
            let backup = finalize_with_key(
                &mut catalog,
                &done.staging,
                done.kind,
                key.as_ref(),
                &mut (),
            )
            .map_err(|e| e.to_string())?;
            let plan = plan(&catalog.backups, now, policy);
            for id in plan.delete {
                catalog.delete(&id).map_err(|e| e.to_string())?;
            }
            match &backup.status {
                amber_backup::Status::Verified => Ok(backup),
                amber_backup::Status::Failed(reason) => Err(format!(
                    "backup {} failed verification: {reason}",
                    backup.id
                )),
            }
        });
        self.backup.verifying = Some((done.seq, done.started, thread));
    }

    fn collect_verification(&mut self) {
        let finished = self
            .backup
            .verifying
            .as_ref()
            .is_some_and(|(_, _, thread)| thread.is_finished());
        if !finished {
            return;
        }
        let Some((seq, started, thread)) = self.backup.verifying.take() else {
            return;
        };
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err("the verification thread panicked".into()));
        self.jobs.scheduler.backup_verified();
        self.finish_backup(seq, outcome, started.elapsed().as_secs_f64());
    }

    fn collect_ship(&mut self) {
        let finished = self
            .backup
            .shipping
            .as_ref()
            .is_some_and(JoinHandle::is_finished);
        if !finished {
            return;
        }
        let Some(thread) = self.backup.shipping.take() else {
            return;
        };
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err("the ship thread panicked".into()));
        match &outcome {
            Ok(target) => notice!("Backups shipped to {target} and verified"),
            Err(error) => warning!("Shipping backups failed: {error}"),
        }
        self.backup.last_ship = Some((self.backup.now_ms(), outcome));
    }

    fn finish_backup(&mut self, seq: u64, outcome: Outcome, seconds: f64) {
        match &outcome {
            Ok(backup) => notice!(
                "Backup {} written and verified: {} keys, {} bytes, {:.3} seconds",
                backup.id,
                backup.keys,
                backup.size,
                seconds
            ),
            Err(error) => warning!("Backup failed: {error}"),
        }
        if let Some(settings) = self.backup_settings()
            && let Ok(catalog) = Catalog::open(&settings.dir)
        {
            self.backup.kept = catalog.backups.iter().filter(|b| b.is_good()).count();
        }
        self.backup.last = Some((self.backup.now_ms(), outcome.clone(), seconds));
        self.backup.finished.insert(seq, outcome);
        if self.backup.finished.len() > 64 {
            let oldest = self.backup.finished.keys().min().copied();
            if let Some(oldest) = oldest {
                self.backup.finished.remove(&oldest);
            }
        }
        for id in std::mem::take(&mut self.backup.waiters) {
            if let Some(info) = self.clients.get(&id) {
                info.borrow().wake.notify_one();
            }
        }
    }
}

/// The `backup-encryption-key-file` key, if one is set.
pub(crate) fn load_key(path: &str) -> Result<Option<BackupKey>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    BackupKey::load(std::path::Path::new(path))
        .map(Some)
        .map_err(|error| format!("backup-encryption-key-file: {error}"))
}

/// On the ship thread: copies the backup directory to the remote. A bucket gets the verified
/// backups its own retention keeps, and is then pruned by it; a path or `ssh://` remote
/// mirrors the directory with rsync. Returns what happened, for the log and `INFO backup`.
fn ship_backups(settings: &BackupSettings, now_ms: i64) -> Result<String, String> {
    if amber_backup::s3::parse_url(&settings.remote)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        let remote = Remote::parse(&settings.remote).map_err(|e| e.to_string())?;
        return ship(&settings.dir, &remote, false)
            .map(|report| report.target)
            .map_err(|e| e.to_string());
    }
    let bucket =
        amber_backup::s3::open(&settings.remote, &settings.s3).map_err(|e| e.to_string())?;
    let catalog = Catalog::open(&settings.dir).map_err(|e| e.to_string())?;
    let report = bucket
        .ship(&catalog, settings.remote_policy, now_ms, &mut ())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} ({} uploaded, {} bytes; {} deleted; {} kept)",
        bucket.describe(),
        report.uploaded.len(),
        report.bytes,
        report.deleted.len(),
        report.kept
    ))
}

/// What the child copies for an AOF backup.
struct AofCopy {
    dir_name: String,
    prefix: String,
    manifest: amber_aof::Manifest,
    files: Vec<(String, PathBuf, u64)>,
}

/// In the child: writes the RDB snapshot encrypted to `key` as `path`, and fsyncs it.
fn write_sealed_rdb(
    keyspace: &amber_keyspace::Keyspace,
    path: &Path,
    key: &BackupKey,
    options: crate::persistence::rdb::SaveOptions,
    reporter: &mut amber_snapshot::Reporter,
) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let sealed = key.seal(std::io::BufWriter::with_capacity(super::WRITE_BUFFER, file))?;
    let (_, sealed) =
        crate::persistence::rdb::write_rdb(keyspace, sealed, options, false, reporter)?;
    let file = sealed.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Copies the first `len` bytes of `from` into `to` encrypted to `key`, and fsyncs it.
fn copy_sealed(from: &Path, len: u64, to: &Path, key: &BackupKey) -> std::io::Result<()> {
    use std::io::Read;
    let mut input = std::fs::File::open(from)?.take(len);
    let file = std::fs::File::create(to)?;
    let mut sealed = key.seal(std::io::BufWriter::with_capacity(super::WRITE_BUFFER, file))?;
    let copied = std::io::copy(&mut input, &mut sealed)?;
    if copied != len {
        return Err(std::io::Error::other(format!(
            "{} is shorter than expected",
            from.display()
        )));
    }
    let file = sealed.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Copies an AOF at one manifest version, every file and the manifest encrypted to `key`.
fn copy_aof_sealed(plan: &AofCopy, dir: &Path, key: &BackupKey) -> std::io::Result<()> {
    use std::io::Write;
    for (name, path, len) in &plan.files {
        copy_sealed(path, *len, &dir.join(format!("{name}.age")), key)?;
    }
    let manifest = amber_aof::manifest::manifest_name(&plan.prefix);
    let file = std::fs::File::create(dir.join(format!("{manifest}.age")))?;
    let mut sealed = key.seal(file)?;
    sealed.write_all(plan.manifest.render().as_bytes())?;
    sealed.finish()?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// In the child: hard-links each file that will not grow (the base), copies the first `len`
/// bytes of the others, writes the manifest, and fsyncs everything; with a key, every file
/// is encrypted as it is copied.
fn copy_aof(plan: &AofCopy, staging: &Path, key: Option<&BackupKey>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let dir = staging.join(&plan.dir_name);
    std::fs::create_dir_all(&dir)?;
    if let Some(key) = key {
        copy_aof_sealed(plan, &dir, key)?;
        return std::fs::File::open(staging)?.sync_all();
    }
    let base = plan.manifest.base.as_ref().map(|b| b.name.as_str());
    for (name, path, len) in &plan.files {
        let target = dir.join(name);
        if Some(name.as_str()) == base && std::fs::hard_link(path, &target).is_ok() {
            continue;
        }
        let mut input = std::fs::File::open(path)?.take(*len);
        let mut output = std::fs::File::create(&target)?;
        let copied = std::io::copy(&mut input, &mut output)?;
        if copied != *len {
            return Err(std::io::Error::other(format!(
                "{name} is shorter than expected"
            )));
        }
        output.flush()?;
        output.sync_all()?;
    }
    amber_aof::manifest::persist(&dir, &plan.prefix, &plan.manifest)?;
    std::fs::File::open(staging)?.sync_all()
}
