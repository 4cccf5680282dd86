//! Rescue: the jobs of workers declared dead. Who is dead is judged by
//! the caller (`crate::liveness`, from what this process saw); the engine
//! removes those workers (only if their heartbeat is still the one seen)
//! and decides, for every running job whose worker is no longer
//! registered, what its lost attempt means: it counts as a failed attempt
//! with no exit code, and the job's retry policy ([`decide`]) makes it
//! wait for its retry after its backoff, or dead.

use super::{Engine, deps};
use crate::driver::{LostParams, Orphan};
use crate::duration::as_millis_i64;
use crate::error::Result;
use crate::job::JobState;
use crate::retry::Decision;

/// The error of a lost attempt.
pub const LOST: &str = "the worker running it was lost";

/// What a rescue did.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Workers removed: (id, pid, host).
    pub workers: Vec<(i64, u32, String)>,
    /// Jobs taken back: (id, now dead?).
    pub jobs: Vec<(String, bool)>,
}

/// Where a lost attempt leaves its job: its next state and `run_at`.
/// `random` in `[0, 1)` feeds jitter.
pub fn decide(orphan: &Orphan, now: i64, random: f64) -> (JobState, i64) {
    match orphan.retry.decide(orphan.attempts, None, random) {
        Decision::Retry(delay) => (JobState::Failed, now.saturating_add(as_millis_i64(delay))),
        Decision::Dead(_) => (JobState::Dead, now),
    }
}

impl Engine {
    /// Removes the workers named (id, the heartbeat the caller saw) unless
    /// they heartbeated since, and rescues every job whose worker is no
    /// longer registered, in one transaction.
    pub fn rescue(&mut self, dead: &[(i64, i64)], now: i64, random: f64) -> Result<Reclaimed> {
        self.write(|ops| {
            let workers = ops.remove_workers(dead)?;
            let orphans = ops.orphaned_jobs()?;
            let decided: Vec<(JobState, i64)> =
                orphans.iter().map(|o| decide(o, now, random)).collect();
            let lost: Vec<LostParams<'_>> = orphans
                .iter()
                .zip(&decided)
                .map(|(orphan, &(state, run_at))| LostParams {
                    id: &orphan.id,
                    state,
                    run_at,
                    finished_at: (state == JobState::Dead).then_some(now),
                    error: LOST,
                    now,
                })
                .collect();
            ops.set_lost(&lost)?;
            deps::settle(
                ops,
                orphans.iter().filter_map(|o| o.definition.clone()),
                now,
            )?;
            let retried: Vec<String> = orphans
                .iter()
                .zip(&decided)
                .filter(|(_, (state, _))| state.is_waiting())
                .map(|(orphan, _)| orphan.id.clone())
                .collect();
            deps::recheck(ops, &retried, now)?;
            Ok(Reclaimed {
                workers,
                jobs: orphans
                    .iter()
                    .zip(&decided)
                    .map(|(o, (state, _))| (o.id.clone(), *state == JobState::Dead))
                    .collect(),
            })
        })
    }

    /// Whether some job runs under a worker that is no longer registered.
    pub fn has_orphaned_jobs(&mut self) -> Result<bool> {
        self.read(|ops| Ok(!ops.orphaned_jobs()?.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;

    #[test]
    fn a_lost_attempt_counts_and_waits_its_backoff() {
        let orphan = |attempts, max_retries| Orphan {
            id: "j".into(),
            definition: None,
            attempts,
            retry: RetryPolicy {
                max_retries,
                backoff_base: 3.0,
                ..RetryPolicy::default()
            },
        };
        // Retry n waits backoff_base ^ n seconds: the first 3 s.
        assert_eq!(decide(&orphan(1, 2), 1_000, 0.0), (JobState::Failed, 4_000));
        assert_eq!(
            decide(&orphan(2, 2), 1_000, 0.0),
            (JobState::Failed, 10_000)
        );
        assert_eq!(decide(&orphan(3, 2), 1_000, 0.0), (JobState::Dead, 1_000));
        assert_eq!(decide(&orphan(1, 0), 1_000, 0.0), (JobState::Dead, 1_000));
    }
}
