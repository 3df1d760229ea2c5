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
    /// Zeros after the last command: the unused space of a preallocated incr file
    /// (`aof-preallocate`) a crash left; cutting them loses nothing.
    ZeroPadding,
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
            Some((
                _,
                Problem::Truncated | Problem::UnfinishedMulti | Problem::ZeroPadding
            ))
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
        path,
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

/// Reads the commands of `path` (from `reader`) into `report`.
fn check_commands<R: std::io::BufRead>(
    mut reader: CommandReader<R>,
    path: &Path,
    report: &mut FileReport,
) {
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
                report.problem = Some(match zero_tail(path, offset, start) {
                    Ok(Some(ZeroTail::Padding)) => (start, Problem::ZeroPadding),
                    Ok(Some(ZeroTail::CutCommand)) => (start, Problem::Truncated),
                    _ => (offset, Problem::BadFormat(what)),
                });
                return;
            }
            Err(ReadError::Io(error)) => {
                report.problem = Some((start, Problem::Unreadable(error.to_string())));
                return;
            }
        }
    }
}

/// What the zeros at the end of a preallocated incr file mean for a command that failed to
/// parse (see [`zero_tail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroTail {
    /// Only zeros from the command's start to the end of the file: unused space.
    Padding,
    /// The command stops, on the line where it failed, where the zeros begin: a write cut
    /// short by a crash, repaired like a file that ends mid-command.
    CutCommand,
}

/// Whether a command of `path` that starts at `command_start` and failed to parse at
/// `error_at` is the end of a preallocated incr file (`aof-preallocate`): zeros never start
/// a command, nor end one on its last line, by design. `None` for anything else (no zeros
/// at the end, or a bad byte lines before them), which stays an error of format.
pub fn zero_tail(
    path: &Path,
    error_at: u64,
    command_start: u64,
) -> std::io::Result<Option<ZeroTail>> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 64 * 1024;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut block = vec![0u8; BLOCK as usize];
    let mut content_end = 0;
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let bytes = &mut block[..usize::try_from(end - start).unwrap_or(0)];
        file.read_exact_at(bytes, start)?;
        if let Some(last) = bytes.iter().rposition(|&b| b != 0) {
            content_end = start + last as u64 + 1;
            break;
        }
        end = start;
    }
    if content_end == len {
        return Ok(None);
    }
    if content_end <= command_start {
        return Ok(Some(ZeroTail::Padding));
    }
    let from = error_at.min(content_end);
    if content_end - from > BLOCK {
        return Ok(None);
    }
    let mut line = vec![0u8; usize::try_from(content_end - from).unwrap_or(0)];
    file.read_exact_at(&mut line, from)?;
    Ok((!line.contains(&b'\n')).then_some(ZeroTail::CutCommand))
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

    fn commands(count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 0..count {
            let key = format!("key{i}");
            encode_command(&[b"SET".as_slice(), key.as_bytes(), b"value"], &mut bytes);
        }
        bytes
    }

    #[test]
    fn zeros_after_the_last_command_are_padding() {
        let mut bytes = commands(3);
        let end = bytes.len() as u64;
        bytes.resize(bytes.len() + 5000, 0);
        let report = report_of(&bytes);
        assert_eq!(report.problem, Some((end, Problem::ZeroPadding)));
        assert_eq!(report.valid_up_to, end);
        assert!(report.repairable_by_cut());
    }

    #[test]
    fn a_command_cut_short_by_zeros_is_a_cut_tail() {
        let whole = commands(3);
        let last = commands(1).len();
        for cut in whole.len() - last + 1..whole.len() {
            let mut bytes = whole[..cut].to_vec();
            bytes.resize(cut + 6001, 0);
            let report = report_of(&bytes);
            let valid = (whole.len() - last) as u64;
            assert_eq!(
                report.problem,
                Some((valid, Problem::Truncated)),
                "cut {cut}"
            );
            assert_eq!(report.valid_up_to, valid, "cut {cut}");
        }
    }

    #[test]
    fn zeros_followed_by_data_or_after_corruption_are_bad_format() {
        let mut holed = commands(2);
        holed.resize(holed.len() + 4096, 0);
        holed.extend(commands(2));
        assert!(matches!(
            report_of(&holed).problem,
            Some((_, Problem::BadFormat(_)))
        ));
        let mut corrupt = commands(4);
        let second = commands(1).len();
        corrupt[second] = b'!';
        corrupt.resize(corrupt.len() + 7000, 0);
        assert!(matches!(
            report_of(&corrupt).problem,
            Some((_, Problem::BadFormat(_)))
        ));
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
