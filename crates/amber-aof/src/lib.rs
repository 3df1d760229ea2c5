//! The append-only file: Redis 7 multi-part AOF (manifest, base and incr files), its fsync
//! policies and crash-proof loading.
//!
//! Empty for now; the AOF issue fills it.
