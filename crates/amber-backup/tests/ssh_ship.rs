//! Shipping over SSH to a real `sshd` started on 127.0.0.1 for the test (openssh-server and
//! rsync are installed by `.ci/run`): the far copy is complete and checked by checksum, and a
//! ship interrupted midway resumes.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amber_backup::catalog::Meta;
use amber_backup::ship::{Remote, ship};
use amber_backup::{Catalog, Kind, finalize, verify};

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(status.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_sshd(dir: &Path) -> (Sshd, u16) {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
        .expect("authorized_keys");
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\nPidFile {0}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin yes\n",
        dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd (openssh-server) is installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Sshd(child), port)
}

fn stage(backup_dir: &Path, time_ms: i64) -> PathBuf {
    let staging = backup_dir.join(".staging");
    std::fs::create_dir_all(&staging).expect("staging");
    let file = std::fs::File::create(staging.join("dump.rdb")).expect("rdb");
    let mut writer =
        amber_rdb::RdbWriter::new(file, amber_rdb::WriteOptions::default()).expect("writer");
    writer.select_db(0, 20_000, 0).expect("select");
    for i in 0..20_000u32 {
        let value = format!("value-{i}-{}", "x".repeat(40));
        writer
            .string_entry(format!("key:{i}").as_bytes(), value.as_bytes(), None)
            .expect("entry");
    }
    writer.finish().expect("finish");
    Meta {
        time_ms,
        keys: 20_000,
        digest: "0".repeat(40),
    }
    .write(&staging)
    .expect("meta");
    staging
}

#[test]
fn ships_over_ssh_verified_and_resumes_after_an_interruption() {
    let dir = std::env::temp_dir().join(format!("amber-ssh-ship-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (_sshd, port) = start_sshd(&dir);
    // SAFETY: this test binary has this one test; nothing reads the environment concurrently.
    unsafe {
        std::env::set_var(
            "RSYNC_RSH",
            format!(
                "ssh -i {}/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
                dir.display()
            ),
        );
    }
    let backups = dir.join("backups");
    let far = dir.join("far");
    let mut catalog = Catalog::open(&backups).expect("catalog");
    let backup = finalize(
        &mut catalog,
        &stage(&backups, 1_000_000),
        Kind::Rdb,
        &mut (),
    )
    .expect("backup");
    let user =
        String::from_utf8(Command::new("whoami").output().expect("whoami").stdout).expect("utf-8");
    let remote = Remote::parse(&format!(
        "ssh://{}@127.0.0.1:{port}{}",
        user.trim(),
        far.display()
    ))
    .expect("remote");

    ship(&backups, &remote, false).expect("first ship");
    let far_rdb = far.join(&backup.id).join("dump.rdb");
    let local_rdb = catalog.path_of(&backup.id).join("dump.rdb");
    assert_eq!(
        std::fs::read(&far_rdb).expect("far"),
        std::fs::read(&local_rdb).expect("local")
    );
    assert!(verify(&far.join(&backup.id), Kind::Rdb, &mut ()).is_ok());

    // Interrupted: the far file is cut short (as a dropped connection leaves it with --partial).
    let full = std::fs::read(&far_rdb).expect("far");
    std::fs::write(&far_rdb, &full[..full.len() / 3]).expect("cut");
    let report = ship(&backups, &remote, false).expect("resumed ship");
    assert!(report.transferred >= 1, "{report:?}");
    assert_eq!(std::fs::read(&far_rdb).expect("far"), full);
    let _ = std::fs::remove_dir_all(dir);
}
