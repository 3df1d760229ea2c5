//! Everything that puts the dataset on disk and reads it back: RDB snapshots ([`rdb`]), the
//! append-only file ([`aof`], loaded by [`aof_load`], compacted by [`aof_rewrite`]), scheduled
//! backups ([`backup`]), and the background jobs they fork ([`jobs`]).

pub(crate) mod aof;
mod aof_control;
pub(crate) mod aof_load;
mod aof_prefetch;
pub(crate) mod aof_rewrite;
pub(crate) mod archive;
pub(crate) mod backup;
pub(crate) mod closer;
pub(crate) mod forkless;
pub(crate) mod jobs;
pub(crate) mod rdb;
mod rdb_parallel;
mod rdb_prefetch;
mod rdb_stream;
pub(crate) mod save;
pub(crate) mod startup;

/// The file buffer of a snapshot, rewrite or backup writer: 128 KiB per `write(2)` keeps the calls
/// few. A bigger buffer only adds to what a save costs in memory, and in a forked child each of
/// its pages is a private copy: 1 MiB was about a fifth of a 300k-key rewrite child's
/// copy-on-write, and over a third of a forkless snapshot's peak.
pub(crate) const WRITE_BUFFER: usize = 128 * 1024;
