//! The dispatch rule: send the available officer who gets there first.
//!
//! DESIGN.md section 4: "pick the available officer with the smallest ETA (great-circle
//! distance x a road circuity factor / speed; both configurable)". The ETA comes from
//! [`TravelModel::eta_s`]. Backup from neighbouring districts, pre-emption of P3/P4 tasks and
//! ack timeouts are later issues; they add candidates or re-run this rule, the rule stays.

use std::cmp::Ordering;

use crate::position::PositionRules;
use crate::{LatLng, Officer, OfficerId, OfficerStatus, Timestamp, TravelModel};

/// The officer the rule picked, with the figures it picked them on.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The officer.
    pub officer_id: OfficerId,
    /// Estimated travel time from the officer's last known position, seconds (cluster clock).
    pub eta_s: f64,
    /// Great-circle distance from that position, metres.
    pub distance_m: f64,
    /// Age of that position's fix when picked, seconds (0 for a fix time ahead of the clock).
    pub fix_age_s: f64,
    /// True when the fix was older than the age limit ([`Freshness::max_fix_age_s`]): the
    /// officer was picked only because no officer with a fresh fix was dispatchable.
    pub stale: bool,
}

/// When the rule runs and how old a fix may be to rank an officer by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    /// The time the rule runs at (the command's, cluster clock).
    pub now: Timestamp,
    /// Largest fix age that still counts as fresh, seconds
    /// ([`PositionRules::max_fix_age_s`]).
    pub max_fix_age_s: f64,
}

/// Why the rule may not pick an officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDispatchable {
    /// Not [`OfficerStatus::Available`]; their status.
    Status(OfficerStatus),
    /// Available, but no position yet: dispatchable from their first fix.
    NoFix,
}

/// Why the rule may not pick `officer`; `None` when it may (status
/// [`OfficerStatus::Available`] and a known location).
///
/// An officer without a position is not dispatchable because no ETA can be computed for them,
/// and guessing one would let an officer of unknown whereabouts beat a near one. It is a short
/// gap in practice: the terminal reports a position when it signs on and then streams GPS.
pub fn not_dispatchable(officer: &Officer) -> Option<NotDispatchable> {
    if officer.status != OfficerStatus::Available {
        return Some(NotDispatchable::Status(officer.status));
    }
    officer.location.is_none().then_some(NotDispatchable::NoFix)
}

/// Whether the rule may pick `officer` (see [`not_dispatchable`]).
pub fn is_dispatchable(officer: &Officer) -> bool {
    not_dispatchable(officer).is_none()
}

/// Among `officers`, the dispatchable one (see [`is_dispatchable`]) who gets to `to` first,
/// judged on positions that may be old. The rule:
/// - an officer whose fix is at most [`Freshness::max_fix_age_s`] old (fresh) ranks by ETA
///   from that fix;
/// - an officer whose fix is older (stale) ranks after every fresh one, and among the stale by
///   ETA from the last fix plus the fix's age: a unit silent for longer may have driven
///   farther away, and the age is the time it may have driven;
/// - an officer with no fix is never picked.
///
/// Equal ranks go to the smallest officer id, so the choice is deterministic whatever the
/// iteration order. `None` when nobody is dispatchable.
///
/// Cost: one haversine per officer, no allocation but the winner's id.
pub fn nearest_available<'a>(
    officers: impl IntoIterator<Item = &'a Officer>,
    to: &LatLng,
    travel: &TravelModel,
    freshness: Freshness,
) -> Option<Candidate> {
    // Rank: (stale, score), then id.
    let mut best: Option<(&'a Officer, bool, f64, Candidate)> = None;
    for officer in officers {
        let (Some(at), Some(fixed_at)) = (officer.location.as_ref(), officer.location_at) else {
            continue;
        };
        if !is_dispatchable(officer) {
            continue;
        }
        let distance_m = at.distance_m(to);
        let eta_s = travel.travel_s(distance_m);
        let fix_age_s = PositionRules::fix_age_s(fixed_at, freshness.now);
        let stale = fix_age_s > freshness.max_fix_age_s;
        let score = if stale { eta_s + fix_age_s } else { eta_s };
        let better = match &best {
            None => true,
            Some((b, b_stale, b_score, _)) => {
                stale
                    .cmp(b_stale)
                    .then_with(|| score.total_cmp(b_score))
                    .then_with(|| officer.id.cmp(&b.id))
                    == Ordering::Less
            }
        };
        if better {
            let candidate = Candidate {
                officer_id: officer.id.clone(),
                eta_s,
                distance_m,
                fix_age_s,
                stale,
            };
            best = Some((officer, stale, score, candidate));
        }
    }
    best.map(|(_, _, _, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule run at the time of every test officer's fix: all fixes fresh.
    const FRESH: Freshness = Freshness {
        now: Timestamp(0),
        max_fix_age_s: 120.0,
    };

    /// Incident in Nancheng, Dongguan.
    fn scene() -> LatLng {
        LatLng::new(23.02, 113.75).unwrap()
    }

    fn officer(id: &str, status: OfficerStatus, at: Option<(f64, f64)>) -> Officer {
        let mut o = Officer::off_duty(id.into(), "d1".into(), Timestamp(0));
        o.status = status;
        if let Some((lat, lon)) = at {
            o.set_location(LatLng::new(lat, lon).unwrap(), Timestamp(0));
        }
        o
    }

    #[test]
    fn nearer_officer_by_eta_wins_with_hand_computed_eta() {
        // Due north along the meridian: 0.01 deg of latitude = pi x 6,371,008.8 m / 180 x 0.01
        // = 1,111.9508 m; ETA = 1,111.9508 x 1.4 / (30 / 3.6) = 186.8077 s. The far officer is
        // 0.02 deg north: 2,223.9016 m, 373.6155 s.
        let near = officer("zz-near", OfficerStatus::Available, Some((23.03, 113.75)));
        let far = officer("aa-far", OfficerStatus::Available, Some((23.04, 113.75)));
        let c = nearest_available([&far, &near], &scene(), &TravelModel::default(), FRESH).unwrap();
        assert_eq!(c.officer_id, "zz-near");
        assert!(
            (c.distance_m - 1_111.950_802).abs() < 1e-3,
            "got {}",
            c.distance_m
        );
        assert!((c.eta_s - 186.807_735).abs() < 1e-3, "got {}", c.eta_s);
    }

    #[test]
    fn eta_follows_the_travel_model() {
        let o = officer("o1", OfficerStatus::Available, Some((23.03, 113.75)));
        let slow = TravelModel {
            circuity: 2.0,
            speed_kmh: 18.0,
        };
        // 1,111.9508 m x 2 / 5 m/s = 444.7803 s.
        let c = nearest_available([&o], &scene(), &slow, FRESH).unwrap();
        assert!((c.eta_s - 444.780_321).abs() < 1e-3, "got {}", c.eta_s);
    }

    #[test]
    fn only_available_officers_with_a_position_count() {
        let busy = officer("busy", OfficerStatus::Busy, Some((23.02, 113.75)));
        let on_scene = officer("on-scene", OfficerStatus::OnScene, Some((23.02, 113.75)));
        let dispatched = officer(
            "dispatched",
            OfficerStatus::Dispatched,
            Some((23.02, 113.75)),
        );
        let off = officer("off", OfficerStatus::OffDuty, Some((23.02, 113.75)));
        let nowhere = officer("nowhere", OfficerStatus::Available, None);
        let far = officer("far", OfficerStatus::Available, Some((23.5, 114.0)));
        let all = [&busy, &on_scene, &dispatched, &off, &nowhere];
        assert_eq!(
            nearest_available(all, &scene(), &TravelModel::default(), FRESH),
            None
        );
        let c = nearest_available(
            all.into_iter().chain([&far]),
            &scene(),
            &TravelModel::default(),
            FRESH,
        )
        .unwrap();
        assert_eq!(c.officer_id, "far");
        assert!(!is_dispatchable(&nowhere));
        assert!(is_dispatchable(&far));
    }

    #[test]
    fn equal_eta_goes_to_the_smallest_id_in_any_order() {
        // Mirror images across the meridian are exactly as far.
        let east = officer("b", OfficerStatus::Available, Some((23.02, 113.76)));
        let west = officer("a", OfficerStatus::Available, Some((23.02, 113.74)));
        let m = TravelModel::default();
        assert_eq!(
            nearest_available([&east, &west], &scene(), &m, FRESH)
                .unwrap()
                .officer_id,
            "a"
        );
        assert_eq!(
            nearest_available([&west, &east], &scene(), &m, FRESH)
                .unwrap()
                .officer_id,
            "a"
        );
    }

    #[test]
    fn officer_on_the_spot_has_zero_eta() {
        let o = officer("o1", OfficerStatus::Available, Some((23.02, 113.75)));
        let c = nearest_available([&o], &scene(), &TravelModel::default(), FRESH).unwrap();
        assert_eq!(c.eta_s, 0.0);
        assert_eq!(c.distance_m, 0.0);
        assert_eq!(
            nearest_available(std::iter::empty(), &scene(), &TravelModel::default(), FRESH),
            None
        );
    }

    /// An available officer at `lat`,113.75 whose fix was taken at `fixed_at_s` seconds.
    fn fixed(id: &str, lat: f64, fixed_at_s: i64) -> Officer {
        let mut o = officer(id, OfficerStatus::Available, None);
        o.set_location(
            LatLng::new(lat, 113.75).unwrap(),
            Timestamp(fixed_at_s * 1000),
        );
        o
    }

    #[test]
    fn a_stale_fix_ranks_after_a_fresh_farther_one() {
        // Near: 1,111.9508 m, ETA 186.8077 s, fixed at 0 s: 150 s old at 150 s, stale (> 120).
        // Far: 2,223.9016 m, ETA 373.6155 s, fixed at 100 s: 50 s old, fresh. Far wins.
        let near = fixed("a-near", 23.03, 0);
        let far = fixed("b-far", 23.04, 100);
        let at_150 = Freshness {
            now: Timestamp(150_000),
            max_fix_age_s: 120.0,
        };
        let c =
            nearest_available([&near, &far], &scene(), &TravelModel::default(), at_150).unwrap();
        assert_eq!(c.officer_id, "b-far");
        assert!((c.eta_s - 373.615_470).abs() < 1e-3, "got {}", c.eta_s);
        assert_eq!((c.fix_age_s, c.stale), (50.0, false));
        // At 120 s the near fix is exactly at the limit, still fresh, and wins on ETA.
        let at_120 = Freshness {
            now: Timestamp(120_000),
            ..at_150
        };
        let c =
            nearest_available([&near, &far], &scene(), &TravelModel::default(), at_120).unwrap();
        assert_eq!((c.officer_id.as_str(), c.stale), ("a-near", false));
    }

    #[test]
    fn stale_officers_rank_by_eta_plus_fix_age() {
        let at_1000 = Freshness {
            now: Timestamp(1_000_000),
            max_fix_age_s: 120.0,
        };
        let m = TravelModel::default();
        // Near fixed at 0 s: 186.8077 + 1,000 = 1,186.8077. Far fixed at 700 s:
        // 373.6155 + 300 = 673.6155. Both stale; far ranks first.
        let near = fixed("a-near", 23.03, 0);
        let far = fixed("b-far", 23.04, 700);
        let c = nearest_available([&near, &far], &scene(), &m, at_1000).unwrap();
        assert_eq!((c.officer_id.as_str(), c.stale), ("b-far", true));
        assert_eq!(c.fix_age_s, 300.0);
        // Far fixed at 100 s instead: 373.6155 + 900 = 1,273.6155 > 1,186.8077; near first.
        let older_far = fixed("b-far", 23.04, 100);
        let c = nearest_available([&near, &older_far], &scene(), &m, at_1000).unwrap();
        assert_eq!((c.officer_id.as_str(), c.stale), ("a-near", true));
        // No fix at all is never picked, however stale the others.
        let nowhere = officer("0-nowhere", OfficerStatus::Available, None);
        assert_eq!(not_dispatchable(&nowhere), Some(NotDispatchable::NoFix));
        assert_eq!(nearest_available([&nowhere], &scene(), &m, at_1000), None);
        let c = nearest_available([&nowhere, &near], &scene(), &m, at_1000).unwrap();
        assert_eq!(c.officer_id, "a-near");
    }
}
