//! District leases against a private `redis-server`: one winner of a race, a lease lost by not
//! renewing goes to the next node at a higher epoch, a release is announced and lets the next
//! node in at once, the epoch survives a Redis restart; and the placement callers ask follows
//! the holders and the live set.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use dispatch_bus::ports::{Placement, PortError};
use dispatch_cluster::{
    Acquired, ClusterConfig, ClusterPlacement, Holder, Leases, Membership, Released, Renewal,
};
use dispatch_redis_test::{Options, RedisServer};
use support::{SETTLE, eventually};

const D: &str = "town-d01";

fn redis() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn leases(server: &RedisServer, node: &str, lease: Duration) -> Leases {
    Leases::connect(&server.url(), node, lease).unwrap()
}

fn held(node: &str, epoch: u64) -> Acquired {
    Acquired::Held(Holder {
        node: node.into(),
        epoch,
    })
}

#[tokio::test]
async fn two_nodes_racing_for_a_district_one_wins() {
    let server = redis();
    let a = leases(&server, "node-a", Duration::from_secs(30));
    let b = leases(&server, "node-b", Duration::from_secs(30));
    for round in 0..20 {
        let district = format!("town-d{round:02}");
        let (ra, rb) = tokio::join!(a.acquire(&district), b.acquire(&district));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // A fresh district's first epoch is 1; exactly one side has it, the other sees it held.
        match (&ra, &rb) {
            (Acquired::Won { epoch: 1 }, r) => assert_eq!(*r, held("node-a", 1)),
            (r, Acquired::Won { epoch: 1 }) => assert_eq!(*r, held("node-b", 1)),
            other => panic!("{district}: no single winner: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_holder_that_stops_renewing_loses_the_district_to_a_higher_epoch() {
    let server = redis();
    let lease = Duration::from_secs(2);
    let a = leases(&server, "node-a", lease);
    let b = leases(&server, "node-b", lease);
    assert_eq!(a.acquire(D).await.unwrap(), Acquired::Won { epoch: 1 });
    // Renewing every 200 ms holds it well past one lease length.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(a.renew(D, 1).await.unwrap(), Renewal::Renewed);
        assert_eq!(b.acquire(D).await.unwrap(), held("node-a", 1));
    }
    // a stops renewing (paused): once the lease lapses b gets it, one epoch higher.
    let start = Instant::now();
    let won = loop {
        match b.acquire(D).await.unwrap() {
            Acquired::Won { epoch } => break epoch,
            h => assert_eq!(h, held("node-a", 1)),
        }
        assert!(start.elapsed() < lease + SETTLE, "never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(won, 2);
    // a's renewal now fails and names the new holder; renewing at a wrong epoch never works.
    assert_eq!(
        a.renew(D, 1).await.unwrap(),
        Renewal::Lost(Some(Holder {
            node: "node-b".into(),
            epoch: 2
        }))
    );
    assert_eq!(
        b.renew(D, 1).await.unwrap(),
        Renewal::Lost(Some(Holder {
            node: "node-b".into(),
            epoch: 2
        }))
    );
    assert_eq!(b.renew(D, 2).await.unwrap(), Renewal::Renewed);
}

#[tokio::test]
async fn a_release_is_announced_and_lets_the_next_node_in_at_once() {
    let server = redis();
    // A minute-long lease: only the release can explain the next acquisition.
    let lease = Duration::from_secs(60);
    let a = leases(&server, "node-a", lease);
    let b = leases(&server, "node-b", lease);
    let observer = Membership::observe(&server.url(), ClusterConfig::default())
        .await
        .unwrap();
    let mut released = observer.released();
    eventually("observer subscribed", SETTLE, || observer.is_subscribed()).await;

    assert_eq!(a.acquire(D).await.unwrap(), Acquired::Won { epoch: 1 });
    assert_eq!(b.acquire(D).await.unwrap(), held("node-a", 1));
    // Only the holder at its epoch may release.
    assert!(!b.release(D, 1).await.unwrap());
    assert!(!a.release(D, 2).await.unwrap());
    assert_eq!(b.acquire(D).await.unwrap(), held("node-a", 1));

    assert!(a.release(D, 1).await.unwrap());
    let announced = tokio::time::timeout(SETTLE, released.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        announced,
        Released {
            district: D.into(),
            epoch: 1
        }
    );
    assert_eq!(b.acquire(D).await.unwrap(), Acquired::Won { epoch: 2 });
    // A second release of the old epoch changes nothing.
    assert!(!a.release(D, 1).await.unwrap());
    assert_eq!(a.acquire(D).await.unwrap(), held("node-b", 2));
}

#[tokio::test]
async fn the_epoch_never_goes_back_across_a_redis_restart() {
    let mut server = redis();
    let a = leases(&server, "node-a", Duration::from_secs(60));
    for expected in 1..=3 {
        assert_eq!(
            a.acquire(D).await.unwrap(),
            Acquired::Won { epoch: expected }
        );
        assert!(a.release(D, expected).await.unwrap());
    }
    server.restart().unwrap();
    // The connection is re-made by the retry policy.
    assert_eq!(a.acquire(D).await.unwrap(), Acquired::Won { epoch: 4 });
}

#[tokio::test]
async fn placement_names_the_holder_else_the_rendezvous_choice_else_nobody() {
    let server = redis();
    let url = server.url();
    // Announcements only: the minute-long timers cannot explain what is seen within seconds.
    let config = ClusterConfig {
        reconcile_every: Duration::from_secs(60),
        node_ttl: Duration::from_secs(60),
        ..ClusterConfig::default()
    };
    let mut node_b = Membership::join(&url, "node-b", "b:50053", config)
        .await
        .unwrap();
    let mut node_c = Membership::join(&url, "node-c", "c:50053", config)
        .await
        .unwrap();
    // Rendezvous over {node-b, node-c} gives town-d01 to node-b (the reference weights of the
    // `rendezvous` unit tests), but node-c holds its lease.
    let c = leases(&server, "node-c", Duration::from_secs(60));
    assert_eq!(c.acquire(D).await.unwrap(), Acquired::Won { epoch: 1 });

    let observer = Membership::observe(&url, config).await.unwrap();
    let placement = ClusterPlacement::start(observer, &url, [D, "town-d02"])
        .await
        .unwrap();
    assert_eq!(placement.owner(D), Ok("node-c".to_owned()));

    assert!(c.release(D, 1).await.unwrap());
    eventually(
        "the release hands the district to its rendezvous owner",
        SETTLE,
        || placement.owner(D) == Ok("node-b".to_owned()),
    )
    .await;

    match placement.owner("town-d99") {
        Err(PortError::Refused { field, .. }) => assert_eq!(field.as_deref(), Some("district_id")),
        other => panic!("{other:?}"),
    }

    node_b.leave().await.unwrap();
    node_c.leave().await.unwrap();
    eventually("no live node: nobody", SETTLE, || {
        matches!(placement.owner(D), Err(PortError::Unavailable { .. }))
    })
    .await;
}
