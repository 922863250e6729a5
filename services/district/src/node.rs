//! The handle to the district actors of this node: every district ([`DistrictNode::start`]),
//! or those the cluster gives it ([`DistrictNode::join_cluster`]).

use std::sync::Arc;

use actix::Addr;
use actix_rt::ArbiterHandle;
use dispatch_bus::ports::Directory;
use dispatch_cluster::ClusterConfig;
use dispatch_core::clock::SharedClock;
use dispatch_core::{
    Fix, Incident, LatLng, Officer, OfficerStatus, PositionRules, ServiceArea, TravelModel,
};

#[cfg(doc)]
use crate::Error;
use crate::actor::{
    DispatchStep, DistrictActor, GetSnapshot, ReportLocation, ReportOutcome, SetStatus, Snapshot,
    Step, Submit, recover,
};
use crate::host::{Host, Table};
use crate::journal::Journal;
use crate::ownership::Ownership;
use crate::supervision::{MemoryQuarantine, QuarantineSink, SupervisionConfig, Supervisor};
use crate::{Outbox, Result};

/// How this node runs its districts.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// ETA model of the dispatch rule (defaults: circuity 1.4, 30 km/h).
    pub travel: TravelModel,
    /// Which position reports the districts trust and how long a fix ranks an officer (see
    /// [`PositionRules`]). A `service_area` of `None` is derived from the directory the node
    /// starts from ([`service_area`]). Applies to districts the journal has never seen: a
    /// district keeps the rules of its snapshot, so its replay decides as it did.
    pub positions: PositionRules,
    /// Margin around the directory's district seeds and stations in the derived service area,
    /// metres (default 10,000), on top of the largest district's equivalent-circle diameter.
    pub service_area_margin_m: f64,
    /// Officers on each district's roster. Default 20: the source document's 346 officers in
    /// Nancheng's 17 districts (Dongguan, 2012) is 20.4 per district.
    pub officers_per_district: u32,
    /// A district stores a snapshot every this many journal entries (default 256: a rebuild
    /// replays at most that many entries, a few milliseconds, and a busy district of a few
    /// hundred calls a day snapshots a few times an hour).
    pub snapshot_every: u64,
    /// When a command that makes a district panic is quarantined (default: at its 3rd panic).
    pub supervision: SupervisionConfig,
    /// Where quarantined commands are recorded (default: [`MemoryQuarantine::default`]; the
    /// server gives [`crate::supervision::RedisQuarantine`] with Redis).
    pub quarantine: Arc<dyn QuarantineSink>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            travel: TravelModel::default(),
            positions: PositionRules::default(),
            service_area_margin_m: 10_000.0,
            officers_per_district: 20,
            snapshot_every: 256,
            supervision: SupervisionConfig::default(),
            quarantine: Arc::new(MemoryQuarantine::default()),
        }
    }
}

/// The id of officer `n` (from 1) of `district_id`: `{district_id}-o{n:02}`.
pub fn officer_id(district_id: &str, n: u32) -> String {
    format!("{district_id}-o{n:02}")
}

/// How a node takes part in a cluster of district nodes ([`DistrictNode::join_cluster`]).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The Redis of the registry and the leases: the same Redis as the node's journal, whose
    /// epoch key the leases raise.
    pub redis_url: String,
    /// This node's id, unique in the cluster (a pod or host name; 1 to 64 ASCII letters,
    /// digits, `.`, `_`, `-`, see `dispatch_cluster::check_node_id`).
    pub node_id: String,
    /// Its internal gRPC address (`host:port`), registered for the callers and peers that look
    /// it up.
    pub addr: String,
    /// Heartbeat, TTL, reconcile, lease and renewal periods.
    pub timings: ClusterConfig,
}

/// Cloneable handle to this node's district actors; gRPC handlers and in-process callers use
/// it alike.
#[derive(Clone)]
pub struct DistrictNode {
    inner: Arc<Inner>,
}

struct Inner {
    /// Supervises every district actor of the node.
    supervisor: Arc<Supervisor>,
    table: Arc<Table>,
    /// In a cluster: the ownership loop, stopped (without a handoff) with the last handle.
    ownership: Option<Ownership>,
    /// The delivered-mark tracker, stopped with the last handle.
    _tracker: AbortOnDrop,
}

/// Aborts its task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for DistrictNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistrictNode")
            .field("node_id", &self.node_id())
            .field("districts", &self.inner.table.ids().len())
            .finish()
    }
}

/// The city's service area as the directory knows it: the rectangle of every district's seed
/// point and every station, widened by `margin_m` plus the diameter of a circle as large as
/// the largest district (a seed may lie anywhere in its district, so the district may reach
/// that far beyond it). `None` for an empty directory.
///
/// The directory carries no district outlines, hence the widening; a position refused by it
/// lies well outside every district (and 0,0 lies outside any real city's).
pub fn service_area(directory: &Directory, margin_m: f64) -> Option<ServiceArea> {
    let largest_m2 = directory
        .districts
        .iter()
        .map(|d| d.area_m2)
        .filter(|a| a.is_finite() && *a > 0.0)
        .fold(0.0, f64::max);
    let diameter_m = 2.0 * (largest_m2 / std::f64::consts::PI).sqrt();
    let points = directory
        .districts
        .iter()
        .map(|d| d.center)
        .chain(directory.stations.iter().map(|s| s.location));
    ServiceArea::around(points, margin_m + diameter_m)
}

/// `config` with the service area derived from `directory` unless it gives one.
fn with_service_area(mut config: NodeConfig, directory: &Directory) -> NodeConfig {
    if config.positions.service_area.is_none() {
        config.positions.service_area = service_area(directory, config.service_area_margin_m);
    }
    config
}

fn directory_ids(directory: &Directory) -> Vec<String> {
    directory
        .districts
        .iter()
        .map(|d| d.id.to_string())
        .collect()
}

impl DistrictNode {
    /// The handle over `table`, with the delivered-mark tracker of `host` running.
    fn new(host: &Host, table: Arc<Table>, ownership: Option<Ownership>) -> Self {
        Self {
            inner: Arc::new(Inner {
                supervisor: host.supervisor().clone(),
                table,
                ownership,
                _tracker: AbortOnDrop(host.track()),
            }),
        }
    }

    /// Starts one actor per district of `directory`, round-robin over `arbiters` (at least one):
    /// this node owns every district (the embedded mode, or one district process). Each
    /// district is rebuilt from `journal`, taking it over ([`recover`]: snapshot plus the
    /// entries after it, at a new epoch); a district the journal has never seen starts with a
    /// roster of `config.officers_per_district` off-duty officers. Effects of entries not yet
    /// delivered are delivered again.
    ///
    /// A panic in a district's handler rebuilds that district alone; a command that panics
    /// `config.supervision.quarantine_after` times is quarantined into `config.quarantine`
    /// ([`crate::supervision`]).
    ///
    /// Errors: `config.travel` or `config.supervision` invalid, no arbiter given, or the
    /// journal not answering (as a message naming the rule or the district).
    pub async fn start(
        directory: &Directory,
        config: NodeConfig,
        clock: SharedClock,
        outbox: Outbox,
        journal: Arc<dyn Journal>,
        arbiters: &[ArbiterHandle],
    ) -> std::result::Result<Self, String> {
        let config = with_service_area(config, directory);
        let host = Host::new(config, clock, outbox, journal, arbiters)?;
        let table = Table::new(directory_ids(directory), None);
        let mut replayed = 0;
        for d in &directory.districts {
            let district_id = d.id.as_str();
            let recovered = recover(host.journal(), host.fresh(district_id))
                .await
                .map_err(|e| format!("district {district_id}: {e}"))?;
            replayed += recovered.loaded.entries.len();
            host.run(&table, recovered, None);
        }
        tracing::info!(
            districts = directory.districts.len(),
            replayed,
            "district actors started from their journals"
        );
        Ok(Self::new(&host, Arc::new(table), None))
    }

    /// Joins the cluster of district nodes described by `cluster` and runs the districts of
    /// `directory` it is given: this node registers (membership), and an ownership loop takes
    /// each district rendezvous hashing assigns it among the live nodes by acquiring its lease,
    /// rebuilds it from `journal` at the lease's epoch (snapshot plus tail; effects not yet
    /// delivered are delivered again), renews the leases, and drops a district whose lease is
    /// lost or whose append is refused as fenced, or hands it over (snapshot, release) when
    /// rendezvous moves it to another node. Returns once registered; districts are taken in the
    /// background within moments. Commands for a district this node does not own get
    /// [`Error::NotOwner`]. `journal` must be a Redis journal on `cluster.redis_url` (the
    /// lease raises the epoch the journal checks). Must run inside an actix system.
    ///
    /// Dropping the last handle stops the loop without handing anything over (what a crash
    /// looks like to the others); [`DistrictNode::shutdown`] leaves gracefully.
    ///
    /// Errors: as [`DistrictNode::start`]; a bad node id or zero period; Redis not taking the
    /// registration.
    #[allow(clippy::too_many_arguments)]
    pub async fn join_cluster(
        directory: &Directory,
        config: NodeConfig,
        clock: SharedClock,
        outbox: Outbox,
        journal: Arc<dyn Journal>,
        arbiters: &[ArbiterHandle],
        cluster: ClusterOptions,
    ) -> std::result::Result<Self, String> {
        let config = with_service_area(config, directory);
        let host = Arc::new(Host::new(config, clock, outbox, journal, arbiters)?);
        let (table, ownership) = Ownership::start(host.clone(), directory_ids(directory), cluster)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self::new(&host, table, Some(ownership)))
    }

    /// Like [`DistrictNode::start`], on `count` new arbiters (threads) of the current actix
    /// system; the caller stops them (`Arbiter::stop`) when the node shuts down.
    ///
    /// Errors: as [`DistrictNode::start`]; `count` must be at least 1.
    pub async fn start_on_new_arbiters(
        directory: &Directory,
        config: NodeConfig,
        clock: SharedClock,
        outbox: Outbox,
        journal: Arc<dyn Journal>,
        count: usize,
    ) -> std::result::Result<(Self, Vec<actix_rt::Arbiter>), String> {
        let arbiters: Vec<actix_rt::Arbiter> =
            (0..count).map(|_| actix_rt::Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(actix_rt::Arbiter::handle).collect();
        match Self::start(directory, config, clock, outbox, journal, &handles).await {
            Ok(node) => Ok((node, arbiters)),
            Err(e) => {
                for arbiter in arbiters {
                    arbiter.stop();
                }
                Err(e)
            }
        }
    }

    /// Leaves the cluster gracefully: stops taking districts, deregisters (the others see it at
    /// once), then snapshots and releases each district it owns, so the next owners take them
    /// over at once rather than after the lease. Nothing for a node that runs every district
    /// ([`DistrictNode::start`]). Commands for its districts get [`Error::NotOwner`]
    /// afterwards.
    pub async fn shutdown(&self) {
        if let Some(ownership) = &self.inner.ownership {
            ownership.leave().await;
        }
    }

    /// Whether this node is ready to follow the cluster: in a cluster, whether it receives the
    /// membership and lease announcements now (false while the subscription is lost, e.g. Redis
    /// is down); always true for a node that runs every district.
    pub fn is_subscribed(&self) -> bool {
        self.inner
            .ownership
            .as_ref()
            .is_none_or(Ownership::is_subscribed)
    }

    /// The node's supervisor: its [`Supervisor::stats`] count panics and quarantined
    /// commands.
    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.inner.supervisor
    }

    /// Whether this node is ready to take calls: [`DistrictNode::is_subscribed`], and in a
    /// cluster a first ownership pass done since it joined (it runs the districts rendezvous
    /// gives it whose leases were free; those another node still holds follow on their release
    /// or expiry). Always true for a node that runs every district.
    pub fn is_ready(&self) -> bool {
        self.is_subscribed()
            && self
                .inner
                .ownership
                .as_ref()
                .is_none_or(Ownership::is_settled)
    }

    /// This node's id in the cluster; `None` for a node that runs every district.
    pub fn node_id(&self) -> Option<&str> {
        self.inner.ownership.as_ref().map(Ownership::node_id)
    }

    /// The live district nodes of the cluster and their internal addresses, as this node's
    /// membership sees them (to reach a district's owner); `None` for a node that runs every
    /// district.
    pub fn members(&self) -> Option<tokio::sync::watch::Receiver<dispatch_cluster::LiveView>> {
        self.inner.table.members()
    }

    fn district(&self, id: &str) -> Result<Addr<DistrictActor>> {
        self.inner.table.district(id)
    }

    fn officer_district(&self, officer_id: &str) -> Result<Addr<DistrictActor>> {
        self.inner.table.officer_district(officer_id)
    }

    /// Ids of the districts this node runs now, sorted.
    pub fn district_ids(&self) -> Vec<String> {
        self.inner.table.ids()
    }

    /// Hands a routed incident to its district (idempotent on the incident id). What it causes
    /// (the order, the incident's updates) is published in the caller's trace context
    /// ([`dispatch_bus::trace::current`]).
    pub async fn submit(&self, incident: Incident) -> Result<Incident> {
        let addr = self.district(incident.district_id.as_str())?;
        let trace = dispatch_bus::trace::current();
        addr.send(Submit { incident, trace }).await?
    }

    /// Sets an officer Available, Busy or OffDuty.
    pub async fn set_status(
        &self,
        officer_id: &str,
        status: OfficerStatus,
        location: Option<LatLng>,
    ) -> Result<Officer> {
        let addr = self.officer_district(officer_id)?;
        addr.send(SetStatus {
            officer_id: officer_id.to_owned(),
            status,
            location,
        })
        .await?
    }

    /// Records a GPS report: stored, or ignored as stale (see
    /// [`dispatch_core::DistrictState::report_location`]).
    ///
    /// Errors: the district's refusal of an untrusted fix is
    /// `Error::Domain(district::Error::BadFix)`; otherwise as the other commands.
    pub async fn report_location(&self, officer_id: &str, fix: Fix) -> Result<ReportOutcome> {
        let addr = self.officer_district(officer_id)?;
        addr.send(ReportLocation {
            officer_id: officer_id.to_owned(),
            fix,
        })
        .await?
    }

    /// Acknowledge, arrive or clear one dispatch. What it causes is published in the caller's
    /// trace context ([`dispatch_bus::trace::current`]).
    pub async fn step(&self, officer_id: &str, dispatch_id: &str, step: Step) -> Result<Incident> {
        let addr = self.officer_district(officer_id)?;
        addr.send(DispatchStep {
            officer_id: officer_id.to_owned(),
            dispatch_id: dispatch_id.to_owned(),
            step,
            trace: dispatch_bus::trace::current(),
        })
        .await?
    }

    /// A copy of one district's officers, queue and active incidents.
    pub async fn snapshot(&self, district_id: &str) -> Result<Snapshot> {
        Ok(self.district(district_id)?.send(GetSnapshot).await?)
    }
}
