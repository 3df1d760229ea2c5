//! Commands as the AOF stores them (RESP multibulk arrays), and a streaming reader that tells a
//! cleanly cut tail (a crash mid-write) from corruption, with byte offsets.

use std::io::{self, BufRead};

/// Appends `args` to `out` as a RESP array of bulk strings, the form every AOF command takes.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(amber_protocol::format_u64(value, &mut digits));
}

/// One thing read from an AOF: a command, or a `#` annotation line (such as `#TS:1700000000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A command's arguments, the name first.
    Command(Vec<Vec<u8>>),
    /// An annotation line without its `#` and line ending.
    Annotation(Vec<u8>),
}

/// What [`CommandReader::next_packed`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// A command, now in the [`PackedCommand`] passed in.
    Command,
    /// An annotation line without its `#` and line ending.
    Annotation(Vec<u8>),
}

/// A command's arguments stored back to back: `data` holds the bytes, `ends` where each
/// argument ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedCommand {
    /// Every argument's bytes, in order.
    pub data: Vec<u8>,
    /// The end offset in `data` of each argument.
    pub ends: Vec<usize>,
}

impl PackedCommand {
    /// The arguments, in order.
    pub fn args(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.data[start..end])
    }
}

/// Why reading stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file ends in the middle of a command: what a crash during a write leaves.
    #[error(
        "unexpected end of file at offset {offset} (last complete command ends at {valid_up_to})"
    )]
    Truncated {
        /// Where the file ends.
        offset: u64,
        /// The end of the last complete command.
        valid_up_to: u64,
    },
    /// Bytes that are not a RESP command: corruption, not a cut tail.
    #[error("bad file format at offset {offset}: {what}")]
    Format {
        /// Where the bad bytes start.
        offset: u64,
        /// What was expected.
        what: String,
    },
    /// The file could not be read.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// Largest argument count and bulk length accepted, so a corrupt length cannot allocate much.
const MAX_ARGS: u64 = 1 << 31;
const MAX_BULK: u64 = 1 << 40;
/// Bytes reserved up front for an argument; longer ones grow as they are read.
const PREALLOC_LIMIT: usize = 1 << 20;

/// Reads commands one at a time from a buffered AOF stream.
pub struct CommandReader<R> {
    inner: R,
    offset: u64,
    line: Vec<u8>,
}

impl<R: BufRead> CommandReader<R> {
    /// A reader over `inner`, whose first byte is at file offset `start`.
    pub fn new(inner: R, start: u64) -> CommandReader<R> {
        CommandReader {
            inner,
            offset: start,
            line: Vec::with_capacity(64),
        }
    }

    /// The file offset just after the last item read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next command or annotation; `Ok(None)` at a clean end of file.
    pub fn next_item(&mut self) -> Result<Option<Item>, ReadError> {
        let mut command = PackedCommand::default();
        Ok(match self.next_packed(&mut command)? {
            None => None,
            Some(Packed::Annotation(text)) => Some(Item::Annotation(text)),
            Some(Packed::Command) => {
                Some(Item::Command(command.args().map(<[u8]>::to_vec).collect()))
            }
        })
    }

    /// Like [`CommandReader::next_item`], but a command's arguments land back to back in one
    /// buffer (`command`, reused between calls): one allocation per command instead of one per
    /// argument, for fast loading.
    pub fn next_packed(
        &mut self,
        command: &mut PackedCommand,
    ) -> Result<Option<Packed>, ReadError> {
        command.data.clear();
        command.ends.clear();
        let start = self.offset;
        let mut at = start;
        let truncated = |end: u64| ReadError::Truncated {
            offset: end,
            valid_up_to: start,
        };
        let Some(read) = self.read_line()? else {
            return Ok(None);
        };
        at += read.0 as u64;
        let first = self.line.first().copied();
        if first != Some(b'#') && first != Some(b'*') {
            return Err(format_error(start, "'*' followed by the argument count"));
        }
        if !read.1 {
            return self.unfinished_line(start, at, start);
        }
        if first == Some(b'#') {
            let text = strip_crlf(&self.line[1..]).to_vec();
            self.offset = at;
            return Ok(Some(Packed::Annotation(text)));
        }
        let count = self.header(b'*', start, "'*' followed by the argument count")?;
        if count == 0 || count > MAX_ARGS {
            return Err(format_error(start, "an argument count of at least 1"));
        }
        for _ in 0..count {
            let line_start = at;
            let Some(read) = self.read_line()? else {
                return Err(truncated(at));
            };
            at += read.0 as u64;
            if !read.1 {
                return self.unfinished_line(line_start, at, start);
            }
            let len = self.header(b'$', line_start, "'$' followed by the argument length")?;
            if len > MAX_BULK {
                return Err(format_error(line_start, "an argument length under 1 TiB"));
            }
            command.data.reserve((len as usize).min(PREALLOC_LIMIT));
            let got = self.read_into(&mut command.data, len)?;
            at += got;
            if got < len {
                return Err(truncated(at));
            }
            command.ends.push(command.data.len());
            let mut crlf = [0u8; 2];
            let got = self.read_exact_or_eof(&mut crlf)?;
            at += got as u64;
            if got < 2 {
                return Err(truncated(at));
            }
            if crlf != *b"\r\n" {
                return Err(format_error(at - 2, "CRLF after the argument"));
            }
        }
        self.offset = at;
        Ok(Some(Packed::Command))
    }

    /// Fills `buf` from the reader; fewer bytes only at the end of the file.
    fn read_exact_or_eof(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut filled = 0;
        self.copy_out(buf.len() as u64, |chunk| {
            buf[filled..filled + chunk.len()].copy_from_slice(chunk);
            filled += chunk.len();
        })?;
        Ok(filled)
    }

    /// Appends up to `len` bytes to `out` straight from the reader's buffer; returns how many
    /// (fewer only at the end of the file).
    fn read_into(&mut self, out: &mut Vec<u8>, len: u64) -> Result<u64, ReadError> {
        self.copy_out(len, |chunk| out.extend_from_slice(chunk))
    }

    /// Hands up to `len` bytes to `sink`, chunk by chunk from the reader's buffer; returns how
    /// many (fewer only at the end of the file).
    fn copy_out(&mut self, len: u64, mut sink: impl FnMut(&[u8])) -> Result<u64, ReadError> {
        let mut left = len;
        while left > 0 {
            let available = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available.is_empty() {
                break;
            }
            let take = available
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            sink(&available[..take]);
            self.inner.consume(take);
            left -= take as u64;
        }
        Ok(len - left)
    }

    /// Reads one line (at most 64 KiB) into `self.line`: (bytes read, whether it ended with
    /// `\n`); None at EOF.
    fn read_line(&mut self) -> Result<Option<(usize, bool)>, ReadError> {
        const MAX_LINE: usize = 64 * 1024;
        self.line.clear();
        loop {
            let available = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available.is_empty() {
                break;
            }
            let room = MAX_LINE - self.line.len();
            let window = &available[..available.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.line.extend_from_slice(&window[..=end]);
                    self.inner.consume(end + 1);
                    return Ok(Some((self.line.len(), true)));
                }
                None => {
                    let taken = window.len();
                    self.line.extend_from_slice(window);
                    self.inner.consume(taken);
                    if self.line.len() >= MAX_LINE {
                        break;
                    }
                }
            }
        }
        if self.line.is_empty() {
            return Ok(None);
        }
        Ok(Some((self.line.len(), false)))
    }

    /// A line cut by the end of the file: a truncation if what is there could start a valid
    /// line, corruption otherwise.
    fn unfinished_line<T>(
        &self,
        line_start: u64,
        end: u64,
        valid_up_to: u64,
    ) -> Result<T, ReadError> {
        let line = &self.line;
        let plausible = line.len() < 64 * 1024
            && (line[0] == b'#'
                || (line[0] == b'*' || line[0] == b'$')
                    && line[1..]
                        .iter()
                        .enumerate()
                        .all(|(i, b)| b.is_ascii_digit() || (*b == b'\r' && i == line.len() - 2)));
        if plausible {
            Err(ReadError::Truncated {
                offset: end,
                valid_up_to,
            })
        } else {
            Err(format_error(line_start, "a complete line"))
        }
    }

    /// Parses `self.line` as `<prefix><decimal>\r\n`.
    fn header(&self, prefix: u8, offset: u64, what: &str) -> Result<u64, ReadError> {
        let line = &self.line;
        if line.first() != Some(&prefix) || !line.ends_with(b"\r\n") {
            return Err(format_error(offset, what));
        }
        let digits = &line[1..line.len() - 2];
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format_error(offset, what));
        }
        Ok(digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    }
}

fn strip_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn format_error(offset: u64, what: &str) -> ReadError {
    ReadError::Format {
        offset,
        what: format!("expected {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Item>, ReadError> {
        let mut reader = CommandReader::new(bytes, 0);
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    #[test]
    fn reads_commands_and_annotations() {
        let mut bytes = b"#TS:1700000000\r\n".to_vec();
        encode_command(&["SET", "k", "v"], &mut bytes);
        let items = read_all(&bytes).expect("valid");
        assert_eq!(items[0], Item::Annotation(b"TS:1700000000".to_vec()));
        assert_eq!(
            items[1],
            Item::Command(vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()])
        );
    }

    #[test]
    fn corruption_is_not_truncation() {
        let error = read_all(b"*1\r\n$4\r\nPING\r\nGARBAGE\r\n").expect_err("corrupt");
        assert!(
            matches!(error, ReadError::Format { offset: 14, .. }),
            "{error}"
        );
        let error = read_all(b"*1\r\n$4\r\nPINGxx*1\r\n").expect_err("corrupt");
        assert!(
            matches!(error, ReadError::Format { offset: 12, .. }),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn every_cut_of_a_log_is_a_clean_truncation(
            commands in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5), 1..8),
            cut_seed in any::<usize>(),
        ) {
            let mut bytes = Vec::new();
            let mut ends = vec![0u64];
            for command in &commands {
                encode_command(command, &mut bytes);
                ends.push(bytes.len() as u64);
            }
            let cut = cut_seed % (bytes.len() + 1);
            let mut reader = CommandReader::new(&bytes[..cut], 0);
            let mut read = Vec::new();
            let ending = loop {
                match reader.next_item() {
                    Ok(Some(Item::Command(args))) => read.push(args),
                    Ok(Some(Item::Annotation(_))) => prop_assert!(false, "no annotations written"),
                    Ok(None) => break None,
                    Err(ReadError::Truncated { valid_up_to, .. }) => break Some(valid_up_to),
                    Err(other) => { prop_assert!(false, "cut read as corruption: {other}"); unreachable!() }
                }
            };
            let complete = ends.iter().filter(|&&end| end <= cut as u64).count() - 1;
            prop_assert_eq!(&read[..], &commands[..complete]);
            match ending {
                None => prop_assert_eq!(ends[complete], cut as u64),
                Some(valid) => prop_assert_eq!(valid, ends[complete]),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_all(&bytes);
        }
    }
}
