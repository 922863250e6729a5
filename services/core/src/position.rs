//! Position fixes from officer terminals and the rules that decide which ones a district
//! trusts (issue 7, point 1).
//!
//! A terminal reports a [`Fix`]: where its GNSS receiver put it, when it took the fix and how
//! accurate it says it is. A district ([`crate::DistrictState::report_location`]) checks the
//! fix against its [`PositionRules`] before it stores it: a fix from the future, with an
//! implausible accuracy or outside the city is refused ([`FixError`]), and a fix older than
//! the officer's current one is ignored as stale. Every rule reads only the fix and the time
//! the command is applied at, so a replay decides the same.

use serde::{Deserialize, Serialize};

use crate::geo::ServiceArea;
use crate::{LatLng, Timestamp};

/// One position report of a terminal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    /// Where, WGS84.
    pub location: LatLng,
    /// When the terminal's GNSS receiver took the fix (cluster time). `None` (an older
    /// terminal, or a position typed in) means "now": the fix is taken as fixed when the
    /// district receives it.
    pub fixed_at: Option<Timestamp>,
    /// Horizontal accuracy the receiver states, metres, as the radius of 68 % confidence
    /// (the definition of Android's `Location.getAccuracy`). `None` when not stated.
    pub accuracy_m: Option<f64>,
}

impl Fix {
    /// A fix at `location` taken when received, of unstated accuracy.
    pub fn now_at(location: LatLng) -> Self {
        Self {
            location,
            fixed_at: None,
            accuracy_m: None,
        }
    }
}

/// The rules a district checks position reports against, and how long a fix ranks an officer.
/// Part of [`crate::DistrictConfig`], so snapshots and replays use the rules the district ran
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PositionRules {
    /// How far in the future of the district's clock a fix time may lie, seconds (default 30).
    /// A terminal's clock (GNSS time) and the district's are never exactly equal; 30 s covers
    /// ordinary skew and network delay, while a fix minutes ahead means a wrong clock whose
    /// fix would otherwise win against every true, later one (see the stale rule).
    pub future_tolerance_s: f64,
    /// Largest stated accuracy accepted, metres (default 1,000). GNSS fixes state 5-20 m,
    /// Wi-Fi ones tens of metres; a radius above a kilometre (a cell-tower fix) cannot tell
    /// which street, or in a dense district which district, an officer is in, so ranking
    /// officers by it would be a guess. Negative or non-finite accuracies are always refused;
    /// 0 is accepted (Android reports 0.0 for "no estimate").
    pub max_accuracy_m: f64,
    /// Age beyond which a fix no longer ranks an officer as if they were there, seconds
    /// (default 120). At the travel model's 30 km/h a unit covers 1 km in 120 s, about the
    /// accuracy limit; a terminal streams a fix every few seconds, so two minutes of silence
    /// means its stream broke. See [`crate::dispatch::nearest_available`].
    pub max_fix_age_s: f64,
    /// The city's rectangle; a position outside it is refused. `None` checks only the WGS84
    /// ranges (the snapshots of districts from before this rule have none). The district node
    /// derives it from the map's directory.
    pub service_area: Option<ServiceArea>,
}

impl Default for PositionRules {
    fn default() -> Self {
        Self {
            future_tolerance_s: 30.0,
            max_accuracy_m: 1_000.0,
            max_fix_age_s: 120.0,
            service_area: None,
        }
    }
}

/// Why a district refused a position report. The report is counted and not stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixError {
    /// The fix time lies more than [`PositionRules::future_tolerance_s`] after the district's
    /// clock.
    #[error(
        "must not be more than {tolerance_s} s after the district's clock ({now_ms} ms), got {fixed_at_ms} ms ({ahead_s} s ahead)"
    )]
    InFuture {
        /// The fix time, ms since the Unix epoch.
        fixed_at_ms: i64,
        /// The district's clock, ms since the Unix epoch.
        now_ms: i64,
        /// How far ahead, seconds.
        ahead_s: f64,
        /// The tolerance, seconds.
        tolerance_s: f64,
    },
    /// The stated accuracy is negative, not a number, infinite or above
    /// [`PositionRules::max_accuracy_m`].
    #[error("must be a finite number of metres within 0..={max_m}, got {accuracy_m}")]
    Accuracy {
        /// The stated accuracy, metres.
        accuracy_m: f64,
        /// The largest accepted, metres.
        max_m: f64,
    },
    /// The position lies outside the district's [`PositionRules::service_area`].
    #[error(
        "must lie in the city's service area (lat {south}..={north}, lon {west}..={east}), got {lat},{lon}",
        south = area.south, north = area.north, west = area.west, east = area.east,
        lat = location.lat, lon = location.lon
    )]
    OutsideServiceArea {
        /// The position reported.
        location: LatLng,
        /// The service area.
        area: ServiceArea,
    },
}

impl FixError {
    /// The field of `dispatch.v1.LocationReport` that broke the rule: `fixed_at`, `accuracy_m`
    /// or `location`.
    pub fn field(&self) -> &'static str {
        match self {
            FixError::InFuture { .. } => "fixed_at",
            FixError::Accuracy { .. } => "accuracy_m",
            FixError::OutsideServiceArea { .. } => "location",
        }
    }
}

impl PositionRules {
    /// Checks `fix` received at `now` and returns its fix time (`now` when it states none).
    ///
    /// Errors: [`FixError::InFuture`], [`FixError::Accuracy`],
    /// [`FixError::OutsideServiceArea`], checked in that order.
    pub fn check(&self, fix: &Fix, now: Timestamp) -> Result<Timestamp, FixError> {
        let fixed_at = fix.fixed_at.unwrap_or(now);
        let ahead_s = fixed_at.seconds_since(now);
        if ahead_s > self.future_tolerance_s {
            return Err(FixError::InFuture {
                fixed_at_ms: fixed_at.as_millis(),
                now_ms: now.as_millis(),
                ahead_s,
                tolerance_s: self.future_tolerance_s,
            });
        }
        if let Some(accuracy_m) = fix.accuracy_m
            && !(accuracy_m.is_finite() && (0.0..=self.max_accuracy_m).contains(&accuracy_m))
        {
            return Err(FixError::Accuracy {
                accuracy_m,
                max_m: self.max_accuracy_m,
            });
        }
        self.check_area(&fix.location)?;
        Ok(fixed_at)
    }

    /// Checks that `location` lies in the service area (always true without one).
    ///
    /// Errors: [`FixError::OutsideServiceArea`].
    pub fn check_area(&self, location: &LatLng) -> Result<(), FixError> {
        match self.service_area {
            Some(area) if !area.contains(location) => Err(FixError::OutsideServiceArea {
                location: *location,
                area,
            }),
            _ => Ok(()),
        }
    }

    /// Age of a fix taken at `fixed_at`, at `now`, seconds; 0 for a fix time ahead of `now`
    /// (within the tolerance).
    pub fn fix_age_s(fixed_at: Timestamp, now: Timestamp) -> f64 {
        now.seconds_since(fixed_at).max(0.0)
    }

    /// Checks the figures. Errors name the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("future_tolerance_s", self.future_tolerance_s),
            ("max_accuracy_m", self.max_accuracy_m),
            ("max_fix_age_s", self.max_fix_age_s),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} must be a finite number >= 0, got {value}"));
            }
        }
        if let Some(a) = self.service_area {
            let ordered = a.south <= a.north && a.west <= a.east;
            let in_range =
                LatLng::new(a.south, a.west).is_ok() && LatLng::new(a.north, a.east).is_ok();
            if !ordered || !in_range {
                return Err(format!(
                    "service_area must have south <= north and west <= east within WGS84 ranges, got {a:?}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn dongguan() -> PositionRules {
        PositionRules {
            service_area: Some(ServiceArea {
                south: 22.6,
                west: 113.5,
                north: 23.2,
                east: 114.3,
            }),
            ..PositionRules::default()
        }
    }

    fn fix(fixed_at: Option<i64>, accuracy_m: Option<f64>) -> Fix {
        Fix {
            location: LatLng::new(23.02, 113.75).unwrap(),
            fixed_at: fixed_at.map(Timestamp),
            accuracy_m,
        }
    }

    #[test]
    fn a_fix_without_a_time_is_fixed_when_received() {
        assert_eq!(dongguan().check(&fix(None, None), NOW), Ok(NOW));
        let earlier = Timestamp(NOW.0 - 5_000);
        assert_eq!(
            dongguan().check(&fix(Some(earlier.0), Some(8.0)), NOW),
            Ok(earlier)
        );
    }

    #[test]
    fn future_fixes_are_refused_beyond_the_tolerance_only() {
        let rules = dongguan();
        // 30.000 s ahead is within the 30 s tolerance; 30.001 s is not.
        assert!(rules.check(&fix(Some(NOW.0 + 30_000), None), NOW).is_ok());
        let err = rules
            .check(&fix(Some(NOW.0 + 30_001), None), NOW)
            .unwrap_err();
        assert_eq!(err.field(), "fixed_at");
        assert_eq!(
            err,
            FixError::InFuture {
                fixed_at_ms: NOW.0 + 30_001,
                now_ms: NOW.0,
                ahead_s: 30.001,
                tolerance_s: 30.0
            }
        );
    }

    #[test]
    fn implausible_accuracies_are_refused() {
        let rules = dongguan();
        for ok in [0.0, 4.5, 1_000.0] {
            assert!(rules.check(&fix(None, Some(ok)), NOW).is_ok(), "{ok}");
        }
        for bad in [-0.1, 1_000.5, f64::NAN, f64::INFINITY] {
            let err = rules.check(&fix(None, Some(bad)), NOW).unwrap_err();
            assert_eq!(err.field(), "accuracy_m", "{bad}");
        }
    }

    #[test]
    fn null_island_and_far_away_fixes_are_refused() {
        let rules = dongguan();
        for (lat, lon) in [(0.0, 0.0), (39.9087, 116.3975), (23.21, 113.75)] {
            let f = Fix::now_at(LatLng::new(lat, lon).unwrap());
            let err = rules.check(&f, NOW).unwrap_err();
            assert_eq!(err.field(), "location");
        }
        // Without an area only the WGS84 ranges (checked by `LatLng::new`) apply.
        let open = PositionRules::default();
        assert!(
            open.check(&Fix::now_at(LatLng::new(0.0, 0.0).unwrap()), NOW)
                .is_ok()
        );
    }

    #[test]
    fn fix_age_counts_from_the_fix_and_never_goes_negative() {
        assert_eq!(
            PositionRules::fix_age_s(Timestamp(NOW.0 - 90_500), NOW),
            90.5
        );
        assert_eq!(PositionRules::fix_age_s(Timestamp(NOW.0 + 2_000), NOW), 0.0);
    }

    #[test]
    fn validate_names_the_bad_figure() {
        assert!(PositionRules::default().validate().is_ok());
        let bad = PositionRules {
            max_fix_age_s: -1.0,
            ..PositionRules::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("max_fix_age_s"));
    }
}
