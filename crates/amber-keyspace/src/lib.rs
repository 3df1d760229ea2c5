//! Amber's in-memory data: numbered databases of keys, their values in Redis's encodings,
//! and key expiry (lazy on access, active by sampling).
//!
//! The crate does no I/O and has no notion of clients or commands; the server calls it from the
//! one thread that owns the keyspace, which is what makes a consistent `fork()` possible.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod access;
mod build;
mod capture;
mod db;
mod dict;
mod digest;
mod entries;
mod evict;
mod glob;
mod hash;
mod list;
mod packed;
mod quicklist;
mod ranked;
mod set;
mod small;
mod store;
mod stream;
mod value;
mod zset;

pub use access::{AccessClock, LFU_INIT_VAL, access_clock, freeze_access, set_access_clock};
pub use build::ValueBuilder;
pub use capture::CaptureSink;
pub use db::{Db, Entry, ExpireCycle, Keyspace, WARM_BATCH};
pub use dict::{
    Dict, GrowthGuard, Iter as DictIter, Lookup, NodeHash, pause_resizes, resize_at_once,
    set_growth_guard,
};
pub use digest::{Digest, DigestBuilder, dataset_digest, sha1, value_digest};
pub use evict::{EvictionPolicy, EvictionPool};
pub use glob::glob_match;
pub use hash::{HashIter, HashLimits, HashValue};
pub use list::{ListIter, ListLimits, ListValue};
pub use quicklist::{Quicklist, QuicklistIter};
pub use set::{SetValue, member_as_int};
pub use small::SmallBytes;
pub use store::unused_slot_bytes;
pub use stream::{
    AppendError, ConsumerGroup, ConsumerState, EntryRef, Nack, Pairs, Range as StreamRange,
    StreamId, StreamItem, StreamLimits, StreamLog, StreamMeta, StreamValue, Trim,
};
pub use value::{EMBSTR_MAX_LEN, StrValue, Value};
pub use zset::{Score, ZsetIter, ZsetLimits, ZsetValue};
