//! `queuectl ui` in a real browser (headless Chromium over WebDriver):
//! what a user sees and does on the pages, with the queue changed from
//! the command line beside it. Each page's screenshot is left in
//! `target/tmp/ui-screenshots/`.

use super::harness::{Env, Gate, Worker, wait_until};
use super::web::Browser;

/// A running dashboard and its address.
struct Ui {
    _server: Worker,
    /// `http://127.0.0.1:PORT`
    url: String,
}

/// Starts `queuectl ui` on a free loopback port.
fn start_ui(env: &Env) -> Ui {
    let (server, addr) = super::web::start_ui(env, &[]);
    Ui {
        _server: server,
        url: format!("http://{addr}"),
    }
}

/// The overview follows the queue without a reload: a job enqueued from
/// the command line shows up in the open page.
#[test]
fn the_overview_shows_a_job_enqueued_from_the_cli_without_a_reload() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let env = Env::new();
    env.enqueue(&["echo", "first"]);
    let ui = start_ui(&env);
    browser.goto(&format!("{}/", ui.url));
    browser.wait_for("#live");
    // A mark on the window: a reload would lose it.
    browser.execute("window.queuectlMark = 42; return 1;");
    let id = env.enqueue(&["echo", "from the command line"]);
    browser.wait_for(&format!("tr.job[data-id='{id}']"));
    assert_eq!(
        browser.execute("return window.queuectlMark;"),
        serde_json::json!(42),
        "the page was not reloaded"
    );
    assert!(
        browser.text("td[data-queue='default'][data-state='pending']") == "2",
        "both jobs count as pending: {}",
        browser.source()
    );
    browser.screenshot("overview");
    browser.goto(&format!("{}/jobs", ui.url));
    browser.wait_for(&format!("tr.job[data-id='{id}'] a"));
    browser.screenshot("jobs");
    // The other pages render too (their screenshots are artifacts).
    for page in ["schedules", "graph"] {
        browser.goto(&format!("{}/{page}", ui.url));
        browser.wait_for("nav");
        browser.screenshot(page);
    }
}

/// A dead job's output is read on its page, and the retry button there
/// sends it back to a worker, which completes it.
#[test]
fn a_dead_job_is_read_and_retried_from_its_page() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[retry.default]\nmax_retries = 0\n\
         [jobs.flaky]\ncommand = \"if [ -f fixed ]; then echo fixed-now; else echo '<b>broken</b> output'; exit 3; fi\"\n",
    );
    let (code, output) = env.spawn(&["run", "--until-idle"]).wait();
    assert_eq!(code, Some(1), "{output}");
    let id = env.jobs_of("flaky")[0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(env.state(&id), "dead");
    env.write("fixed", "");
    let ui = start_ui(&env);
    browser.goto(&format!("{}/dlq", ui.url));
    browser.wait_for("tr.group[data-definition='flaky']");
    browser.screenshot("dlq");
    browser.goto(&format!("{}/jobs/{id}", ui.url));
    browser.wait_for_text("#job-state", "dead");
    // The output is text, its markup shown, not applied.
    assert_eq!(
        browser.text("pre.output[data-attempt='1']"),
        "<b>broken</b> output"
    );
    browser.screenshot("job-dead");
    let _worker = env.worker(&["--count", "1"]);
    browser.click("#retry");
    browser.wait_for_text("#job-state", "completed");
    assert_eq!(env.state(&id), "completed");
    browser.screenshot("job-completed");
}

/// A running job's output shows on its open page as the job writes it
/// (the job waits on a gate the test opens, so the line cannot have been
/// there when the page loaded), as text, and the page then shows the
/// job's end, all without a reload.
#[test]
fn a_running_jobs_output_appears_on_its_page_as_it_is_written() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let env = Env::new();
    let (first, second) = (Gate::new(&env, "first"), Gate::new(&env, "second"));
    let id = env.enqueue(&[
        "--",
        "read a < first; echo '<i>first</i>'; read b < second; echo second",
    ]);
    let _worker = env.worker(&["--count", "1"]);
    wait_until("the job runs", || env.state(&id) == "processing");
    let ui = start_ui(&env);
    browser.goto(&format!("{}/jobs/{id}", ui.url));
    browser.wait_for_text("#job-state", "processing");
    browser.wait_for_text("pre.output[data-attempt='1']", "");
    browser.execute("window.queuectlMark = 42; return 1;");

    first.release("go");
    browser.wait_for_text("pre.output[data-attempt='1']", "<i>first</i>");
    assert_eq!(
        browser
            .execute("return document.querySelectorAll('#job-live i, #job-live script').length;"),
        serde_json::json!(0),
        "the output is text, not markup"
    );
    assert_eq!(env.state(&id), "processing", "the job is still held");
    browser.screenshot("job-running");

    second.release("go");
    browser.wait_for_text("#job-state", "completed");
    browser.wait_for_text("pre.output[data-attempt='1']", "<i>first</i>\nsecond");
    assert!(
        browser
            .text("div.attempt[data-attempt='1'] p")
            .contains("exit code 0"),
        "{}",
        browser.source()
    );
    assert_eq!(
        browser.execute("return window.queuectlMark;"),
        serde_json::json!(42),
        "the page was not reloaded"
    );
}

/// Pausing a queue on the queues page stops its claims on a running
/// worker; resuming it there lets its job run.
#[test]
fn a_queue_paused_from_the_page_claims_nothing_until_resumed() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let env = Env::new();
    let _worker = env.worker(&["--count", "1"]);
    let first = env.enqueue(&["true"]);
    wait_until("the first job completes", || {
        env.state(&first) == "completed"
    });
    let ui = start_ui(&env);
    browser.goto(&format!("{}/queues", ui.url));
    browser.click("#pause-default");
    browser.wait_for("#resume-default");
    let paused = env.items(&["queue", "list"]);
    assert_eq!(paused[0]["name"], "default");
    assert_eq!(paused[0]["paused"], true, "{paused:?}");
    browser.screenshot("queues");
    // Enqueued first, the held job would be claimed first if it could.
    let held = env.enqueue(&["echo", "held"]);
    let other = env.enqueue(&["--queue", "other", "echo", "other"]);
    wait_until("the other queue's job completes", || {
        env.state(&other) == "completed"
    });
    assert_eq!(env.state(&held), "pending");
    browser.click("#resume-default");
    browser.wait_for("#pause-default");
    wait_until("the resumed job completes", || {
        env.state(&held) == "completed"
    });
}
