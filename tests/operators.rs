//! Operator commands against Redis 7.0: the slow log (entries, trimming, redaction, limits),
//! the latency monitor (events, history, reset, errors), MONITOR's view of scripts and
//! secrets, CONFIG SET port moving the listening socket, and CONFIG SET of a directive Amber
//! does not act on yet logged once.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Client, Frame, ServerProcess, bulk, error};

/// A slow log entry without what differs between servers and runs (id, time, duration,
/// client address): its arguments and client name.
fn entry_shape(entry: &Frame) -> Frame {
    let Frame::Array(fields) = entry else {
        panic!("an entry is an array: {entry:?}")
    };
    assert_eq!(fields.len(), 6);
    assert!(matches!(fields[2], Frame::Integer(micros) if micros >= 0));
    Frame::Array(vec![fields[3].clone(), fields[5].clone()])
}

fn slowlog_session(client: &mut Client) -> Vec<Frame> {
    let mut seen = Vec::new();
    client.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    client.cmd(&["SLOWLOG", "RESET"]);
    client.cmd(&["CLIENT", "SETNAME", "operator"]);
    client.cmd(&["SET", "k", "v"]);
    client.cmd(&["AUTH", "nobody", "secret"]);
    client.cmd(&["CONFIG", "SET", "masterauth", "hidden", "maxmemory", "0"]);
    client.cmd(&["ACL", "SETUSER", "alice", "on", ">pass", "~*", "+@all"]);
    let many: Vec<String> = std::iter::once("RPUSH".to_string())
        .chain(std::iter::once("list".to_string()))
        .chain((0..40).map(|i| i.to_string()))
        .collect();
    client.cmd(&many);
    client.cmd(&["SET", "long", &"x".repeat(200)]);
    client.cmd(&["MULTI"]);
    client.cmd(&["INCR", "n"]);
    client.cmd(&["EXEC"]);
    let Frame::Array(entries) = client.cmd(&["SLOWLOG", "GET", "-1"]) else {
        panic!("SLOWLOG GET is an array")
    };
    seen.extend(entries.iter().map(entry_shape));
    seen.push(client.cmd(&["SLOWLOG", "LEN"]));
    seen.push(client.cmd(&["SLOWLOG", "GET", "-2"]));
    seen.push(client.cmd(&["SLOWLOG", "GET", "x"]));
    seen.push(client.cmd(&["SLOWLOG", "LEN", "extra"]));
    seen.push(client.cmd(&["SLOWLOG", "NOPE"]));
    client.cmd(&["CONFIG", "SET", "slowlog-max-len", "3"]);
    client.cmd(&["PING"]);
    seen.push(client.cmd(&["SLOWLOG", "LEN"]));
    client.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    client.cmd(&["SLOWLOG", "RESET"]);
    client.cmd(&["SET", "after", "1"]);
    seen.push(client.cmd(&["SLOWLOG", "LEN"]));
    seen
}

#[test]
fn slow_log_matches_redis() {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let expected = slowlog_session(&mut redis.client());
    let actual = slowlog_session(&mut amber.client());
    assert_eq!(actual, expected);
}

#[test]
fn latency_monitor_records_what_redis_records() {
    for server in [ServerProcess::redis(&[]), ServerProcess::amber(&[])] {
        let mut client = server.client();
        assert_eq!(client.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
        client.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "10"]);
        client.cmd(&["DEBUG", "SLEEP", "0.05"]);
        let Frame::Array(latest) = client.cmd(&["LATENCY", "LATEST"]) else {
            panic!("LATENCY LATEST is an array")
        };
        let Frame::Array(event) = &latest[0] else {
            panic!("an event is an array")
        };
        assert_eq!(event[0], bulk("command"));
        assert!(
            matches!(event[2], Frame::Integer(ms) if ms >= 50),
            "{event:?}"
        );
        let Frame::Array(history) = client.cmd(&["LATENCY", "HISTORY", "command"]) else {
            panic!("LATENCY HISTORY is an array")
        };
        assert_eq!(history.len(), 1);
        let Frame::Bulk(graph) = client.cmd(&["LATENCY", "GRAPH", "command"]) else {
            panic!("LATENCY GRAPH is text")
        };
        assert!(String::from_utf8_lossy(&graph).starts_with("command - high "));
        assert_eq!(
            client.cmd(&["LATENCY", "GRAPH", "nothing"]),
            error("ERR No samples available for event 'nothing'")
        );
        assert_eq!(
            client.cmd(&["LATENCY", "RESET", "command", "other"]),
            Frame::Integer(1)
        );
        assert_eq!(client.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
        let Frame::Array(histogram) = client.cmd(&["LATENCY", "HISTOGRAM", "set", "debug"]) else {
            panic!("LATENCY HISTOGRAM is a map (an array in RESP2)")
        };
        assert_eq!(histogram[0], bulk("debug"));
    }
}

/// What a MONITOR connection reads while `commands` run, without timestamps and addresses.
fn monitored(server: &ServerProcess, commands: &[&[&str]]) -> Vec<String> {
    let mut monitor = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    monitor.write_all(b"MONITOR\r\n").unwrap();
    let mut client = server.client();
    std::thread::sleep(Duration::from_millis(100));
    for command in commands {
        client.cmd(command);
    }
    std::thread::sleep(Duration::from_millis(200));
    monitor
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = monitor.read(&mut chunk) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&raw)
        .split("\r\n")
        .filter(|line| line.starts_with('+') && *line != "+OK")
        .map(|line| {
            let (_, rest) = line.split_once(" [").unwrap();
            let (origin, args) = rest.split_once("] ").unwrap();
            let db = origin.split(' ').next().unwrap();
            let lua = origin.ends_with("lua");
            format!("{db}{} {args}", if lua { " lua" } else { "" })
        })
        .collect()
}

#[test]
fn monitor_shows_scripts_and_hides_secrets_as_redis() {
    let commands: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "a"],
        &["AUTH", "someone", "secret"],
        &["HELLO", "2", "AUTH", "default", "wrong"],
        &["CONFIG", "GET", "maxmemory"],
        &["MIGRATE", "127.0.0.1", "1", "a", "0", "10", "AUTH", "pw"],
    ];
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let shown = monitored(&amber, commands);
    assert!(
        shown.iter().any(|line| line.starts_with("0 lua ")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|line| line.contains("(redacted)")),
        "{shown:?}"
    );
    assert_eq!(shown, monitored(&redis, commands));
}

#[test]
fn config_set_port_moves_the_listener() {
    let amber = ServerProcess::amber(&[]);
    let mut client = amber.client();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "maxmemory", "12345", "port", &busy_port]),
        error(
            "ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port"
        )
    );
    assert_eq!(
        client.cmd(&["CONFIG", "GET", "maxmemory"]),
        Frame::Array(vec![bulk("maxmemory"), bulk("0")])
    );
    // The old sockets stopped listening for the attempt and listen again.
    assert_eq!(amber.client().cmd(&["PING"]), common::simple("PONG"));
    drop(busy);
    let free = common::free_port();
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "port", &free.to_string()]),
        common::simple("OK")
    );
    common::wait_for(
        || TcpStream::connect(("127.0.0.1", free)).is_ok(),
        "the new port to accept",
    );
    let mut moved = Client::connect(free);
    assert_eq!(moved.cmd(&["PING"]), common::simple("PONG"));
    common::wait_for(
        || TcpStream::connect(("127.0.0.1", amber.port)).is_err(),
        "the old port to close",
    );
    // The connection that asked is still served.
    assert_eq!(client.cmd(&["PING"]), common::simple("PONG"));
}

/// Sets `bind` on `server` to each of `steps` in turn and records, after each, the reply and
/// which of 127.0.0.1 and 127.0.0.2 accept connections on its port.
fn rebind_transcript(server: &ServerProcess, steps: &[&str]) -> Vec<(Frame, bool, bool)> {
    let mut client = server.client();
    let accepts = |ip: &str| TcpStream::connect((ip, server.port)).is_ok();
    steps
        .iter()
        .map(|bind| {
            let reply = client.cmd(&["CONFIG", "SET", "bind", bind]);
            common::wait_for(
                || accepts("127.0.0.1") == bind.contains("127.0.0.1"),
                "127.0.0.1 to follow the bind list",
            );
            (reply, accepts("127.0.0.1"), accepts("127.0.0.2"))
        })
        .collect()
}

#[test]
fn config_set_bind_keeps_the_addresses_both_lists_name() {
    // Each step shares an address with the one before: its socket must be kept, not bound
    // a second time (which the kernel refuses).
    let steps = [
        "127.0.0.1",
        "127.0.0.1 127.0.0.2",
        "127.0.0.2",
        "127.0.0.2 127.0.0.1",
        "127.0.0.1",
    ];
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let expected = rebind_transcript(&redis, &steps);
    let ok = common::simple("OK");
    assert!(
        expected.iter().all(|(reply, ..)| *reply == ok),
        "{expected:?}"
    );
    assert_eq!(rebind_transcript(&amber, &steps), expected);
}

#[test]
fn config_set_of_a_directive_without_effect_is_logged_once() {
    let server = ServerProcess::amber(&[]);
    let mut client = server.client();
    let warning = "CONFIG SET activedefrag: the directive is accepted for compatibility but has no effect in Amber yet";
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "activedefrag", "yes"]),
        common::simple("OK")
    );
    assert_eq!(
        client.cmd(&["CONFIG", "SET", "activedefrag", "no"]),
        common::simple("OK")
    );
    // A directive Amber acts on says nothing.
    client.cmd(&["CONFIG", "SET", "maxmemory-samples", "7"]);
    common::wait_for(|| server.log().contains(warning), "the warning is logged");
    let log = server.log();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(!log.contains("CONFIG SET maxmemory-samples"), "{log}");
}

/// The section titles and field names of `INFO everything`, in order, without the per-command
/// statistics (which depend on what ran).
fn info_shape(client: &mut Client) -> Vec<String> {
    let Frame::Bulk(text) = client.cmd(&["INFO", "everything"]) else {
        panic!("INFO replies a bulk string")
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split(':').next().unwrap_or_default().to_string())
        .filter(|name| {
            !name.starts_with("cmdstat_")
                && !name.starts_with("errorstat_")
                && !name.starts_with("latency_percentiles_usec_")
                && !name.starts_with("db")
        })
        .collect()
}

#[test]
fn info_everything_has_every_section_and_field_redis_prints() {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let expected = info_shape(&mut redis.client());
    let got = info_shape(&mut amber.client());
    // Amber's own additions: its version and the backup section.
    let got: Vec<String> = got
        .into_iter()
        .filter(|name| {
            name != "amber_version" && !name.starts_with("backup_") && name != "# Backup"
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn rename_command_hides_the_old_name_and_serves_the_new_one_as_redis() {
    let flags = [
        "--rename-command",
        "flushdb",
        "badger",
        "--rename-command",
        "debug",
        "",
    ];
    let redis = ServerProcess::redis(&flags);
    let amber = ServerProcess::amber(&flags);
    let session: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["FLUSHDB"],
        &["DEBUG", "SLEEP", "0"],
        &["DBSIZE"],
        &["badger"],
        &["DBSIZE"],
    ];
    let run = |server: &ServerProcess| {
        let mut client = server.client();
        session
            .iter()
            .map(|args| client.cmd(args))
            .collect::<Vec<_>>()
    };
    let expected = run(&redis);
    assert_eq!(run(&amber), expected);
    assert!(matches!(expected[1], Frame::Error(_)));
    assert_eq!(expected[5], Frame::Integer(0));
}

#[test]
fn rename_command_errors_stop_start_up_as_redis() {
    for (flags, text) in [
        (
            ["--rename-command", "nosuchcommand", "x"],
            "No such command in rename-command",
        ),
        (
            ["--rename-command", "get", "set"],
            "Target command name already exists",
        ),
    ] {
        let output = common::run_amber_to_exit(&flags);
        assert!(!output.status.success());
        let printed = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(printed.contains(text), "{printed}");
    }
}
