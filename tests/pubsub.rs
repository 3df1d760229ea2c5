//! Pub/Sub with a real client library (the `redis` crate's PubSub), raw RESP2/RESP3 frames,
//! and a subscriber that does not read being disconnected at the output limit.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{ServerProcess, info_field, wait_for};

#[test]
fn a_client_library_receives_channel_and_pattern_messages() {
    let server = ServerProcess::amber(&[]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).expect("url");
    let mut connection = client.get_connection().expect("connect");
    let mut pubsub = connection.as_pubsub();
    pubsub.subscribe("news").expect("subscribe");
    pubsub.psubscribe("sport.*").expect("psubscribe");
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut publisher = server.client();
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "hello"]),
        amber_protocol::Frame::Integer(1)
    );
    let message = pubsub.get_message().expect("message");
    assert_eq!(message.get_channel_name(), "news");
    assert_eq!(message.get_payload::<String>().expect("payload"), "hello");
    publisher.cmd(&["PUBLISH", "sport.tennis", "set point"]);
    let message = pubsub.get_message().expect("pattern message");
    assert_eq!(message.get_pattern::<String>().expect("pattern"), "sport.*");
    assert_eq!(message.get_channel_name(), "sport.tennis");
    assert_eq!(info_field(&mut publisher, "pubsub_channels"), "1");
    assert_eq!(info_field(&mut publisher, "pubsub_patterns"), "1");
    pubsub.unsubscribe("news").expect("unsubscribe");
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "nobody"]),
        amber_protocol::Frame::Integer(0)
    );
}

#[test]
fn subscribed_resp2_clients_may_only_subscribe_and_ping() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    client.cmd(&["SUBSCRIBE", "a"]);
    let refused = client.cmd(&["GET", "k"]);
    assert_eq!(
        refused,
        common::error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )
    );
    assert_eq!(
        client.cmd(&["PING"]),
        amber_protocol::Frame::Array(vec![common::bulk("pong"), common::bulk("")])
    );
    assert_eq!(client.cmd(&["RESET"]), common::simple("RESET"));
    assert_eq!(client.cmd(&["SET", "k", "v"]), common::simple("OK"));
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_limit() {
    let server = ServerProcess::amber(&[]);
    let mut admin = server.client();
    admin.cmd(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 1mb 0 0",
    ]);
    let mut lazy = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    lazy.write_all(b"SUBSCRIBE firehose\r\n")
        .expect("subscribe");
    let mut confirmation = [0u8; 16];
    lazy.read_exact(&mut confirmation).expect("confirmation");
    // The subscriber reads nothing from now on; the kernel buffers fill, then the outbox.
    let payload = "x".repeat(64 * 1024);
    let mut published = 0;
    wait_for(
        || {
            let reply = admin.cmd(&["PUBLISH", "firehose", &payload]);
            published += 1;
            reply == amber_protocol::Frame::Integer(0) || published > 2000
        },
        "the subscriber to be dropped",
    );
    assert!(published <= 2000, "never disconnected");
    assert_eq!(info_field(&mut admin, "pubsub_channels"), "0");
    assert!(
        server
            .log()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits"),
        "{}",
        server.log()
    );
}

/// Messages larger than a socket buffer to a subscriber that starts reading late: the server
/// writes what fits straight from its event loop and the connection's task writes the rest,
/// and a PING reply lands between whole messages. Every message arrives once, whole and in
/// order.
#[test]
fn a_slow_subscriber_receives_large_messages_whole_and_in_order() {
    const MESSAGES: usize = 120;
    let server = ServerProcess::amber(&[]);
    let mut subscriber = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    subscriber
        .write_all(b"SUBSCRIBE bulky\r\n")
        .expect("subscribe");
    let mut received: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 256 * 1024];
    while received.len() < b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbulky\r\n:1\r\n".len() {
        let read = subscriber.read(&mut buffer).expect("confirmation");
        received.extend_from_slice(&buffer[..read]);
    }
    received.clear();
    let payload = |i: usize| format!("{i:05}:{}", "y".repeat(100 * 1024 + i));
    let mut publisher = server.client();
    for i in 0..MESSAGES {
        if i == MESSAGES / 2 {
            subscriber.write_all(b"PING\r\n").expect("ping");
        }
        assert_eq!(
            publisher.cmd(&["PUBLISH", "bulky", &payload(i)]),
            amber_protocol::Frame::Integer(1)
        );
    }
    subscriber
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut frames = Vec::new();
    while frames.len() < MESSAGES + 1 {
        let read = subscriber.read(&mut buffer).expect("messages");
        assert!(read > 0, "closed after {} frames", frames.len());
        received.extend_from_slice(&buffer[..read]);
        while let Some((frame, used)) = amber_protocol::Frame::parse(&received).expect("a frame") {
            received.drain(..used);
            frames.push(frame);
        }
    }
    let pong = amber_protocol::Frame::Array(vec![common::bulk("pong"), common::bulk("")]);
    let mut next = 0;
    for frame in frames {
        if frame == pong {
            continue;
        }
        let expected = amber_protocol::Frame::Array(vec![
            common::bulk("message"),
            common::bulk("bulky"),
            common::bulk(&payload(next)),
        ]);
        assert!(frame == expected, "message {next} is not whole");
        next += 1;
    }
    assert_eq!(next, MESSAGES);
}

/// A subscriber whose messages wait in the server (it does not read yet) and that meanwhile
/// sends more PINGs than the socket buffers hold: the server reads them while it writes the
/// messages, as Redis does, instead of each side waiting on the other.
fn pings_while_messages_wait(server: &ServerProcess) {
    const MESSAGES: usize = 30;
    const PINGS: usize = 20_000;
    let mut subscriber = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    subscriber
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    subscriber
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut control = server.client();
    control.cmd(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 0 0 0",
    ]);
    subscriber
        .write_all(b"SUBSCRIBE bulky\r\n")
        .expect("subscribe");
    let confirmation = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbulky\r\n:1\r\n";
    let mut received = vec![0u8; confirmation.len()];
    subscriber.read_exact(&mut received).expect("confirmation");
    assert_eq!(&received[..], &confirmation[..]);
    received.clear();
    let message = "m".repeat(1 << 20);
    for _ in 0..MESSAGES {
        control.cmd(&["PUBLISH", "bulky", &message]);
    }
    let argument = "p".repeat(1000);
    let pings = format!("*2\r\n$4\r\nPING\r\n$1000\r\n{argument}\r\n").repeat(PINGS);
    subscriber
        .write_all(pings.as_bytes())
        .expect("the server stopped reading a subscriber whose messages wait");
    let mut buffer = vec![0u8; 1 << 16];
    let (mut messages, mut pongs) = (0, 0);
    while messages + pongs < MESSAGES + PINGS {
        let read = subscriber.read(&mut buffer).expect("messages and pongs");
        assert!(
            read > 0,
            "closed after {messages} messages and {pongs} pongs"
        );
        received.extend_from_slice(&buffer[..read]);
        let mut used = 0;
        while let Some((frame, length)) =
            amber_protocol::Frame::parse(&received[used..]).expect("a frame")
        {
            used += length;
            let amber_protocol::Frame::Array(parts) = frame else {
                panic!("not a push");
            };
            if parts.len() == 3 {
                assert_eq!(parts[2], common::bulk(&message));
                assert_eq!(pongs, 0, "messages come before the PINGs' replies");
                messages += 1;
            } else {
                assert_eq!(parts, vec![common::bulk("pong"), common::bulk(&argument)]);
                pongs += 1;
            }
        }
        received.drain(..used);
    }
}

#[test]
fn a_subscriber_pinging_while_its_messages_wait_is_served() {
    pings_while_messages_wait(&ServerProcess::amber(&[]));
}

#[test]
fn redis_serves_a_subscriber_pinging_while_its_messages_wait() {
    pings_while_messages_wait(&ServerProcess::redis(&[]));
}

#[test]
fn monitor_shows_other_clients_commands() {
    let server = ServerProcess::amber(&[]);
    let mut monitor = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    monitor
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    monitor.write_all(b"MONITOR\r\n").expect("monitor");
    let mut ok = [0u8; 5];
    monitor.read_exact(&mut ok).expect("+OK");
    assert_eq!(&ok, b"+OK\r\n");
    let mut other = server.client();
    other.cmd(&["SET", "k", "a\"b"]);
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        monitor.read_exact(&mut byte).expect("monitor line");
        seen.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&seen);
    assert!(line.starts_with('+'), "{line}");
    assert!(line.ends_with("] \"SET\" \"k\" \"a\\\"b\"\r\n"), "{line}");
    let amber_protocol::Frame::Bulk(list) = other.cmd(&["CLIENT", "LIST"]) else {
        panic!("CLIENT LIST is a bulk string");
    };
    assert!(String::from_utf8_lossy(&list).contains("flags=O"));
}

/// The frames one subscriber and one publisher see for a scripted exchange.
fn shard_exchange(server: &ServerProcess) -> Vec<amber_protocol::Frame> {
    let mut subscriber = server.client();
    let mut publisher = server.client();
    let mut seen = Vec::new();
    subscriber.send(&["SSUBSCRIBE", "s1", "s2", "s1"]);
    for _ in 0..3 {
        seen.push(subscriber.read().unwrap());
    }
    seen.push(publisher.cmd(&["SPUBLISH", "s1", "hello"]));
    seen.push(subscriber.read().unwrap());
    seen.push(publisher.cmd(&["PUBLISH", "s1", "not for shard subscribers"]));
    seen.push(publisher.cmd(&["PUBSUB", "SHARDNUMSUB", "s1", "s2", "s3"]));
    seen.push(publisher.cmd(&["PUBSUB", "NUMSUB", "s1"]));
    seen.push(publisher.cmd(&["SPUBLISH", "s3", "nobody"]));
    // A shard subscriber is in subscribed mode too (RESP2).
    subscriber.send(&["GET", "k"]);
    seen.push(subscriber.read().unwrap());
    // (Without arguments, Redis's order is its hash table's: only one channel is left then.)
    subscriber.send(&["SUNSUBSCRIBE", "s2"]);
    seen.push(subscriber.read().unwrap());
    subscriber.send(&["SUNSUBSCRIBE"]);
    seen.push(subscriber.read().unwrap());
    subscriber.send(&["SUNSUBSCRIBE"]);
    seen.push(subscriber.read().unwrap());
    // Confirmations come through CLIENT REPLY OFF.
    subscriber.send(&["CLIENT", "REPLY", "OFF"]);
    subscriber.send(&["SUBSCRIBE", "c1"]);
    seen.push(subscriber.read().unwrap());
    seen.push(publisher.cmd(&["PUBLISH", "c1", "after reply off"]));
    seen.push(subscriber.read().unwrap());
    seen
}

#[test]
fn shard_channels_behave_as_in_redis() {
    let amber = shard_exchange(&ServerProcess::amber(&[]));
    let redis = shard_exchange(&ServerProcess::redis(&[]));
    assert_eq!(amber, redis);
}
