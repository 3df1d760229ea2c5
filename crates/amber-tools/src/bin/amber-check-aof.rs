//! `amber-check-aof [--fix [--yes]] [--truncate-to-timestamp T] FILE`: checks an AOF like
//! `redis-check-aof`. FILE is a multi-part manifest (every file it names is checked: the base,
//! RDB or commands, then the incr files) or a single AOF file. `--fix` cuts a damaged tail of
//! the last file after asking (or with `--yes`), saving the cut bytes beside it first;
//! `--truncate-to-timestamp` cuts the log at the first `#TS:` annotation later than T.
//! Exits 0 only when every file is valid (or was repaired).

use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use amber_aof::check::{FileReport, Problem, check_file, cut_for_timestamp};
use amber_aof::{FileKind, Manifest};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Check (and repair) an append-only file or a multi-part AOF manifest")]
struct Args {
    /// Cut a damaged tail of the last file at its last valid command.
    #[arg(long)]
    fix: bool,
    /// Do not ask before cutting.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Cut the log before the first `#TS:` annotation later than this Unix time.
    #[arg(long, value_name = "UNIX_SECONDS")]
    truncate_to_timestamp: Option<i64>,
    /// The manifest (`appendonly.aof.manifest`) or a single AOF file.
    file: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            println!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The files to check, in load order, with their role.
fn files_of(path: &Path) -> Result<Vec<(PathBuf, &'static str)>, String> {
    let is_manifest = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".manifest"));
    if !is_manifest {
        return Ok(vec![(path.to_path_buf(), "AOF")]);
    }
    let text = std::fs::read(path).map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
    let manifest =
        Manifest::parse(&text).map_err(|e| format!("Invalid manifest {}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    println!("Start checking Multi Part AOF");
    Ok(manifest
        .load_order()
        .map(|info| {
            let role = if info.kind == FileKind::Base {
                "BASE"
            } else {
                "INCR"
            };
            (dir.join(&info.name), role)
        })
        .collect())
}

fn run(args: &Args) -> Result<bool, String> {
    let files = files_of(&args.file)?;
    let mut all_valid = true;
    for (index, (path, role)) in files.iter().enumerate() {
        let last = index + 1 == files.len();
        let report = check_file(path);
        describe(path, role, &report);
        if let Some(limit) = args.truncate_to_timestamp
            && let Some(cut) = cut_for_timestamp(&report, limit)
        {
            if !last {
                println!(
                    "Cannot truncate {} at its annotation after {limit}: it is not the last file",
                    path.display()
                );
                return Ok(false);
            }
            return cut_file(path, cut, args.yes).map(|()| true);
        }
        let Some((offset, problem)) = &report.problem else {
            continue;
        };
        all_valid = false;
        if !args.fix {
            continue;
        }
        let cuttable = report.repairable_by_cut() || matches!(problem, Problem::BadFormat(_));
        if !cuttable {
            println!(
                "{} cannot be repaired by cutting it (problem at offset {offset}).",
                path.display()
            );
            return Ok(false);
        }
        if !last {
            println!(
                "Only the last file can be cut; {} is not the last file.",
                path.display()
            );
            return Ok(false);
        }
        cut_file(path, report.valid_up_to, args.yes)?;
        return Ok(true);
    }
    if all_valid {
        println!("All AOF files and manifest are valid");
    }
    Ok(all_valid)
}

fn describe(path: &Path, role: &str, report: &FileReport) {
    let name = path.display();
    if report.rdb_preamble {
        println!("{role} {name}: RDB preamble with {} keys", report.rdb_keys);
    }
    println!(
        "AOF analyzed: filename={name}, size={}, ok_up_to={}, diff={}, commands={}, timestamps={}",
        report.size,
        report.valid_up_to,
        report.size.saturating_sub(report.valid_up_to),
        report.commands,
        report.timestamps.len()
    );
    match &report.problem {
        None => println!("{role} AOF {name} is valid"),
        Some((offset, problem)) => {
            let what = match problem {
                Problem::Truncated => "the file ends in the middle of a command".to_string(),
                Problem::UnfinishedMulti => "a MULTI block is not closed".to_string(),
                Problem::ZeroPadding => {
                    "zeros follow the last command (preallocated space a crash left)".to_string()
                }
                Problem::BadFormat(what) => format!("bad format: {what}"),
                Problem::BadRdb(what) => format!("the RDB preamble is damaged: {what}"),
                Problem::Unreadable(what) => format!("cannot read: {what}"),
            };
            println!("0x{offset:x} ({offset}): {what} in {name}");
        }
    }
}

/// Cuts `path` at `at` after confirmation, saving the cut bytes to `<path>.cut-<unix time>`.
fn cut_file(path: &Path, at: u64, yes: bool) -> Result<(), String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    println!(
        "This will shrink {} from {size} bytes, with {} bytes, to {at} bytes",
        path.display(),
        size - at
    );
    if !yes && !confirm()? {
        println!("Aborted: nothing changed.");
        return Err("not confirmed".into());
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backup = PathBuf::from(format!("{}.cut-{stamp}", path.display()));
    std::fs::write(&backup, &bytes[at as usize..]).map_err(|e| e.to_string())?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.set_len(at).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    println!(
        "Successfully truncated AOF {} (the cut bytes are in {})",
        path.display(),
        backup.display()
    );
    Ok(())
}

fn confirm() -> Result<bool, String> {
    print!("Continue? [y/N]: ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}
