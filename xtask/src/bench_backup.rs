//! `cargo xtask bench --backup-only`: backups of a ~1 GB dataset shipped to a local S3 server
//! (moto, on 127.0.0.1), plain and encrypted with age: the backup's write-and-verify time with
//! and without encryption (the encryption overhead), the upload to the bucket (`amber-backup
//! ship`), the download with full verification (`amber-backup verify --remote`), and, when the
//! AWS CLI is installed, `aws s3 cp` of the same file for comparison. Medians of the rounds.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{BenchArgs, command, median, start_with};

const BUCKET: &str = "amber-bench";
const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
];

/// A moto S3 server, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Result<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("moto_server (pip install 'moto[server]')")?;
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("moto_server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            &format!("http://127.0.0.1:{port}/{BUCKET}"),
        ])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("creating the bucket failed");
    }
    Ok(moto)
}

/// Runs the `amber-backup` CLI against the bucket; returns the seconds it took.
fn amber_backup(tool: &Path, moto: &Moto, prefix: &str, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let output = Command::new(tool)
        .args(["--remote-url", &format!("s3://{BUCKET}/{prefix}")])
        .args(["--s3-endpoint", &format!("http://127.0.0.1:{}", moto.port)])
        .arg("--s3-path-style")
        .args(args)
        .envs(CREDENTIALS)
        .output()?;
    if !output.status.success() {
        bail!(
            "amber-backup {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds `aws s3 cp` takes to upload `file`, if the AWS CLI is installed.
fn aws_cp(moto: &Moto, file: &Path) -> Result<Option<f64>> {
    if Command::new("aws").arg("--version").output().is_err() {
        return Ok(None);
    }
    let started = Instant::now();
    let status = Command::new("aws")
        .args(["--endpoint-url", &format!("http://127.0.0.1:{}", moto.port)])
        .args(["s3", "cp", "--quiet", "--region", "us-east-1"])
        .arg(file)
        .arg(format!("s3://{BUCKET}/aws-cp/dump.rdb"))
        .envs(CREDENTIALS)
        .status()?;
    if !status.success() {
        bail!("aws s3 cp failed");
    }
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// One round: a fresh server with `--backup-dir` (and the key when `encrypted`), one backup,
/// shipped and verified through a fresh moto.
fn round(args: &BenchArgs, scratch: &Path, encrypted: bool, mb: u64) -> Result<[f64; 4]> {
    let label = if encrypted { "encrypted" } else { "plain" };
    let dir = scratch.join(label);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let backups = dir.join("backups");
    let key = scratch.join("bench.key");
    let tool = args.amber().with_file_name("amber-backup");
    if !key.exists() {
        let status = Command::new(&tool).arg("keygen").arg(&key).status()?;
        if !status.success() {
            bail!("amber-backup keygen failed");
        }
    }
    let mut extra = vec![
        "--backup-dir".to_string(),
        backups.display().to_string(),
        "--rdbcompression".into(),
        "no".into(),
        "--backup-interval".into(),
        "0".into(),
    ];
    if encrypted {
        extra.extend([
            "--backup-encryption-key-file".into(),
            key.display().to_string(),
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = start_with("amber", &args.amber(), &dir, &extra)?;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    let keys = mb * 1000;
    command(&mut stream, &format!("DEBUG POPULATE {keys} key 1000"))?;
    let started = Instant::now();
    let id = command(&mut stream, "BACKUP NOW")?;
    let backup_s = started.elapsed().as_secs_f64();
    drop(server);
    let moto = start_moto()?;
    let backup_dir = backups.display().to_string();
    let mut key_args = Vec::new();
    if encrypted {
        key_args = vec!["--key-file".to_string(), key.display().to_string()];
    }
    let key_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
    let ship_s = amber_backup(
        &tool,
        &moto,
        label,
        &[&["--backup-dir", &backup_dir], &key_args[..], &["ship"]].concat(),
    )?;
    let verify_s = amber_backup(
        &tool,
        &moto,
        label,
        &[&key_args[..], &["verify", "--remote"]].concat(),
    )?;
    let file = backups
        .join(id.trim().trim_start_matches('+'))
        .join(if encrypted {
            "dump.rdb.age"
        } else {
            "dump.rdb"
        });
    let aws_s = if encrypted {
        None
    } else {
        aws_cp(&moto, &file)?
    };
    Ok([backup_s, ship_s, verify_s, aws_s.unwrap_or(f64::NAN)])
}

/// Runs the rounds and prints the table.
pub(crate) fn run(args: &BenchArgs, mb: u64) -> Result<()> {
    crate::tools::cargo(&["build", "--release", "-p", "amber-backup"])?;
    let scratch = std::env::temp_dir().join(format!("amber-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut results: Vec<(bool, Vec<[f64; 4]>)> = vec![(false, Vec::new()), (true, Vec::new())];
    for _ in 0..args.rounds.max(1) {
        for (encrypted, rounds) in &mut results {
            rounds.push(round(args, &scratch, *encrypted, mb)?);
        }
    }
    let column = |rounds: &[[f64; 4]], i: usize| {
        median(&mut rounds.iter().map(|r| r[i]).collect::<Vec<_>>())
    };
    println!(
        "backup of {mb} MB (RDB, uncompressed) to a local S3 server (moto), medians of {} rounds",
        args.rounds.max(1)
    );
    println!(
        "{:<10} | {:>16} | {:>18} | {:>22} | {:>12}",
        "", "backup (write+verify)", "ship (upload)", "verify --remote (download)", "aws s3 cp"
    );
    let mut plain_backup = 0.0;
    for (encrypted, rounds) in &results {
        let [backup, ship, verify, aws] = [0, 1, 2, 3].map(|i| column(rounds, i));
        if !encrypted {
            plain_backup = backup;
        }
        let rate = |s: f64| mb as f64 / s;
        println!(
            "{:<10} | {:>8.2} s {:>7} | {:>6.2} s {:>6.0} MB/s | {:>8.2} s {:>8.0} MB/s | {}",
            if *encrypted { "encrypted" } else { "plain" },
            backup,
            if *encrypted {
                format!("{:.2}x", backup / plain_backup)
            } else {
                String::new()
            },
            ship,
            rate(ship),
            verify,
            rate(verify),
            if aws.is_nan() {
                "-".to_string()
            } else {
                format!("{aws:.2} s {:.0} MB/s", rate(aws))
            }
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
