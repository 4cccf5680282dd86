//! `queuectl ui`: a local web dashboard over the same queue, served by the
//! binary itself. The HTTP stack (axum on a small tokio runtime) lives
//! here and nowhere else; the engine stays synchronous, so each request
//! opens its own engine inside `spawn_blocking` and every action calls the
//! same engine operation as the CLI command that does it.
//!
//! Security: loopback by default; any other address needs a token (see
//! [`auth`]); actions are POSTs carrying the CSRF token of the browser's
//! session (see [`csrf`]); `--read-only` renders no form and refuses
//! every POST. Every piece of job data goes through maud, which escapes
//! it, or, streamed to a page, into a text node.

mod actions;
mod auth;
pub mod chart;
mod csrf;
pub mod cursor;
mod events;
mod graph;
mod html;
mod output;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::cli::UiArgs;
use crate::context::Context;
use crate::engine::Engine;
use crate::error::{EXIT_OK, Error, Result};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Ui {
    pub context: Context,
    pub read_only: bool,
    /// Required of every request when set.
    pub token: Option<String>,
    /// Derives each session's CSRF token, which its forms carry; a POST
    /// without its session's token is refused.
    pub csrf: csrf::Key,
    /// Set at Ctrl-C/SIGTERM: the event streams end.
    pub stopping: AtomicBool,
    /// Served on loopback without a token: only requests that name a
    /// loopback host are answered (a page elsewhere that rebinds its own
    /// name to 127.0.0.1 must not read the dashboard or its CSRF token).
    pub loopback_hosts_only: bool,
    /// The chart's minutes already over (see [`chart::Minutes`]).
    pub minutes: std::sync::Mutex<chart::Minutes>,
}

pub(crate) type Shared = Arc<Ui>;

/// Serves the dashboard until SIGINT or SIGTERM.
pub fn serve(context: &Context, args: &UiArgs) -> Result<u8> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        Error::input_with_hint(
            format!("`{}` is not an address to listen on", args.listen),
            "give IP:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free one)",
        )
    })?;
    let token = match args.token.as_deref() {
        Some("") => {
            return Err(Error::input(
                "the token (--token or QUEUECTL_UI_TOKEN) is empty",
            ));
        }
        token => token.map(str::to_string),
    };
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(Error::input_with_hint(
            format!(
                "refusing to serve the dashboard on `{addr}`, which is not a loopback address, without a token"
            ),
            "pass --token (or set QUEUECTL_UI_TOKEN), or listen on 127.0.0.1",
        ));
    }
    let tokenless = token.is_none();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the dashboard's runtime: {e}")))?;
    let ui = Arc::new(Ui {
        context: context.clone(),
        read_only: args.read_only,
        token,
        csrf: csrf::Key::random(),
        stopping: AtomicBool::new(false),
        loopback_hosts_only: addr.ip().is_loopback() && tokenless,
        minutes: std::sync::Mutex::default(),
    });
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::input(format!("cannot listen on `{addr}`: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("the listening address: {e}")))?;
        let url = format!("http://{bound}/");
        crate::output::print_out(&format!("queuectl ui: {url}\n"))?;
        if ui.token.is_some() {
            eprintln!(
                "note: every request needs the token: open {url}?token=… once (a cookie keeps it), or send `Authorization: Bearer …`"
            );
        }
        if ui.read_only {
            eprintln!("note: read-only: no action is offered, every POST is refused");
        }
        if args.open {
            open_browser(&url);
        }
        let app = router(ui.clone());
        let stopper = ui.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                stopper.stopping.store(true, Ordering::SeqCst);
            })
            .await
            .map_err(|e| Error::Internal(format!("the dashboard's server failed: {e}")))
    })?;
    // The event streams' threads notice `stopping` within a second.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(EXIT_OK)
}

fn router(ui: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/fragment/overview", get(pages::overview_fragment))
        .route("/events", get(events::events))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/fragment/job/{id}", get(pages::job_fragment))
        .route("/events/job/{id}", get(output::job_output))
        .route("/queues", get(pages::queues))
        .route("/dlq", get(pages::dlq))
        .route("/schedules", get(pages::schedules_handler))
        .route("/graph", get(pages::graph))
        .route("/jobs/{id}/retry", post(actions::retry))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/jobs/{id}/delete", post(actions::delete))
        .route("/queues/{queue}/pause", post(actions::pause))
        .route("/queues/{queue}/resume", post(actions::resume))
        .route("/bulk/{action}", post(actions::bulk))
        .fallback(|| async { UiError::new(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            auth::guard,
        ))
        .with_state(ui)
}

/// Resolves at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// `xdg-open URL`, if there is one; never fails the server.
fn open_browser(url: &str) {
    let spawned = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("note: could not run xdg-open; open {url} yourself");
    }
}

/// A failed request: its status and a message for people.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for UiError {
    fn from(error: Error) -> UiError {
        let status = match &error {
            Error::UnknownJob(_) => StatusCode::NOT_FOUND,
            Error::Input { .. } | Error::Jobfile(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut message = error.to_string();
        if let Error::Input {
            hint: Some(hint), ..
        } = &error
        {
            message.push_str(&format!(" (hint: {hint})"));
        }
        UiError::new(status, message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error");
        let body = html::error_page(self.status.as_u16(), title, &self.message);
        (self.status, Html(body.into_string())).into_response()
    }
}

pub(crate) type Page = std::result::Result<Response, UiError>;

/// Runs `f` on the blocking pool with an engine of its own: a read one,
/// or (`write`) one that writes durably.
pub(crate) async fn with_engine<T: Send + 'static>(
    ui: &Shared,
    write: bool,
    f: impl FnOnce(&Context, &mut Engine) -> Result<T> + Send + 'static,
) -> std::result::Result<T, UiError> {
    let ui = ui.clone();
    tokio::task::spawn_blocking(move || {
        let mut engine = match write {
            true => ui.context.engine()?,
            false => ui.context.engine_read()?,
        };
        f(&ui.context, &mut engine)
    })
    .await
    .map_err(|e| {
        UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("a request failed: {e}"),
        )
    })?
    .map_err(UiError::from)
}
