//! What the notification port carries, in domain terms: who a notice is for, what it
//! delivers, a publication, a subscription, and a notice as a subscriber receives it.
//!
//! These live beside the port, not in `dispatch-core`, because the audience and the resume
//! point are the feeds' own [`AudienceKey`] and [`Cursor`] ([`crate::feed`]) and a publication
//! is the feeds' [`feed::Publication`] over the domain body: one type per concept for the port
//! and the feeds. Their `dispatch.v1` forms (`Audience`, `NoticeBody`, `Publication`,
//! `SubscribeRequest`, `Notice`) are made and read in [`crate::convert`], and only the port's
//! gRPC and in-process adapters use them.

use dispatch_core::district::DispatchOrder;
use dispatch_core::{Incident, Timestamp};

use crate::feed::{self, AudienceKey, Cursor};

/// What a notice delivers (`dispatch.v1.NoticeBody` without its heartbeat, which is a
/// [`Notice::Heartbeat`] here and never published).
#[derive(Debug, Clone, PartialEq)]
pub enum NoticeBody {
    /// An order sending one officer to one incident, for that officer's terminal.
    DispatchOrder(DispatchOrder),
    /// An incident as its district now keeps it (state, officer, times, revision), for the
    /// command center and intake's record. Boxed: an incident is about twice an order's size.
    IncidentUpdate(Box<Incident>),
}

/// One notice to append to its audience's feed (`dispatch.v1.Publication`):
/// - `audience`: whose feed ([`AudienceKey::Officer`] for an order, normally the ordered
///   officer; [`AudienceKey::CommandCenter`] for incident updates);
/// - `body`: what it delivers ([`NoticeBody`]);
/// - `id`: the idempotency key, unique within the audience's feed (the district sends the
///   dispatch id of an order, `{incident_id}@{revision}` of an update): a feed appends a
///   publication whose id it already holds only once, and answers its original cursor; `None`:
///   appended every time it is sent.
pub type Publication = feed::Publication<NoticeBody>;

/// A request for one audience's notices, in feed order (`dispatch.v1.SubscribeRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Whose feed.
    pub audience: AudienceKey,
    /// Where to start: after this cursor (of the last notice already seen; a heartbeat's will
    /// do), or, for `None`, from the oldest notice kept (for the command center at most the
    /// service's replay limit, the newest ones). Opaque: take it from a [`Notice`] and pass it
    /// back as it is.
    pub resume_after: Option<Cursor>,
}

/// One item of a subscription's stream (`dispatch.v1.Notice`).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A publication, as its audience's feed numbered and stamped it.
    Published(PublishedNotice),
    /// A sign of life of a quiet stream (sent when nothing was delivered for the service's
    /// heartbeat interval, 20 s by default); never stored in a feed.
    Heartbeat {
        /// The stream's position: the cursor of the last notice before it, so resuming after
        /// it is the same as resuming after that notice; `None` before any (from the oldest
        /// kept).
        after: Option<Cursor>,
    },
}

impl Notice {
    /// Where to resume after this item ([`Subscription::resume_after`]): a published notice's
    /// cursor, or a heartbeat's position.
    pub fn cursor(&self) -> Option<Cursor> {
        match self {
            Notice::Published(notice) => Some(notice.cursor),
            Notice::Heartbeat { after } => *after,
        }
    }
}

/// A notice of an audience's feed as a subscriber receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedNotice {
    /// Its position in the feed: from 1, without gaps within one epoch of the feed (a feed
    /// that lost its history starts a new epoch, from 1 again).
    pub seq: u64,
    /// Where to resume after it.
    pub cursor: Cursor,
    /// When the feed appended it, cluster time.
    pub published_at: Timestamp,
    /// What it delivers.
    pub body: NoticeBody,
}
