//! The simulated 110 platform: plans the calls of a run and sends them to
//! `Intake.ReportIncident` at their cluster times.
//!
//! Arrival times come from a Poisson process at the scenario's peak rate
//! ([`crate::draw::PoissonArrivals`]); each call's sub-bureau is drawn by population (area when
//! the map has none), its place uniform inside that sub-bureau, its category from the
//! scenario's mix. The plan depends only on the scenario (seed included), not on the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dispatch_bus::convert::{category_to_wire, latlng_to_wire};
use dispatch_core::clock::SharedClock;
use dispatch_core::{Category, LatLng};
use dispatch_proto::v1::{self, ReportIncidentRequest};
use tonic::Code;

use crate::Result;
use crate::connect::Clients;
use crate::draw::{PoissonArrivals, Stream, Weighted, rng_for};
use crate::geography::Geography;
use crate::scenario::{Scenario, category_name};

/// Attempts per call, [`RETRY_PAUSE`] apart: about 20 s of retries, long enough to ride out a
/// service restart (a real 110 platform keeps retrying a call it could not hand over). A retry
/// reuses the `call_id`, so intake's idempotency makes it safe.
pub const CALL_ATTEMPTS: u32 = 200;

/// Real pause before a retry.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One planned call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPlan {
    /// Cluster seconds from the start of the call phase.
    pub at_s: f64,
    /// The platform's call id (unique per run: scenario name, run tag, sequence number).
    pub call_id: String,
    /// Reported category.
    pub category: Category,
    /// Where the caller is, WGS84.
    pub location: LatLng,
    /// The sub-bureau the place was drawn in.
    pub sub_bureau_id: String,
}

/// The calls of a run, in time order. `run_tag` makes call ids unique across runs against the
/// same cluster (intake is idempotent on `call_id`).
///
/// Errors: [`crate::Error::Scenario`] for an unusable rate or category mix,
/// [`crate::Error::Map`] for a sub-bureau without ground.
pub fn plan_calls(
    scenario: &Scenario,
    geography: &Geography,
    run_tag: &str,
) -> Result<Vec<CallPlan>> {
    let categories = Weighted::new("calls.category_mix", scenario.category_weights()?)?;
    let mut rng = rng_for(scenario.seed, Stream::Calls);
    PoissonArrivals::new(
        scenario.calls.peak_per_hour,
        rng_for(scenario.seed, Stream::Arrivals),
    )?
    .until(scenario.calls.duration_s)
    .enumerate()
    .map(|(seq, at_s)| {
        let (sub_bureau_id, location) = geography.call_place(&mut rng)?;
        Ok(CallPlan {
            at_s,
            call_id: format!("{}-{run_tag}-{:07}", scenario.name, seq + 1),
            category: categories.draw(&mut rng),
            location,
            sub_bureau_id,
        })
    })
    .collect()
}

/// How intake answered a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// A new incident.
    Accepted(Box<v1::Incident>),
    /// Intake already knew the `call_id` before this run's first attempt.
    Duplicate(Box<v1::Incident>),
    /// Refused, or failed after [`CALL_ATTEMPTS`] attempts; the last status.
    Failed(String),
}

/// One sent call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// Index into the plan.
    pub plan: usize,
    /// When the first attempt was sent (real, monotonic).
    pub sent: Instant,
    /// Intake's answer.
    pub outcome: CallOutcome,
}

/// Live counters of the platform, for the progress log.
#[derive(Debug, Default)]
pub struct CallProgress {
    /// Calls sent.
    pub sent: AtomicU64,
    /// Calls accepted as new incidents.
    pub accepted: AtomicU64,
    /// Calls refused or failed.
    pub failed: AtomicU64,
}

/// Sends every planned call at its time (`start` + the call's cluster time in real time) and
/// returns the answers, in plan order. Calls are sent concurrently, so a slow answer never
/// delays the next call.
pub async fn send_calls(
    plans: &[CallPlan],
    clients: &Clients,
    clock: &SharedClock,
    start: tokio::time::Instant,
    progress: Arc<CallProgress>,
) -> Vec<CallResult> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, plan) in plans.iter().enumerate() {
        tokio::time::sleep_until(start + clock.real_duration(plan.at_s)).await;
        let client = clients.clone();
        let request = ReportIncidentRequest {
            call_id: plan.call_id.clone(),
            category: category_to_wire(plan.category),
            location: Some(latlng_to_wire(plan.location)),
            description: format!("load test call: {}", category_name(plan.category)),
        };
        let progress = progress.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            progress.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = report(&client, request).await;
            match &outcome {
                CallOutcome::Accepted(_) => progress.accepted.fetch_add(1, Ordering::Relaxed),
                _ => progress.failed.fetch_add(1, Ordering::Relaxed),
            };
            CallResult {
                plan: i,
                sent,
                outcome,
            }
        });
    }
    let mut results = Vec::with_capacity(plans.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => tracing::error!(error = %e, "call task failed"),
        }
    }
    results.sort_by_key(|r| r.plan);
    results
}

async fn report(clients: &Clients, request: ReportIncidentRequest) -> CallOutcome {
    let mut last = String::new();
    for attempt in 1..=CALL_ATTEMPTS {
        match clients.intake().report_incident(request.clone()).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                let Some(incident) = resp.incident else {
                    return CallOutcome::Failed("answer without an incident".into());
                };
                // A duplicate on a retry is our own earlier attempt that got through.
                return if resp.duplicate && attempt == 1 {
                    CallOutcome::Duplicate(Box::new(incident))
                } else {
                    CallOutcome::Accepted(Box::new(incident))
                };
            }
            Err(status) => {
                last = format!("{status}");
                let transient = matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
                );
                tracing::warn!(call_id = %request.call_id, attempt, %status, "ReportIncident failed");
                if !transient {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    CallOutcome::Failed(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dispatch_map::CityMap;

    fn scenario() -> Scenario {
        Scenario::parse(include_str!("../scenarios/builtin-peak.toml")).expect("scenario")
    }

    #[test]
    fn plan_is_reproducible_and_well_formed() {
        let s = scenario();
        let map = CityMap::builtin().expect("map");
        let g = Geography::new(&map).expect("geography");
        let a = plan_calls(&s, &g, "r1").expect("plan");
        let b = plan_calls(&s, &g, "r1").expect("plan");
        assert_eq!(a, b, "same seed, same calls");
        // Poisson(expected) count: within 4.5 sd.
        let expected = s.expected_calls();
        assert!(
            (a.len() as f64 - expected).abs() < 4.5 * expected.sqrt(),
            "{} calls, expected {expected}",
            a.len()
        );
        let mut ids: Vec<&str> = a.iter().map(|c| c.call_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), a.len(), "call ids are unique");
        for c in &a {
            assert!(c.call_id.len() <= 64, "{}", c.call_id);
            assert!(
                c.call_id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._:-".contains(ch)),
                "{}",
                c.call_id
            );
            assert!(c.at_s < s.calls.duration_s);
            assert!(map.sub_bureau(&c.sub_bureau_id).is_some());
        }
        let weights = s.category_weights().expect("mix");
        let allowed: Vec<Category> = weights.iter().map(|(c, _)| *c).collect();
        assert!(a.iter().all(|c| allowed.contains(&c.category)));
    }

    #[test]
    fn other_seed_other_plan() {
        let mut s = scenario();
        let map = CityMap::builtin().expect("map");
        let g = Geography::new(&map).expect("geography");
        let a = plan_calls(&s, &g, "r").expect("plan");
        s.seed += 1;
        let b = plan_calls(&s, &g, "r").expect("plan");
        assert_ne!(a, b);
    }
}
