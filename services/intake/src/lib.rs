//! The intake service: where a 110 call enters the dispatch cluster.
//!
//! The 110 platform calls `Intake.ReportIncident` once per call. Intake checks every field
//! ([`validate`]), deduplicates on the platform's `call_id` ([`store`]), asks the geo-router
//! which police district the point lies in (`RouterPort`), creates the incident (priority from
//! its category, `RECEIVED` then `ROUTED`, each with its time) and hands it to the district
//! (`DistrictPort::submit_incident`), whose actor queues and dispatches it. From then on the
//! district owns the incident; intake keeps its record current by following the
//! command-center feed of the notification service ([`IntakeService::follow_updates`]), so
//! `Intake.GetIncident` answers the incident with every timestamp.
//!
//! Pure logic (rules, record-keeping) lives in [`validate`] and [`store`] with fast unit tests;
//! [`IntakeService`] is the thin async shell and [`run`] serves it. Every failure is one
//! [`Error`], turned into a `Status` in one place.

pub mod error;
mod follow;
mod service;
pub mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use service::{IntakeService, run};

/// Settings of the intake service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeConfig {
    /// Prefix of incident ids; ids are `{prefix}{seq:08}` with `seq` counting from 1
    /// (`inc-00000001`). Give each intake instance its own prefix when several run.
    pub incident_id_prefix: String,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            incident_id_prefix: "inc-".to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
