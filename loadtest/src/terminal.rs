//! Simulated officer terminals.
//!
//! Each on-duty officer's terminal subscribes to its orders (`Notification.Subscribe`) before
//! signing on (`UpdateOfficerStatus(AVAILABLE)` at its start position), so no order can be
//! published before anyone listens. For each new order (each `dispatch_id` once) it waits the
//! acknowledgement delay, acknowledges, drives to the incident at the scenario's speed
//! (great-circle distance x circuity / speed) streaming its interpolated position every GPS
//! interval on a `ReportLocation` client stream, reports on scene, stays the on-scene time, and
//! clears with a disposition drawn from the scenario's shares. It is then free at the incident's
//! place, and the cluster dispatches it again.
//!
//! All waits are cluster seconds turned into real time by the shared clock
//! ([`dispatch_core::Clock::real_duration`]). Every terminal draws from its own generator,
//! seeded by the scenario seed and its officer id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_bus::convert::{disposition_to_wire, latlng_to_wire};
use dispatch_core::clock::SharedClock;
use dispatch_core::{Disposition, LatLng};
use dispatch_proto::v1::{
    AcknowledgeDispatchRequest, ArriveOnSceneRequest, Audience, ClearIncidentRequest,
    DispatchOrder, LocationReport, Notice, OfficerStatus, SubscribeRequest,
    UpdateOfficerStatusRequest, audience, notice_body,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Streaming;

use crate::connect::{Clients, StreamPools};
use crate::draw::{Weighted, rng_for_officer, uniform_in};
use crate::scenario::{TerminalSpec, disposition_name};
use crate::{Error, Result};

/// Attempts to re-open a broken order stream before the terminal gives up: with
/// [`RESUBSCRIBE_PAUSE`], about 30 s, so a terminal rides out a restart of the notification
/// service (or of the whole embedded cluster) and resumes from its cursor.
const RESUBSCRIBE_ATTEMPTS: u32 = 150;

/// Real pause between re-subscription attempts.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// Attempts of a terminal's unary call that fails `UNAVAILABLE` (a replica or district node
/// that went down; each attempt takes the next channel, so the next replica), with
/// [`CALL_RETRY_PAUSE`] between them: about 30 s, long enough for a district's lease to lapse
/// and another node to take it over.
const CALL_ATTEMPTS: u32 = 150;

/// Real pause between two attempts of a unary call.
const CALL_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Runs `call` until it answers anything but `UNAVAILABLE`, at most [`CALL_ATTEMPTS`] times.
/// Only `UNAVAILABLE` is retried: the request did not get through (refused connection, owner
/// node down), so sending it again cannot apply it twice.
async fn retry_unavailable<T, F, Fut>(mut call: F) -> std::result::Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < CALL_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(CALL_RETRY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// How an incident's first order reached a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstOrder {
    /// The officer it went to.
    pub officer_id: String,
    /// The order.
    pub dispatch_id: String,
    /// When the terminal received it (real, monotonic).
    pub received: Instant,
    /// Since when that officer had been free (signed on or last cleared), real, monotonic.
    pub officer_free_since: Instant,
}

/// What all terminals share: first orders per incident and counters, read by the progress
/// log and the report.
#[derive(Debug, Default)]
pub struct Fleet {
    first_orders: Mutex<HashMap<String, FirstOrder>>,
    cleared: Mutex<HashSet<String>>,
    clearances: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    orders: AtomicU64,
    duplicate_orders: AtomicU64,
    busy: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data in a valid state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fleet {
    /// Counts one failed RPC of a terminal.
    pub fn error(&self, rpc: &'static str) {
        *lock(&self.errors).entry(rpc).or_default() += 1;
    }

    fn order(&self, order: &DispatchOrder, free_since: Instant) {
        self.orders.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_orders)
            .entry(order.incident_id.clone())
            .or_insert_with(|| FirstOrder {
                officer_id: order.officer_id.clone(),
                dispatch_id: order.dispatch_id.clone(),
                received: Instant::now(),
                officer_free_since: free_since,
            });
    }

    fn cleared(&self, incident_id: &str, disposition: Disposition) {
        lock(&self.cleared).insert(incident_id.to_string());
        *lock(&self.clearances)
            .entry(disposition_name(disposition))
            .or_default() += 1;
    }

    /// The first order of every incident that got one.
    pub fn first_orders(&self) -> HashMap<String, FirstOrder> {
        lock(&self.first_orders).clone()
    }

    /// Incidents the terminals have cleared.
    pub fn cleared_count(&self) -> usize {
        lock(&self.cleared).len()
    }

    /// How many of `ids` the terminals have cleared (a cluster used before may hand this run's
    /// officers incidents of an earlier run; those do not count).
    pub fn cleared_among(&self, ids: &HashSet<String>) -> usize {
        lock(&self.cleared).intersection(ids).count()
    }

    /// Terminals handling an order right now.
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Orders received (new `dispatch_id`s).
    pub fn orders(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// Orders delivered again and ignored.
    pub fn duplicate_orders(&self) -> u64 {
        self.duplicate_orders.load(Ordering::Relaxed)
    }

    /// Clearances accepted by the cluster, by disposition name.
    pub fn clearances(&self) -> BTreeMap<String, u64> {
        lock(&self.clearances)
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// Failed RPCs by name.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors)
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }
}

/// What every terminal of a run shares.
#[derive(Debug)]
pub struct TerminalEnv {
    /// Behaviour from the scenario.
    pub spec: TerminalSpec,
    /// The cluster's clock (same scale as the cluster's).
    pub clock: SharedClock,
    /// Scenario seed.
    pub seed: u64,
    /// Unary clients.
    pub clients: Clients,
    /// Stream channels.
    pub streams: StreamPools,
    /// Shared records.
    pub fleet: Arc<Fleet>,
    dispositions: Weighted<Disposition>,
}

impl TerminalEnv {
    /// The environment of a run's terminals.
    ///
    /// Errors: [`Error::Weights`] when the disposition shares cannot be drawn from.
    pub fn new(
        spec: TerminalSpec,
        clock: SharedClock,
        seed: u64,
        clients: Clients,
        streams: StreamPools,
        fleet: Arc<Fleet>,
    ) -> Result<Self> {
        let dispositions = Weighted::new("terminal.dispositions", spec.dispositions.weights())?;
        Ok(Self {
            spec,
            clock,
            seed,
            clients,
            streams,
            fleet,
            dispositions,
        })
    }

    fn real(&self, cluster_s: f64) -> Duration {
        self.clock.real_duration(cluster_s)
    }
}

/// One terminal to start.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalSetup {
    /// The officer.
    pub officer_id: String,
    /// Where the officer signs on, WGS84.
    pub start: LatLng,
    /// Position in the run's list of terminals (picks its stream connection).
    pub index: usize,
}

/// The point a fraction `f` (0..=1) of the way from `a` to `b` (linear in degrees, which is
/// accurate to centimetres over the few kilometres of a drive).
pub fn interpolate(a: LatLng, b: LatLng, f: f64) -> LatLng {
    let f = f.clamp(0.0, 1.0);
    LatLng {
        lat: a.lat + (b.lat - a.lat) * f,
        lon: a.lon + (b.lon - a.lon) * f,
    }
}

/// Opens the order stream of terminal `setup` on the notification replica it reaches after
/// `hops` breaks ([`StreamPools::notification`]): after `resume_after` (an opaque cursor;
/// empty: from the oldest kept), or with `None` from the latest (the stream then opens with a
/// heartbeat carrying its cursor).
async fn subscribe(
    streams: &StreamPools,
    setup: &TerminalSetup,
    resume_after: Option<&str>,
    hops: usize,
) -> std::result::Result<Streaming<Notice>, tonic::Status> {
    let request = SubscribeRequest {
        audience: Some(Audience {
            target: Some(audience::Target::OfficerId(setup.officer_id.clone())),
        }),
        resume_after: resume_after.unwrap_or_default().to_string(),
        from_latest: resume_after.is_none(),
    };
    Ok(streams
        .notification(setup.index, hops)
        .subscribe(request)
        .await?
        .into_inner())
}

/// Runs one terminal until its task is dropped. `ready` gets `Ok` once the terminal listens
/// for orders and has signed on, or the error that stopped it.
pub async fn run_terminal(
    env: Arc<TerminalEnv>,
    setup: TerminalSetup,
    ready: oneshot::Sender<Result<()>>,
) {
    // A new shift: earlier orders of this roster (a previous run on the same cluster) are stale.
    let stream = match subscribe(&env.streams, &setup, None, 0).await {
        Ok(s) => s,
        Err(status) => {
            let _ = ready.send(Err(Error::rpc(
                format!("Notification.Subscribe({})", setup.officer_id),
                status,
            )));
            return;
        }
    };
    let free_since = Arc::new(Mutex::new(Instant::now()));
    let sign_on = UpdateOfficerStatusRequest {
        officer_id: setup.officer_id.clone(),
        status: OfficerStatus::Available as i32,
        location: Some(latlng_to_wire(setup.start)),
    };
    let signed_on = retry_unavailable(|| {
        let (mut client, request) = (env.clients.district(), sign_on.clone());
        async move { client.update_officer_status(request).await }
    })
    .await;
    if let Err(status) = signed_on {
        let _ = ready.send(Err(Error::rpc(
            format!("DistrictService.UpdateOfficerStatus({})", setup.officer_id),
            status,
        )));
        return;
    }
    let _ = ready.send(Ok(()));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::join!(
        read_orders(
            &env.streams,
            &env.fleet,
            &setup,
            stream,
            free_since.clone(),
            tx
        ),
        work(&env, &setup, rx, free_since),
    );
}

/// Reads the order stream, timestamps each new order, and passes it to the worker; re-opens
/// the stream after a break on the next notification replica (the one that broke may be
/// dead), resuming after the cursor of the last notice seen (heartbeats included), or from the
/// oldest kept when the feed no longer holds that cursor (a restarted notification service
/// without Redis). Orders seen twice are dropped by dispatch id.
async fn read_orders(
    streams: &StreamPools,
    fleet: &Fleet,
    setup: &TerminalSetup,
    mut stream: Streaming<Notice>,
    free_since: Arc<Mutex<Instant>>,
    tx: mpsc::UnboundedSender<DispatchOrder>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    // `None` until the stream's first notice (its opening heartbeat) gives a resume point.
    let mut cursor: Option<String> = None;
    let mut failures = 0;
    // Breaks so far: each one moves the stream to the next replica.
    let mut hops = 0;
    loop {
        match stream.message().await {
            Ok(Some(notice)) => {
                failures = 0;
                cursor = Some(notice.cursor);
                let Some(notice_body::Kind::DispatchOrder(order)) =
                    notice.body.and_then(|b| b.kind)
                else {
                    continue;
                };
                if order.officer_id != setup.officer_id {
                    fleet.error("order_for_other_officer");
                    continue;
                }
                if !seen.insert(order.dispatch_id.clone()) {
                    fleet.duplicate_orders.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                fleet.order(&order, *lock(&free_since));
                if tx.send(order).is_err() {
                    return;
                }
            }
            end => {
                fleet.error("subscribe");
                if let Err(status) = &end
                    && status.code() == tonic::Code::OutOfRange
                {
                    // Mid-stream: the feed lost its history since our cursor (Redis data lost)
                    // or trimmed past it; what it keeps now is all newer than our cursor.
                    tracing::warn!(officer = %setup.officer_id, %status,
                        "order cursor out of range, resuming from the oldest kept");
                    cursor = Some(String::new());
                }
                loop {
                    failures += 1;
                    if failures > RESUBSCRIBE_ATTEMPTS {
                        tracing::warn!(
                            officer = %setup.officer_id,
                            "order stream lost after {RESUBSCRIBE_ATTEMPTS} attempts, terminal stops"
                        );
                        return;
                    }
                    hops += 1;
                    tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                    // Resume after the last notice seen; before any, from the latest again
                    // (never from the oldest, which would replay a previous run's orders).
                    match subscribe(streams, setup, cursor.as_deref(), hops).await {
                        Ok(s) => {
                            stream = s;
                            break;
                        }
                        Err(status) if status.code() == tonic::Code::OutOfRange => {
                            // The feed lost our cursor's history (a restart without Redis) or
                            // trimmed it: what it keeps is all newer than our cursor.
                            tracing::warn!(officer = %setup.officer_id, %status,
                                "order cursor out of range, resuming from the oldest kept");
                            cursor = Some(String::new());
                        }
                        Err(_) => fleet.error("subscribe"),
                    }
                }
            }
        }
    }
}

/// Handles orders one after the other.
async fn work(
    env: &TerminalEnv,
    setup: &TerminalSetup,
    mut rx: mpsc::UnboundedReceiver<DispatchOrder>,
    free_since: Arc<Mutex<Instant>>,
) {
    let mut rng = rng_for_officer(env.seed, &setup.officer_id);
    let mut position = setup.start;
    let mut gps_hops = 0;
    loop {
        // Waiting, the terminal reports where it stands every `idle_gps_interval_s`.
        let idle = tokio::time::sleep(env.real(env.spec.idle_gps_interval_s));
        let order = tokio::select! {
            order = rx.recv() => order,
            () = idle => {
                stand(env, setup, position, &mut gps_hops).await;
                continue;
            }
        };
        let Some(order) = order else {
            return;
        };
        env.fleet.busy.fetch_add(1, Ordering::Relaxed);
        let mut terminal = Moving {
            position: &mut position,
            gps_hops: &mut gps_hops,
        };
        handle_order(env, setup, &order, &mut terminal, &mut rng, &free_since).await;
        env.fleet.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a terminal is, and how many times its GPS stream moved to the next district replica
/// (kept from drive to drive, so a dead replica is left for good).
struct Moving<'a> {
    position: &'a mut LatLng,
    gps_hops: &'a mut usize,
}

async fn handle_order(
    env: &TerminalEnv,
    setup: &TerminalSetup,
    order: &DispatchOrder,
    terminal: &mut Moving<'_>,
    rng: &mut crate::draw::SeededRng,
    free_since: &Mutex<Instant>,
) {
    let officer_id = setup.officer_id.clone();
    let dispatch_id = order.dispatch_id.clone();
    let spec = &env.spec;
    tokio::time::sleep(env.real(uniform_in(spec.ack_delay_s, rng))).await;
    let ack = AcknowledgeDispatchRequest {
        officer_id: officer_id.clone(),
        dispatch_id: dispatch_id.clone(),
    };
    let acknowledged = retry_unavailable(|| {
        let (mut client, request) = (env.clients.district(), ack.clone());
        async move { client.acknowledge_dispatch(request).await }
    })
    .await;
    if let Err(status) = acknowledged {
        tracing::warn!(officer = %officer_id, dispatch = %dispatch_id, %status, "acknowledge failed");
        env.fleet.error("acknowledge_dispatch");
        return;
    }
    let destination = order
        .location
        .as_ref()
        .and_then(|l| LatLng::new(l.lat, l.lon).ok())
        .unwrap_or(*terminal.position);
    drive(
        env,
        setup,
        *terminal.position,
        destination,
        terminal.gps_hops,
    )
    .await;
    *terminal.position = destination;
    let arrive = ArriveOnSceneRequest {
        officer_id: officer_id.clone(),
        dispatch_id: dispatch_id.clone(),
    };
    let arrived = retry_unavailable(|| {
        let (mut client, request) = (env.clients.district(), arrive.clone());
        async move { client.arrive_on_scene(request).await }
    })
    .await;
    if let Err(status) = arrived {
        tracing::warn!(officer = %officer_id, dispatch = %dispatch_id, %status, "arrive failed");
        env.fleet.error("arrive_on_scene");
        return;
    }
    tokio::time::sleep(env.real(uniform_in(spec.on_scene_s, rng))).await;
    let disposition = env.dispositions.draw(rng);
    // Free from the moment the clearance leaves: the district may dispatch it again before the
    // answer comes back.
    *lock(free_since) = Instant::now();
    let clear = ClearIncidentRequest {
        officer_id: officer_id.clone(),
        dispatch_id: dispatch_id.clone(),
        disposition: disposition_to_wire(disposition) as i32,
    };
    match retry_unavailable(|| {
        let (mut client, request) = (env.clients.district(), clear.clone());
        async move { client.clear_incident(request).await }
    })
    .await
    {
        Ok(_) => env.fleet.cleared(&order.incident_id, disposition),
        Err(status) => {
            tracing::warn!(officer = %officer_id, dispatch = %dispatch_id, %status, "clear failed");
            env.fleet.error("clear_incident");
        }
    }
}

/// Attempts to re-open a broken GPS stream within one drive (each on the next district
/// replica) before the rest of the drive goes unreported.
const GPS_REOPEN_ATTEMPTS: usize = 8;

/// One open `ReportLocation` client stream: the sender of its reports and the call.
struct GpsStream {
    tx: mpsc::Sender<LocationReport>,
    call: tokio::task::JoinHandle<std::result::Result<(), tonic::Status>>,
}

impl GpsStream {
    /// Opens terminal `index`'s GPS stream on the district replica it reaches after `hops`
    /// breaks.
    fn open(streams: &StreamPools, index: usize, hops: usize) -> Self {
        let (tx, rx) = mpsc::channel::<LocationReport>(8);
        let mut client = streams.district(index, hops);
        let call = tokio::spawn(async move {
            client
                .report_location(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map(|_| ())
        });
        Self { tx, call }
    }

    /// Why the call ended (it ends early only on an error).
    async fn end(self) -> std::result::Result<(), tonic::Status> {
        drop(self.tx);
        match self.call.await {
            Ok(result) => result,
            Err(e) => Err(tonic::Status::cancelled(format!("GPS stream task: {e}"))),
        }
    }
}

/// One GPS report of a terminal standing at `at`, on a stream of its own (on the next
/// district replica once if it breaks).
async fn stand(env: &TerminalEnv, setup: &TerminalSetup, at: LatLng, hops: &mut usize) {
    for _ in 0..2 {
        let stream = GpsStream::open(&env.streams, setup.index, *hops);
        let sent = stream.tx.send(fix(env, setup, at)).await.is_ok();
        match stream.end().await {
            Ok(()) if sent => return,
            outcome => {
                tracing::warn!(officer = %setup.officer_id, status = ?outcome.err(),
                    "idle location report failed, trying the next district replica");
                env.fleet.error("report_location");
                *hops += 1;
            }
        }
    }
}

/// A GPS report of terminal `setup` at `p`. A simulated receiver fixes as it reports: the fix
/// time is the cluster's clock then, and 10 m a phone GNSS fix's usual stated accuracy (68 %).
fn fix(env: &TerminalEnv, setup: &TerminalSetup, p: LatLng) -> LocationReport {
    LocationReport {
        officer_id: setup.officer_id.clone(),
        location: Some(latlng_to_wire(p)),
        fixed_at: Some(dispatch_bus::convert::timestamp_to_wire(env.clock.now())),
        accuracy_m: Some(10.0),
    }
}

/// Drives from `from` to `to`: travel time = great-circle distance x circuity / speed, one GPS
/// report every interval on a `ReportLocation` stream, the last one at the destination. A
/// stream that breaks is re-opened on the next district replica and the report that did not
/// go is sent there; `hops` counts the moves, from drive to drive.
async fn drive(
    env: &TerminalEnv,
    setup: &TerminalSetup,
    from: LatLng,
    to: LatLng,
    hops: &mut usize,
) {
    let travel_s = env.spec.travel().eta_s(&from, &to);
    let interval_s = env.spec.gps_interval_s;
    let report = |p: LatLng| fix(env, setup, p);
    let mut stream = GpsStream::open(&env.streams, setup.index, *hops);
    let mut reopened = 0;
    let t0 = tokio::time::Instant::now();
    let mut k = 1.0;
    let mut last = false;
    loop {
        let (at, point) = if k * interval_s < travel_s {
            (
                k * interval_s,
                interpolate(from, to, k * interval_s / travel_s),
            )
        } else {
            last = true;
            (travel_s, to)
        };
        tokio::time::sleep_until(t0 + env.real(at)).await;
        let mut sent = stream.tx.send(report(point)).await.is_ok();
        while !sent && reopened < GPS_REOPEN_ATTEMPTS {
            reopened += 1;
            *hops += 1;
            let broken = std::mem::replace(
                &mut stream,
                GpsStream::open(&env.streams, setup.index, *hops),
            );
            let status = broken.end().await.err();
            tracing::warn!(officer = %setup.officer_id, status = ?status,
                "location stream broke, re-opening it on the next district replica");
            env.fleet.error("report_location");
            sent = stream.tx.send(report(point)).await.is_ok();
        }
        if !sent || last {
            break;
        }
        k += 1.0;
    }
    // Dropping the sender ends the client stream.
    if let Err(status) = stream.end().await {
        tracing::warn!(officer = %setup.officer_id, %status, "location stream failed");
        env.fleet.error("report_location");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_runs_from_start_to_end() {
        let a = LatLng {
            lat: 23.0,
            lon: 113.7,
        };
        let b = LatLng {
            lat: 23.01,
            lon: 113.72,
        };
        assert_eq!(interpolate(a, b, 0.0), a);
        assert_eq!(interpolate(a, b, 1.0), b);
        assert_eq!(interpolate(a, b, 2.0), b, "clamped");
        let mid = interpolate(a, b, 0.5);
        assert!((mid.lat - 23.005).abs() < 1e-12 && (mid.lon - 113.71).abs() < 1e-12);
        // Half-way in degrees is half-way in distance to well under a metre at this scale.
        let (d1, d2) = (a.distance_m(&mid), mid.distance_m(&b));
        assert!((d1 - d2).abs() < 0.5, "{d1} vs {d2}");
    }

    /// A notification replica that records each `Subscribe` and answers it with `notices`,
    /// then ends the stream with `UNAVAILABLE` when `dies` (a replica going down), or keeps it
    /// open.
    struct FakeNotification {
        requests: Arc<Mutex<Vec<SubscribeRequest>>>,
        notices: Vec<Notice>,
        dies: bool,
    }

    #[tonic::async_trait]
    impl dispatch_proto::v1::notification_server::Notification for FakeNotification {
        type SubscribeStream = std::pin::Pin<
            Box<dyn futures::Stream<Item = std::result::Result<Notice, tonic::Status>> + Send>,
        >;

        async fn subscribe(
            &self,
            request: tonic::Request<SubscribeRequest>,
        ) -> std::result::Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
            lock(&self.requests).push(request.into_inner());
            use futures::StreamExt as _;
            let notices = futures::stream::iter(self.notices.clone().into_iter().map(Ok));
            let stream: Self::SubscribeStream = if self.dies {
                Box::pin(notices.chain(futures::stream::once(async {
                    Err(tonic::Status::unavailable("replica going down"))
                })))
            } else {
                Box::pin(notices.chain(futures::stream::pending()))
            };
            Ok(tonic::Response::new(stream))
        }

        async fn publish(
            &self,
            _: tonic::Request<dispatch_proto::v1::PublishRequest>,
        ) -> std::result::Result<tonic::Response<dispatch_proto::v1::PublishResponse>, tonic::Status>
        {
            Err(tonic::Status::unimplemented("not in this test"))
        }
    }

    async fn serve(fake: FakeNotification) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(dispatch_proto::v1::notification_server::NotificationServer::new(fake))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        (addr, server)
    }

    fn notice(cursor: &str, order: Option<DispatchOrder>) -> Notice {
        let kind = match order {
            Some(o) => notice_body::Kind::DispatchOrder(o),
            None => notice_body::Kind::Heartbeat(dispatch_proto::v1::Heartbeat {}),
        };
        Notice {
            seq: 0,
            published_at: None,
            body: Some(dispatch_proto::v1::NoticeBody { kind: Some(kind) }),
            cursor: cursor.into(),
        }
    }

    #[tokio::test]
    async fn a_broken_order_stream_resumes_from_its_cursor_on_the_next_replica() {
        let order = |id: &str| DispatchOrder {
            dispatch_id: id.into(),
            incident_id: format!("inc-{id}"),
            officer_id: "nc-d01-o01".into(),
            ..DispatchOrder::default()
        };
        let a_requests = Arc::new(Mutex::new(Vec::new()));
        let b_requests = Arc::new(Mutex::new(Vec::new()));
        // Replica a: the opening heartbeat, one order, then it goes down.
        let (a, server_a) = serve(FakeNotification {
            requests: a_requests.clone(),
            notices: vec![notice("a-7", None), notice("a-8", Some(order("d1")))],
            dies: true,
        })
        .await;
        // Replica b (the same feed): the next order after cursor a-8.
        let (b, server_b) = serve(FakeNotification {
            requests: b_requests.clone(),
            notices: vec![notice("a-9", Some(order("d2")))],
            dies: false,
        })
        .await;
        let notification =
            crate::connect::Pool::connect("notification", &format!("{a},{b}"), 1, false)
                .await
                .unwrap();
        let streams = StreamPools::new(notification.clone(), notification);
        let fleet = Fleet::default();
        // Terminal 0 starts on replica 0 (a).
        let setup = TerminalSetup {
            officer_id: "nc-d01-o01".into(),
            start: LatLng {
                lat: 23.0,
                lon: 113.7,
            },
            index: 0,
        };
        let stream = subscribe(&streams, &setup, None, 0).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let free_since = Arc::new(Mutex::new(Instant::now()));
        let reader = read_orders(&streams, &fleet, &setup, stream, free_since, tx);
        let orders = async {
            let first = rx.recv().await.unwrap();
            let second = rx.recv().await.unwrap();
            (first.dispatch_id, second.dispatch_id)
        };
        let got = tokio::select! {
            () = reader => panic!("the reader must not stop"),
            got = tokio::time::timeout(Duration::from_secs(30), orders) => got.unwrap(),
        };
        assert_eq!(got, ("d1".to_owned(), "d2".to_owned()));
        let a_seen: Vec<(String, bool)> = lock(&a_requests)
            .iter()
            .map(|r| (r.resume_after.clone(), r.from_latest))
            .collect();
        let b_seen: Vec<(String, bool)> = lock(&b_requests)
            .iter()
            .map(|r| (r.resume_after.clone(), r.from_latest))
            .collect();
        // a: the first subscription, from the latest; b: after a's break, from its last cursor.
        assert_eq!(a_seen, vec![(String::new(), true)]);
        assert_eq!(b_seen, vec![("a-8".to_owned(), false)]);
        assert_eq!(fleet.errors().get("subscribe"), Some(&1));
        server_a.abort();
        server_b.abort();
    }
}
