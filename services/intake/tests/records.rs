//! Conformance of intake's record backends: the same cases run against the in-memory store and
//! against Redis (a private `redis-server` on a free loopback port), which must behave alike.
//! Then the cases only Redis can have: replicas racing, a Redis restart, retention by TTL.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dispatch_core::{Category, Disposition, Incident, IncidentState, LatLng, Timestamp};
use dispatch_intake::records::{IncidentRecords, MemoryRecords, RedisRecords};
use dispatch_intake::store::{Created, Placement, routed_incident};
use dispatch_intake::validate::ValidCall;
use dispatch_redis_test::{Options, RedisServer};

const T0: i64 = 1_700_000_000_000;
const LONG: Duration = Duration::from_secs(60);

fn incident(id: &str, call_id: &str, received_ms: i64) -> Incident {
    let call = ValidCall {
        call_id: call_id.into(),
        category: Category::Burglary,
        location: LatLng::new(23.02, 113.75).unwrap(),
        description: "window forced".into(),
    };
    let placement = Placement {
        district_id: "nc-d03".into(),
        station_id: "nc-st1".into(),
        sub_bureau_id: "nancheng".into(),
        routed_to_nearest: false,
    };
    routed_incident(
        id.into(),
        &call,
        placement,
        Timestamp(received_ms),
        Timestamp(received_ms + 200),
    )
    .unwrap()
}

fn advanced(i: &Incident, states: &[IncidentState]) -> Incident {
    let mut i = i.clone();
    for (n, s) in states.iter().enumerate() {
        i.transition(*s, Timestamp(T0 + 1_000 * (n as i64 + 1)))
            .unwrap();
    }
    if i.state == IncidentState::Cleared {
        i.disposition = Some(Disposition::Resolved);
    }
    i
}

fn redis() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn on_redis(server: &RedisServer, retention: Duration) -> Arc<dyn IncidentRecords> {
    Arc::new(RedisRecords::connect(&server.url(), retention).unwrap())
}

/// Retries `check` for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 10 s: {what}");
}

async fn first_report_creates_a_second_gets_the_record(r: Arc<dyn IncidentRecords>) {
    let a = incident("inc-a", "c-1", T0);
    assert_eq!(
        r.create(a.clone(), "t1", LONG).await.unwrap(),
        Created::New(a.clone())
    );
    // A concurrent report of the same call routed it and named it otherwise.
    let b = incident("inc-b", "c-1", T0 + 5);
    assert_eq!(
        r.create(b, "t2", LONG).await.unwrap(),
        Created::Existing(a.clone())
    );
    // The same command sent again after a lost reply: still this attempt's record.
    assert_eq!(
        r.create(a.clone(), "t1", LONG).await.unwrap(),
        Created::New(a.clone())
    );
    assert_eq!(r.find_call("c-1").await.unwrap(), Some(a.clone()));
    assert_eq!(r.get("inc-a").await.unwrap(), Some(a));
    assert_eq!(r.get("inc-b").await.unwrap(), None);
    assert_eq!(r.find_call("c-2").await.unwrap(), None);
    assert_eq!(r.len().await.unwrap(), 1);
}

async fn a_lease_lets_one_attempt_through_and_only_its_holder_releases_it(
    r: Arc<dyn IncidentRecords>,
) {
    let a = incident("inc-a", "c-1", T0);
    r.create(a.clone(), "t1", LONG).await.unwrap();
    assert_eq!(r.take_lease("inc-a", "t2", LONG).await.unwrap(), None);
    assert!(r.stranded(10).await.unwrap().is_empty());
    // Another attempt's end does not free t1's lease.
    r.handoff_done("inc-a", "t2", None).await.unwrap();
    assert_eq!(r.take_lease("inc-a", "t3", LONG).await.unwrap(), None);
    // t1 failed: free at once, stranded, and taken by exactly one next attempt.
    assert_eq!(
        r.handoff_done("inc-a", "t1", None).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(r.stranded(10).await.unwrap(), ["inc-a"]);
    assert_eq!(r.take_lease("inc-a", "t3", LONG).await.unwrap(), Some(a));
    assert_eq!(r.take_lease("inc-a", "t4", LONG).await.unwrap(), None);
}

async fn a_lease_of_a_vanished_claimer_lapses(r: Arc<dyn IncidentRecords>) {
    let a = incident("inc-a", "c-1", T0);
    r.create(a.clone(), "dead", Duration::from_millis(150))
        .await
        .unwrap();
    eventually("the lease lapsed", async || {
        r.stranded(10).await.unwrap() == ["inc-a"]
    })
    .await;
    assert_eq!(r.take_lease("inc-a", "t2", LONG).await.unwrap(), Some(a));
}

async fn records_only_move_forward_and_leave_the_sweep_once_taken(r: Arc<dyn IncidentRecords>) {
    let a = incident("inc-a", "c-1", T0);
    r.create(a.clone(), "t1", LONG).await.unwrap();
    let queued = advanced(&a, &[IncidentState::Queued]);
    let dispatched = advanced(&a, &[IncidentState::Queued, IncidentState::Dispatched]);
    assert_eq!(
        r.handoff_done("inc-a", "t1", Some(queued.clone()))
            .await
            .unwrap(),
        Some(queued.clone())
    );
    assert!(
        r.stranded(10).await.unwrap().is_empty(),
        "the district has it"
    );
    assert_eq!(r.take_lease("inc-a", "t2", LONG).await.unwrap(), None);
    assert!(r.apply_update(dispatched.clone()).await.unwrap());
    assert!(!r.apply_update(queued).await.unwrap(), "older revision");
    assert!(
        !r.apply_update(dispatched.clone()).await.unwrap(),
        "same revision"
    );
    assert_eq!(r.get("inc-a").await.unwrap(), Some(dispatched));
    assert!(
        !r.apply_update(incident("inc-x", "c-x", T0)).await.unwrap(),
        "unknown"
    );
    assert_eq!(r.get("inc-x").await.unwrap(), None);
}

async fn stranded_lists_the_oldest_call_first(r: Arc<dyn IncidentRecords>) {
    for (id, call, at) in [
        ("inc-b", "c-b", T0 + 2_000),
        ("inc-a", "c-a", T0),
        ("inc-c", "c-c", T0 + 1_000),
    ] {
        r.create(incident(id, call, at), "t", LONG).await.unwrap();
        r.handoff_done(id, "t", None).await.unwrap();
    }
    assert_eq!(r.stranded(10).await.unwrap(), ["inc-a", "inc-c", "inc-b"]);
    assert_eq!(r.stranded(2).await.unwrap(), ["inc-a", "inc-c"]);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryRecords::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = super::redis();
                    super::$case(super::on_redis(&server, super::LONG)).await;
                }
            )*
        }
    };
}

conformance!(
    first_report_creates_a_second_gets_the_record,
    a_lease_lets_one_attempt_through_and_only_its_holder_releases_it,
    a_lease_of_a_vanished_claimer_lapses,
    records_only_move_forward_and_leave_the_sweep_once_taken,
    stranded_lists_the_oldest_call_first,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_on_one_call_make_one_incident() {
    let server = redis();
    for round in 0..20 {
        let call = format!("c-race-{round}");
        let replicas: Vec<Arc<dyn IncidentRecords>> =
            (0..4).map(|_| on_redis(&server, LONG)).collect();
        let tasks: Vec<_> = replicas
            .into_iter()
            .enumerate()
            .map(|(n, r)| {
                let inc = incident(&format!("inc-{round}-{n}"), &call, T0);
                tokio::spawn(async move { r.create(inc, &format!("t{n}"), LONG).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        let mut answered = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Created::New(i) => winners.push(i.id),
                Created::Existing(i) => answered.push(i.id),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert!(answered.iter().all(|id| *id == winners[0]), "{answered:?}");
    }
    assert_eq!(on_redis(&server, LONG).len().await.unwrap(), 20);
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_acknowledged_and_the_backend_reconnects() {
    let mut server = redis();
    let r = on_redis(&server, LONG);
    let a = incident("inc-a", "c-1", T0);
    r.create(a.clone(), "t1", LONG).await.unwrap();
    let queued = advanced(&a, &[IncidentState::Queued]);
    r.handoff_done("inc-a", "t1", Some(queued.clone()))
        .await
        .unwrap();
    // kill -9: with fsync always, every acknowledged write is on disk.
    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(r.find_call("c-1").await.unwrap(), Some(queued));
    let b = incident("inc-b", "c-2", T0);
    assert_eq!(
        r.create(b.clone(), "t", LONG).await.unwrap(),
        Created::New(b)
    );
}

#[tokio::test]
async fn while_redis_is_down_calls_fail_as_unavailable_and_work_again_after() {
    let mut server = redis();
    let r = on_redis(&server, LONG);
    r.create(incident("inc-a", "c-1", T0), "t", LONG)
        .await
        .unwrap();
    server.stop().unwrap();
    let err = r.find_call("c-1").await.unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    server.restart().unwrap();
    assert!(r.find_call("c-1").await.unwrap().is_some());
}

#[tokio::test]
async fn closed_records_leave_redis_after_the_retention_and_open_ones_stay() {
    let server = redis();
    let r = on_redis(&server, Duration::from_millis(300));
    let open = incident("inc-open", "c-open", T0);
    let closed = incident("inc-closed", "c-closed", T0);
    r.create(open, "t", LONG).await.unwrap();
    r.create(closed.clone(), "t", LONG).await.unwrap();
    let cleared = advanced(
        &closed,
        &[
            IncidentState::Queued,
            IncidentState::Dispatched,
            IncidentState::OnScene,
            IncidentState::Cleared,
        ],
    );
    assert!(r.apply_update(cleared).await.unwrap());
    eventually("the closed record expired", async || {
        r.get("inc-closed").await.unwrap().is_none()
    })
    .await;
    assert_eq!(r.find_call("c-closed").await.unwrap(), None);
    assert!(r.get("inc-open").await.unwrap().is_some());
    assert!(
        r.stranded(10)
            .await
            .unwrap()
            .iter()
            .all(|id| id != "inc-closed")
    );
}

#[tokio::test]
async fn memory_purges_closed_records_after_the_retention() {
    let r = MemoryRecords::new();
    let closed = incident("inc-closed", "c-closed", T0);
    r.create(closed.clone(), "t", LONG).await.unwrap();
    let cleared = advanced(
        &closed,
        &[
            IncidentState::Queued,
            IncidentState::Dispatched,
            IncidentState::OnScene,
            IncidentState::Cleared,
        ],
    );
    let cleared_at = cleared.times.cleared_at.unwrap();
    assert!(r.apply_update(cleared).await.unwrap());
    assert_eq!(r.purge_closed(cleared_at).await.unwrap(), 0);
    assert_eq!(
        r.purge_closed(Timestamp(cleared_at.0 + 1)).await.unwrap(),
        1
    );
    assert_eq!(r.find_call("c-closed").await.unwrap(), None);
}
