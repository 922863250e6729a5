//! The city map of the dispatch cluster: police sub-bureaus, stations and districts as
//! polygons, district adjacency, and routing a point to its district.
//!
//! In the flow of a 110 call, intake asks the geo-router (`dispatch-geo-router`, a thin gRPC
//! shell around this crate) where the caller is; [`CityMap::route`] answers the district, its
//! station and sub-bureau. District actors use [`District::adjacent`] to look for backup; the
//! load-test harness places calls with [`sample_point`].
//!
//! A map is built from one outline per sub-bureau ([`CityMap::from_geojson`] for a GeoJSON
//! file such as `shared/data/dongguan/towns.geojson`, [`CityMap::builtin`] for the small
//! fictional city that needs no file). Overlapping outlines are resolved deterministically
//! ([`ResolvedOverlap`]); each sub-bureau is split into districts that tile it exactly and
//! grouped into stations, in the numbers the [`PartitionRule`] derives from the source
//! document's pilot sub-bureau (Nancheng: 17 districts, 6 stations, 418,288 residents).
//!
//! Units: coordinates WGS84 degrees (geo's x = longitude, y = latitude), distances metres,
//! areas square metres (geodesic, WGS84 ellipsoid). No async, no network; only the loader reads
//! files.

mod builtin;
mod error;
mod index;
mod map;
mod overlap;
mod partition;
mod plane;
mod rule;
mod sample;
pub mod source;

pub use builtin::{BUILTIN_CENTRE, builtin_areas};
pub use error::{Error, Result, RouteError};
pub use map::{CityMap, District, Routed, Station, SubBureau};
pub use overlap::{MIN_PART_M2, MIN_REPORTED_OVERLAP_M2, ResolvedOverlap};
pub use plane::METRES_PER_DEGREE;
pub use rule::{
    MAX_DISTRICTS_PER_SUB_BUREAU, NANCHENG_AREA_M2, NANCHENG_DISTRICTS, NANCHENG_POPULATION,
    NANCHENG_STATIONS, PartitionRule, RouteRule,
};
pub use sample::sample_point;
pub use source::{SourceArea, slug};

use geo::{GeodesicArea, MultiPolygon, Polygon};

/// Geodesic area of `area` (WGS84 lon/lat degrees), square metres, on the WGS84 ellipsoid
/// (Karney's algorithm, via geo's `GeodesicArea`). Each polygon counts once whatever its ring
/// orientation; holes are subtracted.
pub fn area_m2(area: &MultiPolygon<f64>) -> f64 {
    area.iter().map(polygon_area_m2).sum()
}

/// Geodesic area of one polygon, square metres, whatever its ring orientation.
pub(crate) fn polygon_area_m2(p: &Polygon<f64>) -> f64 {
    p.geodesic_area_signed().abs()
}
