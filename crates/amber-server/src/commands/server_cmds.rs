//! Server commands: databases, INFO, TIME, COMMAND, CONFIG, SHUTDOWN, DEBUG.

use amber_keyspace::{Entry, StrValue, Value};
use amber_protocol::{Protocol, parse_i64};
use amber_snapshot::schedule::JobKind;
use bytes::Bytes;

use super::keys::{DbIndexError, parse_db_index};
use super::table::{COMMANDS, CommandSpec};
use super::{
    Ctx, Replied, errors, info as info_section, is, lookup, subcommand_arity, unknown_subcommand,
};
use crate::log::{self, Level};
use crate::persistence::aof_rewrite::RewriteStart;
use crate::persistence::save::{BgsaveStart, SaveError, SnapshotMethod};
use crate::server::{ShutdownRequest, unix_ms};

/// `DBSIZE`
pub(super) fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) {
    let len = ctx.db().len();
    ctx.out.integer(len as i64);
}

fn flush_mode(ctx: &mut Ctx, args: &[Bytes]) -> Result<(), Replied> {
    match args.get(1) {
        None => Ok(()),
        Some(mode) if args.len() == 2 && (is(mode, "async") || is(mode, "sync")) => Ok(()),
        Some(_) => {
            ctx.error(errors::SYNTAX);
            Err(Replied)
        }
    }
}

/// `FLUSHDB [ASYNC|SYNC]`
pub(super) fn flushdb(ctx: &mut Ctx, args: &[Bytes]) {
    if flush_mode(ctx, args).is_err() {
        return;
    }
    let removed = ctx.db().len() as u64;
    let db = ctx.client.db;
    ctx.server.touch_existing_keys(db);
    ctx.server.invalidate_all_tracked();
    ctx.db().clear();
    ctx.dirty(removed);
    ctx.force_propagation();
    ctx.out.ok();
}

/// `FLUSHALL [ASYNC|SYNC]`
pub(super) fn flushall(ctx: &mut Ctx, args: &[Bytes]) {
    if flush_mode(ctx, args).is_err() {
        return;
    }
    let removed = ctx.server.keyspace.key_count() as u64;
    for db in 0..ctx.server.keyspace.db_count() {
        ctx.server.touch_existing_keys(db);
    }
    ctx.server.invalidate_all_tracked();
    ctx.server.keyspace.clear();
    ctx.dirty(removed);
    // As Redis: a running BGSAVE would write the old data back; with save points, the empty
    // dataset is saved at once so a restart does not bring the flushed keys back.
    ctx.server.kill_job_of(JobKind::Save);
    if !ctx.server.config.get("save").is_empty()
        && let Err(error) = ctx.server.save_now()
    {
        crate::warning!("Error saving the empty dataset after FLUSHALL: {error}");
    }
    ctx.force_propagation();
    ctx.out.ok();
}

/// `SWAPDB index1 index2`
pub(super) fn swapdb(ctx: &mut Ctx, args: &[Bytes]) {
    let count = ctx.server.keyspace.db_count();
    let first = match parse_db_index(&args[1], count) {
        Err(DbIndexError::NotInteger) => return ctx.error("ERR invalid first DB index"),
        Err(DbIndexError::OutOfRange) => return ctx.error(errors::DB_RANGE),
        Ok(index) => index,
    };
    let second = match parse_db_index(&args[2], count) {
        Err(DbIndexError::NotInteger) => return ctx.error("ERR invalid second DB index"),
        Err(DbIndexError::OutOfRange) => return ctx.error(errors::DB_RANGE),
        Ok(index) => index,
    };
    ctx.server.touch_keys_swapped(first, second);
    ctx.server.touch_keys_swapped(second, first);
    ctx.server.keyspace.swap(first, second);
    // Clients blocked in either database may now find their keys (Redis's scanDatabaseForReadyKeys).
    ctx.server.signal_blocked_in(first);
    ctx.server.signal_blocked_in(second);
    ctx.dirty(1);
    ctx.out.ok();
}

/// `INFO [section ...]`
pub(super) fn info(ctx: &mut Ctx, args: &[Bytes]) {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = info_section::render(ctx.server, &sections);
    ctx.out.verbatim(b"txt", text.as_bytes());
}

/// `TIME`
pub(super) fn time(ctx: &mut Ctx, _args: &[Bytes]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(now.as_secs().to_string().as_bytes());
    ctx.out.bulk(now.subsec_micros().to_string().as_bytes());
}

/// `LASTSAVE`
pub(super) fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) {
    ctx.out
        .integer(ctx.server.jobs.scheduler.last_save_ms() / 1000);
}

fn acl_categories(spec: &CommandSpec) -> Vec<String> {
    let mut categories = Vec::new();
    match spec.group {
        "string" => categories.push("@string"),
        "hash" => categories.push("@hash"),
        "set" => categories.push("@set"),
        "list" => categories.push("@list"),
        "sorted-set" => categories.push("@sortedset"),
        "keyspace" => categories.push("@keyspace"),
        "connection" => categories.push("@connection"),
        _ => {}
    }
    if spec.flags.contains(super::table::WRITE) {
        categories.push("@write");
    }
    if spec.flags.contains(super::table::READONLY) {
        categories.push("@read");
    }
    if spec.flags.contains(super::table::ADMIN) {
        categories.extend(["@admin", "@dangerous"]);
    }
    categories.push(if spec.flags.contains(super::table::FAST) {
        "@fast"
    } else {
        "@slow"
    });
    categories.into_iter().map(String::from).collect()
}

fn command_info(ctx: &mut Ctx, spec: &CommandSpec) {
    ctx.out.array(10);
    ctx.out.bulk(spec.name.as_bytes());
    ctx.out.integer(i64::from(spec.arity));
    let flags = spec.flags.names();
    ctx.out.set(flags.len());
    flags.iter().for_each(|flag| ctx.out.simple(flag));
    ctx.out.integer(i64::from(spec.first_key));
    ctx.out.integer(i64::from(spec.last_key));
    ctx.out.integer(i64::from(spec.step));
    let categories = acl_categories(spec);
    ctx.out.set(categories.len());
    categories.iter().for_each(|c| ctx.out.simple(c));
    ctx.out.set(0);
    reply_key_specs(ctx, spec.name);
    ctx.out.array(0);
}

fn command_docs(ctx: &mut Ctx, spec: &CommandSpec) {
    ctx.out.bulk(spec.name.as_bytes());
    ctx.out.map(3);
    ctx.out.bulk(b"summary");
    ctx.out.bulk(spec.summary.as_bytes());
    ctx.out.bulk(b"since");
    ctx.out.bulk(b"1.0.0");
    ctx.out.bulk(b"group");
    ctx.out.bulk(spec.group.as_bytes());
}

/// `COMMAND GETKEYS command arg ...` and `COMMAND GETKEYSANDFLAGS`: which arguments of a
/// command are keys (and what it does to each), as Redis's key specifications say.
fn command_getkeys(ctx: &mut Ctx, command: &[Bytes], with_flags: bool) {
    let Some(spec) = lookup(&command[0]) else {
        return ctx.error("ERR Invalid command specified");
    };
    if !super::key_specs::has_keys(spec.name, command) {
        return ctx.error("ERR The command has no key arguments");
    }
    let count = command.len() as i32;
    if (spec.arity > 0 && count != spec.arity) || count < -spec.arity {
        return ctx.error("ERR Invalid number of arguments specified for command");
    }
    let keys = super::keys_and_flags(spec.name, command);
    if keys.is_empty() {
        // Scripts and functions may be called with no key (Redis's `no-mandatory-keys`).
        if matches!(
            spec.name,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
        ) {
            return ctx.out.array(0);
        }
        return ctx.error("ERR Invalid arguments specified for command");
    }
    ctx.out.array(keys.len());
    for (position, flags) in keys {
        if with_flags {
            ctx.out.array(2);
            ctx.out.bulk(&command[position]);
            let names = flags.names();
            ctx.out.set(names.len());
            names.iter().for_each(|name| ctx.out.simple(name));
        } else {
            ctx.out.bulk(&command[position]);
        }
    }
}

/// The key specifications of `COMMAND INFO` (its ninth element).
fn reply_key_specs(ctx: &mut Ctx, name: &str) {
    use super::key_specs::{BeginSearch, FindKeys};
    let specs = super::key_specs::specs_of(name);
    ctx.out.set(specs.len());
    for spec in specs {
        ctx.out.map(3 + usize::from(!spec.notes.is_empty()));
        if !spec.notes.is_empty() {
            ctx.out.bulk(b"notes");
            ctx.out.bulk(spec.notes.as_bytes());
        }
        ctx.out.bulk(b"flags");
        let names = spec.flags.names();
        ctx.out.set(names.len());
        names.iter().for_each(|flag| ctx.out.simple(flag));
        ctx.out.bulk(b"begin_search");
        ctx.out.map(2);
        ctx.out.bulk(b"type");
        match &spec.begin {
            BeginSearch::Index(at) => {
                ctx.out.bulk(b"index");
                ctx.out.bulk(b"spec");
                ctx.out.map(1);
                ctx.out.bulk(b"index");
                ctx.out.integer(i64::from(*at));
            }
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => {
                ctx.out.bulk(b"keyword");
                ctx.out.bulk(b"spec");
                ctx.out.map(2);
                ctx.out.bulk(b"keyword");
                ctx.out.bulk(keyword.as_bytes());
                ctx.out.bulk(b"startfrom");
                ctx.out.integer(i64::from(*start_from));
            }
            BeginSearch::Unknown => {
                ctx.out.bulk(b"unknown");
                ctx.out.bulk(b"spec");
                ctx.out.map(0);
            }
        }
        ctx.out.bulk(b"find_keys");
        ctx.out.map(2);
        ctx.out.bulk(b"type");
        let fields: [(&[u8], i32); 3] = match spec.find {
            FindKeys::Range { last, step, limit } => {
                ctx.out.bulk(b"range");
                [(b"lastkey", last), (b"keystep", step), (b"limit", limit)]
            }
            FindKeys::KeyNum {
                count_at,
                first,
                step,
            } => {
                ctx.out.bulk(b"keynum");
                [
                    (b"keynumidx", count_at),
                    (b"firstkey", first),
                    (b"keystep", step),
                ]
            }
            FindKeys::Unknown => {
                ctx.out.bulk(b"unknown");
                ctx.out.bulk(b"spec");
                ctx.out.map(0);
                continue;
            }
        };
        ctx.out.bulk(b"spec");
        ctx.out.map(3);
        for (field, value) in fields {
            ctx.out.bulk(field);
            ctx.out.integer(i64::from(value));
        }
    }
}

/// `COMMAND [COUNT|INFO|DOCS|LIST|GETKEYS]`
pub(super) fn command(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(sub) = args.get(1) else {
        ctx.out.array(COMMANDS.len());
        COMMANDS.iter().for_each(|spec| command_info(ctx, spec));
        return;
    };
    if is(sub, "count") && args.len() == 2 {
        ctx.out.integer(COMMANDS.len() as i64);
    } else if is(sub, "info") {
        let names: Vec<Option<&CommandSpec>> = if args.len() == 2 {
            COMMANDS.iter().map(Some).collect()
        } else {
            args[2..].iter().map(|name| lookup(name)).collect()
        };
        ctx.out.array(names.len());
        for spec in names {
            match spec {
                Some(spec) => command_info(ctx, spec),
                None => ctx.out.null_array(),
            }
        }
    } else if is(sub, "docs") {
        let specs: Vec<&CommandSpec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..].iter().filter_map(|name| lookup(name)).collect()
        };
        ctx.out.map(specs.len());
        specs.into_iter().for_each(|spec| command_docs(ctx, spec));
    } else if is(sub, "getkeys") && args.len() >= 4 {
        command_getkeys(ctx, &args[2..], false);
    } else if is(sub, "getkeysandflags") && args.len() >= 4 {
        command_getkeys(ctx, &args[2..], true);
    } else if is(sub, "list") && args.len() == 2 {
        ctx.out.array(COMMANDS.len());
        COMMANDS
            .iter()
            .for_each(|spec| ctx.out.bulk(spec.name.as_bytes()));
    } else if ["count", "list", "getkeys", "getkeysandflags"]
        .iter()
        .any(|s| is(sub, s))
    {
        subcommand_arity(ctx, "command", sub);
    } else {
        unknown_subcommand(ctx, "command", sub);
    }
}

/// `CONFIG GET|SET|RESETSTAT|REWRITE|HELP`
pub(super) fn config(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "get") && args.len() >= 3 {
        let patterns: Vec<&[u8]> = args[2..].iter().map(|p| p.as_ref()).collect();
        let found = ctx.server.config.matching(&patterns);
        ctx.out.map(found.len());
        for (name, value) in found {
            ctx.out.bulk(name.as_bytes());
            ctx.out.bulk(value.as_bytes());
        }
    } else if is(sub, "set") && args.len() >= 4 && args.len().is_multiple_of(2) {
        config_set(ctx, &args[2..]);
    } else if is(sub, "resetstat") && args.len() == 2 {
        ctx.server.stats = Default::default();
        ctx.server.command_stats = Default::default();
        ctx.server.command.errors_seen = 0;
        ctx.out.ok();
    } else if is(sub, "rewrite") && args.len() == 2 {
        match ctx.server.config.rewrite() {
            Ok(()) => {
                crate::notice!("CONFIG REWRITE executed with success.");
                ctx.out.ok();
            }
            Err(message) => ctx.error(&format!("ERR {message}")),
        }
    } else if is(sub, "help") && args.len() == 2 {
        let help = [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Print this help.",
        ];
        ctx.out.array(help.len());
        help.iter().for_each(|line| ctx.out.simple(line));
    } else if ["get", "set", "resetstat", "rewrite", "help"]
        .iter()
        .any(|s| is(sub, s))
    {
        subcommand_arity(ctx, "config", sub);
    } else {
        unknown_subcommand(ctx, "config", sub);
    }
}

fn config_set(ctx: &mut Ctx, pairs: &[Bytes]) {
    let pairs: Vec<(String, String)> = pairs
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).into_owned(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    if let Some(refusal) = config_set_refusal(ctx, &pairs) {
        return ctx.error(&refusal);
    }
    let before = ctx.server.config.clone();
    let changed = match ctx.server.config.set_many(&pairs) {
        Ok(changed) => changed,
        Err(error) => return ctx.error(&error.reply()),
    };
    if changed.contains(&"port") || changed.contains(&"bind") {
        let bind = ctx.server.config.get("bind").to_string();
        let port = u16::try_from(ctx.server.config.get_i64("port")).unwrap_or(0);
        if ctx.server.rebind(&bind, port).is_err() {
            ctx.server.config = before;
            let message = if changed.contains(&"port") {
                "ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port"
            } else {
                "ERR CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses."
            };
            return ctx.error(message);
        }
    }
    if changed.contains(&"dir") {
        let dir = ctx.server.config.get("dir").to_string();
        if let Err(error) = std::env::set_current_dir(&dir) {
            ctx.server.config = before;
            let reason = error.to_string();
            return ctx.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument 'dir') - {reason}"
            ));
        }
    }
    if changed.contains(&"loglevel") {
        log::set_level(Level::from_name(ctx.server.config.get("loglevel")));
    }
    if ["proc-title-template", "port", "bind"]
        .iter()
        .any(|name| changed.contains(name))
    {
        crate::proctitle::refresh(&ctx.server.config);
    }
    for name in &changed {
        // Accepted, since tools and Redis's own tests set them; never silently: once per
        // directive, the log says it does nothing yet.
        if before.get(name) != ctx.server.config.get(name)
            && ctx.server.config.first_set_without_effect(name)
        {
            crate::warning!(
                "CONFIG SET {name}: the directive is accepted for compatibility but has no effect in Amber yet"
            );
        }
    }
    ctx.server.refresh_settings();
    if changed.contains(&"maxmemory") {
        maxmemory_changed(ctx.server);
    }
    ctx.server.aof.refresh(&ctx.server.config);
    if changed.contains(&"aof-disable-auto-gc")
        && !ctx.server.config.get_bool("aof-disable-auto-gc")
    {
        ctx.server.delete_aof_history();
    }
    if changed.contains(&"appendonly") {
        let wanted = ctx.server.config.get_bool("appendonly");
        let in_exec = ctx.client.in_exec;
        if let Err(error) = ctx.server.switch_aof_from(wanted, in_exec) {
            ctx.server.config = before;
            ctx.server.aof.refresh(&ctx.server.config);
            return ctx.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {error}"
            ));
        }
    }
    ctx.out.ok();
}

/// Why `CONFIG SET` may not change these directives now: `dir` and `dbfilename` are
/// protected (`enable-protected-configs`), and `dir`, `appendonly` and `repl-diskless-load`
/// wait for the dataset to load.
fn config_set_refusal(ctx: &Ctx, pairs: &[(String, String)]) -> Option<String> {
    let protected_allowed = match ctx.server.config.get("enable-protected-configs") {
        "yes" => true,
        "local" => ctx.client.local,
        _ => false,
    };
    let mut loading_refused = false;
    for (name, _) in pairs {
        let canonical = crate::config::Config::canonical_name(name);
        if matches!(canonical, Some("dir" | "dbfilename")) && !protected_allowed {
            return Some(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set protected config"
            ));
        }
        // Redis's `DENY_LOADING_CONFIG`, refused during an async (swapdb) load too.
        if (ctx.server.loading.is_some() || ctx.server.async_loading)
            && matches!(canonical, Some("dir" | "appendonly" | "repl-diskless-load"))
        {
            loading_refused = true;
        }
    }
    loading_refused.then(|| "LOADING Redis is loading the dataset in memory".to_string())
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`
pub(super) fn shutdown(ctx: &mut Ctx, args: &[Bytes]) {
    for arg in &args[1..] {
        if !["nosave", "save", "now", "force", "abort"]
            .iter()
            .any(|s| is(arg, s))
        {
            return ctx.error(errors::SYNTAX);
        }
    }
    if args[1..].iter().any(|a| is(a, "abort")) {
        return ctx.error("ERR No shutdown in progress.");
    }
    if !ctx.client.authenticated {
        return ctx.error(errors::NOAUTH);
    }
    let save = if args[1..].iter().any(|a| is(a, "nosave")) {
        Some(false)
    } else if args[1..].iter().any(|a| is(a, "save")) {
        Some(true)
    } else {
        None
    };
    let force = args[1..].iter().any(|a| is(a, "force"));
    ctx.server
        .request_shutdown(ShutdownRequest::Command { save, force });
    ctx.client.close_after_reply = true;
}

/// `DEBUG <subcommand>`, governed by `enable-debug-command`.
pub(super) fn debug(ctx: &mut Ctx, args: &[Bytes]) {
    let allowed = match ctx.server.settings.enable_debug_command.as_str() {
        "yes" => true,
        "local" => ctx.client.local,
        _ => ctx.client.id == super::LOADING_CLIENT_ID,
    };
    if !allowed {
        return ctx.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    let sub = args[1].to_ascii_lowercase();
    match (sub.as_slice(), args.len()) {
        (b"populate", 3..=5) => debug_populate(ctx, args),
        (b"sleep", 3) => {
            let seconds = super::strings::parse_float(&args[2])
                .unwrap_or(0.0)
                .max(0.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(seconds.min(1e6)));
            ctx.out.ok();
        }
        (b"config-rewrite-force-all", 2) => match ctx.server.config.rewrite_all() {
            Ok(()) => ctx.out.ok(),
            Err(message) => ctx.error(&format!("ERR CONFIG-REWRITE-FORCE-ALL failed: {message}")),
        },
        (b"set-skip-checksum-validation", 3) => {
            ctx.server.debug.skip_checksum_validation = args[2].as_ref() != b"0";
            ctx.out.ok();
        }
        (b"backup-clock-offset", 3) => match parse_i64(&args[2]) {
            Some(offset) => {
                ctx.server.backup.clock_offset_ms = offset;
                ctx.out.ok()
            }
            None => ctx.error(errors::NOT_INTEGER),
        },
        (b"htstats", 3) => match parse_i64(&args[2]) {
            Some(db) if (0..ctx.server.keyspace.db_count() as i64).contains(&db) => {
                let text = ctx.server.keyspace.db_ref(db as usize).table_stats();
                ctx.out.verbatim(b"txt", text.as_bytes());
            }
            Some(_) => ctx.error("ERR Out of range database"),
            None => ctx.error(errors::NOT_INTEGER),
        },
        (b"htstats-key", 3) => debug_htstats_key(ctx, &args[2]),
        (b"aof-flush-sleep", 3) => match parse_i64(&args[2]) {
            Some(micros) if micros >= 0 => {
                ctx.server
                    .aof
                    .set_flush_sleep(std::time::Duration::from_micros(micros as u64));
                ctx.out.ok()
            }
            _ => ctx.error(errors::NOT_INTEGER),
        },
        (b"set-disable-deny-scripts", 3) => {
            ctx.server.debug.disable_deny_scripts = args[2].as_ref() != b"0";
            ctx.out.ok();
        }
        (b"set-active-expire", 3) => {
            ctx.server.debug.active_expire_enabled = args[2].as_ref() != b"0";
            ctx.out.ok();
        }
        (b"quicklist-packed-threshold", 3) => {
            let size = std::str::from_utf8(&args[2])
                .ok()
                .and_then(crate::config::parse_memory)
                .filter(|&size| (0..1 << 32).contains(&size));
            match size {
                Some(size) => {
                    ctx.server.debug.list_packed_threshold = size as usize;
                    ctx.out.ok();
                }
                None => ctx.error(
                    "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
                ),
            }
        }
        (b"protocol", 3) => debug_protocol(ctx, &args[2]),
        (b"log", 3) => {
            crate::warning!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2]));
            ctx.out.ok();
        }
        (b"object", 3) => debug_object(ctx, &args[2]),
        (b"loadaof" | b"reload", 2) if ctx.client.id == super::LOADING_CLIENT_ID => {
            ctx.error("ERR DEBUG LOADAOF and RELOAD cannot run while loading")
        }
        (b"loadaof", 2) => match ctx.server.reload_aof() {
            Ok(()) => {
                ctx.propagate_as(Vec::new());
                ctx.out.ok()
            }
            Err(error) => ctx.error(&format!("ERR Error loading the AOF: {error}")),
        },
        (b"reload", 2) => match ctx.server.reload_rdb() {
            Ok(()) => {
                ctx.propagate_as(Vec::new());
                ctx.out.ok()
            }
            Err(error) => ctx.error(&format!("ERR Error trying to load the RDB dump: {error}")),
        },
        (b"digest", 2) => {
            let digest = amber_keyspace::dataset_digest(&ctx.server.keyspace);
            ctx.out.simple(&digest.hex());
        }
        (b"digest-value", _) => {
            ctx.out.array(args.len() - 2);
            for key in &args[2..] {
                // Like Redis, logically expired keys still count: no expiry check here.
                let digest = ctx
                    .db()
                    .raw(key)
                    .map(amber_keyspace::value_digest)
                    .unwrap_or_default();
                ctx.out.simple(&digest.hex());
            }
        }
        (b"help", 2) => {
            ctx.out.array(DEBUG_HELP.len());
            DEBUG_HELP.iter().for_each(|line| ctx.out.simple(line));
        }
        _ => unknown_subcommand(ctx, "debug", &args[1]),
    }
}

/// `DEBUG HELP`: the subcommands Amber has.
const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "RELOAD",
    "    Save the RDB on disk and reload it back to memory.",
    "OBJECT <key>",
    "    Show low level info about the key and associated value.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "HTSTATS <dbid>",
    "    Return hash table statistics of the specified database.",
    "HTSTATS-KEY <key>",
    "    Like HTSTATS but for the hash table stored at <key>'s value.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Turn active expiry off or on.",
    "CONFIG-REWRITE-FORCE-ALL",
    "    Rewrite the config file with every directive, defaults included.",
    "HELP",
    "    Prints this help.",
];

/// `DEBUG HTSTATS-KEY key`: the statistics of the table holding a hash's fields or a set's
/// members (a sorted set's member map is not a table of chains here, so it has none).
fn debug_htstats_key(ctx: &mut Ctx, key: &[u8]) {
    let now = ctx.server.now_ms;
    let stats = ctx
        .db()
        .peek(key, now)
        .map(|entry| entry.value.table_stats());
    match stats {
        None => ctx.error(errors::NO_SUCH_KEY),
        Some(None) => ctx.error(
            "ERR The value stored at the specified key is not represented using an hash table",
        ),
        Some(Some(text)) => ctx.out.verbatim(b"txt", text.as_bytes()),
    }
}

fn debug_populate(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(count) = parse_i64(&args[2]).filter(|n| *n >= 0) else {
        return ctx.error("ERR count must be >= 0");
    };
    let prefix = args.get(3).map_or(&b"key"[..], |p| p.as_ref()).to_vec();
    let size = match args.get(4).map(|s| parse_i64(s)) {
        None => 0,
        Some(Some(size)) if size >= 0 => size as usize,
        Some(_) => return ctx.error(errors::NOT_INTEGER),
    };
    let now = ctx.server.now_ms;
    let mut key = prefix.clone();
    let mut added = 0;
    for i in 0..count {
        key.truncate(prefix.len());
        key.extend_from_slice(format!(":{i}").as_bytes());
        if ctx.db().exists(&key, now) {
            continue;
        }
        let mut value = format!("value:{i}").into_bytes();
        if size > 0 {
            value.resize(size, 0);
        }
        let stored = if value.len() <= amber_keyspace::EMBSTR_MAX_LEN {
            StrValue::Embstr(value.into())
        } else {
            StrValue::Raw(value)
        };
        ctx.db().insert(&key, Entry::new(Value::Str(stored), now));
        added += 1;
    }
    // The keys count for save points. Unlike Redis, the AOF records the (deterministic)
    // command, so the keys survive a restart; as in Redis, replicas are not sent it (tests
    // use it to give a replica data its master lacks).
    ctx.server.dirty += added;
    if added > 0 && ctx.server.aof.is_on() {
        let db = ctx.client.db;
        ctx.server.propagate_to_aof_only(db, args);
    }
    ctx.out.ok();
}

/// `DEBUG PROTOCOL type`: a sample reply of each RESP type, as Redis sends them for clients to
/// test their parsers.
fn debug_protocol(ctx: &mut Ctx, kind: &[u8]) {
    let resp3 = ctx.out.protocol() == Protocol::Resp3;
    match kind.to_ascii_lowercase().as_slice() {
        b"string" => ctx.out.bulk(b"Hello World"),
        b"integer" => ctx.out.integer(12345),
        // Redis's sample value, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        b"double" => ctx.out.double(3.141),
        b"bignum" => ctx.out.big_number("1234567999999999999999999999999999999"),
        b"null" => ctx.out.null(),
        b"array" | b"set" => {
            if kind.eq_ignore_ascii_case(b"set") {
                ctx.out.set(3);
            } else {
                ctx.out.array(3);
            }
            (0..3).for_each(|i| ctx.out.integer(i));
        }
        b"map" => {
            ctx.out.map(3);
            for i in 0..3 {
                ctx.out.integer(i);
                ctx.out.boolean(i == 1);
            }
        }
        b"attrib" => {
            if resp3 {
                ctx.out.attribute(1);
                ctx.out.bulk(b"key-popularity");
                ctx.out.array(2);
                ctx.out.bulk(b"key:123");
                ctx.out.integer(90);
            }
            ctx.out.bulk(b"Some real reply following the attribute");
        }
        b"push" if !resp3 => ctx.error("ERR RESP2 is not supported by this command"),
        b"push" => {
            ctx.out.push(2);
            ctx.out.bulk(b"server-cpu-usage");
            ctx.out.integer(42);
            ctx.out.bulk(b"Some real reply following the push reply");
        }
        b"verbatim" => ctx.out.verbatim(b"txt", b"This is a verbatim\nstring"),
        b"true" => ctx.out.boolean(true),
        b"false" => ctx.out.boolean(false),
        _ => ctx.error("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}

fn debug_object(ctx: &mut Ctx, key: &[u8]) {
    // As Redis, the key is looked up as stored: an expired key not yet deleted is shown.
    let Some(entry) = ctx.db().raw(key) else {
        return ctx.error(errors::NO_SUCH_KEY);
    };
    let length = match &entry.value {
        Value::Str(value) => value.len(),
        Value::Hash(hash) => hash.len(),
        Value::Set(set) => set.len(),
        Value::List(items) => items.len(),
        Value::Zset(zset) => zset.len(),
        Value::Stream(stream) => stream.log.len() as usize,
    };
    let idle = entry.idle_ms(unix_ms()) / 1000;
    let text = format!(
        "Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
        entry.value.encoding(),
        length,
        entry.access_bits(),
        idle
    );
    ctx.out.simple(&text);
}

/// `SAVE`
pub(super) fn save(ctx: &mut Ctx, _args: &[Bytes]) {
    match ctx.server.save_now() {
        Ok(()) => ctx.out.ok(),
        Err(SaveError::Write(_)) => ctx.error("ERR"),
        Err(error) => ctx.error(&format!("ERR {error}")),
    }
}

/// `BGSAVE [SCHEDULE]`
pub(super) fn bgsave(ctx: &mut Ctx, args: &[Bytes]) {
    let (mut schedule, mut method) = (false, None);
    for arg in &args[1..] {
        if is(arg, "schedule") && !schedule {
            schedule = true;
        } else if is(arg, "fork") && method.is_none() {
            method = Some(SnapshotMethod::Fork);
        } else if is(arg, "forkless") && method.is_none() {
            method = Some(SnapshotMethod::Forkless);
        } else {
            return ctx.error(errors::SYNTAX);
        }
    }
    // Inside EXEC, as Redis: a fork would be taken mid-transaction, so the save waits.
    if ctx.client.in_exec && !ctx.server.has_active_child() {
        ctx.server.jobs.scheduler.set_queued(JobKind::Save, true);
        return ctx.out.simple("Background saving scheduled");
    }
    match ctx
        .server
        .request_bgsave(schedule || ctx.client.in_exec, method)
    {
        Ok(BgsaveStart::Started) => ctx.out.simple("Background saving started"),
        Ok(BgsaveStart::Scheduled) => ctx.out.simple("Background saving scheduled"),
        Err(error) => ctx.error(&format!("ERR {error}")),
    }
}

/// `BGREWRITEAOF`
pub(super) fn bgrewriteaof(ctx: &mut Ctx, _args: &[Bytes]) {
    let rewriting = ctx.server.jobs.running(JobKind::AofRewrite).is_some();
    if ctx.client.in_exec && !rewriting {
        ctx.server
            .jobs
            .scheduler
            .set_queued(JobKind::AofRewrite, true);
        return ctx
            .out
            .simple("Background append only file rewriting scheduled");
    }
    match ctx.server.request_aof_rewrite() {
        Ok(RewriteStart::Started) => ctx
            .out
            .simple("Background append only file rewriting started"),
        Ok(RewriteStart::Scheduled) => {
            ctx.server.jobs.scheduler.reset_rewrite_failures();
            ctx.out
                .simple("Background append only file rewriting scheduled")
        }
        Err(error) => ctx.error(&format!("ERR {error}")),
    }
}

/// `CLUSTER ...`: a standalone server has no cluster, as Redis says when cluster mode is off.
pub(super) fn cluster(ctx: &mut Ctx, _args: &[Bytes]) {
    ctx.error("ERR This instance has cluster support disabled");
}

/// A new `maxmemory`: warns, as Redis, when it is below the memory in use, and starts evicting
/// (from the eviction task, so a `CONFIG SET` inside MULTI evicts after EXEC).
fn maxmemory_changed(server: &mut crate::server::Server) {
    let limit = server.settings.maxmemory;
    if limit == 0 {
        return;
    }
    let used = crate::alloc::used_memory().saturating_sub(server.memory_not_counted_for_evict());
    if limit < used {
        crate::warning!(
            "WARNING: the new maxmemory value set via CONFIG SET ({limit}) is smaller than the current memory usage ({used}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy."
        );
    }
    server.continue_evicting();
}
