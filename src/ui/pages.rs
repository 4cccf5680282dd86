//! The dashboard's GET pages: each reads through a fresh read engine on
//! the blocking pool, then renders with [`super::html`].

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse};
use maud::{Markup, html};

use super::csrf::Session;
use super::html::{self, JobPage, Overview, action, job_rows, page, urlencode};
use super::{Page, Shared, UiError, chart, cursor, with_engine};
use crate::clock::{now_ms, relative};
use crate::context::Context;
use crate::driver::JobFilter;
use crate::engine::Engine;
use crate::error::Result;
use crate::job::{JobState, Origin};
use crate::view::{queue_views, schedules, worker_views};

/// Rows of a job list page.
const PAGE_SIZE: u32 = 50;

fn ok(markup: Markup) -> Page {
    Ok(Html(markup.into_string()).into_response())
}

/// The CSRF token of the session's forms, or None when read-only (no
/// forms).
pub(crate) fn forms(ui: &Shared, session: &Session) -> Option<String> {
    (!ui.read_only).then(|| ui.csrf.token(session))
}

/// The jobfile for reading pages: one that does not validate shows none.
fn lenient_jobfile(context: &Context) -> Option<crate::jobfile::Jobfile> {
    context.jobfile().ok().flatten()
}

/// What the overview's live fragment shows, read now.
pub(crate) fn overview_data(ui: &super::Ui, engine: &mut Engine) -> Result<Overview> {
    let now = now_ms();
    let context = &ui.context;
    let jobfile = lenient_jobfile(context);
    let finished = ui
        .minutes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .hour(now, |since| engine.finished_by_minute(since))?;
    Ok(Overview {
        queues: queue_views(engine)?,
        recent: engine.list(&JobFilter {
            limit: 20,
            ..JobFilter::default()
        })?,
        workers: worker_views(engine, now)?,
        chart: chart::throughput_svg(&finished, now),
        schedules: schedules(jobfile.as_ref(), engine)?,
    })
}

pub(crate) async fn overview(State(ui): State<Shared>) -> Page {
    let shared = ui.clone();
    let data = with_engine(&ui, false, move |_, engine| overview_data(&shared, engine)).await?;
    ok(page(
        "overview",
        html! {
            h1 { "queuectl" }
            div #live { (html::overview_fragment(&data)) }
            (html::live_script())
        },
    ))
}

pub(crate) async fn overview_fragment(State(ui): State<Shared>) -> Page {
    let shared = ui.clone();
    let data = with_engine(&ui, false, move |_, engine| overview_data(&shared, engine)).await?;
    ok(html::overview_fragment(&data))
}

/// A job list's filter from its query; a bad value is a 400.
pub(crate) fn job_filter(
    query: &HashMap<String, String>,
) -> std::result::Result<JobFilter, UiError> {
    let get = |key: &str| query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let state = get("state")
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(UiError::from)?;
    let origin = get("origin")
        .map(|o| {
            Origin::parse(o).ok_or_else(|| {
                UiError::bad_request(format!(
                    "unknown origin `{o}` (origins are cli, jobfile, schedule, watch)"
                ))
            })
        })
        .transpose()?;
    let before = get("before")
        .map(cursor::decode)
        .transpose()
        .map_err(UiError::bad_request)?;
    Ok(JobFilter {
        state,
        queue: get("queue").map(str::to_string),
        definition: get("definition").map(str::to_string),
        origin,
        text: get("q").map(str::to_string),
        before,
        limit: PAGE_SIZE,
    })
}

/// The query string of a filter, its cursor aside.
pub(crate) fn filter_fields(filter: &JobFilter) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    if let Some(state) = filter.state {
        fields.push(("state", state.as_str().to_string()));
    }
    for (key, value) in [
        ("queue", &filter.queue),
        ("definition", &filter.definition),
        ("q", &filter.text),
    ] {
        if let Some(value) = value {
            fields.push((key, value.clone()));
        }
    }
    if let Some(origin) = filter.origin {
        fields.push(("origin", origin.as_str().to_string()));
    }
    fields
}

pub(crate) async fn jobs(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let filter = job_filter(&query)?;
    let read = filter.clone();
    let (jobs, more, bulk_count) = with_engine(&ui, false, move |_, engine| {
        let mut jobs = engine.list(&JobFilter {
            limit: read.limit + 1,
            ..read.clone()
        })?;
        let more = jobs.len() > read.limit as usize;
        jobs.truncate(read.limit as usize);
        // What a bulk action would take: the dead (retry, delete) or the
        // unfinished (cancel) jobs of a state.
        let bulk_count = match read.state {
            Some(_) => Some(engine.count(&JobFilter {
                before: None,
                ..read.clone()
            })?),
            None => None,
        };
        Ok((jobs, more, bulk_count))
    })
    .await?;
    let fields = filter_fields(&filter);
    let next = match (more, jobs.last()) {
        (true, Some(last)) => {
            let mut query: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect();
            query.push(format!(
                "before={}",
                urlencode(&cursor::encode(last.created_at, &last.id))
            ));
            Some(format!("/jobs?{}", query.join("&")))
        }
        _ => None,
    };
    let value = |key: &str| query.get(key).cloned().unwrap_or_default();
    let csrf = forms(&ui, &session);
    ok(page(
        "jobs",
        html! {
            h1 { "Jobs" }
            form #filter method="get" action="/jobs" {
                label { "state " select name="state" {
                    option value="" { "any" }
                    @for s in JobState::ALL { option value=(s.as_str()) selected[filter.state == Some(s)] { (s.as_str()) } }
                } } " "
                label { "queue " input name="queue" value=(value("queue")); } " "
                label { "definition " input name="definition" value=(value("definition")); } " "
                label { "origin " select name="origin" {
                    option value="" { "any" }
                    @for o in ["cli", "jobfile", "schedule", "watch"] { option value=(o) selected[filter.origin.map(Origin::as_str) == Some(o)] { (o) } }
                } } " "
                label { "command contains " input name="q" value=(value("q")); } " "
                button { "Filter" }
            }
            @if let (Some(count), Some(csrf), Some(state)) = (bulk_count, csrf.as_deref(), filter.state) {
                @if count > 0 {
                    @let hidden: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    @if state == JobState::Dead {
                        p {
                            (action("/bulk/retry", csrf, "bulk-retry", &format!("Retry all {count} matching dead jobs…"), &hidden))
                            " "
                            (action("/bulk/delete", csrf, "bulk-delete", &format!("Delete all {count} matching dead jobs…"), &hidden))
                        }
                    } @else if !state.is_finished() {
                        p { (action("/bulk/cancel", csrf, "bulk-cancel", &format!("Cancel all {count} matching {state} jobs…"), &hidden)) }
                    }
                }
            }
            @if jobs.is_empty() { p #empty { "no matching jobs" } }
            @else { (job_rows(&jobs)) }
            @if let Some(next) = next { p { a #next href=(next) { "Older jobs →" } } }
        },
    ))
}

/// One job's data, by id or definition name.
fn job_data(context: &Context, engine: &mut Engine, arg: &str) -> Result<JobPage> {
    let id = engine.resolve_job(arg)?;
    let job = engine.job(&id)?;
    let mut attempts = Vec::new();
    for attempt in engine.attempts(&id)? {
        let bytes =
            crate::logs::read_output(&context.logs, engine, &id, attempt.run).unwrap_or_default();
        attempts.push((attempt, String::from_utf8_lossy(&bytes).into_owned()));
    }
    let waiting_for = match job.state.is_waiting() {
        true => engine
            .latest_states(&job.after)?
            .into_iter()
            .filter(|(_, state)| *state != Some(JobState::Completed))
            .collect(),
        false => Vec::new(),
    };
    let dependents = match &job.definition {
        Some(definition) => engine.read(|ops| ops.waiting_for(definition))?,
        None => Vec::new(),
    };
    Ok(JobPage {
        job,
        attempts,
        waiting_for,
        dependents,
    })
}

pub(crate) async fn job(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(arg): Path<String>,
) -> Page {
    let data = with_engine(&ui, false, move |c, e| job_data(c, e, &arg)).await?;
    ok(html::job_page(&data, forms(&ui, &session).as_deref()))
}

pub(crate) async fn job_fragment(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(arg): Path<String>,
) -> Page {
    let data = with_engine(&ui, false, move |c, e| job_data(c, e, &arg)).await?;
    ok(html::job_fragment(&data, forms(&ui, &session).as_deref()))
}

pub(crate) async fn queues(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
) -> Page {
    let queues = with_engine(&ui, false, |_, e| queue_views(e)).await?;
    let csrf = forms(&ui, &session);
    ok(page(
        "queues",
        html! {
            h1 { "Queues" }
            @if queues.is_empty() { p { "no queues yet" } }
            table.queues {
                tr { th { "QUEUE" } th { "LIMIT" } th { "RUNNING" } th { "WAITING" } th { "STATE" } th {} }
                @for q in &queues {
                    tr.queue.paused[q.paused] data-queue=(q.name) {
                        td { a href={"/jobs?queue=" (urlencode(&q.name))} { (q.name) } }
                        td { (q.workers.map_or("-".to_string(), |w| w.to_string())) }
                        td { (q.count(JobState::Processing)) }
                        td { (q.waiting()) }
                        td { (if q.paused { "paused" } else { "running" }) }
                        td { @if let Some(csrf) = &csrf {
                            @let path = format!("/queues/{}", urlencode(&q.name));
                            @if q.paused { (action(&format!("{path}/resume"), csrf, &format!("resume-{}", q.name), "Resume", &[])) }
                            @else { (action(&format!("{path}/pause"), csrf, &format!("pause-{}", q.name), "Pause", &[])) }
                        } }
                    }
                }
            }
        },
    ))
}

/// Dead jobs read for the DLQ page (the newest this many).
const DLQ_SCAN: u32 = 10_000;

/// A DLQ group: its count, newest job and that job's last output line.
#[derive(Debug)]
struct Group {
    count: u64,
    newest: String,
    last_line: String,
}

pub(crate) async fn dlq(State(ui): State<Shared>, Extension(session): Extension<Session>) -> Page {
    let (groups, total) = with_engine(&ui, false, |context, engine| {
        let dead = engine.dead(DLQ_SCAN)?;
        let mut groups: BTreeMap<(String, Option<i32>), Group> = BTreeMap::new();
        for job in &dead {
            let key = (job.definition.clone().unwrap_or_default(), job.exit_code);
            match groups.get_mut(&key) {
                Some(group) => group.count += 1,
                None => {
                    // The newest of its group (the list is newest first).
                    let bytes = crate::logs::read_output(&context.logs, engine, &job.id, job.runs)
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&bytes);
                    let last_line = text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .to_string();
                    groups.insert(
                        key,
                        Group {
                            count: 1,
                            newest: job.id.clone(),
                            last_line,
                        },
                    );
                }
            }
        }
        let total = engine.count(&JobFilter {
            state: Some(JobState::Dead),
            ..JobFilter::default()
        })?;
        Ok((groups, total))
    })
    .await?;
    let csrf = forms(&ui, &session);
    ok(page(
        "dead letter queue",
        html! {
            h1 { "Dead letter queue" }
            p #dead-total { (total) " dead job(s)" }
            @if total as usize > DLQ_SCAN as usize { p { "grouped: the newest " (DLQ_SCAN) } }
            table.groups {
                tr { th { "DEFINITION" } th { "EXIT" } th { "COUNT" } th { "NEWEST" } th { "LAST OUTPUT LINE" } }
                @for ((definition, code), g) in &groups {
                    tr.group data-definition=(definition) data-exit-code=(code.map_or(String::new(), |c| c.to_string())) {
                        td { @if definition.is_empty() { "-" } @else { a href={"/jobs?state=dead&definition=" (urlencode(definition))} { (definition) } } }
                        td { (code.map_or("-".to_string(), |c| c.to_string())) }
                        td.count { (g.count) }
                        td { a href={"/jobs/" (urlencode(&g.newest))} { (g.newest) } }
                        td { code.last-line { (g.last_line) } }
                    }
                }
            }
            @if let Some(csrf) = csrf.as_deref() { @if total > 0 {
                h2 { "Retry or delete all matching" }
                form #bulk method="post" action="/bulk/retry" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="state" value="dead";
                    label { "definition " input name="definition"; } " "
                    label { "queue " input name="queue"; } " "
                    label { "command contains " input name="q"; } " "
                    button #bulk-retry { "Retry matching dead jobs…" }
                    " "
                    button #bulk-delete formaction="/bulk/delete" { "Delete matching dead jobs…" }
                }
                p { "A confirmation page shows how many jobs match before anything changes." }
            } }
        },
    ))
}

/// The schedules and the watches (definition, paths) of the jobfile.
type Triggers = (Vec<crate::view::ScheduleView>, Vec<WatchView>);

async fn triggers(ui: &Shared) -> std::result::Result<Triggers, UiError> {
    with_engine(ui, false, |context, engine| {
        let jobfile = lenient_jobfile(context);
        let mut watches = Vec::new();
        for def in jobfile.iter().flat_map(|j| j.jobs.values()) {
            let crate::jobfile::Trigger::Watch(w) = &def.trigger else {
                continue;
            };
            watches.push(WatchView {
                name: def.name.clone(),
                paths: w.paths.clone(),
                last: last_change(engine, &def.name)?,
            });
        }
        Ok((schedules(jobfile.as_ref(), engine)?, watches))
    })
    .await
}

/// A watch of the jobfile and the last change it saw.
pub(crate) struct WatchView {
    name: String,
    paths: Vec<String>,
    /// When its latest job was made, and the paths that changed.
    last: Option<(i64, Vec<String>)>,
}

/// The last change a watched definition saw: its latest job (which may
/// have been pruned) and that job's changed paths.
fn last_change(engine: &mut Engine, name: &str) -> Result<Option<(i64, Vec<String>)>> {
    let Some(id) = engine.read(|ops| ops.latest_job(name))? else {
        return Ok(None);
    };
    let Ok(job) = engine.job(&id) else {
        return Ok(None);
    };
    let paths = match job.payload {
        Some(crate::job::Payload::Changed(paths)) => paths,
        Some(crate::job::Payload::Path(path)) => vec![path],
        _ => Vec::new(),
    };
    Ok(Some((job.created_at, paths)))
}

pub(crate) async fn schedules_handler(State(ui): State<Shared>) -> Page {
    let (schedules, watches) = triggers(&ui).await?;
    ok(page(
        "schedules",
        html! {
            h1 { "Schedules" }
            (html::schedule_table(&schedules))
            h1 { "Watches" }
            @if watches.is_empty() { p { "no watches" } }
            ul.watches { @for watch in &watches {
                li.watch data-definition=(watch.name) {
                    (watch.name) ": " code { (watch.paths.join(", ")) }
                    @match &watch.last {
                        Some((at, changed)) => {
                            " — last change " (relative(*at, now_ms()))
                            @if !changed.is_empty() { ": " code { (changed.join(", ")) } }
                        }
                        None => { " — no change seen yet" }
                    }
                }
            } }
        },
    ))
}

pub(crate) async fn graph(State(ui): State<Shared>) -> Page {
    let svg = with_engine(&ui, false, |context, engine| {
        let Some(jobfile) = lenient_jobfile(context) else {
            return Ok(None);
        };
        let names: Vec<String> = jobfile.jobs.keys().cloned().collect();
        let states: BTreeMap<String, Option<JobState>> =
            engine.latest_states(&names)?.into_iter().collect();
        let nodes: Vec<super::graph::Node> = jobfile
            .jobs
            .values()
            .map(|def| super::graph::Node {
                name: def.name.clone(),
                after: def.after.clone(),
                state: states.get(&def.name).copied().flatten(),
            })
            .collect();
        Ok(Some(super::graph::svg(&nodes)))
    })
    .await?;
    ok(page(
        "graph",
        html! {
            h1 { "Jobfile graph" }
            @match svg {
                Some(svg) => { (maud::PreEscaped(svg)) }
                None => { p { "no valid jobfile" } }
            }
        },
    ))
}
