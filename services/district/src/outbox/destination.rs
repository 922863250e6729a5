//! The two destinations of effects and what one call to each carries.
//!
//! Each lane carries its own item type, made from an [`Effect`] by a move (no copy) in
//! [`crate::Outbox::emit`], so a lane can only ever hold what its destination accepts.

use std::future::Future;

use dispatch_bus::ports::{
    AudienceKey, CaseClient, NoticeBody, NotifyClient, PortError, Publication,
};
use dispatch_bus::trace::{self, TraceContext};
use dispatch_core::Incident;
use dispatch_core::district::{DispatchOrder, Effect};

use super::dead_letter::Lane;

/// A destination: the port a lane calls and how many items one call carries.
pub(super) trait Destination: Send + Sync + 'static {
    /// What the lane holds; back into an [`Effect`] for dead letters.
    type Item: Into<Effect> + Clone + Send + Sync + 'static;
    /// The lane of this destination.
    const LANE: Lane;
    /// Most items one call carries.
    const BATCH: usize;
    /// One call delivering `items`, in order, under the client's deadline; all or nothing.
    fn send(&self, items: &[Self::Item]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// An item of a lane with the trace context of the request that caused it (the submit of the
/// incident), so the call delivering it continues that trace.
#[derive(Debug, Clone)]
pub(super) struct Traced<T> {
    /// What to deliver.
    pub item: T,
    /// The trace it belongs to, if its cause carried one.
    pub trace: Option<TraceContext>,
}

impl<T: Into<Effect>> From<Traced<T>> for Effect {
    fn from(t: Traced<T>) -> Effect {
        t.item.into()
    }
}

/// The trace a call carrying `items` continues: the first item's that has one. A batch mixes
/// the effects of several requests; one `traceparent` per call cannot name them all.
fn trace_of<T>(items: &[Traced<T>]) -> Option<TraceContext> {
    items.iter().find_map(|t| t.trace)
}

/// A publication for the notification service.
// Every order comes with its incident's change, so the lane holds about as many of each:
// boxing the incident would add an allocation per change and save little.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum Notice {
    /// For the officer's terminal.
    Order(DispatchOrder),
    /// For the command center (and intake's record).
    IncidentChanged(Incident),
}

impl Notice {
    /// The publication delivering it: an order to its officer's feed, a change to the command
    /// center's.
    fn publication(&self) -> Publication {
        match self {
            Notice::Order(o) => order_publication(o),
            Notice::IncidentChanged(i) => change_publication(i),
        }
    }
}

// The id makes a retried publication land once in its feed: a dispatch id names one order,
// and an incident's revision is bumped at every change it publishes.

/// The publication of dispatch order `o`: to its officer's feed, id the dispatch id.
fn order_publication(o: &DispatchOrder) -> Publication {
    Publication {
        audience: AudienceKey::Officer(o.officer_id.clone()),
        body: NoticeBody::DispatchOrder(o.clone()),
        id: Some(o.dispatch_id.to_string()),
    }
}

/// The publication of a change of incident `i`: to the command center's feed, id
/// `{incident_id}@{revision}`.
fn change_publication(i: &Incident) -> Publication {
    Publication {
        audience: AudienceKey::CommandCenter,
        body: NoticeBody::IncidentUpdate(Box::new(i.clone())),
        id: Some(format!("{}@{}", i.id, i.revision)),
    }
}

/// The publication the notification lane makes of `effect`, exactly (audience, body, id);
/// `None` for an effect of another lane.
pub(crate) fn publication_of(effect: &Effect) -> Option<Publication> {
    match effect {
        Effect::Order(o) => Some(order_publication(o)),
        Effect::IncidentChanged(i) => Some(change_publication(i)),
        Effect::OpenCase(_) => None,
    }
}

impl From<Notice> for Effect {
    fn from(n: Notice) -> Effect {
        match n {
            Notice::Order(o) => Effect::Order(o),
            Notice::IncidentChanged(i) => Effect::IncidentChanged(i),
        }
    }
}

/// A cleared incident for its station's case squad.
#[derive(Debug, Clone)]
pub(super) struct Case(pub Incident);

impl From<Case> for Effect {
    fn from(c: Case) -> Effect {
        Effect::OpenCase(c.0)
    }
}

/// The notification service, through its client.
pub(super) struct Notify(pub NotifyClient);

impl Destination for Notify {
    type Item = Traced<Notice>;
    const LANE: Lane = Lane::Notification;
    // One `Publish` per batch keeps calls few under load (a cross-thread or network hop costs
    // far more than a publication; STACK.md). 256 publications with intake's 1,000-character
    // descriptions stay under 1 MiB, a quarter of tonic's 4 MiB default message limit.
    const BATCH: usize = 256;

    fn send(&self, items: &[Self::Item]) -> impl Future<Output = Result<(), PortError>> + Send {
        let publications = items.iter().map(|t| t.item.publication()).collect();
        let client = self.0.clone();
        let trace = trace_of(items);
        async move {
            trace::scope_opt(trace, client.publish(publications))
                .await
                .map(drop)
        }
    }
}

/// The case squad, through its client.
pub(super) struct Cases(pub CaseClient);

impl Destination for Cases {
    type Item = Traced<Case>;
    const LANE: Lane = Lane::CaseSquad;
    // `OpenCase` takes one incident.
    const BATCH: usize = 1;

    fn send(&self, items: &[Self::Item]) -> impl Future<Output = Result<(), PortError>> + Send {
        let client = self.0.clone();
        let cases: Vec<(Incident, Option<TraceContext>)> =
            items.iter().map(|t| (t.item.0.clone(), t.trace)).collect();
        async move {
            for (incident, trace) in cases {
                trace::scope_opt(trace, client.open_case(incident)).await?;
            }
            Ok(())
        }
    }
}
