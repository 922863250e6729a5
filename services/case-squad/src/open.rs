//! Checks of an `OpenCase` request: which case it asks for ([`check`]), and whether it agrees
//! with intake's record of the incident ([`check_recorded`]), before any state is touched.

use dispatch_bus::convert::{FieldError, disposition_from_wire, state_from_wire};
use dispatch_core::{Disposition, Incident, IncidentState};
use dispatch_proto::v1;

use crate::book::{self, CaseKind};
use crate::error::{Error, Result};

/// What an `OpenCase` request asks for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// The id to open the case under: the incident's `case_id`, which its district assigned
    /// at clearance (`case-{station_id}-{incident_id}`, [`dispatch_core::CaseId::for_incident`]);
    /// for an incident without one, [`book::case_id`] of its id (`case-{incident_id}`), the id
    /// such an incident's case got before districts assigned case ids.
    pub case_id: String,
    /// The cleared incident.
    pub incident_id: String,
    /// Station whose squad takes the case.
    pub station_id: String,
    /// District that handed the case over.
    pub district_id: String,
    /// Criminal or administrative, from the disposition.
    pub kind: CaseKind,
}

/// Checks `req`, and picks the case id: the incident's `case_id`, or when it has none (empty:
/// cleared by a district older than case ids, its `OpenCase` redelivered from that district's
/// journal) the id such a case was opened under before, `case-{incident_id}`, so that case is
/// found again rather than opened twice.
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
    let case_id = if incident.case_id.is_empty() {
        book::case_id(&incident.incident_id)
    } else {
        incident.case_id.clone()
    };
    Ok(CaseRequest {
        case_id,
        incident_id: incident.incident_id.clone(),
        station_id: incident.station_id.clone(),
        district_id: incident.district_id.clone(),
        kind,
    })
}

/// Checks the incident `sent` in an `OpenCase` request (already through [`check`]) against
/// `recorded`, intake's copy of it (`None`: intake does not know it).
///
/// Intake learns of a clearance from the command-center feed a moment after the district
/// sends the case, so intake's copy may still be `ON_SCENE`: its state and disposition are not
/// compared (the request's own were checked by [`check`]). What never changes after routing
/// must agree: the station, the district and the 110 call.
///
/// Errors, first broken rule only, each [`Error::NotAsRecorded`] naming the request's field:
/// `incident.incident_id` (intake did not record it), `incident.station_id`,
/// `incident.district_id`, `incident.call_id` (differs from intake's record).
pub fn check_recorded(sent: &v1::Incident, recorded: Option<&Incident>) -> Result<()> {
    let id = &sent.incident_id;
    let Some(recorded) = recorded else {
        return Err(Error::NotAsRecorded(FieldError::new(
            "incident.incident_id",
            format!("{id:?} is not an incident intake recorded"),
        )));
    };
    let fields = [
        (
            "incident.station_id",
            sent.station_id.as_str(),
            recorded.station_id.as_str(),
        ),
        (
            "incident.district_id",
            sent.district_id.as_str(),
            recorded.district_id.as_str(),
        ),
        (
            "incident.call_id",
            sent.call_id.as_str(),
            recorded.call_id.as_str(),
        ),
    ];
    for (field, sent, recorded) in fields {
        if sent != recorded {
            return Err(Error::NotAsRecorded(FieldError::new(
                field,
                format!(
                    "must match intake's record of incident {id:?} ({recorded:?}), got {sent:?}"
                ),
            )));
        }
    }
    Ok(())
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
                case_id: "case-inc-00000001".into(),
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
    fn the_case_id_is_the_incidents_own_when_it_has_one() {
        let mut r = cleared(v1::Disposition::CriminalCase);
        r.incident.as_mut().unwrap().case_id = "case-st-1-inc-00000001".into();
        assert_eq!(check(&r).unwrap().case_id, "case-st-1-inc-00000001");
        // Without one (a district older than case ids): the shape cases had before.
        r.incident.as_mut().unwrap().case_id.clear();
        assert_eq!(check(&r).unwrap().case_id, "case-inc-00000001");
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

    /// Intake's record: station `st-1`, district `d-1`, call `call-7`, not yet cleared.
    fn recorded() -> Incident {
        let mut i = crate::lookup::record("inc-00000001", "st-1");
        i.district_id = "d-1".into();
        i.call_id = "call-7".into();
        i
    }

    fn sent() -> v1::Incident {
        let mut i = cleared(v1::Disposition::CriminalCase).incident.unwrap();
        i.call_id = "call-7".into();
        i
    }

    #[test]
    fn intakes_lagging_copy_agrees_with_the_cleared_one() {
        assert_eq!(check_recorded(&sent(), Some(&recorded())), Ok(()));
    }

    #[test]
    fn an_incident_intake_never_recorded_is_refused_naming_its_id() {
        assert_eq!(
            check_recorded(&sent(), None).unwrap_err(),
            Error::NotAsRecorded(FieldError::new(
                "incident.incident_id",
                "\"inc-00000001\" is not an incident intake recorded"
            ))
        );
    }

    #[test]
    fn station_district_and_call_must_match_intakes_record() {
        let mismatch = |edit: fn(&mut v1::Incident)| {
            let mut s = sent();
            edit(&mut s);
            match check_recorded(&s, Some(&recorded())).unwrap_err() {
                Error::NotAsRecorded(f) => f,
                other => panic!("not a record mismatch: {other:?}"),
            }
        };
        let f = mismatch(|i| i.station_id = "st-2".into());
        assert_eq!(f.field, "incident.station_id");
        assert_eq!(
            f.rule,
            "must match intake's record of incident \"inc-00000001\" (\"st-1\"), got \"st-2\""
        );
        assert_eq!(
            mismatch(|i| i.district_id = "d-9".into()).field,
            "incident.district_id"
        );
        assert_eq!(mismatch(|i| i.call_id.clear()).field, "incident.call_id");
        // The first broken rule only: the station before the district.
        let f = mismatch(|i| {
            i.station_id = "st-2".into();
            i.district_id = "d-9".into();
        });
        assert_eq!(f.field, "incident.station_id");
    }
}
