//! The seams between services, in domain terms.
//!
//! Each dependency of one service on another is a port: an async trait over domain values
//! (`dispatch-core`'s [`Incident`], a [`Route`], a [`Case`]) that fails with a typed
//! [`PortError`] saying what the caller can do (retry, back off, give up), never a bare
//! `tonic::Status`:
//!
//! | port | caller -> callee | client |
//! |---|---|---|
//! | [`RouterPort`] | intake -> geo-router | [`RouterClient`] |
//! | [`DistrictPort`] | intake -> the district's owner node | [`DistrictClient`] |
//! | [`NotifyPort`] | district -> notification, intake <- notification | [`NotifyClient`] |
//! | [`CasePort`] | district -> case squad | [`CaseClient`] |
//! | [`RecordsPort`] | case squad -> intake | [`RecordsClient`] |
//!
//! Callers hold the client, one cheap-clone type per port, built over a gRPC channel
//! (`grpc`, separate processes), over the service's own implementation in this process
//! (`in_process`, the embedded mode and tests: no socket, the same `tonic::Request` a gRPC
//! call would deliver), or over any implementation of the trait (`from_port`: tests' fakes,
//! Redis-backed implementations). Whichever it is:
//! - every call runs under the client's deadline ([`CallOptions::deadline`]): the client
//!   gives up after it with [`PortError::DeadlineExceeded`], and the callee sees it as
//!   `grpc-timeout` metadata (gRPC sends it as a header; the in-process adapter sets the same
//!   metadata on the request it hands the service);
//! - every call carries the caller's trace context ([`crate::trace`]) as `traceparent`
//!   metadata, read by the handler with [`crate::trace::from_request`].
//!
//! The district port also resolves which node owns a district ([`Placement`]) before each
//! submit; with one node ([`SingleNode`]) that is a check that the district exists; across
//! nodes ([`DistrictClient::with_placement`] over [`DistrictNodes`]) an owner that moves is
//! followed within the call's deadline.
//!
//! The notification port carries [`Publication`]s out and a [`Subscription`]'s [`Notice`]s
//! in, addressed by the feeds' own [`AudienceKey`] and [`Cursor`]; the geo-router's directory
//! is a [`Directory`]. Their `dispatch.v1` forms are made and read only by the adapters (with
//! [`crate::convert`]); a reply that does not convert is [`PortError::Internal`] naming the
//! field.

mod clients;
mod error;
mod grpc;
mod in_process;
mod notice;
mod placement;
mod types;

use std::pin::Pin;
use std::time::Duration;

use dispatch_core::{Incident, IncidentId, LatLng};
use futures::Stream;
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

pub use self::clients::{
    CaseClient, DistrictClient, DistrictNodes, NotifyClient, RecordsClient, RouterClient,
};
pub use self::error::{PortError, Result};
pub use self::in_process::InProcess;
pub use self::notice::{Notice, NoticeBody, Publication, PublishedNotice, Subscription};
pub use self::placement::{NodeId, Placement, SingleNode};
pub use self::types::{
    Case, CaseKind, Directory, DistrictEntry, Route, StationEntry, SubBureauEntry,
};
pub use crate::feed::{AudienceKey, Cursor};
use crate::trace::{self, TraceContext};

/// A stream of one audience's notices, in feed order.
///
/// A notice this side cannot read (the peer's `dispatch.v1.Notice` breaks a rule of the wire
/// contract) is an `Err(`[`PortError::Internal`]`)` naming the field, and the stream goes on
/// after it; any other error (the peer's status, a broken connection) is the stream's last
/// item.
pub type NoticeStream = Pin<Box<dyn Stream<Item = Result<Notice>> + Send>>;

/// How a client calls its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// Longest wait for an answer (for a subscription: for the stream to open). Each client
    /// documents its default.
    pub deadline: Duration,
}

impl CallOptions {
    /// Calls with `deadline`.
    pub fn with_deadline(deadline: Duration) -> Self {
        Self { deadline }
    }
}

/// What one call carries besides its arguments: its deadline and the caller's trace context.
/// Clients make it ([`Call::new`]); port implementations put it on the request they send
/// ([`Call::request`]), or honour it themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// How long the caller waits for the answer.
    pub deadline: Duration,
    /// The caller's trace context, if it runs inside one.
    pub trace: Option<TraceContext>,
}

impl Call {
    /// A call under `options`, in the current task's trace context ([`trace::current`]).
    pub fn new(options: CallOptions) -> Self {
        Self {
            deadline: options.deadline,
            trace: trace::current(),
        }
    }

    /// The request of a unary call: `message` with `grpc-timeout` set to the deadline and
    /// `traceparent` set to the trace context. The gRPC and in-process adapters both use it, so
    /// a handler sees the same metadata either way.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = self.stream_request(message);
        request.set_timeout(self.deadline);
        request
    }

    /// The request opening a server stream: as [`Call::request`] without `grpc-timeout`,
    /// which would end the stream at the deadline. The client bounds the opening instead.
    pub fn stream_request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(trace) = &self.trace {
            trace.inject(request.metadata_mut());
        }
        request
    }
}

/// Intake -> geo-router: where is this point.
#[tonic::async_trait]
pub trait RouterPort: Send + Sync + 'static {
    /// The district, station and sub-bureau of `location` (see `GeoRouter.Route`).
    ///
    /// Errors: [`PortError::Refused`] on `location` for a point more than 2 km off the map;
    /// [`PortError::Internal`] for a reply without a district; transport errors.
    async fn route(&self, call: &Call, location: LatLng) -> Result<Route>;
    /// The whole directory of sub-bureaus, stations and districts (see
    /// `GeoRouter.ListDistricts`).
    ///
    /// Errors: [`PortError::Internal`] naming the field for a reply that is not a valid
    /// directory (e.g. `districts[3].district_id` empty); transport errors.
    async fn list_districts(&self, call: &Call) -> Result<Directory>;
}

/// Intake -> district: take this routed incident.
#[tonic::async_trait]
pub trait DistrictPort: Send + Sync + 'static {
    /// Hands `incident` (state `ROUTED`, district set) to its district and answers it as the
    /// district keeps it, e.g. `QUEUED` (see `DistrictService.SubmitIncident`; idempotent on
    /// the incident id).
    ///
    /// Errors: [`PortError::Refused`] naming the field the district refused;
    /// [`PortError::Internal`] for a reply that is not a valid incident; transport errors.
    async fn submit(&self, call: &Call, incident: Incident) -> Result<Incident>;
}

/// District -> notification (publish) and intake/screens <- notification (subscribe).
#[tonic::async_trait]
pub trait NotifyPort: Send + Sync + 'static {
    /// Appends `publications` to their audiences' feeds, in order, and answers the cursor of
    /// each one's notice, in the same order (see `Notification.Publish`; idempotent on each
    /// publication's id, whose notice keeps its first cursor).
    ///
    /// Errors: [`PortError::Refused`] naming the field (`publications[i]...`) of a
    /// publication the service refuses, nothing appended then; [`PortError::Internal`] for a
    /// reply without one valid cursor per publication; transport errors (some publications
    /// may be appended: send them again with the same ids).
    async fn publish(&self, call: &Call, publications: Vec<Publication>) -> Result<Vec<Cursor>>;
    /// Opens a stream of one audience's notices (see `Notification.Subscribe`).
    ///
    /// Errors: [`PortError::Refused`] with `OutOfRange` naming `resume_after` for a cursor
    /// the feed cannot honour, with `NotFound` for an officer on no roster; transport errors.
    async fn subscribe(&self, call: &Call, subscription: Subscription) -> Result<NoticeStream>;
}

/// District -> case squad: open a case for this cleared incident.
#[tonic::async_trait]
pub trait CasePort: Send + Sync + 'static {
    /// Opens (or answers the already opened) case of `incident`, cleared as a criminal or
    /// administrative case (see `CaseSquad.OpenCase`; idempotent on the incident id).
    ///
    /// Errors: [`PortError::Refused`] naming the field the case squad refused;
    /// [`PortError::Internal`] for a reply that is not a valid case; transport errors.
    async fn open_case(&self, call: &Call, incident: Incident) -> Result<Case>;
}

/// Case squad -> intake: what intake recorded of an incident, the registry a case squad checks
/// an `OpenCase` against (anyone reaching its listener could forge an incident).
#[tonic::async_trait]
pub trait RecordsPort: Send + Sync + 'static {
    /// Intake's record of incident `id`; `None` when intake answers `NOT_FOUND` (it never took
    /// that incident, or it left the hot store after its retention).
    ///
    /// Errors: [`PortError::Internal`] for a record that is not a valid incident; transport
    /// errors and any other refusal as they came.
    async fn incident(&self, call: &Call, id: &IncidentId) -> Result<Option<Incident>>;
}

/// Why a list of replica addresses (`host:port,host:port`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaListError {
    /// Item `index` (0-based) of the list is empty, e.g. `a:1,,b:2` or a trailing comma.
    #[error("replica {index} of {list:?} is empty")]
    Empty {
        /// The whole list as given.
        list: String,
        /// Position of the empty item, 0-based.
        index: usize,
    },
    /// Item `addr` does not make a URI.
    #[error("replica {addr:?} of {list:?} is not a host:port address: {message}")]
    Address {
        /// The whole list as given.
        list: String,
        /// The refused item.
        addr: String,
        /// What the URI parser said.
        message: String,
    },
}

/// The replica addresses of a comma-separated list (`host:port` or full `http://` URIs;
/// blanks around items are trimmed), in order, at least one.
///
/// Errors: [`ReplicaListError::Empty`] for an empty item (an empty list is one empty item),
/// [`ReplicaListError::Address`] for an item that does not make a URI.
pub fn replicas(list: &str) -> Result<Vec<String>, ReplicaListError> {
    list.split(',')
        .enumerate()
        .map(|(index, item)| {
            let addr = item.trim();
            if addr.is_empty() {
                return Err(ReplicaListError::Empty {
                    list: list.to_owned(),
                    index,
                });
            }
            endpoint(addr).map_err(|e| ReplicaListError::Address {
                list: list.to_owned(),
                addr: addr.to_owned(),
                message: e.to_string(),
            })?;
            Ok(addr.to_owned())
        })
        .collect()
}

/// The endpoint of one address, `http://` added when it has no scheme, with the peers'
/// connect timeout (2 s) and `TCP_NODELAY`.
fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri).map(|e| {
        e.connect_timeout(std::time::Duration::from_secs(2))
            .tcp_nodelay(true)
    })
}

/// A lazily connecting channel to `addr`: one address (`host:port` or a full `http://` URI),
/// or a comma-separated list of replicas of one service ([`replicas`]). The connection is made
/// on first use and re-made after a failure, so services may start in any order.
///
/// A list gives one channel balanced over its replicas (tonic's `Channel::balance_list`:
/// power of two choices over the least loaded). A replica that is down still takes a share of
/// the calls until its reconnect fails, and those calls fail `UNAVAILABLE`; the callers' retries
/// go to the others. A list must be made inside a tokio runtime (the balancer runs as a task).
///
/// Errors: `InvalidArgument` naming `addr` when it (or an item of the list) is empty or not a
/// valid URI.
pub fn channel(addr: &str) -> Result<Channel, tonic::Status> {
    let invalid = |message: String| dispatch_proto::status::invalid_argument("addr", message);
    let list = replicas(addr).map_err(|e| invalid(e.to_string()))?;
    let mut endpoints = Vec::with_capacity(list.len());
    for item in &list {
        endpoints.push(endpoint(item).map_err(|e| invalid(format!("{item:?}: {e}")))?);
    }
    match <[Endpoint; 1]>::try_from(endpoints) {
        Ok([one]) => Ok(one.connect_lazy()),
        Err(many) => Ok(Channel::balance_list(many.into_iter())),
    }
}

/// Runs `work` under `call`'s deadline: [`PortError::DeadlineExceeded`] when it passes first.
async fn within<T>(call: &Call, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(call.deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(PortError::DeadlineExceeded {
            after: Some(call.deadline),
            message: String::new(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_list_splits_on_commas_and_trims_blanks() {
        assert_eq!(replicas("127.0.0.1:1"), Ok(vec!["127.0.0.1:1".to_owned()]));
        assert_eq!(
            replicas("127.0.0.1:1, http://[::1]:2 ,localhost:3"),
            Ok(vec![
                "127.0.0.1:1".to_owned(),
                "http://[::1]:2".to_owned(),
                "localhost:3".to_owned()
            ])
        );
    }

    #[test]
    fn an_empty_item_is_named_by_its_position() {
        for (list, index) in [("", 0), ("a:1,,b:2", 1), ("a:1,", 1), (" ,a:1", 0)] {
            assert_eq!(
                replicas(list),
                Err(ReplicaListError::Empty {
                    list: list.to_owned(),
                    index
                }),
                "{list:?}"
            );
        }
    }

    #[test]
    fn a_bad_address_is_named() {
        let e = replicas("127.0.0.1:1,not an address").unwrap_err();
        assert!(
            matches!(&e, ReplicaListError::Address { addr, .. } if addr == "not an address"),
            "{e:?}"
        );
        let status = channel("127.0.0.1:1,not an address").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("\"not an address\""),
            "{status:?}"
        );
        assert_eq!(
            channel("a:1,,b:2").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn a_list_makes_one_channel_without_connecting() {
        // Nothing listens on port 1; a lazy channel does not try until first used.
        assert!(channel("127.0.0.1:1,127.0.0.1:1").is_ok());
        assert!(channel("127.0.0.1:1").is_ok());
    }
}
