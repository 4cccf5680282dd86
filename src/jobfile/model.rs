//! The serde model of `queuectl.toml`, exactly as written: strict (unknown
//! keys are errors), with doc comments that become the JSON Schema's
//! descriptions. [`super::validate`] turns it into the domain types.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A queuectl jobfile: jobs (shell commands), the queues that run them,
/// retry policies, cron schedules and file-watch triggers.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "queuectl.toml")]
pub struct JobfileSpec {
    /// Settings of the queue itself.
    #[serde(default)]
    pub settings: SettingsSpec,
    /// Queues by name, with how many jobs of each run at once. A queue
    /// `default` always exists.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueSpec>,
    /// Retry policies by name. `default` is the policy a job gets unless it
    /// names another; named policies take what they leave out from it.
    #[serde(default)]
    pub retry: BTreeMap<String, RetrySpec>,
    /// Job definitions by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobSpec>,
}

/// `[settings]`
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsSpec {
    /// The queue database, relative to the jobfile's directory.
    /// Default: `.queuectl/queue.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Completed and cancelled jobs older than this are pruned by workers.
    /// Default: `7d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_finished: Option<HumanDuration>,
    /// The dead letter queue keeps at most this many jobs; workers delete
    /// the oldest beyond it. Default: `10000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_max_jobs: Option<u64>,
    /// Dead jobs older than this are deleted by workers. Default: `30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_max_age: Option<HumanDuration>,
    /// The most output kept per attempt (the tail), e.g. `1MiB`. Default: `1MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_max_bytes: Option<ByteSize>,
    /// The timeout of a job that sets none (in the jobfile or when
    /// enqueued), e.g. `10m`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// How long a worker may stay silent (no heartbeat) before another
    /// declares it dead and rescues its running jobs, at least `1s`.
    /// Default: `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<HumanDuration>,
}

/// `[queues.NAME]`
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// How many jobs of this queue run at once. Default: the number of CPUs
    /// for `default`, 1 for other queues.
    #[schemars(range(min = 1))]
    pub workers: Option<u32>,
}

/// `[retry.NAME]`, or an inline `retry = { … }` on a job.
#[derive(Debug, Default, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first attempt. Default: 3.
    pub max_retries: Option<u32>,
    /// Retry n waits `backoff_base ^ n` seconds; any number >= 1. Default: 2.
    #[schemars(range(min = 1.0))]
    pub backoff_base: Option<f64>,
    /// The longest wait between attempts, e.g. `10m`. Default: none.
    pub max_delay: Option<HumanDuration>,
    /// Wait a random time in `[0, computed delay]` instead. Default: false.
    pub jitter: Option<bool>,
    /// Exit codes that go straight to the dead letter queue. Default: none.
    pub no_retry_exit_codes: Option<Vec<i32>>,
}

/// `[jobs.NAME]`: a one-shot job, a scheduled one (`schedule`) or a watched
/// one (`watch`).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The shell command, run with `sh -c`.
    pub command: String,
    /// The queue that runs it. Default: `default`.
    #[schemars(with = "Option<String>")]
    pub queue: Option<Spanned<String>>,
    /// A named retry policy, or an inline one. Default: `default`.
    pub retry: Option<RetryRef>,
    /// Kill the job's whole process group after this long, e.g. `10m`; counts
    /// as a failure (exit 124).
    pub timeout: Option<HumanDuration>,
    /// Higher runs first; FIFO within a priority. Default: 0.
    pub priority: Option<i64>,
    /// Environment variables; `${NAME}` is read from the runner's
    /// environment when the job starts and is never stored.
    pub env: Option<BTreeMap<String, String>>,
    /// The working directory, relative to the jobfile's directory.
    pub cwd: Option<String>,
    /// The inputs of a one-shot job: globs relative to the jobfile's
    /// directory (`src/**/*.rs`, `Cargo.lock`). Their content is part of
    /// the job's spec: when a file they match changes, appears or goes,
    /// the job runs again, and so do the jobs that wait for it.
    pub sources: Option<Vec<String>>,
    /// Jobs whose latest run must have completed before this one starts.
    #[schemars(with = "Option<Vec<String>>")]
    pub after: Option<Vec<Spanned<String>>>,
    /// A cron schedule: 5 fields (`0 2 * * *`), 6 or 7 with seconds first,
    /// or a macro (`@hourly`, `@daily`, …).
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// The schedule's time zone: an IANA name (`Europe/Berlin`), `UTC` or
    /// `local`. Default: local time.
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// When a tick comes while the last run is still pending or running.
    /// Default: `skip`.
    pub overlap: Option<Overlap>,
    /// Ticks missed while nothing was running. Default: `run-once`.
    pub missed: Option<Missed>,
    /// Paths whose changes enqueue this job.
    pub watch: Option<WatchSpec>,
    /// A change while a run of this job is going. Default: `queue`.
    pub on_busy: Option<OnBusy>,
}

/// `overlap`: what a scheduled tick does while the last run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// Drop the tick.
    Skip,
    /// Enqueue anyway.
    Allow,
    /// Cancel the pending run, or stop the running one, and enqueue the tick.
    Replace,
}

/// `missed`: ticks that fell while no `queuectl run` was up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// One catch-up run for all of them.
    RunOnce,
    /// None.
    Skip,
}

/// `on_busy`: a change while a run of this job is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnBusy {
    /// One follow-up run.
    Queue,
    /// Ignore the change.
    Skip,
    /// Stop the running job (not counted as a failure) and run again.
    Restart,
}

/// `retry`: the name of a policy, or an inline policy.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryRef {
    /// A policy of `[retry.NAME]`.
    Named(#[schemars(with = "String")] Spanned<String>),
    /// An inline policy.
    Inline(RetrySpec),
}

impl<'de> Deserialize<'de> for RetryRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Spanned needs the deserializer itself, so look at the shape first
        // through an intermediate that keeps the span.
        let value: Spanned<toml::Value> = Spanned::deserialize(deserializer)?;
        let span = value.span();
        match value.into_inner() {
            toml::Value::String(name) => Ok(RetryRef::Named(Spanned::new(span, name))),
            toml::Value::Table(table) => RetrySpec::deserialize(toml::Value::Table(table))
                .map(RetryRef::Inline)
                .map_err(|e| de::Error::custom(e.message())),
            other => Err(de::Error::custom(format!(
                "invalid type: {}, expected a policy name or a table like {{ max_retries = 5 }}",
                other.type_str()
            ))),
        }
    }
}

/// `watch`: a list of globs, or a table.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum WatchSpec {
    /// Globs relative to the jobfile's directory.
    Paths(Vec<String>),
    /// Globs with options.
    Table(WatchTable),
}

/// `watch = { paths = [...], … }`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchTable {
    /// Globs relative to the jobfile's directory, e.g. `src/**/*.rs`.
    pub paths: Vec<String>,
    /// Globs to leave out. `.git/`, `target/` and `.queuectl/` always are.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// How long changes are gathered into one batch. Default: `300ms`.
    pub debounce: Option<HumanDuration>,
    /// One job per changed path (`QUEUECTL_PATH`) instead of one per batch
    /// (`QUEUECTL_CHANGED`). Default: false.
    #[serde(default)]
    pub per_file: bool,
    /// Leave out changes of paths that the repository's ignore files
    /// ignore: `.gitignore` files, `.git/info/exclude` and git's global
    /// excludes (inside a git repository), and `.ignore` files. A glob's
    /// literal leading directories are watched even when ignored
    /// (`build/**`). `false` counts every change. Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_files: Option<bool>,
}

impl<'de> Deserialize<'de> for WatchSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WatchVisitor;
        impl<'de> Visitor<'de> for WatchVisitor {
            type Value = WatchSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of globs or a table with `paths`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WatchSpec, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(WatchSpec::Paths)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WatchSpec, A::Error> {
                WatchTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WatchSpec::Table)
            }
        }
        deserializer.deserialize_any(WatchVisitor)
    }
}

/// The `examples` of the schema's durations: each is valid for queuectl
/// (a test feeds them to both).
pub const DURATION_EXAMPLES: [&str; 8] = [
    "30s",
    "10m",
    "2h",
    "7d",
    "500ms",
    "1h30m",
    "1.5s",
    "1 hour 30 minutes",
];

/// A duration written as a string: `300ms`, `30s`, `10m`, `2h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        format!("{}ms", d.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"30s\", \"10m\" or \"2h\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                crate::duration::parse(text, "a duration")
                    .map(HumanDuration)
                    .map_err(|e| E::custom(e.to_string().replace(" for a duration", "")))
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit, e.g. \"30s\", \"10m\", \"1.5h\"; \
                several add up (\"1h30m\", \"1h 30m\"). Units: ms, s, m, h, d, w, or \
                their long names (secs, mins, hours, days, weeks…). At most 100 years.",
            "pattern": crate::duration::pattern(),
            "examples": DURATION_EXAMPLES
        })
    }
}

/// A size in bytes: an integer, or a string with a unit (`512KiB`, `1MiB`, `1MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `1MiB`, `512 KB`, `1000`, `2GiB`.
    pub fn parse(text: &str) -> Result<u64, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| {
            format!("invalid size `{text}`: write a size like \"1MiB\" or \"512KB\"")
        })?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "kib" => 1 << 10,
            "mb" | "m" => 1_000_000,
            "mib" => 1 << 20,
            "gb" | "g" => 1_000_000_000,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{text}`: use B, KB, KiB, MB, MiB, GB or GiB"
                ));
            }
        };
        Ok((number * factor as f64) as u64)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"1MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative (got {n})")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                ByteSize::parse(text).map(ByteSize).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a number of bytes, or a string with a unit (B, KB, KiB, MB, MiB, GB, GiB), e.g. \"1MiB\".",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([kKmMgG]i?[bB]?|[bB])?\\s*$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let table = [
            ("1MiB", Ok(1 << 20)),
            ("512 KB", Ok(512_000)),
            ("1000", Ok(1000)),
            ("1.5KiB", Ok(1536)),
        ];
        for (text, expected) in table {
            assert_eq!(ByteSize::parse(text), expected, "{text}");
        }
        assert_eq!(
            ByteSize::parse("3 parsecs"),
            Err(
                "unknown size unit `parsecs` in `3 parsecs`: use B, KB, KiB, MB, MiB, GB or GiB"
                    .into()
            )
        );
    }
}
