//! Who the worker is in the queue: its registration under a random id,
//! what its registration says (a stop request, or that another worker
//! declared it dead), rejoining under a new id, and the rescue of the jobs
//! of the workers this process sees dead.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::pools::{Pool, labels};
use super::slot::PoolMode;
use super::supervisor::{Identity, Supervisor};
use crate::clock::now_ms;
use crate::driver::{Presence, Registration, StopMode};
use crate::duration::as_millis_i64;
use crate::engine::{Engine, random_unit};
use crate::error::Result;
use crate::events::Event;
use crate::exec::{KILL_GRACE, StopReason};
use crate::liveness::{Liveness, Verdict};
use crate::sys::host;

/// Registers a worker process under a new random id; returns it.
pub(super) fn register(engine: &mut Engine, identity: &Identity, pools: &[Pool]) -> Result<i64> {
    let id = host::random_id();
    engine.register_worker(&Registration {
        id,
        pid: std::process::id(),
        host: &identity.host,
        process_view: identity.view.as_deref(),
        queues: &labels(pools),
        slots: pools.iter().map(|p| p.slots).sum(),
        lease_ms: as_millis_i64(identity.lease),
        now: now_ms(),
    })?;
    Ok(id)
}

impl Supervisor<'_> {
    /// This worker's stop request, and cancel requests for its jobs.
    pub(super) fn check_requests(&mut self) -> Result<()> {
        let (presence, cancels) = self.engine.requests(self.shared.runner())?;
        self.follow(presence);
        for id in cancels {
            self.each_slot(|s| {
                if s.current().as_deref() == Some(id.as_str()) {
                    s.control.stop(StopReason::Cancel);
                }
            });
        }
        Ok(())
    }

    /// What this worker's registration says: a stop request to follow, or
    /// that it was declared dead.
    pub(super) fn follow(&mut self, presence: Presence) {
        match presence {
            Presence::Alive(Some(StopMode::Force)) => {
                self.stop(PoolMode::Force, "worker stop --force");
            }
            Presence::Alive(Some(StopMode::Drain)) => self.stop(PoolMode::Drain, "worker stop"),
            Presence::Alive(None) => {}
            Presence::Gone => self.declared_dead(),
        }
    }

    /// Another worker declared this one dead (it was silent past its lease:
    /// suspended, or starved) and rescued its jobs. Claim nothing, stop the
    /// running jobs (their results would be discarded anyway: the rescuer's
    /// history stands), and rejoin under a new id once they have stopped.
    pub(super) fn declared_dead(&mut self) {
        if self.rejoining {
            return;
        }
        self.rejoining = true;
        self.shared.suspended.store(true, Ordering::SeqCst);
        let mut stopped = Vec::new();
        self.each_slot(|slot| {
            if let Some(id) = slot.current() {
                slot.control.stop(StopReason::Rescued);
                stopped.push(id);
            }
        });
        if !stopped.is_empty() {
            self.kill_deadline
                .get_or_insert(Instant::now() + KILL_GRACE);
        }
        self.events.send(Event::DeclaredDead {
            stopped,
            lease_ms: u64::try_from(self.identity.lease.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Registers again, under a new id, after being declared dead.
    pub(super) fn rejoin(&mut self) -> Result<()> {
        let id = register(&mut self.engine, &self.identity, &self.desired)?;
        self.shared.set_runner(id);
        self.liveness = Liveness::default();
        self.rejoining = false;
        if self.shared.mode() == PoolMode::Run {
            // The jobs it stopped have ended: nothing is left to kill, and
            // the jobs it claims from now on are not to be.
            self.kill_deadline = None;
        }
        self.shared.suspended.store(false, Ordering::SeqCst);
        self.shared.waker.notify();
        Ok(())
    }

    /// Declares dead the workers this process saw die (see
    /// [`crate::liveness`]) and rescues their jobs, and any job whose
    /// worker is no longer registered.
    pub(super) fn rescue(&mut self) -> Result<()> {
        let workers = self.engine.workers()?;
        let dead = self.liveness.judge(
            &workers,
            self.shared.runner(),
            self.identity.view.as_deref(),
            Instant::now(),
            |pid| pid == std::process::id() || host::pid_alive(pid),
        );
        if dead.is_empty() && !self.engine.has_orphaned_jobs()? {
            return Ok(());
        }
        let named: Vec<(i64, i64)> = dead.iter().map(|d| (d.id, d.heartbeat_at)).collect();
        let reclaimed = self.engine.rescue(&named, now_ms(), random_unit())?;
        for worker in &dead {
            if worker.verdict == Verdict::Gone
                && reclaimed.workers.iter().any(|(id, ..)| *id == worker.id)
            {
                // Its orphans would run on beside the rescued jobs.
                self.containment.kill_remains_of(worker.id);
            }
        }
        let worker = match dead.as_slice() {
            [one] => one.describe(),
            [] => "a worker no longer registered".to_string(),
            many => format!("{} dead workers", many.len()),
        };
        for (id, dead) in reclaimed.jobs {
            self.events.send(Event::Reclaimed {
                id,
                dead,
                worker: worker.clone(),
            });
        }
        Ok(())
    }
}
