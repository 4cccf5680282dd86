//! Editing the jobfile in place for `queuectl config`: toml_edit keeps the
//! comments and layout (inline comments too: a replaced value keeps its
//! decor), and every edit is validated as a whole file before it is
//! written, atomically, over the old one.

use std::io::Write;
use std::path::Path;

use toml_edit::{DocumentMut, Item, Key, Table, Value};

use super::{DEFAULT_POLICY, DEFAULT_QUEUE, Jobfile, parse};
use crate::error::{Error, Result};

/// The seed-style keys, and the names other job queues give them, and
/// where they live.
pub const ALIASES: &[(&str, &str)] = &[
    ("worker_timeout", "settings.timeout"),
    ("worker-timeout", "settings.timeout"),
    ("job_timeout", "settings.timeout"),
    ("timeout", "settings.timeout"),
    ("max_workers", "queues.default.workers"),
    ("max-workers", "queues.default.workers"),
    ("concurrency", "queues.default.workers"),
    ("retries", "retry.default.max_retries"),
    ("backoff", "retry.default.backoff_base"),
    ("max-retries", "retry.default.max_retries"),
    ("max_retries", "retry.default.max_retries"),
    ("backoff-base", "retry.default.backoff_base"),
    ("backoff_base", "retry.default.backoff_base"),
    ("max-delay", "retry.default.max_delay"),
    ("max_delay", "retry.default.max_delay"),
    ("jitter", "retry.default.jitter"),
    ("no-retry-exit-codes", "retry.default.no_retry_exit_codes"),
    ("no_retry_exit_codes", "retry.default.no_retry_exit_codes"),
    ("workers", "queues.default.workers"),
    ("db", "settings.db"),
    ("keep-finished", "settings.keep_finished"),
    ("keep_finished", "settings.keep_finished"),
    ("dlq-max-jobs", "settings.dlq_max_jobs"),
    ("dlq_max_jobs", "settings.dlq_max_jobs"),
    ("dlq-max-age", "settings.dlq_max_age"),
    ("dlq_max_age", "settings.dlq_max_age"),
    ("log-max-bytes", "settings.log_max_bytes"),
    ("log_max_bytes", "settings.log_max_bytes"),
    ("lease", "settings.lease"),
];

pub const RETRY_KEYS: &[&str] = &[
    "max_retries",
    "backoff_base",
    "max_delay",
    "jitter",
    "no_retry_exit_codes",
];
pub const SETTINGS_KEYS: &[&str] = &[
    "db",
    "keep_finished",
    "dlq_max_jobs",
    "dlq_max_age",
    "log_max_bytes",
    "lease",
    "timeout",
];

/// The path a key names: an alias, or a dotted path (`jobs."a.b".priority`).
/// A lone word that is no alias is an error with a "did you mean".
pub fn resolve_key(key: &str) -> Result<Vec<String>> {
    let dotted = ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, path)| path);
    if !dotted.contains('.') {
        let hint = super::did_you_mean(key, ALIASES.iter().map(|(alias, _)| *alias))
            .unwrap_or_else(|| {
                "use `max_retries`, `backoff_base`, `workers`, `timeout`, or a dotted path like `queues.deploy.workers`".into()
            });
        return Err(Error::input_with_hint(
            format!("unknown setting `{key}`"),
            hint,
        ));
    }
    let keys = Key::parse(dotted).map_err(|_| {
        Error::input_with_hint(
            format!("invalid key `{key}`"),
            "use `max-retries`, `backoff_base`, `workers`, or a dotted path like `queues.deploy.workers`",
        )
    })?;
    Ok(keys.iter().map(|k| k.get().to_string()).collect())
}

/// Reads a value as TOML (`5`, `2.5`, `true`, `[2]`, `"x"`), or else as a
/// string. For a duration key a bare number is seconds, as other job
/// queues take it (`worker_timeout 600`), written as a duration (`"10m"`).
pub fn parse_value(path: &[String], text: &str) -> Value {
    let is_duration = matches!(
        path.last().map(String::as_str),
        Some("timeout" | "lease" | "keep_finished" | "dlq_max_age" | "max_delay" | "debounce")
    );
    if is_duration && let Ok(secs) = text.trim().parse::<u64>() {
        return Value::from(crate::duration::human(std::time::Duration::from_secs(secs)));
    }
    text.parse::<Value>().unwrap_or_else(|_| Value::from(text))
}

/// `text` with `path` set to `value`, validated as a jobfile.
pub fn set(text: &str, file: &Path, path: &[String], value: Value) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| Error::input(format!("cannot edit `{}`: {e}", file.display())))?;
    let (last, parents) = path.split_last().ok_or_else(|| Error::input("empty key"))?;
    let mut table: &mut Table = doc.as_table_mut();
    for (depth, segment) in parents.iter().enumerate() {
        let item = table.entry(segment).or_insert_with(|| {
            let mut t = Table::new();
            // `[retry.default]` needs no `[retry]` header of its own.
            t.set_implicit(depth + 1 < parents.len());
            Item::Table(t)
        });
        if let Some(inline) = item.as_inline_table() {
            *item = Item::Table(inline.clone().into_table());
        }
        table = item.as_table_mut().ok_or_else(|| {
            Error::input(format!(
                "`{}` is a value, not a table",
                path[..=depth].join(".")
            ))
        })?;
    }
    let mut value = value;
    if let Some(old) = table.get(last).and_then(Item::as_value) {
        // Keep the comment after the old value, and its spacing.
        *value.decor_mut() = old.decor().clone();
    }
    table.insert(last, Item::Value(value));
    let edited = doc.to_string();
    check(&edited, file, &format!("setting `{}`", path.join(".")))?;
    Ok(edited)
}

/// `text` without the settings, the default queue and the default retry
/// policy: the values `config set` writes, back to their defaults.
pub fn reset(text: &str, file: &Path) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| Error::input(format!("cannot edit `{}`: {e}", file.display())))?;
    doc.remove("settings");
    for (section, name) in [("queues", DEFAULT_QUEUE), ("retry", DEFAULT_POLICY)] {
        if let Some(table) = doc.get_mut(section).and_then(Item::as_table_like_mut) {
            table.remove(name);
            if table.is_empty() {
                doc.remove(section);
            }
        }
    }
    let mut edited = doc.to_string();
    // toml_edit keeps a file's leading comments (the `#:schema` line) in
    // the decor of its first table; removing that table must not lose them.
    let header = leading_comments(text);
    if !edited.starts_with(header) {
        edited = format!("{header}{}", edited.trim_start_matches('\n'));
    }
    check(&edited, file, "resetting the settings")?;
    Ok(edited)
}

/// The comment lines (and blank lines) at the top of a file.
fn leading_comments(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            end += line.len();
        } else {
            break;
        }
    }
    &text[..end]
}

/// The value at `path` as written in the file, if it is there.
pub fn written(text: &str, path: &[String]) -> Option<String> {
    let doc: DocumentMut = text.parse().ok()?;
    let mut item: &Item = doc.as_item();
    for segment in path {
        item = item.get(segment)?;
    }
    let value = item.as_value()?;
    // A database URL is shown without its password, wherever it is printed.
    if path == ["settings", "db"]
        && let Some(db) = value.as_str()
    {
        return Some(format!("{:?}", shown_db(db)));
    }
    Some(value.clone().decorated("", "").to_string())
}

fn check(edited: &str, file: &Path, what: &str) -> Result<()> {
    parse(edited, file).map(|_| ()).map_err(|diagnostics| {
        Error::input_with_hint(
            format!("{what} would make the jobfile invalid, so it was not changed:\n{diagnostics}"),
            "`queuectl config list` shows the keys and their values",
        )
    })
}

/// Writes `text` over `path` atomically: a temp file beside it, synced,
/// renamed, and the directory synced, so a reader sees the old file or
/// the new, never half, and a crash loses neither. A symlink stays a
/// symlink: its target is what gets replaced.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let target = resolve_links(path).map_err(|e| Error::io("follow the link", path, e))?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(&target) {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        Error::io("write", &target, e)
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// The file a path names once its symlinks are followed (a link to a
/// file not there yet names where it would be).
fn resolve_links(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// One setting: its key, effective value, and where that comes from.
#[derive(Debug, serde::Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// Every setting of `jobfile` (read from `text`), effective values first
/// from the file, then inherited, then the defaults.
pub fn settings(jobfile: &Jobfile, text: &str) -> Vec<Setting> {
    let file = jobfile
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |path: Vec<String>, effective: String, fallback: &str| {
        let (value, source) = match written(text, &path) {
            Some(value) => (value, file.clone()),
            None => (effective, fallback.to_string()),
        };
        out.push(Setting {
            key: path.join("."),
            value,
            source,
        });
    };
    for key in SETTINGS_KEYS {
        push(
            vec!["settings".into(), key.to_string()],
            effective(jobfile, &["settings".into(), key.to_string()]),
            "default",
        );
    }
    for name in jobfile.queues.keys() {
        let path = vec!["queues".into(), name.clone(), "workers".into()];
        let fallback = if name == DEFAULT_QUEUE {
            "default: the number of CPUs"
        } else {
            "default"
        };
        push(path.clone(), effective(jobfile, &path), fallback);
    }
    for name in jobfile.retry.keys() {
        for key in RETRY_KEYS {
            let path = vec!["retry".into(), name.clone(), key.to_string()];
            let fallback = if name == DEFAULT_POLICY {
                "default"
            } else {
                "from retry.default"
            };
            push(path.clone(), effective(jobfile, &path), fallback);
        }
    }
    out
}

/// `settings.db` as output shows it: a URL without its password.
fn shown_db(db: &str) -> String {
    use crate::driver::postgres::{PgUrl, url::is_url};
    match PgUrl::parse(db) {
        Ok(url) if is_url(db) => url.to_string(),
        _ => db.to_string(),
    }
}

/// The effective value of a setting path, defaults included.
pub fn effective(jobfile: &Jobfile, path: &[String]) -> String {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    let short = crate::duration::human;
    match parts.as_slice() {
        ["settings", "db"] => jobfile.settings.db.as_ref().map_or_else(
            || "\".queuectl/queue.db\"".into(),
            |p| format!("{:?}", shown_db(&p.display().to_string())),
        ),
        ["settings", "keep_finished"] => format!("\"{}\"", short(jobfile.settings.keep_finished)),
        ["settings", "dlq_max_jobs"] => jobfile.settings.dlq_max_jobs.to_string(),
        ["settings", "dlq_max_age"] => format!("\"{}\"", short(jobfile.settings.dlq_max_age)),
        ["settings", "log_max_bytes"] => jobfile.settings.log_max_bytes.to_string(),
        ["settings", "lease"] => format!("\"{}\"", short(jobfile.settings.lease)),
        ["settings", "timeout"] => jobfile
            .settings
            .timeout
            .map_or("none".into(), |t| format!("\"{}\"", short(t))),
        ["queues", name, "workers"] => jobfile.queues.get(*name).map_or("1".into(), u32::to_string),
        ["retry", name, key] => {
            let policy = jobfile
                .policy(name)
                .cloned()
                .unwrap_or_else(|| jobfile.default_policy());
            match *key {
                "max_retries" => policy.max_retries.to_string(),
                "backoff_base" => policy.backoff_base.to_string(),
                "max_delay" => policy.max_delay_ms.map_or("none".into(), |ms| {
                    format!(
                        "\"{}\"",
                        short(std::time::Duration::from_millis(ms.max(0) as u64))
                    )
                }),
                "jitter" => policy.jitter.to_string(),
                "no_retry_exit_codes" => format!("{:?}", policy.no_retry_exit_codes),
                _ => String::new(),
            }
        }
        _ => String::new(),
    }
}

/// Whether `path` names a setting [`effective`] knows.
pub fn is_known(path: &[String]) -> bool {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["settings", key] => SETTINGS_KEYS.contains(key),
        ["queues", _, "workers"] => true,
        ["retry", _, key] => RETRY_KEYS.contains(key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_str(text: &str, key: &str, value: &str) -> Result<String> {
        set(
            text,
            Path::new("queuectl.toml"),
            &resolve_key(key)?,
            parse_value(&resolve_key(key)?, value),
        )
    }

    #[test]
    fn set_keeps_comments_and_layout() -> Result<()> {
        let text = "# my jobs\n[retry.default]\nmax_retries = 3 # three strikes\nbackoff_base = 2\n\n[jobs.a]\ncommand = \"x\" # hello\n";
        let edited = set_str(text, "max-retries", "5")?;
        assert_eq!(
            edited,
            "# my jobs\n[retry.default]\nmax_retries = 5 # three strikes\nbackoff_base = 2\n\n[jobs.a]\ncommand = \"x\" # hello\n"
        );
        Ok(())
    }

    #[test]
    fn set_creates_tables_and_files() -> Result<()> {
        assert_eq!(
            set_str("", "workers", "4")?,
            "[queues.default]\nworkers = 4\n"
        );
        assert_eq!(
            set_str("", "backoff_base", "3")?,
            "[retry.default]\nbackoff_base = 3\n"
        );
        assert_eq!(
            set_str("", "keep_finished", "3d")?,
            "[settings]\nkeep_finished = \"3d\"\n"
        );
        let with_job = "[jobs.a]\ncommand = \"x\"\n";
        assert_eq!(
            set_str(with_job, "jobs.a.priority", "5")?,
            "[jobs.a]\ncommand = \"x\"\npriority = 5\n"
        );
        Ok(())
    }

    #[test]
    fn set_refuses_what_would_not_validate() {
        let err = set_str("", "workers", "0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("setting `queues.default.workers` would make the jobfile invalid"),
            "{err}"
        );
        assert!(err.contains("a queue needs at least 1 worker"), "{err}");
        let err = set_str("", "max-retries", "lots")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("invalid type: string \"lots\", expected u32"),
            "{err}"
        );
        let err = set_str("", "retry.default.max_retires", "2")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown key `max_retires`"), "{err}");
    }

    #[test]
    fn reset_removes_what_set_writes() -> Result<()> {
        let text = "#:schema ./s.json\n[settings]\nkeep_finished = \"3d\"\n[queues.default]\nworkers = 4\n[queues.deploy]\nworkers = 1\n[retry.default]\nmax_retries = 5\n[jobs.a]\ncommand = \"x\"\nqueue = \"deploy\"\n";
        assert_eq!(
            reset(text, Path::new("q.toml"))?,
            "#:schema ./s.json\n[queues.deploy]\nworkers = 1\n[jobs.a]\ncommand = \"x\"\nqueue = \"deploy\"\n"
        );
        Ok(())
    }
}
