//! Lua scripting for Amber, as Redis 7.0 has it: one Lua 5.1 interpreter with Redis's sandbox
//! (read-only globals and libraries, no `os`/`io`/`loadfile`), the `redis` API, the bundled
//! `cjson`, `cmsgpack`, `bit` and `struct` libraries, the `EVAL` script cache, and Redis 7
//! Functions.
//!
//! The crate knows nothing about commands or the dataset: a script's `redis.call` goes to a
//! [`Host`], which runs the command and hands back its reply as a RESP [`amber_protocol::Frame`].
//! Replies go out through an [`amber_protocol::ReplyWriter`]. Redis's Lua debugger talks to its
//! client through a [`Console`] the caller provides.

#![warn(missing_docs)]

mod convert;
mod current;
mod debugger;
mod engine;
mod flags;
mod functions;
mod libs;

pub use debugger::{Console, DebugSession};
pub use engine::{Engine, Host, LogLevel, Logger, ScriptError, sha1_hex};
pub use flags::{ScriptFlags, Shebang, parse_shebang};
pub use functions::{FunctionInfo, Library, RestorePolicy};
