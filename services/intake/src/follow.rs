//! Following the command-center feed so intake's records track each incident's life.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use dispatch_bus::ports::NotifyPort;
use dispatch_proto::v1;
use dispatch_proto::v1::notice_body::Kind;
use futures::StreamExt;

use crate::service::IntakeService;

/// First reconnect delay; short, as a lost stream is usually a restarting peer.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay, so records catch up within seconds of the peer's return.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

/// Subscribes to the command-center feed and applies every incident update, for ever;
/// reconnects after failures, resuming after the last notice seen.
pub(crate) async fn follow(service: Arc<IntakeService>, notify: Arc<dyn NotifyPort>) {
    let mut last_seq = 0;
    let mut delays = backoff();
    loop {
        let req = v1::SubscribeRequest {
            audience: Some(v1::Audience {
                target: Some(v1::audience::Target::Role(v1::Role::CommandCenter as i32)),
            }),
            resume_after: last_seq,
            from_latest: false,
        };
        match notify.subscribe(req).await {
            Ok(mut notices) => {
                while let Some(item) = notices.next().await {
                    match item {
                        Ok(notice) => {
                            last_seq = notice.seq;
                            delays = backoff();
                            apply(&service, notice);
                        }
                        Err(status) => {
                            tracing::warn!(error = %status, last_seq, "command-center feed failed");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::warn!(error = %status, last_seq, "cannot subscribe to the command-center feed");
            }
        }
        let delay = delays.next().unwrap_or(MAX_BACKOFF);
        tracing::debug!(
            ?delay,
            last_seq,
            "re-subscribing to the command-center feed"
        );
        tokio::time::sleep(delay).await;
    }
}

fn apply(service: &IntakeService, notice: v1::Notice) {
    let Some(Kind::IncidentUpdate(incident)) = notice.body.and_then(|b| b.kind) else {
        return;
    };
    if let Err(e) = service.apply_update(&incident) {
        tracing::warn!(seq = notice.seq, incident_id = %incident.incident_id, error = %e,
            "malformed incident update ignored");
    }
}
