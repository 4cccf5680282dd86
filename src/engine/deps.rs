//! Dependencies (`after`): a job runs only once the latest run of each
//! definition it names has completed; a dependency whose latest run is
//! dead or cancelled, or that never ran, cancels it (it would otherwise
//! wait forever), and so on down the chain.
//!
//! [`decide`] is the rule, pure. [`settle`] applies it in a transaction to
//! the waiting jobs of the definitions whose latest run just moved: a job
//! is marked blocked (claims skip it), unblocked, or cancelled.

use std::collections::VecDeque;

use crate::driver::Ops;
use crate::error::Result;
use crate::job::JobState;

/// Where a waiting job stands with its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every dependency's latest run completed: it may run.
    Ready,
    /// Some dependency has not finished yet: it waits.
    Waiting,
    /// A dependency will not complete on its own: cancel it, with this reason.
    Cancel(String),
}

/// The rule: `after` with each dependency's latest state (None: it never ran).
pub fn decide(after: &[String], states: &[Option<JobState>]) -> Readiness {
    let mut waiting = false;
    for (dep, state) in after.iter().zip(states) {
        match state {
            None => return Readiness::Cancel(format!("dependency `{dep}` has never run")),
            Some(state @ (JobState::Dead | JobState::Cancelled)) => {
                return Readiness::Cancel(format!("dependency `{dep}` is {state}"));
            }
            Some(JobState::Completed) => {}
            Some(_) => waiting = true,
        }
    }
    if waiting {
        Readiness::Waiting
    } else {
        Readiness::Ready
    }
}

/// Re-decides the waiting jobs that depend on `changed` definitions (their
/// latest run moved: inserted, finished, cancelled, requeued), and on the
/// definitions of the jobs it cancels, until nothing moves.
pub fn settle(
    ops: &mut dyn Ops,
    changed: impl IntoIterator<Item = String>,
    now: i64,
) -> Result<()> {
    // Each definition queued again is the definition of a job cancelled
    // here, which waits no more: this ends.
    let mut queue: VecDeque<String> = changed.into_iter().collect();
    while let Some(definition) = queue.pop_front() {
        for waiter in ops.waiting_for(&definition)? {
            let states = ops.latest_states(&waiter.after)?;
            match decide(&waiter.after, &states) {
                Readiness::Ready if waiter.blocked => ops.set_blocked(&[waiter.id], false)?,
                Readiness::Waiting if !waiter.blocked => ops.set_blocked(&[waiter.id], true)?,
                Readiness::Ready | Readiness::Waiting => {}
                Readiness::Cancel(reason) => {
                    for moved in ops.cancel_waiting(&[waiter.id], &reason, now)? {
                        if let Some(definition) = moved.definition {
                            queue.push_back(definition);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Re-decides jobs that wait again after a run or a death (a retry, a
/// rescue, a dlq retry): their dependencies may have moved meanwhile,
/// when no cascade looked at them (it looks at waiting jobs only).
pub fn recheck(ops: &mut dyn Ops, ids: &[String], now: i64) -> Result<()> {
    let mut after = Vec::new();
    for id in ids {
        after.extend(ops.job(id)?.map(|job| job.after).unwrap_or_default());
    }
    after.sort();
    after.dedup();
    if after.is_empty() {
        return Ok(());
    }
    settle(ops, after, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let after = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        use JobState::*;
        type Case<'a> = (&'a [&'a str], &'a [Option<JobState>], Readiness);
        let table: [Case<'_>; 7] = [
            (&[], &[], Readiness::Ready),
            (&["a"], &[Some(Completed)], Readiness::Ready),
            (
                &["a", "b"],
                &[Some(Completed), Some(Pending)],
                Readiness::Waiting,
            ),
            (&["a"], &[Some(Processing)], Readiness::Waiting),
            (&["a"], &[Some(Failed)], Readiness::Waiting),
            (
                &["a", "b"],
                &[Some(Pending), Some(Dead)],
                Readiness::Cancel("dependency `b` is dead".into()),
            ),
            (
                &["a"],
                &[None],
                Readiness::Cancel("dependency `a` has never run".into()),
            ),
        ];
        for (names, states, expected) in table {
            assert_eq!(
                decide(&after(names), states),
                expected,
                "{names:?} {states:?}"
            );
        }
        assert_eq!(
            decide(&after(&["a"]), &[Some(Cancelled)]),
            Readiness::Cancel("dependency `a` is cancelled".into())
        );
    }
}
