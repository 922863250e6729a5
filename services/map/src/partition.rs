//! Splitting one sub-bureau's area into police districts and grouping them into stations.
//!
//! 1. A regular lattice of points inside the area (in a local metric plane).
//! 2. Lloyd's algorithm (k-means) on the lattice places one seed per district, from a
//!    deterministic farthest-point start; each seed is then moved to the nearest lattice point,
//!    so it lies inside the area.
//! 3. Each district is the seed's Voronoi cell (the intersection of the half-planes closer to it
//!    than to every other seed, built in the metric plane so cells are not stretched east-west)
//!    intersected with the area by geo's boolean operations. Voronoi cells tile the plane, so
//!    the districts tile the area.
//! 4. The same k-means on the district seeds groups districts into stations; a station's
//!    central district is the member nearest the group's centre.
//!
//! Nothing is random: the same area and counts give the same districts on every machine.

use geo::{BooleanOps, BoundingRect, Coord, LineString, MultiPolygon, Polygon};

use crate::area_m2;
use crate::error::{Error, Result};
use crate::overlap::drop_specks;
use crate::plane::LocalPlane;
use crate::rule::PartitionRule;

/// One district of a partition.
#[derive(Debug, Clone)]
pub(crate) struct PartDistrict {
    /// A point inside the district, lon/lat degrees.
    pub seed: Coord<f64>,
    /// The district's area, lon/lat degrees.
    pub area: MultiPolygon<f64>,
}

/// One station of a partition: indexes into [`Partition::districts`], central first.
#[derive(Debug, Clone)]
pub(crate) struct PartStation {
    pub districts: Vec<usize>,
}

/// A sub-bureau's districts, ordered station by station (stations north to south, then west to
/// east by their centre; in each station the central district first, then the others north to
/// south).
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub districts: Vec<PartDistrict>,
    pub stations: Vec<PartStation>,
}

/// Most lattice points over an area's bounding box (inside or not) the seeding may scan.
const MAX_LATTICE_CANDIDATES: f64 = 4e6;

/// Splits `area` (lon/lat) into `n_districts` districts in `n_stations` stations.
/// Errors: [`Error::AreaTooSmall`] when the area cannot hold that many lattice points.
pub(crate) fn partition(
    id: &str,
    area: &MultiPolygon<f64>,
    n_districts: usize,
    n_stations: usize,
    rule: &PartitionRule,
) -> Result<Partition> {
    let area_m2 = area_m2(area);
    let too_small = || Error::AreaTooSmall {
        id: id.to_owned(),
        area_m2,
        districts: n_districts,
    };
    let bbox = area.bounding_rect().ok_or_else(too_small)?;
    let plane = LocalPlane::around(bbox);
    let rings_xy: Vec<Vec<Coord<f64>>> = area
        .iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .map(|ring| ring.coords().map(|c| plane.to_xy(*c)).collect())
        .collect();

    let wanted = rule
        .lattice_points_per_district
        .saturating_mul(n_districts)
        .max(64);
    let mut spacing = (area_m2 / wanted as f64).sqrt();
    let mut lattice = Vec::new();
    let (lo_xy, hi_xy) = bounds(&rings_xy);
    // A thin or fragmented area can hold fewer lattice points than its area suggests: refine,
    // as long as the lattice over the bounding box stays a bounded amount of work.
    for _ in 0..6 {
        let candidates = ((hi_xy.x - lo_xy.x) / spacing) * ((hi_xy.y - lo_xy.y) / spacing);
        if !(spacing.is_finite() && spacing > 0.0 && candidates <= MAX_LATTICE_CANDIDATES) {
            break;
        }
        lattice = lattice_inside(&rings_xy, spacing);
        if lattice.len() >= wanted / 2 && lattice.len() >= n_districts {
            break;
        }
        spacing /= 2.0;
    }
    if lattice.len() < n_districts {
        return Err(too_small());
    }

    let (centres, _) = kmeans(&lattice, n_districts, rule.max_lloyd_iterations);
    let seeds_xy = snap_to_points(&centres, &lattice);

    // Cells start from the area's bounding box itself, and their corners are clamped back into
    // it: every clipping below then works on operands with the same bounding box, so the
    // boolean operations snap all of them to the same integer grid (i_overlay centres and scales
    // its grid on the operands' box) and neighbouring districts get identical shared borders.
    let (lo, hi) = (bbox.min(), bbox.max());
    let frame: Vec<Coord<f64>> = [
        Coord { x: lo.x, y: lo.y },
        Coord { x: hi.x, y: lo.y },
        Coord { x: hi.x, y: hi.y },
        Coord { x: lo.x, y: hi.y },
    ]
    .into_iter()
    .map(|c| plane.to_xy(c))
    .collect();
    let clamp = |c: Coord<f64>| Coord {
        x: c.x.clamp(lo.x, hi.x),
        y: c.y.clamp(lo.y, hi.y),
    };

    let mut districts = Vec::with_capacity(n_districts);
    for (i, &s) in seeds_xy.iter().enumerate() {
        let mut cell = frame.clone();
        for (j, &t) in seeds_xy.iter().enumerate() {
            if i != j {
                cell = clip_to_closer_half(&cell, s, t);
            }
        }
        let ring: Vec<Coord<f64>> = cell.iter().map(|c| clamp(plane.to_lonlat(*c))).collect();
        let cell = Polygon::new(LineString::new(ring), vec![]);
        let district_area = drop_specks(area.intersection(&cell));
        if district_area.0.is_empty() {
            return Err(too_small());
        }
        districts.push(PartDistrict {
            seed: plane.to_lonlat(s),
            area: district_area,
        });
    }

    let (station_centres, labels) = kmeans(&seeds_xy, n_stations, rule.max_lloyd_iterations);
    let mut stations: Vec<(Coord<f64>, Vec<usize>)> = station_centres
        .iter()
        .enumerate()
        .map(|(k, &centre)| {
            let mut members: Vec<usize> = (0..seeds_xy.len()).filter(|&i| labels[i] == k).collect();
            members.sort_by(|&a, &b| north_west_first(seeds_xy[a], seeds_xy[b]));
            if let Some(central) = nearest(centre, members.iter().map(|&i| seeds_xy[i])) {
                let c = members.remove(central);
                members.insert(0, c);
            }
            (centre, members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect();
    stations.sort_by(|a, b| north_west_first(a.0, b.0));

    // Renumber districts station by station.
    let mut order = Vec::with_capacity(n_districts);
    let mut part_stations = Vec::with_capacity(stations.len());
    for (_, members) in &stations {
        let start = order.len();
        order.extend_from_slice(members);
        part_stations.push(PartStation {
            districts: (start..order.len()).collect(),
        });
    }
    let mut slots: Vec<Option<PartDistrict>> = districts.into_iter().map(Some).collect();
    let districts = order
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    Ok(Partition {
        districts,
        stations: part_stations,
    })
}

/// Orders points north first, then west first.
fn north_west_first(a: Coord<f64>, b: Coord<f64>) -> std::cmp::Ordering {
    b.y.total_cmp(&a.y).then(a.x.total_cmp(&b.x))
}

fn bounds(rings: &[Vec<Coord<f64>>]) -> (Coord<f64>, Coord<f64>) {
    let mut min = Coord {
        x: f64::INFINITY,
        y: f64::INFINITY,
    };
    let mut max = Coord {
        x: f64::NEG_INFINITY,
        y: f64::NEG_INFINITY,
    };
    for c in rings.iter().flatten() {
        min.x = min.x.min(c.x);
        min.y = min.y.min(c.y);
        max.x = max.x.max(c.x);
        max.y = max.y.max(c.y);
    }
    (min, max)
}

/// Points of a square lattice of `spacing` metres strictly inside the rings (even-odd rule, so
/// holes are excluded), row by row with a scanline: each row's crossings with the ring edges,
/// sorted, bound the inside spans.
fn lattice_inside(rings: &[Vec<Coord<f64>>], spacing: f64) -> Vec<Coord<f64>> {
    let (min, max) = bounds(rings);
    let mut points = Vec::new();
    let mut crossings = Vec::new();
    let mut y = min.y + spacing / 2.0;
    while y < max.y {
        crossings.clear();
        for ring in rings {
            for w in ring.windows(2) {
                let (a, b) = (w[0], w[1]);
                if (a.y <= y) != (b.y <= y) {
                    crossings.push(a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y));
                }
            }
        }
        crossings.sort_by(f64::total_cmp);
        for span in crossings.chunks_exact(2) {
            // Lattice columns are fixed across rows: x = min.x + (k + 0.5) spacing.
            let first = ((span[0] - min.x) / spacing - 0.5).floor() as i64 + 1;
            let mut k = first.max(0);
            loop {
                let x = min.x + (k as f64 + 0.5) * spacing;
                if x >= span[1] {
                    break;
                }
                if x > span[0] {
                    points.push(Coord { x, y });
                }
                k += 1;
            }
        }
        y += spacing;
    }
    points
}

fn dist2(a: Coord<f64>, b: Coord<f64>) -> f64 {
    (a.x - b.x).powi(2) + (a.y - b.y).powi(2)
}

/// Index of the point nearest `target` (the first on ties).
fn nearest(target: Coord<f64>, points: impl Iterator<Item = Coord<f64>>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in points.enumerate() {
        let d = dist2(target, p);
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// Deterministic k-means (Lloyd's algorithm). Start: the point nearest the mean, then
/// repeatedly the point farthest from every chosen centre. A cluster that empties is restarted
/// at the point farthest from its own centre. Returns the centres and each point's cluster.
/// `k` must not exceed the number of points (it is clamped to it).
pub(crate) fn kmeans(
    points: &[Coord<f64>],
    k: usize,
    max_iterations: usize,
) -> (Vec<Coord<f64>>, Vec<usize>) {
    let k = k.min(points.len());
    if k == 0 {
        return (Vec::new(), vec![0; points.len()]);
    }
    let n = points.len() as f64;
    let mean = points
        .iter()
        .fold(Coord { x: 0.0, y: 0.0 }, |acc, p| Coord {
            x: acc.x + p.x / n,
            y: acc.y + p.y / n,
        });
    let mut centres = Vec::with_capacity(k);
    let mut min_d2: Vec<f64> = vec![f64::INFINITY; points.len()];
    let mut next = nearest(mean, points.iter().copied()).unwrap_or(0);
    while centres.len() < k {
        let c = points[next];
        centres.push(c);
        for (d, p) in min_d2.iter_mut().zip(points) {
            *d = d.min(dist2(*p, c));
        }
        next = argmax(&min_d2);
    }

    let mut labels = vec![usize::MAX; points.len()];
    for _ in 0..max_iterations {
        let mut changed = false;
        let mut own_d2 = vec![0.0; points.len()];
        for (i, p) in points.iter().enumerate() {
            let best = nearest(*p, centres.iter().copied()).unwrap_or(0);
            own_d2[i] = dist2(*p, centres[best]);
            if labels[i] != best {
                labels[i] = best;
                changed = true;
            }
        }
        let mut sums = vec![(0.0, 0.0, 0usize); k];
        for (p, &l) in points.iter().zip(&labels) {
            sums[l].0 += p.x;
            sums[l].1 += p.y;
            sums[l].2 += 1;
        }
        for (c, (sx, sy, count)) in centres.iter_mut().zip(sums) {
            if count > 0 {
                *c = Coord {
                    x: sx / count as f64,
                    y: sy / count as f64,
                };
            } else {
                let far = argmax(&own_d2);
                *c = points[far];
                own_d2[far] = 0.0;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // A cluster restarted on the last iteration may still be empty: give it the point farthest
    // from its centre among clusters that can spare one (there is one while k <= points).
    loop {
        let mut counts = vec![0usize; k];
        for &l in &labels {
            if let Some(c) = counts.get_mut(l) {
                *c += 1;
            }
        }
        let Some(empty) = counts.iter().position(|&c| c == 0) else {
            break;
        };
        let spare = (0..points.len())
            .filter(|&i| counts.get(labels[i]).is_some_and(|&c| c >= 2))
            .max_by(|&a, &b| {
                let da = dist2(points[a], centres[labels[a]]);
                let db = dist2(points[b], centres[labels[b]]);
                da.total_cmp(&db).then(b.cmp(&a))
            });
        let Some(i) = spare else {
            break;
        };
        labels[i] = empty;
        centres[empty] = points[i];
    }
    (centres, labels)
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Moves each centre to the nearest point not already taken by an earlier centre, so seeds are
/// distinct and inside the area.
fn snap_to_points(centres: &[Coord<f64>], points: &[Coord<f64>]) -> Vec<Coord<f64>> {
    let mut taken = vec![false; points.len()];
    centres
        .iter()
        .map(|&c| {
            let mut best: Option<(usize, f64)> = None;
            for (i, p) in points.iter().enumerate() {
                let d = dist2(c, *p);
                if !taken[i] && best.is_none_or(|(_, bd)| d < bd) {
                    best = Some((i, d));
                }
            }
            match best {
                Some((i, _)) => {
                    taken[i] = true;
                    points[i]
                }
                None => c,
            }
        })
        .collect()
}

/// Clips convex polygon `poly` (open ring) to the half-plane of points at least as close to `s`
/// as to `t` (bounded by their perpendicular bisector).
fn clip_to_closer_half(poly: &[Coord<f64>], s: Coord<f64>, t: Coord<f64>) -> Vec<Coord<f64>> {
    let m = Coord {
        x: (s.x + t.x) / 2.0,
        y: (s.y + t.y) / 2.0,
    };
    let n = Coord {
        x: t.x - s.x,
        y: t.y - s.y,
    };
    // side(p) <= 0: p is on s's side.
    let side = |p: Coord<f64>| (p.x - m.x) * n.x + (p.y - m.y) * n.y;
    let mut out = Vec::with_capacity(poly.len() + 1);
    for (i, &a) in poly.iter().enumerate() {
        let b = poly[(i + 1) % poly.len()];
        let (da, db) = (side(a), side(b));
        if da <= 0.0 {
            out.push(a);
        }
        if (da < 0.0 && db > 0.0) || (da > 0.0 && db < 0.0) {
            let t = da / (da - db);
            out.push(Coord {
                x: a.x + (b.x - a.x) * t,
                y: a.y + (b.y - a.y) * t,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn square(side: f64) -> Vec<Vec<Coord<f64>>> {
        vec![vec![
            Coord { x: 0.0, y: 0.0 },
            Coord { x: side, y: 0.0 },
            Coord { x: side, y: side },
            Coord { x: 0.0, y: side },
            Coord { x: 0.0, y: 0.0 },
        ]]
    }

    #[test]
    fn lattice_fills_a_square_and_skips_a_hole() {
        // 10 x 10 lattice of spacing 1 in a 10 m square.
        assert_eq!(lattice_inside(&square(10.0), 1.0).len(), 100);
        let mut rings = square(10.0);
        // A 4 x 4 hole from (3,3) to (7,7) removes the 4 x 4 points at 3.5..=6.5.
        rings.push(vec![
            Coord { x: 3.0, y: 3.0 },
            Coord { x: 3.0, y: 7.0 },
            Coord { x: 7.0, y: 7.0 },
            Coord { x: 7.0, y: 3.0 },
            Coord { x: 3.0, y: 3.0 },
        ]);
        assert_eq!(lattice_inside(&rings, 1.0).len(), 84);
    }

    #[test]
    fn kmeans_finds_two_obvious_clusters() {
        let mut points = Vec::new();
        for i in 0..10 {
            points.push(Coord {
                x: i as f64 * 0.1,
                y: 0.0,
            });
            points.push(Coord {
                x: 100.0 + i as f64 * 0.1,
                y: 5.0,
            });
        }
        let (centres, labels) = kmeans(&points, 2, 50);
        let mut xs: Vec<f64> = centres.iter().map(|c| c.x).collect();
        xs.sort_by(f64::total_cmp);
        assert!((xs[0] - 0.45).abs() < 1e-9 && (xs[1] - 100.45).abs() < 1e-9);
        assert!(labels.chunks(2).all(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn kmeans_never_leaves_a_cluster_empty() {
        // Three points, three clusters, no time to iterate: every cluster still gets a point.
        let points = [
            Coord { x: 0.0, y: 0.0 },
            Coord { x: 0.0, y: 0.0 },
            Coord { x: 1.0, y: 0.0 },
        ];
        for iterations in [1, 100] {
            let (_, labels) = kmeans(&points, 3, iterations);
            let mut seen = labels.clone();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2], "{iterations}");
        }
    }

    #[test]
    fn half_plane_clip_of_a_square_at_its_bisector() {
        let sq: Vec<Coord<f64>> = square(2.0)[0][..4].to_vec();
        // Seeds (0,1) and (2,1): bisector x = 1; the left half is a 1 x 2 rectangle.
        let half = clip_to_closer_half(&sq, Coord { x: 0.0, y: 1.0 }, Coord { x: 2.0, y: 1.0 });
        let poly = Polygon::new(LineString::new(half), vec![]);
        assert!((geo::Area::unsigned_area(&poly) - 2.0).abs() < 1e-12);
    }
}
