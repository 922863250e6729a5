//! Intake's incident records, the `call_id` index and the hand-off leases, as plain data (no
//! I/O). [`crate::records::MemoryRecords`] keeps one behind a lock for the embedded mode; the
//! Redis backend keeps the same rules in Lua scripts (`crate::records::redis`).
//!
//! The rules, the same on both backends:
//! - the first report of a call creates its record and takes the **hand-off lease** (the right
//!   and duty to submit the incident to its district); a concurrent report of the same call gets
//!   the same record and no lease, so concurrent duplicates cause exactly one submit;
//! - the lease expires after a set time, so a claimer that crashed or was cancelled never blocks
//!   the call: the next report of the call, or intake's sweeper, takes a free lease on a record
//!   still `ROUTED` and submits it again (the district is idempotent on the incident id);
//! - a record only moves forward: an update applies when its revision is higher;
//! - closed records (cleared, cancelled, merged) are purged after a retention period.

use std::collections::HashMap;

use dispatch_core::{
    CallId, DistrictId, Incident, IncidentId, IncidentState, StationId, Timestamp,
};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::validate::ValidCall;

/// Where the geo-router placed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Owning police district.
    pub district_id: DistrictId,
    /// Its police station.
    pub station_id: StationId,
    /// Its sub-bureau.
    pub sub_bureau_id: String,
    /// The point lay outside the map and went to the nearest district.
    pub routed_to_nearest: bool,
}

/// The `ROUTED` incident of a new call: received at `received_at`, routed at `routed_at` to
/// `placement`, named `id`.
///
/// Errors: [`Error::Lifecycle`] cannot happen (received -> routed is always allowed) but is
/// not hidden.
pub fn routed_incident(
    id: String,
    call: &ValidCall,
    placement: Placement,
    received_at: Timestamp,
    routed_at: Timestamp,
) -> Result<Incident> {
    let mut incident = Incident::received(
        id.into(),
        call.call_id.as_str().into(),
        call.category,
        call.location,
        call.description.clone(),
        received_at,
    );
    incident.transition(IncidentState::Routed, routed_at)?;
    incident.district_id = placement.district_id;
    incident.station_id = placement.station_id;
    incident.sub_bureau_id = placement.sub_bureau_id;
    incident.routed_to_nearest = placement.routed_to_nearest;
    Ok(incident)
}

/// Checks that a repeated report of a call says what the stored incident says.
///
/// Errors: [`Error::CallReused`] naming the first field that differs (`category`, `location`,
/// `description`).
pub fn check_same_call(stored: &Incident, call: &ValidCall) -> Result<()> {
    let differs = if stored.category != call.category {
        Some("category")
    } else if stored.location != call.location {
        Some("location")
    } else if stored.description != call.description {
        Some("description")
    } else {
        None
    };
    match differs {
        Some(differs) => Err(Error::CallReused {
            call_id: call.call_id.clone(),
            incident_id: stored.id.to_string(),
            differs,
        }),
        None => Ok(()),
    }
}

/// What [`IncidentStore::create`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The call was new: this record was created and the caller holds its hand-off lease.
    New(Incident),
    /// The call was already known (a concurrent report got there first): its record, no lease.
    Existing(Incident),
}

/// A hand-off lease: who holds it (an opaque token of one attempt) and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lease {
    token: String,
    until: Instant,
}

#[derive(Debug)]
struct Record {
    incident: Incident,
    lease: Option<Lease>,
}

impl Record {
    fn lease_free(&self, now: Instant) -> bool {
        self.lease.as_ref().is_none_or(|l| l.until <= now)
    }
}

/// Every incident intake created, by id and by `call_id`, with their hand-off leases.
///
/// Memory: bounded by the calls of the retention period ([`IncidentStore::purge_closed`]) plus
/// the open incidents.
#[derive(Debug, Default)]
pub struct IncidentStore {
    records: HashMap<IncidentId, Record>,
    by_call: HashMap<CallId, IncidentId>,
}

impl IncidentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of incidents.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The incident `id`.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.records.get(id).map(|r| &r.incident)
    }

    /// The incident of the call `call_id`.
    pub fn find_call(&self, call_id: &str) -> Option<&Incident> {
        self.by_call
            .get(call_id)
            .and_then(|id| self.get(id.as_str()))
    }

    /// Records the incident of a new call and gives its hand-off lease to `token` until
    /// `until`; or, when the call is already known, answers its record (and takes no lease).
    ///
    /// The same incident created again (a repeat of a command whose answer was lost) is `New`
    /// again: that attempt still holds the call.
    pub fn create(&mut self, incident: Incident, token: &str, until: Instant) -> Created {
        if let Some(existing) = self.find_call(incident.call_id.as_str()) {
            if existing.id == incident.id {
                return Created::New(existing.clone());
            }
            return Created::Existing(existing.clone());
        }
        self.by_call
            .insert(incident.call_id.clone(), incident.id.clone());
        self.records.insert(
            incident.id.clone(),
            Record {
                incident: incident.clone(),
                lease: Some(Lease {
                    token: token.to_owned(),
                    until,
                }),
            },
        );
        Created::New(incident)
    }

    /// Gives the hand-off lease of `id` to `token` until `until` when the incident is still
    /// `ROUTED` (not yet taken by its district) and nobody holds a live lease. Returns the
    /// record when the lease was taken.
    pub fn take_lease(
        &mut self,
        id: &str,
        token: &str,
        now: Instant,
        until: Instant,
    ) -> Option<Incident> {
        let record = self.records.get_mut(id)?;
        if record.incident.state != IncidentState::Routed || !record.lease_free(now) {
            return None;
        }
        record.lease = Some(Lease {
            token: token.to_owned(),
            until,
        });
        Some(record.incident.clone())
    }

    /// The hand-off attempt `token` of `id` ended: its lease is released (a lease taken over by
    /// another attempt is left alone) and the district's answer, if any, applied when newer.
    /// Returns the record as it now stands.
    pub fn handoff_done(
        &mut self,
        id: &str,
        token: &str,
        reply: Option<Incident>,
    ) -> Option<Incident> {
        let record = self.records.get_mut(id)?;
        if record.lease.as_ref().is_some_and(|l| l.token == token) {
            record.lease = None;
        }
        if let Some(reply) = reply {
            apply(record, reply);
        }
        Some(record.incident.clone())
    }

    /// Applies an update from the incident's district when its revision is higher than the
    /// stored one, so the record never goes backwards. Returns whether it was applied (false
    /// for an old revision or an incident this store does not hold).
    pub fn apply_update(&mut self, incident: Incident) -> bool {
        match self.records.get_mut(&incident.id) {
            Some(record) => apply(record, incident),
            None => false,
        }
    }

    /// Ids of incidents still `ROUTED` whose hand-off lease is free at `now`: stranded by a
    /// claimer that crashed, was cancelled or failed. At most `limit`, oldest call first.
    pub fn stranded(&self, now: Instant, limit: usize) -> Vec<String> {
        let mut out: Vec<&Incident> = self
            .records
            .values()
            .filter(|r| r.incident.state == IncidentState::Routed && r.lease_free(now))
            .map(|r| &r.incident)
            .collect();
        out.sort_by_key(|i| (i.times.received_at, i.id.clone()));
        out.into_iter()
            .take(limit)
            .map(|i| i.id.to_string())
            .collect()
    }

    /// Removes closed incidents (cleared, cancelled, merged) that closed before `before`, with
    /// their `call_id` entries; a report of such a call afterwards is a new call. Returns how
    /// many were removed.
    pub fn purge_closed(&mut self, before: Timestamp) -> usize {
        let old: Vec<IncidentId> = self
            .records
            .values()
            .filter(|r| closed_at(&r.incident).is_some_and(|t| t < before))
            .map(|r| r.incident.id.clone())
            .collect();
        for id in &old {
            if let Some(r) = self.records.remove(id) {
                self.by_call.remove(&r.incident.call_id);
            }
        }
        old.len()
    }
}

/// When a closed incident closed; `None` while it is open.
pub fn closed_at(incident: &Incident) -> Option<Timestamp> {
    if !incident.state.is_closed() {
        return None;
    }
    let t = &incident.times;
    t.cleared_at
        .or(t.cancelled_at)
        .or(t.on_scene_at)
        .or(t.routed_at)
        .or(t.received_at)
}

fn apply(record: &mut Record, incident: Incident) -> bool {
    if incident.id != record.incident.id || incident.revision <= record.incident.revision {
        return false;
    }
    record.incident = incident;
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use dispatch_core::{Category, Disposition, LatLng, Priority};

    fn call(id: &str) -> ValidCall {
        ValidCall {
            call_id: id.into(),
            category: Category::Fight,
            location: LatLng::new(23.0, 113.7).unwrap(),
            description: "two men".into(),
        }
    }

    fn placement() -> Placement {
        Placement {
            district_id: "d-3".into(),
            station_id: "st-1".into(),
            sub_bureau_id: "sb-nc".into(),
            routed_to_nearest: true,
        }
    }

    fn incident(id: &str, call_id: &str) -> Incident {
        routed_incident(
            id.into(),
            &call(call_id),
            placement(),
            Timestamp(1_000),
            Timestamp(1_250),
        )
        .unwrap()
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_new_call_becomes_a_routed_incident_with_both_times() {
        let i = incident("inc-a", "c1");
        assert_eq!(i.state, IncidentState::Routed);
        assert_eq!(i.priority, Priority::P2);
        assert_eq!(i.times.received_at, Some(Timestamp(1_000)));
        assert_eq!(i.times.routed_at, Some(Timestamp(1_250)));
        assert_eq!(
            (
                i.district_id.as_str(),
                i.station_id.as_str(),
                i.sub_bureau_id.as_str()
            ),
            ("d-3", "st-1", "sb-nc")
        );
        assert!(i.routed_to_nearest);
        assert_eq!(i.revision, 1);
    }

    #[test]
    fn the_first_report_creates_and_leases_a_concurrent_one_gets_the_record_only() {
        let t0 = Instant::now();
        let mut store = IncidentStore::new();
        let first = incident("inc-a", "c1");
        assert_eq!(
            store.create(first.clone(), "t1", secs(t0, 10)),
            Created::New(first.clone())
        );
        // A concurrent report routed the same call and made its own id: it gets the first.
        assert_eq!(
            store.create(incident("inc-b", "c1"), "t2", secs(t0, 10)),
            Created::Existing(first.clone())
        );
        assert_eq!(store.len(), 1);
        assert_eq!(store.find_call("c1"), Some(&first));
        // While the lease lives nobody else may take it.
        assert_eq!(
            store.take_lease("inc-a", "t3", secs(t0, 5), secs(t0, 15)),
            None
        );
        assert!(store.stranded(secs(t0, 5), 10).is_empty());
    }

    #[test]
    fn a_lease_of_a_claimer_that_went_away_expires_and_is_taken_once() {
        let t0 = Instant::now();
        let mut store = IncidentStore::new();
        store.create(incident("inc-a", "c1"), "t1", secs(t0, 10));
        // The claimer crashed: after expiry the record is stranded and one taker gets it.
        assert_eq!(store.stranded(secs(t0, 10), 10), ["inc-a"]);
        assert!(
            store
                .take_lease("inc-a", "t2", secs(t0, 10), secs(t0, 20))
                .is_some()
        );
        assert_eq!(
            store.take_lease("inc-a", "t3", secs(t0, 11), secs(t0, 21)),
            None
        );
        // The late first claimer ending does not release the new holder's lease.
        store.handoff_done("inc-a", "t1", None);
        assert_eq!(
            store.take_lease("inc-a", "t3", secs(t0, 12), secs(t0, 22)),
            None
        );
        // The holder failed: released at once, taken by the next report.
        store.handoff_done("inc-a", "t2", None);
        assert!(
            store
                .take_lease("inc-a", "t3", secs(t0, 12), secs(t0, 22))
                .is_some()
        );
    }

    #[test]
    fn once_the_district_has_it_nobody_hands_it_off_again() {
        let t0 = Instant::now();
        let mut store = IncidentStore::new();
        let i = incident("inc-a", "c1");
        store.create(i.clone(), "t1", secs(t0, 10));
        let mut queued = i.clone();
        queued
            .transition(IncidentState::Queued, Timestamp(2_000))
            .unwrap();
        let now = store.handoff_done("inc-a", "t1", Some(queued)).unwrap();
        assert_eq!(now.state, IncidentState::Queued);
        assert_eq!(
            store.take_lease("inc-a", "t2", secs(t0, 60), secs(t0, 70)),
            None
        );
        assert!(store.stranded(secs(t0, 60), 10).is_empty());
    }

    #[test]
    fn reusing_a_call_id_with_other_content_names_what_differs() {
        let stored = incident("inc-a", "c1");
        type Change = fn(&mut ValidCall);
        let cases: [(Change, &str); 3] = [
            (|c| c.category = Category::Theft, "category"),
            (
                |c| c.location = LatLng::new(23.0, 113.70001).unwrap(),
                "location",
            ),
            (|c| c.description.push('!'), "description"),
        ];
        for (change, field) in cases {
            let mut c = call("c1");
            change(&mut c);
            match check_same_call(&stored, &c).unwrap_err() {
                Error::CallReused {
                    call_id,
                    incident_id,
                    differs,
                } => {
                    assert_eq!(
                        (call_id.as_str(), incident_id.as_str(), differs),
                        ("c1", "inc-a", field)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(check_same_call(&stored, &call("c1")).is_ok());
    }

    #[test]
    fn updates_only_move_forward() {
        let mut store = IncidentStore::new();
        let i = incident("inc-a", "c1");
        store.create(i.clone(), "t1", Instant::now());
        let mut v = i.clone();
        v.transition(IncidentState::Queued, Timestamp(2)).unwrap();
        let queued = v.clone();
        v.transition(IncidentState::Dispatched, Timestamp(3))
            .unwrap();
        let dispatched = v.clone();
        assert!(store.apply_update(dispatched.clone()));
        assert!(
            !store.apply_update(queued),
            "revision 2 after 3 must be ignored"
        );
        assert!(
            !store.apply_update(dispatched.clone()),
            "same revision is not newer"
        );
        assert_eq!(store.get(i.id.as_str()), Some(&dispatched));
        let mut stranger = dispatched;
        stranger.id = "other-1".into();
        assert!(!store.apply_update(stranger));
        assert_eq!(store.get("other-1"), None);
    }

    #[test]
    fn closed_records_leave_after_the_retention_and_open_ones_stay() {
        let mut store = IncidentStore::new();
        let open = incident("inc-open", "c-open");
        store.create(open, "t", Instant::now());
        let mut closed = incident("inc-closed", "c-closed");
        store.create(closed.clone(), "t", Instant::now());
        for (state, at) in [
            (IncidentState::Queued, 2_000),
            (IncidentState::Dispatched, 3_000),
            (IncidentState::OnScene, 4_000),
            (IncidentState::Cleared, 5_000),
        ] {
            closed.transition(state, Timestamp(at)).unwrap();
        }
        closed.disposition = Some(Disposition::Resolved);
        assert!(store.apply_update(closed));
        assert_eq!(
            store.purge_closed(Timestamp(5_000)),
            0,
            "closed at 5,000, not before"
        );
        assert_eq!(store.purge_closed(Timestamp(5_001)), 1);
        assert_eq!(store.get("inc-closed"), None);
        assert_eq!(store.find_call("c-closed"), None);
        assert!(store.get("inc-open").is_some());
    }
}
