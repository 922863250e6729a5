//! A steady flow of 110 calls and the officer terminals that answer them, for fault tests: the
//! flow keeps running while a test kills, pauses or adds processes, and at the end tells
//! whether every call was served once.
//!
//! - The **platform** reports calls at a fixed rate, round robin over the given districts
//!   (each at its centre), each call id unique. Calls alternate between the intake replicas;
//!   a try answered `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `CANCELLED` or `UNKNOWN` (a broken
//!   connection) is tried again with the same call id on the next replica, as a real 110
//!   platform does, for at most [`CALL_RETRY_FOR`].
//! - The **terminals**: the first officers of each district's roster, signed on at the
//!   district's centre, each subscribed to its orders through one of the notification replicas
//!   (alternating). A broken stream is opened again on the next replica with `resume_after`
//!   the last cursor seen. On an order the officer acknowledges, arrives on scene and clears,
//!   each command through the district nodes in turn, retried on the next node on the same
//!   codes, for at most [`COMMAND_RETRY_FOR`].
//!
//! A dispatch id is `{district_id}/{incident_id}/{n}`, the district's `n`th dispatch of the
//! incident: an incident is dispatched twice when its orders carry two different dispatch ids;
//! the same order delivered again (same dispatch id) counts once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use dispatch_bus::convert::timestamp_from_wire;
use dispatch_proto::v1;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

/// How long the platform keeps trying one call over the intake replicas.
pub const CALL_RETRY_FOR: Duration = Duration::from_secs(60);
/// How long a terminal keeps trying one command over the district nodes.
pub const COMMAND_RETRY_FOR: Duration = Duration::from_secs(60);
/// Deadline of one try of a terminal's command: a try that sits in a paused process's socket
/// is given up after it and tried elsewhere.
const TRY_DEADLINE: Duration = Duration::from_secs(4);
/// Deadline of one try of a call: longer than intake's own deadline of a submit to a district
/// (`intake.district_deadline_ms`, 5 s), so intake answers first.
const CALL_TRY_DEADLINE: Duration = Duration::from_secs(8);
/// Pause between two tries.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where the flow runs and how hard.
#[derive(Debug, Clone)]
pub struct SteadyConfig {
    /// Intake replicas (`http://host:port`).
    pub intakes: Vec<String>,
    /// Notification replicas (`http://host:port`).
    pub notifications: Vec<String>,
    /// District nodes the terminals' commands go to (`http://host:port`), in turn.
    pub district_nodes: Vec<String>,
    /// Districts the calls go to, round robin (from the geo-router's directory).
    pub districts: Vec<v1::District>,
    /// Officers with a terminal per district (the first of its roster).
    pub officers_per_district: usize,
    /// Calls per second, over all districts.
    pub calls_per_second: f64,
    /// Call ids are `{call_prefix}-{n}`.
    pub call_prefix: String,
}

/// What happened to one call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Its district.
    pub district_id: String,
    /// The incident intake answered, once accepted.
    pub incident_id: Option<String>,
    /// Tries until accepted (or given up).
    pub tries: u32,
    /// Whether the accepting answer said `duplicate` (an earlier try had been taken).
    pub duplicate: bool,
}

/// What the terminals saw of one incident.
#[derive(Debug, Clone, Default)]
pub struct IncidentRecord {
    /// Its district (from its first order).
    pub district_id: String,
    /// The dispatch ids of its orders, over all terminals.
    pub dispatch_ids: BTreeSet<String>,
    /// Orders received for it (a redelivered order counted again).
    pub deliveries: u32,
    /// When the first order reached a terminal.
    pub first_order_at: Option<Instant>,
    /// The first order's `dispatched_at`, ms since the Unix epoch (cluster clock).
    pub dispatched_at_ms: Option<i64>,
    /// When its officer's arrival on scene was answered.
    pub on_scene_at: Option<Instant>,
    /// Whether its officer cleared it.
    pub cleared: bool,
}

/// Counts a test compares before and after a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Calls accepted by intake.
    pub accepted: usize,
    /// Incidents whose officer arrived on scene.
    pub on_scene: usize,
    /// Streams opened again after they broke.
    pub resumes: usize,
}

/// The verdict at the end of a flow.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Calls reported.
    pub calls: usize,
    /// Calls accepted (an incident id answered).
    pub accepted: usize,
    /// Calls accepted only after more than one try.
    pub retried: usize,
    /// Accepted incidents whose arrival a terminal saw.
    pub on_scene_seen: usize,
    /// Accepted incidents intake reports on scene (or cleared) that no terminal saw arrive.
    pub on_scene_intake_only: usize,
    /// Call ids never accepted.
    pub not_accepted: Vec<String>,
    /// Accepted incidents never on scene: `(incident_id, intake's state)`.
    pub lost: Vec<(String, i32)>,
    /// Incidents with orders under more than one dispatch id.
    pub dispatched_twice: BTreeMap<String, BTreeSet<String>>,
    /// Calls reported once more at the end that came back as another incident, or not as a
    /// duplicate: `(call_id, what came back)`.
    pub repeat_mismatches: Vec<(String, String)>,
    /// Orders received again (same dispatch id).
    pub redeliveries: u32,
    /// Streams opened again after they broke.
    pub resumes: usize,
    /// Errors that no retry could get past (a refused command, a call refused for good).
    pub errors: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    calls: BTreeMap<String, CallRecord>,
    incidents: BTreeMap<String, IncidentRecord>,
    resumes: usize,
    errors: Vec<String>,
}

#[derive(Debug, Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running steady flow; [`finish`](SteadyFlow::finish) stops it and judges it. Dropping it
/// stops its tasks.
#[derive(Debug)]
pub struct SteadyFlow {
    config: SteadyConfig,
    shared: Shared,
    stop_calls: watch::Sender<bool>,
    stop_terminals: watch::Sender<bool>,
    platform: Option<JoinHandle<()>>,
    terminals: Vec<JoinHandle<()>>,
}

fn lazy(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())?.connect_lazy())
}

/// Whether a try failed in a way another replica or a later try may get past.
fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(TRY_DEADLINE);
    request
}

fn with_call_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TRY_DEADLINE);
    request
}

/// Tries `op` on replica `first`, then the next ones in turn, while it fails [`retryable`],
/// for at most `within`; answers the reply, or the last error.
async fn on_replicas<C: Clone, T, Fut>(
    replicas: &[C],
    first: usize,
    within: Duration,
    mut op: impl FnMut(C) -> Fut,
) -> Result<(T, u32), tonic::Status>
where
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let started = Instant::now();
    let mut tries = 0;
    loop {
        let replica = replicas[(first + tries as usize) % replicas.len()].clone();
        tries += 1;
        match op(replica).await {
            Ok(reply) => return Ok((reply.into_inner(), tries)),
            Err(s) if retryable(&s) && started.elapsed() < within => {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(s) => return Err(s),
        }
    }
}

impl SteadyFlow {
    /// Reads each district's roster (through the district nodes), starts the terminals (each
    /// signs on and subscribes) and then the platform.
    ///
    /// Errors: an empty list of replicas or districts, a malformed address, a roster that
    /// cannot be read within [`COMMAND_RETRY_FOR`] or is shorter than
    /// `officers_per_district`.
    pub async fn start(config: SteadyConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !config.intakes.is_empty()
                && !config.notifications.is_empty()
                && !config.district_nodes.is_empty()
                && !config.districts.is_empty(),
            "a steady flow needs intakes, notifications, district nodes and districts"
        );
        anyhow::ensure!(
            config.calls_per_second > 0.0,
            "calls_per_second must be positive, got {}",
            config.calls_per_second
        );
        let nodes = config
            .district_nodes
            .iter()
            .map(|u| lazy(u).map(DistrictServiceClient::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let feeds = config
            .notifications
            .iter()
            .map(|u| lazy(u).map(NotificationClient::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let intakes = config
            .intakes
            .iter()
            .map(|u| lazy(u).map(IntakeClient::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let shared = Shared {
            state: Arc::new(Mutex::new(State::default())),
        };
        let (stop_calls, calls_stopped) = watch::channel(false);
        let (stop_terminals, terminals_stopped) = watch::channel(false);
        let mut terminals = Vec::new();
        let mut signed_on = Vec::new();
        for (d, district) in config.districts.iter().enumerate() {
            let center = district.center.context("district without centre")?;
            let (snapshot, _) = on_replicas(&nodes, d, COMMAND_RETRY_FOR, |mut n| {
                let district_id = district.district_id.clone();
                async move {
                    n.get_district(with_deadline(v1::GetDistrictRequest { district_id }))
                        .await
                }
            })
            .await
            .with_context(|| format!("roster of {}", district.district_id))?;
            anyhow::ensure!(
                snapshot.officers.len() >= config.officers_per_district,
                "{} has {} officers, fewer than {}",
                district.district_id,
                snapshot.officers.len(),
                config.officers_per_district
            );
            for officer in snapshot.officers.iter().take(config.officers_per_district) {
                let (ready, is_ready) = tokio::sync::oneshot::channel();
                signed_on.push(is_ready);
                let terminal = Terminal {
                    officer_id: officer.officer_id.clone(),
                    center,
                    nodes: nodes.clone(),
                    feeds: feeds.clone(),
                    feed: terminals.len() % feeds.len(),
                    shared: shared.clone(),
                    done: BTreeSet::new(),
                };
                terminals.push(tokio::spawn(terminal.run(terminals_stopped.clone(), ready)));
            }
        }
        for is_ready in signed_on {
            is_ready
                .await
                .context("a terminal stopped before signing on")??;
        }
        let platform = tokio::spawn(platform(
            config.clone(),
            intakes,
            shared.clone(),
            calls_stopped,
        ));
        Ok(Self {
            config,
            shared,
            stop_calls,
            stop_terminals,
            platform: Some(platform),
            terminals,
        })
    }

    /// Counts so far.
    pub fn progress(&self) -> Progress {
        let state = self.shared.lock();
        Progress {
            accepted: state
                .calls
                .values()
                .filter(|c| c.incident_id.is_some())
                .count(),
            on_scene: state
                .incidents
                .values()
                .filter(|i| i.on_scene_at.is_some())
                .count(),
            resumes: state.resumes,
        }
    }

    /// When a terminal first received an order for an incident in one of `districts` that was
    /// dispatched at or after `since_ms` (ms since the Unix epoch, cluster clock); `None`
    /// before any.
    pub fn first_order_since(&self, districts: &[String], since_ms: i64) -> Option<Instant> {
        self.shared
            .lock()
            .incidents
            .values()
            .filter(|i| districts.contains(&i.district_id))
            .filter(|i| i.dispatched_at_ms.is_some_and(|at| at >= since_ms))
            .filter_map(|i| i.first_order_at)
            .min()
    }

    /// Stops the platform (calls in flight finish their tries), waits at most `within` for
    /// every accepted incident to be on scene at a terminal, asks intake (`GetIncident`) about
    /// those that are not, reports every accepted call once more (it must come back as the same
    /// incident, a duplicate), stops the terminals and sums up.
    ///
    /// Errors: only when the platform task itself failed; what went wrong with calls is in the
    /// [`Summary`].
    pub async fn finish(mut self, within: Duration) -> anyhow::Result<Summary> {
        let _ = self.stop_calls.send(true);
        if let Some(platform) = self.platform.take() {
            platform.await.context("platform task")?;
        }
        let deadline = Instant::now() + within;
        loop {
            let waiting = {
                let state = self.shared.lock();
                state
                    .calls
                    .values()
                    .filter_map(|c| c.incident_id.as_ref())
                    .filter(|id| {
                        state
                            .incidents
                            .get(*id)
                            .is_none_or(|i| i.on_scene_at.is_none() || !i.cleared)
                    })
                    .count()
            };
            if waiting == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop_terminals.send(true);
        for terminal in self.terminals.drain(..) {
            let _ = terminal.await;
        }
        let (calls, incidents, resumes, errors) = {
            let state = self.shared.lock();
            (
                state.calls.clone(),
                state.incidents.clone(),
                state.resumes,
                state.errors.clone(),
            )
        };
        let mut intake = IntakeClient::new(lazy(&self.config.intakes[0])?);
        let mut summary = Summary {
            calls: calls.len(),
            accepted: 0,
            retried: 0,
            on_scene_seen: 0,
            on_scene_intake_only: 0,
            not_accepted: Vec::new(),
            lost: Vec::new(),
            dispatched_twice: BTreeMap::new(),
            repeat_mismatches: Vec::new(),
            redeliveries: incidents
                .values()
                .map(|i| i.deliveries.saturating_sub(i.dispatch_ids.len() as u32))
                .sum(),
            resumes,
            errors,
        };
        for (call_id, call) in &calls {
            let Some(incident_id) = &call.incident_id else {
                summary.not_accepted.push(call_id.clone());
                continue;
            };
            summary.accepted += 1;
            if call.tries > 1 {
                summary.retried += 1;
            }
            if incidents
                .get(incident_id)
                .is_some_and(|i| i.on_scene_at.is_some())
            {
                summary.on_scene_seen += 1;
            } else {
                let state = match intake
                    .get_incident(with_deadline(v1::GetIncidentRequest {
                        incident_id: incident_id.clone(),
                    }))
                    .await
                {
                    Ok(i) => i.into_inner().state,
                    Err(_) => v1::IncidentState::Unspecified as i32,
                };
                if state == v1::IncidentState::OnScene as i32
                    || state == v1::IncidentState::Cleared as i32
                {
                    summary.on_scene_intake_only += 1;
                } else {
                    summary.lost.push((incident_id.clone(), state));
                }
            }
            let district = self
                .config
                .districts
                .iter()
                .find(|d| d.district_id == call.district_id)
                .and_then(|d| d.center);
            let again = intake
                .report_incident(with_call_deadline(v1::ReportIncidentRequest {
                    call_id: call_id.clone(),
                    category: v1::IncidentCategory::Theft as i32,
                    location: district,
                    description: format!("steady call {call_id}"),
                }))
                .await;
            match again {
                Ok(r) => {
                    let r = r.into_inner();
                    let id = r.incident.map(|i| i.incident_id).unwrap_or_default();
                    if id != *incident_id || !r.duplicate {
                        summary
                            .repeat_mismatches
                            .push((call_id.clone(), format!("{id} duplicate={}", r.duplicate)));
                    }
                }
                Err(s) => summary
                    .repeat_mismatches
                    .push((call_id.clone(), format!("{:?}: {}", s.code(), s.message()))),
            }
        }
        for (incident_id, incident) in incidents {
            if incident.dispatch_ids.len() > 1 {
                summary
                    .dispatched_twice
                    .insert(incident_id, incident.dispatch_ids);
            }
        }
        Ok(summary)
    }
}

impl Drop for SteadyFlow {
    fn drop(&mut self) {
        if let Some(platform) = &self.platform {
            platform.abort();
        }
        for terminal in &self.terminals {
            terminal.abort();
        }
    }
}

/// Reports a call every `1 / calls_per_second` until stopped, each in its own task so a
/// slow one does not hold the rate; waits for the calls in flight before returning.
async fn platform(
    config: SteadyConfig,
    intakes: Vec<IntakeClient<Channel>>,
    shared: Shared,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.calls_per_second));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = Vec::new();
    for n in 0usize.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        let district = &config.districts[n % config.districts.len()];
        let call_id = format!("{}-{n:05}", config.call_prefix);
        shared.lock().calls.insert(
            call_id.clone(),
            CallRecord {
                district_id: district.district_id.clone(),
                incident_id: None,
                tries: 0,
                duplicate: false,
            },
        );
        let (intakes, shared, location) = (intakes.clone(), shared.clone(), district.center);
        in_flight.push(tokio::spawn(async move {
            let reported = on_replicas(&intakes, n, CALL_RETRY_FOR, |mut intake| {
                let call_id = call_id.clone();
                async move {
                    intake
                        .report_incident(with_call_deadline(v1::ReportIncidentRequest {
                            call_id: call_id.clone(),
                            category: v1::IncidentCategory::Theft as i32,
                            location,
                            description: format!("steady call {call_id}"),
                        }))
                        .await
                }
            })
            .await;
            let mut state = shared.lock();
            match reported {
                Ok((reply, tries)) => {
                    if let Some(call) = state.calls.get_mut(&call_id) {
                        call.incident_id = reply.incident.map(|i| i.incident_id);
                        call.tries = tries;
                        call.duplicate = reply.duplicate;
                    }
                }
                Err(s) => state.errors.push(format!(
                    "call {call_id} not accepted: {:?} {}",
                    s.code(),
                    s.message()
                )),
            }
        }));
        in_flight.retain(|t| !t.is_finished());
    }
    for call in in_flight {
        let _ = call.await;
    }
}

/// One officer's terminal.
struct Terminal {
    officer_id: String,
    center: v1::LatLng,
    nodes: Vec<DistrictServiceClient<Channel>>,
    feeds: Vec<NotificationClient<Channel>>,
    /// The replica it reads its orders from now.
    feed: usize,
    shared: Shared,
    /// Dispatch ids it has worked (an order delivered again is not worked again).
    done: BTreeSet<String>,
}

impl Terminal {
    /// Signs on (then answers `ready`), then reads and works orders until `stopped`.
    async fn run(
        mut self,
        mut stopped: watch::Receiver<bool>,
        ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
    ) {
        let (officer_id, center) = (self.officer_id.clone(), self.center);
        let signed_on = on_replicas(&self.nodes, 0, COMMAND_RETRY_FOR, |mut n| {
            let officer_id = officer_id.clone();
            async move {
                n.update_officer_status(with_deadline(v1::UpdateOfficerStatusRequest {
                    officer_id,
                    status: v1::OfficerStatus::Available as i32,
                    location: Some(center),
                }))
                .await
            }
        })
        .await;
        let signed_on = signed_on
            .map(|_| ())
            .map_err(|s| anyhow::anyhow!("{officer_id} not signed on: {s:?}"));
        let failed = signed_on.is_err();
        let _ = ready.send(signed_on);
        if failed {
            return;
        }
        let mut cursor = String::new();
        let mut opened_before = false;
        while !*stopped.borrow() {
            let subscribed = self.feeds[self.feed]
                .clone()
                .subscribe(v1::SubscribeRequest {
                    audience: Some(v1::Audience {
                        target: Some(v1::audience::Target::OfficerId(self.officer_id.clone())),
                    }),
                    resume_after: cursor.clone(),
                    from_latest: false,
                })
                .await;
            let mut orders = match subscribed {
                Ok(orders) => orders.into_inner(),
                Err(_) => {
                    self.feed = (self.feed + 1) % self.feeds.len();
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            if opened_before {
                self.shared.lock().resumes += 1;
            }
            opened_before = true;
            loop {
                let notice = tokio::select! {
                    n = orders.next() => n,
                    _ = stopped.changed() => return,
                };
                let Some(Ok(notice)) = notice else {
                    // Broken or ended: on to the next replica, from the last cursor.
                    self.feed = (self.feed + 1) % self.feeds.len();
                    break;
                };
                if !notice.cursor.is_empty() {
                    cursor = notice.cursor.clone();
                }
                if let Some(v1::notice_body::Kind::DispatchOrder(order)) =
                    notice.body.and_then(|b| b.kind)
                {
                    self.work(order).await;
                }
            }
        }
    }

    /// Records `order` and, unless already worked, acknowledges, arrives and clears it.
    async fn work(&mut self, order: v1::DispatchOrder) {
        {
            let mut state = self.shared.lock();
            let incident = state
                .incidents
                .entry(order.incident_id.clone())
                .or_default();
            incident.district_id.clone_from(&order.district_id);
            incident.dispatch_ids.insert(order.dispatch_id.clone());
            incident.deliveries += 1;
            if incident.first_order_at.is_none() {
                incident.first_order_at = Some(Instant::now());
                incident.dispatched_at_ms = order
                    .dispatched_at
                    .as_ref()
                    .map(|t| timestamp_from_wire(t).as_millis());
            }
        }
        if !self.done.insert(order.dispatch_id.clone()) {
            return;
        }
        let (officer_id, dispatch_id) = (order.officer_id.clone(), order.dispatch_id.clone());
        let first = self.done.len();
        let acknowledged = on_replicas(&self.nodes, first, COMMAND_RETRY_FOR, |mut n| {
            let (officer_id, dispatch_id) = (officer_id.clone(), dispatch_id.clone());
            async move {
                n.acknowledge_dispatch(with_deadline(v1::AcknowledgeDispatchRequest {
                    officer_id,
                    dispatch_id,
                }))
                .await
            }
        })
        .await;
        if let Err(s) = acknowledged {
            return self.refused("acknowledge", &order, &s);
        }
        let arrived = on_replicas(&self.nodes, first + 1, COMMAND_RETRY_FOR, |mut n| {
            let (officer_id, dispatch_id) = (officer_id.clone(), dispatch_id.clone());
            async move {
                n.arrive_on_scene(with_deadline(v1::ArriveOnSceneRequest {
                    officer_id,
                    dispatch_id,
                }))
                .await
            }
        })
        .await;
        if let Err(s) = arrived {
            return self.refused("arrive on scene", &order, &s);
        }
        if let Some(i) = self.shared.lock().incidents.get_mut(&order.incident_id) {
            i.on_scene_at.get_or_insert_with(Instant::now);
        }
        let cleared = on_replicas(&self.nodes, first + 2, COMMAND_RETRY_FOR, |mut n| {
            let (officer_id, dispatch_id) = (officer_id.clone(), dispatch_id.clone());
            async move {
                n.clear_incident(with_deadline(v1::ClearIncidentRequest {
                    officer_id,
                    dispatch_id,
                    disposition: v1::Disposition::Resolved as i32,
                }))
                .await
            }
        })
        .await;
        match cleared {
            Ok(_) => {
                if let Some(i) = self.shared.lock().incidents.get_mut(&order.incident_id) {
                    i.cleared = true;
                }
            }
            Err(s) => self.refused("clear", &order, &s),
        }
    }

    fn refused(&self, what: &str, order: &v1::DispatchOrder, s: &tonic::Status) {
        self.shared.lock().errors.push(format!(
            "{} could not {what} {}: {:?} {}",
            self.officer_id,
            order.dispatch_id,
            s.code(),
            s.message()
        ));
    }
}
