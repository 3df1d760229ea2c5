//! The Amber server: configuration, the event loop, connections and the command layer, on top
//! of the protocol and keyspace crates. `main.rs` is a thin wrapper around [`start`].

pub mod alloc;
pub mod aof;
pub mod aof_load;
pub mod aof_rewrite;
pub mod backup;
pub mod command_stats;
pub mod commands;
pub mod config;
pub mod connection;
pub mod log;
pub mod long_double;
pub mod net;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod server;

/// The Redis version Amber is compatible with, reported where clients look for it.
pub const REDIS_VERSION: &str = "7.0.15";
