//! The notification service: the last hop of a 110 call before it reaches a person.
//!
//! When a district actor dispatches an officer it publishes a `DispatchOrder` to that officer's
//! feed, and every change of an incident (routed, queued, dispatched, on scene, cleared) to the
//! command-center feed, through `Notification.Publish`. Officer terminals and command-center
//! screens (and intake, which keeps its incident records current from the command-center feed)
//! hold a `Notification.Subscribe` server stream open and receive those notices in order. A
//! subscriber that reconnects passes the last sequence number it saw (`resume_after`) and gets
//! what it missed.
//!
//! The feeds themselves live in [`dispatch_bus::feed::FeedHub`]; this crate is the gRPC shell
//! around it: [`validate`] checks every request (pure, unit-tested), [`NotificationService`]
//! implements the generated server trait, and [`run`] serves it.

pub mod validate;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dispatch_bus::feed::FeedHub;
use dispatch_proto::service_names;
use dispatch_proto::v1;
use dispatch_proto::v1::notification_server::{Notification, NotificationServer};
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// The gRPC notification service over a shared [`FeedHub`].
///
/// Cheap to construct; several services (or the embedded server and its tests) may share one
/// hub, and whoever holds the hub may also publish to it directly.
#[derive(Debug, Clone)]
pub struct NotificationService {
    hub: Arc<FeedHub>,
}

impl NotificationService {
    /// A service delivering the feeds of `hub`.
    pub fn new(hub: Arc<FeedHub>) -> Self {
        Self { hub }
    }

    /// The hub this service reads from and appends to.
    pub fn hub(&self) -> &Arc<FeedHub> {
        &self.hub
    }
}

/// The stream answered by `Subscribe`: notices of one audience, in `seq` order, ending when the
/// hub closes (at shutdown) or the client goes away.
pub type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::Notice, Status>> + Send>>;

#[tonic::async_trait]
impl Notification for NotificationService {
    type SubscribeStream = SubscribeStream;

    /// Errors: `InvalidArgument` on `audience` (missing), `audience.officer_id` (empty) or
    /// `audience.role` (not `ROLE_COMMAND_CENTER`).
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let key = validate::audience_key(req.audience.as_ref(), "audience")?;
        let start = if req.from_latest {
            self.hub.head(&key)
        } else {
            req.resume_after
        };
        let notices = self.hub.subscribe(&key, start).map(Ok);
        Ok(Response::new(Box::pin(notices)))
    }

    /// Appends every publication, in request order, and answers their sequence numbers.
    ///
    /// Errors: `InvalidArgument` naming `publications[i].audience...` or `publications[i].body`
    /// of the first bad publication; nothing is appended then.
    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let publications = validate::publications(request.into_inner())?;
        let seqs = publications
            .into_iter()
            .map(|(key, body)| self.hub.publish(&key, body))
            .collect();
        Ok(Response::new(v1::PublishResponse { seqs }))
    }
}

/// Serves `Notification` (plus gRPC health and reflection) on `listener` until `shutdown`
/// resolves.
///
/// At shutdown the hub is closed first, so every open `Subscribe` stream ends; a terminal's
/// stream never ends on its own, and graceful shutdown waits for running calls.
///
/// Errors: the transport error that ended serving.
pub async fn run(
    listener: TcpListener,
    hub: Arc<FeedHub>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let routes = Routes::new(NotificationServer::new(NotificationService::new(
        hub.clone(),
    )));
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    dispatch_runtime::serve(listener, routes, &[service_names::NOTIFICATION], shutdown).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
