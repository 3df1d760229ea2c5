//! The Redis serialization protocol (RESP) as Amber speaks it.
//!
//! * [`RequestParser`] turns the bytes a client sends into commands, accepting partial input,
//!   pipelines and inline commands, with Redis's limits and Redis's error texts.
//! * [`ReplyWriter`] encodes replies for RESP2 or RESP3 clients straight into an output buffer.
//! * [`Frame`] is a complete RESP3 value with a parser and an encoder, for clients, tests and tools.
//!
//! The crate does no I/O and knows nothing about commands: it is usable on its own.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod frame;
mod inline;
mod number;
mod reply;
mod request;

pub use frame::{Frame, FrameError};
pub use inline::{SplitArgsError, quote_arg, split_args};
pub use number::{atoi, format_double, format_g, format_i64, format_u64, parse_i64};
pub use reply::{Protocol, ReplyWriter};
pub use request::{Limits, ProtocolError, RequestParser, peek_keys};
