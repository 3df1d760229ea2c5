//! The multi-part AOF manifest (`appendonly.aof.manifest`): which base, incr and history files
//! make up the log, parsed and written as Redis 7 does.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// What role a file plays in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The base: an RDB snapshot or a command dump, loaded first.
    Base,
    /// A file that was replaced by a rewrite and is waiting to be deleted.
    History,
    /// An incremental file: commands appended after the base.
    Incr,
}

impl FileKind {
    /// The one-letter code used in the manifest (`b`, `h`, `i`).
    pub fn code(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::History => 'h',
            FileKind::Incr => 'i',
        }
    }
}

/// One `file NAME seq N type T` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's name inside the AOF directory.
    pub name: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its role.
    pub kind: FileKind,
}

/// Why a manifest could not be read, in the words Redis logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A line longer than 1024 bytes.
    #[error("The AOF manifest file contains too long line (line {line})")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// A line that is not `file NAME seq N type T` (plus optional extra pairs).
    #[error("Invalid AOF manifest file format (line {line})")]
    InvalidFormat {
        /// 1-based line number.
        line: usize,
    },
    /// A type other than `b`, `h` or `i`.
    #[error("Unknown AOF file type (line {line})")]
    UnknownType {
        /// 1-based line number.
        line: usize,
    },
    /// Two base files.
    #[error("Found duplicate base file information (line {line})")]
    DuplicateBase {
        /// 1-based line number.
        line: usize,
    },
    /// Incr files whose sequence numbers do not increase.
    #[error("Found a non-monotonic sequence number (line {line})")]
    NonMonotonic {
        /// 1-based line number.
        line: usize,
    },
    /// A file name with a directory in it.
    #[error("File can't be a path, just a filename (line {line})")]
    PathName {
        /// 1-based line number.
        line: usize,
    },
    /// An empty manifest file.
    #[error("Found an empty AOF manifest")]
    Empty,
}

impl ManifestError {
    /// The line the error is on (none for an empty manifest).
    pub fn line(&self) -> Option<usize> {
        match *self {
            ManifestError::LineTooLong { line }
            | ManifestError::InvalidFormat { line }
            | ManifestError::UnknownType { line }
            | ManifestError::DuplicateBase { line }
            | ManifestError::NonMonotonic { line }
            | ManifestError::PathName { line } => Some(line),
            ManifestError::Empty => None,
        }
    }

    /// Redis's words for the error, without the line number.
    pub fn reason(&self) -> &'static str {
        match self {
            ManifestError::LineTooLong { .. } => "The AOF manifest file contains too long line",
            ManifestError::InvalidFormat { .. } => "Invalid AOF manifest file format",
            ManifestError::UnknownType { .. } => "Unknown AOF file type",
            ManifestError::DuplicateBase { .. } => "Found duplicate base file information",
            ManifestError::NonMonotonic { .. } => "Found a non-monotonic sequence number",
            ManifestError::PathName { .. } => "File can't be a path, just a filename",
            ManifestError::Empty => "Found an empty AOF manifest",
        }
    }
}

/// The list of files that make up a multi-part AOF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<FileInfo>,
    /// Incr files, oldest first.
    pub incrs: Vec<FileInfo>,
    /// Files replaced by a rewrite, to delete.
    pub history: Vec<FileInfo>,
    /// The highest base sequence number used so far.
    pub base_seq: u64,
    /// The highest incr sequence number used so far.
    pub incr_seq: u64,
}

/// Longest manifest line Redis accepts.
pub const MAX_LINE: usize = 1024;

impl Manifest {
    /// Parses manifest text with Redis's rules: lines starting with `#` are skipped, a blank
    /// line or one without its newline is an error, at most one base, increasing incr
    /// sequence numbers, unknown key/value pairs ignored. Only a file with no line at all is
    /// [`ManifestError::Empty`].
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        if text.is_empty() {
            return Err(ManifestError::Empty);
        }
        let mut manifest = Manifest::default();
        for (index, raw) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            if raw.starts_with(b"#") {
                continue;
            }
            if !raw[..raw.len().min(MAX_LINE)].contains(&b'\n') {
                return Err(ManifestError::LineTooLong { line });
            }
            let info = parse_line(trim(raw), line)?;
            match info.kind {
                FileKind::Base => {
                    if manifest.base.is_some() {
                        return Err(ManifestError::DuplicateBase { line });
                    }
                    manifest.base_seq = info.seq;
                    manifest.base = Some(info);
                }
                FileKind::History => manifest.history.push(info),
                FileKind::Incr => {
                    if info.seq <= manifest.incr_seq {
                        return Err(ManifestError::NonMonotonic { line });
                    }
                    manifest.incr_seq = info.seq;
                    manifest.incrs.push(info);
                }
            }
        }
        Ok(manifest)
    }

    /// The manifest text: base first, then history, then incr files.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let files = self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incrs.iter());
        for info in files {
            let _ = writeln!(
                text,
                "file {} seq {} type {}",
                quote_if_needed(&info.name),
                info.seq,
                info.kind.code()
            );
        }
        text
    }

    /// Adds a new incr file named after `prefix` (`appendfilename`) and returns its name.
    pub fn add_incr(&mut self, prefix: &str) -> String {
        self.incr_seq += 1;
        let name = incr_name(prefix, self.incr_seq);
        self.incrs.push(FileInfo {
            name: name.clone(),
            seq: self.incr_seq,
            kind: FileKind::Incr,
        });
        name
    }

    /// Makes `name` the new base (the old base and every incr file become history) and returns
    /// the sequence number it got.
    pub fn replace_base(&mut self, name: String, seq: u64) {
        if let Some(mut old) = self.base.take() {
            old.kind = FileKind::History;
            self.history.push(old);
        }
        for mut incr in self.incrs.drain(..) {
            incr.kind = FileKind::History;
            self.history.push(incr);
        }
        self.base_seq = seq;
        self.base = Some(FileInfo {
            name,
            seq,
            kind: FileKind::Base,
        });
    }

    /// The files to load, in order: the base, then the incr files.
    pub fn load_order(&self) -> impl Iterator<Item = &FileInfo> {
        self.base.iter().chain(self.incrs.iter())
    }

    /// The incr file new commands are appended to, if any.
    pub fn last_incr(&self) -> Option<&FileInfo> {
        self.incrs.last()
    }
}

/// `appendonly.aof.<seq>.base.rdb` (or `.base.aof` for a command-form base).
pub fn base_name(prefix: &str, seq: u64, rdb: bool) -> String {
    let format = if rdb { "rdb" } else { "aof" };
    format!("{prefix}.{seq}.base.{format}")
}

/// `appendonly.aof.<seq>.incr.aof`.
pub fn incr_name(prefix: &str, seq: u64) -> String {
    format!("{prefix}.{seq}.incr.aof")
}

/// `appendonly.aof.manifest`.
pub fn manifest_name(prefix: &str) -> String {
    format!("{prefix}.manifest")
}

/// Writes `manifest` to `dir/<prefix>.manifest` atomically: a temp file, fsynced, renamed over
/// the old manifest, then the directory fsynced.
pub fn persist(dir: &Path, prefix: &str, manifest: &Manifest) -> std::io::Result<()> {
    let name = manifest_name(prefix);
    let temp = dir.join(format!("temp-{name}"));
    amber_snapshot::durable::replace_with(&dir.join(&name), &temp, |out| {
        out.write_all(manifest.render().as_bytes())
    })
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b" \t\r\n".contains(b))
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b" \t\r\n".contains(b))
        .map_or(start, |p| p + 1);
    &line[start..end.max(start)]
}

fn parse_line(line: &[u8], number: usize) -> Result<FileInfo, ManifestError> {
    let invalid = ManifestError::InvalidFormat { line: number };
    let words = amber_protocol::split_args(line).map_err(|_| invalid.clone())?;
    if words.len() < 6 || words.len() % 2 != 0 {
        return Err(invalid);
    }
    let (mut name, mut seq, mut kind) = (None, 0, None);
    for pair in words.chunks(2) {
        let value = &pair[1];
        if pair[0].eq_ignore_ascii_case(b"file") {
            let text = String::from_utf8_lossy(value).into_owned();
            if text.contains('/') {
                return Err(ManifestError::PathName { line: number });
            }
            name = Some(text);
        } else if pair[0].eq_ignore_ascii_case(b"seq") {
            seq = leading_number(value);
        } else if pair[0].eq_ignore_ascii_case(b"type") {
            // Redis reads the first letter only.
            kind = value.first().copied();
        }
    }
    let (Some(name), Some(kind)) = (name, kind) else {
        return Err(invalid);
    };
    if seq == 0 {
        return Err(invalid);
    }
    let kind = match kind {
        b'b' => FileKind::Base,
        b'h' => FileKind::History,
        b'i' => FileKind::Incr,
        _ => return Err(ManifestError::UnknownType { line: number }),
    };
    Ok(FileInfo { name, seq, kind })
}

/// The number a sequence field starts with, as C's `atoll` reads it (0 when none, which
/// Redis then refuses).
fn leading_number(value: &[u8]) -> u64 {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&value[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn quote_if_needed(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        name.to_string()
    } else {
        amber_protocol::quote_arg(name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_redis_writes() {
        let text = b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let manifest = Manifest::parse(text).expect("valid");
        assert_eq!(manifest.base.as_ref().map(|b| b.seq), Some(2));
        assert_eq!(manifest.incrs.len(), 1);
        assert_eq!(manifest.render().as_bytes(), text);
    }

    #[test]
    fn rejects_what_redis_rejects() {
        assert_eq!(Manifest::parse(b""), Err(ManifestError::Empty));
        assert_eq!(
            Manifest::parse(b"# only a comment\n"),
            Ok(Manifest::default())
        );
        assert_eq!(
            Manifest::parse(b"file a seq 1 type b\n\nfile b seq 1 type i\n"),
            Err(ManifestError::InvalidFormat { line: 2 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 1 type b"),
            Err(ManifestError::LineTooLong { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 0 type b\n"),
            Err(ManifestError::InvalidFormat { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"file dir/a seq 1 type b\n"),
            Err(ManifestError::PathName { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 1\n"),
            Err(ManifestError::InvalidFormat { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 1 type x\n"),
            Err(ManifestError::UnknownType { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 1 type b\nfile b seq 2 type b\n"),
            Err(ManifestError::DuplicateBase { line: 2 })
        );
        assert_eq!(
            Manifest::parse(b"file a seq 2 type i\nfile b seq 2 type i\n"),
            Err(ManifestError::NonMonotonic { line: 2 })
        );
        let long = format!("file {} seq 1 type b\n", "x".repeat(1100));
        assert_eq!(
            Manifest::parse(long.as_bytes()),
            Err(ManifestError::LineTooLong { line: 1 })
        );
    }

    #[test]
    fn extra_pairs_are_ignored_and_quoted_names_round_trip() {
        let manifest = Manifest::parse(b"file \"a b\" seq 1 type b future yes\n").expect("valid");
        assert_eq!(manifest.base.as_ref().map(|b| b.name.as_str()), Some("a b"));
        assert_eq!(
            Manifest::parse(manifest.render().as_bytes()).expect("round trip"),
            manifest
        );
    }

    #[test]
    fn rewrite_moves_old_files_to_history() {
        let mut manifest = Manifest::default();
        manifest.replace_base(base_name("appendonly.aof", 1, true), 1);
        manifest.add_incr("appendonly.aof");
        manifest.replace_base(base_name("appendonly.aof", 2, true), 2);
        let incr = manifest.add_incr("appendonly.aof");
        assert_eq!(incr, "appendonly.aof.2.incr.aof");
        assert_eq!(manifest.history.len(), 2);
        let names: Vec<_> = manifest.load_order().map(|f| f.name.clone()).collect();
        assert_eq!(
            names,
            ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"]
        );
    }
}
