//! One `Subscribe` stream: reads its audience's feed from the store after its cursor, sends
//! heartbeats while the feed is quiet, and never buffers more than a byte cap for a subscriber
//! that stops reading.
//!
//! The notices themselves stay in the store, so a subscriber never holds up a publisher: each
//! stream has a task that reads a batch after its cursor, queues it for the transport, and
//! waits for the feed to move. The queue holds at most [`SubscribeConfig::max_buffered_bytes`]
//! of encoded notices; when the next one does not fit the task waits for the transport to take
//! some, and a subscriber that takes nothing for a whole `heartbeat_interval` is cut off with
//! `RESOURCE_EXHAUSTED`. It can resume from the cursor of the last notice it received.

use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::feed::{AudienceKey, Cursor, Error as FeedError, FeedStore};
use dispatch_proto::v1;
use futures::StreamExt;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tonic::Status;

use crate::{SubscribeStream, feed_status};

/// How a stream behaves; see [`crate::NotificationConfig`] for the defaults and their sources.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscribeConfig {
    pub heartbeat_interval: Duration,
    pub max_buffered_bytes: usize,
    pub read_batch: usize,
}

/// Starts streaming `first` (already read after `start`, which validated the cursor) and then
/// everything after it. With `greet`, the stream opens with a heartbeat at `start`.
pub(crate) fn stream(
    store: Arc<dyn FeedStore>,
    audience: AudienceKey,
    start: Option<Cursor>,
    first: Vec<v1::Notice>,
    greet: bool,
    config: SubscribeConfig,
) -> SubscribeStream {
    let (outlet, stream) = outlet(config.max_buffered_bytes, config.heartbeat_interval);
    tokio::spawn(async move {
        let mut pump = Pump {
            store,
            audience,
            position: start,
            outlet,
            config,
        };
        if greet && pump.send(pump.heartbeat()).await.is_err() {
            return;
        }
        pump.run(first).await;
    });
    stream
}

/// Why a stream stops early: the subscriber went away or was cut off.
#[derive(Debug)]
struct Stop;

struct Pump {
    store: Arc<dyn FeedStore>,
    audience: AudienceKey,
    /// Cursor of the last notice queued (`None`: from the oldest kept, nothing queued yet).
    position: Option<Cursor>,
    outlet: Outlet,
    config: SubscribeConfig,
}

impl Pump {
    async fn run(&mut self, mut batch: Vec<v1::Notice>) {
        // Whether `batch` is the very next notice, handed over by the wake-up of a wait.
        let mut from_wake = false;
        loop {
            // A batch read may have more behind it: read again at once. An empty one means
            // caught up: wait for the feed to move first. So does the notice a wake-up handed
            // over (the wait looks at the feed first, and returns at once if it moved further).
            let caught_up = batch.is_empty() || from_wake;
            from_wake = false;
            for notice in std::mem::take(&mut batch) {
                let Ok(cursor) = Cursor::parse(&notice.cursor, "cursor") else {
                    self.outlet.fail(Status::internal(format!(
                        "the feed store returned a notice with a bad cursor {:?}",
                        notice.cursor
                    )));
                    return;
                };
                if self.send(notice).await.is_err() {
                    return;
                }
                self.position = Some(cursor);
            }
            // At shutdown a busy stream ends too, not only a quiet one.
            if self.store.is_closed() {
                return;
            }
            if caught_up {
                match self.idle().await {
                    Ok(next) if !next.is_empty() => {
                        batch = next;
                        from_wake = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(Some(status)) => return self.outlet.fail(status),
                    Err(None) => return,
                }
            }
            batch = match self
                .store
                .read(&self.audience, self.position, self.config.read_batch)
                .await
            {
                Ok(batch) => batch,
                Err(e) => return self.outlet.fail(feed_status(e)),
            };
        }
    }

    /// Waits for the feed to move, sending a heartbeat each quiet interval; gives the next
    /// notice when the wake-up carried it (empty: read). `Err(None)`: end the stream quietly
    /// (closed store, subscriber gone); `Err(Some(status))`: end it with `status`.
    async fn idle(&self) -> Result<Vec<v1::Notice>, Option<Status>> {
        let wait = self.store.wait(&self.audience, self.position);
        tokio::select! {
            waited = wait => match waited {
                Ok(next) => Ok(next),
                Err(FeedError::Closed) => Err(None),
                Err(e) => Err(Some(feed_status(e))),
            },
            () = tokio::time::sleep(self.config.heartbeat_interval) => {
                // After the heartbeat the caller reads again, which also re-checks the cursor
                // (a feed that lost its history answers out of range instead of silence).
                self.send(self.heartbeat()).await.map_err(|Stop| None)?;
                Ok(Vec::new())
            }
            () = self.outlet.closed() => Err(None),
        }
    }

    fn heartbeat(&self) -> v1::Notice {
        v1::Notice {
            seq: self.position.map_or(0, |c| c.position),
            published_at: None,
            body: Some(v1::NoticeBody {
                kind: Some(v1::notice_body::Kind::Heartbeat(v1::Heartbeat {})),
            }),
            cursor: self.position.map(|c| c.encode()).unwrap_or_default(),
        }
    }

    async fn send(&self, notice: v1::Notice) -> Result<(), Stop> {
        self.outlet.send(notice).await
    }
}

/// The producer side of a stream's byte-capped queue.
struct Outlet {
    tx: mpsc::UnboundedSender<(Result<v1::Notice, Status>, u32)>,
    /// Free bytes of the queue.
    room: Arc<Semaphore>,
    cap: usize,
    /// How long the queue may stay full before the subscriber is cut off.
    grace: Duration,
}

/// A queue of at most `cap` bytes of encoded notices (plus a final status), and the stream
/// that drains it, giving the bytes back as the transport takes each notice.
fn outlet(cap: usize, grace: Duration) -> (Outlet, SubscribeStream) {
    let cap = cap.clamp(1, Semaphore::MAX_PERMITS);
    let room = Arc::new(Semaphore::new(cap));
    let (tx, rx) = mpsc::unbounded_channel();
    let returned = room.clone();
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(
        move |(item, bytes): (Result<v1::Notice, Status>, u32)| {
            returned.add_permits(bytes as usize);
            item
        },
    );
    let outlet = Outlet {
        tx,
        room,
        cap,
        grace,
    };
    (outlet, Box::pin(stream))
}

impl Outlet {
    /// Queues `notice` once its bytes fit.
    ///
    /// Errors: [`Stop`] when the subscriber is gone, or took nothing for `grace` while the
    /// queue was full (it then gets `RESOURCE_EXHAUSTED`).
    async fn send(&self, notice: v1::Notice) -> Result<(), Stop> {
        // A notice bigger than the whole cap still goes, alone.
        let bytes = notice.encoded_len().clamp(1, self.cap);
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let acquire = tokio::time::timeout(self.grace, self.room.acquire_many(bytes));
        tokio::select! {
            acquired = acquire => match acquired {
                Ok(Ok(permit)) => permit.forget(),
                Ok(Err(_)) => return Err(Stop),
                Err(_) => {
                    let (cap, grace) = (self.cap, self.grace);
                    self.fail(Status::resource_exhausted(format!(
                        "subscriber too slow: {cap} bytes of notices unread for {grace:?}; \
                         resume after the cursor of the last notice received"
                    )));
                    return Err(Stop);
                }
            },
            () = self.tx.closed() => return Err(Stop),
        }
        self.tx.send((Ok(notice), bytes)).map_err(|_| Stop)
    }

    /// Ends the stream with `status` (beyond the cap: one status is small and final).
    fn fail(&self, status: Status) {
        let _ = self.tx.send((Err(status), 0));
    }

    /// Resolves when the subscriber has gone away.
    async fn closed(&self) {
        self.tx.closed().await;
    }
}
