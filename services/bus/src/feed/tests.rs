//! Cursor and span rules, then one conformance suite run against both stores: the same cases,
//! each a generic `async fn` over `Arc<dyn FeedStore>`, for [`FeedHub`] and for
//! [`RedisFeedStore`] on a private `redis-server` (dispatch-redis-test).

use std::sync::Arc;
use std::time::Duration;

use dispatch_core::{ManualClock, Timestamp};
use dispatch_proto::v1;
use dispatch_redis_test::{Options, RedisServer};

use super::*;

/// The cluster time every notice of these tests is stamped with.
const NOW_MS: i64 = 1_700_000_000_123;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(Timestamp(NOW_MS)))
}

fn officer(id: &str) -> AudienceKey {
    AudienceKey::Officer(id.into())
}

fn order(dispatch_id: &str) -> v1::NoticeBody {
    v1::NoticeBody {
        kind: Some(v1::notice_body::Kind::DispatchOrder(v1::DispatchOrder {
            dispatch_id: dispatch_id.into(),
            ..Default::default()
        })),
    }
}

fn publication(audience: &AudienceKey, dispatch_id: &str, id: Option<&str>) -> Publication {
    Publication {
        audience: audience.clone(),
        body: order(dispatch_id),
        id: id.map(str::to_string),
    }
}

fn label(n: &v1::Notice) -> String {
    match n.body.as_ref().and_then(|b| b.kind.as_ref()) {
        Some(v1::notice_body::Kind::DispatchOrder(o)) => o.dispatch_id.clone(),
        other => format!("{other:?}"),
    }
}

/// (seq, dispatch id) of each notice.
fn seen(notices: &[v1::Notice]) -> Vec<(u64, String)> {
    notices.iter().map(|n| (n.seq, label(n))).collect()
}

fn at(epoch: u64, position: u64) -> Cursor {
    Cursor { epoch, position }
}

// ---- cursors and spans -------------------------------------------------------------------

#[test]
fn cursors_round_trip_through_their_wire_form() {
    let c = at(1_700_000_000_000_000, 42);
    assert_eq!(c.encode(), "1700000000000000-42");
    assert_eq!(Cursor::parse(&c.encode(), "resume_after").unwrap(), c);
    let max = at(u64::MAX, u64::MAX);
    assert_eq!(Cursor::parse(&max.encode(), "f").unwrap(), max);
    assert_eq!(Cursor::parse_resume("", "resume_after").unwrap(), None);
    assert_eq!(
        Cursor::parse_resume("7-0", "resume_after").unwrap(),
        Some(at(7, 0))
    );
}

#[test]
fn malformed_cursors_name_the_field_and_the_value() {
    for bad in [
        "",
        "42",
        "abc",
        "1-",
        "-1",
        "+1-2",
        "1-+2",
        "1-2-3",
        " 1-2",
        "1.5-2",
        "18446744073709551616-1",
    ] {
        let e = Cursor::parse(bad, "resume_after").unwrap_err();
        assert_eq!(e.field, "resume_after", "{bad:?}");
        assert!(
            e.rule.ends_with(&format!("got {bad:?}")),
            "{bad:?}: {}",
            e.rule
        );
    }
    assert_eq!(
        Cursor::parse_resume("x", "resume_after").unwrap_err().field,
        "resume_after"
    );
}

#[test]
fn a_span_accepts_exactly_the_cursors_it_can_resume_after() {
    // Epoch 5, notices 3..=6 kept (1 and 2 trimmed).
    let span = Span {
        epoch: Some(5),
        first: 3,
        last: 6,
    };
    for ok in [2, 3, 6] {
        assert_eq!(span.check(at(5, ok)), Ok(()), "position {ok}");
    }
    let refused = |c: Cursor| Error::OutOfRange {
        cursor: c,
        oldest: Some(at(5, 3)),
        newest: Some(at(5, 6)),
    };
    // 1 needs notice 2 (trimmed); 0 needs 1; 7 is past the end; epoch 4 is another history.
    for bad in [
        at(5, 1),
        at(5, 0),
        at(5, 7),
        at(4, 6),
        at(6, 6),
        at(5, u64::MAX),
    ] {
        assert_eq!(span.check(bad), Err(refused(bad)), "{bad}");
    }
    assert_eq!(span.head(), Some(at(5, 6)));

    let empty = Span {
        epoch: Some(5),
        first: 0,
        last: 0,
    };
    assert_eq!(empty.check(at(5, 0)), Ok(()));
    let err = empty.check(at(5, 1)).unwrap_err();
    assert_eq!(
        err,
        Error::OutOfRange {
            cursor: at(5, 1),
            oldest: None,
            newest: None
        }
    );
    assert_eq!(
        err.to_string(),
        "cursor 5-1 is out of range: the feed holds no notices"
    );
    assert_eq!(empty.head(), Some(at(5, 0)));
    assert_eq!(Span::NONE.head(), None);
    assert!(Span::NONE.check(at(5, 0)).is_err());
    assert_eq!(
        refused(at(5, 7)).to_string(),
        "cursor 5-7 is out of range: the feed holds notices from cursor 5-3 to cursor 5-6"
    );
}

// ---- the conformance suite ---------------------------------------------------------------

/// Limits small enough to see trimming: 3 per officer, 5 for the command center.
const SMALL: FeedLimits = FeedLimits {
    officer: 3,
    role: 5,
};

fn memory(limits: FeedLimits) -> Arc<dyn FeedStore> {
    Arc::new(FeedHub::new(clock(), limits))
}

async fn redis_on(server: &RedisServer, limits: FeedLimits) -> Arc<dyn FeedStore> {
    let config = RedisConfig {
        limits,
        ..RedisConfig::default()
    };
    Arc::new(
        RedisFeedStore::connect(&server.url(), clock(), config)
            .await
            .unwrap(),
    )
}

/// A Redis store whose wake-up subscription is up, so a wait from now on is woken by appends
/// (and not by the subscription coming up, which makes it return empty).
async fn redis_listening(server: &RedisServer) -> Arc<dyn FeedStore> {
    let store = RedisFeedStore::connect(&server.url(), clock(), RedisConfig::default())
        .await
        .unwrap();
    assert!(store.listening_within(Duration::from_secs(5)).await);
    Arc::new(store)
}

/// Two listening stores on `server` (this notification node and another) and the cursor of a
/// first notice `a1` (publication `p1`) on officer `a`'s feed.
async fn two_nodes_and_a_first_notice(
    server: &RedisServer,
) -> (Arc<dyn FeedStore>, Arc<dyn FeedStore>, AudienceKey, Cursor) {
    let here = redis_listening(server).await;
    let elsewhere = redis_listening(server).await;
    let a = officer("a");
    let first = here
        .append(vec![publication(&a, "a1", Some("p1"))])
        .await
        .unwrap()[0];
    (here, elsewhere, a, first)
}

fn redis_server() -> RedisServer {
    RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap()
}

async fn numbering_is_per_audience_and_gap_free(store: Arc<dyn FeedStore>) {
    let (a, b, cc) = (officer("a"), officer("b"), AudienceKey::CommandCenter);
    let cursors = store
        .append(vec![
            publication(&a, "a1", None),
            publication(&b, "b1", None),
            publication(&a, "a2", None),
            publication(&cc, "c1", None),
        ])
        .await
        .unwrap();
    let positions: Vec<u64> = cursors.iter().map(|c| c.position).collect();
    assert_eq!(positions, vec![1, 1, 2, 1]);
    assert_eq!(cursors[0].epoch, cursors[2].epoch);
    let more = store
        .append(vec![publication(&a, "a3", None)])
        .await
        .unwrap();
    assert_eq!(more, vec![at(cursors[0].epoch, 3)]);

    let notices = store.read(&a, None, 100).await.unwrap();
    assert_eq!(
        seen(&notices),
        vec![(1, "a1".into()), (2, "a2".into()), (3, "a3".into())]
    );
    for (n, c) in notices.iter().zip([cursors[0], cursors[2], more[0]]) {
        assert_eq!(n.cursor, c.encode());
        assert_eq!(
            n.published_at,
            Some(crate::convert::timestamp_to_wire(Timestamp(NOW_MS)))
        );
    }
    assert_eq!(
        store.span(&a).await.unwrap(),
        Span {
            epoch: Some(cursors[0].epoch),
            first: 1,
            last: 3
        }
    );
    assert_eq!(
        seen(&store.read(&b, None, 100).await.unwrap()),
        vec![(1, "b1".into())]
    );
}

async fn resume_gets_exactly_the_missed_notices_once(store: Arc<dyn FeedStore>) {
    let cc = AudienceKey::CommandCenter;
    let ps = (1..=5)
        .map(|i| publication(&cc, &format!("u{i}"), None))
        .collect();
    let cursors = store.append(ps).await.unwrap();
    let after_two = store.read(&cc, Some(cursors[1]), 100).await.unwrap();
    assert_eq!(
        seen(&after_two),
        vec![(3, "u3".into()), (4, "u4".into()), (5, "u5".into())]
    );
    // In bounded batches, each resuming after the previous one's last cursor.
    let first = store.read(&cc, Some(cursors[1]), 2).await.unwrap();
    assert_eq!(seen(&first), vec![(3, "u3".into()), (4, "u4".into())]);
    let last_seen = Cursor::parse(&first[1].cursor, "cursor").unwrap();
    let rest = store.read(&cc, Some(last_seen), 2).await.unwrap();
    assert_eq!(seen(&rest), vec![(5, "u5".into())]);
    // Caught up: nothing more, and no error.
    assert!(
        store
            .read(&cc, Some(cursors[4]), 2)
            .await
            .unwrap()
            .is_empty()
    );
    // Position 0 of the epoch: everything.
    let from_zero = at(cursors[0].epoch, 0);
    assert_eq!(
        store.read(&cc, Some(from_zero), 100).await.unwrap().len(),
        5
    );
}

async fn a_cursor_past_the_end_or_of_another_epoch_is_out_of_range(store: Arc<dyn FeedStore>) {
    let a = officer("a");
    let cursors = store
        .append(vec![
            publication(&a, "a1", None),
            publication(&a, "a2", None),
        ])
        .await
        .unwrap();
    let epoch = cursors[0].epoch;
    for bad in [
        at(epoch, 3),
        at(epoch, 1_000),
        at(epoch + 1, 1),
        at(epoch - 1, 2),
    ] {
        assert_eq!(
            store.read(&a, Some(bad), 10).await,
            Err(Error::OutOfRange {
                cursor: bad,
                oldest: Some(at(epoch, 1)),
                newest: Some(at(epoch, 2)),
            }),
            "{bad}"
        );
    }
    // A feed never written holds nothing to resume into.
    let nobody = officer("nobody");
    let err = store
        .read(&nobody, Some(at(epoch, 1)), 10)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::OutOfRange {
            cursor: at(epoch, 1),
            oldest: None,
            newest: None
        }
    );
    assert!(store.read(&nobody, None, 10).await.unwrap().is_empty());
}

async fn retention_trims_and_a_trimmed_cursor_is_out_of_range(store: Arc<dyn FeedStore>) {
    let a = officer("a");
    let ps = (1..=5)
        .map(|i| publication(&a, &format!("a{i}"), None))
        .collect();
    let cursors = store.append(ps).await.unwrap();
    let epoch = cursors[0].epoch;
    // SMALL keeps 3 per officer: 3, 4, 5.
    assert_eq!(
        store.span(&a).await.unwrap(),
        Span {
            epoch: Some(epoch),
            first: 3,
            last: 5
        }
    );
    assert_eq!(
        seen(&store.read(&a, None, 10).await.unwrap()),
        vec![(3, "a3".into()), (4, "a4".into()), (5, "a5".into())]
    );
    // After 2, the next needed is 3: still kept. After 1, notice 2 is gone.
    assert_eq!(store.read(&a, Some(cursors[1]), 10).await.unwrap().len(), 3);
    assert_eq!(
        store.read(&a, Some(cursors[0]), 10).await,
        Err(Error::OutOfRange {
            cursor: cursors[0],
            oldest: Some(at(epoch, 3)),
            newest: Some(at(epoch, 5)),
        })
    );
    // The command center keeps 5.
    let cc = AudienceKey::CommandCenter;
    let ps = (1..=7)
        .map(|i| publication(&cc, &format!("u{i}"), None))
        .collect();
    store.append(ps).await.unwrap();
    let span = store.span(&cc).await.unwrap();
    assert_eq!((span.first, span.last), (3, 7));
}

async fn a_publication_id_is_appended_once_and_answered_its_cursor(store: Arc<dyn FeedStore>) {
    let (a, b) = (officer("a"), officer("b"));
    let batch = vec![
        publication(&a, "d1", Some("p1")),
        publication(&a, "d1 again", Some("p1")),
        publication(&a, "d2", Some("p2")),
        publication(&a, "no id", None),
        publication(&a, "no id", None),
    ];
    let cursors = store.append(batch.clone()).await.unwrap();
    let epoch = cursors[0].epoch;
    let positions: Vec<u64> = cursors.iter().map(|c| c.position).collect();
    assert_eq!(positions, vec![1, 1, 2, 3, 4]);
    // A retry of the whole batch (the sender never saw the answer) appends only what has no id.
    let retried = store.append(batch).await.unwrap();
    assert_eq!(
        retried,
        vec![
            at(epoch, 1),
            at(epoch, 1),
            at(epoch, 2),
            at(epoch, 5),
            at(epoch, 6)
        ]
    );
    // Ids are per audience: the same id elsewhere is another publication.
    let other = store
        .append(vec![publication(&b, "b", Some("p1"))])
        .await
        .unwrap();
    assert_eq!(other[0].position, 1);
    assert_eq!(
        seen(&store.read(&a, None, 10).await.unwrap()),
        vec![
            (1, "d1".into()),
            (2, "d2".into()),
            (3, "no id".into()),
            (4, "no id".into()),
            (5, "no id".into()),
            (6, "no id".into()),
        ]
    );
}

async fn waiting_wakes_on_append_and_ends_on_close(store: Arc<dyn FeedStore>) {
    let a = officer("a");
    let first = store
        .append(vec![publication(&a, "a1", None)])
        .await
        .unwrap()[0];
    // Behind the head: at once.
    store.wait(&a, None).await.unwrap();
    store.wait(&a, Some(at(first.epoch, 0))).await.unwrap();
    // Another epoch counts as moved (the reader then learns why from `read`).
    store.wait(&a, Some(at(first.epoch + 1, 1))).await.unwrap();
    // At the head it waits: a correct store never returns here, so this cannot flake.
    let blocked =
        tokio::time::timeout(Duration::from_millis(100), store.wait(&a, Some(first))).await;
    assert!(blocked.is_err(), "wait at the head returned {blocked:?}");

    let waiter = {
        let store = store.clone();
        let a = a.clone();
        tokio::spawn(async move { store.wait(&a, Some(first)).await })
    };
    // A quiet feed of someone else does not matter; an append to this one wakes the waiter.
    let nobody = officer("nobody");
    let idle = {
        let store = store.clone();
        tokio::spawn(async move { store.wait(&nobody, None).await })
    };
    store
        .append(vec![publication(&a, "a2", None)])
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    let Ok(Ok(Ok(handed))) = woke else {
        panic!("the waiter did not wake: {woke:?}")
    };
    // What a wake-up hands over is what a read from the same cursor gives first (the Redis
    // store hands over the very next notice it learnt from the wake-up; memory, nothing).
    let read = store.read(&a, Some(first), 10).await.unwrap();
    assert!(
        read.starts_with(&handed),
        "{handed:?} is not a prefix of {read:?}"
    );
    assert!(!idle.is_finished());

    assert!(!store.is_closed());
    store.close();
    assert!(store.is_closed());
    let ended = tokio::time::timeout(Duration::from_secs(5), idle).await;
    assert!(matches!(ended, Ok(Ok(Err(Error::Closed)))), "{ended:?}");
    assert_eq!(store.wait(&a, Some(first)).await, Err(Error::Closed));
    // Appends and reads still work after close (publishers drain into it at shutdown).
    let third = store
        .append(vec![publication(&a, "a3", None)])
        .await
        .unwrap()[0];
    assert_eq!(third.position, 3);
    assert_eq!(store.read(&a, Some(first), 10).await.unwrap().len(), 2);
}

type Followed = std::pin::Pin<Box<dyn futures::Stream<Item = Result<v1::Notice>> + Send>>;

/// The next item of a follower (bounded, in case a broken store never answers).
async fn next(s: &mut Followed) -> Option<Result<v1::Notice>> {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("an item within 5 s")
}

async fn follow_replays_then_delivers_live_and_ends_on_close(store: Arc<dyn FeedStore>) {
    let a = officer("a");
    let cursors = store
        .append(vec![
            publication(&a, "a1", None),
            publication(&a, "a2", None),
        ])
        .await
        .unwrap();
    let mut all: Followed = Box::pin(follow(store.clone(), a.clone(), None));
    assert_eq!(label(&next(&mut all).await.unwrap().unwrap()), "a1");
    assert_eq!(label(&next(&mut all).await.unwrap().unwrap()), "a2");
    let mut resumed: Followed = Box::pin(follow(store.clone(), a.clone(), Some(cursors[0])));
    assert_eq!(label(&next(&mut resumed).await.unwrap().unwrap()), "a2");
    store
        .append(vec![publication(&a, "a3", None)])
        .await
        .unwrap();
    assert_eq!(label(&next(&mut all).await.unwrap().unwrap()), "a3");
    assert_eq!(label(&next(&mut resumed).await.unwrap().unwrap()), "a3");
    // A dead cursor: the error, then the end.
    let dead = at(cursors[0].epoch + 1, 1);
    let mut refused: Followed = Box::pin(follow(store.clone(), a.clone(), Some(dead)));
    assert!(matches!(
        next(&mut refused).await,
        Some(Err(Error::OutOfRange { cursor, .. })) if cursor == dead
    ));
    assert!(next(&mut refused).await.is_none());
    store.close();
    assert!(next(&mut all).await.is_none());
}

/// A limits expression of the invocation, evaluated in the suite's scope.
macro_rules! limits {
    ($limits:expr) => {{
        #[allow(unused_imports)]
        use super::*;
        $limits
    }};
}

/// Generates one `#[tokio::test]` per case and store.
macro_rules! conformance {
    ($($case:ident($limits:expr)),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory(limits!($limits))).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = super::redis_server();
                    super::$case(super::redis_on(&server, limits!($limits)).await).await;
                }
            )*
        }
    };
}

conformance! {
    numbering_is_per_audience_and_gap_free(SMALL),
    resume_gets_exactly_the_missed_notices_once(SMALL),
    a_cursor_past_the_end_or_of_another_epoch_is_out_of_range(SMALL),
    retention_trims_and_a_trimmed_cursor_is_out_of_range(SMALL),
    a_publication_id_is_appended_once_and_answered_its_cursor(FeedLimits::default()),
    waiting_wakes_on_append_and_ends_on_close(SMALL),
    follow_replays_then_delivers_live_and_ends_on_close(SMALL),
}

// ---- store-specific ----------------------------------------------------------------------

#[tokio::test]
async fn a_new_hub_is_a_new_epoch_so_cursors_of_the_old_one_are_refused() {
    let a = officer("a");
    let before = memory(SMALL);
    let old = before
        .append(vec![publication(&a, "a1", None)])
        .await
        .unwrap()[0];
    // The notification process restarts: a fresh hub, empty.
    let after = memory(SMALL);
    assert_eq!(
        after.read(&a, Some(old), 10).await,
        Err(Error::OutOfRange {
            cursor: old,
            oldest: None,
            newest: None
        })
    );
    let new = after
        .append(vec![publication(&a, "a1'", None)])
        .await
        .unwrap()[0];
    assert_eq!(new.position, 1);
    assert_ne!(new.epoch, old.epoch);
    assert!(after.read(&a, Some(old), 10).await.is_err());
}

#[tokio::test]
async fn a_redis_restart_keeps_the_feed_and_its_cursors() {
    let mut server = redis_server();
    let store = redis_on(&server, SMALL).await;
    let a = officer("a");
    let ps = (1..=3)
        .map(|i| publication(&a, &format!("a{i}"), Some(&format!("p{i}"))))
        .collect();
    let cursors = store.append(ps).await.unwrap();
    // A crash, not a clean stop: with `appendfsync always` nothing acknowledged is lost.
    server.kill().unwrap();
    server.restart().unwrap();
    // The store rides out the restart itself (retrying reads over the broken connection).
    let read = store.read(&a, Some(cursors[0]), 10).await.unwrap();
    assert_eq!(seen(&read), vec![(2, "a2".into()), (3, "a3".into())]);
    // Numbering and ids carry on in the same epoch.
    let next = store
        .append(vec![
            publication(&a, "a3", Some("p3")),
            publication(&a, "a4", None),
        ])
        .await
        .unwrap();
    assert_eq!(next, vec![cursors[2], at(cursors[0].epoch, 4)]);
    // Waiting works again once the wake-up subscription is back.
    let waiter = {
        let store = store.clone();
        let a = a.clone();
        tokio::spawn(async move { store.wait(&a, Some(next[1])).await })
    };
    store
        .append(vec![publication(&a, "a5", None)])
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert!(matches!(woke, Ok(Ok(Ok(_)))), "{woke:?}");
}

#[tokio::test]
async fn lost_redis_data_makes_old_cursors_out_of_range_not_silent() {
    let server = redis_server();
    let store = redis_on(&server, SMALL).await;
    let a = officer("a");
    let ps = (1..=3)
        .map(|i| publication(&a, &format!("a{i}"), None))
        .collect();
    let old = store.append(ps).await.unwrap();
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();

    assert_eq!(store.span(&a).await.unwrap(), Span::NONE);
    assert_eq!(
        store.read(&a, Some(old[1]), 10).await,
        Err(Error::OutOfRange {
            cursor: old[1],
            oldest: None,
            newest: None
        })
    );
    // A waiter at the old head learns of the new history as soon as it begins.
    let waiter = {
        let store = store.clone();
        let a = a.clone();
        let at_head = old[2];
        tokio::spawn(async move { store.wait(&a, Some(at_head)).await })
    };
    let new = store
        .append(vec![publication(&a, "fresh", None)])
        .await
        .unwrap()[0];
    assert_eq!(new.position, 1);
    assert_ne!(new.epoch, old[0].epoch);
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
    assert!(matches!(woke, Ok(Ok(Ok(_)))), "{woke:?}");
    // Same position numbers, other history: refused, naming what the feed now holds.
    assert_eq!(
        store.read(&a, Some(old[0]), 10).await,
        Err(Error::OutOfRange {
            cursor: old[0],
            oldest: Some(new),
            newest: Some(new),
        })
    );
}

#[tokio::test]
async fn officer_ids_cannot_escape_their_feed_keys() {
    let server = redis_server();
    let store = redis_on(&server, SMALL).await;
    // `}` would end a hash tag; the escaped ids stay apart.
    let (x, y) = (officer("x}:seq"), officer("x"));
    store
        .append(vec![publication(&x, "for x}", None)])
        .await
        .unwrap();
    store
        .append(vec![publication(&y, "for x", None)])
        .await
        .unwrap();
    assert_eq!(
        seen(&store.read(&x, None, 10).await.unwrap()),
        vec![(1, "for x}".into())]
    );
    assert_eq!(
        seen(&store.read(&y, None, 10).await.unwrap()),
        vec![(1, "for x".into())]
    );
}

// ---- wake-ups that carry the notice (Redis) ---------------------------------------------

/// Waits at `after` on `store` in a task, and gives the handle once the wait has registered
/// (its first look at the feed is done, so an append from now on wakes it).
async fn waiting(
    store: &Arc<dyn FeedStore>,
    a: &AudienceKey,
    after: Cursor,
) -> tokio::task::JoinHandle<Result<Vec<v1::Notice>>> {
    let waiter = {
        let (store, a) = (store.clone(), a.clone());
        tokio::spawn(async move { store.wait(&a, Some(after)).await })
    };
    // At the head the wait blocks; 200 ms is ample for its one look at a loopback Redis, and
    // a late registration only makes the wait return empty, which the callers' asserts catch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    waiter
}

async fn woken(waiter: tokio::task::JoinHandle<Result<Vec<v1::Notice>>>) -> Vec<v1::Notice> {
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken within 5 s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_waiter_at_the_head_is_handed_the_next_notice_by_its_own_store_and_by_another() {
    let server = redis_server();
    let (here, elsewhere, a, first) = two_nodes_and_a_first_notice(&server).await;

    // Appended by the waiter's own store: woken locally with the notice.
    let waiter = waiting(&here, &a, first).await;
    let second = here
        .append(vec![publication(&a, "a2", Some("p2"))])
        .await
        .unwrap()[0];
    let handed = woken(waiter).await;
    assert_eq!(handed, here.read(&a, Some(first), 10).await.unwrap());
    assert_eq!(seen(&handed), vec![(2, "a2".into())]);
    assert_eq!(handed[0].cursor, second.encode());
    assert_eq!(
        handed[0].published_at,
        Some(crate::convert::timestamp_to_wire(Timestamp(NOW_MS)))
    );

    // Appended by another store (another notification node): the pub/sub wake-up carries it.
    let waiter = waiting(&here, &a, second).await;
    elsewhere
        .append(vec![publication(&a, "a3", Some("p3"))])
        .await
        .unwrap();
    let handed = woken(waiter).await;
    assert_eq!(handed, here.read(&a, Some(second), 10).await.unwrap());
    assert_eq!(seen(&handed), vec![(3, "a3".into())]);
}

#[tokio::test]
async fn a_repeated_publication_or_a_body_too_big_to_carry_hands_over_nothing() {
    let server = redis_server();
    let (here, elsewhere, a, first) = two_nodes_and_a_first_notice(&server).await;
    // A publication the feed holds already is not appended and wakes nobody.
    let waiter = waiting(&here, &a, first).await;
    here.append(vec![publication(&a, "a1", Some("p1"))])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    // A body over the wake-up's limit is announced without it: the waiter must read.
    let big = Publication {
        audience: a.clone(),
        body: order(&"x".repeat(super::redis_store::INLINE_BODY_MAX + 1)),
        id: Some("big".into()),
    };
    elsewhere.append(vec![big]).await.unwrap();
    assert_eq!(woken(waiter).await, Vec::new());
    let read = here.read(&a, Some(first), 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].seq, 2);
}
