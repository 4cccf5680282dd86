//! The supervisor of a worker pool: the process behind `worker start`.
//!
//! [`supervise`] owns the pool's life; its steps:
//!
//! 1. register this process in the `workers` table and reclaim the jobs of
//!    workers that died ([`Store::reclaim`]);
//! 2. start one thread per slot ([`worker::run_slot`]), each with its own
//!    connection;
//! 3. wait for a write to the database ([`DbWatch`], inotify) or at most
//!    [`MAX_TICK`]; when `PRAGMA data_version` says another connection
//!    committed, wake idle slots (that is how a job enqueued by another
//!    process starts within milliseconds, with no polling), and read this
//!    worker's stop request and the cancel requests for its jobs. While
//!    every slot is busy, wake-ups are coalesced ([`BUSY_TICK`]): busy
//!    slots claim their next job themselves, in the transaction that
//!    finishes the last one;
//! 4. every [`HEARTBEAT`], renew the leases of running jobs, reclaim the
//!    jobs of dead workers and keep the dead letter queue within its cap;
//! 5. shut down: on the first SIGINT/SIGTERM, a `worker stop`, or (with
//!    `--until-idle`) an empty queue, stop claiming and let running jobs
//!    finish (drain); on the second signal, `worker stop --force` or the end
//!    of the grace period, stop the running jobs and return them to the
//!    queue (force). Then deregister and exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, test_kill_process};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::clock::now_ms;
use crate::duration::as_millis_i64;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::exec::{KILL_GRACE, StopReason};
use crate::job::JobState;
use crate::store::{Durability, QueueFilter, Store, logs_dir};
use crate::wake::{DbWatch, RECHECK, RECHECKS};
use crate::worker::{self, MODE_DRAIN, MODE_FORCE, MODE_RUN, Shared, SlotConfig};

/// The longest the supervisor waits without looking around (signals,
/// deadlines, slots that ended).
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

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: std::path::PathBuf,
    /// Its pools: slots that share a queue filter.
    pub pools: Vec<Pool>,
    pub until_idle: bool,
    pub grace: Duration,
    pub log_max_bytes: u64,
    /// Completed and cancelled jobs older than this are pruned.
    pub keep_finished: Option<Duration>,
    /// Keep running when the terminal goes away (background workers).
    pub ignore_hangup: bool,
}

/// Slots that take jobs from the same queues.
#[derive(Debug, Clone)]
pub struct Pool {
    /// What `status` calls it: a queue name, or `*` for every queue.
    pub label: String,
    pub queues: QueueFilter,
    pub slots: u32,
}

impl Options {
    pub fn slots(&self) -> u32 {
        self.pools.iter().map(|p| p.slots).sum()
    }

    /// The queues some pool serves: every queue unless all pools name theirs.
    pub fn served(&self) -> QueueFilter {
        let mut names = Vec::new();
        for pool in &self.pools {
            match &pool.queues {
                QueueFilter::Only(queues) => names.extend(queues.iter().cloned()),
                _ => return QueueFilter::Any,
            }
        }
        QueueFilter::Only(names)
    }

    fn labels(&self) -> Vec<String> {
        self.pools
            .iter()
            .map(|p| format!("{}:{}", p.label, p.slots))
            .collect()
    }
}

/// How often finished jobs past `keep_finished` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How a pool ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub completed: u64,
    pub dead: u64,
    /// The signal that stopped it, if one did.
    pub signal: Option<i32>,
}

/// Runs a worker pool until it is told to stop (see the module docs).
pub fn supervise(options: &Options, events: &Sender<Event>) -> Result<Summary> {
    let mut store = Store::open(&options.db, Durability::Normal)?;
    let host = hostname();
    let pid = std::process::id();
    let runner = store.register_worker(pid, &host, &options.labels(), options.slots(), now_ms())?;
    let signals = SignalWatch::start(options.ignore_hangup)?;
    let result = run_pool(options, &mut store, runner, &host, &signals, events);
    signals.close();
    let deregistered = store.deregister_worker(runner);
    let summary = result?;
    deregistered?;
    Ok(summary)
}

fn run_pool(
    options: &Options,
    store: &mut Store,
    runner: i64,
    host: &str,
    signals: &SignalWatch,
    events: &Sender<Event>,
) -> Result<Summary> {
    reclaim(store, host, events)?;
    let slots = options.slots() as usize;
    let shared = Arc::new(Shared::new(slots));
    let _ = events.send(Event::Ready {
        pid: std::process::id(),
        slots: options.slots(),
        queues: options.labels(),
    });
    let mut handles = Vec::with_capacity(slots);
    for pool in &options.pools {
        let config = Arc::new(SlotConfig {
            runner,
            queues: pool.queues.clone(),
            lease: LEASE,
            logs_dir: logs_dir(&options.db),
            log_max_bytes: options.log_max_bytes,
        });
        for _ in 0..pool.slots {
            let slot = handles.len();
            let slot_store = Store::open(&options.db, Durability::Normal)?;
            let (shared, config, events) = (shared.clone(), config.clone(), events.clone());
            let handle = thread::Builder::new()
                .name(format!("slot-{slot}"))
                .spawn(move || worker::run_slot(slot, slot_store, &config, &shared, &events))
                .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?;
            handles.push(handle);
        }
    }
    let served = options.served();
    let mut next_prune = Instant::now();

    let watch = DbWatch::new(&options.db);
    let mut rechecks = 0;
    let mut last_version = store.data_version()?;
    let mut next_heartbeat = Instant::now() + HEARTBEAT;
    let mut drain_deadline: Option<Instant> = None;
    let mut kill_deadline: Option<Instant> = None;
    let mut fatal: Option<Error> = None;
    let mut seen_signals = 0;
    let stop = |mode: u8,
                reason: &str,
                drain_deadline: &mut Option<Instant>,
                kill_deadline: &mut Option<Instant>| {
        if !shared.escalate(mode) {
            return;
        }
        let _ = events.send(Event::Stopping {
            force: mode == MODE_FORCE,
            reason: reason.to_string(),
        });
        shared.waker.notify();
        if mode == MODE_DRAIN {
            *drain_deadline = Some(Instant::now() + options.grace);
        } else {
            for control in &shared.controls {
                control.stop(StopReason::Interrupt);
            }
            *kill_deadline = Some(Instant::now() + KILL_GRACE);
        }
    };
    loop {
        if shared.busy.load(Ordering::SeqCst) >= slots {
            thread::sleep(BUSY_TICK);
        }
        let timeout = if rechecks > 0 {
            rechecks -= 1;
            RECHECK
        } else {
            MAX_TICK.min(next_heartbeat.saturating_duration_since(Instant::now()))
        };
        let written = watch.wait(timeout);
        let now = Instant::now();
        let received = signals.count();
        if received > seen_signals {
            let name = signals.name();
            let mode = if received >= 2 {
                MODE_FORCE
            } else {
                MODE_DRAIN
            };
            seen_signals = received;
            stop(
                mode,
                &format!("received {name}"),
                &mut drain_deadline,
                &mut kill_deadline,
            );
        }
        let version = store.data_version()?;
        if written && version == last_version {
            rechecks = RECHECKS;
        }
        if version != last_version {
            rechecks = 0;
            last_version = version;
            shared.waker.notify();
            match store.stop_request(runner)?.as_deref() {
                Some("force") => stop(
                    MODE_FORCE,
                    "worker stop --force",
                    &mut drain_deadline,
                    &mut kill_deadline,
                ),
                Some(_) => stop(
                    MODE_DRAIN,
                    "worker stop",
                    &mut drain_deadline,
                    &mut kill_deadline,
                ),
                None => {}
            }
            for id in store.cancel_requests(runner)? {
                if let Some(slot) = shared.slot_running(&id) {
                    shared.controls[slot].stop(StopReason::Cancel);
                }
            }
        }
        if now >= next_heartbeat {
            next_heartbeat = now + HEARTBEAT;
            let now_ms = now_ms();
            match store
                .heartbeat(runner, now_ms + as_millis_i64(LEASE), now_ms)?
                .as_deref()
            {
                Some("force") => stop(
                    MODE_FORCE,
                    "worker stop --force",
                    &mut drain_deadline,
                    &mut kill_deadline,
                ),
                Some(_) => stop(
                    MODE_DRAIN,
                    "worker stop",
                    &mut drain_deadline,
                    &mut kill_deadline,
                ),
                None => {}
            }
            reclaim(store, host, events)?;
            let capped = store.cap_dlq(DLQ_MAX_JOBS, as_millis_i64(DLQ_MAX_AGE), now_ms)?;
            remove_logs(&logs_dir(&options.db), &capped);
            if let Some(keep) = options.keep_finished.filter(|_| now >= next_prune) {
                next_prune = now + PRUNE_EVERY;
                let states = [JobState::Completed, JobState::Cancelled];
                let pruned = store.prune(&states, now_ms - as_millis_i64(keep))?;
                remove_logs(&logs_dir(&options.db), &pruned);
            }
        }
        if options.until_idle
            && shared.mode() == MODE_RUN
            && shared.busy.load(Ordering::SeqCst) == 0
            && !store.has_unfinished(&served)?
        {
            stop(
                MODE_DRAIN,
                "the queue is idle",
                &mut drain_deadline,
                &mut kill_deadline,
            );
        }
        if drain_deadline.is_some_and(|d| now >= d) {
            drain_deadline = None;
            stop(
                MODE_FORCE,
                "the grace period ended",
                &mut drain_deadline,
                &mut kill_deadline,
            );
        }
        if kill_deadline.is_some_and(|d| now >= d) {
            kill_deadline = None;
            for control in &shared.controls {
                control.kill();
            }
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if shared.mode() == MODE_RUN && handles.iter().any(|h| h.is_finished()) {
            // A slot only ends on its own when its store failed: stop all.
            stop(
                MODE_FORCE,
                "a worker slot failed",
                &mut drain_deadline,
                &mut kill_deadline,
            );
        }
    }
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                fatal.get_or_insert(e);
            }
            Err(_) => {
                fatal.get_or_insert(Error::Internal("a worker thread panicked".into()));
            }
        }
    }
    if let Some(error) = fatal {
        return Err(error);
    }
    Ok(Summary {
        completed: shared.completed.load(Ordering::SeqCst),
        dead: shared.dead.load(Ordering::SeqCst),
        signal: (seen_signals > 0).then(|| signals.last()),
    })
}

/// Deletes the log files of deleted jobs; a log already gone is fine.
pub fn remove_logs(dir: &std::path::Path, jobs: &[(String, u32)]) {
    for (id, runs) in jobs {
        for run in 1..=*runs {
            let _ = std::fs::remove_file(worker::log_path(dir, id, run));
        }
    }
}

/// Takes back the jobs of dead workers and reports them.
fn reclaim(store: &mut Store, host: &str, events: &Sender<Event>) -> Result<()> {
    let now = now_ms();
    let me = std::process::id();
    let reclaimed = store.reclaim(host, now - as_millis_i64(LEASE), now, |pid| {
        pid == me || pid_alive(pid)
    })?;
    let worker = match reclaimed.workers.as_slice() {
        [(pid, host)] => format!("pid {pid} on {host}"),
        [] => "an expired lease".to_string(),
        many => format!("{} dead workers", many.len()),
    };
    for (id, dead) in reclaimed.jobs {
        let _ = events.send(Event::Reclaimed {
            id,
            dead,
            worker: worker.clone(),
        });
    }
    Ok(())
}

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// This machine's name, to tell local workers (whose pids can be checked)
/// from remote ones.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
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
