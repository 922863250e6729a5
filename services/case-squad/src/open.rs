//! Checks of an `OpenCase` request: which case it asks for, before any state is touched.

use dispatch_bus::convert::{FieldError, disposition_from_wire, state_from_wire};
use dispatch_core::{Disposition, IncidentState};
use dispatch_proto::v1;

use crate::book::CaseKind;
use crate::error::{Error, Result};

/// What an `OpenCase` request asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// The cleared incident.
    pub incident_id: String,
    /// Station whose squad takes the case.
    pub station_id: String,
    /// District that handed the case over.
    pub district_id: String,
    /// Criminal or administrative, from the disposition.
    pub kind: CaseKind,
}

/// Checks `req`.
///
/// Errors, first broken rule only: `InvalidArgument` on `incident` (missing),
/// `incident.incident_id` or `incident.station_id` (empty), `incident.disposition` (not
/// `DISPOSITION_CRIMINAL_CASE` or `DISPOSITION_ADMINISTRATIVE_CASE`), `incident.state` (not a
/// known state); [`Error::NotCleared`] when the incident is not `CLEARED`. Whether the station
/// exists is the book's to say.
pub fn check(req: &v1::OpenCaseRequest) -> Result<CaseRequest> {
    let incident = req
        .incident
        .as_ref()
        .ok_or_else(|| FieldError::new("incident", "is required"))?;
    if incident.incident_id.is_empty() {
        return Err(FieldError::new("incident.incident_id", "is required").into());
    }
    if incident.station_id.is_empty() {
        return Err(FieldError::new("incident.station_id", "is required").into());
    }
    let kind = match disposition_from_wire(incident.disposition, "incident.disposition")? {
        Some(Disposition::CriminalCase) => CaseKind::Criminal,
        Some(Disposition::AdministrativeCase) => CaseKind::Administrative,
        other => {
            return Err(FieldError::new(
                "incident.disposition",
                format!(
                    "must be DISPOSITION_CRIMINAL_CASE or DISPOSITION_ADMINISTRATIVE_CASE, got {other:?}"
                ),
            )
            .into());
        }
    };
    let state = state_from_wire(incident.state, "incident.state")?;
    if state != IncidentState::Cleared {
        return Err(Error::NotCleared {
            incident_id: incident.incident_id.clone(),
            state,
        });
    }
    Ok(CaseRequest {
        incident_id: incident.incident_id.clone(),
        station_id: incident.station_id.clone(),
        district_id: incident.district_id.clone(),
        kind,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cleared(disposition: v1::Disposition) -> v1::OpenCaseRequest {
        v1::OpenCaseRequest {
            incident: Some(v1::Incident {
                incident_id: "inc-00000001".into(),
                station_id: "st-1".into(),
                district_id: "d-1".into(),
                state: v1::IncidentState::Cleared as i32,
                disposition: disposition as i32,
                ..Default::default()
            }),
        }
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::Field(f) => f.field,
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn dispositions_give_the_kind() {
        let c = check(&cleared(v1::Disposition::CriminalCase)).unwrap();
        assert_eq!(
            c,
            CaseRequest {
                incident_id: "inc-00000001".into(),
                station_id: "st-1".into(),
                district_id: "d-1".into(),
                kind: CaseKind::Criminal,
            }
        );
        let c = check(&cleared(v1::Disposition::AdministrativeCase)).unwrap();
        assert_eq!(c.kind, CaseKind::Administrative);
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(
            field_of(check(&v1::OpenCaseRequest { incident: None }).unwrap_err()),
            "incident"
        );
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().incident_id.clear();
        assert_eq!(field_of(check(&r).unwrap_err()), "incident.incident_id");
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().station_id.clear();
        assert_eq!(field_of(check(&r).unwrap_err()), "incident.station_id");
        for d in [
            v1::Disposition::Unspecified,
            v1::Disposition::Resolved,
            v1::Disposition::FalseAlarm,
            v1::Disposition::Referred,
        ] {
            assert_eq!(
                field_of(check(&cleared(d)).unwrap_err()),
                "incident.disposition",
                "{d:?}"
            );
        }
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().disposition = 77;
        assert_eq!(field_of(check(&r).unwrap_err()), "incident.disposition");
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().state = 99;
        assert_eq!(field_of(check(&r).unwrap_err()), "incident.state");
    }

    #[test]
    fn only_a_cleared_incident_opens_a_case() {
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().state = v1::IncidentState::OnScene as i32;
        assert_eq!(
            check(&r).unwrap_err(),
            Error::NotCleared {
                incident_id: "inc-00000001".into(),
                state: IncidentState::OnScene,
            }
        );
    }
}
