//! Domain core of the 110 dispatch cluster: everything that decides, nothing that does I/O.
//!
//! In the flow of a call, intake uses [`priority`] to rank a call, the geo-router uses
//! [`geo`] distances, and each district actor is a thin shell around [`district::DistrictState`],
//! which keeps the officers, the [`queue::IncidentQueue`] and applies the dispatch rule
//! ([`dispatch`]). Every time comes from a [`clock::Clock`], so tests and load tests control it.
//!
//! Ids are typed ([`id`]): an [`IncidentId`] cannot be passed where an [`OfficerId`] is wanted,
//! and the ids the core makes have a documented shape ([`DispatchId::new`],
//! [`CaseId::for_incident`]).
//!
//! Units: distances in metres, speeds in km/h where configured (m/s inside), durations in
//! seconds of the cluster clock, coordinates in WGS84 degrees.

// Tests may unwrap: a panic is the failure report there. Library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod clock;
pub mod dispatch;
pub mod district;
pub mod eta;
pub mod geo;
pub mod id;
pub mod incident;
pub mod officer;
pub mod position;
pub mod priority;
pub mod queue;

pub use clock::{Clock, ManualClock, ScaledClock, Timestamp, WallClock};
pub use dispatch::Candidate;
pub use district::{DispatchOrder, DistrictConfig, DistrictState, Effect};
pub use eta::TravelModel;
pub use geo::{LatLng, ServiceArea};
pub use id::{CallId, CaseId, DispatchId, DistrictId, IncidentId, OfficerId, StationId};
pub use incident::{Disposition, Incident, IncidentState};
pub use officer::{Officer, OfficerStatus};
pub use position::{Fix, FixError, PositionRules};
pub use priority::{Category, Priority};
pub use queue::{IncidentQueue, QueueKey};
