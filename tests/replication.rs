//! Replication against real peers: Debian's redis-server 7.0 as a replica of amber-server
//! (PSYNC, full resync from a snapshot, then the write stream), and the raw `SYNC` stream
//! that Redis's own test suite reads.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use common::{Client, Frame, ServerProcess, bulk, digest, info_field, wait_for};

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

/// Waits until the replica `reader` reports its link up.
#[track_caller]
fn wait_link_up(reader: &mut Client) {
    wait_for(
        || info_field(reader, "master_link_status") == "up",
        "the replica's link to its master",
    );
}

/// Waits until `replica` has applied everything `master` produced so far.
#[track_caller]
fn wait_caught_up(master: &mut Client, replica: &mut Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let target = info_field(master, "master_repl_offset");
        if info_field(replica, "master_repl_offset") == target {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not reach the master's offset:\nmaster: {:?}\nreplica: {:?}",
            master.cmd(&["INFO", "replication"]),
            replica.cmd(&["INFO", "replication"]),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn stat(client: &mut Client, field: &str) -> u64 {
    info_field(client, field).parse().expect("a number")
}

#[test]
fn amber_replicates_from_redis_in_both_transfer_forms() {
    for diskless in ["yes", "no"] {
        let master = ServerProcess::redis(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let mut writer = master.client();
        write_everything(&mut writer, 0);
        writer.cmd(&["SET", "volatile", "v", "PX", "300"]);
        let port = master.port.to_string();
        let replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
        let mut reader = replica.client();
        wait_link_up(&mut reader);
        write_everything(&mut writer, 1);
        wait_caught_up(&mut writer, &mut reader);
        assert_eq!(
            digest(&mut reader),
            digest(&mut writer),
            "diskless {diskless}"
        );
        // A read-only replica refuses writes with Redis's error.
        assert_eq!(
            reader.cmd(&["SET", "x", "y"]),
            common::error("READONLY You can't write against a read only replica.")
        );
        // A key that expired reads as gone on the replica, which still holds it until the
        // master's DEL arrives.
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert_eq!(reader.cmd(&["GET", "volatile"]), Frame::NullBulk);
        writer.cmd(&["GET", "volatile"]);
        wait_caught_up(&mut writer, &mut reader);
        assert_eq!(digest(&mut reader), digest(&mut writer));
        let log = replica.log();
        assert!(
            log.contains("MASTER <-> REPLICA sync: Finished with success"),
            "{log}"
        );
        let form = if diskless == "yes" {
            "receiving streamed RDB from master with EOF to disk"
        } else {
            "bytes from master to disk"
        };
        assert!(log.contains(form), "{log}");
    }
}

#[test]
fn a_chain_amber_to_amber_to_redis_keeps_one_history() {
    for diskless in ["yes", "no"] {
        let master = ServerProcess::amber(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let mut writer = master.client();
        write_everything(&mut writer, 0);
        let port = master.port.to_string();
        let middle = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
        let mut middle_client = middle.client();
        wait_link_up(&mut middle_client);
        let middle_port = middle.port.to_string();
        let leaf = ServerProcess::redis(&["--replicaof", "127.0.0.1", &middle_port]);
        let mut leaf_client = leaf.client();
        wait_link_up(&mut leaf_client);
        write_everything(&mut writer, 1);
        wait_caught_up(&mut writer, &mut middle_client);
        wait_caught_up(&mut writer, &mut leaf_client);
        let expected = digest(&mut writer);
        assert_eq!(digest(&mut middle_client), expected);
        assert_eq!(digest(&mut leaf_client), expected);
        // One replication id along the chain.
        let replid = info_field(&mut writer, "master_replid");
        assert_eq!(info_field(&mut middle_client, "master_replid"), replid);
        assert_eq!(info_field(&mut leaf_client, "master_replid"), replid);
        assert_eq!(
            middle_client.cmd(&["ROLE"]),
            Frame::Array(vec![
                bulk("slave"),
                bulk("127.0.0.1"),
                Frame::Integer(i64::from(master.port)),
                bulk("connected"),
                Frame::Integer(stat(&mut middle_client, "master_repl_offset") as i64),
            ])
        );
    }
}

/// A TCP proxy between a replica and its master whose connections the test can cut.
struct Proxy {
    port: u16,
    links: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn to(target: u16) -> Proxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = links.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut kept = shared.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                drop(kept);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, links }
    }

    /// Drops every connection through the proxy, as a network failure would.
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            let _ = link.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_broken_link_resumes_with_a_partial_resync() {
    // Amber replica of Amber, and Redis replica of Amber, each through a proxy that is cut
    // while the master keeps writing.
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut writer = master.client();
    write_everything(&mut writer, 0);
    let proxy_amber = Proxy::to(master.port);
    let proxy_redis = Proxy::to(master.port);
    let amber = ServerProcess::amber(&["--replicaof", "127.0.0.1", &proxy_amber.port.to_string()]);
    let redis = ServerProcess::redis(&["--replicaof", "127.0.0.1", &proxy_redis.port.to_string()]);
    let (mut amber_client, mut redis_client) = (amber.client(), redis.client());
    wait_link_up(&mut amber_client);
    wait_link_up(&mut redis_client);
    assert_eq!(stat(&mut writer, "sync_full"), 2);
    for round in 1..4 {
        proxy_amber.cut();
        proxy_redis.cut();
        write_everything(&mut writer, round);
        wait_caught_up(&mut writer, &mut amber_client);
        wait_caught_up(&mut writer, &mut redis_client);
    }
    let expected = digest(&mut writer);
    assert_eq!(digest(&mut amber_client), expected);
    assert_eq!(digest(&mut redis_client), expected);
    // No further snapshot: every reconnection continued from the backlog.
    assert_eq!(stat(&mut writer, "sync_full"), 2);
    assert!(stat(&mut writer, "sync_partial_ok") >= 6);
    assert!(
        amber
            .log()
            .contains("Successful partial resynchronization with master.")
    );
}

#[test]
fn a_write_acknowledged_by_wait_survives_the_masters_death() {
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut writer = master.client();
    let port = master.port.to_string();
    let replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    for i in 0..200 {
        writer.cmd(&["SET", &format!("k{i}"), &i.to_string()]);
    }
    writer.cmd(&["SET", "acknowledged", "yes"]);
    assert_eq!(writer.cmd(&["WAIT", "1", "5000"]), Frame::Integer(1));
    // WAIT counts only replicas that acknowledged: asking for two gives one after the timeout.
    assert_eq!(writer.cmd(&["WAIT", "2", "200"]), Frame::Integer(1));
    master.kill9();
    assert_eq!(
        reader.cmd(&["REPLICAOF", "NO", "ONE"]),
        common::simple("OK")
    );
    assert_eq!(reader.cmd(&["GET", "acknowledged"]), bulk("yes"));
    assert_eq!(reader.cmd(&["DBSIZE"]), Frame::Integer(201));
    // Promoted: it takes writes and keeps the old history as its second id.
    assert_eq!(reader.cmd(&["SET", "after", "1"]), common::simple("OK"));
    assert_ne!(info_field(&mut reader, "master_replid2"), common::NO_REPLID);
}

#[test]
fn after_a_failover_the_old_master_rejoins_without_a_full_sync() {
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut old = master.client();
    write_everything(&mut old, 0);
    let port = master.port.to_string();
    let replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
    let mut new = replica.client();
    wait_link_up(&mut new);
    wait_caught_up(&mut old, &mut new);
    assert_eq!(new.cmd(&["REPLICAOF", "NO", "ONE"]), common::simple("OK"));
    write_everything(&mut new, 1);
    let new_port = replica.port.to_string();
    assert_eq!(
        old.cmd(&["REPLICAOF", "127.0.0.1", &new_port]),
        common::simple("OK")
    );
    wait_link_up(&mut old);
    wait_caught_up(&mut new, &mut old);
    assert_eq!(digest(&mut old), digest(&mut new));
    assert_eq!(stat(&mut new, "sync_full"), 0);
    assert_eq!(stat(&mut new, "sync_partial_ok"), 1);
    assert!(
        master.log().contains("Master replication ID changed to"),
        "{}",
        master.log()
    );
}

#[test]
fn restarts_continue_the_stream_from_the_rdb() {
    // The master and the replica each restart from their RDB; the replica continues with
    // PSYNC, as Redis does with the repl-id / repl-offset AUX fields.
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut writer = master.client();
    write_everything(&mut writer, 0);
    let replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    write_everything(&mut writer, 1);
    wait_caught_up(&mut writer, &mut reader);
    // The replica restarts from its own RDB.
    reader.cmd(&["SAVE"]);
    let replica_dir = replica.kill9();
    let replica = ServerProcess::amber_in(
        &replica_dir,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    write_everything(&mut writer, 2);
    wait_caught_up(&mut writer, &mut reader);
    assert_eq!(digest(&mut reader), digest(&mut writer));
    assert_eq!(stat(&mut writer, "sync_full"), 1);
    assert_eq!(stat(&mut writer, "sync_partial_ok"), 1);
    // The master restarts from its RDB: the replica continues with the second id.
    writer.cmd(&["SAVE"]);
    let master_port = master.port;
    let master_dir = master.kill9();
    let master = ServerProcess::amber_in_on_port(
        &master_dir,
        master_port,
        &["--repl-diskless-sync-delay", "0"],
    );
    let mut writer = master.client();
    wait_link_up(&mut reader);
    write_everything(&mut writer, 3);
    wait_caught_up(&mut writer, &mut reader);
    assert_eq!(digest(&mut reader), digest(&mut writer));
    assert_eq!(stat(&mut writer, "sync_full"), 0);
    assert_eq!(stat(&mut writer, "sync_partial_ok"), 1);
}

#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    let master = ServerProcess::amber(&[
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ]);
    let mut writer = master.client();
    assert_eq!(
        writer.cmd(&["SET", "k", "v"]),
        common::error("NOREPLICAS Not enough good replicas to write.")
    );
    assert_eq!(writer.cmd(&["GET", "k"]), Frame::NullBulk);
    let replica = ServerProcess::redis(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    wait_for(
        || writer.cmd(&["SET", "k", "v"]) == common::simple("OK"),
        "a good replica to allow writes",
    );
    assert_eq!(
        reader.cmd(&["WAIT", "0", "0"]),
        common::error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."
        )
    );
}

#[test]
fn live_migration_from_a_written_redis_loses_no_acknowledged_write() {
    // The procedure of docs/REPLICATION.md: REPLICAOF a running Redis, let it catch up while
    // clients keep writing, pause writes, check, then REPLICAOF NO ONE.
    let redis = ServerProcess::redis(&["--repl-diskless-sync-delay", "0"]);
    let mut seed = redis.client();
    for i in 0..2000 {
        seed.cmd(&["SET", &format!("seed:{i}"), &i.to_string()]);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let redis_port = redis.port;
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut client = Client::connect(redis_port);
            let mut acknowledged = Vec::new();
            let mut batch = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("live:{i}");
                client.cmd(&["SET", &key, &i.to_string()]);
                client.cmd(&["HINCRBY", "live:hash", &format!("f{}", i % 50), "1"]);
                batch.push(key);
                i += 1;
                if batch.len() == 50 {
                    // Only writes WAIT saw on the replica count as acknowledged.
                    if client.cmd(&["WAIT", "1", "1000"]) == Frame::Integer(1) {
                        acknowledged.append(&mut batch);
                    }
                    batch.clear();
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let amber = ServerProcess::amber(&[]);
    let mut target = amber.client();
    assert_eq!(
        target.cmd(&["REPLICAOF", "127.0.0.1", &redis_port.to_string()]),
        common::simple("OK")
    );
    wait_link_up(&mut target);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The switch: writes paused on Redis, the replica catches up, the datasets are equal.
    let mut admin = redis.client();
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "5000", "WRITE"]),
        common::simple("OK")
    );
    wait_caught_up(&mut admin, &mut target);
    assert_eq!(digest(&mut target), digest(&mut admin));
    assert_eq!(
        target.cmd(&["REPLICAOF", "NO", "ONE"]),
        common::simple("OK")
    );
    assert_eq!(digest(&mut target), digest(&mut admin));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() >= 50, "the writer got acknowledgements");
    for key in &acknowledged {
        assert_ne!(
            target.cmd(&["GET", key]),
            Frame::NullBulk,
            "{key} was acknowledged"
        );
    }
    assert_eq!(
        target.cmd(&["SET", "after", "switch"]),
        common::simple("OK")
    );
}

#[test]
fn failover_hands_the_master_role_to_a_replica_without_losing_writes() {
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut old = master.client();
    write_everything(&mut old, 0);
    let replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let mut new = replica.client();
    wait_link_up(&mut new);
    assert_eq!(
        old.cmd(&["FAILOVER", "TO", "127.0.0.1", "1", "FORCE"]),
        common::error(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP."
        )
    );
    assert_eq!(
        old.cmd(&["FAILOVER", "TO", "127.0.0.1", "1"]),
        common::error("ERR FAILOVER target HOST and PORT is not a replica.")
    );
    assert_eq!(
        new.cmd(&["FAILOVER"]),
        common::error("ERR FAILOVER is not valid when server is a replica.")
    );
    assert_eq!(old.cmd(&["FAILOVER"]), common::simple("OK"));
    // A write sent during the failover waits, then meets the new role.
    let mut late = master.client();
    late.send(&["SET", "late", "1"]);
    wait_for(
        || info_field(&mut old, "role") == "slave",
        "the old master to become a replica",
    );
    assert_eq!(
        late.read(),
        Some(common::error(
            "READONLY You can't write against a read only replica."
        ))
    );
    assert_eq!(info_field(&mut new, "role"), "master");
    assert_eq!(info_field(&mut old, "master_failover_state"), "no-failover");
    wait_link_up(&mut old);
    write_everything(&mut new, 1);
    wait_caught_up(&mut new, &mut old);
    assert_eq!(digest(&mut old), digest(&mut new));
    // No snapshot moved: the old master continued the new master's history.
    assert_eq!(stat(&mut new, "sync_full"), 0);
    assert_eq!(stat(&mut new, "sync_partial_ok"), 1);
    assert!(
        replica
            .log()
            .contains("MASTER MODE enabled (failover request from")
    );
}

#[test]
fn client_pause_write_holds_writes_until_it_ends() {
    let server = ServerProcess::amber(&[]);
    let mut admin = server.client();
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "300", "WRITE"]),
        common::simple("OK")
    );
    let mut writer = server.client();
    let started = std::time::Instant::now();
    writer.send(&["SET", "k", "v"]);
    // Reads go on while writes wait.
    assert_eq!(admin.cmd(&["GET", "k"]), Frame::NullBulk);
    assert_eq!(writer.read(), Some(common::simple("OK")));
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    // ALL holds reads too; UNPAUSE from a client of a WRITE pause ends it at once.
    admin.cmd(&["CLIENT", "PAUSE", "300", "ALL"]);
    let started = std::time::Instant::now();
    assert_eq!(writer.cmd(&["GET", "k"]), bulk("v"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]);
    writer.send(&["DEL", "k"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), common::simple("OK"));
    assert_eq!(writer.read(), Some(Frame::Integer(1)));
}

#[test]
fn diskless_load_swapdb_keeps_the_old_dataset_until_the_new_one_is_complete() {
    for master_is_redis in [false, true] {
        let args = [
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "10000",
        ];
        let master = if master_is_redis {
            ServerProcess::redis(&args)
        } else {
            ServerProcess::amber(&args)
        };
        let mut writer = master.client();
        // Values large enough that the snapshot flows while it is written (10 ms a key).
        writer.cmd(&["DEBUG", "POPULATE", "300", "master", "20000"]);
        writer.cmd(&["CONFIG", "SET", "rdbcompression", "no"]);
        let replica = ServerProcess::amber(&["--repl-diskless-load", "swapdb"]);
        let mut reader = replica.client();
        reader.cmd(&["SET", "mykey", "myvalue"]);
        reader.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        wait_for(
            || info_field(&mut reader, "loading") == "1",
            "the replica to load from the socket",
        );
        assert_eq!(
            reader.cmd(&["GET", "mykey"]),
            common::error("LOADING Redis is loading the dataset in memory")
        );
        // The transfer breaks: the old dataset comes back whole.
        writer.cmd(&["CONFIG", "SET", "repl-diskless-sync-delay", "2"]);
        writer.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
        wait_for(
            || info_field(&mut reader, "loading") == "0",
            "the aborted load to end",
        );
        assert_eq!(reader.cmd(&["GET", "mykey"]), bulk("myvalue"));
        assert_eq!(reader.cmd(&["DBSIZE"]), Frame::Integer(1));
        // The next transfer completes and replaces it.
        writer.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        wait_link_up(&mut reader);
        wait_caught_up(&mut writer, &mut reader);
        assert_eq!(digest(&mut reader), digest(&mut writer));
        assert_eq!(reader.cmd(&["GET", "mykey"]), Frame::NullBulk);
        // Nothing went to disk.
        assert!(!replica.dir.join("dump.rdb").exists());
    }
}

#[test]
fn a_replica_that_stops_acknowledging_is_dropped_after_repl_timeout() {
    use std::io::{Read, Write};
    let master = ServerProcess::amber(&["--repl-timeout", "1", "--repl-diskless-sync", "no"]);
    let mut writer = master.client();
    writer.cmd(&["SET", "k", "v"]);
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    silent
        .write_all(b"REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n")
        .unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // It reads the snapshot and the stream but never sends REPLCONF ACK.
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match silent.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    assert!(closed, "the master closed the silent replica's connection");
    assert!(received.starts_with(b"+OK\r\n+FULLRESYNC "));
    assert!(
        master
            .log()
            .contains("Disconnecting timedout replica (streaming sync)")
    );
}

#[test]
fn a_replica_with_appendonly_rewrites_its_aof_from_the_masters_dataset() {
    let master = ServerProcess::redis(&["--repl-diskless-sync-delay", "0"]);
    let mut writer = master.client();
    write_everything(&mut writer, 0);
    let replica = ServerProcess::amber(&[
        "--appendonly",
        "yes",
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
    ]);
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    // The full sync stopped the AOF and a rewrite started a new one from the loaded dataset.
    wait_for(
        || {
            info_field(&mut reader, "aof_rewrite_in_progress") == "0"
                && info_field(&mut reader, "aof_rewrites")
                    .parse::<u64>()
                    .unwrap_or(0)
                    >= 1
        },
        "the AOF rewrite after the full sync",
    );
    write_everything(&mut writer, 1);
    wait_caught_up(&mut writer, &mut reader);
    let expected = digest(&mut writer);
    assert_eq!(digest(&mut reader), expected);
    // Restarted alone from its AOF (base + the applied stream), it has the same dataset.
    let dir = replica.kill9();
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(digest(&mut restarted.client()), expected);
}

#[test]
fn a_writable_replica_expires_the_keys_its_own_clients_wrote() {
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let mut writer = master.client();
    let replica = ServerProcess::amber(&[
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
        "--replica-read-only",
        "no",
    ]);
    let mut reader = replica.client();
    wait_link_up(&mut reader);
    // A key of the master's with a TTL: the replica hides it once expired but keeps it.
    writer.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    writer.cmd(&["SET", "from-master", "v", "PX", "50"]);
    wait_caught_up(&mut writer, &mut reader);
    // A key its own client wrote with a TTL: the replica deletes it itself.
    reader.cmd(&["SET", "own", "v", "PX", "50"]);
    wait_for(
        || info_field(&mut reader, "expired_keys") == "1",
        "the replica to expire its own key",
    );
    assert_eq!(reader.cmd(&["GET", "own"]), Frame::NullBulk);
    assert_eq!(reader.cmd(&["GET", "from-master"]), Frame::NullBulk);
    assert_eq!(reader.cmd(&["DBSIZE"]), Frame::Integer(1));
}

/// What a client blocked in `WAIT` looks like from outside, and how `CLIENT UNBLOCK` ends it:
/// the replies and `blocked_clients` of one server.
fn wait_unblocking_transcript(server: &ServerProcess) -> Vec<Frame> {
    let mut admin = server.client();
    let mut transcript = Vec::new();
    for mode in [None, Some("TIMEOUT"), Some("ERROR")] {
        let mut waiter = server.client();
        waiter.cmd(&["SET", "k", "v"]);
        let id = waiter.cmd(&["CLIENT", "ID"]);
        let Frame::Integer(id) = id else {
            panic!("CLIENT ID replied {id:?}");
        };
        waiter.send(&["WAIT", "1", "0"]);
        wait_for(
            || info_field(&mut admin, "blocked_clients") == "1",
            "WAIT to count as a blocked client",
        );
        let id = id.to_string();
        let mut unblock = vec!["CLIENT", "UNBLOCK", id.as_str()];
        unblock.extend(mode);
        transcript.push(admin.cmd(&unblock));
        transcript.push(waiter.read().expect("the WAIT reply"));
        transcript.push(Frame::Simple(
            info_field(&mut admin, "blocked_clients").into_bytes(),
        ));
    }
    transcript
}

#[test]
fn client_unblock_ends_a_wait_as_redis_does() {
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let expected = wait_unblocking_transcript(&redis);
    assert_eq!(wait_unblocking_transcript(&amber), expected);
    // The reference itself: unblocked as a timeout, WAIT counts its replicas (none).
    assert_eq!(expected[1], Frame::Integer(0));
}

#[test]
fn a_message_published_on_the_master_reaches_subscribers_of_its_replicas() {
    let master = ServerProcess::amber(&[]);
    let port = master.port.to_string();
    let redis_replica = ServerProcess::redis(&["--replicaof", "127.0.0.1", &port]);
    let amber_replica = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
    let mut publisher = master.client();
    let mut subscribers = Vec::new();
    for replica in [&redis_replica, &amber_replica] {
        let mut admin = replica.client();
        wait_for(
            || info_field(&mut admin, "master_link_status") == "up",
            "the replica to finish its full sync",
        );
        let mut subscriber = replica.client();
        subscriber.cmd(&["SUBSCRIBE", "news"]);
        subscribers.push(subscriber);
    }
    // On the master nobody listens; the replicas' subscribers get it through the stream.
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "hello"]),
        Frame::Integer(0)
    );
    let expected = Frame::Array(vec![bulk("message"), bulk("news"), bulk("hello")]);
    for subscriber in &mut subscribers {
        assert_eq!(subscriber.read(), Some(expected.clone()));
    }
}
