//! Districts across nodes: which district nodes are alive, which of them should own each
//! district, and the lease that makes one node at a time its owner.
//!
//! In the flow of a call, intake hands a routed incident to the node that owns its district;
//! that node's district actor queues it and dispatches an officer. With several district nodes
//! (DESIGN.md section 5) each district must be owned by exactly one of them, and when a node
//! dies another must take its districts over within seconds. This crate has the pieces, over
//! Redis, the cluster's system of record:
//!
//! - [`membership`]: each node registers its id and internal gRPC address with a heartbeat and
//!   a TTL, announces joins and leaves on pub/sub, and reads the live set back from the
//!   registry on a timer ([`Membership`]); a read-only [`Membership::observe`] serves callers
//!   that are not district nodes.
//! - [`rendezvous`]: the owner a district should have among the live nodes (pure).
//! - [`lease`]: a district's lease in Redis, carrying an epoch that grows at every change of
//!   owner; the district's journal refuses any write of an older epoch (the journal lives in
//!   `dispatch-district`, on the same `district:{D}:epoch` key).
//! - [`placement`]: [`ClusterPlacement`], the `dispatch_bus::ports::Placement` that callers ask
//!   for a district's owner: its lease holder when known, else the rendezvous choice.
//! - [`channels`]: [`NodeChannels`], a gRPC channel per live node at the address it
//!   registered, for the callers that reach an owner.
//!
//! The district node's ownership loop, which puts these together (acquire what rendezvous
//! assigns, rebuild, renew, hand off), is in `dispatch-district`.
//!
//! Why a crate of its own rather than a module of `dispatch-bus`: the bus is the ports between
//! services (every service depends on it), while membership and leases are one concern of the
//! district nodes and of the callers that locate them; a separate crate keeps their Redis
//! scripts, timers and property tests together and out of every other service's build.

pub mod channels;
pub mod config;
pub mod lease;
pub mod membership;
pub mod placement;
pub mod rendezvous;

pub use channels::NodeChannels;
pub use config::ClusterConfig;
pub use dispatch_bus::ports::NodeId;
pub use lease::{Acquired, Holder, Leases, Released, Renewal};
pub use membership::{LiveView, Membership, SubscriptionProbe};
pub use placement::ClusterPlacement;

/// Redis pub/sub channel of membership announcements: `join {node}`, `leave {node}`,
/// `expired {node}` (a registration whose TTL ran out, removed by whichever node saw it first).
pub const MEMBERSHIP_CHANNEL: &str = "cluster:membership";
/// Redis pub/sub channel of lease announcements: `released {district} {epoch}`.
pub const LEASE_CHANNEL: &str = "cluster:leases";

/// Why a cluster call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A configuration value breaks its rule.
    #[error("cluster.{field}: {rule}")]
    Config {
        /// The field of [`ClusterConfig`].
        field: &'static str,
        /// The rule and the value given.
        rule: String,
    },
    /// A node id breaks the rule of [`check_node_id`].
    #[error("node id {id:?}: {rule}")]
    NodeId {
        /// The id given.
        id: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Redis cannot be reached, refused a script, or answered something unreadable.
    #[error("cluster registry unavailable: {0}")]
    Unavailable(String),
}

/// Result of cluster calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest node id, in bytes.
pub const MAX_NODE_ID: usize = 64;

/// Checks a node id: 1 to [`MAX_NODE_ID`] ASCII letters, digits, `.`, `_` or `-` (a
/// Kubernetes pod name or a host name fits). Ids travel in space-separated announcements and in
/// the rendezvous key (separator 0x1F), so nothing else is allowed.
///
/// Errors: [`Error::NodeId`] naming the id and the rule.
pub fn check_node_id(id: &str) -> Result<()> {
    let rule = if id.is_empty() || id.len() > MAX_NODE_ID {
        "must be 1 to 64 bytes long"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "may hold only ASCII letters, digits, '.', '_' and '-'"
    } else {
        return Ok(());
    };
    Err(Error::NodeId {
        id: id.to_owned(),
        rule,
    })
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_the_rule() {
        for ok in ["node-a", "district-7f9c.pod_1", &"a".repeat(64)] {
            assert_eq!(check_node_id(ok), Ok(()), "{ok}");
        }
        for (bad, rule) in [
            ("", "must be 1 to 64 bytes long"),
            (&"a".repeat(65), "must be 1 to 64 bytes long"),
            (
                "node a",
                "may hold only ASCII letters, digits, '.', '_' and '-'",
            ),
            (
                "node\u{1f}a",
                "may hold only ASCII letters, digits, '.', '_' and '-'",
            ),
            (
                "nödé",
                "may hold only ASCII letters, digits, '.', '_' and '-'",
            ),
        ] {
            assert_eq!(
                check_node_id(bad),
                Err(Error::NodeId {
                    id: bad.to_owned(),
                    rule
                })
            );
        }
    }
}
