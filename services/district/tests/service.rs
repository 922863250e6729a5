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

/// The GPS stream over a real socket: good reports are counted; the first bad one ends the
/// stream with InvalidArgument naming the report and the field.
#[actix_rt::test]
async fn location_streams_count_good_reports_and_stop_at_a_bad_one() {
    use dispatch_proto::v1::district_service_client::DistrictServiceClient;

    let f = fixture().await;
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
    let mut client = DistrictServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let report = |officer: &str, lat: f64| v1::LocationReport {
        officer_id: officer.into(),
        location: Some(v1::LatLng { lat, lon: 113.7 }),
    };
    let good = vec![report("town-d01-o01", 23.0), report("town-d01-o01", 23.001)];
    let answer = client
        .report_location(futures::stream::iter(good))
        .await
        .expect("good stream")
        .into_inner();
    assert_eq!(answer.accepted, 2);

    let bad = vec![report("town-d01-o01", 23.0), report("town-d01-o01", 123.0)];
    assert_invalid(
        client.report_location(futures::stream::iter(bad)).await,
        "reports[1].location.lat",
    );
    let unnamed = vec![report("", 23.0)];
    assert_invalid(
        client.report_location(futures::stream::iter(unnamed)).await,
        "reports[0].officer_id",
    );
    let stranger = vec![report("nobody", 23.0)];
    assert_code(
        client
            .report_location(futures::stream::iter(stranger))
            .await,
        Code::NotFound,
    );
    // The accepted position is the officer's last known one.
    let snapshot = f
        .grpc
        .get_district(Request::new(v1::GetDistrictRequest {
            district_id: D1.into(),
        }))
        .await
        .expect("snapshot")
        .into_inner();
    let o1 = snapshot
        .officers
        .iter()
        .find(|o| o.officer_id == "town-d01-o01")
        .expect("officer");
    assert_eq!(o1.location.as_ref().map(|p| p.lat), Some(23.0));
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
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
