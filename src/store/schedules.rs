//! Triggers in the store: cron schedules (each schedule's last tick, and
//! the enqueue of a tick's job, idempotent on (definition, tick)), and file
//! watches (a change merges into a waiting job, or follows `on_busy`).

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::jobs::insert;
use crate::error::Result;
use crate::job::NewJob;
use crate::jobfile::{OnBusy, Overlap};

/// A schedule as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub expression: String,
    /// An IANA name, or `local`.
    pub timezone: String,
    /// The nominal time of the last tick handled (ms).
    pub last_tick: i64,
    /// When a scheduler last looked at it (ms): ticks after a long silence
    /// were missed.
    pub checked_at: i64,
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    Enqueued(String),
    /// The last run is still going (`overlap = "skip"`).
    SkippedBusy,
    /// Another scheduler enqueued this tick already.
    AlreadyDone,
}

/// What a watched change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchOutcome {
    Enqueued(String),
    /// Merged into a job of the definition still waiting to start.
    Merged(String),
    /// A run was going and `on_busy = "skip"`.
    Skipped,
}

/// A job's environment, as stored.
type Env = Vec<(String, String)>;

/// The env variable a watch job gets its paths in.
const CHANGED: &str = "QUEUECTL_CHANGED";
const PATH: &str = "QUEUECTL_PATH";

impl Store {
    /// Enqueues the jobs of a watch batch (one per path with `per_file`,
    /// else one with `QUEUECTL_CHANGED`), in one transaction: a change for
    /// which a job of the definition is still pending merges into it; while
    /// one runs, `on_busy` decides (queue a follow-up, skip, or restart:
    /// stop the running one, which ends cancelled, not failed).
    pub fn watch_enqueue(
        &mut self,
        jobs: &[NewJob],
        per_file: bool,
        on_busy: OnBusy,
        now: i64,
    ) -> Result<Vec<WatchOutcome>> {
        self.write(|tx| {
            let mut outcomes = Vec::new();
            for job in jobs {
                let definition = job.definition.as_deref().unwrap_or_default();
                let key = if per_file { PATH } else { CHANGED };
                let value = job.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
                let jobs_in = |state: &str| -> rusqlite::Result<Vec<(String, Env)>> {
                    tx.prepare_cached(
                        "SELECT id, env FROM jobs WHERE definition = ?1 AND state = ?2 AND origin = 'watch' ORDER BY id",
                    )?
                    .query_map(params![definition, state], |row| {
                        let env: String = row.get(1)?;
                        Ok((row.get(0)?, serde_json::from_str(&env).unwrap_or_default()))
                    })?
                    .collect()
                };
                let same = |env: &[(String, String)]| !per_file || env.iter().any(|(k, v)| k == PATH && *v == value);
                if let Some((id, mut env)) = jobs_in("pending")?.into_iter().find(|(_, env)| same(env)) {
                    if !per_file {
                        let mut paths: std::collections::BTreeSet<String> = env
                            .iter()
                            .filter(|(k, _)| k == CHANGED)
                            .flat_map(|(_, v)| v.lines().map(str::to_string))
                            .collect();
                        paths.extend(value.lines().map(str::to_string));
                        env.retain(|(k, _)| k != CHANGED);
                        env.push((CHANGED.into(), paths.into_iter().collect::<Vec<_>>().join("\n")));
                        tx.prepare_cached("UPDATE jobs SET env = ?2, updated_at = ?3 WHERE id = ?1")?
                            .execute(params![id, super::jobs::to_json(&env), now])?;
                    }
                    outcomes.push(WatchOutcome::Merged(id));
                    continue;
                }
                let running: Vec<String> =
                    jobs_in("processing")?.into_iter().filter(|(_, env)| same(env)).map(|(id, _)| id).collect();
                if !running.is_empty() {
                    match on_busy {
                        OnBusy::Skip => {
                            outcomes.push(WatchOutcome::Skipped);
                            continue;
                        }
                        OnBusy::Restart => {
                            for id in &running {
                                tx.prepare_cached(
                                    "UPDATE jobs SET cancel_requested = 1, reason = 'restarted by a change', \
                                     updated_at = ?2 WHERE id = ?1 AND state = 'processing'",
                                )?
                                .execute(params![id, now])?;
                            }
                        }
                        OnBusy::Queue => {}
                    }
                }
                insert(tx, job)?;
                outcomes.push(WatchOutcome::Enqueued(job.id.clone()));
            }
            Ok(outcomes)
        })
    }

    pub fn schedule(&self, definition: &str) -> Result<Option<ScheduleRow>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT expression, timezone, last_tick, checked_at FROM schedules WHERE definition = ?1",
                )?
                .query_row([definition], |row| {
                    Ok(ScheduleRow {
                        expression: row.get(0)?,
                        timezone: row.get(1)?,
                        last_tick: row.get(2)?,
                        checked_at: row.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    /// Records `row`, and with `job` enqueues the tick under `overlap`, in
    /// one transaction.
    pub fn schedule_tick(
        &mut self,
        definition: &str,
        row: &ScheduleRow,
        job: Option<&NewJob>,
        overlap: Overlap,
        now: i64,
    ) -> Result<Option<TickOutcome>> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO schedules (definition, expression, timezone, last_tick, checked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (definition) DO UPDATE SET \
                 expression = excluded.expression, timezone = excluded.timezone, \
                 last_tick = MAX(last_tick, excluded.last_tick), checked_at = excluded.checked_at",
            )?
            .execute(params![definition, row.expression, row.timezone, row.last_tick, row.checked_at])?;
            let Some(job) = job else { return Ok(None) };
            let done: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE definition = ?1 AND tick_at = ?2)")?
                .query_row(params![definition, job.tick_at], |row| row.get(0))?;
            if done {
                return Ok(Some(TickOutcome::AlreadyDone));
            }
            let busy: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM jobs WHERE definition = ?1 \
                     AND state IN ('pending', 'failed', 'processing'))",
                )?
                .query_row([definition], |row| row.get(0))?;
            match overlap {
                Overlap::Skip if busy => return Ok(Some(TickOutcome::SkippedBusy)),
                Overlap::Replace if busy => {
                    tx.prepare_cached(
                        "UPDATE jobs SET state = 'cancelled', reason = 'replaced by a newer tick', \
                         finished_at = ?2, updated_at = ?2 WHERE definition = ?1 \
                         AND state IN ('pending', 'failed')",
                    )?
                    .execute(params![definition, now])?;
                    tx.prepare_cached(
                        "UPDATE jobs SET cancel_requested = 1, reason = 'replaced by a newer tick', \
                         updated_at = ?2 WHERE definition = ?1 AND state = 'processing'",
                    )?
                    .execute(params![definition, now])?;
                }
                _ => {}
            }
            insert(tx, job)?;
            Ok(Some(TickOutcome::Enqueued(job.id.clone())))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobState, Origin};
    use crate::store::Durability;

    fn tick_job(id: &str, tick: i64) -> NewJob {
        NewJob {
            id: id.into(),
            command: "true".into(),
            definition: Some("nightly".into()),
            origin: Origin::Schedule,
            queue: "default".into(),
            priority: 0,
            retry: crate::retry::RetryPolicy::default(),
            timeout_ms: None,
            env: vec![],
            cwd: None,
            run_at: 0,
            created_at: tick,
            spec_hash: None,
            source_commit: None,
            after: vec![],
            tick_at: Some(tick),
            inputs: None,
        }
    }

    fn row(tick: i64) -> ScheduleRow {
        ScheduleRow {
            expression: "@daily".into(),
            timezone: "UTC".into(),
            last_tick: tick,
            checked_at: tick,
        }
    }

    fn states(store: &Store) -> Vec<(String, JobState)> {
        let filter = crate::store::JobFilter {
            limit: 100,
            ..Default::default()
        };
        let mut jobs: Vec<_> = store
            .list(&filter)
            .unwrap_or_default()
            .into_iter()
            .map(|j| (j.id, j.state))
            .collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        jobs
    }

    fn watch_job(id: &str, key: &str, value: &str) -> NewJob {
        let mut job = tick_job(id, 0);
        job.definition = Some("docs".into());
        job.origin = Origin::Watch;
        job.tick_at = None;
        job.env = vec![(key.into(), value.into())];
        job
    }

    fn claim(store: &mut Store) -> crate::error::Result<()> {
        if store.workers()?.is_empty() {
            store.register_worker(&crate::store::Registration {
                id: 1,
                pid: 1,
                host: "test",
                process_view: None,
                queues: &[],
                slots: 1,
                lease_ms: 30_000,
                now: 0,
            })?;
        }
        store.claim(crate::store::ClaimArgs {
            runner: 1,
            queues: &crate::store::QueueFilter::Any,
            lease_until: i64::MAX,
            now: i64::MAX / 2,
        })?;
        Ok(())
    }

    #[test]
    fn watch_changes_merge_or_follow_on_busy() -> crate::error::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::Error::io("create", "tempdir", e))?;
        let mut store = Store::open(&dir.path().join("w.db"), Durability::Normal)?;
        let changed = |id: &str, paths: &str| watch_job(id, CHANGED, paths);
        // Pending: a new change merges into it, paths united.
        assert_eq!(
            store.watch_enqueue(&[changed("a", "x.md")], false, OnBusy::Queue, 1)?,
            vec![WatchOutcome::Enqueued("a".into())]
        );
        assert_eq!(
            store.watch_enqueue(&[changed("b", "y.md\nx.md")], false, OnBusy::Queue, 2)?,
            vec![WatchOutcome::Merged("a".into())]
        );
        let env = store.job("a")?.env;
        assert_eq!(env, vec![(CHANGED.to_string(), "x.md\ny.md".to_string())]);
        // Running: on_busy decides.
        claim(&mut store)?;
        assert_eq!(
            store.watch_enqueue(&[changed("c", "z.md")], false, OnBusy::Skip, 3)?,
            vec![WatchOutcome::Skipped]
        );
        assert_eq!(
            store.watch_enqueue(&[changed("d", "z.md")], false, OnBusy::Queue, 4)?,
            vec![WatchOutcome::Enqueued("d".into())]
        );
        assert_eq!(
            store.watch_enqueue(&[changed("e", "w.md")], false, OnBusy::Restart, 5)?,
            vec![WatchOutcome::Merged("d".into())]
        );
        // Per file: only the same path merges.
        let path = |id: &str, p: &str| watch_job(id, PATH, p);
        assert_eq!(
            store
                .watch_enqueue(
                    &[path("f", "1.png"), path("g", "2.png")],
                    true,
                    OnBusy::Queue,
                    6
                )?
                .len(),
            2
        );
        assert_eq!(
            store.watch_enqueue(&[path("h", "1.png")], true, OnBusy::Queue, 7)?,
            vec![WatchOutcome::Merged("f".into())]
        );
        Ok(())
    }

    #[test]
    fn restart_stops_the_running_job() -> crate::error::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::Error::io("create", "tempdir", e))?;
        let mut store = Store::open(&dir.path().join("r.db"), Durability::Normal)?;
        store.watch_enqueue(&[watch_job("a", CHANGED, "x")], false, OnBusy::Restart, 1)?;
        claim(&mut store)?;
        assert_eq!(
            store.watch_enqueue(&[watch_job("b", CHANGED, "x")], false, OnBusy::Restart, 2)?,
            vec![WatchOutcome::Enqueued("b".into())]
        );
        assert_eq!(
            store.cancel_requests(1)?,
            vec!["a".to_string()],
            "the running job is asked to stop"
        );
        Ok(())
    }

    #[test]
    fn overlap_policies_and_idempotent_ticks() -> crate::error::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::Error::io("create", "tempdir", e))?;
        for (overlap, second, expected) in [
            (
                Overlap::Skip,
                Some(TickOutcome::SkippedBusy),
                vec![("a", JobState::Pending)],
            ),
            (
                Overlap::Allow,
                Some(TickOutcome::Enqueued("b".into())),
                vec![("a", JobState::Pending), ("b", JobState::Pending)],
            ),
            (
                Overlap::Replace,
                Some(TickOutcome::Enqueued("b".into())),
                vec![("a", JobState::Cancelled), ("b", JobState::Pending)],
            ),
        ] {
            let mut store = Store::open(
                &dir.path().join(format!("{overlap:?}.db")),
                Durability::Normal,
            )?;
            let first =
                store.schedule_tick("nightly", &row(1), Some(&tick_job("a", 1)), overlap, 1)?;
            assert_eq!(first, Some(TickOutcome::Enqueued("a".into())));
            // The same tick again (a restart, a second scheduler): nothing new.
            let again =
                store.schedule_tick("nightly", &row(1), Some(&tick_job("z", 1)), overlap, 1)?;
            assert_eq!(again, Some(TickOutcome::AlreadyDone), "{overlap:?}");
            let next =
                store.schedule_tick("nightly", &row(2), Some(&tick_job("b", 2)), overlap, 2)?;
            assert_eq!(next, second, "{overlap:?}");
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(id, s)| (id.to_string(), s))
                .collect();
            assert_eq!(states(&store), expected, "{overlap:?}");
            assert_eq!(store.schedule("nightly")?.map(|r| r.last_tick), Some(2));
        }
        Ok(())
    }
}
