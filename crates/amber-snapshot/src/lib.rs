//! Fork orchestration: forking a child from a quiesced keyspace, the child's life (write, fsync,
//! report, `_exit`), reaping and cancellation. Shared by BGSAVE and the AOF rewrite.
//!
//! Empty for now; the snapshot issue fills it.
