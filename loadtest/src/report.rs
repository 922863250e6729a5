//! The report of a run: built from what the harness recorded and what the cluster answered at
//! the end, written as JSON (`--json`), a terminal summary, and HTML (`--html`, see
//! [`crate::html`]).
//!
//! Units: response times are seconds of cluster time (`on_scene_at - received_at`, both stamped
//! by the cluster's clock); system latency is real milliseconds on the harness's monotonic
//! clock; throughput is calls per real second and per simulated hour.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dispatch_core::{Priority, Timestamp};
use serde::Serialize;

use crate::stats::{Group, GroupStats, Samples, Summary, round_to};
use crate::takeover::TakeoverFacts;

/// Where an accepted incident was when the harness asked the cluster after the drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndState {
    /// Waiting in its district's queue.
    Queued,
    /// An officer is on the way.
    Dispatched,
    /// An officer is there.
    OnScene,
    /// Closed with a disposition.
    Cleared,
    /// Not found in any of the states above: unknown to the cluster, stuck before its district
    /// took it (received or routed), or closed without clearing. The text says which.
    Lost(String),
}

impl EndState {
    /// Still open at the end of the run (queued, dispatched or on scene).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            EndState::Queued | EndState::Dispatched | EndState::OnScene
        )
    }
}

/// One incident intake accepted, joined from the harness's records and the cluster's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    /// The cluster's id.
    pub incident_id: String,
    /// The priority intake gave it.
    pub priority: Option<Priority>,
    /// Its sub-bureau id.
    pub sub_bureau_id: String,
    /// Its district id.
    pub district_id: String,
    /// Where it ended.
    pub end: EndState,
    /// Cluster time intake received it.
    pub received_at: Option<Timestamp>,
    /// Cluster time of its first dispatch.
    pub dispatched_at: Option<Timestamp>,
    /// Cluster time an officer arrived.
    pub on_scene_at: Option<Timestamp>,
    /// Real milliseconds from sending the call to its first order arriving on a terminal,
    /// when the order went to an officer that was already free when the call was sent.
    pub system_latency_ms: Option<f64>,
    /// The first order went to an officer that became free only after the call was sent: the
    /// incident waited for an officer, so its order delay is not system latency.
    pub waited_for_officer: bool,
}

impl IncidentRecord {
    /// `on_scene_at - received_at`, seconds of cluster time, when both are known.
    pub fn response_s(&self) -> Option<f64> {
        Some(self.on_scene_at?.seconds_since(self.received_at?))
    }
}

/// What the 110 platform did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallCounts {
    /// Calls the Poisson process produced for the duration.
    pub planned: u64,
    /// Calls sent to intake.
    pub sent: u64,
    /// Calls intake accepted as new incidents.
    pub accepted: u64,
    /// Calls intake answered as duplicates of a known `call_id` (0 unless the cluster already
    /// knew the run's call ids).
    pub duplicates: u64,
    /// Calls intake refused or that failed after retries; each is a failure of the run.
    pub failed: u64,
}

/// What the officer terminals did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TerminalCounts {
    /// Dispatch orders received (each `dispatch_id` once).
    pub orders: u64,
    /// Orders delivered again with a `dispatch_id` already handled, and ignored.
    pub duplicate_orders: u64,
    /// Clearances the cluster accepted, by disposition name.
    pub clearances: BTreeMap<String, u64>,
    /// Failed RPCs of the terminals, by RPC name.
    pub errors: BTreeMap<String, u64>,
}

/// Everything about a run except the per-incident records.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    /// The scenario's figures.
    pub scenario: ScenarioInfo,
    /// Response-time target, seconds of cluster time.
    pub target_s: f64,
    /// Share of incidents that must meet the target.
    pub target_share: f64,
    /// Call counts.
    pub calls: CallCounts,
    /// Real seconds from the first call's planned time to the last call's answer.
    pub call_phase_real_s: f64,
    /// Terminal counts.
    pub terminal: TerminalCounts,
    /// Sum of `ListCases` over every station at the end.
    pub cases_opened: u64,
    /// Officers whose terminals signed on.
    pub officers_on_duty: u64,
    /// Officers on the cluster's rosters.
    pub officers_rostered: u64,
    /// Sub-bureau id -> name.
    pub sub_bureau_names: BTreeMap<String, String>,
    /// Real seconds of the whole run, cluster start to report.
    pub wall_time_s: f64,
    /// Samples of the run's load over time.
    pub timeline: Vec<TimelinePoint>,
    /// Takeover accounting, when the run watched the district leases (`--redis`).
    pub takeover: Option<TakeoverFacts>,
}

/// Incidents that went through a takeover of their district (see [`crate::takeover`]) and
/// owner changes seen, in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TakeoverStats {
    /// Incidents whose district's lease epoch changed between their receipt and an officer
    /// arriving on scene (or the end of the run).
    pub incidents: u64,
    /// Of those, incidents an officer reached (the samples of the percentiles).
    pub on_scene: u64,
    /// Of those, incidents reached within the target.
    pub within_target: u64,
    /// Their median response time, seconds of cluster time.
    pub p50: Option<f64>,
    /// Their 90th percentile, s.
    pub p90: Option<f64>,
    /// Their maximum, s.
    pub max: Option<f64>,
    /// Their longest wait from the call to the dispatch, seconds of cluster time: mostly the
    /// takeover itself (intake retries the submit until the new owner runs the district).
    pub longest_call_to_dispatch_s: Option<f64>,
    /// The run's clock scale: on a scaled clock a takeover's few real seconds count `scale`
    /// times in these figures.
    pub clock_scale: f64,
    /// Owner changes seen, all districts.
    pub owner_changes: u64,
    /// Owner changes seen per district id (every district seen held, zeros included).
    pub owner_changes_by_district: BTreeMap<String, u64>,
}

/// The load at one moment of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Cluster seconds since the first call was due.
    pub t_s: f64,
    /// Calls sent so far.
    pub calls_sent: u64,
    /// Incidents accepted and not yet cleared by a terminal.
    pub open: u64,
    /// Terminals handling an order.
    pub busy_officers: u64,
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The target was met and nothing was lost.
    Pass,
    /// Something in `verdict_reasons` went wrong.
    Fail,
}

impl Verdict {
    /// The process exit code: 0 for pass, 1 for fail (2 is for bad input, see
    /// [`crate::Error::exit_code`]).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
        }
    }
}

/// The scenario figures a report was made with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioInfo {
    /// Scenario name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Map.
    pub map: String,
    /// Cluster seconds per real second.
    pub clock_scale: f64,
    /// Calls per simulated hour.
    pub peak_per_hour: f64,
    /// Seconds of cluster time with calls.
    pub duration_s: f64,
    /// Longest drain, seconds of cluster time.
    pub drain_s: f64,
}

/// Incident counts at the end of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IncidentCounts {
    /// Accepted by intake (`= cleared + open_at_end + lost`).
    pub received: u64,
    /// Got at least one dispatch.
    pub dispatched: u64,
    /// An officer reached it.
    pub on_scene: u64,
    /// Cleared.
    pub cleared: u64,
    /// Queued, dispatched or on scene when the run ended.
    pub open_at_end: u64,
    /// Accepted but not found in a queued, dispatched, on-scene or cleared state at the end.
    pub lost: u64,
    /// Waited for an officer to become free before their first dispatch.
    pub waited_for_officer: u64,
}

/// Response times, seconds of cluster time, overall and by group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseTimes {
    /// All incidents.
    #[serde(flatten)]
    pub overall: GroupStats,
    /// By priority, keys `P1`..`P4` (each present, empty groups included).
    pub by_priority: BTreeMap<String, GroupStats>,
    /// By sub-bureau id.
    pub by_sub_bureau: BTreeMap<String, SubBureauStats>,
    /// By district id.
    pub by_district: BTreeMap<String, GroupStats>,
}

/// A sub-bureau's response times with its name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubBureauStats {
    /// Sub-bureau name.
    pub name: String,
    /// Its figures.
    #[serde(flatten)]
    pub stats: GroupStats,
}

/// How fast calls went in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    /// Calls sent per real second of the call phase.
    pub calls_per_s_real: f64,
    /// Calls sent per simulated hour.
    pub calls_per_sim_hour: f64,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The scenario's figures.
    pub scenario: ScenarioInfo,
    /// The 110 platform's calls.
    pub calls: CallCounts,
    /// Incident counts.
    pub incidents: IncidentCounts,
    /// Response times, seconds of cluster time.
    pub response_time_s: ResponseTimes,
    /// Share of received incidents reached within `target_s` (unreached ones are misses).
    pub within_target_share: f64,
    /// Response-time target, seconds of cluster time.
    pub target_s: f64,
    /// Share the verdict demands.
    pub target_share: f64,
    /// Real ms from sending a call to its order on the terminal, over incidents dispatched
    /// to an officer that was free when the call was sent.
    pub system_latency_ms: Summary,
    /// Call rates.
    pub throughput: Throughput,
    /// Cases the case squads hold at the end.
    pub cases_opened: u64,
    /// Clearances with a criminal or administrative disposition (each should open a case).
    pub case_clearances: u64,
    /// Officers whose terminals signed on.
    pub officers_on_duty: u64,
    /// Officers on the cluster's rosters.
    pub officers_rostered: u64,
    /// What the terminals did.
    pub terminal: TerminalCounts,
    /// Real seconds of the whole run.
    pub wall_time_s: f64,
    /// The load over time, about one sample per real second.
    pub timeline: Vec<TimelinePoint>,
    /// Takeover accounting; absent unless the run watched the leases (`--redis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takeover: Option<TakeoverStats>,
    /// `pass` or `fail`.
    pub verdict: Verdict,
    /// Why it failed (empty on pass).
    pub verdict_reasons: Vec<String>,
}

impl Report {
    /// Builds the report from the run's facts and one record per accepted incident.
    pub fn build(facts: &RunFacts, incidents: &[IncidentRecord]) -> Report {
        let target = facts.target_s;
        let mut counts = IncidentCounts::default();
        let mut all = Group::default();
        let mut by_priority: BTreeMap<String, Group> = Priority::ALL
            .iter()
            .map(|p| (p.to_string(), Group::default()))
            .collect();
        let mut by_sub: BTreeMap<String, Group> = BTreeMap::new();
        let mut by_district: BTreeMap<String, Group> = BTreeMap::new();
        let mut latency = Samples::millis();
        let mut through_takeover = Group::default();
        let mut longest_call_to_dispatch_s: Option<f64> = None;
        for i in incidents {
            counts.received += 1;
            counts.dispatched += u64::from(i.dispatched_at.is_some());
            counts.on_scene += u64::from(i.on_scene_at.is_some());
            counts.cleared += u64::from(i.end == EndState::Cleared);
            counts.open_at_end += u64::from(i.end.is_open());
            counts.lost += u64::from(matches!(i.end, EndState::Lost(_)));
            counts.waited_for_officer += u64::from(i.waited_for_officer);
            let rt = i.response_s();
            all.add(rt, target);
            if let Some(p) = i.priority {
                by_priority
                    .entry(p.to_string())
                    .or_default()
                    .add(rt, target);
            }
            by_sub
                .entry(i.sub_bureau_id.clone())
                .or_default()
                .add(rt, target);
            by_district
                .entry(i.district_id.clone())
                .or_default()
                .add(rt, target);
            if let Some(ms) = i.system_latency_ms {
                latency.record(ms);
            }
            if let Some(t) = &facts.takeover
                && t.incidents.contains(&i.incident_id)
            {
                through_takeover.add(rt, target);
                if let (Some(at), Some(received)) = (i.dispatched_at, i.received_at) {
                    let wait = at.seconds_since(received);
                    longest_call_to_dispatch_s =
                        Some(longest_call_to_dispatch_s.map_or(wait, |w| w.max(wait)));
                }
            }
        }
        let takeover = facts.takeover.as_ref().map(|t| {
            let g = through_takeover.stats();
            TakeoverStats {
                incidents: g.received,
                on_scene: g.on_scene,
                within_target: g.within_target,
                p50: g.p50,
                p90: g.p90,
                max: g.max,
                longest_call_to_dispatch_s,
                clock_scale: facts.scenario.clock_scale,
                owner_changes: t.owner_changes.values().sum(),
                owner_changes_by_district: t.owner_changes.clone(),
            }
        });
        let share = all.within_target_share();
        let overall = all.stats();
        let case_clearances = ["criminal_case", "administrative_case"]
            .iter()
            .filter_map(|d| facts.terminal.clearances.get(*d))
            .sum();
        let mut reasons = Vec::new();
        if counts.received == 0 {
            reasons.push("no incident was received".to_string());
        }
        if share < facts.target_share {
            reasons.push(format!(
                "within_target_share {:.4} < target_share {:.4}",
                share, facts.target_share
            ));
        }
        if counts.lost > 0 {
            reasons.push(format!("{} incident(s) lost", counts.lost));
        }
        if facts.calls.failed > 0 {
            reasons.push(format!("{} call(s) failed at intake", facts.calls.failed));
        }
        let verdict = if reasons.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let real_s = facts.call_phase_real_s.max(1e-9);
        Report {
            scenario: facts.scenario.clone(),
            calls: facts.calls.clone(),
            incidents: counts,
            response_time_s: ResponseTimes {
                overall,
                by_priority: by_priority
                    .into_iter()
                    .map(|(k, g)| (k, g.stats()))
                    .collect(),
                by_sub_bureau: by_sub
                    .into_iter()
                    .map(|(k, g)| {
                        let name = facts.sub_bureau_names.get(&k).cloned().unwrap_or_default();
                        (
                            k,
                            SubBureauStats {
                                name,
                                stats: g.stats(),
                            },
                        )
                    })
                    .collect(),
                by_district: by_district
                    .into_iter()
                    .map(|(k, g)| (k, g.stats()))
                    .collect(),
            },
            within_target_share: round_to(share, 4),
            target_s: facts.target_s,
            target_share: facts.target_share,
            system_latency_ms: latency.summary(3),
            throughput: Throughput {
                calls_per_s_real: round_to(facts.calls.sent as f64 / real_s, 2),
                calls_per_sim_hour: round_to(
                    facts.calls.sent as f64 * 3600.0 / facts.scenario.duration_s.max(1e-9),
                    1,
                ),
            },
            cases_opened: facts.cases_opened,
            case_clearances,
            officers_on_duty: facts.officers_on_duty,
            officers_rostered: facts.officers_rostered,
            terminal: facts.terminal.clone(),
            wall_time_s: round_to(facts.wall_time_s, 1),
            timeline: facts.timeline.clone(),
            takeover,
            verdict,
            verdict_reasons: reasons,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain structs, maps with string keys and finite floats cannot fail.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| unreachable!("report serialisation failed: {e}"))
    }

    /// The terminal summary: a few aligned lines, the verdict line last.
    pub fn summary_text(&self) -> String {
        let s = &self.scenario;
        let c = &self.calls;
        let i = &self.incidents;
        let r = &self.response_time_s.overall;
        let by_priority = &self.response_time_s.by_priority;
        let l = &self.system_latency_ms;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario   {} (map {}, seed {}, clock x{})",
            s.name, s.map, s.seed, s.clock_scale
        );
        let _ = writeln!(
            out,
            "calls      {} sent, {} accepted, {} failed; {:.1}/s real, {:.0}/h simulated",
            c.sent,
            c.accepted,
            c.failed,
            self.throughput.calls_per_s_real,
            self.throughput.calls_per_sim_hour
        );
        let _ = writeln!(
            out,
            "incidents  {} received: {} dispatched, {} on scene, {} cleared, {} open at end, {} lost ({} waited for an officer)",
            i.received,
            i.dispatched,
            i.on_scene,
            i.cleared,
            i.open_at_end,
            i.lost,
            i.waited_for_officer
        );
        let _ = writeln!(
            out,
            "response   {}  (n {})",
            percentile_line(r.p50, r.p90, r.p99, r.mean, "s"),
            r.on_scene
        );
        for (p, g) in by_priority {
            let _ = writeln!(
                out,
                "  {p:<8} {}  (n {}, {:.1}% within target)",
                percentile_line(g.p50, g.p90, g.p99, g.mean, "s"),
                g.on_scene,
                g.within_target_share * 100.0
            );
        }
        let _ = writeln!(
            out,
            "target     {:.1}% within {} s (target {:.1}%)",
            self.within_target_share * 100.0,
            self.target_s,
            self.target_share * 100.0
        );
        let _ = writeln!(
            out,
            "latency    system p50 {} ms, p99 {} ms  (n {}, call sent -> order on terminal)",
            fmt_opt(l.p50, 2),
            fmt_opt(l.p99, 2),
            l.count
        );
        let _ = writeln!(
            out,
            "officers   {} on duty of {}; cases opened {} ({} case clearances)",
            self.officers_on_duty, self.officers_rostered, self.cases_opened, self.case_clearances
        );
        let errors: u64 = self.terminal.errors.values().sum();
        let _ = writeln!(
            out,
            "terminals  {} orders, {} duplicate orders, {} failed RPCs",
            self.terminal.orders, self.terminal.duplicate_orders, errors
        );
        if let Some(t) = &self.takeover {
            let _ = writeln!(out, "takeover   {}", t.summary());
        }
        let _ = writeln!(out, "wall time  {:.1} s", self.wall_time_s);
        let verdict = match self.verdict {
            Verdict::Pass => "PASS".to_string(),
            Verdict::Fail => format!("FAIL: {}", self.verdict_reasons.join("; ")),
        };
        let _ = write!(out, "verdict    {verdict}");
        out
    }
}

/// Most districts named one by one in the takeover line of the summary.
pub const TAKEOVER_DISTRICTS_LISTED: usize = 8;

impl TakeoverStats {
    /// One line: the incidents that went through a takeover, their response times and the
    /// owner changes seen: per district when at most [`TAKEOVER_DISTRICTS_LISTED`] districts
    /// changed owner, else only how many did (the JSON has them all).
    pub fn summary(&self) -> String {
        let moved: Vec<String> = self
            .owner_changes_by_district
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        format!(
            "{} incident(s) through a takeover of their district: response p50 {} s  p90 {} s  max {} s, {} of {} on scene within target{}; {} owner changes{}",
            self.incidents,
            fmt_opt(self.p50, 0),
            fmt_opt(self.p90, 0),
            fmt_opt(self.max, 0),
            self.within_target,
            self.on_scene,
            match self.longest_call_to_dispatch_s {
                Some(w) => format!(
                    "; longest call -> dispatch {w:.0} s ({:.1} s real at x{})",
                    w / self.clock_scale,
                    self.clock_scale
                ),
                None => String::new(),
            },
            self.owner_changes,
            match moved.len() {
                0 => String::new(),
                n if n <= TAKEOVER_DISTRICTS_LISTED => format!(" ({})", moved.join(", ")),
                n => format!(" in {n} districts"),
            }
        )
    }
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

fn percentile_line(
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    mean: Option<f64>,
    unit: &str,
) -> String {
    format!(
        "p50 {:>6} {unit}  p90 {:>6} {unit}  p99 {:>6} {unit}  mean {:>6} {unit}",
        fmt_opt(p50, 0),
        fmt_opt(p90, 0),
        fmt_opt(p99, 0),
        fmt_opt(mean, 1)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    /// An incident received at T0 + `at` s, reached after `rt` s (if any), with `end`.
    fn incident(
        id: &str,
        p: Priority,
        sub: &str,
        rt: Option<f64>,
        end: EndState,
        latency_ms: Option<f64>,
    ) -> IncidentRecord {
        let received = Timestamp(T0);
        IncidentRecord {
            incident_id: id.into(),
            priority: Some(p),
            sub_bureau_id: sub.into(),
            district_id: format!("{sub}-d1"),
            end,
            received_at: Some(received),
            dispatched_at: rt.map(|_| received.plus_seconds(1.0)),
            on_scene_at: rt.map(|s| received.plus_seconds(s)),
            system_latency_ms: latency_ms,
            waited_for_officer: false,
        }
    }

    fn facts() -> RunFacts {
        RunFacts {
            scenario: ScenarioInfo {
                name: "hand".into(),
                seed: 1,
                map: "builtin".into(),
                clock_scale: 60.0,
                peak_per_hour: 600.0,
                duration_s: 3600.0,
                drain_s: 1800.0,
            },
            target_s: 300.0,
            target_share: 0.6,
            calls: CallCounts {
                planned: 10,
                sent: 10,
                accepted: 10,
                duplicates: 0,
                failed: 0,
            },
            call_phase_real_s: 60.0,
            terminal: TerminalCounts {
                clearances: BTreeMap::from([
                    ("criminal_case".to_string(), 2),
                    ("resolved".to_string(), 5),
                ]),
                ..TerminalCounts::default()
            },
            cases_opened: 2,
            officers_on_duty: 5,
            officers_rostered: 15,
            sub_bureau_names: BTreeMap::from([
                ("a".to_string(), "Alpha".to_string()),
                ("b".to_string(), "Beta".to_string()),
            ]),
            wall_time_s: 75.0,
            timeline: vec![],
            takeover: None,
        }
    }

    /// Ten incidents: eight reached (response times 60, 120, ..., 480 s), of which seven
    /// cleared and one still on scene; one queued and never reached; one lost.
    fn ten() -> Vec<IncidentRecord> {
        use EndState::*;
        use Priority::*;
        let mut v = Vec::new();
        for (k, rt) in [60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 420.0, 480.0]
            .into_iter()
            .enumerate()
        {
            let p = if k < 4 { P1 } else { P3 };
            let sub = if k % 2 == 0 { "a" } else { "b" };
            let end = if k == 7 { OnScene } else { Cleared };
            v.push(incident(
                &format!("i{k}"),
                p,
                sub,
                Some(rt),
                end,
                Some(f64::from(k as u32 + 1) / 10.0),
            ));
        }
        v.push(incident("i8", P4, "a", None, Queued, None));
        v.push(incident(
            "i9",
            P2,
            "b",
            None,
            Lost("not found".into()),
            None,
        ));
        v
    }

    #[test]
    fn takeover_figures_worked_out_by_hand() {
        let mut f = facts();
        assert!(Report::build(&f, &ten()).takeover.is_none());
        assert!(!Report::build(&f, &ten()).to_json().contains("takeover"));
        f.takeover = Some(TakeoverFacts {
            incidents: ["i1", "i4", "i6", "i8"].map(String::from).into(),
            owner_changes: BTreeMap::from([("d1".to_string(), 2), ("d2".to_string(), 0)]),
        });
        // i4 reached its district 180 s after the call (the others 1 s): 3 s real at x60.
        let mut incidents = ten();
        incidents[4].dispatched_at = incidents[4].received_at.map(|r| r.plus_seconds(180.0));
        let r = Report::build(&f, &incidents);
        let t = r.takeover.as_ref().unwrap();
        assert_eq!(t.longest_call_to_dispatch_s, Some(180.0));
        // i1 120 s, i4 300 s, i6 420 s reached; i8 never. Within 300 s: i1, i4.
        // p50 = ceil(1.5) = 2nd = 300; p90 = ceil(2.7) = 3rd = 420.
        assert_eq!(
            (t.incidents, t.on_scene, t.within_target),
            (4, 3, 2),
            "{t:?}"
        );
        assert_eq!(
            (t.p50, t.p90, t.max),
            (Some(300.0), Some(420.0), Some(420.0))
        );
        assert_eq!(t.owner_changes, 2);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["takeover"]["incidents"], 4);
        assert_eq!(json["takeover"]["owner_changes_by_district"]["d1"], 2);
        let mut many = t.clone();
        many.owner_changes_by_district = (0..9).map(|k| (format!("d{k}"), 1)).collect();
        many.owner_changes = 9;
        assert!(
            many.summary().ends_with("; 9 owner changes in 9 districts"),
            "{}",
            many.summary()
        );
        assert!(
            r.summary_text().contains(
                "takeover   4 incident(s) through a takeover of their district: response p50 300 s  p90 420 s  max 420 s, \
                 2 of 3 on scene within target; longest call -> dispatch 180 s (3.0 s real at x60); 2 owner changes (d1 2)"
            ),
            "{}",
            r.summary_text()
        );
    }

    #[test]
    fn counts_add_up_and_lost_is_counted() {
        let r = Report::build(&facts(), &ten());
        let i = &r.incidents;
        assert_eq!(i.received, 10);
        assert_eq!(i.dispatched, 8);
        assert_eq!(i.on_scene, 8);
        assert_eq!(i.cleared, 7);
        assert_eq!(i.open_at_end, 2, "one on scene, one queued");
        assert_eq!(i.lost, 1);
        assert_eq!(i.received, i.cleared + i.open_at_end + i.lost);
    }

    #[test]
    fn percentiles_and_share_worked_out_by_hand() {
        let r = Report::build(&facts(), &ten());
        let rt = &r.response_time_s;
        let all = &rt.overall;
        // Eight samples 60..480 step 60: p50 = 4th = 240; p90 = ceil(7.2) = 8th = 480;
        // p99 = 8th = 480; mean = (60 + 480) / 2 = 270.
        assert_eq!((all.received, all.on_scene), (10, 8));
        assert_eq!(all.p50, Some(240.0));
        assert_eq!(all.p90, Some(480.0));
        assert_eq!(all.p99, Some(480.0));
        assert_eq!(all.mean, Some(270.0));
        assert_eq!(all.max, Some(480.0));
        assert_eq!(all.within_target_share, r.within_target_share);
        // Within 300 s: 60, 120, 180, 240, 300 -> 5 of 10 received (unreached ones miss).
        assert_eq!(r.within_target_share, 0.5);
        // P1: 60, 120, 180, 240 all within; P3: 300 within, 360..480 not -> 1/4.
        let p1 = &rt.by_priority["P1"];
        assert_eq!(
            (p1.received, p1.within_target_share, p1.p50),
            (4, 1.0, Some(120.0))
        );
        assert_eq!(rt.by_priority["P3"].within_target_share, 0.25);
        assert_eq!(rt.by_priority["P4"].on_scene, 0);
        assert_eq!(rt.by_priority["P4"].p50, None);
        assert_eq!(rt.by_priority.len(), 4);
        // Sub-bureau a: 60, 180, 300, 420 + the queued P4 -> 3 of 5 within.
        let a = &rt.by_sub_bureau["a"];
        assert_eq!(a.name, "Alpha");
        assert_eq!((a.stats.received, a.stats.within_target), (5, 3));
        assert_eq!(a.stats.within_target_share, 0.6);
        assert_eq!(a.stats.mean, Some(240.0));
    }

    #[test]
    fn latency_and_verdict() {
        let r = Report::build(&facts(), &ten());
        // Latencies 0.1..=0.8 ms (100..800 µs, exact in the histogram): p50 = 4th = 0.4 ms,
        // p99 = 8th = 0.8 ms, mean 0.45 ms.
        assert_eq!(r.system_latency_ms.count, 8);
        assert_eq!(r.system_latency_ms.p50, Some(0.4));
        assert_eq!(r.system_latency_ms.p99, Some(0.8));
        assert_eq!(r.system_latency_ms.mean, Some(0.45));
        // 0.5 < 0.6 and one lost -> fail with both reasons.
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.verdict_reasons.len(), 2, "{:?}", r.verdict_reasons);
        assert_eq!(r.case_clearances, 2);
        assert_eq!(r.throughput.calls_per_s_real, round_to(10.0 / 60.0, 2));
        assert_eq!(r.throughput.calls_per_sim_hour, 10.0);
    }

    #[test]
    fn pass_needs_share_met_and_nothing_lost() {
        let mut f = facts();
        f.target_share = 0.5;
        let mut v = ten();
        v.pop(); // drop the lost one: 5 of 9 within = 0.5556 >= 0.5
        let r = Report::build(&f, &v);
        assert_eq!(r.within_target_share, 0.5556);
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.verdict_reasons);
        assert!(r.summary_text().ends_with("verdict    PASS"));
        // A failed call fails the run even when the target is met.
        f.calls.failed = 1;
        let r = Report::build(&f, &v);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.summary_text()
                .lines()
                .last()
                .unwrap_or("")
                .contains("call(s) failed")
        );
        // No incidents at all proves nothing.
        assert_eq!(Report::build(&facts(), &[]).verdict, Verdict::Fail);
    }

    #[test]
    fn json_has_the_fields_the_issue_names() {
        let r = Report::build(&facts(), &ten());
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        for key in [
            "received",
            "dispatched",
            "on_scene",
            "cleared",
            "open_at_end",
            "lost",
        ] {
            assert!(j["incidents"][key].is_u64(), "incidents.{key}");
        }
        for key in ["p50", "p90", "p99", "mean"] {
            assert!(j["response_time_s"][key].is_f64(), "response_time_s.{key}");
            assert!(j["response_time_s"]["by_priority"]["P1"][key].is_f64());
        }
        assert!(j["system_latency_ms"]["p50"].is_f64());
        assert!(j["system_latency_ms"]["p99"].is_f64());
        assert_eq!(j["within_target_share"], 0.5);
        assert_eq!(j["target_s"], 300.0);
        assert_eq!(j["cases_opened"], 2);
        assert_eq!(j["verdict"], "fail");
        assert_eq!(j["response_time_s"]["by_sub_bureau"]["b"]["name"], "Beta");
        assert!(j["throughput"]["calls_per_s_real"].is_f64());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Verdict::Pass.exit_code(), 0);
        assert_eq!(Verdict::Fail.exit_code(), 1);
    }
}
