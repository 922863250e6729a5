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

/// The 110 platform: `calls` calls, one every `every`, each retried with its `call_id` until
/// intake accepts it. Returns the incident id of every call, in call order.
async fn platform(
    intake: Channel,
    places: Vec<v1::LatLng>,
    calls: usize,
    every: Duration,
) -> Vec<String> {
    platform_padded(intake, places, calls, every, 0).await
}

/// [`platform`] with descriptions `pad` characters longer (the terminals read the call number
/// from the description's end).
async fn platform_padded(
    intake: Channel,
    places: Vec<v1::LatLng>,
    calls: usize,
    every: Duration,
    pad: usize,
) -> Vec<String> {
    let client = IntakeClient::new(intake);
    let mut ids = Vec::new();
    for i in 0..calls {
        let req = v1::ReportIncidentRequest {
            call_id: format!("fault-{i}"),
            category: v1::IncidentCategory::Theft as i32,
            location: Some(places[i % places.len()]),
            description: format!("{}call-{i}", "x".repeat(pad)),
        };
        let answer = persist("report", || {
            let mut c = client.clone();
            let req = req.clone();
            async move { c.report_incident(req).await }
        })
        .await
        .unwrap_or_else(|s| panic!("report fault-{i}: {s}"));
        ids.push(answer.into_inner().incident.expect("incident").incident_id);
        tokio::time::sleep(every).await;
    }
    ids
}

/// A private Redis (AOF, fsync always) and the five services over it.
async fn redis_cluster() -> (RedisServer, ProcessCluster) {
    redis_cluster_with(&[]).await
}

/// [`redis_cluster`] with `extra` arguments for every service.
async fn redis_cluster_with(extra: &[&str]) -> (RedisServer, ProcessCluster) {
    let redis = RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str()];
    args.extend_from_slice(extra);
    let cluster = ProcessCluster::start(bin, &args)
        .await
        .expect("five processes serving");
    (redis, cluster)
}

/// Signs on four officers in each of the first two districts, at the district's seed point,
/// each with a terminal playing along; answers the two seed points.
async fn staff(
    e: &dispatch_tests::Endpoints,
    orders: &Orders,
    case_every: usize,
) -> Vec<v1::LatLng> {
    let mut c = Clients::connect(e).await.expect("connect");
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
                case_every,
            ));
        }
    }
    places
}

/// Intake's record of incident `id`.
async fn record(intake: &IntakeClient<Channel>, id: &str) -> Result<v1::Incident, Status> {
    let req = v1::GetIncidentRequest {
        incident_id: id.to_owned(),
    };
    Ok(intake.clone().get_incident(req).await?.into_inner())
}

/// Waits until every incident of `ids` is cleared and was on scene first.
async fn all_cleared(intake: &str, ids: &[String], within: Duration) -> anyhow::Result<()> {
    let intake = IntakeClient::new(channel(intake));
    eventually(within, || {
        let intake = intake.clone();
        async move {
            let mut open = Vec::new();
            for id in ids {
                let i = record(&intake, id).await?;
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
}

/// Waits until the case squad has the case of every incident of `ids` whose call number is a
/// multiple of `case_every`, under the case id the district set on the cleared incident
/// (`case-{station_id}-{incident_id}`, read back from intake's record).
async fn cases_opened(
    e: &dispatch_tests::Endpoints,
    ids: &[String],
    case_every: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let cases = CaseSquadClient::new(channel(&e.case_squad));
    let intake = IntakeClient::new(channel(&e.intake));
    for (n, id) in ids.iter().enumerate() {
        if !n.is_multiple_of(case_every) {
            continue;
        }
        eventually(within, || {
            let (mut cases, intake) = (cases.clone(), intake.clone());
            async move {
                let incident = record(&intake, id).await?;
                let expected = format!("case-{}-{id}", incident.station_id);
                anyhow::ensure!(
                    incident.case_id == expected,
                    "{id}: case id {:?} on the cleared incident, expected {expected}",
                    incident.case_id
                );
                let case = cases
                    .get_case(v1::GetCaseRequest {
                        case_id: incident.case_id,
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("{s}"))?
                    .into_inner();
                anyhow::ensure!(case.incident_id == *id, "case of {id}: {case:?}");
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
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

    // Two districts, four officers each, signed on at the district's seed point.
    let orders: Orders = Arc::default();
    let places = staff(&e, &orders, CASE_EVERY).await;

    let calls = tokio::spawn(platform(channel(&e.intake), places, CALLS, CALL_EVERY));
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
    all_cleared(&e.intake, &ids, Duration::from_secs(90))
        .await
        .expect("every call cleared");
    // None dispatched twice (one dispatch per incident, the first), and every order reached
    // its terminal exactly once, whatever broke between: resumed streams carry on from their
    // cursor, and a redelivered order lands once in its feed.
    let seen = orders.lock().unwrap().clone();
    let intake = IntakeClient::new(channel(&e.intake));
    for id in &ids {
        let incident = record(&intake, id).await.expect("incident");
        // `{district_id}/{incident_id}/{n}`: the first dispatch by the incident's district.
        let dispatches = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(
            dispatches,
            [format!("{}/{id}/1", incident.district_id)],
            "orders of {id}"
        );
    }
    // Every criminal clearance opened its case.
    cases_opened(&e, &ids, CASE_EVERY, Duration::from_secs(30))
        .await
        .expect("case opened");

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

/// Issue 5: with the case squad down for over a minute under a steady flow of calls, orders keep
/// flowing (every call is dispatched, worked and cleared meanwhile), and every case opens once
/// the case squad is back, once. The outbox is set to give up after 3 tries and send dead
/// letters again every 2 s, so the cases pass through the dead letters and the redrive (with
/// the defaults, 20 tries span about a minute, and the plain retries would carry them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_case_squad_down_for_a_minute_orders_flow_and_cases_open_once_it_is_back() {
    const CALLS: usize = 30;
    const EVERY: Duration = Duration::from_secs(2);
    const CASE_EVERY: usize = 2;
    let config = std::env::temp_dir().join(format!("dispatch-outbox-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[outbox]\nmax_tries = 3\nmax_backoff = 500\nredrive_every = 2000\n",
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let (_redis, mut cluster) = redis_cluster_with(&["--config", &config]).await;
    let e = cluster.endpoints.clone();
    let orders: Orders = Arc::default();
    let places = staff(&e, &orders, CASE_EVERY).await;

    cluster.kill("case-squad").expect("kill -9 case squad");
    let down_since = std::time::Instant::now();
    let ids = platform(channel(&e.intake), places, CALLS, EVERY).await;
    // Orders flowed while the case squad was down: every call worked to the end.
    all_cleared(&e.intake, &ids, Duration::from_secs(60))
        .await
        .expect("every call cleared with the case squad down");
    let down_for = down_since.elapsed();
    assert!(down_for >= Duration::from_secs(60), "down {down_for:?}");
    let seen = orders.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(seen.get(id).map(Vec::len), Some(1), "orders of {id}");
    }

    cluster.restart("case-squad").await.expect("restart");
    cases_opened(&e, &ids, CASE_EVERY, Duration::from_secs(60))
        .await
        .expect("every case opened once the case squad is back");
    // Once each: the squads hold exactly the cases of the case clearances.
    let stage_stations: BTreeSet<String> = {
        let intake = IntakeClient::new(channel(&e.intake));
        let mut stations = BTreeSet::new();
        for id in &ids {
            stations.insert(record(&intake, id).await.expect("incident").station_id);
        }
        stations
    };
    let mut held = Vec::new();
    for station_id in stage_stations {
        let list = CaseSquadClient::new(channel(&e.case_squad))
            .list_cases(v1::ListCasesRequest { station_id })
            .await
            .expect("list cases")
            .into_inner();
        held.extend(list.cases.into_iter().map(|c| c.incident_id));
    }
    held.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n.is_multiple_of(CASE_EVERY))
        .map(|(_, id)| id.clone())
        .collect();
    expected.sort();
    assert_eq!(held, expected);
}

/// Issue 5: a subscriber that never reads (here the command center's screen, which gets every
/// update) neither delays any officer's orders nor grows the notification service's memory: its
/// stream is cut off with `RESOURCE_EXHAUSTED` once its byte cap (1 MiB) has stayed full for
/// the grace period (the 20 s heartbeat interval), and it resumes from its last cursor without
/// a gap or a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_delays_no_order_and_is_cut_off_at_its_byte_cap() {
    // About 1 KB descriptions, six command-center notices a call: over 5 MB for the screen,
    // beyond its byte cap (1 MiB) and the client's HTTP/2 stream window (hyper: 2 MiB).
    const CALLS: usize = 800;
    const PAD: usize = 950;
    let (_redis, cluster) = redis_cluster().await;
    let e = cluster.endpoints.clone();
    let orders: Orders = Arc::default();
    let places = staff(&e, &orders, usize::MAX).await;
    let command_center = v1::SubscribeRequest {
        audience: Some(v1::Audience {
            target: Some(v1::audience::Target::Role(v1::Role::CommandCenter as i32)),
        }),
        resume_after: String::new(),
        from_latest: true,
    };
    let mut stalled = NotificationClient::new(channel(&e.notification))
        .subscribe(command_center.clone())
        .await
        .expect("subscribe")
        .into_inner();
    let rss_before = cluster.rss_bytes("notification").expect("rss");

    let ids = platform_padded(
        channel(&e.intake),
        places,
        CALLS,
        Duration::from_millis(20),
        PAD,
    )
    .await;
    all_cleared(&e.intake, &ids, Duration::from_secs(90))
        .await
        .expect("every call worked while the screen did not read");
    let seen = orders.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(seen.get(id).map(Vec::len), Some(1), "orders of {id}");
    }
    let rss_after = cluster.rss_bytes("notification").expect("rss");

    // Past the grace period, the stalled stream holds at most its cap (plus what the
    // transport's windows took), then says why it ended.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let mut cursor = String::new();
    let mut updates: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut repeats = 0;
    let mut note = |n: &v1::Notice, updates: &mut BTreeMap<String, BTreeSet<u64>>| {
        if let Some(v1::notice_body::Kind::IncidentUpdate(i)) =
            n.body.as_ref().and_then(|b| b.kind.as_ref())
            && !updates
                .entry(i.incident_id.clone())
                .or_default()
                .insert(i.revision)
        {
            repeats += 1;
        }
    };
    let mut first_part = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.next()).await {
            Ok(Some(Ok(n))) => {
                first_part += 1;
                cursor.clone_from(&n.cursor);
                note(&n, &mut updates);
            }
            Ok(Some(Err(status))) => break status,
            Ok(None) => panic!("stream ended without a status"),
            Err(_) => panic!("a stalled stream was not cut off"),
        }
    };
    assert_eq!(end.code(), Code::ResourceExhausted, "{end:?}");
    println!("the stalled screen got {first_part} notices before it was cut off");
    assert!(first_part < CALLS * 5, "cut off after {first_part} notices");

    // Resumed from its last cursor: the rest, no gap, no repeat, up to every clearance.
    let mut resumed = NotificationClient::new(channel(&e.notification))
        .subscribe(v1::SubscribeRequest {
            resume_after: cursor,
            from_latest: false,
            ..command_center
        })
        .await
        .expect("resume")
        .into_inner();
    let cleared = |u: &BTreeMap<String, BTreeSet<u64>>| ids.iter().all(|id| u.contains_key(id));
    while !cleared(&updates) {
        let n = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("resumed stream stalled")
            .expect("resumed stream ended")
            .expect("notice");
        note(&n, &mut updates);
    }
    assert_eq!(repeats, 0);

    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "notification RSS {} -> {} MiB while a screen did not read",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(grown < 64 << 20, "notification grew {} MiB", grown >> 20);
}
