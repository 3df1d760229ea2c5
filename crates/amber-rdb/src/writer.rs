//! Streaming writer: Redis 7.0 RDB files (version 10) in the encodings Redis 7.0 chooses, with
//! LZF compression and the CRC-64 computed on the fly.

use std::io::Write;

use thiserror::Error;

use crate::encode::{
    canonical_int, intset_into, listpack_entry_size, listpack_into, ziplist_entry_len, ziplist_into,
};
use crate::lzf;
use crate::model::{Value, opcodes, types};

/// Why a value could not be written.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Writing to the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The value cannot be stored in the chosen RDB version.
    #[error("cannot write {0}")]
    Unsupported(String),
}

/// Thresholds that decide the compact encodings, as Redis's `*-max-*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `hash-max-listpack-entries`
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`
    pub hash_max_listpack_value: usize,
    /// `zset-max-listpack-entries`
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`
    pub zset_max_listpack_value: usize,
    /// `set-max-intset-entries`
    pub set_max_intset_entries: usize,
    /// `set-max-listpack-entries` (Redis 7.2; used when writing RDB 11)
    pub set_max_listpack_entries: usize,
    /// `set-max-listpack-value` (Redis 7.2; used when writing RDB 11)
    pub set_max_listpack_value: usize,
    /// Bytes per quicklist node (`list-max-listpack-size -2` is 8 KiB).
    pub list_max_listpack_bytes: usize,
    /// List elements of at least this many bytes get a node of their own, stored plain
    /// (Redis's quicklist packed threshold, 1 GiB unless `DEBUG QUICKLIST-PACKED-THRESHOLD`).
    pub list_plain_threshold: usize,
}

impl Default for Thresholds {
    /// Redis 7.0's built-in defaults.
    fn default() -> Self {
        Thresholds {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            list_max_listpack_bytes: 8192,
            list_plain_threshold: 1 << 30,
        }
    }
}

/// How to write a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// `rdbcompression`: LZF for strings over 20 bytes when it saves space.
    pub compression: bool,
    /// `rdbchecksum`: write the CRC-64 (else 0, "not computed").
    pub checksum: bool,
    /// Encoding thresholds.
    pub thresholds: Thresholds,
    /// The RDB version to write: 10 (Redis 7.0, the default), 9 (Redis 5 and 6: ziplist
    /// encodings) or 11 (Redis 7.2: small sets of strings as listpacks).
    pub version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: true,
            checksum: true,
            thresholds: Thresholds::default(),
            version: WRITE_VERSION,
        }
    }
}

/// The RDB version written by default.
pub const WRITE_VERSION: u32 = 10;

/// Marks a quicklist node that holds one large element as is.
const PLAIN_NODE: usize = 0;

/// The versions [`RdbWriter`] can write.
pub const WRITABLE_VERSIONS: std::ops::RangeInclusive<u32> = 9..=11;

const FLUSH_AT: usize = 64 * 1024;

/// Writes an RDB file item by item; call [`RdbWriter::finish`] to add the end marker and checksum.
pub struct RdbWriter<W: Write> {
    out: W,
    buffer: Vec<u8>,
    digest: crc_fast::Digest,
    options: WriteOptions,
    written: u64,
    /// Set for DUMP payloads, which hold a value without its key.
    omit_key: bool,
    /// Set for a fragment: everything stays in `buffer` until taken.
    fragment: bool,
    /// Scratch buffers reused from one value to the next.
    blob: Vec<u8>,
    ints: Vec<i64>,
    node_lengths: Vec<usize>,
    score_texts: Vec<ScoreText>,
}

impl RdbWriter<Vec<u8>> {
    /// A writer for a run of keys encoded apart from the file, for example on another thread,
    /// and added to it with [`RdbWriter::append_encoded`]: it writes no header, and its bytes
    /// are taken with [`RdbWriter::take_encoded`] (the file's database selection and end marker
    /// are the file writer's).
    pub fn fragment(options: WriteOptions) -> Result<RdbWriter<Vec<u8>>, WriteError> {
        let mut writer = RdbWriter::new(Vec::new(), options)?;
        writer.buffer.clear();
        writer.fragment = true;
        Ok(writer)
    }

    /// Returns the bytes encoded since the last call and goes on in `spare` (emptied first),
    /// so buffers can go round between threads instead of being allocated for each run.
    pub fn take_encoded(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        std::mem::replace(&mut self.buffer, spare)
    }
}

impl<W: Write> RdbWriter<W> {
    /// Starts a file: writes the `REDIS0010` header.
    pub fn new(out: W, options: WriteOptions) -> Result<RdbWriter<W>, WriteError> {
        if !WRITABLE_VERSIONS.contains(&options.version) {
            return Err(WriteError::Unsupported(format!(
                "RDB version {} (versions 9 to 11 can be written)",
                options.version
            )));
        }
        let mut writer = RdbWriter {
            out,
            buffer: Vec::with_capacity(FLUSH_AT * 2),
            digest: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis),
            options,
            written: 0,
            omit_key: false,
            fragment: false,
            blob: Vec::new(),
            ints: Vec::new(),
            node_lengths: Vec::new(),
            score_texts: Vec::new(),
        };
        writer
            .buffer
            .extend_from_slice(format!("REDIS{:04}", options.version).as_bytes());
        Ok(writer)
    }

    /// Appends keys another writer encoded (see [`RdbWriter::fragment`]): the checksum and the
    /// output take them as if this writer had encoded them here.
    pub fn append_encoded(&mut self, encoded: &[u8]) -> Result<(), WriteError> {
        if self.buffer.len() + encoded.len() < FLUSH_AT {
            self.buffer.extend_from_slice(encoded);
            return Ok(());
        }
        self.flush_buffer()?;
        self.digest.update(encoded);
        self.out.write_all(encoded)?;
        self.written += encoded.len() as u64;
        Ok(())
    }

    /// Bytes produced so far.
    pub fn bytes_written(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    /// Writes an AUX field.
    pub fn aux(&mut self, key: &str, value: &str) -> Result<(), WriteError> {
        self.buffer.push(opcodes::AUX);
        self.string(key.as_bytes());
        self.string(value.as_bytes());
        self.maybe_flush()
    }

    /// Writes the AUX fields Redis 7.0 writes (`redis-ver`, `redis-bits`, `ctime`, `used-mem`,
    /// `aof-base`).
    pub fn standard_aux(
        &mut self,
        ctime: u64,
        used_mem: u64,
        aof_base: bool,
    ) -> Result<(), WriteError> {
        self.aux("redis-ver", "7.0.15")?;
        self.aux("redis-bits", "64")?;
        self.aux("ctime", &ctime.to_string())?;
        self.aux("used-mem", &used_mem.to_string())?;
        self.aux("aof-base", if aof_base { "1" } else { "0" })
    }

    /// Writes a Functions library, by its source (`FUNCTION2`, before the databases).
    pub fn function(&mut self, code: &[u8]) -> Result<(), WriteError> {
        self.buffer.push(opcodes::FUNCTION2);
        self.string(code);
        self.maybe_flush()
    }

    /// Starts database `db`, which holds `size` keys of which `expires` have a TTL.
    pub fn select_db(&mut self, db: u64, size: u64, expires: u64) -> Result<(), WriteError> {
        self.buffer.push(opcodes::SELECTDB);
        self.length(db);
        self.buffer.push(opcodes::RESIZEDB);
        self.length(size);
        self.length(expires);
        self.maybe_flush()
    }

    /// Writes one key with its value and optional absolute expiry (Unix milliseconds).
    pub fn entry(
        &mut self,
        key: &[u8],
        value: &Value,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        if let Some(at) = expire_at_ms {
            self.buffer.push(opcodes::EXPIRETIME_MS);
            self.buffer.extend_from_slice(&at.to_le_bytes());
        }
        let mark = self.buffer.len();
        let result = self.value(key, value);
        if result.is_err() {
            self.buffer.truncate(mark);
        }
        result?;
        self.maybe_flush()
    }

    /// Writes a string key without building a [`Value`] first (the hot path of a snapshot).
    pub fn string_entry(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        if let Some(at) = expire_at_ms {
            self.buffer.push(opcodes::EXPIRETIME_MS);
            self.buffer.extend_from_slice(&at.to_le_bytes());
        }
        self.buffer.push(types::STRING);
        self.string(key);
        self.string(value);
        self.maybe_flush()
    }

    /// Writes the end marker and the checksum, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.buffer.push(opcodes::EOF);
        self.digest.update(&self.buffer);
        let checksum = if self.options.checksum {
            self.digest.finalize()
        } else {
            0
        };
        self.out.write_all(&self.buffer)?;
        self.out.write_all(&checksum.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn maybe_flush(&mut self) -> Result<(), WriteError> {
        if self.buffer.len() >= FLUSH_AT && !self.fragment {
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), WriteError> {
        self.digest.update(&self.buffer);
        self.out.write_all(&self.buffer)?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn key(&mut self, key: &[u8]) {
        if !self.omit_key {
            self.string(key);
        }
    }

    fn length(&mut self, len: u64) {
        write_length(&mut self.buffer, len);
    }

    /// A string as Redis's `rdbSaveRawString` writes it: small integers encoded as integers,
    /// LZF when enabled and it helps, raw bytes otherwise.
    fn string(&mut self, bytes: &[u8]) {
        write_string(&mut self.buffer, bytes, self.options.compression);
    }

    fn value(&mut self, key: &[u8], value: &Value) -> Result<(), WriteError> {
        match value {
            Value::String(bytes) => {
                self.buffer.push(types::STRING);
                self.key(key);
                self.string(bytes);
            }
            Value::List(items) => self.list(key, items.iter().map(Vec::as_slice)),
            Value::Set(members) => self.set(key, members.iter().map(Vec::as_slice)),
            Value::SortedSet(members) => {
                let mut sorted: Vec<(&[u8], f64)> =
                    members.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
                sorted.sort_by(|a, b| {
                    a.1.partial_cmp(&b.1)
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then_with(|| a.0.cmp(b.0))
                });
                self.sorted_set(key, sorted.into_iter())?;
            }
            Value::Hash(fields) => {
                self.hash(
                    key,
                    fields.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
                );
            }
            Value::HashWithFieldTtl(fields) => {
                if fields.iter().any(|(_, _, ttl)| ttl.is_some()) {
                    return Err(WriteError::Unsupported(format!(
                        "hash field TTLs in RDB {} (key '{}')",
                        self.options.version,
                        String::from_utf8_lossy(key)
                    )));
                }
                self.hash(
                    key,
                    fields.iter().map(|(f, v, _)| (f.as_slice(), v.as_slice())),
                );
            }
            Value::Stream(stream) => {
                self.buffer
                    .push(crate::stream::stream_type(self.options.version));
                self.key(key);
                crate::stream::write_stream(
                    &mut self.buffer,
                    stream,
                    self.options.version,
                    self.options.compression,
                );
            }
        }
        Ok(())
    }

    /// Writes a stream key from nodes borrowed where they live (no copy of the entries): the
    /// counters and groups come from `rest`, whose own `nodes` are not looked at.
    pub fn stream_entry<'a>(
        &mut self,
        key: &[u8],
        nodes: impl ExactSizeIterator<Item = (crate::StreamId, &'a [u8])>,
        rest: &crate::Stream,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.expiry(expire_at_ms);
        self.buffer
            .push(crate::stream::stream_type(self.options.version));
        self.key(key);
        let compression = self.options.compression;
        crate::stream::write_stream_nodes(&mut self.buffer, nodes, compression);
        crate::stream::write_stream_rest(&mut self.buffer, rest, self.options.version, compression);
        self.maybe_flush()
    }

    /// Writes a list key, elements head first, without building a [`Value`].
    pub fn list_entry<'a>(
        &mut self,
        key: &[u8],
        items: impl Iterator<Item = &'a [u8]> + Clone,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.expiry(expire_at_ms);
        self.list(key, items);
        self.maybe_flush()
    }

    /// Writes a set key without building a [`Value`].
    pub fn set_entry<'a>(
        &mut self,
        key: &[u8],
        members: impl Iterator<Item = &'a [u8]> + Clone,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.expiry(expire_at_ms);
        self.set(key, members);
        self.maybe_flush()
    }

    /// Writes a set of integers as an intset, the way Redis saves an intset-encoded set.
    pub fn intset_entry(
        &mut self,
        key: &[u8],
        ints: &[i64],
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.expiry(expire_at_ms);
        self.buffer.push(types::SET_INTSET);
        self.key(key);
        let mut sorted = std::mem::take(&mut self.ints);
        sorted.clear();
        sorted.extend_from_slice(ints);
        let mut blob = std::mem::take(&mut self.blob);
        intset_into(&mut blob, &mut sorted);
        self.string(&blob);
        self.blob = blob;
        self.ints = sorted;
        self.maybe_flush()
    }

    /// Writes a hash key without building a [`Value`].
    pub fn hash_entry<'a>(
        &mut self,
        key: &[u8],
        fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        self.expiry(expire_at_ms);
        self.hash(key, fields);
        self.maybe_flush()
    }

    /// Writes a sorted set key without building a [`Value`]; `members` must come in ascending
    /// (score, member) order, as a sorted set iterates.
    pub fn sorted_set_entry<'a>(
        &mut self,
        key: &[u8],
        members: impl DoubleEndedIterator<Item = (&'a [u8], f64)> + Clone,
        expire_at_ms: Option<i64>,
    ) -> Result<(), WriteError> {
        let mark = self.buffer.len();
        self.expiry(expire_at_ms);
        if let Err(error) = self.sorted_set(key, members) {
            self.buffer.truncate(mark);
            return Err(error);
        }
        self.maybe_flush()
    }

    fn expiry(&mut self, expire_at_ms: Option<i64>) {
        if let Some(at) = expire_at_ms {
            self.buffer.push(opcodes::EXPIRETIME_MS);
            self.buffer.extend_from_slice(&at.to_le_bytes());
        }
    }

    /// Quicklist of listpack nodes of at most the configured size, as Redis 7.0 packs lists.
    /// A list as Redis's quicklist: RDB 10+ nodes are listpacks (or plain nodes for elements
    /// past the packed threshold), RDB 9 nodes are ziplists; each node holds at most the
    /// configured number of bytes.
    fn list<'a>(&mut self, key: &[u8], items: impl Iterator<Item = &'a [u8]> + Clone) {
        let ziplists = self.options.version < 10;
        self.buffer.push(if ziplists {
            types::LIST_QUICKLIST
        } else {
            types::LIST_QUICKLIST_2
        });
        self.key(key);
        let mut nodes = std::mem::take(&mut self.node_lengths);
        self.split_into_nodes(items.clone(), ziplists, &mut nodes);
        self.length(nodes.len() as u64);
        let mut items = items;
        let mut blob = std::mem::take(&mut self.blob);
        for &count in &nodes {
            if ziplists {
                ziplist_into(&mut blob, items.by_ref().take(count));
            } else if count == PLAIN_NODE {
                self.length(1); // QUICKLIST_NODE_CONTAINER_PLAIN
                if let Some(item) = items.next() {
                    self.string(item);
                }
                continue;
            } else {
                self.length(2); // QUICKLIST_NODE_CONTAINER_PACKED
                listpack_into(&mut blob, items.by_ref().take(count));
            }
            self.string(&blob);
        }
        self.blob = blob;
        self.node_lengths = nodes;
    }

    /// The element count of each quicklist node, [`PLAIN_NODE`] for a large element alone in a
    /// plain node (RDB 10+ only).
    fn split_into_nodes<'a>(
        &self,
        items: impl Iterator<Item = &'a [u8]>,
        ziplists: bool,
        nodes: &mut Vec<usize>,
    ) {
        let limit = self.options.thresholds.list_max_listpack_bytes;
        let plain_from = if ziplists {
            usize::MAX
        } else {
            self.options.thresholds.list_plain_threshold
        };
        let header = if ziplists { 11 } else { 7 };
        // A ziplist entry's size depends on the previous one's (its prevlen field).
        let entry_size = |previous: usize, item: &[u8]| {
            if ziplists {
                ziplist_entry_len(previous, item)
            } else {
                listpack_entry_size(item)
            }
        };
        nodes.clear();
        let (mut in_node, mut size, mut previous) = (0, header, 0);
        for item in items {
            if item.len() >= plain_from {
                if in_node > 0 {
                    nodes.push(in_node);
                    (in_node, size, previous) = (0, header, 0);
                }
                nodes.push(PLAIN_NODE);
                continue;
            }
            let mut entry = entry_size(previous, item);
            if in_node > 0 && size + entry > limit {
                nodes.push(in_node);
                (in_node, size) = (0, header);
                entry = entry_size(0, item);
            }
            size += entry;
            previous = entry;
            in_node += 1;
        }
        if in_node > 0 {
            nodes.push(in_node);
        }
    }

    fn set<'a>(&mut self, key: &[u8], members: impl Iterator<Item = &'a [u8]> + Clone) {
        let mut ints = std::mem::take(&mut self.ints);
        ints.clear();
        let mut count = 0;
        let mut all_ints = true;
        let mut longest = 0;
        for member in members.clone() {
            count += 1;
            longest = longest.max(member.len());
            match canonical_int(member) {
                Some(number) if all_ints => ints.push(number),
                _ => all_ints = false,
            }
        }
        let limits = self.options.thresholds;
        let listpack = self.options.version >= 11
            && !(all_ints && count <= limits.set_max_intset_entries)
            && count <= limits.set_max_listpack_entries
            && longest <= limits.set_max_listpack_value;
        if listpack {
            self.buffer.push(types::SET_LISTPACK);
            self.key(key);
            let mut blob = std::mem::take(&mut self.blob);
            listpack_into(&mut blob, members);
            self.string(&blob);
            self.blob = blob;
            self.ints = ints;
            return;
        }
        if all_ints && count <= self.options.thresholds.set_max_intset_entries {
            self.buffer.push(types::SET_INTSET);
            self.key(key);
            let mut blob = std::mem::take(&mut self.blob);
            intset_into(&mut blob, &mut ints);
            self.string(&blob);
            self.blob = blob;
        } else {
            self.buffer.push(types::SET);
            self.key(key);
            self.length(count as u64);
            for member in members {
                self.string(member);
            }
        }
        self.ints = ints;
    }

    fn hash<'a>(&mut self, key: &[u8], fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) {
        let limits = self.options.thresholds;
        let mut count = 0;
        let mut small = true;
        for (field, value) in fields.clone() {
            count += 1;
            small &= field.len() <= limits.hash_max_listpack_value
                && value.len() <= limits.hash_max_listpack_value;
        }
        small &= count <= limits.hash_max_listpack_entries;
        if small {
            let ziplist = self.options.version < 10;
            self.buffer.push(if ziplist {
                types::HASH_ZIPLIST
            } else {
                types::HASH_LISTPACK
            });
            self.key(key);
            let mut blob = std::mem::take(&mut self.blob);
            let items = fields.flat_map(|(f, v)| [f, v]);
            if ziplist {
                ziplist_into(&mut blob, items);
            } else {
                listpack_into(&mut blob, items);
            }
            self.string(&blob);
            self.blob = blob;
        } else {
            self.buffer.push(types::HASH);
            self.key(key);
            self.length(count as u64);
            for (field, value) in fields {
                self.string(field);
                self.string(value);
            }
        }
    }

    fn sorted_set<'a>(
        &mut self,
        key: &[u8],
        members: impl DoubleEndedIterator<Item = (&'a [u8], f64)> + Clone,
    ) -> Result<(), WriteError> {
        let limits = self.options.thresholds;
        let mut count = 0;
        let mut small = true;
        for (member, score) in members.clone() {
            if score.is_nan() {
                return Err(WriteError::Unsupported(format!(
                    "a NaN score (key '{}')",
                    String::from_utf8_lossy(key)
                )));
            }
            count += 1;
            small &= member.len() <= limits.zset_max_listpack_value;
        }
        small &= count <= limits.zset_max_listpack_entries;
        if small {
            let ziplist = self.options.version < 10;
            self.buffer.push(if ziplist {
                types::ZSET_ZIPLIST
            } else {
                types::ZSET_LISTPACK
            });
            self.key(key);
            let mut blob = std::mem::take(&mut self.blob);
            let mut texts = std::mem::take(&mut self.score_texts);
            texts.clear();
            for (_, score) in members.clone() {
                texts.push(score_text(score));
            }
            let items = members
                .zip(texts.iter())
                .flat_map(|((member, _), text)| [member, text.as_bytes()]);
            if ziplist {
                ziplist_into(&mut blob, items);
            } else {
                listpack_into(&mut blob, items);
            }
            self.string(&blob);
            self.blob = blob;
            self.score_texts = texts;
        } else {
            self.buffer.push(types::ZSET_2);
            self.key(key);
            self.length(count as u64);
            // Redis writes skiplists from the highest score down, so loading inserts at the head.
            for (member, score) in members.rev() {
                self.string(member);
                self.buffer.extend_from_slice(&score.to_le_bytes());
            }
        }
        Ok(())
    }
}

/// A score's text, held inline.
#[derive(Clone, Copy)]
struct ScoreText {
    bytes: [u8; 32],
    len: u8,
}

impl ScoreText {
    fn new(text: &[u8]) -> ScoreText {
        let mut bytes = [0u8; 32];
        let len = text.len().min(32);
        bytes[..len].copy_from_slice(&text[..len]);
        ScoreText {
            bytes,
            len: len as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A score as Redis's `d2string` writes it into a listpack: integers in plain decimal, `-0`,
/// infinities as `inf`/`-inf`, anything else as `%.17g`.
fn score_text(score: f64) -> ScoreText {
    if score == 0.0 {
        return ScoreText::new(if score.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        });
    }
    let integral = score > -4_503_599_627_370_495.0
        && score < 4_503_599_627_370_496.0
        && score == score.trunc();
    if integral {
        ScoreText::new(amber_protocol::format_i64(score as i64, &mut [0; 20]))
    } else {
        ScoreText::new(amber_protocol::format_double(score).as_bytes())
    }
}

/// Appends a length in RDB's variable-size encoding.
pub(crate) fn write_length(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends a string the way `rdbSaveRawString` does.
pub(crate) fn write_string(out: &mut Vec<u8>, bytes: &[u8], compression: bool) {
    if let Some(number) = canonical_int(bytes).filter(|_| bytes.len() <= 11)
        && write_small_int(out, number)
    {
        return;
    }
    let packed = compression
        && bytes.len() > 20
        && lzf::with_compressed(bytes, bytes.len() - 4, |packed| {
            out.push(0xc3);
            write_length(out, packed.len() as u64);
            write_length(out, bytes.len() as u64);
            out.extend_from_slice(packed);
        });
    if packed {
        return;
    }
    write_length(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes `number` in the 8/16/32-bit integer string encoding; false if it does not fit.
fn write_small_int(out: &mut Vec<u8>, number: i64) -> bool {
    if let Ok(small) = i8::try_from(number) {
        out.extend_from_slice(&[0xc0, small as u8]);
    } else if let Ok(medium) = i16::try_from(number) {
        out.push(0xc1);
        out.extend_from_slice(&medium.to_le_bytes());
    } else if let Ok(large) = i32::try_from(number) {
        out.push(0xc2);
        out.extend_from_slice(&large.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// A `FUNCTION DUMP` payload: each library as a `FUNCTION2` record, then the 2-byte RDB
/// version and a CRC-64, as `DUMP`'s.
pub fn functions_payload<'a>(
    libraries: impl IntoIterator<Item = &'a [u8]>,
    options: WriteOptions,
) -> Result<Vec<u8>, WriteError> {
    let mut writer = RdbWriter::new(Vec::new(), options)?;
    writer.buffer.clear();
    for code in libraries {
        writer.buffer.push(opcodes::FUNCTION2);
        writer.string(code);
    }
    let mut payload = std::mem::take(&mut writer.buffer);
    payload.extend_from_slice(&(options.version as u16).to_le_bytes());
    let checksum = crate::crc64(&payload);
    payload.extend_from_slice(&checksum.to_le_bytes());
    Ok(payload)
}

/// A `DUMP` payload: the value in RDB form, the 2-byte RDB version and a CRC-64 of both.
pub fn dump_payload(value: &Value, options: WriteOptions) -> Result<Vec<u8>, WriteError> {
    let mut writer = RdbWriter::new(Vec::new(), options)?;
    writer.buffer.clear();
    writer.omit_key = true;
    writer.value(b"", value)?;
    let mut payload = std::mem::take(&mut writer.buffer);
    payload.extend_from_slice(&(options.version as u16).to_le_bytes());
    let checksum = crate::crc64(&payload);
    payload.extend_from_slice(&checksum.to_le_bytes());
    Ok(payload)
}
