//! The in-process fan-out bus behind the notification service.
//!
//! Each audience (one officer's terminal, or the command center) has a feed: an append-only,
//! gap-free sequence of notices numbered from 1. A subscriber reads from any point
//! (`resume_after`), so a terminal that reconnects gets what it missed, in order. Each feed keeps
//! its newest `capacity` notices; a subscriber that falls further behind sees a gap in `seq`
//! and a warning is logged.
//!
//! This is the single-process implementation; the Redis bus of a multi-node cluster (a later
//! issue) keeps the same contract with a Redis stream per audience.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dispatch_core::clock::SharedClock;
use dispatch_proto::v1;
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::convert::timestamp_to_wire;

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AudienceKey {
    /// One officer's terminal.
    Officer(String),
    /// Every command-center screen.
    CommandCenter,
}

/// How many notices each feed keeps.
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    /// Per officer terminal; an officer receives a handful of orders per shift.
    pub officer: usize,
    /// For the command center; about six updates per incident.
    pub role: usize,
}

impl Default for FeedLimits {
    fn default() -> Self {
        Self {
            officer: 1_000,
            role: 200_000,
        }
    }
}

struct Feed {
    log: Mutex<VecDeque<v1::Notice>>,
    /// Sequence number of the newest notice (0 when none); wakes subscribers.
    head: watch::Sender<u64>,
    /// `None` once the hub is closed.
    open: watch::Receiver<bool>,
    capacity: usize,
}

/// The hub of all feeds. Cheap to share behind an `Arc`.
pub struct FeedHub {
    feeds: Mutex<HashMap<AudienceKey, Arc<Feed>>>,
    limits: FeedLimits,
    clock: SharedClock,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for FeedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedHub")
            .field("feeds", &self.feeds.lock().len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl FeedHub {
    /// An empty hub stamping notices with `clock`.
    pub fn new(clock: SharedClock, limits: FeedLimits) -> Self {
        let (closed, _) = watch::channel(true);
        Self {
            feeds: Mutex::new(HashMap::new()),
            limits,
            clock,
            closed,
        }
    }

    fn feed(&self, key: &AudienceKey) -> Arc<Feed> {
        let mut feeds = self.feeds.lock();
        feeds
            .entry(key.clone())
            .or_insert_with(|| {
                let capacity = match key {
                    AudienceKey::Officer(_) => self.limits.officer,
                    AudienceKey::CommandCenter => self.limits.role,
                };
                Arc::new(Feed {
                    log: Mutex::new(VecDeque::new()),
                    head: watch::channel(0).0,
                    open: self.closed.subscribe(),
                    capacity: capacity.max(1),
                })
            })
            .clone()
    }

    /// Appends `body` to `audience`'s feed; returns its sequence number (from 1, no gaps).
    pub fn publish(&self, audience: &AudienceKey, body: v1::NoticeBody) -> u64 {
        let feed = self.feed(audience);
        let mut log = feed.log.lock();
        let seq = log.back().map_or(*feed.head.borrow(), |n| n.seq) + 1;
        log.push_back(v1::Notice {
            seq,
            published_at: Some(timestamp_to_wire(self.clock.now())),
            body: Some(body),
        });
        while log.len() > feed.capacity {
            log.pop_front();
        }
        feed.head.send_replace(seq);
        seq
    }

    /// Sequence number of the newest notice of `audience` (0 when none).
    pub fn head(&self, audience: &AudienceKey) -> u64 {
        *self.feed(audience).head.borrow()
    }

    /// Ends every subscription (at shutdown); later publishes are still kept.
    pub fn close(&self) {
        self.closed.send_replace(false);
    }

    /// Notices of `audience` after `resume_after`, in order, then new ones as they come; ends
    /// when the hub closes.
    pub fn subscribe(
        &self,
        audience: &AudienceKey,
        resume_after: u64,
    ) -> impl Stream<Item = v1::Notice> + Send + 'static {
        let feed = self.feed(audience);
        let mut head = feed.head.subscribe();
        let mut open = feed.open.clone();
        let label = format!("{audience:?}");
        async_stream_like(move |yield_tx| async move {
            let mut cursor = resume_after;
            loop {
                if !*open.borrow() {
                    return;
                }
                // Mark the head seen *before* reading the log: a publish after this point
                // wakes `changed()` below, so no notice can slip between read and wait.
                head.borrow_and_update();
                let batch: Vec<v1::Notice> = {
                    let log = feed.log.lock();
                    let first = log.front().map_or(cursor + 1, |n| n.seq);
                    if first > cursor + 1 {
                        tracing::warn!(audience = %label, from = cursor + 1, to = first - 1,
                            "subscriber fell behind the kept feed, notices skipped");
                    }
                    let skip =
                        usize::try_from((cursor + 1).saturating_sub(first)).unwrap_or(usize::MAX);
                    log.iter().skip(skip).cloned().collect()
                };
                if batch.is_empty() {
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        _ = open.changed() => {},
                    }
                    continue;
                }
                for notice in batch {
                    cursor = notice.seq;
                    if yield_tx.send(notice).await.is_err() {
                        return;
                    }
                }
            }
        })
    }
}

/// Runs `body` as a task feeding a bounded channel and returns the channel as a stream; the
/// task stops when the stream is dropped.
fn async_stream_like<F, Fut>(body: F) -> impl Stream<Item = v1::Notice> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<v1::Notice>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dispatch_core::{ManualClock, Timestamp};
    use futures::StreamExt;

    fn hub(officer: usize) -> FeedHub {
        FeedHub::new(
            Arc::new(ManualClock::at(Timestamp(0))),
            FeedLimits { officer, role: 10 },
        )
    }

    fn order(id: &str) -> v1::NoticeBody {
        v1::NoticeBody {
            kind: Some(v1::notice_body::Kind::DispatchOrder(v1::DispatchOrder {
                dispatch_id: id.into(),
                ..Default::default()
            })),
        }
    }

    fn dispatch_id(n: &v1::Notice) -> String {
        match n.body.as_ref().unwrap().kind.as_ref().unwrap() {
            v1::notice_body::Kind::DispatchOrder(o) => o.dispatch_id.clone(),
            v1::notice_body::Kind::IncidentUpdate(_) => panic!("not an order"),
        }
    }

    #[tokio::test]
    async fn feeds_are_numbered_per_audience_and_resumable() {
        let hub = hub(100);
        let a = AudienceKey::Officer("a".into());
        let b = AudienceKey::Officer("b".into());
        assert_eq!(hub.publish(&a, order("a1")), 1);
        assert_eq!(hub.publish(&b, order("b1")), 1);
        assert_eq!(hub.publish(&a, order("a2")), 2);
        let mut from_start = Box::pin(hub.subscribe(&a, 0));
        assert_eq!(dispatch_id(&from_start.next().await.unwrap()), "a1");
        assert_eq!(dispatch_id(&from_start.next().await.unwrap()), "a2");
        let mut resumed = Box::pin(hub.subscribe(&a, 1));
        let n = resumed.next().await.unwrap();
        assert_eq!((n.seq, dispatch_id(&n)), (2, "a2".to_string()));
        // A live subscriber wakes on the next publish.
        hub.publish(&a, order("a3"));
        assert_eq!(dispatch_id(&from_start.next().await.unwrap()), "a3");
        assert_eq!(dispatch_id(&resumed.next().await.unwrap()), "a3");
    }

    #[tokio::test]
    async fn a_full_feed_drops_the_oldest_and_close_ends_streams() {
        let hub = hub(2);
        let a = AudienceKey::Officer("a".into());
        for i in 1..=3 {
            hub.publish(&a, order(&format!("a{i}")));
        }
        let mut s = Box::pin(hub.subscribe(&a, 0));
        assert_eq!(s.next().await.unwrap().seq, 2);
        assert_eq!(s.next().await.unwrap().seq, 3);
        hub.close();
        assert!(s.next().await.is_none());
        assert_eq!(hub.head(&a), 3);
    }
}
