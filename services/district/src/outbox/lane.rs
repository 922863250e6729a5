//! One lane: a bounded queue of one destination's items and the task that delivers them, in
//! order, with a deadline on every call, retries with backoff for transient failures, and the
//! dead-letter record for the rest.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatch_bus::ports::PortError;
use dispatch_core::district::Effect;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::OutboxConfig;
use super::dead_letter::{DeadLetter, DeadLetterSink, Reason};
use super::destination::Destination;

/// How far the outbox is in its shutdown; lanes watch it. Ordered: each step implies the one
/// before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stop {
    /// Taking and delivering effects.
    Running,
    /// Flush began: take nothing new, deliver what is queued.
    Closing,
    /// The flush deadline passed: dead-letter what is left and end.
    Abort,
}

/// Counters of one lane; cheap atomics read by [`crate::Outbox::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Effects delivered.
    pub delivered: AtomicU64,
    /// Calls repeated after a transient failure.
    pub retried: AtomicU64,
    /// Effects sent to the dead letters, for any reason.
    pub dead_lettered: AtomicU64,
    /// Of `dead_lettered`, those refused because the lane was full.
    pub overflowed: AtomicU64,
    /// Of `dead_lettered`, those left at the flush deadline.
    pub left_at_shutdown: AtomicU64,
    /// Effects accepted into the lane and not yet delivered or dead-lettered.
    pub pending: AtomicU64,
    /// Dead letters set aside for redelivery and not yet sent again (a gauge).
    pub parked: AtomicU64,
    /// Dead letters sent again into the lane by the redrive (one per effect per redrive).
    pub redriven: AtomicU64,
}

/// What a lane and [`crate::Outbox::emit`] share to set an effect aside.
#[derive(Clone)]
pub(super) struct Graveyard {
    pub counters: Arc<Counters>,
    pub sink: Arc<dyn DeadLetterSink>,
    /// Dead letters that may still be delivered ([`Reason::redelivered`]), oldest first, until
    /// the redrive sends them again.
    pub parked: Arc<Mutex<Vec<Effect>>>,
    /// Keys ([`key`]) of the effects the redrive sent again and not yet delivered.
    pub redriving: Arc<Mutex<HashSet<String>>>,
}

/// What tells one effect from another for the redrive: the dispatch id of an order, the
/// incident and revision of an update, the incident of a case.
fn key(effect: &Effect) -> String {
    match effect {
        Effect::Order(o) => format!("order:{}", o.dispatch_id),
        Effect::IncidentChanged(i) => format!("update:{}@{}", i.id, i.revision),
        Effect::OpenCase(i) => format!("case:{}", i.id),
    }
}

impl Graveyard {
    /// Logs, counts and records `effect` as a dead letter, and parks it when it may still be
    /// delivered. An effect the redrive sent again that fails again is parked again quietly
    /// (a warning, no second record): one dead letter per effect, however long the outage.
    pub fn bury(&self, effect: Effect, reason: Reason) {
        let letter = DeadLetter::new(effect, reason);
        let again = self.redriving.lock().contains(&key(&letter.effect));
        match letter.reason {
            Reason::LaneFull { .. } => {
                self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            Reason::Shutdown { .. } => {
                self.counters
                    .left_at_shutdown
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if letter.reason.redelivered() {
            // Counted before the lane lets go of it (see `bury_taken`), so the delivered mark
            // never sees it in neither place.
            self.counters.parked.fetch_add(1, Ordering::Relaxed);
            self.parked.lock().push(letter.effect.clone());
        }
        if again {
            tracing::warn!(
                lane = %letter.lane,
                destination = %letter.destination,
                kind = %letter.kind,
                incident = %letter.incident_id,
                error = %letter.reason,
                "dead letter sent again still undelivered, parked for the next redrive"
            );
            return;
        }
        tracing::error!(
            lane = %letter.lane,
            destination = %letter.destination,
            kind = %letter.kind,
            incident = %letter.incident_id,
            error = %letter.reason,
            "effect dead-lettered"
        );
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.sink.record(letter);
    }

    /// Takes every parked effect, oldest first. The `parked` gauge is left as it is: the
    /// caller lowers it with [`Graveyard::unpark`] once the effects are back in a lane.
    /// Their keys are remembered until they are delivered ([`Graveyard::delivered_items`]), so
    /// the set holds only effects sent again and not yet delivered.
    pub fn take_parked(&self) -> Vec<Effect> {
        let effects = std::mem::take(&mut *self.parked.lock());
        self.redriving.lock().extend(effects.iter().map(key));
        effects
    }

    /// Lowers the `parked` gauge by `n` effects sent again, and counts them as redriven.
    pub fn unpark(&self, n: usize) {
        let n = n as u64;
        self.counters.parked.fetch_sub(n, Ordering::Relaxed);
        self.counters.redriven.fetch_add(n, Ordering::Relaxed);
    }

    /// [`Graveyard::bury`] for an effect the lane had taken.
    fn bury_taken(&self, effect: Effect, reason: Reason) {
        // Parked first, then no longer pending: the delivered mark never sees a gap.
        self.bury(effect, reason);
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
    }

    fn delivered(&self, n: usize) {
        let n = n as u64;
        self.counters.pending.fetch_sub(n, Ordering::Relaxed);
        self.counters.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// [`Graveyard::delivered`] for `items`, forgetting those the redrive had sent again.
    fn delivered_items<T: Clone + Into<Effect>>(&self, items: &[T]) {
        {
            let mut redriving = self.redriving.lock();
            if !redriving.is_empty() {
                for item in items {
                    redriving.remove(&key(&item.clone().into()));
                }
            }
        }
        self.delivered(items.len());
    }
}

/// A lane's task, before it runs.
pub(super) struct LaneTask<D: Destination> {
    pub destination: D,
    pub rx: mpsc::Receiver<D::Item>,
    pub stop: watch::Receiver<Stop>,
    pub config: OutboxConfig,
    pub graveyard: Graveyard,
}

/// How far the delivery of one batch got; read when the flush deadline cuts it short.
#[derive(Debug, Default)]
struct Progress {
    /// Items of the batch delivered or dead-lettered.
    done: usize,
    /// Failed tries of the current call.
    tries: u32,
}

impl<D: Destination> LaneTask<D> {
    /// Delivers until the outbox is flushed (or every handle dropped) and the lane is empty, or
    /// until the flush deadline passes; then dead-letters whatever is left.
    pub async fn run(self) {
        let LaneTask {
            destination,
            mut rx,
            mut stop,
            config,
            graveyard,
        } = self;
        let courier = Courier {
            destination,
            config,
            graveyard,
        };
        let mut batch: Vec<D::Item> = Vec::with_capacity(D::BATCH);
        let mut seen = Stop::Running;
        loop {
            tokio::select! {
                biased;
                now = beyond(&mut stop, seen) => {
                    seen = now;
                    if seen == Stop::Abort {
                        break;
                    }
                    // Refuse new sends; `recv_many` still yields what is queued, then 0.
                    rx.close();
                    continue;
                }
                n = rx.recv_many(&mut batch, D::BATCH) => if n == 0 {
                    break;
                },
            }
            let mut progress = Progress::default();
            // Only the deadline interrupts a delivery: a flush lets it finish.
            let finished = tokio::select! {
                biased;
                _ = beyond(&mut stop, Stop::Closing) => false,
                () = courier.deliver(&batch, &mut progress) => true,
            };
            let rest = batch.drain(..).skip(progress.done);
            if !finished {
                for item in rest {
                    let tries = progress.tries;
                    courier
                        .graveyard
                        .bury_taken(item.into(), Reason::Shutdown { tries });
                }
                break;
            }
        }
        rx.close();
        while let Ok(item) = rx.try_recv() {
            courier
                .graveyard
                .bury_taken(item.into(), Reason::Shutdown { tries: 0 });
        }
    }
}

/// Resolves with the stop level once it is past `seen`; never, once the outbox is gone (its
/// lanes then drain what they hold and end when their channel closes).
async fn beyond(stop: &mut watch::Receiver<Stop>, seen: Stop) -> Stop {
    // The guard `wait_for` answers is not `Send`: copy the value out before any await.
    let now = stop.wait_for(|s| *s > seen).await.map(|now| *now);
    match now {
        Ok(now) => now,
        Err(_) => std::future::pending().await,
    }
}

/// Delivers batches to one destination.
struct Courier<D: Destination> {
    destination: D,
    config: OutboxConfig,
    graveyard: Graveyard,
}

impl<D: Destination> Courier<D> {
    async fn deliver(&self, batch: &[D::Item], progress: &mut Progress) {
        match self.call(batch, &mut progress.tries).await {
            Ok(()) => {
                self.graveyard.delivered_items(batch);
                progress.done = batch.len();
            }
            Err(Reason::Refused { error }) if batch.len() > 1 => {
                // The notification service refuses a whole batch for one bad publication and
                // appends nothing; one by one, only the bad one is dead-lettered and the others
                // keep their order.
                tracing::warn!(
                    lane = %D::LANE,
                    effects = batch.len(),
                    code = ?error.code(),
                    error = %error,
                    "batch refused, sending its effects one by one"
                );
                for item in batch {
                    match self
                        .call(std::slice::from_ref(item), &mut progress.tries)
                        .await
                    {
                        Ok(()) => self.graveyard.delivered_items(std::slice::from_ref(item)),
                        Err(reason) => self.graveyard.bury_taken(item.clone().into(), reason),
                    }
                    progress.done += 1;
                }
            }
            Err(reason) => {
                for item in batch {
                    self.graveyard
                        .bury_taken(item.clone().into(), reason.clone());
                }
                progress.done = batch.len();
            }
        }
    }

    /// One call under the client's deadline (the outbox's `call_deadline`), retried while the
    /// failure is transient ([`PortError::is_transient`]: unreachable, hung, overloaded, or
    /// failed on the peer's side, which may pass) and tries remain.
    ///
    /// Errors: [`Reason::Refused`] for a refusal, [`Reason::GaveUp`] after `max_tries`
    /// transient failures.
    async fn call(&self, items: &[D::Item], tries: &mut u32) -> Result<(), Reason> {
        *tries = 0;
        let destination = &self.destination;
        // A hung peer is `DeadlineExceeded` from the client: a failed try like any other.
        let attempt = || async move { destination.send(items).await };
        let counters = &self.graveyard.counters;
        let result = attempt
            .retry(self.backoff())
            .when(PortError::is_transient)
            .notify(|e: &PortError, after: Duration| {
                *tries += 1;
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    lane = %D::LANE,
                    effects = items.len(),
                    code = ?e.code(),
                    error = %e,
                    retry_in_ms = after.as_millis(),
                    "delivery failed, retrying"
                );
            })
            .await;
        result.map_err(|error| {
            *tries += 1;
            if error.is_transient() {
                Reason::GaveUp {
                    tries: *tries,
                    error,
                }
            } else {
                Reason::Refused { error }
            }
        })
    }

    fn backoff(&self) -> ExponentialBuilder {
        let c = &self.config;
        // backon counts retries, not tries.
        let retries = c.max_tries.saturating_sub(1);
        ExponentialBuilder::default()
            .with_min_delay(c.min_backoff)
            .with_max_delay(c.max_backoff)
            .with_max_times(usize::try_from(retries).unwrap_or(usize::MAX))
    }
}
