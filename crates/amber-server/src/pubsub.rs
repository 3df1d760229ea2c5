//! Pub/Sub state: which clients listen to which channels and patterns, and the delivery of a
//! published message to them. A message for another connection goes to that connection's
//! outbox (see [`crate::server::ClientInfo::outbox`]), which its task writes when woken; a
//! subscriber whose unsent messages pass the `pubsub` class of `client-output-buffer-limit`
//! is disconnected, so a subscriber that does not read cannot grow the server's memory.

use std::collections::HashMap;

use amber_keyspace::glob_match;
use amber_protocol::{Protocol, ReplyWriter};

use crate::server::{ClientInfo, OutputLimit, Server};

/// Channels and patterns with their subscribers, in subscription order.
#[derive(Default)]
pub(crate) struct PubSub {
    channels: HashMap<Vec<u8>, Vec<u64>>,
    /// Subscribers with new messages, woken together by [`flush_task`] once the connections
    /// ready now have run, so each writes what they all published in one `write` (Redis
    /// writes a client's output once per event-loop pass likewise).
    pending: Vec<(u64, std::rc::Rc<crate::signal::Signal>)>,
    /// Wakes [`flush_task`].
    flush: std::rc::Rc<tokio::sync::Notify>,
    /// Whether [`flush_task`] was woken and has not delivered yet: it is woken once per pass,
    /// never left with a stored wake-up that would run it a pass early (before the
    /// publishers' replies, see [`flush_task`]).
    flush_scheduled: bool,
    /// Connection tasks that built replies and yielded so other connections run first, not
    /// yet resumed to write them: [`flush_task`] waits for them (see there).
    pub(crate) replies_yielding: usize,
    /// Shard channels (SSUBSCRIBE): a namespace of their own, without patterns.
    shard_channels: HashMap<Vec<u8>, Vec<u64>>,
    patterns: Vec<(Vec<u8>, u64)>,
    /// `client-output-buffer-limit pubsub`: hard bytes, soft bytes, soft seconds.
    limits: OutputLimit,
}

impl PubSub {
    /// Reads the `pubsub` class of `client-output-buffer-limit`.
    pub(crate) fn configure(&mut self, output_limits: &str) {
        self.limits = OutputLimit::of_class(output_limits, "pubsub");
    }

    fn table(&mut self, shard: bool) -> &mut HashMap<Vec<u8>, Vec<u64>> {
        if shard {
            &mut self.shard_channels
        } else {
            &mut self.channels
        }
    }

    /// Adds `client` to `channel` (a shard channel with `shard`); false if it already
    /// listened.
    /// What `client` listens to: channels and shard channels (`false`) and patterns (`true`).
    pub(crate) fn subscriptions_of(&self, client: u64) -> Vec<(Vec<u8>, bool)> {
        let channels = self
            .channels
            .iter()
            .chain(&self.shard_channels)
            .filter(|(_, clients)| clients.contains(&client))
            .map(|(channel, _)| (channel.clone(), false));
        let patterns = self
            .patterns
            .iter()
            .filter(|(_, id)| *id == client)
            .map(|(pattern, _)| (pattern.clone(), true));
        channels.chain(patterns).collect()
    }

    pub(crate) fn subscribe(&mut self, client: u64, channel: &[u8], shard: bool) -> bool {
        let listeners = self.table(shard).entry(channel.to_vec()).or_default();
        if listeners.contains(&client) {
            return false;
        }
        listeners.push(client);
        true
    }

    /// Removes `client` from `channel` (a shard channel with `shard`); false if it did not
    /// listen.
    pub(crate) fn unsubscribe(&mut self, client: u64, channel: &[u8], shard: bool) -> bool {
        let table = self.table(shard);
        let Some(listeners) = table.get_mut(channel) else {
            return false;
        };
        let before = listeners.len();
        listeners.retain(|&id| id != client);
        let removed = listeners.len() != before;
        if listeners.is_empty() {
            table.remove(channel);
        }
        removed
    }

    /// Adds `client` to `pattern`; false if it already listened.
    pub(crate) fn psubscribe(&mut self, client: u64, pattern: &[u8]) -> bool {
        if self
            .patterns
            .iter()
            .any(|(p, id)| *id == client && p == pattern)
        {
            return false;
        }
        self.patterns.push((pattern.to_vec(), client));
        true
    }

    /// Removes `client` from `pattern`; false if it did not listen.
    pub(crate) fn punsubscribe(&mut self, client: u64, pattern: &[u8]) -> bool {
        let before = self.patterns.len();
        self.patterns
            .retain(|(p, id)| !(*id == client && p == pattern));
        self.patterns.len() != before
    }

    /// Active channels (shard channels with `shard`) matching `pattern` (all without one), for
    /// `PUBSUB CHANNELS` and `SHARDCHANNELS`.
    pub(crate) fn channels_matching(&self, pattern: Option<&[u8]>, shard: bool) -> Vec<Vec<u8>> {
        let table = if shard {
            &self.shard_channels
        } else {
            &self.channels
        };
        table
            .keys()
            .filter(|channel| pattern.is_none_or(|p| glob_match(p, channel, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`, `SHARDNUMSUB` with `shard`).
    pub(crate) fn subscriber_count(&self, channel: &[u8], shard: bool) -> usize {
        let table = if shard {
            &self.shard_channels
        } else {
            &self.channels
        };
        table.get(channel).map_or(0, Vec::len)
    }

    /// Number of shard channels with subscribers (`pubsubshard_channels`).
    pub(crate) fn shard_channel_count(&self) -> usize {
        self.shard_channels.len()
    }

    /// Number of distinct patterns listened to (`PUBSUB NUMPAT`, `pubsub_patterns`).
    pub(crate) fn pattern_count(&self) -> usize {
        let mut patterns: Vec<&[u8]> = self.patterns.iter().map(|(p, _)| p.as_slice()).collect();
        patterns.sort_unstable();
        patterns.dedup();
        patterns.len()
    }

    /// Number of channels with subscribers (`pubsub_channels`).
    pub(crate) fn channel_count(&self) -> usize {
        self.channels.len()
    }
}

/// One encoded message for a subscriber speaking `protocol`: `message channel payload` or
/// `pmessage pattern channel payload`, as a push in RESP3.
fn encode(protocol: Protocol, kind: Delivery<'_>, channel: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = ReplyWriter::new(protocol);
    match kind {
        Delivery::Pattern(pattern) => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(pattern);
        }
        Delivery::Channel => {
            out.push(3);
            out.bulk(b"message");
        }
        Delivery::Shard => {
            out.push(3);
            out.bulk(b"smessage");
        }
    }
    out.bulk(channel);
    out.bulk(message);
    out.buffer().to_vec()
}

/// How a message reaches one subscriber.
#[derive(Clone, Copy)]
enum Delivery<'a> {
    /// Subscribed to the channel (`message`).
    Channel,
    /// Subscribed to a matching pattern (`pmessage`).
    Pattern(&'a [u8]),
    /// Subscribed to the shard channel (`smessage`).
    Shard,
}

/// `PUBLISH`: delivers `message` to the subscribers of `channel` and of matching patterns;
/// returns how many received it. The publisher's own copy (RESP3) goes into `own_out`, ahead
/// of its reply, as Redis orders them.
pub(crate) fn publish(
    server: &mut Server,
    publisher: u64,
    own_out: &mut ReplyWriter,
    channel: &[u8],
    message: &[u8],
) -> usize {
    deliver_all(server, publisher, own_out, channel, message, false)
}

/// `SPUBLISH`: delivers `message` to the subscribers of the shard channel `channel` (patterns
/// never match shard channels).
pub(crate) fn spublish(
    server: &mut Server,
    publisher: u64,
    own_out: &mut ReplyWriter,
    channel: &[u8],
    message: &[u8],
) -> usize {
    deliver_all(server, publisher, own_out, channel, message, true)
}

fn deliver_all(
    server: &mut Server,
    publisher: u64,
    own_out: &mut ReplyWriter,
    channel: &[u8],
    message: &[u8],
    shard: bool,
) -> usize {
    let table = if shard {
        &server.pubsub.shard_channels
    } else {
        &server.pubsub.channels
    };
    let mut deliveries: Vec<(u64, Option<Vec<u8>>)> = table
        .get(channel)
        .map(|ids| ids.iter().map(|&id| (id, None)).collect())
        .unwrap_or_default();
    if !shard {
        deliveries.extend(
            server
                .pubsub
                .patterns
                .iter()
                .filter(|(pattern, _)| glob_match(pattern, channel, false))
                .map(|(pattern, id)| (*id, Some(pattern.clone()))),
        );
    }
    let limits = server.pubsub.limits;
    // The message as each protocol encodes it, built once per publish (a pattern delivery
    // names its pattern, so it is encoded for its subscriber).
    let mut encoded: [Option<Vec<u8>>; 2] = [None, None];
    let mut delivered = 0;
    for (id, pattern) in &deliveries {
        let kind = match (pattern, shard) {
            (Some(pattern), _) => Delivery::Pattern(pattern),
            (None, true) => Delivery::Shard,
            (None, false) => Delivery::Channel,
        };
        if *id == publisher {
            let bytes = encode(own_out.protocol(), kind, channel, message);
            own_out.buffer().extend_from_slice(&bytes);
            delivered += 1;
            continue;
        }
        let Some(info) = server.clients.get(id) else {
            continue;
        };
        let mut info = info.borrow_mut();
        // A subscriber dropped for its output limit receives nothing more (its connection
        // closes).
        if info.killed {
            continue;
        }
        delivered += 1;
        let protocol = if info.resp == 3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let queued = if pattern.is_some() {
            let bytes = encode(protocol, kind, channel, message);
            deliver(&mut info, &bytes, limits)
        } else {
            let slot = &mut encoded[usize::from(info.resp == 3)];
            let bytes = slot.get_or_insert_with(|| encode(protocol, kind, channel, message));
            deliver(&mut info, bytes, limits)
        };
        if queued && !info.push_pending {
            info.push_pending = true;
            server.pubsub.pending.push((*id, info.push.clone()));
        }
    }
    if !server.pubsub.pending.is_empty() {
        server.pubsub.request_flush();
    }
    delivered
}

impl PubSub {
    /// Asks [`flush_task`] to run once the connections ready now have run (tracking
    /// broadcasts wait for it too).
    pub(crate) fn request_flush(&mut self) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            self.flush.notify_one();
        }
    }
}

/// Queues encoded bytes (a push or a message) for connection `id`, as a published message
/// is, under the same output limit.
pub(crate) fn push_raw(server: &mut Server, id: u64, bytes: &[u8]) {
    let limits = server.pubsub.limits;
    let Some(info) = server.clients.get(&id) else {
        return;
    };
    let mut info = info.borrow_mut();
    if info.killed {
        return;
    }
    if deliver(&mut info, bytes, limits) && !info.push_pending {
        info.push_pending = true;
        server.pubsub.pending.push((id, info.push.clone()));
        drop(info);
        server.pubsub.request_flush();
    }
}

/// Sends the subscribers what was published to them, once every connection ready when the
/// first message came has run and written its replies (see [`PubSub::pending`]); tracking
/// broadcasts are sent first.
///
/// The publishers' replies go first, as Redis writes them: the task yields until no
/// connection is between building its replies and writing them. The publishers' next
/// requests then arrive while the messages are written, and the next pass reads them all
/// together; when the messages went first, the publishers split into groups that took turns,
/// and every subscriber was written to (and woken) about twice as often.
pub(crate) async fn flush_task(shared: std::rc::Rc<std::cell::RefCell<Server>>) {
    /// Passes the flush waits at most for replies (a bound, should a count go astray).
    const MAX_WAIT_PASSES: usize = 4;
    let flush = shared.borrow().pubsub.flush.clone();
    loop {
        flush.notified().await;
        for _ in 0..MAX_WAIT_PASSES {
            tokio::task::yield_now().await;
            if shared.borrow().pubsub.replies_yielding == 0 {
                break;
            }
        }
        let mut server = shared.borrow_mut();
        server.pubsub.flush_scheduled = false;
        flush_pending(&mut server);
    }
}

/// Sends every connection with queued messages what it can take now (tracking broadcasts
/// first), and wakes the tasks of those it could not finish.
///
/// The flush task runs it after the replies in flight; eviction runs it too before it
/// measures memory, as Redis writes its clients' buffers before it reads the next command:
/// otherwise invalidations queued by one eviction would count as used memory for the next
/// command, which would evict more and queue more, until the keyspace drained.
pub(crate) fn flush_pending(server: &mut Server) {
    server.broadcast_invalidations();
    let mut sent = 0;
    for (id, push) in std::mem::take(&mut server.pubsub.pending) {
        let Some(info) = server.clients.get(&id) else {
            continue;
        };
        let mut info = info.borrow_mut();
        info.push_pending = false;
        let (written, done) = send_now(&mut info);
        sent += written;
        if !done {
            push.notify_one();
        }
    }
    server.stats.net_output_bytes += sent as u64;
}

/// Writes a subscriber's outbox straight to its socket when its task waits for input, as
/// Redis writes a client's output from its event loop: that task then has no replies in
/// flight, so nothing can come between them, and waking it would cost a task poll per
/// subscriber. Returns the bytes written and whether the outbox is empty; otherwise (the task
/// is busy, the socket's buffer is full, or the write failed) the task writes the rest.
fn send_now(info: &mut ClientInfo) -> (usize, bool) {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, send};
    // `fd` is the socket the parked task owns: the task sets it to -1 before the socket
    // closes (INV-DIRECT-WRITE).
    if info.busy.parked.is_none() || info.killed || info.fd < 0 || info.outbox.is_empty() {
        return (0, info.outbox.is_empty());
    }
    let mut written = 0;
    while written < info.outbox.len() {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match send(info.fd, &info.outbox[written..], flags) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    info.outbox.drain(..written);
    if info.outbox.is_empty() && info.outbox.capacity() > 64 * 1024 {
        info.outbox = Vec::new();
    }
    (written, info.outbox.is_empty())
}

/// Queues one encoded message for another connection; false when that disconnected it (its
/// unsent messages passed the limits).
fn deliver(info: &mut ClientInfo, encoded: &[u8], limit: OutputLimit) -> bool {
    info.outbox.extend_from_slice(encoded);
    let pending = (info.outbox.len() + info.outbox_writing + info.reply_pending) as u64;
    !info.close_if_over(pending, limit)
}
