//! The dispatch rule: send the available officer who gets there first.
//!
//! DESIGN.md section 4: "pick the available officer with the smallest ETA (great-circle
//! distance x a road circuity factor / speed; both configurable)". The ETA comes from
//! [`TravelModel::eta_s`]. Backup from neighbouring districts, pre-emption of P3/P4 tasks and
//! ack timeouts are later issues; they add candidates or re-run this rule, the rule stays.

use std::cmp::Ordering;

use crate::{LatLng, Officer, OfficerId, OfficerStatus, TravelModel};

/// The officer the rule picked, with the figures it picked them on.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The officer.
    pub officer_id: OfficerId,
    /// Estimated travel time from the officer's last known position, seconds (cluster clock).
    pub eta_s: f64,
    /// Great-circle distance from that position, metres.
    pub distance_m: f64,
}

/// Whether the rule may pick `officer`: status [`OfficerStatus::Available`] and a known
/// location.
///
/// An officer without a position is not dispatchable because no ETA can be computed for them,
/// and guessing one would let an officer of unknown whereabouts beat a near one. It is a short
/// gap in practice: the terminal reports a position when it signs on and then streams GPS.
pub fn is_dispatchable(officer: &Officer) -> bool {
    officer.status == OfficerStatus::Available && officer.location.is_some()
}

/// Among `officers`, the dispatchable one (see [`is_dispatchable`]) with the smallest ETA to
/// `to`; equal ETAs go to the smallest officer id, so the choice is deterministic whatever the
/// iteration order. `None` when nobody is dispatchable.
///
/// Cost: one haversine per officer, no allocation but the winner's id.
pub fn nearest_available<'a>(
    officers: impl IntoIterator<Item = &'a Officer>,
    to: &LatLng,
    travel: &TravelModel,
) -> Option<Candidate> {
    let mut best: Option<(&'a Officer, f64, f64)> = None;
    for officer in officers {
        let Some(at) = officer
            .location
            .as_ref()
            .filter(|_| is_dispatchable(officer))
        else {
            continue;
        };
        let distance_m = at.distance_m(to);
        let eta_s = travel.travel_s(distance_m);
        let better = match &best {
            None => true,
            Some((b, b_eta, _)) => {
                eta_s.total_cmp(b_eta).then_with(|| officer.id.cmp(&b.id)) == Ordering::Less
            }
        };
        if better {
            best = Some((officer, eta_s, distance_m));
        }
    }
    best.map(|(officer, eta_s, distance_m)| Candidate {
        officer_id: officer.id.clone(),
        eta_s,
        distance_m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

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
        let c = nearest_available([&far, &near], &scene(), &TravelModel::default()).unwrap();
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
        let c = nearest_available([&o], &scene(), &slow).unwrap();
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
            nearest_available(all, &scene(), &TravelModel::default()),
            None
        );
        let c = nearest_available(
            all.into_iter().chain([&far]),
            &scene(),
            &TravelModel::default(),
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
            nearest_available([&east, &west], &scene(), &m)
                .unwrap()
                .officer_id,
            "a"
        );
        assert_eq!(
            nearest_available([&west, &east], &scene(), &m)
                .unwrap()
                .officer_id,
            "a"
        );
    }

    #[test]
    fn officer_on_the_spot_has_zero_eta() {
        let o = officer("o1", OfficerStatus::Available, Some((23.02, 113.75)));
        let c = nearest_available([&o], &scene(), &TravelModel::default()).unwrap();
        assert_eq!(c.eta_s, 0.0);
        assert_eq!(c.distance_m, 0.0);
        assert_eq!(
            nearest_available(std::iter::empty(), &scene(), &TravelModel::default()),
            None
        );
    }
}
