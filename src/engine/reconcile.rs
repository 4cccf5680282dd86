//! What a jobfile means for the queue: [`plan`] compares the definitions
//! with what the store holds and lists the actions that make them match.
//! Pure: the engine reads the state in and applies the plan
//! ([`crate::engine::Engine::apply`]), both in one transaction;
//! `queuectl plan` only prints it.
//!
//! - A one-shot definition is wanted "run to completion at its current
//!   spec" (command, env, cwd: [`JobDef::spec_hash`]). No job at this spec:
//!   enqueue one. A changed spec replaces a waiting job and reruns a
//!   finished one. A dead or cancelled job at the current spec stays so.
//! - Queue, priority, timeout, retry and `after` changes update waiting
//!   jobs in place and rerun nothing. Waiting jobs of scheduled and watched
//!   definitions take spec changes in place too (apply never enqueues them).
//! - A definition gone from the file: its waiting jobs are cancelled.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

pub use crate::driver::{LatestRun, WaitingJob};
use crate::job::JobState;
use crate::jobfile::{JobDef, Jobfile};
use crate::retry::RetryPolicy;

/// Why apply cancels the waiting jobs of a definition gone from the file.
pub const REMOVED: &str = "removed from the jobfile";

/// What the store holds, as far as reconciling goes.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// What each definition last did (kept when its jobs are pruned).
    pub latest: BTreeMap<String, LatestRun>,
    /// The waiting (pending or failed) jobs of each definition.
    pub waiting: BTreeMap<String, Vec<WaitingJob>>,
    /// Worker counts of the queues the last apply declared.
    pub queues: BTreeMap<String, u32>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Enqueue a job of a definition that has none at its spec.
    Enqueue { name: String, reason: String },
    /// Enqueue at a new spec, cancelling the waiting jobs of the old one.
    Requeue {
        name: String,
        reason: String,
        replaces: Vec<String>,
    },
    /// Change waiting jobs in place.
    Update {
        name: String,
        changes: Vec<Change>,
        ids: Vec<String>,
    },
    /// Cancel the waiting jobs of a definition no longer in the file.
    Cancel { name: String, ids: Vec<String> },
    /// A queue's worker count (None: not declared).
    Queue {
        name: String,
        from: Option<u32>,
        to: Option<u32>,
    },
}

/// A field of waiting jobs that an update changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// What `apply` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

/// Compares the jobfile with the store.
pub fn plan(jobfile: &Jobfile, stored: &Stored) -> Plan {
    plan_with(jobfile, stored, false)
}

/// [`plan`], and with `rerun` every one-shot job whose latest run is
/// finished runs again (`--rerun`).
pub fn plan_with(jobfile: &Jobfile, stored: &Stored, rerun: bool) -> Plan {
    let mut actions = Vec::new();
    for def in jobfile.jobs.values() {
        let waiting = stored
            .waiting
            .get(&def.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let cwd = cwd_of(def, &jobfile.dir);
        let latest = stored.latest.get(&def.name);
        let spec_changed =
            latest.is_some_and(|l| l.spec_hash.as_deref() != Some(def.spec_hash().as_str()));
        if def.is_one_shot() {
            match latest {
                None => actions.push(Action::Enqueue {
                    name: def.name.clone(),
                    reason: "new".into(),
                }),
                Some(latest) if spec_changed => actions.push(Action::Requeue {
                    name: def.name.clone(),
                    reason: spec_difference(latest, def, &cwd),
                    replaces: waiting.iter().map(|j| j.id.clone()).collect(),
                }),
                Some(latest) if rerun && latest.state.is_finished() => {
                    actions.push(Action::Requeue {
                        name: def.name.clone(),
                        reason: "rerun requested".into(),
                        replaces: waiting.iter().map(|j| j.id.clone()).collect(),
                    });
                }
                Some(latest) if was_removed(latest) => actions.push(Action::Enqueue {
                    name: def.name.clone(),
                    reason: "restored to the jobfile".into(),
                }),
                Some(latest) if was_blocked(latest) && dependencies_ok(def, stored) => {
                    actions.push(Action::Enqueue {
                        name: def.name.clone(),
                        reason: "its dependencies recovered".into(),
                    });
                }
                Some(_) => push_update(&mut actions, def, &cwd, waiting, false),
            }
        } else {
            push_update(&mut actions, def, &cwd, waiting, true);
        }
    }
    rerun_dependents(jobfile, stored, &mut actions);
    for (name, waiting) in &stored.waiting {
        if !jobfile.jobs.contains_key(name) && !waiting.is_empty() {
            actions.push(Action::Cancel {
                name: name.clone(),
                ids: waiting.iter().map(|j| j.id.clone()).collect(),
            });
        }
    }
    for (name, &workers) in &jobfile.queues {
        let from = stored.queues.get(name).copied();
        if from != Some(workers) {
            actions.push(Action::Queue {
                name: name.clone(),
                from,
                to: Some(workers),
            });
        }
    }
    for (name, &workers) in &stored.queues {
        if !jobfile.queues.contains_key(name) {
            actions.push(Action::Queue {
                name: name.clone(),
                from: Some(workers),
                to: None,
            });
        }
    }
    Plan { actions }
}

/// A job that runs again makes the one-shot jobs that wait for it (and
/// theirs in turn) run again too, once it has: their last run used what it
/// produced before. Dependents still waiting need nothing: they wait for
/// the new run already.
fn rerun_dependents(jobfile: &Jobfile, stored: &Stored, actions: &mut Vec<Action>) {
    let mut running_again: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Enqueue { name, .. } | Action::Requeue { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    loop {
        let mut added = false;
        for def in jobfile.jobs.values().filter(|d| d.is_one_shot()) {
            if running_again.contains(&def.name) {
                continue;
            }
            let Some(dep) = def.after.iter().find(|d| running_again.contains(d)) else {
                continue;
            };
            if !stored
                .latest
                .get(&def.name)
                .is_some_and(|l| l.state.is_finished())
            {
                continue;
            }
            let waiting = stored
                .waiting
                .get(&def.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            actions.retain(|a| !matches!(a, Action::Update { name, .. } if *name == def.name));
            actions.push(Action::Requeue {
                name: def.name.clone(),
                reason: format!("dependency `{dep}` runs again"),
                replaces: waiting.iter().map(|j| j.id.clone()).collect(),
            });
            running_again.push(def.name.clone());
            added = true;
        }
        if !added {
            return;
        }
    }
}

/// A job cancelled because its definition left the jobfile: that was not a
/// verdict on the job, so restoring the definition runs it again.
fn was_removed(job: &LatestRun) -> bool {
    job.state == JobState::Cancelled && (job.removed || job.reason.as_deref() == Some(REMOVED))
}

/// A job cancelled because a dependency was dead or cancelled.
fn was_blocked(job: &LatestRun) -> bool {
    job.state == JobState::Cancelled
        && job
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("dependency "))
}

/// No dependency's latest run is dead or cancelled.
fn dependencies_ok(def: &JobDef, stored: &Stored) -> bool {
    def.after.iter().all(|dep| {
        stored
            .latest
            .get(dep)
            .is_none_or(|j| !matches!(j.state, JobState::Dead | JobState::Cancelled))
    })
}

/// The working directory a definition runs in, as stored.
pub fn cwd_of(def: &JobDef, dir: &Path) -> String {
    def.resolved_cwd(dir).display().to_string()
}

fn spec_difference(stored: &LatestRun, def: &JobDef, cwd: &str) -> String {
    if stored.command != def.command {
        "command changed".into()
    } else if spec_env(&stored.env) != def.env {
        "env changed".into()
    } else if stored.cwd.as_deref() != Some(cwd) {
        "cwd changed".into()
    } else if let (Some(before), Some(now)) = (&stored.inputs, &def.inputs) {
        crate::jobfile::inputs::difference(before, now).unwrap_or_else(|| "spec changed".into())
    } else if stored.inputs.is_some() != def.inputs.is_some() {
        "sources changed".into()
    } else {
        "spec changed".into()
    }
}

/// Updates waiting jobs whose settings differ from the definition.
fn push_update(
    actions: &mut Vec<Action>,
    def: &JobDef,
    cwd: &str,
    waiting: &[WaitingJob],
    with_spec: bool,
) {
    let mut changes: Vec<Change> = Vec::new();
    let mut ids = Vec::new();
    for job in waiting {
        let diff = differences(job, def, cwd, with_spec);
        if !diff.is_empty() {
            ids.push(job.id.clone());
            for change in diff {
                if !changes.iter().any(|c| c.field == change.field) {
                    changes.push(change);
                }
            }
        }
    }
    if !ids.is_empty() {
        actions.push(Action::Update {
            name: def.name.clone(),
            changes,
            ids,
        });
    }
}

fn differences(job: &WaitingJob, def: &JobDef, cwd: &str, with_spec: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut check = |field: &'static str, from: String, to: String| {
        if from != to {
            changes.push(Change { field, from, to });
        }
    };
    if with_spec {
        check("command", job.command.clone(), def.command.clone());
        check(
            "env",
            format!("{:?}", spec_env(&job.env)),
            format!("{:?}", def.env),
        );
        check("cwd", job.cwd.clone().unwrap_or_default(), cwd.to_string());
    }
    check("queue", job.queue.clone(), def.queue.clone());
    check(
        "priority",
        job.priority.to_string(),
        def.priority.to_string(),
    );
    let timeout = def.timeout.map(crate::duration::as_millis_i64);
    check("timeout", millis(job.timeout_ms), millis(timeout));
    if job.retry != def.retry {
        // Two policies can differ where their summaries agree (jitter,
        // exit codes); say so rather than print "a -> a".
        let (from, to) = (describe_retry(&job.retry), describe_retry(&def.retry));
        let to = if from == to {
            format!("{to} (changed)")
        } else {
            to
        };
        check("retry", from, to);
    }
    check("after", job.after.join(","), def.after.join(","));
    changes
}

use crate::job::names::RESERVED_ENV;

/// A stored job's env without queuectl's own variables (jobs made before
/// payloads had their own column carried them in `env`).
pub fn spec_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_ENV))
        .cloned()
        .collect()
}

fn millis(ms: Option<i64>) -> String {
    ms.map_or("none".into(), |ms| {
        crate::duration::short(std::time::Duration::from_millis(ms.max(0) as u64))
    })
}

fn describe_retry(p: &RetryPolicy) -> String {
    format!("{}x base {}", p.max_retries, p.backoff_base)
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The lines of DESIGN.md's plan format, and the summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for action in &self.actions {
            let (sign, verb, name, detail) = match action {
                Action::Enqueue { name, reason } => ('+', "enqueue", name, reason.clone()),
                Action::Requeue { name, reason, .. } => ('~', "requeue", name, reason.clone()),
                Action::Update { name, changes, ids } => {
                    let what: Vec<String> = changes
                        .iter()
                        .map(|c| format!("{} {} -> {}", c.field, c.from, c.to))
                        .collect();
                    (
                        '~',
                        "update",
                        name,
                        format!("{} ({} pending)", what.join(", "), ids.len()),
                    )
                }
                Action::Cancel { name, ids } => (
                    '-',
                    "cancel",
                    name,
                    format!("removed from jobfile ({} pending)", ids.len()),
                ),
                Action::Queue { name, from, to } => match (from, to) {
                    (None, Some(to)) => ('+', "queue", name, format!("workers {to}")),
                    (Some(from), Some(to)) => {
                        ('~', "queue", name, format!("workers {from} -> {to}"))
                    }
                    _ => ('-', "queue", name, "removed from jobfile".to_string()),
                },
            };
            let _ = writeln!(out, "{sign} {verb:<8} {name:<16} {detail}");
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// `Plan: 2 to enqueue, 1 to update, 1 to cancel.` or `No changes.`
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "No changes.".into();
        }
        let count = |f: fn(&Action) -> bool| self.actions.iter().filter(|a| f(a)).count();
        format!(
            "Plan: {} to enqueue, {} to update, {} to cancel.",
            count(|a| matches!(a, Action::Enqueue { .. } | Action::Requeue { .. })),
            count(|a| matches!(a, Action::Update { .. })),
            count(|a| matches!(a, Action::Cancel { .. })),
        )
    }
}

#[cfg(test)]
mod tests;
