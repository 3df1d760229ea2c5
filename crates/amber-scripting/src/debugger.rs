//! Redis's Lua debugger (LDB), as `SCRIPT DEBUG YES|SYNC` and `redis-cli --ldb` use it.
//!
//! A debugging session lasts one `EVAL`. The script runs under a line hook; whenever it stops
//! (stepping, a breakpoint, `redis.breakpoint()`, or a script running past the busy threshold)
//! the hook sends the client its log lines as an array of simple strings and reads debugger
//! commands (`step`, `continue`, `list`, `print`, `break`, `eval`, `redis`, `maxlen`, `trace`,
//! `abort`, `help`) straight from the client's connection, with Redis's own small RESP parser
//! and its limits. The connection itself is the caller's [`Console`]: this crate does no I/O.
//!
//! The session's state sits in a thread-local slot while it lasts, so the line hook,
//! `redis.call`'s logging and `redis.debug` reach it. It is only borrowed for short steps,
//! never while Lua code runs.

use std::cell::RefCell;
use std::ffi::CStr;
use std::time::{Duration, Instant};

use amber_protocol::Frame;
use mlua::{DebugEvent, Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};

use crate::engine::{Engine, lua_error_text};

/// The client's connection, as the debugger talks over it: blocking reads and writes.
pub trait Console {
    /// Reads what the client sent next into `buf`; `Ok(0)` or an error ends the dialogue
    /// (the script then runs on without stopping).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes `bytes` to the client; a failure shows up as the next read's failure.
    fn write(&mut self, bytes: &[u8]);
}

/// What a debugging session needs from the server.
pub struct DebugSession {
    console: Box<dyn Console>,
    busy_threshold: Duration,
}

impl DebugSession {
    /// A session over `console`; a script that runs without stopping for `busy_threshold`
    /// (5 s when zero) is stopped as a likely infinite loop, as Redis does.
    pub fn new(console: Box<dyn Console>, busy_threshold: Duration) -> DebugSession {
        DebugSession {
            console,
            busy_threshold,
        }
    }
}

/// At most this many breakpoints.
const MAX_BREAKPOINTS: usize = 64;
/// Replies and values longer than this are cut in the log, until `maxlen` says otherwise.
const DEFAULT_MAXLEN: usize = 256;
/// A client that sends this much without a complete command ends the script.
const MAX_INPUT: usize = 1 << 20;
/// Nested tables are shown this deep (Redis's `LUA_MINSTACK/2`).
const MAX_VALUE_DEPTH: usize = 10;

/// The state of the running session.
struct Ldb {
    console: Box<dyn Console>,
    busy_threshold: Duration,
    /// Log lines not sent yet.
    logs: Vec<Vec<u8>>,
    /// The script's source, line by line.
    source: Vec<Vec<u8>>,
    breakpoints: Vec<i64>,
    /// Stop at the next line.
    step: bool,
    /// `redis.breakpoint()` was called: stop at the next line.
    lua_breakpoint: bool,
    current_line: i64,
    /// What the client sent that is not a complete command yet.
    input: Vec<u8>,
    maxlen: usize,
    maxlen_hint_sent: bool,
    /// When the script last resumed (for the infinite-loop stop).
    resumed: Instant,
}

thread_local! {
    static LDB: RefCell<Option<Ldb>> = const { RefCell::new(None) };
}

/// Runs `f` on the session, if one is active and not borrowed further up the stack.
fn with_ldb<R>(f: impl FnOnce(&mut Ldb) -> R) -> Option<R> {
    LDB.with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        slot.as_mut().map(f)
    })
}

/// Whether a debugging session is running on this thread.
pub(crate) fn active() -> bool {
    LDB.with(|slot| slot.try_borrow().map_or(true, |ldb| ldb.is_some()))
}

/// Whether commands and their replies are logged now (a session that is stepping).
pub(crate) fn stepping() -> bool {
    with_ldb(|ldb| ldb.step).unwrap_or(false)
}

/// Adds a line to the session's log.
pub(crate) fn log(entry: Vec<u8>) {
    with_ldb(|ldb| ldb.logs.push(entry));
}

/// Logs `<redis> command args...` for a command the script calls while stepping.
pub(crate) fn log_command(args: &[bytes::Bytes]) {
    let mut line = b"<redis>".to_vec();
    for (j, arg) in args.iter().enumerate() {
        if j == 10 {
            line.extend_from_slice(format!(" ... ({} more)", args.len() - j - 1).as_bytes());
            break;
        }
        line.push(b' ');
        line.extend_from_slice(arg);
    }
    log(line);
}

/// Logs a command's reply in the debugger's human form.
pub(crate) fn log_reply(reply: &Frame) {
    let mut line = b"<reply> ".to_vec();
    human_reply(&mut line, reply);
    with_ldb(|ldb| ldb.log_with_maxlen(line));
}

/// `redis.breakpoint()`: stop at the next line; false outside a session.
pub(crate) fn request_breakpoint() -> bool {
    with_ldb(|ldb| ldb.lua_breakpoint = true).is_some()
}

/// `redis.debug(...)`: logs its arguments.
pub(crate) fn debug_values(lua: &Lua, values: MultiValue) {
    let Some(line) = with_ldb(|ldb| ldb.current_line) else {
        return;
    };
    let mut entry = format!("<debug> line {line}: ").into_bytes();
    let count = values.len();
    for (i, value) in values.into_iter().enumerate() {
        entry.extend_from_slice(&describe(lua, value));
        if i + 1 != count {
            entry.extend_from_slice(b", ");
        }
    }
    log(entry);
}

impl Ldb {
    fn log(&mut self, entry: impl Into<Vec<u8>>) {
        self.logs.push(entry.into());
    }

    /// Logs `entry`, cut at `maxlen` bytes; the first cut adds a hint about `maxlen 0`.
    fn log_with_maxlen(&mut self, mut entry: Vec<u8>) {
        let trimmed = self.maxlen != 0 && entry.len() > self.maxlen;
        if trimmed {
            entry.truncate(self.maxlen);
            entry.extend_from_slice(b" ...");
        }
        self.logs.push(entry);
        if trimmed && !self.maxlen_hint_sent {
            self.maxlen_hint_sent = true;
            self.log("<hint> The above reply was trimmed. Use 'maxlen 0' to disable trimming.");
        }
    }

    /// Sends the log as an array of simple strings (line breaks become spaces) and empties it.
    fn send_logs(&mut self) {
        let mut proto = format!("*{}\r\n", self.logs.len()).into_bytes();
        for mut entry in self.logs.drain(..) {
            for byte in entry.iter_mut() {
                if *byte == b'\r' || *byte == b'\n' {
                    *byte = b' ';
                }
            }
            proto.push(b'+');
            proto.extend_from_slice(&entry);
            proto.extend_from_slice(b"\r\n");
        }
        self.console.write(&proto);
    }

    fn source_line(&self, line: i64) -> &[u8] {
        usize::try_from(line - 1)
            .ok()
            .and_then(|index| self.source.get(index))
            .map_or(b"<out of range source code line>", Vec::as_slice)
    }

    fn is_breakpoint(&self, line: i64) -> bool {
        self.breakpoints.contains(&line)
    }

    /// Logs a source line with its markers: `->` the current line, `#` a breakpoint.
    fn log_source_line(&mut self, line: i64) {
        let prefix = match (line == self.current_line, self.is_breakpoint(line)) {
            (true, true) => "->#",
            (true, false) => "-> ",
            (false, true) => "  #",
            (false, false) => "   ",
        };
        let mut entry = format!("{prefix}{line:<3} ").into_bytes();
        entry.extend_from_slice(self.source_line(line));
        self.log(entry);
    }

    /// `list`: the lines within `context` of `around`, or all of them when `around` is 0.
    fn list(&mut self, around: i64, context: i64) {
        for line in 1..=self.source.len() as i64 {
            if around == 0 || (around - line).abs() <= context {
                self.log_source_line(line);
            }
        }
    }

    /// `break`, `break <line>`, `break -<line>`, `break 0`.
    fn breakpoint_command(&mut self, args: &[Vec<u8>]) {
        if args.len() == 1 {
            if self.breakpoints.is_empty() {
                self.log("No breakpoints set. Use 'b <line>' to add one.");
            } else {
                self.log(format!("{} breakpoints set:", self.breakpoints.len()));
                for line in self.breakpoints.clone() {
                    self.log_source_line(line);
                }
            }
            return;
        }
        for arg in &args[1..] {
            let Some(line) = std::str::from_utf8(arg)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
            else {
                let mut entry = b"Invalid argument:'".to_vec();
                entry.extend_from_slice(arg);
                entry.push(b'\'');
                self.log(entry);
                continue;
            };
            if line == 0 {
                self.breakpoints.clear();
                self.log("All breakpoints removed.");
            } else if line > 0 {
                if self.breakpoints.len() == MAX_BREAKPOINTS {
                    self.log("Too many breakpoints set.");
                } else if line <= self.source.len() as i64 && !self.is_breakpoint(line) {
                    self.breakpoints.push(line);
                    self.list(line, 1);
                } else {
                    self.log("Wrong line number.");
                }
            } else if let Some(at) = self.breakpoints.iter().position(|&bp| bp == -line) {
                self.breakpoints.remove(at);
                self.log("Breakpoint removed.");
            } else {
                self.log("No breakpoint in the specified line.");
            }
        }
    }

    /// `maxlen [len]`: shows or sets the cut length (0 is unlimited, at least 60 otherwise).
    fn maxlen_command(&mut self, args: &[Vec<u8>]) {
        if args.len() == 2 {
            let value = amber_protocol::atoi(&args[1]);
            self.maxlen_hint_sent = true;
            self.maxlen = if value == 0 {
                0
            } else {
                usize::try_from(value).map_or(60, |v| v.max(60))
            };
        }
        if self.maxlen != 0 {
            let text = format!("<value> replies are truncated at {} bytes.", self.maxlen);
            self.log(text);
        } else {
            self.log("<value> replies are unlimited.");
        }
    }

    /// Takes the next complete command out of the input.
    fn next_command(&mut self) -> Parsed {
        let parsed = parse_command(&self.input);
        if matches!(parsed, Parsed::Command(_)) {
            self.input.clear();
        }
        parsed
    }
}

const HELP: &[&str] = &[
    "Redis Lua debugger help:",
    "[h]elp               Show this help.",
    "[s]tep               Run current line and stop again.",
    "[n]ext               Alias for step.",
    "[c]ontinue           Run till next breakpoint.",
    "[l]ist               List source code around current line.",
    "[l]ist [line]        List source code around [line].",
    "                     line = 0 means: current position.",
    "[l]ist [line] [ctx]  In this form [ctx] specifies how many lines",
    "                     to show before/after [line].",
    "[w]hole              List all source code. Alias for 'list 1 1000000'.",
    "[p]rint              Show all the local variables.",
    "[p]rint <var>        Show the value of the specified variable.",
    "                     Can also show global vars KEYS and ARGV.",
    "[b]reak              Show all breakpoints.",
    "[b]reak <line>       Add a breakpoint to the specified line.",
    "[b]reak -<line>      Remove breakpoint from the specified line.",
    "[b]reak 0            Remove all breakpoints.",
    "[t]race              Show a backtrace.",
    "[e]val <code>        Execute some Lua code (in a different callframe).",
    "[r]edis <cmd>        Execute a Redis command.",
    "[m]axlen [len]       Trim logged Redis replies and Lua var dumps to len.",
    "                     Specifying zero as <len> means unlimited.",
    "[a]bort              Stop the execution of the script. In sync",
    "                     mode dataset changes will be retained.",
    "",
    "Debugger functions you can call from Lua scripts:",
    "redis.debug()        Produce logs in the debugger console.",
    "redis.breakpoint()   Stop execution like if there was a breakpoint in the",
    "                     next line of code.",
];

impl Engine {
    /// Starts a debugging session for the next script this engine runs, whose source is
    /// `body` (the session lists it line by line).
    pub fn start_debugging(&mut self, session: DebugSession, body: &[u8]) {
        let mut body = body;
        while let [rest @ .., b'\r' | b'\n'] = body {
            body = rest;
        }
        let source = body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let ldb = Ldb {
            console: session.console,
            busy_threshold: session.busy_threshold,
            logs: Vec::new(),
            source,
            breakpoints: Vec::new(),
            step: true,
            lua_breakpoint: false,
            current_line: -1,
            input: Vec::new(),
            maxlen: DEFAULT_MAXLEN,
            maxlen_hint_sent: false,
            resumed: Instant::now(),
        };
        LDB.with(|slot| *slot.borrow_mut() = Some(ldb));
    }

    /// Ends the session: sends what is left of the log and the `<endsession>` mark.
    pub fn stop_debugging(&mut self) {
        with_ldb(|ldb| {
            ldb.log("<endsession>");
            ldb.send_logs();
        });
        LDB.with(|slot| slot.borrow_mut().take());
    }

    /// Whether a debugging session is open.
    pub fn debugging(&self) -> bool {
        active()
    }

    /// Puts the debugger's line hook in place of the interrupt hook for one run.
    pub(crate) fn install_debugger_hook(&self) {
        let env = self.env.clone();
        with_ldb(|ldb| ldb.resumed = Instant::now());
        self.lua
            .set_hook(
                HookTriggers::EVERY_LINE.every_nth_instruction(crate::engine::HOOK_INSTRUCTIONS),
                move |lua, debug| line_hook(lua, debug, &env),
            )
            .ok();
    }
}

/// Why the hook stopped the script, if it does.
enum Stop {
    Step,
    Breakpoint,
    LuaBreakpoint,
    Timeout,
}

/// Called before each line of the script (and every 100,000 instructions): stops where the
/// session says, and talks with the client until it resumes.
fn line_hook(lua: &Lua, debug: &mlua::Debug, env: &Table) -> mlua::Result<VmState> {
    let line = debug.current_line().map_or(-1, |line| line as i64);
    let in_script = debug
        .source()
        .short_src
        .is_some_and(|src| src.contains("user_script"));
    let count_event = debug.event() == DebugEvent::Count;
    let stop = with_ldb(|ldb| {
        if !in_script {
            return None;
        }
        ldb.current_line = line;
        let breakpoint = ldb.is_breakpoint(line) || ldb.lua_breakpoint;
        let stop = if breakpoint {
            if ldb.lua_breakpoint {
                Stop::LuaBreakpoint
            } else {
                Stop::Breakpoint
            }
        } else if count_event && !ldb.step {
            let limit = if ldb.busy_threshold.is_zero() {
                Duration::from_secs(5)
            } else {
                ldb.busy_threshold
            };
            if ldb.resumed.elapsed() < limit {
                return None;
            }
            Stop::Timeout
        } else if ldb.step {
            Stop::Step
        } else {
            return None;
        };
        let reason = match stop {
            Stop::Step => "step over",
            Stop::Breakpoint => "break point",
            Stop::LuaBreakpoint => "redis.breakpoint() called",
            Stop::Timeout => "timeout reached, infinite loop?",
        };
        ldb.step = false;
        ldb.lua_breakpoint = false;
        ldb.log(format!("* Stopped at {line}, stop reason = {reason}"));
        ldb.log_source_line(line);
        ldb.send_logs();
        Some(matches!(stop, Stop::Timeout))
    })
    .flatten();
    let Some(timeout) = stop else {
        return Ok(VmState::Continue);
    };
    if repl(lua, env)? == ReplEnd::Disconnected && timeout {
        // Nobody is left to stop an infinite loop: end it.
        return Err(mlua::Error::runtime(
            "timeout during Lua debugging with client closing connection",
        ));
    }
    with_ldb(|ldb| ldb.resumed = Instant::now());
    Ok(VmState::Continue)
}

#[derive(Debug, PartialEq, Eq)]
enum ReplEnd {
    /// `step` or `continue`.
    Resume,
    /// The client went away: the script runs to its end without stopping.
    Disconnected,
}

/// Reads and runs debugger commands until one resumes the script.
fn repl(lua: &Lua, env: &Table) -> mlua::Result<ReplEnd> {
    loop {
        let Some(args) = read_command()? else {
            with_ldb(|ldb| {
                ldb.step = false;
                ldb.breakpoints.clear();
            });
            return Ok(ReplEnd::Disconnected);
        };
        let name = args[0].to_ascii_lowercase();
        match name.as_slice() {
            b"s" | b"step" | b"n" | b"next" => {
                with_ldb(|ldb| ldb.step = true);
                return Ok(ReplEnd::Resume);
            }
            b"c" | b"continue" => return Ok(ReplEnd::Resume),
            b"a" | b"abort" => {
                return Err(mlua::Error::runtime("script aborted for user request"));
            }
            _ => run_command(lua, env, &name, &args),
        }
        with_ldb(Ldb::send_logs);
    }
}

/// Runs a debugger command that does not resume the script; its output goes to the log.
fn run_command(lua: &Lua, env: &Table, name: &[u8], args: &[Vec<u8>]) {
    match name {
        b"h" | b"help" => {
            with_ldb(|ldb| HELP.iter().for_each(|line| ldb.log(*line)));
        }
        b"t" | b"trace" => trace(lua),
        b"m" | b"maxlen" => {
            with_ldb(|ldb| ldb.maxlen_command(args));
        }
        b"b" | b"break" => {
            with_ldb(|ldb| ldb.breakpoint_command(args));
        }
        b"e" | b"eval" => eval(lua, env, &args[1..]),
        b"r" | b"redis" if args.len() > 1 => redis_command(lua, &args[1..]),
        b"p" | b"print" if args.len() == 2 => print_variable(lua, &args[1]),
        b"p" | b"print" => print_locals(lua),
        b"l" | b"list" => {
            let mut around = with_ldb(|ldb| ldb.current_line).unwrap_or(0);
            if let Some(line) = args
                .get(1)
                .map(|arg| amber_protocol::atoi(arg))
                .filter(|&n| n > 0)
            {
                around = line;
            }
            let context = args.get(2).map_or(5, |arg| amber_protocol::atoi(arg));
            with_ldb(|ldb| ldb.list(around, context));
        }
        b"w" | b"whole" => {
            with_ldb(|ldb| ldb.list(1, 1_000_000));
        }
        _ => log(
            b"<error> Unknown Redis Lua debugger command or wrong number of arguments.".to_vec(),
        ),
    }
}

/// The next command from the client, `None` once it is gone.
fn read_command() -> mlua::Result<Option<Vec<Vec<u8>>>> {
    loop {
        let step = with_ldb(|ldb| {
            match ldb.next_command() {
                Parsed::Command(args) => return Ok(Some(args)),
                Parsed::ProtocolError => return Err(mlua::Error::runtime("protocol error")),
                Parsed::Incomplete => {}
            }
            let mut buf = [0u8; 1024];
            match ldb.console.read(&mut buf) {
                Ok(0) | Err(_) => Ok(None),
                Ok(n) => {
                    ldb.input.extend_from_slice(&buf[..n]);
                    if ldb.input.len() > MAX_INPUT {
                        ldb.input = Vec::new();
                        return Err(mlua::Error::runtime("max client buffer reached"));
                    }
                    Ok(Some(Vec::new()))
                }
            }
        });
        match step {
            None | Some(Ok(None)) => return Ok(None),
            Some(Err(error)) => return Err(error),
            Some(Ok(Some(args))) if args.is_empty() => continue,
            Some(Ok(Some(args))) => return Ok(Some(args)),
        }
    }
}

/// What the client's input holds.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Command(Vec<Vec<u8>>),
    Incomplete,
    ProtocolError,
}

/// Redis's forgiving parser of the debugger's input: `*<count>` then `$<len>` arguments, at
/// most 1024 of them of at most 1024 bytes each.
fn parse_command(input: &[u8]) -> Parsed {
    if input.is_empty() {
        return Parsed::Incomplete;
    }
    let Some(star) = input.iter().position(|&b| b == b'*') else {
        return Parsed::ProtocolError;
    };
    let Some((count, mut at)) = header(input, star + 1) else {
        return Parsed::Incomplete;
    };
    if !(1..=1024).contains(&count) {
        return Parsed::ProtocolError;
    }
    let mut args = Vec::with_capacity(count as usize);
    while args.len() < count as usize {
        match input.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::ProtocolError,
        }
        let Some((len, start)) = header(input, at + 1) else {
            return Parsed::Incomplete;
        };
        if !(1..=1024).contains(&len) {
            return Parsed::ProtocolError;
        }
        let end = start + len as usize;
        if end + 2 > input.len() {
            return Parsed::Incomplete;
        }
        args.push(input[start..end].to_vec());
        if &input[end..end + 2] != b"\r\n" {
            return Parsed::ProtocolError;
        }
        at = end + 2;
    }
    Parsed::Command(args)
}

/// The number (as C's `atoi` reads it) from `from` to the next CRLF, and where the line after
/// it starts; `None` when no CRLF follows yet.
fn header(input: &[u8], from: usize) -> Option<(i64, usize)> {
    let rest = input.get(from..)?;
    let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
    Some((amber_protocol::atoi(&rest[..end]), from + end + 2))
}

/// `eval <code>`: runs the code as an expression (or else as a statement) in the script's
/// environment, and logs what it returns.
fn eval(lua: &Lua, env: &Table, words: &[Vec<u8>]) {
    let code = words.join(&b' ');
    let mut expression = b"return ".to_vec();
    expression.extend_from_slice(&code);
    let compile = |text: &[u8]| {
        lua.load(text)
            .set_name("@ldb_eval")
            .set_environment(env.clone())
            .into_function()
    };
    let function = match compile(&expression).or_else(|_| compile(&code)) {
        Ok(function) => function,
        Err(error) => return log(format!("<error> {}", lua_error_text(&error)).into_bytes()),
    };
    match function.call::<Value>(()) {
        Ok(value) => log_value(lua, "<retval> ", value),
        Err(error) => log(format!("<error> {}", lua_error_text(&error)).into_bytes()),
    }
}

/// `redis <command>`: runs it through `redis.call` with logging on, so the command and its
/// reply show in the log.
fn redis_command(lua: &Lua, words: &[Vec<u8>]) {
    let call = lua
        .globals()
        .get::<Table>("redis")
        .and_then(|redis| redis.get::<Function>("call"));
    let Ok(call) = call else {
        return;
    };
    let mut args = MultiValue::new();
    for word in words {
        match lua.create_string(word) {
            Ok(text) => args.push_back(Value::String(text)),
            Err(_) => return,
        }
    }
    with_ldb(|ldb| ldb.step = true);
    // Errors were logged by redis.call itself.
    let _ = call.call::<Value>(args);
    with_ldb(|ldb| ldb.step = false);
}

/// `trace`: the script's frames, innermost first.
fn trace(lua: &Lua) {
    let mut level = 0;
    let mut frames = Vec::new();
    while let Some(frame) = lua.inspect_stack(level, |debug| {
        let source = debug.source();
        let in_script = source
            .short_src
            .as_deref()
            .is_some_and(|src| src.contains("user_script"));
        let name = debug.names().name.map(|name| name.into_owned());
        let line = debug.current_line().map_or(-1, |line| line as i64);
        (in_script, name, line)
    }) {
        if let (true, name, line) = frame {
            frames.push((level, name, line));
        }
        level += 1;
    }
    with_ldb(|ldb| {
        for (level, name, line) in frames {
            let place = if level == 0 { "In" } else { "From" };
            let name = name.unwrap_or_else(|| "top level".to_string());
            ldb.log(format!("{place} {name}:"));
            ldb.log_source_line(line);
        }
        if level == 0 {
            ldb.log("<error> Can't retrieve Lua stack.");
        }
    });
}

/// Logs `prefix` and the debugger's form of `value`, cut at `maxlen`.
fn log_value(lua: &Lua, prefix: &str, value: Value) {
    let mut entry = prefix.as_bytes().to_vec();
    entry.extend_from_slice(&describe(lua, value));
    with_ldb(|ldb| ldb.log_with_maxlen(entry));
}

/// The debugger's form of a Lua value (strings quoted, tables as `{...}`).
fn describe(lua: &Lua, value: Value) -> Vec<u8> {
    let mut text = Vec::new();
    // SAFETY: the closure only reads the value exec_raw pushed, with stack room checked.
    let _ = unsafe {
        lua.exec_raw::<()>(value, |state| {
            text = describe_slot(state, -1, 0);
        })
    };
    text
}

/// `print`: every local of the frame the script stopped in.
fn print_locals(lua: &Lua) {
    let mut found = Vec::new();
    // SAFETY: lua_getstack on the running state; visit_locals's contract holds (each value is
    // described while it is on top of the stack).
    let _ = unsafe {
        lua.exec_raw::<()>((), |state| {
            let mut record: mlua::ffi::lua_Debug = std::mem::zeroed();
            // Level 0 is exec_raw's own C frame; the script's is the next.
            if mlua::ffi::lua_getstack(state, 1, &mut record) == 0 {
                return;
            }
            visit_locals(state, &mut record, |name| {
                if !name.windows(12).any(|w| w == b"(*temporary)") {
                    found.push((name.to_vec(), describe_slot(state, -1, 0)));
                }
                false
            });
        })
    };
    with_ldb(|ldb| {
        if found.is_empty() {
            ldb.log("No local variables in the current context.");
        }
        for (name, value) in found {
            let mut entry = b"<value> ".to_vec();
            entry.extend_from_slice(&name);
            entry.extend_from_slice(b" = ");
            entry.extend_from_slice(&value);
            ldb.log_with_maxlen(entry);
        }
    });
}

/// `print <var>`: the innermost local of that name, or the `KEYS`/`ARGV` globals.
fn print_variable(lua: &Lua, wanted: &[u8]) {
    let mut found = None;
    // SAFETY: as in print_locals.
    let _ = unsafe {
        lua.exec_raw::<()>((), |state| {
            let mut record: mlua::ffi::lua_Debug = std::mem::zeroed();
            let mut level = 1;
            while mlua::ffi::lua_getstack(state, level, &mut record) != 0 {
                level += 1;
                let hit = visit_locals(state, &mut record, |name| {
                    let hit = name == wanted;
                    if hit {
                        found = Some(describe_slot(state, -1, 0));
                    }
                    hit
                });
                if hit {
                    return;
                }
            }
        })
    };
    if found.is_none() && (wanted == b"KEYS" || wanted == b"ARGV") {
        let name = String::from_utf8_lossy(wanted);
        if let Ok(value) = lua.globals().raw_get::<Value>(name.as_ref()) {
            found = Some(describe(lua, value));
        }
    }
    match found {
        Some(value) => {
            let mut entry = b"<value> ".to_vec();
            entry.extend_from_slice(&value);
            with_ldb(|ldb| ldb.log_with_maxlen(entry));
        }
        None => log(b"No such variable.".to_vec()),
    }
}

/// Calls `visit` with the name of each local of the frame `record` describes, its value on
/// top of the stack meanwhile, until `visit` answers true; returns whether it did.
///
/// # Safety
/// `record` must come from `lua_getstack` on `state`, inside a protected call; `visit` must
/// leave the stack as it found it.
unsafe fn visit_locals(
    state: *mut mlua::ffi::lua_State,
    record: &mut mlua::ffi::lua_Debug,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> bool {
    let mut index = 1;
    loop {
        // SAFETY: the caller's contract.
        let name = unsafe { mlua::ffi::lua_getlocal(state, record, index) };
        if name.is_null() {
            return false;
        }
        index += 1;
        // SAFETY: lua_getlocal returned a NUL-terminated name that lives while the frame does.
        let stop = visit(unsafe { CStr::from_ptr(name) }.to_bytes());
        // SAFETY: lua_getlocal pushed the value; it is popped once visited.
        unsafe { mlua::ffi::lua_pop(state, 1) };
        if stop {
            return true;
        }
    }
}

/// The debugger's form of the value at `index` (Redis's `ldbCatStackValue`).
///
/// # Safety
/// `state` must be a Lua state with a valid value at `index`, inside a protected call.
unsafe fn describe_slot(state: *mut mlua::ffi::lua_State, index: i32, depth: usize) -> Vec<u8> {
    use mlua::ffi;
    let mut out = Vec::new();
    if depth == MAX_VALUE_DEPTH {
        out.extend_from_slice(b"<max recursion level reached! Nested table?>");
        return out;
    }
    // SAFETY: per this function's contract; every push is checked for room and popped.
    unsafe {
        let index = if index < 0 {
            ffi::lua_gettop(state) + index + 1
        } else {
            index
        };
        match ffi::lua_type(state, index) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let data = ffi::lua_tolstring(state, index, &mut len);
                quote(&mut out, std::slice::from_raw_parts(data.cast::<u8>(), len));
            }
            ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(state, index) != 0 {
                b"true"
            } else {
                b"false"
            }),
            ffi::LUA_TNUMBER => out.extend_from_slice(
                amber_protocol::format_g(ffi::lua_tonumber(state, index), 6).as_bytes(),
            ),
            ffi::LUA_TNIL => out.extend_from_slice(b"nil"),
            ffi::LUA_TTABLE => {
                if ffi::lua_checkstack(state, 3) == 0 {
                    out.extend_from_slice(b"<max recursion level reached! Nested table?>");
                    return out;
                }
                let mut as_array = Vec::new();
                let mut as_map = Vec::new();
                let mut is_array = true;
                let mut expected = 1.0;
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, index) != 0 {
                    if is_array
                        && (ffi::lua_type(state, -2) != ffi::LUA_TNUMBER
                            || ffi::lua_tonumber(state, -2) != expected)
                    {
                        is_array = false;
                    }
                    let value = describe_slot(state, -1, depth + 1);
                    as_array.extend_from_slice(&value);
                    as_array.extend_from_slice(b"; ");
                    as_map.push(b'[');
                    // A copy of the key: describing a number key must not change it.
                    ffi::lua_pushvalue(state, -2);
                    as_map.extend_from_slice(&describe_slot(state, -1, depth + 1));
                    ffi::lua_pop(state, 1);
                    as_map.extend_from_slice(b"]=");
                    as_map.extend_from_slice(&value);
                    as_map.extend_from_slice(b"; ");
                    ffi::lua_pop(state, 1);
                    expected += 1.0;
                }
                let mut body = if is_array { as_array } else { as_map };
                body.truncate(body.len().saturating_sub(2));
                out.push(b'{');
                out.extend_from_slice(&body);
                out.push(b'}');
            }
            kind => {
                let name = match kind {
                    ffi::LUA_TFUNCTION => "function",
                    ffi::LUA_TUSERDATA => "userdata",
                    ffi::LUA_TTHREAD => "thread",
                    ffi::LUA_TLIGHTUSERDATA => "light-userdata",
                    _ => {
                        out.extend_from_slice(b"\"<unknown-lua-type>\"");
                        return out;
                    }
                };
                let pointer = ffi::lua_topointer(state, index);
                out.extend_from_slice(format!("\"{name}@{pointer:p}\"").as_bytes());
            }
        }
    }
    out
}

/// Appends `bytes` quoted and escaped as Redis's `sdscatrepr` does.
fn quote(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &byte in bytes {
        match byte {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', byte]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            byte if byte.is_ascii_graphic() || byte == b' ' => out.push(byte),
            byte => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// A command's reply as the debugger logs it (Redis's `ldbRedisProtocolToHuman`).
fn human_reply(out: &mut Vec<u8>, reply: &Frame) {
    match reply {
        Frame::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Frame::Bulk(bytes) => quote(out, bytes),
        Frame::NullBulk | Frame::NullArray => out.extend_from_slice(b"NULL"),
        Frame::Simple(text) => quote(out, &[b"+".as_slice(), text].concat()),
        Frame::Error(text) => quote(out, &[b"-".as_slice(), text].concat()),
        Frame::Array(items) => human_list(out, b"[", items, b"]"),
        Frame::Set(items) => human_list(out, b"~(", items, b")"),
        Frame::Map(pairs) => {
            out.push(b'{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                human_reply(out, key);
                out.extend_from_slice(b" => ");
                human_reply(out, value);
                if i + 1 != pairs.len() {
                    out.push(b',');
                }
            }
            out.push(b'}');
        }
        Frame::Null => out.extend_from_slice(b"(null)"),
        Frame::Boolean(true) => out.extend_from_slice(b"#true"),
        Frame::Boolean(false) => out.extend_from_slice(b"#false"),
        Frame::Double(value) => {
            out.extend_from_slice(b"(double) ");
            out.extend_from_slice(amber_protocol::format_g(*value, 17).as_bytes());
        }
        // Redis's debugger shows nothing for the other RESP3 types.
        Frame::BigNumber(_) | Frame::BulkError(_) | Frame::Verbatim(..) | Frame::Push(_) => {}
    }
}

fn human_list(out: &mut Vec<u8>, open: &[u8], items: &[Frame], close: &[u8]) {
    out.extend_from_slice(open);
    for (i, item) in items.iter().enumerate() {
        human_reply(out, item);
        if i + 1 != items.len() {
            out.push(b',');
        }
    }
    out.extend_from_slice(close);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(words: &[&str]) -> Parsed {
        Parsed::Command(words.iter().map(|w| w.as_bytes().to_vec()).collect())
    }

    #[test]
    fn commands_parse_as_redis_reads_them() {
        assert_eq!(parse_command(b""), Parsed::Incomplete);
        assert_eq!(parse_command(b"*1\r\n$4\r\nstep\r\n"), args(&["step"]));
        assert_eq!(
            parse_command(b"*2\r\n$1\r\nb\r\n$2\r\n12\r\n"),
            args(&["b", "12"])
        );
        // Arguments may hold any byte.
        assert_eq!(
            parse_command(b"*1\r\n$3\r\na\0b\r\n"),
            Parsed::Command(vec![b"a\0b".to_vec()])
        );
        for partial in [
            &b"*2"[..],
            b"*2\r\n",
            b"*2\r\n$1\r\nb",
            b"*2\r\n$1\r\nb\r\n",
        ] {
            assert_eq!(parse_command(partial), Parsed::Incomplete, "{partial:?}");
        }
        for bad in [
            &b"step\r\n"[..],
            b"*0\r\n",
            b"*1025\r\n",
            b"*1\r\n+ok\r\n",
            b"*1\r\n$0\r\n\r\n",
            b"*1\r\n$1025\r\n",
            b"*1\r\n$2\r\nabcd",
        ] {
            assert_eq!(parse_command(bad), Parsed::ProtocolError, "{bad:?}");
        }
    }

    #[test]
    fn replies_read_as_redis_logs_them() {
        let mut out = Vec::new();
        human_reply(
            &mut out,
            &Frame::Array(vec![
                Frame::Bulk(b"a\"b\n".to_vec()),
                Frame::Integer(-3),
                Frame::NullBulk,
                Frame::Simple(b"OK".to_vec()),
                Frame::Map(vec![(Frame::Bulk(b"k".to_vec()), Frame::Boolean(true))]),
                Frame::Set(vec![Frame::Double(1.5), Frame::Null]),
            ]),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"["a\"b\n",-3,NULL,"+OK",{"k" => #true},~((double) 1.5,(null))]"#
        );
    }

    proptest! {
        #[test]
        fn any_input_parses_without_panic(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_command(&input);
        }

        #[test]
        fn well_formed_commands_round_trip(
            words in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..8)
        ) {
            let mut input = format!("*{}\r\n", words.len()).into_bytes();
            for word in &words {
                input.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
                input.extend_from_slice(word);
                input.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(parse_command(&input), Parsed::Command(words.clone()));
            for cut in 0..input.len() {
                prop_assert_ne!(parse_command(&input[..cut]), Parsed::ProtocolError);
            }
        }
    }
}
