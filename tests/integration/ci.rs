//! Runs you can trust in CI (issue 11): reruns that mean something, exit
//! codes from the declared state, failures you can read, names for jobs,
//! arguments that mean what they say, fenced GitHub output, JUnit that
//! validates, the habits of other job queues' users.

use predicates::prelude::*;
use serde_json::Value;

use super::harness::{Env, bin, require, wait_until};

const CHECKS: &str = "[queues.default]\nworkers = 1\n\
    [retry.default]\nmax_retries = 0\n\
    [jobs.check]\ncommand = \"cat src/a.txt >> check.log; grep -q good src/a.txt\"\n\
    sources = [\"src/**/*.txt\"]\n\
    [jobs.report]\ncommand = \"echo report >> report.log\"\nafter = [\"check\"]\n";

#[test]
fn a_changed_input_reruns_its_job_and_the_dependents() {
    let env = Env::new();
    std::fs::create_dir(env.file("src")).expect("mkdir");
    env.write("src/a.txt", "good\n");
    env.write("queuectl.toml", CHECKS);
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    // Nothing changed: nothing reruns.
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
    // A changed input: the job and what depends on it run again.
    env.write("src/a.txt", "bad\n");
    env.cmd(["plan"]).assert().success().stdout(
        "~ requeue  check            input `src/a.txt` changed\n\
         ~ requeue  report           dependency `check` runs again\n\
         Plan: 2 to enqueue, 0 to update, 0 to cancel.\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "the check fails now: {output}");
    assert_eq!(env.read("check.log"), "good\nbad\n");
    // A new input file counts too.
    env.write("src/a.txt", "good\n");
    env.write("src/b.txt", "new\n");
    env.cmd(["plan"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "~ requeue  check            2 inputs changed (`src/a.txt`, `src/b.txt`)",
        ));
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(env.read("report.log"), "report\nreport\n");
}

#[test]
fn rerun_runs_every_one_shot_job_again() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"echo a >> a.log\"\n[jobs.b]\ncommand = \"echo b >> b.log\"\nafter = [\"a\"]\n",
    );
    for _ in 0..2 {
        let (code, output) = env.spawn(&["run", "--until-idle", "--rerun"]).wait();
        assert_eq!(code, Some(0), "{output}");
    }
    assert_eq!(env.read("a.log"), "a\na\n");
    assert_eq!(env.read("b.log"), "b\nb\n");
    env.cmd(["apply", "--rerun"]).assert().success().stdout(
        "~ requeue  a                rerun requested\n\
         ~ requeue  b                rerun requested\n\
         Plan: 2 to enqueue, 0 to update, 0 to cancel.\n",
    );
}

#[test]
fn the_exit_code_comes_from_the_declared_state() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[retry.default]\nmax_retries = 0\n\
         [jobs.broken]\ncommand = \"echo broken for good; exit 3\"\n\
         [jobs.deploy]\ncommand = \"true\"\nafter = [\"broken\"]\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{output}");
    // A rerun in the same workspace starts nothing, and is still red.
    let (code, output) = env
        .spawn(&["run", "--until-idle", "--junit", "report.xml"])
        .wait();
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("dead       broken  exit code 3 after 1 attempt(s) (an earlier run)"),
        "{output}"
    );
    let xml = env.read("report.xml");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap_or_default().to_string())
        .collect();
    assert_eq!(cases, vec!["broken", "deploy"], "{xml}");
    assert!(xml.contains("<failure"), "{xml}");
    assert!(
        xml.contains(r#"<skipped message="dependency `broken` is dead"/>"#),
        "{xml}"
    );
}

#[test]
fn nothing_to_run_is_an_error_unless_allowed() {
    let env = Env::new();
    env.cmd(["run", "--until-idle"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to run"));
    env.cmd(["run", "--until-idle", "--allow-empty"])
        .assert()
        .success();
    env.write("queuectl.toml", "[queues.default]\nworkers = 1\n");
    env.cmd(["run", "--until-idle"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to run"));
}

#[test]
fn nothing_waits_forever() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.nightly]\ncommand = \"true\"\nschedule = \"@daily\"\n\
         [jobs.report]\ncommand = \"true\"\nafter = [\"nightly\"]\n",
    );
    env.cmd(["validate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`jobs.report.after` names `nightly`, which runs on a schedule",
        ));
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"true\"\n[jobs.b]\ncommand = \"echo b > b.out\"\nafter = [\"a\"]\n",
    );
    // b's dependency never ran: b is cancelled with the reason, and
    // nothing waits for it.
    let id = env.enqueue(&["--job", "b"]);
    let job = env.job(&id);
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["reason"], "dependency `a` has never run");
    let (code, output) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0), "{output}");
    // A waiting job says what it waits for.
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"while [ ! -f release ]; do sleep 0.02; done\"\n\
         [jobs.b]\ncommand = \"true\"\nafter = [\"a\"]\n",
    );
    env.cmd(["apply"]).assert().success();
    let _worker = env.worker(&["--count", "2"]);
    wait_until("a runs", || env.jobs_of("a")[0]["state"] == "processing");
    env.cmd(["show", "b"]).assert().success().stdout(
        predicate::str::contains("waits for").and(predicate::str::contains("`a` (processing)")),
    );
    let shown = env.json(&["show", "b"]);
    assert_eq!(
        shown["waiting_for"],
        serde_json::json!([{"definition": "a", "state": "processing"}])
    );
    env.write("release", "");
}

#[test]
fn failures_show_their_output_and_end_in_a_failures_section() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 1\n\
         [jobs.broken]\ncommand = \"seq 1 30; echo broken for good; exit 3\"\n\
         retry = { max_retries = 0 }\n\
         [jobs.deploy]\ncommand = \"true\"\nafter = [\"broken\"]\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{output}");
    // The last 20 lines of its output, under the line that says it died.
    let tail: String = (12..=30)
        .map(|i| format!("    {i}\n"))
        .chain(std::iter::once("    broken for good\n".to_string()))
        .collect();
    assert!(
        output.contains(&format!("after 1 attempt(s)\n{tail}")),
        "{output}"
    );
    assert!(!output.contains("    11\n"), "{output}");
    assert!(
        output.ends_with(&format!(
            "failures:\n  dead       broken  exit code 3 after 1 attempt(s)\n  \
             cancelled  deploy  dependency `broken` is dead\n0 completed, 1 dead, 0 retrying, 1 cancelled in {}\n",
            output
                .rsplit(" in ")
                .next()
                .unwrap_or_default()
                .trim_end()
        )),
        "{output}"
    );
    assert!(!output.contains("JOB "), "no table of every job: {output}");
    // --summary all keeps the full table.
    let (_, output) = env
        .spawn(&["run", "--until-idle", "--rerun", "--summary", "all"])
        .wait();
    assert!(output.contains("JOB     STATE"), "{output}");
}

#[test]
fn jobs_are_addressed_by_their_definitions_name() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.build]\ncommand = \"echo built\"\nretry = { max_retries = 0 }\n\
         [jobs.broken]\ncommand = \"echo nope; exit 1\"\nretry = { max_retries = 0 }\n",
    );
    let (code, _) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1));
    let id = env.jobs_of("build")[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(env.json(&["show", "build"])["id"], id.as_str());
    env.cmd(["logs", "build"])
        .assert()
        .success()
        .stdout("built\n");
    env.cmd(["logs", "broken"])
        .assert()
        .success()
        .stdout("nope\n");
    env.cmd(["dlq", "retry", "broken"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("retried "));
    env.cmd(["cancel", "broken"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("cancelled "));
    env.cmd(["list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NAME").and(predicate::str::contains("build")));
    // A name that is also another job's id is ambiguous.
    env.enqueue(&["--id", "build", "true"]);
    env.cmd(["show", "build"]).assert().code(2).stderr(
        predicate::str::contains("`build` is ambiguous")
            .and(predicate::str::contains(format!(
                "the latest run of `build` ({id})"
            )))
            .and(predicate::str::contains("id:build")),
    );
    env.cmd(["show", "id:build"])
        .assert()
        .success()
        .stdout(predicate::str::contains("origin").and(predicate::str::contains(" cli\n")));
    env.cmd(["show", "nothing"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown job `nothing`"));
}

#[test]
fn arguments_mean_what_they_say() {
    let env = Env::new();
    let id = env.enqueue(&["sleep 5", "--max-retries", "5", "--priority", "7"]);
    let job = env.job(&id);
    assert_eq!(
        (&job["command"], &job["max_retries"], &job["priority"]),
        (&Value::from("sleep 5"), &Value::from(5), &Value::from(7))
    );
    let id = env.enqueue(&["--", "sleep", "5", "--max-retries", "5"]);
    assert_eq!(env.job(&id)["command"], "sleep 5 --max-retries 5");
    let before = env.states();
    for (args, message) in [
        (
            &["enqueue", "--bogus-flag", "echo hi"][..],
            "unexpected argument '--bogus-flag'",
        ),
        (
            &["enqueue", "{\\\"id\\\": 1}"],
            "the argument: invalid JSON",
        ),
        (
            &["enqueue", "{'id':'x'}"],
            "put `--` before a shell command",
        ),
        (&["enqueue", "[ -f x ]"], "put `--` before a shell command"),
    ] {
        env.cmd(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    assert_eq!(env.states(), before);
    let id = env.enqueue(&["--", "[ -f x ] || true"]);
    assert_eq!(env.job(&id)["command"], "[ -f x ] || true");
    env.cmd(["enqueue", "--validate", r#"{"command":"x"}"#])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "dry run: 1 job(s) would be enqueued",
        ));
    assert_eq!(env.states().len(), before.len() + 1);
}

#[test]
fn github_actions_output_is_fenced_and_annotations_point_at_the_jobfile() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.evil]\ncommand = \"echo '::endgroup::'; echo '::error::pwned'; echo '::add-mask::x'; exit 7\"\n\
         retry = { max_retries = 0 }\n\
         [jobs.flaky]\ncommand = \"test -f tried || { touch tried; exit 1; }\"\n\
         retry = { max_retries = 1, backoff_base = 1, max_delay = \"10ms\" }\n",
    );
    let summary = env.file("summary.md");
    let (code, output) = env
        .spawn_with(
            &["run", "--until-idle"],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap_or_default()),
            ],
        )
        .wait();
    assert_eq!(code, Some(1), "{output}");
    // Every line the job printed sits between ::stop-commands::TOKEN and
    // ::TOKEN::, with a token it cannot guess.
    let lines: Vec<&str> = output.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "::error::pwned")
        .expect("the job's output");
    let start = lines[..at]
        .iter()
        .rposition(|l| l.starts_with("::stop-commands::"))
        .expect("commands stopped before it");
    let token = lines[start].trim_start_matches("::stop-commands::");
    assert!(token.len() >= 16, "{token}");
    assert!(
        lines[at..].iter().any(|l| *l == format!("::{token}::")),
        "{output}"
    );
    assert!(
        output.contains("::error file=queuectl.toml,line=1,title=evil is dead::"),
        "{output}"
    );
    let markdown = env.read("summary.md");
    assert!(
        markdown.contains("| `flaky` | ✅ completed (flaky) |"),
        "{markdown}"
    );
}

#[test]
fn junit_is_valid_against_the_jenkins_schema() {
    if !require("xmllint") {
        return;
    }
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 1\n\
         [jobs.ok]\ncommand = \"echo fine\"\n\
         [jobs.flaky]\ncommand = \"test -f tried || { touch tried; echo first try fails; exit 1; }\"\n\
         retry = { max_retries = 2, backoff_base = 1, max_delay = \"10ms\" }\n\
         [jobs.broken]\ncommand = \"echo broken; exit 3\"\nretry = { max_retries = 1, backoff_base = 1, max_delay = \"10ms\" }\n\
         [jobs.after]\ncommand = \"true\"\nafter = [\"broken\"]\n",
    );
    let (code, output) = env
        .spawn(&["run", "--until-idle", "--junit", "report.xml"])
        .wait();
    assert_eq!(code, Some(1), "{output}");
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let checked = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(env.file("report.xml"))
        .output()
        .expect("xmllint");
    assert!(
        checked.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&checked.stderr),
        env.read("report.xml")
    );
    let xml = env.read("report.xml");
    assert!(
        xml.contains(r#"<flakyFailure message="exit code 1" type="failed""#),
        "{xml}"
    );
    assert!(xml.contains("first try fails"), "{xml}");
    assert!(
        xml.contains(r#"<skipped message="dependency `broken` is dead"/>"#),
        "{xml}"
    );
    assert!(xml.contains(r#"timestamp=""#), "{xml}");
}

#[test]
fn an_unwritable_junit_path_fails_before_any_job_runs() {
    let env = Env::new();
    env.write("queuectl.toml", "[jobs.a]\ncommand = \"echo ran > ran\"\n");
    env.cmd(["run", "--until-idle", "--junit", "no/such/dir/report.xml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot write the JUnit report"));
    assert!(!env.file("ran").exists());
    assert!(env.states().is_empty());
}

#[test]
fn validation_reports_every_problem_once() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.x]\ncomand = \"true\"\npriority = \"high\"\ntimeout = \"soon\"\n\
         [jobs.a]\ncommand = \"true\"\nafter = [\"b\"]\n\
         [jobs.b]\ncommand = \"true\"\nretry = \"nope\"\n",
    );
    let out = env.cmd(["validate"]).output().expect("validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for expected in [
        "queuectl.toml:2:1: unknown key `comand` in [jobs.x]",
        "queuectl.toml:3:12: invalid type: string \"high\", expected i64 in [jobs.x]",
        "queuectl.toml:4:11: invalid duration `soon` in [jobs.x]",
        "unknown retry policy `nope` in `jobs.b.retry`",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
    assert!(stderr.starts_with("error: 4 problems in"), "{stderr}");
    // `comand` was taken for `command`: its absence is no second problem.
    assert!(!stderr.contains("missing key"), "{stderr}");
    assert!(!stderr.contains("which is not a job"), "{stderr}");
}

#[test]
fn a_broken_edit_under_run_is_reported_once_per_change() {
    let env = Env::new();
    // A job that ticks ten times a second: a clock to wait on.
    let ticker = "[jobs.ticker]\ncommand = \"i=0; while true; do i=$((i+1)); echo $i > tick; sleep 0.1; done\"\n";
    env.write("queuectl.toml", ticker);
    let run = env.spawn(&["run"]);
    let tick = || env.read("tick").trim().parse::<u64>().unwrap_or(0);
    wait_until("the ticker runs", || tick() > 0);
    env.write("queuectl.toml", &format!("{ticker}[jobs.broken\n"));
    run.wait_for_output("invalid TOML");
    let seen = tick();
    wait_until("a second has passed", || tick() >= seen + 10);
    env.write("queuectl.toml", &format!("{ticker}bogus = 1\n"));
    run.wait_for_output("unknown key `bogus`");
    let seen = tick();
    wait_until("a second has passed", || tick() >= seen + 10);
    let output = run.output();
    assert_eq!(output.matches("invalid TOML").count(), 1, "{output}");
    assert_eq!(output.matches("unknown key `bogus`").count(), 1, "{output}");
}

#[test]
fn a_long_plan_is_one_line_unless_verbose() {
    let env = Env::new();
    let jobs: String = (0..12)
        .map(|i| format!("[jobs.j{i}]\ncommand = \"true\"\n"))
        .collect();
    env.write("queuectl.toml", &jobs);
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("+ enqueue"), "{output}");
    assert!(
        output.starts_with("Plan: 12 to enqueue, 0 to update, 0 to cancel. (-v for every line)\n"),
        "{output}"
    );
    let (_, output) = env.spawn(&["-v", "run", "--until-idle", "--rerun"]).wait();
    assert_eq!(output.matches("~ requeue").count(), 12, "{output}");
}

#[test]
fn worker_stop_names_the_jobs_it_returned() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.slow]\ncommand = \"exec sleep 30\"\n",
    );
    env.cmd(["apply"]).assert().success();
    let id = env.jobs_of("slow")[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.cmd(["worker", "start", "--count", "1"])
        .assert()
        .success();
    wait_until("the job runs", || env.state(&id) == "processing");
    env.cmd(["worker", "stop", "--force"])
        .assert()
        .success()
        .stdout(format!(
            "stopped 1 worker(s)\ninterrupted and returned to the queue: slow ({id})\n"
        ));
}

#[test]
fn habits_of_other_queues_users() {
    let env = Env::new();
    // A foreground worker under the name other queues give it.
    env.enqueue(&["true"]);
    env.cmd([
        "worker",
        "start",
        "--no-detach",
        "--until-idle",
        "--count",
        "1",
    ])
    .assert()
    .success();
    // A default job timeout, in seconds as other tools take it.
    env.cmd(["config", "set", "worker_timeout", "600"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("settings.timeout = \"10m\""));
    env.cmd(["config", "set", "max_workers", "3"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("queues.default.workers = 3"));
    env.cmd(["config", "set", "max_retires", "3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `max_retries`?"));
    let id = env.enqueue(&["true"]);
    assert_eq!(env.job(&id)["timeout_ms"], 600_000);
    // list -v says more.
    env.cmd(["-v", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ORIGIN").and(predicate::str::contains("CREATED")));
}

#[test]
fn outside_a_repository_the_queue_is_the_users() {
    let env = Env::new();
    let data = env.file("data");
    std::fs::create_dir_all(env.file("one")).expect("mkdir");
    std::fs::create_dir_all(env.file("two")).expect("mkdir");
    let queuectl = |dir: &str, args: &[&str]| {
        let out = std::process::Command::new(bin())
            .current_dir(env.file(dir))
            .env_remove("QUEUECTL_DB")
            .env_remove("QUEUECTL_FILE")
            .env("XDG_DATA_HOME", &data)
            .args(args)
            .output()
            .expect("queuectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    queuectl("one", &["enqueue", "--id", "shared", "true"]);
    assert!(queuectl("two", &["list"]).contains("shared"));
    assert!(data.join("queuectl/queue.db").exists());
    assert!(!env.file("one/.queuectl").exists());
}
