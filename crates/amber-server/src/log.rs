//! Logging in Redis's format: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`, where the
//! level mark is `.` debug, `-` verbose, `*` notice, `#` warning, and the role is `C` before
//! start-up completes, `M` for the server, `C` in a forked child.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, TryLockError};

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

/// Set in a forked child that logs (a Lua debugging session): see [`enter_forked_child`].
static IN_FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// Makes logging safe in a forked child, where another thread of the parent may have held the
/// logger's lock, or standard output's, at the fork: a held lock skips the line instead of
/// waiting forever, and standard output is written without its lock. Lines say `C`.
pub(crate) fn enter_forked_child() {
    IN_FORKED_CHILD.store(true, Ordering::Relaxed);
    with_logger(|logger| logger.role = 'C');
}

fn with_logger(change: impl FnOnce(&mut Logger)) {
    if IN_FORKED_CHILD.load(Ordering::Relaxed) {
        match LOGGER.try_lock() {
            Ok(mut guard) => change(&mut guard),
            Err(TryLockError::Poisoned(poisoned)) => change(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        return;
    }
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
        None if IN_FORKED_CHILD.load(Ordering::Relaxed) => write_unlocked_stdout(bytes),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        }
    };
}

/// Writes to standard output with plain `write(2)` calls, bypassing its lock.
fn write_unlocked_stdout(mut bytes: &[u8]) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    while !bytes.is_empty() {
        match nix::unistd::write(stdout.as_fd(), bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
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
    let tm = if IN_FORKED_CHILD.load(Ordering::Relaxed) {
        // localtime_r takes glibc's time-zone lock, which another thread may have held at
        // the fork: use the offset the parent last saw instead, as Redis does.
        civil_time(seconds + UTC_OFFSET.load(Ordering::Relaxed))
    } else {
        // SAFETY: `tm` is a plain C struct of integers (and a pointer), for which all-zero is
        // valid.
        let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r only reads `seconds` and writes into the `tm` we own.
        unsafe { nix::libc::localtime_r(&seconds, &mut tm) };
        UTC_OFFSET.store(tm.tm_gmtoff, Ordering::Relaxed);
        tm
    };
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

/// The local time's offset from UTC in seconds, as the parent last saw it.
static UTC_OFFSET: AtomicI64 = AtomicI64::new(0);

/// The calendar fields of `seconds` since the epoch (no time zone, no lock): the days to a
/// civil date by Howard Hinnant's algorithm.
fn civil_time(seconds: i64) -> nix::libc::tm {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // SAFETY: `tm` is a plain C struct of integers (and a pointer), for which all-zero is valid.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = (year - 1900) as i32;
    tm.tm_mon = (month - 1) as i32;
    tm.tm_mday = day as i32;
    tm.tm_hour = (of_day / 3600) as i32;
    tm.tm_min = (of_day % 3600 / 60) as i32;
    tm.tm_sec = (of_day % 60) as i32;
    tm
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

#[cfg(test)]
mod tests {
    use super::civil_time;

    #[test]
    fn civil_time_agrees_with_gmtime() {
        for seconds in [
            0i64,
            951_782_400,
            1_709_164_800,
            1_764_650_000,
            4_102_444_799,
            -1,
        ] {
            // SAFETY: as in `timestamp`.
            let mut expected: nix::libc::tm = unsafe { std::mem::zeroed() };
            // SAFETY: gmtime_r only reads `seconds` and writes into `expected`.
            unsafe { nix::libc::gmtime_r(&seconds, &mut expected) };
            let got = civil_time(seconds);
            let fields = |tm: &nix::libc::tm| {
                (
                    tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                )
            };
            assert_eq!(fields(&got), fields(&expected), "{seconds}");
        }
    }
}
