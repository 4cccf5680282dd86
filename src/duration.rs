//! Human durations ("300ms", "30s", "10m", "1h30m", "7d") as used on the
//! command line and in the jobfile.
//!
//! One grammar, written once as [`UNITS`] and checked two ways: [`parse`]
//! scans it here, and [`pattern`] is the same grammar as the regular
//! expression the jobfile's JSON Schema gives editors. A duration is one
//! or more parts that add up, each a number (a decimal fraction too) and
//! a unit, with spaces or tabs around and between them:
//!
//! ```text
//! duration = ws* part (ws* part)* ws*
//! part     = [0-9]+ ("." [0-9]+)? ws* unit
//! unit     = one of the names in UNITS (lower case)
//! ws       = " " | "\t"
//! ```
//!
//! What the grammar cannot say, [`parse`] adds: the whole is at most
//! [`MAX`] (100 years).

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest duration queuectl takes anywhere (a delay, a timeout, a
/// retention): far enough for any schedule, near enough that adding it to
/// a timestamp never overflows.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

const HINT: &str = "write a duration like `500ms`, `30s`, `10m`, `2h` or `7d`";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The units, largest first, each with its names and its length in
/// nanoseconds. Lengths are fixed: a day is 24 hours, a week 7 days (no
/// months or years, whose lengths vary).
pub const UNITS: [(&[&str], u128); 6] = [
    (
        &["weeks", "week", "wks", "wk", "w"],
        7 * 24 * 3600 * NANOS_PER_SEC,
    ),
    (&["days", "day", "d"], 24 * 3600 * NANOS_PER_SEC),
    (&["hours", "hour", "hrs", "hr", "h"], 3600 * NANOS_PER_SEC),
    (
        &["minutes", "minute", "mins", "min", "m"],
        60 * NANOS_PER_SEC,
    ),
    (&["seconds", "second", "secs", "sec", "s"], NANOS_PER_SEC),
    (
        &[
            "milliseconds",
            "millisecond",
            "millis",
            "milli",
            "msecs",
            "msec",
            "ms",
        ],
        NANOS_PER_SEC / 1000,
    ),
];

/// The grammar of [`parse`] as a regular expression (ECMA-262 and Rust
/// `regex` alike: no `\s` or `\d`, whose meanings differ between them).
/// It says nothing of [`MAX`].
pub fn pattern() -> String {
    let mut names = Vec::new();
    for (unit_names, _) in UNITS {
        for name in unit_names {
            // `weeks` and `week` become `weeks?`.
            if unit_names.contains(&format!("{name}s").as_str()) {
                names.push(format!("{name}s?"));
            } else if !name
                .strip_suffix('s')
                .is_some_and(|stem| unit_names.contains(&stem))
            {
                names.push((*name).to_string());
            }
        }
    }
    format!(
        "^[ \\t]*(?:[0-9]+(?:\\.[0-9]+)?[ \\t]*(?:{})[ \\t]*)+$",
        names.join("|")
    )
}

/// Parses a non-negative duration such as `30s`, `10m`, `1h30m`, `1.5h` or
/// `7d` (see the module's grammar). A bare number is refused (seconds or
/// minutes?). `what` names the flag or key in the error.
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
    let nanos = scan(text).ok_or_else(bad)?;
    if nanos > MAX.as_nanos() {
        return Err(too_long(what, &format!("`{text}`")));
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| bad())?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| bad())?;
    Ok(Duration::new(secs, subsec))
}

/// The nanoseconds `text` adds up to (saturating: too long is then told
/// by the caller), or `None` when it does not follow the grammar.
fn scan(text: &str) -> Option<u128> {
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let bytes = text.as_bytes();
    let take = |mut i: usize, f: &dyn Fn(u8) -> bool| {
        while i < bytes.len() && f(bytes[i]) {
            i += 1;
        }
        i
    };
    let mut i = take(0, &is_space);
    let mut total: u128 = 0;
    loop {
        let start = i;
        i = take(i, &|b| b.is_ascii_digit());
        let whole = text.get(start..i).filter(|s| !s.is_empty())?;
        let mut fraction = "";
        if bytes.get(i) == Some(&b'.') {
            let start = i + 1;
            i = take(start, &|b| b.is_ascii_digit());
            fraction = text.get(start..i).filter(|s| !s.is_empty())?;
        }
        i = take(i, &is_space);
        let start = i;
        i = take(i, &|b| b.is_ascii_lowercase());
        let name = text.get(start..i)?;
        let (_, unit) = UNITS.iter().find(|(names, _)| names.contains(&name))?;
        total = total.saturating_add(part(whole, fraction, *unit));
        i = take(i, &is_space);
        if i == bytes.len() {
            return Some(total);
        }
    }
}

/// `whole.fraction` units in nanoseconds, saturating; digits of the
/// fraction past the 18th are below a nanosecond and dropped.
fn part(whole: &str, fraction: &str, unit: u128) -> u128 {
    let digits = |s: &str| {
        s.bytes().try_fold(0u128, |n, b| {
            n.checked_mul(10)?.checked_add(u128::from(b - b'0'))
        })
    };
    let Some(whole) = digits(whole) else {
        return u128::MAX;
    };
    let fraction = fraction.get(..fraction.len().min(18)).unwrap_or("");
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction = digits(fraction).unwrap_or(0) * unit / scale;
    whole.saturating_mul(unit).saturating_add(fraction)
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
            // Parts add up, with or without spaces; long names too.
            ("1h 30m", 5_400_000),
            ("1 hour 30 minutes", 5_400_000),
            ("2 days", 172_800_000),
            ("1w1d", 691_200_000),
            ("1.5h", 5_400_000),
            ("\t10 secs\t", 10_000),
            ("1s500ms", 1_500),
            ("0.0005s", 0),
            ("36500d", 3_153_600_000_000),
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
            (
                "36500d 1ms",
                "--timeout is too long: `36500d 1ms` (at most 100 years)",
            ),
            (
                "99999999999999999999999999999999999999999999w",
                "--timeout is too long: `99999999999999999999999999999999999999999999w` (at most 100 years)",
            ),
            // Outside the grammar: ISO 8601, clock times, months and
            // years, capitals, a sign, a comma, a number without its unit.
            ("PT10M", "invalid duration `PT10M` for --timeout"),
            ("10:30:00", "invalid duration `10:30:00` for --timeout"),
            ("1mo", "invalid duration `1mo` for --timeout"),
            ("1y", "invalid duration `1y` for --timeout"),
            ("5S", "invalid duration `5S` for --timeout"),
            ("+5s", "invalid duration `+5s` for --timeout"),
            ("1,5s", "invalid duration `1,5s` for --timeout"),
            ("1h30", "invalid duration `1h30` for --timeout"),
            (".5s", "invalid duration `.5s` for --timeout"),
            ("1.s", "invalid duration `1.s` for --timeout"),
            ("1 m s", "invalid duration `1 m s` for --timeout"),
            ("5µs", "invalid duration `5µs` for --timeout"),
            ("1s ago", "invalid duration `1s ago` for --timeout"),
        ];
        for (text, message) in table {
            let got = parse(text, "--timeout").err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(message), "{text}");
        }
    }

    #[test]
    fn the_pattern_names_every_unit_once() {
        assert_eq!(
            pattern(),
            "^[ \\t]*(?:[0-9]+(?:\\.[0-9]+)?[ \\t]*(?:weeks?|wks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s|milliseconds?|millis?|msecs?|ms)[ \\t]*)+$"
        );
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
