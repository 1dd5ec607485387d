//! Durations as written in sessions.toml: a whole number and a unit, repeatable
//! ("500ms", "25s", "5m", "1h", "1h30m"), and the same form for messages.

use std::time::Duration;

/// Units accepted after a number, longest first so "ms" wins over "m".
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses "500ms", "25s", "5m", "1h", "2d" or a sum such as "1m30s".
///
/// The error is a sentence fragment saying what is wrong, meant to follow the name of
/// the field ("backoff_cap is not a valid duration: ...").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("it is empty; write a number and a unit such as \"30s\"".to_string());
    }
    if text.starts_with('-') {
        return Err(format!(
            "\"{text}\" is negative; durations must be positive"
        ));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!(
                "\"{text}\" must be whole numbers each followed by a unit, such as \"30s\" or \"1m30s\""
            ));
        }
        let (digits, after) = rest.split_at(digits_end);
        if after.starts_with('.') || after.starts_with(',') {
            return Err(format!(
                "\"{text}\" has a fraction; use whole numbers of a smaller unit, such as \"1500ms\""
            ));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if after.starts_with(char::is_whitespace) {
            return Err(format!(
                "\"{text}\" has a space; write the number and its unit together, such as \"30s\""
            ));
        }
        if unit.is_empty() {
            return Err(format!(
                "\"{text}\" has no unit; add one of ms, s, m, h or d, such as \"{digits}s\""
            ));
        }
        let Some(&(_, unit_ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "\"{unit}\" in \"{text}\" is not a unit; use ms, s, m, h or d"
            ));
        };
        let amount = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|ms| total_ms.checked_add(ms));
        match amount {
            Some(sum) => total_ms = sum,
            None => return Err(format!("\"{text}\" is too long")),
        }
        rest = next;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way sessions.toml does: "500ms", "25s", "5m", "1h30m", "0s".
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS.iter().rev() {
        let unit_ms = u128::from(*unit_ms);
        if ms >= unit_ms {
            out.push_str(&format!("{}{name}", ms / unit_ms));
            ms %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit_the_spec_uses() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn sums_compound_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Ok(Duration::from_millis(3_661_001))
        );
    }

    #[test]
    fn zero_parses_so_the_caller_can_name_the_field() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_is_not_a_duration_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("30", "no unit"),
            ("-5s", "negative"),
            ("1.5s", "fraction"),
            ("5x", "not a unit"),
            ("5 s", "space"),
            ("s", "whole numbers"),
            ("5sec", "not a unit"),
            ("99999999999999999999s", "too long"),
            ("999999999999999d", "too long"),
        ];
        for (text, reason) in cases {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains(reason), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn formats_back_to_the_written_form() {
        for text in ["500ms", "25s", "5m", "1h", "1h30m", "2d", "1m0s1ms"] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }
}
