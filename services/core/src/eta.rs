//! Estimated time of arrival from straight-line distance.

use serde::{Deserialize, Serialize};

use crate::LatLng;

/// How fast a unit gets somewhere: `ETA = great-circle distance x circuity / speed`.
///
/// Both figures are assumptions, configurable per deployment: a road circuity factor of 1.4
/// (road distance over straight-line distance; published urban detour indices are mostly
/// 1.2-1.6) and an average urban response speed of 30 km/h.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TravelModel {
    /// Road distance over straight-line distance, >= 1.
    pub circuity: f64,
    /// Average travel speed, km/h, > 0.
    pub speed_kmh: f64,
}

impl Default for TravelModel {
    fn default() -> Self {
        Self {
            circuity: 1.4,
            speed_kmh: 30.0,
        }
    }
}

impl TravelModel {
    /// Travel time from `from` to `to`, seconds.
    pub fn eta_s(&self, from: &LatLng, to: &LatLng) -> f64 {
        self.travel_s(from.distance_m(to))
    }

    /// Travel time for a straight-line distance of `straight_m` metres, seconds.
    pub fn travel_s(&self, straight_m: f64) -> f64 {
        straight_m * self.circuity / (self.speed_kmh / 3.6)
    }

    /// Checks the figures. Errors name the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !self.circuity.is_finite() || self.circuity < 1.0 {
            return Err(format!("circuity must be >= 1, got {}", self.circuity));
        }
        if !self.speed_kmh.is_finite() || self.speed_kmh <= 0.0 {
            return Err(format!("speed_kmh must be > 0, got {}", self.speed_kmh));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_km_at_defaults_takes_168_seconds() {
        // 1,000 m x 1.4 = 1,400 m of road at 30 km/h = 8.333 m/s -> 168 s.
        let t = TravelModel::default().travel_s(1_000.0);
        assert!((t - 168.0).abs() < 1e-9, "got {t}");
    }

    #[test]
    fn eta_scales_with_circuity_and_speed() {
        let m = TravelModel {
            circuity: 2.0,
            speed_kmh: 36.0,
        };
        // 500 m x 2 = 1,000 m at 10 m/s -> 100 s.
        assert!((m.travel_s(500.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn validate_rejects_nonsense() {
        assert!(
            TravelModel {
                circuity: 0.9,
                speed_kmh: 30.0
            }
            .validate()
            .is_err()
        );
        assert!(
            TravelModel {
                circuity: 1.4,
                speed_kmh: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(TravelModel::default().validate().is_ok());
    }
}
