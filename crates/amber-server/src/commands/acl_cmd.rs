//! `ACL`: users (`SETUSER`, `GETUSER`, `DELUSER`, `LIST`, `USERS`, `WHOAMI`), categories
//! (`CAT`), passwords (`GENPASS`), the log (`LOG`), `DRYRUN`, and the ACL file (`SAVE`,
//! `LOAD`).

use std::io::Read;

use amber_acl::{CATEGORY_NAMES, Categories, Selector, User};
use bytes::Bytes;

use super::{Ctx, is, subcommand_arity, unknown_subcommand};

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

const NO_ACL_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// `ACL <subcommand> ...`
pub(super) fn acl(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity_ok = match sub.as_str() {
        "setuser" | "deluser" => args.len() >= 3,
        "getuser" => args.len() == 3,
        "dryrun" => args.len() >= 4,
        "list" | "users" | "whoami" | "save" | "load" | "help" => args.len() == 2,
        "cat" | "genpass" | "log" => args.len() <= 3,
        _ => return unknown_subcommand(ctx, "acl", &args[1]),
    };
    if !arity_ok {
        if matches!(sub.as_str(), "cat" | "genpass" | "log") {
            // These check their own arguments, as Redis's aclCommand does.
            return ctx.error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                String::from_utf8_lossy(&args[1])
            ));
        }
        return subcommand_arity(ctx, "acl", &args[1]);
    }
    match sub.as_str() {
        "setuser" => set_user(ctx, args),
        "getuser" => get_user(ctx, &args[2]),
        "deluser" => delete_users(ctx, &args[2..]),
        "list" => {
            let lines: Vec<String> = list_lines(ctx);
            ctx.out.array(lines.len());
            lines.iter().for_each(|line| ctx.out.bulk(line.as_bytes()));
        }
        "users" => {
            let names: Vec<String> = ctx
                .server
                .acl
                .acl
                .users()
                .map(|u| u.name().to_string())
                .collect();
            ctx.out.array(names.len());
            names.iter().for_each(|name| ctx.out.bulk(name.as_bytes()));
        }
        "whoami" => {
            let name = ctx.client.user.clone();
            ctx.out.bulk(name.as_bytes());
        }
        "cat" => categories(ctx, args.get(2)),
        "genpass" => generate_password(ctx, args.get(2)),
        "log" => log(ctx, args.get(2)),
        "dryrun" => dry_run(ctx, args),
        "save" => save(ctx),
        "load" => load(ctx),
        _ => {
            ctx.out.array(ACL_HELP.len());
            ACL_HELP.iter().for_each(|line| ctx.out.simple(line));
        }
    }
}

fn set_user(ctx: &mut Ctx, args: &[Bytes]) {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    if name.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
        return ctx.error("ERR Usernames can't contain spaces or null characters");
    }
    let rules: Vec<String> = args[3..]
        .iter()
        .map(|rule| String::from_utf8_lossy(rule).into_owned())
        .collect();
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    match ctx.server.acl.acl.set_user(&name, &rules) {
        Ok(()) => {
            close_revoked_subscribers(ctx, &name);
            ctx.out.ok()
        }
        Err(error) if error.reason == amber_acl::RuleError::UnmatchedParenthesis => {
            ctx.error(&format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                error.rule
            ))
        }
        Err(error) => ctx.error(&format!(
            "ERR Error in ACL SETUSER modifier '{}': {}",
            error.rule, error.reason
        )),
    }
}

/// Closes the connections of `name` subscribed to a channel or pattern it may no longer use
/// (Redis's `ACLKillPubsubClientsIfNeeded`).
fn close_revoked_subscribers(ctx: &mut Ctx, name: &str) {
    let Some(user) = ctx.server.acl.acl.user(name) else {
        return;
    };
    let root = &user.selectors()[0];
    if root.allows_all_channels() {
        return;
    }
    let pubsub = &ctx.server.pubsub;
    let revoked: Vec<u64> = ctx
        .server
        .clients
        .iter()
        .filter(|(id, info)| {
            let info = info.borrow();
            info.user == name
                && info.subscriptions != (0, 0, 0)
                && pubsub
                    .subscriptions_of(**id)
                    .iter()
                    .any(|(channel, pattern)| !root.channel_allowed(channel, *pattern))
        })
        .map(|(id, _)| *id)
        .collect();
    close_connections(ctx, &revoked);
}

/// Closes these connections (the caller's own once it has its reply).
fn close_connections(ctx: &mut Ctx, ids: &[u64]) {
    for id in ids {
        if *id == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else if let Some(info) = ctx.server.clients.get(id) {
            let mut info = info.borrow_mut();
            info.killed = true;
            info.kill.notify_one();
        }
    }
}

/// `ACL GETUSER`: flags, password digests, the root selector's commands, keys and channels,
/// and the other selectors.
fn get_user(ctx: &mut Ctx, name: &[u8]) {
    let name = String::from_utf8_lossy(name);
    let acl = &ctx.server.acl.acl;
    let Some(user) = acl.user(&name) else {
        return ctx.out.null();
    };
    let catalog = acl.catalog();
    let flags: Vec<&str> = user.flags();
    let passwords: Vec<String> = user.password_hashes().to_vec();
    let describe = |selector: &Selector| {
        (
            selector.describe_commands(catalog),
            selector.describe_keys(),
            selector.describe_channels(),
        )
    };
    let root = describe(&user.selectors()[0]);
    let others: Vec<(String, String, String)> =
        user.selectors()[1..].iter().map(describe).collect();
    let out = &mut *ctx.out;
    out.map(6);
    out.bulk(b"flags");
    out.array(flags.len());
    flags.iter().for_each(|flag| out.bulk(flag.as_bytes()));
    out.bulk(b"passwords");
    out.array(passwords.len());
    passwords
        .iter()
        .for_each(|digest| out.bulk(digest.as_bytes()));
    write_selector(out, &root, false);
    out.bulk(b"selectors");
    out.array(others.len());
    for selector in &others {
        write_selector(out, selector, true);
    }
}

fn write_selector(
    out: &mut amber_protocol::ReplyWriter,
    (commands, keys, channels): &(String, String, String),
    own_map: bool,
) {
    if own_map {
        out.map(3);
    }
    for (field, value) in [
        ("commands", commands),
        ("keys", keys),
        ("channels", channels),
    ] {
        out.bulk(field.as_bytes());
        out.bulk(value.as_bytes());
    }
}

fn delete_users(ctx: &mut Ctx, names: &[Bytes]) {
    if names.iter().any(|name| name.as_ref() == b"default") {
        return ctx.error("ERR The 'default' user cannot be removed");
    }
    let mut deleted = 0;
    for name in names {
        let name = String::from_utf8_lossy(name);
        if ctx.server.acl.acl.delete_user(&name) {
            deleted += 1;
            disconnect_user(ctx, &name);
        }
    }
    ctx.out.integer(deleted);
}

/// Closes the connections authenticated as `name` (after this reply, for the caller's own).
fn disconnect_user(ctx: &mut Ctx, name: &str) {
    let ids: Vec<u64> = ctx
        .server
        .clients
        .iter()
        .filter(|(_, info)| info.borrow().user == name)
        .map(|(id, _)| *id)
        .collect();
    close_connections(ctx, &ids);
}

/// Every user as an ACL file line.
fn list_lines(ctx: &Ctx) -> Vec<String> {
    let acl = &ctx.server.acl.acl;
    acl.users()
        .map(|user: &User| format!("user {} {}", user.name(), user.describe(acl.catalog())))
        .collect()
}

fn categories(ctx: &mut Ctx, category: Option<&Bytes>) {
    let Some(category) = category else {
        ctx.out.array(CATEGORY_NAMES.len());
        CATEGORY_NAMES
            .iter()
            .for_each(|name| ctx.out.bulk(name.as_bytes()));
        return;
    };
    let Some(wanted) = Categories::named(&String::from_utf8_lossy(category)) else {
        return ctx.error(&format!(
            "ERR Unknown category '{}'",
            String::from_utf8_lossy(category)
        ));
    };
    let names: Vec<String> = ctx
        .server
        .acl
        .acl
        .catalog()
        .entries()
        .filter(|(_, entry)| entry.categories.contains(wanted))
        .map(|(_, entry)| entry.name.clone())
        .collect();
    ctx.out.array(names.len());
    names.iter().for_each(|name| ctx.out.bulk(name.as_bytes()));
}

/// `ACL GENPASS [bits]`: random hex from the kernel's generator, 4 bits per character.
fn generate_password(ctx: &mut Ctx, bits: Option<&Bytes>) {
    let bits = match bits.map(|b| amber_protocol::parse_i64(b)) {
        None => 256,
        Some(Some(bits)) if (1..=4096).contains(&bits) => bits as usize,
        Some(_) => {
            return ctx.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
        }
    };
    let chars = bits.div_ceil(4);
    let mut random = vec![0u8; chars.div_ceil(2)];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random));
    if read.is_err() {
        return ctx.error("ERR Unable to read random bytes");
    }
    let mut hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    ctx.out.bulk(hex.as_bytes());
}

fn log(ctx: &mut Ctx, option: Option<&Bytes>) {
    let count = match option {
        None => usize::MAX,
        Some(arg) if is(arg, "reset") => {
            ctx.server.acl.log.clear();
            return ctx.out.ok();
        }
        // As Redis, a negative count shows nothing.
        Some(arg) => match amber_protocol::parse_i64(arg) {
            Some(n) => n.max(0) as usize,
            None => return ctx.error(super::errors::NOT_INTEGER),
        },
    };
    let entries: Vec<[(&str, String); 7]> = ctx
        .server
        .acl
        .log
        .iter()
        .take(count)
        .map(|entry| {
            [
                ("count", entry.count.to_string()),
                ("reason", entry.reason.to_string()),
                ("context", entry.context.to_string()),
                ("object", entry.object.clone()),
                ("username", entry.username.clone()),
                (
                    "age-seconds",
                    format!("{:.3}", entry.updated.elapsed().as_secs_f64()),
                ),
                ("client-info", entry.client_info.clone()),
            ]
        })
        .collect();
    ctx.out.array(entries.len());
    for entry in &entries {
        ctx.out.map(entry.len());
        for (field, value) in entry {
            ctx.out.bulk(field.as_bytes());
            if *field == "count" {
                ctx.out.integer(value.parse().unwrap_or(0));
            } else if *field == "age-seconds" {
                ctx.out.double(value.parse().unwrap_or(0.0));
            } else {
                ctx.out.bulk(value.as_bytes());
            }
        }
    }
}

/// `ACL DRYRUN user command [arg ...]`: whether the user could run it, without running it.
fn dry_run(ctx: &mut Ctx, args: &[Bytes]) {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    if ctx.server.acl.acl.user(&name).is_none() {
        return ctx.error(&format!("ERR User '{name}' not found"));
    }
    let command = &args[3..];
    let Some(spec) = super::lookup(&command[0]) else {
        return ctx.error(&format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&command[0])
        ));
    };
    if crate::acl::catalog_command(ctx.server.acl.acl.catalog(), spec, command).is_none() {
        // As Redis's lookupCommand: a container needs a subcommand it has.
        return ctx.error(&format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&command[0])
        ));
    }
    if !spec.accepts(command.len()) {
        return ctx.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        ));
    }
    match crate::acl::explain(ctx, &name, spec, command) {
        None => ctx.out.ok(),
        Some(reason) => ctx.out.bulk(reason.as_bytes()),
    }
}

fn save(ctx: &mut Ctx) {
    let path = ctx.server.config.get("aclfile").to_string();
    if path.is_empty() {
        return ctx.error(NO_ACL_FILE);
    }
    let text: String = list_lines(ctx)
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    let target = std::path::Path::new(&path);
    let temp = target.with_extension(format!("tmp-{}", std::process::id()));
    let written = amber_snapshot::durable::replace_with(target, &temp, |out| {
        std::io::Write::write_all(out, text.as_bytes())
    });
    match written {
        Ok(()) => ctx.out.ok(),
        Err(error) => {
            crate::warning!("Opening temp ACL file for ACL SAVE: {error}");
            ctx.error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

fn load(ctx: &mut Ctx) {
    let path = ctx.server.config.get("aclfile").to_string();
    if path.is_empty() {
        return ctx.error(NO_ACL_FILE);
    }
    match crate::acl::load_file(ctx.server, std::path::Path::new(&path), Some(ctx.client.id)) {
        Ok(()) => {
            ctx.client.close_after_reply = true;
            ctx.out.ok()
        }
        Err(message) => ctx.error(&format!("ERR {message}")),
    }
}
