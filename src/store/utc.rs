//! UTC wall-clock text for store file names and messages (`20260415T101500Z`,
//! `2026-04-15 10:15:00 UTC`), without a date-time dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `20260415T101500Z`: sortable, safe in a file name.
pub(crate) fn compact(at: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = fields(unix_seconds(at));
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `2026-04-15 10:15:00 UTC`: for sentences shown to an operator.
pub(crate) fn readable(at: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = fields(unix_seconds(at));
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// Parses what [`compact`] writes; `None` for anything else.
pub(crate) fn parse_compact(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// (year, month, day, hour, minute, second) of a Unix time.
fn fields(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (eras of 400 years,
/// years counted from March so that the leap day ends the year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March .. 11 = February
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let march_month = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let day_of_year = (153 * march_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_dates_format_as_expected() {
        assert_eq!(compact(at(0)), "19700101T000000Z");
        // 2000-02-29 12:34:56 UTC, a leap day in a year divisible by 400.
        assert_eq!(compact(at(951_827_696)), "20000229T123456Z");
        assert_eq!(readable(at(1_776_248_100)), "2026-04-15 10:15:00 UTC");
        assert_eq!(compact(at(4_107_542_399)), "21000228T235959Z");
        assert_eq!(compact(at(4_107_542_400)), "21000301T000000Z");
    }

    #[test]
    fn compact_round_trips_over_centuries() {
        let mut secs = 0u64;
        while secs < 8_000_000_000 {
            let text = compact(at(secs));
            assert_eq!(parse_compact(&text), Some(at(secs)), "{text}");
            secs += 86_399 * 37 + 13;
        }
    }

    #[test]
    fn parse_rejects_other_text() {
        for bad in [
            "",
            "20260415T101500",
            "2026041XT101500Z",
            "20261315T101500Z",
            "x".repeat(16).as_str(),
        ] {
            assert_eq!(parse_compact(bad), None, "{bad}");
        }
    }
}
