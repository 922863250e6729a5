//! The unit (officer) and its status lifecycle:
//! `Available -> Dispatched -> Acknowledged (en route) -> OnScene -> Available`, plus `Busy`
//! (self-initiated task) and `OffDuty`. Every change stamps `status_since`.

use serde::{Deserialize, Serialize};

use crate::{DispatchId, DistrictId, IncidentId, LatLng, OfficerId, Timestamp};

/// What a unit is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OfficerStatus {
    /// Not signed on.
    OffDuty,
    /// Free to be dispatched.
    Available,
    /// Ordered to an incident, not yet acknowledged.
    Dispatched,
    /// Acknowledged, en route.
    Acknowledged,
    /// At the incident.
    OnScene,
    /// On a self-initiated task.
    Busy,
}

impl OfficerStatus {
    /// Whether the lifecycle allows `from -> to`.
    pub fn allows(from: OfficerStatus, to: OfficerStatus) -> bool {
        use OfficerStatus::*;
        match (from, to) {
            (Available, Dispatched) | (Dispatched, Acknowledged) | (Acknowledged, OnScene) => true,
            // An order may be withdrawn (re-dispatch, later issue) or the incident cleared.
            (Dispatched | Acknowledged | OnScene, Available) => true,
            // Signing on/off and self-initiated work only from a free state.
            (OffDuty | Available | Busy, OffDuty | Available | Busy) => from != to,
            _ => false,
        }
    }
}

/// A sworn officer or auxiliary unit that can be dispatched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Officer {
    /// Unique id, e.g. `nancheng-d01-o07`.
    pub id: OfficerId,
    /// Home district.
    pub district_id: DistrictId,
    /// Current status.
    pub status: OfficerStatus,
    /// When `status` was entered (cluster clock).
    pub status_since: Timestamp,
    /// Last known position; `None` before the first report.
    pub location: Option<LatLng>,
    /// When `location` was fixed: the terminal's fix time, or when the district received it
    /// for a position without one (sign-on, arrival, clearance).
    pub location_at: Option<Timestamp>,
    /// Horizontal accuracy of `location` the terminal stated, metres (68 %); `None` when not
    /// stated (and in snapshots from before the field).
    #[serde(default)]
    pub location_accuracy_m: Option<f64>,
    /// Incident of the current dispatch.
    pub incident_id: Option<IncidentId>,
    /// Current dispatch.
    pub dispatch_id: Option<DispatchId>,
}

/// A status change the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("officer {id} cannot go from {from:?} to {to:?}")]
pub struct StatusError {
    /// The officer.
    pub id: OfficerId,
    /// Current status.
    pub from: OfficerStatus,
    /// Status asked for.
    pub to: OfficerStatus,
}

impl Officer {
    /// An officer not yet signed on.
    pub fn off_duty(id: OfficerId, district_id: DistrictId, at: Timestamp) -> Self {
        Self {
            id,
            district_id,
            status: OfficerStatus::OffDuty,
            status_since: at,
            location: None,
            location_at: None,
            location_accuracy_m: None,
            incident_id: None,
            dispatch_id: None,
        }
    }

    /// Changes status at `at`. Errors with [`StatusError`], leaving the officer unchanged.
    pub fn set_status(&mut self, to: OfficerStatus, at: Timestamp) -> Result<(), StatusError> {
        if !OfficerStatus::allows(self.status, to) {
            return Err(StatusError {
                id: self.id.clone(),
                from: self.status,
                to,
            });
        }
        self.status = to;
        self.status_since = at;
        if matches!(
            to,
            OfficerStatus::Available | OfficerStatus::Busy | OfficerStatus::OffDuty
        ) {
            self.incident_id = None;
            self.dispatch_id = None;
        }
        Ok(())
    }

    /// Records a position of unstated accuracy fixed at `at`.
    pub fn set_location(&mut self, at_point: LatLng, at: Timestamp) {
        self.set_fix(at_point, at, None);
    }

    /// Records a position fixed at `at` with the stated `accuracy_m` (metres, 68 %).
    pub fn set_fix(&mut self, at_point: LatLng, at: Timestamp, accuracy_m: Option<f64>) {
        self.location = Some(at_point);
        self.location_at = Some(at);
        self.location_accuracy_m = accuracy_m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_cycle_is_allowed_and_stamped() {
        let mut o = Officer::off_duty("o1".into(), "d1".into(), Timestamp(0));
        for (s, t) in [
            (OfficerStatus::Available, 10),
            (OfficerStatus::Dispatched, 20),
            (OfficerStatus::Acknowledged, 30),
            (OfficerStatus::OnScene, 40),
            (OfficerStatus::Available, 50),
        ] {
            o.set_status(s, Timestamp(t)).unwrap();
            assert_eq!(o.status_since, Timestamp(t));
        }
    }

    #[test]
    fn cannot_skip_acknowledge_or_dispatch_an_off_duty_officer() {
        let mut o = Officer::off_duty("o1".into(), "d1".into(), Timestamp(0));
        assert!(
            o.set_status(OfficerStatus::Dispatched, Timestamp(1))
                .is_err()
        );
        o.set_status(OfficerStatus::Available, Timestamp(1))
            .unwrap();
        o.set_status(OfficerStatus::Dispatched, Timestamp(2))
            .unwrap();
        let err = o
            .set_status(OfficerStatus::OnScene, Timestamp(3))
            .unwrap_err();
        assert_eq!(err.from, OfficerStatus::Dispatched);
        assert_eq!(o.status, OfficerStatus::Dispatched);
        // Busy or off duty only from a free state.
        assert!(o.set_status(OfficerStatus::Busy, Timestamp(4)).is_err());
    }
}
