//! Unit tests with hand-worked figures, then property tests of the invariants over random
//! sequences of operations.

use super::*;

mod positions;
mod properties;

/// 2023-11-14T22:13:20Z; any fixed instant does.
const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(seconds: f64) -> Timestamp {
    T0.plus_seconds(seconds)
}

/// A scene in Nancheng, Dongguan.
fn scene() -> LatLng {
    LatLng::new(23.02, 113.75).unwrap()
}

/// `deg` degrees of latitude north of the scene (0.01 deg = 1,111.9508 m).
fn north(deg: f64) -> LatLng {
    LatLng::new(23.02 + deg, 113.75).unwrap()
}

fn routed(id: &str, category: Category, received_s: f64, location: LatLng) -> Incident {
    let mut i = Incident::received(
        id.into(),
        format!("call-{id}").into(),
        category,
        location,
        format!("report {id}"),
        at(received_s),
    );
    i.district_id = "d1".into();
    i.station_id = "s1".into();
    i.sub_bureau_id = "nancheng".into();
    i.transition(IncidentState::Routed, at(received_s)).unwrap();
    i
}

/// District `d1` with officers signed on at the given positions.
fn district(officers: &[(&str, Option<LatLng>)]) -> DistrictState {
    let mut d = DistrictState::new("d1".into(), DistrictConfig::default());
    for (id, location) in officers {
        d.add_officer(Officer::off_duty((*id).into(), "d1".into(), T0));
        d.set_officer_status(&(*id).into(), OfficerStatus::Available, *location, T0)
            .unwrap();
    }
    d
}

/// The effects of a report that must have been stored.
fn stored(reported: Result<Reported>) -> Vec<Effect> {
    match reported {
        Ok(Reported::Stored(effects)) => effects,
        other => panic!("expected a stored report, got {other:?}"),
    }
}

fn orders(effects: &[Effect]) -> Vec<&DispatchOrder> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Order(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Takes an incident through acknowledge and arrive.
fn reach(d: &mut DistrictState, officer: &str, dispatch: &str, t: f64) {
    let (officer, dispatch) = (officer.into(), dispatch.into());
    d.acknowledge(&officer, &dispatch, at(t)).unwrap();
    d.arrive(&officer, &dispatch, at(t + 60.0)).unwrap();
}

#[test]
fn submit_dispatches_the_nearest_officer_with_effects_in_order() {
    let mut d = district(&[("a-far", Some(north(0.02))), ("z-near", Some(north(0.01)))]);
    let incident = routed("I1", Category::Burglary, 0.0, scene());
    let r0 = incident.revision;
    let (now, effects) = d.submit(incident, at(5.0)).unwrap();

    assert_eq!(effects.len(), 3);
    let Effect::IncidentChanged(queued) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!(queued.state, IncidentState::Queued);
    assert_eq!(queued.revision, r0 + 1);
    assert_eq!(queued.times.queued_at, Some(at(5.0)));
    let Effect::IncidentChanged(dispatched) = &effects[1] else {
        panic!("{effects:?}")
    };
    assert_eq!(dispatched.state, IncidentState::Dispatched);
    assert_eq!(dispatched.revision, r0 + 2);
    assert_eq!(dispatched, &now);
    let Effect::Order(order) = &effects[2] else {
        panic!("{effects:?}")
    };
    assert_eq!(order.dispatch_id, "d1/I1/1");
    assert_eq!(order.officer_id, "z-near");
    assert_eq!(order.district_id, "d1");
    assert_eq!(order.priority, Priority::P2);
    assert_eq!(order.category, Category::Burglary);
    assert_eq!(order.location, scene());
    assert_eq!(order.description, "report I1");
    assert_eq!(order.dispatched_at, at(5.0));
    // 0.01 deg of latitude = pi x 6,371,008.8 / 180 x 0.01 = 1,111.9508 m;
    // x 1.4 / (30 / 3.6 m/s) = 186.8077 s.
    assert!(
        (order.eta_s - 186.807_735).abs() < 1e-3,
        "got {}",
        order.eta_s
    );

    assert_eq!(now.officer_id, Some("z-near".into()));
    assert_eq!(now.dispatch_id, Some("d1/I1/1".into()));
    assert_eq!(now.times.dispatched_at, Some(at(5.0)));
    let o = d.officer("z-near").unwrap();
    assert_eq!(o.status, OfficerStatus::Dispatched);
    assert_eq!(o.status_since, at(5.0));
    assert_eq!(o.incident_id, Some("I1".into()));
    assert_eq!(o.dispatch_id, Some("d1/I1/1".into()));
    assert_eq!(d.officer("a-far").unwrap().status, OfficerStatus::Available);
    assert_eq!(
        d.active().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["I1"]
    );
    assert_eq!(d.queued().count(), 0);
}

#[test]
fn a_busy_district_queues_and_serves_highest_priority_then_oldest_on_clear() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let (first, _) = d
        .submit(routed("A", Category::Dispute, 0.0, scene()), at(0.0))
        .unwrap();
    assert_eq!(first.state, IncidentState::Dispatched);

    // Nobody free now. Submission order differs from the dispatch order on purpose.
    let waiting = [
        ("P4-oldest", Category::Noise, 10.0),
        ("P2-late", Category::Theft, 40.0),
        ("P3", Category::Fraud, 20.0),
        ("P2-early", Category::Fight, 30.0),
    ];
    for (id, category, received) in waiting {
        let (i, effects) = d
            .submit(routed(id, category, received, north(0.005)), at(50.0))
            .unwrap();
        assert_eq!(i.state, IncidentState::Queued);
        assert_eq!(effects.len(), 1, "only IncidentChanged(Queued)");
    }
    let order: Vec<_> = d.queued().map(|i| i.id.as_str()).collect();
    assert_eq!(order, ["P2-early", "P2-late", "P3", "P4-oldest"]);

    reach(&mut d, "o1", "d1/A/1", 60.0);
    let (cleared, effects) = d
        .clear(
            &"o1".into(),
            &"d1/A/1".into(),
            Disposition::Resolved,
            at(600.0),
        )
        .unwrap();
    assert_eq!(cleared.state, IncidentState::Cleared);
    assert_eq!(cleared.disposition, Some(Disposition::Resolved));
    // Cleared, then the head of the queue goes to the officer who just cleared, from A's scene.
    assert_eq!(effects.len(), 3);
    assert!(matches!(&effects[0], Effect::IncidentChanged(i) if i.id == "A"));
    assert!(
        matches!(&effects[1], Effect::IncidentChanged(i) if i.id == "P2-early" && i.state == IncidentState::Dispatched)
    );
    let o = &orders(&effects)[0];
    assert_eq!(
        (o.incident_id.as_str(), o.officer_id.as_str()),
        ("P2-early", "o1")
    );
    // The officer stands at A's scene; P2-early is 0.005 deg north: 555.9754 m, 93.4039 s.
    assert!((o.eta_s - 93.403_867).abs() < 1e-3, "got {}", o.eta_s);
    assert_eq!(d.officer("o1").unwrap().location, Some(scene()));

    let mut served = vec!["P2-early".to_owned()];
    for t in [1_000.0, 2_000.0, 3_000.0] {
        let dispatch = format!("d1/{}/1", served.last().unwrap());
        reach(&mut d, "o1", &dispatch, t);
        let (_, effects) = d
            .clear(
                &"o1".into(),
                &dispatch.into(),
                Disposition::Resolved,
                at(t + 300.0),
            )
            .unwrap();
        served.push(orders(&effects)[0].incident_id.to_string());
    }
    assert_eq!(served, ["P2-early", "P2-late", "P3", "P4-oldest"]);
    assert!(d.queue().is_empty());
}

#[test]
fn submit_is_idempotent_on_the_incident_id() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let incident = routed("I1", Category::Theft, 0.0, scene());
    let (first, effects) = d.submit(incident.clone(), at(1.0)).unwrap();
    assert_eq!(orders(&effects).len(), 1);
    let (again, effects) = d.submit(incident.clone(), at(2.0)).unwrap();
    assert_eq!(again, first);
    assert!(effects.is_empty());
    // Still idempotent once closed.
    reach(&mut d, "o1", "d1/I1/1", 10.0);
    let (cleared, _) = d
        .clear(
            &"o1".into(),
            &"d1/I1/1".into(),
            Disposition::FalseAlarm,
            at(300.0),
        )
        .unwrap();
    let (again, effects) = d.submit(incident, at(400.0)).unwrap();
    assert_eq!(again, cleared);
    assert!(effects.is_empty());
    assert_eq!(d.incidents().count(), 1);
}

#[test]
fn an_id_known_with_another_call_is_refused_and_changes_nothing() {
    // The fault this guards against: intake restarted, reused an id, and the district answered
    // the new call with the old incident while the free officer stayed free.
    let mut d = district(&[("o1", Some(north(0.01))), ("o2", Some(north(0.02)))]);
    let first = routed("I1", Category::Theft, 0.0, scene());
    d.submit(first, at(1.0)).unwrap();
    let before = d.clone();
    let mut reused = routed("I1", Category::ViolentCrime, 5.0, north(0.03));
    reused.call_id = "call-from-after-a-restart".into();
    let err = d.submit(reused, at(6.0)).unwrap_err();
    assert_eq!(
        err,
        Error::IdTaken {
            incident_id: "I1".into(),
            known_call_id: "call-I1".into(),
            call_id: "call-from-after-a-restart".into(),
        }
    );
    assert_eq!(d, before, "a refused submit changes nothing");
    assert_eq!(d.officer("o2").unwrap().status, OfficerStatus::Available);
}

#[test]
fn full_cycle_stamps_every_step_and_repeats_are_no_ops() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let (i, _) = d
        .submit(routed("I1", Category::ViolentCrime, 0.0, scene()), at(2.0))
        .unwrap();
    let r = i.revision;

    let (acked, effects) = d
        .acknowledge(&"o1".into(), &"d1/I1/1".into(), at(10.0))
        .unwrap();
    assert_eq!(acked.state, IncidentState::Dispatched);
    assert_eq!(acked.times.acknowledged_at, Some(at(10.0)));
    assert_eq!(acked.revision, r + 1);
    assert_eq!(effects, [Effect::IncidentChanged(acked.clone())]);
    assert_eq!(d.officer("o1").unwrap().status, OfficerStatus::Acknowledged);
    let (again, effects) = d
        .acknowledge(&"o1".into(), &"d1/I1/1".into(), at(11.0))
        .unwrap();
    assert_eq!((again, effects), (acked, vec![]));

    let (there, effects) = d
        .arrive(&"o1".into(), &"d1/I1/1".into(), at(190.0))
        .unwrap();
    assert_eq!(there.state, IncidentState::OnScene);
    assert_eq!(there.times.on_scene_at, Some(at(190.0)));
    assert_eq!(there.revision, r + 2);
    assert_eq!(there.response_time_s(), Some(190.0));
    assert_eq!(effects.len(), 1);
    let o = d.officer("o1").unwrap();
    assert_eq!(
        (o.status, o.location),
        (OfficerStatus::OnScene, Some(scene()))
    );
    assert_eq!(
        d.arrive(&"o1".into(), &"d1/I1/1".into(), at(191.0))
            .unwrap(),
        (there.clone(), vec![])
    );
    // A late acknowledgement changes nothing either.
    assert_eq!(
        d.acknowledge(&"o1".into(), &"d1/I1/1".into(), at(192.0))
            .unwrap(),
        (there, vec![])
    );

    let (cleared, effects) = d
        .clear(
            &"o1".into(),
            &"d1/I1/1".into(),
            Disposition::CriminalCase,
            at(900.0),
        )
        .unwrap();
    assert_eq!(cleared.revision, r + 3);
    assert_eq!(cleared.times.cleared_at, Some(at(900.0)));
    assert_eq!(
        effects,
        [
            Effect::IncidentChanged(cleared.clone()),
            Effect::OpenCase(cleared.clone())
        ]
    );
    let o = d.officer("o1").unwrap();
    assert_eq!(o.status, OfficerStatus::Available);
    assert_eq!((o.incident_id.clone(), o.dispatch_id.clone()), (None, None));
    assert_eq!(
        (o.location, o.location_at),
        (Some(scene()), Some(at(900.0)))
    );
    // A repeat with the same disposition answers with the cleared copy; with another it is
    // refused naming the one applied, and changes nothing.
    let repeat = d
        .clear(
            &"o1".into(),
            &"d1/I1/1".into(),
            Disposition::CriminalCase,
            at(901.0),
        )
        .unwrap();
    assert_eq!(repeat, (cleared.clone(), vec![]));
    let other = d
        .clear(
            &"o1".into(),
            &"d1/I1/1".into(),
            Disposition::Resolved,
            at(901.5),
        )
        .unwrap_err();
    assert_eq!(
        other,
        Error::ClearedOtherwise {
            incident_id: "I1".into(),
            applied: Disposition::CriminalCase,
            asked: Disposition::Resolved,
        }
    );
    assert_eq!(d.incident("I1"), Some(&cleared));
    assert_eq!(
        d.arrive(&"o1".into(), &"d1/I1/1".into(), at(902.0))
            .unwrap(),
        (cleared.clone(), vec![])
    );
    assert_eq!(d.active().count(), 0);
    assert_eq!(d.incident("I1"), Some(&cleared));
}

#[test]
fn arriving_without_acknowledging_acknowledges_implicitly_with_one_bump() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let (i, _) = d
        .submit(routed("I1", Category::Fight, 0.0, scene()), at(0.0))
        .unwrap();
    let (there, effects) = d
        .arrive(&"o1".into(), &"d1/I1/1".into(), at(200.0))
        .unwrap();
    assert_eq!(there.times.acknowledged_at, Some(at(200.0)));
    assert_eq!(there.revision, i.revision + 1);
    assert_eq!(effects.len(), 1);
    assert_eq!(d.officer("o1").unwrap().status, OfficerStatus::OnScene);
}

#[test]
fn only_case_dispositions_open_a_case() {
    for disposition in [
        Disposition::Resolved,
        Disposition::CriminalCase,
        Disposition::AdministrativeCase,
        Disposition::FalseAlarm,
        Disposition::Referred,
    ] {
        let mut d = district(&[("o1", Some(north(0.01)))]);
        d.submit(routed("I1", Category::Theft, 0.0, scene()), at(0.0))
            .unwrap();
        reach(&mut d, "o1", "d1/I1/1", 10.0);
        let (cleared, effects) = d
            .clear(&"o1".into(), &"d1/I1/1".into(), disposition, at(500.0))
            .unwrap();
        // Station s1, incident I1: `case-{station_id}-{incident_id}`.
        let expected_case = disposition.opens_case().then(|| CaseId::from("case-s1-I1"));
        assert_eq!(cleared.case_id, expected_case, "{disposition:?}");
        let cases: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::OpenCase(i) => Some(i),
                _ => None,
            })
            .collect();
        assert_eq!(
            cases.len(),
            usize::from(disposition.opens_case()),
            "{disposition:?}"
        );
        for case in cases {
            assert_eq!(case.station_id, "s1");
            assert_eq!(case.disposition, Some(disposition));
            assert_eq!(
                case.case_id.as_ref().map(CaseId::as_str),
                Some("case-s1-I1")
            );
        }
    }
}

#[test]
fn a_replayed_log_gives_the_cleared_incident_the_same_case_id() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let fresh = d.clone();
    let mut incident = routed("inc-01J9Z3", Category::Burglary, 0.0, scene());
    incident.station_id = "nc-st1".into();
    let commands = [
        Command::Submit(Box::new(incident)),
        Command::Arrive {
            officer_id: "o1".into(),
            dispatch_id: "d1/inc-01J9Z3/1".into(),
        },
        Command::Clear {
            officer_id: "o1".into(),
            dispatch_id: "d1/inc-01J9Z3/1".into(),
            disposition: Disposition::AdministrativeCase,
        },
    ];
    let mut log = Vec::new();
    for (n, command) in commands.into_iter().enumerate() {
        let at = at(100.0 * n as f64);
        let (_, effects) = d.apply(&command, at).unwrap();
        log.push(Entry {
            at,
            command,
            effects,
        });
    }
    let cleared = d.incident("inc-01J9Z3").unwrap();
    assert_eq!(
        cleared.case_id,
        Some(CaseId::from("case-nc-st1-inc-01J9Z3"))
    );
    assert!(log[2].effects.contains(&Effect::OpenCase(cleared.clone())));

    let mut rebuilt = fresh;
    assert_eq!(rebuilt.replay(&log), Ok(3));
    assert_eq!(rebuilt.incident("inc-01J9Z3"), Some(cleared));
    assert_eq!(rebuilt, d);
}

#[test]
fn an_officer_without_a_position_waits_for_the_first_report() {
    let mut d = district(&[("o1", None)]);
    let (i, effects) = d
        .submit(routed("I1", Category::Theft, 0.0, scene()), at(1.0))
        .unwrap();
    assert_eq!(i.state, IncidentState::Queued);
    assert_eq!(effects.len(), 1);
    let effects = stored(d.report_location(&"o1".into(), &Fix::now_at(north(0.01)), at(5.0)));
    let o = &orders(&effects)[0];
    assert_eq!((o.officer_id.as_str(), o.dispatched_at), ("o1", at(5.0)));
    // Further reports while engaged only move the officer.
    assert!(
        stored(d.report_location(&"o1".into(), &Fix::now_at(north(0.005)), at(6.0))).is_empty()
    );
    assert_eq!(d.officer("o1").unwrap().location_at, Some(at(6.0)));
}

#[test]
fn signing_on_serves_the_queue_and_returns_the_dispatched_officer() {
    let mut d = district(&[]);
    d.add_officer(Officer::off_duty("o1".into(), "d1".into(), T0));
    d.submit(routed("I1", Category::Noise, 0.0, scene()), at(1.0))
        .unwrap();
    let (o, effects) = d
        .set_officer_status(
            &"o1".into(),
            OfficerStatus::Available,
            Some(north(0.01)),
            at(30.0),
        )
        .unwrap();
    assert_eq!(o.status, OfficerStatus::Dispatched);
    assert_eq!(o.dispatch_id, Some("d1/I1/1".into()));
    assert_eq!(orders(&effects).len(), 1);
}

#[test]
fn busy_and_off_duty_officers_are_not_dispatched() {
    let mut d = district(&[("o1", Some(north(0.01))), ("o2", Some(north(0.02)))]);
    let (o, effects) = d
        .set_officer_status(&"o1".into(), OfficerStatus::Busy, None, at(1.0))
        .unwrap();
    assert_eq!((o.status, o.status_since), (OfficerStatus::Busy, at(1.0)));
    assert!(effects.is_empty());
    d.set_officer_status(&"o2".into(), OfficerStatus::OffDuty, None, at(1.0))
        .unwrap();
    let (i, _) = d
        .submit(routed("I1", Category::Theft, 0.0, scene()), at(2.0))
        .unwrap();
    assert_eq!(i.state, IncidentState::Queued);
    // Back from the task: picked up at once.
    let (o, effects) = d
        .set_officer_status(&"o1".into(), OfficerStatus::Available, None, at(3.0))
        .unwrap();
    assert_eq!(o.status, OfficerStatus::Dispatched);
    assert_eq!(orders(&effects)[0].incident_id, "I1");
}

#[test]
fn setting_the_same_status_again_only_records_the_position() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    let (o, effects) = d
        .set_officer_status(
            &"o1".into(),
            OfficerStatus::Available,
            Some(north(0.02)),
            at(9.0),
        )
        .unwrap();
    assert!(effects.is_empty());
    assert_eq!(o.status_since, T0);
    assert_eq!(
        (o.location, o.location_at),
        (Some(north(0.02)), Some(at(9.0)))
    );
}

#[test]
fn cancel_releases_the_queue_slot_or_the_officer() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    d.submit(routed("I1", Category::Theft, 0.0, scene()), at(0.0))
        .unwrap();
    d.submit(routed("I2", Category::Noise, 1.0, scene()), at(1.0))
        .unwrap();
    d.submit(routed("I3", Category::Noise, 2.0, scene()), at(2.0))
        .unwrap();

    let (c, effects) = d.cancel(&"I3".into(), at(3.0)).unwrap();
    assert_eq!(c.state, IncidentState::Cancelled);
    assert_eq!(c.times.cancelled_at, Some(at(3.0)));
    assert_eq!(effects.len(), 1);
    assert_eq!(
        d.queued().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["I2"]
    );

    let (c, effects) = d.cancel(&"I1".into(), at(4.0)).unwrap();
    assert_eq!(c.officer_id, Some("o1".into()), "kept to tell the officer");
    assert_eq!(orders(&effects)[0].incident_id, "I2");
    assert_eq!(d.cancel(&"I1".into(), at(5.0)).unwrap(), (c, vec![]));
    // The cancelled order can no longer be worked.
    let err = d
        .arrive(&"o1".into(), &"d1/I1/1".into(), at(6.0))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Transition(TransitionError {
            from: IncidentState::Cancelled,
            ..
        })
    ));
    assert!(
        d.acknowledge(&"o1".into(), &"d1/I1/1".into(), at(6.0))
            .is_err()
    );
}

#[test]
fn add_officer_normalises_and_never_steals_an_engaged_officer() {
    let mut d = district(&[("o1", Some(north(0.01)))]);
    d.submit(routed("I1", Category::Theft, 0.0, scene()), at(0.0))
        .unwrap();
    let before = d.clone();
    d.add_officer(Officer::off_duty("o1".into(), "d1".into(), at(1.0)));
    assert_eq!(d, before);

    let mut stray = Officer::off_duty("o2".into(), "d1".into(), at(1.0));
    stray.status = OfficerStatus::OnScene;
    stray.incident_id = Some("elsewhere".into());
    stray.set_location(north(0.02), at(1.0));
    d.add_officer(stray);
    let o2 = d.officer("o2").unwrap();
    assert_eq!(
        (o2.status, o2.incident_id.clone()),
        (OfficerStatus::Available, None)
    );
    assert!(d.dispatch_waiting(at(2.0)).is_empty());

    d.submit(routed("I2", Category::Theft, 0.0, scene()), at(3.0))
        .unwrap();
    assert_eq!(d.incident("I2").unwrap().officer_id, Some("o2".into()));
}

#[test]
fn dispatch_waiting_serves_a_roster_loaded_after_incidents() {
    let mut d = district(&[]);
    d.submit(routed("I1", Category::Theft, 0.0, scene()), at(0.0))
        .unwrap();
    let mut o = Officer::off_duty("o1".into(), "d1".into(), T0);
    o.status = OfficerStatus::Available;
    o.set_location(north(0.01), T0);
    d.add_officer(o);
    let effects = d.dispatch_waiting(at(1.0));
    assert_eq!(orders(&effects)[0].dispatch_id, "d1/I1/1");
}

// ---- one test per error variant; a failed call leaves the state unchanged ----

fn failing<T: std::fmt::Debug>(
    d: &mut DistrictState,
    call: impl FnOnce(&mut DistrictState) -> Result<T>,
) -> Error {
    let before = d.clone();
    let err = call(d).unwrap_err();
    assert_eq!(*d, before, "a failed call changed the state: {err}");
    err
}

/// A district with I1 dispatched to o1, and o2 free.
fn one_dispatch() -> DistrictState {
    let mut d = district(&[("o1", Some(north(0.01))), ("o2", Some(north(0.02)))]);
    d.submit(routed("I1", Category::Theft, 0.0, scene()), at(0.0))
        .unwrap();
    d
}

#[test]
fn unknown_officer() {
    let mut d = one_dispatch();
    let err = failing(&mut d, |d| {
        d.acknowledge(&"ghost".into(), &"d1/I1/1".into(), at(1.0))
    });
    assert_eq!(err, Error::UnknownOfficer("ghost".into()));
    assert_eq!(err.to_string(), "unknown officer \"ghost\"");
    failing(&mut d, |d| {
        d.report_location(&"ghost".into(), &Fix::now_at(scene()), at(1.0))
    });
    failing(&mut d, |d| {
        d.set_officer_status(&"ghost".into(), OfficerStatus::Busy, None, at(1.0))
    });
    failing(&mut d, |d| {
        d.arrive(&"ghost".into(), &"d1/I1/1".into(), at(1.0))
    });
    failing(&mut d, |d| {
        d.clear(
            &"ghost".into(),
            &"d1/I1/1".into(),
            Disposition::Resolved,
            at(1.0),
        )
    });
}

#[test]
fn unknown_dispatch() {
    let mut d = one_dispatch();
    let err = failing(&mut d, |d| {
        d.acknowledge(&"o1".into(), &"d1/I1/2".into(), at(1.0))
    });
    assert_eq!(err, Error::UnknownDispatch("d1/I1/2".into()));
    assert_eq!(err.to_string(), "unknown dispatch \"d1/I1/2\"");
}

#[test]
fn unknown_incident() {
    let mut d = one_dispatch();
    let err = failing(&mut d, |d| d.cancel(&"I9".into(), at(1.0)));
    assert_eq!(err.to_string(), "unknown incident \"I9\"");
}

#[test]
fn not_your_dispatch() {
    let mut d = one_dispatch();
    for err in [
        failing(&mut d, |d| {
            d.acknowledge(&"o2".into(), &"d1/I1/1".into(), at(1.0))
        }),
        failing(&mut d, |d| {
            d.arrive(&"o2".into(), &"d1/I1/1".into(), at(1.0))
        }),
        failing(&mut d, |d| {
            d.clear(
                &"o2".into(),
                &"d1/I1/1".into(),
                Disposition::Resolved,
                at(1.0),
            )
        }),
    ] {
        assert_eq!(
            err,
            Error::NotYourDispatch {
                officer_id: "o2".into(),
                dispatch_id: "d1/I1/1".into()
            }
        );
    }
    assert_eq!(
        Error::NotYourDispatch {
            officer_id: "o2".into(),
            dispatch_id: "d1/I1/1".into()
        }
        .to_string(),
        "dispatch \"d1/I1/1\" is not assigned to officer \"o2\""
    );
}

#[test]
fn wrong_district() {
    let mut d = one_dispatch();
    let mut elsewhere = routed("I2", Category::Theft, 0.0, scene());
    elsewhere.district_id = "d7".into();
    let err = failing(&mut d, |d| d.submit(elsewhere, at(1.0)));
    assert_eq!(
        err.to_string(),
        "incident \"I2\" is routed to district \"d7\", not to this one"
    );
}

#[test]
fn status_not_settable() {
    let mut d = one_dispatch();
    for status in [
        OfficerStatus::Dispatched,
        OfficerStatus::Acknowledged,
        OfficerStatus::OnScene,
    ] {
        let err = failing(&mut d, |d| {
            d.set_officer_status(&"o2".into(), status, None, at(1.0))
        });
        assert_eq!(err, Error::StatusNotSettable(status));
    }
    assert_eq!(
        Error::StatusNotSettable(OfficerStatus::OnScene).to_string(),
        "officer status OnScene cannot be set directly, only Available, Busy or OffDuty"
    );
}

#[test]
fn officer_engaged() {
    let mut d = one_dispatch();
    for status in [
        OfficerStatus::OffDuty,
        OfficerStatus::Busy,
        OfficerStatus::Available,
    ] {
        let err = failing(&mut d, |d| {
            d.set_officer_status(&"o1".into(), status, None, at(1.0))
        });
        assert_eq!(
            err,
            Error::OfficerEngaged {
                officer_id: "o1".into(),
                status: OfficerStatus::Dispatched
            }
        );
    }
    reach(&mut d, "o1", "d1/I1/1", 2.0);
    let err = failing(&mut d, |d| {
        d.set_officer_status(
            &"o1".into(),
            OfficerStatus::OffDuty,
            Some(scene()),
            at(100.0),
        )
    });
    assert_eq!(
        err.to_string(),
        "officer \"o1\" is OnScene on a dispatch; clear it first"
    );
}

#[test]
fn transition() {
    let mut d = one_dispatch();
    // Clearing before arrival is refused (see `clear`).
    let err = failing(&mut d, |d| {
        d.clear(
            &"o1".into(),
            &"d1/I1/1".into(),
            Disposition::Resolved,
            at(1.0),
        )
    });
    assert_eq!(
        err,
        Error::Transition(TransitionError {
            id: "I1".into(),
            from: IncidentState::Dispatched,
            to: IncidentState::Cleared
        })
    );
    assert_eq!(
        err.to_string(),
        "incident I1 cannot go from Dispatched to Cleared"
    );
    // Submitting an incident that was never routed.
    let mut raw = routed("I2", Category::Theft, 0.0, scene());
    raw.state = IncidentState::Received;
    let err = failing(&mut d, |d| d.submit(raw, at(1.0)));
    assert!(matches!(
        err,
        Error::Transition(TransitionError {
            from: IncidentState::Received,
            ..
        })
    ));
    // Cancelling a cleared incident.
    reach(&mut d, "o1", "d1/I1/1", 2.0);
    d.clear(
        &"o1".into(),
        &"d1/I1/1".into(),
        Disposition::Resolved,
        at(300.0),
    )
    .unwrap();
    let err = failing(&mut d, |d| d.cancel(&"I1".into(), at(301.0)));
    assert!(matches!(
        err,
        Error::Transition(TransitionError {
            from: IncidentState::Cleared,
            ..
        })
    ));
}

#[test]
fn status() {
    // Defensive variant: the district checks engagement before changing a status, so no
    // public call reaches it while the invariants hold. It wraps the officer's own error.
    let err = Error::from(StatusError {
        id: "o1".into(),
        from: OfficerStatus::OffDuty,
        to: OfficerStatus::OnScene,
    });
    assert!(matches!(err, Error::Status(_)));
    assert_eq!(
        err.to_string(),
        "officer o1 cannot go from OffDuty to OnScene"
    );
}
