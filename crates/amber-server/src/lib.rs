//! The Amber server: configuration, the event loop, connections and the command layer, on top
//! of the protocol, keyspace and persistence crates. `main.rs` is a thin wrapper around
//! [`run`].
//!
//! The layers, outermost first (see `docs/ARCHITECTURE.md`):
//! * [`net`]: listeners, one task per connection, the cron and signals;
//! * [`commands`]: the command table and each command's implementation, over a `Ctx`;
//! * `server`: the state every command works on, owned by the event-loop thread;
//! * `persistence`, `replication`, `pubsub`: what a command's effects feed;
//! * `scripting`: the Lua interpreter (from `amber-scripting`) tied to the command layer.

pub(crate) mod acl;
pub mod alloc;
pub(crate) mod clock;
pub(crate) mod commands;
pub mod config;
pub(crate) mod diagnostics;
pub mod log;
pub(crate) mod lua_debug;
pub(crate) mod net;
pub(crate) mod notify;
pub(crate) mod persistence;
pub(crate) mod proctitle;
pub(crate) mod pubsub;
pub(crate) mod replication;
pub(crate) mod scripting;
pub(crate) mod server;
pub(crate) mod signal;
pub(crate) mod tracking;

pub use net::run;
pub use persistence::startup::AlreadyLogged;

/// The Redis version Amber is compatible with, reported where clients look for it.
pub const REDIS_VERSION: &str = "7.0.15";
