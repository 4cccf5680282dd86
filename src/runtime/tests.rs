//! The supervisor's one error path, proven with a driver that fails on
//! demand: a store call of the supervisor that fails stops the pools
//! (running jobs go back to the queue) and joins every slot before the
//! worker deregisters, so nothing claims or runs under it afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Options, Role, supervisor};
use crate::driver::{self, ChangeFeed, Driver, Durability, JobFilter, Location, Ops, OwnerLock};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::{JobState, NewJob, Origin};
use crate::logs::Logs;

/// A driver whose connection fails every call once `fail` is set; the
/// connections it makes ([`Driver::connect`]) never fail, so only the
/// supervisor's own calls do.
#[derive(Debug)]
struct Flaky {
    inner: Box<dyn Driver>,
    fail: Arc<AtomicBool>,
    fails: bool,
}

impl Flaky {
    fn check(&self) -> Result<()> {
        if self.fails && self.fail.load(Ordering::SeqCst) {
            return Err(Error::Database {
                location: self.inner.location().describe(),
                message: "an injected failure".into(),
                hint: None,
            });
        }
        Ok(())
    }
}

impl Driver for Flaky {
    fn location(&self) -> &Location {
        self.inner.location()
    }

    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        self.check()?;
        self.inner.write(f)
    }

    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Ops) -> Result<()>) -> Result<()> {
        self.check()?;
        self.inner.read(f)
    }

    fn connect(&self, durability: Durability) -> Result<Box<dyn Driver>> {
        Ok(Box::new(Flaky {
            inner: self.inner.connect(durability)?,
            fail: self.fail.clone(),
            fails: false,
        }))
    }

    fn change_feed(&self) -> Result<Box<dyn ChangeFeed>> {
        self.inner.change_feed()
    }

    fn owner_lock(&self, ttl: Duration) -> Result<Box<dyn OwnerLock>> {
        self.inner.owner_lock(ttl)
    }
}

fn job(id: &str, command: &str) -> NewJob {
    let mut job = crate::job::input::command_job(
        command,
        &crate::job::input::Defaults {
            queue: "default".into(),
            priority: 0,
            retry: crate::retry::RetryPolicy::default(),
            timeout_ms: None,
            run_at: 0,
            env: Vec::new(),
            cwd: std::env::temp_dir(),
            now: 0,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    job.id = id.into();
    job.origin = Origin::Cli;
    job
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_failing_store_stops_the_pools_before_the_worker_deregisters() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("create", "a temp dir", e))?;
    let location = Location::Sqlite(dir.path().join("queue.db"));
    let mut check = Engine::open(&location, Durability::Full)?;
    check.enqueue(&[job("a", "sleep 30"), job("b", "true"), job("c", "true")])?;
    let fail = Arc::new(AtomicBool::new(false));
    let engine = Engine::new(Box::new(Flaky {
        inner: driver::open(&location, Durability::Normal)?,
        fail: fail.clone(),
        fails: true,
    }));
    let options = Options {
        logs: Logs::locate(&location, dir.path()),
        location: location.clone(),
        role: Role::Worker,
        count: Some(1),
        queues: Vec::new(),
        jobfile: None,
        follow_jobfile: false,
        until_idle: false,
        grace: Duration::from_secs(30),
        ignore_hangup: false,
    };
    let (sender, mut events) = crate::events::channel();
    let supervising =
        std::thread::spawn(move || supervisor::supervise(engine, &options, None, &sender));
    wait_until("job `a` runs", || {
        check
            .job("a")
            .is_ok_and(|j| j.state == JobState::Processing)
    });
    fail.store(true, Ordering::SeqCst);
    let result = supervising
        .join()
        .map_err(|_| Error::Internal("the supervisor panicked".into()))?;
    assert!(
        matches!(&result, Err(Error::Database { message, .. }) if message == "an injected failure"),
        "the failure is what the worker reports: {result:?}"
    );
    // Every slot has ended by the time the supervisor returns: the
    // senders they held are gone with them.
    loop {
        match events.try_recv() {
            Ok(_) => continue,
            Err(true) => break,
            Err(false) => panic!("a slot still runs after its worker returned"),
        }
    }
    // The running job went back to the queue, uncounted; nothing else ran.
    let a = check.job("a")?;
    assert_eq!((a.state, a.attempts), (JobState::Pending, 0), "{a:?}");
    let attempts = check.attempts("a")?;
    assert_eq!(
        attempts.iter().map(|t| t.outcome).collect::<Vec<_>>(),
        vec![Some(crate::job::AttemptOutcome::Interrupted)]
    );
    let ran: Vec<_> = check
        .list(&JobFilter {
            limit: 10,
            ..JobFilter::default()
        })?
        .into_iter()
        .filter(|j| j.runs > 0 && j.id != "a")
        .map(|j| j.id)
        .collect();
    assert_eq!(ran, Vec::<String>::new(), "nothing was claimed after `a`");
    Ok(())
}
