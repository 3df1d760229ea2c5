//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, CLIENT.

use amber_protocol::{Protocol, parse_i64};
use bytes::Bytes;

use super::keys::{DbIndexError, parse_db_index};
use super::{Ctx, errors, is, subcommand_arity, unknown_subcommand};
use crate::server::ClientInfo;

/// `PING [message]`
pub(super) fn ping(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len() <= 2 && super::pubsub_cmds::subscribed_ping(ctx, args) {
        return;
    }
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(&args[1]),
        _ => ctx.error("ERR wrong number of arguments for 'ping' command"),
    }
}

/// `ECHO message`
pub(super) fn echo(ctx: &mut Ctx, args: &[Bytes]) {
    ctx.out.bulk(&args[1]);
}

/// `QUIT`: replies OK, then the connection closes.
pub(super) fn quit(ctx: &mut Ctx, _args: &[Bytes]) {
    ctx.out.ok();
    ctx.client.close_after_reply = true;
}

/// Checks a user's password; on success the connection runs as that user. A failure is
/// logged in `ACL LOG` (reason `auth`).
fn check_password(ctx: &mut Ctx, user: &[u8], password: &[u8]) -> bool {
    let name = String::from_utf8_lossy(user).into_owned();
    if ctx.server.acl.acl.authenticate(&name, password) {
        ctx.client.authenticated = true;
        ctx.client.info.borrow_mut().user = name.clone();
        ctx.client.user = name;
        return true;
    }
    let event = crate::acl::LogEntry {
        count: 1,
        reason: "auth",
        context: if ctx.client.transaction.is_some() {
            "multi"
        } else {
            "toplevel"
        },
        object: "AUTH".into(),
        username: name,
        updated: std::time::Instant::now(),
        client_info: describe(&ctx.client.info.borrow()),
    };
    let max_len = ctx.server.config.get_i64("acllog-max-len").max(0) as usize;
    ctx.server.acl.log_event(event, max_len);
    false
}

/// `AUTH [username] password`
pub(super) fn auth(ctx: &mut Ctx, args: &[Bytes]) {
    if args.len() > 3 {
        ctx.error(errors::SYNTAX);
        return;
    }
    let default_nopass = ctx
        .server
        .acl
        .acl
        .user("default")
        .is_some_and(amber_acl::User::nopass);
    if args.len() == 2 && default_nopass {
        ctx.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
        return;
    }
    let (user, password): (&[u8], &[u8]) = if args.len() == 3 {
        (&args[1], &args[2])
    } else {
        (b"default", &args[1])
    };
    if check_password(ctx, user, password) {
        ctx.out.ok();
    } else {
        ctx.error(errors::WRONGPASS);
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
pub(super) fn hello(ctx: &mut Ctx, args: &[Bytes]) {
    let mut version = None;
    if let Some(arg) = args.get(1) {
        match parse_i64(arg) {
            Some(v) if v == 2 || v == 3 => version = Some(v),
            Some(_) => {
                ctx.error("NOPROTO unsupported protocol version");
                return;
            }
            None => {
                ctx.error("ERR Protocol version is not an integer or out of range");
                return;
            }
        }
    }
    let mut name = None;
    let mut credentials = None;
    let mut i = 2;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        if is(&args[i], "auth") && remaining >= 2 {
            credentials = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "setname") && remaining >= 1 {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            ctx.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
            return;
        }
    }
    if let Some((user, password)) = credentials
        && !check_password(ctx, &user, &password)
    {
        ctx.error(errors::WRONGPASS);
        return;
    }
    if !ctx.client.authenticated {
        ctx.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some(name) = name {
        if !valid_client_name(&name) {
            ctx.error(BAD_NAME);
            return;
        }
        ctx.client.info.borrow_mut().name = name.to_vec();
    }
    if let Some(version) = version {
        ctx.out.set_protocol(if version == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        });
        ctx.client.info.borrow_mut().resp = version as u8;
    }
    let proto = ctx.client.info.borrow().resp;
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(crate::REDIS_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.integer(i64::from(proto));
    ctx.out.bulk(b"id");
    ctx.out.integer(ctx.client.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
}

/// `SELECT index`
pub(super) fn select(ctx: &mut Ctx, args: &[Bytes]) {
    match parse_db_index(&args[1], ctx.server.keyspace.db_count()) {
        Err(DbIndexError::NotInteger) => ctx.error(errors::NOT_INTEGER),
        Err(DbIndexError::OutOfRange) => ctx.error(errors::DB_RANGE),
        Ok(index) => {
            ctx.client.db = index;
            ctx.client.info.borrow_mut().db = index;
            ctx.out.ok();
        }
    }
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Print this help.",
];

/// `CLIENT ID|GETNAME|SETNAME|LIST|INFO|KILL|UNBLOCK|HELP`
pub(super) fn client(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = args[1].to_ascii_lowercase();
    let arity_ok = match sub.as_slice() {
        b"id" | b"getname" | b"info" | b"help" => args.len() == 2,
        b"setname" => args.len() == 3,
        b"list" => true,
        b"kill" => args.len() >= 3,
        b"unblock" => args.len() == 3 || args.len() == 4,
        b"reply" => args.len() == 3,
        b"pause" => args.len() == 3 || args.len() == 4,
        b"unpause" => args.len() == 2,
        b"no-evict" => args.len() == 3,
        b"tracking" | b"caching" => args.len() >= 3,
        b"getredir" | b"trackinginfo" => args.len() == 2,
        _ => {
            unknown_subcommand(ctx, "client", &args[1]);
            return;
        }
    };
    if !arity_ok {
        subcommand_arity(ctx, "client", &args[1]);
        return;
    }
    match sub.as_slice() {
        b"id" => ctx.out.integer(ctx.client.id as i64),
        b"getname" => {
            let name = ctx.client.info.borrow().name.clone();
            if name.is_empty() {
                ctx.out.null()
            } else {
                ctx.out.bulk(&name)
            }
        }
        b"setname" => {
            if !valid_client_name(&args[2]) {
                ctx.error(BAD_NAME);
                return;
            }
            ctx.client.info.borrow_mut().name = args[2].to_vec();
            ctx.out.ok();
        }
        b"info" => {
            let line = describe(&ctx.client.info.borrow()) + "\n";
            ctx.out.verbatim(b"txt", line.as_bytes());
        }
        b"list" => client_list(ctx, &args[2..]),
        b"kill" => client_kill(ctx, &args[2..]),
        b"unblock" => client_unblock(ctx, &args[2..]),
        b"reply" => client_reply(ctx, &args[2]),
        b"tracking" => super::tracking_cmds::client_tracking(ctx, args),
        b"caching" => super::tracking_cmds::client_caching(ctx, args),
        b"getredir" => super::tracking_cmds::client_getredir(ctx),
        b"trackinginfo" => super::tracking_cmds::client_trackinginfo(ctx),
        b"pause" => client_pause(ctx, &args[2..]),
        b"unpause" => {
            ctx.server.pauses.unpause_clients();
            ctx.out.ok();
        }
        b"no-evict" => {
            let on = if is(&args[2], "on") {
                true
            } else if is(&args[2], "off") {
                false
            } else {
                return ctx.error(errors::SYNTAX);
            };
            ctx.client.info.borrow_mut().no_evict = on;
            ctx.out.ok();
        }
        _ => {
            ctx.out.array(CLIENT_HELP.len());
            CLIENT_HELP.iter().for_each(|line| ctx.out.simple(line));
        }
    }
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`: holds the commands of normal clients (every command,
/// or only writes) for `timeout` milliseconds.
fn client_pause(ctx: &mut Ctx, options: &[Bytes]) {
    let Some(timeout) = parse_i64(&options[0]) else {
        return ctx.error("ERR timeout is not an integer or out of range");
    };
    if timeout < 0 {
        return ctx.error("ERR timeout is negative");
    }
    let all = match options.get(1) {
        None => true,
        Some(mode) if is(mode, "all") => true,
        Some(mode) if is(mode, "write") => false,
        Some(_) => return ctx.error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let until = std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64);
    ctx.server.pauses.pause_clients(until, all);
    ctx.out.ok();
}

/// `CLIENT REPLY ON | OFF | SKIP`: whether this client's replies are sent (ON replies OK;
/// OFF and SKIP reply nothing, and SKIP covers the next command only).
fn client_reply(ctx: &mut Ctx, mode: &[u8]) {
    use super::ReplyMode;
    if super::is(mode, "on") {
        ctx.client.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if super::is(mode, "off") {
        ctx.client.reply_mode = ReplyMode::Off;
    } else if super::is(mode, "skip") {
        if ctx.client.reply_mode == ReplyMode::On {
            ctx.client.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        ctx.error(super::errors::SYNTAX);
    }
}

/// `CLIENT UNBLOCK client-id [TIMEOUT|ERROR]`: 1 if that client was blocked (it then replies
/// as on a timeout, or fails with `-UNBLOCKED`), else 0.
fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) {
    let Ok(id) = ctx.int_arg(&args[0]) else {
        return;
    };
    let fail = match args.get(1) {
        None => false,
        Some(mode) if super::is(mode, "timeout") => false,
        Some(mode) if super::is(mode, "error") => true,
        Some(_) => {
            return ctx.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    };
    let target = u64::try_from(id)
        .ok()
        .filter(|&id| ctx.server.is_blocked(id));
    let Some(info) = target.and_then(|id| ctx.server.clients.get(&id)) else {
        return ctx.out.integer(0);
    };
    let mut info = info.borrow_mut();
    info.unblock = Some(fail.then_some("UNBLOCKED client unblocked via CLIENT UNBLOCK"));
    info.wake.notify_one();
    drop(info);
    ctx.out.integer(1);
}

/// `RESET`: the connection back to the state of a new one (no transaction, nothing watched,
/// database 0, RESP2, no name, authenticated only if no password is needed); replies `RESET`.
pub(super) fn reset(ctx: &mut Ctx, _args: &[Bytes]) {
    super::pubsub_cmds::unsubscribe_all(ctx.server, ctx.client);
    stop_monitoring(ctx.server, ctx.client.id);
    ctx.server.disable_tracking(ctx.client.id);
    ctx.client.transaction = None;
    super::transactions::unwatch_all(ctx);
    ctx.client.db = 0;
    ctx.client.authenticated = ctx.server.default_user_open();
    ctx.client.user = "default".to_string();
    ctx.client.info.borrow_mut().user = "default".to_string();
    ctx.out.set_protocol(Protocol::Resp2);
    {
        let mut info = ctx.client.info.borrow_mut();
        info.db = 0;
        info.resp = 2;
        info.name.clear();
    }
    ctx.out.simple("RESET");
}

/// `MONITOR`: from now on the connection is shown every command the server executes.
pub(super) fn monitor(ctx: &mut Ctx, _args: &[Bytes]) {
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR MONITOR isn't allowed for DENY BLOCKING client");
    }
    if !ctx.server.links.monitors.contains(&ctx.client.id) {
        ctx.server.links.monitors.push(ctx.client.id);
        ctx.client.info.borrow_mut().flags = 'O';
    }
    ctx.out.ok();
}

/// Takes a client out of MONITOR mode (RESET, disconnection).
pub(crate) fn stop_monitoring(server: &mut crate::server::Server, client: u64) {
    if let Some(position) = server.links.monitors.iter().position(|&id| id == client) {
        server.links.monitors.remove(position);
        if let Some(info) = server.clients.get(&client) {
            info.borrow_mut().flags = 'N';
        }
    }
}

/// One `CLIENT LIST` line, with Redis 7.0's fields.
pub(crate) fn describe(info: &ClientInfo) -> String {
    let now = std::time::Instant::now();
    // As Redis: `S`/`O` (replica, monitor), `P` (subscribed), `b` (blocked), `U` (Unix
    // socket), in that order; `N` when there is none.
    let mut flags = String::new();
    if matches!(info.flags, 'S' | 'O' | 'M') {
        flags.push(info.flags);
    }
    if is_subscriber(info) {
        flags.push('P');
    }
    if info.flags == 'b' {
        flags.push('b');
    }
    if let Some(mode) = &info.tracking {
        flags.push('t');
        if mode.broken_redirect {
            flags.push('R');
        }
        if mode.bcast {
            flags.push('B');
        }
    }
    if info.unix {
        flags.push('U');
    }
    if info.no_evict {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    // A client waiting for input keeps its state (and any MULTI queue) parked in its info.
    let transaction = info
        .busy
        .parked
        .as_ref()
        .and_then(|state| state.transaction.as_ref());
    let multi = transaction.map_or(-1, |t| t.queued.len() as i64);
    let multi_memory = transaction.map_or(0, |t| t.memory());
    // Replies are written at the end of each batch: what waits is the outbox (messages pushed
    // to the client), shown as Redis's buffer bytes, with `w` in events while it waits.
    let waiting = info.outbox.len();
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={multi} qbuf={} qbuf-free={} argv-mem={} multi-mem={multi_memory} rbs={} rbp={} obl={waiting} oll=0 omem={} tot-mem={} events={} cmd={} user={} redir={} resp={}",
        info.id,
        info.addr,
        info.laddr,
        info.fd,
        String::from_utf8_lossy(&info.name),
        now.duration_since(info.created).as_secs(),
        now.duration_since(info.last_interaction).as_secs(),
        flags,
        info.db,
        info.subscriptions.0,
        info.subscriptions.1,
        info.subscriptions.2,
        info.query_buffer,
        info.query_buffer_capacity.saturating_sub(info.query_buffer),
        info.argv_memory,
        info.reply_buffer,
        info.reply_peak,
        info.outbox.capacity(),
        info.buffer_memory(),
        if waiting > 0 { "rw" } else { "r" },
        if info.last_command.is_empty() {
            "NULL"
        } else {
            info.last_command
        },
        info.user,
        info.tracking
            .as_ref()
            .map_or(-1, |mode| mode.redirect as i64),
        info.resp,
    )
}

/// Whether a client is subscribed to a channel or a pattern (Redis's `CLIENT_PUBSUB`).
fn is_subscriber(info: &ClientInfo) -> bool {
    info.subscriptions.0 + info.subscriptions.1 + info.subscriptions.2 > 0
}

/// The client's type, as `CLIENT LIST TYPE` and `CLIENT KILL TYPE` select it.
fn client_type(info: &ClientInfo) -> &'static str {
    if info.flags == 'S' {
        "replica"
    } else if info.flags == 'M' {
        "master"
    } else if is_subscriber(info) {
        "pubsub"
    } else {
        "normal"
    }
}

/// A client type as given (`slave` is `replica`); `None` for an unknown one.
fn parse_client_type(text: &[u8]) -> Option<&'static str> {
    match text.to_ascii_lowercase().as_slice() {
        b"normal" => Some("normal"),
        b"master" => Some("master"),
        b"replica" | b"slave" => Some("replica"),
        b"pubsub" => Some("pubsub"),
        _ => None,
    }
}

fn client_list(ctx: &mut Ctx, options: &[Bytes]) {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<&'static str> = None;
    let mut i = 0;
    while i < options.len() {
        if is(&options[i], "type") && i + 1 < options.len() {
            let Some(parsed) = parse_client_type(&options[i + 1]) else {
                ctx.error(&format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(&options[i + 1])
                ));
                return;
            };
            kind = Some(parsed);
            i += 2;
        } else if is(&options[i], "id") && i + 1 < options.len() {
            let mut list = Vec::new();
            for arg in &options[i + 1..] {
                match parse_i64(arg) {
                    Some(id) if id > 0 => list.push(id as u64),
                    _ => {
                        ctx.error("ERR Invalid client ID");
                        return;
                    }
                }
            }
            ids = Some(list);
            i = options.len();
        } else {
            ctx.error(errors::SYNTAX);
            return;
        }
    }
    let mut text = String::new();
    for (id, info) in &ctx.server.clients {
        let info = info.borrow();
        let type_matches = kind.is_none_or(|kind| client_type(&info) == kind);
        // A connection already closed (its task not yet run) is gone, as Redis frees it.
        let gone = info.killed && *id != ctx.client.id;
        if type_matches && !gone && ids.as_ref().is_none_or(|wanted| wanted.contains(id)) {
            text.push_str(&describe(&info));
            text.push('\n');
        }
    }
    ctx.out.verbatim(b"txt", text.as_bytes());
}

/// One condition of `CLIENT KILL <filter> <value> ...`.
type ClientFilter = Box<dyn Fn(&ClientInfo) -> bool>;

fn client_kill(ctx: &mut Ctx, options: &[Bytes]) {
    if options.len() == 1 {
        let addr = String::from_utf8_lossy(&options[0]).into_owned();
        let killed = kill_matching(ctx, |info| info.addr == addr, false);
        if killed == 0 {
            ctx.error("ERR No such client");
        } else {
            ctx.out.ok();
        }
        return;
    }
    if !options.len().is_multiple_of(2) {
        ctx.error(errors::SYNTAX);
        return;
    }
    let mut filters: Vec<ClientFilter> = Vec::new();
    let mut skip_me = true;
    for pair in options.chunks(2) {
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        if is(&pair[0], "id") {
            let Some(id) = parse_i64(&pair[1]).filter(|id| *id > 0) else {
                ctx.error("ERR client-id should be greater than 0");
                return;
            };
            filters.push(Box::new(move |info| info.id == id as u64));
        } else if is(&pair[0], "addr") {
            filters.push(Box::new(move |info| info.addr == value));
        } else if is(&pair[0], "laddr") {
            filters.push(Box::new(move |info| info.laddr == value));
        } else if is(&pair[0], "user") {
            if ctx.server.acl.acl.user(&value).is_none() {
                ctx.error(&format!("ERR No such user '{value}'"));
                return;
            }
            filters.push(Box::new(move |info| info.user == value));
        } else if is(&pair[0], "type") {
            let Some(kind) = parse_client_type(&pair[1]) else {
                ctx.error(&format!("ERR Unknown client type '{value}'"));
                return;
            };
            filters.push(Box::new(move |info| client_type(info) == kind));
        } else if is(&pair[0], "maxage") {
            let Some(age) = parse_i64(&pair[1]) else {
                ctx.error(errors::NOT_INTEGER);
                return;
            };
            filters.push(Box::new(move |info| {
                info.created.elapsed().as_secs() as i64 >= age
            }));
        } else if is(&pair[0], "skipme") {
            skip_me = match value.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => {
                    ctx.error(errors::SYNTAX);
                    return;
                }
            };
        } else {
            ctx.error(errors::SYNTAX);
            return;
        }
    }
    let killed = kill_matching(ctx, |info| filters.iter().all(|f| f(info)), skip_me);
    ctx.out.integer(killed as i64);
}

fn kill_matching(ctx: &mut Ctx, matches: impl Fn(&ClientInfo) -> bool, skip_me: bool) -> usize {
    let mut killed = 0;
    let mut replicas = Vec::new();
    for (id, info) in &ctx.server.clients {
        let mut info = info.borrow_mut();
        if (skip_me && *id == ctx.client.id) || !matches(&info) {
            continue;
        }
        killed += 1;
        if info.flags == 'S' {
            replicas.push(*id);
        }
        if *id == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else {
            info.killed = true;
            info.kill.notify_one();
        }
    }
    // A killed replica's stream buffer goes at once, as Redis frees the client (its task may
    // be stuck writing to a peer that stopped reading).
    for id in replicas {
        ctx.server.replication.replicas.release(id);
    }
    killed
}
