//! The gRPC adapters: each port over the generated client of its service, on a channel.

use dispatch_core::{Incident, IncidentId, LatLng};
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use futures::StreamExt;
use tonic::transport::Channel;

use super::{
    Call, CasePort, DistrictPort, NoticeStream, NotifyPort, PortError, RecordsPort, Result,
    RouterPort,
};
use super::{Case, Cursor, Directory, Publication, Route, Subscription};
use crate::convert;

/// The geo-router over gRPC.
#[derive(Debug, Clone)]
pub(super) struct GrpcRouter(pub GeoRouterClient<Channel>);

/// The district service over gRPC.
#[derive(Debug, Clone)]
pub(super) struct GrpcDistrict(pub DistrictServiceClient<Channel>);

/// The notification service over gRPC.
#[derive(Debug, Clone)]
pub(super) struct GrpcNotify(pub NotificationClient<Channel>);

/// The case squad over gRPC.
#[derive(Debug, Clone)]
pub(super) struct GrpcCases(pub CaseSquadClient<Channel>);

/// Intake's records over gRPC.
#[derive(Debug, Clone)]
pub(super) struct GrpcRecords(pub IntakeClient<Channel>);

/// The request of `RecordsPort::incident`.
pub(super) fn get_incident_request(id: &IncidentId) -> v1::GetIncidentRequest {
    v1::GetIncidentRequest {
        incident_id: id.to_string(),
    }
}

/// Intake's answer to `GetIncident`: the record, `None` for `NOT_FOUND`; a malformed record is
/// [`PortError::Internal`].
pub(super) fn record_reply(
    reply: std::result::Result<tonic::Response<v1::Incident>, tonic::Status>,
) -> Result<Option<Incident>> {
    match reply {
        Ok(reply) => convert::incident_from_wire(reply.get_ref())
            .map(Some)
            .map_err(|e| PortError::bad_reply("intake", "incident", &e)),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// The request of `RouterPort::route`.
pub(super) fn route_request(location: LatLng) -> v1::RouteRequest {
    v1::RouteRequest {
        location: Some(convert::latlng_to_wire(location)),
    }
}

/// The geo-router's reply as a [`Route`]; a malformed one is [`PortError::Internal`].
pub(super) fn route_reply(reply: v1::RouteResponse) -> Result<Route> {
    convert::route_from_wire(reply).map_err(|e| PortError::bad_reply("geo-router", "route", &e))
}

/// The request of `DistrictPort::submit`.
pub(super) fn submit_request(incident: &Incident) -> v1::SubmitIncidentRequest {
    v1::SubmitIncidentRequest {
        incident: Some(convert::incident_to_wire(incident)),
    }
}

/// The district's reply as an [`Incident`]; a malformed one is [`PortError::Internal`].
pub(super) fn incident_reply(reply: &v1::Incident) -> Result<Incident> {
    convert::incident_from_wire(reply).map_err(|e| PortError::bad_reply("district", "incident", &e))
}

/// The request of `CasePort::open_case`.
pub(super) fn open_case_request(incident: &Incident) -> v1::OpenCaseRequest {
    v1::OpenCaseRequest {
        incident: Some(convert::incident_to_wire(incident)),
    }
}

/// The case squad's reply as a [`Case`]; a malformed one is [`PortError::Internal`].
pub(super) fn case_reply(reply: v1::Case) -> Result<Case> {
    convert::case_from_wire(reply).map_err(|e| PortError::bad_reply("case squad", "case", &e))
}

/// The geo-router's directory as a [`Directory`]; a malformed one is [`PortError::Internal`].
pub(super) fn directory_reply(reply: &v1::ListDistrictsResponse) -> Result<Directory> {
    convert::directory_from_wire(reply)
        .map_err(|e| PortError::bad_reply("geo-router", "directory", &e))
}

/// The request of `NotifyPort::publish`.
pub(super) fn publish_request(publications: &[Publication]) -> v1::PublishRequest {
    v1::PublishRequest {
        publications: publications
            .iter()
            .map(convert::publication_to_wire)
            .collect(),
    }
}

/// The cursors of the notification service's reply to `sent` publications; a malformed reply
/// is [`PortError::Internal`].
pub(super) fn publish_reply(reply: &v1::PublishResponse, sent: usize) -> Result<Vec<Cursor>> {
    convert::publish_reply_from_wire(reply, sent)
        .map_err(|e| PortError::bad_reply("notification", "publish reply", &e))
}

/// The request of `NotifyPort::subscribe`.
pub(super) fn subscribe_request(subscription: &Subscription) -> v1::SubscribeRequest {
    convert::subscription_to_wire(subscription)
}

/// The domain stream of a `Subscribe` stream: each notice converted (a malformed one is an
/// [`PortError::Internal`] item, and the stream goes on), each status a [`PortError`].
pub(super) fn notices(
    stream: impl futures::Stream<Item = Result<v1::Notice, tonic::Status>> + Send + 'static,
) -> NoticeStream {
    stream
        .map(|item| {
            convert::notice_from_wire(&item?)
                .map_err(|e| PortError::bad_reply("notification", "notice", &e))
        })
        .boxed()
}

#[tonic::async_trait]
impl RouterPort for GrpcRouter {
    async fn route(&self, call: &Call, location: LatLng) -> Result<Route> {
        let reply = self
            .0
            .clone()
            .route(call.request(route_request(location)))
            .await?;
        route_reply(reply.into_inner())
    }

    async fn list_districts(&self, call: &Call) -> Result<Directory> {
        let request = call.request(v1::ListDistrictsRequest {});
        directory_reply(self.0.clone().list_districts(request).await?.get_ref())
    }
}

#[tonic::async_trait]
impl DistrictPort for GrpcDistrict {
    async fn submit(&self, call: &Call, incident: Incident) -> Result<Incident> {
        let request = call.request(submit_request(&incident));
        let reply = self.0.clone().submit_incident(request).await?;
        incident_reply(reply.get_ref())
    }
}

#[tonic::async_trait]
impl NotifyPort for GrpcNotify {
    async fn publish(&self, call: &Call, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        let request = call.request(publish_request(&publications));
        let reply = self.0.clone().publish(request).await?;
        publish_reply(reply.get_ref(), publications.len())
    }

    async fn subscribe(&self, call: &Call, subscription: Subscription) -> Result<NoticeStream> {
        let request = call.stream_request(subscribe_request(&subscription));
        let stream = self.0.clone().subscribe(request).await?;
        Ok(notices(stream.into_inner()))
    }
}

#[tonic::async_trait]
impl CasePort for GrpcCases {
    async fn open_case(&self, call: &Call, incident: Incident) -> Result<Case> {
        let request = call.request(open_case_request(&incident));
        case_reply(self.0.clone().open_case(request).await?.into_inner())
    }
}

#[tonic::async_trait]
impl RecordsPort for GrpcRecords {
    async fn incident(&self, call: &Call, id: &IncidentId) -> Result<Option<Incident>> {
        let request = call.request(get_incident_request(id));
        record_reply(self.0.clone().get_incident(request).await)
    }
}
