//! Cron schedules (croner): parsing, and the pure decisions of a tick:
//! which tick is due, live or missed ([`decide`]), and what it does while
//! the last run is still going ([`overlap`]). The runtime's scheduler
//! (`runtime::triggers`) looks at the wall clock every time round the
//! supervisor's loop and enqueues through the engine, where the tick is a
//! unique key: a restart, a second scheduler or a clock hiccup never
//! enqueues a tick twice.
//! Croner reads 5-field crontab lines, 6 or 7 fields with seconds first,
//! and macros (`@hourly`, `@daily`, …), ORs day-of-month with day-of-week
//! like Vixie cron, and handles DST gaps and overlaps.

use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::driver::JobRef;
use crate::job::JobState;
use crate::jobfile::Overlap;

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
pub fn parse_cron(expression: &str) -> std::result::Result<Cron, String> {
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

/// The name a schedule's zone is stored and shown under: its IANA name,
/// or `local`.
pub fn zone_name(name: Option<&str>) -> &str {
    name.unwrap_or("local")
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

/// A tick due since the last one handled, and whether it fell while no
/// scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The nominal time of the tick to enqueue (ms).
    pub tick: i64,
    /// It was missed (catch-up run), not seen live.
    pub missed: bool,
}

/// What a schedule does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The tick to enqueue, if any.
    pub enqueue: Option<Due>,
    /// The last tick handled, to store.
    pub last_tick: i64,
    /// How many of the ticks since the last one handled fell while no
    /// scheduler was looking (whether or not one gets a catch-up run).
    pub missed: u64,
}

/// A tick is missed when no scheduler looked within this long before it.
pub const MISS_GAP: i64 = 30_000;

/// Decides what a schedule does at `now` (ms), given what the store holds:
/// `last_tick`, `checked_at` and whether the stored expression and zone are
/// this one's (`same`). A new or changed schedule starts from now: its first
/// tick is the next one. Of several due ticks only the latest is enqueued;
/// a tick that fell while nothing was looking is missed, and `missed`
/// decides whether it gets its catch-up run.
pub fn decide(
    cron: &Cron,
    zone: &TimeZone,
    stored: Option<(i64, i64)>,
    same: bool,
    missed: crate::jobfile::Missed,
    now: i64,
) -> Decision {
    let Some((last_tick, checked_at)) = stored.filter(|_| same) else {
        return Decision {
            enqueue: None,
            last_tick: now,
            missed: 0,
        };
    };
    let mut latest = None;
    let mut count = 0u64;
    let mut cursor = Timestamp::from_millisecond(last_tick).unwrap_or(Timestamp::UNIX_EPOCH);
    // Bounded: a schedule every second, off for a day, is 86,400 steps.
    for _ in 0..200_000 {
        match next_tick(cron, zone, cursor) {
            Some(tick) if tick.as_millisecond() <= now => {
                latest = Some(tick.as_millisecond());
                if tick.as_millisecond().saturating_sub(checked_at) > MISS_GAP {
                    count += 1;
                }
                cursor = tick;
            }
            _ => break,
        }
    }
    let Some(tick) = latest else {
        return Decision {
            enqueue: None,
            last_tick,
            missed: 0,
        };
    };
    // Ticks ascend: the latest is missed exactly when any of them was.
    let was_missed = count > 0;
    let enqueue = match (was_missed, missed) {
        (true, crate::jobfile::Missed::Skip) => None,
        _ => Some(Due {
            tick,
            missed: was_missed,
        }),
    };
    Decision {
        enqueue,
        last_tick: tick,
        missed: count,
    }
}

/// What a tick does while runs of its definition are still waiting or
/// going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlapDecision {
    /// `overlap = "skip"`: the tick enqueues nothing.
    Skip,
    /// Enqueue the tick's job; with `replace`, cancel the waiting runs and
    /// stop the running ones first (the new one starts once they have
    /// stopped: they share its exclusive key).
    Enqueue {
        cancel: Vec<String>,
        stop: Vec<String>,
    },
}

/// Decides a tick under `overlap`, given the unfinished jobs of its
/// definition (`busy`: waiting or running).
pub fn overlap(policy: Overlap, busy: &[JobRef]) -> OverlapDecision {
    let ids = |running: bool| -> Vec<String> {
        busy.iter()
            .filter(|j| (j.state == JobState::Processing) == running)
            .map(|j| j.id.clone())
            .collect()
    };
    match policy {
        Overlap::Skip if !busy.is_empty() => OverlapDecision::Skip,
        Overlap::Replace => OverlapDecision::Enqueue {
            cancel: ids(false),
            stop: ids(true),
        },
        _ => OverlapDecision::Enqueue {
            cancel: Vec::new(),
            stop: Vec::new(),
        },
    }
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

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or(0)
    }

    #[test]
    fn europe_berlin_dst_days() {
        // 2026-03-29: 02:00 jumps to 03:00. A 02:30 job still runs that
        // day, once, right after the jump (as Vixie cron does).
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z"),
            "2026-03-29T01:00:00Z"
        );
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z"),
            "2026-03-30T00:30:00Z"
        );
        // An hourly job skips the hour that does not exist, and no more.
        assert_eq!(
            next("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z"),
            "2026-03-29T01:00:00Z"
        );
        // 2026-10-25: 03:00 falls back to 02:00. A 02:30 job runs once.
        let first = next("30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z");
        assert_eq!(first, "2026-10-25T00:30:00Z");
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", &first),
            "2026-10-26T01:30:00Z"
        );
        // Daily at midnight: one tick per civil day across both changes.
        assert_eq!(
            next("0 0 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z"),
            "2026-03-29T22:00:00Z"
        );
        assert_eq!(
            next("0 0 * * *", "Europe/Berlin", "2026-10-24T22:00:00Z"),
            "2026-10-25T23:00:00Z"
        );
    }

    #[test]
    fn decisions_with_an_injected_clock() {
        use crate::jobfile::Missed;
        let cron = parse_cron("0 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let utc = TimeZone::UTC;
        let at = |t: &str| ms(&format!("2026-01-01T{t}Z"));
        let table = [
            // (what, stored (last_tick, checked_at), same, missed, now, expected,
            // last tick, ticks missed)
            (
                "first sight starts from now",
                None,
                true,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:30:00"),
                0,
            ),
            (
                "changed expression starts from now",
                Some((at("09:00:00"), at("10:29:59"))),
                false,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:30:00"),
                0,
            ),
            (
                "nothing due",
                Some((at("10:00:00"), at("10:29:59"))),
                true,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:00:00"),
                0,
            ),
            (
                "a live tick",
                Some((at("10:00:00"), at("10:59:59"))),
                true,
                Missed::RunOnce,
                at("11:00:00"),
                Some((at("11:00:00"), false)),
                at("11:00:00"),
                0,
            ),
            (
                "missed ticks: run once, the latest",
                Some((at("07:00:00"), at("07:10:00"))),
                true,
                Missed::RunOnce,
                at("10:30:00"),
                Some((at("10:00:00"), true)),
                at("10:00:00"),
                3,
            ),
            (
                "missed ticks: skip",
                Some((at("07:00:00"), at("07:10:00"))),
                true,
                Missed::Skip,
                at("10:30:00"),
                None,
                at("10:00:00"),
                3,
            ),
            (
                "live even if late by a few seconds",
                Some((at("10:00:00"), at("10:59:58"))),
                true,
                Missed::Skip,
                at("11:00:04"),
                Some((at("11:00:00"), false)),
                at("11:00:00"),
                0,
            ),
        ];
        for (what, stored, same, missed, now, enqueue, last_tick, count) in table {
            let decision = decide(&cron, &utc, stored, same, missed, now);
            assert_eq!(
                decision,
                Decision {
                    enqueue: enqueue.map(|(tick, missed)| Due { tick, missed }),
                    last_tick,
                    missed: count,
                },
                "{what}"
            );
        }
    }

    #[test]
    fn overlap_decisions() {
        use crate::job::Origin;
        let job = |id: &str, state| JobRef {
            id: id.into(),
            state,
            origin: Origin::Schedule,
            payload: None,
        };
        let busy = [job("a", JobState::Processing), job("b", JobState::Pending)];
        let enqueue = |cancel: &[&str], stop: &[&str]| OverlapDecision::Enqueue {
            cancel: cancel.iter().map(|s| s.to_string()).collect(),
            stop: stop.iter().map(|s| s.to_string()).collect(),
        };
        let table = [
            (Overlap::Skip, &busy[..], OverlapDecision::Skip),
            (Overlap::Skip, &[][..], enqueue(&[], &[])),
            (Overlap::Allow, &busy[..], enqueue(&[], &[])),
            (Overlap::Replace, &busy[..], enqueue(&["b"], &["a"])),
            (Overlap::Replace, &[][..], enqueue(&[], &[])),
        ];
        for (policy, busy, expected) in table {
            assert_eq!(overlap(policy, busy), expected, "{policy:?} {busy:?}");
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
