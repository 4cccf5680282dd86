//! Cron ticks and watch batches, through the engine.

use super::*;

// ---------------------------------------------------------------------
// Cron ticks (engine).
// ---------------------------------------------------------------------

fn tick_job(id: &str, definition: &str, tick: i64) -> NewJob {
    NewJob {
        origin: Origin::Schedule,
        tick_at: Some(tick),
        payload: Some(Payload::Scheduled(tick)),
        exclusive: Some(format!("schedule:{definition}")),
        created_at: NOW + tick,
        run_at: NOW + tick,
        ..def_job(id, definition)
    }
}

fn schedule_row(tick: i64, checked_at: i64) -> ScheduleRow {
    ScheduleRow {
        expression: "@hourly".into(),
        timezone: "UTC".into(),
        last_tick: tick,
        checked_at,
        missed: 0,
        missed_at: None,
    }
}

pub(super) fn ticks_are_idempotent_and_follow_overlap(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    for overlap in [Overlap::Skip, Overlap::Allow, Overlap::Replace] {
        let def = format!("nightly-{overlap:?}");
        let id = |n: &str| format!("{overlap:?}-{n}");
        let tick = |e: &mut Engine, n: &str, at: i64| {
            e.schedule_tick(
                &def,
                &schedule_row(at, NOW + at),
                Some(&tick_job(&id(n), &def, at)),
                overlap,
                NOW + at,
            )
        };
        assert_eq!(
            tick(e, "a", 1)?,
            Some(TickOutcome::Enqueued(id("a"))),
            "{overlap:?}: the first tick"
        );
        assert_eq!(
            tick(e, "z", 1)?,
            Some(TickOutcome::AlreadyDone),
            "{overlap:?}: the same tick again"
        );
        assert!(e.read(|ops| ops.job(&id("z")))?.is_none(), "no second job");
        let (second, expected) = match overlap {
            Overlap::Skip => (TickOutcome::SkippedBusy, vec![("a", JobState::Pending)]),
            Overlap::Allow => (
                TickOutcome::Enqueued(id("b")),
                vec![("a", JobState::Pending), ("b", JobState::Pending)],
            ),
            Overlap::Replace => (
                TickOutcome::Enqueued(id("b")),
                vec![("a", JobState::Cancelled), ("b", JobState::Pending)],
            ),
        };
        assert_eq!(tick(e, "b", 2)?, Some(second), "{overlap:?}: the next tick");
        let expected: Vec<(String, JobState)> =
            expected.into_iter().map(|(n, s)| (id(n), s)).collect();
        assert_eq!(
            definition_states(e, &def)?,
            expected,
            "{overlap:?}: the jobs"
        );
        if overlap == Overlap::Replace {
            assert_eq!(
                e.job(&id("a"))?.reason.as_deref(),
                Some("replaced by a newer tick")
            );
        }
        assert_eq!(
            e.schedule(&def)?.map(|r| r.last_tick),
            Some(2),
            "{overlap:?}: the last tick recorded"
        );
        assert!(e.read(|ops| ops.tick_enqueued(&def, 1))?);
        assert!(!e.read(|ops| ops.tick_enqueued(&def, 3))?);
    }
    Ok(())
}

/// `overlap = "replace"`: a waiting run is cancelled, a running one gets
/// a cancel request.
pub(super) fn replace_stops_a_running_tick(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    let def = "hourly";
    let tick = |e: &mut Engine, id: &str, at: i64| {
        e.schedule_tick(
            def,
            &schedule_row(at, NOW + at),
            Some(&tick_job(id, def, at)),
            Overlap::Replace,
            NOW + at,
        )
    };
    tick(e, "a", 1)?;
    let due = ClaimParams {
        now: NOW + 1,
        ..any(W, 1)
    };
    assert_eq!(ids(&e.write(|ops| ops.claim_jobs(&due))?), ["a"]);
    assert_eq!(tick(e, "b", 2)?, Some(TickOutcome::Enqueued("b".into())));
    assert_eq!(tick(e, "c", 3)?, Some(TickOutcome::Enqueued("c".into())));
    assert_eq!(
        definition_states(e, def)?,
        pairs(&[
            ("a", JobState::Processing),
            ("b", JobState::Cancelled),
            ("c", JobState::Pending),
        ]),
        "the waiting run cancelled, the running one left to its worker"
    );
    assert_eq!(
        e.cancel_requests(W)?,
        ["a"],
        "the running one is asked to stop"
    );
    assert_eq!(
        e.job("a")?.reason.as_deref(),
        Some("replaced by a newer tick")
    );
    Ok(())
}

pub(super) fn a_schedule_never_moves_back(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    assert_eq!(e.schedule("nightly")?, None, "never recorded");
    assert_eq!(
        e.schedule_tick(
            "nightly",
            &schedule_row(5, NOW + 5),
            None,
            Overlap::Allow,
            NOW
        )?,
        None,
        "a check without a tick enqueues nothing"
    );
    e.schedule_tick(
        "nightly",
        &schedule_row(3, NOW + 9),
        None,
        Overlap::Allow,
        NOW,
    )?;
    assert_eq!(
        e.schedule("nightly")?,
        Some(schedule_row(5, NOW + 9)),
        "the last tick stays, the check time moves"
    );
    // Missed ticks add up, the latest kept, until the expression changes.
    let missed = |n, at| ScheduleRow {
        missed: n,
        missed_at: at,
        ..schedule_row(6, NOW + 11)
    };
    e.write(|ops| ops.record_schedule("nightly", &missed(2, Some(6))))?;
    e.write(|ops| ops.record_schedule("nightly", &missed(0, None)))?;
    e.write(|ops| ops.record_schedule("nightly", &missed(1, Some(7))))?;
    assert_eq!(
        e.schedule("nightly")?.map(|s| (s.missed, s.missed_at)),
        Some((3, Some(7))),
        "2 + 0 + 1 missed, the latest at 7"
    );
    let changed = ScheduleRow {
        expression: "@daily".into(),
        timezone: "Europe/Paris".into(),
        ..schedule_row(7, NOW + 10)
    };
    e.write(|ops| ops.record_schedule("nightly", &changed))?;
    assert_eq!(
        e.schedule("nightly")?,
        Some(changed),
        "forward, and respelled; the missed ticks of the old expression go"
    );
    assert!(
        e.list(&JobFilter {
            limit: 10,
            ..JobFilter::default()
        })?
        .is_empty(),
        "no job"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// Watch batches (engine).
// ---------------------------------------------------------------------

fn watch_job(id: &str, definition: &str, payload: Payload) -> NewJob {
    NewJob {
        origin: Origin::Watch,
        payload: Some(payload),
        exclusive: Some(format!("watch:{definition}")),
        ..def_job(id, definition)
    }
}

/// A watch batch; the jobs it would make take `ids` in turn.
fn watch(
    e: &mut Engine,
    definition: &str,
    payloads: &[Payload],
    on_busy: OnBusy,
    ids: &[&str],
) -> Result<Vec<WatchOutcome>> {
    let mut ids = ids.iter();
    e.watch_enqueue(
        definition,
        payloads,
        on_busy,
        |payload| watch_job(ids.next().copied().unwrap_or("extra"), definition, payload),
        NOW,
    )
}

pub(super) fn watch_merges_and_follows_on_busy(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    register(e, W)?;
    use WatchOutcome::{Enqueued, Merged, Skipped};
    assert_eq!(
        watch(e, "docs", &[changed(&["x.md"])], OnBusy::Queue, &["w1"])?,
        [Enqueued("w1".into())]
    );
    assert_eq!(
        watch(
            e,
            "docs",
            &[changed(&["y.md", "x.md"])],
            OnBusy::Queue,
            &["w2"]
        )?,
        [Merged("w1".into())],
        "a change merges into the pending job"
    );
    assert_eq!(
        e.job("w1")?.payload,
        Some(changed(&["x.md", "y.md"])),
        "paths united"
    );
    claim_only(e, W, "w1")?;
    assert_eq!(
        watch(e, "docs", &[changed(&["z.md"])], OnBusy::Skip, &["w3"])?,
        [Skipped],
        "skip while one runs"
    );
    assert_eq!(
        watch(e, "docs", &[changed(&["z.md"])], OnBusy::Queue, &["w4"])?,
        [Enqueued("w4".into())],
        "queue a follow-up while one runs"
    );
    assert_eq!(
        watch(e, "docs", &[changed(&["w.md"])], OnBusy::Restart, &["w5"])?,
        [Merged("w4".into())],
        "a pending follow-up takes the change, whatever on_busy says"
    );
    assert_eq!(e.job("w4")?.payload, Some(changed(&["w.md", "z.md"])));
    assert!(e.cancel_requests(W)?.is_empty(), "a merge restarts nothing");
    assert_eq!(
        definition_states(e, "docs")?,
        pairs(&[("w1", JobState::Processing), ("w4", JobState::Pending)])
    );

    // Restart: the running job is asked to stop; a new one is enqueued.
    assert_eq!(
        watch(e, "site", &[changed(&["a"])], OnBusy::Restart, &["s1"])?,
        [Enqueued("s1".into())]
    );
    claim_only(e, W, "s1")?;
    assert_eq!(
        watch(e, "site", &[changed(&["b"])], OnBusy::Restart, &["s2"])?,
        [Enqueued("s2".into())]
    );
    assert_eq!(
        e.cancel_requests(W)?,
        ["s1"],
        "restart stops the running one"
    );
    assert_eq!(
        e.job("s1")?.reason.as_deref(),
        Some("restarted by a change")
    );

    // A waiting job that a watch did not make takes no change.
    e.enqueue(&[def_job("m1", "manual")])?;
    assert_eq!(
        watch(e, "manual", &[changed(&["c"])], OnBusy::Queue, &["m2"])?,
        [Enqueued("m2".into())]
    );
    Ok(())
}

pub(super) fn per_file_watch_merges_the_same_path(q: &mut Queue) -> Result<()> {
    let e = &mut q.engine;
    use WatchOutcome::{Enqueued, Merged};
    let path = |p: &str| Payload::Path(p.into());
    assert_eq!(
        watch(
            e,
            "thumbs",
            &[path("1.png"), path("2.png")],
            OnBusy::Queue,
            &["p1", "p2"]
        )?,
        [Enqueued("p1".into()), Enqueued("p2".into())],
        "one job per path"
    );
    assert_eq!(
        watch(
            e,
            "thumbs",
            &[path("1.png"), path("3.png")],
            OnBusy::Queue,
            &["p3", "p4"]
        )?,
        [Merged("p1".into()), Enqueued("p4".into())],
        "only the same path merges"
    );
    assert_eq!(e.job("p1")?.payload, Some(path("1.png")));
    assert_eq!(e.job("p4")?.payload, Some(path("3.png")));
    Ok(())
}
