//! Finding and installing the external tools the tests and benchmarks use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const REDIS_TOOLS: &[&str] = &[
    "redis-server",
    "redis-cli",
    "redis-benchmark",
    "redis-check-rdb",
    "redis-check-aof",
];

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs cargo with `args` in the workspace root, failing if it fails.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo {args:?}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn on_path(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure Debian's Redis 7.0 server and tools are installed: installs them with apt when
/// running as root, otherwise says exactly what to install.
pub fn ensure_redis() -> Result<()> {
    let missing: Vec<&str> = REDIS_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix_is_root() {
        bail!(
            "missing {}: install them with `sudo apt-get install -y redis-server redis-tools`",
            missing.join(", ")
        );
    }
    eprintln!(
        "xtask: installing redis-server and redis-tools (missing: {})",
        missing.join(", ")
    );
    run("apt-get", &["update", "-qq"])?;
    run(
        "apt-get",
        &["install", "-y", "-qq", "redis-server", "redis-tools"],
    )?;
    // Debian starts the service when it can; the tests start their own servers.
    let _ = Command::new("sh")
        .args(["-c", "service redis-server stop >/dev/null 2>&1"])
        .status();
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}
