//! The errors of intake and their gRPC status, mapped in one place.

use dispatch_bus::convert::FieldError;
use dispatch_bus::ports::PortError;
use dispatch_core::incident::TransitionError;
use tonic::Status;

/// What can go wrong taking a call or reading an incident.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field breaks a rule (`InvalidArgument` naming the field).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The call id is known with different content (`AlreadyExists`).
    #[error(
        "call_id {call_id:?} was already reported as incident {incident_id} with a different {differs}"
    )]
    CallReused {
        /// The reused call id.
        call_id: String,
        /// The incident of its first report.
        incident_id: String,
        /// The first field that differs: `category`, `location` or `description`.
        differs: &'static str,
    },
    /// No incident has this id (`NotFound`).
    #[error("incident {0:?} not found")]
    UnknownIncident(String),
    /// A peer service answered with an error: passed on with its code and field (the
    /// router's `InvalidArgument` on `location`, the district's `Unavailable`, ...).
    #[error("{peer}: {error}")]
    Upstream {
        /// `geo-router` or `district`.
        peer: &'static str,
        /// What the peer's port answered.
        error: PortError,
    },
    /// The record store cannot be reached (`Unavailable`; the client retries).
    #[error("incident records unavailable: {0}")]
    Records(String),
    /// A peer did not answer within its deadline (`DeadlineExceeded`).
    #[error("{peer} did not answer within {ms} ms")]
    Deadline {
        /// `geo-router` or `district`.
        peer: &'static str,
        /// The deadline, milliseconds.
        ms: u64,
    },
    /// A lifecycle step intake takes was refused (`Internal`; a bug).
    #[error(transparent)]
    Lifecycle(#[from] TransitionError),
}

impl Error {
    /// `peer`'s port error: [`Error::Deadline`] when this side's deadline passed,
    /// [`Error::Upstream`] otherwise.
    pub fn peer(peer: &'static str, error: PortError) -> Self {
        match error {
            PortError::DeadlineExceeded {
                after: Some(after), ..
            } => Error::Deadline {
                peer,
                ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            error => Error::Upstream { peer, error },
        }
    }
}

/// Result of intake.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Field(f) => f.into(),
            Error::CallReused { .. } => Status::already_exists(e.to_string()),
            Error::UnknownIncident(_) => Status::not_found(e.to_string()),
            Error::Upstream { error, .. } => error.into_status(),
            Error::Records(_) => Status::unavailable(e.to_string()),
            Error::Deadline { .. } => Status::deadline_exceeded(e.to_string()),
            Error::Lifecycle(_) => Status::internal(e.to_string()),
        }
    }
}
