//! The dead-letter stream in Redis: every letter the outbox records is there for an operator,
//! with what it was, why, and whether the outbox sends it again.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use dispatch_bus::ports::PortError;
use dispatch_core::district::Effect;
use dispatch_core::{Category, Incident, IncidentState, LatLng, Timestamp};
use dispatch_district::outbox::{DeadLetter, DeadLetterSink, Reason, RedisDeadLetters};
use dispatch_redis_test::RedisServer;

fn cleared(id: &str) -> Incident {
    let mut i = Incident::received(
        id.into(),
        format!("call-{id}").into(),
        Category::ViolentCrime,
        LatLng {
            lat: 23.02,
            lon: 113.75,
        },
        "robbery".into(),
        Timestamp(1_700_000_000_000),
    );
    i.station_id = "town-s1".into();
    i.district_id = "town-d01".into();
    i.state = IncidentState::Cleared;
    i
}

async fn entries(url: &str) -> Vec<HashMap<String, String>> {
    common::stream_entries(url, RedisDeadLetters::KEY).await
}

#[tokio::test]
async fn every_dead_letter_lands_in_the_stream_with_its_effect_and_whether_it_is_sent_again() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let sink = RedisDeadLetters::connect(&redis.url()).unwrap();
    let gave_up = DeadLetter::new(
        Effect::OpenCase(cleared("inc-1")),
        Reason::GaveUp {
            tries: 20,
            error: PortError::Unavailable {
                message: "case squad down".into(),
            },
        },
    );
    let refused = DeadLetter::new(
        Effect::OpenCase(cleared("inc-2")),
        Reason::Refused {
            error: PortError::Refused {
                code: tonic::Code::InvalidArgument,
                field: Some("incident.station_id".into()),
                message: "incident.station_id: unknown station".into(),
            },
        },
    );
    sink.record(gave_up);
    sink.record(refused);

    let mut got = Vec::new();
    for _ in 0..100 {
        got = entries(&redis.url()).await;
        if got.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(sink.written(), 2);
    assert_eq!(sink.unrecorded(), 0);

    let first = &got[0];
    assert_eq!(first["lane"], "case-squad");
    assert_eq!(first["destination"], "station:town-s1");
    assert_eq!(first["kind"], "open-case");
    assert_eq!(first["incident"], "inc-1");
    assert_eq!(
        first["reason"],
        "gave up after 20 tries, last error: unavailable: case squad down"
    );
    assert_eq!(first["redelivered"], "1");
    let effect: Effect = serde_json::from_str(&first["effect"]).unwrap();
    assert_eq!(effect, Effect::OpenCase(cleared("inc-1")));

    let second = &got[1];
    assert_eq!(second["incident"], "inc-2");
    assert_eq!(second["redelivered"], "0");
    assert_eq!(
        second["reason"],
        "refused with InvalidArgument: incident.station_id: unknown station"
    );
}

/// Redis down: the sink neither blocks the caller nor loses count; letters written while it was
/// down past the retry window are counted as unrecorded (they stay in the outbox's log).
#[tokio::test]
async fn a_letter_redis_cannot_take_is_counted_not_hidden() {
    let mut redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let sink = RedisDeadLetters::connect(&redis.url()).unwrap();
    redis.stop().unwrap();
    sink.record(DeadLetter::new(
        Effect::OpenCase(cleared("inc-3")),
        Reason::Closed,
    ));
    for _ in 0..200 {
        if sink.unrecorded() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((sink.written(), sink.unrecorded()), (0, 1));
}
