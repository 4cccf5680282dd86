//! Cron schedules (croner): parsing and the pure "next tick" computation.
//! Croner reads 5-field crontab lines, 6 or 7 fields with seconds first,
//! and macros (`@hourly`, `@daily`, …), ORs day-of-month with day-of-week
//! like Vixie cron, and handles DST gaps and overlaps.

use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Field names for 5, 6 (seconds first) and 7 (and year) fields.
const FIELDS: [&str; 7] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
    "year",
];

/// Parses a schedule, or says what is wrong with it, naming the field.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let expression = expression.trim();
    let error = match Cron::from_str(expression) {
        Ok(cron) => return Ok(cron),
        Err(e) => e,
    };
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if expression.starts_with('@') {
        return Err(format!(
            "unknown macro `{expression}`: use @yearly, @monthly, @weekly, @daily or @hourly"
        ));
    }
    let names: &[&str] = match fields.len() {
        5 => &FIELDS[1..6],
        6 => &FIELDS[..6],
        7 => &FIELDS,
        n => {
            return Err(format!(
                "expected 5 fields (6 or 7 with seconds first), found {n}"
            ));
        }
    };
    // Find the field at fault: every other field set to `*`.
    for (i, field) in fields.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if let Err(e) = Cron::from_str(&probe.join(" ")) {
            return Err(format!(
                "the {} field `{field}`: {}",
                names[i],
                detail(&e.to_string())
            ));
        }
    }
    Err(detail(&error.to_string()))
}

/// croner's message, without its category prefix and final period.
fn detail(message: &str) -> String {
    let text = message
        .rsplit(": ")
        .next()
        .unwrap_or(message)
        .trim_end_matches('.');
    lowercase_first(text)
}

/// The time zone of a schedule: an IANA name, or local time.
pub fn time_zone(name: Option<&str>) -> TimeZone {
    name.and_then(|n| TimeZone::get(n).ok())
        .unwrap_or_else(TimeZone::system)
}

/// The first tick strictly after `after`, in `zone`.
pub fn next_tick(cron: &Cron, zone: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let start = after.to_zoned(zone.clone());
    cron.find_next_occurrence(&start, false)
        .ok()
        .map(|z| z.timestamp())
}

/// A schedule in words: "At 02:00 every day".
pub fn describe(cron: &Cron) -> String {
    cron.describe()
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expression: &str, zone: &str, after: &str) -> String {
        let cron = parse_cron(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        let zone = TimeZone::get(zone).unwrap_or(TimeZone::UTC);
        let after: Timestamp = after.parse().unwrap_or(Timestamp::UNIX_EPOCH);
        next_tick(&cron, &zone, after)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn fields_and_macros() {
        let table = [
            (
                "*/5 * * * *",
                "UTC",
                "2026-01-01T00:01:00Z",
                "2026-01-01T00:05:00Z",
            ),
            (
                "0 2 * * *",
                "UTC",
                "2026-01-01T03:00:00Z",
                "2026-01-02T02:00:00Z",
            ),
            (
                "*/10 * * * * *",
                "UTC",
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:10Z",
            ),
            (
                "@hourly",
                "UTC",
                "2026-01-01T00:30:00Z",
                "2026-01-01T01:00:00Z",
            ),
            (
                "@daily",
                "UTC",
                "2026-01-01T00:30:00Z",
                "2026-01-02T00:00:00Z",
            ),
            // Sunday is 0 (and 7), as in crontab.
            (
                "0 0 * * 0",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-04T00:00:00Z",
            ),
        ];
        for (expression, zone, after, expected) in table {
            assert_eq!(next(expression, zone, after), expected, "{expression}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let table = [
            ("61 * * * *", "the minute field `61`: number out of bounds"),
            ("0 25 * * *", "the hour field `25`: number out of bounds"),
            ("0 0 * 13 *", "the month field `13`: number out of bounds"),
            ("0 0 0 1 1 * 99999", "the year field `99999`"),
            (
                "* * *",
                "expected 5 fields (6 or 7 with seconds first), found 3",
            ),
            ("", "expected 5 fields (6 or 7 with seconds first), found 0"),
            (
                "@sometimes",
                "unknown macro `@sometimes`: use @yearly, @monthly, @weekly, @daily or @hourly",
            ),
        ];
        for (bad, message) in table {
            match parse_cron(bad) {
                Ok(_) => panic!("{bad} parsed"),
                Err(e) => assert!(e.starts_with(message), "{bad}: {e}"),
            }
        }
    }
}
