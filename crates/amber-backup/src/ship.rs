//! Shipping backups to another machine with the system's `rsync`: to a mounted path, or over
//! SSH (`ssh://user@host[:port]/path`). The far side mirrors the backup directory (so it keeps
//! what local retention keeps); `--partial` makes an interrupted copy resume where it stopped;
//! a second `rsync --checksum --dry-run` pass that finds nothing to change proves the far copy
//! identical, byte for byte.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::catalog::BackupError;

/// Where backups are shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A local or mounted directory.
    Path(String),
    /// `ssh://[user@]host[:port]/path`.
    Ssh {
        /// `user@host` or `host`.
        destination: String,
        /// SSH port, if not 22.
        port: Option<u16>,
        /// Directory on the remote machine.
        path: String,
    },
}

impl Remote {
    /// Parses `backup-remote`.
    pub fn parse(text: &str) -> Result<Remote, BackupError> {
        let Some(rest) = text.strip_prefix("ssh://") else {
            if text.is_empty() {
                return Err(BackupError::Refused("no backup-remote set".into()));
            }
            return Ok(Remote::Path(text.to_string()));
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| BackupError::Refused(format!("{text}: expected ssh://host/path")))?;
        let (destination, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host.to_string(),
                Some(
                    port.parse()
                        .map_err(|_| BackupError::Refused(format!("{text}: bad port")))?,
                ),
            ),
            None => (authority.to_string(), None),
        };
        Ok(Remote::Ssh {
            destination,
            port,
            path: format!("/{path}"),
        })
    }

    fn target(&self) -> String {
        match self {
            Remote::Path(path) => format!("{}/", path.trim_end_matches('/')),
            Remote::Ssh {
                destination, path, ..
            } => format!("{destination}:{}/", path.trim_end_matches('/')),
        }
    }
}

/// What a ship did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipReport {
    /// Where the backups went.
    pub target: String,
    /// Files rsync transferred.
    pub transferred: usize,
}

fn rsync(remote: &Remote, extra: &[&str], backup_dir: &Path) -> Command {
    let mut command = Command::new("rsync");
    command.args(["-a", "--partial", "--delete", "--exclude", ".staging-*"]);
    command.args(["--exclude", "catalog.tmp", "--exclude", ".decrypted-*"]);
    if let Remote::Ssh { port, .. } = remote {
        // RSYNC_RSH (if set) chooses the ssh command and its options; the URL's port is added.
        let ssh = std::env::var("RSYNC_RSH").unwrap_or_else(|_| "ssh".into());
        let rsh = match port {
            Some(port) => format!("{ssh} -p {port}"),
            None => ssh,
        };
        command.args(["-e", &rsh]);
    }
    command.args(extra);
    command.arg(format!("{}/", backup_dir.display()));
    command.arg(remote.target());
    command.stdin(Stdio::null());
    command
}

fn run(mut command: Command, what: &str) -> Result<String, BackupError> {
    let output = command.output().map_err(|source| BackupError::Io {
        what: format!("running rsync for {what}"),
        source,
    })?;
    if !output.status.success() {
        return Err(BackupError::Refused(format!(
            "rsync {what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Copies the backup directory to `remote` (resuming partial files), then verifies the far
/// copy by checksum. `show_progress` lets rsync draw its progress line on the terminal.
pub fn ship(
    backup_dir: &Path,
    remote: &Remote,
    show_progress: bool,
) -> Result<ShipReport, BackupError> {
    if let Remote::Path(path) = remote {
        std::fs::create_dir_all(path).map_err(crate::catalog::io(format!("creating {path}")))?;
    }
    let mut copy = rsync(remote, &["--itemize-changes"], backup_dir);
    if show_progress {
        copy.arg("--info=progress2");
    }
    let copied = run(copy, "copy")?;
    let transferred = copied
        .lines()
        .filter(|l| l.starts_with('<') || l.starts_with("cd"))
        .count();
    let check = run(
        rsync(
            remote,
            &["--checksum", "--dry-run", "--itemize-changes"],
            backup_dir,
        ),
        "verification",
    )?;
    let differences: Vec<&str> = check.lines().filter(|l| !l.trim().is_empty()).collect();
    if !differences.is_empty() {
        return Err(BackupError::Refused(format!(
            "the far copy differs after shipping: {}",
            differences.join("; ")
        )));
    }
    Ok(ShipReport {
        target: remote.target(),
        transferred,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_parse() {
        assert_eq!(
            Remote::parse("ssh://backup@example.org:2222/srv/amber").expect("valid"),
            Remote::Ssh {
                destination: "backup@example.org".into(),
                port: Some(2222),
                path: "/srv/amber".into()
            }
        );
        assert_eq!(
            Remote::parse("/mnt/nas/amber").expect("valid"),
            Remote::Path("/mnt/nas/amber".into())
        );
        assert!(Remote::parse("").is_err());
    }
}
