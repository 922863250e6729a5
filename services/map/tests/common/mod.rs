//! Helpers shared by the integration tests, written independently of the crate's own geometry.

#![allow(dead_code)]

use dispatch_core::LatLng;
use dispatch_map::{CityMap, RouteError};
use geo::{Coord, MultiPolygon};

/// Metres per degree of latitude on the 6,371,008.8 m sphere.
const M_PER_DEG: f64 = std::f64::consts::PI * 6_371_008.8 / 180.0;

/// Distance from `p` to the nearest boundary point of `area`, metres: exact point-to-segment
/// distance in a flat plane tangent at `p` (equirectangular at p's latitude), good to well
/// under 0.1% within a few kilometres.
pub fn boundary_distance_m(p: LatLng, area: &MultiPolygon<f64>) -> f64 {
    let kx = p.lat.to_radians().cos() * M_PER_DEG;
    let xy = |c: &Coord<f64>| ((c.x - p.lon) * kx, (c.y - p.lat) * M_PER_DEG);
    let mut best = f64::INFINITY;
    for polygon in area {
        for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
            for w in ring.0.windows(2) {
                let (a, b) = (xy(&w[0]), xy(&w[1]));
                let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                let len2 = dx * dx + dy * dy;
                let t = if len2 == 0.0 {
                    0.0
                } else {
                    (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
                };
                let (x, y) = (a.0 + t * dx, a.1 + t * dy);
                best = best.min((x * x + y * y).sqrt());
            }
        }
    }
    best
}

/// The point `metres` due west of `p` (along its parallel).
pub fn west_of(p: LatLng, metres: f64) -> LatLng {
    LatLng {
        lat: p.lat,
        lon: p.lon - metres / (p.lat.to_radians().cos() * M_PER_DEG),
    }
}

/// The westernmost vertex of all `areas`.
pub fn westernmost<'a>(areas: impl IntoIterator<Item = &'a MultiPolygon<f64>>) -> LatLng {
    let mut best = LatLng {
        lat: 0.0,
        lon: f64::INFINITY,
    };
    for area in areas {
        for polygon in area {
            for c in polygon.exterior().coords() {
                if c.x < best.lon {
                    best = LatLng { lat: c.y, lon: c.x };
                }
            }
        }
    }
    best
}

/// Area of `area` in square metres measured flat in lon/lat (equirectangular at each polygon's
/// centroid latitude). Unlike a geodesic area it is exactly 0 for a hairline sliver whose sides
/// are straight lon/lat lines, which is what seams between clipped polygons are.
pub fn planar_area_m2(area: &MultiPolygon<f64>) -> f64 {
    use geo::{Area, Centroid};
    area.iter()
        .map(|p| {
            let lat = p.centroid().map_or(0.0, |c| c.y());
            p.unsigned_area() * M_PER_DEG * M_PER_DEG * lat.to_radians().cos()
        })
        .sum()
}

/// Checks routing just outside `map`: a point 1 km west of its westernmost vertex (every other
/// point of the map lies farther east) goes to the district holding that vertex, flagged, about
/// 1,000 m out, and no district is nearer; a point 10 km west is `TooFar` at about 10,000 m.
/// Returns the far point.
pub fn assert_routes_outside(map: &CityMap) -> LatLng {
    let west = westernmost(map.sub_bureaus.iter().map(|s| &s.area));
    let near = west_of(west, 1_000.0);
    let routed = map.route(near).unwrap();
    assert!(routed.outside_map, "{routed:?}");
    assert!(
        (routed.distance_outside_m - 1_000.0).abs() < 2.0,
        "{routed:?}"
    );
    let chosen = &map.districts[routed.district];
    assert!(
        boundary_distance_m(west, &chosen.area) < 0.01,
        "{}",
        chosen.id
    );
    let chosen_m = boundary_distance_m(near, &chosen.area);
    for d in &map.districts {
        assert!(
            boundary_distance_m(near, &d.area) >= chosen_m - 0.01,
            "{} is nearer",
            d.id
        );
    }
    let far = west_of(west, 10_000.0);
    match map.route(far) {
        Err(RouteError::TooFar { distance_m, max_m }) => {
            assert!((distance_m - 10_000.0).abs() < 20.0, "{distance_m}");
            assert_eq!(max_m, map.route_rule().max_outside_m);
        }
        other => panic!("expected TooFar, got {other:?}"),
    }
    far
}
