//! Building [`Status`] values that tell a client which field broke which rule.
//!
//! `InvalidArgument` carries a `google.rpc.BadRequest` detail (via `tonic-types`) with one field
//! violation, so clients can read the field programmatically as well as in the message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `InvalidArgument` for `field` breaking `rule`; the message reads `"{field}: {rule}"`.
pub fn invalid_argument(field: &str, rule: impl Into<String>) -> Status {
    with_field(Code::InvalidArgument, field, rule)
}

/// A status of `code` for `field` breaking `rule`, with the same message and `BadRequest`
/// detail as [`invalid_argument`] (a service passing on a peer's refusal keeps its field).
pub fn with_field(code: Code, field: &str, rule: impl Into<String>) -> Status {
    let rule = rule.into();
    Status::with_error_details(
        code,
        format!("{field}: {rule}"),
        ErrorDetails::with_bad_request_violation(field, rule),
    )
}

/// The field named in a status built by [`invalid_argument`], if any.
pub fn violated_field(status: &Status) -> Option<String> {
    status
        .get_details_bad_request()
        .and_then(|br| br.field_violations.first().map(|v| v.field.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_field_and_rule() {
        let status = invalid_argument("location.lat", "must be within -90..=90, got 91");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "location.lat: must be within -90..=90, got 91"
        );
        assert_eq!(violated_field(&status).as_deref(), Some("location.lat"));
    }
}
