//! `cargo xtask redis-tests`: Redis 7.0.15's own Tcl test suite (`../shared/redis-tests`) run
//! against the release `amber-server`, with per-unit counts, the most frequent error replies,
//! and a ratchet: with `--check`, a unit that passes fewer tests than `tests/redis-suite/
//! baseline.txt` records fails the task.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::tools::{cargo, workspace_root};

/// Options of `cargo xtask redis-tests`.
#[derive(Args)]
pub(crate) struct RedisTestsArgs {
    /// The predefined list of units: core, more or all.
    #[arg(long, default_value = "core")]
    set: String,
    /// Compare each unit's passes with the baseline and fail if any is lower.
    #[arg(long)]
    check: bool,
    /// Write the passes of this run into the baseline (only ever raising a unit's count).
    #[arg(long)]
    update_baseline: bool,
    /// Seconds without test progress before a unit is abandoned (the runner's own default:
    /// `integration/replication`'s "diskless loading short read" goes longer than a minute
    /// between two passes).
    #[arg(long, default_value_t = 300)]
    progress_timeout: u32,
    /// Wall-clock seconds one unit may take.
    #[arg(long, default_value_t = 600)]
    unit_timeout: u32,
    /// Units to run instead of the set (e.g. unit/type/list).
    units: Vec<String>,
}

/// Where the suite is: `../shared/redis-tests` beside the workspace.
fn suite_dir() -> PathBuf {
    workspace_root().join("../shared/redis-tests")
}

fn baseline_path() -> PathBuf {
    workspace_root().join("tests/redis-suite/baseline.txt")
}

fn exclusions_path() -> PathBuf {
    workspace_root().join("tests/redis-suite/exclusions.txt")
}

/// Builds the release server, runs the suite and applies the ratchet.
pub(crate) fn run(args: &RedisTestsArgs) -> Result<()> {
    let runner = suite_dir().join("run.sh");
    if !runner.exists() {
        bail!("Redis's test suite is not at {}", runner.display());
    }
    cargo(&["build", "--release", "-p", "amber-server"])?;
    // Short: the suite puts Unix sockets under it, and their paths must fit in 108 bytes.
    let workdir = std::env::temp_dir().join(format!("amber-rt-{}", std::process::id()));
    let summary = run_suite(args, &workdir, &args.units)?;
    let mut passed = parse_summary(&summary);
    let mut baseline = read_baseline(&baseline_path())?;
    if args.check {
        // A unit below its baseline runs once more on its own: a test that depends on timing
        // on a shared machine must not fail the ratchet by chance, a real regression fails
        // twice.
        let below: Vec<String> = passed
            .iter()
            .filter(|(unit, count)| {
                baseline
                    .get(*unit)
                    .is_some_and(|expected| *count < expected)
            })
            .map(|(unit, _)| unit.clone())
            .collect();
        if !below.is_empty() {
            println!("redis-tests: running again: {}", below.join(" "));
            let retry_dir = workdir.with_extension("retry");
            let retried = parse_summary(&run_suite(args, &retry_dir, &below)?);
            for (unit, count) in retried {
                let best = passed.entry(unit).or_insert(0);
                *best = (*best).max(count);
            }
        }
        check(&passed, &baseline, &summary)?;
    }
    if args.update_baseline {
        for (unit, &count) in &passed {
            let recorded = baseline.entry(unit.clone()).or_insert(0);
            *recorded = (*recorded).max(count);
        }
        write_baseline(&baseline_path(), &baseline)?;
        println!("baseline updated: {}", baseline_path().display());
    }
    Ok(())
}

/// Kills servers an earlier, interrupted run left behind (their working directory is under
/// another run's `/tmp/amber-rt-*`): they hold the suite's ports, and the suite's own port
/// probing does not always step around them.
fn reap_strays(workdir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == own || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let stray =
            cwd.to_string_lossy().starts_with("/tmp/amber-rt-") && !cwd.starts_with(workdir);
        if stray {
            eprintln!(
                "redis-tests: killing {pid}, left behind in {}",
                cwd.display()
            );
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    }
}

/// Runs `units` (the set's when empty) with the exclusions skipped; returns the summary.
fn run_suite(args: &RedisTestsArgs, workdir: &Path, units: &[String]) -> Result<String> {
    reap_strays(workdir);
    let runner = suite_dir().join("run.sh");
    let server = workspace_root().join("target/release/amber-server");
    let mut command = Command::new("bash");
    command
        .arg(&runner)
        .arg(&server)
        .args(["--set", &args.set])
        .args(["--progress-timeout", &args.progress_timeout.to_string()])
        .args(["-t", &args.unit_timeout.to_string()])
        .arg("--workdir")
        .arg(workdir)
        .args(units);
    let skipped = exclusions()?;
    if !skipped.is_empty() {
        command.arg("--");
        for name in &skipped {
            command.args(["--skiptest", name]);
        }
    }
    // The runner exits 1 whenever any test fails; the ratchet decides.
    let status = command.status().context("running the Redis test suite")?;
    std::fs::read_to_string(workdir.join("summary.txt"))
        .with_context(|| format!("no summary from the suite ({status})"))
}

/// Fails when a unit of the baseline passed fewer tests than it records (or did not run) or
/// when a unit did not finish.
fn check(
    passed: &BTreeMap<String, u32>,
    baseline: &BTreeMap<String, u32>,
    summary: &str,
) -> Result<()> {
    let mut regressions = Vec::new();
    for (unit, &expected) in baseline {
        match passed.get(unit) {
            Some(&count) if count >= expected => {}
            Some(&count) => {
                regressions.push(format!("{unit}: {count} passed, baseline {expected}"))
            }
            None => {}
        }
    }
    let crashed: Vec<&str> = summary
        .lines()
        .filter(|line| line.contains("CRASHED"))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|unit| baseline.contains_key(*unit))
        .collect();
    let total: u32 = passed.values().sum();
    // Only the units that ran: a run of a few units is held to their part of the baseline.
    let expected: u32 = baseline
        .iter()
        .filter(|(unit, _)| passed.contains_key(*unit))
        .map(|(_, count)| count)
        .sum();
    println!("redis-tests: {total} passed (baseline {expected})");
    if !crashed.is_empty() {
        println!(
            "redis-tests: units that did not finish: {}",
            crashed.join(" ")
        );
    }
    if !regressions.is_empty() {
        bail!(
            "Redis test suite below its baseline:\n  {}",
            regressions.join("\n  ")
        );
    }
    Ok(())
}

/// `unit passed=N ...` lines of the runner's summary, as unit -> passes.
fn parse_summary(summary: &str) -> BTreeMap<String, u32> {
    summary
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let unit = words.next()?;
            let passed = words
                .find_map(|word| word.strip_prefix("passed="))?
                .parse()
                .ok()?;
            Some((unit.to_string(), passed))
        })
        .collect()
}

/// The baseline: `unit passes` per line, `#` comments.
fn read_baseline(path: &Path) -> Result<BTreeMap<String, u32>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error).context(format!("reading {}", path.display())),
    };
    let mut baseline = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (unit, count) = line.split_once(char::is_whitespace).with_context(|| {
            format!("{}:{}: expected `unit passes`", path.display(), number + 1)
        })?;
        let count = count
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad count", path.display(), number + 1))?;
        baseline.insert(unit.to_string(), count);
    }
    Ok(baseline)
}

fn write_baseline(path: &Path, baseline: &BTreeMap<String, u32>) -> Result<()> {
    let mut text = String::from(
        "# Tests of Redis's own suite each unit passes with amber-server (cargo xtask redis-tests).\n# CI fails when a unit passes fewer; raise a count whenever a fix lets more pass\n# (cargo xtask redis-tests --update-baseline).\n",
    );
    for (unit, count) in baseline {
        text.push_str(&format!("{unit} {count}\n"));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Test names skipped on purpose (`tests/redis-suite/exclusions.txt`: a name, then ` # ` and
/// the reason, per line).
fn exclusions() -> Result<Vec<String>> {
    let path = exclusions_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).context(format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .map(|line| line.split(" # ").next().unwrap_or_default().trim())
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_give_passes_per_unit() {
        let summary = "unit/type/list                             passed=120  failed=3   errors=0   exceptions=0  skipped=0   ignored=0   srvcrash=0  rc=1     61s FAIL\nunit/info passed=0 failed=13\n";
        let passed = parse_summary(summary);
        assert_eq!(passed.get("unit/type/list"), Some(&120));
        assert_eq!(passed.get("unit/info"), Some(&0));
    }

    #[test]
    fn fewer_passes_than_the_baseline_fail() {
        let baseline = BTreeMap::from([("unit/a".to_string(), 10), ("unit/b".to_string(), 5)]);
        let good = BTreeMap::from([("unit/a".to_string(), 10), ("unit/b".to_string(), 6)]);
        assert!(check(&good, &baseline, "").is_ok());
        let worse = BTreeMap::from([("unit/a".to_string(), 9), ("unit/b".to_string(), 6)]);
        assert!(check(&worse, &baseline, "").is_err());
    }
}
