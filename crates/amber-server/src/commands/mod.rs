//! The command layer: the command table, argument checks common to every command (arity,
//! authentication), and dispatch to the families' implementations.

/// A command for the AOF, built from its parts (see [`Ctx::propagate_as`]).
macro_rules! aof_command {
    ($($part:expr),+ $(,)?) => {
        vec![$(bytes::Bytes::copy_from_slice(AsRef::<[u8]>::as_ref($part))),+]
    };
}

mod acl_cmd;
pub(crate) mod backup_cmd;
mod bits;
mod blocking;
mod connection;
mod diagnostics_cmds;
mod dump;
mod geo;
mod hashes;
mod hll;
mod info;
mod key_specs;
pub(crate) use key_specs::keys_and_flags;
mod keys;
mod lcs;
mod lists;
mod lolwut;
pub(crate) mod long_double;
mod memory;
pub(crate) use memory::value_size;
mod migrate;
pub(crate) mod pubsub_cmds;
mod scripting_cmds;
mod server_cmds;
mod sets;
mod sort;
pub(crate) mod stats;
mod streams;
mod strings;
mod sync;
mod table;
mod tracking_cmds;
mod transactions;
mod zsets;

use std::cell::RefCell;
use std::rc::Rc;

use amber_keyspace::{Db, StrValue, Value, glob_match};
use amber_protocol::{ReplyWriter, parse_i64};
use bytes::Bytes;

use crate::server::{ClientInfo, Evicted, OOM, Server};
pub(crate) use connection::describe as describe_client;
pub(crate) use connection::stop_monitoring;
pub(crate) use migrate::MigrateSockets;
pub(crate) use scripting_cmds::library_sources;
pub(crate) use sync::{follow, promote};
pub(crate) use table::{CommandSpec, install_renames, lookup, resolve_renames};
pub(crate) use transactions::refuse;

/// Every command of the table.
pub(crate) fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    table::COMMANDS.iter()
}

/// Error replies shared by many commands, worded exactly as Redis 7.0 words them.
pub(crate) mod errors {
    /// A value that must be an integer is not one.
    pub(crate) const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    /// A value that must be a float is not one.
    pub(crate) const NOT_FLOAT: &str = "ERR value is not a valid float";
    /// Bad option combination or unknown option.
    pub(crate) const SYNTAX: &str = "ERR syntax error";
    /// An operation on a key holding another type.
    pub(crate) const WRONGTYPE: &str =
        "WRONGTYPE Operation against a key holding the wrong kind of value";
    /// A command before `AUTH` on a server with a password.
    pub(crate) const NOAUTH: &str = "NOAUTH Authentication required.";
    /// A wrong password.
    pub(crate) const WRONGPASS: &str =
        "WRONGPASS invalid username-password pair or user is disabled.";
    /// `SELECT`/`MOVE` to a database that does not exist.
    pub(crate) const DB_RANGE: &str = "ERR DB index is out of range";
    /// A result over `proto-max-bulk-len`.
    pub(crate) const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    /// `INCR` past the 64-bit range.
    pub(crate) const OVERFLOW: &str = "ERR increment or decrement would overflow";
    /// Writes refused after a failed background save.
    pub(crate) const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
    /// A missing key where one is required.
    pub(crate) const NO_SUCH_KEY: &str = "ERR no such key";
}

/// Marks a failure whose error reply has already been written to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replied;

/// Per-connection state that commands read and change.
pub(crate) struct ClientState {
    /// What `CLIENT LIST` shows, shared with the server.
    pub info: Rc<RefCell<ClientInfo>>,
    /// Selected database.
    pub db: usize,
    /// Whether the client has authenticated (or no password is needed).
    pub authenticated: bool,
    /// The ACL user it runs as (`default` until `AUTH` says otherwise).
    pub user: String,
    /// The ACL generation at which a user (named here) was found allowed everything: while
    /// the ACL has not changed and the client still runs as that user, its commands need no
    /// check.
    pub acl_open: Option<(u64, String)>,
    /// Set by `QUIT` and protocol errors: close once the replies are written.
    pub close_after_reply: bool,
    /// Whether the client comes from the loopback interface or a Unix socket.
    pub local: bool,
    /// The client's id.
    pub id: u64,
    /// The transaction being queued (after MULTI).
    pub transaction: Option<transactions::Transaction>,
    /// Keys watched with WATCH.
    pub watching: Vec<transactions::WatchedKey>,
    /// Set while EXEC runs queued commands (blocking commands then never block).
    pub in_exec: bool,
    /// The client scripts run their commands as.
    pub in_script: bool,
    /// Set once the connection became a replica (`SYNC`/`PSYNC`): from then on it only
    /// receives the replication stream.
    pub replica: bool,
    /// `CLIENT REPLY ON | OFF | SKIP`.
    pub reply_mode: ReplyMode,
    /// Channels subscribed to, in subscription order.
    pub channels: Vec<Vec<u8>>,
    /// Shard channels subscribed to (SSUBSCRIBE).
    pub shard_channels: Vec<Vec<u8>>,
    /// Patterns subscribed to, in subscription order.
    pub patterns: Vec<Vec<u8>>,
    /// The port a replica said it listens on (`REPLCONF listening-port`).
    pub replica_listening_port: u16,
    /// Set while a blocked client's command runs again after a wake-up: as in Redis, a key
    /// that now holds another type keeps it blocked instead of failing it.
    pub serving_blocked: bool,
    /// The blocking command this client waits on, if any.
    pub blocked: Option<blocking::Blocked>,
    /// The backup `BACKUP NOW` waits for.
    pub awaiting_backup: Option<u64>,
    /// The connection is this replica's link to its master: its writes are applied even on a
    /// read-only replica, and nothing is replied.
    pub is_master: bool,
    /// What a replica said it supports (`REPLCONF capa`).
    pub replica_capabilities: crate::replication::Capabilities,
    /// The replication offset after this client's last command (what WAIT waits for).
    pub write_offset: u64,
    /// Set when a WAIT's timeout passed: it replies its count instead of blocking again.
    pub wait_timed_out: bool,
    /// `SCRIPT DEBUG YES | SYNC`: the next `EVAL` runs under the Lua debugger.
    pub lua_debug: Option<crate::lua_debug::DebugMode>,
    /// A forked Lua debugging session talks to the client now: the connection closes its
    /// descriptor without shutting the socket down, which would cut the child off too.
    pub handed_to_child: bool,
}

/// Whether the replies to a client's commands are sent (`CLIENT REPLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyMode {
    /// Replies are sent.
    On,
    /// No reply is sent.
    Off,
    /// The next command's reply is not sent.
    SkipNext,
    /// This command's reply is not sent; then back to `On`.
    Skip,
}

/// The id of the internal client that replays the AOF (it may run DEBUG, as in Redis).
pub(crate) const LOADING_CLIENT_ID: u64 = u64::MAX;

impl ClientState {
    /// The client that replays an AOF: authenticated, local, never connected.
    pub(crate) fn internal() -> ClientState {
        let info = crate::server::ClientInfo::new(
            LOADING_CLIENT_ID,
            String::new(),
            String::new(),
            -1,
            false,
        );
        ClientState::connected(Rc::new(RefCell::new(info)), LOADING_CLIENT_ID, true, true)
    }

    /// A new connection's state: database 0, nothing queued, watched or blocked.
    pub(crate) fn connected(
        info: Rc<RefCell<ClientInfo>>,
        id: u64,
        local: bool,
        authenticated: bool,
    ) -> ClientState {
        ClientState {
            info,
            db: 0,
            authenticated,
            user: "default".to_string(),
            acl_open: None,
            close_after_reply: false,
            local,
            id,
            transaction: None,
            watching: Vec::new(),
            in_exec: false,
            in_script: false,
            serving_blocked: false,
            replica: false,
            reply_mode: ReplyMode::On,
            channels: Vec::new(),
            shard_channels: Vec::new(),
            patterns: Vec::new(),
            replica_listening_port: 0,
            blocked: None,
            awaiting_backup: None,
            is_master: false,
            replica_capabilities: Default::default(),
            write_offset: 0,
            wait_timed_out: false,
            lua_debug: None,
            handed_to_child: false,
        }
    }
}

/// Everything a command implementation works with.
pub(crate) struct Ctx<'a> {
    /// The server state.
    pub server: &'a mut Server,
    /// The calling client.
    pub client: &'a mut ClientState,
    /// Where the reply goes.
    pub out: &'a mut ReplyWriter,
}

impl Ctx<'_> {
    /// The client's selected database.
    pub(crate) fn db(&mut self) -> &mut Db {
        self.server.keyspace.db(self.client.db)
    }

    /// Writes an error reply and counts it.
    pub(crate) fn error(&mut self, message: &str) {
        self.server.stats.error_replies += 1;
        self.server.command_stats.record_error(message);
        self.out.error(message);
    }

    /// Counts one change to the dataset (for save points and `rdb_changes_since_last_save`).
    pub(crate) fn dirty(&mut self, changes: u64) {
        self.server.dirty += changes;
        self.server.changes += changes;
    }

    /// Records the command in the AOF even though it changed nothing (FLUSHDB on an empty
    /// database, as Redis's `forceCommandPropagation`); `dirty` is not counted.
    pub(crate) fn force_propagation(&mut self) {
        self.server.changes += 1;
    }

    /// Declares that of the command's keys only `keys` (of the client's database) changed:
    /// WATCH and blocked clients are told about these alone, for commands whose key
    /// specification says more (LMPOP pops from one of its keys).
    pub(crate) fn modified_only(&mut self, keys: Vec<Bytes>) {
        let db = self.client.db;
        self.server.command.modified_override = Some(keys.into_iter().map(|k| (db, k)).collect());
    }

    /// Declares that `key` of database `db` changed too, beyond the command's key
    /// specification (MOVE and COPY's target database).
    pub(crate) fn modified_in(&mut self, db: usize, key: &[u8]) {
        let command = &mut self.server.command;
        if command.modified_override.is_none() {
            command.modified_with_spec = true;
        }
        command
            .modified_override
            .get_or_insert_with(Vec::new)
            .push((db, Bytes::copy_from_slice(key)));
    }

    /// Publishes the keyspace event `event` (of `class`, see [`crate::notify`]) about `key` of
    /// the client's database, where Redis's code calls `notifyKeyspaceEvent`.
    pub(crate) fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let db = self.client.db;
        self.notify_in(db, class, event, key);
    }

    /// After a change of `class` that may have emptied the collection under `key`: the
    /// `del` event when it did (the collection was deleted with its last element).
    pub(crate) fn notify_del_if_gone(&mut self, key: &[u8]) {
        if self.server.settings.notify_flags != 0 && self.db().raw(key).is_none() {
            self.notify(crate::notify::GENERIC, "del", key);
        }
    }

    /// [`Ctx::notify`] for a key of database `db` (MOVE, COPY).
    pub(crate) fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        if self.server.settings.notify_flags == 0 {
            return;
        }
        let mut origin = crate::notify::Origin {
            client: self.client.id,
            out: &mut *self.out,
        };
        self.server.notify(&mut origin, class, event, key, db);
    }

    /// Records `commands` in the AOF instead of the command as the client sent it (relative
    /// expiries made absolute, random choices made explicit). An empty list records nothing.
    pub(crate) fn propagate_as(&mut self, commands: Vec<Vec<Bytes>>) {
        self.server.command.propagation_override = Some(commands);
    }

    /// Looks `key` up for reading in the client's database: lazy expiry applied (and
    /// propagated), a keyspace hit or miss counted; `read` sees the value if the key exists.
    pub(crate) fn lookup_read<R>(
        &mut self,
        key: &[u8],
        read: impl FnOnce(&Value) -> R,
    ) -> Option<R> {
        self.lookup_read_replying(key, |value, _| read(value))
    }

    /// [`Ctx::lookup_read`] where `read` may also write the reply straight from the value
    /// (GET: no copy of the value on its way out).
    pub(crate) fn lookup_read_replying<R>(
        &mut self,
        key: &[u8],
        read: impl FnOnce(&Value, &mut ReplyWriter) -> R,
    ) -> Option<R> {
        let now = self.server.now_ms;
        let out = &mut *self.out;
        let found = self
            .server
            .keyspace
            .db(self.client.db)
            .get_for_read(key, now)
            .map(|entry| read(&entry.value, out));
        if found.is_some() {
            self.server.stats.keyspace_hits += 1;
        } else {
            self.server.stats.keyspace_misses += 1;
            self.notify(crate::notify::KEY_MISS, "keymiss", key);
        }
        found
    }

    /// Whether `key` exists, as Redis's no-touch read lookups see it (EXISTS, TYPE, TTL): lazy
    /// expiry applied, a hit or miss counted (with its `keymiss` event), the access time left
    /// alone.
    pub(crate) fn exists_for_read(&mut self, key: &[u8]) -> bool {
        let now = self.server.now_ms;
        let found = self.db().exists(key, now);
        if found {
            self.server.stats.keyspace_hits += 1;
        } else {
            self.server.stats.keyspace_misses += 1;
            self.notify(crate::notify::KEY_MISS, "keymiss", key);
        }
        found
    }

    /// Like [`Ctx::lookup_read`] without counting a hit or miss (a write, or a command that
    /// looks again). A key found expired is deleted here; `run` records the deletion once the
    /// command is done (INV-DIRTY).
    pub(crate) fn lookup_quietly<R>(
        &mut self,
        key: &[u8],
        read: impl FnOnce(&Value) -> R,
    ) -> Option<R> {
        let now = self.server.now_ms;
        self.db()
            .get_for_read(key, now)
            .map(|entry| read(&entry.value))
    }

    /// Reads the string under `key`: `Ok(None)` if missing, `Err(Replied)` (reply sent) if another type.
    pub(crate) fn read_string(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Replied> {
        let found = self.lookup_read(key, |value| match value {
            Value::Str(value) => Ok(value.as_bytes().into_owned()),
            _ => Err(Replied),
        });
        match found {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(Replied)) => {
                self.error(errors::WRONGTYPE);
                Err(Replied)
            }
        }
    }

    /// Parses an integer argument, replying the standard error if it is not one.
    pub(crate) fn int_arg(&mut self, arg: &[u8]) -> Result<i64, Replied> {
        parse_i64(arg).ok_or_else(|| {
            self.error(errors::NOT_INTEGER);
            Replied
        })
    }
}

/// A collection type that can be stored under a key (hash, set, sorted set, list).
pub(crate) trait Collection: Default {
    /// The collection inside `value`, if it holds this type.
    fn of(value: &Value) -> Option<&Self>;
    /// The collection inside `value`, for changing it, if it holds this type.
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    /// Wraps a new collection into a value.
    fn wrap(self) -> Value;
    /// Whether the collection has no element (the key is then deleted).
    fn is_empty(&self) -> bool;
}

/// `collection!(type, variant, wrap, unshare)`: `unshare` gives the collection for changing it
/// (a set shared with a running capture is copied first, INV-SHARED-SET).
macro_rules! collection {
    ($type:ty, $variant:ident, $wrap:expr, $unshare:expr) => {
        impl Collection for $type {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(inner) => Some(inner),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(inner) => Some($unshare(inner)),
                    _ => None,
                }
            }
            fn wrap(self) -> Value {
                Value::$variant($wrap(self))
            }
            fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }
    };
}

use std::convert::identity;
collection!(amber_keyspace::HashValue, Hash, identity, identity);
collection!(
    amber_keyspace::SetValue,
    Set,
    std::sync::Arc::new,
    std::sync::Arc::make_mut
);
collection!(amber_keyspace::ZsetValue, Zset, identity, identity);
collection!(amber_keyspace::ListValue, List, identity, identity);

/// Parses the `numkeys` argument of SINTERCARD, LMPOP, ZMPOP and their blocking forms: a
/// positive integer, else Redis's one message for every failure (`None`, error replied).
pub(crate) fn numkeys_arg(ctx: &mut Ctx, arg: &[u8]) -> Option<usize> {
    match amber_protocol::parse_i64(arg) {
        Some(n) if n > 0 => Some(n as usize),
        _ => {
            ctx.error("ERR numkeys should be greater than 0");
            None
        }
    }
}

/// Parses `count [WITHVALUES|WITHSCORES]` of HRANDFIELD, ZRANDMEMBER and SRANDMEMBER (whose
/// `option` is `None`) as Redis does: the count within ±`i64::MAX`, and within ±`i64::MAX / 2`
/// with the option. Returns the count (none given) and whether the option is set.
pub(crate) fn random_count_args(
    ctx: &mut Ctx,
    args: &[Bytes],
    option: Option<&str>,
) -> Result<(Option<i64>, bool), Replied> {
    let Some(arg) = args.get(2) else {
        return Ok((None, false));
    };
    let count = match amber_protocol::parse_i64(arg) {
        None => {
            ctx.error(errors::NOT_INTEGER);
            return Err(Replied);
        }
        Some(i64::MIN) => {
            ctx.error(&format!(
                "ERR value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            ));
            return Err(Replied);
        }
        Some(count) => count,
    };
    let with = match (args.get(3), option) {
        (None, _) => false,
        (Some(word), Some(option)) if args.len() == 4 && is(word, option) => true,
        _ => {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        }
    };
    if with && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        ctx.error("ERR value is out of range");
        return Err(Replied);
    }
    Ok((Some(count), with))
}

/// A source of random numbers for one call, seeded from the keyspace's generator.
pub(crate) fn seeded(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        // xorshift64*: fast, and private to the call that asked for it.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The elements SRANDMEMBER and HRANDFIELD reply for `count` out of a collection of `len`, in
/// Redis's four cases: a negative count picks `|count|` times with repetitions, a count of at
/// least `len` is the whole collection, a count above a third of it shuffles a copy and keeps
/// `count`, and a smaller count picks distinct elements at random. The first and the last
/// cost O(count): `pick` takes one element at random without looking at the others; only the
/// middle two read the whole collection (`all`).
pub(crate) fn random_picks<T: Clone + Eq + std::hash::Hash>(
    len: usize,
    count: i64,
    seed: u64,
    mut pick: impl FnMut(&mut dyn FnMut() -> u64) -> Option<T>,
    all: impl FnOnce() -> Vec<T>,
) -> Vec<T> {
    let mut random = seeded(seed);
    if len == 0 {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .map_while(|_| pick(&mut random))
            .collect();
    }
    let count = count as usize;
    if count >= len {
        return all();
    }
    if count.saturating_mul(3) > len {
        let mut elements = all();
        for i in (1..elements.len()).rev() {
            let j = (random() % (i as u64 + 1)) as usize;
            elements.swap(i, j);
        }
        elements.truncate(count);
        return elements;
    }
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count {
        let Some(element) = pick(&mut random) else {
            break;
        };
        if seen.insert(element.clone()) {
            picked.push(element);
        }
    }
    picked
}

/// Parses the `[LIMIT limit]` options of SINTERCARD and ZINTERCARD as Redis does: any number
/// of them in order (the last one counts), one message for a negative or unparsable limit;
/// `None` when an error was replied.
pub(crate) fn limit_option(ctx: &mut Ctx, options: &[Bytes]) -> Option<usize> {
    let mut limit = 0;
    let mut rest = options;
    while let Some((word, after)) = rest.split_first() {
        match after.split_first() {
            Some((value, after)) if is(word, "limit") => {
                match amber_protocol::parse_i64(value) {
                    Some(n) if n >= 0 => limit = n as usize,
                    _ => {
                        ctx.error("ERR LIMIT can't be negative");
                        return None;
                    }
                }
                rest = after;
            }
            _ => {
                ctx.error(errors::SYNTAX);
                return None;
            }
        }
    }
    Some(limit)
}

/// What a blocking command finds under a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waitable {
    /// No key, or an empty collection: nothing to take yet.
    Nothing,
    /// A collection of the wanted type with elements.
    Ready,
    /// Another type (an error, unless a blocked client is being served).
    WrongType,
}

/// Looks at `key` for a blocking command waiting on collections of type `C` (lazy expiry
/// applied, no reply written).
pub(crate) fn waitable<C: Collection>(ctx: &mut Ctx, key: &[u8]) -> Waitable {
    match ctx.lookup_quietly(key, |value| C::of(value).map(C::is_empty)) {
        None | Some(Some(true)) => Waitable::Nothing,
        Some(Some(false)) => Waitable::Ready,
        Some(None) => Waitable::WrongType,
    }
}

/// The first key among `keys` with elements of type `C`, checking types in order as Redis's
/// blocking commands do: `Err` (WRONGTYPE replied) for another type met first, except while a
/// woken blocked client is served, where such keys are passed over.
pub(crate) fn first_ready<'k, C: Collection>(
    ctx: &mut Ctx,
    keys: &'k [Bytes],
) -> Result<Option<&'k Bytes>, Replied> {
    for key in keys {
        match waitable::<C>(ctx, key) {
            Waitable::Ready => return Ok(Some(key)),
            Waitable::Nothing => {}
            Waitable::WrongType if ctx.client.serving_blocked => {}
            Waitable::WrongType => {
                ctx.error(errors::WRONGTYPE);
                return Err(Replied);
            }
        }
    }
    Ok(None)
}

/// Runs `read` on the collection under `key`: `Ok(None)` if the key is missing, WRONGTYPE
/// replied (and `Err`) if it holds another type.
pub(crate) fn read_collection<C: Collection, R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&C) -> R,
) -> Result<Option<R>, Replied> {
    match ctx.lookup_read(key, |value| C::of(value).map(read)) {
        None => Ok(None),
        Some(Some(result)) => Ok(Some(result)),
        Some(None) => {
            ctx.error(errors::WRONGTYPE);
            Err(Replied)
        }
    }
}

/// [`read_collection`] as Redis's write lookups do it (no hit or miss counted, no `keymiss`
/// event): for commands that read a key they are about to change.
pub(crate) fn read_collection_for_write<C: Collection, R>(
    ctx: &mut Ctx,
    key: &[u8],
    read: impl FnOnce(&C) -> R,
) -> Result<Option<R>, Replied> {
    match ctx.lookup_quietly(key, |value| C::of(value).map(read)) {
        None => Ok(None),
        Some(Some(result)) => Ok(Some(result)),
        Some(None) => {
            ctx.error(errors::WRONGTYPE);
            Err(Replied)
        }
    }
}

/// Runs `change` on the collection under `key`, creating it first when `create` is set, and
/// deletes the key if the collection ends up empty. `Ok(None)`: missing and not created.
pub(crate) fn write_collection<C: Collection, R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    change: impl FnOnce(&mut C) -> R,
) -> Result<Option<R>, Replied> {
    let now = ctx.server.now_ms;
    match ctx.lookup_quietly(key, |value| C::of(value).is_some()) {
        Some(false) => {
            ctx.error(errors::WRONGTYPE);
            return Err(Replied);
        }
        None if !create => return Ok(None),
        None => ctx
            .db()
            .insert(key, amber_keyspace::Entry::new(C::default().wrap(), now)),
        Some(true) => {}
    }
    let Some(collection) = ctx
        .db()
        .get_mut(key, now)
        .and_then(|e| C::of_mut(&mut e.value))
    else {
        return Ok(None);
    };
    let result = change(collection);
    if collection.is_empty() {
        ctx.db().remove(key);
    }
    Ok(Some(result))
}

/// The arguments of HSCAN, SSCAN and ZSCAN: `cursor [MATCH pattern] [COUNT count]`.
pub(crate) struct ScanArgs {
    /// Where to resume.
    pub cursor: u64,
    /// Only elements matching this glob.
    pub pattern: Option<Bytes>,
    /// Roughly how many elements to return.
    pub count: i64,
}

impl ScanArgs {
    /// Whether `element` matches the MATCH pattern (every element does without one).
    pub(crate) fn matches(&self, element: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|pattern| glob_match(pattern, element, false))
    }

    /// Runs `step` (one step of a collection's cursor, pushing what it keeps) from the cursor
    /// on until the cursor wraps to 0, COUNT elements were kept or 10 × COUNT steps were
    /// taken, as Redis's SCAN family does; returns the next cursor and what was kept.
    pub(crate) fn collect<T>(
        &self,
        mut step: impl FnMut(u64, &mut Vec<T>) -> u64,
    ) -> (u64, Vec<T>) {
        let mut cursor = self.cursor;
        let mut found = Vec::new();
        let mut budget = self.count.saturating_mul(10);
        loop {
            cursor = step(cursor, &mut found);
            budget -= 1;
            if cursor == 0 || budget <= 0 || found.len() as i64 >= self.count {
                return (cursor, found);
            }
        }
    }
}

/// Parses `key cursor [MATCH pattern] [COUNT count]` of HSCAN, SSCAN and ZSCAN in Redis's
/// order: the cursor, then the key (a missing one gets an empty scan, another type
/// WRONGTYPE), then the options. `None` once something was replied.
pub(crate) fn scan_args<C: Collection>(
    ctx: &mut Ctx,
    key: &[u8],
    cursor: &[u8],
    options: &[Bytes],
) -> Option<ScanArgs> {
    let Some(cursor) = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        ctx.error("ERR invalid cursor");
        return None;
    };
    match waitable::<C>(ctx, key) {
        Waitable::Ready => {}
        Waitable::Nothing => {
            ctx.server.stats.keyspace_misses += 1;
            ctx.notify(crate::notify::KEY_MISS, "keymiss", key);
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            ctx.out.array(0);
            return None;
        }
        Waitable::WrongType => {
            ctx.error(errors::WRONGTYPE);
            return None;
        }
    }
    scan_options(ctx, cursor, options).ok()
}

fn scan_options(ctx: &mut Ctx, cursor: u64, options: &[Bytes]) -> Result<ScanArgs, Replied> {
    let mut parsed = ScanArgs {
        cursor,
        pattern: None,
        count: 10,
    };
    for pair in options.chunks(2) {
        let [option, value] = pair else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        };
        if is(option, "match") {
            parsed.pattern = Some(value.clone());
        } else if is(option, "count") {
            let count = ctx.int_arg(value)?;
            if count < 1 {
                ctx.error(errors::SYNTAX);
                return Err(Replied);
            }
            parsed.count = count;
        } else {
            ctx.error(errors::SYNTAX);
            return Err(Replied);
        }
    }
    Ok(parsed)
}

/// The string value stored for `bytes`, in Redis's encoding.
pub(crate) fn string_value(bytes: &[u8]) -> Value {
    Value::Str(StrValue::from_bytes(bytes))
}

/// Executes one request (or queues it inside MULTI) and writes its reply, followed by the
/// tracking invalidations the request caused for its own connection.
pub(crate) fn execute(ctx: &mut Ctx, args: &[Bytes]) {
    if !ctx.server.tracking.active() {
        execute_request(ctx, args);
        return;
    }
    ctx.server.limit_tracking_table();
    let outer = std::mem::replace(&mut ctx.server.command.client, ctx.client.id);
    execute_request(ctx, args);
    ctx.server.command.client = outer;
    let own = ctx.server.tracking.take_own();
    ctx.out.raw(&own);
    // CLIENT CACHING applies to the next command (or transaction) only.
    let is_client_command = lookup(&args[0]).is_some_and(|spec| spec.name == "client");
    if ctx.client.transaction.is_none() && !is_client_command {
        let info = ctx.client.info.clone();
        if let Some(mode) = info.borrow_mut().tracking.as_mut() {
            mode.caching = false;
        }
    }
}

fn execute_request(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.server.stats.commands_processed += 1;
    let Some(spec) = lookup(&args[0]) else {
        unknown_command(ctx, args);
        transactions::flag_failed(ctx);
        return;
    };
    let name = full_name(spec.name, args.get(1));
    ctx.client.info.borrow_mut().last_command = name;
    if let Err(message) = check_call(ctx, spec, args) {
        ctx.server.command_stats.record_rejected(name);
        ctx.error(&message);
        transactions::flag_failed(ctx);
        return;
    }
    if ctx.client.transaction.is_some() && spec.flags.contains(table::NO_MULTI) {
        ctx.server.command_stats.record_rejected(name);
        ctx.error("ERR Command not allowed inside a transaction");
        transactions::flag_failed(ctx);
        return;
    }
    let flags = if spec.name == "exec" {
        transactions::queued_flags(ctx)
    } else {
        scripting_cmds::effective_flags(ctx, spec, args)
    };
    if !ctx.client.is_master
        && ctx.client.id != LOADING_CLIENT_ID
        && let Err(message) = crate::acl::check(ctx, spec, args)
    {
        ctx.server.command_stats.record_rejected(name);
        ctx.error(&message);
        transactions::flag_failed(ctx);
        return;
    }
    if ctx.server.settings.maxmemory_clients > 0 {
        ctx.server.evict_clients();
        if ctx.client.info.borrow().killed {
            // This very client was evicted: it closes without running the command.
            return;
        }
    }
    if ctx.server.settings.maxmemory > 0 && refused_for_memory(ctx, spec, flags) {
        ctx.server.command_stats.record_rejected(name);
        return;
    }
    if paused(ctx, spec, flags) {
        blocking::hold_for_pause(ctx, args);
        return;
    }
    let refused_while_loading = if ctx.server.async_loading {
        flags.contains(table::NO_ASYNC_LOADING)
    } else {
        ctx.server.loading.is_some() && !spec.flags.contains(table::LOADING)
    };
    if refused_while_loading {
        ctx.server.command_stats.record_rejected(name);
        ctx.error("LOADING Redis is loading the dataset in memory");
        return;
    }
    let refusal = replication_refusal(ctx, flags)
        .map(str::to_string)
        .or_else(|| {
            // As Redis, PING is refused too, so health checks see the failing disk.
            ((flags.contains(table::WRITE) || spec.name == "ping") && !ctx.client.is_master)
                .then(|| ctx.server.write_refusal())
                .flatten()
        });
    if let Some(refusal) = refusal {
        ctx.server.command_stats.record_rejected(name);
        if spec.name == "exec" && ctx.client.transaction.is_some() {
            // The queued commands decide EXEC's flags: refused as a whole, with the cause.
            transactions::abort(ctx, &refusal);
            return;
        }
        ctx.error(&refusal);
        transactions::flag_failed(ctx);
        return;
    }
    if pubsub_cmds::refused_in_subscribed_mode(ctx, spec.name) {
        return;
    }
    if ctx.client.transaction.is_some() && transactions::queues(spec.name) {
        transactions::queue(ctx, args);
        return;
    }
    run(ctx, spec, args);
}

/// Counts a call that ran for `elapsed` in INFO commandstats and the latency histograms, and
/// feeds the slow log and the latency monitor with it (EXEC's own time excepted there).
fn record_call(
    ctx: &mut Ctx,
    spec: &CommandSpec,
    args: &[Bytes],
    elapsed: std::time::Duration,
    failed: bool,
) {
    let track = ctx.server.settings.latency_tracking;
    let name = full_name(spec.name, args.get(1));
    ctx.server
        .command_stats
        .record_call(name, elapsed, failed, track);
    if spec.name != "exec" {
        record_slow_command(ctx, spec, args, elapsed);
    }
}

/// Feeds the slow log and the latency monitor with a command that ran for `elapsed`.
fn record_slow_command(
    ctx: &mut Ctx,
    spec: &CommandSpec,
    args: &[Bytes],
    elapsed: std::time::Duration,
) {
    let event = if spec.is_fast() {
        "fast-command"
    } else {
        "command"
    };
    ctx.server.latency_sample(event, elapsed);
    let threshold = ctx.server.settings.slowlog_slower_than;
    let max_len = ctx.server.settings.slowlog_max_len;
    let micros = elapsed.as_micros() as u64;
    if threshold < 0 || micros < threshold as u64 {
        // Not slow: the log only shrinks to a lowered `slowlog-max-len`.
        ctx.server.slowlog.record(-1, max_len, micros, &[], "", b"");
        return;
    }
    let (peer, name) = {
        let info = ctx.client.info.borrow();
        let peer = if info.addr.is_empty() {
            "?:0".to_string()
        } else if info.unix {
            format!("{}:0", info.addr)
        } else {
            info.addr.clone()
        };
        (peer, info.name.clone())
    };
    let shown = redacted(args);
    ctx.server
        .slowlog
        .record(threshold, max_len, micros, &shown, &peer, &name);
}

/// Scripts show in MONITOR before the commands they call (Redis feeds them as they start).
fn feeds_monitors_first(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// Shows a command to the MONITOR clients, secrets redacted, as coming from its client's
/// address, the Unix socket or `lua`.
fn feed_monitors(ctx: &mut Ctx, db: usize, args: &[Bytes]) {
    if ctx.client.id == LOADING_CLIENT_ID {
        return;
    }
    let origin = if ctx.client.in_script {
        "lua".to_string()
    } else {
        let info = ctx.client.info.borrow();
        if info.unix {
            format!("unix:{}", info.addr)
        } else {
            info.addr.clone()
        }
    };
    let shown = redacted(args);
    ctx.server.feed_monitors(ctx.client.id, db, &origin, &shown);
}

/// The arguments MONITOR and SLOWLOG show: passwords and ACL rules replaced by
/// `(redacted)`, as Redis's commands redact them.
pub(crate) fn redacted(args: &[Bytes]) -> std::borrow::Cow<'_, [Bytes]> {
    let mut hidden: Vec<usize> = Vec::new();
    let name = args[0].to_ascii_lowercase();
    match name.as_slice() {
        b"auth" if args.len() <= 3 => hidden.extend(1..args.len()),
        b"hello" => {
            let mut j = 2;
            while j < args.len() {
                let more = args.len() - 1 - j;
                if is(&args[j], "auth") && more >= 2 {
                    hidden.extend([j + 1, j + 2]);
                    j += 2;
                } else if is(&args[j], "setname") && more >= 1 {
                    j += 1;
                }
                j += 1;
            }
        }
        b"acl" if args.len() >= 3 && is(&args[1], "setuser") => hidden.extend(2..args.len()),
        b"migrate" => {
            let mut j = 6;
            while j < args.len() {
                if is(&args[j], "auth") && j + 1 < args.len() {
                    hidden.push(j + 1);
                    j += 1;
                } else if is(&args[j], "auth2") && j + 2 < args.len() {
                    hidden.extend([j + 1, j + 2]);
                    j += 2;
                }
                j += 1;
            }
        }
        b"config" if args.len() >= 4 && is(&args[1], "set") => {
            for pair in (2..args.len() - 1).step_by(2) {
                let sensitive = ["masteruser", "masterauth", "requirepass"];
                if sensitive.iter().any(|name| is(&args[pair], name)) {
                    hidden.push(pair + 1);
                }
            }
        }
        _ => {}
    }
    if hidden.is_empty() {
        return std::borrow::Cow::Borrowed(args);
    }
    let mut shown = args.to_vec();
    for index in hidden {
        shown[index] = Bytes::from_static(b"(redacted)");
    }
    std::borrow::Cow::Owned(shown)
}

/// Evicts what `maxmemory` asks for, then refuses the command (replying `-OOM`) if memory is
/// still over the limit and the command may add data: a `denyoom` command, an EXEC queuing
/// one, or anything queued inside MULTI but DISCARD, QUIT and RESET.
fn refused_for_memory(ctx: &mut Ctx, spec: &CommandSpec, flags: table::Flags) -> bool {
    if ctx.server.scripting.running.is_some() {
        return false;
    }
    let mut origin = crate::notify::Origin {
        client: ctx.client.id,
        out: &mut *ctx.out,
    };
    let out_of_memory = ctx.server.perform_evictions(&mut origin) == Evicted::Failed;
    ctx.server.eviction.oom_at_command_start = out_of_memory;
    let queuing = ctx.client.transaction.is_some()
        && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
    if !out_of_memory || !(flags.contains(table::DENYOOM) || queuing) {
        return false;
    }
    if spec.name == "exec" && ctx.client.transaction.is_some() {
        transactions::abort(ctx, OOM);
    } else {
        ctx.error(OOM);
        transactions::flag_failed(ctx);
    }
    true
}

/// Whether a command runs while the dataset loads (its `loading` flag).
pub(crate) fn allowed_while_loading(args: &[Bytes]) -> bool {
    lookup(&args[0]).is_some_and(|spec| spec.flags.contains(table::LOADING))
}

/// Whether a pause holds this command now (`CLIENT PAUSE`, `FAILOVER`). The replication
/// links and commands inside EXEC are never held; EXEC is held as a write.
fn paused(ctx: &Ctx, spec: &CommandSpec, flags: table::Flags) -> bool {
    if ctx.client.is_master || ctx.client.replica || ctx.client.in_exec {
        return false;
    }
    if ctx.client.transaction.is_some() && transactions::queues(spec.name) {
        return false;
    }
    // As Redis: a pause of writes also holds what may propagate (scripts that may write,
    // PUBLISH), so nothing reaches replicas or the AOF while it lasts.
    let write =
        flags.contains(table::WRITE) || flags.contains(table::MAY_REPLICATE) || spec.name == "exec";
    ctx.server.pauses.holds(write)
}

/// Why replication forbids this command here, if it does: a stale replica with
/// `replica-serve-stale-data no`, a write to a read-only replica, or a write without enough
/// good replicas (`min-replicas-to-write`). The master's own stream is never refused.
fn replication_refusal(ctx: &Ctx, flags: table::Flags) -> Option<&'static str> {
    if ctx.client.is_master {
        return None;
    }
    let server = &*ctx.server;
    if let Some(link) = &server.replication.master {
        let stale = link.state != crate::replication::LinkState::Connected;
        if stale && !flags.contains(table::STALE) && !server.settings.replica_serve_stale_data {
            return Some(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            );
        }
        if flags.contains(table::WRITE) && server.settings.replica_read_only {
            return Some("READONLY You can't write against a read only replica.");
        }
        return None;
    }
    if flags.contains(table::WRITE) {
        return server.replicas_refusal();
    }
    None
}

/// Arity and authentication, checked before a command runs or is queued.
fn check_call(ctx: &Ctx, spec: &CommandSpec, args: &[Bytes]) -> Result<(), String> {
    let arity = spec.arity;
    let count = args.len() as i32;
    if (arity > 0 && count != arity) || (arity < 0 && count < -arity) {
        return Err(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        ));
    }
    if !ctx.client.authenticated && !spec.flags.contains(table::NO_AUTH) {
        return Err(errors::NOAUTH.to_string());
    }
    Ok(())
}

/// Executes a command a script called (checked by the script host), counting it as Redis
/// counts the commands of scripts.
pub(crate) fn execute_for_script(ctx: &mut Ctx, spec: &CommandSpec, args: &[Bytes]) {
    ctx.server.stats.commands_processed += 1;
    run(ctx, spec, args);
}

/// Executes a command from inside EXEC (already checked when it was queued).
pub(crate) fn execute_now(ctx: &mut Ctx, args: &[Bytes]) {
    match lookup(&args[0]) {
        Some(spec) => run(ctx, spec, args),
        None => unknown_command(ctx, args),
    }
}

/// Applies one command read from an AOF: no reply is kept, MULTI blocks queue as usual.
pub(crate) fn execute_loaded(ctx: &mut Ctx, args: &[Bytes]) -> Result<(), String> {
    let Some(spec) = lookup(&args[0]) else {
        return Err(format!(
            "Unknown command '{}'",
            String::from_utf8_lossy(&args[0])
        ));
    };
    check_call(ctx, spec, args)?;
    if ctx.client.transaction.is_some() && transactions::queues(spec.name) {
        transactions::queue(ctx, args);
    } else {
        ctx.server.command.replaying_aof = true;
        run(ctx, spec, args);
        ctx.server.command.replaying_aof = false;
    }
    Ok(())
}

/// Runs the handler, records the change in the AOF, then invalidates WATCHes on the keys a
/// write changed.
fn run(ctx: &mut Ctx, spec: &CommandSpec, args: &[Bytes]) {
    let db_at_start = ctx.client.db;
    let changes_before = ctx.server.changes;
    let db = ctx.client.db;
    let outer_override = ctx.server.command.propagation_override.take();
    let was_blocked = ctx.client.blocked.is_some();
    ctx.server.command.errors_seen = ctx.server.stats.error_replies;
    if !ctx.server.links.monitors.is_empty() && feeds_monitors_first(spec) {
        feed_monitors(ctx, db_at_start, args);
    }
    let started = (!ctx.server.command.replaying_aof).then(crate::clock::Stopwatch::start);
    (spec.handler)(ctx, args);
    // INV-FORKLESS-BOUND: what the command made a running capture save moves on now.
    ctx.server.forward_captured();
    // A command that blocked is counted once, when it is served (as Redis).
    if was_blocked || ctx.client.blocked.is_none() {
        let failed = ctx.server.stats.error_replies > ctx.server.command.errors_seen
            || std::mem::take(&mut ctx.server.command.failed_uncounted);
        ctx.server.command.errors_seen = ctx.server.stats.error_replies;
        if let Some(started) = started {
            record_call(ctx, spec, args, started.elapsed(), failed);
        }
    }
    let rewritten = std::mem::replace(&mut ctx.server.command.propagation_override, outer_override);
    let changed = ctx.server.changes != changes_before;
    // Keys the command's lookups found expired: counted, and recorded as `DEL`s before the
    // command's own record.
    let mut origin = crate::notify::Origin {
        client: ctx.client.id,
        out: &mut *ctx.out,
    };
    ctx.server.collect_expired(&mut origin);
    // A tracking connection remembers the keys its reads named (inside a script, the
    // script's caller does; the read-only script commands name no keys themselves), after
    // the keys the command found expired were invalidated, as Redis orders them.
    if ctx.server.tracking.active()
        && spec.flags.contains(table::READONLY)
        && !matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro")
    {
        let reader = match ctx.server.command.client {
            0 => ctx.client.id,
            caller => caller,
        };
        ctx.server
            .remember_tracked_keys(reader, transactions::command_keys(spec, args));
    }
    if changed && ctx.server.propagating() {
        match rewritten {
            Some(commands) => {
                for command in commands {
                    ctx.server.propagate(db, &command);
                }
            }
            None => ctx.server.propagate(db, args),
        }
    }
    ctx.client.write_offset = ctx.server.replication.offset;
    // As Redis, MONITOR sees a command once it ran (EXEC after the commands it ran).
    if !ctx.server.links.monitors.is_empty() && !spec.is_admin() && !feeds_monitors_first(spec) {
        feed_monitors(ctx, db_at_start, args);
    }
    // INV-DIRTY: the keys a change touched, from the key specification unless the command
    // said otherwise, invalidate WATCHes and wake blocked clients. No handler does this itself.
    let modified = ctx.server.command.modified_override.take();
    let with_spec = std::mem::take(&mut ctx.server.command.modified_with_spec);
    let linked = !ctx.server.links.watchers.is_empty()
        || !ctx.server.links.blocking.is_empty()
        || ctx.server.tracking.active();
    // A writable replica expires the keys its own clients wrote with a TTL (Redis's
    // slaveKeysWithExpire); its master's keys wait for the master's DEL.
    let own_replica_write = !ctx.client.is_master && ctx.server.replication.is_replica();
    if changed && (linked || own_replica_write) {
        let from_spec = modified.is_none() || with_spec;
        let mut keys: Vec<(usize, Bytes)> = modified.unwrap_or_default();
        if from_spec {
            keys.extend(transactions::command_keys(spec, args).map(|key| (db, key.clone())));
        }
        for (db, key) in &keys {
            ctx.server.touch_key(*db, key);
            ctx.server.signal_ready(*db, key);
        }
        if own_replica_write {
            ctx.server.track_replica_key_expiry(&keys);
        }
    }
}

/// How Redis names a command in logs: `ping`, or `xinfo|help` for a subcommand.
pub(crate) fn command_label(args: &[Bytes]) -> String {
    match lookup(&args[0]) {
        Some(spec) => full_name(spec.name, args.get(1)).to_string(),
        None => String::from_utf8_lossy(&args[0]).to_ascii_lowercase(),
    }
}

/// Whether the command reads, writes or may propagate (what a replica connection may not
/// send: Redis answers it `Replica can't interact with the keyspace`).
pub(crate) fn touches_keyspace(args: &[Bytes]) -> bool {
    lookup(&args[0]).is_some_and(|spec| {
        let flags = spec
            .flags
            .only(table::READONLY | table::WRITE | table::MAY_REPLICATE);
        flags != table::Flags::default()
    })
}

/// Container commands report their subcommand (`client|list`) in `CLIENT LIST`, as Redis does.
const SUBCOMMAND_NAMES: &[&str] = &[
    "client|id",
    "client|getname",
    "client|setname",
    "client|list",
    "client|info",
    "client|kill",
    "client|unblock",
    "client|reply",
    "client|help",
    "client|pause",
    "client|unpause",
    "client|no-evict",
    "client|tracking",
    "client|caching",
    "client|getredir",
    "client|trackinginfo",
    "slowlog|get",
    "slowlog|len",
    "slowlog|reset",
    "slowlog|help",
    "latency|latest",
    "latency|history",
    "latency|reset",
    "latency|graph",
    "latency|doctor",
    "latency|histogram",
    "latency|help",
    "config|get",
    "config|set",
    "config|resetstat",
    "config|rewrite",
    "config|help",
    "object|encoding",
    "object|refcount",
    "object|idletime",
    "object|freq",
    "object|help",
    "memory|usage",
    "memory|stats",
    "memory|doctor",
    "memory|malloc-stats",
    "memory|purge",
    "memory|help",
    "command|count",
    "command|info",
    "command|docs",
    "command|list",
    "command|getkeys",
    "xgroup|create",
    "xgroup|setid",
    "xgroup|destroy",
    "xgroup|createconsumer",
    "xgroup|delconsumer",
    "xgroup|help",
    "xinfo|stream",
    "xinfo|groups",
    "xinfo|consumers",
    "xinfo|help",
];

/// The name a call of `spec` is counted under in `INFO commandstats` (`config|get`).
pub(crate) fn stats_name(spec: &CommandSpec, args: &[Bytes]) -> &'static str {
    full_name(spec.name, args.get(1))
}

/// The names `INFO commandstats` may count calls of `command` under: its own, and those of
/// its subcommands.
pub(crate) fn stats_names_of(command: &[u8]) -> Vec<&'static str> {
    let own = all_commands()
        .map(|spec| spec.name)
        .filter(|name| command.eq_ignore_ascii_case(name.as_bytes()));
    let subcommands = SUBCOMMAND_NAMES.iter().copied().filter(|full| {
        full.split_once('|')
            .is_some_and(|(parent, _)| command.eq_ignore_ascii_case(parent.as_bytes()))
    });
    own.chain(subcommands).collect()
}

fn full_name(name: &'static str, sub: Option<&Bytes>) -> &'static str {
    // Most commands have no subcommands: answer them without scanning the list.
    let container = matches!(
        name,
        "client"
            | "config"
            | "object"
            | "command"
            | "memory"
            | "xgroup"
            | "xinfo"
            | "slowlog"
            | "latency"
    );
    let Some(sub) = sub.filter(|_| container) else {
        return name;
    };
    SUBCOMMAND_NAMES
        .iter()
        .find(|full| {
            full.split_once('|')
                .is_some_and(|(command, subcommand)| command == name && is(sub, subcommand))
        })
        .copied()
        .unwrap_or(name)
}

fn unknown_command(ctx: &mut Ctx, args: &[Bytes]) {
    let mut shown = String::new();
    for arg in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let text = String::from_utf8_lossy(arg);
        let cut: String = text.chars().take(room).collect();
        shown.push_str(&format!("'{cut}' "));
    }
    let name: String = String::from_utf8_lossy(&args[0])
        .chars()
        .take(128)
        .collect();
    ctx.error(&format!(
        "ERR unknown command '{name}', with args beginning with: {shown}"
    ));
}

/// Replies the error for an unknown subcommand of `command`, as Redis words it.
pub(crate) fn unknown_subcommand(ctx: &mut Ctx, command: &str, sub: &[u8]) {
    let sub = String::from_utf8_lossy(sub);
    ctx.error(&format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        command.to_ascii_uppercase()
    ));
}

/// Replies the arity error for a subcommand (`config|get`).
pub(crate) fn subcommand_arity(ctx: &mut Ctx, command: &str, sub: &[u8]) {
    let sub = String::from_utf8_lossy(sub).to_ascii_lowercase();
    ctx.error(&format!(
        "ERR wrong number of arguments for '{command}|{sub}' command"
    ));
}

/// Whether two arguments are equal ignoring ASCII case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}
