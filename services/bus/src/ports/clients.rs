//! One client per port: what callers hold. Cheap to clone (an `Arc` and the call options).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatch_core::{Incident, IncidentId, LatLng};
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use tonic::transport::Channel;

use super::grpc::{GrpcCases, GrpcDistrict, GrpcNotify, GrpcRecords, GrpcRouter};
use super::{
    Call, CallOptions, Case, CasePort, Cursor, Directory, DistrictPort, InProcess, NodeId,
    NoticeStream, NotifyPort, Placement, PortError, Publication, RecordsPort, Result, Route,
    RouterPort, SingleNode, Subscription, within,
};

/// Intake's client of the geo-router.
#[derive(Clone)]
pub struct RouterClient {
    port: Arc<dyn RouterPort>,
    options: CallOptions,
}

impl RouterClient {
    /// Default deadline: 5 s, intake's `router_deadline_ms` default (a route is an in-memory
    /// look-up of well under a millisecond; seconds mean the geo-router is down or moving).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

    /// Over gRPC on `channel`.
    pub fn grpc(channel: Channel, options: CallOptions) -> Self {
        Self::from_port(Arc::new(GrpcRouter(GeoRouterClient::new(channel))), options)
    }

    /// The geo-router `service` in this process.
    pub fn in_process<T: v1::geo_router_server::GeoRouter>(
        service: Arc<T>,
        options: CallOptions,
    ) -> Self {
        Self::from_port(Arc::new(InProcess(service)), options)
    }

    /// Over any implementation of the port (a fake, a Redis-backed one).
    pub fn from_port(port: Arc<dyn RouterPort>, options: CallOptions) -> Self {
        Self { port, options }
    }

    /// Where `location` lies. See [`RouterPort::route`]; [`PortError::DeadlineExceeded`]
    /// after the deadline.
    pub async fn route(&self, location: LatLng) -> Result<Route> {
        let call = Call::new(self.options);
        within(&call, self.port.route(&call, location)).await
    }

    /// The directory of sub-bureaus, stations and districts. See
    /// [`RouterPort::list_districts`].
    pub async fn list_districts(&self) -> Result<Directory> {
        let call = Call::new(self.options);
        within(&call, self.port.list_districts(&call)).await
    }
}

/// The district nodes a [`DistrictClient`] can reach, by the node id [`Placement`] answers:
/// one fixed port per node (a `HashMap`), or ports made on demand from a cluster's membership
/// (`dispatch-cluster`'s `NodeChannels`).
pub trait DistrictNodes: Send + Sync + 'static {
    /// The port of `node`; `None` when this side knows no address for it (the node left, or
    /// never registered).
    fn port(&self, node: &str) -> Option<Arc<dyn DistrictPort>>;
}

impl DistrictNodes for HashMap<NodeId, Arc<dyn DistrictPort>> {
    fn port(&self, node: &str) -> Option<Arc<dyn DistrictPort>> {
        self.get(node).cloned()
    }
}

/// Intake's client of the district nodes: finds the district's owner ([`Placement`]) and
/// submits to that node's port.
///
/// Across nodes ([`DistrictClient::with_placement`]), an owner that moves while the call is
/// under way is followed: an `UNAVAILABLE` answer (a node that no longer owns the district,
/// naming the owner; a takeover in progress; a node that went down) is retried, the owner
/// resolved again each time, with an exponential backoff ([`DistrictClient::RETRY_MIN`] to
/// [`DistrictClient::RETRY_MAX`]) until the call's deadline. A submit is idempotent on the
/// incident id, so a retry of a submit whose answer was lost lands once.
#[derive(Clone)]
pub struct DistrictClient {
    placement: Arc<dyn Placement>,
    nodes: Arc<dyn DistrictNodes>,
    options: CallOptions,
    /// Whether `UNAVAILABLE` is retried within the deadline (across nodes only; one node keeps
    /// its one-try behaviour and intake's sweeper hands the call over again).
    follow_owner: bool,
}

impl DistrictClient {
    /// Default deadline: 5 s, intake's `district_deadline_ms` default (a district actor
    /// answers in well under a millisecond; seconds mean it is down or moving).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
    /// First pause before a retry across nodes: 25 ms (a handoff's release announcement
    /// reaches the placement within a millisecond or two here; the new owner rebuilds the
    /// district in a few).
    pub const RETRY_MIN: Duration = Duration::from_millis(25);
    /// Longest pause between retries across nodes: 500 ms, half the cluster's reconcile
    /// period (1 s), so a crashed owner's district is tried again soon after a survivor takes
    /// it (within 5 s, see `dispatch_cluster::ClusterConfig`).
    pub const RETRY_MAX: Duration = Duration::from_millis(500);

    /// The one node of `placement` over gRPC on `channel`.
    pub fn grpc(channel: Channel, placement: SingleNode, options: CallOptions) -> Self {
        Self::from_port(Self::grpc_port(channel), placement, options)
    }

    /// The district port of a node over gRPC on `channel` (for a [`DistrictNodes`]).
    pub fn grpc_port(channel: Channel) -> Arc<dyn DistrictPort> {
        Arc::new(GrpcDistrict(DistrictServiceClient::new(channel)))
    }

    /// The one node of `placement` in this process.
    pub fn in_process<T: v1::district_service_server::DistrictService>(
        service: Arc<T>,
        placement: SingleNode,
        options: CallOptions,
    ) -> Self {
        Self::from_port(Arc::new(InProcess(service)), placement, options)
    }

    /// The one node of `placement` over any implementation of the port. One try per call.
    pub fn from_port(
        port: Arc<dyn DistrictPort>,
        placement: SingleNode,
        options: CallOptions,
    ) -> Self {
        let nodes = HashMap::from([(placement.node().to_owned(), port)]);
        Self {
            placement: Arc::new(placement),
            nodes: Arc::new(nodes),
            options,
            follow_owner: false,
        }
    }

    /// Districts spread over `nodes` as `placement` says; follows an owner that moves (see the
    /// type's docs).
    pub fn with_placement(
        placement: Arc<dyn Placement>,
        nodes: Arc<dyn DistrictNodes>,
        options: CallOptions,
    ) -> Self {
        Self {
            placement,
            nodes,
            options,
            follow_owner: true,
        }
    }

    /// Hands `incident` to the node owning its district. See [`DistrictPort::submit`].
    ///
    /// Errors: [`Placement::owner`]'s (a district the cluster does not have is
    /// [`PortError::Refused`] naming `district_id`, never retried); [`PortError::Unavailable`]
    /// when the owner is a node this client has no port to; the port's;
    /// [`PortError::DeadlineExceeded`] after the deadline (across nodes: when the owner did not
    /// answer before it, retries included).
    pub async fn submit(&self, incident: Incident) -> Result<Incident> {
        let call = Call::new(self.options);
        if !self.follow_owner {
            return within(&call, self.submit_once(&call, incident)).await;
        }
        let started = tokio::time::Instant::now();
        let attempt = || {
            // Each try is told the time left, so the owner does not work past the caller.
            let call = Call {
                deadline: call.deadline.saturating_sub(started.elapsed()),
                ..call
            };
            let incident = incident.clone();
            async move { self.submit_once(&call, incident).await }
        };
        let retried = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Self::RETRY_MIN)
                    .with_max_delay(Self::RETRY_MAX)
                    .with_jitter()
                    .without_max_times(),
            )
            .when(|e| matches!(e, PortError::Unavailable { .. }))
            .notify(|e, after| {
                tracing::debug!(district = %incident.district_id, error = %e, ?after,
                    "district owner unavailable; resolving it again");
            });
        within(&call, retried).await
    }

    /// One try: resolve the owner, submit to its port.
    async fn submit_once(&self, call: &Call, incident: Incident) -> Result<Incident> {
        let node = self.placement.owner(incident.district_id.as_str())?;
        let port = self
            .nodes
            .port(&node)
            .ok_or_else(|| PortError::Unavailable {
                message: format!(
                    "district {} is owned by node {node:?}, which this client cannot reach",
                    incident.district_id
                ),
            })?;
        port.submit(call, incident).await
    }
}

/// The district's and intake's client of the notification service.
#[derive(Clone)]
pub struct NotifyClient {
    port: Arc<dyn NotifyPort>,
    options: CallOptions,
}

impl NotifyClient {
    /// Default deadline: 5 s, the outbox's `call_deadline` default (over a thousand times the
    /// p99 of a unary call; only a hung or drowning peer reaches it).
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

    /// Over gRPC on `channel`.
    pub fn grpc(channel: Channel, options: CallOptions) -> Self {
        Self::from_port(
            Arc::new(GrpcNotify(NotificationClient::new(channel))),
            options,
        )
    }

    /// The notification `service` in this process.
    pub fn in_process<T: v1::notification_server::Notification>(
        service: Arc<T>,
        options: CallOptions,
    ) -> Self {
        Self::from_port(Arc::new(InProcess(service)), options)
    }

    /// Over any implementation of the port.
    pub fn from_port(port: Arc<dyn NotifyPort>, options: CallOptions) -> Self {
        Self { port, options }
    }

    /// Appends `publications` to their feeds and answers each one's cursor, in order. See
    /// [`NotifyPort::publish`]; [`PortError::DeadlineExceeded`] after the deadline.
    pub async fn publish(&self, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        let call = Call::new(self.options);
        within(&call, self.port.publish(&call, publications)).await
    }

    /// Opens a stream of one audience's notices. The deadline bounds the opening only: the
    /// stream then lasts until the server or the caller ends it. See
    /// [`NotifyPort::subscribe`].
    pub async fn subscribe(&self, subscription: Subscription) -> Result<NoticeStream> {
        let call = Call::new(self.options);
        within(&call, self.port.subscribe(&call, subscription)).await
    }
}

/// The district's client of the case squads.
#[derive(Clone)]
pub struct CaseClient {
    port: Arc<dyn CasePort>,
    options: CallOptions,
}

impl CaseClient {
    /// Default deadline: 5 s, the outbox's `call_deadline` default.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

    /// Over gRPC on `channel`.
    pub fn grpc(channel: Channel, options: CallOptions) -> Self {
        Self::from_port(Arc::new(GrpcCases(CaseSquadClient::new(channel))), options)
    }

    /// The case squad `service` in this process.
    pub fn in_process<T: v1::case_squad_server::CaseSquad>(
        service: Arc<T>,
        options: CallOptions,
    ) -> Self {
        Self::from_port(Arc::new(InProcess(service)), options)
    }

    /// Over any implementation of the port.
    pub fn from_port(port: Arc<dyn CasePort>, options: CallOptions) -> Self {
        Self { port, options }
    }

    /// Opens the case of a cleared `incident`. See [`CasePort::open_case`].
    pub async fn open_case(&self, incident: Incident) -> Result<Case> {
        let call = Call::new(self.options);
        within(&call, self.port.open_case(&call, incident)).await
    }
}

/// The case squad's client of intake's records.
#[derive(Clone)]
pub struct RecordsClient {
    port: Arc<dyn RecordsPort>,
    options: CallOptions,
}

impl RecordsClient {
    /// Default deadline: 2 s, well inside the 5 s the district's outbox gives `OpenCase`, so
    /// a slow intake fails the check (the outbox then retries) before the case squad's caller
    /// gives up.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

    /// Over gRPC on `channel`.
    pub fn grpc(channel: Channel, options: CallOptions) -> Self {
        Self::from_port(Arc::new(GrpcRecords(IntakeClient::new(channel))), options)
    }

    /// The intake `service` in this process.
    pub fn in_process<T: v1::intake_server::Intake>(service: Arc<T>, options: CallOptions) -> Self {
        Self::from_port(Arc::new(InProcess(service)), options)
    }

    /// Over any implementation of the port.
    pub fn from_port(port: Arc<dyn RecordsPort>, options: CallOptions) -> Self {
        Self { port, options }
    }

    /// Intake's record of incident `id`, `None` when it has none. See
    /// [`RecordsPort::incident`].
    pub async fn incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        let call = Call::new(self.options);
        within(&call, self.port.incident(&call, id)).await
    }
}

/// What every client has alike: its options, a copy with another deadline, `Debug`.
macro_rules! client_options {
    ($($client:ty),*) => {$(
        impl $client {
            /// The same client with `deadline` on every call.
            pub fn with_deadline(self, deadline: Duration) -> Self {
                Self {
                    options: CallOptions { deadline },
                    ..self
                }
            }

            /// The options every call takes.
            pub fn options(&self) -> CallOptions {
                self.options
            }
        }

        impl std::fmt::Debug for $client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($client))
                    .field("options", &self.options)
                    .finish_non_exhaustive()
            }
        }
    )*};
}

client_options!(
    RouterClient,
    DistrictClient,
    NotifyClient,
    CaseClient,
    RecordsClient
);
