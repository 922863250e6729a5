//! A clustered district node's gRPC face: a terminal's command for a district this node does
//! not own is forwarded to the owner, and the owner's answer returned.
//!
//! Officer terminals hold one connection to whichever district node their load balancer picked;
//! they do not know which node owns their district, and that changes when a node joins, leaves
//! or dies. So a node answers every terminal command (`UpdateOfficerStatus`, `ReportLocation`,
//! `AcknowledgeDispatch`, `ArriveOnScene`, `ClearIncident`, `GetDistrict`): it runs it when it
//! owns the district, and otherwise, when it knows the owner (the lease holder it last saw,
//! else the rendezvous choice), sends it on over gRPC to the address the owner registered and
//! answers what the owner answers.
//!
//! One hop at most: a forwarded request carries [`FORWARDED_METADATA`] (the forwarding node's
//! id) and is never forwarded again; a node that does not own the district either answers
//! `UNAVAILABLE` naming the owner it knows ([`OWNER_METADATA`]), as does a node that knows no
//! owner (a takeover in progress). Two nodes whose views disagree for a moment thus cannot
//! bounce a command between them; the terminal retries. `SubmitIncident` is not forwarded:
//! intake finds the owner itself ([`dispatch_bus::ports::DistrictClient`]) and retries.

use std::sync::Arc;

use dispatch_cluster::NodeChannels;
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::district_service_server::{DistrictService, DistrictServiceServer};
use futures::StreamExt;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Code, Extensions, Request, Response, Status, Streaming};

use crate::service::{OWNER_METADATA, Tally, take_report, to_status};
use crate::{DistrictGrpc, DistrictNode};

/// Request metadata key marking a command forwarded by another district node (its value: that
/// node's id); such a command is answered here or refused, never forwarded again.
pub const FORWARDED_METADATA: &str = "dispatch-forwarded-by";

/// The routes of the district service for `node`: with forwarding to owners when the node is
/// in a cluster ([`DistrictNode::join_cluster`]), the plain [`DistrictGrpc`] otherwise.
pub fn routes(node: DistrictNode) -> Routes {
    match Forwarding::new(node.clone()) {
        Some(forwarding) => Routes::new(DistrictServiceServer::new(forwarding)),
        None => DistrictGrpc::new(node).routes(),
    }
}

/// `dispatch.v1.DistrictService` over a clustered [`DistrictNode`], forwarding terminal
/// commands for districts it does not own (see the module docs).
#[derive(Debug, Clone)]
pub struct Forwarding {
    local: DistrictGrpc,
    node: DistrictNode,
    /// This node's id, as the value of [`FORWARDED_METADATA`].
    me: AsciiMetadataValue,
    peers: Arc<NodeChannels>,
}

impl Forwarding {
    /// The service for `node`; `None` for a node that runs every district (nothing to
    /// forward to) or whose id is not a valid metadata value.
    pub fn new(node: DistrictNode) -> Option<Self> {
        let me = node.node_id()?.parse().ok()?;
        let peers = Arc::new(NodeChannels::new(node.members()?));
        Some(Self {
            local: DistrictGrpc::new(node.clone()),
            node,
            me,
            peers,
        })
    }

    /// The owner's client when `status` is this node's "not the owner" answer naming an owner
    /// this node can reach, and the request was not forwarded already.
    fn owner(&self, forwarded: bool, status: &Status) -> Option<DistrictServiceClient<Channel>> {
        if forwarded || status.code() != Code::Unavailable {
            return None;
        }
        let owner = status.metadata().get(OWNER_METADATA)?.to_str().ok()?;
        let channel = self.peers.channel(owner)?;
        tracing::debug!(%owner, "forwarding a terminal command to the district's owner");
        Some(DistrictServiceClient::new(channel))
    }

    /// `message` with the caller's `metadata` (trace context, deadline), marked as forwarded
    /// by this node.
    fn onward<M>(&self, metadata: &MetadataMap, message: M) -> Request<M> {
        let mut request = Request::from_parts(metadata.clone(), Extensions::default(), message);
        request
            .metadata_mut()
            .insert(FORWARDED_METADATA, self.me.clone());
        request
    }
}

fn forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_METADATA)
}

/// Runs a unary terminal command here; on "not the owner", forwards it once (see the module
/// docs).
macro_rules! forward_unary {
    ($self:ident, $request:ident, $method:ident) => {{
        let forwarded = forwarded(&$request);
        let metadata = $request.metadata().clone();
        let message = $request.get_ref().clone();
        let status = match $self.local.$method($request).await {
            Ok(response) => return Ok(response),
            Err(status) => status,
        };
        match $self.owner(forwarded, &status) {
            Some(mut owner) => owner.$method($self.onward(&metadata, message)).await,
            None => Err(status),
        }
    }};
}

#[tonic::async_trait]
impl DistrictService for Forwarding {
    /// Not forwarded: intake resolves the owner itself.
    async fn submit_incident(
        &self,
        request: Request<v1::SubmitIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        self.local.submit_incident(request).await
    }

    async fn update_officer_status(
        &self,
        request: Request<v1::UpdateOfficerStatusRequest>,
    ) -> Result<Response<v1::Officer>, Status> {
        forward_unary!(self, request, update_officer_status)
    }

    /// Each report for an officer of a district owned elsewhere is forwarded on its own (a
    /// stream of one); the owner's answer for it (stored, stale or refused) is counted under
    /// the report's index in this stream.
    async fn report_location(
        &self,
        request: Request<Streaming<v1::LocationReport>>,
    ) -> Result<Response<v1::ReportLocationResponse>, Status> {
        let forwarded = forwarded(&request);
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let mut tally = Tally::default();
        let mut index = 0u64;
        while let Some(report) = stream.next().await {
            let report = report?;
            if let Err(e) = take_report(&self.node, &report, index, &mut tally).await {
                let status = to_status(e);
                let Some(mut owner) = self.owner(forwarded, &status) else {
                    return Err(status);
                };
                let one = futures::stream::iter([report]);
                let answer = owner.report_location(self.onward(&metadata, one)).await?;
                tally.forwarded(index, answer.into_inner());
            }
            index += 1;
        }
        Ok(Response::new(tally.finish()))
    }

    async fn acknowledge_dispatch(
        &self,
        request: Request<v1::AcknowledgeDispatchRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        forward_unary!(self, request, acknowledge_dispatch)
    }

    async fn arrive_on_scene(
        &self,
        request: Request<v1::ArriveOnSceneRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        forward_unary!(self, request, arrive_on_scene)
    }

    async fn clear_incident(
        &self,
        request: Request<v1::ClearIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        forward_unary!(self, request, clear_incident)
    }

    async fn get_district(
        &self,
        request: Request<v1::GetDistrictRequest>,
    ) -> Result<Response<v1::DistrictSnapshot>, Status> {
        forward_unary!(self, request, get_district)
    }
}
