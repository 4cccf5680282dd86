//! The supervisor follows its jobfile: an edit is read and validated; a
//! broken one is reported once and the last good file kept; a good one
//! is applied (by the `run` that owns the queue) and the pools resized
//! live. An edit that would cancel waiting jobs is held until the file
//! has settled ([`Held`]).

use crate::events::Sender;
use std::time::Instant;

use super::SETTLE;
use super::pools::{check_pools, pools};
use super::slot::PoolMode;
use super::supervisor::Supervisor;
use super::triggers::Scheduler;
use crate::clock::now_ms;
use crate::engine::reconcile::{Action, Plan};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::jobfile::{Jobfile, Trigger, jobfile_commit};
use crate::sys::files::{MAX_JOBFILE_BYTES, read_regular};
use crate::trigger::watch::TriggerWatch;

/// An edit of the jobfile held until it settles (see [`SETTLE`]).
#[derive(Debug)]
pub(super) struct Held {
    /// The file as it read.
    text: String,
    /// When it may be applied, if the file still reads the same.
    pub(super) until: Instant,
}

/// The definitions a plan drops that have jobs waiting to run: what
/// applying it would cancel.
fn removed_with_waiting_jobs(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::Cancel { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The triggers of a jobfile of one kind (schedules, or watches), to tell
/// whether an edit changed them.
fn triggers_of(jobfile: Option<&Jobfile>, schedules: bool) -> Vec<(String, Trigger)> {
    jobfile
        .map(|j| {
            j.jobs
                .values()
                .filter(|d| {
                    matches!(d.trigger, Trigger::Schedule(_)) == schedules && !d.is_one_shot()
                })
                .map(|d| (d.name.clone(), d.trigger.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reports a broken edit once: the same error again (the file touched,
/// not fixed) says nothing new.
fn config_error(events: &Sender, rejected: &mut Option<String>, e: Error) {
    let message = format!("{e}\nkept running on the last good jobfile");
    if rejected.as_deref() != Some(message.as_str()) {
        events.send(Event::ConfigError {
            message: message.clone(),
        });
        *rejected = Some(message);
    }
}

impl Supervisor<'_> {
    /// The jobfile changed: validate it; keep the last good one on an
    /// error; else apply it (if this process owns the queue) and resize.
    ///
    /// An edit whose plan would cancel jobs (it drops definitions that have
    /// waiting jobs) is held until the file has stayed the same for
    /// [`SETTLE`] and reads the same again (`settled`): a file that is
    /// briefly empty or half-written (`cat > queuectl.toml`, an editor that
    /// writes in place, a checkout) then cancels nothing.
    pub(super) fn reload(&mut self, settled: bool) -> Result<()> {
        let Some(path) = self.jobfile.as_ref().map(|j| j.path.clone()) else {
            return Ok(());
        };
        let loaded = read_regular(&path, MAX_JOBFILE_BYTES, "the jobfile").and_then(|text| {
            let mut jobfile = crate::jobfile::parse(&text, &path).map_err(Error::Jobfile)?;
            jobfile.read_inputs()?;
            Ok((jobfile, text))
        });
        let (jobfile, text) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                self.held = None;
                config_error(self.events, &mut self.rejected, e);
                return Ok(());
            }
        };
        self.rejected = None;
        let new = pools(self.options.count, &self.options.queues, Some(&jobfile));
        if let Err(e) = check_pools(&new) {
            self.held = None;
            config_error(self.events, &mut self.rejected, e);
            return Ok(());
        }
        let owns = self.role.owns();
        if owns {
            let confirmed = settled && self.held.as_ref().is_some_and(|h| h.text == text);
            let removed = removed_with_waiting_jobs(&self.engine.plan(&jobfile, false)?);
            if !removed.is_empty() && !confirmed {
                if self.held.as_ref().is_none_or(|h| h.text != text) {
                    self.events.send(Event::Warning {
                        message: format!(
                            "the jobfile no longer declares {}, which have waiting jobs: they are cancelled once the file stays as it is for {}",
                            removed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                            crate::duration::short(SETTLE)
                        ),
                    });
                    self.held = Some(Held {
                        text,
                        until: Instant::now() + SETTLE,
                    });
                }
                return Ok(());
            }
            self.held = None;
            let plan =
                self.engine
                    .apply(&jobfile, jobfile_commit(&path).as_deref(), now_ms(), false)?;
            if !plan.is_empty() {
                self.events.send(Event::Applied {
                    plan: plan.render().lines().map(str::to_string).collect(),
                });
            }
        }
        for pool in &new {
            let old = self
                .desired
                .iter()
                .find(|p| p.label == pool.label)
                .map_or(0, |p| p.slots);
            if old != pool.slots {
                self.events.send(Event::Resized {
                    pool: pool.label.clone(),
                    from: old,
                    to: pool.slots,
                });
            }
        }
        // Rebuild the scheduler and the watches only when their definitions
        // changed: a new watch would miss the changes made while it starts.
        if owns {
            if triggers_of(self.jobfile.as_ref(), true) != triggers_of(Some(&jobfile), true) {
                self.scheduler = Scheduler::new(&jobfile);
            }
            if self.options.follow_jobfile
                && triggers_of(self.jobfile.as_ref(), false) != triggers_of(Some(&jobfile), false)
            {
                self.triggers = self.watch_triggers(&jobfile);
            } else if let Some(triggers) = &mut self.triggers {
                // The watches go on; their ignore files outside the
                // watched directory (a parent's, git's global) are read
                // again with the jobfile.
                triggers.reload_ignore_files();
            }
        }
        self.jobfile = Some(jobfile);
        if self.shared.mode() == PoolMode::Run {
            self.resize(new)?;
        }
        Ok(())
    }

    /// The watch triggers of `jobfile`; a watch that cannot start is
    /// reported, not fatal.
    pub(super) fn watch_triggers(&self, jobfile: &Jobfile) -> Option<TriggerWatch> {
        match TriggerWatch::new(jobfile)? {
            Ok(watch) => Some(watch),
            Err(e) => {
                self.events.send(Event::Warning {
                    message: format!(
                        "cannot watch `{}` for the jobs' `watch` triggers: {e}",
                        jobfile.dir.display()
                    ),
                });
                None
            }
        }
    }
}
