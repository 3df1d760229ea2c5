//! Access control in the server: the catalog of commands ACL rules name (Redis 7.0.15's
//! commands and categories, plus Amber's own), the users (`amber-acl`), the check every
//! command passes before it runs, and `ACL LOG`.

use std::collections::VecDeque;
use std::time::Instant;

use amber_acl::{Acl, Catalog, Categories, Denial, KeyAccess, Request};
use bytes::Bytes;

use crate::commands::{CommandSpec, Ctx};

/// Every Redis command and subcommand with its ACL categories.
const REDIS_CATEGORIES: &str = include_str!("redis_categories.txt");

/// The error of a command the user may not run, naming it.
pub(crate) fn no_command_permission(name: &str) -> String {
    format!("NOPERM this user has no permissions to run the '{name}' command")
}

/// The error of a key the user may not access.
pub(crate) const NO_KEY_PERMISSION: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// The error of a channel the user may not use.
pub(crate) const NO_CHANNEL_PERMISSION: &str =
    "NOPERM this user has no permissions to access one of the channels used as arguments";

/// Users and the ACL log.
pub(crate) struct AclState {
    /// The users and the catalog.
    pub(crate) acl: Acl,
    /// Denied commands, keys, channels and failed logins, newest first.
    pub(crate) log: VecDeque<LogEntry>,
}

/// One `ACL LOG` entry (similar events within a minute are counted in one).
pub(crate) struct LogEntry {
    /// How many times it happened.
    pub(crate) count: u64,
    /// `command`, `key`, `channel` or `auth`.
    pub(crate) reason: &'static str,
    /// `toplevel`, `multi` or `lua`.
    pub(crate) context: &'static str,
    /// The command, key, channel or user name concerned.
    pub(crate) object: String,
    /// The user.
    pub(crate) username: String,
    /// When it last happened.
    pub(crate) updated: Instant,
    /// `CLIENT INFO` of the client it last happened to.
    pub(crate) client_info: String,
}

impl AclState {
    /// The catalog and the `default` user, with `requirepass` as its password if set.
    pub(crate) fn new(requirepass: Option<&[u8]>) -> AclState {
        let mut state = AclState {
            acl: Acl::new(catalog()),
            log: VecDeque::new(),
        };
        state.set_requirepass(requirepass);
        state
    }

    /// `requirepass`: the default user's only password, or `nopass` when empty (as Redis).
    pub(crate) fn set_requirepass(&mut self, password: Option<&[u8]>) {
        let rules: Vec<String> = match password {
            Some(password) => vec![
                "resetpass".into(),
                format!(">{}", String::from_utf8_lossy(password)),
            ],
            None => vec!["nopass".into()],
        };
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        let _ = self.acl.set_user("default", &rules);
    }

    /// Records a denial or a failed login in `ACL LOG`, keeping at most `max_len` entries.
    pub(crate) fn log_event(&mut self, event: LogEntry, max_len: usize) {
        if let Some(similar) = self.log.iter_mut().find(|known| {
            known.reason == event.reason
                && known.context == event.context
                && known.object == event.object
                && known.username == event.username
                && known.updated.elapsed().as_secs() < 60
        }) {
            similar.count += 1;
            similar.updated = event.updated;
            similar.client_info = event.client_info;
            return;
        }
        self.log.push_front(event);
        self.log.truncate(max_len);
    }
}

/// Redis's commands and categories, then Amber's own commands (categories from their flags).
fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for line in REDIS_CATEGORIES.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let categories = words
            .filter_map(Categories::named)
            .fold(Categories::default(), Categories::with);
        let parent = name
            .split_once('|')
            .and_then(|(container, _)| catalog.id(container));
        catalog.add(name, categories, parent);
    }
    for spec in crate::commands::all_commands() {
        if catalog.id(spec.name).is_none() {
            catalog.add(spec.name, implicit_categories(spec), None);
        }
    }
    catalog
}

/// The categories Redis derives from a command's flags (for Amber's own commands).
fn implicit_categories(spec: &CommandSpec) -> Categories {
    let named = |name| Categories::named(name).unwrap_or_default();
    let mut categories = if spec.is_write() {
        named("write")
    } else {
        named("read")
    };
    if spec.is_admin() {
        categories = categories.with(named("admin")).with(named("dangerous"));
    }
    categories.with(if spec.is_fast() {
        named("fast")
    } else {
        named("slow")
    })
}

/// Checks a command against the client's user, before it runs or is queued: `Err` with the
/// `NOPERM` reply (the event is logged).
pub(crate) fn check(ctx: &mut Ctx, spec: &CommandSpec, args: &[Bytes]) -> Result<(), String> {
    let context = if ctx.client.in_exec || ctx.client.transaction.is_some() {
        "multi"
    } else {
        "toplevel"
    };
    check_in(ctx, spec, args, context)
}

/// [`check`] for a given context (`lua` for a command a script calls).
pub(crate) fn check_in(
    ctx: &mut Ctx,
    spec: &CommandSpec,
    args: &[Bytes],
    context: &'static str,
) -> Result<(), String> {
    let generation = ctx.server.acl.acl.generation();
    let cached = ctx.client.acl_open.as_ref();
    if cached.is_some_and(|(at, user)| *at == generation && *user == ctx.client.user) {
        return Ok(());
    }
    if open_user(ctx.server, &ctx.client.user) {
        ctx.client.acl_open = Some((generation, ctx.client.user.clone()));
        return Ok(());
    }
    let Err(refusal) = evaluate(ctx.server, &ctx.client.user, spec, args) else {
        return Ok(());
    };
    let user = ctx.client.user.clone();
    let event = LogEntry {
        count: 1,
        reason: refusal.reason,
        context,
        object: refusal.object,
        username: user,
        updated: Instant::now(),
        client_info: crate::commands::describe_client(&ctx.client.info.borrow()),
    };
    let max_len = ctx.server.config.get_i64("acllog-max-len").max(0) as usize;
    ctx.server.acl.log_event(event, max_len);
    Err(refusal.message)
}

/// Why `ACL DRYRUN` says `user` could not run a command, or `None` if it could.
pub(crate) fn explain(
    ctx: &mut Ctx,
    user: &str,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<String> {
    let refusal = evaluate(ctx.server, user, spec, args).err()?;
    Some(match refusal.reason {
        "command" => format!(
            "This user has no permissions to run the '{}' command",
            refusal.object
        ),
        "key" => format!(
            "This user has no permissions to access the '{}' key",
            refusal.object
        ),
        _ => format!(
            "This user has no permissions to access the '{}' channel",
            refusal.object
        ),
    })
}

/// Whether `user` may run the call (`redis.acl_check_cmd`; nothing is logged).
pub(crate) fn permitted(
    server: &crate::server::Server,
    user: &str,
    spec: &CommandSpec,
    args: &[Bytes],
) -> bool {
    evaluate(server, user, spec, args).is_ok()
}

/// The catalog id and name of a call: `config|get` for a container's subcommand, the
/// command's own otherwise; `None` for a container without a subcommand it has (Redis's
/// `lookupCommand` finds no command then).
pub(crate) fn catalog_command(
    catalog: &Catalog,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<(usize, String)> {
    let id = catalog.id(spec.name)?;
    if catalog.entry(id).subcommands.is_empty() {
        return Some((id, spec.name.to_string()));
    }
    let name = format!(
        "{}|{}",
        spec.name,
        String::from_utf8_lossy(args.get(1)?).to_ascii_lowercase()
    );
    Some((catalog.id(&name)?, name))
}

/// A refused command: the log's reason and object, and the reply.
struct Refusal {
    reason: &'static str,
    object: String,
    message: String,
}

/// Whether `user` exists and may run every command on every key and channel.
fn open_user(server: &crate::server::Server, user: &str) -> bool {
    server
        .acl
        .acl
        .user(user)
        .is_some_and(|user| user.selectors()[0].unrestricted())
}

/// Checks a call against `user`'s selectors.
fn evaluate(
    server: &crate::server::Server,
    user: &str,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Result<(), Refusal> {
    let acl = &server.acl.acl;
    let user = acl.user(user);
    if user.is_some_and(|user| user.selectors()[0].unrestricted()) {
        return Ok(());
    }
    let catalog = acl.catalog();
    let (command, full_name) = catalog_command(catalog, spec, args)
        .unwrap_or_else(|| (catalog.id(spec.name).unwrap_or(0), spec.name.to_string()));
    let full_name = full_name.as_str();
    let Some(user) = user else {
        // A deleted user's connection is being closed: nothing more runs.
        return Err(Refusal {
            reason: "command",
            object: full_name.to_string(),
            message: no_command_permission(full_name),
        });
    };
    // A shard channel sits where a key would (for cluster routing) but is not a key.
    let shard_channels = matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe");
    let keys: Vec<(&[u8], KeyAccess)> = if shard_channels {
        Vec::new()
    } else {
        crate::commands::keys_and_flags(spec.name, args)
            .into_iter()
            .map(|(at, flags)| {
                let access = KeyAccess {
                    read: flags.reads(),
                    write: flags.writes(),
                };
                (args[at].as_ref(), access)
            })
            .collect()
    };
    let request = Request {
        command,
        first_arg: args.get(1).map(|arg| arg.as_ref()),
        // Amber lets SHUTDOWN run before authentication, which Redis does not; ACL still
        // checks it, as Redis does.
        no_auth: spec.is_no_auth() && spec.name != "shutdown",
        keys,
        channels: channel_args(spec.name, args),
    };
    let Err(denial) = user.check(&request) else {
        return Ok(());
    };
    Err(match denial {
        Denial::Command => Refusal {
            reason: "command",
            object: full_name.to_string(),
            message: no_command_permission(full_name),
        },
        Denial::Key(index) => Refusal {
            reason: "key",
            object: String::from_utf8_lossy(request.keys[index].0).into_owned(),
            message: NO_KEY_PERMISSION.to_string(),
        },
        Denial::Channel(index) => Refusal {
            reason: "channel",
            object: String::from_utf8_lossy(request.channels[index].0).into_owned(),
            message: NO_CHANNEL_PERMISSION.to_string(),
        },
    })
}

/// Applies the `user` lines of the config file, or loads `aclfile` (not both, as Redis).
pub(crate) fn load_at_startup(server: &mut crate::server::Server) -> Result<(), String> {
    let users = server.config.users.clone();
    let aclfile = server.config.get("aclfile").to_string();
    if !users.is_empty() && !aclfile.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    if !aclfile.is_empty() {
        return load_file(server, std::path::Path::new(&aclfile), None);
    }
    let text: String = users
        .iter()
        .map(|words| format!("user {}\n", words.join(" ")))
        .collect();
    let loaded = server.acl.acl.parse_file(&text).map_err(|(line, reason)| {
        format!(
            "Error in user declaration '{}': {reason}",
            users[line - 1].join(" ")
        )
    })?;
    server.acl.acl.replace_users(loaded);
    Ok(())
}

/// Loads `path` as the ACL file, replacing every user (ACL LOAD, start-up); on an error
/// nothing changes and the message names the line. Every connection is closed, as Redis
/// frees every user (the caller's own once it has its reply).
pub(crate) fn load_file(
    server: &mut crate::server::Server,
    path: &std::path::Path,
    caller: Option<u64>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "Error loading ACLs, opening file '{}': {error}",
            path.display()
        )
    })?;
    let loaded = server
        .acl
        .acl
        .parse_file(&text)
        .map_err(|(line, reason)| format!("/{}:{line}: {reason}", path.display()))?;
    server.acl.acl.replace_users(loaded);
    for (id, info) in &server.clients {
        let mut info = info.borrow_mut();
        if info.flags != 'S' && info.flags != 'M' && Some(*id) != caller {
            info.killed = true;
            info.kill.notify_one();
        }
    }
    Ok(())
}

/// The channels a Pub/Sub command names, each with whether it is a pattern.
fn channel_args<'a>(name: &str, args: &'a [Bytes]) -> Vec<(&'a [u8], bool)> {
    match name {
        "publish" | "spublish" => args
            .get(1)
            .map(|c| vec![(c.as_ref(), false)])
            .unwrap_or_default(),
        "subscribe" | "ssubscribe" => args[1..].iter().map(|c| (c.as_ref(), false)).collect(),
        "psubscribe" => args[1..].iter().map(|c| (c.as_ref(), true)).collect(),
        _ => Vec::new(),
    }
}
