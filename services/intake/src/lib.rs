//! The intake service: where a 110 call enters the dispatch cluster.
//!
//! The 110 platform calls `Intake.ReportIncident` once per call. Intake checks every field
//! ([`validate`]), deduplicates on the platform's `call_id` ([`store`]), asks the geo-router
//! which police district the point lies in (`RouterClient`), creates the incident (priority
//! from its category, `RECEIVED` then `ROUTED`, each with its time) and hands it to the
//! district (`DistrictClient::submit`), whose actor queues and dispatches it. From then on the
//! district owns the incident; intake keeps its record current by following the
//! command-center feed of the notification service ([`IntakeService::follow_updates`]), so
//! `Intake.GetIncident` answers the incident with every timestamp.
//!
//! The hand-off to the district runs as its own task, detached from the gRPC handler: a
//! platform that disconnects or hits its deadline mid-call cannot leave the call claimed but
//! never handed over. Each attempt holds a lease on the incident ([`store`]); a sweeper
//! ([`IntakeService::spawn_sweeper`]) hands off any incident whose lease lapsed while it was
//! still `ROUTED` (claimer crashed, district down), so no call waits for a redial.
//!
//! Pure logic (rules, record-keeping) lives in [`validate`] and [`store`] with fast unit tests;
//! [`records`] keeps the records in memory or in Redis behind one port; [`IntakeService`] is
//! the thin async shell and [`run`] serves it. Every failure is one [`Error`], turned into a
//! `Status` in one place.

pub mod error;
mod follow;
pub mod records;
mod service;
pub mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use records::{IncidentRecords, MemoryRecords, RedisRecords};
pub use service::{IntakeService, run};

/// Settings of the intake service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Prefix of incident ids; ids are `{prefix}{ULID}` (`inc-01JD...`): time-ordered and
    /// unique across restarts and replicas without coordination (ULID: 48-bit millisecond time
    /// plus 80 random bits).
    pub incident_id_prefix: String,
    /// How long one hand-off attempt (submit to the district) owns an incident, milliseconds.
    /// After that, a report of the same call or the sweeper may hand it off again. Must exceed
    /// `district_deadline_ms` so a live attempt is never doubled.
    pub handoff_lease_ms: u64,
    /// Deadline of one submit to the district, milliseconds (default 5 s: a district actor
    /// answers in well under a millisecond; seconds mean it is down or moving).
    pub district_deadline_ms: u64,
    /// Deadline of one route request to the geo-router, milliseconds.
    pub router_deadline_ms: u64,
    /// How often the sweeper looks for incidents whose hand-off was left unfinished (a
    /// claimer crashed, was cancelled, or the district was down), milliseconds.
    pub sweep_interval_ms: u64,
    /// How long closed incidents (cleared, cancelled, merged) stay readable by
    /// `GetIncident` and keep their `call_id` claimed, seconds of cluster time (default one
    /// day: a 110 platform redials within minutes; older reports are new calls).
    pub retention_s: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            incident_id_prefix: "inc-".to_owned(),
            handoff_lease_ms: 10_000,
            district_deadline_ms: 5_000,
            router_deadline_ms: 5_000,
            sweep_interval_ms: 1_000,
            retention_s: 86_400,
        }
    }
}

impl IntakeConfig {
    /// Checks the rules between the settings.
    ///
    /// Errors: a message naming the key: a zero duration, or `handoff_lease_ms` not above
    /// `district_deadline_ms`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("handoff_lease_ms", self.handoff_lease_ms),
            ("district_deadline_ms", self.district_deadline_ms),
            ("router_deadline_ms", self.router_deadline_ms),
            ("sweep_interval_ms", self.sweep_interval_ms),
            ("retention_s", self.retention_s),
        ] {
            if v == 0 {
                return Err(format!("intake.{key} must be > 0"));
            }
        }
        if self.handoff_lease_ms <= self.district_deadline_ms {
            return Err(format!(
                "intake.handoff_lease_ms ({}) must exceed intake.district_deadline_ms ({}), or a slow submit could be doubled",
                self.handoff_lease_ms, self.district_deadline_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
