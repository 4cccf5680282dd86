//! One worker slot: claim the best ready job, run it, record how it ended,
//! claim the next (in the same transaction), and so on. Slots never print;
//! they send [`Event`]s.

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::clock::now_ms;
use crate::duration::as_millis_i64;
use crate::error::Result;
use crate::events::Event;
use crate::exec::{self, Control, StopReason};
use crate::job::{AttemptOutcome, Claimed, JobState};
use crate::retry::Decision;
use crate::store::{ClaimArgs, Finish, QueueFilter, Store};

/// The pool runs and claims.
pub const MODE_RUN: u8 = 0;
/// The pool finishes running jobs and claims no more.
pub const MODE_DRAIN: u8 = 1;
/// The pool stops running jobs and returns them to the queue.
pub const MODE_FORCE: u8 = 2;

/// The longest an idle slot sleeps before looking at the queue again, in
/// case a wake-up was missed.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Wakes idle slots when the database changed.
#[derive(Debug, Default)]
pub struct Waker {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Waker {
    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Waits until a notify after `seen`, or `timeout`.
    pub fn wait_since(&self, seen: u64, timeout: Duration) {
        let guard = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |g| *g == seen);
    }
}

/// What the supervisor and every slot share.
#[derive(Debug)]
pub struct Shared {
    pub waker: Waker,
    mode: AtomicU8,
    /// The id this worker process is registered under; a new one after it
    /// was declared dead and rejoined.
    runner: AtomicI64,
    /// No claims: the worker was declared dead and has not rejoined yet.
    pub suspended: AtomicBool,
    /// A slot found its job rescued by another worker (its result was
    /// discarded): the supervisor looks at its own registration at once.
    pub fenced: AtomicBool,
    pub busy: AtomicUsize,
    pub completed: AtomicU64,
    pub dead: AtomicU64,
}

impl Shared {
    pub fn new(runner: i64) -> Shared {
        Shared {
            waker: Waker::default(),
            mode: AtomicU8::new(MODE_RUN),
            runner: AtomicI64::new(runner),
            suspended: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            dead: AtomicU64::new(0),
        }
    }

    /// The id this worker is registered under now.
    pub fn runner(&self) -> i64 {
        self.runner.load(Ordering::SeqCst)
    }

    /// Registers under a new id (after being declared dead).
    pub fn set_runner(&self, runner: i64) {
        self.runner.store(runner, Ordering::SeqCst);
    }

    pub fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }

    /// Whether slots may claim jobs: the pool runs and the worker is not
    /// waiting to rejoin.
    pub fn claiming(&self) -> bool {
        self.mode() == MODE_RUN && !self.suspended.load(Ordering::SeqCst)
    }

    /// Moves to `mode` if it is a further step than the current one.
    pub fn escalate(&self, mode: u8) -> bool {
        self.mode.fetch_max(mode, Ordering::SeqCst) < mode
    }
}

/// One slot, as the supervisor sees it: stop its job, know what it runs,
/// retire it (it exits after its current job).
#[derive(Debug, Default)]
pub struct SlotState {
    pub control: Control,
    current: Mutex<Option<String>>,
    retire: AtomicBool,
}

impl SlotState {
    /// The job this slot is running, if any.
    pub fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, id: Option<&str>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = id.map(str::to_string);
    }

    /// Asks the slot to exit once its current job (if any) has finished.
    pub fn retire(&self) {
        self.retire.store(true, Ordering::SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retire.load(Ordering::SeqCst)
    }
}

/// What the slots of one pool share; the supervisor may change it live.
#[derive(Debug)]
pub struct PoolConfig {
    pub queues: RwLock<QueueFilter>,
    pub lease: Duration,
    pub logs_dir: PathBuf,
    pub log_max_bytes: AtomicU64,
}

/// The log file of run `run` of job `id`; `None` for an id that is not a
/// valid job id (a row queuectl did not write), which must never name a
/// file.
pub fn log_path(logs_dir: &std::path::Path, id: &str, run: u32) -> Option<PathBuf> {
    crate::job::validate_id(id).ok()?;
    Some(logs_dir.join(format!("{id}.{run}.log")))
}

/// Runs slot `slot` until the pool drains, is forced to stop, or the slot
/// is retired.
pub fn run_slot(
    slot: usize,
    mut store: Store,
    config: &PoolConfig,
    state: &SlotState,
    shared: &Shared,
    events: &Sender<Event>,
) -> Result<()> {
    // Claims with the id the worker has now, alone or in the transaction
    // that finishes the last job; returns the claim (with the id it was
    // made under) and whether the finished attempt was still this worker's.
    let claim = |store: &mut Store, finish: Option<&Finish<'_>>| {
        let now = finish.map_or_else(now_ms, |f| f.now);
        let queues = config.queues.read().unwrap_or_else(|p| p.into_inner());
        let runner = shared.runner();
        let args = ClaimArgs {
            runner,
            queues: &queues,
            lease_until: now + as_millis_i64(config.lease),
            now,
        };
        let claiming = shared.claiming() && !state.is_retired();
        let (owned, claimed) = match finish {
            Some(finish) => store.finish(finish, claiming.then_some(args))?,
            None if claiming => (true, store.claim(args)?),
            None => (true, None),
        };
        Ok::<_, crate::error::Error>((owned, claimed.map(|job| (runner, job))))
    };
    let mut next: Option<(i64, Claimed)> = None;
    loop {
        if shared.mode() != MODE_RUN || state.is_retired() {
            if let Some((runner, job)) = next.take() {
                release(&mut store, runner, &job)?;
            }
            return Ok(());
        }
        let seen = shared.waker.generation();
        let (runner, job) = match next.take() {
            Some(claimed) => claimed,
            None => match claim(&mut store, None)?.1 {
                Some(job) => job,
                None => {
                    let now = now_ms();
                    let queues = config
                        .queues
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    // A job due later: wake for it. A job due now that could
                    // not be claimed waits for a dependency, which only a
                    // commit (and so a wake-up) can change.
                    let wait = match store.next_run_at(&queues)? {
                        Some(due) if due > now => {
                            Duration::from_millis((due - now) as u64).min(IDLE_RECHECK)
                        }
                        _ => IDLE_RECHECK,
                    };
                    shared.waker.wait_since(seen, wait);
                    continue;
                }
            },
        };
        shared.busy.fetch_add(1, Ordering::SeqCst);
        state.set_current(Some(&job.id));
        let _ = events.send(Event::Started {
            slot,
            id: job.id.clone(),
            definition: job.definition.clone(),
            command: job.command.clone(),
            queue: job.queue.clone(),
            attempt: job.attempts,
            max_attempts: job.retry.max_attempts(),
        });
        let exit = run_attempt(&job, config, &state.control);
        let ended = judge(&job, &exit);
        let now = now_ms();
        let finish = Finish {
            id: &job.id,
            run: job.run,
            runner,
            outcome: ended.outcome,
            exit_code: Some(exit.code),
            error: ended.error.as_deref(),
            output_bytes: exit.output_bytes,
            state: ended.state,
            run_at: ended.run_at,
            now,
        };
        let (owned, claimed) = claim(&mut store, Some(&finish))?;
        state.set_current(None);
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        next = claimed;
        if !owned {
            // Declared dead while it ran: another worker rescued the job,
            // and its history is the one that stands.
            shared.fenced.store(true, Ordering::SeqCst);
            let _ = events.send(Event::Discarded {
                slot,
                id: job.id.clone(),
                definition: job.definition.clone(),
                attempt: job.attempts,
            });
            continue;
        }
        match ended.state {
            JobState::Completed => shared.completed.fetch_add(1, Ordering::SeqCst),
            JobState::Dead => shared.dead.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        let _ = events.send(Event::Finished {
            slot,
            id: job.id.clone(),
            definition: job.definition.clone(),
            attempt: job.attempts,
            outcome: ended.outcome,
            state: ended.state,
            exit_code: exit.code,
            duration: exit.duration,
            retry_at: ended.run_at.filter(|_| ended.state == JobState::Failed),
            error: ended.error,
            output_tail: matches!(
                ended.outcome,
                AttemptOutcome::Failed | AttemptOutcome::Timeout
            )
            .then(|| log_path(&config.logs_dir, &job.id, job.run))
            .flatten()
            .map(|path| tail_lines(&path, OUTPUT_TAIL_LINES)),
        });
    }
}

/// How many lines of a failed attempt's output its event carries.
const OUTPUT_TAIL_LINES: usize = 20;
/// …read from at most this many bytes at the end of its log.
const OUTPUT_TAIL_BYTES: u64 = 8192;

/// The last `lines` lines of a file (lossy UTF-8), from at most
/// [`OUTPUT_TAIL_BYTES`] of its end; empty when there is no file.
pub fn tail_lines(path: &std::path::Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(OUTPUT_TAIL_BYTES);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(OUTPUT_TAIL_BYTES).read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    // A read from the middle starts mid-line: drop that partial line.
    let text = if start > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Resolves the job's environment and runs it.
fn run_attempt(job: &Claimed, config: &PoolConfig, control: &Control) -> exec::Exit {
    let not_run = |error: String| exec::Exit {
        code: exec::EXIT_CANNOT_START,
        timed_out: false,
        error: Some(error),
        output_bytes: 0,
        stopped: StopReason::None,
        duration: Duration::ZERO,
    };
    let Some(log_path) = log_path(&config.logs_dir, &job.id, job.run) else {
        return not_run(format!(
            "invalid job id `{}` in the database: not run (an id names its log files)",
            job.id
        ));
    };
    let mut env = Vec::with_capacity(job.env.len() + 3);
    for (key, value) in &job.env {
        match exec::expand_env(value, |name| std::env::var(name).ok()) {
            Ok(value) => env.push((key.clone(), value)),
            Err(message) => {
                return not_run(format!("cannot start the job: env `{key}`: {message}"));
            }
        }
    }
    env.push(("QUEUECTL_JOB_ID".into(), job.id.clone()));
    env.push(("QUEUECTL_ATTEMPT".into(), job.attempts.to_string()));
    env.push(("QUEUECTL_QUEUE".into(), job.queue.clone()));
    let cwd = job.cwd.as_ref().map(PathBuf::from);
    let spec = exec::Spec {
        id: &job.id,
        command: &job.command,
        env: &env,
        cwd: cwd.as_deref(),
        timeout: job
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        log_path,
        log_max_bytes: config.log_max_bytes.load(Ordering::Relaxed),
    };
    exec::run(&spec, control)
}

/// Where an attempt leaves its job.
#[derive(Debug)]
struct Ended {
    outcome: AttemptOutcome,
    state: JobState,
    run_at: Option<i64>,
    error: Option<String>,
}

/// Decides what an attempt's exit means for its job.
fn judge(job: &Claimed, exit: &exec::Exit) -> Ended {
    let now = now_ms();
    let ended = |outcome, state, run_at, error| Ended {
        outcome,
        state,
        run_at,
        error,
    };
    if crate::job::validate_id(&job.id).is_err() {
        return ended(
            AttemptOutcome::Failed,
            JobState::Dead,
            None,
            exit.error.clone(),
        );
    }
    if exit.code == 0 && !exit.timed_out {
        return ended(
            AttemptOutcome::Completed,
            JobState::Completed,
            None,
            exit.error.clone(),
        );
    }
    match exit.stopped {
        StopReason::Interrupt | StopReason::Rescued => {
            let why = "stopped by a worker shutdown; returned to the queue".to_string();
            return ended(
                AttemptOutcome::Interrupted,
                JobState::Pending,
                Some(now),
                Some(why),
            );
        }
        StopReason::Cancel => {
            let why = "cancelled while running".to_string();
            return ended(
                AttemptOutcome::Cancelled,
                JobState::Cancelled,
                None,
                Some(why),
            );
        }
        StopReason::None => {}
    }
    let outcome = if exit.timed_out {
        AttemptOutcome::Timeout
    } else {
        AttemptOutcome::Failed
    };
    let what = match (&exit.error, exit.timed_out) {
        (Some(error), _) => error.clone(),
        (None, true) => format!(
            "timed out after {}",
            crate::duration::short(Duration::from_millis(
                job.timeout_ms.unwrap_or(0).max(0) as u64
            ))
        ),
        (None, false) => format!("exit code {}", exit.code),
    };
    let random = (RandomState::new().hash_one(now) >> 11) as f64 / (1u64 << 53) as f64;
    match job.retry.decide(job.attempts, Some(exit.code), random) {
        Decision::Retry(delay) => ended(
            outcome,
            JobState::Failed,
            Some(now + as_millis_i64(delay)),
            Some(what),
        ),
        Decision::Dead(reason) => ended(
            outcome,
            JobState::Dead,
            None,
            Some(format!("{what}; {}", reason.describe(job.attempts))),
        ),
    }
}

/// Gives a claimed but unstarted job back to the queue.
fn release(store: &mut Store, runner: i64, job: &Claimed) -> Result<()> {
    let now = now_ms();
    store.finish(
        &Finish {
            id: &job.id,
            run: job.run,
            runner,
            outcome: AttemptOutcome::Interrupted,
            exit_code: None,
            error: Some("released unstarted by a stopping worker"),
            output_bytes: 0,
            state: JobState::Pending,
            run_at: Some(now),
            now,
        },
        None,
    )?;
    Ok(())
}
