//! The libraries Redis loads into its interpreter beside Lua's own.

pub(crate) mod bit;
pub(crate) mod cjson;
pub(crate) mod cmsgpack;
pub(crate) mod random;
pub(crate) mod structlib;
