//! Checking AOF files without loading them: every command parsed, an RDB base read in full with
//! its checksum, and for each file how far it is valid, what is wrong where, and where each
//! `#TS:` annotation starts (for truncating to a point in time).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::command::{CommandReader, Item, ReadError};

/// What is wrong with a file, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file ends in the middle of a command (a crash mid-write): repairable by cutting.
    Truncated,
    /// A `MULTI` block is not closed at the end: repairable by cutting before `MULTI`.
    UnfinishedMulti,
    /// Bytes that are not commands.
    BadFormat(String),
    /// The RDB part of a base file is damaged.
    BadRdb(String),
    /// The file could not be read.
    Unreadable(String),
}

/// The outcome of checking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file's size in bytes.
    pub size: u64,
    /// Whether it starts with an RDB part.
    pub rdb_preamble: bool,
    /// Keys in the RDB part.
    pub rdb_keys: u64,
    /// Commands read.
    pub commands: u64,
    /// The file is valid up to this offset (the end of the last complete command or block).
    pub valid_up_to: u64,
    /// Where the problem was found, and what it is.
    pub problem: Option<(u64, Problem)>,
    /// `(offset, unix seconds)` of each `#TS:` annotation.
    pub timestamps: Vec<(u64, i64)>,
}

impl FileReport {
    /// Whether cutting the file at `valid_up_to` repairs it (a cut tail, an open MULTI).
    pub fn repairable_by_cut(&self) -> bool {
        matches!(
            self.problem,
            Some((_, Problem::Truncated | Problem::UnfinishedMulti))
        )
    }
}

/// Checks one AOF file (base or incr, or a legacy single file).
pub fn check_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        size: 0,
        rdb_preamble: false,
        rdb_keys: 0,
        commands: 0,
        valid_up_to: 0,
        problem: None,
        timestamps: Vec::new(),
    };
    let unreadable = |report: &mut FileReport, error: std::io::Error| {
        report.problem = Some((0, Problem::Unreadable(error.to_string())));
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            unreadable(&mut report, error);
            return report;
        }
    };
    report.size = file.metadata().map_or(0, |m| m.len());
    let mut magic = [0u8; 5];
    let start = if file.read_exact(&mut magic).is_ok() && &magic == b"REDIS" {
        report.rdb_preamble = true;
        match check_rdb_part(path) {
            Ok((end, keys)) => {
                report.rdb_keys = keys;
                end
            }
            Err((offset, message)) => {
                report.problem = Some((offset, Problem::BadRdb(message)));
                return report;
            }
        }
    } else {
        0
    };
    report.valid_up_to = start;
    if let Err(error) = file.seek(SeekFrom::Start(start)) {
        unreadable(&mut report, error);
        return report;
    }
    check_commands(
        CommandReader::new(BufReader::with_capacity(1 << 20, file), start),
        &mut report,
    );
    report
}

fn check_rdb_part(path: &Path) -> Result<(u64, u64), (u64, String)> {
    let file = File::open(path).map_err(|e| (0, e.to_string()))?;
    let mut reader = amber_rdb::RdbReader::new(file).map_err(|e| (0, e.to_string()))?;
    let mut keys = 0;
    loop {
        let offset = reader.offset();
        match reader.next_item() {
            Ok(Some(amber_rdb::Item::Entry(_))) => keys += 1,
            Ok(Some(_)) => {}
            Ok(None) => return Ok((reader.offset(), keys)),
            Err(error) => return Err((offset, error.to_string())),
        }
    }
}

fn check_commands<R: std::io::BufRead>(mut reader: CommandReader<R>, report: &mut FileReport) {
    let mut multi_start = None;
    loop {
        let start = reader.offset();
        match reader.next_item() {
            Ok(Some(Item::Annotation(text))) => {
                if let Some(seconds) = text
                    .strip_prefix(b"TS:")
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    report.timestamps.push((start, seconds));
                }
                if multi_start.is_none() {
                    report.valid_up_to = reader.offset();
                }
            }
            Ok(Some(Item::Command(args))) => {
                report.commands += 1;
                if args[0].eq_ignore_ascii_case(b"multi") {
                    multi_start = Some(start);
                } else if args[0].eq_ignore_ascii_case(b"exec")
                    || args[0].eq_ignore_ascii_case(b"discard")
                {
                    multi_start = None;
                }
                if multi_start.is_none() {
                    report.valid_up_to = reader.offset();
                }
            }
            Ok(None) => {
                if let Some(at) = multi_start {
                    report.problem = Some((at, Problem::UnfinishedMulti));
                }
                return;
            }
            Err(ReadError::Truncated { offset, .. }) => {
                report.problem = Some((offset, Problem::Truncated));
                return;
            }
            Err(ReadError::Format { offset, what }) => {
                report.problem = Some((offset, Problem::BadFormat(what)));
                return;
            }
            Err(ReadError::Io(error)) => {
                report.problem = Some((start, Problem::Unreadable(error.to_string())));
                return;
            }
        }
    }
}

/// Where to cut a file so that it ends before the first annotation later than `unix_seconds`
/// (point-in-time recovery); `None` if nothing is later.
pub fn cut_for_timestamp(report: &FileReport, unix_seconds: i64) -> Option<u64> {
    report
        .timestamps
        .iter()
        .find(|(_, seconds)| *seconds > unix_seconds)
        .map(|(offset, _)| *offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::encode_command;

    fn report_of(bytes: &[u8]) -> FileReport {
        let path = std::env::temp_dir().join(format!(
            "amber-aof-check-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).expect("write temp file");
        let report = check_file(&path);
        let _ = std::fs::remove_file(&path);
        report
    }

    #[test]
    fn reports_how_far_a_file_is_valid() {
        let mut bytes = b"#TS:100\r\n".to_vec();
        encode_command(&["SET", "a", "1"], &mut bytes);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(b"#TS:200\r\n");
        encode_command(&["MULTI"], &mut bytes);
        encode_command(&["SET", "b", "2"], &mut bytes);
        let report = report_of(&bytes);
        assert_eq!(
            report.problem.as_ref().map(|p| &p.1),
            Some(&Problem::UnfinishedMulti)
        );
        assert_eq!(report.valid_up_to, whole + 9);
        assert!(report.repairable_by_cut());
        assert_eq!(report.timestamps, vec![(0, 100), (whole, 200)]);
        assert_eq!(cut_for_timestamp(&report, 150), Some(whole));
        assert_eq!(cut_for_timestamp(&report, 250), None);

        let cut = report_of(&bytes[..bytes.len() - 3]);
        assert_eq!(
            cut.problem.as_ref().map(|p| &p.1),
            Some(&Problem::Truncated)
        );
        assert_eq!(cut.valid_up_to, whole + 9);
    }
}
