//! `amber-check-rdb FILE`: checks an RDB file like `redis-check-rdb`, reading it as a stream
//! (files larger than memory are fine). Prints the version, AUX fields, keys per database,
//! expiry counts and value types; on corruption, the offset, the key being read and what is
//! wrong. Exits 0 only for a valid file.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Check an RDB file for corruption and summarise its content")]
struct Args {
    /// The RDB file to check.
    file: std::path::PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let valid =
        amber_rdb::check::check_file(&args.file, now_ms, None, &mut |line| println!("{line}"));
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
