//! The append-only file: Redis 7 multi-part AOF (manifest, base and incr files), the append
//! path with its fsync policies and group commit, and crash-proof reading.
//!
//! The crate knows nothing of the server: [`CommandReader`] reads any AOF file, [`Manifest`]
//! parses and writes manifests, [`AppendLog`] and [`Syncer`] append to any [`Storage`],
//! [`durability::DurableLog`] decides when replies may leave under each fsync policy, and
//! [`SimulatedDisk`] lets tests crash the "disk" at chosen points and inject write and fsync
//! failures.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
pub mod command;
pub mod durability;
pub mod log;
pub mod manifest;
pub mod storage;

pub use command::{CommandReader, Item, Packed, PackedCommand, ReadError, encode_command};
pub use log::{AppendLog, FsyncPolicy, LogError, SyncProgress, Syncer};
pub use manifest::{FileInfo, FileKind, Manifest, ManifestError};
pub use storage::{Faults, FileStorage, SimulatedDisk, Storage, strerror};
