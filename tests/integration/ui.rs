//! `queuectl ui`: the dashboard over HTTP, with a tiny HTTP/1.1 client
//! on std's TcpStream: every route's status, escaping, the actions (each
//! checked through the CLI), CSRF, read-only, the token, and the events.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::harness::{Env, Gate, TIMEOUT, Worker};
use super::web::EventStream;

/// A started `queuectl ui`, its base address (`127.0.0.1:PORT`), and the
/// session cookie it gave this client (kept and sent back, as a browser
/// does, unless a request names its own `Cookie`).
struct Ui {
    _process: Worker,
    addr: String,
    jar: RefCell<Option<String>>,
}

fn start(env: &Env, extra: &[&str]) -> Ui {
    let (process, addr) = super::web::start_ui(env, extra);
    Ui {
        addr,
        _process: process,
        jar: RefCell::new(None),
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    /// The value of the `queuectl_session` cookie it sets, if it sets one.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .lines()
            .filter_map(|l| l.strip_prefix("set-cookie: queuectl_session="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string())
            .next()
    }

    /// The CSRF token of its first form.
    fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + 19;
        self.body[at..].split('"').next().map(str::to_string)
    }
}

/// A browser session: its cookie (`queuectl_session=…`) and the CSRF
/// token its forms carry.
#[derive(Debug)]
struct Session {
    cookie: String,
    csrf: String,
}

impl Ui {
    /// A request with this client's session cookie, unless `headers`
    /// name a `Cookie`; the first session cookie it is given is kept.
    fn request(&self, method: &str, path: &str, headers: &[&str], body: &str) -> Reply {
        if headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("cookie:"))
        {
            return self.raw(method, path, headers, body);
        }
        let jar = self.jar.borrow().clone();
        let cookie = jar.as_ref().map(|c| format!("Cookie: {c}"));
        let mut all = headers.to_vec();
        all.extend(cookie.as_deref());
        let reply = self.raw(method, path, &all, body);
        if jar.is_none()
            && let Some(id) = reply.session_cookie()
        {
            *self.jar.borrow_mut() = Some(format!("queuectl_session={id}"));
        }
        reply
    }

    /// A request with these headers only (no cookie but theirs).
    fn raw(&self, method: &str, path: &str, headers: &[&str], body: &str) -> Reply {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(name, value)| (name.trim(), value.trim()))
            .collect();
        let form = (method == "POST").then_some(("application/x-www-form-urlencoded", body));
        let response = super::web::request(method, &self.addr, path, &headers, form);
        let mut head = String::new();
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        Reply {
            status: response.status,
            headers: head.to_ascii_lowercase(),
            body: response.body,
        }
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], "")
    }

    fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, &[], body)
    }

    /// The CSRF token the forms of this client's session carry.
    fn csrf(&self) -> String {
        self.get("/queues")
            .csrf()
            .or_else(|| self.get("/dlq").csrf())
            .expect("a form with its CSRF token")
    }

    /// A new session, as a browser without cookies gets one (`headers`:
    /// what else it sends, e.g. the dashboard's token).
    fn session(&self, headers: &[&str]) -> Session {
        let reply = self.raw("GET", "/queues", headers, "");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let id = reply.session_cookie().expect("a session cookie");
        assert!(
            reply.headers.contains(&format!(
                "set-cookie: queuectl_session={id}; httponly; samesite=strict; path=/\r\n"
            )),
            "{reply:?}"
        );
        Session {
            cookie: format!("queuectl_session={id}"),
            csrf: reply.csrf().expect("a form with its CSRF token"),
        }
    }
}

/// A job that dies at its first failure, run to its death.
fn dead_job(env: &Env, command: &str) -> String {
    let id = env.enqueue(&[command, "--max-retries", "0"]);
    let _ = env.cmd(["run", "--until-idle"]).output().expect("run");
    assert_eq!(env.state(&id), "dead");
    id
}

#[test]
fn every_page_answers_and_job_output_is_text() {
    let env = Env::new();
    let id = dead_job(&env, "echo '<script>alert(1)</script>'; exit 3");
    let ui = start(&env, &[]);
    for (path, status) in [
        ("/", 200),
        ("/fragment/overview", 200),
        ("/jobs", 200),
        ("/jobs?state=dead&queue=default&origin=cli&q=alert", 200),
        (&format!("/jobs/{id}"), 200),
        (&format!("/fragment/job/{id}"), 200),
        ("/queues", 200),
        ("/dlq", 200),
        ("/schedules", 200),
        ("/graph", 200),
        ("/jobs/no-such-job", 404),
        ("/jobs?state=sideways", 400),
        ("/jobs?origin=mars", 400),
        ("/jobs?before=not-a-cursor", 400),
        ("/no-such-page", 404),
    ] {
        assert_eq!(ui.get(path).status, status, "GET {path}");
    }
    let overview = ui.get("/").body;
    assert!(overview.contains("<div id=\"live\">"), "{overview}");
    assert!(overview.contains("new EventSource('/events')"));
    assert!(
        overview.contains("<td data-queue=\"default\" data-state=\"dead\">1</td>"),
        "{overview}"
    );
    assert!(overview.contains(&format!(
        "<tr class=\"job\" data-id=\"{id}\" data-state=\"dead\">"
    )));
    assert!(overview.contains("<svg id=\"throughput\""));
    let job = ui.get(&format!("/jobs/{id}")).body;
    assert!(
        job.contains("<span id=\"job-state\" class=\"state-dead\">dead</span>"),
        "{job}"
    );
    assert!(
        job.contains(
            "<pre class=\"output\" data-attempt=\"1\">&lt;script&gt;alert(1)&lt;/script&gt;"
        ),
        "{job}"
    );
    assert!(job.contains("<button id=\"retry\">") && job.contains("<button id=\"delete\">"));
    let list = ui.get("/jobs?q=alert").body;
    for page in [&job, &list, &overview, &ui.get("/dlq").body] {
        assert!(page.contains("&lt;script&gt;alert(1)"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
    }
    let group = ui.get("/dlq").body;
    assert!(
        group.contains("<tr class=\"group\" data-definition=\"\" data-exit-code=\"3\">"),
        "{group}"
    );
}

#[test]
fn the_jobs_list_pages_by_cursor() {
    let env = Env::new();
    let lines: String = (0..60)
        .map(|i| format!("{{\"command\":\"echo {i}\"}}\n"))
        .collect();
    env.write("jobs.jsonl", &lines);
    env.cmd(["enqueue", "--file", "jobs.jsonl"])
        .assert()
        .success();
    let ui = start(&env, &[]);
    let first = ui.get("/jobs").body;
    let rows = |page: &str| page.matches("<tr class=\"job\"").count();
    assert_eq!(rows(&first), 50);
    let at = first.find("<a id=\"next\" href=\"").expect("a next link") + 19;
    let next = first[at..]
        .split('"')
        .next()
        .expect("its href")
        .replace("&amp;", "&");
    let second = ui.get(&next);
    assert_eq!(second.status, 200);
    assert_eq!(rows(&second.body), 10);
    assert!(!second.body.contains("id=\"next\""));
}

#[test]
fn actions_change_the_queue_as_the_cli_shows() {
    let env = Env::new();
    let retried = dead_job(&env, "exit 3");
    let deleted = dead_job(&env, "exit 4");
    let ui = start(&env, &[]);
    let csrf = ui.csrf();
    let form = format!("csrf={csrf}");

    let reply = ui.post(&format!("/jobs/{retried}/retry"), &form);
    assert_eq!(reply.status, 303);
    assert!(
        reply
            .headers
            .contains(&format!("location: /jobs/{retried}")),
        "{reply:?}"
    );
    assert_eq!(env.state(&retried), "pending");

    let reply = ui.post(&format!("/jobs/{retried}/cancel"), &form);
    assert_eq!(reply.status, 303);
    assert_eq!(env.state(&retried), "cancelled");
    assert_eq!(
        ui.post(&format!("/jobs/{retried}/cancel"), &form).status,
        400,
        "already cancelled"
    );

    let reply = ui.post(&format!("/jobs/{deleted}/delete"), &form);
    assert_eq!(reply.status, 303);
    assert!(reply.headers.contains("location: /dlq"));
    assert!(
        !env.cmd(["show", &deleted])
            .output()
            .expect("show")
            .status
            .success()
    );

    let paused = |env: &Env| -> bool {
        env.items(&["queue", "list"])
            .iter()
            .find(|q| q["name"] == "default")
            .is_some_and(|q| q["paused"] == true)
    };
    assert_eq!(ui.post("/queues/default/pause", &form).status, 303);
    assert!(paused(&env));
    let queues = ui.get("/queues").body;
    assert!(
        queues.contains("<tr class=\"queue paused\" data-queue=\"default\">"),
        "{queues}"
    );
    assert!(queues.contains("<button id=\"resume-default\">"));
    assert_eq!(ui.post("/queues/default/resume", &form).status, 303);
    assert!(!paused(&env));
    assert!(
        ui.get("/queues")
            .body
            .contains("<button id=\"pause-default\">")
    );

    // Bulk: a count and a confirmation first, then every match.
    let a = dead_job(&env, "echo bulk; exit 5");
    let b = dead_job(&env, "echo bulk; exit 6");
    let other = dead_job(&env, "exit 7");
    let ask = ui.post("/bulk/retry", &format!("{form}&state=dead&q=bulk"));
    assert_eq!(ask.status, 200);
    assert!(ask.body.contains("2 jobs"), "{}", ask.body);
    assert!(ask.body.contains("<button id=\"confirm\">"));
    assert_eq!(
        env.state(&a),
        "dead",
        "nothing changes before the confirmation"
    );
    let done = ui.post(
        "/bulk/retry",
        &format!("{form}&state=dead&q=bulk&confirm=yes"),
    );
    assert_eq!(done.status, 303);
    assert_eq!(
        (env.state(&a), env.state(&b)),
        ("pending".into(), "pending".into())
    );
    assert_eq!(env.state(&other), "dead", "only the matching jobs");
    let none = ui.post(
        "/bulk/retry",
        &format!("{form}&q=nothing-matches&confirm=yes"),
    );
    assert_eq!(none.status, 303);
    assert_eq!(
        env.state(&other),
        "dead",
        "no match retries nothing, not everything"
    );

    // Bulk delete of dead jobs, and bulk cancel of waiting ones: the
    // same confirmation, then the CLI's operations.
    let gone = dead_job(&env, "echo doomed; exit 8");
    let ask = ui.post("/bulk/delete", &format!("{form}&state=dead&q=doomed"));
    assert!(ask.body.contains("1 jobs"), "{}", ask.body);
    assert_eq!(env.state(&gone), "dead");
    let done = ui.post(
        "/bulk/delete",
        &format!("{form}&state=dead&q=doomed&confirm=yes"),
    );
    assert_eq!(done.status, 303);
    env.cmd(["show", &gone]).assert().code(2);
    assert_eq!(env.state(&other), "dead", "only the matching jobs");
    let waiting = env.enqueue(&["--delay", "1h", "echo later"]);
    let page = ui.get("/jobs?state=pending");
    assert!(page.body.contains("id=\"bulk-cancel\""), "{}", page.body);
    let done = ui.post(
        "/bulk/cancel",
        &format!("{form}&state=pending&q=later&confirm=yes"),
    );
    assert_eq!(done.status, 303);
    assert_eq!(env.state(&waiting), "cancelled");
    // A cancel needs a state a job can be cancelled in; an unknown
    // action is refused.
    assert_eq!(
        ui.post("/bulk/cancel", &format!("{form}&state=dead"))
            .status,
        400
    );
    assert_eq!(ui.post("/bulk/explode", &form).status, 400);
}

#[test]
fn posts_need_the_csrf_token_and_read_only_refuses_them() {
    let env = Env::new();
    let id = dead_job(&env, "exit 3");
    let ui = start(&env, &[]);
    assert_eq!(ui.post(&format!("/jobs/{id}/retry"), "").status, 403);
    assert_eq!(
        ui.post(&format!("/jobs/{id}/retry"), "csrf=0123").status,
        403
    );
    assert_eq!(ui.post("/queues/default/pause", "csrf=wrong").status, 403);
    assert_eq!(env.state(&id), "dead");

    let read_only = start(&env, &["--read-only"]);
    for path in [
        format!("/jobs/{id}"),
        "/queues".into(),
        "/dlq".into(),
        "/".into(),
    ] {
        let page = read_only.get(&path);
        assert_eq!(page.status, 200);
        assert!(
            !page.body.contains("<form method=\"post\""),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("method=\"post\""), "{path}");
    }
    let csrf = ui.csrf();
    assert_eq!(
        read_only
            .post(&format!("/jobs/{id}/retry"), &format!("csrf={csrf}"))
            .status,
        403
    );
    assert_eq!(env.state(&id), "dead");
}

/// Each browser session gets its own CSRF token, and a POST is taken
/// only with the token of the session its own cookie names.
#[test]
fn each_session_has_its_own_csrf_token() {
    let env = Env::new();
    let id = dead_job(&env, "exit 3");
    let ui = start(&env, &[]);
    let (a, b) = (ui.session(&[]), ui.session(&[]));
    assert_ne!(a.cookie, b.cookie);
    assert_ne!(a.csrf, b.csrf);
    // A session keeps its token on every page, and its cookie.
    let cookie_a = format!("Cookie: {}", a.cookie);
    let again = ui.raw("GET", &format!("/jobs/{id}"), &[&cookie_a], "");
    assert_eq!(again.csrf().as_deref(), Some(a.csrf.as_str()), "{again:?}");
    assert_eq!(again.session_cookie(), None, "{again:?}");
    // A malformed session cookie is replaced.
    let forged = ui.raw("GET", "/", &["Cookie: queuectl_session=../x"], "");
    assert!(forged.session_cookie().is_some(), "{forged:?}");

    let retry = format!("/jobs/{id}/retry");
    let refused = |reply: Reply| {
        assert_eq!(reply.status, 403, "{reply:?}");
        assert!(
            reply.body.contains("CSRF token is missing or stale"),
            "{}",
            reply.body
        );
        assert_eq!(env.state(&id), "dead", "nothing changed");
    };
    let cookie_b = format!("Cookie: {}", b.cookie);
    // A's token with B's cookie, and A's with no session cookie at all
    // (none, another cookie, a session made up).
    refused(ui.raw("POST", &retry, &[&cookie_b], &format!("csrf={}", a.csrf)));
    refused(ui.raw("POST", &retry, &[], &format!("csrf={}", a.csrf)));
    refused(ui.raw(
        "POST",
        &retry,
        &["Cookie: other=1"],
        &format!("csrf={}", a.csrf),
    ));
    refused(ui.raw(
        "POST",
        &retry,
        &["Cookie: queuectl_session=0123456789abcdef0123456789abcdef"],
        &format!("csrf={}", a.csrf),
    ));
    // B's own token with B's cookie.
    let reply = ui.raw("POST", &retry, &[&cookie_b], &format!("csrf={}", b.csrf));
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(env.state(&id), "pending");

    // Behind a token: `?token=` sets both cookies, which together carry
    // a POST; another process's token for the same session is refused.
    let guarded = start(&env, &["--token", "s3cret"]);
    let first = guarded.raw("GET", "/queues?token=s3cret", &[], "");
    assert!(first.headers.contains("set-cookie: queuectl_token=s3cret;"));
    let session = first.session_cookie().expect("a session cookie");
    let csrf = first.csrf().expect("a CSRF token");
    let cookies = format!("Cookie: queuectl_token=s3cret; queuectl_session={session}");
    let elsewhere = ui
        .raw(
            "GET",
            "/queues",
            &[&format!("Cookie: queuectl_session={session}")],
            "",
        )
        .csrf()
        .expect("a CSRF token");
    assert_ne!(elsewhere, csrf, "each process has its own key");
    let pause = |csrf: &str| {
        guarded.raw(
            "POST",
            "/queues/default/pause",
            &[&cookies],
            &format!("csrf={csrf}"),
        )
    };
    assert_eq!(pause(&elsewhere).status, 403);
    assert_eq!(pause(&csrf).status, 303);
    let bearer = guarded.session(&["Authorization: Bearer s3cret"]);
    let resume = guarded.raw(
        "POST",
        "/queues/default/resume",
        &[
            "Authorization: Bearer s3cret",
            &format!("Cookie: {}", bearer.cookie),
        ],
        &format!("csrf={}", bearer.csrf),
    );
    assert_eq!(resume.status, 303, "{resume:?}");
}

/// Without a token, a loopback dashboard answers only requests that
/// name a loopback host: a page elsewhere whose name was rebound to
/// 127.0.0.1 (DNS rebinding) reads nothing, not even the CSRF token.
#[test]
fn a_tokenless_dashboard_answers_only_loopback_host_names() {
    let env = Env::new();
    let ui = start(&env, &[]);
    let port = ui.addr.rsplit(':').next().expect("a port");
    for host in [ui.addr.clone(), format!("localhost:{port}")] {
        let reply = ui.request("GET", "/queues", &[&format!("Host: {host}")], "");
        assert_eq!(reply.status, 200, "{host}");
    }
    let reply = ui.request(
        "GET",
        "/queues",
        &[&format!("Host: evil.example:{port}")],
        "",
    );
    assert_eq!(reply.status, 421, "{}", reply.body);
    assert!(!reply.body.contains("csrf"), "{}", reply.body);
    // With a token, the token decides: any name may serve it.
    let guarded = start(&env, &["--token", "s3cret"]);
    let reply = guarded.request(
        "GET",
        "/",
        &["Host: dashboard.example", "Authorization: Bearer s3cret"],
        "",
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn a_token_guards_every_request() {
    let env = Env::new();
    let ui = start(&env, &["--token", "s3cret"]);
    assert_eq!(ui.get("/").status, 401);
    assert_eq!(ui.get("/events").status, 401);
    assert_eq!(
        ui.request("GET", "/", &["Authorization: Bearer wrong"], "")
            .status,
        401
    );
    assert_eq!(
        ui.request("GET", "/", &["Authorization: Bearer s3cret"], "")
            .status,
        200
    );
    let first = ui.get("/?token=s3cret");
    assert_eq!(first.status, 200);
    assert!(
        first
            .headers
            .contains("set-cookie: queuectl_token=s3cret; httponly"),
        "{first:?}"
    );
    assert_eq!(
        ui.request("GET", "/jobs", &["Cookie: queuectl_token=s3cret"], "")
            .status,
        200
    );
    assert_eq!(
        ui.request(
            "POST",
            "/queues/default/pause",
            &["Cookie: queuectl_token=s3cret"],
            ""
        )
        .status,
        403
    );

    let (code, output) = env.spawn(&["ui", "--listen", "0.0.0.0:0"]).wait();
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("not a loopback address"), "{output}");
    assert!(output.contains("--token"), "{output}");
    let (code, output) = env.spawn(&["ui", "--listen", "nonsense"]).wait();
    assert_eq!(code, Some(2), "{output}");
}

#[test]
fn events_follow_the_queue() {
    let env = Env::new();
    let ui = start(&env, &[]);
    let mut stream = TcpStream::connect(&ui.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a timeout");
    write!(stream, "GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", ui.addr).expect("send");
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    let mut wait_for = |text: &str, seen: &mut String| {
        let deadline = Instant::now() + TIMEOUT;
        while !seen.contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in {seen}");
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                seen.push_str(&line);
            }
        }
    };
    wait_for("event: overview", &mut seen);
    assert!(seen.contains("text/event-stream"), "{seen}");
    let id = env.enqueue(&["echo hello"]);
    wait_for(&format!("data-id=\"{id}\""), &mut seen);
}

/// A job's page follows its output as it is written: `/events/job/ID`
/// sends the first line while the job is still held (it waits on a FIFO
/// only the test opens), then the second once it is released, then the
/// end, and closes; the page itself escapes what was written so far.
#[test]
fn a_running_jobs_output_streams_as_it_is_written() {
    let env = Env::new();
    let gate = Gate::new(&env, "gate");
    let id = env.enqueue(&[
        "--",
        "echo '<script>first</script>'; read go < gate; echo \"second $go\"",
    ]);
    let _worker = env.worker(&["--count", "1"]);
    let ui = start(&env, &[]);
    super::harness::wait_until("the job runs", || env.state(&id) == "processing");
    let mut events = EventStream::open(&ui.addr, &format!("/events/job/{id}"));
    let attempt = events.wait_for("event: attempt\ndata: {\"attempt\":1}\n\n");
    let first = events.wait_for(
        "event: output\ndata: {\"attempt\":1,\"text\":\"<script>first</script>\\n\"}\n\n",
    );
    assert!(attempt < first, "{}", events.seen());
    events.wait_for("event: state\ndata: {\"state\":\"processing\"}\n\n");
    // Held: nothing more can have come.
    assert_eq!(env.state(&id), "processing");
    assert!(!events.seen().contains("second"), "{}", events.seen());
    assert!(!events.seen().contains("event: end"), "{}", events.seen());
    // Its page, meanwhile: the output so far as text, and the script
    // that follows the stream.
    let page = ui.get(&format!("/jobs/{id}")).body;
    assert!(
        page.contains(
            "<pre class=\"output\" data-attempt=\"1\">&lt;script&gt;first&lt;/script&gt;\n</pre>"
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!("new EventSource('/events/job/{id}')")),
        "{page}"
    );
    assert!(!page.contains("<script>first"), "{page}");

    gate.release("now");
    let second =
        events.wait_for("event: output\ndata: {\"attempt\":1,\"text\":\"second now\\n\"}\n\n");
    let end = events.wait_for("event: end\ndata: {\"exit_code\":0,\"state\":\"completed\"}\n\n");
    assert!(first < second && second < end, "{}", events.seen());
    events.wait_closed();
    assert_eq!(env.state(&id), "completed");
    // A finished job's page follows nothing; an unknown job has no stream.
    let page = ui.get(&format!("/jobs/{id}")).body;
    assert!(!page.contains("EventSource"), "{page}");
    assert_eq!(ui.get("/events/job/no-such-job").status, 404);
}

/// A waiting job's stream says its state, asks its page to refresh what
/// it waits for now and then, and ends when the job is cancelled before
/// it ever ran.
#[test]
fn a_waiting_jobs_stream_refreshes_and_ends_when_it_is_cancelled() {
    let env = Env::new();
    let id = env.enqueue(&["--delay", "1h", "echo never"]);
    let ui = start(&env, &[]);
    let mut events = EventStream::open(&ui.addr, &format!("/events/job/{id}"));
    events.wait_for("event: state\ndata: {\"state\":\"pending\"}\n\n");
    events.wait_for("event: state\ndata: {\"refresh\":true,\"state\":\"pending\"}\n\n");
    env.cmd(["cancel", &id]).assert().success();
    events.wait_for("event: end\ndata: {\"exit_code\":null,\"state\":\"cancelled\"}\n\n");
    events.wait_closed();
    assert!(
        !events.seen().contains("event: output"),
        "{}",
        events.seen()
    );
}

/// A job's stream ends when the server stops, even while the job runs
/// on (it would otherwise hold the server's shutdown).
#[test]
fn a_job_stream_ends_when_the_server_stops() {
    let env = Env::new();
    let gate = Gate::new(&env, "gate");
    let id = env.enqueue(&["--", "echo held; read go < gate"]);
    let _worker = env.worker(&["--count", "1"]);
    let (server, addr) = super::web::start_ui(&env, &[]);
    let mut events = EventStream::open(&addr, &format!("/events/job/{id}"));
    events.wait_for("\"text\":\"held\\n\"");
    server.signal("TERM");
    events.wait_closed();
    let (code, output) = server.wait();
    assert_eq!(code, Some(0), "{output}");
    assert!(!events.seen().contains("event: end"), "{}", events.seen());
    assert_eq!(env.state(&id), "processing", "the job runs on");
    gate.release("done");
}

/// The schedules page lists each watch with the last change it saw.
#[test]
fn watches_show_their_last_change() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.docs]\ncommand = \"true\"\nwatch = [\"*.md\"]\n\
         [jobs.nightly]\ncommand = \"true\"\nschedule = \"0 2 * * *\"\n",
    );
    env.cmd(["apply"]).assert().success();
    let ui = start(&env, &[]);
    let page = ui.get("/schedules").body;
    assert!(page.contains("data-definition=\"docs\""), "{page}");
    assert!(page.contains("no change seen yet"), "{page}");
    assert!(page.contains("0 2 * * *"), "{page}");
    env.enqueue(&["--job", "docs"]);
    let page = ui.get("/schedules").body;
    assert!(page.contains("last change"), "{page}");
    assert!(!page.contains("no change seen yet"), "{page}");
}

/// Each attempt names the worker that ran it and that worker's host; the
/// chart counts failed attempts (two for a job retried once), not dead
/// jobs; a schedule shows the ticks it missed (none here).
#[test]
fn attempts_show_their_worker_and_the_chart_counts_failed_attempts() {
    let env = Env::new();
    env.write(
        "queuectl.toml",
        "[jobs.nightly]\ncommand = \"true\"\nschedule = \"0 2 * * *\"\n",
    );
    env.cmd(["apply"]).assert().success();
    let id = env.enqueue(&["--max-retries", "1", "--", "exit 4"]);
    env.enqueue(&["true"]);
    // Exit 1: a job went dead.
    env.cmd(["run", "--until-idle"]).assert().code(1);
    assert_eq!(env.state(&id), "dead");
    let shown = env.json(&["show", &id]);
    let attempts = shown["attempt_history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{shown}");
    let ui = start(&env, &[]);
    let page = ui.get(&format!("/jobs/{id}")).body;
    for attempt in &attempts {
        let (Some(worker), Some(host)) = (attempt["worker"].as_str(), attempt["host"].as_str())
        else {
            panic!("an attempt without its worker or host: {shown}");
        };
        assert!(
            page.contains(&format!(
                ", on <span class=\"worker\">worker {worker}</span> at <span class=\"host\">{host}</span>"
            )),
            "{page}"
        );
    }
    let overview = ui.get("/").body;
    assert!(
        overview.contains("last hour: 1 completed, 2 failed attempts"),
        "{overview}"
    );
    let schedules = ui.get("/schedules").body;
    assert!(
        schedules.contains("<td class=\"missed\" data-missed=\"0\">0</td>"),
        "{schedules}"
    );
}

/// Text search reads a trigram index of the commands on SQLite. Another
/// program that deletes a job bypasses it: the search still answers
/// (reading every job), and queuectl's next delete that meets the stale
/// index rebuilds it.
#[test]
fn a_search_survives_rows_another_program_deleted() {
    let env = Env::new();
    let kept = env.enqueue(&["echo findme kept"]);
    let gone = env.enqueue(&["echo findme gone"]);
    let ui = start(&env, &[]);
    let page = ui.get("/jobs?q=findme").body;
    assert!(page.contains(&kept) && page.contains(&gone), "{page}");
    let conn = rusqlite::Connection::open(env.queue_file("queue.db")).expect("open");
    conn.execute("DELETE FROM jobs WHERE id = ?1", [&gone])
        .expect("a delete behind queuectl's back");
    // A row another program added is not in the index either.
    conn.execute(
        "INSERT INTO jobs (id, command, origin, queue, state, max_retries, backoff_base, run_at, \
         created_at, updated_at) SELECT 'crafted', 'echo findme crafted', origin, queue, \
         'pending', 0, 2.0, 0, 0, 0 FROM jobs WHERE id = ?1",
        [&kept],
    )
    .expect("an insert behind queuectl's back");
    drop(conn);
    let page = ui.get("/jobs?q=findme");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&kept), "{}", page.body);
    assert!(page.body.contains("crafted"), "{}", page.body);
    assert!(!page.body.contains(&gone), "{}", page.body);
    // Deleting the crafted row meets the stale index: mended, not refused.
    env.cmd(["cancel", "crafted"]).assert().success();
    env.cmd(["prune", "--state", "cancelled", "--older-than", "0s"])
        .assert()
        .success();
    let page = ui.get("/jobs?q=findme").body;
    assert!(page.contains(&kept) && !page.contains("crafted"), "{page}");
}
