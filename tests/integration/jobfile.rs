//! The jobfile through the binary: validate, plan/apply, config, the
//! schema and the examples, dependencies and queues with real jobs.

use std::path::Path;

use predicates::prelude::*;

use super::harness::Env;

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_checked_in_schema_is_fresh() {
    let env = Env::new();
    let generated = env.cmd(["schema"]).output().expect("schema");
    let checked_in =
        std::fs::read_to_string(repo_file("schemas/queuectl.schema.json")).expect("schema file");
    assert!(
        String::from_utf8_lossy(&generated.stdout) == checked_in,
        "schemas/queuectl.schema.json is stale: run `cargo run -- schema > schemas/queuectl.schema.json`"
    );
}

#[test]
fn every_example_validates_against_the_schema_and_queuectl() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("schemas/queuectl.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let mut files: Vec<_> = std::fs::read_dir(repo_file("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.push(repo_file("queuectl.toml"));
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let env = Env::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read example");
        let value: toml::Value = toml::from_str(&text).expect("TOML");
        let json = serde_json::to_value(&value).expect("as JSON");
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        env.cmd(["-f", file.to_str().unwrap_or_default(), "validate"])
            .assert()
            .success()
            .stdout(predicate::str::contains("is valid"));
    }
    // And the schema rejects what queuectl rejects.
    let bad: serde_json::Value = serde_json::json!({"jobs": {"a": {"comand": "x"}}});
    assert!(!validator.is_valid(&bad));
}

#[test]
fn validate_reports_every_problem_with_positions() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncomand = \"x\"\n\n[jobs.b]\ncommand = \"y\"\nqueue = \"nope\"\nschedule = \"61 * * * *\"\n",
    );
    let path = env.file("queuectl.toml");
    let p = path.display();
    env.cmd(["validate"]).assert().code(2).stderr(format!(
        "error: 3 problems in `{p}`:\n\
         {p}:2:1: unknown key `comand` in [jobs.a]\n  hint: did you mean `command`?\n\
         {p}:6:9: unknown queue `nope` in `jobs.b.queue`\n  hint: declare it with [queues.nope]\n\
         {p}:7:12: invalid schedule `61 * * * *` in `jobs.b.schedule`: the minute field `61`: number out of bounds\n  hint: write 5 fields (`0 2 * * *`), 6 with seconds first, or a macro like `@daily`\n"
    ));
    let json = env.cmd(["--json", "validate"]).output().expect("run");
    assert_eq!(json.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["errors"][1]["line"], 6);
    assert_eq!(value["valid"], false);
    // Nothing is applied from a broken file, and enqueue refuses too.
    env.cmd(["apply"]).assert().code(2);
    env.cmd(["enqueue", "true"]).assert().code(2);
    assert!(!env.file(".queuectl").exists());
}

#[test]
fn plan_apply_plan_round_trip() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 2\n[jobs.test]\ncommand = \"true\"\n[jobs.lint]\ncommand = \"true\"\n",
    );
    env.cmd(["plan", "--exit-code"]).assert().code(1).stdout(
        "+ enqueue  lint             new\n\
         + enqueue  test             new\n\
         + queue    default          workers 2\n\
         Plan: 2 to enqueue, 0 to update, 0 to cancel.\n",
    );
    assert!(env.states().is_empty(), "plan changes nothing");
    env.cmd(["apply"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Plan: 2 to enqueue"));
    env.cmd(["plan", "--exit-code"])
        .assert()
        .code(0)
        .stdout("No changes.\n");
    env.cmd(["apply"])
        .assert()
        .success()
        .stdout("No changes.\n");
    assert_eq!(
        env.states().len(),
        2,
        "applying twice enqueues nothing more"
    );

    // Priority only: updated in place. Command: requeued. Removed: cancelled.
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 4\n[jobs.test]\ncommand = \"true --changed\"\n[jobs.lint]\ncommand = \"true\"\npriority = 5\n",
    );
    env.cmd(["plan"]).assert().success().stdout(
        "~ update   lint             priority 0 -> 5 (1 pending)\n\
         ~ requeue  test             command changed\n\
         ~ queue    default          workers 2 -> 4\n\
         Plan: 1 to enqueue, 1 to update, 0 to cancel.\n",
    );
    env.cmd(["apply"]).assert().success();
    let jobs = env.items(&["list", "--job", "test"]);
    let states: Vec<&str> = jobs
        .iter()
        .map(|j| j["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        vec!["pending", "cancelled"],
        "the old spec's pending job was replaced"
    );
    assert_eq!(env.items(&["list", "--job", "lint"])[0]["priority"], 5);
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 4\n[jobs.test]\ncommand = \"true --changed\"\n",
    );
    env.cmd(["apply"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "- cancel   lint             removed from jobfile (1 pending)",
        ));
    let lint = &env.items(&["list", "--job", "lint"])[0];
    assert_eq!(lint["state"], "cancelled");
    assert_eq!(lint["reason"], "removed from the jobfile");
    // A broken file: plan exits 2, and apply changes nothing.
    env.write("queuectl.toml", "[jobs.test\n");
    env.cmd(["plan", "--exit-code"]).assert().code(2);
    let before = env.states();
    env.cmd(["apply"]).assert().code(2);
    assert_eq!(env.states(), before);
}

#[test]
fn finished_jobs_rerun_only_on_a_spec_change_and_dead_stays_dead() {
    let env = Env::new();
    env.write("queuectl.toml", "[jobs.ok]\ncommand = \"true\"\n[jobs.bad]\ncommand = \"exit 1\"\nretry = { max_retries = 0 }\n");
    env.cmd(["apply"]).assert().success();
    let (code, _) = env.worker(&["--until-idle"]).wait();
    assert_eq!(code, Some(1));
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
    env.write("queuectl.toml", "[jobs.ok]\ncommand = \"true\"\npriority = 3\n[jobs.bad]\ncommand = \"exit 1\"\nretry = { max_retries = 0 }\n");
    env.cmd(["plan"]).assert().success().stdout("No changes.\n");
    env.write("queuectl.toml", "[jobs.ok]\ncommand = \"true\"\n[jobs.bad]\ncommand = \"exit 0\"\nretry = { max_retries = 0 }\n");
    env.cmd(["plan"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "~ requeue  bad              command changed",
        ));
}

#[test]
fn jobs_record_their_spec_and_commit() {
    let env = Env::new();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .current_dir(env.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .output()
            .expect("git");
        assert!(status.status.success(), "git {args:?}");
        String::from_utf8_lossy(&status.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    env.write("queuectl.toml", "[jobs.a]\ncommand = \"true\"\n");
    git(&["add", "queuectl.toml"]);
    git(&["commit", "-q", "-m", "jobs"]);
    let head = git(&["rev-parse", "HEAD"]);
    env.cmd(["apply"]).assert().success();
    let job = &env.items(&["list", "--job", "a"])[0];
    assert_eq!(job["source_commit"].as_str(), Some(head.as_str()));
    assert_eq!(job["spec_hash"].as_str().map(str::len), Some(12));
    assert_eq!(job["origin"], "jobfile");
    env.cmd(["show", job["id"].as_str().unwrap_or_default()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(format!("jobfile commit  {head}"))
                .and(predicate::str::contains("definition      a")),
        );
}

#[test]
fn after_orders_real_jobs_and_dead_dependencies_cancel_dependents() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 4\n\
         [jobs.deploy]\ncommand = \"echo deploy >> order\"\nafter = [\"test\", \"build\"]\n\
         [jobs.build]\ncommand = \"sleep 0.3; echo build >> order\"\n\
         [jobs.test]\ncommand = \"echo test >> order\"\nafter = [\"build\"]\n\
         [jobs.broken]\ncommand = \"exit 1\"\nretry = { max_retries = 0 }\n\
         [jobs.notify]\ncommand = \"echo never >> order\"\nafter = [\"broken\"]\n\
         [jobs.then]\ncommand = \"echo never >> order\"\nafter = [\"notify\"]\n",
    );
    env.cmd(["apply"]).assert().success();
    let (code, output) = env.worker(&["--until-idle"]).wait();
    assert_eq!(code, Some(1), "{output}");
    assert_eq!(env.read("order"), "build\ntest\ndeploy\n");
    let notify = &env.items(&["list", "--job", "notify"])[0];
    assert_eq!(notify["state"], "cancelled");
    assert_eq!(notify["reason"], "dependency `broken` is dead");
    assert_eq!(
        env.items(&["list", "--job", "then"])[0]["reason"],
        "dependency `notify` is cancelled"
    );
    // Once the dependency is fixed and retried, apply runs the dependents again.
    let broken = env.items(&["list", "--job", "broken"])[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    env.cmd(["dlq", "retry", &broken]).assert().success();
    env.cmd(["plan"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "+ enqueue  notify           its dependencies recovered",
        ));
}

#[test]
fn queues_get_their_declared_workers() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[queues.default]\nworkers = 2\n[queues.deploy]\nworkers = 1\n\
         [jobs.d1]\ncommand = \"echo start >> deploy.log; sleep 0.3; echo end >> deploy.log\"\nqueue = \"deploy\"\n\
         [jobs.d2]\ncommand = \"echo start >> deploy.log; sleep 0.3; echo end >> deploy.log\"\nqueue = \"deploy\"\n",
    );
    env.cmd(["apply"]).assert().success();
    let status = env.json(&["status"]);
    // Each queue carries the workers the jobfile declares (issue 15's
    // JSON contract: one queue object, not a separate `declared` map).
    let declared: serde_json::Map<String, serde_json::Value> = status["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or("").to_string(),
                q["workers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        serde_json::Value::Object(declared),
        serde_json::json!({"default": 2, "deploy": 1})
    );
    env.cmd(["status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deploy   1        2"));
    let adhoc = env.enqueue(&["--queue", "adhoc", "true"]);
    let (code, output) = env.worker(&["--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("ready: 3 slot(s), default:2, deploy:1"),
        "{output}"
    );
    // One deploy worker: the two deploys never overlapped.
    assert_eq!(env.read("deploy.log"), "start\nend\nstart\nend\n");
    assert_eq!(
        env.state(&adhoc),
        "completed",
        "undeclared queues go to the default pool"
    );
}

#[test]
fn config_set_keeps_comments_and_takes_effect() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "# my queue\n[retry.default]\nmax_retries = 3 # three strikes\n",
    );
    env.cmd(["config", "set", "max-retries", "5"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("retry.default.max_retries = 5"));
    assert_eq!(
        env.read("queuectl.toml"),
        "# my queue\n[retry.default]\nmax_retries = 5 # three strikes\n"
    );
    env.cmd(["config", "set", "backoff_base", "3"])
        .assert()
        .success();
    env.cmd(["config", "set", "workers", "4"])
        .assert()
        .success();
    env.cmd(["config", "set", "queues.deploy.workers", "1"])
        .assert()
        .success();
    env.cmd(["config", "get", "max_retries"])
        .assert()
        .success()
        .stdout("5\n");
    env.cmd(["config", "get", "queues.deploy.workers"])
        .assert()
        .success()
        .stdout("1\n");
    env.cmd(["config", "get", "keep_finished"])
        .assert()
        .success()
        .stdout("\"7d\"\n");
    env.cmd(["config", "list"]).assert().success().stdout(
        predicate::str::contains("retry.default.backoff_base")
            .and(predicate::str::contains("queuectl.toml")),
    );
    // A value that would not validate changes nothing.
    let before = env.read("queuectl.toml");
    env.cmd(["config", "set", "workers", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("would make the jobfile invalid"));
    assert_eq!(env.read("queuectl.toml"), before);
    // CLI jobs take the jobfile's default policy.
    let id = env.enqueue(&["true"]);
    let job = env.job(&id);
    assert_eq!(
        (job["max_retries"].as_u64(), job["backoff_base"].as_f64()),
        (Some(5), Some(3.0))
    );
    env.cmd(["config", "reset"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    env.cmd(["config", "reset", "--yes"]).assert().success();
    assert_eq!(
        env.read("queuectl.toml"),
        "# my queue\n[queues.deploy]\nworkers = 1\n"
    );
}

#[test]
fn config_set_creates_the_jobfile() {
    let env = Env::new();
    env.cmd(["config", "set", "max-retries", "2"])
        .assert()
        .success();
    assert_eq!(
        env.read("queuectl.toml"),
        "[retry.default]\nmax_retries = 2\n"
    );
}

#[test]
fn no_retry_exit_codes_go_straight_to_the_dlq() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[retry.default]\nmax_retries = 5\nno_retry_exit_codes = [2]\n",
    );
    let id = env.enqueue(&["exit 2"]);
    let (code, _) = env.worker(&["--until-idle"]).wait();
    assert_eq!(code, Some(1));
    let job = env.job(&id);
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("dead"), Some(1))
    );
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("no_retry_exit_codes")
    );
}

#[test]
fn enqueue_job_instantiates_a_definition() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.report]\ncommand = \"echo report\"\npriority = 2\n",
    );
    let id = env.enqueue(&["--job", "report", "--priority", "9"]);
    let job = env.job(&id);
    assert_eq!(
        (job["definition"].as_str(), job["priority"].as_i64()),
        (Some("report"), Some(9))
    );
    env.cmd(["enqueue", "--job", "reprot"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown job `reprot`")
                .and(predicate::str::contains("did you mean `report`?")),
        );
}

#[test]
fn init_writes_a_valid_starter() {
    let env = Env::new();
    env.cmd(["init"]).assert().success();
    assert!(
        env.read("queuectl.toml")
            .starts_with("#:schema ./queuectl.schema.json\n")
    );
    assert!(env.read("queuectl.schema.json").contains("draft-07"));
    env.cmd(["validate"]).assert().success();
    env.cmd(["init"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists"));
}

#[test]
fn the_readme_reference_names_every_key_of_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("schemas/queuectl.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    let reference = readme
        .split("### Jobfile reference")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("a Jobfile reference section");
    let mut keys = Vec::new();
    let mut collect = |properties: &serde_json::Value| {
        if let Some(map) = properties.as_object() {
            keys.extend(map.keys().cloned());
        }
    };
    collect(&schema["properties"]);
    for definition in schema["definitions"]
        .as_object()
        .expect("definitions")
        .values()
    {
        collect(&definition["properties"]);
    }
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| {
            ![format!(".{k}`"), format!("`{k}`"), format!("`{k}.")]
                .iter()
                .any(|form| reference.contains(form.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the schema missing from the README reference: {missing:?}"
    );
}
