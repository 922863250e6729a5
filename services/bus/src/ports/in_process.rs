//! The in-process adapters: each port over the service's own `tonic` implementation, called
//! directly with the same `tonic::Request` (message, `grpc-timeout`, `traceparent`) a gRPC call
//! would deliver, and the same conversions of its answer.

use std::sync::Arc;

use dispatch_core::{Incident, IncidentId, LatLng};
use dispatch_proto::v1;

use super::grpc::{
    case_reply, directory_reply, get_incident_request, incident_reply, notices, open_case_request,
    publish_reply, publish_request, record_reply, route_reply, route_request, submit_request,
    subscribe_request,
};
use super::{
    Call, Case, CasePort, Cursor, Directory, DistrictPort, NoticeStream, NotifyPort, Publication,
    RecordsPort, Result, Route, Subscription,
};
use super::{RouterPort, within};

/// A service called in-process through its own `tonic` implementation.
///
/// The adapter enforces the call's deadline itself (a gRPC server would, from `grpc-timeout`),
/// so a slow handler is cut off the same way in both modes.
#[derive(Debug)]
pub struct InProcess<T>(pub Arc<T>);

impl<T> Clone for InProcess<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[tonic::async_trait]
impl<T: v1::geo_router_server::GeoRouter> RouterPort for InProcess<T> {
    async fn route(&self, call: &Call, location: LatLng) -> Result<Route> {
        let request = call.request(route_request(location));
        let reply = within(call, async { Ok(self.0.route(request).await?) }).await?;
        route_reply(reply.into_inner())
    }

    async fn list_districts(&self, call: &Call) -> Result<Directory> {
        let request = call.request(v1::ListDistrictsRequest {});
        let reply = within(call, async { Ok(self.0.list_districts(request).await?) }).await?;
        directory_reply(reply.get_ref())
    }
}

#[tonic::async_trait]
impl<T: v1::district_service_server::DistrictService> DistrictPort for InProcess<T> {
    async fn submit(&self, call: &Call, incident: Incident) -> Result<Incident> {
        let request = call.request(submit_request(&incident));
        let reply = within(call, async { Ok(self.0.submit_incident(request).await?) }).await?;
        incident_reply(reply.get_ref())
    }
}

#[tonic::async_trait]
impl<T: v1::notification_server::Notification> NotifyPort for InProcess<T> {
    async fn publish(&self, call: &Call, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        let request = call.request(publish_request(&publications));
        let reply = within(call, async { Ok(self.0.publish(request).await?) }).await?;
        publish_reply(reply.get_ref(), publications.len())
    }

    async fn subscribe(&self, call: &Call, subscription: Subscription) -> Result<NoticeStream> {
        let request = call.stream_request(subscribe_request(&subscription));
        let stream = within(call, async { Ok(self.0.subscribe(request).await?) }).await?;
        Ok(notices(stream.into_inner()))
    }
}

#[tonic::async_trait]
impl<T: v1::case_squad_server::CaseSquad> CasePort for InProcess<T> {
    async fn open_case(&self, call: &Call, incident: Incident) -> Result<Case> {
        let request = call.request(open_case_request(&incident));
        let reply = within(call, async { Ok(self.0.open_case(request).await?) }).await?;
        case_reply(reply.into_inner())
    }
}

#[tonic::async_trait]
impl<T: v1::intake_server::Intake> RecordsPort for InProcess<T> {
    async fn incident(&self, call: &Call, id: &IncidentId) -> Result<Option<Incident>> {
        let request = call.request(get_incident_request(id));
        within(call, async {
            Ok(record_reply(self.0.get_incident(request).await))
        })
        .await?
    }
}
