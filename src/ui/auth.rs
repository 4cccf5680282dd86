//! Who may use the dashboard: the token (every request, when set), the
//! session's CSRF token (every POST, see [`super::csrf`]) and
//! `--read-only` (no POST at all).
//!
//! A token arrives as `Authorization: Bearer T`, as the `queuectl_token`
//! cookie, or once as `?token=T`, which sets that cookie (HttpOnly,
//! SameSite=Strict) so the links and the event stream carry it. Tokens are
//! compared in constant time.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::csrf::Session;
use super::{Shared, UiError};

const COOKIE: &str = "queuectl_token";

/// Refuses requests without the token (401) and, read-only, every POST
/// (403); gives the request its browser session (a new one, and its
/// cookie, when it named none) for the handlers' CSRF tokens.
pub(crate) async fn guard(State(ui): State<Shared>, mut request: Request, next: Next) -> Response {
    if ui.loopback_hosts_only && !header_str(&request, header::HOST).is_some_and(loopback_host) {
        return UiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only to a loopback host name (127.0.0.1, localhost, [::1]); to serve it under another name, give it a token",
        )
        .into_response();
    }
    let mut set_cookie = None;
    if let Some(token) = &ui.token {
        let bearer = header_str(&request, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t.trim(), token));
        let cookie = header_str(&request, header::COOKIE).is_some_and(|cookies| {
            cookies
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .any(|(name, value)| name == COOKIE && same(value, token))
        });
        let query = request.uri().query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "token" && same(&v, token))
        });
        if !(bearer || cookie || query) {
            return UiError::new(
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open it with ?token=… or send `Authorization: Bearer …`",
            )
            .into_response();
        }
        if query && !cookie {
            set_cookie = Some(format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            ));
        }
    }
    if ui.read_only && request.method() == Method::POST {
        return UiError::new(
            StatusCode::FORBIDDEN,
            "the dashboard is read-only (--read-only): it changes nothing",
        )
        .into_response();
    }
    let session = header_str(&request, header::COOKIE)
        .and_then(Session::from_cookies)
        .unwrap_or_else(Session::new);
    let new_session = session.fresh().then(|| session.set_cookie());
    request.extensions_mut().insert(session);
    let mut response = next.run(request).await;
    for cookie in [set_cookie, new_session]
        .into_iter()
        .flatten()
        .filter_map(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Whether a `Host` header names this machine's loopback interface.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[test]
fn only_loopback_host_names_pass() {
    for host in [
        "127.0.0.1:8080",
        "localhost:1",
        "LOCALHOST",
        "[::1]:80",
        "127.1.2.3:9",
    ] {
        assert!(loopback_host(host), "{host}");
    }
    for host in [
        "evil.example:8080",
        "10.0.0.1:80",
        "localhost.evil.example",
        "[::2]:80",
        "",
    ] {
        assert!(!loopback_host(host), "{host}");
    }
}

fn header_str(request: &Request, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a form's CSRF field is the token of the session its request
/// came with (a session made for this very request has none yet).
pub(crate) fn check_csrf(
    ui: &Shared,
    session: &Session,
    given: Option<&String>,
) -> Result<(), UiError> {
    match given {
        Some(given) if !session.fresh() && same(given, &ui.csrf.token(session)) => Ok(()),
        _ => Err(UiError::new(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page and try again",
        )),
    }
}

/// Equality in time that depends on the lengths only, not on where the
/// first difference is.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// 128 random bits as hex (see [`random_bytes`]).
pub fn random_token() -> String {
    random_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// 128 random bits: from the kernel, else from std's hasher keys.
pub fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_kernel = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_kernel {
        use std::hash::{BuildHasher, RandomState};
        let a = RandomState::new().hash_one(crate::clock::now_ms());
        let b = RandomState::new().hash_one(std::process::id());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
#[test]
fn tokens_compare_whole() {
    assert!(same("secret", "secret"));
    assert!(!same("secret", "secreT"));
    assert!(!same("secret", "secret2"));
    assert!(!same("", "x"));
    assert_eq!(random_token().len(), 32);
    assert_ne!(random_token(), random_token());
}
