//! `amber-server [config-file] [--directive value ...]`, taking the same arguments as `redis-server`.

use std::process::ExitCode;

use amber_server::config::Config;
use amber_server::log::{self, Level};
use amber_server::{REDIS_VERSION, notice, warning};

#[global_allocator]
static ALLOCATOR: amber_server::alloc::CountingAllocator = amber_server::alloc::CountingAllocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version") => {
            println!(
                "Amber server v={} (Redis {REDIS_VERSION} compatible) bits=64",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            println!("Usage: ./amber-server [/path/to/redis.conf] [options] [-]");
            println!("       ./amber-server - (read config from stdin)");
            println!("       ./amber-server -v or --version");
            println!("       ./amber-server -h or --help");
            println!("Examples:\n       ./amber-server (run the server with default conf)");
            println!(
                "       ./amber-server /etc/redis/6379.conf\n       ./amber-server --port 7777"
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(message) = prepare_process(&config) {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }
    announce(&config, !args.is_empty() && config.file.is_some());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            warning!("Could not start the event loop: {error}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let code = match local.block_on(&runtime, amber_server::run(config)) {
        Ok(()) => 0,
        Err(error) if error.is::<amber_server::AlreadyLogged>() => 1,
        Err(error) => {
            warning!("{error:#}");
            1
        }
    };
    // Exit without freeing the dataset key by key (as Redis does): the OS reclaims it at once,
    // where dropping millions of keys would add seconds to every shutdown.
    std::process::exit(code)
}

/// Daemonizes, opens the log, changes to `dir` and writes the pid file, as `redis-server` does.
fn prepare_process(config: &Config) -> Result<(), String> {
    let daemonize = config.get_bool("daemonize");
    if daemonize {
        nix::unistd::daemon(true, false).map_err(|e| format!("Can't daemonize: {e}"))?;
    }
    log::set_output(config.get("logfile")).map_err(|e| format!("Can't open the log file: {e}"))?;
    log::set_level(Level::from_name(config.get("loglevel")));
    let dir = config.get("dir");
    std::env::set_current_dir(dir).map_err(|e| format!("Can't chdir to '{dir}': {e}"))?;
    let mut pidfile = config.get("pidfile").to_string();
    if pidfile.is_empty() && daemonize {
        pidfile = "/var/run/redis.pid".into();
    }
    if !pidfile.is_empty() {
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("Failed to write PID file: {e}"))?;
    }
    Ok(())
}

fn announce(config: &Config, with_file: bool) {
    warning!("oO0OoO0OoO0Oo Amber is starting oO0OoO0OoO0Oo");
    warning!(
        "Amber version={}, redis-compatible={REDIS_VERSION}, bits=64, pid={}, just started",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    if with_file {
        warning!("Configuration loaded");
    } else {
        warning!(
            "Warning: no config file specified, using the default config. In order to specify a config file use amber-server /path/to/redis.conf"
        );
    }
    log::set_role('M');
    for name in &config.without_effect {
        warning!("Directive '{name}' is accepted for compatibility but has no effect in Amber yet");
    }
    let port = config.get("port");
    if config.get_bool("always-show-logo") {
        log::raw(&format!(
            "\n    Amber {} (Redis {REDIS_VERSION} compatible) 64 bit\n    Running in standalone mode\n    Port: {port}\n    PID: {}\n\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ));
    } else {
        notice!("Running mode=standalone, port={port}.");
    }
}
