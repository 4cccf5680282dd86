//! A PostgreSQL queue's address: `postgres://user[:password]@host[:port]/db?…`
//! parsed by queuectl itself, so that every mistake gets its own message
//! and the password never reaches output. The password comes from the
//! URL, else `PGPASSWORD`, else the password file (`PGPASSFILE` or
//! `~/.pgpass`, libpq's format and rules: ignored unless private).
//!
//! Parameters queuectl knows (anything else is refused, naming it):
//! `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//! `verify-full`), `sslrootcert` (a PEM file of roots; default: the
//! system's), `options` (passed to the server, e.g.
//! `-csearch_path=myschema`), `application_name`, `connect_timeout`
//! (seconds, default 10), `host` (a host or a socket directory, when the
//! URL has none) and `listen` (`off`: poll only, for PgBouncer in
//! transaction mode).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// How a connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it, whoever signed its certificate (as
    /// libpq does), unless `sslrootcert` names the roots to verify with.
    Prefer,
    /// Always, the certificate chain and the host name verified.
    Require,
}

/// A parsed queue address. Its `Debug` and `Display` never show the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub ssl: SslMode,
    pub root_cert: Option<PathBuf>,
    pub options: Option<String>,
    pub application_name: String,
    pub connect_timeout: Duration,
    /// LISTEN/NOTIFY wake-ups (off: poll only).
    pub listen: bool,
    /// The URL as given, for a child process's environment (never printed).
    raw: String,
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

impl fmt::Display for PgUrl {
    /// `postgres://user@host:port/db`: no password, no parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') && !self.host.starts_with('/') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, host, self.port, self.dbname
        )
    }
}

/// Whether `text` names a PostgreSQL queue (not a SQLite path).
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

fn bad(text: impl Into<String>, hint: &str) -> Error {
    Error::input_with_hint(format!("invalid database URL: {}", text.into()), hint)
}

const URL_HINT: &str =
    "write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require]";

impl PgUrl {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(text: &str) -> Result<PgUrl> {
        let rest = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres://", URL_HINT))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, password)) => {
                    (decode(user, "user")?, Some(decode(password, "password")?))
                }
                None => (decode(info, "user")?, None),
            },
            None => (String::new(), None),
        };
        let (host, port) = split_host_port(hostport)?;
        let dbname = decode(path, "database name")?;
        if dbname.contains('/') {
            return Err(bad(format!("`{dbname}` is not a database name"), URL_HINT));
        }
        let mut url = PgUrl {
            user,
            password,
            host: decode(&host, "host")?,
            port,
            dbname,
            ssl: SslMode::Prefer,
            root_cert: None,
            options: None,
            application_name: "queuectl".into(),
            connect_timeout: Duration::from_secs(10),
            listen: true,
            raw: text.to_string(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value, key)?;
            url.set(key, &value)?;
        }
        if url.host.is_empty() {
            url.host = "localhost".into();
        }
        if url.user.is_empty() {
            url.user = std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "postgres".into());
        }
        if url.dbname.is_empty() {
            url.dbname = url.user.clone();
        }
        Ok(url)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "sslmode" => {
                self.ssl = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" | "verify-ca" | "verify-full" => SslMode::Require,
                    other => {
                        return Err(bad(
                            format!(
                                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                            ),
                            "sslmode=require encrypts and verifies the server's certificate",
                        ));
                    }
                }
            }
            "sslrootcert" => self.root_cert = Some(PathBuf::from(value)),
            "options" => self.options = Some(value.to_string()),
            "application_name" => self.application_name = value.to_string(),
            "connect_timeout" => {
                let secs: u64 = value.parse().ok().filter(|s| (1..=3600).contains(s)).ok_or_else(|| {
                    bad(
                        format!("connect_timeout `{value}` is not a number of seconds from 1 to 3600"),
                        "write connect_timeout=10",
                    )
                })?;
                self.connect_timeout = Duration::from_secs(secs);
            }
            "host" => self.host = value.to_string(),
            "listen" => {
                self.listen = match value {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    other => {
                        return Err(bad(
                            format!("listen `{other}` is not on or off"),
                            "listen=off polls instead of LISTEN (for PgBouncer in transaction mode)",
                        ));
                    }
                }
            }
            other => {
                return Err(bad(
                    format!("unknown parameter `{other}`"),
                    "queuectl knows sslmode, sslrootcert, options, application_name, connect_timeout, host and listen",
                ));
            }
        }
        Ok(())
    }

    /// The URL as given (with its password): for the environment of a
    /// child queuectl, never for output.
    pub fn secret(&self) -> &str {
        &self.raw
    }

    /// The password: the URL's, else `PGPASSWORD`, else the password file's.
    pub fn password(&self) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
            return Some(password);
        }
        let file = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
        pgpass_lookup(&file, &self.host, self.port, &self.dbname, &self.user)
    }

    /// The client's configuration (without TLS).
    pub fn config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .user(&self.user)
            .host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .connect_timeout(self.connect_timeout)
            .ssl_mode(match self.ssl {
                SslMode::Disable => postgres::config::SslMode::Disable,
                SslMode::Prefer => postgres::config::SslMode::Prefer,
                SslMode::Require => postgres::config::SslMode::Require,
            });
        if let Some(password) = self.password() {
            config.password(password);
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        config
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(format!("`{hostport}` has no closing `]`"), URL_HINT))?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (hostport.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => 5432,
        Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            bad(
                format!("port `{port}` is not a number from 1 to 65535"),
                URL_HINT,
            )
        })?,
    };
    Ok((host, port))
}

/// Percent-decodes one part of the URL.
fn decode(text: &str, what: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    bad(
                        format!("the {what} has a `%` not followed by two hex digits"),
                        "write a literal % as %25",
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("the {what} is not UTF-8"), URL_HINT))
}

/// libpq's password file: `host:port:database:user:password` lines, `*`
/// matching anything, `\` escaping `:` and `\`; ignored when others may
/// read it (as libpq does).
fn pgpass_lookup(file: &Path, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(split_pgpass)
        .find(|fields| {
            fields.len() == 5
                && [host, port.as_str(), db, user]
                    .iter()
                    .zip(fields.iter())
                    .all(|(want, have)| have == "*" || have == want)
        })
        .map(|mut fields| fields.swap_remove(4))
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_parses_and_never_shows_its_password() {
        let url = PgUrl::parse("postgres://ann:s%3Acret@db.example:6543/q?sslmode=verify-full")
            .expect("parses");
        assert_eq!(url.to_string(), "postgres://ann@db.example:6543/q");
        assert_eq!(
            format!("{url:?}"),
            "PgUrl(postgres://ann@db.example:6543/q)"
        );
        assert_eq!(url.password().as_deref(), Some("s:cret"));
        assert_eq!(url.ssl, SslMode::Require);
        let v6 = PgUrl::parse("postgresql://u@[::1]/d").expect("parses");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5432));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("postgres://u@h:99999/d", "port `99999`"),
            ("postgres://u@h/d?sslmode=maybe", "sslmode `maybe`"),
            ("postgres://u@h/d?colour=red", "unknown parameter `colour`"),
            ("postgres://u@h/d%zz", "`%` not followed"),
            ("postgres://u@[::1/d", "no closing"),
            ("postgres://u@h/d?connect_timeout=0", "connect_timeout `0`"),
        ] {
            let error = PgUrl::parse(url).expect_err(url).to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn the_password_file_follows_libpq() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\nh:5432:d:u\\:x:esc\\:aped\nh:*:*:u:star\n",
        )
        .expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            pgpass_lookup(&file, "h", 5432, "d", "u:x").as_deref(),
            Some("esc:aped")
        );
        assert_eq!(
            pgpass_lookup(&file, "h", 7, "z", "u").as_deref(),
            Some("star")
        );
        assert_eq!(pgpass_lookup(&file, "nope", 5432, "d", "u"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            pgpass_lookup(&file, "h", 7, "z", "u"),
            None,
            "a readable file is ignored"
        );
    }
}
