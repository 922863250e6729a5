//! One service per process: each talks gRPC to its peers at the addresses in [`Config::peers`].
//!
//! Start order does not matter: peers are reached through lazily connecting channels, and the
//! services that need the city directory (district, case squad) ask the geo-router for it with
//! exponential backoff until it answers (at most [`DIRECTORY_WAIT`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatch_bus::feed::{FeedHub, FeedLimits};
use dispatch_bus::ports::{RouterPort, channel};
use dispatch_case_squad::CaseSquadService;
use dispatch_core::ScaledClock;
use dispatch_core::clock::{SharedClock, WallClock};
use dispatch_district::{DistrictNode, NodeConfig, Outbox};
use dispatch_intake::{IntakeConfig, IntakeService};
use dispatch_map::CityMap;
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use tokio::net::TcpListener;

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

/// The cluster clock of `config`: the wall clock at scale 1, a scaled clock otherwise.
pub fn clock(config: &Config) -> anyhow::Result<SharedClock> {
    if config.clock_scale == 1.0 {
        Ok(Arc::new(WallClock))
    } else {
        Ok(Arc::new(
            ScaledClock::new(config.clock_scale).map_err(|e| anyhow::anyhow!(e))?,
        ))
    }
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
pub async fn fetch_directory(addr: &str) -> anyhow::Result<v1::ListDistrictsResponse> {
    let client = GeoRouterClient::new(channel(addr)?);
    let fetch = || async { client.list_districts().await };
    let directory = fetch
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_total_delay(Some(DIRECTORY_WAIT))
                .without_max_times(),
        )
        .notify(|e, after| tracing::info!(%addr, error = %e.message(), ?after, "waiting for the geo-router"))
        .await
        .map_err(|e| anyhow::anyhow!("geo-router at {addr} did not answer ListDistricts: {e}"))?;
    Ok(directory)
}

/// Runs one service on `listener` until `shutdown` resolves. District must run inside an
/// actix system (its actors live on arbiters). The geo-router serves `map`, or loads the map of
/// `config` when none is given.
///
/// Errors: configuration, map loading, the directory not reachable, or the server failing.
pub async fn run_service(
    kind: ServiceKind,
    config: &Config,
    map: Option<Arc<CityMap>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let clock = clock(config)?;
    let peers = &config.peers;
    match kind {
        ServiceKind::GeoRouter => {
            let map = match map {
                Some(map) => map,
                None => Arc::new(load_map(&config.map)?),
            };
            dispatch_geo_router::run(listener, map, shutdown).await?;
        }
        ServiceKind::Notification => {
            let hub = Arc::new(FeedHub::new(clock, FeedLimits::default()));
            dispatch_notification::run(listener, hub, shutdown).await?;
        }
        ServiceKind::CaseSquad => {
            let directory = fetch_directory(&peers.geo_router).await?;
            let service =
                CaseSquadService::from_directory(&directory, config.investigators_per_squad, clock);
            dispatch_case_squad::run(listener, Arc::new(service), shutdown).await?;
        }
        ServiceKind::District => {
            let directory = fetch_directory(&peers.geo_router).await?;
            let outbox = Outbox::spawn(
                Arc::new(NotificationClient::new(channel(&peers.notification)?)),
                Arc::new(CaseSquadClient::new(channel(&peers.case_squad)?)),
            );
            let (node, arbiters) = DistrictNode::start_on_new_arbiters(
                &directory,
                NodeConfig {
                    travel: config.travel,
                    officers_per_district: config.officers_per_district,
                },
                clock,
                outbox,
                config.arbiters,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let result = dispatch_district::run(listener, node, shutdown).await;
            for arbiter in arbiters {
                arbiter.stop();
            }
            result?;
        }
        ServiceKind::Intake => {
            let intake = Arc::new(IntakeService::new(
                Arc::new(GeoRouterClient::new(channel(&peers.geo_router)?)),
                Arc::new(DistrictServiceClient::new(channel(&peers.district)?)),
                clock,
                IntakeConfig::default(),
            ));
            let stop = tokio_util::sync::CancellationToken::new();
            let follow_stop = stop.clone();
            intake.follow_updates(
                Arc::new(NotificationClient::new(channel(&peers.notification)?)),
                async move { follow_stop.cancelled().await },
            );
            let result = dispatch_intake::run(listener, intake, async move {
                shutdown.await;
                stop.cancel();
            })
            .await;
            result?;
        }
    }
    Ok(())
}
