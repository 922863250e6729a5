//! Intake's incident records and the `call_id` index. Plain data, no I/O; the service keeps
//! one behind a lock and never awaits while holding it.
//!
//! Idempotency on `call_id` is decided here: the first report of a call creates the record
//! (and the caller submits it to the district); any later or concurrent report of the same
//! call gets the same record. A record whose submit failed stays `ROUTED` and the next report
//! of the call takes over re-submitting it; while a submit is in flight nobody else submits, so
//! concurrent duplicates cause exactly one submit.

use std::collections::HashMap;

use dispatch_core::{Incident, IncidentState, Timestamp};

use crate::error::{Error, Result};
use crate::validate::ValidCall;

/// Where the geo-router placed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Owning police district.
    pub district_id: String,
    /// Its police station.
    pub station_id: String,
    /// Its sub-bureau.
    pub sub_bureau_id: String,
    /// The point lay outside the map and went to the nearest district.
    pub routed_to_nearest: bool,
}

/// What a report of a call should do next, as decided under the store's lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The call is new and this record was created for it; the caller must submit it.
    Created(Incident),
    /// The call was known: answer this incident as a duplicate. With `resubmit`, its earlier
    /// submit failed and the caller now owns submitting it again.
    Known {
        /// The record as it stands.
        incident: Incident,
        /// The caller must submit it (no other submit is in flight).
        resubmit: bool,
    },
}

#[derive(Debug)]
struct Record {
    incident: Incident,
    /// A submit to the district is in flight.
    submitting: bool,
}

/// Every incident intake created, by id and by `call_id`.
#[derive(Debug)]
pub struct IncidentStore {
    prefix: String,
    last_seq: u64,
    records: HashMap<String, Record>,
    by_call: HashMap<String, String>,
}

impl IncidentStore {
    /// An empty store naming incidents `{prefix}{seq:08}`, `seq` from 1.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            last_seq: 0,
            records: HashMap::new(),
            by_call: HashMap::new(),
        }
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

    /// The claim on an already known call, `None` for a new call (route it, then
    /// [`insert_or_claim`](Self::insert_or_claim)).
    ///
    /// Errors: [`Error::CallReused`] when the call is known with different content.
    pub fn claim_existing(&mut self, call: &ValidCall) -> Result<Option<Claim>> {
        let Some(id) = self.by_call.get(&call.call_id) else {
            return Ok(None);
        };
        let Some(record) = self.records.get_mut(id) else {
            return Ok(None);
        };
        claim(record, call).map(Some)
    }

    /// Creates the incident of a new call placed by the router (received at `received_at`,
    /// routed at `routed_at`), or, when a concurrent report of the same call got here first,
    /// claims that one.
    ///
    /// Errors: [`Error::CallReused`]; [`Error::Lifecycle`] cannot happen (received -> routed is
    /// always allowed) but is not hidden.
    pub fn insert_or_claim(
        &mut self,
        call: &ValidCall,
        placement: Placement,
        received_at: Timestamp,
        routed_at: Timestamp,
    ) -> Result<Claim> {
        if let Some(claim) = self.claim_existing(call)? {
            return Ok(claim);
        }
        let seq = self.last_seq + 1;
        let mut incident = Incident::received(
            format!("{}{seq:08}", self.prefix),
            call.call_id.clone(),
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
        self.last_seq = seq;
        self.by_call
            .insert(call.call_id.clone(), incident.id.clone());
        self.records.insert(
            incident.id.clone(),
            Record {
                incident: incident.clone(),
                submitting: true,
            },
        );
        Ok(Claim::Created(incident))
    }

    /// The submit of `id` ended; when the district answered (`reply`), that incident is applied
    /// if newer. Returns the record as it now stands.
    pub fn submit_done(&mut self, id: &str, reply: Option<Incident>) -> Option<Incident> {
        let record = self.records.get_mut(id)?;
        record.submitting = false;
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
}

fn apply(record: &mut Record, incident: Incident) -> bool {
    if incident.id != record.incident.id || incident.revision <= record.incident.revision {
        return false;
    }
    record.incident = incident;
    true
}

fn claim(record: &mut Record, call: &ValidCall) -> Result<Claim> {
    let stored = &record.incident;
    let differs = if stored.category != call.category {
        Some("category")
    } else if stored.location != call.location {
        Some("location")
    } else if stored.description != call.description {
        Some("description")
    } else {
        None
    };
    if let Some(differs) = differs {
        return Err(Error::CallReused {
            call_id: call.call_id.clone(),
            incident_id: stored.id.clone(),
            differs,
        });
    }
    let resubmit = stored.state == IncidentState::Routed && !record.submitting;
    if resubmit {
        record.submitting = true;
    }
    Ok(Claim::Known {
        incident: record.incident.clone(),
        resubmit,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dispatch_core::{Category, LatLng, Priority};

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

    fn created(store: &mut IncidentStore, c: &ValidCall) -> Incident {
        match store
            .insert_or_claim(c, placement(), Timestamp(1_000), Timestamp(1_250))
            .unwrap()
        {
            Claim::Created(i) => i,
            other => panic!("not created: {other:?}"),
        }
    }

    #[test]
    fn a_new_call_becomes_a_routed_incident_with_both_times() {
        let mut store = IncidentStore::new("inc-");
        let i = created(&mut store, &call("c1"));
        assert_eq!(i.id, "inc-00000001");
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
        assert_eq!(created(&mut store, &call("c2")).id, "inc-00000002");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_duplicate_waits_while_the_submit_is_in_flight_and_resubmits_after_a_failure() {
        let mut store = IncidentStore::new("x-");
        let i = created(&mut store, &call("c1"));
        // Submit in flight: a duplicate must not submit again.
        let dup = store.claim_existing(&call("c1")).unwrap().unwrap();
        assert_eq!(
            dup,
            Claim::Known {
                incident: i.clone(),
                resubmit: false
            }
        );
        // The same race decided at insert time gives the same answer.
        let dup = store
            .insert_or_claim(&call("c1"), placement(), Timestamp(0), Timestamp(0))
            .unwrap();
        assert!(matches!(
            dup,
            Claim::Known {
                resubmit: false,
                ..
            }
        ));
        // The submit failed: the next report takes it over, exactly once.
        assert_eq!(
            store.submit_done(&i.id, None).unwrap().state,
            IncidentState::Routed
        );
        let retry = store.claim_existing(&call("c1")).unwrap().unwrap();
        assert!(matches!(retry, Claim::Known { resubmit: true, .. }));
        let other = store.claim_existing(&call("c1")).unwrap().unwrap();
        assert!(matches!(
            other,
            Claim::Known {
                resubmit: false,
                ..
            }
        ));
        // Once the district has it (QUEUED), nobody resubmits.
        let mut queued = i.clone();
        queued
            .transition(IncidentState::Queued, Timestamp(2_000))
            .unwrap();
        assert_eq!(
            store.submit_done(&i.id, Some(queued)).unwrap().state,
            IncidentState::Queued
        );
        assert!(matches!(
            store.claim_existing(&call("c1")).unwrap().unwrap(),
            Claim::Known {
                resubmit: false,
                ..
            }
        ));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn reusing_a_call_id_with_other_content_names_what_differs() {
        let mut store = IncidentStore::new("inc-");
        created(&mut store, &call("c1"));
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
            match store.claim_existing(&c).unwrap_err() {
                Error::CallReused {
                    call_id,
                    incident_id,
                    differs,
                } => {
                    assert_eq!(
                        (call_id.as_str(), incident_id.as_str(), differs),
                        ("c1", "inc-00000001", field)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn updates_only_move_forward() {
        let mut store = IncidentStore::new("inc-");
        let i = created(&mut store, &call("c1"));
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
        assert_eq!(store.get(&i.id), Some(&dispatched));
        let mut stranger = dispatched;
        stranger.id = "other-1".into();
        assert!(!store.apply_update(stranger));
        assert_eq!(store.get("other-1"), None);
    }
}
