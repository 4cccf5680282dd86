//! Worker processes: rescue, queue limits under concurrent claimers,
//! registrations and stop requests, and the side channels.

use super::*;

// ---------------------------------------------------------------------
// Rescue (engine).
// ---------------------------------------------------------------------

pub(super) fn rescue(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    let later = NOW + 60_000;
    register(e, 1)?;
    register(e, 2)?;
    insert(
        e,
        &[NewJob {
            retry: RetryPolicy {
                max_retries: 2,
                ..RetryPolicy::default()
            },
            ..def_job("r1", "nightly")
        }],
    )?;
    let r1 = claim_only(e, 1, "r1")?;
    insert(
        e,
        &[NewJob {
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            ..def_job("r2", "deploy")
        }],
    )?;
    claim_only(e, 2, "r2")?;
    e.enqueue(&[after(def_job("notify", "notify"), &["deploy"])])?;

    // A heartbeat that is not the one the worker has: nothing happens.
    let nothing = e.rescue(&[(1, NOW - 1)], later, 0.0)?;
    assert!(
        nothing.workers.is_empty() && nothing.jobs.is_empty(),
        "a stale heartbeat removes nothing: {nothing:?}"
    );
    assert_eq!(e.presence(1)?, Presence::Alive(None));
    assert_eq!(state(e, "r1")?, JobState::Processing, "its job untouched");

    // The heartbeat it has: removed, its job's attempt lost.
    let rescued = e.rescue(&[(1, NOW)], later, 0.0)?;
    assert_eq!(rescued.workers, [(1, 1001, "test-host".to_string())]);
    assert_eq!(rescued.jobs, [("r1".to_string(), false)]);
    assert_eq!(e.presence(1)?, Presence::Gone);
    let job = e.job("r1")?;
    assert_eq!(
        (
            job.state,
            job.run_at,
            job.attempts,
            job.finished_at,
            job.last_error.as_deref()
        ),
        (JobState::Failed, later + 2000, 1, None, Some(LOST)),
        "a lost attempt counts and waits its backoff (2^1 s)"
    );
    assert_eq!(
        attempt_rows(e, "r1")?,
        [(
            1,
            Some(AttemptOutcome::Lost),
            None,
            Some(later),
            Some(LOST.to_string()),
            0
        )]
    );
    assert_eq!(
        e.latest_states(&strings(&["nightly"]))?,
        [("nightly".to_string(), Some(JobState::Failed))],
        "the latest run follows a rescue"
    );
    assert!(
        !finish(e, &r1, 1, &completed(), later + 1)?,
        "the removed worker's own finish is refused"
    );
    assert_eq!(state(e, "r1")?, JobState::Failed, "and writes nothing");

    // A worker that heartbeats after the rescuer looked is not removed.
    assert_eq!(e.heartbeat(2, LEASE, NOW + 10)?, Presence::Alive(None));
    let nothing = e.rescue(&[(2, NOW)], later, 0.0)?;
    assert!(nothing.workers.is_empty() && nothing.jobs.is_empty());
    assert_eq!(state(e, "r2")?, JobState::Processing);
    let rescued = e.rescue(&[(2, NOW + 10)], later, 0.0)?;
    assert_eq!(rescued.jobs, [("r2".to_string(), true)], "no retries: dead");
    let job = e.job("r2")?;
    assert_eq!((job.state, job.finished_at), (JobState::Dead, Some(later)));
    assert_eq!(
        e.job("notify")?.reason.as_deref(),
        Some("dependency `deploy` is dead"),
        "the cascade follows a rescue"
    );

    // A job whose runner is not registered at all is an orphan.
    register(e, 3)?;
    insert(e, &[job_in("r3", "solo")])?;
    claim_only(e, 3, "r3")?;
    e.deregister_worker(3)?;
    assert_eq!(
        e.read(|ops| ops.orphaned_jobs())?,
        [Orphan {
            id: "r3".into(),
            definition: None,
            attempts: 1,
            retry: RetryPolicy::default(),
        }]
    );
    assert!(e.has_orphaned_jobs()?);
    let rescued = e.rescue(&[], later, 0.0)?;
    assert!(rescued.workers.is_empty());
    assert_eq!(rescued.jobs, [("r3".to_string(), false)]);
    assert!(!e.has_orphaned_jobs()?);
    Ok(())
}

// ---------------------------------------------------------------------
// Paused queues.
// ---------------------------------------------------------------------

/// A paused queue keeps its jobs and yields none to a claim (limited or
/// not, whatever the filter) until it is resumed; pausing twice keeps the
/// first time; the until-idle check does not wait for it.
pub(super) fn a_paused_queue_is_skipped_until_resumed(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    insert(
        e,
        &[
            NewJob {
                priority: 9,
                ..job_in("held", "deploy")
            },
            job_in("free", "default"),
        ],
    )?;
    assert_eq!(
        e.set_paused(&strings(&["deploy", "deploy"]), true, NOW)?,
        [true, false],
        "the second pause changes nothing"
    );
    e.set_paused(&strings(&["deploy"]), true, NOW + 5)?;
    assert_eq!(
        e.paused_queues()?,
        BTreeMap::from([("deploy".to_string(), NOW)]),
        "a queue stays paused since its first pause"
    );
    assert!(e.has_runnable(&QueueFilter::Any)?, "`free` is runnable");
    // The higher priority job is skipped: only `free` is taken.
    assert_eq!(ids(&claim(e, W, 5)?), ["free"]);
    let deploy = QueueFilter::Only(strings(&["deploy"]));
    assert!(claim(e, W, 5)?.is_empty(), "nothing of a paused queue");
    assert!(e.has_unfinished(&deploy)?, "the paused job still waits");
    assert!(
        !e.has_runnable(&deploy)?,
        "until-idle does not wait for a paused queue"
    );
    assert!(
        e.has_runnable(&QueueFilter::Any)?,
        "`free` runs (it is processing)"
    );
    // A limit on the paused queue does not lift the pause.
    let limits = BTreeMap::from([("deploy".to_string(), 5)]);
    let request = ClaimRequest {
        runner: W,
        queues: &deploy,
        limits: &limits,
        lease_until: LEASE,
        now: NOW,
        count: 5,
    };
    assert!(e.claim(&request)?.is_empty(), "limited and paused");
    assert_eq!(e.set_paused(&strings(&["deploy"]), false, NOW)?, [true]);
    assert_eq!(e.set_paused(&strings(&["deploy"]), false, NOW)?, [false]);
    assert!(e.paused_queues()?.is_empty());
    assert_eq!(ids(&e.claim(&request)?), ["held"], "resumed, it is claimed");
    Ok(())
}

// ---------------------------------------------------------------------
// Queue limits under concurrent claimers.
// ---------------------------------------------------------------------

/// Claimers, each a thread with its own connection and worker row.
const CLAIMERS: i64 = 6;
/// Claims each claimer makes.
const TRIES: usize = 6;

pub(super) fn a_requested_limit_holds_under_concurrent_claimers(q: &mut Queue) -> Result<()> {
    let limits = BTreeMap::from([("limited".to_string(), 2)]);
    limit_holds_under_concurrent_claimers(q, &limits)
}

pub(super) fn a_recorded_limit_holds_under_concurrent_claimers(q: &mut Queue) -> Result<()> {
    q.engine
        .write(|ops| ops.set_queue_limit("limited", Some(2)))?;
    limit_holds_under_concurrent_claimers(q, &BTreeMap::new())
}

/// Many claimers, none finishing: exactly 2 jobs of `limited` are
/// claimed (and every job of the unlimited queue); one finish lets
/// exactly one more be claimed.
fn limit_holds_under_concurrent_claimers(
    q: &mut Queue,
    limits: &BTreeMap<String, u32>,
) -> Result<()> {
    let runners: Vec<i64> = (100..100 + CLAIMERS).collect();
    for &runner in &runners {
        register(&mut q.engine, runner)?;
    }
    let mut jobs: Vec<NewJob> = (0..10)
        .map(|i| job_in(&format!("l{i:02}"), "limited"))
        .collect();
    jobs.extend((0..3).map(|i| job_in(&format!("f{i}"), "free")));
    insert(&mut q.engine, &jobs)?;

    let taken = claim_concurrently(q, &runners, limits)?;
    let of = |taken: &[(i64, Claimed)], queue: &str| -> Vec<String> {
        let mut ids: Vec<String> = taken
            .iter()
            .filter(|(_, c)| c.queue == queue)
            .map(|(_, c)| c.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let limited = of(&taken, "limited");
    assert_eq!(
        limited.len(),
        2,
        "the claims took 2 limited jobs: {limited:?}"
    );
    assert_eq!(
        of(&taken, "free"),
        ["f0", "f1", "f2"],
        "the limit holds its queue only"
    );
    let e = &mut q.engine;
    let processing: BTreeSet<String> = e
        .list(&JobFilter {
            state: Some(JobState::Processing),
            limit: 100,
            ..JobFilter::default()
        })?
        .into_iter()
        .map(|j| j.id)
        .collect();
    let claimed: BTreeSet<String> = taken.iter().map(|(_, c)| c.id.clone()).collect();
    assert_eq!(claimed.len(), taken.len(), "no job claimed twice");
    assert_eq!(
        processing, claimed,
        "what is processing is what was claimed"
    );
    assert_eq!(
        e.read(|ops| ops.running_counts(&strings(&["limited"])))?,
        [2]
    );

    // One finishes: exactly one more.
    let (runner, first) = taken
        .iter()
        .find(|(_, c)| c.queue == "limited")
        .ok_or_else(|| Error::Internal("no limited job claimed".into()))?;
    assert!(finish(e, first, *runner, &completed(), NOW + 1)?);
    let more = claim_concurrently(q, &runners, limits)?;
    let more_limited = of(&more, "limited");
    assert_eq!(
        (more_limited.len(), more.len()),
        (1, 1),
        "one finish frees one slot: {more_limited:?}"
    );
    assert_eq!(
        q.engine
            .read(|ops| ops.running_counts(&strings(&["limited", "free"])))?,
        [2, 3]
    );
    Ok(())
}

/// Every runner claims `TRIES` times at once (2 jobs at a time), each on
/// its own connection and thread; returns (runner, job) for each claim.
fn claim_concurrently(
    q: &Queue,
    runners: &[i64],
    limits: &BTreeMap<String, u32>,
) -> Result<Vec<(i64, Claimed)>> {
    let engines: Vec<Engine> = runners.iter().map(|_| q.connect()).collect::<Result<_>>()?;
    let start = Barrier::new(runners.len());
    let results: Vec<Result<Vec<(i64, Claimed)>>> = std::thread::scope(|scope| {
        let claimers: Vec<_> = engines
            .into_iter()
            .zip(runners)
            .map(|(mut engine, &runner)| {
                let start = &start;
                scope.spawn(move || -> Result<Vec<(i64, Claimed)>> {
                    start.wait();
                    let mut taken = Vec::new();
                    for _ in 0..TRIES {
                        let claimed = engine.claim(&ClaimRequest {
                            runner,
                            queues: &QueueFilter::Any,
                            limits,
                            lease_until: LEASE,
                            now: NOW,
                            count: 2,
                        })?;
                        taken.extend(claimed.into_iter().map(|c| (runner, c)));
                    }
                    Ok(taken)
                })
            })
            .collect();
        claimers
            .into_iter()
            .map(|claimer| {
                claimer
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("a claimer panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::new();
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}

// ---------------------------------------------------------------------
// Workers.
// ---------------------------------------------------------------------

pub(super) fn workers_and_stop_requests(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    e.register_worker(&Registration {
        id: 7,
        pid: 4242,
        host: "h",
        process_view: Some("boot:ns"),
        queues: &strings(&["default:2"]),
        slots: 2,
        lease_ms: 15_000,
        now: NOW,
    })?;
    let info = |e: &mut Engine| -> Result<serde_json::Value> {
        serde_json::to_value(e.workers()?).map_err(|e| Error::Internal(e.to_string()))
    };
    assert_eq!(
        info(e)?,
        json!([{
            "id": 7, "pid": 4242, "host": "h", "process_view": "boot:ns",
            "queues": ["default:2"], "slots": 2, "busy": 0, "started_at": NOW,
            "heartbeat_at": NOW, "lease_ms": 15_000, "stop": null,
        }]),
        "a registered worker"
    );
    assert_eq!(
        e.write(|ops| ops.touch_worker(7, NOW + 10))?,
        Presence::Alive(None)
    );
    assert_eq!(e.presence(7)?, Presence::Alive(None));
    assert_eq!(e.write(|ops| ops.touch_worker(99, NOW))?, Presence::Gone);
    assert_eq!(e.presence(99)?, Presence::Gone);
    e.update_worker(7, &strings(&["batch:1"]), 1)?;
    let all = e.workers()?;
    assert_eq!(all.len(), 1);
    let w = &all[0];
    assert_eq!(
        (w.heartbeat_at, w.queues.clone(), w.slots),
        (NOW + 10, strings(&["batch:1"]), 1),
        "touched and updated"
    );

    // Its jobs.
    insert(e, &[job("a"), def_job("b", "build"), job("c")])?;
    let claimed = claim(e, 7, 2)?;
    assert_eq!(ids(&claimed), ["a", "b"]);
    assert_eq!(e.workers()?[0].busy, 2, "busy counts its running jobs");
    assert_eq!(
        e.running_jobs(&[7, 8])?,
        [
            ("a".to_string(), None),
            ("b".to_string(), Some("build".into()))
        ]
    );
    // No read of `Ops` returns a lease (liveness is judged by heartbeats),
    // so all a case can check of `extend_leases` is that it leaves the
    // jobs as they were.
    e.write(|ops| ops.extend_leases(7, NOW + 99_000))?;
    assert_eq!(
        e.heartbeat(7, NOW + 99_000, NOW + 20)?,
        Presence::Alive(None),
        "a heartbeat extends the leases"
    );
    assert_eq!(
        e.running_jobs(&[7])?,
        [
            ("a".to_string(), None),
            ("b".to_string(), Some("build".into()))
        ],
        "leases extended: still its jobs"
    );
    assert!(e.cancel_requests(7)?.is_empty());
    e.write(|ops| ops.request_cancel(&strings(&["a"]), None, NOW))?;
    e.write(|ops| ops.request_cancel(&strings(&["b", "c"]), Some("why"), NOW))?;
    assert_eq!(e.cancel_requests(7)?, ["a", "b"], "only running jobs");
    assert_eq!(
        (
            e.job("a")?.reason,
            e.job("b")?.reason,
            e.job("c")?.reason,
            state(e, "c")?
        ),
        (None, Some("why".into()), None, JobState::Pending),
        "a reason is given; a waiting job is left alone"
    );
    e.write(|ops| ops.request_cancel(&strings(&["b"]), Some("because"), NOW))?;
    e.write(|ops| ops.request_cancel(&strings(&["b"]), None, NOW))?;
    assert_eq!(
        e.job("b")?.reason.as_deref(),
        Some("because"),
        "a new reason replaces the old; none keeps it"
    );

    // Stop requests: force is never weakened.
    let stopping = e.request_stop(StopMode::Drain)?;
    assert_eq!(
        stopping
            .workers
            .iter()
            .map(|w| (w.id, w.stop))
            .collect::<Vec<_>>(),
        [(7, Some(StopMode::Drain))]
    );
    assert_eq!(
        stopping.running,
        [
            ("a".to_string(), None),
            ("b".to_string(), Some("build".into()))
        ],
        "the jobs running when the workers were asked"
    );
    assert_eq!(e.presence(7)?, Presence::Alive(Some(StopMode::Drain)));
    register(e, 8)?;
    assert_eq!(
        e.presence(8)?,
        Presence::Alive(None),
        "a worker registered later is not asked"
    );
    e.request_stop(StopMode::Force)?;
    assert_eq!(e.presence(7)?, Presence::Alive(Some(StopMode::Force)));
    e.request_stop(StopMode::Drain)?;
    assert_eq!(
        (e.presence(7)?, e.presence(8)?),
        (
            Presence::Alive(Some(StopMode::Force)),
            Presence::Alive(Some(StopMode::Force))
        ),
        "a drain after a force does not weaken it"
    );
    assert_eq!(
        e.heartbeat(7, LEASE, NOW + 30)?,
        Presence::Alive(Some(StopMode::Force))
    );

    // Removal: only with the heartbeat it has.
    assert!(
        e.write(|ops| ops.remove_workers(&[(7, NOW)]))?.is_empty(),
        "a stale heartbeat"
    );
    assert_eq!(
        e.write(|ops| ops.remove_workers(&[(7, NOW + 30), (8, NOW)]))?,
        [
            (7, 4242, "h".to_string()),
            (8, 1008, "test-host".to_string())
        ]
    );
    assert_eq!(
        (e.presence(7)?, e.presence(8)?),
        (Presence::Gone, Presence::Gone)
    );
    assert_eq!(e.heartbeat(7, LEASE, NOW + 40)?, Presence::Gone);
    register(e, 9)?;
    e.deregister_worker(9)?;
    assert_eq!(e.presence(9)?, Presence::Gone, "deregistered");
    assert!(e.workers()?.is_empty());
    assert_eq!(
        e.read(|ops| ops.orphaned_jobs())?
            .into_iter()
            .map(|o| o.id)
            .collect::<Vec<_>>(),
        ["a", "b"],
        "its jobs are orphans now"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// The side channels.
// ---------------------------------------------------------------------

pub(super) fn side_channels(q: &mut Queue) -> Result<()> {
    // The owner lock: one holder at a time; released when dropped, and
    // then taken by one that tries again.
    let ttl = Duration::from_secs(30);
    let other = q.connect()?;
    let mut first = q.engine.owner_lock(ttl)?;
    assert_eq!(first.holder(), None, "the first taker holds it");
    let mut second = other.owner_lock(ttl)?;
    assert!(second.holder().is_some(), "the second learns who holds it");
    assert!(!second.try_take()?, "not while the first holds it");
    assert!(first.try_take()?, "the holder holds it");
    assert!(!first.lost(), "nobody took it from the holder");
    drop(first);
    assert!(second.try_take()?, "the second takes it once released");
    assert_eq!(second.holder(), None);
    let mut third = other.owner_lock(ttl)?;
    assert!(third.holder().is_some(), "held by the second now");
    drop(second);
    assert!(third.try_take()?, "released again");
    drop(third);
    assert_eq!(other.owner_lock(ttl)?.holder(), None, "released");

    // The change feed: another connection's commit is seen.
    let mut feed = q.engine.change_feed()?;
    let mut writer = q.connect()?;
    insert(&mut writer, &[job("a")])?;
    let mut seen = false;
    for _ in 0..100 {
        if feed.wait(Duration::from_millis(50))? {
            seen = true;
            break;
        }
    }
    assert!(seen, "a commit wakes the feed (within 5 s)");
    let mut quiet = false;
    for _ in 0..100 {
        if !feed.wait(Duration::from_millis(5))? {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "nothing committed since: the feed settles");
    Ok(())
}
