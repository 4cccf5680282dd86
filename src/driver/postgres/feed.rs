//! The side channels of a PostgreSQL queue: its change feed (LISTEN on
//! the queue's channel, which every write transaction notifies, with a
//! poll behind it) and its owner (a lease row on the server clock,
//! renewed by a thread of the holder).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
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
/// when free or lapsed, renewed every third of its time to live by a
/// thread of the holder, deleted when dropped. A process that does not
/// hold it may try again ([`OwnerLock::try_take`]); one whose lease lapsed
/// and was taken by another learns it ([`OwnerLock::lost`]).
pub struct OwnerLease {
    url: PgUrl,
    ttl: Duration,
    /// The connection of a process that does not hold it, kept for its
    /// next try.
    client: Option<Client>,
    holder: Option<String>,
    renewal: Option<Renewal>,
}

struct Renewal {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
    /// Set by the thread when the row is someone else's now.
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for OwnerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerLease")
            .field("url", &self.url)
            .field("ttl", &self.ttl)
            .field("holder", &self.holder)
            .finish()
    }
}

impl OwnerLease {
    /// Takes the lease, or learns who holds it.
    pub fn acquire(url: &PgUrl, ttl: Duration) -> Result<OwnerLease> {
        let mut lease = OwnerLease {
            url: url.clone(),
            ttl,
            client: None,
            holder: Some("another run".into()),
            renewal: None,
        };
        lease.take()?;
        Ok(lease)
    }

    fn take(&mut self) -> Result<bool> {
        let mut client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => connect_client(&self.url)?,
        };
        let token = crate::sys::host::random_id();
        let me = format!(
            "pid {} on {}",
            std::process::id(),
            crate::sys::host::hostname()
        );
        let ttl = crate::duration::as_millis_i64(self.ttl);
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
            self.holder = Some(holder);
            self.client = Some(client);
            return Ok(false);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let thread = Renewing {
            url: self.url.clone(),
            token,
            ttl,
            every: self.ttl / 3,
            lost: Arc::clone(&lost),
        };
        let handle = std::thread::Builder::new()
            .name("owner-lease".into())
            .spawn(move || thread.run(Some(client), &stopped))
            .map_err(|e| crate::error::Error::Internal(format!("cannot start a thread: {e}")))?;
        self.holder = None;
        self.renewal = Some(Renewal { stop, handle, lost });
        Ok(true)
    }

    /// Stops renewing (and gives the row up, if it is still ours).
    fn release(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            let _ = renewal.stop.send(());
            let _ = renewal.handle.join();
        }
    }
}

/// The renewal thread of a held lease.
struct Renewing {
    url: PgUrl,
    token: i64,
    ttl: i64,
    every: Duration,
    lost: Arc<AtomicBool>,
}

impl Renewing {
    /// Renews until told to stop, then gives the row up; a connection
    /// that fails is replaced at the next renewal (the lease lasts three
    /// of them). Ends early when the row is someone else's.
    fn run(self, mut client: Option<Client>, stopped: &mpsc::Receiver<()>) {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(self.every) {
            let conn = match client.take() {
                Some(conn) if !conn.is_closed() => client.insert(conn),
                _ => match connect_client(&self.url) {
                    Ok(conn) => client.insert(conn),
                    Err(_) => continue,
                },
            };
            let until = crate::clock::now_ms().saturating_add(self.ttl);
            match conn.execute(
                "UPDATE queuectl_owner SET expires_at = $2 WHERE id = 1 AND token = $1",
                &[&self.token, &until],
            ) {
                Ok(1) => {}
                Ok(_) => {
                    self.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(_) => client = None,
            }
        }
        if let Some(conn) = client.as_mut() {
            let _ = conn.execute(
                "DELETE FROM queuectl_owner WHERE id = 1 AND token = $1",
                &[&self.token],
            );
        }
    }
}

impl Drop for OwnerLease {
    fn drop(&mut self) {
        self.release();
    }
}

impl OwnerLock for OwnerLease {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    fn try_take(&mut self) -> Result<bool> {
        if self.renewal.is_some() {
            return Ok(true);
        }
        self.take()
    }

    fn lost(&mut self) -> bool {
        if !self
            .renewal
            .as_ref()
            .is_some_and(|r| r.lost.load(Ordering::SeqCst))
        {
            return false;
        }
        self.release();
        self.holder = Some("another run".into());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Schema;
    use super::super::{PgDriver, PgUrl};
    use super::*;
    use crate::driver::Durability;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A holder that stops renewing (a host frozen or cut off) loses the
    /// queue once its lease lapses: another takes it, and the first
    /// learns it at its next renewal and holds nothing.
    #[test]
    fn a_lapsed_owner_lease_is_taken_over_and_its_holder_learns_it() -> Result<()> {
        let Some(schema) = Schema::create()? else {
            return Ok(());
        };
        let url = PgUrl::parse(schema.url())?;
        let mut sql = connect_client(&url)?;
        drop(PgDriver::open(&url, Durability::Full)?);
        let ttl = Duration::from_millis(900);
        let mut first = OwnerLease::acquire(&url, ttl)?;
        assert_eq!(first.holder(), None);
        let mut second = OwnerLease::acquire(&url, ttl)?;
        assert!(second.holder().is_some_and(|h| h.starts_with("pid ")));
        // Renewed: still held well past one time to live.
        std::thread::sleep(ttl * 2);
        assert!(!second.try_take()?, "renewed leases do not lapse");
        assert!(!first.lost());
        // Frozen: the row lapses as if its renewals had stopped.
        sql.execute("UPDATE queuectl_owner SET expires_at = 0", &[])?;
        assert!(second.try_take()?, "a lapsed lease is taken");
        assert_eq!(second.holder(), None);
        wait_until("the first learns it lost the queue", || first.lost());
        assert!(first.holder().is_some(), "it holds nothing now");
        assert!(!first.lost(), "said once");
        assert!(!first.try_take()?, "the second's lease is renewed");
        drop(first);
        let holder: i64 = sql
            .query_one("SELECT count(*) FROM queuectl_owner", &[])?
            .get(0);
        assert_eq!(holder, 1, "the first gave up nothing that was not its own");
        drop(second);
        let holder: i64 = sql
            .query_one("SELECT count(*) FROM queuectl_owner", &[])?
            .get(0);
        assert_eq!(holder, 0, "the holder deletes its row when it stops");
        Ok(())
    }
}
