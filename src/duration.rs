//! Human durations ("300ms", "30s", "10m", "1h30m", "7d") as used on the
//! command line and in the jobfile, parsed with jiff's friendly format.

use std::time::Duration;

use jiff::{Span, SpanRelativeTo};

use crate::error::{Error, Result};

/// The longest duration queuectl takes anywhere (a delay, a timeout, a
/// retention): far enough for any schedule, near enough that adding it to
/// a timestamp never overflows.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

const HINT: &str = "write a duration like `500ms`, `30s`, `10m`, `2h` or `7d`";

/// Parses a non-negative duration such as `30s`, `10m`, `1h30m` or `7d`:
/// a number and a unit (a bare number is refused: seconds or minutes?).
/// `what` names the flag or key in the error.
pub fn parse(text: &str, what: &str) -> Result<Duration> {
    let trimmed = text.trim();
    let bad = || Error::input_with_hint(format!("invalid duration `{text}` for {what}"), HINT);
    if trimmed.starts_with('-') {
        return Err(Error::input_with_hint(
            format!("{what} cannot be negative (got `{text}`)"),
            HINT,
        ));
    }
    let bare_number = trimmed.chars().all(|c| c.is_ascii_digit() || c == '.')
        && trimmed.chars().any(|c| c.is_ascii_digit());
    if bare_number {
        return Err(Error::input_with_hint(
            format!("invalid duration `{text}` for {what}: write a unit, like `{trimmed}s`"),
            HINT,
        ));
    }
    let span: Span = trimmed.parse().map_err(|_| bad())?;
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| too_long(what, &format!("`{text}`")))?;
    let duration = Duration::try_from(signed).map_err(|_| bad())?;
    bounded(duration, what, &format!("`{text}`"))
}

/// A duration given as a number of seconds (JSON jobs).
pub fn from_secs(secs: f64, what: &str) -> Result<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::input_with_hint(
            format!("{what} must be a number of seconds, 0 or more (got {secs})"),
            HINT,
        ));
    }
    let shown = format!("`{secs}` seconds");
    let duration = Duration::try_from_secs_f64(secs).map_err(|_| too_long(what, &shown))?;
    bounded(duration, what, &shown)
}

fn bounded(duration: Duration, what: &str, shown: &str) -> Result<Duration> {
    if duration > MAX {
        return Err(too_long(what, shown));
    }
    Ok(duration)
}

fn too_long(what: &str, shown: &str) -> Error {
    Error::input_with_hint(
        format!("{what} is too long: {shown} (at most 100 years)"),
        HINT,
    )
}

/// Milliseconds of a duration, saturating (for storage as INTEGER).
pub fn as_millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The canonical way to write a duration, as a user would: `7d`, `2h`,
/// `1h30m`, `10m`, `30s`, `300ms`. Parses back to the same value.
pub fn human(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// A short rendering for tables and event lines: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_friendly_durations() {
        let table = [
            ("300ms", 300),
            ("30s", 30_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("7d", 604_800_000),
            ("1.5s", 1_500),
            ("0s", 0),
            (" 2s ", 2_000),
        ];
        for (text, ms) in table {
            let got = parse(text, "--timeout").map(as_millis_i64).ok();
            assert_eq!(got, Some(ms), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        let table = [
            ("-5s", "--timeout cannot be negative (got `-5s`)"),
            ("ten", "invalid duration `ten` for --timeout"),
            ("", "invalid duration `` for --timeout"),
            ("5 parsecs", "invalid duration `5 parsecs` for --timeout"),
            ("NaN", "invalid duration `NaN` for --timeout"),
            // A bare number was seconds until the README said a unit is
            // required (issue 10): now it is an error that says so.
            (
                "1.5",
                "invalid duration `1.5` for --timeout: write a unit, like `1.5s`",
            ),
            (
                "200000d",
                "--timeout is too long: `200000d` (at most 100 years)",
            ),
        ];
        for (text, message) in table {
            let got = parse(text, "--timeout").err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(message), "{text}");
        }
    }

    #[test]
    fn seconds_as_numbers() {
        assert_eq!(from_secs(2.5, "x").ok(), Some(Duration::from_millis(2_500)));
        let err = |secs| {
            from_secs(secs, "field `delay`")
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err(1e16).as_deref(),
            Some("field `delay` is too long: `10000000000000000` seconds (at most 100 years)")
        );
        assert_eq!(
            err(-1.0).as_deref(),
            Some("field `delay` must be a number of seconds, 0 or more (got -1)")
        );
    }

    #[test]
    fn human_rendering_round_trips() {
        for (ms, text) in [
            (604_800_000, "7d"),
            (5_400_000, "1h30m"),
            (600_000, "10m"),
            (300, "300ms"),
            (1_500, "1s500ms"),
            (0, "0s"),
        ] {
            assert_eq!(human(Duration::from_millis(ms)), text);
            assert_eq!(parse(text, "x").map(as_millis_i64).ok(), Some(ms as i64));
        }
    }

    #[test]
    fn short_rendering() {
        assert_eq!(short(Duration::from_millis(850)), "850ms");
        assert_eq!(short(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(short(Duration::from_secs(245)), "4m05s");
        assert_eq!(short(Duration::from_secs(7800)), "2h10m");
    }
}
