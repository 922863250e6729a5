//! Membership against a private `redis-server` on a free loopback port: members see each other,
//! a member that stops heartbeating drops out within TTL + reconcile, a graceful leave is seen
//! at once, and a Redis restart that lost everything is ridden out by re-registering and
//! subscribing again, with `is_subscribed` false meanwhile.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use dispatch_cluster::{ClusterConfig, Error, Membership};
use dispatch_redis_test::{Options, RedisServer};
use support::{SETTLE, eventually};

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// Announcements only: a reconcile timer of a minute cannot explain anything a test sees
/// within seconds.
fn announcements_only() -> ClusterConfig {
    ClusterConfig {
        reconcile_every: Duration::from_secs(60),
        ..ClusterConfig::default()
    }
}

fn ids(m: &Membership) -> Vec<String> {
    m.live().ids().map(str::to_owned).collect()
}

async fn join(url: &str, node: &str, config: ClusterConfig) -> Membership {
    Membership::join(url, node, &format!("{node}.local:50053"), config)
        .await
        .unwrap()
}

#[tokio::test]
async fn three_members_see_each_other_with_their_addresses() {
    let server = redis();
    let config = announcements_only();
    let a = join(&server.url(), "node-a", config).await;
    let b = join(&server.url(), "node-b", config).await;
    let c = join(&server.url(), "node-c", config).await;
    let all = ["node-a", "node-b", "node-c"];
    eventually("every member sees all three", SETTLE, || {
        [&a, &b, &c].iter().all(|m| ids(m) == all)
    })
    .await;
    assert_eq!(a.live().addr("node-c"), Some("node-c.local:50053"));
    assert_eq!(c.live().addr("node-a"), Some("node-a.local:50053"));
    assert_eq!(b.node_id(), Some("node-b"));

    // An observer follows the set without being in it.
    let observer = Membership::observe(&server.url(), config).await.unwrap();
    assert_eq!(ids(&observer), all);
    assert_eq!(observer.node_id(), None);
}

#[tokio::test]
async fn a_member_that_stops_heartbeating_drops_out_within_ttl_and_reconcile() {
    let server = redis();
    let config = ClusterConfig::default();
    let a = join(&server.url(), "node-a", config).await;
    let b = join(&server.url(), "node-b", config).await;
    let c = join(&server.url(), "node-c", config).await;
    eventually("all three live", SETTLE, || {
        ids(&a).len() == 3 && ids(&b).len() == 3
    })
    .await;
    // A crash: no leave, the registration stays until its TTL runs out.
    drop(c);
    // The last heartbeat was up to one period before the drop; 3 s of slack for a loaded
    // test machine.
    let bound =
        config.heartbeat_every + config.node_ttl + config.reconcile_every + Duration::from_secs(3);
    eventually("node-c gone from both views", bound, || {
        ids(&a) == ["node-a", "node-b"] && ids(&b) == ["node-a", "node-b"]
    })
    .await;
}

#[tokio::test]
async fn a_graceful_leave_is_seen_at_once_not_after_the_ttl() {
    let server = redis();
    let config = ClusterConfig {
        node_ttl: Duration::from_secs(60),
        ..announcements_only()
    };
    let a = join(&server.url(), "node-a", config).await;
    let mut b = join(&server.url(), "node-b", config).await;
    eventually("a sees b", SETTLE, || ids(&a).len() == 2).await;
    b.leave().await.unwrap();
    // Neither the TTL (60 s) nor the reconcile timer (60 s) can explain this: the announcement.
    eventually("a sees b leave", SETTLE, || ids(&a) == ["node-a"]).await;
    // Leaving twice changes nothing.
    b.leave().await.unwrap();
}

#[tokio::test]
async fn a_redis_restart_that_lost_everything_is_ridden_out_by_itself() {
    // No AOF: the restart comes back empty, so only the members can put themselves back.
    let mut server = RedisServer::start_with(Options {
        append_only: false,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let config = announcements_only();
    let a = join(&server.url(), "node-a", config).await;
    let b = join(&server.url(), "node-b", config).await;
    eventually("both subscribed, each sees both", SETTLE, || {
        a.is_subscribed() && b.is_subscribed() && ids(&a).len() == 2 && ids(&b).len() == 2
    })
    .await;

    server.stop().unwrap();
    eventually("neither is subscribed while Redis is down", SETTLE, || {
        !a.is_subscribed() && !b.is_subscribed()
    })
    .await;

    server.restart().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let start = Instant::now();
    loop {
        let registered: Vec<String> = redis::cmd("ZRANGE")
            .arg("cluster:nodes")
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        if registered == ["node-a", "node-b"] {
            break;
        }
        assert!(
            start.elapsed() < SETTLE,
            "not registered again: {registered:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("both subscribed again", SETTLE, || {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
    eventually("each sees both again", SETTLE, || {
        ids(&a).len() == 2 && ids(&b).len() == 2
    })
    .await;

    // The new subscriptions carry announcements: a join is seen long before any reconcile.
    let _c = join(&server.url(), "node-c", config).await;
    eventually("both see the newcomer", SETTLE, || {
        ids(&a).len() == 3 && ids(&b).len() == 3
    })
    .await;
}

#[tokio::test]
async fn a_node_cannot_join_while_redis_is_down_or_with_a_bad_id() {
    let mut server = redis();
    let url = server.url();
    let bad = Membership::join(&url, "node a", "x:1", ClusterConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::NodeId { .. }), "{bad:?}");
    server.stop().unwrap();
    let down = Membership::join(&url, "node-a", "x:1", ClusterConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(down, Error::Unavailable(_)), "{down:?}");
}
