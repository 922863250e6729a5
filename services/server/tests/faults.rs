//! The five services as separate processes over a private Redis (AOF, fsync always), under a
//! steady flow of calls with officer terminals playing along, while every service in turn, and
//! Redis itself, is killed with `SIGKILL` and started again; then `SIGTERM` with terminals
//! still connected. The rule above all others: no call is lost or silently dropped.
//!
//! Slow (about a minute): it runs once, not per backend; the embedded in-memory mode has no
//! process to kill.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use dispatch_redis_test::{Options, RedisServer};
use dispatch_tests::eventually;
use dispatch_tests::flow::{self, Clients};
use dispatch_tests::sandbox::ProcessCluster;
use futures::StreamExt;
use std::sync::Mutex;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Calls the platform makes, one every [`CALL_EVERY`].
const CALLS: usize = 80;
const CALL_EVERY: Duration = Duration::from_millis(100);
/// Every fifth call is cleared as a criminal case, so the case squad has work.
const CASE_EVERY: usize = 5;

/// What the terminals saw: per incident, the dispatch id of every order notice they received
/// (a notice delivered twice shows twice).
type Orders = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
    )
}

/// Runs `op` until it answers something other than a retryable status (the platform and the
/// terminals keep trying through restarts), each try under a 2 s deadline.
async fn persist<T, F, Fut>(what: &str, mut op: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    for _ in 0..600 {
        match tokio::time::timeout(Duration::from_secs(2), op()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(s)) if !retryable(&s) => return Err(s),
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{what}: still failing after 600 tries");
}

/// One officer's terminal: holds the order feed open, resumes from its last cursor after any
/// break, and works every new order (acknowledge, arrive, clear), retrying through restarts.
async fn terminal(
    notification: Channel,
    district: Channel,
    officer: String,
    orders: Orders,
    case_every: usize,
) {
    let mut notify = NotificationClient::new(notification);
    let mut district = DistrictServiceClient::new(district);
    let mut cursor = String::new();
    let mut seen = HashSet::new();
    loop {
        let req = v1::SubscribeRequest {
            audience: Some(v1::Audience {
                target: Some(v1::audience::Target::OfficerId(officer.clone())),
            }),
            resume_after: cursor.clone(),
            from_latest: false,
        };
        let mut stream = match notify.subscribe(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                if s.code() == Code::OutOfRange {
                    cursor.clear();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while let Some(item) = stream.next().await {
            let Ok(notice) = item else { break };
            cursor.clone_from(&notice.cursor);
            let Some(v1::notice_body::Kind::DispatchOrder(order)) =
                notice.body.and_then(|b| b.kind)
            else {
                continue;
            };
            orders
                .lock()
                .unwrap()
                .entry(order.incident_id.clone())
                .or_default()
                .push(order.dispatch_id.clone());
            if !seen.insert(order.dispatch_id.clone()) {
                continue;
            }
            work(&mut district, &order, case_every).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn work(
    district: &mut DistrictServiceClient<Channel>,
    order: &v1::DispatchOrder,
    case_every: usize,
) {
    let (officer_id, dispatch_id) = (order.officer_id.clone(), order.dispatch_id.clone());
    let n: usize = order
        .description
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let disposition = if n.is_multiple_of(case_every) {
        v1::Disposition::CriminalCase
    } else {
        v1::Disposition::Resolved
    };
    let ack = persist("acknowledge", || {
        let mut d = district.clone();
        let req = v1::AcknowledgeDispatchRequest {
            officer_id: officer_id.clone(),
            dispatch_id: dispatch_id.clone(),
        };
        async move { d.acknowledge_dispatch(req).await }
    })
    .await;
    ack.unwrap_or_else(|s| panic!("acknowledge {dispatch_id}: {s}"));
    persist("arrive", || {
        let mut d = district.clone();
        let req = v1::ArriveOnSceneRequest {
            officer_id: officer_id.clone(),
            dispatch_id: dispatch_id.clone(),
        };
        async move { d.arrive_on_scene(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("arrive {dispatch_id}: {s}"));
    persist("clear", || {
        let mut d = district.clone();
        let req = v1::ClearIncidentRequest {
            officer_id: officer_id.clone(),
            dispatch_id: dispatch_id.clone(),
            disposition: disposition as i32,
        };
        async move { d.clear_incident(req).await }
    })
    .await
    .unwrap_or_else(|s| panic!("clear {dispatch_id}: {s}"));
}

/// The 110 platform: `CALLS` calls, each retried with its `call_id` until intake accepts it.
/// Returns the incident id of every call, in call order.
async fn platform(intake: Channel, places: Vec<v1::LatLng>) -> Vec<String> {
    let client = IntakeClient::new(intake);
    let mut ids = Vec::new();
    for i in 0..CALLS {
        let req = v1::ReportIncidentRequest {
            call_id: format!("fault-{i}"),
            category: v1::IncidentCategory::Theft as i32,
            location: Some(places[i % places.len()]),
            description: format!("call-{i}"),
        };
        let answer = persist("report", || {
            let mut c = client.clone();
            let req = req.clone();
            async move { c.report_incident(req).await }
        })
        .await
        .unwrap_or_else(|s| panic!("report fault-{i}: {s}"));
        ids.push(answer.into_inner().incident.expect("incident").incident_id);
        tokio::time::sleep(CALL_EVERY).await;
    }
    ids
}

/// A private Redis (AOF, fsync always) and the five services over it.
async fn redis_cluster() -> (RedisServer, ProcessCluster) {
    let redis = RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let cluster = ProcessCluster::start(bin, &["--redis", &redis.url()])
        .await
        .expect("five processes serving");
    (redis, cluster)
}

fn channel(addr: &str) -> Channel {
    Channel::from_shared(addr.to_owned())
        .expect("uri")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_every_service_and_of_redis_loses_no_call() {
    let (mut redis, mut cluster) = redis_cluster().await;
    let e = cluster.endpoints.clone();
    let mut c = Clients::connect(&e).await.expect("connect");

    // Two districts, four officers each, signed on at the district's seed point.
    let orders: Orders = Arc::default();
    let mut places = Vec::new();
    for index in [0, 1] {
        let stage = flow::stage(&mut c, index).await.expect("stage");
        let center = stage.district.center.expect("center");
        places.push(center);
        for officer in stage.officers.iter().take(4) {
            flow::sign_on(&mut c, officer, center)
                .await
                .expect("sign on");
            tokio::spawn(terminal(
                channel(&e.notification),
                channel(&e.district),
                officer.clone(),
                orders.clone(),
                CASE_EVERY,
            ));
        }
    }

    let calls = tokio::spawn(platform(channel(&e.intake), places));
    // Every service in turn, then Redis, dies mid-flow and comes back.
    for name in [
        "intake",
        "district",
        "notification",
        "case-squad",
        "geo-router",
    ] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.kill(name).expect("kill -9");
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.restart(name).await.expect("restart");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill().expect("kill -9 redis");
    redis.restart().expect("restart redis");
    let ids = calls.await.expect("platform");

    // No id reused: one incident per call.
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), CALLS, "incident ids reused: {ids:?}");
    // Every incident reaches on scene and is cleared.
    let intake = IntakeClient::new(channel(&e.intake));
    eventually(Duration::from_secs(90), || {
        let ids = ids.clone();
        let intake = intake.clone();
        async move {
            let mut open = Vec::new();
            for id in &ids {
                let i = intake
                    .clone()
                    .get_incident(v1::GetIncidentRequest {
                        incident_id: id.clone(),
                    })
                    .await?
                    .into_inner();
                let t = i.times.unwrap_or_default();
                if i.state != v1::IncidentState::Cleared as i32 || t.on_scene_at.is_none() {
                    open.push(format!("{id}: {:?}", v1::IncidentState::try_from(i.state)));
                }
            }
            anyhow::ensure!(open.is_empty(), "{} not cleared: {open:?}", open.len());
            Ok(())
        }
    })
    .await
    .expect("every call cleared");
    // None dispatched twice (one dispatch per incident, the first), and every order reached
    // its terminal exactly once, whatever broke between: resumed streams carry on from their
    // cursor, and a redelivered order lands once in its feed.
    let seen = orders.lock().unwrap().clone();
    let mut routed = Vec::new();
    for id in &ids {
        let incident = intake
            .clone()
            .get_incident(v1::GetIncidentRequest {
                incident_id: id.clone(),
            })
            .await
            .expect("incident")
            .into_inner();
        // `{district_id}/{incident_id}/{n}`: the first dispatch by the incident's district.
        let dispatches = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(
            dispatches,
            [format!("{}/{id}/1", incident.district_id)],
            "orders of {id}"
        );
        routed.push(incident);
    }
    // Every criminal clearance opened its case, under `case-{station_id}-{incident_id}`.
    let cases = CaseSquadClient::new(channel(&e.case_squad));
    for (n, incident) in routed.iter().enumerate() {
        if !n.is_multiple_of(CASE_EVERY) {
            continue;
        }
        eventually(Duration::from_secs(30), || {
            let mut cases = cases.clone();
            let case_id = format!("case-{}-{}", incident.station_id, incident.incident_id);
            async move {
                cases
                    .get_case(v1::GetCaseRequest { case_id })
                    .await
                    .map_err(|s| anyhow::anyhow!("{s}"))?;
                Ok(())
            }
        })
        .await
        .expect("case opened");
    }

    // SIGTERM with terminals still holding their streams: drained and gone within the bound.
    for name in ["notification", "district", "intake"] {
        let (status, took) = cluster
            .terminate(name, Duration::from_secs(15))
            .await
            .expect("exits after SIGTERM");
        assert!(
            status.success(),
            "{name} exited with {status} after {took:?}"
        );
    }
}

async fn health(addr: &str, service: &str) -> Option<i32> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel(addr));
    let req = tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    };
    client.check(req).await.ok().map(|r| r.into_inner().status)
}

/// Health follows Redis: `NOT_SERVING` while it is down (load balancers send calls elsewhere),
/// `SERVING` again once it is back, without a restart of the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_redis_is_down_and_serving_after() {
    use tonic_health::pb::health_check_response::ServingStatus;

    let (mut redis, cluster) = redis_cluster().await;
    let e = cluster.endpoints.clone();
    let watched = [
        (e.intake.clone(), dispatch_proto::service_names::INTAKE),
        (e.district.clone(), dispatch_proto::service_names::DISTRICT),
        (
            e.notification.clone(),
            dispatch_proto::service_names::NOTIFICATION,
        ),
        (
            e.case_squad.clone(),
            dispatch_proto::service_names::CASE_SQUAD,
        ),
    ];
    let all_are = |status: ServingStatus| {
        let watched = watched.clone();
        move || {
            let watched = watched.clone();
            async move {
                for (addr, name) in &watched {
                    let got = health(addr, name).await;
                    anyhow::ensure!(got == Some(status as i32), "{name}: {got:?}");
                }
                Ok(())
            }
        }
    };
    redis.stop().expect("stop redis");
    eventually(Duration::from_secs(30), all_are(ServingStatus::NotServing))
        .await
        .expect("not serving while redis is down");
    redis.restart().expect("restart redis");
    eventually(Duration::from_secs(30), all_are(ServingStatus::Serving))
        .await
        .expect("serving again");
}

/// The fault issue 5 reproduced: with the district paused past the platform's 1 s deadline,
/// the report fails, yet the call is handed over once the district runs again, and the
/// platform's retry answers `duplicate` with the incident the district dispatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_caller_gave_up_is_still_dispatched_and_its_retry_is_a_duplicate() {
    let (_redis, cluster) = redis_cluster().await;
    let e = cluster.endpoints.clone();
    let mut c = Clients::connect(&e).await.expect("connect");
    let stage = flow::stage(&mut c, 0).await.expect("stage");
    let center = stage.district.center.expect("center");
    let officer = stage.officers[0].clone();
    let mut orders = flow::subscribe(&mut c, &officer).await.expect("subscribe");
    flow::sign_on(&mut c, &officer, center)
        .await
        .expect("sign on");

    cluster.pause("district").expect("SIGSTOP district");
    let req = v1::ReportIncidentRequest {
        call_id: "paused-1".into(),
        category: v1::IncidentCategory::ViolentCrime as i32,
        location: Some(center),
        description: "robbery in progress".into(),
    };
    let mut first = tonic::Request::new(req.clone());
    first.set_timeout(Duration::from_secs(1));
    let gave_up = IntakeClient::new(channel(&e.intake))
        .report_incident(first)
        .await
        .expect_err("the district is paused");
    // The client's deadline, or the server's enforcement of it (tonic answers `Cancelled`).
    assert!(
        matches!(gave_up.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gave_up:?}"
    );
    cluster.resume("district").expect("SIGCONT district");

    let order = flow::next_order(&mut orders)
        .await
        .expect("dispatched without a retry");
    let retry = persist("retry", || {
        let mut intake = IntakeClient::new(channel(&e.intake));
        let req = req.clone();
        async move { intake.report_incident(req).await }
    })
    .await
    .expect("retry")
    .into_inner();
    assert!(retry.duplicate);
    let incident = retry.incident.expect("incident");
    assert_eq!(incident.incident_id, order.incident_id);
    assert_eq!(
        order.dispatch_id,
        format!("{}/{}/1", stage.district.district_id, incident.incident_id)
    );
}
