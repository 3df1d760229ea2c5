//! Finding and installing the external tools the tests and benchmarks use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Programs the tests run, and the Debian package that provides each.
const TOOLS: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("redis-benchmark", "redis-tools"),
    ("redis-check-rdb", "redis-tools"),
    ("redis-check-aof", "redis-tools"),
    ("redis-sentinel", "redis-sentinel"),
    ("rsync", "rsync"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("tclsh", "tcl"),
];

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs cargo with `args` in the workspace root, failing if it fails.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
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
    if name.starts_with('/') {
        return Path::new(name).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure what the tests run is installed: Debian's Redis 7.0 server and tools, rsync and
/// OpenSSH (the backup shipping tests start their own sshd), and moto's S3 server (the bucket
/// tests start their own). Installs them with apt and pip when running as root, otherwise says
/// exactly what to install.
pub(crate) fn ensure_redis() -> Result<()> {
    ensure_debian_packages()?;
    ensure_moto()
}

/// The S3 backup tests run a real S3-compatible server: moto's, from PyPI.
fn ensure_moto() -> Result<()> {
    if on_path("moto_server") {
        return Ok(());
    }
    eprintln!("xtask: installing moto[server] from PyPI");
    let pip = if on_path("pip3") { "pip3" } else { "pip" };
    run(pip, &["install", "--quiet", "moto[server]"])?;
    if !on_path("moto_server") && on_path("pyenv") {
        // pyenv's shims appear on the next rehash.
        let _ = Command::new("pyenv").arg("rehash").status();
    }
    if !on_path("moto_server") {
        bail!("pip installed moto[server] but moto_server is not on PATH");
    }
    Ok(())
}

fn ensure_debian_packages() -> Result<()> {
    let mut packages: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(_, package)| *package)
        .collect();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    if !nix_is_root() {
        bail!(
            "missing tools: install them with `sudo apt-get install -y {}`",
            packages.join(" ")
        );
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq"];
    args.extend(packages.iter().copied());
    run("apt-get", &args)?;
    // Debian starts the services when it can; the tests start their own servers.
    let _ = Command::new("sh")
        .args([
            "-c",
            "service redis-server stop >/dev/null 2>&1; service redis-sentinel stop >/dev/null 2>&1; service ssh stop >/dev/null 2>&1",
        ])
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
