//! The dashboard's actions: each a POST carrying the CSRF token, each
//! through the same engine operation as the CLI command that does it
//! (`dlq retry`, `cancel`, `dlq remove`, `queue pause|resume`), then a
//! 303 back to a page that shows the result.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect};
use maud::html;

use super::auth::check_csrf;
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

/// `dlq retry ID`.
pub(crate) async fn retry(
    State(ui): State<Shared>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    check_csrf(&ui, f.get("csrf"))?;
    let id = with_engine(&ui, true, move |_, engine| {
        let id = engine.resolve_job(&arg)?;
        engine.dlq_retry(std::slice::from_ref(&id), false, now_ms())?;
        Ok(id)
    })
    .await?;
    back_to_job(&id)
}

/// `cancel ID`.
pub(crate) async fn cancel(
    State(ui): State<Shared>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    check_csrf(&ui, f.get("csrf"))?;
    let id = with_engine(&ui, true, move |_, engine| {
        let id = engine.resolve_job(&arg)?;
        engine.cancel(&id, now_ms())?;
        Ok(id)
    })
    .await?;
    back_to_job(&id)
}

/// `dlq remove ID` (and its logs); back to the DLQ, as the job is gone.
pub(crate) async fn delete(
    State(ui): State<Shared>,
    Path(arg): Path<String>,
    Form(f): Fields,
) -> Page {
    check_csrf(&ui, f.get("csrf"))?;
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
    queue: String,
    fields: HashMap<String, String>,
    pause: bool,
) -> Page {
    check_csrf(&ui, fields.get("csrf"))?;
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
    Path(queue): Path<String>,
    Form(f): Fields,
) -> Page {
    set_paused(ui, queue, f, true).await
}

/// `queue resume Q`.
pub(crate) async fn resume(
    State(ui): State<Shared>,
    Path(queue): Path<String>,
    Form(f): Fields,
) -> Page {
    set_paused(ui, queue, f, false).await
}

/// `dlq retry` of every dead job matching a filter: without `confirm=yes`
/// a page says how many match and asks; with it, they are retried (the
/// ids matched at that moment, in one transaction, as `dlq retry ID…`).
pub(crate) async fn bulk_retry(State(ui): State<Shared>, Form(f): Fields) -> Page {
    check_csrf(&ui, f.get("csrf"))?;
    let filter = JobFilter {
        state: Some(JobState::Dead),
        before: None,
        ..job_filter(&f)?
    };
    if f.get("confirm").map(String::as_str) != Some("yes") {
        let count_filter = filter.clone();
        let count = with_engine(&ui, false, move |_, engine| engine.count(&count_filter)).await?;
        let fields = filter_fields(&filter);
        let body = page(
            "confirm",
            html! {
                h1 { "Retry dead jobs" }
                p #count { (count) " jobs" " match: "
                    @for (k, v) in &fields { code { (k) "=" (v) } " " } }
                @if count == 0 { p { "Nothing to retry." } a href="/dlq" { "Back" } }
                @else {
                    form method="post" action="/bulk/retry" {
                        input type="hidden" name="csrf" value=(ui.csrf);
                        input type="hidden" name="confirm" value="yes";
                        @for (k, v) in &fields { input type="hidden" name=(k) value=(v); }
                        button #confirm { "Retry " (count) " jobs" }
                    }
                    " " a href="/dlq" { "Cancel" }
                }
            },
        );
        return Ok(Html(body.into_string()).into_response());
    }
    with_engine(&ui, true, move |_, engine| {
        let ids: Vec<String> = engine
            .list(&JobFilter {
                limit: u32::MAX,
                ..filter.clone()
            })?
            .into_iter()
            .map(|job| job.id)
            .collect();
        // No ids would mean "every dead job" to dlq_retry: nothing matched.
        if !ids.is_empty() {
            engine.dlq_retry(&ids, false, now_ms())?;
        }
        Ok(())
    })
    .await?;
    Ok(Redirect::to("/dlq").into_response())
}
