//! The errors of the case squad and their gRPC status, mapped in one place.

use dispatch_bus::convert::FieldError;
use dispatch_core::IncidentState;
use tonic::Status;

/// What can go wrong opening or reading a case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A request field breaks a rule (`InvalidArgument` naming the field).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The station has no case squad in this service's directory (`NotFound`).
    #[error("station {0:?} not found")]
    UnknownStation(String),
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
}

/// Result of the case squad.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Field(f) => f.into(),
            Error::UnknownStation(_) | Error::UnknownCase(_) => Status::not_found(e.to_string()),
            Error::NotCleared { .. } | Error::NoInvestigators(_) => {
                Status::failed_precondition(e.to_string())
            }
        }
    }
}
