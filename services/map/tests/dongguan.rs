//! The real Dongguan map (`shared/data/dongguan`, read in place, never copied): district and
//! station counts from the source document's pilot, routing of random points in every town,
//! exact tiling, points outside the map, adjacency.
//!
//! The map is built once per test binary. Expected values are worked out here from the raw
//! files (parsed independently of the crate's loader), not read back from the map.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use dispatch_map::{CityMap, area_m2, sample_point};
use geo::{BooleanOps, BoundingRect, GeodesicArea, Intersects, MultiPolygon, Point};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn data(file: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/dongguan"
    ))
    .join(file)
}

fn map() -> &'static CityMap {
    static MAP: OnceLock<CityMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let started = std::time::Instant::now();
        let map = CityMap::from_geojson(&data("towns.geojson"), Some(&data("towns.csv"))).unwrap();
        eprintln!("dongguan map built in {:?}", started.elapsed());
        map
    })
}

/// One row of towns.csv, parsed here without the crate's loader.
struct Town {
    name_zh: String,
    id: String,
    population: u64,
}

fn towns() -> Vec<Town> {
    let text = std::fs::read_to_string(data("towns.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Town {
                name_zh: f[0].to_owned(),
                // Slug by hand: "Chang'an" -> changan, "Songshan Lake" -> songshan-lake.
                id: f[1].to_lowercase().replace('\'', "").replace(' ', "-"),
                population: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// The raw outlines of towns.geojson by Chinese name, read with the `geojson` crate directly.
fn outlines() -> HashMap<String, MultiPolygon<f64>> {
    let text = std::fs::read_to_string(data("towns.geojson")).unwrap();
    let fc: geojson::FeatureCollection = text.parse().unwrap();
    fc.features
        .into_iter()
        .map(|f| {
            let name = f.properties.as_ref().unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned();
            let mp: MultiPolygon<f64> = f.geometry.unwrap().try_into().unwrap();
            (name, mp)
        })
        .collect()
}

#[test]
fn nancheng_has_the_source_documents_17_districts_in_6_stations() {
    let map = map();
    let nancheng = map.sub_bureau("nancheng").unwrap();
    assert_eq!(nancheng.name, "南城街道");
    assert_eq!(nancheng.population, 418_288);
    let districts: Vec<_> = map
        .districts
        .iter()
        .filter(|d| d.sub_bureau_id == "nancheng")
        .collect();
    assert_eq!(districts.len(), 17);
    assert_eq!(districts.iter().filter(|d| d.central).count(), 6);
    assert_eq!(districts.iter().filter(|d| !d.central).count(), 11);
    assert_eq!(nancheng.station_ids.len(), 6);
    let stations: Vec<_> = map
        .stations
        .iter()
        .filter(|s| s.sub_bureau_id == "nancheng")
        .collect();
    assert_eq!(stations.len(), 6);
    for s in stations {
        let central = map.district(&s.central_district_id).unwrap();
        assert!(central.central && central.station_id == s.id);
        assert_eq!(central.seed, s.location);
    }
}

#[test]
fn every_town_gets_districts_by_population_at_nanchengs_ratio() {
    let map = map();
    let towns = towns();
    assert_eq!(towns.len(), 33);
    assert_eq!(map.sub_bureaus.len(), 33);
    let per_district = 418_288.0 / 17.0; // 24,605.18 residents
    let mut total = 0;
    let mut lines = Vec::new();
    for t in &towns {
        let sb = map
            .sub_bureau(&t.id)
            .unwrap_or_else(|| panic!("no sub-bureau {}", t.id));
        assert_eq!(sb.name, t.name_zh);
        assert_eq!(sb.population, t.population);
        let expected = ((t.population as f64 / per_district).round() as usize).max(2);
        let expected_stations = ((expected as f64 / (17.0 / 6.0)).round() as usize).max(1);
        let n = map
            .districts
            .iter()
            .filter(|d| d.sub_bureau_id == t.id)
            .count();
        let s = map
            .stations
            .iter()
            .filter(|s| s.sub_bureau_id == t.id)
            .count();
        assert_eq!((n, s), (expected, expected_stations), "{}", t.id);
        total += expected;
        lines.push(format!("{} {n}/{s}", t.id));
    }
    eprintln!("districts/stations: {}", lines.join(", "));
    // 10,466,625 residents / 24,605.18 = 425.4; rounding town by town gives 426.
    let population: u64 = towns.iter().map(|t| t.population).sum();
    assert_eq!(population, 10_466_625);
    assert_eq!(total, 426);
    assert_eq!(map.districts.len(), total);
    assert!((total as f64 - population as f64 / per_district).abs() < 2.0);
    assert_eq!(
        map.districts.iter().filter(|d| d.central).count(),
        map.stations.len()
    );
}

#[test]
fn the_two_known_overlaps_are_resolved_and_reported() {
    let map = map();
    let found: Vec<(&str, &str, f64)> = map
        .overlaps
        .iter()
        .map(|o| (o.kept_by.as_str(), o.removed_from.as_str(), o.area_m2))
        .collect();
    eprintln!("overlaps: {found:?}");
    assert_eq!(found.len(), 2);
    // The data README: 莞城/东城 about 0.12 km², 石碣/石龙 about 0.33 km²; the earlier id keeps it.
    let (kept, removed, a) = found[0];
    assert_eq!((kept, removed), ("dongcheng", "guancheng"));
    assert!((a - 0.12e6).abs() < 0.01e6, "{a}");
    let (kept, removed, a) = found[1];
    assert_eq!((kept, removed), ("shijie", "shilong"));
    assert!((a - 0.33e6).abs() < 0.01e6, "{a}");
    // The overlap measured here: intersection of the raw outlines.
    let raw = outlines();
    let cut = raw["石碣镇"].intersection(&raw["石龙镇"]);
    assert!(
        (area_m2(&cut) - a).abs() / a < 0.01,
        "{} vs {a}",
        area_m2(&cut)
    );
}

#[test]
fn ten_thousand_points_in_each_town_route_to_its_districts() {
    let map = map();
    let raw = outlines();
    let towns = towns();
    let id_of: HashMap<&str, &str> = towns
        .iter()
        .map(|t| (t.name_zh.as_str(), t.id.as_str()))
        .collect();
    let name_of: HashMap<&str, &str> = towns
        .iter()
        .map(|t| (t.id.as_str(), t.name_zh.as_str()))
        .collect();
    let mut rng = StdRng::seed_from_u64(110);
    for (name, outline) in &raw {
        let id = id_of[name.as_str()];
        // Ground this town lost to a neighbour's outline is excluded.
        let lost: Vec<&MultiPolygon<f64>> = map
            .overlaps
            .iter()
            .filter(|o| o.removed_from == id)
            .map(|o| &raw[name_of[o.kept_by.as_str()]])
            .collect();
        let mut checked = 0;
        while checked < 10_000 {
            let p = sample_point(outline, &mut rng).unwrap();
            let point = Point::new(p.lon, p.lat);
            if lost.iter().any(|k| k.intersects(&point)) {
                continue;
            }
            let routed = map
                .route(p)
                .unwrap_or_else(|e| panic!("{id}: {p:?} not routed: {e}"));
            let district = &map.districts[routed.district];
            assert_eq!(district.sub_bureau_id, id, "{p:?} in {name}");
            assert!(!routed.outside_map, "{p:?} in {name} flagged outside");
            checked += 1;
        }
    }
}

#[test]
fn district_areas_sum_to_the_town_minus_what_it_lost() {
    let map = map();
    let raw = outlines();
    for t in towns() {
        let lost: f64 = map
            .overlaps
            .iter()
            .filter(|o| o.removed_from == t.id)
            .map(|o| o.area_m2)
            .sum();
        let expected = area_m2(&raw[&t.name_zh]) - lost;
        let sum: f64 = map
            .districts
            .iter()
            .filter(|d| d.sub_bureau_id == t.id)
            .map(|d| area_m2(&d.area))
            .sum();
        let error = (sum - expected).abs() / expected;
        assert!(
            error < 0.005,
            "{}: {sum} m² vs {expected} m² ({error:e})",
            t.id
        );
        let sb = map.sub_bureau(&t.id).unwrap();
        assert!((sb.area_m2 - expected).abs() / expected < 0.005, "{}", t.id);
    }
    // Total about 2,400 km² (data README).
    let total = map.area_m2();
    assert!((2_300e6..2_550e6).contains(&total), "{total}");
}

#[test]
fn no_two_districts_overlap() {
    let map = map();
    let boxes: Vec<_> = map
        .districts
        .iter()
        .map(|d| d.area.bounding_rect().unwrap())
        .collect();
    let mut pairs = 0;
    let (mut worst_m2, mut worst_width_m) = (0.0_f64, 0.0_f64);
    for i in 0..map.districts.len() {
        for j in i + 1..map.districts.len() {
            if !boxes[i].intersects(&boxes[j]) {
                continue;
            }
            pairs += 1;
            let (a, b) = (&map.districts[i], &map.districts[j]);
            let common_part = a.area.intersection(&b.area);
            let overlap = common::planar_area_m2(&common_part);
            // A strip of width w and length L has area w L and perimeter about 2 L.
            let perimeter = common_part.geodesic_perimeter();
            let width = if perimeter > 0.0 {
                2.0 * overlap / perimeter
            } else {
                0.0
            };
            worst_m2 = worst_m2.max(overlap);
            worst_width_m = worst_width_m.max(width);
            // Hairlines only: the clipping snaps each sub-bureau to its own integer grid
            // (~3e-5 m here), so two towns' shared border may differ by that much.
            assert!(
                overlap < 1.0,
                "{} and {} overlap by {overlap} m²",
                a.id,
                b.id
            );
            assert!(width < 1e-4, "{} and {} overlap {width} m wide", a.id, b.id);
        }
    }
    eprintln!(
        "{pairs} district pairs with touching boxes; largest overlap {worst_m2:.3} m², \
         none wider than {worst_width_m:.1e} m"
    );
}

#[test]
fn points_outside_the_map() {
    common::assert_routes_outside(map());
}

#[test]
fn seeds_and_stations_lie_in_their_districts() {
    let map = map();
    for d in &map.districts {
        assert!(
            d.area.intersects(&Point::new(d.seed.lon, d.seed.lat)),
            "{}",
            d.id
        );
    }
    for s in &map.stations {
        let central = map.district(&s.central_district_id).unwrap();
        let p = Point::new(s.location.lon, s.location.lat);
        assert!(central.area.intersects(&p), "{}", s.id);
        let routed = map.route(s.location).unwrap();
        assert_eq!(map.districts[routed.district].id, central.id);
        assert_eq!(map.stations[routed.station].id, s.id);
    }
}

#[test]
fn adjacency_is_symmetric_and_crosses_town_borders() {
    let map = map();
    for d in &map.districts {
        assert!(!d.adjacent.is_empty(), "{} has no neighbour", d.id);
        for a in &d.adjacent {
            assert!(
                map.district(a).unwrap().adjacent.contains(&d.id),
                "{} -> {a}",
                d.id
            );
        }
    }
    // Nancheng borders Dongcheng, Guancheng, Wanjiang, Dalingshan, Houjie, Daojiao.
    let neighbours: std::collections::BTreeSet<&str> = map
        .districts
        .iter()
        .filter(|d| d.sub_bureau_id == "nancheng")
        .flat_map(|d| d.adjacent.iter())
        .filter_map(|a| map.district(a))
        .map(|d| d.sub_bureau_id.as_str())
        .filter(|s| *s != "nancheng")
        .collect();
    for town in [
        "dongcheng",
        "guancheng",
        "wanjiang",
        "dalingshan",
        "houjie",
        "daojiao",
    ] {
        assert!(
            neighbours.contains(town),
            "{town} missing from {neighbours:?}"
        );
    }
}

#[test]
fn without_populations_districts_follow_area() {
    let map = CityMap::from_geojson(&data("towns.geojson"), None).unwrap();
    assert!(!map.has_populations());
    // Nancheng (南城街道) is sized by area alone at its own 56.42 km² per 17 districts.
    let nancheng = map
        .sub_bureaus
        .iter()
        .find(|s| s.name == "南城街道")
        .unwrap();
    let n = map
        .districts
        .iter()
        .filter(|d| d.sub_bureau_id == nancheng.id)
        .count();
    assert_eq!(n, 17);
    // About 2,400 km² / 3.32 km² per district.
    let expected = (map.area_m2() / (56_418_941.0 / 17.0)).round();
    assert!(
        (map.districts.len() as f64 - expected).abs() < 20.0,
        "{}",
        map.districts.len()
    );
}
