//! Service-level tests: the gRPC handlers in-process, and `run` over a real socket.

use super::*;
use dispatch_bus::feed::{AudienceKey, FeedLimits};
use dispatch_core::{ManualClock, Timestamp};
use dispatch_proto::status::violated_field;
use dispatch_proto::v1::audience::Target;
use dispatch_proto::v1::notice_body::Kind;
use tonic::Code;

fn service() -> NotificationService {
    let clock = Arc::new(ManualClock::at(Timestamp(1_700_000_000_000)));
    NotificationService::new(Arc::new(FeedHub::new(clock, FeedLimits::default())))
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
    v1::Publication { audience, body }
}

async fn publish(s: &NotificationService, ps: Vec<v1::Publication>) -> Result<Vec<u64>, Status> {
    let req = Request::new(v1::PublishRequest { publications: ps });
    Ok(s.publish(req).await?.into_inner().seqs)
}

async fn subscribe(
    s: &NotificationService,
    audience: Option<v1::Audience>,
    resume_after: u64,
) -> Result<SubscribeStream, Status> {
    let req = Request::new(v1::SubscribeRequest {
        audience,
        resume_after,
        from_latest: false,
    });
    Ok(s.subscribe(req).await?.into_inner())
}

/// (seq, dispatch id or incident id@revision) of the next notice.
async fn next(stream: &mut SubscribeStream) -> (u64, String) {
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("a notice within 5 s")
        .expect("stream open")
        .expect("not an error");
    let label = match n.body.unwrap().kind.unwrap() {
        Kind::DispatchOrder(o) => o.dispatch_id,
        Kind::IncidentUpdate(i) => format!("{}@{}", i.incident_id, i.revision),
    };
    (n.seq, label)
}

#[tokio::test]
async fn publish_numbers_each_audience_and_subscribe_replays_in_order() {
    let s = service();
    let seqs = publish(
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

    let mut o1 = subscribe(&s, officer("o1"), 0).await.unwrap();
    assert_eq!(next(&mut o1).await, (1, "d1".to_string()));
    assert_eq!(next(&mut o1).await, (2, "d3".to_string()));
    let mut o2 = subscribe(&s, officer("o2"), 0).await.unwrap();
    assert_eq!(next(&mut o2).await, (1, "d2".to_string()));

    // Live delivery continues in order after the replay.
    let seqs = publish(&s, vec![publication(officer("o1"), order("d4"))])
        .await
        .unwrap();
    assert_eq!(seqs, vec![3]);
    assert_eq!(next(&mut o1).await, (3, "d4".to_string()));
}

#[tokio::test]
async fn resume_after_skips_what_the_subscriber_has_seen() {
    let s = service();
    let ps = (1..=5)
        .map(|i| publication(officer("o1"), order(&format!("d{i}"))))
        .collect();
    assert_eq!(publish(&s, ps).await.unwrap(), vec![1, 2, 3, 4, 5]);
    let mut resumed = subscribe(&s, officer("o1"), 3).await.unwrap();
    assert_eq!(next(&mut resumed).await, (4, "d4".to_string()));
    assert_eq!(next(&mut resumed).await, (5, "d5".to_string()));
}

#[tokio::test]
async fn from_latest_skips_everything_published_before_the_subscription() {
    let s = service();
    let ps = (1..=3)
        .map(|i| publication(officer("o1"), order(&format!("old{i}"))))
        .collect();
    publish(&s, ps).await.unwrap();
    let req = Request::new(v1::SubscribeRequest {
        audience: officer("o1"),
        // Ignored with from_latest.
        resume_after: 1,
        from_latest: true,
    });
    let mut fresh = s.subscribe(req).await.unwrap().into_inner();
    publish(&s, vec![publication(officer("o1"), order("new"))])
        .await
        .unwrap();
    assert_eq!(next(&mut fresh).await, (4, "new".to_string()));
}

#[tokio::test]
async fn the_command_center_sees_every_update_and_no_orders() {
    let s = service();
    let mut screen = subscribe(&s, command_center(), 0).await.unwrap();
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
async fn bad_subscriptions_name_the_field() {
    let s = service();
    let cases = [
        (None, "audience"),
        (Some(v1::Audience { target: None }), "audience"),
        (officer(""), "audience.officer_id"),
        (
            Some(v1::Audience {
                target: Some(Target::Role(v1::Role::Unspecified as i32)),
            }),
            "audience.role",
        ),
        (
            Some(v1::Audience {
                target: Some(Target::Role(7)),
            }),
            "audience.role",
        ),
    ];
    for (audience, field) in cases {
        let err = subscribe(&s, audience.clone(), 0).await.err().unwrap();
        assert_eq!(err.code(), Code::InvalidArgument, "{audience:?}");
        assert_eq!(violated_field(&err).as_deref(), Some(field), "{audience:?}");
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
    ];
    for (bad, field) in cases {
        let ps = vec![publication(officer("o1"), order("ok")), bad];
        let err = publish(&s, ps).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_field(&err).as_deref(), Some(field));
    }
    // The good first publication of each rejected request was not appended either.
    assert_eq!(s.hub().head(&AudienceKey::Officer("o1".into())), 0);
}

#[tokio::test]
async fn run_serves_over_grpc_and_shutdown_ends_open_streams() {
    use dispatch_proto::v1::notification_client::NotificationClient;

    let clock = Arc::new(ManualClock::at(Timestamp(0)));
    let hub = Arc::new(FeedHub::new(clock, FeedLimits::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, hub, async {
        let _ = stop_rx.await;
    }));

    let mut client = NotificationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut stream = client
        .subscribe(v1::SubscribeRequest {
            audience: officer("o9"),
            resume_after: 0,
            from_latest: false,
        })
        .await
        .unwrap()
        .into_inner();
    let seqs = client
        .publish(v1::PublishRequest {
            publications: vec![publication(officer("o9"), order("d1"))],
        })
        .await
        .unwrap()
        .into_inner()
        .seqs;
    assert_eq!(seqs, vec![1]);
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    let err = client
        .subscribe(v1::SubscribeRequest {
            audience: None,
            resume_after: 0,
            from_latest: false,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&err).as_deref(), Some("audience"));

    stop_tx.send(()).unwrap();
    // The open stream ends cleanly and the server stops, instead of waiting for the terminal.
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message()).await;
    assert!(matches!(end, Ok(Ok(None))), "{end:?}");
    let served = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
}
