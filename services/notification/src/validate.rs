//! Checks of `Subscribe` and `Publish` requests. Pure functions: a bad request is answered
//! with a [`FieldError`] naming the field (dotted path as in the `.proto`) and the rule, which
//! becomes `InvalidArgument`.

use dispatch_bus::convert::FieldError;
use dispatch_bus::feed::{AudienceKey, Publication};
use dispatch_proto::v1;
use dispatch_proto::v1::audience::Target;
use dispatch_proto::v1::notice_body::Kind;

/// The feed an audience names. `field` is the audience's own path (`audience`,
/// `publications[2].audience`).
///
/// Errors: `field` when missing or with neither target set; `{field}.officer_id` when empty;
/// `{field}.role` when not `ROLE_COMMAND_CENTER` (the only role with a feed).
pub fn audience_key(
    audience: Option<&v1::Audience>,
    field: &str,
) -> Result<AudienceKey, FieldError> {
    let audience = audience.ok_or_else(|| FieldError::new(field, "is required"))?;
    match &audience.target {
        None => Err(FieldError::new(field, "must set officer_id or role")),
        Some(Target::OfficerId(id)) if id.is_empty() => Err(FieldError::new(
            format!("{field}.officer_id"),
            "must not be empty",
        )),
        Some(Target::OfficerId(id)) => Ok(AudienceKey::Officer(id.as_str().into())),
        Some(Target::Role(role)) if *role == v1::Role::CommandCenter as i32 => {
            Ok(AudienceKey::CommandCenter)
        }
        Some(Target::Role(role)) => Err(FieldError::new(
            format!("{field}.role"),
            format!("must be ROLE_COMMAND_CENTER, got {role}"),
        )),
    }
}

/// Every publication of a `Publish` request, in request order; an empty `publication_id`
/// becomes `None` (no deduplication).
///
/// Errors: the first bad publication, as `publications[i].audience...` (see [`audience_key`])
/// or `publications[i].body` (missing, with no kind set, or a heartbeat, which only the
/// server sends).
pub fn publications(req: v1::PublishRequest) -> Result<Vec<Publication>, FieldError> {
    req.publications
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let key = audience_key(p.audience.as_ref(), &format!("publications[{i}].audience"))?;
            let body_field = || format!("publications[{i}].body");
            let body = p
                .body
                .ok_or_else(|| FieldError::new(body_field(), "is required"))?;
            match body.kind {
                Some(Kind::DispatchOrder(_) | Kind::IncidentUpdate(_)) => {}
                None => {
                    return Err(FieldError::new(
                        body_field(),
                        "must set dispatch_order or incident_update",
                    ));
                }
                Some(Kind::Heartbeat(_)) => {
                    return Err(FieldError::new(
                        body_field(),
                        "must set dispatch_order or incident_update, got a heartbeat (only the server sends those)",
                    ));
                }
            }
            Ok(Publication {
                audience: key,
                body,
                id: Some(p.publication_id).filter(|id| !id.is_empty()),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn officer(id: &str) -> Option<v1::Audience> {
        Some(v1::Audience {
            target: Some(Target::OfficerId(id.into())),
        })
    }

    fn role(r: i32) -> Option<v1::Audience> {
        Some(v1::Audience {
            target: Some(Target::Role(r)),
        })
    }

    #[test]
    fn audiences_map_to_their_feeds() {
        assert_eq!(
            audience_key(officer("o-7").as_ref(), "audience").unwrap(),
            AudienceKey::Officer("o-7".into())
        );
        assert_eq!(
            audience_key(role(1).as_ref(), "audience").unwrap(),
            AudienceKey::CommandCenter
        );
    }

    #[test]
    fn bad_audiences_name_the_field_and_the_value() {
        let e = audience_key(None, "audience").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("audience", "is required")
        );
        let e = audience_key(Some(&v1::Audience { target: None }), "audience").unwrap_err();
        assert_eq!(e.field, "audience");
        let e = audience_key(officer("").as_ref(), "audience").unwrap_err();
        assert_eq!(e.field, "audience.officer_id");
        let e = audience_key(role(0).as_ref(), "audience").unwrap_err();
        assert_eq!(e.field, "audience.role");
        assert_eq!(e.rule, "must be ROLE_COMMAND_CENTER, got 0");
        let e = audience_key(role(9).as_ref(), "audience").unwrap_err();
        assert!(e.rule.ends_with("got 9"), "{}", e.rule);
    }

    #[test]
    fn the_first_bad_publication_is_named_by_index() {
        let good = v1::Publication {
            audience: role(1),
            body: Some(v1::NoticeBody {
                kind: Some(Kind::IncidentUpdate(v1::Incident::default())),
            }),
            publication_id: String::new(),
        };
        let with_id = v1::Publication {
            publication_id: "inc-1/3".into(),
            ..good.clone()
        };
        let no_body = v1::Publication {
            audience: officer("a"),
            body: None,
            publication_id: String::new(),
        };
        let empty_body = v1::Publication {
            body: Some(v1::NoticeBody { kind: None }),
            ..no_body.clone()
        };
        let heartbeat = v1::Publication {
            body: Some(v1::NoticeBody {
                kind: Some(Kind::Heartbeat(v1::Heartbeat {})),
            }),
            ..no_body.clone()
        };
        let bad_officer = v1::Publication {
            audience: officer(""),
            ..good.clone()
        };
        let req = |ps: Vec<v1::Publication>| v1::PublishRequest { publications: ps };
        let ok = publications(req(vec![good.clone(), with_id])).unwrap();
        let ids: Vec<Option<&str>> = ok.iter().map(|p| p.id.as_deref()).collect();
        assert_eq!(ids, vec![None, Some("inc-1/3")]);
        assert_eq!(ok[0].audience, AudienceKey::CommandCenter);
        let e = publications(req(vec![good.clone(), no_body])).unwrap_err();
        assert_eq!(e.field, "publications[1].body");
        let e = publications(req(vec![good.clone(), good.clone(), empty_body])).unwrap_err();
        assert_eq!(e.field, "publications[2].body");
        let e = publications(req(vec![good.clone(), heartbeat])).unwrap_err();
        assert_eq!(e.field, "publications[1].body");
        assert!(e.rule.contains("heartbeat"), "{}", e.rule);
        let e = publications(req(vec![bad_officer, good])).unwrap_err();
        assert_eq!(e.field, "publications[0].audience.officer_id");
    }
}
