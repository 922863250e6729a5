//! Domain types to and from `dispatch.v1` messages.
//!
//! Conversions from the wire check every field and fail with a [`FieldError`] naming the
//! field (dotted path, as in the `.proto`) and the rule; [`FieldError`] turns into an
//! `InvalidArgument` status with a `BadRequest` detail.

use dispatch_core::district::DispatchOrder;
use dispatch_core::incident::IncidentTimes;
use dispatch_core::{
    Category, Disposition, Incident, IncidentState, LatLng, Officer, OfficerStatus, Priority,
    Timestamp,
};
use dispatch_proto::v1;
use tonic::Status;

use crate::ports::{Case, CaseKind, Route};

mod directory;
mod notice;

pub use self::directory::directory_from_wire;
pub use self::notice::{
    audience_to_wire, notice_body_to_wire, notice_from_wire, notice_to_wire, publication_to_wire,
    publish_reply_from_wire, subscription_to_wire,
};

/// A wire field that breaks a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `incident.location.lat`.
    pub field: String,
    /// The rule it breaks, with the offending value.
    pub rule: String,
}

impl FieldError {
    /// `field` breaks `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The same error under a parent field (`location.lat` -> `incident.location.lat`).
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            rule: self.rule,
        }
    }
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        dispatch_proto::status::invalid_argument(&e.field, e.rule)
    }
}

/// Cluster time to a protobuf timestamp.
pub fn timestamp_to_wire(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp to cluster time (millisecond resolution).
pub fn timestamp_from_wire(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Seconds of the earliest protobuf timestamp, 0001-01-01T00:00:00Z (the range
/// `google/protobuf/timestamp.proto` allows).
const MIN_WIRE_SECONDS: i64 = -62_135_596_800;
/// Seconds of the latest protobuf timestamp, 9999-12-31T23:59:59Z.
const MAX_WIRE_SECONDS: i64 = 253_402_300_799;

/// A required protobuf timestamp to cluster time (millisecond resolution), checked against
/// the rules of `google/protobuf/timestamp.proto`.
///
/// Errors: `field` when unset; `{field}.seconds` outside years 1 to 9999;
/// `{field}.nanos` outside `0..=999_999_999`.
pub fn required_timestamp_from_wire(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Timestamp, FieldError> {
    let t = t.ok_or_else(|| FieldError::new(field, "is required"))?;
    if !(MIN_WIRE_SECONDS..=MAX_WIRE_SECONDS).contains(&t.seconds) {
        return Err(FieldError::new(
            format!("{field}.seconds"),
            format!(
                "must be within {MIN_WIRE_SECONDS}..={MAX_WIRE_SECONDS} (years 1 to 9999), got {}",
                t.seconds
            ),
        ));
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(FieldError::new(
            format!("{field}.nanos"),
            format!("must be within 0..=999999999, got {}", t.nanos),
        ));
    }
    Ok(timestamp_from_wire(t))
}

/// A point to the wire.
pub fn latlng_to_wire(p: LatLng) -> v1::LatLng {
    v1::LatLng {
        lat: p.lat,
        lon: p.lon,
    }
}

/// A required point from the wire. Errors name `field`, `field.lat` or `field.lon`.
pub fn latlng_from_wire(p: Option<&v1::LatLng>, field: &str) -> Result<LatLng, FieldError> {
    let p = p.ok_or_else(|| FieldError::new(field, "is required"))?;
    LatLng::new(p.lat, p.lon).map_err(|e| match e {
        dispatch_core::geo::Error::Latitude(v) => FieldError::new(
            format!("{field}.lat"),
            format!("must be a finite number within -90..=90, got {v}"),
        ),
        dispatch_core::geo::Error::Longitude(v) => FieldError::new(
            format!("{field}.lon"),
            format!("must be a finite number within -180..=180, got {v}"),
        ),
    })
}

/// Priority to the wire.
pub fn priority_to_wire(p: Priority) -> v1::Priority {
    match p {
        Priority::P1 => v1::Priority::P1,
        Priority::P2 => v1::Priority::P2,
        Priority::P3 => v1::Priority::P3,
        Priority::P4 => v1::Priority::P4,
    }
}

/// Priority from its wire number. Errors name `field`.
pub fn priority_from_wire(n: i32, field: &str) -> Result<Priority, FieldError> {
    u8::try_from(n)
        .ok()
        .and_then(Priority::from_level)
        .ok_or_else(|| {
            FieldError::new(field, format!("must be PRIORITY_P1..=PRIORITY_P4, got {n}"))
        })
}

/// Category to the wire.
pub fn category_to_wire(c: Category) -> i32 {
    c.wire()
}

/// Category from its wire number. Errors name `field`: unset, or not a known category.
pub fn category_from_wire(n: i32, field: &str) -> Result<Category, FieldError> {
    if n == 0 {
        return Err(FieldError::new(
            field,
            "is required (INCIDENT_CATEGORY_UNSPECIFIED given)",
        ));
    }
    Category::from_wire(n).ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "must be a known IncidentCategory (1..={}), got {n}",
                Category::ALL.len()
            ),
        )
    })
}

/// Incident state to the wire.
pub fn state_to_wire(s: IncidentState) -> v1::IncidentState {
    use v1::IncidentState as W;
    match s {
        IncidentState::Received => W::Received,
        IncidentState::Routed => W::Routed,
        IncidentState::Queued => W::Queued,
        IncidentState::Dispatched => W::Dispatched,
        IncidentState::OnScene => W::OnScene,
        IncidentState::Cleared => W::Cleared,
        IncidentState::Cancelled => W::Cancelled,
        IncidentState::Merged => W::Merged,
    }
}

/// Incident state from its wire number. Errors name `field`.
pub fn state_from_wire(n: i32, field: &str) -> Result<IncidentState, FieldError> {
    use v1::IncidentState as W;
    Ok(match W::try_from(n) {
        Ok(W::Received) => IncidentState::Received,
        Ok(W::Routed) => IncidentState::Routed,
        Ok(W::Queued) => IncidentState::Queued,
        Ok(W::Dispatched) => IncidentState::Dispatched,
        Ok(W::OnScene) => IncidentState::OnScene,
        Ok(W::Cleared) => IncidentState::Cleared,
        Ok(W::Cancelled) => IncidentState::Cancelled,
        Ok(W::Merged) => IncidentState::Merged,
        Ok(W::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                field,
                format!("must be a known IncidentState, got {n}"),
            ));
        }
    })
}

/// Disposition to the wire.
pub fn disposition_to_wire(d: Disposition) -> v1::Disposition {
    use v1::Disposition as W;
    match d {
        Disposition::Resolved => W::Resolved,
        Disposition::CriminalCase => W::CriminalCase,
        Disposition::AdministrativeCase => W::AdministrativeCase,
        Disposition::FalseAlarm => W::FalseAlarm,
        Disposition::Referred => W::Referred,
    }
}

/// Disposition from its wire number; `None` for unspecified. Errors name `field`.
pub fn disposition_from_wire(n: i32, field: &str) -> Result<Option<Disposition>, FieldError> {
    use v1::Disposition as W;
    Ok(Some(match W::try_from(n) {
        Ok(W::Unspecified) => return Ok(None),
        Ok(W::Resolved) => Disposition::Resolved,
        Ok(W::CriminalCase) => Disposition::CriminalCase,
        Ok(W::AdministrativeCase) => Disposition::AdministrativeCase,
        Ok(W::FalseAlarm) => Disposition::FalseAlarm,
        Ok(W::Referred) => Disposition::Referred,
        Err(_) => {
            return Err(FieldError::new(
                field,
                format!("must be a known Disposition, got {n}"),
            ));
        }
    }))
}

/// Officer status to the wire.
pub fn officer_status_to_wire(s: OfficerStatus) -> v1::OfficerStatus {
    use v1::OfficerStatus as W;
    match s {
        OfficerStatus::OffDuty => W::OffDuty,
        OfficerStatus::Available => W::Available,
        OfficerStatus::Dispatched => W::Dispatched,
        OfficerStatus::Acknowledged => W::Acknowledged,
        OfficerStatus::OnScene => W::OnScene,
        OfficerStatus::Busy => W::Busy,
    }
}

/// Officer status from its wire number. Errors name `field`: unset or unknown.
pub fn officer_status_from_wire(n: i32, field: &str) -> Result<OfficerStatus, FieldError> {
    use v1::OfficerStatus as W;
    Ok(match W::try_from(n) {
        Ok(W::OffDuty) => OfficerStatus::OffDuty,
        Ok(W::Available) => OfficerStatus::Available,
        Ok(W::Dispatched) => OfficerStatus::Dispatched,
        Ok(W::Acknowledged) => OfficerStatus::Acknowledged,
        Ok(W::OnScene) => OfficerStatus::OnScene,
        Ok(W::Busy) => OfficerStatus::Busy,
        Ok(W::Unspecified) => return Err(FieldError::new(field, "is required")),
        Err(_) => {
            return Err(FieldError::new(
                field,
                format!("must be a known OfficerStatus, got {n}"),
            ));
        }
    })
}

fn times_to_wire(t: &IncidentTimes) -> v1::IncidentTimes {
    let w = |x: Option<Timestamp>| x.map(timestamp_to_wire);
    v1::IncidentTimes {
        received_at: w(t.received_at),
        routed_at: w(t.routed_at),
        queued_at: w(t.queued_at),
        dispatched_at: w(t.dispatched_at),
        acknowledged_at: w(t.acknowledged_at),
        on_scene_at: w(t.on_scene_at),
        cleared_at: w(t.cleared_at),
        cancelled_at: w(t.cancelled_at),
    }
}

fn times_from_wire(t: Option<&v1::IncidentTimes>) -> IncidentTimes {
    let Some(t) = t else {
        return IncidentTimes::default();
    };
    let r = |x: &Option<prost_types::Timestamp>| x.as_ref().map(timestamp_from_wire);
    IncidentTimes {
        received_at: r(&t.received_at),
        routed_at: r(&t.routed_at),
        queued_at: r(&t.queued_at),
        dispatched_at: r(&t.dispatched_at),
        acknowledged_at: r(&t.acknowledged_at),
        on_scene_at: r(&t.on_scene_at),
        cleared_at: r(&t.cleared_at),
        cancelled_at: r(&t.cancelled_at),
    }
}

/// An incident to the wire.
pub fn incident_to_wire(i: &Incident) -> v1::Incident {
    v1::Incident {
        incident_id: i.id.to_string(),
        call_id: i.call_id.to_string(),
        category: category_to_wire(i.category),
        priority: priority_to_wire(i.priority) as i32,
        location: Some(latlng_to_wire(i.location)),
        description: i.description.clone(),
        district_id: i.district_id.to_string(),
        station_id: i.station_id.to_string(),
        sub_bureau_id: i.sub_bureau_id.clone(),
        routed_to_nearest: i.routed_to_nearest,
        state: state_to_wire(i.state) as i32,
        officer_id: wire_or_empty(i.officer_id.as_ref()),
        dispatch_id: wire_or_empty(i.dispatch_id.as_ref()),
        disposition: i
            .disposition
            .map_or(v1::Disposition::Unspecified, disposition_to_wire) as i32,
        times: Some(times_to_wire(&i.times)),
        revision: i.revision,
        case_id: wire_or_empty(i.case_id.as_ref()),
    }
}

/// An optional id as proto3 sends it: empty for none.
fn wire_or_empty(id: Option<&impl AsRef<str>>) -> String {
    id.map_or_else(String::new, |id| id.as_ref().to_owned())
}

/// An id from a proto3 string: `None` when empty.
fn none_if_empty<T: From<String>>(s: &str) -> Option<T> {
    (!s.is_empty()).then(|| T::from(s.to_owned()))
}

/// An incident from the wire (as sent service to service). Errors name the field.
pub fn incident_from_wire(i: &v1::Incident) -> Result<Incident, FieldError> {
    if i.incident_id.is_empty() {
        return Err(FieldError::new("incident_id", "is required"));
    }
    Ok(Incident {
        id: i.incident_id.as_str().into(),
        call_id: i.call_id.as_str().into(),
        category: category_from_wire(i.category, "category")?,
        priority: priority_from_wire(i.priority, "priority")?,
        location: latlng_from_wire(i.location.as_ref(), "location")?,
        description: i.description.clone(),
        district_id: i.district_id.as_str().into(),
        station_id: i.station_id.as_str().into(),
        sub_bureau_id: i.sub_bureau_id.clone(),
        routed_to_nearest: i.routed_to_nearest,
        state: state_from_wire(i.state, "state")?,
        officer_id: none_if_empty(&i.officer_id),
        dispatch_id: none_if_empty(&i.dispatch_id),
        disposition: disposition_from_wire(i.disposition, "disposition")?,
        case_id: none_if_empty(&i.case_id),
        times: times_from_wire(i.times.as_ref()),
        revision: i.revision,
    })
}

/// A dispatch order to the wire (the order a terminal receives).
pub fn order_to_wire(o: &DispatchOrder) -> v1::DispatchOrder {
    v1::DispatchOrder {
        dispatch_id: o.dispatch_id.to_string(),
        incident_id: o.incident_id.to_string(),
        officer_id: o.officer_id.to_string(),
        district_id: o.district_id.to_string(),
        priority: priority_to_wire(o.priority) as i32,
        category: category_to_wire(o.category),
        location: Some(latlng_to_wire(o.location)),
        description: o.description.clone(),
        eta_s: o.eta_s,
        dispatched_at: Some(timestamp_to_wire(o.dispatched_at)),
    }
}

/// A dispatch order from the wire (as a terminal receives it). Errors name the field:
/// `dispatch_id`, `incident_id`, `officer_id` or `district_id` empty; `priority`, `category`,
/// `location...` as for an incident; `eta_s` negative or not finite; `dispatched_at...` (see
/// [`required_timestamp_from_wire`]).
pub fn order_from_wire(o: &v1::DispatchOrder) -> Result<DispatchOrder, FieldError> {
    for (field, value) in [
        ("dispatch_id", &o.dispatch_id),
        ("incident_id", &o.incident_id),
        ("officer_id", &o.officer_id),
        ("district_id", &o.district_id),
    ] {
        if value.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
    }
    if !(o.eta_s.is_finite() && o.eta_s >= 0.0) {
        return Err(FieldError::new(
            "eta_s",
            format!("must be a finite number of seconds >= 0, got {}", o.eta_s),
        ));
    }
    Ok(DispatchOrder {
        dispatch_id: o.dispatch_id.as_str().into(),
        incident_id: o.incident_id.as_str().into(),
        officer_id: o.officer_id.as_str().into(),
        district_id: o.district_id.as_str().into(),
        priority: priority_from_wire(o.priority, "priority")?,
        category: category_from_wire(o.category, "category")?,
        location: latlng_from_wire(o.location.as_ref(), "location")?,
        description: o.description.clone(),
        eta_s: o.eta_s,
        dispatched_at: required_timestamp_from_wire(o.dispatched_at.as_ref(), "dispatched_at")?,
    })
}

/// An officer to the wire, with whether the dispatch rule may pick them
/// ([`dispatch_core::dispatch::not_dispatchable`]).
pub fn officer_to_wire(o: &Officer) -> v1::Officer {
    use dispatch_core::dispatch::{NotDispatchable, not_dispatchable};
    let reason = not_dispatchable(o);
    v1::Officer {
        officer_id: o.id.to_string(),
        district_id: o.district_id.to_string(),
        status: officer_status_to_wire(o.status) as i32,
        location: o.location.map(latlng_to_wire),
        location_at: o.location_at.map(timestamp_to_wire),
        incident_id: wire_or_empty(o.incident_id.as_ref()),
        dispatch_id: wire_or_empty(o.dispatch_id.as_ref()),
        status_since: Some(timestamp_to_wire(o.status_since)),
        location_accuracy_m: o.location_accuracy_m,
        dispatchable: reason.is_none(),
        not_dispatchable_reason: match reason {
            None => v1::NotDispatchableReason::Unspecified,
            Some(NotDispatchable::Status(_)) => v1::NotDispatchableReason::Status,
            Some(NotDispatchable::NoFix) => v1::NotDispatchableReason::NoFix,
        } as i32,
    }
}

/// The geo-router's answer as a [`Route`]. Errors name the field: `district_id` when empty.
pub fn route_from_wire(r: v1::RouteResponse) -> Result<Route, FieldError> {
    if r.district_id.is_empty() {
        return Err(FieldError::new("district_id", "is required"));
    }
    Ok(Route {
        district_id: r.district_id.into(),
        station_id: r.station_id.into(),
        sub_bureau_id: r.sub_bureau_id,
        outside_map: r.outside_map,
        distance_outside_m: r.distance_outside_m,
    })
}

/// A route to the wire.
pub fn route_to_wire(r: &Route) -> v1::RouteResponse {
    v1::RouteResponse {
        district_id: r.district_id.to_string(),
        station_id: r.station_id.to_string(),
        sub_bureau_id: r.sub_bureau_id.clone(),
        outside_map: r.outside_map,
        distance_outside_m: r.distance_outside_m,
    }
}

/// A case from the wire. Errors name the field: `case_id` or `incident_id` empty, `kind`
/// unset or unknown, `opened_at` unset.
pub fn case_from_wire(c: v1::Case) -> Result<Case, FieldError> {
    for (field, value) in [("case_id", &c.case_id), ("incident_id", &c.incident_id)] {
        if value.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
    }
    let kind = match v1::CaseKind::try_from(c.kind) {
        Ok(v1::CaseKind::Criminal) => CaseKind::Criminal,
        Ok(v1::CaseKind::Administrative) => CaseKind::Administrative,
        Ok(v1::CaseKind::Unspecified) | Err(_) => {
            return Err(FieldError::new(
                "kind",
                format!(
                    "must be CASE_KIND_CRIMINAL or CASE_KIND_ADMINISTRATIVE, got {}",
                    c.kind
                ),
            ));
        }
    };
    let opened_at = c
        .opened_at
        .as_ref()
        .map(timestamp_from_wire)
        .ok_or_else(|| FieldError::new("opened_at", "is required"))?;
    Ok(Case {
        case_id: c.case_id.into(),
        incident_id: c.incident_id.into(),
        station_id: c.station_id.into(),
        district_id: c.district_id.into(),
        kind,
        investigator_id: c.investigator_id,
        opened_at,
    })
}

/// A case to the wire.
pub fn case_to_wire(c: &Case) -> v1::Case {
    v1::Case {
        case_id: c.case_id.to_string(),
        incident_id: c.incident_id.to_string(),
        station_id: c.station_id.to_string(),
        district_id: c.district_id.to_string(),
        kind: match c.kind {
            CaseKind::Criminal => v1::CaseKind::Criminal,
            CaseKind::Administrative => v1::CaseKind::Administrative,
        } as i32,
        investigator_id: c.investigator_id.clone(),
        opened_at: Some(timestamp_to_wire(c.opened_at)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Incident {
        let mut i = Incident::received(
            "I7".into(),
            "call-7".into(),
            Category::Burglary,
            LatLng::new(23.01, 113.75).unwrap(),
            "door forced".into(),
            Timestamp(1_700_000_000_123),
        );
        i.district_id = "nancheng-d01".into();
        i.transition(IncidentState::Routed, Timestamp(1_700_000_000_200))
            .unwrap();
        i
    }

    #[test]
    fn incident_round_trips_through_the_wire() {
        let i = sample();
        assert_eq!(incident_from_wire(&incident_to_wire(&i)).unwrap(), i);
    }

    #[test]
    fn case_id_travels_both_ways_and_empty_is_none() {
        let mut i = sample();
        i.case_id = Some("case-nc-st1-I7".into());
        let wire = incident_to_wire(&i);
        assert_eq!(wire.case_id, "case-nc-st1-I7");
        assert_eq!(incident_from_wire(&wire).unwrap(), i);
        i.case_id = None;
        let wire = incident_to_wire(&i);
        assert_eq!(wire.case_id, "");
        assert_eq!(incident_from_wire(&wire).unwrap().case_id, None);
    }

    #[test]
    fn timestamps_keep_milliseconds_including_before_1970() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1_001] {
            assert_eq!(
                timestamp_from_wire(&timestamp_to_wire(Timestamp(ms))),
                Timestamp(ms)
            );
        }
        assert_eq!(timestamp_to_wire(Timestamp(-1)).nanos, 999_000_000);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut w = incident_to_wire(&sample());
        w.location = Some(v1::LatLng {
            lat: 95.0,
            lon: 0.0,
        });
        assert_eq!(incident_from_wire(&w).unwrap_err().field, "location.lat");
        w.location = None;
        assert_eq!(incident_from_wire(&w).unwrap_err().field, "location");
        let mut w = incident_to_wire(&sample());
        w.category = 0;
        assert_eq!(incident_from_wire(&w).unwrap_err().field, "category");
        w.category = 99;
        assert!(incident_from_wire(&w).unwrap_err().rule.contains("got 99"));
        let mut w = incident_to_wire(&sample());
        w.disposition = 42;
        assert_eq!(incident_from_wire(&w).unwrap_err().field, "disposition");
    }

    #[test]
    fn field_errors_become_invalid_argument_with_the_field() {
        let status: Status = FieldError::new("call_id", "is required")
            .within("request")
            .into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            dispatch_proto::status::violated_field(&status).as_deref(),
            Some("request.call_id")
        );
    }
}
