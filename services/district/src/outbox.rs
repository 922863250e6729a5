//! Ordered, retried delivery of what the district actors decide.
//!
//! Actors must never wait on the network, so they hand their effects to the outbox and go on.
//! One task drains it in order: dispatch orders and incident updates go to the notification
//! service in batches (one `Publish` per batch, order kept), cases to the case squad. A failed
//! call is retried with exponential backoff (50 ms doubling to 5 s) until it succeeds, so nothing
//! is dropped while the process lives; receivers are idempotent (dispatch id, incident revision,
//! case per incident), so a retried batch delivered twice does no harm.
//!
//! What is in the outbox is lost if the process dies; the Redis-backed durable streams of a later
//! issue close that gap.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use dispatch_bus::convert::{incident_to_wire, order_to_wire};
use dispatch_bus::ports::{CasePort, NotifyPort};
use dispatch_core::district::Effect;
use dispatch_proto::v1;
use tokio::sync::mpsc;

/// Handle to the outbox; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Effect>,
}

impl Outbox {
    /// Starts the draining task on the current Tokio runtime.
    pub fn spawn(notify: Arc<dyn NotifyPort>, cases: Arc<dyn CasePort>) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drain(rx, notify, cases));
        Outbox { tx }
    }

    /// Queues effects for delivery, in order.
    pub fn emit(&self, effects: Vec<Effect>) {
        for effect in effects {
            if self.tx.send(effect).is_err() {
                tracing::error!("outbox task is gone, effect not delivered");
            }
        }
    }
}

fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
}

/// The publication an effect makes, if any.
fn publication(effect: &Effect) -> Option<v1::Publication> {
    use v1::audience::Target;
    use v1::notice_body::Kind;
    let (target, kind) = match effect {
        Effect::Order(o) => (
            Target::OfficerId(o.officer_id.clone()),
            Kind::DispatchOrder(order_to_wire(o)),
        ),
        Effect::IncidentChanged(i) => (
            Target::Role(v1::Role::CommandCenter as i32),
            Kind::IncidentUpdate(incident_to_wire(i)),
        ),
        Effect::OpenCase(_) => return None,
    };
    Some(v1::Publication {
        audience: Some(v1::Audience {
            target: Some(target),
        }),
        body: Some(v1::NoticeBody { kind: Some(kind) }),
    })
}

async fn drain(
    mut rx: mpsc::UnboundedReceiver<Effect>,
    notify: Arc<dyn NotifyPort>,
    cases: Arc<dyn CasePort>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut publications = Vec::new();
        for effect in batch.drain(..) {
            if let Some(p) = publication(&effect) {
                publications.push(p);
                continue;
            }
            if let Effect::OpenCase(incident) = effect {
                // Publish what came before the case first, to keep the order of effects.
                publish(&notify, std::mem::take(&mut publications)).await;
                let req = v1::OpenCaseRequest {
                    incident: Some(incident_to_wire(&incident)),
                };
                let open = || async { cases.open_case(req.clone()).await };
                let result = open
                    .retry(retry_policy())
                    .when(is_transient)
                    .notify(|e, after| {
                        tracing::warn!(incident = %incident.id, error = %e, ?after, "open case failed, retrying")
                    })
                    .await;
                if let Err(e) = result {
                    tracing::error!(incident = %incident.id, error = %e, "case squad refused the case");
                }
            }
        }
        publish(&notify, publications).await;
    }
}

/// Errors worth retrying: the peer is unreachable or overloaded, not a refusal of the request.
fn is_transient(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        Unavailable
            | DeadlineExceeded
            | ResourceExhausted
            | Aborted
            | Unknown
            | Internal
            | Cancelled
    )
}

async fn publish(notify: &Arc<dyn NotifyPort>, publications: Vec<v1::Publication>) {
    if publications.is_empty() {
        return;
    }
    let req = v1::PublishRequest { publications };
    let send = || async { notify.publish(req.clone()).await };
    if let Err(e) = send
        .retry(retry_policy())
        .when(is_transient)
        .notify(|e, after| tracing::warn!(error = %e, ?after, "publish failed, retrying"))
        .await
    {
        tracing::error!(error = %e, "notification refused a publication");
    }
}
