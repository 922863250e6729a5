//! `dispatch-server`: runs the whole cluster in one process (`all`, the default) or one service
//! per process (`intake`, `geo-router`, `district`, `case-squad`, `notification`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dispatch_core::clock::SharedClock;
use dispatch_map::CityMap;
use dispatch_server::config::Config;
use dispatch_server::standalone::{self, ServiceKind};
use dispatch_server::{ClusterConfig, EmbeddedCluster};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "110 dispatch cluster: all services in one process, or one service per process"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (layered over the defaults, under DISPATCH_* variables and flags).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to serve gRPC on, e.g. 127.0.0.1:50051.
    #[arg(long, global = true)]
    listen: Option<std::net::SocketAddr>,
    /// GeoJSON of sub-bureau areas (the built-in map when absent).
    #[arg(long, global = true)]
    map: Option<PathBuf>,
    /// Population CSV for the GeoJSON map.
    #[arg(long, global = true)]
    population: Option<PathBuf>,
    /// Cluster seconds per real second (1 in production).
    #[arg(long, global = true, allow_negative_numbers = true)]
    clock_scale: Option<f64>,
    /// Cluster epoch, ms since the Unix epoch, from which a scaled clock counts; every process
    /// of a separately started cluster on a scaled clock needs the same value, e.g.
    /// `$(date +%s%3N)` computed once.
    #[arg(long, global = true, allow_negative_numbers = true)]
    clock_epoch_ms: Option<i64>,
    /// Peer address of intake, or a comma-separated list of its replicas (calls are balanced).
    #[arg(long, global = true)]
    intake: Option<String>,
    /// Peer address of the geo-router, or a comma-separated list of its replicas (calls are balanced).
    #[arg(long, global = true)]
    geo_router: Option<String>,
    /// Peer address of the district service, or a comma-separated list of its replicas (calls are balanced).
    #[arg(long, global = true)]
    district: Option<String>,
    /// Peer address of the case squad, or a comma-separated list of its replicas (calls are balanced).
    #[arg(long, global = true)]
    case_squad: Option<String>,
    /// Peer address of notification, or a comma-separated list of its replicas (calls are balanced).
    #[arg(long, global = true)]
    notification: Option<String>,
    /// Redis URL (`redis://host:port/db`): every service keeps its state there (the system of
    /// record of a multi-process cluster); without it, state lives in process memory.
    #[arg(
        long,
        global = true,
        env = "DISPATCH_REDIS__URL",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// This district node's id in the cluster (`run district` with Redis; default: `district-`
    /// and a new ULID).
    #[arg(long, global = true)]
    node_id: Option<String>,
    /// The internal gRPC address this district node registers for the others to reach it
    /// (`run district` with Redis; default: the listen address).
    #[arg(long, global = true)]
    advertise: Option<String>,
    /// Print the resulting configuration as TOML and exit.
    #[arg(long, global = true)]
    print_config: bool,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum Command {
    /// All five services in one process, served on one port (the default).
    All,
    /// One service as its own process.
    Run {
        /// Which service.
        #[arg(value_enum)]
        service: ServiceKind,
    },
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = &self.map {
            c.map.geojson = Some(v.clone());
        }
        if let Some(v) = &self.population {
            c.map.population = Some(v.clone());
        }
        if let Some(v) = self.clock_scale {
            c.clock_scale = v;
        }
        if let Some(v) = &self.redis {
            c.redis.url = Some(v.clone());
        }
        if let Some(v) = self.clock_epoch_ms {
            c.clock_epoch_ms = Some(v);
        }
        if let Some(v) = &self.node_id {
            c.cluster.node_id = Some(v.clone());
        }
        if let Some(v) = &self.advertise {
            c.cluster.advertise = Some(v.clone());
        }
        for (flag, slot) in [
            (&self.intake, &mut c.peers.intake),
            (&self.geo_router, &mut c.peers.geo_router),
            (&self.district, &mut c.peers.district),
            (&self.case_squad, &mut c.peers.case_squad),
            (&self.notification, &mut c.peers.notification),
        ] {
            if let Some(v) = flag {
                slot.clone_from(v);
            }
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> std::process::ExitCode {
    dispatch_runtime::init_tracing("info");
    let cli = Cli::parse();
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.print_config {
        match toml::to_string_pretty(&config) {
            Ok(s) => {
                print!("{s}");
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let command = cli.command.unwrap_or(Command::All);
    // A clock that cannot be built (a separate process on a scaled clock without the shared
    // epoch, an epoch ahead of this host's clock) is bad input too.
    let clock = match command {
        // With Redis the cluster outlives the process: a scaled clock restarted from "now"
        // would jump against the journals, so it needs the fixed epoch a separate process does.
        Command::All if config.redis.url.is_none() => standalone::embedded_clock(&config),
        Command::All => standalone::clock(&config),
        Command::Run { .. } => standalone::clock(&config),
    };
    let clock = match clock {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // A map that cannot load is bad input (exit 2), found before anything starts.
    let map = match command {
        Command::All
        | Command::Run {
            service: ServiceKind::GeoRouter,
        } => match standalone::load_map(&config.map) {
            Ok(map) => Some(Arc::new(map)),
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        Command::Run { .. } => None,
    };
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the tokio runtime: {e}"))
    });
    let result = system.block_on(serve(command, config, clock, map));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(
    command: Command,
    config: Config,
    clock: SharedClock,
    map: Option<Arc<CityMap>>,
) -> anyhow::Result<()> {
    match command {
        Command::All => {
            let map = match map {
                Some(map) => map,
                None => Arc::new(standalone::load_map(&config.map)?),
            };
            let cluster = EmbeddedCluster::start(
                map,
                ClusterConfig {
                    clock,
                    travel: config.travel,
                    positions: config.positions,
                    officers_per_district: config.officers_per_district,
                    investigators_per_squad: config.investigators_per_squad,
                    arbiters: config.arbiters,
                    listen: config.listen,
                    intake: config.intake.clone(),
                    redis_url: config.redis.url.clone(),
                    drain: std::time::Duration::from_millis(config.drain_ms),
                    outbox: config.outbox,
                    supervision: config.supervision,
                },
            )
            .await?;
            dispatch_runtime::shutdown_signal().await;
            cluster.shutdown().await;
        }
        Command::Run { service } => {
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            standalone::run_service(
                service,
                &config,
                clock,
                map,
                listener,
                dispatch_runtime::shutdown_signal(),
            )
            .await?;
        }
    }
    Ok(())
}
