//! The district service's answers to good and bad requests, through its tonic implementation
//! with real actors, a real outbox, and in-process notification and case squad.

use std::sync::Arc;

use dispatch_bus::feed::{AudienceKey, FeedHub, FeedLimits, follow};
use dispatch_bus::ports::{
    Call, CallOptions, CaseClient, Cursor, Directory, DistrictEntry, NoticeStream, NotifyClient,
    NotifyPort, PortError, Publication, StationEntry, Subscription,
};
use dispatch_case_squad::CaseSquadService;
use dispatch_core::{LatLng, ManualClock, Timestamp};
use dispatch_district::journal::MemoryJournal;
use dispatch_district::{DistrictGrpc, DistrictNode, NodeConfig, Outbox};
use dispatch_notification::NotificationService;
use dispatch_proto::status::violated_field;
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_server::DistrictService;
use futures::StreamExt;
use tonic::{Code, Request, Status};

struct Fixture {
    grpc: DistrictGrpc,
    hub: Arc<FeedHub>,
    _arbiters: Vec<actix_rt::Arbiter>,
}

const D1: &str = "town-d01";
const D2: &str = "town-d02";

fn directory() -> Directory {
    let center = LatLng::new(23.0, 113.7).expect("a point on the map");
    let district = |id: &str| DistrictEntry {
        id: id.into(),
        station_id: "town-s1".into(),
        sub_bureau_id: "town".into(),
        central: id == D1,
        center,
        area_m2: 1e6,
        adjacent: vec![],
    };
    Directory {
        map_name: "test".into(),
        sub_bureaus: vec![],
        stations: vec![StationEntry {
            id: "town-s1".into(),
            sub_bureau_id: "town".into(),
            central_district_id: D1.into(),
            location: center,
        }],
        districts: vec![district(D1), district(D2)],
    }
}

async fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)));
    let hub = Arc::new(FeedHub::new(clock.clone(), FeedLimits::default()));
    let notification = Arc::new(NotificationService::new(hub.clone()));
    let notify = NotifyClient::in_process(notification, options());
    let config = NodeConfig {
        officers_per_district: 2,
        ..NodeConfig::default()
    };
    let (grpc, arbiters) = district(clock, notify, config).await;
    Fixture {
        grpc,
        hub,
        _arbiters: arbiters,
    }
}

fn options() -> CallOptions {
    CallOptions::with_deadline(std::time::Duration::from_secs(5))
}

/// A district node on `clock` publishing through `notify`, with case squads in process and its
/// journal in memory, behind its gRPC face; and its arbiters (the actors stop when they are
/// dropped).
async fn district(
    clock: Arc<ManualClock>,
    notify: NotifyClient,
    config: NodeConfig,
) -> (DistrictGrpc, Vec<actix_rt::Arbiter>) {
    let cases = Arc::new(CaseSquadService::from_directory(
        &directory(),
        2,
        clock.clone(),
    ));
    let outbox = Outbox::spawn(notify, CaseClient::in_process(cases, options()));
    let (node, arbiters) = DistrictNode::start_on_new_arbiters(
        &directory(),
        config,
        clock,
        outbox,
        Arc::new(MemoryJournal::new()),
        1,
    )
    .await
    .expect("node starts");
    (DistrictGrpc::new(node), arbiters)
}

fn routed(id: &str, district: &str) -> v1::Incident {
    v1::Incident {
        incident_id: id.into(),
        call_id: format!("call-{id}"),
        category: v1::IncidentCategory::Theft as i32,
        priority: v1::Priority::P2 as i32,
        location: Some(v1::LatLng {
            lat: 23.001,
            lon: 113.7,
        }),
        district_id: district.into(),
        station_id: "town-s1".into(),
        sub_bureau_id: "town".into(),
        state: v1::IncidentState::Routed as i32,
        revision: 1,
        times: Some(v1::IncidentTimes::default()),
        ..Default::default()
    }
}

fn assert_invalid(result: Result<impl std::fmt::Debug, Status>, field: &str) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        violated_field(&status).as_deref(),
        Some(field),
        "{status:?}"
    );
}

fn assert_code(result: Result<impl std::fmt::Debug, Status>, code: Code) {
    let status = result.expect_err("must be refused");
    assert_eq!(status.code(), code, "{status:?}");
}

async fn sign_on(f: &Fixture, officer: &str) -> Result<v1::Officer, Status> {
    f.grpc
        .update_officer_status(Request::new(v1::UpdateOfficerStatusRequest {
            officer_id: officer.into(),
            status: v1::OfficerStatus::Available as i32,
            location: Some(v1::LatLng {
                lat: 23.0,
                lon: 113.7,
            }),
        }))
        .await
        .map(|r| r.into_inner())
}

async fn submit(f: &Fixture, incident: v1::Incident) -> Result<v1::Incident, Status> {
    f.grpc
        .submit_incident(Request::new(v1::SubmitIncidentRequest {
            incident: Some(incident),
        }))
        .await
        .map(|r| r.into_inner())
}

#[actix_rt::test]
async fn officer_status_requests_are_checked() {
    let f = fixture().await;
    let req = |officer: &str, status: i32, location: Option<v1::LatLng>| {
        Request::new(v1::UpdateOfficerStatusRequest {
            officer_id: officer.into(),
            status,
            location,
        })
    };
    let ok = v1::OfficerStatus::Available as i32;
    assert_invalid(
        f.grpc.update_officer_status(req("", ok, None)).await,
        "officer_id",
    );
    assert_invalid(
        f.grpc
            .update_officer_status(req("town-d01-o01", 0, None))
            .await,
        "status",
    );
    assert_invalid(
        f.grpc
            .update_officer_status(req("town-d01-o01", 42, None))
            .await,
        "status",
    );
    let dispatched = v1::OfficerStatus::Dispatched as i32;
    assert_invalid(
        f.grpc
            .update_officer_status(req("town-d01-o01", dispatched, None))
            .await,
        "status",
    );
    let bad = Some(v1::LatLng {
        lat: 23.0,
        lon: 200.0,
    });
    assert_invalid(
        f.grpc
            .update_officer_status(req("town-d01-o01", ok, bad))
            .await,
        "location.lon",
    );
    assert_code(
        f.grpc.update_officer_status(req("nobody", ok, None)).await,
        Code::NotFound,
    );

    let officer = sign_on(&f, "town-d01-o01").await.expect("sign on");
    assert_eq!(officer.status, v1::OfficerStatus::Available as i32);
    assert_eq!(officer.district_id, D1);
}

#[actix_rt::test]
async fn submitted_incidents_are_checked_and_dispatched_once() {
    let f = fixture().await;
    assert_invalid(
        f.grpc
            .submit_incident(Request::new(v1::SubmitIncidentRequest { incident: None }))
            .await,
        "incident",
    );
    let mut no_location = routed("i1", D1);
    no_location.location = None;
    assert_invalid(submit(&f, no_location).await, "incident.location");
    let mut queued = routed("i1", D1);
    queued.state = v1::IncidentState::Queued as i32;
    assert_invalid(submit(&f, queued).await, "incident.state");
    let mut with_case = routed("i1", D1);
    with_case.case_id = "case-made-up".into();
    assert_invalid(submit(&f, with_case).await, "incident.case_id");
    let mut nowhere = routed("i1", D1);
    nowhere.district_id.clear();
    assert_invalid(submit(&f, nowhere).await, "incident.district_id");
    assert_code(
        submit(&f, routed("i1", "elsewhere-d09")).await,
        Code::NotFound,
    );

    // No officer on duty: the incident waits.
    let waiting = submit(&f, routed("i1", D1)).await.expect("queued");
    assert_eq!(waiting.state, v1::IncidentState::Queued as i32);
    // Signing on dispatches it; a resubmit changes nothing.
    let mut orders = Box::pin(follow(
        f.hub.clone(),
        AudienceKey::Officer("town-d01-o01".into()),
        None,
    ));
    sign_on(&f, "town-d01-o01").await.expect("sign on");
    let again = submit(&f, routed("i1", D1)).await.expect("idempotent");
    assert_eq!(again.state, v1::IncidentState::Dispatched as i32);
    assert_eq!(again.dispatch_id, "town-d01/i1/1");
    let notice = orders.next().await.expect("an order").expect("readable");
    match notice.body.and_then(|b| b.kind) {
        Some(v1::notice_body::Kind::DispatchOrder(o)) => {
            assert_eq!(
                (o.incident_id.as_str(), o.dispatch_id.as_str()),
                ("i1", "town-d01/i1/1")
            );
            // 0.001 degrees of latitude = 111.195 m; x 1.4 / (30 / 3.6 m/s) = 18.68 s.
            assert!((o.eta_s - 18.68).abs() < 0.01, "eta {}", o.eta_s);
        }
        other => panic!("expected an order, got {other:?}"),
    }
    assert_eq!(f.hub.head(&AudienceKey::Officer("town-d01-o01".into())), 1);
    // The command center saw the incident queued, then dispatched, in that order.
    let mut updates = Box::pin(follow(f.hub.clone(), AudienceKey::CommandCenter, None));
    let mut states = Vec::new();
    for _ in 0..2 {
        match updates
            .next()
            .await
            .and_then(|n| n.ok())
            .and_then(|n| n.body)
            .and_then(|b| b.kind)
        {
            Some(v1::notice_body::Kind::IncidentUpdate(i)) => states.push(i.state),
            other => panic!("expected an update, got {other:?}"),
        }
    }
    assert_eq!(
        states,
        [
            v1::IncidentState::Queued as i32,
            v1::IncidentState::Dispatched as i32
        ]
    );
}

#[actix_rt::test]
async fn dispatch_steps_are_checked() {
    let f = fixture().await;
    sign_on(&f, "town-d01-o01").await.expect("sign on");
    sign_on(&f, "town-d01-o02").await.expect("sign on");
    let dispatched = submit(&f, routed("i1", D1)).await.expect("dispatched");
    let (officer, dispatch) = (
        dispatched.officer_id.clone(),
        dispatched.dispatch_id.clone(),
    );
    let other = if officer == "town-d01-o01" {
        "town-d01-o02"
    } else {
        "town-d01-o01"
    };
    let ack = |officer: &str, dispatch: &str| {
        Request::new(v1::AcknowledgeDispatchRequest {
            officer_id: officer.into(),
            dispatch_id: dispatch.into(),
        })
    };
    assert_invalid(
        f.grpc.acknowledge_dispatch(ack("", &dispatch)).await,
        "officer_id",
    );
    assert_invalid(
        f.grpc.acknowledge_dispatch(ack(&officer, "")).await,
        "dispatch_id",
    );
    assert_code(
        f.grpc.acknowledge_dispatch(ack(&officer, "nope-1")).await,
        Code::NotFound,
    );
    assert_code(
        f.grpc.acknowledge_dispatch(ack("nobody", &dispatch)).await,
        Code::NotFound,
    );
    assert_code(
        f.grpc.acknowledge_dispatch(ack(other, &dispatch)).await,
        Code::FailedPrecondition,
    );
    let clear = |disposition: i32| {
        Request::new(v1::ClearIncidentRequest {
            officer_id: officer.clone(),
            dispatch_id: dispatch.clone(),
            disposition,
        })
    };
    assert_invalid(f.grpc.clear_incident(clear(0)).await, "disposition");
    assert_invalid(f.grpc.clear_incident(clear(77)).await, "disposition");
    // Clearing is judged on scene: before arrival it is refused.
    assert_code(
        f.grpc
            .clear_incident(clear(v1::Disposition::Resolved as i32))
            .await,
        Code::FailedPrecondition,
    );
    let acked = f
        .grpc
        .acknowledge_dispatch(ack(&officer, &dispatch))
        .await
        .expect("ack");
    assert!(
        acked
            .into_inner()
            .times
            .and_then(|t| t.acknowledged_at)
            .is_some()
    );
    let arrive = f
        .grpc
        .arrive_on_scene(Request::new(v1::ArriveOnSceneRequest {
            officer_id: officer.clone(),
            dispatch_id: dispatch.clone(),
        }))
        .await
        .expect("arrive")
        .into_inner();
    assert_eq!(arrive.state, v1::IncidentState::OnScene as i32);
    let cleared = f
        .grpc
        .clear_incident(clear(v1::Disposition::AdministrativeCase as i32))
        .await
        .expect("clear")
        .into_inner();
    assert_eq!(cleared.state, v1::IncidentState::Cleared as i32);
    assert_eq!(
        cleared.disposition,
        v1::Disposition::AdministrativeCase as i32
    );
    // Repeated: with the same disposition, the cleared copy; with another, FAILED_PRECONDITION
    // on `disposition` naming the one applied.
    let again = f
        .grpc
        .clear_incident(clear(v1::Disposition::AdministrativeCase as i32))
        .await
        .expect("same clearance again")
        .into_inner();
    assert_eq!(again, cleared);
    let refused = f
        .grpc
        .clear_incident(clear(v1::Disposition::Resolved as i32))
        .await
        .expect_err("another disposition");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        dispatch_proto::status::violated_field(&refused).as_deref(),
        Some("disposition")
    );
    assert!(
        refused.message().contains("AdministrativeCase"),
        "{}",
        refused.message()
    );
}

#[actix_rt::test]
async fn district_snapshots_are_checked() {
    let f = fixture().await;
    let get = |id: &str| {
        Request::new(v1::GetDistrictRequest {
            district_id: id.into(),
        })
    };
    assert_invalid(f.grpc.get_district(get("")).await, "district_id");
    assert_code(f.grpc.get_district(get("nowhere")).await, Code::NotFound);
    let snapshot = f
        .grpc
        .get_district(get(D2))
        .await
        .expect("snapshot")
        .into_inner();
    let ids: Vec<_> = snapshot
        .officers
        .iter()
        .map(|o| o.officer_id.as_str())
        .collect();
    assert_eq!(ids, ["town-d02-o01", "town-d02-o02"]);
    // The fixture's manual clock runs at real speed.
    assert_eq!(snapshot.clock_scale, 1.0);
    assert!(
        snapshot
            .officers
            .iter()
            .all(|o| o.status == v1::OfficerStatus::OffDuty as i32)
    );
}

/// A client of `f`'s service over a real socket, and the sender that stops the server.
async fn served(
    f: &Fixture,
) -> (
    dispatch_proto::v1::district_service_client::DistrictServiceClient<tonic::transport::Channel>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    use dispatch_proto::v1::district_service_client::DistrictServiceClient;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dispatch_runtime::serve(
        listener,
        f.grpc.clone().routes(),
        &[dispatch_proto::service_names::DISTRICT],
        async {
            let _ = stopped.await;
        },
    ));
    let client = DistrictServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    (client, stop, server)
}

/// The fixture's clock: 1,700,000,000,000 ms.
const NOW_MS: i64 = 1_700_000_000_000;

/// `seconds` from the fixture's clock, on the wire.
fn wire_time(seconds: f64) -> prost_types::Timestamp {
    dispatch_bus::convert::timestamp_to_wire(Timestamp(NOW_MS).plus_seconds(seconds))
}

fn report(officer: &str, lat: f64) -> v1::LocationReport {
    v1::LocationReport {
        officer_id: officer.into(),
        location: Some(v1::LatLng { lat, lon: 113.7 }),
        ..Default::default()
    }
}

/// The GPS stream over a real socket: every bad report is listed with its index, field and
/// reason and the stream carries on; a fix older than the current one is counted as stale;
/// only an unknown officer ends the stream (NOT_FOUND).
#[actix_rt::test]
async fn location_streams_list_bad_reports_and_carry_on() {
    let f = fixture().await;
    let (mut client, stop, server) = served(&f).await;
    let o1 = "town-d01-o01";
    let reports = vec![
        // 0: stored, fixed 10 s ago, 5 m.
        v1::LocationReport {
            fixed_at: Some(wire_time(-10.0)),
            accuracy_m: Some(5.0),
            ..report(o1, 23.0)
        },
        // 1: latitude out of range.
        report(o1, 123.0),
        // 2: stored, no fix time: fixed now.
        report(o1, 23.001),
        // 3: fixed 5 s ago, older than report 2's fix: stale.
        v1::LocationReport {
            fixed_at: Some(wire_time(-5.0)),
            ..report(o1, 23.003)
        },
        // 4: 0,0.
        v1::LocationReport {
            location: Some(v1::LatLng { lat: 0.0, lon: 0.0 }),
            ..report(o1, 0.0)
        },
        // 5: 31 s ahead of the clock (tolerance 30 s).
        v1::LocationReport {
            fixed_at: Some(wire_time(31.0)),
            ..report(o1, 23.001)
        },
        // 6: accuracy not a number.
        v1::LocationReport {
            accuracy_m: Some(f64::NAN),
            ..report(o1, 23.001)
        },
        // 7: nobody.
        report("", 23.001),
        // 8: a timestamp protobuf forbids.
        v1::LocationReport {
            fixed_at: Some(prost_types::Timestamp {
                seconds: NOW_MS / 1000,
                nanos: -1,
            }),
            ..report(o1, 23.001)
        },
        // 9: stored, fixed now (as report 2), 7.5 m.
        v1::LocationReport {
            fixed_at: Some(wire_time(0.0)),
            accuracy_m: Some(7.5),
            ..report(o1, 23.002)
        },
    ];
    let answer = client
        .report_location(futures::stream::iter(reports))
        .await
        .expect("the stream is answered")
        .into_inner();
    assert_eq!(
        (answer.accepted, answer.stale, answer.refused_count),
        (3, 1, 6)
    );
    let refused: Vec<(u64, &str)> = answer
        .refused
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (1, "location.lat"),
            (4, "location"),
            (5, "fixed_at"),
            (6, "accuracy_m"),
            (7, "officer_id"),
            (8, "fixed_at.nanos"),
        ]
    );
    let reasons: Vec<&str> = answer.refused.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons[0],
        "must be a finite number within -90..=90, got 123"
    );
    // The service area: the directory's one point (23.0, 113.7) widened by 10 km plus the
    // diameter of a 1 km2 circle (1,128.4 m): 11,128.4 m = 0.10008 deg of latitude.
    assert!(
        reasons[1].starts_with("must lie in the city's service area (lat 22.899")
            && reasons[1].ends_with("got 0,0"),
        "{}",
        reasons[1]
    );
    assert_eq!(
        reasons[2],
        "must not be more than 30 s after the district's clock (1700000000000 ms), got \
         1700000031000 ms (31 s ahead)"
    );
    assert_eq!(
        reasons[3],
        "must be a finite number of metres within 0..=1000, got NaN"
    );
    assert_eq!(reasons[4], "is required");
    assert_eq!(reasons[5], "must be within 0..=999999999, got -1");

    // The last stored fix is the officer's position, with its time and accuracy.
    let snapshot = f
        .grpc
        .get_district(Request::new(v1::GetDistrictRequest {
            district_id: D1.into(),
        }))
        .await
        .expect("snapshot")
        .into_inner();
    let officer = snapshot
        .officers
        .iter()
        .find(|o| o.officer_id == o1)
        .expect("officer");
    assert_eq!(officer.location.as_ref().map(|p| p.lat), Some(23.002));
    assert_eq!(officer.location_at, Some(wire_time(0.0)));
    assert_eq!(officer.location_accuracy_m, Some(7.5));

    // An unknown officer still ends the stream.
    assert_code(
        client
            .report_location(futures::stream::iter([report("nobody", 23.0)]))
            .await,
        Code::NotFound,
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}

/// A stream of nothing but bad reports lists the first 100 and counts them all.
#[actix_rt::test]
async fn a_stream_of_bad_reports_lists_the_first_hundred() {
    let f = fixture().await;
    let (mut client, stop, server) = served(&f).await;
    let bad = (0..105).map(|_| report("town-d01-o01", 91.0));
    let answer = client
        .report_location(futures::stream::iter(bad))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!((answer.accepted, answer.refused_count), (0, 105));
    assert_eq!(answer.refused.len(), 100);
    assert_eq!(answer.refused.last().map(|r| r.index), Some(99));
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}

/// Signing on without a position answers "not dispatchable until the first fix"; the first
/// report makes the officer dispatchable; signing on at 0,0 is refused on `location`.
#[actix_rt::test]
async fn signing_on_without_a_position_is_not_dispatchable_until_the_first_fix() {
    let f = fixture().await;
    let sign_on_at = |location: Option<v1::LatLng>| {
        f.grpc
            .update_officer_status(Request::new(v1::UpdateOfficerStatusRequest {
                officer_id: "town-d01-o01".into(),
                status: v1::OfficerStatus::Available as i32,
                location,
            }))
    };
    let officer = sign_on_at(None).await.expect("signed on").into_inner();
    assert_eq!(officer.status, v1::OfficerStatus::Available as i32);
    assert!(!officer.dispatchable);
    assert_eq!(
        officer.not_dispatchable_reason,
        v1::NotDispatchableReason::NoFix as i32
    );
    assert_invalid(
        sign_on_at(Some(v1::LatLng { lat: 0.0, lon: 0.0 })).await,
        "location",
    );
    let officer = sign_on_at(Some(v1::LatLng {
        lat: 23.0,
        lon: 113.7,
    }))
    .await
    .expect("signed on")
    .into_inner();
    assert!(officer.dispatchable);
    assert_eq!(
        officer.not_dispatchable_reason,
        v1::NotDispatchableReason::Unspecified as i32
    );
    // Off duty: not dispatchable because of the status.
    let off = f
        .grpc
        .update_officer_status(Request::new(v1::UpdateOfficerStatusRequest {
            officer_id: "town-d01-o02".into(),
            status: v1::OfficerStatus::Busy as i32,
            location: None,
        }))
        .await
        .expect("busy")
        .into_inner();
    assert_eq!(
        (off.dispatchable, off.not_dispatchable_reason),
        (false, v1::NotDispatchableReason::Status as i32)
    );
}

/// A notification service that keeps the trace context of every publish and accepts it.
#[derive(Default)]
struct TraceRecorder {
    traces: parking_lot::Mutex<Vec<Option<dispatch_bus::trace::TraceContext>>>,
}

#[tonic::async_trait]
impl NotifyPort for TraceRecorder {
    async fn publish(
        &self,
        call: &Call,
        publications: Vec<Publication>,
    ) -> Result<Vec<Cursor>, PortError> {
        self.traces.lock().push(call.trace);
        Ok((1..=publications.len() as u64)
            .map(|position| Cursor { epoch: 1, position })
            .collect())
    }

    async fn subscribe(&self, _: &Call, _: Subscription) -> Result<NoticeStream, PortError> {
        Err(Status::unimplemented("not used").into())
    }
}

/// A district node whose publications go to `recorder`; see [`district`].
async fn traced_district(recorder: Arc<TraceRecorder>) -> (DistrictGrpc, Vec<actix_rt::Arbiter>) {
    let clock = Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)));
    let notify = NotifyClient::from_port(recorder, options());
    district(clock, notify, NodeConfig::default()).await
}

/// An officer's step (here the acknowledgement) is published in the terminal's trace, as a
/// submit is in intake's.
#[actix_rt::test]
async fn what_an_officers_step_causes_is_published_in_the_terminals_trace() {
    let recorder = Arc::new(TraceRecorder::default());
    let (grpc, _arbiters) = traced_district(recorder.clone()).await;
    grpc.update_officer_status(Request::new(v1::UpdateOfficerStatusRequest {
        officer_id: "town-d01-o01".into(),
        status: v1::OfficerStatus::Available as i32,
        location: Some(v1::LatLng {
            lat: 23.0,
            lon: 113.7,
        }),
    }))
    .await
    .expect("sign on");
    grpc.submit_incident(Request::new(v1::SubmitIncidentRequest {
        incident: Some(routed("I1", D1)),
    }))
    .await
    .expect("dispatched");
    let published = |n: usize| {
        let recorder = recorder.clone();
        async move {
            for _ in 0..500 {
                if recorder.traces.lock().len() >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("fewer than {n} publishes");
        }
    };
    published(1).await;
    // Let the dispatch's publishes settle before the step.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = recorder.traces.lock().len();

    let terminal = dispatch_bus::trace::TraceContext::new_root();
    let mut ack = Request::new(v1::AcknowledgeDispatchRequest {
        officer_id: "town-d01-o01".into(),
        dispatch_id: format!("{D1}/I1/1"),
    });
    terminal.inject(ack.metadata_mut());
    grpc.acknowledge_dispatch(ack).await.expect("acknowledged");
    published(before + 1).await;
    let after = recorder.traces.lock()[before..].to_vec();
    for published in after {
        let published = published.expect("a traceparent on the publish");
        assert_eq!(published.trace_id, terminal.trace_id);
        assert_ne!(published.span_id, terminal.span_id);
    }
}

#[actix_rt::test]
async fn what_a_submit_causes_is_published_in_the_submitters_trace() {
    let recorder = Arc::new(TraceRecorder::default());
    let (grpc, _arbiters) = traced_district(recorder.clone()).await;
    let intake = dispatch_bus::trace::TraceContext::new_root();
    let mut request = Request::new(v1::SubmitIncidentRequest {
        incident: Some(routed("I1", D1)),
    });
    intake.inject(request.metadata_mut());
    grpc.submit_incident(request).await.expect("queued");
    for _ in 0..500 {
        if !recorder.traces.lock().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let traces = recorder.traces.lock().clone();
    assert!(!traces.is_empty(), "the queued update was published");
    for published in traces {
        let published = published.expect("a traceparent on the publish");
        // Intake's trace, in the district handler's own span.
        assert_eq!(published.trace_id, intake.trace_id);
        assert_ne!(published.span_id, intake.span_id);
    }
}
