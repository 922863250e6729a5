//! The in-memory feed store: the embedded single-process mode and unit tests.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dispatch_core::clock::SharedClock;
use dispatch_proto::v1;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{AudienceKey, Cursor, Error, FeedLimits, FeedStore, Publication, Result, Span};
use crate::convert::timestamp_to_wire;

/// All feeds of one process, in memory: [`FeedStore`] for the embedded mode and tests.
///
/// Every feed of a hub shares the hub's epoch, fresh for each hub (the time it was created, in
/// microseconds since the UNIX epoch, made unique within the process), so the cursors of a
/// notification service that restarted are refused rather than read against the new, empty
/// feeds. Each feed keeps its newest [`FeedLimits`] notices, and remembers the publication ids
/// of those it keeps.
pub struct FeedHub {
    epoch: u64,
    feeds: Mutex<HashMap<AudienceKey, Arc<Feed>>>,
    limits: FeedLimits,
    clock: SharedClock,
    closed: watch::Sender<bool>,
}

struct Feed {
    log: Mutex<Log>,
    /// `seq` of the newest notice (0 when none); wakes waiters.
    head: watch::Sender<u64>,
}

#[derive(Default)]
struct Log {
    notices: VecDeque<Kept>,
    /// Publication id -> `seq`, for the notices kept.
    ids: HashMap<String, u64>,
    /// `seq` of the newest notice (0 when none).
    last: u64,
}

struct Kept {
    notice: v1::Notice,
    id: Option<String>,
}

impl Log {
    fn first(&self) -> u64 {
        self.notices.front().map_or(0, |k| k.notice.seq)
    }
}

impl std::fmt::Debug for FeedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedHub")
            .field("epoch", &self.epoch)
            .field("feeds", &self.feeds.lock().len())
            .field("limits", &self.limits)
            .finish()
    }
}

/// A new epoch: microseconds since the UNIX epoch, and above every epoch handed out before in
/// this process (two hubs created in the same microsecond still differ).
fn fresh_epoch() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    now.max(previous.saturating_add(1))
}

impl FeedHub {
    /// An empty hub with a fresh epoch, stamping notices with `clock`.
    pub fn new(clock: SharedClock, limits: FeedLimits) -> Self {
        Self {
            epoch: fresh_epoch(),
            feeds: Mutex::new(HashMap::new()),
            limits,
            clock,
            closed: watch::channel(false).0,
        }
    }

    /// The epoch of every feed of this hub.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `seq` of the newest notice of `audience` (0 when none).
    pub fn head(&self, audience: &AudienceKey) -> u64 {
        self.existing(audience).map_or(0, |f| f.log.lock().last)
    }

    fn existing(&self, audience: &AudienceKey) -> Option<Arc<Feed>> {
        self.feeds.lock().get(audience).cloned()
    }

    fn feed(&self, audience: &AudienceKey) -> Arc<Feed> {
        self.feeds
            .lock()
            .entry(audience.clone())
            .or_insert_with(|| {
                Arc::new(Feed {
                    log: Mutex::new(Log::default()),
                    head: watch::channel(0).0,
                })
            })
            .clone()
    }

    fn cursor(&self, position: u64) -> Cursor {
        Cursor {
            epoch: self.epoch,
            position,
        }
    }

    fn append_one(&self, p: Publication) -> Cursor {
        let feed = self.feed(&p.audience);
        let capacity = self.limits.of(&p.audience);
        let mut log = feed.log.lock();
        if let Some(seq) = p.id.as_ref().and_then(|id| log.ids.get(id)) {
            return self.cursor(*seq);
        }
        let seq = log.last + 1;
        let cursor = self.cursor(seq);
        log.notices.push_back(Kept {
            notice: v1::Notice {
                seq,
                published_at: Some(timestamp_to_wire(self.clock.now())),
                body: Some(p.body),
                cursor: cursor.encode(),
            },
            id: p.id.clone(),
        });
        if let Some(id) = p.id {
            log.ids.insert(id, seq);
        }
        while log.notices.len() > capacity {
            if let Some(Kept { id: Some(id), .. }) = log.notices.pop_front() {
                log.ids.remove(&id);
            }
        }
        log.last = seq;
        feed.head.send_replace(seq);
        cursor
    }

    fn span_of(&self, log: &Log) -> Span {
        Span {
            epoch: Some(self.epoch),
            first: log.first(),
            last: log.last,
        }
    }
}

#[tonic::async_trait]
impl FeedStore for FeedHub {
    async fn append(&self, publications: Vec<Publication>) -> Result<Vec<Cursor>> {
        Ok(publications
            .into_iter()
            .map(|p| self.append_one(p))
            .collect())
    }

    async fn read(
        &self,
        audience: &AudienceKey,
        after: Option<Cursor>,
        max: usize,
    ) -> Result<Vec<v1::Notice>> {
        let Some(feed) = self.existing(audience) else {
            let span = self.span_of(&Log::default());
            return match after {
                Some(c) => span.check(c).map(|()| Vec::new()),
                None => Ok(Vec::new()),
            };
        };
        let log = feed.log.lock();
        let skip = match after {
            Some(c) => {
                self.span_of(&log).check(c)?;
                // `check` guarantees first <= position + 1 when anything is kept.
                usize::try_from((c.position + 1).saturating_sub(log.first())).unwrap_or(usize::MAX)
            }
            None => 0,
        };
        Ok(log
            .notices
            .iter()
            .skip(skip)
            .take(max)
            .map(|k| k.notice.clone())
            .collect())
    }

    async fn span(&self, audience: &AudienceKey) -> Result<Span> {
        Ok(match self.existing(audience) {
            Some(feed) => self.span_of(&feed.log.lock()),
            None => self.span_of(&Log::default()),
        })
    }

    /// Never hands notices back: reading the in-memory feed costs no round trip.
    async fn wait(&self, audience: &AudienceKey, after: Option<Cursor>) -> Result<Vec<v1::Notice>> {
        let feed = self.feed(audience);
        let mut head = feed.head.subscribe();
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow_and_update() {
                return Err(Error::Closed);
            }
            // Marked seen before comparing: an append after this wakes `changed` below.
            let last = *head.borrow_and_update();
            let moved = match after {
                None => last > 0,
                Some(c) => c.epoch != self.epoch || c.position != last,
            };
            if moved {
                return Ok(Vec::new());
            }
            tokio::select! {
                // Both senders outlive the call (the feed is held, the hub borrowed).
                _ = head.changed() => {}
                _ = closed.changed() => {}
            }
        }
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}
