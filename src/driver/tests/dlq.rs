//! The dead letter queue, pruning, and the user's cancel.

use super::*;

// ---------------------------------------------------------------------
// The dead letter queue and pruning.
// ---------------------------------------------------------------------

pub(super) fn dead_letter_queue_and_pruning(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    run_to_end(e, job("d1"), &dead(), 1, NOW + 1)?;
    run_to_end(e, job("d2"), &dead(), 1, NOW + 2)?;
    run_to_end(e, job_in("d3", "batch"), &dead(), 2, NOW + 3)?;
    run_to_end(e, job("c1"), &completed(), 0, NOW + 4)?;
    insert(e, &[job("x1"), job("p1")])?;
    e.write(|ops| ops.cancel_waiting(&strings(&["x1"]), "no", NOW + 5))?;

    assert_eq!(e.read(|ops| ops.dead_ids())?, ["d1", "d2", "d3"]);
    assert_eq!(
        e.dlq_stats()?
            .into_iter()
            .map(|s| (s.queue, s.exit_code, s.count, s.newest_at))
            .collect::<Vec<_>>(),
        [
            ("batch".to_string(), Some(2), 1, Some(NOW + 3)),
            ("default".to_string(), Some(1), 2, Some(NOW + 2)),
        ],
        "dead jobs by queue and exit code"
    );
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let finished_before = |e: &mut Engine, states: &[JobState], before: i64| {
        e.read(|ops| ops.finished_before(states, before))
            .map(sorted)
    };
    assert_eq!(
        finished_before(e, &[JobState::Completed, JobState::Cancelled], NOW + 5)?,
        ["c1"],
        "finished strictly before"
    );
    assert_eq!(
        finished_before(e, &[JobState::Completed, JobState::Cancelled], NOW + 6)?,
        ["c1", "x1"]
    );
    assert_eq!(
        finished_before(e, &[JobState::Dead], NOW + 3)?,
        ["d1", "d2"]
    );
    let dead_beyond = |e: &mut Engine, keep: u64, older_than: i64| {
        e.read(|ops| ops.dead_beyond(keep, older_than)).map(sorted)
    };
    assert_eq!(dead_beyond(e, 1, 0)?, ["d1", "d2"], "keep the newest 1");
    assert_eq!(dead_beyond(e, 0, 0)?, ["d1", "d2", "d3"], "keep none");
    assert_eq!(dead_beyond(e, 10, NOW + 2)?, ["d1"], "older than");
    assert_eq!(dead_beyond(e, 2, NOW + 2)?, ["d1"], "either");
    assert!(dead_beyond(e, 10, 0)?.is_empty());

    // Requeue: attempts reset unless kept; only dead jobs.
    let moved = e.write(|ops| ops.requeue_dead(&strings(&["d1", "c1"]), false, NOW + 10))?;
    assert_eq!(
        moved,
        [Moved {
            id: "d1".into(),
            definition: None
        }],
        "a completed job is not requeued"
    );
    e.write(|ops| ops.requeue_dead(&strings(&["d2"]), true, NOW + 10))?;
    let requeued = |e: &mut Engine, id: &str| -> Result<_> {
        let j = e.job(id)?;
        Ok((
            j.state,
            j.attempts,
            j.runs,
            j.run_at,
            j.finished_at,
            j.reason,
        ))
    };
    assert_eq!(
        requeued(e, "d1")?,
        (JobState::Pending, 0, 1, NOW + 10, None, None),
        "attempts reset"
    );
    assert_eq!(
        requeued(e, "d2")?,
        (JobState::Pending, 1, 1, NOW + 10, None, None),
        "attempts kept"
    );
    assert_eq!(state(e, "c1")?, JobState::Completed);

    // Delete: run counts, attempts gone with their job.
    let deleted = e.write(|ops| ops.delete_jobs(&strings(&["d3", "c1", "nope"])))?;
    assert_eq!(deleted, [("d3".to_string(), 1), ("c1".to_string(), 1)]);
    assert!(e.read(|ops| ops.job("d3"))?.is_none());
    assert!(attempt_rows(e, "d3")?.is_empty(), "its attempts too");
    assert!(e.dlq_stats()?.is_empty(), "no dead job left");

    // The engine's user transitions: all or nothing.
    let failed = e.dlq_retry(&strings(&["d1"]), false, NOW + 11);
    assert_eq!(input_error(failed), "job `d1` is pending, not dead");
    assert!(matches!(
        e.dlq_remove(&strings(&["ghost"])),
        Err(Error::UnknownJob(id)) if id == "ghost"
    ));
    let pruned = e.prune(&[JobState::Cancelled], NOW + 6)?;
    assert_eq!(pruned, [("x1".to_string(), 0)], "prune: run counts");
    Ok(())
}

/// The counts the driver keeps (`status`, the limits, `dlq stats`) are
/// what counting the jobs gives, after every kind of change.
pub(super) fn counts_follow_every_change(q: &mut Queue) -> Result<()> {
    use std::collections::BTreeMap;
    fn check(e: &mut Engine, step: &str) -> Result<()> {
        let jobs = e.read(|ops| {
            ops.list_jobs(&JobFilter {
                limit: 1000,
                ..JobFilter::default()
            })
        })?;
        let mut by_state: BTreeMap<(String, &str), u64> = BTreeMap::new();
        let mut dead: BTreeMap<(String, Option<i32>), (u64, Option<i64>)> = BTreeMap::new();
        for job in &jobs {
            *by_state
                .entry((job.queue.clone(), job.state.as_str()))
                .or_default() += 1;
            if job.state == JobState::Dead {
                let group = dead.entry((job.queue.clone(), job.exit_code)).or_default();
                group.0 += 1;
                group.1 = group.1.max(job.finished_at);
            }
        }
        let kept: BTreeMap<(String, &str), u64> = e
            .counts()?
            .rows
            .into_iter()
            .map(|(queue, state, n)| ((queue, state.as_str()), n))
            .collect();
        assert_eq!(kept, by_state, "counts after {step}");
        let stats: BTreeMap<(String, Option<i32>), (u64, Option<i64>)> = e
            .dlq_stats()?
            .into_iter()
            .map(|s| ((s.queue, s.exit_code), (s.count, s.newest_at)))
            .collect();
        assert_eq!(stats, dead, "dlq stats after {step}");
        let unfinished = |state: JobState| {
            by_state
                .iter()
                .filter(|((_, s), _)| *s == state.as_str())
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        assert_eq!(
            e.unfinished_counts()?,
            (
                unfinished(JobState::Pending),
                unfinished(JobState::Processing),
                unfinished(JobState::Failed)
            ),
            "unfinished counts after {step}"
        );
        let running = e.read(|ops| ops.running_counts(&strings(&["default", "batch"])))?;
        assert_eq!(
            running,
            ["default", "batch"].map(|queue| {
                u32::try_from(
                    by_state
                        .get(&(queue.to_string(), JobState::Processing.as_str()))
                        .copied()
                        .unwrap_or(0),
                )
                .unwrap_or(u32::MAX)
            }),
            "running counts after {step}"
        );
        Ok(())
    }
    let e = &mut q.engine;
    register(e, W)?;
    check(e, "nothing")?;
    insert(e, &[job("a"), job_in("b", "batch"), job("c"), job("d")])?;
    check(e, "inserts")?;
    let a = claim_only(e, W, "a")?;
    let b = claim_only(e, W, "b")?;
    check(e, "claims")?;
    finish(e, &a, W, &completed(), NOW + 1)?;
    finish_with_code(e, &b, W, &dead(), 3, NOW + 2)?;
    check(e, "finishes")?;
    // A job lost with its worker, dead without an exit code.
    claim_only(e, W, "c")?;
    e.write(|ops| {
        ops.set_lost(&[crate::driver::LostParams {
            id: "c",
            state: JobState::Dead,
            run_at: NOW + 6,
            finished_at: Some(NOW + 6),
            error: "lost",
            now: NOW + 6,
        }])
    })?;
    check(e, "a lost job")?;
    e.write(|ops| ops.cancel_waiting(&strings(&["d"]), "no", NOW + 8))?;
    check(e, "cancel")?;
    run_to_end(e, job("e"), &dead(), 1, NOW + 3)?;
    run_to_end(e, job("f"), &dead(), 1, NOW + 4)?;
    run_to_end(e, job_in("g", "batch"), &dead(), 2, NOW + 5)?;
    check(e, "dead jobs by exit code")?;
    e.write(|ops| ops.requeue_dead(&strings(&["e", "c"]), false, NOW + 7))?;
    check(e, "requeue")?;
    e.write(|ops| ops.delete_jobs(&strings(&["f", "a"])))?;
    check(e, "deletes")?;
    e.prune(&[JobState::Cancelled], NOW + 9)?;
    check(e, "prune")?;
    Ok(())
}

pub(super) fn engine_cancel(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    run_to_end(e, job("done"), &completed(), 0, NOW)?;
    insert(e, &[job("run")])?;
    claim_only(e, W, "run")?;
    insert(e, &[job("wait")])?;

    assert_eq!(e.cancel("wait", NOW + 1)?, JobState::Pending);
    let wait = e.job("wait")?;
    assert_eq!(
        (wait.state, wait.reason.as_deref(), wait.finished_at),
        (
            JobState::Cancelled,
            Some("cancelled by user"),
            Some(NOW + 1)
        ),
        "a waiting job is cancelled at once"
    );
    assert_eq!(e.cancel("run", NOW + 2)?, JobState::Processing);
    assert_eq!(
        (state(e, "run")?, e.cancel_requests(W)?),
        (JobState::Processing, strings(&["run"])),
        "a running job is flagged for its worker"
    );
    assert_eq!(
        input_error(e.cancel("done", NOW + 3)),
        "job `done` is already completed; only pending, failed or processing jobs can be cancelled"
    );
    assert_eq!(
        input_error(e.cancel("wait", NOW + 3)),
        "job `wait` is already cancelled; only pending, failed or processing jobs can be cancelled"
    );
    assert!(matches!(e.cancel("ghost", NOW), Err(Error::UnknownJob(_))));
    assert!(
        e.write(|ops| ops.cancel_waiting(&strings(&["run", "done"]), "no", NOW + 4))?
            .is_empty(),
        "cancel_waiting leaves running and finished jobs alone"
    );
    assert_eq!(
        (state(e, "run")?, state(e, "done")?),
        (JobState::Processing, JobState::Completed)
    );
    Ok(())
}

// ---------------------------------------------------------------------
// The dashboard's reads: keyset pages with every filter, throughput.
// ---------------------------------------------------------------------

pub(super) fn job_pages_and_throughput(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    // Throughput: jobs completed and attempts failed per minute of their
    // end; a job that failed once, then completed, counts in both.
    register(e, W)?;
    let minute = 60_000;
    let base = (NOW / minute + 1) * minute;
    run_to_end(e, job("t1"), &completed(), 0, base + 1)?;
    run_to_end(e, job("t2"), &completed(), 0, base + 2)?;
    run_to_end(e, job("t3"), &dead(), 1, base + 3)?;
    run_to_end(e, job("t4"), &completed(), 0, base + minute + 5)?;
    let retried = Ended {
        outcome: AttemptOutcome::Failed,
        state: JobState::Failed,
        run_at: Some(NOW),
        error: Some("exit code 1; retry 1 of 1".into()),
    };
    run_to_end(e, job("t5"), &retried, 1, base + 4)?;
    let again = claim_only(e, W, "t5")?;
    assert!(finish_with_code(
        e,
        &again,
        W,
        &completed(),
        0,
        base + minute + 6
    )?);
    let mut counts = |since| -> Result<Vec<(i64, Tally, u64)>> {
        Ok(e.finished_by_minute(since)?
            .into_iter()
            .map(|m| (m.minute, m.tally, m.count))
            .collect())
    };
    let m = base / minute;
    assert_eq!(
        counts(base)?,
        [
            (m, Tally::Completed, 2),
            (m, Tally::Failed, 2),
            (m + 1, Tally::Completed, 2),
        ]
    );
    assert_eq!(counts(base + minute)?, [(m + 1, Tally::Completed, 2)]);
    // Each attempt keeps the worker that ran it and that worker's host.
    let attempts = e.attempts("t5")?;
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.run, a.worker, a.host.as_deref(), a.outcome))
            .collect::<Vec<_>>(),
        [
            (1, Some(W), Some("test-host"), Some(AttemptOutcome::Failed)),
            (
                2,
                Some(W),
                Some("test-host"),
                Some(AttemptOutcome::Completed)
            ),
        ]
    );
    e.write(|ops| ops.delete_jobs(&strings(&["t1", "t2", "t3", "t4", "t5"])))?;

    // Five jobs; two share a creation time (the id breaks the tie).
    let at = |id: &str, created_at: i64, command: &str| NewJob {
        created_at,
        command: command.into(),
        ..job(id)
    };
    insert(
        e,
        &[
            at("a", NOW, "make build"),
            at("b", NOW + 1, "make test"),
            at("c", NOW + 1, "cargo test"),
            NewJob {
                queue: "deploy".into(),
                ..at("d", NOW + 2, "make deploy")
            },
            NewJob {
                origin: Origin::Jobfile,
                definition: Some("lint".into()),
                ..at("e", NOW + 3, "cargo clippy")
            },
        ],
    )?;
    let page = |e: &mut Engine, filter: JobFilter| -> Result<Vec<String>> {
        Ok(e.list(&filter)?.into_iter().map(|j| j.id).collect())
    };
    let all = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(page(e, all.clone())?, ["e", "d", "c", "b", "a"]);
    // Keyset pages of two, each after the last row of the one before.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let jobs = e.list(&JobFilter {
            limit: 2,
            before: before.clone(),
            ..JobFilter::default()
        })?;
        let Some(last) = jobs.last() else { break };
        before = Some((last.created_at, last.id.clone()));
        seen.extend(jobs.into_iter().map(|j| j.id));
    }
    assert_eq!(
        seen,
        ["e", "d", "c", "b", "a"],
        "pages neither skip nor repeat"
    );
    assert_eq!(
        page(
            e,
            JobFilter {
                before: Some((NOW + 1, "c".into())),
                ..all.clone()
            }
        )?,
        ["b", "a"],
        "a tie on created_at is broken by the id"
    );
    let text = |t: &str| JobFilter {
        text: Some(t.into()),
        ..all.clone()
    };
    assert_eq!(page(e, text("make"))?, ["d", "b", "a"]);
    assert_eq!(page(e, text("test"))?, ["c", "b"]);
    assert_eq!(
        page(e, text("Make"))?,
        Vec::<String>::new(),
        "case-sensitive"
    );
    assert_eq!(page(e, text("%"))?, Vec::<String>::new(), "no wildcards");
    // Nor GLOB's: `*`, `?` and `[` are themselves (SQLite reads the
    // trigram index with GLOB); two characters are too few for it.
    insert(
        e,
        &[
            at("g1", NOW + 4, "ls *.txt"),
            at("g2", NOW + 5, "echo a?b [x]"),
        ],
    )?;
    assert_eq!(page(e, text("*.t"))?, ["g1"]);
    assert_eq!(page(e, text("a?b"))?, ["g2"]);
    assert_eq!(page(e, text("[x]"))?, ["g2"]);
    assert_eq!(page(e, text(".tx*"))?, Vec::<String>::new());
    assert_eq!(page(e, text("ca"))?, ["e", "c"]);
    assert_eq!(page(e, text("go "))?, ["e", "c"]);
    e.write(|ops| ops.delete_jobs(&strings(&["g1", "g2"])))?;
    assert_eq!(page(e, text("*.t"))?, Vec::<String>::new(), "deleted");
    let by_origin = JobFilter {
        origin: Some(Origin::Jobfile),
        ..all.clone()
    };
    assert_eq!(page(e, by_origin.clone())?, ["e"]);
    assert_eq!(e.count(&by_origin)?, 1);
    assert_eq!(e.count(&text("make"))?, 3);
    let combined = JobFilter {
        queue: Some("default".into()),
        text: Some("make".into()),
        before: Some((NOW + 1, "b".into())),
        ..all.clone()
    };
    assert_eq!(page(e, combined.clone())?, ["a"]);
    assert_eq!(e.count(&combined)?, 1);

    Ok(())
}

/// A text in many commands and one in few find the same jobs as a scan
/// would, newest first: SQLite reads the rare one's matches from its
/// trigram index and walks the newest jobs for the common one.
pub(super) fn common_and_rare_texts(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    let many = 10_001; // over SQLite's COMMON_TEXT
    let jobs: Vec<NewJob> = (0..many)
        .map(|i| NewJob {
            created_at: NOW + i,
            command: format!("echo common {i}"),
            ..job(&format!("c{i:05}"))
        })
        .chain([NewJob {
            created_at: NOW - 1,
            command: "echo rare thing".into(),
            ..job("rare")
        }])
        .collect();
    insert(e, &jobs)?;
    let text = |t: &str, limit| JobFilter {
        text: Some(t.into()),
        limit,
        ..JobFilter::default()
    };
    let ids = |e: &mut Engine, filter: &JobFilter| -> Result<Vec<String>> {
        Ok(e.list(filter)?.into_iter().map(|j| j.id).collect())
    };
    assert_eq!(ids(e, &text("common", 3))?, ["c10000", "c09999", "c09998"]);
    assert_eq!(e.count(&text("common", 3))?, 10_001);
    assert_eq!(ids(e, &text("rare thing", 3))?, ["rare"]);
    assert_eq!(e.count(&text("rare", 3))?, 1);
    assert_eq!(ids(e, &text("common 1234", 5))?, ["c01234"]);
    Ok(())
}
