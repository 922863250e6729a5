//! The async shell of intake: ports to the geo-router and the district, the gRPC handlers and
//! [`run`].

use std::future::Future;
use std::sync::Arc;

use dispatch_bus::convert::{FieldError, incident_from_wire, incident_to_wire, latlng_to_wire};
use dispatch_bus::ports::{DistrictPort, NotifyPort, RouterPort};
use dispatch_core::Incident;
use dispatch_core::clock::SharedClock;
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::intake_server::{Intake, IntakeServer};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::IntakeConfig;
use crate::error::{Error, Result};
use crate::store::{Claim, IncidentStore, Placement};
use crate::validate;

/// The intake service. Share it behind an `Arc`: the gRPC server, the update follower and the
/// embedded server's in-process callers all use the same records.
pub struct IntakeService {
    router: Arc<dyn RouterPort>,
    district: Arc<dyn DistrictPort>,
    clock: SharedClock,
    store: Mutex<IncidentStore>,
}

impl std::fmt::Debug for IntakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeService")
            .field("incidents", &self.store.lock().len())
            .finish_non_exhaustive()
    }
}

impl IntakeService {
    /// Intake routing through `router`, handing incidents to `district`, stamping times from
    /// `clock`.
    pub fn new(
        router: Arc<dyn RouterPort>,
        district: Arc<dyn DistrictPort>,
        clock: SharedClock,
        config: IntakeConfig,
    ) -> Self {
        Self {
            router,
            district,
            clock,
            store: Mutex::new(IncidentStore::new(config.incident_id_prefix)),
        }
    }

    /// Takes one 110 call: validate, deduplicate on `call_id`, route, create the incident
    /// (`ROUTED`), submit it to its district, answer it as the district returned it.
    ///
    /// Errors: [`Error::Field`] for a broken rule (see [`validate::report`]);
    /// [`Error::CallReused`] when `call_id` is known with other content; [`Error::Upstream`]
    /// with the router's or district's status (a point too far off the map is the router's
    /// `InvalidArgument` on `location`; an unreachable district is `Unavailable`, and the
    /// record then stays `ROUTED` until the same call is reported again).
    pub async fn report(
        &self,
        req: &v1::ReportIncidentRequest,
    ) -> Result<v1::ReportIncidentResponse> {
        let call = validate::report(req)?;
        let received_at = self.clock.now();
        let existing = self.store.lock().claim_existing(&call)?;
        let claim = match existing {
            Some(claim) => claim,
            None => {
                let route = self
                    .router
                    .route(v1::RouteRequest {
                        location: Some(latlng_to_wire(call.location)),
                    })
                    .await?;
                let placement = placement(route)?;
                let routed_at = self.clock.now();
                self.store
                    .lock()
                    .insert_or_claim(&call, placement, received_at, routed_at)?
            }
        };
        let (incident, duplicate) = match claim {
            Claim::Created(incident) => (self.submit(incident).await?, false),
            Claim::Known {
                incident,
                resubmit: true,
            } => (self.submit(incident).await?, true),
            Claim::Known {
                incident,
                resubmit: false,
            } => (incident, true),
        };
        Ok(v1::ReportIncidentResponse {
            incident: Some(incident_to_wire(&incident)),
            duplicate,
        })
    }

    /// Hands `incident` to its district and records the answer; on failure the record stays as
    /// it was and may be submitted again.
    async fn submit(&self, incident: Incident) -> Result<Incident> {
        let id = incident.id.clone();
        let answer = self
            .district
            .submit_incident(v1::SubmitIncidentRequest {
                incident: Some(incident_to_wire(&incident)),
            })
            .await;
        let reply = match answer {
            Ok(wire) => incident_from_wire(&wire).map_err(|e| Error::BadReply {
                peer: "district",
                detail: e.to_string(),
            }),
            Err(status) => Err(Error::Upstream(status)),
        };
        match reply {
            Ok(reply) => {
                let stored = self.store.lock().submit_done(&id, Some(reply));
                Ok(stored.unwrap_or(incident))
            }
            Err(e) => {
                tracing::warn!(incident_id = %id, error = %e, "submit to district failed, incident stays routed");
                self.store.lock().submit_done(&id, None);
                Err(e)
            }
        }
    }

    /// The incident `incident_id` with every timestamp.
    ///
    /// Errors: [`Error::Field`] on an empty id, [`Error::UnknownIncident`].
    pub fn incident(&self, incident_id: &str) -> Result<v1::Incident> {
        if incident_id.is_empty() {
            return Err(FieldError::new("incident_id", "is required").into());
        }
        self.store
            .lock()
            .get(incident_id)
            .map(incident_to_wire)
            .ok_or_else(|| Error::UnknownIncident(incident_id.to_owned()))
    }

    /// Applies an incident as its district published it, when its revision is higher than the
    /// stored one. Returns whether it was applied (false for an old revision or an incident
    /// intake does not hold).
    ///
    /// Errors: [`FieldError`] when the message is not a valid incident.
    pub fn apply_update(&self, incident: &v1::Incident) -> Result<bool, FieldError> {
        let incident = incident_from_wire(incident)?;
        Ok(self.store.lock().apply_update(incident))
    }

    /// Spawns the task that keeps the records current from the command-center feed of
    /// `notify` (every incident change of the cluster), until `shutdown` resolves.
    ///
    /// The task resumes after the last sequence number it saw, and when the subscription fails
    /// or ends it reconnects with exponential backoff (100 ms doubling to at most 5 s, reset by
    /// every notice received).
    pub fn follow_updates(
        self: &Arc<Self>,
        notify: Arc<dyn NotifyPort>,
        shutdown: impl Future + Send + 'static,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => {}
                () = crate::follow::follow(this, notify) => {}
            }
        })
    }
}

/// The router's answer as a placement. Errors: [`Error::BadReply`] without a district.
fn placement(route: v1::RouteResponse) -> Result<Placement> {
    if route.district_id.is_empty() {
        return Err(Error::BadReply {
            peer: "geo-router",
            detail: "route without district_id".to_owned(),
        });
    }
    Ok(Placement {
        district_id: route.district_id,
        station_id: route.station_id,
        sub_bureau_id: route.sub_bureau_id,
        routed_to_nearest: route.outside_map,
    })
}

/// The gRPC face of a shared [`IntakeService`].
#[tonic::async_trait]
impl Intake for IntakeService {
    /// See [`IntakeService::report`].
    async fn report_incident(
        &self,
        request: Request<v1::ReportIncidentRequest>,
    ) -> Result<Response<v1::ReportIncidentResponse>, Status> {
        Ok(Response::new(self.report(request.get_ref()).await?))
    }

    /// See [`IntakeService::incident`].
    async fn get_incident(
        &self,
        request: Request<v1::GetIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        Ok(Response::new(
            self.incident(&request.get_ref().incident_id)?,
        ))
    }
}

/// Serves `Intake` (plus gRPC health and reflection) on `listener` until `shutdown` resolves.
/// Start [`IntakeService::follow_updates`] beside it to keep records current.
///
/// Errors: the transport error that ended serving.
pub async fn run(
    listener: TcpListener,
    service: Arc<IntakeService>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let routes = Routes::new(IntakeServer::from_arc(service));
    dispatch_runtime::serve(listener, routes, &[service_names::INTAKE], shutdown).await
}
