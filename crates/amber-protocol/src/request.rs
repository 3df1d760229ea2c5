//! Incremental parsing of client requests: RESP multibulk arrays and inline commands.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::inline::{InlineArg, split_inline};
use crate::number::parse_i64;

/// Longest inline request, or length line, that Redis accepts before it sees the line end.
const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Most arguments a client that has not authenticated yet may send in one request.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
/// Longest argument a client that has not authenticated yet may send.
const UNAUTHENTICATED_MAX_BULK: i64 = 16 * 1024;
/// Arguments at least this long get their buffer space reserved up front.
const BIG_ARG: usize = 32 * 1024;

/// The limits that apply to the next request of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest argument accepted.
    pub max_bulk_len: u64,
    /// Whether the client has authenticated (or needs no password); if not, much tighter limits apply.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// A request that breaks the protocol; Redis replies the error text and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// An inline request longer than 64 KiB without a line end.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// An inline request whose quotes do not balance.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*<count>` line longer than 64 KiB.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `*<count>` that is not a number or is too large.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// More than 10 arguments from a client that has not authenticated.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A `$<length>` line longer than 64 KiB.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An argument that does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", *.0 as char)]
    ExpectedDollar(u8),
    /// A `$<length>` that is not a number, negative, or above `proto-max-bulk-len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An argument over 16 KiB from a client that has not authenticated.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

/// A multibulk request of which only a part has arrived.
#[derive(Debug, Default)]
struct PartialRequest {
    remaining: usize,
    args: Vec<Bytes>,
    bulk_len: Option<usize>,
}

/// Parses requests out of a client's input buffer, keeping the progress of a request that has
/// only partly arrived, so that large pipelines and huge arguments parse in linear time.
#[derive(Debug, Default)]
pub struct RequestParser {
    partial: Option<PartialRequest>,
}

impl RequestParser {
    /// A parser with no request in progress.
    pub fn new() -> Self {
        RequestParser::default()
    }

    /// Whether part of a request has been consumed from the buffer but the request is not complete.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes of the arguments of the request in progress, already taken off the buffer
    /// (`argv-mem` in Redis's `CLIENT LIST`).
    pub fn pending_bytes(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |partial| partial.args.iter().map(Bytes::len).sum())
    }

    /// Takes the next complete request (its arguments, never empty) off the front of `buf`.
    /// Returns `Ok(None)` when more input is needed; empty requests are skipped as Redis does.
    pub fn next_request(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if let Some(partial) = self.partial.as_mut() {
                let done = read_bulks(partial, buf, limits)?;
                if !done {
                    return Ok(None);
                }
                let request = self.partial.take().map(|p| p.args);
                return Ok(request);
            }
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => match read_multibulk_header(buf, limits)? {
                    Header::Incomplete => return Ok(None),
                    Header::Empty => continue,
                    Header::Args(count) => {
                        self.partial = Some(PartialRequest {
                            remaining: count,
                            args: Vec::with_capacity(count.min(1024)),
                            bulk_len: None,
                        });
                    }
                },
                Some(_) => match read_inline(buf)? {
                    None => return Ok(None),
                    Some(args) if args.is_empty() => continue,
                    Some(args) => return Ok(Some(args)),
                },
            }
        }
    }
}

/// Scans the complete multibulk requests at the front of `buf` without consuming anything, and
/// hands `each` the second argument of each (the key, for most commands), for at most `max`
/// requests. Returns how many requests it looked at.
///
/// A pipelined batch can then have its keys' table entries brought into the cache together
/// before the requests run one by one. The scan is only a hint: it stops at the first request
/// that is inline, malformed or not yet complete, and the parser still checks everything.
/// `buf` must start at a request's first byte (see [`RequestParser::in_progress`]).
pub fn peek_keys<'a>(buf: &'a [u8], max: usize, mut each: impl FnMut(&'a [u8])) -> usize {
    let mut pos = 0;
    let mut scanned = 0;
    while scanned < max {
        let Some(rest) = buf.get(pos..) else { break };
        let Some((b'*', count @ 1.., after)) = peek_length_line(rest) else {
            break;
        };
        let mut at = pos + after;
        let mut key = None;
        for index in 0..count {
            let Some((b'$', len, after)) = buf.get(at..).and_then(peek_length_line) else {
                return scanned;
            };
            let start = at + after;
            let Some(end) = start.checked_add(len).filter(|&end| end + 2 <= buf.len()) else {
                return scanned;
            };
            if index == 1 {
                key = Some(&buf[start..end]);
            }
            at = end + 2;
        }
        if let Some(key) = key {
            each(key);
        }
        pos = at;
        scanned += 1;
    }
    scanned
}

/// Reads a `<kind><digits>\r\n` line at the start of `buf`: its kind byte, its number (digits
/// as Redis writes them: no sign, no leading zero) and the offset just past it. `None` for
/// anything else, including a line cut short.
fn peek_length_line(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (&kind, rest) = buf.split_first()?;
    let mut number = 0usize;
    for (at, &byte) in rest.iter().enumerate().take(20) {
        match byte {
            b'0' if at == 0 && rest.get(1) != Some(&b'\r') => return None,
            b'0'..=b'9' => {
                number = number
                    .checked_mul(10)?
                    .checked_add(usize::from(byte - b'0'))?;
            }
            b'\r' if at > 0 => {
                return (rest.get(at + 1) == Some(&b'\n')).then_some((kind, number, at + 3));
            }
            _ => return None,
        }
    }
    None
}

enum Header {
    Incomplete,
    Empty,
    Args(usize),
}

/// Finds the `\r` that ends a length line; a line is complete once one byte follows it.
fn find_line_end(buf: &[u8]) -> Option<usize> {
    let cr = buf.iter().position(|&b| b == b'\r')?;
    (cr + 1 < buf.len()).then_some(cr)
}

fn read_multibulk_header(buf: &mut BytesMut, limits: &Limits) -> Result<Header, ProtocolError> {
    let Some(cr) = find_line_end(buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigMultibulkCount);
        }
        return Ok(Header::Incomplete);
    };
    let count = match parse_i64(&buf[1..cr]) {
        Some(count) if count <= i64::from(i32::MAX) => count,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if count > UNAUTHENTICATED_MAX_ARGS && !limits.authenticated {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    buf.advance(cr + 2);
    if count <= 0 {
        return Ok(Header::Empty);
    }
    Ok(Header::Args(count as usize))
}

/// Reads as many arguments of `partial` as the buffer holds; true once all have arrived.
fn read_bulks(
    partial: &mut PartialRequest,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<bool, ProtocolError> {
    while partial.remaining > 0 {
        let len = match partial.bulk_len {
            Some(len) => len,
            None => match read_bulk_header(buf, limits)? {
                Some(len) => {
                    partial.bulk_len = Some(len);
                    len
                }
                None => return Ok(false),
            },
        };
        if buf.len() < len + 2 {
            return Ok(false);
        }
        partial.args.push(buf.split_to(len).freeze());
        buf.advance(2);
        partial.bulk_len = None;
        partial.remaining -= 1;
    }
    Ok(true)
}

fn read_bulk_header(buf: &mut BytesMut, limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    let Some(cr) = find_line_end(buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigBulkCount);
        }
        return Ok(None);
    };
    if buf[0] != b'$' {
        return Err(ProtocolError::ExpectedDollar(buf[0]));
    }
    let len = match parse_i64(&buf[1..cr]) {
        Some(len) if len >= 0 && (len as u64) <= limits.max_bulk_len => len,
        _ => return Err(ProtocolError::InvalidBulkLength),
    };
    if len > UNAUTHENTICATED_MAX_BULK && !limits.authenticated {
        return Err(ProtocolError::UnauthenticatedBulkLength);
    }
    buf.advance(cr + 2);
    let len = len as usize;
    if len >= BIG_ARG {
        buf.reserve(len + 2);
    }
    Ok(Some(len))
}

fn read_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = buf.split_to(newline + 1).freeze();
    let args = split_inline(&line[..line_end]).map_err(|_| ProtocolError::UnbalancedQuotes)?;
    // Arguments without quotes are slices of the line: no allocation each.
    Ok(Some(
        args.into_iter()
            .map(|arg| match arg {
                InlineArg::Span(span) => line.slice(span),
                InlineArg::Unquoted(bytes) => Bytes::from(bytes),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(request) = parser.next_request(&mut buf, &limits)? {
            out.push(request);
        }
        Ok(out)
    }

    fn peeked(input: &[u8], max: usize) -> (usize, Vec<Vec<u8>>) {
        let mut keys = Vec::new();
        let scanned = peek_keys(input, max, |key| keys.push(key.to_vec()));
        (scanned, keys)
    }

    #[test]
    fn peek_keys_reads_the_second_argument_of_each_complete_request() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$2\r\nbb\r\n$1\r\nx\r\n";
        assert_eq!(peeked(input, 16), (3, vec![b"a".to_vec(), b"bb".to_vec()]));
        assert_eq!(peeked(input, 1), (1, vec![b"a".to_vec()]));
    }

    #[test]
    fn peek_keys_stops_at_an_incomplete_inline_or_malformed_request() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
        for cut in 0..full.len() {
            let mut input = full.to_vec();
            input.extend_from_slice(&full[..cut]);
            assert_eq!(peeked(&input, 16), (1, vec![b"a".to_vec()]), "cut at {cut}");
        }
        assert_eq!(peeked(b"GET a\r\n", 16).0, 0);
        assert_eq!(peeked(b"*2\r\n$-1\r\n", 16).0, 0);
        assert_eq!(peeked(b"*2\r\n$99999999999999999999999\r\n", 16).0, 0);
        assert_eq!(peeked(b"*1\r\n$18446744073709551615\r\n", 16).0, 0);
    }

    /// Encodes requests as a client would, then cuts the bytes short and flips one byte.
    fn pipeline() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let arg = proptest::collection::vec(any::<u8>(), 0..6);
        let request = proptest::collection::vec(arg, 0..4);
        (
            proptest::collection::vec(request, 0..6),
            any::<usize>(),
            any::<(usize, u8)>(),
        )
            .prop_map(|(requests, cut, (at, byte))| {
                let mut out = Vec::new();
                for args in requests {
                    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                    for arg in args {
                        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                        out.extend_from_slice(&arg);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                if !out.is_empty() {
                    out.truncate(cut % (out.len() + 1));
                }
                if !out.is_empty() && byte % 4 == 0 {
                    let at = at % out.len();
                    out[at] = byte;
                }
                out
            })
    }

    proptest::proptest! {
        /// Whatever the bytes, the scan never panics, and the keys it names are the second
        /// arguments of the first requests the parser then takes off the same buffer.
        #[test]
        fn peek_keys_agrees_with_the_parser(input in pipeline()) {
            let (scanned, keys) = peeked(&input, 64);
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::from(&input[..]);
            let mut parsed = Vec::new();
            while let Ok(Some(request)) = parser.next_request(&mut buf, &Limits::default()) {
                parsed.push(request);
            }
            proptest::prop_assert!(parsed.len() >= scanned);
            let expected: Vec<Vec<u8>> = parsed
                .iter()
                .take(scanned)
                .filter_map(|args| args.get(1).map(|arg| arg.to_vec()))
                .collect();
            proptest::prop_assert_eq!(keys, expected);
        }
    }

    #[test]
    fn parses_multibulk_and_inline() {
        let got = parse_all(
            b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\nset k \"v v\"\n",
            Limits::default(),
        );
        let got = got.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![Bytes::from("GET"), Bytes::from("a")]);
        assert_eq!(got[1], vec![Bytes::from("PING")]);
        assert_eq!(
            got[2],
            vec![Bytes::from("set"), Bytes::from("k"), Bytes::from("v v")]
        );
    }

    #[test]
    fn skips_empty_requests() {
        let got = parse_all(b"*0\r\n*-1\r\n\r\n  \r\nPING\r\n", Limits::default()).unwrap();
        assert_eq!(got, vec![vec![Bytes::from("PING")]]);
    }

    #[test]
    fn waits_for_partial_input() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPI"[..]);
        assert_eq!(parser.next_request(&mut buf, &Limits::default()), Ok(None));
        buf.extend_from_slice(b"NG\r\n");
        let request = parser.next_request(&mut buf, &Limits::default()).unwrap();
        assert_eq!(request, Some(vec![Bytes::from("PING")]));
    }

    #[test]
    fn reports_redis_errors() {
        let limits = Limits::default();
        let cases: [(&[u8], ProtocolError); 5] = [
            (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n+PING\r\n", ProtocolError::ExpectedDollar(b'+')),
            (b"*1\r\n$-3\r\n", ProtocolError::InvalidBulkLength),
            (b"*3000000000\r\n", ProtocolError::InvalidMultibulkLength),
            (b"SET \"a\r\n", ProtocolError::UnbalancedQuotes),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_all(input, limits), Err(expected));
        }
        let long = vec![b'a'; INLINE_MAX_SIZE + 1];
        assert_eq!(parse_all(&long, limits), Err(ProtocolError::TooBigInline));
        assert_eq!(
            ProtocolError::ExpectedDollar(b'+').to_string(),
            "Protocol error: expected '$', got '+'"
        );
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = Limits {
            authenticated: false,
            ..Limits::default()
        };
        assert_eq!(
            parse_all(b"*11\r\n", limits),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n$16385\r\n", limits),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
        let small = Limits {
            max_bulk_len: 10,
            authenticated: true,
        };
        assert_eq!(
            parse_all(b"*1\r\n$11\r\n", small),
            Err(ProtocolError::InvalidBulkLength)
        );
    }
}
