//! Following the command-center feed so intake's records track each incident's life.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use dispatch_bus::ports::{
    AudienceKey, Cursor, Notice, NoticeBody, NotifyClient, PublishedNotice, Subscription,
};
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
    // Where to resume: after the last notice received (a heartbeat's position will do);
    // `None`: from the oldest the feed keeps.
    let mut cursor: Option<Cursor> = None;
    let mut delays = backoff();
    loop {
        let subscription = Subscription {
            audience: AudienceKey::CommandCenter,
            resume_after: cursor,
        };
        match notify.subscribe(subscription).await {
            Ok(mut notices) => {
                while let Some(item) = notices.next().await {
                    match item {
                        Ok(notice) => {
                            cursor = notice.cursor();
                            delays = backoff();
                            apply(&service, notice).await;
                        }
                        // A notice this side cannot read is passed over (the stream goes on);
                        // any other error ends the stream, and `next` then answers `None`.
                        Err(e) => {
                            tracing::warn!(error = %e, cursor = %shown(cursor),
                                "error on the command-center feed");
                        }
                    }
                }
            }
            Err(e) if e.code() == tonic::Code::OutOfRange => {
                // The feed no longer holds our cursor (a new epoch after a restart without
                // Redis, or trimmed): replay what it keeps; updates are idempotent on revision.
                tracing::warn!(error = %e, cursor = %shown(cursor),
                    "command-center cursor out of range, replaying from the oldest kept");
                cursor = None;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, cursor = %shown(cursor),
                    "cannot subscribe to the command-center feed");
            }
        }
        let delay = delays.next().unwrap_or(MAX_BACKOFF);
        tracing::debug!(
            ?delay,
            cursor = %shown(cursor),
            "re-subscribing to the command-center feed"
        );
        tokio::time::sleep(delay).await;
    }
}

/// A resume point as logged: the cursor's wire form, empty for none (as it is sent).
fn shown(cursor: Option<Cursor>) -> String {
    cursor.map(|c| c.encode()).unwrap_or_default()
}

/// Applies `notice` when it is an incident update (the command-center feed holds nothing else
/// today; anything else is passed over).
async fn apply(service: &IntakeService, notice: Notice) {
    let Notice::Published(PublishedNotice {
        seq,
        body: NoticeBody::IncidentUpdate(incident),
        ..
    }) = notice
    else {
        return;
    };
    let incident_id = incident.id.clone();
    if let Err(e) = service.apply_update(*incident).await {
        tracing::warn!(seq, %incident_id, error = %e, "incident update not applied");
    }
}
