//! Streaming reader: walks an RDB file item by item, verifying the checksum at the end.

use std::io::Read;

use crate::encodings;
use crate::error::{ErrorKind, RdbError};
use crate::lzf;
use crate::model::{Entry, Item, Value, opcodes, types};
use crate::raw::{QuicklistNode, RawValue, Strings, parse_score};

/// The newest RDB version this reader understands.
pub const MAX_VERSION: u32 = 12;

/// Bytes read at a time for long strings, so a bogus length cannot allocate without bound.
const CHUNK: usize = 1 << 20;

/// Bytes buffered from the source at a time.
const BUFFER: usize = 256 * 1024;

/// Byte source with its own buffer: counts its offset and feeds the running CRC-64 with whole
/// consumed stretches of the buffer (one CRC call per refill, not one per field).
pub(crate) struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Start of the consumed bytes not yet added to `digest`.
    crc_from: usize,
    offset: u64,
    digest: crc_fast::Digest,
    /// Buffers given back by the consumer, reused for the next strings.
    spare: Vec<Vec<u8>>,
}

/// Buffers kept for reuse, and the largest capacity worth keeping.
const SPARE_BUFFERS: usize = 8;
const SPARE_CAPACITY: usize = 1 << 20;

impl<R: Read> Input<R> {
    fn new(inner: R) -> Input<R> {
        Input {
            inner,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            crc_from: 0,
            offset: 0,
            digest: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis),
            spare: Vec::new(),
        }
    }

    /// Reads more from the source into an emptied buffer; false at the end of the source.
    fn refill(&mut self) -> Result<bool, ErrorKind> {
        self.digest.update(&self.buf[self.crc_from..self.pos]);
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        self.crc_from = 0;
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ErrorKind::Io(e)),
            }
        }
    }

    /// The CRC-64 of everything consumed so far.
    fn checksum_so_far(&mut self) -> u64 {
        self.digest.update(&self.buf[self.crc_from..self.pos]);
        self.crc_from = self.pos;
        self.digest.finalize()
    }

    /// Fills `buf` completely.
    pub(crate) fn fill(&mut self, out: &mut [u8], what: &'static str) -> Result<(), ErrorKind> {
        let mut done = 0;
        while done < out.len() {
            if self.pos == self.end && !self.refill()? {
                return Err(ErrorKind::UnexpectedEof(what));
            }
            let take = (out.len() - done).min(self.end - self.pos);
            out[done..done + take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            self.offset += take as u64;
            done += take;
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ErrorKind> {
        if self.pos < self.end {
            let byte = self.buf[self.pos];
            self.pos += 1;
            self.offset += 1;
            return Ok(byte);
        }
        let mut byte = [0u8; 1];
        self.fill(&mut byte, what)?;
        Ok(byte[0])
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], ErrorKind> {
        let mut bytes = [0u8; N];
        self.fill(&mut bytes, what)?;
        Ok(bytes)
    }

    /// An empty buffer, reused if the consumer gave one back.
    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Keeps `buffer` for reuse (a few, not too large).
    pub(crate) fn give_back(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS
            && buffer.capacity() > 0
            && buffer.capacity() <= SPARE_CAPACITY
        {
            self.spare.push(buffer);
        }
    }

    /// Reads `len` bytes, growing the buffer only as data actually arrives.
    pub(crate) fn bytes(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>, ErrorKind> {
        let len =
            usize::try_from(len).map_err(|_| ErrorKind::InvalidLength(format!("{len} bytes")))?;
        let mut out = self.take_buffer();
        out.reserve(len.min(CHUNK));
        while out.len() < len {
            let start = out.len();
            let step = (len - start).min(CHUNK);
            out.resize(start + step, 0);
            self.fill(&mut out[start..], what)?;
        }
        Ok(out)
    }

    /// A length: returns `(value, is_special_encoding)`.
    pub(crate) fn length_or_encoding(&mut self) -> Result<(u64, bool), ErrorKind> {
        let first = self.u8("a length")?;
        Ok(match first >> 6 {
            0 => (u64::from(first & 0x3f), false),
            1 => (
                (u64::from(first & 0x3f) << 8) | u64::from(self.u8("a length")?),
                false,
            ),
            2 => match first {
                0x80 => (
                    u64::from(u32::from_be_bytes(self.array("a length")?)),
                    false,
                ),
                0x81 => (u64::from_be_bytes(self.array("a length")?), false),
                other => {
                    return Err(ErrorKind::InvalidLength(format!(
                        "unknown length prefix 0x{other:02x}"
                    )));
                }
            },
            _ => (u64::from(first & 0x3f), true),
        })
    }

    /// A plain length (no special encoding allowed).
    pub(crate) fn length(&mut self) -> Result<u64, ErrorKind> {
        match self.length_or_encoding()? {
            (len, false) => Ok(len),
            (_, true) => Err(ErrorKind::InvalidLength(
                "a string encoding where a length was expected".into(),
            )),
        }
    }

    /// A length used as an element count: bounded by what the rest of the input could hold.
    pub(crate) fn count(&mut self) -> Result<u64, ErrorKind> {
        let count = self.length()?;
        if count > (1 << 40) {
            return Err(ErrorKind::InvalidLength(format!("{count} elements")));
        }
        Ok(count)
    }

    /// A string in any of Redis's encodings (raw, int8/16/32, LZF).
    pub(crate) fn string(&mut self) -> Result<Vec<u8>, ErrorKind> {
        let (len, special) = self.length_or_encoding()?;
        self.string_after(len, special)
    }

    /// The rest of a string whose length or encoding byte was read.
    fn string_after(&mut self, len: u64, special: bool) -> Result<Vec<u8>, ErrorKind> {
        match (len, special) {
            (len, false) => self.bytes(len, "a string"),
            (0, true) => Ok((self.u8("an int8")? as i8).to_string().into_bytes()),
            (1, true) => Ok(i16::from_le_bytes(self.array("an int16")?)
                .to_string()
                .into_bytes()),
            (2, true) => Ok(i32::from_le_bytes(self.array("an int32")?)
                .to_string()
                .into_bytes()),
            (3, true) => {
                let (compressed, len) = self.lzf_data()?;
                let mut out = self.take_buffer();
                lzf::decompress_into(&compressed, len, &mut out)?;
                self.give_back(compressed);
                Ok(out)
            }
            (other, true) => Err(ErrorKind::InvalidLength(format!(
                "unknown string encoding {other}"
            ))),
        }
    }

    /// An LZF string's compressed bytes and its declared length, once the lengths are
    /// plausible (a declared length LZF cannot reach from the compressed size is corrupt).
    fn lzf_data(&mut self) -> Result<(Vec<u8>, usize), ErrorKind> {
        let compressed_len = self.length()?;
        let len = self.length()?;
        if len > compressed_len.saturating_mul(300).saturating_add(64) {
            return Err(ErrorKind::corrupt(
                "LZF data",
                format!("{len} bytes cannot come from {compressed_len}"),
            ));
        }
        let len =
            usize::try_from(len).map_err(|_| ErrorKind::InvalidLength(format!("{len} bytes")))?;
        Ok((self.bytes(compressed_len, "LZF data")?, len))
    }

    /// A string as stored: an LZF string stays compressed, for [`Stored::into_bytes`] to
    /// decompress later, possibly on another thread.
    pub(crate) fn stored_string(&mut self) -> Result<Stored, ErrorKind> {
        match self.length_or_encoding()? {
            (3, true) => {
                let (compressed, len) = self.lzf_data()?;
                Ok(Stored::Lzf { compressed, len })
            }
            (len, special) => self.string_after(len, special).map(Stored::Plain),
        }
    }

    /// Appends a string in any of Redis's encodings to `out`.
    pub(crate) fn string_into(&mut self, out: &mut Vec<u8>) -> Result<(), ErrorKind> {
        let (len, special) = self.length_or_encoding()?;
        if special {
            out.extend_from_slice(&self.string_after(len, special)?);
            return Ok(());
        }
        let len =
            usize::try_from(len).map_err(|_| ErrorKind::InvalidLength(format!("{len} bytes")))?;
        let mut done = 0;
        while done < len {
            let step = (len - done).min(CHUNK);
            let start = out.len();
            out.resize(start + step, 0);
            self.fill(&mut out[start..], "a string")?;
            done += step;
        }
        Ok(())
    }

    /// Milliseconds stored as 8 little-endian bytes.
    pub(crate) fn millis(&mut self) -> Result<u64, ErrorKind> {
        Ok(u64::from_le_bytes(self.array("a millisecond time")?))
    }
}

/// What went wrong reading an item, with the key being read if it was known.
type KeyedError = (ErrorKind, Option<Vec<u8>>);

/// Reads an RDB file item by item without holding it in memory.
pub struct RdbReader<R> {
    input: Input<R>,
    version: u32,
    db: u64,
    finished: bool,
    /// Checksum found at the end (after [`RdbReader::next_item`] returned `None`).
    stored_checksum: Option<u64>,
}

impl<R: Read> RdbReader<R> {
    /// Reads the header (`REDIS0012`, or Valkey's `VALKEY080`) and returns a reader positioned
    /// at the first item.
    pub fn new(inner: R) -> Result<RdbReader<R>, RdbError> {
        let mut input = Input::new(inner);
        let header = |input: &Input<R>, kind| RdbError {
            kind,
            offset: input.offset,
            item_offset: 0,
            key: None,
        };
        let magic: [u8; 5] = input.array("the header").map_err(|k| header(&input, k))?;
        let version = match &magic {
            b"REDIS" => {
                let digits: [u8; 4] = input.array("the header").map_err(|k| header(&input, k))?;
                parse_version(&digits)
            }
            b"VALKE" => {
                let rest: [u8; 4] = input.array("the header").map_err(|k| header(&input, k))?;
                if &rest[..1] != b"Y" {
                    return Err(header(&input, ErrorKind::BadSignature));
                }
                // VALKEY080 uses the opcodes and types of RDB 11 (Valkey 8.0 stays at 11).
                parse_version(&[b'0', rest[1], rest[2], rest[3]]).map(|_| 11)
            }
            _ => None,
        };
        let version = version.ok_or_else(|| header(&input, ErrorKind::BadSignature))?;
        if version == 0 || version > MAX_VERSION {
            return Err(header(&input, ErrorKind::UnsupportedVersion(version)));
        }
        Ok(RdbReader {
            input,
            version,
            db: 0,
            finished: false,
            stored_checksum: None,
        })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.input.offset
    }

    /// Gives back the buffers of a value the caller is done with, so that reading the next
    /// items reuses them instead of allocating.
    pub fn recycle(&mut self, value: RawValue) {
        match value {
            RawValue::Decoded(Value::String(bytes)) => self.input.give_back(bytes),
            RawValue::Compact { blob, .. } => self.input.give_back(blob),
            RawValue::Quicklist(nodes) => {
                for node in nodes {
                    let (QuicklistNode::Plain(bytes)
                    | QuicklistNode::Listpack(bytes)
                    | QuicklistNode::Ziplist(bytes)) = node;
                    self.input.give_back(bytes);
                }
            }
            RawValue::Plain { strings, .. } => self.input.give_back(strings.into_buffer()),
            RawValue::Decoded(_) | RawValue::Stream(_) => {}
        }
    }

    /// Gives back a buffer (a key the caller is done with) for reuse.
    pub fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        self.input.give_back(bytes);
    }

    /// The checksum stored at the end of the file (0 means "not computed"), once read.
    pub fn stored_checksum(&self) -> Option<u64> {
        self.stored_checksum
    }

    /// The next item, or `None` after the end marker and a valid checksum.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        self.next_with(read_value)
    }

    /// Like [`RdbReader::next_item`], with collections kept in their stored form: the fast way
    /// to build another representation of them.
    pub fn next_raw_item(&mut self) -> Result<Option<Item<RawValue>>, RdbError> {
        self.next_with(read_raw_value)
    }

    fn next_with<V>(
        &mut self,
        read: fn(&mut Input<R>, u8) -> Result<V, ErrorKind>,
    ) -> Result<Option<Item<V>>, RdbError> {
        if self.finished {
            return Ok(None);
        }
        let start = self.input.offset;
        let result = self.read_item(read);
        result.map_err(|(kind, key)| RdbError {
            kind,
            offset: self.input.offset,
            item_offset: start,
            key,
        })
    }

    fn read_item<V>(
        &mut self,
        read: fn(&mut Input<R>, u8) -> Result<V, ErrorKind>,
    ) -> Result<Option<Item<V>>, KeyedError> {
        let mut expire_at_ms = None;
        let mut idle = None;
        let mut freq = None;
        loop {
            let opcode = self.input.u8("an opcode").map_err(|k| (k, None))?;
            let plain =
                |result: Result<Item<V>, ErrorKind>| result.map(Some).map_err(|k| (k, None));
            match opcode {
                opcodes::EOF => {
                    self.finish().map_err(|k| (k, None))?;
                    return Ok(None);
                }
                opcodes::SELECTDB => {
                    let db = self.input.length().map_err(|k| (k, None))?;
                    self.db = db;
                    return Ok(Some(Item::SelectDb(db)));
                }
                opcodes::RESIZEDB => return plain(self.resize_db()),
                opcodes::AUX => return plain(self.aux()),
                opcodes::SLOT_INFO => return plain(self.slot_info()),
                opcodes::FUNCTION2 => return plain(self.input.string().map(Item::Function)),
                opcodes::FUNCTION_PRE_GA => {
                    return Err((
                        ErrorKind::Unsupported("pre-release function library format".into()),
                        None,
                    ));
                }
                opcodes::MODULE_AUX => return plain(self.module_aux()),
                opcodes::EXPIRETIME_MS => {
                    expire_at_ms = Some(self.input.millis().map_err(|k| (k, None))? as i64);
                }
                opcodes::EXPIRETIME => {
                    let seconds = u32::from_le_bytes(
                        self.input.array("an expire time").map_err(|k| (k, None))?,
                    );
                    expire_at_ms = Some(i64::from(seconds) * 1000);
                }
                opcodes::IDLE => idle = Some(self.input.length().map_err(|k| (k, None))?),
                opcodes::FREQ => freq = Some(self.input.u8("a frequency").map_err(|k| (k, None))?),
                type_byte => {
                    let key = self.input.string().map_err(|k| (k, None))?;
                    let value = match read(&mut self.input, type_byte) {
                        Ok(value) => value,
                        Err(kind) => return Err((kind, Some(key))),
                    };
                    let entry = Entry {
                        db: self.db,
                        key,
                        expire_at_ms,
                        idle,
                        freq,
                        type_byte,
                        value,
                    };
                    return Ok(Some(Item::Entry(entry)));
                }
            }
        }
    }

    fn resize_db<V>(&mut self) -> Result<Item<V>, ErrorKind> {
        let db_size = self.input.length()?;
        let expires_size = self.input.length()?;
        Ok(Item::ResizeDb {
            db_size,
            expires_size,
        })
    }

    fn aux<V>(&mut self) -> Result<Item<V>, ErrorKind> {
        let key = self.input.string()?;
        let value = self.input.string()?;
        Ok(Item::Aux { key, value })
    }

    fn slot_info<V>(&mut self) -> Result<Item<V>, ErrorKind> {
        let slot = self.input.length()?;
        let size = self.input.length()?;
        let expires_size = self.input.length()?;
        Ok(Item::SlotInfo {
            slot,
            size,
            expires_size,
        })
    }

    /// Skips module auxiliary data, which only its module can interpret.
    fn module_aux<V>(&mut self) -> Result<Item<V>, ErrorKind> {
        let module_id = self.input.length()?;
        let _when_opcode = self.input.length()?;
        let _when = self.input.length()?;
        self.skip_module_data()?;
        Ok(Item::ModuleAuxSkipped(module_id))
    }

    fn skip_module_data(&mut self) -> Result<(), ErrorKind> {
        loop {
            match self.input.length()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.input.length()?;
                }
                3 => {
                    self.input.array::<4>("a module float")?;
                }
                4 => {
                    self.input.array::<8>("a module double")?;
                }
                5 => {
                    self.input.string()?;
                }
                other => {
                    return Err(ErrorKind::corrupt(
                        "module data",
                        format!("unknown opcode {other}"),
                    ));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), ErrorKind> {
        self.finished = true;
        if self.version < 5 {
            return Ok(());
        }
        let computed = self.input.checksum_so_far();
        let stored = u64::from_le_bytes(self.input.array("the checksum")?);
        self.stored_checksum = Some(stored);
        if stored != 0 && stored != computed {
            return Err(ErrorKind::BadChecksum {
                expected: stored,
                actual: computed,
            });
        }
        Ok(())
    }
}

fn parse_version(digits: &[u8; 4]) -> Option<u32> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Reads a value of `type_byte` from `input` (shared by files and DUMP payloads).
/// A string as the file stored it, LZF-compressed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The bytes themselves.
    Plain(Vec<u8>),
    /// LZF-compressed bytes and the length they decompress to.
    Lzf {
        /// The compressed bytes.
        compressed: Vec<u8>,
        /// The declared length once decompressed.
        len: usize,
    },
}

impl Stored {
    /// The string's bytes, decompressed if need be.
    pub(crate) fn into_bytes(self) -> Result<Vec<u8>, ErrorKind> {
        match self {
            Stored::Plain(bytes) => Ok(bytes),
            Stored::Lzf { compressed, len } => {
                let mut out = Vec::new();
                lzf::decompress_into(&compressed, len, &mut out)?;
                Ok(out)
            }
        }
    }
}

pub(crate) fn read_value<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<Value, ErrorKind> {
    read_raw_value(input, type_byte)?.decode()
}

/// Reads a value of `type_byte`, keeping compact and plain collections in their stored form
/// (their blobs are checked when visited or decoded).
pub(crate) fn read_raw_value<R: Read>(
    input: &mut Input<R>,
    type_byte: u8,
) -> Result<RawValue, ErrorKind> {
    let raw = match type_byte {
        types::HASH_ZIPMAP
        | types::LIST_ZIPLIST
        | types::SET_INTSET
        | types::ZSET_ZIPLIST
        | types::HASH_ZIPLIST
        | types::HASH_LISTPACK
        | types::ZSET_LISTPACK
        | types::SET_LISTPACK => RawValue::Compact {
            type_byte,
            blob: input.string()?,
        },
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => quicklist(input, type_byte)?,
        types::LIST | types::SET | types::HASH => plain(input, type_byte)?,
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            RawValue::Stream(Box::new(crate::stream::read_stream_packed(
                input, type_byte,
            )?))
        }
        _ => return read_decoded(input, type_byte).map(RawValue::Decoded),
    };
    Ok(raw)
}

/// Reads the value types that have no raw form.
fn read_decoded<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<Value, ErrorKind> {
    Ok(match type_byte {
        types::STRING => Value::String(input.string()?),
        types::ZSET | types::ZSET_2 => {
            let count = input.count()?;
            let mut members = Vec::with_capacity(count.min(4096) as usize);
            for _ in 0..count {
                let member = input.string()?;
                let score = if type_byte == types::ZSET_2 {
                    f64::from_le_bytes(input.array("a score")?)
                } else {
                    string_score(input)?
                };
                members.push((member, score));
            }
            Value::SortedSet(members)
        }
        types::HASH_METADATA | types::HASH_METADATA_PRE_GA => hash_metadata(input, type_byte)?,
        types::HASH_LISTPACK_EX | types::HASH_LISTPACK_EX_PRE_GA => {
            if type_byte == types::HASH_LISTPACK_EX {
                input.millis()?;
            }
            let items = encodings::listpack(&input.string()?)?;
            if !items.len().is_multiple_of(3) {
                return Err(ErrorKind::corrupt(
                    "listpack",
                    "hash with TTLs needs field/value/ttl triples",
                ));
            }
            let mut fields = Vec::with_capacity(items.len() / 3);
            let mut items = items.into_iter();
            while let (Some(field), Some(value), Some(ttl)) =
                (items.next(), items.next(), items.next())
            {
                let ttl = std::str::from_utf8(&ttl)
                    .ok()
                    .and_then(|t| t.parse::<u64>().ok());
                fields.push((field, value, ttl.filter(|&t| t != 0)));
            }
            Value::HashWithFieldTtl(fields)
        }
        types::MODULE_PRE_GA | types::MODULE_2 => {
            let module_id = input.length()?;
            return Err(ErrorKind::Unsupported(format!(
                "module value (module id {module_id:#x})"
            )));
        }
        other => return Err(ErrorKind::UnknownType(other)),
    })
}

/// A score in the old string form: a length byte, or 253 (NaN), 254 (+inf), 255 (-inf).
fn string_score<R: Read>(input: &mut Input<R>) -> Result<f64, ErrorKind> {
    match input.u8("a score")? {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        len => {
            let text = input.bytes(u64::from(len), "a score")?;
            parse_score(&text)
        }
    }
}

fn quicklist<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<RawValue, ErrorKind> {
    let count = input.count()?;
    let mut nodes = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        let container = if type_byte == types::LIST_QUICKLIST_2 {
            input.length()?
        } else {
            2
        };
        let blob = input.string()?;
        if blob.is_empty() {
            // Redis refuses a node of no bytes, whatever its container.
            return Err(ErrorKind::corrupt("quicklist", "a node of no bytes"));
        }
        nodes.push(match container {
            1 => QuicklistNode::Plain(blob),
            2 if type_byte == types::LIST_QUICKLIST_2 => QuicklistNode::Listpack(blob),
            2 => QuicklistNode::Ziplist(blob),
            other => {
                return Err(ErrorKind::corrupt(
                    "quicklist",
                    format!("unknown node container {other}"),
                ));
            }
        });
    }
    Ok(RawValue::Quicklist(nodes))
}

/// `count` strings (twice as many for a hash) read into one buffer.
fn plain<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<RawValue, ErrorKind> {
    let count = input.count()?;
    let count = if type_byte == types::HASH {
        count * 2
    } else {
        count
    };
    let mut strings = Strings::with_buffer(input.take_buffer());
    for _ in 0..count {
        input.string_into(strings.buffer())?;
        strings.end_string();
    }
    Ok(RawValue::Plain { type_byte, strings })
}

fn hash_metadata<R: Read>(input: &mut Input<R>, type_byte: u8) -> Result<Value, ErrorKind> {
    let min_expire = if type_byte == types::HASH_METADATA {
        Some(input.millis()?)
    } else {
        None
    };
    let count = input.count()?;
    let mut fields = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let ttl = input.length()?;
        let expire_at = match (ttl, min_expire) {
            (0, _) => None,
            (ttl, Some(min)) => Some(
                ttl.checked_add(min)
                    .and_then(|t| t.checked_sub(1))
                    .ok_or_else(|| ErrorKind::corrupt("hash field TTL", "out of range"))?,
            ),
            (ttl, None) => Some(ttl),
        };
        let field = input.string()?;
        let value = input.string()?;
        fields.push((field, value, expire_at));
    }
    Ok(Value::HashWithFieldTtl(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(body);
        bytes.push(opcodes::EOF);
        let checksum = crate::crc64(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    fn items(bytes: &[u8]) -> Result<Vec<Item>, RdbError> {
        let mut reader = RdbReader::new(bytes)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    #[test]
    fn valkey_header_is_accepted() {
        let body = [opcodes::SELECTDB, 0, types::STRING, 1, b'k', 1, b'v'];
        let got = items(&file(b"VALKEY080", &body)).unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[1], Item::Entry(e) if e.value == Value::String(b"v".to_vec())));
    }

    #[test]
    fn newer_versions_and_unknown_types_are_refused() {
        let error = items(&file(b"REDIS0013", &[])).unwrap_err();
        assert!(matches!(error.kind, ErrorKind::UnsupportedVersion(13)));
        let error = items(&file(b"REDIS0011", &[99, 1, b'k'])).unwrap_err();
        assert!(matches!(error.kind, ErrorKind::UnknownType(99)), "{error}");
    }

    #[test]
    fn zero_checksum_means_not_computed() {
        let mut bytes = file(b"REDIS0010", &[opcodes::SELECTDB, 0]);
        let len = bytes.len();
        bytes[len - 8..].fill(0);
        assert!(items(&bytes).is_ok());
    }

    #[test]
    fn huge_lengths_do_not_allocate() {
        // A string claiming 2^32-1 bytes in a tiny file: an error, not a 4 GiB allocation.
        let body = [types::STRING, 1, b'k', 0x80, 0xff, 0xff, 0xff, 0xff, b'x'];
        let error = items(&file(b"REDIS0010", &body)).unwrap_err();
        assert!(matches!(error.kind, ErrorKind::UnexpectedEof(_)), "{error}");
        assert_eq!(error.key.as_deref(), Some(&b"k"[..]));
    }
}

/// Why a `RESTORE` payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, a newer RDB version, or a wrong checksum
    /// (`DUMP payload version or checksum are wrong`).
    VersionOrChecksum,
    /// The value inside does not parse (`Bad data format`).
    BadFormat(String),
}

/// The body of a `DUMP`-style payload (at least `min_len` bytes) once its trailer checks: the
/// 2-byte RDB version is one this reader knows, and the CRC-64 matches when `verify_checksum`.
fn payload_body(
    payload: &[u8],
    min_len: usize,
    verify_checksum: bool,
) -> Result<&[u8], PayloadError> {
    if payload.len() < min_len {
        return Err(PayloadError::VersionOrChecksum);
    }
    let (body, trailer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([trailer[0], trailer[1]]);
    if u32::from(version) > MAX_VERSION {
        return Err(PayloadError::VersionOrChecksum);
    }
    let stored = u64::from_le_bytes(trailer[2..10].try_into().unwrap_or_default());
    if verify_checksum && stored != crate::crc64(&payload[..payload.len() - 8]) {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(body)
}

/// Parses a `FUNCTION DUMP` payload into the libraries' sources, in order. The payload is a
/// run of `FUNCTION2` records with the same version and CRC-64 trailer as `DUMP`'s.
pub fn parse_functions_payload(payload: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let body = payload_body(payload, 10, true)?;
    let mut input = Input::new(body);
    let mut libraries = Vec::new();
    while input.offset < body.len() as u64 {
        let opcode = input
            .u8("a function opcode")
            .map_err(|kind| PayloadError::BadFormat(kind.to_string()))?;
        if opcode != opcodes::FUNCTION2 {
            return Err(PayloadError::BadFormat(
                "given type is not a function".into(),
            ));
        }
        let code = input
            .string()
            .map_err(|kind| PayloadError::BadFormat(kind.to_string()))?;
        libraries.push(code);
    }
    Ok(libraries)
}

/// Parses a `DUMP` payload; `verify_checksum` false skips the CRC (as Redis's
/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION 1`).
pub fn parse_payload(payload: &[u8], verify_checksum: bool) -> Result<Value, PayloadError> {
    let body = payload_body(payload, 11, verify_checksum)?;
    let mut input = Input::new(body);
    let type_byte = input
        .u8("a value type")
        .map_err(|kind| PayloadError::BadFormat(kind.to_string()))?;
    let value = read_value(&mut input, type_byte).map_err(|kind| {
        PayloadError::BadFormat(match kind {
            ErrorKind::Corrupt { .. } => format!(
                "{} integrity check failed: {kind}",
                types::blob_label(type_byte)
            ),
            other => other.to_string(),
        })
    })?;
    if input.offset != body.len() as u64 {
        return Err(PayloadError::BadFormat(
            "trailing bytes after the value".into(),
        ));
    }
    Ok(value)
}
