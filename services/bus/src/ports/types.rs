//! The domain values ports answer that `dispatch-core` does not define: a route, the
//! directory of the city's police units, and a case.

use dispatch_core::{CaseId, DistrictId, IncidentId, LatLng, StationId, Timestamp};

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

/// The city's police units as the geo-router lists them (`GeoRouter.ListDistricts`): what the
/// district node starts its actors from, the case squads their stations from, and placement
/// its districts from. Entries are in the map's order; every id is non-empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Directory {
    /// The map's name, e.g. `builtin` or `dongguan`.
    pub map_name: String,
    /// Every sub-bureau (one command center each).
    pub sub_bureaus: Vec<SubBureauEntry>,
    /// Every police station (one case squad each).
    pub stations: Vec<StationEntry>,
    /// Every police district (one actor each).
    pub districts: Vec<DistrictEntry>,
}

/// A sub-bureau of the [`Directory`].
#[derive(Debug, Clone, PartialEq)]
pub struct SubBureauEntry {
    /// Its id, the ASCII slug of its English name, e.g. `nancheng`.
    pub id: String,
    /// Its name as the map's source gives it, e.g. `南城街道`.
    pub name: String,
    /// Resident population (7th census, 2020, for Dongguan); 0 when the map has none.
    pub population: u64,
    /// Area after overlap resolution, square metres.
    pub area_m2: f64,
}

/// A police station of the [`Directory`].
#[derive(Debug, Clone, PartialEq)]
pub struct StationEntry {
    /// Its id, `{sub_bureau_id}-s{n}`, e.g. `nancheng-s1`.
    pub id: StationId,
    /// The sub-bureau it belongs to.
    pub sub_bureau_id: String,
    /// Its central district, co-located with the station and led by the station chief.
    pub central_district_id: DistrictId,
    /// Where it is, WGS84 degrees.
    pub location: LatLng,
}

/// A police district of the [`Directory`].
#[derive(Debug, Clone, PartialEq)]
pub struct DistrictEntry {
    /// Its id, `{sub_bureau_id}-d{nn}`, e.g. `nancheng-d01`.
    pub id: DistrictId,
    /// The station leading it.
    pub station_id: StationId,
    /// The sub-bureau it belongs to.
    pub sub_bureau_id: String,
    /// True for its station's central district, false for a general district.
    pub central: bool,
    /// A point inside it (the seed it grew from), WGS84 degrees.
    pub center: LatLng,
    /// Its area, square metres.
    pub area_m2: f64,
    /// The districts sharing a border with it.
    pub adjacent: Vec<DistrictId>,
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
