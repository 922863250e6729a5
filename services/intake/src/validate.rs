//! The rules a `ReportIncidentRequest` must meet. Pure; every broken rule is a [`FieldError`]
//! naming the field and the rule, with the offending value.

use dispatch_bus::convert::{FieldError, category_from_wire, latlng_from_wire};
use dispatch_core::{Category, LatLng};
use dispatch_proto::v1;

/// Longest `call_id`, characters. Bounded so a platform bug cannot grow the dedup index
/// without limit; 64 holds any id scheme we know of (UUIDs are 36).
pub const MAX_CALL_ID_CHARS: usize = 64;

/// Longest description, characters (not bytes: a Chinese description of 1,000 characters is
/// 3,000 UTF-8 bytes).
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;

/// A call that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCall {
    /// The 110 platform's id of the call.
    pub call_id: String,
    /// What was reported.
    pub category: Category,
    /// Where, WGS84 degrees.
    pub location: LatLng,
    /// Call taker's notes, at most [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

/// Checks `call_id`: 1..=64 characters of `[A-Za-z0-9._:-]`.
///
/// Errors: `call_id` when empty, too long, or holding another character (named, with its
/// 1-based position).
pub fn call_id(id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new("call_id", "is required"));
    }
    let len = id.chars().count();
    if len > MAX_CALL_ID_CHARS {
        return Err(FieldError::new(
            "call_id",
            format!("must be at most {MAX_CALL_ID_CHARS} characters, got {len}"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if let Some((i, c)) = id.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return Err(FieldError::new(
            "call_id",
            format!(
                "must contain only [A-Za-z0-9._:-], got {c:?} at character {}",
                i + 1
            ),
        ));
    }
    Ok(())
}

/// Checks a whole request, field by field in `.proto` order, and returns the first broken rule.
///
/// Errors: `call_id` (see [`call_id`]); `category` (unset or unknown); `location` (missing),
/// `location.lat` (not within -90..=90), `location.lon` (not within -180..=180);
/// `description` (longer than [`MAX_DESCRIPTION_CHARS`] characters).
pub fn report(req: &v1::ReportIncidentRequest) -> Result<ValidCall, FieldError> {
    call_id(&req.call_id)?;
    let category = category_from_wire(req.category, "category")?;
    let location = latlng_from_wire(req.location.as_ref(), "location")?;
    let chars = req.description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"),
        ));
    }
    Ok(ValidCall {
        call_id: req.call_id.clone(),
        category,
        location,
        description: req.description.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn good() -> v1::ReportIncidentRequest {
        v1::ReportIncidentRequest {
            call_id: "110-2026.11:07_a-1".into(),
            category: v1::IncidentCategory::Burglary as i32,
            location: Some(v1::LatLng {
                lat: 23.02,
                lon: 113.75,
            }),
            description: "door forced".into(),
        }
    }

    fn broken(f: impl FnOnce(&mut v1::ReportIncidentRequest)) -> FieldError {
        let mut r = good();
        f(&mut r);
        report(&r).unwrap_err()
    }

    #[test]
    fn a_good_call_passes_with_its_values() {
        let call = report(&good()).unwrap();
        assert_eq!(call.category, Category::Burglary);
        assert_eq!((call.location.lat, call.location.lon), (23.02, 113.75));
        assert_eq!(call.call_id, "110-2026.11:07_a-1");
    }

    #[test]
    fn call_id_rules() {
        assert_eq!(broken(|r| r.call_id.clear()).rule, "is required");
        assert!(call_id(&"a".repeat(64)).is_ok());
        let e = broken(|r| r.call_id = "a".repeat(65));
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("call_id", "must be at most 64 characters, got 65")
        );
        let e = broken(|r| r.call_id = "ab c".into());
        assert_eq!(
            e.rule,
            "must contain only [A-Za-z0-9._:-], got ' ' at character 3"
        );
        let e = broken(|r| r.call_id = "警1".into());
        assert_eq!(
            e.rule,
            "must contain only [A-Za-z0-9._:-], got '警' at character 1"
        );
        let e = broken(|r| r.call_id = "a/b".into());
        assert!(e.rule.contains("'/'"), "{}", e.rule);
    }

    #[test]
    fn category_and_location_rules_name_their_field() {
        assert_eq!(broken(|r| r.category = 0).field, "category");
        assert_eq!(broken(|r| r.category = 16).field, "category");
        assert_eq!(broken(|r| r.category = -3).field, "category");
        assert_eq!(broken(|r| r.location = None).field, "location");
        let at = |lat, lon| Some(v1::LatLng { lat, lon });
        assert_eq!(broken(|r| r.location = at(90.5, 0.0)).field, "location.lat");
        assert_eq!(
            broken(|r| r.location = at(f64::NAN, 0.0)).field,
            "location.lat"
        );
        assert_eq!(
            broken(|r| r.location = at(0.0, -180.01)).field,
            "location.lon"
        );
        assert_eq!(
            broken(|r| r.location = at(0.0, f64::INFINITY)).field,
            "location.lon"
        );
        assert!(
            report(&v1::ReportIncidentRequest {
                location: at(-90.0, 180.0),
                ..good()
            })
            .is_ok()
        );
    }

    #[test]
    fn description_is_bounded_in_characters_not_bytes() {
        // 1,000 three-byte characters: 3,000 bytes, still within the rule.
        assert!(
            report(&v1::ReportIncidentRequest {
                description: "警".repeat(1_000),
                ..good()
            })
            .is_ok()
        );
        let e = broken(|r| r.description = "警".repeat(1_001));
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("description", "must be at most 1000 characters, got 1001")
        );
    }

    #[test]
    fn the_first_broken_field_in_proto_order_is_reported() {
        let e = broken(|r| {
            r.call_id.clear();
            r.category = 0;
            r.location = None;
        });
        assert_eq!(e.field, "call_id");
    }
}
