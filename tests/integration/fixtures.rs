//! The bad-input corpus in `tests/fixtures/`: every file gets a clear error
//! naming the problem, exit code 2, no panic, and the queue as it was.

use std::path::{Path, PathBuf};

use predicates::prelude::*;

use super::harness::Env;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_broken_jobfile_is_rejected_with_its_message() {
    let files = fixtures("jobfiles");
    assert!(files.len() >= 20);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a fixture");
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let env = Env::new();
        let path = file.to_str().unwrap_or_default();
        env.cmd(["-f", path, "validate"]).assert().code(2).stderr(
            predicate::str::contains(expected).and(predicate::str::contains("panicked").not()),
        );
        env.cmd(["-f", path, "apply"]).assert().code(2);
        env.cmd(["-f", path, "run", "--until-idle"])
            .assert()
            .code(2);
        assert!(
            !env.file(".queuectl").exists(),
            "{}: something was created",
            file.display()
        );
    }
}

#[test]
fn every_bad_job_file_enqueues_nothing() {
    let expected = [
        (
            "bad-line-in-middle.jsonl",
            "bad-line-in-middle.jsonl:2: invalid JSON",
        ),
        (
            "huge-id.json",
            "job id is 200 characters long, the limit is 128",
        ),
        (
            "negative-retries.json",
            "field `max_retries` must be between 0 and 4294967295 (got -3)",
        ),
        (
            "not-an-object.json",
            "job #2: expected a JSON object (a job), found a number",
        ),
        ("not-utf8.json", "stream did not contain valid UTF-8"),
        (
            "path-id.json",
            "invalid job id `../escape`: `/` is not allowed",
        ),
        ("unknown-field.json", "unknown field `comand`"),
    ];
    let files = fixtures("jobs");
    assert_eq!(files.len(), expected.len());
    let env = Env::new();
    env.enqueue(&["--id", "before", "true"]);
    for (name, message) in expected {
        let file = files
            .iter()
            .find(|f| f.ends_with(name))
            .unwrap_or_else(|| panic!("no fixture {name}"));
        env.cmd(["enqueue", "--file", file.to_str().unwrap_or_default()])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(message).and(predicate::str::contains("panicked").not()),
            );
        assert_eq!(
            env.states(),
            vec![("before".to_string(), "pending".to_string())],
            "{name}"
        );
    }
}

#[test]
fn secrets_reach_the_job_but_never_the_database_or_output() {
    let env = Env::new();
    let id = env.enqueue(&[
        "--env",
        "TOKEN=${QUEUECTL_TEST_SECRET}",
        "echo \"$TOKEN\" > seen",
    ]);
    let (code, _) = env
        .spawn_with(
            &[
                "worker",
                "start",
                "--foreground",
                "--until-idle",
                "--count",
                "1",
            ],
            &[("QUEUECTL_TEST_SECRET", "hunter2-s3cret")],
        )
        .wait();
    assert_eq!(code, Some(0));
    assert_eq!(
        env.read("seen"),
        "hunter2-s3cret\n",
        "the job got the secret"
    );
    for file in std::fs::read_dir(env.queue_file(""))
        .expect("the queue dir")
        .flatten()
    {
        if file.path().is_file() {
            let bytes = std::fs::read(file.path()).expect("read");
            assert!(
                !String::from_utf8_lossy(&bytes).contains("hunter2-s3cret"),
                "{} holds the secret",
                file.path().display()
            );
        }
    }
    let shown = env.cmd(["--json", "show", &id]).output().expect("show");
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("hunter2"));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("${QUEUECTL_TEST_SECRET}"));
}

#[test]
fn output_that_is_not_utf8_is_kept_as_bytes() {
    let env = Env::new();
    let id = env.enqueue(&["printf 'caf\\351 \\377\\376 ok\\n'"]);
    let (code, _) = env.worker(&["--until-idle", "--count", "1"]).wait();
    assert_eq!(code, Some(0));
    let out = env.cmd(["logs", &id]).output().expect("logs");
    assert_eq!(out.stdout, b"caf\xe9 \xff\xfe ok\n");
    let json = env
        .cmd(["--json", "logs", &id])
        .output()
        .expect("logs --json");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["output"], "caf\u{fffd} \u{fffd}\u{fffd} ok\n");
}
