//! ACL against Redis 7.0: the same ACL sessions give the same replies (rules, descriptions,
//! errors, NOPERM, ACL LOG fields); a permission matrix over every category and every command
//! both servers know agrees with Redis's `ACL DRYRUN`; ACL files move between the two.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use std::collections::BTreeSet;

use common::{Client, Frame, ServerProcess};

fn strings(frame: Frame) -> Vec<String> {
    match frame {
        Frame::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(bytes) | Frame::Simple(bytes) => String::from_utf8(bytes).unwrap(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// The same session on both servers, reply by reply.
#[test]
fn acl_sessions_match_redis() {
    let session: &[&[&str]] = &[
        &["ACL", "WHOAMI"],
        &["ACL", "SETUSER", "alice"],
        &["ACL", "GETUSER", "alice"],
        &[
            "ACL", "SETUSER", "alice", "on", ">p1", ">p2", "+@read", "-keys", "~cache:*",
        ],
        &["ACL", "GETUSER", "alice"],
        &["ACL", "SETUSER", "alice", "<p2"],
        &["ACL", "SETUSER", "alice", "<nosuch"],
        &["ACL", "SETUSER", "alice", "+nosuch"],
        &["ACL", "SETUSER", "alice", "-@nosuch"],
        &["ACL", "SETUSER", "alice", "#abc"],
        &["ACL", "SETUSER", "alice", "+config|get|x"],
        &["ACL", "SETUSER", "alice", "bogus"],
        &["ACL", "SETUSER", "a b"],
        &["ACL", "SETUSER", "zed", "(+get", "~x*"],
        &["ACL", "SETUSER", "zed", "on", "(+get", "~x*)"],
        &["ACL", "GETUSER", "zed"],
        // One single-command rule per user: Redis lists several in its hash table's order.
        &[
            "ACL",
            "SETUSER",
            "bob",
            "on",
            "nopass",
            "~*",
            "&news.*",
            "+@all",
            "-config|set",
        ],
        &["ACL", "GETUSER", "bob"],
        &["ACL", "SETUSER", "bob", "~more"],
        &[
            "ACL", "SETUSER", "carol", "on", "nopass", "%R~r:*", "%W~w:*", "+@all",
        ],
        &["ACL", "GETUSER", "carol"],
        &[
            "ACL",
            "SETUSER",
            "dave",
            "on",
            "nopass",
            "+get",
            "~a*",
            "(+set ~b*)",
        ],
        &["ACL", "GETUSER", "dave"],
        &[
            "ACL",
            "SETUSER",
            "erin",
            "on",
            "nopass",
            "-@all",
            "+select|0",
        ],
        &["ACL", "GETUSER", "erin"],
        &["ACL", "DRYRUN", "alice", "get", "cache:1"],
        &["ACL", "DRYRUN", "alice", "get", "other"],
        &["ACL", "DRYRUN", "alice", "set", "cache:1", "v"],
        &["ACL", "DRYRUN", "alice", "keys", "*"],
        &["ACL", "DRYRUN", "bob", "config", "set", "maxmemory", "0"],
        &["ACL", "DRYRUN", "bob", "config", "get", "maxmemory"],
        &["ACL", "DRYRUN", "bob", "publish", "news.x", "m"],
        &["ACL", "DRYRUN", "bob", "publish", "sports", "m"],
        &["ACL", "DRYRUN", "carol", "get", "r:1"],
        &["ACL", "DRYRUN", "carol", "get", "w:1"],
        &["ACL", "DRYRUN", "carol", "set", "w:1", "v"],
        &["ACL", "DRYRUN", "carol", "set", "r:1", "v"],
        &["ACL", "DRYRUN", "dave", "set", "b1", "v"],
        &["ACL", "DRYRUN", "dave", "set", "a1", "v"],
        &["ACL", "DRYRUN", "erin", "select", "0"],
        &["ACL", "DRYRUN", "erin", "select", "1"],
        &["ACL", "DRYRUN", "nobody", "get", "x"],
        &["ACL", "DRYRUN", "alice", "nosuchcommand"],
        &["ACL", "USERS"],
        &["ACL", "CAT"],
        &["ACL", "CAT", "nosuch"],
        &["ACL", "CAT", "a", "b"],
        &["ACL", "GENPASS", "0"],
        &["ACL", "GENPASS", "5000"],
        &["ACL", "LOG", "-1"],
        &["ACL", "DELUSER", "default"],
        &["ACL", "DELUSER", "erin", "nobody"],
        &["ACL", "SAVE"],
        &["ACL", "LOAD"],
        &["AUTH", "alice", "p1"],
        &["ACL", "WHOAMI"],
        &["GET", "cache:1"],
        &["GET", "other"],
        &["SET", "cache:1", "v"],
        &["CONFIG", "GET", "maxmemory"],
        &["AUTH", "alice", "wrong"],
        &["AUTH", "nobody", "x"],
        &["AUTH", "default", "anything"],
        &["ACL", "WHOAMI"],
        &["MULTI"],
        &["ACL", "WHOAMI"],
        &["EXEC"],
    ];
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let (mut a, mut r) = (amber.client(), redis.client());
    for command in session {
        assert_eq!(a.cmd(command), r.cmd(command), "{command:?}");
    }
    // ACL LOG entries carry the same fields and values (ages and client details aside).
    for client in [&mut a, &mut r] {
        client.cmd(&["ACL", "LOG", "RESET"]);
        client.cmd(&["AUTH", "alice", "p1"]);
        client.cmd(&["GET", "other"]);
        client.cmd(&["GET", "other"]);
        client.cmd(&["AUTH", "default", "x"]);
    }
    let log = |client: &mut Client| -> Vec<(String, String)> {
        let Frame::Array(entries) = client.cmd(&["ACL", "LOG"]) else {
            panic!("ACL LOG is an array")
        };
        let Frame::Array(fields) = entries[0].clone() else {
            panic!("an entry is an array")
        };
        fields
            .chunks(2)
            .filter_map(|pair| match (&pair[0], &pair[1]) {
                (Frame::Bulk(name), value) => {
                    let name = String::from_utf8_lossy(name).into_owned();
                    (!matches!(name.as_str(), "age-seconds" | "client-info"))
                        .then(|| (name, format!("{value:?}")))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(log(&mut a), log(&mut r));
}

/// Every category against every command both servers know: a user allowed only that
/// category, and one allowed everything but it, asked with `ACL DRYRUN`; Amber agrees with
/// Redis on each.
#[test]
fn permission_matrix_matches_redis() {
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let (mut a, mut r) = (amber.client(), redis.client());
    let categories = strings(r.cmd(&["ACL", "CAT"]));
    assert_eq!(strings(a.cmd(&["ACL", "CAT"])), categories);
    let redis_names: BTreeSet<String> = categories
        .iter()
        .flat_map(|category| strings(r.cmd(&["ACL", "CAT", category])))
        .collect();
    let commands: BTreeSet<String> = redis_names
        .iter()
        .filter(|name| !name.contains('|'))
        .cloned()
        .collect();
    let mut checked = 0;
    for category in &categories {
        // Amber's own commands (BACKUP) are in categories too; Redis's must match exactly.
        let ours: BTreeSet<String> = strings(a.cmd(&["ACL", "CAT", category]))
            .into_iter()
            .filter(|name| redis_names.contains(name))
            .collect();
        let theirs: BTreeSet<String> = strings(r.cmd(&["ACL", "CAT", category]))
            .into_iter()
            .collect();
        assert_eq!(ours, theirs, "@{category}");
        let only = format!("+@{category}");
        let all_but = format!("-@{category}");
        for (user, rules) in [
            ("only", ["+@all", "-@all", only.as_str()]),
            ("allbut", ["-@all", "+@all", all_but.as_str()]),
        ] {
            for client in [&mut a, &mut r] {
                client.cmd(&["ACL", "DELUSER", user]);
                let mut setuser = vec!["ACL", "SETUSER", user, "on", "nopass", "~*", "&*"];
                setuser.extend(rules);
                assert_eq!(client.cmd(&setuser), common::simple("OK"));
            }
            for command in &commands {
                // Enough arguments for most arities; both servers see the same call.
                let call = ["ACL", "DRYRUN", user, command, "k1", "k2", "k3", "k4"];
                let theirs = r.cmd(&call);
                let ours = a.cmd(&call);
                let unknown = |frame: &Frame| matches!(frame, Frame::Error(e) if String::from_utf8_lossy(e).contains("not found"));
                let arity = |frame: &Frame| matches!(frame, Frame::Error(e) if String::from_utf8_lossy(e).contains("wrong number"));
                if unknown(&ours) || arity(&ours) || arity(&theirs) {
                    continue; // a command Amber lacks, or one these arguments do not fit
                }
                assert_eq!(ours, theirs, "{user} {rules:?}: {command}");
                checked += 1;
            }
        }
    }
    // About 115 commands take these four arguments and exist in both: 21 categories, 2 users.
    assert!(checked > 2 * 21 * 100, "only {checked} checks ran");
}

/// An ACL file Redis saved loads in Amber with the same users, and the reverse.
#[test]
fn acl_files_move_between_redis_and_amber() {
    let users: &[&[&str]] = &[
        &[
            "ACL", "SETUSER", "alice", "on", ">secret", "~app:*", "&*", "+@read", "+@write",
            "-flushdb",
        ],
        &[
            "ACL",
            "SETUSER",
            "bob",
            "off",
            "%R~logs:*",
            "+get",
            "(+set ~tmp:*)",
        ],
    ];
    for (writer, reader) in [(true, false), (false, true)] {
        let dir = common::temp_dir("aclfile");
        let path = dir.join("users.acl");
        std::fs::write(&path, "").unwrap();
        let path_text = path.display().to_string();
        let start = |redis: bool| {
            if redis {
                ServerProcess::redis(&["--aclfile", &path_text])
            } else {
                ServerProcess::amber(&["--aclfile", &path_text])
            }
        };
        let first = start(writer);
        let mut client = first.client();
        for command in users {
            assert_eq!(client.cmd(command), common::simple("OK"));
        }
        assert_eq!(client.cmd(&["ACL", "SAVE"]), common::simple("OK"));
        let expected = strings(client.cmd(&["ACL", "LIST"]));
        drop(client);
        drop(first);
        let second = start(reader);
        let mut client = second.client();
        assert_eq!(strings(client.cmd(&["ACL", "LIST"])), expected);
        assert_eq!(
            client.cmd(&["AUTH", "alice", "secret"]),
            common::simple("OK")
        );
        assert!(matches!(client.cmd(&["FLUSHDB"]), Frame::Error(_)));
    }
}

/// Redis 7.0's per-key permissions: `%R~` lets a command read a key, `%W~` change it, each
/// command's key specifications saying which it does to which key (COPY reads its source and
/// writes its destination, `SET` without `GET` only writes, `EXISTS` does neither). The key
/// specifications `COMMAND INFO` shows, `COMMAND GETKEYSANDFLAGS`, and `ACL DRYRUN` over a
/// grid of calls and keys all agree with Redis's.
#[test]
fn key_permissions_follow_key_specifications_as_redis() {
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    let (mut a, mut r) = (amber.client(), redis.client());
    // The specifications of every command both servers know.
    let Frame::Array(commands) = r.cmd(&["COMMAND"]) else {
        panic!("COMMAND is an array")
    };
    let mut compared = 0;
    for entry in commands {
        let Frame::Array(fields) = entry else {
            panic!("an entry is an array")
        };
        let name = match &fields[0] {
            Frame::Bulk(name) => String::from_utf8_lossy(name).into_owned(),
            other => panic!("a name: {other:?}"),
        };
        let Frame::Array(ours) = a.cmd(&["COMMAND", "INFO", &name]) else {
            panic!("COMMAND INFO is an array")
        };
        if let Frame::Array(ours) = &ours[0] {
            assert_eq!(ours[8], fields[8], "key specifications of {name}");
            compared += 1;
        }
    }
    assert!(compared > 200, "only {compared} commands compared");
    let calls: &[&[&str]] = &[
        &["GET", "K"],
        &["SET", "K", "v"],
        &["SET", "K", "v", "GET"],
        &["SET", "K", "v", "EX", "10", "get"],
        &["GETDEL", "K"],
        &["APPEND", "K", "v"],
        &["EXISTS", "K", "L"],
        &["TYPE", "K"],
        &["DEL", "K", "L"],
        &["EXPIRE", "K", "10"],
        &["OBJECT", "ENCODING", "K"],
        &["COPY", "K", "L"],
        &["RENAME", "K", "L"],
        &["SMOVE", "K", "L", "m"],
        &["LMOVE", "K", "L", "LEFT", "RIGHT"],
        &["ZUNIONSTORE", "K", "2", "L", "M"],
        &["ZUNIONSTORE", "K", "9", "L", "M"],
        &["SINTERSTORE", "K", "L", "M"],
        &["SORT", "K", "BY", "nosort", "STORE", "L"],
        &["SORT", "K", "LIMIT", "0", "1", "STORE", "L", "STORE", "M"],
        &["SORT_RO", "K"],
        &["BITOP", "AND", "K", "L", "M"],
        &["BITFIELD", "K", "GET", "u8", "0"],
        &["BITFIELD", "K", "INCRBY", "u8", "0", "1"],
        &["PFMERGE", "K", "L"],
        &["XREAD", "STREAMS", "K", "L", "0", "0"],
        &["XREAD", "STREAMS", "K", "L", "0"],
        &["XADD", "K", "*", "f", "v"],
        &["XGROUP", "CREATE", "K", "g", "$"],
        &["GEORADIUS", "K", "0", "0", "1", "km", "STORE", "L"],
        &["GEORADIUS", "K", "0", "0", "1", "km", "STORE"],
        &["EVAL", "return 1", "2", "K", "L"],
        &["EVAL_RO", "return 1", "1", "K"],
        &["EVAL", "return 1", "x", "K"],
        &["MSET", "K", "1", "L", "2"],
        &["MGET", "K", "L"],
        &["LCS", "K", "L"],
        &["BLPOP", "K", "L", "0"],
        &["LMPOP", "2", "K", "L", "LEFT"],
        &["MIGRATE", "h", "1", "", "0", "5", "KEYS", "K", "L"],
        &["MIGRATE", "h", "1", "K", "0", "5"],
        &["TOUCH", "K"],
        &["DUMP", "K"],
        &["RESTORE", "K", "0", "x"],
    ];
    let users: &[&[&str]] = &[
        &["reader", "%R~*"],
        &["writer", "%W~*"],
        &["split", "%R~r*", "%W~w*"],
        // The same pattern twice is one pattern with both permissions; two different
        // patterns covering one key are not.
        &["merged", "%R~m*", "%W~m*"],
        &["apart", "%R~p*", "%W~p?"],
        &["plain", "~r*"],
    ];
    for client in [&mut a, &mut r] {
        for user in users {
            let mut setuser = vec!["ACL", "SETUSER", user[0], "on", "nopass", "+@all"];
            setuser.extend(&user[1..]);
            assert_eq!(client.cmd(&setuser), common::simple("OK"));
        }
    }
    let names = ["r1", "w1", "m1", "p1", "zz"];
    let mut checked = 0;
    for call in calls {
        let keys = call.iter().filter(|w| ["K", "L", "M"].contains(w)).count();
        let getkeys: Vec<&str> = ["COMMAND", "GETKEYSANDFLAGS"]
            .into_iter()
            .chain(call.iter().copied())
            .collect();
        assert_eq!(a.cmd(&getkeys), r.cmd(&getkeys), "{getkeys:?}");
        // Every assignment of names to the call's key slots.
        for choice in 0..names.len().pow(keys as u32) {
            let mut slot = 0;
            let args: Vec<&str> = call
                .iter()
                .map(|word| {
                    if ["K", "L", "M"].contains(word) {
                        let name = names[choice / names.len().pow(slot) % names.len()];
                        slot += 1;
                        name
                    } else {
                        word
                    }
                })
                .collect();
            for user in users {
                let mut dryrun = vec!["ACL", "DRYRUN", user[0]];
                dryrun.extend(&args);
                assert_eq!(a.cmd(&dryrun), r.cmd(&dryrun), "{dryrun:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 3000, "only {checked} checks ran");
}

/// A change to a user reaches the connections already running as it, at their next command
/// (Amber remembers that a user may run anything until the ACL changes), as in Redis.
#[test]
fn rule_changes_reach_connections_already_authenticated() {
    let steps = |server: &ServerProcess| -> Vec<Frame> {
        let (mut admin, mut user, mut default) =
            (server.client(), server.client(), server.client());
        let mut steps = Vec::new();
        admin.cmd(&["ACL", "SETUSER", "ann", "on", "nopass", "+@all", "~*", "&*"]);
        steps.push(user.cmd(&["AUTH", "ann", "x"]));
        steps.push(user.cmd(&["SET", "k", "v"]));
        steps.push(default.cmd(&["GET", "k"]));
        admin.cmd(&["ACL", "SETUSER", "ann", "-set"]);
        steps.push(user.cmd(&["SET", "k", "v"]));
        steps.push(user.cmd(&["GET", "k"]));
        admin.cmd(&["ACL", "SETUSER", "ann", "+set", "resetkeys", "%R~k"]);
        steps.push(user.cmd(&["SET", "k", "v"]));
        steps.push(user.cmd(&["GET", "k"]));
        admin.cmd(&["ACL", "SETUSER", "default", "-get"]);
        steps.push(default.cmd(&["GET", "k"]));
        admin.cmd(&["ACL", "SETUSER", "default", "+get"]);
        steps.push(default.cmd(&["GET", "k"]));
        steps.push(user.cmd(&["AUTH", "default", "x"]));
        steps.push(user.cmd(&["SET", "k", "w"]));
        // Scripts run as their caller: a restricted caller after an unrestricted one.
        admin.cmd(&["ACL", "SETUSER", "ann", "+@all", "-set", "allkeys"]);
        steps.push(default.cmd(&["EVAL", "return redis.call('set', 'k', 'x')", "0"]));
        steps.push(user.cmd(&["AUTH", "ann", "x"]));
        steps.push(user.cmd(&["EVAL", "return redis.call('set', 'k', 'y')", "0"]));
        steps.push(default.cmd(&["GET", "k"]));
        admin.cmd(&["ACL", "DELUSER", "ann"]);
        steps.push(user.try_cmd(&["GET", "k"]).unwrap_or(Frame::Null));
        steps
    };
    let amber = ServerProcess::amber(&[]);
    let redis = ServerProcess::redis(&[]);
    assert_eq!(steps(&amber), steps(&redis));
}
