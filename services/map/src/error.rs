//! Errors of loading and building a map, and of routing a point.

use std::path::PathBuf;

/// Why a map could not be loaded or built. Every variant names the file, line, feature or
/// sub-bureau at fault and the value that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A map or population file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The map file is not GeoJSON.
    #[error("{path} is not valid GeoJSON: {source}")]
    GeoJson {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: Box<geojson::Error>,
    },
    /// The map file is GeoJSON but not a `FeatureCollection`.
    #[error("{path} must be a GeoJSON FeatureCollection, got a {kind}")]
    NotFeatureCollection {
        /// The file.
        path: PathBuf,
        /// What it is instead (`Feature` or `Geometry`).
        kind: &'static str,
    },
    /// A feature has no string property `name`.
    #[error("{path}: feature #{index} has no string property `name`")]
    FeatureWithoutName {
        /// The file.
        path: PathBuf,
        /// Position of the feature in the collection, from 0.
        index: usize,
    },
    /// A feature's geometry is missing or not a (multi)polygon.
    #[error("{path}: feature {name} has geometry {kind}, expected Polygon or MultiPolygon")]
    UnsupportedGeometry {
        /// The file.
        path: PathBuf,
        /// The feature's `name`.
        name: String,
        /// The geometry type found (`none` when missing).
        kind: String,
    },
    /// A coordinate is not finite or outside WGS84 range (lat -90..=90, lon -180..=180).
    #[error("area {name} has a coordinate outside WGS84 range: lon {lon}, lat {lat}")]
    BadCoordinate {
        /// The area's source name.
        name: String,
        /// Longitude, degrees.
        lon: f64,
        /// Latitude, degrees.
        lat: f64,
    },
    /// A row of the population CSV cannot be used.
    #[error("{path}:{line}: {reason}")]
    CsvRow {
        /// The file.
        path: PathBuf,
        /// Line number, from 1 (the header is line 1).
        line: usize,
        /// What is wrong, with the offending value.
        reason: String,
    },
    /// The population CSV names a town that the map does not have.
    #[error("{path}:{line}: town {name} is not in the map")]
    UnknownTown {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The `name_zh` value.
        name: String,
    },
    /// A population CSV was given but has no row for one of the map's towns.
    #[error("{path}: no population row for town {name}")]
    MissingPopulation {
        /// The file.
        path: PathBuf,
        /// The town's source name.
        name: String,
    },
    /// The map has no areas at all.
    #[error("the map has no areas")]
    NoAreas,
    /// Two areas have the same source name or the same id.
    #[error("two areas share the {what} {value}")]
    Duplicate {
        /// `name` or `id`.
        what: &'static str,
        /// The shared value.
        value: String,
    },
    /// An id is not a slug of lowercase ASCII letters, digits and single dashes.
    #[error("area id {0:?} must be lowercase ascii letters, digits and single dashes")]
    BadId(String),
    /// An area is empty, or nothing of it is left once overlaps are resolved.
    #[error("area {id} is empty after overlap resolution")]
    EmptyArea {
        /// The area's id.
        id: String,
    },
    /// An area is too small or thin to hold its districts.
    #[error("area {id} ({area_m2:.0} m²) is too small to split into {districts} districts")]
    AreaTooSmall {
        /// The area's id.
        id: String,
        /// Its area, square metres.
        area_m2: f64,
        /// Districts it should hold.
        districts: usize,
    },
    /// The rule gives a sub-bureau more than [`crate::MAX_DISTRICTS_PER_SUB_BUREAU`] districts.
    #[error("area {id} would get {districts} districts, more than the {max} allowed")]
    TooManyDistricts {
        /// The area's id.
        id: String,
        /// Districts the rule gives it.
        districts: usize,
        /// The limit.
        max: usize,
    },
    /// A partition rule value is out of range.
    #[error("invalid partition rule: {0}")]
    InvalidRule(String),
}

/// Result of map loading and building.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a point could not be routed to a district.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// The point is not a WGS84 coordinate.
    #[error(transparent)]
    InvalidPoint(#[from] dispatch_core::geo::Error),
    /// The point lies farther outside the map than the route rule allows.
    #[error("point is {distance_m:.0} m outside the map, more than the {max_m:.0} m allowed")]
    TooFar {
        /// Distance from the point to the nearest district, metres.
        distance_m: f64,
        /// The limit, metres ([`crate::RouteRule::max_outside_m`]).
        max_m: f64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
        send_sync::<RouteError>();
    }
}
