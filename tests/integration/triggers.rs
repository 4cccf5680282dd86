//! Triggers through the binary: cron schedules and file watches, with a
//! real clock and real file system events.

use std::time::Duration;

use predicates::prelude::*;

use super::harness::{Env, bin, ms, require, wait_until};

#[test]
fn a_one_second_schedule_runs_every_second() {
    a_one_second_schedule_runs_every_second_on(Env::new());
}

#[test]
fn a_one_second_schedule_runs_every_second_on_postgres() {
    if let Some(env) = Env::postgres() {
        a_one_second_schedule_runs_every_second_on(env);
    }
}

fn a_one_second_schedule_runs_every_second_on(env: Env) {
    env.write("queuectl.toml", "[jobs.tick]\ncommand = \"echo $QUEUECTL_SCHEDULED_AT >> ticks\"\nschedule = \"* * * * * *\"\n");
    let run = env.spawn(&["run"]);
    wait_until("two ticks ran", || env.read("ticks").lines().count() >= 2);
    run.signal("TERM");
    let (code, output) = run.wait();
    assert_eq!(code, Some(143), "{output}");
    let ticks: Vec<String> = env.read("ticks").lines().map(str::to_string).collect();
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(ticks, unique, "each tick once");
    for tick in &ticks {
        assert!(
            tick.parse::<jiff::Timestamp>().is_ok(),
            "QUEUECTL_SCHEDULED_AT is RFC 3339: {tick}"
        );
    }
    assert!(output.contains("tick      tick  "), "{output}");
}

#[test]
fn a_killed_run_neither_repeats_nor_loses_ticks() {
    a_killed_run_neither_repeats_nor_loses_ticks_on(Env::new());
}

#[test]
fn a_killed_run_neither_repeats_nor_loses_ticks_on_postgres() {
    if let Some(env) = Env::postgres() {
        a_killed_run_neither_repeats_nor_loses_ticks_on(env);
    }
}

/// On a server the killed run's owner lease lapses first (half the 2 s
/// lease): the restarted run is an extra until then, and takes over.
fn a_killed_run_neither_repeats_nor_loses_ticks_on(env: Env) {
    env.write(
        "queuectl.toml",
        "[settings]\nlease = \"2s\"\n[jobs.tick]\ncommand = \"true\"\nschedule = \"* * * * * *\"\n",
    );
    let first = env.spawn(&["run"]);
    wait_until("two ticks were enqueued", || env.jobs_of("tick").len() >= 2);
    first.signal("KILL");
    let _ = first.wait();
    let last_before = env
        .jobs_of("tick")
        .iter()
        .filter_map(|j| j["tick_at"].as_str().map(ms))
        .max()
        .unwrap_or(0);
    // Let ticks go by with no scheduler up: wall time must pass here.
    std::thread::sleep(Duration::from_millis(2500));
    let restarted_at = jiff::Timestamp::now().as_millisecond();
    let second = env.spawn(&["run"]);
    wait_until("the restarted run ticked", || {
        env.jobs_of("tick")
            .iter()
            .filter_map(|j| j["tick_at"].as_str().map(ms))
            .any(|t| t > restarted_at)
    });
    second.signal("KILL");
    let _ = second.wait();
    let ticks: Vec<i64> = env
        .jobs_of("tick")
        .iter()
        .filter_map(|j| j["tick_at"].as_str().map(ms))
        .collect();
    let mut unique = ticks.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ticks.len(),
        "no tick enqueued twice: {ticks:?}"
    );
    // The ticks that fell while no run was up were not each enqueued: the
    // first tick after the restart is the latest one due (the catch-up),
    // at most a second before the restart, or after it.
    let after: Vec<_> = ticks.iter().filter(|t| **t > last_before).collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|t| **t >= restarted_at - 1000),
        "missed ticks were run one by one: last before {last_before}, restart {restarted_at}, after {after:?}"
    );
}

#[test]
fn watched_paths_enqueue_debounced_jobs() {
    watched_paths_enqueue_debounced_jobs_on(Env::new());
}

#[test]
fn watched_paths_enqueue_debounced_jobs_on_postgres() {
    if let Some(env) = Env::postgres() {
        watched_paths_enqueue_debounced_jobs_on(env);
    }
}

fn watched_paths_enqueue_debounced_jobs_on(env: Env) {
    env.write(
        "queuectl.toml",
        "[jobs.docs]\ncommand = \"printf '%s\\\\n--\\\\n' \\\"$QUEUECTL_CHANGED\\\" >> changed\"\n\
         watch = { paths = [\"docs/**/*.md\"], ignore = [\"docs/drafts/**\"], debounce = \"300ms\" }\n\
         [jobs.thumb]\ncommand = \"echo $QUEUECTL_PATH >> per_file\"\n\
         watch = { paths = [\"images/**/*.png\"], per_file = true }\n",
    );
    std::fs::create_dir(env.file("docs")).expect("mkdir");
    let run = env.spawn(&["run"]);
    run.wait_for_output("ready");
    // Ignored, and not a match: nothing.
    std::fs::create_dir_all(env.file("docs/drafts")).expect("mkdir");
    env.write("docs/drafts/scratch.md", "x");
    env.write("docs/notes.txt", "x");
    // 50 quick writes and a file in a directory made after start: one job.
    for i in 0..50 {
        env.write("docs/a.md", &i.to_string());
    }
    std::fs::create_dir_all(env.file("docs/new/deep")).expect("mkdir");
    env.write("docs/new/deep/b.md", "x");
    std::fs::create_dir_all(env.file("images/sub")).expect("mkdir");
    env.write("images/x.png", "");
    env.write("images/sub/y.png", "");
    wait_until("the docs job ran", || env.read("changed").contains("--"));
    wait_until("both thumbnails ran", || {
        env.read("per_file").lines().count() == 2
    });
    run.signal("TERM");
    let (code, _) = run.wait();
    assert_eq!(code, Some(143));
    assert_eq!(
        env.read("changed"),
        "docs/a.md\ndocs/new/deep/b.md\n--\n",
        "one job, both paths, nothing ignored"
    );
    let mut per_file: Vec<_> = env.read("per_file").lines().map(str::to_string).collect();
    per_file.sort();
    assert_eq!(per_file, vec!["images/sub/y.png", "images/x.png"]);
    assert_eq!(env.jobs_of("docs").len(), 1);
    let job = &env.jobs_of("docs")[0];
    assert_eq!(job["origin"], "watch");
    // Issue 12: a trigger's payload is its own typed column, not env keys.
    assert_eq!(
        job["payload"],
        serde_json::json!({"changed": ["docs/a.md", "docs/new/deep/b.md"]}),
        "the paths are stored with the job: {job}"
    );
    assert_eq!(job["env"], serde_json::json!([]), "{job}");
}

/// `git` in the Env's directory, with the test's own git configuration.
fn git(env: &Env, home: &std::path::Path, args: &[&str]) {
    let mut command = env.command("git");
    hermetic_git(&mut command, home);
    let status = command.args(args).status().expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

/// No global or system git configuration but the test's: `home` is
/// `$HOME`, and `$XDG_CONFIG_HOME` is `home/.config`.
fn hermetic_git(command: &mut std::process::Command, home: &std::path::Path) {
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_SYSTEM", "/dev/null")
        .env_remove("GIT_CONFIG_GLOBAL")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
}

/// Issue 15: a watch leaves out what the repository's ignore files ignore
/// (`.gitignore`, `.git/info/exclude`, git's global excludes, `.ignore`),
/// unless its glob names the ignored directory (`build/**`) or it says
/// `ignore_files = false`; an edit of `.gitignore` counts at once.
///
/// No sleep shows the negative: the ignored files are written before a
/// counted one, and the opt-out job sees them all (so their events came).
#[test]
fn watches_leave_out_what_ignore_files_ignore() {
    if !require("git") {
        return;
    }
    let env = Env::new();
    // Outside the watched directory, as a user's home is.
    let home_dir = tempfile::tempdir().expect("a temp dir");
    let home = home_dir.path();
    std::fs::create_dir_all(home.join(".config/git")).expect("mkdir");
    std::fs::write(home.join(".config/git/ignore"), "global.md\n").expect("global excludes");
    git(&env, home, &["init", "-q"]);
    std::fs::write(env.file(".git/info/exclude"), "# local\nlocal.md\n").expect("exclude");
    env.write(".gitignore", "build/\n");
    env.write(".ignore", "scratch.md\n");
    let jobfile = "[jobs.docs]\ncommand = \"printf '%s\\\\n--\\\\n' \\\"$QUEUECTL_CHANGED\\\" >> changed\"\n\
         watch = { paths = [\"**/*.md\"], debounce = \"100ms\" }\n\
         [jobs.everything]\ncommand = \"printf '%s\\\\n' \\\"$QUEUECTL_CHANGED\\\" >> everything\"\n\
         watch = { paths = [\"**/*.md\"], debounce = \"100ms\", ignore_files = false }\n\
         [jobs.site]\ncommand = \"printf '%s\\\\n' \\\"$QUEUECTL_CHANGED\\\" >> site\"\n\
         watch = { paths = [\"build/**\"], debounce = \"100ms\" }\n";
    env.write("queuectl.toml", jobfile);
    std::fs::create_dir(env.file("build")).expect("mkdir");
    let mut command = env.command(bin());
    hermetic_git(&mut command, home);
    command.arg("run");
    let run = env.start(command);
    run.wait_for_output("ready");

    let ignored = ["build/x.md", "global.md", "local.md", "scratch.md"];
    for path in ignored {
        env.write(path, "x");
    }
    env.write("notes.md", "x");
    wait_until("the docs job ran", || env.read("changed").contains("--"));
    wait_until("the opt-out job saw every write", || {
        let seen = env.read("everything");
        ignored
            .iter()
            .chain(&["notes.md"])
            .all(|p| seen.lines().any(|l| l == *p))
    });
    wait_until("the job watching build/** ran", || {
        env.read("site").lines().any(|l| l == "build/x.md")
    });
    assert_eq!(
        env.read("changed"),
        "notes.md\n--\n",
        "one job, and only the path no ignore file ignores"
    );

    // An edit of .gitignore counts for the changes after it.
    env.write(".gitignore", "build/\nlater.md\n");
    env.write("later.md", "x");
    env.write("again.md", "x");
    wait_until("the docs job ran again", || {
        env.read("changed").matches("--").count() >= 2
    });
    wait_until("the opt-out job saw later.md", || {
        env.read("everything").lines().any(|l| l == "later.md")
    });
    assert_eq!(env.read("changed"), "notes.md\n--\nagain.md\n--\n");

    // Ignore files outside the watched directory (here the global
    // excludes) are read again with the jobfile. The edit adds a one-shot
    // job: once it ran, the reload is done, and the writes after it are
    // seen by the next poll of the watches.
    std::fs::write(home.join(".config/git/ignore"), "global.md\nglobal2.md\n")
        .expect("global excludes");
    env.write(
        "queuectl.toml",
        &format!("{jobfile}[jobs.marker]\ncommand = \"touch marker\"\n"),
    );
    wait_until("the edited jobfile was applied", || {
        env.file("marker").exists()
    });
    env.write("global2.md", "x");
    env.write("third.md", "x");
    wait_until("the docs job ran a third time", || {
        env.read("changed").matches("--").count() >= 3
    });
    wait_until("the opt-out job saw global2.md", || {
        env.read("everything").lines().any(|l| l == "global2.md")
    });
    run.signal("TERM");
    let (code, output) = run.wait();
    assert_eq!(code, Some(143), "{output}");
    assert_eq!(
        env.read("changed"),
        "notes.md\n--\nagain.md\n--\nthird.md\n--\n"
    );
    assert_eq!(env.jobs_of("docs").len(), 3);
}

#[test]
fn status_and_list_show_schedules() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.nightly]\ncommand = \"true\"\nschedule = \"0 2 * * *\"\ntimezone = \"UTC\"\n",
    );
    env.cmd(["status"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("schedules: 1").and(predicate::str::contains(
                "nightly  `0 2 * * *` (UTC)  next ",
            )),
        );
    let views = env.items(&["list", "--scheduled"]);
    let next = views[0]["next_tick_at"]
        .as_str()
        .map(ms)
        .expect("a next tick");
    let next = jiff::Timestamp::from_millisecond(next)
        .expect("a time")
        .to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!((next.hour(), next.minute()), (2, 0));
    assert!(
        views[0]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("02:00"),
        "{views:?}"
    );
}

/// A machine off for three days: its daily schedule missed three ticks.
/// `list --scheduled` counts them before any `run` is back (they fell
/// since the last look), and the same after the `run` that handles them
/// (one catch-up run); the latest is the last tick due.
#[test]
fn missed_ticks_are_counted_and_shown() {
    if !require("faketime") {
        return;
    }
    let lib = super::harness::libfaketime();
    let env = Env::new();
    // An hour of the day about 12 h from now: no tick falls during the test.
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hour = (now.hour() + 12) % 24;
    env.write(
        "queuectl.toml",
        &format!(
            "[jobs.daily]\ncommand = \"true\"\nschedule = \"0 {hour} * * *\"\ntimezone = \"UTC\"\n"
        ),
    );
    // Three days ago, a run saw the schedule (and it started from then).
    let past = env.spawn_with(
        &["run"],
        &[
            ("LD_PRELOAD", lib.to_str().unwrap_or_default()),
            ("FAKETIME", "-3d"),
        ],
    );
    wait_until("the run saw the schedule", || {
        !env.items(&["list", "--scheduled"])[0]["last_tick_at"].is_null()
    });
    past.signal("TERM");
    let _ = past.wait();
    // The latest tick due now: today's at `hour` if it has passed, else
    // yesterday's; three of them fell since three days ago.
    let today = now
        .with()
        .hour(hour)
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .expect("a time today");
    let latest = if today.timestamp() <= now.timestamp() {
        today
    } else {
        today.yesterday().expect("yesterday")
    }
    .timestamp()
    .as_millisecond();
    let shown = |env: &Env| {
        let views = env.items(&["list", "--scheduled"]);
        (
            views[0]["missed_ticks"].as_u64(),
            views[0]["last_missed_tick_at"].as_str().map(ms),
        )
    };
    assert_eq!(shown(&env), (Some(3), Some(latest)), "before a run is back");
    env.cmd(["list", "--scheduled"])
        .assert()
        .success()
        .stdout(predicate::str::contains("missed 3 ticks (latest "));
    // A run is back: one catch-up run for the three, and the count stays.
    let back = env.spawn(&["run"]);
    wait_until("the catch-up run completed", || {
        env.jobs_of("daily")
            .iter()
            .any(|j| j["state"] == "completed")
    });
    back.signal("TERM");
    let _ = back.wait();
    let jobs = env.jobs_of("daily");
    assert_eq!(jobs.len(), 1, "one catch-up run: {jobs:?}");
    assert_eq!(jobs[0]["tick_at"].as_str().map(ms), Some(latest));
    assert_eq!(shown(&env), (Some(3), Some(latest)), "after the catch-up");
}
