//! Parsing and validating a jobfile: each section entry is deserialized on
//! its own by the strict serde model, so every entry's first problem is
//! reported, not only the file's first; then cross-field checks (queues,
//! policies, `after`, schedules, globs) run on what parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::model::{
    JobSpec, Missed, OnBusy, Overlap, QueueSpec, RetryRef, RetrySpec, SettingsSpec, WatchSpec,
};
use super::{
    DEFAULT_DEBOUNCE, DEFAULT_KEEP_FINISHED, DEFAULT_LEASE, DEFAULT_LOG_MAX_BYTES, DEFAULT_POLICY,
    DEFAULT_QUEUE, Diagnostic, Diagnostics, JobDef, Jobfile, MIN_LEASE, Schedule, Settings,
    Trigger, Watch,
};
use crate::retry::RetryPolicy;

/// The most jobs of one queue that may run at once, and the most worker
/// slots one process runs.
pub const MAX_WORKERS: u32 = 1024;

const SECTIONS: &[&str] = &["settings", "queues", "retry", "jobs"];

/// Parses and validates `text`, the contents of the jobfile at `path`.
pub fn parse(text: &str, path: &Path) -> Result<Jobfile, Diagnostics> {
    let mut v = Validator {
        text,
        items: Vec::new(),
    };
    let jobfile = v.jobfile(path);
    if v.items.is_empty()
        && let Some(jobfile) = jobfile
    {
        return Ok(jobfile);
    }
    v.items.sort_by_key(|d| (d.line, d.column));
    v.items.dedup();
    Err(Diagnostics {
        file: path.to_path_buf(),
        items: v.items,
    })
}

struct Validator<'t> {
    text: &'t str,
    items: Vec<Diagnostic>,
}

/// A parsed entry of a section, with the span of its key.
struct Entry<T> {
    name: String,
    span: std::ops::Range<usize>,
    spec: T,
}

impl Validator<'_> {
    fn error(
        &mut self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, column) = position(self.text, span.start);
        self.items.push(Diagnostic {
            line,
            column,
            message: message.into(),
            hint,
        });
    }

    fn jobfile(&mut self, path: &Path) -> Option<Jobfile> {
        let root = match DeTable::parse(self.text) {
            Ok(root) => root,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.error(
                    span,
                    format!("invalid TOML: {}", e.message().trim_end()),
                    None,
                );
                return None;
            }
        };
        let mut settings = None;
        let mut settings_span = 0..0;
        let mut queues = Vec::new();
        let mut policies = Vec::new();
        let mut jobs = Vec::new();
        let mut declared = BTreeSet::new();
        for (key, value) in root.get_ref() {
            let section = key.get_ref().as_ref();
            match section {
                "settings" => {
                    settings_span = key.span();
                    settings = self.section::<SettingsSpec>(value, "[settings]");
                }
                "queues" => queues = self.entries::<QueueSpec>(value, "queues"),
                "retry" => policies = self.entries::<RetrySpec>(value, "retry"),
                "jobs" => {
                    // Every job the file declares, also those whose table
                    // has a problem: `after` may name them.
                    if let Some(table) = value.get_ref().as_table() {
                        declared = table.keys().map(|k| k.get_ref().to_string()).collect();
                    }
                    jobs = self.entries::<JobSpec>(value, "jobs");
                }
                other => {
                    let hint = did_you_mean(other, SECTIONS.iter().copied()).or_else(|| {
                        Some(format!("sections are {}", quoted(SECTIONS.iter().copied())))
                    });
                    self.error(key.span(), format!("unknown section `{other}`"), hint);
                }
            }
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let settings = self.settings(settings.unwrap_or_default(), settings_span, &dir);
        let queues = self.queues(queues);
        let retry = self.policies(policies);
        let jobs = self.jobs(jobs, &declared, &queues, &retry, settings.timeout);
        Some(Jobfile {
            path: path.to_path_buf(),
            dir,
            settings,
            queues,
            retry,
            jobs,
        })
    }

    /// Deserializes one table with the strict model, reporting its problem.
    ///
    /// Every problem of the table is reported, not only the first: after a
    /// problem, the key at fault is left out and the table deserialized
    /// again, until it parses or a problem names no key (a missing one).
    /// A table with a problem yields nothing, so that no check runs on
    /// what is left of it (no cascade of false errors).
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        name: &str,
    ) -> Option<T> {
        let mut value = value.clone();
        let mut failed = false;
        // Keys an unknown key was taken for (`comand`: `command`): that
        // they are missing is no news.
        let mut suggested: Vec<String> = Vec::new();
        // A table has fewer keys than this; each pass drops one.
        for _ in 0..256 {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(spec) => return (!failed).then_some(spec),
                Err(e) => e,
            };
            failed = true;
            let span = e.span().unwrap_or_else(|| value.span());
            let (message, hint) = humanize(e.message(), name);
            let missing = e
                .message()
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field);
            if missing.is_some_and(|field| suggested.iter().any(|s| s == field)) {
                return None;
            }
            if let Some(suggestion) = hint
                .as_deref()
                .and_then(|h| h.strip_prefix("did you mean `"))
                .and_then(|rest| rest.split_once('`'))
            {
                suggested.push(suggestion.0.to_string());
            }
            self.error(span.clone(), message, hint);
            let unknown = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field.to_string());
            let DeValue::Table(table) = value.get_mut() else {
                return None;
            };
            let at_fault = table
                .iter()
                .find(|(key, field)| match &unknown {
                    Some(field_name) => key.get_ref().as_ref() == field_name.as_str(),
                    None => key.span().contains(&span.start) || field.span().contains(&span.start),
                })
                .map(|(key, _)| key.clone());
            match at_fault {
                Some(key) => {
                    table.remove(&key);
                }
                None => return None,
            }
        }
        None
    }

    /// Deserializes each entry of a section of named tables.
    fn entries<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        section: &str,
    ) -> Vec<Entry<T>> {
        let Some(table) = value.get_ref().as_table() else {
            self.error(
                value.span(),
                format!("`{section}` must be a table of named tables, like [{section}.NAME]"),
                None,
            );
            return Vec::new();
        };
        let mut entries = Vec::new();
        for (key, value) in table {
            let name = key.get_ref().to_string();
            if let Err(why) = check_name(&name) {
                self.error(
                    key.span(),
                    format!("invalid name `{name}` in [{section}]: {why}"),
                    None,
                );
                continue;
            }
            if let Some(spec) = self.section::<T>(value, &format!("[{section}.{name}]")) {
                entries.push(Entry {
                    name,
                    span: key.span(),
                    spec,
                });
            }
        }
        entries
    }

    fn settings(
        &mut self,
        spec: SettingsSpec,
        span: std::ops::Range<usize>,
        dir: &Path,
    ) -> Settings {
        if spec.timeout.is_some_and(|t| t.0.is_zero()) {
            self.error(
                span.clone(),
                "`settings.timeout` is 0s: every job would time out before it starts",
                Some("leave `timeout` out for no default time limit".into()),
            );
        }
        let lease = spec.lease.map_or(DEFAULT_LEASE, |d| d.0);
        if lease < MIN_LEASE {
            self.error(
                span,
                format!(
                    "`settings.lease` is {}: a lease is at least 1s",
                    crate::duration::human(lease)
                ),
                Some("workers heartbeat ten times a lease; `30s` is the default".into()),
            );
        }
        Settings {
            // A URL names a server, not a file beside the jobfile.
            db: spec.db.map(|db| {
                if crate::driver::postgres::url::is_url(&db) {
                    db.into()
                } else {
                    dir.join(db)
                }
            }),
            keep_finished: spec.keep_finished.map_or(DEFAULT_KEEP_FINISHED, |d| d.0),
            dlq_max_jobs: spec.dlq_max_jobs.unwrap_or(crate::runtime::DLQ_MAX_JOBS),
            dlq_max_age: spec
                .dlq_max_age
                .map_or(crate::runtime::DLQ_MAX_AGE, |d| d.0),
            log_max_bytes: spec.log_max_bytes.map_or(DEFAULT_LOG_MAX_BYTES, |b| b.0),
            lease,
            timeout: spec.timeout.map(|t| t.0),
        }
    }

    fn queues(&mut self, entries: Vec<Entry<QueueSpec>>) -> BTreeMap<String, u32> {
        let cpus = std::thread::available_parallelism()
            .map_or(1, |n| n.get() as u32)
            .min(MAX_WORKERS);
        let mut queues = BTreeMap::from([(DEFAULT_QUEUE.to_string(), cpus)]);
        for entry in entries {
            let default = if entry.name == DEFAULT_QUEUE { cpus } else { 1 };
            let workers = entry.spec.workers.unwrap_or(default);
            if workers == 0 {
                self.error(
                    entry.span,
                    format!(
                        "`queues.{}.workers` is 0: a queue needs at least 1 worker",
                        entry.name
                    ),
                    Some("remove the queue, or give it `workers = 1`".into()),
                );
            } else if workers > MAX_WORKERS {
                self.error(
                    entry.span,
                    format!(
                        "`queues.{}.workers` is {workers}: at most {MAX_WORKERS} jobs of a queue run at once",
                        entry.name
                    ),
                    Some("a worker is a thread and a process; more than that only queue on the CPU".into()),
                );
            }
            queues.insert(entry.name, workers);
        }
        queues
    }

    fn policies(&mut self, entries: Vec<Entry<RetrySpec>>) -> BTreeMap<String, RetryPolicy> {
        let builtin = RetryPolicy::default();
        let default_spec = entries
            .iter()
            .find(|e| e.name == DEFAULT_POLICY)
            .map(|e| (e.spec.clone(), e.span.clone()));
        let default = match &default_spec {
            Some((spec, span)) => self.policy(
                spec,
                &builtin,
                span.clone(),
                &format!("retry.{DEFAULT_POLICY}"),
            ),
            None => builtin,
        };
        let mut policies = BTreeMap::from([(DEFAULT_POLICY.to_string(), default.clone())]);
        for entry in entries.into_iter().filter(|e| e.name != DEFAULT_POLICY) {
            let policy = self.policy(
                &entry.spec,
                &default,
                entry.span,
                &format!("retry.{}", entry.name),
            );
            policies.insert(entry.name, policy);
        }
        policies
    }

    /// A policy from its spec; what it leaves out comes from `base`.
    fn policy(
        &mut self,
        spec: &RetrySpec,
        base: &RetryPolicy,
        span: std::ops::Range<usize>,
        key: &str,
    ) -> RetryPolicy {
        let backoff_base = spec.backoff_base.unwrap_or(base.backoff_base);
        if !(backoff_base.is_finite() && backoff_base >= 1.0) {
            self.error(
                span,
                format!("`{key}.backoff_base` is {backoff_base}: it must be a number >= 1"),
                Some("1 retries at a steady 1 s; 2 doubles the wait each time".into()),
            );
        }
        RetryPolicy {
            max_retries: spec.max_retries.unwrap_or(base.max_retries),
            backoff_base,
            max_delay_ms: spec
                .max_delay
                .map(|d| crate::duration::as_millis_i64(d.0))
                .or(base.max_delay_ms),
            jitter: spec.jitter.unwrap_or(base.jitter),
            no_retry_exit_codes: spec
                .no_retry_exit_codes
                .clone()
                .unwrap_or_else(|| base.no_retry_exit_codes.clone()),
        }
    }

    fn jobs(
        &mut self,
        entries: Vec<Entry<JobSpec>>,
        names: &BTreeSet<String>,
        queues: &BTreeMap<String, u32>,
        policies: &BTreeMap<String, RetryPolicy>,
        default_timeout: Option<std::time::Duration>,
    ) -> BTreeMap<String, JobDef> {
        let mut jobs = BTreeMap::new();
        let mut after_spans = BTreeMap::new();
        // Each job's `after` names with their positions, to check once
        // every job's trigger is known.
        let mut dependencies: Vec<(String, String, std::ops::Range<usize>)> = Vec::new();
        for entry in entries {
            let key = format!("jobs.{}", entry.name);
            let spec = entry.spec;
            if spec.command.trim().is_empty() {
                self.error(
                    entry.span.clone(),
                    format!("`{key}.command` is empty"),
                    None,
                );
            }
            if let Err(why) = crate::job::check_command(&spec.command) {
                self.error(entry.span.clone(), format!("`{key}.command` {why}"), None);
            }
            if spec.timeout.is_some_and(|t| t.0.is_zero()) {
                self.error(
                    entry.span.clone(),
                    format!("`{key}.timeout` is 0s: the job would time out before it starts"),
                    Some("leave `timeout` out for no time limit".into()),
                );
            }
            let queue = match spec.queue {
                Some(queue) if !queues.contains_key(queue.get_ref()) => {
                    let hint = did_you_mean(queue.get_ref(), queues.keys().map(String::as_str))
                        .unwrap_or_else(|| format!("declare it with [queues.{}]", queue.get_ref()));
                    self.error(
                        queue.span(),
                        format!("unknown queue `{}` in `{key}.queue`", queue.get_ref()),
                        Some(hint),
                    );
                    DEFAULT_QUEUE.to_string()
                }
                Some(queue) => queue.into_inner(),
                None => DEFAULT_QUEUE.to_string(),
            };
            let default = policies.get(DEFAULT_POLICY).cloned().unwrap_or_default();
            let retry = match spec.retry {
                None => default,
                Some(RetryRef::Named(name)) => match policies.get(name.get_ref()) {
                    Some(policy) => policy.clone(),
                    None => {
                        let hint =
                            did_you_mean(name.get_ref(), policies.keys().map(String::as_str))
                                .unwrap_or_else(|| {
                                    format!("declare it with [retry.{}]", name.get_ref())
                                });
                        self.error(
                            name.span(),
                            format!("unknown retry policy `{}` in `{key}.retry`", name.get_ref()),
                            Some(hint),
                        );
                        default
                    }
                },
                Some(RetryRef::Inline(inline)) => self.policy(
                    &inline,
                    &default,
                    entry.span.clone(),
                    &format!("{key}.retry"),
                ),
            };
            let mut env = Vec::new();
            for (name, value) in spec.env.unwrap_or_default() {
                if name.starts_with(crate::job::names::RESERVED_ENV) {
                    self.error(
                        entry.span.clone(),
                        format!("`{key}.env.{name}`: names starting with QUEUECTL_ are queuectl's own"),
                        Some("queuectl sets QUEUECTL_JOB_ID, QUEUECTL_ATTEMPT, QUEUECTL_SCHEDULED_AT, QUEUECTL_CHANGED, …; pick another name".into()),
                    );
                }
                if !is_env_name(&name) {
                    self.error(
                        entry.span.clone(),
                        format!("invalid environment variable name `{name}` in `{key}.env`"),
                        Some("use letters, digits and `_`, not starting with a digit".into()),
                    );
                }
                if let Err(why) = crate::job::template::expand_env(&value, |_| Some(String::new()))
                {
                    self.error(
                        entry.span.clone(),
                        format!("`{key}.env.{name}`: {why}"),
                        None,
                    );
                }
                env.push((name, value));
            }
            if let Err((name, why)) = crate::job::check_env(&env) {
                let what = name.map_or(format!("`{key}.env`"), |n| format!("`{key}.env.{n}`"));
                self.error(entry.span.clone(), format!("{what} {why}"), None);
            }
            let after: Vec<String> = spec
                .after
                .unwrap_or_default()
                .into_iter()
                .map(|dep| {
                    dependencies.push((key.clone(), dep.get_ref().clone(), dep.span()));
                    if !names.contains(dep.get_ref()) {
                        let hint = did_you_mean(dep.get_ref(), names.iter().map(String::as_str));
                        self.error(
                            dep.span(),
                            format!(
                                "`{key}.after` names `{}`, which is not a job in this file",
                                dep.get_ref()
                            ),
                            hint,
                        );
                    }
                    dep.into_inner()
                })
                .collect();
            after_spans.insert(entry.name.clone(), entry.span.clone());
            let trigger = self.trigger(
                &key,
                entry.span.clone(),
                spec.schedule,
                spec.timezone,
                spec.overlap,
                spec.missed,
                spec.watch,
                spec.on_busy,
            );
            let sources = spec.sources.unwrap_or_default();
            if !sources.is_empty() && trigger != Trigger::Once {
                self.error(
                    entry.span.clone(),
                    format!("`{key}.sources` applies only to a one-shot job"),
                    Some("a scheduled job runs at its ticks, a watched one on changes of its `watch` paths".into()),
                );
            }
            for glob in &sources {
                self.check_glob(entry.span.clone(), &format!("{key}.sources"), glob);
            }
            jobs.insert(
                entry.name.clone(),
                JobDef {
                    name: entry.name,
                    command: spec.command,
                    queue,
                    retry,
                    timeout: spec.timeout.map(|t| t.0).or(default_timeout),
                    priority: spec.priority.unwrap_or(0),
                    env,
                    cwd: spec.cwd.unwrap_or_default(),
                    after,
                    trigger,
                    sources,
                    inputs: None,
                    line: position(self.text, entry.span.start).0,
                },
            );
        }
        // A job cannot wait for one that only a trigger runs: it would wait
        // until the first tick or change, and a `--until-idle` run forever.
        for (key, dep, span) in dependencies {
            let runs_on = match jobs.get(&dep).map(|d: &JobDef| &d.trigger) {
                Some(Trigger::Schedule(_)) => "a schedule",
                Some(Trigger::Watch(_)) => "file changes",
                _ => continue,
            };
            self.error(
                span,
                format!("`{key}.after` names `{dep}`, which runs on {runs_on}"),
                Some("`after` waits for one-shot jobs only; put the two in one job's command, or give this one its own trigger".into()),
            );
        }
        for cycle in find_cycles(&jobs) {
            let span = after_spans.get(&cycle[0]).cloned().unwrap_or(0..0);
            self.error(
                span,
                format!("`after` forms a cycle: {}", cycle.join(" -> ")),
                Some("a job cannot wait for itself, even through others".into()),
            );
        }
        jobs
    }

    /// A glob of `watch` or `sources`: it compiles, and stays inside the
    /// jobfile's directory.
    fn check_glob(&mut self, span: std::ops::Range<usize>, key: &str, glob: &str) {
        if let Err(e) = globset::Glob::new(glob) {
            self.error(
                span.clone(),
                format!("invalid glob `{glob}` in `{key}`: {}", e.kind()),
                None,
            );
        }
        if Path::new(glob).is_absolute() || glob.split('/').any(|part| part == "..") {
            self.error(
                span,
                format!("glob `{glob}` in `{key}` leaves the jobfile's directory"),
                Some(format!(
                    "{} globs are relative to the jobfile's directory",
                    key.rsplit('.').next().unwrap_or(key)
                )),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn trigger(
        &mut self,
        key: &str,
        span: std::ops::Range<usize>,
        schedule: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        overlap: Option<Overlap>,
        missed: Option<Missed>,
        watch: Option<WatchSpec>,
        on_busy: Option<OnBusy>,
    ) -> Trigger {
        if schedule.is_some() && watch.is_some() {
            self.error(
                span.clone(),
                format!("`{key}` has both `schedule` and `watch`"),
                Some("a job runs on a schedule or on file changes: split it into two jobs".into()),
            );
        }
        if schedule.is_none() {
            for (field, set) in [
                ("timezone", timezone.is_some()),
                ("overlap", overlap.is_some()),
                ("missed", missed.is_some()),
            ] {
                if set {
                    self.error(
                        span.clone(),
                        format!("`{key}.{field}` applies only to a job with a `schedule`"),
                        None,
                    );
                }
            }
        }
        if watch.is_none() && on_busy.is_some() {
            self.error(
                span.clone(),
                format!("`{key}.on_busy` applies only to a job with a `watch`"),
                None,
            );
        }
        if let Some(expression) = schedule {
            if let Err(e) = crate::trigger::cron::parse_cron(expression.get_ref()) {
                self.error(expression.span(), format!("invalid schedule `{}` in `{key}.schedule`: {e}", expression.get_ref()), Some("write 5 fields (`0 2 * * *`), 6 with seconds first, or a macro like `@daily`".into()));
            }
            let timezone = timezone.and_then(|tz| {
                let name = tz.get_ref();
                if name.eq_ignore_ascii_case("local") {
                    return None;
                }
                if jiff::tz::TimeZone::get(name).is_err() {
                    self.error(
                        tz.span(),
                        format!("unknown time zone `{name}` in `{key}.timezone`"),
                        Some("use an IANA name like `Europe/Berlin`, `UTC`, or `local`".into()),
                    );
                }
                Some(name.clone())
            });
            return Trigger::Schedule(Schedule {
                expression: expression.into_inner(),
                timezone,
                overlap: overlap.unwrap_or(Overlap::Skip),
                missed: missed.unwrap_or(Missed::RunOnce),
            });
        }
        if let Some(watch) = watch {
            let (paths, ignore, debounce, per_file, ignore_files) = match watch {
                WatchSpec::Paths(paths) => (paths, Vec::new(), DEFAULT_DEBOUNCE, false, true),
                WatchSpec::Table(t) => (
                    t.paths,
                    t.ignore,
                    t.debounce.map_or(DEFAULT_DEBOUNCE, |d| d.0),
                    t.per_file,
                    t.ignore_files.unwrap_or(true),
                ),
            };
            if paths.is_empty() {
                self.error(span.clone(), format!("`{key}.watch` has no paths"), None);
            }
            for glob in paths.iter().chain(&ignore) {
                self.check_glob(span.clone(), &format!("{key}.watch"), glob);
            }
            return Trigger::Watch(Watch {
                paths,
                ignore,
                debounce,
                per_file,
                ignore_files,
                on_busy: on_busy.unwrap_or(OnBusy::Queue),
            });
        }
        Trigger::Once
    }
}

/// Names of jobs, queues and policies: the rules of [`crate::job::names`].
fn check_name(name: &str) -> Result<(), &'static str> {
    match crate::job::names::name_problem(name) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

use crate::job::names::is_env_name;

/// Each `after` cycle once, as the path of names that closes it.
fn find_cycles(jobs: &BTreeMap<String, JobDef>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        name: &str,
        jobs: &BTreeMap<String, JobDef>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        marks.insert(name.to_string(), Mark::Active);
        stack.push(name.to_string());
        for dep in jobs
            .get(name)
            .map(|j| j.after.as_slice())
            .unwrap_or_default()
        {
            match marks.get(dep).copied().unwrap_or(Mark::New) {
                Mark::Active => {
                    let start = stack.iter().position(|n| n == dep).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(dep.clone());
                    cycles.push(cycle);
                }
                Mark::New if jobs.contains_key(dep) => visit(dep, jobs, marks, stack, cycles),
                _ => {}
            }
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut cycles = Vec::new();
    for name in jobs.keys() {
        if marks.get(name).copied().unwrap_or(Mark::New) == Mark::New {
            visit(name, jobs, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

/// Rewrites serde's messages in the jobfile's terms, with a "did you mean".
fn humanize(message: &str, table: &str) -> (String, Option<String>) {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known = backticked(expected);
        let hint = did_you_mean(field, known.iter().map(String::as_str)).or_else(|| {
            Some(format!(
                "known keys: {}",
                quoted(known.iter().map(String::as_str))
            ))
        });
        return (format!("unknown key `{field}` in {table}"), hint);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once('`')
    {
        let known = backticked(expected);
        let hint = did_you_mean(value, known.iter().map(String::as_str)).or_else(|| {
            Some(format!(
                "one of {}",
                quoted(known.iter().map(String::as_str))
            ))
        });
        return (format!("invalid value `{value}` in {table}"), hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (format!("missing key `{field}` in {table}"), None);
    }
    if message.starts_with("invalid duration") {
        let hint = "write a duration like `500ms`, `30s`, `10m`, `2h` or `7d`";
        return (format!("{message} in {table}"), Some(hint.into()));
    }
    if message.contains("expected u32") || message.contains("expected u64") {
        return (
            format!("{message} in {table}"),
            Some("use a whole number, 0 or more".into()),
        );
    }
    (format!("{message} in {table}"), None)
}

/// The names between backticks in "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "did you mean `x`?" when a candidate is close to `wrong`.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
