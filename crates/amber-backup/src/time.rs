//! UTC calendar arithmetic for backup ids and daily retention (no time zone database needed).

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// `(year, month, day)` of a day number counted from 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYYMMDD-HHMMSS-mmm` in UTC: sortable, unique per millisecond, safe as a file name.
pub fn backup_id(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    let in_day = unix_ms.rem_euclid(DAY_MS);
    let (hours, minutes, seconds, millis) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}{month:02}{day:02}-{hours:02}{minutes:02}{seconds:02}-{millis:03}")
}

/// `YYYY-MM-DD HH:MM:SS` UTC, for listings.
pub fn display(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    let in_day = unix_ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_calendar_times() {
        assert_eq!(backup_id(0), "19700101-000000-000");
        // 2026-11-27 07:43:39.123 UTC
        assert_eq!(backup_id(1_795_765_419_123), "20261127-074339-123");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(display(951_782_400_000), "2000-02-29 00:00:00");
    }
}
