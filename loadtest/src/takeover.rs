//! Takeover accounting (`--redis`): which incidents lived through a change of their district's
//! owner node.
//!
//! A district node holds each of its districts under a lease in Redis (`district:{D}:lease` =
//! `{epoch} {token} {node}`, see `dispatch_cluster::lease`); every new holder raises the
//! district's epoch. The harness reads every district's lease every [`WATCH_EVERY`] of real
//! time ([`watch`]) and keeps the changes ([`LeaseLog`]). An incident *went through a takeover*
//! when its district's epoch when intake received it differs from the epoch when an officer
//! arrived on scene (or at the end of the run, if none did): its district's state moved to
//! another node (or back) while it was open.
//!
//! The epoch at a moment is the last one seen at or before it; a district seen free (between a
//! crashed owner's lease lapsing and the next node taking it) keeps its last epoch; before the
//! first sighting the first one seen counts. Sampling misses a move that comes and goes between
//! two reads (within 250 ms real time, several cluster seconds at a high clock scale): the
//! counts are a lower bound.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dispatch_core::Timestamp;
use dispatch_core::clock::SharedClock;
use parking_lot::Mutex;

use crate::report::IncidentRecord;
use crate::{Error, Result};

/// Real interval between two reads of the leases.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// A district's holder as read: epoch and node, `None` while the lease is free.
pub type Seen = Option<(u64, String)>;

/// The lease changes seen per district, in cluster time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseLog {
    /// District id -> each change: when it was first seen, and the holder then.
    changes: BTreeMap<String, Vec<(Timestamp, Seen)>>,
}

impl LeaseLog {
    /// Records that `district` was held as `seen` at `at`; kept only when it differs from the
    /// last reading of that district. Readings must come in time order per district.
    pub fn observe(&mut self, at: Timestamp, district: &str, seen: Seen) {
        let changes = self.changes.entry(district.to_owned()).or_default();
        if changes.last().is_none_or(|(_, last)| *last != seen) {
            changes.push((at, seen));
        }
    }

    /// `district`'s epoch at `at`: the last epoch seen at or before `at`, else the first seen
    /// after it; `None` when no holder of it was ever seen.
    pub fn epoch_at(&self, district: &str, at: Timestamp) -> Option<u64> {
        let changes = self.changes.get(district)?;
        let epochs = changes
            .iter()
            .filter_map(|(t, seen)| seen.as_ref().map(|(epoch, _)| (*t, *epoch)));
        let mut before = None;
        for (t, epoch) in epochs {
            if t <= at {
                before = Some(epoch);
            } else {
                return before.or(Some(epoch));
            }
        }
        before
    }

    /// Per district seen held, how many times its owner changed: readings whose epoch differs
    /// from the last epoch seen before them (a free lease in between is no change by itself).
    pub fn owner_changes(&self) -> BTreeMap<String, u64> {
        self.changes
            .iter()
            .filter(|(_, changes)| changes.iter().any(|(_, seen)| seen.is_some()))
            .map(|(district, changes)| {
                let mut last: Option<u64> = None;
                let mut n = 0;
                for (epoch, _) in changes.iter().filter_map(|(_, seen)| seen.as_ref()) {
                    if last.is_some_and(|l| l != *epoch) {
                        n += 1;
                    }
                    last = Some(*epoch);
                }
                (district.clone(), n)
            })
            .collect()
    }

    /// The incidents among `incidents` whose district's epoch when received differs from its
    /// epoch when an officer arrived on scene, or at `end` (the end of the run) for one never
    /// reached. Incidents without a receipt time or in a district never seen held are not
    /// counted.
    pub fn went_through_takeover(
        &self,
        incidents: &[IncidentRecord],
        end: Timestamp,
    ) -> HashSet<String> {
        incidents
            .iter()
            .filter(|i| {
                let Some(received) = i.received_at else {
                    return false;
                };
                let until = i.on_scene_at.unwrap_or(end);
                match (
                    self.epoch_at(&i.district_id, received),
                    self.epoch_at(&i.district_id, until),
                ) {
                    (Some(a), Some(b)) => a != b,
                    _ => false,
                }
            })
            .map(|i| i.incident_id.clone())
            .collect()
    }
}

/// What the takeover section of a report is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TakeoverFacts {
    /// Incidents that went through a takeover ([`LeaseLog::went_through_takeover`]).
    pub incidents: HashSet<String>,
    /// Owner changes seen per district ([`LeaseLog::owner_changes`]).
    pub owner_changes: BTreeMap<String, u64>,
}

impl TakeoverFacts {
    /// The facts of `log` over a run's `incidents`, which ended at `end`.
    pub fn from_log(log: &LeaseLog, incidents: &[IncidentRecord], end: Timestamp) -> Self {
        Self {
            incidents: log.went_through_takeover(incidents, end),
            owner_changes: log.owner_changes(),
        }
    }
}

/// A running lease watch: its log, filled until the watch is dropped.
#[derive(Debug)]
pub struct LeaseWatch {
    log: Arc<Mutex<LeaseLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseWatch {
    /// Starts reading the leases of `districts` in the Redis at `url` every [`WATCH_EVERY`],
    /// stamping each reading with `clock`. The first reading is taken before this returns.
    ///
    /// Errors: [`Error::Setup`] when the URL is malformed or Redis does not answer the first
    /// reading.
    pub async fn start(url: &str, districts: Vec<String>, clock: SharedClock) -> Result<Self> {
        let con = dispatch_bus::redis_conn::connect(url)
            .map_err(|e| Error::Setup(format!("--redis {url}: {e}")))?;
        let log = Arc::new(Mutex::new(LeaseLog::default()));
        let first = dispatch_cluster::lease::holders(&con, &districts)
            .await
            .map_err(|e| {
                Error::Setup(format!("--redis {url}: reading the district leases: {e}"))
            })?;
        record(&log, &clock, &districts, first);
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                let mut tick = tokio::time::interval(WATCH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match dispatch_cluster::lease::holders(&con, &districts).await {
                        Ok(holders) => record(&log, &clock, &districts, holders),
                        Err(e) => tracing::warn!(error = %e, "reading the district leases failed"),
                    }
                }
            }
        });
        Ok(Self { log, task })
    }

    /// Stops the watch and answers its log.
    pub fn stop(self) -> LeaseLog {
        self.task.abort();
        self.log.lock().clone()
    }
}

fn record(
    log: &Mutex<LeaseLog>,
    clock: &SharedClock,
    districts: &[String],
    holders: Vec<Option<dispatch_cluster::Holder>>,
) {
    let at = clock.now();
    let mut log = log.lock();
    for (district, holder) in districts.iter().zip(holders) {
        log.observe(at, district, holder.map(|h| (h.epoch, h.node)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::EndState;

    const T0: i64 = 1_700_000_000_000;

    fn at(s: i64) -> Timestamp {
        Timestamp(T0 + s * 1_000)
    }

    fn held(epoch: u64, node: &str) -> Seen {
        Some((epoch, node.to_owned()))
    }

    fn incident(
        id: &str,
        district: &str,
        received_s: i64,
        on_scene_s: Option<i64>,
    ) -> IncidentRecord {
        IncidentRecord {
            incident_id: id.into(),
            priority: None,
            sub_bureau_id: "nancheng".into(),
            district_id: district.into(),
            end: EndState::Cleared,
            received_at: Some(at(received_s)),
            dispatched_at: None,
            on_scene_at: on_scene_s.map(at),
            system_latency_ms: None,
            waited_for_officer: false,
        }
    }

    /// d1: node a (epoch 3) until a dies at 100 s, free from 110 s, b takes it at 130 s
    /// (epoch 4), then a restarted a takes it back at 400 s (epoch 5). d2: node b throughout.
    fn log() -> LeaseLog {
        let mut log = LeaseLog::default();
        for s in (0..110).step_by(10) {
            log.observe(at(s), "d1", held(3, "a"));
            log.observe(at(s), "d2", held(7, "b"));
        }
        log.observe(at(110), "d1", None);
        log.observe(at(120), "d1", None);
        for s in (130..400).step_by(10) {
            log.observe(at(s), "d1", held(4, "b"));
            log.observe(at(s), "d2", held(7, "b"));
        }
        log.observe(at(400), "d1", held(5, "a"));
        log.observe(at(500), "d3", None);
        log
    }

    #[test]
    fn only_changes_are_kept() {
        let log = log();
        // d1: 3 at 0, free at 110, 4 at 130, 5 at 400; d2: one reading; d3: free.
        assert_eq!(log.changes["d1"].len(), 4);
        assert_eq!(log.changes["d2"], vec![(at(0), held(7, "b"))]);
    }

    #[test]
    fn epoch_at_a_moment_is_the_last_seen_and_a_free_lease_keeps_it() {
        let log = log();
        assert_eq!(log.epoch_at("d1", at(50)), Some(3));
        assert_eq!(log.epoch_at("d1", at(115)), Some(3), "free: the last epoch");
        assert_eq!(log.epoch_at("d1", at(130)), Some(4));
        assert_eq!(log.epoch_at("d1", at(999)), Some(5));
        assert_eq!(
            log.epoch_at("d1", Timestamp(T0 - 5_000)),
            Some(3),
            "before any reading"
        );
        assert_eq!(log.epoch_at("d3", at(600)), None, "never held");
        assert_eq!(log.epoch_at("d9", at(0)), None, "never read");
    }

    #[test]
    fn owner_changes_count_epoch_moves_not_free_spells() {
        let changes = log().owner_changes();
        // d1: 3 -> 4 -> 5; d2 never moved; d3 never held, so not listed.
        assert_eq!(
            changes,
            BTreeMap::from([("d1".to_owned(), 2), ("d2".to_owned(), 0)])
        );
    }

    #[test]
    fn an_incident_open_across_an_epoch_change_went_through_a_takeover() {
        let incidents = [
            incident("before", "d1", 10, Some(90)),   // 3 -> 3
            incident("across", "d1", 95, Some(140)),  // 3 -> 4
            incident("in-gap", "d1", 112, Some(125)), // 3 -> 3 (free, no new owner yet)
            incident("unreached", "d1", 200, None),   // 4 -> 5 at the end (600)
            incident("after", "d1", 135, Some(300)),  // 4 -> 4
            incident("other", "d2", 95, Some(140)),   // 7 -> 7
            incident("unknown", "d9", 95, Some(140)), // never seen
        ];
        let mut got: Vec<String> = log()
            .went_through_takeover(&incidents, at(600))
            .into_iter()
            .collect();
        got.sort();
        assert_eq!(got, vec!["across".to_owned(), "unreached".to_owned()]);
        let facts = TakeoverFacts::from_log(&log(), &incidents, at(350));
        // At an end of 350 s the unreached one (received at 200, epoch 4) stayed on 4.
        assert_eq!(facts.incidents, HashSet::from(["across".to_owned()]));
    }
}
