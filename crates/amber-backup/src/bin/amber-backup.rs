//! `amber-backup`: manage Amber's backups with the server running or stopped, locally or in
//! an S3-compatible bucket.
//!
//! `list [--remote]`, `verify [ID] [--remote]`, `restore [ID] --dir DATA_DIR [--at UNIX_SECONDS]
//! [--from-remote]`, `prune [--dry-run]` and `ship [--remote REMOTE]`, each with
//! `--backup-dir DIR` or with the server's `--config redis.conf` (its `backup-dir`, relative to
//! its `dir`, and its `backup-remote` and `backup-s3-*` settings).
//!
//! Exit codes, for cron jobs and monitors: 0 done; 1 failed (I/O, refused, bad arguments to a
//! command); 2 usage error; 3 a backup failed verification (damaged); 4 the remote could not be
//! reached or refused the request (network, credentials, missing bucket); 5 an encrypted
//! backup's key is missing or is not the one it was encrypted to.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use amber_backup::bucket::{Bucket, Listing};
use amber_backup::crypto::BackupKey;
use amber_backup::restore::{RestoreOptions, restore};
use amber_backup::s3::{S3Settings, open};
use amber_backup::ship::{Remote, ship};
use amber_backup::time::{display, now_ms};
use amber_backup::verify::verify_with_key;
use amber_backup::{BackupError, Catalog, Policy, Progress, Status, plan};
use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};

const EXIT_FAILED: u8 = 1;
const EXIT_DAMAGED: u8 = 3;
const EXIT_REMOTE: u8 = 4;
const EXIT_KEY: u8 = 5;

#[derive(Parser)]
#[command(
    about = "List, verify, restore, prune and ship Amber backups",
    after_help = "Exit codes: 0 done, 1 failed, 2 usage, 3 a backup failed verification, 4 the remote could not be reached or refused, 5 an encrypted backup's key is missing or wrong"
)]
struct Cli {
    /// The backup directory (`backup-dir`); or give --config.
    #[arg(long, global = true)]
    backup_dir: Option<PathBuf>,
    /// The server's config file, to take `backup-dir` (and `dir`), `backup-remote` and the
    /// `backup-s3-*` settings from.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The remote (`backup-remote`): `s3://bucket/prefix`, a path, or `ssh://...`.
    #[arg(long, global = true)]
    remote_url: Option<String>,
    /// `backup-s3-endpoint`: an S3-compatible server's URL.
    #[arg(long, global = true)]
    s3_endpoint: Option<String>,
    /// `backup-s3-region`.
    #[arg(long, global = true)]
    s3_region: Option<String>,
    /// `backup-s3-path-style`: path-style requests.
    #[arg(long, global = true)]
    s3_path_style: bool,
    /// `backup-encryption-key-file`: the age identity that decrypts encrypted backups.
    #[arg(long, global = true)]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every backup: id, time, kind, size, keys, verification.
    List {
        /// The bucket's complete backups (and partial uploads) instead of the local ones.
        #[arg(long)]
        remote: bool,
    },
    /// Re-verifies one backup (or all): full parse, and the checksum against the catalog.
    Verify {
        /// The backup id (all when omitted).
        id: Option<String>,
        /// Downloads the bucket's backup(s) and verifies them in full.
        #[arg(long)]
        remote: bool,
    },
    /// Puts a backup in place of a stopped server's data (the replaced data is moved aside).
    Restore {
        /// The backup id (with --at, the newest backup before that time when omitted).
        id: Option<String>,
        /// The server's data directory (`dir`).
        #[arg(long)]
        dir: PathBuf,
        /// Point in time (Unix seconds): replay the AOF after the backup up to it.
        #[arg(long)]
        at: Option<i64>,
        /// Restore from the bucket (nothing local is needed).
        #[arg(long)]
        from_remote: bool,
        /// `dbfilename`.
        #[arg(long, default_value = "dump.rdb")]
        dbfilename: String,
        /// `appenddirname`.
        #[arg(long, default_value = "appendonlydir")]
        appenddirname: String,
        /// `appendfilename`.
        #[arg(long, default_value = "appendonly.aof")]
        appendfilename: String,
    },
    /// Deletes the backups the retention policy does not keep.
    Prune {
        /// Only show what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// `backup-keep-hourly`.
        #[arg(long, default_value_t = 48)]
        keep_hourly: u64,
        /// `backup-keep-daily`.
        #[arg(long, default_value_t = 30)]
        keep_daily: u64,
    },
    /// Writes a new age key file for `backup-encryption-key-file` (keep a copy off the machine:
    /// without it, encrypted backups cannot be restored).
    Keygen {
        /// Where to write it (created with mode 0600; never overwritten).
        path: PathBuf,
    },
    /// Copies the backups to the remote and verifies the copy; a bucket is then pruned by the
    /// remote retention policy.
    Ship {
        /// `s3://bucket/prefix`, a mounted path or `ssh://user@host[:port]/path`
        /// (`backup-remote`).
        #[arg(long)]
        remote: Option<String>,
        /// `backup-remote-keep-hourly` (buckets only).
        #[arg(long)]
        keep_hourly: Option<u64>,
        /// `backup-remote-keep-daily` (buckets only).
        #[arg(long)]
        keep_daily: Option<u64>,
    },
}

/// Draws `what: 45% (12.3 / 27.0 MB)` on a terminal's stderr.
struct TerminalProgress {
    enabled: bool,
}

impl Progress for TerminalProgress {
    fn update(&mut self, what: &str, done: u64, total: u64) {
        if self.enabled && total > 0 {
            eprint!(
                "\r{what}: {:>3}% ({:.1} / {:.1} MB)   ",
                done * 100 / total,
                done as f64 / 1e6,
                total as f64 / 1e6
            );
            if done >= total {
                eprintln!();
            }
        }
    }
}

/// A failure and the exit code that says what kind it is.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        let code = error
            .chain()
            .find_map(|cause| match cause.downcast_ref::<BackupError>() {
                Some(BackupError::Verification { .. }) => Some(EXIT_DAMAGED),
                Some(BackupError::Remote { .. }) => Some(EXIT_REMOTE),
                Some(BackupError::NeedsKey(_) | BackupError::WrongKey(_)) => Some(EXIT_KEY),
                _ => None,
            })
            .unwrap_or(EXIT_FAILED);
        Failure { code, error }
    }
}

impl From<BackupError> for Failure {
    fn from(error: BackupError) -> Failure {
        Failure::from(anyhow::Error::new(error))
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("amber-backup: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// What the command line and the config file say.
struct Settings {
    backup_dir: Option<PathBuf>,
    key: Option<BackupKey>,
    remote: Option<String>,
    s3: S3Settings,
    remote_policy: Policy,
}

impl Settings {
    fn from(cli: &Cli) -> anyhow::Result<Settings> {
        let file = match &cli.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let backup_dir = cli.backup_dir.clone().or_else(|| file.backup_dir());
        let text = |flag: &Option<String>, directive: &str| {
            flag.clone()
                .or_else(|| file.get(directive).map(str::to_string))
                .unwrap_or_default()
        };
        let number = |directive: &str, default: u64| {
            file.get(directive)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let key_file = cli
            .key_file
            .clone()
            .or_else(|| file.get("backup-encryption-key-file").map(PathBuf::from));
        let key = match key_file {
            Some(path) => Some(BackupKey::load(&path)?),
            None => None,
        };
        Ok(Settings {
            backup_dir,
            key,
            remote: cli
                .remote_url
                .clone()
                .or_else(|| file.get("backup-remote").map(str::to_string))
                .filter(|r| !r.is_empty()),
            s3: S3Settings {
                endpoint: text(&cli.s3_endpoint, "backup-s3-endpoint"),
                region: text(&cli.s3_region, "backup-s3-region"),
                path_style: cli.s3_path_style || file.get("backup-s3-path-style") == Some("yes"),
            },
            remote_policy: Policy {
                keep_hourly_hours: number("backup-remote-keep-hourly", 48),
                keep_daily_days: number("backup-remote-keep-daily", 365),
            },
        })
    }

    fn backup_dir(&self) -> anyhow::Result<&Path> {
        self.backup_dir.as_deref().ok_or_else(|| {
            anyhow!("give the backup directory with --backup-dir DIR or --config redis.conf")
        })
    }

    fn bucket(&self) -> anyhow::Result<Bucket> {
        let Some(remote) = &self.remote else {
            bail!("give the bucket with --remote-url s3://bucket/prefix or --config redis.conf");
        };
        Ok(open(remote, &self.s3)?.with_key(self.key.clone()))
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::from(&cli)?;
    let mut progress = TerminalProgress {
        enabled: std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::List { remote: true } => {
            let bucket = settings.bucket()?;
            let listing = bucket.list()?;
            print_header();
            for remote in &listing.complete {
                print_backup(&remote.backup);
            }
            for id in &listing.partial {
                println!("{id:<20} partial upload (no manifest): not restorable");
            }
        }
        Command::List { remote: false } => {
            let catalog = local_catalog(&settings)?;
            print_header();
            for backup in &catalog.backups {
                print_backup(backup);
            }
        }
        Command::Verify { id, remote: true } => verify_remote(&settings, id, &mut progress)?,
        Command::Verify { id, remote: false } => {
            let catalog = local_catalog(&settings)?;
            verify_local(&catalog, id, settings.key.as_ref(), &mut progress)?;
        }
        Command::Keygen { path } => {
            use std::os::unix::fs::OpenOptionsExt;
            let key = BackupKey::generate();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, key.file_text().as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} (public key {})", path.display(), key.public());
        }
        Command::Restore {
            id,
            dir,
            at,
            from_remote,
            dbfilename,
            appenddirname,
            appendfilename,
        } => {
            let options = RestoreOptions {
                data_dir: dir,
                dbfilename,
                appenddirname,
                appendfilename,
                // The whole second: backups and writes of that second are included.
                at_ms: at.map(|seconds| seconds * 1000 + 999),
                replay_from: None,
                key: settings.key.clone(),
            };
            if from_remote {
                restore_remote(&settings, id, &options, &mut progress)?;
            } else {
                let catalog = local_catalog(&settings)?;
                restore_from(&catalog, id.as_deref(), &options, &mut progress)?;
            }
        }
        Command::Prune {
            dry_run,
            keep_hourly,
            keep_daily,
        } => {
            let mut catalog = local_catalog(&settings)?;
            prune(&mut catalog, dry_run, keep_hourly, keep_daily)?;
        }
        Command::Ship {
            remote,
            keep_hourly,
            keep_daily,
        } => {
            let catalog = local_catalog(&settings)?;
            let remote = remote
                .or(settings.remote.clone())
                .ok_or_else(|| anyhow!("give --remote or a config with backup-remote"))?;
            if amber_backup::s3::parse_url(&remote)?.is_some() {
                let bucket = open(&remote, &settings.s3)?;
                let policy = Policy {
                    keep_hourly_hours: keep_hourly
                        .unwrap_or(settings.remote_policy.keep_hourly_hours),
                    keep_daily_days: keep_daily.unwrap_or(settings.remote_policy.keep_daily_days),
                };
                let report = bucket.ship(&catalog, policy, now_ms(), &mut progress)?;
                println!(
                    "shipped to {}: {} uploaded ({} bytes), {} deleted, {} kept; each object read back and checked",
                    bucket.describe(),
                    report.uploaded.len(),
                    report.bytes,
                    report.deleted.len(),
                    report.kept
                );
            } else {
                let remote = Remote::parse(&remote)?;
                let report = ship(&catalog.dir, &remote, progress.enabled)?;
                println!(
                    "shipped to {} ({} files transferred), verified by checksum",
                    report.target, report.transferred
                );
            }
        }
    }
    Ok(())
}

fn local_catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    Catalog::open(settings.backup_dir()?).context("opening the catalog")
}

fn print_header() {
    println!(
        "{:<20} {:<19} {:<4} {:>12} {:>10} verified",
        "id", "time (UTC)", "kind", "bytes", "keys"
    );
}

fn print_backup(b: &amber_backup::Backup) {
    let status = match &b.status {
        Status::Verified => "yes".to_string(),
        Status::Failed(reason) => format!("NO: {reason}"),
    };
    println!(
        "{:<20} {:<19} {:<4} {:>12} {:>10} {status}",
        b.id,
        display(b.time_ms),
        b.kind.name(),
        b.size,
        b.keys
    );
}

/// Verifies one local backup, or all; a damaged one makes the exit code 3.
fn verify_local(
    catalog: &Catalog,
    id: Option<String>,
    key: Option<&BackupKey>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let ids: Vec<String> = match id {
        Some(id) => vec![id],
        None => catalog.backups.iter().map(|b| b.id.clone()).collect(),
    };
    let mut failures = 0;
    for id in ids {
        let backup = catalog.get(&id)?.clone();
        let path = catalog.path_of(&id);
        let result = verify_with_key(&path, backup.kind, key, progress).and_then(|report| {
            if report.checksum == backup.checksum {
                Ok(report)
            } else {
                Err(BackupError::Verification {
                    id: id.clone(),
                    what: format!(
                        "checksum {} does not match the catalog's {}",
                        report.checksum, backup.checksum
                    ),
                })
            }
        });
        match result {
            Ok(report) => println!(
                "{id}: OK ({} bytes, checksum {})",
                report.size, report.checksum
            ),
            Err(error @ (BackupError::NeedsKey(_) | BackupError::WrongKey(_))) => {
                return Err(error.into());
            }
            Err(error) => {
                failures += 1;
                println!("{id}: FAILED: {error}");
            }
        }
    }
    verification_outcome(failures, "backup(s)")
}

/// Exit code 3 when any backup failed verification.
fn verification_outcome(failures: usize, what: &str) -> Result<(), Failure> {
    if failures == 0 {
        return Ok(());
    }
    Err(Failure {
        code: EXIT_DAMAGED,
        error: anyhow!("{failures} {what} failed verification"),
    })
}

/// A scratch directory for downloads, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(near: &Path) -> anyhow::Result<Scratch> {
        let path = near.join(format!(".amber-download-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Downloads the bucket's backup(s) and verifies each in full: every object against the
/// manifest's size and CRC-64, the parse, and the catalog checksum.
fn verify_remote(
    settings: &Settings,
    id: Option<String>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let bucket = settings.bucket()?;
    let listing = bucket.list()?;
    let ids: Vec<String> = match id {
        Some(id) => vec![id],
        None => listing
            .complete
            .iter()
            .map(|r| r.backup.id.clone())
            .collect(),
    };
    let scratch_parent = settings
        .backup_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&scratch_parent).context("creating the download directory")?;
    let mut failures = 0;
    for id in ids {
        let scratch = Scratch::new(&scratch_parent)?;
        match verify_one_remote(
            &bucket,
            &listing,
            &id,
            &scratch.0,
            settings.key.as_ref(),
            progress,
        ) {
            Ok(size) => println!("{id}: OK ({size} bytes, downloaded and verified)"),
            Err(BackupError::UnknownId(id)) => {
                return Err(anyhow!("no complete backup {id} in {}", bucket.describe()).into());
            }
            Err(
                error @ (BackupError::Remote { .. }
                | BackupError::NeedsKey(_)
                | BackupError::WrongKey(_)),
            ) => return Err(error.into()),
            Err(error) => {
                failures += 1;
                println!("{id}: FAILED: {error}");
            }
        }
    }
    verification_outcome(failures, "remote backup(s)")
}

fn verify_one_remote(
    bucket: &Bucket,
    listing: &Listing,
    id: &str,
    scratch: &Path,
    key: Option<&BackupKey>,
    progress: &mut dyn Progress,
) -> Result<u64, BackupError> {
    let catalog = bucket.fetch(listing, id, scratch, progress)?;
    let backup = catalog.get(id)?;
    let report = verify_with_key(&catalog.path_of(id), backup.kind, key, progress)?;
    if report.checksum != backup.checksum {
        return Err(BackupError::Verification {
            id: id.to_string(),
            what: format!(
                "checksum {} does not match the manifest's {}",
                report.checksum, backup.checksum
            ),
        });
    }
    Ok(report.size)
}

/// Restores from the bucket alone: the backup (given, or the newest complete one at or before
/// `--at`) is downloaded, checked and restored; with `--at`, the AOF archive's commands after
/// it are replayed up to that second.
fn restore_remote(
    settings: &Settings,
    id: Option<String>,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let bucket = settings.bucket()?;
    let listing = bucket.list()?;
    let id = match (id, options.at_ms) {
        (Some(id), _) => id,
        (None, Some(at)) => listing
            .complete
            .iter()
            .rev()
            .find(|r| r.backup.time_ms <= at && r.backup.kind == amber_backup::Kind::Aof)
            .map(|r| r.backup.id.clone())
            .ok_or_else(|| {
                anyhow!(
                    "no complete AOF backup in the bucket before that time (point-in-time recovery continues an AOF backup with the archive)"
                )
            })?,
        (None, None) => return Err(anyhow!("give a backup id or --at").into()),
    };
    std::fs::create_dir_all(&options.data_dir).context("creating the data directory")?;
    let scratch = Scratch::new(&options.data_dir)?;
    let catalog = bucket.fetch(&listing, &id, &scratch.0.join("backup"), progress)?;
    let mut options = options.clone();
    if options.at_ms.is_some() {
        let archive = scratch.0.join("archive");
        let fetched = catalog.path_of(&id);
        let plain = match &settings.key {
            Some(key) if amber_backup::crypto::is_encrypted(&fetched) => {
                Some(amber_backup::verify::Decrypted::of(&fetched, key)?)
            }
            _ => None,
        };
        let backup_aof = plain
            .as_ref()
            .map_or(fetched.clone(), |d| d.path().to_path_buf())
            .join("appendonlydir");
        let bytes = amber_backup::archive::assemble_after(&bucket, &backup_aof, &archive)?;
        println!(
            "fetched {bytes} bytes of archived AOF from {}",
            bucket.describe()
        );
        options.replay_from = Some(archive);
    }
    restore_from(&catalog, Some(&id), &options, progress)
}

fn restore_from(
    catalog: &Catalog,
    id: Option<&str>,
    options: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let report = restore(catalog, id, options, progress)?;
    println!(
        "restored {} ({}, {} keys, digest {}) into {}",
        report.backup.id,
        report.backup.kind.name(),
        report.backup.keys,
        report.backup.digest,
        options.data_dir.display()
    );
    if let Some(aside) = report.replaced_into {
        println!("the data it replaced is in {}", aside.display());
    }
    if options.at_ms.is_some() {
        println!(
            "replayed {} bytes of later AOF commands",
            report.replayed_bytes
        );
    }
    Ok(())
}

fn prune(
    catalog: &mut Catalog,
    dry_run: bool,
    keep_hourly: u64,
    keep_daily: u64,
) -> Result<(), Failure> {
    let policy = Policy {
        keep_hourly_hours: keep_hourly,
        keep_daily_days: keep_daily,
    };
    let plan = plan(&catalog.backups, now_ms(), policy);
    if !dry_run {
        // Directories of servers killed mid-backup.
        for path in amber_backup::remove_abandoned_staging(&catalog.dir, None) {
            println!("removed abandoned {}", path.display());
        }
    }
    for id in &plan.delete {
        if dry_run {
            println!("would delete {id}");
        } else {
            catalog.delete(id)?;
            println!("deleted {id}");
        }
    }
    println!(
        "{} kept, {} {}",
        plan.keep.len(),
        plan.delete.len(),
        if dry_run { "to delete" } else { "deleted" }
    );
    Ok(())
}

/// The directives of a server config file that `amber-backup` uses. The last line of a
/// directive wins, as in the server.
#[derive(Default)]
struct ConfigFile {
    values: std::collections::HashMap<String, String>,
}

impl ConfigFile {
    fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut values = std::collections::HashMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            values.insert(name.to_ascii_lowercase(), value.to_string());
        }
        Ok(ConfigFile { values })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `backup-dir`, joined to `dir` when relative (the server runs in `dir`).
    fn backup_dir(&self) -> Option<PathBuf> {
        let backup_dir = PathBuf::from(self.get("backup-dir")?);
        Some(match self.get("dir") {
            Some(dir) if backup_dir.is_relative() => Path::new(dir).join(backup_dir),
            _ => backup_dir,
        })
    }
}
