//! Position reports: which fixes a district stores, ignores or refuses, and how the age of a
//! fix ranks officers (issue 7, point 1). Figures worked out by hand in the comments.

use super::*;
use crate::ServiceArea;

/// The rules with a service area of the scene +- 0.5 deg.
fn rules_around_the_scene() -> PositionRules {
    PositionRules {
        service_area: Some(ServiceArea {
            south: 22.52,
            west: 113.25,
            north: 23.52,
            east: 114.25,
        }),
        ..PositionRules::default()
    }
}

/// District `d1` under `rules_around_the_scene`, with officers signed on at `T0`.
fn district_with_area(officers: &[(&str, Option<LatLng>)]) -> DistrictState {
    let config = DistrictConfig {
        positions: rules_around_the_scene(),
        ..DistrictConfig::default()
    };
    let mut d = DistrictState::new("d1".into(), config);
    for (id, location) in officers {
        d.add_officer(Officer::off_duty((*id).into(), "d1".into(), T0));
        d.set_officer_status(&(*id).into(), OfficerStatus::Available, *location, T0)
            .unwrap();
    }
    d
}

fn fix(location: LatLng, fixed_at_s: f64, accuracy_m: Option<f64>) -> Fix {
    Fix {
        location,
        fixed_at: Some(at(fixed_at_s)),
        accuracy_m,
    }
}

#[test]
fn a_fix_is_stored_with_its_fix_time_and_accuracy() {
    let mut d = district_with_area(&[("o1", None)]);
    stored(d.report_location(&"o1".into(), &fix(north(0.01), 8.0, Some(6.5)), at(10.0)));
    let o = d.officer("o1").unwrap();
    assert_eq!(o.location, Some(north(0.01)));
    assert_eq!(
        o.location_at,
        Some(at(8.0)),
        "the fix time, not the receipt"
    );
    assert_eq!(o.location_accuracy_m, Some(6.5));
    // Without a fix time: fixed when received.
    stored(d.report_location(&"o1".into(), &Fix::now_at(north(0.02)), at(12.0)));
    let o = d.officer("o1").unwrap();
    assert_eq!(
        (o.location_at, o.location_accuracy_m),
        (Some(at(12.0)), None)
    );
}

#[test]
fn a_fix_older_than_the_current_one_is_ignored() {
    let mut d = district_with_area(&[("o1", None)]);
    stored(d.report_location(&"o1".into(), &fix(north(0.01), 10.0, None), at(11.0)));
    let before = d.clone();
    // Fixed at 9 s, received at 12 s: overtaken by the 10 s fix.
    let reported = d
        .report_location(&"o1".into(), &fix(north(0.03), 9.0, None), at(12.0))
        .unwrap();
    assert_eq!(
        reported,
        Reported::Stale {
            current_fix_at: at(10.0)
        }
    );
    assert_eq!(d, before, "a stale fix changes nothing");
    // Through the log's entry point too, answering Stale with no effects.
    let command = Command::ReportLocation {
        officer_id: "o1".into(),
        location: north(0.03),
        fixed_at: Some(at(9.0)),
        accuracy_m: None,
    };
    assert_eq!(
        d.apply(&command, at(12.0)),
        Ok((
            Reply::Stale {
                current_fix_at: at(10.0)
            },
            vec![]
        ))
    );
    // A fix of the same time replaces it (a repeat with the receiver's refinement).
    stored(d.report_location(&"o1".into(), &fix(north(0.02), 10.0, Some(3.0)), at(13.0)));
    assert_eq!(d.officer("o1").unwrap().location, Some(north(0.02)));
}

#[test]
fn a_fix_from_the_future_is_refused_beyond_the_tolerance() {
    let mut d = district_with_area(&[("o1", Some(north(0.01)))]);
    // Received at 10 s: fixed at 40 s is 30 s ahead (the default tolerance), accepted;
    // at 40.5 s it is 30.5 s ahead, refused.
    let err = failing(&mut d, |d| {
        d.report_location(&"o1".into(), &fix(north(0.02), 40.5, None), at(10.0))
    });
    assert_eq!(
        err,
        Error::BadFix(FixError::InFuture {
            fixed_at_ms: at(40.5).0,
            now_ms: at(10.0).0,
            ahead_s: 30.5,
            tolerance_s: 30.0,
        })
    );
    stored(d.report_location(&"o1".into(), &fix(north(0.02), 40.0, None), at(10.0)));
}

#[test]
fn an_implausible_accuracy_is_refused() {
    let mut d = district_with_area(&[("o1", Some(north(0.01)))]);
    for bad in [-1.0, f64::NAN, 1_000.01] {
        let err = failing(&mut d, |d| {
            d.report_location(&"o1".into(), &fix(north(0.02), 5.0, Some(bad)), at(10.0))
        });
        let Error::BadFix(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.field(), "accuracy_m");
    }
    assert_eq!(
        failing(&mut d, |d| {
            d.report_location(
                &"o1".into(),
                &fix(north(0.02), 5.0, Some(1_500.0)),
                at(10.0),
            )
        })
        .to_string(),
        "must be a finite number of metres within 0..=1000, got 1500"
    );
    stored(d.report_location(&"o1".into(), &fix(north(0.02), 5.0, Some(0.0)), at(10.0)));
}

#[test]
fn null_island_and_places_outside_the_city_are_refused() {
    let mut d = district_with_area(&[("o1", Some(north(0.01)))]);
    for (lat, lon) in [(0.0, 0.0), (23.53, 113.75), (23.02, 114.26)] {
        let place = LatLng::new(lat, lon).unwrap();
        let err = failing(&mut d, |d| {
            d.report_location(&"o1".into(), &Fix::now_at(place), at(10.0))
        });
        assert_eq!(
            err,
            Error::BadFix(FixError::OutsideServiceArea {
                location: place,
                area: rules_around_the_scene().service_area.unwrap(),
            })
        );
    }
    // Signing on at 0,0 is refused the same way.
    let err = failing(&mut d, |d| {
        d.set_officer_status(
            &"o1".into(),
            OfficerStatus::Busy,
            Some(LatLng::new(0.0, 0.0).unwrap()),
            at(10.0),
        )
    });
    assert!(
        matches!(&err, Error::BadFix(e) if e.field() == "location"),
        "{err:?}"
    );
}

#[test]
fn a_stale_officer_ranks_after_a_fresher_farther_one() {
    // a-near signed on 1,111.95 m north at T0; b-far reports 2,223.90 m north, fixed at 100 s.
    // The call comes at 150 s: a-near's fix is 150 s old (> 120 s, stale), b-far's 50 s.
    let mut d = district_with_area(&[("a-near", Some(north(0.01))), ("b-far", None)]);
    stored(d.report_location(&"b-far".into(), &fix(north(0.02), 100.0, None), at(100.0)));
    let (_, effects) = d
        .submit(routed("I1", Category::Theft, 150.0, scene()), at(150.0))
        .unwrap();
    let o = &orders(&effects)[0];
    assert_eq!(o.officer_id, "b-far");
    // ETA from the fix: 2,223.9016 m x 1.4 / 8.3333 m/s = 373.6155 s.
    assert!((o.eta_s - 373.615_470).abs() < 1e-3, "got {}", o.eta_s);
    // With b-far away, the stale a-near is still dispatched rather than nobody.
    let (_, effects) = d
        .submit(routed("I2", Category::Theft, 151.0, scene()), at(151.0))
        .unwrap();
    assert_eq!(orders(&effects)[0].officer_id, "a-near");
}

#[test]
fn an_officer_without_a_fix_is_never_dispatched() {
    // o-none signed on without a position; o-stale's fix is 1,000 s old when the call comes.
    let mut d = district_with_area(&[("o-none", None), ("o-stale", Some(north(0.05)))]);
    assert_eq!(
        crate::dispatch::not_dispatchable(d.officer("o-none").unwrap()),
        Some(crate::dispatch::NotDispatchable::NoFix)
    );
    let (_, effects) = d
        .submit(routed("I1", Category::Theft, 1_000.0, scene()), at(1_000.0))
        .unwrap();
    assert_eq!(orders(&effects)[0].officer_id, "o-stale");
    let (i2, effects) = d
        .submit(routed("I2", Category::Theft, 1_001.0, scene()), at(1_001.0))
        .unwrap();
    assert!(orders(&effects).is_empty());
    assert_eq!(i2.state, IncidentState::Queued);
}

#[test]
fn old_journal_entries_and_snapshots_read_with_defaults() {
    // A position report as logged before the fix time and accuracy existed.
    let old = r#"{"ReportLocation":{"officer_id":"o1","location":{"lat":23.03,"lon":113.75}}}"#;
    let command: Command = serde_json::from_str(old).unwrap();
    assert_eq!(
        command,
        Command::ReportLocation {
            officer_id: "o1".into(),
            location: north(0.01),
            fixed_at: None,
            accuracy_m: None,
        }
    );
    // It replays as it was applied: fixed at the entry's time.
    let mut d = district(&[("o1", None)]);
    let entry = Entry {
        at: at(7.0),
        command,
        effects: vec![],
    };
    assert_eq!(d.replay([&entry]), Ok(1));
    assert_eq!(d.officer("o1").unwrap().location_at, Some(at(7.0)));
    // A config from before the position rules gets the defaults and no service area.
    let config: DistrictConfig =
        serde_json::from_str(r#"{"travel":{"circuity":1.4,"speed_kmh":30.0}}"#).unwrap();
    assert_eq!(config.positions, PositionRules::default());
    // An officer from before the accuracy field.
    let mut o = serde_json::to_value(d.officer("o1").unwrap()).unwrap();
    o.as_object_mut().unwrap().remove("location_accuracy_m");
    let o: Officer = serde_json::from_value(o).unwrap();
    assert_eq!(o.location_accuracy_m, None);
}
