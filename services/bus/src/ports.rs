//! One trait per dependency between services, with two adapters each:
//! - gRPC: the generated `*Client<Channel>` implements the port (separate processes);
//! - in-process: [`InProcess`] wraps the service's own `tonic` implementation and calls it
//!   directly, without a socket (the embedded single-process mode and tests).
//!
//! Ports carry `dispatch.v1` messages and answer `tonic::Status`, so a caller handles errors
//! the same way whichever adapter it has.

use std::pin::Pin;
use std::sync::Arc;

use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use futures::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// A stream of notices for one audience.
pub type NoticeStream = Pin<Box<dyn Stream<Item = Result<v1::Notice, Status>> + Send>>;

/// Intake -> geo-router: where is this point.
#[tonic::async_trait]
pub trait RouterPort: Send + Sync + 'static {
    /// See `GeoRouter.Route`.
    async fn route(&self, req: v1::RouteRequest) -> Result<v1::RouteResponse, Status>;
    /// See `GeoRouter.ListDistricts`.
    async fn list_districts(&self) -> Result<v1::ListDistrictsResponse, Status>;
}

/// Intake -> district: take this routed incident.
#[tonic::async_trait]
pub trait DistrictPort: Send + Sync + 'static {
    /// See `DistrictService.SubmitIncident`.
    async fn submit_incident(&self, req: v1::SubmitIncidentRequest)
    -> Result<v1::Incident, Status>;
}

/// District -> notification (publish) and intake/screens <- notification (subscribe).
#[tonic::async_trait]
pub trait NotifyPort: Send + Sync + 'static {
    /// See `Notification.Publish`.
    async fn publish(&self, req: v1::PublishRequest) -> Result<v1::PublishResponse, Status>;
    /// See `Notification.Subscribe`.
    async fn subscribe(&self, req: v1::SubscribeRequest) -> Result<NoticeStream, Status>;
}

/// District -> case squad: open a case for this cleared incident.
#[tonic::async_trait]
pub trait CasePort: Send + Sync + 'static {
    /// See `CaseSquad.OpenCase`.
    async fn open_case(&self, req: v1::OpenCaseRequest) -> Result<v1::Case, Status>;
}

/// A lazily connecting channel to `addr` (`host:port` or a full `http://` URI). The connection
/// is made on first use and re-made after a failure, so services may start in any order.
///
/// Errors: `InvalidArgument` naming `addr` when it is not a valid URI.
pub fn channel(addr: &str) -> Result<Channel, Status> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri)
        .map(|e| {
            e.connect_timeout(std::time::Duration::from_secs(2))
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .map_err(|e| dispatch_proto::status::invalid_argument("addr", format!("{addr:?}: {e}")))
}

#[tonic::async_trait]
impl RouterPort for GeoRouterClient<Channel> {
    async fn route(&self, req: v1::RouteRequest) -> Result<v1::RouteResponse, Status> {
        Ok(GeoRouterClient::route(&mut self.clone(), req)
            .await?
            .into_inner())
    }
    async fn list_districts(&self) -> Result<v1::ListDistrictsResponse, Status> {
        Ok(
            GeoRouterClient::list_districts(&mut self.clone(), v1::ListDistrictsRequest {})
                .await?
                .into_inner(),
        )
    }
}

#[tonic::async_trait]
impl DistrictPort for DistrictServiceClient<Channel> {
    async fn submit_incident(
        &self,
        req: v1::SubmitIncidentRequest,
    ) -> Result<v1::Incident, Status> {
        Ok(
            DistrictServiceClient::submit_incident(&mut self.clone(), req)
                .await?
                .into_inner(),
        )
    }
}

#[tonic::async_trait]
impl NotifyPort for NotificationClient<Channel> {
    async fn publish(&self, req: v1::PublishRequest) -> Result<v1::PublishResponse, Status> {
        Ok(NotificationClient::publish(&mut self.clone(), req)
            .await?
            .into_inner())
    }
    async fn subscribe(&self, req: v1::SubscribeRequest) -> Result<NoticeStream, Status> {
        Ok(NotificationClient::subscribe(&mut self.clone(), req)
            .await?
            .into_inner()
            .boxed())
    }
}

#[tonic::async_trait]
impl CasePort for CaseSquadClient<Channel> {
    async fn open_case(&self, req: v1::OpenCaseRequest) -> Result<v1::Case, Status> {
        Ok(CaseSquadClient::open_case(&mut self.clone(), req)
            .await?
            .into_inner())
    }
}

/// A service called in-process through its own `tonic` implementation.
#[derive(Debug)]
pub struct InProcess<T>(pub Arc<T>);

impl<T> Clone for InProcess<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[tonic::async_trait]
impl<T: v1::geo_router_server::GeoRouter> RouterPort for InProcess<T> {
    async fn route(&self, req: v1::RouteRequest) -> Result<v1::RouteResponse, Status> {
        Ok(self.0.route(Request::new(req)).await?.into_inner())
    }
    async fn list_districts(&self) -> Result<v1::ListDistrictsResponse, Status> {
        Ok(self
            .0
            .list_districts(Request::new(v1::ListDistrictsRequest {}))
            .await?
            .into_inner())
    }
}

#[tonic::async_trait]
impl<T: v1::district_service_server::DistrictService> DistrictPort for InProcess<T> {
    async fn submit_incident(
        &self,
        req: v1::SubmitIncidentRequest,
    ) -> Result<v1::Incident, Status> {
        Ok(self
            .0
            .submit_incident(Request::new(req))
            .await?
            .into_inner())
    }
}

#[tonic::async_trait]
impl<T: v1::notification_server::Notification> NotifyPort for InProcess<T> {
    async fn publish(&self, req: v1::PublishRequest) -> Result<v1::PublishResponse, Status> {
        Ok(self.0.publish(Request::new(req)).await?.into_inner())
    }
    async fn subscribe(&self, req: v1::SubscribeRequest) -> Result<NoticeStream, Status> {
        Ok(self
            .0
            .subscribe(Request::new(req))
            .await?
            .into_inner()
            .boxed())
    }
}

#[tonic::async_trait]
impl<T: v1::case_squad_server::CaseSquad> CasePort for InProcess<T> {
    async fn open_case(&self, req: v1::OpenCaseRequest) -> Result<v1::Case, Status> {
        Ok(self.0.open_case(Request::new(req)).await?.into_inner())
    }
}
