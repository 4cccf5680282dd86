//! The engine: every decision about jobs, over a storage driver.
//!
//! Each transition is one [`Driver::write`] transaction in which the
//! engine reads what it needs through [`Ops`], decides in Rust (with the
//! pure functions of its modules, table-tested without a database) and
//! writes the decided transition back:
//!
//! | transition | method | decisions |
//! | --- | --- | --- |
//! | enqueue | [`Engine::enqueue`] | dependencies ([`deps`]) |
//! | claim, finish | [`Engine::claim`], [`Engine::finish`] | queue limits ([`claim::full_queues`]), what an attempt's end means ([`finish::judge`]), dependents |
//! | rescue | [`Engine::rescue`] | a lost attempt's retry ([`rescue::decide`]) |
//! | apply | [`Engine::apply`] | the plan ([`reconcile`]) |
//! | a watch batch, a tick | [`Engine::watch_enqueue`], [`Engine::schedule_tick`] | merge and `on_busy`, `overlap` ([`crate::trigger`]) |
//! | cancel, dlq retry, prune | [`Engine::cancel`], … | what may be cancelled or retried |
//!
//! Every state change that moves a definition's latest run lets the
//! dependency cascade ([`deps::settle`]) re-decide the jobs that wait for
//! it, in the same transaction.

pub mod claim;
pub mod deps;
pub mod finish;
pub mod reconcile;
pub mod rescue;

mod apply;
mod jobs;
mod triggers;
mod workers;

pub use claim::{ClaimRequest, Done};
pub use finish::{AttemptEnd, Ended};
pub use rescue::Reclaimed;
pub use triggers::{TickOutcome, WatchOutcome};
pub use workers::StopRequested;

use crate::driver::{self, ChangeFeed, Driver, Durability, Location, Ops, OwnerLock};
use crate::error::{Error, Result};

/// The queue: an engine over one driver connection.
#[derive(Debug)]
pub struct Engine {
    driver: Box<dyn Driver>,
}

impl Engine {
    /// An engine over `driver`.
    pub fn new(driver: Box<dyn Driver>) -> Engine {
        Engine { driver }
    }

    /// Opens the queue at `location` for writing.
    pub fn open(location: &Location, durability: Durability) -> Result<Engine> {
        driver::open(location, durability).map(Engine::new)
    }

    /// Opens the queue at `location` for reading only.
    pub fn open_read(location: &Location) -> Result<Engine> {
        driver::open_read(location).map(Engine::new)
    }

    /// Another connection to the same queue, for another thread.
    pub fn connect(&self, durability: Durability) -> Result<Engine> {
        self.driver.connect(durability).map(Engine::new)
    }

    pub fn location(&self) -> &Location {
        self.driver.location()
    }

    /// A feed of the changes other processes commit.
    pub fn change_feed(&self) -> Result<Box<dyn ChangeFeed>> {
        self.driver.change_feed()
    }

    /// Tries to become the queue's owner.
    pub fn owner_lock(&self, ttl: std::time::Duration) -> Result<Box<dyn OwnerLock>> {
        self.driver.owner_lock(ttl)
    }

    /// Whether attempts' output is kept in the database.
    pub fn keeps_output(&self) -> bool {
        self.driver.keeps_output()
    }

    /// Stores an attempt's output where the driver keeps it.
    pub fn store_output(&mut self, id: &str, run: u32, output: &driver::Output) -> Result<()> {
        self.write(|ops| ops.store_output(id, run, output))
    }

    /// An attempt's output as the database keeps it (None: not kept there).
    pub fn output(&mut self, id: &str, run: u32) -> Result<Option<driver::Output>> {
        self.read(|ops| ops.output(id, run))
    }

    /// Runs `f` in one write transaction and returns what it returned.
    pub fn write<T>(&mut self, mut f: impl FnMut(&mut dyn Ops) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.driver.write(&mut |ops| {
            out = Some(f(ops)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Internal("a transaction ended without its result".into()))
    }

    /// Runs `f` over one consistent snapshot.
    pub fn read<T>(&mut self, mut f: impl FnMut(&mut dyn Ops) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.driver.read(&mut |ops| {
            out = Some(f(ops)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Internal("a read ended without its result".into()))
    }
}

/// A number in `[0, 1)` for jitter.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(crate::clock::now_ms()) >> 11) as f64 / (1u64 << 53) as f64
}
