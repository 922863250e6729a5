//! One conformance suite run against both stores: the same cases, each an `async fn` over
//! `Arc<dyn CaseStore>`, for [`MemoryCaseStore`] and for [`RedisCaseStore`] on a private
//! `redis-server` (dispatch-redis-test); then what only Redis can show: replicas racing,
//! a crash, an outage.

use std::sync::Arc;

use dispatch_core::Timestamp;
use dispatch_redis_test::{Options, RedisServer};
use tokio::sync::Barrier;
use tonic::{Code, Status};

use super::*;
use crate::book::{CaseKind, case_id, investigator_id};
use crate::error::Error;

/// The stations of every store in these tests.
const STATIONS: [&str; 2] = ["st-a", "st-b"];

fn stations() -> Vec<String> {
    STATIONS.iter().map(|s| s.to_string()).collect()
}

fn req(incident_id: &str, station_id: &str, kind: CaseKind) -> CaseRequest {
    CaseRequest {
        case_id: case_id(incident_id),
        incident_id: incident_id.into(),
        station_id: station_id.into(),
        district_id: format!("{station_id}-d1"),
        kind,
    }
}

fn criminal(incident_id: &str, station_id: &str) -> CaseRequest {
    req(incident_id, station_id, CaseKind::Criminal)
}

/// `(investigator, load)` pairs of `station`'s squad from the loads given in id order.
fn loads(station: &str, of: &[u32]) -> Vec<(String, u32)> {
    of.iter()
        .enumerate()
        .map(|(i, n)| (format!("{station}-inv{:02}", i + 1), *n))
        .collect()
}

fn memory(investigators: u32) -> Arc<dyn CaseStore> {
    Arc::new(MemoryCaseStore::new(stations(), investigators))
}

async fn redis_on(server: &RedisServer, investigators: u32) -> Arc<dyn CaseStore> {
    Arc::new(
        RedisCaseStore::connect(&server.url(), stations(), investigators)
            .await
            .unwrap(),
    )
}

fn redis_server() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap()
}

// ---- the conformance suite ---------------------------------------------------------------

async fn opening_twice_gives_the_same_case_and_one_assignment(store: Arc<dyn CaseStore>) {
    let first = store
        .open(&criminal("inc-1", "st-b"), Timestamp(10))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(
        first.case,
        CaseRecord {
            case_id: "case-inc-1".into(),
            incident_id: "inc-1".into(),
            station_id: "st-b".into(),
            district_id: "st-b-d1".into(),
            kind: CaseKind::Criminal,
            investigator_id: "st-b-inv01".into(),
            opened_at: Timestamp(10),
        }
    );
    // Later, as the district's outbox retries: the case as it was opened, nothing assigned.
    let again = store
        .open(&criminal("inc-1", "st-b"), Timestamp(99))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.case, first.case);
    let listed = store.list("st-b").await.unwrap();
    assert_eq!(listed.loads, loads("st-b", &[1, 0, 0]));
    assert_eq!(listed.cases, vec![first.case]);
}

async fn cases_go_to_the_least_loaded_investigator_ties_by_id(store: Arc<dyn CaseStore>) {
    // Loads start 0,0,0: the first case goes to inv01 (a tie, lowest id), then inv02, inv03;
    // all then hold one and the fourth goes back to inv01. Station b's squad is separate.
    let opens = [
        ("i1", "st-a", "st-a-inv01"),
        ("i2", "st-a", "st-a-inv02"),
        ("i3", "st-b", "st-b-inv01"),
        ("i4", "st-a", "st-a-inv03"),
        ("i5", "st-a", "st-a-inv01"),
        ("i6", "st-b", "st-b-inv02"),
        ("i7", "st-a", "st-a-inv02"),
    ];
    for (t, (incident, station, investigator)) in (0..).zip(opens) {
        let opened = store
            .open(&criminal(incident, station), Timestamp(t))
            .await
            .unwrap();
        assert_eq!(opened.case.investigator_id, investigator, "{incident}");
    }
    assert_eq!(
        store.list("st-a").await.unwrap().loads,
        loads("st-a", &[2, 2, 1])
    );
    assert_eq!(
        store.list("st-b").await.unwrap().loads,
        loads("st-b", &[1, 1, 0])
    );
}

async fn get_and_list_show_what_was_opened_in_opening_order(store: Arc<dyn CaseStore>) {
    let administrative = req("i2", "st-a", CaseKind::Administrative);
    store
        .open(&criminal("i9", "st-a"), Timestamp(5_000))
        .await
        .unwrap();
    store.open(&administrative, Timestamp(7_000)).await.unwrap();
    store
        .open(&criminal("i1", "st-a"), Timestamp(5_000))
        .await
        .unwrap();
    let i2 = CaseRecord {
        case_id: "case-i2".into(),
        incident_id: "i2".into(),
        station_id: "st-a".into(),
        district_id: "st-a-d1".into(),
        kind: CaseKind::Administrative,
        investigator_id: "st-a-inv02".into(),
        opened_at: Timestamp(7_000),
    };
    assert_eq!(store.get("case-i2").await.unwrap(), i2);
    let listed = store.list("st-a").await.unwrap();
    // By opening time, then case id: i1 and i9 both at 5 s, i2 at 7 s.
    let ids: Vec<&str> = listed.cases.iter().map(|c| c.case_id.as_str()).collect();
    assert_eq!(ids, vec!["case-i1", "case-i9", "case-i2"]);
    assert_eq!(listed.cases[2], i2);
    assert_eq!(listed.cases[0].investigator_id, "st-a-inv03");
    assert_eq!(listed.loads, loads("st-a", &[1, 1, 1]));
    let other = store.list("st-b").await.unwrap();
    assert!(other.cases.is_empty());
    assert_eq!(other.loads, loads("st-b", &[0, 0, 0]));
}

async fn unknown_cases_and_stations_are_errors_that_change_nothing(store: Arc<dyn CaseStore>) {
    assert_eq!(
        store.get("case-nope").await.unwrap_err(),
        Error::UnknownCase("case-nope".into())
    );
    assert_eq!(
        store.list("st-zz").await.unwrap_err(),
        Error::UnknownStation("st-zz".into())
    );
    assert_eq!(
        store
            .open(&criminal("i1", "st-zz"), Timestamp(0))
            .await
            .unwrap_err(),
        Error::UnknownStation("st-zz".into())
    );
    assert_eq!(
        store.get("case-i1").await.unwrap_err(),
        Error::UnknownCase("case-i1".into())
    );
    // An incident that has its case gets it back, whatever station a later request names.
    let opened = store
        .open(&criminal("i1", "st-a"), Timestamp(1))
        .await
        .unwrap();
    let again = store
        .open(&criminal("i1", "st-zz"), Timestamp(2))
        .await
        .unwrap();
    assert_eq!((again.case, again.created), (opened.case, false));
    assert_eq!(
        store.list("st-a").await.unwrap().loads,
        loads("st-a", &[1, 0, 0])
    );
}

async fn an_empty_squad_has_nobody_to_assign_to(store: Arc<dyn CaseStore>) {
    assert_eq!(
        store
            .open(&criminal("i1", "st-a"), Timestamp(0))
            .await
            .unwrap_err(),
        Error::NoInvestigators("st-a".into())
    );
    assert_eq!(
        store
            .open(&criminal("i1", "st-zz"), Timestamp(0))
            .await
            .unwrap_err(),
        Error::UnknownStation("st-zz".into())
    );
    let listed = store.list("st-a").await.unwrap();
    assert_eq!(
        listed,
        SquadListing {
            cases: Vec::new(),
            loads: Vec::new()
        }
    );
    assert_eq!(
        store.get("case-i1").await.unwrap_err(),
        Error::UnknownCase("case-i1".into())
    );
}

async fn the_incidents_case_id_is_used_and_stays_its_own(store: Arc<dyn CaseStore>) {
    let mut own = criminal("inc-1", "st-a");
    own.case_id = "case-st-a-inc-1".into();
    let first = store.open(&own, Timestamp(10)).await.unwrap();
    assert!(first.created);
    assert_eq!(first.case.case_id, "case-st-a-inc-1");
    assert_eq!(store.get("case-st-a-inc-1").await.unwrap(), first.case);
    // The incident keeps its one case even if a repeat named another id (or none).
    for other_id in ["case-other", "case-inc-1"] {
        let mut repeat = criminal("inc-1", "st-a");
        repeat.case_id = other_id.into();
        let again = store.open(&repeat, Timestamp(20)).await.unwrap();
        assert_eq!((&again.case, again.created), (&first.case, false));
        assert_eq!(
            store.get(other_id).await.unwrap_err(),
            Error::UnknownCase(other_id.into())
        );
    }
    // Another incident cannot take the id: refused, nothing assigned.
    let mut thief = criminal("inc-2", "st-a");
    thief.case_id = "case-st-a-inc-1".into();
    assert_eq!(
        store.open(&thief, Timestamp(30)).await.unwrap_err(),
        Error::CaseIdTaken {
            case_id: "case-st-a-inc-1".into(),
            incident_id: "inc-1".into(),
        }
    );
    let listed = store.list("st-a").await.unwrap();
    assert_eq!(listed.loads, loads("st-a", &[1, 0, 0]));
    assert_eq!(listed.cases, vec![first.case]);
}

/// Each case against the in-memory book and against Redis, with `$investigators` per squad.
macro_rules! conformance {
    ($($case:ident: $investigators:expr),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory($investigators)).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = super::redis_server();
                    super::$case(super::redis_on(&server, $investigators).await).await;
                }
            )*
        }
    };
}

conformance! {
    opening_twice_gives_the_same_case_and_one_assignment: 3,
    cases_go_to_the_least_loaded_investigator_ties_by_id: 3,
    get_and_list_show_what_was_opened_in_opening_order: 3,
    unknown_cases_and_stations_are_errors_that_change_nothing: 3,
    an_empty_squad_has_nobody_to_assign_to: 0,
    the_incidents_case_id_is_used_and_stays_its_own: 3,
}

// ---- Redis only --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_one_incident_open_one_case() {
    let server = redis_server();
    // Two stores, two connections: two case-squad replicas.
    let replicas = [redis_on(&server, 3).await, redis_on(&server, 3).await];
    const ROUNDS: u32 = 20;
    for round in 0..ROUNDS {
        let start = Arc::new(Barrier::new(2));
        let racers = replicas.iter().zip([0, 1]).map(|(store, n)| {
            let (store, start) = (store.clone(), start.clone());
            let at = Timestamp(i64::from(round) * 1_000 + n);
            tokio::spawn(async move {
                start.wait().await;
                store
                    .open(&criminal(&format!("race-{round}"), "st-a"), at)
                    .await
            })
        });
        let mut outcomes = Vec::new();
        for racer in racers.collect::<Vec<_>>() {
            outcomes.push(racer.await.unwrap().unwrap());
        }
        let (x, y) = (&outcomes[0], &outcomes[1]);
        assert_eq!(x.case, y.case, "round {round}");
        assert!(
            x.created != y.created,
            "round {round}: exactly one opened it"
        );
        // One case per round, so the squad of three takes them in turn.
        assert_eq!(
            x.case.investigator_id,
            investigator_id("st-a", round % 3 + 1),
            "round {round}"
        );
    }
    let listed = replicas[1].list("st-a").await.unwrap();
    assert_eq!(listed.cases.len(), 20);
    // 20 cases over three: 7, 7, 6.
    assert_eq!(listed.loads, loads("st-a", &[7, 7, 6]));
}

#[tokio::test]
async fn a_crash_loses_no_opened_case() {
    let mut server = redis_server();
    let store = redis_on(&server, 3).await;
    let mut opened = Vec::new();
    for (t, incident) in (1..).zip(["k1", "k2", "k3", "k4"]) {
        let o = store
            .open(&criminal(incident, "st-a"), Timestamp(t))
            .await
            .unwrap();
        opened.push(o.case);
    }
    // SIGKILL: no shutdown flush; `appendfsync always` put each reply's write on disk first.
    server.kill().unwrap();
    server.restart().unwrap();
    for case in &opened {
        assert_eq!(&store.get(&case.case_id).await.unwrap(), case);
    }
    let listed = store.list("st-a").await.unwrap();
    assert_eq!(listed.cases, opened);
    assert_eq!(listed.loads, loads("st-a", &[2, 1, 1]));
    // The loads came back too: the next case goes to inv02, not inv01.
    let next = store
        .open(&criminal("k5", "st-a"), Timestamp(5))
        .await
        .unwrap();
    assert_eq!(next.case.investigator_id, "st-a-inv02");
}

#[tokio::test]
async fn redis_down_is_unavailable_and_cases_open_again_after_restart() {
    let mut server = redis_server();
    let store = redis_on(&server, 3).await;
    let first = store
        .open(&criminal("d1", "st-a"), Timestamp(1))
        .await
        .unwrap();
    server.stop().unwrap();
    // Only after `redis_conn::retry` gives up (about 15 s here: each of its tries waits out the
    // connection manager's own reconnect attempts), so one call is enough.
    let e = store
        .open(&criminal("d2", "st-a"), Timestamp(2))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("case-d2"), "{e}");
    assert_eq!(Status::from(e).code(), Code::Unavailable);
    server.restart().unwrap();
    let second = store
        .open(&criminal("d2", "st-a"), Timestamp(3))
        .await
        .unwrap();
    assert!(second.created);
    // inv01 holds d1, which survived the stop; the refused open assigned nothing.
    assert_eq!(second.case.investigator_id, "st-a-inv02");
    assert_eq!(second.case.opened_at, Timestamp(3));
    assert_eq!(store.get("case-d1").await.unwrap(), first.case);
}

#[test]
fn redis_errors_map_to_unavailable_only_when_they_may_pass() {
    let server = |code: &str| {
        let e = redis::RedisError::from((
            redis::ErrorKind::Server(match code {
                "LOADING" => redis::ServerErrorKind::BusyLoading,
                "READONLY" => redis::ServerErrorKind::ReadOnly,
                _ => redis::ServerErrorKind::ResponseError,
            }),
            "from the server",
        ));
        super::redis_store::failed("test".into())(e)
    };
    assert!(matches!(server("LOADING"), Error::Unavailable(_)));
    assert!(matches!(server("READONLY"), Error::Unavailable(_)));
    assert!(matches!(server("ERR"), Error::Store(_)));
    let refused =
        redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert!(matches!(
        super::redis_store::failed("test".into())(refused),
        Error::Unavailable(_)
    ));
}
