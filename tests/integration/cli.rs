//! The command line as a shell user meets it: completion that knows the
//! queue, the man page, help with examples, and errors that say where a
//! flag goes.

use super::harness::{Env, require};

/// A queue with a completed job of `a`, a dead one of `b`, a pending
/// `later-1` in the paused queue `q2`; returns the ids of a's and b's jobs.
fn queue_with_history(env: &Env) -> (String, String) {
    env.write(
        "queuectl.toml",
        "[queues.deploy]\nworkers = 1\n[retry.default]\nmax_retries = 0\n[retry.patient]\nmax_retries = 9\n\
         [jobs.a]\ncommand = \"echo a-out\"\n[jobs.b]\ncommand = \"exit 3\"\nafter = [\"a\"]\nqueue = \"deploy\"\n",
    );
    env.write("other.toml", "[jobs.other-job]\ncommand = \"true\"\n");
    let (code, out) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{out}");
    env.cmd(["queue", "pause", "q2"]).assert().success();
    env.enqueue(&["--id", "later-1", "--queue", "q2", "--", "echo later"]);
    let id = |name: &str| env.jobs_of(name)[0]["id"].as_str().expect("id").to_string();
    (id("a"), id("b"))
}

/// What bash's completion gives for each command line (its last word is
/// the one being completed): the script of `queuectl completions bash`
/// sourced in a real bash, its function called as `complete -F` would.
fn bash_complete(env: &Env, lines: &[&[&str]]) -> Vec<Vec<String>> {
    let script = env
        .cmd(["completions", "bash"])
        .output()
        .expect("completions");
    assert!(script.status.success());
    std::fs::write(env.file("queuectl.bash"), &script.stdout).expect("write the script");
    let mut program = String::from(
        "source ./queuectl.bash\n\
         c() {\n\
           COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 )); COMP_LINE=\"$*\"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9\n\
           COMPREPLY=()\n\
           _clap_complete_queuectl queuectl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n\
           echo '=='; for r in \"${COMPREPLY[@]}\"; do echo \"$r\"; done\n\
         }\n",
    );
    for line in lines {
        let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
        program.push_str(&format!("c {}\n", words.join(" ")));
    }
    let out = env
        .command("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<Vec<String>> = stdout
        .split("==\n")
        .skip(1)
        .map(|block| block.lines().map(str::to_string).collect())
        .collect();
    assert_eq!(replies.len(), lines.len(), "{stdout}");
    replies
}

/// `queuectl show <TAB>` and the rest complete from the jobfile and the
/// queue, in a real bash.
#[test]
fn bash_completes_jobs_definitions_queues_states_and_keys() {
    let env = Env::new();
    let (a, b) = queue_with_history(&env);
    let lines: &[&[&str]] = &[
        &["queuectl", "show", ""],
        &["queuectl", "logs", "la"],
        &["queuectl", "wait", ""],
        &["queuectl", "cancel", ""],
        &["queuectl", "dlq", "retry", ""],
        &["queuectl", "dlq", "remove", ""],
        &["queuectl", "list", "--state", ""],
        &["queuectl", "list", "--queue", ""],
        &["queuectl", "list", "--job", ""],
        &["queuectl", "enqueue", "--job", ""],
        &["queuectl", "run", "--queue", "d"],
        &["queuectl", "queue", "resume", ""],
        &["queuectl", "prune", "--state", ""],
        &["queuectl", "config", "get", "max-r"],
        &["queuectl", "config", "set", "retry.default.j"],
        &["queuectl", "config", "set", "jobs.b.retry", ""],
        &["queuectl", "-f", "other.toml", "enqueue", "--job", ""],
        &["queuectl", "sh"],
    ];
    let replies = bash_complete(&env, lines);
    let has = |i: usize, values: &[&str]| {
        for value in values {
            assert!(
                replies[i].iter().any(|r| r == value),
                "{:?} offers {value}: {:?}",
                lines[i],
                replies[i]
            );
        }
    };
    let lacks = |i: usize, values: &[&str]| {
        for value in values {
            assert!(
                !replies[i].iter().any(|r| r == value),
                "{:?} does not offer {value}: {:?}",
                lines[i],
                replies[i]
            );
        }
    };
    has(0, &["a", "b", &a, &b, "later-1"]);
    assert_eq!(replies[1], ["later-1"]);
    has(2, &["a", "b", &a, "later-1"]);
    has(3, &["later-1"]);
    lacks(3, &[&a, &b, "a", "b"]);
    has(4, &["b", &b]);
    lacks(4, &["a", &a, "later-1"]);
    has(5, &["b", &b]);
    assert_eq!(
        replies[6],
        [
            "pending",
            "processing",
            "running",
            "completed",
            "failed",
            "dead",
            "cancelled"
        ]
    );
    has(7, &["default", "deploy", "q2"]);
    has(8, &["a", "b"]);
    has(9, &["a", "b"]);
    lacks(9, &["other-job"]);
    assert_eq!(replies[10], ["default", "deploy"]);
    assert_eq!(replies[11].first().map(String::as_str), Some("q2"));
    lacks(11, &["default", "deploy"]);
    assert_eq!(replies[12], ["completed", "dead", "cancelled"]);
    assert_eq!(replies[13], ["max-retries"]);
    assert_eq!(replies[14], ["retry.default.jitter"]);
    let values: Vec<&String> = replies[15].iter().filter(|r| !r.starts_with('-')).collect();
    assert_eq!(values, ["default", "patient"]);
    assert_eq!(replies[16], ["other-job"]);
    assert_eq!(replies[17], ["show"]);
    // Completing created nothing and printed nothing (checked above).
    let env = Env::new();
    let replies = bash_complete(
        &env,
        &[
            &["queuectl", "show", ""],
            &["queuectl", "list", "--queue", ""],
        ],
    );
    assert!(
        replies[0].iter().all(|r| r.starts_with('-')),
        "{:?}",
        replies[0]
    );
    assert_eq!(replies[1], ["default"]);
    assert!(!env.data_home().exists(), "no queue was made");
}

/// A broken jobfile gives fewer candidates, never an error on the terminal.
#[test]
fn completion_of_a_broken_jobfile_prints_nothing() {
    let env = Env::new();
    env.write("queuectl.toml", "[jobs.a]\ncomand = \"typo\"\n[jobs.b\n");
    let out = env
        .cmd(["--", "queuectl", "list", "--job", ""])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "3")
        .output()
        .expect("complete");
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!env.file(".queuectl").exists(), "no queue was made");
}

/// `queuectl completions SHELL` prints what `COMPLETE=SHELL queuectl`
/// does (clap_complete's registration of the dynamic completer), for the
/// docs that give either.
#[test]
fn completions_prints_the_script_complete_env_prints() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let ours = env
            .cmd(["completions", shell])
            .output()
            .expect("completions");
        let clap = env
            .cmd(Vec::<&str>::new())
            .env("COMPLETE", shell)
            .output()
            .expect("COMPLETE");
        assert!(ours.status.success() && clap.status.success(), "{shell}");
        assert!(!ours.stdout.is_empty(), "{shell}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&clap.stdout),
            "{shell}"
        );
    }
    let out = env
        .cmd(Vec::<&str>::new())
        .env("COMPLETE", "tcsh")
        .output()
        .expect("COMPLETE");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown shell `tcsh`"));
    // An environment variable is not a flag given to it.
    env.cmd(["completions", "bash"])
        .env("QUEUECTL_DB", "elsewhere.db")
        .assert()
        .success();
}

const COMMANDS: &[&str] = &[
    "init",
    "validate",
    "plan",
    "apply",
    "schema",
    "config",
    "run",
    "enqueue",
    "status",
    "list",
    "show",
    "logs",
    "wait",
    "cancel",
    "dlq",
    "prune",
    "worker",
    "queue",
    "completions",
    "man",
];

/// `queuectl man` is a man page of every command; groff formats it
/// without a warning, and `--dir` writes a page per command.
#[test]
fn the_man_page_documents_every_command_and_renders() {
    let env = Env::new();
    let out = env.cmd(["man"]).output().expect("man");
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        page.starts_with(".TH QUEUECTL 1 "),
        "{}",
        &page[..200.min(page.len())]
    );
    for command in COMMANDS {
        assert!(
            page.contains(&format!(".SS \"queuectl {command} ")),
            "{command}"
        );
    }
    let out = env
        .cmd(["man", "--dir", "man1"])
        .output()
        .expect("man --dir");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wrote "));
    let written =
        |name: &str| std::fs::read_to_string(env.file("man1").join(name)).unwrap_or_default();
    assert_eq!(written("queuectl.1"), page);
    for command in COMMANDS {
        let name = format!("queuectl-{command}.1");
        assert!(written(&name).starts_with(".TH QUEUECTL-"), "{name}");
    }
    assert!(written("queuectl-dlq-retry.1").contains("dlq retry flaky \\-\\-keep\\-attempts"));
    env.cmd(["-q", "man", "--dir", "man1"])
        .assert()
        .success()
        .stdout("");
    if !require("groff") {
        return;
    }
    for name in ["queuectl.1", "queuectl-run.1", "queuectl-dlq-retry.1"] {
        let out = env
            .command("groff")
            // -P-bu: plain text, no overstriking for bold and underline.
            .args(["-k", "-man", "-Tutf8", "-ww", "-P-bu"])
            .arg(env.file("man1").join(name))
            .output()
            .expect("groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{name}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("EXAMPLES"), "{name}: {text}");
    }
}

/// `-f` after the command is the jobfile in the wrong place: exit 2, and
/// the command line that means it.
#[test]
fn the_jobfile_flag_after_the_command_says_where_it_goes() {
    let env = Env::new();
    env.write("x.toml", "[jobs.a]\ncommand = \"true\"\n");
    let out = env.cmd(["apply", "-f", "x.toml"]).output().expect("apply");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`-f` names the jobfile and goes before the command"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: `queuectl -f x.toml apply`"),
        "{stderr}"
    );
    assert!(!env.file(".queuectl").exists(), "nothing was applied");
    env.cmd(["-f", "x.toml", "apply"]).assert().success();
    // `enqueue -f` is its own flag: a file of jobs.
    env.write(
        "jobs.json",
        "{\"id\": \"from-file\", \"command\": \"true\"}",
    );
    env.cmd(["-f", "x.toml", "enqueue", "-f", "jobs.json"])
        .assert()
        .success();
}

/// Global flags a command would ignore are refused, not ignored.
#[test]
fn flags_that_do_nothing_for_a_command_are_refused() {
    let env = Env::new();
    for args in [
        &["completions", "bash", "--json"][..],
        &["--db", "x.db", "completions", "bash"],
        &["man", "--json"],
        &["schema", "--db", "x.db"],
        &["init", "--json"],
    ] {
        let out = env.cmd(args).output().expect("queuectl");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("does nothing for `queuectl "),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!env.file("queuectl.toml").exists(), "init did not run");
    // The schema is always JSON: --json is welcome.
    let out = env.cmd(["--json", "schema"]).output().expect("schema");
    assert!(out.status.success());
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let help = env.cmd(["completions", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("--json") && !help.contains("--db"), "{help}");
}

/// Each command's help puts the global flags under their own heading and
/// ends with examples; the top level groups its commands.
#[test]
fn help_groups_global_options_and_ends_with_examples() {
    let env = Env::new();
    let out = env.cmd(["enqueue", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    let (own, rest) = help
        .split_once("Global options:")
        .expect("a Global options heading");
    assert!(
        own.contains("--max-retries") && !own.contains("--json"),
        "{help}"
    );
    let (global, examples) = rest.split_once("Examples:").expect("examples");
    assert!(
        global.contains("--json") && global.contains("--db"),
        "{help}"
    );
    assert!(
        examples.contains("queuectl enqueue --file jobs.jsonl"),
        "{help}"
    );
    let out = env.cmd(["--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for group in ["Jobfile:", "Running:", "Jobs:", "The queue:", "Shell:"] {
        assert!(help.contains(group), "{group}: {help}");
    }
    for command in COMMANDS {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command}: {help}"
        );
    }
}
