//! The actor that owns one district: a thin shell around
//! [`dispatch_core::district::DistrictState`]. It stamps every request with the cluster clock,
//! applies it, and hands the resulting effects to the [`Outbox`].

use actix::{Actor, Context, Handler, Message};
use dispatch_core::clock::SharedClock;
use dispatch_core::district::{DistrictState, Effect};
use dispatch_core::{Disposition, Incident, LatLng, Officer, OfficerStatus};

use crate::Outbox;

/// One district's actor.
pub struct DistrictActor {
    state: DistrictState,
    clock: SharedClock,
    outbox: Outbox,
}

impl DistrictActor {
    /// An actor owning `state`.
    pub fn new(state: DistrictState, clock: SharedClock, outbox: Outbox) -> Self {
        Self {
            state,
            clock,
            outbox,
        }
    }

    fn emit<T>(
        &self,
        result: Result<(T, Vec<Effect>), dispatch_core::district::Error>,
    ) -> DomainResult<T> {
        result.map(|(value, effects)| {
            self.outbox.emit(effects);
            value
        })
    }
}

impl Actor for DistrictActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Officer terminals and intake may burst; keep their requests rather than refuse them.
        ctx.set_mailbox_capacity(100_000);
    }
}

type DomainResult<T> = Result<T, dispatch_core::district::Error>;

/// Take a routed incident (idempotent on its id).
#[derive(Message)]
#[rtype(result = "DomainResult<Incident>")]
pub struct Submit(pub Incident);

/// Sign on, sign off, or start a self-initiated task.
#[derive(Message)]
#[rtype(result = "DomainResult<Officer>")]
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
#[rtype(result = "DomainResult<()>")]
pub struct ReportLocation {
    /// The officer.
    pub officer_id: String,
    /// Where, WGS84.
    pub location: LatLng,
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
#[rtype(result = "DomainResult<Incident>")]
pub struct DispatchStep {
    /// The officer.
    pub officer_id: String,
    /// The dispatch.
    pub dispatch_id: String,
    /// What happened.
    pub step: Step,
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
}

/// Ask for a [`Snapshot`].
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct GetSnapshot;

impl Handler<Submit> for DistrictActor {
    type Result = DomainResult<Incident>;
    fn handle(&mut self, msg: Submit, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let r = self.state.submit(msg.0, now);
        self.emit(r)
    }
}

impl Handler<SetStatus> for DistrictActor {
    type Result = DomainResult<Officer>;
    fn handle(&mut self, msg: SetStatus, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let r = self
            .state
            .set_officer_status(&msg.officer_id, msg.status, msg.location, now);
        self.emit(r)
    }
}

impl Handler<ReportLocation> for DistrictActor {
    type Result = DomainResult<()>;
    fn handle(&mut self, msg: ReportLocation, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let r = self
            .state
            .report_location(&msg.officer_id, msg.location, now)
            .map(|effects| ((), effects));
        self.emit(r)
    }
}

impl Handler<DispatchStep> for DistrictActor {
    type Result = DomainResult<Incident>;
    fn handle(&mut self, msg: DispatchStep, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let (officer, dispatch) = (msg.officer_id.as_str(), msg.dispatch_id.as_str());
        let r = match msg.step {
            Step::Acknowledge => self.state.acknowledge(officer, dispatch, now),
            Step::Arrive => self.state.arrive(officer, dispatch, now),
            Step::Clear(d) => self.state.clear(officer, dispatch, d, now),
        };
        self.emit(r)
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
        })
    }
}
