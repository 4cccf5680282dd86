//! The driver conformance suite: every data operation of [`Ops`] and
//! every transition of the engine over it, written once and run against
//! every driver. A driver is proven by passing it.
//!
//! Each case is a plain function of a fresh, empty [`Queue`]; the
//! `conformance!` macro below makes one `#[test]` per case for a driver,
//! from a fixture (a function or closure returning `Result<Queue>`). A new
//! driver joins with one line beside SQLite's:
//!
//! ```text
//! conformance!(sqlite, sqlite_queue);
//! conformance!(postgres, postgres_queue);
//! ```
//!
//! and its tests are `driver::tests::<driver>::<case>`. The cases, by area:
//!
//! | file | cases |
//! | --- | --- |
//! | `claims.rs` | inserts and reads, all-or-nothing inserts, claim order, queue filters and exclusions, blocked jobs, unregistered runners, the ownership of an attempt, uncounted attempts, exclusive keys |
//! | `definitions.rs` | the latest-run record, the dependency cascade, apply, payloads and the queries of definitions |
//! | `triggers.rs` | cron ticks (idempotence, overlap, the last tick), watch batches (merge, `on_busy`, `per_file`) |
//! | `workers.rs` | rescue, queue limits under concurrent claimers, registrations and stop requests, the change feed and the owner lock |
//! | `dlq.rs` | the dead letter queue, pruning, the user's cancel, the dashboard's pages and throughput |
//!
//! A new case is a `pub(super) fn` of one of them and its name in the
//! macro's list. The cases speak only through [`Ops`] (via
//! [`Engine::write`] and [`Engine::read`]) and the engine's methods, never
//! SQL: they check the contract of `driver/mod.rs`, not SQLite's tables.
//! Times are fixed (`NOW`), never the clock's; concurrent cases wait only
//! on barriers and joins.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Barrier;
use std::time::Duration;

use serde_json::json;

use super::{
    ClaimParams, Durability, FinishParams, JobFilter, JobRef, JobUpdate, LatestRun, Location,
    Moved, Orphan, Presence, QueueFilter, Registration, ScheduleRow, StopMode, Tally, Waiter,
};
use crate::engine::reconcile::{Action, Plan, REMOVED};
use crate::engine::rescue::LOST;
use crate::engine::{ClaimRequest, Done, Ended, Engine, TickOutcome, WatchOutcome};
use crate::error::{Error, Result};
use crate::job::{AttemptOutcome, Claimed, JobState, NewJob, Origin, Payload};
use crate::jobfile::{OnBusy, Overlap};
use crate::retry::RetryPolicy;

mod claims;
mod definitions;
mod dlq;
mod triggers;
mod workers;

use claims::*;
use definitions::*;
use dlq::*;
use triggers::*;
use workers::*;

// ---------------------------------------------------------------------
// The drivers and their fixtures.
// ---------------------------------------------------------------------

/// Makes one `#[test]` per case for a driver: `conformance!(name,
/// fixture)`, where `fixture()` returns a fresh, empty [`Queue`].
macro_rules! conformance {
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() -> Result<()> {
                // None: this driver's server is not configured here (a
                // skip outside CI; CI requires it, and then it is an error).
                let Some(mut queue): Option<Queue> = ($fixture)()? else {
                    return Ok(());
                };
                super::$case(&mut queue)
            }
        )*
    };
    ($driver:ident, $fixture:expr) => {
        mod $driver {
            use super::*;

            conformance!(@cases $fixture;
                insert_and_reads,
                a_failed_insert_leaves_nothing,
                claim_order,
                queue_filters_and_exclusions,
                blocked_jobs_wait,
                an_unregistered_runner_claims_nothing,
                finish_checks_ownership,
                an_uncounted_attempt,
                exclusive_keys,
                the_latest_run_follows_its_job,
                the_cascade_unblocks_on_completion,
                the_cascade_cancels_down_the_chain,
                a_job_back_in_the_queue_waits_for_its_dependencies,
                rescue,
                ticks_are_idempotent_and_follow_overlap,
                replace_stops_a_running_tick,
                a_schedule_never_moves_back,
                watch_merges_and_follows_on_busy,
                per_file_watch_merges_the_same_path,
                a_requested_limit_holds_under_concurrent_claimers,
                a_recorded_limit_holds_under_concurrent_claimers,
                a_paused_queue_is_skipped_until_resumed,
                workers_and_stop_requests,
                dead_letter_queue_and_pruning,
                counts_follow_every_change,
                engine_cancel,
                apply,
                payloads_and_definition_queries,
                side_channels,
                output_is_kept_where_the_driver_keeps_it,
                job_pages_and_throughput,
                common_and_rare_texts,
            );
        }
    };
}

conformance!(sqlite, sqlite_queue);
conformance!(postgres, postgres_queue);

/// A fresh, empty queue of one driver, for one test.
struct Queue {
    engine: Engine,
    /// What keeps the queue's data alive until the test ends (a temp
    /// dir; a database to drop). Dropped after the engine.
    _keep: Box<dyn std::any::Any>,
}

impl Queue {
    /// Another connection to the same queue (for another thread).
    fn connect(&self) -> Result<Engine> {
        self.engine.connect(Durability::Normal)
    }
}

/// SQLite: a database in a new temp dir.
fn sqlite_queue() -> Result<Option<Queue>> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("create", "a temp dir", e))?;
    let location = Location::Sqlite(dir.path().join("queue.db"));
    Ok(Some(Queue {
        engine: Engine::open(&location, Durability::Normal)?,
        _keep: Box::new(dir),
    }))
}

/// PostgreSQL: a new schema of the server `QUEUECTL_TEST_PG_URL` names
/// (`scripts/pg-server start` makes one), dropped when the case ends.
/// Without the variable the cases are skipped, unless
/// `QUEUECTL_REQUIRE_PG` is set (as CI sets it): then they fail.
fn postgres_queue() -> Result<Option<Queue>> {
    let Some(schema) = crate::driver::postgres::testing::Schema::create()? else {
        return Ok(None);
    };
    let location = Location::Postgres(crate::driver::postgres::PgUrl::parse(schema.url())?);
    Ok(Some(Queue {
        engine: Engine::open(&location, Durability::Normal)?,
        _keep: Box::new(schema),
    }))
}

// ---------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------

/// The time of every case (ms).
const NOW: i64 = 1_700_000_000_000;
/// The lease of every claim.
const LEASE: i64 = NOW + 30_000;
/// The worker most cases claim as.
const W: i64 = 1;
/// The match-all queue filter, for `'static` claim parameters.
static ANY: QueueFilter = QueueFilter::Any;

/// A plain job, ready now, in `default`; change fields with `..job(id)`.
fn job(id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        command: format!("echo {id}"),
        definition: None,
        origin: Origin::Cli,
        queue: "default".into(),
        priority: 0,
        retry: RetryPolicy::default(),
        timeout_ms: None,
        env: Vec::new(),
        cwd: None,
        run_at: NOW,
        created_at: NOW,
        spec_hash: None,
        source_commit: None,
        after: Vec::new(),
        tick_at: None,
        inputs: None,
        payload: None,
        exclusive: None,
    }
}

/// A job of a definition, as apply makes them.
fn def_job(id: &str, definition: &str) -> NewJob {
    NewJob {
        definition: Some(definition.into()),
        origin: Origin::Jobfile,
        spec_hash: Some(format!("spec-{definition}")),
        ..job(id)
    }
}

/// A job `after` these definitions.
fn after(mut job: NewJob, definitions: &[&str]) -> NewJob {
    job.after = strings(definitions);
    job
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn ids(claimed: &[Claimed]) -> Vec<String> {
    claimed.iter().map(|c| c.id.clone()).collect()
}

/// Inserts through the driver alone (no cascade).
fn insert(e: &mut Engine, jobs: &[NewJob]) -> Result<()> {
    e.write(|ops| ops.insert_jobs(jobs))
}

/// Registers worker `id`, its heartbeat at `NOW`.
fn register(e: &mut Engine, id: i64) -> Result<()> {
    e.register_worker(&Registration {
        id,
        pid: 1000 + id as u32,
        host: "test-host",
        process_view: None,
        queues: &[],
        slots: 1,
        lease_ms: 30_000,
        now: NOW,
    })
}

/// A claim of up to `limit` jobs of any queue, at `NOW`.
fn any(runner: i64, limit: usize) -> ClaimParams<'static> {
    ClaimParams {
        runner,
        queues: &ANY,
        exclude: &[],
        lease_until: LEASE,
        now: NOW,
        limit,
    }
}

/// Claims through the engine, any queue, no limits.
fn claim(e: &mut Engine, runner: i64, count: usize) -> Result<Vec<Claimed>> {
    let none = BTreeMap::new();
    e.claim(&ClaimRequest {
        runner,
        queues: &QueueFilter::Any,
        limits: &none,
        lease_until: LEASE,
        now: NOW,
        count,
    })
}

/// Claims exactly the job `id` (the only one ready), or fails the case.
fn claim_only(e: &mut Engine, runner: i64, id: &str) -> Result<Claimed> {
    let mut claimed = claim(e, runner, 1)?;
    assert_eq!(ids(&claimed), [id], "the claim takes `{id}`");
    Ok(claimed.remove(0))
}

const ROLLBACK: &str = "rolled back on purpose";

/// What a claim with `params` takes, undone: it runs in a transaction
/// that then fails, so nothing of it stands.
fn dry_claim(e: &mut Engine, params: &ClaimParams<'_>) -> Result<Vec<String>> {
    let mut taken = Vec::new();
    let result = e.write(|ops| {
        taken = ids(&ops.claim_jobs(params)?);
        Err::<(), _>(Error::Internal(ROLLBACK.into()))
    });
    match result {
        Err(Error::Internal(message)) if message == ROLLBACK => Ok(taken),
        other => panic!("the dry claim ends in its own error, not {other:?}"),
    }
}

fn claimable(e: &mut Engine, params: &ClaimParams<'_>) -> Result<bool> {
    e.read(|ops| ops.claimable(params))
}

fn state(e: &mut Engine, id: &str) -> Result<JobState> {
    Ok(e.job(id)?.state)
}

/// Every job and its state, by id.
fn states(e: &mut Engine) -> Result<Vec<(String, JobState)>> {
    let mut jobs: Vec<(String, JobState)> = e
        .list(&JobFilter {
            limit: 10_000,
            ..JobFilter::default()
        })?
        .into_iter()
        .map(|j| (j.id, j.state))
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(jobs)
}

fn pairs(items: &[(&str, JobState)]) -> Vec<(String, JobState)> {
    items.iter().map(|(id, s)| (id.to_string(), *s)).collect()
}

/// The jobs of a definition in any state, oldest first.
fn definition_states(e: &mut Engine, definition: &str) -> Result<Vec<(String, JobState)>> {
    Ok(
        e.read(|ops| ops.definition_jobs(definition, &JobState::ALL))?
            .into_iter()
            .map(|j| (j.id, j.state))
            .collect(),
    )
}

/// A job's attempts: (run, outcome, exit code, finished at, error, output bytes).
type AttemptRow = (
    u32,
    Option<AttemptOutcome>,
    Option<i32>,
    Option<i64>,
    Option<String>,
    u64,
);

fn attempt_rows(e: &mut Engine, id: &str) -> Result<Vec<AttemptRow>> {
    Ok(e.attempts(id)?
        .into_iter()
        .map(|a| {
            (
                a.run,
                a.outcome,
                a.exit_code,
                a.finished_at,
                a.error,
                a.output_bytes,
            )
        })
        .collect())
}

fn latest(e: &mut Engine, definition: &str) -> Result<LatestRun> {
    e.read(|ops| ops.latest_runs())?
        .remove(definition)
        .ok_or_else(|| Error::Internal(format!("no latest run of `{definition}`")))
}

fn completed() -> Ended {
    Ended {
        outcome: AttemptOutcome::Completed,
        state: JobState::Completed,
        run_at: None,
        error: None,
    }
}

fn dead() -> Ended {
    Ended {
        outcome: AttemptOutcome::Failed,
        state: JobState::Dead,
        run_at: None,
        error: Some("exit code 1; no retries left".into()),
    }
}

/// Records the end of `job`'s attempt through the engine (exit code 0
/// for a completed one, else 1); whether the attempt was still the
/// runner's.
fn finish(e: &mut Engine, job: &Claimed, runner: i64, ended: &Ended, at: i64) -> Result<bool> {
    let code = if ended.state == JobState::Completed {
        0
    } else {
        1
    };
    finish_with_code(e, job, runner, ended, code, at)
}

fn finish_with_code(
    e: &mut Engine,
    job: &Claimed,
    runner: i64,
    ended: &Ended,
    exit_code: i32,
    at: i64,
) -> Result<bool> {
    let (owned, _) = e.finish(
        &Done {
            job,
            runner,
            ended,
            exit_code: Some(exit_code),
            output_bytes: 0,
            now: at,
        },
        None,
    )?;
    Ok(owned)
}

/// Inserts `job`, runs it as worker `W` (registered already) and ends
/// it so, with `exit_code`, at `at`.
fn run_to_end(e: &mut Engine, job: NewJob, ended: &Ended, exit_code: i32, at: i64) -> Result<()> {
    let id = job.id.clone();
    insert(e, &[job])?;
    let claimed = claim_only(e, W, &id)?;
    assert!(
        finish_with_code(e, &claimed, W, ended, exit_code, at)?,
        "`{id}` is W's to finish"
    );
    Ok(())
}

/// The message of an input error.
fn input_error<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Input { message, .. }) => message,
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// A plain job in `queue`.
fn job_in(id: &str, queue: &str) -> NewJob {
    NewJob {
        queue: queue.into(),
        ..job(id)
    }
}

/// A watch batch's payload.
fn changed(paths: &[&str]) -> Payload {
    Payload::Changed(strings(paths))
}
