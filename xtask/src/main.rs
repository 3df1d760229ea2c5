//! `cargo xtask <task>`: project automation.
//!
//! * `test`: installs what the tests need (Debian's redis-server and redis-tools) when it is
//!   missing, then runs every test of the workspace.
//! * `bench`: runs `redis-benchmark` against amber-server and redis-server side by side, in
//!   alternating rounds, and prints medians and the amber/redis ratios.

mod bench;
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
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Test { args } => {
            tools::ensure_redis()?;
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
        Task::Bench(args) => {
            tools::ensure_redis()?;
            bench::run(&args)
        }
    }
}
