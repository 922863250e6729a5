//! The actor that owns one district: a thin shell around
//! [`dispatch_core::district::DistrictState`] and its [`Journal`].
//!
//! For every request it stamps the cluster time, applies the request to the state, appends the
//! accepted command (with its time and effects) to the district's journal, and only when the
//! append is durable hands the effects to the [`Outbox`] and answers. The actor takes no other
//! message while an append is in flight ([`AtomicResponse`]), so the journal's order is the
//! order the state saw. Every `snapshot_every` entries it stores a snapshot.
//!
//! When an append fails the state in memory is ahead of the journal; the actor then answers
//! `Unavailable` and rebuilds itself from the journal (retrying until the journal answers), so
//! memory never holds what the journal does not. When the journal says another owner took the
//! district ([`journal::Error::Fenced`]) the actor stops at once: it must not answer for a
//! district it no longer owns. A rebuild keeps the actor's epoch ([`recover_at`]): the owner has
//! not changed, so the epoch is not raised.
//!
//! Whoever started the actor may give it a [`StopHook`], told the district and epoch when the
//! actor stops for any reason (fenced, relinquished, its arbiter gone): the ownership loop of
//! a clustered node learns that way that an append was refused. [`Relinquish`] stops the actor
//! on purpose, storing a snapshot first when the district is handed over.
//!
//! The state is applied under `catch_unwind` ([`crate::supervision`]): a panic leaves the
//! command unjournaled and the state possibly half changed, so the actor rebuilds itself from
//! the journal the same way and answers [`Error::Panicked`] (or [`Error::Quarantined`] at the
//! command's `quarantine_after`th panic); the thread, and every other district on it, goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message,
    ResponseActFuture, WrapFuture,
};
use dispatch_bus::trace::TraceContext;
use dispatch_core::Timestamp;
use dispatch_core::clock::SharedClock;
use dispatch_core::district::{Command, DistrictState, Effect, Entry, Reply};
use dispatch_core::{Disposition, Fix, Incident, LatLng, Officer, OfficerStatus};

use crate::journal::{self, Journal, Loaded};
use crate::supervision::{self, CommandKey, Supervisor, Verdict};
use crate::{Error, Outbox, Result};

/// One district's actor.
pub struct DistrictActor {
    state: DistrictState,
    clock: SharedClock,
    outbox: Outbox,
    journal: Arc<dyn Journal>,
    /// The ownership epoch this actor writes with.
    epoch: u64,
    /// Sequence number of the last entry appended.
    seq: u64,
    /// Entries appended since the last snapshot.
    since_snapshot: u64,
    snapshot_every: u64,
    /// The state is ahead of the journal (an append failed) until the rebuild finishes.
    rebuilding: bool,
    /// The last entry whose effects this actor handed to the outbox (see
    /// [`crate::delivery::Marks`]).
    emitted: Arc<AtomicU64>,
    /// Counts panics per command and keeps quarantined commands out (shared by the node).
    supervisor: Arc<Supervisor>,
    /// Told when the actor stops.
    on_stop: Option<StopHook>,
}

/// What a [`StopHook`] is told: the actor of `district`, writing as `epoch`, has stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The district.
    pub district: String,
    /// The epoch the actor wrote with.
    pub epoch: u64,
}

/// Where an actor says it stopped.
pub type StopHook = tokio::sync::mpsc::UnboundedSender<Stopped>;

/// What applying a command gave: the reply and effects, or the district's refusal.
type Applied = std::result::Result<(Reply, Vec<Effect>), dispatch_core::district::Error>;

/// How long a rebuild waits between tries while the journal does not answer.
const REBUILD_RETRY: Duration = Duration::from_millis(200);

impl DistrictActor {
    /// An actor owning `state`, which the journal holds up to entry `loaded_seq` as epoch
    /// `epoch` (see [`recover`]). A snapshot is stored every `snapshot_every` entries (at
    /// least 1). `emitted` records the last entry whose effects went to the outbox.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: DistrictState,
        clock: SharedClock,
        outbox: Outbox,
        journal: Arc<dyn Journal>,
        epoch: u64,
        loaded_seq: u64,
        snapshot_every: u64,
        emitted: Arc<AtomicU64>,
    ) -> Self {
        Self {
            state,
            clock,
            outbox,
            journal,
            epoch,
            seq: loaded_seq,
            since_snapshot: 0,
            snapshot_every: snapshot_every.max(1),
            rebuilding: false,
            emitted,
            on_stop: None,
            supervisor: Arc::new(Supervisor::in_memory()),
        }
    }

    /// The same actor, telling `hook` when it stops.
    #[must_use]
    pub fn with_stop_hook(mut self, hook: StopHook) -> Self {
        self.on_stop = Some(hook);
        self
    }

    /// This actor, supervised by `supervisor` (the node's, shared by its actors) instead of
    /// one of its own ([`Supervisor::in_memory`]).
    pub fn supervised(mut self, supervisor: Arc<Supervisor>) -> Self {
        self.supervisor = supervisor;
        self
    }

    /// Applies `command` now; when accepted, appends it and then emits its effects (in the
    /// caller's `trace`, when it sent one) and answers. Run it under [`AtomicResponse`], so no
    /// other message interleaves with the append.
    fn execute(
        &mut self,
        command: Command,
        trace: Option<TraceContext>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<Reply>> {
        if self.rebuilding {
            let district = self.state.id().to_string();
            return Box::pin(actix::fut::ready(Err(Error::Journal(
                journal::Error::Unavailable(format!("district {district} is rebuilding")),
            ))));
        }
        let now = self.clock.now();
        let (reply, effects) = match self.apply_supervised(&command, now, ctx) {
            Ok(Ok(applied)) => applied,
            Ok(Err(refusal)) => return self.confirmed_refusal(refusal.into()),
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        // A stale position report changed nothing: like a refused command, it is not logged.
        if matches!(reply, Reply::Stale { .. }) {
            return Box::pin(actix::fut::ready(Ok(reply)));
        }
        let entry = Entry {
            at: now,
            command,
            effects,
        };
        let journal = self.journal.clone();
        let district = self.state.id().to_string();
        let epoch = self.epoch;
        let append = async move {
            let seq = journal.append(&district, epoch, &entry).await;
            (seq, entry)
        };
        Box::pin(append.into_actor(self).map(
            move |(appended, entry), act, ctx| match appended {
                Ok(seq) => {
                    act.seq = seq;
                    act.outbox.emit_traced(entry.effects, trace);
                    act.emitted.store(seq, Ordering::Release);
                    act.since_snapshot += 1;
                    if act.since_snapshot >= act.snapshot_every {
                        act.snapshot(ctx);
                    }
                    Ok(reply)
                }
                Err(e @ journal::Error::Fenced { .. }) => {
                    tracing::warn!(district = %act.state.id(), error = %e, "district taken over, stopping its actor");
                    ctx.stop();
                    Err(Error::Journal(e))
                }
                Err(e) => {
                    tracing::error!(district = %act.state.id(), error = %e,
                        "journal append failed, rebuilding the district from its journal");
                    act.rebuild(ctx);
                    Err(Error::Journal(e))
                }
            },
        ))
    }

    /// Answers `refusal` (the district's own: an unknown dispatch, a transition it does not
    /// allow) once the journal confirms this actor's epoch. A refusal appends nothing, so no
    /// fence stops it: without the check an owner paused past its lease would, on waking,
    /// refuse a command that the new owner accepts (an order it never saw), and the caller
    /// would take that for the district's answer. Fenced: the actor stops and answers the
    /// fence (`UNAVAILABLE`, so the caller retries and reaches the owner); a journal that does
    /// not answer: `UNAVAILABLE` too.
    fn confirmed_refusal(&mut self, refusal: Error) -> ResponseActFuture<Self, Result<Reply>> {
        let journal = self.journal.clone();
        let district = self.state.id().to_string();
        let epoch = self.epoch;
        let confirm = async move { journal.confirm(&district, epoch).await };
        Box::pin(
            confirm
                .into_actor(self)
                .map(move |confirmed, act, ctx| match confirmed {
                    Ok(()) => Err(refusal),
                    Err(e @ journal::Error::Fenced { .. }) => {
                        tracing::warn!(district = %act.state.id(), error = %e, "district taken over, stopping its actor");
                        ctx.stop();
                        Err(Error::Journal(e))
                    }
                    Err(e) => Err(Error::Journal(e)),
                }),
        )
    }

    /// Applies `command` at `now` under supervision: refuses it at once when quarantined;
    /// otherwise applies it catching a panic, which rebuilds the district (see
    /// [`DistrictActor::panicked`]).
    ///
    /// Errors: [`Error::Quarantined`], [`Error::Panicked`]; the district's own refusal is the
    /// inner result.
    fn apply_supervised(
        &mut self,
        command: &Command,
        now: Timestamp,
        ctx: &mut Context<Self>,
    ) -> Result<Applied> {
        // A healthy node tracks no command: then nothing is serialised or locked.
        let key = self
            .supervisor
            .watching()
            .then(|| CommandKey::of(self.state.id().as_str(), command));
        if let Some(key) = &key
            && let Some(tries) = self.supervisor.quarantined(key)
        {
            tracing::warn!(district = %self.state.id(), kind = supervision::command_kind(command),
                tries, "quarantined command refused");
            return Err(Error::Quarantined {
                district: self.state.id().to_string(),
                tries,
                recorded_in: self.supervisor.location(),
            });
        }
        let state = &mut self.state;
        // Unwind safety: after a panic the state is thrown away and rebuilt from the journal.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "fault-injection")]
            supervision::fault_check(supervision::Phase::Before, state.id().as_str(), command);
            let applied = state.apply(command, now);
            #[cfg(feature = "fault-injection")]
            supervision::fault_check(supervision::Phase::After, state.id().as_str(), command);
            applied
        }));
        match outcome {
            Ok(applied) => {
                if let Some(key) = &key {
                    self.supervisor.ran(key);
                }
                Ok(applied)
            }
            Err(payload) => Err(self.panicked(command, key, &*payload, ctx)),
        }
    }

    /// `command` (key `key`, when already made) panicked with `payload`: logs it, tells the
    /// supervisor, rebuilds the district from its journal (the state may be half changed; the
    /// command was never journaled) and gives the caller's error. The rebuild holds the
    /// district's mailbox (`ctx.wait`), so the caller's answer and the next request come after
    /// it.
    fn panicked(
        &mut self,
        command: &Command,
        key: Option<CommandKey>,
        payload: &(dyn std::any::Any + Send),
        ctx: &mut Context<Self>,
    ) -> Error {
        let district = self.state.id().to_string();
        let kind = supervision::command_kind(command);
        let message = supervision::panic_message(payload);
        let key = key.unwrap_or_else(|| CommandKey::of(&district, command));
        let verdict = self.supervisor.panicked(key, command, &message);
        let quarantine_after = self.supervisor.config().quarantine_after;
        let error = match verdict {
            Verdict::Retry { tries } => {
                tracing::error!(%district, kind, panic = %message, tries, quarantine_after,
                    "district panicked applying a command, rebuilding it from its journal");
                Error::Panicked {
                    district,
                    tries,
                    quarantine_after,
                }
            }
            Verdict::Quarantined { tries } => {
                let recorded_in = self.supervisor.location();
                tracing::error!(%district, kind, panic = %message, tries, %recorded_in,
                    "district panicked applying a command, quarantining the command and rebuilding the district from its journal");
                Error::Quarantined {
                    district,
                    tries,
                    recorded_in,
                }
            }
        };
        self.rebuild(ctx);
        error
    }

    /// Executes `command` atomically and answers what `answer` makes of its reply.
    fn respond<T: 'static>(
        &mut self,
        command: Command,
        answer: fn(Reply) -> Result<T>,
        ctx: &mut Context<Self>,
    ) -> AtomicResponse<Self, Result<T>> {
        self.respond_traced(command, None, answer, ctx)
    }

    /// [`DistrictActor::respond`] for a request made in `trace`.
    fn respond_traced<T: 'static>(
        &mut self,
        command: Command,
        trace: Option<TraceContext>,
        answer: fn(Reply) -> Result<T>,
        ctx: &mut Context<Self>,
    ) -> AtomicResponse<Self, Result<T>> {
        AtomicResponse::new(Box::pin(
            self.execute(command, trace, ctx)
                .map(move |r, _, _| r.and_then(answer)),
        ))
    }

    /// Stores a snapshot of the state as it is now, in the background (it is a copy).
    fn snapshot(&mut self, ctx: &mut Context<Self>) {
        self.since_snapshot = 0;
        let (store, district, seq) = (self.store_snapshot(), self.state.id().to_string(), self.seq);
        ctx.spawn(
            async move {
                if let Err(e) = store.await {
                    // The journal still holds every entry; the next snapshot covers them.
                    tracing::warn!(%district, seq, error = %e, "snapshot not stored");
                }
            }
            .into_actor(self),
        );
    }

    /// Stores a copy of the state as it is now as the snapshot after the last entry, at this
    /// actor's epoch.
    fn store_snapshot(&self) -> impl std::future::Future<Output = journal::Result<()>> + 'static {
        let (journal, state, seq, epoch) = (
            self.journal.clone(),
            self.state.clone(),
            self.seq,
            self.epoch,
        );
        async move {
            journal
                .snapshot(state.id().as_str(), epoch, seq, &state)
                .await
        }
    }

    /// Replaces the state with the journal's at this actor's epoch, retrying until the journal
    /// answers; takes no message meanwhile. Stops the actor when another owner took the
    /// district meanwhile.
    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        self.rebuilding = true;
        let journal = self.journal.clone();
        let fresh = self.state.clone();
        let epoch = self.epoch;
        let load = async move {
            loop {
                match recover_at(journal.as_ref(), fresh.clone(), epoch).await {
                    Err(journal::Error::Unavailable(e)) => {
                        tracing::warn!(district = %fresh.id(), error = %e, "journal not answering, retrying the rebuild");
                        tokio::time::sleep(REBUILD_RETRY).await;
                    }
                    done => return done,
                }
            }
        };
        ctx.wait(load.into_actor(self).map(|recovered, act, ctx| {
            let recovered = match recovered {
                Ok(recovered) => recovered,
                Err(e) => {
                    tracing::warn!(district = %act.state.id(), error = %e, "district taken over during its rebuild, stopping its actor");
                    ctx.stop();
                    return;
                }
            };
            tracing::info!(district = %recovered.state.id(), seq = recovered.seq, epoch = recovered.epoch, "district rebuilt from its journal");
            act.outbox.redeliver(&recovered);
            act.emitted.store(recovered.seq, Ordering::Release);
            act.state = recovered.state;
            act.epoch = recovered.epoch;
            act.seq = recovered.seq;
            act.since_snapshot = 0;
            act.rebuilding = false;
        }));
    }
}

/// A district as its journal rebuilds it.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The state after the snapshot and every entry after it.
    pub state: DistrictState,
    /// The epoch taken.
    pub epoch: u64,
    /// The last entry's sequence number.
    pub seq: u64,
    /// What was loaded (for redelivery of effects not yet delivered).
    pub loaded: Loaded,
}

/// Takes ownership of the district of `fresh` in `journal` (raising its epoch,
/// [`Journal::open`]) and rebuilds it: see [`recover_at`]. The single-node path, where no lease
/// raises the epoch.
///
/// Errors: as [`recover_at`].
pub async fn recover(journal: &dyn Journal, fresh: DistrictState) -> journal::Result<Recovered> {
    let loaded = journal.open(fresh.id().as_str()).await?;
    rebuild(journal, fresh, loaded).await
}

/// Rebuilds the district of `fresh` from `journal` as epoch `epoch`, already held (a lease
/// raised it, or this owner is rebuilding): from the latest snapshot, or from `fresh` (the
/// district as configured, with its roster) when the journal has none, in which case `fresh`
/// is stored as the snapshot before any entry (seq 0) so every later rebuild starts from the
/// same roster; then every entry after the snapshot is replayed.
///
/// Errors: the journal's ([`journal::Error::Fenced`] when the district's epoch is not `epoch`);
/// [`journal::Error::Unavailable`] when an entry does not apply to the snapshot (the journal
/// and the snapshot do not belong together).
pub async fn recover_at(
    journal: &dyn Journal,
    fresh: DistrictState,
    epoch: u64,
) -> journal::Result<Recovered> {
    let loaded = journal.load(fresh.id().as_str(), epoch).await?;
    rebuild(journal, fresh, loaded).await
}

async fn rebuild(
    journal: &dyn Journal,
    fresh: DistrictState,
    loaded: Loaded,
) -> journal::Result<Recovered> {
    let district = fresh.id().to_string();
    let (snap_seq, mut state) = match &loaded.snapshot {
        Some((seq, state)) => (*seq, state.clone()),
        None => {
            journal.snapshot(&district, loaded.epoch, 0, &fresh).await?;
            (0, fresh)
        }
    };
    let tail = loaded
        .entries
        .iter()
        .filter(|(s, _)| *s > snap_seq)
        .map(|(_, e)| e);
    state.replay(tail).map_err(|(n, e)| {
        journal::Error::Unavailable(format!(
            "district {district}: entry {} after snapshot {snap_seq} does not apply: {e}",
            n + 1
        ))
    })?;
    Ok(Recovered {
        state,
        epoch: loaded.epoch,
        seq: loaded.last_seq(),
        loaded,
    })
}

impl Actor for DistrictActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Officer terminals and intake may burst; keep their requests rather than refuse them.
        ctx.set_mailbox_capacity(100_000);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(hook) = &self.on_stop {
            // Nobody listening any more (the node is gone) is fine.
            let _ = hook.send(Stopped {
                district: self.state.id().to_string(),
                epoch: self.epoch,
            });
        }
    }
}

/// Give the district up and stop: when `snapshot`, first store a snapshot of the state at this
/// actor's epoch, so the next owner replays nothing (a handoff); otherwise stop at once (the
/// district was lost: another owner may be writing already). Messages sent before it are
/// handled first; nothing after.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Relinquish {
    /// Store a snapshot before stopping.
    pub snapshot: bool,
}

/// Take a routed incident (idempotent on its id).
#[derive(Message)]
#[rtype(result = "Result<Incident>")]
pub struct Submit {
    /// The incident, `ROUTED` to this district.
    pub incident: Incident,
    /// The submitter's trace context: what the submit causes is published in it.
    pub trace: Option<TraceContext>,
}

/// Sign on, sign off, or start a self-initiated task.
#[derive(Message)]
#[rtype(result = "Result<Officer>")]
pub struct SetStatus {
    /// The officer.
    pub officer_id: String,
    /// Available, Busy or OffDuty.
    pub status: OfficerStatus,
    /// Position at the change, if known.
    pub location: Option<LatLng>,
}

/// A GPS report.
#[derive(Message)]
#[rtype(result = "Result<ReportOutcome>")]
pub struct ReportLocation {
    /// The officer.
    pub officer_id: String,
    /// The fix.
    pub fix: Fix,
}

/// What became of a GPS report the district did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Stored as the officer's position (and logged).
    Stored,
    /// Ignored: older than the officer's current fix (not logged).
    Stale,
}

/// What a terminal says about its dispatch.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Order received, en route.
    Acknowledge,
    /// On scene.
    Arrive,
    /// Done, with a disposition.
    Clear(Disposition),
}

/// A terminal's step on one dispatch.
#[derive(Message)]
#[rtype(result = "Result<Incident>")]
pub struct DispatchStep {
    /// The officer.
    pub officer_id: String,
    /// The dispatch.
    pub dispatch_id: String,
    /// What happened.
    pub step: Step,
    /// The officer's trace context: what the step causes (the incident's update, a case, the
    /// next dispatch) is published in it.
    pub trace: Option<TraceContext>,
}

/// A copy of the district's state for screens and tests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every officer of the district.
    pub officers: Vec<Officer>,
    /// Waiting incidents in dispatch order.
    pub queue: Vec<Incident>,
    /// Dispatched and on-scene incidents.
    pub active: Vec<Incident>,
    /// Cluster seconds per real second of the actor's clock.
    pub clock_scale: f64,
    /// Epoch of the actor's clock, ms since the Unix epoch (`None` on the wall clock; see
    /// [`dispatch_core::Clock::epoch_ms`]).
    pub clock_epoch_ms: Option<i64>,
}

/// Ask for a [`Snapshot`].
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct GetSnapshot;

/// The incident a command answered.
fn incident(reply: Reply) -> Result<Incident> {
    match reply {
        Reply::Incident(i) => Ok(i),
        other => Err(Error::BadReply(format!(
            "expected an incident, got {other:?}"
        ))),
    }
}

/// The officer a command answered.
fn officer(reply: Reply) -> Result<Officer> {
    match reply {
        Reply::Officer(o) => Ok(o),
        other => Err(Error::BadReply(format!(
            "expected an officer, got {other:?}"
        ))),
    }
}

impl Handler<Submit> for DistrictActor {
    type Result = AtomicResponse<Self, Result<Incident>>;
    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) -> Self::Result {
        self.respond_traced(
            Command::Submit(Box::new(msg.incident)),
            msg.trace,
            incident,
            ctx,
        )
    }
}

impl Handler<SetStatus> for DistrictActor {
    type Result = AtomicResponse<Self, Result<Officer>>;
    fn handle(&mut self, msg: SetStatus, ctx: &mut Context<Self>) -> Self::Result {
        let command = Command::SetStatus {
            officer_id: msg.officer_id.into(),
            status: msg.status,
            location: msg.location,
        };
        self.respond(command, officer, ctx)
    }
}

impl Handler<ReportLocation> for DistrictActor {
    type Result = AtomicResponse<Self, Result<ReportOutcome>>;
    fn handle(&mut self, msg: ReportLocation, ctx: &mut Context<Self>) -> Self::Result {
        let command = Command::ReportLocation {
            officer_id: msg.officer_id.into(),
            location: msg.fix.location,
            fixed_at: msg.fix.fixed_at,
            accuracy_m: msg.fix.accuracy_m,
        };
        self.respond(command, report_outcome, ctx)
    }
}

/// What a position report's reply says.
fn report_outcome(reply: Reply) -> Result<ReportOutcome> {
    match reply {
        Reply::Done => Ok(ReportOutcome::Stored),
        Reply::Stale { .. } => Ok(ReportOutcome::Stale),
        other => Err(Error::BadReply(format!(
            "expected a position report's reply, got {other:?}"
        ))),
    }
}

impl Handler<DispatchStep> for DistrictActor {
    type Result = AtomicResponse<Self, Result<Incident>>;
    fn handle(&mut self, msg: DispatchStep, ctx: &mut Context<Self>) -> Self::Result {
        let (officer_id, dispatch_id) = (msg.officer_id.into(), msg.dispatch_id.into());
        let command = match msg.step {
            Step::Acknowledge => Command::Acknowledge {
                officer_id,
                dispatch_id,
            },
            Step::Arrive => Command::Arrive {
                officer_id,
                dispatch_id,
            },
            Step::Clear(disposition) => Command::Clear {
                officer_id,
                dispatch_id,
                disposition,
            },
        };
        self.respond_traced(command, msg.trace, incident, ctx)
    }
}

impl Handler<Relinquish> for DistrictActor {
    type Result = AtomicResponse<Self, Result<()>>;
    fn handle(&mut self, msg: Relinquish, _: &mut Context<Self>) -> Self::Result {
        let store = msg.snapshot.then(|| self.store_snapshot());
        let stored = async move {
            match store {
                Some(store) => store.await.map_err(Error::Journal),
                None => Ok(()),
            }
        };
        AtomicResponse::new(Box::pin(stored.into_actor(self).map(
            |stored, act, ctx| {
                tracing::info!(district = %act.state.id(), epoch = act.epoch, seq = act.seq, snapshot = stored.is_ok(), "district relinquished");
                ctx.stop();
                stored
            },
        )))
    }
}

impl Handler<GetSnapshot> for DistrictActor {
    type Result = actix::MessageResult<GetSnapshot>;
    fn handle(&mut self, _: GetSnapshot, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(Snapshot {
            officers: self.state.officers().cloned().collect(),
            queue: self.state.queued().cloned().collect(),
            active: self.state.active().cloned().collect(),
            clock_scale: self.clock.scale(),
            clock_epoch_ms: self.clock.epoch_ms(),
        })
    }
}
