//! `cargo xtask bench --commands-only`: the HyperLogLog, GEO and SORT commands side by side
//! with Redis, in alternating rounds with redis-benchmark's arbitrary-command mode, on the
//! same data loaded into both servers:
//!
//! * `PFADD` of a random element into one HyperLogLog;
//! * `PFCOUNT` over three dense HyperLogLogs of 100k elements each (a union every call: the
//!   multi-key form has no cache);
//! * `GEOSEARCH` of 1,000 members within 10 km, among 100,000;
//! * `SORT` of a 10,000-element list (numeric, the whole list returned).

use std::net::TcpStream;
use std::path::Path;

use anyhow::{Result, bail};

use crate::bench::{
    BenchArgs, ServerUnderTest, alternating, command_args, print_header, print_row, start,
};
use crate::bench_scripting::custom;

/// Members near the search centre, and in all.
const NEAR: usize = 1_000;
const ALL: usize = 100_000;
/// The search centre (Palermo) and radius.
const CENTER: (f64, f64) = (13.361389, 38.115556);

/// A deterministic sequence in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn send_batches(
    stream: &mut TcpStream,
    prefix: &[String],
    items: &[String],
    per: usize,
) -> Result<()> {
    for chunk in items.chunks(per) {
        let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
        args.extend(chunk.iter().map(String::as_str));
        let reply = command_args(stream, &args)?;
        if reply.starts_with('-') || reply.starts_with("ERR") {
            bail!("{}: {reply}", prefix[0]);
        }
    }
    Ok(())
}

/// Loads the same data into a server.
fn load(server: &ServerUnderTest) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))?;
    for key in ["hll:1", "hll:2", "hll:3"] {
        let elements: Vec<String> = (0..100_000).map(|i| format!("{key}:{i}")).collect();
        send_batches(&mut stream, &["PFADD".into(), key.into()], &elements, 1000)?;
    }
    let mut state = 7u64;
    let mut members = Vec::with_capacity(ALL * 3);
    for i in 0..ALL {
        // The first NEAR within ~9 km of the centre; the rest spread over Europe.
        let (lon, lat) = if i < NEAR {
            let angle = uniform(&mut state) * std::f64::consts::TAU;
            let distance = uniform(&mut state).sqrt() * 0.08;
            (
                CENTER.0 + distance * angle.cos(),
                CENTER.1 + distance * angle.sin() * 0.8,
            )
        } else {
            (
                -10.0 + 40.0 * uniform(&mut state),
                36.0 + 25.0 * uniform(&mut state),
            )
        };
        members.extend([
            format!("{lon:.6}"),
            format!("{lat:.6}"),
            format!("place:{i}"),
        ]);
    }
    send_batches(
        &mut stream,
        &["GEOADD".into(), "places".into()],
        &members,
        3000,
    )?;
    let list: Vec<String> = (0..10_000)
        .map(|_| ((uniform(&mut state) * 1e9) as u64).to_string())
        .collect();
    send_batches(
        &mut stream,
        &["RPUSH".into(), "numbers".into()],
        &list,
        1000,
    )?;
    let found = command_args(
        &mut stream,
        &[
            "EVAL",
            "return #redis.call('GEOSEARCH','places','FROMLONLAT',ARGV[1],ARGV[2],'BYRADIUS','10','km')",
            "0",
            &CENTER.0.to_string(),
            &CENTER.1.to_string(),
        ],
    )?;
    println!("{}: GEOSEARCH finds {found} members", server.name);
    Ok(())
}

/// Prints the side-by-side table.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("amber-bench-cmds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let amber = start("amber", &args.amber(), &scratch)?;
    let redis = start("redis", Path::new("/usr/bin/redis-server"), &scratch)?;
    load(&amber)?;
    load(&redis)?;
    let lon = CENTER.0.to_string();
    let lat = CENTER.1.to_string();
    let mut heavy = args.clone();
    heavy.requests = (args.requests / 20).max(1000);
    // Each SORT returns 10,000 elements (about 140 KB).
    let mut sorts = args.clone();
    sorts.requests = (args.requests / 100).max(500);
    println!(
        "HyperLogLog, GEO, SORT: redis-benchmark -c {} -r 100000, -n {} (PFADD -P 16: -n x16, GEOSEARCH: -n {}, SORT: -n {}), {} alternating rounds; medians",
        args.clients, args.requests, heavy.requests, sorts.requests, args.rounds
    );
    print_header("command");
    let cases: [(&str, Vec<&str>, &BenchArgs); 4] = [
        (
            "PFADD",
            vec!["PFADD", "hll:new", "element:__rand_int__"],
            args,
        ),
        ("PFCOUNT", vec!["PFCOUNT", "hll:1", "hll:2", "hll:3"], args),
        (
            "GEOSEARCH",
            vec![
                "GEOSEARCH",
                "places",
                "FROMLONLAT",
                &lon,
                &lat,
                "BYRADIUS",
                "10",
                "km",
            ],
            &heavy,
        ),
        ("SORT", vec!["SORT", "numbers"], &sorts),
    ];
    for pipeline in [1, 16] {
        for (name, request, settings) in &cases {
            // PFADD runs in about 0.1 s at -P 16 with -n as given, where redis-benchmark's
            // millisecond clock and the clients' connections weigh: it gets -n times the
            // pipeline, so both rows last about as long.
            let mut scaled = (*settings).clone();
            if *name == "PFADD" {
                scaled.requests *= pipeline;
            }
            let medians = alternating([&amber, &redis], args.rounds, |server| {
                custom(server.port, pipeline, &scaled, request)
            })?;
            print_row(name, pipeline, &medians);
        }
    }
    drop(amber);
    drop(redis);
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
