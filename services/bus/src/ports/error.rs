//! What a port call answers when it fails, in terms of what the caller can do about it.

use std::time::Duration;

use tonic::{Code, Status};

use crate::convert::FieldError;

/// Why a call to another service failed. Each variant says what the caller can do:
/// retry ([`PortError::is_transient`]), back off, or give up and pass the refusal on.
///
/// Made from the peer's `tonic::Status` at the gRPC and in-process adapters
/// (`From<Status>`), and turned back into one with [`PortError::into_status`] by a service
/// that forwards a peer's error to its own caller, keeping the code and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// The peer is down, unreachable, restarting, or broke off the call (`Unavailable`,
    /// `Cancelled`, `Aborted`, `Unknown`): try again, later or elsewhere.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What the transport or the peer said.
        message: String,
    },
    /// No answer within the call's deadline (the client's own, or the peer's
    /// `DeadlineExceeded`): the call may or may not have taken effect; retry idempotent calls.
    #[error("{}", deadline_message(*.after, message))]
    DeadlineExceeded {
        /// The deadline that passed, when this side set it.
        after: Option<Duration>,
        /// What the peer said, when it was the peer that gave up.
        message: String,
    },
    /// The peer is overloaded (`ResourceExhausted`): retry after a backoff.
    #[error("overloaded: {message}")]
    Overloaded {
        /// What the peer said.
        message: String,
    },
    /// The peer refused the request itself (`InvalidArgument`, `FailedPrecondition`,
    /// `NotFound`, `AlreadyExists`, `OutOfRange`, `PermissionDenied`, `Unauthenticated`,
    /// `Unimplemented`): the same request would be refused again, so it is not worth retrying.
    #[error("refused with {code:?}: {message}")]
    Refused {
        /// The refusal's gRPC code.
        code: Code,
        /// The request field that broke a rule, from the status' `BadRequest` detail (dotted
        /// path, e.g. `incident.location.lat`), when the peer named one.
        field: Option<String>,
        /// The peer's message (`"{field}: {rule}"` when it named a field).
        message: String,
    },
    /// The peer failed on its side or answered something this side cannot read (`Internal`,
    /// `DataLoss`, a malformed reply). Counted as transient: h2 connection resets arrive as
    /// `Internal`, and a peer's bug may be fixed by its restart; callers bound their retries.
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

fn deadline_message(after: Option<Duration>, message: &str) -> String {
    match after {
        Some(after) => format!("no answer within the deadline of {} ms", after.as_millis()),
        None => format!("deadline exceeded: {message}"),
    }
}

/// Result of a port call.
pub type Result<T, E = PortError> = std::result::Result<T, E>;

impl PortError {
    /// Whether a retry of the same call may succeed: the peer was unavailable, slow,
    /// overloaded, or failed on its side. A [`PortError::Refused`] never is.
    pub fn is_transient(&self) -> bool {
        !matches!(self, PortError::Refused { .. })
    }

    /// The gRPC code this error stands for (the peer's code for a refusal).
    pub fn code(&self) -> Code {
        match self {
            PortError::Unavailable { .. } => Code::Unavailable,
            PortError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            PortError::Overloaded { .. } => Code::ResourceExhausted,
            PortError::Refused { code, .. } => *code,
            PortError::Internal { .. } => Code::Internal,
        }
    }

    /// The request field a refusal names, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            PortError::Refused { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The status to answer a service's own caller with when it passes this error on: the
    /// same code, message and (for a refusal naming a field) `BadRequest` field violation.
    pub fn into_status(self) -> Status {
        match self {
            PortError::Refused {
                code,
                field: Some(field),
                message,
            } => {
                let prefix = format!("{field}: ");
                let rule = message.strip_prefix(&prefix).unwrap_or(&message);
                dispatch_proto::status::with_field(code, &field, rule)
            }
            PortError::Refused {
                code,
                field: None,
                message,
            } => Status::new(code, message),
            PortError::Unavailable { message } => Status::unavailable(message),
            PortError::Overloaded { message } => Status::resource_exhausted(message),
            PortError::Internal { message } => Status::internal(message),
            e @ PortError::DeadlineExceeded { .. } => Status::deadline_exceeded(e.to_string()),
        }
    }

    /// A reply from `peer` that breaks a rule of the wire contract: [`PortError::Internal`]
    /// naming the peer, the message and the field.
    pub fn bad_reply(peer: &str, message: &str, e: &FieldError) -> Self {
        PortError::Internal {
            message: format!("{peer} answered a malformed {message}: {e}"),
        }
    }

    /// A request this side refuses before sending it (`InvalidArgument` naming the field).
    pub fn invalid(e: FieldError) -> Self {
        PortError::Refused {
            code: Code::InvalidArgument,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<Status> for PortError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown => {
                PortError::Unavailable { message }
            }
            Code::DeadlineExceeded => PortError::DeadlineExceeded {
                after: None,
                message,
            },
            Code::ResourceExhausted => PortError::Overloaded { message },
            Code::Internal | Code::DataLoss | Code::Ok => PortError::Internal { message },
            code @ (Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented) => PortError::Refused {
                code,
                field: dispatch_proto::status::violated_field(&status),
                message,
            },
        }
    }
}

impl From<PortError> for Status {
    fn from(e: PortError) -> Self {
        e.into_status()
    }
}
