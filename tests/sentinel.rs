//! Failover under Debian's redis-sentinel 7.0: three Sentinels on loopback monitor an Amber
//! master with two replicas (Amber, or Amber and Redis mixed); on kill -9 of the master they
//! promote a replica and point the other one at it.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, Frame, ServerProcess, bulk, free_port, redis_tool, temp_dir, wait_for};

/// A redis-sentinel process, killed when dropped.
struct Sentinel {
    child: Child,
    port: u16,
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let port = free_port();
        let dir = temp_dir("sentinel");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\n\
                 dir {dir}\n\
                 logfile {dir}/sentinel.log\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 10000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(redis_tool("redis-sentinel"))
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sentinel = Sentinel { child, port };
        wait_for(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "redis-sentinel to listen",
        );
        sentinel
    }

    /// The master's port as this Sentinel knows it.
    fn master_port(&self) -> Option<u16> {
        let mut client = Client::connect(self.port);
        match client.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"]) {
            Frame::Array(parts) => match parts.get(1) {
                Some(Frame::Bulk(port)) => std::str::from_utf8(port).ok()?.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// How many replicas and other Sentinels it has discovered.
    fn discovered(&self) -> (usize, usize) {
        let mut client = Client::connect(self.port);
        let count = |frame: Frame| match frame {
            Frame::Array(items) => items.len(),
            _ => 0,
        };
        let replicas = count(client.cmd(&["SENTINEL", "replicas", "mymaster"]));
        let sentinels = count(client.cmd(&["SENTINEL", "sentinels", "mymaster"]));
        (replicas, sentinels)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The named `INFO all` fields of `server`, read over a new connection, or `None` if the
/// connection was closed before the reply (or a field is missing).
fn fresh_info(server: &ServerProcess, fields: &[&str]) -> Option<Vec<String>> {
    let Some(Frame::Bulk(info)) = server.client().try_cmd(&["INFO", "all"]) else {
        return None;
    };
    let info = String::from_utf8(info).ok()?;
    fields
        .iter()
        .map(|field| {
            info.lines()
                .find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
        })
        .collect()
}

fn failover_with(second_replica_is_redis: bool) {
    let master = ServerProcess::amber(&["--repl-diskless-sync-delay", "0"]);
    let port = master.port.to_string();
    let first = ServerProcess::amber(&["--replicaof", "127.0.0.1", &port]);
    let second = if second_replica_is_redis {
        ServerProcess::redis(&["--replicaof", "127.0.0.1", &port])
    } else {
        ServerProcess::amber(&[
            "--replicaof",
            "127.0.0.1",
            &port,
            "--replica-priority",
            "50",
        ])
    };
    let mut writer = master.client();
    for i in 0..100 {
        writer.cmd(&["SET", &format!("key:{i}"), &i.to_string()]);
    }
    wait_for(
        || writer.cmd(&["WAIT", "2", "100"]) == Frame::Integer(2),
        "both replicas to acknowledge",
    );
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port)).collect();
    wait_for(
        || sentinels.iter().all(|s| s.discovered() == (2, 2)),
        "the Sentinels to discover the replicas and each other",
    );
    writer.cmd(&["SET", "acknowledged", "yes"]);
    assert_eq!(writer.cmd(&["WAIT", "2", "5000"]), Frame::Integer(2));
    let old_port = master.port;
    master.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let new_port = loop {
        if let Some(port) = sentinels[0].master_port().filter(|&p| p != old_port) {
            break port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failover within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (promoted, other) = if new_port == first.port {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert_eq!(new_port, promoted.port);
    if !second_replica_is_redis {
        // The lower replica-priority value wins.
        assert_eq!(new_port, second.port);
    }
    // Sentinel kills the normal clients of the instances it reconfigures (CLIENT KILL TYPE
    // normal), so every check below uses a fresh connection.
    // A connection opened while Sentinel reconfigures an instance may be closed by that
    // CLIENT KILL before it gets its reply: the polls below treat that as "not yet".
    wait_for(
        || fresh_info(promoted, &["role"]) == Some(vec!["master".into()]),
        "the promoted replica to be a master",
    );
    assert_eq!(promoted.client().cmd(&["GET", "acknowledged"]), bulk("yes"));
    // The other replica now follows the new master, and gets its new writes.
    wait_for(
        || {
            fresh_info(other, &["master_port", "master_link_status"])
                == Some(vec![new_port.to_string(), "up".into()])
        },
        "the other replica to follow the new master",
    );
    wait_for(
        || promoted.client().try_cmd(&["SET", "after-failover", "1"]) == Some(common::simple("OK")),
        "the new master to take writes",
    );
    wait_for(
        || other.client().try_cmd(&["GET", "after-failover"]) == Some(bulk("1")),
        "the new master's writes to reach the other replica",
    );
    assert_eq!(other.client().cmd(&["GET", "acknowledged"]), bulk("yes"));
    assert_eq!(
        other.client().cmd(&["DEBUG", "DIGEST"]),
        promoted.client().cmd(&["DEBUG", "DIGEST"])
    );
}

#[test]
fn sentinel_fails_over_an_amber_master_to_amber_replicas() {
    failover_with(false);
}

#[test]
fn sentinel_fails_over_with_mixed_redis_and_amber_replicas() {
    failover_with(true);
}
