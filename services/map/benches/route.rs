//! Routing cost on the real Dongguan map (33 sub-bureaus, 426 districts), read in place from
//! `shared/data/dongguan`; on a machine without it, on the built-in map. Figures go in notes,
//! never in assertions.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use dispatch_core::LatLng;
use dispatch_map::{CityMap, sample_point};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn load() -> CityMap {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/dongguan"
    ));
    let geojson = dir.join("towns.geojson");
    if geojson.exists() {
        CityMap::from_geojson(&geojson, Some(&dir.join("towns.csv"))).unwrap()
    } else {
        eprintln!(
            "{} not found, benchmarking the built-in map",
            geojson.display()
        );
        CityMap::builtin().unwrap()
    }
}

fn route(c: &mut Criterion) {
    let map = load();
    let mut rng = StdRng::seed_from_u64(1);
    // 10,000 points, the same number in each sub-bureau.
    let inside: Vec<LatLng> = (0..10_000)
        .map(|i| {
            let sb = &map.sub_bureaus[i % map.sub_bureaus.len()];
            sample_point(&sb.area, &mut rng).unwrap()
        })
        .collect();
    // Just west of each sub-bureau's westernmost vertex: outside, routed to the nearest district
    // when no other town lies there, else inside a neighbour.
    let edge: Vec<LatLng> = map
        .sub_bureaus
        .iter()
        .filter_map(|sb| {
            sb.area
                .iter()
                .flat_map(|p| p.exterior().coords())
                .min_by(|a, b| a.x.total_cmp(&b.x))
                .map(|c| LatLng {
                    lat: c.y,
                    lon: c.x - 0.005,
                })
        })
        .collect();

    let mut i = 0;
    c.bench_function(&format!("route inside ({} map)", map.name), |b| {
        b.iter(|| {
            i = (i + 1) % inside.len();
            black_box(map.route(black_box(inside[i]))).ok()
        })
    });
    let mut j = 0;
    c.bench_function(&format!("route near the edge ({} map)", map.name), |b| {
        b.iter(|| {
            j = (j + 1) % edge.len();
            black_box(map.route(black_box(edge[j]))).ok()
        })
    });
    c.bench_function("build builtin map", |b| {
        b.iter(|| black_box(CityMap::builtin().unwrap()))
    });
}

criterion_group!(benches, route);
criterion_main!(benches);
