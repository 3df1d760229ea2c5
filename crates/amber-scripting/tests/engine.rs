//! The engine against a scripted host: conversions, errors, sandbox and libraries.

use amber_protocol::{Frame, Protocol, ReplyWriter};
use amber_scripting::{Engine, Host, RestorePolicy};
use bytes::Bytes;

/// A host that answers every command with a canned reply and records what it was asked.
#[derive(Default)]
struct FakeHost {
    calls: Vec<Vec<Bytes>>,
    interrupts: usize,
    kill_after: Option<usize>,
}

impl Host for FakeHost {
    fn call(&mut self, args: Vec<Bytes>, _resp3: bool) -> Result<Frame, String> {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        self.calls.push(args.clone());
        match name.as_str() {
            "ping" => Ok(Frame::Simple(b"PONG".to_vec())),
            "get" => Ok(Frame::NullBulk),
            "echo" => Ok(Frame::Bulk(args[1].to_vec())),
            "incr" => Ok(Frame::Integer(1)),
            "lrange" => Ok(Frame::Array(vec![
                Frame::Bulk(b"a".to_vec()),
                Frame::Integer(2),
            ])),
            "fail" => Ok(Frame::Error(b"WRONGTYPE Operation against a key".to_vec())),
            "panic" => panic!("a command that panics"),
            _ => Err("Unknown Redis command called from script".into()),
        }
    }
    fn set_replication(&mut self, _aof: bool, _replicas: bool) {}
    fn interrupt(&mut self) -> bool {
        self.interrupts += 1;
        self.kill_after.is_some_and(|n| self.interrupts >= n)
    }

    fn permitted(&mut self, args: Vec<Bytes>) -> Result<bool, String> {
        // Everything but DEL, for the test of redis.acl_check_cmd.
        Ok(!args[0].eq_ignore_ascii_case(b"del"))
    }
}

fn engine() -> Engine {
    Engine::new(Box::new(|_, _| {})).expect("engine starts")
}

fn eval(
    engine: &mut Engine,
    host: &mut FakeHost,
    body: &str,
    keys: &[&str],
    args: &[&str],
) -> Result<Frame, String> {
    let sha = engine.load_script(body.as_bytes()).map_err(|e| e.message)?;
    let keys: Vec<Bytes> = keys
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let mut out = ReplyWriter::new(Protocol::Resp2);
    engine
        .eval(host, sha.as_bytes(), &keys, &args, &mut out)
        .map_err(|e| e.message)?;
    let bytes = out.buffer().to_vec();
    Ok(Frame::parse(&bytes)
        .expect("valid reply")
        .expect("complete reply")
        .0)
}

fn run(body: &str) -> Result<Frame, String> {
    eval(&mut engine(), &mut FakeHost::default(), body, &[], &[])
}

#[test]
fn values_convert_as_redis() {
    assert_eq!(run("return 100.5"), Ok(Frame::Integer(100)));
    assert_eq!(run("return 'hello'"), Ok(Frame::Bulk(b"hello".to_vec())));
    assert_eq!(run("return true"), Ok(Frame::Integer(1)));
    assert_eq!(run("return false"), Ok(Frame::NullBulk));
    assert_eq!(
        run("return {ok='fine'}"),
        Ok(Frame::Simple(b"fine".to_vec()))
    );
    assert_eq!(
        run("return {1,2,3,'ciao',{1,2}}"),
        Ok(Frame::Array(vec![
            Frame::Integer(1),
            Frame::Integer(2),
            Frame::Integer(3),
            Frame::Bulk(b"ciao".to_vec()),
            Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)]),
        ]))
    );
    assert_eq!(
        run("return {err='ERR this is an error'}"),
        Err("ERR this is an error".into())
    );
    assert_eq!(
        run("return {1, nil, 3}"),
        Ok(Frame::Array(vec![Frame::Integer(1)]))
    );
}

#[test]
fn keys_and_argv_are_globals() {
    let mut engine = engine();
    let reply = eval(
        &mut engine,
        &mut FakeHost::default(),
        "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}",
        &["a", "b"],
        &["c", "d"],
    );
    let expected = ["a", "b", "c", "d"]
        .iter()
        .map(|s| Frame::Bulk(s.as_bytes().to_vec()))
        .collect();
    assert_eq!(reply, Ok(Frame::Array(expected)));
}

#[test]
fn redis_call_converts_replies() {
    assert_eq!(
        run("return redis.call('ping')"),
        Ok(Frame::Simple(b"PONG".to_vec()))
    );
    assert_eq!(
        run("return redis.call('get','x') == false"),
        Ok(Frame::Integer(1))
    );
    assert_eq!(
        run("local r = redis.call('lrange','l',0,-1); return {type(r[1]), type(r[2])}"),
        Ok(Frame::Array(vec![
            Frame::Bulk(b"string".to_vec()),
            Frame::Bulk(b"number".to_vec())
        ]))
    );
    let mut host = FakeHost::default();
    eval(
        &mut engine(),
        &mut host,
        "return redis.call('echo', 3.5, 10)",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(host.calls[0][1].as_ref(), b"3.5");
    assert_eq!(host.calls[0][2].as_ref(), b"10");
}

#[test]
fn errors_carry_the_script_position() {
    let error = run("redis.call('nosuchcommand')").unwrap_err();
    assert!(
        error.starts_with("ERR Unknown Redis command called from script script: "),
        "{error}"
    );
    assert!(error.ends_with(", on @user_script:1."), "{error}");
    let error = run("\nredis.call('fail')").unwrap_err();
    assert!(
        error.starts_with("WRONGTYPE Operation against a key script:"),
        "{error}"
    );
    assert!(error.ends_with("@user_script:2."), "{error}");
    assert_eq!(
        run("return redis.pcall('fail')").unwrap_err(),
        "WRONGTYPE Operation against a key"
    );
    let error = run("return redis.call()").unwrap_err();
    assert!(
        error.contains("Please specify at least one argument"),
        "{error}"
    );
    let error = run("return redis.call('echo', {})").unwrap_err();
    assert!(error.contains("must be strings or integers"), "{error}");
    let error = run("return foo").unwrap_err();
    assert!(
        error.contains("Script attempted to access nonexistent global variable 'foo'"),
        "{error}"
    );
    let error = run("return +").unwrap_err();
    assert!(
        error.starts_with("ERR Error compiling script (new function): user_script:1:"),
        "{error}"
    );
}

#[test]
fn sandbox_is_read_only() {
    for body in [
        "a = 10",
        "setmetatable(_G, {})",
        "local g = getmetatable(_G); g.__index = {}",
        "redis = function() return 1 end",
        "_G = {}",
        "redis.call = function() return 1 end",
        "cjson.encode = function() return 1 end",
        "cmsgpack.pack = function() return 1 end",
        "bit.lshift = function() return 1 end",
        "rawset(_G, 'a', 1)",
    ] {
        let error = run(body).unwrap_err();
        assert!(
            error.contains("Attempt to modify a readonly table"),
            "{body}: {error}"
        );
    }
    for name in ["loadfile", "dofile", "print", "os", "io"] {
        let error = run(&format!("{name}('x')")).unwrap_err();
        assert!(
            error.contains(&format!("nonexistent global variable '{name}'")),
            "{error}"
        );
    }
    assert_eq!(run("return _G"), Ok(Frame::Array(vec![])));
}

#[test]
fn pcall_returns_redis_error_messages() {
    let reply =
        run("local ok, e = pcall(function() redis.call('fail') end); return {tostring(ok), e}");
    assert_eq!(
        reply,
        Ok(Frame::Array(vec![
            Frame::Bulk(b"false".to_vec()),
            Frame::Bulk(b"WRONGTYPE Operation against a key".to_vec()),
        ]))
    );
}

#[test]
fn bundled_libraries_encode_as_redis() {
    assert_eq!(
        run(r#"return table.concat(cjson.decode("[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]"), " ")"#),
        Ok(Frame::Bulk(b"0 -5000 -1 0.0003 1023.2 0".to_vec()))
    );
    let hex = r#"local h = "" for i = 1, #e do h = h .. string.format("%02x", string.byte(e, i)) end return h"#;
    assert_eq!(
        run(&format!("local e = cmsgpack.pack(0.1) {hex}")),
        Ok(Frame::Bulk(b"cb3fb999999999999a".to_vec()))
    );
    assert_eq!(
        run(&format!("local e = cmsgpack.pack(-1099511627776) {hex}")),
        Ok(Frame::Bulk(b"d3ffffff0000000000".to_vec()))
    );
    assert_eq!(
        run("return bit.bor(1,2,4,8,16,32,64,128)"),
        Ok(Frame::Integer(255))
    );
    assert_eq!(
        run("return bit.tohex(65535)"),
        Ok(Frame::Bulk(b"0000ffff".to_vec()))
    );
    assert_eq!(
        run("return cjson.encode({a={1,2}})"),
        Ok(Frame::Bulk(br#"{"a":[1,2]}"#.to_vec()))
    );
    assert_eq!(
        run("return struct.unpack('>I2', struct.pack('>I2', 513))"),
        Ok(Frame::Integer(513))
    );
    assert_eq!(
        run("return redis.sha1hex('')"),
        Ok(Frame::Bulk(
            b"da39a3ee5e6b4b0d3255bfef95601890afd80709".to_vec()
        ))
    );
}

#[test]
fn a_killed_script_stops_even_under_pcall() {
    let mut host = FakeHost {
        kill_after: Some(2),
        ..FakeHost::default()
    };
    let error = eval(
        &mut engine(),
        &mut host,
        "local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end",
        &[],
        &[],
    )
    .unwrap_err();
    assert!(error.contains("killed by user"), "{error}");
}

#[test]
fn functions_load_list_and_call() {
    let mut engine = engine();
    let code = b"#!lua name=lib\nredis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)\nredis.register_function{function_name='ro', callback=function() return 1 end, flags={'no-writes'}}";
    assert_eq!(engine.load_library(code, false, true), Ok("lib".into()));
    assert_eq!(
        engine.load_library(code, false, true).unwrap_err().message,
        "ERR Library 'lib' already exists"
    );
    assert!(
        engine
            .function_flags("ro")
            .is_some_and(|f| f.contains(amber_scripting::ScriptFlags::NO_WRITES))
    );
    let mut out = ReplyWriter::new(Protocol::Resp2);
    engine
        .call_function(
            &mut FakeHost::default(),
            "hello",
            &[],
            &[Bytes::from_static(b"you")],
            &mut out,
        )
        .unwrap();
    assert_eq!(out.buffer().as_ref(), b"$6\r\nhi you\r\n");
    let error = engine
        .load_library(b"#!lua name=x\nreturn 1", false, true)
        .unwrap_err();
    assert_eq!(error.message, "ERR No functions registered");
    let error = engine
        .load_library(b"#!lua name=x\nlocal a = string.len('x')", false, true)
        .unwrap_err();
    assert!(
        error
            .message
            .contains("nonexistent global variable 'string'"),
        "{}",
        error.message
    );
    let error = engine.load_library(b"return 1", false, true).unwrap_err();
    assert_eq!(error.message, "ERR Missing library metadata");
    let sources: Vec<Vec<u8>> = engine.libraries().map(|l| l.code.to_vec()).collect();
    engine.flush_libraries();
    engine
        .restore_libraries(&sources, RestorePolicy::Append)
        .unwrap();
    assert_eq!(engine.functions_count(), (1, 2));
}

#[test]
fn a_library_that_loops_times_out() {
    let mut engine = engine();
    let error = engine
        .load_library(b"#!lua name=slow\nwhile true do end", false, true)
        .unwrap_err();
    assert!(
        error.message.contains("FUNCTION LOAD timeout"),
        "{}",
        error.message
    );
    // The load's view of the globals (only the library API) ended with it.
    let code = b"#!lua name=after\nredis.register_function('len', function(keys, args) return string.len(args[1]) end)";
    assert_eq!(engine.load_library(code, false, true), Ok("after".into()));
    let mut out = ReplyWriter::new(Protocol::Resp2);
    engine
        .call_function(
            &mut FakeHost::default(),
            "len",
            &[],
            &[Bytes::from_static(b"four")],
            &mut out,
        )
        .unwrap();
    assert_eq!(out.buffer().as_ref(), b":4\r\n");
    let mut host = FakeHost::default();
    assert_eq!(
        eval(&mut engine, &mut host, "return string.len('abc')", &[], &[]),
        Ok(Frame::Integer(3))
    );
}

#[test]
fn cmsgpack_round_trips_big_values() {
    let body = r#"
        local array_big = {}
        for i=1, 100000 do array_big[i] = i end
        local map_big = {}
        for i=1, 100000 do map_big[tostring(i)] = i end
        local some_map = {s4=string.rep("x", 100000), a3=array_big, m2=map_big, i5=2^40, i10=-3147483648}
        local encoded = cmsgpack.pack(some_map)
        local decoded = cmsgpack.unpack(encoded)
        assert(decoded.a3[100000] == 100000)
        local offset, decoded_one = cmsgpack.unpack_one(encoded, 0)
        assert(offset == -1)
        return #encoded
    "#;
    let reply = run(body);
    assert!(
        matches!(reply, Ok(Frame::Integer(n)) if n > 100000),
        "{reply:?}"
    );
}

#[test]
fn acl_check_cmd_asks_the_host() {
    assert_eq!(
        run("return redis.acl_check_cmd('get', 'k')"),
        Ok(Frame::Integer(1))
    );
    assert_eq!(
        run("return redis.acl_check_cmd('del', 'k')"),
        Ok(Frame::NullBulk)
    );
    assert!(run("return redis.acl_check_cmd()").is_err());
}

#[test]
fn functions_are_found_by_name_through_replace_delete_and_flush() {
    let mut engine = engine();
    let library = |name: &str, function: &str| {
        format!("#!lua name={name}\nredis.register_function('{function}', function() return 1 end)")
    };
    assert_eq!(
        engine.load_library(library("a", "f1").as_bytes(), false, true),
        Ok("a".into())
    );
    assert!(engine.function_flags("f1").is_some());
    engine
        .load_library(library("a", "f2").as_bytes(), true, true)
        .unwrap();
    assert!(
        engine.function_flags("f1").is_none(),
        "replaced with its library"
    );
    assert!(engine.function_flags("f2").is_some());
    assert_eq!(
        engine
            .load_library(library("b", "f2").as_bytes(), false, true)
            .unwrap_err()
            .message,
        "ERR Function f2 already exists"
    );
    assert!(engine.delete_library("a"));
    assert!(engine.function_flags("f2").is_none());
    engine
        .load_library(library("b", "f2").as_bytes(), false, true)
        .unwrap();
    let mut out = ReplyWriter::new(Protocol::Resp2);
    engine
        .call_function(&mut FakeHost::default(), "f2", &[], &[], &mut out)
        .unwrap();
    assert_eq!(out.buffer().as_ref(), b":1\r\n");
    // A restore that fails leaves the libraries, and their functions, as they were.
    let bad = vec![library("c", "f3").into_bytes(), b"not a library".to_vec()];
    assert!(
        engine
            .restore_libraries(&bad, amber_scripting::RestorePolicy::Flush)
            .is_err()
    );
    assert!(engine.function_flags("f2").is_some());
    assert!(engine.function_flags("f3").is_none());
    engine.flush_libraries();
    assert!(engine.function_flags("f2").is_none());
}

#[test]
fn a_command_that_panics_unwinds_to_the_caller_and_leaves_the_engine_usable() {
    let mut engine = engine();
    let mut host = FakeHost::default();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Caught by pcall, it still stops the script: no command runs after it.
        let script = "pcall(redis.call, 'panic') return redis.call('echo', 'after')";
        eval(&mut engine, &mut host, script, &[], &[])
    }));
    assert!(outcome.is_err(), "the panic reaches the caller");
    let mut host = FakeHost::default();
    assert_eq!(
        eval(
            &mut engine,
            &mut host,
            "return redis.call('echo', 'still here')",
            &[],
            &[]
        ),
        Ok(Frame::Bulk(b"still here".to_vec()))
    );
    assert_eq!(
        eval(
            &mut engine,
            &mut host,
            "return redis.pcall('lrange')",
            &[],
            &[]
        ),
        Ok(Frame::Array(vec![
            Frame::Bulk(b"a".to_vec()),
            Frame::Integer(2)
        ]))
    );
}
