//! The supervisor of a worker process: the engine behind `queuectl run` and
//! `queuectl worker start`.
//!
//! [`supervise`] registers the process, then [`Supervisor::run`] loops:
//!
//! 1. wait for a write to the database ([`DbWatch`], inotify) or at most
//!    [`MAX_TICK`]; while every slot is busy, coalesce for [`BUSY_TICK`]
//!    (busy slots claim their next job themselves, in the transaction that
//!    finishes the last one);
//! 2. signals: the first SIGINT/SIGTERM drains, the second forces;
//! 3. when `PRAGMA data_version` moved: wake idle slots (how a job enqueued
//!    by another process starts within milliseconds, without polling), read
//!    this worker's stop request and its jobs' cancel requests, and report
//!    the queue's counts;
//! 4. with `run`, when the jobfile changed ([`JobfileWatch`]): validate it,
//!    report a broken edit and keep the last good one, or apply it and
//!    resize the pools live ([`Supervisor::resize`]: more slots start at
//!    once; fewer retire after their current job);
//! 5. every [`HEARTBEAT`]: renew the leases of running jobs, reclaim the
//!    jobs of dead workers, keep the dead letter queue within its cap, and
//!    prune finished jobs past `keep_finished`;
//! 6. shutdown: drain (stop claiming, let running jobs finish) on the first
//!    signal, `worker stop`, or `--until-idle` with nothing left; force
//!    (SIGTERM to every running job's process group, SIGKILL after
//!    [`KILL_GRACE`], the jobs back to the queue) on the second signal,
//!    `worker stop --force` or the end of the grace period. It ends when
//!    every slot has ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::clock::now_ms;
use crate::duration::as_millis_i64;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::exec::{KILL_GRACE, StopReason};
use crate::job::{JobState, Origin};
use crate::jobfile::{DEFAULT_LOG_MAX_BYTES, DEFAULT_QUEUE, Jobfile, MAX_WORKERS, jobfile_commit};
use crate::liveness::{Liveness, Verdict};
use crate::scheduler::Scheduler;
use crate::store::{
    Durability, Heartbeat, QueueFilter, Registration, Store, WatchOutcome, logs_dir,
};
use crate::sys::contain::Containment;
use crate::sys::files::{MAX_JOBFILE_BYTES, read_regular};
use crate::sys::host;
use crate::wake::{DbWatch, RECHECK, RECHECKS};
use crate::watch::{JobfileWatch, TriggerWatch};
use crate::worker::{self, MODE_DRAIN, MODE_FORCE, MODE_RUN, PoolConfig, Shared, SlotState};

/// The longest the supervisor waits without looking around.
pub const MAX_TICK: Duration = Duration::from_millis(50);
/// While every slot is busy, look at the database at most this often.
pub const BUSY_TICK: Duration = Duration::from_millis(5);
/// How often a worker proves it is alive and renews its leases.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a job's lease lasts without renewal; a worker silent this long
/// is declared dead (on another host; on this one, as soon as its pid is gone).
pub const LEASE: Duration = Duration::from_secs(30);
/// The dead letter queue keeps at most this many jobs…
pub const DLQ_MAX_JOBS: u64 = 10_000;
/// …for at most this long.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an edit of the jobfile that would cancel jobs must leave the
/// file unchanged before `run` applies it.
pub const SETTLE: Duration = Duration::from_secs(2);

/// An edit of the jobfile held until it settles (see [`SETTLE`]).
#[derive(Debug)]
struct Held {
    /// The file as it read.
    text: String,
    /// When it may be applied, if the file still reads the same.
    until: Instant,
}

/// The definitions `jobfile` drops that have jobs waiting to run: what
/// applying it would cancel.
fn removed_with_waiting_jobs(jobfile: &Jobfile, stored: &crate::reconcile::Stored) -> Vec<String> {
    crate::reconcile::plan(jobfile, stored)
        .actions
        .into_iter()
        .filter_map(|action| match action {
            crate::reconcile::Action::Cancel { name, .. } => Some(name),
            _ => None,
        })
        .collect()
}

/// How often finished jobs past `keep_finished` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often queue counts are reported at most.
const COUNTS_EVERY: Duration = Duration::from_millis(200);

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    /// `--count`/`--workers`: the slots of one pool (over `queues`, or every queue).
    pub count: Option<u32>,
    /// `--queue`: only these queues.
    pub queues: Vec<String>,
    /// The jobfile its pools and settings come from, if any.
    pub jobfile: Option<Jobfile>,
    /// `run`: follow edits of the jobfile (validate, apply, resize).
    pub follow_jobfile: bool,
    /// Whether to apply the jobfile on edits (the one `run` that owns the queue).
    pub apply_edits: bool,
    pub until_idle: bool,
    pub grace: Duration,
    /// Keep running when the terminal goes away (background workers).
    pub ignore_hangup: bool,
}

/// Slots that take jobs from the same queues.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// A queue name, queue names joined by `+`, or `*` for every queue.
    pub label: String,
    pub queues: QueueFilter,
    pub slots: u32,
}

/// The pools of a worker: `--queue`/`--count` when given; else one pool per
/// queue of the jobfile with its declared workers (the `default` pool also
/// serves every queue the jobfile does not declare); else one pool for every
/// queue with a slot per CPU.
pub fn pools(count: Option<u32>, queues: &[String], jobfile: Option<&Jobfile>) -> Vec<Pool> {
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u32)
        .min(MAX_WORKERS);
    if !queues.is_empty() {
        let declared = |q: &String| jobfile.and_then(|j| j.queues.get(q)).copied().unwrap_or(1);
        return vec![Pool {
            label: queues.join("+"),
            queues: QueueFilter::Only(queues.to_vec()),
            slots: count.unwrap_or_else(|| queues.iter().map(declared).sum()),
        }];
    }
    match (count, jobfile) {
        (None, Some(jobfile)) => {
            let others: Vec<String> = jobfile
                .queues
                .keys()
                .filter(|q| *q != DEFAULT_QUEUE)
                .cloned()
                .collect();
            jobfile
                .queues
                .iter()
                .map(|(name, &workers)| Pool {
                    label: name.clone(),
                    queues: if name == DEFAULT_QUEUE {
                        QueueFilter::Except(others.clone())
                    } else {
                        QueueFilter::Only(vec![name.clone()])
                    },
                    slots: workers,
                })
                .collect()
        }
        (count, _) => vec![Pool {
            label: "*".into(),
            queues: QueueFilter::Any,
            slots: count.unwrap_or(cpus),
        }],
    }
}

/// Checks a slot count given on the command line (`--workers`, `--count`).
pub fn check_count(count: Option<u32>, flag: &str) -> Result<()> {
    match count {
        Some(0) => Err(Error::input(format!("{flag} must be at least 1"))),
        Some(n) if n > MAX_WORKERS => Err(Error::input_with_hint(
            format!("{flag} is {n}: at most {MAX_WORKERS} jobs run at once in one process"),
            "start more processes for more; each registers as a worker of the same queue",
        )),
        _ => Ok(()),
    }
}

/// Checks that `pools` fit in one process.
pub fn check_pools(pools: &[Pool]) -> Result<()> {
    let total: u64 = pools.iter().map(|p| u64::from(p.slots)).sum();
    if total > u64::from(MAX_WORKERS) {
        return Err(Error::input_with_hint(
            format!("the pools add up to {total} workers: one process runs at most {MAX_WORKERS}"),
            "lower `workers` of the queues, or run some queues in another process (--queue)",
        ));
    }
    Ok(())
}

/// The queues some pool serves: every queue unless all pools name theirs.
pub fn served(pools: &[Pool]) -> QueueFilter {
    let mut names = Vec::new();
    for pool in pools {
        match &pool.queues {
            QueueFilter::Only(queues) => names.extend(queues.iter().cloned()),
            _ => return QueueFilter::Any,
        }
    }
    QueueFilter::Only(names)
}

fn labels(pools: &[Pool]) -> Vec<String> {
    pools
        .iter()
        .map(|p| format!("{}:{}", p.label, p.slots))
        .collect()
}

/// How a worker process ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub completed: u64,
    pub dead: u64,
    /// The signal that stopped it, if one did.
    pub signal: Option<i32>,
}

/// Who this worker process is: its machine, the processes it sees, its
/// lease and how often it proves it is alive.
#[derive(Debug, Clone)]
struct Identity {
    host: String,
    view: Option<String>,
    lease: Duration,
    heartbeat: Duration,
}

/// How often a worker with this lease heartbeats: ten times a lease, at
/// most every 2 s.
pub fn heartbeat_every(lease: Duration) -> Duration {
    (lease / 10).min(HEARTBEAT)
}

/// Registers a worker process under a new random id; returns it.
fn register(store: &mut Store, identity: &Identity, pools: &[Pool]) -> Result<i64> {
    let id = host::random_id();
    store.register_worker(&Registration {
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

/// Runs a worker process until it is told to stop (see the module docs).
pub fn supervise(options: &Options, events: &Sender<Event>) -> Result<Summary> {
    let mut store = Store::open(&options.db, Durability::Normal)?;
    let lease = options.jobfile.as_ref().map_or(LEASE, |j| j.settings.lease);
    let identity = Identity {
        host: host::hostname(),
        view: host::process_view(),
        lease,
        heartbeat: heartbeat_every(lease),
    };
    let initial = pools(options.count, &options.queues, options.jobfile.as_ref());
    let runner = register(&mut store, &identity, &initial)?;
    let containment = Containment::setup(runner);
    let signals = SignalWatch::start(options.ignore_hangup)?;
    let mut supervisor = Supervisor {
        options,
        identity,
        liveness: Liveness::default(),
        containment,
        rejoining: false,
        held: None,
        rejected: None,
        shared: Arc::new(Shared::new(runner)),
        pools: BTreeMap::new(),
        desired: initial.clone(),
        jobfile: options.jobfile.clone(),
        events,
        signals: &signals,
        drain_deadline: None,
        kill_deadline: None,
        fatal: None,
        seen_signals: 0,
        scheduler: options
            .jobfile
            .as_ref()
            .filter(|_| options.apply_edits)
            .and_then(Scheduler::new),
        triggers: None,
        next_slot: 0,
    };
    if let Some(jobfile) = options
        .jobfile
        .as_ref()
        .filter(|_| options.apply_edits && options.follow_jobfile)
    {
        supervisor.triggers = supervisor.watch_triggers(jobfile);
    }
    let result = supervisor.run(&mut store, initial);
    signals.close();
    supervisor.containment.finish();
    let deregistered = store.deregister_worker(supervisor.shared.runner());
    // A store that failed after jobs ran: what was recorded before stands.
    let summary = result.map_err(Error::after_work)?;
    deregistered.map_err(Error::after_work)?;
    Ok(summary)
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

struct Supervisor<'a> {
    options: &'a Options,
    identity: Identity,
    /// What this process saw of the other workers' heartbeats.
    liveness: Liveness,
    /// How the slots keep their jobs' processes together.
    containment: Containment,
    /// Declared dead by another worker: waiting for the slots to stop their
    /// jobs before registering again.
    rejoining: bool,
    /// An edit of the jobfile that would cancel jobs, held until the file
    /// has stayed the same for [`SETTLE`].
    held: Option<Held>,
    /// The last report of a broken jobfile, not to repeat it.
    rejected: Option<String>,
    shared: Arc<Shared>,
    pools: BTreeMap<String, PoolHandle>,
    desired: Vec<Pool>,
    /// The last good jobfile.
    jobfile: Option<Jobfile>,
    events: &'a Sender<Event>,
    signals: &'a SignalWatch,
    drain_deadline: Option<Instant>,
    kill_deadline: Option<Instant>,
    fatal: Option<Error>,
    seen_signals: usize,
    /// The cron schedules, in the `run` that owns the queue.
    scheduler: Option<Scheduler>,
    /// The file-watch triggers, likewise (and not with `--no-watch`).
    triggers: Option<TriggerWatch>,
    /// The number the next slot started gets.
    next_slot: usize,
}

impl Supervisor<'_> {
    fn run(&mut self, store: &mut Store, initial: Vec<Pool>) -> Result<Summary> {
        self.reclaim(store)?;
        let ready = Event::Ready {
            pid: std::process::id(),
            slots: initial.iter().map(|p| p.slots).sum(),
            queues: labels(&initial),
        };
        // Watch before anything runs, then look at the jobfile once more:
        // an edit made since it was loaded (or during startup) is not lost.
        let db_watch = DbWatch::new(&self.options.db);
        let jobfile_watch = match (&self.jobfile, self.options.follow_jobfile) {
            (Some(jobfile), true) => JobfileWatch::new(&jobfile.path).ok(),
            _ => None,
        };
        // Every watch is up: "ready" means ready. Then the pools start, from
        // the jobfile as it is now (an edit since it was loaded counts).
        let _ = self.events.send(ready);
        if jobfile_watch.is_some() {
            self.reload(store, false)?;
        }
        if self.pools.is_empty() {
            self.resize(store, initial)?;
        }
        let mut last_version = store.data_version()?;
        let mut rechecks = 0;
        let mut next_heartbeat = Instant::now() + self.identity.heartbeat;
        let mut next_prune = Instant::now();
        let mut next_counts = Instant::now();
        let mut counts_dirty = true;
        loop {
            if self.shared.busy.load(Ordering::SeqCst) >= self.active_slots()
                && self.active_slots() > 0
            {
                thread::sleep(BUSY_TICK);
            }
            let timeout = if rechecks > 0 {
                rechecks -= 1;
                RECHECK
            } else {
                MAX_TICK.min(next_heartbeat.saturating_duration_since(Instant::now()))
            };
            let written = db_watch.wait(timeout);
            let now = Instant::now();
            self.check_signals();
            let version = store.data_version()?;
            if written && version == last_version {
                rechecks = RECHECKS;
            }
            if version != last_version {
                rechecks = 0;
                last_version = version;
                counts_dirty = true;
                self.shared.waker.notify();
                self.check_requests(store)?;
            }
            if counts_dirty && now >= next_counts {
                counts_dirty = false;
                next_counts = now + COUNTS_EVERY;
                let (pending, processing, failed) = store.unfinished_counts()?;
                let _ = self.events.send(Event::Counts {
                    pending,
                    processing,
                    failed,
                });
            }
            if jobfile_watch.as_ref().is_some_and(JobfileWatch::changed) {
                self.reload(store, false)?;
            }
            if self.held.as_ref().is_some_and(|h| now >= h.until) {
                self.reload(store, true)?;
            }
            if self.shared.fenced.swap(false, Ordering::SeqCst) {
                self.check_requests(store)?;
            }
            if self.rejoining && self.shared.busy.load(Ordering::SeqCst) == 0 {
                self.rejoin(store)?;
            }
            self.fire_triggers(store)?;
            if let Some(scheduler) = self
                .scheduler
                .as_mut()
                .filter(|_| self.shared.mode() == MODE_RUN)
            {
                for event in scheduler.step(store, now_ms())? {
                    let _ = self.events.send(event);
                }
            }
            if now >= next_heartbeat {
                next_heartbeat = now + self.identity.heartbeat;
                self.heartbeat(store, now >= next_prune)?;
                if now >= next_prune {
                    next_prune = now + PRUNE_EVERY;
                }
            }
            if self.options.until_idle
                && self.shared.mode() == MODE_RUN
                && self.shared.busy.load(Ordering::SeqCst) == 0
                && !store.has_unfinished(&served(&self.desired))?
            {
                self.stop(MODE_DRAIN, "the queue is idle");
            }
            if self.drain_deadline.is_some_and(|d| now >= d) {
                self.drain_deadline = None;
                self.stop(MODE_FORCE, "the grace period ended");
            }
            if self.kill_deadline.is_some_and(|d| now >= d) {
                self.kill_deadline = None;
                self.each_slot(|s| s.control.kill());
            }
            self.reap()?;
            if self.shared.mode() != MODE_RUN && self.pools.values().all(|p| p.slots.is_empty()) {
                break;
            }
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

    /// Slots that are neither retired nor finished.
    fn active_slots(&self) -> usize {
        self.pools
            .values()
            .flat_map(|p| &p.slots)
            .filter(|s| !s.state.is_retired())
            .count()
    }

    fn each_slot(&self, f: impl Fn(&SlotState)) {
        for slot in self.pools.values().flat_map(|p| &p.slots) {
            f(&slot.state);
        }
    }

    /// Makes the running pools match `pools`: new slots start now, extra
    /// slots retire (idle ones first) and exit after their current job.
    fn resize(&mut self, store: &mut Store, pools: Vec<Pool>) -> Result<()> {
        let log_max_bytes = self
            .jobfile
            .as_ref()
            .map_or(DEFAULT_LOG_MAX_BYTES, |j| j.settings.log_max_bytes);
        for pool in &pools {
            let handle = self
                .pools
                .entry(pool.label.clone())
                .or_insert_with(|| PoolHandle {
                    config: Arc::new(PoolConfig {
                        queues: RwLock::new(pool.queues.clone()),
                        lease: self.identity.lease,
                        logs_dir: logs_dir(&self.options.db),
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
            let active: Vec<&SlotHandle> = handle
                .slots
                .iter()
                .filter(|s| !s.state.is_retired())
                .collect();
            if active.len() > want {
                let mut extra = active.len() - want;
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
            for _ in active.len()..want {
                let state = Arc::new(SlotState::default());
                state
                    .control
                    .set_cage(self.containment.cage(self.next_slot));
                let slot_store = Store::open(&self.options.db, Durability::Normal)?;
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
                        worker::run_slot(index, slot_store, &config, &slot_state, &shared, &events)
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?;
                handle.slots.push(SlotHandle { state, thread });
            }
        }
        self.shared.waker.notify();
        let total = pools.iter().map(|p| p.slots).sum();
        store.update_worker(self.shared.runner(), &labels(&pools), total)?;
        self.desired = pools;
        Ok(())
    }

    /// Joins slots that ended; one that ended on its own (its store failed)
    /// stops the whole process.
    fn reap(&mut self) -> Result<()> {
        let mode = self.shared.mode();
        let mut failed = None;
        for handle in self.pools.values_mut() {
            let (done, running): (Vec<_>, Vec<_>) =
                handle.slots.drain(..).partition(|s| s.thread.is_finished());
            handle.slots = running;
            for slot in done {
                let expected = slot.state.is_retired() || mode != MODE_RUN;
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
            self.stop(MODE_FORCE, "a worker slot failed");
        }
        Ok(())
    }

    /// Moves to drain or force, once each.
    fn stop(&mut self, mode: u8, reason: &str) {
        self.stop_with(mode, reason, None);
    }

    /// [`Self::stop`], saying what stops at once (`again`: a second signal).
    fn stop_with(&mut self, mode: u8, reason: &str, again: Option<&str>) {
        if !self.shared.escalate(mode) {
            return;
        }
        let _ = self.events.send(Event::Stopping {
            force: mode == MODE_FORCE,
            reason: reason.to_string(),
            again: again.filter(|_| mode == MODE_DRAIN).map(str::to_string),
        });
        self.shared.waker.notify();
        if mode == MODE_DRAIN {
            self.drain_deadline = Some(Instant::now() + self.options.grace);
        } else {
            self.each_slot(|s| s.control.stop(StopReason::Interrupt));
            self.kill_deadline = Some(Instant::now() + KILL_GRACE);
        }
    }

    fn check_signals(&mut self) {
        let received = self.signals.count();
        if received > self.seen_signals {
            self.seen_signals = received;
            let mode = if received >= 2 {
                MODE_FORCE
            } else {
                MODE_DRAIN
            };
            let reason = format!("received {}", self.signals.name());
            let again = match self.signals.last() {
                SIGINT => "Ctrl-C",
                _ => "the same signal",
            };
            self.stop_with(mode, &reason, Some(again));
        }
    }

    /// This worker's stop request, and cancel requests for its jobs.
    fn check_requests(&mut self, store: &mut Store) -> Result<()> {
        let state = store.stop_request(self.shared.runner())?;
        self.follow(state);
        for id in store.cancel_requests(self.shared.runner())? {
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
    fn follow(&mut self, state: Heartbeat) {
        match state {
            Heartbeat::Alive(Some(mode)) if mode == "force" => {
                self.stop(MODE_FORCE, "worker stop --force");
            }
            Heartbeat::Alive(Some(_)) => self.stop(MODE_DRAIN, "worker stop"),
            Heartbeat::Alive(None) => {}
            Heartbeat::Gone => self.declared_dead(),
        }
    }

    /// Another worker declared this one dead (it was silent past its lease:
    /// suspended, or starved) and rescued its jobs. Claim nothing, stop the
    /// running jobs (their results would be discarded anyway: the rescuer's
    /// history stands), and rejoin under a new id once they have stopped.
    fn declared_dead(&mut self) {
        if self.rejoining {
            return;
        }
        self.rejoining = true;
        self.shared.suspended.store(true, Ordering::SeqCst);
        let mut stopped = Vec::new();
        for slot in self.pools.values().flat_map(|p| &p.slots) {
            if let Some(id) = slot.state.current() {
                slot.state.control.stop(StopReason::Rescued);
                stopped.push(id);
            }
        }
        if !stopped.is_empty() {
            self.kill_deadline
                .get_or_insert(Instant::now() + KILL_GRACE);
        }
        let _ = self.events.send(Event::DeclaredDead {
            stopped,
            lease_ms: u64::try_from(self.identity.lease.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Registers again, under a new id, after being declared dead.
    fn rejoin(&mut self, store: &mut Store) -> Result<()> {
        let id = register(store, &self.identity, &self.desired)?;
        self.shared.set_runner(id);
        self.liveness = Liveness::default();
        self.rejoining = false;
        if self.shared.mode() == MODE_RUN {
            // The jobs it stopped have ended: nothing is left to kill, and
            // the jobs it claims from now on are not to be.
            self.kill_deadline = None;
        }
        self.shared.suspended.store(false, Ordering::SeqCst);
        self.shared.waker.notify();
        Ok(())
    }

    fn heartbeat(&mut self, store: &mut Store, prune: bool) -> Result<()> {
        let now = now_ms();
        if !self.rejoining {
            let lease_until = now + as_millis_i64(self.identity.lease);
            let state = store.heartbeat(self.shared.runner(), lease_until, now)?;
            self.follow(state);
        }
        self.reclaim(store)?;
        let dir = logs_dir(&self.options.db);
        remove_logs(
            &dir,
            &store.cap_dlq(DLQ_MAX_JOBS, as_millis_i64(DLQ_MAX_AGE), now)?,
        );
        if let Some(keep) = self
            .jobfile
            .as_ref()
            .map(|j| j.settings.keep_finished)
            .filter(|_| prune)
        {
            let states = [JobState::Completed, JobState::Cancelled];
            remove_logs(&dir, &store.prune(&states, now - as_millis_i64(keep))?);
        }
        Ok(())
    }

    /// The jobfile changed: validate it; keep the last good one on an
    /// error; else apply it (if this process owns the queue) and resize.
    ///
    /// An edit whose plan would cancel jobs (it drops definitions that have
    /// waiting jobs) is held until the file has stayed the same for
    /// [`SETTLE`] and reads the same again (`settled`): a file that is
    /// briefly empty or half-written (`cat > queuectl.toml`, an editor that
    /// writes in place, a checkout) then cancels nothing.
    fn reload(&mut self, store: &mut Store, settled: bool) -> Result<()> {
        let Some(path) = self.jobfile.as_ref().map(|j| j.path.clone()) else {
            return Ok(());
        };
        // Each broken edit is reported once: the same error again (the
        // file touched, not fixed) says nothing new.
        let config_error = |events: &Sender<Event>, rejected: &mut Option<String>, e: Error| {
            let message = format!("{e}\nkept running on the last good jobfile");
            if rejected.as_deref() != Some(message.as_str()) {
                let _ = events.send(Event::ConfigError {
                    message: message.clone(),
                });
                *rejected = Some(message);
            }
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
        if self.options.apply_edits {
            let confirmed = settled && self.held.as_ref().is_some_and(|h| h.text == text);
            let removed = removed_with_waiting_jobs(&jobfile, &store.stored()?);
            if !removed.is_empty() && !confirmed {
                if self.held.as_ref().is_none_or(|h| h.text != text) {
                    let _ = self.events.send(Event::Warning {
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
            let plan = store.apply(&jobfile, jobfile_commit(&path).as_deref(), now_ms(), false)?;
            if !plan.is_empty() {
                let _ = self.events.send(Event::Applied {
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
                let _ = self.events.send(Event::Resized {
                    pool: pool.label.clone(),
                    from: old,
                    to: pool.slots,
                });
            }
        }
        // Rebuild the scheduler and the watches only when their definitions
        // changed: a new watch would miss the changes made while it starts.
        let triggers_of =
            |j: Option<&Jobfile>, schedules: bool| -> Vec<(String, crate::jobfile::Trigger)> {
                j.map(|j| {
                    j.jobs
                        .values()
                        .filter(|d| {
                            matches!(d.trigger, crate::jobfile::Trigger::Schedule(_)) == schedules
                                && !d.is_one_shot()
                        })
                        .map(|d| (d.name.clone(), d.trigger.clone()))
                        .collect()
                })
                .unwrap_or_default()
            };
        if self.options.apply_edits {
            if triggers_of(self.jobfile.as_ref(), true) != triggers_of(Some(&jobfile), true) {
                self.scheduler = Scheduler::new(&jobfile);
            }
            if self.options.follow_jobfile
                && triggers_of(self.jobfile.as_ref(), false) != triggers_of(Some(&jobfile), false)
            {
                self.triggers = self.watch_triggers(&jobfile);
            }
        }
        self.jobfile = Some(jobfile);
        if self.shared.mode() == MODE_RUN {
            self.resize(store, new)?;
        }
        Ok(())
    }

    /// The watch triggers of `jobfile`; a watch that cannot start is
    /// reported, not fatal.
    fn watch_triggers(&self, jobfile: &Jobfile) -> Option<TriggerWatch> {
        match TriggerWatch::new(jobfile)? {
            Ok(watch) => Some(watch),
            Err(e) => {
                let _ = self.events.send(Event::Warning {
                    message: format!(
                        "cannot watch `{}` for the jobs' `watch` triggers: {e}",
                        jobfile.dir.display()
                    ),
                });
                None
            }
        }
    }

    /// Enqueues the jobs of the watch batches whose debounce ended.
    fn fire_triggers(&mut self, store: &mut Store) -> Result<()> {
        let (Some(triggers), Some(jobfile)) = (self.triggers.as_mut(), self.jobfile.as_ref())
        else {
            return Ok(());
        };
        if self.shared.mode() != MODE_RUN {
            return Ok(());
        }
        for batch in triggers.poll(Instant::now()) {
            let Some(def) = jobfile.jobs.get(&batch.definition) else {
                continue;
            };
            let now = now_ms();
            let make = |key: &str, value: String| {
                let mut job = def.new_job(&jobfile.dir, Origin::Watch, None, now);
                job.env.push((key.to_string(), value));
                job
            };
            let jobs: Vec<_> = if batch.per_file {
                batch
                    .paths
                    .iter()
                    .map(|p| make("QUEUECTL_PATH", p.clone()))
                    .collect()
            } else {
                vec![make("QUEUECTL_CHANGED", batch.paths.join("\n"))]
            };
            let outcomes = store.watch_enqueue(&jobs, batch.per_file, batch.on_busy, now)?;
            for (i, outcome) in outcomes.into_iter().enumerate() {
                let paths = if batch.per_file {
                    vec![batch.paths[i].clone()]
                } else {
                    batch.paths.clone()
                };
                let (outcome, id) = match outcome {
                    WatchOutcome::Enqueued(id) => ("enqueued", Some(id)),
                    WatchOutcome::Merged(id) => ("merged into", Some(id)),
                    WatchOutcome::Skipped => ("skipped (a run is going)", None),
                };
                let _ = self.events.send(Event::Triggered {
                    definition: batch.definition.clone(),
                    paths,
                    outcome: outcome.into(),
                    id,
                });
            }
        }
        Ok(())
    }

    /// Declares dead the workers this process saw die (see
    /// [`crate::liveness`]) and rescues their jobs, and any job whose
    /// worker is no longer registered.
    fn reclaim(&mut self, store: &mut Store) -> Result<()> {
        let workers = store.workers()?;
        let dead = self.liveness.judge(
            &workers,
            self.shared.runner(),
            self.identity.view.as_deref(),
            Instant::now(),
            |pid| pid == std::process::id() || host::pid_alive(pid),
        );
        if dead.is_empty() && !store.has_orphaned_jobs()? {
            return Ok(());
        }
        let named: Vec<(i64, i64)> = dead.iter().map(|d| (d.id, d.heartbeat_at)).collect();
        let reclaimed = store.declare_dead(&named, now_ms(), random_unit())?;
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
            let _ = self.events.send(Event::Reclaimed {
                id,
                dead,
                worker: worker.clone(),
            });
        }
        Ok(())
    }
}

/// Deletes the log files of deleted jobs; a log already gone is fine. An
/// id that is not a valid job id names no file.
pub fn remove_logs(dir: &std::path::Path, jobs: &[(String, u32)]) {
    for (id, runs) in jobs {
        for run in 1..=*runs {
            if let Some(path) = worker::log_path(dir, id, run) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Rescues the jobs of the workers that this process sees are gone (their
/// pid, in the same view of processes), and of workers no longer
/// registered: for a command that runs once (`worker stop`), with no
/// heartbeats observed to judge silence by.
pub fn rescue_gone_workers(store: &mut Store) -> Result<()> {
    let view = host::process_view();
    let dead: Vec<(i64, i64)> = Liveness::default()
        .judge(
            &store.workers()?,
            0,
            view.as_deref(),
            Instant::now(),
            |pid| pid == std::process::id() || host::pid_alive(pid),
        )
        .iter()
        .map(|d| (d.id, d.heartbeat_at))
        .collect();
    if !dead.is_empty() || store.has_orphaned_jobs()? {
        store.declare_dead(&dead, now_ms(), random_unit())?;
    }
    Ok(())
}

/// A number in `[0, 1)` for jitter.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(now_ms()) >> 11) as f64 / (1u64 << 53) as f64
}

/// Counts SIGINT/SIGTERM on a background thread.
struct SignalWatch {
    count: Arc<AtomicUsize>,
    last: Arc<AtomicI32>,
    handle: signal_hook::iterator::Handle,
}

impl SignalWatch {
    fn start(ignore_hangup: bool) -> Result<SignalWatch> {
        let mut wanted = vec![SIGINT, SIGTERM];
        if ignore_hangup {
            wanted.push(SIGHUP);
        }
        let mut signals = Signals::new(&wanted)
            .map_err(|e| Error::Internal(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let count = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(AtomicI32::new(0));
        let (c, l) = (count.clone(), last.clone());
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        continue;
                    }
                    l.store(signal, Ordering::SeqCst);
                    c.fetch_add(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the signal thread: {e}")))?;
        Ok(SignalWatch {
            count,
            last,
            handle,
        })
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn last(&self) -> i32 {
        self.last.load(Ordering::SeqCst)
    }

    fn name(&self) -> &'static str {
        match self.last() {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }

    fn close(&self) {
        self.handle.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobfile(text: &str) -> Jobfile {
        crate::jobfile::parse(text, std::path::Path::new("q.toml"))
            .unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn pools_follow_flags_then_the_jobfile() {
        let file = jobfile("[queues.default]\nworkers = 3\n[queues.deploy]\nworkers = 1\n");
        assert_eq!(
            pools(None, &[], Some(&file)),
            vec![
                Pool {
                    label: "default".into(),
                    queues: QueueFilter::Except(vec!["deploy".into()]),
                    slots: 3
                },
                Pool {
                    label: "deploy".into(),
                    queues: QueueFilter::Only(vec!["deploy".into()]),
                    slots: 1
                },
            ]
        );
        assert_eq!(
            pools(Some(5), &[], Some(&file)),
            vec![Pool {
                label: "*".into(),
                queues: QueueFilter::Any,
                slots: 5
            }]
        );
        assert_eq!(
            pools(None, &["deploy".into()], Some(&file)),
            vec![Pool {
                label: "deploy".into(),
                queues: QueueFilter::Only(vec!["deploy".into()]),
                slots: 1
            }]
        );
        assert_eq!(
            served(&pools(None, &["deploy".into()], Some(&file))),
            QueueFilter::Only(vec!["deploy".into()])
        );
        assert_eq!(served(&pools(None, &[], Some(&file))), QueueFilter::Any);
    }
}
