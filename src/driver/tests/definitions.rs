//! What the queue keeps of definitions: the latest-run record, the
//! dependency cascade, apply, payloads and the queries of triggers.

use super::*;

// ---------------------------------------------------------------------
// The latest-run record.
// ---------------------------------------------------------------------

pub(super) fn the_latest_run_follows_its_job(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    let inputs: BTreeMap<String, String> = [("src/a.rs".to_string(), "d1".to_string())].into();
    insert(
        e,
        &[NewJob {
            run_at: NOW + 10_000,
            env: vec![("A".into(), "1".into())],
            cwd: Some("/repo".into()),
            inputs: Some(inputs.clone()),
            ..def_job("b1", "build")
        }],
    )?;
    let first = LatestRun {
        id: "b1".into(),
        state: JobState::Pending,
        reason: None,
        spec_hash: Some("spec-build".into()),
        command: "echo b1".into(),
        env: vec![("A".into(), "1".into())],
        cwd: Some("/repo".into()),
        inputs: Some(inputs),
        removed: false,
    };
    assert_eq!(latest(e, "build")?, first, "insert: the new job");
    assert_eq!(
        e.read(|ops| ops.latest_states(&strings(&["build", "nope"])))?,
        [Some(JobState::Pending), None],
        "latest_states: None for a definition that never ran"
    );
    insert(e, &[job("plain")])?;
    assert_eq!(
        e.read(|ops| ops.latest_runs())?
            .into_keys()
            .collect::<Vec<_>>(),
        ["build"],
        "a job without a definition has no record"
    );

    // A newer job of the definition takes over; an older one's moves
    // no longer count.
    insert(e, &[def_job("b2", "build")])?;
    assert_eq!(
        e.read(|ops| ops.latest_job("build"))?.as_deref(),
        Some("b2")
    );
    let b2 = claim(e, W, 5)?;
    assert_eq!(ids(&b2), ["b2", "plain"], "`b1` is not due");
    let b2 = b2.into_iter().find(|c| c.id == "b2");
    let b2 = b2.ok_or_else(|| Error::Internal("b2 not claimed".into()))?;
    assert_eq!(latest(e, "build")?.state, JobState::Processing, "claim");
    e.write(|ops| ops.request_cancel(&strings(&["b2"]), Some("stop it"), NOW + 1))?;
    let record = latest(e, "build")?;
    assert_eq!(
        (record.state, record.reason.as_deref()),
        (JobState::Processing, Some("stop it")),
        "a cancel request's reason"
    );
    assert!(finish(e, &b2, W, &completed(), NOW + 2)?);
    assert_eq!(latest(e, "build")?.state, JobState::Completed, "finish");
    e.write(|ops| ops.cancel_waiting(&strings(&["b1"]), "old", NOW + 3))?;
    assert_eq!(
        latest(e, "build")?.state,
        JobState::Completed,
        "an older job's cancel leaves the record"
    );

    insert(e, &[def_job("b3", "build")])?;
    let moved = e.write(|ops| ops.cancel_waiting(&strings(&["b3", "b2"]), "why", NOW + 4))?;
    assert_eq!(
        moved,
        [Moved {
            id: "b3".into(),
            definition: Some("build".into())
        }],
        "only waiting jobs are cancelled"
    );
    let record = latest(e, "build")?;
    assert_eq!(
        (record.id.as_str(), record.state, record.reason.as_deref()),
        ("b3", JobState::Cancelled, Some("why")),
        "cancel"
    );

    run_to_end(e, def_job("b4", "build"), &dead(), 1, NOW + 5)?;
    assert_eq!(latest(e, "build")?.state, JobState::Dead, "dead");
    let moved = e.write(|ops| ops.requeue_dead(&strings(&["b4"]), false, NOW + 6))?;
    assert_eq!(moved.len(), 1, "requeued");
    assert_eq!(latest(e, "build")?.state, JobState::Pending, "requeue");

    e.write(|ops| {
        ops.update_waiting(
            "b4",
            &JobUpdate {
                command: "make all",
                env: &[("K".into(), "V".into())],
                cwd: Some("/w"),
                queue: "default",
                priority: 0,
                timeout_ms: None,
                retry: &RetryPolicy::default(),
                after: &[],
                spec_hash: "h2",
                now: NOW + 7,
            },
        )
    })?;
    let updated = LatestRun {
        id: "b4".into(),
        state: JobState::Pending,
        reason: None,
        spec_hash: Some("h2".into()),
        command: "make all".into(),
        env: vec![("K".into(), "V".into())],
        cwd: Some("/w".into()),
        inputs: None,
        removed: false,
    };
    assert_eq!(latest(e, "build")?, updated, "update_waiting: the spec");

    // Pruning the job keeps the record.
    let deleted = e.write(|ops| ops.delete_jobs(&strings(&["b4"])))?;
    assert_eq!(deleted, [("b4".to_string(), 1)]);
    assert!(e.read(|ops| ops.job("b4"))?.is_none(), "pruned");
    assert_eq!(latest(e, "build")?, updated, "the record outlives its job");
    assert_eq!(
        e.read(|ops| ops.latest_job("build"))?.as_deref(),
        Some("b4")
    );

    // removed: set for undeclared definitions, cleared when declared.
    insert(e, &[def_job("l1", "lint")])?;
    e.write(|ops| ops.mark_removed(&strings(&["lint"]), NOW + 8))?;
    let removed = |e: &mut Engine| -> Result<Vec<(String, bool)>> {
        Ok(e.read(|ops| ops.latest_runs())?
            .into_iter()
            .map(|(name, run)| (name, run.removed))
            .collect())
    };
    assert_eq!(
        removed(e)?,
        [("build".to_string(), true), ("lint".to_string(), false)],
        "mark_removed sets"
    );
    e.write(|ops| ops.mark_removed(&strings(&["build", "lint"]), NOW + 9))?;
    assert_eq!(
        removed(e)?,
        [("build".to_string(), false), ("lint".to_string(), false)],
        "and clears"
    );
    e.write(|ops| ops.mark_removed(&[], NOW + 10))?;
    insert(e, &[def_job("b5", "build")])?;
    assert_eq!(
        removed(e)?,
        [("build".to_string(), false), ("lint".to_string(), true)],
        "a new job of a removed definition clears it"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// The dependency cascade (engine).
// ---------------------------------------------------------------------

pub(super) fn the_cascade_unblocks_on_completion(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    e.enqueue(&[
        def_job("b", "b"),
        after(def_job("a", "a"), &["b"]),
        after(def_job("c", "c"), &["a"]),
    ])?;
    assert_eq!(
        dry_claim(e, &any(W, 10))?,
        ["b"],
        "`a` and `c` wait for their dependencies"
    );
    assert_eq!(
        e.read(|ops| ops.waiting_for("b"))?,
        [Waiter {
            id: "a".into(),
            definition: Some("a".into()),
            after: strings(&["b"]),
            blocked: true,
        }]
    );
    let b = claim_only(e, W, "b")?;
    // The finish unblocks `a` and claims it, in one transaction.
    let none = BTreeMap::new();
    let next = ClaimRequest {
        runner: W,
        queues: &QueueFilter::Any,
        limits: &none,
        lease_until: LEASE,
        now: NOW + 1,
        count: 1,
    };
    let (owned, claimed) = e.finish(
        &Done {
            job: &b,
            runner: W,
            ended: &completed(),
            exit_code: Some(0),
            output_bytes: 0,
            now: NOW + 1,
        },
        Some(&next),
    )?;
    assert!(owned);
    assert_eq!(ids(&claimed), ["a"], "`b` completed: `a` is claimable");
    assert!(!claimable(e, &any(W, 1))?, "`c` still waits for `a`");
    assert!(finish(e, &claimed[0], W, &completed(), NOW + 2)?);
    claim_only(e, W, "c")?;
    Ok(())
}

pub(super) fn the_cascade_cancels_down_the_chain(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    e.enqueue(&[
        def_job("x", "x"),
        after(def_job("y", "y"), &["x"]),
        after(def_job("z", "z"), &["y"]),
    ])?;
    let x = claim_only(e, W, "x")?;
    assert!(finish(e, &x, W, &dead(), NOW + 1)?);
    let reasons = |e: &mut Engine| -> Result<Vec<(String, JobState, Option<String>)>> {
        let mut jobs: Vec<_> = e
            .list(&JobFilter {
                limit: 100,
                ..JobFilter::default()
            })?
            .into_iter()
            .map(|j| (j.id, j.state, j.reason))
            .collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(jobs)
    };
    assert_eq!(
        reasons(e)?,
        [
            ("x".to_string(), JobState::Dead, None),
            (
                "y".to_string(),
                JobState::Cancelled,
                Some("dependency `x` is dead".to_string())
            ),
            (
                "z".to_string(),
                JobState::Cancelled,
                Some("dependency `y` is cancelled".to_string())
            ),
        ],
        "a dead dependency cancels its dependents, down the chain"
    );
    // At enqueue: a dependency that never ran, or that is dead.
    e.enqueue(&[
        after(def_job("w", "w"), &["ghost"]),
        after(def_job("v", "v"), &["x"]),
    ])?;
    let w = e.job("w")?;
    assert_eq!(
        (w.state, w.reason.as_deref()),
        (
            JobState::Cancelled,
            Some("dependency `ghost` has never run")
        ),
        "a dependency that never ran"
    );
    assert_eq!(
        e.job("v")?.reason.as_deref(),
        Some("dependency `x` is dead")
    );
    Ok(())
}

/// A job that waits again (a retry, a rescue, a dlq retry) waits for its
/// dependencies as they are now: they may have moved while it ran or lay
/// dead, when no cascade looked at it.
pub(super) fn a_job_back_in_the_queue_waits_for_its_dependencies(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    register(e, 2)?;
    let (t1, t2, t3) = (NOW + 1_000_000, NOW + 2_000_000, NOW + 3_000_000);
    let at = |now: i64| ClaimParams { now, ..any(W, 10) };
    let claim_at = |e: &mut Engine, runner: i64, now: i64| {
        e.write(|ops| {
            ops.claim_jobs(&ClaimParams {
                now,
                ..any(runner, 1)
            })
        })
    };
    e.enqueue(&[def_job("y1", "y")])?;
    let y1 = claim_only(e, W, "y1")?;
    assert!(finish(e, &y1, W, &completed(), NOW)?);
    e.enqueue(&[after(def_job("x1", "x"), &["y"])])?;
    let x1 = claim_only(e, W, "x1")?;

    // While `x1` runs, `y` runs again (at t1); `x1` fails.
    e.enqueue(&[NewJob {
        run_at: t1,
        ..def_job("y2", "y")
    }])?;
    let retry = Ended {
        outcome: AttemptOutcome::Failed,
        state: JobState::Failed,
        run_at: Some(NOW + 1),
        error: Some("exit code 1".into()),
    };
    assert!(finish(e, &x1, W, &retry, NOW + 1)?);
    assert_eq!(
        dry_claim(e, &at(t1 - 1))?,
        Vec::<String>::new(),
        "a retry waits for the dependency's new run"
    );
    let y2 = claim_at(e, W, t1)?;
    assert_eq!(ids(&y2), ["y2"]);
    assert!(finish(e, &y2[0], W, &completed(), t1)?);
    let x1 = claim_at(e, 2, t1)?;
    assert_eq!(ids(&x1), ["x1"], "`y2` completed: the retry runs");

    // Rescued while `y` runs again (at t2): it waits for that run.
    e.enqueue(&[NewJob {
        run_at: t2,
        ..def_job("y3", "y")
    }])?;
    let rescued = e.rescue(&[(2, NOW)], t1 + 10, 0.0)?;
    assert_eq!(rescued.jobs, [("x1".to_string(), false)]);
    assert_eq!(
        dry_claim(e, &at(t2 - 1))?,
        Vec::<String>::new(),
        "a rescued job waits for the dependency's new run"
    );
    let y3 = claim_at(e, W, t2)?;
    assert_eq!(ids(&y3), ["y3"]);
    assert!(finish(e, &y3[0], W, &completed(), t2)?);
    let x1 = claim_at(e, W, t2)?;
    assert_eq!(ids(&x1), ["x1"], "`y3` completed: the rescued job runs");
    assert!(finish(e, &x1[0], W, &dead(), t2)?);

    // Dead while `y` runs again (at t3): a dlq retry waits for that run,
    // and is cancelled when it dies.
    e.enqueue(&[NewJob {
        run_at: t3,
        ..def_job("y4", "y")
    }])?;
    e.dlq_retry(&strings(&["x1"]), false, t2 + 1)?;
    assert_eq!(
        dry_claim(e, &at(t3 - 1))?,
        Vec::<String>::new(),
        "a dlq retry waits for the dependency's new run"
    );
    let y4 = claim_at(e, W, t3)?;
    assert_eq!(ids(&y4), ["y4"]);
    assert!(finish(e, &y4[0], W, &dead(), t3)?);
    let x1 = e.job("x1")?;
    assert_eq!(
        (x1.state, x1.reason.as_deref()),
        (JobState::Cancelled, Some("dependency `y` is dead"))
    );
    Ok(())
}

// ---------------------------------------------------------------------
// Apply (engine).
// ---------------------------------------------------------------------

const JOBFILE: &str = "[queues.default]\nworkers = 2\n[queues.deploy]\nworkers = 1\n\
    [jobs.build]\ncommand = \"make\"\n\
    [jobs.test]\ncommand = \"make test\"\nafter = [\"build\"]\n";
const WITHOUT_TEST: &str = "[queues.default]\nworkers = 2\n[jobs.build]\ncommand = \"make\"\n";

fn jobfile(text: &str) -> Result<crate::jobfile::Jobfile> {
    crate::jobfile::parse(text, Path::new("/repo/queuectl.toml")).map_err(Error::Jobfile)
}

pub(super) fn apply(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    let full = jobfile(JOBFILE)?;
    let plan = e.apply(&full, Some("c0ffee"), NOW, false)?;
    let enqueue = |name: &str, reason: &str| Action::Enqueue {
        name: name.into(),
        reason: reason.into(),
    };
    let queue = |name: &str, from: Option<u32>, to: Option<u32>| Action::Queue {
        name: name.into(),
        from,
        to,
    };
    assert_eq!(
        plan.actions,
        [
            enqueue("build", "new"),
            enqueue("test", "new"),
            queue("default", None, Some(2)),
            queue("deploy", None, Some(1)),
        ],
        "the first apply"
    );
    assert_eq!(
        e.declared_queues()?,
        BTreeMap::from([("default".to_string(), 2), ("deploy".to_string(), 1)]),
        "queue limits recorded"
    );
    let build = e
        .read(|ops| ops.latest_job("build"))?
        .ok_or_else(|| Error::Internal("no build job".into()))?;
    let test = e
        .read(|ops| ops.latest_job("test"))?
        .ok_or_else(|| Error::Internal("no test job".into()))?;
    let b = e.job(&build)?;
    assert_eq!(
        (
            b.state,
            b.origin,
            b.command.as_str(),
            b.source_commit.as_deref(),
            b.cwd.as_deref()
        ),
        (
            JobState::Pending,
            Origin::Jobfile,
            "make",
            Some("c0ffee"),
            Some("/repo/")
        ),
        "a job of the jobfile"
    );
    assert_eq!(
        dry_claim(e, &any(W, 10))?,
        std::slice::from_ref(&build),
        "`test` waits for `build`"
    );

    assert_eq!(
        e.apply(&full, None, NOW + 1, false)?,
        Plan::default(),
        "re-applying changes nothing"
    );
    assert_eq!(e.unfinished_counts()?, (2, 0, 0));

    // Removing a definition cancels its waiting job and marks it removed.
    let plan = e.apply(&jobfile(WITHOUT_TEST)?, None, NOW + 2, false)?;
    assert_eq!(
        plan.actions,
        [
            Action::Cancel {
                name: "test".into(),
                ids: vec![test.clone()],
            },
            queue("deploy", Some(1), None),
        ]
    );
    let t = e.job(&test)?;
    assert_eq!(
        (t.state, t.reason.as_deref()),
        (JobState::Cancelled, Some(REMOVED))
    );
    let record = latest(e, "test")?;
    assert_eq!((record.state, record.removed), (JobState::Cancelled, true));
    assert_eq!(
        e.declared_queues()?,
        BTreeMap::from([("default".to_string(), 2)])
    );

    // Restoring it enqueues it again.
    let plan = e.apply(&full, None, NOW + 3, false)?;
    assert_eq!(
        plan.actions,
        [
            enqueue("test", "restored to the jobfile"),
            queue("deploy", None, Some(1)),
        ]
    );
    let record = latest(e, "test")?;
    assert_ne!(record.id, test, "a new job");
    assert_eq!((record.state, record.removed), (JobState::Pending, false));
    assert_eq!(
        dry_claim(e, &any(W, 10))?,
        [build],
        "the restored job waits for `build` again"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// Payloads and the queries of definitions.
// ---------------------------------------------------------------------

pub(super) fn payloads_and_definition_queries(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    insert(
        e,
        &[NewJob {
            payload: Some(changed(&["a.md"])),
            ..job("p")
        }],
    )?;
    for (n, payload) in [
        Payload::Path("x.png".into()),
        Payload::Scheduled(NOW),
        changed(&["b.md", "c.md"]),
    ]
    .into_iter()
    .enumerate()
    {
        let at = NOW + 1 + n as i64;
        e.write(|ops| ops.set_payload("p", &payload, at))?;
        let p = e.job("p")?;
        assert_eq!(
            (p.payload, p.updated_at),
            (Some(payload), at),
            "set_payload round trip"
        );
    }
    let claimed = claim_only(e, W, "p")?;
    assert_eq!(
        claimed.payload,
        Some(changed(&["b.md", "c.md"])),
        "a claim carries it"
    );

    // waiting_for: the waiting jobs whose `after` names a definition.
    insert(
        e,
        &[
            after(def_job("t1", "t1"), &["build", "lint"]),
            after(job("t2"), &["lint"]),
            after(job("t3"), &["build"]),
        ],
    )?;
    e.write(|ops| ops.cancel_waiting(&strings(&["t3"]), "no", NOW))?;
    e.write(|ops| ops.set_blocked(&strings(&["t2"]), true))?;
    let waiter = |id: &str, definition: Option<&str>, after: &[&str], blocked: bool| Waiter {
        id: id.into(),
        definition: definition.map(str::to_string),
        after: strings(after),
        blocked,
    };
    assert_eq!(
        e.read(|ops| ops.waiting_for("build"))?,
        [waiter("t1", Some("t1"), &["build", "lint"], false)],
        "a cancelled job waits for nothing"
    );
    assert_eq!(
        e.read(|ops| ops.waiting_for("lint"))?,
        [
            waiter("t1", Some("t1"), &["build", "lint"], false),
            waiter("t2", None, &["lint"], true),
        ]
    );
    assert!(e.read(|ops| ops.waiting_for("t1"))?.is_empty());

    // definition_jobs: oldest first, in the states asked.
    insert(
        e,
        &[
            NewJob {
                created_at: NOW + 2,
                payload: Some(Payload::Path("1".into())),
                ..def_job("a-new", "gen")
            },
            NewJob {
                created_at: NOW + 1,
                run_at: NOW - 1,
                ..def_job("z-old", "gen")
            },
            NewJob {
                created_at: NOW + 3,
                ..def_job("m-last", "gen")
            },
        ],
    )?;
    claim_only(e, W, "z-old")?;
    e.write(|ops| ops.cancel_waiting(&strings(&["m-last"]), "no", NOW))?;
    let job_ref = |id: &str, state: JobState, payload: Option<Payload>| JobRef {
        id: id.into(),
        state,
        origin: Origin::Jobfile,
        payload,
    };
    assert_eq!(
        e.read(|ops| ops.definition_jobs("gen", &[JobState::Pending, JobState::Processing]))?,
        [
            job_ref("z-old", JobState::Processing, None),
            job_ref("a-new", JobState::Pending, Some(Payload::Path("1".into()))),
        ],
        "oldest first"
    );
    assert_eq!(
        e.read(|ops| ops.definition_jobs("gen", &[JobState::Cancelled]))?,
        [job_ref("m-last", JobState::Cancelled, None)]
    );
    assert!(e.read(|ops| ops.definition_jobs("gen", &[]))?.is_empty());

    // waiting_of_definitions: what apply reads.
    assert_eq!(
        e.read(|ops| ops.waiting_of_definitions())?
            .into_iter()
            .map(|w| (w.id, w.definition, w.state, w.after))
            .collect::<Vec<_>>(),
        [
            (
                "a-new".to_string(),
                "gen".to_string(),
                JobState::Pending,
                vec![]
            ),
            (
                "t1".to_string(),
                "t1".to_string(),
                JobState::Pending,
                strings(&["build", "lint"])
            ),
        ]
    );
    Ok(())
}
