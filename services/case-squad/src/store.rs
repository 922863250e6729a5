//! The case book as a port: [`CaseStore`], with two backends that behave alike.
//!
//! - [`MemoryCaseStore`]: the [`CaseBook`] behind a lock, for one process (the embedded mode,
//!   tests).
//! - [`RedisCaseStore`]: the book in Redis, the system of record when several case-squad
//!   replicas serve one cluster (`../shared/DESIGN.md` section 5); opening is one Lua script,
//!   so two replicas opening the same incident at once open one case.
//!
//! Both keep the book's rules: a case per incident, opened at most once, under the id the
//! request names ([`CaseRequest::case_id`]: the incident's own,
//! `case-{station_id}-{incident_id}`), and never under an id another incident's case holds;
//! the least-loaded investigator of the station's squad, ties by investigator id; squads come
//! from configuration (the geo-router's directory and `investigators_per_squad`), which every
//! replica of a cluster must share.
//!
//! Both run each operation as one step that either happens or not (a lock held without an
//! `.await`, one Lua script), so a handler future dropped by tonic mid-call leaves no half-open
//! case, and a caller may simply retry.

use dispatch_core::Timestamp;
use parking_lot::Mutex;

use crate::book::{CaseBook, CaseRecord, Opened, SquadView};
use crate::error::Result;
use crate::open::CaseRequest;

mod redis_store;

pub use redis_store::RedisCaseStore;

/// A station's cases and loads, as [`CaseStore::list`] returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadListing {
    /// Its cases, by opening time then case id.
    pub cases: Vec<CaseRecord>,
    /// Every investigator of the squad with their open cases, by investigator id.
    pub loads: Vec<(String, u32)>,
}

impl From<SquadView<'_>> for SquadListing {
    fn from(view: SquadView<'_>) -> Self {
        Self {
            cases: view.cases.into_iter().cloned().collect(),
            loads: view
                .loads
                .into_iter()
                .map(|(id, n)| (id.to_owned(), n))
                .collect(),
        }
    }
}

/// Where the case squad keeps its cases and its investigators' loads.
#[tonic::async_trait]
pub trait CaseStore: Send + Sync + 'static {
    /// Opens the case of `req` at `at` under `req.case_id`, assigned to the least-loaded
    /// investigator of the station's squad (ties by investigator id); when the incident
    /// already has a case, returns it unchanged with `created: false`, whatever the station
    /// or case id of `req`.
    ///
    /// Errors: [`Error::CaseIdTaken`](crate::Error::CaseIdTaken) when another incident's case
    /// has `req.case_id`; [`Error::UnknownStation`](crate::Error::UnknownStation),
    /// [`Error::NoInvestigators`](crate::Error::NoInvestigators);
    /// [`Error::Unavailable`](crate::Error::Unavailable) when the store cannot be reached (the
    /// case may or may not be open: open again to find out);
    /// [`Error::Store`](crate::Error::Store) when the store refuses or holds garbage.
    async fn open(&self, req: &CaseRequest, at: Timestamp) -> Result<Opened>;

    /// The case `case_id`.
    ///
    /// Errors: [`Error::UnknownCase`](crate::Error::UnknownCase); `Unavailable` and `Store`
    /// as for [`CaseStore::open`].
    async fn get(&self, case_id: &str) -> Result<CaseRecord>;

    /// The cases and loads of `station_id`'s squad.
    ///
    /// Errors: [`Error::UnknownStation`](crate::Error::UnknownStation); `Unavailable` and
    /// `Store` as for [`CaseStore::open`].
    async fn list(&self, station_id: &str) -> Result<SquadListing>;
}

/// The [`CaseBook`] behind a lock: a [`CaseStore`] for one process. Never `Unavailable`.
#[derive(Debug)]
pub struct MemoryCaseStore {
    book: Mutex<CaseBook>,
}

impl MemoryCaseStore {
    /// A squad of `investigators_per_squad` at each of `stations`; see [`CaseBook::new`].
    pub fn new(stations: impl IntoIterator<Item = String>, investigators_per_squad: u32) -> Self {
        Self::from_book(CaseBook::new(stations, investigators_per_squad))
    }

    /// A store over `book`.
    pub fn from_book(book: CaseBook) -> Self {
        Self {
            book: Mutex::new(book),
        }
    }
}

#[tonic::async_trait]
impl CaseStore for MemoryCaseStore {
    async fn open(&self, req: &CaseRequest, at: Timestamp) -> Result<Opened> {
        self.book.lock().open(req, at)
    }

    async fn get(&self, case_id: &str) -> Result<CaseRecord> {
        self.book.lock().get(case_id).cloned()
    }

    async fn list(&self, station_id: &str) -> Result<SquadListing> {
        self.book.lock().list(station_id).map(SquadListing::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
