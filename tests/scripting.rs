//! Scripting against Redis 7.0: the same scripts on both servers give the same replies in
//! RESP2 and RESP3 (values, conversions, error texts); real-world scripts (a Redlock-style
//! lock, a sliding-window rate limiter, a job queue); Functions moving between Amber and Redis
//! by `FUNCTION DUMP`/`RESTORE` and by RDB files; script effects replicated to a Redis replica
//! as the commands they ran; and an `appendfsync always` crash replayed to the same digest.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::time::Duration;

use common::{Client, Frame, ServerProcess, bulk, digest, wait_for};

/// Scripts whose replies must match Redis's exactly, with their keys and arguments.
const SCRIPTS: &[&str] = &[
    "return 'hello'",
    "return 100.5",
    "return -3.9",
    "return true",
    "return false",
    "return nil",
    "return {ok='fine'}",
    "return {err='ERR this is an error'}",
    "return {err='MYCODE custom'}",
    "return redis.error_reply('My Error')",
    "return redis.status_reply('STATUS')",
    "return {1,2,3,'ciao',{1,2}}",
    "return {1,nil,3}",
    "return {double=3.5}",
    "return {map={a=1}}",
    "return {set={a=true}}",
    "return {big_number='123456789012345678901234567890'}",
    "return {KEYS[1],ARGV[1]}",
    "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])",
    "return redis.call('incr', KEYS[1])",
    "return redis.pcall('incr', KEYS[1])",
    "redis.call('incr', KEYS[1])",
    "return redis.call('nosuchcommand')",
    "return redis.call('get')",
    "return redis.call('blpop', 'x', 0)",
    "return redis.call()",
    "return redis.call('set', {}, 1)",
    "return foo",
    "a = 1",
    "return +",
    "error('plain')",
    "error({err='TABLE err'})",
    "return redis.sha1hex('Pizza & Mandolino')",
    "return cjson.encode({1,2,3})",
    "return cjson.decode('[1,2,{\"a\":3}]')[3].a",
    "return bit.band(0xff, 0x0f)",
    "return struct.pack('>I2', 258)",
    "return tostring(cmsgpack.unpack(cmsgpack.pack({1,2,3}))[3])",
    "redis.setresp(3); return redis.call('hgetall', KEYS[1])",
    "redis.setresp(3); return redis.call('sismember', KEYS[1], 'a')",
    "redis.setresp(3); return {map={a=true, b=false}}",
    "return redis.call('hgetall', KEYS[1])",
    "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 1)",
    "#!lua flags=bogus\nreturn 1",
    "#!python\nreturn 1",
    "return redis.REDIS_VERSION",
    "return loadstring(string.dump(function() return 1 end))",
];

fn fresh_pair() -> (ServerProcess, ServerProcess) {
    (ServerProcess::amber(&[]), ServerProcess::redis(&[]))
}

fn eval(client: &mut Client, script: &str) -> Frame {
    client.cmd(&["EVAL", script, "1", "key", "value"])
}

/// Error texts name the script by its SHA1 and position: both servers agree on those too.
#[test]
fn scripts_reply_as_redis_in_both_protocols() {
    let (amber, redis) = fresh_pair();
    for protocol in ["2", "3"] {
        let (mut a, mut r) = (amber.client(), redis.client());
        a.cmd(&["HELLO", protocol]);
        r.cmd(&["HELLO", protocol]);
        for script in SCRIPTS {
            for client in [&mut a, &mut r] {
                client.cmd(&["DEL", "key"]);
                client.cmd(&["HSET", "key", "f", "v"]);
            }
            let expected = eval(&mut r, script);
            let actual = eval(&mut a, script);
            assert_eq!(actual, expected, "RESP{protocol}: {script}");
        }
    }
}

#[test]
fn script_cache_commands_match_redis() {
    let (amber, redis) = fresh_pair();
    let (mut a, mut r) = (amber.client(), redis.client());
    let commands: &[&[&str]] = &[
        &["SCRIPT", "LOAD", "return 1"],
        &[
            "SCRIPT",
            "EXISTS",
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
            "ffff",
        ],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        &["EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0"],
        &["EVALSHA", "ffff", "0"],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "2", "a"],
        &["EVAL", "return 1", "x"],
        &["SCRIPT", "FLUSH", "bogus"],
        &["SCRIPT", "FLUSH"],
        &[
            "SCRIPT",
            "EXISTS",
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
        ],
        &["SCRIPT", "KILL"],
        &["FUNCTION", "KILL"],
        &["EVAL_RO", "return redis.call('set','k','v')", "1", "k"],
        &["FUNCTION", "LOAD", "return 1"],
        &["FUNCTION", "LOAD", "#!lua name=lib\nreturn 1"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('f', function(k, a) return #k end)",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('f', function() end)",
        ],
        &["FCALL", "f", "2", "a", "b"],
        &["FCALL", "nope", "0"],
        &["FCALL", "f", "x"],
        &["FCALL_RO", "f", "0"],
        &["FUNCTION", "DELETE", "nope"],
        &["FUNCTION", "LIST", "WITHCODE"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "l*"],
        &["FUNCTION", "RESTORE", "garbage"],
        &["FUNCTION", "FLUSH"],
        &["FUNCTION", "LIST"],
    ];
    for command in commands {
        assert_eq!(a.cmd(command), r.cmd(command), "{command:?}");
    }
}

/// A Redlock-style lock: acquire with SET NX PX, release only with the owner's token.
#[test]
fn redlock_acquire_and_release() {
    let amber = ServerProcess::amber(&[]);
    let mut c = amber.client();
    let release = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    let acquire = "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])";
    assert_eq!(
        c.cmd(&["EVAL", acquire, "1", "lock", "token-a", "30000"]),
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(
        c.cmd(&["EVAL", acquire, "1", "lock", "token-b", "30000"]),
        Frame::NullBulk
    );
    let sha = match c.cmd(&["SCRIPT", "LOAD", release]) {
        Frame::Bulk(sha) => String::from_utf8(sha).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "1", "lock", "token-b"]),
        Frame::Integer(0)
    );
    assert_eq!(c.cmd(&["GET", "lock"]), bulk("token-a"));
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "1", "lock", "token-a"]),
        Frame::Integer(1)
    );
    assert_eq!(c.cmd(&["EXISTS", "lock"]), Frame::Integer(0));
}

/// A sliding-window rate limiter over a sorted set: at most 3 calls per window.
#[test]
fn sliding_window_rate_limiter() {
    let amber = ServerProcess::amber(&[]);
    let mut c = amber.client();
    let limiter = r#"
        local now = tonumber(ARGV[1])
        local window = tonumber(ARGV[2])
        local limit = tonumber(ARGV[3])
        redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)
        if redis.call('zcard', KEYS[1]) < limit then
            redis.call('zadd', KEYS[1], now, ARGV[4])
            redis.call('pexpire', KEYS[1], window)
            return 1
        end
        return 0"#;
    let call = |c: &mut Client, now: u64, id: &str| {
        c.cmd(&[
            "EVAL",
            limiter,
            "1",
            "rate:user",
            &now.to_string(),
            "1000",
            "3",
            id,
        ])
    };
    let allowed: Vec<Frame> = (0..5)
        .map(|i| call(&mut c, 1000 + i, &format!("r{i}")))
        .collect();
    assert_eq!(
        allowed,
        [1, 1, 1, 0, 0].map(Frame::Integer).to_vec(),
        "three calls pass in one window"
    );
    assert_eq!(
        call(&mut c, 2001, "later"),
        Frame::Integer(1),
        "the window slid"
    );
    let ttl = c.cmd(&["PTTL", "rate:user"]);
    assert!(
        matches!(ttl, Frame::Integer(ms) if ms > 0 && ms <= 1000),
        "{ttl:?}"
    );
}

/// A job queue: move a job from `pending` to `running` atomically and record when it started.
#[test]
fn job_queue_moves_between_lists() {
    let amber = ServerProcess::amber(&[]);
    let mut c = amber.client();
    c.cmd(&["RPUSH", "pending", "job1", "job2"]);
    let take = r#"
        local job = redis.call('lmove', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
        if not job then return false end
        redis.call('hset', KEYS[3], job, ARGV[1])
        return job"#;
    let run = |c: &mut Client| c.cmd(&["EVAL", take, "3", "pending", "running", "started", "t0"]);
    assert_eq!(run(&mut c), bulk("job1"));
    assert_eq!(run(&mut c), bulk("job2"));
    assert_eq!(run(&mut c), Frame::NullBulk);
    assert_eq!(
        c.cmd(&["LRANGE", "running", "0", "-1"]),
        Frame::Array(vec![bulk("job1"), bulk("job2")])
    );
    assert_eq!(c.cmd(&["HGET", "started", "job2"]), bulk("t0"));
}

const LIBRARY: &str = "#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads a counter'}";

/// `FUNCTION LIST` with each library's functions in name order (Redis lists them in its hash
/// table's order).
fn sorted_functions(list: Frame) -> Frame {
    let Frame::Array(libraries) = list else {
        return list;
    };
    let sort = |library: Frame| match library {
        Frame::Array(mut fields) => {
            for field in fields.iter_mut() {
                if let Frame::Array(functions) = field {
                    functions.sort_by_key(|f| format!("{f:?}"));
                }
            }
            Frame::Array(fields)
        }
        other => other,
    };
    Frame::Array(libraries.into_iter().map(sort).collect())
}

/// FUNCTION DUMP payloads restore in the other server, both ways.
#[test]
fn function_dump_moves_between_amber_and_redis() {
    let (amber, redis) = fresh_pair();
    let (mut a, mut r) = (amber.client(), redis.client());
    assert_eq!(a.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    let payload = a.cmd(&["FUNCTION", "DUMP"]);
    let Frame::Bulk(payload) = payload else {
        panic!("{payload:?}")
    };
    assert_eq!(
        r.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &payload]),
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(r.cmd(&["FCALL", "bump", "1", "n", "5"]), Frame::Integer(5));
    assert_eq!(
        sorted_functions(r.cmd(&["FUNCTION", "LIST"])),
        sorted_functions(a.cmd(&["FUNCTION", "LIST"]))
    );
    let Frame::Bulk(from_redis) = r.cmd(&["FUNCTION", "DUMP"]) else {
        panic!("no dump")
    };
    assert_eq!(
        from_redis, payload,
        "Amber's payload is Redis's byte for byte"
    );
    a.cmd(&["FUNCTION", "FLUSH"]);
    assert_eq!(
        a.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &from_redis]),
        Frame::Simple(b"OK".to_vec())
    );
    assert_eq!(a.cmd(&["FCALL_RO", "peek", "1", "n"]), Frame::NullBulk);
}

/// Libraries saved in an RDB file by either server load in the other one, and survive an
/// Amber restart and an AOF rewrite.
#[test]
fn functions_travel_in_rdb_files_both_ways() {
    let amber = ServerProcess::amber(&[]);
    let dir = amber.dir.clone();
    let mut a = amber.client();
    a.cmd(&["FUNCTION", "LOAD", LIBRARY]);
    a.cmd(&["SET", "n", "1"]);
    assert_eq!(a.cmd(&["SAVE"]), Frame::Simple(b"OK".to_vec()));
    common::assert_redis_check_rdb(&dir.join("dump.rdb"));
    let mut amber = amber;
    amber.keep_dir = true;
    drop(amber);
    let redis = ServerProcess::redis_in(&dir, &[]);
    let mut r = redis.client();
    assert_eq!(r.cmd(&["FCALL", "bump", "1", "n", "2"]), Frame::Integer(3));
    r.cmd(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=extra\nredis.register_function('twice', function(k, a) return a[1] * 2 end)",
    ]);
    assert_eq!(r.cmd(&["SAVE"]), Frame::Simple(b"OK".to_vec()));
    let mut redis = redis;
    redis.keep_dir = true;
    drop(redis);
    let amber = ServerProcess::amber_in(&dir, &["--aof-use-rdb-preamble", "no"]);
    let mut a = amber.client();
    assert_eq!(a.cmd(&["FCALL", "twice", "0", "21"]), Frame::Integer(42));
    assert_eq!(a.cmd(&["FCALL", "bump", "1", "n", "1"]), Frame::Integer(4));
    // Turning the AOF on writes a command-form base: it carries the libraries too.
    a.cmd(&["CONFIG", "SET", "appendonly", "yes"]);
    wait_for(
        || {
            common::info_field(&mut a, "aof_rewrite_in_progress") == "0"
                && common::info_field(&mut a, "aof_rewrite_scheduled") == "0"
                && common::info_field(&mut a, "aof_last_bgrewrite_status") == "ok"
                && dir.join("appendonlydir").exists()
        },
        "the AOF is written",
    );
    let mut amber = amber;
    amber.keep_dir = true;
    drop(amber);
    std::fs::remove_file(dir.join("dump.rdb")).unwrap();
    let amber = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(
        amber.client().cmd(&["FCALL", "twice", "0", "5"]),
        Frame::Integer(10)
    );
    assert_eq!(amber.client().cmd(&["GET", "n"]), bulk("4"));
}

/// A script's writes reach a Redis replica as the commands it ran, so the replica ends with the
/// master's dataset even for scripts that are not deterministic.
#[test]
fn script_effects_replicate_to_a_redis_replica() {
    let amber = ServerProcess::amber(&[]);
    let replica = ServerProcess::redis(&[]);
    let mut m = amber.client();
    let mut r = replica.client();
    r.cmd(&["REPLICAOF", "127.0.0.1", &amber.port.to_string()]);
    wait_for(
        || common::info_field(&mut r, "master_link_status") == "up",
        "the replica links",
    );
    let script = "local t = redis.call('time'); redis.call('set', KEYS[1], t[1] .. t[2]); redis.call('rpush', KEYS[2], math.random()); return 1";
    for _ in 0..20 {
        m.cmd(&["EVAL", script, "2", "stamp", "randoms"]);
    }
    m.cmd(&["FUNCTION", "LOAD", LIBRARY]);
    m.cmd(&["FCALL", "bump", "1", "n", "7"]);
    let expected = digest(&mut m);
    wait_for(
        || digest(&mut r) == expected,
        "the replica has the master's dataset",
    );
    assert_eq!(r.cmd(&["FCALL_RO", "peek", "1", "n"]), bulk("7"));
}

/// With `appendfsync always`, every acknowledged script is on disk: after kill -9 the AOF
/// replays to the dataset the clients saw.
#[test]
fn scripts_survive_kill_9_with_appendfsync_always() {
    let amber = ServerProcess::amber(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dir = amber.dir.clone();
    let mut c = amber.client();
    let script = "redis.call('incr', KEYS[1]); redis.call('rpush', KEYS[2], ARGV[1]); return redis.call('hincrby', KEYS[3], 'n', 1)";
    for i in 0..200 {
        c.cmd(&[
            "EVAL",
            script,
            "3",
            "counter",
            "log",
            "stats",
            &i.to_string(),
        ]);
    }
    let before = digest(&mut c);
    amber.kill9();
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(digest(&mut restarted.client()), before);
}

/// A write pause (CLIENT PAUSE WRITE, as a FAILOVER takes) holds scripts that may write, as
/// Redis's `may-replicate` commands, and lets read-only scripts through.
#[test]
fn a_write_pause_holds_scripts_that_may_write() {
    let amber = ServerProcess::amber(&[]);
    let mut admin = amber.client();
    admin.cmd(&["SET", "k", "1"]);
    admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]);
    let mut reader = amber.client();
    assert_eq!(
        reader.cmd(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
            "1",
            "k"
        ]),
        bulk("1")
    );
    assert_eq!(
        reader.cmd(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"]),
        bulk("1")
    );
    let mut writer = amber.client();
    writer.send(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "k"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(admin.cmd(&["GET", "k"]), bulk("1"), "the script waits");
    admin.cmd(&["CLIENT", "UNPAUSE"]);
    assert_eq!(writer.read(), Some(Frame::Integer(2)));
}

/// A script past `busy-reply-threshold` lets other clients in: they get `-BUSY`, `SCRIPT KILL`
/// stops a script that has not written, and the server answers again.
#[test]
fn a_busy_script_answers_busy_and_can_be_killed() {
    let amber = ServerProcess::amber(&["--busy-reply-threshold", "50"]);
    // Connections made while a script is busy wait until it ends: connect first.
    let mut other = amber.client();
    other.cmd(&["PING"]);
    let mut runner = amber.client();
    runner.send(&["EVAL", "while true do end", "0"]);
    // A request in flight as the script starts is answered only when it ends (see
    // docs/SCRIPTING.md): let the script start first.
    std::thread::sleep(std::time::Duration::from_millis(300));
    wait_for(
        || matches!(other.cmd(&["PING"]), Frame::Error(e) if e.starts_with(b"BUSY")),
        "the script to become busy",
    );
    assert_eq!(
        other.cmd(&["FUNCTION", "KILL"]),
        common::error(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        )
    );
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]),
        Frame::Simple(b"OK".to_vec())
    );
    let reply = runner.read();
    assert!(
        matches!(&reply, Some(Frame::Error(e)) if String::from_utf8_lossy(e).contains("killed by user")),
        "{reply:?}"
    );
    assert_eq!(other.cmd(&["PING"]), Frame::Simple(b"PONG".to_vec()));
    assert!(amber.log().contains("Slow script detected"));
}

/// While a function runs past `busy-reply-threshold`, `FUNCTION STATS` names it and the
/// `FCALL` that started it, as Redis does (all but the duration); `FUNCTION KILL` ends it.
#[test]
fn function_stats_show_a_busy_function_as_redis() {
    let stats_of = |server: ServerProcess| -> Frame {
        let mut other = server.client();
        other.cmd(&["CONFIG", "SET", "busy-reply-threshold", "50"]);
        let library = "#!lua name=spin\nredis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}";
        assert_eq!(
            other.cmd(&["FUNCTION", "LOAD", library]),
            common::bulk("spin")
        );
        let mut runner = server.client();
        runner.send(&["FCALL", "spin", "1", "some-key", "an-argument"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        wait_for(
            || matches!(other.cmd(&["PING"]), Frame::Error(e) if e.starts_with(b"BUSY")),
            "the function to become busy",
        );
        let stats = other.cmd(&["FUNCTION", "STATS"]);
        assert_eq!(
            other.cmd(&["FUNCTION", "KILL"]),
            Frame::Simple(b"OK".to_vec())
        );
        let reply = runner.read();
        assert!(matches!(reply, Some(Frame::Error(_))), "{reply:?}");
        // The duration differs from run to run: everything else must match.
        let Frame::Array(mut fields) = stats else {
            panic!("FUNCTION STATS is an array: {stats:?}");
        };
        if let Some(Frame::Array(running)) = fields.get_mut(1)
            && let Some(duration) = running.get_mut(5)
        {
            *duration = Frame::Integer(0);
        }
        Frame::Array(fields)
    };
    let amber = stats_of(ServerProcess::amber(&[]));
    let redis = stats_of(ServerProcess::redis(&[]));
    assert_eq!(amber, redis);
    let command: Vec<Frame> = ["FCALL", "spin", "1", "some-key", "an-argument"]
        .into_iter()
        .map(common::bulk)
        .collect();
    let Frame::Array(fields) = &amber else {
        panic!("{amber:?}");
    };
    assert!(
        matches!(fields.get(1), Some(Frame::Array(running)) if running.get(3) == Some(&Frame::Array(command))),
        "{amber:?}"
    );
}

/// A busy script that wrote cannot be killed; `SHUTDOWN NOSAVE` ends the server, and nothing
/// of the script reaches the AOF.
#[test]
fn a_busy_script_that_wrote_is_unkillable_until_shutdown_nosave() {
    let mut amber = ServerProcess::amber(&["--busy-reply-threshold", "50", "--appendonly", "yes"]);
    let dir = amber.dir.clone();
    let mut other = amber.client();
    other.cmd(&["SET", "before", "1"]);
    let mut runner = amber.client();
    runner.send(&[
        "EVAL",
        "redis.call('set', KEYS[1], 'y') while true do end",
        "1",
        "x",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    wait_for(
        || matches!(other.cmd(&["PING"]), Frame::Error(e) if e.starts_with(b"BUSY")),
        "the script to become busy",
    );
    let refused = other.cmd(&["SCRIPT", "KILL"]);
    assert!(
        matches!(&refused, Frame::Error(e) if e.starts_with(b"UNKILLABLE")),
        "{refused:?}"
    );
    other.send(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(amber.wait_exit(std::time::Duration::from_secs(10)), Some(0));
    amber.keep_dir = true;
    drop(amber);
    let restarted = ServerProcess::amber_in(&dir, &["--appendonly", "yes"]);
    let mut c = restarted.client();
    assert_eq!(c.cmd(&["GET", "before"]), bulk("1"));
    assert_eq!(
        c.cmd(&["EXISTS", "x"]),
        Frame::Integer(0),
        "the unfinished script left nothing"
    );
}

/// What the client of a Lua debugging session receives: every reply up to the close.
fn debug_session(server: &ServerProcess, mode: &str, steps: &[&[&str]]) -> Vec<Frame> {
    let mut client = server.client();
    let mut received = vec![client.cmd(&["SCRIPT", "DEBUG", mode])];
    received.push(client.cmd(&["EVAL", DEBUGGED, "1", "k", "arg"]));
    for step in steps {
        client.send(step);
        received.push(client.read().expect("the session answers"));
    }
    // The last step ended the script: the reply to EVAL, then the connection closes.
    while let Some(frame) = client.read() {
        received.push(frame);
    }
    received
}

const DEBUGGED: &str = "local a = 1\nlocal t = {1, 'x', {y=3}}\nredis.call('set', KEYS[1], ARGV[1])\nredis.debug('hi', a, t)\nlocal function f(x)\n  redis.breakpoint()\n  return x + 1\nend\nlocal r = f(a)\nreturn {r, redis.call('get', KEYS[1])}\n";

/// The steps of a session that uses every debugger command.
const DEBUG_STEPS: &[&[&str]] = &[
    &["s"],
    &["p"],
    &["s"],
    &["p", "t"],
    &["print", "ARGV"],
    &["b", "7"],
    &["b"],
    &["b", "99"],
    &["s"],
    &["c"],
    &["t"],
    &["l"],
    &["l", "2", "1"],
    &["w"],
    &["e", "1+1"],
    &["e", "error('boom')"],
    &["r", "get", "k"],
    &["r", "hset", "h", "a", "1"],
    &["r", "bogus"],
    &["m", "10"],
    &[
        "r",
        "echo",
        "a long reply that the maxlen of 60 bytes cuts before its end ...",
    ],
    &["m"],
    &["h"],
    &["hello\0world"],
    &["b", "-7"],
    &["c"],
];

#[test]
fn the_lua_debugger_talks_as_redis_in_both_modes() {
    for mode in ["SYNC", "YES"] {
        let (amber, redis) = fresh_pair();
        let expected = debug_session(&redis, mode, DEBUG_STEPS);
        let actual = debug_session(&amber, mode, DEBUG_STEPS);
        assert_eq!(actual, expected, "SCRIPT DEBUG {mode}");
        // A sync session's writes stay; a forked one's go with its child.
        let (mut a, mut r) = (amber.client(), redis.client());
        for key in ["k", "h"] {
            assert_eq!(a.cmd(&["TYPE", key]), r.cmd(&["TYPE", key]), "{mode} {key}");
        }
        let started = if mode == "SYNC" {
            "Redis synchronous debugging eval session started"
        } else {
            "Redis forked for debugging eval"
        };
        assert!(amber.log().contains(started), "{}", amber.log());
    }
}

#[test]
fn debugger_errors_match_redis() {
    let (amber, redis) = fresh_pair();
    for server in [&amber, &redis] {
        server.client().cmd(&["SCRIPT", "LOAD", "return 1"]);
    }
    let (mut a, mut r) = (amber.client(), redis.client());
    let commands: &[&[&str]] = &[
        &["SCRIPT", "DEBUG", "maybe"],
        &["SCRIPT", "DEBUG"],
        &["SCRIPT", "DEBUG", "YES"],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
        &["EVALSHA", "short", "0"],
        &["SCRIPT", "DEBUG", "NO"],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"],
    ];
    for command in commands {
        assert_eq!(a.cmd(command), r.cmd(command), "{command:?}");
    }
    // SCRIPT DEBUG after another command of the same pipeline.
    for client in [&mut a, &mut r] {
        client.send_raw(b"PING\r\nSCRIPT DEBUG YES\r\n");
    }
    for _ in 0..2 {
        assert_eq!(a.read(), r.read());
    }
    // A bad number of keys ends the session at once, with Redis's error.
    let session = |server: &ServerProcess| {
        let mut client = server.client();
        client.cmd(&["SCRIPT", "DEBUG", "SYNC"]);
        client.send(&["EVAL", "return 1", "x"]);
        let mut received = Vec::new();
        while let Some(frame) = client.read() {
            received.push(frame);
        }
        received
    };
    assert_eq!(session(&amber), session(&redis));
}

#[test]
fn a_forked_session_leaves_the_server_serving() {
    let amber = ServerProcess::amber(&[]);
    let mut debugger = amber.client();
    debugger.cmd(&["SCRIPT", "DEBUG", "YES"]);
    let stopped = debugger.cmd(&["EVAL", "redis.call('set', 'k', 1)\nreturn 2", "0"]);
    let Frame::Array(lines) = &stopped else {
        panic!("the session's first reply is its log: {stopped:?}")
    };
    assert_eq!(
        lines.first(),
        Some(&common::simple("* Stopped at 1, stop reason = step over")),
        "{stopped:?}"
    );
    // The parent serves others while the child waits on its client.
    let mut other = amber.client();
    assert_eq!(other.cmd(&["SET", "other", "1"]), common::simple("OK"));
    debugger.send(&["c"]);
    let end = debugger.read().expect("end of session");
    assert_eq!(end, Frame::Array(vec![common::simple("<endsession>")]));
    assert_eq!(debugger.read(), Some(Frame::Integer(2)));
    assert_eq!(debugger.read(), None);
    // The child's write stayed in the child; the session is reaped.
    assert_eq!(other.cmd(&["EXISTS", "k", "other"]), Frame::Integer(1));
    wait_for(
        || amber.log().contains("Lua debugging session child exiting"),
        "the child's last line",
    );
}

#[test]
fn shutdown_ends_debugging_sessions() {
    // A sync session holds the server: SIGTERM makes it stop reading its client, the script
    // runs to its end, and the shutdown proceeds.
    let mut amber = ServerProcess::amber(&[]);
    let mut debugger = amber.client();
    debugger.cmd(&["SCRIPT", "DEBUG", "SYNC"]);
    debugger.cmd(&["EVAL", "return 'done'", "0"]);
    amber.signal("TERM");
    assert_eq!(
        debugger.read(),
        Some(Frame::Array(vec![common::simple("<endsession>")]))
    );
    assert_eq!(debugger.read(), Some(bulk("done")));
    assert_eq!(amber.wait_exit(Duration::from_secs(10)), Some(0));

    // A forked session is killed with its parent.
    let amber = ServerProcess::amber(&[]);
    let mut debugger = amber.client();
    debugger.cmd(&["SCRIPT", "DEBUG", "YES"]);
    debugger.cmd(&["EVAL", "return 'done'", "0"]);
    amber.client().try_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(debugger.read(), None);
    assert!(
        amber.log().contains("Killing debugging session"),
        "{}",
        amber.log()
    );
}
