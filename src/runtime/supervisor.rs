//! The supervisor of a worker process, as named steps.
//!
//! [`Supervisor::run`] starts the watches and the pools, then loops over
//! its steps until every slot has ended:
//!
//! 1. [`wait_for_change`](Supervisor::wait_for_change): the change feed
//!    (a commit by any process) or at most [`MAX_TICK`]; while every slot
//!    is busy, coalesce for [`BUSY_TICK`] (busy slots claim their next job
//!    themselves, in the transaction that finishes the last one);
//! 2. [`signals`](Supervisor::signals): the first SIGINT/SIGTERM drains,
//!    the second forces;
//! 3. [`database_changed`](Supervisor::database_changed): wake idle slots
//!    (how a job enqueued by another process starts within milliseconds,
//!    without polling), read this worker's stop request and its jobs'
//!    cancel requests, report the queue's counts;
//! 4. [`follow_jobfile`](Supervisor::follow_jobfile): with `run`, an edit
//!    is validated, then applied (by the owner) and the pools resized;
//! 5. [`follow_registration`](Supervisor::follow_registration): a slot
//!    found its job rescued, or the worker may rejoin after being
//!    declared dead;
//! 6. [`follow_owner`](Supervisor::follow_owner): an extra `run` takes
//!    the queue over when its owner is gone; an owner whose lease was
//!    taken runs on as an extra;
//! 7. [`fire_triggers`](Supervisor::fire_triggers): the owner enqueues
//!    debounced watch batches and due cron ticks;
//! 8. [`maintenance`](Supervisor::maintenance): every heartbeat, renew
//!    the leases, rescue dead workers' jobs, cap the dead letter queue,
//!    prune past `keep_finished`;
//! 9. [`idle_and_deadlines`](Supervisor::idle_and_deadlines):
//!    `--until-idle` with nothing left, the end of the grace period, the
//!    kill deadline;
//! 10. [`reap`](Supervisor::reap): join the slots that ended.
//!
//! A step that fails (a store that fails, a thread that cannot start)
//! goes through one path, [`Supervisor::fail`]: the pools stop claiming,
//! running jobs are stopped and return to the queue, every slot is
//! joined; only then does the process deregister and exit with the error.

use crate::events::Sender;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use signal_hook::consts::SIGINT;

use super::jobfile::Held;
use super::pools::{Pool, labels, pools, served};
use super::registration::register;
use super::signals::SignalWatch;
use super::slot::{self, PoolConfig, PoolMode, Shared, SlotState};
use super::triggers::Scheduler;
use super::{
    BUSY_TICK, DLQ_MAX_AGE, DLQ_MAX_JOBS, MAX_TICK, Options, Role, Summary, heartbeat_every,
    limits_of,
};
use crate::clock::now_ms;
use crate::driver::{ChangeFeed, Durability, OwnerLock, QueueFilter};
use crate::duration::as_millis_i64;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::exec::{KILL_GRACE, StopReason};
use crate::job::JobState;
use crate::jobfile::{DEFAULT_LOG_MAX_BYTES, Jobfile};
use crate::liveness::Liveness;
use crate::sys::contain::Containment;
use crate::sys::host;
use crate::trigger::watch::{JobfileWatch, TriggerWatch};

/// How often finished jobs past `keep_finished` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often queue counts are reported at most.
const COUNTS_EVERY: Duration = Duration::from_millis(200);

/// Who this worker process is: its machine, the processes it sees, its
/// lease and how often it proves it is alive.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) host: String,
    pub(super) view: Option<String>,
    pub(super) lease: Duration,
    pub(super) heartbeat: Duration,
}

/// A running slot.
struct SlotHandle {
    state: Arc<SlotState>,
    thread: JoinHandle<Result<()>>,
}

/// A running pool.
struct PoolHandle {
    config: Arc<PoolConfig>,
    slots: Vec<SlotHandle>,
}

/// When the periodic steps come round next.
#[derive(Debug)]
struct Clock {
    heartbeat: Instant,
    prune: Instant,
    counts: Instant,
    /// When to look at the queue's ownership next.
    owner: Instant,
    /// The queue changed since counts were last reported.
    counts_dirty: bool,
}

pub(super) struct Supervisor<'a> {
    pub(super) options: &'a Options,
    /// Who this process is in its queue now: an extra `run` becomes the
    /// owner when the owner goes ([`Supervisor::follow_owner`]).
    pub(super) role: Role,
    /// A `run`'s hold on the queue's ownership, held or not.
    owner: Option<Box<dyn OwnerLock>>,
    pub(super) engine: Engine,
    pub(super) identity: Identity,
    /// What this process saw of the other workers' heartbeats.
    pub(super) liveness: Liveness,
    /// How the slots keep their jobs' processes together.
    pub(super) containment: Containment,
    /// Declared dead by another worker: waiting for the slots to stop their
    /// jobs before registering again.
    pub(super) rejoining: bool,
    /// An edit of the jobfile that would cancel jobs, held until the file
    /// has stayed the same for [`super::SETTLE`].
    pub(super) held: Option<Held>,
    /// The last report of a broken jobfile, not to repeat it.
    pub(super) rejected: Option<String>,
    pub(super) shared: Arc<Shared>,
    pools: BTreeMap<String, PoolHandle>,
    pub(super) desired: Vec<Pool>,
    /// The last good jobfile.
    pub(super) jobfile: Option<Jobfile>,
    pub(super) events: &'a Sender,
    pub(super) signals: &'a SignalWatch,
    pub(super) feed: Option<Box<dyn ChangeFeed>>,
    pub(super) jobfile_watch: Option<JobfileWatch>,
    pub(super) drain_deadline: Option<Instant>,
    pub(super) kill_deadline: Option<Instant>,
    /// A slot that failed: the process stops, and exits with its error.
    pub(super) fatal: Option<Error>,
    pub(super) seen_signals: usize,
    /// The cron schedules, in the `run` that owns the queue.
    pub(super) scheduler: Option<Scheduler>,
    /// The file-watch triggers, likewise (and not with `--no-watch`).
    pub(super) triggers: Option<TriggerWatch>,
    /// The number the next slot started gets.
    pub(super) next_slot: usize,
    clock: Clock,
}

/// Registers the process, runs the supervisor, and deregisters.
pub(super) fn supervise(
    mut engine: Engine,
    options: &Options,
    owner: Option<Box<dyn OwnerLock>>,
    events: &Sender,
) -> Result<Summary> {
    let lease = options
        .jobfile
        .as_ref()
        .map_or(super::LEASE, |j| j.settings.lease);
    let identity = Identity {
        host: host::hostname(),
        view: host::process_view(),
        lease,
        heartbeat: heartbeat_every(lease),
    };
    let initial = pools(options.count, &options.queues, options.jobfile.as_ref());
    let runner = register(&mut engine, &identity, &initial)?;
    let containment = Containment::setup(runner);
    let signals = SignalWatch::start(options.ignore_hangup)?;
    let owns = options.role.owns();
    debug_assert_eq!(
        owns,
        owner.as_ref().is_some_and(|l| l.holder().is_none()),
        "a run's role is its lock's"
    );
    let mut supervisor = Supervisor {
        options,
        role: options.role,
        owner,
        engine,
        identity,
        liveness: Liveness::default(),
        containment,
        rejoining: false,
        held: None,
        rejected: None,
        shared: Arc::new(Shared::new(runner, limits_of(options.jobfile.as_ref()))),
        pools: BTreeMap::new(),
        desired: initial.clone(),
        jobfile: options.jobfile.clone(),
        events,
        signals: &signals,
        feed: None,
        jobfile_watch: None,
        drain_deadline: None,
        kill_deadline: None,
        fatal: None,
        seen_signals: 0,
        scheduler: options
            .jobfile
            .as_ref()
            .filter(|_| owns)
            .and_then(Scheduler::new),
        triggers: None,
        next_slot: 0,
        clock: Clock {
            heartbeat: Instant::now(),
            owner: Instant::now(),
            prune: Instant::now(),
            counts: Instant::now(),
            counts_dirty: true,
        },
    };
    if let Some(jobfile) = options
        .jobfile
        .as_ref()
        .filter(|_| owns && options.follow_jobfile)
    {
        supervisor.triggers = supervisor.watch_triggers(jobfile);
    }
    let result = supervisor.run(initial);
    signals.close();
    supervisor.containment.finish();
    let runner = supervisor.shared.runner();
    let deregistered = supervisor.engine.deregister_worker(runner);
    // A store that failed after jobs ran: what was recorded before stands.
    let summary = result.map_err(Error::after_work)?;
    deregistered.map_err(Error::after_work)?;
    Ok(summary)
}

impl Supervisor<'_> {
    /// Runs until every slot has ended; a step that fails stops the pools
    /// first ([`Supervisor::fail`]).
    fn run(&mut self, initial: Vec<Pool>) -> Result<Summary> {
        match self.start(initial).and_then(|()| self.run_steps()) {
            Ok(()) => {}
            Err(error) => return Err(self.fail(error)),
        }
        if let Some(error) = self.fatal.take() {
            return Err(error);
        }
        Ok(Summary {
            completed: self.shared.completed.load(Ordering::SeqCst),
            dead: self.shared.dead.load(Ordering::SeqCst),
            signal: (self.seen_signals > 0).then(|| self.signals.last()),
        })
    }

    /// The loop: one pass of every step, until every slot has ended.
    fn run_steps(&mut self) -> Result<()> {
        // `--until-idle` on an empty queue stops before the first wait.
        self.idle_and_deadlines()?;
        loop {
            let changed = self.wait_for_change()?;
            self.signals();
            if changed {
                self.database_changed()?;
            }
            self.report_counts()?;
            self.follow_jobfile()?;
            self.follow_registration()?;
            self.follow_owner()?;
            self.fire_triggers()?;
            self.maintenance()?;
            self.idle_and_deadlines()?;
            self.reap();
            if self.shared.mode() != PoolMode::Run
                && self.pools.values().all(|p| p.slots.is_empty())
            {
                return Ok(());
            }
        }
    }

    /// Rescues what dead workers left, watches the database and the
    /// jobfile, says it is ready, and starts the pools.
    fn start(&mut self, initial: Vec<Pool>) -> Result<()> {
        self.rescue()?;
        let ready = Event::Ready {
            pid: std::process::id(),
            slots: initial.iter().map(|p| p.slots).sum(),
            queues: labels(&initial),
        };
        // Watch before anything runs, then look at the jobfile once more:
        // an edit made since it was loaded (or during startup) is not lost.
        self.feed = Some(self.engine.change_feed()?);
        if self.options.role != Role::Worker && self.options.follow_jobfile {
            self.jobfile_watch = self
                .jobfile
                .as_ref()
                .and_then(|j| JobfileWatch::new(&j.path).ok());
        }
        // Every watch is up: "ready" means ready. Then the pools start, from
        // the jobfile as it is now (an edit since it was loaded counts).
        self.events.send(ready);
        if self.jobfile_watch.is_some() {
            self.reload(false)?;
        }
        if self.pools.is_empty() {
            self.resize(initial)?;
        }
        self.clock.heartbeat = Instant::now() + self.identity.heartbeat;
        Ok(())
    }

    /// Step 1: waits for a commit by any process, at most until the next
    /// heartbeat or [`MAX_TICK`].
    fn wait_for_change(&mut self) -> Result<bool> {
        let active = self.active_slots();
        if active > 0 && self.shared.busy.load(Ordering::SeqCst) >= active {
            thread::sleep(BUSY_TICK);
        }
        // Stopping, the slots end on their own: look at them often.
        let tick = if self.shared.mode() == PoolMode::Run {
            MAX_TICK
        } else {
            BUSY_TICK
        };
        let timeout = tick.min(
            self.clock
                .heartbeat
                .saturating_duration_since(Instant::now()),
        );
        match self.feed.as_mut() {
            Some(feed) => feed.wait(timeout),
            None => Ok(false),
        }
    }

    /// Step 2: the first SIGINT/SIGTERM drains, the second forces.
    fn signals(&mut self) {
        let received = self.signals.count();
        if received > self.seen_signals {
            self.seen_signals = received;
            let mode = if received >= 2 {
                PoolMode::Force
            } else {
                PoolMode::Drain
            };
            let reason = format!("received {}", self.signals.name());
            let again = match self.signals.last() {
                SIGINT => "Ctrl-C",
                _ => "the same signal",
            };
            self.stop_with(mode, &reason, Some(again));
        }
    }

    /// Step 3: another process committed: wake the idle slots, read this
    /// worker's stop request and its jobs' cancel requests.
    fn database_changed(&mut self) -> Result<()> {
        self.clock.counts_dirty = true;
        self.shared.waker.notify();
        self.check_requests()
    }

    /// The queue's counts, for the progress bars, at most every
    /// [`COUNTS_EVERY`] and only after a change.
    fn report_counts(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.clock.counts_dirty && now >= self.clock.counts {
            self.clock.counts_dirty = false;
            self.clock.counts = now + COUNTS_EVERY;
            let (pending, processing, failed) = self.engine.unfinished_counts()?;
            self.events.send(Event::Counts {
                pending,
                processing,
                failed,
            });
        }
        Ok(())
    }

    /// Step 4: the jobfile changed, or an edit held back has settled.
    fn follow_jobfile(&mut self) -> Result<()> {
        if self
            .jobfile_watch
            .as_ref()
            .is_some_and(JobfileWatch::changed)
        {
            self.reload(false)?;
        }
        if self
            .held
            .as_ref()
            .is_some_and(|h| Instant::now() >= h.until)
        {
            self.reload(true)?;
        }
        Ok(())
    }

    /// Step 5: a slot found its job rescued by another worker (look at the
    /// registration now), or the jobs stopped after being declared dead
    /// have ended (register again).
    fn follow_registration(&mut self) -> Result<()> {
        if self.shared.fenced.swap(false, Ordering::SeqCst) {
            self.check_requests()?;
        }
        if self.rejoining && self.shared.busy.load(Ordering::SeqCst) == 0 {
            self.rejoin()?;
        }
        Ok(())
    }

    /// Step 6: every heartbeat, an extra `run` tries to take the queue
    /// over (the owner ended, or its lease lapsed): it applies its
    /// jobfile and starts the triggers, as a `run` that found no owner
    /// does. An owner whose lease lapsed and was taken by another stops
    /// its triggers and runs on as an extra.
    fn follow_owner(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.clock.owner || self.shared.mode() != PoolMode::Run {
            return Ok(());
        }
        self.clock.owner = now + self.identity.heartbeat;
        let Some(lock) = self.owner.as_mut() else {
            return Ok(());
        };
        match self.role {
            Role::Owner if lock.lost() => {
                self.role = Role::Extra;
                self.scheduler = None;
                self.triggers = None;
                self.held = None;
                self.events.send(Event::Warning {
                    message: "this run's owner lease lapsed and another `queuectl run` took the queue over: this one runs on as extra workers".into(),
                });
            }
            Role::Extra => {
                let before = lock.holder().unwrap_or("another run").to_string();
                if !lock.try_take()? {
                    return Ok(());
                }
                self.role = Role::Owner;
                // Said once its watches are up: a change after the line
                // fires them.
                self.take_over()?;
                self.events.send(Event::Warning {
                    message: format!(
                        "the `queuectl run` that owned this queue ({before}) is gone: this one owns it now (applies the jobfile, fires its triggers)"
                    ),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Becomes the owner: applies the jobfile as it is now and starts
    /// its schedules and watches.
    fn take_over(&mut self) -> Result<()> {
        if self.jobfile.is_none() {
            return Ok(());
        }
        self.reload(false)?;
        if let Some(jobfile) = self.jobfile.clone() {
            self.scheduler = Scheduler::new(&jobfile);
            if self.options.follow_jobfile {
                self.triggers = self.watch_triggers(&jobfile);
            }
        }
        Ok(())
    }

    /// Step 7: the owner enqueues watch batches and cron ticks.
    fn fire_triggers(&mut self) -> Result<()> {
        if self.shared.mode() != PoolMode::Run {
            return Ok(());
        }
        self.fire_watches()?;
        if let Some(scheduler) = self.scheduler.as_mut() {
            for event in scheduler.step(&mut self.engine, now_ms())? {
                self.events.send(event);
            }
        }
        Ok(())
    }

    /// Step 8: every heartbeat, prove this worker alive and renew its
    /// leases, rescue dead workers' jobs, cap the dead letter queue, and
    /// every [`PRUNE_EVERY`] prune finished jobs past `keep_finished`.
    fn maintenance(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.clock.heartbeat {
            return Ok(());
        }
        self.clock.heartbeat = now + self.identity.heartbeat;
        let prune = now >= self.clock.prune;
        if prune {
            self.clock.prune = now + PRUNE_EVERY;
        }
        let wall = now_ms();
        if !self.rejoining {
            let lease_until = wall + as_millis_i64(self.identity.lease);
            let presence = self
                .engine
                .heartbeat(self.shared.runner(), lease_until, wall)?;
            self.follow(presence);
        }
        self.rescue()?;
        let (max_jobs, max_age) = self
            .jobfile
            .as_ref()
            .map_or((DLQ_MAX_JOBS, DLQ_MAX_AGE), |j| {
                (j.settings.dlq_max_jobs, j.settings.dlq_max_age)
            });
        let capped = self
            .engine
            .cap_dlq(max_jobs, as_millis_i64(max_age), wall)?;
        self.options.logs.remove(&capped);
        if let Some(keep) = self
            .jobfile
            .as_ref()
            .map(|j| j.settings.keep_finished)
            .filter(|_| prune)
        {
            let states = [JobState::Completed, JobState::Cancelled];
            let pruned = self
                .engine
                .prune(&states, wall.saturating_sub(as_millis_i64(keep)))?;
            self.options.logs.remove(&pruned);
        }
        Ok(())
    }

    /// Step 9: `--until-idle` with nothing left drains; the end of the
    /// grace period forces; the kill deadline kills.
    fn idle_and_deadlines(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.options.until_idle
            && self.shared.mode() == PoolMode::Run
            && self.shared.busy.load(Ordering::SeqCst) == 0
            && !self.engine.has_runnable(&served(&self.desired))?
        {
            self.warn_paused()?;
            self.stop(PoolMode::Drain, "the queue is idle");
        }
        if self.drain_deadline.is_some_and(|d| now >= d) {
            self.drain_deadline = None;
            self.stop(PoolMode::Force, "the grace period ended");
        }
        if self.kill_deadline.is_some_and(|d| now >= d) {
            self.kill_deadline = None;
            self.each_slot(|s| s.control.kill());
        }
        Ok(())
    }

    /// At the end of `--until-idle`: says which paused queues still hold
    /// jobs this run leaves waiting.
    fn warn_paused(&mut self) -> Result<()> {
        let served = served(&self.desired);
        for queue in self.engine.paused_queues()?.into_keys() {
            if served.allows(&queue)
                && self
                    .engine
                    .has_unfinished(&QueueFilter::Only(vec![queue.clone()]))?
            {
                self.events.send(Event::Warning {
                    message: format!(
                        "queue `{queue}` is paused: its jobs wait for `queuectl queue resume {queue}`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Step 10: joins slots that ended; one that ended on its own (its
    /// store failed) stops the whole process.
    fn reap(&mut self) {
        let mode = self.shared.mode();
        let mut failed = None;
        for handle in self.pools.values_mut() {
            let (done, running): (Vec<_>, Vec<_>) =
                handle.slots.drain(..).partition(|s| s.thread.is_finished());
            handle.slots = running;
            for slot in done {
                let expected = slot.state.is_retired() || mode != PoolMode::Run;
                match slot.thread.join() {
                    Ok(Ok(())) if expected => {}
                    Ok(Ok(())) => {
                        failed = Some(Error::Internal("a worker slot ended unexpectedly".into()))
                    }
                    Ok(Err(e)) => failed = Some(e),
                    Err(_) => failed = Some(Error::Internal("a worker thread panicked".into())),
                }
            }
        }
        let desired: Vec<&String> = self.desired.iter().map(|p| &p.label).collect();
        self.pools
            .retain(|label, handle| !handle.slots.is_empty() || desired.contains(&label));
        if let Some(error) = failed {
            self.fatal.get_or_insert(error);
            self.stop(PoolMode::Force, "a worker slot failed");
        }
    }

    /// The one error path: stop claiming, stop the running jobs (they go
    /// back to the queue), kill what has not stopped after [`KILL_GRACE`],
    /// and join every slot, so that nothing runs or claims under this
    /// worker once it deregisters. Returns the error.
    fn fail(&mut self, error: Error) -> Error {
        self.stop(PoolMode::Force, "queuectl failed");
        let deadline = Instant::now() + KILL_GRACE;
        let mut killed = false;
        loop {
            self.reap();
            if self.pools.values().all(|p| p.slots.is_empty()) {
                break;
            }
            if !killed && Instant::now() >= deadline {
                self.each_slot(|s| s.control.kill());
                killed = true;
            }
            thread::sleep(BUSY_TICK);
        }
        // A slot's own failure is the same story; the first error is told.
        self.fatal.take();
        error
    }

    /// Slots that are neither retired nor finished.
    fn active_slots(&self) -> usize {
        self.pools
            .values()
            .flat_map(|p| &p.slots)
            .filter(|s| !s.state.is_retired())
            .count()
    }

    pub(super) fn each_slot(&self, mut f: impl FnMut(&SlotState)) {
        for slot in self.pools.values().flat_map(|p| &p.slots) {
            f(&slot.state);
        }
    }

    /// Makes the running pools match `pools`: new slots start now, extra
    /// slots retire (idle ones first) and exit after their current job.
    pub(super) fn resize(&mut self, pools: Vec<Pool>) -> Result<()> {
        let log_max_bytes = self
            .jobfile
            .as_ref()
            .map_or(DEFAULT_LOG_MAX_BYTES, |j| j.settings.log_max_bytes);
        *self
            .shared
            .limits
            .write()
            .unwrap_or_else(|p| p.into_inner()) = limits_of(self.jobfile.as_ref());
        for pool in &pools {
            let handle = self
                .pools
                .entry(pool.label.clone())
                .or_insert_with(|| PoolHandle {
                    config: Arc::new(PoolConfig {
                        queues: RwLock::new(pool.queues.clone()),
                        lease: self.identity.lease,
                        logs: self.options.logs.clone(),
                        log_max_bytes: AtomicU64::new(log_max_bytes),
                    }),
                    slots: Vec::new(),
                });
            *handle
                .config
                .queues
                .write()
                .unwrap_or_else(|p| p.into_inner()) = pool.queues.clone();
            handle
                .config
                .log_max_bytes
                .store(log_max_bytes, Ordering::Relaxed);
        }
        for (label, handle) in &mut self.pools {
            let want = pools
                .iter()
                .find(|p| &p.label == label)
                .map_or(0, |p| p.slots as usize);
            let active = handle
                .slots
                .iter()
                .filter(|s| !s.state.is_retired())
                .count();
            if active > want {
                let mut extra = active - want;
                // Idle slots first, so scaling down never waits on a job.
                for idle_first in [true, false] {
                    for slot in handle.slots.iter().filter(|s| !s.state.is_retired()) {
                        if extra > 0 && (slot.state.current().is_none() == idle_first) {
                            slot.state.retire();
                            extra -= 1;
                        }
                    }
                }
            }
            for _ in active..want {
                let state = Arc::new(SlotState::default());
                state
                    .control
                    .set_cage(self.containment.cage(self.next_slot));
                let engine = self.engine.connect(Durability::Normal)?;
                let (config, shared, events) = (
                    handle.config.clone(),
                    self.shared.clone(),
                    self.events.clone(),
                );
                let slot_state = state.clone();
                // Unique across the pools, for the events that name it.
                let index = self.next_slot;
                self.next_slot += 1;
                let thread = thread::Builder::new()
                    .name(format!("{label}-{index}"))
                    .spawn(move || {
                        slot::run_slot(index, engine, &config, &slot_state, &shared, &events)
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?;
                handle.slots.push(SlotHandle { state, thread });
            }
        }
        self.shared.waker.notify();
        let total = pools.iter().map(|p| p.slots).sum();
        self.engine
            .update_worker(self.shared.runner(), &labels(&pools), total)?;
        self.desired = pools;
        Ok(())
    }

    /// Moves to drain or force, once each.
    pub(super) fn stop(&mut self, mode: PoolMode, reason: &str) {
        self.stop_with(mode, reason, None);
    }

    /// [`Self::stop`], saying what stops at once (`again`: a second signal).
    pub(super) fn stop_with(&mut self, mode: PoolMode, reason: &str, again: Option<&str>) {
        if !self.shared.escalate(mode) {
            return;
        }
        self.events.send(Event::Stopping {
            force: mode == PoolMode::Force,
            reason: reason.to_string(),
            again: again
                .filter(|_| mode == PoolMode::Drain)
                .map(str::to_string),
        });
        self.shared.waker.notify();
        if mode == PoolMode::Drain {
            self.drain_deadline = Some(Instant::now() + self.options.grace);
        } else {
            self.each_slot(|s| s.control.stop(StopReason::Interrupt));
            self.kill_deadline = Some(Instant::now() + KILL_GRACE);
        }
    }
}
