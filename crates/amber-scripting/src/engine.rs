//! The Lua engine: one interpreter with Redis's sandbox, the script cache of `EVAL`, and the
//! machinery that runs a script against a [`Host`].

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;

use amber_protocol::{Frame, ReplyWriter};
use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use crate::convert::{self, ErrorReply};
use crate::flags::{ScriptFlags, parse_shebang};
use crate::functions::Libraries;
use crate::libs;

/// Lua instructions between two calls of [`Host::interrupt`] (Redis's count hook).
pub(crate) const HOOK_INSTRUCTIONS: u32 = 100_000;

/// Redis's version as scripts see it (`redis.REDIS_VERSION`).
const REDIS_VERSION: &str = "7.0.15";
/// `redis.REDIS_VERSION_NUM`: 0x00MMmmpp.
const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// The server side of a running script: runs the commands it calls and decides when a long
/// script stops.
pub trait Host {
    /// Runs `args` as a command of the script. `resp3` is the protocol the script chose.
    /// `Err` is a refusal before the command ran (its text, `-CODE` optional); a command that
    /// ran and failed returns its error reply as a frame.
    fn call(&mut self, args: Vec<Bytes>, resp3: bool) -> Result<Frame, String>;
    /// `redis.set_repl`: where the script's writes are propagated.
    fn set_replication(&mut self, aof: bool, replicas: bool);
    /// Called every 100,000 Lua instructions: `true` kills the script (`SCRIPT KILL`).
    fn interrupt(&mut self) -> bool;
    /// `redis.acl_check_cmd`: whether the script's user may run `args`; `Err` for an unknown
    /// command.
    fn permitted(&mut self, args: Vec<Bytes>) -> Result<bool, String>;
}

/// `redis.log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `redis.LOG_DEBUG`
    Debug,
    /// `redis.LOG_VERBOSE`
    Verbose,
    /// `redis.LOG_NOTICE`
    Notice,
    /// `redis.LOG_WARNING`
    Warning,
}

/// Where `redis.log` lines go.
pub type Logger = Box<dyn Fn(LogLevel, &str)>;

/// Why a script or function call failed: the error reply for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScriptError {
    /// The reply's text, starting with its code (`ERR`, `NOSCRIPT`, ...).
    pub message: String,
    /// Set when the error is a command's error the script passed on: the command already
    /// counted it in the error statistics.
    pub counted: bool,
}

impl ScriptError {
    pub(crate) fn new(message: impl Into<String>) -> ScriptError {
        ScriptError {
            message: message.into(),
            counted: false,
        }
    }
}

impl From<ErrorReply> for ScriptError {
    fn from(error: ErrorReply) -> ScriptError {
        ScriptError {
            message: error.message,
            counted: error.counted,
        }
    }
}

/// A cache key: a SHA1 in lowercase hex, kept inline (a look-up allocates nothing).
type ShaKey = [u8; 40];

/// The cache key for `sha` given in either case, if it is 40 bytes long.
fn sha_key(sha: &[u8]) -> Option<ShaKey> {
    let mut key: ShaKey = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// Hashes the cache's keys with their first eight bytes (FxHash's mixing). SipHash, the
/// default, cost a visible share of a small script's run; the keys are digests, so an
/// attacker cannot choose them to collide.
#[derive(Default)]
pub(crate) struct ShaHasher(u64);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 40]` hashes as one write of its bytes (arrays add no length).
        let mut word = [0u8; 8];
        let head = bytes.len().min(8);
        word[..head].copy_from_slice(&bytes[..head]);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A script of the `EVAL` cache.
pub(crate) struct Script {
    pub(crate) body: Bytes,
    pub(crate) flags: ScriptFlags,
    pub(crate) function: Function,
}

/// One call of a script or function.
pub(crate) struct Invocation<'a> {
    /// The compiled script, or the registered function.
    pub(crate) function: &'a Function,
    /// `EVAL` (keys and arguments as globals) rather than `FCALL` (as parameters).
    pub(crate) eval_mode: bool,
    /// What error messages call it (`f_<sha>`, or the function's name).
    pub(crate) name: &'a str,
    /// `KEYS`.
    pub(crate) keys: &'a [Bytes],
    /// `ARGV`.
    pub(crate) args: &'a [Bytes],
}

/// What the interrupt hook does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookMode {
    /// Nothing runs.
    Idle,
    /// A script runs: ask the host.
    Script,
    /// Library code of `FUNCTION LOAD` runs since this instant: stop it after 500 ms.
    Load(std::time::Instant),
}

/// One Lua interpreter with Redis's environment, its script cache and its Functions.
pub struct Engine {
    pub(crate) lua: Lua,
    pub(crate) bridge: Table,
    pub(crate) env: Table,
    /// The message handler every run is called under ([`error_handler`]).
    handler: Function,
    /// The real globals table (where `KEYS` and `ARGV` go).
    globals: Table,
    pub(crate) load_library: Function,
    scripts: HashMap<ShaKey, Script, BuildHasherDefault<ShaHasher>>,
    scripts_bytes: usize,
    pub(crate) libraries: Libraries,
    pub(crate) hook_mode: Rc<Cell<HookMode>>,
    /// Set when a kill or a load timeout replaced the interrupt hook with a per-line one.
    pub(crate) hook_replaced: Rc<Cell<bool>>,
}

impl Engine {
    /// Starts an interpreter; `logger` receives `redis.log` lines.
    pub fn new(logger: Logger) -> mlua::Result<Engine> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let globals = lua.globals();
        for name in [
            "print", "dofile", "loadfile", "module", "require", "package",
        ] {
            globals.raw_set(name, Value::Nil)?;
        }
        globals.raw_set("bit", libs::bit::open(&lua)?)?;
        globals.raw_set("cjson", libs::cjson::open(&lua)?)?;
        globals.raw_set("cmsgpack", libs::cmsgpack::open(&lua)?)?;
        globals.raw_set("struct", libs::structlib::open(&lua)?)?;
        libs::random::install(&lua, &globals)?;
        globals.raw_set("redis", redis_table(&lua, logger)?)?;
        let bridge = lua.create_table()?;
        install_bridge(&lua, &bridge)?;
        let handler = lua.create_function(error_handler)?;
        let libraries = lua.create_sequence_from([
            "string",
            "table",
            "math",
            "bit",
            "cjson",
            "cmsgpack",
            "struct",
            "redis",
            "coroutine",
        ])?;
        let prelude = lua
            .load(include_str!("prelude.lua"))
            .set_name("=[amber]")
            .into_function()?;
        let redis: Table = globals.raw_get("redis")?;
        let (env, load_library, call_bridge): (Table, Function, Function) =
            prelude.call((globals.clone(), bridge.clone(), handler.clone(), libraries))?;
        lua.set_named_registry_value("amber.call", call_bridge)?;
        // SAFETY: `raising_call` only uses the Lua C API on the state it is given, and has no
        // Rust value alive when `lua_error` unwinds out of it.
        let call = unsafe { lua.create_c_function(raising_call) }?;
        redis.raw_set("call", call)?;
        // SAFETY: as `raising_call`, without raising.
        let pcall = unsafe { lua.create_c_function(protected_call) }?;
        redis.raw_set("pcall", pcall)?;
        let hook_mode = Rc::new(Cell::new(HookMode::Idle));
        let hook_replaced = Rc::new(Cell::new(false));
        let engine = Engine {
            lua,
            bridge,
            env,
            handler,
            globals,
            load_library,
            scripts: HashMap::default(),
            scripts_bytes: 0,
            libraries: Libraries::default(),
            hook_mode,
            hook_replaced,
        };
        engine.install_hook();
        Ok(engine)
    }

    /// Installs the interrupt hook: every 100,000 instructions it asks the host whether the
    /// running script must stop, or stops library code that loads for more than 500 ms.
    pub(crate) fn install_hook(&self) {
        let mode = self.hook_mode.clone();
        let replaced = self.hook_replaced.clone();
        self.lua
            .set_hook(
                HookTriggers::new().every_nth_instruction(HOOK_INSTRUCTIONS),
                move |lua, _| interrupt_hook(lua, &mode, &replaced),
            )
            .ok();
    }

    /// Compiles `body` into the script cache (as `SCRIPT LOAD` and `EVAL` do) and returns its
    /// SHA1. A script already cached is not compiled again.
    pub fn load_script(&mut self, body: &[u8]) -> Result<String, ScriptError> {
        let key = sha1_key(body);
        let sha = String::from_utf8_lossy(&key).into_owned();
        if self.scripts.contains_key(&key) {
            return Ok(sha);
        }
        let shebang = parse_shebang(body).map_err(|e| ScriptError::new(format!("ERR {e}")))?;
        // The shebang is skipped but its line feed kept, so line numbers stay right.
        let code = &body[shebang.len..];
        let function = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                ScriptError::new(format!(
                    "ERR Error compiling script (new function): {}",
                    lua_error_text(&e)
                ))
            })?;
        self.scripts_bytes += body.len() + 40;
        self.scripts.insert(
            key,
            Script {
                body: Bytes::copy_from_slice(body),
                flags: shebang.flags,
                function,
            },
        );
        Ok(sha)
    }

    /// The cached script `sha` (hex, in either case).
    fn script(&self, sha: &[u8]) -> Option<&Script> {
        self.scripts.get(&sha_key(sha)?)
    }

    /// The flags of a cached script.
    pub fn script_flags(&self, sha: &[u8]) -> Option<ScriptFlags> {
        self.script(sha).map(|s| s.flags)
    }

    /// The body of a cached script.
    pub fn script_body(&self, sha: &[u8]) -> Option<Bytes> {
        self.script(sha).map(|s| s.body.clone())
    }

    /// Whether a script is cached (`SCRIPT EXISTS`).
    pub fn script_exists(&self, sha: &[u8]) -> bool {
        self.script(sha).is_some()
    }

    /// How many scripts are cached, and the bytes their bodies take.
    pub fn scripts_usage(&self) -> (usize, usize) {
        (self.scripts.len(), self.scripts_bytes)
    }

    /// Empties the script cache (`SCRIPT FLUSH`).
    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.scripts_bytes = 0;
        self.lua.gc_collect().ok();
    }

    /// Bytes the interpreter uses (`used_memory_lua`).
    pub fn memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Runs the cached script `sha` with `keys` and `args`, writing its result to `out`.
    pub fn eval(
        &mut self,
        host: &mut dyn Host,
        sha: &[u8],
        keys: &[Bytes],
        args: &[Bytes],
        out: &mut ReplyWriter,
    ) -> Result<(), ScriptError> {
        let Some((key, script)) =
            sha_key(sha).and_then(|key| self.scripts.get(&key).map(|script| (key, script)))
        else {
            return Err(ScriptError::new(
                "NOSCRIPT No matching script. Please use EVAL.",
            ));
        };
        let run = Invocation {
            function: &script.function,
            eval_mode: true,
            name: std::str::from_utf8(&key).unwrap_or_default(),
            keys,
            args,
        };
        self.call(host, run, out)
    }

    /// Runs `function` (a script, or a registered Function when `eval_mode` is off) and
    /// writes its result to `out`; `name` is what error messages call it.
    pub(crate) fn call(
        &self,
        host: &mut dyn Host,
        run: Invocation<'_>,
        out: &mut ReplyWriter,
    ) -> Result<(), ScriptError> {
        let Invocation {
            function,
            eval_mode,
            name,
            keys,
            args,
        } = run;
        self.hook_mode.set(HookMode::Script);
        let debugging = crate::debugger::active();
        if debugging {
            self.install_debugger_hook();
        }
        let (result, resp3, killed) =
            crate::current::enter(host, || self.protected_run(function, eval_mode, keys, args));
        self.hook_mode.set(HookMode::Idle);
        if killed || self.hook_replaced.get() || debugging {
            // The kill (or a load timeout) replaced the hook with a per-line one.
            self.install_hook();
            self.hook_replaced.set(false);
        }
        if let Some(panic) = crate::current::take_panic() {
            std::panic::resume_unwind(panic);
        }
        self.collect_garbage_now_and_then();
        let (ok, value) =
            result.map_err(|e| ScriptError::new(format!("ERR {}", lua_error_text(&e))))?;
        if !ok {
            return Err(self.failure(name, &value));
        }
        if let Value::Table(table) = &value
            && let Ok(Some(error)) = convert::error_reply(table)
        {
            return Err(error.into());
        }
        convert::write_reply(&value, out, resp3)
            .map_err(|e| ScriptError::new(format!("ERR {}", lua_error_text(&e))))
    }

    /// Calls `function` under the error handler, as Redis's `luaCallFunction` does: `KEYS`
    /// and `ARGV` as globals in eval mode, as the two parameters of a Function otherwise.
    /// Returns whether it succeeded, and its result or the handler's error table.
    ///
    /// It runs in one protected call through the C API: building the two arrays a string at
    /// a time with mlua's safe API, or calling through a Lua wrapper, cost more than a small
    /// script.
    fn protected_run(
        &self,
        function: &Function,
        eval_mode: bool,
        keys: &[Bytes],
        args: &[Bytes],
    ) -> mlua::Result<(bool, Value)> {
        use mlua::ffi;
        let inputs = (&self.handler, function, &self.globals);
        // SAFETY: the closure starts with the handler, the function and the globals at slots
        // 1-3 and uses at most five more slots (a C function has LUA_MINSTACK free). It runs
        // protected: an allocation failure while it builds the arrays becomes a Lua error
        // rather than a jump past Rust code, and it holds no value that needs dropping. What
        // the script raises is caught by the inner `lua_pcall`. It leaves `ok, result`.
        unsafe {
            self.lua.exec_raw(inputs, |state| {
                for items in [keys, args] {
                    ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
                    for (i, item) in items.iter().enumerate() {
                        ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
                        ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
                    }
                }
                let status = if eval_mode {
                    ffi::lua_pushvalue(state, 4);
                    ffi::lua_setfield(state, 3, c"KEYS".as_ptr());
                    ffi::lua_pushvalue(state, 5);
                    ffi::lua_setfield(state, 3, c"ARGV".as_ptr());
                    ffi::lua_settop(state, 2);
                    ffi::lua_pcall(state, 0, 1, 1)
                } else {
                    ffi::lua_remove(state, 3);
                    ffi::lua_pcall(state, 2, 1, 1)
                };
                ffi::lua_pushboolean(state, i32::from(status == 0));
                ffi::lua_replace(state, 1);
            })
        }
    }

    /// The error reply for a script that raised `error` (an error table from the handler).
    fn failure(&self, name: &str, error: &Value) -> ScriptError {
        let Value::Table(table) = error else {
            return ScriptError::new(format!(
                "ERR Error running script {name}, execution failure"
            ));
        };
        let message: String = match table.raw_get::<Value>("err") {
            Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "ERR unknown error".to_string(),
        };
        let counted = matches!(
            table.raw_get::<Value>("ignore_error_stats_update"),
            Ok(Value::Boolean(true))
        );
        let source: Option<String> = table.raw_get("source").ok();
        let line: Option<i64> = table.raw_get("line").ok();
        let message = match (source, line) {
            (Some(source), Some(line)) => {
                format!("{message} script: {name}, on {source}:{line}.")
            }
            _ => message,
        };
        ScriptError {
            message: message.replace(['\r', '\n'], " "),
            counted,
        }
    }

    /// Lua collects garbage in small steps every 50 calls, as Redis does, so a long full
    /// collection never lands on one request.
    fn collect_garbage_now_and_then(&self) {
        thread_local! {
            static CALLS: Cell<u32> = const { Cell::new(0) };
        }
        CALLS.with(|calls| {
            let n = calls.get() + 1;
            if n >= 50 {
                calls.set(0);
                self.lua.gc_step_kbytes(50).ok();
            } else {
                calls.set(n);
            }
        });
    }
}

/// The registry key of the Lua function behind `redis.call`.
const CALL_BRIDGE: &std::ffi::CStr = c"amber.call";

/// Reads the C function's arguments as a command (strings as they are, numbers as `%.17g`),
/// leaves them for the bridge in [`crate::current`], and calls the bridge, which leaves
/// `ok, reply` on top.
///
/// # Safety
/// `state` must be the running Lua state, inside a C function called by Lua.
unsafe fn call_bridge(state: *mut mlua::ffi::lua_State) {
    use mlua::ffi;
    // SAFETY: reading the arguments raises no Lua error (`lua_tolstring` is only used on
    // strings, so nothing is converted in place); the arguments are moved out of this frame
    // before `lua_call`, so no Rust value is alive if the bridge raises. The bridge function
    // is set at engine start, and a C function has LUA_MINSTACK free slots.
    unsafe {
        if crate::current::panicked() {
            // A command panicked: the script may not run another (even under pcall).
            raise_for_panic(state);
        }
        let argc = ffi::lua_gettop(state);
        let args = read_command_args(state, argc);
        match args {
            Ok(args) if !crate::debugger::stepping() => {
                // The common case runs the command here and pushes a plain reply itself: the
                // bridge through mlua (a Lua call, a protected Rust callback, mlua values) cost
                // more than the command.
                // A panic must not unwind through Lua's C frames: it is caught here, the
                // script stops with an error, and the run resumes the panic once out of Lua.
                let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::current::with_run(|run| {
                        let resp3 = run.resp3;
                        run.host().call(args, resp3)
                    })
                }));
                match reply {
                    Ok(Some(Ok(frame))) => {
                        if push_plain_reply(state, frame) {
                            return;
                        }
                    }
                    Ok(Some(Err(message))) => crate::current::stash_reply(Err(message)),
                    Ok(None) => {}
                    Err(panic) => {
                        crate::current::stash_panic(panic);
                        raise_for_panic(state);
                    }
                }
            }
            args => crate::current::stash_args(args),
        }
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, CALL_BRIDGE.as_ptr());
        ffi::lua_call(state, 0, 2);
    }
}

/// Stops the script with an error after a command panicked (the panic waits in
/// [`crate::current`] for the run to resume it).
///
/// # Safety
/// `state` must be the running Lua state, inside a C function; nothing that needs dropping
/// may be alive in the caller's frame.
unsafe fn raise_for_panic(state: *mut mlua::ffi::lua_State) -> ! {
    // SAFETY: as the caller promises; `lua_error` jumps to the innermost protected call.
    unsafe {
        mlua::ffi::lua_pushstring(state, c"a command called from the script panicked".as_ptr());
        mlua::ffi::lua_error(state)
    }
}

/// Pushes `true` and a reply that converts to a plain Lua value (a number, a string, false,
/// nil or a boolean); any other reply is left for the bridge (see
/// [`crate::current::stash_reply`]) and false returned.
///
/// # Safety
/// `state` must be the running Lua state, inside a C function with two free stack slots.
unsafe fn push_plain_reply(state: *mut mlua::ffi::lua_State, frame: Frame) -> bool {
    use mlua::ffi;
    // SAFETY: the pushes that do not allocate cannot raise. A string's bytes are parked in a
    // thread-local slot before `lua_pushlstring` (which may raise, and so jump past this
    // frame): no value that needs dropping is alive here while it runs.
    unsafe {
        match frame {
            Frame::Integer(n) => {
                ffi::lua_pushboolean(state, 1);
                ffi::lua_pushnumber(state, n as f64);
            }
            Frame::NullBulk | Frame::NullArray => {
                ffi::lua_pushboolean(state, 1);
                ffi::lua_pushboolean(state, 0);
            }
            Frame::Null => {
                ffi::lua_pushboolean(state, 1);
                ffi::lua_pushnil(state);
            }
            Frame::Boolean(b) => {
                ffi::lua_pushboolean(state, 1);
                ffi::lua_pushboolean(state, i32::from(b));
            }
            Frame::Bulk(bytes) => {
                let (data, len) = crate::current::park_bytes(bytes);
                ffi::lua_pushboolean(state, 1);
                ffi::lua_pushlstring(state, data.cast(), len);
                crate::current::release_bytes();
            }
            other => {
                crate::current::stash_reply(Ok(other));
                return false;
            }
        }
    }
    true
}

/// The arguments of `redis.call` at stack slots `1..=argc`, or Redis's message for a call
/// without one or with one that is neither a string nor a number.
///
/// # Safety
/// `state` must be the running Lua state with `argc` values on its stack.
unsafe fn read_command_args(
    state: *mut mlua::ffi::lua_State,
    argc: std::os::raw::c_int,
) -> Result<Vec<Bytes>, &'static str> {
    use mlua::ffi;
    if argc == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut args = Vec::with_capacity(argc as usize);
    for index in 1..=argc {
        // SAFETY: `index` is a valid stack slot; strings are read without conversion.
        let arg = unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => {
                    let mut len = 0usize;
                    let data = ffi::lua_tolstring(state, index, &mut len);
                    Bytes::copy_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len))
                }
                ffi::LUA_TNUMBER => Bytes::from(amber_protocol::format_g(
                    ffi::lua_tonumber(state, index),
                    17,
                )),
                _ => return Err("Lua redis lib command arguments must be strings or integers"),
            }
        };
        args.push(arg);
    }
    Ok(args)
}

/// `redis.call`: the command's reply, or its error table raised. It is a C function so that
/// Lua's tail calls keep the caller's frame (the place Redis's error messages name), and so
/// that the raised value is the table itself, as Redis raises it.
unsafe extern "C-unwind" fn raising_call(state: *mut mlua::ffi::lua_State) -> std::os::raw::c_int {
    use mlua::ffi;
    // SAFETY: called by Lua as a C function; no Rust value is alive when `lua_error` unwinds.
    unsafe {
        call_bridge(state);
        if ffi::lua_toboolean(state, -2) != 0 {
            return 1;
        }
        ffi::lua_error(state)
    }
}

/// `redis.pcall`: the command's reply, or its error table returned.
unsafe extern "C-unwind" fn protected_call(
    state: *mut mlua::ffi::lua_State,
) -> std::os::raw::c_int {
    // SAFETY: called by Lua as a C function.
    unsafe {
        call_bridge(state);
    }
    1
}

/// The hex SHA1 of `data`, as `SCRIPT LOAD` and `redis.sha1hex` give it.
pub fn sha1_hex(data: &[u8]) -> String {
    String::from_utf8_lossy(&sha1_key(data)).into_owned()
}

/// The hex SHA1 of `data` as a cache key.
fn sha1_key(data: &[u8]) -> ShaKey {
    use sha1::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1::Sha1::digest(data);
    let mut key = [0u8; 40];
    for (pair, byte) in key.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    key
}

fn interrupt_hook(
    lua: &Lua,
    mode: &Cell<HookMode>,
    replaced: &Cell<bool>,
) -> mlua::Result<VmState> {
    match mode.get() {
        HookMode::Idle => Ok(VmState::Continue),
        HookMode::Load(started) => {
            if started.elapsed() > std::time::Duration::from_millis(500) {
                replaced.set(true);
                lua.set_hook(HookTriggers::EVERY_LINE, |_, _| {
                    Err(mlua::Error::runtime("FUNCTION LOAD timeout"))
                })?;
                return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
            }
            Ok(VmState::Continue)
        }
        HookMode::Script => {
            let kill = crate::current::with_run(|run| {
                if !run.killed && run.host().interrupt() {
                    run.killed = true;
                }
                run.killed
            });
            if kill != Some(true) {
                return Ok(VmState::Continue);
            }
            // From now on every line raises, so pcall cannot keep the script alive.
            replaced.set(true);
            lua.set_hook(HookTriggers::EVERY_LINE, |_, _| {
                if crate::current::running() {
                    Err(mlua::Error::runtime(
                        "Script killed by user with SCRIPT KILL...",
                    ))
                } else {
                    Ok(VmState::Continue)
                }
            })?;
            Err(mlua::Error::runtime(
                "Script killed by user with SCRIPT KILL...",
            ))
        }
    }
}

/// `redis.call` / `redis.pcall`'s bridge: `(true, reply)` or `(false, error table)`.
fn command_call(lua: &Lua) -> mlua::Result<(bool, Value)> {
    let stepping = crate::debugger::stepping();
    if let Some(reply) = crate::current::take_reply() {
        return reply_to_lua(lua, reply);
    }
    let args = match crate::current::take_args() {
        Some(Ok(args)) => args,
        Some(Err(message)) => {
            if stepping {
                crate::debugger::log(format!("<error> {message}").into_bytes());
            }
            return Ok((false, Value::Table(convert::error_table(lua, message)?)));
        }
        None => {
            return Err(redis_error(
                "redis.call/pcall can only be called inside a script invocation",
            ));
        }
    };
    if stepping {
        crate::debugger::log_command(&args);
    }
    let Some(reply) = crate::current::with_run(|run| {
        let resp3 = run.resp3;
        run.host().call(args, resp3)
    }) else {
        return Err(redis_error(
            "redis.call/pcall can only be called inside a script invocation",
        ));
    };
    if stepping {
        match &reply {
            Ok(Frame::Error(text)) => {
                crate::debugger::log([b"<error> ".as_slice(), text].concat());
            }
            Ok(_) => {}
            Err(message) => crate::debugger::log(format!("<error> {message}").into_bytes()),
        }
        if let Ok(frame) = &reply {
            crate::debugger::log_reply(frame);
        }
    }
    reply_to_lua(lua, reply)
}

/// `ok, value` for a command's reply (or its refusal): an error reply or a refusal is an
/// error table, and not ok.
fn reply_to_lua(lua: &Lua, reply: Result<Frame, String>) -> mlua::Result<(bool, Value)> {
    match reply {
        Ok(Frame::Error(text)) => {
            let table = convert::frame_to_lua(lua, Frame::Error(text))?;
            Ok((false, table))
        }
        Ok(frame) => Ok((true, convert::frame_to_lua(lua, frame)?)),
        Err(message) => {
            let table = convert::error_table(lua, &message)?;
            table.raw_set("ignore_error_stats_update", true)?;
            Ok((false, Value::Table(table)))
        }
    }
}

fn set_resp(values: &MultiValue) -> mlua::Result<()> {
    if !crate::current::running() {
        return Err(redis_error(
            "redis.setresp can only be called inside a script invocation",
        ));
    }
    if values.len() != 1 {
        return Err(redis_error("redis.setresp() requires one argument."));
    }
    let resp3 = match number(&values[0]) {
        Some(2.0) => false,
        Some(3.0) => true,
        _ => return Err(redis_error("RESP version must be 2 or 3.")),
    };
    crate::current::with_run(|run| run.resp3 = resp3);
    Ok(())
}

fn set_repl(values: &MultiValue) -> mlua::Result<()> {
    if !crate::current::running() {
        return Err(redis_error(
            "redis.set_repl can only be called inside a script invocation",
        ));
    }
    if values.len() != 1 {
        return Err(redis_error("redis.set_repl() requires two arguments."));
    }
    let flags = number(&values[0]).unwrap_or(0.0) as i64;
    if flags & !3 != 0 {
        return Err(redis_error(
            "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
        ));
    }
    crate::current::with_run(|run| {
        run.host().set_replication(flags & 1 != 0, flags & 2 != 0);
    });
    Ok(())
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => s.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// An error a Rust function of the API raises; the error handler turns it into the
/// `ERR <message>` table Redis raises.
pub(crate) fn redis_error(message: &str) -> mlua::Error {
    mlua::Error::runtime(message)
}

/// The bridge from the Lua side of the API to Rust, created once: each function finds the
/// running script through [`crate::current`], and refuses with Redis's message outside one.
fn install_bridge(lua: &Lua, bridge: &Table) -> mlua::Result<()> {
    bridge.raw_set("call", lua.create_function(|lua, ()| command_call(lua))?)?;
    bridge.raw_set(
        "setresp",
        lua.create_function(|_, values: MultiValue| set_resp(&values))?,
    )?;
    bridge.raw_set(
        "set_repl",
        lua.create_function(|_, values: MultiValue| set_repl(&values))?,
    )?;
    bridge.raw_set(
        "register_function",
        lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
            Err(redis_error(
                "redis.register_function can only be called on FUNCTION LOAD command",
            ))
        })?,
    )?;
    bridge.raw_set(
        "error_text",
        lua.create_function(|_, value: Value| Ok(error_value_text(&value)))?,
    )?;
    Ok(())
}

/// The `redis` table with everything that does not depend on a running script.
fn redis_table(lua: &Lua, logger: Logger) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, values: MultiValue| {
            if values.len() != 1 {
                return Err(redis_error("wrong number of arguments"));
            }
            let data = match &values[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => amber_protocol::format_g(*n, 14).into_bytes(),
                _ => Vec::new(),
            };
            Ok(sha1_hex(&data))
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, values: MultiValue| single_field(lua, &values, "err"))?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, values: MultiValue| single_field(lua, &values, "ok"))?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(move |_, values: MultiValue| {
            if values.len() < 2 {
                return Err(redis_error("redis.log() requires two arguments or more."));
            }
            let Some(level) = number(&values[0]) else {
                return Err(redis_error("First argument must be a number (log level)."));
            };
            let level = match level as i64 {
                0 => LogLevel::Debug,
                1 => LogLevel::Verbose,
                2 => LogLevel::Notice,
                3 => LogLevel::Warning,
                _ => return Err(redis_error("Invalid debug level.")),
            };
            let parts: Vec<String> = values
                .iter()
                .skip(1)
                .filter_map(|v| match v {
                    Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
                    Value::Integer(n) => Some(n.to_string()),
                    Value::Number(n) => Some(amber_protocol::format_g(*n, 14)),
                    _ => None,
                })
                .collect();
            logger(level, &parts.join(" "));
            Ok(())
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, value)?;
    }
    redis.raw_set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(crate::debugger::request_breakpoint()))?,
    )?;
    redis.raw_set(
        "debug",
        lua.create_function(|lua, values: MultiValue| {
            crate::debugger::debug_values(lua, values);
            Ok(())
        })?,
    )?;
    redis.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, values: MultiValue| {
            if values.is_empty() {
                return Err(redis_error(
                    "Please specify at least one argument for this redis lib call",
                ));
            }
            let mut args = Vec::with_capacity(values.len());
            for value in &values {
                match value {
                    Value::String(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
                    Value::Integer(n) => args.push(Bytes::from(n.to_string())),
                    Value::Number(n) => args.push(Bytes::from(amber_protocol::format_g(*n, 17))),
                    _ => {
                        return Err(redis_error(
                            "Lua redis lib command arguments must be strings or integers",
                        ));
                    }
                }
            }
            match crate::current::with_run(|run| run.host().permitted(args)) {
                None => Err(redis_error(
                    "redis.acl_check_cmd can only be called inside a script invocation",
                )),
                Some(Ok(allowed)) => Ok(allowed),
                Some(Err(message)) => Err(redis_error(&message)),
            }
        })?,
    )?;
    Ok(redis)
}

/// `redis.error_reply` / `redis.status_reply`: `{field = text}`; an error reply without a
/// leading `-` gets the `ERR` code... as Redis's `luaPushErrorBuff` does.
fn single_field(lua: &Lua, values: &MultiValue, field: &str) -> mlua::Result<Value> {
    let values: Vec<&Value> = values.iter().collect();
    let [Value::String(text)] = values.as_slice() else {
        return Ok(Value::Table(convert::error_table(
            lua,
            "wrong number or type of arguments",
        )?));
    };
    if field == "err" {
        let text = String::from_utf8_lossy(&text.as_bytes()).into_owned();
        let text = if text.starts_with('-') {
            text
        } else {
            format!("-{text}")
        };
        return Ok(Value::Table(convert::error_table(lua, &text)?));
    }
    let table = lua.create_table()?;
    table.raw_set(field, text.clone())?;
    Ok(Value::Table(table))
}

/// The message handler of every script run: turns what was raised into Redis's error table
/// (`{err = ..., source = ..., line = ...}`), with the place in the user's code.
fn error_handler(lua: &Lua, error: Value) -> mlua::Result<Table> {
    let table = match &error {
        Value::Table(table) => table.clone(),
        other => {
            let table = lua.create_table()?;
            table.raw_set("err", format!("ERR {}", error_value_text(other)))?;
            table
        }
    };
    for level in 1..64 {
        let Some((what, source, line)) = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            (
                source.what,
                source.source.map(|s| s.into_owned()),
                debug.current_line(),
            )
        }) else {
            break;
        };
        if what == "C" || source.as_deref() == Some("=[amber]") {
            continue;
        }
        if let (Some(source), Some(line)) = (source, line) {
            table.raw_set("source", source)?;
            table.raw_set("line", line as i64)?;
        }
        break;
    }
    Ok(table)
}

/// The text of a raised value that is not an error table.
fn error_value_text(value: &Value) -> String {
    match value {
        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        Value::Error(error) => lua_error_text(error),
        Value::Nil => "nil".to_string(),
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => amber_protocol::format_g(*n, 14),
        other => format!("{:?}", other.type_name()),
    }
}

/// The message of a Lua error, without mlua's wrapping and tracebacks.
pub(crate) fn lua_error_text(error: &mlua::Error) -> String {
    match error {
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        mlua::Error::RuntimeError(message) | mlua::Error::MemoryError(message) => {
            message.lines().next().unwrap_or_default().to_string()
        }
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::WithContext { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}
