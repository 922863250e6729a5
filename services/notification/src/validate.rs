//! Checks of `Subscribe` and `Publish` requests. Pure functions: a bad request is answered
//! with a [`FieldError`] naming the field (dotted path as in the `.proto`) and the rule, which
//! becomes `InvalidArgument`.

use dispatch_bus::convert::FieldError;
use dispatch_bus::feed::AudienceKey;
use dispatch_proto::v1;
use dispatch_proto::v1::audience::Target;

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
        Some(Target::OfficerId(id)) => Ok(AudienceKey::Officer(id.clone())),
        Some(Target::Role(role)) if *role == v1::Role::CommandCenter as i32 => {
            Ok(AudienceKey::CommandCenter)
        }
        Some(Target::Role(role)) => Err(FieldError::new(
            format!("{field}.role"),
            format!("must be ROLE_COMMAND_CENTER, got {role}"),
        )),
    }
}

/// Every publication of a `Publish` request as (feed, body), in request order.
///
/// Errors: the first bad publication, as `publications[i].audience...` (see [`audience_key`])
/// or `publications[i].body` (missing, or with no kind set).
pub fn publications(
    req: v1::PublishRequest,
) -> Result<Vec<(AudienceKey, v1::NoticeBody)>, FieldError> {
    req.publications
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let key = audience_key(p.audience.as_ref(), &format!("publications[{i}].audience"))?;
            let body_field = || format!("publications[{i}].body");
            let body = p
                .body
                .ok_or_else(|| FieldError::new(body_field(), "is required"))?;
            if body.kind.is_none() {
                return Err(FieldError::new(
                    body_field(),
                    "must set dispatch_order or incident_update",
                ));
            }
            Ok((key, body))
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
                kind: Some(v1::notice_body::Kind::IncidentUpdate(
                    v1::Incident::default(),
                )),
            }),
        };
        let no_body = v1::Publication {
            audience: officer("a"),
            body: None,
        };
        let empty_body = v1::Publication {
            audience: officer("a"),
            body: Some(v1::NoticeBody { kind: None }),
        };
        let bad_officer = v1::Publication {
            audience: officer(""),
            body: good.body.clone(),
        };
        let req = |ps: Vec<v1::Publication>| v1::PublishRequest { publications: ps };
        assert_eq!(
            publications(req(vec![good.clone(), good.clone()]))
                .unwrap()
                .len(),
            2
        );
        let e = publications(req(vec![good.clone(), no_body])).unwrap_err();
        assert_eq!(e.field, "publications[1].body");
        let e = publications(req(vec![good.clone(), good.clone(), empty_body])).unwrap_err();
        assert_eq!(e.field, "publications[2].body");
        let e = publications(req(vec![bad_officer, good])).unwrap_err();
        assert_eq!(e.field, "publications[0].audience.officer_id");
    }
}
