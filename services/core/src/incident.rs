//! The incident record and its lifecycle:
//! `Received -> Routed -> Queued -> Dispatched -> OnScene -> Cleared`, or `Cancelled` /
//! `Merged` from any open state. Every transition stamps its time.

use serde::{Deserialize, Serialize};

use crate::{
    CallId, CaseId, Category, DispatchId, DistrictId, IncidentId, LatLng, OfficerId, Priority,
    StationId, Timestamp,
};

/// Where an incident is in its lifecycle. Ordered by progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IncidentState {
    /// Accepted by intake.
    Received,
    /// Located in a district.
    Routed,
    /// Waiting in its district's queue.
    Queued,
    /// An officer has been ordered to it.
    Dispatched,
    /// An officer is there.
    OnScene,
    /// Closed with a disposition.
    Cleared,
    /// Called off before clearing.
    Cancelled,
    /// Folded into a duplicate.
    Merged,
}

impl IncidentState {
    /// Cleared, cancelled or merged: nothing more happens to it.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            IncidentState::Cleared | IncidentState::Cancelled | IncidentState::Merged
        )
    }
}

/// How an incident was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Dealt with on the spot.
    Resolved,
    /// Handed to the station's case squad as a criminal case.
    CriminalCase,
    /// Handed to the station's case squad as an administrative case.
    AdministrativeCase,
    /// Nothing needed police.
    FalseAlarm,
    /// Passed to another agency.
    Referred,
}

impl Disposition {
    /// True for the dispositions that open a case at the case squad.
    pub fn opens_case(self) -> bool {
        matches!(
            self,
            Disposition::CriminalCase | Disposition::AdministrativeCase
        )
    }
}

/// When the incident entered each state (cluster clock); `None` until it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentTimes {
    /// Accepted by intake.
    pub received_at: Option<Timestamp>,
    /// Located in a district.
    pub routed_at: Option<Timestamp>,
    /// Entered its district's queue.
    pub queued_at: Option<Timestamp>,
    /// Latest dispatch order.
    pub dispatched_at: Option<Timestamp>,
    /// The dispatched officer acknowledged (the state stays `Dispatched`).
    pub acknowledged_at: Option<Timestamp>,
    /// First officer arrived.
    pub on_scene_at: Option<Timestamp>,
    /// Closed with a disposition.
    pub cleared_at: Option<Timestamp>,
    /// Called off.
    pub cancelled_at: Option<Timestamp>,
}

/// One 110 call after intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Cluster-wide id, assigned by intake.
    pub id: IncidentId,
    /// The 110 platform's id of the call.
    pub call_id: CallId,
    /// What the caller reported.
    pub category: Category,
    /// Urgency, from the category.
    pub priority: Priority,
    /// Where, WGS84.
    pub location: LatLng,
    /// Free text from the call taker.
    pub description: String,
    /// Owning district, once routed; empty before.
    pub district_id: DistrictId,
    /// Police station of that district; empty before routing.
    pub station_id: StationId,
    /// Sub-bureau of that district.
    pub sub_bureau_id: String,
    /// Outside the map, given to the nearest district.
    pub routed_to_nearest: bool,
    /// Lifecycle state.
    pub state: IncidentState,
    /// Officer of the latest dispatch.
    pub officer_id: Option<OfficerId>,
    /// Latest dispatch.
    pub dispatch_id: Option<DispatchId>,
    /// Set when cleared.
    pub disposition: Option<Disposition>,
    /// The case the station's case squad opens for it: set by the district when it clears the
    /// incident with a disposition that opens a case ([`Disposition::opens_case`]), to
    /// [`CaseId::for_incident`]; `None` otherwise. Absent in snapshots written before case ids
    /// were assigned, which load as `None`.
    #[serde(default)]
    pub case_id: Option<CaseId>,
    /// Time of each transition.
    pub times: IncidentTimes,
    /// Bumped at every change; readers keep the highest revision.
    pub revision: u64,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("incident {id} cannot go from {from:?} to {to:?}")]
pub struct TransitionError {
    /// The incident.
    pub id: IncidentId,
    /// Its state.
    pub from: IncidentState,
    /// The state asked for.
    pub to: IncidentState,
}

impl Incident {
    /// A freshly received incident.
    pub fn received(
        id: IncidentId,
        call_id: CallId,
        category: Category,
        location: LatLng,
        description: String,
        at: Timestamp,
    ) -> Self {
        Self {
            id,
            call_id,
            category,
            priority: category.priority(),
            location,
            description,
            district_id: DistrictId::default(),
            station_id: StationId::default(),
            sub_bureau_id: String::new(),
            routed_to_nearest: false,
            state: IncidentState::Received,
            officer_id: None,
            dispatch_id: None,
            disposition: None,
            case_id: None,
            times: IncidentTimes {
                received_at: Some(at),
                ..IncidentTimes::default()
            },
            revision: 0,
        }
    }

    /// Whether the lifecycle allows `from -> to`.
    pub fn allows(from: IncidentState, to: IncidentState) -> bool {
        use IncidentState::*;
        match (from, to) {
            (Received, Routed) | (Routed, Queued) | (Queued, Dispatched) => true,
            // Re-dispatch after an order went unanswered (later issue) goes back to the queue.
            (Dispatched, OnScene) | (Dispatched, Queued) | (OnScene, Cleared) => true,
            (f, Cancelled | Merged) => !f.is_closed(),
            _ => false,
        }
    }

    /// Moves to `to` at `at`, stamping the time and bumping the revision.
    /// Errors with [`TransitionError`] when the lifecycle forbids it; the incident is unchanged.
    pub fn transition(&mut self, to: IncidentState, at: Timestamp) -> Result<(), TransitionError> {
        if !Self::allows(self.state, to) {
            return Err(TransitionError {
                id: self.id.clone(),
                from: self.state,
                to,
            });
        }
        let slot = match to {
            IncidentState::Received => &mut self.times.received_at,
            IncidentState::Routed => &mut self.times.routed_at,
            IncidentState::Queued => &mut self.times.queued_at,
            IncidentState::Dispatched => &mut self.times.dispatched_at,
            IncidentState::OnScene => &mut self.times.on_scene_at,
            IncidentState::Cleared => &mut self.times.cleared_at,
            IncidentState::Cancelled | IncidentState::Merged => &mut self.times.cancelled_at,
        };
        // The first queueing and first arrival are what response time is measured from/to.
        if slot.is_none() || matches!(to, IncidentState::Dispatched) {
            *slot = Some(at);
        }
        self.state = to;
        self.revision += 1;
        Ok(())
    }

    /// Response time: on scene minus received, seconds of cluster time; `None` before arrival.
    pub fn response_time_s(&self) -> Option<f64> {
        Some(
            self.times
                .on_scene_at?
                .seconds_since(self.times.received_at?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        Incident::received(
            "I1".into(),
            "C1".into(),
            Category::Theft,
            LatLng::new(23.0, 113.7).unwrap(),
            String::new(),
            Timestamp(1_000),
        )
    }

    #[test]
    fn full_lifecycle_stamps_every_transition() {
        let mut i = incident();
        assert_eq!(i.priority, Priority::P2);
        let steps = [
            (IncidentState::Routed, 1_100),
            (IncidentState::Queued, 1_200),
            (IncidentState::Dispatched, 1_300),
            (IncidentState::OnScene, 181_000),
            (IncidentState::Cleared, 900_000),
        ];
        for (s, t) in steps {
            i.transition(s, Timestamp(t)).unwrap();
        }
        assert_eq!(i.revision, 5);
        assert_eq!(i.times.routed_at, Some(Timestamp(1_100)));
        assert_eq!(i.times.queued_at, Some(Timestamp(1_200)));
        assert_eq!(i.times.dispatched_at, Some(Timestamp(1_300)));
        assert_eq!(i.times.cleared_at, Some(Timestamp(900_000)));
        // 181,000 ms - 1,000 ms.
        assert_eq!(i.response_time_s(), Some(180.0));
    }

    #[test]
    fn a_snapshot_without_a_case_id_loads_with_none() {
        let mut i = incident();
        i.case_id = Some("case-s1-I1".into());
        let mut json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["id"], "I1");
        assert_eq!(json["case_id"], "case-s1-I1");
        json.as_object_mut().unwrap().remove("case_id");
        let old: Incident = serde_json::from_value(json).unwrap();
        assert_eq!(old.case_id, None);
        assert_eq!(Incident { case_id: None, ..i }, old);
    }

    #[test]
    fn forbidden_transitions_leave_the_incident_unchanged() {
        let mut i = incident();
        let before = i.clone();
        let err = i
            .transition(IncidentState::OnScene, Timestamp(5))
            .unwrap_err();
        assert_eq!(err.from, IncidentState::Received);
        assert_eq!(i, before);
        i.transition(IncidentState::Cancelled, Timestamp(6))
            .unwrap();
        assert!(i.transition(IncidentState::Routed, Timestamp(7)).is_err());
        assert!(
            i.transition(IncidentState::Cancelled, Timestamp(7))
                .is_err()
        );
    }
}
