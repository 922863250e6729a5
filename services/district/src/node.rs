//! The handle to every district actor of this node.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use dispatch_bus::ports::Directory;
use dispatch_core::clock::SharedClock;
use dispatch_core::district::{DistrictConfig, DistrictState};
use dispatch_core::{Incident, LatLng, Officer, OfficerStatus, TravelModel};

use crate::actor::{
    DispatchStep, DistrictActor, GetSnapshot, Recovered, ReportLocation, SetStatus, Snapshot, Step,
    Submit, recover,
};
use crate::delivery::{Marks, track};
use crate::journal::Journal;
use crate::supervision::{MemoryQuarantine, QuarantineSink, SupervisionConfig, Supervisor};
use crate::{Error, Outbox, Result};

/// How this node runs its districts.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// ETA model of the dispatch rule (defaults: circuity 1.4, 30 km/h).
    pub travel: TravelModel,
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

/// Cloneable handle to this node's district actors; gRPC handlers and in-process callers use
/// it alike.
#[derive(Clone)]
pub struct DistrictNode {
    districts: Arc<HashMap<String, Addr<DistrictActor>>>,
    officers: Arc<HashMap<String, String>>,
    /// Supervises every district actor of the node.
    supervisor: Arc<Supervisor>,
    /// The delivered-mark tracker, stopped with the last handle.
    _tracker: Arc<AbortOnDrop>,
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for DistrictNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistrictNode")
            .field("districts", &self.districts.len())
            .field("officers", &self.officers.len())
            .finish()
    }
}

impl DistrictNode {
    /// Starts one actor per district of `directory`, round-robin over `arbiters` (at least one).
    /// Each district is rebuilt from `journal` (snapshot plus the entries after it, see
    /// [`crate::actor::recover`]); a district the journal has never seen starts with a roster of
    /// `config.officers_per_district` off-duty officers. Effects of entries not yet delivered
    /// are delivered again.
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
        config.travel.validate()?;
        config
            .supervision
            .validate()
            .map_err(|e| format!("supervision.{e}"))?;
        let supervisor = Arc::new(Supervisor::new(
            config.supervision,
            config.quarantine.clone(),
        ));
        if arbiters.is_empty() {
            return Err("at least one arbiter is needed to run district actors".into());
        }
        let now = clock.now();
        let mut districts = HashMap::new();
        let mut officers = HashMap::new();
        let mut replayed = 0;
        let marks = Arc::new(Marks::default());
        for (i, d) in directory.districts.iter().enumerate() {
            let district_id = d.id.as_str();
            let mut fresh = DistrictState::new(
                d.id.clone(),
                DistrictConfig {
                    travel: config.travel,
                },
            );
            for n in 1..=config.officers_per_district {
                let id = officer_id(district_id, n);
                fresh.add_officer(Officer::off_duty(id.into(), d.id.clone(), now));
            }
            let recovered = recover(journal.as_ref(), fresh)
                .await
                .map_err(|e| format!("district {district_id}: {e}"))?;
            replayed += recovered.loaded.entries.len();
            // The roster is the journal's (a snapshot may predate a roster change).
            for o in recovered.state.officers() {
                officers.insert(o.id.to_string(), district_id.to_owned());
            }
            outbox.redeliver(&recovered);
            let emitted = marks.emitted(district_id);
            emitted.store(recovered.seq, std::sync::atomic::Ordering::Release);
            let (clock, outbox, journal) = (clock.clone(), outbox.clone(), journal.clone());
            let Recovered {
                state, epoch, seq, ..
            } = recovered;
            let (every, supervisor) = (config.snapshot_every, supervisor.clone());
            let addr = DistrictActor::start_in_arbiter(&arbiters[i % arbiters.len()], move |_| {
                DistrictActor::new(state, clock, outbox, journal, epoch, seq, every, emitted)
                    .supervised(supervisor)
            });
            districts.insert(district_id.to_owned(), addr);
        }
        tracing::info!(
            districts = districts.len(),
            officers = officers.len(),
            replayed,
            "district actors started from their journals"
        );
        let tracker = tokio::spawn(track(marks, outbox, journal));
        Ok(Self {
            districts: Arc::new(districts),
            officers: Arc::new(officers),
            supervisor,
            _tracker: Arc::new(AbortOnDrop(tracker)),
        })
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

    fn district(&self, id: &str) -> Result<&Addr<DistrictActor>> {
        self.districts
            .get(id)
            .ok_or_else(|| Error::UnknownDistrict(id.to_owned()))
    }

    fn officer_district(&self, officer_id: &str) -> Result<&Addr<DistrictActor>> {
        let district = self
            .officers
            .get(officer_id)
            .ok_or_else(|| Error::UnknownOfficer(officer_id.to_owned()))?;
        self.district(district)
    }

    /// The node's supervisor: its [`Supervisor::stats`] count panics and quarantined
    /// commands.
    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// Ids of this node's districts.
    pub fn district_ids(&self) -> impl Iterator<Item = &String> {
        self.districts.keys()
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

    /// Records a GPS report.
    pub async fn report_location(&self, officer_id: &str, location: LatLng) -> Result<()> {
        let addr = self.officer_district(officer_id)?;
        addr.send(ReportLocation {
            officer_id: officer_id.to_owned(),
            location,
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
