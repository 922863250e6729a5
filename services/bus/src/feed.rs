//! Feeds: the ordered, resumable notices behind the notification service.
//!
//! Each audience (one officer's terminal, or the command center) has a feed: an append-only
//! sequence of notices numbered from 1 without gaps (`seq`). A subscriber resumes after the
//! [`Cursor`] of the last notice it saw and gets exactly what it missed, in order, once.
//!
//! A cursor is `{epoch, position}`: `position` is the `seq` of the last notice seen and `epoch`
//! names one history of the feed. A feed that loses its history (an in-memory store restarted,
//! Redis data lost) starts a new epoch, so an old cursor is refused instead of silently
//! pointing into a different history. A cursor the feed cannot honour (from another epoch,
//! its next notice trimmed, or past the end) is [`Error::OutOfRange`], naming the oldest and
//! newest notices the feed holds: never silence (DESIGN.md §5, "every client-facing resume
//! point is an opaque cursor").
//!
//! Two stores implement [`FeedStore`]: [`FeedHub`] in memory (the embedded mode, unit tests)
//! and [`RedisFeedStore`] with one Redis stream per audience (multi-node clusters).
//! Publications carry an optional id, and a feed appends a publication whose id it already
//! holds only once, so a sender (the district outbox) can retry a batch after any failure.

pub mod memory;
pub mod redis_store;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use dispatch_core::OfficerId;
use dispatch_proto::v1;
use futures::Stream;

use crate::convert::FieldError;

pub use memory::FeedHub;
pub use redis_store::{RedisConfig, RedisFeedStore};

/// Who a notice is for: the key of one feed, and the audience of the notification port
/// ([`crate::ports::NotifyPort`]) in domain terms (`dispatch.v1.Audience` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AudienceKey {
    /// One officer's terminal.
    Officer(OfficerId),
    /// Every command-center screen.
    CommandCenter,
}

/// How many notices each feed keeps (the newest ones); older ones are trimmed, and a cursor
/// before them is [`Error::OutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedLimits {
    /// Per officer terminal: an officer receives a handful of orders per shift, so 1,000
    /// covers days of reconnects.
    pub officer: usize,
    /// For the command center: about six updates per incident, so 200,000 holds the updates
    /// of some 33,000 incidents, more than a city's day of 110 calls.
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

impl FeedLimits {
    /// How many notices `audience`'s feed keeps (at least 1).
    pub fn of(&self, audience: &AudienceKey) -> usize {
        match audience {
            AudienceKey::Officer(_) => self.officer,
            AudienceKey::CommandCenter => self.role,
        }
        .max(1)
    }
}

/// A resume point in a feed: after the notice `position` of the feed's history `epoch`.
///
/// `position` 0 is before the first notice. On the wire it is an opaque string
/// ([`Cursor::encode`]); clients never look inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    /// Which history of the feed: fixed when the feed (in memory: the store) is created, new
    /// after the history is lost.
    pub epoch: u64,
    /// The `seq` of the last notice seen (0: none).
    pub position: u64,
}

impl Cursor {
    /// The wire form, `"{epoch}-{position}"` in decimal (readable in logs, but opaque to
    /// clients by contract).
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// The cursor a client sent in `field`.
    ///
    /// Errors: a [`FieldError`] on `field` when `text` is not a cursor this service encoded.
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldError> {
        text.parse().map_err(|BadCursor| {
            FieldError::new(
                field,
                format!(
                    "must be the cursor of a notice as received (e.g. \"1700000000000000-42\"), got {text:?}"
                ),
            )
        })
    }

    /// A resume point from the wire: `None` for an empty string (from the oldest kept).
    ///
    /// Errors: as [`Cursor::parse`].
    pub fn parse_resume(text: &str, field: &str) -> Result<Option<Self>, FieldError> {
        if text.is_empty() {
            Ok(None)
        } else {
            Self::parse(text, field).map(Some)
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.position)
    }
}

/// A string that is not an encoded [`Cursor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor")]
pub struct BadCursor;

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let (epoch, position) = s.split_once('-').ok_or(BadCursor)?;
        let number = |t: &str| {
            // `u64::from_str` accepts a leading `+`; an encoded cursor never has one.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadCursor);
            }
            t.parse::<u64>().map_err(|_| BadCursor)
        };
        Ok(Self {
            epoch: number(epoch)?,
            position: number(position)?,
        })
    }
}

/// What a feed holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The feed's current history; `None` when the store has no history of it at all (a Redis
    /// feed never written, or lost and not written since).
    pub epoch: Option<u64>,
    /// `seq` of the oldest notice kept; 0 when none is.
    pub first: u64,
    /// `seq` of the newest notice (the head); 0 when none was appended in this epoch.
    pub last: u64,
}

impl Span {
    /// The span of a feed with no history.
    pub const NONE: Span = Span {
        epoch: None,
        first: 0,
        last: 0,
    };

    /// Cursor of the oldest notice kept, if any.
    pub fn oldest(&self) -> Option<Cursor> {
        self.cursor_at(self.first)
    }

    /// Cursor of the newest notice, if any.
    pub fn newest(&self) -> Option<Cursor> {
        self.cursor_at(self.last)
    }

    /// The resume point after everything appended so far (`position` 0 in an empty feed);
    /// `None` without history (resuming from the oldest kept is then the same).
    pub fn head(&self) -> Option<Cursor> {
        self.epoch.map(|epoch| Cursor {
            epoch,
            position: self.last,
        })
    }

    fn cursor_at(&self, position: u64) -> Option<Cursor> {
        match (self.epoch, position) {
            (Some(epoch), 1..) => Some(Cursor { epoch, position }),
            _ => None,
        }
    }

    /// Whether reading after `after` gets every notice since, without a gap.
    ///
    /// Errors: [`Error::OutOfRange`] when `after` is from another epoch (or the feed has no
    /// history), past the head, or before notices already trimmed.
    pub fn check(&self, after: Cursor) -> Result<()> {
        let same_epoch = self.epoch == Some(after.epoch);
        // The next notice the reader needs, `position + 1`, must still be kept (or not yet
        // appended); in a feed with nothing kept, only the head itself is a valid position.
        let next_kept = if self.first == 0 {
            after.position == self.last
        } else {
            after.position.saturating_add(1) >= self.first
        };
        if same_epoch && after.position <= self.last && next_kept {
            Ok(())
        } else {
            Err(self.out_of_range(after))
        }
    }

    /// The error refusing `cursor` for this span.
    pub fn out_of_range(&self, cursor: Cursor) -> Error {
        Error::OutOfRange {
            cursor,
            oldest: self.oldest(),
            newest: self.newest(),
        }
    }
}

/// One notice to append to its audience's feed.
///
/// `B` is the form of its body: in the feeds, the wire body as the notification service
/// received it (`v1::NoticeBody`, the default); at the notification port, the domain body
/// ([`crate::ports::NoticeBody`], see [`crate::ports::Publication`]). Either way an order or an
/// incident update, never a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication<B = v1::NoticeBody> {
    /// Whose feed.
    pub audience: AudienceKey,
    /// What to deliver.
    pub body: B,
    /// Idempotency key, unique within the audience's feed; `None`: always appended.
    pub id: Option<String>,
}

/// What can go wrong with a feed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The feed cannot resume after `cursor`: it is from another epoch (the feed lost its
    /// history since), past the feed's end, or the notices after it were trimmed.
    #[error(
        "cursor {cursor} is out of range: the feed holds {}",
        holdings(*.oldest, *.newest)
    )]
    OutOfRange {
        /// The cursor refused.
        cursor: Cursor,
        /// Cursor of the oldest notice the feed holds (`None`: it holds none).
        oldest: Option<Cursor>,
        /// Cursor of the newest notice the feed holds (`None`: it holds none).
        newest: Option<Cursor>,
    },
    /// The store is closed (the service is shutting down): waits end. Appends and reads
    /// still work.
    #[error("the feed store is closed")]
    Closed,
    /// The backend failed (Redis unreachable, timed out, or answered something unexpected);
    /// the operation may or may not have taken effect, so retry appends with publication ids.
    #[error("feed store unavailable: {0}")]
    Unavailable(String),
}

fn holdings(oldest: Option<Cursor>, newest: Option<Cursor>) -> String {
    match (oldest, newest) {
        (Some(o), Some(n)) => format!("notices from cursor {o} to cursor {n}"),
        _ => "no notices".into(),
    }
}

/// Result of feed operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where feeds live: in memory ([`FeedHub`]) or in Redis ([`RedisFeedStore`]). Shared as
/// `Arc<dyn FeedStore>`.
///
/// Every notice a store returns has `seq`, `published_at`, `body` and `cursor` set.
#[tonic::async_trait]
pub trait FeedStore: Send + Sync + fmt::Debug + 'static {
    /// Appends each publication to its audience's feed, in order, and returns the cursor of
    /// each one's notice. Each publication is appended atomically (numbered, stored, trimmed
    /// to the feed's limit, its id recorded); one whose id the feed already holds is not
    /// appended again and gets its original cursor.
    ///
    /// Errors: [`Error::Unavailable`]; publications before the failing one may be appended,
    /// so a retry of the whole batch must carry publication ids.
    async fn append(&self, publications: Vec<Publication>) -> Result<Vec<Cursor>>;

    /// At most `max` notices of `audience` after `after` (`None`: from the oldest kept), in
    /// order; empty when there is nothing newer yet.
    ///
    /// Errors: [`Error::OutOfRange`] when the feed cannot resume after `after` (see
    /// [`Span::check`]); [`Error::Unavailable`].
    async fn read(
        &self,
        audience: &AudienceKey,
        after: Option<Cursor>,
        max: usize,
    ) -> Result<Vec<v1::Notice>>;

    /// What `audience`'s feed holds now.
    ///
    /// Errors: [`Error::Unavailable`].
    async fn span(&self, audience: &AudienceKey) -> Result<Span>;

    /// Returns once `audience`'s feed may have moved past `after` (a notice appended, or a
    /// new epoch); at once if it already has. When the store learnt the notice that moved
    /// the feed from the wake-up itself, and it is the very next one after `after` (same
    /// epoch, position + 1), it returns that notice, sparing the caller a read; otherwise it
    /// returns nothing and the caller reads. A spurious return costs one read; callers bound
    /// the wait (the notification service wakes at least every heartbeat interval and
    /// re-checks its cursor).
    ///
    /// Errors: [`Error::Closed`] once the store is closed; [`Error::Unavailable`].
    async fn wait(&self, audience: &AudienceKey, after: Option<Cursor>) -> Result<Vec<v1::Notice>>;

    /// Ends every wait, now and later, with [`Error::Closed`] (at shutdown, so open
    /// subscriptions end and the server can drain).
    fn close(&self);

    /// Whether [`FeedStore::close`] was called.
    fn is_closed(&self) -> bool;
}

/// Notices [`follow`] reads from the store at a time.
const FOLLOW_BATCH: usize = 256;
/// Longest [`follow`] waits before reading again anyway: a Redis wake-up is at most once, so
/// a lost one must cost seconds, not the rest of the stream.
const FOLLOW_RECHECK: Duration = Duration::from_secs(5);

/// The notices of `audience` after `after` (`None`: from the oldest kept), in order, then each
/// new one as it is appended: the plain reading loop of a subscriber, for in-process readers
/// and tests (the notification service adds heartbeats and a byte cap to it).
///
/// Ends when the store is closed; ends after yielding the first error ([`Error::OutOfRange`]
/// when `after`, or the position reached, is one the feed cannot resume after;
/// [`Error::Unavailable`]).
pub fn follow(
    store: Arc<dyn FeedStore>,
    audience: AudienceKey,
    after: Option<Cursor>,
) -> impl Stream<Item = Result<v1::Notice>> + Send + 'static {
    struct State {
        store: Arc<dyn FeedStore>,
        audience: AudienceKey,
        after: Option<Cursor>,
        pending: VecDeque<v1::Notice>,
        failed: bool,
    }
    let state = State {
        store,
        audience,
        after,
        pending: VecDeque::new(),
        failed: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.failed || s.store.is_closed() {
                return None;
            }
            if let Some(notice) = s.pending.pop_front() {
                match notice.cursor.parse() {
                    Ok(cursor) => s.after = Some(cursor),
                    Err(BadCursor) => {
                        s.failed = true;
                        let bad = Error::Unavailable(format!(
                            "the feed store returned a notice with a bad cursor {:?}",
                            notice.cursor
                        ));
                        return Some((Err(bad), s));
                    }
                }
                return Some((Ok(notice), s));
            }
            let read = s.store.read(&s.audience, s.after, FOLLOW_BATCH).await;
            let waited = match read {
                Ok(batch) if !batch.is_empty() => {
                    s.pending.extend(batch);
                    continue;
                }
                Ok(_) => tokio::time::timeout(FOLLOW_RECHECK, s.store.wait(&s.audience, s.after))
                    .await
                    .unwrap_or(Ok(Vec::new())),
                Err(e) => Err(e),
            };
            match waited {
                Ok(next) => s.pending.extend(next),
                Err(Error::Closed) => return None,
                Err(e) => {
                    s.failed = true;
                    return Some((Err(e), s));
                }
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
