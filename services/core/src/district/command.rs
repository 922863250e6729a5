//! A district's requests as data: what its event log records and what a new owner replays.
//!
//! DESIGN.md section 5: "District state is event-sourced (events + periodic snapshot), so a new
//! owner rebuilds the actor exactly." [`DistrictState`] is deterministic (no clock, no
//! randomness), so the log need only hold each accepted [`Command`] with the cluster time it
//! was applied at: replaying the same commands at the same times from the same snapshot gives
//! the same state and the same effects. A refused command changes nothing, so only accepted
//! ones are logged.

use serde::{Deserialize, Serialize};

use super::{DistrictState, Effect, Reported, Result};
use crate::{
    DispatchId, Disposition, Fix, Incident, IncidentId, LatLng, Officer, OfficerId, OfficerStatus,
    Timestamp,
};

/// One request to a district, as its log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// [`DistrictState::submit`]. Boxed: an incident is many times the size of the other
    /// commands.
    Submit(Box<Incident>),
    /// [`DistrictState::set_officer_status`].
    SetStatus {
        /// The officer.
        officer_id: OfficerId,
        /// Available, Busy or OffDuty.
        status: OfficerStatus,
        /// Position at the change, WGS84.
        location: Option<LatLng>,
    },
    /// [`DistrictState::report_location`]. Only stored fixes are logged (a stale or refused
    /// one changes nothing); entries from before the fix time and accuracy read as `None`,
    /// which replays as they were applied (fixed at the entry's time).
    ReportLocation {
        /// The officer.
        officer_id: OfficerId,
        /// Where, WGS84.
        location: LatLng,
        /// When the terminal took the fix (cluster time); `None`: when received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fixed_at: Option<Timestamp>,
        /// Stated horizontal accuracy, metres (68 %); `None` when not stated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accuracy_m: Option<f64>,
    },
    /// [`DistrictState::acknowledge`].
    Acknowledge {
        /// The officer.
        officer_id: OfficerId,
        /// The dispatch.
        dispatch_id: DispatchId,
    },
    /// [`DistrictState::arrive`].
    Arrive {
        /// The officer.
        officer_id: OfficerId,
        /// The dispatch.
        dispatch_id: DispatchId,
    },
    /// [`DistrictState::clear`].
    Clear {
        /// The officer.
        officer_id: OfficerId,
        /// The dispatch.
        dispatch_id: DispatchId,
        /// How it ended.
        disposition: Disposition,
    },
    /// [`DistrictState::cancel`].
    Cancel {
        /// The incident.
        incident_id: IncidentId,
    },
}

/// What a command answers.
// One reply per call, moved straight into the caller's answer: boxing the incident would cost
// an allocation per call to save stack space that is never held.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The incident the command was about, as it now stands.
    Incident(Incident),
    /// The officer the command was about, as they now stand.
    Officer(Officer),
    /// A position report stored.
    Done,
    /// A position report ignored as stale ([`super::Reported::Stale`]): nothing changed, so
    /// the actor does not log it.
    Stale {
        /// The fix time of the officer's current position.
        current_fix_at: Timestamp,
    },
}

/// One entry of a district's log: a command accepted at `at` (cluster time), and the effects it
/// had, in order. The effects are kept so a new owner delivers those not yet delivered without
/// replaying from the beginning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the command was applied, cluster time.
    pub at: Timestamp,
    /// The command.
    pub command: Command,
    /// Its effects, in the order they were given.
    pub effects: Vec<Effect>,
}

impl DistrictState {
    /// Applies `command` at `now`: the one entry point the actor and a replay share.
    ///
    /// Errors: those of the method the command names; nothing changes then.
    pub fn apply(&mut self, command: &Command, now: Timestamp) -> Result<(Reply, Vec<Effect>)> {
        match command {
            Command::Submit(incident) => self
                .submit(incident.as_ref().clone(), now)
                .map(|(i, e)| (Reply::Incident(i), e)),
            Command::SetStatus {
                officer_id,
                status,
                location,
            } => self
                .set_officer_status(officer_id, *status, *location, now)
                .map(|(o, e)| (Reply::Officer(o), e)),
            Command::ReportLocation {
                officer_id,
                location,
                fixed_at,
                accuracy_m,
            } => {
                let fix = Fix {
                    location: *location,
                    fixed_at: *fixed_at,
                    accuracy_m: *accuracy_m,
                };
                self.report_location(officer_id, &fix, now)
                    .map(|reported| match reported {
                        Reported::Stored(effects) => (Reply::Done, effects),
                        Reported::Stale { current_fix_at } => {
                            (Reply::Stale { current_fix_at }, Vec::new())
                        }
                    })
            }
            Command::Acknowledge {
                officer_id,
                dispatch_id,
            } => self
                .acknowledge(officer_id, dispatch_id, now)
                .map(|(i, e)| (Reply::Incident(i), e)),
            Command::Arrive {
                officer_id,
                dispatch_id,
            } => self
                .arrive(officer_id, dispatch_id, now)
                .map(|(i, e)| (Reply::Incident(i), e)),
            Command::Clear {
                officer_id,
                dispatch_id,
                disposition,
            } => self
                .clear(officer_id, dispatch_id, *disposition, now)
                .map(|(i, e)| (Reply::Incident(i), e)),
            Command::Cancel { incident_id } => self
                .cancel(incident_id, now)
                .map(|(i, e)| (Reply::Incident(i), e)),
        }
    }

    /// Replays logged entries in order, as a new owner does after loading a snapshot.
    ///
    /// Errors: the first entry that does not apply, with its index; the state then holds every
    /// entry before it. An entry of an accepted command always applies to the state it was
    /// accepted in, so an error means the log and the snapshot do not belong together.
    pub fn replay<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> std::result::Result<usize, (usize, super::Error)> {
        let mut n = 0;
        for entry in entries {
            self.apply(&entry.command, entry.at).map_err(|e| (n, e))?;
            n += 1;
        }
        Ok(n)
    }
}
