//! District leases as the cluster keeps them in Redis (`district:{D}:lease` =
//! `{epoch} {token} {node}`, live nodes in the hash `cluster:addrs`), read by tests that watch
//! districts move between district nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::eventually;

/// A lease: the node holding it and the district's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Holder's node id.
    pub node: String,
    /// The district's epoch (raised at every change of owner).
    pub epoch: u64,
}

/// District id -> its lease, for those of `districts` leased now.
///
/// Errors: Redis does not answer, or a lease is not `{epoch} {token} {node}`.
pub async fn leases(
    con: &mut MultiplexedConnection,
    districts: &[String],
) -> anyhow::Result<BTreeMap<String, Lease>> {
    let mut held = BTreeMap::new();
    for d in districts {
        let lease: Option<String> = con.get(format!("district:{d}:lease")).await?;
        if let Some(lease) = lease {
            let mut parts = lease.splitn(3, ' ');
            let (epoch, _token, node) = (parts.next(), parts.next(), parts.next());
            let (Some(epoch), Some(node)) = (epoch.and_then(|e| e.parse().ok()), node) else {
                anyhow::bail!("unreadable lease of {d}: {lease:?}");
            };
            let node = node.to_owned();
            held.insert(d.clone(), Lease { node, epoch });
        }
    }
    Ok(held)
}

/// District id -> holder, from `leases`.
pub fn holders(leases: &BTreeMap<String, Lease>) -> BTreeMap<String, String> {
    leases
        .iter()
        .map(|(d, l)| (d.clone(), l.node.clone()))
        .collect()
}

/// District id -> the node rendezvous hashing gives it among `live`.
pub fn assign(live: &[&str], districts: &[String]) -> BTreeMap<String, String> {
    dispatch_cluster::rendezvous::assign(live, districts.iter().map(String::as_str))
        .into_iter()
        .map(|(d, n)| (d.to_owned(), n.to_owned()))
        .collect()
}

/// Waits (at most `within`) until `nodes` district nodes are live and every one of `districts`
/// is leased to its rendezvous choice among them; answers the leases.
///
/// Errors: not settled in time (the last live set and holders seen).
pub async fn settled(
    con: &MultiplexedConnection,
    districts: &[String],
    nodes: usize,
    within: Duration,
) -> anyhow::Result<BTreeMap<String, Lease>> {
    eventually(within, || {
        let mut con = con.clone();
        async move {
            let live: Vec<String> = con.hkeys("cluster:addrs").await?;
            let live: Vec<&str> = live.iter().map(String::as_str).collect();
            let held = leases(&mut con, districts).await?;
            anyhow::ensure!(
                live.len() == nodes && holders(&held) == assign(&live, districts),
                "not settled: live {live:?}, held {held:?}"
            );
            Ok(held)
        }
    })
    .await
}
