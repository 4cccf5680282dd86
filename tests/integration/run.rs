//! `queuectl run`: the CI mode, live edits of the jobfile, shutdown, the
//! output for people, programs and GitHub Actions.

use predicates::prelude::*;

use super::harness::{Env, alive, wait_until};

/// Replaces job ids with their definitions' names and durations with `<t>`,
/// so output can be compared as text.
fn normalize(env: &Env, output: &str) -> String {
    let mut text = output.to_string();
    for job in env.items(&["list", "--all"]) {
        if let (Some(id), Some(name)) = (job["id"].as_str(), job["definition"].as_str()) {
            text = text.replace(id, name);
        }
    }
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    let bare = word.trim_end_matches(',').trim_end_matches(')');
                    let digits = bare.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                    let unit = &bare[digits.len()..];
                    if !digits.is_empty()
                        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                        && matches!(unit, "ms" | "s" | "m")
                    {
                        word.replace(bare, "<t>")
                    } else {
                        word.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const CI_JOBFILE: &str = r#"
[queues.default]
workers = 1

[jobs.ok]
command = "echo fine"
priority = 3

[jobs.flaky]
command = "test -f tried || { touch tried; echo first try fails; exit 1; }"
retry = { max_retries = 2, backoff_base = 1, max_delay = "50ms" }
priority = 2

[jobs.broken]
command = "echo broken for good; exit 3"
retry = { max_retries = 1, backoff_base = 1, max_delay = "50ms" }
priority = 1
"#;

#[test]
fn until_idle_in_ci_exits_1_with_a_summary_and_junit() {
    let env = Env::new();
    env.write("queuectl.toml", CI_JOBFILE);
    let run = env.spawn(&["run", "--until-idle", "--junit", "report.xml"]);
    let (code, output) = run.wait();
    assert_eq!(code, Some(1), "{output}");
    let text = normalize(&env, &output);
    let expected = "\
+ enqueue  broken           new
+ enqueue  flaky            new
+ enqueue  ok               new
+ queue    default          workers 1
Plan: 3 to enqueue, 0 to update, 0 to cancel.
worker pid PID ready: 1 slot(s), default:1
start     ok  attempt 1/4  ok: echo fine
done      ok (ok)  <t>
start     flaky  attempt 1/3  flaky: test -f tried || { touch tried; echo first try fa…
failed    flaky (flaky)  exit code 1 in <t> retry in <t>
    first try fails
start     broken  attempt 1/2  broken: echo broken for good; exit 3
failed    broken (broken)  exit code 3 in <t> retry in <t>
    broken for good
start     flaky  attempt 2/3  flaky: test -f tried || { touch tried; echo first try fa…
done      flaky (flaky)  <t>
start     broken  attempt 2/2  broken: echo broken for good; exit 3
dead      broken (broken)  exit code 3 after 2 attempt(s)
    broken for good
stopping (the queue is idle): running jobs finish, no new ones start
failures:
  dead   broken  exit code 3 after 2 attempt(s)
  flaky  flaky   completed after 1 failed attempt(s)
2 completed, 1 dead, 0 retrying, 0 cancelled in <t>";
    let pid_line = text
        .lines()
        .find(|l| l.starts_with("worker pid "))
        .unwrap_or_default()
        .to_string();
    let pid = pid_line.split(' ').nth(2).unwrap_or_default();
    let text = text.replace(&format!("worker pid {pid} "), "worker pid PID ");
    // A retry's "retry in Xms" may read "retry <t> ago" if the clock moved on.
    let text = text
        .replace("retry <t> ago", "retry in <t>")
        .replace(", retry", " retry");
    assert_eq!(text, expected);

    let xml = env.read("report.xml");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<_> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(names, vec!["ok", "flaky", "broken"]);
    let child = |name: &str, tag: &str| {
        cases
            .iter()
            .find(|c| c.attribute("name") == Some(name))
            .and_then(|c| c.children().find(|n| n.has_tag_name(tag)))
    };
    assert!(child("ok", "failure").is_none());
    assert!(
        child("flaky", "flakyFailure").is_some(),
        "retried then passed: flaky"
    );
    let failure = child("broken", "failure").expect("dead is a failure");
    assert!(
        failure
            .text()
            .unwrap_or_default()
            .contains("broken for good"),
        "with the output tail"
    );
}

#[test]
fn every_job_completing_exits_0() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"true\"\n[jobs.b]\ncommand = \"true\"\nafter = [\"a\"]\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("2 completed, 0 dead"), "{output}");
    // Nothing left to do: a second run applies nothing and runs nothing.
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("no jobs ran"), "{output}");
}

#[test]
fn json_streams_one_event_per_line() {
    let env = Env::new();
    env.write("queuectl.toml", "[jobs.a]\ncommand = \"true\"\n");
    let (code, output) = env.spawn(&["--json", "run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    let events: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|k| *k != "counts")
        .collect();
    // Every event says when it happened; the last sums the run up.
    assert_eq!(
        kinds,
        vec!["ready", "started", "finished", "stopping", "summary"]
    );
    for event in &events {
        let at = event["timestamp"].as_str().unwrap_or_default();
        assert!(at.len() == 24 && at.ends_with('Z'), "{event}");
    }
    let summary = events.last().expect("a summary");
    assert_eq!(summary["completed"], 1, "{summary}");
    assert_eq!(summary["dead"], 0, "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    assert_eq!(
        events
            .iter()
            .find(|e| e["event"] == "finished")
            .map(|e| &e["state"]),
        Some(&serde_json::json!("completed"))
    );
}

#[test]
fn github_actions_get_groups_errors_and_a_step_summary() {
    let env = Env::new();
    env.write("queuectl.toml", "[jobs.deploy]\ncommand = \"echo cannot reach host; exit 7\"\nretry = { max_retries = 0 }\n");
    let summary = env.file("summary.md");
    let summary_path = summary.to_str().unwrap_or_default();
    let (code, output) = env
        .spawn_with(
            &["run", "--until-idle"],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_STEP_SUMMARY", summary_path),
            ],
        )
        .wait();
    assert_eq!(code, Some(1));
    let id = env.items(&["list"])[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The output is fenced (issue 11): between a random token's
    // ::stop-commands:: and its end, nothing the job prints is a command.
    let token = output
        .lines()
        .find_map(|l| l.strip_prefix("::stop-commands::"))
        .unwrap_or_default();
    assert!(output.contains(&format!(
        "::group::dead      deploy ({id})  exit code 7 after 1 attempt(s)\n::stop-commands::{token}\ncannot reach host\n::{token}::\n::endgroup::\n::error file=queuectl.toml,line=1,title=deploy is dead::deploy ({id}): exit code 7"
    )), "{output}");
    let markdown = env.read("summary.md");
    assert!(
        markdown.contains("| `deploy` | ❌ dead | 1 |"),
        "{markdown}"
    );
}

#[test]
fn edits_of_the_jobfile_apply_live() {
    let env = Env::new();
    let wait_all = "touch started.$QUEUECTL_JOB_ID; while [ ! -f release ]; do sleep 0.02; done";
    let jobfile = |workers: u32, extra: &str| {
        format!(
            "[queues.default]\nworkers = {workers}\n\
             [jobs.a]\ncommand = \"{wait_all}\"\n[jobs.b]\ncommand = \"{wait_all}\"\n[jobs.c]\ncommand = \"{wait_all}\"\n{extra}"
        )
    };
    env.write("queuectl.toml", &jobfile(1, ""));
    let run = env.spawn(&["run"]);
    let started = || {
        std::fs::read_dir(env.path())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("started."))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until("one job runs", || started() == 1);
    // A syntax error is reported with its position; the last good file runs on.
    env.write("queuectl.toml", "[queues.default\nworkers = 3\n");
    run.wait_for_output("queuectl.toml:1:");
    run.wait_for_output("kept running on the last good jobfile");
    assert_eq!(started(), 1);
    // workers 1 -> 3: three jobs run at once.
    env.write("queuectl.toml", &jobfile(3, ""));
    wait_until("three jobs run at once", || started() == 3);
    run.wait_for_output("queue default: 1 -> 3 worker(s)");
    // A new job in the file is enqueued and runs.
    env.write("release", "");
    env.write(
        "queuectl.toml",
        &jobfile(3, "[jobs.d]\ncommand = \"echo new > d.out\"\n"),
    );
    wait_until("the new job ran", || env.read("d.out") == "new\n");
    run.wait_for_output("+ enqueue  d                new");
    run.signal("TERM");
    let (code, _) = run.wait();
    assert_eq!(code, Some(143));
}

#[test]
fn sigterm_lets_running_jobs_finish_and_leaves_no_orphans() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 2\n\
         [jobs.a]\ncommand = \"sh -c 'sleep 0.5; echo a done > a.out' & echo $! > a.pid; wait\"\n\
         [jobs.b]\ncommand = \"sleep 0.5 & echo $! > b.pid; wait; echo b done > b.out\"\n",
    );
    let run = env.spawn(&["run"]);
    wait_until("both jobs run", || {
        !env.read("a.pid").is_empty() && !env.read("b.pid").is_empty()
    });
    run.signal("TERM");
    let (code, output) = run.wait();
    assert_eq!(code, Some(143), "{output}");
    assert!(output.contains("stopping (received SIGTERM)"), "{output}");
    assert_eq!(env.read("a.out"), "a done\n");
    assert_eq!(env.read("b.out"), "b done\n");
    for pid_file in ["a.pid", "b.pid"] {
        let pid: u32 = env.read(pid_file).trim().parse().expect("a pid");
        assert!(!alive(pid), "{pid_file}: process {pid} outlived the run");
    }
    assert!(env.states().iter().all(|(_, s)| s == "completed"));
}

#[test]
fn a_second_sigint_stops_jobs_and_returns_them() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.slow]\ncommand = \"echo $$ > slow.pid; exec sleep 30\"\n",
    );
    let run = env.spawn(&["run"]);
    wait_until("the job runs", || !env.read("slow.pid").is_empty());
    run.signal("INT");
    run.wait_for_output("stopping (received SIGINT)");
    run.wait_for_output("Ctrl-C again to stop now");
    run.signal("INT");
    let (code, _) = run.wait();
    assert_eq!(code, Some(130));
    let pid: u32 = env.read("slow.pid").trim().parse().expect("a pid");
    wait_until("the job's process is gone", || !alive(pid));
    let job = &env.items(&["list"])[0];
    assert_eq!(job["state"], "pending", "returned to the queue");
}

#[test]
fn a_second_run_on_the_same_queue_joins_as_workers() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.hold]\ncommand = \"while [ ! -f release ]; do sleep 0.02; done\"\n",
    );
    let first = env.spawn(&["run"]);
    wait_until("the first run applied", || !env.states().is_empty());
    let second = env.spawn(&["run", "--until-idle"]);
    second.wait_for_output("runs as extra workers");
    env.write("release", "");
    let (code, output) = second.wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(
        !output.contains("+ enqueue"),
        "only the owner applies: {output}"
    );
    drop(first);
}

#[test]
fn an_extra_run_takes_the_queue_over_when_its_owner_is_killed() {
    an_extra_run_takes_over(&Env::new(), [&[], &[]]);
}

/// An owner `run` and an extra one (each with these environment
/// variables); the owner is killed: the extra says it owns the queue now,
/// fires the jobfile's watches and applies its edits; nothing declared
/// runs twice. Shared with the PostgreSQL tests.
pub fn an_extra_run_takes_over(env: &Env, vars: [&[(&str, &str)]; 2]) {
    let jobfile = "[settings]\nlease = \"2s\"\n\
         [jobs.once]\ncommand = \"echo ran >> once.log\"\n\
         [jobs.watched]\ncommand = \"echo ran >> watched.log\"\n\
         watch = { paths = [\"in/*.txt\"], debounce = \"50ms\" }\n";
    env.write("queuectl.toml", jobfile);
    std::fs::create_dir_all(env.file("in")).expect("mkdir in");
    let owner = env.spawn_with(&["run"], vars[0]);
    wait_until("the owner ran `once`", || env.read("once.log") == "ran\n");
    let extra = env.spawn_with(&["run"], vars[1]);
    extra.wait_for_output("runs as extra workers");
    owner.signal("KILL");
    extra.wait_for_output("is gone: this one owns it now");
    env.write("in/a.txt", "a");
    wait_until("the new owner fires the watch", || {
        env.read("watched.log") == "ran\n"
    });
    env.write(
        "queuectl.toml",
        &format!("{jobfile}[jobs.added]\ncommand = \"echo ran >> added.log\"\n"),
    );
    wait_until("the new owner applies the edit", || {
        env.read("added.log") == "ran\n"
    });
    assert_eq!(env.read("once.log"), "ran\n", "nothing ran twice");
    extra.signal("TERM");
    let (code, output) = extra.wait();
    assert_eq!(code, Some(143), "{output}");
    drop(owner);
}

#[test]
fn run_rejects_bad_flags() {
    let env = Env::new();
    env.cmd(["run", "--workers", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--workers must be at least 1"));
    env.cmd(["run", "--grace", "-1s"]).assert().code(2);
}
