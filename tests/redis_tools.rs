//! Debian's redis-cli and redis-benchmark against amber-server.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::process::Command;

use common::{ServerProcess, redis_tool};

fn cli(server: &ServerProcess, args: &[&str]) -> String {
    let output = Command::new(redis_tool("redis-cli"))
        .args(["-p", &server.port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn redis_cli_commands() {
    let server = ServerProcess::amber(&[]);
    assert_eq!(cli(&server, &["PING"]), "PONG\n");
    assert_eq!(cli(&server, &["SET", "k", "hello world"]), "OK\n");
    assert_eq!(cli(&server, &["GET", "k"]), "hello world\n");
    assert_eq!(cli(&server, &["INCR", "n"]), "1\n");
    assert_eq!(cli(&server, &["GET", "nothing"]), "\n");
    assert_eq!(cli(&server, &["--no-raw", "GET", "nothing"]), "(nil)\n");
    assert_eq!(
        cli(&server, &["--no-raw", "INCR", "k"]),
        "(error) ERR value is not an integer or out of range\n"
    );
    assert_eq!(cli(&server, &["-n", "3", "SET", "in3", "x"]), "OK\n");
    assert_eq!(cli(&server, &["-n", "3", "DBSIZE"]), "1\n");
    assert!(cli(&server, &["INFO", "server"]).contains("redis_version:7.0.15"));
    assert_eq!(
        cli(&server, &["-3", "--no-raw", "HELLO", "3"])
            .lines()
            .next(),
        Some("1# \"server\" => \"redis\"")
    );
}

#[test]
fn redis_cli_reads_commands_from_stdin() {
    let server = ServerProcess::amber(&[]);
    let mut child = Command::new(redis_tool("redis-cli"))
        .args(["-p", &server.port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..100 {
        input.push_str(&format!("SET key:{i} {i}\n"));
    }
    input.push_str("DBSIZE\n");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().last(), Some("100"), "{stdout}");
}

#[test]
fn redis_benchmark_runs_against_amber() {
    let server = ServerProcess::amber(&[]);
    let output = Command::new(redis_tool("redis-benchmark"))
        .args([
            "-p",
            &server.port.to_string(),
            "-t",
            "set,get,incr,mset",
            "-n",
            "20000",
            "-c",
            "20",
            "-q",
        ])
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for test in ["SET", "GET", "INCR", "MSET (10 keys)"] {
        let line = stdout
            .split(['\n', '\r'])
            .find(|l| l.starts_with(&format!("{test}: ")) && l.contains("requests per second"));
        assert!(line.is_some(), "no result for {test} in:\n{stdout}");
    }
    let mut client = server.client();
    assert_eq!(
        client.cmd(&["GET", "counter:__rand_int__"]),
        common::Frame::Bulk(b"20000".to_vec())
    );
}
