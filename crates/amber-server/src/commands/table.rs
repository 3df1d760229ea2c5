//! The command table: every command's name, arity, flags and key positions, as `COMMAND INFO`
//! reports them, and its implementation.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{Ctx, connection, hashes, keys, server_cmds, sets, strings, transactions};
use bytes::Bytes;

/// A command implementation.
pub type Handler = fn(&mut Ctx, &[Bytes]);

/// A set of command flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u32);

/// Changes the dataset.
pub const WRITE: Flags = Flags(1);
/// Only reads the dataset.
pub const READONLY: Flags = Flags(2);
/// May grow memory use.
pub const DENYOOM: Flags = Flags(4);
/// Administrative.
pub const ADMIN: Flags = Flags(8);
/// Constant or logarithmic time.
pub const FAST: Flags = Flags(16);
/// Allowed before authentication.
pub const NO_AUTH: Flags = Flags(32);
/// Allowed while the dataset loads.
pub const LOADING: Flags = Flags(64);
/// Allowed on a stale replica.
pub const STALE: Flags = Flags(128);
/// Not allowed in scripts.
pub const NOSCRIPT: Flags = Flags(256);

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
];

impl Flags {
    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag names `COMMAND INFO` lists.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// One command.
pub struct CommandSpec {
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
const W: Flags = Flags(WRITE.0 | DENYOOM.0);
const WF: Flags = Flags(WRITE.0 | DENYOOM.0 | FAST.0);
const RF: Flags = Flags(READONLY.0 | FAST.0);
const CONN: Flags = Flags(NOSCRIPT.0 | LOADING.0 | STALE.0 | FAST.0);
const S: &str = "string";
const K: &str = "keyspace";
const H: &str = "hash";
const SET: &str = "set";
const SRV: &str = "server";
const C: &str = "connection";

/// Every command Amber implements.
pub static COMMANDS: &[CommandSpec] = &[
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
        FAST,
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
        "select",
        connection::select,
        2,
        Flags(LOADING.0 | STALE.0 | FAST.0),
        NONE,
        C,
        "Changes the selected database.",
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
        Flags(ADMIN.0 | NOSCRIPT.0 | LOADING.0 | STALE.0 | NO_AUTH.0),
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
        Flags(ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Synchronously saves the database(s) to disk.",
    ),
    cmd(
        "bgsave",
        server_cmds::bgsave,
        -1,
        Flags(ADMIN.0 | NOSCRIPT.0),
        NONE,
        SRV,
        "Asynchronously saves the database(s) to disk.",
    ),
    cmd(
        "hset",
        hashes::hset,
        -4,
        W,
        ONE,
        H,
        "Creates or modifies the value of a field in a hash.",
    ),
    cmd(
        "hmset",
        hashes::hmset,
        -4,
        W,
        ONE,
        H,
        "Sets the values of multiple fields.",
    ),
    cmd(
        "hsetnx",
        hashes::hsetnx,
        4,
        W,
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
        WF,
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
        Flags(NOSCRIPT.0 | LOADING.0 | STALE.0),
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
];

fn table() -> &'static HashMap<&'static str, &'static CommandSpec> {
    static TABLE: OnceLock<HashMap<&'static str, &'static CommandSpec>> = OnceLock::new();
    TABLE.get_or_init(|| COMMANDS.iter().map(|spec| (spec.name, spec)).collect())
}

/// Finds a command by name, ignoring case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 32];
    if name.len() > lower.len() {
        return None;
    }
    for (slot, byte) in lower.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    let name = std::str::from_utf8(&lower[..name.len()]).ok()?;
    table().get(name).copied()
}
