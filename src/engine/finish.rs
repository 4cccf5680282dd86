//! What the end of an attempt means for its job: completed, a retry after
//! its backoff, dead (retries spent, or an exit code that is not
//! retried), cancelled, or back to the queue uncounted (a shutdown
//! stopped it). Pure: [`judge`] takes the clock and the jitter's random
//! number as arguments.

use std::time::Duration;

use crate::driver::FinishParams;
use crate::duration::as_millis_i64;
use crate::exec::StopReason;
use crate::job::{AttemptOutcome, Claimed, JobState};
use crate::retry::Decision;

/// How an attempt ended, as the runtime saw it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnd<'a> {
    pub code: i32,
    pub timed_out: bool,
    /// Why it could not start, or why its output was not kept.
    pub error: Option<&'a str>,
    /// Why it was stopped from outside, if it was.
    pub stopped: StopReason,
}

/// Where an attempt leaves its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub outcome: AttemptOutcome,
    pub state: JobState,
    /// For a job that waits again: when it may run.
    pub run_at: Option<i64>,
    pub error: Option<String>,
}

impl Ended {
    /// The driver's parameters to record it for `job`, claimed by `runner`.
    pub fn params<'a>(
        &'a self,
        job: &'a Claimed,
        runner: i64,
        exit_code: Option<i32>,
        output_bytes: u64,
        now: i64,
    ) -> FinishParams<'a> {
        FinishParams {
            id: &job.id,
            definition: job.definition.as_deref(),
            run: job.run,
            runner,
            outcome: self.outcome,
            exit_code,
            error: self.error.as_deref(),
            output_bytes,
            state: self.state,
            run_at: self.run_at,
            finished_at: self.state.is_finished().then_some(now),
            // A shutdown's interruption is not the job's failure.
            counts: self.outcome != AttemptOutcome::Interrupted,
            now,
        }
    }

    /// A claimed job given back unstarted by a stopping worker.
    pub fn released(now: i64) -> Ended {
        Ended {
            outcome: AttemptOutcome::Interrupted,
            state: JobState::Pending,
            run_at: Some(now),
            error: Some("released unstarted by a stopping worker".into()),
        }
    }
}

/// Decides what an attempt's end means for its job, at `now`; `random`
/// in `[0, 1)` feeds the retry's jitter.
pub fn judge(job: &Claimed, end: &AttemptEnd<'_>, now: i64, random: f64) -> Ended {
    let ended = |outcome, state, run_at, error: Option<String>| Ended {
        outcome,
        state,
        run_at,
        error,
    };
    let error = end.error.map(str::to_string);
    if crate::job::validate_id(&job.id).is_err() {
        return ended(AttemptOutcome::Failed, JobState::Dead, None, error);
    }
    if end.code == 0 && !end.timed_out {
        return ended(AttemptOutcome::Completed, JobState::Completed, None, error);
    }
    match end.stopped {
        StopReason::Interrupt | StopReason::Rescued => {
            return ended(
                AttemptOutcome::Interrupted,
                JobState::Pending,
                Some(now),
                Some("stopped by a worker shutdown; returned to the queue".into()),
            );
        }
        StopReason::Cancel => {
            return ended(
                AttemptOutcome::Cancelled,
                JobState::Cancelled,
                None,
                Some("cancelled while running".into()),
            );
        }
        StopReason::None => {}
    }
    let outcome = if end.timed_out {
        AttemptOutcome::Timeout
    } else {
        AttemptOutcome::Failed
    };
    let what = match (error, end.timed_out) {
        (Some(error), _) => error,
        (None, true) => format!(
            "timed out after {}",
            crate::duration::short(Duration::from_millis(
                job.timeout_ms.unwrap_or(0).max(0) as u64
            ))
        ),
        (None, false) => format!("exit code {}", end.code),
    };
    match job.retry.decide(job.attempts, Some(end.code), random) {
        Decision::Retry(delay) => ended(
            outcome,
            JobState::Failed,
            Some(now.saturating_add(as_millis_i64(delay))),
            Some(what),
        ),
        Decision::Dead(reason) => ended(
            outcome,
            JobState::Dead,
            None,
            Some(format!("{what}; {}", reason.describe(job.attempts))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;

    fn job(attempts: u32, max_retries: u32) -> Claimed {
        Claimed {
            id: "j".into(),
            command: "x".into(),
            definition: None,
            queue: "default".into(),
            attempts,
            run: attempts,
            retry: RetryPolicy {
                max_retries,
                no_retry_exit_codes: vec![2],
                ..RetryPolicy::default()
            },
            timeout_ms: Some(1500),
            env: vec![],
            cwd: None,
            payload: None,
        }
    }

    fn end(code: i32, timed_out: bool, stopped: StopReason) -> AttemptEnd<'static> {
        AttemptEnd {
            code,
            timed_out,
            error: None,
            stopped,
        }
    }

    #[test]
    fn what_an_end_means() {
        use AttemptOutcome as O;
        use JobState as S;
        let now = 1_000_000;
        let table = [
            (
                "exit 0",
                job(1, 3),
                end(0, false, StopReason::None),
                O::Completed,
                S::Completed,
                None,
                None,
            ),
            (
                "a failure with retries left waits its backoff",
                job(1, 3),
                end(1, false, StopReason::None),
                O::Failed,
                S::Failed,
                Some(now + 2000),
                Some("exit code 1"),
            ),
            (
                "retries spent",
                job(4, 3),
                end(1, false, StopReason::None),
                O::Failed,
                S::Dead,
                None,
                Some("exit code 1; failed 4 attempt(s), no retries left"),
            ),
            (
                "a no-retry exit code",
                job(1, 3),
                end(2, false, StopReason::None),
                O::Failed,
                S::Dead,
                None,
                Some("exit code 2; exit code 2 is in no_retry_exit_codes"),
            ),
            (
                "a timeout",
                job(1, 0),
                end(124, true, StopReason::None),
                O::Timeout,
                S::Dead,
                None,
                Some("timed out after 1.5s; failed 1 attempt(s), no retries left"),
            ),
            (
                "a shutdown returns it uncounted",
                job(1, 0),
                end(143, false, StopReason::Interrupt),
                O::Interrupted,
                S::Pending,
                Some(now),
                Some("stopped by a worker shutdown; returned to the queue"),
            ),
            (
                "cancelled while running",
                job(1, 3),
                end(143, false, StopReason::Cancel),
                O::Cancelled,
                S::Cancelled,
                None,
                Some("cancelled while running"),
            ),
        ];
        for (what, job, end, outcome, state, run_at, error) in table {
            let ended = judge(&job, &end, now, 0.0);
            assert_eq!(
                ended,
                Ended {
                    outcome,
                    state,
                    run_at,
                    error: error.map(str::to_string)
                },
                "{what}"
            );
        }
    }

    #[test]
    fn params_count_every_attempt_but_an_interrupted_one() {
        let job = job(1, 3);
        let done = judge(&job, &end(0, false, StopReason::None), 5, 0.0);
        let params = done.params(&job, 7, Some(0), 10, 5);
        assert!(params.counts);
        assert_eq!(params.finished_at, Some(5));
        assert_eq!(params.runner, 7);
        let released = Ended::released(6);
        let params = released.params(&job, 7, None, 0, 6);
        assert!(!params.counts);
        assert_eq!(
            (params.state, params.finished_at, params.run_at),
            (JobState::Pending, None, Some(6))
        );
    }
}
