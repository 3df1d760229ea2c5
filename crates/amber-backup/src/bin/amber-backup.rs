//! `amber-backup`: manage Amber's backups with the server running or stopped.
//!
//! `list`, `verify [ID]`, `restore [ID] --dir DATA_DIR [--at UNIX_SECONDS]`,
//! `prune [--dry-run]` and `ship --remote REMOTE`, each with `--backup-dir DIR` or with the
//! server's `--config redis.conf` (its `backup-dir`, relative to its `dir`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use amber_backup::restore::{RestoreOptions, restore};
use amber_backup::ship::{Remote, ship};
use amber_backup::time::{display, now_ms};
use amber_backup::{Catalog, Policy, Progress, Status, plan, verify};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "List, verify, restore, prune and ship Amber backups")]
struct Cli {
    /// The backup directory (`backup-dir`); or give --config.
    #[arg(long, global = true)]
    backup_dir: Option<PathBuf>,
    /// The server's config file, to take `backup-dir` (and `dir`) from.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every backup: id, time, kind, size, keys, verification.
    List,
    /// Re-verifies one backup (or all): full parse, and the checksum against the catalog.
    Verify {
        /// The backup id (all when omitted).
        id: Option<String>,
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
    /// Copies the backup directory to another machine and verifies the copy.
    Ship {
        /// A mounted path or `ssh://user@host[:port]/path` (`backup-remote`).
        #[arg(long)]
        remote: String,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("amber-backup: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let backup_dir = match (cli.backup_dir, &cli.config) {
        (Some(dir), _) => dir,
        (None, Some(config)) => backup_dir_from_config(config)?,
        (None, None) => {
            bail!("give the backup directory with --backup-dir DIR or --config redis.conf")
        }
    };
    let mut progress = TerminalProgress {
        enabled: std::io::stderr().is_terminal(),
    };
    let mut catalog = Catalog::open(&backup_dir).context("opening the catalog")?;
    match cli.command {
        Command::List => {
            println!(
                "{:<20} {:<19} {:<4} {:>12} {:>10} verified",
                "id", "time (UTC)", "kind", "bytes", "keys"
            );
            for b in &catalog.backups {
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
        }
        Command::Verify { id } => {
            let ids: Vec<String> = match id {
                Some(id) => vec![id],
                None => catalog.backups.iter().map(|b| b.id.clone()).collect(),
            };
            let mut failures = 0;
            for id in ids {
                let backup = catalog.get(&id)?.clone();
                let result =
                    verify(&catalog.path_of(&id), backup.kind, &mut progress).and_then(|report| {
                        if report.checksum == backup.checksum {
                            Ok(report)
                        } else {
                            Err(amber_backup::BackupError::Verification {
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
                    Err(error) => {
                        failures += 1;
                        println!("{id}: FAILED: {error}");
                    }
                }
            }
            if failures > 0 {
                bail!("{failures} backup(s) failed verification");
            }
        }
        Command::Restore {
            id,
            dir,
            at,
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
            };
            let report = restore(&catalog, id.as_deref(), &options, &mut progress)?;
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
            if at.is_some() {
                println!(
                    "replayed {} bytes of later AOF commands",
                    report.replayed_bytes
                );
            }
        }
        Command::Prune {
            dry_run,
            keep_hourly,
            keep_daily,
        } => {
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
        }
        Command::Ship { remote } => {
            let remote = Remote::parse(&remote)?;
            let report = ship(&catalog.dir, &remote, progress.enabled)?;
            println!(
                "shipped to {} ({} files transferred), verified by checksum",
                report.target, report.transferred
            );
        }
    }
    Ok(())
}

/// `backup-dir` of a server config file, joined to its `dir` when relative (the server runs in
/// `dir`). The last line of a directive wins, as in the server.
fn backup_dir_from_config(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut dir = None;
    let mut backup_dir = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        match name.to_ascii_lowercase().as_str() {
            "dir" => dir = Some(PathBuf::from(value)),
            "backup-dir" if !value.is_empty() => backup_dir = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    let Some(backup_dir) = backup_dir else {
        bail!("{} sets no backup-dir", path.display());
    };
    Ok(match dir {
        Some(dir) if backup_dir.is_relative() => dir.join(backup_dir),
        _ => backup_dir,
    })
}
