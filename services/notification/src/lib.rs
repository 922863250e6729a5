//! The notification service: the last hop of a 110 call before it reaches a person.
//!
//! When a district actor dispatches an officer it publishes a `DispatchOrder` to that officer's
//! feed, and every change of an incident (routed, queued, dispatched, on scene, cleared) to the
//! command-center feed, through `Notification.Publish`. Officer terminals and command-center
//! screens (and intake, which keeps its incident records current from the command-center feed)
//! hold a `Notification.Subscribe` server stream open and receive those notices in order. A
//! subscriber that reconnects passes the opaque cursor of the last notice it saw
//! (`resume_after`) and gets exactly what it missed; a cursor the feed cannot honour (trimmed,
//! from before the feeds lost their history, past the end) is answered `OUT_OF_RANGE` naming
//! the oldest and newest cursors held, never with silence.
//!
//! The feeds live in a [`FeedStore`] (in memory, or Redis streams shared by several
//! notification nodes); this crate is the gRPC shell around it: [`validate`] checks every
//! request (pure, unit-tested), [`NotificationService`] implements the generated server trait
//! (with heartbeats on quiet streams and a byte cap for subscribers that stop reading), and
//! [`run`] serves it.

mod subscription;
pub mod validate;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::feed::{self, AudienceKey, Cursor, FeedStore};
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::notification_server::{Notification, NotificationServer};
use dispatch_runtime::ServeOptions;
use futures::Stream;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Whether an officer id is on some district's roster; a subscription for one that is not
/// is answered `NOT_FOUND`, so unknown ids never get a feed of their own.
pub type RosterCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How subscriptions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationConfig {
    /// A stream with nothing to deliver for this long gets a heartbeat notice. 20 s: below
    /// the 30-60 s idle timeouts common in load balancers and NAT tables, so a quiet terminal
    /// stream stays open, and a dead one is noticed within that time.
    pub heartbeat_interval: Duration,
    /// Most bytes of encoded notices queued for one subscriber. 1 MiB: about 3,000 incident
    /// updates of ~300 bytes, far more than a live terminal or screen ever has in flight. A
    /// subscriber whose queue is full and that takes nothing for a `heartbeat_interval` is cut
    /// off with `RESOURCE_EXHAUSTED` (it can resume from its last cursor).
    pub max_buffered_bytes: usize,
    /// Notices read from the store at a time. 256: one Redis round trip per 256 notices.
    pub read_batch: usize,
    /// Most notices a command-center subscription with an empty cursor replays (the newest
    /// ones). 200,000: the command center's default retention
    /// ([`feed::FeedLimits::role`]), i.e. everything kept.
    pub command_center_replay: u64,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(20),
            max_buffered_bytes: 1 << 20,
            read_batch: 256,
            command_center_replay: 200_000,
        }
    }
}

/// The gRPC notification service over a shared [`FeedStore`].
///
/// Cheap to clone; several services (or the embedded server and its tests) may share one
/// store, and whoever holds the store may also publish to it directly.
#[derive(Clone)]
pub struct NotificationService {
    store: Arc<dyn FeedStore>,
    config: NotificationConfig,
    roster: Option<RosterCheck>,
}

impl std::fmt::Debug for NotificationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationService")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("roster_check", &self.roster.is_some())
            .finish()
    }
}

impl NotificationService {
    /// A service delivering the feeds of `store`, with the default [`NotificationConfig`].
    pub fn new(store: Arc<dyn FeedStore>) -> Self {
        Self::with_config(store, NotificationConfig::default())
    }

    /// A service delivering the feeds of `store`, configured by `config`.
    pub fn with_config(store: Arc<dyn FeedStore>, config: NotificationConfig) -> Self {
        Self {
            store,
            config,
            roster: None,
        }
    }

    /// The same service, answering `NOT_FOUND` to subscriptions of officers `roster` does not
    /// know.
    pub fn with_roster(mut self, roster: RosterCheck) -> Self {
        self.roster = Some(roster);
        self
    }

    /// The store this service reads from and appends to.
    pub fn store(&self) -> &Arc<dyn FeedStore> {
        &self.store
    }

    /// Where a subscription starts (`None`: the oldest kept) and whether it opens with a
    /// heartbeat carrying that point.
    async fn start(
        &self,
        key: &AudienceKey,
        req: &v1::SubscribeRequest,
    ) -> Result<(Option<Cursor>, bool), Status> {
        if req.from_latest {
            let span = self.store.span(key).await.map_err(feed_status)?;
            return Ok((span.head(), true));
        }
        let resume = Cursor::parse_resume(&req.resume_after, "resume_after")?;
        if resume.is_some() || *key != AudienceKey::CommandCenter {
            return Ok((resume, false));
        }
        // From the oldest kept, but the command center's replay is bounded.
        let span = self.store.span(key).await.map_err(feed_status)?;
        let kept = if span.first == 0 {
            0
        } else {
            span.last - span.first + 1
        };
        let limit = self.config.command_center_replay;
        let start = match span.epoch {
            Some(epoch) if kept > limit => Some(Cursor {
                epoch,
                position: span.last - limit,
            }),
            _ => None,
        };
        Ok((start, false))
    }
}

/// The stream answered by `Subscribe`: notices of one audience, in `seq` order, with
/// heartbeats while quiet; ends when the store closes (at shutdown) or the client goes away,
/// or with an error status (`OUT_OF_RANGE`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`).
pub type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::Notice, Status>> + Send>>;

/// The status for a feed error: `OUT_OF_RANGE` naming `resume_after`, the cursor refused and
/// the oldest and newest cursors held (in the message, a `BadRequest` field violation and an
/// `ErrorInfo` with metadata `cursor`, `oldest`, `newest`, empty when none); `UNAVAILABLE` for a
/// failing or closed store.
pub fn feed_status(e: feed::Error) -> Status {
    match &e {
        feed::Error::OutOfRange {
            cursor,
            oldest,
            newest,
        } => {
            let rule =
                format!("{e}; resume with an empty cursor to read from the oldest notice kept");
            let encode = |c: &Option<Cursor>| c.map(|c| c.encode()).unwrap_or_default();
            let metadata = HashMap::from([
                ("cursor".to_string(), cursor.encode()),
                ("oldest".to_string(), encode(oldest)),
                ("newest".to_string(), encode(newest)),
            ]);
            let mut details = ErrorDetails::with_bad_request_violation("resume_after", &rule);
            details.set_error_info("CURSOR_OUT_OF_RANGE", "dispatch.v1.Notification", metadata);
            Status::with_error_details(Code::OutOfRange, format!("resume_after: {rule}"), details)
        }
        feed::Error::Closed => Status::unavailable("the notification service is shutting down"),
        feed::Error::Unavailable(_) => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl Notification for NotificationService {
    type SubscribeStream = SubscribeStream;

    /// Errors: `InvalidArgument` on `audience` (missing), `audience.officer_id` (empty),
    /// `audience.role` (not `ROLE_COMMAND_CENTER`) or `resume_after` (not a cursor);
    /// `NotFound` for an officer on no roster (when a roster check is set); `OutOfRange` for a
    /// cursor the feed cannot resume after; `Unavailable` when the store fails.
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let key = validate::audience_key(req.audience.as_ref(), "audience")?;
        if let (Some(known), AudienceKey::Officer(id)) = (&self.roster, &key)
            && !known(id.as_str())
        {
            return Err(Status::not_found(format!(
                "audience.officer_id: officer {id:?} is on no district's roster"
            )));
        }
        let (start, greet) = self.start(&key, &req).await?;
        // The first read checks the cursor, so a bad one is refused here, not mid-stream.
        let first = self
            .store
            .read(&key, start, self.config.read_batch)
            .await
            .map_err(feed_status)?;
        let config = subscription::SubscribeConfig {
            heartbeat_interval: self.config.heartbeat_interval,
            max_buffered_bytes: self.config.max_buffered_bytes,
            read_batch: self.config.read_batch,
        };
        Ok(Response::new(subscription::stream(
            self.store.clone(),
            key,
            start,
            first,
            greet,
            config,
        )))
    }

    /// Appends every publication, in request order, and answers their sequence numbers and
    /// cursors. A publication whose `publication_id` its feed already holds is not appended
    /// again and is answered with its original cursor, so a sender may retry a whole batch.
    ///
    /// Errors: `InvalidArgument` naming `publications[i].audience...` or `publications[i].body`
    /// of the first bad publication (nothing is appended then); `Unavailable` when the store
    /// fails (some publications may be appended: retry with the same ids).
    /// Appends in the caller's trace: its trace id (`traceparent`) is recorded as `trace_id`
    /// on the handler's span, and on the detached append's.
    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let span = dispatch_bus::trace::handler_span("Notification.Publish", &request);
        let publications = validate::publications(request.into_inner())?;
        // Detached: a caller that gives up mid-batch must not leave it half appended.
        let store = self.store.clone();
        let append = async move { store.append(publications).await };
        let cursors = tokio::spawn(tracing::Instrument::instrument(append, span))
            .await
            .map_err(|e| Status::internal(format!("append task failed: {e}")))?
            .map_err(feed_status)?;
        Ok(Response::new(v1::PublishResponse {
            seqs: cursors.iter().map(|c| c.position).collect(),
            cursors: cursors.iter().map(Cursor::encode).collect(),
        }))
    }
}

/// Serves `Notification` (plus gRPC health and reflection) over `store` with the default
/// [`NotificationConfig`] on `listener` until `shutdown` resolves. See [`run_service`].
///
/// Errors: the transport error that ended serving.
pub async fn run(
    listener: TcpListener,
    store: Arc<dyn FeedStore>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    run_service(listener, NotificationService::new(store), shutdown).await
}

/// Serves `service` (plus gRPC health and reflection) on `listener` until `shutdown`
/// resolves.
///
/// At shutdown the store is closed first, so every open `Subscribe` stream ends; a terminal's
/// stream never ends on its own, and graceful shutdown waits for running calls.
///
/// Errors: the transport error that ended serving.
pub async fn run_service(
    listener: TcpListener,
    service: NotificationService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    run_with(listener, service, shutdown, ServeOptions::default()).await
}

/// [`run_service`] with serving `options` (drain bound, a dependency probe for health).
///
/// Errors: the transport error that ended serving.
pub async fn run_with(
    listener: TcpListener,
    service: NotificationService,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) -> Result<(), tonic::transport::Error> {
    let store = service.store.clone();
    let routes = Routes::new(NotificationServer::new(service));
    let shutdown = async move {
        shutdown.await;
        store.close();
    };
    dispatch_runtime::serve_with(
        listener,
        routes,
        &[service_names::NOTIFICATION],
        shutdown,
        options,
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
