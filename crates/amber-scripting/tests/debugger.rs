//! The Lua debugger against a scripted console: what a `redis-cli --ldb` user sees.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use amber_protocol::{Frame, Protocol, ReplyWriter};
use amber_scripting::{Console, DebugSession, Engine, Host};
use bytes::Bytes;

/// A client that sends the given commands, one read each, then hangs up.
struct ScriptedConsole {
    input: VecDeque<Vec<u8>>,
    output: Rc<RefCell<Vec<u8>>>,
}

impl Console for ScriptedConsole {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(chunk) = self.input.pop_front() else {
            return Ok(0);
        };
        buf[..chunk.len()].copy_from_slice(&chunk);
        Ok(chunk.len())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.output.borrow_mut().extend_from_slice(bytes);
    }
}

/// A host that knows PING and ECHO.
struct EchoHost;

impl Host for EchoHost {
    fn call(&mut self, args: Vec<Bytes>, _resp3: bool) -> Result<Frame, String> {
        match String::from_utf8_lossy(&args[0])
            .to_ascii_lowercase()
            .as_str()
        {
            "ping" => Ok(Frame::Simple(b"PONG".to_vec())),
            "echo" => Ok(Frame::Bulk(args[1].to_vec())),
            "fail" => Ok(Frame::Error(b"ERR failed".to_vec())),
            _ => Err("Unknown Redis command called from script".into()),
        }
    }
    fn set_replication(&mut self, _aof: bool, _replicas: bool) {}
    fn interrupt(&mut self) -> bool {
        false
    }
    fn permitted(&mut self, _args: Vec<Bytes>) -> Result<bool, String> {
        Ok(true)
    }
}

fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        out.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
    out
}

/// Runs `body` under the debugger with `commands` typed in; returns each batch of log lines
/// the client received, and the script's reply (or error).
fn debug(body: &str, commands: &[&[&str]]) -> (Vec<Vec<String>>, Result<Frame, String>) {
    let mut engine = Engine::new(Box::new(|_, _| {})).expect("engine starts");
    let output = Rc::new(RefCell::new(Vec::new()));
    let console = ScriptedConsole {
        input: commands.iter().map(|words| command(words)).collect(),
        output: output.clone(),
    };
    engine.start_debugging(
        DebugSession::new(Box::new(console), Duration::from_secs(5)),
        body.as_bytes(),
    );
    let mut out = ReplyWriter::new(Protocol::Resp2);
    let result = engine
        .load_script(body.as_bytes())
        .and_then(|sha| engine.eval(&mut EchoHost, sha.as_bytes(), &[], &[], &mut out));
    engine.stop_debugging();
    assert!(!engine.debugging());
    let reply = result.map_err(|e| e.message).map(|()| {
        Frame::parse(out.buffer())
            .expect("valid reply")
            .expect("complete reply")
            .0
    });
    let mut batches = Vec::new();
    let output = output.borrow();
    let mut rest = output.as_slice();
    while !rest.is_empty() {
        let (frame, used) = Frame::parse(rest).expect("valid").expect("complete");
        rest = &rest[used..];
        let Frame::Array(lines) = frame else {
            panic!("log batches are arrays: {frame:?}");
        };
        batches.push(
            lines
                .into_iter()
                .map(|line| match line {
                    Frame::Simple(text) => String::from_utf8(text).expect("utf-8"),
                    other => panic!("log lines are simple strings: {other:?}"),
                })
                .collect(),
        );
    }
    (batches, reply)
}

const SCRIPT: &str =
    "local a = 1\nlocal t = {1, 2, 'x'}\nredis.call('ping')\nredis.debug('hi', a)\nreturn a\n";

#[test]
fn a_session_steps_prints_breaks_and_evaluates() {
    let (batches, reply) = debug(
        SCRIPT,
        &[
            &["s"],
            &["p"],
            &["s"],
            &["p", "t"],
            &["b", "5"],
            &["s"],
            &["c"],
            &["e", "1", "+", "1"],
            &["eval", "a"],
            &["r", "echo", "x"],
            &["print", "nothere"],
            &["c"],
        ],
    );
    let expected: Vec<Vec<&str>> = vec![
        vec![
            "* Stopped at 1, stop reason = step over",
            "-> 1   local a = 1",
        ],
        vec![
            "* Stopped at 2, stop reason = step over",
            "-> 2   local t = {1, 2, 'x'}",
        ],
        vec!["<value> a = 1"],
        vec![
            "* Stopped at 3, stop reason = step over",
            "-> 3   redis.call('ping')",
        ],
        vec!["<value> {1; 2; \"x\"}"],
        vec!["   4   redis.debug('hi', a)", "  #5   return a"],
        vec![
            "<redis> ping",
            "<reply> \"+PONG\"",
            "* Stopped at 4, stop reason = step over",
            "-> 4   redis.debug('hi', a)",
        ],
        vec![
            "<debug> line 4: \"hi\", 1",
            "* Stopped at 5, stop reason = break point",
            "->#5   return a",
        ],
        vec!["<retval> 2"],
        // Like Redis's, eval runs in its own frame: the script's locals are not there.
        vec!["<error> ldb_eval:1: Script attempted to access nonexistent global variable 'a'"],
        vec!["<redis> echo x", "<reply> \"x\""],
        vec!["No such variable."],
        vec!["<endsession>"],
    ];
    assert_eq!(batches, expected);
    assert_eq!(reply, Ok(Frame::Integer(1)));
}

#[test]
fn unknown_commands_and_a_hang_up_let_the_script_finish() {
    let (batches, reply) = debug(SCRIPT, &[&["hello\0world"], &["list", "1", "1"]]);
    assert_eq!(
        batches[1],
        ["<error> Unknown Redis Lua debugger command or wrong number of arguments."]
    );
    assert_eq!(
        batches[2],
        ["-> 1   local a = 1", "   2   local t = {1, 2, 'x'}"]
    );
    // The client went away: no more stops, the script ran to its end.
    assert_eq!(batches[3], ["<debug> line 4: \"hi\", 1", "<endsession>"]);
    assert_eq!(batches.len(), 4);
    assert_eq!(reply, Ok(Frame::Integer(1)));
}

#[test]
fn abort_and_protocol_errors_end_the_script_with_an_error() {
    let (_, reply) = debug(SCRIPT, &[&["abort"]]);
    let error = reply.expect_err("aborted");
    assert!(
        error.starts_with("ERR script aborted for user request"),
        "{error}"
    );

    let mut engine = Engine::new(Box::new(|_, _| {})).expect("engine starts");
    let console = ScriptedConsole {
        input: VecDeque::from([b"PING\r\n".to_vec()]),
        output: Rc::new(RefCell::new(Vec::new())),
    };
    engine.start_debugging(
        DebugSession::new(Box::new(console), Duration::ZERO),
        SCRIPT.as_bytes(),
    );
    let sha = engine.load_script(SCRIPT.as_bytes()).expect("compiles");
    let mut out = ReplyWriter::new(Protocol::Resp2);
    let error = engine
        .eval(&mut EchoHost, sha.as_bytes(), &[], &[], &mut out)
        .expect_err("protocol error");
    engine.stop_debugging();
    assert!(
        error.message.contains("protocol error"),
        "{}",
        error.message
    );
}

#[test]
fn the_redis_command_logs_errors_and_long_commands() {
    let mut words = vec!["redis"];
    words.extend(std::iter::repeat_n("test", 100));
    let (batches, _) = debug(SCRIPT, &[&words, &["r", "fail"], &["maxlen", "10"]]);
    assert_eq!(
        batches[1],
        [
            "<redis> test test test test test test test test test test ... (89 more)",
            "<error> Unknown Redis command called from script",
        ]
    );
    assert_eq!(
        batches[2],
        [
            "<redis> fail",
            "<error> ERR failed",
            "<reply> \"-ERR failed\""
        ]
    );
    assert_eq!(batches[3], ["<value> replies are truncated at 60 bytes."]);
}

#[test]
fn help_lists_every_command_and_trace_names_the_frame() {
    let body =
        "local function f()\n  redis.breakpoint()\n  return 1\nend\nlocal r = f()\nreturn r\n";
    let (batches, reply) = debug(body, &[&["h"], &["c"], &["t"], &["c"]]);
    assert_eq!(batches[1][0], "Redis Lua debugger help:");
    assert_eq!(batches[1].len(), 30);
    assert_eq!(
        batches[2],
        [
            "* Stopped at 3, stop reason = redis.breakpoint() called",
            "-> 3     return 1"
        ]
    );
    assert_eq!(
        batches[3],
        [
            "In f:",
            "-> 3     return 1",
            "From top level:",
            "   5   local r = f()"
        ]
    );
    assert_eq!(reply, Ok(Frame::Integer(1)));
}
