//! Where intake keeps its incident records: one async port, [`IncidentRecords`], with the
//! rules of [`crate::store`], and two backends: [`MemoryRecords`] (one process, the embedded
//! mode and unit tests) and the Redis backend, the system of record of a multi-process
//! cluster, where several intake replicas share the `call_id` index.

mod redis_store;

use std::time::Duration;

use dispatch_core::{Incident, Timestamp};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::Result;
use crate::store::{Created, IncidentStore};

pub use redis_store::RedisRecords;

/// Intake's incident records, the `call_id` index and the hand-off leases (see
/// [`crate::store`] for the rules both backends keep).
///
/// Errors of every method: [`crate::Error::Records`] when the backend cannot be reached
/// (`Unavailable` to a client, which retries: every method is safe to repeat).
#[tonic::async_trait]
pub trait IncidentRecords: Send + Sync + std::fmt::Debug + 'static {
    /// The incident of the call `call_id`, if the call is known.
    async fn find_call(&self, call_id: &str) -> Result<Option<Incident>>;

    /// The incident `id`, if known.
    async fn get(&self, id: &str) -> Result<Option<Incident>>;

    /// Atomically: records `incident` (a new call, `ROUTED`) and gives its hand-off lease to
    /// `token` for `lease`; or, when its `call_id` is already known, answers that record and
    /// takes no lease. Two replicas reporting one call at once make one incident.
    async fn create(&self, incident: Incident, token: &str, lease: Duration) -> Result<Created>;

    /// Gives the hand-off lease of `id` to `token` for `lease` when the incident is still
    /// `ROUTED` and no live lease is held; answers the record then, `None` otherwise.
    async fn take_lease(&self, id: &str, token: &str, lease: Duration) -> Result<Option<Incident>>;

    /// The hand-off attempt `token` ended: releases its lease (not another attempt's) and
    /// applies the district's answer when its revision is higher. Answers the record.
    async fn handoff_done(
        &self,
        id: &str,
        token: &str,
        reply: Option<Incident>,
    ) -> Result<Option<Incident>>;

    /// Applies an update from the incident's district when its revision is higher; answers
    /// whether it applied.
    async fn apply_update(&self, incident: Incident) -> Result<bool>;

    /// Ids of incidents still `ROUTED` whose lease is free: a claimer crashed, was cancelled or
    /// failed. At most `limit`, oldest first.
    async fn stranded(&self, limit: usize) -> Result<Vec<String>>;

    /// Removes closed incidents that closed before `before` (cluster time); answers how many.
    /// A backend that expires closed records by itself (Redis TTL) answers 0.
    async fn purge_closed(&self, before: Timestamp) -> Result<usize>;

    /// Number of records held (for logs and tests; the Redis backend counts its keys).
    async fn len(&self) -> Result<usize>;

    /// True when no record is held.
    async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}

/// The in-process backend: an [`IncidentStore`] behind a lock, never held across an await.
/// Lease times are read from Tokio's clock, so tests may pause time.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    store: Mutex<IncidentStore>,
}

impl MemoryRecords {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[tonic::async_trait]
impl IncidentRecords for MemoryRecords {
    async fn find_call(&self, call_id: &str) -> Result<Option<Incident>> {
        Ok(self.store.lock().find_call(call_id).cloned())
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>> {
        Ok(self.store.lock().get(id).cloned())
    }

    async fn create(&self, incident: Incident, token: &str, lease: Duration) -> Result<Created> {
        Ok(self
            .store
            .lock()
            .create(incident, token, Instant::now() + lease))
    }

    async fn take_lease(&self, id: &str, token: &str, lease: Duration) -> Result<Option<Incident>> {
        let now = Instant::now();
        Ok(self.store.lock().take_lease(id, token, now, now + lease))
    }

    async fn handoff_done(
        &self,
        id: &str,
        token: &str,
        reply: Option<Incident>,
    ) -> Result<Option<Incident>> {
        Ok(self.store.lock().handoff_done(id, token, reply))
    }

    async fn apply_update(&self, incident: Incident) -> Result<bool> {
        Ok(self.store.lock().apply_update(incident))
    }

    async fn stranded(&self, limit: usize) -> Result<Vec<String>> {
        Ok(self.store.lock().stranded(Instant::now(), limit))
    }

    async fn purge_closed(&self, before: Timestamp) -> Result<usize> {
        Ok(self.store.lock().purge_closed(before))
    }

    async fn len(&self) -> Result<usize> {
        Ok(self.store.lock().len())
    }
}
