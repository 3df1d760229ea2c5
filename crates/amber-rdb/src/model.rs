//! What an RDB file contains, independent of how Redis encoded it.

/// Value type bytes (`RDB_TYPE_*`).
pub mod types {
    /// A string.
    pub const STRING: u8 = 0;
    /// A list as a plain sequence of strings.
    pub const LIST: u8 = 1;
    /// A set as a plain sequence of strings.
    pub const SET: u8 = 2;
    /// A sorted set with scores as strings.
    pub const ZSET: u8 = 3;
    /// A hash as field/value strings.
    pub const HASH: u8 = 4;
    /// A sorted set with binary double scores (RDB 8+).
    pub const ZSET_2: u8 = 5;
    /// A module value (pre-GA module format).
    pub const MODULE_PRE_GA: u8 = 6;
    /// A module value.
    pub const MODULE_2: u8 = 7;
    /// A hash stored as a zipmap (Redis ≤ 2.4).
    pub const HASH_ZIPMAP: u8 = 9;
    /// A list stored as a ziplist.
    pub const LIST_ZIPLIST: u8 = 10;
    /// A set stored as an intset.
    pub const SET_INTSET: u8 = 11;
    /// A sorted set stored as a ziplist.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// A hash stored as a ziplist.
    pub const HASH_ZIPLIST: u8 = 13;
    /// A quicklist of ziplists (RDB 7–9).
    pub const LIST_QUICKLIST: u8 = 14;
    /// A stream (RDB 9).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// A hash stored as a listpack (RDB 10+).
    pub const HASH_LISTPACK: u8 = 16;
    /// A sorted set stored as a listpack (RDB 10+).
    pub const ZSET_LISTPACK: u8 = 17;
    /// A quicklist of listpacks or plain nodes (RDB 10+).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// A stream with first id, max deleted id and entries added (RDB 10+).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// A set stored as a listpack (RDB 11+).
    pub const SET_LISTPACK: u8 = 20;
    /// A stream with consumer active times (RDB 11+).
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// A hash with field TTLs, pre-release format (absolute TTLs).
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    /// A listpack hash with field TTLs, pre-release format.
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    /// A hash with field TTLs relative to a minimum (RDB 12).
    pub const HASH_METADATA: u8 = 24;
    /// A listpack hash with field TTLs (RDB 12).
    pub const HASH_LISTPACK_EX: u8 = 25;

    /// What Redis calls the encoded blob of a value of this type when its integrity check
    /// fails ("Zset ziplist" in "Zset ziplist integrity check failed."), for log lines that
    /// operators can grep as they do Redis's.
    pub fn blob_label(type_byte: u8) -> &'static str {
        match type_byte {
            HASH_ZIPMAP => "Zipmap",
            LIST_ZIPLIST => "List ziplist",
            SET_INTSET => "Intset",
            ZSET_ZIPLIST => "Zset ziplist",
            HASH_ZIPLIST => "Hash ziplist",
            LIST_QUICKLIST => "Ziplist",
            LIST_QUICKLIST_2 => "Listpack",
            STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => "Stream listpack",
            HASH_LISTPACK | HASH_LISTPACK_EX | HASH_LISTPACK_EX_PRE_GA => "Hash listpack",
            ZSET_LISTPACK => "Zset listpack",
            SET_LISTPACK => "Set listpack",
            _ => "Value",
        }
    }
}

/// Opcode bytes that frame the file.
pub mod opcodes {
    /// Slot information (cluster).
    pub const SLOT_INFO: u8 = 244;
    /// A function library.
    pub const FUNCTION2: u8 = 245;
    /// A function library, pre-GA format.
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time of the next key.
    pub const IDLE: u8 = 248;
    /// LFU frequency of the next key.
    pub const FREQ: u8 = 249;
    /// An auxiliary field.
    pub const AUX: u8 = 250;
    /// Hash table size hints.
    pub const RESIZEDB: u8 = 251;
    /// Expiry in milliseconds of the next key.
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expiry in seconds of the next key.
    pub const EXPIRETIME: u8 = 253;
    /// Database selector.
    pub const SELECTDB: u8 = 254;
    /// End of the file.
    pub const EOF: u8 = 255;
}

/// A stream entry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

/// One stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Its id.
    pub id: StreamId,
    /// Field/value pairs.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A message delivered to a group and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The entry id.
    pub id: StreamId,
    /// Last delivery time, Unix milliseconds.
    pub delivery_time: u64,
    /// Number of deliveries.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Its name.
    pub name: Vec<u8>,
    /// Last time it was seen, Unix milliseconds.
    pub seen_time: u64,
    /// Last time it read successfully (RDB 11+).
    pub active_time: Option<u64>,
    /// Ids of its pending entries.
    pub pending: Vec<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// Its name.
    pub name: Vec<u8>,
    /// Last delivered id.
    pub last_id: StreamId,
    /// Entries read counter (RDB 10+).
    pub entries_read: Option<u64>,
    /// The group's pending entries list.
    pub pending: Vec<PendingEntry>,
    /// Its consumers.
    pub consumers: Vec<Consumer>,
}

/// One node of a stream: a listpack of entries keyed by its master id, kept as the file
/// stored it (the reader checks its structure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNode {
    /// The master id the node's entries are deltas from.
    pub master: StreamId,
    /// The node's listpack, byte for byte.
    pub listpack: Vec<u8>,
}

/// A stream with its nodes and consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// The nodes in id order, as stored.
    pub nodes: Vec<StreamNode>,
    /// Number of live entries as the file declares it.
    pub length: u64,
    /// The last id ever generated.
    pub last_id: StreamId,
    /// First live id (RDB 10+).
    pub first_id: Option<StreamId>,
    /// Largest deleted id (RDB 10+).
    pub max_deleted_id: Option<StreamId>,
    /// Entries ever added (RDB 10+).
    pub entries_added: Option<u64>,
    /// Consumer groups.
    pub groups: Vec<ConsumerGroup>,
}

impl Stream {
    /// Checks every node element by element (Redis's deep sanitization) and that their live
    /// entries add up to the length. Streams read by [`crate::RdbReader::next_item`] are
    /// checked already; raw reads leave it to the caller.
    pub fn check(&self) -> Result<(), crate::ErrorKind> {
        crate::stream::check_nodes(self)
    }

    /// The live entries, decoded from the nodes, in id order.
    pub fn entries(&self) -> Result<Vec<StreamEntry>, crate::ErrorKind> {
        let mut entries = Vec::new();
        for node in &self.nodes {
            crate::stream::decode_node(node, &mut entries)?;
        }
        Ok(entries)
    }
}

/// A value, in a form that does not depend on the encoding the file used.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    String(Vec<u8>),
    /// A list, head first.
    List(Vec<Vec<u8>>),
    /// A set's members.
    Set(Vec<Vec<u8>>),
    /// A sorted set's members with their scores, in file order.
    SortedSet(Vec<(Vec<u8>, f64)>),
    /// A hash's fields and values.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A hash whose fields may expire: field, value, absolute expiry in Unix ms.
    HashWithFieldTtl(Vec<(Vec<u8>, Vec<u8>, Option<u64>)>),
    /// A stream.
    Stream(Box<Stream>),
}

impl Value {
    /// The name `TYPE` would reply.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::SortedSet(_) => "zset",
            Value::Hash(_) | Value::HashWithFieldTtl(_) => "hash",
            Value::Stream(_) => "stream",
        }
    }
}

/// A key with its value and metadata, as read from the file (`V` is [`crate::RawValue`] when
/// read with [`crate::RdbReader::next_raw_item`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<V = Value> {
    /// Database number.
    pub db: u64,
    /// The key.
    pub key: Vec<u8>,
    /// Absolute expiry in Unix milliseconds.
    pub expire_at_ms: Option<i64>,
    /// LRU idle time in seconds, if stored.
    pub idle: Option<u64>,
    /// LFU frequency, if stored.
    pub freq: Option<u8>,
    /// The value type byte the file used (tells the encoding).
    pub type_byte: u8,
    /// The value.
    pub value: V,
}

impl<V> Entry<V> {
    /// The same key with its value turned into another form (e.g. a raw value built into
    /// the caller's own).
    pub fn map_value<W>(self, f: impl FnOnce(V) -> W) -> Entry<W> {
        Entry {
            db: self.db,
            key: self.key,
            expire_at_ms: self.expire_at_ms,
            idle: self.idle,
            freq: self.freq,
            type_byte: self.type_byte,
            value: f(self.value),
        }
    }
}

/// One element of an RDB file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<V = Value> {
    /// An `AUX` field (`redis-ver`, `ctime`, `aof-base`, ...).
    Aux {
        /// Field name.
        key: Vec<u8>,
        /// Field value.
        value: Vec<u8>,
    },
    /// The following keys belong to database `0`.
    SelectDb(u64),
    /// Size hints for the current database.
    ResizeDb {
        /// Keys in the database.
        db_size: u64,
        /// Keys with an expiry.
        expires_size: u64,
    },
    /// Cluster slot information (RDB 12).
    SlotInfo {
        /// Slot number.
        slot: u64,
        /// Keys in the slot.
        size: u64,
        /// Keys with an expiry in the slot.
        expires_size: u64,
    },
    /// A function library's source (`FUNCTION2`).
    Function(Vec<u8>),
    /// Module auxiliary data that was skipped (its module id).
    ModuleAuxSkipped(u64),
    /// A key.
    Entry(Entry<V>),
}

impl<V> Item<V> {
    /// The same item, with a key's value turned into another form.
    pub fn map_value<W>(self, f: impl FnOnce(V) -> W) -> Item<W> {
        match self {
            Item::Aux { key, value } => Item::Aux { key, value },
            Item::SelectDb(db) => Item::SelectDb(db),
            Item::ResizeDb {
                db_size,
                expires_size,
            } => Item::ResizeDb {
                db_size,
                expires_size,
            },
            Item::SlotInfo {
                slot,
                size,
                expires_size,
            } => Item::SlotInfo {
                slot,
                size,
                expires_size,
            },
            Item::Function(code) => Item::Function(code),
            Item::ModuleAuxSkipped(id) => Item::ModuleAuxSkipped(id),
            Item::Entry(entry) => Item::Entry(entry.map_value(f)),
        }
    }
}
