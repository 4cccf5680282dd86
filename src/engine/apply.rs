//! Apply: read what the queue holds of the jobfile's definitions, plan
//! ([`super::reconcile::plan_with`], pure) and carry the plan out, in one
//! transaction so that nothing moves between the two.

use std::collections::BTreeMap;

use super::reconcile::{self, Action, Plan, Stored};
use super::{Engine, deps};
use crate::driver::{JobUpdate, Ops};
use crate::error::Result;
use crate::job::names::RESERVED_ENV;
use crate::job::{NewJob, Origin};
use crate::jobfile::Jobfile;

/// Why apply cancels the waiting jobs of an old spec.
const REPLACED: &str = "replaced by a new spec";

impl Engine {
    /// What the queue holds of the jobfile's definitions and queues.
    pub fn stored(&mut self) -> Result<Stored> {
        self.read(read_stored)
    }

    /// What applying `jobfile` would do now.
    pub fn plan(&mut self, jobfile: &Jobfile, rerun: bool) -> Result<Plan> {
        let stored = self.stored()?;
        Ok(reconcile::plan_with(jobfile, &stored, rerun))
    }

    /// Makes the queue match `jobfile` (with `rerun`, every one-shot job
    /// runs again); returns what was done.
    pub fn apply(
        &mut self,
        jobfile: &Jobfile,
        commit: Option<&str>,
        now: i64,
        rerun: bool,
    ) -> Result<Plan> {
        self.write(|ops| {
            let stored = read_stored(ops)?;
            let plan = reconcile::plan_with(jobfile, &stored, rerun);
            let changed = apply_plan(ops, jobfile, &stored, &plan, commit, now)?;
            let declared: Vec<String> = jobfile.jobs.keys().cloned().collect();
            ops.mark_removed(&declared, now)?;
            deps::settle(ops, changed, now)?;
            Ok(plan)
        })
    }

    /// The queue limits the last apply declared.
    pub fn declared_queues(&mut self) -> Result<BTreeMap<String, u32>> {
        self.read(|ops| ops.queue_limits())
    }
}

fn read_stored(ops: &mut dyn Ops) -> Result<Stored> {
    let mut stored = Stored {
        queues: ops.queue_limits()?,
        latest: ops.latest_runs()?,
        ..Stored::default()
    };
    for job in ops.waiting_of_definitions()? {
        stored
            .waiting
            .entry(job.definition.clone())
            .or_default()
            .push(job);
    }
    Ok(stored)
}

/// Carries out `plan`; returns the definitions whose latest run moved.
fn apply_plan(
    ops: &mut dyn Ops,
    jobfile: &Jobfile,
    stored: &Stored,
    plan: &Plan,
    commit: Option<&str>,
    now: i64,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    let mut new_jobs: Vec<NewJob> = Vec::new();
    for action in &plan.actions {
        match action {
            Action::Enqueue { name, .. } | Action::Requeue { name, .. } => {
                if let Action::Requeue { replaces, .. } = action {
                    ops.cancel_waiting(replaces, REPLACED, now)?;
                }
                if let Some(def) = jobfile.jobs.get(name) {
                    let job = def.new_job(&jobfile.dir, Origin::Jobfile, commit, now);
                    changed.push(name.clone());
                    changed.extend(job.after.iter().cloned());
                    new_jobs.push(job);
                }
            }
            Action::Update { name, ids, .. } => {
                let Some(def) = jobfile.jobs.get(name) else {
                    continue;
                };
                let cwd = reconcile::cwd_of(def, &jobfile.dir);
                let spec_hash = def.spec_hash();
                let timeout_ms = def.timeout.map(crate::duration::as_millis_i64);
                for id in ids {
                    // The definition's env, and what queuectl gave this job
                    // itself in its env before payloads had their own column.
                    let mut env = def.env.clone();
                    if let Some(job) = stored
                        .waiting
                        .get(name)
                        .and_then(|jobs| jobs.iter().find(|j| &j.id == id))
                    {
                        env.extend(
                            job.env
                                .iter()
                                .filter(|(k, _)| k.starts_with(RESERVED_ENV))
                                .cloned(),
                        );
                    }
                    ops.update_waiting(
                        id,
                        &JobUpdate {
                            command: &def.command,
                            env: &env,
                            cwd: Some(&cwd),
                            queue: &def.queue,
                            priority: def.priority,
                            timeout_ms,
                            retry: &def.retry,
                            after: &def.after,
                            spec_hash: &spec_hash,
                            now,
                        },
                    )?;
                }
                // Its dependencies may be others now: the cascade
                // re-decides it from theirs; with none, it is ready.
                if def.after.is_empty() {
                    ops.set_blocked(ids, false)?;
                }
                changed.extend(def.after.iter().cloned());
            }
            Action::Cancel { name, ids } => {
                ops.cancel_waiting(ids, reconcile::REMOVED, now)?;
                changed.push(name.clone());
            }
            Action::Queue { name, to, .. } => ops.set_queue_limit(name, *to)?,
        }
    }
    ops.insert_jobs(&new_jobs)?;
    Ok(changed)
}
