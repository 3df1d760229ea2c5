//! Encoding of replies for RESP2 and RESP3 clients.

use bytes::BytesMut;

use crate::number::{format_double, push_i64};

/// The protocol a client chose with `HELLO`; RESP2 until it asks for 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2: maps and sets are flat arrays, nulls are `$-1`/`*-1`, doubles are bulk strings.
    #[default]
    Resp2,
    /// RESP3: typed maps, sets, nulls, doubles, booleans, verbatim strings and big numbers.
    Resp3,
}

/// Writes replies into an output buffer in the encoding of the client's protocol.
#[derive(Debug, Default)]
pub struct ReplyWriter {
    out: BytesMut,
    protocol: Protocol,
}

impl ReplyWriter {
    /// An empty writer for a client speaking `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self::with_capacity(protocol, 16 * 1024)
    }

    /// A writer whose buffer starts with room for `capacity` bytes (and grows as needed).
    pub fn with_capacity(protocol: Protocol, capacity: usize) -> Self {
        ReplyWriter {
            out: BytesMut::with_capacity(capacity),
            protocol,
        }
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the protocol for the replies that follow.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// The encoded bytes not yet taken.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Drops the replies written after `len` bytes (used to undo a partly written reply).
    pub fn truncate(&mut self, len: usize) {
        self.out.truncate(len);
    }

    /// Appends bytes that are already encoded.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string; line breaks are replaced by spaces so the reply stays valid.
    pub fn simple(&mut self, text: &str) {
        self.out.extend_from_slice(b"+");
        self.push_line(text.as_bytes());
    }

    /// An error reply. `message` carries its code (`ERR ...`, `WRONGTYPE ...`); line breaks become spaces.
    pub fn error(&mut self, message: &str) {
        self.error_bytes(message.as_bytes());
    }

    /// An error reply from raw bytes.
    pub fn error_bytes(&mut self, message: &[u8]) {
        self.out.extend_from_slice(b"-");
        self.push_line(message);
    }

    fn push_line(&mut self, text: &[u8]) {
        if text.iter().any(|&b| b == b'\r' || b == b'\n') {
            let cleaned: Vec<u8> = text
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect();
            self.out.extend_from_slice(&cleaned);
        } else {
            self.out.extend_from_slice(text);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// An integer.
    pub fn integer(&mut self, value: i64) {
        self.header(b':', value);
    }

    /// A bulk string.
    pub fn bulk(&mut self, value: &[u8]) {
        self.header(b'$', value.len() as i64);
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of an integer.
    pub fn bulk_i64(&mut self, value: i64) {
        self.bulk(crate::number::format_i64(value, &mut [0; 20]));
    }

    /// The null that stands for a missing string.
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// The null that stands for a missing array (e.g. a timed-out `BLPOP`, an aborted `EXEC`).
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// The header of an array of `len` elements.
    pub fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// The header of a map of `len` key/value pairs (a flat array of `2 * len` in RESP2).
    pub fn map(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.header(b'*', 2 * len as i64),
            Protocol::Resp3 => self.header(b'%', len as i64),
        }
    }

    /// The header of a set of `len` elements (an array in RESP2).
    pub fn set(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.header(b'*', len as i64),
            Protocol::Resp3 => self.header(b'~', len as i64),
        }
    }

    /// The header of a push message of `len` elements (an array in RESP2).
    pub fn push(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.header(b'*', len as i64),
            Protocol::Resp3 => self.header(b'>', len as i64),
        }
    }

    /// The header of an attribute map of `len` pairs, which precedes a reply in RESP3 only:
    /// in RESP2 the caller must leave the attribute's contents out too.
    pub fn attribute(&mut self, len: usize) {
        if self.protocol == Protocol::Resp3 {
            self.header(b'|', len as i64);
        }
    }

    /// A double, formatted as Redis 7.0 does (`%.17g`); a bulk string in RESP2.
    pub fn double(&mut self, value: f64) {
        let text = format_double(value);
        match self.protocol {
            Protocol::Resp2 => self.bulk(text.as_bytes()),
            Protocol::Resp3 => {
                self.out.extend_from_slice(b",");
                self.push_line(text.as_bytes());
            }
        }
    }

    /// A boolean; `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, value: bool) {
        match (self.protocol, value) {
            (Protocol::Resp2, true) => self.out.extend_from_slice(b":1\r\n"),
            (Protocol::Resp2, false) => self.out.extend_from_slice(b":0\r\n"),
            (Protocol::Resp3, true) => self.out.extend_from_slice(b"#t\r\n"),
            (Protocol::Resp3, false) => self.out.extend_from_slice(b"#f\r\n"),
        }
    }

    /// A verbatim string with a three-letter format such as `txt`; a bulk string in RESP2.
    pub fn verbatim(&mut self, format: &[u8; 3], text: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                self.header(b'=', text.len() as i64 + 4);
                self.out.extend_from_slice(format);
                self.out.extend_from_slice(b":");
                self.out.extend_from_slice(text);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A big number given in decimal; a bulk string in RESP2.
    pub fn big_number(&mut self, digits: &str) {
        match self.protocol {
            Protocol::Resp2 => self.bulk(digits.as_bytes()),
            Protocol::Resp3 => {
                self.out.extend_from_slice(b"(");
                self.push_line(digits.as_bytes());
            }
        }
    }

    fn header(&mut self, kind: u8, value: i64) {
        self.out.extend_from_slice(&[kind]);
        push_i64(&mut self.out, value);
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(protocol: Protocol, write: impl Fn(&mut ReplyWriter)) -> Vec<u8> {
        let mut writer = ReplyWriter::new(protocol);
        write(&mut writer);
        writer.buffer().to_vec()
    }

    #[test]
    fn resp2_flattens_resp3_types() {
        let r2 = encode(Protocol::Resp2, |w| {
            w.map(1);
            w.bulk(b"k");
            w.double(1.5);
            w.null();
            w.boolean(true);
        });
        assert_eq!(r2, b"*2\r\n$1\r\nk\r\n$3\r\n1.5\r\n$-1\r\n:1\r\n");
        let r3 = encode(Protocol::Resp3, |w| {
            w.map(1);
            w.bulk(b"k");
            w.double(f64::INFINITY);
            w.null();
            w.boolean(true);
            w.verbatim(b"txt", b"hi");
        });
        assert_eq!(r3, b"%1\r\n$1\r\nk\r\n,inf\r\n_\r\n#t\r\n=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn errors_never_break_lines() {
        let out = encode(Protocol::Resp2, |w| w.error("ERR a\r\nb"));
        assert_eq!(out, b"-ERR a  b\r\n");
    }
}
