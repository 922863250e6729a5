//! The harness's view of the city map: where calls come from and where officers start.
//!
//! Calls are spread over sub-bureaus in proportion to resident population when the map has
//! populations (the 7th census figures for Dongguan), or to area otherwise; within a
//! sub-bureau a call's place is uniform over its ground ([`dispatch_map::sample_point`]).

use std::collections::HashMap;
use std::path::Path;

use dispatch_core::LatLng;
use dispatch_map::CityMap;
use geo::MultiPolygon;
use rand::Rng;

use crate::draw::Weighted;
use crate::scenario::MapSource;
use crate::{Error, Result};

/// What the sub-bureau weights are proportional to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightBasis {
    /// Resident population.
    Population,
    /// Area, square metres (the map has no populations).
    Area,
}

/// The sub-bureau weights for calls: populations when every sub-bureau has one, else areas
/// (square metres).
pub fn sub_bureau_weights(populations: &[u64], areas_m2: &[f64]) -> (Vec<f64>, WeightBasis) {
    if !populations.is_empty() && populations.iter().all(|p| *p > 0) {
        (
            populations.iter().map(|p| *p as f64).collect(),
            WeightBasis::Population,
        )
    } else {
        (areas_m2.to_vec(), WeightBasis::Area)
    }
}

/// One sub-bureau as the 110 platform sees it.
#[derive(Debug, Clone)]
struct Area {
    id: String,
    area: MultiPolygon<f64>,
}

/// Where calls come from and where officers start, from a [`CityMap`].
#[derive(Debug, Clone)]
pub struct Geography {
    sub_bureaus: Vec<Area>,
    table: Weighted<usize>,
    basis: WeightBasis,
    districts: HashMap<String, MultiPolygon<f64>>,
}

impl Geography {
    /// The geography of `map`.
    ///
    /// Errors: [`Error::Weights`] when the map has no sub-bureau with a population or area.
    pub fn new(map: &CityMap) -> Result<Self> {
        let pops: Vec<u64> = map.sub_bureaus.iter().map(|s| s.population).collect();
        let areas: Vec<f64> = map.sub_bureaus.iter().map(|s| s.area_m2).collect();
        let (weights, basis) = sub_bureau_weights(&pops, &areas);
        let table = Weighted::new("sub-bureau weights", weights.into_iter().enumerate())?;
        Ok(Self {
            sub_bureaus: map
                .sub_bureaus
                .iter()
                .map(|s| Area {
                    id: s.id.clone(),
                    area: s.area.clone(),
                })
                .collect(),
            table,
            basis,
            districts: map
                .districts
                .iter()
                .map(|d| (d.id.clone(), d.area.clone()))
                .collect(),
        })
    }

    /// What the call weights are proportional to.
    pub fn basis(&self) -> WeightBasis {
        self.basis
    }

    /// A call's sub-bureau id and place.
    ///
    /// Errors: [`Error::Map`] when the drawn sub-bureau has no ground to sample.
    pub fn call_place(&self, rng: &mut impl Rng) -> Result<(String, LatLng)> {
        let s = &self.sub_bureaus[self.table.draw(rng)];
        let p = dispatch_map::sample_point(&s.area, rng).ok_or_else(|| Error::Map {
            source_desc: "sub-bureau".into(),
            message: format!("sub-bureau {} has an empty area", s.id),
        })?;
        Ok((s.id.clone(), p))
    }

    /// A uniform point inside district `id`; `None` for a district the map does not have (or
    /// with an empty area).
    pub fn point_in_district(&self, id: &str, rng: &mut impl Rng) -> Option<LatLng> {
        dispatch_map::sample_point(self.districts.get(id)?, rng)
    }

    /// True when the map has a district `id`.
    pub fn has_district(&self, id: &str) -> bool {
        self.districts.contains_key(id)
    }
}

/// Loads the map of a run.
///
/// Errors: [`Error::Map`] naming the file and the loader's reason.
pub fn load_map(source: &MapSource) -> Result<CityMap> {
    let map = match source {
        MapSource::Builtin => CityMap::builtin(),
        MapSource::GeoJson {
            geojson,
            population,
        } => {
            for p in std::iter::once(geojson).chain(population) {
                check_readable(p)?;
            }
            if population.is_none() {
                tracing::warn!(
                    map = %geojson.display(),
                    "no population file: districts are sized by area and calls spread \
                     uniformly over the map (give --population CSV for the population rule)"
                );
            }
            CityMap::from_geojson(geojson, population.as_deref())
        }
    };
    map.map_err(|e| Error::Map {
        source_desc: source.to_string(),
        message: e.to_string(),
    })
}

fn check_readable(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::{Stream, rng_for};

    #[test]
    fn populations_win_when_every_sub_bureau_has_one() {
        let (w, b) = sub_bureau_weights(&[100, 300], &[5.0, 1.0]);
        assert_eq!((w, b), (vec![100.0, 300.0], WeightBasis::Population));
        // One missing population: fall back to areas for all (mixing would be meaningless).
        let (w, b) = sub_bureau_weights(&[100, 0], &[5.0, 1.0]);
        assert_eq!((w, b), (vec![5.0, 1.0], WeightBasis::Area));
    }

    #[test]
    fn builtin_calls_follow_population_and_fall_inside_their_sub_bureau() {
        use geo::{Intersects, Point};
        let map = CityMap::builtin().expect("builtin map");
        let g = Geography::new(&map).expect("geography");
        assert_eq!(g.basis(), WeightBasis::Population);
        let total: u64 = map.sub_bureaus.iter().map(|s| s.population).sum();
        let mut rng = rng_for(4, Stream::Calls);
        let n = 6_000;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..n {
            let (id, p) = g.call_place(&mut rng).expect("place");
            let s = map.sub_bureau(&id).expect("known sub-bureau");
            assert!(
                s.area.intersects(&Point::new(p.lon, p.lat)),
                "{p:?} not in {id}"
            );
            *counts.entry(id).or_default() += 1;
        }
        for s in &map.sub_bureaus {
            let p = s.population as f64 / total as f64;
            let got = counts.get(&s.id).copied().unwrap_or(0) as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((got - p).abs() < 4.5 * sd, "{}: {got} vs {p}", s.id);
        }
    }

    #[test]
    fn officer_start_points_lie_in_their_district() {
        use geo::{Intersects, Point};
        let map = CityMap::builtin().expect("builtin map");
        let g = Geography::new(&map).expect("geography");
        let mut rng = rng_for(4, Stream::StartPositions);
        for d in &map.districts {
            let p = g.point_in_district(&d.id, &mut rng).expect("point");
            assert!(d.area.intersects(&Point::new(p.lon, p.lat)));
        }
        assert!(g.point_in_district("no-such-district", &mut rng).is_none());
    }

    #[test]
    fn unreadable_map_files_are_read_errors() {
        let e = load_map(&MapSource::GeoJson {
            geojson: "/nonexistent/towns.geojson".into(),
            population: None,
        })
        .expect_err("must fail");
        assert!(matches!(e, Error::Read { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/towns.geojson"));
        assert_eq!(e.exit_code(), 2);
    }
}
