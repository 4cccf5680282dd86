//! The web side of the tests: a small HTTP/1.1 client on a TCP stream
//! (the dashboard's routes, chromedriver's WebDriver API) and a headless
//! Chromium driven over WebDriver, both without a client library.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{Env, TIMEOUT, Worker, require};

/// A response: its status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One request to `http://ADDR/PATH` (`addr`: `127.0.0.1:PORT`), its
/// connection closed after the response.
pub fn request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((kind, text)) = body {
        head.push_str(&format!(
            "Content-Type: {kind}\r\nContent-Length: {}\r\n",
            text.len()
        ));
    }
    head.push_str("\r\n");
    if let Some((_, text)) = body {
        head.push_str(text);
    }
    stream.write_all(head.as_bytes()).expect("send a request");
    parse_response(&read_response(&mut stream))
}

/// Reads one response: its head, then as much body as it says (some
/// servers keep the connection open whatever the request asked).
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let complete = |raw: &[u8]| -> bool {
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        if let Some(length) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            return body.len() >= length;
        }
        head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
    };
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return raw,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if complete(&raw) {
                    return raw;
                }
            }
            // A signal to the test process (a child's exit) interrupts
            // the read; it is not the server's answer.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read a response: {e}"),
        }
    }
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = unchunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A chunked body, joined.
fn unchunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        let stop = (start + size).min(rest.len());
        body.extend_from_slice(&rest[start..stop]);
        rest = &rest[(stop + 2).min(rest.len())..];
    }
    body
}

/// A server-sent event stream, read as it comes: `GET PATH` over
/// HTTP/1.0, so the body is the events themselves (no chunk framing),
/// until the server closes the connection.
pub struct EventStream {
    stream: TcpStream,
    /// What came so far: the response's head, then the events.
    raw: Vec<u8>,
    closed: bool,
}

impl EventStream {
    /// `addr`: `127.0.0.1:PORT`.
    pub fn open(addr: &str, path: &str) -> EventStream {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
        EventStream {
            stream,
            raw: Vec::new(),
            closed: false,
        }
    }

    /// What came so far: the response's head, then the events.
    pub fn seen(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// Reads what has come; false once the server closed the stream.
    fn read(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("read the event stream: {e}"),
        }
        !self.closed
    }

    /// Waits until what came contains `text`; where it ends.
    pub fn wait_for(&mut self, text: &str) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(at) = self.seen().find(text) {
                return at + text.len();
            }
            assert!(
                Instant::now() < deadline && !self.closed,
                "no {text:?} in {}",
                self.seen()
            );
            self.read();
        }
    }

    /// Waits until the server closes the stream.
    pub fn wait_closed(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.read() {
            assert!(
                Instant::now() < deadline,
                "the stream goes on: {}",
                self.seen()
            );
        }
    }
}

/// Standard base64 (WebDriver's screenshots), decoded.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGVsbG8h"), b"hello!");
    assert_eq!(base64("aGk="), b"hi");
    assert_eq!(base64(""), b"");
}

/// Where the browser tests leave a screenshot of each page (an artifact
/// of the test run).
pub fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    dir
}

/// The element key of the WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a browser waits for a page to show something.
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium under chromedriver, one session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. None where they are not
    /// installed, outside CI (see [`require`]); in CI that fails the test,
    /// and so does a browser that does not start.
    pub fn start() -> Option<Browser> {
        if !require("chromedriver") || !(require("chromium") || require("chromium-browser")) {
            return None;
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let profile = tempfile::tempdir().expect("a browser profile");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("chromium");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("the browser did not start: {created}"))
            .to_string();
        Some(browser)
    }

    /// One WebDriver command; its `value`. Fails the test on an error
    /// other than a missing element.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let text = body.map(|b| b.to_string());
        let response = request(
            method,
            &self.addr,
            path,
            &[],
            text.as_deref().map(|t| ("application/json", t)),
        );
        let value: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}: {}", response.body));
        let value = value["value"].clone();
        // A missing element, or one the page replaced (live fragments
        // do): the callers look again.
        let looked_again = ["no such element", "stale element reference"];
        if response.status != 200 && !looked_again.iter().any(|e| value["error"] == *e) {
            panic!("WebDriver {method} {path}: {}: {value}", response.status);
        }
        value
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })));
    }

    /// The first element `css` selects, now.
    pub fn find(&self, css: &str) -> Option<String> {
        let found = self.call(
            "POST",
            &self.at("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits until `css` selects an element (the page may change under it:
    /// server-sent events, a reload after a form).
    pub fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(element) = self.find(css) {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed `{css}`:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The rendered text of the element `css` selects (waited for; looked
    /// up again when the page replaced it meanwhile).
    pub fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let element = self.wait_for(css);
            let text = self.call("GET", &self.at(&format!("/element/{element}/text")), None);
            if let Some(text) = text.as_str() {
                return text.to_string();
            }
            assert!(Instant::now() < deadline, "`{css}` kept changing");
        }
    }

    /// Waits until the text of `css` is `expected`.
    pub fn wait_for_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self
                .find(css)
                .map(|element| {
                    self.call("GET", &self.at(&format!("/element/{element}/text")), None)
                })
                .and_then(|v| v.as_str().map(str::to_string));
            if text.as_deref() == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never read `{expected}` (it reads {text:?}):\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let element = self.wait_for(css);
            let clicked = self.call(
                "POST",
                &self.at(&format!("/element/{element}/click")),
                Some(json!({})),
            );
            if clicked["error"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "`{css}` kept changing");
        }
    }

    /// Runs `script` (a function body) in the page; what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The page's HTML now.
    pub fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the page as `screenshots()/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", &self.at("/screenshot"), None);
        let png = base64(data.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = screenshots().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("save a screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                "DELETE",
                &self.addr,
                &format!("/session/{}", self.session),
                &[],
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts `queuectl ui --listen 127.0.0.1:0 EXTRA…` in `env`; the
/// process (stopped on drop) and the address it printed (`127.0.0.1:PORT`).
pub fn start_ui(env: &Env, extra: &[&str]) -> (Worker, String) {
    let process = env.spawn(&[&["ui", "--listen", "127.0.0.1:0"], extra].concat());
    process.wait_for_output("http://");
    let output = process.output();
    let addr = output
        .lines()
        .find_map(|l| l.strip_prefix("queuectl ui: http://"))
        .unwrap_or_else(|| panic!("no URL in {output:?}"))
        .trim_end_matches('/')
        .to_string();
    (process, addr)
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The browser starts, renders a page, and what a page escapes shows as
/// text: the harness itself, checked on a page of its own.
#[test]
fn the_browser_renders_a_page_and_takes_its_picture() {
    let Some(browser) = Browser::start() else {
        return;
    };
    browser.goto("data:text/html,<h1 id='t'>queuectl &lt;script&gt;</h1>");
    assert_eq!(browser.text("#t"), "queuectl <script>");
    assert!(browser.find("#missing").is_none());
    let shot = browser.screenshot("harness");
    assert!(std::fs::metadata(shot).expect("a file").len() > 100);
}
