//! The notification port's domain values ([`crate::ports::notice`]) to and from
//! `dispatch.v1`, for the port's adapters.

use dispatch_proto::v1;
use dispatch_proto::v1::audience::Target;
use dispatch_proto::v1::notice_body::Kind;

use super::{
    FieldError, incident_from_wire, incident_to_wire, order_from_wire, order_to_wire,
    required_timestamp_from_wire, timestamp_to_wire,
};
use crate::feed::{AudienceKey, Cursor};
use crate::ports::{Notice, NoticeBody, Publication, PublishedNotice, Subscription};

/// An audience to the wire: an officer's id, or the command-center role.
pub fn audience_to_wire(a: &AudienceKey) -> v1::Audience {
    let target = match a {
        AudienceKey::Officer(id) => Target::OfficerId(id.to_string()),
        AudienceKey::CommandCenter => Target::Role(v1::Role::CommandCenter as i32),
    };
    v1::Audience {
        target: Some(target),
    }
}

/// A notice body to the wire.
pub fn notice_body_to_wire(b: &NoticeBody) -> v1::NoticeBody {
    let kind = match b {
        NoticeBody::DispatchOrder(o) => Kind::DispatchOrder(order_to_wire(o)),
        NoticeBody::IncidentUpdate(i) => Kind::IncidentUpdate(incident_to_wire(i)),
    };
    v1::NoticeBody { kind: Some(kind) }
}

/// A publication to the wire; no id is an empty `publication_id`.
pub fn publication_to_wire(p: &Publication) -> v1::Publication {
    v1::Publication {
        audience: Some(audience_to_wire(&p.audience)),
        body: Some(notice_body_to_wire(&p.body)),
        publication_id: p.id.clone().unwrap_or_default(),
    }
}

/// The cursors of a `Publish` reply to `sent` publications, in request order.
///
/// Errors: `cursors` when it does not hold one cursor per publication; `cursors[i]` when one
/// is not a cursor.
pub fn publish_reply_from_wire(
    reply: &v1::PublishResponse,
    sent: usize,
) -> Result<Vec<Cursor>, FieldError> {
    if reply.cursors.len() != sent {
        return Err(FieldError::new(
            "cursors",
            format!(
                "must hold one cursor per publication sent ({sent}), got {}",
                reply.cursors.len()
            ),
        ));
    }
    reply
        .cursors
        .iter()
        .enumerate()
        .map(|(i, c)| Cursor::parse(c, &format!("cursors[{i}]")))
        .collect()
}

/// A subscription to the wire: no cursor is an empty `resume_after`; `from_latest` unset.
pub fn subscription_to_wire(s: &Subscription) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        audience: Some(audience_to_wire(&s.audience)),
        resume_after: s.resume_after.map(|c| c.encode()).unwrap_or_default(),
        from_latest: false,
    }
}

/// A notice to the wire, as the notification service sends it: a heartbeat has the stream's
/// position as its `seq` and `cursor` (0 and empty before any) and no `published_at`.
pub fn notice_to_wire(n: &Notice) -> v1::Notice {
    match n {
        Notice::Published(p) => v1::Notice {
            seq: p.seq,
            published_at: Some(timestamp_to_wire(p.published_at)),
            body: Some(notice_body_to_wire(&p.body)),
            cursor: p.cursor.encode(),
        },
        Notice::Heartbeat { after } => v1::Notice {
            seq: after.map_or(0, |c| c.position),
            published_at: None,
            body: Some(v1::NoticeBody {
                kind: Some(Kind::Heartbeat(v1::Heartbeat {})),
            }),
            cursor: after.map(|c| c.encode()).unwrap_or_default(),
        },
    }
}

/// A notice from the wire, as a subscriber receives it.
///
/// Errors name the field: `body` when unset or with no kind; `body.dispatch_order.*` and
/// `body.incident_update.*` as [`order_from_wire`] and [`incident_from_wire`]; `cursor` when
/// not a cursor (a heartbeat's may be empty: before any notice); for a published notice
/// also `cursor` when empty, `seq` when 0, and `published_at...` (see
/// [`required_timestamp_from_wire`]). A heartbeat's `seq` and `published_at` are not read.
pub fn notice_from_wire(n: &v1::Notice) -> Result<Notice, FieldError> {
    let kind = n
        .body
        .as_ref()
        .ok_or_else(|| FieldError::new("body", "is required"))?
        .kind
        .as_ref()
        .ok_or_else(|| {
            FieldError::new(
                "body",
                "must set dispatch_order, incident_update or heartbeat",
            )
        })?;
    let body = match kind {
        Kind::Heartbeat(_) => {
            let after = Cursor::parse_resume(&n.cursor, "cursor")?;
            return Ok(Notice::Heartbeat { after });
        }
        Kind::DispatchOrder(o) => NoticeBody::DispatchOrder(
            order_from_wire(o).map_err(|e| e.within("body.dispatch_order"))?,
        ),
        Kind::IncidentUpdate(i) => NoticeBody::IncidentUpdate(Box::new(
            incident_from_wire(i).map_err(|e| e.within("body.incident_update"))?,
        )),
    };
    if n.cursor.is_empty() {
        return Err(FieldError::new("cursor", "is required"));
    }
    let cursor = Cursor::parse(&n.cursor, "cursor")?;
    if n.seq == 0 {
        return Err(FieldError::new("seq", "must be at least 1, got 0"));
    }
    let published_at = required_timestamp_from_wire(n.published_at.as_ref(), "published_at")?;
    Ok(Notice::Published(PublishedNotice {
        seq: n.seq,
        cursor,
        published_at,
        body,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use dispatch_core::district::DispatchOrder;
    use dispatch_core::{Category, Incident, IncidentState, LatLng, Priority, Timestamp};

    use super::*;

    const T0: Timestamp = Timestamp(1_700_000_000_123);

    fn cursor(position: u64) -> Cursor {
        Cursor {
            epoch: 1_700_000_000_000_000,
            position,
        }
    }

    fn order() -> DispatchOrder {
        DispatchOrder {
            dispatch_id: "nc-d07/inc-1/1".into(),
            incident_id: "inc-1".into(),
            officer_id: "nc-d07-o03".into(),
            district_id: "nc-d07".into(),
            priority: Priority::P2,
            category: Category::Burglary,
            location: LatLng::new(23.01, 113.75).unwrap(),
            description: "door forced".into(),
            eta_s: 186.5,
            dispatched_at: Timestamp(1_700_000_060_000),
        }
    }

    fn incident() -> Incident {
        let mut i = Incident::received(
            "inc-1".into(),
            "call-1".into(),
            Category::Burglary,
            LatLng::new(23.01, 113.75).unwrap(),
            "door forced".into(),
            T0,
        );
        i.district_id = "nc-d07".into();
        i.transition(IncidentState::Routed, Timestamp(1_700_000_000_200))
            .unwrap();
        i.revision = 2;
        i
    }

    fn published(seq: u64, body: NoticeBody) -> Notice {
        Notice::Published(PublishedNotice {
            seq,
            cursor: cursor(seq),
            published_at: T0,
            body,
        })
    }

    /// The wire form of a published order, built field by field (not by `notice_to_wire`).
    fn wire_order_notice() -> v1::Notice {
        v1::Notice {
            seq: 4,
            published_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_000_000,
            }),
            body: Some(v1::NoticeBody {
                kind: Some(Kind::DispatchOrder(v1::DispatchOrder {
                    dispatch_id: "nc-d07/inc-1/1".into(),
                    incident_id: "inc-1".into(),
                    officer_id: "nc-d07-o03".into(),
                    district_id: "nc-d07".into(),
                    priority: v1::Priority::P2 as i32,
                    category: Category::Burglary.wire(),
                    location: Some(v1::LatLng {
                        lat: 23.01,
                        lon: 113.75,
                    }),
                    description: "door forced".into(),
                    eta_s: 186.5,
                    dispatched_at: Some(prost_types::Timestamp {
                        seconds: 1_700_000_060,
                        nanos: 0,
                    }),
                })),
            }),
            cursor: "1700000000000000-4".into(),
        }
    }

    fn field_of(n: &v1::Notice) -> String {
        notice_from_wire(n).unwrap_err().field
    }

    #[test]
    fn a_wire_order_notice_reads_as_the_domain_order() {
        assert_eq!(
            notice_from_wire(&wire_order_notice()).unwrap(),
            published(4, NoticeBody::DispatchOrder(order()))
        );
    }

    #[test]
    fn each_kind_of_notice_round_trips_through_the_wire() {
        let notices = [
            published(4, NoticeBody::DispatchOrder(order())),
            published(5, NoticeBody::IncidentUpdate(Box::new(incident()))),
            Notice::Heartbeat {
                after: Some(cursor(5)),
            },
            Notice::Heartbeat { after: None },
        ];
        for n in notices {
            let wire = notice_to_wire(&n);
            assert_eq!(notice_from_wire(&wire).unwrap(), n);
            // And the wire form back again, unchanged.
            assert_eq!(notice_to_wire(&notice_from_wire(&wire).unwrap()), wire);
        }
    }

    #[test]
    fn a_heartbeat_carries_the_streams_position_as_the_service_sends_it() {
        let wire = notice_to_wire(&Notice::Heartbeat {
            after: Some(cursor(9)),
        });
        assert_eq!(
            (wire.seq, wire.cursor.as_str(), wire.published_at),
            (9, "1700000000000000-9", None)
        );
        let first = notice_to_wire(&Notice::Heartbeat { after: None });
        assert_eq!((first.seq, first.cursor.as_str()), (0, ""));
        assert_eq!(
            Notice::Heartbeat {
                after: Some(cursor(9))
            }
            .cursor(),
            Some(cursor(9))
        );
    }

    #[test]
    fn a_notice_without_a_body_names_the_body() {
        let mut n = wire_order_notice();
        n.body = None;
        assert_eq!(notice_from_wire(&n).unwrap_err().rule, "is required");
        assert_eq!(field_of(&n), "body");
        n.body = Some(v1::NoticeBody { kind: None });
        assert_eq!(field_of(&n), "body");
    }

    #[test]
    fn a_bad_cursor_seq_or_timestamp_is_named() {
        let mut n = wire_order_notice();
        n.cursor = "42".into();
        let e = notice_from_wire(&n).unwrap_err();
        assert_eq!(e.field, "cursor");
        assert!(e.rule.ends_with("got \"42\""), "{}", e.rule);
        n.cursor.clear();
        assert_eq!(field_of(&n), "cursor");

        let mut n = wire_order_notice();
        n.seq = 0;
        assert_eq!(field_of(&n), "seq");

        let mut n = wire_order_notice();
        n.published_at = None;
        assert_eq!(field_of(&n), "published_at");
        n.published_at = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 1_000_000_000,
        });
        assert_eq!(field_of(&n), "published_at.nanos");
        n.published_at = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: -1,
        });
        assert_eq!(field_of(&n), "published_at.nanos");
        n.published_at = Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert_eq!(field_of(&n), "published_at.seconds");

        let mut heartbeat = notice_to_wire(&Notice::Heartbeat { after: None });
        heartbeat.cursor = "7-x".into();
        assert_eq!(field_of(&heartbeat), "cursor");
    }

    #[test]
    fn a_bad_order_or_incident_is_named_under_its_body_field() {
        let mut n = wire_order_notice();
        let Some(Kind::DispatchOrder(o)) = n.body.as_mut().and_then(|b| b.kind.as_mut()) else {
            unreachable!("an order notice");
        };
        o.officer_id.clear();
        assert_eq!(field_of(&n), "body.dispatch_order.officer_id");
        let Some(Kind::DispatchOrder(o)) = n.body.as_mut().and_then(|b| b.kind.as_mut()) else {
            unreachable!("an order notice");
        };
        o.officer_id = "nc-d07-o03".into();
        o.dispatched_at = None;
        assert_eq!(field_of(&n), "body.dispatch_order.dispatched_at");

        let mut update = incident_to_wire(&incident());
        update.location = None;
        let n = v1::Notice {
            body: Some(v1::NoticeBody {
                kind: Some(Kind::IncidentUpdate(update)),
            }),
            ..wire_order_notice()
        };
        assert_eq!(field_of(&n), "body.incident_update.location");
    }

    #[test]
    fn publications_and_subscriptions_go_to_the_wire_with_their_audience() {
        let p = Publication {
            audience: AudienceKey::Officer("nc-d07-o03".into()),
            body: NoticeBody::DispatchOrder(order()),
            id: Some("nc-d07/inc-1/1".into()),
        };
        let wire = publication_to_wire(&p);
        assert_eq!(
            wire.audience.unwrap().target,
            Some(Target::OfficerId("nc-d07-o03".into()))
        );
        assert_eq!(wire.publication_id, "nc-d07/inc-1/1");
        assert_eq!(wire.body, wire_order_notice().body);
        let anonymous = publication_to_wire(&Publication { id: None, ..p });
        assert_eq!(anonymous.publication_id, "");

        let s = Subscription {
            audience: AudienceKey::CommandCenter,
            resume_after: Some(cursor(3)),
        };
        assert_eq!(
            subscription_to_wire(&s),
            v1::SubscribeRequest {
                audience: Some(v1::Audience {
                    target: Some(Target::Role(v1::Role::CommandCenter as i32)),
                }),
                resume_after: "1700000000000000-3".into(),
                from_latest: false,
            }
        );
        let from_oldest = subscription_to_wire(&Subscription {
            resume_after: None,
            ..s
        });
        assert_eq!(from_oldest.resume_after, "");
    }

    #[test]
    fn a_publish_reply_gives_one_cursor_per_publication() {
        let reply = v1::PublishResponse {
            seqs: vec![3, 4],
            cursors: vec!["5-3".into(), "5-4".into()],
        };
        assert_eq!(
            publish_reply_from_wire(&reply, 2).unwrap(),
            vec![
                Cursor {
                    epoch: 5,
                    position: 3
                },
                Cursor {
                    epoch: 5,
                    position: 4
                }
            ]
        );
        let e = publish_reply_from_wire(&reply, 3).unwrap_err();
        assert_eq!(e.field, "cursors");
        assert!(e.rule.contains("(3), got 2"), "{}", e.rule);
        let bad = v1::PublishResponse {
            seqs: vec![3, 4],
            cursors: vec!["5-3".into(), "five".into()],
        };
        assert_eq!(
            publish_reply_from_wire(&bad, 2).unwrap_err().field,
            "cursors[1]"
        );
    }
}
