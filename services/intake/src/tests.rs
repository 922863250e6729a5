//! Service tests with fake ports: a router answering one fixed district (or `InvalidArgument`
//! on `location` for points north of 50°), and a district recording every submit and answering
//! the incident `QUEUED` with its revision plus one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dispatch_bus::convert::{incident_from_wire, incident_to_wire, timestamp_to_wire};
use dispatch_bus::feed;
use dispatch_bus::ports::{
    AudienceKey, Call, CallOptions, Cursor, Directory, DistrictClient, DistrictPort, Notice,
    NoticeBody, NoticeStream, NotifyClient, NotifyPort, PortError, Publication, PublishedNotice,
    Route, RouterClient, RouterPort, SingleNode, Subscription,
};
use dispatch_bus::trace::TraceContext;
use dispatch_core::district::DispatchOrder;
use dispatch_core::{Incident, IncidentState, LatLng, ManualClock, Timestamp};
use dispatch_proto::status::{invalid_argument, violated_field};
use dispatch_proto::v1;
use dispatch_proto::v1::notice_body::Kind;
use futures::StreamExt;
use parking_lot::Mutex;
use tonic::{Code, Status};

use crate::{IntakeConfig, IntakeService, MemoryRecords};

/// 2023-11-14T22:13:20Z, in ms.
const T0: i64 = 1_700_000_000_000;

/// An edit of a request.
type Change = Box<dyn Fn(&mut v1::ReportIncidentRequest)>;

/// What one subscription answers: an error, or the items of a stream that then ends.
type Script = Result<Vec<Result<Notice, Status>>, Status>;

struct FakeRouter {
    clock: ManualClock,
    routes: AtomicUsize,
    /// The call of each route.
    calls: Mutex<Vec<Call>>,
    /// When set, every route waits here: two concurrent reports both get past the first
    /// duplicate check before either inserts.
    barrier: Option<tokio::sync::Barrier>,
}

#[tonic::async_trait]
impl RouterPort for FakeRouter {
    async fn route(&self, call: &Call, location: LatLng) -> Result<Route, PortError> {
        self.routes.fetch_add(1, Ordering::SeqCst);
        self.calls.lock().push(*call);
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        self.clock.advance(0.25);
        let lat = location.lat;
        if lat > 50.0 {
            return Err(invalid_argument(
                "location",
                format!("lat {lat} is more than 2 km outside the map"),
            )
            .into());
        }
        Ok(Route {
            district_id: "nc-d07".into(),
            station_id: "nc-st2".into(),
            sub_bureau_id: "nancheng".into(),
            outside_map: false,
            distance_outside_m: 0.0,
        })
    }

    async fn list_districts(&self, _: &Call) -> Result<Directory, PortError> {
        Err(Status::unimplemented("not needed by intake").into())
    }
}

struct FakeDistrict {
    clock: ManualClock,
    /// Every submit attempt, including the failed ones, as sent on the wire.
    submits: Mutex<Vec<v1::Incident>>,
    /// The call of each submit.
    calls: Mutex<Vec<Call>>,
    down: AtomicBool,
    /// Submits are refused with `FailedPrecondition` (a district that does not take this
    /// incident, e.g. after a map change moved it elsewhere).
    refuse: AtomicBool,
    /// Submits wait here until it is true (a paused or slow district).
    open: tokio::sync::watch::Sender<bool>,
}

#[tonic::async_trait]
impl DistrictPort for FakeDistrict {
    async fn submit(&self, call: &Call, mut incident: Incident) -> Result<Incident, PortError> {
        self.submits.lock().push(incident_to_wire(&incident));
        self.calls.lock().push(*call);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("district nc-d07 unreachable").into());
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(dispatch_proto::status::with_field(
                Code::FailedPrecondition,
                "incident.district_id",
                "district nc-d07 is not served by this node",
            )
            .into());
        }
        tokio::task::yield_now().await;
        self.clock.advance(0.5);
        let now = dispatch_core::Clock::now(&self.clock);
        incident
            .transition(IncidentState::Queued, now)
            .map_err(|e| PortError::Internal {
                message: e.to_string(),
            })?;
        Ok(incident)
    }
}

fn options() -> CallOptions {
    CallOptions::with_deadline(Duration::from_secs(5))
}

struct Rig {
    svc: Arc<IntakeService>,
    router: Arc<FakeRouter>,
    district: Arc<FakeDistrict>,
    clock: ManualClock,
}

impl Rig {
    fn new(barrier: Option<usize>) -> Self {
        let clock = ManualClock::at(Timestamp(T0));
        let router = Arc::new(FakeRouter {
            clock: clock.clone(),
            routes: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            barrier: barrier.map(tokio::sync::Barrier::new),
        });
        let district = Arc::new(FakeDistrict {
            clock: clock.clone(),
            submits: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            open: tokio::sync::watch::channel(true).0,
        });
        let svc = Arc::new(IntakeService::new(
            RouterClient::from_port(router.clone(), options()),
            DistrictClient::from_port(
                district.clone(),
                SingleNode::new("district", ["nc-d07"]),
                options(),
            ),
            Arc::new(MemoryRecords::new()),
            Arc::new(clock.clone()),
            IntakeConfig::default(),
        ));
        Self {
            svc,
            router,
            district,
            clock,
        }
    }

    fn submits(&self) -> usize {
        self.district.submits.lock().len()
    }

    fn routes(&self) -> usize {
        self.router.routes.load(Ordering::SeqCst)
    }
}

fn call(call_id: &str) -> v1::ReportIncidentRequest {
    v1::ReportIncidentRequest {
        call_id: call_id.into(),
        category: v1::IncidentCategory::ViolentCrime as i32,
        location: Some(v1::LatLng {
            lat: 23.03,
            lon: 113.76,
        }),
        description: "robbery at the bus stop".into(),
    }
}

/// `inc-` and a ULID: 26 characters of Crockford base32.
fn is_incident_id(id: &str) -> bool {
    id.strip_prefix("inc-")
        .is_some_and(|u| u.len() == 26 && u.parse::<ulid::Ulid>().is_ok())
}

fn at_ms(ms: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp_to_wire(Timestamp(ms)))
}

#[tokio::test]
async fn a_call_is_routed_submitted_and_answered_with_its_times() {
    let rig = Rig::new(None);
    let resp = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(!resp.duplicate);
    let inc = resp.incident.unwrap();
    assert!(is_incident_id(&inc.incident_id), "{}", inc.incident_id);
    assert_eq!(inc.call_id, "c-1");
    assert_eq!(inc.priority, v1::Priority::P1 as i32, "violent crime is P1");
    assert_eq!(inc.state, v1::IncidentState::Queued as i32);
    // ROUTED is revision 1, the district's QUEUED revision 2.
    assert_eq!(inc.revision, 2);
    assert_eq!(
        (
            inc.district_id.as_str(),
            inc.station_id.as_str(),
            inc.sub_bureau_id.as_str()
        ),
        ("nc-d07", "nc-st2", "nancheng")
    );
    let times = inc.times.unwrap();
    // Received at T0; the router takes 250 ms, the district 500 ms more.
    assert_eq!(times.received_at, at_ms(T0));
    assert_eq!(times.routed_at, at_ms(T0 + 250));
    assert_eq!(times.queued_at, at_ms(T0 + 750));
    assert_eq!(times.dispatched_at, None);
    // The district got the ROUTED incident.
    let submitted = rig.district.submits.lock()[0].clone();
    assert_eq!(
        (submitted.state, submitted.revision),
        (v1::IncidentState::Routed as i32, 1)
    );
    assert_eq!(rig.svc.incident(&inc.incident_id).await.unwrap(), inc);
    let second = rig
        .svc
        .report(&call("c-2"))
        .await
        .unwrap()
        .incident
        .unwrap()
        .incident_id;
    assert!(second > inc.incident_id, "ids are time-ordered: {second}");
}

#[tokio::test]
async fn every_broken_rule_is_invalid_argument_on_its_field_and_touches_nothing() {
    let rig = Rig::new(None);
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|r| r.call_id.clear()), "call_id"),
        (Box::new(|r| r.call_id = "x".repeat(65)), "call_id"),
        (Box::new(|r| r.call_id = "c 1".into()), "call_id"),
        (Box::new(|r| r.category = 0), "category"),
        (Box::new(|r| r.category = 42), "category"),
        (Box::new(|r| r.location = None), "location"),
        (
            Box::new(|r| {
                r.location = Some(v1::LatLng {
                    lat: -91.0,
                    lon: 0.0,
                })
            }),
            "location.lat",
        ),
        (
            Box::new(|r| {
                r.location = Some(v1::LatLng {
                    lat: 0.0,
                    lon: 181.0,
                })
            }),
            "location.lon",
        ),
        (
            Box::new(|r| r.description = "a".repeat(1_001)),
            "description",
        ),
    ];
    for (change, field) in cases {
        let mut r = call("c-1");
        change(&mut r);
        let status = Status::from(rig.svc.report(&r).await.unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert_eq!(violated_field(&status).as_deref(), Some(field));
    }
    assert_eq!((rig.routes(), rig.submits()), (0, 0));
}

#[tokio::test]
async fn a_point_far_off_the_map_is_the_routers_invalid_argument_and_creates_nothing() {
    let rig = Rig::new(None);
    let mut far = call("c-far");
    far.location = Some(v1::LatLng {
        lat: 60.0,
        lon: 113.0,
    });
    let status = Status::from(rig.svc.report(&far).await.unwrap_err());
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&status).as_deref(), Some("location"));
    assert_eq!(rig.submits(), 0);
    // Nothing was recorded for it.
    let next = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(!next.duplicate);
    assert_eq!(rig.svc.records().len().await.unwrap(), 1);
}

#[tokio::test]
async fn the_same_call_twice_is_one_incident_and_one_submit() {
    let rig = Rig::new(None);
    let first = rig.svc.report(&call("c-1")).await.unwrap();
    rig.clock.advance(30.0);
    let second = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(second.incident, first.incident);
    // Each report is routed (a repeat answers the stored incident, not the new route); one
    // submit.
    assert_eq!((rig.routes(), rig.submits()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_make_one_incident_and_one_submit() {
    let rig = Rig::new(Some(2));
    let (a, b) = (rig.svc.clone(), rig.svc.clone());
    let ta = tokio::spawn(async move { a.report(&call("c-race")).await });
    let tb = tokio::spawn(async move { b.report(&call("c-race")).await });
    let ra = ta.await.unwrap().unwrap();
    let rb = tb.await.unwrap().unwrap();
    // The barrier proves both got past the first duplicate check and routed.
    assert_eq!(rig.routes(), 2);
    assert_eq!(rig.submits(), 1);
    let ids = (
        ra.incident.unwrap().incident_id,
        rb.incident.unwrap().incident_id,
    );
    assert_eq!(ids.0, ids.1);
    assert_eq!(rig.svc.records().len().await.unwrap(), 1);
    assert_eq!(
        [ra.duplicate, rb.duplicate].iter().filter(|d| !**d).count(),
        1
    );
}

#[tokio::test]
async fn a_reused_call_id_with_other_content_is_already_exists() {
    let rig = Rig::new(None);
    let first = rig.svc.report(&call("c-1")).await.unwrap();
    let id = first.incident.unwrap().incident_id;
    let changes: Vec<(Change, &str)> = vec![
        (
            Box::new(|r| r.category = v1::IncidentCategory::Noise as i32),
            "category",
        ),
        (
            Box::new(|r| {
                r.location = Some(v1::LatLng {
                    lat: 23.04,
                    lon: 113.76,
                })
            }),
            "location",
        ),
        (
            Box::new(|r| r.description.push_str(", two suspects")),
            "description",
        ),
    ];
    for (change, differs) in changes {
        let mut r = call("c-1");
        change(&mut r);
        let status = Status::from(rig.svc.report(&r).await.unwrap_err());
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            format!(
                "call_id \"c-1\" was already reported as incident {id} with a different {differs}"
            )
        );
    }
    assert_eq!(rig.submits(), 1);
}

#[tokio::test]
async fn a_failed_submit_leaves_the_incident_routed_and_a_retry_resubmits_it_once() {
    let rig = Rig::new(None);
    rig.district.down.store(true, Ordering::SeqCst);
    let status = Status::from(rig.svc.report(&call("c-1")).await.unwrap_err());
    assert_eq!(status.code(), Code::Unavailable);
    let id = rig.district.submits.lock()[0].incident_id.clone();
    let stored = rig.svc.incident(&id).await.unwrap();
    assert_eq!(
        (stored.state, stored.revision),
        (v1::IncidentState::Routed as i32, 1)
    );

    rig.district.down.store(false, Ordering::SeqCst);
    let retry = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(retry.duplicate);
    let inc = retry.incident.unwrap();
    assert_eq!(
        (inc.incident_id.as_str(), inc.state, inc.revision),
        (id.as_str(), v1::IncidentState::Queued as i32, 2)
    );
    // One failed attempt, one resubmit, and no submit for a third report of a queued incident.
    rig.svc.report(&call("c-1")).await.unwrap();
    assert_eq!((rig.routes(), rig.submits()), (3, 2));
}

#[tokio::test]
async fn a_report_dropped_mid_hand_off_is_still_handed_off_and_its_retry_is_a_duplicate() {
    // The fault: a platform whose deadline passed while the district was paused left the call
    // claimed but never handed over, and every retry answered `duplicate` with state ROUTED.
    let rig = Rig::new(None);
    rig.district.open.send_replace(false);
    let gone = tokio::time::timeout(Duration::from_millis(50), rig.svc.report(&call("c-1"))).await;
    assert!(
        gone.is_err(),
        "the caller gave up while the district was paused"
    );
    assert_eq!(rig.submits(), 1, "the submit was in flight");
    rig.district.open.send_replace(true);
    let id = rig.district.submits.lock()[0].incident_id.clone();
    let svc = rig.svc.clone();
    let queued = v1::IncidentState::Queued as i32;
    eventually("the detached hand-off finished", || {
        let svc = svc.clone();
        let id = id.clone();
        async move { svc.incident(&id).await.is_ok_and(|i| i.state == queued) }
    })
    .await;
    let retry = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(retry.duplicate);
    let inc = retry.incident.unwrap();
    assert_eq!((inc.incident_id, inc.state), (id, queued));
    assert_eq!(rig.submits(), 1, "no second submit");
}

#[tokio::test]
async fn the_sweeper_hands_off_an_incident_whose_district_was_down_without_a_redial() {
    let rig = Rig::new(None);
    rig.district.down.store(true, Ordering::SeqCst);
    let status = Status::from(rig.svc.report(&call("c-1")).await.unwrap_err());
    assert_eq!(status.code(), Code::Unavailable);
    // Still down: the sweep tries, fails, and leaves it for the next pass.
    assert_eq!(rig.svc.sweep().await.unwrap(), 0);
    assert_eq!(rig.submits(), 2);
    rig.district.down.store(false, Ordering::SeqCst);
    assert_eq!(rig.svc.sweep().await.unwrap(), 1);
    let id = rig.district.submits.lock()[0].incident_id.clone();
    let stored = rig.svc.incident(&id).await.unwrap();
    assert_eq!(stored.state, v1::IncidentState::Queued as i32);
    assert_eq!(rig.svc.sweep().await.unwrap(), 0, "handed off once");
    assert_eq!(rig.submits(), 3);
}

/// A district that refuses an incident (not worth retrying at once) neither loses the call nor
/// hides it: the platform gets the refusal with its code and field, the record stays `ROUTED`,
/// and every sweep offers it again, so it is dispatched once the cause is fixed.
#[tokio::test]
async fn a_refused_hand_off_is_told_to_the_platform_kept_and_offered_again_by_the_sweeper() {
    let rig = Rig::new(None);
    rig.district.refuse.store(true, Ordering::SeqCst);
    let status = Status::from(rig.svc.report(&call("c-1")).await.unwrap_err());
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "incident.district_id: district nc-d07 is not served by this node"
    );
    let id = rig.district.submits.lock()[0].incident_id.clone();
    let kept = rig.svc.incident(&id).await.unwrap();
    assert_eq!(kept.state, v1::IncidentState::Routed as i32);
    // Still refused: tried again at every sweep, never dropped.
    assert_eq!(rig.svc.sweep().await.unwrap(), 0);
    assert_eq!(rig.svc.sweep().await.unwrap(), 0);
    assert_eq!(rig.submits(), 3);
    rig.district.refuse.store(false, Ordering::SeqCst);
    assert_eq!(rig.svc.sweep().await.unwrap(), 1);
    let stored = rig.svc.incident(&id).await.unwrap();
    assert_eq!(stored.state, v1::IncidentState::Queued as i32);
    // The platform's redial now answers the dispatched incident.
    let retry = rig.svc.report(&call("c-1")).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(rig.submits(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_claimer_that_vanished_holds_the_call_only_until_its_lease_lapses() {
    let rig = Rig::new(None);
    // A claimer (another replica, or this process before a crash) created the record and died
    // holding the lease, before any submit.
    let report = call("c-1");
    let valid = crate::validate::report(&report).unwrap();
    let incident = crate::store::routed_incident(
        "inc-vanished".into(),
        &valid,
        crate::store::Placement {
            district_id: "nc-d07".into(),
            station_id: "nc-st2".into(),
            sub_bureau_id: "nancheng".into(),
            routed_to_nearest: false,
        },
        Timestamp(T0),
        Timestamp(T0),
    )
    .unwrap();
    let lease = Duration::from_millis(IntakeConfig::default().handoff_lease_ms);
    rig.svc
        .records()
        .create(incident, "dead-claimer", lease)
        .await
        .unwrap();
    // Within the lease a redial answers the record and does not submit.
    let early = rig.svc.report(&report).await.unwrap();
    assert!(early.duplicate);
    assert_eq!(rig.submits(), 0);
    assert_eq!(rig.svc.sweep().await.unwrap(), 0);
    tokio::time::advance(lease).await;
    assert_eq!(rig.svc.sweep().await.unwrap(), 1);
    assert_eq!(rig.submits(), 1);
    let stored = rig.svc.incident("inc-vanished").await.unwrap();
    assert_eq!(stored.state, v1::IncidentState::Queued as i32);
}

#[tokio::test]
async fn a_restarted_intake_never_reuses_an_incident_id() {
    // The fault: after a restart the counter began again at inc-00000001 and the district
    // answered the new call with the old incident.
    let before = Rig::new(None);
    let first = before.svc.report(&call("c-1")).await.unwrap();
    let after = Rig::new(None);
    let second = after.svc.report(&call("c-2")).await.unwrap();
    let (a, b) = (
        first.incident.unwrap().incident_id,
        second.incident.unwrap().incident_id,
    );
    assert!(is_incident_id(&a) && is_incident_id(&b), "{a} {b}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn get_incident_errors() {
    let rig = Rig::new(None);
    let status = Status::from(rig.svc.incident("").await.unwrap_err());
    assert_eq!(
        (status.code(), violated_field(&status).as_deref()),
        (Code::InvalidArgument, Some("incident_id"))
    );
    let status = Status::from(rig.svc.incident("inc-99999999").await.unwrap_err());
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("inc-99999999"));
}

/// The incident one and two lifecycle steps after `inc` (revisions +1 and +2).
fn dispatched_and_on_scene(inc: &v1::Incident) -> (v1::Incident, v1::Incident) {
    let mut i = incident_from_wire(inc).unwrap();
    i.transition(IncidentState::Dispatched, Timestamp(T0 + 60_000))
        .unwrap();
    i.officer_id = Some("nc-d07-o03".into());
    let dispatched = incident_to_wire(&i);
    i.transition(IncidentState::OnScene, Timestamp(T0 + 240_000))
        .unwrap();
    (dispatched, incident_to_wire(&i))
}

#[tokio::test]
async fn updates_apply_only_with_a_higher_revision() {
    let rig = Rig::new(None);
    let inc = rig
        .svc
        .report(&call("c-1"))
        .await
        .unwrap()
        .incident
        .unwrap();
    let (dispatched, on_scene) = dispatched_and_on_scene(&inc);
    let domain = |i: &v1::Incident| incident_from_wire(i).unwrap();
    assert!(rig.svc.apply_update(domain(&on_scene)).await.unwrap());
    assert!(!rig.svc.apply_update(domain(&dispatched)).await.unwrap());
    assert!(!rig.svc.apply_update(domain(&inc)).await.unwrap());
    let stored = rig.svc.incident(&inc.incident_id).await.unwrap();
    assert_eq!(stored, on_scene);
    assert_eq!(stored.times.unwrap().on_scene_at, at_ms(T0 + 240_000));
}

/// `inc` (on the wire) as the body of an incident update.
fn update_body(inc: &v1::Incident) -> NoticeBody {
    NoticeBody::IncidentUpdate(Box::new(incident_from_wire(inc).unwrap()))
}

/// The district's publication of `inc` (on the wire) to the command center.
fn update(inc: &v1::Incident) -> Publication {
    Publication {
        audience: AudienceKey::CommandCenter,
        body: update_body(inc),
        id: None,
    }
}

/// A publication with a wire body as it may reach a feed over gRPC from any publisher (the
/// notification service checks its audience and kind, not its fields).
fn raw(kind: Kind) -> feed::Publication {
    feed::Publication {
        audience: AudienceKey::CommandCenter,
        body: v1::NoticeBody { kind: Some(kind) },
        id: None,
    }
}

async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test]
async fn follow_updates_tracks_the_command_center_feed_through_the_notification_service() {
    use dispatch_bus::feed::{FeedHub, FeedLimits, FeedStore};
    use dispatch_notification::NotificationService;

    let rig = Rig::new(None);
    let hub = Arc::new(FeedHub::new(
        Arc::new(rig.clock.clone()),
        FeedLimits::default(),
    ));
    let notify =
        NotifyClient::in_process(Arc::new(NotificationService::new(hub.clone())), options());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = rig.svc.follow_updates(notify.clone(), async {
        let _ = stopped.await;
    });

    let first = rig
        .svc
        .report(&call("c-1"))
        .await
        .unwrap()
        .incident
        .unwrap();
    let marker = rig
        .svc
        .report(&call("c-2"))
        .await
        .unwrap()
        .incident
        .unwrap();
    let (dispatched, on_scene) = dispatched_and_on_scene(&first);
    let (marker_dispatched, _) = dispatched_and_on_scene(&marker);
    let mut malformed = on_scene.clone();
    malformed.location = None;
    malformed.revision = 99;
    // Newest first, then a stale one, an order, an order and an update this side cannot read
    // (all ignored), and the marker last: once the marker shows, everything before it has
    // been handled.
    let cursors = notify
        .publish(vec![update(&on_scene), update(&dispatched)])
        .await
        .unwrap();
    assert_eq!(
        cursors.iter().map(|c| c.position).collect::<Vec<_>>(),
        [1, 2]
    );
    let order = DispatchOrder {
        dispatch_id: "nc-d07/inc-x/1".into(),
        incident_id: "inc-x".into(),
        officer_id: "nc-d07-o03".into(),
        district_id: "nc-d07".into(),
        priority: dispatch_core::Priority::P2,
        category: dispatch_core::Category::Theft,
        location: LatLng::new(23.0, 113.7).unwrap(),
        description: "wallet taken".into(),
        eta_s: 60.0,
        dispatched_at: Timestamp(T0),
    };
    notify
        .publish(vec![Publication {
            audience: AudienceKey::CommandCenter,
            body: NoticeBody::DispatchOrder(order),
            id: None,
        }])
        .await
        .unwrap();
    hub.append(vec![
        raw(Kind::DispatchOrder(v1::DispatchOrder::default())),
        raw(Kind::IncidentUpdate(malformed)),
    ])
    .await
    .unwrap();
    notify
        .publish(vec![update(&marker_dispatched)])
        .await
        .unwrap();
    eventually("marker applied", || async {
        rig.svc
            .incident(&marker.incident_id)
            .await
            .unwrap()
            .revision
            == 3
    })
    .await;
    assert_eq!(
        rig.svc.incident(&first.incident_id).await.unwrap(),
        on_scene
    );
    // What the follower passed over: the port answers each notice it cannot read as an error
    // naming the field, and the stream goes on to the marker.
    let all = notify
        .subscribe(Subscription {
            audience: AudienceKey::CommandCenter,
            resume_after: None,
        })
        .await
        .unwrap();
    let items: Vec<_> = all.take(6).collect().await;
    let unreadable: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Err(PortError::Internal { message }) => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        unreadable,
        [
            "notification answered a malformed notice: body.dispatch_order.dispatch_id: is required",
            "notification answered a malformed notice: body.incident_update.location: is required"
        ]
    );
    match &items[5] {
        Ok(Notice::Published(n)) => {
            assert_eq!((n.seq, &n.body), (6, &update_body(&marker_dispatched)))
        }
        other => panic!("expected the marker, got {other:?}"),
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .unwrap()
        .unwrap();
}

/// A notification port that answers subscriptions from a script and records each request.
struct ScriptedNotify {
    requests: Mutex<Vec<Subscription>>,
    /// Per subscription: an error, or the items of a stream that then ends. Past the script,
    /// a stream that never yields.
    script: Mutex<VecDeque<Script>>,
}

#[tonic::async_trait]
impl NotifyPort for ScriptedNotify {
    async fn publish(&self, _: &Call, _: Vec<Publication>) -> Result<Vec<Cursor>, PortError> {
        Err(Status::unimplemented("not used").into())
    }
    async fn subscribe(&self, _: &Call, req: Subscription) -> Result<NoticeStream, PortError> {
        self.requests.lock().push(req);
        match self.script.lock().pop_front() {
            Some(Ok(items)) => {
                let items = items.into_iter().map(|i| i.map_err(PortError::from));
                Ok(futures::stream::iter(items).boxed())
            }
            Some(Err(status)) => Err(status.into()),
            None => Ok(futures::stream::pending().boxed()),
        }
    }
}

/// Epoch 7's cursor at `position`.
fn cursor(position: u64) -> Cursor {
    Cursor { epoch: 7, position }
}

fn notice(seq: u64, inc: &v1::Incident) -> Result<Notice, Status> {
    Ok(Notice::Published(PublishedNotice {
        seq,
        cursor: cursor(seq),
        published_at: Timestamp(T0 + 300_000),
        body: update_body(inc),
    }))
}

#[tokio::test(start_paused = true)]
async fn follow_updates_reconnects_with_backoff_and_resumes_after_the_last_seq() {
    let rig = Rig::new(None);
    let inc = rig
        .svc
        .report(&call("c-1"))
        .await
        .unwrap()
        .incident
        .unwrap();
    let (dispatched, on_scene) = dispatched_and_on_scene(&inc);
    let notify = Arc::new(ScriptedNotify {
        requests: Mutex::new(Vec::new()),
        script: Mutex::new(VecDeque::from([
            Err(Status::unavailable("notification restarting")),
            Ok(vec![notice(1, &dispatched)]),
            Ok(vec![
                notice(2, &on_scene),
                Err(Status::internal("connection reset")),
            ]),
            Err(Status::out_of_range(
                "resume_after: cursor 7-2 is out of range",
            )),
        ])),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = tokio::time::Instant::now();
    let follower =
        rig.svc
            .follow_updates(NotifyClient::from_port(notify.clone(), options()), async {
                let _ = stopped.await;
            });
    eventually("fifth subscription", || async {
        notify.requests.lock().len() == 5
    })
    .await;
    let requests = notify.requests.lock().clone();
    let resumes: Vec<Option<Cursor>> = requests.iter().map(|r| r.resume_after).collect();
    // Failed before any notice: from the oldest again; after notice 1 the stream ended: resume
    // after its cursor; after notice 2 it failed: after that one's; that cursor out of range:
    // from the oldest kept, at once.
    assert_eq!(
        resumes,
        vec![None, None, Some(cursor(1)), Some(cursor(2)), None]
    );
    assert!(
        requests
            .iter()
            .all(|r| r.audience == AudienceKey::CommandCenter)
    );
    // Three reconnect waits: 100 ms after the failure, then 100 ms twice (each notice resets
    // the backoff); the test's 10 ms polling may add one step.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(400),
        "{waited:?}"
    );
    assert_eq!(rig.svc.incident(&inc.incident_id).await.unwrap(), on_scene);
    stop.send(()).unwrap();
    follower.await.unwrap();
}

#[tokio::test]
async fn run_serves_intake_over_grpc() {
    use dispatch_proto::v1::intake_client::IntakeClient;

    let rig = Rig::new(None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run(listener, rig.svc.clone(), async {
        let _ = stopped.await;
    }));
    let mut client = IntakeClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut noise = call("c-noise");
    noise.category = v1::IncidentCategory::Noise as i32;
    let resp = client.report_incident(noise).await.unwrap().into_inner();
    let inc = resp.incident.unwrap();
    assert_eq!(inc.priority, v1::Priority::P4 as i32, "noise is P4");
    let got = client
        .get_incident(v1::GetIncidentRequest {
            incident_id: inc.incident_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, inc);
    let err = client
        .report_incident(v1::ReportIncidentRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violated_field(&err).as_deref(), Some("call_id"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_report_is_one_trace_from_the_router_to_the_district_under_each_deadline() {
    let rig = Rig::new(None);
    rig.svc.report(&call("c-1")).await.unwrap();
    rig.svc.report(&call("c-2")).await.unwrap();
    let routes = rig.router.calls.lock().clone();
    let submits = rig.district.calls.lock().clone();
    let trace_of = |c: &Call| c.trace.unwrap().trace_id;
    // Each report started its own trace, and its route and submit carried it.
    assert_eq!(trace_of(&routes[0]), trace_of(&submits[0]));
    assert_eq!(trace_of(&routes[1]), trace_of(&submits[1]));
    assert_ne!(trace_of(&routes[0]), trace_of(&routes[1]));
    // The deadlines are intake's configured ones.
    let config = IntakeConfig::default();
    assert_eq!(
        routes[0].deadline,
        Duration::from_millis(config.router_deadline_ms)
    );
    assert_eq!(
        submits[0].deadline,
        Duration::from_millis(config.district_deadline_ms)
    );

    // A report inside the platform's trace continues it.
    let platform = TraceContext::new_root();
    dispatch_bus::trace::scope(platform, rig.svc.report(&call("c-3")))
        .await
        .unwrap();
    let submitted = rig.district.calls.lock()[2].trace.unwrap();
    assert_eq!(submitted.trace_id, platform.trace_id);
    assert_ne!(submitted.span_id, platform.span_id, "intake's own span");
}

#[tokio::test(start_paused = true)]
async fn a_district_slower_than_its_deadline_is_deadline_exceeded_and_the_incident_stays_routed() {
    let rig = Rig::new(None);
    rig.district.open.send_replace(false);
    let started = tokio::time::Instant::now();
    let status = Status::from(rig.svc.report(&call("c-1")).await.unwrap_err());
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(status.message(), "district did not answer within 5000 ms");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let id = rig.district.submits.lock()[0].incident_id.clone();
    let stored = rig.svc.incident(&id).await.unwrap();
    assert_eq!(stored.state, v1::IncidentState::Routed as i32);
}
