//! The same call flows as the embedded test, with each service in its own process talking
//! gRPC to the others on loopback.

use std::path::Path;
use std::time::Duration;

use dispatch_bus::convert::timestamp_from_wire;
use dispatch_core::clock::{Clock, ScaledClock, WallClock};
use dispatch_proto::v1;
use dispatch_tests::eventually;
use dispatch_tests::flow::{self, Clients};
use dispatch_tests::sandbox::ProcessCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_from_report_to_case_across_five_processes() {
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let mut cluster = ProcessCluster::start(bin, &[])
        .await
        .expect("five processes serving");
    let mut c = Clients::connect(&cluster.endpoints).await.expect("connect");
    flow::single_call(&mut c, "procs-1")
        .await
        .expect("single call flow");
    flow::waiting_calls(&mut c, "procs-wait")
        .await
        .expect("waiting calls flow");
    flow::far_away_call(&mut c)
        .await
        .expect("far-away call refused");
    assert!(
        cluster.all_running(),
        "a service process died during the flow"
    );
}

/// On a scaled clock, the five processes count cluster time from the one epoch they are given:
/// the district reports it, and every stamp of a call (intake's and the district's) lies between
/// two readings of a clock this test anchors at the same epoch. The epoch is an hour before the
/// start: a process counting from its own start would stamp about 59 cluster hours earlier than
/// the first reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_on_a_scaled_clock_count_from_one_epoch() {
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let epoch = WallClock.now().as_millis() - 3_600_000;
    let epoch_flag = epoch.to_string();
    let cluster = ProcessCluster::start(
        bin,
        &["--clock-scale", "60", "--clock-epoch-ms", &epoch_flag],
    )
    .await
    .expect("five processes serving");
    let mut c = Clients::connect(&cluster.endpoints).await.expect("connect");
    let stage = flow::stage(&mut c, 0).await.expect("a district");
    let snapshot = c
        .district
        .get_district(v1::GetDistrictRequest {
            district_id: stage.district.district_id.clone(),
        })
        .await
        .expect("snapshot")
        .into_inner();
    assert_eq!(
        (snapshot.clock_scale, snapshot.clock_epoch_ms),
        (60.0, epoch)
    );

    let ours = ScaledClock::anchored(epoch, 60.0).expect("the test's clock");
    let before = ours.now().as_millis();
    let center = stage.district.center.expect("district center");
    let officer = stage.officers.first().expect("an officer").clone();
    let mut orders = flow::subscribe(&mut c, &officer).await.expect("subscribe");
    flow::sign_on(&mut c, &officer, center)
        .await
        .expect("sign on");
    let reported = flow::report(
        &mut c,
        "scaled-1",
        v1::IncidentCategory::ViolentCrime,
        center,
    )
    .await
    .expect("report");
    let incident_id = reported.incident.expect("incident").incident_id;
    let order = flow::next_order(&mut orders).await.expect("order");
    flow::work_order(&mut c, &order, v1::Disposition::Resolved)
        .await
        .expect("worked");
    let record = eventually(Duration::from_secs(10), || {
        let (mut intake, id) = (c.intake.clone(), incident_id.clone());
        async move {
            let i = intake
                .get_incident(v1::GetIncidentRequest { incident_id: id })
                .await?
                .into_inner();
            anyhow::ensure!(
                i.state == v1::IncidentState::Cleared as i32,
                "state {}",
                i.state
            );
            Ok(i)
        }
    })
    .await
    .expect("cleared at intake");
    let after = ours.now().as_millis();
    let times = record.times.expect("times");
    for (what, t) in [
        ("received_at (intake)", &times.received_at),
        ("dispatched_at (district)", &times.dispatched_at),
        ("on_scene_at (district)", &times.on_scene_at),
        ("cleared_at (district)", &times.cleared_at),
    ] {
        let at = timestamp_from_wire(t.as_ref().expect(what)).as_millis();
        assert!(
            (before..=after).contains(&at),
            "{what} {at} outside [{before}, {after}]"
        );
    }
}
