//! The JSON job input format: what `enqueue` reads from an argument, a
//! file or stdin (one object, an array of them, or JSON Lines), and the
//! shell-command form. Every problem is an input error that says where
//! (`jobs.jsonl:3: …`) and what to write instead. Unknown fields,
//! duplicate keys and values out of range are refused; nothing here
//! touches the queue.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::names::{validate_env_name, validate_id, validate_queue};
use super::{NewJob, Origin, generate_id};
use crate::clock::{self, now_ms};
use crate::duration::{self, as_millis_i64};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// One job as JSON: the fields a user may give. Unknown fields are errors.
/// `state`, `attempts`, `created_at` and `updated_at` are accepted so that
/// job records in the classic queue format can be enqueued as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonJob {
    id: Option<String>,
    command: Option<String>,
    queue: Option<String>,
    priority: Option<i64>,
    max_retries: Option<i64>,
    timeout: Option<Value>,
    delay: Option<Value>,
    run_at: Option<Value>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    state: Option<String>,
    attempts: Option<i64>,
    created_at: Option<Value>,
    updated_at: Option<Value>,
}

/// What the flags say, applied to every job unless its JSON says otherwise.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub queue: String,
    pub priority: i64,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<i64>,
    pub run_at: i64,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub now: i64,
}

/// Parses jobs as `enqueue --file` does (an object, an array or JSON
/// Lines), with the built-in defaults; for fuzzing and tools.
pub fn parse_jobs(text: &str) -> Result<Vec<NewJob>> {
    let defaults = Defaults {
        queue: "default".into(),
        priority: 0,
        retry: RetryPolicy::default(),
        timeout_ms: None,
        run_at: 0,
        env: Vec::new(),
        cwd: std::path::PathBuf::from("/"),
        now: 0,
    };
    parse_source(text, "input", &defaults)
}

pub fn positive_timeout(d: std::time::Duration) -> Result<i64> {
    if d.is_zero() {
        return Err(Error::input("timeout must be longer than 0s"));
    }
    Ok(as_millis_i64(d))
}

pub fn parse_env_pair(pair: &str) -> Result<(String, String)> {
    let (key, value) = pair.split_once('=').ok_or_else(|| {
        Error::input_with_hint(format!("invalid --env `{pair}`"), "write --env NAME=VALUE")
    })?;
    validate_env_name(key)?;
    check_template(value, &format!("--env `{key}`"))?;
    Ok((key.to_string(), value.to_string()))
}

/// A `${VAR}` template that cannot be expanded, whatever the environment,
/// is an error now rather than a failed attempt later (as in a jobfile).
pub fn check_template(value: &str, what: &str) -> Result<()> {
    super::template::expand_env(value, |_| Some(String::new()))
        .map(drop)
        .map_err(|why| {
            Error::input_with_hint(
                format!("{what}: {why}"),
                "`${NAME}` reads NAME from the runner's environment; `$$` is a literal `$`",
            )
        })
}

/// The command and environment of a job, checked against what `execve`
/// accepts; `subject` names the command in the message.
pub fn check_runnable(command: &str, env: &[(String, String)], subject: &str) -> Result<()> {
    super::check_command(command).map_err(|why| Error::input(format!("{subject} {why}")))?;
    super::check_env(env).map_err(|(key, why)| match key {
        Some(key) => Error::input(format!("`env.{key}` {why}")),
        None => Error::input(format!("the environment {why}")),
    })
}

/// An argument that starts with `{` or `[` is JSON (a job, or an array of
/// jobs): a shell command that starts so goes after `--`.
pub fn looks_like_json(arg: &str) -> bool {
    arg.trim_start().starts_with(['{', '['])
}

pub fn command_job(command: &str, defaults: &Defaults) -> Result<NewJob> {
    if command.trim().is_empty() {
        return Err(Error::input("the command is empty"));
    }
    check_runnable(command, &defaults.env, "the command")?;
    Ok(NewJob {
        id: generate_id(now_ms()),
        command: command.to_string(),
        definition: None,
        origin: Origin::Cli,
        queue: defaults.queue.clone(),
        priority: defaults.priority,
        retry: defaults.retry.clone(),
        timeout_ms: defaults.timeout_ms,
        env: defaults.env.clone(),
        cwd: Some(defaults.cwd.display().to_string()),
        run_at: defaults.run_at,
        created_at: defaults.now,
        spec_hash: None,
        source_commit: None,
        after: Vec::new(),
        tick_at: None,
        inputs: None,
        payload: None,
        exclusive: None,
    })
}

pub fn parse_source(text: &str, name: &str, defaults: &Defaults) -> Result<Vec<NewJob>> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(Error::input(format!(
            "{name}: no jobs in it (the file is empty)"
        )));
    }
    if trimmed.starts_with('[') {
        let value = parse_json(text, name)?;
        let Value::Array(items) = value else {
            return Err(Error::input(format!(
                "{name}: expected a JSON array of jobs"
            )));
        };
        if items.is_empty() {
            return Err(Error::input(format!("{name}: the array holds no jobs")));
        }
        return items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                job_from_value(item, defaults)
                    .map_err(|e| located(e, &format!("{name}: job #{}", i + 1)))
            })
            .collect();
    }
    // One object, or JSON Lines: one object per line.
    match serde_json::from_str::<Value>(text) {
        Ok(value) => {
            check_duplicate_keys(text).map_err(|why| Error::input(format!("{name}: {why}")))?;
            Ok(vec![
                job_from_value(value, defaults).map_err(|e| located(e, name))?,
            ])
        }
        Err(e) if e.is_syntax() && e.line() > 1 && trimmed.starts_with('{') && is_trailing(&e) => {
            parse_lines(text, name, defaults)
        }
        Err(e) => Err(json_error(e, name)),
    }
}

fn is_trailing(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("trailing characters")
}

fn parse_lines(text: &str, name: &str, defaults: &Defaults) -> Result<Vec<NewJob>> {
    let mut jobs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{name}:{}", index + 1);
        let job: JsonJob = serde_json::from_str(line).map_err(|e| {
            if e.is_data() {
                Error::input(format!("{at}: {}", strip_position(&e)))
            } else {
                let value_error = serde_json::from_str::<Value>(line).err();
                match value_error {
                    Some(syntax) => {
                        Error::input(format!("{at}: invalid JSON: {}", strip_position(&syntax)))
                    }
                    None => Error::input(format!("{at}: expected a JSON object (a job)")),
                }
            }
        })?;
        check_duplicate_keys(line).map_err(|why| Error::input(format!("{at}: {why}")))?;
        jobs.push(job_from_json(job, defaults).map_err(|e| located(e, &at))?);
    }
    Ok(jobs)
}

fn parse_json(text: &str, name: &str) -> Result<Value> {
    let value = serde_json::from_str(text).map_err(|e| json_error(e, name))?;
    check_duplicate_keys(text).map_err(|why| Error::input(format!("{name}: {why}")))?;
    Ok(value)
}

/// serde_json keeps the last of two equal keys, silently: a job written
/// `{"command": "a", "command": "b"}` would run `b`. Refuse it instead.
fn check_duplicate_keys(text: &str) -> std::result::Result<(), String> {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// Walks a JSON value; `depth` 0 is the document.
    #[derive(Clone, Copy)]
    struct Walk {
        depth: usize,
    }
    impl<'de> DeserializeSeed<'de> for Walk {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            let inner = Walk {
                depth: self.depth + 1,
            };
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    // A job's own keys are its fields.
                    let what = if self.depth == 1 { "field" } else { "key" };
                    return Err(de::Error::custom(format!("duplicate {what} `{key}`")));
                }
                map.next_value_seed(inner)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let item = Walk {
                depth: self.depth + 1,
            };
            while seq.next_element_seed(item)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }
    // A job is the document itself, or an item of the document's array.
    let walk = Walk {
        depth: usize::from(text.trim_start().starts_with('{')),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    walk.deserialize(&mut deserializer)
        .map_err(|e| strip_position(&e))
}

fn json_error(e: serde_json::Error, name: &str) -> Error {
    Error::input_with_hint(
        json_message(&e, name),
        "a job is a JSON object like {\"command\": \"make test\"}; a file holds one, an array, or one per line",
    )
}

/// `NAME: invalid JSON at line L column C: WHAT`.
pub fn json_message(e: &serde_json::Error, name: &str) -> String {
    format!(
        "{name}: invalid JSON at line {} column {}: {}",
        e.line(),
        e.column(),
        strip_position(e)
    )
}

/// serde_json appends " at line L column C"; we place the position ourselves.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

fn located(e: Error, at: &str) -> Error {
    match e {
        Error::Input { message, hint } if !message.starts_with(at) => Error::Input {
            message: format!("{at}: {message}"),
            hint,
        },
        other => other,
    }
}

fn job_from_value(value: Value, defaults: &Defaults) -> Result<NewJob> {
    let kind = match &value {
        Value::Object(_) => None,
        Value::Array(_) => Some("an array"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(Error::input_with_hint(
            format!("expected a JSON object (a job), found {kind}"),
            "a job is a JSON object like {\"command\": \"make test\"}",
        ));
    }
    let job: JsonJob =
        serde_json::from_value(value).map_err(|e| Error::input(strip_position(&e)))?;
    job_from_json(job, defaults)
}

fn job_from_json(job: JsonJob, defaults: &Defaults) -> Result<NewJob> {
    let command = job
        .command
        .ok_or_else(|| Error::input("missing field `command`"))?;
    if command.trim().is_empty() {
        return Err(Error::input("field `command` is empty"));
    }
    let id = match job.id {
        Some(id) => {
            validate_id(&id)?;
            id
        }
        None => generate_id(now_ms()),
    };
    if let Some(state) = job.state.filter(|s| s != "pending") {
        return Err(Error::input(format!(
            "field `state` is `{state}`: only pending jobs can be enqueued"
        )));
    }
    if let Some(attempts) = job.attempts.filter(|a| *a != 0) {
        return Err(Error::input(format!(
            "field `attempts` is {attempts}: a new job starts with 0 attempts"
        )));
    }
    let queue = match job.queue {
        Some(queue) => {
            validate_queue(&queue)?;
            queue
        }
        None => defaults.queue.clone(),
    };
    let mut retry = defaults.retry.clone();
    if let Some(n) = job.max_retries {
        retry.max_retries = u32::try_from(n).map_err(|_| {
            Error::input(format!(
                "field `max_retries` must be between 0 and {} (got {n})",
                u32::MAX
            ))
        })?;
    }
    let timeout_ms = match job.timeout {
        Some(value) => Some(positive_timeout(duration_value(
            &value,
            "field `timeout`",
        )?)?),
        None => defaults.timeout_ms,
    };
    let run_at = match (job.delay, job.run_at) {
        (Some(_), Some(_)) => {
            return Err(Error::input(
                "fields `delay` and `run_at` cannot both be given",
            ));
        }
        (Some(delay), None) => {
            defaults.now + as_millis_i64(duration_value(&delay, "field `delay`")?)
        }
        (None, Some(at)) => within_reach(time_value(&at)?, defaults.now, "field `run_at`")?,
        (None, None) => defaults.run_at,
    };
    let mut env = defaults.env.clone();
    for (key, value) in job.env.unwrap_or_default() {
        validate_env_name(&key)?;
        check_template(&value, &format!("field `env.{key}`"))?;
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    check_runnable(&command, &env, "field `command`")?;
    let cwd = match job.cwd {
        Some(cwd) if cwd.contains('\0') => {
            return Err(Error::input("field `cwd` contains a NUL byte"));
        }
        Some(cwd) => defaults.cwd.join(cwd),
        None => defaults.cwd.clone(),
    };
    let created_at = job
        .created_at
        .as_ref()
        .and_then(|v| time_value(v).ok())
        .unwrap_or(defaults.now);
    let _ = job.updated_at;
    Ok(NewJob {
        id,
        command,
        definition: None,
        origin: Origin::Cli,
        queue,
        priority: job.priority.unwrap_or(defaults.priority),
        retry,
        timeout_ms,
        env,
        cwd: Some(cwd.display().to_string()),
        run_at,
        created_at,
        spec_hash: None,
        source_commit: None,
        after: Vec::new(),
        tick_at: None,
        inputs: None,
        payload: None,
        exclusive: None,
    })
}

/// A duration given as a string (`"30s"`) or a number of seconds.
fn duration_value(value: &Value, what: &str) -> Result<std::time::Duration> {
    match value {
        Value::String(text) => duration::parse(text, what),
        Value::Number(n) => duration::from_secs(n.as_f64().unwrap_or(f64::NAN), what),
        _ => Err(Error::input(format!(
            "{what} must be a duration like \"30s\" or a number of seconds"
        ))),
    }
}

/// A time no further ahead than the longest duration queuectl takes.
pub fn within_reach(at: i64, now: i64, what: &str) -> Result<i64> {
    if at > now.saturating_add(as_millis_i64(duration::MAX)) {
        return Err(Error::input(format!(
            "{what} is more than 100 years ahead: nothing waits that long"
        )));
    }
    Ok(at)
}

/// A time given as RFC 3339 or a civil local time, or as Unix seconds.
fn time_value(value: &Value) -> Result<i64> {
    match value {
        Value::String(text) => clock::parse_time(text).map_err(Error::input),
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| Error::input(format!("invalid time {n}"))),
        _ => Err(Error::input(
            "field `run_at` must be a time like \"2026-11-22T18:00:00Z\" or Unix seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            queue: "default".into(),
            priority: 0,
            retry: RetryPolicy::default(),
            timeout_ms: None,
            run_at: 1_000,
            env: vec![],
            cwd: PathBuf::from("/srv"),
            now: 1_000,
        }
    }

    fn error_of(text: &str) -> String {
        match parse_source(text, "jobs.jsonl", &defaults()) {
            Ok(jobs) => format!("ok: {} jobs", jobs.len()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sources_in_every_shape() {
        assert_eq!(error_of(r#"{"command": "true"}"#), "ok: 1 jobs");
        assert_eq!(error_of("{\n  \"command\": \"true\"\n}\n"), "ok: 1 jobs");
        assert_eq!(
            error_of(r#"[{"command": "a"}, {"command": "b"}]"#),
            "ok: 2 jobs"
        );
        assert_eq!(
            error_of("{\"command\": \"a\"}\n\n{\"command\": \"b\"}\n"),
            "ok: 2 jobs"
        );
    }

    #[test]
    fn bad_sources_name_the_place() {
        let table = [
            ("", "jobs.jsonl: no jobs in it (the file is empty)"),
            ("[]", "jobs.jsonl: the array holds no jobs"),
            (
                "42",
                "jobs.jsonl: expected a JSON object (a job), found a number",
            ),
            (
                "[1]",
                "jobs.jsonl: job #1: expected a JSON object (a job), found a number",
            ),
            (
                "{\"command\": \"a\"}\n{\"command\": \"b\"\n{\"command\": \"c\"}",
                "jobs.jsonl:2: invalid JSON: EOF while parsing an object",
            ),
            (
                "{\"command\": \"a\"}\n{\"id\": \"x\"}",
                "jobs.jsonl:2: missing field `command`",
            ),
            (
                r#"{"command": "  "}"#,
                "jobs.jsonl: field `command` is empty",
            ),
            (
                r#"{"command": "a", "max_retries": -1}"#,
                "jobs.jsonl: field `max_retries` must be between 0 and 4294967295 (got -1)",
            ),
            (
                r#"{"command": "a", "id": "../x"}"#,
                "jobs.jsonl: invalid job id `../x`: `/` is not allowed",
            ),
            (
                r#"{"command": "a", "state": "dead"}"#,
                "jobs.jsonl: field `state` is `dead`: only pending jobs can be enqueued",
            ),
            (
                r#"{"command": "a", "timeout": "-3s"}"#,
                "jobs.jsonl: field `timeout` cannot be negative (got `-3s`)",
            ),
            (
                "{\"command\": \"a\", \"comand\": 1}",
                "jobs.jsonl: unknown field `comand`, expected one of `id`, `command`, `queue`, `priority`, `max_retries`, `timeout`, `delay`, `run_at`, `env`, `cwd`, `state`, `attempts`, `created_at`, `updated_at`",
            ),
            (
                "{\"command\": \"a\",",
                "jobs.jsonl: invalid JSON at line 1 column 16: EOF while parsing a value",
            ),
        ];
        for (text, message) in table {
            assert_eq!(error_of(text), message, "{text:?}");
        }
    }

    #[test]
    fn json_fields_override_flags() -> Result<()> {
        let jobs = parse_source(
            r#"{"command": "a", "queue": "q", "priority": 5, "max_retries": 0, "timeout": 2, "env": {"A": "1"}, "cwd": "sub"}"#,
            "x",
            &defaults(),
        )?;
        let job = &jobs[0];
        assert_eq!(
            (job.queue.as_str(), job.priority, job.retry.max_retries),
            ("q", 5, 0)
        );
        assert_eq!(job.timeout_ms, Some(2_000));
        assert_eq!(job.env, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(job.cwd.as_deref(), Some("/srv/sub"));
        Ok(())
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn the_json_parser_never_panics(text in any::<String>()) {
                let _ = parse_source(&text, "x", &defaults());
            }

            #[test]
            fn valid_jobs_round_trip(
                id in "[A-Za-z0-9._-]{3,20}",
                command in "[a-z][a-z ./-]{0,30}",
                priority in any::<i64>(),
                max_retries in any::<u32>(),
                queue in "[a-z]{1,10}",
            ) {
                let text = serde_json::json!({
                    "id": id, "command": command, "priority": priority,
                    "max_retries": max_retries, "queue": queue,
                })
                .to_string();
                let jobs = parse_source(&text, "x", &defaults()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(jobs.len(), 1);
                let job = &jobs[0];
                prop_assert_eq!(&job.id, &id);
                prop_assert_eq!(&job.command, &command);
                prop_assert_eq!(job.priority, priority);
                prop_assert_eq!(job.retry.max_retries, max_retries);
                prop_assert_eq!(&job.queue, &queue);
            }
        }
    }

    #[test]
    fn json_detection_takes_every_brace_or_bracket() {
        assert!(looks_like_json(r#"{"command": "x"}"#));
        assert!(looks_like_json("  { \"id\": 1"));
        // A shell brace group or test now goes after `--` (issue 11: an
        // argument that starts with `{` or `[` means JSON, or an error).
        assert!(looks_like_json("{ echo a; echo b; }"));
        assert!(looks_like_json("[ -f x ]"));
        assert!(!looks_like_json("echo {}"));
    }
}
