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
use dispatch_core::ScaledClock;
use dispatch_core::clock::{Error as ClockError, SharedClock, WallClock};
use dispatch_district::DistrictGrpc;
use dispatch_district::{DistrictNode, NodeConfig, Outbox};
use dispatch_intake::IntakeService;
use dispatch_map::CityMap;
use dispatch_notification::NotificationService;
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
        ServiceKind::District => {
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
                backends::dead_letters(config.redis.url.as_deref())?,
            )?;
            let (node, arbiters) = DistrictNode::start_on_new_arbiters(
                &directory,
                NodeConfig {
                    travel: config.travel,
                    officers_per_district: config.officers_per_district,
                    supervision: config.supervision,
                    quarantine: backends::quarantine(config.redis.url.as_deref())?,
                    ..NodeConfig::default()
                },
                clock,
                outbox.clone(),
                backends::journal(config.redis.url.as_deref())?,
                config.arbiters,
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
            let result = dispatch_runtime::serve_with(
                listener,
                DistrictGrpc::new(node).routes(),
                &[dispatch_proto::service_names::DISTRICT],
                shutdown,
                backends::serve_options(config.redis.url.as_deref(), drain)?,
            )
            .await;
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
            result?;
        }
        ServiceKind::Intake => {
            // The districts the district node owns (one node; the next issue spreads them).
            let placement = SingleNode::from_directory(&fetch_directory(&peers.geo_router).await?);
            let intake_config = &config.intake;
            let intake = Arc::new(IntakeService::new(
                RouterClient::grpc(
                    channel(&peers.geo_router)?,
                    CallOptions::with_deadline(Duration::from_millis(
                        intake_config.router_deadline_ms,
                    )),
                ),
                DistrictClient::grpc(
                    channel(&peers.district)?,
                    placement,
                    CallOptions::with_deadline(Duration::from_millis(
                        intake_config.district_deadline_ms,
                    )),
                ),
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
