//! Claims and finishes: which ready jobs a worker may take, and the
//! recorded end of an attempt with the next claim in one transaction.
//!
//! A queue's declared `workers` is its limit on the whole database: a
//! claim counts the queue's running jobs in its own transaction (writes
//! are serialized, so no two claims count the same state) and skips every
//! queue at its limit. The limits are the ones the last apply recorded,
//! and those of the claiming process's own jobfile: where both declare a
//! queue, the lower one holds. A process's slots (`--workers`,
//! `--count`) are its own capacity, not a limit of any queue. A paused
//! queue (`queue pause`, a row of the driver's) is skipped the same way,
//! whatever its limit.

use std::collections::BTreeMap;

use super::{Ended, Engine, deps};
use crate::driver::{ClaimParams, Ops, QueueFilter};
use crate::error::Result;
use crate::job::Claimed;

/// What a worker slot asks for.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// The registered worker claiming.
    pub runner: i64,
    pub queues: &'a QueueFilter,
    /// The limits of this process's jobfile (beside the recorded ones).
    pub limits: &'a BTreeMap<String, u32>,
    pub lease_until: i64,
    pub now: i64,
    /// At most this many jobs.
    pub count: usize,
}

/// An attempt that ended, as [`Engine::finish`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    pub job: &'a Claimed,
    /// The id it was claimed under.
    pub runner: i64,
    /// What its end means (see [`super::finish::judge`]).
    pub ended: &'a Ended,
    pub exit_code: Option<i32>,
    pub output_bytes: u64,
    pub now: i64,
}

/// The limits in force: each queue's lowest declared limit.
pub fn effective_limits(
    recorded: BTreeMap<String, u32>,
    local: &BTreeMap<String, u32>,
) -> BTreeMap<String, u32> {
    let mut limits = recorded;
    for (queue, &limit) in local {
        limits
            .entry(queue.clone())
            .and_modify(|l| *l = (*l).min(limit))
            .or_insert(limit);
    }
    limits
}

/// The queues a claim must skip: those whose running jobs reached their limit.
pub fn full_queues(limits: &BTreeMap<String, u32>, running: &BTreeMap<String, u32>) -> Vec<String> {
    limits
        .iter()
        .filter(|(queue, limit)| running.get(*queue).copied().unwrap_or(0) >= **limit)
        .map(|(queue, _)| queue.clone())
        .collect()
}

fn params<'a>(request: &ClaimRequest<'a>, exclude: &'a [String], limit: usize) -> ClaimParams<'a> {
    ClaimParams {
        runner: request.runner,
        queues: request.queues,
        exclude,
        lease_until: request.lease_until,
        now: request.now,
        limit,
    }
}

/// The limits that bear on the request's queues, and how many jobs of
/// each of those queues run now.
fn limits_and_running(
    ops: &mut dyn Ops,
    request: &ClaimRequest<'_>,
) -> Result<(BTreeMap<String, u32>, BTreeMap<String, u32>)> {
    let limits: BTreeMap<String, u32> = effective_limits(ops.queue_limits()?, request.limits)
        .into_iter()
        .filter(|(queue, _)| request.queues.allows(queue))
        .collect();
    if limits.is_empty() {
        return Ok((limits, BTreeMap::new()));
    }
    let names: Vec<String> = limits.keys().cloned().collect();
    let running = names
        .iter()
        .cloned()
        .zip(ops.running_counts(&names)?)
        .collect();
    Ok((limits, running))
}

/// The paused queues among the request's (`queuectl queue pause`): a
/// claim skips them whatever their limits.
fn paused_in(ops: &mut dyn Ops, request: &ClaimRequest<'_>) -> Result<Vec<String>> {
    Ok(ops
        .paused_queues()?
        .into_keys()
        .filter(|queue| request.queues.allows(queue))
        .collect())
}

/// Whether a claim would take a job now, read without the write lock.
fn claimable_in(ops: &mut dyn Ops, request: &ClaimRequest<'_>) -> Result<bool> {
    let (limits, running) = limits_and_running(ops, request)?;
    let mut skip = full_queues(&limits, &running);
    skip.extend(paused_in(ops, request)?);
    ops.claimable(&params(request, &skip, 1))
}

/// Claims in the caller's transaction.
pub(super) fn claim_in(ops: &mut dyn Ops, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
    let paused = paused_in(ops, request)?;
    let (limits, mut running) = limits_and_running(ops, request)?;
    if limits.is_empty() {
        return ops.claim_jobs(&params(request, &paused, request.count));
    }
    let mut claimed = Vec::new();
    while claimed.len() < request.count {
        let mut full = full_queues(&limits, &running);
        full.extend(paused.iter().cloned());
        let Some(job) = ops
            .claim_jobs(&params(request, &full, 1))?
            .into_iter()
            .next()
        else {
            break;
        };
        *running.entry(job.queue.clone()).or_default() += 1;
        claimed.push(job);
    }
    Ok(claimed)
}

impl Engine {
    /// Claims up to `request.count` ready jobs. A read first: a worker
    /// that would find nothing (every job taken, its queues at their
    /// limit) never takes the write lock, however often it is woken.
    pub fn claim(&mut self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        if !self.read(|ops| claimable_in(ops, request))? {
            return Ok(Vec::new());
        }
        self.write(|ops| claim_in(ops, request))
    }

    /// Records how an attempt ended (`done`) if its job is still the
    /// runner's, lets its dependents move, and claims the slot's next jobs
    /// (`next`), in one transaction. Returns whether the attempt was
    /// still the runner's: false when the worker was declared dead and the
    /// job rescued meanwhile; then nothing is written and nothing claimed.
    pub fn finish(
        &mut self,
        done: &Done<'_>,
        next: Option<&ClaimRequest<'_>>,
    ) -> Result<(bool, Vec<Claimed>)> {
        let params = done.ended.params(
            done.job,
            done.runner,
            done.exit_code,
            done.output_bytes,
            done.now,
        );
        self.write(|ops| {
            if !ops
                .finish_attempts(&[params])?
                .first()
                .copied()
                .unwrap_or(false)
            {
                return Ok((false, Vec::new()));
            }
            if let Some(definition) = &done.job.definition {
                deps::settle(ops, [definition.clone()], done.now)?;
            }
            if params.state.is_waiting() {
                deps::recheck(ops, std::slice::from_ref(&done.job.id), done.now)?;
            }
            let claimed = match next {
                Some(request) => claim_in(ops, request)?,
                None => Vec::new(),
            };
            Ok((true, claimed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(q, n)| (q.to_string(), *n)).collect()
    }

    #[test]
    fn the_lower_limit_holds() {
        assert_eq!(
            effective_limits(
                map(&[("deploy", 2), ("default", 4)]),
                &map(&[("deploy", 1), ("batch", 3)])
            ),
            map(&[("batch", 3), ("default", 4), ("deploy", 1)])
        );
        assert_eq!(
            effective_limits(map(&[("deploy", 1)]), &map(&[("deploy", 5)])),
            map(&[("deploy", 1)])
        );
    }

    #[test]
    fn queues_at_their_limit_are_skipped() {
        let limits = map(&[("deploy", 1), ("default", 2)]);
        assert_eq!(full_queues(&limits, &map(&[])), Vec::<String>::new());
        assert_eq!(
            full_queues(&limits, &map(&[("deploy", 1), ("default", 1)])),
            vec!["deploy".to_string()]
        );
        assert_eq!(
            full_queues(
                &limits,
                &map(&[("deploy", 3), ("default", 2), ("other", 9)])
            ),
            vec!["default".to_string(), "deploy".to_string()]
        );
        // A limit of 0 holds every job of the queue.
        assert_eq!(
            full_queues(&map(&[("off", 0)]), &map(&[])),
            vec!["off".to_string()]
        );
    }
}
