//! Delivery of what the district actors decide, in one bounded lane per destination, with a
//! dead-letter record for what cannot be delivered.
//!
//! Actors must never wait on the network, so they hand their effects to [`Outbox::emit`] and go
//! on. Each effect goes to the lane of its destination (DESIGN.md section 5, "bounded
//! per-destination lanes with a dead-letter stream"):
//! - the **notification** lane: dispatch orders for terminals and incident updates for the
//!   command center, one `Publish` per batch of up to 256, in the order emitted;
//! - the **case-squad** lane: `OpenCase`, one case per call, in the order emitted.
//!
//! Each lane has its own task, so a failing or slow case squad never delays a terminal's order,
//! and a failing notification service never delays a case. Order across lanes is not kept:
//! a case may be opened before the command center sees the clearance that led to it; the case
//! squad reads everything it needs from the incident it is given.
//!
//! **One notification lane, not one per audience.** Order must hold per audience (a terminal
//! must see its orders, the command center its updates, in the order emitted); one FIFO lane
//! keeps that, and the district's order across audiences too. Splitting it further per audience
//! would not isolate anything today: the notification service refuses a bad publication with
//! `InvalidArgument` before appending anything, which is not retried, and the lane then re-sends
//! that batch one publication at a time, so only the bad one is dead-lettered and its audience's
//! next publications go on. Transient failures (down, overloaded, hung) belong to the service as
//! a whole and hit every audience alike, where per-audience lanes would only multiply calls (one
//! `Publish` per audience instead of one per batch) without delivering anything sooner. To be
//! revisited when feeds become Redis streams that can fail one at a time; effects are routed
//! in one `match` in [`Outbox::emit`] (mirrored by [`Lane::of`]).
//!
//! **Rules.**
//! - [`Outbox::emit`] never blocks or awaits. When a lane is full, the effect is not queued: it
//!   goes to the dead letters at once, with an error log line and an increment of the lane's
//!   `dead_lettered` and `overflowed` counters. Nothing is dropped silently.
//! - Every call has a deadline ([`OutboxConfig::call_deadline`], set on the clients); a call
//!   that does not answer in time is a failed try with [`PortError::DeadlineExceeded`].
//! - A transient failure ([`PortError::is_transient`]: unavailable, deadline exceeded,
//!   overloaded, internal) is retried with exponential backoff (`backon`) up to
//!   [`OutboxConfig::max_tries`] tries; a [`PortError::Refused`] is not. After the last try, or at
//!   once on a refusal, the effect goes to the dead letters: a log line at error level naming
//!   the lane, destination, effect kind, incident id and last error, a counter increment, and a
//!   record in the [`DeadLetterSink`] (in Redis, the stream of [`RedisDeadLetters`]).
//! - A dead letter is not the end of an effect that may still be delivered (its lane was full,
//!   its destination stayed down for every try, the node was shutting down): it is parked, and
//!   every [`OutboxConfig::redrive_every`] the parked effects go back into their lane
//!   ([`Outbox::redrive`]), until delivered. Only a refusal is final. While anything is parked
//!   the journal's delivered mark stays put, so a crash loses nothing parked either.
//! - While a lane retries, the effects behind it wait: order within a lane is kept, and a
//!   lane holds at most `lane_capacity` of them.
//! - [`Outbox::flush`] stops taking effects, lets the lanes drain up to a deadline, then sends
//!   what is left to the dead letters and reports it, so a node exits within a bound.
//!
//! Receivers are idempotent, so a call retried after it was in fact delivered does no harm:
//! each publication carries a `publication_id` (the dispatch id of an order,
//! `{incident_id}@{revision}` of an incident update) that its feed appends once, and the case
//! squad opens one case per incident. What is in the lanes or parked when the process dies is
//! delivered again by the district's next owner from its journal (see the delivered mark in
//! `delivery.rs`).

mod dead_letter;
mod destination;
pub(crate) use destination::publication_of;
mod lane;
mod redis_dead_letters;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[cfg(doc)]
use dispatch_bus::ports::PortError;
use dispatch_bus::ports::{CaseClient, NotifyClient};
use dispatch_bus::trace::TraceContext;
use dispatch_cluster::config::millis;
use dispatch_core::district::Effect;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use self::dead_letter::{
    DeadLetter, DeadLetterSink, EffectKind, Lane, MemoryDeadLetters, Reason,
};
use self::destination::{Case, Cases, Destination, Notice, Notify, Traced};
use self::lane::{Counters, Graveyard, LaneTask, Stop};
pub use self::redis_dead_letters::RedisDeadLetters;

/// Why the outbox could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A configuration value breaks its rule.
    #[error("outbox.{field}: {rule}")]
    Config {
        /// The field of [`OutboxConfig`].
        field: &'static str,
        /// The rule and the value given.
        rule: String,
    },
}

/// Result of outbox operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tunables of the outbox. Durations are written in config files as whole milliseconds
/// (`call_deadline = 5000`).
///
/// With the defaults a destination that stays down holds each batch about 66 s (backoff
/// 0.05 + 0.1 + ... + 3.2 s, then 5 s twelve times; up to 100 s more if every call hangs to
/// its deadline) before dead-lettering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Effects one lane holds waiting to be sent (the batch in flight comes on top: at most
    /// 256 publications or 1 case) before new ones are dead-lettered; at least 1. Default
    /// 10,000: the Dongguan scenario's peak of 360 calls an hour makes about 6 publications a
    /// call (queued, dispatched, the order, acknowledged, on scene, cleared), so the
    /// notification lane holds over 4 hours of peak at scale 1 and over 4 real minutes at the
    /// load tests' scale 60, in tens of megabytes at most (an effect takes well under 4 KiB
    /// with intake's 1,000-character limit on descriptions).
    pub lane_capacity: usize,
    /// Tries of one call before its effects are dead-lettered, the first included; at least 1.
    /// Default 20: with the default backoff that is about a minute, long enough for a peer to
    /// restart or be redeployed, short enough that a lane is not held for longer than an order
    /// is worth (the on-scene target is 5 minutes).
    pub max_tries: u32,
    /// Deadline of each call, milliseconds in config files; more than 0. Default 5 s: over a
    /// thousand times the 3.2 ms p99 of a unary call on this hardware (STACK.md), so only a
    /// hung or drowning peer reaches it.
    #[serde(with = "millis")]
    pub call_deadline: Duration,
    /// Wait before the first retry, doubling after each failed try; milliseconds in config
    /// files; more than 0. Default 50 ms: a blip (a connection re-made) costs a terminal's
    /// order little, while a down peer is not hammered.
    #[serde(with = "millis")]
    pub min_backoff: Duration,
    /// Longest wait between tries, milliseconds in config files; at least `min_backoff`.
    /// Default 5 s: once a peer is back, a lane resumes within 5 s, small beside the 5-minute
    /// on-scene target.
    #[serde(with = "millis")]
    pub max_backoff: Duration,
    /// How often dead letters that may still be delivered ([`Reason::redelivered`]: the lane
    /// was full, every try failed, the node was shutting down) are sent again into their lane,
    /// milliseconds in config files; more than 0. Default 10 s: a destination back from an
    /// outage gets what it missed within seconds, while one still down costs one batch of
    /// tries per period, not a busy loop. Refused effects are never sent again.
    #[serde(with = "millis")]
    pub redrive_every: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            lane_capacity: 10_000,
            max_tries: 20,
            call_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            redrive_every: Duration::from_secs(10),
        }
    }
}

impl OutboxConfig {
    /// Most effects a lane may hold: the channel's limit is far higher, this keeps a typo from
    /// reserving gigabytes.
    pub const MAX_LANE_CAPACITY: usize = 10_000_000;

    /// Checks every rule given on the fields.
    ///
    /// Errors: [`Error::Config`] naming the first field that breaks its rule, with its value.
    pub fn validate(&self) -> Result<()> {
        let fail = |field, rule: String| Err(Error::Config { field, rule });
        if self.lane_capacity == 0 || self.lane_capacity > Self::MAX_LANE_CAPACITY {
            return fail(
                "lane_capacity",
                format!(
                    "must be 1 to {}, got {}",
                    Self::MAX_LANE_CAPACITY,
                    self.lane_capacity
                ),
            );
        }
        if self.max_tries == 0 {
            return fail("max_tries", "must be at least 1, got 0".into());
        }
        if self.call_deadline.is_zero() {
            return fail("call_deadline", "must be more than 0 ms, got 0".into());
        }
        if self.min_backoff.is_zero() {
            return fail("min_backoff", "must be more than 0 ms, got 0".into());
        }
        if self.redrive_every.is_zero() {
            return fail("redrive_every", "must be more than 0 ms, got 0".into());
        }
        if self.max_backoff < self.min_backoff {
            return fail(
                "max_backoff",
                format!(
                    "must be at least min_backoff ({} ms), got {} ms",
                    self.min_backoff.as_millis(),
                    self.max_backoff.as_millis()
                ),
            );
        }
        Ok(())
    }
}

/// Counters of one lane since the outbox started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Effects delivered.
    pub delivered: u64,
    /// Calls repeated after a transient failure (one per retry, whatever the batch size).
    pub retried: u64,
    /// Effects sent to the dead letters, for any [`Reason`]; once each, however often the
    /// redrive sends one again.
    pub dead_lettered: u64,
    /// Of `dead_lettered`, effects refused because the lane was full.
    pub overflowed: u64,
    /// Effects in the lane now: waiting or in flight.
    pub pending: u64,
    /// Dead letters waiting for the next redrive now ([`Reason::redelivered`]).
    pub parked: u64,
    /// Dead letters sent again by the redrive, one per effect per redrive.
    pub redriven: u64,
}

impl LaneStats {
    /// Effects this lane still has to deliver: queued, in flight, or parked for the redrive.
    /// The delivered mark of the journal moves only while this is 0 in every lane.
    pub fn undelivered(&self) -> u64 {
        self.pending + self.parked
    }
}

/// A snapshot of every lane's counters; see [`Outbox::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// The notification lane.
    pub notification: LaneStats,
    /// The case-squad lane.
    pub case_squad: LaneStats,
}

impl OutboxStats {
    /// The counters of `lane`.
    pub fn lane(&self, lane: Lane) -> &LaneStats {
        match lane {
            Lane::Notification => &self.notification,
            Lane::CaseSquad => &self.case_squad,
        }
    }
}

/// What [`Outbox::flush`] left undelivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Every lane emptied before the deadline.
    pub drained: bool,
    /// Notification effects left at the deadline (each sent to the dead letters).
    pub notification_left: u64,
    /// Case-squad effects left at the deadline (each sent to the dead letters).
    pub case_squad_left: u64,
}

impl FlushReport {
    /// Effects left undelivered in all lanes.
    pub fn left(&self) -> u64 {
        self.notification_left + self.case_squad_left
    }
}

/// Handle to the outbox; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    notification: LaneSender<Traced<Notice>>,
    case_squad: LaneSender<Traced<Case>>,
    /// False once a flush began.
    accepting: AtomicBool,
    stop: watch::Sender<Stop>,
    /// Held across a flush, so concurrent flushes wait for the first one's report.
    flush: tokio::sync::Mutex<Flush>,
}

/// The state of the flush.
struct Flush {
    /// The lanes' tasks; a slot is emptied when its task has ended.
    tasks: Vec<Option<JoinHandle<()>>>,
    /// The report, once a flush has finished.
    report: Option<FlushReport>,
}

/// The sending side of one lane.
struct LaneSender<T> {
    lane: Lane,
    tx: mpsc::Sender<T>,
    capacity: usize,
    graveyard: Graveyard,
}

impl<T: Into<Effect>> LaneSender<T> {
    fn push(&self, item: T, accepting: bool) {
        if !accepting {
            self.graveyard.bury(item.into(), Reason::Closed);
            return;
        }
        let counters = &self.graveyard.counters;
        // Counted before the send, so the lane never takes away what was not yet counted.
        counters.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(item) {
            counters.pending.fetch_sub(1, Ordering::Relaxed);
            let (item, reason) = match e {
                mpsc::error::TrySendError::Full(item) => (
                    item,
                    Reason::LaneFull {
                        lane: self.lane,
                        capacity: self.capacity,
                    },
                ),
                mpsc::error::TrySendError::Closed(item) => (item, Reason::Closed),
            };
            self.graveyard.bury(item.into(), reason);
        }
    }

    fn stats(&self) -> LaneStats {
        let c = &self.graveyard.counters;
        LaneStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            overflowed: c.overflowed.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
            parked: c.parked.load(Ordering::Relaxed),
            redriven: c.redriven.load(Ordering::Relaxed),
        }
    }

    fn left_at_shutdown(&self) -> u64 {
        self.graveyard
            .counters
            .left_at_shutdown
            .load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("accepting", &self.inner.accepting.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Outbox {
    /// Starts the lanes on the current Tokio runtime with [`OutboxConfig::default`] and a
    /// [`MemoryDeadLetters`] of its default capacity.
    pub fn spawn(notify: NotifyClient, cases: CaseClient) -> Outbox {
        Self::start_checked(
            notify,
            cases,
            OutboxConfig::default(),
            Arc::new(MemoryDeadLetters::default()),
        )
    }

    /// Starts the lanes on the current Tokio runtime with `config`, recording dead letters in
    /// `dead_letters`. Every call of `notify` and `cases` takes `config.call_deadline`.
    ///
    /// Errors: [`Error::Config`] when `config` breaks a rule ([`OutboxConfig::validate`]).
    pub fn start(
        notify: NotifyClient,
        cases: CaseClient,
        config: OutboxConfig,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Result<Outbox> {
        config.validate()?;
        Ok(Self::start_checked(notify, cases, config, dead_letters))
    }

    fn start_checked(
        notify: NotifyClient,
        cases: CaseClient,
        config: OutboxConfig,
        sink: Arc<dyn DeadLetterSink>,
    ) -> Outbox {
        let notify = notify.with_deadline(config.call_deadline);
        let cases = cases.with_deadline(config.call_deadline);
        let (stop, stop_rx) = watch::channel(Stop::Running);
        let (notification, notification_task) =
            lane(Notify(notify), config, &sink, stop_rx.clone());
        let (case_squad, case_task) = lane(Cases(cases), config, &sink, stop_rx);
        let outbox = Outbox {
            inner: Arc::new(Inner {
                notification,
                case_squad,
                accepting: AtomicBool::new(true),
                stop,
                flush: tokio::sync::Mutex::new(Flush {
                    tasks: vec![Some(notification_task), Some(case_task)],
                    report: None,
                }),
            }),
        };
        tokio::spawn(redrive_every(
            Arc::downgrade(&outbox.inner),
            config.redrive_every,
        ));
        outbox
    }

    /// Sends every parked dead letter ([`Reason::redelivered`]) again into its lane, oldest
    /// first, and answers how many. Does nothing once [`Outbox::flush`] began (they stay
    /// parked; the journal's delivered mark has not passed them, so the node's next owner
    /// delivers them again). Called by the outbox every [`OutboxConfig::redrive_every`]; an
    /// operator's tool or a test may call it sooner.
    ///
    /// A lane still full parks what does not fit again, so nothing is lost; effects sent again
    /// queue behind newer ones, which receivers tolerate (an incident update carries its
    /// revision, an order its dispatch id, a case its incident).
    pub fn redrive(&self) -> usize {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Acquire) {
            return 0;
        }
        let mut sent = 0;
        for graveyard in [&inner.notification.graveyard, &inner.case_squad.graveyard] {
            let effects = graveyard.take_parked();
            let n = effects.len();
            if n == 0 {
                continue;
            }
            // Queued (pending raised) before the gauge is lowered: never in neither.
            self.emit(effects);
            graveyard.unpark(n);
            sent += n;
        }
        if sent > 0 {
            tracing::info!(effects = sent, "dead letters sent again");
        }
        sent
    }

    /// Queues effects for delivery, each in the lane of its destination, in order. Never
    /// blocks: an effect that finds its lane full, or comes after [`Outbox::flush`] began,
    /// goes to the dead letters (logged at error level and counted).
    pub fn emit(&self, effects: Vec<Effect>) {
        self.emit_traced(effects, None);
    }

    /// [`Outbox::emit`] for effects caused by a request made in `trace`: the calls delivering
    /// them continue that trace.
    pub fn emit_traced(&self, effects: Vec<Effect>, trace: Option<TraceContext>) {
        let inner = &self.inner;
        for effect in effects {
            let accepting = inner.accepting.load(Ordering::Acquire);
            let notice = |item| Traced { item, trace };
            match effect {
                Effect::Order(o) => inner.notification.push(notice(Notice::Order(o)), accepting),
                Effect::IncidentChanged(i) => inner
                    .notification
                    .push(notice(Notice::IncidentChanged(i)), accepting),
                Effect::OpenCase(i) => inner.case_squad.push(
                    Traced {
                        item: Case(i),
                        trace,
                    },
                    accepting,
                ),
            }
        }
    }

    /// A snapshot of every lane's counters: a few atomic loads, cheap enough for every metrics
    /// scrape.
    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            notification: self.inner.notification.stats(),
            case_squad: self.inner.case_squad.stats(),
        }
    }

    /// Stops taking effects (later ones go to the dead letters as [`Reason::Closed`]), lets
    /// every lane deliver what it holds for up to `deadline`, then sends what is still queued
    /// or in flight to the dead letters as [`Reason::Shutdown`] and reports it. Returns soon
    /// after `deadline` at the latest, whatever the peers do. Calling it again (from any clone)
    /// answers the first flush's report, once that one has finished; a flush that was
    /// cancelled is resumed by the next one.
    pub async fn flush(&self, deadline: Duration) -> FlushReport {
        let inner = &self.inner;
        inner.accepting.store(false, Ordering::Release);
        inner.stop.send_replace(Stop::Closing);
        let mut flush = inner.flush.lock().await;
        if let Some(report) = flush.report {
            return report;
        }
        let tasks = &mut flush.tasks;
        // A flush cancelled after the deadline has already aborted the lanes: not drained.
        let drained = tokio::time::timeout(deadline, join(tasks)).await.is_ok()
            && *inner.stop.borrow() < Stop::Abort;
        if !drained {
            tracing::warn!(
                deadline_ms = deadline.as_millis(),
                "outbox not drained by the flush deadline, dead-lettering what is left"
            );
            inner.stop.send_replace(Stop::Abort);
            // Aborting lanes only drop their calls and record dead letters: quick.
            join(tasks).await;
        }
        let report = FlushReport {
            drained,
            notification_left: inner.notification.left_at_shutdown(),
            case_squad_left: inner.case_squad.left_at_shutdown(),
        };
        tracing::info!(
            drained = report.drained,
            notification_left = report.notification_left,
            case_squad_left = report.case_squad_left,
            "outbox flushed"
        );
        flush.report = Some(report);
        report
    }
}

/// Runs [`Outbox::redrive`] every `period` until the outbox is flushed or dropped.
async fn redrive_every(inner: std::sync::Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if !inner.accepting.load(Ordering::Acquire) {
            return;
        }
        Outbox { inner }.redrive();
    }
}

/// Creates one lane and spawns its task.
fn lane<D: Destination>(
    destination: D,
    config: OutboxConfig,
    sink: &Arc<dyn DeadLetterSink>,
    stop: watch::Receiver<Stop>,
) -> (LaneSender<D::Item>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.lane_capacity);
    let graveyard = Graveyard {
        counters: Arc::new(Counters::default()),
        sink: sink.clone(),
        parked: Arc::default(),
        redriving: Arc::default(),
    };
    let task = LaneTask {
        destination,
        rx,
        stop,
        config,
        graveyard: graveyard.clone(),
    };
    let handle = tokio::spawn(task.run());
    let sender = LaneSender {
        lane: D::LANE,
        tx,
        capacity: config.lane_capacity,
        graveyard,
    };
    (sender, handle)
}

/// Waits for every task still in `tasks`, emptying each slot as its task ends, so a join cut
/// short by a timeout can be resumed without polling a finished task twice.
async fn join(tasks: &mut [Option<JoinHandle<()>>]) {
    for slot in tasks.iter_mut() {
        if let Some(handle) = slot {
            let result = handle.await;
            *slot = None;
            if let Err(e) = result {
                tracing::error!(error = %e, "outbox lane task failed");
            }
        }
    }
}
