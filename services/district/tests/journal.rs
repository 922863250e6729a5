//! Conformance of the district journal backends: the same cases against the in-memory journal
//! and against Redis (a private `redis-server` on a free loopback port); then what only Redis
//! has to show: a kill -9 and restart of Redis loses no acknowledged entry.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dispatch_core::district::{Command, Entry};
use dispatch_core::{
    Category, DistrictConfig, DistrictState, Incident, IncidentState, LatLng, Officer,
    OfficerStatus, Timestamp,
};
use dispatch_district::journal::{Error, Journal, MemoryJournal, RedisJournal};
use dispatch_redis_test::{Options, RedisServer};

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn scene() -> LatLng {
    LatLng::new(23.02, 113.75).unwrap()
}

fn fresh() -> DistrictState {
    let mut d = DistrictState::new("d1".into(), DistrictConfig::default());
    for id in ["o1", "o2"] {
        d.add_officer(Officer::off_duty(id.into(), "d1".into(), T0));
    }
    d
}

fn routed(id: &str, at: Timestamp) -> Incident {
    let mut i = Incident::received(
        id.into(),
        format!("call-{id}").into(),
        Category::Theft,
        scene(),
        "bag snatched".into(),
        at,
    );
    i.district_id = "d1".into();
    i.transition(IncidentState::Routed, at).unwrap();
    i
}

/// Applies `command` at `at` to `d` and returns its journal entry.
fn step(d: &mut DistrictState, command: Command, at: Timestamp) -> Entry {
    let (_, effects) = d.apply(&command, at).unwrap();
    Entry {
        at,
        command,
        effects,
    }
}

/// A few minutes of a district: two officers sign on, three calls, one worked to the end.
fn history(d: &mut DistrictState) -> Vec<Entry> {
    let t = |s: f64| T0.plus_seconds(s);
    let mut log = Vec::new();
    for (n, id) in ["o1", "o2"].iter().enumerate() {
        log.push(step(
            d,
            Command::SetStatus {
                officer_id: (*id).into(),
                status: OfficerStatus::Available,
                location: Some(LatLng::new(23.02 + 0.01 * (n as f64 + 1.0), 113.75).unwrap()),
            },
            t(n as f64),
        ));
    }
    for (n, id) in ["I1", "I2", "I3"].iter().enumerate() {
        log.push(step(
            d,
            Command::Submit(Box::new(routed(id, t(10.0 + n as f64)))),
            t(11.0 + n as f64),
        ));
    }
    log.push(step(
        d,
        Command::Acknowledge {
            officer_id: "o1".into(),
            dispatch_id: "d1/I1/1".into(),
        },
        t(30.0),
    ));
    log.push(step(
        d,
        Command::Arrive {
            officer_id: "o1".into(),
            dispatch_id: "d1/I1/1".into(),
        },
        t(200.0),
    ));
    log
}

async fn appends_are_numbered_and_a_reopen_gets_them_back(j: Arc<dyn Journal>) {
    let first = j.open("d1").await.unwrap();
    assert_eq!(first.snapshot, None);
    assert!(first.entries.is_empty());
    assert_eq!((first.delivered, first.last_seq()), (0, 0));
    let mut d = fresh();
    let log = history(&mut d);
    for (n, entry) in log.iter().enumerate() {
        assert_eq!(
            j.append("d1", first.epoch, entry).await.unwrap(),
            n as u64 + 1
        );
    }
    let again = j.open("d1").await.unwrap();
    assert!(again.epoch > first.epoch);
    let seqs: Vec<u64> = again.entries.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
    let entries: Vec<Entry> = again.entries.into_iter().map(|(_, e)| e).collect();
    assert_eq!(entries, log);
    // Another district's journal is its own.
    assert!(j.open("d2").await.unwrap().entries.is_empty());
}

async fn an_owner_opened_over_is_fenced_off(j: Arc<dyn Journal>) {
    let old = j.open("d1").await.unwrap();
    let mut d = fresh();
    let log = history(&mut d);
    j.append("d1", old.epoch, &log[0]).await.unwrap();
    let new = j.open("d1").await.unwrap();
    let refused = j.append("d1", old.epoch, &log[1]).await.unwrap_err();
    assert_eq!(
        refused,
        Error::Fenced {
            district: "d1".into(),
            ours: old.epoch,
            current: new.epoch,
        }
    );
    assert!(matches!(
        j.snapshot("d1", old.epoch, 1, &d).await.unwrap_err(),
        Error::Fenced { .. }
    ));
    // The refused append left no trace; the new owner continues the numbering.
    assert_eq!(j.append("d1", new.epoch, &log[1]).await.unwrap(), 2);
    let seen = j.open("d1").await.unwrap();
    assert_eq!(seen.entries.len(), 2);
    assert_eq!(seen.entries[1].1, log[1]);
}

async fn a_load_keeps_the_epoch_held_and_refuses_an_older_one(j: Arc<dyn Journal>) {
    let owner = j.open("d1").await.unwrap();
    let mut d = fresh();
    let log = history(&mut d);
    j.append("d1", owner.epoch, &log[0]).await.unwrap();
    let loaded = j.load("d1", owner.epoch).await.unwrap();
    assert_eq!(loaded.epoch, owner.epoch);
    assert_eq!(loaded.entries, vec![(1, log[0].clone())]);
    // Loading raised nothing: the owner goes on appending at its epoch.
    assert_eq!(j.append("d1", owner.epoch, &log[1]).await.unwrap(), 2);
    let new = j.open("d1").await.unwrap();
    assert_eq!(new.epoch, owner.epoch + 1);
    assert_eq!(
        j.load("d1", owner.epoch).await.unwrap_err(),
        Error::Fenced {
            district: "d1".into(),
            ours: owner.epoch,
            current: new.epoch,
        }
    );
    assert_eq!(j.load("d1", new.epoch).await.unwrap().entries.len(), 2);
}

async fn a_snapshot_and_the_delivered_mark_trim_and_rebuild_exactly(j: Arc<dyn Journal>) {
    let owner = j.open("d1").await.unwrap();
    let mut d = fresh();
    let log = history(&mut d);
    let mut at_three = None;
    let mut replica = fresh();
    for (n, entry) in log.iter().enumerate() {
        let seq = j.append("d1", owner.epoch, entry).await.unwrap();
        replica.apply(&entry.command, entry.at).unwrap();
        if seq == 3 {
            at_three = Some(replica.clone());
        }
        assert_eq!(seq, n as u64 + 1);
    }
    j.snapshot("d1", owner.epoch, 3, at_three.as_ref().unwrap())
        .await
        .unwrap();
    // Nothing delivered yet: every entry is still held for its effects.
    let loaded = j.open("d1").await.unwrap();
    assert_eq!(loaded.entries.len(), log.len());
    assert_eq!(loaded.snapshot_seq(), 3);
    j.delivered("d1", 5).await.unwrap();
    j.delivered("d1", 4).await.unwrap(); // never moves back
    let loaded = j.open("d1").await.unwrap();
    assert_eq!(loaded.delivered, 5);
    let seqs: Vec<u64> = loaded.entries.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        [4, 5, 6, 7],
        "entries after min(snapshot 3, delivered 5)"
    );
    // A new owner rebuilds the district exactly from snapshot + tail.
    let (snap_seq, mut rebuilt) = loaded.snapshot.clone().unwrap();
    let tail: Vec<&Entry> = loaded
        .entries
        .iter()
        .filter(|(s, _)| *s > snap_seq)
        .map(|(_, e)| e)
        .collect();
    rebuilt.replay(tail).unwrap();
    assert_eq!(rebuilt, d);
    assert_eq!(loaded.last_seq(), 7);
}

fn redis() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryJournal::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = super::redis();
                    let journal = super::RedisJournal::connect(&server.url()).unwrap();
                    super::$case(std::sync::Arc::new(journal)).await;
                }
            )*
        }
    };
}

conformance!(
    appends_are_numbered_and_a_reopen_gets_them_back,
    an_owner_opened_over_is_fenced_off,
    a_load_keeps_the_epoch_held_and_refuses_an_older_one,
    a_snapshot_and_the_delivered_mark_trim_and_rebuild_exactly,
);

#[tokio::test]
async fn a_redis_kill_and_restart_loses_no_acknowledged_entry() {
    let mut server = redis();
    let j = RedisJournal::connect(&server.url()).unwrap();
    let owner = j.open("d1").await.unwrap();
    let mut d = fresh();
    let log = history(&mut d);
    for entry in &log[..4] {
        j.append("d1", owner.epoch, entry).await.unwrap();
    }
    server.kill().unwrap();
    server.restart().unwrap();
    // The same connection object reconnects; the owner carries on where it was.
    for entry in &log[4..] {
        j.append("d1", owner.epoch, entry).await.unwrap();
    }
    let loaded = j.open("d1").await.unwrap();
    let mut rebuilt = fresh();
    rebuilt
        .replay(loaded.entries.iter().map(|(_, e)| e))
        .unwrap();
    assert_eq!(rebuilt, d);
}
