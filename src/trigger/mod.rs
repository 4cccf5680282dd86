//! Triggers: what makes a job of a definition without anyone enqueuing
//! it. [`cron`] reads schedules (croner), finds the tick due and decides
//! what a tick does while a run is going (`overlap`); [`watch`] watches
//! files (notify), debounces changes per definition and decides what a
//! change does while a job is waiting or running (merge, `on_busy`). Both
//! decisions are pure; the engine ([`crate::engine`]) applies them in the
//! transaction that enqueues, and the runtime fires them.
//!
//! The enqueue policy lives here: the payload a triggered job carries
//! (its changed paths, its tick) and its exclusive key, so that a watched
//! or scheduled definition never runs two jobs at once unless its policy
//! says `allow`.

pub mod cron;
pub mod ignores;
pub mod watch;

use std::path::Path;

use crate::job::{NewJob, Origin, Payload};
use crate::jobfile::{JobDef, Overlap, Trigger};

/// The exclusive key of a job of `def` carrying `payload`: jobs with the
/// same key never run two at once. A scheduled definition's jobs share
/// one (unless `overlap = "allow"`), a watched definition's too, and with
/// `per_file` each path has its own: the thumbnails of two images may be
/// made together, never two of the same image.
pub fn exclusive_key(def: &JobDef, payload: Option<&Payload>) -> Option<String> {
    match &def.trigger {
        Trigger::Once => None,
        Trigger::Schedule(schedule) if schedule.overlap == Overlap::Allow => None,
        Trigger::Schedule(_) => Some(def.name.clone()),
        Trigger::Watch(watch) => match payload {
            Some(Payload::Path(path)) if watch.per_file => Some(format!("{}\n{path}", def.name)),
            _ => Some(def.name.clone()),
        },
    }
}

/// A job of a triggered definition, with its payload and exclusive key.
pub fn triggered_job(
    def: &JobDef,
    jobfile_dir: &Path,
    origin: Origin,
    commit: Option<&str>,
    payload: Payload,
    now: i64,
) -> NewJob {
    let mut job = def.new_job(jobfile_dir, origin, commit, now);
    job.exclusive = exclusive_key(def, Some(&payload));
    if let Payload::Scheduled(tick) = payload {
        job.tick_at = Some(tick);
    }
    job.payload = Some(payload);
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(toml: &str) -> JobDef {
        let jobfile =
            crate::jobfile::parse(toml, Path::new("q.toml")).unwrap_or_else(|d| panic!("{d}"));
        jobfile
            .jobs
            .into_values()
            .next()
            .unwrap_or_else(|| panic!("no job"))
    }

    #[test]
    fn exclusive_keys_follow_the_policy() {
        let once = def("[jobs.a]\ncommand = \"x\"\n");
        assert_eq!(exclusive_key(&once, None), None);
        for (overlap, key) in [("skip", Some("a")), ("replace", Some("a")), ("allow", None)] {
            let cron = def(&format!(
                "[jobs.a]\ncommand = \"x\"\nschedule = \"@daily\"\noverlap = \"{overlap}\"\n"
            ));
            assert_eq!(
                exclusive_key(&cron, Some(&Payload::Scheduled(1))).as_deref(),
                key,
                "{overlap}"
            );
        }
        let watch = def("[jobs.a]\ncommand = \"x\"\nwatch = { paths = [\"*.md\"] }\n");
        let changed = Payload::Changed(vec!["x.md".into()]);
        assert_eq!(exclusive_key(&watch, Some(&changed)).as_deref(), Some("a"));
        let per_file =
            def("[jobs.a]\ncommand = \"x\"\nwatch = { paths = [\"*.png\"], per_file = true }\n");
        assert_eq!(
            exclusive_key(&per_file, Some(&Payload::Path("1.png".into()))).as_deref(),
            Some("a\n1.png")
        );
        // A run asked for by hand still waits for the running one.
        assert_eq!(exclusive_key(&per_file, None).as_deref(), Some("a"));
        let job = triggered_job(
            &per_file,
            Path::new("/r"),
            Origin::Watch,
            None,
            Payload::Path("2.png".into()),
            5,
        );
        assert_eq!(job.exclusive.as_deref(), Some("a\n2.png"));
        assert_eq!(job.payload, Some(Payload::Path("2.png".into())));
        assert_eq!(job.tick_at, None);
    }
}
