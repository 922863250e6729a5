//! The domain values ports answer that `dispatch-core` does not define: a route and a case.

use dispatch_core::{CaseId, DistrictId, IncidentId, StationId, Timestamp};

/// Where a point lies: the geo-router's answer to `Route`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The police district the point lies in (or the nearest one); never empty.
    pub district_id: DistrictId,
    /// The police station of that district.
    pub station_id: StationId,
    /// The sub-bureau of that station.
    pub sub_bureau_id: String,
    /// True when the point lies outside every district and was given to the nearest one.
    pub outside_map: bool,
    /// Distance from the point to that district, metres; 0 inside the map.
    pub distance_outside_m: f64,
}

/// What kind of case a clearance hands to the case squad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseKind {
    /// A criminal case (disposition `CRIMINAL_CASE`).
    Criminal,
    /// An administrative case (disposition `ADMINISTRATIVE_CASE`).
    Administrative,
}

/// A case opened by the case squad of an incident's station: the answer to `OpenCase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The case's id (one case per incident).
    pub case_id: CaseId,
    /// The incident it was opened for.
    pub incident_id: IncidentId,
    /// The station whose case squad holds it.
    pub station_id: StationId,
    /// The district that cleared the incident.
    pub district_id: DistrictId,
    /// Criminal or administrative.
    pub kind: CaseKind,
    /// The investigator it is assigned to.
    pub investigator_id: String,
    /// When it was opened, cluster time.
    pub opened_at: Timestamp,
}
