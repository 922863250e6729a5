//! The built-in map: counts from the partition rule, exact tiling, routing, adjacency, and the
//! loader's and builder's errors. Runs on a fresh machine with no data files.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;

use dispatch_core::LatLng;
use dispatch_map::{
    CityMap, Error, PartitionRule, RouteError, RouteRule, SourceArea, area_m2, builtin_areas,
    sample_point,
};
use geo::{BooleanOps, Centroid, Intersects, LineString, MultiPolygon, Point, Polygon};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn map() -> &'static CityMap {
    static MAP: OnceLock<CityMap> = OnceLock::new();
    MAP.get_or_init(|| CityMap::builtin().unwrap())
}

#[test]
fn counts_follow_the_partition_rule() {
    let map = map();
    let ids: Vec<&str> = map.sub_bureaus.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["harbour", "hillview", "riverside"]);
    // 75,000 / (418,288 / 17) = 3.05 -> 3 districts, 3 / (17 / 6) = 1.06 -> 1 station;
    // 100,000 -> 4.06 -> 4 and 1.41 -> 1; 150,000 -> 6.10 -> 6 and 2.12 -> 2.
    for (id, districts, stations) in [("harbour", 3, 1), ("hillview", 4, 1), ("riverside", 6, 2)] {
        let n = map
            .districts
            .iter()
            .filter(|d| d.sub_bureau_id == id)
            .count();
        let s = map
            .stations
            .iter()
            .filter(|s| s.sub_bureau_id == id)
            .count();
        assert_eq!((n, s), (districts, stations), "{id}");
        assert_eq!(map.sub_bureau(id).unwrap().station_ids.len(), stations);
    }
    assert_eq!(map.districts.len(), 13);
    assert_eq!(map.population(), 325_000);
    assert!(map.has_populations());
    assert!(map.overlaps.is_empty(), "{:?}", map.overlaps);
    assert!(map.district("riverside-d01").is_some());
    assert!(map.station("riverside-s2").is_some());
    assert!(map.district("riverside-d07").is_none());
    assert!(map.sub_bureau("nowhere").is_none());
}

#[test]
fn stations_lead_one_central_district_each() {
    let map = map();
    for station in &map.stations {
        let members: Vec<_> = map
            .districts
            .iter()
            .filter(|d| d.station_id == station.id)
            .collect();
        let ids: Vec<&str> = members.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, station.district_ids, "{}", station.id);
        let central: Vec<_> = members.iter().filter(|d| d.central).collect();
        assert_eq!(central.len(), 1, "{}", station.id);
        assert_eq!(central[0].id, station.central_district_id);
        assert_eq!(central[0].seed, station.location);
    }
    for d in &map.districts {
        let seed = Point::new(d.seed.lon, d.seed.lat);
        assert!(d.area.intersects(&seed), "{} seed outside it", d.id);
        assert_eq!(
            map.district_index(&d.id).map(|i| &map.districts[i].id),
            Some(&d.id)
        );
    }
}

#[test]
fn districts_tile_each_sub_bureau_exactly() {
    let map = map();
    let sources = builtin_areas();
    for sb in &map.sub_bureaus {
        let source = sources.iter().find(|s| s.id == sb.id).unwrap();
        // The sectors share borders exactly, so each area is its outline (lake excluded).
        let expected = area_m2(&source.outline);
        assert!((sb.area_m2 - expected).abs() / expected < 1e-6, "{}", sb.id);
        assert!(
            (20e6..60e6).contains(&sb.area_m2),
            "{} {}",
            sb.id,
            sb.area_m2
        );
        let districts: Vec<_> = map
            .districts
            .iter()
            .filter(|d| d.sub_bureau_id == sb.id)
            .collect();
        // Geodesic area takes every edge as a geodesic; a border that cuts an outline edge puts
        // a vertex on the straight lon/lat segment, which lies a few centimetres off the
        // geodesic over a 7 km edge, so the sum may differ by a few parts per million.
        let sum: f64 = districts.iter().map(|d| d.area_m2).sum();
        assert!(
            (sum - expected).abs() / expected < 1e-5,
            "{}: {sum} vs {expected}",
            sb.id
        );
        for (i, a) in districts.iter().enumerate() {
            assert!((a.area_m2 - area_m2(&a.area)).abs() < 1e-3);
            for b in &districts[i + 1..] {
                let overlap = common::planar_area_m2(&a.area.intersection(&b.area));
                assert!(
                    overlap < 0.1,
                    "{} and {} overlap by {overlap} m²",
                    a.id,
                    b.id
                );
            }
        }
        // Nothing of the sub-bureau is left over but hairline seams: the clipping snaps
        // coordinates to a grid of ~1e-5 m, so over ~20 km of borders up to ~0.2 m² of seams
        // remain (5e-9 of the area). Measured flat, as a geodesic area of a sliver with
        // straight lon/lat sides would be dominated by the edge effect above.
        let mut rest = sb.area.clone();
        for d in &districts {
            rest = rest.difference(&d.area);
        }
        let uncovered = common::planar_area_m2(&rest);
        assert!(uncovered < 1.0, "{}: {uncovered} m² uncovered", sb.id);
    }
}

#[test]
fn random_points_route_to_the_district_holding_them() {
    let map = map();
    let mut rng = StdRng::seed_from_u64(2);
    for source in builtin_areas() {
        for _ in 0..2_000 {
            let p = sample_point(&source.outline, &mut rng).unwrap();
            let routed = map.route(p).unwrap();
            let district = &map.districts[routed.district];
            assert_eq!(district.sub_bureau_id, source.id);
            assert!(!routed.outside_map);
            assert_eq!(routed.distance_outside_m, 0.0);
            assert_eq!(map.stations[routed.station].id, district.station_id);
            assert_eq!(map.sub_bureaus[routed.sub_bureau].id, source.id);
            // Brute force: the district found is one whose area holds the point.
            let point = Point::new(p.lon, p.lat);
            assert!(
                district.area.intersects(&point),
                "{p:?} not in {}",
                district.id
            );
        }
    }
}

#[test]
fn a_point_in_the_lake_goes_to_the_nearest_district() {
    let map = map();
    let riverside = builtin_areas()
        .into_iter()
        .find(|s| s.id == "riverside")
        .unwrap();
    let lake = Polygon::new(riverside.outline.0[0].interiors()[0].clone(), vec![]);
    let c = lake.centroid().unwrap();
    let p = LatLng::new(c.y(), c.x()).unwrap();
    let routed = map.route(p).unwrap();
    assert!(routed.outside_map);
    let expected = common::boundary_distance_m(p, &MultiPolygon::new(vec![lake]));
    assert!(
        (routed.distance_outside_m - expected).abs() < 1.0,
        "{} vs {expected}",
        routed.distance_outside_m
    );
    assert_eq!(map.districts[routed.district].sub_bureau_id, "riverside");
}

#[test]
fn points_outside_the_city_go_to_the_nearest_district_up_to_2_km() {
    let map = map();
    let far = common::assert_routes_outside(map);
    // A wider rule takes the far point too.
    let wide = map.clone().with_route_rule(RouteRule {
        max_outside_m: 20_000.0,
    });
    assert!(wide.route(far).unwrap().outside_map);
}

#[test]
fn invalid_points_are_rejected() {
    let map = map();
    for (lat, lon) in [
        (f64::NAN, 113.7),
        (23.0, f64::INFINITY),
        (91.0, 113.7),
        (23.0, -181.0),
    ] {
        assert!(
            matches!(
                map.route(LatLng { lat, lon }),
                Err(RouteError::InvalidPoint(_))
            ),
            "{lat} {lon}"
        );
    }
}

#[test]
fn adjacency_is_symmetric_and_geometric() {
    let map = map();
    let mut cross = HashSet::new();
    for d in &map.districts {
        assert!(!d.adjacent.is_empty(), "{} has no neighbour", d.id);
        assert!(
            d.adjacent.windows(2).all(|w| w[0] < w[1]),
            "{} unsorted",
            d.id
        );
        for a in &d.adjacent {
            let other = map.district(a).unwrap();
            assert!(
                other.adjacent.contains(&d.id),
                "{} -> {a} not mirrored",
                d.id
            );
            // Neighbours really touch: a vertex of one lies on the other's border.
            let touching = d.area.iter().flat_map(|p| p.exterior().coords()).any(|c| {
                common::boundary_distance_m(LatLng { lat: c.y, lon: c.x }, &other.area) < 1.0
            }) || other
                .area
                .iter()
                .flat_map(|p| p.exterior().coords())
                .any(|c| common::boundary_distance_m(LatLng { lat: c.y, lon: c.x }, &d.area) < 1.0);
            assert!(touching, "{} and {a} do not touch", d.id);
            if other.sub_bureau_id != d.sub_bureau_id {
                let mut pair = [d.sub_bureau_id.clone(), other.sub_bureau_id.clone()];
                pair.sort();
                cross.insert(pair);
            }
        }
    }
    // The three sectors meet pairwise, so districts are adjacent across every pair.
    assert_eq!(cross.len(), 3, "{cross:?}");
}

#[test]
fn building_is_deterministic() {
    let again = CityMap::builtin().unwrap();
    assert_eq!(again.districts, map().districts);
    assert_eq!(again.stations, map().stations);
}

#[test]
fn without_populations_districts_follow_area() {
    let areas: Vec<SourceArea> = builtin_areas()
        .into_iter()
        .map(|a| SourceArea {
            population: None,
            ..a
        })
        .collect();
    let rule = PartitionRule::default();
    let map = CityMap::build("no-people", areas, &rule).unwrap();
    assert!(!map.has_populations());
    for sb in &map.sub_bureaus {
        // Nancheng's 56.42 km² hold 17 districts: 3.319 km² each.
        let expected = ((sb.area_m2 / (56_418_941.0 / 17.0)).round() as usize).max(2);
        let n = map
            .districts
            .iter()
            .filter(|d| d.sub_bureau_id == sb.id)
            .count();
        assert_eq!(n, expected, "{}", sb.id);
        assert_eq!(sb.population, 0);
    }
}

/// A square of `side` degrees with its south-west corner at (lon, lat).
fn square(lon: f64, lat: f64, side: f64) -> MultiPolygon<f64> {
    MultiPolygon::new(vec![Polygon::new(
        LineString::from(vec![
            (lon, lat),
            (lon + side, lat),
            (lon + side, lat + side),
            (lon, lat + side),
            (lon, lat),
        ]),
        vec![],
    )])
}

fn area(id: &str, outline: MultiPolygon<f64>) -> SourceArea {
    SourceArea {
        id: id.to_owned(),
        name: id.to_uppercase(),
        name_en: id.to_owned(),
        population: Some(60_000),
        outline,
    }
}

#[test]
fn overlaps_go_to_the_earlier_id_and_are_reported() {
    // beta is listed first but alpha sorts first and keeps the 0.02° x 0.05° overlap.
    let beta = square(113.70, 23.00, 0.05);
    let alpha = square(113.73, 23.00, 0.05);
    let map = CityMap::build(
        "two",
        vec![area("beta", beta.clone()), area("alpha", alpha.clone())],
        &PartitionRule::default(),
    )
    .unwrap();
    assert_eq!(map.overlaps.len(), 1);
    let o = &map.overlaps[0];
    assert_eq!(
        (o.kept_by.as_str(), o.removed_from.as_str()),
        ("alpha", "beta")
    );
    // Spherical strip: R² Δλ (sin φ2 - sin φ1) on the 6,371,008.8 m sphere; the ellipsoid
    // differs by well under 0.5% at 23° N.
    let r = 6_371_008.8_f64;
    let strip = |dlon: f64| {
        r * r * dlon.to_radians() * (23.05_f64.to_radians().sin() - 23.0_f64.to_radians().sin())
    };
    assert!(
        (o.area_m2 - strip(0.02)).abs() / strip(0.02) < 0.005,
        "{}",
        o.area_m2
    );
    let a = map.sub_bureau("alpha").unwrap();
    let b = map.sub_bureau("beta").unwrap();
    assert!((a.area_m2 - strip(0.05)).abs() / strip(0.05) < 0.005);
    assert!((b.area_m2 - strip(0.03)).abs() / strip(0.03) < 0.005);
    // A point in the overlap routes to alpha.
    let p = LatLng::new(23.025, 113.74).unwrap();
    assert_eq!(
        map.districts[map.route(p).unwrap().district].sub_bureau_id,
        "alpha"
    );
}

#[test]
fn builder_rejects_bad_input() {
    let rule = PartitionRule::default();
    let sq = square(113.7, 23.0, 0.02);
    assert!(matches!(
        CityMap::build("x", vec![], &rule),
        Err(Error::NoAreas)
    ));
    assert!(matches!(
        CityMap::build("x", vec![area("Bad Id", sq.clone())], &rule),
        Err(Error::BadId(id)) if id == "Bad Id"
    ));
    let mut twin = area("same", square(113.8, 23.0, 0.02));
    twin.name = "OTHER".into();
    assert!(matches!(
        CityMap::build("x", vec![area("same", sq.clone()), twin], &rule),
        Err(Error::Duplicate { what: "id", .. })
    ));
    assert!(matches!(
        CityMap::build("x", vec![area("north", square(113.7, 89.99, 0.02))], &rule),
        Err(Error::BadCoordinate { .. })
    ));
    // Entirely inside an earlier area: nothing left of it.
    let inner = square(113.705, 23.005, 0.005);
    assert!(matches!(
        CityMap::build("x", vec![area("a", sq.clone()), area("b", inner)], &rule),
        Err(Error::EmptyArea { id }) if id == "b"
    ));
    // A population off by orders of magnitude: 10^12 residents would be 4e7 districts.
    let mut crowded = area("crowded", sq.clone());
    crowded.population = Some(1_000_000_000_000);
    assert!(matches!(
        CityMap::build("x", vec![crowded], &rule),
        Err(Error::TooManyDistricts { districts, .. }) if districts > 1_000
    ));
    // A 45 km diagonal sliver a few centimetres wide (~2,000 m²): no lattice over its
    // 33 x 33 km bounding box fine enough to seed 2 districts stays within bounds.
    let sliver = MultiPolygon::new(vec![Polygon::new(
        LineString::from(vec![
            (113.7, 23.0),
            (114.0, 23.3),
            (114.0, 23.3000005),
            (113.7, 23.0000005),
            (113.7, 23.0),
        ]),
        vec![],
    )]);
    assert!(matches!(
        CityMap::build("x", vec![area("sliver", sliver)], &rule),
        Err(Error::AreaTooSmall { districts: 2, .. })
    ));
    let bad_rule = PartitionRule {
        residents_per_district: f64::NAN,
        ..PartitionRule::default()
    };
    assert!(matches!(
        CityMap::build("x", vec![area("a", sq)], &bad_rule),
        Err(Error::InvalidRule(msg)) if msg.contains("residents_per_district")
    ));
}
