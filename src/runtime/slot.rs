//! One worker slot: claim the best ready job, run it, record how it ended
//! and claim the next in the same transaction, and so on. Slots never
//! print; they send [`Event`]s. What a slot shares with the supervisor is
//! here too: the pool mode, the waker of idle slots, each slot's state.

use crate::events::Sender;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::Duration;

use crate::clock::now_ms;
use crate::driver::{Output, QueueFilter};
use crate::duration::as_millis_i64;
use crate::engine::{AttemptEnd, ClaimRequest, Done, Ended, Engine, finish, random_unit};
use crate::error::Result;
use crate::events::Event;
use crate::exec::{self, Control, StopReason};
use crate::job::{AttemptOutcome, Claimed, JobState};
use crate::logs::Logs;

/// How the pools of a worker process run: each step only ever goes
/// further (run → drain → force).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PoolMode {
    /// Slots claim and run jobs.
    Run = 0,
    /// Slots finish their running jobs and claim no more.
    Drain = 1,
    /// Running jobs are stopped and go back to the queue.
    Force = 2,
}

impl PoolMode {
    fn from_u8(value: u8) -> PoolMode {
        match value {
            0 => PoolMode::Run,
            1 => PoolMode::Drain,
            _ => PoolMode::Force,
        }
    }
}

/// The longest an idle slot sleeps before looking at the queue again, in
/// case a wake-up was missed.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// How many lines of a failed attempt's output its event carries.
const OUTPUT_TAIL_LINES: usize = 20;

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
    /// The queue limits of this process's jobfile, which its claims
    /// honour beside the recorded ones.
    pub limits: RwLock<BTreeMap<String, u32>>,
}

impl Shared {
    pub fn new(runner: i64, limits: BTreeMap<String, u32>) -> Shared {
        Shared {
            waker: Waker::default(),
            mode: AtomicU8::new(PoolMode::Run as u8),
            runner: AtomicI64::new(runner),
            suspended: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            limits: RwLock::new(limits),
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

    pub fn mode(&self) -> PoolMode {
        PoolMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// Whether slots may claim jobs: the pool runs and the worker is not
    /// waiting to rejoin.
    pub fn claiming(&self) -> bool {
        self.mode() == PoolMode::Run && !self.suspended.load(Ordering::SeqCst)
    }

    /// Moves to `mode` if it is a further step than the current one.
    pub fn escalate(&self, mode: PoolMode) -> bool {
        self.mode.fetch_max(mode as u8, Ordering::SeqCst) < mode as u8
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
    pub logs: Logs,
    pub log_max_bytes: AtomicU64,
}

/// Runs slot `slot` until the pool drains, is forced to stop, or the slot
/// is retired.
pub fn run_slot(
    slot: usize,
    mut engine: Engine,
    config: &PoolConfig,
    state: &SlotState,
    shared: &Shared,
    events: &Sender,
) -> Result<()> {
    let mut next: Option<(i64, Claimed)> = None;
    let mut buf = vec![0u8; exec::READ_BUFFER];
    loop {
        if shared.mode() != PoolMode::Run || state.is_retired() {
            if let Some((runner, job)) = next.take() {
                release(&mut engine, runner, &job)?;
            }
            return Ok(());
        }
        let seen = shared.waker.generation();
        let (runner, job) = match next.take() {
            Some(claimed) => claimed,
            None => match claim(&mut engine, config, state, shared, None)?.1 {
                Some(job) => job,
                None => {
                    idle(&mut engine, config, shared, seen)?;
                    continue;
                }
            },
        };
        shared.busy.fetch_add(1, Ordering::SeqCst);
        state.set_current(Some(&job.id));
        events.send(Event::Started {
            slot,
            id: job.id.clone(),
            definition: job.definition.clone(),
            command: job.command.clone(),
            queue: job.queue.clone(),
            attempt: job.attempts,
            max_attempts: job.retry.max_attempts(),
        });
        let exit = run_attempt(&mut engine, &job, config, &state.control, &mut buf);
        if exit.output_bytes > 0 && engine.keeps_output() {
            // Readable from any host once the attempt is over.
            let kept = exit.output_bytes.saturating_sub(exit.output_dropped);
            keep_output(&mut engine, config, &job, exit.output_bytes, kept)?;
        }
        let now = now_ms();
        let ended = finish::judge(
            &job,
            &AttemptEnd {
                code: exit.code,
                timed_out: exit.timed_out,
                error: exit.error.as_deref(),
                stopped: exit.stopped,
            },
            now,
            random_unit(),
        );
        let done = Done {
            job: &job,
            runner,
            ended: &ended,
            exit_code: Some(exit.code),
            output_bytes: exit.output_bytes,
            now,
        };
        let (owned, claimed) = claim(&mut engine, config, state, shared, Some(&done))?;
        state.set_current(None);
        shared.busy.fetch_sub(1, Ordering::SeqCst);
        next = claimed;
        if !owned {
            // Declared dead while it ran: another worker rescued the job,
            // and its history is the one that stands.
            shared.fenced.store(true, Ordering::SeqCst);
            events.send(Event::Discarded {
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
        let failed = matches!(
            ended.outcome,
            AttemptOutcome::Failed | AttemptOutcome::Timeout
        );
        events.send(Event::Finished {
            slot,
            id: job.id.clone(),
            definition: job.definition.clone(),
            attempt: job.attempts,
            outcome: ended.outcome,
            state: ended.state,
            exit_code: exit.code,
            duration: exit.duration,
            retry_at: ended.run_at.filter(|_| ended.state == JobState::Failed),
            output_tail: failed.then(|| config.logs.tail(&job.id, job.run, OUTPUT_TAIL_LINES)),
            error: ended.error,
        });
    }
}

/// Claims with the id the worker has now, alone or in the transaction
/// that records `done`; returns whether `done`'s attempt was still this
/// worker's, and the claim with the id it was made under.
fn claim(
    engine: &mut Engine,
    config: &PoolConfig,
    state: &SlotState,
    shared: &Shared,
    done: Option<&Done<'_>>,
) -> Result<(bool, Option<(i64, Claimed)>)> {
    let now = done.map_or_else(now_ms, |d| d.now);
    let queues = config.queues.read().unwrap_or_else(|p| p.into_inner());
    let limits = shared.limits.read().unwrap_or_else(|p| p.into_inner());
    let runner = shared.runner();
    let request = ClaimRequest {
        runner,
        queues: &queues,
        limits: &limits,
        lease_until: now + as_millis_i64(config.lease),
        now,
        count: 1,
    };
    let claiming = shared.claiming() && !state.is_retired();
    let (owned, claimed) = match done {
        Some(done) => engine.finish(done, claiming.then_some(&request))?,
        None if claiming => (true, engine.claim(&request)?),
        None => (true, Vec::new()),
    };
    Ok((owned, claimed.into_iter().next().map(|job| (runner, job))))
}

/// Nothing to claim: sleeps until a change wakes the slot, the next job
/// of its queues is due, or a second passes.
fn idle(engine: &mut Engine, config: &PoolConfig, shared: &Shared, seen: u64) -> Result<()> {
    let now = now_ms();
    let queues = config
        .queues
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    // A job due later: wake for it. A job due now that could not be
    // claimed waits for a limit or a running job of its key, which only a
    // commit (and so a wake-up) can change.
    let wait = match engine.next_run_at(&queues)? {
        Some(due) if due > now => {
            Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(IDLE_RECHECK)
        }
        _ => IDLE_RECHECK,
    };
    shared.waker.wait_since(seen, wait);
    Ok(())
}

/// Resolves the job's environment and runs it; where the database keeps
/// output, what it writes is stored as it goes (for `logs --follow` on
/// another host), at most every [`exec::LIVE_EVERY`].
fn run_attempt(
    engine: &mut Engine,
    job: &Claimed,
    config: &PoolConfig,
    control: &Control,
    buf: &mut [u8],
) -> exec::Exit {
    let not_run = |error: String| exec::Exit {
        code: exec::EXIT_CANNOT_START,
        timed_out: false,
        error: Some(error),
        output_bytes: 0,
        output_dropped: 0,
        stopped: StopReason::None,
        duration: Duration::ZERO,
    };
    let Some(log_path) = config.logs.path(&job.id, job.run) else {
        return not_run(format!(
            "invalid job id `{}` in the database: not run (an id names its log files)",
            job.id
        ));
    };
    let mut env = Vec::with_capacity(job.env.len() + 4);
    for (key, value) in &job.env {
        match crate::job::template::expand_env(value, |name| std::env::var(name).ok()) {
            Ok(value) => env.push((key.clone(), value)),
            Err(message) => {
                return not_run(format!("cannot start the job: env `{key}`: {message}"));
            }
        }
    }
    if let Some(payload) = &job.payload {
        env.extend(payload.env());
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
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        log_path,
        log_max_bytes: config.log_max_bytes.load(Ordering::Relaxed),
    };
    if !engine.keeps_output() {
        return exec::run(&spec, control, buf);
    }
    let mut live = |produced: u64| {
        // A failure here costs the live view, not the attempt; the output
        // is stored again when the attempt ends.
        // While it runs, the log holds its tail and no note.
        let _ = keep_output(engine, config, job, produced, u64::MAX);
    };
    exec::run_live(&spec, control, buf, &mut live)
}

/// Copies the output an attempt's log kept (the last `kept` bytes of the
/// file: not its note of what it dropped) into the database, with how
/// much the job had written by then.
fn keep_output(
    engine: &mut Engine,
    config: &PoolConfig,
    job: &Claimed,
    produced: u64,
    kept: u64,
) -> Result<()> {
    let mut bytes = config.logs.read(&job.id, job.run)?;
    let note = bytes
        .len()
        .saturating_sub(usize::try_from(kept).unwrap_or(usize::MAX));
    bytes.drain(..note);
    engine.store_output(&job.id, job.run, &Output { bytes, produced })
}

/// Gives a claimed but unstarted job back to the queue.
fn release(engine: &mut Engine, runner: i64, job: &Claimed) -> Result<()> {
    let now = now_ms();
    let ended = Ended::released(now);
    engine.finish(
        &Done {
            job,
            runner,
            ended: &ended,
            exit_code: None,
            output_bytes: 0,
            now,
        },
        None,
    )?;
    Ok(())
}
