//! `EVAL`, `EVALSHA` and their `_RO` forms, `SCRIPT`, `FUNCTION` and `FCALL`.

use amber_scripting::{RestorePolicy, ScriptFlags};
use bytes::Bytes;

use super::table::{self, CommandSpec, Flags};
use super::{Ctx, errors, is, subcommand_arity, unknown_subcommand};
use crate::lua_debug::DebugMode;
use crate::scripting::{self, Target};

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Print this help.",
];

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Print this help.",
];

/// The flags `EVAL`, `EVALSHA` and `FCALL` have for this call: a script that declares flags
/// (a shebang, or a function) is a write unless `no-writes`, may run out of memory unless
/// `allow-oom`, and runs on a stale replica only with `allow-stale` (Redis's
/// `scriptFlagsToCmdFlags`). Other commands keep their table flags.
pub(super) fn effective_flags(ctx: &mut Ctx, spec: &CommandSpec, args: &[Bytes]) -> Flags {
    let declared = match spec.name {
        // A script without a shebang declares nothing: no need to hash it here.
        "eval" | "eval_ro" if !args[1].starts_with(b"#!") => return spec.flags,
        "eval" | "eval_ro" => ctx.server.scripting.engine().and_then(|engine| {
            let sha = amber_scripting::sha1_hex(&args[1]);
            engine.script_flags(sha.as_bytes()).or_else(|| {
                amber_scripting::parse_shebang(&args[1])
                    .ok()
                    .map(|s| s.flags)
            })
        }),
        "evalsha" | "evalsha_ro" => ctx
            .server
            .scripting
            .engine()
            .and_then(|engine| engine.script_flags(&args[1])),
        "fcall" | "fcall_ro" => ctx
            .server
            .scripting
            .engine()
            .and_then(|engine| engine.function_flags(&String::from_utf8_lossy(&args[1]))),
        // Of SCRIPT's subcommands, LOAD alone runs on a stale replica (`script|load` flags).
        "script" if args.get(1).is_some_and(|sub| is(sub, "load")) => {
            return spec.flags | table::STALE;
        }
        _ => return spec.flags,
    };
    let Some(declared) = declared.filter(|f| !f.contains(ScriptFlags::EVAL_COMPAT)) else {
        return spec.flags;
    };
    let mut flags = spec
        .flags
        .without(table::STALE | table::DENYOOM | table::WRITE | table::MAY_REPLICATE);
    if !declared.contains(ScriptFlags::NO_WRITES) {
        flags = flags | table::WRITE;
        if !declared.contains(ScriptFlags::ALLOW_OOM) {
            flags = flags | table::DENYOOM;
        }
    }
    if declared.contains(ScriptFlags::ALLOW_STALE) {
        flags = flags | table::STALE;
    }
    flags
}

/// `EVAL script numkeys [key ...] [arg ...]`
pub(super) fn eval(ctx: &mut Ctx, args: &[Bytes]) {
    eval_generic(ctx, args, false, false);
}

/// `EVAL_RO script numkeys [key ...] [arg ...]`
pub(super) fn eval_ro(ctx: &mut Ctx, args: &[Bytes]) {
    eval_generic(ctx, args, false, true);
}

/// `EVALSHA sha1 numkeys [key ...] [arg ...]`
pub(super) fn evalsha(ctx: &mut Ctx, args: &[Bytes]) {
    eval_generic(ctx, args, true, false);
}

/// `EVALSHA_RO sha1 numkeys [key ...] [arg ...]`
pub(super) fn evalsha_ro(ctx: &mut Ctx, args: &[Bytes]) {
    eval_generic(ctx, args, true, true);
}

/// Splits `numkeys key... arg...` (from `args[2]`), with Redis's errors; `bad_number` is the
/// message for a numkeys that is not an integer.
fn keys_and_args<'a>(
    ctx: &mut Ctx,
    args: &'a [Bytes],
    bad_number: &str,
) -> Option<(&'a [Bytes], &'a [Bytes])> {
    let Some(numkeys) = amber_protocol::parse_i64(&args[2]) else {
        ctx.error(bad_number);
        return None;
    };
    if numkeys > (args.len() - 3) as i64 {
        ctx.error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    if numkeys < 0 {
        ctx.error("ERR Number of keys can't be negative");
        return None;
    }
    Some(args[3..].split_at(numkeys as usize))
}

fn eval_generic(ctx: &mut Ctx, args: &[Bytes], evalsha: bool, read_only: bool) {
    let Some(mode) = ctx.client.lua_debug else {
        return run_eval(ctx, args, evalsha, read_only);
    };
    if evalsha {
        if args[1].len() != 40 {
            return ctx.error("NOSCRIPT No matching script. Please use EVAL.");
        }
        return ctx.error("ERR Please use EVAL instead of EVALSHA for debugging");
    }
    crate::lua_debug::eval(ctx, &args[1], mode, |ctx| {
        run_eval(ctx, args, false, read_only);
    });
}

/// `EVAL` / `EVALSHA` (and their `_RO` forms) as they run outside the debugger.
fn run_eval(ctx: &mut Ctx, args: &[Bytes], evalsha: bool, read_only: bool) {
    let Some((keys, script_args)) = keys_and_args(ctx, args, errors::NOT_INTEGER) else {
        return;
    };
    let Some(engine) = ctx.server.scripting.engine() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    let loaded;
    let sha: &[u8] = if evalsha {
        &args[1]
    } else {
        match engine.load_script(&args[1]) {
            Ok(sha) => {
                loaded = sha;
                loaded.as_bytes()
            }
            Err(error) => return ctx.error(&error.message),
        }
    };
    let Some((sha, flags)) = <[u8; 40]>::try_from(sha).ok().and_then(|mut sha| {
        sha.make_ascii_lowercase();
        engine.script_flags(&sha).map(|flags| (sha, flags))
    }) else {
        return ctx.error("NOSCRIPT No matching script. Please use EVAL.");
    };
    if let Err(message) = scripting::check_before_run(ctx, flags, read_only) {
        return ctx.error(&message);
    }
    scripting::run(
        ctx,
        Target::Script(&sha),
        flags,
        read_only,
        keys,
        script_args,
        args,
    );
}

/// `FCALL function numkeys [key ...] [arg ...]`
pub(super) fn fcall(ctx: &mut Ctx, args: &[Bytes]) {
    fcall_generic(ctx, args, false);
}

/// `FCALL_RO function numkeys [key ...] [arg ...]`
pub(super) fn fcall_ro(ctx: &mut Ctx, args: &[Bytes]) {
    fcall_generic(ctx, args, true);
}

fn fcall_generic(ctx: &mut Ctx, args: &[Bytes], read_only: bool) {
    let name = String::from_utf8_lossy(&args[1]);
    let Some(engine) = ctx.server.scripting.engine() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    let Some(flags) = engine.function_flags(&name) else {
        return ctx.error("ERR Function not found");
    };
    let Some((keys, function_args)) = keys_and_args(ctx, args, "ERR Bad number of keys provided")
    else {
        return;
    };
    if let Err(message) = scripting::check_before_run(ctx, flags, read_only) {
        return ctx.error(&message);
    }
    scripting::run(
        ctx,
        Target::Function(&name),
        flags,
        read_only,
        keys,
        function_args,
        args,
    );
}

/// `SCRIPT LOAD | EXISTS | FLUSH | KILL | DEBUG | HELP`
pub(super) fn script(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "help") && args.len() == 2 {
        ctx.out.array(SCRIPT_HELP.len());
        SCRIPT_HELP.iter().for_each(|line| ctx.out.simple(line));
    } else if is(sub, "flush") {
        if args.len() == 3 && !(is(&args[2], "sync") || is(&args[2], "async")) || args.len() > 3 {
            return ctx.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        }
        if let Some(engine) = ctx.server.scripting.engine() {
            engine.flush_scripts();
        }
        ctx.out.ok();
    } else if is(sub, "exists") {
        if args.len() < 3 {
            return subcommand_arity(ctx, "script", sub);
        }
        let Some(engine) = ctx.server.scripting.engine() else {
            return ctx.error("ERR scripts cannot run scripts");
        };
        let found: Vec<bool> = args[2..]
            .iter()
            .map(|sha| engine.script_exists(sha))
            .collect();
        ctx.out.array(found.len());
        for exists in found {
            ctx.out.integer(i64::from(exists));
        }
    } else if is(sub, "load") && args.len() == 3 {
        let Some(engine) = ctx.server.scripting.engine() else {
            return ctx.error("ERR scripts cannot run scripts");
        };
        match engine.load_script(&args[2]) {
            Ok(sha) => ctx.out.bulk(sha.as_bytes()),
            Err(error) => ctx.error(&error.message),
        }
    } else if is(sub, "kill") && args.len() == 2 {
        match scripting::kill(ctx.server, true) {
            Ok(()) => ctx.out.ok(),
            Err(message) => ctx.error(message),
        }
    } else if is(sub, "debug") && args.len() == 3 {
        if !ctx.out.is_empty() {
            return ctx.error("ERR SCRIPT DEBUG must be called outside a pipeline");
        }
        let mode = if is(&args[2], "no") {
            None
        } else if is(&args[2], "yes") {
            Some(DebugMode::Forked)
        } else if is(&args[2], "sync") {
            Some(DebugMode::Sync)
        } else {
            return ctx.error("ERR Use SCRIPT DEBUG YES/SYNC/NO");
        };
        ctx.client.lua_debug = mode;
        ctx.out.ok();
    } else if ["load", "kill", "debug"].iter().any(|name| is(sub, name)) {
        subcommand_arity(ctx, "script", sub);
    } else {
        unknown_subcommand(ctx, "script", sub);
    }
}

/// `FUNCTION LOAD | LIST | DELETE | DUMP | RESTORE | FLUSH | KILL | STATS | HELP`
pub(super) fn function(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    let known = |name: &str| is(sub, name);
    if ["load", "delete", "restore", "flush"]
        .iter()
        .any(|name| known(name))
        && let Some(refusal) = library_write_refusal(ctx)
    {
        return ctx.error(&refusal);
    }
    if known("help") && args.len() == 2 {
        ctx.out.array(FUNCTION_HELP.len());
        FUNCTION_HELP.iter().for_each(|line| ctx.out.simple(line));
    } else if known("load") && args.len() >= 3 {
        function_load(ctx, args);
    } else if known("list") {
        function_list(ctx, args);
    } else if known("delete") && args.len() == 3 {
        let name = String::from_utf8_lossy(&args[2]).into_owned();
        let deleted = ctx
            .server
            .scripting
            .engine()
            .is_some_and(|engine| engine.delete_library(&name));
        match deleted {
            true => {
                ctx.dirty(1);
                ctx.out.ok();
            }
            false => ctx.error("ERR Library not found"),
        }
    } else if known("dump") && args.len() == 2 {
        function_dump(ctx);
    } else if known("restore") && (3..=4).contains(&args.len()) {
        function_restore(ctx, args);
    } else if known("flush") && args.len() <= 3 {
        if args.len() == 3 && !(is(&args[2], "sync") || is(&args[2], "async")) {
            return ctx.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
        }
        if let Some(engine) = ctx.server.scripting.engine() {
            engine.flush_libraries();
        }
        ctx.dirty(1);
        ctx.out.ok();
    } else if known("kill") && args.len() == 2 {
        match scripting::kill(ctx.server, false) {
            Ok(()) => ctx.out.ok(),
            Err(message) => ctx.error(message),
        }
    } else if known("stats") && args.len() == 2 {
        function_stats(ctx);
    } else if [
        "load", "delete", "dump", "restore", "flush", "kill", "stats",
    ]
    .iter()
    .any(|name| known(name))
    {
        subcommand_arity(ctx, "function", sub);
    } else {
        unknown_subcommand(ctx, "function", sub);
    }
}

/// Why a FUNCTION subcommand that changes the libraries may not run here (a read-only
/// replica, a failed save), as Redis refuses writes.
fn library_write_refusal(ctx: &mut Ctx) -> Option<String> {
    if ctx.client.is_master {
        return None;
    }
    if ctx.server.replication.is_replica() && ctx.server.settings.replica_read_only {
        return Some("READONLY You can't write against a read only replica.".into());
    }
    ctx.server.write_refusal()
}

fn function_load(ctx: &mut Ctx, args: &[Bytes]) {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        if is(&args[pos], "replace") {
            replace = true;
            pos += 1;
            continue;
        }
        let option = String::from_utf8_lossy(&args[pos]).into_owned();
        return ctx.error(&format!("ERR Unknown option given: {option}"));
    }
    // The master's and the AOF's libraries load without the 500 ms limit.
    let timeout = !ctx.client.is_master && ctx.client.id != super::LOADING_CLIENT_ID;
    let Some(engine) = ctx.server.scripting.engine() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    match engine.load_library(&args[pos], replace, timeout) {
        Ok(name) => {
            ctx.dirty(1);
            ctx.out.bulk(name.as_bytes());
        }
        Err(error) => ctx.error(&error.message),
    }
}

fn function_list(ctx: &mut Ctx, args: &[Bytes]) {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        if !with_code && is(&args[i], "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(&args[i], "libraryname") {
            if i + 1 >= args.len() {
                return ctx.error("ERR library name argument was not given");
            }
            i += 1;
            pattern = Some(&args[i]);
        } else {
            let arg = String::from_utf8_lossy(&args[i]).into_owned();
            return ctx.error(&format!("ERR Unknown argument {arg}"));
        }
        i += 1;
    }
    let Some(engine) = ctx.server.scripting.engine.as_ref() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    let libraries: Vec<_> = engine
        .libraries()
        .filter(|library| {
            pattern.is_none_or(|p| amber_keyspace::glob_match(p, library.name.as_bytes(), true))
        })
        .cloned()
        .collect();
    let out = &mut *ctx.out;
    out.array(libraries.len());
    for library in &libraries {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(library.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(library.functions.len());
        for function in library.functions.values() {
            out.map(3);
            out.bulk(b"name");
            out.bulk(function.name.as_bytes());
            out.bulk(b"description");
            match &function.description {
                Some(text) => out.bulk(text.as_bytes()),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names = function.flags.names();
            out.set(names.len());
            for name in names {
                out.simple(name);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&library.code);
        }
    }
}

/// The libraries' sources, for `FUNCTION DUMP`, RDB files and AOF rewrites.
pub(crate) fn library_sources(server: &crate::server::Server) -> Vec<Bytes> {
    server
        .scripting
        .engine
        .as_ref()
        .map(|engine| engine.libraries().map(|l| l.code.clone()).collect())
        .unwrap_or_default()
}

fn function_dump(ctx: &mut Ctx) {
    let sources = library_sources(ctx.server);
    let options = amber_rdb::WriteOptions::default();
    match amber_rdb::functions_payload(sources.iter().map(|s| s.as_ref()), options) {
        Ok(payload) => ctx.out.bulk(&payload),
        Err(error) => ctx.error(&format!("ERR {error}")),
    }
}

fn function_restore(ctx: &mut Ctx, args: &[Bytes]) {
    let policy = match args.get(3) {
        None => RestorePolicy::Append,
        Some(word) if is(word, "flush") => RestorePolicy::Flush,
        Some(word) if is(word, "append") => RestorePolicy::Append,
        Some(word) if is(word, "replace") => RestorePolicy::Replace,
        Some(_) => {
            return ctx.error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            );
        }
    };
    let sources = match amber_rdb::parse_functions_payload(&args[2]) {
        Ok(sources) => sources,
        Err(amber_rdb::PayloadError::VersionOrChecksum) => {
            return ctx.error("ERR DUMP payload version or checksum are wrong");
        }
        Err(amber_rdb::PayloadError::BadFormat(message)) => {
            return ctx.error(&format!("ERR {message}"));
        }
    };
    let Some(engine) = ctx.server.scripting.engine() else {
        return ctx.error("ERR scripts cannot run scripts");
    };
    match engine.restore_libraries(&sources, policy) {
        Ok(()) => {
            ctx.dirty(1);
            ctx.out.ok();
        }
        Err(error) => ctx.error(&error.message),
    }
}

fn function_stats(ctx: &mut Ctx) {
    let scripting = &ctx.server.scripting;
    let (libraries, functions) = match (&scripting.engine, &scripting.running) {
        (Some(engine), _) => engine.functions_count(),
        (None, Some(running)) => running.functions_count,
        (None, None) => (0, 0),
    };
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match ctx.server.scripting.running.as_ref().filter(|r| !r.eval) {
        None => out.null(),
        Some(running) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(running.name.as_bytes());
            out.bulk(b"command");
            out.array(running.command.len());
            for arg in &running.command {
                out.bulk(arg);
            }
            out.bulk(b"duration_ms");
            out.integer(running.started.elapsed().as_millis() as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.integer(libraries as i64);
    out.bulk(b"functions_count");
    out.integer(functions as i64);
}
