//! The delivered mark of each district's journal: up to which entry every effect has left the
//! node (delivered, or refused by its destination and recorded as a dead letter). A dead letter
//! that may still be delivered stays parked for the outbox's redrive and holds the mark back, so
//! after a crash it is delivered again from the journal. A new owner delivers again the effects
//! of the entries after the mark; receivers are idempotent (an order by its dispatch id, an
//! incident update by its revision, a case by its incident), so an effect delivered twice lands
//! once.
//!
//! How the mark is found without tagging every effect: each actor records the last entry whose
//! effects it handed to the outbox ([`Marks::emitted`], written after the hand-over). A tracker
//! task reads every district's record first, and then the outbox's counters; when no lane holds
//! an effect at that moment and none is parked (`undelivered() == 0`), everything handed over
//! before the read has left, so the records read are safe to store as delivered. Under steady
//! load a lane empties between batches many times a second; a mark that lags only means more is
//! delivered again after a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::Outbox;
use crate::actor::Recovered;
use crate::journal::Journal;

/// How often the tracker tries to advance the marks.
pub const TRACK_EVERY: Duration = Duration::from_millis(250);

/// The last entry each district handed to the outbox.
#[derive(Debug, Default)]
pub struct Marks {
    emitted: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Marks {
    /// The record of `district`, shared with its actor.
    pub fn emitted(&self, district: &str) -> Arc<AtomicU64> {
        self.emitted
            .lock()
            .entry(district.to_owned())
            .or_default()
            .clone()
    }

    /// Stops tracking `district` (its actor is gone from this node; its next owner tracks it).
    pub fn forget(&self, district: &str) {
        self.emitted.lock().remove(district);
    }

    fn read(&self) -> Vec<(String, u64)> {
        self.emitted
            .lock()
            .iter()
            .map(|(d, m)| (d.clone(), m.load(Ordering::Acquire)))
            .collect()
    }
}

/// Runs the tracker for ever: stores each district's delivered mark whenever the outbox is
/// empty and the mark moved.
pub async fn track(marks: Arc<Marks>, outbox: Outbox, journal: Arc<dyn Journal>) {
    let mut stored: HashMap<String, u64> = HashMap::new();
    let mut tick = tokio::time::interval(TRACK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Marks first, then the lanes: see the module docs.
        let read = marks.read();
        let stats = outbox.stats();
        if stats.notification.undelivered() > 0 || stats.case_squad.undelivered() > 0 {
            continue;
        }
        for (district, seq) in read {
            if stored.get(&district).is_some_and(|s| *s >= seq) {
                continue;
            }
            match journal.delivered(&district, seq).await {
                Ok(()) => {
                    stored.insert(district, seq);
                }
                Err(e) => tracing::warn!(%district, seq, error = %e, "delivered mark not stored"),
            }
        }
    }
}

impl Outbox {
    /// Queues again the effects of every recovered entry past the delivered mark, in order.
    pub fn redeliver(&self, recovered: &Recovered) {
        let loaded = &recovered.loaded;
        let mut n = 0;
        for (_, entry) in loaded.entries.iter().filter(|(s, _)| *s > loaded.delivered) {
            n += entry.effects.len();
            self.emit(entry.effects.clone());
        }
        if n > 0 {
            tracing::info!(district = %recovered.state.id(), effects = n, after = loaded.delivered,
                "delivering again the effects not marked delivered");
        }
    }
}
