//! Points on the ground and great-circle distance.

use serde::{Deserialize, Serialize};

/// A WGS84 point, degrees. Construct with [`LatLng::new`] to get range checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLng {
    /// Latitude, degrees, -90..=90.
    pub lat: f64,
    /// Longitude, degrees, -180..=180.
    pub lon: f64,
}

/// Why a coordinate pair is not a WGS84 point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Latitude not finite or outside -90..=90.
    #[error("lat must be a finite number within -90..=90, got {0}")]
    Latitude(f64),
    /// Longitude not finite or outside -180..=180.
    #[error("lon must be a finite number within -180..=180, got {0}")]
    Longitude(f64),
}

impl LatLng {
    /// A checked point. Errors: [`Error::Latitude`], [`Error::Longitude`].
    pub fn new(lat: f64, lon: f64) -> Result<Self, Error> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Error::Latitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Error::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance to `other`, metres, on a sphere of the IUGG mean Earth radius
    /// (6,371,008.8 m), by the haversine formula of the `geo` crate. Error against the WGS84
    /// ellipsoid is below 0.5% everywhere.
    pub fn distance_m(&self, other: &LatLng) -> f64 {
        use ::geo::{Distance, Haversine, Point};
        Haversine.distance(
            Point::new(self.lon, self.lat),
            Point::new(other.lon, other.lat),
        )
    }

    /// This point as a `geo` point (x = lon, y = lat).
    pub fn to_point(&self) -> ::geo::Point<f64> {
        ::geo::Point::new(self.lon, self.lat)
    }
}

/// Metres per degree of latitude (and of longitude on the equator) on the sphere of
/// [`LatLng::distance_m`]: pi x 6,371,008.8 m / 180.
pub const METRES_PER_DEGREE: f64 = std::f64::consts::PI * 6_371_008.8 / 180.0;

/// The rectangle of latitude and longitude a city's positions lie in, WGS84 degrees: a
/// district refuses a position report outside it (a terminal's bad fix, or the `0,0` of a
/// receiver that has none), see [`crate::position::PositionRules`].
///
/// It does not cross the antimeridian (`west <= east`), which no city's police map does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceArea {
    /// Southern edge, latitude, degrees.
    pub south: f64,
    /// Western edge, longitude, degrees.
    pub west: f64,
    /// Northern edge, latitude, degrees.
    pub north: f64,
    /// Eastern edge, longitude, degrees.
    pub east: f64,
}

impl ServiceArea {
    /// The smallest rectangle holding every one of `points`, widened by `margin_m` metres
    /// (negative taken as 0) on each side and clipped to the globe; `None` without points.
    ///
    /// The widening in longitude is taken at the edge farther from the equator, where a
    /// degree is shortest, so the rectangle holds at least `margin_m` around every point.
    pub fn around(points: impl IntoIterator<Item = LatLng>, margin_m: f64) -> Option<Self> {
        let mut points = points.into_iter();
        let first = points.next()?;
        let mut area = Self {
            south: first.lat,
            west: first.lon,
            north: first.lat,
            east: first.lon,
        };
        for p in points {
            area.south = area.south.min(p.lat);
            area.north = area.north.max(p.lat);
            area.west = area.west.min(p.lon);
            area.east = area.east.max(p.lon);
        }
        let margin_m = if margin_m.is_finite() {
            margin_m.max(0.0)
        } else {
            0.0
        };
        let dlat = margin_m / METRES_PER_DEGREE;
        area.south = (area.south - dlat).max(-90.0);
        area.north = (area.north + dlat).min(90.0);
        let widest = area.south.abs().max(area.north.abs());
        // Within a degree of a pole every longitude is within reach.
        let dlon = if widest >= 89.0 {
            360.0
        } else {
            dlat / widest.to_radians().cos()
        };
        area.west = (area.west - dlon).max(-180.0);
        area.east = (area.east + dlon).min(180.0);
        Some(area)
    }

    /// Whether `p` lies inside or on the edge.
    pub fn contains(&self, p: &LatLng) -> bool {
        (self.south..=self.north).contains(&p.lat) && (self.west..=self.east).contains(&p.lon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spherical law of cosines, written out independently of `geo`'s haversine.
    fn law_of_cosines_m(a: LatLng, b: LatLng) -> f64 {
        let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
        let dl = (b.lon - a.lon).to_radians();
        let c = p1.sin() * p2.sin() + p1.cos() * p2.cos() * dl.cos();
        6_371_008.8 * c.clamp(-1.0, 1.0).acos()
    }

    #[test]
    fn one_degree_of_latitude_is_pi_r_over_180() {
        let a = LatLng::new(0.0, 0.0).unwrap();
        let b = LatLng::new(1.0, 0.0).unwrap();
        let expected = std::f64::consts::PI * 6_371_008.8 / 180.0; // 111,195.08 m
        assert!((a.distance_m(&b) - expected).abs() < 0.01);
    }

    #[test]
    fn beijing_to_shanghai_matches_published_distance() {
        // City centres (Tiananmen 39.9087N 116.3975E, People's Square 31.2304N 121.4737E);
        // the great-circle distance is commonly given as about 1,067 km.
        let beijing = LatLng::new(39.9087, 116.3975).unwrap();
        let shanghai = LatLng::new(31.2304, 121.4737).unwrap();
        let d = beijing.distance_m(&shanghai);
        assert!((d - 1_067_000.0).abs() / 1_067_000.0 < 0.005, "got {d}");
    }

    #[test]
    fn dongguan_to_guangzhou_agrees_with_law_of_cosines() {
        let dongguan = LatLng::new(23.0207, 113.7518).unwrap();
        let guangzhou = LatLng::new(23.1291, 113.2644).unwrap();
        let expected = law_of_cosines_m(dongguan, guangzhou);
        assert!((dongguan.distance_m(&guangzhou) - expected).abs() / expected < 1e-6);
        // About 51 km apart.
        assert!((50_000.0..53_000.0).contains(&expected), "got {expected}");
    }

    #[test]
    fn rejects_out_of_range_and_non_finite() {
        assert_eq!(LatLng::new(91.0, 0.0), Err(Error::Latitude(91.0)));
        assert_eq!(LatLng::new(0.0, -180.5), Err(Error::Longitude(-180.5)));
        assert!(LatLng::new(f64::NAN, 0.0).is_err());
        assert!(LatLng::new(0.0, f64::INFINITY).is_err());
        assert!(LatLng::new(-90.0, 180.0).is_ok());
    }

    #[test]
    fn service_area_is_the_box_of_the_points_widened_by_the_margin() {
        // 0.1 deg of latitude = 11,119.508 m; the widening in longitude is taken at 23.2N
        // (the northern edge after widening): 0.1 / cos(23.2 deg) = 0.1087979 deg.
        let a = LatLng::new(23.0, 113.7).unwrap();
        let b = LatLng::new(23.1, 113.8).unwrap();
        let area = ServiceArea::around([a, b], 11_119.508_023).unwrap();
        assert!((area.south - 22.9).abs() < 1e-9, "got {}", area.south);
        assert!((area.north - 23.2).abs() < 1e-9, "got {}", area.north);
        assert!(
            (area.west - (113.7 - 0.108_797_9)).abs() < 1e-6,
            "got {}",
            area.west
        );
        assert!(
            (area.east - (113.8 + 0.108_797_9)).abs() < 1e-6,
            "got {}",
            area.east
        );
        assert!(area.contains(&LatLng::new(23.19, 113.9).unwrap()));
        assert!(!area.contains(&LatLng::new(23.21, 113.75).unwrap()));
        assert!(
            !area.contains(&LatLng::new(0.0, 0.0).unwrap()),
            "null island"
        );
        assert_eq!(ServiceArea::around([], 1_000.0), None);
    }

    #[test]
    fn service_area_is_clipped_to_the_globe() {
        let area = ServiceArea::around([LatLng::new(89.5, 179.5).unwrap()], 200_000.0).unwrap();
        assert_eq!((area.north, area.west, area.east), (90.0, -180.0, 180.0));
    }
}
