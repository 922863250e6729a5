//! A local flat approximation of the ground, for metric work (clustering, bisectors, distances
//! between nearby shapes) on lon/lat data.

use geo::{Coord, Rect};

/// Metres per degree of latitude on a sphere of the IUGG mean Earth radius (6,371,008.8 m),
/// the radius `dispatch_core::LatLng::distance_m` uses: π R / 180 ≈ 111,195 m.
pub const METRES_PER_DEGREE: f64 = std::f64::consts::PI * 6_371_008.8 / 180.0;

/// Equirectangular projection around a reference point: x = (lon - lon0) cos(lat0) k,
/// y = (lat - lat0) k, with k = [`METRES_PER_DEGREE`]. Straight lines map to straight lines
/// both ways (the map is affine), so a polygon built in the plane is still a polygon in lon/lat.
/// Over a town (tens of km) the scale error is below 0.3%.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LocalPlane {
    lon0: f64,
    lat0: f64,
    kx: f64,
}

impl LocalPlane {
    /// The plane centred on `rect` (lon/lat degrees).
    pub(crate) fn around(rect: Rect<f64>) -> Self {
        let c = rect.center();
        Self {
            lon0: c.x,
            lat0: c.y,
            kx: c.y.to_radians().cos() * METRES_PER_DEGREE,
        }
    }

    /// lon/lat degrees -> plane metres.
    pub(crate) fn to_xy(self, c: Coord<f64>) -> Coord<f64> {
        Coord {
            x: (c.x - self.lon0) * self.kx,
            y: (c.y - self.lat0) * METRES_PER_DEGREE,
        }
    }

    /// Plane metres -> lon/lat degrees.
    pub(crate) fn to_lonlat(self, c: Coord<f64>) -> Coord<f64> {
        Coord {
            x: self.lon0 + c.x / self.kx,
            y: self.lat0 + c.y / METRES_PER_DEGREE,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dispatch_core::LatLng;

    #[test]
    fn plane_distance_matches_haversine_nearby() {
        let plane = LocalPlane::around(Rect::new(
            Coord { x: 113.6, y: 22.9 },
            Coord { x: 113.8, y: 23.1 },
        ));
        let a = Coord {
            x: 113.70,
            y: 23.00,
        };
        let b = Coord {
            x: 113.73,
            y: 23.02,
        };
        let (pa, pb) = (plane.to_xy(a), plane.to_xy(b));
        let flat = ((pa.x - pb.x).powi(2) + (pa.y - pb.y).powi(2)).sqrt();
        let sphere = LatLng::new(a.y, a.x)
            .unwrap()
            .distance_m(&LatLng::new(b.y, b.x).unwrap());
        assert!((flat - sphere).abs() / sphere < 1e-3, "{flat} vs {sphere}");
        let back = plane.to_lonlat(pb);
        assert!((back.x - b.x).abs() < 1e-12 && (back.y - b.y).abs() < 1e-12);
    }
}
