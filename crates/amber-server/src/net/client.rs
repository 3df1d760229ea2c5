//! One client connection: read, parse, execute, reply — until the client leaves or is killed.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use amber_protocol::{Limits, Protocol, ReplyWriter, RequestParser};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::commands::{ClientState, Ctx, execute};
use crate::replication::Output;
use crate::server::{ClientInfo, OutputLimit, Server, unix_ms};
use amber_aof::durability::ReplyGate;

const READ_CHUNK: usize = 16 * 1024;

/// The reply buffer's size when a connection first gets requests, and after it sent a large
/// reply (Redis's `PROTO_REPLY_MIN_BYTES`): it grows with the replies of a batch. An idle
/// connection has none.
const REPLY_START: usize = 1024;

/// Replies a connection builds before sending them: requests already read wait in the query
/// buffer until these are written, so a pipelined burst (or a client that stops reading)
/// holds at most this much of replies at a time, plus one reply.
const REPLY_BATCH: usize = 512 * 1024;

/// The replies a connection may build before sending them: [`REPLY_BATCH`], or past its
/// class's hard output limit when that is larger (so a client that does not read reaches the
/// limit and is closed, as in Redis, rather than only being read no more).
fn reply_batch(server: &Server, info: &ClientInfo) -> usize {
    let hard = output_limit(server, info).hard;
    REPLY_BATCH.max(
        usize::try_from(hard)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
    )
}

/// Serves one client until it disconnects, sends `QUIT`, breaks the protocol or is killed.
pub(crate) async fn serve<S>(
    shared: Rc<RefCell<Server>>,
    mut stream: S,
    info: Rc<RefCell<ClientInfo>>,
    local: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tick = shared.borrow().tick.clone();
    let (id, kill, wake, shrink, push) = {
        let info = info.borrow();
        (
            info.id,
            info.kill.clone(),
            info.wake.clone(),
            info.shrink.clone(),
            info.push.clone(),
        )
    };
    // Declared after `stream`, so dropped before it closes, however the task ends.
    let _forget_socket = ForgetSocket(info.clone());
    let authenticated = shared.borrow().default_user_open();
    let mut client = ClientState::connected(info.clone(), id, local, authenticated);
    // The query buffer is allocated when the first bytes arrive, not at accept: connections
    // opened in a burst then keep their long-lived state packed together, apart from the
    // 16 KiB buffers an idle connection gives back (which then return to the system whole).
    let mut input = BytesMut::new();
    // The size of the query buffer's allocation (what CLIENT LIST's qbuf + qbuf-free show):
    // consumed requests shrink `input.capacity()`, not the allocation.
    let mut allocated = 0;
    let mut parser = RequestParser::new();
    let mut out = ReplyWriter::with_capacity(Protocol::Resp2, 0);
    // Set while there is no query buffer (a new or idle client): the next read starts small.
    let mut freed = true;
    // Set when complete requests wait in `input` (the last batch of replies filled up).
    let mut unprocessed = false;
    loop {
        if !freed && input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
            allocated = allocated.max(input.capacity());
            info.borrow_mut().query_buffer_capacity = allocated;
        }
        sync_protocol(&info, &mut out);
        let (keep_going, appended) = match client.blocked.as_ref().map(|b| b.deadline) {
            None => {
                let pending = std::mem::take(&mut info.borrow_mut().busy.input);
                let woke = if unprocessed && pending.is_empty() {
                    Woke::Backlog
                } else if pending.is_empty() {
                    // While it waits, a script running past its threshold may serve it.
                    let idle = input.is_empty() && !parser.in_progress();
                    park(&info, client, idle);
                    let woke = tokio::select! {
                        result = stream.read_buf(&mut input) => Woke::Read(result),
                        _ = kill.notified() => Woke::Kill,
                        _ = push.notified() => Woke::Push,
                        _ = shrink.notified() => Woke::Shrink,
                    };
                    client = unpark(&info)
                        .unwrap_or_else(|| ClientState::connected(info.clone(), id, local, false));
                    woke
                } else {
                    input.extend_from_slice(&pending);
                    Woke::Read(Ok(pending.len()))
                };
                let read = match woke {
                    Woke::Read(Ok(0) | Err(_)) => break,
                    Woke::Read(Ok(read)) => read,
                    Woke::Backlog => 0,
                    Woke::Kill => break,
                    Woke::Push => {
                        let mut ahead = ReadAhead::new(&mut input, &shared);
                        let written =
                            write_outbox(&mut stream, &shared, &info, &kill, &mut ahead).await;
                        if ahead.finish(&shared) > 0 {
                            freed = false;
                            allocated = allocated.max(input.capacity());
                            unprocessed = true;
                        }
                        if !written {
                            break;
                        }
                        continue;
                    }
                    Woke::Shrink => {
                        let target = info.borrow_mut().shrink_to.take();
                        match target {
                            Some(0) if input.is_empty() => {
                                input = BytesMut::new();
                                allocated = 0;
                                freed = true;
                            }
                            Some(size) if size > 0 && size < allocated => {
                                // As Redis: trimmed to the recent peak, never below what it
                                // holds now.
                                let mut smaller = BytesMut::with_capacity(size.max(input.len()));
                                smaller.extend_from_slice(&input);
                                input = smaller;
                                allocated = input.capacity();
                            }
                            _ => {}
                        }
                        // An idle connection gives its reply buffer back too.
                        if out.is_empty() && out.buffer().capacity() > 0 {
                            *out.buffer() = BytesMut::new();
                            let mut info = info.borrow_mut();
                            info.reply_buffer = 0;
                            info.reply_peak = 0;
                            drop(info);
                            shared.borrow_mut().stats.reply_buffer_shrinks += 1;
                        }
                        info.borrow_mut().query_buffer_capacity = allocated;
                        continue;
                    }
                };
                if freed {
                    freed = false;
                    allocated = input.capacity();
                }
                {
                    let mut info = info.borrow_mut();
                    info.query_buffer_peak = info.query_buffer_peak.max(input.len());
                    info.query_buffer_capacity = allocated;
                }
                let mut server = shared.borrow_mut();
                server.stats.net_input_bytes += read as u64;
                server.stats.reads_processed += 1;
                let start = server.aof.end();
                let spanned_reads = parser.in_progress();
                messages_first(&info, &mut out);
                reply_room(&mut out);
                let more =
                    process_input(&mut server, &mut client, &mut parser, &mut input, &mut out);
                // The parser reserves room for a large argument in the buffer itself.
                if input.capacity() > allocated {
                    allocated = input.capacity();
                    info.borrow_mut().query_buffer_capacity = allocated;
                }
                unprocessed = out.len() >= reply_batch(&server, &info.borrow()) && more;
                if spanned_reads || parser.in_progress() {
                    // A request is arriving, or just arrived over several reads: as Redis
                    // never trims below the bulk being read and keeps a fat argument's room
                    // for the next one, the cron keeps the buffer at least one more cycle.
                    let mut info = info.borrow_mut();
                    info.query_buffer_peak = info.query_buffer_peak.max(allocated);
                }
                (more, server.aof.end() != start)
            }
            Some(deadline) => {
                let expired = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let timed_out = tokio::select! {
                    _ = wake.notified() => false,
                    _ = expired => true,
                    _ = kill.notified() => break,
                    result = stream.read_buf(&mut input) => match result {
                        // Input arriving while blocked waits in the buffer; EOF ends the client.
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    },
                };
                let mut server = shared.borrow_mut();
                let start = server.aof.end();
                messages_first(&info, &mut out);
                reply_room(&mut out);
                retry_blocked(&mut server, &mut client, &mut out, timed_out);
                let more = client.blocked.is_some()
                    || process_input(&mut server, &mut client, &mut parser, &mut input, &mut out);
                unprocessed = out.len() >= reply_batch(&server, &info.borrow())
                    && more
                    && client.blocked.is_none();
                (more, server.aof.end() != start)
            }
        };
        if !out.is_empty() {
            // Counted from now: other connections run (and eviction looks) before it is sent.
            {
                let mut info = info.borrow_mut();
                info.reply_buffer = out.buffer().capacity();
                info.reply_peak = info.reply_peak.max(out.len());
            }
            // Like Redis, which writes replies once all ready clients were read: let the other
            // ready connections run first (INV-TICK-END), so replies go out in one burst per
            // loop iteration and the peers are woken once rather than once per client.
            shared.borrow_mut().pubsub.replies_yielding += 1;
            tick.wait().await;
            shared.borrow_mut().pubsub.replies_yielding -= 1;
            let mut gate = shared.borrow_mut().aof.before_reply(appended);
            let durable = loop {
                match gate {
                    ReplyGate::Send => break true,
                    ReplyGate::Fail => {
                        shared.borrow_mut().watch_aof_health();
                        break false;
                    }
                    ReplyGate::Wait(mut ticket) => {
                        if !ticket.changed().await {
                            break false;
                        }
                        gate = shared.borrow_mut().aof.wait_step(ticket);
                    }
                }
            };
            if !durable {
                // The write may not be on disk: no reply, so it is never acknowledged.
                break;
            }
            let limit = output_limit(&shared.borrow(), &info.borrow());
            let mut ahead = ReadAhead::new(&mut input, &shared);
            let sent = write_replies(&mut stream, out.buffer(), &info, &kill, limit, &mut ahead).await
                    // Messages published to this client meanwhile follow its replies.
                    && write_outbox(&mut stream, &shared, &info, &kill, &mut ahead).await;
            if ahead.finish(&shared) > 0 {
                allocated = allocated.max(input.capacity());
                // The requests read meanwhile run next, before the socket is read again.
                unprocessed = true;
            }
            if !sent {
                break;
            }
            {
                let mut server = shared.borrow_mut();
                server.stats.net_output_bytes += out.len() as u64;
                server.stats.writes_processed += 1;
            }
            out.buffer().clear();
            // A large reply's room is given back once sent, so idle connections stay small.
            if out.buffer().capacity() > 4 * READ_CHUNK {
                *out.buffer() = BytesMut::with_capacity(REPLY_START);
                info.borrow_mut().reply_peak = 0;
                let mut server = shared.borrow_mut();
                server.stats.reply_buffer_shrinks += 1;
                server.stats.reply_buffer_expands += 1;
            }
            info.borrow_mut().reply_buffer = out.buffer().capacity();
        }
        if !keep_going || client.close_after_reply || info.borrow().killed {
            break;
        }
        if client.replica {
            // What the replica sent after PSYNC (read with it, or while its reply waited)
            // stays with the link.
            let pending = (std::mem::take(&mut input), std::mem::take(&mut parser));
            serve_replica(&shared, &mut stream, id, (&kill, &wake), pending).await;
            break;
        }
    }
    if let Some(blocked) = client.blocked.take() {
        shared.borrow_mut().unblock(id, blocked.db, &blocked.keys);
    }
    if !client.handed_to_child {
        let _ = stream.shutdown().await;
    }
    let mut server = shared.borrow_mut();
    crate::commands::pubsub_cmds::unsubscribe_all(&mut server, &mut client);
    crate::commands::stop_monitoring(&mut server, id);
    server.replication.remove_waiter(id);
    server.pauses.forget(id);
    if client.replica {
        let addr = info.borrow().addr.clone();
        server.replica_connection_lost(id, &addr);
    }
    for watched in client.watching.drain(..) {
        server.remove_watcher(id, watched.db, watched.key);
    }
    server.links.invalidated.remove(&id);
    server.disable_tracking(id);
    server.clients.remove(&id);
}

/// Sets the client's `fd` to -1 when its task ends (INV-DIRECT-WRITE): the Pub/Sub flush and
/// a busy script's service write to a parked client's socket by its number, which must not
/// outlive the socket.
struct ForgetSocket(Rc<RefCell<ClientInfo>>);

impl Drop for ForgetSocket {
    fn drop(&mut self) {
        if let Ok(mut info) = self.0.try_borrow_mut() {
            info.fd = -1;
        }
    }
}

/// What ended a connection task's wait for input.
enum Woke {
    /// Bytes arrived (or the read failed).
    Read(std::io::Result<usize>),
    /// The client is being closed.
    Kill,
    /// Pub/Sub messages, or input read while a script was busy, wait.
    Push,
    /// Requests already read wait to be executed (the last batch of replies filled up).
    Backlog,
    /// The cron asks the query buffer to shrink.
    Shrink,
}

/// Hands the client's state to the server while the task waits (see `net::busy`).
fn park(info: &RefCell<ClientInfo>, client: ClientState, idle: bool) {
    let mut info = info.borrow_mut();
    info.busy.parked = Some(client);
    info.busy.idle = idle;
}

/// Gives a connection without a reply buffer (new, or idle until now) its first one before a
/// batch, so the batch's replies do not grow it from nothing.
fn reply_room(out: &mut ReplyWriter) {
    if out.buffer().capacity() == 0 {
        out.buffer().reserve(REPLY_START);
    }
}

/// Puts the messages published to this client before its next requests run ahead of their
/// replies, as they are in Redis's single reply buffer (a subscriber's task may be woken by
/// its requests before it wrote the messages that arrived first). Messages published while a
/// batch's replies wait stay in the outbox and follow them.
fn messages_first(info: &RefCell<ClientInfo>, out: &mut ReplyWriter) {
    let mut info = info.borrow_mut();
    if info.outbox.is_empty() {
        return;
    }
    out.buffer().extend_from_slice(&info.outbox);
    info.outbox.clear();
    if info.outbox.capacity() > 64 * 1024 {
        info.outbox = Vec::new();
    }
}

/// Takes the client's state back after a wait.
fn unpark(info: &RefCell<ClientInfo>) -> Option<ClientState> {
    let mut info = info.borrow_mut();
    info.busy.idle = false;
    info.busy.parked.take()
}

/// Follows a protocol change made while the task waited (`HELLO` served during a busy
/// script).
fn sync_protocol(info: &RefCell<ClientInfo>, out: &mut ReplyWriter) {
    let resp3 = info.borrow().resp == 3;
    if resp3 != (out.protocol() == Protocol::Resp3) {
        out.set_protocol(if resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        });
    }
}

/// Writes the Pub/Sub messages waiting for this client; false when the connection must close
/// (a write error, or the client was dropped for its output limit while the write waited on a
/// peer that does not read).
async fn write_outbox<S>(
    stream: &mut S,
    shared: &RefCell<Server>,
    info: &RefCell<ClientInfo>,
    kill: &crate::signal::Signal,
    ahead: &mut ReadAhead<'_>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = std::mem::take(&mut info.borrow_mut().outbox);
    if messages.is_empty() {
        return !info.borrow().killed;
    }
    info.borrow_mut().outbox_writing = messages.capacity();
    let mut rest = &messages[..];
    let written = loop {
        if rest.is_empty() {
            break !info.borrow().killed;
        }
        tokio::select! {
            event = write_or_read(stream, rest, ahead) => match event {
                Progress::Wrote(Ok(0) | Err(_)) => break false,
                Progress::Wrote(Ok(n)) => rest = &rest[n..],
                Progress::Read => ahead.note_read(info),
            },
            _ = kill.notified() => break false,
        }
    };
    if written {
        shared.borrow_mut().stats.net_output_bytes += messages.len() as u64;
    }
    // Hand the (empty) buffer back for the next messages, unless it grew large.
    messages.clear();
    let mut info = info.borrow_mut();
    info.outbox_writing = 0;
    if info.outbox.is_empty() && messages.capacity() <= 64 * 1024 {
        info.outbox = messages;
    }
    written
}

/// The `client-output-buffer-limit` class of a connection: `pubsub` while it is subscribed,
/// `normal` otherwise.
fn output_limit(server: &Server, info: &ClientInfo) -> OutputLimit {
    let (normal, pubsub) = server.settings.output_limits;
    let (channels, patterns, shards) = info.subscriptions;
    if channels + patterns + shards > 0 {
        pubsub
    } else {
        normal
    }
}

/// Writes a batch of replies; false when the connection must close (write error, killed, or
/// its unsent replies passed `limit`, checked again every second while the peer does not
/// read, as Redis's soft limit).
async fn write_replies<S>(
    stream: &mut S,
    replies: &[u8],
    info: &RefCell<ClientInfo>,
    kill: &crate::signal::Signal,
    limit: OutputLimit,
    ahead: &mut ReadAhead<'_>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rest = replies;
    let mut closed = false;
    // The first write goes without a timer (the common case: the peer reads).
    let mut waited = false;
    while !rest.is_empty() && !closed {
        if info.borrow_mut().close_if_over(rest.len() as u64, limit) {
            closed = true;
            break;
        }
        info.borrow_mut().reply_pending = rest.len();
        // The timer is made only when polled: a write that completes at once reads no clock.
        let recheck = async {
            if waited {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            event = write_or_read(stream, rest, ahead) => match event {
                Progress::Wrote(Ok(0) | Err(_)) => closed = true,
                Progress::Wrote(Ok(n)) => rest = &rest[n..],
                Progress::Read => {
                    ahead.note_read(info);
                    continue;
                }
            },
            _ = kill.notified() => closed = true,
            _ = recheck => {}
        }
        waited = true;
    }
    let mut info = info.borrow_mut();
    info.reply_pending = 0;
    if !closed {
        info.over_soft_limit_since = None;
    }
    !closed
}

/// Requests read while a batch of replies is being written (INV-READ-WHILE-WRITING): a client
/// that pipelines more than the socket buffers hold before it reads a reply would otherwise
/// wait on the server to read while the server waits on it to read. Like Redis, which keeps
/// reading such a client; what it sends waits, unprocessed, in the query buffer, whose
/// `client-query-buffer-limit` still closes the client.
struct ReadAhead<'a> {
    /// The connection's query buffer.
    input: &'a mut BytesMut,
    /// The query buffer's limit: reading stops once it holds more (the next batch then
    /// closes the client).
    limit: usize,
    /// The stream ended or failed: the next read in the main loop reports it.
    ended: bool,
    /// Bytes read so far.
    read: usize,
}

impl<'a> ReadAhead<'a> {
    /// Reads into `input`, up to the server's `client-query-buffer-limit`.
    fn new(input: &'a mut BytesMut, shared: &RefCell<Server>) -> ReadAhead<'a> {
        ReadAhead {
            input,
            limit: shared.borrow().settings.client_query_buffer_limit,
            ended: false,
            read: 0,
        }
    }

    /// Counts what was read in the server's statistics; returns the bytes read.
    fn finish(self, shared: &RefCell<Server>) -> usize {
        if self.read > 0 {
            let mut server = shared.borrow_mut();
            server.stats.net_input_bytes += self.read as u64;
            server.stats.reads_processed += 1;
        }
        self.read
    }

    /// Whether to read on while the write waits.
    fn wants_more(&self) -> bool {
        !self.ended && self.input.len() <= self.limit
    }

    /// Records the query buffer's new size for `CLIENT LIST` and client eviction.
    fn note_read(&self, info: &RefCell<ClientInfo>) {
        let mut info = info.borrow_mut();
        info.query_buffer_capacity = info.query_buffer_capacity.max(self.input.capacity());
        info.query_buffer_peak = info.query_buffer_peak.max(self.input.len());
        info.query_buffer = self.input.len();
    }
}

/// What a wait in [`write_or_read`] ended with.
enum Progress {
    /// Part of the replies went out (or the write failed).
    Wrote(std::io::Result<usize>),
    /// Requests arrived (their bytes are in the read-ahead buffer), or the stream ended.
    Read,
}

/// Writes what it can of `replies`; while the socket cannot take more, reads the client's
/// next requests into `ahead` rather than only waiting.
async fn write_or_read<S>(stream: &mut S, replies: &[u8], ahead: &mut ReadAhead<'_>) -> Progress
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    std::future::poll_fn(|cx| {
        if let Poll::Ready(written) = Pin::new(&mut *stream).poll_write(cx, replies) {
            return Poll::Ready(Progress::Wrote(written));
        }
        if !ahead.wants_more() {
            return Poll::Pending;
        }
        if ahead.input.capacity() - ahead.input.len() < READ_CHUNK / 4 {
            ahead.input.reserve(READ_CHUNK);
        }
        let read = std::pin::pin!(stream.read_buf(&mut *ahead.input)).poll(cx);
        match read {
            Poll::Ready(Ok(n)) if n > 0 => {
                ahead.read += n;
                Poll::Ready(Progress::Read)
            }
            Poll::Ready(_) => {
                ahead.ended = true;
                Poll::Ready(Progress::Read)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Sends a replica its snapshot and then the replication stream, until it disconnects or is
/// dropped (its output passed the limit). What it sends (`REPLCONF ACK <offset>`) is recorded.
async fn serve_replica<S>(
    shared: &Rc<RefCell<Server>>,
    stream: &mut S,
    id: u64,
    (kill, wake): (&crate::signal::Signal, &crate::signal::Signal),
    (mut input, mut parser): (BytesMut, RequestParser),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !read_acks(shared, id, &mut parser, &mut input) {
        return;
    }
    loop {
        loop {
            let output = shared.borrow_mut().replication.replicas.take_output(id);
            let sent = match output {
                None => break,
                Some(Output::Bytes(bytes)) => {
                    shared.borrow_mut().stats.net_repl_output_bytes += bytes.len() as u64;
                    stream.write_all(&bytes).await.is_ok()
                }
                Some(Output::Rdb(file, len)) => send_snapshot(stream, file, len).await,
            };
            if !sent {
                return;
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = kill.notified() => return,
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !read_acks(shared, id, &mut parser, &mut input) {
                        return;
                    }
                }
            },
        }
    }
}

/// Records the `REPLCONF ACK`s a replica sent; false on a protocol error.
fn read_acks(
    shared: &Rc<RefCell<Server>>,
    id: u64,
    parser: &mut RequestParser,
    input: &mut BytesMut,
) -> bool {
    let limits = Limits::default();
    loop {
        match parser.next_request(input, &limits) {
            Ok(Some(args)) => {
                let ack = args.len() >= 3
                    && args[0].eq_ignore_ascii_case(b"replconf")
                    && (args[1].eq_ignore_ascii_case(b"ack")
                        || args[1].eq_ignore_ascii_case(b"fack"));
                let offset = std::str::from_utf8(args.get(2).map_or(&b""[..], |a| &a[..]))
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok());
                if let (true, Some(offset)) = (ack, offset) {
                    shared.borrow_mut().replication.acknowledge(id, offset);
                }
                if !args[0].eq_ignore_ascii_case(b"replconf") {
                    // Anything else would be answered on the replication stream: as Redis,
                    // the replica is dropped instead.
                    let server = shared.borrow();
                    let described = server.clients.get(&id).map_or_else(String::new, |info| {
                        crate::commands::describe_client(&info.borrow())
                    });
                    let label = crate::commands::command_label(&args);
                    if crate::commands::touches_keyspace(&args) {
                        // The error Redis would have answered, logged as Redis logs an error
                        // sent on a replication link.
                        crate::warning!(
                            "== CRITICAL == This master is sending an error to its replica: 'Replica can't interact with the keyspace' after processing the command '{label}'"
                        );
                    }
                    crate::warning!(
                        "Replica generated a reply to command '{label}', disconnecting it: {described}"
                    );
                    return false;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Sends the snapshot file as one bulk (`$<len>\r\n` and the bytes, without a trailing CRLF,
/// as Redis sends it), reading it in chunks.
async fn send_snapshot<S>(stream: &mut S, mut file: std::fs::File, len: u64) -> bool
where
    S: AsyncWrite + Unpin,
{
    use std::io::Read;
    if stream
        .write_all(format!("${len}\r\n").as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut buffer = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        // A local file: the read does not wait on the network.
        let read = match file.read(&mut buffer[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        if stream.write_all(&buffer[..read]).await.is_err() {
            return false;
        }
        left -= read as u64;
    }
    true
}

/// Runs a blocked client's command again after a wake-up, or replies the timeout.
fn retry_blocked(
    server: &mut Server,
    client: &mut ClientState,
    out: &mut ReplyWriter,
    timed_out: bool,
) {
    let Some(blocked) = client.blocked.take() else {
        return;
    };
    server.unblock(client.id, blocked.db, &blocked.keys);
    let unblocked = client.info.borrow_mut().unblock.take();
    // `CLIENT UNBLOCK id [TIMEOUT]` ends the wait as its timeout would.
    let as_timeout = timed_out || matches!(unblocked, Some(None));
    if as_timeout && blocked.rerun_on_timeout {
        // WAIT: its timeout reply is a count, which the command itself gives.
        client.wait_timed_out = true;
    } else if timed_out || unblocked.is_some() {
        let name = crate::commands::lookup(&blocked.args[0]).map_or("", |spec| spec.name);
        let error = unblocked.flatten();
        if let Some(message) = error {
            server.stats.error_replies += 1;
            server.command_stats.record_error(message);
            out.error(message);
        } else {
            out.null_array();
        }
        let track = server.settings.latency_tracking;
        server
            .command_stats
            .record_call(name, std::time::Duration::ZERO, error.is_some(), track);
        server.command.errors_seen = server.stats.error_replies;
        server.replication.remove_waiter(client.id);
        return;
    }
    server.now_ms = unix_ms();
    let db = std::mem::replace(&mut client.db, blocked.db);
    let mut ctx = Ctx {
        server: &mut *server,
        client: &mut *client,
        out: &mut *out,
    };
    ctx.client.serving_blocked = true;
    if blocked.recheck {
        crate::commands::execute(&mut ctx, &blocked.args);
    } else {
        crate::commands::execute_now(&mut ctx, &blocked.args);
    }
    client.serving_blocked = false;
    client.db = db;
    // Blocked again (another client took the data): keep the original deadline.
    if let Some(again) = client.blocked.as_mut() {
        again.deadline = blocked.deadline;
    }
}

/// Applies `CLIENT REPLY`: drops the reply just written when replies are off or skipped.
fn suppress_reply(client: &mut ClientState, out: &mut ReplyWriter, replies_before: usize) {
    use crate::commands::ReplyMode;
    match client.reply_mode {
        ReplyMode::On => {}
        ReplyMode::Off => out.buffer().truncate(replies_before),
        // Set by this very command (CLIENT REPLY SKIP): the next one is skipped.
        ReplyMode::SkipNext => client.reply_mode = ReplyMode::Skip,
        ReplyMode::Skip => {
            out.buffer().truncate(replies_before);
            client.reply_mode = ReplyMode::On;
        }
    }
}

/// When the buffer holds a pipelined batch, brings the table entries of its keys into the
/// cache together before the commands run one by one (on a large keyspace each lookup is
/// otherwise a chain of cache misses taken alone).
fn warm_pipelined_keys(server: &Server, db: usize, input: &[u8]) {
    let mut keys: [&[u8]; amber_keyspace::WARM_BATCH] = [&[]; amber_keyspace::WARM_BATCH];
    let mut count = 0;
    let scanned = amber_protocol::peek_keys(input, keys.len(), |key| {
        keys[count] = key;
        count += 1;
    });
    if scanned >= 2 {
        server
            .keyspace
            .db_ref(db)
            .warm_keys(keys[..count].iter().copied());
    }
}

/// Executes every complete request in `input`; false when the connection must close.
fn process_input(
    server: &mut Server,
    client: &mut ClientState,
    parser: &mut RequestParser,
    input: &mut BytesMut,
    out: &mut ReplyWriter,
) -> bool {
    if input.len() > server.settings.client_query_buffer_limit {
        crate::warning!(
            "Closing client that reached max query buffer length: {} (qbuf initial bytes: {:?})",
            crate::commands::describe_client(&client.info.borrow()),
            String::from_utf8_lossy(&input[..input.len().min(64)])
        );
        return false;
    }
    server.now_ms = unix_ms();
    let batch = {
        // As Redis's `qbuf`, the whole buffer read counts while its requests run.
        let mut info = client.info.borrow_mut();
        info.query_buffer = input.len();
        reply_batch(server, &info)
    };
    if !parser.in_progress() {
        warm_pipelined_keys(server, client.db, input);
    }
    loop {
        let limits = Limits {
            max_bulk_len: server.settings.proto_max_bulk_len,
            authenticated: client.authenticated,
        };
        match parser.next_request(input, &limits) {
            Ok(Some(args)) => {
                let replies_before = out.len();
                let mut ctx = Ctx {
                    server: &mut *server,
                    client: &mut *client,
                    out: &mut *out,
                };
                execute(&mut ctx, &args);
                // Subscription confirmations are sent whatever CLIENT REPLY says (Redis marks
                // them as pushes in both protocols).
                let pushed = [
                    b"subscribe".as_slice(),
                    b"unsubscribe",
                    b"psubscribe",
                    b"punsubscribe",
                    b"ssubscribe",
                    b"sunsubscribe",
                ]
                .iter()
                .any(|name| args[0].eq_ignore_ascii_case(name));
                if !pushed {
                    suppress_reply(client, out, replies_before);
                }
                if client.close_after_reply || client.blocked.is_some() || out.len() >= batch {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                out.error(&format!("ERR {error}"));
                crate::verbose!(
                    "Protocol error ({error}) from client: {}",
                    crate::commands::describe_client(&client.info.borrow())
                );
                client.close_after_reply = true;
                break;
            }
        }
    }
    let mut info = client.info.borrow_mut();
    info.last_interaction = Instant::now();
    info.query_buffer = input.len();
    info.argv_memory = parser.pending_bytes();
    true
}
