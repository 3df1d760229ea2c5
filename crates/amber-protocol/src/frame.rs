//! A complete RESP2/RESP3 value, with a parser and an encoder, for clients, tests and tools.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use crate::number::push_i64;

/// Deepest nesting of aggregates the parser follows before it gives up.
const MAX_DEPTH: usize = 128;

/// One RESP value as it travels on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`
    Simple(Vec<u8>),
    /// `-text`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$len` followed by the bytes.
    Bulk(Vec<u8>),
    /// `$-1`, RESP2's null string.
    NullBulk,
    /// `*-1`, RESP2's null array.
    NullArray,
    /// `*len` followed by the elements.
    Array(Vec<Frame>),
    /// `_`, RESP3's null.
    Null,
    /// `#t` / `#f`
    Boolean(bool),
    /// `,value`
    Double(f64),
    /// `(digits`
    BigNumber(Vec<u8>),
    /// `!len` followed by the error text.
    BulkError(Vec<u8>),
    /// `=len` followed by a three-letter format, `:`, and the text.
    Verbatim([u8; 3], Vec<u8>),
    /// `%len` followed by key/value pairs.
    Map(Vec<(Frame, Frame)>),
    /// `~len` followed by the elements.
    Set(Vec<Frame>),
    /// `>len` followed by the elements.
    Push(Vec<Frame>),
}

/// Why bytes are not a valid RESP value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The first byte of a value is not a RESP type marker.
    #[error("unknown RESP type byte 0x{byte:02x} at offset {offset}")]
    UnknownType {
        /// The byte found.
        byte: u8,
        /// Where it was found.
        offset: usize,
    },
    /// A length or number line does not hold a valid number.
    #[error("invalid number at offset {0}")]
    InvalidNumber(usize),
    /// A bulk payload is not followed by `\r\n`.
    #[error("missing CRLF after payload at offset {0}")]
    MissingCrlf(usize),
    /// Aggregates nest deeper than the parser follows.
    #[error("aggregates nested deeper than {MAX_DEPTH} at offset {0}")]
    TooDeep(usize),
}

impl Frame {
    /// Parses one value from the front of `input`: `Ok(Some((frame, consumed)))`, or `Ok(None)`
    /// when the value has not fully arrived.
    pub fn parse(input: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let mut pos = 0;
        match parse_at(input, &mut pos, 0)? {
            Some(frame) => Ok(Some((frame, pos))),
            None => Ok(None),
        }
    }

    /// Appends the wire form of this value to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Simple(text) => line(out, b'+', text),
            Frame::Error(text) => line(out, b'-', text),
            Frame::Integer(value) => header(out, b':', *value),
            Frame::Bulk(data) => payload(out, b'$', data),
            Frame::NullBulk => out.put_slice(b"$-1\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => aggregate(out, b'*', items),
            Frame::Null => out.put_slice(b"_\r\n"),
            Frame::Boolean(value) => out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Double(value) => line(out, b',', format_round_trip(*value).as_bytes()),
            Frame::BigNumber(digits) => line(out, b'(', digits),
            Frame::BulkError(text) => payload(out, b'!', text),
            Frame::Verbatim(format, text) => {
                header(out, b'=', text.len() as i64 + 4);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Frame::Map(pairs) => {
                header(out, b'%', pairs.len() as i64);
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Frame::Set(items) => aggregate(out, b'~', items),
            Frame::Push(items) => aggregate(out, b'>', items),
        }
    }

    /// A request as clients send it: an array of bulk strings.
    pub fn command<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Frame::Array(
            args.into_iter()
                .map(|a| Frame::Bulk(a.as_ref().to_vec()))
                .collect(),
        )
    }
}

fn format_round_trip(value: f64) -> String {
    if value.is_nan() {
        "nan".into()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{value:?}")
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, value: i64) {
    out.put_u8(kind);
    push_i64(out, value);
    out.put_slice(b"\r\n");
}

fn payload(out: &mut BytesMut, kind: u8, data: &[u8]) {
    header(out, kind, data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, kind: u8, items: &[Frame]) {
    header(out, kind, items.len() as i64);
    for item in items {
        item.encode(out);
    }
}

/// Reads the line at `*pos` (without its `\r\n`) and moves past it.
fn read_line<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = input.get(*pos..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *pos += end + 2;
    Some(&rest[..end])
}

fn parse_number(text: &[u8], offset: usize) -> Result<i64, FrameError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(FrameError::InvalidNumber(offset))
}

fn read_payload(input: &[u8], pos: &mut usize, len: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let end = pos.saturating_add(len);
    if input.len() < end.saturating_add(2) {
        return Ok(None);
    }
    if &input[end..end + 2] != b"\r\n" {
        return Err(FrameError::MissingCrlf(end));
    }
    let data = input[*pos..end].to_vec();
    *pos = end + 2;
    Ok(Some(data))
}

fn parse_items(
    input: &[u8],
    pos: &mut usize,
    depth: usize,
    count: usize,
) -> Result<Option<Vec<Frame>>, FrameError> {
    let mut items = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        match parse_at(input, pos, depth + 1)? {
            Some(item) => items.push(item),
            None => return Ok(None),
        }
    }
    Ok(Some(items))
}

fn parse_at(input: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Frame>, FrameError> {
    let start = *pos;
    if depth > MAX_DEPTH {
        return Err(FrameError::TooDeep(start));
    }
    let Some(&kind) = input.get(start) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(text) = read_line(input, pos) else {
        return Ok(None);
    };
    let number = || parse_number(text, start + 1);
    let length = || -> Result<usize, FrameError> {
        usize::try_from(parse_number(text, start + 1)?)
            .map_err(|_| FrameError::InvalidNumber(start))
    };
    let frame = match kind {
        b'+' => Frame::Simple(text.to_vec()),
        b'-' => Frame::Error(text.to_vec()),
        b':' => Frame::Integer(number()?),
        b'_' => Frame::Null,
        b'#' => match text {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(FrameError::InvalidNumber(start + 1)),
        },
        b',' => Frame::Double(parse_double(text).ok_or(FrameError::InvalidNumber(start + 1))?),
        b'(' => Frame::BigNumber(text.to_vec()),
        b'$' if text == b"-1" => Frame::NullBulk,
        b'*' if text == b"-1" => Frame::NullArray,
        b'$' | b'!' | b'=' => {
            let Some(data) = read_payload(input, pos, length()?)? else {
                return Ok(None);
            };
            match kind {
                b'$' => Frame::Bulk(data),
                b'!' => Frame::BulkError(data),
                _ => verbatim(data, start)?,
            }
        }
        b'*' | b'~' | b'>' => {
            let Some(items) = parse_items(input, pos, depth, length()?)? else {
                return Ok(None);
            };
            match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => Frame::Push(items),
            }
        }
        b'%' => {
            let Some(items) = parse_items(input, pos, depth, length()?.saturating_mul(2))? else {
                return Ok(None);
            };
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                pairs.push((key, value));
            }
            Frame::Map(pairs)
        }
        byte => {
            return Err(FrameError::UnknownType {
                byte,
                offset: start,
            });
        }
    };
    Ok(Some(frame))
}

fn verbatim(data: Vec<u8>, offset: usize) -> Result<Frame, FrameError> {
    if data.len() < 4 || data[3] != b':' {
        return Err(FrameError::InvalidNumber(offset));
    }
    let format = [data[0], data[1], data[2]];
    Ok(Frame::Verbatim(format, data[4..].to_vec()))
}

fn parse_double(text: &[u8]) -> Option<f64> {
    match text {
        b"inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_resp3() {
        let input = b"%1\r\n+a\r\n*2\r\n:1\r\n,1.5\r\nextra";
        let (frame, used) = Frame::parse(input).unwrap().unwrap();
        assert_eq!(used, input.len() - 5);
        assert_eq!(
            frame,
            Frame::Map(vec![(
                Frame::Simple(b"a".to_vec()),
                Frame::Array(vec![Frame::Integer(1), Frame::Double(1.5)])
            )])
        );
    }

    #[test]
    fn incomplete_and_invalid() {
        assert_eq!(Frame::parse(b"$5\r\nab"), Ok(None));
        assert_eq!(Frame::parse(b"*2\r\n:1\r\n"), Ok(None));
        assert!(Frame::parse(b"?x\r\n").is_err());
        assert!(Frame::parse(b"$2\r\nabcd\r\n").is_err());
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 5);
        assert!(matches!(Frame::parse(&deep), Err(FrameError::TooDeep(_))));
    }
}
