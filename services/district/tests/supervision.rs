//! Supervision end to end: a command that makes a district's handler panic costs that district
//! a rebuild from its journal, never the other districts on the same arbiter thread, and is
//! quarantined at its `quarantine_after`th panic (default 3), recorded once, and refused at once
//! afterwards. Panics are injected with the `fault-injection` feature; each test uses its own
//! district ids, as the hooks are process-global.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dispatch_bus::feed::{AudienceKey, FeedHub, FeedLimits, follow};
use dispatch_bus::ports::{
    CallOptions, CaseClient, Directory, DistrictEntry, NotifyClient, StationEntry,
};
use dispatch_case_squad::CaseSquadService;
use dispatch_core::district::Command;
use dispatch_core::{IncidentState, LatLng, ManualClock, Timestamp};
use dispatch_district::journal::MemoryJournal;
use dispatch_district::supervision::{
    MemoryQuarantine, QuarantineSink, RedisQuarantine, SupervisionConfig, SupervisionStats,
    inject_panic, inject_panic_after_apply,
};
use dispatch_district::{DistrictGrpc, DistrictNode, NodeConfig, Outbox};
use dispatch_notification::NotificationService;
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_server::DistrictService;
use dispatch_redis_test::RedisServer;
use futures::StreamExt;
use tonic::{Code, Request, Status};

/// Two districts of one station, both on ONE arbiter thread: a panic unwinding out of a handler
/// would end both.
struct Fixture {
    grpc: DistrictGrpc,
    node: DistrictNode,
    hub: Arc<FeedHub>,
    a: String,
    b: String,
    _arbiters: Vec<actix_rt::Arbiter>,
}

fn options() -> CallOptions {
    CallOptions::with_deadline(Duration::from_secs(5))
}

fn directory(a: &str, b: &str, station: &str) -> Directory {
    let center = LatLng::new(23.0, 113.7).unwrap();
    let district = |id: &str| DistrictEntry {
        id: id.into(),
        station_id: station.into(),
        sub_bureau_id: "town".into(),
        central: id == a,
        center,
        area_m2: 1e6,
        adjacent: vec![],
    };
    Directory {
        map_name: "test".into(),
        sub_bureaus: vec![],
        stations: vec![StationEntry {
            id: station.into(),
            sub_bureau_id: "town".into(),
            central_district_id: a.into(),
            location: center,
        }],
        districts: vec![district(a), district(b)],
    }
}

/// Districts `{prefix}-d01` (A) and `{prefix}-d02` (B), 4 officers each, all signed on,
/// quarantining into `quarantine`.
async fn fixture(prefix: &str, quarantine: Arc<dyn QuarantineSink>) -> Fixture {
    let (a, b, station) = (
        format!("{prefix}-d01"),
        format!("{prefix}-d02"),
        format!("{prefix}-s1"),
    );
    let directory = directory(&a, &b, &station);
    let clock = Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)));
    let hub = Arc::new(FeedHub::new(clock.clone(), FeedLimits::default()));
    let notify =
        NotifyClient::in_process(Arc::new(NotificationService::new(hub.clone())), options());
    let cases = Arc::new(CaseSquadService::from_directory(
        &directory,
        2,
        clock.clone(),
    ));
    let outbox = Outbox::spawn(notify, CaseClient::in_process(cases, options()));
    let config = NodeConfig {
        officers_per_district: 4,
        quarantine,
        ..NodeConfig::default()
    };
    let (node, arbiters) = DistrictNode::start_on_new_arbiters(
        &directory,
        config,
        clock,
        outbox,
        Arc::new(MemoryJournal::new()),
        1,
    )
    .await
    .unwrap();
    let f = Fixture {
        grpc: DistrictGrpc::new(node.clone()),
        node,
        hub,
        a,
        b,
        _arbiters: arbiters,
    };
    for district in [&f.a, &f.b] {
        for n in 1..=4 {
            let officer = format!("{district}-o{n:02}");
            f.grpc
                .update_officer_status(Request::new(v1::UpdateOfficerStatusRequest {
                    officer_id: officer,
                    status: v1::OfficerStatus::Available as i32,
                    location: Some(v1::LatLng {
                        lat: 23.0,
                        lon: 113.7,
                    }),
                }))
                .await
                .unwrap();
        }
    }
    f
}

fn routed(id: &str, district: &str, station: &str) -> v1::Incident {
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
        station_id: station.into(),
        sub_bureau_id: "town".into(),
        state: v1::IncidentState::Routed as i32,
        revision: 1,
        times: Some(v1::IncidentTimes::default()),
        ..Default::default()
    }
}

impl Fixture {
    fn station(&self) -> String {
        self.a.replace("-d01", "-s1")
    }

    async fn submit(&self, id: &str, district: &str) -> Result<v1::Incident, Status> {
        let incident = routed(id, district, &self.station());
        self.grpc
            .submit_incident(Request::new(v1::SubmitIncidentRequest {
                incident: Some(incident),
            }))
            .await
            .map(|r| r.into_inner())
    }

    /// Submits `id` to district B and waits for its order on the dispatched officer's terminal.
    async fn dispatch_in_b(&self, id: &str) {
        let dispatched = self.submit(id, &self.b).await.unwrap();
        assert_eq!(dispatched.state, v1::IncidentState::Dispatched as i32);
        let officer = AudienceKey::Officer(dispatched.officer_id.as_str().into());
        let mut orders = Box::pin(follow(self.hub.clone(), officer, None));
        let notice = tokio::time::timeout(Duration::from_secs(5), orders.next())
            .await
            .expect("an order within 5 s")
            .unwrap()
            .unwrap();
        match notice.body.and_then(|b| b.kind) {
            Some(v1::notice_body::Kind::DispatchOrder(o)) => {
                assert_eq!(o.incident_id, id);
                assert_eq!(o.dispatch_id, dispatched.dispatch_id);
            }
            other => panic!("expected an order for {id}, got {other:?}"),
        }
    }
}

/// Counts the hook's calls for the Submit of `incident` and chooses exactly those.
fn submit_of(incident: &'static str, calls: Arc<AtomicU32>) -> impl Fn(&Command) -> bool {
    move |command| match command {
        Command::Submit(i) if i.id == incident => {
            calls.fetch_add(1, Ordering::SeqCst);
            true
        }
        _ => false,
    }
}

fn expect_code(result: Result<v1::Incident, Status>, code: Code) -> Status {
    let status = result.expect_err("must fail");
    assert_eq!(status.code(), code, "{status:?}");
    status
}

#[actix_rt::test]
async fn a_panicking_command_rebuilds_its_district_only_and_is_quarantined_at_the_third_try() {
    let sink = Arc::new(MemoryQuarantine::default());
    let f = fixture("sup", sink.clone()).await;
    let a = f.a.clone();

    // A's state before any panic: one incident dispatched to one of its officers.
    let before = f.submit("a-1", &a).await.unwrap();
    assert_eq!(before.state, v1::IncidentState::Dispatched as i32);
    assert_eq!(before.dispatch_id, format!("{a}/a-1/1"));
    f.dispatch_in_b("b-1").await;

    // The poison command panics after the state took it (an officer dispatched to it), so
    // only the rebuild from the journal can take that back.
    let calls = Arc::new(AtomicU32::new(0));
    let _hook = inject_panic_after_apply(&a, submit_of("a-poison", calls.clone()));
    for try_ in 1..=2u32 {
        let status = expect_code(f.submit("a-poison", &a).await, Code::Internal);
        assert!(
            status.message().contains(&format!("district {a} failed"))
                && status
                    .message()
                    .contains(&format!("panic {try_} of 3 before quarantine")),
            "{status:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), try_);

        // A is as its journal has it: a-1 still dispatched to its officer, no trace of the
        // poison, and the officer the poison took is free again.
        let snapshot = f.node.snapshot(&a).await.unwrap();
        let active: Vec<(&str, IncidentState)> = snapshot
            .active
            .iter()
            .map(|i| (i.id.as_str(), i.state))
            .collect();
        assert_eq!(active, [("a-1", IncidentState::Dispatched)]);
        assert!(snapshot.queue.is_empty(), "{:?}", snapshot.queue);
        let busy: Vec<(&str, Option<&str>)> = snapshot
            .officers
            .iter()
            .filter(|o| o.incident_id.is_some())
            .map(|o| (o.id.as_str(), o.incident_id.as_ref().map(|i| i.as_str())))
            .collect();
        assert_eq!(busy, [(before.officer_id.as_str(), Some("a-1"))]);

        // B, on the same thread, dispatches between the panics.
        f.dispatch_in_b(&format!("b-between-{try_}")).await;
    }

    // The third panic quarantines it: recorded once, with what it was.
    let status = expect_code(f.submit("a-poison", &a).await, Code::FailedPrecondition);
    assert!(
        status.message().contains(&format!(
            "command quarantined in district {a} after 3 panics"
        )) && status
            .message()
            .contains("this node's in-memory quarantine record"),
        "{status:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let records = sink.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.district.as_str(), r.kind, r.tries),
        (a.as_str(), "submit", 3)
    );
    assert_eq!(r.incident.as_deref(), Some("a-poison"));
    assert_eq!((r.officer.as_deref(), r.dispatch.as_deref()), (None, None));
    assert_eq!(
        r.panic,
        format!("injected panic: district {a}, submit command")
    );
    match serde_json::from_str::<Command>(&r.command).unwrap() {
        Command::Submit(i) => {
            assert_eq!(i.id, "a-poison");
            assert_eq!(i.district_id, a.as_str());
        }
        other => panic!("expected a submit, got {other:?}"),
    }

    // A fourth try is refused at once: the handler never reaches the state.
    expect_code(f.submit("a-poison", &a).await, Code::FailedPrecondition);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(sink.recorded(), 1);

    // A carries on with other incidents, and B with its own.
    let other = f.submit("a-2", &a).await.unwrap();
    assert_eq!(other.state, v1::IncidentState::Dispatched as i32);
    assert_eq!(other.dispatch_id, format!("{a}/a-2/1"));
    f.dispatch_in_b("b-after").await;
    let snapshot = f.node.snapshot(&a).await.unwrap();
    let mut active: Vec<&str> = snapshot.active.iter().map(|i| i.id.as_str()).collect();
    active.sort_unstable();
    assert_eq!(active, ["a-1", "a-2"]);

    assert_eq!(
        f.node.supervisor().stats(),
        SupervisionStats {
            panics: 3,
            quarantined: 1,
            refused: 1,
            tracked: 1,
            forgotten: 0,
        }
    );
}

#[actix_rt::test]
async fn a_command_that_panics_once_then_passes_is_not_quarantined() {
    let f = fixture("once", Arc::new(MemoryQuarantine::default())).await;
    let a = f.a.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let hook = inject_panic(&a, submit_of("a-flaky", calls.clone()));
    expect_code(f.submit("a-flaky", &a).await, Code::Internal);
    drop(hook);
    let passed = f.submit("a-flaky", &a).await.unwrap();
    assert_eq!(passed.state, v1::IncidentState::Dispatched as i32);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = f.node.supervisor().stats();
    assert_eq!(
        (stats.panics, stats.quarantined, stats.tracked),
        (1, 0, 0),
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn a_node_refuses_to_quarantine_before_the_first_panic() {
    let config = NodeConfig {
        supervision: SupervisionConfig {
            quarantine_after: 0,
        },
        ..NodeConfig::default()
    };
    let clock = Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)));
    let hub = Arc::new(FeedHub::new(clock.clone(), FeedLimits::default()));
    let notify = NotifyClient::in_process(Arc::new(NotificationService::new(hub)), options());
    let directory = directory("zero-d01", "zero-d02", "zero-s1");
    let cases = Arc::new(CaseSquadService::from_directory(
        &directory,
        2,
        clock.clone(),
    ));
    let outbox = Outbox::spawn(notify, CaseClient::in_process(cases, options()));
    let err = DistrictNode::start_on_new_arbiters(
        &directory,
        config,
        clock,
        outbox,
        Arc::new(MemoryJournal::new()),
        1,
    )
    .await
    .unwrap_err();
    assert_eq!(err, "supervision.quarantine_after must be >= 1, got 0");
}

#[actix_rt::test]
async fn a_quarantined_command_lands_once_in_the_redis_stream_with_its_fields() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(RedisQuarantine::connect(&redis.url()).unwrap());
    let f = fixture("red", sink.clone()).await;
    let a = f.a.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let _hook = inject_panic(&a, submit_of("a-poison", calls.clone()));
    for _ in 0..2 {
        expect_code(f.submit("a-poison", &a).await, Code::Internal);
        f.dispatch_in_b(&format!("b-{}", calls.load(Ordering::SeqCst)))
            .await;
    }
    let status = expect_code(f.submit("a-poison", &a).await, Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("see the Redis stream district:quarantine"),
        "{status:?}"
    );
    expect_code(f.submit("a-poison", &a).await, Code::FailedPrecondition);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = common::stream_entries(&redis.url(), RedisQuarantine::KEY).await;
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    let mut names: Vec<&str> = e.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["command", "district", "incident", "kind", "panic", "tries"]
    );
    assert_eq!(e["district"], a);
    assert_eq!(e["kind"], "submit");
    assert_eq!(e["incident"], "a-poison");
    assert_eq!(e["tries"], "3");
    assert_eq!(
        e["panic"],
        format!("injected panic: district {a}, submit command")
    );
    match serde_json::from_str::<Command>(&e["command"]).unwrap() {
        Command::Submit(i) => assert_eq!(i.id, "a-poison"),
        other => panic!("expected a submit, got {other:?}"),
    }
    assert_eq!((sink.written(), sink.unrecorded()), (1, 0));
    let stats = f.node.supervisor().stats();
    assert_eq!((stats.panics, stats.quarantined, stats.refused), (3, 1, 1));
}
