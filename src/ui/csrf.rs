//! Browser sessions and their CSRF tokens.
//!
//! A browser that comes without a well-formed `queuectl_session` cookie
//! gets one: 128 random bits as hex (HttpOnly, SameSite=Strict, Path=/).
//! The CSRF token its forms carry is derived from that session id:
//! HMAC-SHA256 under a key of 256 random bits that each server process
//! draws at start, truncated to 128 bits, as hex (the signed double-submit
//! cookie of OWASP's cheat sheet; RFC 2104's HMAC over `sha2`, checked
//! below against RFC 4231's vectors). A POST is taken only when its `csrf`
//! field is the token of the session its own cookie names, compared in
//! constant time; a POST without a session cookie is refused.
//!
//! Why this is sound, and why no table of sessions: a page on another site
//! can make a browser send the cookie but can read neither it (HttpOnly,
//! and the dashboard's pages are not readable across origins) nor a page
//! carrying the token; and an attacker who can plant a cookie of their
//! choosing (a sibling subdomain, plain HTTP) still cannot compute its
//! token without the process's key. The server keeps nothing per session,
//! so no number of sessions grows its memory or evicts a user's session;
//! every session's token changes when the server restarts (a form of the
//! old process is refused: reload the page).

use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "queuectl_session";

/// HMAC-SHA256's block size, in bytes.
const BLOCK: usize = 64;

/// A browser session, as the request's cookie named it or as one was just
/// made for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// 32 lowercase hex digits.
    id: String,
    /// Made for this request (it brought no valid cookie): it has not
    /// been shown a form, so its POSTs are refused.
    fresh: bool,
}

impl Session {
    /// The session a `Cookie` header names, if one is well formed.
    pub fn from_cookies(cookies: &str) -> Option<Session> {
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, value)| *name == COOKIE && well_formed(value))
            .map(|(_, value)| Session {
                id: value.to_string(),
                fresh: false,
            })
    }

    /// A new session, for a request that named none.
    pub fn new() -> Session {
        Session {
            id: super::auth::random_token(),
            fresh: true,
        }
    }

    pub fn fresh(&self) -> bool {
        self.fresh
    }

    /// The `Set-Cookie` value that gives the browser this session.
    pub fn set_cookie(&self) -> String {
        format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", self.id)
    }
}

/// Whether a cookie value can be a session id: what [`Session::new`] makes.
fn well_formed(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The process's key, from which every session's token is derived.
#[derive(Clone)]
pub(crate) struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// 256 random bits.
    pub fn random() -> Key {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&super::auth::random_bytes());
        key[16..].copy_from_slice(&super::auth::random_bytes());
        Key(key)
    }

    /// The CSRF token of `session`'s forms: 32 hex digits.
    pub fn token(&self, session: &Session) -> String {
        let mac = hmac_sha256(&self.0, &[b"queuectl csrf\0", session.id.as_bytes()]);
        mac[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231's test cases 1, 2, 6 and 7 (a short key, a key shorter
    /// than the output, keys longer than a block).
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let long_key = [0xaa; 131];
        let cases: [(&[u8], &[u8], &str); 4] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex(&hmac_sha256(key, &[data])), expected);
        }
        // Parts are concatenated.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])
        );
    }

    #[test]
    fn each_session_and_each_process_has_its_own_token() {
        let key = Key::random();
        let (a, b) = (Session::new(), Session::new());
        assert_ne!(a, b);
        assert_eq!(key.token(&a).len(), 32);
        assert_eq!(key.token(&a), key.token(&a.clone()), "stable per session");
        assert_ne!(key.token(&a), key.token(&b));
        assert_ne!(key.token(&a), Key::random().token(&a), "per process");
    }

    #[test]
    fn only_a_well_formed_session_cookie_names_a_session() {
        let id = "0123456789abcdef0123456789abcdef";
        let session = Session::from_cookies(&format!("queuectl_token=t; {COOKIE}={id}"));
        assert_eq!(
            session,
            Some(Session {
                id: id.to_string(),
                fresh: false
            })
        );
        for cookies in [
            String::new(),
            format!("{COOKIE}="),
            format!("{COOKIE}=0123"),
            format!("{COOKIE}={}", id.to_uppercase()),
            format!("{COOKIE}={id}0"),
            format!("other_{COOKIE}={id}"),
            format!("{COOKIE}={}", &id.replace('0', "g")),
        ] {
            assert_eq!(Session::from_cookies(&cookies), None, "{cookies}");
        }
        let fresh = Session::new();
        assert!(fresh.fresh());
        assert!(well_formed(&fresh.id));
        assert_eq!(
            fresh.set_cookie(),
            format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", fresh.id)
        );
    }
}
