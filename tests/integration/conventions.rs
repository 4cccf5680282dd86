//! The conventions users of cargo, nextest, just and kubectl expect: a
//! closed pipe is not a crash, …

use super::harness::{Env, bin};

/// Every command with its stdout a pipe nobody reads (`| head -c0`):
/// never a panic, never the "failed" exit code of a crash (101).
#[test]
fn no_command_panics_on_a_closed_pipe() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.a]\ncommand = \"echo a-out\"\n[jobs.b]\ncommand = \"exit 3\"\nafter = [\"a\"]\n\
         [retry.default]\nmax_retries = 0\n",
    );
    let (code, out) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{out}");
    let a = env.jobs_of("a")[0]["id"].as_str().expect("id").to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["help", "run"],
        vec!["completions", "bash"],
        vec!["completions", "zsh"],
        vec!["completions", "fish"],
        vec!["schema"],
        vec!["list"],
        vec!["--json", "list"],
        vec!["status"],
        vec!["--json", "status"],
        vec!["status", "--watch"],
        vec!["--json", "status", "--watch"],
        vec!["queue", "list"],
        vec!["--json", "queue", "list"],
        vec!["show", &a],
        vec!["--json", "show", &a],
        vec!["logs", &a],
        vec!["logs", "--follow", &a],
        vec!["wait", &a],
        vec!["dlq", "list"],
        vec!["dlq", "stats"],
        vec!["config", "list"],
        vec!["config", "get", "settings.lease"],
        vec!["plan"],
        vec!["worker", "status"],
        vec!["run", "--until-idle", "--allow-empty"],
        vec!["enqueue", "echo", "x"],
        vec!["--json", "enqueue", "echo", "y"],
        vec!["man"],
        vec!["completions", "elvish"],
        vec!["completions", "powershell"],
    ];
    // The shell asking for completions: the script, then candidates.
    let completing: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![], "bash", "0"),
        (vec!["--", "queuectl", "show", ""], "bash", "2"),
        (vec!["--", "queuectl", "list", "--state", ""], "zsh", "3"),
        (vec!["--", "queuectl", "dlq", "retry", ""], "fish", "3"),
    ];
    let runs = commands.into_iter().map(|args| (args, None)).chain(
        completing
            .into_iter()
            .map(|(args, shell, index)| (args, Some((shell, index)))),
    );
    for (args, completion) in runs {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut command = env.command(bin());
        if let Some((shell, index)) = completion {
            command
                .env("COMPLETE", shell)
                .env("_CLAP_COMPLETE_INDEX", index);
        }
        let out = command
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run queuectl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
        assert!(out.status.code().is_some(), "{args:?} died by a signal");
        if completion.is_some() {
            // Not an error either: nothing on stderr, exit 0.
            assert!(stderr.is_empty(), "{args:?}: {stderr}");
            assert_eq!(out.status.code(), Some(0), "{args:?}");
        }
    }
}

/// `config set` on a jobfile that is a symlink (dotfiles, a shared
/// config) edits the file the link points to and keeps the link.
#[test]
fn config_set_through_a_symlink_keeps_the_link() {
    let env = Env::new();
    std::fs::create_dir(env.file("shared")).expect("mkdir");
    env.write("shared/real.toml", "# kept\n[jobs.a]\ncommand = \"true\"\n");
    std::os::unix::fs::symlink("shared/real.toml", env.file("queuectl.toml")).expect("symlink");
    env.cmd(["config", "set", "settings.lease", "10s"])
        .assert()
        .success();
    let link = std::fs::symlink_metadata(env.file("queuectl.toml")).expect("the link");
    assert!(link.file_type().is_symlink(), "still a link");
    let text = env.read("shared/real.toml");
    assert!(text.starts_with("# kept\n"), "{text}");
    assert!(text.contains("lease = \"10s\""), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(env.file("shared"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
}

/// `--version` names the commit a git checkout was built from, as
/// cargo's and rustc's do.
#[test]
fn version_names_the_commit_it_was_built_from() {
    let env = Env::new();
    let out = env.cmd(["--version"]).output().expect("queuectl --version");
    assert!(out.status.success());
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::process::Command::new("git")
        .args(["log", "-1", "--format=%h %cs"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = match commit {
        Some(commit) => format!("queuectl {version} ({commit})\n"),
        None => format!("queuectl {version}\n"),
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

/// The README is self-contained: every link it makes is to a file of the
/// repository (or a web address), none outside it.
#[test]
fn the_readme_links_only_inside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut links = 0;
    for part in readme.split("](").skip(1) {
        let Some(target) = part.split(')').next() else {
            continue;
        };
        let target = target.split('#').next().unwrap_or_default();
        if target.is_empty() || target.starts_with("https://") || target.starts_with("http://") {
            continue;
        }
        links += 1;
        assert!(
            !target.contains(".."),
            "a link out of the repository: {target}"
        );
        assert!(root.join(target).exists(), "a link to nothing: {target}");
    }
    assert!(
        links >= 4,
        "the README links its companions ({links} links)"
    );
    for file in [
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "CHANGELOG.md",
        "ARCHITECTURE.md",
    ] {
        assert!(
            readme.contains(&format!("]({file})")),
            "README links {file}"
        );
    }
}

/// The dead letter queue's cap is a setting: `settings.dlq_max_jobs`
/// keeps the newest so many, `settings.dlq_max_age` drops the older.
#[test]
fn the_dead_letter_queue_cap_is_configurable() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[settings]\nlease = \"1s\"\ndlq_max_jobs = 2\n[retry.default]\nmax_retries = 0\n",
    );
    let ids: Vec<String> = (0..4)
        .map(|n| env.enqueue(&["--id", &format!("dead-{n}"), "--", "exit 1"]))
        .collect();
    assert_eq!(ids.len(), 4);
    env.cmd(["config", "get", "settings.dlq_max_jobs"])
        .assert()
        .success()
        .stdout("2\n");
    // One at a time: they die in the order they were enqueued.
    let run = env.spawn(&["run", "--workers", "1"]);
    let dead = || -> Vec<String> {
        env.items(&["dlq", "list"])
            .iter()
            .filter_map(|j| j["id"].as_str().map(str::to_string))
            .collect()
    };
    // Every job has run (none waits or runs), and the cap has trimmed
    // the DLQ: two dead jobs could otherwise be the first two, before
    // the others died.
    super::harness::wait_until("the DLQ is capped at 2", || {
        let totals = &env.json(&["status"])["totals"];
        totals["pending"] == 0
            && totals["processing"] == 0
            && totals["completed"] == 0
            && dead().len() == 2
    });
    let mut kept = dead();
    kept.sort();
    assert_eq!(kept, ["dead-2", "dead-3"], "the newest are kept");
    env.cmd(["config", "set", "dlq_max_age", "1s"])
        .assert()
        .success();
    super::harness::wait_until("the DLQ is emptied by age", || dead().is_empty());
    drop(run);
}

/// `wait` blocks until the job ends and exits with its outcome, as
/// `pueue wait` does; `--timeout` gives up with 124, as timeout(1) does.
#[test]
fn wait_exits_with_the_jobs_outcome() {
    let env = Env::new();
    let ok = env.enqueue(&["--", "sleep 0.2"]);
    let bad = env.enqueue(&["--max-retries", "0", "--", "exit 3"]);
    let waiting_ok = env.spawn(&["wait", &ok]);
    let waiting_bad = env.spawn(&["wait", &bad]);
    // Nobody runs them yet: a short timeout gives up.
    let out = env
        .cmd(["wait", "--timeout", "200ms", &ok])
        .output()
        .expect("wait");
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is still pending after 200ms"));
    let (code, _) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1));
    let (code, output) = waiting_ok.wait();
    assert_eq!(
        (code, output),
        (Some(0), format!("{ok} completed (exit 0)\n"))
    );
    let (code, output) = waiting_bad.wait();
    assert_eq!((code, output), (Some(1), format!("{bad} dead (exit 3)\n")));
    let out = env.cmd(["--json", "wait", &bad]).output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["items"][0]["state"], "dead", "{json}");
    assert_eq!(json["items"][0]["exit_code"], 3, "{json}");
    // Several: 0 only when all completed, one line each.
    let out = env.cmd(["wait", &ok, &bad]).output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{ok} completed (exit 0)\n{bad} dead (exit 3)\n")
    );
    env.cmd(["wait", &ok, &ok]).assert().code(0);
    env.cmd(["wait", "nope"]).assert().code(2);
    env.cmd(["wait", "--timeout", "soon", &ok]).assert().code(2);
}
