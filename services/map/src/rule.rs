//! How many districts and stations a sub-bureau gets, and how points outside the map are
//! routed. Every default is calibrated on the pilot sub-bureau of the source document.

use crate::error::{Error, Result};

/// Nancheng's (南城街道) resident population at the 7th national census (1 Nov 2020), from the
/// Dongguan census bulletin (`shared/data/dongguan/towns.csv`).
pub const NANCHENG_POPULATION: u64 = 418_288;
/// Police districts of the pilot sub-bureau Nancheng after the 2012 reform (6 central + 11
/// general), from the source document.
pub const NANCHENG_DISTRICTS: usize = 17;
/// Police stations of Nancheng after the 2012 reform, from the source document.
pub const NANCHENG_STATIONS: usize = 6;
/// Geodesic area of Nancheng's outline in `shared/data/dongguan/towns.geojson`, square metres
/// (measured with [`crate::area_m2`]: 56.42 km²; the data README gives "about 56 km²").
pub const NANCHENG_AREA_M2: f64 = 56_418_941.0;

/// Most districts one sub-bureau may get (Dongguan's largest, Humen, gets 34): a guard against
/// a population or outline off by orders of magnitude.
pub const MAX_DISTRICTS_PER_SUB_BUREAU: usize = 1_000;

/// How a sub-bureau's area is split into police districts and stations.
///
/// Counts follow the source document's pilot: Nancheng has 17 districts for 418,288 residents
/// (one per about 24,605 residents) and 6 stations (17/6 ≈ 2.83 districts per station), so with
/// the defaults Nancheng gets exactly 17 districts and 6 stations.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRule {
    /// Residents per district, used when the sub-bureau's population is known.
    /// Default [`NANCHENG_POPULATION`] / [`NANCHENG_DISTRICTS`] ≈ 24,605.2.
    pub residents_per_district: f64,
    /// Square metres per district, used when the population is unknown (a map without a
    /// population file). Default [`NANCHENG_AREA_M2`] / [`NANCHENG_DISTRICTS`] ≈ 3.32 km², so
    /// Nancheng still gets 17 districts from its area alone.
    pub area_per_district_m2: f64,
    /// Fewest districts a sub-bureau gets (a station area always has a central and at least one
    /// general district in the source document's structure). Default 2.
    pub min_districts: usize,
    /// Districts per police station. Default [`NANCHENG_DISTRICTS`] / [`NANCHENG_STATIONS`]
    /// = 17/6 ≈ 2.83.
    pub districts_per_station: f64,
    /// Fewest stations a sub-bureau gets. Default 1.
    pub min_stations: usize,
    /// Two districts are adjacent when their borders come within this distance, metres.
    /// Within a sub-bureau districts share exact borders. The Dongguan outlines share their
    /// borders too: at 0.01 m all 78 pairs of neighbouring towns are found, and widening to
    /// 500 m finds no new pair (it only adds districts that nearly meet at a corner). Default
    /// 1 m, slack for outlines from less careful sources.
    pub adjacency_tolerance_m: f64,
    /// Lattice points per district used to place the district seeds (Lloyd's algorithm on a
    /// regular lattice inside the area). More points give more even districts and cost time
    /// linearly. Default 400.
    pub lattice_points_per_district: usize,
    /// Iteration cap of Lloyd's algorithm; it usually settles well before. Default 100.
    pub max_lloyd_iterations: usize,
}

impl Default for PartitionRule {
    fn default() -> Self {
        Self {
            residents_per_district: NANCHENG_POPULATION as f64 / NANCHENG_DISTRICTS as f64,
            area_per_district_m2: NANCHENG_AREA_M2 / NANCHENG_DISTRICTS as f64,
            min_districts: 2,
            districts_per_station: NANCHENG_DISTRICTS as f64 / NANCHENG_STATIONS as f64,
            min_stations: 1,
            adjacency_tolerance_m: 1.0,
            lattice_points_per_district: 400,
            max_lloyd_iterations: 100,
        }
    }
}

impl PartitionRule {
    /// Districts for a sub-bureau: `round(population / residents_per_district)` when the
    /// population is known, else `round(area_m2 / area_per_district_m2)`; at least
    /// `min_districts`. `area_m2` in square metres.
    pub fn districts_for(&self, population: Option<u64>, area_m2: f64) -> usize {
        let raw = match population {
            Some(p) => p as f64 / self.residents_per_district,
            None => area_m2 / self.area_per_district_m2,
        };
        (raw.round() as usize).max(self.min_districts)
    }

    /// Stations for a sub-bureau of `districts` districts:
    /// `round(districts / districts_per_station)`, at least `min_stations`, at most `districts`
    /// (every station has its own central district).
    pub fn stations_for(&self, districts: usize) -> usize {
        let raw = (districts as f64 / self.districts_per_station).round() as usize;
        raw.max(self.min_stations).min(districts)
    }

    /// Checks every value is in range. Errors: [`Error::InvalidRule`] naming the field and value.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("residents_per_district", self.residents_per_district),
            ("area_per_district_m2", self.area_per_district_m2),
            ("districts_per_station", self.districts_per_station),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::InvalidRule(format!(
                    "{field} must be a positive number, got {value}"
                )));
            }
        }
        if !(self.adjacency_tolerance_m.is_finite() && self.adjacency_tolerance_m >= 0.0) {
            return Err(Error::InvalidRule(format!(
                "adjacency_tolerance_m must be a finite number >= 0, got {}",
                self.adjacency_tolerance_m
            )));
        }
        let at_least_one = [
            ("min_districts", self.min_districts),
            ("min_stations", self.min_stations),
            (
                "lattice_points_per_district",
                self.lattice_points_per_district,
            ),
            ("max_lloyd_iterations", self.max_lloyd_iterations),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                return Err(Error::InvalidRule(format!(
                    "{field} must be at least 1, got 0"
                )));
            }
        }
        if self.min_stations > self.min_districts {
            return Err(Error::InvalidRule(format!(
                "min_stations ({}) must not exceed min_districts ({})",
                self.min_stations, self.min_districts
            )));
        }
        Ok(())
    }
}

/// How a point is routed when it lies outside every district.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteRule {
    /// A point at most this far outside the map goes to the nearest district (flagged as
    /// outside); farther is an error. Metres; default 2,000 (issue 2: a caller's GPS fix or a
    /// location on a border river may fall just outside the outlines).
    pub max_outside_m: f64,
}

impl Default for RouteRule {
    fn default() -> Self {
        Self {
            max_outside_m: 2_000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nancheng_gets_the_source_documents_17_districts_and_6_stations() {
        let rule = PartitionRule::default();
        let districts = rule.districts_for(Some(NANCHENG_POPULATION), 0.0);
        assert_eq!(districts, 17);
        assert_eq!(rule.stations_for(districts), 6);
        assert_eq!(rule.districts_for(None, NANCHENG_AREA_M2), 17);
    }

    #[test]
    fn counts_by_population_round_with_minimums() {
        let rule = PartitionRule::default();
        // Humen 838,144 / 24,605.18 = 34.06 -> 34 districts; 34 / 2.833 = 12.0 -> 12 stations.
        assert_eq!(rule.districts_for(Some(838_144), 0.0), 34);
        assert_eq!(rule.stations_for(34), 12);
        // Hongmei 65,325 / 24,605.18 = 2.65 -> 3 districts; 3 / 2.833 = 1.06 -> 1 station.
        assert_eq!(rule.districts_for(Some(65_325), 0.0), 3);
        assert_eq!(rule.stations_for(3), 1);
        // A hamlet still gets 2 districts and 1 station.
        assert_eq!(rule.districts_for(Some(1_000), 0.0), 2);
        assert_eq!(rule.stations_for(2), 1);
        // 4.5 districts' worth of area rounds half away from zero.
        assert_eq!(rule.districts_for(None, 4.5 * rule.area_per_district_m2), 5);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let rule = PartitionRule {
            districts_per_station: 0.0,
            ..PartitionRule::default()
        };
        let err = rule.validate().unwrap_err().to_string();
        assert!(err.contains("districts_per_station"), "{err}");
        assert!(PartitionRule::default().validate().is_ok());
    }
}
