//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
//! AUTH2 username password] [KEYS key ...]`: moves keys to another Redis-compatible server
//! with `DUMP` payloads and `RESTORE`, as Redis does: synchronously, within the timeout, over a
//! connection kept for ten seconds for the next MIGRATE to the same target.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use amber_rdb::WriteOptions;
use bytes::Bytes;

use super::{Ctx, errors, is};
use crate::persistence::rdb::to_rdb;

/// Connections kept at most (the oldest is closed to make room).
const MAX_CACHED: usize = 64;
/// Idle time after which a kept connection is closed.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Longest reply line read from the target.
const MAX_LINE: usize = 1024;

/// A connection to a MIGRATE target, with the database it last selected.
struct Cached {
    stream: TcpStream,
    last_db: Option<i64>,
    last_use: Instant,
}

/// The kept connections, by `host:port`.
#[derive(Default)]
pub(crate) struct MigrateSockets {
    sockets: HashMap<String, Cached>,
}

impl MigrateSockets {
    /// Number of kept connections (`migrate_cached_sockets`).
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Closes the connections idle for longer than ten seconds (from the cron).
    pub(crate) fn close_idle(&mut self) {
        self.sockets
            .retain(|_, cached| cached.last_use.elapsed() <= CACHE_TTL);
    }

    fn get(&mut self, target: &str, timeout: Duration) -> Result<&mut Cached, MigrateError> {
        if !self.sockets.contains_key(target) {
            if self.sockets.len() >= MAX_CACHED
                && let Some(oldest) = self
                    .sockets
                    .iter()
                    .min_by_key(|(_, cached)| cached.last_use)
                    .map(|(name, _)| name.clone())
            {
                self.sockets.remove(&oldest);
            }
            let stream = connect(target, timeout).map_err(|_| MigrateError::Connect)?;
            let cached = Cached {
                stream,
                last_db: None,
                last_use: Instant::now(),
            };
            self.sockets.insert(target.to_string(), cached);
        }
        self.sockets.get_mut(target).ok_or(MigrateError::Connect)
    }

    fn close(&mut self, target: &str) {
        self.sockets.remove(target);
    }
}

/// Why a MIGRATE failed on the network side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MigrateError {
    Connect,
    Io { timed_out: bool },
}

fn connect(target: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last_error = std::io::Error::from(std::io::ErrorKind::NotFound);
    for address in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The parsed arguments.
struct Request {
    copy: bool,
    replace: bool,
    auth: Option<(Option<Bytes>, Bytes)>,
    keys: Vec<Bytes>,
    db: i64,
    timeout: Duration,
}

fn parse(ctx: &mut Ctx, args: &[Bytes]) -> Option<Request> {
    let mut request = Request {
        copy: false,
        replace: false,
        auth: None,
        keys: vec![args[3].clone()],
        db: 0,
        timeout: Duration::from_millis(1000),
    };
    let mut index = 6;
    while index < args.len() {
        let word = &args[index];
        let more = args.len() - 1 - index;
        if is(word, "copy") {
            request.copy = true;
        } else if is(word, "replace") {
            request.replace = true;
        } else if is(word, "auth") && more >= 1 {
            request.auth = Some((None, args[index + 1].clone()));
            index += 1;
        } else if is(word, "auth2") && more >= 2 {
            request.auth = Some((Some(args[index + 1].clone()), args[index + 2].clone()));
            index += 2;
        } else if is(word, "keys") {
            if !args[3].is_empty() {
                ctx.error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
                return None;
            }
            request.keys = args[index + 1..].to_vec();
            break;
        } else {
            ctx.error(errors::SYNTAX);
            return None;
        }
        index += 1;
    }
    let timeout = ctx.int_arg(&args[5]).ok()?;
    request.db = ctx.int_arg(&args[4]).ok()?;
    if timeout > 0 {
        request.timeout = Duration::from_millis(timeout as u64);
    }
    Some(request)
}

/// `MIGRATE ...`
pub(super) fn migrate(ctx: &mut Ctx, args: &[Bytes]) {
    let Some(request) = parse(ctx, args) else {
        return;
    };
    // The keys that exist, with their payloads and remaining time to live.
    let now = ctx.server.now_ms;
    let options = WriteOptions {
        compression: ctx.server.config.get_bool("rdbcompression"),
        ..WriteOptions::default()
    };
    let mut found = Vec::new();
    for key in &request.keys {
        let entry = ctx
            .db()
            .get_mut(key, now)
            .map(|entry| (to_rdb(&entry.value), entry.expire_at()));
        if let Some((value, expire_at)) = entry {
            match amber_rdb::dump_payload(&value, options) {
                Ok(payload) => {
                    let ttl = expire_at.map_or(0, |at| (at - now).max(1));
                    found.push((key.clone(), payload, ttl));
                }
                Err(error) => return ctx.error(&format!("ERR {error}")),
            }
        }
    }
    if found.is_empty() {
        return ctx.out.simple("NOKEY");
    }
    let target = format!(
        "{}:{}",
        String::from_utf8_lossy(&args[1]),
        String::from_utf8_lossy(&args[2])
    );
    let mut retried = false;
    loop {
        let outcome = match send(ctx, &target, &request, &found) {
            Ok(outcome) => outcome,
            Err(MigrateError::Connect) => {
                return ctx.error("IOERR error or timeout connecting to the client");
            }
            Err(MigrateError::Io { timed_out }) => Outcome {
                error: None,
                accepted: Vec::new(),
                io: Some(timed_out),
            },
        };
        let Some(timed_out) = outcome.io else {
            return finish(ctx, &request, &found, outcome);
        };
        ctx.server.migrate_sockets.close(&target);
        // A kept connection may have been closed by the peer: before any key was answered,
        // try once more on a new one, unless the target was too slow.
        if !timed_out && !retried && outcome.accepted.is_empty() && outcome.error.is_none() {
            retried = true;
            continue;
        }
        delete_taken(ctx, &request, &found, &outcome.accepted);
        return match outcome.error {
            Some(message) => target_error(ctx, &message),
            None => ctx.error("IOERR error or timeout reading to target instance"),
        };
    }
}

/// What the target answered: the first error it replied, which keys it took, and whether
/// the connection failed on the way (`Some(timed_out)`).
struct Outcome {
    error: Option<String>,
    accepted: Vec<bool>,
    io: Option<bool>,
}

fn send(
    ctx: &mut Ctx,
    target: &str,
    request: &Request,
    found: &[(Bytes, Vec<u8>, i64)],
) -> Result<Outcome, MigrateError> {
    let cached = ctx.server.migrate_sockets.get(target, request.timeout)?;
    let select = cached.last_db != Some(request.db);
    let mut buffer = Vec::new();
    if let Some((user, password)) = &request.auth {
        match user {
            Some(user) => push_command(&mut buffer, &[b"AUTH", user, password]),
            None => push_command(&mut buffer, &[b"AUTH", password]),
        }
    }
    if select {
        push_command(&mut buffer, &[b"SELECT", request.db.to_string().as_bytes()]);
    }
    for (key, payload, ttl) in found {
        let ttl = ttl.to_string();
        let mut parts: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
        if request.replace {
            parts.push(b"REPLACE");
        }
        push_command(&mut buffer, &parts);
    }
    let deadline = Instant::now() + request.timeout;
    let stream = &mut cached.stream;
    write_all(stream, &buffer, deadline)?;
    let mut error = None;
    let mut note = |line: &[u8]| {
        let failed = line.first() == Some(&b'-');
        if failed && error.is_none() {
            error = Some(String::from_utf8_lossy(&line[1..]).into_owned());
        }
        failed
    };
    // As Redis: a failed AUTH or SELECT fails every key; otherwise each key whose RESTORE
    // succeeded was taken.
    let mut prefix_failed = false;
    if request.auth.is_some() {
        prefix_failed |= note(&read_line(stream, deadline)?);
    }
    if select {
        prefix_failed |= note(&read_line(stream, deadline)?);
    }
    let mut accepted = Vec::with_capacity(found.len());
    let mut io = None;
    for _ in found {
        match read_line(stream, deadline) {
            Ok(line) => {
                let failed = note(&line);
                accepted.push(!failed && !prefix_failed);
            }
            Err(MigrateError::Io { timed_out }) => {
                io = Some(timed_out);
                break;
            }
            Err(MigrateError::Connect) => {
                io = Some(false);
                break;
            }
        }
    }
    if !prefix_failed {
        cached.last_db = Some(request.db);
    }
    cached.last_use = Instant::now();
    Ok(Outcome {
        error,
        accepted,
        io,
    })
}

/// Deletes the keys the target took (unless COPY) and replies.
fn finish(ctx: &mut Ctx, request: &Request, found: &[(Bytes, Vec<u8>, i64)], outcome: Outcome) {
    delete_taken(ctx, request, found, &outcome.accepted);
    match outcome.error {
        Some(message) => target_error(ctx, &message),
        None => ctx.out.ok(),
    }
}

fn target_error(ctx: &mut Ctx, message: &str) {
    ctx.error(&format!(
        "ERR Target instance replied with error: {message}"
    ));
}

/// Deletes the keys the target took, unless COPY; the AOF records them as one `DEL`.
fn delete_taken(
    ctx: &mut Ctx,
    request: &Request,
    found: &[(Bytes, Vec<u8>, i64)],
    accepted: &[bool],
) {
    if !request.copy {
        let mut deleted: Vec<&[u8]> = vec![b"DEL"];
        for ((key, _, _), taken) in found.iter().zip(accepted) {
            if *taken && ctx.db().remove(key).is_some() {
                ctx.notify(crate::notify::GENERIC, "del", key);
                deleted.push(key);
            }
        }
        if deleted.len() > 1 {
            ctx.modified_only(
                deleted[1..]
                    .iter()
                    .map(|k| Bytes::copy_from_slice(k))
                    .collect(),
            );
            ctx.dirty(deleted.len() as u64 - 1);
            ctx.propagate_as(vec![
                deleted
                    .iter()
                    .map(|part| Bytes::copy_from_slice(part))
                    .collect(),
            ]);
        }
    }
}

fn push_command(buffer: &mut Vec<u8>, parts: &[&[u8]]) {
    buffer.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        buffer.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        buffer.extend_from_slice(part);
        buffer.extend_from_slice(b"\r\n");
    }
}

fn io_error(error: &std::io::Error) -> MigrateError {
    MigrateError::Io {
        timed_out: matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn remaining(deadline: Instant) -> Result<Duration, MigrateError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or(MigrateError::Io { timed_out: true })
}

fn write_all(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> Result<(), MigrateError> {
    while !bytes.is_empty() {
        stream
            .set_write_timeout(Some(remaining(deadline)?))
            .map_err(|e| io_error(&e))?;
        match stream.write(bytes) {
            Ok(0) => return Err(MigrateError::Io { timed_out: false }),
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(&error)),
        }
    }
    Ok(())
}

/// Reads one reply line (without its CRLF), byte by byte as Redis's `syncReadLine` does, so
/// nothing of the next reply is consumed.
fn read_line(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, MigrateError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| io_error(&e))?;
        match stream.read(&mut byte) {
            Ok(0) => return Err(MigrateError::Io { timed_out: false }),
            Ok(_) if byte[0] == b'\n' => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            Ok(_) if line.len() < MAX_LINE => line.push(byte[0]),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(&error)),
        }
    }
}
