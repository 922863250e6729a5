//! All five services in one process: the embedded mode.
//!
//! Services call each other in-process through the same port clients the separate-process mode
//! builds over gRPC (`in_process` constructors of [`dispatch_bus::ports`]: the same requests,
//! deadlines and trace context, without a socket), and notifications fan out over the
//! in-process [`FeedHub`]. The five gRPC services are served together on one loopback port, so a
//! client (the load-test harness, a test) drives the cluster exactly as it would a deployed one.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_rt::Arbiter;
use dispatch_bus::ports::{
    CallOptions, CaseClient, DistrictClient, NotifyClient, RecordsClient, RouterClient, SingleNode,
};
use dispatch_case_squad::CaseSquadService;
use dispatch_core::clock::{SharedClock, WallClock};
use dispatch_core::{PositionRules, TravelModel};
use dispatch_district::outbox::OutboxConfig;
use dispatch_district::supervision::SupervisionConfig;
use dispatch_district::{DistrictGrpc, DistrictNode, NodeConfig, Outbox};
use dispatch_geo_router::GeoRouterService;
use dispatch_intake::{IntakeConfig, IntakeService};
use dispatch_map::CityMap;
use dispatch_notification::NotificationService;
use dispatch_proto::service_names;
use dispatch_proto::v1::case_squad_server::CaseSquadServer;
use dispatch_proto::v1::district_service_server::DistrictServiceServer;
use dispatch_proto::v1::geo_router_server::GeoRouterServer;
use dispatch_proto::v1::intake_server::IntakeServer;
use dispatch_proto::v1::notification_server::NotificationServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::backends;

/// What an embedded cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster clock (a [`dispatch_core::ScaledClock`] for load tests).
    pub clock: SharedClock,
    /// ETA model of the dispatch rule.
    pub travel: TravelModel,
    /// Which position reports the districts trust (service area derived from the map when
    /// unset).
    pub positions: PositionRules,
    /// Officers on each district's roster.
    pub officers_per_district: u32,
    /// Investigators per station's case squad.
    pub investigators_per_squad: u32,
    /// Arbiters (threads) for the district actors.
    pub arbiters: usize,
    /// Where to serve; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Intake's hand-off leases, deadlines, sweeper and retention.
    pub intake: IntakeConfig,
    /// Redis URL: every service's state lives there (the system of record), and health
    /// follows Redis; `None`: in process memory.
    pub redis_url: Option<String>,
    /// After shutdown begins, how long running calls may finish before what is still open is
    /// closed.
    pub drain: std::time::Duration,
    /// The district node's outbox: lanes, tries, deadlines, redrive.
    pub outbox: OutboxConfig,
    /// The district node's supervision: panics before a command is quarantined.
    pub supervision: SupervisionConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            clock: Arc::new(WallClock),
            travel: TravelModel::default(),
            positions: PositionRules::default(),
            officers_per_district: 20,
            investigators_per_squad: 6,
            arbiters: 2,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            intake: IntakeConfig::default(),
            redis_url: None,
            drain: dispatch_runtime::DEFAULT_DRAIN,
            outbox: OutboxConfig::default(),
            supervision: SupervisionConfig::default(),
        }
    }
}

/// A running single-process cluster.
pub struct EmbeddedCluster {
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    arbiters: Vec<Arbiter>,
    node: DistrictNode,
    outbox: Outbox,
    drain: std::time::Duration,
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("addr", &self.addr)
            .finish()
    }
}

impl EmbeddedCluster {
    /// Starts the five services on `map` and serves them on `config.listen`.
    ///
    /// Must run inside an actix system (`actix_rt::System::with_tokio_rt` in a binary,
    /// `#[actix_rt::test]` in a test): the district actors live on arbiters of that system.
    ///
    /// Errors: the address cannot be bound, or the configuration breaks a rule.
    pub async fn start(map: Arc<CityMap>, config: ClusterConfig) -> anyhow::Result<Self> {
        let clock = config.clock.clone();
        let geo = Arc::new(GeoRouterService::new(map.clone()));
        let router = RouterClient::in_process(
            geo.clone(),
            CallOptions::with_deadline(RouterClient::DEFAULT_DEADLINE),
        );
        // Through the geo-router's port, as every separate process reads it.
        let directory = router
            .list_districts()
            .await
            .map_err(|e| anyhow::anyhow!("the geo-router's directory: {e}"))?;

        let redis = config.redis_url.as_deref();
        let hub = backends::feed_store(redis, clock.clone()).await?;
        let notification = Arc::new(NotificationService::new(hub.clone()));
        let case_store =
            backends::case_store(redis, &directory, config.investigators_per_squad).await?;
        let cases = Arc::new(CaseSquadService::with_store(
            case_store,
            None,
            clock.clone(),
        ));
        // The outbox sets its own call deadline (`outbox.call_deadline`) on both clients.
        let outbox = Outbox::start(
            NotifyClient::in_process(
                notification.clone(),
                CallOptions::with_deadline(NotifyClient::DEFAULT_DEADLINE),
            ),
            CaseClient::in_process(
                cases.clone(),
                CallOptions::with_deadline(CaseClient::DEFAULT_DEADLINE),
            ),
            config.outbox,
            backends::dead_letters(redis)?,
        )?;
        let journal = backends::journal(redis)?;
        let records = backends::intake_records(redis, &clock, &config.intake)?;
        let (node, arbiters) = DistrictNode::start_on_new_arbiters(
            &directory,
            NodeConfig {
                travel: config.travel,
                positions: config.positions,
                officers_per_district: config.officers_per_district,
                supervision: config.supervision,
                quarantine: backends::quarantine(redis)?,
                ..NodeConfig::default()
            },
            clock.clone(),
            outbox.clone(),
            journal,
            config.arbiters,
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        let district = Arc::new(DistrictGrpc::new(node.clone()));
        // Intake sets the deadlines of its clients from `config.intake`.
        let intake = Arc::new(IntakeService::new(
            router,
            DistrictClient::in_process(
                district.clone(),
                SingleNode::from_directory(&directory),
                CallOptions::with_deadline(DistrictClient::DEFAULT_DEADLINE),
            ),
            records,
            clock.clone(),
            config.intake.clone(),
        ));

        // The case squad checks each case's incident against intake's records. Intake is built
        // after the case squad (intake -> district -> outbox -> case squad), so the lookup is
        // set now; the cycle lives as long as the process.
        if cases
            .set_lookup(RecordsClient::in_process(
                intake.clone(),
                CallOptions::with_deadline(RecordsClient::DEFAULT_DEADLINE),
            ))
            .is_err()
        {
            anyhow::bail!("case squad lookup set twice");
        }

        let stop = CancellationToken::new();
        let follow_stop = stop.clone();
        let feed = NotifyClient::in_process(
            notification.clone(),
            CallOptions::with_deadline(NotifyClient::DEFAULT_DEADLINE),
        );
        intake.follow_updates(feed, async move { follow_stop.cancelled().await });
        let sweep_stop = stop.clone();
        intake.spawn_sweeper(async move { sweep_stop.cancelled().await });

        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let routes = Routes::new(IntakeServer::from_arc(intake))
            .add_service(GeoRouterServer::from_arc(geo))
            .add_service(DistrictServiceServer::from_arc(district))
            .add_service(CaseSquadServer::from_arc(cases))
            .add_service(NotificationServer::from_arc(notification));
        let serve_stop = stop.clone();
        let serve_hub = hub;
        let options = backends::serve_options(config.redis_url.as_deref(), config.drain)?;
        let server = tokio::spawn(async move {
            dispatch_runtime::serve_with(
                listener,
                routes,
                &[
                    service_names::INTAKE,
                    service_names::GEO_ROUTER,
                    service_names::DISTRICT,
                    service_names::CASE_SQUAD,
                    service_names::NOTIFICATION,
                ],
                async move {
                    serve_stop.cancelled().await;
                    // Open terminal streams would hold the drain forever.
                    serve_hub.close();
                },
                options,
            )
            .await
        });
        tracing::info!(%addr, map = %map.name, "embedded cluster serving");
        Ok(Self {
            addr,
            stop,
            server,
            arbiters,
            node,
            outbox,
            drain: config.drain,
        })
    }

    /// The loopback address all five services answer on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The district actors' handle (for tests and in-process callers).
    pub fn districts(&self) -> &DistrictNode {
        &self.node
    }

    /// Stops taking calls, ends open streams, lets running calls finish (at most the drain
    /// bound), then stops the district actors.
    pub async fn shutdown(self) {
        self.stop.cancel();
        match tokio::time::timeout(self.drain + std::time::Duration::from_secs(1), self.server)
            .await
        {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!(drain = ?self.drain, "server did not stop within its drain bound")
            }
        }
        for arbiter in self.arbiters {
            arbiter.stop();
        }
        // The delivered-mark tracker stops with the last node handle, before the flush: what
        // the flush gives up on must not be marked delivered.
        drop(self.node);
        let report = self.outbox.flush(std::time::Duration::from_secs(2)).await;
        if report.left() > 0 {
            tracing::warn!(left = report.left(), "effects not delivered at shutdown");
        }
    }
}
