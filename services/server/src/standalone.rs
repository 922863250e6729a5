//! One service per process: each talks gRPC to its peers at the addresses in [`Config::peers`].
//!
//! Start order does not matter: peers are reached through lazily connecting channels, and the
//! services that need the city directory (intake for its district placement, district, case
//! squad) ask the geo-router for it with exponential backoff until it answers (at most
//! [`DIRECTORY_WAIT`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatch_bus::ports::RecordsClient;
use dispatch_bus::ports::{
    CallOptions, CaseClient, Directory, DistrictClient, NotifyClient, RouterClient, SingleNode,
    channel,
};
use dispatch_case_squad::CaseSquadService;
use dispatch_cluster::{ClusterPlacement, Membership, NodeChannels};
use dispatch_core::ScaledClock;
use dispatch_core::clock::{Error as ClockError, SharedClock, WallClock};
use dispatch_district::{ClusterOptions, DistrictNode, NodeConfig, Outbox, forward};
use dispatch_intake::IntakeService;
use dispatch_map::CityMap;
use dispatch_notification::NotificationService;
use dispatch_runtime::Probe;
use tokio::net::TcpListener;

use crate::backends;
use crate::config::{Config, MapSource};

/// How long a service waits for the geo-router's directory at start-up.
pub const DIRECTORY_WAIT: Duration = Duration::from_secs(60);

/// The five services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    /// Validation, dedup, priority, incident record.
    Intake,
    /// The city map and routing.
    GeoRouter,
    /// District actors.
    District,
    /// Cases and investigators.
    CaseSquad,
    /// Delivery to terminals and screens.
    Notification,
}

/// The clock of one service among separate processes: the wall clock at scale 1, otherwise a
/// clock scaled from the configured epoch, which every process of the cluster shares.
///
/// Errors: a scaled clock without `clock_epoch_ms` (see [`Config::validate_separate_process`]),
/// or a scale or epoch [`ScaledClock::anchored`] refuses.
pub fn clock(config: &Config) -> anyhow::Result<SharedClock> {
    config.validate_separate_process()?;
    embedded_clock(config)
}

/// The clock of a process that is the whole cluster (`dispatch-server all`): as [`clock`], but
/// a scaled clock without a configured epoch starts from now, since no other process needs to
/// agree with it.
///
/// Errors: a scale or epoch [`ScaledClock`] refuses, naming the key.
pub fn embedded_clock(config: &Config) -> anyhow::Result<SharedClock> {
    if !config.scaled_clock() {
        return Ok(Arc::new(WallClock));
    }
    let clock = match config.clock_epoch_ms {
        Some(epoch) => ScaledClock::anchored(epoch, config.clock_scale),
        None => ScaledClock::new(config.clock_scale),
    }
    .map_err(|e| {
        let key = match e {
            ClockError::Scale(_) => "clock_scale",
            _ => "clock_epoch_ms",
        };
        anyhow::anyhow!("{key}: {e}")
    })?;
    Ok(Arc::new(clock))
}

/// Loads the map of `source`: the built-in map when no GeoJSON is given.
///
/// Errors: the files' own errors, naming the path.
pub fn load_map(source: &MapSource) -> anyhow::Result<CityMap> {
    match &source.geojson {
        None => Ok(CityMap::builtin()?),
        Some(geojson) => Ok(CityMap::from_geojson(
            geojson,
            source.population.as_deref(),
        )?),
    }
}

/// Asks the geo-router at `addr` for the directory, retrying until [`DIRECTORY_WAIT`] passes.
pub async fn fetch_directory(addr: &str) -> anyhow::Result<Directory> {
    let client = RouterClient::grpc(
        channel(addr)?,
        CallOptions::with_deadline(RouterClient::DEFAULT_DEADLINE),
    );
    let fetch = || async { client.list_districts().await };
    let directory = fetch
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_total_delay(Some(DIRECTORY_WAIT))
                .without_max_times(),
        )
        .notify(|e, after| tracing::info!(%addr, error = %e, ?after, "waiting for the geo-router"))
        .await
        .map_err(|e| anyhow::anyhow!("geo-router at {addr} did not answer ListDistricts: {e}"))?;
    Ok(directory)
}

/// Runs one service on `listener` until `shutdown` resolves, stamping time with `clock` (see
/// [`clock`]). District must run inside an actix system (its actors live on arbiters). The
/// geo-router serves `map`, or loads the map of `config` when none is given.
///
/// Errors: configuration, map loading, the directory not reachable, or the server failing.
pub async fn run_service(
    kind: ServiceKind,
    config: &Config,
    clock: SharedClock,
    map: Option<Arc<CityMap>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let peers = &config.peers;
    let drain = Duration::from_millis(config.drain_ms);
    match kind {
        ServiceKind::GeoRouter => {
            let map = match map {
                Some(map) => map,
                None => Arc::new(load_map(&config.map)?),
            };
            dispatch_geo_router::run(listener, map, shutdown).await?;
        }
        ServiceKind::Notification => {
            let url = config.redis.url.as_deref();
            let store = backends::feed_store(url, clock).await?;
            dispatch_notification::run_with(
                listener,
                NotificationService::new(store),
                shutdown,
                backends::serve_options(url, drain)?,
            )
            .await?;
        }
        ServiceKind::CaseSquad => {
            let directory = fetch_directory(&peers.geo_router).await?;
            let url = config.redis.url.as_deref();
            let store =
                backends::case_store(url, &directory, config.investigators_per_squad).await?;
            let lookup = RecordsClient::grpc(
                channel(&peers.intake)?,
                CallOptions::with_deadline(RecordsClient::DEFAULT_DEADLINE),
            );
            let service = CaseSquadService::with_store(store, Some(lookup), clock);
            let routes = tonic::service::Routes::new(
                dispatch_proto::v1::case_squad_server::CaseSquadServer::new(service),
            );
            dispatch_runtime::serve_with(
                listener,
                routes,
                &[dispatch_proto::service_names::CASE_SQUAD],
                shutdown,
                backends::serve_options(url, drain)?,
            )
            .await?;
        }
        ServiceKind::District => run_district(config, clock, listener, shutdown).await?,
        ServiceKind::Intake => {
            let directory = fetch_directory(&peers.geo_router).await?;
            let intake_config = &config.intake;
            let intake = Arc::new(IntakeService::new(
                RouterClient::grpc(
                    channel(&peers.geo_router)?,
                    CallOptions::with_deadline(Duration::from_millis(
                        intake_config.router_deadline_ms,
                    )),
                ),
                district_client(
                    config,
                    &directory,
                    CallOptions::with_deadline(Duration::from_millis(
                        intake_config.district_deadline_ms,
                    )),
                )
                .await?,
                backends::intake_records(config.redis.url.as_deref(), &clock, intake_config)?,
                clock,
                intake_config.clone(),
            ));
            let stop = tokio_util::sync::CancellationToken::new();
            let follow_stop = stop.clone();
            intake.follow_updates(
                NotifyClient::grpc(
                    channel(&peers.notification)?,
                    CallOptions::with_deadline(NotifyClient::DEFAULT_DEADLINE),
                ),
                async move { follow_stop.cancelled().await },
            );
            let sweep_stop = stop.clone();
            intake.spawn_sweeper(async move { sweep_stop.cancelled().await });
            let routes = tonic::service::Routes::new(
                dispatch_proto::v1::intake_server::IntakeServer::from_arc(intake),
            );
            let result = dispatch_runtime::serve_with(
                listener,
                routes,
                &[dispatch_proto::service_names::INTAKE],
                async move {
                    shutdown.await;
                    stop.cancel();
                },
                backends::serve_options(config.redis.url.as_deref(), drain)?,
            )
            .await;
            result?;
        }
    }
    Ok(())
}

/// Intake's client of the district nodes. Without Redis: the one district process at
/// `peers.district`, which runs every district. With Redis: the cluster of district nodes,
/// each district's owner found by [`ClusterPlacement`] (following the registry and the
/// leases), reached at the address it registered ([`NodeChannels`]), and followed when it
/// moves ([`DistrictClient::with_placement`]).
///
/// Errors: a malformed peer address; Redis not answering the first registry or lease read.
async fn district_client(
    config: &Config,
    directory: &Directory,
    options: CallOptions,
) -> anyhow::Result<DistrictClient> {
    let Some(url) = config.redis.url.as_deref() else {
        return Ok(DistrictClient::grpc(
            channel(&config.peers.district)?,
            SingleNode::from_directory(directory),
            options,
        ));
    };
    let membership = Membership::observe(url, config.cluster.timings).await?;
    let nodes = Arc::new(NodeChannels::new(membership.view()));
    let districts = directory.districts.iter().map(|d| d.id.to_string());
    let placement = ClusterPlacement::start(membership, url, districts).await?;
    Ok(DistrictClient::with_placement(
        Arc::new(placement),
        nodes,
        options,
    ))
}

/// Runs a district node on `listener` until `shutdown` resolves: every district without
/// Redis; with Redis a member of the cluster of district nodes
/// ([`DistrictNode::join_cluster`], `[cluster]` settings) that starts serving once it has
/// taken its share (its first ownership pass, waited for at most a lease and a reconcile
/// period), whose health is NOT_SERVING while Redis does not answer or the node does not
/// follow the cluster's announcements ([`DistrictNode::is_ready`]), which forwards terminal commands for districts it does
/// not own to their owners ([`dispatch_district::forward`]), and which hands its districts
/// over on shutdown, within `drain_ms` of the signal together with the drain of running calls.
///
/// Errors: configuration, the directory not reachable, the node not starting, the server
/// failing.
async fn run_district(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let peers = &config.peers;
    let url = config.redis.url.as_deref();
    let drain = Duration::from_millis(config.drain_ms);
    let directory = fetch_directory(&peers.geo_router).await?;
    // The outbox sets `outbox.call_deadline` on both clients.
    let outbox = Outbox::start(
        NotifyClient::grpc(
            channel(&peers.notification)?,
            CallOptions::with_deadline(config.outbox.call_deadline),
        ),
        CaseClient::grpc(
            channel(&peers.case_squad)?,
            CallOptions::with_deadline(config.outbox.call_deadline),
        ),
        config.outbox,
        backends::dead_letters(url)?,
    )?;
    let node_config = NodeConfig {
        travel: config.travel,
        positions: config.positions,
        officers_per_district: config.officers_per_district,
        supervision: config.supervision,
        quarantine: backends::quarantine(url)?,
        ..NodeConfig::default()
    };
    let journal = backends::journal(url)?;
    let arbiters: Vec<actix_rt::Arbiter> = (0..config.arbiters.max(1))
        .map(|_| actix_rt::Arbiter::new())
        .collect();
    let handles: Vec<_> = arbiters.iter().map(actix_rt::Arbiter::handle).collect();
    let node = match url {
        None => {
            DistrictNode::start(
                &directory,
                node_config,
                clock,
                outbox.clone(),
                journal,
                &handles,
            )
            .await
        }
        Some(url) => {
            let cluster = ClusterOptions {
                redis_url: url.to_owned(),
                node_id: config.node_id(),
                addr: config.advertise(),
                timings: config.cluster.timings,
            };
            tracing::info!(node = %cluster.node_id, addr = %cluster.addr, "joining the cluster of district nodes");
            DistrictNode::join_cluster(
                &directory,
                node_config,
                clock,
                outbox.clone(),
                journal,
                &handles,
                cluster,
            )
            .await
        }
    };
    let node = match node {
        Ok(node) => node,
        Err(e) => {
            for arbiter in arbiters {
                arbiter.stop();
            }
            anyhow::bail!(e);
        }
    };
    let mut options = backends::serve_options(url, drain)?;
    if node.node_id().is_some() {
        // Serve once the node has taken its share, so that a lone node answers for its
        // districts as soon as its health says SERVING.
        let settle = config.cluster.timings.lease + config.cluster.timings.reconcile_every;
        let started = tokio::time::Instant::now();
        while !node.is_ready() && started.elapsed() < settle {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        options.dependency = Some(ready_when_subscribed(node.clone(), options.dependency));
    }
    // On the signal the server stops taking calls and drains; meanwhile the node hands its
    // districts over, and whatever is left of the drain bound is what the handoff may take.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    let leaving = node.clone();
    let handoff = tokio::spawn(async move {
        if let Ok(at) = on_signal.await {
            let left = tokio::time::timeout_at(at + drain, leaving.shutdown()).await;
            if left.is_err() {
                tracing::warn!(
                    ?drain,
                    "districts not all handed over within the drain bound; the rest lapse with their leases"
                );
            }
        }
    });
    let result = dispatch_runtime::serve_with(
        listener,
        forward::routes(node),
        &[dispatch_proto::service_names::DISTRICT],
        async move {
            shutdown.await;
            let _ = signalled.send(tokio::time::Instant::now());
        },
        options,
    )
    .await;
    if let Err(e) = handoff.await {
        tracing::warn!(error = %e, "the handoff task failed");
    }
    for arbiter in arbiters {
        arbiter.stop();
    }
    // Effects not out by then stay undelivered in the journal (past the delivered
    // mark), and the next owner delivers them: the flush only shortens that list.
    let report = outbox.flush(Duration::from_secs(2)).await;
    if report.left() > 0 {
        tracing::warn!(
            left = report.left(),
            "effects left to the next owner at shutdown"
        );
    }
    Ok(result?)
}

/// The readiness of a clustered district node: `redis` (the Redis `PING` probe, when set)
/// answers and the node follows the cluster's announcements ([`DistrictNode::is_ready`]).
fn ready_when_subscribed(node: DistrictNode, redis: Option<Probe>) -> Probe {
    Arc::new(move || {
        let subscribed = node.is_ready();
        let redis = redis.clone();
        Box::pin(async move {
            match redis {
                Some(ping) => subscribed && ping().await,
                None => subscribed,
            }
        })
    })
}
