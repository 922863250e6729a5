//! Each district's event log: what makes a district actor durable.
//!
//! DESIGN.md section 5: "District state is event-sourced to Redis (events + periodic snapshot),
//! so a new owner rebuilds the actor exactly." The actor applies a command to its
//! [`DistrictState`], appends the accepted command with its cluster time and its effects (an
//! [`Entry`]) to the district's journal, and only then lets the effects leave and answers. Every
//! `snapshot_every` entries it stores a snapshot of the whole state. A new owner (a restarted
//! node) loads the latest snapshot and replays the entries after it, and delivers again the
//! effects of entries past the delivered mark; receivers are idempotent on the publication id
//! `{district}/{seq}/{k}`, so each effect arrives once.
//!
//! Ownership is fenced: [`Journal::open`] takes the district and returns a new epoch, every
//! append carries it, and an append by an older epoch is refused ([`Error::Fenced`]), so a
//! paused owner cannot write after another has taken over. Across nodes the epoch is raised by
//! the district's lease instead (`dispatch-cluster`, same key), and the new owner reads the
//! journal at that epoch with [`Journal::load`]: one raise per change of owner.
//!
//! Two backends: [`MemoryJournal`] (the embedded mode: one process, so nothing outlives it
//! anyway, but the same rules and trimming) and [`RedisJournal`] (a Redis stream per district).

mod redis_store;

use std::collections::HashMap;

use dispatch_core::DistrictState;
use dispatch_core::district::Entry;
use parking_lot::Mutex;

pub use redis_store::RedisJournal;

/// Why a journal call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Another owner opened the district after this one: this owner must stop writing and drop
    /// the district.
    #[error("district {district} is owned by epoch {current}, not {ours}")]
    Fenced {
        /// The district.
        district: String,
        /// The epoch this owner holds.
        ours: u64,
        /// The epoch that owns it now.
        current: u64,
    },
    /// The backend cannot be reached or answered something unreadable.
    #[error("journal unavailable: {0}")]
    Unavailable(String),
}

/// Result of journal calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a new owner reads to rebuild a district.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The epoch this owner now holds (see [`Journal::open`]).
    pub epoch: u64,
    /// The latest snapshot and the sequence number of the last entry it includes; `None` for a
    /// district never snapshotted.
    pub snapshot: Option<(u64, DistrictState)>,
    /// Entries after the snapshot or after `delivered`, whichever is earlier, in order, with
    /// their sequence numbers (from 1, no gaps). Those after the snapshot are replayed; those
    /// after `delivered` have their effects delivered again.
    pub entries: Vec<(u64, Entry)>,
    /// Every effect of entries up to this sequence number was delivered (or dead-lettered).
    pub delivered: u64,
}

impl Loaded {
    /// Sequence number of the last entry (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        let logged = self.entries.last().map_or(0, |(s, _)| *s);
        let snapped = self.snapshot.as_ref().map_or(0, |(s, _)| *s);
        logged.max(snapped)
    }

    /// Sequence number of the snapshot (0 when none): replay the entries after it.
    pub fn snapshot_seq(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(s, _)| *s)
    }
}

/// A district's event log.
///
/// Errors of every method: [`Error::Unavailable`]; [`Error::Fenced`] where an epoch is given.
#[tonic::async_trait]
pub trait Journal: Send + Sync + std::fmt::Debug + 'static {
    /// Takes ownership of `district`: a new epoch, higher than any before, and what to rebuild
    /// from. Every earlier epoch's appends are refused from now on.
    async fn open(&self, district: &str) -> Result<Loaded>;

    /// What to rebuild `district` from, for an owner that already holds epoch `epoch` without
    /// raising it: an owner whose district lease raised the epoch when it was acquired
    /// (`dispatch-cluster`'s leases share the epoch key), or an owner rebuilding after a failed
    /// append. So the epoch is raised once per change of owner.
    ///
    /// Errors: [`Error::Fenced`] when the district's epoch is not `epoch` (another owner took
    /// it since); [`Error::Unavailable`].
    async fn load(&self, district: &str, epoch: u64) -> Result<Loaded>;

    /// Appends `entry` as epoch `epoch`; returns its sequence number.
    async fn append(&self, district: &str, epoch: u64, entry: &Entry) -> Result<u64>;

    /// Stores `state` as the snapshot after entry `seq`, and drops the entries no longer needed
    /// (covered by the snapshot and delivered).
    async fn snapshot(
        &self,
        district: &str,
        epoch: u64,
        seq: u64,
        state: &DistrictState,
    ) -> Result<()>;

    /// Records that every effect of entries up to `seq` was delivered. Never moves back.
    async fn delivered(&self, district: &str, seq: u64) -> Result<()>;

    /// Checks that `epoch` is still `district`'s epoch, writing nothing: an owner confirms it
    /// before answering a refusal, which appends nothing and so meets no fence (an owner
    /// paused past its lease would otherwise refuse a command the new owner accepts).
    ///
    /// Errors: [`Error::Fenced`] when another owner took the district since;
    /// [`Error::Unavailable`].
    async fn confirm(&self, district: &str, epoch: u64) -> Result<()>;
}

#[derive(Debug, Default)]
struct MemoryLog {
    epoch: u64,
    next_seq: u64,
    snapshot: Option<(u64, DistrictState)>,
    entries: Vec<(u64, Entry)>,
    delivered: u64,
}

impl MemoryLog {
    fn loaded(&self) -> Loaded {
        // Held entries are exactly those after min(snapshot, delivered).
        Loaded {
            epoch: self.epoch,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            delivered: self.delivered,
        }
    }

    fn trim(&mut self) {
        let keep_after = self
            .snapshot
            .as_ref()
            .map_or(0, |(s, _)| *s)
            .min(self.delivered);
        self.entries.retain(|(s, _)| *s > keep_after);
    }
}

/// The in-process journal. Memory: per district, the snapshot plus the entries not yet both
/// snapshotted and delivered.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    logs: Mutex<HashMap<String, MemoryLog>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `write` on `district`'s log when `epoch` owns it.
    fn owned<T>(
        &self,
        district: &str,
        epoch: u64,
        write: impl FnOnce(&mut MemoryLog) -> T,
    ) -> Result<T> {
        let mut logs = self.logs.lock();
        let log = logs.entry(district.to_owned()).or_default();
        if epoch != log.epoch {
            return Err(fenced(district, epoch, log.epoch));
        }
        Ok(write(log))
    }

    /// Entries held for `district` (for tests of trimming).
    pub fn held(&self, district: &str) -> usize {
        self.logs
            .lock()
            .get(district)
            .map_or(0, |l| l.entries.len())
    }
}

fn fenced(district: &str, ours: u64, current: u64) -> Error {
    Error::Fenced {
        district: district.to_owned(),
        ours,
        current,
    }
}

#[tonic::async_trait]
impl Journal for MemoryJournal {
    async fn open(&self, district: &str) -> Result<Loaded> {
        let mut logs = self.logs.lock();
        let log = logs.entry(district.to_owned()).or_default();
        log.epoch += 1;
        Ok(log.loaded())
    }

    async fn load(&self, district: &str, epoch: u64) -> Result<Loaded> {
        self.owned(district, epoch, |log| log.loaded())
    }

    async fn append(&self, district: &str, epoch: u64, entry: &Entry) -> Result<u64> {
        self.owned(district, epoch, |log| {
            log.next_seq += 1;
            log.entries.push((log.next_seq, entry.clone()));
            log.next_seq
        })
    }

    async fn snapshot(
        &self,
        district: &str,
        epoch: u64,
        seq: u64,
        state: &DistrictState,
    ) -> Result<()> {
        self.owned(district, epoch, |log| {
            if log.snapshot.as_ref().is_none_or(|(s, _)| *s <= seq) {
                log.snapshot = Some((seq, state.clone()));
            }
            log.trim();
        })
    }

    async fn delivered(&self, district: &str, seq: u64) -> Result<()> {
        let mut logs = self.logs.lock();
        let log = logs.entry(district.to_owned()).or_default();
        log.delivered = log.delivered.max(seq);
        log.trim();
        Ok(())
    }

    async fn confirm(&self, district: &str, epoch: u64) -> Result<()> {
        self.owned(district, epoch, |_| ())
    }
}
