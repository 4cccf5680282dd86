//! The planner, case by case.

use std::path::Path;

use super::*;
use crate::jobfile;

fn jobfile(text: &str) -> Jobfile {
    jobfile::parse(text, Path::new("/repo/queuectl.toml")).unwrap_or_else(|d| panic!("{d}"))
}

/// A stored job exactly as `apply` would have made it from `def`.
fn stored_from(jobfile: &Jobfile, name: &str, id: &str, state: JobState) -> WaitingJob {
    let def = &jobfile.jobs[name];
    WaitingJob {
        id: id.into(),
        definition: name.into(),
        state,
        spec_hash: Some(def.spec_hash()),
        command: def.command.clone(),
        env: def.env.clone(),
        cwd: Some(cwd_of(def, &jobfile.dir)),
        queue: def.queue.clone(),
        priority: def.priority,
        timeout_ms: def.timeout.map(crate::duration::as_millis_i64),
        retry: def.retry.clone(),
        after: def.after.clone(),
        reason: None,
    }
}

/// The store after applying `before` once, with the job in `state`.
fn applied(before: &Jobfile, state: JobState) -> Stored {
    let mut stored = Stored {
        queues: before.queues.clone(),
        ..Stored::default()
    };
    for name in before.jobs.keys() {
        let job = stored_from(before, name, &format!("{name}-1"), state);
        if matches!(state, JobState::Pending | JobState::Failed) {
            stored
                .waiting
                .entry(name.clone())
                .or_default()
                .push(job.clone());
        }
        stored.latest.insert(name.clone(), (&job).into());
    }
    stored
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.render()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

const BASE: &str = "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo test\"\n";

#[test]
fn the_planner_case_by_case() {
    let base = jobfile(BASE);
    let cases: &[(&str, &str, JobState, &[&str])] = &[
        (
            "new",
            BASE,
            JobState::Pending,
            &[
                "+ enqueue test new",
                "Plan: 1 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
        (
            "unchanged, pending",
            BASE,
            JobState::Pending,
            &["No changes."],
        ),
        (
            "unchanged, completed",
            BASE,
            JobState::Completed,
            &["No changes."],
        ),
        (
            "changed command, pending",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo nextest run\"\n",
            JobState::Pending,
            &[
                "~ requeue test command changed",
                "Plan: 1 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
        (
            "changed command, completed",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo nextest run\"\n",
            JobState::Completed,
            &[
                "~ requeue test command changed",
                "Plan: 1 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
        (
            "changed env, completed",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo test\"\nenv = { RUST_LOG = \"debug\" }\n",
            JobState::Completed,
            &[
                "~ requeue test env changed",
                "Plan: 1 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
        (
            "changed priority only, pending",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo test\"\npriority = 5\n",
            JobState::Pending,
            &[
                "~ update test priority 0 -> 5 (1 pending)",
                "Plan: 0 to enqueue, 1 to update, 0 to cancel.",
            ],
        ),
        (
            "changed priority only, completed",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo test\"\npriority = 5\n",
            JobState::Completed,
            &["No changes."],
        ),
        ("dead, same spec", BASE, JobState::Dead, &["No changes."]),
        (
            "dead, new spec",
            "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"cargo test --locked\"\n",
            JobState::Dead,
            &[
                "~ requeue test command changed",
                "Plan: 1 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
        (
            "removed, pending",
            "[queues.default]\nworkers = 2\n",
            JobState::Pending,
            &[
                "- cancel test removed from jobfile (1 pending)",
                "Plan: 0 to enqueue, 0 to update, 1 to cancel.",
            ],
        ),
        (
            "removed, completed",
            "[queues.default]\nworkers = 2\n",
            JobState::Completed,
            &["No changes."],
        ),
        (
            "renamed queue, pending",
            "[queues.default]\nworkers = 2\n[queues.ci]\nworkers = 3\n[jobs.test]\ncommand = \"cargo test\"\nqueue = \"ci\"\n",
            JobState::Pending,
            &[
                "~ update test queue default -> ci (1 pending)",
                "+ queue ci workers 3",
                "Plan: 0 to enqueue, 1 to update, 0 to cancel.",
            ],
        ),
        (
            "more workers",
            "[queues.default]\nworkers = 4\n[jobs.test]\ncommand = \"cargo test\"\n",
            JobState::Completed,
            &[
                "~ queue default workers 2 -> 4",
                "Plan: 0 to enqueue, 0 to update, 0 to cancel.",
            ],
        ),
    ];
    for (what, after, state, expected) in cases {
        let stored = if *what == "new" {
            Stored {
                queues: base.queues.clone(),
                ..Stored::default()
            }
        } else {
            applied(&base, *state)
        };
        let plan = plan(&jobfile(after), &stored);
        assert_eq!(lines(&plan), *expected, "{what}");
    }
}

#[test]
fn the_design_format_exactly() {
    let plan = Plan {
        actions: vec![
            Action::Enqueue {
                name: "build-docs".into(),
                reason: "new".into(),
            },
            Action::Requeue {
                name: "test".into(),
                reason: "command changed".into(),
                replaces: vec![],
            },
            Action::Update {
                name: "lint".into(),
                changes: vec![Change {
                    field: "priority",
                    from: "0".into(),
                    to: "5".into(),
                }],
                ids: vec!["x".into()],
            },
            Action::Cancel {
                name: "old-report".into(),
                ids: vec!["y".into()],
            },
            Action::Queue {
                name: "default".into(),
                from: Some(2),
                to: Some(4),
            },
        ],
    };
    assert_eq!(
        plan.render(),
        "+ enqueue  build-docs       new\n\
         ~ requeue  test             command changed\n\
         ~ update   lint             priority 0 -> 5 (1 pending)\n\
         - cancel   old-report       removed from jobfile (1 pending)\n\
         ~ queue    default          workers 2 -> 4\n\
         Plan: 2 to enqueue, 1 to update, 1 to cancel.\n"
    );
}

#[test]
fn queuectl_s_own_variables_are_not_part_of_the_spec() {
    let file = jobfile("[jobs.nightly]\ncommand = \"x\"\nschedule = \"@daily\"\n");
    let mut stored = applied(&file, JobState::Pending);
    for job in stored.waiting.values_mut().flatten() {
        job.env.push((
            "QUEUECTL_SCHEDULED_AT".into(),
            "2026-11-22T02:00:00Z".into(),
        ));
    }
    assert!(
        plan(&file, &stored).is_empty(),
        "{}",
        plan(&file, &stored).render()
    );
}

#[test]
fn scheduled_and_watched_definitions_are_never_enqueued_by_apply() {
    let file = jobfile(
        "[jobs.nightly]\ncommand = \"x\"\nschedule = \"@daily\"\n[jobs.w]\ncommand = \"y\"\nwatch = [\"*.md\"]\n",
    );
    let stored = Stored {
        queues: file.queues.clone(),
        ..Stored::default()
    };
    assert!(plan(&file, &stored).is_empty());
}

#[test]
fn applying_the_plan_is_a_fixed_point() {
    // After an apply, the store holds exactly what the plan asked for, and
    // planning again finds nothing to do.
    let file = jobfile(
        "[queues.q]\nworkers = 1\n[jobs.a]\ncommand = \"x\"\nqueue = \"q\"\n[jobs.b]\ncommand = \"y\"\nafter = [\"a\"]\n",
    );
    let stored = applied(&file, JobState::Pending);
    assert!(
        plan(&file, &stored).is_empty(),
        "{}",
        plan(&file, &stored).render()
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A jobfile of up to 6 one-shot jobs over 2 queues.
    fn jobfile_text() -> impl Strategy<Value = String> {
        proptest::collection::btree_map(
            "[a-f]",
            ("[xy]{1,2}", 0i64..3, prop_oneof![Just("default"), Just("q")], 0u32..3),
            0..6,
        )
        .prop_map(|jobs| {
            let mut text = String::from("[queues.q]\nworkers = 1\n");
            for (name, (command, priority, queue, retries)) in jobs {
                text.push_str(&format!(
                    "[jobs.{name}]\ncommand = \"{command}\"\npriority = {priority}\nqueue = \"{queue}\"\nretry = {{ max_retries = {retries} }}\n"
                ));
            }
            text
        })
    }

    /// What `apply` does to the store, as a model.
    fn apply(file: &Jobfile, stored: &mut Stored, plan: &Plan, next_id: &mut u32) {
        for action in &plan.actions {
            match action {
                Action::Enqueue { name, .. } | Action::Requeue { name, .. } => {
                    stored.waiting.remove(name);
                    *next_id += 1;
                    let job = stored_from(file, name, &format!("j{next_id}"), JobState::Pending);
                    stored.waiting.insert(name.clone(), vec![job.clone()]);
                    stored.latest.insert(name.clone(), (&job).into());
                }
                Action::Update { name, .. } => {
                    let updated = stored_from(file, name, "x", JobState::Pending);
                    for job in stored.waiting.get_mut(name).into_iter().flatten() {
                        let id = job.id.clone();
                        *job = WaitingJob {
                            id,
                            ..updated.clone()
                        };
                        if stored.latest.get(name).is_some_and(|l| l.id == job.id) {
                            stored.latest.insert(name.clone(), LatestRun::from(&*job));
                        }
                    }
                }
                Action::Cancel { name, .. } => {
                    stored.waiting.remove(name);
                    if let Some(latest) = stored.latest.get_mut(name) {
                        latest.state = JobState::Cancelled;
                        latest.reason = Some(REMOVED.into());
                    }
                }
                Action::Queue {
                    name, to: Some(w), ..
                } => {
                    stored.queues.insert(name.clone(), *w);
                }
                Action::Queue { name, to: None, .. } => {
                    stored.queues.remove(name);
                }
            }
        }
    }

    /// Some waiting jobs finish, some die.
    fn settle(stored: &mut Stored, outcomes: &[JobState]) {
        for (i, (name, latest)) in stored.latest.iter_mut().enumerate() {
            let state = outcomes.get(i).copied().unwrap_or(JobState::Pending);
            if state != JobState::Pending {
                latest.state = state;
                stored.waiting.remove(name);
            }
        }
    }

    proptest! {
        #[test]
        fn apply_then_plan_finds_nothing_to_do(
            first in jobfile_text(),
            second in jobfile_text(),
            outcomes in proptest::collection::vec(prop_oneof![Just(JobState::Pending), Just(JobState::Completed), Just(JobState::Dead)], 6),
        ) {
            let (first, second) = (jobfile(&first), jobfile(&second));
            let mut stored = Stored::default();
            let mut ids = 0;
            let p1 = plan(&first, &stored);
            apply(&first, &mut stored, &p1, &mut ids);
            prop_assert!(plan(&first, &stored).is_empty(), "{}", plan(&first, &stored).render());
            settle(&mut stored, &outcomes);
            let p2 = plan(&second, &stored);
            apply(&second, &mut stored, &p2, &mut ids);
            let p3 = plan(&second, &stored);
            prop_assert!(p3.is_empty(), "after\n{}\nstill\n{}", p2.render(), p3.render());
        }
    }
}
