//! The async shell of intake: ports to the geo-router and the district, the gRPC handlers and
//! [`run`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::convert::{FieldError, incident_to_wire};
use dispatch_bus::ports::{DistrictClient, NotifyClient, PortError, Route, RouterClient};
use dispatch_bus::trace::{self, TraceContext};
use dispatch_core::clock::SharedClock;
use dispatch_core::{Incident, IncidentState, Timestamp};
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::intake_server::{Intake, IntakeServer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use ulid::Ulid;

use crate::IntakeConfig;
use crate::error::{Error, Result};
use crate::records::IncidentRecords;
use crate::store::{Created, Placement, check_same_call, routed_incident};
use crate::validate::{self, ValidCall};

/// The intake service. Share it behind an `Arc`: the gRPC server, the update follower, the
/// sweeper and the embedded server's in-process callers all use the same records.
pub struct IntakeService {
    router: RouterClient,
    handoff: Arc<Handoff>,
    /// Monotonic ULIDs: time-ordered even within one millisecond of this process.
    ids: parking_lot::Mutex<ulid::Generator>,
    clock: SharedClock,
    config: IntakeConfig,
}

/// What a hand-off needs, shared with the detached tasks that run it.
struct Handoff {
    district: DistrictClient,
    records: Arc<dyn IncidentRecords>,
}

impl std::fmt::Debug for IntakeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeService")
            .field("records", &self.handoff.records)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IntakeService {
    /// Intake routing through `router`, handing incidents to `district`, keeping records in
    /// `records`, stamping times from `clock`. The clients' deadlines are set from `config`
    /// (`router_deadline_ms`, `district_deadline_ms`).
    pub fn new(
        router: RouterClient,
        district: DistrictClient,
        records: Arc<dyn IncidentRecords>,
        clock: SharedClock,
        config: IntakeConfig,
    ) -> Self {
        let handoff = Arc::new(Handoff {
            district: district.with_deadline(Duration::from_millis(config.district_deadline_ms)),
            records,
        });
        Self {
            router: router.with_deadline(Duration::from_millis(config.router_deadline_ms)),
            handoff,
            ids: parking_lot::Mutex::new(ulid::Generator::new()),
            clock,
            config,
        }
    }

    /// The record store this service keeps its incidents in.
    pub fn records(&self) -> &Arc<dyn IncidentRecords> {
        &self.handoff.records
    }

    /// The next id: monotonic within this process, random across processes (ULID).
    fn next_ulid(&self) -> Ulid {
        let mut ids = self.ids.lock();
        // Overflow needs 2^80 ids in one millisecond; a fresh random ULID is still unique.
        ids.generate().unwrap_or_else(|_| Ulid::generate())
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.config.handoff_lease_ms)
    }

    /// Takes one 110 call: validate, deduplicate on `call_id`, route, create the incident
    /// (`ROUTED`, a new time-ordered id), hand it to its district, answer it as the district
    /// returned it.
    ///
    /// Each report is one trace ([`dispatch_bus::trace`]): a new span of the caller's trace
    /// when it runs inside one (the gRPC handler scopes the platform's `traceparent`), a new
    /// trace otherwise; the geo-router, the district and what the district publishes all see
    /// its trace id.
    ///
    /// The hand-off runs as a detached task: if the caller goes away (disconnect, deadline)
    /// the district still gets the incident, and a retry of the call answers `duplicate`.
    ///
    /// Errors: [`Error::Field`] for a broken rule (see [`validate::report`]);
    /// [`Error::CallReused`] when `call_id` is known with other content; [`Error::Upstream`]
    /// with the router's or district's port error, passed on with its code and field (a point
    /// too far off the map is the router's `InvalidArgument` on `location`; an unreachable
    /// district is `Unavailable`, and the record then stays `ROUTED` until a retry of the call
    /// or the sweeper hands it off; a malformed reply is `Internal`);
    /// [`Error::Deadline`] when a peer is too slow; [`Error::Records`] when the record store
    /// is unreachable.
    pub async fn report(
        &self,
        req: &v1::ReportIncidentRequest,
    ) -> Result<v1::ReportIncidentResponse> {
        let context = trace::current().map_or_else(TraceContext::new_root, |c| c.child());
        let span = tracing::debug_span!("report_incident", trace_id = %context.trace_id_hex());
        trace::scope(context, self.report_traced(req).instrument(span)).await
    }

    async fn report_traced(
        &self,
        req: &v1::ReportIncidentRequest,
    ) -> Result<v1::ReportIncidentResponse> {
        let call = validate::report(req)?;
        let received_at = self.clock.now();
        // Routing first and then creating (which answers the known record of a repeated call
        // atomically) spares a new call a look-up round trip to the record store; a repeat is
        // routed for nothing, which costs an in-memory look-up at the geo-router.
        let route = match self.router.route(call.location).await {
            Ok(route) => route,
            // A repeat of a known call is answered even when its point no longer routes (the
            // map changed) or the router is down: it was routed when it was first reported.
            Err(e) => match self.records().find_call(&call.call_id).await? {
                Some(known) => {
                    return Ok(answer(self.known(&call, known).await?, true));
                }
                None => return Err(Error::peer("geo-router", e)),
            },
        };
        let placement = placement(route);
        let routed_at = self.clock.now();
        let id = format!("{}{}", self.config.incident_id_prefix, self.next_ulid());
        let incident = routed_incident(id, &call, placement, received_at, routed_at)?;
        let token = Ulid::generate().to_string();
        let (incident, duplicate) = match self
            .records()
            .create(incident, &token, self.lease())
            .await?
        {
            Created::New(incident) => (self.hand_off(incident, token).await?, false),
            Created::Existing(known) => (self.known(&call, known).await?, true),
        };
        Ok(answer(incident, duplicate))
    }

    /// A repeated report of a known call: checks its content, and hands the incident off again
    /// when it is still `ROUTED` and no attempt holds its lease.
    async fn known(&self, call: &ValidCall, known: Incident) -> Result<Incident> {
        check_same_call(&known, call)?;
        if known.state != IncidentState::Routed {
            return Ok(known);
        }
        let token = Ulid::generate().to_string();
        match self
            .records()
            .take_lease(known.id.as_str(), &token, self.lease())
            .await?
        {
            Some(incident) => self.hand_off(incident, token).await,
            None => Ok(known),
        }
    }

    /// Runs one hand-off attempt as its own task, in the current trace, and waits for it; the
    /// task finishes even when this future is dropped.
    async fn hand_off(&self, incident: Incident, token: String) -> Result<Incident> {
        let attempt = self.handoff.clone().attempt(incident, token);
        let task = tokio::spawn(trace::scope_opt(trace::current(), attempt));
        task.await
            .map_err(|e| Error::Records(format!("hand-off task failed: {e}")))?
    }

    /// The incident `incident_id` with every timestamp.
    ///
    /// Errors: [`Error::Field`] on an empty id, [`Error::UnknownIncident`],
    /// [`Error::Records`].
    pub async fn incident(&self, incident_id: &str) -> Result<v1::Incident> {
        if incident_id.is_empty() {
            return Err(FieldError::new("incident_id", "is required").into());
        }
        self.records()
            .get(incident_id)
            .await?
            .as_ref()
            .map(incident_to_wire)
            .ok_or_else(|| Error::UnknownIncident(incident_id.to_owned()))
    }

    /// Applies an incident as its district published it, when its revision is higher than the
    /// stored one. Returns whether it was applied (false for an old revision or an incident
    /// intake does not hold).
    ///
    /// Errors: [`Error::Records`].
    pub async fn apply_update(&self, incident: Incident) -> Result<bool> {
        self.records().apply_update(incident).await
    }

    /// Spawns the task that keeps the records current from the command-center feed of
    /// `notify` (every incident change of the cluster), until `shutdown` resolves.
    ///
    /// The task resumes after the last notice it saw, and when the subscription fails
    /// or ends it reconnects with exponential backoff (100 ms doubling to at most 5 s, reset by
    /// every notice received).
    pub fn follow_updates(
        self: &Arc<Self>,
        notify: NotifyClient,
        shutdown: impl Future + Send + 'static,
    ) -> JoinHandle<()> {
        spawn_until(shutdown, crate::follow::follow(self.clone(), notify))
    }

    /// Spawns the sweeper until `shutdown` resolves: every `sweep_interval_ms` it hands off
    /// the incidents still `ROUTED` whose lease lapsed (a claimer crashed or was cancelled, or
    /// the district was down when the call came), and purges closed incidents older than
    /// `retention_s`. Several intake replicas may sweep the same records: the lease lets one
    /// attempt at a time through, and the district is idempotent on the incident id.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        shutdown: impl Future + Send + 'static,
    ) -> JoinHandle<()> {
        let this = self.clone();
        spawn_until(shutdown, async move { this.sweep_forever().await })
    }

    async fn sweep_forever(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.sweep_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "sweep failed, trying again next tick");
            }
        }
    }

    /// One pass of the sweeper: hands off every stranded incident it can lease (at most 256
    /// per pass) and purges closed incidents past retention. Returns how many it handed off.
    ///
    /// Errors: [`Error::Records`] when the store cannot be read.
    pub async fn sweep(&self) -> Result<usize> {
        let mut handed = 0;
        for id in self.records().stranded(256).await? {
            let token = Ulid::generate().to_string();
            let Some(incident) = self.records().take_lease(&id, &token, self.lease()).await? else {
                continue;
            };
            // A hand-off of its own: the report's trace ended with its call.
            let context = TraceContext::new_root();
            let district = incident.district_id.clone();
            tracing::info!(incident_id = %id, %district,
                trace_id = %context.trace_id_hex(), "handing off an incident left routed");
            match trace::scope(context, self.hand_off(incident, token)).await {
                Ok(_) => handed += 1,
                Err(Error::Upstream {
                    error: error @ PortError::Refused { .. },
                    ..
                }) => {
                    // Not a blip: the district will refuse it again until someone fixes the
                    // cause (a map change, a misrouted incident). Loud, and still offered
                    // again every sweep, so it is dispatched as soon as the cause is gone.
                    tracing::error!(incident_id = %id, %district, %error,
                        "district refused the incident; it stays ROUTED and is offered again every sweep");
                }
                Err(e) => {
                    tracing::warn!(incident_id = %id, error = %e, "hand-off failed, will retry")
                }
            }
        }
        let retention_s = i64::try_from(self.config.retention_s).unwrap_or(i64::MAX / 1000);
        let before = Timestamp(self.clock.now().0.saturating_sub(retention_s * 1000));
        let purged = self.records().purge_closed(before).await?;
        if purged > 0 {
            tracing::debug!(purged, "closed incidents past retention purged");
        }
        Ok(handed)
    }
}

impl Handoff {
    /// Submits `incident` to its district under the deadline and records the answer; the lease
    /// `token` is released either way, so a failed attempt can be retried at once.
    async fn attempt(self: Arc<Self>, incident: Incident, token: String) -> Result<Incident> {
        let id = incident.id.to_string();
        let answer = self
            .district
            .submit(incident.clone())
            .await
            .map_err(|e| Error::peer("district", e));
        match answer {
            Ok(reply) => {
                let stored = self.records.handoff_done(&id, &token, Some(reply)).await?;
                Ok(stored.unwrap_or(incident))
            }
            Err(e) => {
                tracing::warn!(incident_id = %id, error = %e, "hand-off to district failed, incident stays routed");
                if let Err(release) = self.records.handoff_done(&id, &token, None).await {
                    // The lease then lapses by itself and the sweeper retries.
                    tracing::warn!(incident_id = %id, error = %release, "cannot release the hand-off lease");
                }
                Err(e)
            }
        }
    }
}

/// Runs `work` as a task until it ends or `shutdown` resolves.
fn spawn_until(
    shutdown: impl Future + Send + 'static,
    work: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            () = work => {}
        }
    })
}

fn answer(incident: Incident, duplicate: bool) -> v1::ReportIncidentResponse {
    v1::ReportIncidentResponse {
        incident: Some(incident_to_wire(&incident)),
        duplicate,
    }
}

/// The router's answer as the incident's placement.
fn placement(route: Route) -> Placement {
    Placement {
        district_id: route.district_id,
        station_id: route.station_id,
        sub_bureau_id: route.sub_bureau_id,
        routed_to_nearest: route.outside_map,
    }
}

/// The gRPC face of a shared [`IntakeService`].
#[tonic::async_trait]
impl Intake for IntakeService {
    /// See [`IntakeService::report`]; continues the platform's trace when it sent a
    /// `traceparent`.
    async fn report_incident(
        &self,
        request: Request<v1::ReportIncidentRequest>,
    ) -> Result<Response<v1::ReportIncidentResponse>, Status> {
        let report = self.report(request.get_ref());
        Ok(Response::new(
            trace::scope_opt(trace::from_request(&request), report).await?,
        ))
    }

    /// See [`IntakeService::incident`].
    async fn get_incident(
        &self,
        request: Request<v1::GetIncidentRequest>,
    ) -> Result<Response<v1::Incident>, Status> {
        Ok(Response::new(
            self.incident(&request.get_ref().incident_id).await?,
        ))
    }
}

/// Serves `Intake` (plus gRPC health and reflection) on `listener` until `shutdown` resolves.
/// Start [`IntakeService::follow_updates`] and [`IntakeService::spawn_sweeper`] beside it.
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
