//! Everything that puts the dataset on disk and reads it back: RDB snapshots ([`rdb`]), the
//! append-only file ([`aof`], loaded by [`aof_load`], compacted by [`aof_rewrite`]), scheduled
//! backups ([`backup`]), and the background jobs they fork ([`jobs`]).

pub(crate) mod aof;
mod aof_control;
pub(crate) mod aof_load;
pub(crate) mod aof_rewrite;
pub(crate) mod archive;
pub(crate) mod backup;
pub(crate) mod forkless;
pub(crate) mod jobs;
pub(crate) mod rdb;
mod rdb_parallel;
mod rdb_prefetch;
mod rdb_stream;
pub(crate) mod save;
pub(crate) mod startup;
