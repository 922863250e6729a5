//! Resolving overlaps between source outlines, so every point belongs to one sub-bureau.

use geo::orient::Direction;
use geo::{BooleanOps, BoundingRect, Intersects, MultiPolygon, Orient, Polygon, unary_union};

use crate::{area_m2, polygon_area_m2};

/// A piece of ground two source outlines both claimed, given to one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedOverlap {
    /// Id of the sub-bureau that keeps the overlap (the earlier id in alphabetical order).
    pub kept_by: String,
    /// Id of the sub-bureau whose area lost it.
    pub removed_from: String,
    /// Geodesic area of the overlap, square metres (WGS84 ellipsoid).
    pub area_m2: f64,
}

/// Overlaps smaller than this are numerical noise of the clipping (coordinates of two outlines
/// that agree to the last digits), removed but not reported. Square metres.
pub const MIN_REPORTED_OVERLAP_M2: f64 = 1.0;

/// Resolves overlaps between `outlines` (given in the fixed order of their ids): each area is
/// its outline minus every earlier area, so an overlap stays with the earlier id. Returns the
/// areas in the same order and the overlaps of at least [`MIN_REPORTED_OVERLAP_M2`].
pub(crate) fn resolve(
    ids: &[&str],
    outlines: &[MultiPolygon<f64>],
) -> (Vec<MultiPolygon<f64>>, Vec<ResolvedOverlap>) {
    let boxes: Vec<_> = outlines.iter().map(BoundingRect::bounding_rect).collect();
    let mut areas: Vec<MultiPolygon<f64>> = Vec::with_capacity(outlines.len());
    let mut overlaps = Vec::new();
    for (i, outline) in outlines.iter().enumerate() {
        let mut remaining = normalise(outline);
        for (j, earlier) in areas.iter().enumerate() {
            let (Some(a), Some(b)) = (boxes[i], boxes[j]) else {
                continue;
            };
            if !a.intersects(&b) {
                continue;
            }
            let cut = remaining.intersection(earlier);
            if cut.0.is_empty() {
                continue;
            }
            let cut_m2 = area_m2(&cut);
            remaining = remaining.difference(earlier);
            if cut_m2 >= MIN_REPORTED_OVERLAP_M2 {
                overlaps.push(ResolvedOverlap {
                    kept_by: ids[j].to_owned(),
                    removed_from: ids[i].to_owned(),
                    area_m2: cut_m2,
                });
            }
        }
        areas.push(drop_specks(remaining));
    }
    (areas, overlaps)
}

/// The outline as the union of its polygons, each oriented first (exterior counter-clockwise,
/// holes clockwise), so parts that overlap each other count once and holes stay holes whatever
/// the source's ring orientation.
pub(crate) fn normalise(outline: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    let oriented: Vec<Polygon<f64>> = outline
        .iter()
        .map(|p| p.orient(Direction::Default))
        .collect();
    unary_union(&oriented)
}

/// Polygons smaller than this are dropped from areas and districts: zero-width slivers left by
/// clipping outlines whose borders agree only to the last digits. Square metres.
pub const MIN_PART_M2: f64 = 1.0;

/// `mp` without its polygons smaller than [`MIN_PART_M2`].
pub(crate) fn drop_specks(mp: MultiPolygon<f64>) -> MultiPolygon<f64> {
    MultiPolygon::new(
        mp.0.into_iter()
            .filter(|p| polygon_area_m2(p) >= MIN_PART_M2)
            .collect(),
    )
}
