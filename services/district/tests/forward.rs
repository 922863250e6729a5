//! Terminal commands reach a district's owner through any node of the cluster: two clustered
//! district nodes serving gRPC on loopback over a private `redis-server`; a command sent to
//! the node that does not own the officer's district is forwarded once to the owner and the
//! owner's answer returned; a command already forwarded is refused naming the owner instead of
//! going on; unknown districts and officers stay `NOT_FOUND`.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::convert::{incident_from_wire, latlng_to_wire};
use dispatch_bus::ports::{CallOptions, CaseClient, NotifyClient};
use dispatch_cluster::{ClusterConfig, rendezvous};
use dispatch_core::{IncidentState, LatLng, ManualClock, OfficerStatus};
use dispatch_district::forward::{self, FORWARDED_METADATA};
use dispatch_district::journal::RedisJournal;
use dispatch_district::outbox::{MemoryDeadLetters, OutboxConfig};
use dispatch_district::service::OWNER_METADATA;
use dispatch_district::{ClusterOptions, DistrictNode, NodeConfig, Outbox};
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_redis_test::RedisServer;
use support::{NoCases, SETTLE, T0, Terminals, eventually, here, redis, routed};
use tonic::transport::Channel;
use tonic::{Code, Request};

const DISTRICTS: [&str; 6] = [
    "town-d01", "town-d02", "town-d03", "town-d04", "town-d05", "town-d06",
];

/// A clustered node serving gRPC on a free loopback port, registered at that address.
struct Served {
    node: DistrictNode,
    client: DistrictServiceClient<Channel>,
    _arbiter: actix_rt::Arbiter,
}

async fn serve(server: &RedisServer, id: &str) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let options = CallOptions::with_deadline(Duration::from_secs(5));
    let outbox = Outbox::start(
        NotifyClient::from_port(Arc::new(Terminals::default()), options),
        CaseClient::from_port(Arc::new(NoCases), options),
        OutboxConfig::default(),
        Arc::new(MemoryDeadLetters::default()),
    )
    .unwrap();
    let arbiter = actix_rt::Arbiter::new();
    let node = DistrictNode::join_cluster(
        &support::directory(DISTRICTS),
        NodeConfig {
            officers_per_district: 2,
            ..NodeConfig::default()
        },
        Arc::new(ManualClock::at(T0)),
        outbox,
        Arc::new(RedisJournal::connect(&server.url()).unwrap()),
        &[arbiter.handle()],
        ClusterOptions {
            redis_url: server.url(),
            node_id: id.into(),
            addr: addr.clone(),
            // Leases of a minute: nothing here can come from a lease running out.
            timings: ClusterConfig {
                lease: Duration::from_secs(60),
                renew_every: Duration::from_secs(10),
                node_ttl: Duration::from_secs(60),
                ..ClusterConfig::default()
            },
        },
    )
    .await
    .unwrap();
    let routes = forward::routes(node.clone());
    tokio::spawn(dispatch_runtime::serve(
        listener,
        routes,
        &[dispatch_proto::service_names::DISTRICT],
        std::future::pending(),
    ));
    let client = DistrictServiceClient::new(dispatch_bus::ports::channel(&addr).unwrap());
    Served {
        node,
        client,
        _arbiter: arbiter,
    }
}

fn share(node: &str) -> Vec<String> {
    rendezvous::assign(&["node-a", "node-b"], DISTRICTS)
        .into_iter()
        .filter(|(_, owner)| *owner == node)
        .map(|(d, _)| d.to_owned())
        .collect()
}

fn point(lat: f64) -> LatLng {
    LatLng::new(lat, 113.7).unwrap()
}

#[actix_rt::test]
async fn a_terminal_command_for_another_nodes_district_is_forwarded_once_to_its_owner() {
    let server = redis();
    let mut a = serve(&server, "node-a").await;
    let b = serve(&server, "node-b").await;
    let (share_a, share_b) = (share("node-a"), share("node-b"));
    assert!(!share_a.is_empty() && !share_b.is_empty());
    eventually("each node runs its rendezvous share", SETTLE, || {
        a.node.district_ids() == share_a && b.node.district_ids() == share_b
    })
    .await;
    let district = share_b[0].clone();
    let officer = format!("{district}-o01");

    // Signed on through node-a, which does not own the district: node-b's officer is
    // available, at the reported position.
    let signed_on = a
        .client
        .update_officer_status(v1::UpdateOfficerStatusRequest {
            officer_id: officer.clone(),
            status: v1::OfficerStatus::Available as i32,
            location: Some(latlng_to_wire(point(23.01))),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (signed_on.district_id.as_str(), signed_on.status),
        (district.as_str(), v1::OfficerStatus::Available as i32)
    );
    let held = b.node.snapshot(&district).await.unwrap();
    let on_b = held
        .officers
        .iter()
        .find(|o| o.id.as_str() == officer)
        .unwrap();
    assert_eq!(
        (on_b.status, on_b.location),
        (OfficerStatus::Available, Some(point(23.01)))
    );

    // The owner's snapshot, through node-a.
    let snapshot = a
        .client
        .get_district(v1::GetDistrictRequest {
            district_id: district.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snapshot.district_id, district);
    assert_eq!(snapshot.officers.len(), 2);

    // A GPS stream through node-a mixing an officer of each node: both accepted, each by
    // the owner of the officer's district. Then, for node-b's officer, a report refused by
    // its owner (accuracy) and one older than its fix (stale): each comes back under its
    // index in this stream, and the stream carries on.
    let own = format!("{}-o02", share_a[0]);
    let report = |officer: &str, lat: f64| v1::LocationReport {
        officer_id: officer.to_owned(),
        location: Some(latlng_to_wire(point(lat))),
        ..Default::default()
    };
    let reports = vec![
        report(&own, 23.02),
        report(&officer, 23.03),
        v1::LocationReport {
            accuracy_m: Some(5_000.0),
            ..report(&officer, 23.04)
        },
        v1::LocationReport {
            // A minute before the clock: older than the fix of report 1 (taken at T0).
            fixed_at: Some(dispatch_bus::convert::timestamp_to_wire(
                T0.plus_seconds(-60.0),
            )),
            ..report(&officer, 23.05)
        },
    ];
    let answer = a
        .client
        .report_location(futures::stream::iter(reports))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.accepted, answer.stale, answer.refused_count),
        (2, 1, 1)
    );
    assert_eq!(
        answer.refused,
        vec![v1::RefusedReport {
            index: 2,
            field: "accuracy_m".into(),
            reason: "must be a finite number of metres within 0..=1000, got 5000".into(),
        }]
    );
    let location = |snapshot: &dispatch_district::actor::Snapshot, id: &str| {
        snapshot
            .officers
            .iter()
            .find(|o| o.id.as_str() == id)
            .and_then(|o| o.location)
    };
    let on_a = a.node.snapshot(&share_a[0]).await.unwrap();
    assert_eq!(location(&on_a, &own), Some(point(23.02)));
    let on_b = b.node.snapshot(&district).await.unwrap();
    assert_eq!(location(&on_b, &officer), Some(point(23.03)));

    // A dispatch on node-b, acknowledged and arrived through node-a.
    let incident = b.node.submit(routed("inc-1", &district)).await.unwrap();
    assert_eq!(incident.state, IncidentState::Dispatched);
    let dispatch_id = incident.dispatch_id.unwrap().to_string();
    a.client
        .acknowledge_dispatch(v1::AcknowledgeDispatchRequest {
            officer_id: officer.clone(),
            dispatch_id: dispatch_id.clone(),
        })
        .await
        .unwrap();
    let arrived = a
        .client
        .arrive_on_scene(v1::ArriveOnSceneRequest {
            officer_id: officer.clone(),
            dispatch_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        incident_from_wire(&arrived).unwrap().state,
        IncidentState::OnScene
    );

    // Already forwarded once: node-a answers UNAVAILABLE naming node-b, and node-b's state
    // does not change.
    let mut again = Request::new(v1::UpdateOfficerStatusRequest {
        officer_id: format!("{district}-o02"),
        status: v1::OfficerStatus::Available as i32,
        location: here().map(latlng_to_wire),
    });
    again
        .metadata_mut()
        .insert(FORWARDED_METADATA, "node-c".parse().unwrap());
    let refused = a.client.update_officer_status(again).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(
        refused
            .metadata()
            .get(OWNER_METADATA)
            .unwrap()
            .to_str()
            .unwrap(),
        "node-b"
    );
    let held = b.node.snapshot(&district).await.unwrap();
    let second = held
        .officers
        .iter()
        .find(|o| o.id.as_str() == format!("{district}-o02"))
        .unwrap();
    assert_eq!(second.status, OfficerStatus::OffDuty);

    // Unknown districts and officers stay NOT_FOUND, never forwarded.
    let unknown = a
        .client
        .get_district(v1::GetDistrictRequest {
            district_id: "town-d99".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let nobody = a
        .client
        .update_officer_status(v1::UpdateOfficerStatusRequest {
            officer_id: "patrol-7".into(),
            status: v1::OfficerStatus::Available as i32,
            location: None,
        })
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");
}
