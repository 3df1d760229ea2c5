//! `redis-check-rdb`'s report: a streaming read of a whole RDB file that describes what it
//! holds (version, AUX fields, databases, keys per type) and, on corruption, where and what.
//! `amber-check-rdb` prints it; the server logs it when a file it loads turns out corrupt, as
//! Redis does.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use crate::{Item, RdbError, RdbReader};

/// What a file holds, counted while it is read.
#[derive(Debug, Default)]
struct Summary {
    keys_per_db: BTreeMap<u64, u64>,
    types: BTreeMap<&'static str, u64>,
    encodings: BTreeMap<u8, u64>,
    expires: u64,
    already_expired: u64,
    modules_skipped: u64,
    functions: u64,
}

/// Checks the RDB file at `path`, sending each line of the report to `line` (without a line
/// end); keys whose expiry is at or before `now_ms` count as already expired. When the file is
/// corrupt, the error line says `failure` if given (the loader's own words, as Redis's server
/// does), else the reader's. Returns whether the file is valid.
pub fn check_file(
    path: &Path,
    now_ms: i64,
    failure: Option<&str>,
    line: &mut dyn FnMut(&str),
) -> bool {
    line(&format!("[offset 0] Checking RDB file {}", path.display()));
    let mut summary = Summary::default();
    let result = File::open(path)
        .map_err(|error| format!("[offset 0] Cannot open: {error}"))
        .and_then(|file| {
            read_all(file, now_ms, &mut summary, line).map_err(|error| error_lines(&error, failure))
        });
    let valid = match result {
        Ok(()) => true,
        Err(text) => {
            line("--- RDB ERROR DETECTED ---");
            text.lines().for_each(&mut *line);
            false
        }
    };
    summary_lines(&summary, line);
    valid
}

fn read_all(
    file: File,
    now_ms: i64,
    summary: &mut Summary,
    line: &mut dyn FnMut(&str),
) -> Result<(), RdbError> {
    let mut reader = RdbReader::new(file)?;
    line(&format!(
        "[offset {}] RDB version {}",
        reader.offset(),
        reader.version()
    ));
    loop {
        let offset = reader.offset();
        let Some(item) = reader.next_item()? else {
            break;
        };
        match item {
            Item::Aux { key, value } => line(&format!(
                "[offset {offset}] AUX FIELD {} = '{}'",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            )),
            Item::SelectDb(db) => line(&format!("[offset {offset}] Selecting DB ID {db}")),
            Item::ModuleAuxSkipped(id) => {
                summary.modules_skipped += 1;
                line(&format!(
                    "[offset {offset}] Warning: skipped module auxiliary data (module id {id:#x})"
                ));
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
    let end = reader.offset();
    line(&match reader.stored_checksum() {
        Some(0) => format!("[offset {end}] Checksum not computed (rdbchecksum no)"),
        Some(_) => format!("[offset {end}] Checksum OK"),
        None => format!("[offset {end}] No checksum (RDB version before 5)"),
    });
    line(&format!("[offset {end}] \\o/ RDB looks OK! \\o/"));
    Ok(())
}

/// The lines that say where the file is corrupt and what was being read.
fn error_lines(error: &RdbError, failure: Option<&str>) -> String {
    let what = failure.map_or_else(|| error.kind.to_string(), str::to_string);
    let mut text = format!(
        "[offset {}] {what}\n[additional info] The item being read starts at offset {}",
        error.offset, error.item_offset
    );
    if let Some(key) = &error.key {
        text.push_str(&format!(
            "\n[additional info] Reading key '{}'",
            String::from_utf8_lossy(key)
        ));
    }
    text
}

fn summary_lines(summary: &Summary, line: &mut dyn FnMut(&str)) {
    let keys: u64 = summary.keys_per_db.values().sum();
    line(&format!("[info] {keys} keys read"));
    line(&format!("[info] {} expires", summary.expires));
    line(&format!(
        "[info] {} already expired",
        summary.already_expired
    ));
    for (db, count) in &summary.keys_per_db {
        line(&format!("[info] db{db}: {count} keys"));
    }
    for (kind, count) in &summary.types {
        line(&format!("[info] type {kind}: {count}"));
    }
    for (byte, count) in &summary.encodings {
        line(&format!("[info] RDB value type {byte}: {count}"));
    }
    if summary.functions > 0 {
        line(&format!("[info] {} function libraries", summary.functions));
    }
    if summary.modules_skipped > 0 {
        line(&format!(
            "[info] {} module aux sections skipped",
            summary.modules_skipped
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(bytes: &[u8], failure: Option<&str>) -> (bool, Vec<String>) {
        let path = std::env::temp_dir().join(format!(
            "amber-check-{}-{}.rdb",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        let mut lines = Vec::new();
        let valid = check_file(&path, 0, failure, &mut |l| lines.push(l.to_string()));
        std::fs::remove_file(&path).unwrap();
        (valid, lines)
    }

    #[test]
    fn an_empty_valid_file_is_ok_and_a_cut_one_says_where() {
        let mut file = Vec::new();
        let mut writer = crate::RdbWriter::new(&mut file, crate::WriteOptions::default()).unwrap();
        writer.aux("redis-ver", "7.0.15").unwrap();
        writer.finish().unwrap();
        let (valid, lines) = report(&file, None);
        assert!(valid, "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("RDB looks OK")),
            "{lines:?}"
        );
        let cut = &file[..file.len() - 4];
        let (valid, lines) = report(cut, Some("the loader's words"));
        assert!(!valid);
        assert!(
            lines.contains(&"--- RDB ERROR DETECTED ---".to_string()),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("[offset ") && l.ends_with("the loader's words")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"[info] 0 keys read".to_string()),
            "{lines:?}"
        );
    }
}
