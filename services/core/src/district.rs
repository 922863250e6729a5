//! One police district as a pure state machine: its officers, its queue, its dispatches.
//!
//! DESIGN.md section 4: one actor per district alone mutates that district's state. The actor
//! is a thin shell around [`DistrictState`]: it feeds in one request with the cluster time,
//! gets back the answer plus a list of [`Effect`]s, and delivers those (orders to terminals,
//! incident changes to the command center, cases to the case squad). Nothing here does I/O,
//! reads a clock or allocates ids at random, so the same requests in the same order give the
//! same state and the same effects, which event-sourced takeover (DESIGN.md section 5) needs.
//!
//! The rules:
//! - an incident is dispatched as soon as a dispatchable officer exists (work-conserving), to
//!   the one with the smallest ETA, officers with a fresh fix before those whose last fix is
//!   old ([`crate::dispatch::nearest_available`]);
//! - position reports are checked ([`PositionRules`]): untrusted ones are refused, and a fix
//!   older than the officer's current one is ignored;
//! - otherwise it waits in the [`IncidentQueue`], and whenever an officer becomes dispatchable
//!   (signs on, reports a first position, clears, is released by a cancel) the queue is served
//!   head first: highest priority, then the oldest call;
//! - every handler is idempotent on its natural key (incident id, dispatch id): a repeated or
//!   late message answers with the current copy and no effects (DESIGN.md section 5).

pub mod command;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dispatch::{Candidate, Freshness, nearest_available};
use crate::incident::TransitionError;
use crate::officer::StatusError;
use crate::position::{Fix, FixError, PositionRules};
use crate::queue::{IncidentQueue, QueueKey};
use crate::{
    CallId, CaseId, Category, DispatchId, Disposition, DistrictId, Incident, IncidentId,
    IncidentState, LatLng, Officer, OfficerId, OfficerStatus, Priority, Timestamp, TravelModel,
};

/// Tunables of one district. Check `travel` with [`TravelModel::validate`] and `positions`
/// with [`PositionRules::validate`] when they come from a file.
///
/// Kept in the district's snapshots, so a replay runs under the rules the entries were
/// accepted under; fields added later take their defaults in older snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistrictConfig {
    /// How ETAs are estimated (circuity 1.4, 30 km/h by default; see [`TravelModel`]).
    pub travel: TravelModel,
    /// Which position reports are trusted, and how long a fix ranks an officer (see
    /// [`PositionRules`]).
    pub positions: PositionRules,
}

/// What became of a position report the district did not refuse.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    /// Stored as the officer's position, with the effects of serving the queue (a first
    /// position may make a signed-on officer dispatchable). Usually no effects.
    Stored(Vec<Effect>),
    /// Ignored: the fix is older than the officer's current one (GPS reports overtaken on
    /// the way, or a terminal replaying its buffer). Nothing changes and nothing is logged.
    Stale {
        /// The fix time of the officer's current position.
        current_fix_at: Timestamp,
    },
}

/// An order sending one officer to one incident, for the officer's terminal.
/// Mirrors `dispatch.v1.DispatchOrder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchOrder {
    /// `{district_id}/{incident_id}/{n}`, n = 1 for the incident's first dispatch
    /// ([`DispatchId::new`]); the idempotency key of acknowledge / arrive / clear.
    pub dispatch_id: DispatchId,
    /// The incident.
    pub incident_id: IncidentId,
    /// The officer ordered.
    pub officer_id: OfficerId,
    /// The dispatching district.
    pub district_id: DistrictId,
    /// Urgency of the incident.
    pub priority: Priority,
    /// What the caller reported.
    pub category: Category,
    /// Where to go, WGS84.
    pub location: LatLng,
    /// Free text from the call taker.
    pub description: String,
    /// Estimated travel time from the officer's last known position, seconds (cluster clock).
    pub eta_s: f64,
    /// When the order was given (cluster clock).
    pub dispatched_at: Timestamp,
}

/// Something the actor must deliver after a call, in the order given.
///
/// Order within one call follows what happened: first the change of the incident the call was
/// about, then, for every incident the queue handed out, its `IncidentChanged` (state
/// `Dispatched`) followed by its `Order`. So `submit` that dispatches at once yields
/// `IncidentChanged(Queued)`, `IncidentChanged(Dispatched)`, `Order`; `clear` yields
/// `IncidentChanged(Cleared)`, then `OpenCase` for a case disposition, then any dispatches.
/// The last `IncidentChanged` of an incident in one call equals the stored copy, and its
/// revision is higher than any earlier snapshot of that incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Deliver to the officer's terminal.
    Order(DispatchOrder),
    /// The incident's new snapshot (revision bumped), for the command center and intake.
    IncidentChanged(Incident),
    /// Cleared as a criminal or administrative case: hand to the case squad of the incident's
    /// station (`station_id`), as the source document's reform prescribes.
    OpenCase(Incident),
}

/// Why a district refused a request. Nothing changes when a call fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No officer of that id on this district's roster.
    #[error("unknown officer {0:?}")]
    UnknownOfficer(OfficerId),
    /// No dispatch of that id in this district.
    #[error("unknown dispatch {0:?}")]
    UnknownDispatch(DispatchId),
    /// No incident of that id in this district.
    #[error("unknown incident {0:?}")]
    UnknownIncident(IncidentId),
    /// The officer acknowledges, arrives at or clears a dispatch that sent someone else.
    #[error("dispatch {dispatch_id:?} is not assigned to officer {officer_id:?}")]
    NotYourDispatch {
        /// Who asked.
        officer_id: OfficerId,
        /// The dispatch they named.
        dispatch_id: DispatchId,
    },
    /// The submitted incident's id is already taken here by another call: an id reused after
    /// a restart must never be answered with the old incident (and nobody dispatched).
    #[error(
        "incident id {incident_id:?} is already taken by call {known_call_id:?}, not {call_id:?}"
    )]
    IdTaken {
        /// The incident id.
        incident_id: IncidentId,
        /// The call that holds the id.
        known_call_id: CallId,
        /// The call that was submitted with it.
        call_id: CallId,
    },
    /// The submitted incident is routed to another district (or to none).
    #[error("incident {incident_id:?} is routed to district {district_id:?}, not to this one")]
    WrongDistrict {
        /// The incident.
        incident_id: IncidentId,
        /// The district it is routed to.
        district_id: DistrictId,
    },
    /// Only `Available`, `Busy` and `OffDuty` can be set by hand; the dispatch states are
    /// set by the dispatch flow.
    #[error("officer status {0:?} cannot be set directly, only Available, Busy or OffDuty")]
    StatusNotSettable(OfficerStatus),
    /// The officer is on a dispatch; it must be cleared (or the incident cancelled) first.
    #[error("officer {officer_id:?} is {status:?} on a dispatch; clear it first")]
    OfficerEngaged {
        /// The officer.
        officer_id: OfficerId,
        /// Their current status.
        status: OfficerStatus,
    },
    /// A repeated clearance names another disposition than the one applied: the first
    /// clearance stands (its case may already be open), and the repeat is refused.
    #[error("incident {incident_id:?} is already cleared as {applied:?}, not {asked:?}")]
    ClearedOtherwise {
        /// The incident.
        incident_id: IncidentId,
        /// The disposition it was cleared with.
        applied: Disposition,
        /// The disposition the repeat named.
        asked: Disposition,
    },
    /// A position the district does not trust: a fix time in the future, an implausible
    /// accuracy, or a place outside the city ([`PositionRules`]). [`FixError::field`] names
    /// the field.
    #[error(transparent)]
    BadFix(#[from] FixError),
    /// The incident's lifecycle forbids the step (e.g. clearing before arrival).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The officer's lifecycle forbids the step. Defensive: the district checks engagement
    /// before it changes a status, so this means its state was inconsistent.
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// Result of a district call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An incident with the district's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    incident: Incident,
    /// Dispatches made so far; the next dispatch id ends in `/{dispatches + 1}`.
    dispatches: u32,
}

/// Who a dispatch sent where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DispatchRef {
    incident_id: IncidentId,
    officer_id: OfficerId,
}

/// The state one district actor wraps: roster, queue, active and closed incidents.
///
/// Invariants, kept by every method and checked after every step of random operation
/// sequences by the property tests (`district/tests/properties.rs`):
/// - every submitted incident is exactly one of queued, active (dispatched or on scene) or
///   closed, and is never dropped;
/// - an active incident has exactly one officer, whose `incident_id` and `dispatch_id` point
///   back at it; an officer is on at most one incident;
/// - the queue holds exactly the `Queued` incidents, in dispatch order;
/// - while the queue is not empty, no officer is dispatchable (work-conserving).
///
/// Memory: closed incidents and their dispatch ids are kept so late or repeated messages get
/// their idempotent answer. At ~1 KB per incident and a busy district's few hundred calls a
/// day this is small, but it grows without bound; pruning after a retention period comes with
/// event-sourced snapshots (DESIGN.md section 5).
///
/// Serializable as a whole: a snapshot of the district's event log (DESIGN.md section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistrictState {
    id: DistrictId,
    config: DistrictConfig,
    officers: BTreeMap<OfficerId, Officer>,
    incidents: BTreeMap<IncidentId, Record>,
    queue: IncidentQueue,
    active: BTreeSet<IncidentId>,
    dispatches: BTreeMap<DispatchId, DispatchRef>,
}

impl DistrictState {
    /// An empty district `id` (no officers, no incidents).
    pub fn new(id: DistrictId, config: DistrictConfig) -> Self {
        Self {
            id,
            config,
            officers: BTreeMap::new(),
            incidents: BTreeMap::new(),
            queue: IncidentQueue::new(),
            active: BTreeSet::new(),
            dispatches: BTreeMap::new(),
        }
    }

    /// The district id.
    pub fn id(&self) -> &DistrictId {
        &self.id
    }

    /// The district's tunables.
    pub fn config(&self) -> &DistrictConfig {
        &self.config
    }

    /// Puts an officer on the roster (at start-up), replacing a free officer of the same id.
    ///
    /// An officer given in a dispatch status (`Dispatched`, `Acknowledged`, `OnScene`) names a
    /// dispatch this district does not have, so they join `Available` with no incident. An
    /// officer of this id who is on a dispatch here is left as they are: the dispatch must keep
    /// its officer. This does not dispatch; if incidents may be waiting, call
    /// [`dispatch_waiting`](Self::dispatch_waiting) after the roster is loaded.
    pub fn add_officer(&mut self, mut officer: Officer) {
        if self.officers.get(&officer.id).is_some_and(is_engaged) {
            return;
        }
        if is_engaged(&officer) {
            officer.status = OfficerStatus::Available;
        }
        officer.incident_id = None;
        officer.dispatch_id = None;
        self.officers.insert(officer.id.clone(), officer);
    }

    /// Takes a routed incident (state `Routed`, `district_id` = this district) into the queue
    /// (-> `Queued`, `queued_at` stamped) and dispatches it at once if an officer is free.
    /// Returns the incident as it now stands (`Dispatched` or `Queued`) and the effects, in
    /// order: `IncidentChanged(Queued)`, then if dispatched `IncidentChanged(Dispatched)` and
    /// `Order`.
    ///
    /// Idempotent on the incident id: a known id of the same call returns the current copy and
    /// no effects, whatever the incident's state now (intake may redeliver).
    ///
    /// Errors: [`Error::IdTaken`] when the id is known here with another `call_id`;
    /// [`Error::WrongDistrict`] when routed elsewhere; [`Error::Transition`] when the
    /// incident is not `Routed`.
    pub fn submit(
        &mut self,
        incident: Incident,
        now: Timestamp,
    ) -> Result<(Incident, Vec<Effect>)> {
        if let Some(record) = self.incidents.get(&incident.id) {
            if record.incident.call_id != incident.call_id {
                return Err(Error::IdTaken {
                    incident_id: incident.id,
                    known_call_id: record.incident.call_id.clone(),
                    call_id: incident.call_id,
                });
            }
            return Ok((record.incident.clone(), Vec::new()));
        }
        if incident.district_id != self.id {
            return Err(Error::WrongDistrict {
                incident_id: incident.id,
                district_id: incident.district_id,
            });
        }
        let mut incident = incident;
        incident.transition(IncidentState::Queued, now)?;
        // Age counts from the call, so the wait that counts against response time decides.
        let since = incident.times.received_at.unwrap_or(now);
        self.queue.push(QueueKey {
            priority: incident.priority,
            since,
            incident_id: incident.id.clone(),
        });
        let id = incident.id.clone();
        let mut effects = vec![Effect::IncidentChanged(incident.clone())];
        self.incidents.insert(
            id.clone(),
            Record {
                incident,
                dispatches: 0,
            },
        );
        self.serve_queue(now, &mut effects);
        let current = self.incident(id.as_str()).cloned();
        Ok((current.ok_or(Error::UnknownIncident(id))?, effects))
    }

    /// Signs an officer on (`Available`), onto a self-initiated task (`Busy`) or off
    /// (`OffDuty`), recording `location` if given. Signing on with a position, or giving a
    /// first position while `Available`, serves the queue, so the returned officer may already
    /// be `Dispatched` (with the `IncidentChanged` and `Order` effects).
    ///
    /// Setting the status the officer already has is not an error: it only records the
    /// position (terminals retry). The position is taken as fixed at `now`, of unstated
    /// accuracy. Signing on without one (or before any) leaves the officer `Available` but not
    /// dispatchable until their first fix ([`crate::dispatch::not_dispatchable`]).
    ///
    /// Errors: [`Error::StatusNotSettable`] for a dispatch status; [`Error::UnknownOfficer`];
    /// [`Error::BadFix`] for a `location` outside the service area;
    /// [`Error::OfficerEngaged`] when the officer is on a dispatch (even to go `Available`:
    /// that would abandon the incident, which only `clear` or a cancel may end).
    pub fn set_officer_status(
        &mut self,
        officer_id: &OfficerId,
        status: OfficerStatus,
        location: Option<LatLng>,
        now: Timestamp,
    ) -> Result<(Officer, Vec<Effect>)> {
        if !matches!(
            status,
            OfficerStatus::Available | OfficerStatus::Busy | OfficerStatus::OffDuty
        ) {
            return Err(Error::StatusNotSettable(status));
        }
        if let Some(at) = &location {
            self.config.positions.check_area(at)?;
        }
        let officer = self
            .officers
            .get_mut(officer_id)
            .ok_or_else(|| Error::UnknownOfficer(officer_id.clone()))?;
        if is_engaged(officer) {
            return Err(Error::OfficerEngaged {
                officer_id: officer_id.clone(),
                status: officer.status,
            });
        }
        if officer.status != status {
            officer.set_status(status, now)?;
        }
        if let Some(at) = location {
            officer.set_location(at, now);
        }
        let mut effects = Vec::new();
        self.serve_queue(now, &mut effects);
        let officer = self
            .officers
            .get(officer_id)
            .cloned()
            .ok_or_else(|| Error::UnknownOfficer(officer_id.clone()))?;
        Ok((officer, effects))
    }

    /// Records a position report received at `now` (any status; a report does not change the
    /// status), after checking it against the district's [`PositionRules`]. A fix without a
    /// fix time is taken as fixed at `now`.
    ///
    /// A fix older than the officer's current one is ignored ([`Reported::Stale`]): the
    /// position already held is newer. A fix of the same time replaces it (a repeat).
    /// Otherwise it is stored ([`Reported::Stored`]) with effects, because a first position
    /// makes a signed-on officer dispatchable: if incidents are waiting, the queue is served
    /// at once (`IncidentChanged`, `Order`).
    ///
    /// Errors: [`Error::UnknownOfficer`]; [`Error::BadFix`] (see [`PositionRules::check`]).
    /// Nothing changes then.
    pub fn report_location(
        &mut self,
        officer_id: &OfficerId,
        fix: &Fix,
        now: Timestamp,
    ) -> Result<Reported> {
        let officer = self
            .officers
            .get_mut(officer_id)
            .ok_or_else(|| Error::UnknownOfficer(officer_id.clone()))?;
        let fixed_at = self.config.positions.check(fix, now)?;
        if let Some(current_fix_at) = officer.location_at.filter(|t| fixed_at < *t) {
            return Ok(Reported::Stale { current_fix_at });
        }
        officer.set_fix(fix.location, fixed_at, fix.accuracy_m);
        let mut effects = Vec::new();
        self.serve_queue(now, &mut effects);
        Ok(Reported::Stored(effects))
    }

    /// The officer acknowledges the order: officer -> `Acknowledged` (en route), the
    /// incident's `acknowledged_at` is stamped and its revision bumped; it stays `Dispatched`.
    /// Effects: `IncidentChanged`.
    ///
    /// A repeat, or an acknowledgement arriving after the officer arrived or cleared, is a
    /// no-op returning the current copy.
    ///
    /// Errors: [`Error::UnknownOfficer`], [`Error::UnknownDispatch`],
    /// [`Error::NotYourDispatch`]; [`Error::Transition`] when the incident was cancelled.
    pub fn acknowledge(
        &mut self,
        officer_id: &OfficerId,
        dispatch_id: &DispatchId,
        now: Timestamp,
    ) -> Result<(Incident, Vec<Effect>)> {
        let (incident, officer) = self.work_on(officer_id, dispatch_id)?;
        match incident.state {
            IncidentState::Dispatched if officer.status == OfficerStatus::Dispatched => {
                officer.set_status(OfficerStatus::Acknowledged, now)?;
                incident.times.acknowledged_at = Some(now);
                incident.revision += 1;
                Ok(changed(incident))
            }
            IncidentState::Dispatched | IncidentState::OnScene | IncidentState::Cleared => {
                Ok((incident.clone(), Vec::new()))
            }
            _ => Err(refused(incident, IncidentState::Dispatched)),
        }
    }

    /// The officer is on scene: officer -> `OnScene` at the incident's location, incident ->
    /// `OnScene` (`on_scene_at` stamped: response time ends here). Arriving without an
    /// acknowledgement acknowledges implicitly (`acknowledged_at` stamped if missing), with
    /// one revision bump for the whole step. Effects: `IncidentChanged`.
    ///
    /// A repeat, or an arrival reported after clearing, is a no-op returning the current copy.
    ///
    /// Errors: [`Error::UnknownOfficer`], [`Error::UnknownDispatch`],
    /// [`Error::NotYourDispatch`]; [`Error::Transition`] when the incident was cancelled.
    pub fn arrive(
        &mut self,
        officer_id: &OfficerId,
        dispatch_id: &DispatchId,
        now: Timestamp,
    ) -> Result<(Incident, Vec<Effect>)> {
        let (incident, officer) = self.work_on(officer_id, dispatch_id)?;
        match incident.state {
            IncidentState::Dispatched => {
                // Check both lifecycles before touching either, so a failure changes nothing.
                if !matches!(
                    officer.status,
                    OfficerStatus::Dispatched | OfficerStatus::Acknowledged
                ) {
                    return Err(StatusError {
                        id: officer.id.clone(),
                        from: officer.status,
                        to: OfficerStatus::OnScene,
                    }
                    .into());
                }
                incident.transition(IncidentState::OnScene, now)?;
                incident.times.acknowledged_at.get_or_insert(now);
                if officer.status == OfficerStatus::Dispatched {
                    officer.set_status(OfficerStatus::Acknowledged, now)?;
                }
                officer.set_status(OfficerStatus::OnScene, now)?;
                officer.set_location(incident.location, now);
                Ok(changed(incident))
            }
            IncidentState::OnScene | IncidentState::Cleared => Ok((incident.clone(), Vec::new())),
            _ => Err(refused(incident, IncidentState::OnScene)),
        }
    }

    /// The officer closes the incident: incident -> `Cleared` with `disposition`, officer ->
    /// `Available` at the incident's location, then the queue is served (highest priority,
    /// then oldest, to the nearest free officer, which is often this one). Effects, in order:
    /// `IncidentChanged(Cleared)`, `OpenCase` when the disposition opens a case
    /// ([`Disposition::opens_case`]), then `IncidentChanged(Dispatched)` + `Order` per dispatch.
    /// A case-opening disposition also sets the incident's `case_id` to
    /// [`CaseId::for_incident`], the id the case squad opens the case under.
    ///
    /// Clearing requires arrival: the disposition is judged on scene and response time is
    /// measured to `on_scene_at`, so clearing a `Dispatched` incident is refused with
    /// [`Error::Transition`]. An order called off before arrival is a cancel
    /// ([`cancel`](Self::cancel)), not a clearance.
    ///
    /// A repeat is a no-op returning the cleared copy (the first disposition stands).
    ///
    /// Errors: [`Error::UnknownOfficer`], [`Error::UnknownDispatch`],
    /// [`Error::NotYourDispatch`], [`Error::Transition`] (not yet on scene, or cancelled).
    pub fn clear(
        &mut self,
        officer_id: &OfficerId,
        dispatch_id: &DispatchId,
        disposition: Disposition,
        now: Timestamp,
    ) -> Result<(Incident, Vec<Effect>)> {
        let (incident, officer) = self.work_on(officer_id, dispatch_id)?;
        if incident.state == IncidentState::Cleared {
            return match incident.disposition {
                Some(applied) if applied != disposition => Err(Error::ClearedOtherwise {
                    incident_id: incident.id.clone(),
                    applied,
                    asked: disposition,
                }),
                _ => Ok((incident.clone(), Vec::new())),
            };
        }
        if officer.status != OfficerStatus::OnScene && incident.state == IncidentState::OnScene {
            return Err(StatusError {
                id: officer.id.clone(),
                from: officer.status,
                to: OfficerStatus::Available,
            }
            .into());
        }
        incident.transition(IncidentState::Cleared, now)?;
        incident.disposition = Some(disposition);
        if disposition.opens_case() {
            incident.case_id = Some(CaseId::for_incident(&incident.station_id, &incident.id));
        }
        officer.set_status(OfficerStatus::Available, now)?;
        officer.set_location(incident.location, now);
        let (cleared, mut effects) = changed(incident);
        self.active.remove(&cleared.id);
        if disposition.opens_case() {
            effects.push(Effect::OpenCase(cleared.clone()));
        }
        self.serve_queue(now, &mut effects);
        Ok((cleared, effects))
    }

    /// Calls an incident off (intake's `CancelIncident`): a queued incident leaves the queue;
    /// a dispatched or on-scene one releases its officer to `Available` (where they are) and
    /// the queue is served. The returned snapshot keeps `officer_id` / `dispatch_id`, so the
    /// notifier can tell that officer the order is void. Effects: `IncidentChanged(Cancelled)`,
    /// then any dispatches. A repeat is a no-op.
    ///
    /// Errors: [`Error::UnknownIncident`]; [`Error::Transition`] when already cleared or merged.
    pub fn cancel(
        &mut self,
        incident_id: &IncidentId,
        now: Timestamp,
    ) -> Result<(Incident, Vec<Effect>)> {
        let record = self
            .incidents
            .get_mut(incident_id)
            .ok_or_else(|| Error::UnknownIncident(incident_id.clone()))?;
        let incident = &mut record.incident;
        if incident.state == IncidentState::Cancelled {
            return Ok((incident.clone(), Vec::new()));
        }
        if !Incident::allows(incident.state, IncidentState::Cancelled) {
            return Err(refused(incident, IncidentState::Cancelled));
        }
        let engaged = incident
            .officer_id
            .as_ref()
            .and_then(|o| self.officers.get_mut(o))
            .filter(|o| o.dispatch_id.is_some() && o.dispatch_id == incident.dispatch_id);
        if let Some(officer) = engaged {
            officer.set_status(OfficerStatus::Available, now)?;
        }
        incident.transition(IncidentState::Cancelled, now)?;
        let (cancelled, mut effects) = changed(incident);
        self.queue.remove(incident_id.as_str());
        self.active.remove(incident_id);
        self.serve_queue(now, &mut effects);
        Ok((cancelled, effects))
    }

    /// Serves the queue: while incidents wait and an officer is dispatchable, the head of the
    /// queue goes to its nearest officer. Every mutating call already does this; the actor
    /// calls it after loading the roster with [`add_officer`](Self::add_officer).
    /// Effects: `IncidentChanged(Dispatched)` + `Order` per dispatch.
    pub fn dispatch_waiting(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.serve_queue(now, &mut effects);
        effects
    }

    /// An officer of the roster, by id (an [`OfficerId`] or a `&str`).
    pub fn officer(&self, id: &(impl AsRef<str> + ?Sized)) -> Option<&Officer> {
        self.officers.get(id.as_ref())
    }

    /// The roster, by officer id.
    pub fn officers(&self) -> impl Iterator<Item = &Officer> {
        self.officers.values()
    }

    /// Waiting incidents in dispatch order (priority, then age, then id).
    pub fn queued(&self) -> impl Iterator<Item = &Incident> {
        self.queue
            .iter()
            .filter_map(|k| self.incidents.get(&k.incident_id))
            .map(|r| &r.incident)
    }

    /// The queue itself (keys in dispatch order, length).
    pub fn queue(&self) -> &IncidentQueue {
        &self.queue
    }

    /// Dispatched and on-scene incidents, by incident id.
    pub fn active(&self) -> impl Iterator<Item = &Incident> {
        self.active
            .iter()
            .filter_map(|id| self.incidents.get(id))
            .map(|r| &r.incident)
    }

    /// Any incident this district took: queued, active or closed.
    ///
    /// By id (an [`IncidentId`] or a `&str`).
    pub fn incident(&self, id: &(impl AsRef<str> + ?Sized)) -> Option<&Incident> {
        self.incidents.get(id.as_ref()).map(|r| &r.incident)
    }

    /// Every incident this district took, by incident id.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values().map(|r| &r.incident)
    }

    /// The incident of `dispatch_id` and the officer it sent, checking that `officer_id` is
    /// that officer and the dispatch is the incident's current one.
    fn work_on(
        &mut self,
        officer_id: &OfficerId,
        dispatch_id: &DispatchId,
    ) -> Result<(&mut Incident, &mut Officer)> {
        let officer = self
            .officers
            .get_mut(officer_id)
            .ok_or_else(|| Error::UnknownOfficer(officer_id.clone()))?;
        let d = self
            .dispatches
            .get(dispatch_id)
            .ok_or_else(|| Error::UnknownDispatch(dispatch_id.clone()))?;
        let record = self
            .incidents
            .get_mut(&d.incident_id)
            .ok_or_else(|| Error::UnknownIncident(d.incident_id.clone()))?;
        // A dispatch superseded by a later one (re-dispatch, a later issue) is no longer theirs.
        let current = record.incident.dispatch_id.as_ref() == Some(dispatch_id);
        if &d.officer_id != officer_id || !current {
            return Err(Error::NotYourDispatch {
                officer_id: officer_id.clone(),
                dispatch_id: dispatch_id.clone(),
            });
        }
        Ok((&mut record.incident, officer))
    }

    fn serve_queue(&mut self, now: Timestamp, effects: &mut Vec<Effect>) {
        while let Some(head) = self.queue.peek() {
            let Some(record) = self.incidents.get(&head.incident_id) else {
                // Unreachable: the queue only holds stored incidents. Dropping the stray key
                // keeps the loop finite.
                self.queue.pop();
                continue;
            };
            let freshness = Freshness {
                now,
                max_fix_age_s: self.config.positions.max_fix_age_s,
            };
            let Some(candidate) = nearest_available(
                self.officers.values(),
                &record.incident.location,
                &self.config.travel,
                freshness,
            ) else {
                return;
            };
            let incident_id = head.incident_id.clone();
            if self.assign(&incident_id, candidate, now, effects).is_err() {
                return;
            }
            self.queue.remove(incident_id.as_str());
        }
    }

    /// Dispatches `candidate` to the queued incident `incident_id` (left in the queue: the
    /// caller removes it). Both lifecycles are checked before either changes, so an error
    /// (not reachable while the invariants hold) changes nothing.
    fn assign(
        &mut self,
        incident_id: &IncidentId,
        candidate: Candidate,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) -> Result<()> {
        let record = self
            .incidents
            .get_mut(incident_id)
            .ok_or_else(|| Error::UnknownIncident(incident_id.clone()))?;
        let officer = self
            .officers
            .get_mut(&candidate.officer_id)
            .ok_or_else(|| Error::UnknownOfficer(candidate.officer_id.clone()))?;
        if !OfficerStatus::allows(officer.status, OfficerStatus::Dispatched) {
            return Err(StatusError {
                id: officer.id.clone(),
                from: officer.status,
                to: OfficerStatus::Dispatched,
            }
            .into());
        }
        let incident = &mut record.incident;
        incident.transition(IncidentState::Dispatched, now)?;
        officer.set_status(OfficerStatus::Dispatched, now)?;
        record.dispatches += 1;
        let dispatch_id = DispatchId::new(&self.id, incident_id, record.dispatches);
        officer.incident_id = Some(incident_id.clone());
        officer.dispatch_id = Some(dispatch_id.clone());
        incident.officer_id = Some(officer.id.clone());
        incident.dispatch_id = Some(dispatch_id.clone());
        self.dispatches.insert(
            dispatch_id.clone(),
            DispatchRef {
                incident_id: incident_id.clone(),
                officer_id: officer.id.clone(),
            },
        );
        self.active.insert(incident_id.clone());
        effects.push(Effect::IncidentChanged(incident.clone()));
        effects.push(Effect::Order(DispatchOrder {
            dispatch_id,
            incident_id: incident_id.clone(),
            officer_id: officer.id.clone(),
            district_id: self.id.clone(),
            priority: incident.priority,
            category: incident.category,
            location: incident.location,
            description: incident.description.clone(),
            eta_s: candidate.eta_s,
            dispatched_at: now,
        }));
        Ok(())
    }
}

/// The answer and effects of a call that changed `incident` once.
fn changed(incident: &Incident) -> (Incident, Vec<Effect>) {
    (
        incident.clone(),
        vec![Effect::IncidentChanged(incident.clone())],
    )
}

/// The lifecycle of `incident` does not allow going `to`.
fn refused(incident: &Incident, to: IncidentState) -> Error {
    Error::Transition(TransitionError {
        id: incident.id.clone(),
        from: incident.state,
        to,
    })
}

/// On a dispatch: `Dispatched`, `Acknowledged` or `OnScene`.
fn is_engaged(officer: &Officer) -> bool {
    matches!(
        officer.status,
        OfficerStatus::Dispatched | OfficerStatus::Acknowledged | OfficerStatus::OnScene
    )
}

#[cfg(test)]
mod tests;

pub use command::{Command, Entry, Reply};
