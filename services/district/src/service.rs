//! The gRPC face of the district node: validates requests, forwards them to the actors through
//! [`DistrictNode`], and maps every error to a precise [`Status`] in one place ([`to_status`]).

use std::future::Future;

use dispatch_bus::convert::{
    FieldError, disposition_from_wire, incident_from_wire, incident_to_wire, latlng_from_wire,
    officer_status_from_wire, officer_to_wire, required_timestamp_from_wire,
};
use dispatch_bus::trace;
use dispatch_core::district::Error as DomainError;
use dispatch_core::{Fix, IncidentState, OfficerStatus};
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_server::{DistrictService, DistrictServiceServer};
use futures::StreamExt;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::actor::{ReportOutcome, Step};
use crate::{DistrictNode, Error};

/// Implements `dispatch.v1.DistrictService` over a [`DistrictNode`].
#[derive(Debug, Clone)]
pub struct DistrictGrpc {
    node: DistrictNode,
}

impl DistrictGrpc {
    /// The service for `node`.
    pub fn new(node: DistrictNode) -> Self {
        Self { node }
    }
}

/// Response metadata key of an `UNAVAILABLE` for a district this node does not own: the node id
/// of its owner, when this node knows it (also named in the message), so a caller can retry
/// there.
pub const OWNER_METADATA: &str = "dispatch-district-owner";

/// Maps a district error to the status a client gets.
pub fn to_status(e: Error) -> Status {
    use dispatch_proto::status::invalid_argument;
    match &e {
        Error::UnknownDistrict(_) | Error::UnknownOfficer(_) => Status::not_found(e.to_string()),
        Error::Mailbox(_) | Error::Journal(_) => Status::unavailable(e.to_string()),
        Error::NotOwner { owner, .. } => {
            let mut status = Status::unavailable(e.to_string());
            if let Some(node) = owner
                && let Ok(value) = node.parse()
            {
                status.metadata_mut().insert(OWNER_METADATA, value);
            }
            status
        }
        Error::BadReply(_) | Error::Panicked { .. } => Status::internal(e.to_string()),
        Error::Quarantined { .. } => Status::failed_precondition(e.to_string()),
        Error::Domain(d) => match d {
            DomainError::UnknownOfficer(_)
            | DomainError::UnknownDispatch(_)
            | DomainError::UnknownIncident(_) => Status::not_found(d.to_string()),
            DomainError::WrongDistrict { .. } => {
                invalid_argument("incident.district_id", d.to_string())
            }
            DomainError::IdTaken { .. } => Status::already_exists(d.to_string()),
            DomainError::StatusNotSettable(_) => invalid_argument("status", d.to_string()),
            DomainError::BadFix(f) => invalid_argument(f.field(), d.to_string()),
            DomainError::ClearedOtherwise { .. } => dispatch_proto::status::with_field(
                tonic::Code::FailedPrecondition,
                "disposition",
                d.to_string(),
            ),
            DomainError::NotYourDispatch { .. }
            | DomainError::OfficerEngaged { .. }
            | DomainError::Transition(_)
            | DomainError::Status(_) => Status::failed_precondition(d.to_string()),
        },
    }
}

/// The handler span of `method` and the trace context the request continues (a child of the
/// caller's `traceparent`, when it sent one).
fn traced<T>(
    method: &'static str,
    request: &Request<T>,
) -> (tracing::Span, Option<trace::TraceContext>) {
    let span = trace::handler_span(method, request);
    (span, trace::from_request(request).map(|c| c.child()))
}

/// The fix of one `ReportLocation` report, checked for what the wire can tell: the district
/// checks the rest ([`dispatch_core::PositionRules`]).
///
/// Errors name the field of the report: `officer_id` (empty); `location`, `location.lat`,
/// `location.lon` (missing, out of range, not finite); `fixed_at.seconds`, `fixed_at.nanos`
/// (outside the protobuf timestamp's range).
pub(crate) fn fix_from_wire(report: &v1::LocationReport) -> Result<Fix, FieldError> {
    if report.officer_id.is_empty() {
        return Err(FieldError::new("officer_id", "is required"));
    }
    let location = latlng_from_wire(report.location.as_ref(), "location")?;
    let fixed_at = report
        .fixed_at
        .as_ref()
        .map(|t| required_timestamp_from_wire(Some(t), "fixed_at"))
        .transpose()?;
    Ok(Fix {
        location,
        fixed_at,
        accuracy_m: report.accuracy_m,
    })
}

/// Most refused reports a `ReportLocation` answer lists; `refused_count` counts them all, so a
/// terminal streaming garbage cannot grow the answer without bound.
pub const MAX_REFUSED_LISTED: usize = 100;

/// The answer of a `ReportLocation` stream as it runs.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    answer: v1::ReportLocationResponse,
}

impl Tally {
    /// A report was stored or ignored as stale.
    fn count(&mut self, outcome: ReportOutcome) {
        match outcome {
            ReportOutcome::Stored => self.answer.accepted += 1,
            ReportOutcome::Stale => self.answer.stale += 1,
        }
    }

    /// Report `index` broke the rule `reason` on `field`.
    fn refuse(&mut self, index: u64, field: &str, reason: String) {
        tracing::debug!(index, field, %reason, "position report refused");
        self.answer.refused_count += 1;
        if self.answer.refused.len() < MAX_REFUSED_LISTED {
            self.answer.refused.push(v1::RefusedReport {
                index,
                field: field.to_owned(),
                reason,
            });
        }
    }

    /// Adds the owner's `answer` to report `index`, forwarded to it as a stream of one.
    pub(crate) fn forwarded(&mut self, index: u64, answer: v1::ReportLocationResponse) {
        self.answer.accepted += answer.accepted;
        self.answer.stale += answer.stale;
        for refused in answer.refused {
            self.refuse(index, &refused.field, refused.reason);
        }
    }

    /// The answer.
    pub(crate) fn finish(self) -> v1::ReportLocationResponse {
        self.answer
    }
}

/// Hands report `index` of a stream to `node` and counts what became of it in `tally`: stored,
/// stale, or refused (a field the wire or the district's rules refuse).
///
/// Errors: the node's other errors (not the owner, unknown officer, unavailable), for the
/// caller to forward or end the stream with.
pub(crate) async fn take_report(
    node: &DistrictNode,
    report: &v1::LocationReport,
    index: u64,
    tally: &mut Tally,
) -> Result<(), Error> {
    let fix = match fix_from_wire(report) {
        Ok(fix) => fix,
        Err(e) => {
            tally.refuse(index, &e.field, e.rule);
            return Ok(());
        }
    };
    match node.report_location(&report.officer_id, fix).await {
        Ok(outcome) => tally.count(outcome),
        Err(Error::Domain(DomainError::BadFix(f))) => {
            tally.refuse(index, f.field(), f.to_string());
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn required(value: &str, field: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(FieldError::new(field, "is required").into());
    }
    Ok(())
}

#[tonic::async_trait]
impl DistrictService for DistrictGrpc {
    /// Takes the incident in the caller's trace (`traceparent`), recorded as `trace_id` on
    /// the handler's span; the order and updates it causes are published in that trace.
    async fn submit_incident(
        &self,
        request: Request<v1::SubmitIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let span = trace::handler_span("DistrictService.SubmitIncident", &request);
        let context = trace::from_request(&request).map(|c| c.child());
        trace::scope_opt(context, self.submit(request).instrument(span)).await
    }

    async fn update_officer_status(
        &self,
        request: Request<v1::UpdateOfficerStatusRequest>,
    ) -> Result<Response<v1::Officer>, Status> {
        let req = request.into_inner();
        required(&req.officer_id, "officer_id")?;
        let status = officer_status_from_wire(req.status, "status")?;
        if !matches!(
            status,
            OfficerStatus::Available | OfficerStatus::Busy | OfficerStatus::OffDuty
        ) {
            return Err(FieldError::new(
                "status",
                format!(
                    "must be AVAILABLE, BUSY or OFF_DUTY (dispatch states follow the dispatch flow), got {status:?}"
                ),
            )
            .into());
        }
        let location = req
            .location
            .as_ref()
            .map(|p| latlng_from_wire(Some(p), "location"))
            .transpose()?;
        let officer = self
            .node
            .set_status(&req.officer_id, status, location)
            .await
            .map_err(to_status)?;
        Ok(Response::new(officer_to_wire(&officer)))
    }

    async fn report_location(
        &self,
        request: Request<Streaming<v1::LocationReport>>,
    ) -> Result<Response<v1::ReportLocationResponse>, Status> {
        let mut stream = request.into_inner();
        let mut tally = Tally::default();
        let mut index = 0u64;
        while let Some(report) = stream.next().await {
            take_report(&self.node, &report?, index, &mut tally)
                .await
                .map_err(to_status)?;
            index += 1;
        }
        Ok(Response::new(tally.finish()))
    }

    async fn acknowledge_dispatch(
        &self,
        request: Request<v1::AcknowledgeDispatchRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let (span, context) = traced("DistrictService.AcknowledgeDispatch", &request);
        let req = request.into_inner();
        let step = self.step(&req.officer_id, &req.dispatch_id, Step::Acknowledge);
        trace::scope_opt(context, step.instrument(span)).await
    }

    async fn arrive_on_scene(
        &self,
        request: Request<v1::ArriveOnSceneRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let (span, context) = traced("DistrictService.ArriveOnScene", &request);
        let req = request.into_inner();
        let step = self.step(&req.officer_id, &req.dispatch_id, Step::Arrive);
        trace::scope_opt(context, step.instrument(span)).await
    }

    async fn clear_incident(
        &self,
        request: Request<v1::ClearIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let (span, context) = traced("DistrictService.ClearIncident", &request);
        let req = request.into_inner();
        let disposition = disposition_from_wire(req.disposition, "disposition")?
            .ok_or_else(|| FieldError::new("disposition", "is required"))?;
        let step = self.step(&req.officer_id, &req.dispatch_id, Step::Clear(disposition));
        trace::scope_opt(context, step.instrument(span)).await
    }

    async fn get_district(
        &self,
        request: Request<v1::GetDistrictRequest>,
    ) -> Result<Response<v1::DistrictSnapshot>, Status> {
        let req = request.into_inner();
        required(&req.district_id, "district_id")?;
        let snapshot = self
            .node
            .snapshot(&req.district_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::DistrictSnapshot {
            district_id: req.district_id,
            officers: snapshot.officers.iter().map(officer_to_wire).collect(),
            queue: snapshot.queue.iter().map(incident_to_wire).collect(),
            active: snapshot.active.iter().map(incident_to_wire).collect(),
            clock_scale: snapshot.clock_scale,
            clock_epoch_ms: snapshot.clock_epoch_ms.unwrap_or(0),
        }))
    }
}

impl DistrictGrpc {
    async fn submit(
        &self,
        request: Request<v1::SubmitIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        let wire = request
            .into_inner()
            .incident
            .ok_or_else(|| FieldError::new("incident", "is required"))?;
        let incident = incident_from_wire(&wire).map_err(|e| e.within("incident"))?;
        required(incident.district_id.as_str(), "incident.district_id")?;
        if incident.state != IncidentState::Routed {
            return Err(FieldError::new(
                "incident.state",
                format!("must be INCIDENT_STATE_ROUTED, got {:?}", incident.state),
            )
            .into());
        }
        // The case id is the district's to give, at clearance; a routed incident has none.
        if incident.case_id.is_some() {
            return Err(FieldError::new(
                "incident.case_id",
                "must be empty: the district assigns it when it clears the incident as a case",
            )
            .into());
        }
        let incident = self.node.submit(incident).await.map_err(to_status)?;
        Ok(Response::new(incident_to_wire(&incident)))
    }

    async fn step(
        &self,
        officer_id: &str,
        dispatch_id: &str,
        step: Step,
    ) -> Result<Response<v1::Incident>, Status> {
        required(officer_id, "officer_id")?;
        required(dispatch_id, "dispatch_id")?;
        let incident = self
            .node
            .step(officer_id, dispatch_id, step)
            .await
            .map_err(to_status)?;
        Ok(Response::new(incident_to_wire(&incident)))
    }

    /// The routes of this service, for [`dispatch_runtime::serve`].
    pub fn routes(self) -> Routes {
        Routes::new(DistrictServiceServer::new(self))
    }
}

/// Serves the district service on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    node: DistrictNode,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    dispatch_runtime::serve(
        listener,
        DistrictGrpc::new(node).routes(),
        &[dispatch_proto::service_names::DISTRICT],
        shutdown,
    )
    .await
}
