//! Where the benchmarks' processes run. `--server-cpus` and `--client-cpus` pin the servers
//! (with every thread and child they start) and `redis-benchmark` to CPU lists of their own,
//! through `taskset`, so that on a machine with cores to spare the client never competes
//! with the server it measures. Unset, the scheduler places them as it likes.

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Result, bail};

/// The CPU lists (`taskset -c` syntax, e.g. `0`, `2-3`, `0,2`) of the two sides.
#[derive(Debug, Default)]
struct Placement {
    server: Option<String>,
    client: Option<String>,
}

static PLACEMENT: OnceLock<Placement> = OnceLock::new();

/// Records the CPU lists for the rest of the run; a list must be digits, commas and dashes.
pub(crate) fn set(server: Option<&str>, client: Option<&str>) -> Result<()> {
    for list in [server, client].into_iter().flatten() {
        let valid = !list.is_empty()
            && list
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-');
        if !valid {
            bail!("not a CPU list: {list:?} (expected e.g. 0, 2-3 or 0,2)");
        }
    }
    if (server.is_some() || client.is_some()) && Command::new("taskset").arg("-V").output().is_err()
    {
        bail!("--server-cpus and --client-cpus need taskset (util-linux)");
    }
    let placement = Placement {
        server: server.map(str::to_owned),
        client: client.map(str::to_owned),
    };
    if PLACEMENT.set(placement).is_err() {
        bail!("CPU placement set twice");
    }
    Ok(())
}

/// A command that runs `program` on the servers' CPUs.
pub(crate) fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    command_on(PLACEMENT.get().and_then(|p| p.server.as_deref()), program)
}

/// A command that runs `program` (`redis-benchmark`) on the client's CPUs.
pub(crate) fn client_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    command_on(PLACEMENT.get().and_then(|p| p.client.as_deref()), program)
}

/// `taskset -c <cpus> <program>` (which execs `program` in the same process, so its pid is
/// the program's), or `program` itself.
fn command_on(cpus: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpus).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Both sides' lists, for the tables' headings ("" when unset).
pub(crate) fn describe() -> String {
    match PLACEMENT.get() {
        Some(placement) if placement.server.is_some() || placement.client.is_some() => format!(
            "; servers on CPUs {}, redis-benchmark on CPUs {}",
            placement.server.as_deref().unwrap_or("any"),
            placement.client.as_deref().unwrap_or("any")
        ),
        _ => String::new(),
    }
}
