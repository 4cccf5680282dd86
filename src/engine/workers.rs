//! Worker processes in the engine: registration, the heartbeat that
//! renews the leases of a worker's jobs, stop requests.

use super::Engine;
use crate::driver::{Presence, Registration, StopMode, WorkerInfo};
use crate::error::Result;

impl Engine {
    /// Registers a worker process.
    pub fn register_worker(&mut self, worker: &Registration<'_>) -> Result<()> {
        self.write(|ops| ops.register_worker(worker))
    }

    /// Updates what a worker says it runs (its pools changed).
    pub fn update_worker(&mut self, id: i64, queues: &[String], slots: u32) -> Result<()> {
        self.write(|ops| ops.update_worker(id, queues, slots))
    }

    /// Records that `runner` is alive and extends the leases of its jobs to
    /// `lease_until`; or finds that it was declared dead.
    pub fn heartbeat(&mut self, runner: i64, lease_until: i64, now: i64) -> Result<Presence> {
        self.write(|ops| {
            let presence = ops.touch_worker(runner, now)?;
            if presence != Presence::Gone {
                ops.extend_leases(runner, lease_until)?;
            }
            Ok(presence)
        })
    }

    /// A worker's registration (its stop request), read without writing.
    pub fn presence(&mut self, runner: i64) -> Result<Presence> {
        self.read(|ops| ops.presence(runner))
    }

    /// Jobs of `runner` that a user asked to cancel while they run.
    pub fn cancel_requests(&mut self, runner: i64) -> Result<Vec<String>> {
        self.read(|ops| ops.cancel_requests(runner))
    }

    /// What a worker is asked, in one read: its registration (a stop
    /// request, or gone) and the cancel requests of its running jobs.
    pub fn requests(&mut self, runner: i64) -> Result<(Presence, Vec<String>)> {
        self.read(|ops| Ok((ops.presence(runner)?, ops.cancel_requests(runner)?)))
    }

    /// Removes a worker's row as it exits.
    pub fn deregister_worker(&mut self, runner: i64) -> Result<()> {
        self.write(|ops| ops.deregister_worker(runner))
    }

    /// Asks every registered worker to stop; returns them, and the jobs
    /// they were running when asked (id, definition): read in the same
    /// transaction, before any worker could act on the request.
    pub fn request_stop(&mut self, mode: StopMode) -> Result<StopRequested> {
        self.write(|ops| {
            ops.request_stop(mode)?;
            let workers = ops.workers()?;
            let ids: Vec<i64> = workers.iter().map(|w| w.id).collect();
            let running = ops.running_jobs(&ids)?;
            Ok(StopRequested { workers, running })
        })
    }
}

/// What [`Engine::request_stop`] asked.
#[derive(Debug)]
pub struct StopRequested {
    pub workers: Vec<WorkerInfo>,
    /// The jobs they were running: (id, definition).
    pub running: Vec<(String, Option<String>)>,
}
