//! Backups of Amber's data, usable with the server running (it calls [`finalize`] after its
//! forked child wrote a backup) or stopped (the `amber-backup` CLI): a [`Catalog`] of backups,
//! each verified by a full parse and a checksum ([`verify`]), pruned by a retention [`Policy`],
//! restored into a data directory ([`restore`]) and shipped to another machine with `rsync`
//! ([`ship`]) or to an S3-compatible bucket ([`s3`], [`bucket`]) with a retention of its own.

#![warn(missing_docs)]

pub mod archive;
pub mod bucket;
pub mod catalog;
pub mod crypto;
pub mod lock;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod ship;
pub mod time;
pub mod verify;

pub use catalog::{
    Backup, BackupError, Catalog, Kind, Status, finalize, remove_abandoned_staging, staging_dir,
};
pub use retention::{Plan, Policy, plan};
pub use verify::{Progress, VerifyError, checksum_dir, verify};
