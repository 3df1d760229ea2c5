//! Replication against real peers: Debian's redis-server 7.0 as a replica of amber-server
//! (PSYNC, full resync from a snapshot, then the write stream), and the raw `SYNC` stream
//! that Redis's own test suite reads.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use common::{Client, ServerProcess, bulk, digest, info_field, wait_for};

/// Runs writes of every family, including ones that are propagated rewritten (relative
/// expiries, INCRBYFLOAT, SPOP, blocking pops, MULTI/EXEC).
fn write_everything(client: &mut Client, round: usize) {
    let key = |name: &str| format!("{name}:{round}");
    client.cmd(&["SET", &key("s"), "v"]);
    client.cmd(&["SET", &key("ttl"), "v", "EX", "1000"]);
    client.cmd(&["INCRBYFLOAT", &key("f"), "1.5"]);
    client.cmd(&["RPUSH", &key("l"), "a", "b", "c", "d"]);
    client.cmd(&["LMPOP", "1", &key("l"), "LEFT", "COUNT", "2"]);
    client.cmd(&["HSET", &key("h"), "f1", "1", "f2", "2"]);
    client.cmd(&["SADD", &key("set"), "1", "2", "3", "4"]);
    client.cmd(&["SPOP", &key("set")]);
    client.cmd(&["ZADD", &key("z"), "1", "a", "2", "b", "3", "c"]);
    client.cmd(&["ZMPOP", "1", &key("z"), "MAX", "COUNT", "5"]);
    client.cmd(&["ZADD", &key("z"), "1", "a"]);
    client.cmd(&["SELECT", "3"]);
    client.cmd(&["SET", &key("db3"), "x"]);
    client.cmd(&["SELECT", "0"]);
    client.cmd(&["MULTI"]);
    client.cmd(&["INCR", &key("counter")]);
    client.cmd(&["EXPIRE", &key("counter"), "500"]);
    client.cmd(&["EXEC"]);
}

#[test]
fn redis_replicates_from_amber_with_the_same_dataset() {
    let master = ServerProcess::amber(&[]);
    let mut writer = master.client();
    write_everything(&mut writer, 0);
    let port = master.port.to_string();
    let replica = ServerProcess::redis(&["--replicaof", "127.0.0.1", &port]);
    let mut reader = replica.client();
    wait_for(
        || info_field(&mut reader, "master_link_status") == "up",
        "the Redis replica to finish its full sync",
    );
    // Writes after the sync arrive through the stream.
    write_everything(&mut writer, 1);
    writer.cmd(&["SET", "last", "done"]);
    wait_for(
        || reader.cmd(&["GET", "last"]) == bulk("done"),
        "the stream to reach the replica",
    );
    assert_eq!(digest(&mut reader), digest(&mut writer));
    assert_eq!(info_field(&mut writer, "connected_slaves"), "1");
    let offset: u64 = info_field(&mut writer, "master_repl_offset")
        .parse()
        .expect("offset");
    assert!(offset > 0);
    // The replica is told where the stream started and counts from there.
    let replica_offset: u64 = info_field(&mut reader, "slave_repl_offset")
        .parse()
        .expect("replica offset");
    wait_for(
        || {
            info_field(&mut reader, "slave_repl_offset")
                .parse::<u64>()
                .is_ok_and(|o| o == offset)
        },
        "the replica offset to catch up",
    );
    assert!(replica_offset <= offset);
}

#[test]
fn a_replica_that_disconnects_is_forgotten() {
    let master = ServerProcess::amber(&[]);
    let mut writer = master.client();
    writer.cmd(&["SET", "k", "v"]);
    {
        use std::io::{Read, Write};
        let mut sync = std::net::TcpStream::connect(("127.0.0.1", master.port)).expect("connect");
        sync.write_all(b"SYNC\r\n").expect("send SYNC");
        // The snapshot comes as a bulk without a trailing CRLF: `$<len>\r\n` then the RDB.
        let mut first = [0u8; 1];
        sync.read_exact(&mut first).expect("snapshot header");
        assert_eq!(&first, b"$");
        wait_for(
            || info_field(&mut writer, "connected_slaves") == "1",
            "the replica to be listed",
        );
    }
    wait_for(
        || info_field(&mut writer, "connected_slaves") == "0",
        "the closed replica to be dropped",
    );
    // Writes go on with nobody to stream to.
    assert_eq!(writer.cmd(&["SET", "k", "w"]), common::simple("OK"));
}
