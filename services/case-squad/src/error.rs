//! The errors of the case squad and their gRPC status, mapped in one place.

use dispatch_bus::convert::FieldError;
use dispatch_core::IncidentState;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What can go wrong opening or reading a case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A request field breaks a rule (`InvalidArgument` naming the field).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A request field contradicts what intake recorded of the incident: intake does not know
    /// the incident, or records another station, district or call (`FailedPrecondition`
    /// naming the field, see [`precondition_failed`]).
    #[error("{0}")]
    NotAsRecorded(FieldError),
    /// The station has no case squad in this service's directory (`NotFound`).
    #[error("station {0:?} not found")]
    UnknownStation(String),
    /// The request's `incident.case_id` is already the id of another incident's case
    /// (`InvalidArgument` naming `incident.case_id`): case ids are unique, and a case is never
    /// handed to a second incident.
    #[error("case {case_id:?} is already the case of incident {incident_id:?}")]
    CaseIdTaken {
        /// The case id asked for.
        case_id: String,
        /// The incident whose case has it.
        incident_id: String,
    },
    /// No case has this id (`NotFound`).
    #[error("case {0:?} not found")]
    UnknownCase(String),
    /// A case opens only for a cleared incident (`FailedPrecondition`).
    #[error("incident {incident_id:?} is {state:?}; a case opens only for a CLEARED incident")]
    NotCleared {
        /// The incident.
        incident_id: String,
        /// Its state.
        state: IncidentState,
    },
    /// The squad has nobody to assign to (`investigators_per_squad` is 0)
    /// (`FailedPrecondition`).
    #[error("the case squad of station {0:?} has no investigators")]
    NoInvestigators(String),
    /// The case store (Redis) or intake cannot be reached now; the same request may succeed
    /// later (`Unavailable`, which the district's outbox retries).
    #[error("{0}")]
    Unavailable(String),
    /// The case store refused a command or holds a record it cannot read: not a passing
    /// outage (`Internal`).
    #[error("case store failed: {0}")]
    Store(String),
}

/// Result of the case squad.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `PreconditionFailure` violation type of [`Error::NotAsRecorded`]: the request disagrees
/// with intake's record of the incident.
pub const INTAKE_RECORD: &str = "INTAKE_RECORD";

/// `FailedPrecondition` for `field` breaking `rule`: the message reads `"{field}: {rule}"` and
/// a `google.rpc.PreconditionFailure` detail carries one violation of type [`INTAKE_RECORD`]
/// whose subject is the field, so a client can read the field as it reads `BadRequest`'s.
pub fn precondition_failed(field: &str, rule: &str) -> Status {
    Status::with_error_details(
        Code::FailedPrecondition,
        format!("{field}: {rule}"),
        ErrorDetails::with_precondition_failure_violation(INTAKE_RECORD, field, rule),
    )
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Field(f) => f.into(),
            Error::NotAsRecorded(f) => precondition_failed(&f.field, &f.rule),
            Error::CaseIdTaken {
                case_id,
                incident_id,
            } => FieldError::new(
                "incident.case_id",
                format!("must be unique, but {case_id:?} is the case of incident {incident_id:?}"),
            )
            .into(),
            Error::UnknownStation(_) | Error::UnknownCase(_) => Status::not_found(e.to_string()),
            Error::NotCleared { .. } | Error::NoInvestigators(_) => {
                Status::failed_precondition(e.to_string())
            }
            Error::Unavailable(_) => Status::unavailable(e.to_string()),
            Error::Store(_) => Status::internal(e.to_string()),
        }
    }
}
