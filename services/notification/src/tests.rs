//! Service-level tests: the gRPC handlers in-process, and `run` over a real socket.

use std::time::Duration;

use super::*;
use dispatch_bus::feed::{FeedHub, FeedLimits, RedisConfig, RedisFeedStore};
use dispatch_core::{ManualClock, Timestamp};
use dispatch_proto::status::violated_field;
use dispatch_proto::v1::audience::Target;
use dispatch_proto::v1::notice_body::Kind;
use futures::StreamExt;
use tonic::Code;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)))
}

fn hub(limits: FeedLimits) -> Arc<FeedHub> {
    Arc::new(FeedHub::new(clock(), limits))
}

fn service() -> NotificationService {
    NotificationService::new(hub(FeedLimits::default()))
}

fn officer(id: &str) -> Option<v1::Audience> {
    Some(v1::Audience {
        target: Some(Target::OfficerId(id.into())),
    })
}

fn command_center() -> Option<v1::Audience> {
    Some(v1::Audience {
        target: Some(Target::Role(v1::Role::CommandCenter as i32)),
    })
}

fn order(dispatch_id: &str) -> Option<v1::NoticeBody> {
    Some(v1::NoticeBody {
        kind: Some(Kind::DispatchOrder(v1::DispatchOrder {
            dispatch_id: dispatch_id.into(),
            ..Default::default()
        })),
    })
}

fn update(incident_id: &str, revision: u64) -> Option<v1::NoticeBody> {
    Some(v1::NoticeBody {
        kind: Some(Kind::IncidentUpdate(v1::Incident {
            incident_id: incident_id.into(),
            revision,
            ..Default::default()
        })),
    })
}

fn publication(audience: Option<v1::Audience>, body: Option<v1::NoticeBody>) -> v1::Publication {
    v1::Publication {
        audience,
        body,
        publication_id: String::new(),
    }
}

fn orders(officer_id: &str, ids: impl IntoIterator<Item = String>) -> Vec<v1::Publication> {
    ids.into_iter()
        .map(|d| publication(officer(officer_id), order(&d)))
        .collect()
}

/// Seqs and cursors given to `ps`.
async fn publish(
    s: &NotificationService,
    ps: Vec<v1::Publication>,
) -> Result<(Vec<u64>, Vec<String>), Status> {
    let req = Request::new(v1::PublishRequest { publications: ps });
    let resp = s.publish(req).await?.into_inner();
    Ok((resp.seqs, resp.cursors))
}

fn request(audience: Option<v1::Audience>, resume_after: &str) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        audience,
        resume_after: resume_after.into(),
        from_latest: false,
    }
}

async fn subscribe(
    s: &NotificationService,
    audience: Option<v1::Audience>,
    resume_after: &str,
) -> Result<SubscribeStream, Status> {
    Ok(s.subscribe(Request::new(request(audience, resume_after)))
        .await?
        .into_inner())
}

/// The next item of `stream` (bounded, in case a broken service sends nothing).
async fn item(stream: &mut SubscribeStream) -> Result<v1::Notice, Status> {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("an item within 60 s")
        .expect("stream open")
}

fn label(n: &v1::Notice) -> String {
    match n.body.as_ref().and_then(|b| b.kind.as_ref()) {
        Some(Kind::DispatchOrder(o)) => o.dispatch_id.clone(),
        Some(Kind::IncidentUpdate(i)) => format!("{}@{}", i.incident_id, i.revision),
        Some(Kind::Heartbeat(_)) => "heartbeat".into(),
        None => "empty".into(),
    }
}

/// (seq, dispatch id, incident id@revision, or "heartbeat") of the next notice.
async fn next(stream: &mut SubscribeStream) -> (u64, String) {
    let n = item(stream).await.expect("not an error");
    (n.seq, label(&n))
}

#[tokio::test]
async fn publish_numbers_each_audience_and_subscribe_replays_in_order() {
    let s = service();
    let (seqs, cursors) = publish(
        &s,
        vec![
            publication(officer("o1"), order("d1")),
            publication(officer("o2"), order("d2")),
            publication(officer("o1"), order("d3")),
            publication(command_center(), update("inc-1", 2)),
        ],
    )
    .await
    .unwrap();
    // o1 gets 1 and 2; o2 and the command center each start their own feed at 1.
    assert_eq!(seqs, vec![1, 1, 2, 1]);

    let mut o1 = subscribe(&s, officer("o1"), "").await.unwrap();
    let first = item(&mut o1).await.unwrap();
    assert_eq!((first.seq, label(&first)), (1, "d1".to_string()));
    // The notice carries the cursor its publisher was given.
    assert_eq!(first.cursor, cursors[0]);
    assert_eq!(next(&mut o1).await, (2, "d3".to_string()));
    let mut o2 = subscribe(&s, officer("o2"), "").await.unwrap();
    assert_eq!(next(&mut o2).await, (1, "d2".to_string()));

    // Live delivery continues in order after the replay.
    let (seqs, _) = publish(&s, orders("o1", ["d4".into()])).await.unwrap();
    assert_eq!(seqs, vec![3]);
    assert_eq!(next(&mut o1).await, (3, "d4".to_string()));
}

#[tokio::test]
async fn resume_after_a_cursor_gets_exactly_what_was_missed() {
    let s = service();
    let (seqs, cursors) = publish(&s, orders("o1", (1..=5).map(|i| format!("d{i}"))))
        .await
        .unwrap();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let mut resumed = subscribe(&s, officer("o1"), &cursors[2]).await.unwrap();
    assert_eq!(next(&mut resumed).await, (4, "d4".to_string()));
    assert_eq!(next(&mut resumed).await, (5, "d5".to_string()));
    publish(&s, orders("o1", ["d6".into()])).await.unwrap();
    assert_eq!(next(&mut resumed).await, (6, "d6".to_string()));
}

#[tokio::test]
async fn a_publication_id_is_delivered_once_and_answered_its_first_cursor() {
    let s = service();
    let with_id = |d: &str, id: &str| v1::Publication {
        publication_id: id.into(),
        ..publication(officer("o1"), order(d))
    };
    let (seqs, cursors) = publish(&s, vec![with_id("d1", "p1"), with_id("d2", "p2")])
        .await
        .unwrap();
    // The sender retries the batch (it never saw the answer), then sends a new one.
    let (again, again_cursors) = publish(&s, vec![with_id("d1", "p1"), with_id("d2", "p2")])
        .await
        .unwrap();
    assert_eq!((again, again_cursors), (seqs, cursors));
    publish(&s, vec![with_id("d3", "p3")]).await.unwrap();
    let mut o1 = subscribe(&s, officer("o1"), "").await.unwrap();
    assert_eq!(next(&mut o1).await, (1, "d1".to_string()));
    assert_eq!(next(&mut o1).await, (2, "d2".to_string()));
    assert_eq!(next(&mut o1).await, (3, "d3".to_string()));
}

#[tokio::test]
async fn from_latest_opens_with_a_heartbeat_at_the_head_then_only_new_notices() {
    let s = service();
    let (_, cursors) = publish(&s, orders("o1", (1..=3).map(|i| format!("old{i}"))))
        .await
        .unwrap();
    let req = Request::new(v1::SubscribeRequest {
        audience: officer("o1"),
        // Ignored with from_latest, even malformed.
        resume_after: "not a cursor".into(),
        from_latest: true,
    });
    let mut fresh = s.subscribe(req).await.unwrap().into_inner();
    let hello = item(&mut fresh).await.unwrap();
    assert_eq!((hello.seq, label(&hello)), (3, "heartbeat".to_string()));
    // Resuming from the greeting's cursor is resuming after the head.
    assert_eq!(hello.cursor, cursors[2]);
    publish(&s, orders("o1", ["new".into()])).await.unwrap();
    assert_eq!(next(&mut fresh).await, (4, "new".to_string()));
}

#[tokio::test]
async fn the_command_center_sees_every_update_and_no_orders() {
    let s = service();
    let mut screen = subscribe(&s, command_center(), "").await.unwrap();
    publish(
        &s,
        vec![
            publication(command_center(), update("inc-1", 2)),
            publication(officer("o1"), order("d1")),
            publication(command_center(), update("inc-2", 2)),
            publication(command_center(), update("inc-1", 3)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(next(&mut screen).await, (1, "inc-1@2".to_string()));
    assert_eq!(next(&mut screen).await, (2, "inc-2@2".to_string()));
    assert_eq!(next(&mut screen).await, (3, "inc-1@3".to_string()));
}

#[tokio::test]
async fn the_command_center_replay_from_the_oldest_is_bounded() {
    let config = NotificationConfig {
        command_center_replay: 3,
        ..NotificationConfig::default()
    };
    let s = NotificationService::with_config(hub(FeedLimits::default()), config);
    let ps = (1..=10)
        .map(|r| publication(command_center(), update("inc-1", r)))
        .collect();
    let (_, cursors) = publish(&s, ps).await.unwrap();
    // An empty cursor replays the newest 3 of the 10 kept.
    let mut screen = subscribe(&s, command_center(), "").await.unwrap();
    assert_eq!(next(&mut screen).await, (8, "inc-1@8".to_string()));
    assert_eq!(next(&mut screen).await, (9, "inc-1@9".to_string()));
    assert_eq!(next(&mut screen).await, (10, "inc-1@10".to_string()));
    // An explicit cursor is honoured in full: the client asked for exactly that.
    let mut resumed = subscribe(&s, command_center(), &cursors[0]).await.unwrap();
    assert_eq!(next(&mut resumed).await, (2, "inc-1@2".to_string()));
    // Officers' feeds are not bounded this way.
    publish(&s, orders("o1", (1..=5).map(|i| format!("d{i}"))))
        .await
        .unwrap();
    let mut o1 = subscribe(&s, officer("o1"), "").await.unwrap();
    assert_eq!(next(&mut o1).await, (1, "d1".to_string()));
}

#[tokio::test]
async fn bad_subscriptions_name_the_field() {
    let s = service();
    let cases = [
        (request(None, ""), "audience"),
        (request(Some(v1::Audience { target: None }), ""), "audience"),
        (request(officer(""), ""), "audience.officer_id"),
        (
            request(
                Some(v1::Audience {
                    target: Some(Target::Role(v1::Role::Unspecified as i32)),
                }),
                "",
            ),
            "audience.role",
        ),
        (
            request(
                Some(v1::Audience {
                    target: Some(Target::Role(7)),
                }),
                "",
            ),
            "audience.role",
        ),
        (request(officer("o1"), "12"), "resume_after"),
        (request(officer("o1"), "1-x"), "resume_after"),
        (request(command_center(), "-1"), "resume_after"),
    ];
    for (req, field) in cases {
        let err = s.subscribe(Request::new(req.clone())).await.err().unwrap();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
        assert_eq!(violated_field(&err).as_deref(), Some(field), "{req:?}");
    }
    let err = subscribe(&s, officer("o1"), "1-x").await.err().unwrap();
    assert!(err.message().contains("got \"1-x\""), "{}", err.message());
}

/// The code, field, and cursor metadata (cursor, oldest, newest) of an `OUT_OF_RANGE`.
fn out_of_range(err: &Status) -> (Code, Option<String>, [String; 3]) {
    let info = err.get_details_error_info().expect("error info");
    let meta = |k: &str| info.metadata.get(k).cloned().unwrap_or_default();
    (
        err.code(),
        violated_field(err),
        [meta("cursor"), meta("oldest"), meta("newest")],
    )
}

#[tokio::test]
async fn a_cursor_the_feed_cannot_honour_is_out_of_range_naming_what_it_holds() {
    let limits = FeedLimits {
        officer: 3,
        role: 3,
    };
    let store = hub(limits);
    let s = NotificationService::new(store.clone());
    let (_, cursors) = publish(&s, orders("o1", (1..=5).map(|i| format!("d{i}"))))
        .await
        .unwrap();
    // Kept: 3..=5.
    let epoch = store.epoch();
    let (oldest, newest) = (cursors[2].clone(), cursors[4].clone());
    let past_end = format!("{epoch}-6");
    let other_epoch = format!("{}-5", epoch + 1);
    for refused in [&cursors[0], &past_end, &other_epoch] {
        let err = subscribe(&s, officer("o1"), refused).await.err().unwrap();
        assert_eq!(
            out_of_range(&err),
            (
                Code::OutOfRange,
                Some("resume_after".to_string()),
                [refused.clone(), oldest.clone(), newest.clone()]
            ),
            "{refused}"
        );
        let message = err.message();
        assert!(
            message.contains(&oldest) && message.contains(&newest) && message.contains(refused),
            "{message}"
        );
    }
    // The last cursor before the trim point still works.
    let mut ok = subscribe(&s, officer("o1"), &cursors[1]).await.unwrap();
    assert_eq!(next(&mut ok).await, (3, "d3".to_string()));
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_is_out_of_range_not_silence() {
    // The bug this guards against: a terminal resumed after a notification restart with its
    // old position and silently received nothing, including its next orders.
    let before = service();
    let (_, cursors) = publish(&before, orders("o1", ["d1".into(), "d2".into()]))
        .await
        .unwrap();
    let after = service();
    let err = subscribe(&after, officer("o1"), &cursors[1])
        .await
        .err()
        .unwrap();
    assert_eq!(
        out_of_range(&err),
        (
            Code::OutOfRange,
            Some("resume_after".to_string()),
            [cursors[1].clone(), String::new(), String::new()]
        )
    );
    assert!(
        err.message().contains("holds no notices"),
        "{}",
        err.message()
    );
    // The client's way out: resume from the oldest kept.
    let mut fresh = subscribe(&after, officer("o1"), "").await.unwrap();
    publish(&after, orders("o1", ["d3".into()])).await.unwrap();
    assert_eq!(next(&mut fresh).await, (1, "d3".to_string()));
}

#[tokio::test]
async fn an_officer_on_no_roster_is_not_found() {
    let known: RosterCheck = Arc::new(|id: &str| id == "o1");
    let s = service().with_roster(known);
    let err = subscribe(&s, officer("ghost"), "").await.err().unwrap();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("\"ghost\""), "{}", err.message());
    assert!(subscribe(&s, officer("o1"), "").await.is_ok());
    assert!(subscribe(&s, command_center(), "").await.is_ok());
}

/// `elapsed` (paused Tokio time) is `expected`, give or take the timer wheel's 1 ms rounding.
fn within_a_tick(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(1),
        "{elapsed:?} instead of {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_gets_a_heartbeat_each_interval() {
    let interval = Duration::from_secs(20);
    let s = NotificationService::with_config(
        hub(FeedLimits::default()),
        NotificationConfig {
            heartbeat_interval: interval,
            ..NotificationConfig::default()
        },
    );
    let store = s.store().clone();
    let mut o1 = subscribe(&s, officer("o1"), "").await.unwrap();
    let started = tokio::time::Instant::now();
    let beat = item(&mut o1).await.unwrap();
    assert_eq!(label(&beat), "heartbeat");
    // Nothing seen yet: seq 0, and the empty cursor (from the oldest) to resume with.
    assert_eq!((beat.seq, beat.cursor.as_str()), (0, ""));
    within_a_tick(started.elapsed(), interval);

    let (_, cursors) = publish(&s, orders("o1", ["d1".into()])).await.unwrap();
    assert_eq!(next(&mut o1).await, (1, "d1".to_string()));
    let delivered = tokio::time::Instant::now();
    let beat = item(&mut o1).await.unwrap();
    assert_eq!(label(&beat), "heartbeat");
    assert_eq!((beat.seq, &beat.cursor), (1, &cursors[0]));
    within_a_tick(delivered.elapsed(), interval);
    // Heartbeats are never stored: the feed still holds one notice.
    assert_eq!(
        store
            .span(&AudienceKey::Officer("o1".into()))
            .await
            .unwrap()
            .last,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_stops_reading_is_cut_off_and_can_resume() {
    let cap = 300;
    let grace = Duration::from_secs(20);
    let s = NotificationService::with_config(
        hub(FeedLimits::default()),
        NotificationConfig {
            heartbeat_interval: grace,
            max_buffered_bytes: cap,
            read_batch: 4,
            ..NotificationConfig::default()
        },
    );
    let mut stalled = subscribe(&s, officer("o1"), "").await.unwrap();
    let total = 40;
    // Publishing never waits for the subscriber.
    publish(&s, orders("o1", (1..=total).map(|i| format!("d{i:03}"))))
        .await
        .unwrap();
    // The subscriber reads nothing for longer than the grace.
    tokio::time::sleep(grace * 2).await;

    let mut received = Vec::new();
    let mut bytes = 0;
    let err = loop {
        match item(&mut stalled).await {
            Ok(n) => {
                bytes += prost::Message::encoded_len(&n);
                received.push(n);
            }
            Err(status) => break status,
        }
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("300 bytes"), "{}", err.message());
    assert!(
        stalled.next().await.is_none(),
        "the stream ends after the status"
    );
    let got: Vec<u64> = received.iter().map(|n| n.seq).collect();
    let k = got.len() as u64;
    assert!(k >= 1 && k < total, "{got:?}");
    assert_eq!(got, (1..=k).collect::<Vec<_>>());
    assert!(bytes <= cap, "{bytes} bytes queued, cap {cap}");

    // It resumes from its last cursor and gets the rest, each once.
    let last = received.last().unwrap().cursor.clone();
    let mut resumed = subscribe(&s, officer("o1"), &last).await.unwrap();
    for seq in k + 1..=total {
        assert_eq!(next(&mut resumed).await, (seq, format!("d{seq:03}")));
    }
}

#[tokio::test]
async fn a_bad_publication_rejects_the_whole_request() {
    let s = service();
    let cases = [
        (publication(None, order("x")), "publications[1].audience"),
        (
            publication(officer(""), order("x")),
            "publications[1].audience.officer_id",
        ),
        (
            publication(
                Some(v1::Audience {
                    target: Some(Target::Role(0)),
                }),
                order("x"),
            ),
            "publications[1].audience.role",
        ),
        (publication(officer("o1"), None), "publications[1].body"),
        (
            publication(officer("o1"), Some(v1::NoticeBody { kind: None })),
            "publications[1].body",
        ),
        (
            publication(
                officer("o1"),
                Some(v1::NoticeBody {
                    kind: Some(Kind::Heartbeat(v1::Heartbeat {})),
                }),
            ),
            "publications[1].body",
        ),
    ];
    for (bad, field) in cases {
        let ps = vec![publication(officer("o1"), order("ok")), bad];
        let err = publish(&s, ps).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_field(&err).as_deref(), Some(field));
    }
    // The good first publication of each rejected request was not appended either.
    let span = s
        .store()
        .span(&AudienceKey::Officer("o1".into()))
        .await
        .unwrap();
    assert_eq!(span.last, 0);
}

async fn redis_service(server: &dispatch_redis_test::RedisServer) -> NotificationService {
    let store = RedisFeedStore::connect(&server.url(), clock(), RedisConfig::default())
        .await
        .unwrap();
    NotificationService::new(Arc::new(store))
}

#[tokio::test]
async fn over_redis_a_restarted_service_honours_old_cursors() {
    let server = dispatch_redis_test::RedisServer::start().unwrap();
    let before = redis_service(&server).await;
    let (_, cursors) = publish(&before, orders("o1", (1..=3).map(|i| format!("d{i}"))))
        .await
        .unwrap();
    drop(before);
    // A new notification process over the same Redis: the feed and its cursors carry on.
    let after = redis_service(&server).await;
    let mut resumed = subscribe(&after, officer("o1"), &cursors[0]).await.unwrap();
    assert_eq!(next(&mut resumed).await, (2, "d2".to_string()));
    assert_eq!(next(&mut resumed).await, (3, "d3".to_string()));
    // Live delivery goes through the Redis wake-up.
    publish(&after, orders("o1", ["d4".into()])).await.unwrap();
    assert_eq!(next(&mut resumed).await, (4, "d4".to_string()));
}

#[tokio::test]
async fn over_redis_an_open_stream_whose_feed_lost_its_history_ends_out_of_range() {
    let server = dispatch_redis_test::RedisServer::start().unwrap();
    let s = redis_service(&server).await;
    let (_, cursors) = publish(&s, orders("o1", ["d1".into()])).await.unwrap();
    let mut o1 = subscribe(&s, officer("o1"), &cursors[0]).await.unwrap();
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    // The next order starts a new history; the stream must say so rather than wait forever
    // at a position that now means something else.
    let (_, fresh) = publish(&s, orders("o1", ["d2".into()])).await.unwrap();
    let err = item(&mut o1).await.unwrap_err();
    assert_eq!(
        out_of_range(&err),
        (
            Code::OutOfRange,
            Some("resume_after".to_string()),
            [cursors[0].clone(), fresh[0].clone(), fresh[0].clone()]
        )
    );
}

#[tokio::test]
async fn run_serves_over_grpc_and_shutdown_ends_open_streams() {
    use dispatch_proto::v1::notification_client::NotificationClient;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, hub(FeedLimits::default()), async {
        let _ = stop_rx.await;
    }));

    let mut client = NotificationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut stream = client
        .subscribe(request(officer("o9"), ""))
        .await
        .unwrap()
        .into_inner();
    let resp = client
        .publish(v1::PublishRequest {
            publications: orders("o9", ["d1".into()]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.seqs, vec![1]);
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!((first.seq, &first.cursor), (1, &resp.cursors[0]));
    let err = client.subscribe(request(None, "")).await.unwrap_err();
    assert_eq!(violated_field(&err).as_deref(), Some("audience"));
    // Field details survive the wire for OUT_OF_RANGE too.
    let err = client
        .subscribe(request(officer("o9"), "1-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(violated_field(&err).as_deref(), Some("resume_after"));

    stop_tx.send(()).unwrap();
    // The open stream ends cleanly and the server stops, instead of waiting for the terminal.
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
    assert!(matches!(end, Ok(Ok(None))), "{end:?}");
    let served = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
}
