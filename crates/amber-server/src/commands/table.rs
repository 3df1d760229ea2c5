//! The command table: every command's name, arity, flags and key positions, as `COMMAND INFO`
//! reports them, and its implementation.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{
    Ctx, acl_cmd, bits, blocking, connection, diagnostics_cmds, dump, geo, hashes, hll, keys, lcs,
    lists, lolwut, memory, migrate, pubsub_cmds, scripting_cmds, server_cmds, sets, sort, streams,
    strings, sync, transactions, zsets,
};
use bytes::Bytes;

/// A command implementation.
pub(super) type Handler = fn(&mut Ctx, &[Bytes]);

/// A set of command flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags(u32);

/// Changes the dataset.
pub(super) const WRITE: Flags = Flags(1);
/// Only reads the dataset.
pub(super) const READONLY: Flags = Flags(2);
/// May grow memory use.
pub(super) const DENYOOM: Flags = Flags(4);
/// Administrative.
pub(super) const ADMIN: Flags = Flags(8);
/// Constant or logarithmic time.
pub(super) const FAST: Flags = Flags(16);
/// Allowed before authentication.
pub(super) const NO_AUTH: Flags = Flags(32);
/// Allowed while the dataset loads.
pub(super) const LOADING: Flags = Flags(64);
/// Allowed on a stale replica.
pub(super) const STALE: Flags = Flags(128);
/// Not allowed in scripts.
pub(super) const NOSCRIPT: Flags = Flags(256);
/// May cause a write to be propagated without being a write itself (scripts, PUBLISH): a
/// write pause holds it. Redis does not show this flag in COMMAND INFO.
pub(super) const MAY_REPLICATE: Flags = Flags(512);
/// Refused with `-LOADING` while a replica loads its master's snapshot in the background
/// (`repl-diskless-load swapdb` continuing the same history, Redis's `async_loading`).
pub(super) const NO_ASYNC_LOADING: Flags = Flags(1024);
/// Refused inside MULTI (`Command not allowed inside a transaction`).
pub(super) const NO_MULTI: Flags = Flags(2048);

const NAMES: &[(Flags, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (NOSCRIPT, "noscript"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (NO_MULTI, "no_multi"),
    (NO_ASYNC_LOADING, "no_async_loading"),
];

impl Flags {
    /// Whether every flag of `other` is set.
    pub(crate) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag names `COMMAND INFO` lists.
    pub(crate) fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl Flags {
    /// Only those of these flags that `other` has too.
    pub(crate) fn only(self, other: Flags) -> Flags {
        Flags(self.0 & other.0)
    }

    /// These flags without those of `other`.
    pub(crate) fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// One command.
pub(crate) struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// The implementation.
    pub handler: Handler,
    /// Number of arguments including the name; negative means "at least".
    pub arity: i32,
    /// Flags.
    pub flags: Flags,
    /// Position of the first key (0 = none).
    pub first_key: i32,
    /// Position of the last key (-1 = the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// The group `COMMAND DOCS` reports (`string`, `keyspace`, `server`, `connection`).
    pub group: &'static str,
    /// One-line description.
    pub summary: &'static str,
}

impl CommandSpec {
    /// Whether `argc` arguments (the name included) fit the command's arity.
    pub(crate) fn accepts(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity > 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Flagged `noscript`: scripts may not call it.
    pub(crate) fn is_noscript(&self) -> bool {
        self.flags.contains(NOSCRIPT)
    }

    /// Flagged `write`.
    pub(crate) fn is_write(&self) -> bool {
        self.flags.contains(WRITE)
    }

    /// Flagged `admin`.
    pub(crate) fn is_admin(&self) -> bool {
        self.flags.contains(ADMIN)
    }

    /// Flagged `fast`.
    pub(crate) fn is_fast(&self) -> bool {
        self.flags.contains(FAST)
    }

    /// Flagged `no-auth`: runs before authentication (AUTH, HELLO).
    pub(crate) fn is_no_auth(&self) -> bool {
        self.flags.contains(NO_AUTH)
    }

    /// Flagged `denyoom`: refused when memory is over `maxmemory`.
    pub(crate) fn is_denyoom(&self) -> bool {
        self.flags.contains(DENYOOM)
    }

    /// Flagged `stale`: allowed on a replica whose master link is down.
    pub(crate) fn is_stale_ok(&self) -> bool {
        self.flags.contains(STALE)
    }
}

const fn cmd(
    name: &'static str,
    handler: Handler,
    arity: i32,
    flags: Flags,
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        handler,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        summary,
    }
}

const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const TWO: (i32, i32, i32) = (1, 2, 1);
const ALL_BUT_LAST: (i32, i32, i32) = (1, -2, 1);
const W: Flags = Flags(WRITE.0 | DENYOOM.0);
const WF: Flags = Flags(WRITE.0 | DENYOOM.0 | FAST.0);
const RF: Flags = Flags(READONLY.0 | FAST.0);
const CONN: Flags = Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0);
const S: &str = "string";
const K: &str = "keyspace";
const H: &str = "hash";
const SET: &str = "set";
const L: &str = "list";
const Z: &str = "sorted-set";
const SRV: &str = "server";
const BITMAP: &str = "bitmap";
const PUBSUB: &str = "pubsub";
const C: &str = "connection";
const X: &str = "stream";
const LUA: &str = "scripting";
const HLL: &str = "hyperloglog";
const GEO: &str = "geo";
/// GEORADIUS and GEORADIUSBYMEMBER: writes only with STORE (Redis lists them as writes).
const GEO_STORE: Flags = Flags(WRITE.0 | DENYOOM.0);
/// EXEC's own flags (those of its queued commands are added, see `transactions`).
pub(super) const EXEC_FLAGS: Flags = Flags(NOSCRIPT.0 | LOADING.0 | STALE.0);
const SCRIPT_RUN: Flags = Flags(NOSCRIPT.0 | STALE.0 | MAY_REPLICATE.0);

/// Every command Amber implements.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    cmd(
        "lolwut",
        lolwut::lolwut,
        -1,
        Flags(READONLY.0 | FAST.0),
        NONE,
        SRV,
        "Displays computer art and the Redis version",
    ),
    cmd(
        "slowlog",
        diagnostics_cmds::slowlog,
        -2,
        Flags(ADMIN.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "A container for slow log commands.",
    ),
    cmd(
        "latency",
        diagnostics_cmds::latency,
        -2,
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "A container for latency diagnostics commands.",
    ),
    cmd(
        "geoadd",
        geo::geoadd,
        -5,
        W,
        ONE,
        GEO,
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
    ),
    cmd(
        "geodist",
        geo::geodist,
        -4,
        READONLY,
        ONE,
        GEO,
        "Returns the distance between two members of a geospatial index.",
    ),
    cmd(
        "geohash",
        geo::geohash,
        -2,
        READONLY,
        ONE,
        GEO,
        "Returns members from a geospatial index as geohash strings.",
    ),
    cmd(
        "geopos",
        geo::geopos,
        -2,
        READONLY,
        ONE,
        GEO,
        "Returns the longitude and latitude of members from a geospatial index.",
    ),
    cmd(
        "georadius",
        geo::georadius,
        -6,
        GEO_STORE,
        ONE,
        GEO,
        "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
    ),
    cmd(
        "georadius_ro",
        geo::georadius_ro,
        -6,
        READONLY,
        ONE,
        GEO,
        "Returns members from a geospatial index that are within a distance from a coordinate.",
    ),
    cmd(
        "georadiusbymember",
        geo::georadiusbymember,
        -5,
        GEO_STORE,
        ONE,
        GEO,
        "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
    ),
    cmd(
        "georadiusbymember_ro",
        geo::georadiusbymember_ro,
        -5,
        READONLY,
        ONE,
        GEO,
        "Returns members from a geospatial index that are within a distance from a member.",
    ),
    cmd(
        "geosearch",
        geo::geosearch,
        -7,
        READONLY,
        ONE,
        GEO,
        "Queries a geospatial index for members inside an area of a box or a circle.",
    ),
    cmd(
        "geosearchstore",
        geo::geosearchstore,
        -8,
        W,
        TWO,
        GEO,
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
    ),
    cmd(
        "pfadd",
        hll::pfadd,
        -2,
        WF,
        ONE,
        HLL,
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
    ),
    cmd(
        "pfcount",
        hll::pfcount,
        -2,
        Flags(READONLY.0 | MAY_REPLICATE.0),
        ALL,
        HLL,
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
    ),
    cmd(
        "pfmerge",
        hll::pfmerge,
        -2,
        W,
        ALL,
        HLL,
        "Merges one or more HyperLogLog values into a single key.",
    ),
    cmd(
        "pfdebug",
        hll::pfdebug,
        3,
        Flags(WRITE.0 | DENYOOM.0 | ADMIN.0),
        (2, 2, 1),
        HLL,
        "Internal commands for debugging HyperLogLog values.",
    ),
    cmd(
        "pfselftest",
        hll::pfselftest,
        1,
        ADMIN,
        NONE,
        HLL,
        "An internal command for testing HyperLogLog values.",
    ),
    cmd(
        "eval",
        scripting_cmds::eval,
        -3,
        SCRIPT_RUN,
        NONE,
        LUA,
        "Executes a server-side Lua script.",
    ),
    cmd(
        "eval_ro",
        scripting_cmds::eval_ro,
        -3,
        Flags(NOSCRIPT.0 | STALE.0 | READONLY.0),
        NONE,
        LUA,
        "Executes a read-only server-side Lua script.",
    ),
    cmd(
        "evalsha",
        scripting_cmds::evalsha,
        -3,
        SCRIPT_RUN,
        NONE,
        LUA,
        "Executes a server-side Lua script by SHA1 digest.",
    ),
    cmd(
        "evalsha_ro",
        scripting_cmds::evalsha_ro,
        -3,
        Flags(NOSCRIPT.0 | STALE.0 | READONLY.0),
        NONE,
        LUA,
        "Executes a read-only server-side Lua script by SHA1 digest.",
    ),
    cmd(
        "fcall",
        scripting_cmds::fcall,
        -3,
        SCRIPT_RUN,
        NONE,
        LUA,
        "Invokes a function.",
    ),
    cmd(
        "fcall_ro",
        scripting_cmds::fcall_ro,
        -3,
        Flags(NOSCRIPT.0 | STALE.0 | READONLY.0),
        NONE,
        LUA,
        "Invokes a read-only function.",
    ),
    cmd(
        "cluster",
        server_cmds::cluster,
        -2,
        Flags(NOSCRIPT.0 | STALE.0),
        NONE,
        "cluster",
        "A container for Redis Cluster commands.",
    ),
    cmd(
        "script",
        scripting_cmds::script,
        -2,
        NOSCRIPT,
        NONE,
        LUA,
        "A container for Lua scripts management commands.",
    ),
    cmd(
        "function",
        scripting_cmds::function,
        -2,
        NOSCRIPT,
        NONE,
        LUA,
        "A container for function commands.",
    ),
    cmd(
        "xadd",
        streams::xadd,
        -5,
        WF,
        ONE,
        X,
        "Appends a new message to a stream. Creates the key if it doesn't exist.",
    ),
    cmd(
        "xrange",
        streams::xrange,
        -4,
        READONLY,
        ONE,
        X,
        "Returns the messages from a stream within a range of IDs.",
    ),
    cmd(
        "xrevrange",
        streams::xrevrange,
        -4,
        READONLY,
        ONE,
        X,
        "Returns the messages from a stream within a range of IDs in reverse order.",
    ),
    cmd(
        "xlen",
        streams::xlen,
        2,
        RF,
        ONE,
        X,
        "Return the number of messages in a stream.",
    ),
    cmd(
        "xdel",
        streams::xdel,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        X,
        "Returns the number of messages after removing them from a stream.",
    ),
    cmd(
        "xtrim",
        streams::xtrim,
        -4,
        WRITE,
        ONE,
        X,
        "Deletes messages from the beginning of a stream.",
    ),
    cmd(
        "xread",
        streams::xread,
        -4,
        READONLY,
        NONE,
        X,
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
    ),
    cmd(
        "xreadgroup",
        streams::xreadgroup,
        -7,
        WRITE,
        NONE,
        X,
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
    ),
    cmd(
        "xgroup",
        streams::xgroup,
        -2,
        WRITE,
        (2, 2, 1),
        X,
        "A container for consumer groups commands.",
    ),
    cmd(
        "xack",
        streams::xack,
        -4,
        Flags(WRITE.0 | FAST.0),
        ONE,
        X,
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
    ),
    cmd(
        "xpending",
        streams::xpending,
        -3,
        READONLY,
        ONE,
        X,
        "Returns the information and entries from a stream consumer group's pending entries list.",
    ),
    cmd(
        "xclaim",
        streams::xclaim,
        -6,
        Flags(WRITE.0 | FAST.0),
        ONE,
        X,
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
    ),
    cmd(
        "xautoclaim",
        streams::xautoclaim,
        -6,
        Flags(WRITE.0 | FAST.0),
        ONE,
        X,
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
    ),
    cmd(
        "xinfo",
        streams::xinfo,
        -2,
        READONLY,
        (2, 2, 1),
        X,
        "A container for stream introspection commands.",
    ),
    cmd(
        "xsetid",
        streams::xsetid,
        -3,
        WF,
        ONE,
        X,
        "An internal command for replicating stream values.",
    ),
    cmd(
        "ping",
        connection::ping,
        -1,
        FAST,
        NONE,
        C,
        "Returns the server's liveliness response.",
    ),
    cmd(
        "echo",
        connection::echo,
        2,
        Flags(FAST.0 | LOADING.0 | STALE.0),
        NONE,
        C,
        "Returns the given string.",
    ),
    cmd(
        "quit",
        connection::quit,
        -1,
        Flags(CONN.0 | NO_AUTH.0),
        NONE,
        C,
        "Closes the connection.",
    ),
    cmd(
        "hello",
        connection::hello,
        -1,
        Flags(CONN.0 | NO_AUTH.0),
        NONE,
        C,
        "Handshakes with the server.",
    ),
    cmd(
        "auth",
        connection::auth,
        -2,
        Flags(CONN.0 | NO_AUTH.0),
        NONE,
        C,
        "Authenticates the connection.",
    ),
    cmd(
        "reset",
        connection::reset,
        1,
        Flags(NO_AUTH.0 | NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        NONE,
        C,
        "Resets the connection.",
    ),
    cmd(
        "monitor",
        connection::monitor,
        1,
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "Listens for all requests received by the server in real-time.",
    ),
    cmd(
        "select",
        connection::select,
        2,
        Flags(LOADING.0 | STALE.0 | FAST.0),
        NONE,
        C,
        "Changes the selected database.",
    ),
    cmd(
        "acl",
        acl_cmd::acl,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "A container for Access List Control commands.",
    ),
    cmd(
        "client",
        connection::client,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        C,
        "Connection management.",
    ),
    cmd(
        "swapdb",
        server_cmds::swapdb,
        3,
        Flags(WRITE.0 | FAST.0),
        NONE,
        SRV,
        "Swaps two databases.",
    ),
    cmd(
        "dbsize",
        server_cmds::dbsize,
        1,
        RF,
        NONE,
        SRV,
        "Returns the number of keys in the database.",
    ),
    cmd(
        "flushdb",
        server_cmds::flushdb,
        -1,
        WRITE,
        NONE,
        SRV,
        "Removes all keys from the current database.",
    ),
    cmd(
        "flushall",
        server_cmds::flushall,
        -1,
        WRITE,
        NONE,
        SRV,
        "Removes all keys from all databases.",
    ),
    cmd(
        "info",
        server_cmds::info,
        -1,
        Flags(LOADING.0 | STALE.0),
        NONE,
        SRV,
        "Returns information and statistics about the server.",
    ),
    cmd(
        "time",
        server_cmds::time,
        1,
        Flags(LOADING.0 | STALE.0 | FAST.0),
        NONE,
        SRV,
        "Returns the server time.",
    ),
    cmd(
        "lastsave",
        server_cmds::lastsave,
        1,
        Flags(LOADING.0 | STALE.0 | FAST.0),
        NONE,
        SRV,
        "Returns the Unix timestamp of the last successful save.",
    ),
    cmd(
        "command",
        server_cmds::command,
        -1,
        Flags(LOADING.0 | STALE.0),
        NONE,
        SRV,
        "Returns detailed information about all commands.",
    ),
    cmd(
        "config",
        server_cmds::config,
        -2,
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "Gets or sets configuration parameters.",
    ),
    cmd(
        "shutdown",
        server_cmds::shutdown,
        -1,
        Flags(NO_MULTI.0 | ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0 | NO_AUTH.0),
        NONE,
        SRV,
        "Synchronously saves the database(s) to disk and shuts down the server.",
    ),
    cmd(
        "debug",
        server_cmds::debug,
        -2,
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "Debugging commands.",
    ),
    cmd(
        "save",
        server_cmds::save,
        1,
        Flags(NO_MULTI.0 | NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Synchronously saves the database(s) to disk.",
    ),
    cmd(
        "backup",
        super::backup_cmd::backup,
        -2,
        Flags(ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Takes, lists and reports Amber's verified backups (NOW | LIST | STATUS | HELP).",
    ),
    cmd(
        "bgrewriteaof",
        server_cmds::bgrewriteaof,
        1,
        Flags(NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Asynchronously rewrites the append-only file to disk.",
    ),
    cmd(
        "bgsave",
        server_cmds::bgsave,
        -1,
        Flags(NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Asynchronously saves the database(s) to disk.",
    ),
    cmd(
        "hset",
        hashes::hset,
        -4,
        WF,
        ONE,
        H,
        "Creates or modifies the value of a field in a hash.",
    ),
    cmd(
        "hmset",
        hashes::hmset,
        -4,
        WF,
        ONE,
        H,
        "Sets the values of multiple fields.",
    ),
    cmd(
        "hsetnx",
        hashes::hsetnx,
        4,
        WF,
        ONE,
        H,
        "Sets the value of a field in a hash only when the field doesn't exist.",
    ),
    cmd(
        "hget",
        hashes::hget,
        3,
        RF,
        ONE,
        H,
        "Returns the value of a field in a hash.",
    ),
    cmd(
        "hmget",
        hashes::hmget,
        -3,
        RF,
        ONE,
        H,
        "Returns the values of all fields in a hash.",
    ),
    cmd(
        "hdel",
        hashes::hdel,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        H,
        "Deletes one or more fields and their values from a hash.",
    ),
    cmd(
        "hlen",
        hashes::hlen,
        2,
        RF,
        ONE,
        H,
        "Returns the number of fields in a hash.",
    ),
    cmd(
        "hstrlen",
        hashes::hstrlen,
        3,
        RF,
        ONE,
        H,
        "Returns the length of the value of a field.",
    ),
    cmd(
        "hexists",
        hashes::hexists,
        3,
        RF,
        ONE,
        H,
        "Determines whether a field exists in a hash.",
    ),
    cmd(
        "hkeys",
        hashes::hkeys,
        2,
        READONLY,
        ONE,
        H,
        "Returns all fields in a hash.",
    ),
    cmd(
        "hvals",
        hashes::hvals,
        2,
        READONLY,
        ONE,
        H,
        "Returns all values in a hash.",
    ),
    cmd(
        "hgetall",
        hashes::hgetall,
        2,
        READONLY,
        ONE,
        H,
        "Returns all fields and values in a hash.",
    ),
    cmd(
        "hincrby",
        hashes::hincrby,
        4,
        WF,
        ONE,
        H,
        "Increments the integer value of a field in a hash by a number.",
    ),
    cmd(
        "hincrbyfloat",
        hashes::hincrbyfloat,
        4,
        WF,
        ONE,
        H,
        "Increments the floating point value of a field by a number.",
    ),
    cmd(
        "hrandfield",
        hashes::hrandfield,
        -2,
        READONLY,
        ONE,
        H,
        "Returns one or more random fields from a hash.",
    ),
    cmd(
        "hscan",
        hashes::hscan,
        -3,
        READONLY,
        ONE,
        H,
        "Iterates over fields and values of a hash.",
    ),
    cmd(
        "sadd",
        sets::sadd,
        -3,
        WF,
        ONE,
        SET,
        "Adds one or more members to a set.",
    ),
    cmd(
        "srem",
        sets::srem,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        SET,
        "Removes one or more members from a set.",
    ),
    cmd(
        "scard",
        sets::scard,
        2,
        RF,
        ONE,
        SET,
        "Returns the number of members in a set.",
    ),
    cmd(
        "sismember",
        sets::sismember,
        3,
        RF,
        ONE,
        SET,
        "Determines whether a member belongs to a set.",
    ),
    cmd(
        "smismember",
        sets::smismember,
        -3,
        RF,
        ONE,
        SET,
        "Determines whether multiple members belong to a set.",
    ),
    cmd(
        "smembers",
        sets::smembers,
        2,
        READONLY,
        ONE,
        SET,
        "Returns all members of a set.",
    ),
    cmd(
        "sinter",
        sets::sinter,
        -2,
        READONLY,
        ALL,
        SET,
        "Returns the intersect of multiple sets.",
    ),
    cmd(
        "sunion",
        sets::sunion,
        -2,
        READONLY,
        ALL,
        SET,
        "Returns the union of multiple sets.",
    ),
    cmd(
        "sdiff",
        sets::sdiff,
        -2,
        READONLY,
        ALL,
        SET,
        "Returns the difference of multiple sets.",
    ),
    cmd(
        "sinterstore",
        sets::sinterstore,
        -3,
        W,
        ALL,
        SET,
        "Stores the intersect of multiple sets in a key.",
    ),
    cmd(
        "sunionstore",
        sets::sunionstore,
        -3,
        W,
        ALL,
        SET,
        "Stores the union of multiple sets in a key.",
    ),
    cmd(
        "sdiffstore",
        sets::sdiffstore,
        -3,
        W,
        ALL,
        SET,
        "Stores the difference of multiple sets in a key.",
    ),
    cmd(
        "sintercard",
        sets::sintercard,
        -3,
        READONLY,
        NONE,
        SET,
        "Returns the number of members of the intersect of multiple sets.",
    ),
    cmd(
        "smove",
        sets::smove,
        4,
        Flags(WRITE.0 | FAST.0),
        TWO,
        SET,
        "Moves a member from one set to another.",
    ),
    cmd(
        "spop",
        sets::spop,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        SET,
        "Returns one or more random members from a set after removing them.",
    ),
    cmd(
        "srandmember",
        sets::srandmember,
        -2,
        READONLY,
        ONE,
        SET,
        "Get one or multiple random members from a set.",
    ),
    cmd(
        "sscan",
        sets::sscan,
        -3,
        READONLY,
        ONE,
        SET,
        "Iterates over members of a set.",
    ),
    cmd(
        "lpush",
        lists::lpush,
        -3,
        WF,
        ONE,
        L,
        "Prepends one or more elements to a list.",
    ),
    cmd(
        "rpush",
        lists::rpush,
        -3,
        WF,
        ONE,
        L,
        "Appends one or more elements to a list.",
    ),
    cmd(
        "lpushx",
        lists::lpushx,
        -3,
        WF,
        ONE,
        L,
        "Prepends one or more elements to a list only when the list exists.",
    ),
    cmd(
        "rpushx",
        lists::rpushx,
        -3,
        WF,
        ONE,
        L,
        "Appends an element to a list only when the list exists.",
    ),
    cmd(
        "lpop",
        lists::lpop,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        L,
        "Returns the first elements in a list after removing it.",
    ),
    cmd(
        "rpop",
        lists::rpop,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        L,
        "Returns and removes the last elements of a list.",
    ),
    cmd(
        "llen",
        lists::llen,
        2,
        RF,
        ONE,
        L,
        "Returns the length of a list.",
    ),
    cmd(
        "lindex",
        lists::lindex,
        3,
        READONLY,
        ONE,
        L,
        "Returns an element from a list by its index.",
    ),
    cmd(
        "lset",
        lists::lset,
        4,
        W,
        ONE,
        L,
        "Sets the value of an element in a list by its index.",
    ),
    cmd(
        "lrange",
        lists::lrange,
        4,
        READONLY,
        ONE,
        L,
        "Returns a range of elements from a list.",
    ),
    cmd(
        "ltrim",
        lists::ltrim,
        4,
        WRITE,
        ONE,
        L,
        "Removes elements from both ends a list.",
    ),
    cmd(
        "linsert",
        lists::linsert,
        5,
        W,
        ONE,
        L,
        "Inserts an element before or after another element in a list.",
    ),
    cmd(
        "lrem",
        lists::lrem,
        4,
        WRITE,
        ONE,
        L,
        "Removes elements from a list.",
    ),
    cmd(
        "lpos",
        lists::lpos,
        -3,
        READONLY,
        ONE,
        L,
        "Returns the index of matching elements in a list.",
    ),
    cmd(
        "lmove",
        lists::lmove,
        5,
        W,
        TWO,
        L,
        "Returns an element after popping it from one list and pushing it to another.",
    ),
    cmd(
        "rpoplpush",
        lists::rpoplpush,
        3,
        W,
        TWO,
        L,
        "Returns the last element of a list after removing and pushing it to another list.",
    ),
    cmd(
        "lmpop",
        lists::lmpop,
        -4,
        WRITE,
        NONE,
        L,
        "Returns multiple elements from a list after removing them.",
    ),
    cmd(
        "zadd",
        zsets::zadd,
        -4,
        WF,
        ONE,
        Z,
        "Adds one or more members to a sorted set, or updates their scores.",
    ),
    cmd(
        "zincrby",
        zsets::zincrby,
        4,
        WF,
        ONE,
        Z,
        "Increments the score of a member in a sorted set.",
    ),
    cmd(
        "zrem",
        zsets::zrem,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        Z,
        "Removes one or more members from a sorted set.",
    ),
    cmd(
        "zcard",
        zsets::zcard,
        2,
        RF,
        ONE,
        Z,
        "Returns the number of members in a sorted set.",
    ),
    cmd(
        "zscore",
        zsets::zscore,
        3,
        RF,
        ONE,
        Z,
        "Returns the score of a member in a sorted set.",
    ),
    cmd(
        "zmscore",
        zsets::zmscore,
        -3,
        RF,
        ONE,
        Z,
        "Returns the score of one or more members in a sorted set.",
    ),
    cmd(
        "zrank",
        zsets::zrank,
        3,
        RF,
        ONE,
        Z,
        "Returns the index of a member in a sorted set ordered by ascending scores.",
    ),
    cmd(
        "zrevrank",
        zsets::zrevrank,
        3,
        RF,
        ONE,
        Z,
        "Returns the index of a member in a sorted set ordered by descending scores.",
    ),
    cmd(
        "zcount",
        zsets::zcount,
        4,
        RF,
        ONE,
        Z,
        "Returns the count of members in a sorted set that have scores within a range.",
    ),
    cmd(
        "zlexcount",
        zsets::zlexcount,
        4,
        RF,
        ONE,
        Z,
        "Returns the number of members in a sorted set within a lexicographical range.",
    ),
    cmd(
        "zrange",
        zsets::zrange,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a range of indexes.",
    ),
    cmd(
        "zrevrange",
        zsets::zrevrange,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a range of indexes in reverse order.",
    ),
    cmd(
        "zrangebyscore",
        zsets::zrangebyscore,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a range of scores.",
    ),
    cmd(
        "zrevrangebyscore",
        zsets::zrevrangebyscore,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a range of scores in reverse order.",
    ),
    cmd(
        "zrangebylex",
        zsets::zrangebylex,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a lexicographical range.",
    ),
    cmd(
        "zrevrangebylex",
        zsets::zrevrangebylex,
        -4,
        READONLY,
        ONE,
        Z,
        "Returns members in a sorted set within a lexicographical range in reverse order.",
    ),
    cmd(
        "zremrangebyrank",
        zsets::zremrangebyrank,
        4,
        WRITE,
        ONE,
        Z,
        "Removes members in a sorted set within a range of indexes.",
    ),
    cmd(
        "zremrangebyscore",
        zsets::zremrangebyscore,
        4,
        WRITE,
        ONE,
        Z,
        "Removes members in a sorted set within a range of scores.",
    ),
    cmd(
        "zremrangebylex",
        zsets::zremrangebylex,
        4,
        WRITE,
        ONE,
        Z,
        "Removes members in a sorted set within a lexicographical range.",
    ),
    cmd(
        "zpopmin",
        zsets::zpopmin,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        Z,
        "Returns the lowest-scoring members from a sorted set after removing them.",
    ),
    cmd(
        "zpopmax",
        zsets::zpopmax,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        Z,
        "Returns the highest-scoring members from a sorted set after removing them.",
    ),
    cmd(
        "zscan",
        zsets::zscan,
        -3,
        READONLY,
        ONE,
        Z,
        "Iterates over members and scores of a sorted set.",
    ),
    cmd(
        "blpop",
        blocking::blpop,
        -3,
        Flags(WRITE.0 | NOSCRIPT.0),
        ALL_BUT_LAST,
        L,
        "Removes and returns the first element in a list. Blocks until an element is available otherwise.",
    ),
    cmd(
        "brpop",
        blocking::brpop,
        -3,
        Flags(WRITE.0 | NOSCRIPT.0),
        ALL_BUT_LAST,
        L,
        "Removes and returns the last element in a list. Blocks until an element is available otherwise.",
    ),
    cmd(
        "brpoplpush",
        blocking::brpoplpush,
        4,
        Flags(WRITE.0 | DENYOOM.0 | NOSCRIPT.0),
        TWO,
        L,
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.",
    ),
    cmd(
        "blmove",
        blocking::blmove,
        6,
        Flags(WRITE.0 | DENYOOM.0 | NOSCRIPT.0),
        TWO,
        L,
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.",
    ),
    cmd(
        "blmpop",
        blocking::blmpop,
        -5,
        WRITE,
        NONE,
        L,
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise.",
    ),
    cmd(
        "bzmpop",
        blocking::bzmpop,
        -5,
        WRITE,
        NONE,
        Z,
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.",
    ),
    cmd(
        "bzpopmin",
        blocking::bzpopmin,
        -3,
        Flags(WRITE.0 | NOSCRIPT.0 | FAST.0),
        ALL_BUT_LAST,
        Z,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.",
    ),
    cmd(
        "bzpopmax",
        blocking::bzpopmax,
        -3,
        Flags(WRITE.0 | NOSCRIPT.0 | FAST.0),
        ALL_BUT_LAST,
        Z,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.",
    ),
    cmd(
        "dump",
        dump::dump,
        2,
        READONLY,
        ONE,
        K,
        "Returns a serialized representation of the value stored at a key.",
    ),
    cmd(
        "restore",
        dump::restore,
        -4,
        W,
        ONE,
        K,
        "Creates a key from the serialized representation of a value.",
    ),
    cmd(
        "zunion",
        zsets::zunion,
        -3,
        READONLY,
        NONE,
        Z,
        "Returns the union of multiple sorted sets.",
    ),
    cmd(
        "zinter",
        zsets::zinter,
        -3,
        READONLY,
        NONE,
        Z,
        "Returns the intersect of multiple sorted sets.",
    ),
    cmd(
        "zdiff",
        zsets::zdiff,
        -3,
        READONLY,
        NONE,
        Z,
        "Returns the difference between multiple sorted sets.",
    ),
    cmd(
        "zunionstore",
        zsets::zunionstore,
        -4,
        W,
        ONE,
        Z,
        "Stores the union of multiple sorted sets in a key.",
    ),
    cmd(
        "zinterstore",
        zsets::zinterstore,
        -4,
        W,
        ONE,
        Z,
        "Stores the intersect of multiple sorted sets in a key.",
    ),
    cmd(
        "zdiffstore",
        zsets::zdiffstore,
        -4,
        W,
        ONE,
        Z,
        "Stores the difference of multiple sorted sets in a key.",
    ),
    cmd(
        "zintercard",
        zsets::zintercard,
        -3,
        READONLY,
        NONE,
        Z,
        "Returns the number of members of the intersect of multiple sorted sets.",
    ),
    cmd(
        "zrangestore",
        zsets::zrangestore,
        -5,
        W,
        TWO,
        Z,
        "Stores a range of members from sorted set in a key.",
    ),
    cmd(
        "zmpop",
        zsets::zmpop,
        -4,
        WRITE,
        NONE,
        Z,
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them.",
    ),
    cmd(
        "zrandmember",
        zsets::zrandmember,
        -2,
        READONLY,
        ONE,
        Z,
        "Returns one or more random members from a sorted set.",
    ),
    cmd(
        "multi",
        transactions::multi,
        1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        NONE,
        "transactions",
        "Starts a transaction.",
    ),
    cmd(
        "exec",
        transactions::exec,
        1,
        EXEC_FLAGS,
        NONE,
        "transactions",
        "Executes all commands in a transaction.",
    ),
    cmd(
        "discard",
        transactions::discard,
        1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        NONE,
        "transactions",
        "Discards a transaction.",
    ),
    cmd(
        "watch",
        transactions::watch,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        ALL,
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
    cmd(
        "unwatch",
        transactions::unwatch,
        1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        NONE,
        "transactions",
        "Forgets about watched keys of a transaction.",
    ),
    cmd(
        "get",
        strings::get,
        2,
        RF,
        ONE,
        S,
        "Returns the string value of a key.",
    ),
    cmd(
        "set",
        strings::set,
        -3,
        W,
        ONE,
        S,
        "Sets the string value of a key.",
    ),
    cmd(
        "setnx",
        strings::setnx,
        3,
        WF,
        ONE,
        S,
        "Sets the value of a key only when the key doesn't exist.",
    ),
    cmd(
        "setex",
        strings::setex,
        4,
        W,
        ONE,
        S,
        "Sets the value and expiration time of a key.",
    ),
    cmd(
        "psetex",
        strings::psetex,
        4,
        W,
        ONE,
        S,
        "Sets the value and expiration in milliseconds of a key.",
    ),
    cmd(
        "mget",
        strings::mget,
        -2,
        RF,
        ALL,
        S,
        "Atomically returns the string values of one or more keys.",
    ),
    cmd(
        "mset",
        strings::mset,
        -3,
        W,
        (1, -1, 2),
        S,
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    cmd(
        "msetnx",
        strings::msetnx,
        -3,
        W,
        (1, -1, 2),
        S,
        "Sets the values of keys only when none of them exist.",
    ),
    cmd(
        "getset",
        strings::getset,
        3,
        WF,
        ONE,
        S,
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    cmd(
        "getdel",
        strings::getdel,
        2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        S,
        "Returns the string value of a key after deleting the key.",
    ),
    cmd(
        "getex",
        strings::getex,
        -2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        S,
        "Returns the string value of a key after setting its expiration time.",
    ),
    cmd(
        "append",
        strings::append,
        3,
        WF,
        ONE,
        S,
        "Appends a string to the value of a key.",
    ),
    cmd(
        "strlen",
        strings::strlen,
        2,
        RF,
        ONE,
        S,
        "Returns the length of a string value.",
    ),
    cmd(
        "incr",
        strings::incr,
        2,
        WF,
        ONE,
        S,
        "Increments the integer value of a key by one.",
    ),
    cmd(
        "decr",
        strings::decr,
        2,
        WF,
        ONE,
        S,
        "Decrements the integer value of a key by one.",
    ),
    cmd(
        "incrby",
        strings::incrby,
        3,
        WF,
        ONE,
        S,
        "Increments the integer value of a key by a number.",
    ),
    cmd(
        "decrby",
        strings::decrby,
        3,
        WF,
        ONE,
        S,
        "Decrements a number from the integer value of a key.",
    ),
    cmd(
        "incrbyfloat",
        strings::incrbyfloat,
        3,
        WF,
        ONE,
        S,
        "Increment the floating point value of a key by a number.",
    ),
    cmd(
        "getrange",
        strings::getrange,
        4,
        READONLY,
        ONE,
        S,
        "Returns a substring of the string stored at a key.",
    ),
    cmd(
        "substr",
        strings::getrange,
        4,
        READONLY,
        ONE,
        S,
        "Returns a substring from a string value.",
    ),
    cmd(
        "lcs",
        lcs::lcs,
        -3,
        READONLY,
        TWO,
        S,
        "Finds the longest common substring.",
    ),
    cmd(
        "setbit",
        bits::setbit,
        4,
        W,
        ONE,
        BITMAP,
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
    ),
    cmd(
        "getbit",
        bits::getbit,
        3,
        RF,
        ONE,
        BITMAP,
        "Returns a bit value by offset.",
    ),
    cmd(
        "bitcount",
        bits::bitcount,
        -2,
        READONLY,
        ONE,
        BITMAP,
        "Counts the number of set bits (population counting) in a string.",
    ),
    cmd(
        "bitpos",
        bits::bitpos,
        -3,
        READONLY,
        ONE,
        BITMAP,
        "Finds the first set (1) or clear (0) bit in a string.",
    ),
    cmd(
        "bitop",
        bits::bitop,
        -4,
        W,
        (2, -1, 1),
        BITMAP,
        "Performs bitwise operations on multiple strings, and stores the result.",
    ),
    cmd(
        "bitfield",
        bits::bitfield,
        -2,
        W,
        ONE,
        BITMAP,
        "Performs arbitrary bitfield integer operations on strings.",
    ),
    cmd(
        "bitfield_ro",
        bits::bitfield_ro,
        -2,
        RF,
        ONE,
        BITMAP,
        "Performs arbitrary read-only bitfield integer operations on strings.",
    ),
    cmd(
        "setrange",
        strings::setrange,
        4,
        W,
        ONE,
        S,
        "Overwrites a part of a string value with another by an offset.",
    ),
    cmd(
        "del",
        keys::del,
        -2,
        WRITE,
        ALL,
        K,
        "Deletes one or more keys.",
    ),
    cmd(
        "unlink",
        keys::del,
        -2,
        Flags(WRITE.0 | FAST.0),
        ALL,
        K,
        "Asynchronously deletes one or more keys.",
    ),
    cmd(
        "exists",
        keys::exists,
        -2,
        RF,
        ALL,
        K,
        "Determines whether one or more keys exist.",
    ),
    cmd(
        "type",
        keys::type_,
        2,
        RF,
        ONE,
        K,
        "Determines the type of value stored at a key.",
    ),
    cmd(
        "keys",
        keys::keys,
        2,
        READONLY,
        NONE,
        K,
        "Returns all key names that match a pattern.",
    ),
    cmd(
        "scan",
        keys::scan,
        -2,
        READONLY,
        NONE,
        K,
        "Iterates over the key names in the database.",
    ),
    cmd(
        "randomkey",
        keys::randomkey,
        1,
        READONLY,
        NONE,
        K,
        "Returns a random key name from the database.",
    ),
    cmd(
        "rename",
        keys::rename,
        3,
        WRITE,
        TWO,
        K,
        "Renames a key and overwrites the destination.",
    ),
    cmd(
        "renamenx",
        keys::renamenx,
        3,
        Flags(WRITE.0 | FAST.0),
        TWO,
        K,
        "Renames a key only when the target key name doesn't exist.",
    ),
    cmd(
        "move",
        keys::move_,
        3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Moves a key to another database.",
    ),
    cmd(
        "copy",
        keys::copy,
        -3,
        W,
        TWO,
        K,
        "Copies the value of a key to a new key.",
    ),
    cmd(
        "expire",
        keys::expire,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Sets the expiration time of a key in seconds.",
    ),
    cmd(
        "pexpire",
        keys::pexpire,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Sets the expiration time of a key in milliseconds.",
    ),
    cmd(
        "expireat",
        keys::expireat,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    cmd(
        "pexpireat",
        keys::pexpireat,
        -3,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    cmd(
        "expiretime",
        keys::expiretime,
        2,
        RF,
        ONE,
        K,
        "Returns the expiration time of a key as a Unix timestamp.",
    ),
    cmd(
        "pexpiretime",
        keys::pexpiretime,
        2,
        RF,
        ONE,
        K,
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    ),
    cmd(
        "ttl",
        keys::ttl,
        2,
        RF,
        ONE,
        K,
        "Returns the expiration time in seconds of a key.",
    ),
    cmd(
        "pttl",
        keys::pttl,
        2,
        RF,
        ONE,
        K,
        "Returns the expiration time in milliseconds of a key.",
    ),
    cmd(
        "persist",
        keys::persist,
        2,
        Flags(WRITE.0 | FAST.0),
        ONE,
        K,
        "Removes the expiration time of a key.",
    ),
    cmd(
        "touch",
        keys::touch,
        -2,
        RF,
        ALL,
        K,
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
    ),
    cmd(
        "object",
        keys::object,
        -2,
        READONLY,
        (2, 2, 1),
        K,
        "A container for object introspection commands.",
    ),
    cmd(
        "sort",
        sort::sort,
        -2,
        W,
        ONE,
        K,
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
    ),
    cmd(
        "sort_ro",
        sort::sort_ro,
        -2,
        READONLY,
        ONE,
        K,
        "Returns the sorted elements of a list, a set, or a sorted set.",
    ),
    cmd(
        "migrate",
        migrate::migrate,
        -6,
        WRITE,
        (3, 3, 1),
        K,
        "Atomically transfers a key from one Redis instance to another.",
    ),
    cmd(
        "sync",
        sync::sync,
        1,
        Flags(NO_MULTI.0 | NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "An internal command used in replication.",
    ),
    cmd(
        "psync",
        sync::sync,
        -3,
        Flags(NO_MULTI.0 | NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "An internal command used in replication.",
    ),
    cmd(
        "replicaof",
        sync::replicaof,
        3,
        Flags(NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0 | STALE.0),
        NONE,
        SRV,
        "Configures a server as replica of another, or promotes it to a master.",
    ),
    cmd(
        "slaveof",
        sync::replicaof,
        3,
        Flags(NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0 | STALE.0),
        NONE,
        SRV,
        "Sets a Redis server as a replica of another, or promotes it to being a master.",
    ),
    cmd(
        "failover",
        sync::failover,
        -1,
        Flags(NO_ASYNC_LOADING.0 | ADMIN.0 | NOSCRIPT.0 | STALE.0),
        NONE,
        SRV,
        "Starts a coordinated failover from a server to one of its replicas.",
    ),
    cmd(
        "role",
        sync::role,
        1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0),
        NONE,
        SRV,
        "Returns the replication role.",
    ),
    cmd(
        "wait",
        sync::wait,
        3,
        NOSCRIPT,
        NONE,
        K,
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
    ),
    cmd(
        "replconf",
        sync::replconf,
        -1,
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        SRV,
        "An internal command for configuring the replication stream.",
    ),
    cmd(
        "subscribe",
        pubsub_cmds::subscribe,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        PUBSUB,
        "Listens for messages published to channels.",
    ),
    cmd(
        "unsubscribe",
        pubsub_cmds::unsubscribe,
        -1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        PUBSUB,
        "Stops listening to messages posted to channels.",
    ),
    cmd(
        "psubscribe",
        pubsub_cmds::psubscribe,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        PUBSUB,
        "Listens for messages published to channels that match one or more patterns.",
    ),
    cmd(
        "punsubscribe",
        pubsub_cmds::punsubscribe,
        -1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        NONE,
        PUBSUB,
        "Stops listening to messages published to channels that match one or more patterns.",
    ),
    cmd(
        "publish",
        pubsub_cmds::publish,
        3,
        Flags(LOADING.0 | STALE.0 | FAST.0 | MAY_REPLICATE.0),
        NONE,
        PUBSUB,
        "Posts a message to a channel.",
    ),
    cmd(
        "ssubscribe",
        pubsub_cmds::ssubscribe,
        -2,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        ALL,
        PUBSUB,
        "Listens for messages published to shard channels.",
    ),
    cmd(
        "sunsubscribe",
        pubsub_cmds::sunsubscribe,
        -1,
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
        ALL,
        PUBSUB,
        "Stops listening to messages posted to shard channels.",
    ),
    cmd(
        "spublish",
        pubsub_cmds::spublish,
        3,
        Flags(LOADING.0 | STALE.0 | FAST.0 | MAY_REPLICATE.0),
        ONE,
        PUBSUB,
        "Post a message to a shard channel",
    ),
    cmd(
        "pubsub",
        pubsub_cmds::pubsub,
        -2,
        Flags(LOADING.0 | STALE.0),
        NONE,
        PUBSUB,
        "A container for Pub/Sub commands.",
    ),
    cmd(
        "memory",
        memory::memory,
        -2,
        READONLY,
        (2, 2, 1),
        SRV,
        "A container for memory diagnostics commands.",
    ),
];

/// The command table, keyed by lower-case name. Looked up once per command, so it hashes with
/// FxHash: its keys are fixed at build time, so a client's names cannot grow its chains.
fn table() -> &'static rustc_hash::FxHashMap<&'static str, &'static CommandSpec> {
    static TABLE: OnceLock<rustc_hash::FxHashMap<&'static str, &'static CommandSpec>> =
        OnceLock::new();
    TABLE.get_or_init(|| COMMANDS.iter().map(|spec| (spec.name, spec)).collect())
}

/// Command names changed by `rename-command` lines: a renamed command's old name maps to
/// `None` (unknown), its new name to the command. Set once at start-up, before any lookup.
type Renames = HashMap<String, Option<&'static CommandSpec>>;

static RENAMES: OnceLock<Renames> = OnceLock::new();

/// Applies `rename-command OLD NEW` lines in order, as Redis does: each one finds `OLD` under
/// the names the earlier lines left, removes it, and adds it as `NEW` unless `NEW` is empty.
/// The errors are Redis's config-file texts.
pub(crate) fn resolve_renames(pairs: &[(String, String)]) -> Result<Renames, String> {
    let mut renames = Renames::new();
    for (old, new) in pairs {
        let (old, new) = (old.to_ascii_lowercase(), new.to_ascii_lowercase());
        let current = |renames: &Renames, name: &str| match renames.get(name) {
            Some(entry) => *entry,
            None => table().get(name).copied(),
        };
        let spec = current(&renames, &old).ok_or("No such command in rename-command")?;
        renames.insert(old, None);
        if !new.is_empty() {
            if current(&renames, &new).is_some() {
                return Err("Target command name already exists".into());
            }
            renames.insert(new, Some(spec));
        }
    }
    Ok(renames)
}

/// Installs the config file's `rename-command` lines (once, at start-up).
pub(crate) fn install_renames(pairs: &[(String, String)]) -> Result<(), String> {
    if pairs.is_empty() {
        return Ok(());
    }
    let renames = resolve_renames(pairs)?;
    RENAMES
        .set(renames)
        .map_err(|_| "commands were already renamed".to_string())
}

/// Finds a command by name, ignoring case (and the names `rename-command` gave).
pub(crate) fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 32];
    if name.len() > lower.len() {
        return RENAMES.get().and_then(|renames| {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            renames.get(&name).copied().flatten()
        });
    }
    for (slot, byte) in lower.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    let name = std::str::from_utf8(&lower[..name.len()]).ok()?;
    if let Some(entry) = RENAMES.get().and_then(|renames| renames.get(name)) {
        return *entry;
    }
    table().get(name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn renames_apply_in_order_as_redis() {
        let renames = resolve_renames(&pairs(&[
            ("GET", "fetch"),
            ("fetch", "obtain"),
            ("del", ""),
        ]))
        .unwrap_or_default();
        assert_eq!(renames.get("get").copied().flatten().map(|s| s.name), None);
        assert_eq!(
            renames.get("fetch").copied().flatten().map(|s| s.name),
            None
        );
        assert_eq!(
            renames.get("obtain").copied().flatten().map(|s| s.name),
            Some("get")
        );
        assert!(renames.get("del").is_some_and(Option::is_none));
        assert_eq!(
            resolve_renames(&pairs(&[("get", "x"), ("get", "y")]))
                .err()
                .as_deref(),
            Some("No such command in rename-command")
        );
        assert_eq!(
            resolve_renames(&pairs(&[("get", "set")])).err().as_deref(),
            Some("Target command name already exists")
        );
    }
}
