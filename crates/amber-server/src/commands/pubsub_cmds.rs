//! SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, their shard-channel forms
//! (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, with standalone semantics: one shard holds every
//! channel) and PUBSUB, with Redis's replies (confirmations as pushes in RESP3) and its
//! subscribed-mode rules for RESP2 clients.

use bytes::Bytes;

use super::{Ctx, is, subcommand_arity, unknown_subcommand};

/// Commands a RESP2 client may send while subscribed.
const ALLOWED_WHILE_SUBSCRIBED: &[&str] = &[
    "subscribe",
    "ssubscribe",
    "unsubscribe",
    "sunsubscribe",
    "psubscribe",
    "punsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Whether `command` is refused because a RESP2 client is in subscribed mode; the error is
/// replied then.
pub(crate) fn refused_in_subscribed_mode(ctx: &mut Ctx, command: &str) -> bool {
    let (channels, patterns, shard) = ctx.client.info.borrow().subscriptions;
    if channels + patterns + shard == 0
        || ctx.out.protocol() == amber_protocol::Protocol::Resp3
        || ALLOWED_WHILE_SUBSCRIBED.contains(&command)
    {
        return false;
    }
    ctx.error(&format!(
        "ERR Can't execute '{command}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ));
    true
}

/// `PING` while subscribed in RESP2: `pong` and the argument, as an array.
pub(crate) fn subscribed_ping(ctx: &mut Ctx, args: &[Bytes]) -> bool {
    let (channels, patterns, shard) = ctx.client.info.borrow().subscriptions;
    if channels + patterns + shard == 0 || ctx.out.protocol() == amber_protocol::Protocol::Resp3 {
        return false;
    }
    ctx.out.array(2);
    ctx.out.bulk(b"pong");
    ctx.out
        .bulk(args.get(1).map_or(&b""[..], |arg| arg.as_ref()));
    true
}

/// One confirmation: `kind name count` (the count of channels and patterns, or of shard
/// channels for the shard forms, as Redis counts them).
fn confirm(ctx: &mut Ctx, kind: &[u8], name: Option<&[u8]>) {
    let (channels, patterns, shard) = ctx.client.info.borrow().subscriptions;
    let count = if kind == b"ssubscribe" || kind == b"sunsubscribe" {
        shard
    } else {
        channels + patterns
    };
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match name {
        Some(name) => ctx.out.bulk(name),
        None => ctx.out.null(),
    }
    ctx.out.integer(count as i64);
}

/// `SUBSCRIBE channel [channel ...]`
pub(crate) fn subscribe(ctx: &mut Ctx, args: &[Bytes]) {
    subscribe_to(ctx, args, false);
}

/// `SSUBSCRIBE shardchannel [shardchannel ...]`
pub(crate) fn ssubscribe(ctx: &mut Ctx, args: &[Bytes]) {
    subscribe_to(ctx, args, true);
}

/// `UNSUBSCRIBE [channel ...]` (all channels without arguments).
pub(crate) fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) {
    unsubscribe_from(ctx, args, false);
}

/// `SUNSUBSCRIBE [shardchannel ...]` (all shard channels without arguments).
pub(crate) fn sunsubscribe(ctx: &mut Ctx, args: &[Bytes]) {
    unsubscribe_from(ctx, args, true);
}

/// The client's channels (its shard channels with `shard`).
fn channel_list(client: &mut super::ClientState, shard: bool) -> &mut Vec<Vec<u8>> {
    if shard {
        &mut client.shard_channels
    } else {
        &mut client.channels
    }
}

fn adjust_count(ctx: &mut Ctx, shard: bool, added: bool) {
    let mut info = ctx.client.info.borrow_mut();
    let count = if shard {
        &mut info.subscriptions.2
    } else {
        &mut info.subscriptions.0
    };
    if added {
        *count += 1;
    } else {
        *count = count.saturating_sub(1);
    }
}

fn subscribe_to(ctx: &mut Ctx, args: &[Bytes], shard: bool) {
    let (name, kind): (&str, &[u8]) = if shard {
        ("SSUBSCRIBE", b"ssubscribe")
    } else {
        ("SUBSCRIBE", b"subscribe")
    };
    if ctx.client.transaction.is_some() {
        return ctx.error(&format!(
            "ERR {name} isn't allowed for a DENY BLOCKING client"
        ));
    }
    for channel in &args[1..] {
        if ctx.server.pubsub.subscribe(ctx.client.id, channel, shard) {
            channel_list(ctx.client, shard).push(channel.to_vec());
            adjust_count(ctx, shard, true);
        }
        confirm(ctx, kind, Some(channel));
    }
}

fn unsubscribe_from(ctx: &mut Ctx, args: &[Bytes], shard: bool) {
    let kind: &[u8] = if shard {
        b"sunsubscribe"
    } else {
        b"unsubscribe"
    };
    let channels: Vec<Vec<u8>> = if args.len() > 1 {
        args[1..].iter().map(|c| c.to_vec()).collect()
    } else {
        channel_list(ctx.client, shard).clone()
    };
    if channels.is_empty() {
        return confirm(ctx, kind, None);
    }
    for channel in channels {
        if ctx
            .server
            .pubsub
            .unsubscribe(ctx.client.id, &channel, shard)
        {
            adjust_count(ctx, shard, false);
            channel_list(ctx.client, shard).retain(|c| *c != channel);
        }
        confirm(ctx, kind, Some(&channel));
    }
}

/// `SPUBLISH shardchannel message`: the number of clients that received it.
pub(crate) fn spublish(ctx: &mut Ctx, args: &[Bytes]) {
    let id = ctx.client.id;
    let received = crate::pubsub::spublish(ctx.server, id, ctx.out, &args[1], &args[2]);
    ctx.out.integer(received as i64);
    propagate_to_replicas(ctx, args);
}

/// PUBLISH and SPUBLISH go to the replicas (not the AOF), so that their subscribers get the
/// message too, as in Redis.
fn propagate_to_replicas(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.server.replication.streaming() {
        let db = ctx.client.db;
        ctx.server.propagate_to_replicas_only(db, args);
    }
}

/// `PSUBSCRIBE pattern [pattern ...]`
pub(crate) fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) {
    if ctx.client.transaction.is_some() {
        return ctx.error("ERR PSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    for pattern in &args[1..] {
        if ctx.server.pubsub.psubscribe(ctx.client.id, pattern) {
            ctx.client.patterns.push(pattern.to_vec());
            ctx.client.info.borrow_mut().subscriptions.1 += 1;
        }
        confirm(ctx, b"psubscribe", Some(pattern));
    }
}

/// `PUNSUBSCRIBE [pattern ...]` (all patterns without arguments).
pub(crate) fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) {
    let patterns: Vec<Vec<u8>> = if args.len() > 1 {
        args[1..].iter().map(|p| p.to_vec()).collect()
    } else {
        ctx.client.patterns.clone()
    };
    if patterns.is_empty() {
        return confirm(ctx, b"punsubscribe", None);
    }
    for pattern in patterns {
        if ctx.server.pubsub.punsubscribe(ctx.client.id, &pattern) {
            ctx.client.info.borrow_mut().subscriptions.1 -= 1;
            ctx.client.patterns.retain(|p| *p != pattern);
        }
        confirm(ctx, b"punsubscribe", Some(&pattern));
    }
}

/// Forgets every subscription of the client (RESET, disconnection).
pub(crate) fn unsubscribe_all(server: &mut crate::server::Server, client: &mut super::ClientState) {
    let id = client.id;
    for channel in std::mem::take(&mut client.channels) {
        server.pubsub.unsubscribe(id, &channel, false);
    }
    for channel in std::mem::take(&mut client.shard_channels) {
        server.pubsub.unsubscribe(id, &channel, true);
    }
    for pattern in std::mem::take(&mut client.patterns) {
        server.pubsub.punsubscribe(id, &pattern);
    }
    client.info.borrow_mut().subscriptions = (0, 0, 0);
}

/// `PUBLISH channel message`: the number of clients that received it.
pub(crate) fn publish(ctx: &mut Ctx, args: &[Bytes]) {
    let id = ctx.client.id;
    let received = crate::pubsub::publish(ctx.server, id, ctx.out, &args[1], &args[2]);
    ctx.out.integer(received as i64);
    propagate_to_replicas(ctx, args);
}

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Print this help.",
];

/// `PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP`
pub(crate) fn pubsub(ctx: &mut Ctx, args: &[Bytes]) {
    let sub = &args[1];
    if is(sub, "help") && args.len() == 2 {
        ctx.out.array(HELP.len());
        HELP.iter().for_each(|line| ctx.out.simple(line));
    } else if is(sub, "channels") && args.len() <= 3 {
        reply_channels(ctx, args.get(2), false);
    } else if is(sub, "numsub") {
        reply_numsub(ctx, &args[2..], false);
    } else if is(sub, "numpat") && args.len() == 2 {
        let count = ctx.server.pubsub.pattern_count();
        ctx.out.integer(count as i64);
    } else if is(sub, "shardchannels") && args.len() <= 3 {
        reply_channels(ctx, args.get(2), true);
    } else if is(sub, "shardnumsub") {
        reply_numsub(ctx, &args[2..], true);
    } else if ["help", "channels", "numpat", "shardchannels"]
        .iter()
        .any(|known| is(sub, known))
    {
        subcommand_arity(ctx, "pubsub", sub);
    } else {
        unknown_subcommand(ctx, "pubsub", sub);
    }
}

/// `PUBSUB CHANNELS | SHARDCHANNELS [pattern]`: the active (shard) channels.
fn reply_channels(ctx: &mut Ctx, pattern: Option<&Bytes>, shard: bool) {
    let channels = ctx
        .server
        .pubsub
        .channels_matching(pattern.map(|p| p.as_ref()), shard);
    ctx.out.array(channels.len());
    channels.iter().for_each(|channel| ctx.out.bulk(channel));
}

/// `PUBSUB NUMSUB | SHARDNUMSUB channel ...`: each channel with its subscriber count.
fn reply_numsub(ctx: &mut Ctx, channels: &[Bytes], shard: bool) {
    ctx.out.map(channels.len());
    for channel in channels {
        ctx.out.bulk(channel);
        let count = ctx.server.pubsub.subscriber_count(channel, shard);
        ctx.out.integer(count as i64);
    }
}
