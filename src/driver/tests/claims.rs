//! Inserts and the reads of the commands, claims (order, queue filters,
//! blocked jobs, registration), the ownership of an attempt, exclusive
//! keys.

use super::*;
use crate::driver::Output;

// ---------------------------------------------------------------------
// Inserts and the reads of the commands.
// ---------------------------------------------------------------------

pub(super) fn insert_and_reads(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    let full = NewJob {
        definition: Some("build".into()),
        origin: Origin::Jobfile,
        queue: "batch".into(),
        priority: 3,
        retry: RetryPolicy {
            max_retries: 5,
            backoff_base: 1.5,
            max_delay_ms: Some(60_000),
            jitter: true,
            no_retry_exit_codes: vec![2, 3],
        },
        timeout_ms: Some(90_000),
        env: vec![("K".into(), "v".into())],
        cwd: Some("/work".into()),
        run_at: NOW + 50,
        created_at: NOW + 2,
        spec_hash: Some("abc".into()),
        source_commit: Some("deadbeef".into()),
        after: strings(&["lint"]),
        tick_at: Some(NOW),
        payload: Some(Payload::Changed(strings(&["a.md"]))),
        exclusive: Some("key".into()),
        ..job("b")
    };
    insert(
        e,
        &[
            NewJob {
                run_at: NOW + 100,
                created_at: NOW + 1,
                ..job("a")
            },
            full,
            NewJob {
                run_at: NOW + 500,
                created_at: NOW + 3,
                ..job("c")
            },
        ],
    )?;

    // Every field comes back as inserted: pending, unstarted.
    let b = e
        .read(|ops| ops.job("b"))?
        .ok_or_else(|| Error::UnknownJob("b".into()))?;
    assert_eq!(
        serde_json::to_value(&b).map_err(|e| Error::Internal(e.to_string()))?,
        json!({
            "id": "b", "command": "echo b", "definition": "build", "origin": "jobfile",
            "queue": "batch", "priority": 3, "state": "pending", "attempts": 0, "runs": 0,
            "max_retries": 5, "backoff_base": 1.5, "max_delay_ms": 60_000, "jitter": true,
            "no_retry_exit_codes": [2, 3], "timeout_ms": 90_000, "env": [["K", "v"]],
            "cwd": "/work", "run_at": "2023-11-14T22:13:20.050Z",
            "created_at": "2023-11-14T22:13:20.002Z", "updated_at": "2023-11-14T22:13:20.002Z",
            "started_at": null, "finished_at": null, "exit_code": null, "last_error": null,
            "spec_hash": "abc", "source_commit": "deadbeef", "reason": null,
            "after": ["lint"], "tick_at": "2023-11-14T22:13:20.000Z",
            "payload": {"changed": ["a.md"]},
        }),
        "insert and reads: the job round trip"
    );
    assert!(e.read(|ops| ops.job("nope"))?.is_none(), "no such job");
    // Counts of a filter (a list's total), row by row and from the kept
    // counts.
    let of = |state: Option<JobState>, queue: Option<&str>, definition: Option<&str>| JobFilter {
        state,
        queue: queue.map(str::to_string),
        definition: definition.map(str::to_string),
        limit: 1,
        ..JobFilter::default()
    };
    for (filter, n) in [
        (of(None, None, None), 3),
        (of(Some(JobState::Pending), None, None), 3),
        (of(Some(JobState::Dead), None, None), 0),
        (of(None, Some("batch"), None), 1),
        (of(None, None, Some("build")), 1),
        (
            of(Some(JobState::Pending), Some("default"), Some("build")),
            0,
        ),
    ] {
        assert_eq!(e.read(|ops| ops.count_jobs(&filter))?, n, "{filter:?}");
        assert_eq!(e.count(&filter)?, n, "{filter:?}");
    }
    assert_eq!(
        e.read(|ops| ops.job_states(&strings(&["a", "nope", "b"])))?,
        [Some(JobState::Pending), None, Some(JobState::Pending)],
        "job_states: one per id asked, None for an unknown one"
    );

    // list: newest first, filtered, limited.
    let list = |e: &mut Engine, filter: JobFilter| -> Result<Vec<String>> {
        Ok(e.list(&filter)?.into_iter().map(|j| j.id).collect())
    };
    let all = JobFilter {
        limit: 10,
        ..JobFilter::default()
    };
    assert_eq!(list(e, all.clone())?, ["c", "b", "a"], "list: newest first");
    assert_eq!(
        list(
            e,
            JobFilter {
                queue: Some("default".into()),
                ..all.clone()
            }
        )?,
        ["c", "a"],
        "list by queue"
    );
    assert_eq!(
        list(
            e,
            JobFilter {
                definition: Some("build".into()),
                ..all.clone()
            }
        )?,
        ["b"],
        "list by definition"
    );
    assert_eq!(
        list(
            e,
            JobFilter {
                state: Some(JobState::Pending),
                limit: 2,
                ..JobFilter::default()
            }
        )?,
        ["c", "b"],
        "list by state, limited"
    );
    assert_eq!(
        list(
            e,
            JobFilter {
                state: Some(JobState::Processing),
                ..all.clone()
            }
        )?,
        Vec::<String>::new(),
        "list: nothing processing"
    );

    // Counts.
    let counts = e.counts()?;
    assert_eq!(
        counts.rows,
        [
            ("batch".to_string(), JobState::Pending, 1),
            ("default".to_string(), JobState::Pending, 2),
        ],
        "counts by queue and state, sorted by queue"
    );
    assert_eq!(counts.total(JobState::Pending), 3);
    assert_eq!(e.unfinished_counts()?, (3, 0, 0), "unfinished counts");
    register(e, W)?;
    let later = ClaimParams {
        now: NOW + 1000,
        ..any(W, 1)
    };
    let running = e.write(|ops| ops.claim_jobs(&later))?;
    assert_eq!(ids(&running), ["b"], "the best job (priority 3) is taken");
    assert_eq!(e.unfinished_counts()?, (2, 1, 0), "one processing");

    // has_unfinished and next_run_at, by queue filter.
    let only = |qs: &[&str]| QueueFilter::Only(strings(qs));
    let except = |qs: &[&str]| QueueFilter::Except(strings(qs));
    for (filter, unfinished, next) in [
        (QueueFilter::Any, true, Some(NOW + 100)),
        (only(&["batch"]), true, None),
        (only(&["default"]), true, Some(NOW + 100)),
        (only(&["nothing"]), false, None),
        (except(&["default"]), true, None),
        (except(&["default", "batch"]), false, None),
        (except(&[]), true, Some(NOW + 100)),
    ] {
        assert_eq!(
            e.has_unfinished(&filter)?,
            unfinished,
            "has_unfinished({filter:?})"
        );
        assert_eq!(e.next_run_at(&filter)?, next, "next_run_at({filter:?})");
    }
    Ok(())
}

/// A duplicate id is an input error, and nothing of its transaction
/// stands: neither the jobs before it nor their latest runs.
pub(super) fn a_failed_insert_leaves_nothing(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    e.enqueue(&[job("a")])?;
    let failed = e.enqueue(&[job("d"), def_job("x", "deploy"), job("a")]);
    assert_eq!(
        input_error(failed),
        "job id `a` already exists",
        "a duplicate id"
    );
    assert_eq!(
        states(e)?,
        pairs(&[("a", JobState::Pending)]),
        "all or nothing: `d` and `x` were not kept"
    );
    assert_eq!(
        e.read(|ops| ops.latest_job("deploy"))?,
        None,
        "nor the latest run of `x`'s definition"
    );
    // Through the driver alone, the same.
    let failed = insert(e, &[job("e"), job("a")]);
    assert_eq!(input_error(failed), "job id `a` already exists");
    assert_eq!(states(e)?, pairs(&[("a", JobState::Pending)]));
    Ok(())
}

// ---------------------------------------------------------------------
// Claims.
// ---------------------------------------------------------------------

/// Priority (higher first), then run_at, then id; a future job waits.
pub(super) fn claim_order(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    insert(
        e,
        &[
            NewJob {
                run_at: NOW - 10,
                ..job("low")
            },
            NewJob {
                priority: 5,
                ..job("high")
            },
            NewJob {
                run_at: NOW - 20,
                ..job("early")
            },
            NewJob {
                run_at: NOW - 10,
                ..job("tie")
            },
            NewJob {
                priority: 9,
                run_at: NOW + 1,
                ..job("future")
            },
        ],
    )?;
    // claimable is a read: even in a write transaction it writes nothing.
    assert!(e.write(|ops| ops.claimable(&any(W, 1)))?);
    assert_eq!(e.unfinished_counts()?, (5, 0, 0), "claimable wrote nothing");
    assert!(attempt_rows(e, "high")?.is_empty(), "claimable: no attempt");

    let mut order = Vec::new();
    for _ in 0..10 {
        let would = claimable(e, &any(W, 1))?;
        let claimed = e.write(|ops| ops.claim_jobs(&any(W, 1)))?;
        assert_eq!(
            would,
            !claimed.is_empty(),
            "claimable agrees with the claim after {order:?}"
        );
        if claimed.is_empty() {
            break;
        }
        order.extend(ids(&claimed));
    }
    assert_eq!(
        order,
        ["high", "early", "low", "tie"],
        "claim order: priority, then run_at, then id; `future` is not due"
    );
    let first = e.job("high")?;
    assert_eq!(
        (first.state, first.attempts, first.runs, first.started_at),
        (JobState::Processing, 1, 1, Some(NOW)),
        "a claimed job"
    );
    assert_eq!(
        attempt_rows(e, "high")?,
        [(1, None, None, None, None, 0)],
        "a claim opens an attempt"
    );
    assert_eq!(
        e.running_jobs(&[W])?,
        [
            ("early".to_string(), None),
            ("high".to_string(), None),
            ("low".to_string(), None),
            ("tie".to_string(), None),
        ],
        "the runner runs them"
    );
    // Once due, it is claimed; with a limit above one, several at once.
    insert(e, &[job("later")])?;
    let due = ClaimParams {
        now: NOW + 1,
        ..any(W, 5)
    };
    let claimed = e.write(|ops| ops.claim_jobs(&due))?;
    assert_eq!(ids(&claimed), ["future", "later"], "limit 5 takes both");
    assert_eq!(
        (
            claimed[0].attempts,
            claimed[0].run,
            claimed[0].queue.as_str()
        ),
        (1, 1, "default")
    );
    assert!(!claimable(e, &due)?, "nothing left");
    Ok(())
}

/// `QueueFilter::Only`, `Except` and `Any`, and `exclude`, agree with
/// `claimable` and keep the claim order across queues.
pub(super) fn queue_filters_and_exclusions(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    let in_queue = |id: &str, queue: &str, priority: i64, run_at: i64| NewJob {
        queue: queue.into(),
        priority,
        run_at,
        ..job(id)
    };
    insert(
        e,
        &[
            in_queue("a", "alpha", 0, NOW),
            in_queue("b", "beta", 1, NOW),
            in_queue("b0", "beta", 1, NOW - 5),
            in_queue("d", "alpha", 1, NOW),
            in_queue("c", "gamma", 2, NOW),
        ],
    )?;
    let only = |qs: &[&str]| QueueFilter::Only(strings(qs));
    let except = |qs: &[&str]| QueueFilter::Except(strings(qs));
    let all: &[&str] = &["c", "b0", "b", "d", "a"];
    let table: Vec<(QueueFilter, Vec<String>, &[&str])> = vec![
        (QueueFilter::Any, vec![], all),
        // An exclusion of a queue without jobs: the same order, found
        // queue by queue.
        (QueueFilter::Any, strings(&["nothing"]), all),
        (only(&["alpha"]), vec![], &["d", "a"]),
        (only(&["alpha", "beta"]), vec![], &["b0", "b", "d", "a"]),
        (except(&["gamma"]), vec![], &["b0", "b", "d", "a"]),
        (except(&[]), vec![], all),
        (
            QueueFilter::Any,
            strings(&["gamma"]),
            &["b0", "b", "d", "a"],
        ),
        (only(&["alpha", "gamma"]), strings(&["gamma"]), &["d", "a"]),
        (except(&["alpha"]), strings(&["beta"]), &["c"]),
        (only(&["beta"]), strings(&["beta"]), &[]),
        (only(&[]), vec![], &[]),
    ];
    for (queues, exclude, expected) in &table {
        let params = ClaimParams {
            queues,
            exclude,
            ..any(W, 10)
        };
        assert_eq!(
            dry_claim(e, &params)?,
            *expected,
            "claim of {queues:?} excluding {exclude:?}"
        );
        assert_eq!(
            claimable(e, &params)?,
            !expected.is_empty(),
            "claimable({queues:?} excluding {exclude:?}) agrees"
        );
    }
    assert_eq!(
        e.unfinished_counts()?,
        (5, 0, 0),
        "a rolled back claim leaves nothing"
    );
    Ok(())
}

/// A blocked job is neither claimed nor due until it is unblocked.
pub(super) fn blocked_jobs_wait(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    insert(
        e,
        &[
            job("x"),
            NewJob {
                priority: 5,
                run_at: NOW - 100,
                ..job("y")
            },
        ],
    )?;
    e.write(|ops| ops.set_blocked(&strings(&["y"]), true))?;
    assert_eq!(
        e.next_run_at(&QueueFilter::Any)?,
        Some(NOW),
        "a blocked job is not due"
    );
    assert_eq!(dry_claim(e, &any(W, 10))?, ["x"], "blocked: skipped");
    claim_only(e, W, "x")?;
    assert!(!claimable(e, &any(W, 1))?, "only a blocked job is left");
    assert!(
        e.write(|ops| ops.claim_jobs(&any(W, 1)))?.is_empty(),
        "and the claim agrees"
    );
    e.write(|ops| ops.set_blocked(&strings(&["y"]), false))?;
    assert_eq!(e.next_run_at(&QueueFilter::Any)?, Some(NOW - 100));
    assert!(claimable(e, &any(W, 1))?, "unblocked");
    claim_only(e, W, "y")?;
    Ok(())
}

/// A runner without a row (never registered, or gone) claims nothing.
pub(super) fn an_unregistered_runner_claims_nothing(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    insert(e, &[job("a")])?;
    assert!(
        e.write(|ops| ops.claim_jobs(&any(42, 1)))?.is_empty(),
        "never registered"
    );
    assert!(claim(e, 42, 1)?.is_empty(), "through the engine too");
    let a = e.job("a")?;
    assert_eq!((a.state, a.runs), (JobState::Pending, 0), "left as it was");
    assert!(attempt_rows(e, "a")?.is_empty(), "no attempt");
    register(e, 43)?;
    e.deregister_worker(43)?;
    assert!(claim(e, 43, 1)?.is_empty(), "deregistered");
    register(e, 42)?;
    claim_only(e, 42, "a")?;
    Ok(())
}

// ---------------------------------------------------------------------
// Ownership of an attempt.
// ---------------------------------------------------------------------

pub(super) fn finish_checks_ownership(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, 1)?;
    register(e, 2)?;
    insert(e, &[job("a")])?;
    claim_only(e, 1, "a")?;
    let end = |id: &'static str, runner: i64, run: u32| FinishParams {
        id,
        definition: None,
        run,
        runner,
        outcome: AttemptOutcome::Completed,
        exit_code: Some(0),
        error: None,
        output_bytes: 42,
        state: JobState::Completed,
        run_at: None,
        finished_at: Some(NOW + 5),
        counts: true,
        now: NOW + 5,
    };
    assert_eq!(
        e.write(|ops| ops.finish_attempts(&[end("a", 2, 1), end("a", 1, 2), end("zz", 1, 1)]))?,
        [false, false, false],
        "the wrong runner, the wrong run, no such job"
    );
    assert_eq!(state(e, "a")?, JobState::Processing, "left as it was");
    assert_eq!(e.running_jobs(&[1])?, [("a".to_string(), None)]);
    assert_eq!(
        attempt_rows(e, "a")?,
        [(1, None, None, None, None, 0)],
        "the attempt is still open"
    );

    assert_eq!(
        e.write(|ops| ops.finish_attempts(&[end("a", 1, 1)]))?,
        [true],
        "the owner"
    );
    let a = e.job("a")?;
    assert_eq!(
        (a.state, a.exit_code, a.finished_at, a.attempts, a.runs),
        (JobState::Completed, Some(0), Some(NOW + 5), 1, 1),
        "the owner's finish"
    );
    assert_eq!(
        attempt_rows(e, "a")?,
        [(
            1,
            Some(AttemptOutcome::Completed),
            Some(0),
            Some(NOW + 5),
            None,
            42
        )]
    );
    assert!(e.running_jobs(&[1])?.is_empty());

    // Again: the job is no longer processing.
    let late = FinishParams {
        outcome: AttemptOutcome::Failed,
        state: JobState::Dead,
        output_bytes: 7,
        ..end("a", 1, 1)
    };
    assert_eq!(e.write(|ops| ops.finish_attempts(&[late]))?, [false]);
    assert_eq!(state(e, "a")?, JobState::Completed, "a finished job stays");
    assert_eq!(
        attempt_rows(e, "a")?,
        [(
            1,
            Some(AttemptOutcome::Completed),
            Some(0),
            Some(NOW + 5),
            None,
            42
        )],
        "and so does its attempt"
    );

    // One call, several attempts: each judged alone.
    insert(e, &[job("b"), job("c")])?;
    let claimed = claim(e, 1, 2)?;
    assert_eq!(ids(&claimed), ["b", "c"]);
    assert_eq!(
        e.write(|ops| ops.finish_attempts(&[end("b", 1, 1), end("c", 2, 1)]))?,
        [true, false],
        "mixed batch"
    );
    assert_eq!(
        (state(e, "b")?, state(e, "c")?),
        (JobState::Completed, JobState::Processing)
    );
    Ok(())
}

/// `counts: false` (an interrupted attempt) leaves `attempts` as it was;
/// a counted failure waits for its retry.
pub(super) fn an_uncounted_attempt(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    insert(e, &[job("u")])?;
    let first = claim_only(e, W, "u")?;
    assert_eq!((first.attempts, first.run), (1, 1));
    let released = Ended::released(NOW + 1);
    assert!(finish(e, &first, W, &released, NOW + 1)?);
    let u = e.job("u")?;
    assert_eq!(
        (u.state, u.attempts, u.runs, u.run_at, u.finished_at),
        (JobState::Pending, 0, 1, NOW + 1, None),
        "an interrupted attempt is not counted"
    );
    let due = ClaimParams {
        now: NOW + 1,
        ..any(W, 1)
    };
    let second = e.write(|ops| ops.claim_jobs(&due))?;
    assert_eq!(
        second
            .iter()
            .map(|c| (c.attempts, c.run))
            .collect::<Vec<_>>(),
        [(1, 2)],
        "attempt 1, run 2"
    );
    let failed = Ended {
        outcome: AttemptOutcome::Failed,
        state: JobState::Failed,
        run_at: Some(NOW + 2000),
        error: Some("exit code 1".into()),
    };
    assert!(finish(e, &second[0], W, &failed, NOW + 2)?);
    let u = e.job("u")?;
    assert_eq!(
        (
            u.state,
            u.attempts,
            u.runs,
            u.run_at,
            u.exit_code,
            u.last_error.as_deref()
        ),
        (
            JobState::Failed,
            1,
            2,
            NOW + 2000,
            Some(1),
            Some("exit code 1")
        ),
        "a counted failure waits for its retry"
    );
    assert_eq!(
        attempt_rows(e, "u")?
            .into_iter()
            .map(|a| a.1)
            .collect::<Vec<_>>(),
        [
            Some(AttemptOutcome::Interrupted),
            Some(AttemptOutcome::Failed)
        ]
    );
    assert_eq!(
        e.unfinished_counts()?,
        (0, 0, 1),
        "failed counts as unfinished"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// Exclusive keys.
// ---------------------------------------------------------------------

pub(super) fn exclusive_keys(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    let keyed = |id: &str, key: Option<&str>, priority: i64| NewJob {
        exclusive: key.map(str::to_string),
        priority,
        ..job(id)
    };
    insert(
        e,
        &[
            keyed("k1", Some("k"), 1),
            keyed("k2", Some("k"), 1),
            keyed("m", Some("m"), 0),
            keyed("n", None, 0),
        ],
    )?;
    assert_eq!(
        dry_claim(e, &any(W, 10))?,
        ["k1", "m", "n"],
        "one claim never takes two jobs of a key"
    );
    assert_eq!(
        ids(&claim(e, W, 2)?),
        ["k1", "m"],
        "limit 2: `k2` would be second but shares `k1`'s key"
    );
    assert_eq!(
        ids(&claim(e, W, 5)?),
        ["n"],
        "no key: claimable while `k1` runs"
    );
    assert!(
        !claimable(e, &any(W, 1))?,
        "`k2` waits while `k1` is processing"
    );
    let m = claimed_copy(e, "m")?;
    assert!(finish(e, &m, W, &completed(), NOW + 1)?);
    assert!(
        !claimable(e, &any(W, 1))?,
        "another key's end frees nothing"
    );
    let k1 = claimed_copy(e, "k1")?;
    assert!(finish(e, &k1, W, &completed(), NOW + 2)?);
    assert!(claimable(e, &any(W, 1))?, "`k1` finished: `k2` may run");
    claim_only(e, W, "k2")?;
    Ok(())
}

/// A running job as its claim returned it (the parts a finish needs).
fn claimed_copy(e: &mut Engine, id: &str) -> Result<Claimed> {
    let job = e.job(id)?;
    Ok(Claimed {
        id: job.id,
        command: job.command,
        definition: job.definition,
        queue: job.queue,
        attempts: job.attempts,
        run: job.runs,
        retry: job.retry,
        timeout_ms: job.timeout_ms,
        env: job.env,
        cwd: job.cwd,
        payload: job.payload,
    })
}

/// A driver that keeps attempts' output stores the kept tail of each
/// attempt, replaces it when told again, and forgets it with its job; one
/// that does not keeps nothing (its logs directory does).
pub(super) fn output_is_kept_where_the_driver_keeps_it(q: &mut Queue) -> Result<()> {
    let output = |bytes: &[u8], produced: u64| Output {
        bytes: bytes.to_vec(),
        produced,
    };
    q.engine.write(|ops| ops.insert_jobs(&[job("a")]))?;
    q.engine.store_output("a", 1, &output(b"hello\n\xff", 7))?;
    let kept = q.engine.output("a", 1)?;
    if !q.engine.keeps_output() {
        assert_eq!(kept, None);
        return Ok(());
    }
    assert_eq!(kept, Some(output(b"hello\n\xff", 7)));
    // While it runs, and again when it ends: the latest replaces it.
    q.engine.store_output("a", 1, &output(b"tail", 1_000_000))?;
    assert_eq!(q.engine.output("a", 1)?, Some(output(b"tail", 1_000_000)));
    assert_eq!(q.engine.output("a", 2)?, None);
    q.engine.store_output("nobody", 1, &output(b"x", 1))?;
    assert_eq!(q.engine.output("nobody", 1)?, None, "no job, no output");
    q.engine.write(|ops| ops.delete_jobs(&strings(&["a"])))?;
    assert_eq!(q.engine.output("a", 1)?, None, "deleted with its job");
    Ok(())
}
