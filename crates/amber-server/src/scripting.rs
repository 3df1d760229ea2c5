//! Scripts and Functions in the server: the engine (from `amber-scripting`), the client a
//! script's commands run as, the checks Redis makes before a script runs and before each
//! command it calls, and the state of the running script (`SCRIPT KILL`, `FUNCTION STATS`,
//! `-BUSY`).

use std::time::Instant;

use amber_protocol::{Frame, Protocol, ReplyWriter};
use amber_scripting::{Engine, Host, LogLevel, ScriptError, ScriptFlags};
use bytes::Bytes;

use crate::commands::{ClientState, Ctx};
use crate::server::Server;

/// The id of the client scripts run their commands as.
pub(crate) const SCRIPT_CLIENT_ID: u64 = u64::MAX - 1;

/// The scripting state of the server.
pub(crate) struct Scripting {
    /// The interpreter; `None` while a script runs (it is lent to the run).
    pub(crate) engine: Option<Engine>,
    /// The client a script's commands run as; `None` while a script runs.
    client: Option<ClientState>,
    /// The script running now, if any.
    pub(crate) running: Option<RunningScript>,
    /// Where the commands a script calls reply (kept between runs: no allocation per run).
    replies: ReplyWriter,
    /// Forked Lua debugging sessions not reaped yet.
    pub(crate) debug_children: Vec<amber_snapshot::Child>,
}

/// The script running now.
pub(crate) struct RunningScript {
    /// The script's SHA1 or the function's name.
    pub(crate) name: ScriptName,
    /// The `FCALL` that started a function (`FUNCTION STATS`), copied once it runs past
    /// `busy-reply-threshold` (before, no other client can ask); empty for a script.
    pub(crate) command: Vec<Bytes>,
    /// When it started.
    pub(crate) started: Instant,
    /// Started by `EVAL`/`EVALSHA` rather than `FCALL`.
    pub(crate) eval: bool,
    /// A write ran: the script can no longer be killed.
    pub(crate) wrote: bool,
    /// Sent by this replica's master: never killed.
    pub(crate) from_master: bool,
    /// Libraries and functions loaded (`FUNCTION STATS` while the engine is lent to the run).
    pub(crate) functions_count: (usize, usize),
    /// Declared `allow-oom`: may write when memory is over `maxmemory`.
    pub(crate) allow_oom: bool,
    /// `SCRIPT KILL` or `FUNCTION KILL` asked it to stop.
    pub(crate) kill_requested: bool,
    /// It ran past `busy-reply-threshold`: other clients get `-BUSY`.
    pub(crate) busy: bool,
}

impl Scripting {
    /// A fresh interpreter with no script or library.
    pub(crate) fn new() -> Scripting {
        let engine = Engine::new(Box::new(log_from_script))
            .unwrap_or_else(|error| panic!("the Lua interpreter could not start: {error}"));
        let info = crate::server::ClientInfo::new(
            SCRIPT_CLIENT_ID,
            String::new(),
            String::new(),
            -1,
            false,
        );
        let mut client = ClientState::connected(
            std::rc::Rc::new(std::cell::RefCell::new(info)),
            SCRIPT_CLIENT_ID,
            true,
            true,
        );
        client.in_exec = true;
        client.in_script = true;
        Scripting {
            engine: Some(engine),
            client: Some(client),
            running: None,
            replies: ReplyWriter::new(Protocol::Resp2),
            debug_children: Vec::new(),
        }
    }

    /// The interpreter, unless a script is running.
    pub(crate) fn engine(&mut self) -> Option<&mut Engine> {
        self.engine.as_mut()
    }
}

fn log_from_script(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Debug => crate::log::Level::Debug,
        LogLevel::Verbose => crate::log::Level::Verbose,
        LogLevel::Notice => crate::log::Level::Notice,
        LogLevel::Warning => crate::log::Level::Warning,
    };
    crate::log::log(level, message);
}

/// Whether the caller's writes are never refused: the master's link and the AOF being loaded
/// (Redis's `mustObeyClient`).
fn obeyed(client: &ClientState) -> bool {
    client.is_master || client.id == crate::commands::LOADING_CLIENT_ID
}

/// What runs: a cached script or a function.
pub(crate) enum Target<'a> {
    /// `EVAL`/`EVALSHA`: the cached script with this SHA1 (lowercase hex).
    Script(&'a [u8; 40]),
    /// `FCALL`: the function with this name.
    Function(&'a str),
}

/// What names the running script in logs and `FUNCTION STATS`.
pub(crate) enum ScriptName {
    /// A script's SHA1, lowercase hex.
    Sha([u8; 40]),
    /// A function's name, as `FCALL` gave it.
    Function(Bytes),
}

impl ScriptName {
    /// The name's text.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            ScriptName::Sha(sha) => sha,
            ScriptName::Function(name) => name,
        }
    }
}

/// Checks Redis makes before a script with `flags` runs (`scriptPrepareForRun`); `Err` is the
/// error reply.
pub(crate) fn check_before_run(
    ctx: &mut Ctx,
    flags: ScriptFlags,
    read_only_command: bool,
) -> Result<(), String> {
    let server = &mut *ctx.server;
    let stale = server
        .replication
        .master
        .as_ref()
        .is_some_and(|link| link.state != crate::replication::LinkState::Connected)
        && !server.settings.replica_serve_stale_data;
    if flags.contains(ScriptFlags::EVAL_COMPAT) {
        if stale {
            return Err(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into(),
            );
        }
        return Ok(());
    }
    if stale && !flags.contains(ScriptFlags::ALLOW_STALE) {
        return Err("MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script.".into());
    }
    if flags.contains(ScriptFlags::NO_WRITES) {
        return Ok(());
    }
    let obeyed = obeyed(ctx.client);
    if server.replication.is_replica() && server.settings.replica_read_only && !obeyed {
        return Err("READONLY Can not run script with write flag on readonly replica".into());
    }
    if !obeyed && let Some(refusal) = server.write_refusal() {
        return Err(if refusal == crate::commands::errors::MISCONF {
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts.".into()
        } else {
            let cause = server.aof.write_error().unwrap_or_default();
            format!(
                "MISCONF Redis is configured to persist data to AOF, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts. AOF error: {cause}"
            )
        });
    }
    if read_only_command {
        return Err("ERR Can not execute a script with write flag using *_ro command.".into());
    }
    if let Some(refusal) = server.replicas_refusal() {
        return Err(refusal.into());
    }
    Ok(())
}

/// Runs a script or function for the caller in `ctx` and writes its reply.
pub(crate) fn run(
    ctx: &mut Ctx,
    target: Target<'_>,
    flags: ScriptFlags,
    read_only_command: bool,
    keys: &[Bytes],
    args: &[Bytes],
    command: &[Bytes],
) {
    let (Some(mut engine), Some(mut client)) = (
        ctx.server.scripting.engine.take(),
        ctx.server.scripting.client.take(),
    ) else {
        ctx.error("ERR scripts cannot run scripts");
        return;
    };
    let (name, eval) = match target {
        Target::Script(sha) => (ScriptName::Sha(*sha), true),
        Target::Function(_) => (ScriptName::Function(command[1].clone()), false),
    };
    ctx.server.scripting.running = Some(RunningScript {
        name,
        command: Vec::new(),
        started: Instant::now(),
        eval,
        wrote: false,
        from_master: obeyed(ctx.client),
        functions_count: engine.functions_count(),
        allow_oom: flags.contains(ScriptFlags::ALLOW_OOM),
        kill_requested: false,
        busy: false,
    });
    client.db = ctx.client.db;
    // The script's commands are checked against its caller's ACL user.
    client.user.clone_from(&ctx.client.user);
    client.is_master = ctx.client.is_master;
    let nested = ctx.server.command.exec_propagation.is_some();
    if !nested {
        ctx.server.begin_exec();
    }
    let read_only = read_only_command
        || (!flags.contains(ScriptFlags::EVAL_COMPAT) && flags.contains(ScriptFlags::NO_WRITES));
    let replies = std::mem::take(&mut ctx.server.scripting.replies);
    let mut host = ScriptHost {
        server: &mut *ctx.server,
        client: &mut client,
        command,
        obeyed: obeyed(ctx.client),
        read_only,
        out: replies,
    };
    let result = match target {
        Target::Script(sha) => engine.eval(&mut host, sha, keys, args, ctx.out),
        Target::Function(name) => engine.call_function(&mut host, name, keys, args, ctx.out),
    };
    let mut replies = host.out;
    replies.buffer().clear();
    ctx.server.scripting.replies = replies;
    ctx.server.command.script_skips = (false, false);
    if !nested {
        ctx.server.end_exec();
    }
    // The script's commands were recorded one by one; the script itself is not.
    ctx.propagate_as(Vec::new());
    let finished = ctx.server.scripting.running.take();
    if finished.is_some_and(|r| r.busy) {
        crate::net::busy::resume_clients(ctx.server);
    }
    ctx.server.scripting.engine = Some(engine);
    ctx.server.scripting.client = Some(client);
    if let Err(ScriptError { message, counted }) = result {
        if counted {
            ctx.out.error(&message);
            ctx.server.command.failed_uncounted = true;
        } else {
            ctx.error(&message);
        }
    }
}

/// The server as a script's [`Host`].
struct ScriptHost<'a> {
    server: &'a mut Server,
    client: &'a mut ClientState,
    /// The command that started the script.
    command: &'a [Bytes],
    /// The caller's writes are never refused (see [`obeyed`]).
    obeyed: bool,
    read_only: bool,
    out: ReplyWriter,
}

impl ScriptHost<'_> {
    /// Redis's checks on a write a script is about to run (`scriptVerifyWriteCommandAllow`).
    fn check_write(&mut self) -> Result<(), String> {
        if self.read_only {
            return Err("Write commands are not allowed from read-only scripts.".into());
        }
        let wrote = self
            .server
            .scripting
            .running
            .as_ref()
            .is_some_and(|r| r.wrote);
        if wrote {
            return Ok(());
        }
        let obeyed = self.obeyed;
        if self.server.replication.is_replica() && self.server.settings.replica_read_only && !obeyed
        {
            return Err("-READONLY You can't write against a read only replica.".into());
        }
        if !obeyed && let Some(refusal) = self.server.write_refusal() {
            return Err(format!("-{refusal}"));
        }
        if let Some(refusal) = self.server.replicas_refusal() {
            return Err(format!("-{refusal}"));
        }
        Ok(())
    }
}

impl ScriptHost<'_> {
    /// Whether a command that may add data is refused for memory (Redis's
    /// `scriptVerifyOOM`): memory was over `maxmemory` when the script started, the script is
    /// not `allow-oom`, did not write yet (it cannot stop half-way) and is not replayed from a
    /// master or the AOF.
    fn over_memory(&self) -> bool {
        let server = &*self.server;
        let Some(running) = server.scripting.running.as_ref() else {
            return false;
        };
        server.settings.maxmemory > 0
            && !self.obeyed
            && !running.allow_oom
            && !running.wrote
            && server.eviction.oom_at_command_start
    }
}

impl ScriptHost<'_> {
    /// Redis's checks before a script's command runs (`scriptCall`): the command, its
    /// arguments, ACL, a stale replica, memory, writes.
    fn admit(
        &mut self,
        args: &[Bytes],
    ) -> Result<
        &'static crate::commands::CommandSpec,
        (Option<&'static crate::commands::CommandSpec>, String),
    > {
        let spec = match crate::commands::lookup(&args[0]) {
            Some(spec) if spec.accepts(args.len()) => spec,
            Some(spec) => {
                return Err((
                    Some(spec),
                    "Wrong number of args calling Redis command from script".into(),
                ));
            }
            None => return Err((None, "Unknown Redis command called from script".into())),
        };
        let refuse = |message: String| Err((Some(spec), message));
        if spec.is_noscript() && !self.server.debug.disable_deny_scripts {
            return refuse("This Redis command is not allowed from script".into());
        }
        if !self.obeyed {
            let mut ctx = Ctx {
                server: &mut *self.server,
                client: &mut *self.client,
                out: &mut self.out,
            };
            if let Err(message) = crate::acl::check_in(&mut ctx, spec, args, "lua") {
                return refuse(script_acl_error(&message).into());
            }
        }
        let stale = self
            .server
            .replication
            .master
            .as_ref()
            .is_some_and(|link| link.state != crate::replication::LinkState::Connected);
        if stale && !self.server.settings.replica_serve_stale_data && !spec.is_stale_ok() {
            return refuse("Can not execute the command on a stale replica".into());
        }
        if spec.is_denyoom() && self.over_memory() {
            return refuse(format!("-{}", crate::server::OOM));
        }
        if spec.is_write() {
            if let Err(message) = self.check_write() {
                return refuse(message);
            }
            if let Some(running) = self.server.scripting.running.as_mut() {
                running.wrote = true;
            }
        }
        Ok(spec)
    }

    /// Counts a refused call as Redis does (`afterErrorReply` and the command's
    /// `rejected_calls`); the script's error reply that carries it is not counted again, and
    /// does not make the script's own command count as failed until it replies the error.
    fn count_refusal(
        &mut self,
        spec: Option<&crate::commands::CommandSpec>,
        args: &[Bytes],
        message: &str,
    ) {
        let server = &mut *self.server;
        server.stats.error_replies += 1;
        match message.strip_prefix('-') {
            Some(coded) => server.command_stats.record_error(coded),
            None => server.command_stats.record_error(&format!("ERR {message}")),
        }
        if let Some(spec) = spec {
            server
                .command_stats
                .record_rejected(crate::commands::stats_name(spec, args));
        }
        server.command.errors_seen = server.stats.error_replies;
    }
}

impl Host for ScriptHost<'_> {
    fn call(&mut self, args: Vec<Bytes>, resp3: bool) -> Result<Frame, String> {
        let spec = match self.admit(&args) {
            Ok(spec) => spec,
            Err((spec, message)) => {
                self.count_refusal(spec, &args, &message);
                return Err(message);
            }
        };
        self.out.set_protocol(if resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        });
        self.out.buffer().clear();
        let mut ctx = Ctx {
            server: &mut *self.server,
            client: &mut *self.client,
            out: &mut self.out,
        };
        crate::commands::execute_for_script(&mut ctx, spec, &args);
        reply_frame(self.out.buffer())
            .ok_or_else(|| "the command gave no reply the script can read".into())
    }

    fn set_replication(&mut self, aof: bool, replicas: bool) {
        self.server.command.script_skips = (!aof, !replicas);
    }

    fn permitted(&mut self, args: Vec<Bytes>) -> Result<bool, String> {
        let Some(spec) = crate::commands::lookup(&args[0]) else {
            return Err("Invalid command passed to redis.acl_check_cmd()".into());
        };
        Ok(crate::acl::permitted(
            self.server,
            &self.client.user,
            spec,
            &args,
        ))
    }

    fn interrupt(&mut self) -> bool {
        let threshold = self.server.settings.busy_reply_threshold;
        let Some(running) = self.server.scripting.running.as_mut() else {
            return false;
        };
        let elapsed = running.started.elapsed();
        if threshold > 0 && elapsed.as_millis() as u64 >= threshold {
            if !running.busy {
                running.busy = true;
                if !running.eval {
                    running.command = self.command.to_vec();
                }
                crate::warning!(
                    "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {} command. Script name is: {}.",
                    elapsed.as_millis(),
                    if running.eval {
                        "SCRIPT KILL"
                    } else {
                        "FUNCTION KILL"
                    },
                    String::from_utf8_lossy(running.name.as_bytes())
                );
            }
            crate::net::busy::serve_while_busy(self.server);
        }
        self.server
            .scripting
            .running
            .as_ref()
            .is_some_and(|r| r.kill_requested)
    }
}

/// The reply a command wrote, as a frame; RESP3 attributes before it are skipped, as Redis
/// does not show them to scripts.
fn reply_frame(reply: &[u8]) -> Option<Frame> {
    let mut reply = reply;
    while reply.first() == Some(&b'|') {
        // An attribute is a map with another type byte.
        let mut as_map = reply.to_vec();
        as_map[0] = b'%';
        let (_, used) = Frame::parse(&as_map).ok()??;
        reply = &reply[used..];
    }
    Frame::parse(reply).ok()?.map(|(frame, _)| frame)
}

/// `SCRIPT KILL` (`eval`) or `FUNCTION KILL`: asks the running script to stop, with Redis's
/// refusals; `Err` is the error reply.
pub(crate) fn kill(server: &mut Server, eval: bool) -> Result<(), &'static str> {
    let Some(running) = server.scripting.running.as_mut() else {
        return Err("NOTBUSY No scripts in execution right now.");
    };
    if running.from_master {
        return Err(
            "UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.",
        );
    }
    if running.wrote {
        return Err(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
        );
    }
    if eval && !running.eval {
        return Err(
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
        );
    }
    if !eval && running.eval {
        return Err(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        );
    }
    running.kill_requested = true;
    Ok(())
}

/// What a script gets when ACL refuses a command it calls (Redis's `scriptVerifyACL`).
fn script_acl_error(noperm: &str) -> &'static str {
    if noperm.contains("keys") {
        "The user executing the script can't access at least one of the keys mentioned in the command"
    } else if noperm.contains("channels") {
        "The user executing the script can't publish to the channel mentioned in the command"
    } else {
        "The user executing the script can't run this command or subcommand"
    }
}
