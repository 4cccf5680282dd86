//! The dashboard's HTML, written with maud, which escapes every value it
//! is given: a job's command or output is text, never markup. The ids,
//! classes and `data-` attributes here are a contract the browser tests
//! rely on (see the README's Dashboard section).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::clock::{local, now_ms, relative};
use crate::driver::Waiter;
use crate::job::{Attempt, Job, JobState};
use crate::view::{QueueView, ScheduleView, WorkerView, job_label};

/// A whole page: the navigation, then `body`.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · queuectl" }
                style { (PreEscaped(CSS)) }
            }
            body {
                nav {
                    a href="/" { "Overview" } " "
                    a href="/jobs" { "Jobs" } " "
                    a href="/queues" { "Queues" } " "
                    a href="/dlq" { "DLQ" } " "
                    a href="/schedules" { "Schedules" } " "
                    a href="/graph" { "Graph" }
                }
                main { (body) }
            }
        }
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#222}\
nav a{margin-right:1rem}table{border-collapse:collapse;margin:.5rem 0 1rem}\
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}\
tr.paused{background:#fff4d6}pre.output{background:#f6f6f6;padding:.5rem;max-height:30rem;overflow:auto;white-space:pre-wrap}\
.state-dead,.state-failed{color:#b00}.state-completed{color:#070}.state-processing{color:#06c}\
form.inline{display:inline}code{background:#f3f3f3}";

/// An error page.
pub fn error_page(status: u16, title: &str, message: &str) -> Markup {
    page(
        title,
        html! {
            h1 { (status) " " (title) }
            p #error { (message) }
        },
    )
}

/// A POST form with the CSRF token and one button.
pub fn action(
    path: &str,
    csrf: &str,
    button_id: &str,
    label: &str,
    fields: &[(&str, &str)],
) -> Markup {
    html! {
        form.inline method="post" action=(path) {
            input type="hidden" name="csrf" value=(csrf);
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button id=(button_id) { (label) }
        }
    }
}

fn state_cell(state: JobState) -> Markup {
    html! { span class={"state-" (state.as_str())} { (state.as_str()) } }
}

/// The job table of the overview and the jobs page.
pub fn job_rows(jobs: &[Job]) -> Markup {
    let now = now_ms();
    html! {
        table.jobs {
            tr { th { "ID" } th { "NAME" } th { "STATE" } th { "QUEUE" } th { "ATTEMPTS" } th { "EXIT" } th { "CREATED" } th { "COMMAND" } }
            @for job in jobs {
                tr.job data-id=(job.id) data-state=(job.state.as_str()) {
                    td { a href={"/jobs/" (urlencode(&job.id))} { (job.id) } }
                    td { (job.definition.as_deref().unwrap_or("-")) }
                    td { (state_cell(job.state)) }
                    td { (job.queue) }
                    td { (job.attempts) "/" (job.retry.max_attempts()) }
                    td { (job.exit_code.map_or("-".to_string(), |c| c.to_string())) }
                    td title=(local(job.created_at)) { (relative(job.created_at, now)) }
                    td { code { (crate::output::truncate(&job.command, 80)) } }
                }
            }
        }
    }
}

/// What the overview's live part shows.
#[derive(Debug)]
pub struct Overview {
    pub queues: Vec<QueueView>,
    pub recent: Vec<Job>,
    pub workers: Vec<WorkerView>,
    pub chart: String,
    pub schedules: Vec<ScheduleView>,
}

/// The overview's live fragment (`#live`'s content, and each event's).
pub fn overview_fragment(o: &Overview) -> Markup {
    let now = now_ms();
    html! {
        h2 { "Queues" }
        @if o.queues.is_empty() { p { "no queues yet" } }
        @else {
            table.counts {
                tr {
                    th { "QUEUE" } th { "LIMIT" } th { "RUNNING" } th { "WAITING" } th { "PAUSED" }
                    @for state in JobState::ALL { th { (state.as_str()) } }
                }
                @for q in &o.queues {
                    tr.queue.paused[q.paused] data-queue=(q.name) {
                        td { (q.name) }
                        td { (q.workers.map_or("-".to_string(), |w| w.to_string())) }
                        td { (q.count(JobState::Processing)) }
                        td { (q.waiting()) }
                        td { @if let Some(since) = q.paused_since { "paused " (relative(since, now)) } @else { "no" } }
                        @for state in JobState::ALL {
                            td data-queue=(q.name) data-state=(state.as_str()) { (q.count(state)) }
                        }
                    }
                }
            }
        }
        h2 { "Throughput" }
        p { "Jobs completed (green) and dead (red) per minute, last hour." }
        (PreEscaped(&o.chart))
        h2 { "Workers" }
        @if o.workers.is_empty() { p { "no workers" } }
        @else {
            table.workers {
                tr { th { "ID" } th { "HOST" } th { "PID" } th { "STATE" } th { "POOLS" } th { "RUNNING" } }
                @for w in &o.workers {
                    tr.worker data-worker=(w.id) {
                        td { (w.id) } td { (w.host) } td { (w.pid) } td { (w.state) } td { (w.pools_text()) }
                        td {
                            @for job in &w.jobs {
                                a.running href={"/jobs/" (urlencode(&job.id))} { (job_label(job)) } " "
                            }
                        }
                    }
                }
            }
        }
        h2 { "Next cron ticks" }
        (schedule_table(&o.schedules))
        h2 { "Recent jobs" }
        (job_rows(&o.recent))
    }
}

/// The schedules with their next ticks.
pub fn schedule_table(schedules: &[ScheduleView]) -> Markup {
    let now = now_ms();
    html! {
        @if schedules.is_empty() { p { "no schedules" } }
        @else {
            table.schedules {
                tr { th { "JOB" } th { "SCHEDULE" } th { "ZONE" } th { "NEXT" } th { "LAST" } th { "MISSED" } }
                @for s in schedules {
                    tr.schedule data-definition=(s.definition) {
                        td { (s.definition) }
                        td { code { (s.schedule) } " " (s.description) }
                        td { (s.timezone) }
                        td { @if let Some(at) = s.next_tick { (local(at)) " (" (relative(at, now)) ")" } @else { "-" } }
                        td { @if let Some(at) = s.last_tick { (local(at)) } @else { "-" } }
                        td.missed data-missed=(s.missed_ticks) {
                            (s.missed_ticks)
                            @if let Some(at) = s.last_missed_tick { " (latest " (local(at)) ")" }
                        }
                    }
                }
            }
        }
    }
}

/// The overview's script: on each `overview` event of `/events`, `#live`
/// takes the event's HTML.
pub fn live_script() -> Markup {
    html! {
        script {
            (PreEscaped(
                "(function () { var es = new EventSource('/events'); \
                 es.addEventListener('overview', function (e) { \
                 document.getElementById('live').innerHTML = e.data; }); })();"
            ))
        }
    }
}

/// The script of an unfinished job's page: it follows `/events/job/ID`
/// (see `ui/output.rs`), appending each `output` event's text to its
/// attempt's `<pre>` as a text node (job output is never markup), and
/// reloads `#job-live` from `/fragment/job/ID` when the state changes
/// (or the server says to refresh a waiting job's), an attempt without a
/// `<pre>` begins, or the job ends (then it stops). What
/// the stream sent of each attempt is put back into the fragment a reload
/// brings, until the end, when the server's copy is the whole output.
pub fn job_script(id: &str) -> Markup {
    // An id in a URL: urlencoded, so no quote or `<` reaches the script.
    let script = JOB_SCRIPT.replace("JOB_ID", &urlencode(id));
    html! { script { (PreEscaped(script)) } }
}

const JOB_SCRIPT: &str = r#"(function () {
  var live = document.getElementById('job-live');
  var texts = {};
  var asked = 0;
  var es = new EventSource('/events/job/JOB_ID');
  function pre(n) { return live.querySelector('pre.output[data-attempt="' + n + '"]'); }
  function reload() {
    var mine = ++asked;
    fetch('/fragment/job/JOB_ID', {credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (h) {
        if (h === null || mine !== asked) return;
        live.innerHTML = h;
        for (var n in texts) { var p = pre(n); if (p) p.textContent = texts[n]; }
      });
  }
  es.addEventListener('attempt', function (e) {
    var n = JSON.parse(e.data).attempt;
    texts[n] = '';
    var p = pre(n);
    if (p) p.textContent = ''; else reload();
  });
  es.addEventListener('output', function (e) {
    var d = JSON.parse(e.data);
    texts[d.attempt] = (texts[d.attempt] || '') + d.text;
    var p = pre(d.attempt);
    if (!p) return;
    var bottom = p.scrollTop + p.clientHeight >= p.scrollHeight - 4;
    p.appendChild(document.createTextNode(d.text));
    if (bottom) p.scrollTop = p.scrollHeight;
  });
  es.addEventListener('state', function (e) {
    var d = JSON.parse(e.data);
    var shown = document.getElementById('job-state');
    if (d.refresh || !shown || shown.textContent !== d.state) reload();
  });
  es.addEventListener('end', function () { es.close(); texts = {}; reload(); });
})();"#;

/// One job's page data.
#[derive(Debug)]
pub struct JobPage {
    pub job: Job,
    pub attempts: Vec<(Attempt, String)>,
    pub waiting_for: Vec<(String, Option<JobState>)>,
    pub dependents: Vec<Waiter>,
}

/// A job's live part: its state, actions, attempts and their output.
pub fn job_fragment(p: &JobPage, csrf: Option<&str>) -> Markup {
    let job = &p.job;
    let path = format!("/jobs/{}", urlencode(&job.id));
    html! {
        p { "State: " span #job-state class={"state-" (job.state.as_str())} { (job.state.as_str()) }
            @if let Some(reason) = &job.reason { " (" (reason) ")" } }
        @if let Some(csrf) = csrf {
            div.actions {
                @if job.state == JobState::Dead {
                    (action(&format!("{path}/retry"), csrf, "retry", "Retry", &[]))
                    " "
                    (action(&format!("{path}/delete"), csrf, "delete", "Delete", &[]))
                }
                @if job.state.is_waiting() || job.state == JobState::Processing {
                    (action(&format!("{path}/cancel"), csrf, "cancel", "Cancel", &[]))
                }
            }
        }
        @if !p.waiting_for.is_empty() {
            h3 { "Waits for" }
            ul.waiting-for { @for (def, state) in &p.waiting_for {
                li { (def) ": " (state.map_or("never ran", JobState::as_str)) }
            } }
        }
        @if !p.dependents.is_empty() {
            h3 { "Dependents (waiting)" }
            ul.dependents { @for w in &p.dependents {
                li { a href={"/jobs/" (urlencode(&w.id))} { (w.definition.as_deref().unwrap_or(&w.id)) " (" (w.id) ")" } }
            } }
        }
        h3 { "Attempts" }
        @if p.attempts.is_empty() { p { "no attempt yet" } }
        @for (a, output) in &p.attempts {
            div.attempt data-attempt=(a.run) {
                p {
                    b { "Attempt " (a.run) } ": started " (local(a.started_at))
                    @if let Some(end) = a.finished_at { ", ended " (local(end)) }
                    @if let Some(outcome) = &a.outcome { ", " (format!("{outcome:?}").to_lowercase()) }
                    @if let Some(code) = a.exit_code { ", exit code " (code) }
                    @if let Some(worker) = a.worker {
                        ", on " span.worker { "worker " (worker) }
                        @if let Some(host) = &a.host { " at " span.host { (host) } }
                    }
                    @if let Some(error) = &a.error { " — " (error) }
                }
                pre.output data-attempt=(a.run) { (output) }
            }
        }
    }
}

/// A job's whole page.
pub fn job_page(p: &JobPage, csrf: Option<&str>) -> Markup {
    let job = &p.job;
    page(
        &format!("job {}", job.id),
        html! {
            h1 { "Job " (job.id) }
            table.spec {
                tr { th { "command" } td { pre.command { (job.command) } } }
                tr { th { "queue" } td { (job.queue) } }
                tr { th { "priority" } td { (job.priority) } }
                tr { th { "origin" } td { (job.origin.as_str()) } }
                tr { th { "definition" } td { (job.definition.as_deref().unwrap_or("-")) } }
                tr { th { "spec hash" } td { (job.spec_hash.as_deref().unwrap_or("-")) } }
                tr { th { "jobfile commit" } td { (job.source_commit.as_deref().unwrap_or("-")) } }
                tr { th { "after" } td { (if job.after.is_empty() { "-".to_string() } else { job.after.join(", ") }) } }
                tr { th { "attempts" } td { (job.attempts) "/" (job.retry.max_attempts()) } }
                tr { th { "created" } td { (local(job.created_at)) } }
                tr { th { "cwd" } td { (job.cwd.as_deref().unwrap_or("-")) } }
                @for (k, v) in &job.env { tr { th { "env " (k) } td { (v) } } }
            }
            div #job-live { (job_fragment(p, csrf)) }
            @if !job.state.is_finished() { (job_script(&job.id)) }
        },
    )
}

/// A value for a URL's path or query.
pub fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
