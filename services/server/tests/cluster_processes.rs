//! Districts across district nodes, as separate processes over a private Redis: three
//! `dispatch-server run district` nodes beside intake, notification, geo-router and case
//! squad. A call in a district owned by one node is dispatched (its terminal talks to another
//! node, which forwards); that node is killed with `SIGKILL`; a new call in the same district
//! is dispatched by a survivor within 10 s (the takeover time is printed), and the earlier
//! incident is still there, rebuilt from the journal. Another node stopped with `SIGTERM`
//! hands its districts over before it exits.
//!
//! Slow (about half a minute).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dispatch_proto::v1;
use dispatch_redis_test::RedisServer;
use dispatch_tests::eventually;
use dispatch_tests::flow::{self, Clients};
use dispatch_tests::leases;
use dispatch_tests::sandbox::ProcessCluster;
use tonic::Code;

/// Tries `op` until it answers something but `UNAVAILABLE` or `DEADLINE_EXCEEDED` (a district
/// moving between nodes), at most 20 s.
async fn through_takeover<T, Fut>(mut op: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let started = Instant::now();
    loop {
        match op().await {
            Ok(v) => return v,
            Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "still failing: {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_district_nodes_districts_are_dispatched_by_a_survivor_within_10_s() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let mut cluster = ProcessCluster::start(bin, &["--redis", url.as_str()])
        .await
        .expect("five processes serving");
    for name in ["district-2", "district-3"] {
        cluster.add_district_node(name).await.unwrap();
    }
    let mut c = Clients::connect(&cluster.endpoints).await.unwrap();
    let directory = c
        .geo
        .list_districts(v1::ListDistrictsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = directory
        .districts
        .iter()
        .map(|d| d.district_id.clone())
        .collect();
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // Settled: three nodes live, every district leased to its rendezvous choice among them.
    let held = leases::holders(
        &leases::settled(&con, &ids, 3, Duration::from_secs(20))
            .await
            .unwrap(),
    );
    // The node to kill (one of the added two; the terminals talk to the first, which forwards
    // their commands), and one of its districts.
    let (district, victim) = held
        .iter()
        .find(|(_, n)| *n == "district-2" || *n == "district-3")
        .map(|(d, n)| (d.clone(), n.clone()))
        .unwrap();
    let index = ids.iter().position(|d| *d == district).unwrap();
    // Through the first node, which forwards once its view has the owner's address (it may
    // see the lease holder a moment before the holder's registration).
    let stage = eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { flow::stage(&mut c, index).await }
    })
    .await
    .unwrap();
    let center = stage.district.center.unwrap();

    // A call there, dispatched by its owner.
    let first_officer = stage.officers[0].clone();
    let mut orders = flow::subscribe(&mut c, &first_officer).await.unwrap();
    through_takeover(|| {
        let mut c = c.clone();
        let officer = first_officer.clone();
        async move {
            flow::sign_on(&mut c, &officer, center)
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))
        }
    })
    .await;
    let first = flow::report(
        &mut c,
        "cluster-call-1",
        v1::IncidentCategory::Theft,
        center,
    )
    .await
    .unwrap()
    .incident
    .unwrap();
    let order = flow::next_order(&mut orders).await.unwrap();
    assert_eq!(order.incident_id, first.incident_id);

    // Kill it; a second officer signs on and a new call comes in the same district.
    cluster.kill(&victim).unwrap();
    let killed = Instant::now();
    let second_officer = stage.officers[1].clone();
    let mut second_orders = flow::subscribe(&mut c, &second_officer).await.unwrap();
    through_takeover(|| {
        let mut district = c.district.clone();
        let officer = second_officer.clone();
        async move {
            district
                .update_officer_status(v1::UpdateOfficerStatusRequest {
                    officer_id: officer,
                    status: v1::OfficerStatus::Available as i32,
                    location: Some(center),
                })
                .await
        }
    })
    .await;
    let second = through_takeover(|| {
        let mut intake = c.intake.clone();
        async move {
            intake
                .report_incident(v1::ReportIncidentRequest {
                    call_id: "cluster-call-2".into(),
                    category: v1::IncidentCategory::Theft as i32,
                    location: Some(center),
                    description: "bicycle taken".into(),
                })
                .await
        }
    })
    .await
    .into_inner()
    .incident
    .unwrap();
    let order = flow::next_order(&mut second_orders).await.unwrap();
    let takeover = killed.elapsed();
    println!("takeover: call dispatched {takeover:?} after kill -9 of the owner");
    assert_eq!(order.incident_id, second.incident_id);
    assert!(takeover < Duration::from_secs(10), "{takeover:?}");
    let now_held = current_holders(&mut con, std::slice::from_ref(&district)).await;
    let owner = now_held.get(&district).unwrap();
    assert_ne!(*owner, victim, "a survivor owns {district}");

    // The earlier incident is still there, at its officer, on the new owner.
    let snapshot = c
        .district
        .get_district(v1::GetDistrictRequest {
            district_id: district.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let active: Vec<(&str, &str)> = snapshot
        .active
        .iter()
        .map(|i| (i.incident_id.as_str(), i.officer_id.as_str()))
        .collect();
    assert!(
        active.contains(&(first.incident_id.as_str(), first_officer.as_str())),
        "{active:?}"
    );
    assert!(
        active.contains(&(second.incident_id.as_str(), second_officer.as_str())),
        "{active:?}"
    );

    // SIGTERM to the other added node: it exits cleanly within the drain bound (10 s) and
    // hands its districts over: none of its leases is left to lapse.
    let leaving = if victim == "district-2" {
        "district-3"
    } else {
        "district-2"
    };
    let before = current_holders(&mut con, &ids).await;
    assert!(
        before.values().any(|n| n == leaving),
        "{leaving} holds nothing: {before:?}"
    );
    let (status, _) = cluster
        .terminate(leaving, Duration::from_secs(15))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let after = current_holders(&mut con, &ids).await;
    assert!(
        after.values().all(|n| n != leaving),
        "leases left behind: before {before:?}, after {after:?}"
    );
}

/// District id -> the node holding its lease now.
async fn current_holders(
    con: &mut redis::aio::MultiplexedConnection,
    districts: &[String],
) -> BTreeMap<String, String> {
    leases::holders(&leases::leases(con, districts).await.unwrap())
}
