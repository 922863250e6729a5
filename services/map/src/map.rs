//! The city map: sub-bureaus, stations and districts, and how one is built.

use std::collections::HashMap;
use std::path::Path;

use geo::{BoundingRect, Coord, MultiPolygon, Rect};

use dispatch_core::LatLng;

use crate::area_m2;
use crate::error::{Error, Result, RouteError};
use crate::index::DistrictIndex;
use crate::overlap::{self, ResolvedOverlap};
use crate::partition::partition;
use crate::rule::{MAX_DISTRICTS_PER_SUB_BUREAU, PartitionRule, RouteRule};
use crate::source::{self, SourceArea};

/// A police sub-bureau (分局): one town or subdistrict, with its own command center.
#[derive(Debug, Clone, PartialEq)]
pub struct SubBureau {
    /// Ascii slug of the English name, e.g. `nancheng`.
    pub id: String,
    /// Name in the source, e.g. `南城街道`.
    pub name: String,
    /// English name, e.g. `Nancheng`; empty when the source has none.
    pub name_en: String,
    /// Resident population (7th census, 2020, for Dongguan); 0 when the map has none.
    pub population: u64,
    /// Area after overlap resolution, WGS84 lon/lat degrees (x = lon, y = lat).
    pub area: MultiPolygon<f64>,
    /// Geodesic area of `area`, square metres (WGS84 ellipsoid).
    pub area_m2: f64,
    /// Its stations' ids, in station order.
    pub station_ids: Vec<String>,
}

/// A police station (派出所) and the districts it leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    /// `{sub_bureau_id}-s{n}`, e.g. `nancheng-s1`; stations numbered north to south.
    pub id: String,
    /// The sub-bureau it belongs to.
    pub sub_bureau_id: String,
    /// Its central district, co-located with the station and led by the station chief.
    pub central_district_id: String,
    /// Where the station is: its central district's seed, WGS84 degrees.
    pub location: LatLng,
    /// Its districts' ids, the central district first.
    pub district_ids: Vec<String>,
}

/// A police district (警务区): the unit that owns officers and a queue of incidents.
#[derive(Debug, Clone, PartialEq)]
pub struct District {
    /// `{sub_bureau_id}-d{nn}`, e.g. `nancheng-d01`; numbered station by station, each
    /// station's central district first.
    pub id: String,
    /// The station leading it.
    pub station_id: String,
    /// The sub-bureau it belongs to.
    pub sub_bureau_id: String,
    /// True for its station's central district, false for a general district.
    pub central: bool,
    /// A point inside the district (the seed it grew from), WGS84 degrees.
    pub seed: LatLng,
    /// The district's ground, WGS84 lon/lat degrees (x = lon, y = lat).
    pub area: MultiPolygon<f64>,
    /// Geodesic area of `area`, square metres (WGS84 ellipsoid).
    pub area_m2: f64,
    /// Ids of the districts sharing a border with it (within
    /// [`PartitionRule::adjacency_tolerance_m`]), including across sub-bureau borders; sorted.
    pub adjacent: Vec<String>,
}

/// Where a point was routed: indexes into [`CityMap::districts`], [`CityMap::stations`] and
/// [`CityMap::sub_bureaus`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routed {
    /// Index of the district.
    pub district: usize,
    /// Index of the district's station.
    pub station: usize,
    /// Index of the district's sub-bureau.
    pub sub_bureau: usize,
    /// True when the point lies outside every district and was given to the nearest one.
    pub outside_map: bool,
    /// Distance from the point to that district, metres; 0 inside the map.
    pub distance_outside_m: f64,
}

/// A city's police map: sub-bureaus, their stations and districts tiling the city, and an
/// R-tree index to route points.
///
/// The public fields are the directory; treat them as read-only (the map is shared as
/// `Arc<CityMap>`; the index is built from them once).
#[derive(Debug, Clone)]
pub struct CityMap {
    /// Name of the map (the GeoJSON collection's `name`, else its file stem; `builtin` for
    /// [`CityMap::builtin`]).
    pub name: String,
    /// Sub-bureaus, sorted by id.
    pub sub_bureaus: Vec<SubBureau>,
    /// Stations, sub-bureau by sub-bureau in [`CityMap::sub_bureaus`] order.
    pub stations: Vec<Station>,
    /// Districts, station by station in [`CityMap::stations`] order.
    pub districts: Vec<District>,
    /// Overlaps between the source outlines and who kept them.
    pub overlaps: Vec<ResolvedOverlap>,
    route_rule: RouteRule,
    index: DistrictIndex,
    district_by_id: HashMap<String, usize>,
    station_by_id: HashMap<String, usize>,
    sub_bureau_by_id: HashMap<String, usize>,
    /// For each district, the index of its station and sub-bureau.
    parents: Vec<(usize, usize)>,
}

impl CityMap {
    /// Loads a map from a GeoJSON file of sub-bureau outlines and, optionally, a population
    /// CSV, with the default [`PartitionRule`] (see [`source::read_areas`] for the formats, and
    /// [`CityMap::build`] for what is built).
    ///
    /// Errors: file and format errors naming the path (and line for the CSV), and the build
    /// errors of [`CityMap::build`].
    pub fn from_geojson(geojson_path: &Path, population_csv: Option<&Path>) -> Result<Self> {
        Self::from_geojson_with_rule(geojson_path, population_csv, &PartitionRule::default())
    }

    /// [`CityMap::from_geojson`] with a chosen partition rule.
    pub fn from_geojson_with_rule(
        geojson_path: &Path,
        population_csv: Option<&Path>,
        rule: &PartitionRule,
    ) -> Result<Self> {
        let (name, areas) = source::read_areas(geojson_path, population_csv)?;
        Self::build(name, areas, rule)
    }

    /// Builds a map from source areas:
    /// 1. areas sorted by id; where outlines overlap, the earlier id keeps the overlap and the
    ///    later one's area is its outline minus it (reported in [`CityMap::overlaps`]);
    /// 2. each area split into [`PartitionRule::districts_for`] districts grouped into
    ///    [`PartitionRule::stations_for`] stations (see the `partition` module: Lloyd seeds on a
    ///    lattice, Voronoi cells clipped to the area);
    /// 3. district adjacency and the routing index.
    ///
    /// Errors: [`Error::NoAreas`], [`Error::Duplicate`], [`Error::BadId`],
    /// [`Error::BadCoordinate`], [`Error::EmptyArea`], [`Error::TooManyDistricts`],
    /// [`Error::AreaTooSmall`], [`Error::InvalidRule`].
    pub fn build(
        name: impl Into<String>,
        mut areas: Vec<SourceArea>,
        rule: &PartitionRule,
    ) -> Result<Self> {
        rule.validate()?;
        if areas.is_empty() {
            return Err(Error::NoAreas);
        }
        for area in &areas {
            if !source::is_slug(&area.id) {
                return Err(Error::BadId(area.id.clone()));
            }
            source::check_coordinates(&area.name, &area.outline)?;
        }
        areas.sort_by(|a, b| a.id.cmp(&b.id));
        for pair in areas.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(Error::Duplicate {
                    what: "id",
                    value: pair[0].id.clone(),
                });
            }
        }
        let mut names: Vec<&str> = areas.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
            return Err(Error::Duplicate {
                what: "name",
                value: pair[0].to_owned(),
            });
        }

        let ids: Vec<&str> = areas.iter().map(|a| a.id.as_str()).collect();
        let outlines: Vec<MultiPolygon<f64>> = areas.iter().map(|a| a.outline.clone()).collect();
        let (resolved, overlaps) = overlap::resolve(&ids, &outlines);

        let mut sub_bureaus = Vec::with_capacity(areas.len());
        let mut stations = Vec::new();
        let mut districts = Vec::new();
        for (source, area) in areas.iter().zip(resolved) {
            sub_bureaus.push(split(source, area, rule, &mut stations, &mut districts)?);
        }

        let extent = extent(&sub_bureaus).ok_or(Error::NoAreas)?;
        let district_areas: Vec<&MultiPolygon<f64>> = districts.iter().map(|d| &d.area).collect();
        let index = DistrictIndex::new(&district_areas, extent);
        let mut adjacent: Vec<Vec<String>> = vec![Vec::new(); districts.len()];
        for (a, b) in index.touching_pairs(rule.adjacency_tolerance_m) {
            adjacent[a].push(districts[b].id.clone());
            adjacent[b].push(districts[a].id.clone());
        }
        for (district, mut ids) in districts.iter_mut().zip(adjacent) {
            ids.sort();
            district.adjacent = ids;
        }

        let by_id = |ids: Vec<&String>| -> HashMap<String, usize> {
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect()
        };
        let district_by_id = by_id(districts.iter().map(|d| &d.id).collect());
        let station_by_id = by_id(stations.iter().map(|s| &s.id).collect());
        let sub_bureau_by_id = by_id(sub_bureaus.iter().map(|s| &s.id).collect());
        let parents = districts
            .iter()
            .map(|d| {
                (
                    station_by_id.get(&d.station_id).copied().unwrap_or(0),
                    sub_bureau_by_id.get(&d.sub_bureau_id).copied().unwrap_or(0),
                )
            })
            .collect();
        Ok(Self {
            name: name.into(),
            sub_bureaus,
            stations,
            districts,
            overlaps,
            route_rule: RouteRule::default(),
            index,
            district_by_id,
            station_by_id,
            sub_bureau_by_id,
            parents,
        })
    }

    /// The same map with another rule for points outside it.
    pub fn with_route_rule(mut self, rule: RouteRule) -> Self {
        self.route_rule = rule;
        self
    }

    /// The rule for points outside the map.
    pub fn route_rule(&self) -> RouteRule {
        self.route_rule
    }

    /// The district, station and sub-bureau of point `p` (WGS84 degrees): the district whose
    /// area holds it (on a border shared by two districts, the one listed first), else, when `p`
    /// is at most [`RouteRule::max_outside_m`] outside the map, the nearest district, flagged
    /// `outside_map` with the distance in metres.
    ///
    /// Errors: [`RouteError::InvalidPoint`] for a coordinate out of range or not finite;
    /// [`RouteError::TooFar`] with the distance for a point farther outside.
    pub fn route(&self, p: LatLng) -> Result<Routed, RouteError> {
        let p = LatLng::new(p.lat, p.lon)?;
        let max_m = self.route_rule.max_outside_m;
        let hit = self.index.locate(p).ok_or(RouteError::TooFar {
            distance_m: f64::INFINITY,
            max_m,
        })?;
        if hit.distance_outside_m > max_m {
            return Err(RouteError::TooFar {
                distance_m: hit.distance_outside_m,
                max_m,
            });
        }
        let (station, sub_bureau) = self.parents.get(hit.district).copied().unwrap_or((0, 0));
        Ok(Routed {
            district: hit.district,
            station,
            sub_bureau,
            outside_map: hit.distance_outside_m > 0.0,
            distance_outside_m: hit.distance_outside_m,
        })
    }

    /// The district with this id.
    pub fn district(&self, id: &str) -> Option<&District> {
        self.district_by_id
            .get(id)
            .and_then(|&i| self.districts.get(i))
    }

    /// The station with this id.
    pub fn station(&self, id: &str) -> Option<&Station> {
        self.station_by_id
            .get(id)
            .and_then(|&i| self.stations.get(i))
    }

    /// The sub-bureau with this id.
    pub fn sub_bureau(&self, id: &str) -> Option<&SubBureau> {
        self.sub_bureau_by_id
            .get(id)
            .and_then(|&i| self.sub_bureaus.get(i))
    }

    /// Index of the district with this id in [`CityMap::districts`].
    pub fn district_index(&self, id: &str) -> Option<usize> {
        self.district_by_id.get(id).copied()
    }

    /// True when every sub-bureau has a population (the map was loaded with a population file).
    pub fn has_populations(&self) -> bool {
        self.sub_bureaus.iter().all(|s| s.population > 0)
    }

    /// Sum of the sub-bureaus' populations (0 without populations).
    pub fn population(&self) -> u64 {
        self.sub_bureaus.iter().map(|s| s.population).sum()
    }

    /// Geodesic area of the whole map, square metres.
    pub fn area_m2(&self) -> f64 {
        self.sub_bureaus.iter().map(|s| s.area_m2).sum()
    }
}

/// Splits one sub-bureau's resolved `area` into stations and districts (appended to
/// `stations` and `districts`, ids numbered in partition order) and returns the sub-bureau.
fn split(
    source: &SourceArea,
    area: MultiPolygon<f64>,
    rule: &PartitionRule,
    stations: &mut Vec<Station>,
    districts: &mut Vec<District>,
) -> Result<SubBureau> {
    let sub_area_m2 = area_m2(&area);
    if area.0.is_empty() || sub_area_m2 <= 0.0 {
        return Err(Error::EmptyArea {
            id: source.id.clone(),
        });
    }
    let n_districts = rule.districts_for(source.population, sub_area_m2);
    if n_districts > MAX_DISTRICTS_PER_SUB_BUREAU {
        return Err(Error::TooManyDistricts {
            id: source.id.clone(),
            districts: n_districts,
            max: MAX_DISTRICTS_PER_SUB_BUREAU,
        });
    }
    let n_stations = rule.stations_for(n_districts);
    let part = partition(&source.id, &area, n_districts, n_stations, rule)?;
    let width = n_districts.to_string().len().max(2);
    let district_id = |i: usize| format!("{}-d{:0width$}", source.id, i + 1);
    let mut station_ids = Vec::with_capacity(part.stations.len());
    for (s, station) in part.stations.iter().enumerate() {
        let Some(&central_index) = station.districts.first() else {
            continue;
        };
        let Some(central) = part.districts.get(central_index) else {
            continue;
        };
        let station_id = format!("{}-s{}", source.id, s + 1);
        for (k, &d) in station.districts.iter().enumerate() {
            let Some(pd) = part.districts.get(d) else {
                continue;
            };
            districts.push(District {
                id: district_id(d),
                station_id: station_id.clone(),
                sub_bureau_id: source.id.clone(),
                central: k == 0,
                seed: to_latlng(pd.seed),
                area_m2: area_m2(&pd.area),
                area: pd.area.clone(),
                adjacent: Vec::new(),
            });
        }
        stations.push(Station {
            id: station_id.clone(),
            sub_bureau_id: source.id.clone(),
            central_district_id: district_id(central_index),
            location: to_latlng(central.seed),
            district_ids: station.districts.iter().map(|&d| district_id(d)).collect(),
        });
        station_ids.push(station_id);
    }
    Ok(SubBureau {
        id: source.id.clone(),
        name: source.name.clone(),
        name_en: source.name_en.clone(),
        population: source.population.unwrap_or(0),
        area,
        area_m2: sub_area_m2,
        station_ids,
    })
}

fn to_latlng(c: Coord<f64>) -> LatLng {
    LatLng { lat: c.y, lon: c.x }
}

fn extent(sub_bureaus: &[SubBureau]) -> Option<Rect<f64>> {
    sub_bureaus
        .iter()
        .filter_map(|s| s.area.bounding_rect())
        .reduce(|a, b| {
            Rect::new(
                Coord {
                    x: a.min().x.min(b.min().x),
                    y: a.min().y.min(b.min().y),
                },
                Coord {
                    x: a.max().x.max(b.max().x),
                    y: a.max().y.max(b.max().y),
                },
            )
        })
}
