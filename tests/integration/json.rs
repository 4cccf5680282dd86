//! The JSON contract (README, "JSON output"): the shape of every
//! command's `--json` output is pinned here, key by key, with each
//! value's kind: times are RFC 3339 strings in UTC (`time`), durations
//! integers of milliseconds named `…_ms`, lists `{"items", "total"}`.

use serde_json::{Map, Value, json};

use super::harness::{Env, wait_until};

/// A value's shape: objects keep their keys, arrays the shape of their
/// first item, other values become their kind (`string`, `time`,
/// `number`, `bool`, `null`).
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(s) if is_time(s) => json!("time"),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// `2026-11-23T09:30:00.250Z`: what every time in JSON output looks like.
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.parse::<jiff::Timestamp>().is_ok()
}

/// No number anywhere in the output is an epoch time in disguise, and no
/// field ends in `_at` unless it is a time (or null).
fn check_times(value: &Value, path: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k.ends_with("_at") || k == "timestamp" {
                    assert!(
                        v.is_null() || v.as_str().is_some_and(is_time),
                        "{path}.{k} is not an RFC 3339 time: {v}"
                    );
                }
                check_times(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_times(v, path)),
        Value::Number(n) => assert!(
            n.as_i64().is_none_or(|n| n.abs() < 1_000_000_000_000),
            "{path} looks like epoch milliseconds: {n}"
        ),
        _ => {}
    }
}

const JOBFILE: &str = "[retry.default]\nmax_retries = 0\n\
    [jobs.ok]\ncommand = \"echo fine\"\n\
    [jobs.bad]\ncommand = \"echo broken; exit 3\"\n\
    [jobs.nightly]\ncommand = \"true\"\nschedule = \"0 2 * * *\"\ntimezone = \"UTC\"\n";

/// Runs `queuectl --json ARGS`, checks its times and returns its shape.
fn shape_of(env: &Env, args: &[&str]) -> Value {
    let out = env
        .cmd(std::iter::once("--json").chain(args.iter().copied()))
        .output()
        .expect("run queuectl");
    let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    check_times(&value, &format!("{args:?}"));
    shape(&value)
}

fn job_shape() -> Value {
    json!({
        "id": "string", "command": "string", "definition": "string", "origin": "string",
        "queue": "string", "priority": "number", "state": "string", "attempts": "number",
        "runs": "number", "max_retries": "number", "backoff_base": "number",
        "max_delay_ms": "null", "jitter": "bool", "no_retry_exit_codes": [],
        "timeout_ms": "null", "env": [], "cwd": "string", "run_at": "time",
        "created_at": "time", "updated_at": "time", "started_at": "time",
        "finished_at": "time", "exit_code": "number", "last_error": "null",
        "spec_hash": "string", "source_commit": "null", "reason": "null", "after": [],
        "tick_at": "null", "payload": "null",
    })
}

#[test]
fn every_command_s_json_has_its_pinned_shape() {
    let env = Env::new();
    env.write("queuectl.toml", JOBFILE);
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{output}");
    let ok = env.items(&["list", "--job", "ok"])[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let list = |items: Value| json!({"items": [items], "total": "number"});

    assert_eq!(shape_of(&env, &["list", "--job", "ok"]), list(job_shape()));
    assert_eq!(
        shape_of(&env, &["list", "--scheduled"]),
        list(json!({
            "definition": "string", "schedule": "string", "timezone": "string",
            "description": "string", "next_tick_at": "time", "last_tick_at": "time",
            "missed_ticks": "number", "last_missed_tick_at": "null",
        }))
    );
    let mut shown = job_shape();
    shown["attempt_history"] = json!([{
        "run": "number", "started_at": "time", "finished_at": "time",
        "exit_code": "number", "outcome": "string", "error": "null", "output_bytes": "number",
        "worker": "string", "host": "string",
    }]);
    shown["waiting_for"] = json!([]);
    assert_eq!(shape_of(&env, &["show", &ok]), shown);
    assert_eq!(
        shape_of(&env, &["logs", &ok]),
        json!({"id": "string", "attempt": "number", "output": "string"})
    );
    let mut dead = job_shape();
    dead["last_error"] = json!("string");
    assert_eq!(shape_of(&env, &["dlq", "list"]), list(dead));
    assert_eq!(
        shape_of(&env, &["dlq", "stats"]),
        list(
            json!({"queue": "string", "exit_code": "number", "count": "number", "newest_at": "time"})
        )
    );
    let counts = json!({
        "pending": "number", "processing": "number", "completed": "number",
        "failed": "number", "dead": "number", "cancelled": "number",
    });
    let queue = json!({
        "name": "string", "workers": "number", "paused": "bool", "paused_at": "null",
        "counts": counts,
    });
    assert_eq!(shape_of(&env, &["queue", "list"]), list(queue.clone()));
    assert_eq!(
        shape_of(&env, &["config", "get", "settings.lease"]),
        json!({"key": "string", "value": "string"})
    );
    assert_eq!(
        shape_of(&env, &["config", "list"]),
        list(json!({"key": "string", "value": "string", "source": "string"}))
    );
    assert_eq!(
        shape_of(&env, &["wait", &ok]),
        list(
            json!({"id": "string", "state": "string", "exit_code": "number", "attempts": "number"})
        )
    );
    assert_eq!(
        shape_of(&env, &["enqueue", "--dry-run", "true"]),
        list(json!({
            "id": "string", "command": "string", "definition": "null", "origin": "string",
            "queue": "string", "priority": "number", "max_retries": "number",
            "backoff_base": "number", "max_delay_ms": "null", "jitter": "bool",
            "no_retry_exit_codes": [], "timeout_ms": "null", "env": [], "cwd": "string",
            "run_at": "time", "created_at": "time", "spec_hash": "null",
            "source_commit": "null", "after": [], "tick_at": "null",
        }))
    );
    assert_eq!(
        shape_of(&env, &["enqueue", "--delay", "1h", "sleep 1"]),
        list(json!({"id": "string", "queue": "string", "run_at": "time"}))
    );
    assert_eq!(
        shape_of(&env, &["queue", "pause", "default"]),
        list(json!({"queue": "string", "paused": "bool", "changed": "bool"}))
    );

    // A live worker: `worker status` and `status` show the same object.
    let _worker = env.worker(&["--count", "1", "--queue", "other"]);
    wait_until("the worker registers", || {
        !env.items(&["worker", "status"]).is_empty()
    });
    let worker = json!({
        "id": "string", "pid": "number", "host": "string", "state": "string",
        "pools": [{"queues": ["string"], "slots": "number"}], "slots": "number",
        "busy": "number", "started_at": "time", "heartbeat_at": "time",
        "lease_ms": "number", "jobs": [],
    });
    assert_eq!(shape_of(&env, &["worker", "status"]), list(worker.clone()));
    let mut paused = queue;
    paused["paused"] = json!("bool");
    paused["paused_at"] = json!("time");
    let status = shape_of(&env, &["status"]);
    assert_eq!(status["workers"], json!([worker]));
    assert_eq!(status["totals"], counts);
    assert_eq!(status["queues"], json!([paused]), "{status}");
    assert_eq!(
        status["schedules"],
        shape_of(&env, &["list", "--scheduled"])["items"]
    );
}

/// `run --json` and `worker start --json`: JSON Lines, each event with its
/// kind and time, the last a summary; `logs --follow --json`: JSON Lines.
#[test]
fn event_streams_are_json_lines_with_times() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[retry.default]\nmax_retries = 1\nbackoff_base = 1\n\
         [jobs.flaky]\ncommand = \"if [ -f once ]; then echo second; else touch once; echo first; printf partial; exit 1; fi\"\n",
    );
    let (code, output) = env.spawn(&["--json", "run", "--until-idle"]).wait();
    assert_eq!(code, Some(0), "{output}");
    let events: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for event in &events {
        check_times(event, "run");
        assert!(event["event"].is_string(), "{event}");
        assert!(event["timestamp"].as_str().is_some_and(is_time), "{event}");
    }
    let finished: Vec<&Value> = events.iter().filter(|e| e["event"] == "finished").collect();
    assert_eq!(finished.len(), 2, "{output}");
    assert!(finished[0]["retry_at"].as_str().is_some_and(is_time));
    assert!(finished[0]["duration_ms"].is_u64(), "{}", finished[0]);
    assert_eq!(
        shape(events.last().expect("a summary")),
        json!({
            "event": "string", "timestamp": "time", "completed": "number", "dead": "number",
            "retrying": "number", "cancelled": "number", "dead_ids": [], "flaky_ids": ["string"],
            "elapsed_ms": "number", "exit_code": "number",
        })
    );

    let id = env.items(&["list"])[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let out = env
        .cmd(["--json", "logs", "--follow", "--attempt", "1", &id])
        .output()
        .expect("logs");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["line"].as_str()).collect();
    assert_eq!(texts, ["first", "partial"], "{lines:?}");
    assert_eq!(
        shape(&lines[0]),
        json!({"event": "string", "id": "string", "attempt": "number", "timestamp": "time", "line": "string"})
    );
    let end = lines.last().expect("an end");
    assert_eq!(end["event"], "end", "{end}");
    assert_eq!(end["state"], "completed", "{end}");
    assert_eq!(
        shape(end),
        json!({"event": "string", "id": "string", "state": "string", "exit_code": "number", "attempts": "number", "timestamp": "time"})
    );
}
