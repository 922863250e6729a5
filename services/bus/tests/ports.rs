//! The ports' contract, the same over both adapters: errors keep their code and field, every
//! call runs under its deadline, the handler sees the same `traceparent` and `grpc-timeout`
//! whether it is called over gRPC or in-process, and replies arrive in domain terms (a
//! malformed one is `PortError::Internal` naming the field).

#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::ports::{
    AudienceKey, Call, CallOptions, CaseClient, CaseKind, Cursor, Directory, DistrictClient,
    DistrictEntry, DistrictPort, Notice, NoticeBody, NotifyClient, PortError, Publication,
    PublishedNotice, Result, RouterClient, SingleNode, StationEntry, SubBureauEntry, Subscription,
};
use dispatch_bus::trace::{self, TraceContext};
use dispatch_core::district::DispatchOrder;
use dispatch_core::{Category, Incident, IncidentState, LatLng, Priority, Timestamp};
use dispatch_proto::status::{invalid_argument, violated_field};
use dispatch_proto::v1;
use dispatch_proto::v1::geo_router_server::{GeoRouter, GeoRouterServer};
use dispatch_proto::v1::notice_body::Kind;
use dispatch_proto::v1::notification_server::{Notification, NotificationServer};
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tonic::{Code, Request, Response, Status};

/// W3C Trace Context's own example.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// ---- PortError <-> Status ----

#[test]
fn a_refusal_keeps_its_code_and_field_both_ways() {
    let status = invalid_argument("location.lat", "must be within -90..=90, got 91");
    let e = PortError::from(status);
    assert_eq!(
        e,
        PortError::Refused {
            code: Code::InvalidArgument,
            field: Some("location.lat".into()),
            message: "location.lat: must be within -90..=90, got 91".into(),
        }
    );
    assert!(!e.is_transient());
    assert_eq!(e.field(), Some("location.lat"));
    let back = e.into_status();
    assert_eq!(back.code(), Code::InvalidArgument);
    assert_eq!(
        back.message(),
        "location.lat: must be within -90..=90, got 91"
    );
    assert_eq!(violated_field(&back).as_deref(), Some("location.lat"));

    // A field on another code (the case squad's FailedPrecondition naming a field).
    let status = dispatch_proto::status::with_field(
        Code::FailedPrecondition,
        "incident.station_id",
        "differs from intake's record",
    );
    let back = PortError::from(status).into_status();
    assert_eq!(back.code(), Code::FailedPrecondition);
    assert_eq!(
        violated_field(&back).as_deref(),
        Some("incident.station_id")
    );
}

#[test]
fn each_code_maps_to_what_the_caller_can_do() {
    let cases = [
        (Code::Unavailable, Code::Unavailable, true),
        (Code::Cancelled, Code::Unavailable, true),
        (Code::Aborted, Code::Unavailable, true),
        (Code::Unknown, Code::Unavailable, true),
        (Code::DeadlineExceeded, Code::DeadlineExceeded, true),
        (Code::ResourceExhausted, Code::ResourceExhausted, true),
        (Code::Internal, Code::Internal, true),
        (Code::DataLoss, Code::Internal, true),
        (Code::InvalidArgument, Code::InvalidArgument, false),
        (Code::FailedPrecondition, Code::FailedPrecondition, false),
        (Code::NotFound, Code::NotFound, false),
        (Code::AlreadyExists, Code::AlreadyExists, false),
        (Code::OutOfRange, Code::OutOfRange, false),
        (Code::PermissionDenied, Code::PermissionDenied, false),
        (Code::Unimplemented, Code::Unimplemented, false),
    ];
    for (code, forwarded, transient) in cases {
        let e = PortError::from(Status::new(code, "peer says no"));
        assert_eq!(e.is_transient(), transient, "{code:?}");
        assert_eq!(e.code(), forwarded, "{code:?}");
        let status = e.into_status();
        assert_eq!(status.code(), forwarded, "{code:?}");
        assert!(status.message().contains("peer says no"), "{code:?}");
        assert_eq!(violated_field(&status), None);
    }
    assert!(matches!(
        PortError::from(Status::resource_exhausted("busy")),
        PortError::Overloaded { .. }
    ));
}

// ---- a geo-router that records what its handler saw ----

/// What a handler saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    traceparent: Option<String>,
    grpc_timeout: Option<String>,
    trace: Option<TraceContext>,
}

#[derive(Default)]
struct RecordingRouter {
    seen: Mutex<Vec<Seen>>,
    /// Each route waits this long before answering.
    delay: Duration,
    /// What `ListDistricts` answers; `None`: `UNIMPLEMENTED`.
    directory: Option<v1::ListDistrictsResponse>,
}

fn seen<T>(request: &Request<T>) -> Seen {
    let header = |k: &str| {
        request
            .metadata()
            .get(k)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Seen {
        traceparent: header("traceparent"),
        grpc_timeout: header("grpc-timeout"),
        trace: trace::from_request(request),
    }
}

#[tonic::async_trait]
impl GeoRouter for RecordingRouter {
    async fn route(
        &self,
        request: Request<v1::RouteRequest>,
    ) -> Result<Response<v1::RouteResponse>, Status> {
        self.seen.lock().push(seen(&request));
        tokio::time::sleep(self.delay).await;
        let lat = request.get_ref().location.as_ref().unwrap().lat;
        if lat > 50.0 {
            return Err(invalid_argument("location", "more than 2 km off the map"));
        }
        // A reply without a district for a point on the equator: a broken peer.
        let district_id = if lat == 0.0 { "" } else { "nc-d07" };
        Ok(Response::new(v1::RouteResponse {
            district_id: district_id.into(),
            station_id: "nc-st2".into(),
            sub_bureau_id: "nancheng".into(),
            outside_map: false,
            distance_outside_m: 0.0,
        }))
    }

    async fn list_districts(
        &self,
        request: Request<v1::ListDistrictsRequest>,
    ) -> Result<Response<v1::ListDistrictsResponse>, Status> {
        self.seen.lock().push(seen(&request));
        self.directory
            .clone()
            .map(Response::new)
            .ok_or_else(|| Status::unimplemented("no directory in this test"))
    }
}

fn point(lat: f64) -> LatLng {
    LatLng::new(lat, 113.76).unwrap()
}

fn options(ms: u64) -> CallOptions {
    CallOptions::with_deadline(Duration::from_millis(ms))
}

async fn serve(
    router: Arc<RecordingRouter>,
) -> (tonic::transport::Channel, tokio::task::JoinHandle<()>) {
    let routes = tonic::service::Routes::new(GeoRouterServer::from_arc(router));
    serve_routes(routes, dispatch_proto::service_names::GEO_ROUTER).await
}

/// Serves `routes` (the service `name`) on a free loopback port: a lazy channel to it and the
/// server's task.
async fn serve_routes(
    routes: tonic::service::Routes,
    name: &'static str,
) -> (tonic::transport::Channel, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        dispatch_runtime::serve(listener, routes, &[name], std::future::pending())
            .await
            .unwrap();
    });
    let channel = dispatch_bus::ports::channel(&addr.to_string()).unwrap();
    (channel, server)
}

/// Serves `router` on a free loopback port: its address and the server's task.
async fn serve_router_at(router: Arc<RecordingRouter>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = tonic::service::Routes::new(GeoRouterServer::from_arc(router));
    let server = tokio::spawn(async move {
        dispatch_runtime::serve(
            listener,
            routes,
            &[dispatch_proto::service_names::GEO_ROUTER],
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    (addr.to_string(), server)
}

#[tokio::test]
async fn a_replica_list_spreads_calls_over_the_replicas() {
    let a = Arc::new(RecordingRouter::default());
    let b = Arc::new(RecordingRouter::default());
    let (addr_a, server_a) = serve_router_at(a.clone()).await;
    let (addr_b, server_b) = serve_router_at(b.clone()).await;
    let channel = dispatch_bus::ports::channel(&format!("{addr_a},{addr_b}")).unwrap();
    let client = RouterClient::grpc(channel, options(5_000));
    for _ in 0..40 {
        client.route(point(23.03)).await.unwrap();
    }
    let (seen_a, seen_b) = (a.seen.lock().len(), b.seen.lock().len());
    assert_eq!(seen_a + seen_b, 40);
    // Two choices at random among idle replicas: all 40 on one side has odds 2^-39.
    assert!(seen_a > 0 && seen_b > 0, "a {seen_a}, b {seen_b}");
    server_a.abort();
    server_b.abort();
}

#[tokio::test]
async fn a_replica_list_with_a_dead_replica_still_reaches_the_live_one() {
    let live = Arc::new(RecordingRouter::default());
    let (addr, server) = serve_router_at(live.clone()).await;
    // A port that was bound and released: nothing listens there.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let channel = dispatch_bus::ports::channel(&format!("{dead_addr},{addr}")).unwrap();
    let client = RouterClient::grpc(channel, options(5_000));
    let (mut ok, mut unavailable) = (0, 0);
    for _ in 0..20 {
        match client.route(point(23.03)).await {
            Ok(route) => {
                assert_eq!(route.district_id, "nc-d07");
                ok += 1;
            }
            Err(PortError::Unavailable { .. }) => unavailable += 1,
            Err(e) => panic!("only the dead replica's UNAVAILABLE may fail a call: {e:?}"),
        }
    }
    assert_eq!(live.seen.lock().len(), ok);
    assert!(ok > 0, "{ok} answered, {unavailable} unavailable");
    server.abort();
}

#[tokio::test]
async fn traceparent_and_grpc_timeout_reach_the_handler_alike_over_both_adapters() {
    let context = TraceContext::parse(TRACEPARENT).unwrap();
    let in_process = Arc::new(RecordingRouter::default());
    let over_grpc = Arc::new(RecordingRouter::default());
    let (channel, server) = serve(over_grpc.clone()).await;
    let clients = [
        RouterClient::in_process(in_process.clone(), options(1_500)),
        RouterClient::grpc(channel, options(1_500)),
    ];
    for client in &clients {
        let route = trace::scope(context, client.route(point(23.03)))
            .await
            .unwrap();
        assert_eq!(route.district_id, "nc-d07");
        // Outside a trace: no traceparent, still a deadline.
        client.route(point(23.03)).await.unwrap();
    }
    let expected = [
        Seen {
            traceparent: Some(TRACEPARENT.into()),
            // 1.5 s in tonic's most precise unit that fits 8 digits: microseconds.
            grpc_timeout: Some("1500000u".into()),
            trace: Some(context),
        },
        Seen {
            traceparent: None,
            grpc_timeout: Some("1500000u".into()),
            trace: None,
        },
    ];
    assert_eq!(*in_process.seen.lock(), expected);
    assert_eq!(*over_grpc.seen.lock(), expected);
    server.abort();
}

#[tokio::test]
async fn refusals_and_malformed_replies_are_typed_over_both_adapters() {
    let in_process = Arc::new(RecordingRouter::default());
    let (channel, server) = serve(Arc::new(RecordingRouter::default())).await;
    for client in [
        RouterClient::in_process(in_process, options(1_000)),
        RouterClient::grpc(channel, options(1_000)),
    ] {
        let far = client.route(point(60.0)).await.unwrap_err();
        assert_eq!(
            (far.code(), far.field()),
            (Code::InvalidArgument, Some("location"))
        );
        let broken = client.route(point(0.0)).await.unwrap_err();
        assert_eq!(
            broken,
            PortError::Internal {
                message: "geo-router answered a malformed route: district_id: is required".into()
            }
        );
    }
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_handler_slower_than_the_deadline_is_deadline_exceeded_in_process() {
    let slow = Arc::new(RecordingRouter {
        delay: Duration::from_secs(3),
        ..RecordingRouter::default()
    });
    let client = RouterClient::in_process(slow.clone(), options(2_000));
    let started = tokio::time::Instant::now();
    let e = client.route(point(23.03)).await.unwrap_err();
    assert_eq!(
        e,
        PortError::DeadlineExceeded {
            after: Some(Duration::from_secs(2)),
            message: String::new(),
        }
    );
    assert!(e.is_transient());
    assert_eq!(e.to_string(), "no answer within the deadline of 2000 ms");
    // Paused time: the client gave up exactly at its deadline, not after the handler's 3 s.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        slow.seen.lock()[0].grpc_timeout.as_deref(),
        Some("2000000u")
    );
}

// ---- the district port: placement and a fake behind `from_port` ----

fn routed(district_id: &str) -> Incident {
    let mut i = Incident::received(
        "inc-1".into(),
        "call-1".into(),
        Category::Theft,
        point(23.03),
        "wallet taken".into(),
        Timestamp(1_700_000_000_000),
    );
    i.district_id = district_id.into();
    i.transition(IncidentState::Routed, Timestamp(1_700_000_000_250))
        .unwrap();
    i
}

/// A district node that queues whatever it gets and records each call.
#[derive(Default)]
struct QueueingDistrict {
    calls: Mutex<Vec<Call>>,
}

#[tonic::async_trait]
impl DistrictPort for QueueingDistrict {
    async fn submit(&self, call: &Call, mut incident: Incident) -> Result<Incident> {
        self.calls.lock().push(*call);
        incident
            .transition(IncidentState::Queued, Timestamp(1_700_000_000_300))
            .map_err(|e| PortError::Internal {
                message: e.to_string(),
            })?;
        Ok(incident)
    }
}

#[test]
fn single_node_placement_refuses_an_unknown_district_naming_the_field() {
    use dispatch_bus::ports::Placement;
    let placement = SingleNode::new("node-a", ["nc-d07", "nc-d08"]);
    assert_eq!(placement.owner("nc-d08").unwrap(), "node-a");
    for unknown in ["nc-d99", ""] {
        let e = placement.owner(unknown).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            (Code::NotFound, Some("district_id")),
            "{unknown:?}"
        );
        assert!(!e.is_transient());
        assert_eq!(
            violated_field(&e.into_status()).as_deref(),
            Some("district_id")
        );
    }
}

#[tokio::test]
async fn the_district_client_asks_placement_then_submits_under_deadline_and_trace() {
    let node = Arc::new(QueueingDistrict::default());
    let client = DistrictClient::from_port(
        node.clone(),
        SingleNode::new("node-a", ["nc-d07"]),
        options(2_000),
    );
    let context = TraceContext::new_root();
    let queued = trace::scope(context, client.submit(routed("nc-d07")))
        .await
        .unwrap();
    assert_eq!(queued.state, IncidentState::Queued);
    assert_eq!(
        *node.calls.lock(),
        [Call {
            deadline: Duration::from_secs(2),
            trace: Some(context),
        }]
    );
    let e = client.submit(routed("nc-d99")).await.unwrap_err();
    assert_eq!(e.field(), Some("district_id"));
    assert_eq!(
        node.calls.lock().len(),
        1,
        "an unknown district is never sent"
    );
}

/// A case squad answering one fixed case to every `OpenCase`.
struct FixedSquad(v1::Case);

#[tonic::async_trait]
impl v1::case_squad_server::CaseSquad for FixedSquad {
    async fn open_case(
        &self,
        _: Request<v1::OpenCaseRequest>,
    ) -> Result<Response<v1::Case>, Status> {
        Ok(Response::new(self.0.clone()))
    }
    async fn get_case(&self, _: Request<v1::GetCaseRequest>) -> Result<Response<v1::Case>, Status> {
        Err(Status::unimplemented("not used"))
    }
    async fn list_cases(
        &self,
        _: Request<v1::ListCasesRequest>,
    ) -> Result<Response<v1::ListCasesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

#[tokio::test]
async fn a_case_reply_without_a_kind_is_internal_naming_the_field() {
    let mut wire = v1::Case {
        case_id: "case-inc-1".into(),
        incident_id: "inc-1".into(),
        station_id: "nc-st2".into(),
        district_id: "nc-d07".into(),
        kind: v1::CaseKind::Criminal as i32,
        investigator_id: "nc-st2-i01".into(),
        opened_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    };
    let ok = CaseClient::in_process(Arc::new(FixedSquad(wire.clone())), options(1_000));
    let case = ok.open_case(routed("nc-d07")).await.unwrap();
    assert_eq!(
        (case.kind, case.opened_at, case.investigator_id.as_str()),
        (
            CaseKind::Criminal,
            Timestamp(1_700_000_000_000),
            "nc-st2-i01"
        )
    );
    wire.kind = 0;
    let bad = CaseClient::in_process(Arc::new(FixedSquad(wire)), options(1_000));
    let e = bad.open_case(routed("nc-d07")).await.unwrap_err();
    assert_eq!(
        e,
        PortError::Internal {
            message: "case squad answered a malformed case: kind: must be CASE_KIND_CRIMINAL or CASE_KIND_ADMINISTRATIVE, got 0".into()
        }
    );
}

// ---- the directory over both adapters ----

/// A one-station, one-district directory on the wire.
fn wire_directory() -> v1::ListDistrictsResponse {
    v1::ListDistrictsResponse {
        map_name: "test".into(),
        sub_bureaus: vec![v1::SubBureau {
            sub_bureau_id: "nancheng".into(),
            name: "南城街道".into(),
            population: 332_000,
            area_m2: 5.7e7,
        }],
        stations: vec![v1::Station {
            station_id: "nc-st2".into(),
            sub_bureau_id: "nancheng".into(),
            central_district_id: "nc-d07".into(),
            location: Some(v1::LatLng {
                lat: 23.03,
                lon: 113.76,
            }),
        }],
        districts: vec![v1::District {
            district_id: "nc-d07".into(),
            station_id: "nc-st2".into(),
            sub_bureau_id: "nancheng".into(),
            central: true,
            center: Some(v1::LatLng {
                lat: 23.03,
                lon: 113.76,
            }),
            area_m2: 2.5e6,
            adjacent_district_ids: vec!["nc-d08".into()],
        }],
    }
}

#[tokio::test]
async fn the_directory_arrives_in_domain_terms_and_a_malformed_one_is_internal() {
    let router = |directory| {
        Arc::new(RecordingRouter {
            directory: Some(directory),
            ..RecordingRouter::default()
        })
    };
    let mut broken = wire_directory();
    broken.districts[0].district_id.clear();
    let (good_channel, good_server) = serve(router(wire_directory())).await;
    let (broken_channel, broken_server) = serve(router(broken.clone())).await;
    let clients = [
        (
            RouterClient::in_process(router(wire_directory()), options(1_000)),
            RouterClient::in_process(router(broken), options(1_000)),
        ),
        (
            RouterClient::grpc(good_channel, options(1_000)),
            RouterClient::grpc(broken_channel, options(1_000)),
        ),
    ];
    for (good, broken) in clients {
        let directory = good.list_districts().await.unwrap();
        assert_eq!(
            directory,
            Directory {
                map_name: "test".into(),
                sub_bureaus: vec![SubBureauEntry {
                    id: "nancheng".into(),
                    name: "南城街道".into(),
                    population: 332_000,
                    area_m2: 5.7e7,
                }],
                stations: vec![StationEntry {
                    id: "nc-st2".into(),
                    sub_bureau_id: "nancheng".into(),
                    central_district_id: "nc-d07".into(),
                    location: point(23.03),
                }],
                districts: vec![DistrictEntry {
                    id: "nc-d07".into(),
                    station_id: "nc-st2".into(),
                    sub_bureau_id: "nancheng".into(),
                    central: true,
                    center: point(23.03),
                    area_m2: 2.5e6,
                    adjacent: vec!["nc-d08".into()],
                }],
            }
        );
        // Placement takes it as it is.
        let placement = SingleNode::from_directory(&directory);
        assert_eq!(
            dispatch_bus::ports::Placement::owner(&placement, "nc-d07").unwrap(),
            SingleNode::NODE
        );
        assert_eq!(
            broken.list_districts().await.unwrap_err(),
            PortError::Internal {
                message: "geo-router answered a malformed directory: districts[0].district_id: is required"
                    .into()
            }
        );
    }
    good_server.abort();
    broken_server.abort();
}

// ---- the notification port over both adapters ----

type WireNotices = Pin<Box<dyn Stream<Item = Result<v1::Notice, Status>> + Send>>;

/// A notification service that records what its handlers saw: `Publish` answers cursors
/// `9-1`, `9-2`, ... (none with `short_reply`), `Subscribe` streams `notices` and then ends.
#[derive(Default)]
struct RecordingNotification {
    seen: Mutex<Vec<Seen>>,
    published: Mutex<Vec<v1::PublishRequest>>,
    subscriptions: Mutex<Vec<v1::SubscribeRequest>>,
    notices: Vec<v1::Notice>,
    short_reply: bool,
}

#[tonic::async_trait]
impl Notification for RecordingNotification {
    type SubscribeStream = WireNotices;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<WireNotices>, Status> {
        self.seen.lock().push(seen(&request));
        self.subscriptions.lock().push(request.into_inner());
        let notices = self.notices.clone().into_iter().map(Ok);
        Ok(Response::new(futures::stream::iter(notices).boxed()))
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        self.seen.lock().push(seen(&request));
        let n = request.get_ref().publications.len() as u64;
        if request.get_ref().publications.iter().any(|p| {
            p.audience.as_ref().and_then(|a| a.target.as_ref())
                == Some(&v1::audience::Target::OfficerId("nobody".into()))
        }) {
            return Err(dispatch_proto::status::invalid_argument(
                "publications[0].audience.officer_id",
                "is on no district's roster",
            ));
        }
        self.published.lock().push(request.into_inner());
        let cursors = if self.short_reply {
            vec![]
        } else {
            (1..=n).map(|i| format!("9-{i}")).collect()
        };
        Ok(Response::new(v1::PublishResponse {
            seqs: (1..=n).collect(),
            cursors,
        }))
    }
}

fn order() -> DispatchOrder {
    DispatchOrder {
        dispatch_id: "nc-d07/inc-1/1".into(),
        incident_id: "inc-1".into(),
        officer_id: "nc-d07-o03".into(),
        district_id: "nc-d07".into(),
        priority: Priority::P2,
        category: Category::Theft,
        location: point(23.03),
        description: "wallet taken".into(),
        eta_s: 95.0,
        dispatched_at: Timestamp(1_700_000_060_000),
    }
}

/// The stream the fake service sends: an update, a heartbeat, three notices this side cannot
/// read (no body, a bad cursor, a bad timestamp), then an order.
fn wire_notices() -> Vec<v1::Notice> {
    let published_at = Some(prost_types::Timestamp {
        seconds: 1_700_000_070,
        nanos: 5_000_000,
    });
    let update = v1::Notice {
        seq: 2,
        published_at,
        body: Some(v1::NoticeBody {
            kind: Some(Kind::IncidentUpdate(
                dispatch_bus::convert::incident_to_wire(&routed("nc-d07")),
            )),
        }),
        cursor: "9-2".into(),
    };
    let heartbeat = v1::Notice {
        seq: 2,
        published_at: None,
        body: Some(v1::NoticeBody {
            kind: Some(Kind::Heartbeat(v1::Heartbeat {})),
        }),
        cursor: "9-2".into(),
    };
    let order = v1::Notice {
        seq: 3,
        body: Some(v1::NoticeBody {
            kind: Some(Kind::DispatchOrder(dispatch_bus::convert::order_to_wire(
                &order(),
            ))),
        }),
        cursor: "9-3".into(),
        ..update.clone()
    };
    vec![
        update.clone(),
        heartbeat,
        v1::Notice {
            body: None,
            ..update.clone()
        },
        v1::Notice {
            cursor: "9:2".into(),
            ..update.clone()
        },
        v1::Notice {
            published_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_070,
                nanos: -5,
            }),
            ..update
        },
        order,
    ]
}

#[tokio::test]
async fn the_notify_port_speaks_domain_terms_with_deadline_and_trace_over_both_adapters() {
    let context = TraceContext::parse(TRACEPARENT).unwrap();
    let service = || {
        Arc::new(RecordingNotification {
            notices: wire_notices(),
            ..RecordingNotification::default()
        })
    };
    let (in_process, over_grpc) = (service(), service());
    let (channel, server) = serve_routes(
        tonic::service::Routes::new(NotificationServer::from_arc(over_grpc.clone())),
        dispatch_proto::service_names::NOTIFICATION,
    )
    .await;
    let clients = [
        (
            NotifyClient::in_process(in_process.clone(), options(1_500)),
            in_process,
        ),
        (NotifyClient::grpc(channel, options(1_500)), over_grpc),
    ];
    let cursor = |position| Cursor { epoch: 9, position };
    for (client, service) in clients {
        let publications = vec![
            Publication {
                audience: AudienceKey::Officer("nc-d07-o03".into()),
                body: NoticeBody::DispatchOrder(order()),
                id: Some("nc-d07/inc-1/1".into()),
            },
            Publication {
                audience: AudienceKey::CommandCenter,
                body: NoticeBody::IncidentUpdate(Box::new(routed("nc-d07"))),
                id: None,
            },
        ];
        let cursors = trace::scope(context, client.publish(publications))
            .await
            .unwrap();
        assert_eq!(cursors, [cursor(1), cursor(2)]);
        let sent = service.published.lock()[0].clone();
        let targets: Vec<_> = sent
            .publications
            .iter()
            .map(|p| p.audience.clone().unwrap().target.unwrap())
            .collect();
        assert_eq!(
            targets,
            [
                v1::audience::Target::OfficerId("nc-d07-o03".into()),
                v1::audience::Target::Role(v1::Role::CommandCenter as i32)
            ]
        );
        let ids: Vec<&str> = sent
            .publications
            .iter()
            .map(|p| p.publication_id.as_str())
            .collect();
        assert_eq!(ids, ["nc-d07/inc-1/1", ""]);
        match sent.publications[0]
            .body
            .as_ref()
            .and_then(|b| b.kind.as_ref())
        {
            Some(Kind::DispatchOrder(o)) => {
                assert_eq!((o.dispatch_id.as_str(), o.eta_s), ("nc-d07/inc-1/1", 95.0))
            }
            other => panic!("expected an order, got {other:?}"),
        }

        let subscription = Subscription {
            audience: AudienceKey::CommandCenter,
            resume_after: Some(cursor(1)),
        };
        let stream = trace::scope(context, client.subscribe(subscription))
            .await
            .unwrap();
        let items: Vec<_> = stream.collect().await;
        assert_eq!(
            service.subscriptions.lock()[0],
            v1::SubscribeRequest {
                audience: Some(v1::Audience {
                    target: Some(v1::audience::Target::Role(v1::Role::CommandCenter as i32)),
                }),
                resume_after: "9-1".into(),
                from_latest: false,
            }
        );
        let published_at = Timestamp(1_700_000_070_005);
        let malformed = |field_and_rule: &str| -> Result<Notice> {
            Err(PortError::Internal {
                message: format!("notification answered a malformed notice: {field_and_rule}"),
            })
        };
        assert_eq!(
            items,
            [
                Ok(Notice::Published(PublishedNotice {
                    seq: 2,
                    cursor: cursor(2),
                    published_at,
                    body: NoticeBody::IncidentUpdate(Box::new(routed("nc-d07"))),
                })),
                Ok(Notice::Heartbeat {
                    after: Some(cursor(2))
                }),
                malformed("body: is required"),
                malformed(
                    "cursor: must be the cursor of a notice as received (e.g. \"1700000000000000-42\"), got \"9:2\""
                ),
                malformed("published_at.nanos: must be within 0..=999999999, got -5"),
                Ok(Notice::Published(PublishedNotice {
                    seq: 3,
                    cursor: cursor(3),
                    published_at,
                    body: NoticeBody::DispatchOrder(order()),
                })),
            ]
        );
        // Publish is a unary call with its deadline; a subscription carries the trace only
        // (a `grpc-timeout` would end the stream at the deadline).
        assert_eq!(
            *service.seen.lock(),
            [
                Seen {
                    traceparent: Some(TRACEPARENT.into()),
                    grpc_timeout: Some("1500000u".into()),
                    trace: Some(context),
                },
                Seen {
                    traceparent: Some(TRACEPARENT.into()),
                    grpc_timeout: None,
                    trace: Some(context),
                },
            ]
        );
    }
    server.abort();
}

#[tokio::test]
async fn publish_refusals_and_malformed_replies_are_typed_over_both_adapters() {
    let short = Arc::new(RecordingNotification {
        short_reply: true,
        ..RecordingNotification::default()
    });
    let (channel, server) = serve_routes(
        tonic::service::Routes::new(NotificationServer::from_arc(short.clone())),
        dispatch_proto::service_names::NOTIFICATION,
    )
    .await;
    let update = || Publication {
        audience: AudienceKey::CommandCenter,
        body: NoticeBody::IncidentUpdate(Box::new(routed("nc-d07"))),
        id: None,
    };
    for client in [
        NotifyClient::in_process(short.clone(), options(1_000)),
        NotifyClient::grpc(channel, options(1_000)),
    ] {
        let refused = client
            .publish(vec![Publication {
                audience: AudienceKey::Officer("nobody".into()),
                ..update()
            }])
            .await
            .unwrap_err();
        assert_eq!(
            (refused.code(), refused.field()),
            (
                Code::InvalidArgument,
                Some("publications[0].audience.officer_id")
            )
        );
        assert_eq!(
            client.publish(vec![update(), update()]).await.unwrap_err(),
            PortError::Internal {
                message: "notification answered a malformed publish reply: cursors: must hold one cursor per publication sent (2), got 0".into()
            }
        );
    }
    server.abort();
}

// ---- Following a district's owner across nodes ----

/// A placement whose answer a test moves, counting the questions.
#[derive(Default)]
struct MovingPlacement {
    owner: Mutex<String>,
    asked: Mutex<usize>,
}

impl dispatch_bus::ports::Placement for MovingPlacement {
    fn owner(&self, district_id: &str) -> Result<String> {
        *self.asked.lock() += 1;
        if district_id != "nc-d07" {
            return Err(PortError::Refused {
                code: Code::NotFound,
                field: Some("district_id".into()),
                message: format!("district_id: {district_id:?} is not a district of this cluster"),
            });
        }
        Ok(self.owner.lock().clone())
    }
}

/// A node that no longer owns nc-d07: answers what a district node answers then
/// (`UNAVAILABLE` naming the owner) and, when given a placement, moves it to `to` as the
/// placement's release announcement would.
struct FormerOwner {
    calls: Mutex<Vec<Call>>,
    moves: Option<(Arc<MovingPlacement>, &'static str)>,
}

#[tonic::async_trait]
impl DistrictPort for FormerOwner {
    async fn submit(&self, call: &Call, _incident: Incident) -> Result<Incident> {
        self.calls.lock().push(*call);
        if let Some((placement, to)) = &self.moves {
            *placement.owner.lock() = (*to).to_owned();
        }
        Err(PortError::from(Status::unavailable(
            "district nc-d07 is not owned by this node; its owner is node-b",
        )))
    }
}

fn nodes(ports: [(&str, Arc<dyn DistrictPort>); 2]) -> Arc<dyn dispatch_bus::ports::DistrictNodes> {
    Arc::new(
        ports
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect::<std::collections::HashMap<_, _>>(),
    )
}

#[tokio::test(start_paused = true)]
async fn across_nodes_a_submit_answered_not_owner_is_retried_at_the_new_owner() {
    let placement = Arc::new(MovingPlacement::default());
    *placement.owner.lock() = "node-a".into();
    let a = Arc::new(FormerOwner {
        calls: Mutex::default(),
        moves: Some((placement.clone(), "node-b")),
    });
    let b = Arc::new(QueueingDistrict::default());
    let client = DistrictClient::with_placement(
        placement.clone(),
        nodes([("node-a", a.clone()), ("node-b", b.clone())]),
        options(2_000),
    );
    let queued = client.submit(routed("nc-d07")).await.unwrap();
    assert_eq!(queued.state, IncidentState::Queued);
    assert_eq!(a.calls.lock().len(), 1);
    assert_eq!(b.calls.lock().len(), 1, "submitted once at the new owner");
    assert_eq!(
        *placement.asked.lock(),
        2,
        "the owner resolved again for the retry"
    );
    // The retry is told the time left: the deadline less the backoff (at least 25 ms).
    let first = a.calls.lock()[0].deadline;
    let retry = b.calls.lock()[0].deadline;
    assert_eq!(first, Duration::from_secs(2));
    assert!(retry <= first - DistrictClient::RETRY_MIN, "{retry:?}");

    // A district the cluster does not have is refused at once, never sent nor retried.
    let e = client.submit(routed("nc-d99")).await.unwrap_err();
    assert_eq!((e.code(), e.field()), (Code::NotFound, Some("district_id")));
    assert_eq!(*placement.asked.lock(), 3);
    assert_eq!((a.calls.lock().len(), b.calls.lock().len()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn across_nodes_an_owner_that_never_answers_is_retried_until_the_deadline() {
    let placement = Arc::new(MovingPlacement::default());
    *placement.owner.lock() = "node-a".into();
    let a = Arc::new(FormerOwner {
        calls: Mutex::default(),
        moves: None,
    });
    let client = DistrictClient::with_placement(
        placement,
        nodes([
            ("node-a", a.clone()),
            ("node-b", Arc::new(QueueingDistrict::default())),
        ]),
        options(2_000),
    );
    let started = tokio::time::Instant::now();
    let e = client.submit(routed("nc-d07")).await.unwrap_err();
    assert_eq!(
        e,
        PortError::DeadlineExceeded {
            after: Some(Duration::from_secs(2)),
            message: String::new()
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // Pauses of at most 500 ms over 2 s: at least 4 tries.
    assert!(a.calls.lock().len() >= 4, "{}", a.calls.lock().len());
}

#[tokio::test(start_paused = true)]
async fn one_node_keeps_one_try_per_submit() {
    let a = Arc::new(FormerOwner {
        calls: Mutex::default(),
        moves: None,
    });
    let client = DistrictClient::from_port(
        a.clone(),
        SingleNode::new("node-a", ["nc-d07"]),
        options(2_000),
    );
    let e = client.submit(routed("nc-d07")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(a.calls.lock().len(), 1);
}
