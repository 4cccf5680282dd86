//! A small harness over the real binary: a temp dir per test, commands run
//! in it, JSON read back, conditions awaited with a deadline, and a guard
//! that stops any worker a test started.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// How long any awaited condition may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A temp dir with its own queue database: a SQLite file in it, or a
/// schema of its own on the test PostgreSQL server.
pub struct Env {
    dir: TempDir,
    pg: Option<PgSchema>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("a temp dir"),
            pg: None,
        }
    }

    /// An Env whose queue is on the test PostgreSQL server
    /// (`QUEUECTL_TEST_PG_URL`, see `scripts/pg-server`): every command
    /// gets it as `QUEUECTL_DB`. None when no server is configured: the
    /// test says so and returns, except where `QUEUECTL_REQUIRE_PG` is set
    /// (CI), where it fails.
    pub fn postgres() -> Option<Env> {
        let pg = PgSchema::create()?;
        Some(Env {
            dir: tempfile::tempdir().expect("a temp dir"),
            pg: Some(pg),
        })
    }

    /// The queue's URL, on PostgreSQL.
    pub fn db_url(&self) -> &str {
        self.pg.as_ref().map_or("", |pg| pg.url.as_str())
    }

    /// A client of the test server, in this Env's schema.
    pub fn sql(&self) -> postgres::Client {
        postgres::Client::connect(self.db_url(), postgres::NoTls)
            .expect("connect to the test server")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }

    /// `queuectl ARGS` in this dir, with a clean environment.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("queuectl"));
        cmd.current_dir(self.path())
            .env_remove("QUEUECTL_DB")
            .env_remove("QUEUECTL_FILE")
            .env_remove("QUEUECTL_HOST_ID")
            .env("XDG_DATA_HOME", self.data_home())
            .env("NO_COLOR", "1")
            .args(args);
        if let Some(pg) = &self.pg {
            cmd.env("QUEUECTL_DB", &pg.url);
        }
        cmd
    }

    /// Runs `queuectl ARGS --json` and parses its stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        // Before the subcommand: after it, `enqueue CMD…` would take it as a word.
        let out = self
            .cmd(std::iter::once("--json").chain(args.iter().copied()))
            .output()
            .expect("run queuectl");
        assert!(
            out.status.success(),
            "queuectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// The `items` of a listing command's `--json` output (`{"items":
    /// [...], "total": N}`), checked against its total where it lists
    /// every match.
    pub fn items(&self, args: &[&str]) -> Vec<Value> {
        let value = self.json(args);
        let items = value["items"]
            .as_array()
            .unwrap_or_else(|| panic!("queuectl {args:?}: no items in {value}"))
            .clone();
        let total = value["total"].as_u64().expect("a total") as usize;
        assert!(total >= items.len(), "queuectl {args:?}: {value}");
        items
    }

    /// Enqueues a job with these extra args; returns its id.
    pub fn enqueue(&self, args: &[&str]) -> String {
        let items = self.items(&[&["enqueue"], args].concat());
        items[0]["id"].as_str().expect("an id").to_string()
    }

    /// The job's `show --json`.
    pub fn job(&self, id: &str) -> Value {
        self.json(&["show", id])
    }

    pub fn state(&self, id: &str) -> String {
        self.job(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The jobs of a definition, newest first.
    pub fn jobs_of(&self, definition: &str) -> Vec<Value> {
        self.items(&["list", "--job", definition, "--all"])
    }

    /// Every job's state, by id.
    pub fn states(&self) -> Vec<(String, String)> {
        let list = self.items(&["list", "--all"]);
        let mut states: Vec<_> = list
            .iter()
            .map(|j| {
                (
                    j["id"].as_str().unwrap_or_default().to_string(),
                    j["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        states.sort();
        states
    }

    /// Starts `queuectl worker start --foreground ARGS`; stopped on drop.
    pub fn worker(&self, args: &[&str]) -> Worker {
        self.spawn(&[&["worker", "start", "--foreground"], args].concat())
    }

    /// Starts `queuectl ARGS` in the background, its stdout and stderr in
    /// a file that [`Worker::output`] reads while it runs; killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Worker {
        self.spawn_with(args, &[])
    }

    /// [`Env::spawn`] with extra environment variables.
    pub fn spawn_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Worker {
        let mut command = self.command(bin());
        command.args(args).envs(vars.iter().copied());
        self.start(command)
    }

    /// `program` in this dir with a clean environment (no queuectl or
    /// GitHub variables, no colour), for [`Env::start`].
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .current_dir(self.path())
            .env_remove("QUEUECTL_DB")
            .env_remove("QUEUECTL_FILE")
            .env_remove("QUEUECTL_HOST_ID")
            .env_remove("GITHUB_ACTIONS")
            .env("XDG_DATA_HOME", self.data_home())
            .env("NO_COLOR", "1");
        if let Some(pg) = &self.pg {
            command.env("QUEUECTL_DB", &pg.url);
        }
        command
    }

    /// Where the queue of a directory without a jobfile lives in these
    /// tests (as `~/.local/share` would): inside the temp dir.
    pub fn data_home(&self) -> PathBuf {
        self.path().join(".data")
    }

    /// A file of the queue's state directory: `.queuectl/` beside the
    /// jobfile when there is one, else the user's data directory.
    pub fn queue_file(&self, name: &str) -> PathBuf {
        if self.file("queuectl.toml").exists() {
            self.file(".queuectl").join(name)
        } else {
            self.data_home().join("queuectl").join(name)
        }
    }

    /// Starts `command`, its stdout and stderr in a file that
    /// [`Worker::output`] reads; killed on drop.
    pub fn start(&self, mut command: std::process::Command) -> Worker {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let log = self.file(&format!(
            "proc-{}.log",
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let out = std::fs::File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start queuectl");
        Worker {
            child: Some(child),
            log,
        }
    }
}

/// A schema of its own on the test server, dropped with the Env.
struct PgSchema {
    admin: String,
    name: String,
    url: String,
}

impl PgSchema {
    fn create() -> Option<PgSchema> {
        let admin = match std::env::var("QUEUECTL_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var_os("QUEUECTL_REQUIRE_PG").is_none(),
                    "QUEUECTL_REQUIRE_PG is set but QUEUECTL_TEST_PG_URL is not"
                );
                eprintln!(
                    "note: QUEUECTL_TEST_PG_URL is not set; this PostgreSQL test did not run"
                );
                return None;
            }
        };
        use std::hash::{BuildHasher, RandomState};
        let name = format!(
            "qc_it_{:x}",
            RandomState::new().hash_one(std::process::id())
        );
        let mut client =
            postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create a test schema");
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{name}");
        Some(PgSchema { admin, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A queuectl process started by a test; killed when dropped.
pub struct Worker {
    child: Option<Child>,
    log: PathBuf,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` to the worker.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// What it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its output contains `text`.
    pub fn wait_for_output(&self, text: &str) {
        wait_until(&format!("the output shows {text:?}"), || {
            self.output().contains(text)
        });
    }

    /// Waits for the process to exit; returns its exit code and output.
    pub fn wait(self) -> (Option<i32>, String) {
        self.wait_within(TIMEOUT)
    }

    /// [`Worker::wait`], for a process that has more to do.
    pub fn wait_within(mut self, limit: Duration) -> (Option<i32>, String) {
        let child = self.child.take().expect("a running worker");
        let deadline = Instant::now() + limit;
        let mut child = child;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("worker did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().expect("the exit status");
        (status.code(), self.output())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The queuectl binary under test.
pub fn bin() -> &'static Path {
    assert_cmd::cargo::cargo_bin!("queuectl")
}

/// A program some tests need (`faketime`, `unshare`). `.ci/run` installs
/// them; in CI (`QUEUECTL_CI` set) a missing one fails the test, elsewhere
/// the test says so and returns.
pub fn require(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("QUEUECTL_CI").is_none(),
            "`{program}` is needed by this test and is not installed"
        );
        eprintln!("note: `{program}` is not installed; this test did not run");
    }
    found
}

/// libfaketime, beside the `faketime` program: preloaded directly, it
/// fakes a process's clock without forking it (the pid stays the worker's).
pub fn libfaketime() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime beside the faketime program")
}

/// A FIFO a job waits on (`read line < NAME`) until the test releases
/// it: what the job did before is provably done before the release,
/// without a sleep on either side. One wait per gate: a second `read`
/// of the same FIFO may open it before the first release closed it, and
/// take that close for its own end. Dropped unreleased (a test that
/// failed), it lets a waiting job go on, so none is left waiting.
pub struct Gate {
    path: PathBuf,
}

impl Gate {
    /// A FIFO named `name` in `env`'s dir (the jobs' working directory).
    pub fn new(env: &Env, name: &str) -> Gate {
        let path = env.file(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success(), "mkfifo {}", path.display());
        Gate { path }
    }

    /// Gives the job waiting on it `line` (it waits for a job to open it).
    pub fn release(&self, line: &str) {
        std::fs::write(&self.path, format!("{line}\n")).expect("release the gate");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        // Without waiting: nobody may be reading any more.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&self.path);
    }
}

/// Waits until `condition` holds, failing the test after [`TIMEOUT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process exists.
pub fn alive(pid: u32) -> bool {
    // A zombie still "exists" for kill(0); look at its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Starting an assert_cmd command without waiting for it.
pub trait SpawnExt {
    fn assert_child(&mut self) -> Child;
}

impl SpawnExt for Command {
    fn assert_child(&mut self) -> Child {
        let mut std_cmd = std::process::Command::new(self.get_program());
        std_cmd.args(self.get_args());
        if let Some(dir) = self.get_current_dir() {
            std_cmd.current_dir(dir);
        }
        for (key, value) in self.get_envs() {
            match value {
                Some(value) => std_cmd.env(key, value),
                None => std_cmd.env_remove(key),
            };
        }
        std_cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start queuectl")
    }
}

/// An RFC 3339 time of the JSON output, in ms since the epoch.
pub fn ms(time: &str) -> i64 {
    time.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|e| panic!("`{time}` is not an RFC 3339 time: {e}"))
}

/// A time field of the JSON output (RFC 3339), in ms since the epoch.
pub fn time(value: &Value) -> i64 {
    ms(value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}")))
}
