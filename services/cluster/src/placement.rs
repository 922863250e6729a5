//! Which node owns a district, for callers (intake handing over an incident, a terminal's
//! gateway): the [`Placement`] of a cluster of district nodes.
//!
//! The owner of district `D` is its lease holder when a lease is there (the node that really
//! runs `D` now, even while a rebalance moves it), else the rendezvous choice among the live
//! nodes (the node that will take `D` at its next pass), else nobody
//! ([`PortError::Unavailable`]: no district node is live). A caller that reaches a node which
//! does not own the district gets `UNAVAILABLE` naming the owner it knows, and retries.
//!
//! Kept current without a round trip per call: the live set from an observing [`Membership`],
//! the lease holders of every district read in one `MGET` every
//! [`crate::ClusterConfig::reconcile_every`] and forgotten at once when a lease is released.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dispatch_bus::ports::{Placement, PortError};
use dispatch_bus::redis_conn;
use parking_lot::RwLock;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::lease::{self, Holder};
use crate::membership::LiveView;
use crate::{Membership, NodeId, Result, unavailable};

/// The owner of `district`: `holder`'s node when there is one, else the rendezvous choice
/// among `live`; `None` when neither.
pub fn resolve(holder: Option<&Holder>, live: &LiveView, district: &str) -> Option<NodeId> {
    holder
        .map(|h| h.node.clone())
        .or_else(|| live.owner(district).map(str::to_owned))
}

/// A [`Placement`] over the cluster's registry and leases.
pub struct ClusterPlacement {
    districts: HashSet<String>,
    view: watch::Receiver<LiveView>,
    holders: Arc<RwLock<HashMap<String, Holder>>>,
    refresh: JoinHandle<()>,
    /// Kept for its tasks (subscription, reconcile).
    _membership: Membership,
}

impl std::fmt::Debug for ClusterPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPlacement")
            .field("districts", &self.districts.len())
            .field("live", &*self.view.borrow())
            .field("held", &self.holders.read().len())
            .finish()
    }
}

impl Drop for ClusterPlacement {
    fn drop(&mut self) {
        self.refresh.abort();
    }
}

impl ClusterPlacement {
    /// Placement of `districts` (the directory's ids) following `membership` (an observer, or
    /// this node's own) and the leases in the Redis at `url`. Reads every lease once before
    /// answering. Must run inside a Tokio runtime.
    ///
    /// Errors: [`crate::Error::Unavailable`] for a malformed `url` or a Redis that does not
    /// answer the first read.
    pub async fn start(
        membership: Membership,
        url: &str,
        districts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self> {
        let con = redis_conn::connect(url).map_err(|e| unavailable(format!("{url}: {e}")))?;
        let list: Vec<String> = districts.into_iter().map(Into::into).collect();
        let holders = Arc::new(RwLock::new(read_holders(&con, &list).await?));
        let refresh = tokio::spawn(refresh(
            con,
            list.clone(),
            holders.clone(),
            membership.released(),
            membership.config().reconcile_every,
        ));
        Ok(Self {
            districts: list.into_iter().collect(),
            view: membership.view(),
            holders,
            refresh,
            _membership: membership,
        })
    }
}

async fn read_holders(
    con: &ConnectionManager,
    districts: &[String],
) -> Result<HashMap<String, Holder>> {
    let found = lease::holders(con, districts).await?;
    Ok(districts
        .iter()
        .zip(found)
        .filter_map(|(d, h)| h.map(|h| (d.clone(), h)))
        .collect())
}

/// Reads every lease every `every`; forgets a holder as soon as its release is announced.
async fn refresh(
    con: ConnectionManager,
    districts: Vec<String>,
    holders: Arc<RwLock<HashMap<String, Holder>>>,
    mut released: tokio::sync::broadcast::Receiver<lease::Released>,
    every: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable = true;
    loop {
        tokio::select! {
            _ = tick.tick() => match read_holders(&con, &districts).await {
                Ok(found) => {
                    *holders.write() = found;
                    reachable = true;
                }
                Err(e) => {
                    if reachable {
                        tracing::warn!(error = %e, "district leases unreadable; keeping the last holders");
                    }
                    reachable = false;
                }
            },
            r = released.recv() => match r {
                Ok(r) => {
                    let mut held = holders.write();
                    if held.get(&r.district).is_some_and(|h| h.epoch <= r.epoch) {
                        held.remove(&r.district);
                    }
                }
                // Missed announcements: the next tick reads every lease anyway.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

impl Placement for ClusterPlacement {
    /// Errors: [`PortError::Refused`] (`NotFound`) naming `district_id` for a district not in
    /// the directory; [`PortError::Unavailable`] when no lease is held and no node is live.
    fn owner(&self, district_id: &str) -> Result<NodeId, PortError> {
        if !self.districts.contains(district_id) {
            let rule = if district_id.is_empty() {
                "is required".to_owned()
            } else {
                format!("{district_id:?} is not a district of this cluster")
            };
            return Err(PortError::Refused {
                code: Code::NotFound,
                field: Some("district_id".to_owned()),
                message: format!("district_id: {rule}"),
            });
        }
        let holder = self.holders.read().get(district_id).cloned();
        resolve(holder.as_ref(), &self.view.borrow(), district_id).ok_or_else(|| {
            PortError::Unavailable {
                message: format!("no live district node to own district {district_id}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[&str]) -> LiveView {
        LiveView::new(ids.iter().map(|i| ((*i).to_owned(), format!("{i}:50053"))))
    }

    #[test]
    fn the_lease_holder_wins_over_rendezvous() {
        // Rendezvous over {node-b, node-c} gives town-d01 to node-b (reference weights in
        // `rendezvous`), but node-c holds its lease, so node-c runs it now.
        let two = live(&["node-b", "node-c"]);
        assert_eq!(resolve(None, &two, "town-d01"), Some("node-b".into()));
        let held = Holder {
            node: "node-c".into(),
            epoch: 4,
        };
        assert_eq!(
            resolve(Some(&held), &two, "town-d01"),
            Some("node-c".into())
        );
    }

    #[test]
    fn no_holder_and_no_live_node_is_nobody() {
        assert_eq!(resolve(None, &LiveView::default(), "town-d01"), None);
    }
}
