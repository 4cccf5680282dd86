//! The dashboard's actions: each a POST carrying the CSRF token, each
//! through the same engine operation as the CLI command that does it
//! (`dlq retry`, `cancel`, `dlq remove`, `queue pause|resume`), then a
//! 303 back to a page that shows the result.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::{Extension, Form};
use maud::html;

use super::auth::check_csrf;
use super::csrf::Session;
use super::html::{page, urlencode};
use super::pages::{filter_fields, job_filter};
use super::{Page, Shared, with_engine};
use crate::clock::now_ms;
use crate::driver::JobFilter;
use crate::job::JobState;
use crate::job::names::validate_queue;

type Fields = Form<HashMap<String, String>>;

fn back_to_job(id: &str) -> Page {
    Ok(Redirect::to(&format!("/jobs/{}", urlencode(id))).into_response())
}

/// `act` on the job `arg` names, then back to its page.
async fn on_job(
    ui: Shared,
    session: Session,
    arg: String,
    fields: HashMap<String, String>,
    act: fn(&mut crate::engine::Engine, &str) -> crate::error::Result<()>,
) -> Page {
    check_csrf(&ui, &session, fields.get("csrf"))?;
    let id = with_engine(&ui, true, move |_, engine| {
        let id = engine.resolve_job(&arg)?;
        act(engine, &id)?;
        Ok(id)
    })
    .await?;
    back_to_job(&id)
}

/// `dlq retry ID`.
pub(crate) async fn retry(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    on_job(ui, session, arg, f, |engine, id| {
        engine.dlq_retry(&[id.to_string()], false, now_ms())?;
        Ok(())
    })
    .await
}

/// `cancel ID`.
pub(crate) async fn cancel(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    on_job(ui, session, arg, f, |engine, id| {
        engine.cancel(id, now_ms())?;
        Ok(())
    })
    .await
}

/// `dlq remove ID` (and its logs); back to the DLQ, as the job is gone.
pub(crate) async fn delete(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    check_csrf(&ui, &session, f.get("csrf"))?;
    with_engine(&ui, true, move |context, engine| {
        let id = engine.resolve_job(&arg)?;
        let removed = engine.dlq_remove(&[id])?;
        context.logs.remove(&removed);
        Ok(())
    })
    .await?;
    Ok(Redirect::to("/dlq").into_response())
}

async fn set_paused(
    ui: Shared,
    session: Session,
    queue: String,
    fields: HashMap<String, String>,
    pause: bool,
) -> Page {
    check_csrf(&ui, &session, fields.get("csrf"))?;
    validate_queue(&queue)?;
    with_engine(&ui, true, move |_, engine| {
        engine.set_paused(&[queue], pause, now_ms())?;
        Ok(())
    })
    .await?;
    Ok(Redirect::to("/queues").into_response())
}

/// `queue pause Q`.
pub(crate) async fn pause(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(queue): Path<String>,
    Form(f): Fields,
) -> Page {
    set_paused(ui, session, queue, f, true).await
}

/// `queue resume Q`.
pub(crate) async fn resume(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(queue): Path<String>,
    Form(f): Fields,
) -> Page {
    set_paused(ui, session, queue, f, false).await
}

/// What a bulk action does to every job matching a filter.
#[derive(Debug, Clone, Copy)]
enum Bulk {
    /// `dlq retry ID…` (dead jobs).
    Retry,
    /// `dlq remove ID…` (dead jobs, with their logs).
    Delete,
    /// `cancel ID`, each (waiting or running jobs).
    Cancel,
}

impl Bulk {
    fn parse(name: &str) -> Result<Bulk, super::UiError> {
        match name {
            "retry" => Ok(Bulk::Retry),
            "delete" => Ok(Bulk::Delete),
            "cancel" => Ok(Bulk::Cancel),
            other => Err(super::UiError::bad_request(format!(
                "no bulk action `{other}`: retry, delete or cancel"
            ))),
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Bulk::Retry => "Retry",
            Bulk::Delete => "Delete",
            Bulk::Cancel => "Cancel",
        }
    }

    /// The filter it acts on: dead jobs for retry and delete; for
    /// cancel, the filter's own state, which must be one a job can be
    /// cancelled in.
    fn filter(self, fields: &HashMap<String, String>) -> Result<JobFilter, super::UiError> {
        let filter = JobFilter {
            before: None,
            ..job_filter(fields)?
        };
        match self {
            Bulk::Retry | Bulk::Delete => Ok(JobFilter {
                state: Some(JobState::Dead),
                ..filter
            }),
            Bulk::Cancel => match filter.state {
                Some(state) if !state.is_finished() => Ok(filter),
                _ => Err(super::UiError::bad_request(
                    "a bulk cancel needs state=pending, failed or processing",
                )),
            },
        }
    }
}

/// A bulk action (`retry`, `delete`, `cancel`) on every job matching a
/// filter: without `confirm=yes` a page says how many match and asks;
/// with it, the jobs matched at that moment get the CLI's operation
/// (`dlq retry ID…` and `dlq remove ID…` in one transaction; `cancel` job
/// by job, skipping one that ended meanwhile).
pub(crate) async fn bulk(
    State(ui): State<Shared>,
    Extension(session): Extension<Session>,
    Path(action): Path<String>,
    Form(f): Fields,
) -> Page {
    check_csrf(&ui, &session, f.get("csrf"))?;
    let bulk = Bulk::parse(&action)?;
    let filter = bulk.filter(&f)?;
    let back = match bulk {
        Bulk::Cancel => "/jobs",
        _ => "/dlq",
    };
    if f.get("confirm").map(String::as_str) != Some("yes") {
        let count_filter = filter.clone();
        let count = with_engine(&ui, false, move |_, engine| engine.count(&count_filter)).await?;
        let fields = filter_fields(&filter);
        let verb = bulk.verb();
        let body = page(
            "confirm",
            html! {
                h1 { (verb) " jobs" }
                p #count { (count) " jobs" " match: "
                    @for (k, v) in &fields { code { (k) "=" (v) } " " } }
                @if count == 0 { p { "Nothing to do." } a href=(back) { "Back" } }
                @else {
                    form method="post" action=(format!("/bulk/{action}")) {
                        input type="hidden" name="csrf" value=(ui.csrf.token(&session));
                        input type="hidden" name="confirm" value="yes";
                        @for (k, v) in &fields { input type="hidden" name=(k) value=(v); }
                        button #confirm { (verb) " " (count) " jobs" }
                    }
                    " " a href=(back) { "Back" }
                }
            },
        );
        return Ok(Html(body.into_string()).into_response());
    }
    with_engine(&ui, true, move |context, engine| {
        let ids: Vec<String> = engine
            .list(&JobFilter {
                limit: u32::MAX,
                ..filter.clone()
            })?
            .into_iter()
            .map(|job| job.id)
            .collect();
        // No ids would mean "every dead job" to the DLQ operations.
        if ids.is_empty() {
            return Ok(());
        }
        match bulk {
            Bulk::Retry => {
                engine.dlq_retry(&ids, false, now_ms())?;
            }
            Bulk::Delete => {
                let removed = engine.dlq_remove(&ids)?;
                context.logs.remove(&removed);
            }
            Bulk::Cancel => {
                for id in &ids {
                    match engine.cancel(id, now_ms()) {
                        // It ended between the list and its cancel.
                        Err(crate::error::Error::Input { .. }) => {}
                        other => {
                            other?;
                        }
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(Redirect::to(back).into_response())
}
