//! Logging in Redis's format: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`, where the
//! level mark is `.` debug, `-` verbose, `*` notice, `#` warning, and the role is `C` before
//! start-up completes, `M` for the server, `C` in a forked child.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

/// How important a log line is; lines below the configured `loglevel` are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `loglevel debug`
    Debug,
    /// `loglevel verbose`
    Verbose,
    /// `loglevel notice`
    Notice,
    /// `loglevel warning`
    Warning,
}

impl Level {
    /// Parses a `loglevel` value.
    pub fn from_name(name: &str) -> Level {
        match name {
            "debug" => Level::Debug,
            "verbose" => Level::Verbose,
            "warning" => Level::Warning,
            _ => Level::Notice,
        }
    }

    fn mark(self) -> char {
        match self {
            Level::Debug => '.',
            Level::Verbose => '-',
            Level::Notice => '*',
            Level::Warning => '#',
        }
    }
}

struct Logger {
    file: Option<File>,
    level: Level,
    role: char,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    file: None,
    level: Level::Notice,
    role: 'C',
});

/// Sends log lines to `path` (appending), or to standard output when `path` is empty.
pub fn set_output(path: &str) -> std::io::Result<()> {
    let file = if path.is_empty() {
        None
    } else {
        Some(OpenOptions::new().create(true).append(true).open(path)?)
    };
    with_logger(|logger| logger.file = file);
    Ok(())
}

/// Sets the lowest level that is written.
pub fn set_level(level: Level) {
    with_logger(|logger| logger.level = level);
}

/// Sets the role letter (`M` once the server runs).
pub fn set_role(role: char) {
    with_logger(|logger| logger.role = role);
}

fn with_logger(change: impl FnOnce(&mut Logger)) {
    let mut guard = LOGGER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    change(&mut guard);
}

/// Writes one log line if `level` is at or above the configured level.
pub fn log(level: Level, message: &str) {
    with_logger(|logger| {
        if level < logger.level {
            return;
        }
        let line = format!(
            "{}:{} {} {} {}\n",
            std::process::id(),
            logger.role,
            timestamp(),
            level.mark(),
            message
        );
        write_raw(logger, line.as_bytes());
    });
}

/// Writes text as it is (the start-up logo).
pub fn raw(text: &str) {
    with_logger(|logger| write_raw(logger, text.as_bytes()));
}

fn write_raw(logger: &mut Logger, bytes: &[u8]) {
    let _ = match logger.file.as_mut() {
        Some(file) => file.write_all(bytes),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        }
    };
}

/// The local time as Redis prints it: `27 Nov 2026 05:08:19.123`.
fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() as nix::libc::time_t;
    // SAFETY: `tm` is a plain C struct of integers (and a pointer), for which all-zero is valid.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r only reads `seconds` and writes into the `tm` we own.
    unsafe { nix::libc::localtime_r(&seconds, &mut tm) };
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

/// Logs at notice level.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Notice, &format!($($arg)*)) };
}

/// Logs at warning level.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($arg)*)) };
}

/// Logs at verbose level.
#[macro_export]
macro_rules! verbose {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Verbose, &format!($($arg)*)) };
}

/// An I/O error as C's `strerror` words it (`No such file or directory`), without Rust's
/// ` (os error 2)` suffix, for log lines that match Redis's.
pub fn os_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if error.raw_os_error().is_some() => text[..cut].to_string(),
        _ => text,
    }
}
