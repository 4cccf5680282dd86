//! Wall-clock time as milliseconds since the Unix epoch, the unit every
//! timestamp in the store uses, and its rendering for people.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the queue's clock is ahead of this host's (ms): 0 for a SQLite
/// queue, the server's offset for a PostgreSQL one (so that hosts whose
/// clocks disagree agree on leases, `run_at` and ticks).
static OFFSET: AtomicI64 = AtomicI64::new(0);

/// Now, in milliseconds since the epoch, on the queue's clock.
pub fn now_ms() -> i64 {
    local_ms().saturating_add(OFFSET.load(Ordering::Relaxed))
}

/// Follows a database server's clock: it is `offset` ms ahead of this host's.
pub fn set_offset(offset: i64) {
    OFFSET.store(offset, Ordering::Relaxed);
}

/// Now on this host's own clock.
pub fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A timestamp in local time, `2026-11-22 18:05:39`.
pub fn local(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// A timestamp as RFC 3339 in UTC with milliseconds, for JSON:
/// `2026-11-23T09:30:00.250Z`, always the same length, so the strings
/// sort as the times do.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
#[test]
fn json_times_are_rfc_3339_with_milliseconds() {
    assert_eq!(rfc3339(1_700_000_000_050), "2023-11-14T22:13:20.050Z");
    assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
}

/// How long ago (or, negative, how far ahead) `ms` is, shortly: `5s ago`, `in 2m`.
pub fn relative(ms: i64, now: i64) -> String {
    let diff = now - ms;
    let d = std::time::Duration::from_millis(diff.unsigned_abs());
    let text = crate::duration::short(d);
    if diff >= 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// Parses `--run-at`: RFC 3339 (`2026-11-22T18:00:00Z`), or a civil time in
/// the local zone (`2026-11-22 18:00`, `2026-11-22T18:00:00`).
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil = text
        .parse::<jiff::civil::DateTime>()
        .map_err(|e| format!("invalid time `{text}`: {e}"))?;
    civil
        .to_zoned(jiff::tz::TimeZone::system())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("invalid time `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_civil_times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_time("2026-11-22 18:00").is_ok());
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(1_000, 6_000), "5.0s ago");
        assert_eq!(relative(130_000, 10_000), "in 2m00s");
    }
}
