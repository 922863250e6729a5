//! Random points for load tests and property checks.

use geo::{BoundingRect, InteriorPoint, Intersects, MultiPolygon, Point};
use rand::Rng;

use dispatch_core::LatLng;

/// Rejection attempts before [`sample_point`] gives up on uniformity. With an area filling even
/// 1% of its bounding box, all of them fail with probability 0.99^10,000 ≈ 2·10⁻⁴⁴.
const MAX_ATTEMPTS: usize = 10_000;

/// A random point of `area` (WGS84 lon/lat degrees), uniform over the ground it covers:
/// rejection sampling in the bounding box, drawing longitude uniformly and latitude uniformly in
/// sin(lat), which is uniform in area on the sphere (plain uniform latitude would favour the
/// poleward side by the cos(lat) ratio, ~0.15% across a town).
///
/// Returns `None` only for an empty area. Should every attempt miss (a vanishingly thin
/// area), it returns the area's interior point rather than loop on.
pub fn sample_point<R: Rng + ?Sized>(area: &MultiPolygon<f64>, rng: &mut R) -> Option<LatLng> {
    let bbox = area.bounding_rect()?;
    let (min, max) = (bbox.min(), bbox.max());
    let (s0, s1) = (min.y.to_radians().sin(), max.y.to_radians().sin());
    for _ in 0..MAX_ATTEMPTS {
        let lon = min.x + rng.random::<f64>() * (max.x - min.x);
        let lat = (s0 + rng.random::<f64>() * (s1 - s0))
            .clamp(-1.0, 1.0)
            .asin()
            .to_degrees();
        if area.intersects(&Point::new(lon, lat)) {
            return LatLng::new(lat, lon).ok();
        }
    }
    let p = area.interior_point()?;
    LatLng::new(p.y(), p.x()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use geo::{LineString, Polygon};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn samples_fall_inside_and_spread_evenly() {
        // An L of three 0.01-degree squares at (0, 0), (0.01, 0) and (0, 0.01); the fourth
        // square of the bounding box, at (0.01, 0.01), is empty.
        let l = Polygon::new(
            LineString::from(vec![
                (0.0, 0.0),
                (0.02, 0.0),
                (0.02, 0.01),
                (0.01, 0.01),
                (0.01, 0.02),
                (0.0, 0.02),
                (0.0, 0.0),
            ]),
            vec![],
        );
        let area = MultiPolygon::new(vec![l]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut cells = [0usize; 3];
        for _ in 0..30_000 {
            let p = sample_point(&area, &mut rng).unwrap();
            assert!(area.intersects(&Point::new(p.lon, p.lat)));
            let cell = match (p.lon < 0.01, p.lat < 0.01) {
                (true, true) => 0,
                (false, true) => 1,
                (true, false) => 2,
                (false, false) => unreachable!("sample in the missing cell"),
            };
            cells[cell] += 1;
        }
        // Each of the 3 equal cells expects 10,000; 5 standard deviations is about 400.
        for count in cells {
            assert!((9_600..=10_400).contains(&count), "{cells:?}");
        }
    }

    #[test]
    fn empty_area_has_no_sample() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(sample_point(&MultiPolygon::<f64>::new(vec![]), &mut rng).is_none());
    }
}
