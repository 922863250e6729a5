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
}
