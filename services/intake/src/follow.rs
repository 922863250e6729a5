//! Following the command-center feed so intake's records track each incident's life.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use dispatch_bus::ports::NotifyClient;
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
pub(crate) async fn follow(service: Arc<IntakeService>, notify: NotifyClient) {
    // The cursor of the last notice applied; empty: from the oldest the feed keeps.
    let mut cursor = String::new();
    let mut delays = backoff();
    loop {
        let req = v1::SubscribeRequest {
            audience: Some(v1::Audience {
                target: Some(v1::audience::Target::Role(v1::Role::CommandCenter as i32)),
            }),
            resume_after: cursor.clone(),
            from_latest: false,
        };
        match notify.subscribe(req).await {
            Ok(mut notices) => {
                while let Some(item) = notices.next().await {
                    match item {
                        Ok(notice) => {
                            cursor.clone_from(&notice.cursor);
                            delays = backoff();
                            apply(&service, notice).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %cursor, "command-center feed failed");
                            break;
                        }
                    }
                }
            }
            Err(e) if e.code() == tonic::Code::OutOfRange => {
                // The feed no longer holds our cursor (a new epoch after a restart without
                // Redis, or trimmed): replay what it keeps; updates are idempotent on revision.
                tracing::warn!(error = %e, %cursor, "command-center cursor out of range, replaying from the oldest kept");
                cursor.clear();
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, %cursor, "cannot subscribe to the command-center feed");
            }
        }
        let delay = delays.next().unwrap_or(MAX_BACKOFF);
        tracing::debug!(
            ?delay,
            %cursor,
            "re-subscribing to the command-center feed"
        );
        tokio::time::sleep(delay).await;
    }
}

async fn apply(service: &IntakeService, notice: v1::Notice) {
    let Some(Kind::IncidentUpdate(incident)) = notice.body.and_then(|b| b.kind) else {
        return;
    };
    if let Err(e) = service.apply_update(&incident).await {
        tracing::warn!(seq = notice.seq, incident_id = %incident.incident_id, error = %e,
            "incident update not applied");
    }
}
