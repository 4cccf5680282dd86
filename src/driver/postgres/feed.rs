//! The side channels of a PostgreSQL queue: its change feed (LISTEN on
//! the queue's channel, which every write transaction notifies, with a
//! poll behind it) and its owner (a lease row on the server clock,
//! renewed by a thread of the holder).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::{PgUrl, channel, connect_client, quote_ident};
use crate::driver::{ChangeFeed, OwnerLock};
use crate::error::Result;

/// A feed says "maybe changed" at least this often, notified or not: a
/// notification lost with a connection costs at most this long.
pub const POLL: Duration = Duration::from_secs(1);

/// How long an owner's lease lasts without renewal…
pub const OWNER_TTL: Duration = Duration::from_secs(15);
/// …and how often its holder renews it.
pub const OWNER_RENEW: Duration = Duration::from_secs(5);

/// Commits to a PostgreSQL queue, by any host.
pub struct PgFeed {
    url: PgUrl,
    /// The LISTEN connection (None: lost, or polling only).
    client: Option<Client>,
    listen: String,
    last: Instant,
}

impl std::fmt::Debug for PgFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFeed")
            .field("url", &self.url)
            .field("listening", &self.client.is_some())
            .finish()
    }
}

impl PgFeed {
    pub fn new(url: &PgUrl) -> Result<PgFeed> {
        let mut feed = PgFeed {
            url: url.clone(),
            client: None,
            listen: String::new(),
            last: Instant::now(),
        };
        if url.listen {
            feed.connect()?;
        }
        Ok(feed)
    }

    fn connect(&mut self) -> Result<()> {
        let mut client = connect_client(&self.url)?;
        let schema: String = client
            .query_one("SELECT current_schema()::text", &[])?
            .try_get(0)?;
        self.listen = format!("LISTEN {}", quote_ident(&channel(&schema)));
        client.batch_execute(&self.listen)?;
        self.client = Some(client);
        Ok(())
    }
}

impl ChangeFeed for PgFeed {
    fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let until_poll = POLL.saturating_sub(self.last.elapsed());
        let wait = timeout.min(until_poll);
        let notified = match self.client.as_mut() {
            Some(client) => {
                let mut notifications = client.notifications();
                let first = notifications.timeout_iter(wait).next().map(|n| n.is_some());
                match first {
                    Ok(true) => {
                        // Everything already delivered is the same news.
                        while let Ok(Some(_)) = notifications.iter().next() {}
                        Some(true)
                    }
                    Ok(false) => Some(false),
                    Err(_) => None,
                }
            }
            None => {
                std::thread::sleep(wait);
                Some(false)
            }
        };
        let notified = match notified {
            Some(notified) if self.client.is_some() || !self.url.listen => notified,
            _ => {
                // Notifications sent while the connection was down are
                // lost: reconnect and look at once.
                self.client = None;
                let _ = self.connect();
                true
            }
        };
        if notified || self.last.elapsed() >= POLL {
            self.last = Instant::now();
            return Ok(true);
        }
        Ok(false)
    }
}

/// The owner of a PostgreSQL queue: the row of `queuectl_owner`, taken
/// when free or lapsed, renewed every [`OWNER_RENEW`] for
/// [`OWNER_TTL`], deleted when dropped.
#[derive(Debug)]
pub struct OwnerLease {
    holder: Option<String>,
    renewal: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl OwnerLease {
    pub fn acquire(url: &PgUrl) -> Result<OwnerLease> {
        let mut client = connect_client(url)?;
        let token = crate::sys::host::random_id();
        let me = format!(
            "pid {} on {}",
            std::process::id(),
            crate::sys::host::hostname()
        );
        let ttl = i64::try_from(OWNER_TTL.as_millis()).unwrap_or(i64::MAX);
        let now = crate::clock::now_ms();
        let taken = client
            .query_opt(
                "INSERT INTO queuectl_owner (id, holder, token, expires_at) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, token = excluded.token, \
                 expires_at = excluded.expires_at WHERE queuectl_owner.expires_at < $4 \
                 RETURNING token",
                &[&me, &token, &now.saturating_add(ttl), &now],
            )?
            .is_some();
        if !taken {
            let holder: String = client
                .query_opt("SELECT holder FROM queuectl_owner WHERE id = 1", &[])?
                .map_or_else(|| Ok("another run".to_string()), |row| row.try_get(0))?;
            return Ok(OwnerLease {
                holder: Some(holder),
                renewal: None,
            });
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("owner-lease".into())
            .spawn(move || renew(client, token, ttl, &stopped))
            .map_err(|e| crate::error::Error::Internal(format!("cannot start a thread: {e}")))?;
        Ok(OwnerLease {
            holder: None,
            renewal: Some((stop, handle)),
        })
    }
}

/// Renews the lease until told to stop, then gives it up.
fn renew(mut client: Client, token: i64, ttl: i64, stopped: &mpsc::Receiver<()>) {
    let mut warned = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(OWNER_RENEW) {
        let until = crate::clock::now_ms().saturating_add(ttl);
        match client.execute(
            "UPDATE queuectl_owner SET expires_at = $2 WHERE id = 1 AND token = $1",
            &[&token, &until],
        ) {
            Ok(1) => warned = false,
            Ok(_) if !warned => {
                warned = true;
                eprintln!(
                    "warning: this run's owner lease lapsed and another run took the queue over"
                );
            }
            Ok(_) => {}
            Err(e) if !warned => {
                warned = true;
                eprintln!("warning: cannot renew this run's owner lease: {e}");
            }
            Err(_) => {}
        }
    }
    let _ = client.execute(
        "DELETE FROM queuectl_owner WHERE id = 1 AND token = $1",
        &[&token],
    );
}

impl Drop for OwnerLease {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.renewal.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }
}

impl OwnerLock for OwnerLease {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }
}
