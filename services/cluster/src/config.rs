//! The timings of membership and leases, in one place.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How often a node says it is alive, how long the cluster believes it without news, and how
/// long a district's lease lasts. Durations are written in config files as whole milliseconds
/// (`lease = 3000`).
///
/// Where the figures come from. The source document's target is an officer on scene within
/// 5 minutes of the call; a district without an owner queues nothing and dispatches nobody, so
/// the issue asks for a takeover within 5 s (under 2% of the target). General-purpose cluster
/// managers decide far more slowly, for contrast: Akka's split brain resolver acts after about
/// 20 s of a stable unreachable set (`stable-after`), Orleans declares a silo dead after about
/// 90 s with its default probes. Here a crashed node's last lease renewal and last heartbeat
/// were at most [`ClusterConfig::renew_every`] and [`ClusterConfig::heartbeat_every`] before
/// the crash, so its leases lapse within [`ClusterConfig::lease`] (3 s) and its registration
/// within [`ClusterConfig::node_ttl`] (3 s); the survivors see it gone at their next reconcile
/// ([`ClusterConfig::reconcile_every`], 1 s) and take its districts at once: lease 3 s +
/// reconcile 1 s is a takeover in under 5 s, the rebuild (snapshot plus at most 256 entries)
/// taking milliseconds. A graceful leave does not wait for any of this: the node releases each
/// lease and announces it, and the new owner acquires it on the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How often a node refreshes its registration, milliseconds in config files; more than 0
    /// and less than `node_ttl`. Default 1 s: a third of the TTL, so one slow or lost heartbeat
    /// (a command may take up to 2 s, `redis_conn::RESPONSE_TIMEOUT`) does not make a live node
    /// look dead. The subscriber also pings its pub/sub connection this often, to find a
    /// connection that went silent without closing.
    #[serde(with = "millis")]
    pub heartbeat_every: Duration,
    /// How long a registration lives without a heartbeat, milliseconds in config files; more
    /// than `heartbeat_every`. Default 3 s: three heartbeats, and with `reconcile_every` a dead
    /// node leaves every view within 4 s (see the type's docs).
    #[serde(with = "millis")]
    pub node_ttl: Duration,
    /// How often each node reads the live set from the registry, whatever pub/sub said,
    /// milliseconds in config files; more than 0. Default 1 s: pub/sub drops what is published
    /// while a subscriber is disconnected, and a node that died announces nothing, so the
    /// registry is the truth and this bounds how stale a view may be.
    #[serde(with = "millis")]
    pub reconcile_every: Duration,
    /// How long a district lease lasts without renewal, milliseconds in config files; more
    /// than `renew_every`. Default 3 s: with `reconcile_every` a crashed owner's districts are
    /// taken over within 5 s (see the type's docs), and two renewals in a row may fail (a Redis
    /// restart with AOF takes about a second here) before the owner loses them.
    #[serde(with = "millis")]
    pub lease: Duration,
    /// How often an owner renews its leases, milliseconds in config files; more than 0 and less
    /// than `lease`. Default 1 s, a third of the lease.
    #[serde(with = "millis")]
    pub renew_every: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            heartbeat_every: Duration::from_secs(1),
            node_ttl: Duration::from_secs(3),
            reconcile_every: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
        }
    }
}

impl ClusterConfig {
    /// Checks every rule given on the fields.
    ///
    /// Errors: [`Error::Config`] naming the first field that breaks its rule, with its value.
    pub fn validate(&self) -> Result<()> {
        self.check_positive()?;
        let fail = |field, rule: String| Err(Error::Config { field, rule });
        if self.node_ttl <= self.heartbeat_every {
            return fail(
                "node_ttl",
                format!(
                    "must be more than heartbeat_every ({} ms), got {} ms",
                    self.heartbeat_every.as_millis(),
                    self.node_ttl.as_millis()
                ),
            );
        }
        if self.lease <= self.renew_every {
            return fail(
                "lease",
                format!(
                    "must be more than renew_every ({} ms), got {} ms",
                    self.renew_every.as_millis(),
                    self.lease.as_millis()
                ),
            );
        }
        Ok(())
    }

    /// Checks only that every duration is more than 0 (timers cannot run at a period of 0).
    /// What the library itself needs; [`ClusterConfig::validate`] adds the rules between the
    /// fields that keep a healthy node in the cluster, for configuration read from a file.
    ///
    /// Errors: [`Error::Config`] naming the first field that is 0.
    pub fn check_positive(&self) -> Result<()> {
        for (field, value) in [
            ("heartbeat_every", self.heartbeat_every),
            ("node_ttl", self.node_ttl),
            ("reconcile_every", self.reconcile_every),
            ("lease", self.lease),
            ("renew_every", self.renew_every),
        ] {
            if value.is_zero() {
                return Err(Error::Config {
                    field,
                    rule: "must be more than 0 ms, got 0".into(),
                });
            }
        }
        Ok(())
    }
}

/// Durations as whole milliseconds in config files (`#[serde(with = "millis")]`); shared with
/// the other config structs of the district nodes.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` as whole milliseconds (saturating at `u64::MAX`).
    ///
    /// Errors: the serializer's.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads whole milliseconds.
    ///
    /// Errors: the deserializer's, for anything but an unsigned integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_give_a_takeover_under_five_seconds() {
        let c = ClusterConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.lease + c.reconcile_every < Duration::from_secs(5));
        assert!(c.node_ttl + c.reconcile_every < Duration::from_secs(5));
    }

    #[test]
    fn each_rule_names_its_field() {
        let zero = ClusterConfig {
            reconcile_every: Duration::ZERO,
            ..ClusterConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(Error::Config {
                field: "reconcile_every",
                rule: "must be more than 0 ms, got 0".into()
            })
        );
        let ttl = ClusterConfig {
            node_ttl: Duration::from_secs(1),
            ..ClusterConfig::default()
        };
        assert_eq!(
            ttl.validate(),
            Err(Error::Config {
                field: "node_ttl",
                rule: "must be more than heartbeat_every (1000 ms), got 1000 ms".into()
            })
        );
        let lease = ClusterConfig {
            renew_every: Duration::from_secs(5),
            ..ClusterConfig::default()
        };
        assert_eq!(
            lease.validate(),
            Err(Error::Config {
                field: "lease",
                rule: "must be more than renew_every (5000 ms), got 3000 ms".into()
            })
        );
        // The library accepts a renewal slower than the lease (tests simulate a paused owner
        // with it); only zero periods are refused.
        assert_eq!(lease.check_positive(), Ok(()));
    }
}
