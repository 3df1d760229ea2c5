//! `cargo xtask <task>`: project automation.
//!
//! * `test`: installs what the tests need (Debian's redis-server and redis-tools) when it is
//!   missing, then runs every test of the workspace.
//! * `bench`: runs `redis-benchmark` against amber-server and redis-server side by side, in
//!   alternating rounds, and prints medians and the amber/redis ratios; then SAVE, fork and
//!   restart times, memory per key of each type, SET under each `appendfsync` policy, AOF
//!   load time, and PUBLISH with 1, 100 and 1000 subscribers.
//! * `redis-tests`: Redis's own Tcl test suite against the release binary, with a per-unit
//!   baseline that CI holds the server to (`--check`).
//! * `command-table`: regenerates Redis's key specifications table from redis-server.
//! * `e2e`: the crash/restart scenarios (`tests/persistence.rs`, `aof.rs`, `aof_rewrite.rs`,
//!   `backup.rs`) and the replication topologies (`replication.rs`, `sentinel.rs`) against the
//!   release binary.

mod bench;
mod bench_aof;
mod bench_backup;
mod bench_commands;
mod bench_connections;
mod bench_cow;
mod bench_eviction;
mod bench_growth;
mod bench_pubsub;
mod bench_replication;
mod bench_scripting;
mod bench_snapshot;
mod bench_streams;
mod command_table;
mod placement;
mod redis_tests;
mod tools;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Amber project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install test dependencies if missing, then run the whole test suite.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Lint gates: rustfmt and clippy with warnings as errors.
    Lint,
    /// Benchmark amber-server against redis-server side by side.
    Bench(bench::BenchArgs),
    /// Redis 7.0.15's own test suite (../shared/redis-tests) against the release amber-server:
    /// per-unit counts, the most frequent error replies, and the baseline ratchet (--check).
    RedisTests(redis_tests::RedisTestsArgs),
    /// Rewrite the table of Redis's key specifications from redis-server's COMMAND reply.
    CommandTable,
    /// Crash and restart scenarios against the release binary (kill -9 during SAVE/BGSAVE,
    /// BGSAVE under writes, corrupt and truncated files, failing disks, Redis loading Amber's
    /// snapshots and the reverse), and the replication topologies with Redis and
    /// redis-sentinel.
    E2e {
        /// Extra arguments passed to the test runner (e.g. a scenario name).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Test { args } => {
            tools::ensure_redis()?;
            // Every binary first: the server's tests also run `amber-backup` and the checkers.
            tools::cargo(&["build", "--workspace", "--bins"])?;
            let mut test_args = vec!["test", "--workspace"];
            test_args.extend(args.iter().map(String::as_str));
            tools::cargo(&test_args)
        }
        Task::Lint => {
            tools::cargo(&["fmt", "--all", "--check"])?;
            tools::cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
        }
        Task::E2e { args } => {
            tools::ensure_redis()?;
            let mut test_args = vec![
                "test",
                "--release",
                "-p",
                "amber-server",
                "--test",
                "persistence",
                "--test",
                "aof",
                "--test",
                "aof_rewrite",
                "--test",
                "backup",
                "--test",
                "replication",
                "--test",
                "sentinel",
                "--",
            ];
            test_args.extend(args.iter().map(String::as_str));
            tools::cargo(&test_args)
        }
        Task::RedisTests(args) => {
            tools::ensure_redis()?;
            redis_tests::run(&args)
        }
        Task::CommandTable => {
            tools::ensure_redis()?;
            command_table::run()
        }
        Task::Bench(args) => {
            tools::ensure_redis()?;
            bench::run(&args)
        }
    }
}
