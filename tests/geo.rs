//! GEO against Redis 7.0: random GEOADD / GEOSEARCH / GEOSEARCHSTORE / GEORADIUS* / GEODIST /
//! GEOPOS / GEOHASH sequences, in RESP2 and RESP3, give the same replies (scores, positions
//! and distances to the last digit, the same members in the same order, the same errors) and
//! leave the same dataset.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

mod common;

use common::ServerProcess;
use proptest::prelude::*;

fn coordinate(range: f64) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (-range..range).prop_map(|v| format!("{v:.6}")),
        1 => Just(format!("{range}")),
        1 => Just("nan-ish".to_string()),
    ]
}

fn member() -> impl Strategy<Value = String> {
    (0u32..60).prop_map(|i| format!("m{i}"))
}

fn unit() -> impl Strategy<Value = String> {
    proptest::sample::select(&["m", "km", "ft", "mi", "KM", "yd"][..]).prop_map(str::to_string)
}

fn distance() -> impl Strategy<Value = String> {
    prop_oneof![
        (0.0f64..3000.0).prop_map(|v| format!("{v:.3}")),
        Just("0".to_string()),
        Just("-1".to_string()),
    ]
}

fn options() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            Just(vec!["WITHDIST".to_string()]),
            Just(vec!["WITHHASH".to_string()]),
            Just(vec!["WITHCOORD".to_string()]),
            Just(vec!["ASC".to_string()]),
            Just(vec!["DESC".to_string()]),
            (0i64..8).prop_map(|n| vec!["COUNT".to_string(), n.to_string()]),
            Just(vec!["ANY".to_string()]),
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

/// Around Sicily, with a few far-away points, so searches of a few hundred km find some.
fn geo_command() -> impl Strategy<Value = Vec<String>> {
    let lon = || (12.0f64..16.0).prop_map(|v| format!("{v:.6}"));
    let lat = || (36.0f64..39.0).prop_map(|v| format!("{v:.6}"));
    let key = || {
        proptest::sample::select(&["g", "g", "g", "other", "missing"][..]).prop_map(str::to_string)
    };
    const FLAGS: &[&[&str]] = &[&[], &["NX"], &["XX"], &["CH"], &["NX", "XX"]];
    let add = (
        proptest::sample::select(FLAGS),
        proptest::collection::vec(
            (
                prop_oneof![4 => lon(), 1 => coordinate(200.0)],
                prop_oneof![4 => lat(), 1 => coordinate(90.0)],
                member(),
            ),
            1..6,
        ),
    )
        .prop_map(|(flags, points)| {
            let mut command = vec!["GEOADD".to_string(), "g".to_string()];
            command.extend(flags.iter().map(|f| f.to_string()));
            for (lon, lat, member) in points {
                command.extend([lon, lat, member]);
            }
            command
        });
    let from = prop_oneof![
        member().prop_map(|m| vec!["FROMMEMBER".to_string(), m]),
        (lon(), lat()).prop_map(|(lon, lat)| vec!["FROMLONLAT".to_string(), lon, lat]),
    ];
    let by = prop_oneof![
        (distance(), unit()).prop_map(|(d, u)| vec!["BYRADIUS".to_string(), d, u]),
        (distance(), distance(), unit()).prop_map(|(w, h, u)| vec!["BYBOX".to_string(), w, h, u]),
    ];
    let search =
        (key(), from, by, options(), any::<bool>()).prop_map(|(key, from, by, options, store)| {
            let mut command = if store {
                vec!["GEOSEARCHSTORE".to_string(), "dest".to_string(), key]
            } else {
                vec!["GEOSEARCH".to_string(), key]
            };
            command.extend(from);
            command.extend(by);
            if store {
                command.extend(options.into_iter().filter(|o| !o.starts_with("WITH")));
                command.push("STOREDIST".to_string());
            } else {
                command.extend(options);
            }
            command
        });
    let radius = (key(), lon(), lat(), distance(), unit(), options(), 0u8..4).prop_map(
        |(key, lon, lat, d, u, options, store)| {
            let mut command = vec!["GEORADIUS".to_string(), key, lon, lat, d, u];
            command.extend(options);
            match store {
                1 => command.extend(["STORE".to_string(), "dest".to_string()]),
                2 => command.extend(["STOREDIST".to_string(), "dest".to_string()]),
                _ => {}
            }
            command
        },
    );
    let by_member =
        (key(), member(), distance(), unit(), options()).prop_map(|(key, m, d, u, options)| {
            let mut command = vec!["GEORADIUSBYMEMBER_RO".to_string(), key, m, d, u];
            command.extend(options);
            command
        });
    let read = (
        key(),
        member(),
        member(),
        prop_oneof![Just(None), unit().prop_map(Some)],
    )
        .prop_map(|(key, a, b, unit)| {
            let mut command = vec!["GEODIST".to_string(), key, a, b];
            command.extend(unit);
            command
        });
    let lookup = (
        proptest::sample::select(&["GEOPOS", "GEOHASH"][..]),
        key(),
        member(),
        member(),
    )
        .prop_map(|(name, key, a, b)| vec![name.to_string(), key, a, b]);
    prop_oneof![
        4 => add,
        3 => search,
        2 => radius,
        1 => by_member,
        2 => read,
        2 => lookup,
        1 => Just(vec!["ZRANGE".to_string(), "dest".to_string(), "0".to_string(), "-1".to_string(), "WITHSCORES".to_string()]),
        1 => Just(vec!["SET".to_string(), "other".to_string(), "x".to_string()]),
    ]
}

fn run(commands: &[Vec<String>], resp3: bool) {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let (mut expected, mut actual) = (redis.client(), amber.client());
    if resp3 {
        expected.cmd(&["HELLO", "3"]);
        actual.cmd(&["HELLO", "3"]);
    }
    for command in commands {
        let want = expected.cmd(command);
        let got = actual.cmd(command);
        assert_eq!(got, want, "reply to {command:?}");
    }
    assert_eq!(
        actual.cmd(&["DEBUG", "DIGEST"]),
        expected.cmd(&["DEBUG", "DIGEST"])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_geo_sequences_match_redis(
        commands in proptest::collection::vec(geo_command(), 1..40),
        resp3 in any::<bool>(),
    ) {
        run(&commands, resp3);
    }
}

/// Searches over a thousand points spread over the globe, poles and the date line included:
/// every radius and box from a metre to half the planet finds the same members at the same
/// distances.
#[test]
fn worldwide_searches_match_redis() {
    let redis = ServerProcess::redis(&[]);
    let amber = ServerProcess::amber(&[]);
    let (mut expected, mut actual) = (redis.client(), amber.client());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let unit = move |n: u64| (n % 1_000_000) as f64 / 1_000_000.0;
    let mut add = vec!["GEOADD".to_string(), "world".to_string()];
    for i in 0..1000 {
        let lon = -180.0 + 360.0 * unit(next());
        let lat = -85.0 + 170.0 * unit(next());
        add.extend([format!("{lon:.5}"), format!("{lat:.5}"), format!("p{i}")]);
    }
    assert_eq!(actual.cmd(&add), expected.cmd(&add));
    for i in 0..200 {
        let lon = format!("{:.4}", -180.0 + 360.0 * unit(next()));
        let lat = format!("{:.4}", -85.0 + 170.0 * unit(next()));
        let size = format!("{:.1}", 10f64.powf(unit(next()) * 7.3));
        let command: Vec<String> = if i % 2 == 0 {
            [
                "GEOSEARCH",
                "world",
                "FROMLONLAT",
                &lon,
                &lat,
                "BYRADIUS",
                &size,
                "m",
                "WITHDIST",
                "WITHCOORD",
                "ASC",
            ]
            .map(str::to_string)
            .to_vec()
        } else {
            [
                "GEOSEARCH",
                "world",
                "FROMLONLAT",
                &lon,
                &lat,
                "BYBOX",
                &size,
                &size,
                "m",
                "WITHDIST",
                "WITHHASH",
            ]
            .map(str::to_string)
            .to_vec()
        };
        assert_eq!(actual.cmd(&command), expected.cmd(&command), "{command:?}");
    }
}
