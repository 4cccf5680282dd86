//! The jobfile's validation, case by case: the exact message and position
//! of each problem.

use std::path::Path;
use std::time::Duration;

use super::*;

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("queuectl.toml")) {
        Ok(_) => vec![],
        Err(d) => d
            .items
            .iter()
            .map(|i| match &i.hint {
                Some(h) => format!("{}:{}: {} (hint: {h})", i.line, i.column, i.message),
                None => format!("{}:{}: {}", i.line, i.column, i.message),
            })
            .collect(),
    }
}

fn one(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

#[test]
fn the_design_example_is_valid() {
    let text = r#"#:schema ./schemas/queuectl.schema.json

[settings]
db = ".queuectl/queue.db"
keep_finished = "7d"
log_max_bytes = "1MiB"

[queues.default]
workers = 4
[queues.deploy]
workers = 1

[retry.default]
max_retries = 3
backoff_base = 2
max_delay = "10m"
jitter = false
no_retry_exit_codes = [2]
[retry.patient]
max_retries = 10
backoff_base = 3

[jobs.build-docs]
command = "mkdocs build"
timeout = "10m"
priority = 5
env = { SITE_URL = "https://example.org", TOKEN = "${DOCS_TOKEN}" }
cwd = "docs"

[jobs.deploy]
command = "./deploy.sh"
queue = "deploy"
retry = "patient"
after = ["build-docs"]

[jobs.nightly-report]
command = "./report.sh"
schedule = "0 2 * * *"
timezone = "UTC"
overlap = "skip"
missed = "run-once"

[jobs.thumbnails]
command = "convert \"$QUEUECTL_PATH\" -resize 200x thumbs/"
watch = { paths = ["images/**/*.png"], ignore = ["images/tmp/**"], debounce = "300ms", per_file = true }
on_busy = "queue"
"#;
    let jobfile = parse(text, Path::new("/repo/queuectl.toml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(jobfile.queues.get("deploy"), Some(&1));
    assert_eq!(jobfile.queues.get("default"), Some(&4));
    assert_eq!(
        jobfile.settings.keep_finished,
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(jobfile.settings.log_max_bytes, 1 << 20);
    let deploy = &jobfile.jobs["deploy"];
    assert_eq!(deploy.queue, "deploy");
    assert_eq!(deploy.retry.max_retries, 10);
    assert_eq!(deploy.retry.backoff_base, 3.0);
    // A named policy takes what it leaves out from retry.default.
    assert_eq!(deploy.retry.max_delay_ms, Some(600_000));
    assert_eq!(deploy.retry.no_retry_exit_codes, vec![2]);
    assert_eq!(deploy.after, vec!["build-docs".to_string()]);
    let docs = &jobfile.jobs["build-docs"];
    assert_eq!(
        (docs.priority, docs.timeout),
        (5, Some(Duration::from_secs(600)))
    );
    assert_eq!(docs.resolved_cwd(&jobfile.dir), Path::new("/repo/docs"));
    assert!(
        matches!(&jobfile.jobs["nightly-report"].trigger, Trigger::Schedule(s) if s.timezone.as_deref() == Some("UTC"))
    );
    assert!(
        matches!(&jobfile.jobs["thumbnails"].trigger, Trigger::Watch(w) if w.per_file && w.ignore.len() == 1 && w.ignore_files)
    );
}

#[test]
fn watches_honour_ignore_files_unless_they_opt_out() {
    let text = "[jobs.a]\ncommand = \"x\"\nwatch = [\"*.md\"]\n\
                [jobs.b]\ncommand = \"x\"\nwatch = { paths = [\"*.md\"], ignore_files = false }\n";
    let jobfile = parse(text, Path::new("q.toml")).unwrap_or_else(|d| panic!("{d}"));
    let honours = |name: &str| match &jobfile.jobs[name].trigger {
        Trigger::Watch(w) => w.ignore_files,
        other => panic!("{other:?}"),
    };
    assert!(honours("a"), "the default");
    assert!(!honours("b"), "the opt-out");
}

#[test]
fn an_empty_file_is_valid() {
    let jobfile = parse("", Path::new("q.toml")).unwrap_or_else(|d| panic!("{d}"));
    assert!(jobfile.jobs.is_empty());
    assert_eq!(
        jobfile.default_policy(),
        crate::retry::RetryPolicy::default()
    );
    assert!(jobfile.queues.contains_key("default"));
}

#[test]
fn invalid_configs_name_the_key_and_position() {
    let table: &[(&str, &str)] = &[
        (
            "[jobs.a]\ncomand = \"x\"\n",
            "2:1: unknown key `comand` in [jobs.a] (hint: did you mean `command`?)",
        ),
        (
            "[jobs.a]\nqueue = \"q\"\n",
            "1:1: missing key `command` in [jobs.a]",
        ),
        (
            "[job.a]\ncommand = \"x\"\n",
            "1:2: unknown section `job` (hint: did you mean `jobs`?)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nqueue = \"deplyo\"\n[queues.deploy]\n",
            "3:9: unknown queue `deplyo` in `jobs.a.queue` (hint: did you mean `deploy`?)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nqueue = \"other\"\n",
            "3:9: unknown queue `other` in `jobs.a.queue` (hint: declare it with [queues.other])",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nretry = \"patent\"\n[retry.patient]\n",
            "3:9: unknown retry policy `patent` in `jobs.a.retry` (hint: did you mean `patient`?)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nafter = [\"b\"]\n",
            "3:10: `jobs.a.after` names `b`, which is not a job in this file",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nschedule = \"61 * * * *\"\n",
            "3:12: invalid schedule `61 * * * *` in `jobs.a.schedule`: the minute field `61`: number out of bounds (hint: write 5 fields (`0 2 * * *`), 6 with seconds first, or a macro like `@daily`)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\n",
            "4:12: unknown time zone `Mars/Olympus` in `jobs.a.timezone` (hint: use an IANA name like `Europe/Berlin`, `UTC`, or `local`)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nwatch = [\"src/[*.rs\"]\n",
            "1:7: invalid glob `src/[*.rs` in `jobs.a.watch`: unclosed character class; missing ']'",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\ntimeout = \"-5s\"\n",
            "3:11: a duration cannot be negative (got `-5s`) in [jobs.a]",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\ntimeout = \"soon\"\n",
            "3:11: invalid duration `soon` in [jobs.a] (hint: write a duration like `500ms`, `30s`, `10m`, `2h` or `7d`)",
        ),
        (
            "[queues.q]\nworkers = 0\n",
            "1:9: `queues.q.workers` is 0: a queue needs at least 1 worker (hint: remove the queue, or give it `workers = 1`)",
        ),
        (
            "[retry.default]\nmax_retries = -1\n",
            "2:15: invalid value: integer `-1`, expected u32 in [retry.default] (hint: use a whole number, 0 or more)",
        ),
        (
            "[retry.default]\nbackoff_base = 0.5\n",
            "1:8: `retry.default.backoff_base` is 0.5: it must be a number >= 1 (hint: 1 retries at a steady 1 s; 2 doubles the wait each time)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nschedule = \"@daily\"\nwatch = [\"*.md\"]\n",
            "1:7: `jobs.a` has both `schedule` and `watch` (hint: a job runs on a schedule or on file changes: split it into two jobs)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\ntimezone = \"UTC\"\n",
            "1:7: `jobs.a.timezone` applies only to a job with a `schedule`",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\noverlap = \"sometimes\"\nschedule = \"@daily\"\n",
            "3:11: invalid value `sometimes` in [jobs.a] (hint: one of `skip`, `allow`, `replace`)",
        ),
        (
            "[jobs.a]\ncommand = \"  \"\n",
            "1:7: `jobs.a.command` is empty",
        ),
        (
            "[jobs.\"a b\"]\ncommand = \"x\"\n",
            "1:7: invalid name `a b` in [jobs]: use letters, digits, `.`, `_` and `-`",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nwatch = [\"../secrets/*\"]\n",
            "1:7: glob `../secrets/*` in `jobs.a.watch` leaves the jobfile's directory (hint: watch globs are relative to the jobfile's directory)",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nenv = { \"1X\" = \"y\" }\n",
            "1:7: invalid environment variable name `1X` in `jobs.a.env` (hint: use letters, digits and `_`, not starting with a digit)",
        ),
        (
            "[settings]\nlog_max_bytes = \"1 parsec\"\n",
            "2:17: unknown size unit `parsec` in `1 parsec`: use B, KB, KiB, MB, MiB, GB or GiB in [settings]",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nretry = { max_retires = 2 }\n",
            "3:9: unknown key `max_retires` in [jobs.a] (hint: did you mean `max_retries`?)",
        ),
        (
            "[jobs.a\ncommand = \"x\"\n",
            "1:8: invalid TOML: unclosed table, expected `]`",
        ),
        (
            "[jobs.a]\ncommand = \"x\"\nenv = { QUEUECTL_PATH = \"y\" }\n",
            "1:7: `jobs.a.env.QUEUECTL_PATH`: names starting with QUEUECTL_ are queuectl's own (hint: queuectl sets QUEUECTL_JOB_ID, QUEUECTL_ATTEMPT, QUEUECTL_SCHEDULED_AT, QUEUECTL_CHANGED, …; pick another name)",
        ),
    ];
    for (text, expected) in table {
        assert_eq!(one(text), *expected, "\n{text}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "[jobs.a]\ncomand = \"x\"\n\n[jobs.b]\ncommand = \"y\"\nqueue = \"nope\"\n\n[queues.q]\nworkers = 0\n";
    assert_eq!(
        errors(text),
        vec![
            "2:1: unknown key `comand` in [jobs.a] (hint: did you mean `command`?)".to_string(),
            "6:9: unknown queue `nope` in `jobs.b.queue` (hint: declare it with [queues.nope])".to_string(),
            "8:9: `queues.q.workers` is 0: a queue needs at least 1 worker (hint: remove the queue, or give it `workers = 1`)".to_string(),
        ]
    );
}

#[test]
fn after_cycles_are_found() {
    let text = "[jobs.a]\ncommand = \"x\"\nafter = [\"b\"]\n[jobs.b]\ncommand = \"x\"\nafter = [\"c\"]\n[jobs.c]\ncommand = \"x\"\nafter = [\"a\"]\n[jobs.d]\ncommand = \"x\"\nafter = [\"d\"]\n";
    assert_eq!(
        errors(text),
        vec![
            "1:7: `after` forms a cycle: a -> b -> c -> a (hint: a job cannot wait for itself, even through others)".to_string(),
            "10:7: `after` forms a cycle: d -> d (hint: a job cannot wait for itself, even through others)".to_string(),
        ]
    );
}

#[test]
fn spec_hash_follows_command_env_and_cwd_only() {
    let text = "[jobs.a]\ncommand = \"x\"\nenv = { A = \"${SECRET}\" }\n";
    let base = parse(text, Path::new("q.toml"))
        .map(|j| j.jobs["a"].spec_hash())
        .ok();
    let same = [
        "[jobs.a]\ncommand = \"x\"\nenv = { A = \"${SECRET}\" }\npriority = 9\ntimeout = \"5s\"\n",
    ];
    for text in same {
        assert_eq!(
            parse(text, Path::new("q.toml"))
                .map(|j| j.jobs["a"].spec_hash())
                .ok(),
            base,
            "{text}"
        );
    }
    let different = [
        "[jobs.a]\ncommand = \"y\"\nenv = { A = \"${SECRET}\" }\n",
        "[jobs.a]\ncommand = \"x\"\nenv = { A = \"${OTHER}\" }\n",
        "[jobs.a]\ncommand = \"x\"\nenv = { A = \"${SECRET}\" }\ncwd = \"sub\"\n",
    ];
    for text in different {
        assert_ne!(
            parse(text, Path::new("q.toml"))
                .map(|j| j.jobs["a"].spec_hash())
                .ok(),
            base,
            "{text}"
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Near-valid jobfiles: real sections and keys, some wrong, values of
    /// every type.
    fn jobfile_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("command"),
            Just("queue"),
            Just("retry"),
            Just("timeout"),
            Just("priority"),
            Just("after"),
            Just("schedule"),
            Just("watch"),
            Just("workers"),
            Just("max_retries"),
            Just("backoff_base"),
            Just("max_delay"),
            Just("comand"),
            Just("db"),
            Just("env"),
        ];
        let value = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            "[a-z0-9 *@/.-]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("true".to_string()),
            Just("[\"a\", \"b\"]".to_string()),
            Just("{ paths = [\"*.md\"] }".to_string()),
            Just("{ max_retries = 2 }".to_string()),
        ];
        let section = prop_oneof![
            Just("settings".to_string()),
            "[a-c]".prop_map(|n| format!("queues.{n}")),
            "[a-c]".prop_map(|n| format!("retry.{n}")),
            "[a-c]".prop_map(|n| format!("jobs.{n}")),
            "[a-z]{1,5}".prop_map(|n| n),
        ];
        proptest::collection::vec(
            (section, proptest::collection::vec((key, value), 0..5)),
            0..6,
        )
        .prop_map(|sections| {
            let mut text = String::new();
            let mut seen = std::collections::HashSet::new();
            for (name, pairs) in sections {
                if !seen.insert(name.clone()) {
                    continue;
                }
                text.push_str(&format!("[{name}]\n"));
                let mut keys = std::collections::HashSet::new();
                for (key, value) in pairs {
                    if keys.insert(key) {
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                }
            }
            text
        })
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_on_any_text(text in any::<String>()) {
            let _ = parse(&text, Path::new("q.toml"));
        }

        #[test]
        fn the_parser_never_panics_on_near_valid_files(text in jobfile_text()) {
            match parse(&text, Path::new("q.toml")) {
                // Whatever validates parses the same again.
                Ok(first) => {
                    let again = parse(&text, Path::new("q.toml")).map(|j| j.jobs).ok();
                    prop_assert_eq!(Some(first.jobs), again);
                }
                // Every error has a position inside the file.
                Err(d) => {
                    prop_assert!(!d.items.is_empty());
                    let lines = text.lines().count().max(1);
                    for item in &d.items {
                        prop_assert!(item.line >= 1 && item.line <= lines + 1, "{:?} in\n{}", item, text);
                    }
                }
            }
        }
    }
}
