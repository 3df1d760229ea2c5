//! Serving other clients while a script runs past `busy-reply-threshold`.
//!
//! The event loop is busy inside the script, so the connection tasks cannot run. Like Redis's
//! `processEventsWhileBlocked`, the script's interrupt hook comes here every 100,000 Lua
//! instructions: each client whose task waits for input with an empty buffer has parked its
//! state in its [`ClientInfo`]; what it sent is read straight from its socket, the commands
//! allowed while busy (`SCRIPT KILL`, `FUNCTION KILL`, `SHUTDOWN NOSAVE`, `MULTI`, `AUTH`,
//! `HELLO`...) run, every other command gets `-BUSY`, and the replies are written straight
//! back. An incomplete request is left to the task, which reads it first when it resumes.

use std::cell::RefCell;
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use amber_protocol::{Frame, Protocol, ReplyWriter};
use bytes::Bytes;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};

use crate::commands::{Ctx, execute};
use crate::server::{ClientInfo, Server};

/// At most this much input is taken from one client per visit.
const MAX_READ: usize = 1 << 20;

/// Called from a running script's interrupt hook once the script is busy.
pub(crate) fn serve_while_busy(server: &mut Server) {
    let clients: Vec<Rc<RefCell<ClientInfo>>> = server.clients.values().cloned().collect();
    for info in clients {
        if info.borrow().flags == 'S' {
            notice_lost_replica(server, &info);
        } else {
            serve_client(server, &info);
        }
    }
}

/// A replica whose connection closed is detached at once, as Redis does while busy, so a
/// script waiting on `connected_slaves` (or `min-replicas-to-write`) sees it go.
fn notice_lost_replica(server: &mut Server, info: &Rc<RefCell<ClientInfo>>) {
    let (id, fd) = {
        let info = info.borrow();
        (info.id, info.fd)
    };
    let mut probe = [0u8; 1];
    let closed = matches!(
        recv(fd, &mut probe, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK),
        Ok(0)
    );
    let attached = server.replication.replicas.contains(id);
    if closed && attached {
        let addr = info.borrow().addr.clone();
        server.replica_connection_lost(id, &addr);
    }
}

/// Wakes the tasks of clients whose input was read while the script was busy, once it is
/// over, so they handle the rest.
pub(crate) fn resume_clients(server: &Server) {
    for info in server.clients.values() {
        let info = info.borrow();
        if !info.busy.input.is_empty() {
            info.push.notify_one();
        }
    }
}

fn serve_client(server: &mut Server, info: &Rc<RefCell<ClientInfo>>) {
    let (fd, resp, mut pending) = {
        let mut info = info.borrow_mut();
        if !info.busy.idle || info.busy.parked.is_none() || info.killed || info.fd < 0 {
            return;
        }
        (info.fd, info.resp, std::mem::take(&mut info.busy.input))
    };
    read_available(fd, &mut pending);
    let protocol = if resp == 3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let mut out = ReplyWriter::new(protocol);
    let mut consumed = 0;
    while let Some((args, used)) = next_command(&pending[consumed..]) {
        consumed += used;
        if args.is_empty() {
            continue;
        }
        if !handle(server, info, &args, &mut out) {
            break;
        }
    }
    server.stats.net_input_bytes += consumed as u64;
    pending.drain(..consumed);
    info.borrow_mut().busy.input = pending;
    write_all(fd, out.buffer());
    server.stats.net_output_bytes += out.len() as u64;
}

/// Reads what the client sent, without waiting.
fn read_available(fd: i32, pending: &mut Vec<u8>) {
    let mut buffer = [0u8; 16 * 1024];
    while pending.len() < MAX_READ {
        match recv(fd, &mut buffer, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
}

/// Writes a reply to a client's socket, waiting a little if its buffer is full.
fn write_all(fd: i32, mut data: &[u8]) {
    let mut attempts = 0;
    while !data.is_empty() && attempts < 100 {
        match send(fd, data, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
            Ok(written) => data = &data[written..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                attempts += 1;
                // SAFETY: `fd` is the client's socket, open while the client is registered.
                let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                let mut polled = [nix::poll::PollFd::new(
                    borrowed,
                    nix::poll::PollFlags::POLLOUT,
                )];
                let _ = nix::poll::poll(&mut polled, nix::poll::PollTimeout::from(10u8));
            }
            Err(_) => return,
        }
    }
}

/// The next complete request at the front of `input` and the bytes it takes; `None` when it
/// has not fully arrived (or is malformed: the task reports that once it resumes).
fn next_command(input: &[u8]) -> Option<(Vec<Bytes>, usize)> {
    if input.is_empty() {
        return None;
    }
    if input[0] == b'*' {
        let (frame, used) = Frame::parse(input).ok()??;
        let Frame::Array(items) = frame else {
            return None;
        };
        let args = items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(bytes) => Some(Bytes::from(bytes)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        return Some((args, used));
    }
    let end = input.iter().position(|&b| b == b'\n')?;
    let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    let args = amber_protocol::split_args(line).ok()?;
    Some((args.into_iter().map(Bytes::from).collect(), end + 1))
}

/// Whether Redis runs this command while a script is busy (its `allow-busy` flag).
fn allowed_while_busy(args: &[Bytes]) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let sub = args
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    match name.as_str() {
        "auth" | "discard" | "hello" | "multi" | "quit" | "replconf" | "reset" | "shutdown"
        | "unwatch" | "watch" => true,
        "script" => sub.as_deref() == Some("kill"),
        "function" => matches!(sub.as_deref(), Some("kill" | "stats")),
        _ => false,
    }
}

/// Serves one request; false when the client is closing and nothing more is read from it.
fn handle(
    server: &mut Server,
    info: &Rc<RefCell<ClientInfo>>,
    args: &[Bytes],
    out: &mut ReplyWriter,
) -> bool {
    if server.loading.is_some() && !crate::commands::allowed_while_loading(args) {
        // A script replayed from the AOF: the dataset is still loading.
        let message = "LOADING Redis is loading the dataset in memory";
        server.stats.error_replies += 1;
        server.command_stats.record_error(message);
        out.error(message);
        return true;
    }
    if !allowed_while_busy(args) {
        let eval = server.scripting.running.as_ref().is_none_or(|r| r.eval);
        let message = if eval {
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        } else {
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        };
        let parked = info.borrow_mut().busy.parked.take();
        let Some(mut client) = parked else {
            server.stats.error_replies += 1;
            server.command_stats.record_error(message);
            out.error(message);
            return true;
        };
        // With the client's state at hand, its transaction learns of the refusal.
        let mut ctx = Ctx {
            server: &mut *server,
            client: &mut client,
            out: &mut *out,
        };
        crate::commands::refuse(&mut ctx, args, message);
        info.borrow_mut().busy.parked = Some(client);
        return true;
    }
    if args[0].eq_ignore_ascii_case(b"shutdown") {
        shutdown_while_busy(server, args, out);
        return true;
    }
    let Some(mut client) = info.borrow_mut().busy.parked.take() else {
        return false;
    };
    server.now_ms = crate::server::unix_ms();
    let mut ctx = Ctx {
        server: &mut *server,
        client: &mut client,
        out: &mut *out,
    };
    execute(&mut ctx, args);
    let closing = client.close_after_reply;
    if closing {
        let mut info = info.borrow_mut();
        info.killed = true;
        info.kill.notify_one();
    }
    info.borrow_mut().busy.parked = Some(client);
    !closing
}

/// `SHUTDOWN NOSAVE` ends the server at once, script and all, as Redis does; a shutdown that
/// would save is refused while the script runs.
fn shutdown_while_busy(server: &mut Server, args: &[Bytes], out: &mut ReplyWriter) {
    let nosave = args[1..]
        .iter()
        .any(|arg| arg.eq_ignore_ascii_case(b"nosave"));
    if !nosave {
        crate::warning!("Refusing to save on SHUTDOWN while a script runs; use SHUTDOWN NOSAVE.");
        out.error("ERR Errors trying to SHUTDOWN. Check logs.");
        return;
    }
    crate::warning!("User requested shutdown...");
    crate::warning!("SHUTDOWN NOSAVE while a script was busy: exiting without saving.");
    if let Err(error) = server.aof.close() {
        crate::warning!("Error closing the AOF file: {error}");
    }
    let pidfile = server.config.get("pidfile").to_string();
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    let unix_socket = server.config.get("unixsocket").to_string();
    if !unix_socket.is_empty() {
        let _ = std::fs::remove_file(&unix_socket);
    }
    crate::warning!("Amber is now ready to exit, bye bye...");
    std::process::exit(0);
}
