//! Spatial indexes over the districts: which district holds a point, which is nearest, which
//! districts touch.

use std::collections::BTreeSet;

use geo::{Coord, Intersects, Line, MultiPolygon, Point, Polygon, Rect};
use rstar::primitives::GeomWithData;
use rstar::{AABB, RTree};

use dispatch_core::LatLng;

use crate::plane::LocalPlane;

/// Points this close to a district (metres) count as inside it: the boolean operations snap
/// coordinates to a grid of about 10⁻⁵ m, which can leave hairline seams between districts.
pub(crate) const SEAM_M: f64 = 0.01;

/// R-trees over the districts of a map.
#[derive(Debug, Clone)]
pub(crate) struct DistrictIndex {
    plane: LocalPlane,
    /// Every polygon of every district, lon/lat, with its district's index.
    polygons: RTree<GeomWithData<Polygon<f64>, usize>>,
    /// Every boundary segment of every district in the map's local plane (metres), with its
    /// district's index.
    segments: RTree<GeomWithData<Line<f64>, usize>>,
}

/// Where a point falls, as district index and distance outside (0 inside), metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hit {
    pub district: usize,
    pub distance_outside_m: f64,
}

impl DistrictIndex {
    /// Indexes `areas` (lon/lat), district `i` being `areas[i]`.
    pub(crate) fn new(areas: &[&MultiPolygon<f64>], extent: Rect<f64>) -> Self {
        let plane = LocalPlane::around(extent);
        let mut polygons = Vec::new();
        let mut segments = Vec::new();
        for (i, area) in areas.iter().enumerate() {
            for polygon in area.iter() {
                polygons.push(GeomWithData::new(polygon.clone(), i));
                for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                    for line in ring.lines() {
                        let xy = Line::new(plane.to_xy(line.start), plane.to_xy(line.end));
                        segments.push(GeomWithData::new(xy, i));
                    }
                }
            }
        }
        Self {
            plane,
            polygons: RTree::bulk_load(polygons),
            segments: RTree::bulk_load(segments),
        }
    }

    /// The district holding `p` (the lowest index when `p` lies on a shared border), else the
    /// nearest district with the distance to it. `None` only for an empty index.
    pub(crate) fn locate(&self, p: LatLng) -> Option<Hit> {
        let point = Point::new(p.lon, p.lat);
        let inside = self
            .polygons
            .locate_in_envelope_intersecting(&AABB::from_point(point))
            .filter(|g| g.geom().intersects(&point))
            .map(|g| g.data)
            .min();
        if let Some(district) = inside {
            return Some(Hit {
                district,
                distance_outside_m: 0.0,
            });
        }
        let q = self.plane.to_xy(point.0);
        let segment = self.segments.nearest_neighbor(&Point(q))?;
        let closest = self.plane.to_lonlat(closest_on_segment(q, segment.geom()));
        let distance = LatLng {
            lat: closest.y,
            lon: closest.x,
        }
        .distance_m(&p);
        Some(Hit {
            district: segment.data,
            distance_outside_m: if distance <= SEAM_M { 0.0 } else { distance },
        })
    }

    /// Pairs `(a, b)`, `a < b`, of districts whose borders come within `tolerance_m` metres:
    /// a vertex of one lies within the tolerance of a boundary segment of the other. Two
    /// polygons that touch or share a border always have such a vertex (where the shared part
    /// ends).
    pub(crate) fn touching_pairs(&self, tolerance_m: f64) -> BTreeSet<(usize, usize)> {
        let tolerance2 = tolerance_m.max(SEAM_M).powi(2);
        let mut pairs = BTreeSet::new();
        for segment in self.segments.iter() {
            let a = segment.data;
            let vertex = Point(segment.geom().start);
            for other in self.segments.locate_within_distance(vertex, tolerance2) {
                let b = other.data;
                if a != b {
                    pairs.insert((a.min(b), a.max(b)));
                }
            }
        }
        pairs
    }
}

/// The point of segment `s` nearest `q` (plane coordinates).
fn closest_on_segment(q: Coord<f64>, s: &Line<f64>) -> Coord<f64> {
    let d = s.delta();
    let len2 = d.x * d.x + d.y * d.y;
    if len2 == 0.0 {
        return s.start;
    }
    let t = (((q.x - s.start.x) * d.x + (q.y - s.start.y) * d.y) / len2).clamp(0.0, 1.0);
    Coord {
        x: s.start.x + d.x * t,
        y: s.start.y + d.y * t,
    }
}
