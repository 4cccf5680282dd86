//! The checked-in JSON Schema (`schemas/queuectl.schema.json`) against
//! queuectl itself: durations the schema accepts are the ones queuectl
//! accepts, one bad value is one error, every jobfile of the repository
//! and its docs validates, and the editors (Tombi, Taplo) read it through
//! `#:schema` without a network.

use std::path::{Path, PathBuf};

use jsonschema::{PatternOptions, Validator};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use super::harness::{Env, require};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn schema() -> Value {
    let text = std::fs::read_to_string(repo_file("schemas/queuectl.schema.json")).expect("schema");
    serde_json::from_str(&text).expect("schema JSON")
}

/// The schema under both regular expression engines of `jsonschema`:
/// `fancy-regex` (ECMA-262-like, as VS Code's JSON support) and `regex`
/// (Rust's, as Taplo and Tombi).
fn validators(schema: &Value) -> [(&'static str, Validator); 2] {
    let fancy = jsonschema::draft7::options()
        .with_pattern_options(PatternOptions::fancy_regex())
        .build(schema)
        .expect("a valid draft-07 schema");
    let regex = jsonschema::draft7::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .expect("a valid draft-07 schema (regex engine)");
    [("fancy-regex", fancy), ("regex", regex)]
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// queuectl's verdict on a duration, through the jobfile as `validate`
/// reads it: `Ok`, or the messages.
fn queuectl_verdict(duration: &str) -> Result<(), String> {
    // A JSON string is a TOML basic string (same escapes).
    let quoted = serde_json::to_string(duration).expect("a JSON string");
    let text = format!("[settings]\nkeep_finished = {quoted}\n");
    queuectl::jobfile::parse(&text, Path::new("queuectl.toml"))
        .map(|_| ())
        .map_err(|d| d.to_string())
}

/// Durations queuectl accepts besides the schema's `examples`.
const ACCEPTED: &[&str] = &[
    "0s",
    "0ms",
    " 2s ",
    "\t10 secs\t",
    "1h 30m",
    "1h30m15s",
    "2 days",
    "1w1d",
    "1 wk 4 days",
    "1.5h",
    "0.25 seconds",
    "1s500ms",
    "3 mins 34 secs",
    "500 milliseconds",
    "10 minutes",
    "36500d",
];

/// Strings that are no duration for queuectl, nor for the schema.
const REJECTED: &[&str] = &[
    "5 parsecs",
    "-1s",
    "-5s",
    "",
    " ",
    "1.5",
    "10",
    "ten",
    "soon",
    "NaN",
    "s",
    "ms",
    "1mo",
    "1y",
    "1 year",
    "PT10M",
    "P1D",
    "10:30:00",
    "1,5s",
    "+5s",
    "5S",
    "1H",
    "1h30",
    ".5s",
    "1.s",
    "1.5.5s",
    "1 m s",
    "5 s s",
    "5µs",
    "5us",
    "1s ago",
    "1 hour, 30 minutes",
    "1h-30m",
    "1e3s",
    "1_000s",
    "5s\n",
    "\n5s",
    "\u{a0}5s",
];

/// Well-formed, but longer than queuectl takes (100 years): the one thing
/// a pattern cannot say.
const TOO_LONG: &[&str] = &[
    "200000d",
    "36500d 1ms",
    "5300w",
    "99999999999999999999999999h",
];

#[test]
fn the_schema_and_queuectl_agree_on_every_duration() {
    let schema = schema();
    let examples: Vec<&str> = schema["definitions"]["Duration"]["examples"]
        .as_array()
        .expect("Duration has examples")
        .iter()
        .map(|e| e.as_str().expect("a string example"))
        .collect();
    assert!(examples.len() >= 5, "{examples:?}");
    let validators = validators(&schema);
    let schema_verdict = |validator: &Validator, duration: &str| {
        validator.is_valid(&json!({"settings": {"keep_finished": duration}}))
    };
    for duration in examples.iter().chain(ACCEPTED) {
        assert_eq!(queuectl_verdict(duration), Ok(()), "{duration:?}");
        for (engine, validator) in &validators {
            assert!(
                schema_verdict(validator, duration),
                "{engine}: {duration:?}"
            );
        }
    }
    for duration in REJECTED {
        assert!(queuectl_verdict(duration).is_err(), "{duration:?}");
        for (engine, validator) in &validators {
            assert!(
                !schema_verdict(validator, duration),
                "{engine}: {duration:?}"
            );
        }
    }
    for duration in TOO_LONG {
        let message = queuectl_verdict(duration).expect_err(duration);
        assert!(message.contains("at most 100 years"), "{message}");
        for (engine, validator) in &validators {
            assert!(
                schema_verdict(validator, duration),
                "{engine}: {duration:?}"
            );
        }
    }
}

#[test]
fn every_duration_key_uses_the_duration_schema() {
    let schema = schema();
    let defs = &schema["definitions"];
    let duration = json!([{"$ref": "#/definitions/Duration"}]);
    for (definition, key) in [
        ("SettingsSpec", "keep_finished"),
        ("SettingsSpec", "dlq_max_age"),
        ("SettingsSpec", "timeout"),
        ("SettingsSpec", "lease"),
        ("RetrySpec", "max_delay"),
        ("JobSpec", "timeout"),
        ("WatchTable", "debounce"),
    ] {
        assert_eq!(
            defs[definition]["properties"][key]["allOf"], duration,
            "{definition}.{key}"
        );
    }
    assert_eq!(
        defs["Duration"]["pattern"].as_str(),
        Some(queuectl::duration::pattern().as_str())
    );
}

#[test]
fn the_duration_pattern_and_queuectl_agree_on_random_strings() {
    let schema = schema();
    let pattern = schema["definitions"]["Duration"]["pattern"].clone();
    let validators = validators(&json!({"type": "string", "pattern": pattern}));
    let words = [
        "w",
        "wk",
        "wks",
        "week",
        "weeks",
        "d",
        "day",
        "days",
        "h",
        "hr",
        "hrs",
        "hour",
        "hours",
        "m",
        "min",
        "mins",
        "minute",
        "minutes",
        "s",
        "sec",
        "secs",
        "second",
        "seconds",
        "ms",
        "msec",
        "msecs",
        "milli",
        "millis",
        "millisecond",
        "milliseconds",
        "mo",
        "y",
        "us",
        "ns",
        "x",
        "S",
        "H",
        ".",
        ",",
        ":",
        "-",
        "+",
        " ",
        " ",
        "\t",
        "\n",
        "µs",
        "ago",
    ];
    let token = proptest::prop_oneof![
        3 => "[0-9]{1,3}",
        4 => proptest::sample::select(words.to_vec()).prop_map(String::from),
        // A whole part now and then, so that many strings are durations.
        2 => "[0-9]{1,3}(\\.[0-9]{1,2})?[ \t]?(w|d|h|m|s|ms|min|hours|secs)",
    ];
    let strings = proptest::collection::vec(token, 0..7).prop_map(|t| t.concat());
    let mut runner = TestRunner::new(Config {
        cases: 4000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strings, |text| {
            let accepted = match queuectl::duration::parse(&text, "x") {
                Ok(_) => true,
                Err(e) => e.to_string().contains("at most 100 years"),
            };
            for (engine, validator) in &validators {
                proptest::prop_assert_eq!(
                    validator.is_valid(&json!(text)),
                    accepted,
                    "{} on {:?}",
                    engine,
                    text
                );
            }
            Ok(())
        })
        .expect("the pattern and the parser agree");
}

#[test]
fn the_schema_has_an_id_and_plain_types() {
    let schema = schema();
    assert_eq!(schema["$id"], queuectl::jobfile::SCHEMA_ID);
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    // No nulls (TOML has none), no `const`, no `oneOf`, anywhere.
    fn walk(value: &Value, at: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let here = format!("{at}/{key}");
                    if key == "const" || key == "oneOf" || inner == "null" {
                        found.push(here.clone());
                    }
                    walk(inner, &here, found);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    if inner.is_null() || inner == "null" {
                        found.push(format!("{at}/{i}"));
                    }
                    walk(inner, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&schema, "", &mut found);
    assert!(found.is_empty(), "{found:?}");
    // Choices: one `enum`, each value explained in the description.
    let defs = &schema["definitions"];
    for (name, values) in [
        ("Overlap", json!(["skip", "allow", "replace"])),
        ("Missed", json!(["run-once", "skip"])),
        ("OnBusy", json!(["queue", "skip", "restart"])),
    ] {
        assert_eq!(defs[name]["type"], "string", "{name}");
        assert_eq!(defs[name]["enum"], values, "{name}");
        let description = defs[name]["description"].as_str().unwrap_or_default();
        for value in values.as_array().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("- `{value}`: ")),
                "{name}: {description}"
            );
        }
    }
    // Optional keys are their plain type, with their description kept.
    let priority = &defs["JobSpec"]["properties"]["priority"];
    assert_eq!(priority["type"], "integer");
    assert!(
        priority["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Higher runs first"))
    );
}

#[test]
fn one_bad_value_is_one_error() {
    let schema = schema();
    let job = |extra: Value| {
        let mut job = json!({"command": "x"});
        if let (Some(job), Some(extra)) = (job.as_object_mut(), extra.as_object()) {
            job.extend(extra.clone());
        }
        json!({"jobs": {"a": job}})
    };
    let cases = [
        (
            job(json!({"on_busy": "sometimes", "watch": ["a"]})),
            "/jobs/a/on_busy",
        ),
        (
            job(json!({"overlap": "never", "schedule": "@daily"})),
            "/jobs/a/overlap",
        ),
        (
            job(json!({"missed": "all", "schedule": "@daily"})),
            "/jobs/a/missed",
        ),
        (job(json!({"timeout": "5 parsecs"})), "/jobs/a/timeout"),
        (job(json!({"priority": "high"})), "/jobs/a/priority"),
        (job(json!({"retry": 3})), "/jobs/a/retry"),
        (
            json!({"settings": {"keep_finished": "a week"}}),
            "/settings/keep_finished",
        ),
        (
            json!({"queues": {"q": {"workers": 0}}}),
            "/queues/q/workers",
        ),
    ];
    for (_, validator) in validators(&schema) {
        for (instance, path) in &cases {
            let found = errors(&validator, instance);
            assert_eq!(found.len(), 1, "{instance}: {found:#?}");
            assert!(found[0].ends_with(&format!(" at {path}")), "{found:?}");
        }
    }
}

/// The TOML code blocks of a Markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_and_the_starter_jobfile_validate_against_the_schema() {
    let schema = schema();
    let env = Env::new();
    env.cmd(["init"]).assert().success();
    let mut jobfiles = vec![("queuectl init".to_string(), env.read("queuectl.toml"))];
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    for (i, block) in toml_blocks(&readme).into_iter().enumerate() {
        jobfiles.push((format!("README.md, TOML block {}", i + 1), block));
    }
    assert!(jobfiles.len() >= 5, "{jobfiles:?}");
    for (_, validator) in validators(&schema) {
        for (name, text) in &jobfiles {
            let value: toml::Value = toml::from_str(text).expect("TOML");
            let json = serde_json::to_value(&value).expect("as JSON");
            let found = errors(&validator, &json);
            assert!(found.is_empty(), "{name}: {found:?}");
        }
    }
    // `init` writes the schema it was built with: the checked-in one.
    let written: Value = serde_json::from_str(&env.read("queuectl.schema.json")).expect("JSON");
    assert!(
        written == schema,
        "`init` wrote another schema than the checked-in one"
    );
}

/// The broken jobfiles of `tests/fixtures/jobfiles`: the schema rejects
/// those whose problem is in its shape, with one error per problem, and
/// lets through those only queuectl can see (a cycle, a cron field, an
/// unknown queue…).
#[test]
fn the_schema_rejects_the_fixtures_it_can_see_one_error_each() {
    let expected_errors = [
        ("after-cycle.toml", 0),
        ("after-missing.toml", 0),
        ("backoff-base.toml", 1),
        ("bad-name.toml", 0),
        ("bad-size.toml", 1),
        ("cron-bad-field.toml", 0),
        ("cron-fields.toml", 0),
        ("cron-macro.toml", 0),
        ("duration-bad.toml", 1),
        ("duration-negative.toml", 1),
        ("empty-command.toml", 0),
        ("glob-escape.toml", 0),
        ("glob.toml", 0),
        ("missing-command.toml", 1),
        ("negative-retries.toml", 1),
        ("on-busy-without-watch.toml", 0),
        ("schedule-and-watch.toml", 0),
        ("timezone.toml", 0),
        // `comand` is unknown and `command` missing: two problems.
        ("unknown-key.toml", 2),
        ("unknown-policy.toml", 0),
        ("unknown-queue.toml", 0),
        ("unknown-section.toml", 1),
        ("zero-workers.toml", 1),
    ];
    let dir = repo_file("tests/fixtures/jobfiles");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Not TOML at all: nothing to give a schema.
        .filter(|n| n != "broken-toml.toml")
        .collect();
    names.sort();
    let listed: Vec<&str> = expected_errors.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, listed,
        "a fixture was added or removed: list it here"
    );
    for (_, validator) in validators(&schema()) {
        for (name, count) in expected_errors {
            let text = std::fs::read_to_string(dir.join(name)).expect("fixture");
            let value: toml::Value = toml::from_str(&text).expect("TOML");
            let json = serde_json::to_value(&value).expect("as JSON");
            let found = errors(&validator, &json);
            assert_eq!(found.len(), count, "{name}: {found:#?}");
        }
    }
}

/// Jobfiles for the editors: one that is valid (every example duration of
/// the schema, long unit names), one with a bad value per job.
fn editor_files(env: &Env) -> (PathBuf, PathBuf, usize) {
    std::fs::copy(
        repo_file("schemas/queuectl.schema.json"),
        env.file("queuectl.schema.json"),
    )
    .expect("copy the schema");
    let schema = schema();
    let mut good =
        String::from("#:schema ./queuectl.schema.json\n\n[settings]\nlease = \"1 minute\"\n");
    let examples = schema["definitions"]["Duration"]["examples"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, example) in examples.iter().chain(&[json!("1w 2d 3h")]).enumerate() {
        good.push_str(&format!(
            "\n[jobs.j{i}]\ncommand = \"true\"\ntimeout = {example}\n"
        ));
    }
    good.push_str("\n[jobs.w]\ncommand = \"true\"\nwatch = { paths = [\"*.md\"], debounce = \"300ms\" }\non_busy = \"restart\"\n");
    let bad = "#:schema ./queuectl.schema.json\n\n\
        [jobs.a]\ncommand = \"true\"\nwatch = [\"*.md\"]\non_busy = \"sometimes\"\n\n\
        [jobs.b]\ncommand = \"true\"\ntimeout = \"5 parsecs\"\n\n\
        [jobs.c]\ncommand = \"true\"\nschedule = \"@daily\"\noverlap = \"never\"\n\n\
        [jobs.d]\ncommand = \"true\"\ntimeout = \"-1s\"\n";
    (
        env.write("good.toml", &good),
        env.write("bad.toml", bad),
        // One error each: lines 6, 10, 15 and 19.
        4,
    )
}

#[test]
fn tombi_checks_jobfiles_against_the_schema_offline() {
    if !require("tombi") {
        return;
    }
    let env = Env::new();
    let (good, bad, bad_count) = editor_files(&env);
    let lint = |files: &[&Path]| {
        let report = env.file("diagnostics.json");
        let output = env
            .command("tombi")
            .args(["lint", "--offline", "--diagnostics-format", "json"])
            .arg("--diagnostics-file")
            .arg(&report)
            .args(files)
            .output()
            .expect("run tombi");
        let diagnostics: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
                .unwrap_or_else(|e| {
                    panic!(
                        "tombi wrote no JSON diagnostics ({e}): {}",
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
        let errors: Vec<Value> = diagnostics
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["level"] == "error")
            .cloned()
            .collect();
        (output.status.success(), errors)
    };
    let (ok, errors) = lint(&[&good]);
    assert!(ok && errors.is_empty(), "{errors:#?}");
    // The repository's own jobfiles, through their `#:schema` lines.
    let mut repo: Vec<PathBuf> = std::fs::read_dir(repo_file("examples"))
        .expect("examples/")
        .flatten()
        .map(|e| e.path())
        .collect();
    repo.push(repo_file("queuectl.toml"));
    let repo: Vec<&Path> = repo.iter().map(PathBuf::as_path).collect();
    let (ok, errors) = lint(&repo);
    assert!(ok && errors.is_empty(), "{errors:#?}");
    // One error per bad value (not one per choice), where the value is.
    let (ok, errors) = lint(&[&bad]);
    assert!(!ok);
    let found: Vec<(i64, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["range"]["start"]["line"].as_i64().unwrap_or_default(),
                e["code"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(found.len(), bad_count, "{errors:#?}");
    assert_eq!(
        found,
        [
            (6, "enum"),
            (10, "string-pattern"),
            (15, "enum"),
            (19, "string-pattern")
        ],
        "{errors:#?}"
    );
}

#[test]
fn taplo_checks_jobfiles_against_the_schema_offline() {
    if !require("taplo") {
        return;
    }
    let env = Env::new();
    let (good, bad, bad_count) = editor_files(&env);
    let lint = |file: &Path| {
        let output = env
            .command("taplo")
            .args(["lint", "--no-auto-config", "--colors", "never"])
            .arg(file)
            .output()
            .expect("run taplo");
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), text)
    };
    let (ok, text) = lint(&good);
    assert!(ok, "{text}");
    let (ok, text) = lint(&bad);
    assert!(!ok);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), bad_count, "{text}");
    assert!(
        errors[0].contains(r#""sometimes" is not one of ["queue","skip","restart"]"#),
        "{text}"
    );
    assert!(
        errors[1].contains(r#""5 parsecs" does not match"#),
        "{text}"
    );
}
