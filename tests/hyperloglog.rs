//! HyperLogLog against Redis 7.0: random PFADD / PFCOUNT / PFMERGE sequences give the same
//! replies and leave byte-identical values (read back with GET), across sparse-to-dense
//! promotion; values written by either server count the same in the other after DUMP /
//! RESTORE and after a restart from its RDB file; damaged values get Redis's errors.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use common::{Client, Frame, ServerProcess};
use proptest::prelude::*;

const KEYS: &[&str] = &["h1", "h2", "h3"];

/// One HyperLogLog command on the test keys.
fn hll_command() -> impl Strategy<Value = Vec<String>> {
    let key = || proptest::sample::select(KEYS).prop_map(str::to_string);
    let elements = (0u32..20_000, 0usize..400).prop_map(|(start, n)| {
        (start..start + n as u32)
            .map(|i| format!("e{i}"))
            .collect::<Vec<_>>()
    });
    prop_oneof![
        4 => (key(), elements).prop_map(|(key, elements)| {
            let mut command = vec!["PFADD".to_string(), key];
            command.extend(elements);
            command
        }),
        2 => key().prop_map(|key| vec!["PFCOUNT".into(), key]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["PFCOUNT".into(), a, b]),
        1 => (key(), key(), key()).prop_map(|(d, a, b)| vec!["PFMERGE".into(), d, a, b]),
        1 => key().prop_map(|key| vec!["GET".into(), key]),
        1 => key().prop_map(|key| vec!["PFDEBUG".into(), "ENCODING".into(), key]),
        1 => key().prop_map(|key| vec!["PFDEBUG".into(), "DECODE".into(), key]),
        1 => key().prop_map(|key| vec!["PFDEBUG".into(), "TODENSE".into(), key]),
        1 => (key(), 0usize..40, any::<u8>()).prop_map(|(key, at, byte)| {
            // SETRANGE takes a byte string; only some bytes damage the value.
            vec!["SETRANGE".into(), key, at.to_string(), String::from(char::from(byte % 128))]
        }),
    ]
}

fn same_replies(commands: &[Vec<String>], config: &[&str]) {
    let redis = ServerProcess::redis(config);
    let amber = ServerProcess::amber(config);
    let (mut expected, mut actual) = (redis.client(), amber.client());
    for command in commands {
        let want = expected.cmd(command);
        let got = actual.cmd(command);
        assert_eq!(got, want, "reply to {command:?}");
        if command[0] == "SETRANGE"
            && let Frame::Bulk(value) = expected.cmd(&["GET", &command[1]])
            && ends_in_a_cut_xzero(&value)
        {
            // Redis then reads the byte past the value's end (the sds terminator, or a byte a
            // later PFADD left there): behaviour of its memory layout, not of the format.
            break;
        }
    }
    for key in KEYS {
        assert_eq!(
            actual.cmd(&["GET", key]),
            expected.cmd(&["GET", key]),
            "{key}"
        );
    }
}

/// Whether a sparse HyperLogLog's opcodes end in the first byte of a two-byte XZERO.
fn ends_in_a_cut_xzero(value: &[u8]) -> bool {
    if value.len() < 16 || !value.starts_with(b"HYLL") || value[4] != 1 {
        return false;
    }
    let mut at = 16;
    while at < value.len() {
        at += if value[at] & 0xc0 == 0x40 { 2 } else { 1 };
    }
    at > value.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_match_redis_byte_for_byte(
        commands in proptest::collection::vec(hll_command(), 1..40),
        sparse_max in prop_oneof![Just(3000usize), 40usize..600],
    ) {
        same_replies(&commands, &["--hll-sparse-max-bytes", &sparse_max.to_string()]);
    }
}

/// A sequence that once failed the property above: the second SETRANGE leaves a cut XZERO at
/// the end, and Redis's next PFADD reads the byte past the end. It must end the comparison,
/// not fail it.
#[test]
fn a_value_damaged_into_a_cut_xzero_ends_the_comparison() {
    let elements = |range: std::ops::Range<u32>| range.map(|i| format!("e{i}")).collect::<Vec<_>>();
    let mut commands = vec![
        vec!["PFMERGE".to_string(), "h1".into(), "h1".into(), "h1".into()],
        vec!["SETRANGE".into(), "h1".into(), "18".into(), "A".into()],
    ];
    commands.push([vec!["PFADD".to_string(), "h1".into()], elements(1215..1484)].concat());
    commands.push(vec![
        "SETRANGE".into(),
        "h1".into(),
        "27".into(),
        "\0".into(),
    ]);
    commands.push([vec!["PFADD".to_string(), "h1".into()], elements(14..362)].concat());
    same_replies(&commands, &[]);
}

fn add_many(client: &mut Client, key: &str, range: std::ops::Range<u32>) {
    for chunk in range.collect::<Vec<_>>().chunks(500) {
        let mut command = vec!["PFADD".to_string(), key.to_string()];
        command.extend(chunk.iter().map(|i| format!("m{i}")));
        client.cmd(&command);
    }
}

fn dump(client: &mut Client, key: &str) -> Vec<u8> {
    match client.cmd(&["DUMP", key]) {
        Frame::Bulk(payload) => payload,
        other => panic!("DUMP {key}: {other:?}"),
    }
}

/// Sparse and dense values made by each server count the same in the other, and merge the
/// same, after DUMP / RESTORE.
#[test]
fn values_move_between_redis_and_amber() {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let (mut r, mut a) = (redis.client(), amber.client());
    for (key, n) in [("small", 50u32), ("big", 40_000)] {
        add_many(&mut r, &format!("redis-{key}"), 0..n);
        add_many(&mut a, &format!("amber-{key}"), n / 2..n + n / 2);
    }
    for key in ["redis-small", "redis-big", "amber-small", "amber-big"] {
        let (from, to) = if key.starts_with("redis") {
            (&mut r, &mut a)
        } else {
            (&mut a, &mut r)
        };
        let payload = dump(from, key);
        assert_eq!(
            to.cmd(&[b"RESTORE".as_slice(), key.as_bytes(), b"0", &payload]),
            common::simple("OK")
        );
    }
    for server in [&mut r, &mut a] {
        server.cmd(&[
            "PFMERGE",
            "union",
            "redis-small",
            "redis-big",
            "amber-small",
            "amber-big",
        ]);
    }
    for key in [
        "redis-small",
        "redis-big",
        "amber-small",
        "amber-big",
        "union",
    ] {
        assert_eq!(a.cmd(&["PFCOUNT", key]), r.cmd(&["PFCOUNT", key]), "{key}");
        assert_eq!(a.cmd(&["GET", key]), r.cmd(&["GET", key]), "{key}");
    }
    assert_eq!(
        a.cmd(&["PFCOUNT", "redis-big", "amber-small"]),
        r.cmd(&["PFCOUNT", "redis-big", "amber-small"])
    );
}

/// A Redis RDB file full of HyperLogLogs loads in Amber, and counts the same.
#[test]
fn redis_rdb_with_hyperloglogs_loads_in_amber() {
    let redis_dir = common::temp_dir("hll-rdb-redis");
    let redis = ServerProcess::redis_in(&redis_dir, &[]);
    let mut r = redis.client();
    for (i, n) in [10u32, 1000, 20_000].into_iter().enumerate() {
        add_many(&mut r, &format!("hll{i}"), 0..n);
    }
    assert_eq!(r.cmd(&["SAVE"]), common::simple("OK"));
    let counts: Vec<Frame> = (0..3)
        .map(|i| r.cmd(&["PFCOUNT", &format!("hll{i}")]))
        .collect();
    let dir = common::temp_dir("hll-rdb-amber");
    std::fs::copy(redis_dir.join("dump.rdb"), dir.join("dump.rdb")).unwrap();
    drop(redis);
    let amber = ServerProcess::amber_in(&dir, &[]);
    let mut a = amber.client();
    for (i, count) in counts.iter().enumerate() {
        assert_eq!(&a.cmd(&["PFCOUNT", &format!("hll{i}")]), count);
    }
}
