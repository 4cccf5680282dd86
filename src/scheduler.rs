//! Cron schedules (croner): parsing, the pure decisions of a tick
//! ([`decide`]: which tick is due, live or missed), and the [`Scheduler`]
//! that `run` drives: it looks at the wall clock every time round the
//! supervisor's loop (never a long sleep on the monotonic clock, so a
//! suspend or an NTP jump is seen at once), and enqueues through the store,
//! where the tick is a unique key: a restart, a second scheduler or a clock
//! hiccup never enqueues a tick twice.
//! Croner reads 5-field crontab lines, 6 or 7 fields with seconds first,
//! and macros (`@hourly`, `@daily`, …), ORs day-of-month with day-of-week
//! like Vixie cron, and handles DST gaps and overlaps.

use std::path::PathBuf;
use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::Result;
use crate::events::Event;
use crate::job::Origin;
use crate::jobfile::{JobDef, Jobfile, Trigger, jobfile_commit};
use crate::store::{ScheduleRow, Store, TickOutcome};

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
        };
    };
    let mut latest = None;
    let mut cursor = Timestamp::from_millisecond(last_tick).unwrap_or(Timestamp::UNIX_EPOCH);
    // Bounded: a schedule every second, off for a day, is 86,400 steps.
    for _ in 0..200_000 {
        match next_tick(cron, zone, cursor) {
            Some(tick) if tick.as_millisecond() <= now => {
                latest = Some(tick.as_millisecond());
                cursor = tick;
            }
            _ => break,
        }
    }
    let Some(tick) = latest else {
        return Decision {
            enqueue: None,
            last_tick,
        };
    };
    let was_missed = tick - checked_at > MISS_GAP;
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
    }
}

/// Look at every schedule at least this often, whatever the next tick.
const CHECK_EVERY: i64 = 5_000;

/// The schedules of a jobfile, run by the `run` that owns the queue.
#[derive(Debug)]
pub struct Scheduler {
    entries: Vec<Entry>,
    dir: PathBuf,
    commit: Option<String>,
    next_check: i64,
}

#[derive(Debug)]
struct Entry {
    def: JobDef,
    cron: Cron,
    zone: TimeZone,
    zone_name: String,
}

impl Scheduler {
    /// The scheduled definitions of `jobfile`; `None` when it has none.
    pub fn new(jobfile: &Jobfile) -> Option<Scheduler> {
        let entries: Vec<Entry> = jobfile
            .jobs
            .values()
            .filter_map(|def| match &def.trigger {
                Trigger::Schedule(schedule) => Some(Entry {
                    cron: parse_cron(&schedule.expression).ok()?,
                    zone: time_zone(schedule.timezone.as_deref()),
                    zone_name: schedule.timezone.clone().unwrap_or_else(|| "local".into()),
                    def: def.clone(),
                }),
                _ => None,
            })
            .collect();
        (!entries.is_empty()).then(|| Scheduler {
            entries,
            dir: jobfile.dir.clone(),
            commit: jobfile_commit(&jobfile.path),
            next_check: 0,
        })
    }

    /// Enqueues the ticks due at `now` (ms, wall clock); cheap when none is.
    pub fn step(&mut self, store: &mut Store, now: i64) -> Result<Vec<Event>> {
        if now < self.next_check {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let mut next_check = now + CHECK_EVERY;
        for entry in &self.entries {
            let Trigger::Schedule(schedule) = &entry.def.trigger else {
                continue;
            };
            let stored = store.schedule(&entry.def.name)?;
            let same = stored.as_ref().is_some_and(|s| {
                s.expression == schedule.expression && s.timezone == entry.zone_name
            });
            let decision = decide(
                &entry.cron,
                &entry.zone,
                stored.map(|s| (s.last_tick, s.checked_at)),
                same,
                schedule.missed,
                now,
            );
            let job = decision.enqueue.map(|due| {
                let mut job =
                    entry
                        .def
                        .new_job(&self.dir, Origin::Schedule, self.commit.as_deref(), now);
                let at = Timestamp::from_millisecond(due.tick)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                job.env.push(("QUEUECTL_SCHEDULED_AT".into(), at));
                job.tick_at = Some(due.tick);
                job
            });
            let row = ScheduleRow {
                expression: schedule.expression.clone(),
                timezone: entry.zone_name.clone(),
                last_tick: decision.last_tick,
                checked_at: now,
            };
            let outcome =
                store.schedule_tick(&entry.def.name, &row, job.as_ref(), schedule.overlap, now)?;
            if let (Some(due), Some(outcome)) = (decision.enqueue, outcome) {
                events.push(Event::Ticked {
                    definition: entry.def.name.clone(),
                    tick: due.tick,
                    catch_up: due.missed,
                    id: match &outcome {
                        TickOutcome::Enqueued(id) => Some(id.clone()),
                        _ => None,
                    },
                    skipped: match outcome {
                        TickOutcome::Enqueued(_) => None,
                        TickOutcome::SkippedBusy => Some("the last run is still going".into()),
                        TickOutcome::AlreadyDone => Some("already enqueued".into()),
                    },
                });
            }
            let after = Timestamp::from_millisecond(now).unwrap_or(Timestamp::UNIX_EPOCH);
            if let Some(next) = next_tick(&entry.cron, &entry.zone, after) {
                next_check = next_check.min(next.as_millisecond());
            }
        }
        self.next_check = next_check;
        Ok(events)
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
            // (what, stored (last_tick, checked_at), same, missed, now, expected)
            (
                "first sight starts from now",
                None,
                true,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:30:00"),
            ),
            (
                "changed expression starts from now",
                Some((at("09:00:00"), at("10:29:59"))),
                false,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:30:00"),
            ),
            (
                "nothing due",
                Some((at("10:00:00"), at("10:29:59"))),
                true,
                Missed::RunOnce,
                at("10:30:00"),
                None,
                at("10:00:00"),
            ),
            (
                "a live tick",
                Some((at("10:00:00"), at("10:59:59"))),
                true,
                Missed::RunOnce,
                at("11:00:00"),
                Some((at("11:00:00"), false)),
                at("11:00:00"),
            ),
            (
                "missed ticks: run once, the latest",
                Some((at("07:00:00"), at("07:10:00"))),
                true,
                Missed::RunOnce,
                at("10:30:00"),
                Some((at("10:00:00"), true)),
                at("10:00:00"),
            ),
            (
                "missed ticks: skip",
                Some((at("07:00:00"), at("07:10:00"))),
                true,
                Missed::Skip,
                at("10:30:00"),
                None,
                at("10:00:00"),
            ),
            (
                "live even if late by a few seconds",
                Some((at("10:00:00"), at("10:59:58"))),
                true,
                Missed::Skip,
                at("11:00:04"),
                Some((at("11:00:00"), false)),
                at("11:00:00"),
            ),
        ];
        for (what, stored, same, missed, now, enqueue, last_tick) in table {
            let decision = decide(&cron, &utc, stored, same, missed, now);
            assert_eq!(
                decision,
                Decision {
                    enqueue: enqueue.map(|(tick, missed)| Due { tick, missed }),
                    last_tick
                },
                "{what}"
            );
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
