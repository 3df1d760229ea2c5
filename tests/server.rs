//! Integration tests against the real amber-server binary: a real client library (the `redis`
//! crate), pipelining, RESP3, authentication, limits, configuration, expiry and shutdown.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::time::{Duration, Instant};

use common::{Client, Frame, ServerProcess, bulk, error, simple};

#[test]
fn redis_crate_client_works() {
    let server = ServerProcess::amber(&[]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut con)
        .unwrap();
    let value: String = redis::cmd("GET").arg("greeting").query(&mut con).unwrap();
    assert_eq!(value, "hello");
    let n: i64 = redis::cmd("INCRBY")
        .arg("counter")
        .arg(5)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 5);
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg("greeting")
        .arg("nope")
        .query(&mut con)
        .unwrap();
    assert_eq!(values, vec![Some("hello".to_string()), None]);
    let error = redis::cmd("INCR")
        .arg("greeting")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(error.to_string().contains("not an integer"), "{error}");
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    pipe.cmd("DBSIZE");
    let (size,): (i64,) = pipe.query(&mut con).unwrap();
    assert_eq!(size, 502);
}

#[test]
fn deep_pipeline_in_one_write() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let mut wire = Vec::new();
    for i in 0..10_000 {
        wire.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$8\r\nkey{i:05}\r\n$1\r\nv\r\n").as_bytes(),
        );
    }
    wire.extend_from_slice(b"DBSIZE\r\n");
    client.send_raw(&wire);
    for _ in 0..10_000 {
        assert_eq!(client.read(), Some(simple("OK")));
    }
    assert_eq!(client.read(), Some(Frame::Integer(10_000)));
}

/// A client that sends far more pipelined requests than the socket buffers hold before it
/// reads a reply must not deadlock with the server (Redis keeps reading while its replies
/// wait; Redis's `unit/maxmemory` pipelines 40 MB this way).
#[test]
fn pipeline_larger_than_socket_buffers_before_reading() {
    send_whole_pipeline_then_read(&ServerProcess::amber(&[]));
}

/// The same client against Redis, which the test above follows.
#[test]
fn redis_reads_a_pipeline_larger_than_socket_buffers() {
    send_whole_pipeline_then_read(&ServerProcess::redis(&[]));
}

/// Sends 40 MB of `ECHO`s before reading any of their 40 MB of replies, then checks them all.
fn send_whole_pipeline_then_read(server: &ServerProcess) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let payload = "x".repeat(1000);
    let request = format!("*2\r\n$4\r\nECHO\r\n$1000\r\n{payload}\r\n");
    let reply = format!("$1000\r\n{payload}\r\n");
    let count = 40_000; // 40 MB each way
    let batch = request.repeat(1000);
    for _ in 0..count / 1000 {
        stream
            .write_all(batch.as_bytes())
            .expect("the server stopped reading a client whose replies wait");
    }
    let mut expected = reply.len() * count;
    let mut chunk = vec![0u8; 1 << 16];
    let mut received = Vec::new();
    while expected > 0 {
        let n = stream.read(&mut chunk).expect("read replies");
        assert!(n > 0, "server closed the connection");
        received.extend_from_slice(&chunk[..n]);
        let whole = received.len() / reply.len() * reply.len();
        assert!(
            received[..whole]
                .chunks(reply.len())
                .all(|r| r == reply.as_bytes())
        );
        received.drain(..whole);
        expected -= whole;
    }
    assert!(received.is_empty());
    let mut client = server.client();
    assert_eq!(client.cmd(&["PING"]), simple("PONG"));
}

#[test]
fn requests_split_across_many_writes() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let wire =
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$11\r\nhello world\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    for byte in wire.iter() {
        client.send_raw(&[*byte]);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(client.read(), Some(simple("OK")));
    assert_eq!(client.read(), Some(bulk("hello world")));
}

#[test]
fn large_values_round_trip() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let value = vec![b'x'; 8 * 1024 * 1024];
    assert_eq!(
        client.cmd(&[b"SET".as_slice(), b"big", &value]),
        simple("OK")
    );
    assert_eq!(
        client.cmd(&["STRLEN", "big"]),
        Frame::Integer(value.len() as i64)
    );
    assert_eq!(client.cmd(&["GET", "big"]), Frame::Bulk(value));
}

#[test]
fn hello_3_switches_to_resp3() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let Frame::Map(pairs) = client.cmd(&["HELLO", "3"]) else {
        panic!("HELLO 3 must reply a map")
    };
    assert!(pairs.contains(&(bulk("proto"), Frame::Integer(3))));
    assert!(pairs.contains(&(bulk("server"), bulk("redis"))));
    assert_eq!(client.cmd(&["GET", "missing"]), Frame::Null);
    let Frame::Map(config) = client.cmd(&["CONFIG", "GET", "port"]) else {
        panic!("map expected")
    };
    assert_eq!(config, vec![(bulk("port"), bulk(&server.port.to_string()))]);
    let Frame::Verbatim(format, _) = client.cmd(&["INFO", "server"]) else {
        panic!("verbatim expected")
    };
    assert_eq!(&format, b"txt");
    assert!(matches!(client.cmd(&["HELLO", "2"]), Frame::Array(_)));
    assert_eq!(client.cmd(&["GET", "missing"]), Frame::NullBulk);
}

#[test]
fn requirepass_and_auth() {
    let server = ServerProcess::amber(&["--requirepass", "s3cret"]);
    let mut client = server.client();
    assert_eq!(
        client.cmd(&["GET", "k"]),
        error("NOAUTH Authentication required.")
    );
    assert_eq!(
        client.cmd(&["PING"]),
        error("NOAUTH Authentication required.")
    );
    assert!(matches!(client.cmd(&["HELLO", "3"]), Frame::Error(e) if e.starts_with(b"NOAUTH")));
    assert_eq!(
        client.cmd(&["AUTH", "wrong"]),
        error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(client.cmd(&["AUTH", "s3cret"]), simple("OK"));
    assert_eq!(client.cmd(&["PING"]), simple("PONG"));
    let mut other = server.client();
    assert!(matches!(
        other.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]),
        Frame::Map(_)
    ));
    assert_eq!(other.cmd(&["GET", "k"]), Frame::Null);
}

#[test]
fn unauthenticated_clients_get_tight_limits() {
    let server = ServerProcess::amber(&["--requirepass", "pw"]);
    let mut client = server.client();
    client.send_raw(b"*20\r\n");
    assert_eq!(
        client.read(),
        Some(error(
            "ERR Protocol error: unauthenticated multibulk length"
        ))
    );
    assert_eq!(
        client.read(),
        None,
        "connection closed after a protocol error"
    );
    let mut client = server.client();
    client.send_raw(b"*2\r\n$4\r\nAUTH\r\n$20000\r\n");
    assert_eq!(
        client.read(),
        Some(error("ERR Protocol error: unauthenticated bulk length"))
    );
}

#[test]
fn query_buffer_limit_closes_the_client() {
    let server = ServerProcess::amber(&["--client-query-buffer-limit", "1mb"]);
    let mut client = server.client();
    client.send_raw(b"*2\r\n$4\r\nECHO\r\n$3000000\r\n");
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        if std::io::Write::write_all(&mut client_stream(&mut client), &chunk).is_err() {
            break;
        }
    }
    assert_eq!(client.read(), None);
    assert!(
        server
            .log()
            .contains("Closing client that reached max query buffer length")
    );
    assert_eq!(
        server.client().cmd(&["PING"]),
        simple("PONG"),
        "the server keeps serving"
    );
}

fn client_stream(client: &mut Client) -> impl std::io::Write + '_ {
    struct Sink<'a>(&'a mut Client);
    impl std::io::Write for Sink<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.send_raw(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    Sink(client)
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let server = ServerProcess::amber(&["--hz", "50"]);
    let mut client = server.client();
    for i in 0..200 {
        client.cmd(&["SET", &format!("volatile:{i}"), "v", "PX", "100"]);
    }
    client.cmd(&["SET", "stays", "v"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.cmd(&["DBSIZE"]) != Frame::Integer(1) {
        assert!(
            Instant::now() < deadline,
            "expired keys were not removed by the active cycle"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let Frame::Bulk(info) = client.cmd(&["INFO", "stats"]) else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("expired_keys:200\r\n"), "{info}");
}

#[test]
fn lazy_expiry_on_access() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    client.cmd(&["SET", "k", "v", "PX", "50"]);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        client.cmd(&["DBSIZE"]),
        Frame::Integer(1),
        "not yet deleted without access"
    );
    assert_eq!(client.cmd(&["GET", "k"]), Frame::NullBulk);
    assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(0));
}

#[test]
fn debug_populate_and_debug_gate() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    assert_eq!(client.cmd(&["DEBUG", "POPULATE", "1000"]), simple("OK"));
    assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(1000));
    assert_eq!(client.cmd(&["GET", "key:7"]), bulk("value:7"));
    client.cmd(&["DEBUG", "POPULATE", "10", "p", "12"]);
    assert_eq!(
        client.cmd(&["GET", "p:3"]),
        Frame::Bulk(b"value:3\0\0\0\0\0".to_vec())
    );
    let locked = ServerProcess::amber(&["--enable-debug-command", "no"]);
    let reply = locked.client().cmd(&["DEBUG", "POPULATE", "10"]);
    assert!(matches!(reply, Frame::Error(e) if e.starts_with(b"ERR DEBUG command not allowed")));
}

#[test]
fn client_commands() {
    let server = ServerProcess::amber(&[]);
    let mut first = server.client();
    let mut second = server.client();
    assert_eq!(first.cmd(&["CLIENT", "SETNAME", "first"]), simple("OK"));
    let Frame::Integer(second_id) = second.cmd(&["CLIENT", "ID"]) else {
        panic!()
    };
    let Frame::Bulk(list) = first.cmd(&["CLIENT", "LIST"]) else {
        panic!()
    };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("name=first"));
    assert!(list.contains("cmd=client|list"), "{list}");
    assert!(list.contains(&format!("id={second_id} ")));
    let reply = first.cmd(&["CLIENT", "KILL", "ID", &second_id.to_string()]);
    assert_eq!(reply, Frame::Integer(1));
    assert_eq!(second.read(), None, "killed client is disconnected");
    assert_eq!(
        first.cmd(&["CLIENT", "KILL", "1.2.3.4:5"]),
        error("ERR No such client")
    );
}

#[test]
fn idle_clients_time_out() {
    let server = ServerProcess::amber(&["--timeout", "1"]);
    let mut client = server.client();
    assert_eq!(client.cmd(&["PING"]), simple("PONG"));
    let started = Instant::now();
    assert_eq!(client.read(), None);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn maxclients_refuses_extra_connections() {
    let server = ServerProcess::amber(&["--maxclients", "2"]);
    // Let the server notice that the start-up probe connection has gone.
    std::thread::sleep(Duration::from_millis(300));
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(a.cmd(&["PING"]), simple("PONG"));
    assert_eq!(b.cmd(&["PING"]), simple("PONG"));
    let mut c = server.client();
    assert_eq!(c.read(), Some(error("ERR max number of clients reached")));
}

#[test]
fn unix_socket_and_pidfile() {
    let dir = common::temp_dir("unix");
    let socket = dir.join("amber.sock");
    let pidfile = dir.join("amber.pid");
    let server = ServerProcess::amber(&[
        "--unixsocket",
        socket.to_str().unwrap(),
        "--unixsocketperm",
        "700",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), server.pid().to_string());
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    std::io::Write::write_all(&mut stream, b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    std::io::Read::read_exact(&mut stream, &mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_shuts_down_cleanly_with_redis_log_lines() {
    let mut server = ServerProcess::amber(&[]);
    assert!(server.log().contains("Ready to accept connections"));
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    let log = server.log();
    assert!(
        log.contains("Received SIGTERM scheduling shutdown..."),
        "{log}"
    );
    assert!(log.contains("ready to exit, bye bye..."), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("Ready to accept connections"))
        .unwrap();
    let parts: Vec<&str> = line.splitn(7, ' ').collect();
    assert!(parts[0].ends_with(":M"), "pid:role prefix in {line}");
    assert_eq!(parts[5], "*", "notice mark in {line}");
}

#[test]
fn shutdown_command_stops_the_server() {
    let mut server = ServerProcess::amber(&[]);
    let mut client = server.client();
    client.send(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(client.read(), None);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(server.log().contains("User requested shutdown..."));
}

#[test]
fn logo_shows_pid() {
    let server = ServerProcess::amber(&["--always-show-logo", "yes"]);
    assert!(
        server.log().contains(&format!("PID: {}", server.pid())),
        "{}",
        server.log()
    );
}

fn run_amber(args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::amber_binary())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_directives_stop_startup_naming_the_line() {
    let output = run_amber(&["--port", "7000", "--no-such-directive", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at line 3"), "{stderr}");
    assert!(stderr.contains(">>> 'no-such-directive \"1\"'"), "{stderr}");
    assert!(
        stderr.contains("Bad directive or wrong number of arguments"),
        "{stderr}"
    );

    let dir = common::temp_dir("conf");
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "port 7000\n# comment\nmaxmemory lots\n").unwrap();
    let output = run_amber(&[conf.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at line 3"), "{stderr}");
    assert!(
        stderr.contains("argument must be a memory value"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn debians_redis_conf_is_accepted() {
    let dir = common::temp_dir("debconf");
    let original = std::fs::read_to_string("/etc/redis/redis.conf")
        .expect("/etc/redis/redis.conf comes with Debian's redis-server package");
    // Keep every directive, but do not daemonize or write to the system's directories.
    let conf = dir.join("redis.conf");
    let port = common::free_port();
    let adjusted = format!(
        "{original}\nport {port}\ndaemonize no\nsupervised no\nlogfile {0}/log\ndir {0}\npidfile {0}/pid\nunixsocket \"\"\n",
        dir.display()
    );
    std::fs::write(&conf, adjusted).unwrap();
    let mut child = std::process::Command::new(common::amber_binary())
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut up = false;
    while Instant::now() < deadline && !up {
        up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(
        up,
        "amber did not start with Debian's redis.conf: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(log.contains("Configuration loaded"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_rewrite_updates_the_file() {
    let dir = common::temp_dir("rewrite");
    let conf = dir.join("amber.conf");
    std::fs::write(&conf, "# my settings\ntimeout 0\nsave 900 1\n").unwrap();
    let server = ServerProcess::amber_with_file(&conf, &[]);
    let mut client = server.client();
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "timeout", "30", "maxmemory", "1mb"]),
        simple("OK")
    );
    assert_eq!(client.cmd(&["CONFIG", "REWRITE"]), simple("OK"));
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.starts_with("# my settings\ntimeout 30\n"), "{text}");
    assert!(text.contains("maxmemory 1048576"), "{text}");
    assert!(text.contains(&format!("port {}", server.port)), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn blocking_pops_wait_time_out_and_serve_in_order() {
    let server = ServerProcess::amber(&[]);
    let mut producer = server.client();
    let mut first = server.client();
    let mut second = server.client();

    let started = Instant::now();
    assert_eq!(first.cmd(&["BLPOP", "q", "0.2"]), Frame::NullArray);
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "waited for the timeout"
    );

    first.send(&["BLPOP", "q", "other", "5"]);
    std::thread::sleep(Duration::from_millis(50));
    second.send(&["BRPOP", "q", "5"]);
    second.send(&["PING"]);
    std::thread::sleep(Duration::from_millis(50));
    let Frame::Bulk(info) = producer.cmd(&["INFO", "clients"]) else {
        panic!()
    };
    assert!(String::from_utf8_lossy(&info).contains("blocked_clients:2"));
    assert_eq!(producer.cmd(&["RPUSH", "q", "a", "b"]), Frame::Integer(2));
    assert_eq!(
        first.read(),
        Some(Frame::Array(vec![bulk("q"), bulk("a")])),
        "first blocked, first served"
    );
    assert_eq!(
        second.read(),
        Some(Frame::Array(vec![bulk("q"), bulk("b")]))
    );
    assert_eq!(
        second.read(),
        Some(simple("PONG")),
        "pipelined command runs after unblocking"
    );

    first.send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"]);
    std::thread::sleep(Duration::from_millis(50));
    producer.cmd(&["LPUSH", "src", "x"]);
    assert_eq!(first.read(), Some(bulk("x")));
    assert_eq!(
        producer.cmd(&["LRANGE", "dst", "0", "-1"]),
        Frame::Array(vec![bulk("x")])
    );

    second.send(&["BZPOPMIN", "z", "5"]);
    std::thread::sleep(Duration::from_millis(50));
    producer.cmd(&["ZADD", "z", "2", "m"]);
    assert_eq!(
        second.read(),
        Some(Frame::Array(vec![bulk("z"), bulk("m"), bulk("2")]))
    );

    // BZMPOP waits on several sets and takes COUNT members from the first one written.
    second.send(&["BZMPOP", "5", "2", "za", "zb", "MAX", "COUNT", "2"]);
    std::thread::sleep(Duration::from_millis(50));
    producer.cmd(&["ZADD", "zb", "1", "x", "2", "y", "3", "z"]);
    assert_eq!(
        second.read(),
        Some(Frame::Array(vec![
            bulk("zb"),
            Frame::Array(vec![
                Frame::Array(vec![bulk("z"), bulk("3")]),
                Frame::Array(vec![bulk("y"), bulk("2")]),
            ]),
        ]))
    );
    assert_eq!(
        first.cmd(&["BZMPOP", "0.1", "1", "za", "MIN"]),
        Frame::NullArray,
        "BZMPOP times out"
    );

    assert_eq!(first.cmd(&["MULTI"]), simple("OK"));
    first.cmd(&["BLPOP", "empty", "0"]);
    assert_eq!(
        first.cmd(&["EXEC"]),
        Frame::Array(vec![Frame::NullArray]),
        "no blocking inside EXEC"
    );

    assert!(
        matches!(first.cmd(&["BLPOP", "q", "-1"]), Frame::Error(e) if e == b"ERR timeout is negative")
    );
    producer.cmd(&["SET", "str", "v"]);
    assert!(
        matches!(first.cmd(&["BLPOP", "str", "1"]), Frame::Error(e) if e.starts_with(b"WRONGTYPE"))
    );

    let mut leaving = server.client();
    leaving.send(&["BLPOP", "never", "0"]);
    std::thread::sleep(Duration::from_millis(50));
    drop(leaving);
    std::thread::sleep(Duration::from_millis(100));
    let Frame::Bulk(info) = producer.cmd(&["INFO", "clients"]) else {
        panic!()
    };
    assert!(
        String::from_utf8_lossy(&info).contains("blocked_clients:0"),
        "a client that leaves is unblocked"
    );
}

/// The text of `DEBUG HTSTATS 0`.
fn table_stats(client: &mut Client) -> String {
    debug_stats(client, &["DEBUG", "HTSTATS", "0"])
}

/// The text of a `DEBUG HTSTATS` or `DEBUG HTSTATS-KEY` reply.
fn debug_stats(client: &mut Client, command: &[&str]) -> String {
    let Frame::Bulk(stats) = client.cmd(command) else {
        panic!("{command:?} replies with a bulk string");
    };
    String::from_utf8(stats).unwrap()
}

/// Every key a whole `SCAN` returns, each once.
fn scan_all(client: &mut Client) -> std::collections::HashSet<Vec<u8>> {
    let mut keys = std::collections::HashSet::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Frame::Array(reply) = client.cmd(&[b"SCAN".as_slice(), &cursor, b"COUNT", b"100"])
        else {
            panic!("SCAN replies with an array");
        };
        let [Frame::Bulk(next), Frame::Array(batch)] = reply.as_slice() else {
            panic!("SCAN's reply is a cursor and a batch: {reply:?}");
        };
        for key in batch {
            let Frame::Bulk(key) = key else {
                panic!("a key is a bulk string");
            };
            keys.insert(key.clone());
        }
        if next.as_slice() == b"0" {
            return keys;
        }
        cursor = next.clone();
    }
}

/// INV-REHASH: a key table past its load resizes a few buckets per write; meanwhile every key
/// is found, scanned once per scan and counted, and with `activerehashing` the cron finishes
/// the resize without writes.
#[test]
fn a_doubling_key_table_serves_every_key_until_the_cron_finishes_it() {
    let server =
        ServerProcess::amber(&["--enable-debug-command", "yes", "--activerehashing", "no"]);
    let mut client = server.client();
    client.cmd(&["DEBUG", "POPULATE", "8190"]);
    for i in 0..10 {
        client.cmd(&["SET", &format!("extra:{i}"), "x"]);
    }
    let stats = table_stats(&mut client);
    assert!(
        stats.contains("Hash table 1 stats (rehashing target):\n table size: 16384\n"),
        "the table doubles a bucket at a time: {stats}"
    );
    assert_eq!(client.cmd(&["DBSIZE"]), Frame::Integer(8200));
    assert_eq!(scan_all(&mut client).len(), 8200);
    assert_eq!(client.cmd(&["GET", "key:0"]), bulk("value:0"));
    assert_eq!(client.cmd(&["GET", "extra:9"]), bulk("x"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        table_stats(&mut client).contains("rehashing target"),
        "without activerehashing only writes move keys"
    );
    client.cmd(&["CONFIG", "SET", "activerehashing", "yes"]);
    common::wait_for(
        || !table_stats(&mut client).contains("rehashing target"),
        "the cron to finish the resize",
    );
    assert!(table_stats(&mut client).contains(" table size: 16384\n"));
    assert_eq!(scan_all(&mut client).len(), 8200);
    assert_eq!(client.cmd(&["GET", "key:8189"]), bulk("value:8189"));
}

/// A big set's table that began to double on a write goes on moving buckets on reads, as in
/// Redis, so a set that is only read afterwards does not keep both tables (INV-REHASH).
#[test]
fn reads_finish_a_big_sets_doubling() {
    let server = ServerProcess::amber(&["--enable-debug-command", "yes"]);
    let mut client = server.client();
    let mut sadd: Vec<String> = vec!["SADD".into(), "big".into()];
    sadd.extend((0..2100).map(|i| format!("member:{i}")));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    assert_eq!(client.cmd(&sadd), Frame::Integer(2100));
    let stats = |client: &mut Client| debug_stats(client, &["DEBUG", "HTSTATS-KEY", "big"]);
    assert!(
        stats(&mut client).contains("(rehashing target):\n table size: 4096\n"),
        "the set's table doubles a bucket at a time: {}",
        stats(&mut client)
    );
    let mut reads = 0;
    while stats(&mut client).contains("rehashing target") {
        assert_eq!(
            client.cmd(&["SISMEMBER", "big", &format!("member:{reads}")]),
            Frame::Integer(1)
        );
        reads += 1;
        assert!(reads < 2100, "reads did not finish the resize");
    }
    assert!(stats(&mut client).contains(" table size: 4096\n number of elements: 2100\n"));
    assert_eq!(client.cmd(&["SCARD", "big"]), Frame::Integer(2100));
    assert!(matches!(
        client.cmd(&["DEBUG", "HTSTATS-KEY", "missing"]),
        Frame::Error(e) if e == b"ERR no such key"
    ));
}

/// ZSCAN pages through a big sorted set with a cursor, as Redis's skiplist encoding does (a
/// reply of about COUNT members, never the whole set), and a full walk returns every member
/// once with its score; ZRANDMEMBER picks members of it with their scores.
#[test]
fn zscan_pages_a_big_sorted_set() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let members = 5000;
    let mut zadd: Vec<String> = vec!["ZADD".into(), "big".into()];
    for i in 0..members {
        zadd.push(format!("{}.5", i));
        zadd.push(format!("member:{i}"));
    }
    let zadd: Vec<&str> = zadd.iter().map(String::as_str).collect();
    assert_eq!(client.cmd(&zadd), Frame::Integer(members));
    let mut seen = std::collections::HashMap::new();
    let (mut cursor, mut calls) = ("0".to_string(), 0);
    loop {
        let Frame::Array(reply) = client.cmd(&["ZSCAN", "big", &cursor, "COUNT", "20"]) else {
            panic!("ZSCAN replies an array");
        };
        let [Frame::Bulk(next), Frame::Array(items)] = reply.as_slice() else {
            panic!("ZSCAN replies a cursor and the items: {reply:?}");
        };
        assert!(
            items.len() <= 2 * 60,
            "a page of about COUNT members: {}",
            items.len()
        );
        for pair in items.chunks(2) {
            let [Frame::Bulk(member), Frame::Bulk(score)] = pair else {
                panic!("member and score: {pair:?}");
            };
            let member = String::from_utf8(member.clone()).expect("utf-8 member");
            let index: i64 = member["member:".len()..].parse().expect("member number");
            assert_eq!(score, format!("{index}.5").as_bytes());
            seen.insert(member, ());
        }
        cursor = String::from_utf8(next.clone()).expect("utf-8 cursor");
        calls += 1;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), members as usize, "every member at least once");
    assert!(calls > 50, "the walk took {calls} calls of COUNT 20");
    let Frame::Array(picked) = client.cmd(&["ZRANDMEMBER", "big", "100", "WITHSCORES"]) else {
        panic!("ZRANDMEMBER replies an array");
    };
    assert_eq!(picked.len(), 200);
    let distinct: std::collections::HashSet<String> = picked
        .iter()
        .step_by(2)
        .map(|member| format!("{member:?}"))
        .collect();
    assert_eq!(
        distinct.len(),
        100,
        "a positive count picks distinct members"
    );
    for pair in picked.chunks(2) {
        let [Frame::Bulk(member), score] = pair else {
            panic!("member and score: {pair:?}");
        };
        let member = String::from_utf8(member.clone()).expect("utf-8 member");
        assert_eq!(client.cmd(&["ZSCORE", "big", &member]), score.clone());
    }
    let Frame::Array(repeated) = client.cmd(&["ZRANDMEMBER", "big", "-7000"]) else {
        panic!("ZRANDMEMBER replies an array");
    };
    assert_eq!(repeated.len(), 7000, "a negative count repeats members");
}
