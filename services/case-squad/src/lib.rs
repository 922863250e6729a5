//! The case-squad service: where a 110 call ends when it turns out to be a case.
//!
//! After the 2012 reform district officers no longer investigate: when an officer clears an
//! incident as a criminal or administrative case, the district hands it to the case squad
//! stationed at the district's police station (`CaseSquad.OpenCase`), which assigns it to the
//! squad's least-loaded investigator. `GetCase` and `ListCases(station)` show the cases and every
//! investigator's load.
//!
//! The record-keeping and the choice of investigator are plain code in [`book`] (no I/O, unit
//! tested); [`store`] makes the book a port, [`CaseStore`], kept in memory
//! ([`MemoryCaseStore`]) or in Redis ([`RedisCaseStore`], shared by every replica); [`open`]
//! checks an `OpenCase` request, also against intake's record of the incident when the service
//! has a [`RecordsClient`] of intake ([`lookup`]); [`CaseSquadService`] is the gRPC shell and [`run`]
//! serves it. Errors of the crate are one [`Error`], turned into a `Status` in one place.

pub mod book;
pub mod error;
pub mod lookup;
pub mod open;
mod service;
pub mod store;

pub use book::{CaseBook, CaseKind, CaseRecord, DEFAULT_INVESTIGATORS_PER_SQUAD, SquadView};
pub use error::{Error, Result};
pub use lookup::RecordsClient;
pub use service::{CaseSquadService, run};
pub use store::{CaseStore, MemoryCaseStore, RedisCaseStore, SquadListing};
