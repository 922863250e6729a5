//! One load-test run, start to report.
//!
//! 1. Start an embedded cluster on loopback with the scenario's scaled clock (or connect to a
//!    running one, which must run the same clock scale: `clock_scale` in its config or
//!    `DISPATCH_CLOCK_SCALE`).
//! 2. Read the directory (`GeoRouter.ListDistricts`) and every district's roster and clock
//!    (`DistrictService.GetDistrict`); take the cluster's clock (its scale and epoch) as the
//!    harness's own, so both count the same cluster time; pick the on-duty share of each roster
//!    (seeded) and start their terminals; wait until every terminal listens and has signed on.
//! 3. Send the planned calls at their times, then drain: wait until every accepted incident is
//!    cleared or the drain time has passed.
//! 4. Stop the terminals, ask the cluster where every incident ended (`Intake.GetIncident`) and
//!    how many cases the squads hold (`CaseSquad.ListCases` per station), build the report.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dispatch_bus::convert::{priority_from_wire, timestamp_from_wire};
use dispatch_core::ScaledClock;
use dispatch_core::clock::{Clock, SharedClock, WallClock};
use dispatch_map::CityMap;
use dispatch_proto::v1::{
    self, GetDistrictRequest, GetIncidentRequest, IncidentState, ListCasesRequest,
    ListDistrictsRequest, ListDistrictsResponse,
};
use dispatch_server::{ClusterConfig, EmbeddedCluster};
use futures::StreamExt;
use rand::seq::SliceRandom;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tonic::Code;

use crate::connect::{Addresses, Clients, StreamPools};
use crate::draw::{Stream, rng_for};
use crate::geography::Geography;
use crate::platform::{CallOutcome, CallProgress, CallResult, plan_calls, send_calls};
use crate::report::{
    CallCounts, EndState, IncidentRecord, Report, RunFacts, ScenarioInfo, TerminalCounts,
    TimelinePoint,
};
use crate::scenario::Scenario;
use crate::takeover::{LeaseWatch, TakeoverFacts};
use crate::terminal::{Fleet, TerminalEnv, TerminalSetup, run_terminal};
use crate::{Error, Result};

/// Longest real wait for every terminal to subscribe and sign on.
const SIGN_ON_TIMEOUT: Duration = Duration::from_secs(120);

/// Real interval of the progress log line.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Real interval of the timeline samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Concurrent RPCs when reading rosters and incidents.
const QUERY_CONCURRENCY: usize = 32;

/// Which cluster a run drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Start one in this process on a loopback port (needs an actix system, see
    /// [`crate::block_on_actix`]).
    Embedded,
    /// A running cluster at these addresses, with the same clock scale as the scenario.
    Remote(Addresses),
}

/// What a run needs.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// The scenario.
    pub scenario: Scenario,
    /// The city map (the embedded cluster's, and where calls and officers are placed).
    pub map: Arc<CityMap>,
    /// How the map was given, for the report.
    pub map_desc: String,
    /// The cluster.
    pub target: Target,
    /// Redis URL of a running cluster of district nodes: the run watches the district leases
    /// there and reports the incidents that went through a takeover ([`crate::takeover`]).
    pub redis: Option<String>,
}

/// A run's report and the per-incident records it was built from.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The report.
    pub report: Report,
    /// One record per accepted incident.
    pub incidents: Vec<IncidentRecord>,
}

/// Runs a scenario to its report.
///
/// Errors: [`Error::Setup`] when the embedded cluster does not start, [`Error::Connect`] /
/// [`Error::Rpc`] when the cluster cannot be reached or refuses a setup call,
/// [`Error::Mismatch`] when its districts are not the map's or its clock is not the
/// scenario's.
pub async fn run(input: RunInput) -> Result<RunOutput> {
    let wall = Instant::now();
    let s = &input.scenario;
    let (cluster, addresses) = match &input.target {
        Target::Embedded => {
            // The cluster in this process starts its clock now; the harness reads it back from
            // the districts like any other cluster's.
            let clock = ScaledClock::new(s.clock.scale).map_err(|e| Error::Scenario {
                key: "clock.scale".into(),
                rule: e.to_string(),
            })?;
            let config = ClusterConfig {
                clock: Arc::new(clock),
                travel: s.cluster.travel,
                officers_per_district: s.officers.per_district,
                investigators_per_squad: s.cluster.investigators_per_squad,
                ..ClusterConfig::default()
            };
            let cluster = EmbeddedCluster::start(input.map.clone(), config)
                .await
                .map_err(|e| Error::Setup(format!("embedded cluster did not start: {e:#}")))?;
            tracing::info!(addr = %cluster.addr(), "embedded cluster started");
            let addresses = Addresses::all(cluster.addr().to_string());
            (Some(cluster), addresses)
        }
        Target::Remote(a) => (None, a.clone()),
    };
    let result = drive(&input, &addresses, wall).await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    result
}

/// The directory, the cluster's clock and the officers chosen to be on duty.
struct Duty {
    directory: ListDistrictsResponse,
    clock: SharedClock,
    rostered: u64,
    terminals: Vec<TerminalSetup>,
}

async fn drive(input: &RunInput, addresses: &Addresses, wall: Instant) -> Result<RunOutput> {
    let s = &input.scenario;
    let geography = Geography::new(&input.map)?;
    let run_tag = run_tag();
    let plans = plan_calls(s, &geography, &run_tag)?;
    tracing::info!(
        calls = plans.len(),
        run_tag,
        "planned calls over {} s of cluster time ({:.0} s real)",
        s.calls.duration_s,
        s.call_phase_real_s()
    );
    let clients = Clients::connect(addresses).await?;
    let duty = choose_duty(s, &clients, &geography).await?;
    let clock = duty.clock.clone();
    let leases = match &input.redis {
        Some(url) => {
            let districts = duty
                .directory
                .districts
                .iter()
                .map(|d| d.district_id.clone())
                .collect();
            let watch = LeaseWatch::start(url, districts, clock.clone()).await?;
            tracing::info!(redis = %url, "watching the district leases");
            Some(watch)
        }
        None => None,
    };
    let streams = StreamPools::connect(addresses, duty.terminals.len()).await?;
    let fleet = Arc::new(Fleet::default());
    let env = Arc::new(TerminalEnv::new(
        s.terminal.clone(),
        clock.clone(),
        s.seed,
        clients.clone(),
        streams,
        fleet.clone(),
    )?);
    let signing_on = Instant::now();
    let mut terminals = start_terminals(env, &duty.terminals).await?;
    tracing::info!(
        terminals = duty.terminals.len(),
        rostered = duty.rostered,
        "terminals signed on in {:.1} s",
        signing_on.elapsed().as_secs_f64()
    );

    let progress = Arc::new(CallProgress::default());
    let start = tokio::time::Instant::now();
    let timeline = Arc::new(std::sync::Mutex::new(Vec::new()));
    let monitor = tokio::spawn(monitor(
        clock.clone(),
        start,
        plans.len(),
        progress.clone(),
        fleet.clone(),
        timeline.clone(),
    ));
    let results = send_calls(&plans, &clients, &clock, start, progress.clone()).await;
    let call_phase_real_s = start.elapsed().as_secs_f64();
    let accepted = progress.accepted.load(Ordering::Relaxed) as usize;
    tracing::info!(
        sent = results.len(),
        accepted,
        "calls done in {call_phase_real_s:.1} s, draining"
    );
    let ours: HashSet<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            CallOutcome::Accepted(i) => Some(i.incident_id.clone()),
            _ => None,
        })
        .collect();
    let drain_deadline = tokio::time::Instant::now() + clock.real_duration(s.calls.drain_s);
    while fleet.cleared_among(&ours) < ours.len() && tokio::time::Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(
        cleared = fleet.cleared_among(&ours),
        accepted,
        "drain over after {:.1} s",
        start.elapsed().as_secs_f64() - call_phase_real_s
    );
    monitor.abort();
    terminals.shutdown().await;

    let incidents = collect_incidents(&clients, &results, &plans, &fleet).await;
    let takeover = leases.map(|watch| {
        let end = clock.now();
        TakeoverFacts::from_log(&watch.stop(), &incidents, end)
    });
    let cases_opened = count_cases(&clients, &duty.directory, &ours).await?;
    let calls = count_calls(&results, plans.len());
    let facts = RunFacts {
        scenario: ScenarioInfo {
            name: s.name.clone(),
            seed: s.seed,
            map: input.map_desc.clone(),
            clock_scale: s.clock.scale,
            peak_per_hour: s.calls.peak_per_hour,
            duration_s: s.calls.duration_s,
            drain_s: s.calls.drain_s,
        },
        target_s: s.target.response_s,
        target_share: s.target.share,
        calls,
        call_phase_real_s,
        terminal: TerminalCounts {
            orders: fleet.orders(),
            duplicate_orders: fleet.duplicate_orders(),
            clearances: fleet.clearances(),
            errors: fleet.errors(),
        },
        cases_opened,
        officers_on_duty: duty.terminals.len() as u64,
        officers_rostered: duty.rostered,
        sub_bureau_names: duty
            .directory
            .sub_bureaus
            .iter()
            .map(|b| (b.sub_bureau_id.clone(), b.name.clone()))
            .collect(),
        wall_time_s: wall.elapsed().as_secs_f64(),
        timeline: std::mem::take(&mut *timeline.lock().unwrap_or_else(|e| e.into_inner())),
        takeover,
    };
    Ok(RunOutput {
        report: Report::build(&facts, &incidents),
        incidents,
    })
}

/// A tag that makes this run's call ids differ from earlier runs': milliseconds since the Unix
/// epoch, base 36.
fn run_tag() -> String {
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(ms % 36) as usize]);
        ms /= 36;
        if ms == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// How many of a roster of `n` go on duty: `n x share` rounded, at least one.
pub fn on_duty_count(n: usize, share: f64) -> usize {
    if n == 0 {
        0
    } else {
        ((n as f64 * share).round() as usize).clamp(1, n)
    }
}

/// Response times are read off the cluster's clock while the terminals drive by the harness's:
/// at different scales every figure would be off by their ratio, so a mismatch stops the run.
fn check_clock_scale(district: &str, cluster: f64, scenario: f64) -> Result<()> {
    if (cluster - scenario).abs() > 1e-9 * scenario {
        return Err(Error::Mismatch(format!(
            "the cluster's clock runs at scale {cluster} (district {district}) but the scenario \
             needs {scenario}: start the cluster with --clock-scale {scenario} \
             (or DISPATCH_CLOCK_SCALE={scenario})"
        )));
    }
    Ok(())
}

/// The clock one district reports (`DistrictService.GetDistrict`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct ReportedClock {
    /// Cluster seconds per real second.
    scale: f64,
    /// Cluster epoch, ms since the Unix epoch; 0 on the wall clock.
    epoch_ms: i64,
}

/// The cluster's clock, from what its districts report (in district order): every district on
/// the scenario's scale and on one epoch, which the harness then counts from too (the wall clock
/// when the cluster runs on it).
fn cluster_clock(reported: &[(String, ReportedClock)], scenario_scale: f64) -> Result<SharedClock> {
    let Some((first_district, first)) = reported.first() else {
        return Err(Error::Setup("the cluster has no districts".into()));
    };
    for (district, clock) in reported {
        check_clock_scale(district, clock.scale, scenario_scale)?;
        if clock.epoch_ms != first.epoch_ms {
            return Err(Error::Mismatch(format!(
                "district {first_district} counts cluster time from epoch {} ms but district \
                 {district} from {} ms: every process of the cluster needs the same \
                 --clock-epoch-ms",
                first.epoch_ms, clock.epoch_ms
            )));
        }
    }
    if first.epoch_ms == 0 {
        if first.scale == 1.0 {
            return Ok(Arc::new(WallClock));
        }
        return Err(Error::Mismatch(format!(
            "the cluster's clock runs at scale {} but reports no epoch (district \
             {first_district}), so the harness cannot read its time: run a dispatch-server that \
             reports clock_epoch_ms, every process with the same --clock-epoch-ms",
            first.scale
        )));
    }
    let clock = ScaledClock::anchored(first.epoch_ms, first.scale).map_err(|e| {
        Error::Mismatch(format!(
            "the cluster's clock (district {first_district}) cannot be followed: {e}"
        ))
    })?;
    Ok(Arc::new(clock))
}

/// One district's roster (officer ids, sorted) and clock.
type Roster = (String, Vec<String>, ReportedClock);

async fn choose_duty(s: &Scenario, clients: &Clients, geography: &Geography) -> Result<Duty> {
    let directory = clients
        .geo_router()
        .list_districts(ListDistrictsRequest {})
        .await
        .map_err(|st| {
            if st.code() == Code::Unimplemented {
                Error::Usage(
                    "the geo-router address does not serve dispatch.v1.GeoRouter: --cluster is \
                     for a cluster serving all five services on one address (dispatch-server \
                     all); for services on separate ports give --intake, --notification, \
                     --district, --geo-router and --case-squad"
                        .into(),
                )
            } else {
                Error::rpc("GeoRouter.ListDistricts", st)
            }
        })?
        .into_inner();
    if let Some(d) = directory
        .districts
        .iter()
        .find(|d| !geography.has_district(&d.district_id))
    {
        return Err(Error::Mismatch(format!(
            "the cluster's map {:?} has district {} which the harness's map does not; give the \
             harness the cluster's map (--map/--population or the scenario's [map])",
            directory.map_name, d.district_id
        )));
    }
    let mut ids: Vec<String> = directory
        .districts
        .iter()
        .map(|d| d.district_id.clone())
        .collect();
    ids.sort();
    let rosters: Vec<Result<Roster>> = futures::stream::iter(ids.clone())
        .map(|id| {
            let mut client = clients.district();
            async move {
                let snap = client
                    .get_district(GetDistrictRequest {
                        district_id: id.clone(),
                    })
                    .await
                    .map_err(|st| Error::rpc(format!("DistrictService.GetDistrict({id})"), st))?
                    .into_inner();
                let mut officers: Vec<String> =
                    snap.officers.into_iter().map(|o| o.officer_id).collect();
                officers.sort();
                let clock = ReportedClock {
                    scale: snap.clock_scale,
                    epoch_ms: snap.clock_epoch_ms,
                };
                Ok((id, officers, clock))
            }
        })
        .buffered(QUERY_CONCURRENCY)
        .collect()
        .await;
    let rosters: Vec<Roster> = rosters.into_iter().collect::<Result<_>>()?;
    let clocks: Vec<(String, ReportedClock)> = rosters
        .iter()
        .map(|(district, _, clock)| (district.clone(), *clock))
        .collect();
    let clock = cluster_clock(&clocks, s.clock.scale)?;
    match clock.epoch_ms() {
        Some(epoch_ms) => tracing::info!(
            epoch_ms,
            scale = clock.scale(),
            "cluster clock found: x{} from epoch {epoch_ms} ms ({:.1} s of real time ago)",
            clock.scale(),
            (WallClock.now().as_millis() - epoch_ms) as f64 / 1_000.0
        ),
        None => tracing::info!("cluster clock found: the wall clock"),
    }
    let centers: HashMap<&str, &v1::LatLng> = directory
        .districts
        .iter()
        .filter_map(|d| Some((d.district_id.as_str(), d.center.as_ref()?)))
        .collect();
    let mut roster_rng = rng_for(s.seed, Stream::Roster);
    let mut place_rng = rng_for(s.seed, Stream::StartPositions);
    let mut terminals = Vec::new();
    let mut rostered = 0;
    for (district, mut officers, _) in rosters {
        rostered += officers.len() as u64;
        officers.shuffle(&mut roster_rng);
        officers.truncate(on_duty_count(officers.len(), s.officers.on_duty_share));
        for officer_id in officers {
            let start = geography
                .point_in_district(&district, &mut place_rng)
                .or_else(|| {
                    centers
                        .get(district.as_str())
                        .and_then(|c| dispatch_core::LatLng::new(c.lat, c.lon).ok())
                })
                .ok_or_else(|| {
                    Error::Mismatch(format!("district {district} has no ground to start on"))
                })?;
            terminals.push(TerminalSetup {
                officer_id,
                start,
                index: terminals.len(),
            });
        }
    }
    if terminals.is_empty() {
        return Err(Error::Setup(
            "the cluster has no officers on its rosters, nobody can go on duty".into(),
        ));
    }
    Ok(Duty {
        directory,
        clock,
        rostered,
        terminals,
    })
}

async fn start_terminals(env: Arc<TerminalEnv>, setups: &[TerminalSetup]) -> Result<JoinSet<()>> {
    let mut set = JoinSet::new();
    let mut readies = Vec::with_capacity(setups.len());
    for setup in setups {
        let (tx, rx) = oneshot::channel();
        set.spawn(run_terminal(env.clone(), setup.clone(), tx));
        readies.push(rx);
    }
    let all = futures::future::join_all(readies);
    let results = match tokio::time::timeout(SIGN_ON_TIMEOUT, all).await {
        Ok(r) => r,
        Err(_) => {
            set.shutdown().await;
            return Err(Error::Setup(format!(
                "terminals did not sign on within {} s",
                SIGN_ON_TIMEOUT.as_secs()
            )));
        }
    };
    for r in results {
        let failure = match r {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(_) => Error::Setup("a terminal stopped before signing on".into()),
        };
        set.shutdown().await;
        return Err(failure);
    }
    Ok(set)
}

/// Logs progress every [`PROGRESS_EVERY`] and samples the timeline every [`SAMPLE_EVERY`].
async fn monitor(
    clock: SharedClock,
    start: tokio::time::Instant,
    planned: usize,
    calls: Arc<CallProgress>,
    fleet: Arc<Fleet>,
    timeline: Arc<std::sync::Mutex<Vec<TimelinePoint>>>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut last_log = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let sent = calls.sent.load(Ordering::Relaxed);
        let accepted = calls.accepted.load(Ordering::Relaxed);
        let open = accepted.saturating_sub(fleet.cleared_count() as u64);
        let point = TimelinePoint {
            t_s: (start.elapsed().as_secs_f64() * clock.scale()).round(),
            calls_sent: sent,
            open,
            busy_officers: fleet.busy(),
        };
        if let Ok(mut t) = timeline.lock() {
            t.push(point);
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = tokio::time::Instant::now();
            tracing::info!(
                "t+{:.0} s cluster: calls sent {sent}/{planned}, accepted {accepted}, failed {}, open incidents {open}, officers busy {}",
                point.t_s,
                calls.failed.load(Ordering::Relaxed),
                point.busy_officers
            );
        }
    }
}

fn count_calls(results: &[CallResult], planned: usize) -> CallCounts {
    let mut c = CallCounts {
        planned: planned as u64,
        sent: results.len() as u64,
        ..CallCounts::default()
    };
    for r in results {
        match r.outcome {
            CallOutcome::Accepted(_) => c.accepted += 1,
            CallOutcome::Duplicate(_) => c.duplicates += 1,
            CallOutcome::Failed(_) => c.failed += 1,
        }
    }
    c
}

/// Where an incident was at the end, from `Intake.GetIncident`.
pub fn end_state(found: std::result::Result<&v1::Incident, &tonic::Status>) -> EndState {
    match found {
        Ok(i) => match IncidentState::try_from(i.state) {
            Ok(IncidentState::Queued) => EndState::Queued,
            Ok(IncidentState::Dispatched) => EndState::Dispatched,
            Ok(IncidentState::OnScene) => EndState::OnScene,
            Ok(IncidentState::Cleared) => EndState::Cleared,
            Ok(other) => EndState::Lost(format!("ended in state {}", other.as_str_name())),
            Err(_) => EndState::Lost(format!("ended in unknown state {}", i.state)),
        },
        Err(status) if status.code() == Code::NotFound => {
            EndState::Lost("not found by Intake.GetIncident".into())
        }
        Err(status) => EndState::Lost(format!("Intake.GetIncident failed: {status}")),
    }
}

async fn get_incident(
    clients: &Clients,
    incident_id: &str,
) -> std::result::Result<v1::Incident, tonic::Status> {
    let mut last = tonic::Status::unknown("not asked");
    for _ in 0..3 {
        match clients
            .intake()
            .get_incident(GetIncidentRequest {
                incident_id: incident_id.to_string(),
            })
            .await
        {
            Ok(r) => return Ok(r.into_inner()),
            Err(st) if matches!(st.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                last = st;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(st) => return Err(st),
        }
    }
    Err(last)
}

async fn collect_incidents(
    clients: &Clients,
    results: &[CallResult],
    plans: &[crate::platform::CallPlan],
    fleet: &Fleet,
) -> Vec<IncidentRecord> {
    let first_orders = fleet.first_orders();
    let accepted: Vec<(&CallResult, &v1::Incident)> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            CallOutcome::Accepted(i) => Some((r, i.as_ref())),
            _ => None,
        })
        .collect();
    futures::stream::iter(accepted)
        .map(|(call, at_intake)| {
            let first = first_orders.get(&at_intake.incident_id);
            let plan_sub = plans[call.plan].sub_bureau_id.clone();
            async move {
                let found = get_incident(clients, &at_intake.incident_id).await;
                let end = end_state(found.as_ref());
                if let EndState::Lost(why) = &end {
                    tracing::warn!(incident = %at_intake.incident_id, "lost: {why}");
                }
                let latest = found.as_ref().unwrap_or(at_intake);
                let pick = |a: &str, b: &str| {
                    if a.is_empty() {
                        b.to_string()
                    } else {
                        a.to_string()
                    }
                };
                let times = latest.times.as_ref();
                let at = |f: fn(&v1::IncidentTimes) -> Option<&prost_types::Timestamp>| {
                    times.and_then(f).map(timestamp_from_wire)
                };
                let waited = first.is_some_and(|f| f.officer_free_since > call.sent);
                IncidentRecord {
                    incident_id: at_intake.incident_id.clone(),
                    priority: priority_from_wire(latest.priority, "priority").ok(),
                    sub_bureau_id: pick(&latest.sub_bureau_id, &plan_sub),
                    district_id: pick(&latest.district_id, &at_intake.district_id),
                    end,
                    received_at: at(|t| t.received_at.as_ref()),
                    dispatched_at: at(|t| t.dispatched_at.as_ref()),
                    on_scene_at: at(|t| t.on_scene_at.as_ref()),
                    system_latency_ms: first.filter(|_| !waited).map(|f| {
                        f.received
                            .saturating_duration_since(call.sent)
                            .as_secs_f64()
                            * 1_000.0
                    }),
                    waited_for_officer: waited,
                }
            }
        })
        .buffered(QUERY_CONCURRENCY)
        .collect()
        .await
}

/// Cases the case squads opened for this run's incidents.
async fn count_cases(
    clients: &Clients,
    directory: &ListDistrictsResponse,
    ours: &HashSet<String>,
) -> Result<u64> {
    let counts: Vec<Result<u64>> = futures::stream::iter(directory.stations.iter())
        .map(|st| {
            let mut client = clients.case_squad();
            async move {
                let r = client
                    .list_cases(ListCasesRequest {
                        station_id: st.station_id.clone(),
                    })
                    .await
                    .map_err(|e| {
                        Error::rpc(format!("CaseSquad.ListCases({})", st.station_id), e)
                    })?;
                Ok(r.into_inner()
                    .cases
                    .iter()
                    .filter(|c| ours.contains(&c.incident_id))
                    .count() as u64)
            }
        })
        .buffered(QUERY_CONCURRENCY)
        .collect()
        .await;
    counts.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_on_another_clock_scale_is_refused() {
        assert!(check_clock_scale("d-1", 60.0, 60.0).is_ok());
        let Err(err) = check_clock_scale("d-1", 1.0, 60.0) else {
            panic!("scale 1 against 60 must be refused")
        };
        assert!(matches!(err, Error::Mismatch(_)));
        assert!(err.to_string().contains("--clock-scale 60"), "{err}");
        // A cluster too old to report its scale answers 0.
        assert!(check_clock_scale("d-1", 0.0, 60.0).is_err());
    }

    #[test]
    fn the_harness_counts_from_the_clusters_epoch() {
        // An hour before now: a cluster started earlier.
        let epoch_ms = WallClock.now().as_millis() - 3_600_000;
        let at = |district: &str, scale: f64, epoch_ms: i64| {
            (district.to_string(), ReportedClock { scale, epoch_ms })
        };
        let clock = cluster_clock(
            &[at("d-1", 60.0, epoch_ms), at("d-2", 60.0, epoch_ms)],
            60.0,
        )
        .expect("one epoch, the scenario's scale");
        assert_eq!(clock.epoch_ms(), Some(epoch_ms));
        assert_eq!(clock.scale(), 60.0);

        let Err(err) = cluster_clock(
            &[at("d-1", 60.0, epoch_ms), at("d-2", 60.0, epoch_ms + 1)],
            60.0,
        ) else {
            panic!("two epochs in one cluster must be refused")
        };
        assert_eq!(err.exit_code(), 2, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("d-1") && text.contains("d-2") && text.contains("--clock-epoch-ms"),
            "{text}"
        );
    }

    #[test]
    fn a_cluster_clock_the_harness_cannot_follow_is_refused() {
        let at =
            |scale: f64, epoch_ms: i64| [("d-1".to_string(), ReportedClock { scale, epoch_ms })];
        // The wall clock reports epoch 0 and is followed as such.
        let wall = cluster_clock(&at(1.0, 0), 1.0).expect("the wall clock");
        assert_eq!((wall.epoch_ms(), wall.scale()), (None, 1.0));
        // A scaled clock without an epoch (a cluster from before epochs were reported).
        let Err(err) = cluster_clock(&at(60.0, 0), 60.0) else {
            panic!("a scaled clock without an epoch must be refused")
        };
        assert!(matches!(err, Error::Mismatch(_)), "{err}");
        assert!(err.to_string().contains("no epoch"), "{err}");
        // An epoch a day ahead of this host's clock.
        let ahead = WallClock.now().as_millis() + 86_400_000;
        let Err(err) = cluster_clock(&at(60.0, ahead), 60.0) else {
            panic!("an epoch a day ahead must be refused")
        };
        assert!(err.to_string().contains(&ahead.to_string()), "{err}");
        // The scale is checked first, with the existing advice.
        let Err(err) = cluster_clock(&at(1.0, 0), 60.0) else {
            panic!("scale 1 against 60 must be refused")
        };
        assert!(err.to_string().contains("--clock-scale 60"), "{err}");
        assert!(matches!(cluster_clock(&[], 60.0), Err(Error::Setup(_))));
    }

    #[test]
    fn on_duty_count_rounds_and_keeps_one() {
        assert_eq!(on_duty_count(20, 1.0 / 3.0), 7); // 6.67 -> 7
        assert_eq!(on_duty_count(20, 0.3), 6);
        assert_eq!(on_duty_count(2, 0.1), 1, "at least one per district");
        assert_eq!(on_duty_count(0, 0.5), 0);
        assert_eq!(on_duty_count(5, 1.0), 5);
    }

    #[test]
    fn end_states_follow_the_lost_rule() {
        let with = |s: IncidentState| v1::Incident {
            state: s as i32,
            ..v1::Incident::default()
        };
        assert_eq!(
            end_state(Ok(&with(IncidentState::Queued))),
            EndState::Queued
        );
        assert_eq!(
            end_state(Ok(&with(IncidentState::Cleared))),
            EndState::Cleared
        );
        assert_eq!(
            end_state(Ok(&with(IncidentState::OnScene))),
            EndState::OnScene
        );
        for stuck in [
            IncidentState::Received,
            IncidentState::Routed,
            IncidentState::Cancelled,
        ] {
            assert!(matches!(end_state(Ok(&with(stuck))), EndState::Lost(_)));
        }
        let nf = tonic::Status::not_found("no such incident");
        assert!(matches!(end_state(Err(&nf)), EndState::Lost(w) if w.contains("not found")));
    }

    #[test]
    fn run_tags_are_short_base36() {
        let t = run_tag();
        assert!(!t.is_empty() && t.len() <= 10, "{t}");
        assert!(
            t.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }
}
