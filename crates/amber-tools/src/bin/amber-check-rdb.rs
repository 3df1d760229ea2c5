//! `amber-check-rdb FILE`: checks an RDB file like `redis-check-rdb`, reading it as a stream
//! (files larger than memory are fine). Prints the version, AUX fields, keys per database,
//! expiry counts and value types; on corruption, the offset, the key being read and what is
//! wrong. Exits 0 only for a valid file.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use amber_rdb::{Item, RdbError, RdbReader};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Check an RDB file for corruption and summarise its content")]
struct Args {
    /// The RDB file to check.
    file: std::path::PathBuf,
}

#[derive(Default)]
struct Summary {
    keys_per_db: BTreeMap<u64, u64>,
    types: BTreeMap<&'static str, u64>,
    encodings: BTreeMap<u8, u64>,
    expires: u64,
    already_expired: u64,
    modules_skipped: u64,
    functions: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    println!("[offset 0] Checking RDB file {}", args.file.display());
    match check(&args.file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            println!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> Result<(), String> {
    let file = File::open(path)
        .map_err(|e| format!("--- RDB ERROR DETECTED ---\n[offset 0] Cannot open: {e}"))?;
    let mut reader = RdbReader::new(file).map_err(report)?;
    println!(
        "[offset {}] RDB version {}",
        reader.offset(),
        reader.version()
    );
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut summary = Summary::default();
    loop {
        let offset = reader.offset();
        let Some(item) = reader.next_item().map_err(report)? else {
            break;
        };
        match item {
            Item::Aux { key, value } => println!(
                "[offset {offset}] AUX FIELD {} = '{}'",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            ),
            Item::SelectDb(db) => println!("[offset {offset}] Selecting DB ID {db}"),
            Item::ModuleAuxSkipped(id) => {
                summary.modules_skipped += 1;
                println!(
                    "[offset {offset}] Warning: skipped module auxiliary data (module id {id:#x})"
                );
            }
            Item::Function(_) => summary.functions += 1,
            Item::ResizeDb { .. } | Item::SlotInfo { .. } => {}
            Item::Entry(entry) => {
                *summary.keys_per_db.entry(entry.db).or_default() += 1;
                *summary.types.entry(entry.value.type_name()).or_default() += 1;
                *summary.encodings.entry(entry.type_byte).or_default() += 1;
                if let Some(at) = entry.expire_at_ms {
                    summary.expires += 1;
                    if at <= now_ms {
                        summary.already_expired += 1;
                    }
                }
            }
        }
    }
    match reader.stored_checksum() {
        Some(0) => println!(
            "[offset {}] Checksum not computed (rdbchecksum no)",
            reader.offset()
        ),
        Some(_) => println!("[offset {}] Checksum OK", reader.offset()),
        None => println!(
            "[offset {}] No checksum (RDB version before 5)",
            reader.offset()
        ),
    }
    println!("[offset {}] \\o/ RDB looks OK! \\o/", reader.offset());
    print_summary(&summary);
    Ok(())
}

fn print_summary(summary: &Summary) {
    let keys: u64 = summary.keys_per_db.values().sum();
    println!("[info] {keys} keys read");
    println!("[info] {} expires", summary.expires);
    println!("[info] {} already expired", summary.already_expired);
    for (db, count) in &summary.keys_per_db {
        println!("[info] db{db}: {count} keys");
    }
    for (kind, count) in &summary.types {
        println!("[info] type {kind}: {count}");
    }
    for (byte, count) in &summary.encodings {
        println!("[info] RDB value type {byte}: {count}");
    }
    if summary.functions > 0 {
        println!("[info] {} function libraries", summary.functions);
    }
    if summary.modules_skipped > 0 {
        println!(
            "[info] {} module aux sections skipped",
            summary.modules_skipped
        );
    }
}

fn report(error: RdbError) -> String {
    let key = error
        .key
        .as_ref()
        .map(|k| {
            format!(
                "\n[additional info] Reading key '{}'",
                String::from_utf8_lossy(k)
            )
        })
        .unwrap_or_default();
    format!(
        "--- RDB ERROR DETECTED ---\n[offset {}] {}\n[additional info] The item being read starts at offset {}{key}",
        error.offset, error.kind, error.item_offset
    )
}
